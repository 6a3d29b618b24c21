// x86_avx512.c — AVX-512 (F, BW, VL, DQ) kernels.  Built with -mavx512*; dispatch.c calls
// simd_fill_avx512 only on CPUs that report the features.
//
// One canonical reduction order serves dot, matvec and matmul, so every row of matvec and
// every (token, row) of matmul is bit-identical to dot_f32_avx512 (see simd.h):
//   two 16-lane accumulators a0, a1 step over 32 floats (a0 gets c..c+15, a1 c+16..c+31,
//   fused multiply-add); one more 16-float chunk goes to a0; the last <16 floats are a
//   zero-masked load into a1; then a0 + a1 and a fixed tree reduction (hsum16).
// matvec/matmul only run several of these dot products side by side to reuse loads.
#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <sleef.h>

#include "simd/simd.h"

#define AI static inline __attribute__((always_inline))

// Lanes i < m set (m < 16).
AI __mmask16 tail_mask16(size_t m) { return (__mmask16)((1u << m) - 1u); }

// Fixed-order horizontal sum: 16 -> 8 (halves) -> 4 -> 2 -> 1.
AI float hsum16(__m512 v)
{
    __m256 lo = _mm512_castps512_ps256(v);
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    return _mm_cvtss_f32(s1);
}

// ref: scalar.c dot_f32_scalar (per output).  The workhorse: an R-row x TT-token tile of dot
// products Y[t*ldy + r] = dot(W + r*ldw, X + t*ldx, cols), each in the canonical order above.
// R, TT are compile-time constants at every call site, so the arrays live in registers
// (R*TT*2 accumulators + TT x vectors + 1 weight vector <= 32 zmm); each loaded x vector is
// used by R rows and each weight vector by TT tokens.
AI void tile_avx512(const int R, const int TT, float *Y, size_t ldy, const float *W, size_t ldw,
                    const float *X, size_t ldx, size_t cols)
{
    __m512 acc[4][3][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int t = 0; t < TT; t++) acc[r][t][0] = acc[r][t][1] = _mm512_setzero_ps();

    size_t c = 0;
    for (; c + 32 <= cols; c += 32) {
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++) {
            __m512 xv[3];
#pragma GCC unroll 3
            for (int t = 0; t < TT; t++) xv[t] = _mm512_loadu_ps(X + t * ldx + c + 16 * k);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512 wv = _mm512_loadu_ps(W + r * ldw + c + 16 * k);
                if (TT > 1) __asm__("" : "+v"(wv));   // keep wv in a register: load W once, not per token
#pragma GCC unroll 3
                for (int t = 0; t < TT; t++) acc[r][t][k] = _mm512_fmadd_ps(wv, xv[t], acc[r][t][k]);
            }
        }
    }
    if (c + 16 <= cols) {   // one full chunk left: into a0
        __m512 xv[3];
#pragma GCC unroll 3
        for (int t = 0; t < TT; t++) xv[t] = _mm512_loadu_ps(X + t * ldx + c);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 wv = _mm512_loadu_ps(W + r * ldw + c);
#pragma GCC unroll 3
            for (int t = 0; t < TT; t++) acc[r][t][0] = _mm512_fmadd_ps(wv, xv[t], acc[r][t][0]);
        }
        c += 16;
    }
    if (c < cols) {         // < 16 left: masked loads (no fault past the end), zeros elsewhere, into a1
        __mmask16 m = tail_mask16(cols - c);
        __m512 xv[3];
#pragma GCC unroll 3
        for (int t = 0; t < TT; t++) xv[t] = _mm512_maskz_loadu_ps(m, X + t * ldx + c);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 wv = _mm512_maskz_loadu_ps(m, W + r * ldw + c);
#pragma GCC unroll 3
            for (int t = 0; t < TT; t++) acc[r][t][1] = _mm512_fmadd_ps(wv, xv[t], acc[r][t][1]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int t = 0; t < TT; t++) Y[t * ldy + r] = hsum16(_mm512_add_ps(acc[r][t][0], acc[r][t][1]));
}

// ref: scalar.c dot_f32_scalar.  A 1x1 tile.
static float dot_f32_avx512(const float *a, const float *b, size_t n)
{
    float y;
    tile_avx512(1, 1, &y, 0, a, 0, b, 0, n);
    return y;
}

// ref: scalar.c matvec_f32_scalar.  4 rows at a time share each x load (8 FMA chains).
static void matvec_f32_avx512(float *y, const float *W, const float *x, size_t rows, size_t cols)
{
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) tile_avx512(4, 1, y + r, 0, W + r * cols, cols, x, 0, cols);
    for (; r < rows; r++) tile_avx512(1, 1, y + r, 0, W + r * cols, cols, x, 0, cols);
}

// ref: scalar.c matmul_f32_scalar.  Cache blocking: a block of RB weight rows (~256 KiB, stays
// in L2) is swept by every 3-token tile of X (stays in L1); inside, 4x3 register tiles give
// 24 accumulators and 7 loads per 24 FMAs.  Leftover tokens use the matvec tiles.
static void matmul_f32_avx512(float *Y, const float *W, const float *X, size_t T, size_t rows,
                              size_t cols)
{
    if (T == 1) {
        matvec_f32_avx512(Y, W, X, rows, cols);
        return;
    }
    size_t rb = cols ? (64 * 1024) / cols : rows;
    rb = rb < 4 ? 4 : rb & ~(size_t)3;
    for (size_t r0 = 0; r0 < rows; r0 += rb) {
        size_t r1 = r0 + rb < rows ? r0 + rb : rows;
        size_t t = 0;
        for (; t + 3 <= T; t += 3) {
            const float *Xt = X + t * cols;
            float *Yt = Y + t * rows;
            size_t r = r0;
            for (; r + 4 <= r1; r += 4) tile_avx512(4, 3, Yt + r, rows, W + r * cols, cols, Xt, cols, cols);
            for (; r < r1; r++) tile_avx512(1, 3, Yt + r, rows, W + r * cols, cols, Xt, cols, cols);
        }
        for (; t < T; t++) {
            const float *Xt = X + t * cols;
            float *Yt = Y + t * rows;
            size_t r = r0;
            for (; r + 4 <= r1; r += 4) tile_avx512(4, 1, Yt + r, 0, W + r * cols, cols, Xt, 0, cols);
            for (; r < r1; r++) tile_avx512(1, 1, Yt + r, 0, W + r * cols, cols, Xt, 0, cols);
        }
    }
}

// ref: scalar.c rmsnorm_f32_scalar.  Sum of squares is this table's dot(x, x); the scalar
// steps and the per-element w * (inv * x) are the reference's, so only the sum differs.
static float rmsnorm_f32_avx512(float *out, const float *x, const float *w, size_t n, float eps)
{
    if (n == 0) return 0.0f;
    float ss = dot_f32_avx512(x, x, n);
    ss /= (float)n;
    ss += eps;
    ss = 1.0f / sqrtf(ss);
    __m512 inv = _mm512_set1_ps(ss);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(inv, _mm512_loadu_ps(x + i));
        if (w) v = _mm512_mul_ps(_mm512_loadu_ps(w + i), v);
        _mm512_storeu_ps(out + i, v);
    }
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        __m512 v = _mm512_mul_ps(inv, _mm512_maskz_loadu_ps(m, x + i));
        if (w) v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), v);
        _mm512_mask_storeu_ps(out + i, m, v);
    }
    return ss;
}

// ref: scalar.c softmax_f32_scalar.  Vector max, SLEEF expf (1 ulp), one vector running sum,
// then an exact division per element as in the reference.
static void softmax_f32_avx512(float *x, size_t n)
{
    if (n == 0) return;
    __m512 vmax = _mm512_set1_ps(x[0]);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x + i));
    }
    __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 sum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = Sleef_expf16_u10avx512f(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
        _mm512_storeu_ps(x + i, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        __m512 e = Sleef_expf16_u10avx512f(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mx));
        _mm512_mask_storeu_ps(x + i, m, e);
        sum = _mm512_mask_add_ps(sum, m, sum, e);   // masked-off lanes add nothing
    }
    __m512 s = _mm512_set1_ps(hsum16(sum));
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_div_ps(_mm512_loadu_ps(x + i), s));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), s));
    }
}

// One 16-lane SwiGLU step in the reference order: g * (1 / (1 + exp(-g))) * u.
AI __m512 swiglu16(__m512 g, __m512 u)
{
    __m512 one = _mm512_set1_ps(1.0f);
    __m512 e = Sleef_expf16_u10avx512f(_mm512_sub_ps(_mm512_setzero_ps(), g));
    __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, e));
    return _mm512_mul_ps(_mm512_mul_ps(g, sig), u);
}

// ref: scalar.c swiglu_f32_scalar.  SLEEF expf; masked tail.
static void swiglu_f32_avx512(float *g, const float *u, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(g + i, swiglu16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        __m512 v = swiglu16(_mm512_maskz_loadu_ps(m, g + i), _mm512_maskz_loadu_ps(m, u + i));
        _mm512_mask_storeu_ps(g + i, m, v);
    }
}

// ref: scalar.c rope_pairs_f32_scalar.  8 pairs per step: duplicate c, s to pair lanes, swap
// each pair of x, and x*c + (+-)(xswap*s) with the sign flipped on even lanes — the same
// two rounded products and one rounded add/sub as the reference, so bit-identical to it.
static void rope_pairs_f32_avx512(float *x, const float *c, const float *s, size_t npairs)
{
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512 neg_even = _mm512_castsi512_ps(_mm512_set_epi32(
        0, (int)0x80000000, 0, (int)0x80000000, 0, (int)0x80000000, 0, (int)0x80000000,
        0, (int)0x80000000, 0, (int)0x80000000, 0, (int)0x80000000, 0, (int)0x80000000));
    size_t i = 0;
    for (; i + 8 <= npairs; i += 8) {
        __m512 v = _mm512_loadu_ps(x + 2 * i);
        __m512 cc = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(c + i)));
        __m512 ss = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(s + i)));
        __m512 vs = _mm512_permute_ps(v, 0xB1);   // (v1, v0) in each pair
        __m512 p = _mm512_mul_ps(v, cc);
        __m512 q = _mm512_xor_ps(_mm512_mul_ps(vs, ss), neg_even);
        _mm512_storeu_ps(x + 2 * i, _mm512_add_ps(p, q));
    }
    for (; i < npairs; i++) {
        float v0 = x[2 * i], v1 = x[2 * i + 1];
        x[2 * i] = v0 * c[i] - v1 * s[i];
        x[2 * i + 1] = v0 * s[i] + v1 * c[i];
    }
}

// ref: scalar.c axpy_f32_scalar.  Multiply then add (not fused), like the reference.
static void axpy_f32_avx512(float *y, float a, const float *x, size_t n)
{
    __m512 va = _mm512_set1_ps(a);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_mul_ps(va, _mm512_loadu_ps(x + i))));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m, x + i)));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

// ref: scalar.c scale_f32_scalar.
static void scale_f32_avx512(float *y, float a, const float *x, size_t n)
{
    __m512 va = _mm512_set1_ps(a);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(va, _mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m, x + i)));
    }
}

void simd_fill_avx512(SimdKernels *k)
{
    k->name = "avx512";
    k->dot_f32 = dot_f32_avx512;
    k->matvec_f32 = matvec_f32_avx512;
    k->matmul_f32 = matmul_f32_avx512;
    k->rmsnorm_f32 = rmsnorm_f32_avx512;
    k->softmax_f32 = softmax_f32_avx512;
    k->swiglu_f32 = swiglu_f32_avx512;
    k->rope_pairs_f32 = rope_pairs_f32_avx512;
    k->axpy_f32 = axpy_f32_avx512;
    k->scale_f32 = scale_f32_avx512;
}
#else
typedef int ct_avx512_unused;
#endif
