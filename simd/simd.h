// simd.h — the kernel table.  One SimdKernels struct, one file per instruction set
// (scalar.c, x86_avx2.c, x86_avx512.c, arm_neon.c), chosen at run time by dispatch.c.
//
// Habits (see ../shared/docs/STYLE.md):
//   - scalar.c holds the reference for every entry; an ISA file overrides only what it has,
//     dispatch copies the scalar table first, so a half-written ISA still works.
//   - kernel names carry types and ISA (dot_f32_avx512); table fields drop the ISA.
//   - every entry below has its contract and tolerance written next to it.
//   - pointers carry no alignment promise: every kernel accepts any float-aligned pointer.
//   - n == 0 is legal everywhere and does nothing (dot returns 0).
//
// Tolerances (checked by tests/test_simd.c against a double-accumulated reference):
//   reductions (dot, matvec, matmul, rmsnorm's sum of squares, softmax's sum):
//       |got - ref| <= 4 * FLT_EPSILON * sqrt(n) * sum_i |a_i * b_i|  (+ tiny absolute slack)
//   elementwise exact ops (axpy, rope):  <= 2 ulp of the double result
//   exp/silu through SLEEF (u10 = 1.0 ulp functions): <= 8 * FLT_EPSILON relative
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct SimdKernels {
    const char *name;   // "scalar", "avx2", "avx512", "neon"

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
} SimdKernels;

// ISA ids for dispatch and for tests that loop over every table the host can run.
typedef enum { SIMD_SCALAR = 0, SIMD_AVX2, SIMD_AVX512, SIMD_NEON, SIMD_NISA } SimdIsa;

// The active table: chosen once from cpuid (or CTRACE_ISA=scalar|avx2|avx512|neon; an
// override the CPU cannot run is an error printed to stderr, and the process exits 2).
const SimdKernels *simd_kernels(void);
SimdIsa simd_active_isa(void);
const char *simd_isa_name(SimdIsa isa);
// 1 if this build contains the table and this CPU can run it.
int simd_isa_supported(SimdIsa isa);
// The table for one ISA (scalar entries where the ISA has none); NULL if unsupported.
const SimdKernels *simd_kernels_for(SimdIsa isa);
// Force a table for the rest of the process (tests, benchmarks); returns 0 or -1 if unsupported.
int simd_force(SimdIsa isa);

// Per-ISA fill functions: each overwrites the entries its file implements.
void simd_fill_scalar(SimdKernels *k);
void simd_fill_avx2(SimdKernels *k);
void simd_fill_avx512(SimdKernels *k);
void simd_fill_neon(SimdKernels *k);
