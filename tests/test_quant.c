// test_quant.c — int8 weights end to end (engine/quantize.h, engine/numa.h):
//   - accuracy: stories260K --dtype q8 (16-bit activations as two int8 digits) vs the
//     reference program's fp32 logits and vs this engine's own fp32 forward over every golden
//     position: mean KL(p_f32 || p_q8) <= 1e-3, top-1 agreement >= 99% (the targets);
//     --dtype q8a8 (8-bit activations) against what it measures (>= 98%, see quant_checks.h);
//   - the quantized checkpoint: save -> load gives --dtype q8's logits bit for bit, the
//     header is validated (bad version, truncation, block size) with clear messages;
//   - q8 forward: decode == prefill bits, any thread count, every --numa mode the same bits;
//     NUMA pinning and replica bookkeeping on this machine's nodes;
//   - fp32 views: the tied embedding and dequant_f32 redirect to exactly the int8 values;
//   - transcoder: clt_quantize's encoder / decoder against fp32 math on the dequantized
//     weights, batch == single, one feature alone == the encoder (every kernel table), TopK
//     and JumpReLU paths, dtype switching.
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#if CTRACE_HAVE_NUMA
#include <numaif.h>
#endif

#include "engine/clt.h"
#include "engine/model.h"
#include "engine/numa.h"
#include "engine/quantize.h"
#include "simd/simd.h"
#include "tests/lib/testutil.h"
#include "tests/quant_checks.h"

#define ASSERT_OK(x) cr_assert_eq((x), CT_OK, "%s", ct_errmsg())

static void load_260k(Model *m) {
    char *p = tu_shared_path("models/stories260K/stories260K.bin");
    ASSERT_OK(model_load_llama2c(m, p));
    free(p);
}

// Logits (n, V) of ids through m.
static float *logits_of(const Model *m, const int *ids, int n, ThreadPool *pool) {
    RunState s;
    ASSERT_OK(runstate_init(&s, &m->c, n));
    float *lg = malloc(sizeof(float) * (size_t)n * (size_t)m->c.vocab_size);
    ASSERT_OK(model_forward_seq(m, &s, ids, n, lg, NULL, pool));
    runstate_free(&s);
    return lg;
}

// ---- accuracy over the shared golden positions (checks in tests/quant_checks.h) -------------
static void golden_case(CtDtype dt, double min_top1) {
    const char *sh = getenv("SHARED") && *getenv("SHARED") ? getenv("SHARED") : "../shared";
    QcGolden r = qc_golden_q8(sh, dt);
    cr_assert_eq(r.err[0], 0, "%s", r.err);
    cr_expect_gt(r.positions, 200);
    cr_expect_leq(r.kl_mean, 1e-3, "mean KL %.3g > 1e-3", r.kl_mean);
    cr_expect_eq(r.decisive_agree, r.decisive, "%zu of %zu decisive positions (f32 gap >= 0.5) changed their top-1",
                 r.decisive - r.decisive_agree, r.decisive);
    cr_expect_geq((double)r.agree / (double)r.positions, min_top1, "%s: top-1 agreement %zu/%zu < %g", ct_dtype_name(dt),
                  r.agree, r.positions, min_top1);
    cr_expect(qc_ok(&r, min_top1));
}
Test(quant, stories260k_q8_vs_f32_goldens) { golden_case(CT_DTYPE_Q8, 0.99); }
Test(quant, stories260k_q8a8_vs_f32_goldens) { golden_case(CT_DTYPE_Q8A8, 0.98); }

// The same acceptance against the engine's own fp32 forward (not the reference files): every
// golden sequence teacher-forced through --dtype f32 and --dtype q8 / q8a8 of the same Model.
// Measured on stories260K (every kernel table gives the same int8 bits):
//   q8   (16-bit activations): top-1 235/237 = 99.16%, mean KL 2.2e-4; the two flips sit at
//        f32 top-2 gaps 0.016 and 0.073 — what int8 weights alone give (an fp32 forward on the
//        dequantized weights flips the same two positions with the same KL);
//   q8a8 (8-bit activations): 234/237 = 98.73%, mean KL 5.2e-4, flips at gaps 0.059, 0.037,
//        0.073 (the 8-bit activations add as much noise as the weights: finer blocks, per-row
//        scales, Hadamard rotations, an fp32 classifier did not get it to 99%).
// So: KL <= 1e-3 for both, top-1 >= 99% (q8) / >= 98% (q8a8), and no flip where the f32 gap is
// >= 0.1.  q8 must also be strictly closer than q8a8 (KL), or the 16-bit digits do nothing.
static void own_forward_case(CtDtype dt, double min_top1, double *kl_out) {
    const char *sh = getenv("SHARED") && *getenv("SHARED") ? getenv("SHARED") : "../shared";
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/golden/goldens.json", sh);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", path, jerr.text);
    Model m;
    load_260k(&m);
    size_t V = (size_t)m.c.vocab_size, n = 0, agree = 0;
    double kl = 0, worst_gap = 0;
    json_t *seq;
    size_t si;
    json_array_foreach(json_object_get(root, "sequences"), si, seq) {
        json_t *all = json_object_get(seq, "all_ids");
        int rows = (int)json_array_size(all) - 1, *ids = malloc(sizeof(int) * (size_t)rows);
        for (int i = 0; i < rows; i++) ids[i] = (int)json_integer_value(json_array_get(all, (size_t)i));
        model_dequantize(&m);
        float *a = logits_of(&m, ids, rows, NULL);
        ASSERT_OK(model_set_dtype(&m, dt, NULL));
        cr_assert_eq(model_dtype(&m), dt);
        float *b = logits_of(&m, ids, rows, NULL);
        for (int p = 0; p < rows; p++) {
            const float *x = a + (size_t)p * V, *y = b + (size_t)p * V;
            int ta = qc_argmax(x, V), tb = qc_argmax(y, V);
            agree += ta == tb;
            if (ta != tb) worst_gap = fmax(worst_gap, x[ta] - x[tb]);
            kl += qc_kl_rows(x, y, V);
            n++;
        }
        free(a), free(b), free(ids);
    }
    printf("stories260K %s vs this engine's f32 forward [%s]: %zu positions, top-1 %zu/%zu = %.4f, mean KL %.3g, "
           "largest f32 gap at a flip %.3f\n", ct_dtype_name(dt), simd_kernels()->name, n, agree, n,
           (double)agree / (double)n, kl / (double)n, worst_gap);
    cr_expect_gt(n, 200);
    cr_expect_leq(kl / (double)n, 1e-3, "mean KL %.3g", kl / (double)n);
    cr_expect_geq((double)agree / (double)n, min_top1, "%s: top-1 %zu/%zu", ct_dtype_name(dt), agree, n);
    cr_expect_lt(worst_gap, 0.1, "a flip where fp32 was decided by %.3f", worst_gap);
    *kl_out = kl / (double)n;
    json_decref(root);
    model_free(&m);
}

Test(quant, q8_vs_own_f32_forward) {
    double kl16, kl8;
    own_forward_case(CT_DTYPE_Q8, 0.99, &kl16);
    own_forward_case(CT_DTYPE_Q8A8, 0.98, &kl8);
    cr_expect_lt(kl16, 0.7 * kl8, "16-bit activations (KL %.3g) not clearly closer than 8-bit (%.3g)", kl16, kl8);
}

// ---- quantized checkpoint -----------------------------------------------------------------
Test(quant, checkpoint_roundtrip_bit_identical) {
    char *dir = tu_mkdtemp("ct_q8");
    cr_assert_not_null(dir);
    char *qp = tu_join(dir, "m.q8");
    Model m, mq, m2;
    load_260k(&m);
    ASSERT_OK(model_quantize(&m, NULL));
    ASSERT_OK(model_save_q8(&m, qp));
    ASSERT_OK(model_load_llama2c(&mq, qp));   // detected by magic
    cr_assert(model_is_q8(&mq), "a quantized checkpoint must load as int8");
    cr_expect_eq(mq.c.dim, m.c.dim);
    cr_expect_eq(mq.c.vocab_size, m.c.vocab_size);
    int ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (i * 37 + 1) % m.c.vocab_size;
    float *a = logits_of(&m, ids, 40, NULL), *b = logits_of(&mq, ids, 40, NULL);
    cr_expect_eq(memcmp(a, b, sizeof(float) * 40 * (size_t)m.c.vocab_size), 0,
                 "file-loaded q8 logits differ from --dtype q8 logits");
    // Saving the loaded file copies the stored blocks: the same bytes again.
    char *qp2 = tu_join(dir, "m2.q8");
    ASSERT_OK(model_save_q8(&mq, qp2));
    size_t n1, n2;
    void *f1 = tu_read_file(qp, &n1), *f2 = tu_read_file(qp2, &n2);
    cr_expect(n1 == n2 && memcmp(f1, f2, n1) == 0, "re-saving a quantized checkpoint changed its bytes");
    // The file is about a quarter of the fp32 one (int8 + fp32 scale per 32).
    char *fp = tu_shared_path("models/stories260K/stories260K.bin");
    size_t nf;
    void *ff = tu_read_file(fp, &nf);
    cr_expect_lt(n1, nf / 3, "quantized file %zu bytes vs fp32 %zu", n1, nf);
    // --dtype f32 on the quantized file: fp32 arithmetic on the dequantized weights, close.
    model_dequantize(&mq);
    cr_expect(!model_is_q8(&mq));
    float *c = logits_of(&mq, ids, 40, NULL);
    double md = 0;
    for (size_t i = 0; i < 40 * (size_t)m.c.vocab_size; i++) md = fmax(md, fabs((double)c[i] - b[i]));
    cr_expect_lt(md, 0.5, "fp32 on dequantized weights vs int8: max |diff| %.3g", md);
    ASSERT_OK(model_set_dtype(&mq, CT_DTYPE_Q8, NULL));   // and back, bit for bit
    float *d = logits_of(&mq, ids, 40, NULL);
    cr_expect_eq(memcmp(d, b, sizeof(float) * 40 * (size_t)m.c.vocab_size), 0);
    // An untied classifier (fp32 embedding in the file) round-trips too.
    char *up = tu_join(dir, "u.bin"), *uq = tu_join(dir, "u.q8");
    Config cu = {.dim = 64, .hidden_dim = 100, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 77,
                 .seq_len = 32, .shared_classifier = 0};
    ASSERT_OK(model_write_random(up, &cu, 5));
    ASSERT_OK(model_load_llama2c(&m2, up));
    ASSERT_OK(model_quantize(&m2, NULL));
    ASSERT_OK(model_save_q8(&m2, uq));
    Model m3;
    ASSERT_OK(model_load_llama2c(&m3, uq));
    cr_expect_eq(m3.c.shared_classifier, 0);
    for (int i = 0; i < 20; i++) ids[i] %= 77;
    float *u1 = logits_of(&m2, ids, 20, NULL), *u2 = logits_of(&m3, ids, 20, NULL);
    cr_expect_eq(memcmp(u1, u2, sizeof(float) * 20 * 77), 0, "untied: file q8 != --dtype q8");
    model_free(&m3);
    model_free(&m2);
    free(u1); free(u2); free(up); free(uq);
    free(a); free(b); free(c); free(d); free(f1); free(f2); free(ff); free(fp);
    model_free(&mq);
    model_free(&m);
    tu_rmtree(dir);
    free(qp); free(qp2); free(dir);
}

// MODEL_OPEN_INT8_ONLY: a quantized checkpoint without fp32 matrices runs the same bits, and
// whatever asks for fp32 later (f32, bf16, fp32 views) gets exactly the eager load's values.
static void int8_only_case(const char *qp, const int *ids, int n, ThreadPool *pool) {
    Model e, z;
    ASSERT_OK(model_open(&e, qp));
    ASSERT_OK(model_open_flags(&z, qp, MODEL_OPEN_INT8_ONLY));
    cr_assert(model_is_q8(&z));
    cr_expect(z.w.wq == NULL && z.w.wk == NULL && z.w.wv == NULL && z.w.wo == NULL && z.w.w1 == NULL &&
                  z.w.w2 == NULL && z.w.w3 == NULL,
              "int8-only open kept fp32 matrices");
    // A tied table stays int8 (lookups dequantize their row); an untied one is the file's fp32,
    // read where it lies in the mapping (both opens: no copy).
    size_t V = (size_t)e.c.vocab_size, D = (size_t)e.c.dim;
    if (z.c.shared_classifier) cr_expect(z.w.token_embedding == NULL && z.w.wcls == NULL, "tied table made fp32");
    else {
        cr_expect(z.w.wcls == NULL);
        cr_assert_not_null(z.w.token_embedding);
        cr_expect_eq(memcmp(z.w.token_embedding, e.w.token_embedding, V * D * sizeof(float)), 0);
        const Model *both[2] = {&e, &z};
        for (int k = 0; k < 2; k++) {
            const uint8_t *t = (const uint8_t *)both[k]->w.token_embedding, *f = both[k]->file.data;
            cr_expect(f && t >= f && t + V * D * sizeof(float) <= f + both[k]->file.size,
                      "untied embedding copied out of the mapping (open %d)", k);
        }
    }
    float row[4096];
    cr_assert(D <= 4096);
    for (int i = 0; i < n; i++) {   // the looked-up rows: the eager table's, bit for bit
        model_embed(&z, ids[i], i, row);
        cr_expect_eq(memcmp(row, e.w.token_embedding + (size_t)ids[i] * D, D * sizeof(float)), 0, "embedding row %d", ids[i]);
    }
    float *a = logits_of(&e, ids, n, pool), *b = logits_of(&z, ids, n, pool);
    cr_expect_eq(memcmp(a, b, sizeof(float) * (size_t)n * V), 0, "%s: int8-only logits differ", qp);
    // fp32 views on demand: the eager load's matrices, bit for bit.
    QuantOpts o = quant_opts_default();
    o.dequant_f32 = 1;
    ASSERT_OK(model_quantize(&z, &o));
    const size_t L = (size_t)e.c.n_layers, Dq = (size_t)e.c.n_heads * (size_t)e.c.head_dim,
                 Dkv = (size_t)e.c.n_kv_heads * (size_t)e.c.head_dim, Hd = (size_t)e.c.hidden_dim;
    const float *ez[9][2] = {{e.w.wq, z.w.wq}, {e.w.wk, z.w.wk}, {e.w.wv, z.w.wv}, {e.w.wo, z.w.wo},
                             {e.w.w1, z.w.w1}, {e.w.w2, z.w.w2}, {e.w.w3, z.w.w3}, {e.w.wcls, z.w.wcls},
                             {e.w.token_embedding, z.w.token_embedding}};
    size_t nn[9] = {L * Dq * D, L * Dkv * D, L * Dkv * D, L * D * Dq, L * Hd * D, L * D * Hd, L * Hd * D, V * D, V * D};
    cr_expect(!z.c.shared_classifier || z.w.wcls == z.w.token_embedding);
    for (int k = 0; k < 9; k++) {
        cr_assert_not_null(ez[k][1], "matrix %d still NULL after fp32 views", k);
        cr_expect_eq(memcmp(ez[k][0], ez[k][1], nn[k] * sizeof(float)), 0, "matrix %d differs from the eager load", k);
    }
    float *c = logits_of(&z, ids, n, pool);
    cr_expect_eq(memcmp(a, c, sizeof(float) * (size_t)n * V), 0);
    model_free(&z);
    // --dtype f32 and bf16 from an int8-only open: the eager model's logits in that dtype.
    CtDtype dts[2] = {CT_DTYPE_F32, CT_DTYPE_BF16};
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(model_open_flags(&z, qp, MODEL_OPEN_INT8_ONLY));
        ASSERT_OK(model_set_dtype(&z, dts[i], NULL));
        ASSERT_OK(model_set_dtype(&e, dts[i], NULL));
        float *x = logits_of(&e, ids, n, pool), *y = logits_of(&z, ids, n, pool);
        cr_expect_eq(memcmp(x, y, sizeof(float) * (size_t)n * V), 0, "%s: %s logits differ after an int8-only open", qp,
                     ct_dtype_name(dts[i]));
        cr_expect_neq(memcmp(x, a, sizeof(float) * (size_t)n * V), 0, "%s did not leave the int8 path", ct_dtype_name(dts[i]));
        free(x), free(y);
        model_free(&z);
    }
    free(a), free(b), free(c);
    model_free(&e);
}

Test(quant, int8_only_open) {
    char *dir = tu_mkdtemp("ct_q8z");
    cr_assert_not_null(dir);
    char *qp = tu_join(dir, "m.q8"), *up = tu_join(dir, "u.bin"), *uq = tu_join(dir, "u.q8");
    Model m;
    load_260k(&m);
    ASSERT_OK(model_save_q8(&m, qp));   // tied classifier
    int ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (i * 37 + 1) % m.c.vocab_size;
    model_free(&m);
    ThreadPool *pool = pool_create(2);
    int8_only_case(qp, ids, 24, NULL);
    int8_only_case(qp, ids, 24, pool);
    Config cu = {.dim = 64, .hidden_dim = 100, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 77,
                 .seq_len = 32, .shared_classifier = 0};
    ASSERT_OK(model_write_random(up, &cu, 9));
    ASSERT_OK(model_load_llama2c(&m, up));
    ASSERT_OK(model_save_q8(&m, uq));   // untied: fp32 embedding, int8 classifier
    model_free(&m);
    for (int i = 0; i < 24; i++) ids[i] %= 77;
    int8_only_case(uq, ids, 24, pool);
    pool_destroy(pool);
    // The mapped fp32 sections are still checked finite at load: a NaN in a norm and one in the
    // untied embedding, each named by its index (the file: 64-byte header, rms_att (L, D),
    // rms_ffn (L, D), rms_final (D), then the untied table (V, D)).
    size_t n;
    uint8_t *f = tu_read_file(uq, &n);
    cr_assert_not_null(f);
    const size_t norms = 2 * 2 * 64 + 64, at[2] = {5, norms + 1000};
    for (int k = 0; k < 2; k++) {
        uint8_t *g = malloc(n);
        memcpy(g, f, n);
        float nan = NAN;
        memcpy(g + 64 + at[k] * sizeof(float), &nan, sizeof nan);
        char *bp = tu_join(dir, "bad.q8");
        tu_write_file(bp, g, n);
        for (int fl = 0; fl < 2; fl++) {
            cr_expect_eq(model_open_flags(&m, bp, fl ? MODEL_OPEN_INT8_ONLY : 0), CT_ERR);
            char want[64];
            snprintf(want, sizeof want, "non-finite fp32 weight at index %zu ", at[k]);
            cr_expect(strstr(ct_errmsg(), want) && strstr(ct_errmsg(), "bad.q8"), "%s", ct_errmsg());
        }
        free(bp), free(g);
    }
    free(f);
    tu_rmtree(dir);
    free(qp), free(up), free(uq), free(dir);
}

Test(quant, checkpoint_header_errors) {
    char *dir = tu_mkdtemp("ct_q8h");
    char *qp = tu_join(dir, "m.q8"), *bp = tu_join(dir, "bad.q8");
    Model m;
    load_260k(&m);
    ASSERT_OK(model_save_q8(&m, qp));   // fp32 model: quantized while writing
    model_free(&m);
    size_t n;
    uint8_t *f = tu_read_file(qp, &n);
    cr_assert_not_null(f);
    cr_expect_eq(memcmp(f, "CTRACEQ8", 8), 0);
    // wrong version
    uint8_t *g = malloc(n);
    memcpy(g, f, n);
    g[8] = 99;
    tu_write_file(bp, g, n);
    cr_expect_eq(model_load_llama2c(&m, bp), CT_ERR);
    cr_expect(strstr(ct_errmsg(), "version 99") && strstr(ct_errmsg(), "expected 1"), "%s", ct_errmsg());
    // truncated
    tu_write_file(bp, f, n - 36);
    cr_expect_eq(model_load_llama2c(&m, bp), CT_ERR);
    cr_expect(strstr(ct_errmsg(), "promises") && strstr(ct_errmsg(), "bad.q8"), "%s", ct_errmsg());
    // block size
    memcpy(g, f, n);
    g[44] = 16;
    tu_write_file(bp, g, n);
    cr_expect_eq(model_load_llama2c(&m, bp), CT_ERR);
    cr_expect(strstr(ct_errmsg(), "block size 16"), "%s", ct_errmsg());
    // bad header field
    memcpy(g, f, n);
    int32_t zero = 0;
    memcpy(g + 16 + 4 * 2, &zero, 4);   // n_layers
    tu_write_file(bp, g, n);
    cr_expect_eq(model_load_llama2c(&m, bp), CT_ERR);
    cr_expect(strstr(ct_errmsg(), "n_layers"), "%s", ct_errmsg());
    // a block scale that is NaN (first wq block), or so large that 128 x it is Inf (the tied
    // embedding's block 3): refused at load, int8-only or not, naming the matrix and block
    int32_t hdr[7];
    memcpy(hdr, f + 16, sizeof hdr);
    size_t L = (size_t)hdr[2], D = (size_t)hdr[0], V = (size_t)abs(hdr[5]), nbD = (D + 31) / 32;
    size_t emb = 64 + (2 * L * D + D) * sizeof(float), wq = emb + V * nbD * sizeof(BlockQ8);
    float bad[2] = {NAN, 3e37f};
    size_t at[2] = {wq, emb + 3 * sizeof(BlockQ8)};
    const char *what[2] = {"wq: the scale of block 0", "token embedding: the scale of block 3"};
    for (int i = 0; i < 2; i++)
        for (int flags = 0; flags < 2; flags++) {
            memcpy(g, f, n);
            memcpy(g + at[i], &bad[i], sizeof(float));
            tu_write_file(bp, g, n);
            cr_expect_eq(model_open_flags(&m, bp, flags ? MODEL_OPEN_INT8_ONLY : 0), CT_ERR);
            cr_expect(strstr(ct_errmsg(), what[i]) && strstr(ct_errmsg(), "bad.q8"), "%s", ct_errmsg());
        }
    free(f); free(g);
    tu_rmtree(dir);
    free(qp); free(bp); free(dir);
}

// ---- q8 forward invariants ------------------------------------------------------------------
// A model big enough that the pool splits every product.
static Model random_model(const char *dir, uint64_t seed) {
    char *p = tu_join(dir, "r.bin");
    Config c = {.dim = 256, .hidden_dim = 688, .n_layers = 2, .n_heads = 8, .n_kv_heads = 2, .vocab_size = 1000,
                .seq_len = 96, .shared_classifier = 0};
    ASSERT_OK(model_write_random(p, &c, seed));
    Model m;
    ASSERT_OK(model_load_llama2c(&m, p));
    free(p);
    return m;
}

Test(quant, decode_prefill_threads_numa_same_bits) {
    char *dir = tu_mkdtemp("ct_q8f");
    Model m = random_model(dir, 11);
    int n = 70, ids[70];
    for (int i = 0; i < n; i++) ids[i] = (i * 53 + 7) % 1000;
    size_t V = 1000;
    float *ref = NULL;
    for (int th = 1; th <= 3; th++)
        for (int mode = 0; mode < NUMA_NMODES; mode++) {
            ThreadPool *pool = pool_create(th);
            NumaSetup ns;
            ASSERT_OK(numa_setup(pool, (NumaMode)mode, &ns));
            QuantOpts o = quant_opts_default();
            o.numa = (NumaMode)mode;
            o.pool = pool;
            ASSERT_OK(model_quantize(&m, &o));
            if (mode == NUMA_REPLICATE) cr_expect_eq(m.q8->ncopies, numa_node_count());
            else cr_expect_eq(m.q8->ncopies, 1);
            float *lg = logits_of(&m, ids, n, pool);
            if (!ref) ref = lg;
            else {
                cr_expect_eq(memcmp(ref, lg, sizeof(float) * (size_t)n * V), 0, "threads=%d numa=%s changed the logits",
                             th, numa_mode_name((NumaMode)mode));
                free(lg);
            }
            // decode one position at a time == prefill
            if (mode == NUMA_LOCAL) {
                RunState s;
                ASSERT_OK(runstate_init(&s, &m.c, n));
                for (int p = 0; p < n; p++) {
                    const float *lo = model_forward(&m, &s, ids[p], p, NULL, pool);
                    cr_assert_not_null(lo);
                    cr_assert_eq(memcmp(lo, ref + (size_t)p * V, V * sizeof(float)), 0,
                                 "q8 decode at %d differs from prefill (threads %d)", p, th);
                }
                runstate_free(&s);
            }
            pool_destroy(pool);
        }
    // And it is int8, not fp32: different from the fp32 logits, but close.
    model_dequantize(&m);
    float *f = logits_of(&m, ids, n, NULL);
    double md = 0, mx = 0;
    for (size_t i = 0; i < (size_t)n * V; i++) md = fmax(md, fabs((double)f[i] - ref[i])), mx = fmax(mx, fabs(f[i]));
    cr_expect_gt(md, 0.0, "q8 logits identical to fp32: the int8 path did not run");
    cr_expect_lt(md, 0.05 * mx, "q8 vs fp32 max |diff| %.3g (max |logit| %.3g)", md, mx);
    free(f);
    free(ref);
    model_free(&m);
    tu_rmtree(dir);
    free(dir);
}

// ---- NUMA --------------------------------------------------------------------------------
Test(numa, modes_parse_pin_and_place) {
    NumaMode md;
    ASSERT_OK(numa_mode_parse("replicate", &md));
    cr_expect_eq(md, NUMA_REPLICATE);
    cr_expect_eq(numa_mode_parse("spread", &md), CT_ERR);
    cr_expect(strstr(ct_errmsg(), "spread") && strstr(ct_errmsg(), "interleave"), "%s", ct_errmsg());
    int nodes = numa_node_count();
    cr_assert_geq(nodes, 1);
    ThreadPool *pool = pool_create(2);
    NumaSetup s;
    ASSERT_OK(numa_setup(pool, NUMA_OFF, &s));
    cr_expect_eq(s.pinned, 0, "off must not pin");
    ASSERT_OK(numa_setup(pool, NUMA_LOCAL, &s));
    cr_expect_eq(s.pinned, pool_size(pool));
    for (int i = 0; i < s.pinned; i++) {
        cr_expect_geq(s.cpu[i], 0);
        cr_expect(s.node[i] >= 0 && s.node[i] < nodes, "thread %d on node %d of %d", i, s.node[i], nodes);
    }
    // The caller is thread 0: its affinity is now exactly its CPU, and its node is known.
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    cr_expect_eq(CPU_COUNT(&set), 1);
    cr_expect(CPU_ISSET(s.cpu[0], &set));
    cr_expect_eq(numa_thread_node(), s.node[0]);
    // Threads spread over nodes first: with >= 2 nodes, threads 0 and 1 are on different ones.
    if (nodes >= 2 && s.pinned >= 2) cr_expect_neq(s.node[0], s.node[1]);
#if CTRACE_HAVE_NUMA
    // Packed weights under --numa local sit on a valid node (node 0 on a one-node machine).
    char *dir = tu_mkdtemp("ct_numa");
    Model m = random_model(dir, 3);
    QuantOpts o = quant_opts_default();
    o.numa = NUMA_LOCAL;
    o.pool = pool;
    ASSERT_OK(model_quantize(&m, &o));
    if (mem_numa_available()) {
        int node = -1;
        void *page = (void *)((uintptr_t)m.q8->copy[0] & ~(uintptr_t)4095);
        cr_assert_eq(get_mempolicy(&node, NULL, 0, page, MPOL_F_NODE | MPOL_F_ADDR), 0);
        cr_expect(node >= 0 && node < nodes, "packed weights on node %d", node);
    }
    model_free(&m);
    tu_rmtree(dir);
    free(dir);
#endif
    pool_destroy(pool);
}

// ---- fp32 views -----------------------------------------------------------------------------
Test(quant, fp32_views_hold_the_int8_values) {
    Model m;
    load_260k(&m);
    const float *orig_emb = m.w.token_embedding, *orig_w2 = m.w.w2;
    QuantOpts o = quant_opts_default();
    o.dequant_f32 = 1;
    ASSERT_OK(model_quantize(&m, &o));
    cr_expect_neq(m.w.token_embedding, orig_emb);
    cr_expect_eq(m.w.wcls, m.w.token_embedding, "tied: lookup and classifier share values");
    size_t D = (size_t)m.c.dim, Hd = (size_t)m.c.hidden_dim;
    BlockQ8 row[8];
    float back[256];
    for (size_t r = 0; r < 5; r++) {
        q8_quantize_row(row, orig_w2 + r * Hd, Hd);
        q8_dequantize_row(back, row, Hd);
        cr_expect_eq(memcmp(back, m.w.w2 + r * Hd, Hd * sizeof(float)), 0, "w2 row %zu is not the int8 value", r);
        q8_quantize_row(row, orig_emb + r * D, D);
        q8_dequantize_row(back, row, D);
        cr_expect_eq(memcmp(back, m.w.token_embedding + r * D, D * sizeof(float)), 0);
    }
    model_dequantize(&m);
    cr_expect_eq(m.w.token_embedding, orig_emb, "dequantize restores the fp32 weights");
    cr_expect_eq(m.w.w2, orig_w2);
    cr_expect_null(m.q8);
    model_free(&m);
}

// ---- transcoder ------------------------------------------------------------------------------
static void fill_clt(Clt *c, uint64_t seed) {
    TuRng r;
    tu_rng_seed(&r, seed);
    for (int l = 0; l < c->L; l++) {
        CltLayer *ly = &c->layers[l];
        tu_fill_uniform(ly->W_enc, (size_t)c->F * c->D, &r, -0.3f, 0.3f);
        tu_fill_uniform(ly->b_enc, (size_t)c->F, &r, -0.2f, 0.2f);
        tu_fill_uniform(ly->W_dec, (size_t)c->F * ly->n_out * c->D, &r, -0.5f, 0.5f);
        if (ly->threshold) tu_fill_uniform(ly->threshold, (size_t)c->F, &r, 0.0f, 0.3f);
    }
}

static void clt_case(CltKind kind, CltActivation act) {
    Clt c;
    int L = 3, D = 70, F = 50, T = 5;
    ASSERT_OK(clt_alloc(&c, L, D, F, kind, act, 0));
    fill_clt(&c, 17);
    ASSERT_OK(clt_quantize(&c, NULL));   // dequant_f32 on: W_enc / W_dec now hold int8 values
    cr_assert_not_null(c.q8);
    TuRng r;
    tu_rng_seed(&r, 3);
    float *X = malloc(sizeof(float) * (size_t)T * D), *pre = malloc(sizeof(float) * (size_t)T * F);
    float *act1 = malloc(sizeof(float) * (size_t)T * F), *pre1 = malloc(sizeof(float) * (size_t)F);
    float *actb = malloc(sizeof(float) * (size_t)T * F);
    tu_fill_uniform(X, (size_t)T * D, &r, -1, 1);
    for (int l = 0; l < L; l++) {
        clt_encode_batch(&c, l, X, T, pre, actb);
        for (int t = 0; t < T; t++) {
            clt_encode(&c, l, X + (size_t)t * D, pre1, act1);
            cr_expect_eq(memcmp(pre1, pre + (size_t)t * F, sizeof(float) * (size_t)F), 0, "batch != single pre");
            cr_expect_eq(memcmp(act1, actb + (size_t)t * F, sizeof(float) * (size_t)F), 0, "batch != single act");
            // pre-activations close to fp32 math on the (dequantized) encoder; the only extra
            // error is the int8 activation quantization (<= half a step per value).
            for (int f = 0; f < F; f++) {
                double ref = c.layers[l].b_enc[f], mag = 0;
                for (int d = 0; d < D; d++) {
                    ref += (double)c.layers[l].W_enc[(size_t)f * D + d] * X[(size_t)t * D + d];
                    mag += fabs((double)c.layers[l].W_enc[(size_t)f * D + d]);
                }
                cr_expect_leq(fabs(pre1[f] - ref), mag * (1.0 / 254) + 1e-5, "l=%d f=%d pre %g ref %g", l, f, pre1[f], ref);
            }
            // One feature alone (interventions, validation): the encoder's bits exactly.
            for (int f = 0; f < F; f++) {
                float h = clt_q8_feature_pre(&c, l, f, X + (size_t)t * D);
                cr_expect_eq(memcmp(&h, &pre1[f], sizeof h), 0, "l=%d f=%d: single feature %a vs encoder %a", l, f,
                             h, pre1[f]);
            }
            // act is clt_activate(pre) exactly.
            float *a2 = malloc(sizeof(float) * (size_t)F);
            clt_activate(&c, l, pre1, a2);
            cr_expect_eq(memcmp(a2, act1, sizeof(float) * (size_t)F), 0, "act != clt_activate(pre) (%s)", clt_act_name(act.kind));
            free(a2);
        }
    }
    // Every kernel table's encoder gives the single-feature value's bits (the canonical order).
    SimdIsa was = simd_active_isa();
    for (int isa = 0; isa < SIMD_NISA; isa++) {
        if (!simd_isa_supported((SimdIsa)isa) || simd_force((SimdIsa)isa) != 0) continue;
        clt_encode(&c, 1, X, pre1, act1);
        for (int f = 0; f < F; f++) {
            float h = clt_q8_feature_pre(&c, 1, f, X);
            cr_expect_eq(memcmp(&h, &pre1[f], sizeof h), 0, "%s f=%d: %a vs %a", simd_isa_name((SimdIsa)isa), f, h,
                         pre1[f]);
        }
    }
    simd_force(was);
    // Sparse decode: int8 rows vs the dequantized fp32 rows (same values; order of roundings
    // per element is the same: y + (v*d)*q vs y + v*(d*q)), so close to within rounding.
    CltSparse sp;
    ASSERT_OK(clt_sparse_init(&sp, F));
    clt_sparsify(actb, F, &sp);
    float *y = calloc((size_t)D, sizeof(float)), *yr = calloc((size_t)D, sizeof(float));
    int lo = kind == CLT_PER_LAYER ? 0 : L - 1;
    clt_decode_layer_add(&c, 0, &sp, lo, y, NULL);
    Clt *cc = &c;
    struct CltQ8 *keep = cc->q8;
    cc->q8 = NULL;   // fp32 path on the same (dequantized) parameters
    clt_decode_layer_add(&c, 0, &sp, lo, yr, NULL);
    cc->q8 = keep;
    for (int d = 0; d < D; d++) cr_expect_leq(fabs(y[d] - yr[d]), 1e-5 * (1 + fabs(yr[d])), "decode d=%d %g vs %g", d, y[d], yr[d]);
    cr_expect(sp.n > 0, "no active features: the decode check is vacuous");
    // Switching back to fp32 frees the int8 copies.
    ASSERT_OK(clt_set_dtype(&c, CT_DTYPE_F32, NULL));
    cr_expect_null(c.q8);
    clt_sparse_free(&sp);
    free(X); free(pre); free(act1); free(pre1); free(actb); free(y); free(yr);
    clt_free(&c);
}

Test(quant, clt_jumprelu_cross_layer) { clt_case(CLT_CROSS_LAYER, (CltActivation){CLT_ACT_JUMPRELU, 0}); }
Test(quant, clt_relu_per_layer) { clt_case(CLT_PER_LAYER, (CltActivation){CLT_ACT_RELU, 0}); }
Test(quant, clt_topk_cross_layer) { clt_case(CLT_CROSS_LAYER, (CltActivation){CLT_ACT_TOPK, 7}); }

// The transposed product from a model's packed matrix: y = W^T g with the int8 weights, close
// to the fp32 product of the dequantized weights (only g is quantized, per 32 rows).
Test(quant, transposed_product_of_packed_matrix) {
    Model m;
    load_260k(&m);
    ASSERT_OK(model_quantize(&m, NULL));
    const Q8Panels *wo = &m.q8->mats[2 * Q8M_PER_LAYER + Q8M_W2];   // layer 2 w2: (D, Hd)
    Q8PanelsT t;
    ASSERT_OK(q8_panels_t_build(&t, wo));
    size_t rows = wo->rows, cols = wo->cols, T = 3;
    BlockQ8 *B = malloc(rows * wo->nb * sizeof *B);
    q8_unpack_panels(B, wo->data, rows, cols);
    float *W = malloc(rows * cols * sizeof(float)), *G = malloc(T * rows * sizeof(float)), *Y = malloc(T * cols * sizeof(float));
    q8_dequantize_matrix(W, B, rows, cols);
    TuRng r;
    tu_rng_seed(&r, 8);
    tu_fill_uniform(G, T * rows, &r, -1, 1);
    Q8ActBuf buf = {0};
    ASSERT_OK(q8_matmul_t(Y, &t, G, T, &buf));
    for (size_t k = 0; k < T; k++)
        for (size_t c = 0; c < cols; c++) {
            double ref = 0, mag = 0;
            for (size_t i = 0; i < rows; i++) {
                ref += (double)W[i * cols + c] * G[k * rows + i];
                mag += fabs((double)W[i * cols + c] * G[k * rows + i]);
            }
            cr_expect_leq(fabs(Y[k * cols + c] - ref), mag / 200 + 1e-6, "(t=%zu, c=%zu) %g vs %g", k, c, Y[k * cols + c], ref);
        }
    q8_actbuf_free(&buf);
    q8_panels_t_free(&t);
    free(B); free(W); free(G); free(Y);
    model_free(&m);
}

Test(quant, dtype_parse) {
    CtDtype d;
    ASSERT_OK(ct_dtype_parse("q8", &d));
    cr_expect_eq(d, CT_DTYPE_Q8);
    ASSERT_OK(ct_dtype_parse("f32", &d));
    cr_expect_eq(d, CT_DTYPE_F32);
    cr_expect_eq(ct_dtype_parse("int8", &d), CT_ERR);
    cr_expect(strstr(ct_errmsg(), "int8") && strstr(ct_errmsg(), "f32|q8"), "%s", ct_errmsg());
}
