// x86_avx2.c — AVX2 + FMA kernels.  Built with -mavx2 -mfma; dispatch.c calls
// simd_fill_avx2 only on CPUs that report both.
//
// One canonical reduction order serves dot, matvec and matmul, so every row of matvec and
// every (token, row) of matmul is bit-identical to dot_f32_avx2 (see simd.h):
//   two 8-lane accumulators a0, a1 step over 16 floats (a0 gets c..c+7, a1 c+8..c+15, fused
//   multiply-add); one more 8-float chunk goes to a0; the last <8 floats are a masked load
//   (zeros elsewhere) into a1; then a0 + a1 and a fixed tree reduction (hsum8).
// matvec/matmul only run several of these dot products side by side to reuse loads.
#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <sleef.h>
#include <string.h>

#include "simd/simd.h"

#define AI static inline __attribute__((always_inline))

// Lanes i < m all-ones (0 < m < 8): a window into -1 x 8, 0 x 8.
static const int32_t mask_window[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
AI __m256i tail_mask8(size_t m) { return _mm256_loadu_si256((const __m256i *)(mask_window + 8 - m)); }

// Fixed-order horizontal sum: 8 -> 4 (halves) -> 2 -> 1.
AI float hsum8(__m256 v)
{
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    return _mm_cvtss_f32(s1);
}

// ref: scalar.c dot_f32_scalar (per output).  An R-row x TT-token tile of dot products
// Y[t*ldy + r] = dot(W + r*ldw, X + t*ldx, cols) in the canonical order; R, TT are constants
// at every call site so the R*TT*2 accumulators stay in the 16 ymm registers.
AI void tile_avx2(const int R, const int TT, float *Y, size_t ldy, const float *W, size_t ldw,
                  const float *X, size_t ldx, size_t cols)
{
    __m256 acc[4][2][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();

    size_t c = 0;
    for (; c + 16 <= cols; c += 16) {
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++) {
            __m256 xv[2];
#pragma GCC unroll 2
            for (int t = 0; t < TT; t++) xv[t] = _mm256_loadu_ps(X + t * ldx + c + 8 * k);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m256 wv = _mm256_loadu_ps(W + r * ldw + c + 8 * k);
                if (TT > 1) __asm__("" : "+x"(wv));   // keep wv in a register: load W once, not per token
#pragma GCC unroll 2
                for (int t = 0; t < TT; t++) acc[r][t][k] = _mm256_fmadd_ps(wv, xv[t], acc[r][t][k]);
            }
        }
    }
    if (c + 8 <= cols) {    // one full chunk left: into a0
        __m256 xv[2];
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) xv[t] = _mm256_loadu_ps(X + t * ldx + c);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 wv = _mm256_loadu_ps(W + r * ldw + c);
#pragma GCC unroll 2
            for (int t = 0; t < TT; t++) acc[r][t][0] = _mm256_fmadd_ps(wv, xv[t], acc[r][t][0]);
        }
        c += 8;
    }
    if (c < cols) {         // < 8 left: vmaskmov loads (no fault past the end), zeros elsewhere, into a1
        __m256i m = tail_mask8(cols - c);
        __m256 xv[2];
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) xv[t] = _mm256_maskload_ps(X + t * ldx + c, m);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 wv = _mm256_maskload_ps(W + r * ldw + c, m);
#pragma GCC unroll 2
            for (int t = 0; t < TT; t++) acc[r][t][1] = _mm256_fmadd_ps(wv, xv[t], acc[r][t][1]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) Y[t * ldy + r] = hsum8(_mm256_add_ps(acc[r][t][0], acc[r][t][1]));
}

// ref: scalar.c dot_f32_scalar.  A 1x1 tile.
static float dot_f32_avx2(const float *a, const float *b, size_t n)
{
    float y;
    tile_avx2(1, 1, &y, 0, a, 0, b, 0, n);
    return y;
}

// ref: scalar.c dots_f32_scalar.  3 x 2 register tiles (keys x queries), the leftover query in
// 4 x 1; no cache blocking (a block of keys is small).  matvec and matmul (per block of rows)
// run through it, so their rows keep the same tiles.
static void dots_f32_avx2(float *Y, size_t ldy, const float *X, size_t ldx, size_t T, const float *W, size_t ldw,
                          size_t rows, size_t cols)
{
    size_t t = 0;
    for (; t + 2 <= T; t += 2) {
        size_t r = 0;
        for (; r + 3 <= rows; r += 3) tile_avx2(3, 2, Y + t * ldy + r, ldy, W + r * ldw, ldw, X + t * ldx, ldx, cols);
        for (; r < rows; r++) tile_avx2(1, 2, Y + t * ldy + r, ldy, W + r * ldw, ldw, X + t * ldx, ldx, cols);
    }
    for (; t < T; t++) {
        size_t r = 0;
        for (; r + 4 <= rows; r += 4) tile_avx2(4, 1, Y + t * ldy + r, 0, W + r * ldw, ldw, X + t * ldx, 0, cols);
        for (; r < rows; r++) tile_avx2(1, 1, Y + t * ldy + r, 0, W + r * ldw, ldw, X + t * ldx, 0, cols);
    }
}

// ref: scalar.c matvec_f32_scalar.  4 rows at a time share each x load (8 FMA chains).
static void matvec_f32_avx2(float *y, const float *W, const float *x, size_t rows, size_t cols)
{
    dots_f32_avx2(y, 0, x, 0, 1, W, cols, rows, cols);
}

// ref: scalar.c matmul_f32_scalar.  A block of RB weight rows (~256 KiB, stays in L2) is swept
// by every 2-token tile of X (stays in L1); inside, 3x2 register tiles (12 accumulators).
static void matmul_f32_avx2(float *Y, const float *W, const float *X, size_t T, size_t rows,
                            size_t cols)
{
    if (T == 1) {
        matvec_f32_avx2(Y, W, X, rows, cols);
        return;
    }
    size_t rb = cols ? (64 * 1024) / cols : rows;
    rb = rb < 3 ? 3 : rb - rb % 3;
    for (size_t r0 = 0; r0 < rows; r0 += rb) {
        size_t r1 = r0 + rb < rows ? r0 + rb : rows;
        dots_f32_avx2(Y + r0, rows, X, cols, T, W + r0 * cols, cols, r1 - r0, cols);
    }
}

// ref: scalar.c rmsnorm_f32_scalar.  Sum of squares is this table's dot(x, x); the scalar
// steps and the per-element w * (inv * x) are the reference's, so only the sum differs.
static float rmsnorm_f32_avx2(float *out, const float *x, const float *w, size_t n, float eps)
{
    if (n == 0) return 0.0f;
    float ss = dot_f32_avx2(x, x, n);
    ss /= (float)n;
    ss += eps;
    ss = 1.0f / sqrtf(ss);
    __m256 inv = _mm256_set1_ps(ss);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(inv, _mm256_loadu_ps(x + i));
        if (w) v = _mm256_mul_ps(_mm256_loadu_ps(w + i), v);
        _mm256_storeu_ps(out + i, v);
    }
    for (; i < n; i++) out[i] = w ? w[i] * (ss * x[i]) : ss * x[i];   // same roundings as above
    return ss;
}

// ref: scalar.c softmax_f32_scalar.  Vector max, SLEEF expf (1 ulp), one vector running sum,
// then an exact division per element as in the reference.
static void softmax_f32_avx2(float *x, size_t n)
{
    if (n == 0) return;
    __m256 vmax = _mm256_set1_ps(x[0]);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float mx = _mm_cvtss_f32(m4);
    for (; i < n; i++)
        if (x[i] > mx) mx = x[i];
    __m256 vmx = _mm256_set1_ps(mx);
    __m256 sum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (i < n) {   // tail through the vector exp too, so every element sees the same exp
        __m256i m = tail_mask8(n - i);
        __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vmx));
        _mm256_maskstore_ps(x + i, m, e);
        sum = _mm256_add_ps(sum, _mm256_and_ps(e, _mm256_castsi256_ps(m)));   // masked lanes add +0
    }
    __m256 s = _mm256_set1_ps(hsum8(sum));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_div_ps(_mm256_loadu_ps(x + i), s));
    float sf = _mm256_cvtss_f32(s);
    for (; i < n; i++) x[i] /= sf;
}

// One 8-lane SwiGLU step in the reference order: g * (1 / (1 + exp(-g))) * u.
AI __m256 swiglu8(__m256 g, __m256 u)
{
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_setzero_ps(), g));
    __m256 sig = _mm256_div_ps(one, _mm256_add_ps(one, e));
    return _mm256_mul_ps(_mm256_mul_ps(g, sig), u);
}

// ref: scalar.c swiglu_f32_scalar.  SLEEF expf; masked tail.
static void swiglu_f32_avx2(float *g, const float *u, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(g + i, swiglu8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
    if (i < n) {
        __m256i m = tail_mask8(n - i);
        __m256 v = swiglu8(_mm256_maskload_ps(g + i, m), _mm256_maskload_ps(u + i, m));
        _mm256_maskstore_ps(g + i, m, v);
    }
}

// ref: scalar.c rope_pairs_f32_scalar.  4 pairs per step: duplicate c, s to pair lanes, and
// addsub(x*c, xswap*s) — the reference's two rounded products and one rounded add/sub, so
// bit-identical to it.
static void rope_pairs_f32_avx2(float *x, const float *c, const float *s, size_t npairs)
{
    const __m256i dup = _mm256_set_epi32(3, 3, 2, 2, 1, 1, 0, 0);
    size_t i = 0;
    for (; i + 4 <= npairs; i += 4) {
        __m256 v = _mm256_loadu_ps(x + 2 * i);
        __m256 cc = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(c + i)), dup);
        __m256 ss = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(s + i)), dup);
        __m256 vs = _mm256_permute_ps(v, 0xB1);   // (v1, v0) in each pair
        _mm256_storeu_ps(x + 2 * i, _mm256_addsub_ps(_mm256_mul_ps(v, cc), _mm256_mul_ps(vs, ss)));
    }
    for (; i < npairs; i++) {
        float v0 = x[2 * i], v1 = x[2 * i + 1];
        x[2 * i] = v0 * c[i] - v1 * s[i];
        x[2 * i + 1] = v0 * s[i] + v1 * c[i];
    }
}

// ref: scalar.c axpy_f32_scalar.  Multiply then add (not fused), like the reference.
static void axpy_f32_avx2(float *y, float a, const float *x, size_t n)
{
    __m256 va = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(va, _mm256_loadu_ps(x + i))));
    for (; i < n; i++) y[i] += a * x[i];
}

// TT rows of axpys_f32 over 8 * NV floats of Y: the rows' sums stay in registers over all k
// steps and each value vector is loaded once for the TT rows.  A multiply, then an add, neither
// fused: axpy_f32's bits.
AI void axpys_tile_avx2(const int TT, const int NV, float *Y, size_t ldy, const float *A, size_t lda,
                        const float *X, size_t ldx, size_t k)
{
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int t = 0; t < TT; t++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[t][v] = _mm256_loadu_ps(Y + t * ldy + 8 * v);
    for (size_t s = 0; s < k; s++, X += ldx) {
        __m256 x[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) x[v] = _mm256_loadu_ps(X + 8 * v);
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) {
            __m256 a = _mm256_set1_ps(A[t * lda + s]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[t][v] = _mm256_add_ps(acc[t][v], _mm256_mul_ps(a, x[v]));
        }
    }
#pragma GCC unroll 2
    for (int t = 0; t < TT; t++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) _mm256_storeu_ps(Y + t * ldy + 8 * v, acc[t][v]);
}

// ref: scalar.c axpys_f32_scalar.  Rows 2 at a time, 32 floats at a time, then 8, then the
// last floats one by one.
static void axpys_f32_avx2(float *Y, size_t ldy, const float *A, size_t lda, size_t T, const float *X, size_t ldx,
                           size_t k, size_t n)
{
    for (size_t t = 0; t < T; t += 2) {
        int two = T - t >= 2;
        float *Yt = Y + t * ldy;
        const float *At = A + t * lda;
        size_t i = 0;
        for (; i + 32 <= n; i += 32) {
            if (two) axpys_tile_avx2(2, 4, Yt + i, ldy, At, lda, X + i, ldx, k);
            else axpys_tile_avx2(1, 4, Yt + i, ldy, At, lda, X + i, ldx, k);
        }
        for (; i + 8 <= n; i += 8) {
            if (two) axpys_tile_avx2(2, 1, Yt + i, ldy, At, lda, X + i, ldx, k);
            else axpys_tile_avx2(1, 1, Yt + i, ldy, At, lda, X + i, ldx, k);
        }
        for (size_t u = 0; u < (size_t)(two ? 2 : 1); u++)
            for (size_t j = i; j < n; j++) {
                float v = Yt[u * ldy + j];
                for (size_t s = 0; s < k; s++) v += At[u * lda + s] * X[s * ldx + j];
                Yt[u * ldy + j] = v;
            }
    }
}

// ref: scalar.c axpyv_f32_scalar.  8 floats at a time, rows 8 at a time: their sums stay in
// registers over the k steps, each X vector loaded once for the 8 rows; the last floats one by
// one.  A multiply, then an add, neither fused.
AI void axpyv_tile_avx2(const int TT, float *const *Y, size_t i, const float *C, size_t ldt, size_t lds,
                        const float *const *X, size_t k)
{
    __m256 acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) acc[t] = _mm256_loadu_ps(Y[t] + i);
    for (size_t s = 0; s < k; s++) {
        __m256 x = _mm256_loadu_ps(X[s] + i);
        const float *c = C + s * lds + i;
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++) acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_loadu_ps(c + t * ldt), x));
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) _mm256_storeu_ps(Y[t] + i, acc[t]);
}
static void axpyv_f32_avx2(float *const *Y, size_t T, const float *C, size_t ldt, size_t lds, const float *const *X,
                           size_t k, size_t n)
{
    for (size_t t = 0; t < T; t += 8, C += 8 * ldt) {
        size_t tt = T - t < 8 ? T - t : 8, i = 0;
        for (; i + 8 <= n; i += 8) {
            switch (tt) {
            case 8: axpyv_tile_avx2(8, Y + t, i, C, ldt, lds, X, k); break;
            case 7: axpyv_tile_avx2(7, Y + t, i, C, ldt, lds, X, k); break;
            case 6: axpyv_tile_avx2(6, Y + t, i, C, ldt, lds, X, k); break;
            case 5: axpyv_tile_avx2(5, Y + t, i, C, ldt, lds, X, k); break;
            case 4: axpyv_tile_avx2(4, Y + t, i, C, ldt, lds, X, k); break;
            case 3: axpyv_tile_avx2(3, Y + t, i, C, ldt, lds, X, k); break;
            case 2: axpyv_tile_avx2(2, Y + t, i, C, ldt, lds, X, k); break;
            default: axpyv_tile_avx2(1, Y + t, i, C, ldt, lds, X, k); break;
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
static void scale_f32_avx2(float *y, float a, const float *x, size_t n)
{
    __m256 va = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(va, _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = a * x[i];
}

// ---- int8 (no VNNI): pmaddubsw with the sign trick -----------------------------------------
// Packed panels hold u8 = w + 128; xor 0x80 gives the signed weight back.  pmaddubsw needs an
// unsigned operand and saturates pair sums at int16, so it gets |x| (<= 127) and w * sign(x)
// (w is never -128, so the negation is exact): pairs <= 2 * 127 * 127 = 32258, no saturation.
// pmaddwd by ones adds the pairs into int32 row lanes; the block's isum is then exact and the
// float steps are simd.h's canonical ones (vfmadd == fmaf), so results equal scalar.c's.
//
// The avxvnni table (V = 1 below; CPUs with AVX-VNNI but no AVX-512 VNNI: Intel's Alder Lake
// and later client cores, AMD's Zen 5) runs the same tiles with one VEX vpdpbusd per product
// instead of sign, pmaddubsw and pmaddwd: the u8 weights times the signed activation bytes,
// the chain started at the block's nsum (-128 sum x, simd.h Q8Act), the same exact isum.  It
// is inline asm ({vex} selects the AVX-VNNI encoding): this file is built without
// -mavxvnni, and dispatch.c fills the avxvnni table only where cpuid reports the extension.
#define DPBUSD_VEX(acc, w, x) __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(w), "x"(x))

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

// 8 output lanes at o (masked at the end), with the encoder epilogue when bias is set.
AI void q8_store8(const Q8Tile *a, size_t t, size_t o, __m256 v)
{
    size_t left = a->nout - o;
    __m256i m = left >= 8 ? _mm256_set1_epi32(-1) : tail_mask8(left);
    if (a->bias) {
        __m256 h = _mm256_add_ps(v, _mm256_maskload_ps(a->bias + o, m));
        __m256 th = a->theta ? _mm256_maskload_ps(a->theta + o, m) : _mm256_setzero_ps();
        __m256 keep = _mm256_or_ps(_mm256_cmp_ps(h, th, _CMP_GT_OQ), _mm256_cmp_ps(h, h, _CMP_UNORD_Q));
        if (a->pre) _mm256_maskstore_ps(a->pre + t * a->ldy + o, m, h);
        v = _mm256_and_ps(keep, h);
    }
    _mm256_maskstore_ps(a->Y + t * a->ldy + o, m, v);
}

// One block (16 rows x 32 columns, two 8-row halves) of the panel at w against block b of TT
// tokens' activation rows xr[t]: acc[2h + t] += fma(float(isum), dw * dx).  V = 1: the
// products on AVX-VNNI.
AI void block_q8_avx2(const int V, const int TT, const Q8Tile *a, const uint8_t *w, const size_t *xr, size_t b,
                      __m256 *acc)
{
    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    const Q8Act *x = a->x;
    __m256i ia[2][2];
#pragma GCC unroll 2
    for (int t = 0; t < TT; t++) ia[0][t] = ia[1][t] = V ? _mm256_set1_epi32(x->nsum[xr[t] + b]) : _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        const uint8_t *q = w + a->qoff + 64 * j;
        __m256i u0 = _mm256_loadu_si256((const __m256i *)q), u1 = _mm256_loadu_si256((const __m256i *)(q + 32));
        __m256i w0 = V ? u0 : _mm256_xor_si256(u0, flip);   // rows 0-7
        __m256i w1 = V ? u1 : _mm256_xor_si256(u1, flip);   // rows 8-15
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) {
            int32_t x4;
            memcpy(&x4, x->q + (xr[t] + b) * 32 + 4 * j, 4);
            __m256i xb = _mm256_set1_epi32(x4);
            if (V) {
                DPBUSD_VEX(ia[0][t], u0, xb);
                DPBUSD_VEX(ia[1][t], u1, xb);
            } else {
                __m256i ax = _mm256_abs_epi8(xb);
                __m256i p0 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w0, xb));
                __m256i p1 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w1, xb));
                ia[0][t] = _mm256_add_epi32(ia[0][t], _mm256_madd_epi16(p0, ones));
                ia[1][t] = _mm256_add_epi32(ia[1][t], _mm256_madd_epi16(p1, ones));
            }
        }
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m256 sw = a->lane_scales ? _mm256_loadu_ps((const float *)w + 8 * h) : _mm256_set1_ps(1.0f);
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) {
            __m256 dx = _mm256_set1_ps(x->d[xr[t] + b]);
            __m256 s = a->lane_scales ? _mm256_mul_ps(sw, dx) : dx;
            acc[2 * h + t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[h][t]), s, acc[2 * h + t]);
        }
    }
}

// Panel p's outputs for tokens t0 .. t0+TT-1 from its accumulators (block_q8_avx2).
AI void store_q8_avx2(const int TT, const Q8Tile *a, size_t p, size_t t0, const __m256 *acc)
{
    size_t o = p * 16;
    if (TT == 2 && a->sum2) {   // matvec_q8x2 / matmul_q8x2: the two digit rows' canonical values, summed
        q8_store8(a, t0 / 2, o, _mm256_add_ps(acc[0], acc[1]));
        if (o + 8 < a->nout) q8_store8(a, t0 / 2, o + 8, _mm256_add_ps(acc[2], acc[3]));
        return;
    }
#pragma GCC unroll 2
    for (int t = 0; t < TT; t++) {
        q8_store8(a, t0 + t, o, acc[t]);
        if (o + 8 < a->nout) q8_store8(a, t0 + t, o + 8, acc[2 + t]);
    }
}

// Decode: each line of a run's block is prefetched into L1 MV_PF_BLOCKS blocks ahead (1 and 4
// read alike on the Zen 5 VM, within its noise).
#define MV_PF_BLOCKS 4

// ref: scalar.c out_q8_scalar.  NR panels p, p + pstep, ... x TT tokens over every block, the
// panels' blocks side by side (NR runs: sequential streams for the decode matvec, a->stream).
// Each run's pointer and accumulators are named, not indexed: clang 14 keeps an indexed array
// of them on the stack.  Q8_RUNS(f) applies f to the runs 0 .. NR-1.
AI void tile_q8_avx2(const int V, const int TT, const int NR, const Q8Tile *a, size_t p, size_t pstep, size_t t0)
{
    const Q8Act *x = a->x;
    size_t xr[2];
#pragma GCC unroll 2
    for (int t = 0; t < TT; t++) xr[t] = (a->xrow0 + (t0 + t) * a->xstep) * x->nb;
#define Q8_RUNS(f) f(0) f(1) f(2) f(3)
#define Q8_INIT(r)                                                                  \
    const uint8_t *w##r = a->w + (p + (r) * pstep) * a->pstride;                    \
    __m256 c##r[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), \
                      _mm256_setzero_ps()};
    Q8_RUNS(Q8_INIT)
    for (size_t b = 0; b < a->nblk; b++) {
#define Q8_STEP(r)                                                                                 \
    if ((r) < NR) {                                                                                \
        if (a->stream)                                                                             \
            for (int l = 0; l < 9; l++)                                                            \
                _mm_prefetch((const char *)(w##r + MV_PF_BLOCKS * a->bstride + 64 * l), _MM_HINT_T0); \
        block_q8_avx2(V, TT, a, w##r, xr, b, c##r);                                                \
        w##r += a->bstride;                                                                        \
    }
        Q8_RUNS(Q8_STEP)
    }
#define Q8_STORE(r) \
    if ((r) < NR) store_q8_avx2(TT, a, p + (r) * pstep, t0, c##r);
    Q8_RUNS(Q8_STORE)
#undef Q8_RUNS
#undef Q8_INIT
#undef Q8_STEP
#undef Q8_STORE
}

// The decode matvec (one token, TT = 1, or its two digit rows, TT = 2): panels [p0, p1) as NR
// runs of equal length read side by side, the 0 .. NR-1 left over one at a time.  Each panel's
// blocks stay in order, so the bits do not depend on NR.
AI void matvec_runs_avx2(const int V, const int TT, const int NR, const Q8Tile *a, size_t p0, size_t p1)
{
    size_t run = (p1 - p0) / NR;
    for (size_t p = p0; p < p0 + run; p++) tile_q8_avx2(V, TT, NR, a, p, run, 0);
    for (size_t p = p0 + NR * run; p < p1; p++) tile_q8_avx2(V, TT, 1, a, p, 0, 0);
}

// Every panel in [p0, p1) against every token, two tokens per tile (weights of the panel are
// reused from L1 by each token pair).  Transposed: panel p reads column block p/2.
AI void panels_q8_avx2(const int V, const Q8Tile *a, size_t T, size_t p0, size_t p1, int transposed)
{
    Q8Tile b = *a;
    for (size_t p = p0; p < p1; p++) {
        if (transposed) b.xrow0 = p / 2;
        size_t t = 0;
        for (; t + 2 <= T; t += 2) tile_q8_avx2(V, 2, 1, &b, p, 0, t);
        if (t < T) tile_q8_avx2(V, 1, 1, &b, p, 0, t);
    }
}

static Q8Tile tile_fwd(const Q8Panels *W, const Q8Act *X, float *Y, size_t ldy)
{
    return (Q8Tile){.w = W->data, .pstride = W->nb * Q8_PANEL_BLOCK_BYTES, .bstride = Q8_PANEL_BLOCK_BYTES,
                    .qoff = 64, .lane_scales = 1, .nblk = W->nb, .x = X, .xrow0 = 0, .xstep = 1, .Y = Y,
                    .ldy = ldy, .nout = W->rows};
}

// Decode reads 4 runs side by side.  On the AMD EPYC (Zen 5) VM, each build against the read
// probe in its own process (1208 MB, best of 3, three processes each, gcc), avx2 / avxvnni:
// 8-bit activations 0.77-0.92 / 0.81-0.94 against 0.69-0.72 / 0.77-0.84 for the one stream
// with one line per block prefetched into L2 16 blocks ahead it replaced; 16-bit 0.71-0.85 /
// 0.82-0.96 against 0.62-0.63 / 0.69-0.71.  2 runs read between the two.
#define MV_RUNS_AVX2 4
// The int8 entries, once per product kind (V: 0 avx2, 1 avxvnni).
#define Q8_ENTRIES(SFX, V)                                                                                    \
    /* ref: scalar.c matmul_q8_scalar. */                                                                     \
    static void matmul_q8_##SFX(float *Y, size_t ldy, const Q8Panels *W, const Q8Act *X, size_t T, size_t p0, \
                                size_t p1)                                                                    \
    {                                                                                                         \
        Q8Tile a = tile_fwd(W, X, Y, ldy);                                                                    \
        panels_q8_avx2(V, &a, T, p0, p1, 0);                                                                  \
    }                                                                                                         \
    /* ref: scalar.c matvec_q8_scalar.  MV_RUNS_AVX2 runs of panels side by side. */                         \
    static void matvec_q8_##SFX(float *y, const Q8Panels *W, const Q8Act *x, size_t p0, size_t p1)            \
    {                                                                                                         \
        Q8Tile a = tile_fwd(W, x, y, 0);                                                                      \
        a.stream = 1;                                                                                         \
        matvec_runs_avx2(V, 1, MV_RUNS_AVX2, &a, p0, p1);                                                     \
    }                                                                                                         \
    /* ref: scalar.c matvec_q8x2_scalar.  The two digit rows as one 2-token tile, MV_RUNS_AVX2 runs. */      \
    static void matvec_q8x2_##SFX(float *y, const Q8Panels *W, const Q8Act *x, size_t p0, size_t p1)          \
    {                                                                                                         \
        Q8Tile a = tile_fwd(W, x, y, 0);                                                                      \
        a.stream = a.sum2 = 1;                                                                                \
        matvec_runs_avx2(V, 2, MV_RUNS_AVX2, &a, p0, p1);                                                     \
    }                                                                                                         \
    /* ref: scalar.c matmul_q8x2_scalar.  Each token's two digit rows as one 2-row tile per panel. */        \
    static void matmul_q8x2_##SFX(float *Y, size_t ldy, const Q8Panels *W, const Q8Act *X, size_t T,          \
                                  size_t p0, size_t p1)                                                       \
    {                                                                                                         \
        Q8Tile a = tile_fwd(W, X, Y, ldy);                                                                    \
        a.sum2 = 1;                                                                                           \
        for (size_t p = p0; p < p1; p++)                                                                      \
            for (size_t t = 0; t < T; t++) tile_q8_avx2(V, 2, 1, &a, p, 0, 2 * t);                            \
    }                                                                                                         \
    /* ref: scalar.c matmul_q8t_scalar. */                                                                    \
    static void matmul_q8t_##SFX(float *Y, size_t ldy, const Q8PanelsT *Wt, const Q8Act *Vt, size_t T,        \
                                 size_t p0, size_t p1)                                                        \
    {                                                                                                         \
        Q8Tile a = {.w = Wt->data, .pstride = Wt->ng * Q8_PANEL_QBYTES, .bstride = Q8_PANEL_QBYTES,           \
                    .qoff = 0, .lane_scales = 0, .nblk = Wt->ng, .x = Vt, .xrow0 = 0, .xstep = Wt->nb,        \
                    .Y = Y, .ldy = ldy, .nout = Wt->cols};                                                    \
        panels_q8_avx2(V, &a, T, p0, p1, 1);                                                                  \
    }                                                                                                         \
    /* ref: scalar.c encode_q8_scalar. */                                                                     \
    static void encode_q8_##SFX(float *pre, float *act, size_t ld, const Q8Panels *W, const Q8Act *X,         \
                                size_t T, size_t p0, size_t p1, const float *bias, const float *theta)        \
    {                                                                                                         \
        Q8Tile a = tile_fwd(W, X, act, ld);                                                                   \
        a.pre = pre;                                                                                          \
        a.bias = bias;                                                                                        \
        a.theta = theta;                                                                                      \
        panels_q8_avx2(V, &a, T, p0, p1, 0);                                                                  \
    }
Q8_ENTRIES(avx2, 0)
Q8_ENTRIES(avxvnni, 1)
#undef Q8_ENTRIES

// y (8 lanes) + s * q: product rounded, then the add (no FMA), as in scalar.c.
AI __m256 dec8(__m256 y, __m256 s, const int8_t *q)
{
    __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q)));
    return _mm256_add_ps(y, _mm256_mul_ps(s, qf));
}

// ---- activation quantization (ref: scalar.c q8_act_row_scalar, quant/q8.c) -------------------
// One block = four ymm (a short tail is copied zero-padded first).  The largest |x| on float
// bits (integer order = float order for non-negative floats; NaN / Inf above FLT_MAX's bits),
// the scale by the same scalar division as q8.c, then q8.c's rounding (x * id + magic - magic,
// no FMA) and clamp (min / max: never NaN here), exact conversions, and saturating packs
// (values within [-127, 127]) put back in order: the same bytes as scalar.c.
AI __m256 act_round8(__m256 x, __m256 id)
{
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    return _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(x, id), magic), magic);
}

// 32 int32 (four ymm, each in [-127, 127]) to 32 bytes in order.
AI void act_store32(int8_t *q, const __m256i v[4])
{
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    // dwords now hold v0[0:4] v1[0:4] v2[0:4] v3[0:4] | v0[4:8] v1[4:8] v2[4:8] v3[4:8]
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p);
}

AI int32_t hsum8i(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static void q8_act_row_avx2(int8_t *q, float *d, int32_t *nsum, size_t lo, const float *x, size_t cols, int digits)
{
    size_t nb = q8_nblocks(cols);
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    for (size_t b = 0; b < nb; b++) {
        size_t n = cols - b * QK8 < QK8 ? cols - b * QK8 : QK8;
        float tmp[QK8];
        const float *xb = x + b * QK8;
        if (n < QK8) {
            memset(tmp, 0, sizeof tmp);
            memcpy(tmp, xb, n * sizeof(float));
            xb = tmp;
        }
        __m256 xv[4];
        __m256i m = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            xv[k] = _mm256_loadu_ps(xb + 8 * k);
            m = _mm256_max_epi32(m, _mm256_and_si256(_mm256_castps_si256(xv[k]), abs_mask));
        }
        __m128i m4 = _mm_max_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
        m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, 0x4e));
        m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, 0xb1));
        int32_t bits = _mm_cvtsi128_si32(m4);
        float amax;
        memcpy(&amax, &bits, sizeof amax);
        int bad = bits > 0x7f7fffff;   // NaN or Inf
        int8_t *qh = q + b * QK8, *ql = q + (lo + b) * QK8;
        if (bad || !(amax >= Q8_TINY)) {   // honest NaN, or an all-zero block
            simd_q8_act_zero_block(q, d, nsum, lo, b, digits, bad);
            continue;
        }
        __m256i hi[4], lw[4], sh = _mm256_setzero_si256(), sl = _mm256_setzero_si256();
        if (digits == 1) {
            const __m256 lim = _mm256_set1_ps(127.0f), nlim = _mm256_set1_ps(-127.0f), id = _mm256_set1_ps(127.0f / amax);
            for (int k = 0; k < 4; k++) {
                hi[k] = _mm256_cvttps_epi32(_mm256_max_ps(_mm256_min_ps(act_round8(xv[k], id), lim), nlim));
                sh = _mm256_add_epi32(sh, hi[k]);
            }
            act_store32(qh, hi);
            d[b] = amax / 127.0f;
            nsum[b] = -128 * hsum8i(sh);
            continue;
        }
        // 16-bit: s a power of two, v = round(x / s) clamped to +-32639, v = 256 hi + lo, a v
        // with lo = +-128 moved by one towards x / s (q8_act_block16's steps; every product is
        // by a power of two and every value a small integer, so all of it is exact).
        const float vmax = (float)Q8_VMAX16, sc = q8_pow2_ceil(amax / vmax);
        const __m256 vm = _mm256_set1_ps(vmax), nvm = _mm256_set1_ps(-vmax), id = _mm256_set1_ps(1.0f / sc),
                     idg = _mm256_set1_ps(1.0f / (float)Q8_DIGIT), vdg = _mm256_set1_ps((float)Q8_DIGIT),
                     lim = _mm256_set1_ps(127.0f), nlim = _mm256_set1_ps(-127.0f), one = _mm256_set1_ps(1.0f),
                     mone = _mm256_set1_ps(-1.0f);
        for (int k = 0; k < 4; k++) {
            __m256 r = _mm256_mul_ps(xv[k], id);
            __m256 v = _mm256_max_ps(_mm256_min_ps(act_round8(r, one), vm), nvm);
            __m256 hk = act_round8(v, idg);
            __m256 lk = _mm256_sub_ps(v, _mm256_mul_ps(vdg, hk));
            __m256 odd = _mm256_or_ps(_mm256_cmp_ps(lk, lim, _CMP_GT_OQ), _mm256_cmp_ps(lk, nlim, _CMP_LT_OQ));
            __m256 step = _mm256_blendv_ps(mone, one, _mm256_cmp_ps(r, v, _CMP_GT_OQ));
            v = _mm256_add_ps(v, _mm256_and_ps(step, odd));
            hk = act_round8(v, idg);
            lk = _mm256_sub_ps(v, _mm256_mul_ps(vdg, hk));
            __m256i h = _mm256_cvttps_epi32(hk), l = _mm256_cvttps_epi32(lk);
            hi[k] = h, lw[k] = l;
            sh = _mm256_add_epi32(sh, h);
            sl = _mm256_add_epi32(sl, l);
        }
        act_store32(qh, hi);
        act_store32(ql, lw);
        d[lo + b] = sc;
        d[b] = sc * (float)Q8_DIGIT;
        nsum[b] = -128 * hsum8i(sh);
        nsum[lo + b] = -128 * hsum8i(sl);
    }
}

// ref: scalar.c decode_rows_q8_scalar.  Row by row, 8 floats per step; the last <8 masked.
static void decode_rows_q8_avx2(float *y, const BlockQ8 *W, size_t stride, const int *idx, const float *val,
                                size_t n, size_t D)
{
    for (size_t i = 0; i < n; i++) {
        const BlockQ8 *row = W + (size_t)idx[i] * stride;
        size_t d = 0;
        for (; d + 8 <= D; d += 8) {
            const BlockQ8 *blk = row + d / 32;
            __m256 s = _mm256_set1_ps(val[i] * blk->d);
            _mm256_storeu_ps(y + d, dec8(_mm256_loadu_ps(y + d), s, blk->qs + d % 32));
        }
        if (d < D) {   // the block holds 32 quants, so reading 8 of them is in bounds
            const BlockQ8 *blk = row + d / 32;
            __m256i m = tail_mask8(D - d);
            __m256 s = _mm256_set1_ps(val[i] * blk->d);
            _mm256_maskstore_ps(y + d, m, dec8(_mm256_maskload_ps(y + d, m), s, blk->qs + d % 32));
        }
    }
}

// ---- bf16 weights -------------------------------------------------------------------------------
// 8 bf16 -> 8 fp32: zero-extend each to 32 bits, shift into the upper half (exact).
AI __m256 widen8(const uint16_t *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
// The first m < 8 of them, zeros elsewhere (AVX2 has no 16-bit masked load: a small copy).
AI __m256 widen8_part(const uint16_t *p, size_t m)
{
    uint16_t buf[8] = {0};
    memcpy(buf, p, m * sizeof(uint16_t));
    return widen8(buf);
}

// Decode (one token): per 64-byte line a tile reads, prefetch the line at the same place in the
// next tile (R rows down), as x86_avx512.c does: short model rows defeat the hardware prefetcher.
#define PF_NEXT_TILE(W, R, r, ldw, c) \
    _mm_prefetch((const char *)((uintptr_t)(W) + (((r) + (R)) * (ldw) + (c)) * sizeof(uint16_t)), _MM_HINT_T0)

// ref: scalar.c dot_bf16w_scalar (per output).  tile_avx2 with the weight loads widened: the
// same accumulators, chunks, masked tail and tree, so each output is bit-identical to
// dot_f32_avx2 on the widened row.
AI void tile_bf16w_avx2(const int R, const int TT, float *Y, size_t ldy, const uint16_t *W, size_t ldw,
                        const float *X, size_t ldx, size_t cols)
{
    __m256 acc[4][2][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();

    size_t c = 0;
    for (; c + 16 <= cols; c += 16) {
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++) {
            __m256 xv[2];
#pragma GCC unroll 2
            for (int t = 0; t < TT; t++) xv[t] = _mm256_loadu_ps(X + t * ldx + c + 8 * k);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                if (TT == 1 && k == 0 && c % 32 == 0) PF_NEXT_TILE(W, R, r, ldw, c);
                __m256 wv = widen8(W + r * ldw + c + 8 * k);
                if (TT > 1) __asm__("" : "+x"(wv));   // widen once per weight vector, not per token
#pragma GCC unroll 2
                for (int t = 0; t < TT; t++) acc[r][t][k] = _mm256_fmadd_ps(wv, xv[t], acc[r][t][k]);
            }
        }
    }
    if (c + 8 <= cols) {    // one full chunk left: into a0
        __m256 xv[2];
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) xv[t] = _mm256_loadu_ps(X + t * ldx + c);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 wv = widen8(W + r * ldw + c);
#pragma GCC unroll 2
            for (int t = 0; t < TT; t++) acc[r][t][0] = _mm256_fmadd_ps(wv, xv[t], acc[r][t][0]);
        }
        c += 8;
    }
    if (c < cols) {         // < 8 left: zeros elsewhere, into a1
        __m256i m = tail_mask8(cols - c);
        __m256 xv[2];
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) xv[t] = _mm256_maskload_ps(X + t * ldx + c, m);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 wv = widen8_part(W + r * ldw + c, cols - c);
#pragma GCC unroll 2
            for (int t = 0; t < TT; t++) acc[r][t][1] = _mm256_fmadd_ps(wv, xv[t], acc[r][t][1]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < TT; t++) Y[t * ldy + r] = hsum8(_mm256_add_ps(acc[r][t][0], acc[r][t][1]));
}

// ref: scalar.c matvec_bf16w_scalar.  4 rows share each x load, as matvec_f32_avx2.
static void matvec_bf16w_avx2(float *y, const uint16_t *W, const float *x, size_t rows, size_t cols)
{
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) tile_bf16w_avx2(4, 1, y + r, 0, W + r * cols, cols, x, 0, cols);
    for (; r < rows; r++) tile_bf16w_avx2(1, 1, y + r, 0, W + r * cols, cols, x, 0, cols);
}

// ref: scalar.c matmul_bf16w_scalar.  matmul_f32_avx2's blocking (~256 KiB of bf16 rows per
// block, 3x2 register tiles).
static void matmul_bf16w_avx2(float *Y, const uint16_t *W, const float *X, size_t T, size_t rows, size_t cols)
{
    if (T == 1) {
        matvec_bf16w_avx2(Y, W, X, rows, cols);
        return;
    }
    size_t rb = cols ? (128 * 1024) / cols : rows;
    rb = rb < 3 ? 3 : rb - rb % 3;
    for (size_t r0 = 0; r0 < rows; r0 += rb) {
        size_t r1 = r0 + rb < rows ? r0 + rb : rows;
        size_t t = 0;
        for (; t + 2 <= T; t += 2) {
            const float *Xt = X + t * cols;
            float *Yt = Y + t * rows;
            size_t r = r0;
            for (; r + 3 <= r1; r += 3) tile_bf16w_avx2(3, 2, Yt + r, rows, W + r * cols, cols, Xt, cols, cols);
            for (; r < r1; r++) tile_bf16w_avx2(1, 2, Yt + r, rows, W + r * cols, cols, Xt, cols, cols);
        }
        for (; t < T; t++) {
            const float *Xt = X + t * cols;
            float *Yt = Y + t * rows;
            size_t r = r0;
            for (; r + 4 <= r1; r += 4) tile_bf16w_avx2(4, 1, Yt + r, 0, W + r * cols, cols, Xt, 0, cols);
            for (; r < r1; r++) tile_bf16w_avx2(1, 1, Yt + r, 0, W + r * cols, cols, Xt, 0, cols);
        }
    }
}

void simd_fill_avx2(SimdKernels *k)
{
    k->name = "avx2";
    k->dot_f32 = dot_f32_avx2;
    k->matvec_f32 = matvec_f32_avx2;
    k->matmul_f32 = matmul_f32_avx2;
    k->rmsnorm_f32 = rmsnorm_f32_avx2;
    k->softmax_f32 = softmax_f32_avx2;
    k->swiglu_f32 = swiglu_f32_avx2;
    k->rope_pairs_f32 = rope_pairs_f32_avx2;
    k->axpy_f32 = axpy_f32_avx2;
    k->scale_f32 = scale_f32_avx2;
    k->dots_f32 = dots_f32_avx2;
    k->axpys_f32 = axpys_f32_avx2;
    k->axpyv_f32 = axpyv_f32_avx2;
    k->matvec_q8 = matvec_q8_avx2;
    k->matvec_q8x2 = matvec_q8x2_avx2;
    k->matmul_q8 = matmul_q8_avx2;
    k->matmul_q8x2 = matmul_q8x2_avx2;
    k->matmul_q8t = matmul_q8t_avx2;
    k->encode_q8 = encode_q8_avx2;
    k->decode_rows_q8 = decode_rows_q8_avx2;
    k->q8_act_row = q8_act_row_avx2;
    k->matvec_bf16w = matvec_bf16w_avx2;
    k->matmul_bf16w = matmul_bf16w_avx2;
}

// The avx2 table with the int8 products on AVX-VNNI (dispatch.c runs this only where cpuid
// reports AVX-VNNI); same bits as avx2's.
void simd_fill_avxvnni(SimdKernels *k)
{
    simd_fill_avx2(k);
    k->name = "avxvnni";
    k->matvec_q8 = matvec_q8_avxvnni;
    k->matvec_q8x2 = matvec_q8x2_avxvnni;
    k->matmul_q8 = matmul_q8_avxvnni;
    k->matmul_q8x2 = matmul_q8x2_avxvnni;
    k->matmul_q8t = matmul_q8t_avxvnni;
    k->encode_q8 = encode_q8_avxvnni;
}
#else
typedef int ct_avx2_unused;
#endif
