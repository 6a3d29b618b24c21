// q8.c — reference quantize / dequantize, activation quantization and the repacked layouts
// of q8.h.  Plain C on purpose: these are the references.  Activation rows go through the
// kernel table's q8_act_row (scalar.c calls the block functions here; the vector tables do
// the same float steps), so every table writes the same activation bytes and the int8
// products are bit-identical across ISAs.
#include "quant/q8.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "simd/simd.h"

// Four-lane vectors (GCC/clang vector extensions: SSE2 on x86-64, NEON on aarch64).
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef int8_t v4c __attribute__((vector_size(4)));
static inline v4f v4f_set(float a) { return (v4f){a, a, a, a}; }
// m ? a : b lane by lane (m: a comparison's all-ones / zero lanes).
static inline v4f v4f_sel(v4i m, v4f a, v4f b) { return (v4f)(((v4i)a & m) | ((v4i)b & ~m)); }

// Round to nearest, ties to even, for |v| <= 2^22: adding and removing 1.5 * 2^23 leaves the
// rounded integer (IEEE addition rounds to nearest even).  -ffp-contract=off and no fast-math
// keep the compiler from folding it.  Same bits as rintf in the default rounding mode.
static inline float round_even(float v) {
    const float magic = 12582912.0f;   // 1.5 * 2^23
    return (v + magic) - magic;
}

// amax of n values; *bad set when one is NaN or Inf.
static float block_amax(const float *x, size_t n, int *bad) {
    float amax = 0.0f;
    int nf = 0;
    for (size_t k = 0; k < n; k++) {
        float a = fabsf(x[k]);
        nf |= !(a <= FLT_MAX);
        amax = a > amax ? a : amax;
    }
    *bad = nf;
    return amax;
}

// q = round_even(x * id) clamped to [-127, 127] over a zero-padded 32-value block (fixed trip
// count, float only: the compiler vectorises it; activations are quantized in every product).
static void round_amax32(int8_t *q, const float *x, float id) {
    float v[QK8];
    for (int k = 0; k < QK8; k++) {
        float t = round_even(x[k] * id);
        v[k] = t > 127.0f ? 127.0f : t < -127.0f ? -127.0f : t;   // never -128
    }
    for (int k = 0; k < QK8; k++) q[k] = (int8_t)v[k];
}

void q8_quantize_block_amax(BlockQ8 *b, const float *x, size_t n) {
    int bad;
    float amax = block_amax(x, n, &bad);
    memset(b->qs, 0, sizeof b->qs);
    if (bad) {              // honest NaN: every product reading this block is NaN
        b->d = NAN;
        return;
    }
    if (!(amax >= Q8_TINY)) {   // all zero (or too small for 127/amax to be finite)
        b->d = 0.0f;
        return;
    }
    float xb[QK8] = {0};
    memcpy(xb, x, n * sizeof(float));
    b->d = amax / 127.0f;
    round_amax32(b->qs, xb, 127.0f / amax);
}

// Rounding with inverse scale id over a zero-padded 32-value block: q into *q, and the sums
// for the least-squares scale (float: exact enough to rank candidates; fixed trip count so the
// compiler vectorises it).
static void round32(int8_t *q, const float *x, float id, float *sxq, float *sqq) {
    float v[QK8], a[QK8], b[QK8];
    for (int k = 0; k < QK8; k++) {   // elementwise, so the compiler vectorises it
        float t = round_even(x[k] * id);
        t -= (float)(t > 127.0f) * (t - 127.0f);    // clamp to [-127, 127] (never -128),
        t -= (float)(t < -127.0f) * (t + 127.0f);   // branch-free so it vectorises
        v[k] = t;
        a[k] = x[k] * t;
        b[k] = t * t;
    }
    for (int w = QK8 / 2; w > 0; w /= 2)   // fixed pairwise tree: the same sums everywhere
        for (int k = 0; k < w; k++) {
            a[k] += a[k + w];
            b[k] += b[k + w];
        }
    for (int k = 0; k < QK8; k++) q[k] = (int8_t)v[k];
    *sxq = a[0];
    *sqq = b[0];
}

// Weights: the clipping ratio r whose rounding, with the least-squares scale
// d = sum(x q) / sum(q^2) for those q, leaves the smallest squared error
// sum(x^2) - (sum x q)^2 / sum(q^2): r on a 0.01 grid over [0.90, 1], then +-0.0025, +-0.005
// around the best (15 candidates).  r = 1 is a candidate and the refit never hurts, so the
// error is never above the plain amax rule's; ties keep the earlier candidate.
void q8_quantize_block(BlockQ8 *b, const float *x, size_t n) {
    int bad;
    float amax = block_amax(x, n, &bad);
    memset(b->qs, 0, sizeof b->qs);
    if (bad) {
        b->d = NAN;
        return;
    }
    if (!(amax >= Q8_TINY)) {
        b->d = 0.0f;
        return;
    }
    float xb[QK8] = {0};
    memcpy(xb, x, n * sizeof(float));
    float best = -1.0f, best_d = 0.0f, best_r = 1.0f;
    int8_t q[QK8];
    static const float fine[4] = {-0.005f, -0.0025f, 0.0025f, 0.005f};
    for (int k = 0; k < 15; k++) {
        float r = k < 11 ? 1.0f - 0.01f * (float)k : best_r + fine[k - 11];
        if (k >= 11 && (r > 1.0f || r < 0.9f)) continue;
        float sxq, sqq;
        round32(q, xb, 127.0f / (amax * r), &sxq, &sqq);
        float gain = sxq * sxq / sqq;   // sum(x^2) - error: maximise it
        if (gain > best) {
            best = gain;
            best_d = sxq / sqq;
            if (k < 11) best_r = r;
            memcpy(b->qs, q, n);
        }
    }
    b->d = best_d;
}

void q8_quantize_row(BlockQ8 *dst, const float *x, size_t cols) {
    for (size_t b = 0; b * QK8 < cols; b++) {
        size_t n = cols - b * QK8 < QK8 ? cols - b * QK8 : QK8;
        q8_quantize_block(dst + b, x + b * QK8, n);
    }
}

void q8_dequantize_row(float *x, const BlockQ8 *src, size_t cols) {
    for (size_t c = 0; c < cols; c++) x[c] = src[c / QK8].d * (float)src[c / QK8].qs[c % QK8];
}

void q8_quantize_matrix(BlockQ8 *dst, const float *W, size_t rows, size_t cols) {
    size_t nb = q8_nblocks(cols);
    for (size_t r = 0; r < rows; r++) q8_quantize_row(dst + r * nb, W + r * cols, cols);
}

void q8_dequantize_matrix(float *W, const BlockQ8 *src, size_t rows, size_t cols) {
    size_t nb = q8_nblocks(cols);
    for (size_t r = 0; r < rows; r++) q8_dequantize_row(W + r * cols, src + r * nb, cols);
}

// ---- activations -----------------------------------------------------------------------------
int q8_actbuf_reserve(Q8ActBuf *b, size_t nblocks) {
    if (nblocks <= b->cap_blocks) return CT_OK;
    size_t n = nblocks < 64 ? 64 : nblocks;
    int8_t *q = NULL;
    if (posix_memalign((void **)&q, 64, n * QK8) != 0) q = NULL;
    float *d = malloc(n * sizeof *d);
    int32_t *s = malloc(n * sizeof *s);
    if (!q || !d || !s) {
        free(q);
        free(d);
        free(s);
        return ct_error("q8: out of memory for %zu activation blocks", n);
    }
    free(b->q);
    free(b->d);
    free(b->nsum);
    b->q = q;
    b->d = d;
    b->nsum = s;
    b->cap_blocks = n;
    return CT_OK;
}

void q8_actbuf_free(Q8ActBuf *b) {
    free(b->q);
    free(b->d);
    free(b->nsum);
    memset(b, 0, sizeof *b);
}

// Largest |x| of a 32-value block (zero-padded) on float bits: for non-negative floats the
// integer order is the float order, and NaN / Inf lie above FLT_MAX's bits, so this is
// block_amax's value (a maximum does not depend on order) with one compare per lane.
static float amax32(const float *x, int *bad) {
    const v4i abs_mask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
    v4i m = {0, 0, 0, 0};
    for (int k = 0; k < QK8; k += 4) {
        v4i v;
        memcpy(&v, x + k, sizeof v);
        v &= abs_mask;
        v4i gt = v > m;
        m = (v & gt) | (m & ~gt);
    }
    int32_t b = m[0];
    for (int j = 1; j < 4; j++) b = m[j] > b ? m[j] : b;
    *bad = b > 0x7f7fffff;
    float a;
    memcpy(&a, &b, sizeof a);
    return a;
}

// The 32 values of a block: x itself when n == 32, else its n values zero-padded in tmp.
static const float *block32(float *tmp, const float *x, size_t n) {
    if (n == QK8) return x;
    memset(tmp, 0, QK8 * sizeof(float));
    memcpy(tmp, x, n * sizeof(float));
    return tmp;
}

// One block of 8-bit activations: q8_quantize_block_amax's rule (the same float operations,
// four lanes at a time, so the same bits), written into separate q / d / nsum arrays.
void q8_act_block8(int8_t *q, float *d, int32_t *nsum, const float *x, size_t n) {
    float tmp[QK8];
    const float *xb = block32(tmp, x, n);
    int bad;
    float amax = amax32(xb, &bad);
    if (bad || !(amax >= Q8_TINY)) {   // honest NaN, or an all-zero block
        memset(q, 0, QK8);
        *d = bad ? NAN : 0.0f;
        *nsum = 0;
        return;
    }
    const float id = 127.0f / amax;
    const v4f magic = v4f_set(12582912.0f), vid = v4f_set(id), lim = v4f_set(127.0f);
    v4i s4 = {0, 0, 0, 0};
    for (int k = 0; k < QK8; k += 4) {
        v4f xv;
        memcpy(&xv, xb + k, sizeof xv);
        v4f v = (xv * vid + magic) - magic;   // round half even (as round_even)
        v = v4f_sel(v > lim, lim, v);         // clamp to [-127, 127]
        v = v4f_sel(v < -lim, -lim, v);
        v4i qi = __builtin_convertvector(v, v4i);
        s4 += qi;
        v4c qc = __builtin_convertvector(qi, v4c);
        memcpy(q + k, &qc, sizeof qc);
    }
    *d = amax / 127.0f;
    *nsum = -128 * (s4[0] + s4[1] + s4[2] + s4[3]);
}

void q8_act_block16(int8_t *qhi, float *dhi, int32_t *nhi, int8_t *qlo, float *dlo, int32_t *nlo,
                    const float *x, size_t n) {
    float tmp[QK8];
    const float *xb = block32(tmp, x, n);
    int bad;
    float amax = amax32(xb, &bad);
    if (bad || !(amax >= Q8_TINY)) {   // honest NaN, or an all-zero block
        memset(qhi, 0, QK8);
        memset(qlo, 0, QK8);
        *nhi = *nlo = 0;
        *dhi = *dlo = bad ? NAN : 0.0f;
        return;
    }
    // Four lanes at a time in GCC vector extensions (SSE2 / NEON, no ISA file): a prefill
    // quantizes every input row of every product, and gcc does not vectorise the scalar form.
    // Same arithmetic as one lane would do, so the bits do not depend on the ISA.  Every
    // product below is by a power of two and every value a small integer: all exact.
    const float vmax = (float)Q8_VMAX16, sc = q8_pow2_ceil(amax / vmax), id = 1.0f / sc;
    const v4f magic = v4f_set(12582912.0f), vid = v4f_set(id), vm = v4f_set(vmax), vdg = v4f_set((float)Q8_DIGIT),
              vidg = v4f_set(1.0f / (float)Q8_DIGIT), one = v4f_set(1.0f), lim = v4f_set(127.0f);
    v4i sh4 = {0, 0, 0, 0}, sl4 = {0, 0, 0, 0};
    for (int k = 0; k < QK8; k += 4) {
        v4f xv;
        memcpy(&xv, xb + k, sizeof xv);
        v4f r = xv * vid;                                 // x / s, exact
        v4f v = (r + magic) - magic;                      // round half even (as round_even)
        v = v4f_sel(v > vm, vm, v);                       // clamp to [-vmax, vmax]
        v = v4f_sel(v < -vm, -vm, v);
        v4f hk = (v * vidg + magic) - magic;              // the nearest digit
        v4f lk = v - vdg * hk;                            // in [-128, 128]
        v4i odd = (lk > lim) | (lk < -lim);               // lo = +-128: v moves by one towards r
        v4f step = v4f_sel(r > v, one, -one);
        v += (v4f)((v4i)step & odd);
        hk = (v * vidg + magic) - magic;
        lk = v - vdg * hk;
        v4i hi = __builtin_convertvector(hk, v4i), lo = __builtin_convertvector(lk, v4i);
        sh4 += hi, sl4 += lo;
        v4c ch = __builtin_convertvector(hi, v4c), cl = __builtin_convertvector(lo, v4c);
        memcpy(qhi + k, &ch, sizeof ch);
        memcpy(qlo + k, &cl, sizeof cl);
    }
    int32_t sh = sh4[0] + sh4[1] + sh4[2] + sh4[3], sl = sl4[0] + sl4[1] + sl4[2] + sl4[3];
    *dlo = sc;
    *dhi = sc * (float)Q8_DIGIT;
    *nhi = -128 * sh;
    *nlo = -128 * sl;
}

int q8_act_quantize_digits(Q8Act *A, Q8ActBuf *buf, const float *X, size_t T, size_t cols, int digits) {
    if (digits != 1 && digits != 2) return ct_error("q8: activation digits must be 1 or 2, got %d", digits);
    size_t nb = q8_nblocks(cols), D = (size_t)digits;
    if (q8_actbuf_reserve(buf, D * T * nb) != CT_OK) return CT_ERR;
    const SimdKernels *K = simd_kernels();
    for (size_t t = 0; t < T; t++) {
        size_t i = D * t * nb;   // the hi (or only) row's first block; lo is one row (nb blocks) further
        K->q8_act_row(buf->q + i * QK8, buf->d + i, buf->nsum + i, nb, X + t * cols, cols, digits);
    }
    *A = (Q8Act){buf->q, buf->d, buf->nsum, nb, D * T, digits, digits == 2};
    buf->gen++;
    return CT_OK;
}

int q8_act_quantize(Q8Act *A, Q8ActBuf *buf, const float *X, size_t T, size_t cols) {
    return q8_act_quantize_digits(A, buf, X, T, cols, 1);
}

void q8_combine_digits(float *Y, size_t ldy, const float *Y2, size_t ld2, size_t T, size_t r0, size_t r1) {
    for (size_t t = 0; t < T; t++) {
        const float *hi = Y2 + 2 * t * ld2, *lo = hi + ld2;
        float *y = Y + t * ldy;
        for (size_t r = r0; r < r1; r++) y[r] = hi[r] + lo[r];
    }
}

int q8_act_quantize_t(Q8Act *A, Q8ActBuf *buf, const float *G, size_t T, const Q8PanelsT *Wt) {
    size_t nb = Wt->nb, ng = Wt->ng, rows = Wt->rows;
    if (q8_actbuf_reserve(buf, T * nb * ng) != CT_OK) return CT_ERR;
    float v[QK8];
    for (size_t t = 0; t < T; t++)
        for (size_t b = 0; b < nb; b++) {
            const float *sc = Wt->scale + b * ng * QK8;
            const float *g = G + t * rows;
            for (size_t gi = 0; gi < ng; gi++) {
                size_t r0 = gi * QK8, n = rows - r0 < QK8 ? rows - r0 : QK8;
                for (size_t k = 0; k < n; k++) v[k] = sc[r0 + k] * g[r0 + k];
                size_t i = (t * nb + b) * ng + gi;
                q8_act_block8(buf->q + i * QK8, buf->d + i, buf->nsum + i, v, n);
            }
        }
    *A = (Q8Act){buf->q, buf->d, buf->nsum, ng, T * nb, 1, 0};
    buf->gen++;
    return CT_OK;
}

// ---- one canonical output -------------------------------------------------------------------
static float row_dot1(const Q8Panels *W, size_t r, const Q8Act *X, size_t t) {
    size_t p = r / Q8_PANEL_ROWS, i = r % Q8_PANEL_ROWS;
    float acc = 0.0f;
    for (size_t b = 0; b < W->nb; b++) {
        const uint8_t *blk = W->data + (p * W->nb + b) * Q8_PANEL_BLOCK_BYTES, *q = blk + 4 * Q8_PANEL_ROWS;
        const int8_t *x = X->q + (t * X->nb + b) * QK8;
        float dw;
        memcpy(&dw, blk + 4 * i, sizeof dw);
        int32_t s = 0;   // exact: row i's 32 values sit at q[j][i][0..3], u8 = w + 128
        for (size_t j = 0; j < 8; j++)
            for (size_t k = 0; k < 4; k++) s += ((int32_t)q[(j * Q8_PANEL_ROWS + i) * 4 + k] - 128) * x[4 * j + k];
        acc = fmaf((float)s, dw * X->d[t * X->nb + b], acc);   // simd.h: product rounded, then fused
    }
    return acc;
}

float q8_panels_row_dot(const Q8Panels *W, size_t r, const Q8Act *X, size_t t) {
    if (X->digits == 2) return row_dot1(W, r, X, 2 * t) + row_dot1(W, r, X, 2 * t + 1);
    return row_dot1(W, r, X, t);
}

// ---- panels ----------------------------------------------------------------------------------
size_t q8_panels_bytes(size_t rows, size_t cols) {
    return q8_npanels(rows) * q8_nblocks(cols) * Q8_PANEL_BLOCK_BYTES;
}

size_t q8_panels_t_bytes(size_t rows, size_t cols) {
    return q8_npanels(cols) * q8_nblocks(rows) * Q8_PANEL_QBYTES;
}

Q8Panels q8_panels_view(const void *data, size_t rows, size_t cols) {
    return (Q8Panels){(const uint8_t *)data, rows, cols, q8_nblocks(cols), q8_npanels(rows)};
}

void q8_pack_panels(uint8_t *dst, const BlockQ8 *W, size_t rows, size_t cols, size_t p0, size_t p1) {
    size_t nb = q8_nblocks(cols);
    for (size_t p = p0; p < p1; p++)
        for (size_t b = 0; b < nb; b++) {
            uint8_t *blk = dst + (p * nb + b) * Q8_PANEL_BLOCK_BYTES;
            float d[Q8_PANEL_ROWS];
            uint8_t *q = blk + sizeof d;
            for (size_t i = 0; i < Q8_PANEL_ROWS; i++) {
                size_t r = p * Q8_PANEL_ROWS + i;
                const BlockQ8 *src = r < rows ? &W[r * nb + b] : NULL;
                d[i] = src ? src->d : 0.0f;
                for (size_t j = 0; j < 8; j++)
                    for (size_t k = 0; k < 4; k++)
                        q[(j * Q8_PANEL_ROWS + i) * 4 + k] = (uint8_t)((src ? src->qs[4 * j + k] : 0) + 128);
            }
            memcpy(blk, d, sizeof d);
        }
}

int q8_quantize_pack_panels(uint8_t *dst, const float *W, size_t rows, size_t cols, size_t p0, size_t p1) {
    size_t nb = q8_nblocks(cols);
    BlockQ8 *tmp = malloc(Q8_PANEL_ROWS * nb * sizeof *tmp);   // one panel's rows
    if (!tmp) return ct_error("q8: out of memory packing a %zu x %zu matrix", rows, cols);
    for (size_t p = p0; p < p1; p++) {
        size_t r0 = p * Q8_PANEL_ROWS, n = rows - r0 < Q8_PANEL_ROWS ? rows - r0 : Q8_PANEL_ROWS;
        q8_quantize_matrix(tmp, W + r0 * cols, n, cols);
        // Pack as a matrix of n rows whose only panel is p: offset dst so panel 0 lands at p.
        q8_pack_panels(dst + p * nb * Q8_PANEL_BLOCK_BYTES, tmp, n, cols, 0, 1);
    }
    free(tmp);
    return CT_OK;
}

void q8_unpack_panels(BlockQ8 *W, const uint8_t *src, size_t rows, size_t cols) {
    size_t nb = q8_nblocks(cols);
    for (size_t r = 0; r < rows; r++)
        for (size_t b = 0; b < nb; b++) {
            size_t p = r / Q8_PANEL_ROWS, i = r % Q8_PANEL_ROWS;
            const uint8_t *blk = src + (p * nb + b) * Q8_PANEL_BLOCK_BYTES;
            const uint8_t *q = blk + 4 * Q8_PANEL_ROWS;
            BlockQ8 *o = &W[r * nb + b];
            memcpy(&o->d, blk + 4 * i, sizeof(float));
            for (size_t j = 0; j < 8; j++)
                for (size_t k = 0; k < 4; k++) o->qs[4 * j + k] = (int8_t)(q[(j * Q8_PANEL_ROWS + i) * 4 + k] - 128);
        }
}

void q8_pack_panels_t(uint8_t *dst, float *scale, const BlockQ8 *W, size_t rows, size_t cols,
                      size_t p0, size_t p1) {
    size_t nb = q8_nblocks(cols), ng = q8_nblocks(rows);
    for (size_t p = p0; p < p1; p++)
        for (size_t g = 0; g < ng; g++) {
            uint8_t *q = dst + (p * ng + g) * Q8_PANEL_QBYTES;
            for (size_t j = 0; j < 8; j++)
                for (size_t i = 0; i < Q8_PANEL_ROWS; i++)
                    for (size_t k = 0; k < 4; k++) {
                        size_t r = g * QK8 + 4 * j + k, c = p * Q8_PANEL_ROWS + i;
                        int v = r < rows && c < cols ? W[r * nb + c / QK8].qs[c % QK8] : 0;
                        q[(j * Q8_PANEL_ROWS + i) * 4 + k] = (uint8_t)(v + 128);
                    }
        }
    if (scale)
        for (size_t b = 0; b < nb; b++)
            for (size_t r = 0; r < ng * QK8; r++) scale[b * ng * QK8 + r] = r < rows ? W[r * nb + b].d : 0.0f;
}

void q8_unpack_panels_t(BlockQ8 *W, const uint8_t *src, const float *scale, size_t rows, size_t cols) {
    size_t nb = q8_nblocks(cols), ng = q8_nblocks(rows);
    for (size_t r = 0; r < rows; r++)
        for (size_t b = 0; b < nb; b++) {
            BlockQ8 *o = &W[r * nb + b];
            o->d = scale[b * ng * QK8 + r];
            for (size_t k = 0; k < QK8; k++) {
                size_t c = b * QK8 + k, p = c / Q8_PANEL_ROWS, i = c % Q8_PANEL_ROWS;
                size_t g = r / QK8, j = (r % QK8) / 4, kk = r % 4;
                o->qs[k] = c < cols ? (int8_t)(src[(p * ng + g) * Q8_PANEL_QBYTES + (j * Q8_PANEL_ROWS + i) * 4 + kk] - 128) : 0;
            }
        }
}

int q8_panels_t_build(Q8PanelsT *out, const Q8Panels *W) {
    size_t rows = W->rows, cols = W->cols, nb = q8_nblocks(cols), ng = q8_nblocks(rows);
    memset(out, 0, sizeof *out);
    size_t nbq = rows * nb + 1, nsc = nb * ng * QK8 + 1;   // + 1: never malloc(0)
    BlockQ8 *B = malloc(nbq * sizeof *B);
    uint8_t *d = NULL;
    if (posix_memalign((void **)&d, 64, q8_panels_t_bytes(rows, cols) + 64) != 0) d = NULL;
    float *sc = malloc(nsc * sizeof *sc);
    if (!B || !d || !sc) {
        free(B);
        free(d);
        free(sc);
        return ct_error("q8: out of memory for the transposed layout of a %zu x %zu matrix", rows, cols);
    }
    q8_unpack_panels(B, W->data, rows, cols);
    q8_pack_panels_t(d, sc, B, rows, cols, 0, q8_npanels(cols));
    free(B);
    *out = (Q8PanelsT){d, sc, rows, cols, nb, ng, q8_npanels(cols)};
    return CT_OK;
}

void q8_panels_t_free(Q8PanelsT *t) {
    free((void *)t->data);
    free((void *)t->scale);
    memset(t, 0, sizeof *t);
}

// ---- one-call products -----------------------------------------------------------------------
int q8_matmul(float *Y, const Q8Panels *W, const float *X, size_t T, int digits, Q8ActBuf *buf) {
    Q8Act A;
    if (q8_act_quantize_digits(&A, buf, X, T, W->cols, digits) != CT_OK) return CT_ERR;
    const SimdKernels *K = simd_kernels();
    if (T == 1) (digits == 2 ? K->matvec_q8x2 : K->matvec_q8)(Y, W, &A, 0, W->np);
    else (digits == 2 ? K->matmul_q8x2 : K->matmul_q8)(Y, W->rows, W, &A, T, 0, W->np);
    return CT_OK;
}

int q8_matmul_t(float *Y, const Q8PanelsT *Wt, const float *G, size_t T, Q8ActBuf *buf) {
    Q8Act A;
    if (q8_act_quantize_t(&A, buf, G, T, Wt) != CT_OK) return CT_ERR;
    simd_kernels()->matmul_q8t(Y, Wt->cols, Wt, &A, T, 0, Wt->np);
    return CT_OK;
}
