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

// ref: scalar.c matvec_f32_scalar.  4 rows at a time share each x load (16 FMA chains).
static void matvec_f32_neon(float *y, const float *W, const float *x, size_t rows, size_t cols)
{
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) tile_neon(4, 1, y + r, 0, W + r * cols, cols, x, 0, cols);
    for (; r < rows; r++) tile_neon(1, 1, y + r, 0, W + r * cols, cols, x, 0, cols);
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
        size_t t = 0;
        for (; t + 2 <= T; t += 2) {
            const float *Xt = X + t * cols;
            float *Yt = Y + t * rows;
            size_t r = r0;
            for (; r + 2 <= r1; r += 2) tile_neon(2, 2, Yt + r, rows, W + r * cols, cols, Xt, cols, cols);
            for (; r < r1; r++) tile_neon(1, 2, Yt + r, rows, W + r * cols, cols, Xt, cols, cols);
        }
        for (; t < T; t++) {
            const float *Xt = X + t * cols;
            float *Yt = Y + t * rows;
            size_t r = r0;
            for (; r + 4 <= r1; r += 4) tile_neon(4, 1, Yt + r, 0, W + r * cols, cols, Xt, 0, cols);
            for (; r < r1; r++) tile_neon(1, 1, Yt + r, 0, W + r * cols, cols, Xt, 0, cols);
        }
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

// ref: scalar.c scale_f32_scalar.
static void scale_f32_neon(float *y, float a, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_n_f32(vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] = a * x[i];
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
}
#else
typedef int ct_neon_unused;
#endif
