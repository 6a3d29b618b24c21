// bench_kernels.c — the machine's limits, then every kernel table this CPU runs: verified
// against a double-precision reference first, then timed at the sizes a ~100M model uses.
// Prints markdown tables (paste them into the README as they are).
//
//   build/bench/bench_kernels [--quick] [--no-probes] [--limits FILE] [--list-isas]
//
//   --quick      short timings and a 256 MiB DRAM buffer (smoke test; figures are rough)
//   --no-probes  skip the machine-limit probes (ratios are then left out)
//   --limits F   also write "dram_gbs X", "fma_gflops Y", "vnni_gops Z" lines to F, so
//                bench/run.sh can pass the DRAM figure to `ctrace bench-forward --dram-gbs`
//   --list-isas  print the ISA tables this CPU/build runs, one per line, and exit
//
// Exit status: 0, or 1 when a kernel disagrees with the reference (nothing is timed then).
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/probes.h"
#include "engine/common.h"
#include "engine/mem.h"
#include "engine/threads.h"
#include "simd/simd.h"

// ---- data ---------------------------------------------------------------------------------
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float rnd_uniform(void) {   // splitmix64 -> U(-1, 1)
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}
static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * rnd_uniform();
}

// ---- verification: each entry against a double-accumulated reference (simd.h tolerances) --
static int g_fail;
#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "bench_kernels: verification FAILED: " __VA_ARGS__);                \
            fputc('\n', stderr);                                                                \
            g_fail++;                                                                           \
        }                                                                                       \
    } while (0)

// |got - ref| <= 4 eps sqrt(n) sum|a_i b_i| (+ tiny slack), the reduction contract.
static int dot_ok(float got, const float *a, const float *b, size_t n) {
    double ref = 0, mag = 0;
    for (size_t i = 0; i < n; i++) {
        ref += (double)a[i] * (double)b[i];
        mag += fabs((double)a[i] * (double)b[i]);
    }
    return fabs((double)got - ref) <= 4.0 * FLT_EPSILON * sqrt((double)n + 1) * mag + 1e-30;
}

static void verify_table(const SimdKernels *K) {
    const char *isa = K->name;
    enum { N = 4099 + 1, R = 37, C = 1001, T = 5 };
    float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * T * C);
    float *Y = malloc(sizeof(float) * T * R), *y = malloc(sizeof(float) * N);
    fill(a, N, 1.0f);
    fill(b, N, 1.0f);
    fill(W, (size_t)R * C, 1.0f);
    fill(X, (size_t)T * C, 1.0f);

    // dot: edge lengths around vector widths, odd pointers (a + 1).
    const size_t ns[] = {0, 1, 7, 15, 16, 17, 255, 1000, 4099};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        float d = K->dot_f32(a + 1, b, ns[i]);
        CHECK(dot_ok(d, a + 1, b, ns[i]), "%s dot_f32 n=%zu: got %.9g", isa, ns[i], d);
    }
    // matvec and matmul: every output bit-identical to dot of the same table (the contract
    // that makes thread count and batching invisible) and within tolerance of double.
    K->matvec_f32(y, W, X, R, C);
    for (size_t r = 0; r < R; r++) {
        float d = K->dot_f32(W + r * C, X, C);
        CHECK(memcmp(&y[r], &d, sizeof d) == 0, "%s matvec_f32 row %zu: %.9g != dot %.9g", isa, r, y[r], d);
        CHECK(dot_ok(y[r], W + r * C, X, C), "%s matvec_f32 row %zu vs double", isa, r);
    }
    K->matmul_f32(Y, W, X, T, R, C);
    for (size_t t = 0; t < T; t++)
        for (size_t r = 0; r < R; r++) {
            float d = K->dot_f32(W + r * C, X + t * C, C);
            CHECK(memcmp(&Y[t * R + r], &d, sizeof d) == 0, "%s matmul_f32 (%zu,%zu): %.9g != dot %.9g",
                  isa, t, r, Y[t * R + r], d);
        }
    // rmsnorm: out = w * (x * inv), inv = 1/sqrt(mean(x^2) + eps).
    {
        const size_t n = 777;
        const float eps = 1e-5f;
        double ss = 0;
        for (size_t i = 0; i < n; i++) ss += (double)a[i] * a[i];
        double inv = 1.0 / sqrt(ss / (double)n + eps);
        float got_inv = K->rmsnorm_f32(y, a, b, n, eps);
        double tol = (4.0 * sqrt((double)n) + 8.0) * FLT_EPSILON;
        CHECK(fabs(got_inv - inv) <= tol * inv, "%s rmsnorm_f32 inv: got %.9g want %.9g", isa, got_inv, inv);
        for (size_t i = 0; i < n; i++) {
            double ref = (double)b[i] * ((double)a[i] * inv);
            CHECK(fabs(y[i] - ref) <= tol * fabs(ref) + 1e-30, "%s rmsnorm_f32 [%zu]: got %.9g want %.9g",
                  isa, i, y[i], ref);
        }
    }
    // softmax over logits-like values; compare to double and check the sum.
    {
        const size_t n = 1001;
        for (size_t i = 0; i < n; i++) y[i] = 8.0f * a[i];
        double mx = -INFINITY, sum = 0;
        for (size_t i = 0; i < n; i++) mx = y[i] > mx ? y[i] : mx;
        for (size_t i = 0; i < n; i++) sum += exp((double)y[i] - mx);
        double *ref = malloc(sizeof(double) * n);
        for (size_t i = 0; i < n; i++) ref[i] = exp((double)y[i] - mx) / sum;
        K->softmax_f32(y, n);
        double got_sum = 0;
        for (size_t i = 0; i < n; i++) {
            got_sum += y[i];
            CHECK(fabs(y[i] - ref[i]) <= 1e-5 * ref[i] + 1e-12, "%s softmax_f32 [%zu]: got %.9g want %.9g",
                  isa, i, y[i], ref[i]);
        }
        CHECK(fabs(got_sum - 1.0) <= 1e-5, "%s softmax_f32 sum: %.9g", isa, got_sum);
        free(ref);
    }
    free(a); free(b); free(W); free(X); free(Y); free(y);
}

// ---- timing ---------------------------------------------------------------------------------
typedef struct Bench {
    const SimdKernels *K;
    ThreadPool *pool;   // NULL: one thread (the caller)
    int nthreads;
    const float *W, *x, *w;
    float *y, *X, *Y;
    size_t n, rows, cols, T;
    const float *Wc[4];  // copies of the big matrix, cycled so no call finds W in the LLC
    int ncopy, next;
    float sink;
} Bench;

static void task_matvec(void *ctx, int i, int k) {   // rows [r0, r1) of y = W x
    Bench *b = ctx;
    size_t r0 = pool_split(b->rows, i, k), r1 = pool_split(b->rows, i + 1, k);
    b->K->matvec_f32(b->y + r0, b->W + r0 * b->cols, b->x, r1 - r0, b->cols);
}
static void task_matmul(void *ctx, int i, int k) {   // tokens [t0, t1) of Y = X W^T
    Bench *b = ctx;
    size_t t0 = pool_split(b->T, i, k), t1 = pool_split(b->T, i + 1, k);
    b->K->matmul_f32(b->Y + t0 * b->rows, b->W, b->X + t0 * b->cols, t1 - t0, b->rows, b->cols);
}
static void run_dot(Bench *b) { b->sink += b->K->dot_f32(b->W, b->x, b->n); }
static void run_matvec(Bench *b) {
    if (b->ncopy > 1) {
        b->W = b->Wc[b->next];
        b->next = (b->next + 1) % b->ncopy;
    }
    pool_run(b->pool, task_matvec, b, b->nthreads);
}
static void run_matmul(Bench *b) { pool_run(b->pool, task_matmul, b, b->nthreads); }
// Attention over one head: 1024 keys of Dh = 64 in rows of D floats (a KV-cache layer, in cache).
enum { ATT_KEYS = 1024, ATT_DH = 64 };
static void run_dots(Bench *b) { b->K->dots_f32(b->y, 0, b->x, 0, 1, b->W, b->cols, ATT_KEYS, ATT_DH); }
// 8 queries at once (a prefill group): Y (8, 1024), the queries 768 floats apart (their rows).
static void run_dots8(Bench *b) { b->K->dots_f32(b->y, ATT_KEYS, b->X, b->cols, 8, b->W, b->cols, ATT_KEYS, ATT_DH); }
static void run_dots8_base(Bench *b) {
    for (size_t q = 0; q < 8; q++)
        for (size_t t = 0; t < ATT_KEYS; t++)
            b->y[q * ATT_KEYS + t] = b->K->dot_f32(b->X + q * b->cols, b->W + t * b->cols, ATT_DH);
}
static void run_dots_base(Bench *b) {   // the same scores, one dot_f32 call per key
    for (size_t t = 0; t < ATT_KEYS; t++) b->y[t] = b->K->dot_f32(b->x, b->W + t * b->cols, ATT_DH);
}
static void run_axpys(Bench *b) { b->K->axpys_f32(b->Y, 0, b->x, 0, 1, b->W, b->cols, ATT_KEYS, ATT_DH); }
// 8 queries at once: Y (8, 64) 768 floats apart, their weights (8, 1024).
static void run_axpys8(Bench *b) { b->K->axpys_f32(b->Y, b->cols, b->x, ATT_KEYS, 8, b->W, b->cols, ATT_KEYS, ATT_DH); }
static void run_axpys8_base(Bench *b) {
    for (size_t q = 0; q < 8; q++)
        for (size_t t = 0; t < ATT_KEYS; t++)
            b->K->axpy_f32(b->Y + q * b->cols, b->x[q * ATT_KEYS + t], b->W + t * b->cols, ATT_DH);
}
static void run_axpys_base(Bench *b) {   // the same weighted sum, one axpy_f32 call per key
    for (size_t t = 0; t < ATT_KEYS; t++) b->K->axpy_f32(b->Y, b->x[t], b->W + t * b->cols, ATT_DH);
}
// The attribution sweep's pattern transpose on stories260K's shapes: 64 gradient rows of D = 64
// (8 heads of 8), each row's GO rows of 16 later positions p added into its rows of 8
// positions t with their per-head weights (C: (p, t) rows of weights repeated over each
// head's dims).
enum { MIX_ROWS = 64, MIX_T = 8, MIX_P = 16, MIX_D = 64, MIX_DH = 8 };
static void run_axpyv(Bench *b) {
    float *yp[MIX_T];
    const float *xp[MIX_P];
    for (size_t r = 0; r < MIX_ROWS; r++) {
        for (size_t t = 0; t < MIX_T; t++) yp[t] = b->Y + (t * MIX_ROWS + r) * MIX_D;
        for (size_t p = 0; p < MIX_P; p++) xp[p] = b->W + (p * MIX_ROWS + r) * MIX_D;
        b->K->axpyv_f32(yp, MIX_T, b->x, MIX_D, MIX_T * MIX_D, xp, MIX_P, MIX_D);
    }
}
static void run_axpyv_base(Bench *b) {   // one axpy_f32 call per (row, p, t, head)
    for (size_t r = 0; r < MIX_ROWS; r++)
        for (size_t p = 0; p < MIX_P; p++)
            for (size_t t = 0; t < MIX_T; t++)
                for (size_t h = 0; h < MIX_D / MIX_DH; h++)
                    b->K->axpy_f32(b->Y + (t * MIX_ROWS + r) * MIX_D + h * MIX_DH, b->x[(p * MIX_T + t) * MIX_D + h * MIX_DH],
                                   b->W + (p * MIX_ROWS + r) * MIX_D + h * MIX_DH, MIX_DH);
}
static void run_rmsnorm(Bench *b) { b->sink += b->K->rmsnorm_f32(b->y, b->x, b->w, b->n, 1e-5f); }
static void run_softmax(Bench *b) {
    memcpy(b->y, b->x, b->n * sizeof(float));   // fresh logits each call (counted in the time)
    b->K->softmax_f32(b->y, b->n);
}

static double g_min_s = 0.05;   // one timed batch lasts at least this long
static int g_batches = 5;

// Seconds per call: one warm-up call sizes the batch, then the best of g_batches batches.
static double time_call(void (*fn)(Bench *), Bench *b) {
    double t0 = ct_now();
    fn(b);
    double one = ct_now() - t0;
    long reps = one > 0 ? (long)(g_min_s / one) + 1 : 1000;
    double best = INFINITY;
    for (int k = 0; k < g_batches; k++) {
        t0 = ct_now();
        for (long r = 0; r < reps; r++) fn(b);
        double dt = (ct_now() - t0) / (double)reps;
        if (dt < best) best = dt;
    }
    return best;
}

// ---- output ---------------------------------------------------------------------------------
static char g_cpu[128];

static void row(const char *isa, int threads, const char *kernel, const char *sizes,
                const char *figure, const char *ratio) {
    printf("| %s | %s | %d | %s | %s | %s | %s |\n", g_cpu, isa, threads, kernel, sizes, figure, ratio);
}

typedef struct Limits {
    double dram_gbs;       // 1 core streaming read
    double fma[SIMD_NISA]; // fp32 FMA peak per core for each ISA's vector width (0: unknown)
    double fma_best;       // the machine's best
    double vnni_gops;
} Limits;

static void run_probes(Limits *L, int quick) {
    memset(L, 0, sizeof *L);
    int runs = quick ? 2 : 5;
    double min_s = quick ? 0.01 : 0.05;
    char sizes[96], fig[64], ratio[64];
    printf("### Machine limits (one core)\n\n");
    printf("| CPU | ISA | threads | probe | sizes | figure | ratio |\n|---|---|---|---|---|---|---|\n");

    size_t bytes = quick ? (size_t)256 << 20 : probe_dram_bytes();
    L->dram_gbs = probe_dram_read_gbs(bytes, runs);
    snprintf(sizes, sizeof sizes, "%zu MiB buffer (sysconf LLC %zu MiB)", bytes >> 20, probe_llc_bytes() >> 20);
    snprintf(fig, sizeof fig, "%.1f GB/s", L->dram_gbs);
    row(probe_read_isa(), 1, "DRAM streaming read", sizes, fig, "-");

    const char *isa = "?";
    double best = probe_fma_gflops(runs, min_s, &isa);
    L->fma_best = best;
    for (int k = 0; k < SIMD_NISA; k++)
        if (!strcmp(isa, simd_isa_name((SimdIsa)k))) L->fma[k] = best;
    snprintf(fig, sizeof fig, "%.1f GFLOP/s", best);
    row(isa, 1, "fp32 FMA peak", !strcmp(isa, "avx512") ? "16 chains x 16 lanes" : "independent chains",
        fig, "-");
#if PROBE_X86
    // A 256-bit peak too when the best was 512-bit: the ceiling for the avx2 table.
    if (!strcmp(isa, "avx512") && __builtin_cpu_supports("fma")) {
        double p2 = probe_best_rate(probe_fma_avx2, runs, min_s);
        L->fma[SIMD_AVX2] = p2;
        snprintf(fig, sizeof fig, "%.1f GFLOP/s", p2);
        snprintf(ratio, sizeof ratio, "%.2f of avx512", best > 0 ? p2 / best : 0);
        row("avx2", 1, "fp32 FMA peak", "12 chains x 8 lanes", fig, ratio);
    }
#endif
    L->vnni_gops = probe_vnni_gops(runs, min_s, &isa);
    if (L->vnni_gops > 0) {
        snprintf(fig, sizeof fig, "%.1f GOP/s", L->vnni_gops);
        snprintf(ratio, sizeof ratio, "%.2fx fp32 FMA", best > 0 ? L->vnni_gops / best : 0);
        row(isa, 1, "int8 VNNI peak (vpdpbusd)", "16 chains x 64 MACs", fig, ratio);
    } else {
        row("-", 1, "int8 VNNI peak (vpdpbusd)", "-", "n/a (no AVX-512 VNNI)", "-");
    }
    printf("\n");
}

// FMA ceiling for a table: its own vector width when probed, else the machine's best.
static double fma_peak(const Limits *L, SimdIsa isa) { return L->fma[isa] > 0 ? L->fma[isa] : L->fma_best; }

// Inputs shared by every table: the (V, D) classifier-sized matrix (the out-of-cache matvec
// of every decode step) in NCOPY copies whose total is far beyond any LLC, and small inputs.
#define NCOPY 4
typedef struct BenchData {
    Pool pool;
    float *Wbig[NCOPY];   // (V, D) each
    float *x, *y, *X, *Y, *g;
} BenchData;
enum { BD = 768, BV = 32000, BT = 64 };

static int data_init(BenchData *d) {
    memset(d, 0, sizeof *d);
    mem_pool_init(&d->pool, "bench", MEM_NUMA_LOCAL, NULL);
    const size_t wb = (size_t)BV * BD * sizeof(float);
    for (int c = 0; c < NCOPY; c++)
        if (!(d->Wbig[c] = mem_alloc(&d->pool, wb))) return CT_ERR;
    d->x = mem_alloc(&d->pool, BV * sizeof(float));
    d->y = mem_alloc(&d->pool, BV * sizeof(float));
    d->X = mem_alloc(&d->pool, (size_t)BT * BD * sizeof(float));
    d->Y = mem_alloc(&d->pool, (size_t)BT * BD * sizeof(float));
    d->g = mem_alloc(&d->pool, BD * sizeof(float));
    if (!d->x || !d->y || !d->X || !d->Y || !d->g) return CT_ERR;
    g_rng = 12345;
    fill(d->Wbig[0], (size_t)BV * BD, 0.05f);
    for (int c = 1; c < NCOPY; c++) memcpy(d->Wbig[c], d->Wbig[0], wb);
    fill(d->x, BV, 4.0f);
    fill(d->X, (size_t)BT * BD, 1.0f);
    fill(d->g, BD, 1.0f);
    return CT_OK;
}

static void data_free(BenchData *d) {
    for (int c = 0; c < NCOPY; c++) mem_free(&d->pool, d->Wbig[c], (size_t)BV * BD * sizeof(float));
    mem_free(&d->pool, d->x, BV * sizeof(float));
    mem_free(&d->pool, d->y, BV * sizeof(float));
    mem_free(&d->pool, d->X, (size_t)BT * BD * sizeof(float));
    mem_free(&d->pool, d->Y, (size_t)BT * BD * sizeof(float));
    mem_free(&d->pool, d->g, BD * sizeof(float));
    mem_pool_free(&d->pool);
}

// One attention row: fn for nq queries against base (the same results, one call per key) timed
// in the same run; GFLOP/s counts 2 * nq * keys * Dh.
static void att_row(const char *isa, Bench *b, void (*fn)(Bench *), void (*base)(Bench *), int nq,
                    const char *kernel, const char *base_name) {
    char sizes[96], fig[96], ratio[128];
    double flop = 2.0 * nq * ATT_KEYS * ATT_DH, sb = time_call(base, b), s = time_call(fn, b);
    if (nq > 1) snprintf(sizes, sizeof sizes, "%d queries x %d keys x %d, rows 768 apart", nq, ATT_KEYS, ATT_DH);
    else snprintf(sizes, sizeof sizes, "%d keys x %d, rows 768 apart", ATT_KEYS, ATT_DH);
    snprintf(fig, sizeof fig, "%.1f GFLOP/s", flop / s / 1e9);
    snprintf(ratio, sizeof ratio, "%.2fx %s (%.1f GFLOP/s)", sb / s, base_name, flop / sb / 1e9);
    row(isa, 1, kernel, sizes, fig, ratio);
}

static void bench_table(SimdIsa isa, const Limits *L, BenchData *d, ThreadPool *pool2, double scalar_ns[2]) {
    const SimdKernels *K = simd_kernels_for(isa);
    const char *name = simd_isa_name(isa);
    const size_t D = BD, V = BV, T = BT;
    char sizes[96], fig[96], ratio[96];
    const double dram = L->dram_gbs, peak = fma_peak(L, isa);
    const char *peak_isa = L->fma[isa] > 0 ? name : "machine";

    Bench b = {.K = K, .W = d->Wbig[0], .x = d->x, .y = d->y, .X = d->X, .Y = d->Y, .w = d->g,
               .nthreads = 1};

    // dot, in L1: the inner loop of everything else.
    b.n = D;
    double s = time_call(run_dot, &b);
    snprintf(fig, sizeof fig, "%.1f GFLOP/s", 2.0 * D / s / 1e9);
    if (peak > 0) snprintf(ratio, sizeof ratio, "%.2f of %s FMA peak", 2.0 * D / s / 1e9 / peak, peak_isa);
    else snprintf(ratio, sizeof ratio, "-");
    row(name, 1, "dot_f32", "n=768", fig, ratio);

    // matvec: in cache (one attention projection) and out of cache (the classifier).
    const size_t mv_rows[2] = {D, V};
    for (int m = 0; m < 2; m++) {
        for (int th = 1; th <= 2; th++) {
            if (m == 0 && th == 2) continue;
            if (th == 2 && !pool2) continue;
            b.rows = mv_rows[m];
            b.cols = D;
            b.pool = th == 2 ? pool2 : NULL;
            b.nthreads = th;
            b.ncopy = m == 0 ? 1 : NCOPY;
            for (int c = 0; c < NCOPY; c++) b.Wc[c] = d->Wbig[c];
            b.W = d->Wbig[0];
            s = time_call(run_matvec, &b);
            double bytes = (double)b.rows * D * sizeof(float), gbs = bytes / s / 1e9;
            snprintf(sizes, sizeof sizes, "%zux%zu (%.1f MB%s)", b.rows, D, bytes / 1e6,
                     m == 0 ? ", in cache" : " x 4 copies cycled");
            snprintf(fig, sizeof fig, "%.1f GB/s, %.1f GFLOP/s", gbs, 2.0 * b.rows * D / s / 1e9);
            if (dram > 0) snprintf(ratio, sizeof ratio, "%.2f of 1-core DRAM read", gbs / dram);
            else snprintf(ratio, sizeof ratio, "-");
            row(name, th, "matvec_f32", sizes, fig, ratio);
        }
    }

    // matmul: a 64-token prefill through one 768x768 projection.
    b.ncopy = 1;
    b.W = d->Wbig[0];
    b.rows = D;
    b.cols = D;
    b.T = T;
    for (int th = 1; th <= 2; th++) {
        if (th == 2 && !pool2) continue;
        b.pool = th == 2 ? pool2 : NULL;
        b.nthreads = th;
        s = time_call(run_matmul, &b);
        double gf = 2.0 * T * D * D / s / 1e9;
        snprintf(fig, sizeof fig, "%.1f GFLOP/s", gf);
        if (peak > 0) snprintf(ratio, sizeof ratio, "%.2f of %s FMA peak x %d", gf / (peak * th), peak_isa, th);
        else snprintf(ratio, sizeof ratio, "-");
        row(name, th, "matmul_f32", "T=64, 768x768", fig, ratio);
    }
    b.pool = NULL;
    b.nthreads = 1;

    // Attention of one head over 1024 keys (rows of 768 floats, in cache): one dots_f32 /
    // axpys_f32 call against a dot_f32 / axpy_f32 call per key, in the same run.
    b.W = d->Wbig[0];
    b.cols = D;
    b.x = d->x;   // the query (64 floats), or the 1024 attention weights for axpys
    att_row(name, &b, run_dots, run_dots_base, 1, "dots_f32 (attention scores)", "a dot_f32 call per key");
    att_row(name, &b, run_dots8, run_dots8_base, 8, "dots_f32 (attention scores)", "a dot_f32 call per (query, key)");
    att_row(name, &b, run_axpys, run_axpys_base, 1, "axpys_f32 (attention values)", "an axpy_f32 call per key");
    att_row(name, &b, run_axpys8, run_axpys8_base, 8, "axpys_f32 (attention values)",
            "an axpy_f32 call per (query, key)");

    {
        double flop = 2.0 * MIX_ROWS * MIX_P * MIX_T * MIX_D, sb = time_call(run_axpyv_base, &b), sv = time_call(run_axpyv, &b);
        snprintf(fig, sizeof fig, "%.1f GFLOP/s", flop / sv / 1e9);
        snprintf(ratio, sizeof ratio, "%.2fx an axpy_f32 call per (row, p, t, head) (%.1f GFLOP/s)", sb / sv,
                 flop / sb / 1e9);
        row(name, 1, "axpyv_f32 (attribution: pattern transpose)", "64 rows x 16 p x 8 t x 64 (8 heads of 8)", fig, ratio);
    }

    // rmsnorm (per layer, per token) and softmax over the vocabulary: speed-up over scalar.
    b.n = D;
    s = time_call(run_rmsnorm, &b);
    if (isa == SIMD_SCALAR) scalar_ns[0] = s * 1e9;
    snprintf(fig, sizeof fig, "%.0f ns/call, %.1f GB/s", s * 1e9, 3.0 * D * sizeof(float) / s / 1e9);
    snprintf(ratio, sizeof ratio, "%.1fx scalar", scalar_ns[0] / (s * 1e9));
    row(name, 1, "rmsnorm_f32", "n=768", fig, ratio);

    b.n = V;
    s = time_call(run_softmax, &b);
    if (isa == SIMD_SCALAR) scalar_ns[1] = s * 1e9;
    snprintf(fig, sizeof fig, "%.1f us/call", s * 1e6);
    snprintf(ratio, sizeof ratio, "%.1fx scalar", scalar_ns[1] / (s * 1e9));
    row(name, 1, "softmax_f32", "n=32000 (+copy)", fig, ratio);

    if (b.sink == 12345.678f) printf(" ");   // keep the sink alive
}

int main(int argc, char **argv) {
    int quick = 0, probes = 1, list = 0;
    const char *limits_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--no-probes")) probes = 0;
        else if (!strcmp(argv[i], "--list-isas")) list = 1;
        else if (!strcmp(argv[i], "--limits") && i + 1 < argc) limits_path = argv[++i];
        else {
            fprintf(stderr, "usage: bench_kernels [--quick] [--no-probes] [--limits FILE] [--list-isas]\n"
                            "unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (list) {
        for (int k = 0; k < SIMD_NISA; k++)
            if (simd_kernels_for((SimdIsa)k)) printf("%s\n", simd_isa_name((SimdIsa)k));
        return 0;
    }
    if (quick) {
        g_min_s = 0.01;
        g_batches = 2;
    }
    probe_cpu_model(g_cpu, sizeof g_cpu);

    // Verify every table before timing anything.
    int ntables = 0;
    for (int k = 0; k < SIMD_NISA; k++) {
        const SimdKernels *K = simd_kernels_for((SimdIsa)k);
        if (!K) continue;
        verify_table(K);
        ntables++;
    }
    if (g_fail) {
        fprintf(stderr, "bench_kernels: %d check(s) failed; not timing\n", g_fail);
        return 1;
    }

    Limits L;
    memset(&L, 0, sizeof L);
    if (probes) run_probes(&L, quick);
    if (limits_path) {
        FILE *f = fopen(limits_path, "w");
        if (!f) {
            fprintf(stderr, "bench_kernels: cannot write --limits %s\n", limits_path);
            return 1;
        }
        fprintf(f, "dram_gbs %.2f\nfma_gflops %.1f\nvnni_gops %.1f\n", L.dram_gbs, L.fma_best, L.vnni_gops);
        fclose(f);
    }

    printf("### Kernels (%d tables verified against a double reference)\n\n", ntables);
    printf("| CPU | ISA | threads | kernel | sizes | figure | ratio |\n|---|---|---|---|---|---|---|\n");
    ThreadPool *pool2 = pool_create(2);
    if (!pool2) fprintf(stderr, "bench_kernels: no thread pool (%s); 1-thread rows only\n", ct_errmsg());
    double scalar_ns[2] = {NAN, NAN};
    BenchData d;
    if (data_init(&d) != CT_OK) {
        fprintf(stderr, "bench_kernels: %s\n", ct_errmsg());
        return 1;
    }
    // amx shares avx512's fp32 kernels and avxvnni avx2's (their int8 products are bench_q8's
    // rows): not timed twice.
    for (int k = 0; k < SIMD_NISA; k++)
        if (simd_kernels_for((SimdIsa)k) && k != SIMD_AMX && k != SIMD_AVXVNNI)
            bench_table((SimdIsa)k, &L, &d, pool2, scalar_ns);
    data_free(&d);
    pool_destroy(pool2);
    printf("\n");
    return 0;
}
