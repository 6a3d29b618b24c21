// simd.h — the kernel table.  One SimdKernels struct, one file per instruction set
// (scalar.c, x86_avx2.c, x86_avx512.c, arm_neon.c), chosen at run time by dispatch.c.
//
// Habits (see ../shared/docs/STYLE.md):
//   - scalar.c holds the reference for every entry; an ISA file overrides only what it has,
//     dispatch copies the scalar table first, so a half-written ISA still works.
//   - kernel names carry types and ISA (dot_f32_avx512); table fields drop the ISA.
//   - every entry below has its contract and tolerance written next to it.
//   - pointers carry no alignment promise: every kernel accepts any float-aligned pointer.
//   - n == 0 is legal everywhere and does nothing (dot returns 0, rmsnorm returns 0).
//   - results never depend on pointer alignment, on how rows are split over calls or threads,
//     or on T in matmul; 64-byte aligned weights are only faster (split loads cost ~1.3x).
//
// Tolerances (checked by tests/test_simd.c against a double-accumulated reference; eps is
// FLT_EPSILON, "tiny" an absolute slack of 1e-30 for sums and 1e-37 for elementwise results):
//   dot, matvec, matmul:  |got - ref| <= 4 eps sqrt(n) sum_i |a_i b_i| + tiny
//   rmsnorm:  inv and each out[i] within (2 sqrt(n) + 4) eps relative (half the sum's error,
//             plus the roundings of /n, +eps, sqrtf, 1/x and two products)
//   softmax:  |got_i - ref_i| <= (16 + 4 sqrt(n) + |x_i - max|) eps ref_i + tiny  (exp's 1 ulp
//             SLEEF u10 / libm error, the sum, and the rounding of x_i - max that exp magnifies)
//   swiglu:   |got - ref| <= 16 eps |ref| + tiny   (exp through SLEEF u10 or libm expf)
//   rope:     |x0' - ref| <= 2 eps (|x0 c| + |x1 s|) + tiny  (and likewise x1'); relative to
//             the products because x0 c - x1 s may cancel
//   axpy:     |got - ref| <= eps (|y| + |a x|) + tiny;   scale: <= eps |ref| + tiny
// Exactness contracts (bit for bit):
//   matvec rows and matmul entries == the same table's dot_f32 (see each entry);
//   matvec/matmul_bf16w == that table's dot_f32 on the widened bf16 weights; matvec/matmul_bf16dot
//     == scalar.c's canonical bf16dot loop in every table (VDPBF16PS where the CPU has it);
//   scalar.c == llama2.c run.c's loops (float accumulator, a*b then +, libm expf), so the
//     scalar table reproduces the reference program's logits;
//   dots entries == the same table's dot_f32;
//   rope_pairs, axpy, axpys, scale: every table gives scalar.c's bits (no fused multiply-add),
//     so these never depend on the ISA.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant/q8.h"

// q8_act_row's all-zero (or tiny) block, or one holding NaN / Inf (bad): quants and nsum 0,
// scale 0 or NaN, for block b of the hi (or only) row and, with 2 digits, of the lo row.
static inline void simd_q8_act_zero_block(int8_t *q, float *d, int32_t *nsum, size_t lo, size_t b, int digits, int bad)
{
    for (size_t r = 0; r < (size_t)digits; r++) {
        size_t k = b + r * lo;
        memset(q + k * QK8, 0, QK8);
        d[k] = bad ? NAN : 0.0f;
        nsum[k] = 0;
    }
}

// The JumpReLU rule of every transcoder path (clt_activate, interventions, encode_q8 and its
// vector forms): h passes when above the threshold th (th = 0: ReLU), and NaN passes too so a
// bad input stays visible downstream instead of reading as an inactive feature.
static inline float simd_jump_act(float h, float th) { return (h > th || h != h) ? h : 0.0f; }

typedef struct SimdKernels {
    const char *name;   // "scalar", "avx2", "avxvnni", "avx512", "neon", "amx"

    // sum_i a[i] * b[i]
    float (*dot_f32)(const float *a, const float *b, size_t n);

    // y[r] = sum_c W[r*cols + c] * x[c] for r < rows.   W: (rows, cols) row-major.
    // Contract: y[r] is bit-identical to dot_f32(W + r*cols, x, cols) of the same table, so
    // results never depend on how rows are split over threads.
    void (*matvec_f32)(float *y, const float *W, const float *x, size_t rows, size_t cols);

    // Y[t*rows + r] = sum_c W[r*cols + c] * X[t*cols + c]   X: (T, cols), Y: (T, rows).
    // Contract: each Y[t, r] is bit-identical to dot_f32(W + r*cols, X + t*cols, cols), so a
    // batched prefill gives exactly the logits of one-token-at-a-time decoding.
    void (*matmul_f32)(float *Y, const float *W, const float *X, size_t T, size_t rows, size_t cols);

    // out[i] = w[i] * (x[i] * inv), inv = 1 / sqrtf(sum_i x[i]^2 / n + eps); returns inv.
    // (llama2.c order of operations.)  out may alias x.  w == NULL means a gain of 1.
    float (*rmsnorm_f32)(float *out, const float *x, const float *w, size_t n, float eps);

    // in place: x[i] = exp(x[i] - max) / sum_j exp(x[j] - max).
    void (*softmax_f32)(float *x, size_t n);

    // in place SwiGLU gate: g[i] = g[i] * sigmoid(g[i]) * u[i]   (silu(g) * u)
    void (*swiglu_f32)(float *g, const float *u, size_t n);

    // Rotate adjacent pairs (x[2i], x[2i+1]) by the angle whose cos/sin are c[i], s[i]:
    //   x0' = x0*c - x1*s;  x1' = x0*s + x1*c        for i < npairs.   (llama2.c RoPE)
    void (*rope_pairs_f32)(float *x, const float *c, const float *s, size_t npairs);

    // y[i] += a * x[i]
    void (*axpy_f32)(float *y, float a, const float *x, size_t n);

    // y[i] = a * x[i]   (y may alias x)
    void (*scale_f32)(float *y, float a, const float *x, size_t n);

    // Y[t*ldy + r] = dot_f32(X + t*ldx, W + r*ldw, cols) for t < T, r < rows: matmul with
    // strides (T queries of one head against a block of its keys in the KV cache).  Contract:
    // each entry is bit-identical to this table's dot_f32 of the same two rows (either order:
    // the products commute).
    void (*dots_f32)(float *Y, size_t ldy, const float *X, size_t ldx, size_t T, const float *W, size_t ldw,
                     size_t rows, size_t cols);

    // For each row t < T, for s = 0 .. k-1 in order: Y[t*ldy + i] += A[t*lda + s] * X[s*ldx + i]
    // for i < n (T queries' weighted sums of one head's values).  Contract: bit-identical to k
    // calls axpy_f32(Y + t*ldy, A[t*lda + s], X + s*ldx, n) per row, so every table gives
    // scalar.c's bits (each step a product, then a sum).
    void (*axpys_f32)(float *Y, size_t ldy, const float *A, size_t lda, size_t T, const float *X, size_t ldx,
                      size_t k, size_t n);

    // For each row t < T, for s = 0 .. k-1 in order: Y[t][i] += C[s*lds + t*ldt + i] * X[s][i]
    // for i < n (gradient rows of later positions mixed back into T positions through their
    // frozen attention weights, each weight repeated over its head's dims: attribution's
    // backward sweep).  Contract: each step a product, then a sum, so every table gives
    // scalar.c's bits.  The Y rows must not overlap C, the X rows or each other.
    void (*axpyv_f32)(float *const *Y, size_t T, const float *C, size_t ldt, size_t lds, const float *const *X,
                      size_t k, size_t n);

    // ---- int8 (formats and layouts in quant/q8.h) --------------------------------------------
    // One output of W x (row r of W, activation row t), the same in every entry below and in
    // every table — integer sums are exact and the float steps are fixed, so the results are
    // bit-identical across ISAs (tests/kernel_checks.h checks each table against scalar.c):
    //     acc = 0.0f;  for each block b = 0 .. nb-1, in order:
    //         isum = sum_{k<32} qw[r][32b+k] * qx[t][32b+k]                  (exact int32)
    //         acc  = fmaf((float)isum, dw[r][b] * dx[t][b], acc)   (product rounded, then fused)
    // Each int8 entry covers whole panels [p0, p1) of 16 rows (so threads split by panels) and
    // writes only rows < rows; the last panel's padding is never written.

    // Activation quantization (quant/q8.h), one row x of cols values into nb = ceil(cols/32)
    // blocks (the last one zero-padded): digits 1, q8_act_block8 per block into q (nb*32),
    // d (nb), nsum (nb); digits 2, q8_act_block16 per block, hi digits into q / d / nsum and lo
    // digits at q + lo*32, d + lo, nsum + lo (lo >= nb: the offset of the lo row, in blocks).
    // Every table does quant/q8.c's float steps, so every table writes the same bytes.
    void (*q8_act_row)(int8_t *q, float *d, int32_t *nsum, size_t lo, const float *x, size_t cols, int digits);

    // Decode: y[r] = canonical(r, activation row 0) for the rows of panels [p0, p1).
    // Streams the panels once, sequentially (the DRAM-bound product of every decode step).
    void (*matvec_q8)(float *y, const Q8Panels *W, const Q8Act *x, size_t p0, size_t p1);

    // Decode with 16-bit activations (two int8 digit rows, quant/q8.h; x->T == 2):
    //     y[r] = canonical(r, row 0) + canonical(r, row 1)          (one fp32 rounding)
    // for the rows of panels [p0, p1), both rows against one pass over the panels (the same
    // DRAM stream as matvec_q8).  Equal to q8_combine_digits of matmul_q8's two rows.
    void (*matvec_q8x2)(float *y, const Q8Panels *W, const Q8Act *x, size_t p0, size_t p1);

    // Batches (prefill, CLT encoding, attribution batches): Y[t*ldy + r] = canonical(r, t) for
    // t < T and the rows of panels [p0, p1).  Bit-identical to matvec_q8 of
    // each row t, so prefill and decode agree.
    void (*matmul_q8)(float *Y, size_t ldy, const Q8Panels *W, const Q8Act *X, size_t T, size_t p0, size_t p1);

    // Batches with 16-bit activations (two digit rows per token, X->T == 2T): for t < T
    //     Y[t*ldy + r] = canonical(r, row 2t) + canonical(r, row 2t+1)      (one fp32 rounding)
    // for the rows of panels [p0, p1): matvec_q8x2 of each token, and matmul_q8 of the 2T rows
    // then q8_combine_digits, bit for bit, without the (2T, rows) intermediate.
    void (*matmul_q8x2)(float *Y, size_t ldy, const Q8Panels *W, const Q8Act *X, size_t T, size_t p0, size_t p1);

    // Backward sweeps: Y[t*ldy + c] = (W^T g_t)[c] for the columns c < Wt->cols of output
    // panels [p0, p1), with V from q8_act_quantize_t (row t*nb + b holds v_b = dW[:, b] * g_t):
    //     acc = 0.0f;  for each row group g = 0 .. ng-1, in order (b = c / 32, u = t*nb + b):
    //         isum = sum_{k<32} qW[32g+k][c] * qv[u][32g+k];   acc = fmaf((float)isum, dv[u][g], acc)
    void (*matmul_q8t)(float *Y, size_t ldy, const Q8PanelsT *Wt, const Q8Act *V, size_t T, size_t p0, size_t p1);

    // Transcoder encoder: h = canonical(r, t) + bias[r] (one rounding), then
    //     act[t*ld + r] = simd_jump_act(h, theta[r])     (theta == NULL: threshold 0, ReLU)
    // and pre[t*ld + r] = h when pre != NULL.
    void (*encode_q8)(float *pre, float *act, size_t ld, const Q8Panels *W, const Q8Act *X, size_t T,
                      size_t p0, size_t p1, const float *bias, const float *theta);

    // Sparse decoder reads: y (D) += sum_i val[i] * row idx[i], rows of BlockQ8 at
    // W + idx[i] * stride (stride in blocks, >= ceil(D/32)).  For i < n in order, each d < D:
    //     y[d] = y[d] + (val[i] * d_blk) * (float)q[d]     (three roundings, no FMA)
    // so every table gives scalar.c's bits, like axpy.
    void (*decode_rows_q8)(float *y, const BlockQ8 *W, size_t stride, const int *idx, const float *val,
                           size_t n, size_t D);

    // ---- bf16 weights (engine/quantize.h: --dtype bf16 | bf16dot) -----------------------------
    // W: (rows, cols) row-major bf16, each uint16 the upper half of an fp32 (sign, 8-bit exponent,
    // 7-bit mantissa), 2-byte aligned; X (T, cols), Y (T, rows) fp32 as in matmul_f32.
    //
    // bf16w — the forward's bf16 mode.  Weights widened to fp32 in registers (a 16-bit shift,
    // exact), then this table's dot_f32 order, so
    //     Y[t, r] is bit-identical to dot_f32(widen(W row r), X row t, cols)
    // i.e. to matvec_f32 / matmul_f32 on the widened weights: a bf16 checkpoint gives the same
    // logits run as f32 or as bf16.  Tolerance: dot's.  Rows never depend on T or the split.
    void (*matvec_bf16w)(float *y, const uint16_t *W, const float *x, size_t rows, size_t cols);
    void (*matmul_bf16w)(float *Y, const uint16_t *W, const float *X, size_t T, size_t rows, size_t cols);

    // bf16dot — VDPBF16PS (AVX512_BF16) where the CPU has it, scalar.c's loop elsewhere.  The
    // activations are rounded to bf16 as well, and every table gives the same bits:
    //   xb[c] = bf16(x[c]): round to nearest even; fp32 denormals -> signed zero; NaN -> quiet NaN
    //   w, xb denormal (exponent 0) -> signed zero (DAZ); ftz(v): a denormal v -> signed zero
    //   a0, a1 = 16 fp32 lanes of +0.  Column chunks j = 0, 1, ... of 32 (the last one padded
    //   with zero weights and activations) go to a_(j mod 2); lane i of chunk j (c = 32 j):
    //       a[i] = ftz(a[i] + w[c+2i+1] * xb[c+2i+1]);  a[i] = ftz(a[i] + w[c+2i] * xb[c+2i])
    //   (bf16 products are exact in fp32, so each step is one rounding: the instruction's).
    //   v = a0 + a1 per lane, then the fixed tree 16 -> 8 -> 4 -> 2 -> 1 of plain fp32 adds:
    //   v_i += v_(i+8) for i < 8, v_i += v_(i+4) for i < 4, v_i += v_(i+2) for i < 2, y = v_0 + v_1.
    //   (Each y is exact up to these roundings; denormal products and sums are flushed as the
    //   instruction flushes them, so even tiny values give the same bits in every table.)
    // Accuracy against the fp32 product: each activation carries a relative error <= 2^-9, so
    //     |got - dot(w, x)| <= 2^-8 sum_i |w_i x_i| + 4 eps sqrt(n) sum_i |w_i x_i| + tiny.
    // matvec rows and matmul entries are the same canonical value (prefill == decode).
    void (*matvec_bf16dot)(float *y, const uint16_t *W, const float *x, size_t rows, size_t cols);
    void (*matmul_bf16dot)(float *Y, const uint16_t *W, const float *X, size_t T, size_t rows, size_t cols);
} SimdKernels;

// ISA ids for dispatch and for tests that loop over every table the host can run.
// SIMD_AVXVNNI is the avx2 table with the int8 products (matvec_q8, matvec_q8x2, matmul_q8,
// matmul_q8x2, matmul_q8t, encode_q8) on AVX-VNNI (VEX vpdpbusd, 256-bit: Intel client cores
// since Alder Lake, AMD Zen 5); every other entry is avx2's.  SIMD_AMX is the AVX-512 table
// with the batched int8 products (matmul_q8, matmul_q8x2, encode_q8) on the AMX tile unit;
// every other entry is avx512's (matmul_q8t included).  A later id outranks an earlier one.
typedef enum { SIMD_SCALAR = 0, SIMD_AVX2, SIMD_AVXVNNI, SIMD_AVX512, SIMD_NEON, SIMD_AMX, SIMD_NISA } SimdIsa;

// The active table: chosen once (thread-safe) from cpuid — amx (avx512 + VNNI + AMX-TILE +
// AMX-INT8, tile state granted by the kernel) > avx512 (F+BW+VL+DQ) > avxvnni (avx2 +
// AVX-VNNI) > avx2 (+FMA) > scalar on x86-64, neon on aarch64 — or from
// CTRACE_ISA=scalar|avx2|avxvnni|avx512|amx|neon.  An
// unknown name or an override this build/CPU cannot run is process configuration gone
// wrong: a message naming the value and the choices goes to stderr and the process exits 2
// (the library's one exit()).
const SimdKernels *simd_kernels(void);
SimdIsa simd_active_isa(void);
const char *simd_isa_name(SimdIsa isa);
// 1 if this build contains the table and this CPU can run it.
int simd_isa_supported(SimdIsa isa);
// The table for one ISA (scalar entries where the ISA has none); NULL if unsupported.
const SimdKernels *simd_kernels_for(SimdIsa isa);
// Force a table for the rest of the process (tests, benchmarks); returns 0 or -1 if unsupported
// (then the active table is unchanged).  Not meant to race with kernels running on other threads.
int simd_force(SimdIsa isa);
// The AVX-512 decode matvec (matvec_q8, matvec_q8x2) reads several runs of panels side by
// side, chosen per thread at run time by measured speed among 1, 2, 4 (256-bit products) or
// 2, 4, 8 (512-bit products) for calls of 8 MB and more, fixed for smaller ones (2, or 8 with
// 512-bit products and 16 panels or more; x86_avx512.c); every count and width gives the same
// bits.
// n = 1, 2, 4 or 8 forces a count for the rest of the process (tests, benchmarks), 0 restores
// the choice; returns 0, or -1 (and changes nothing) for any other n.
int simd_q8_matvec_streams(int n);
int simd_q8_matvec_streams_forced(void);   // 0 or the forced count
// Its products' width: 512-bit on AMD cores; elsewhere 512-bit unless this core runs slower
// beside 512-bit vpdpbusd (simd_avx512_vnni_clock_ratio under 0.97, measured once, at the first
// call, when the avx512 or amx table is active: some Intel cores lower their clock for them),
// then 256-bit halves.  CTRACE_Q8_WIDTH=256
// or 512 overrides that choice.  bits = 256 or 512 forces one, 0 restores the default; returns 0,
// or -1 (and changes nothing) for any other value.
int simd_q8_matvec_width(int bits);
int simd_q8_matvec_width_forced(void);    // 0 or the forced width
int simd_q8_matvec_width_default(void);   // 256 or 512: this CPU's default
// x86-64 with AVX-512 VNNI only: the core clock beside 512-bit vpdpbusd over the clock alone,
// measured now (~20 ms: the median of 5 rounds).  bench_q8's probe of the same read 0.97-1.00
// on the AMD (Zen 5) VM, 0.94 on one Intel Xeon VM and 1.00 on another (where this reads
// 0.98-1.01).
double simd_avx512_vnni_clock_ratio(void);
// How the AVX-512 GEMM tiles form dw * dx when every activation scale is a power of two
// (Q8Act.pow2: 16-bit activations): by vgetexpps / vscalefps on AMD cores (Zen 5 runs
// vpdpbusd, vmulps and the FMA on the same two ports, and scalef elsewhere), by vmulps on others
// (not measured there: Intel cores run vscalefps and vgetexpps on one port).  The same bits
// either way.  mode 1 forces vscalefps, 2 vmulps, 0 restores the default; returns 0, or -1 (and
// changes nothing) for any other mode.
int simd_q8_pow2_scalef(int mode);
int simd_q8_pow2_scalef_on(void);         // 1: vscalefps (forced or this CPU's default)

// Per-ISA fill functions: each overwrites the entries its file implements.
void simd_fill_scalar(SimdKernels *k);
void simd_fill_avx2(SimdKernels *k);
void simd_fill_avxvnni(SimdKernels *k);
void simd_fill_avx512(SimdKernels *k);
void simd_fill_neon(SimdKernels *k);
void simd_fill_amx(SimdKernels *k);
