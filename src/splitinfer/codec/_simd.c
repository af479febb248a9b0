/* AVX2 kernels for the codec's hot loops on x86-64: min/max, quantize, pack and unpack bit planes, dequantize.
 *
 * Each function computes exactly what the numpy/torch path in quantize.py and pack.py computes (the tests compare
 * them bit for bit); splitinfer.codec.simd decides at import whether to use them (this module built, the CPU has
 * AVX2, SPLITINFER_SIMD not 0). Built with -ffp-contract=off so that ``x * inv + bias`` rounds twice, as torch's
 * separate multiply and add do. Arguments are buffers (numpy arrays); every size is checked here before a byte is
 * touched, and the loops run without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_BUILD 1
#define AVX2 __attribute__((target("avx2")))
#else
#define HAVE_AVX2_BUILD 0
#define AVX2
#endif

#define SPREAD 0x8040201008040201ULL /* byte bits <-> 8 bytes, most significant bit first (np.packbits order) */
#define LSB 0x0101010101010101ULL

/* symbols = clamp(trunc(x * inv[r] + bias[r]), 0, top) per row r of per_row values */
static AVX2 void quantize_rows(const float *x, const float *inv, const float *bias, Py_ssize_t rows,
                               Py_ssize_t per_row, float top, uint8_t *out) {
    for (Py_ssize_t r = 0; r < rows; r++) {
        const float a = inv[r], b = bias[r];
        const float *src = x + r * per_row;
        uint8_t *dst = out + r * per_row;
        for (Py_ssize_t m = 0; m < per_row; m++) {
            float q = src[m] * a;
            q = q + b;
            q = q > 0.0f ? q : 0.0f; /* NaN -> 0, as numpy's cast gives (and no undefined conversion) */
            q = q > top ? top : q;
            dst[m] = (uint8_t)(int32_t)q;
        }
    }
}

#if HAVE_AVX2_BUILD
/* per row: min and max, or NaN for both if the row holds a NaN (min/max instructions would drop it) */
static AVX2 void minmax_rows(const float *x, Py_ssize_t rows, Py_ssize_t per_row, float *lo, float *hi) {
    for (Py_ssize_t r = 0; r < rows; r++) {
        const float *src = x + r * per_row;
        Py_ssize_t m = 0;
        float l = src[0], h = src[0];
        int nan = l != l;
        if (per_row >= 8) {
            __m256 vl = _mm256_loadu_ps(src), vh = vl, bad = _mm256_cmp_ps(vl, vl, _CMP_UNORD_Q);
            for (m = 8; m + 8 <= per_row; m += 8) {
                __m256 v = _mm256_loadu_ps(src + m);
                vl = _mm256_min_ps(vl, v);
                vh = _mm256_max_ps(vh, v);
                bad = _mm256_or_ps(bad, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            }
            float bl[8], bh[8];
            _mm256_storeu_ps(bl, vl);
            _mm256_storeu_ps(bh, vh);
            nan |= _mm256_movemask_ps(bad) != 0;
            for (int j = 0; j < 8; j++) {
                l = bl[j] < l ? bl[j] : l;
                h = bh[j] > h ? bh[j] : h;
            }
        }
        for (; m < per_row; m++) {
            float v = src[m];
            nan |= v != v;
            l = v < l ? v : l;
            h = v > h ? v : h;
        }
        lo[r] = nan ? NAN : l;
        hi[r] = nan ? NAN : h;
    }
}
#endif

/* values = symbol * step[r] - offset[r] per row (both products exact for fp16 steps: any order gives the same) */
static AVX2 void dequantize_rows(const uint8_t *sym, const float *step, const float *offset, Py_ssize_t rows,
                                 Py_ssize_t per_row, float *out) {
    for (Py_ssize_t r = 0; r < rows; r++) {
        const float a = step[r], b = offset[r];
        const uint8_t *src = sym + r * per_row;
        float *dst = out + r * per_row;
        for (Py_ssize_t m = 0; m < per_row; m++) {
            float v = (float)src[m] * a;
            dst[m] = v - b;
        }
    }
}

/* 8 symbols from sym[8k...] (zero past n) -> one byte per plane, portable */
static void pack_groups(const uint8_t *sym, Py_ssize_t n, int bits, uint8_t *out, Py_ssize_t nb, Py_ssize_t k0) {
    for (Py_ssize_t k = k0; k < nb; k++) {
        uint8_t tmp[8] = {0};
        Py_ssize_t take = n - 8 * k < 8 ? n - 8 * k : 8;
        memcpy(tmp, sym + 8 * k, (size_t)take);
        uint64_t w = 0;
        for (int j = 7; j >= 0; j--) w = (w << 8) | tmp[j]; /* byte j of w = symbol j, on any endianness */
        for (int p = 0; p < bits; p++) out[p * nb + k] = (uint8_t)((((w >> p) & LSB) * SPREAD) >> 56);
    }
}

static void unpack_groups(const uint8_t *planes, Py_ssize_t n, int bits, uint8_t *out, Py_ssize_t nb,
                          Py_ssize_t k0) {
    for (Py_ssize_t k = k0; k < nb; k++) {
        uint64_t w = 0;
        for (int p = 0; p < bits; p++) w |= ((((uint64_t)planes[p * nb + k] * SPREAD) >> 7) & LSB) << p;
        Py_ssize_t take = n - 8 * k < 8 ? n - 8 * k : 8;
        for (Py_ssize_t j = 0; j < take; j++) out[8 * k + j] = (uint8_t)(w >> (8 * j));
    }
}

#if HAVE_AVX2_BUILD
/* 32 symbols a step: bytes reversed within each group of 8, so that movemask of the plane bit shifted into each
 * byte's top bit yields np.packbits' order (first symbol in the most significant bit) */
static AVX2 void pack_planes_avx2(const uint8_t *sym, Py_ssize_t n, int bits, uint8_t *out) {
    const Py_ssize_t nb = (n + 7) / 8, blocks = n / 32;
    const __m256i rev = _mm256_setr_epi8(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8,
                                         7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
    for (Py_ssize_t k = 0; k < blocks; k++) {
        __m256i v = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(sym + 32 * k)), rev);
        for (int p = 0; p < bits; p++) {
            uint32_t m = (uint32_t)_mm256_movemask_epi8(_mm256_sll_epi16(v, _mm_cvtsi32_si128(7 - p)));
            memcpy(out + p * nb + 4 * k, &m, 4);
        }
    }
    pack_groups(sym, n, bits, out, nb, blocks * 4);
}

/* 32 symbols a step: each plane's 4 bytes spread to 32 bytes, tested against each byte's own bit */
static AVX2 void unpack_planes_avx2(const uint8_t *planes, Py_ssize_t n, int bits, uint8_t *out) {
    const Py_ssize_t nb = (n + 7) / 8, blocks = n / 32;
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_setr_epi8(-128, 64, 32, 16, 8, 4, 2, 1, -128, 64, 32, 16, 8, 4, 2, 1,
                                         -128, 64, 32, 16, 8, 4, 2, 1, -128, 64, 32, 16, 8, 4, 2, 1);
    for (Py_ssize_t k = 0; k < blocks; k++) {
        __m256i acc = _mm256_setzero_si256();
        for (int p = 0; p < bits; p++) {
            int32_t w;
            memcpy(&w, planes + p * nb + 4 * k, 4);
            __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(w), spread);
            __m256i on = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
            acc = _mm256_or_si256(acc, _mm256_and_si256(on, _mm256_set1_epi8((char)(1 << p))));
        }
        _mm256_storeu_si256((__m256i *)(out + 32 * k), acc);
    }
    unpack_groups(planes, n, bits, out, nb, blocks * 4);
}
#endif

static int have_avx2(void) {
#if HAVE_AVX2_BUILD
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

static int avx2_ok = 0;

/* does a buffer of len bytes hold exactly rows * per_row items of item bytes? (no overflow on the way) */
static int holds(Py_ssize_t len, Py_ssize_t rows, Py_ssize_t per_row, Py_ssize_t item) {
    if (rows < 0 || per_row < 0) return 0;
    if (rows == 0 || per_row == 0) return len == 0;
    if (per_row > PY_SSIZE_T_MAX / item / rows) return 0;
    return len == rows * per_row * item;
}

/* float32 buffers must be aligned to 4 bytes (numpy arrays are; a byte-offset memoryview may not be) */
static int aligned(const Py_buffer *b) { return ((uintptr_t)b->buf & 3) == 0; }

static int check(int ok, const char *message) {
    if (!ok) PyErr_SetString(PyExc_ValueError, message);
    return ok;
}

static int ready(void) {
    if (!avx2_ok) PyErr_SetString(PyExc_RuntimeError, "splitinfer.codec._simd: this CPU has no AVX2");
    return avx2_ok;
}

/* quantize(x: float32[rows * per_row], inv: float32[rows], bias: float32[rows], per_row, top, out: uint8[...]) */
static PyObject *py_quantize(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer x, inv, bias, out;
    Py_ssize_t per_row;
    float top;
    if (!ready() || !PyArg_ParseTuple(args, "y*y*y*nfw*", &x, &inv, &bias, &per_row, &top, &out)) return NULL;
    Py_ssize_t rows = inv.len / 4;
    int ok = check(inv.len % 4 == 0 && bias.len == inv.len && holds(x.len, rows, per_row, 4) &&
                       holds(out.len, rows, per_row, 1) && aligned(&x) && aligned(&inv) && aligned(&bias) &&
                       top >= 0.0f && top < 256.0f,
                   "quantize: buffer sizes or alignment do not match");
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        quantize_rows(x.buf, inv.buf, bias.buf, rows, per_row, top, out.buf);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&x), PyBuffer_Release(&inv), PyBuffer_Release(&bias), PyBuffer_Release(&out);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* minmax(x: float32[rows * per_row], per_row >= 1, lo: float32[rows], hi: float32[rows]) */
static PyObject *py_minmax(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer x, lo, hi;
    Py_ssize_t per_row;
    if (!ready() || !PyArg_ParseTuple(args, "y*nw*w*", &x, &per_row, &lo, &hi)) return NULL;
    Py_ssize_t rows = lo.len / 4;
    int ok = check(per_row >= 1 && lo.len % 4 == 0 && hi.len == lo.len && holds(x.len, rows, per_row, 4) &&
                       aligned(&x) && aligned(&lo) && aligned(&hi),
                   "minmax: buffer sizes or alignment do not match");
    if (ok) {
#if HAVE_AVX2_BUILD
        Py_BEGIN_ALLOW_THREADS
        minmax_rows(x.buf, rows, per_row, lo.buf, hi.buf);
        Py_END_ALLOW_THREADS
#endif
    }
    PyBuffer_Release(&x), PyBuffer_Release(&lo), PyBuffer_Release(&hi);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* dequantize(sym: uint8[rows * per_row], step: float32[rows], offset: float32[rows], per_row, out: float32[...]) */
static PyObject *py_dequantize(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer sym, step, offset, out;
    Py_ssize_t per_row;
    if (!ready() || !PyArg_ParseTuple(args, "y*y*y*nw*", &sym, &step, &offset, &per_row, &out)) return NULL;
    Py_ssize_t rows = step.len / 4;
    int ok = check(step.len % 4 == 0 && offset.len == step.len && holds(sym.len, rows, per_row, 1) &&
                       holds(out.len, rows, per_row, 4) && aligned(&step) && aligned(&offset) && aligned(&out),
                   "dequantize: buffer sizes or alignment do not match");
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        dequantize_rows(sym.buf, step.buf, offset.buf, rows, per_row, out.buf);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&sym), PyBuffer_Release(&step), PyBuffer_Release(&offset), PyBuffer_Release(&out);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* pack_planes(sym: uint8[n], bits, out: uint8[bits * ceil(n / 8)]) */
static PyObject *py_pack_planes(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer sym, out;
    int bits;
    if (!ready() || !PyArg_ParseTuple(args, "y*iw*", &sym, &bits, &out)) return NULL;
    int ok = check(bits >= 1 && bits <= 8 && out.len == (sym.len + 7) / 8 * bits, "pack_planes: bad sizes");
    if (ok) {
#if HAVE_AVX2_BUILD
        Py_BEGIN_ALLOW_THREADS
        pack_planes_avx2(sym.buf, sym.len, bits, out.buf);
        Py_END_ALLOW_THREADS
#endif
    }
    PyBuffer_Release(&sym), PyBuffer_Release(&out);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* unpack_planes(planes: uint8[bits * ceil(n / 8)], n, bits, out: uint8[n]) */
static PyObject *py_unpack_planes(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer planes, out;
    Py_ssize_t n;
    int bits;
    if (!ready() || !PyArg_ParseTuple(args, "y*niw*", &planes, &n, &bits, &out)) return NULL;
    int ok = check(bits >= 1 && bits <= 8 && n >= 0 && n <= PY_SSIZE_T_MAX / 2 && planes.len == (n + 7) / 8 * bits &&
                       out.len == n,
                   "unpack_planes: bad sizes");
    if (ok) {
#if HAVE_AVX2_BUILD
        Py_BEGIN_ALLOW_THREADS
        unpack_planes_avx2(planes.buf, n, bits, out.buf);
        Py_END_ALLOW_THREADS
#endif
    }
    PyBuffer_Release(&planes), PyBuffer_Release(&out);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"minmax", py_minmax, METH_VARARGS, "minmax(x, per_row, lo, hi)"},
    {"quantize", py_quantize, METH_VARARGS, "quantize(x, inv, bias, per_row, top, out)"},
    {"dequantize", py_dequantize, METH_VARARGS, "dequantize(sym, step, offset, per_row, out)"},
    {"pack_planes", py_pack_planes, METH_VARARGS, "pack_planes(sym, bits, out)"},
    {"unpack_planes", py_unpack_planes, METH_VARARGS, "unpack_planes(planes, n, bits, out)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_simd", "AVX2 kernels of the codec", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__simd(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    avx2_ok = have_avx2();
    if (PyModule_AddIntConstant(m, "avx2", avx2_ok) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
