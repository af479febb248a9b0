/* For the hostile-input tests: shifts this process's wall clock (CLOCK_REALTIME, gettimeofday) by
 * $SPLITINFER_TEST_CLOCK_SKEW_S seconds, leaving the monotonic clock alone. Loaded with LD_PRELOAD into one node,
 * it is a device whose clock is wrong. Waits with a wall-clock deadline (sem_timedwait: Python 3.8's lock
 * timeouts) get the deadline shifted back, since the kernel keeps the true clock: on a device whose clock is
 * really wrong, deadline and clock agree. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <semaphore.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long skew(void) { const char *s = getenv("SPLITINFER_TEST_CLOCK_SKEW_S"); return s ? atol(s) : 0; }

int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) ts->tv_sec += skew();
    return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
    static int (*real)(struct timeval *, void *);
    if (!real) real = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
    int r = real(tv, tz);
    if (r == 0 && tv) tv->tv_sec += skew();
    return r;
}

int sem_timedwait(sem_t *sem, const struct timespec *deadline) {
    static int (*real)(sem_t *, const struct timespec *);
    if (!real) real = (int (*)(sem_t *, const struct timespec *))dlsym(RTLD_NEXT, "sem_timedwait");
    struct timespec shifted = *deadline;
    shifted.tv_sec -= skew();
    return real(sem, &shifted);
}
