// bench_attr.c — attribution benchmarks for `make bench` (bench/run.sh "attribution" section):
// graph time, CPU time and peak RSS of `ctrace attribute`'s pipeline (replacement model ->
// budgeted rows by backward sweeps -> pruning and scores), the sweep's FLOP rate against the
// fp32 FMA peak measured in the same run, and the memory model for long prompts.
//
//   bench_attr probe                         fp32 FMA peak of one core (GFLOP per CPU second)
//   bench_attr make-clt MODEL DIR --features F --fire X [--dtype f32|bf16] [--seed S]
//              (--tokenizer TOK --prompt TEXT | --random-tokens T)
//        a random JumpReLU CLT in the circuit-tracer layout (clt_alloc + seeded fill + clt_save):
//        W_enc ~ U with std 1/sqrt(D), W_dec std 0.5/sqrt(D), b_dec std 0.03, b_enc 0, and per
//        layer the (1 - X) quantile of the pre-activations on the calibration prompt as the
//        threshold (times a per-feature jitter in [0.8, 1.2]), so about X of the
//        (position, feature) pairs fire.  Prints the creation and save times.
//   bench_attr runs MODEL CLT --run T:FIRE:M[:sweep]... [--tokenizer TOK --prompt TEXT]
//              [--seq-len S] [--batch B] [--threads N] [--fma-gflops G] [--label NAME]
//              [--mem-limit-gib G] [--extrapolate T1,T2] [--eager] [--seed S]
//        loads the model and the transcoder once (load time and RSS reported), then per --run:
//        a prompt of T tokens (BOS + seeded random ids; T = 0: the --prompt text), thresholds
//        re-calibrated so ~FIRE fire (FIRE = 0: the file's), budget M (--max-feature-nodes);
//        replacement_build, attribute_graph, prune_graph timed (wall and CPU), peak RSS
//        (VmHWM, reset through /proc/self/clear_refs before each run), the rows' FLOPs (formula
//        below) and rates against --fma-gflops (one core; x threads for wall rates).
//        ":sweep" adds one bare sweep of `batch` feature rows (sweeper_rows alone).
//        Then the memory model of every run (terms below) next to its measured peak;
//        --mem-limit-gib: the largest T whose predicted peak fits (at the last run's budget and
//        at the default 7500); --extrapolate: rows FLOPs, times and peak at longer prompts.
//        --seq-len raises the model's context in memory (RoPE has no learned positions; the
//        checkpoints' headers say 256 / 512).  --eager converts decoders to fp32 at load.
//
// Memory model (engine/forward.c, replacement.c, attribute.c; bytes at the peak, the end of
// attribute_graph), a = active features per position, n_act = a (T - 1), B = batch,
// b = rows in use, K = logit rows, M = feature nodes, rho = mean share of n_act a kept row spans:
//   capture       4 (T (L+1) D + 4 T L D + T D + 2 T L + T) + 4 L H T^2       [T, T^2]
//   replacement   8 L T D + 16 n_act                                           [T]
//   sweeper       4 (L Dq D + L D Dkv) + 4 T B D + 4 T b Dq + 4 T (B + b)      [T]
//                 + per thread: gathered sources, products, 8 positions' gv rows, the mix's
//                 16 x 8 coefficient rows of Dq
//   rows swept    4 (b + K) (n_act + L T + T)                                  [T]
//   kept rows     4 M (rho n_act + (L+1) T)  (budget only: the partial influence) [M x T]
//   budget arrays 49 n_act;  CSR 8 nnz + 48 N                                  [T]
// The patterns (T^2) win for small budgets, the kept rows (M x T) for the default budget.
//
// FLOPs of one row (a target at layer l_b, position p_b; a logit row has l_b = L), counted
// from the sweep in engine/attribute_sweep.h (a multiply-add = 2 FLOPs):
//   for every layer l <= min(l_b, L-1) and position p <= p_b:
//       2 D Dq                   GO = G Wo^T                           (pos_task)
//     + 2 D Dkv + 2 D            G += inv_rms (GV (rms ⊙ Wv))          (mix_task)
//     + [l < l_b] (2 D + 2) n(l, p)   sources: Y = G S^T over n(l, p) = 1 error row + the active
//                                features (l_s <= l, p), then row += a Y
//   for every layer l <= min(l_b, L-1):   2 Dq (p_b + 1)(p_b + 2) / 2    mixing through the
//                                frozen patterns: every pair t <= p <= p_b, all heads
//   + 2 D (p_b + 1)              token columns
// The rows of a graph are its K logit rows and one row per feature node (each visited feature
// is swept exactly once), so the total follows from the node table.  "rows GFLOP/s" divides
// it by the whole rows phase (sweeps + budget re-ranking + CSR assembly); --sweep times the
// sweep alone.
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"   // probes.h: only the FMA probe is used here
#include "bench/probes.h"
#pragma GCC diagnostic pop
#include "engine/attribute.h"
#include "engine/clt.h"
#include "engine/common.h"
#include "engine/graph.h"
#include "engine/model.h"
#include "engine/prune.h"
#include "engine/replacement.h"
#include "engine/threads.h"
#include "engine/tokenizer.h"
#include "simd/simd.h"

// ---- small helpers ----------------------------------------------------------------------------
static double cpu_seconds(void) {   // user + system time of every thread of this process
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

// VmHWM / VmRSS from /proc/self/status in bytes (0 when unreadable).
static size_t proc_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t v = 0, n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) v = (size_t)strtoull(line + n, NULL, 10);
    fclose(f);
    return v * 1024;
}
static size_t peak_rss(void) {
    size_t v = proc_status_kb("VmHWM:");
    return v ? v : ct_peak_rss();
}

static uint64_t g_rng;
static uint64_t rnd(void) {   // splitmix64
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
// Uniform with the given standard deviation: U(-a, a), a = sqrt(3) std.
static void fill_uniform(float *x, size_t n, double std) {
    double a = sqrt(3.0) * std * (2.0 / 16777216.0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(((double)(rnd() >> 40) - 8388608.0) * a);
}

static int fail(const char *what) {
    fprintf(stderr, "bench_attr %s: %s\n", what, ct_errmsg());
    return 1;
}

// ---- prompts ------------------------------------------------------------------------------------
typedef struct Prompt {
    int *ids;
    int T;
} Prompt;

// Text through the tokenizer (with BOS), or T seeded random ids after BOS.
static int prompt_make(Prompt *pr, const Model *m, const char *tok_path, const char *text, int T,
                       uint64_t seed) {
    int V = m->c.vocab_size;
    pr->ids = NULL, pr->T = 0;
    if (text) {
        Tokenizer tk;
        if (tokenizer_load(&tk, tok_path, V) != CT_OK) return CT_ERR;
        int cap = 4096, n = 0;
        pr->ids = malloc(sizeof(int) * (size_t)cap);
        int rc = pr->ids ? tokenizer_encode(&tk, text, 1, 0, pr->ids, cap, &n) : ct_error("out of memory");
        tokenizer_free(&tk);
        pr->T = n;
        return rc;
    }
    if (T < 1) return ct_error("--random-tokens: expected T >= 1, got %d", T);
    if (!(pr->ids = malloc(sizeof(int) * (size_t)T))) return ct_error("out of memory");
    g_rng = seed;
    pr->ids[0] = TOK_BOS;
    for (int p = 1; p < T; p++) pr->ids[p] = 3 + (int)(rnd() % (uint64_t)(V - 3));   // past the specials
    pr->T = T;
    return CT_OK;
}

// ---- thresholds ------------------------------------------------------------------------------
static void swapf(float *a, float *b) {
    float t = *a;
    *a = *b;
    *b = t;
}
// k-th smallest of x (n), reordering x (quickselect, median-of-three pivots).
static float select_kth(float *x, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2;
        if (x[mid] < x[lo]) swapf(&x[mid], &x[lo]);
        if (x[hi] < x[lo]) swapf(&x[hi], &x[lo]);
        if (x[hi] < x[mid]) swapf(&x[hi], &x[mid]);
        float pv = x[mid];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (x[i] < pv) i++;
            while (x[j] > pv) j--;
            if (i <= j) {
                swapf(&x[i], &x[j]);
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return x[k];
    }
    return x[k];
}

// JumpReLU thresholds of every layer: the (1 - frac) quantile of the pre-activations over
// positions 1..min(T, 129)-1 of the prompt (at most 128 positions: calibration stays cheap for
// long prompts) times a per-feature jitter in [0.8, 1.2] drawn from seed (the same features
// get the same jitter whatever frac).
static int calibrate(Clt *c, const Model *m, const Prompt *pr, double frac, uint64_t seed, ThreadPool *pool) {
    int L = c->L, F = c->F, D = c->D, T = pr->T < 129 ? pr->T : 129;
    if (T < 2) return ct_error("calibration needs a prompt of >= 2 tokens");
    Capture cap;
    RunState rs;
    if (capture_init(&cap, &m->c, T, CAP_RESID) != CT_OK) return CT_ERR;
    if (runstate_init(&rs, &m->c, T) != CT_OK) {
        capture_free(&cap);
        return CT_ERR;
    }
    int rc = model_forward_seq(m, &rs, pr->ids, T, NULL, &cap, pool);
    size_t n = (size_t)(T - 1) * (size_t)F;
    float *X = malloc(sizeof(float) * (size_t)(T - 1) * (size_t)D);
    float *pre = malloc(sizeof(float) * n), *act = malloc(sizeof(float) * n);
    float *jit = malloc(sizeof(float) * (size_t)F);
    if (rc == CT_OK && (!X || !pre || !act || !jit)) rc = ct_error("calibration: out of memory");
    for (int l = 0; rc == CT_OK && l < L; l++) {
        for (int p = 1; p < T; p++)
            memcpy(X + (size_t)(p - 1) * D, cap.resid_mid + ((size_t)p * L + l) * D, sizeof(float) * (size_t)D);
        clt_encode_batch(c, l, X, T - 1, pre, act);
        float q = select_kth(pre, n, (size_t)((1.0 - frac) * (double)(n - 1)));
        g_rng = seed * 1000003u + (uint64_t)l;
        for (int f = 0; f < F; f++) jit[f] = 0.8f + 0.4f * (float)((double)(rnd() >> 11) / 9007199254740992.0);
        for (int f = 0; f < F; f++) c->layers[l].threshold[f] = q > 0 ? q * jit[f] : 1e-3f * jit[f];
    }
    free(X), free(pre), free(act), free(jit);
    runstate_free(&rs);
    capture_free(&cap);
    return rc;
}

// ---- make-clt ---------------------------------------------------------------------------------
static int cmd_make_clt(int argc, char **argv) {
    const char *model = NULL, *dir = NULL, *tok = NULL, *text = NULL;
    int F = 0, T = 64;
    double fire = 0.07;
    uint64_t seed = 1;
    StDtype dt = ST_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--features") && v) F = atoi(v), i++;
        else if (!strcmp(a, "--fire") && v) fire = atof(v), i++;
        else if (!strcmp(a, "--seed") && v) seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--tokenizer") && v) tok = v, i++;
        else if (!strcmp(a, "--prompt") && v) text = v, i++;
        else if (!strcmp(a, "--random-tokens") && v) T = atoi(v), i++;
        else if (!strcmp(a, "--dtype") && v) {
            if (!strcmp(v, "bf16")) dt = ST_BF16;
            else if (strcmp(v, "f32")) { fprintf(stderr, "bench_attr make-clt: --dtype f32|bf16, got %s\n", v); return 2; }
            i++;
        } else if (a[0] != '-' && !model) model = a;
        else if (a[0] != '-' && !dir) dir = a;
        else { fprintf(stderr, "bench_attr make-clt: bad argument %s\n", a); return 2; }
    }
    if (!model || !dir || F < 1 || !(fire > 0 && fire < 0.5) || (text && !tok)) {
        fprintf(stderr, "usage: bench_attr make-clt MODEL DIR --features F --fire X [--dtype f32|bf16] [--seed S]\n"
                        "                  (--tokenizer TOK --prompt TEXT | --random-tokens T)\n");
        return 2;
    }
    double t0 = ct_now();
    Model m;
    if (model_load_llama2c(&m, model) != CT_OK) return fail("make-clt");
    Prompt pr;
    if (prompt_make(&pr, &m, tok, text, T, seed + 7) != CT_OK) { model_free(&m); return fail("make-clt"); }
    int L = m.c.n_layers, D = m.c.dim;
    Clt c;
    CltActivation act = {CLT_ACT_JUMPRELU, 0};
    ThreadPool *pool = pool_create(0);
    int rc = 1;
    if (clt_alloc(&c, L, D, F, CLT_CROSS_LAYER, act, 0) != CT_OK) goto out;
    g_rng = seed;
    for (int l = 0; l < L; l++) {
        CltLayer *ly = &c.layers[l];
        fill_uniform(ly->W_enc, (size_t)F * D, 1.0 / sqrt((double)D));
        fill_uniform(ly->b_dec, (size_t)D, 0.03);
        fill_uniform(ly->W_dec, (size_t)F * (size_t)ly->n_out * D, 0.5 / sqrt((double)D));
    }
    double t1 = ct_now();
    if (calibrate(&c, &m, &pr, fire, seed, pool) != CT_OK) { clt_free(&c); goto out; }
    double t2 = ct_now();
    if (clt_save(&c, dir, dt) != CT_OK) { clt_free(&c); goto out; }
    double t3 = ct_now();
    fprintf(stderr, "bench_attr make-clt: %s: L=%d D=%d F=%d (%.2f G parameters) %s; fill %.1f s, calibrate "
                    "%.1f s (fire %.3f on %d tokens), save %.1f s\n", dir, L, D, F, (double)c.n_params / 1e9,
            dt == ST_BF16 ? "bf16" : "f32", t1 - t0, t2 - t1, fire, pr.T, t3 - t2);
    clt_free(&c);
    rc = 0;
out:
    if (rc) fail("make-clt");
    pool_destroy(pool);
    free(pr.ids);
    model_free(&m);
    return rc;
}

// ---- FLOP count (header formula) ----------------------------------------------------------------
typedef struct FlopModel {
    int L, T, D, Dq, Dkv;
    double *pre;   // (L, T) prefix over positions of n(l, p) = 1 + active features (l_s <= l, p)
} FlopModel;

static int flops_init(FlopModel *fm, const Replacement *r) {
    const Config *c = &r->m->c;
    fm->L = r->L, fm->T = r->T, fm->D = r->D, fm->Dq = c->n_heads * c->head_dim, fm->Dkv = c->n_kv_heads * c->head_dim;
    size_t T = (size_t)r->T;
    if (!(fm->pre = malloc(sizeof(double) * (size_t)r->L * T))) return ct_error("out of memory");
    int plt = r->clt->kind == CLT_PER_LAYER;
    for (int l = 0; l < r->L; l++) {
        double run = 0;
        for (size_t p = 0; p < T; p++) {
            int n = 1;
            for (int ls = plt ? l : 0; ls <= l; ls++) n += r->lp_start[(size_t)ls * T + p + 1] - r->lp_start[(size_t)ls * T + p];
            run += n;
            fm->pre[(size_t)l * T + p] = run;
        }
    }
    return CT_OK;
}

static double flops_row(const FlopModel *fm, int lb, int pb) {
    double D = fm->D, Dq = fm->Dq, Dkv = fm->Dkv, P = pb + 1.0;
    int ltop = lb < fm->L ? lb : fm->L - 1;
    double nl = ltop + 1.0, src = 0;
    for (int l = 0; l < lb && l < fm->L; l++) src += fm->pre[(size_t)l * fm->T + (size_t)pb];
    return nl * P * (2 * D * Dq + 2 * D * Dkv + 2 * D) + (2 * D + 2) * src + nl * 2 * Dq * P * (P + 1) / 2 +
           2 * D * P;
}

// ---- memory model -------------------------------------------------------------------------------
// Bytes that `ctrace attribute` holds at its peak (the end of attribute_graph: every buffer
// below is alive while the CSR is assembled), term by term from engine/forward.c (capture),
// engine/replacement.c and engine/attribute.c (sweeper, rows).  "T" marks the terms that grow
// with the prompt; n_act ~ a (T - 1) grows with T too.
typedef struct MemTerms {
    double capture;   // CAP_ALL: (T (L+1) D + 4 T L D + T D + 2 T L + T) floats   [T]
    double att;       //   of which the patterns L H T^2 floats                      [T^2]
    double repl;      // recon + eps 2 L T D floats, active lists 16 B x n_act         [T]
    double sweeper;   // WoT, WvT; G (T, B, D) + GO (T, b, Dq), slot maps T (B + b) ints,
                      // b = rows in use (B, or fewer when the budget is small)           [T x B]
    double scratch;   // rows being swept: max(K, min(B, M)) x nsrc floats,
                      // nsrc = n_act + L T + T; logit rows K x nsrc                    [T]
    double kept;      // budget: each visited feature's row over lower-layer features, errors,
                      // tokens: sum (hi_s + (L+1) T) floats ~ M (rho n_act + (L+1) T)   [M x T]
    double budget;    // per active feature: frow, fden, I, rank, queue, visited, newidx  [T]
    double csr;       // sp_col + sp_val 8 B x nnz, sp_row 8 B x N, nodes                [M x (M + T)]
    double total;
} MemTerms;

typedef struct MemIn {
    int L, D, Dq, Dkv, H, T, K, M, B, nt;   // M: feature nodes (visited)
    double n_act, kept_floats, nnz;
} MemIn;

static void mem_model(const MemIn *in, MemTerms *o) {
    double L = in->L, D = in->D, T = in->T, F4 = 4;
    double B = in->B, nsrc = in->n_act + L * T + T;
    o->att = L * in->H * T * T * F4;
    o->capture = (T * (L + 1) * D + 4 * T * L * D + T * D + 2 * T * L + T) * F4 + o->att;
    o->repl = 2 * L * T * D * F4 + 16 * in->n_act + (L * T + 1) * 4;
    // rows a sweep holds: every buffer sized for B rows is touched only for the rows in use,
    // except G and the slot map row_slot, which are cleared for all B rows
    double swept = in->M < in->B ? in->M : in->B;
    if (swept < in->K) swept = in->K;
    double srcchunk = (128 << 10) / (D * F4);
    o->sweeper = (L * in->Dq * D + L * D * in->Dkv + T * D) * F4 + T * B * D * F4 + T * swept * in->Dq * F4 +
                 T * (B + swept) * 4 +
                 in->nt * (srcchunk * D + swept * srcchunk + 8 * swept * in->Dkv + swept * D + 16 * 8 * in->Dq) * F4;
    o->scratch = (swept + in->K) * nsrc * F4;
    o->kept = in->kept_floats * F4;
    o->budget = 49 * in->n_act;
    double N = in->M + L * T + T + in->K;
    o->csr = 8 * in->nnz + 8 * N + 40 * N;
    o->total = o->capture + o->repl + o->sweeper + o->scratch + o->kept + o->budget + o->csr;
}

// ---- runs ---------------------------------------------------------------------------------------
typedef struct RunSpec {
    int T;          // prompt length (0: the --prompt text)
    double fire;    // > 0: re-calibrate thresholds on the prompt; 0: the file's
    int M;          // feature budget
    int sweep;      // also time one bare sweep
} RunSpec;

typedef struct RunOut {   // what the memory table and the extrapolation need
    int T, M, nodes, K, B;
    double n_act, kept_floats, nnz, rho;   // rho: mean hi_s / n_act of the visited features
    double base, peak;                      // RSS before the run, peak during it (bytes)
    double t_repl, t_rows, c_repl, c_rows, gflop, a_layer[64];
    double *pos_frac;   // (nodes) p / (T-1) of each visited feature (for the extrapolation)
    int *lay;           // (nodes) layer of each visited feature
} RunOut;

static int parse_run(const char *s, RunSpec *r) {
    char tail[16] = "";
    r->sweep = 0;
    int n = sscanf(s, "%d:%lf:%d:%15s", &r->T, &r->fire, &r->M, tail);
    if (n < 3 || r->T < 0 || r->fire < 0 || r->fire >= 0.5 || r->M < 1 || (n == 4 && strcmp(tail, "sweep")))
        return ct_error("--run %s: expected T:FIRE:M[:sweep] (T = 0: the --prompt text; FIRE = 0: the file's "
                        "thresholds, else the fraction to calibrate to, < 0.5; M >= 1)", s);
    r->sweep = n == 4;
    return CT_OK;
}

static void reset_peak(void) {   // VmHWM := current RSS (Linux >= 4.0); best effort
    malloc_trim(0);
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static char g_cpu[128];
static double g_fma;   // one core's FMA peak, GFLOP/s (0: unknown)

static void rate_cols(char *buf, size_t n, double gflop, double wall, double cpu, int nth) {
    double rw = gflop / wall, rc = gflop / cpu;
    if (g_fma > 0)
        snprintf(buf, n, "%.1f | %.1f%% | %.1f | %.1f%%", rw, 100.0 * rw / (g_fma * nth), rc, 100.0 * rc / g_fma);
    else
        snprintf(buf, n, "%.1f | n/a | %.1f | n/a", rw, rc);
}

// One run: replacement model, rows, prune; a markdown row; fills out.
static int one_run(const Model *m, Clt *c, const Prompt *text, const RunSpec *rs, int B, uint64_t seed,
                   ThreadPool *pool, const char *label, RunOut *out) {
    Prompt pr = {0};
    Replacement rep;
    Graph g;
    FlopModel fm = {0};
    Sweeper *sw = NULL;
    float *sbuf = NULL, **srows = NULL;
    AttribTarget *tg = NULL;
    memset(&rep, 0, sizeof rep), memset(&g, 0, sizeof g);
    int rc = CT_ERR;
    if (rs->T == 0) {
        if (!text->ids) return ct_error("--run 0:...: needs --prompt TEXT");
        pr.T = text->T;
        if (!(pr.ids = malloc(sizeof(int) * (size_t)pr.T))) return ct_error("out of memory");
        memcpy(pr.ids, text->ids, sizeof(int) * (size_t)pr.T);
    } else if (prompt_make(&pr, m, NULL, NULL, rs->T, seed) != CT_OK) {
        return CT_ERR;
    }
    if (pr.T > m->c.seq_len) {
        ct_error("T = %d exceeds seq_len %d (raise it with --seq-len)", pr.T, m->c.seq_len);
        goto out;
    }
    if (rs->fire > 0 && calibrate(c, m, &pr, rs->fire, 1, pool) != CT_OK) goto out;

    reset_peak();
    double base = (double)proc_status_kb("VmRSS:");
    double w1 = ct_now(), c1 = cpu_seconds();
    if (replacement_build(&rep, m, c, pr.ids, pr.T, pool) != CT_OK) goto out;
    double w2 = ct_now(), c2 = cpu_seconds();
    AttribOptions o;
    attribute_options_default(&o);
    o.max_feature_nodes = rs->M;
    o.batch = B;
    o.pool = pool;
    if (attribute_graph(&g, &rep, &o) != CT_OK) goto out;
    double w3 = ct_now(), c3 = cpu_seconds();
    if (prune_graph(&g, 0.8, 0.98) != CT_OK) goto out;
    double w4 = ct_now(), c4 = cpu_seconds();
    double peak = (double)peak_rss();

    if (flops_init(&fm, &rep) != CT_OK) goto out;
    double fl = 0, kept = 0, hisum = 0;
    size_t T = (size_t)rep.T;
    for (int k = 0; k < g.n_logits; k++) fl += flops_row(&fm, rep.L, rep.T - 1);
    out->pos_frac = malloc(sizeof(double) * ((size_t)g.n_features + 1));
    out->lay = malloc(sizeof(int) * ((size_t)g.n_features + 1));
    if (!out->pos_frac || !out->lay) { ct_error("out of memory"); goto out; }
    for (int i = 0; i < g.n_features; i++) {
        const GraphNode *nd = &g.nodes[i];
        fl += flops_row(&fm, nd->layer, nd->pos);
        double hi = rep.lp_start[(size_t)nd->layer * T];
        hisum += hi;
        kept += hi + (double)(rep.L + 1) * (double)T;
        out->pos_frac[i] = T > 1 ? (double)nd->pos / (double)(T - 1) : 0;
        out->lay[i] = nd->layer;
    }
    int nth = pool_size(pool), batch = B ? B : attribute_auto_batch(&rep);
    double fire_got = (double)rep.n_active / ((double)rep.L * (double)(T - 1) * (double)rep.F);
    char rates[128];
    rate_cols(rates, sizeof rates, fl / 1e9, w3 - w2, c3 - c2, nth);
    printf("| %s | %s | %s | %d | %d | %d | %d (%.2f%%) | %d | %d | %.2f / %.2f | %.2f / %.2f | %.2f | %.2f | %.2f | "
           "%zu | %.0f | %.0f | %s |\n",
           label, g_cpu, simd_kernels()->name, nth, rep.T, rep.F, rep.n_active, 100.0 * fire_got, g.n_features, batch,
           w2 - w1, c2 - c1, w3 - w2, c3 - c2, w4 - w3, w4 - w1, c4 - c1, g.sp_nnz, peak / (1 << 20), fl / 1e9, rates);
    fflush(stdout);

    out->T = rep.T, out->M = g.n_features, out->nodes = g.n_features, out->K = g.n_logits, out->B = batch;
    out->n_act = rep.n_active, out->kept_floats = rs->M < rep.n_active ? kept : 0, out->nnz = (double)g.sp_nnz;
    out->rho = g.n_features && rep.n_active ? hisum / g.n_features / rep.n_active : 0.5;
    out->base = base, out->peak = peak;
    out->t_repl = w2 - w1, out->t_rows = w3 - w2, out->gflop = fl / 1e9;
    out->c_repl = c2 - c1, out->c_rows = c3 - c2;
    for (int l = 0; l < rep.L && l < 64; l++)
        out->a_layer[l] = T > 1 ? (double)(rep.lp_start[(size_t)(l + 1) * T] - rep.lp_start[(size_t)l * T]) / (double)(T - 1) : 0;

    if (rs->sweep) {
        // one bare sweep of `batch` feature rows spread over the graph's feature nodes
        // (sweeper_init and the rows' buffers are outside the timing)
        int nb = batch < g.n_features ? batch : g.n_features;
        if (nb < 1) { ct_error("sweep: the graph has no feature nodes"); goto out; }
        tg = malloc(sizeof *tg * (size_t)nb);
        if (!tg || sweeper_init(&sw, &rep, nb, 0, pool) != CT_OK) goto out;
        size_t nc = sweeper_ncols(sw);
        srows = malloc(sizeof(float *) * (size_t)nb);
        sbuf = malloc(sizeof(float) * nc * (size_t)nb);
        if (!srows || !sbuf) { ct_error("sweep: out of memory"); goto out; }
        double sfl = 0;
        for (int b = 0; b < nb; b++) {
            const GraphNode *nd = &g.nodes[(size_t)b * (size_t)g.n_features / (size_t)nb];
            tg[b] = (AttribTarget){TARGET_FEATURE, nd->layer, nd->pos, nd->feature, -1, -1};
            srows[b] = sbuf + (size_t)b * nc;
            memset(srows[b], 0, sizeof(float) * nc);
            sfl += flops_row(&fm, nd->layer, nd->pos);
        }
        double s0 = ct_now(), sc0 = cpu_seconds();
        if (sweeper_rows(sw, tg, nb, srows, NULL) != CT_OK) goto out;
        double s1 = ct_now(), sc1 = cpu_seconds();
        rate_cols(rates, sizeof rates, sfl / 1e9, s1 - s0, sc1 - sc0, nth);
        printf("| %s: one bare sweep of %d feature rows | %s | %s | %d | %d | %d | %d (%.2f%%) | - | %d | - | %.2f / "
               "%.2f | - | - | - | - | - | %.0f | %s |\n",
               label, nb, g_cpu, simd_kernels()->name, nth, rep.T, rep.F, rep.n_active, 100.0 * fire_got, nb, s1 - s0,
               sc1 - sc0, sfl / 1e9, rates);
        fflush(stdout);
    }
    rc = CT_OK;
out:
    free(tg);
    sweeper_free(sw);
    free(srows), free(sbuf), free(fm.pre);
    graph_free(&g);
    replacement_free(&rep);
    free(pr.ids);
    return rc;
}

static MemIn mem_in_of(const Model *m, int nt, const RunOut *r) {
    const Config *c = &m->c;
    MemIn in = {c->n_layers, c->dim, c->n_heads * c->head_dim, c->n_kv_heads * c->head_dim, c->n_heads, r->T, r->K,
                r->M, r->B, nt, r->n_act, r->kept_floats, r->nnz};
    return in;
}

// attribute_auto_batch for a prompt of T tokens (engine/attribute.c)
static int auto_batch(const Config *c, int T) {
    size_t per_row = (size_t)T * ((size_t)c->dim + (size_t)c->n_heads * (size_t)c->head_dim) * sizeof(float);
    size_t b = ((size_t)512 << 20) / per_row;
    return b > 256 ? 256 : b < 16 ? 16 : (int)b;
}

// The memory model at another (T, M), from a reference run: n_act = a (T - 1), kept rows
// M (rho n_act + (L+1) T), CSR at most dense over the node columns.
static MemIn mem_in_at(const Model *m, int nt, const RunOut *ref, int T, int M) {
    const Config *c = &m->c;
    double a = ref->n_act / (ref->T - 1.0), n_act = a * (T - 1.0), L = c->n_layers;
    MemIn in = mem_in_of(m, nt, ref);
    in.T = T;
    in.M = M < n_act ? M : (int)n_act;
    in.B = auto_batch(c, T);
    in.n_act = n_act;
    in.kept_floats = M < n_act ? in.M * (ref->rho * n_act + (L + 1) * T) : 0;
    in.nnz = (double)(in.M + in.K) * (in.M + (L + 1) * T);
    return in;
}

static void print_mem_header(void) {
    printf("| T | nodes M | batch | baseline | capture (of which patterns) | replacement | sweeper | rows being "
           "swept | kept rows (budget) | budget arrays | CSR | predicted peak | measured peak | measured / "
           "predicted |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

static void print_mem_row(const MemTerms *t, const MemIn *in, double base, double peak, const char *note) {
    double Mi = 1 << 20;
    printf("| %d%s | %d | %d | %.0f | %.0f (%.0f) | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | ", in->T, note,
           in->M, in->B, base / Mi, t->capture / Mi, t->att / Mi, t->repl / Mi, t->sweeper / Mi, t->scratch / Mi,
           t->kept / Mi, t->budget / Mi, t->csr / Mi, (base + t->total) / Mi);
    if (peak > 0) printf("%.0f | %.2f |\n", peak / Mi, peak / (base + t->total));
    else printf("- | - |\n");
}

static int cmd_runs(int argc, char **argv) {
    const char *model = NULL, *cltdir = NULL, *tok = NULL, *text = NULL, *label = "", *extra = NULL;
    int seq = 0, B = 0, threads = 0, eager = 0, nrun = 0;
    double limit_gib = 0;
    uint64_t seed = 8;
    RunSpec runs[64];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tokenizer") && v) tok = v, i++;
        else if (!strcmp(a, "--prompt") && v) text = v, i++;
        else if (!strcmp(a, "--seed") && v) seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--seq-len") && v) seq = atoi(v), i++;
        else if (!strcmp(a, "--batch") && v) B = atoi(v), i++;
        else if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--fma-gflops") && v) g_fma = atof(v), i++;
        else if (!strcmp(a, "--label") && v) label = v, i++;
        else if (!strcmp(a, "--mem-limit-gib") && v) limit_gib = atof(v), i++;
        else if (!strcmp(a, "--extrapolate") && v) extra = v, i++;
        else if (!strcmp(a, "--eager")) eager = 1;
        else if (!strcmp(a, "--run") && v) {
            if (nrun == 64) { fprintf(stderr, "bench_attr runs: at most 64 --run\n"); return 2; }
            if (parse_run(v, &runs[nrun++]) != CT_OK) return fail("runs");
            i++;
        } else if (a[0] != '-' && !model) model = a;
        else if (a[0] != '-' && !cltdir) cltdir = a;
        else { fprintf(stderr, "bench_attr runs: bad argument %s\n", a); return 2; }
    }
    if (!model || !cltdir || !nrun || (text && !tok)) {
        fprintf(stderr, "usage: bench_attr runs MODEL CLT --run T:FIRE:M[:sweep]... [--tokenizer TOK --prompt TEXT] "
                        "[--seed S] [--seq-len S] [--batch B] [--threads N] [--fma-gflops G] [--label NAME] "
                        "[--mem-limit-gib G] [--extrapolate T1,T2,...] [--eager]\n");
        return 2;
    }
    mallopt(M_MMAP_THRESHOLD, 1 << 20);   // big buffers are mmapped and unmapped on free: runs start clean
    probe_cpu_model(g_cpu, sizeof g_cpu);
    double w0 = ct_now(), c0 = cpu_seconds();
    Model m;
    Clt c;
    memset(&c, 0, sizeof c);
    Prompt tp = {0};
    RunOut *ro = calloc((size_t)nrun, sizeof *ro);
    ThreadPool *pool = NULL;
    int rc = 1, nt = 1;
    if (!ro) { ct_error("out of memory"); return fail("runs"); }
    if (model_load_llama2c(&m, model) != CT_OK) { free(ro); return fail("runs"); }
    if (clt_load(&c, cltdir, eager ? CLT_LOAD_EAGER : 0) != CT_OK) goto out;
    double w1 = ct_now(), c1 = cpu_seconds();
    const char *ddt = c.layers[0].W_dec_raw && !c.layers[0].W_dec
                          ? (c.layers[0].W_dec_dtype == ST_BF16 ? "bf16, mapped (rows converted on use)" : "mapped")
                          : "fp32, resident";
    printf("| load | model | transcoder (L, D, F) | decoders | wall s | CPU s | RSS after load MiB |\n"
           "|---|---|---|---|---|---|---|\n"
           "| %s | %s (D=%d, L=%d, H=%d, V=%d) | %s (%d, %d, %d) | %s | %.2f | %.2f | %.0f |\n\n",
           label, model, m.c.dim, m.c.n_layers, m.c.n_heads, m.c.vocab_size, cltdir, c.L, c.D, c.F, ddt, w1 - w0,
           c1 - c0, (double)proc_status_kb("VmRSS:") / (1 << 20));
    if (seq > m.c.seq_len) m.c.seq_len = seq;
    if (text && prompt_make(&tp, &m, tok, text, 0, seed) != CT_OK) goto out;
    if (!(pool = pool_create(threads))) goto out;
    nt = pool_size(pool);
    printf("| run | CPU | ISA | threads | T | F | active (fire) | feature nodes | batch | replacement s (wall / "
           "CPU) | rows s (wall / CPU) | prune s | graph wall s | graph CPU s | edges | peak RSS MiB | rows GFLOP | GFLOP/s | of "
           "%d-core FMA peak | GFLOP per CPU-s | of 1-core FMA peak |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n", nt);
    for (int k = 0; k < nrun; k++) {
        char lab[96];
        snprintf(lab, sizeof lab, "%s T=%d M=%d%s", label, runs[k].T ? runs[k].T : tp.T, runs[k].M,
                 runs[k].fire > 0 ? "" : "");
        if (one_run(&m, &c, &tp, &runs[k], B, seed, pool, lab, &ro[k]) != CT_OK) goto out;
    }
    printf("\n");

    // memory model: each run's terms against its measured peak
    printf("Memory model (MiB; baseline = RSS before the run: process, model pages, transcoder):\n\n");
    print_mem_header();
    double base_max = 0;
    for (int k = 0; k < nrun; k++) {
        MemIn in = mem_in_of(&m, nt, &ro[k]);
        MemTerms t;
        mem_model(&in, &t);
        print_mem_row(&t, &in, ro[k].base, ro[k].peak, "");
        if (ro[k].base > base_max) base_max = ro[k].base;
    }
    const RunOut *ref = &ro[nrun - 1];   // the last run is the reference: a, rho, rates
    // the largest prompt whose predicted peak fits the limit, at the reference budget and at
    // `ctrace attribute`'s default budget (7500)
    int Ms[2] = {ref->M, 7500}, Tmax[2] = {0, 0};
    if (limit_gib > 0) {
        double lim = limit_gib * (double)(1u << 30);
        for (int q = 0; q < 2; q++) {
            int lo = 1, hi = 1 << 22;   // bisection on the monotone predicted peak
            while (hi - lo > 1) {
                int mid = lo + (hi - lo) / 2;
                MemIn in = mem_in_at(&m, nt, ref, mid, Ms[q]);
                MemTerms t;
                mem_model(&in, &t);
                if (base_max + t.total <= lim) lo = mid;
                else hi = mid;
            }
            Tmax[q] = lo;
            MemIn in = mem_in_at(&m, nt, ref, lo, Ms[q]);
            MemTerms t;
            mem_model(&in, &t);
            print_mem_row(&t, &in, base_max, 0, q ? " (largest, default budget)" : " (largest)");
        }
        printf("\nLargest prompt whose predicted peak fits in %.0f GiB (%.1f active features per position and kept "
               "rows over %.0f%% of them, as in the T=%d run): T = %d with %d feature nodes; T = %d with %d "
               "(the default budget).\n", limit_gib, ref->n_act / (ref->T - 1.0), 100 * ref->rho, ref->T, Tmax[0],
               Ms[0], Tmax[1], Ms[1]);
    }
    printf("\n");

    // time extrapolation to longer prompts: the rows' FLOPs by the header formula with the
    // reference run's active features per (layer, position) and its feature nodes at the same
    // relative positions, at the reference run's GFLOP/s (wall) and GFLOP per CPU-s; the
    // replacement model scaled linearly in T
    if (extra) {
        printf("| extrapolated from the T=%d run | T | feature nodes | replacement s (wall / CPU) | rows GFLOP | rows s "
               "(wall / CPU) | predicted peak RSS MiB |\n|---|---|---|---|---|---|---|\n", ref->T);
        for (const char *s = extra; s && *s; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL) {
            int T2 = atoi(s);
            if (T2 < 2) continue;
            const Config *mc = &m.c;
            FlopModel fm = {mc->n_layers, T2, mc->dim, mc->n_heads * mc->head_dim, mc->n_kv_heads * mc->head_dim, NULL};
            fm.pre = malloc(sizeof(double) * (size_t)mc->n_layers * (size_t)T2);
            if (!fm.pre) { ct_error("out of memory"); goto out; }
            double A = 0;
            for (int l = 0; l < mc->n_layers; l++) {
                A += l < 64 ? ref->a_layer[l] : 0;
                for (int p = 0; p < T2; p++) fm.pre[(size_t)l * T2 + p] = (p + 1.0) + p * A;
            }
            double fl = ref->K * flops_row(&fm, mc->n_layers, T2 - 1);
            for (int i = 0; i < ref->nodes; i++) fl += flops_row(&fm, ref->lay[i], (int)lround(ref->pos_frac[i] * (T2 - 1)));
            free(fm.pre);
            MemIn in = mem_in_at(&m, nt, ref, T2, ref->M);
            MemTerms t;
            mem_model(&in, &t);
            double sc = (double)T2 / ref->T, g = fl / 1e9;
            printf("| %s | %d | %d | %.1f / %.1f | %.0f | %.1f / %.1f | %.0f |\n", label, T2, ref->M, ref->t_repl * sc,
                   ref->c_repl * sc, g, g * ref->t_rows / ref->gflop, g * ref->c_rows / ref->gflop,
                   (base_max + t.total) / (1 << 20));
        }
        printf("\n");
    }
    rc = 0;
out:
    if (rc) fail("runs");
    for (int k = 0; k < nrun; k++) free(ro[k].pos_frac), free(ro[k].lay);
    free(ro);
    pool_destroy(pool);
    free(tp.ids);
    clt_free(&c);
    model_free(&m);
    return rc;
}

// ---- probe ------------------------------------------------------------------------------------
static double thread_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// One core's fp32 FMA peak (bench/probes.h loops) per second of this thread's CPU time, best of
// `runs` calls of >= min_s each: on a shared machine a wall-clock probe measures a time slice,
// this one measures the core while it runs the loop (what the "per CPU-s" columns compare to).
static double fma_peak_cpu(int runs, double min_s, const char **isa) {
    double (*fn)(long) = probe_fma_scalar;
    *isa = "scalar";
#if PROBE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) fn = probe_fma_avx512, *isa = "avx512";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) fn = probe_fma_avx2, *isa = "avx2";
#endif
    long iters = 1 << 14;
    for (;;) {
        double t0 = thread_cpu_seconds();
        fn(iters);
        if (thread_cpu_seconds() - t0 >= min_s || iters > (1L << 40)) break;
        iters *= 2;
    }
    double best = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = thread_cpu_seconds();
        double work = fn(iters);
        double dt = thread_cpu_seconds() - t0;
        if (dt > 0 && work / dt / 1e9 > best) best = work / dt / 1e9;
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "probe")) {
        const char *isa = "?";
        double g = fma_peak_cpu(10, 0.03, &isa);
        printf("fma_gflops %.1f %s (per CPU second of one core)\n", g, isa);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "make-clt")) return cmd_make_clt(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "runs")) return cmd_runs(argc - 1, argv + 1);
    fprintf(stderr, "usage: bench_attr probe | make-clt ... | runs ...   (see bench/bench_attr.c)\n");
    return 2;
}
