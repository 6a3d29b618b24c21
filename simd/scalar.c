// scalar.c — the reference for every SimdKernels entry.
//
// Plain C loops in llama2.c run.c's order of operations: one float accumulator summed left
// to right, no fused multiply-add (the build uses -ffp-contract=off), libm expf.  The engine
// on the scalar table therefore reproduces llama2.c's logits bit for bit, and every vector
// table is tested against these loops (and against a double-precision reference).
#include <math.h>
#include <string.h>

#include "simd/simd.h"

// sum_i a[i]*b[i], sequential float accumulation (run.c matmul: val += w[i*n+j] * x[j]).
static float dot_f32_scalar(const float *a, const float *b, size_t n)
{
    float val = 0.0f;
    for (size_t i = 0; i < n; i++) val += a[i] * b[i];
    return val;
}

// y[r] = dot(W row r, x).  Calls the dot loop itself, so rows are bit-identical to dot_f32.
static void matvec_f32_scalar(float *y, const float *W, const float *x, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) y[r] = dot_f32_scalar(W + r * cols, x, cols);
}

// Y (T, rows) = X (T, cols) . W^T.  Rows outer so one weight row stays in L1 for all tokens.
static void matmul_f32_scalar(float *Y, const float *W, const float *X, size_t T, size_t rows,
                              size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        const float *w = W + r * cols;
        for (size_t t = 0; t < T; t++) Y[t * rows + r] = dot_f32_scalar(w, X + t * cols, cols);
    }
}

// run.c rmsnorm: ss = sum x^2; ss /= n; ss += eps; ss = 1/sqrtf(ss); o = w * (ss * x).
// The sum of squares is computed before any write, so out may alias x.
static float rmsnorm_f32_scalar(float *out, const float *x, const float *w, size_t n, float eps)
{
    if (n == 0) return 0.0f;
    float ss = dot_f32_scalar(x, x, n);
    ss /= (float)n;
    ss += eps;
    ss = 1.0f / sqrtf(ss);
    if (w) {
        for (size_t j = 0; j < n; j++) out[j] = w[j] * (ss * x[j]);
    } else {
        for (size_t j = 0; j < n; j++) out[j] = ss * x[j];
    }
    return ss;
}

// run.c softmax: max; x = expf(x - max) with a running sum; then divide each by the sum.
static void softmax_f32_scalar(float *x, size_t n)
{
    if (n == 0) return;
    float max_val = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > max_val) max_val = x[i];
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max_val);
        sum += x[i];
    }
    for (size_t i = 0; i < n; i++) x[i] /= sum;
}

// run.c SwiGLU: val *= 1/(1 + expf(-val)); val *= u.
static void swiglu_f32_scalar(float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float val = g[i];
        val *= (1.0f / (1.0f + expf(-val)));
        val *= u[i];
        g[i] = val;
    }
}

// run.c RoPE: (v0, v1) -> (v0*fcr - v1*fci, v0*fci + v1*fcr).
static void rope_pairs_f32_scalar(float *x, const float *c, const float *s, size_t npairs)
{
    for (size_t i = 0; i < npairs; i++) {
        float v0 = x[2 * i], v1 = x[2 * i + 1];
        float fcr = c[i], fci = s[i];
        x[2 * i] = v0 * fcr - v1 * fci;
        x[2 * i + 1] = v0 * fci + v1 * fcr;
    }
}

// y += a*x, product rounded then sum rounded (no fma).
static void axpy_f32_scalar(float *y, float a, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

// Y[t, r] = dot(X row t, W row r), rows a stride apart: the dot loop itself, as matmul.
static void dots_f32_scalar(float *Y, size_t ldy, const float *X, size_t ldx, size_t T, const float *W, size_t ldw,
                            size_t rows, size_t cols)
{
    for (size_t t = 0; t < T; t++)
        for (size_t r = 0; r < rows; r++) Y[t * ldy + r] = dot_f32_scalar(X + t * ldx, W + r * ldw, cols);
}

// k axpys in order, per row.
static void axpys_f32_scalar(float *Y, size_t ldy, const float *A, size_t lda, size_t T, const float *X, size_t ldx,
                             size_t k, size_t n)
{
    for (size_t t = 0; t < T; t++)
        for (size_t s = 0; s < k; s++) axpy_f32_scalar(Y + t * ldy, A[t * lda + s], X + s * ldx, n);
}

// Per row, k steps in order: y += c x elementwise, product rounded then sum rounded.
static void axpyv_f32_scalar(float *const *Y, size_t T, const float *C, size_t ldt, size_t lds, const float *const *X,
                             size_t k, size_t n)
{
    for (size_t t = 0; t < T; t++)
        for (size_t s = 0; s < k; s++)
            for (size_t i = 0; i < n; i++) Y[t][i] += C[s * lds + t * ldt + i] * X[s][i];
}

static void scale_f32_scalar(float *y, float a, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = a * x[i];
}

// ---- int8: the canonical loops of simd.h, one output at a time ------------------------------
// Packed panel p, block b: 16 float scales, then q[j][i][k] (u8 = w + 128) for row i, column
// 4j + k of the block.
static inline int32_t isum_panel_q8(const uint8_t *q, size_t i, const int8_t *x)
{
    int32_t s = 0;
    for (size_t j = 0; j < 8; j++)
        for (size_t k = 0; k < 4; k++) s += ((int32_t)q[(j * 16 + i) * 4 + k] - 128) * x[4 * j + k];
    return s;
}

// canonical(r, t) of simd.h for row i of panel p.
static float out_q8_scalar(const Q8Panels *W, const Q8Act *X, size_t p, size_t i, size_t t)
{
    float acc = 0.0f;
    for (size_t b = 0; b < W->nb; b++) {
        const uint8_t *blk = W->data + (p * W->nb + b) * Q8_PANEL_BLOCK_BYTES;
        float dw;
        memcpy(&dw, blk + 4 * i, sizeof dw);
        int32_t s = isum_panel_q8(blk + 64, i, X->q + (t * X->nb + b) * QK8);
        acc = fmaf((float)s, dw * X->d[t * X->nb + b], acc);
    }
    return acc;
}

static void matmul_q8_scalar(float *Y, size_t ldy, const Q8Panels *W, const Q8Act *X, size_t T, size_t p0,
                             size_t p1)
{
    for (size_t p = p0; p < p1; p++)
        for (size_t i = 0; i < 16 && p * 16 + i < W->rows; i++)
            for (size_t t = 0; t < T; t++) Y[t * ldy + p * 16 + i] = out_q8_scalar(W, X, p, i, t);
}

static void matvec_q8_scalar(float *y, const Q8Panels *W, const Q8Act *x, size_t p0, size_t p1)
{
    matmul_q8_scalar(y, 0, W, x, 1, p0, p1);
}

static void matvec_q8x2_scalar(float *y, const Q8Panels *W, const Q8Act *x, size_t p0, size_t p1)
{
    for (size_t p = p0; p < p1; p++)
        for (size_t i = 0; i < 16 && p * 16 + i < W->rows; i++)
            y[p * 16 + i] = out_q8_scalar(W, x, p, i, 0) + out_q8_scalar(W, x, p, i, 1);
}

static void matmul_q8x2_scalar(float *Y, size_t ldy, const Q8Panels *W, const Q8Act *X, size_t T, size_t p0,
                               size_t p1)
{
    for (size_t p = p0; p < p1; p++)
        for (size_t i = 0; i < 16 && p * 16 + i < W->rows; i++)
            for (size_t t = 0; t < T; t++)
                Y[t * ldy + p * 16 + i] = out_q8_scalar(W, X, p, i, 2 * t) + out_q8_scalar(W, X, p, i, 2 * t + 1);
}

static void matmul_q8t_scalar(float *Y, size_t ldy, const Q8PanelsT *Wt, const Q8Act *V, size_t T, size_t p0,
                              size_t p1)
{
    for (size_t p = p0; p < p1; p++)
        for (size_t i = 0; i < 16 && p * 16 + i < Wt->cols; i++) {
            size_t c = p * 16 + i, b = c / QK8;
            for (size_t t = 0; t < T; t++) {
                size_t u = t * Wt->nb + b;
                float acc = 0.0f;
                for (size_t g = 0; g < Wt->ng; g++) {
                    int32_t s = isum_panel_q8(Wt->data + (p * Wt->ng + g) * Q8_PANEL_QBYTES, i,
                                              V->q + (u * V->nb + g) * QK8);
                    acc = fmaf((float)s, V->d[u * V->nb + g], acc);
                }
                Y[t * ldy + c] = acc;
            }
        }
}

static void encode_q8_scalar(float *pre, float *act, size_t ld, const Q8Panels *W, const Q8Act *X, size_t T,
                             size_t p0, size_t p1, const float *bias, const float *theta)
{
    for (size_t p = p0; p < p1; p++)
        for (size_t i = 0; i < 16 && p * 16 + i < W->rows; i++) {
            size_t r = p * 16 + i;
            float th = theta ? theta[r] : 0.0f;
            for (size_t t = 0; t < T; t++) {
                float h = out_q8_scalar(W, X, p, i, t) + bias[r];
                if (pre) pre[t * ld + r] = h;
                act[t * ld + r] = simd_jump_act(h, th);
            }
        }
}

static void decode_rows_q8_scalar(float *y, const BlockQ8 *W, size_t stride, const int *idx, const float *val,
                                  size_t n, size_t D)
{
    for (size_t i = 0; i < n; i++) {
        const BlockQ8 *row = W + (size_t)idx[i] * stride;
        for (size_t d = 0; d < D; d++) {
            float s = val[i] * row[d / QK8].d;
            y[d] = y[d] + s * (float)row[d / QK8].qs[d % QK8];
        }
    }
}

// Block by block with quant/q8.c's reference functions.
static void q8_act_row_scalar(int8_t *q, float *d, int32_t *nsum, size_t lo, const float *x, size_t cols, int digits)
{
    size_t nb = q8_nblocks(cols);
    for (size_t b = 0; b < nb; b++) {
        size_t n = cols - b * QK8 < QK8 ? cols - b * QK8 : QK8;
        if (digits == 1) q8_act_block8(q + b * QK8, d + b, nsum + b, x + b * QK8, n);
        else
            q8_act_block16(q + b * QK8, d + b, nsum + b, q + (lo + b) * QK8, d + lo + b, nsum + lo + b, x + b * QK8, n);
    }
}

// ---- bf16 weights ------------------------------------------------------------------------------
// bf16 -> fp32: the 16 bits are the upper half of the fp32 (exact).
static inline float bf16_widen(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// y[r] = dot_f32_scalar(widen(W row r), x): the same sequential loop on the widened weights.
static float dot_bf16w_scalar(const uint16_t *w, const float *x, size_t n)
{
    float val = 0.0f;
    for (size_t i = 0; i < n; i++) val += bf16_widen(w[i]) * x[i];
    return val;
}

static void matvec_bf16w_scalar(float *y, const uint16_t *W, const float *x, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) y[r] = dot_bf16w_scalar(W + r * cols, x, cols);
}

static void matmul_bf16w_scalar(float *Y, const uint16_t *W, const float *X, size_t T, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t t = 0; t < T; t++) Y[t * rows + r] = dot_bf16w_scalar(W + r * cols, X + t * cols, cols);
}

// fp32 -> bf16 as VCVTNE2PS2BF16 does it: NaN stays a (quiet) NaN, a denormal becomes a signed
// zero, anything else rounds to nearest even (the largest finite values round to Inf).
static inline uint16_t bf16_round_daz(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// VDPBF16PS reads bf16 denormals as signed zeros (DAZ) and flushes denormal sums (FTZ).
static inline float bf16_widen_daz(uint16_t h) { return bf16_widen((h & 0x7f80u) ? h : (uint16_t)(h & 0x8000u)); }
static inline float ftz(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
    memcpy(&v, &u, sizeof v);
    return v;
}

// The canonical bf16dot value of simd.h for one weight row and one activation row.
static float dot_bf16dot_scalar(const uint16_t *w, const float *x, size_t n)
{
    float a[2][16] = {{0}};
    size_t nchunk = (n + 31) / 32;
    for (size_t j = 0; j < nchunk; j++) {
        float *acc = a[j % 2];
        for (size_t i = 0; i < 16; i++) {
            size_t c = 32 * j + 2 * i;
            // padding: zero weight and zero activation, so the product is +0
            float w0 = c < n ? bf16_widen_daz(w[c]) : 0.0f, x0 = c < n ? bf16_widen_daz(bf16_round_daz(x[c])) : 0.0f;
            float w1 = c + 1 < n ? bf16_widen_daz(w[c + 1]) : 0.0f;
            float x1 = c + 1 < n ? bf16_widen_daz(bf16_round_daz(x[c + 1])) : 0.0f;
            acc[i] = ftz(acc[i] + w1 * x1);   // odd element first, as the instruction does
            acc[i] = ftz(acc[i] + w0 * x0);
        }
    }
    float v[16];
    for (size_t i = 0; i < 16; i++) v[i] = a[0][i] + a[1][i];
    for (size_t h = 8; h >= 1; h /= 2)   // 16 -> 8 -> 4 -> 2 -> 1: lane i += lane i + h
        for (size_t i = 0; i < h; i++) v[i] = v[i] + v[i + h];
    return v[0];
}

static void matvec_bf16dot_scalar(float *y, const uint16_t *W, const float *x, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) y[r] = dot_bf16dot_scalar(W + r * cols, x, cols);
}

static void matmul_bf16dot_scalar(float *Y, const uint16_t *W, const float *X, size_t T, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t t = 0; t < T; t++) Y[t * rows + r] = dot_bf16dot_scalar(W + r * cols, X + t * cols, cols);
}

void simd_fill_scalar(SimdKernels *k)
{
    k->name = "scalar";
    k->dot_f32 = dot_f32_scalar;
    k->matvec_f32 = matvec_f32_scalar;
    k->matmul_f32 = matmul_f32_scalar;
    k->rmsnorm_f32 = rmsnorm_f32_scalar;
    k->softmax_f32 = softmax_f32_scalar;
    k->swiglu_f32 = swiglu_f32_scalar;
    k->rope_pairs_f32 = rope_pairs_f32_scalar;
    k->axpy_f32 = axpy_f32_scalar;
    k->scale_f32 = scale_f32_scalar;
    k->dots_f32 = dots_f32_scalar;
    k->axpys_f32 = axpys_f32_scalar;
    k->axpyv_f32 = axpyv_f32_scalar;
    k->q8_act_row = q8_act_row_scalar;
    k->matvec_q8 = matvec_q8_scalar;
    k->matvec_q8x2 = matvec_q8x2_scalar;
    k->matmul_q8 = matmul_q8_scalar;
    k->matmul_q8x2 = matmul_q8x2_scalar;
    k->matmul_q8t = matmul_q8t_scalar;
    k->encode_q8 = encode_q8_scalar;
    k->decode_rows_q8 = decode_rows_q8_scalar;
    k->matvec_bf16w = matvec_bf16w_scalar;
    k->matmul_bf16w = matmul_bf16w_scalar;
    k->matvec_bf16dot = matvec_bf16dot_scalar;
    k->matmul_bf16dot = matmul_bf16dot_scalar;
}
