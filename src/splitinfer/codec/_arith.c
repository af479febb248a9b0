/* Portable C for wire format version 2: the context-adaptive binary range coder and the centred quantizer.
 *
 * Built on every architecture (setup.py); splitinfer.codec.arith has a pure-Python twin of every function here
 * that writes the same bytes and values (tests/codec/test_arith.py compares them), so nodes with and without this
 * module interoperate. Built with -ffp-contract=off so that ``(x - mean) * inv + 0.5`` and ``q * step + mean``
 * round after every operation, as torch's separate operations (and the Python twin) do.
 *
 * The coder is LZMA's range coder (32-bit range, carry through a cached byte) with 15-bit probabilities, each the
 * average of a fast (shift 4) and a slow (shift 7) estimate. What it codes, per tensor of G = frames x channels
 * groups, each H rows of W values (int16 symbols, |q| <= SYMBOL_MAX):
 *
 *   per group:  "any value non-zero"            context: the previous group's flag (2)
 *   per row:    "any value non-zero"            context: the row above's flag, or "first row" (3)
 *   per value in a non-zero row:
 *               "non-zero"                      context: min(|left|,2), min(|up|,2), min(|up-left|+|up-right|,2) (27)
 *               sign (1 = negative)             context: signs of left and up (9)
 *               |q| - 1 in unary, up to K bins  context: bin index (capped at 6) x min((|left|+|up|+1)/2, 3) (28)
 *               |q| - 1 - K, if >= 0, as order-0 Exp-Golomb in equiprobable bits
 *
 * Neighbours outside the tensor, in a zero row or in an all-zero group are 0. Decoding does a bounded amount of
 * work (at most 2 + 1 + K + 2 * 15 + 1 bins a value, G * H * W values) and never reads outside its input: bytes
 * past the end read as zero, and a stream that needs more than it holds, holds more than it needs, or spells a
 * magnitude over SYMBOL_MAX is refused.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PROB_BITS 15
#define PROB_ONE (1u << PROB_BITS)
#define FAST 4
#define SLOW 7
#define TOP (1u << 24)
#define QMAX 16383       /* the quantizer's symbols: |q| <= QMAX */
#define SYMBOL_MAX 32767 /* the coder's: a delta frame's q - q_key needs up to 2 * QMAX */
#define K_UNARY 14
#define MAX_EG 15 /* Exp-Golomb prefix: |symbol| <= SYMBOL_MAX needs at most 14 */

#define N_GROUP 2
#define N_ROW 3
#define N_ZERO 27
#define N_SIGN 9
#define N_MAG (7 * 4)

typedef struct {
    uint16_t fast, slow;
} Prob;

typedef struct {
    Prob group[N_GROUP], row[N_ROW], zero[N_ZERO], sign[N_SIGN], mag[N_MAG];
} Model;

static void model_init(Model *m) {
    Prob *p = (Prob *)m;
    for (size_t i = 0; i < sizeof(Model) / sizeof(Prob); i++) p[i].fast = p[i].slow = PROB_ONE / 2;
}

static inline uint32_t prob0(const Prob *p) { return ((uint32_t)p->fast + p->slow) >> 1; }

static inline void adapt(Prob *p, int bit) {
    if (bit) {
        p->fast = (uint16_t)(p->fast - (p->fast >> FAST));
        p->slow = (uint16_t)(p->slow - (p->slow >> SLOW));
    } else {
        p->fast = (uint16_t)(p->fast + ((PROB_ONE - p->fast) >> FAST)); /* stays below PROB_ONE */
        p->slow = (uint16_t)(p->slow + ((PROB_ONE - p->slow) >> SLOW));
    }
}

/* ------------------------------------------------------------------------------------------------ encoder */

typedef struct {
    uint64_t low;
    uint32_t range;
    uint8_t cache;
    uint64_t pending; /* bytes held back: the cache byte and 0xFF bytes a carry may still change */
    uint8_t *buf;
    size_t len, cap;
    int failed;
} Enc;

static void put(Enc *e, uint8_t byte) {
    if (e->len == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 4096;
        uint8_t *grown = e->failed ? NULL : (uint8_t *)realloc(e->buf, cap);
        if (grown == NULL) {
            e->failed = 1;
            return;
        }
        e->buf = grown, e->cap = cap;
    }
    e->buf[e->len++] = byte;
}

static void shift_low(Enc *e) {
    if ((uint32_t)e->low < 0xFF000000u || (e->low >> 32) != 0) {
        uint8_t carry = (uint8_t)(e->low >> 32), held = e->cache;
        do {
            put(e, (uint8_t)(held + carry));
            held = 0xFF;
        } while (--e->pending != 0);
        e->cache = (uint8_t)(e->low >> 24);
    }
    e->pending++;
    e->low = (e->low & 0x00FFFFFFu) << 8;
}

static inline void enc_bit(Enc *e, Prob *p, int bit) {
    uint32_t bound = (e->range >> PROB_BITS) * prob0(p);
    if (bit) {
        e->low += bound;
        e->range -= bound;
    } else {
        e->range = bound;
    }
    adapt(p, bit);
    while (e->range < TOP) {
        e->range <<= 8;
        shift_low(e);
    }
}

static inline void enc_equal(Enc *e, int bit) {
    e->range >>= 1;
    if (bit) e->low += e->range;
    while (e->range < TOP) {
        e->range <<= 8;
        shift_low(e);
    }
}

static int any_nonzero(const int16_t *p, Py_ssize_t n) {
    int16_t acc = 0;
    for (Py_ssize_t i = 0; i < n; i++) acc |= p[i];
    return acc != 0;
}

/* any_nonzero, and the smallest value seen into *lowest */
static int scan_group(const int16_t *p, Py_ssize_t n, int16_t *lowest) {
    int16_t acc = 0, low = *lowest;
    for (Py_ssize_t i = 0; i < n; i++) {
        acc |= p[i];
        low = p[i] < low ? p[i] : low;
    }
    *lowest = low;
    return acc != 0;
}

static inline int mini(int a, int b) { return a < b ? a : b; }
static inline int absi(int v) { return v < 0 ? -v : v; }
static inline int sgn(int v) { return (v > 0) - (v < 0); }

static void enc_value(Enc *e, Model *m, const int16_t *row, const int16_t *up, Py_ssize_t w, Py_ssize_t width) {
    int v = row[w];
    int left = w > 0 ? row[w - 1] : 0, above = up[w];
    int l = absi(left), u = absi(above);
    int ul = w > 0 ? absi(up[w - 1]) : 0, ur = w + 1 < width ? absi(up[w + 1]) : 0;
    int ctx = (mini(l, 2) * 3 + mini(u, 2)) * 3 + mini(ul + ur, 2);
    enc_bit(e, &m->zero[ctx], v != 0);
    if (v == 0) return;
    enc_bit(e, &m->sign[(sgn(left) + 1) * 3 + sgn(above) + 1], v < 0);
    int mag = absi(v) - 1, nb = mini((l + u + 1) >> 1, 3);
    for (int k = 0; k < K_UNARY; k++) {
        int more = mag > k;
        enc_bit(e, &m->mag[mini(k, 6) * 4 + nb], more);
        if (!more) return;
    }
    uint32_t rest = (uint32_t)(mag - K_UNARY) + 1; /* Exp-Golomb of mag - K: n ones, a zero, n low bits */
    int n = 0;
    while ((rest >> (n + 1)) != 0) n++;
    for (int i = 0; i < n; i++) enc_equal(e, 1);
    enc_equal(e, 0);
    for (int i = n - 1; i >= 0; i--) enc_equal(e, (rest >> i) & 1);
}

/* returns 0 if some symbol is -32768 (the stream is then to be discarded) */
static int encode_groups(Enc *e, const int16_t *q, Py_ssize_t groups, Py_ssize_t height, Py_ssize_t width,
                         const int16_t *zeros) {
    Model m;
    model_init(&m);
    int prev = 0;
    int16_t lowest = 0;
    for (Py_ssize_t g = 0; g < groups; g++) {
        const int16_t *plane = q + g * height * width;
        int active = scan_group(plane, height * width, &lowest);
        if (lowest == INT16_MIN) return 0;
        enc_bit(e, &m.group[prev], active);
        prev = active;
        if (!active) continue;
        int above = 2;
        const int16_t *up = zeros;
        for (Py_ssize_t h = 0; h < height; h++) {
            const int16_t *row = plane + h * width;
            int busy = any_nonzero(row, width);
            enc_bit(e, &m.row[above], busy);
            above = busy;
            if (!busy) {
                up = zeros;
                continue;
            }
            for (Py_ssize_t w = 0; w < width; w++) enc_value(e, &m, row, up, w, width);
            up = row;
        }
    }
    for (int i = 0; i < 5; i++) shift_low(e);
    return 1;
}

/* ------------------------------------------------------------------------------------------------ decoder */

typedef struct {
    uint32_t range, code;
    const uint8_t *buf;
    size_t len, pos; /* pos counts bytes consumed, including those past the end (read as 0) */
} Dec;

static inline uint8_t next_byte(Dec *d) {
    uint8_t b = d->pos < d->len ? d->buf[d->pos] : 0;
    d->pos++;
    return b;
}

static inline int dec_bit(Dec *d, Prob *p) {
    uint32_t bound = (d->range >> PROB_BITS) * prob0(p);
    int bit;
    if (d->code < bound) {
        d->range = bound;
        bit = 0;
    } else {
        d->code -= bound;
        d->range -= bound;
        bit = 1;
    }
    adapt(p, bit);
    while (d->range < TOP) {
        d->range <<= 8;
        d->code = (d->code << 8) | next_byte(d);
    }
    return bit;
}

static inline int dec_equal(Dec *d) {
    d->range >>= 1;
    int bit = d->code >= d->range;
    if (bit) d->code -= d->range;
    while (d->range < TOP) {
        d->range <<= 8;
        d->code = (d->code << 8) | next_byte(d);
    }
    return bit;
}

/* 0, or an error message */
static const char *dec_value(Dec *d, Model *m, int16_t *row, const int16_t *up, Py_ssize_t w, Py_ssize_t width,
                             int limit) {
    int left = w > 0 ? row[w - 1] : 0, above = up[w];
    int l = absi(left), u = absi(above);
    int ul = w > 0 ? absi(up[w - 1]) : 0, ur = w + 1 < width ? absi(up[w + 1]) : 0;
    int ctx = (mini(l, 2) * 3 + mini(u, 2)) * 3 + mini(ul + ur, 2);
    if (!dec_bit(d, &m->zero[ctx])) {
        row[w] = 0;
        return 0;
    }
    int negative = dec_bit(d, &m->sign[(sgn(left) + 1) * 3 + sgn(above) + 1]);
    int mag = 0, nb = mini((l + u + 1) >> 1, 3);
    while (mag < K_UNARY && dec_bit(d, &m->mag[mini(mag, 6) * 4 + nb])) mag++;
    if (mag == K_UNARY) {
        int n = 0;
        while (dec_equal(d)) {
            if (++n > MAX_EG) return "an Exp-Golomb prefix longer than any magnitude allows";
        }
        uint32_t rest = 1;
        for (int i = 0; i < n; i++) rest = (rest << 1) | (uint32_t)dec_equal(d);
        mag = K_UNARY + (int)(rest - 1);
    }
    if (mag + 1 > limit) return "a magnitude over the symbol range";
    row[w] = (int16_t)(negative ? -(mag + 1) : mag + 1);
    return 0;
}

static const char *decode_groups(Dec *d, int16_t *q, Py_ssize_t groups, Py_ssize_t height, Py_ssize_t width,
                                 int limit, const int16_t *zeros) {
    if (d->len < 5) return "a stream shorter than the coder's 5-byte start";
    if (next_byte(d) != 0) return "a stream whose first byte is not 0";
    d->range = 0xFFFFFFFFu;
    d->code = 0;
    for (int i = 0; i < 4; i++) d->code = (d->code << 8) | next_byte(d);
    Model m;
    model_init(&m);
    int prev = 0;
    for (Py_ssize_t g = 0; g < groups; g++) {
        int16_t *plane = q + g * height * width;
        int active = dec_bit(d, &m.group[prev]);
        prev = active;
        if (!active) {
            memset(plane, 0, (size_t)(height * width) * sizeof(int16_t));
            continue;
        }
        int above = 2;
        const int16_t *up = zeros;
        for (Py_ssize_t h = 0; h < height; h++) {
            int16_t *row = plane + h * width;
            int busy = dec_bit(d, &m.row[above]);
            above = busy;
            if (!busy) {
                memset(row, 0, (size_t)width * sizeof(int16_t));
                up = zeros;
                continue;
            }
            for (Py_ssize_t w = 0; w < width; w++) {
                const char *err = dec_value(d, &m, row, up, w, width, limit);
                if (err) return err;
            }
            up = row;
            if (d->pos > d->len + 4) return "a stream that ends before its symbols do (truncated or corrupt)";
        }
    }
    if (d->pos > d->len) return "a stream that ends before its symbols do (truncated or corrupt)";
    if (d->pos < d->len) return "stray bytes after the last symbol";
    return 0;
}

/* ------------------------------------------------------------------------------------------------ quantizer */

/* q = clamp(floor((x - mean) * inv + 0.5), -qmax, qmax) per group; returns 0 if some x is NaN or infinite */
static int quantize_groups(const float *x, const float *mean, const float *inv, Py_ssize_t groups, Py_ssize_t per,
                           float qmax, int16_t *out) {
    int finite = 1;
    for (Py_ssize_t g = 0; g < groups; g++) {
        const float mu = mean[g], a = inv[g];
        const float *src = x + g * per;
        int16_t *dst = out + g * per;
        for (Py_ssize_t i = 0; i < per; i++) {
            float v = src[i];
            finite &= (v - v) == 0.0f; /* NaN and infinities give NaN */
            float t = v - mu;
            t = t * a;
            t = t + 0.5f;
            t = t == t ? t : 0.0f; /* NaN (refused by the caller anyway) -> 0, never an undefined conversion */
            t = t < -qmax ? -qmax : t;
            t = t > qmax ? qmax : t; /* clamping before the floor gives what clamping after it does */
            int32_t k = (int32_t)t;  /* truncation; minus one below zero when t was not whole: the floor */
            dst[i] = (int16_t)(k - (t < (float)k));
        }
    }
    return finite;
}

/* out = q * step + mean per group */
static void dequantize_groups(const int16_t *q, const float *mean, const float *step, Py_ssize_t groups,
                              Py_ssize_t per, float *out) {
    for (Py_ssize_t g = 0; g < groups; g++) {
        const float mu = mean[g], s = step[g];
        const int16_t *src = q + g * per;
        float *dst = out + g * per;
        for (Py_ssize_t i = 0; i < per; i++) {
            float v = (float)src[i] * s;
            dst[i] = v + mu;
        }
    }
}

/* ------------------------------------------------------------------------------------------------ Python */

static int check(int ok, const char *message) {
    if (!ok) PyErr_SetString(PyExc_ValueError, message);
    return ok;
}

/* groups * height * width values of ``item`` bytes fill exactly ``len`` bytes, without overflow */
static int holds(Py_ssize_t len, Py_ssize_t groups, Py_ssize_t height, Py_ssize_t width, Py_ssize_t item) {
    if (groups < 0 || height < 1 || width < 1) return 0;
    if (height > PY_SSIZE_T_MAX / width) return 0;
    Py_ssize_t per = height * width;
    if (groups > 0 && per > PY_SSIZE_T_MAX / item / groups) return 0;
    return len == groups * per * item;
}

static int aligned(const Py_buffer *b, uintptr_t to) { return ((uintptr_t)b->buf & (to - 1)) == 0; }

/* encode(q: int16[groups * height * width], groups, height, width) -> bytes */
static PyObject *py_encode(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer q;
    Py_ssize_t groups, height, width;
    if (!PyArg_ParseTuple(args, "y*nnn", &q, &groups, &height, &width)) return NULL;
    int ok = check(holds(q.len, groups, height, width, 2) && aligned(&q, 2), "encode: buffer size or alignment");
    const int16_t *sym = (const int16_t *)q.buf;
    int16_t *zeros = ok ? (int16_t *)calloc((size_t)width, sizeof(int16_t)) : NULL;
    ok = ok && check(zeros != NULL, "encode: out of memory");
    Enc e = {0, 0xFFFFFFFFu, 0, 1, NULL, 0, 0, 0};
    if (ok) {
        int valid;
        Py_BEGIN_ALLOW_THREADS
        valid = encode_groups(&e, sym, groups, height, width, zeros);
        Py_END_ALLOW_THREADS
        ok = check(valid, "encode: a symbol is -32768 (|symbol| must be <= 32767)") &&
             check(!e.failed, "encode: out of memory");
    }
    PyObject *result = ok ? PyBytes_FromStringAndSize((const char *)e.buf, (Py_ssize_t)e.len) : NULL;
    free(e.buf);
    free(zeros);
    PyBuffer_Release(&q);
    return result;
}

/* decode(data: bytes-like, groups, height, width, limit, out: int16[groups * height * width]): |symbols| <= limit */
static PyObject *py_decode(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer data, out;
    Py_ssize_t groups, height, width;
    int limit;
    if (!PyArg_ParseTuple(args, "y*nnniw*", &data, &groups, &height, &width, &limit, &out)) return NULL;
    int ok = check(holds(out.len, groups, height, width, 2) && aligned(&out, 2) && limit >= 0 && limit <= SYMBOL_MAX,
                   "decode: buffer size, alignment or limit");
    int16_t *zeros = ok ? (int16_t *)calloc((size_t)width, sizeof(int16_t)) : NULL;
    ok = ok && check(zeros != NULL, "decode: out of memory");
    const char *err = NULL;
    if (ok) {
        Dec d = {0, 0, (const uint8_t *)data.buf, (size_t)data.len, 0};
        Py_BEGIN_ALLOW_THREADS
        err = decode_groups(&d, (int16_t *)out.buf, groups, height, width, limit, zeros);
        Py_END_ALLOW_THREADS
        ok = check(err == NULL, err);
    }
    free(zeros);
    PyBuffer_Release(&data), PyBuffer_Release(&out);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* quantize(x: float32[groups * per], mean: float32[groups], inv: float32[groups], per, qmax, out: int16[...])
 * -> True if every x was finite */
static PyObject *py_quantize(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer x, mean, inv, out;
    Py_ssize_t per;
    int qmax;
    if (!PyArg_ParseTuple(args, "y*y*y*niw*", &x, &mean, &inv, &per, &qmax, &out)) return NULL;
    Py_ssize_t groups = mean.len / 4;
    int ok = check(mean.len % 4 == 0 && inv.len == mean.len && holds(x.len, groups, 1, per, 4) &&
                       holds(out.len, groups, 1, per, 2) && aligned(&x, 4) && aligned(&mean, 4) && aligned(&inv, 4) &&
                       aligned(&out, 2) && qmax >= 0 && qmax <= QMAX,
                   "quantize: buffer sizes or alignment do not match");
    int finite = 1;
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        finite = quantize_groups(x.buf, mean.buf, inv.buf, groups, per, (float)qmax, out.buf);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&x), PyBuffer_Release(&mean), PyBuffer_Release(&inv), PyBuffer_Release(&out);
    if (!ok) return NULL;
    return PyBool_FromLong(finite);
}

/* dequantize(q: int16[groups * per], mean: float32[groups], step: float32[groups], per, out: float32[...]) */
static PyObject *py_dequantize(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer q, mean, step, out;
    Py_ssize_t per;
    if (!PyArg_ParseTuple(args, "y*y*y*nw*", &q, &mean, &step, &per, &out)) return NULL;
    Py_ssize_t groups = mean.len / 4;
    int ok = check(mean.len % 4 == 0 && step.len == mean.len && holds(q.len, groups, 1, per, 2) &&
                       holds(out.len, groups, 1, per, 4) && aligned(&q, 2) && aligned(&mean, 4) &&
                       aligned(&step, 4) && aligned(&out, 4),
                   "dequantize: buffer sizes or alignment do not match");
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        dequantize_groups(q.buf, mean.buf, step.buf, groups, per, out.buf);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&q), PyBuffer_Release(&mean), PyBuffer_Release(&step), PyBuffer_Release(&out);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"encode", py_encode, METH_VARARGS, "encode(q, groups, height, width) -> bytes"},
    {"decode", py_decode, METH_VARARGS, "decode(data, groups, height, width, limit, out)"},
    {"quantize", py_quantize, METH_VARARGS, "quantize(x, mean, inv, per, qmax, out) -> all finite"},
    {"dequantize", py_dequantize, METH_VARARGS, "dequantize(q, mean, step, per, out)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_arith", "Range coder and centred quantizer of the codec's wire format 2", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__arith(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "QMAX", QMAX) < 0 || PyModule_AddIntConstant(m, "SYMBOL_MAX", SYMBOL_MAX) < 0 ||
        PyModule_AddIntConstant(m, "K_UNARY", K_UNARY) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
