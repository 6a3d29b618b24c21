// bf16_checks.h — checks for the bf16-weight kernels of simd.h (matvec/matmul_bf16w and
// matvec/matmul_bf16dot), shared by tests/test_bf16.c (Criterion) and tests/kernels_selftest.c
// (plain main, run under qemu-aarch64 for NEON).  Same conventions as kernel_checks.h: edge
// sizes, pointers offset by one element (weights then sit at an odd 2-byte address), canaries
// around every output, one KcStats case per configuration.
//
// Expected values come from:
//   bf16w:   the same table's dot_f32 and matvec_f32 / matmul_f32 on the widened weights (the
//            bit-identity contract), and a double-accumulated reference within dot's tolerance;
//   bf16dot: bc_dot_canon below — the canonical order of simd.h written out here, column by
//            column (not chunk by chunk as scalar.c does), with its own round-to-nearest-even
//            computed in double — bit for bit; scalar.c's table bit for bit (every table gives
//            the same bits); a double reference within simd.h's bf16dot bound.
#pragma once
#include "tests/kernel_checks.h"

// ---- bf16 helpers written independently of simd/scalar.c -------------------------------------
static inline float bc_widen(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// Round to the nearest bf16 by comparing the two neighbours in double; ties to the even
// mantissa.  daz: fp32 denormals become signed zeros first (what VCVTNE2PS2BF16 does).
static inline uint16_t bc_round(float x, int daz)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if (isnan(x)) return (uint16_t)((u >> 16) | 0x0040u);
    if (isinf(x)) return (uint16_t)(u >> 16);
    if (daz && fabsf(x) < FLT_MIN) return (uint16_t)((u >> 16) & 0x8000u);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);   // truncation, and one ulp further out
    double dlo = fabs((double)x - (double)bc_widen(lo));
    // one ulp further out may be Inf (0x7f80): the distance is then measured to 2^128
    double vhi = (hi & 0x7fffu) == 0x7f80u ? ((hi & 0x8000u) ? -ldexp(1.0, 128) : ldexp(1.0, 128)) : (double)bc_widen(hi);
    double dhi = fabs((double)x - vhi);
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return (lo & 1u) ? hi : lo;
}

static inline float bc_daz(float v) { return fabsf(v) < FLT_MIN ? copysignf(0.0f, v) : v; }

// simd.h's canonical bf16dot value, column by column: column c belongs to chunk j = c / 32
// (accumulator j % 2) and lane i = (c % 32) / 2; within a lane the odd column is added before
// the even one.  Padding columns past n carry a zero weight and activation.
static inline float bc_dot_canon(const uint16_t *w, const float *x, size_t n)
{
    float a[2][16];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 16; i++) a[k][i] = 0.0f;
    size_t padded = (n + 31) / 32 * 32;
    for (size_t c = 0; c < padded; c += 2) {
        size_t j = c / 32, lane = (c % 32) / 2;
        float *acc = &a[j % 2][lane];
        for (int e = 1; e >= 0; e--) {   // odd column, then even
            size_t cc = c + (size_t)e;
            float wv = cc < n ? bc_daz(bc_widen(w[cc])) : 0.0f;
            float xv = cc < n ? bc_daz(bc_widen(bc_round(x[cc], 1))) : 0.0f;
            *acc = bc_daz(*acc + wv * xv);
        }
    }
    float v[16];
    for (int i = 0; i < 16; i++) v[i] = a[0][i] + a[1][i];
    for (int i = 0; i < 8; i++) v[i] = v[i] + v[i + 8];
    for (int i = 0; i < 4; i++) v[i] = v[i] + v[i + 4];
    for (int i = 0; i < 2; i++) v[i] = v[i] + v[i + 2];
    return v[0] + v[1];
}

// Random bf16 weights in [-1, 1) (rounded from fp32), and their widened fp32 copy.
static inline void bc_fill_w(uint16_t *w, float *wf, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++) {
        w[i] = bc_round(kc_uniform(s, -1, 1), 0);
        if (wf) wf[i] = bc_widen(w[i]);
    }
}
static inline uint16_t *bc_in16(size_t off, size_t n) { return malloc((off + n ? off + n : 1) * sizeof(uint16_t)); }

// |got - dot(w, x)| bound of simd.h for bf16dot: 2^-8 sum|w x| (activation rounding) + dot's.
static inline double bc_dot_tol(size_t n, double sumabs) { return ldexp(sumabs, -8) + kc_red_tol(n, sumabs); }

// ---- bf16w: bit-identical to dot_f32 / matvec_f32 / matmul_f32 on the widened weights --------
static inline void bc_check_matvec_bf16w(KcStats *st, const SimdKernels *K)
{
    static const size_t rowss[] = {1, 2, 3, 4, 5, 7, 9, 17};
    uint64_t seed = 21;
    for (size_t ri = 0; ri < sizeof rowss / sizeof rowss[0]; ri++)
        for (size_t si = 0; si < KC_NSIZES; si++)
            for (size_t off = 0; off < 2; off++) {
                size_t rows = rowss[ri], cols = kc_sizes[si];
                uint16_t *W = bc_in16(off, rows * cols);
                float *Wf = kc_in(0, rows * cols), *x = kc_in(off, cols), *y = kc_out(off, rows), *yf = kc_out(0, rows);
                bc_fill_w(W + off, Wf, rows * cols, &seed);
                kc_fill(x + off, cols, &seed, -1, 1);
                K->matvec_bf16w(y + off, W + off, x + off, rows, cols);
                K->matvec_f32(yf, Wf, x + off, rows, cols);
                int ok = kc_guards_ok(y, off, rows);
                size_t bad = rows;
                double ref = 0, tol = 0;
                for (size_t r = 0; r < rows && ok; r++) {
                    double sa;
                    ref = kc_ref_dot(Wf + r * cols, x + off, cols, &sa);
                    tol = kc_red_tol(cols, sa);
                    float got = y[off + r];
                    if (!kc_same(got, K->dot_f32(Wf + r * cols, x + off, cols)) || !kc_same(got, yf[r]) ||
                        fabs(got - ref) > tol || (cols == 0 && !kc_same(got, 0.0f)))
                        ok = 0, bad = r;
                }
                kc_case(st, ok, K->name,
                        "matvec_bf16w rows=%zu cols=%zu off=%zu: row %zu got=%.9g f32-path=%.9g ref=%.9g tol=%.3g%s",
                        rows, cols, off, bad, bad < rows ? y[off + bad] : 0.0f, bad < rows ? yf[bad] : 0.0f, ref, tol,
                        kc_guards_ok(y, off, rows) ? "" : " (wrote outside y)");
                free(W), free(Wf), free(x), free(y), free(yf);
            }
}

static inline void bc_matmul_case(KcStats *st, const SimdKernels *K, int dot, size_t T, size_t rows, size_t cols,
                                  size_t off, uint64_t *seed)
{
    const SimdKernels *S = simd_kernels_for(SIMD_SCALAR);
    uint16_t *W = bc_in16(off, rows * cols);
    float *Wf = kc_in(0, rows * cols), *X = kc_in(off, T * cols), *Y = kc_out(off, T * rows);
    float *Yf = kc_out(0, T * rows), *Yv = kc_out(0, rows);
    bc_fill_w(W + off, Wf, rows * cols, seed);
    kc_fill(X + off, T * cols, seed, -1, 1);
    if (dot) K->matmul_bf16dot(Y + off, W + off, X + off, T, rows, cols);
    else K->matmul_bf16w(Y + off, W + off, X + off, T, rows, cols);
    if (dot) S->matmul_bf16dot(Yf, W + off, X + off, T, rows, cols);   // scalar.c's bits
    else K->matmul_f32(Yf, Wf, X + off, T, rows, cols);                // the fp32 path's bits
    int ok = kc_guards_ok(Y, off, T * rows);
    size_t bt = 0, br = 0;
    double ref = 0, tol = 0;
    const char *why = "";
    for (size_t t = 0; t < T && ok; t++) {
        // matvec of the same row of X: the same bits (prefill == decode)
        if (dot) K->matvec_bf16dot(Yv, W + off, X + off + t * cols, rows, cols);
        else K->matvec_bf16w(Yv, W + off, X + off + t * cols, rows, cols);
        for (size_t r = 0; r < rows && ok; r++) {
            const float *w = Wf + r * cols, *x = X + off + t * cols;
            float got = Y[off + t * rows + r];
            double sa;
            ref = kc_ref_dot(w, x, cols, &sa);
            tol = dot ? bc_dot_tol(cols, sa) : kc_red_tol(cols, sa);
            float want = dot ? bc_dot_canon(W + off + r * cols, x, cols) : K->dot_f32(w, x, cols);
            if (!kc_same(got, want)) why = dot ? "!= canonical order" : "!= dot_f32 on widened weights";
            else if (!kc_same(got, Yf[t * rows + r])) why = dot ? "!= scalar table" : "!= matmul_f32 on widened weights";
            else if (!kc_same(got, Yv[r])) why = "!= matvec of the same row";
            else if (fabs(got - ref) > tol) why = "outside the tolerance";
            else continue;
            ok = 0, bt = t, br = r;
        }
    }
    kc_case(st, ok, K->name, "matmul_%s T=%zu rows=%zu cols=%zu off=%zu: (t=%zu, r=%zu) %s ref=%.9g tol=%.3g%s",
            dot ? "bf16dot" : "bf16w", T, rows, cols, off, bt, br, why, ref, tol,
            kc_guards_ok(Y, off, T * rows) ? "" : " (wrote outside Y)");
    free(W), free(Wf), free(X), free(Y), free(Yf), free(Yv);
}

static inline void bc_check_matmul(KcStats *st, const SimdKernels *K, int dot)
{
    static const size_t Ts[] = {1, 2, 3, 4, 5, 7};
    static const size_t rowss[] = {1, 3, 4, 5, 9};
    static const size_t colss[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 95, 97, 1001};
    uint64_t seed = dot ? 23 : 22;
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (size_t ri = 0; ri < sizeof rowss / sizeof rowss[0]; ri++)
            for (size_t ci = 0; ci < sizeof colss / sizeof colss[0]; ci++)
                for (size_t off = 0; off < 2; off++) bc_matmul_case(st, K, dot, Ts[ti], rowss[ri], colss[ci], off, &seed);
    // several row blocks of the cache-blocked path, with leftover rows and tokens
    bc_matmul_case(st, K, dot, 7, 203, 768, 1, &seed);
    bc_matmul_case(st, K, dot, 5, 37, 4099, 0, &seed);
    bc_matmul_case(st, K, dot, 8, 300, 1024, 1, &seed);
}

static inline void bc_check_matmul_bf16w(KcStats *st, const SimdKernels *K) { bc_check_matmul(st, K, 0); }
static inline void bc_check_matmul_bf16dot(KcStats *st, const SimdKernels *K) { bc_check_matmul(st, K, 1); }

// ---- bf16dot: matvec over the edge sizes, rounding, NaN --------------------------------------
static inline void bc_check_matvec_bf16dot(KcStats *st, const SimdKernels *K)
{
    static const size_t rowss[] = {1, 2, 3, 4, 5, 7, 9, 17};
    const SimdKernels *S = simd_kernels_for(SIMD_SCALAR);
    uint64_t seed = 24;
    for (size_t ri = 0; ri < sizeof rowss / sizeof rowss[0]; ri++)
        for (size_t si = 0; si < KC_NSIZES; si++)
            for (size_t off = 0; off < 2; off++) {
                size_t rows = rowss[ri], cols = kc_sizes[si];
                uint16_t *W = bc_in16(off, rows * cols);
                float *Wf = kc_in(0, rows * cols), *x = kc_in(off, cols), *y = kc_out(off, rows), *ys = kc_out(0, rows);
                bc_fill_w(W + off, Wf, rows * cols, &seed);
                kc_fill(x + off, cols, &seed, -1, 1);
                K->matvec_bf16dot(y + off, W + off, x + off, rows, cols);
                S->matvec_bf16dot(ys, W + off, x + off, rows, cols);
                int ok = kc_guards_ok(y, off, rows);
                size_t bad = rows;
                double ref = 0, tol = 0;
                for (size_t r = 0; r < rows && ok; r++) {
                    double sa;
                    ref = kc_ref_dot(Wf + r * cols, x + off, cols, &sa);
                    tol = bc_dot_tol(cols, sa);
                    float got = y[off + r];
                    if (!kc_same(got, bc_dot_canon(W + off + r * cols, x + off, cols)) || !kc_same(got, ys[r]) ||
                        fabs(got - ref) > tol)
                        ok = 0, bad = r;
                }
                kc_case(st, ok, K->name,
                        "matvec_bf16dot rows=%zu cols=%zu off=%zu: row %zu got=%.9g canonical=%.9g ref=%.9g tol=%.3g%s",
                        rows, cols, off, bad, bad < rows ? y[off + bad] : 0.0f,
                        bad < rows ? bc_dot_canon(W + off + bad * cols, x + off, cols) : 0.0f, ref, tol,
                        kc_guards_ok(y, off, rows) ? "" : " (wrote outside y)");
                free(W), free(Wf), free(x), free(y), free(ys);
            }
    // Activation rounding: one column of weight 1.0 gives y = bf16(x).  Ties to even in both
    // directions, a value that rounds up into the next binade, denormal inputs (flushed to a
    // signed zero), FLT_MAX (rounds to Inf), NaN (stays NaN).
    const float one_eps = ldexpf(1.0f, -8);
    struct { float x, want; } rc[] = {
        {1.0f + one_eps, 1.0f},                                      // tie: mantissa 0 is even
        {1.0f + 3 * one_eps, 1.0f + 4 * one_eps},                    // tie: rounds up to even
        {-(1.0f + 3 * one_eps), -(1.0f + 4 * one_eps)},
        {1.0f + one_eps + ldexpf(1.0f, -20), 1.0f + 2 * one_eps},    // just above a tie
        {2.0f - ldexpf(1.0f, -9), 2.0f},                             // into the next binade
        {3.0e-39f, 0.0f},                                            // denormal -> 0
        {FLT_MAX, INFINITY},
        {1.5e-38f, bc_widen(bc_round(1.5e-38f, 1))},                 // smallest normals stay
    };
    uint16_t w1 = 0x3f80;   // 1.0
    for (size_t i = 0; i < sizeof rc / sizeof rc[0]; i++) {
        float y = -1.0f, x = rc[i].x;
        K->matvec_bf16dot(&y, &w1, &x, 1, 1);
        kc_case(st, kc_same(y, rc[i].want) && kc_same(rc[i].want, bc_widen(bc_round(x, 1))), K->name,
                "matvec_bf16dot rounding of %a: got %a, expected %a", (double)x, (double)y, (double)rc[i].want);
    }
    // Tiny values: weights near the bottom of the exponent range (some bf16 denormals) times
    // small activations (some fp32 denormals), so products and partial sums fall below FLT_MIN
    // and the flushing (DAZ/FTZ) decides the bits: still the canonical value, every table.
    for (size_t k = 0; k < 4; k++) {
        size_t rows = 5, cols = 37 + 64 * k;
        uint16_t *w = bc_in16(0, rows * cols);
        float *x = kc_in(0, cols), y[5], ys[5];
        for (size_t i = 0; i < rows * cols; i++) {
            uint16_t e = (uint16_t)(kc_rand(&seed) % 16);   // exponent 0 (denormal) .. 15: ~2^-126..2^-112
            w[i] = (uint16_t)((kc_rand(&seed) & 0x8000u) | (e << 7) | (kc_rand(&seed) & 0x7fu));
        }
        for (size_t i = 0; i < cols; i++) x[i] = kc_uniform(&seed, -1, 1) * (i % 3 ? 1.0f : i % 2 ? 1e-3f : 1e-38f);
        K->matvec_bf16dot(y, w, x, rows, cols);
        S->matvec_bf16dot(ys, w, x, rows, cols);
        int ok = 1;   // (the results are ~1e-34: nonzero, and off by ~1% were the flushing ignored)
        for (size_t r = 0; r < rows; r++)
            ok = ok && y[r] != 0 && kc_same(y[r], bc_dot_canon(w + r * cols, x, cols)) && kc_same(y[r], ys[r]);
        kc_case(st, ok, K->name, "matvec_bf16dot cols=%zu: tiny values (flushing) differ from the canonical order", cols);
        free(w), free(x);
    }
    // NaN in an activation or a weight (in the body and in the padded tail) reaches the result.
    size_t nn[] = {5, 37, 100};
    for (size_t k = 0; k < 3; k++) {
        size_t n = nn[k];
        uint16_t *w = bc_in16(0, n);
        float *x = kc_in(0, n), y = 0;
        bc_fill_w(w, NULL, n, &seed);
        kc_fill(x, n, &seed, -1, 1);
        x[n - 1] = NAN;
        K->matvec_bf16dot(&y, w, x, 1, n);
        int ok = isnan(y);
        x[n - 1] = 0.5f;
        w[n / 2] = 0x7fc0;   // bf16 NaN
        K->matvec_bf16dot(&y, w, x, 1, n);
        ok = ok && isnan(y);
        K->matvec_bf16w(&y, w, x, 1, n);
        ok = ok && isnan(y);
        kc_case(st, ok, K->name, "bf16 kernels n=%zu: NaN input not propagated", n);
        free(w), free(x);
    }
}

// Every bf16 check on one table.
static inline void bc_check_all(KcStats *st, const SimdKernels *K)
{
    bc_check_matvec_bf16w(st, K);
    bc_check_matmul_bf16w(st, K);
    bc_check_matvec_bf16dot(st, K);
    bc_check_matmul_bf16dot(st, K);
}
