// kernel_checks.h — checks for every SimdKernels entry, shared by tests/test_simd.c
// (Criterion) and tests/kernels_selftest.c (plain main, run under qemu-aarch64 for NEON).
//
// Each kc_check_* runs one kernel of one table over the edge sizes (0, 1, w-1, w, w+1 for
// w in 4..64, and large odd sizes), with pointers at offset 0 and offset 1 float, and counts
// one pass or fail per case in KcStats; a failing case prints one line naming the table,
// kernel, sizes, index, got, expected and tolerance.  Expected values come from
// double-precision loops written here (tolerances from simd.h), from the same table's
// dot_f32 (bit-identity contracts), from scalar.c's elementwise kernels (axpy, axpys, rope,
// scale: the same bits in every table), or from llama2.c-style float loops (scalar fidelity).
// Output buffers carry canaries before and after, so stray writes of masked tails show up.
#pragma once
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simd/simd.h"

typedef struct KcStats {
    int passed, failed;
} KcStats;

// Count one case; on failure print "FAIL <table> <what>".
static inline void kc_case(KcStats *st, int ok, const char *table, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void kc_case(KcStats *st, int ok, const char *table, const char *fmt, ...)
{
    if (ok) {
        st->passed++;
        return;
    }
    st->failed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s ", table);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

// Edge sizes: 0, 1, width-1, width, width+1 for widths 4..64, and two large odd sizes.
static const size_t kc_sizes[] = {0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1001, 4099};
#define KC_NSIZES (sizeof kc_sizes / sizeof kc_sizes[0])
#define KC_GUARD 8
static const float kc_canary = -7.0e33f;

// splitmix64: seeded, so every run and every table sees the same data.
static inline uint64_t kc_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline float kc_uniform(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)((kc_rand(s) >> 40) * (1.0 / 16777216.0));
}
static inline void kc_fill(float *x, size_t n, uint64_t *s, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = kc_uniform(s, lo, hi);
}

static inline uint32_t kc_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline int kc_same(float a, float b) { return kc_bits(a) == kc_bits(b); }

// An input buffer: exactly off + n floats (so ASan sees over-reads), data at +off.
static inline float *kc_in(size_t off, size_t n) { return malloc((off + n ? off + n : 1) * sizeof(float)); }

// An output buffer with canaries: [off canaries][n data][KC_GUARD canaries].
static inline float *kc_out(size_t off, size_t n)
{
    float *b = malloc((off + n + KC_GUARD) * sizeof(float));
    for (size_t i = 0; i < off + n + KC_GUARD; i++) b[i] = kc_canary;
    return b;
}
static inline int kc_guards_ok(const float *b, size_t off, size_t n)
{
    for (size_t i = 0; i < off; i++)
        if (!kc_same(b[i], kc_canary)) return 0;
    for (size_t i = 0; i < KC_GUARD; i++)
        if (!kc_same(b[off + n + i], kc_canary)) return 0;
    return 1;
}

// Reduction tolerance of simd.h: 4 eps sqrt(n) sum|a_i b_i| + tiny absolute slack.
static inline double kc_red_tol(size_t n, double sumabs) { return 4.0 * FLT_EPSILON * sqrt((double)n) * sumabs + 1e-30; }

// Double-accumulated reference dot and its sum of |a_i b_i|.
static inline double kc_ref_dot(const float *a, const float *b, size_t n, double *sumabs)
{
    double s = 0, sa = 0;
    for (size_t i = 0; i < n; i++) {
        s += (double)a[i] * b[i];
        sa += fabs((double)a[i] * b[i]);
    }
    *sumabs = sa;
    return s;
}

// ---- dot ----------------------------------------------------------------------------------
static inline void kc_check_dot(KcStats *st, const SimdKernels *K)
{
    uint64_t seed = 1;
    for (size_t si = 0; si < KC_NSIZES; si++)
        for (size_t off = 0; off < 2; off++) {
            size_t n = kc_sizes[si];
            float *a = kc_in(off, n), *b = kc_in(off, n);
            kc_fill(a + off, n, &seed, -1, 1);
            kc_fill(b + off, n, &seed, -1, 1);
            float got = K->dot_f32(a + off, b + off, n);
            double sa, ref = kc_ref_dot(a + off, b + off, n, &sa), tol = kc_red_tol(n, sa);
            int ok = n == 0 ? kc_same(got, 0.0f) : fabs(got - ref) <= tol;
            kc_case(st, ok, K->name, "dot_f32 n=%zu off=%zu got=%.9g ref=%.9g tol=%.3g", n, off, got, ref, tol);
            free(a);
            free(b);
        }
    // The same data at every float offset mod 16 gives the same bits (no alignment peeling).
    for (size_t si = 0; si < KC_NSIZES; si++) {
        size_t n = kc_sizes[si];
        float *a = kc_in(16, n), *b = kc_in(16, n), *a0 = kc_in(0, n), *b0 = kc_in(0, n);
        kc_fill(a0, n, &seed, -1, 1);
        kc_fill(b0, n, &seed, -1, 1);
        float want = K->dot_f32(a0, b0, n);
        int ok = 1;
        for (size_t off = 0; off < 16; off++) {
            memcpy(a + off, a0, n * sizeof(float));
            memcpy(b + 15 - off, b0, n * sizeof(float));
            ok = ok && kc_same(K->dot_f32(a + off, b + 15 - off, n), want);
        }
        kc_case(st, ok, K->name, "dot_f32 n=%zu: result depends on pointer alignment", n);
        free(a);
        free(b);
        free(a0);
        free(b0);
    }
    // Honest NaN/Inf: a NaN in the (masked/scalar) tail or in the body reaches the result.
    size_t nn[] = {5, 37, 100};
    for (size_t k = 0; k < 3; k++) {
        size_t n = nn[k];
        float *a = kc_in(0, n), *b = kc_in(0, n);
        kc_fill(a, n, &seed, -1, 1);
        kc_fill(b, n, &seed, -1, 1);
        a[n - 1] = NAN;
        int ok = isnan(K->dot_f32(a, b, n));
        a[n - 1] = 0.5f;
        b[n / 2] = INFINITY;
        float g = K->dot_f32(a, b, n);
        ok = ok && (isinf(g) || (a[n / 2] == 0 && isnan(g)));
        kc_case(st, ok, K->name, "dot_f32 n=%zu: NaN/Inf input not propagated", n);
        free(a);
        free(b);
    }
}

// ---- matvec: bit-identical to dot, within tolerance of double ------------------------------
static inline void kc_check_matvec(KcStats *st, const SimdKernels *K)
{
    static const size_t rowss[] = {1, 2, 3, 4, 5, 7, 8, 9, 17};
    uint64_t seed = 2;
    for (size_t ri = 0; ri < sizeof rowss / sizeof rowss[0]; ri++)
        for (size_t si = 0; si < KC_NSIZES; si++)
            for (size_t off = 0; off < 2; off++) {
                size_t rows = rowss[ri], cols = kc_sizes[si];
                float *W = kc_in(off, rows * cols), *x = kc_in(off, cols), *y = kc_out(off, rows);
                kc_fill(W + off, rows * cols, &seed, -1, 1);
                kc_fill(x + off, cols, &seed, -1, 1);
                K->matvec_f32(y + off, W + off, x + off, rows, cols);
                int ok = kc_guards_ok(y, off, rows);
                size_t bad = rows;
                double ref = 0, tol = 0;
                for (size_t r = 0; r < rows && ok; r++) {
                    const float *w = W + off + r * cols;
                    double sa;
                    ref = kc_ref_dot(w, x + off, cols, &sa);
                    tol = kc_red_tol(cols, sa);
                    if (!kc_same(y[off + r], K->dot_f32(w, x + off, cols)) || fabs(y[off + r] - ref) > tol) {
                        ok = 0;
                        bad = r;
                    }
                }
                kc_case(st, ok, K->name,
                        "matvec_f32 rows=%zu cols=%zu off=%zu: row %zu got=%.9g dot=%.9g ref=%.9g tol=%.3g%s",
                        rows, cols, off, bad, bad < rows ? y[off + bad] : 0.0f,
                        bad < rows ? K->dot_f32(W + off + bad * cols, x + off, cols) : 0.0f, ref, tol,
                        kc_guards_ok(y, off, rows) ? "" : " (wrote outside y)");
                free(W);
                free(x);
                free(y);
            }
}

// ---- matmul: each (t, r) bit-identical to dot ---------------------------------------------
static inline void kc_matmul_case(KcStats *st, const SimdKernels *K, size_t T, size_t rows, size_t cols,
                           size_t off, uint64_t *seed)
{
    float *W = kc_in(off, rows * cols), *X = kc_in(off, T * cols), *Y = kc_out(off, T * rows);
    kc_fill(W + off, rows * cols, seed, -1, 1);
    kc_fill(X + off, T * cols, seed, -1, 1);
    K->matmul_f32(Y + off, W + off, X + off, T, rows, cols);
    int ok = kc_guards_ok(Y, off, T * rows);
    size_t bt = 0, br = 0;
    double ref = 0, tol = 0;
    for (size_t t = 0; t < T && ok; t++)
        for (size_t r = 0; r < rows && ok; r++) {
            const float *w = W + off + r * cols, *x = X + off + t * cols;
            float got = Y[off + t * rows + r];
            double sa;
            ref = kc_ref_dot(w, x, cols, &sa);
            tol = kc_red_tol(cols, sa);
            if (!kc_same(got, K->dot_f32(w, x, cols)) || fabs(got - ref) > tol) {
                ok = 0;
                bt = t;
                br = r;
            }
        }
    kc_case(st, ok, K->name, "matmul_f32 T=%zu rows=%zu cols=%zu off=%zu: first bad (t=%zu, r=%zu) ref=%.9g tol=%.3g%s",
            T, rows, cols, off, bt, br, ref, tol, kc_guards_ok(Y, off, T * rows) ? "" : " (wrote outside Y)");
    free(W);
    free(X);
    free(Y);
}

static inline void kc_check_matmul(KcStats *st, const SimdKernels *K)
{
    static const size_t Ts[] = {1, 2, 3, 4, 5, 7};
    static const size_t rowss[] = {1, 3, 4, 5, 9};
    static const size_t colss[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 1001};
    uint64_t seed = 3;
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (size_t ri = 0; ri < sizeof rowss / sizeof rowss[0]; ri++)
            for (size_t ci = 0; ci < sizeof colss / sizeof colss[0]; ci++)
                for (size_t off = 0; off < 2; off++)
                    kc_matmul_case(st, K, Ts[ti], rowss[ri], colss[ci], off, &seed);
    // Several row blocks of the cache-blocked path, with leftover rows and tokens.
    kc_matmul_case(st, K, 7, 203, 768, 1, &seed);
    kc_matmul_case(st, K, 5, 37, 4099, 0, &seed);
    kc_matmul_case(st, K, 8, 64, 2048, 1, &seed);
}

// ---- rmsnorm -----------------------------------------------------------------------------
// |got - ref| <= (2 sqrt(n) + 4) eps |ref|: half the sum's relative error (the sqrt) plus the
// roundings of /n, +eps, sqrtf, 1/x and two products.
static inline void kc_check_rmsnorm(KcStats *st, const SimdKernels *K)
{
    const float eps = 1e-5f;
    uint64_t seed = 4;
    for (size_t si = 0; si < KC_NSIZES; si++)
        for (size_t off = 0; off < 2; off++)
            for (int gain = 0; gain < 2; gain++) {
                size_t n = kc_sizes[si];
                float *x = kc_in(off, n), *w = kc_in(off, n), *o = kc_out(off, n), *xa = kc_out(off, n);
                kc_fill(x + off, n, &seed, -2, 2);
                kc_fill(w + off, n, &seed, 0.5f, 1.5f);
                const float *wp = gain ? w + off : NULL;
                float inv = K->rmsnorm_f32(o + off, x + off, wp, n, eps);
                double ss = 0;
                for (size_t i = 0; i < n; i++) ss += (double)x[off + i] * x[off + i];
                double inv_ref = n ? 1.0 / sqrt(ss / (double)n + (double)eps) : 0.0;
                double rel = (2.0 * sqrt((double)n) + 4.0) * FLT_EPSILON;
                int ok = kc_guards_ok(o, off, n) && fabs(inv - inv_ref) <= rel * inv_ref;
                size_t bad = n;
                for (size_t i = 0; i < n && ok; i++) {
                    double ref = (wp ? (double)wp[i] : 1.0) * x[off + i] * inv_ref;
                    if (fabs(o[off + i] - ref) > rel * fabs(ref) + 1e-37) {
                        ok = 0;
                        bad = i;
                    }
                }
                // Aliasing: out == x gives the same bits as a separate out.
                memcpy(xa + off, x + off, n * sizeof(float));
                float inv2 = K->rmsnorm_f32(xa + off, xa + off, wp, n, eps);
                int alias_ok = kc_same(inv, inv2) && kc_guards_ok(xa, off, n) &&
                               memcmp(xa + off, o + off, n * sizeof(float)) == 0;
                kc_case(st, ok && alias_ok, K->name,
                        "rmsnorm_f32 n=%zu off=%zu gain=%d: inv=%.9g ref=%.9g, first bad element %zu%s", n, off,
                        gain, inv, inv_ref, bad, alias_ok ? "" : ", aliased out differs");
                free(x);
                free(w);
                free(o);
                free(xa);
            }
}

// ---- softmax -----------------------------------------------------------------------------
// |got - ref| <= (16 + 4 sqrt(n) + |x_i - max|) eps ref: exp (<= 8 eps), the sum (4 sqrt(n)),
// and the rounding of x_i - max, which exp magnifies by |x_i - max|.
static inline void kc_check_softmax(KcStats *st, const SimdKernels *K)
{
    uint64_t seed = 5;
    for (size_t si = 0; si < KC_NSIZES; si++)
        for (size_t off = 0; off < 3; off++) {
            size_t n = kc_sizes[si];
            int masked = off == 2;   // third variant: offset 1 with -inf entries (attention masks)
            size_t o = masked ? 1 : off;
            float *x = kc_out(o, n);
            double *ref = malloc((n + 1) * sizeof(double));
            kc_fill(x + o, n, &seed, -20, 20);
            if (masked)
                for (size_t i = 1; i < n; i += 3) x[o + i] = -INFINITY;
            double mx = -INFINITY, sum = 0;
            for (size_t i = 0; i < n; i++) mx = x[o + i] > mx ? x[o + i] : mx;
            for (size_t i = 0; i < n; i++) sum += (ref[i] = exp((double)x[o + i] - mx));
            for (size_t i = 0; i < n; i++) ref[i] /= sum;
            double *d = malloc((n + 1) * sizeof(double));
            for (size_t i = 0; i < n; i++) d[i] = isinf(x[o + i]) ? 0 : fabs(x[o + i] - mx);
            K->softmax_f32(x + o, n);
            int ok = kc_guards_ok(x, o, n);
            size_t bad = n;
            for (size_t i = 0; i < n && ok; i++) {
                double tol = (16.0 + 4.0 * sqrt((double)n) + d[i]) * FLT_EPSILON * ref[i] + 1e-37;
                if (!(fabs(x[o + i] - ref[i]) <= tol)) {
                    ok = 0;
                    bad = i;
                }
            }
            kc_case(st, ok, K->name, "softmax_f32 n=%zu off=%zu%s: element %zu got=%.9g ref=%.9g", n, o,
                    masked ? " with -inf" : "", bad, bad < n ? x[o + bad] : 0.0f, bad < n ? ref[bad] : 0.0);
            free(x);
            free(ref);
            free(d);
        }
}

// ---- swiglu ------------------------------------------------------------------------------
// |got - ref| <= 16 eps |ref| + tiny: exp (<= 8 eps, damped by the sigmoid) and four roundings.
static inline void kc_check_swiglu(KcStats *st, const SimdKernels *K)
{
    static const float specials[] = {0.0f, -0.0f, 100.0f, -100.0f, 88.0f, -88.0f, 1e-20f, -30.0f};
    uint64_t seed = 6;
    for (size_t si = 0; si < KC_NSIZES; si++)
        for (size_t off = 0; off < 2; off++) {
            size_t n = kc_sizes[si];
            float *g = kc_out(off, n), *u = kc_in(off, n);
            double *ref = malloc((n + 1) * sizeof(double));
            kc_fill(g + off, n, &seed, -10, 10);
            kc_fill(u + off, n, &seed, -2, 2);
            for (size_t i = 0; i < n; i += 5) g[off + i] = specials[(i / 5) % 8];
            for (size_t i = 0; i < n; i++) {
                double v = g[off + i];
                ref[i] = v / (1.0 + exp(-v)) * u[off + i];
            }
            K->swiglu_f32(g + off, u + off, n);
            int ok = kc_guards_ok(g, off, n);
            size_t bad = n;
            for (size_t i = 0; i < n && ok; i++)
                if (!(fabs(g[off + i] - ref[i]) <= 16.0 * FLT_EPSILON * fabs(ref[i]) + 1e-37)) {
                    ok = 0;
                    bad = i;
                }
            kc_case(st, ok, K->name, "swiglu_f32 n=%zu off=%zu: element %zu got=%.9g ref=%.9g", n, off, bad,
                    bad < n ? g[off + bad] : 0.0f, bad < n ? ref[bad] : 0.0);
            free(g);
            free(u);
            free(ref);
        }
}

// ---- rope, axpy, scale: elementwise, and bit-identical to scalar.c in every table ---------
static inline void kc_check_rope(KcStats *st, const SimdKernels *K, const SimdKernels *S)
{
    uint64_t seed = 7;
    for (size_t si = 0; si < KC_NSIZES; si++)
        for (size_t off = 0; off < 2; off++) {
            size_t np = kc_sizes[si];
            float *x = kc_out(off, 2 * np), *xs = kc_out(off, 2 * np), *c = kc_in(off, np), *s = kc_in(off, np);
            kc_fill(x + off, 2 * np, &seed, -2, 2);
            for (size_t i = 0; i < np; i++) {
                float ang = kc_uniform(&seed, -100, 100);
                c[off + i] = cosf(ang);
                s[off + i] = sinf(ang);
            }
            memcpy(xs + off, x + off, 2 * np * sizeof(float));
            double *ref = malloc((2 * np + 1) * sizeof(double)), *tol = malloc((2 * np + 1) * sizeof(double));
            for (size_t i = 0; i < np; i++) {
                double v0 = x[off + 2 * i], v1 = x[off + 2 * i + 1], cc = c[off + i], ss = s[off + i];
                ref[2 * i] = v0 * cc - v1 * ss;
                ref[2 * i + 1] = v0 * ss + v1 * cc;
                tol[2 * i] = 2 * FLT_EPSILON * (fabs(v0 * cc) + fabs(v1 * ss)) + 1e-37;
                tol[2 * i + 1] = 2 * FLT_EPSILON * (fabs(v0 * ss) + fabs(v1 * cc)) + 1e-37;
            }
            K->rope_pairs_f32(x + off, c + off, s + off, np);
            S->rope_pairs_f32(xs + off, c + off, s + off, np);
            int ok = kc_guards_ok(x, off, 2 * np), same = memcmp(x + off, xs + off, 2 * np * sizeof(float)) == 0;
            size_t bad = 2 * np;
            for (size_t i = 0; i < 2 * np && ok; i++)
                if (!(fabs(x[off + i] - ref[i]) <= tol[i])) {
                    ok = 0;
                    bad = i;
                }
            kc_case(st, ok && same, K->name, "rope_pairs_f32 npairs=%zu off=%zu: bad element %zu%s", np, off, bad,
                    same ? "" : ", differs from scalar.c bits");
            free(x);
            free(xs);
            free(c);
            free(s);
            free(ref);
            free(tol);
        }
}

static inline void kc_check_axpy_scale(KcStats *st, const SimdKernels *K, const SimdKernels *S)
{
    uint64_t seed = 8;
    for (size_t si = 0; si < KC_NSIZES; si++)
        for (size_t off = 0; off < 2; off++) {
            size_t n = kc_sizes[si];
            float a = kc_uniform(&seed, -3, 3);
            float *x = kc_in(off, n), *y = kc_out(off, n), *ys = kc_out(off, n);
            double *ref = malloc((n + 1) * sizeof(double)), *tol = malloc((n + 1) * sizeof(double));
            kc_fill(x + off, n, &seed, -2, 2);
            kc_fill(y + off, n, &seed, -2, 2);
            memcpy(ys + off, y + off, n * sizeof(float));
            // axpy: two roundings -> |err| <= eps (|y| + |a x|).
            for (size_t i = 0; i < n; i++) {
                double ax = (double)a * x[off + i];
                ref[i] = y[off + i] + ax;
                tol[i] = FLT_EPSILON * (fabs((double)y[off + i]) + fabs(ax)) + 1e-37;
            }
            K->axpy_f32(y + off, a, x + off, n);
            S->axpy_f32(ys + off, a, x + off, n);
            int ok = kc_guards_ok(y, off, n), same = memcmp(y + off, ys + off, n * sizeof(float)) == 0;
            for (size_t i = 0; i < n && ok; i++) ok = fabs(y[off + i] - ref[i]) <= tol[i];
            kc_case(st, ok && same, K->name, "axpy_f32 n=%zu off=%zu%s", n, off, same ? "" : ": differs from scalar.c bits");

            // scale: one rounding -> |err| <= eps |ref|; also in place (y == x).
            for (size_t i = 0; i < n; i++) ref[i] = (double)a * x[off + i];
            K->scale_f32(y + off, a, x + off, n);
            ok = kc_guards_ok(y, off, n);
            for (size_t i = 0; i < n && ok; i++) ok = fabs(y[off + i] - ref[i]) <= FLT_EPSILON * fabs(ref[i]) + 1e-37;
            memcpy(ys + off, x + off, n * sizeof(float));
            K->scale_f32(ys + off, a, ys + off, n);
            same = memcmp(y + off, ys + off, n * sizeof(float)) == 0 && kc_guards_ok(ys, off, n);
            kc_case(st, ok && same, K->name, "scale_f32 n=%zu off=%zu%s", n, off, same ? "" : ": in-place result differs");
            free(x);
            free(y);
            free(ys);
            free(ref);
            free(tol);
        }
}

// ---- dots: strided matmul, each entry bit-identical to dot ---------------------------------
static inline void kc_check_dots(KcStats *st, const SimdKernels *K)
{
    static const size_t Ts[] = {1, 2, 3, 4, 7};
    static const size_t rowss[] = {0, 1, 3, 4, 5, 9, 33};
    static const size_t pads[] = {0, 3, 17};   // ldw = cols + pad, ldx = cols + 2 pad, ldy = rows + pad
    uint64_t seed = 21;
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (size_t ri = 0; ri < sizeof rowss / sizeof rowss[0]; ri++)
            for (size_t si = 0; si < KC_NSIZES; si++)
                for (size_t pi = 0; pi < 3; pi++)
                    for (size_t off = 0; off < 2; off++) {
                        size_t T = Ts[ti], rows = rowss[ri], cols = kc_sizes[si];
                        size_t ldw = cols + pads[pi], ldx = cols + 2 * pads[pi], ldy = rows + pads[pi];
                        if (cols > 1001 && (rows > 5 || pi || T > 3)) continue;   // keep the large sizes few
                        if (T > 1 && (si % 2 || off != pi % 2)) continue;        // and the multi-query cases
                        size_t nw = rows ? (rows - 1) * ldw + cols : 0, nx = (T - 1) * ldx + cols;
                        size_t ny = rows ? (T - 1) * ldy + rows : 0;
                        float *W = kc_in(off, nw), *X = kc_in(off, nx), *Y = kc_out(off, ny);
                        kc_fill(W + off, nw, &seed, -1, 1);
                        kc_fill(X + off, nx, &seed, -1, 1);
                        K->dots_f32(Y + off, ldy, X + off, ldx, T, W + off, ldw, rows, cols);
                        int ok = kc_guards_ok(Y, off, ny);
                        size_t bt = 0, br = rows;
                        double ref = 0, tol = 0;
                        for (size_t t = 0; t < T && ok; t++) {
                            for (size_t r = 0; r < rows && ok; r++) {
                                const float *w = W + off + r * ldw, *x = X + off + t * ldx;
                                double sa;
                                ref = kc_ref_dot(w, x, cols, &sa);
                                tol = kc_red_tol(cols, sa);
                                float got = Y[off + t * ldy + r];
                                if (!kc_same(got, K->dot_f32(x, w, cols)) || fabs(got - ref) > tol) {
                                    ok = 0;
                                    bt = t;
                                    br = r;
                                }
                            }
                            for (size_t r = rows; rows && r < ldy && t + 1 < T && ok; r++)   // gaps untouched
                                if (!kc_same(Y[off + t * ldy + r], kc_canary)) ok = 0, bt = t, br = r;
                        }
                        kc_case(st, ok, K->name,
                                "dots_f32 T=%zu rows=%zu cols=%zu ldw=%zu ldx=%zu ldy=%zu off=%zu: first bad (t=%zu, r=%zu) ref=%.9g tol=%.3g%s",
                                T, rows, cols, ldw, ldx, ldy, off, bt, br, ref, tol,
                                kc_guards_ok(Y, off, ny) ? "" : " (wrote outside Y)");
                        free(W);
                        free(X);
                        free(Y);
                    }
}

// ---- axpys: per row, k strided axpys in order, scalar.c's bits in every table ----------------
static inline void kc_check_axpys(KcStats *st, const SimdKernels *K, const SimdKernels *S)
{
    static const size_t Ts[] = {1, 2, 3, 4, 5, 7};
    static const size_t ks[] = {0, 1, 2, 5, 17, 100};
    static const size_t pads[] = {0, 5};   // ldx = n + pad, ldy = n + 2 pad, lda = k + 3 pad
    uint64_t seed = 22;
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
            for (size_t si = 0; si < KC_NSIZES; si++)
                for (size_t pi = 0; pi < 2; pi++)
                    for (size_t off = 0; off < 2; off++) {
                        size_t T = Ts[ti], k = ks[ki], n = kc_sizes[si];
                        size_t ldx = n + pads[pi], ldy = n + 2 * pads[pi], lda = k + 3 * pads[pi];
                        if (n > 1001 && (k > 5 || T > 2)) continue;
                        if (T > 1 && (si + ki) % 2 != off) continue;   // keep the multi-row cases fewer
                        size_t nx = k ? (k - 1) * ldx + n : 0, na = (T - 1) * lda + k, ny = (T - 1) * ldy + n;
                        float *X = kc_in(off, nx), *A = kc_in(off, na), *Y = kc_out(off, ny), *Ys = kc_out(off, ny);
                        double *ref = malloc((ny + 1) * sizeof(double)), *tol = malloc((ny + 1) * sizeof(double));
                        kc_fill(X + off, nx, &seed, -2, 2);
                        kc_fill(A + off, na, &seed, -1, 1);
                        kc_fill(Y + off, ny, &seed, -2, 2);
                        memcpy(Ys + off, Y + off, ny * sizeof(float));
                        // k steps of two roundings each: |err| <= 2 (k + 1) eps sum (|y| + |a x|).
                        for (size_t t = 0; t < T; t++)
                            for (size_t i = 0; i < n; i++) {
                                double v = Y[off + t * ldy + i], mag = fabs(v);
                                for (size_t u = 0; u < k; u++) {
                                    double ax = (double)A[off + t * lda + u] * X[off + u * ldx + i];
                                    v += ax;
                                    mag += fabs(ax);
                                }
                                ref[t * ldy + i] = v;
                                tol[t * ldy + i] = 2.0 * (double)(k + 1) * FLT_EPSILON * mag + 1e-37;
                            }
                        K->axpys_f32(Y + off, ldy, A + off, lda, T, X + off, ldx, k, n);
                        for (size_t t = 0; t < T; t++)
                            for (size_t u = 0; u < k; u++)
                                S->axpy_f32(Ys + off + t * ldy, A[off + t * lda + u], X + off + u * ldx, n);
                        // Same bits everywhere, the gaps between rows (ldy > n) included: untouched.
                        int ok = kc_guards_ok(Y, off, ny), same = memcmp(Y + off, Ys + off, ny * sizeof(float)) == 0;
                        for (size_t t = 0; t < T && ok; t++)
                            for (size_t i = 0; i < n && ok; i++) ok = fabs(Y[off + t * ldy + i] - ref[t * ldy + i]) <= tol[t * ldy + i];
                        kc_case(st, ok && same, K->name, "axpys_f32 T=%zu k=%zu n=%zu ldx=%zu ldy=%zu lda=%zu off=%zu%s", T, k,
                                n, ldx, ldy, lda, off, same ? "" : ": differs from k scalar.c axpy_f32 calls per row");
                        free(X);
                        free(A);
                        free(Y);
                        free(Ys);
                        free(ref);
                        free(tol);
                    }
}

// ---- axpyv: per row, k steps y += c x elementwise, scalar.c's bits in every table -----------
// Each Y and X row is a buffer of its own (the rows are pointers), the Y rows with canaries.
static inline void kc_check_axpyv(KcStats *st, const SimdKernels *K, const SimdKernels *S)
{
    enum { MT = 17, MK = 6 };
    static const size_t Ts[] = {0, 1, 2, 3, 5, 8, 9, 17}, ks[] = {0, 1, 2, 6};
    uint64_t seed = 23;
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
            for (size_t si = 0; si < KC_NSIZES; si++)
                for (size_t off = 0; off < 2; off++) {
                    size_t T = Ts[ti], k = ks[ki], n = kc_sizes[si];
                    size_t ldt = n + 3 * off, lds = T * ldt + 5 * off;   // gaps never read
                    if (n > 1001 && (T > 2 || k > 2)) continue;
                    if ((T > 3 || k > 2) && (si + ti + ki) % 2 != off) continue;   // fewer of the big cases
                    size_t nc = k ? (k - 1) * lds + (T ? (T - 1) * ldt + n : 0) : 0;
                    float *C = kc_in(off, nc), *Y[MT], *Ys[MT], *Yp[MT], *Ysp[MT], *Xb[MK];
                    const float *Xp[MK];
                    double *ref = malloc((T * n + 1) * sizeof(double)), *tol = malloc((T * n + 1) * sizeof(double));
                    kc_fill(C + off, nc, &seed, -1, 1);
                    for (size_t u = 0; u < k; u++) {
                        Xb[u] = kc_in(1 - off + u % 2, n);   // rows at mixed alignments
                        kc_fill(Xb[u] + 1 - off + u % 2, n, &seed, -2, 2);
                        Xp[u] = Xb[u] + 1 - off + u % 2;
                    }
                    for (size_t t = 0; t < T; t++) {
                        Y[t] = kc_out(off + t % 2, n), Ys[t] = kc_out(off + t % 2, n);
                        Yp[t] = Y[t] + off + t % 2, Ysp[t] = Ys[t] + off + t % 2;
                        kc_fill(Yp[t], n, &seed, -2, 2);
                        memcpy(Ysp[t], Yp[t], n * sizeof(float));
                        for (size_t i = 0; i < n; i++) {   // k steps of two roundings each
                            double v = Yp[t][i], mag = fabs(v);
                            for (size_t u = 0; u < k; u++) {
                                double cx = (double)C[off + u * lds + t * ldt + i] * Xp[u][i];
                                v += cx;
                                mag += fabs(cx);
                            }
                            ref[t * n + i] = v;
                            tol[t * n + i] = 2.0 * (double)(k + 1) * FLT_EPSILON * mag + 1e-37;
                        }
                    }
                    K->axpyv_f32(Yp, T, C + off, ldt, lds, Xp, k, n);
                    S->axpyv_f32(Ysp, T, C + off, ldt, lds, Xp, k, n);
                    int ok = 1, same = 1;
                    for (size_t t = 0; t < T; t++) {
                        ok = ok && kc_guards_ok(Y[t], off + t % 2, n);
                        same = same && memcmp(Yp[t], Ysp[t], n * sizeof(float)) == 0;
                        for (size_t i = 0; i < n && ok; i++) ok = fabs(Yp[t][i] - ref[t * n + i]) <= tol[t * n + i];
                    }
                    kc_case(st, ok && same, K->name, "axpyv_f32 T=%zu k=%zu n=%zu ldt=%zu lds=%zu off=%zu%s", T, k, n, ldt,
                            lds, off, same ? "" : ": differs from scalar.c's axpyv_f32");
                    for (size_t t = 0; t < T; t++) free(Y[t]), free(Ys[t]);
                    for (size_t u = 0; u < k; u++) free(Xb[u]);
                    free(C);
                    free(ref);
                    free(tol);
                }
}

// ---- scalar fidelity: scalar.c is llama2.c run.c, bit for bit --------------------------------
// These loops are written the way run.c writes them (float accumulators, a*b then +, expf).
static inline void kc_check_scalar_fidelity(KcStats *st, const SimdKernels *K)
{
    uint64_t seed = 9;
    static const size_t ns[] = {1, 7, 64, 288, 1001, 4099};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        size_t n = ns[k], rows = 5;
        float *a = kc_in(0, n), *b = kc_in(0, n), *w = kc_in(0, rows * n), *y = kc_in(0, rows);
        float *o = kc_in(0, n), *o2 = kc_in(0, n), *sm = kc_in(0, n), *sm2 = kc_in(0, n);
        float *u = kc_in(0, n), *g = kc_in(0, n), *g2 = kc_in(0, n);
        kc_fill(a, n, &seed, -1, 1);
        kc_fill(b, n, &seed, -1, 1);
        kc_fill(w, rows * n, &seed, -1, 1);
        kc_fill(sm, n, &seed, -10, 10);
        kc_fill(g, n, &seed, -8, 8);
        kc_fill(u, n, &seed, -2, 2);
        memcpy(sm2, sm, n * sizeof(float));
        memcpy(g2, g, n * sizeof(float));

        float val = 0.0f;   // run.c matmul inner loop
        for (size_t j = 0; j < n; j++) val += a[j] * b[j];
        int ok = kc_same(K->dot_f32(a, b, n), val);

        K->matvec_f32(y, w, b, rows, n);
        for (size_t i = 0; i < rows; i++) {
            float v = 0.0f;
            for (size_t j = 0; j < n; j++) v += w[i * n + j] * b[j];
            ok = ok && kc_same(y[i], v);
        }
        kc_case(st, ok, K->name, "fidelity dot/matvec n=%zu: not bit-identical to run.c loops", n);

        float ss = 0.0f;   // run.c rmsnorm
        for (size_t j = 0; j < n; j++) ss += a[j] * a[j];
        ss /= (float)n;
        ss += 1e-5f;
        ss = 1.0f / sqrtf(ss);
        for (size_t j = 0; j < n; j++) o2[j] = b[j] * (ss * a[j]);
        float inv = K->rmsnorm_f32(o, a, b, n, 1e-5f);
        kc_case(st, kc_same(inv, ss) && memcmp(o, o2, n * sizeof(float)) == 0, K->name,
                "fidelity rmsnorm n=%zu: not bit-identical to run.c", n);

        float mx = sm2[0];   // run.c softmax
        for (size_t i = 1; i < n; i++)
            if (sm2[i] > mx) mx = sm2[i];
        float sum = 0.0f;
        for (size_t i = 0; i < n; i++) {
            sm2[i] = expf(sm2[i] - mx);
            sum += sm2[i];
        }
        for (size_t i = 0; i < n; i++) sm2[i] /= sum;
        K->softmax_f32(sm, n);
        kc_case(st, memcmp(sm, sm2, n * sizeof(float)) == 0, K->name, "fidelity softmax n=%zu: not bit-identical to run.c", n);

        for (size_t i = 0; i < n; i++) {   // run.c SwiGLU
            float v = g2[i];
            v *= (1.0f / (1.0f + expf(-v)));
            v *= u[i];
            g2[i] = v;
        }
        K->swiglu_f32(g, u, n);
        kc_case(st, memcmp(g, g2, n * sizeof(float)) == 0, K->name, "fidelity swiglu n=%zu: not bit-identical to run.c", n);

        free(a); free(b); free(w); free(y); free(o); free(o2); free(sm); free(sm2); free(u); free(g); free(g2);
    }
}

// ---- int8 (quant/q8.h, simd.h int8 entries) -------------------------------------------------
// Weights and activations are built as BlockQ8 values directly (no quantizer involved): random
// q in [-127, 127] with a third of them at +-127, some blocks all zero with scale 0, random
// positive scales.  The expected value of every output is the canonical loop of simd.h written
// here over the row-major BlockQ8 matrix (not the packed layout), and it must match bit for
// bit; it must also lie within the float rounding bound of a double-precision sum.

// Random int8 in [-127, 127]; one in three at +-127.
static inline int8_t kc_q(uint64_t *s)
{
    uint64_t r = kc_rand(s);
    if (r % 3 == 0) return (r >> 8) & 1 ? 127 : -127;
    return (int8_t)((int)((r >> 16) % 255) - 127);
}

// One random block; zero_one_in: an all-zero block (d = 0, q = 0) with probability 1/n.
static inline void kc_block(BlockQ8 *b, uint64_t *s, size_t valid, int zero_one_in)
{
    memset(b->qs, 0, sizeof b->qs);
    if (zero_one_in && kc_rand(s) % (uint64_t)zero_one_in == 0) {
        b->d = 0.0f;
        return;
    }
    b->d = kc_uniform(s, 0.001f, 0.05f);
    for (size_t k = 0; k < valid; k++) b->qs[k] = kc_q(s);
}

// A (rows, cols) matrix of BlockQ8 rows (tails past cols zero).
static inline BlockQ8 *kc_q8_matrix(size_t rows, size_t cols, uint64_t *s)
{
    size_t nb = q8_nblocks(cols);
    BlockQ8 *W = malloc((rows * nb + 1) * sizeof *W);
    for (size_t r = 0; r < rows; r++)
        for (size_t b = 0; b < nb; b++) kc_block(&W[r * nb + b], s, cols - b * 32 < 32 ? cols - b * 32 : 32, 5);
    return W;
}

// Activation rows (T, nb blocks) with storage at byte offset `off` (unaligned reads).
typedef struct KcAct {
    Q8Act a;
    int8_t *qbuf;
    float *d;
    int32_t *ns;
} KcAct;
static inline void kc_act_init(KcAct *k, size_t T, size_t cols, size_t off, uint64_t *s)
{
    size_t nb = q8_nblocks(cols);
    k->qbuf = malloc(T * nb * 32 + off + 1);
    k->d = malloc((T * nb + 1) * sizeof(float));
    k->ns = malloc((T * nb + 1) * sizeof(int32_t));
    int8_t *q = k->qbuf + off;
    for (size_t i = 0; i < T * nb; i++) {
        BlockQ8 b;
        size_t bb = i % nb;
        kc_block(&b, s, cols - bb * 32 < 32 ? cols - bb * 32 : 32, 6);
        memcpy(q + i * 32, b.qs, 32);
        k->d[i] = b.d;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) sum += b.qs[j];
        k->ns[i] = -128 * sum;
    }
    k->a = (Q8Act){q, k->d, k->ns, nb, T, 1, 0};
}
static inline void kc_act_free(KcAct *k)
{
    free(k->qbuf);
    free(k->d);
    free(k->ns);
}

// Canonical value of simd.h over a row of BlockQ8 and an activation row; *mag gets the double
// sum of |isum * dw * dx| and *exact the double-precision value.
static inline float kc_q8_canon(const BlockQ8 *w, const int8_t *xq, const float *xd, size_t nb, double *exact,
                                double *mag)
{
    float acc = 0.0f;
    double e = 0, m = 0;
    for (size_t b = 0; b < nb; b++) {
        int64_t s = 0;
        for (int k = 0; k < 32; k++) s += (int64_t)w[b].qs[k] * xq[b * 32 + k];
        acc = fmaf((float)s, w[b].d * xd[b], acc);
        e += (double)s * w[b].d * xd[b];
        m += fabs((double)s * w[b].d * xd[b]);
    }
    *exact = e;
    *mag = m;
    return acc;
}
// Float steps of the canonical loop: per block one product and one fused add.
static inline double kc_q8_tol(size_t nb, double mag) { return 2.0 * (double)(nb + 2) * FLT_EPSILON * mag + 1e-30; }

// Packed copy of W at byte offset `off` of a malloc'd buffer (*base to free).
static inline Q8Panels kc_pack(const BlockQ8 *W, size_t rows, size_t cols, size_t off, uint8_t **base)
{
    size_t bytes = q8_panels_bytes(rows, cols);
    *base = malloc(bytes + off + 1);
    q8_pack_panels(*base + off, W, rows, cols, 0, q8_npanels(rows));
    return q8_panels_view(*base + off, rows, cols);
}

// ---- quantizer and repacking (table independent; run once, on the scalar table) -------------
// n random values of a quantizer case: scale 1e-3, 1e3 or 1 by rep, a negative extreme (-1.5
// scale) every 7th rep.  Returns the scale.
static inline float kc_q8_block_input(float *x, size_t n, int rep, uint64_t *seed)
{
    float scale = rep % 4 == 0 ? 1e-3f : rep % 4 == 1 ? 1e3f : 1.0f;
    kc_fill(x, n, seed, -scale, scale);
    if (rep % 7 == 0) x[kc_rand(seed) % n] = -scale * 1.5f;
    return scale;
}

// The 16-bit activation step for a block's amax: the power of two at or above fl(amax / 32639)
// (quant/q8.h), computed with frexpf rather than the quantizer's bit operations; 0 for amax 0.
static inline float kc_step16(float amax)
{
    int e;
    float t = amax / 32639.0f, m = frexpf(t, &e);
    return m == 0.5f || amax == 0 ? t : ldexpf(1.0f, e);
}

static inline void kc_check_q8_format(KcStats *st, const SimdKernels *K)
{
    uint64_t seed = 21;
    // Activation rule (q8_quantize_block_amax): d = amax / 127, |x - d q| <= d/2 (plus rounding
    // slack), amax maps to +-127.  Weight rule (q8_quantize_block): squared error no larger
    // than the amax rule's, scale within the clipping search range.  Both: never -128, tails
    // zero; all-zero and tiny blocks are (d = 0, q = 0); NaN/Inf gives d = NaN.
    static const size_t ns[] = {1, 5, 31, 32};
    for (size_t ni = 0; ni < 4; ni++)
        for (int rep = 0; rep < 200; rep++) {
            size_t n = ns[ni];
            float x[32];
            float scale = kc_q8_block_input(x, n, rep, &seed);
            if (rep % 11 == 0) x[kc_rand(&seed) % n] = scale * 8.0f;   // an outlier (clipping pays)
            BlockQ8 b, w;
            q8_quantize_block_amax(&b, x, n);
            q8_quantize_block(&w, x, n);
            float amax = 0;
            for (size_t k = 0; k < n; k++) amax = fabsf(x[k]) > amax ? fabsf(x[k]) : amax;
            int ok = b.d == amax / 127.0f, hit = 0;
            double sse_a = 0, sse_w = 0, sx = 0;
            for (size_t k = 0; k < 32; k++) {
                ok = ok && b.qs[k] != -128 && w.qs[k] != -128 && (k < n || (b.qs[k] == 0 && w.qs[k] == 0));
                if (k < n) {
                    ok = ok && fabs((double)x[k] - (double)b.d * b.qs[k]) <= 0.5 * b.d * (1 + 1e-5) + 1e-30;
                    hit |= fabsf(x[k]) == amax && (b.qs[k] == 127 || b.qs[k] == -127);
                    sse_a += pow((double)x[k] - (double)b.d * b.qs[k], 2);
                    sse_w += pow((double)x[k] - (double)w.d * w.qs[k], 2);
                    sx += (double)x[k] * x[k];
                }
            }
            int ok_w = sse_w <= sse_a * (1 + 1e-6) + 1e-12 * sx && w.d >= 0.85 * amax / 127 && w.d <= 1.05 * amax / 127;
            kc_case(st, ok && hit, K->name, "q8_quantize_block_amax n=%zu rep=%d: bad scale/rounding/range (d=%g amax=%g)",
                    n, rep, b.d, amax);
            kc_case(st, ok_w, K->name, "q8_quantize_block n=%zu rep=%d: error %.3g above the amax rule's %.3g or scale %g "
                    "outside [0.85, 1.05] amax/127 = %g", n, rep, sse_w, sse_a, w.d, amax / 127.0);
        }
    float z[32] = {0}, tiny[32] = {1e-35f, -2e-36f}, bad[32] = {1, 2, NAN}, inf[32] = {1, -INFINITY};
    int ok = 1;
    for (int rule = 0; rule < 2; rule++) {
        void (*qb)(BlockQ8 *, const float *, size_t) = rule ? q8_quantize_block : q8_quantize_block_amax;
        BlockQ8 b;
        qb(&b, z, 32);
        ok = ok && b.d == 0.0f;
        for (int k = 0; k < 32; k++) ok = ok && b.qs[k] == 0;
        qb(&b, tiny, 32);
        ok = ok && b.d == 0.0f && b.qs[0] == 0;
        qb(&b, bad, 32);
        ok = ok && isnan(b.d) && b.qs[0] == 0;
        qb(&b, inf, 32);
        ok = ok && isnan(b.d);
    }
    kc_case(st, ok, K->name, "q8 quantizers: zero / tiny / NaN / Inf blocks");

    // 16-bit activations (q8_act_block16): s = the power of two at or above fl(amax / 32639)
    // (computed here with frexpf), v = round(x / s) in [-32639, 32639], v = 256 hi + lo with
    // hi, lo in [-127, 127]; |x - s v| <= s/2, or <= s where |lo| = 127 (a v with lo = +-128
    // moved by one); amax maps to |v| >= 16320; the digit scales are 256 s and s; nsum = -128 *
    // sum of each digit row; tails zero.
    for (size_t ni = 0; ni < 4; ni++)
        for (int rep = 0; rep < 200; rep++) {
            size_t n = ns[ni];
            float x[32];
            float scale = kc_q8_block_input(x, n, rep, &seed);
            if (rep % 13 == 0) x[kc_rand(&seed) % n] = 127.5f * scale / 32639.0f;   // a digit boundary
            int8_t qh[32], ql[32];
            float dh, dl;
            int32_t nh, nl;
            memset(qh, 0x7f, 32), memset(ql, 0x7f, 32);
            q8_act_block16(qh, &dh, &nh, ql, &dl, &nl, x, n);
            float amax = 0;
            for (size_t k = 0; k < n; k++) amax = fabsf(x[k]) > amax ? fabsf(x[k]) : amax;
            int ok16 = dl == kc_step16(amax) && dh == dl * 256.0f, hit = 0;
            int32_t sh = 0, sl = 0;
            for (size_t k = 0; k < 32; k++) {
                int v = 256 * qh[k] + ql[k];
                sh += qh[k], sl += ql[k];
                ok16 = ok16 && qh[k] != -128 && ql[k] != -128 && v >= -32639 && v <= 32639;
                if (k >= n) ok16 = ok16 && qh[k] == 0 && ql[k] == 0;
                else {
                    double err = fabs((double)x[k] - (double)dl * v), step = abs(ql[k]) == 127 ? 1.0 : 0.5;
                    ok16 = ok16 && err <= step * dl;
                    // the two digit rows as the kernels see them: dh * hi + dl * lo
                    ok16 = ok16 && fabs((double)x[k] - ((double)dh * qh[k] + (double)dl * ql[k])) == err;
                    hit |= fabsf(x[k]) == amax && (v >= 16320 || v <= -16320);
                }
            }
            ok16 = ok16 && nh == -128 * sh && nl == -128 * sl;
            kc_case(st, ok16 && hit, K->name, "q8_act_block16 n=%zu rep=%d: bad digits/scales/rounding (dl=%g amax=%g)", n,
                    rep, dl, amax);
        }
    {
        int8_t qh[32], ql[32];
        float dh, dl;
        int32_t nh, nl;
        int ok16 = 1;
        const float *cases[4] = {z, tiny, bad, inf};
        for (int c = 0; c < 4; c++) {
            memset(qh, 1, 32), memset(ql, 1, 32);
            q8_act_block16(qh, &dh, &nh, ql, &dl, &nl, cases[c], 32);
            ok16 = ok16 && (c < 2 ? dh == 0.0f && dl == 0.0f : isnan(dh) && isnan(dl)) && nh == 0 && nl == 0;
            for (int k = 0; k < 32; k++) ok16 = ok16 && qh[k] == 0 && ql[k] == 0;
        }
        kc_case(st, ok16, K->name, "q8_act_block16: zero / tiny / NaN / Inf blocks");
        // Row layout of q8_act_quantize_digits: token t's hi row at 2t, lo row at 2t+1.
        float X[3 * 40];
        kc_fill(X, 3 * 40, &seed, -3, 3);
        Q8ActBuf buf = {0};
        Q8Act A;
        int okl = q8_act_quantize_digits(&A, &buf, X, 3, 40, 2) == 0 && A.T == 6 && A.digits == 2 && A.nb == 2;
        for (size_t t = 0; okl && t < 3; t++)
            for (size_t b = 0; b < 2; b++) {
                q8_act_block16(qh, &dh, &nh, ql, &dl, &nl, X + t * 40 + b * 32, b ? 8 : 32);
                size_t ih = (2 * t) * 2 + b, il = (2 * t + 1) * 2 + b;
                okl = okl && !memcmp(A.q + ih * 32, qh, 32) && !memcmp(A.q + il * 32, ql, 32) && A.d[ih] == dh &&
                      A.d[il] == dl && A.nsum[ih] == nh && A.nsum[il] == nl;
            }
        okl = okl && q8_act_quantize_digits(&A, &buf, X, 3, 40, 3) != 0;   // only 1 or 2 digits
        q8_actbuf_free(&buf);
        kc_case(st, okl, K->name, "q8_act_quantize_digits: rows (hi, lo) per token, or digits outside {1, 2} accepted");
    }

    // Every integer v in [-32639, 32639] as x = v s with s = 2^-10 (the block's first value
    // 32639 s fixes s): the digits give v back, except v = 128 (mod 256), which moves down by
    // one (x / s equals v), and (v + 1/4) s, which moves up.  Both digits in [-127, 127].
    {
        const float s10 = 1.0f / 1024.0f;
        int wrong = 0, moved = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int v0 = -32639; v0 <= 32639; v0 += 31) {
                float x[32] = {32639.0f * s10};
                int want[32];
                for (int k = 1; k < 32; k++) {
                    int v = v0 + k - 1, m = ((v % 256) + 256) % 256 == 128;
                    int out = v > 32639 - pass;   // (32639 + 1/4) s would be the block's amax
                    x[k] = out ? 0.0f : ((float)v + (pass ? 0.25f : 0.0f)) * s10;
                    want[k] = out ? 0 : m ? (pass ? v + 1 : v - 1) : v;
                    moved += m && v <= 32639 && !pass;
                }
                int8_t qh[32], ql[32];
                float dh, dl;
                int32_t nh, nl;
                q8_act_block16(qh, &dh, &nh, ql, &dl, &nl, x, 32);
                wrong += dl != s10;
                for (int k = 1; k < 32; k++) wrong += 256 * qh[k] + ql[k] != want[k] || qh[k] == -128 || ql[k] == -128;
            }
        float y[32] = {32639.0f * s10, 128.25f * s10, -384.25f * s10, -128.0f * s10};
        int8_t qh[32], ql[32];
        float dh, dl;
        int32_t nh, nl;
        q8_act_block16(qh, &dh, &nh, ql, &dl, &nl, y, 4);
        wrong += qh[1] != 1 || ql[1] != -127 || qh[2] != -2 || ql[2] != 127 || qh[3] != -1 || ql[3] != 127;
        kc_case(st, wrong == 0 && moved == 254, K->name, "q8 digit split: %d values wrong, %d moved (254 expected)", wrong,
                moved);
    }

    // Dequantize: one product per value; a partial row's tail is not written.
    {
        BlockQ8 row[3];
        float x[70], y[71];
        kc_fill(x, 70, &seed, -2, 2);
        q8_quantize_row(row, x, 70);
        y[70] = kc_canary;
        q8_dequantize_row(y, row, 70);
        int dq = kc_same(y[70], kc_canary);
        for (size_t c = 0; c < 70; c++) dq = dq && kc_same(y[c], row[c / 32].d * (float)row[c / 32].qs[c % 32]);
        kc_case(st, dq, K->name, "q8_dequantize_row: not d*q or wrote past cols");
    }

    // Repacking round-trips exactly, forward and transposed, at edge shapes.
    static const size_t rs[] = {1, 15, 16, 17, 33, 64};
    static const size_t cs[] = {1, 31, 32, 33, 100};
    for (size_t ri = 0; ri < 6; ri++)
        for (size_t ci = 0; ci < 5; ci++) {
            size_t rows = rs[ri], cols = cs[ci], nb = q8_nblocks(cols), ng = q8_nblocks(rows);
            BlockQ8 *W = kc_q8_matrix(rows, cols, &seed), *U = malloc(rows * nb * sizeof *U);
            uint8_t *base;
            Q8Panels P = kc_pack(W, rows, cols, 0, &base);
            q8_unpack_panels(U, P.data, rows, cols);
            int same = memcmp(W, U, rows * nb * sizeof *U) == 0;
            // Panel ranges pack the same bytes as the whole.
            uint8_t *pr = malloc(q8_panels_bytes(rows, cols));
            size_t np = q8_npanels(rows), mid = np / 2;
            q8_pack_panels(pr, W, rows, cols, mid, np);
            q8_pack_panels(pr, W, rows, cols, 0, mid);
            same = same && memcmp(pr, P.data, q8_panels_bytes(rows, cols)) == 0;
            uint8_t *T8 = malloc(q8_panels_t_bytes(rows, cols));
            float *sc = malloc(nb * ng * 32 * sizeof(float));
            q8_pack_panels_t(T8, sc, W, rows, cols, 0, q8_npanels(cols));
            memset(U, 0x55, rows * nb * sizeof *U);
            q8_unpack_panels_t(U, T8, sc, rows, cols);
            int same_t = memcmp(W, U, rows * nb * sizeof *U) == 0;
            kc_case(st, same && same_t, K->name, "q8 repack rows=%zu cols=%zu: round trip differs (%s)", rows, cols,
                    same ? "transposed" : "panels");
            free(W); free(U); free(base); free(pr); free(T8); free(sc);
        }
}

// ---- matvec_q8 / matmul_q8 / encode_q8 -----------------------------------------------------------
// pow2: activation scales that are powers of two (as the 16-bit quantizer's: Q8Act.pow2 = 1,
// which lets AVX-512 form dw * dx by vscalefps), zero, one subnormal power of two (2^-140:
// dw * dx is then subnormal too) and, in row 0, one NaN.
static inline void kc_q8_case_p(KcStats *st, const SimdKernels *K, size_t T, size_t rows, size_t cols, size_t off,
                                uint64_t *seed, int pow2)
{
    size_t nb = q8_nblocks(cols), np = q8_npanels(rows), ldy = rows + 3;
    BlockQ8 *W = kc_q8_matrix(rows, cols, seed);
    uint8_t *base;
    Q8Panels P = kc_pack(W, rows, cols, off, &base);
    KcAct X;
    kc_act_init(&X, T, cols, off, seed);
    if (pow2) {
        for (size_t i = 0; i < T * nb; i++)
            if (X.d[i] != 0.0f) X.d[i] = ldexpf(1.0f, -7 - (int)(kc_rand(seed) % 12));
        if (T * nb > 2) X.d[T * nb - 1] = ldexpf(1.0f, -140);
        if (nb > 1) X.d[nb / 2] = NAN;
        X.a.pow2 = 1;
    }
    float *Y = kc_out(off, T * ldy), *y = kc_out(off, rows);
    float *bias = kc_in(0, rows), *theta = kc_in(0, rows), *pre = kc_out(off, T * ldy), *act = kc_out(off, T * ldy);
    kc_fill(bias, rows, seed, -0.5f, 0.5f);
    kc_fill(theta, rows, seed, -0.2f, 0.4f);
    // Split the panels in two calls (as threads do); results must not depend on it.
    size_t mid = np / 2;
    K->matmul_q8(Y + off, ldy, &P, &X.a, T, mid, np);
    K->matmul_q8(Y + off, ldy, &P, &X.a, T, 0, mid);
    K->encode_q8(pre + off, act + off, ldy, &P, &X.a, T, 0, np, bias, (T & 1) ? theta : NULL);
    int ok = 1, ok_enc = 1, ok_mv = 1;
    size_t bt = 0, br = 0;
    double exact = 0, tol = 0;
    float want = 0, got = 0;
    for (size_t t = 0; t < T; t++)
        for (size_t r = 0; r < rows; r++) {
            double e, mag;
            float c = kc_q8_canon(W + r * nb, X.a.q + t * nb * 32, X.a.d + t * nb, nb, &e, &mag);
            float g = Y[off + t * ldy + r];
            double tl = kc_q8_tol(nb, mag);
            if (ok && (!kc_same(g, c) || fabs((double)c - e) > tl)) {
                ok = 0;
                bt = t, br = r, exact = e, tol = tl, want = c, got = g;
            }
            float h = c + bias[r], th = (T & 1) ? theta[r] : 0.0f;
            float a = (h > th || h != h) ? h : 0.0f;
            if (!kc_same(pre[off + t * ldy + r], h) || !kc_same(act[off + t * ldy + r], a)) ok_enc = 0;
        }
    // Padding between rows and ldy, and the canaries around, stay untouched.
    for (size_t t = 0; t < T; t++)
        for (size_t r = rows; r < ldy; r++)
            if (!kc_same(Y[off + t * ldy + r], kc_canary) || !kc_same(act[off + t * ldy + r], kc_canary)) ok = ok_enc = 0;
    if (!kc_guards_ok(Y, off, T * ldy) || !kc_guards_ok(act, off, T * ldy) || !kc_guards_ok(pre, off, T * ldy)) ok = 0;
    // matvec_q8 of each row == that row of matmul_q8.
    Q8Act one = X.a;
    for (size_t t = 0; t < T && ok_mv; t++) {
        one.q = X.a.q + t * nb * 32;
        one.d = X.a.d + t * nb;
        one.nsum = X.a.nsum + t * nb;
        one.T = 1;
        for (size_t i = 0; i < rows; i++) y[off + i] = kc_canary;
        K->matvec_q8(y + off, &P, &one, 0, np);
        ok_mv = kc_guards_ok(y, off, rows) && memcmp(y + off, Y + off + t * ldy, rows * sizeof(float)) == 0;
    }
    // matvec_q8x2 over rows (t, t+1) taken as the two digit rows == the sum of those matmul_q8 rows.
    int ok_x2 = 1;
    Q8Act two = X.a;
    two.T = 2;
    two.digits = 2;
    for (size_t t = 0; t + 1 < T && ok_x2; t++) {
        two.q = X.a.q + t * nb * 32;
        two.d = X.a.d + t * nb;
        two.nsum = X.a.nsum + t * nb;
        for (size_t i = 0; i < rows; i++) y[off + i] = kc_canary;
        size_t mid2 = np - np / 3;   // split in two calls, as threads do
        K->matvec_q8x2(y + off, &P, &two, mid2, np);
        K->matvec_q8x2(y + off, &P, &two, 0, mid2);
        ok_x2 = kc_guards_ok(y, off, rows);
        for (size_t r = 0; r < rows && ok_x2; r++)
            ok_x2 = kc_same(y[off + r], Y[off + t * ldy + r] + Y[off + (t + 1) * ldy + r]);
    }
    kc_case(st, ok_x2, K->name, "matvec_q8x2 rows=%zu cols=%zu off=%zu: differs from the sum of two matmul_q8 rows "
            "(or wrote outside y)", rows, cols, off);
    // matmul_q8x2 over rows (2u, 2u+1) as the digit rows of token u == the sum of those matmul_q8
    // rows, in two calls split by panels; the padding between rows and ldy stays untouched.
    if (T >= 2) {
        size_t U = T / 2, mid3 = np / 3;
        Q8Act pairs = X.a;
        pairs.T = 2 * U;
        pairs.digits = 2;
        float *Yx = kc_out(off, U * ldy);
        K->matmul_q8x2(Yx + off, ldy, &P, &pairs, U, mid3, np);
        K->matmul_q8x2(Yx + off, ldy, &P, &pairs, U, 0, mid3);
        int ok_mx2 = kc_guards_ok(Yx, off, U * ldy);
        for (size_t u = 0; u < U; u++)
            for (size_t r = 0; r < ldy && ok_mx2; r++)
                ok_mx2 = r < rows ? kc_same(Yx[off + u * ldy + r], Y[off + 2 * u * ldy + r] + Y[off + (2 * u + 1) * ldy + r])
                                  : kc_same(Yx[off + u * ldy + r], kc_canary);
        kc_case(st, ok_mx2, K->name, "matmul_q8x2 tokens=%zu rows=%zu cols=%zu off=%zu: differs from the sums of "
                "matmul_q8 row pairs (or wrote outside Y)", U, rows, cols, off);
        free(Yx);
    }
    kc_case(st, ok, K->name, "matmul_q8 T=%zu rows=%zu cols=%zu off=%zu: (t=%zu, r=%zu) got=%.9g canonical=%.9g "
            "exact=%.9g tol=%.3g (or wrote outside Y)", T, rows, cols, off, bt, br, got, want, exact, tol);
    kc_case(st, ok_mv, K->name, "matvec_q8 rows=%zu cols=%zu off=%zu: differs from matmul_q8 rows (or wrote outside y)",
            rows, cols, off);
    kc_case(st, ok_enc, K->name, "encode_q8 T=%zu rows=%zu cols=%zu off=%zu: pre/act differ from canonical + bias, threshold",
            T, rows, cols, off);
    free(W); free(base); kc_act_free(&X); free(Y); free(y); free(bias); free(theta); free(pre); free(act);
}

static inline void kc_q8_case(KcStats *st, const SimdKernels *K, size_t T, size_t rows, size_t cols, size_t off,
                              uint64_t *seed)
{
    kc_q8_case_p(st, K, T, rows, cols, off, seed, 0);
}

static inline void kc_check_matmul_q8(KcStats *st, const SimdKernels *K)
{
    // T >= 6 leaves 1 (7, 13), 3 (9) and 5 (11) rows after the full 6-row tiles; their digit
    // pairs (T/2 tokens as 2 rows each) leave 0, 2 and 4 rows; T = 64 below leaves 4.
    static const size_t Ts[] = {1, 2, 5, 6, 7, 9, 11, 13};
    static const size_t rowss[] = {1, 15, 16, 17, 33, 50};
    static const size_t colss[] = {1, 31, 32, 33, 64, 100, 1001};
    uint64_t seed = 22;
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (size_t ri = 0; ri < sizeof rowss / sizeof rowss[0]; ri++)
            for (size_t ci = 0; ci < sizeof colss / sizeof colss[0]; ci++)
                kc_q8_case(st, K, Ts[ti], rowss[ri], colss[ci], (ti + ri + ci) & 1, &seed);
    kc_q8_case(st, K, 64, 96, 768, 1, &seed);   // a prefill-sized tile set
    // Power-of-two activation scales (the 16-bit quantizer's; AVX-512 takes dw * dx by
    // vscalefps or vmulps there, simd_q8_pow2_scalef): every tile shape again with each, the
    // same canonical bits.
    for (int mode = 1; mode <= 2; mode++) {
        kc_case(st, simd_q8_pow2_scalef(mode) == 0 && simd_q8_pow2_scalef_on() == (mode == 1), K->name,
                "simd_q8_pow2_scalef(%d) refused or not in effect", mode);
        for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
            for (size_t ri = 0; ri < sizeof rowss / sizeof rowss[0]; ri += 2)
                for (size_t ci = 0; ci < sizeof colss / sizeof colss[0]; ci += 2)
                    kc_q8_case_p(st, K, Ts[ti], rowss[ri], colss[ci], (ti + ri + ci) & 1, &seed, 1);
        kc_q8_case_p(st, K, 64, 96, 768, 0, &seed, 1);
    }
    kc_case(st, simd_q8_pow2_scalef(3) == -1 && simd_q8_pow2_scalef(0) == 0, K->name,
            "simd_q8_pow2_scalef: mode 3 accepted or 0 refused");
    // The amx table's 16-row tiles: exactly one (16; as digit pairs, 8 tokens), one or two with
    // 1, 15 or 14 rows left for the VNNI tiles (17, 31, 47; pairs 16 + 14, 32 + 14), and more
    // blocks than the pipeline holds (1, 2, 3, 4, 5 and 32 blocks: 20, 33, 65, 100, 150, 1001
    // columns; the loop starts at 4), and no columns at all (amx sends those rows to VNNI).
    static const size_t Tamx[] = {16, 17, 31, 34, 47};
    static const size_t ramx[] = {17, 33};
    static const size_t camx[] = {0, 20, 33, 65, 100, 150, 1001};
    for (size_t ti = 0; ti < sizeof Tamx / sizeof Tamx[0]; ti++)
        for (size_t ri = 0; ri < 2; ri++)
            for (size_t ci = 0; ci < sizeof camx / sizeof camx[0]; ci++)
                kc_q8_case(st, K, Tamx[ti], ramx[ri], camx[ci], (ti + ri + ci) & 1, &seed);
    // Enough panels for the decode matvec's side-by-side streams (AVX-512: 4 runs of 2-3 panels
    // with 0, 1, 2 and 3 panels left over; 8 runs of 1-2 panels with 0, 1, 5 and 7 left over),
    // in one call and split in two.  Each count forced, with each product width
    // (simd_q8_matvec_streams, simd_q8_matvec_width; small calls otherwise read with one count:
    // 2 runs with 256-bit products, 8 with 512-bit ones from 16 panels on, else 2).
    static const size_t mvrows[] = {128, 200, 226, 250, 270};
    static const int counts[] = {1, 2, 4, 8}, widths[] = {256, 512};
    for (size_t w = 0; w < 2; w++)
        for (size_t c = 0; c < 4; c++) {
            simd_q8_matvec_width(widths[w]);
            simd_q8_matvec_streams(counts[c]);
            for (size_t i = 0; i < sizeof mvrows / sizeof mvrows[0]; i++)
                kc_q8_case(st, K, 3, mvrows[i], 65, i & 1, &seed);
        }
    simd_q8_matvec_streams(0);
    simd_q8_matvec_width(0);
    // Real activations, 8-bit and 16-bit (two digit rows): within the quantization bound of the
    // double-precision product of the int8 weights, sum_b (d_b / 2) sum_k |w_k|, plus float
    // rounding; decode (matvec_q8x2) == the batch (matmul_q8 + q8_combine_digits) bit for bit;
    // and 16-bit activations are >= 50x closer than 8-bit ones on these rows.
    {
        static const size_t shapes[][3] = {{5, 33, 100}, {3, 17, 1001}, {1, 40, 64}};
        for (size_t si = 0; si < 3; si++) {
            size_t T = shapes[si][0], rows = shapes[si][1], cols = shapes[si][2], nb = q8_nblocks(cols);
            BlockQ8 *W = kc_q8_matrix(rows, cols, &seed);
            uint8_t *base;
            Q8Panels P = kc_pack(W, rows, cols, 1, &base);
            float *X = kc_in(0, T * cols), *Y2 = kc_out(0, 2 * T * rows), *Y = kc_out(0, T * rows), *y = kc_out(0, rows);
            kc_fill(X, T * cols, &seed, -2, 2);
            Q8ActBuf buf = {0};
            Q8Act A;
            double err[2] = {0, 0};
            int ok = 1;
            for (int dg = 1; dg <= 2; dg++) {
                ok = ok && q8_act_quantize_digits(&A, &buf, X, T, cols, dg) == 0;
                if (dg == 1) K->matmul_q8(Y, rows, &P, &A, T, 0, P.np);
                else {   // the batch: matmul_q8 of the 2T rows + q8_combine_digits == matmul_q8x2
                    K->matmul_q8(Y2, rows, &P, &A, 2 * T, 0, P.np);
                    q8_combine_digits(Y, rows, Y2, rows, T, 0, rows);
                    K->matmul_q8x2(Y2, rows, &P, &A, T, 0, P.np);
                    ok = ok && !memcmp(Y, Y2, T * rows * sizeof(float));
                }
                for (size_t t = 0; t < T; t++) {
                    if (dg == 2) {   // decode of token t alone
                        Q8Act one = A;
                        one.q = A.q + 2 * t * nb * 32, one.d = A.d + 2 * t * nb, one.nsum = A.nsum + 2 * t * nb, one.T = 2;
                        K->matvec_q8x2(y, &P, &one, 0, P.np);
                        ok = ok && !memcmp(y, Y + t * rows, rows * sizeof(float));
                    }
                    for (size_t r = 0; r < rows; r++) {
                        double e = 0, mag = 0, bound = 0;
                        for (size_t b = 0; b < nb; b++) {
                            float amax = 0;
                            double wabs = 0;
                            for (size_t k = 0; k < 32 && b * 32 + k < cols; k++) {
                                double w = (double)W[r * nb + b].d * W[r * nb + b].qs[k];
                                float xv = X[t * cols + b * 32 + k];
                                e += w * xv, mag += fabs(w * xv), wabs += fabs(w);
                                amax = fabsf(xv) > amax ? fabsf(xv) : amax;
                            }
                            // per value: half a step (8-bit: amax / 127), or 16-bit's whole step (a moved
                            // value is off by up to s; q8.h)
                            bound += (dg == 1 ? 0.5 * amax / 127.0 : (double)kc_step16(amax)) * wabs * 1.001;
                        }
                        double d = fabs((double)Y[t * rows + r] - e);
                        err[dg - 1] += d;
                        ok = ok && d <= bound + kc_q8_tol(2 * nb, mag + bound) + 1e-6 * mag;
                    }
                }
            }
            ok = ok && err[1] * 50 < err[0];
            kc_case(st, ok, K->name, "q8 products of real activations T=%zu rows=%zu cols=%zu: outside the quantization "
                    "bound, decode != batch, or 16-bit not >= 50x closer (sum |err| 8-bit %.3g, 16-bit %.3g)", T, rows,
                    cols, err[0], err[1]);
            q8_actbuf_free(&buf);
            free(W); free(base); free(X); free(Y2); free(Y); free(y);
        }
    }
    // NaN in an activation block's scale (a NaN input) reaches exactly the outputs reading it.
    {
        size_t rows = 20, cols = 70, nb = q8_nblocks(cols);
        BlockQ8 *W = kc_q8_matrix(rows, cols, &seed);
        for (size_t r = 0; r < rows; r++) W[r * nb + 1].d = 0.01f;   // no zero block in column block 1
        uint8_t *base;
        Q8Panels P = kc_pack(W, rows, cols, 0, &base);
        KcAct X;
        kc_act_init(&X, 2, cols, 0, &seed);
        X.d[1] = NAN;   // token 0, block 1
        float *Y = kc_out(0, 2 * rows);
        K->matmul_q8(Y, rows, &P, &X.a, 2, 0, q8_npanels(rows));
        int ok = 1;
        for (size_t r = 0; r < rows; r++) {
            double e, m;
            ok = ok && isnan(Y[r]) && kc_same(Y[rows + r], kc_q8_canon(W + r * nb, X.a.q + nb * 32, X.a.d + nb, nb, &e, &m));
        }
        kc_case(st, ok, K->name, "matmul_q8: a NaN activation scale must give NaN in token 0 only");
        free(W); free(base); kc_act_free(&X); free(Y);
    }
}

// The AVX-512 decode matvec reads 1, 2 or 4 runs of panels side by side with 256-bit products,
// 2, 4 or 8 with 512-bit ones, chosen per thread by timing calls of 8 MB and more
// (x86_avx512.c): a matrix above that size, multiplied often enough to time every count twice
// and to explore twice more, and with each count and each width forced, gives matmul_q8's rows
// bit for bit (matvec_q8 and matvec_q8x2; every table, the others have one count and width).
// Checks that simd_q8_matvec_streams and simd_q8_matvec_width refuse other values and that the
// default width is one of the two.
static inline void kc_check_matvec_q8_streams(KcStats *st, const SimdKernels *K)
{
    const size_t rows = 4100, cols = 2080, np = q8_npanels(rows);   // 257 panels, 9.9 MB packed
    uint64_t seed = 91;
    BlockQ8 *W = kc_q8_matrix(rows, cols, &seed);
    uint8_t *base;
    Q8Panels P = kc_pack(W, rows, cols, 1, &base);
    KcAct X;
    kc_act_init(&X, 2, cols, 1, &seed);
    float *ref = kc_out(0, 2 * rows), *y = kc_out(1, rows);
    K->matmul_q8(ref, rows, &P, &X.a, 2, 0, np);
    Q8Act one = X.a, two = X.a;
    one.T = 1;
    two.digits = 2;
    static const int forced[] = {0, 1, 2, 4, 8}, widths[] = {0, 256, 512};
    for (size_t wi = 0; wi < 3; wi++)
        for (size_t f = 0; f < 5; f++) {
            kc_case(st, simd_q8_matvec_width(widths[wi]) == 0 && simd_q8_matvec_width_forced() == widths[wi],
                    K->name, "simd_q8_matvec_width(%d) refused", widths[wi]);
            kc_case(st, simd_q8_matvec_streams(forced[f]) == 0 && simd_q8_matvec_streams_forced() == forced[f],
                    K->name, "simd_q8_matvec_streams(%d) refused", forced[f]);
            int ok = 1, ok2 = 1;
            for (int call = 0; call < (forced[f] ? 1 : 22); call++) {   // 6 warm-up timings + 2 explorations
                for (size_t i = 0; i < rows; i++) y[1 + i] = kc_canary;
                K->matvec_q8(y + 1, &P, &one, 0, np);
                ok = ok && kc_guards_ok(y, 1, rows) && memcmp(y + 1, ref, rows * sizeof(float)) == 0;
                K->matvec_q8x2(y + 1, &P, &two, 0, np);
                ok2 = ok2 && kc_guards_ok(y, 1, rows);
                for (size_t r = 0; r < rows && ok2; r++) ok2 = kc_same(y[1 + r], ref[r] + ref[rows + r]);
            }
            kc_case(st, ok, K->name, "matvec_q8 %zux%zu, width %d, streams %d: differs from matmul_q8 (or wrote outside y)",
                    rows, cols, widths[wi], forced[f]);
            kc_case(st, ok2, K->name,
                    "matvec_q8x2 %zux%zu, width %d, streams %d: differs from the sum of two matmul_q8 rows (or wrote outside y)",
                    rows, cols, widths[wi], forced[f]);
        }
    kc_case(st, simd_q8_matvec_streams(3) == -1 && simd_q8_matvec_streams(-1) == -1 && simd_q8_matvec_streams(16) == -1 &&
                    simd_q8_matvec_streams_forced() == 8,
            K->name, "simd_q8_matvec_streams accepted a count other than 0, 1, 2, 4, 8");
    kc_case(st, simd_q8_matvec_width(128) == -1 && simd_q8_matvec_width(1024) == -1 && simd_q8_matvec_width(-1) == -1 &&
                    simd_q8_matvec_width_forced() == 512,
            K->name, "simd_q8_matvec_width accepted a width other than 0, 256, 512");
    int dw = simd_q8_matvec_width_default();
    kc_case(st, dw == 256 || dw == 512, K->name, "simd_q8_matvec_width_default() = %d, not 256 or 512", dw);
    simd_q8_matvec_streams(0);
    simd_q8_matvec_width(0);
    free(W); free(base); kc_act_free(&X); free(ref); free(y);
}

// ---- matmul_q8t: y = W^T g --------------------------------------------------------------------
static inline void kc_q8t_case(KcStats *st, const SimdKernels *K, size_t T, size_t rows, size_t cols, size_t off,
                               uint64_t *seed)
{
    size_t nb = q8_nblocks(cols), ng = q8_nblocks(rows), np = q8_npanels(cols), ldy = cols + 2;
    BlockQ8 *W = kc_q8_matrix(rows, cols, seed);
    uint8_t *base = malloc(q8_panels_t_bytes(rows, cols) + off + 1);
    float *sc = malloc(nb * ng * 32 * sizeof(float));
    q8_pack_panels_t(base + off, sc, W, rows, cols, 0, np);
    Q8PanelsT Pt = {base + off, sc, rows, cols, nb, ng, np};
    float *G = kc_in(0, T * rows);
    kc_fill(G, T * rows, seed, -1, 1);
    Q8ActBuf buf = {0};
    Q8Act V;
    q8_act_quantize_t(&V, &buf, G, T, &Pt);
    float *Y = kc_out(off, T * ldy);
    size_t mid = np / 2 + (np > 2);   // an odd split point when possible
    if (mid > np) mid = np;
    K->matmul_q8t(Y + off, ldy, &Pt, &V, T, mid, np);
    K->matmul_q8t(Y + off, ldy, &Pt, &V, T, 0, mid);
    int ok = kc_guards_ok(Y, off, T * ldy), ok_q = 1;
    size_t bt = 0, bc = 0;
    float got = 0, want = 0;
    double exact = 0, tol = 0, worst = 0;
    for (size_t t = 0; t < T; t++) {
        for (size_t c = cols; c < ldy; c++) ok = ok && kc_same(Y[off + t * ldy + c], kc_canary);
        for (size_t c = 0; c < cols; c++) {
            size_t b = c / 32, u = t * nb + b;
            const int8_t *vq = V.q + u * ng * 32;
            const float *vd = V.d + u * ng;
            float acc = 0.0f;
            double e = 0, mag = 0, wg = 0, wgabs = 0, qb = 0;
            for (size_t g = 0; g < ng; g++) {
                int64_t s = 0, sw = 0;
                for (size_t k = 0; k < 32 && g * 32 + k < rows; k++) {
                    s += (int64_t)W[(g * 32 + k) * nb + b].qs[c % 32] * vq[g * 32 + k];
                    sw += abs(W[(g * 32 + k) * nb + b].qs[c % 32]);
                }
                qb += (double)vd[g] / 2 * (double)sw;   // v rounded to the nearest step vd[g]
                acc = fmaf((float)s, vd[g], acc);
                e += (double)s * vd[g];
                mag += fabs((double)s * vd[g]);
            }
            // The true W^T g of the int8 weights (double): off by the quantization of v only.
            for (size_t r = 0; r < rows; r++) {
                double w = (double)W[r * nb + b].d * W[r * nb + b].qs[c % 32];
                wg += w * G[t * rows + r];
                wgabs += fabs(w * G[t * rows + r]);
            }
            double tl = kc_q8_tol(ng, mag);
            float g = Y[off + t * ldy + c];
            if (ok && (!kc_same(g, acc) || fabs((double)acc - e) > tl)) {
                ok = 0;
                bt = t, bc = c, got = g, want = acc, exact = e, tol = tl;
            }
            // v quantized per 32 rows: each q_W v term off by <= |q_W| vd / 2 (the rounding to
            // the group's step), plus the fp32 rounding of v = d_W g and of the sums.
            double qerr = fabs((double)acc - wg);
            if (qerr > worst) worst = qerr;
            if (qerr > qb * (1 + 1e-5) + 4 * FLT_EPSILON * wgabs + tl + 1e-30) ok_q = 0;
        }
    }
    kc_case(st, ok, K->name, "matmul_q8t T=%zu rows=%zu cols=%zu off=%zu: (t=%zu, c=%zu) got=%.9g canonical=%.9g "
            "exact=%.9g tol=%.3g (or wrote outside Y)", T, rows, cols, off, bt, bc, got, want, exact, tol);
    kc_case(st, ok_q, K->name, "matmul_q8t T=%zu rows=%zu cols=%zu: far from W^T g in double (worst %.3g)", T, rows,
            cols, worst);
    free(W); free(base); free(sc); free(G); q8_actbuf_free(&buf); free(Y);
}

static inline void kc_check_matmul_q8t(KcStats *st, const SimdKernels *K)
{
    // 1, 3, 4, 5 rows after the 6-row tiles; 16, 17, 33: one or two 16-row AMX tiles (+ 0, 1 rows)
    static const size_t Ts[] = {1, 2, 7, 9, 10, 11, 16, 17, 33};
    static const size_t rowss[] = {1, 31, 32, 33, 100};
    static const size_t colss[] = {1, 15, 16, 17, 32, 47, 64, 100};
    uint64_t seed = 23;
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (size_t ri = 0; ri < sizeof rowss / sizeof rowss[0]; ri++)
            for (size_t ci = 0; ci < sizeof colss / sizeof colss[0]; ci++)
                kc_q8t_case(st, K, Ts[ti], rowss[ri], colss[ci], (ti + ri + ci) & 1, &seed);
    kc_q8t_case(st, K, 8, 256, 200, 1, &seed);
}

// ---- decode_rows_q8: sparse decoder reads -------------------------------------------------------
static inline void kc_check_decode_q8(KcStats *st, const SimdKernels *K)
{
    static const size_t Ds[] = {1, 15, 16, 17, 31, 32, 33, 64, 100, 768};
    static const size_t ns[] = {0, 1, 3, 4, 5, 9};
    uint64_t seed = 24;
    for (size_t di = 0; di < sizeof Ds / sizeof Ds[0]; di++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (size_t off = 0; off < 2; off++) {
                size_t D = Ds[di], n = ns[ni], F = 40, nbD = q8_nblocks(D), stride = 2 * nbD + 1;
                // (F, 2, D) decoder with one spare block per row: read output slot 1 via base + nbD.
                BlockQ8 *Wd = kc_q8_matrix(F, stride * 32, &seed);
                for (size_t f = 0; f < F; f++)
                    for (size_t b = 0; b < stride; b++) {
                        size_t local = b >= nbD && b < 2 * nbD ? b - nbD : b;
                        if (local == nbD - 1 && D % 32)   // tails past D are zero, as quantizers write them
                            memset(Wd[f * stride + b].qs + D % 32, 0, 32 - D % 32);
                    }
                int idx[9];
                float val[9];
                for (size_t i = 0; i < n; i++) {
                    idx[i] = (int)(kc_rand(&seed) % F);
                    val[i] = kc_uniform(&seed, -3, 3);
                }
                if (n > 2) idx[2] = idx[0];   // repeated feature
                float *y = kc_out(off, D), *ref = malloc((D + 1) * sizeof(float));
                kc_fill(y + off, D, &seed, -1, 1);
                memcpy(ref, y + off, D * sizeof(float));
                const BlockQ8 *base = Wd + nbD;
                for (size_t i = 0; i < n; i++)
                    for (size_t d = 0; d < D; d++) {
                        const BlockQ8 *blk = base + (size_t)idx[i] * stride + d / 32;
                        float s = val[i] * blk->d;
                        ref[d] = ref[d] + s * (float)blk->qs[d % 32];
                    }
                K->decode_rows_q8(y + off, base, stride, idx, val, n, D);
                int ok = kc_guards_ok(y, off, D) && memcmp(y + off, ref, D * sizeof(float)) == 0;
                kc_case(st, ok, K->name, "decode_rows_q8 D=%zu n=%zu off=%zu: not the reference bits (or wrote outside y)",
                        D, n, off);
                free(Wd);
                free(y);
                free(ref);
            }
}

// ---- q8_act_row: activation quantization ---------------------------------------------------
// Each table against the scalar table byte for byte (rows of odd lengths, unaligned inputs,
// the lo row at a gap, zero / tiny / denormal / huge / NaN / Inf / digit-boundary blocks),
// nothing written outside the blocks, and digits 1 against the BlockQ8 rule
// (q8_quantize_block_amax, an independent scalar path) block by block.
static inline void kc_check_q8_act_row(KcStats *st, const SimdKernels *K)
{
    const SimdKernels *S = simd_kernels_for(SIMD_SCALAR);
    static const size_t Cs[] = {1, 5, 16, 17, 31, 32, 33, 47, 64, 100, 768};
    uint64_t seed = 25;
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++)
        for (size_t off = 0; off < 4; off++)
            for (int digits = 1; digits <= 2; digits++)
                for (int rep = 0; rep < 6; rep++) {
                    size_t cols = Cs[ci], nb = q8_nblocks(cols), lo = nb + 3, NB = lo + nb + 1;
                    float *xs = kc_in(off, cols), *x = xs + off;
                    float scale = rep == 1 ? 1e-36f : rep == 2 ? 1e30f : rep == 3 ? 1e-41f : 2.0f;
                    kc_fill(x, cols, &seed, -scale, scale);
                    if (rep == 4) {   // special blocks: zero, NaN, Inf, a digit boundary
                        for (size_t k = 0; k < cols && k < 32; k++) x[k] = 0.0f;
                        if (cols > 33) x[33] = NAN;
                        if (cols > 67)   // s = 2^-14: v = 128 (moves down), -384.25 and 640.25 (move away)
                            x[64] = 1.0f, x[65] = 128.0f / 16384.0f, x[66] = -384.25f / 16384.0f, x[67] = 640.25f / 16384.0f;
                        if (cols > 96) x[96] = -INFINITY;
                    }
                    if (rep == 5 && cols > 3) x[cols / 2] = -1e-30f, x[cols - 1] = 0.0f;
                    int8_t *q[2];
                    float *d[2];
                    int32_t *ns[2];
                    for (int w = 0; w < 2; w++) {
                        q[w] = malloc(NB * 32), d[w] = malloc(NB * sizeof(float)), ns[w] = malloc(NB * sizeof(int32_t));
                        memset(q[w], 0x55, NB * 32), memset(d[w], 0x55, NB * sizeof(float)), memset(ns[w], 0x55, NB * 4);
                        (w ? K : S)->q8_act_row(q[w], d[w], ns[w], lo, x, cols, digits);
                    }
                    int same = !memcmp(q[0], q[1], NB * 32) && !memcmp(d[0], d[1], NB * sizeof(float)) &&
                               !memcmp(ns[0], ns[1], NB * 4);
                    int untouched = 1;   // the gap between the rows, and everything past them
                    for (size_t b = 0; b < NB; b++) {
                        int used = b < nb || (digits == 2 && b >= lo && b < lo + nb);
                        if (used) continue;
                        for (int k = 0; k < 32; k++) untouched = untouched && (uint8_t)q[1][b * 32 + k] == 0x55;
                        untouched = untouched && ns[1][b] == 0x55555555 && kc_bits(d[1][b]) == 0x55555555u;
                    }
                    int rule = 1;
                    for (size_t b = 0; digits == 1 && b < nb; b++) {
                        BlockQ8 ref;
                        size_t n = cols - b * 32 < 32 ? cols - b * 32 : 32;
                        q8_quantize_block_amax(&ref, x + b * 32, n);
                        int32_t sum = 0;
                        for (int k = 0; k < 32; k++) sum += ref.qs[k];
                        rule = rule && !memcmp(ref.qs, q[1] + b * 32, 32) && kc_bits(ref.d) == kc_bits(d[1][b]) &&
                               ns[1][b] == -128 * sum;
                    }
                    kc_case(st, same && untouched && rule, K->name,
                            "q8_act_row cols=%zu off=%zu digits=%d rep=%d: bytes differ from scalar (%d), wrote outside "
                            "the blocks (%d) or broke the BlockQ8 rule (%d)", cols, off, digits, rep, same, untouched, rule);
                    for (int w = 0; w < 2; w++) free(q[w]), free(d[w]), free(ns[w]);
                    free(xs);
                }
}

// Tables to test: those the host supports.  When CTRACE_ISA is set (e.g. sanitizer runs that
// must avoid AVX-512), only scalar and that table.
static inline int kc_isa_enabled(SimdIsa isa)
{
    if (!simd_isa_supported(isa)) return 0;
    const char *env = getenv("CTRACE_ISA");
    if (!env || !*env || isa == SIMD_SCALAR) return 1;
    return strcmp(env, simd_isa_name(isa)) == 0;
}

// Every check on one table (plus the fidelity check on the scalar table).
static inline void kc_check_all(KcStats *st, const SimdKernels *K)
{
    const SimdKernels *S = simd_kernels_for(SIMD_SCALAR);
    kc_check_dot(st, K);
    kc_check_matvec(st, K);
    kc_check_matmul(st, K);
    kc_check_rmsnorm(st, K);
    kc_check_softmax(st, K);
    kc_check_swiglu(st, K);
    kc_check_rope(st, K, S);
    kc_check_axpy_scale(st, K, S);
    kc_check_dots(st, K);
    kc_check_axpys(st, K, S);
    kc_check_axpyv(st, K, S);
    kc_check_matmul_q8(st, K);
    kc_check_matmul_q8t(st, K);
    kc_check_decode_q8(st, K);
    kc_check_q8_act_row(st, K);
    if (K == S) {
        kc_check_scalar_fidelity(st, K);
        kc_check_q8_format(st, K);
    }
}
