// arm_neon.c — AArch64 Advanced SIMD (NEON) kernels.  NEON is part of the AArch64 base
// architecture, so dispatch.c always uses this table on aarch64.
//
// One canonical reduction order serves dot, matvec and matmul, so every row of matvec and
// every (token, row) of matmul is bit-identical to dot_f32_neon (see simd.h):
//   four 4-lane accumulators a0..a3 step over 16 floats (a_k gets c+4k..c+4k+3, fused
//   multiply-add); further 4-float chunks go to a0; then (a0 + a1) + (a2 + a3), the
//   pairwise across-lane add (vaddvq), and the last <4 floats added one by one (s += a*b,
//   not fused).  matvec/matmul only run several of these dot products side by side.
#if defined(__aarch64__)
#include <arm_neon.h>
#include <math.h>
#include <sleef.h>
#include <string.h>

#include "simd/simd.h"

#define AI static inline __attribute__((always_inline))

// ref: scalar.c dot_f32_scalar (per output).  An R-row x TT-token tile of dot products
// Y[t*ldy + r] = dot(W + r*ldw, X + t*ldx, cols) in the canonical order; R, TT are constants
// at every call site so the R*TT*4 accumulators stay in the 32 q registers.
AI void tile_neon(const int R, const int TT, float *Y, size_t ldy, const float *W, size_t ldw,
                  const float *X, size_t ldx, size_t cols)
{
    float32x4_t acc[4][2][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++)
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) acc[r][t][k] = vdupq_n_f32(0.0f);

    size_t c = 0;
    for (; c + 16 <= cols; c += 16) {
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            float32x4_t xv[2];
#pragma GCC unroll 2
            for (int t = 0; t < TT; t++) xv[t] = vld1q_f32(X + t * ldx + c + 4 * k);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                float32x4_t wv = vld1q_f32(W + r * ldw + c + 4 * k);
#pragma GCC unroll 2
                for (int t = 0; t < TT; t++) acc[r][t][k] = vfmaq_f32(acc[r][t][k], wv, xv[t]);
            }
        }
    }
    for (; c + 4 <= cols; c += 4) {   // up to three 4-float chunks: into a0
        float32x4_t xv[2];
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) xv[t] = vld1q_f32(X + t * ldx + c);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            float32x4_t wv = vld1q_f32(W + r * ldw + c);
#pragma GCC unroll 2
            for (int t = 0; t < TT; t++) acc[r][t][0] = vfmaq_f32(acc[r][t][0], wv, xv[t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) {
            float32x4_t v = vaddq_f32(vaddq_f32(acc[r][t][0], acc[r][t][1]),
                                      vaddq_f32(acc[r][t][2], acc[r][t][3]));
            float s = vaddvq_f32(v);
            const float *w = W + r * ldw, *x = X + t * ldx;
            for (size_t j = c; j < cols; j++) s += w[j] * x[j];   // < 4 left
            Y[t * ldy + r] = s;
        }
}

// ref: scalar.c dot_f32_scalar.  A 1x1 tile.
static float dot_f32_neon(const float *a, const float *b, size_t n)
{
    float y;
    tile_neon(1, 1, &y, 0, a, 0, b, 0, n);
    return y;
}

// ref: scalar.c dots_f32_scalar.  2 x 2 register tiles (keys x queries), the leftover query in
// 4 x 1; no cache blocking (a block of keys is small).  matvec and matmul (per block of rows)
// run through it, so their rows keep the same tiles.
static void dots_f32_neon(float *Y, size_t ldy, const float *X, size_t ldx, size_t T, const float *W, size_t ldw,
                          size_t rows, size_t cols)
{
    size_t t = 0;
    for (; t + 2 <= T; t += 2) {
        size_t r = 0;
        for (; r + 2 <= rows; r += 2) tile_neon(2, 2, Y + t * ldy + r, ldy, W + r * ldw, ldw, X + t * ldx, ldx, cols);
        for (; r < rows; r++) tile_neon(1, 2, Y + t * ldy + r, ldy, W + r * ldw, ldw, X + t * ldx, ldx, cols);
    }
    for (; t < T; t++) {
        size_t r = 0;
        for (; r + 4 <= rows; r += 4) tile_neon(4, 1, Y + t * ldy + r, 0, W + r * ldw, ldw, X + t * ldx, 0, cols);
        for (; r < rows; r++) tile_neon(1, 1, Y + t * ldy + r, 0, W + r * ldw, ldw, X + t * ldx, 0, cols);
    }
}

// ref: scalar.c matvec_f32_scalar.  4 rows at a time share each x load (16 FMA chains).
static void matvec_f32_neon(float *y, const float *W, const float *x, size_t rows, size_t cols)
{
    dots_f32_neon(y, 0, x, 0, 1, W, cols, rows, cols);
}

// ref: scalar.c matmul_f32_scalar.  A block of RB weight rows (~256 KiB) is swept by every
// 2-token tile of X; inside, 2x2 register tiles (16 accumulators; 2x3 made gcc spill).
static void matmul_f32_neon(float *Y, const float *W, const float *X, size_t T, size_t rows,
                            size_t cols)
{
    if (T == 1) {
        matvec_f32_neon(Y, W, X, rows, cols);
        return;
    }
    size_t rb = cols ? (64 * 1024) / cols : rows;
    rb = rb < 2 ? 2 : rb & ~(size_t)1;
    for (size_t r0 = 0; r0 < rows; r0 += rb) {
        size_t r1 = r0 + rb < rows ? r0 + rb : rows;
        dots_f32_neon(Y + r0, rows, X, cols, T, W + r0 * cols, cols, r1 - r0, cols);
    }
}

// ref: scalar.c rmsnorm_f32_scalar.  Sum of squares is this table's dot(x, x); the scalar
// steps and the per-element w * (inv * x) are the reference's, so only the sum differs.
static float rmsnorm_f32_neon(float *out, const float *x, const float *w, size_t n, float eps)
{
    if (n == 0) return 0.0f;
    float ss = dot_f32_neon(x, x, n);
    ss /= (float)n;
    ss += eps;
    ss = 1.0f / sqrtf(ss);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vmulq_n_f32(vld1q_f32(x + i), ss);
        if (w) v = vmulq_f32(vld1q_f32(w + i), v);
        vst1q_f32(out + i, v);
    }
    for (; i < n; i++) out[i] = w ? w[i] * (ss * x[i]) : ss * x[i];
    return ss;
}

// ref: scalar.c softmax_f32_scalar.  Vector max, SLEEF expf (1 ulp) — the <4 tail goes through
// a zero-padded copy so every element sees the same exp — one running sum, exact division.
static void softmax_f32_neon(float *x, size_t n)
{
    if (n == 0) return;
    float32x4_t vmax = vdupq_n_f32(x[0]);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vmax = vmaxq_f32(vmax, vld1q_f32(x + i));
    float mx = vmaxvq_f32(vmax);
    for (; i < n; i++)
        if (x[i] > mx) mx = x[i];
    float32x4_t vmx = vdupq_n_f32(mx);
    float32x4_t sum = vdupq_n_f32(0.0f);
    for (i = 0; i + 4 <= n; i += 4) {
        float32x4_t e = Sleef_expf4_u10advsimd(vsubq_f32(vld1q_f32(x + i), vmx));
        vst1q_f32(x + i, e);
        sum = vaddq_f32(sum, e);
    }
    if (i < n) {
        float buf[4] = {mx, mx, mx, mx};   // padding lanes give exp(0) = 1 and are dropped
        memcpy(buf, x + i, (n - i) * sizeof(float));
        float32x4_t e = Sleef_expf4_u10advsimd(vsubq_f32(vld1q_f32(buf), vmx));
        vst1q_f32(buf, e);
        memcpy(x + i, buf, (n - i) * sizeof(float));
        float32x4_t keep = vreinterpretq_f32_u32(vcltq_u32(
            (uint32x4_t){0, 1, 2, 3}, vdupq_n_u32((uint32_t)(n - i))));
        sum = vaddq_f32(sum, vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(e),
                                                               vreinterpretq_u32_f32(keep))));
    }
    float s = vaddvq_f32(sum);
    float32x4_t vs = vdupq_n_f32(s);
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vdivq_f32(vld1q_f32(x + i), vs));
    for (; i < n; i++) x[i] /= s;
}

// One 4-lane SwiGLU step in the reference order: g * (1 / (1 + exp(-g))) * u.
AI float32x4_t swiglu4(float32x4_t g, float32x4_t u)
{
    float32x4_t one = vdupq_n_f32(1.0f);
    float32x4_t e = Sleef_expf4_u10advsimd(vnegq_f32(g));
    float32x4_t sig = vdivq_f32(one, vaddq_f32(one, e));
    return vmulq_f32(vmulq_f32(g, sig), u);
}

// ref: scalar.c swiglu_f32_scalar.  SLEEF expf; the tail through a zero-padded copy.
static void swiglu_f32_neon(float *g, const float *u, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(g + i, swiglu4(vld1q_f32(g + i), vld1q_f32(u + i)));
    if (i < n) {
        float gb[4] = {0}, ub[4] = {0};
        memcpy(gb, g + i, (n - i) * sizeof(float));
        memcpy(ub, u + i, (n - i) * sizeof(float));
        vst1q_f32(gb, swiglu4(vld1q_f32(gb), vld1q_f32(ub)));
        memcpy(g + i, gb, (n - i) * sizeof(float));
    }
}

// ref: scalar.c rope_pairs_f32_scalar.  4 pairs per step: vld2 de-interleaves (v0s, v1s),
// the reference's rounded products and add/sub per lane, vst2 re-interleaves; bit-identical.
static void rope_pairs_f32_neon(float *x, const float *c, const float *s, size_t npairs)
{
    size_t i = 0;
    for (; i + 4 <= npairs; i += 4) {
        float32x4x2_t v = vld2q_f32(x + 2 * i);
        float32x4_t cc = vld1q_f32(c + i), ss = vld1q_f32(s + i);
        float32x4x2_t o;
        o.val[0] = vsubq_f32(vmulq_f32(v.val[0], cc), vmulq_f32(v.val[1], ss));
        o.val[1] = vaddq_f32(vmulq_f32(v.val[0], ss), vmulq_f32(v.val[1], cc));
        vst2q_f32(x + 2 * i, o);
    }
    for (; i < npairs; i++) {
        float v0 = x[2 * i], v1 = x[2 * i + 1];
        x[2 * i] = v0 * c[i] - v1 * s[i];
        x[2 * i + 1] = v0 * s[i] + v1 * c[i];
    }
}

// ref: scalar.c axpy_f32_scalar.  Multiply then add (not fused), like the reference.
static void axpy_f32_neon(float *y, float a, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vmulq_n_f32(vld1q_f32(x + i), a)));
    for (; i < n; i++) y[i] += a * x[i];
}

// TT rows of axpys_f32 over 4 * NV floats of Y: the rows' sums stay in registers over all k
// steps and each value vector is loaded once for the TT rows.  A multiply, then an add, neither
// fused: axpy_f32's bits.
AI void axpys_tile_neon(const int TT, const int NV, float *Y, size_t ldy, const float *A, size_t lda,
                        const float *X, size_t ldx, size_t k)
{
    float32x4_t acc[4][4];
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[t][v] = vld1q_f32(Y + t * ldy + 4 * v);
    for (size_t s = 0; s < k; s++, X += ldx) {
        float32x4_t x[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) x[v] = vld1q_f32(X + 4 * v);
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++) {
            float a = A[t * lda + s];
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[t][v] = vaddq_f32(acc[t][v], vmulq_n_f32(x[v], a));
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) vst1q_f32(Y + t * ldy + 4 * v, acc[t][v]);
}

// ref: scalar.c axpys_f32_scalar.  Rows 4 at a time, 16 floats at a time, then 4, then the
// last floats one by one.
static void axpys_f32_neon(float *Y, size_t ldy, const float *A, size_t lda, size_t T, const float *X, size_t ldx,
                           size_t k, size_t n)
{
    for (size_t t = 0; t < T; t += 4) {
        size_t tt = T - t < 4 ? T - t : 4;
        float *Yt = Y + t * ldy;
        const float *At = A + t * lda;
        size_t i = 0;
        for (; i + 16 <= n; i += 16) {
            if (tt == 4) axpys_tile_neon(4, 4, Yt + i, ldy, At, lda, X + i, ldx, k);
            else if (tt == 3) axpys_tile_neon(3, 4, Yt + i, ldy, At, lda, X + i, ldx, k);
            else if (tt == 2) axpys_tile_neon(2, 4, Yt + i, ldy, At, lda, X + i, ldx, k);
            else axpys_tile_neon(1, 4, Yt + i, ldy, At, lda, X + i, ldx, k);
        }
        for (; i + 4 <= n; i += 4) {
            if (tt == 4) axpys_tile_neon(4, 1, Yt + i, ldy, At, lda, X + i, ldx, k);
            else if (tt == 3) axpys_tile_neon(3, 1, Yt + i, ldy, At, lda, X + i, ldx, k);
            else if (tt == 2) axpys_tile_neon(2, 1, Yt + i, ldy, At, lda, X + i, ldx, k);
            else axpys_tile_neon(1, 1, Yt + i, ldy, At, lda, X + i, ldx, k);
        }
        for (size_t u = 0; u < tt; u++)
            for (size_t j = i; j < n; j++) {
                float v = Yt[u * ldy + j];
                for (size_t s = 0; s < k; s++) v += At[u * lda + s] * X[s * ldx + j];
                Yt[u * ldy + j] = v;
            }
    }
}

// ref: scalar.c axpyv_f32_scalar.  4 floats at a time, rows 8 at a time: their sums stay in
// registers over the k steps, each X vector loaded once for the 8 rows; the last floats one by
// one.  Multiply then add (vmulq, vaddq: not fused).
AI void axpyv_tile_neon(const int TT, float *const *Y, size_t i, const float *C, size_t ldt, size_t lds,
                        const float *const *X, size_t k)
{
    float32x4_t acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) acc[t] = vld1q_f32(Y[t] + i);
    for (size_t s = 0; s < k; s++) {
        float32x4_t x = vld1q_f32(X[s] + i);
        const float *c = C + s * lds + i;
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++) acc[t] = vaddq_f32(acc[t], vmulq_f32(vld1q_f32(c + t * ldt), x));
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) vst1q_f32(Y[t] + i, acc[t]);
}
static void axpyv_f32_neon(float *const *Y, size_t T, const float *C, size_t ldt, size_t lds, const float *const *X,
                           size_t k, size_t n)
{
    for (size_t t = 0; t < T; t += 8, C += 8 * ldt) {
        size_t tt = T - t < 8 ? T - t : 8, i = 0;
        for (; i + 4 <= n; i += 4) {
            switch (tt) {
            case 8: axpyv_tile_neon(8, Y + t, i, C, ldt, lds, X, k); break;
            case 7: axpyv_tile_neon(7, Y + t, i, C, ldt, lds, X, k); break;
            case 6: axpyv_tile_neon(6, Y + t, i, C, ldt, lds, X, k); break;
            case 5: axpyv_tile_neon(5, Y + t, i, C, ldt, lds, X, k); break;
            case 4: axpyv_tile_neon(4, Y + t, i, C, ldt, lds, X, k); break;
            case 3: axpyv_tile_neon(3, Y + t, i, C, ldt, lds, X, k); break;
            case 2: axpyv_tile_neon(2, Y + t, i, C, ldt, lds, X, k); break;
            default: axpyv_tile_neon(1, Y + t, i, C, ldt, lds, X, k); break;
            }
        }
        for (size_t u = 0; u < tt; u++)
            for (size_t j = i; j < n; j++) {
                float v = Y[t + u][j];
                for (size_t s = 0; s < k; s++) v += C[s * lds + u * ldt + j] * X[s][j];
                Y[t + u][j] = v;
            }
    }
}

// ref: scalar.c scale_f32_scalar.
static void scale_f32_neon(float *y, float a, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_n_f32(vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] = a * x[i];
}

// ---- int8: sdot (Armv8.2 dot product, built with +dotprod) --------------------------------
// Packed panels hold u8 = w + 128; xor 0x80 gives the signed weight back, and sdot adds four
// s8 x s8 products into each int32 lane (a lane = one row, 4 rows per q register).  The
// block's isum is exact and the float steps are simd.h's canonical ones (vfmaq == fmaf), so
// results equal scalar.c's.
#if defined(__ARM_FEATURE_DOTPROD)
typedef struct Q8Tile {
    const uint8_t *w;
    size_t pstride, bstride, qoff;   // bytes per panel, per block, offset of quants in a block
    int lane_scales;                 // 16 float scales lead each block (0: transposed layout)
    size_t nblk;
    const Q8Act *x;
    size_t xrow0, xstep;             // activation row of token t: xrow0 + t * xstep
    float *Y;
    size_t ldy, nout;
    float *pre;
    const float *bias, *theta;
    int stream;                      // decode: prefetch the panel stream ahead
    int sum2;                        // TT == 2 tile of digit rows 2u, 2u+1 (t0 = 2u): store their sum as token u
} Q8Tile;

// 16 output lanes at o: vector store when all are valid, else lane by lane; the encoder
// epilogue (bias, threshold) in scalar form, which is exactly scalar.c's.
AI void q8_store16(const Q8Tile *a, size_t t, size_t o, const float32x4_t v[4])
{
    float tmp[16];
    for (int h = 0; h < 4; h++) vst1q_f32(tmp + 4 * h, v[h]);
    size_t n = a->nout - o < 16 ? a->nout - o : 16;
    float *y = a->Y + t * a->ldy + o;
    if (a->bias) {
        for (size_t i = 0; i < n; i++) {
            float h = tmp[i] + a->bias[o + i], th = a->theta ? a->theta[o + i] : 0.0f;
            if (a->pre) a->pre[t * a->ldy + o + i] = h;
            y[i] = simd_jump_act(h, th);
        }
    } else if (n == 16) {
        for (int h = 0; h < 4; h++) vst1q_f32(y + 4 * h, v[h]);
    } else {
        memcpy(y, tmp, n * sizeof(float));
    }
}

// ref: scalar.c out_q8_scalar.  One panel (four 4-row quarters) x TT tokens over every block.
AI void tile_q8_neon(const int TT, const Q8Tile *a, size_t p, size_t t0)
{
    const uint8x16_t flip = vdupq_n_u8(0x80);
    float32x4_t acc[2][4];
#pragma GCC unroll 2
    for (int t = 0; t < TT; t++)
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++) acc[t][h] = vdupq_n_f32(0.0f);
    const Q8Act *x = a->x;
    const uint8_t *wp = a->w + p * a->pstride;
    size_t xr[2];
#pragma GCC unroll 2
    for (int t = 0; t < TT; t++) xr[t] = (a->xrow0 + (t0 + t) * a->xstep) * x->nb;
    for (size_t b = 0; b < a->nblk; b++, wp += a->bstride) {
        if (a->stream) __builtin_prefetch(wp + 16 * a->bstride);   // decode: stream ahead
        int32x4_t ia[2][4];
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++)
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++) ia[t][h] = vdupq_n_s32(0);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            int8x16_t w[4];
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++)
                w[h] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(wp + a->qoff + 64 * j + 16 * h), flip));
#pragma GCC unroll 2
            for (int t = 0; t < TT; t++) {
                int32_t x4;
                memcpy(&x4, x->q + (xr[t] + b) * 32 + 4 * j, 4);
                int8x16_t xb = vreinterpretq_s8_s32(vdupq_n_s32(x4));   // 4 activation bytes to every lane
#pragma GCC unroll 4
                for (int h = 0; h < 4; h++) ia[t][h] = vdotq_s32(ia[t][h], w[h], xb);
            }
        }
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++) {
            float32x4_t sw = a->lane_scales ? vld1q_f32((const float *)wp + 4 * h) : vdupq_n_f32(1.0f);
#pragma GCC unroll 2
            for (int t = 0; t < TT; t++) {
                float32x4_t dx = vdupq_n_f32(x->d[xr[t] + b]);
                float32x4_t sc = a->lane_scales ? vmulq_f32(sw, dx) : dx;
                acc[t][h] = vfmaq_f32(acc[t][h], vcvtq_f32_s32(ia[t][h]), sc);
            }
        }
    }
    if (TT == 2 && a->sum2) {   // matvec_q8x2 / matmul_q8x2: the two digit rows' canonical values, summed
        float32x4_t s[4];
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++) s[h] = vaddq_f32(acc[0][h], acc[1][h]);
        q8_store16(a, t0 / 2, p * 16, s);
        return;
    }
#pragma GCC unroll 2
    for (int t = 0; t < TT; t++) q8_store16(a, t0 + t, p * 16, acc[t]);
}

// Every panel in [p0, p1) against every token, two tokens per tile.  Transposed: panel p
// reads column block p/2.
static void panels_q8_neon(const Q8Tile *a, size_t T, size_t p0, size_t p1, int transposed)
{
    Q8Tile b = *a;
    for (size_t p = p0; p < p1; p++) {
        if (transposed) b.xrow0 = p / 2;
        size_t t = 0;
        for (; t + 2 <= T; t += 2) tile_q8_neon(2, &b, p, t);
        if (t < T) tile_q8_neon(1, &b, p, t);
    }
}

static Q8Tile tile_fwd(const Q8Panels *W, const Q8Act *X, float *Y, size_t ldy)
{
    return (Q8Tile){.w = W->data, .pstride = W->nb * Q8_PANEL_BLOCK_BYTES, .bstride = Q8_PANEL_BLOCK_BYTES,
                    .qoff = 64, .lane_scales = 1, .nblk = W->nb, .x = X, .xrow0 = 0, .xstep = 1, .Y = Y,
                    .ldy = ldy, .nout = W->rows};
}

// ref: scalar.c matmul_q8_scalar.
static void matmul_q8_neon(float *Y, size_t ldy, const Q8Panels *W, const Q8Act *X, size_t T, size_t p0,
                           size_t p1)
{
    Q8Tile a = tile_fwd(W, X, Y, ldy);
    panels_q8_neon(&a, T, p0, p1, 0);
}

// ref: scalar.c matvec_q8_scalar.  Panels one after another: one sequential stream.
static void matvec_q8_neon(float *y, const Q8Panels *W, const Q8Act *x, size_t p0, size_t p1)
{
    Q8Tile a = tile_fwd(W, x, y, 0);
    a.stream = 1;
    panels_q8_neon(&a, 1, p0, p1, 0);
}

// ref: scalar.c matvec_q8x2_scalar.  The two digit rows as one 2-token tile per panel.
static void matvec_q8x2_neon(float *y, const Q8Panels *W, const Q8Act *x, size_t p0, size_t p1)
{
    Q8Tile a = tile_fwd(W, x, y, 0);
    a.stream = a.sum2 = 1;
    for (size_t p = p0; p < p1; p++) tile_q8_neon(2, &a, p, 0);
}

// ref: scalar.c matmul_q8x2_scalar.  Each token's two digit rows as one 2-row tile per panel.
static void matmul_q8x2_neon(float *Y, size_t ldy, const Q8Panels *W, const Q8Act *X, size_t T, size_t p0,
                             size_t p1)
{
    Q8Tile a = tile_fwd(W, X, Y, ldy);
    a.sum2 = 1;
    for (size_t p = p0; p < p1; p++)
        for (size_t t = 0; t < T; t++) tile_q8_neon(2, &a, p, 2 * t);
}

// ref: scalar.c matmul_q8t_scalar.
static void matmul_q8t_neon(float *Y, size_t ldy, const Q8PanelsT *Wt, const Q8Act *V, size_t T, size_t p0,
                            size_t p1)
{
    Q8Tile a = {.w = Wt->data, .pstride = Wt->ng * Q8_PANEL_QBYTES, .bstride = Q8_PANEL_QBYTES, .qoff = 0,
                .lane_scales = 0, .nblk = Wt->ng, .x = V, .xrow0 = 0, .xstep = Wt->nb, .Y = Y, .ldy = ldy,
                .nout = Wt->cols};
    panels_q8_neon(&a, T, p0, p1, 1);
}

// ref: scalar.c encode_q8_scalar.
static void encode_q8_neon(float *pre, float *act, size_t ld, const Q8Panels *W, const Q8Act *X, size_t T,
                           size_t p0, size_t p1, const float *bias, const float *theta)
{
    Q8Tile a = tile_fwd(W, X, act, ld);
    a.pre = pre;
    a.bias = bias;
    a.theta = theta;
    panels_q8_neon(&a, T, p0, p1, 0);
}
#endif  // __ARM_FEATURE_DOTPROD

// ---- activation quantization (ref: scalar.c q8_act_row_scalar, quant/q8.c) -------------------
// One block = eight q registers (a short tail is copied zero-padded first).  The largest |x|
// on float bits (integer order = float order for non-negative floats; NaN / Inf above
// FLT_MAX's bits), the scale by the same scalar division as q8.c, then q8.c's rounding
// (x * id + magic - magic as separate multiply and adds, never fused) and clamp (min / max:
// never NaN here), exact conversions and narrowing moves: the same bytes as scalar.c.
AI float32x4_t act_round4(float32x4_t x, float32x4_t id)
{
    const float32x4_t magic = vdupq_n_f32(12582912.0f);
    return vsubq_f32(vaddq_f32(vmulq_f32(x, id), magic), magic);
}

// 32 int32 (eight q registers, each in [-127, 127]) to 32 bytes in order.
AI void act_store32_neon(int8_t *q, const int32x4_t v[8])
{
    for (int k = 0; k < 8; k += 2) vst1_s8(q + 4 * k, vmovn_s16(vcombine_s16(vmovn_s32(v[k]), vmovn_s32(v[k + 1]))));
}

static void q8_act_row_neon(int8_t *q, float *d, int32_t *nsum, size_t lo, const float *x, size_t cols, int digits)
{
    size_t nb = q8_nblocks(cols);
    const uint32x4_t abs_mask = vdupq_n_u32(0x7fffffffu);
    for (size_t b = 0; b < nb; b++) {
        size_t n = cols - b * QK8 < QK8 ? cols - b * QK8 : QK8;
        float tmp[QK8];
        const float *xb = x + b * QK8;
        if (n < QK8) {
            memset(tmp, 0, sizeof tmp);
            memcpy(tmp, xb, n * sizeof(float));
            xb = tmp;
        }
        float32x4_t xv[8];
        uint32x4_t m = vdupq_n_u32(0);
        for (int k = 0; k < 8; k++) {
            xv[k] = vld1q_f32(xb + 4 * k);
            m = vmaxq_u32(m, vandq_u32(vreinterpretq_u32_f32(xv[k]), abs_mask));
        }
        uint32_t bits = vmaxvq_u32(m);
        float amax;
        memcpy(&amax, &bits, sizeof amax);
        int bad = bits > 0x7f7fffffu;   // NaN or Inf
        int8_t *qh = q + b * QK8, *ql = q + (lo + b) * QK8;
        if (bad || !(amax >= Q8_TINY)) {   // honest NaN, or an all-zero block
            simd_q8_act_zero_block(q, d, nsum, lo, b, digits, bad);
            continue;
        }
        int32x4_t hi[8], lw[8], sh = vdupq_n_s32(0), sl = vdupq_n_s32(0);
        if (digits == 1) {
            const float32x4_t lim = vdupq_n_f32(127.0f), nlim = vdupq_n_f32(-127.0f), id = vdupq_n_f32(127.0f / amax);
            for (int k = 0; k < 8; k++) {
                hi[k] = vcvtq_s32_f32(vmaxq_f32(vminq_f32(act_round4(xv[k], id), lim), nlim));
                sh = vaddq_s32(sh, hi[k]);
            }
            act_store32_neon(qh, hi);
            d[b] = amax / 127.0f;
            nsum[b] = -128 * vaddvq_s32(sh);
            continue;
        }
        // 16-bit: s a power of two, v = round(x / s) clamped to +-32639, v = 256 hi + lo, a v
        // with lo = +-128 moved by one towards x / s (q8_act_block16's steps; every product is
        // by a power of two and every value a small integer, so all of it is exact).
        const float vmax = (float)Q8_VMAX16, sc = q8_pow2_ceil(amax / vmax);
        const float32x4_t vm = vdupq_n_f32(vmax), nvm = vdupq_n_f32(-vmax), id = vdupq_n_f32(1.0f / sc),
                          idg = vdupq_n_f32(1.0f / (float)Q8_DIGIT), vdg = vdupq_n_f32((float)Q8_DIGIT),
                          lim = vdupq_n_f32(127.0f), nlim = vdupq_n_f32(-127.0f), one = vdupq_n_f32(1.0f),
                          mone = vdupq_n_f32(-1.0f);
        for (int k = 0; k < 8; k++) {
            float32x4_t r = vmulq_f32(xv[k], id);
            float32x4_t v = vmaxq_f32(vminq_f32(act_round4(r, one), vm), nvm);
            float32x4_t hk = act_round4(v, idg);
            float32x4_t lk = vsubq_f32(v, vmulq_f32(vdg, hk));
            uint32x4_t odd = vorrq_u32(vcgtq_f32(lk, lim), vcltq_f32(lk, nlim));
            float32x4_t step = vbslq_f32(vcgtq_f32(r, v), one, mone);
            v = vaddq_f32(v, vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(step), odd)));
            hk = act_round4(v, idg);
            lk = vsubq_f32(v, vmulq_f32(vdg, hk));
            int32x4_t h = vcvtq_s32_f32(hk), l = vcvtq_s32_f32(lk);
            hi[k] = h, lw[k] = l;
            sh = vaddq_s32(sh, h);
            sl = vaddq_s32(sl, l);
        }
        act_store32_neon(qh, hi);
        act_store32_neon(ql, lw);
        d[lo + b] = sc;
        d[b] = sc * (float)Q8_DIGIT;
        nsum[b] = -128 * vaddvq_s32(sh);
        nsum[lo + b] = -128 * vaddvq_s32(sl);
    }
}

// ref: scalar.c decode_rows_q8_scalar.  16 floats per step from 16 quants (widened s8 -> s16
// -> s32 -> f32); product rounded, then the add (no FMA).  The last <16 one by one, same ops.
static void decode_rows_q8_neon(float *y, const BlockQ8 *W, size_t stride, const int *idx, const float *val,
                                size_t n, size_t D)
{
    for (size_t i = 0; i < n; i++) {
        const BlockQ8 *row = W + (size_t)idx[i] * stride;
        size_t d = 0;
        for (; d + 16 <= D; d += 16) {
            const BlockQ8 *blk = row + d / 32;
            float32x4_t s = vdupq_n_f32(val[i] * blk->d);
            int8x16_t q = vld1q_s8(blk->qs + d % 32);
            int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
            int32x4_t q4[4] = {vmovl_s16(vget_low_s16(lo)), vmovl_s16(vget_high_s16(lo)),
                               vmovl_s16(vget_low_s16(hi)), vmovl_s16(vget_high_s16(hi))};
            for (int h = 0; h < 4; h++)
                vst1q_f32(y + d + 4 * h, vaddq_f32(vld1q_f32(y + d + 4 * h), vmulq_f32(s, vcvtq_f32_s32(q4[h]))));
        }
        for (; d < D; d++) {
            float s = val[i] * row[d / 32].d;
            y[d] = y[d] + s * (float)row[d / 32].qs[d % 32];
        }
    }
}

// ---- bf16 weights -------------------------------------------------------------------------------
// 4 bf16 -> 4 fp32: widening shift left by 16 (exact).
AI float32x4_t widen4(const uint16_t *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
AI float widen1(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// ref: scalar.c dot_bf16w_scalar (per output).  tile_neon with the weight loads widened: the
// same accumulators, chunks, pairwise sums and scalar tail, so each output is bit-identical to
// dot_f32_neon on the widened row.
AI void tile_bf16w_neon(const int R, const int TT, float *Y, size_t ldy, const uint16_t *W, size_t ldw,
                        const float *X, size_t ldx, size_t cols)
{
    float32x4_t acc[4][2][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++)
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) acc[r][t][k] = vdupq_n_f32(0.0f);

    size_t c = 0;
    for (; c + 16 <= cols; c += 16) {
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            float32x4_t xv[2];
#pragma GCC unroll 2
            for (int t = 0; t < TT; t++) xv[t] = vld1q_f32(X + t * ldx + c + 4 * k);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                float32x4_t wv = widen4(W + r * ldw + c + 4 * k);
#pragma GCC unroll 2
                for (int t = 0; t < TT; t++) acc[r][t][k] = vfmaq_f32(acc[r][t][k], wv, xv[t]);
            }
        }
    }
    for (; c + 4 <= cols; c += 4) {   // up to three 4-float chunks: into a0
        float32x4_t xv[2];
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) xv[t] = vld1q_f32(X + t * ldx + c);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            float32x4_t wv = widen4(W + r * ldw + c);
#pragma GCC unroll 2
            for (int t = 0; t < TT; t++) acc[r][t][0] = vfmaq_f32(acc[r][t][0], wv, xv[t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) {
            float32x4_t v = vaddq_f32(vaddq_f32(acc[r][t][0], acc[r][t][1]),
                                      vaddq_f32(acc[r][t][2], acc[r][t][3]));
            float s = vaddvq_f32(v);
            const uint16_t *w = W + r * ldw;
            const float *x = X + t * ldx;
            for (size_t j = c; j < cols; j++) s += widen1(w[j]) * x[j];   // < 4 left
            Y[t * ldy + r] = s;
        }
}

// ref: scalar.c matvec_bf16w_scalar.  4 rows share each x load, as matvec_f32_neon.
static void matvec_bf16w_neon(float *y, const uint16_t *W, const float *x, size_t rows, size_t cols)
{
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) tile_bf16w_neon(4, 1, y + r, 0, W + r * cols, cols, x, 0, cols);
    for (; r < rows; r++) tile_bf16w_neon(1, 1, y + r, 0, W + r * cols, cols, x, 0, cols);
}

// ref: scalar.c matmul_bf16w_scalar.  matmul_f32_neon's blocking (~256 KiB of bf16 rows per
// block, 2x2 register tiles).
static void matmul_bf16w_neon(float *Y, const uint16_t *W, const float *X, size_t T, size_t rows, size_t cols)
{
    if (T == 1) {
        matvec_bf16w_neon(Y, W, X, rows, cols);
        return;
    }
    size_t rb = cols ? (128 * 1024) / cols : rows;
    rb = rb < 2 ? 2 : rb & ~(size_t)1;
    for (size_t r0 = 0; r0 < rows; r0 += rb) {
        size_t r1 = r0 + rb < rows ? r0 + rb : rows;
        size_t t = 0;
        for (; t + 2 <= T; t += 2) {
            const float *Xt = X + t * cols;
            float *Yt = Y + t * rows;
            size_t r = r0;
            for (; r + 2 <= r1; r += 2) tile_bf16w_neon(2, 2, Yt + r, rows, W + r * cols, cols, Xt, cols, cols);
            for (; r < r1; r++) tile_bf16w_neon(1, 2, Yt + r, rows, W + r * cols, cols, Xt, cols, cols);
        }
        for (; t < T; t++) {
            const float *Xt = X + t * cols;
            float *Yt = Y + t * rows;
            size_t r = r0;
            for (; r + 4 <= r1; r += 4) tile_bf16w_neon(4, 1, Yt + r, 0, W + r * cols, cols, Xt, 0, cols);
            for (; r < r1; r++) tile_bf16w_neon(1, 1, Yt + r, 0, W + r * cols, cols, Xt, 0, cols);
        }
    }
}

void simd_fill_neon(SimdKernels *k)
{
    k->name = "neon";
    k->dot_f32 = dot_f32_neon;
    k->matvec_f32 = matvec_f32_neon;
    k->matmul_f32 = matmul_f32_neon;
    k->rmsnorm_f32 = rmsnorm_f32_neon;
    k->softmax_f32 = softmax_f32_neon;
    k->swiglu_f32 = swiglu_f32_neon;
    k->rope_pairs_f32 = rope_pairs_f32_neon;
    k->axpy_f32 = axpy_f32_neon;
    k->scale_f32 = scale_f32_neon;
    k->dots_f32 = dots_f32_neon;
    k->axpys_f32 = axpys_f32_neon;
    k->axpyv_f32 = axpyv_f32_neon;
#if defined(__ARM_FEATURE_DOTPROD)
    k->matvec_q8 = matvec_q8_neon;
    k->matvec_q8x2 = matvec_q8x2_neon;
    k->matmul_q8 = matmul_q8_neon;
    k->matmul_q8x2 = matmul_q8x2_neon;
    k->matmul_q8t = matmul_q8t_neon;
    k->encode_q8 = encode_q8_neon;
#endif
    k->decode_rows_q8 = decode_rows_q8_neon;
    k->q8_act_row = q8_act_row_neon;
    k->matvec_bf16w = matvec_bf16w_neon;
    k->matmul_bf16w = matmul_bf16w_neon;
}
#else
typedef int ct_neon_unused;
#endif
