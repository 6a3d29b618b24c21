// test_bf16.c — bf16 weights, kernels to logits.
//   kernels (tests/bf16_checks.h, on every table this host runs): matvec/matmul_bf16w bit for
//     bit equal to dot_f32 / matvec_f32 / matmul_f32 of the same table on the widened weights
//     and within dot's tolerance of a double reference; matvec/matmul_bf16dot bit for bit equal
//     to simd.h's canonical order (written out independently in the checks) and to scalar.c,
//     within the bf16dot bound; odd sizes, unaligned pointers, canaries, rounding ties, NaN;
//   --dtype bf16 on a model (engine/quantize.h):
//     - the bf16 Hugging Face checkpoint: the same logits as its default f32 load, bit for bit
//       (every table, 1 and 2 threads, prefill == decode), and its goldens within tolerance;
//       bf16dot within a looser bound (measured, reported);
//     - fp32 checkpoints of every architecture: logits == the fp32 forward of the same model
//       with its matrices rounded to bf16 (round to nearest even); f32 views show exactly the
//       rounded values; without views the fp32 matrix pointers are NULL and the pages are
//       returned (resident memory drops); back to f32 restores;
//     - a memory-mapped llama2.c checkpoint (tied): the same, and back to f32 gives the
//       original logits; dtype switching f32 -> bf16 -> q8 -> bf16dot -> f32;
//     - accuracy on a trained model (stories260K vs the reference fp32 logits): bf16 and
//       bf16dot keep every top-1 and a mean KL below 2e-4 (measured 4e-5, 5e-5);
//   the command line: `ctrace logits --dtype bf16` writes the f32 load's bytes, bf16dot runs,
//     --clt-dtype bf16 is refused, bench-forward's context error names the model's seq_len.
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/model.h"
#include "engine/quantize.h"
#include "engine/safetensors.h"
#include "simd/simd.h"
#include "tests/bf16_checks.h"
#include "tests/lib/testutil.h"

#define ASSERT_OK(x) cr_assert_eq((x), CT_OK, "%s", ct_errmsg())

// ---- kernels ------------------------------------------------------------------------------------
static void for_each_table(void (*check)(KcStats *, const SimdKernels *), const char *what)
{
    int tested = 0;
    for (int i = 0; i < SIMD_NISA; i++) {
        if (!kc_isa_enabled((SimdIsa)i)) continue;
        const SimdKernels *K = simd_kernels_for((SimdIsa)i);
        cr_assert_not_null(K);
        KcStats st = {0, 0};
        check(&st, K);
        cr_expect_eq(st.failed, 0, "%s: %d of %d %s cases failed (lines above)", K->name, st.failed,
                     st.passed + st.failed, what);
        cr_expect_gt(st.passed, 0, "%s: no %s cases ran", K->name, what);
        tested++;
    }
    cr_assert_geq(tested, 1, "no table tested");
}

Test(bf16, matvec_bf16w_equals_f32_path) { for_each_table(bc_check_matvec_bf16w, "matvec_bf16w"); }
Test(bf16, matmul_bf16w_equals_f32_path) { for_each_table(bc_check_matmul_bf16w, "matmul_bf16w"); }
Test(bf16, matvec_bf16dot_canonical) { for_each_table(bc_check_matvec_bf16dot, "matvec_bf16dot"); }
Test(bf16, matmul_bf16dot_canonical) { for_each_table(bc_check_matmul_bf16dot, "matmul_bf16dot"); }

Test(bf16, tables_complete_and_native_dot)
{
    for (int i = 0; i < SIMD_NISA; i++) {
        const SimdKernels *K = simd_kernels_for((SimdIsa)i);
        if (!K) continue;
        cr_expect(K->matvec_bf16w && K->matmul_bf16w && K->matvec_bf16dot && K->matmul_bf16dot, "%s: NULL bf16 entry",
                  K->name);
        if (i != SIMD_SCALAR)   // every vector table widens bf16 itself
            cr_expect_neq(K->matvec_bf16w, simd_kernels_for(SIMD_SCALAR)->matvec_bf16w, "%s: bf16w is scalar's", K->name);
    }
#if defined(__x86_64__)
    // On a CPU with AVX512_BF16 the avx512 table must use VDPBF16PS, not the scalar loop.
    __builtin_cpu_init();
    if (simd_isa_supported(SIMD_AVX512) && __builtin_cpu_supports("avx512bf16"))
        cr_expect_neq(simd_kernels_for(SIMD_AVX512)->matmul_bf16dot, simd_kernels_for(SIMD_SCALAR)->matmul_bf16dot,
                      "avx512 table lacks the VDPBF16PS kernels on an AVX512_BF16 CPU");
#endif
}

// The independent rounding of the checks against the library's fp32 -> bf16 conversion used
// for weights (safetensors.h): the same bits on ties, denormals, overflow, NaN, random values.
Test(bf16, weight_rounding_is_rne)
{
    float special[] = {1.0f + ldexpf(1, -8), 1.0f + 3 * ldexpf(1, -8), -1.0f - ldexpf(1, -8), 3.0e-39f, -7.1e-40f,
                       FLT_MAX, -FLT_MAX, 0.0f, -0.0f, INFINITY, ldexpf(1, -133) * 3};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        cr_expect_eq(st_f32_to_bf16(special[i]), bc_round(special[i], 0), "%a: library %04x, reference %04x",
                     (double)special[i], st_f32_to_bf16(special[i]), bc_round(special[i], 0));
    uint64_t s = 5;
    for (int i = 0; i < 200000; i++) {
        uint32_t u = (uint32_t)kc_rand(&s);
        float f;
        memcpy(&f, &u, 4);
        if (isnan(f)) continue;
        cr_assert_eq(st_f32_to_bf16(f), bc_round(f, 0), "%a (bits %08x)", (double)f, u);
    }
}

// ---- model helpers ------------------------------------------------------------------------------
static char *shared_path(const char *rel) { return tu_shared_path(rel); }

static float *logits_of(const Model *m, const int *ids, int n, ThreadPool *pool)
{
    RunState s;
    ASSERT_OK(runstate_init(&s, &m->c, n));
    float *lg = malloc(sizeof(float) * (size_t)n * (size_t)m->c.vocab_size);
    ASSERT_OK(model_forward_seq(m, &s, ids, n, lg, NULL, pool));
    runstate_free(&s);
    return lg;
}

// One position at a time (decode), logits of every position.
static float *decode_logits(const Model *m, const int *ids, int n, ThreadPool *pool)
{
    RunState s;
    ASSERT_OK(runstate_init(&s, &m->c, n));
    size_t V = (size_t)m->c.vocab_size;
    float *lg = malloc(sizeof(float) * (size_t)n * V);
    for (int p = 0; p < n; p++) {
        const float *o = model_forward(m, &s, ids[p], p, NULL, pool);
        cr_assert_not_null(o, "%s", ct_errmsg());
        memcpy(lg + (size_t)p * V, o, V * sizeof(float));
    }
    runstate_free(&s);
    return lg;
}

static double max_abs(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void ids_for(int *ids, int n, int V)
{
    for (int i = 0; i < n; i++) ids[i] = (int)((7 + 131u * (unsigned)i) % (unsigned)V);
}

// Round every forward matrix of an owned-memory model to bf16 in place: the reference model
// for --dtype bf16 (its fp32 forward on the rounded weights).
static void round_matrices(Model *m)
{
    const Config *c = &m->c;
    size_t D = (size_t)c->dim, Hd = (size_t)c->hidden_dim, L = (size_t)c->n_layers, V = (size_t)c->vocab_size;
    size_t Dq = (size_t)c->n_heads * c->head_dim, Dkv = (size_t)c->n_kv_heads * c->head_dim;
    struct { const float *p; size_t n; } t[] = {
        {m->w.wq, L * Dq * D}, {m->w.wk, L * Dkv * D}, {m->w.wv, L * Dkv * D}, {m->w.wo, L * D * Dq},
        {m->w.w1, L * Hd * D}, {m->w.w2, L * D * Hd},  {m->w.w3, L * Hd * D},  {m->w.wcls, V * D}};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
        for (size_t i = 0; t[k].p && i < t[k].n; i++) ((float *)t[k].p)[i] = bc_widen(bc_round(t[k].p[i], 0));
}

static QuantOpts views_opts(int views)
{
    QuantOpts o = quant_opts_default();
    o.dequant_f32 = views ? 1 : -1;
    return o;
}

// ---- the bf16 Hugging Face checkpoint -------------------------------------------------------------
// Logits of the goldens' sequences against the f64 goldens of the bf16 variant.
static double golden_logits_err(const Model *m, ThreadPool *pool, int *nseq, int check_argmax)
{
    char *gj = shared_path("models/hf-tiny/llama/golden/goldens.json");
    json_error_t jerr;
    json_t *root = json_load_file(gj, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", gj, jerr.text);
    json_t *var = json_object_get(json_object_get(root, "variants"), "bf16");
    cr_assert_not_null(var, "goldens.json has no bf16 variant");
    char *gdir = shared_path("models/hf-tiny/llama/golden/bf16");
    double worst = 0;
    const char *name;
    json_t *seq;
    *nseq = 0;
    json_object_foreach(json_object_get(var, "sequences"), name, seq) {
        int n = (int)json_integer_value(json_object_get(seq, "n"));
        json_t *ids_j = json_object_get(seq, "ids");
        int *ids = malloc(sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) ids[i] = (int)json_integer_value(json_array_get(ids_j, (size_t)i));
        const char *f = json_string_value(json_object_get(json_object_get(json_object_get(json_object_get(seq, "files"),
                                                                                          "logits"), "f64"), "file"));
        char *path = tu_join(gdir, f);
        size_t got, V = (size_t)m->c.vocab_size;
        double *g = tu_read_file(path, &got);
        cr_assert(g && got == (size_t)n * V * sizeof(double), "%s", path);
        float *lg = logits_of(m, ids, n, pool);
        for (size_t i = 0; i < (size_t)n * V; i++) worst = fmax(worst, fabs(lg[i] - g[i]));
        for (int p = 0; check_argmax && p < n; p++) {   // argmax identical
            size_t am = 0, bm = 0;
            for (size_t v = 0; v < V; v++) {
                if (lg[(size_t)p * V + v] > lg[(size_t)p * V + am]) am = v;
                if (g[(size_t)p * V + v] > g[(size_t)p * V + bm]) bm = v;
            }
            cr_expect_eq(am, bm, "%s position %d: argmax %zu, golden %zu", name, p, am, bm);
        }
        free(lg), free(g), free(path), free(ids);
        (*nseq)++;
    }
    json_decref(root);
    free(gj), free(gdir);
    return worst;
}

Test(bf16_model, hf_bf16_checkpoint_same_logits_as_f32)
{
    char *dir = shared_path("models/hf-tiny/llama/bf16");
    Model a, b;
    ASSERT_OK(model_open(&a, dir));
    ASSERT_OK(model_open(&b, dir));
    cr_assert_str_eq(a.src_dtype, "BF16");
    ASSERT_OK(model_set_dtype(&b, CT_DTYPE_BF16, NULL));
    cr_assert_eq(model_dtype(&b), CT_DTYPE_BF16);
    cr_expect_null(b.w.wq, "without f32 views the fp32 matrices are released");
    cr_expect_not_null(b.w.token_embedding);
    const Config *c = &a.c;
    size_t mats = (size_t)c->n_layers * ((size_t)c->dim * c->n_heads * c->head_dim * 2 +
                                         (size_t)c->dim * c->n_kv_heads * c->head_dim * 2 + (size_t)c->dim * c->hidden_dim * 3) +
                  (size_t)c->vocab_size * c->dim;
    cr_expect_eq(b.bf16->bytes, 2 * mats, "bf16 bytes %zu, expected 2 x %zu", b.bf16->bytes, mats);
    int n = 40, ids[40];
    ids_for(ids, n, c->vocab_size);
    size_t N = (size_t)n * (size_t)c->vocab_size;
    for (int isa = 0; isa < SIMD_NISA; isa++) {
        if (!kc_isa_enabled((SimdIsa)isa)) continue;
        ASSERT_OK(simd_force((SimdIsa)isa));
        for (int th = 1; th <= 2; th++) {
            ThreadPool *pool = th > 1 ? pool_create(th) : NULL;
            float *la = logits_of(&a, ids, n, pool), *lb = logits_of(&b, ids, n, pool), *ld = decode_logits(&b, ids, n, pool);
            cr_expect_eq(memcmp(la, lb, N * sizeof(float)), 0, "[%s, %d threads] bf16 logits differ from f32 (max %.3g)",
                         simd_isa_name((SimdIsa)isa), th, max_abs(la, lb, N));
            cr_expect_eq(memcmp(lb, ld, N * sizeof(float)), 0, "[%s, %d threads] bf16 decode differs from prefill",
                         simd_isa_name((SimdIsa)isa), th);
            int nseq;
            double err = golden_logits_err(&b, pool, &nseq, 1);
            cr_expect_geq(nseq, 2);
            cr_expect_leq(err, 1e-4, "[%s, %d threads] bf16 logits %.3g from the bf16 goldens (tolerance 1e-4)",
                          simd_isa_name((SimdIsa)isa), th, err);
            // bf16dot: activations rounded too — looser, reported
            ASSERT_OK(model_set_dtype(&b, CT_DTYPE_BF16DOT, NULL));
            float *lx = logits_of(&b, ids, n, pool), *lxd = decode_logits(&b, ids, n, pool);
            double dx = max_abs(la, lx, N), scale = 0;
            for (size_t i = 0; i < N; i++) scale = fmax(scale, fabs(la[i]));
            cr_expect_eq(memcmp(lx, lxd, N * sizeof(float)), 0, "[%s] bf16dot decode differs from prefill",
                         simd_isa_name((SimdIsa)isa));
            cr_expect_leq(dx, 3e-2 * scale, "[%s] bf16dot logits max |diff| %.3g vs f32 (scale %.3g)",
                          simd_isa_name((SimdIsa)isa), dx, scale);
            double gerr = golden_logits_err(&b, pool, &nseq, 0);
            cr_log_info("[%s, %d threads] bf16: golden err %.2e; bf16dot: max |diff| vs f32 %.2e (logit scale %.2f), "
                        "golden err %.2e", simd_isa_name((SimdIsa)isa), th, err, dx, scale, gerr);
            ASSERT_OK(model_set_dtype(&b, CT_DTYPE_BF16, NULL));
            free(la), free(lb), free(ld), free(lx), free(lxd);
            pool_destroy(pool);
        }
    }
    // Back to f32: the bf16 copies widened into place give the checkpoint's values again.
    ASSERT_OK(model_set_dtype(&b, CT_DTYPE_F32, NULL));
    cr_assert_eq(model_dtype(&b), CT_DTYPE_F32);
    float *la = logits_of(&a, ids, n, NULL), *lb = logits_of(&b, ids, n, NULL);
    cr_expect_eq(memcmp(la, lb, N * sizeof(float)), 0, "f32 after bf16 differs");
    free(la), free(lb);
    model_free(&a), model_free(&b);
    free(dir);
}

// ---- fp32 checkpoints of every architecture -------------------------------------------------------
static void check_arch_rounded(const char *arch, int views)
{
    char rel[128];
    snprintf(rel, sizeof rel, "models/hf-tiny/%s", arch);
    char *dir = shared_path(rel);
    Model ref, m;
    ASSERT_OK(model_open(&ref, dir));
    ASSERT_OK(model_open(&m, dir));
    round_matrices(&ref);   // fp32 forward on the rounded weights
    QuantOpts o = views_opts(views);
    ASSERT_OK(model_set_dtype(&m, CT_DTYPE_BF16, &o));
    const Config *c = &m.c;
    size_t D = (size_t)c->dim, V = (size_t)c->vocab_size;
    if (views) {   // the fp32 pointers show exactly the rounded values
        cr_assert_not_null(m.w.wq);
        size_t nq = (size_t)c->n_layers * (size_t)c->n_heads * c->head_dim * D;
        cr_expect_eq(memcmp(m.w.wq, ref.w.wq, nq * sizeof(float)), 0, "%s: wq view", arch);
        cr_expect_eq(memcmp(m.w.wcls, ref.w.wcls, V * D * sizeof(float)), 0, "%s: wcls view", arch);
    } else {
        cr_expect(!m.w.wq && !m.w.wk && !m.w.wv && !m.w.wo && !m.w.w1 && !m.w.w2 && !m.w.w3, "%s: fp32 matrices left", arch);
        cr_expect_eq(m.w.wcls == NULL, !c->shared_classifier, "%s: classifier pointer", arch);
    }
    // the embedding lookup reads what the classifier multiplies when tied
    cr_expect_eq(memcmp(m.w.token_embedding, ref.w.token_embedding, V * D * sizeof(float)), 0, "%s: embedding", arch);
    int n = 20, ids[20];
    ids_for(ids, n, c->vocab_size);
    size_t N = (size_t)n * V;
    ThreadPool *pool = pool_create(2);
    float *lr = logits_of(&ref, ids, n, pool), *lm = logits_of(&m, ids, n, pool);
    cr_expect_eq(memcmp(lr, lm, N * sizeof(float)), 0, "%s (views %d): bf16 logits != f32 on rounded weights (max %.3g)",
                 arch, views, max_abs(lr, lm, N));
    ASSERT_OK(model_set_dtype(&m, CT_DTYPE_F32, NULL));   // widened back: the rounded model
    float *lf = logits_of(&m, ids, n, pool);
    cr_expect_eq(memcmp(lr, lf, N * sizeof(float)), 0, "%s: f32 after bf16 != the rounded model", arch);
    free(lr), free(lm), free(lf);
    pool_destroy(pool);
    model_free(&ref), model_free(&m);
    free(dir);
}

Test(bf16_model, fp32_checkpoints_round_to_nearest_even)
{
    const char *archs[] = {"llama", "qwen3", "gemma2", "gpt2"};
    for (int i = 0; i < 4; i++) {
        check_arch_rounded(archs[i], 0);
        check_arch_rounded(archs[i], 1);
    }
}

// ---- a memory-mapped llama2.c checkpoint (tied classifier) ----------------------------------------
Test(bf16_model, mapped_llama2c_untouched)
{
    char *path = shared_path("models/stories260K/stories260K.bin");
    Model mm, ref;
    ASSERT_OK(model_load_llama2c(&mm, path));
    size_t fsz;
    void *bytes = tu_read_file(path, &fsz);
    cr_assert_not_null(bytes);
    ASSERT_OK(model_from_llama2c_bytes(&ref, bytes, fsz, "copy"));
    free(bytes);
    cr_assert(mm.c.shared_classifier);
    int n = 30, ids[30];
    ids_for(ids, n, mm.c.vocab_size);
    size_t N = (size_t)n * (size_t)mm.c.vocab_size;
    float *orig = logits_of(&mm, ids, n, NULL);
    const float *wq0 = mm.w.wq, *emb0 = mm.w.token_embedding;
    ASSERT_OK(model_set_dtype(&mm, CT_DTYPE_BF16, NULL));
    cr_expect_null(mm.w.wq);
    cr_expect_neq(mm.w.token_embedding, emb0, "an fp32 tied embedding needs a rounded copy for the lookup");
    round_matrices(&ref);
    float *lr = logits_of(&ref, ids, n, NULL), *lm = logits_of(&mm, ids, n, NULL);
    cr_expect_eq(memcmp(lr, lm, N * sizeof(float)), 0, "mapped bf16 != f32 on rounded weights (max %.3g)", max_abs(lr, lm, N));
    // views on a read-only mapping: owned widened copies
    QuantOpts o = views_opts(1);
    ASSERT_OK(model_set_dtype(&mm, CT_DTYPE_BF16DOT, &o));
    cr_expect_eq(model_dtype(&mm), CT_DTYPE_BF16DOT);
    cr_assert_not_null(mm.w.wq);
    cr_expect_neq(mm.w.wq, wq0);
    size_t nq = (size_t)mm.c.n_layers * mm.c.dim * mm.c.dim;
    cr_expect_eq(memcmp(mm.w.wq, ref.w.wq, nq * sizeof(float)), 0);
    // back to f32: the mapping itself again, the original logits
    ASSERT_OK(model_set_dtype(&mm, CT_DTYPE_F32, NULL));
    cr_expect_eq(mm.w.wq, wq0);
    cr_expect_eq(mm.w.token_embedding, emb0);
    float *back = logits_of(&mm, ids, n, NULL);
    cr_expect_eq(memcmp(orig, back, N * sizeof(float)), 0, "f32 after bf16 differs on a mapped model");
    free(orig), free(lr), free(lm), free(back);
    model_free(&mm), model_free(&ref);
    free(path);
}

// f32 -> bf16 -> q8 -> bf16dot -> bf16 -> f32 on the bf16 checkpoint: each step gives the logits
// of a fresh model set to that dtype.
Test(bf16_model, dtype_switching)
{
    char *dir = shared_path("models/hf-tiny/llama/bf16");
    Model m, f;
    ASSERT_OK(model_open(&m, dir));
    int n = 16, ids[16];
    ids_for(ids, n, m.c.vocab_size);
    size_t N = (size_t)n * (size_t)m.c.vocab_size;
    CtDtype seq[] = {CT_DTYPE_BF16, CT_DTYPE_Q8, CT_DTYPE_BF16DOT, CT_DTYPE_BF16, CT_DTYPE_F32, CT_DTYPE_Q8, CT_DTYPE_F32};
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        ASSERT_OK(model_set_dtype(&m, seq[i], NULL));
        cr_expect_eq(model_dtype(&m), seq[i], "step %zu: dtype %s", i, ct_dtype_name(model_dtype(&m)));
        ASSERT_OK(model_open(&f, dir));
        ASSERT_OK(model_set_dtype(&f, seq[i], NULL));
        float *a = logits_of(&m, ids, n, NULL), *b = logits_of(&f, ids, n, NULL);
        cr_expect_eq(memcmp(a, b, N * sizeof(float)), 0, "step %zu (%s): logits differ from a fresh model", i,
                     ct_dtype_name(seq[i]));
        free(a), free(b);
        model_free(&f);
    }
    model_free(&m);
    free(dir);
}

// Without f32 views the fp32 matrices really leave memory: resident set size drops by about
// the fp32 bytes minus the bf16 copy.
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

Test(bf16_model, fp32_pages_released)
{
    char *tmp = tu_mkdtemp("ct_bf16");
    char *path = tu_join(tmp, "m.bin");
    Config c = {.dim = 512, .hidden_dim = 1376, .n_layers = 4, .n_heads = 8, .n_kv_heads = 8, .vocab_size = 2048,
                .seq_len = 64, .shared_classifier = 0};
    ASSERT_OK(model_write_random(path, &c, 3));
    size_t fsz;
    void *bytes = tu_read_file(path, &fsz);
    Model m;
    ASSERT_OK(model_from_llama2c_bytes(&m, bytes, fsz, "random"));   // owned memory, every page touched
    free(bytes);
    size_t D = 512, Hd = 1376, L = 4, V = 2048;
    size_t f32_mats = (L * (4 * D * D + 3 * D * Hd) + V * D) * sizeof(float);
    int ids[8];
    ids_for(ids, 8, (int)V);
    float *a = logits_of(&m, ids, 8, NULL);
    size_t before = rss_bytes();
    ASSERT_OK(model_set_dtype(&m, CT_DTYPE_BF16, NULL));
    float *b = logits_of(&m, ids, 8, NULL);   // touches the bf16 copy only
    size_t after = rss_bytes();
    cr_expect_eq(m.bf16->bytes, f32_mats / 2);
    cr_expect(m.bf16->released);
    // at least 3/4 of the net saving (ASan's shadow of the new bf16 copy takes 1/16 of it)
    cr_expect_leq(after + f32_mats / 2 * 3 / 4, before,
                  "resident %zu -> %zu bytes: expected a drop of about %zu (fp32 %zu - bf16 %zu)", before, after,
                  f32_mats / 2, f32_mats, f32_mats / 2);
    ASSERT_OK(model_set_dtype(&m, CT_DTYPE_F32, NULL));
    float *c2 = logits_of(&m, ids, 8, NULL);
    cr_expect_eq(memcmp(b, c2, 8 * V * sizeof(float)), 0, "f32 after bf16 != the bf16 logits");
    cr_expect_neq(memcmp(a, b, 8 * V * sizeof(float)), 0, "random fp32 weights should change when rounded");
    free(a), free(b), free(c2);
    model_free(&m);
    tu_rmtree(tmp);
    free(tmp), free(path);
}

Test(bf16_model, dtype_names)
{
    CtDtype d;
    ASSERT_OK(ct_dtype_parse("bf16", &d));
    cr_expect_eq(d, CT_DTYPE_BF16);
    ASSERT_OK(ct_dtype_parse("bf16dot", &d));
    cr_expect_eq(d, CT_DTYPE_BF16DOT);
    cr_expect_str_eq(ct_dtype_name(CT_DTYPE_BF16DOT), "bf16dot");
    cr_expect_eq(ct_dtype_parse("bfloat16", &d), CT_ERR);
    cr_expect(strstr(ct_errmsg(), "bfloat16") && strstr(ct_errmsg(), "bf16dot"), "%s", ct_errmsg());
    Clt clt;
    memset(&clt, 0, sizeof clt);
    cr_expect_eq(clt_set_dtype(&clt, CT_DTYPE_BF16, NULL), CT_ERR, "transcoders have no bf16 mode");
}

// ---- accuracy on a trained model: stories260K vs the reference program's fp32 logits ----------
typedef struct Acc { size_t positions, agree; double kl_mean, kl_max; } Acc;

static double kl_rows(const float *a, const float *b, size_t V)
{
    double ma = -INFINITY, mb = -INFINITY, sa = 0, sb = 0, kl = 0;
    for (size_t i = 0; i < V; i++) ma = fmax(ma, a[i]), mb = fmax(mb, b[i]);
    for (size_t i = 0; i < V; i++) sa += exp(a[i] - ma), sb += exp(b[i] - mb);
    for (size_t i = 0; i < V; i++) {
        double lpa = a[i] - ma - log(sa), lpb = b[i] - mb - log(sb);
        kl += exp(lpa) * (lpa - lpb);
    }
    return kl;
}

static Acc accuracy_260k(CtDtype d)
{
    Acc r = {0, 0, 0, 0};
    char *dir = shared_path("models/stories260K/golden"), *bin = shared_path("models/stories260K/stories260K.bin");
    char *gj = tu_join(dir, "goldens.json");
    Model m;
    ASSERT_OK(model_load_llama2c(&m, bin));
    ASSERT_OK(model_set_dtype(&m, d, NULL));
    json_error_t jerr;
    json_t *root = json_load_file(gj, 0, &jerr), *seq;
    cr_assert_not_null(root, "%s", jerr.text);
    size_t si, V = (size_t)m.c.vocab_size;
    json_array_foreach(json_object_get(root, "sequences"), si, seq) {
        json_t *all = json_object_get(seq, "all_ids");
        int rows = (int)json_array_size(all) - 1;
        int *ids = malloc(sizeof(int) * (size_t)(rows + 1));
        for (int i = 0; i <= rows; i++) ids[i] = (int)json_integer_value(json_array_get(all, (size_t)i));
        char *lf = tu_join(dir, json_string_value(json_object_get(seq, "logits_file")));
        size_t got;
        float *gold = tu_read_file(lf, &got);
        cr_assert(gold && got == (size_t)rows * V * sizeof(float), "%s", lf);
        float *lg = logits_of(&m, ids, rows, NULL);
        for (int p = 0; p < rows; p++) {
            const float *a = gold + (size_t)p * V, *b = lg + (size_t)p * V;
            size_t ga = 0, gb = 0;
            for (size_t v = 1; v < V; v++) ga = a[v] > a[ga] ? v : ga, gb = b[v] > b[gb] ? v : gb;
            double kl = kl_rows(a, b, V);
            r.agree += ga == gb;
            r.kl_mean += kl;
            r.kl_max = fmax(r.kl_max, kl);
            r.positions++;
        }
        free(ids), free(lf), free(gold), free(lg);
    }
    r.kl_mean /= (double)(r.positions ? r.positions : 1);
    json_decref(root);
    model_free(&m);
    free(dir), free(bin), free(gj);
    return r;
}

// bf16 rounds the weights only (2^-9 relative each); bf16dot also every activation entering a
// product.  Against the fp32 goldens of stories260K: the mean KL of both is well below q8's
// acceptance (1e-3), and top-1 agrees at >= 99% of the positions.
Test(bf16_model, stories260k_accuracy)
{
    CtDtype ds[] = {CT_DTYPE_F32, CT_DTYPE_BF16, CT_DTYPE_BF16DOT};
    for (int i = 0; i < 3; i++) {
        Acc r = accuracy_260k(ds[i]);
        cr_log_info("stories260K %s vs fp32 goldens: %zu positions, top-1 %zu (%.4f), mean KL %.3g, max KL %.3g",
                    ct_dtype_name(ds[i]), r.positions, r.agree, (double)r.agree / (double)r.positions, r.kl_mean, r.kl_max);
        cr_expect_gt(r.positions, 200);
        cr_expect_geq((double)r.agree, 0.99 * (double)r.positions, "%s: top-1 %zu of %zu", ct_dtype_name(ds[i]), r.agree,
                      r.positions);
        cr_expect_leq(r.kl_mean, 2e-4, "%s: mean KL %.3g", ct_dtype_name(ds[i]), r.kl_mean);
    }
}

// ---- the command line: --dtype bf16 through cli_apply_model_opts -------------------------------
// The ctrace binary next to this test binary (build/tests/test_bf16 -> build/ctrace).
static char *ctrace_bin(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert_gt(n, 0);
    exe[n] = 0;
    for (int k = 0; k < 2; k++) *strrchr(exe, '/') = 0;
    char *bin = tu_join(exe, "ctrace");
    cr_assert_eq(access(bin, X_OK), 0, "%s is missing: build it (make) before the tests", bin);
    return bin;
}

// Exit status of "ctrace ARGS" with stderr in dir/err.txt (returned, malloc'd).
static int run_ctrace(const char *dir, const char *args, char **err)
{
    char *bin = ctrace_bin(), cmd[8192], ep[4096];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>%s/err.txt", bin, args, dir);
    int st = system(cmd);
    snprintf(ep, sizeof ep, "%s/err.txt", dir);
    size_t n = 0;
    *err = tu_read_file(ep, &n);
    *err = realloc(*err, n + 1);
    (*err)[n] = 0;
    free(bin);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(bf16_cli, logits_dtype_bf16)
{
    char *tmp = tu_mkdtemp("ct_bf16cli"), *model = shared_path("models/hf-tiny/llama/bf16"), args[8192], *err;
    const char *dts[] = {"", "--dtype bf16", "--dtype bf16dot", "--dtype f32"};
    char *out[4];
    size_t n[4];
    for (int i = 0; i < 4; i++) {
        snprintf(args, sizeof args, "logits %s --tokens 1,403,407,100,2,9,77 --threads 2 %s -o %s/l%d.f32", model, dts[i],
                 tmp, i);
        cr_assert_eq(run_ctrace(tmp, args, &err), 0, "ctrace %s: %s", args, err);
        free(err);
        snprintf(args, sizeof args, "%s/l%d.f32", tmp, i);
        out[i] = tu_read_file(args, &n[i]);
        cr_assert(out[i] && n[i] == 7 * 512 * sizeof(float), "%s", args);
    }
    cr_expect_eq(memcmp(out[0], out[1], n[0]), 0, "--dtype bf16 logits differ from the default (f32) load");
    cr_expect_eq(memcmp(out[0], out[3], n[0]), 0, "--dtype f32 logits differ from the default load");
    cr_expect_neq(memcmp(out[0], out[2], n[0]), 0, "bf16dot rounds activations: its logits should differ");
    for (int i = 0; i < 4; i++) free(out[i]);
    // transcoders have no bf16 mode; the seq_len check names the model's context
    snprintf(args, sizeof args, "logits %s --tokens 1,2 --clt-dtype bf16", model);
    cr_expect_eq(run_ctrace(tmp, args, &err), 2);
    cr_expect(strstr(err, "--clt-dtype") && strstr(err, "f32|q8"), "%s", err);
    free(err);
    snprintf(args, sizeof args, "bench-forward %s --prompt 100 --gen 100 --dtype bf16", model);
    cr_expect_eq(run_ctrace(tmp, args, &err), 1);
    cr_expect(strstr(err, "seq_len 128"), "the error should name the model's seq_len: %s", err);
    free(err);
    tu_rmtree(tmp);
    free(tmp), free(model);
}
