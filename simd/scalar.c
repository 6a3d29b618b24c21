// scalar.c — the reference for every SimdKernels entry.
//
// Plain C loops in llama2.c run.c's order of operations: one float accumulator summed left
// to right, no fused multiply-add (the build uses -ffp-contract=off), libm expf.  The engine
// on the scalar table therefore reproduces llama2.c's logits bit for bit, and every vector
// table is tested against these loops (and against a double-precision reference).
#include <math.h>

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

static void scale_f32_scalar(float *y, float a, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = a * x[i];
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
}
