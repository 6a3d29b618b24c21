// bench_bf16.c — bf16 weights: the kernels against this machine's limits (measured in the same
// run), and the ~100M-parameter Hugging Face model that `make bench` times end to end.
//
//   build/bench/bench_bf16 make-model F32DIR BF16DIR [--dim D] [--layers L] [--heads H]
//                          [--kv-heads K] [--hidden F] [--vocab V] [--ctx S] [--seed N]
//       A random LlamaForCausalLM (tied embeddings) in Hugging Face layout, written twice:
//       config.json + model.safetensors with F32 tensors, and the same weights rounded to BF16
//       (round to nearest even).  Weights ~ U(-a, a), a = sqrt(3 / fan_in) (embedding a = 1),
//       norm gains 1: activations stay O(1), as model_write_random does for llama2.c files.
//       Defaults: D=768, L=12, H=K=12, F=2048, V=32000, S=1024, seed 1 (~110M parameters).
//
//   build/bench/bench_bf16 [--quick] [--limits FILE]
//       Verifies every table first (bf16w == the fp32 kernels on the widened weights, bf16dot ==
//       scalar.c, bit for bit), then prints markdown rows (1 core unless stated):
//         probes       DRAM streaming read, fp32 FMA peak, VDPBF16PS peak (AVX512_BF16)
//         matvec       (16384 x 8192): fp32 (537 MB) vs bf16w / bf16dot (268 MB) -> GB/s and
//                      the fraction of the DRAM probe (decode is this product), 1 and 2 threads
//         matmul       64 tokens x (2048 x 768) and (768 x 768) -> GFLOP/s vs the peaks
//       --limits FILE writes "dram_gbs X" and "fma_gflops Y" (the forward rows' DRAM figure).
//       --quick: smaller matrices, shorter timings (smoke test).
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/probes.h"
#include "engine/common.h"
#include "engine/safetensors.h"
#include "engine/threads.h"
#include "simd/simd.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float rndf(void) { return (float)((rnd() >> 40) * (2.0 / 16777216.0) - 1.0); }   // U(-1, 1)

// ---- make-model -------------------------------------------------------------------------------
static int write_config(const char *dir, int D, int L, int H, int K, int F, int V, int S, const char *dtype) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return ct_error("%s: cannot write", path);
    fprintf(f,
            "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
            "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
            "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
            "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": 1e-05,\n"
            "  \"rope_theta\": 10000.0,\n  \"hidden_act\": \"silu\",\n  \"tie_word_embeddings\": true,\n"
            "  \"attention_bias\": false,\n  \"mlp_bias\": false,\n  \"torch_dtype\": \"%s\",\n"
            "  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n",
            D, F, L, H, K, D / H, V, S, dtype);
    return fclose(f) == 0 ? CT_OK : ct_error("%s: write failed", path);
}

static int make_model(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_bf16 make-model F32DIR BF16DIR [--dim D] [--layers L] [--heads H] "
                        "[--kv-heads K] [--hidden F] [--vocab V] [--ctx S] [--seed N]\n");
        return 2;
    }
    const char *dirs[2] = {argv[2], argv[3]};
    long D = 768, L = 12, H = 12, K = 12, F = 2048, V = 32000, S = 1024, seed = 1;
    for (int i = 4; i + 1 < argc; i += 2) {
        long *dst = !strcmp(argv[i], "--dim") ? &D : !strcmp(argv[i], "--layers") ? &L : !strcmp(argv[i], "--heads") ? &H
                  : !strcmp(argv[i], "--kv-heads") ? &K : !strcmp(argv[i], "--hidden") ? &F
                  : !strcmp(argv[i], "--vocab") ? &V : !strcmp(argv[i], "--ctx") ? &S : !strcmp(argv[i], "--seed") ? &seed : NULL;
        char *end;
        if (!dst || (*dst = strtol(argv[i + 1], &end, 10)) <= 0 || *end) {
            fprintf(stderr, "bench_bf16 make-model: bad option %s %s\n", argv[i], argv[i + 1]);
            return 2;
        }
    }
    if ((argc - 4) % 2 || D % H || H % K) {
        fprintf(stderr, "bench_bf16 make-model: options come in pairs; heads must divide dim, kv-heads heads\n");
        return 2;
    }
    g_rng = (uint64_t)seed * 0x2545F4914F6CDD1Dull;
    size_t d = (size_t)D, f = (size_t)F, dh = d / (size_t)H, dkv = (size_t)K * dh, v = (size_t)V;
    // Tensors in HF order, each its own allocation (written, then freed after both files).
    int n = 2 + 9 * (int)L;
    StWriteItem *it = calloc((size_t)n, sizeof *it);
    char (*names)[96] = calloc((size_t)n, 96);
    float **data = calloc((size_t)n, sizeof *data);
    int k = 0;
#define TENSOR(rows, cols, amp, ...)                                                               \
    do {                                                                                           \
        snprintf(names[k], 96, __VA_ARGS__);                                                       \
        size_t r_ = (rows), c_ = (cols), n_ = r_ * (c_ ? c_ : 1);                                 \
        data[k] = malloc(n_ * sizeof(float));                                                      \
        if (!data[k]) return fprintf(stderr, "bench_bf16: out of memory\n"), 1;                    \
        for (size_t i_ = 0; i_ < n_; i_++) data[k][i_] = (amp) > 0 ? (amp) * rndf() : 1.0f;        \
        it[k] = (StWriteItem){.name = names[k], .ndim = c_ ? 2 : 1, .shape = {r_, c_}, .data = data[k]}; \
        k++;                                                                                       \
    } while (0)
    float a_in = sqrtf(3.0f / (float)d), a_hid = sqrtf(3.0f / (float)f);
    TENSOR(v, d, 1.0f, "model.embed_tokens.weight");
    for (long l = 0; l < L; l++) {
        TENSOR(d, 0, 0.0f, "model.layers.%ld.input_layernorm.weight", l);
        TENSOR(d, d, a_in, "model.layers.%ld.self_attn.q_proj.weight", l);
        TENSOR(dkv, d, a_in, "model.layers.%ld.self_attn.k_proj.weight", l);
        TENSOR(dkv, d, a_in, "model.layers.%ld.self_attn.v_proj.weight", l);
        TENSOR(d, d, a_in, "model.layers.%ld.self_attn.o_proj.weight", l);
        TENSOR(d, 0, 0.0f, "model.layers.%ld.post_attention_layernorm.weight", l);
        TENSOR(f, d, a_in, "model.layers.%ld.mlp.gate_proj.weight", l);
        TENSOR(f, d, a_in, "model.layers.%ld.mlp.up_proj.weight", l);
        TENSOR(d, f, a_hid, "model.layers.%ld.mlp.down_proj.weight", l);
    }
    TENSOR(d, 0, 0.0f, "model.norm.weight");
#undef TENSOR
    size_t params = 0;
    for (int i = 0; i < k; i++) params += it[i].shape[0] * (it[i].ndim == 2 ? it[i].shape[1] : 1);
    int rc = 0;
    for (int w = 0; w < 2 && !rc; w++) {
        mkdir(dirs[w], 0755);
        for (int i = 0; i < k; i++) it[i].dtype = w ? ST_BF16 : ST_F32;
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors", dirs[w]);
        if (write_config(dirs[w], (int)D, (int)L, (int)H, (int)K, (int)F, (int)V, (int)S, w ? "bfloat16" : "float32") ||
            st_write(path, it, k)) {
            fprintf(stderr, "bench_bf16 make-model: %s\n", ct_errmsg());
            rc = 1;
        } else {
            fprintf(stderr, "wrote %s: LlamaForCausalLM D=%ld L=%ld H=%ld Hkv=%ld F=%ld V=%ld, %.1fM parameters, %s\n",
                    dirs[w], D, L, H, K, F, V, (double)params / 1e6, w ? "BF16" : "F32");
        }
    }
    for (int i = 0; i < k; i++) free(data[i]);
    free(data), free(names), free(it);
    return rc;
}

// ---- kernels ----------------------------------------------------------------------------------
// The machine may be shared: time short batches and keep the best (as bench_q8.c does).
static double g_batch_s = 0.004, g_budget_s = 0.3;
static int g_min_batches = 8;
static char g_cpu[128];

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

static void row(const char *isa, int th, const char *what, const char *sizes, const char *fig, const char *ratio) {
    printf("| %s | %s | %d | %s | %s | %s | %s |\n", g_cpu, isa, th, what, sizes, fig, ratio);
    fflush(stdout);
}

// VDPBF16PS peak of one core (a pair multiply-add counts 4 flops).  Its latency is longer
// than FMA's: 16 chains measured 0.4 of the rate 24 reach, so 24 independent chains, unrolled
// (an accumulator array left in memory would add a store-load round trip per step).
#if PROBE_X86
__attribute__((target("avx512f,avx512bf16"))) static double probe_dpbf16_avx512(long iters) {
    __m512 a[24];
    for (int k = 0; k < 24; k++) a[k] = _mm512_set1_ps(0.001f * (float)k);
    // tiny products (2^-20 each): the sums stay normal and far from overflow
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3580);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 24
        for (int k = 0; k < 24; k++) a[k] = _mm512_dpbf16_ps(a[k], x, x);
    }
    __m512 s = a[0];
    for (int k = 1; k < 24; k++) s = _mm512_add_ps(s, a[k]);
    probe_sink += (uint64_t)_mm512_reduce_add_ps(s);
    return (double)iters * 24 * 16 * 4;
}
#endif
static double probe_dpbf16_gflops(int runs, double min_s) {
#if PROBE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16"))
        return probe_best_rate(probe_dpbf16_avx512, runs, min_s);
#endif
    return 0;
}

typedef enum { K_F32 = 0, K_BF16W, K_BF16DOT } Kind;
static const char *const kind_name[] = {"matvec_f32", "matvec_bf16w", "matvec_bf16dot"};
static const char *const kind_mm[] = {"matmul_f32", "matmul_bf16w", "matmul_bf16dot"};

typedef struct Job {
    const SimdKernels *K;
    Kind kind;
    ThreadPool *pool;
    int nt;
    const float *Wf;
    const uint16_t *Wb;
    const float *X;
    float *Y;
    size_t T, rows, cols;
} Job;

static void mv_task(void *c, int i, int n) {
    Job *j = c;
    size_t r0 = pool_split(j->rows, i, n), r1 = pool_split(j->rows, i + 1, n);
    if (j->kind == K_F32) j->K->matvec_f32(j->Y + r0, j->Wf + r0 * j->cols, j->X, r1 - r0, j->cols);
    else (j->kind == K_BF16W ? j->K->matvec_bf16w : j->K->matvec_bf16dot)(j->Y + r0, j->Wb + r0 * j->cols, j->X, r1 - r0, j->cols);
}
static void run_mv(void *c) { Job *j = c; pool_run(j->pool, mv_task, j, j->nt); }
static void run_mm(void *c) {
    Job *j = c;
    if (j->kind == K_F32) j->K->matmul_f32(j->Y, j->Wf, j->X, j->T, j->rows, j->cols);
    else (j->kind == K_BF16W ? j->K->matmul_bf16w : j->K->matmul_bf16dot)(j->Y, j->Wb, j->X, j->T, j->rows, j->cols);
}

// bf16 values of random U(-1, 1) floats, and their widened fp32 copy (w may be NULL).
static void fill_bf16(uint16_t *b, float *w, size_t n) {
    for (size_t i = 0; i < n; i++) {
        b[i] = st_f32_to_bf16(rndf());
        if (w) w[i] = st_bf16_to_f32(b[i]);
    }
}

// Every table bit for bit: bf16w against its own fp32 kernels on the widened weights, bf16dot
// against scalar.c.  Returns the number of failures.
static int verify(void) {
    size_t rows = 77, cols = 333, T = 9;
    uint16_t *Wb = malloc(rows * cols * 2);
    float *Wf = malloc(rows * cols * 4), *X = malloc(T * cols * 4), *a = malloc(T * rows * 4), *b = malloc(T * rows * 4);
    float *dref = malloc(T * rows * 4);
    fill_bf16(Wb, Wf, rows * cols);
    for (size_t i = 0; i < T * cols; i++) X[i] = rndf();
    simd_kernels_for(SIMD_SCALAR)->matmul_bf16dot(dref, Wb, X, T, rows, cols);
    int fails = 0;
    for (int k = 0; k < SIMD_NISA; k++) {
        const SimdKernels *K = simd_kernels_for((SimdIsa)k);
        if (!K) continue;
        K->matmul_f32(a, Wf, X, T, rows, cols);
        K->matmul_bf16w(b, Wb, X, T, rows, cols);
        if (memcmp(a, b, T * rows * 4)) fprintf(stderr, "bench_bf16: %s matmul_bf16w != matmul_f32 on the widened weights\n", K->name), fails++;
        K->matvec_bf16w(b, Wb, X, rows, cols);
        if (memcmp(a, b, rows * 4)) fprintf(stderr, "bench_bf16: %s matvec_bf16w != matmul_f32 row 0\n", K->name), fails++;
        K->matmul_bf16dot(b, Wb, X, T, rows, cols);
        if (memcmp(dref, b, T * rows * 4)) fprintf(stderr, "bench_bf16: %s matmul_bf16dot != scalar.c\n", K->name), fails++;
        double err = 0, mag = 0;   // bf16dot close to the fp32 product (activation rounding only)
        for (size_t i = 0; i < T * rows; i++) err += fabs((double)b[i] - a[i]), mag += fabs(a[i]);
        if (!(err <= 0.01 * mag)) fprintf(stderr, "bench_bf16: %s bf16dot too far from fp32 (%.3g)\n", K->name, err / mag), fails++;
    }
    free(Wb), free(Wf), free(X), free(a), free(b), free(dref);
    return fails;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "make-model")) return make_model(argc, argv);
    int quick = 0;
    const char *limits = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--limits") && i + 1 < argc) limits = argv[++i];
        else {
            fprintf(stderr, "usage: bench_bf16 [--quick] [--limits FILE] | make-model F32DIR BF16DIR [...]\n"
                            "unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (quick) g_budget_s = 0.1, g_min_batches = 3;
    (void)probe_vnni_gops;   // probes.h's int8 probe: not a limit of these kernels
    probe_cpu_model(g_cpu, sizeof g_cpu);
    if (verify()) return 1;

    // ---- limits, same run ----
    int pruns = quick ? 3 : 10;
    size_t pbytes = quick ? (size_t)256 << 20 : probe_dram_bytes();
    double dram = probe_dram_read_gbs(pbytes, pruns);
    const char *fisa = "?";
    double fma = probe_fma_gflops(pruns * 8, 0.004, &fisa);
    double dpb = probe_dpbf16_gflops(pruns * 8, 0.004);
    char sz[128], fig[96], rt[96], psz[64];
    printf("### bf16 weight kernels vs this machine's limits (same run)\n\n");
    printf("| CPU | ISA | threads | kernel | sizes | figure | ratio |\n|---|---|---|---|---|---|---|\n");
    snprintf(psz, sizeof psz, "%zu MiB buffer", pbytes >> 20);
    snprintf(fig, sizeof fig, "%.1f GB/s", dram);
    row(probe_read_isa(), 1, "probe: DRAM streaming read", psz, fig, "-");
    snprintf(fig, sizeof fig, "%.1f GFLOP/s", fma);
    row(fisa, 1, "probe: fp32 FMA peak", "-", fig, "-");
    snprintf(fig, sizeof fig, dpb > 0 ? "%.1f GFLOP/s" : "n/a (no AVX512_BF16)", dpb);
    row("avx512bf16", 1, "probe: VDPBF16PS peak", "-", fig, "-");

    // decode-sized matvec: far beyond the caches
    size_t MR = quick ? 4096 : 16384, MC = 8192, n = MR * MC;
    float *Wf = malloc(n * 4), *x = malloc(MC * 4), *y = malloc(MR * 4);
    uint16_t *Wb = malloc(n * 2);
    // GEMM shapes: 64 tokens (a prefill chunk) against a layer's matrices
    size_t T = 64, GR[2] = {2048, 768}, GC = 768;
    float *Xg = malloc(T * GC * 4), *Yg = malloc(T * 2048 * 4), *Gf = malloc(2048 * GC * 4);
    uint16_t *Gb = malloc(2048 * GC * 2);
    if (!Wf || !x || !y || !Wb || !Xg || !Yg || !Gf || !Gb) {
        fprintf(stderr, "bench_bf16: out of memory\n");
        return 1;
    }
    fill_bf16(Wb, Wf, n);   // the fp32 copy holds the same values: only the bytes differ
    fill_bf16(Gb, Gf, 2048 * GC);
    for (size_t i = 0; i < MC; i++) x[i] = rndf();
    for (size_t i = 0; i < T * GC; i++) Xg[i] = rndf();
    ThreadPool *tp2 = pool_create(2);
    const SimdKernels *S = simd_kernels_for(SIMD_SCALAR);

    for (int k = SIMD_NISA - 1; k > 0; k--) {   // vector tables, best first
        const SimdKernels *K = simd_kernels_for((SimdIsa)k);
        if (!K) continue;
        int native_dot = K->matmul_bf16dot != S->matmul_bf16dot;
        for (int kind = K_F32; kind <= K_BF16DOT; kind++) {
            if (kind == K_BF16DOT && !native_dot) continue;   // the scalar loop: not worth timing
            double bytes = (double)n * (kind == K_F32 ? 4 : 2);
            for (int th = 1; th <= 2; th++) {
                Job j = {.K = K, .kind = (Kind)kind, .pool = th == 2 ? tp2 : NULL, .nt = th, .Wf = Wf, .Wb = Wb,
                         .X = x, .Y = y, .rows = MR, .cols = MC};
                double s = INFINITY;
                if (th == 1) {   // alternate DRAM probe passes and product passes: the same machine
                    double t0 = ct_now();
                    for (int r = 0; r < (quick ? 3 : 5) || ct_now() - t0 < (quick ? 0.3 : 1.0); r++) {
                        double g = probe_dram_read_gbs(pbytes, 1);
                        if (g > dram) dram = g;
                        double t1 = ct_now();
                        run_mv(&j);
                        double dt = ct_now() - t1;
                        if (dt < s) s = dt;
                        if (r > 100) break;
                    }
                } else {
                    s = best_time(run_mv, &j);
                }
                snprintf(sz, sizeof sz, "%zux%zu (%.0f MB)", MR, MC, bytes / 1e6);
                snprintf(fig, sizeof fig, "%.1f GB/s, %.2f ms", bytes / s / 1e9, s * 1e3);
                snprintf(rt, sizeof rt, "%.2f of 1-core DRAM read", bytes / s / 1e9 / dram);
                row(K->name, th, kind_name[kind], sz, fig, rt);
            }
        }
        for (int sh = 0; sh < 2; sh++)
            for (int kind = K_F32; kind <= K_BF16DOT; kind++) {
                if (kind == K_BF16DOT && !native_dot) continue;
                Job j = {.K = K, .kind = (Kind)kind, .Wf = Gf, .Wb = Gb, .X = Xg, .Y = Yg, .T = T, .rows = GR[sh], .cols = GC};
                double s = best_time(run_mm, &j), gf = 2.0 * T * GR[sh] * GC / s / 1e9;
                snprintf(sz, sizeof sz, "T=%zu, %zux%zu", T, GR[sh], GC);
                snprintf(fig, sizeof fig, "%.1f GFLOP/s", gf);
                if (kind == K_BF16DOT && dpb > 0) snprintf(rt, sizeof rt, "%.2f of VDPBF16PS peak, %.2f x FMA peak", gf / dpb, gf / fma);
                else snprintf(rt, sizeof rt, "%.2f of fp32 FMA peak", gf / fma);
                row(K->name, 1, kind_mm[kind], sz, fig, rt);
            }
    }
    snprintf(fig, sizeof fig, "%.1f GB/s", dram);
    row(probe_read_isa(), 1, "probe: DRAM streaming read (best, interleaved with the matvec passes)", psz, fig, "-");
    printf("\n");
    if (limits) {
        FILE *f = fopen(limits, "w");
        if (!f || fprintf(f, "dram_gbs %.2f\nfma_gflops %.2f\ndpbf16_gflops %.2f\n", dram, fma, dpb) < 0 || fclose(f)) {
            fprintf(stderr, "bench_bf16: cannot write %s\n", limits);
            return 1;
        }
    }
    pool_destroy(tp2);
    free(Wf), free(x), free(y), free(Wb), free(Xg), free(Yg), free(Gf), free(Gb);
    return 0;
}
