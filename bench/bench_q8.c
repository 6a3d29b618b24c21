// bench_q8.c — the int8 kernels against this machine's limits, measured in the same run, and
// against OpenBLAS sgemm / sgemv on the same shapes (this one bench binary may link Debian's
// libopenblas; the engine never does).  Verifies every table against the scalar reference
// (bit for bit) before timing anything.  Prints markdown rows.
//
//   build/bench/bench_q8 [--quick] [--isa ISA]
//
// Rows (1 core unless stated):
//   probes      DRAM streaming read (GB/s), fp32 FMA peak, int8 VNNI peak (bench/probes.h)
//   matvec_q8   (65536 x 8192) packed int8, 604 MB: far beyond any cache -> GB/s and the
//               fraction of the DRAM probe (target >= 0.90); also 2 threads.  matvec_q8 takes
//               8-bit activations (--dtype q8a8), matvec_q8x2 the two digit rows of 16-bit
//               ones (--dtype q8, the default decode): the same weight stream, twice the
//               multiply-adds.  The AVX-512 matvec reads 1-8 runs of panels side by side,
//               chosen at run time by speed, with 256- or 512-bit products (by CPU vendor);
//               two rows give each count forced with each width, interleaved
//   sgemv       OpenBLAS on the same shape in fp32 (2.1 GB) -> GB/s, fraction of DRAM
//   matmul_q8   64 rows x (768 x 768) and (2048 x 768) -> GOP/s, fraction of VNNI peak
//               (target >= 0.70) and of the block-scaled op-mix ceiling (probes.h
//               probe_q8mix_avx512: where vpdpbusd and the per-block float step share two
//               ports, as on Intel cores, no kernel of this format passes ~0.7 of the VNNI
//               peak); OpenBLAS sgemm on the same shapes vs the FMA peak.  A q8
//               (16-bit activation) batch of 64 tokens is matmul_q8x2 over 128 digit rows
//               (each token's two rows summed in the store): its row gives the int8 work done
//               and the products per second.  16-bit activation scales are powers of two
//               (quant/q8.h), so the AVX-512 table may form dw * dx by vscalefps instead of
//               the op mix's multiply (the default on AMD, simd_q8_pow2_scalef): it times its
//               q8 batches both ways, the vscalefps rows without an op-mix fraction
//               The amx table (AMX tile unit, where the CPU has it) runs the same batches
//               with one TDPBSUD per 16 rows x 16 lanes x 32-deep block; its rows are
//               followed by two AMX probes: TDPBSUD's own rate on 32-deep products and the
//               rate of a block's whole tile work (loads, product, int32 store) without the
//               float step: the tile unit's ceiling for this format.  The avxvnni table
//               (AVX2 with 256-bit VEX vpdpbusd) is compared with the AVX-VNNI peak, its
//               own probe row
//   tile loop  (AVX-512) the GEMM's 2 x 6 tile loop on data in L1, whole and with parts left
//               out (weight loads, activation broadcasts, the float step, its multiply) ->
//               GOP/s and fraction of the VNNI peak: where the GEMM's cycles go
//   matmul_q8t, decode_rows_q8: the backward-sweep product and sparse decoder reads
//
//   --quick   smaller matrices and fewer repetitions (smoke test; figures are rough)
//   --isa     time one table only (default: every int8-capable table this CPU runs)
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/probes.h"
#include "engine/common.h"
#include "engine/mem.h"
#include "engine/threads.h"
#include "quant/q8.h"
#include "simd/simd.h"

#ifdef CT_HAVE_OPENBLAS
#include <cblas.h>
void openblas_set_num_threads(int);
#endif

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static uint64_t rnd(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float rndf(void) { return (float)((rnd() >> 40) * (2.0 / 16777216.0) - 1.0); }

// The machine may be shared: time many short batches and keep the best (least disturbed) one.
// A batch repeats fn for >= g_batch_s; batches continue until g_budget_s has passed (and at
// least g_min_batches ran).  Probes are taken the same way (see run_probes) so ratios compare
// like with like.
static double g_batch_s = 0.004, g_budget_s = 0.3;
static int g_min_batches = 8;
static char g_cpu[128];

static void row(const char *isa, int th, const char *what, const char *sizes, const char *fig, const char *ratio) {
    printf("| %s | %s | %d | %s | %s | %s | %s |\n", g_cpu, isa, th, what, sizes, fig, ratio);
    fflush(stdout);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Best seconds per call of fn(ctx).
static double best_time(void (*fn)(void *), void *ctx) {
    double t0 = ct_now();
    fn(ctx);
    double one = ct_now() - t0;
    long reps = one > 0 ? (long)(g_batch_s / one) + 1 : 100;
    double best = INFINITY, start = ct_now();
    for (int k = 0; k < g_min_batches || ct_now() - start < g_budget_s; k++) {
        t0 = ct_now();
        for (long r = 0; r < reps; r++) fn(ctx);
        double dt = (ct_now() - t0) / (double)reps;
        if (dt < best) best = dt;
        if (k > 10000) break;
    }
    return best;
}

// ---- jobs -----------------------------------------------------------------------------------
typedef struct Job {
    const SimdKernels *K;
    ThreadPool *pool;
    int nt;
    const Q8Panels *W;
    const Q8PanelsT *Wt;
    const Q8Act *X;
    float *Y;
    size_t T;
    // sparse decode
    const BlockQ8 *dec;
    size_t stride, D, nact;
    const int *idx;
    const float *val;
#ifdef CT_HAVE_OPENBLAS
    const float *Wf, *Xf;
    size_t rows, cols;
#endif
} Job;

static void mv_task(void *c, int i, int n) {
    Job *j = c;
    size_t p0 = pool_split(j->W->np, i, n), p1 = pool_split(j->W->np, i + 1, n);
    j->K->matvec_q8(j->Y, j->W, j->X, p0, p1);
}
static void mv2_task(void *c, int i, int n) {
    Job *j = c;
    size_t p0 = pool_split(j->W->np, i, n), p1 = pool_split(j->W->np, i + 1, n);
    j->K->matvec_q8x2(j->Y, j->W, j->X, p0, p1);
}
static void run_mv(void *c) { Job *j = c; pool_run(j->pool, j->X->digits == 2 ? mv2_task : mv_task, j, j->nt); }
static void run_mm(void *c) { Job *j = c; j->K->matmul_q8(j->Y, j->W->rows, j->W, j->X, j->T, 0, j->W->np); }
// A q8 batch: both digit rows of T tokens (X holds 2T rows), summed per token into Y.
static void run_mm2(void *c) { Job *j = c; j->K->matmul_q8x2(j->Y, j->W->rows, j->W, j->X, j->T, 0, j->W->np); }
static void run_mmt(void *c) { Job *j = c; j->K->matmul_q8t(j->Y, j->Wt->cols, j->Wt, j->X, j->T, 0, j->Wt->np); }
static void run_dec(void *c) { Job *j = c; j->K->decode_rows_q8(j->Y, j->dec, j->stride, j->idx, j->val, j->nact, j->D); }
#ifdef CT_HAVE_OPENBLAS
static void run_sgemv(void *c) {
    Job *j = c;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)j->rows, (int)j->cols, 1.0f, j->Wf, (int)j->cols, j->Xf, 1, 0.0f, j->Y, 1);
}
static void run_sgemm(void *c) {   // Y (T, rows) = X (T, cols) W^T
    Job *j = c;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->T, (int)j->rows, (int)j->cols, 1.0f, j->Xf,
                (int)j->cols, j->Wf, (int)j->cols, 0.0f, j->Y, (int)j->rows);
}
#endif

// Bytes allocated for a buffer of n bytes: at least MEM_LARGE_BYTES, so mem_alloc puts even a
// GEMM-sized matrix on 2 MiB pages (MADV_HUGEPAGE), as the engine's weights are (one large
// allocation per model).  On 4 KiB pages the physical placement, and with it how a matrix
// near the L2 size (2048x768: 1.8 MB) shares L2 sets with the output, changed from process
// to process: the amx GEMM gave 0.67-0.73 of the VNNI peak on 4 KiB pages, 0.74-0.76 on 2 MiB.
static size_t big_bytes(size_t n) { return n < MEM_LARGE_BYTES ? MEM_LARGE_BYTES : n; }

// A packed (rows, cols) matrix filled with random quants and small scales (big_bytes of it
// allocated).
static uint8_t *random_panels(Pool *pool, size_t rows, size_t cols, Q8Panels *P) {
    size_t bytes = q8_panels_bytes(rows, cols);
    uint8_t *buf = mem_alloc(pool, big_bytes(bytes));
    if (!buf) return NULL;
    uint64_t *w = (uint64_t *)buf;
    // Quants: odd u8 in [1, 255], so w = u8 - 128 is in [-127, 127]; scales small positive.
    for (size_t i = 0; i < bytes / 8; i++) w[i] = rnd() | 0x0101010101010101ull;
    size_t nb = q8_nblocks(cols), np = q8_npanels(rows);
    for (size_t b = 0; b < np * nb; b++) {
        float *d = (float *)(buf + b * Q8_PANEL_BLOCK_BYTES);
        for (int i = 0; i < 16; i++) d[i] = 0.001f + 0.001f * (float)(rnd() & 7);
    }
    *P = q8_panels_view(buf, rows, cols);
    return buf;
}

// ---- the GEMM tile's loop taken apart (AVX-512 VNNI) -------------------------------------------
// The kernel's own 2 x 6 tile loop (simd/q8_tile_asm.h) over 24 blocks whose data sit in L1,
// timed whole and with parts left out, so the gap between the GEMM and the VNNI peak can be
// read off on any machine: the vpdpbusd alone; with the weight loads; with the activation
// broadcasts; the whole integer part (both, plus the nsum starts); the float step without the
// scale multiply (what one scale per activation row would leave); the kernel's loop for 16-bit
// activations (power-of-two scales: dw * dx by vgetexpps / vscalefps) and for 8-bit ones
// (vmulps).  The last two compute the kernel's numbers; the others are timing only.  All scales
// are 0, so every float stays 0 however long it runs.
#if PROBE_X86
#include "simd/q8_tile_asm.h"
#define ANAT_NB 24
static _Alignas(64) uint8_t g_aw[2][ANAT_NB * Q8_PANEL_BLOCK_BYTES];
static _Alignas(64) int8_t g_aq[6 * ANAT_NB * 32];
static _Alignas(64) int32_t g_as[6 * ANAT_NB];
static _Alignas(64) float g_ad[6 * ANAT_NB];
static _Alignas(64) float g_aacc[12][16];
// Steps from parts of Q8A_J6: vpdpbusd only, + weight loads, + activation broadcasts.
#define ANAT_JD(j) Q8A_D_6
#define ANAT_JW(j) Q8A_W(j) Q8A_D_6
#define ANAT_JB(j) Q8A_B_6(j) Q8A_D_6
#define ANAT_NOF(t, a0, a1, c0, c1) ""
// The float step with the lane scales used as they are (no dw * dx multiply).
#define ANAT_F2(t, a0, a1, c0, c1)                                                                  \
    "vcvtdq2ps %%zmm" #a0 ", %%zmm" #a0 "\n\tvcvtdq2ps %%zmm" #a1 ", %%zmm" #a1 "\n\t"            \
    "vfmadd231ps %%zmm12, %%zmm" #a0 ", %%zmm" #c0 "\n\tvfmadd231ps %%zmm13, %%zmm" #a1 ", %%zmm" #c1 "\n\t"
// iters passes of the loop over the 24 blocks; returns the int8 ops done (2 per multiply-add).
#define ANAT_FN(name, BODY)                                                                        \
    __attribute__((target("avx512f,avx512vnni"))) static double name(long iters) {                 \
        enum { LS = 1 };                                                                           \
        for (long i = 0; i < iters; i++) {                                                         \
            const uint8_t *w = g_aw[0] + 64;                                                       \
            const int8_t *qa = g_aq, *qb = g_aq + 3 * ANAT_NB * 32;                                \
            const int32_t *sa = g_as, *sb = g_as + 3 * ANAT_NB;                                    \
            const float *da = g_ad, *db = g_ad + 3 * ANAT_NB;                                      \
            const long ps = (long)sizeof g_aw[0], sq = ANAT_NB * 32, s4 = ANAT_NB * 4;             \
            float *acc = &g_aacc[0][0];                                                            \
            size_t n = ANAT_NB;                                                                    \
            __asm__ volatile(BODY Q8A_OPERANDS);                                                   \
        }                                                                                          \
        return (double)iters * ANAT_NB * (2 * 16) * 6 * 32 * 2;                                    \
    }
ANAT_FN(anat_dp, Q8A_LOOP("", ANAT_JD, "", ANAT_NOF))
ANAT_FN(anat_w, Q8A_LOOP("", ANAT_JW, "", ANAT_NOF))
ANAT_FN(anat_b, Q8A_LOOP("", ANAT_JB, "", ANAT_NOF))
ANAT_FN(anat_int, Q8A_LOOP(Q8A_INIT, Q8A_J6, "", ANAT_NOF))
ANAT_FN(anat_f2, Q8A_LOOP(Q8A_INIT, Q8A_J6, Q8A_LSCALES, ANAT_F2))
ANAT_FN(anat_fp, Q8A_BODY(Q8A_LSCALES, Q8A_FP))   // the kernel's loop, power-of-two dx
ANAT_FN(anat_full, Q8A_BODY(Q8A_LSCALES, Q8A_F))   // the kernel's loop, any dx

// Rows of the anatomy, each as GOP/s and its fraction of the VNNI peak vnni.
static void tile_anatomy(const char *visa, double vnni, int runs, double min_s) {
    static const struct { double (*fn)(long); const char *what; } parts[] = {
        {anat_dp, "vpdpbusd only (operands in registers)"},
        {anat_w, "vpdpbusd + weight loads"},
        {anat_b, "vpdpbusd + activation broadcasts"},
        {anat_int, "integer part (loads, broadcasts, nsum starts)"},
        {anat_f2, "+ float step without the scale multiply (convert, fma)"},
        {anat_fp, "the kernel's loop, 16-bit activations (power-of-two dx: getexp, scalef, convert, fma)"},
        {anat_full, "the kernel's loop, 8-bit activations (convert, dw * dx, fma)"},
    };
    memset(g_aw, 1, sizeof g_aw);
    memset(g_aq, 1, sizeof g_aq);
    char what[160], fig[64], rt[64];
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        double g = probe_best_rate(parts[i].fn, runs, min_s);
        snprintf(what, sizeof what, "GEMM tile loop, data in L1: %s", parts[i].what);
        snprintf(fig, sizeof fig, "%.1f GOP/s", g);
        snprintf(rt, sizeof rt, "%.2f of VNNI peak", g / vnni);
        row(visa, 1, what, "2 x 6 tile (32 x 6 outputs), 24 blocks", fig, rt);
    }
}
#endif

// Bit-identity of every table against scalar on a small problem of each int8 entry.
static int verify(void) {
    size_t rows = 77, cols = 333, T = 9;
    float *W = malloc(rows * cols * sizeof(float)), *X = malloc(T * cols * sizeof(float));
    float *G = malloc(T * rows * sizeof(float));
    for (size_t i = 0; i < rows * cols; i++) W[i] = rndf();
    for (size_t i = 0; i < T * cols; i++) X[i] = rndf();
    for (size_t i = 0; i < T * rows; i++) G[i] = rndf();
    size_t nb = q8_nblocks(cols), ng = q8_nblocks(rows);
    BlockQ8 *B = malloc(rows * nb * sizeof *B);
    q8_quantize_matrix(B, W, rows, cols);
    uint8_t *pk = malloc(q8_panels_bytes(rows, cols)), *pt = malloc(q8_panels_t_bytes(rows, cols));
    float *sc = malloc(nb * ng * 32 * sizeof(float));
    q8_pack_panels(pk, B, rows, cols, 0, q8_npanels(rows));
    q8_pack_panels_t(pt, sc, B, rows, cols, 0, q8_npanels(cols));
    Q8Panels P = q8_panels_view(pk, rows, cols);
    Q8PanelsT Pt = {pt, sc, rows, cols, nb, ng, q8_npanels(cols)};
    Q8ActBuf ab = {0}, ab2 = {0}, ab3 = {0};
    Q8Act A, V, A2;
    q8_act_quantize(&A, &ab, X, T, cols);
    q8_act_quantize_t(&V, &ab2, G, T, &Pt);
    q8_act_quantize_digits(&A2, &ab3, X, T, cols, 2);   // 16-bit: matvec_q8x2 (token 0), matmul_q8x2
    int idx[5] = {3, 70, 3, 12, 0};
    float val[5] = {0.5f, -1.25f, 2.0f, 0.1f, -0.7f};
    size_t nres = T * rows + T * cols + cols + rows + T * rows;
    float *ref = calloc(nres, sizeof(float)), *got = calloc(nres, sizeof(float));
    int fails = 0;
    for (int k = 0; k < SIMD_NISA; k++) {
        const SimdKernels *K = simd_kernels_for((SimdIsa)k);
        if (!K) continue;
        float *o = k == 0 ? ref : got;
        memset(o, 0, nres * sizeof(float));
        K->matmul_q8(o, rows, &P, &A, T, 0, P.np);
        K->matmul_q8t(o + T * rows, cols, &Pt, &V, T, 0, Pt.np);
        K->decode_rows_q8(o + T * rows + T * cols, B, nb, idx, val, 5, cols);
        Q8Act tok0 = A2;
        tok0.T = 2;
        K->matvec_q8x2(o + T * rows + T * cols + cols, &P, &tok0, 0, P.np);
        K->matmul_q8x2(o + T * rows + T * cols + cols + rows, rows, &P, &A2, T, 0, P.np);
        if (k > 0 && memcmp(ref, got, nres * sizeof(float)) != 0) {
            fprintf(stderr, "bench_q8: %s int8 kernels differ from scalar; not timing\n", K->name);
            fails++;
        }
    }
    // And the scalar result is close to the fp32 product of the dequantized weights.
    double err = 0, mag = 0;
    float *Wd = malloc(rows * cols * sizeof(float));
    q8_dequantize_matrix(Wd, B, rows, cols);
    for (size_t t = 0; t < T; t++)
        for (size_t r = 0; r < rows; r++) {
            double s = 0;
            for (size_t c = 0; c < cols; c++) s += (double)Wd[r * cols + c] * X[t * cols + c];
            err += fabs(s - ref[t * rows + r]);
            mag += fabs(s);
        }
    if (!(err <= 0.02 * mag)) {
        fprintf(stderr, "bench_q8: int8 product too far from fp32 (rel L1 %.3g); not timing\n", err / mag);
        fails++;
    }
    free(W); free(X); free(G); free(B); free(pk); free(pt); free(sc); free(ref); free(got); free(Wd);
    q8_actbuf_free(&ab);
    q8_actbuf_free(&ab2);
    q8_actbuf_free(&ab3);
    return fails;
}

int main(int argc, char **argv) {
    int quick = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_q8 [--quick] [--isa ISA]\nunexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (quick) {
        g_budget_s = 0.1;
        g_min_batches = 3;
    }
    probe_cpu_model(g_cpu, sizeof g_cpu);
    if (verify()) return 1;

    // ---- limits, same run ----
    int pruns = quick ? 3 : 12;      // DRAM passes / peak batches: best of many short ones
    double pmin = 0.004;
    size_t pbytes = quick ? (size_t)256 << 20 : probe_dram_bytes();
    double dram1 = 0, dram = probe_dram_read_ways_gbs(pbytes, pruns, &dram1);
    const char *fisa = "?", *visa = "?";
    double fma = probe_fma_gflops(pruns * 8, pmin, &fisa);
    double vnni = probe_vnni_gops(pruns * 8, pmin, &visa);
    double mix = probe_q8mix_gops(pruns * 8, pmin);
    double vex = probe_avxvnni_gops(pruns * 8, pmin);   // 0 without AVX-VNNI
    char sz[128], fig[96], rt[160];
    printf("### int8 kernels vs this machine's limits (same run)\n\n");
    printf("| CPU | ISA | threads | kernel | sizes | figure | ratio |\n|---|---|---|---|---|---|---|\n");
    snprintf(sz, sizeof sz, "%zu MiB buffer", pbytes >> 20);
    snprintf(fig, sizeof fig, "%.1f GB/s (one stream: %.1f)", dram, dram1);
    row(probe_read_isa(), 1, "probe: DRAM streaming read, best of 1 and 2 streams, plain and prefetching", sz, fig, "-");
    snprintf(fig, sizeof fig, "%.1f GFLOP/s", fma);
    row(fisa, 1, "probe: fp32 FMA peak", "-", fig, "-");
    snprintf(fig, sizeof fig, vnni > 0 ? "%.1f GOP/s" : "n/a", vnni);
    row(visa, 1, "probe: int8 VNNI peak (vpdpbusd)", "-", fig, "-");
    if (mix > 0) {
        snprintf(fig, sizeof fig, "%.1f GOP/s", mix);
        snprintf(rt, sizeof rt, "%.2f of VNNI peak", mix / vnni);
        row(visa, 1, "probe: block-scaled int8 op mix (per 32-deep block: 8 vpdpbusd, convert, scale, fma)", "-", fig, rt);
    }

    if (vex > 0) {
        snprintf(fig, sizeof fig, "%.1f GOP/s", vex);
        if (vnni > 0) snprintf(rt, sizeof rt, "%.2f of the 512-bit VNNI peak", vex / vnni);
        else snprintf(rt, sizeof rt, "-");
        row("avxvnni", 1, "probe: int8 AVX-VNNI peak (256-bit VEX vpdpbusd)", "-", fig, rt);
    }

    double ghz[4];
    if (probe_clock_ghz(quick ? 2 : 3, 0.05, ghz)) {
        snprintf(fig, sizeof fig, "%.2f / %.2f / %.2f / %.2f GHz", ghz[0], ghz[1], ghz[2], ghz[3]);
        snprintf(rt, sizeof rt, "%.2f of alone beside 512-bit vpdpbusd", ghz[3] / ghz[0]);
        row(visa, 1, "probe: core clock (8 dependent adds per step) alone / beside 256-bit vpdpbusd / 512-bit vpaddq / "
                     "512-bit vpdpbusd", "-", fig, rt);
    }

    char probe_sz[128];
    snprintf(probe_sz, sizeof probe_sz, "%s", sz);
    Pool pool;
    mem_pool_init(&pool, "bench_q8", MEM_NUMA_LOCAL, NULL);
    ThreadPool *tp2 = pool_create(2);
    // Decode-sized matvec: far beyond every cache.  The full run packs at least as many bytes
    // as the DRAM probe reads (>= 1 GiB and >= 2x the sysconf LLC figure; the Intel Xeon VM
    // reports a 480 MiB L3, which a 65536-row matrix, 604 MB, barely exceeds); rows in steps of
    // 16384.  --quick keeps 16384 rows (151 MB) for speed.
    size_t MC = 8192, MR = 16384;
    if (!quick)
        while (q8_panels_bytes(MR, MC) < pbytes) MR += 16384;
    Q8Panels Pbig;
    uint8_t *big = random_panels(&pool, MR, MC, &Pbig);
    float *x = malloc(MC * sizeof(float)), *y = malloc(MR * sizeof(float) + 64);
    for (size_t i = 0; i < MC; i++) x[i] = rndf();
    Q8ActBuf ab = {0};
    Q8Act xa;
    // GEMM shapes
    size_t T = 64, GR[2] = {768, 2048}, GC = 768;
    const size_t yg_bytes = big_bytes(T * 2048 * sizeof(float) + 64);
    float *Xg = malloc(T * 2048 * sizeof(float)), *Yg = mem_alloc(&pool, yg_bytes);
    for (size_t i = 0; i < T * 2048; i++) Xg[i] = rndf();
    Q8Panels Pg[2];
    uint8_t *gb[2];
    for (int s = 0; s < 2; s++) gb[s] = random_panels(&pool, GR[s], GC, &Pg[s]);
    if (!big || !gb[0] || !gb[1] || !Yg) {
        fprintf(stderr, "bench_q8: %s\n", ct_errmsg());
        return 1;
    }
    Q8ActBuf gab = {0}, ab16 = {0}, gab16 = {0};
    Q8Act Xa, xa16, Xa16;
    q8_act_quantize(&xa, &ab, x, 1, MC);
    q8_act_quantize(&Xa, &gab, Xg, T, GC);
    q8_act_quantize_digits(&xa16, &ab16, x, 1, MC, 2);
    q8_act_quantize_digits(&Xa16, &gab16, Xg, T, GC, 2);
    double bytes = (double)q8_panels_bytes(MR, MC);

    for (int k = 0; k < SIMD_NISA; k++) {
        const SimdKernels *K = simd_kernels_for((SimdIsa)k);
        if (!K || (only && strcmp(only, K->name)) || (!only && k == SIMD_SCALAR)) continue;
        const char *isa = K->name;
        for (int mv = 0; mv < 4; mv++) {
            int th = 1 + (mv & 1), dg = 1 + (mv >> 1);
            Job j = {.K = K, .pool = th == 2 ? tp2 : NULL, .nt = th, .W = &Pbig, .X = dg == 2 ? &xa16 : &xa, .Y = y};
            double s = INFINITY, sf[2][4];
            for (int i = 0; i < 8; i++) sf[i / 4][i % 4] = INFINITY;
            // The AVX-512 matvec picks how many runs of panels it reads side by side (simd.h
            // simd_q8_matvec_streams) and its products' width (simd_q8_matvec_width); its rows
            // also time each count forced, with each width.
            int forced = k == SIMD_AVX512;
            // Per round, the default's pass against the same round's probe (paired[]): on a
            // shared host the best of each can come from different minutes, so the row also
            // gives the median and the least of these paired ratios.
            double paired[256];
            int npaired = 0;
            if (th == 1) {
                // The run-time count choice first times each of its three counts twice
                // (x86_avx512.c mv_pick): those calls run here, untimed, as a decode's first
                // tokens would, so that the rounds time the choice a long decode settles on.
                for (int w = 0; w < 6; w++) run_mv(&j);
                // One DRAM probe pass, one matvec pass, alternately: both see the same machine
                // (this one is shared), and the ratio compares the best of each.
                double t0 = ct_now();
                for (int r = 0; r < (quick ? 3 : 12) || ct_now() - t0 < (quick ? 0.3 : 2.0); r++) {
                    double g1 = 0, g = probe_dram_read_ways_gbs(pbytes, 1, &g1);
                    if (g > dram) dram = g;
                    if (g1 > dram1) dram1 = g1;
                    // The chosen count and the forced ones take turns at following the probe.
                    for (int i = 0; i < (forced ? 9 : 1); i++) {
                        int c = (r + i) % 9 - 1;   // -1: chosen at run time; else width c / 4, 2^(c % 4) runs
                        simd_q8_matvec_width(c < 0 ? 0 : c < 4 ? 256 : 512);
                        simd_q8_matvec_streams(c < 0 ? 0 : 1 << c % 4);
                        double t1 = ct_now();
                        run_mv(&j);
                        double dt = ct_now() - t1;
                        double *best = c < 0 ? &s : &sf[c / 4][c % 4];
                        if (dt < *best) *best = dt;
                        if (c < 0 && g > 0 && dt > 0 && npaired < 256) paired[npaired++] = bytes / dt / 1e9 / g;
                    }
                    simd_q8_matvec_streams(0);
                    simd_q8_matvec_width(0);
                    if (r > 200) break;
                }
                snprintf(fig, sizeof fig, "%.1f GB/s (one stream: %.1f)", dram, dram1);
                row(probe_read_isa(), 1, dg == 2 ? "probe: DRAM streaming read (interleaved with matvec_q8x2 passes)"
                                                 : "probe: DRAM streaming read (interleaved with matvec_q8 passes)", probe_sz, fig, "-");
            } else {
                s = best_time(run_mv, &j);
            }
            snprintf(sz, sizeof sz, "%zux%zu (%.0f MB packed)", MR, MC, bytes / 1e6);
            snprintf(fig, sizeof fig, "%.1f GB/s, %.1f GOP/s", bytes / s / 1e9, 2.0 * dg * MR * MC / s / 1e9);
            if (th == 1 && dram1 > 0 && dram1 < dram)
                snprintf(rt, sizeof rt, "%.2f of 1-core DRAM read (%.2f of one stream)", bytes / s / 1e9 / dram,
                         bytes / s / 1e9 / dram1);
            else
                snprintf(rt, sizeof rt, "%.2f of 1-core DRAM read", bytes / s / 1e9 / dram);
            if (npaired > 0) {
                qsort(paired, (size_t)npaired, sizeof *paired, cmp_double);
                double med = npaired % 2 ? paired[npaired / 2] : 0.5 * (paired[npaired / 2 - 1] + paired[npaired / 2]);
                size_t l = strlen(rt);
                snprintf(rt + l, sizeof rt - l, "; paired with each round's probe: median %.2f, least %.2f, %d rounds",
                         med, paired[0], npaired);
            }
            char kn[128];
            const char *kind = dg == 2 ? "matvec_q8x2 (q8: 16-bit activations)" : "matvec_q8 (q8a8: 8-bit activations)";
            if (forced) snprintf(kn, sizeof kn, "%s, %d-bit products (default here)", kind, simd_q8_matvec_width_default());
            else snprintf(kn, sizeof kn, "%s", kind);
            row(isa, th, kn, sz, fig, rt);
            for (int w = 0; w < 2 && th == 1 && forced; w++) {
                const double *f = sf[w];
                snprintf(fig, sizeof fig, "%.1f / %.1f / %.1f / %.1f GB/s", bytes / f[0] / 1e9, bytes / f[1] / 1e9,
                         bytes / f[2] / 1e9, bytes / f[3] / 1e9);
                snprintf(rt, sizeof rt, "%.2f / %.2f / %.2f / %.2f of 1-core DRAM read", bytes / f[0] / 1e9 / dram,
                         bytes / f[1] / 1e9 / dram, bytes / f[2] / 1e9 / dram, bytes / f[3] / 1e9 / dram);
                snprintf(kn, sizeof kn, "%s, %d-bit products, 1 / 2 / 4 / 8 runs side by side forced",
                         dg == 2 ? "matvec_q8x2 (q8)" : "matvec_q8 (q8a8)", w ? 512 : 256);
                row(isa, th, kn, sz, fig, rt);
            }
        }
        // dg 1: matmul_q8 (8-bit activations); dg 2: a q8 (16-bit) batch, matmul_q8x2 over the
        // 2T digit rows (their sums stored per token), whose int8 work is twice the products.
        // AVX-512 times the q8 batch once more with the other way of forming dw * dx from its
        // power-of-two scales (vscalefps or vmulps, simd_q8_pow2_scalef): "dg 3" below.
        const int sf_def = simd_q8_pow2_scalef_on();
        for (int dgv = 1; dgv <= (k == SIMD_AVX512 ? 3 : 2); dgv++)
            for (int sh = 0; sh < 2; sh++) {
                const int dg = dgv == 3 ? 2 : dgv, sf = dgv == 3 ? !sf_def : sf_def;
                simd_q8_pow2_scalef(dgv == 3 ? (sf ? 1 : 2) : 0);
                Job j = {.K = K, .W = &Pg[sh], .X = dg == 2 ? &Xa16 : &Xa, .Y = Yg, .T = T};
                double s = INFINITY;
                for (int r = 0; r < (quick ? 2 : 6); r++) {   // alternate with the peak probes, best of each
                    if (vnni > 0) {
                        double v = probe_vnni_gops(8, pmin, &visa), m = probe_q8mix_gops(8, pmin);
                        if (v > vnni) vnni = v;
                        if (m > mix) mix = m;
                    }
                    if (k == SIMD_AVXVNNI) {
                        double v = probe_avxvnni_gops(8, pmin);
                        if (v > vex) vex = v;
                    }
                    double t1 = best_time(dg == 2 ? run_mm2 : run_mm, &j);
                    if (t1 < s) s = t1;
                }
                double gops = 2.0 * dg * T * GR[sh] * GC / s / 1e9;
                if (dg == 2) {
                    snprintf(sz, sizeof sz, "T=%zu tokens (%zu digit rows), %zux%zu", T, 2 * T, GR[sh], GC);
                    snprintf(fig, sizeof fig, "%.1f GOP/s int8 (%.1f GOP/s of products)", gops, gops / 2);
                } else {
                    snprintf(sz, sizeof sz, "T=%zu, %zux%zu", T, GR[sh], GC);
                    snprintf(fig, sizeof fig, "%.1f GOP/s", gops);
                }
                if (k == SIMD_AVXVNNI) snprintf(rt, sizeof rt, "%.2f of AVX-VNNI peak", gops / vex);
                else if (vnni > 0 && dg == 2 && k == SIMD_AVX512 && sf)   // vscalefps: not the op mix's multiply
                    snprintf(rt, sizeof rt, "%.2f of VNNI peak (no multiply in the float step)", gops / vnni);
                else if (vnni > 0)
                    snprintf(rt, sizeof rt, "%.2f of VNNI peak (%.2f of the op-mix ceiling)", gops / vnni, gops / mix);
                else snprintf(rt, sizeof rt, "%.2f of fp32 FMA peak", gops / fma);
                char kn2[160];
                if (dg == 1) snprintf(kn2, sizeof kn2, "matmul_q8 (q8a8: 8-bit activations)");
                else if (k == SIMD_AVX512)
                    snprintf(kn2, sizeof kn2, "matmul_q8x2 (q8: 16-bit activations), dw * dx by %s%s",
                             sf ? "vscalefps" : "vmulps", dgv == 3 ? " (forced)" : " (default here)");
                else snprintf(kn2, sizeof kn2, "matmul_q8x2 (q8: 16-bit activations)");
                row(isa, 1, kn2, sz, fig, rt);
            }
        simd_q8_pow2_scalef(0);
        if (k == SIMD_AVXVNNI) {
            snprintf(fig, sizeof fig, "%.1f GOP/s", vex);
            row("avxvnni", 1, "probe: int8 AVX-VNNI peak (interleaved with matmul_q8 batches)", "-", fig, "-");
        } else if (vnni > 0) {
            snprintf(fig, sizeof fig, "%.1f GOP/s", vnni);
            row(visa, 1, "probe: int8 VNNI peak (interleaved with matmul_q8 batches)", "-", fig, "-");
            snprintf(fig, sizeof fig, "%.1f GOP/s", mix);
            snprintf(rt, sizeof rt, "%.2f of VNNI peak", mix / vnni);
            row(visa, 1, "probe: block-scaled int8 op mix (interleaved with matmul_q8 batches)", "-", fig, rt);
#if PROBE_X86
            if (k == SIMD_AVX512) tile_anatomy(visa, vnni, quick ? 3 : 8, pmin);
#endif
            if (k == SIMD_AMX) {   // the tile unit's own limits on this format's 32-deep blocks
                double blk = 0, tdp = probe_amx_gops(quick ? 3 : 8, pmin, &blk);
                snprintf(fig, sizeof fig, "%.1f GOP/s", tdp);
                snprintf(rt, sizeof rt, "%.2f of VNNI peak", tdp / vnni);
                row("amx-int8", 1, "probe: AMX TDPBSUD peak, one 32-deep block per product (16 x 16 x 32)", "-", fig, rt);
                snprintf(fig, sizeof fig, "%.1f GOP/s", blk);
                snprintf(rt, sizeof rt, "%.2f of VNNI peak", blk / vnni);
                row("amx-int8", 1, "probe: AMX block product (tile loads, zero, TDPBSUD, 1 KiB int32 store), no float step",
                    "-", fig, rt);
            }
        }
        {   // transposed product (backward sweeps): y (T, 768) = G (T, 2048) W, W (2048, 768)
            size_t rows = 2048, cols = 768, nb = q8_nblocks(cols), ng = q8_nblocks(rows);
            BlockQ8 *B = malloc(rows * nb * sizeof *B);
            Q8Panels *P = &Pg[1];
            q8_unpack_panels(B, P->data, rows, cols);
            uint8_t *pt = malloc(q8_panels_t_bytes(rows, cols));
            float *sc = malloc(nb * ng * 32 * sizeof(float));
            q8_pack_panels_t(pt, sc, B, rows, cols, 0, q8_npanels(cols));
            Q8PanelsT Pt = {pt, sc, rows, cols, nb, ng, q8_npanels(cols)};
            Q8ActBuf vb = {0};
            Q8Act V;
            q8_act_quantize_t(&V, &vb, Xg, T, &Pt);
            Job j = {.K = K, .Wt = &Pt, .X = &V, .Y = Yg, .T = T};
            double s = best_time(run_mmt, &j);
            double gops = 2.0 * T * rows * cols / s / 1e9;
            snprintf(fig, sizeof fig, "%.1f GOP/s", gops);
            // (no op-mix fraction: this product has no scale multiply, so its own ceiling is higher)
            if (k == SIMD_AVXVNNI) snprintf(rt, sizeof rt, "%.2f of AVX-VNNI peak", gops / vex);
            else if (vnni > 0) snprintf(rt, sizeof rt, "%.2f of VNNI peak", gops / vnni);
            else snprintf(rt, sizeof rt, "-");
            row(isa, 1, "matmul_q8t (W^T g)", "T=64, (2048x768)^T", fig, rt);
            // sparse decoder reads: 64 active rows of a (16384, 768) decoder
            size_t F = 16384, D = 768, nbD = q8_nblocks(D), na = 64;
            BlockQ8 *dec = malloc(F * nbD * sizeof *dec);
            for (size_t i = 0; i < F * nbD; i++) {
                dec[i].d = 0.01f;
                for (int q = 0; q < 32; q++) dec[i].qs[q] = (int8_t)((int)(rnd() % 255) - 127);
            }
            int idx[64];
            float val[64];
            for (size_t i = 0; i < na; i++) {
                idx[i] = (int)(rnd() % F);
                val[i] = rndf();
            }
            Job jd = {.K = K, .dec = dec, .stride = nbD, .D = D, .nact = na, .idx = idx, .val = val, .Y = Yg};
            s = best_time(run_dec, &jd);
            snprintf(fig, sizeof fig, "%.1f ns/row, %.1f GB/s", s * 1e9 / na, na * nbD * sizeof(BlockQ8) / s / 1e9);
            row(isa, 1, "decode_rows_q8", "64 of 16384 rows, D=768", fig, "-");
            free(B); free(pt); free(sc); free(dec);
            q8_actbuf_free(&vb);
        }
    }
    mem_free(&pool, big, big_bytes(q8_panels_bytes(MR, MC)));
    for (int s = 0; s < 2; s++) mem_free(&pool, gb[s], big_bytes(q8_panels_bytes(GR[s], GC)));

#ifdef CT_HAVE_OPENBLAS
    openblas_set_num_threads(1);
    {
        const size_t MRF = quick ? MR : 65536;   // full run: 2.1 GB of fp32 (y holds MR >= MRF rows)
        size_t n = MRF * MC;
        float *Wf = mem_alloc(&pool, n * sizeof(float));
        if (Wf) {
            for (size_t i = 0; i < n; i++) Wf[i] = (float)((int)(i * 2654435761u >> 24) - 128) * 0.001f;
            Job j = {.Wf = Wf, .Xf = x, .Y = y, .rows = MRF, .cols = MC};
            double s = best_time(run_sgemv, &j);
            double fb = (double)n * sizeof(float);
            snprintf(sz, sizeof sz, "%zux%zu fp32 (%.0f MB)", MRF, MC, fb / 1e6);
            snprintf(fig, sizeof fig, "%.1f GB/s, %.1f GFLOP/s", fb / s / 1e9, 2.0 * n / s / 1e9);
            snprintf(rt, sizeof rt, "%.2f of 1-core DRAM read", fb / s / 1e9 / dram);
            row("openblas", 1, "sgemv", sz, fig, rt);
            mem_free(&pool, Wf, n * sizeof(float));
        }
    }
    for (int sh = 0; sh < 2; sh++) {
        float *Wf = malloc(GR[sh] * GC * sizeof(float));
        for (size_t i = 0; i < GR[sh] * GC; i++) Wf[i] = rndf();
        Job j = {.Wf = Wf, .Xf = Xg, .Y = Yg, .T = T, .rows = GR[sh], .cols = GC};
        double s = best_time(run_sgemm, &j);
        double gf = 2.0 * T * GR[sh] * GC / s / 1e9;
        snprintf(sz, sizeof sz, "T=%zu, %zux%zu fp32", T, GR[sh], GC);
        snprintf(fig, sizeof fig, "%.1f GFLOP/s", gf);
        snprintf(rt, sizeof rt, "%.2f of fp32 FMA peak", gf / fma);
        row("openblas", 1, "sgemm", sz, fig, rt);
        free(Wf);
    }
#else
    row("openblas", 1, "sgemv / sgemm", "-", "n/a (built without OpenBLAS)", "-");
#endif
    printf("\n");
    pool_destroy(tp2);
    q8_actbuf_free(&ab);
    q8_actbuf_free(&gab);
    q8_actbuf_free(&ab16);
    q8_actbuf_free(&gab16);
    mem_free(&pool, Yg, yg_bytes);
    free(x); free(y); free(Xg);
    mem_pool_free(&pool);
    return 0;
}
