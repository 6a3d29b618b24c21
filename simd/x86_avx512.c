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
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "simd/amx_cfg.h"
#include "simd/q8_tile_asm.h"
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

// ref: scalar.c dots_f32_scalar.  4 x 3 register tiles (keys x queries), the leftover queries in
// 4 x 1; no cache blocking (a block of keys is small).  matvec and matmul (per block of rows)
// run through it, so their rows keep the same tiles.
static void dots_f32_avx512(float *Y, size_t ldy, const float *X, size_t ldx, size_t T, const float *W, size_t ldw,
                            size_t rows, size_t cols)
{
    size_t t = 0;
    for (; t + 3 <= T; t += 3) {
        size_t r = 0;
        for (; r + 4 <= rows; r += 4) tile_avx512(4, 3, Y + t * ldy + r, ldy, W + r * ldw, ldw, X + t * ldx, ldx, cols);
        for (; r < rows; r++) tile_avx512(1, 3, Y + t * ldy + r, ldy, W + r * ldw, ldw, X + t * ldx, ldx, cols);
    }
    for (; t < T; t++) {
        size_t r = 0;
        for (; r + 4 <= rows; r += 4) tile_avx512(4, 1, Y + t * ldy + r, 0, W + r * ldw, ldw, X + t * ldx, 0, cols);
        for (; r < rows; r++) tile_avx512(1, 1, Y + t * ldy + r, 0, W + r * ldw, ldw, X + t * ldx, 0, cols);
    }
}

// ref: scalar.c matvec_f32_scalar.  4 rows at a time share each x load (8 FMA chains).
static void matvec_f32_avx512(float *y, const float *W, const float *x, size_t rows, size_t cols)
{
    dots_f32_avx512(y, 0, x, 0, 1, W, cols, rows, cols);
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
        dots_f32_avx512(Y + r0, rows, X, cols, T, W + r0 * cols, cols, r1 - r0, cols);
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

// TT rows of axpys_f32 over 16 * NV floats of Y (NV = 4: full 64-float chunks; NV = 1 with mask
// m: the rest, 16 at a time): the rows' sums stay in registers over all k steps and each value
// vector is loaded once for the TT rows.  A multiply, then an add, neither fused: axpy_f32's bits.
AI void axpys_tile_avx512(const int TT, const int NV, __mmask16 m, float *Y, size_t ldy, const float *A, size_t lda,
                          const float *X, size_t ldx, size_t k)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[t][v] = _mm512_maskz_loadu_ps(m, Y + t * ldy + 16 * v);
    for (size_t s = 0; s < k; s++, X += ldx) {
        __m512 x[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) x[v] = _mm512_maskz_loadu_ps(m, X + 16 * v);
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++) {
            __m512 a = _mm512_set1_ps(A[t * lda + s]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[t][v] = _mm512_add_ps(acc[t][v], _mm512_mul_ps(a, x[v]));
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(Y + t * ldy + 16 * v, m, acc[t][v]);
}

// ref: scalar.c axpys_f32_scalar.  Rows 4 at a time (16 sums in registers), 64 floats at a
// time, then the last floats 16 at a time (masked).
static void axpys_f32_avx512(float *Y, size_t ldy, const float *A, size_t lda, size_t T, const float *X, size_t ldx,
                             size_t k, size_t n)
{
    for (size_t t = 0; t < T; t += 4) {
        size_t tt = T - t < 4 ? T - t : 4;
        float *Yt = Y + t * ldy;
        const float *At = A + t * lda;
        size_t i = 0;
        for (; i + 64 <= n; i += 64) {
            if (tt == 4) axpys_tile_avx512(4, 4, 0xffff, Yt + i, ldy, At, lda, X + i, ldx, k);
            else if (tt == 3) axpys_tile_avx512(3, 4, 0xffff, Yt + i, ldy, At, lda, X + i, ldx, k);
            else if (tt == 2) axpys_tile_avx512(2, 4, 0xffff, Yt + i, ldy, At, lda, X + i, ldx, k);
            else axpys_tile_avx512(1, 4, 0xffff, Yt + i, ldy, At, lda, X + i, ldx, k);
        }
        for (; i < n; i += 16) {
            __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask16(n - i);
            if (tt == 4) axpys_tile_avx512(4, 1, m, Yt + i, ldy, At, lda, X + i, ldx, k);
            else if (tt == 3) axpys_tile_avx512(3, 1, m, Yt + i, ldy, At, lda, X + i, ldx, k);
            else if (tt == 2) axpys_tile_avx512(2, 1, m, Yt + i, ldy, At, lda, X + i, ldx, k);
            else axpys_tile_avx512(1, 1, m, Yt + i, ldy, At, lda, X + i, ldx, k);
        }
    }
}

// ref: scalar.c axpyv_f32_scalar.  16 floats at a time (the last masked), rows 8 at a time: their
// sums stay in registers over the k steps, each X vector loaded once for the 8 rows.  A
// multiply, then an add, neither fused.
AI void axpyv_tile_avx512(const int TT, __mmask16 m, float *const *Y, size_t i, const float *C, size_t ldt, size_t lds,
                          const float *const *X, size_t k)
{
    __m512 acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) acc[t] = _mm512_maskz_loadu_ps(m, Y[t] + i);
    for (size_t s = 0; s < k; s++) {
        __m512 x = _mm512_maskz_loadu_ps(m, X[s] + i);
        const float *c = C + s * lds + i;
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++) acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_maskz_loadu_ps(m, c + t * ldt), x));
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) _mm512_mask_storeu_ps(Y[t] + i, m, acc[t]);
}
static void axpyv_f32_avx512(float *const *Y, size_t T, const float *C, size_t ldt, size_t lds, const float *const *X,
                             size_t k, size_t n)
{
    for (size_t t = 0; t < T; t += 8, C += 8 * ldt) {
        size_t tt = T - t < 8 ? T - t : 8;
        for (size_t i = 0; i < n; i += 16) {
            __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask16(n - i);
            switch (tt) {
            case 8: axpyv_tile_avx512(8, m, Y + t, i, C, ldt, lds, X, k); break;
            case 7: axpyv_tile_avx512(7, m, Y + t, i, C, ldt, lds, X, k); break;
            case 6: axpyv_tile_avx512(6, m, Y + t, i, C, ldt, lds, X, k); break;
            case 5: axpyv_tile_avx512(5, m, Y + t, i, C, ldt, lds, X, k); break;
            case 4: axpyv_tile_avx512(4, m, Y + t, i, C, ldt, lds, X, k); break;
            case 3: axpyv_tile_avx512(3, m, Y + t, i, C, ldt, lds, X, k); break;
            case 2: axpyv_tile_avx512(2, m, Y + t, i, C, ldt, lds, X, k); break;
            default: axpyv_tile_avx512(1, m, Y + t, i, C, ldt, lds, X, k); break;
            }
        }
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

// ---- int8: VNNI (vpdpbusd) ----------------------------------------------------------------
// Packed panels hold u8 = w + 128 (quant/q8.h), the unsigned operand of vpdpbusd; activations
// are the signed operand, 4 bytes broadcast to the 16 row lanes.  Each block's int32
// accumulator starts at nsum = -128 * sum(qx), which removes the bias exactly, so the lane
// holds the same isum as scalar.c; then acc = fma(float(isum), dw * dx, acc) per block in
// order, lanes = rows: bit-identical to the reference.

// The 4 bytes at p as an int32, at any alignment (one plain load).
AI int32_t ld_i32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

// The 4 bytes at p in every 32-bit lane, as an asm load: the compiler cannot hoist it out of the
// block loop (clang would hoist all 8 x TT of them into registers and spill).
AI __m512i BCAST32(const void *p)
{
    __m512i v;
    __asm__("vpbroadcastd %1, %0" : "=v"(v) : "m"(*(const int32_t *)p));
    return v;
}

// What a tile reads and writes.  "rows" of the output are lanes: W rows (y = W x), or W
// columns for the transposed layout (y = W^T g).
typedef struct Q8Tile {
    const uint8_t *w;        // packed data
    size_t pstride;          // bytes per panel
    size_t bstride;          // bytes per block inside a panel (576, or 512 transposed)
    size_t qoff;             // offset of the quants inside a block (64, or 0 transposed)
    int lane_scales;         // 1: 16 float scales lead each block (dw); 0: transposed
    size_t nblk;             // blocks along the reduction
    const Q8Act *x;
    size_t xrow0, xstep;     // activation row of token t: xrow0 + t * xstep
    float *Y;                // output, Y[t * ldy + lane index]
    size_t ldy;
    size_t nout;             // valid output lanes (rows, or columns when transposed)
    float *pre;              // encoder: pre-activations (may be NULL) ...
    const float *bias;       // ... bias (NULL: plain product) and thresholds (NULL: 0)
    const float *theta;
    int pairs;               // rows 2t, 2t+1 are the digit rows of token t: store their sum as token t
} Q8Tile;

// Store 16 lanes of one output row at lane index o (masked at the end of the output).
AI void q8_store(const Q8Tile *a, size_t t, size_t o, __m512 v)
{
    size_t left = a->nout - o;
    __mmask16 m = left >= 16 ? (__mmask16)0xffff : tail_mask16(left);
    if (a->bias) {
        __m512 h = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, a->bias + o));
        __m512 th = a->theta ? _mm512_maskz_loadu_ps(m, a->theta + o) : _mm512_setzero_ps();
        __mmask16 keep = _mm512_cmp_ps_mask(h, th, _CMP_GT_OQ) | _mm512_cmp_ps_mask(h, h, _CMP_UNORD_Q);
        if (a->pre) _mm512_mask_storeu_ps(a->pre + t * a->ldy + o, m, h);
        v = _mm512_maskz_mov_ps(keep, h);
    }
    _mm512_mask_storeu_ps(a->Y + t * a->ldy + o, m, v);
}

// A tile's accumulators to Y (rows 2t, 2t+1 summed as token t for matmul_q8x2).
AI void tile_store_q8_avx512(const int R, const int TT, const Q8Tile *a, size_t p, size_t t0, __m512 acc[2][6])
{
    if (a->pairs) {   // matmul_q8x2: t0 and TT are even (tokens_q8_avx512 over 2T rows)
#pragma GCC unroll 2
        for (int r = 0; r < R; r++)
#pragma GCC unroll 3
            for (int t = 0; t + 1 < TT; t += 2)
                q8_store(a, (t0 + t) / 2, (p + r) * 16, _mm512_add_ps(acc[r][t], acc[r][t + 1]));
        return;
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < TT; t++) q8_store(a, t0 + t, (p + r) * 16, acc[r][t]);
}

// ref: scalar.c out_q8_scalar.  An R-panel x TT-token tile over every block: R*TT int32 and
// R*TT float accumulators in registers; each weight vector feeds TT tokens, each broadcast
// activation word feeds R panels.  Panels p .. p+R-1, tokens t0 .. t0+TT-1.
AI void tile_q8_avx512(const int R, const int TT, const int LS, const Q8Tile *a, size_t p, size_t t0)
{
    __m512 acc[2][6];
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < TT; t++) acc[r][t] = _mm512_setzero_ps();
    const Q8Act *x = a->x;
    const int p2 = x->pow2 && simd_q8_pow2_scalef_on();
    const uint8_t *wp = a->w + p * a->pstride;
    const int8_t *xq = x->q;   // loaded once: clang would re-read it around every asm below
    const float *xd = x->d;
    const int32_t *xs = x->nsum;
    const size_t pstride = a->pstride, qoff = a->qoff, bstride = a->bstride, nblk = a->nblk;
    size_t xr[6];
#pragma GCC unroll 6
    for (int t = 0; t < TT; t++) xr[t] = (a->xrow0 + (t0 + t) * a->xstep) * x->nb;
    for (size_t b = 0; b < nblk; b++, wp += bstride) {
        __m512i ia[2][6];
        const int8_t *xp[6];
#pragma GCC unroll 6
        for (int t = 0; t < TT; t++) {
            xp[t] = xq + (xr[t] + b) * 32;
            __m512i init = _mm512_set1_epi32(xs[xr[t] + b]);   // undoes the +128 of the weights
#pragma GCC unroll 2
            for (int r = 0; r < R; r++) ia[r][t] = init;
        }
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512i w[2], xb[6];
#pragma GCC unroll 2
            for (int r = 0; r < R; r++) w[r] = _mm512_loadu_si512((const void *)(wp + r * pstride + qoff + 64 * j));
#pragma GCC unroll 6
            for (int t = 0; t < TT; t++) xb[t] = BCAST32(xp[t] + 4 * j);   // 4 activation bytes to every row lane
#pragma GCC unroll 6
            for (int t = 0; t < TT; t++)
#pragma GCC unroll 2
                for (int r = 0; r < R; r++) ia[r][t] = _mm512_dpbusd_epi32(ia[r][t], w[r], xb[t]);
        }
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            __m512 sw = LS ? _mm512_loadu_ps((const float *)(wp + r * pstride)) : _mm512_set1_ps(1.0f);
#pragma GCC unroll 6
            for (int t = 0; t < TT; t++) {
                __m512 dx = _mm512_set1_ps(xd[xr[t] + b]);
                // dw * dx, one rounding; for a power-of-two dx, dw scaled by its exponent (exact)
                __m512 s = LS ? (p2 ? _mm512_scalef_ps(sw, _mm512_getexp_ps(dx)) : _mm512_mul_ps(sw, dx)) : dx;
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[r][t]), s, acc[r][t]);
            }
        }
    }
    tile_store_q8_avx512(R, TT, a, p, t0, acc);
}

// Two panels (p, p+1) x TT rows (t0 .. t0+TT-1, TT = 1..6): the asm loop of
// simd/q8_tile_asm.h (register map there), which does the operations of tile_q8_avx512 in
// the same order, so the same bits.  The tile's block stride is the layout's (576 bytes with
// lane scales, 512 without), an immediate of the asm.
#define Q8A_RUN(TTC)                                                                                  \
    do {                                                                                              \
        if (LS && p2) __asm__ volatile(Q8A_BODYN(TTC, Q8A_LSCALES, Q8A_FP) Q8A_OPERANDS);             \
        else if (LS) __asm__ volatile(Q8A_BODYN(TTC, Q8A_LSCALES, Q8A_F) Q8A_OPERANDS);               \
        else __asm__ volatile(Q8A_BODYN(TTC, "", Q8A_F0) Q8A_OPERANDS);                               \
    } while (0)
AI void tile2_q8_avx512(const int LS, const int TT, const Q8Tile *a, size_t p, size_t t0)
{
    _Alignas(64) float acc[12][16];   // written by the asm
    const Q8Act *x = a->x;
    const int p2 = x->pow2 && simd_q8_pow2_scalef_on();   // power-of-two dx: dw * dx by vscalefps (Q8A_FP)
    const size_t rs = a->xstep * x->nb, r0 = (a->xrow0 + t0 * a->xstep) * x->nb;   // in blocks
    const size_t r3 = TT > 3 ? 3 * rs : 0;   // rows 3-5's base (row 0's when the tile has none)
    const int32_t *sa = x->nsum + r0, *sb = sa + r3;
    const float *da = x->d + r0, *db = da + r3;
    const long ps = (long)a->pstride, sq = (long)(rs * 32), s4 = (long)(rs * 4);
    size_t n = a->nblk;
    const uint8_t *w = a->w + p * a->pstride + a->qoff;   // the quants (lane scales 64 bytes before)
    const int8_t *qa = x->q + r0 * 32, *qb = qa + r3 * 32;
    if (!n) memset(acc, 0, sizeof acc);
    else if (TT == 6) Q8A_RUN(6);
    else if (TT == 5) Q8A_RUN(5);
    else if (TT == 4) Q8A_RUN(4);
    else if (TT == 3) Q8A_RUN(3);
    else if (TT == 2) Q8A_RUN(2);
    else Q8A_RUN(1);
    __m512 c[2][6];
#pragma GCC unroll 2
    for (int r = 0; r < 2; r++)
#pragma GCC unroll 6
        for (int t = 0; t < TT; t++) c[r][t] = _mm512_load_ps(acc[r * 6 + t]);
    tile_store_q8_avx512(2, TT, a, p, t0, c);
}
#undef Q8A_RUN

// Tokens [0, T) for panels p .. p+R-1: full Q8_TT-token tiles, then the rest.  LS: lane scales
// (1 for W x, 0 for the transposed layout) as a compile-time constant, so no branch sits in
// the block loop.
// Tokens per tile: 2 x 6 tiles need 24 accumulators + 2 weights + 6 broadcast activation
// words: all 32 zmm registers.  Two-panel tiles, full or not, are the asm loop (gcc 12
// allocated the intrinsic tile without spilling, clang 14 spilled it: ~0.5 of the VNNI peak
// where gcc reached ~0.75 on Zen 5); the single last panel stays intrinsics.  The 1-5 rows
// left after the full tiles get a tile of their own size: on the Intel VM (gcc and clang) that
// beat computing the last 6 rows again (T = 7: 0.34 -> 0.53-0.54 of the VNNI peak; T = 64:
// +2%).
#define Q8_TT 6
// One tile of R panels x TT rows: the asm loop for two panels, intrinsics for the last single one.
AI void tile_any_q8_avx512(const int R, const int TT, const int LS, const Q8Tile *a, size_t p, size_t t0)
{
    if (R == 2) tile2_q8_avx512(LS, TT, a, p, t0);
    else tile_q8_avx512(R, TT, LS, a, p, t0);
}
AI void tokens_q8_avx512(const int R, const int LS, const Q8Tile *a, size_t p, size_t T)
{
    size_t t = 0;
    for (; t + Q8_TT <= T; t += Q8_TT) tile_any_q8_avx512(R, Q8_TT, LS, a, p, t);
    switch (T - t) {   // even when the rows are digit pairs
    case 5: tile_any_q8_avx512(R, 5, LS, a, p, t); break;
    case 4: tile_any_q8_avx512(R, 4, LS, a, p, t); break;
    case 3: tile_any_q8_avx512(R, 3, LS, a, p, t); break;
    case 2: tile_any_q8_avx512(R, 2, LS, a, p, t); break;
    case 1: tile_any_q8_avx512(R, 1, LS, a, p, t); break;
    default: break;
    }
}

// Panel pairs (weights of two panels stay in L1 while every token tile passes), then a last
// single panel.  Transposed: panel p's outputs are columns of block p/2, whose activation row
// is t * nb + p/2, so a pair must start on an even panel.
static void panels_q8_avx512(const Q8Tile *a, size_t T, size_t p0, size_t p1)
{
    size_t p = p0;
    for (; p + 2 <= p1; p += 2) tokens_q8_avx512(2, 1, a, p, T);
    if (p < p1) tokens_q8_avx512(1, 1, a, p, T);
}

static void panels_q8t_avx512(const Q8Tile *a, size_t T, size_t p0, size_t p1)
{
    Q8Tile b = *a;
    size_t p = p0;
    if ((p & 1) && p < p1) {   // start even
        b.xrow0 = p / 2;
        tokens_q8_avx512(1, 0, &b, p++, T);
    }
    for (; p + 2 <= p1; p += 2) {
        b.xrow0 = p / 2;   // both panels of the pair read column block p/2
        tokens_q8_avx512(2, 0, &b, p, T);
    }
    if (p < p1) {
        b.xrow0 = p / 2;
        tokens_q8_avx512(1, 0, &b, p, T);
    }
}

static Q8Tile tile_fwd(const Q8Panels *W, const Q8Act *X, float *Y, size_t ldy)
{
    return (Q8Tile){.w = W->data, .pstride = W->nb * Q8_PANEL_BLOCK_BYTES, .bstride = Q8_PANEL_BLOCK_BYTES,
                    .qoff = 64, .lane_scales = 1, .nblk = W->nb, .x = X, .xrow0 = 0, .xstep = 1, .Y = Y,
                    .ldy = ldy, .nout = W->rows};
}

// encode_q8's tiles: the forward GEMM's, with the bias / JumpReLU threshold applied at the store
// (pre: the pre-activations, when asked for).
static Q8Tile tile_enc(const Q8Panels *W, const Q8Act *X, float *pre, float *act, size_t ld, const float *bias,
                       const float *theta)
{
    Q8Tile a = tile_fwd(W, X, act, ld);
    a.pre = pre;
    a.bias = bias;
    a.theta = theta;
    return a;
}

// ref: scalar.c matmul_q8_scalar.
static void matmul_q8_avx512(float *Y, size_t ldy, const Q8Panels *W, const Q8Act *X, size_t T, size_t p0,
                             size_t p1)
{
    Q8Tile a = tile_fwd(W, X, Y, ldy);
    panels_q8_avx512(&a, T, p0, p1);
}

// ref: scalar.c matmul_q8x2_scalar.  The 2T digit rows through the same tiles (Q8_TT = 6 is
// even, so every tile starts on an even row and the leftover tile has 2 or 4 rows: whole
// tokens); the store adds each pair.
static void matmul_q8x2_avx512(float *Y, size_t ldy, const Q8Panels *W, const Q8Act *X, size_t T, size_t p0,
                               size_t p1)
{
    _Static_assert(Q8_TT % 2 == 0, "matmul_q8x2 needs tiles of whole tokens");
    Q8Tile a = tile_fwd(W, X, Y, ldy);
    a.pairs = 1;
    panels_q8_avx512(&a, 2 * T, p0, p1);
}

// Software prefetch distance of the decode matvec: each line of a block is prefetched into L1
// as the same line of the block before it is loaded (one block, 9 lines, ahead in each run).
// Measured on the Intel Xeon VM (604 MB matrix, against a read loop that prefetches the same
// way, 18.9-20.3 GB/s): 16.3-17.4 GB/s, 0.84-0.89.  The earlier scheme, all 18 lines of two
// blocks prefetched in one burst 4 blocks ahead, read 15.1-16.0 GB/s (0.79-0.85); the same
// burst 1 or 2 blocks ahead 15.5-16.6, into L2 instead of L1 14.2-15.6.
#define MV_PF_BYTES Q8_PANEL_BLOCK_BYTES

// The 512-bit products (Z = 1 below): i += vpdpbusd(w, the 4 activation bytes at p in every lane),
// the broadcast an embedded memory operand ({1to16}) that the compiler cannot hoist.  As an
// intrinsic, gcc loads the block's activation words into registers once per step and keeps them
// for all NS runs: 9 registers for 8-bit activations, 18 for 16-bit ones, which with 8 runs' 16
// accumulators spill (29 stack accesses per step in matvec_q8x2's 8-run loop; 2 with the asm).  On
// the AMD EPYC (Zen 5) VM, each form in its own process against the read probe (1208 MB, best of
// 3, six processes each): 16-bit activations, 8 runs 0.91-0.95 against 0.68-0.78, 4 runs 0.82-0.89
// against 0.73-0.82; 8-bit activations 0.99-1.01 against 0.97-0.99 (three each).  A plain
// broadcast load kept out of registers (BCAST32) instead read 0.79-0.84 at 8 runs.
#define DPBUSD_BCST(i, w, p) \
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(i) : "v"(w), "m"(*(const int32_t *)(const void *)(p)))

// The decode matvec's products come in two widths, with the same loads, lines and prefetches
// and the same bits out (the lanes do the same operations in the same order):
// - 256-bit halves (Z = 0; rows 0-7 and 8-15 of a panel, each activation word broadcast once
//   for both): sustained 512-bit vpdpbusd lowers the Intel Xeon VM's clock, and a DRAM-bound
//   loop reads less at the lower clock.  A chain of scalar adds ran at 3.53-3.56 GHz alone or
//   beside 256-bit vpdpbusd or 512-bit vpaddq, 3.30-3.36 GHz beside 512-bit vpdpbusd
//   (bench_q8's "core clock" probe row).  The 2-run matvec read 0.94-0.97 of the read probe with
//   512-bit products and 0.97-0.99 with 256-bit ones in the same process (604 MB); bench_q8's
//   full runs went from 0.86-0.88 to 0.89-0.92 (matvec_q8).  Not every Intel core does it: a
//   later Intel Xeon VM (family 6 model 207, no AMX) runs the chain at 2.94 GHz beside either.
// - 512-bit (Z = 1): the AMD EPYC (Zen 5) VM keeps its clock beside 512-bit vpdpbusd (0.97-1.00
//   of alone), and there half as many instructions per line read more.  Each width against the
//   read probe in its own process (1208 MB), 8-bit activations, 4 runs: 0.84-0.95 against
//   0.85-0.88 for 256-bit halves, 8 runs 0.90-0.98; 16-bit activations at the best count
//   0.86-0.88 against 0.77-0.78.  Both widths in one process: 512-bit as much or more at every
//   count in 6 of 6 runs.  With the float step in 256-bit halves too, 16-bit activations read
//   0.71-0.82 at 4 runs against 0.83-0.95.
//   The model-207 Intel VM too, with its clock kept (bench_q8, 1208 MB, 1 / 2 / 4 / 8 runs
//   forced, the same process): 8-bit activations 0.91 / 0.96 / 0.99 / 0.97 of the read probe
//   against 0.84 / 0.95 / 0.97 / 0.95 for 256-bit halves, 16-bit 0.84 / 0.93 / 0.97 / 0.97
//   against 0.72 / 0.88 / 0.91 / 0.92.
// simd_q8_matvec_width_default (dispatch.c) takes 512-bit products on AMD, and elsewhere unless
// the core's clock drops beside them (simd_avx512_vnni_clock_ratio below, measured once per
// process); CTRACE_Q8_WIDTH or simd_q8_matvec_width forces one.
// A struct, not a union of the two: clang 14 splits such a union's zmm into two ymm halves
// kept on the stack.  Each width uses its own members; the others are never touched.
typedef struct {
    __m512 v;            // Z = 1
    __m256 lo, hi;       // Z = 0
} MvAcc;

// One 16-row x 32-column block of a panel against block b of activation rows 0 .. DG-1 (DG
// digit rows, 1 or 2): acc[g] + fma(float(isum_g), dw * dx_g).  Two int32 chains per product
// (even / odd column quads, summed exactly) halve the latency; each weight line is loaded once
// and feeds every digit row.  Each line's prefetch (MV_PF_BYTES ahead) goes with its load.
AI void mv_block(const int Z, const int DG, const uint8_t *blk, const Q8Act *x, size_t b, MvAcc *acc)
{
    const char *pf = (const char *)blk + MV_PF_BYTES;
    _mm_prefetch(pf, _MM_HINT_T0);   // the lane scales' line
    // Digit row 1 (DG = 2) is written out beside row 0 rather than looped over: clang 14 keeps
    // an indexed array of chains on the stack even after unrolling.
    const size_t xb0 = b, xb1 = x->nb + b;
    const int8_t *q0 = x->q + xb0 * 32, *q1 = DG == 2 ? x->q + xb1 * 32 : q0;
    if (Z) {
        __m512i i00 = _mm512_set1_epi32(x->nsum[xb0]), i10 = _mm512_setzero_si512();
        __m512i i01 = DG == 2 ? _mm512_set1_epi32(x->nsum[xb1]) : i10, i11 = i10;
#pragma GCC unroll 4
        for (int j = 0; j < 8; j += 2) {
            _mm_prefetch(pf + 64 + 64 * j, _MM_HINT_T0);
            _mm_prefetch(pf + 128 + 64 * j, _MM_HINT_T0);
            __m512i w0 = _mm512_loadu_si512((const void *)(blk + 64 + 64 * j));
            __m512i w1 = _mm512_loadu_si512((const void *)(blk + 128 + 64 * j));
            DPBUSD_BCST(i00, w0, q0 + 4 * j);
            DPBUSD_BCST(i10, w1, q0 + 4 * j + 4);
            if (DG == 2) {
                DPBUSD_BCST(i01, w0, q1 + 4 * j);
                DPBUSD_BCST(i11, w1, q1 + 4 * j + 4);
            }
        }
        __m512 sw = _mm512_loadu_ps((const float *)blk);
        __m512 sc0 = _mm512_mul_ps(sw, _mm512_set1_ps(x->d[xb0]));
        acc[0].v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(i00, i10)), sc0, acc[0].v);
        if (DG == 2) {
            __m512 sc1 = _mm512_mul_ps(sw, _mm512_set1_ps(x->d[xb1]));
            acc[1].v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(i01, i11)), sc1, acc[1].v);
        }
    } else {
        __m256i l00, h00, l10, h10, l01, h01, l11, h11;
        l00 = h00 = _mm256_set1_epi32(x->nsum[xb0]);
        l10 = h10 = l11 = h11 = _mm256_setzero_si256();
        l01 = h01 = DG == 2 ? _mm256_set1_epi32(x->nsum[xb1]) : l10;
#pragma GCC unroll 4
        for (int j = 0; j < 8; j += 2) {
            _mm_prefetch(pf + 64 + 64 * j, _MM_HINT_T0);
            _mm_prefetch(pf + 128 + 64 * j, _MM_HINT_T0);
            const uint8_t *l = blk + 64 + 64 * j;
            __m256i w0l = _mm256_loadu_si256((const __m256i *)l), w0h = _mm256_loadu_si256((const __m256i *)(l + 32));
            __m256i w1l = _mm256_loadu_si256((const __m256i *)(l + 64)), w1h = _mm256_loadu_si256((const __m256i *)(l + 96));
            __m256i x0 = _mm256_set1_epi32(ld_i32(q0 + 4 * j));
            __m256i x1 = _mm256_set1_epi32(ld_i32(q0 + 4 * j + 4));
            l00 = _mm256_dpbusd_epi32(l00, w0l, x0);
            h00 = _mm256_dpbusd_epi32(h00, w0h, x0);
            l10 = _mm256_dpbusd_epi32(l10, w1l, x1);
            h10 = _mm256_dpbusd_epi32(h10, w1h, x1);
            if (DG == 2) {
                __m256i y0 = _mm256_set1_epi32(ld_i32(q1 + 4 * j));
                __m256i y1 = _mm256_set1_epi32(ld_i32(q1 + 4 * j + 4));
                l01 = _mm256_dpbusd_epi32(l01, w0l, y0);
                h01 = _mm256_dpbusd_epi32(h01, w0h, y0);
                l11 = _mm256_dpbusd_epi32(l11, w1l, y1);
                h11 = _mm256_dpbusd_epi32(h11, w1h, y1);
            }
        }
        __m256 swl = _mm256_loadu_ps((const float *)blk), swh = _mm256_loadu_ps((const float *)blk + 8);
        __m256 dx0 = _mm256_set1_ps(x->d[xb0]);
        acc[0].lo = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(l00, l10)), _mm256_mul_ps(swl, dx0), acc[0].lo);
        acc[0].hi = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(h00, h10)), _mm256_mul_ps(swh, dx0), acc[0].hi);
        if (DG == 2) {
            __m256 dx1 = _mm256_set1_ps(x->d[xb1]);
            acc[1].lo = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(l01, l11)), _mm256_mul_ps(swl, dx1), acc[1].lo);
            acc[1].hi = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(h01, h11)), _mm256_mul_ps(swh, dx1), acc[1].hi);
        }
    }
}

AI void mv_zero(const int Z, MvAcc *acc)
{
    if (Z) acc[0].v = acc[1].v = _mm512_setzero_ps();
    else acc[0].lo = acc[0].hi = acc[1].lo = acc[1].hi = _mm256_setzero_ps();
}

// Panel p's output: the digit rows' canonical values, summed for DG = 2 (simd.h matvec_q8x2).
AI void mv_store(const int Z, const int DG, const Q8Tile *a, size_t p, const MvAcc *acc)
{
    __m512 v;
    if (Z) v = DG == 2 ? _mm512_add_ps(acc[0].v, acc[1].v) : acc[0].v;
    else {
        __m256 lo = DG == 2 ? _mm256_add_ps(acc[0].lo, acc[1].lo) : acc[0].lo;
        __m256 hi = DG == 2 ? _mm256_add_ps(acc[0].hi, acc[1].hi) : acc[0].hi;
        v = _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
    }
    q8_store(a, 0, p * 16, v);
}

// Panels [p0, p1) read as NS runs of equal length side by side (NS sequential streams), one
// block of each per step, every line prefetched into L1 one block ahead (mv_block).  (Two
// blocks of each per step read 0.02 less of the probe in the 256-bit version.)  Each
// panel's blocks stay in order, so the float accumulation is the canonical one whatever NS
// is.  The 0 .. NS-1 panels left over run one at a time at the end; the prefetches past a
// run's end touch at most one block beyond it (inside the packed matrix or
// harmlessly past it: prefetches never fault).
AI void matvec_q8_runs(const int Z, const int DG, const int NS, float *y, const Q8Panels *W, const Q8Act *x,
                       size_t p0, size_t p1)
{
    Q8Tile a = tile_fwd(W, x, y, 0);
    const size_t nb = W->nb, B = Q8_PANEL_BLOCK_BYTES, run = (p1 - p0) / NS;
    // Each run's pointer and accumulators are named, not indexed: clang 14 keeps an indexed
    // array of them on the stack even after unrolling (89 stack accesses per step in
    // matvec_q8x2's 8-run loop).  MV_RUNS(f) applies f to the runs 0 .. NS-1.
#define MV_RUNS(f) f(0) f(1) f(2) f(3) f(4) f(5) f(6) f(7)
    for (size_t p = p0; p < p0 + run; p++) {
#define MV_INIT(s) \
    const uint8_t *u##s = W->data + (p + (s) * run) * nb * B; \
    MvAcc a##s[2]; \
    mv_zero(Z, a##s);
        MV_RUNS(MV_INIT)
        for (size_t b = 0; b < nb; b++) {
#define MV_STEP(s) \
    if ((s) < NS) { \
        mv_block(Z, DG, u##s, x, b, a##s); \
        u##s += B; \
    }
            MV_RUNS(MV_STEP)
        }
#define MV_STORE(s) \
    if ((s) < NS) mv_store(Z, DG, &a, p + (s) * run, a##s);
        MV_RUNS(MV_STORE)
#undef MV_INIT
#undef MV_STEP
#undef MV_STORE
    }
#undef MV_RUNS
    for (size_t p = p0 + NS * run; p < p1; p++) {
        const uint8_t *u = W->data + p * nb * B;
        MvAcc acc[2];
        mv_zero(Z, acc);
        for (size_t b = 0; b < nb; b++, u += B) mv_block(Z, DG, u, x, b, acc);
        mv_store(Z, DG, &a, p, acc);
    }
}

// How many runs to read side by side.  The count changes no bit of the result but changes the
// read bandwidth of a DRAM-bound matvec, and which count is fastest changes with the state of
// the machine: on the shared VM this was written on, paired runs against the two-stream read
// probe (bench/probes.h) gave 4 runs 0.88-1.03 and 1 run 0.78-0.80 in some minutes, 1 run
// 0.85-0.91 and 4 runs 0.66-0.78 in others (2 runs between the two).  So each thread times its
// large matvecs (rdtsc), keeps a running average of bytes per tick for each count, reads with
// the best, and tries the next count on every MV_EXPLORE-th large call.  First it times every
// count MV_WARM times, in turns: one sample on this shared machine can be 0.75 of the same
// count's rate a few calls later, and a benchmark's dozen calls would otherwise read with a
// count picked on one such sample.  A count tried again starts its average afresh: a rate
// from minutes ago (another load on the machine, another thread reading beside this one)
// would otherwise stand against the best's recent ones.  The averages are kept per width and
// per activation kind (16-bit activations do twice the products per byte; their best count
// can differ).  The counts depend on the width: 1, 2, 4 with 256-bit products (8 runs read
// less on the AMD VM; with 16-bit activations their 32 accumulators alone fill the
// registers), 2, 4, 8 with 512-bit ones (on the AMD VM 1 run read 0.6 of the probe).  Calls
// under MV_TUNE_BYTES, too short to time one by one, read untimed with mv_small[width] runs:
// 2 with 256-bit products, 8 with 512-bit ones, if they have two panels per run (else 2).  A
// decode step is mostly such calls (a ~110M model's 768 x 768 and 2048 x 768 matrices, 0.7-1.8
// MB each).  On the AMD (Zen 5) VM, its q8 decode in one process, 64 steps with 8 runs and 64
// with 2 taking turns, median of the per-turn ratios: 16-bit activations 1.05-1.11 on 1 thread
// (faster in 49 of 51 turns), 1.13 on 2 (15 of 15); 8-bit 0.99-1.01 on 1 thread, 1.03 on 2 (13
// of 15).  stories260K (4-32 panels per call, in cache): 8 runs always 0.987 of 2 (faster in 2
// of 21 turns), 8 only from 16 panels 0.999 (10 of 21).  Not measured on Intel cores, whose
// default is 256-bit products.
// simd_q8_matvec_streams and simd_q8_matvec_width (simd.h) force a count and a width.
#define MV_TUNE_BYTES ((size_t)8 << 20)
#define MV_EXPLORE 8
#define MV_WARM 2
static const int mv_counts[2][3] = {{1, 2, 4}, {2, 4, 8}};
static const int mv_small[2] = {2, 8};
typedef struct {
    double rate[3];   // bytes per tick per count, running average
    unsigned n[3];    // times each count was timed
    unsigned calls;   // large calls after the warm-up
} MvTune;
static _Thread_local MvTune mv_tune[2][2];   // [width: 256, 512][activation digits - 1]

// The count to read with (index into mv_counts[z]); *fresh: its average restarts.
static int mv_pick(MvTune *t, int *fresh)
{
    const double *r = t->rate;
    int best = 0, least = 0;
    for (int k = 1; k < 3; k++) {
        if (t->n[k] < t->n[least]) least = k;
        if (r[k] > r[best]) best = k;
    }
    if (t->n[least] < MV_WARM) {   // warm-up: each count in turn
        *fresh = t->n[least] == 0;
        return least;
    }
    *fresh = ++t->calls % MV_EXPLORE == 0;   // explore: one of the other two, in turn
    return *fresh ? (best + 1 + (int)(t->calls / MV_EXPLORE) % 2) % 3 : best;
}

static int mv_wide(void)
{
    int w = simd_q8_matvec_width_forced();
    return (w ? w : simd_q8_matvec_width_default()) == 512;
}

AI void matvec_q8_w(const int Z, const int DG, const int ns, float *y, const Q8Panels *W, const Q8Act *x,
                    size_t p0, size_t p1)
{
    if (ns == 1) matvec_q8_runs(Z, DG, 1, y, W, x, p0, p1);
    else if (ns == 2) matvec_q8_runs(Z, DG, 2, y, W, x, p0, p1);
    else if (ns == 4) matvec_q8_runs(Z, DG, 4, y, W, x, p0, p1);
    else matvec_q8_runs(Z, DG, 8, y, W, x, p0, p1);
}

AI void matvec_q8_dg(const int DG, float *y, const Q8Panels *W, const Q8Act *x, size_t p0, size_t p1)
{
    int ns = simd_q8_matvec_streams_forced(), z = mv_wide();
    size_t bytes = (p1 - p0) * W->nb * Q8_PANEL_BLOCK_BYTES;
    int k = -1, fresh = 0;
    MvTune *t = &mv_tune[z][DG - 1];
    if (!ns) {
        if (bytes < MV_TUNE_BYTES) ns = p1 - p0 >= 2 * (size_t)mv_small[z] ? mv_small[z] : 2;
        else ns = mv_counts[z][k = mv_pick(t, &fresh)];
    }
    uint64_t t0 = k >= 0 ? __rdtsc() : 0;
    if (z) matvec_q8_w(1, DG, ns, y, W, x, p0, p1);
    else matvec_q8_w(0, DG, ns, y, W, x, p0, p1);
    if (k >= 0) {
        uint64_t dt = __rdtsc() - t0;
        double r = (double)bytes / (double)(dt ? dt : 1), *m = &t->rate[k];
        *m = fresh ? r : 0.5 * (*m + r);
        t->n[k]++;
    }
}

static void matvec_q8_avx512(float *y, const Q8Panels *W, const Q8Act *x, size_t p0, size_t p1)
{
    matvec_q8_dg(1, y, W, x, p0, p1);
}

static void matvec_q8x2_avx512(float *y, const Q8Panels *W, const Q8Act *x, size_t p0, size_t p1)
{
    matvec_q8_dg(2, y, W, x, p0, p1);
}

// ref: scalar.c matmul_q8t_scalar.  The same tiles over the transposed layout: no lane scales,
// the activation row of token t is t * nb + (column block of the panel).
static void matmul_q8t_avx512(float *Y, size_t ldy, const Q8PanelsT *Wt, const Q8Act *V, size_t T, size_t p0,
                              size_t p1)
{
    Q8Tile a = {.w = Wt->data, .pstride = Wt->ng * Q8_PANEL_QBYTES, .bstride = Q8_PANEL_QBYTES, .qoff = 0,
                .lane_scales = 0, .nblk = Wt->ng, .x = V, .xrow0 = 0, .xstep = Wt->nb, .Y = Y, .ldy = ldy,
                .nout = Wt->cols};
    panels_q8t_avx512(&a, T, p0, p1);
}

// ref: scalar.c encode_q8_scalar.  The GEMM tiles with the bias / threshold applied at the store.
static void encode_q8_avx512(float *pre, float *act, size_t ld, const Q8Panels *W, const Q8Act *X, size_t T,
                             size_t p0, size_t p1, const float *bias, const float *theta)
{
    Q8Tile a = tile_enc(W, X, pre, act, ld, bias, theta);
    panels_q8_avx512(&a, T, p0, p1);
}

// ---- int8: AMX (TDPBSUD) --------------------------------------------------------------------
// The "amx" table is the AVX-512 table with the batched int8 products (matmul_q8, matmul_q8x2,
// encode_q8) on the AMX tile unit (Sapphire Rapids and later); the decode matvec
// stays VNNI (it is DRAM-bound).  A panel's 512 quant bytes of one block are already an AMX
// "B" tile of 8 rows x 64 bytes (row j = 16 lanes x 4 consecutive columns, quant/q8.h), so
// nothing is repacked: per 32-column block, 16 activation rows (the "A" tile: 16 rows x 32
// bytes, strided straight from the Q8Act) times one panel is one TDPBSUD (signed activations
// x unsigned u8 = w + 128 weights) into a zeroed 16 x 16 int32 tile.  Each block has its own
// scales, so each product is stored (1 KiB, L1) and the float step is tile_q8_avx512's, one
// zmm row of 16 lanes per activation row: isum = C + nsum (removes the +128 exactly), then
// acc = fma(float(isum), dw * dx, acc).  Same integers, same float steps in the same order:
// the same bits as scalar.c.  Only whole tiles of 16 activation rows run here; the 1-15 rows
// left over go through the VNNI tiles (tokens_q8_avx512).
// Cost on the Intel Xeon VM, as fractions of the VNNI peak for the 64-row GEMM: the tile work
// alone (float step left out) runs at ~1.47, the float step alone at ~1.45 (4 vector ops per
// row and block: add, convert, multiply, fma); together ~0.70 with each product stored right
// after its TDPBSUD, ~0.80 (768 rows; ~0.75 at 2048) pipelined as below; without the 1 KiB
// stores it would be ~0.86.  TDPBSUD alone on 32-deep tiles runs at ~3.6x the VNNI peak; the
// VNNI tiles give ~0.55-0.58.  Gathering the 16 rows' scales and nsums side by side per block
// (amx_gather) keeps the float step from reloading 32 spilled row pointers (+7%).  Slower:
// seeding the product tile with the nsums (a tile load instead of tilezero and 16 adds; -15%);
// adding them by a second TDPBSUD of the negated activations by a constant tile of 128s
// (-10%); prefetching the next panel (+5% at 4096 rows, -5% at 768).  Linux gives a process
// the tile state only after arch_prctl(ARCH_REQ_XCOMP_PERM) (dispatch.c asks once, before
// any table is built); each call loads the tile configuration and releases the tiles when it
// returns.
#define AMX_M 16   // activation rows per tile (the tile unit's row count)
#define AMX_RING 4 // stored products: the float step's block b, b+1 and b+2 (being stored), and slack

// Tiles 0, 1: A (16 activation rows x 32 bytes); 2, 3: B (8 x 64 bytes: one panel block);
// 4, 5, 6: C (16 x 16 int32).  Even and odd blocks use the two A/B pairs; C rotates by 3.
static const _Alignas(64) AmxCfg amx_cfg = {
    .palette = 1,
    .colsb = {32, 32, 64, 64, 64, 64, 64},
    .rows = {AMX_M, AMX_M, 8, 8, AMX_M, AMX_M, AMX_M},
};

// One block's float step for the 16 rows: acc[m] = fma(float(C[m] + nsum[m]), dw * dx[m], acc[m]),
// with the block's 16 row scales dx and nsums gathered side by side beforehand (amx_gather).
AI void amx_step(__m512 acc[AMX_M], const int32_t *c, const uint8_t *blk, const float *dx, const int32_t *ns)
{
#if defined(__clang__)
    // clang folds the ring slot and the block offsets into base + index addresses, and Intel
    // cores split an AVX-512 instruction's base + index memory operand into 2 uops: all 48
    // loads here (64-row GEMM 0.68 of the VNNI peak).  Opaque pointers keep them base +
    // displacement (0.79-0.84), as gcc emits anyway (for gcc the barrier costs 10%).
    __asm__("" : "+r"(c), "+r"(blk), "+r"(dx), "+r"(ns));
#endif
    __m512 sw = _mm512_loadu_ps((const float *)blk);   // the panel's 16 row scales dw
#pragma GCC unroll 16
    for (int m = 0; m < AMX_M; m++) {
        __m512i is = _mm512_add_epi32(_mm512_load_si512((const void *)(c + 16 * m)), _mm512_set1_epi32(ns[m]));
        __m512 d = _mm512_set1_ps(dx[m]);
        __m512 s = _mm512_mul_ps(sw, d);   // dw * dx, one rounding
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), s, acc[m]);
    }
}

// Panel p x activation rows t0 .. t0+15 over every block (tile_q8_avx512 with TT = 16, R = 1).
// dx, ns: the rows' scales and nsums, block by block, 16 per block (amx_gather).
AI void tile_amx(const Q8Tile *a, size_t p, size_t t0, const float *dx, const int32_t *ns)
{
    const Q8Act *x = a->x;
    const size_t rs = a->xstep * x->nb, r0 = (a->xrow0 + t0 * a->xstep) * x->nb;   // in blocks
    const int8_t *xq = x->q + r0 * 32;
    const size_t bs = a->bstride, nblk = a->nblk, qo = a->qoff, xstride = rs * 32;
    const uint8_t *wp = a->w + p * a->pstride;
    _Alignas(64) int32_t c[AMX_RING][AMX_M * 16];
    __m512 acc[AMX_M];
#pragma GCC unroll 16
    for (int m = 0; m < AMX_M; m++) acc[m] = _mm512_setzero_ps();
    // Software pipelining: block b+3's tile product is issued, then block b+2's product
    // (finished meanwhile) is stored, then block b's float step reads the product stored two
    // iterations earlier.  Products rotate over three C tiles (block % 3) and their inputs over
    // two A/B pairs (block % 2); the stores over a ring of AMX_RING buffers.  Storing each
    // product right after its TDPBSUD (the tile unit runs its instructions in order, so the
    // store waited for the product) measured 6% slower; storing block b+1 before issuing b+2's
    // product, 30% slower; the step reading the product stored one iteration earlier (b+2
    // issued, b+1 stored, step b), ~5% slower (gcc; the same with clang).
#define AMX_DP(ta, tb, tc, bb)                                          \
    do {                                                                \
        _tile_loadd(ta, xq + (bb) * 32, xstride);                       \
        _tile_loadd(tb, wp + (bb) * bs + qo, 64);                       \
        _tile_zero(tc);                                                 \
        _tile_dpbsud(tc, ta, tb);                                       \
    } while (0)
#define AMX_PRODUCT(blk)                                                \
    do {                                                                \
        const size_t bb_ = (blk);                                       \
        switch (bb_ % 6) {                                              \
        case 0: AMX_DP(0, 2, 4, bb_); break;                            \
        case 1: AMX_DP(1, 3, 5, bb_); break;                            \
        case 2: AMX_DP(0, 2, 6, bb_); break;                            \
        case 3: AMX_DP(1, 3, 4, bb_); break;                            \
        case 4: AMX_DP(0, 2, 5, bb_); break;                            \
        default: AMX_DP(1, 3, 6, bb_); break;                           \
        }                                                               \
    } while (0)
#define AMX_SAVE(blk)                                                   \
    do {                                                                \
        const size_t bb_ = (blk);                                       \
        int32_t *c_ = c[bb_ % AMX_RING];                                \
        switch (bb_ % 3) {                                              \
        case 0: _tile_stored(4, c_, 64); break;                         \
        case 1: _tile_stored(5, c_, 64); break;                         \
        default: _tile_stored(6, c_, 64); break;                        \
        }                                                               \
    } while (0)
#define AMX_STEP(blk) amx_step(acc, c[(blk) % AMX_RING], wp + (blk) * bs, dx + (blk) * AMX_M, ns + (blk) * AMX_M)
    size_t b = 0;
    AMX_PRODUCT(0);
    if (nblk > 1) AMX_PRODUCT(1);
    if (nblk > 2) AMX_PRODUCT(2);
    AMX_SAVE(0);
    if (nblk > 1) AMX_SAVE(1);
    for (; b + 3 < nblk; b++) {
        AMX_PRODUCT(b + 3);
        AMX_SAVE(b + 2);
        AMX_STEP(b);
    }
    for (; b < nblk; b++) {   // the last three blocks (all of them when nblk <= 3)
        if (b + 2 < nblk) AMX_SAVE(b + 2);
        AMX_STEP(b);
    }
#undef AMX_DP
#undef AMX_PRODUCT
#undef AMX_SAVE
#undef AMX_STEP
    if (a->pairs) {   // t0 is a multiple of 16: rows 2t, 2t+1 are token t's digits
#pragma GCC unroll 8
        for (int m = 0; m < AMX_M; m += 2) q8_store(a, (t0 + m) / 2, p * 16, _mm512_add_ps(acc[m], acc[m + 1]));
    } else {
#pragma GCC unroll 16
        for (int m = 0; m < AMX_M; m++) q8_store(a, t0 + m, p * 16, acc[m]);
    }
}

// The scales and nsums of activation rows t < Tf (a multiple of 16), block by block for each
// 16-row tile: dx[(j * nblk + b) * 16 + m] is row 16 j + m's scale of block b (ns: its nsum).
static void amx_gather(float *dx, int32_t *ns, const Q8Tile *a, size_t Tf)
{
    const Q8Act *x = a->x;
    for (size_t t = 0; t < Tf; t++) {
        const size_t r = (a->xrow0 + t * a->xstep) * x->nb, o = (t / AMX_M) * a->nblk * AMX_M + t % AMX_M;
        for (size_t b = 0; b < a->nblk; b++) {
            dx[o + b * AMX_M] = x->d[r + b];
            ns[o + b * AMX_M] = x->nsum[r + b];
        }
    }
}

// Rows [0, T) of panels [p0, p1) of W x: whole 16-row tiles on AMX, panel by panel (a panel's
// blocks stay in L1 while every row tile passes), then the rest through the VNNI panels.  The
// gathered scales take 8 bytes per row and block: on the stack up to AMX_STACK rows x blocks,
// else malloc'd; without memory, or without columns (the tile pipeline issues its first
// product unconditionally), every row runs on VNNI.  (The transposed product stays VNNI:
// there each activation row meets only one pair of panels, so gathering its scales would cost
// about what the tiles save; measured 0.45 of the VNNI peak against VNNI's 0.52-0.56.)
#define AMX_STACK 4096
static void panels_amx(const Q8Tile *a, size_t T, size_t p0, size_t p1)
{
    size_t Tf = a->nblk ? T / AMX_M * AMX_M : 0;
    const size_t per = Tf * a->nblk;
    float sdx[AMX_STACK];
    int32_t sns[AMX_STACK];
    float *dx = sdx;
    int32_t *ns = sns;
    void *heap = NULL;
    if (Tf && p1 > p0 && per > AMX_STACK) {
        heap = malloc(per * (sizeof(float) + sizeof(int32_t)));
        if (heap) dx = heap, ns = (int32_t *)(void *)(dx + per);
        else Tf = 0;
    }
    if (Tf && p1 > p0) {
        amx_gather(dx, ns, a, Tf);
        _tile_loadconfig(&amx_cfg);
        for (size_t p = p0; p < p1; p++)
            for (size_t t0 = 0; t0 < Tf; t0 += AMX_M) tile_amx(a, p, t0, dx + t0 * a->nblk, ns + t0 * a->nblk);
        _tile_release();
    }
    free(heap);
    if (Tf == T) return;
    // The rest: the same Q8Tile over activation rows Tf .. T-1 (a shifted view of the Q8Act).
    const Q8Act *x = a->x;
    const size_t off = Tf * a->xstep * x->nb;   // blocks
    Q8Act xr = *x;
    xr.q += off * 32;
    xr.d += off;
    xr.nsum += off;
    xr.T -= Tf * a->xstep;
    Q8Tile b = *a;
    b.x = &xr;
    const size_t tok = a->pairs ? Tf / 2 : Tf;
    b.Y += tok * a->ldy;
    if (b.pre) b.pre += tok * a->ldy;
    panels_q8_avx512(&b, T - Tf, p0, p1);
}

// ref: scalar.c matmul_q8_scalar.
static void matmul_q8_amx(float *Y, size_t ldy, const Q8Panels *W, const Q8Act *X, size_t T, size_t p0, size_t p1)
{
    Q8Tile a = tile_fwd(W, X, Y, ldy);
    panels_amx(&a, T, p0, p1);
}

// ref: scalar.c matmul_q8x2_scalar.  The 2T digit rows; 16-row tiles hold 8 whole tokens.
static void matmul_q8x2_amx(float *Y, size_t ldy, const Q8Panels *W, const Q8Act *X, size_t T, size_t p0,
                            size_t p1)
{
    Q8Tile a = tile_fwd(W, X, Y, ldy);
    a.pairs = 1;
    panels_amx(&a, 2 * T, p0, p1);
}

// ref: scalar.c encode_q8_scalar.
static void encode_q8_amx(float *pre, float *act, size_t ld, const Q8Panels *W, const Q8Act *X, size_t T,
                          size_t p0, size_t p1, const float *bias, const float *theta)
{
    Q8Tile a = tile_enc(W, X, pre, act, ld, bias, theta);
    panels_amx(&a, T, p0, p1);
}

// y (16 lanes) + s * q: product rounded, then the add (no FMA), as in scalar.c.
AI __m512 dec16(__m512 y, __m512 s, const int8_t *q)
{
    __m512 qf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q)));
    return _mm512_add_ps(y, _mm512_mul_ps(s, qf));
}

// ---- activation quantization (ref: scalar.c q8_act_row_scalar, quant/q8.c) -------------------
// One block = two zmm (a zero-masked load pads a short tail).  The largest |x| on float bits
// (integer order = float order for non-negative floats; NaN / Inf above FLT_MAX's bits), the
// scale by the same scalar division as q8.c, then q8.c's rounding (x * id + magic - magic,
// no FMA) and clamp (min / max: the values are never NaN here), exact conversions, and
// vpmovdb for the bytes: the same float steps, so the same bytes as scalar.c.
AI int act_amax16(__m512 x0, __m512 x1, float *amax)
{
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
    __m512i m = _mm512_max_epi32(_mm512_and_si512(_mm512_castps_si512(x0), abs_mask),
                                 _mm512_and_si512(_mm512_castps_si512(x1), abs_mask));
    int32_t b = _mm512_reduce_max_epi32(m);
    memcpy(amax, &b, sizeof *amax);
    return b > 0x7f7fffff;   // NaN or Inf
}

AI __m512 act_round(__m512 x, __m512 id)
{
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    return _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(x, id), magic), magic);
}

static void q8_act_row_avx512(int8_t *q, float *d, int32_t *nsum, size_t lo, const float *x, size_t cols, int digits)
{
    size_t nb = q8_nblocks(cols);
    for (size_t b = 0; b < nb; b++) {
        size_t n = cols - b * QK8 < QK8 ? cols - b * QK8 : QK8;
        const float *xb = x + b * QK8;
        __mmask16 m0 = n >= 16 ? 0xffff : tail_mask16(n), m1 = n >= 32 ? 0xffff : n > 16 ? tail_mask16(n - 16) : 0;
        __m512 x0 = _mm512_maskz_loadu_ps(m0, xb), x1 = _mm512_maskz_loadu_ps(m1, xb + 16);
        float amax;
        int bad = act_amax16(x0, x1, &amax);
        int8_t *qh = q + b * QK8, *ql = q + (lo + b) * QK8;
        if (bad || !(amax >= Q8_TINY)) {   // honest NaN, or an all-zero block
            simd_q8_act_zero_block(q, d, nsum, lo, b, digits, bad);
            continue;
        }
        if (digits == 1) {
            const __m512 lim = _mm512_set1_ps(127.0f), nlim = _mm512_set1_ps(-127.0f), id = _mm512_set1_ps(127.0f / amax);
            __m512i q0 = _mm512_cvttps_epi32(_mm512_max_ps(_mm512_min_ps(act_round(x0, id), lim), nlim));
            __m512i q1 = _mm512_cvttps_epi32(_mm512_max_ps(_mm512_min_ps(act_round(x1, id), lim), nlim));
            _mm_storeu_si128((__m128i *)qh, _mm512_cvtepi32_epi8(q0));
            _mm_storeu_si128((__m128i *)(qh + 16), _mm512_cvtepi32_epi8(q1));
            d[b] = amax / 127.0f;
            nsum[b] = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
            continue;
        }
        // 16-bit: s a power of two, v = round(x / s) clamped to +-32639, v = 256 hi + lo, a v
        // with lo = +-128 moved by one towards x / s (q8_act_block16's steps; every product is
        // by a power of two and every value a small integer, so all of it is exact).
        const float vmax = (float)Q8_VMAX16, sc = q8_pow2_ceil(amax / vmax);
        const __m512 vm = _mm512_set1_ps(vmax), nvm = _mm512_set1_ps(-vmax), id = _mm512_set1_ps(1.0f / sc),
                     idg = _mm512_set1_ps(1.0f / (float)Q8_DIGIT), vdg = _mm512_set1_ps((float)Q8_DIGIT),
                     lim = _mm512_set1_ps(127.0f), nlim = _mm512_set1_ps(-127.0f), one = _mm512_set1_ps(1.0f),
                     mone = _mm512_set1_ps(-1.0f);
        __m512i sh = _mm512_setzero_si512(), sl = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m512 r = _mm512_mul_ps(h ? x1 : x0, id);
            __m512 v = _mm512_max_ps(_mm512_min_ps(act_round(r, one), vm), nvm);
            __m512 hk = act_round(v, idg);
            __m512 lk = _mm512_sub_ps(v, _mm512_mul_ps(vdg, hk));
            __mmask16 odd = _mm512_cmp_ps_mask(lk, lim, _CMP_GT_OQ) | _mm512_cmp_ps_mask(lk, nlim, _CMP_LT_OQ);
            __mmask16 up = _mm512_cmp_ps_mask(r, v, _CMP_GT_OQ);
            v = _mm512_mask_add_ps(v, odd, v, _mm512_mask_blend_ps(up, mone, one));
            hk = act_round(v, idg);
            lk = _mm512_sub_ps(v, _mm512_mul_ps(vdg, hk));
            __m512i hi = _mm512_cvttps_epi32(hk), lw = _mm512_cvttps_epi32(lk);
            sh = _mm512_add_epi32(sh, hi);
            sl = _mm512_add_epi32(sl, lw);
            _mm_storeu_si128((__m128i *)(qh + 16 * h), _mm512_cvtepi32_epi8(hi));
            _mm_storeu_si128((__m128i *)(ql + 16 * h), _mm512_cvtepi32_epi8(lw));
        }
        d[lo + b] = sc;
        d[b] = sc * (float)Q8_DIGIT;
        nsum[b] = -128 * _mm512_reduce_add_epi32(sh);
        nsum[lo + b] = -128 * _mm512_reduce_add_epi32(sl);
    }
}

// ref: scalar.c decode_rows_q8_scalar.  Four rows per pass over y (y stays in L1; each row is
// read once, sequentially); per element the rows are still added one after another in order.
static void decode_rows_q8_avx512(float *y, const BlockQ8 *W, size_t stride, const int *idx, const float *val,
                                  size_t n, size_t D)
{
    size_t nfull = D / 32, rem = D % 32;
    for (size_t i = 0; i < n; i += 4) {
        size_t m = n - i < 4 ? n - i : 4;
        const BlockQ8 *rw[4];
        for (size_t k = 0; k < m; k++) rw[k] = W + (size_t)idx[i + k] * stride;
        for (size_t bb = 0; bb < nfull; bb++) {
            __m512 y0 = _mm512_loadu_ps(y + 32 * bb), y1 = _mm512_loadu_ps(y + 32 * bb + 16);
            for (size_t k = 0; k < m; k++) {
                __m512 s = _mm512_set1_ps(val[i + k] * rw[k][bb].d);
                y0 = dec16(y0, s, rw[k][bb].qs);
                y1 = dec16(y1, s, rw[k][bb].qs + 16);
            }
            _mm512_storeu_ps(y + 32 * bb, y0);
            _mm512_storeu_ps(y + 32 * bb + 16, y1);
        }
        if (rem) {   // partial last block: masked y; the block's unused quants are zeros
            __mmask16 m0 = rem >= 16 ? (__mmask16)0xffff : tail_mask16(rem);
            __mmask16 m1 = rem > 16 ? tail_mask16(rem - 16) : 0;
            float *yb = y + 32 * nfull;
            __m512 y0 = _mm512_maskz_loadu_ps(m0, yb), y1 = _mm512_maskz_loadu_ps(m1, yb + 16);
            for (size_t k = 0; k < m; k++) {
                __m512 s = _mm512_set1_ps(val[i + k] * rw[k][nfull].d);
                y0 = dec16(y0, s, rw[k][nfull].qs);
                y1 = dec16(y1, s, rw[k][nfull].qs + 16);
            }
            _mm512_mask_storeu_ps(yb, m0, y0);
            _mm512_mask_storeu_ps(yb + 16, m1, y1);
        }
    }
}

// ---- bf16 weights -------------------------------------------------------------------------------
// 16 bf16 -> 16 fp32: zero-extend each to 32 bits, shift into the upper half (exact).
AI __m512 widen16(const uint16_t *p)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
AI __m512 widen16_maskz(__mmask16 m, const uint16_t *p)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

// Decode (one token): each 64-byte line a tile reads, it prefetches the line at the same place
// in the next tile (R rows down; the weights are contiguous, so past the last tile this is the
// next matrix).  Model rows are short (768 bf16 = 1.5 KiB): the hardware prefetcher alone
// stalls at every tile; measured 1.2-1.4x decode tokens/s on a 110M model (Zen 5).
#define PF_NEXT_TILE(W, R, r, ldw, c) \
    _mm_prefetch((const char *)((uintptr_t)(W) + (((r) + (R)) * (ldw) + (c)) * sizeof(uint16_t)), _MM_HINT_T0)
// ref: scalar.c dot_bf16w_scalar (per output).  tile_avx512 with the weight loads widened:
// the same accumulators, chunks, masked tail and tree, so each output is bit-identical to
// dot_f32_avx512 on the widened row.
AI void tile_bf16w_avx512(const int R, const int TT, float *Y, size_t ldy, const uint16_t *W, size_t ldw,
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
                if (TT == 1 && k == 0) PF_NEXT_TILE(W, R, r, ldw, c);
                __m512 wv = widen16(W + r * ldw + c + 16 * k);
                if (TT > 1) __asm__("" : "+v"(wv));   // widen once per weight vector, not per token
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
            __m512 wv = widen16(W + r * ldw + c);
#pragma GCC unroll 3
            for (int t = 0; t < TT; t++) acc[r][t][0] = _mm512_fmadd_ps(wv, xv[t], acc[r][t][0]);
        }
        c += 16;
    }
    if (c < cols) {         // < 16 left: masked loads, zeros elsewhere, into a1
        __mmask16 m = tail_mask16(cols - c);
        __m512 xv[3];
#pragma GCC unroll 3
        for (int t = 0; t < TT; t++) xv[t] = _mm512_maskz_loadu_ps(m, X + t * ldx + c);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 wv = widen16_maskz(m, W + r * ldw + c);
#pragma GCC unroll 3
            for (int t = 0; t < TT; t++) acc[r][t][1] = _mm512_fmadd_ps(wv, xv[t], acc[r][t][1]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int t = 0; t < TT; t++) Y[t * ldy + r] = hsum16(_mm512_add_ps(acc[r][t][0], acc[r][t][1]));
}

// ref: scalar.c matvec_bf16w_scalar.  4 rows share each x load, as matvec_f32_avx512.
static void matvec_bf16w_avx512(float *y, const uint16_t *W, const float *x, size_t rows, size_t cols)
{
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) tile_bf16w_avx512(4, 1, y + r, 0, W + r * cols, cols, x, 0, cols);
    for (; r < rows; r++) tile_bf16w_avx512(1, 1, y + r, 0, W + r * cols, cols, x, 0, cols);
}

// ref: scalar.c matmul_bf16w_scalar.  matmul_f32_avx512's blocking: ~256 KiB of bf16 rows per
// block, 4x3 register tiles, leftover tokens through the matvec tiles.
static void matmul_bf16w_avx512(float *Y, const uint16_t *W, const float *X, size_t T, size_t rows, size_t cols)
{
    if (T == 1) {
        matvec_bf16w_avx512(Y, W, X, rows, cols);
        return;
    }
    size_t rb = cols ? (128 * 1024) / cols : rows;
    rb = rb < 4 ? 4 : rb & ~(size_t)3;
    for (size_t r0 = 0; r0 < rows; r0 += rb) {
        size_t r1 = r0 + rb < rows ? r0 + rb : rows;
        size_t t = 0;
        for (; t + 3 <= T; t += 3) {
            const float *Xt = X + t * cols;
            float *Yt = Y + t * rows;
            size_t r = r0;
            for (; r + 4 <= r1; r += 4) tile_bf16w_avx512(4, 3, Yt + r, rows, W + r * cols, cols, Xt, cols, cols);
            for (; r < r1; r++) tile_bf16w_avx512(1, 3, Yt + r, rows, W + r * cols, cols, Xt, cols, cols);
        }
        for (; t < T; t++) {
            const float *Xt = X + t * cols;
            float *Yt = Y + t * rows;
            size_t r = r0;
            for (; r + 4 <= r1; r += 4) tile_bf16w_avx512(4, 1, Yt + r, 0, W + r * cols, cols, Xt, 0, cols);
            for (; r < r1; r++) tile_bf16w_avx512(1, 1, Yt + r, 0, W + r * cols, cols, Xt, 0, cols);
        }
    }
}

// ---- bf16dot: VDPBF16PS (AVX512_BF16) -----------------------------------------------------------
// 32 activations -> 32 bf16 (VCVTNE2PS2BF16: RNE, DAZ, quiet NaN), zeros past m (m <= 32).
AI __m512bh xbf16_maskz(const float *x, size_t m)
{
    __mmask16 lo = m >= 16 ? (__mmask16)0xffff : tail_mask16(m);
    __mmask16 hi = m >= 32 ? (__mmask16)0xffff : m > 16 ? tail_mask16(m - 16) : 0;
    return _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + 16), _mm512_maskz_loadu_ps(lo, x));
}
AI __m512bh xbf16(const float *x) { return _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x)); }
AI __m512bh wbf16(const uint16_t *p) { return (__m512bh)_mm512_loadu_si512((const void *)p); }

// Activation chunk c..c+31 of token t: from the pre-rounded rows XB (bf16, stride ldb) when
// the caller converted them, else converted here.  Either way the same bf16 values.
AI __m512bh xchunk(const uint16_t *XB, size_t ldb, const float *X, size_t ldx, int t, size_t c)
{
    return XB ? wbf16(XB + t * ldb + c) : xbf16(X + t * ldx + c);
}

// ref: scalar.c dot_bf16dot_scalar (per output).  An R x TT tile: each 32-column chunk of W is
// one load feeding TT dot-pair instructions, each activation chunk feeds R rows.  Chunks
// alternate between a0 and a1 (chunk j -> a_(j mod 2)), the partial last chunk zero-padded.
// XB != NULL: the activations already rounded (a 4x3 tile is then 7 loads per 12 VDPBF16PS
// instead of 10 loads and 3 conversions).
AI void tile_bf16dot_avx512(const int R, const int TT, float *Y, size_t ldy, const uint16_t *W, size_t ldw,
                            const float *X, size_t ldx, const uint16_t *XB, size_t ldb, size_t cols)
{
    __m512 acc[4][3][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int t = 0; t < TT; t++) acc[r][t][0] = acc[r][t][1] = _mm512_setzero_ps();

    size_t c = 0;
    for (; c + 64 <= cols; c += 64) {
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++) {
            __m512bh xv[3];
#pragma GCC unroll 3
            for (int t = 0; t < TT; t++) xv[t] = xchunk(XB, ldb, X, ldx, t, c + 32 * k);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                if (TT == 1) PF_NEXT_TILE(W, R, r, ldw, c + 32 * k);
                __m512bh wv = wbf16(W + r * ldw + c + 32 * k);
#pragma GCC unroll 3
                for (int t = 0; t < TT; t++) acc[r][t][k] = _mm512_dpbf16_ps(acc[r][t][k], wv, xv[t]);
            }
        }
    }
    int k = 0;              // the next chunk's accumulator
    if (c + 32 <= cols) {   // one full chunk left: into a0
        __m512bh xv[3];
#pragma GCC unroll 3
        for (int t = 0; t < TT; t++) xv[t] = xchunk(XB, ldb, X, ldx, t, c);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512bh wv = wbf16(W + r * ldw + c);
#pragma GCC unroll 3
            for (int t = 0; t < TT; t++) acc[r][t][0] = _mm512_dpbf16_ps(acc[r][t][0], wv, xv[t]);
        }
        c += 32;
        k = 1;
    }
    if (c < cols) {         // < 32 left: zero-padded chunk (masked loads: no fault past the end)
        size_t m = cols - c;
        __mmask32 mw = (__mmask32)((1u << m) - 1u);
        __m512bh xv[3];
#pragma GCC unroll 3
        for (int t = 0; t < TT; t++)
            xv[t] = XB ? (__m512bh)_mm512_maskz_loadu_epi16(mw, XB + t * ldb + c) : xbf16_maskz(X + t * ldx + c, m);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(mw, W + r * ldw + c);
#pragma GCC unroll 3
            for (int t = 0; t < TT; t++) acc[r][t][k] = _mm512_dpbf16_ps(acc[r][t][k], wv, xv[t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int t = 0; t < TT; t++) Y[t * ldy + r] = hsum16(_mm512_add_ps(acc[r][t][0], acc[r][t][1]));
}

// Rows of X rounded to bf16 once per call into a stack buffer (VCVTNE2PS2BF16, the values the
// tiles would convert), when they fit: XB_COLS columns x XB_ROWS rows (48 KiB).
#define XB_COLS 8192
#define XB_ROWS 3
AI void round_rows_bf16(uint16_t *dst, size_t ldb, const float *X, size_t ldx, size_t n, size_t cols)
{
    for (size_t t = 0; t < n; t++) {
        size_t c = 0;
        for (; c + 32 <= cols; c += 32) _mm512_storeu_si512((void *)(dst + t * ldb + c), (__m512i)xbf16(X + t * ldx + c));
        if (c < cols)
            _mm512_mask_storeu_epi16(dst + t * ldb + c, (__mmask32)((1u << (cols - c)) - 1u),
                                     (__m512i)xbf16_maskz(X + t * ldx + c, cols - c));
    }
}

// ref: scalar.c matvec_bf16dot_scalar.  x rounded once, then 4-row tiles.
static void matvec_bf16dot_avx512(float *y, const uint16_t *W, const float *x, size_t rows, size_t cols)
{
    uint16_t xb[XB_COLS];
    const uint16_t *XB = NULL;
    if (cols <= XB_COLS && rows >= 8) {
        round_rows_bf16(xb, 0, x, 0, 1, cols);
        XB = xb;
    }
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) tile_bf16dot_avx512(4, 1, y + r, 0, W + r * cols, cols, x, 0, XB, 0, cols);
    for (; r < rows; r++) tile_bf16dot_avx512(1, 1, y + r, 0, W + r * cols, cols, x, 0, XB, 0, cols);
}

// ref: scalar.c matmul_bf16dot_scalar.  The blocking of matmul_bf16w_avx512; each 3-token
// tile of X is rounded once per row block (1/RB of the products' work) and reused by every
// 4-row tile of the block.
static void matmul_bf16dot_avx512(float *Y, const uint16_t *W, const float *X, size_t T, size_t rows, size_t cols)
{
    if (T == 1) {
        matvec_bf16dot_avx512(Y, W, X, rows, cols);
        return;
    }
    uint16_t xb[XB_ROWS * XB_COLS];
    const int pre = cols <= XB_COLS;
    const uint16_t *XB = pre ? xb : NULL;
    size_t rb = cols ? (128 * 1024) / cols : rows;
    rb = rb < 4 ? 4 : rb & ~(size_t)3;
    for (size_t r0 = 0; r0 < rows; r0 += rb) {
        size_t r1 = r0 + rb < rows ? r0 + rb : rows;
        size_t t = 0;
        for (; t + 3 <= T; t += 3) {
            const float *Xt = X + t * cols;
            float *Yt = Y + t * rows;
            if (pre) round_rows_bf16(xb, cols, Xt, cols, 3, cols);
            size_t r = r0;
            for (; r + 4 <= r1; r += 4) tile_bf16dot_avx512(4, 3, Yt + r, rows, W + r * cols, cols, Xt, cols, XB, cols, cols);
            for (; r < r1; r++) tile_bf16dot_avx512(1, 3, Yt + r, rows, W + r * cols, cols, Xt, cols, XB, cols, cols);
        }
        for (; t < T; t++) {
            const float *Xt = X + t * cols;
            float *Yt = Y + t * rows;
            if (pre) round_rows_bf16(xb, cols, Xt, cols, 1, cols);
            size_t r = r0;
            for (; r + 4 <= r1; r += 4) tile_bf16dot_avx512(4, 1, Yt + r, 0, W + r * cols, cols, Xt, 0, XB, 0, cols);
            for (; r < r1; r++) tile_bf16dot_avx512(1, 1, Yt + r, 0, W + r * cols, cols, Xt, 0, XB, 0, cols);
        }
    }
}

// ---- does 512-bit vpdpbusd lower this core's clock? (the decode matvec's default width) ----
// Ticks (rdtsc: constant rate) of `steps` steps of a chain of 8 dependent adds (8 cycles a
// step at any clock), alone or beside four independent 512-bit vpdpbusd per step (2 cycles
// of the two vector ports: they do not slow the chain, only the clock can).
#define CLK_ADD8 "add %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\t" \
                 "add %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\t"
static volatile uint64_t clock_sink;
__attribute__((noinline)) static uint64_t clock_ticks(long steps, int beside)
{
    uint64_t c = 1, t0 = __rdtsc();
    if (beside) {
        __m512i a0 = _mm512_set1_epi32(1), a1 = a0, a2 = a0, a3 = a0;
        const __m512i u = _mm512_set1_epi8(3), v = _mm512_set1_epi8(-5);
        for (long i = 0; i < steps; i++)
            __asm__ volatile(CLK_ADD8 "vpdpbusd %5, %6, %1\n\tvpdpbusd %5, %6, %2\n\t"
                                      "vpdpbusd %5, %6, %3\n\tvpdpbusd %5, %6, %4"
                             : "+r"(c), "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3)
                             : "v"(u), "v"(v));
        __m512i x = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
        c += (uint32_t)_mm_cvtsi128_si32(_mm512_castsi512_si128(x));   // keeps the products live
    } else {
        for (long i = 0; i < steps; i++) __asm__ volatile(CLK_ADD8 : "+r"(c));
    }
    uint64_t dt = __rdtsc() - t0;
    clock_sink += c;
    return dt;
}

static uint64_t clock_least(long steps, int beside, int runs)
{
    uint64_t best = UINT64_MAX;
    for (int r = 0; r < runs; r++) {
        uint64_t t = clock_ticks(steps, beside);
        if (t < best) best = t;
    }
    return best;
}

// Median of 5 rounds of: a pause (a lowered clock comes back up ~2 ms after the last wide
// product, and earlier work in this process may have lowered it), the chain alone, the chain
// beside the products (after a warm-up: a clock change takes effect within ~0.5 ms).  Each
// figure is the least of a few runs; the median of rounds passes over the VM host's own clock
// steps (~7% here, at any moment).  ~20 ms in all.
double simd_avx512_vnni_clock_ratio(void)
{
    enum { ROUNDS = 5 };
    const long steps = 1L << 16;   // ~0.5 M cycles a run: ~0.2 ms at 3 GHz
    double r[ROUNDS];
    for (int k = 0; k < ROUNDS; k++) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        uint64_t alone = clock_least(steps, 0, 3);
        clock_least(steps, 1, 4);
        uint64_t beside = clock_least(steps, 1, 3);
        r[k] = beside ? (double)alone / (double)beside : 1.0;
        for (int m = k; m > 0 && r[m - 1] > r[m]; m--) {   // insertion sort
            double t = r[m];
            r[m] = r[m - 1];
            r[m - 1] = t;
        }
    }
    return r[ROUNDS / 2];
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
    k->dots_f32 = dots_f32_avx512;
    k->axpys_f32 = axpys_f32_avx512;
    k->axpyv_f32 = axpyv_f32_avx512;
    // VNNI is not part of the table's feature check (F+BW+VL+DQ): the int8 entries are filled
    // only on CPUs that have it, else build_tables (dispatch.c) gives them the avxvnni or avx2
    // table's.
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vnni")) {
        k->matvec_q8 = matvec_q8_avx512;
        k->matvec_q8x2 = matvec_q8x2_avx512;
        k->matmul_q8 = matmul_q8_avx512;
        k->matmul_q8x2 = matmul_q8x2_avx512;
        k->matmul_q8t = matmul_q8t_avx512;
        k->encode_q8 = encode_q8_avx512;
    }
    k->decode_rows_q8 = decode_rows_q8_avx512;
    k->q8_act_row = q8_act_row_avx512;
    k->matvec_bf16w = matvec_bf16w_avx512;
    k->matmul_bf16w = matmul_bf16w_avx512;
    // AVX512_BF16 is not part of the table's feature check either: without it the bf16dot
    // entries stay scalar.c's (same bits, much slower; the forward's default is bf16w).
    if (__builtin_cpu_supports("avx512bf16")) {
        k->matvec_bf16dot = matvec_bf16dot_avx512;
        k->matmul_bf16dot = matmul_bf16dot_avx512;
    }
}
// The AVX-512 table with the batched int8 products on AMX (dispatch.c runs this only where the
// CPU has AMX-TILE, AMX-INT8 and AVX512-VNNI and the kernel granted the tile state).
void simd_fill_amx(SimdKernels *k)
{
    simd_fill_avx512(k);
    k->name = "amx";
    k->matmul_q8 = matmul_q8_amx;
    k->matmul_q8x2 = matmul_q8x2_amx;
    k->encode_q8 = encode_q8_amx;
}
#else
typedef int ct_avx512_unused;
#endif
