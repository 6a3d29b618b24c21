// test_hf_model.c — Hugging Face checkpoints (Llama-3, Qwen3, Gemma-2, GPT-2) against the goldens
// of the real transformers modeling code (../shared/models/hf-tiny/<arch>/golden, float64 run):
// logits, hidden states, every per-layer vector the goldens hold and the attention
// probabilities, within goldens.json's tolerances, argmax identical; the bf16 Llama copy
// against its own goldens; every kernel table this machine runs, 1 and 2 threads; decode ==
// prefill bit for bit; a frozen run at the clean values reproduces the clean run (every norm
// factor, pattern and MLP output the freezing reads is the right one); a sharded copy written
// here loads to bit-identical logits and the same fingerprint; bad inputs fail with messages
// naming the file and the field or tensor; a model directory with a tokenizer.json runs a
// prompt.
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/hf_model.h"
#include "engine/safetensors.h"
#include "engine/tokenizer.h"
#include "simd/simd.h"
#include "tests/golden_checks.h"
#include "tests/lib/hf_fixtures.h"
#include "tests/lib/testutil.h"

static const char *ARCHS[4] = {"llama", "qwen3", "gemma2", "gpt2"};

static char *arch_dir(const char *arch) {
    char rel[128];
    snprintf(rel, sizeof rel, "models/hf-tiny/%s", arch);
    return tu_shared_path(rel);
}

// symlink(target, link) with the target made absolute (SHARED is usually relative).
static void link_abs(const char *target, const char *link) {
    char *abs = realpath(target, NULL);
    cr_assert_not_null(abs, "realpath %s", target);
    cr_assert_eq(symlink(abs, link), 0, "symlink %s", link);
    free(abs);
}

static double maxd(double a, double b) { return a > b ? a : b; }

// ---- the golden checks (tests/golden_checks.h, shared with the aarch64 self-test) -------------
static void log_errs(const char *what, const GoldenHfErrs *e) {
    cr_log_info("%s: logits %.2e hidden %.2e layers %.2e attn %.2e", what, e->logits, e->hidden, e->layers, e->attn);
}

static void goldens_all_isas(const char *arch) {
    const char *shared = getenv("SHARED") && *getenv("SHARED") ? getenv("SHARED") : "../shared";
    for (int isa = 0; isa < SIMD_NISA; isa++) {
        if (!simd_isa_supported((SimdIsa)isa)) continue;
        cr_assert_eq(simd_force((SimdIsa)isa), 0);
        for (int th = 1; th <= 2; th++) {
            ThreadPool *pool = th > 1 ? pool_create(th) : NULL;
            GoldenResult r;
            memset(&r, 0, sizeof r);
            golden_hf_arch(&r, shared, arch, pool, simd_isa_name((SimdIsa)isa), log_errs);
            pool_destroy(pool);
            cr_assert_eq(r.fails, 0, "%d failures:\n%s", r.fails, r.msg);
        }
    }
}

Test(hf_model, goldens_llama) { goldens_all_isas("llama"); }
Test(hf_model, goldens_qwen3) { goldens_all_isas("qwen3"); }
Test(hf_model, goldens_gemma2) { goldens_all_isas("gemma2"); }
Test(hf_model, goldens_gpt2) { goldens_all_isas("gpt2"); }

// The configs set the switches each architecture needs (a wrong switch would also fail the
// goldens; this names it).
Test(hf_model, configs) {
    Model m;
    for (int a = 0; a < 4; a++) {
        char *dir = arch_dir(ARCHS[a]), *cfg = tu_join(dir, "config.json");
        cr_assert_eq(model_open(&m, a % 2 ? cfg : dir), CT_OK, "%s", ct_errmsg());   // dir or its config.json
        const Config *c = &m.c;
        cr_assert_eq(c->n_layers, 3);
        cr_assert_eq(c->dim, 64);
        cr_assert_str_eq(m.src_dtype, "F32");
        switch (a) {
        case 0:
            cr_assert(c->arch == ARCH_LLAMA && c->rope_llama3 && !c->shared_classifier && c->head_dim == 16);
            cr_assert_float_eq(c->rope_factor, 8.0f, 0);
            break;
        case 1: cr_assert(c->arch == ARCH_QWEN3 && c->qk_norm && c->shared_classifier && c->head_dim == 24); break;
        case 2:
            cr_assert(c->arch == ARCH_GEMMA2 && c->post_norms && c->sliding_window == 16 && c->shared_classifier);
            cr_assert(c->embed_scale == 8.0f && c->attn_softcap == 5.0f && c->final_softcap == 15.0f);
            // (1+w) gains stored: the file's offsets are N(0, 0.1), so the gains are near 1
            cr_assert(fabsf(m.w.post_ffn[0] - 1.0f) < 0.6f);
            break;
        default:
            cr_assert(c->arch == ARCH_GPT2 && c->norm_kind == NORM_LAYER && c->learned_pos && c->shared_classifier);
            cr_assert(c->hidden_dim == 256 && c->seq_len == 128 && m.w.w3 == NULL && m.w.bq && m.w.rms_final_b);
        }
        // parameter count = the bytes the file holds / 4 (all F32; tied heads not stored)
        size_t nbytes;
        char *st = tu_join(dir, "model.safetensors");
        void *buf = tu_read_file(st, &nbytes);
        uint64_t hl;
        memcpy(&hl, buf, 8);
        cr_assert_eq(model_param_count(c) * 4, nbytes - 8 - hl, "%s: parameter count", ARCHS[a]);
        cr_assert_eq(m.src_bytes, nbytes - 8 - hl);
        free(buf), free(st);
        model_free(&m);
        free(dir), free(cfg);
    }
}

// With attention patterns, every norm factor and the MLP outputs frozen at the clean run's
// values, a hooked run reproduces the clean logits and captures: each frozen value is read
// from the right place (a wrong index for a Qwen3 head norm or a Gemma post-norm would move
// them), for every architecture.
Test(hf_model, frozen_run_reproduces_clean) {
    for (int a = 0; a < 4; a++) {
        char *dir = arch_dir(ARCHS[a]);
        Model m;
        cr_assert_eq(model_open(&m, dir), CT_OK, "%s", ct_errmsg());
        int T = 20, ids[20], V = m.c.vocab_size;
        for (int i = 0; i < T; i++) ids[i] = (i * 37 + 3) % V;
        RunState s;
        Capture clean, run;
        cr_assert_eq(runstate_init(&s, &m.c, T), CT_OK);
        cr_assert_eq(capture_init(&clean, &m.c, T, CAP_ALL), CT_OK);
        cr_assert_eq(capture_init(&run, &m.c, T, CAP_ALL), CT_OK);
        float *l0 = malloc(sizeof(float) * (size_t)T * V), *l1 = malloc(sizeof(float) * (size_t)T * V);
        cr_assert_eq(model_forward_seq(&m, &s, ids, T, l0, &clean, NULL), CT_OK);
        for (int mode = 0; mode < 3; mode++) {   // norms only; norms + attention; everything
            ForwardHooks hk = {.frozen = &clean, .freeze_norms = 1, .freeze_attn = mode >= 1, .freeze_mlp = mode >= 2};
            cr_assert_eq(model_forward_seq_hooked(&m, &s, ids, T, l1, &run, NULL, &hk), CT_OK, "%s", ct_errmsg());
            double d = 0, sc = 0;
            for (size_t i = 0; i < (size_t)T * V; i++) d = maxd(d, fabs(l1[i] - l0[i])), sc = maxd(sc, fabs(l0[i]));
            cr_assert(d <= 1e-5 * sc, "%s mode %d: frozen run logits differ by %.3g (scale %.3g)", ARCHS[a], mode, d, sc);
            size_t LTD = (size_t)T * m.c.n_layers * m.c.dim;
            for (size_t i = 0; i < LTD; i++)
                cr_assert(fabs(run.mlp_out[i] - clean.mlp_out[i]) <= 1e-5 * (1 + fabs(clean.mlp_out[i])) &&
                          fabs(run.resid_mid[i] - clean.resid_mid[i]) <= 1e-5 * (1 + fabs(clean.resid_mid[i])),
                          "%s mode %d: captures differ at %zu", ARCHS[a], mode, i);
        }
        free(l0), free(l1);
        capture_free(&clean), capture_free(&run);
        runstate_free(&s);
        model_free(&m);
        free(dir);
    }
}

// ---- a sharded copy --------------------------------------------------------------------------------
// Split model.safetensors into two shards (tensors alternating, raw bytes kept) + an index.
static void write_sharded(const char *src_dir, const char *dst_dir, const char *missing_shard) {
    char *st = tu_join(src_dir, "model.safetensors");
    StFile f;
    cr_assert_eq(st_open(&f, st), CT_OK, "%s", ct_errmsg());
    StWriteItem *it[2];
    int n[2] = {0, 0};
    it[0] = calloc((size_t)f.n, sizeof(StWriteItem));
    it[1] = calloc((size_t)f.n, sizeof(StWriteItem));
    json_t *wm = json_object();
    const char *shard[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (int i = 0; i < f.n; i++) {
        const StTensor *t = &f.t[i];
        int k = i % 2;
        StWriteItem *w = &it[k][n[k]++];
        w->name = t->name, w->dtype = t->dtype, w->ndim = t->ndim, w->raw = t->data;
        memcpy(w->shape, t->shape, sizeof t->shape);
        json_object_set_new(wm, t->name, json_string(k == 1 && missing_shard ? missing_shard : shard[k]));
    }
    for (int k = 0; k < 2; k++) {
        char *p = tu_join(dst_dir, shard[k]);
        cr_assert_eq(st_write(p, it[k], n[k]), CT_OK, "%s", ct_errmsg());
        free(p);
        free(it[k]);
    }
    json_t *idx = json_pack("{s:{s:i},s:o}", "metadata", "total_size", (json_int_t)0, "weight_map", wm);
    char *ip = tu_join(dst_dir, "model.safetensors.index.json");
    cr_assert_eq(json_dump_file(idx, ip, JSON_INDENT(2)), 0);
    json_decref(idx);
    char *c0 = tu_join(src_dir, "config.json"), *c1 = tu_join(dst_dir, "config.json");
    link_abs(c0, c1);
    free(c0), free(c1), free(ip);
    st_close(&f);
    free(st);
}

Test(hf_model, sharded_copy_bit_identical) {
    for (int a = 0; a < 4; a++) {
        char *dir = arch_dir(ARCHS[a]), *tmp = tu_mkdtemp("ct_hf_shard");
        write_sharded(dir, tmp, NULL);
        Model m1, m2;
        cr_assert_eq(model_open(&m1, dir), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(model_open(&m2, tmp), CT_OK, "%s: %s", ARCHS[a], ct_errmsg());
        cr_assert_eq(m1.fingerprint, m2.fingerprint, "%s: sharding changed the fingerprint", ARCHS[a]);
        int T = 16, ids[16], V = m1.c.vocab_size;
        for (int i = 0; i < T; i++) ids[i] = (i * 11 + 5) % V;
        float *l1 = malloc(sizeof(float) * (size_t)T * V), *l2 = malloc(sizeof(float) * (size_t)T * V);
        RunState s;
        cr_assert_eq(runstate_init(&s, &m1.c, T), CT_OK);
        cr_assert_eq(model_forward_seq(&m1, &s, ids, T, l1, NULL, NULL), CT_OK);
        cr_assert_eq(model_forward_seq(&m2, &s, ids, T, l2, NULL, NULL), CT_OK);
        cr_assert_eq(memcmp(l1, l2, sizeof(float) * (size_t)T * V), 0, "%s: sharded logits differ", ARCHS[a]);
        runstate_free(&s);
        free(l1), free(l2);
        model_free(&m1), model_free(&m2);
        tu_rmtree(tmp);
        free(tmp), free(dir);
    }
    // different weights (bf16 copy) give a different fingerprint
    Model a, b;
    char *d1 = arch_dir("llama"), *d2 = tu_join(d1, "bf16");
    cr_assert_eq(model_open(&a, d1), CT_OK);
    cr_assert_eq(model_open(&b, d2), CT_OK);
    cr_assert_neq(a.fingerprint, b.fingerprint);
    model_free(&a), model_free(&b);
    free(d1), free(d2);
}

// An F16 copy (st_write rounds every weight to half precision) loads to exactly the logits of
// an F32 copy holding the same rounded values: the F16 reader converts exactly.
static void write_converted(const char *src_dir, const char *dst_dir, StDtype dt, int round_f16) {
    char *st = tu_join(src_dir, "model.safetensors");
    StFile f;
    cr_assert_eq(st_open(&f, st), CT_OK, "%s", ct_errmsg());
    StWriteItem *it = calloc((size_t)f.n, sizeof *it);
    float **bufs = calloc((size_t)f.n, sizeof *bufs);
    for (int i = 0; i < f.n; i++) {
        const StTensor *t = &f.t[i];
        bufs[i] = malloc(sizeof(float) * (t->numel ? t->numel : 1));
        cr_assert_eq(st_read_f32(&f, t, bufs[i]), CT_OK);
        if (round_f16)
            for (size_t k = 0; k < t->numel; k++) bufs[i][k] = st_f16_to_f32(st_f32_to_f16(bufs[i][k]));
        it[i].name = t->name, it[i].dtype = dt, it[i].ndim = t->ndim, it[i].data = bufs[i];
        memcpy(it[i].shape, t->shape, sizeof t->shape);
    }
    char *out = tu_join(dst_dir, "model.safetensors"), *c0 = tu_join(src_dir, "config.json"),
         *c1 = tu_join(dst_dir, "config.json");
    cr_assert_eq(st_write(out, it, f.n), CT_OK, "%s", ct_errmsg());
    link_abs(c0, c1);
    for (int i = 0; i < f.n; i++) free(bufs[i]);
    free(bufs), free(it), free(out), free(c0), free(c1), free(st);
    st_close(&f);
}

Test(hf_model, f16_weights_read_exactly) {
    for (int a = 0; a < 4; a++) {
        char *dir = arch_dir(ARCHS[a]), *d16 = tu_mkdtemp("ct_hf_f16"), *d32 = tu_mkdtemp("ct_hf_f32r");
        write_converted(dir, d16, ST_F16, 0);
        write_converted(dir, d32, ST_F32, 1);
        Model m16, m32;
        cr_assert_eq(model_open(&m16, d16), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(model_open(&m32, d32), CT_OK, "%s", ct_errmsg());
        cr_assert_str_eq(m16.src_dtype, "F16");
        cr_assert_neq(m16.fingerprint, m32.fingerprint);
        int T = 12, ids[12], V = m16.c.vocab_size;
        for (int i = 0; i < T; i++) ids[i] = (i * 29 + 1) % V;
        float *l1 = malloc(sizeof(float) * (size_t)T * V), *l2 = malloc(sizeof(float) * (size_t)T * V);
        RunState s;
        cr_assert_eq(runstate_init(&s, &m16.c, T), CT_OK);
        cr_assert_eq(model_forward_seq(&m16, &s, ids, T, l1, NULL, NULL), CT_OK);
        cr_assert_eq(model_forward_seq(&m32, &s, ids, T, l2, NULL, NULL), CT_OK);
        cr_assert_eq(memcmp(l1, l2, sizeof(float) * (size_t)T * V), 0, "%s: F16 logits differ", ARCHS[a]);
        runstate_free(&s);
        free(l1), free(l2);
        model_free(&m16), model_free(&m32);
        tu_rmtree(d16), tu_rmtree(d32);
        free(d16), free(d32), free(dir);
    }
}

// ---- bad inputs ---------------------------------------------------------------------------------------
static void expect_fail(const char *dir, const char *const *needles) {
    Model m;
    cr_assert_neq(model_open(&m, dir), CT_OK, "expected %s to fail (needs '%s')", dir, needles[0]);
    for (int i = 0; needles[i]; i++)
        cr_assert_not_null(strstr(ct_errmsg(), needles[i]), "message '%s' lacks '%s'", ct_errmsg(), needles[i]);
    cr_log_info("%s", ct_errmsg());
}

// A temp model dir: config.json = the arch's config edited by `edit`, model.safetensors linked
// (or written by the caller when link_st is 0).
static char *bad_dir(const char *arch, void (*edit)(json_t *), int link_st) {
    char *dir = arch_dir(arch), *tmp = tu_mkdtemp("ct_hf_bad"), *cfg = tu_join(dir, "config.json");
    json_error_t err;
    json_t *root = json_load_file(cfg, 0, &err);
    cr_assert_not_null(root);
    if (edit) edit(root);
    char *c1 = tu_join(tmp, "config.json");
    cr_assert_eq(json_dump_file(root, c1, JSON_INDENT(2)), 0);
    json_decref(root);
    if (link_st) {
        char *s0 = tu_join(dir, "model.safetensors"), *s1 = tu_join(tmp, "model.safetensors");
        link_abs(s0, s1);
        free(s0), free(s1);
    }
    free(dir), free(cfg), free(c1);
    return tmp;
}

static void ed_arch(json_t *r) {
    json_object_set_new(r, "architectures", json_pack("[s]", "MistralForCausalLM"));
}
static void ed_no_hidden(json_t *r) { json_object_del(r, "hidden_size"); }
static void ed_inter(json_t *r) { json_object_set_new(r, "intermediate_size", json_integer(160)); }
static void ed_untie(json_t *r) { json_object_set_new(r, "tie_word_embeddings", json_false()); }
static void ed_rope(json_t *r) { json_object_set_new(r, "rope_scaling", json_pack("{s:s,s:f}", "rope_type", "yarn", "factor", 4.0)); }
static void ed_gpt2_nlayer(json_t *r) { json_object_del(r, "n_layer"); }

// Write model.safetensors of `arch` into dir with tensor `drop` left out and tensor `as_i32`
// stored with dtype I32 (same bytes): the safetensors header is built here by hand.
static void write_edited_st(const char *arch, const char *dir, const char *drop, const char *as_i32) {
    char *src = arch_dir(arch), *st = tu_join(src, "model.safetensors");
    StFile f;
    cr_assert_eq(st_open(&f, st), CT_OK);
    json_t *hdr = json_object();
    size_t off = 0;
    for (int i = 0; i < f.n; i++) {
        const StTensor *t = &f.t[i];
        if (drop && !strcmp(t->name, drop)) continue;
        json_t *sh = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(sh, json_integer((json_int_t)t->shape[d]));
        size_t nb = t->end - t->begin;
        json_object_set_new(hdr, t->name, json_pack("{s:s,s:o,s:[I,I]}", "dtype",
                                                    as_i32 && !strcmp(t->name, as_i32) ? "I32" : t->dtype_name, "shape",
                                                    sh, "data_offsets", (json_int_t)off, (json_int_t)(off + nb)));
        off += nb;
    }
    char *hs = json_dumps(hdr, JSON_COMPACT);
    uint64_t hl = strlen(hs);
    char *out = tu_join(dir, "model.safetensors");
    FILE *fo = fopen(out, "wb");
    cr_assert_not_null(fo);
    fwrite(&hl, 8, 1, fo);
    fwrite(hs, 1, hl, fo);
    for (int i = 0; i < f.n; i++)
        if (!(drop && !strcmp(f.t[i].name, drop))) fwrite(f.t[i].data, 1, f.t[i].end - f.t[i].begin, fo);
    fclose(fo);
    free(hs), free(out), free(st), free(src);
    json_decref(hdr);
    st_close(&f);
}

Test(hf_model, bad_inputs) {
    char *d;
    const char *n1[] = {"config.json", "MistralForCausalLM", "LlamaForCausalLM", "Qwen3ForCausalLM", "Gemma2ForCausalLM",
                        "GPT2LMHeadModel", NULL};
    expect_fail(d = bad_dir("llama", ed_arch, 1), n1), tu_rmtree(d), free(d);
    const char *n2[] = {"config.json", "missing field", "hidden_size", NULL};
    expect_fail(d = bad_dir("qwen3", ed_no_hidden, 1), n2), tu_rmtree(d), free(d);
    const char *n2b[] = {"config.json", "missing field", "n_layer", NULL};
    expect_fail(d = bad_dir("gpt2", ed_gpt2_nlayer, 1), n2b), tu_rmtree(d), free(d);
    // shape != config: intermediate_size 160 but the file holds 172-wide MLPs
    const char *n3[] = {"model.safetensors", "model.layers.0.mlp.gate_proj.weight", "(172, 64)", "(160, 64)",
                        "config.json", "intermediate_size", NULL};
    expect_fail(d = bad_dir("llama", ed_inter, 1), n3), tu_rmtree(d), free(d);
    // untied but lm_head.weight is not in the file: a missing tensor
    const char *n4[] = {"model.safetensors", "missing tensor", "lm_head.weight", NULL};
    expect_fail(d = bad_dir("gemma2", ed_untie, 1), n4), tu_rmtree(d), free(d);
    const char *n5[] = {"config.json", "rope_scaling", "yarn", NULL};
    expect_fail(d = bad_dir("llama", ed_rope, 1), n5), tu_rmtree(d), free(d);
    // a missing tensor
    d = bad_dir("gpt2", NULL, 0);
    write_edited_st("gpt2", d, "transformer.h.1.mlp.c_fc.bias", NULL);
    const char *n6[] = {"model.safetensors", "missing tensor", "transformer.h.1.mlp.c_fc.bias", NULL};
    expect_fail(d, n6), tu_rmtree(d), free(d);
    // an unsupported dtype (I32)
    d = bad_dir("qwen3", NULL, 0);
    write_edited_st("qwen3", d, NULL, "model.layers.2.self_attn.k_norm.weight");
    const char *n7[] = {"model.safetensors", "model.layers.2.self_attn.k_norm.weight", "I32", NULL};
    expect_fail(d, n7), tu_rmtree(d), free(d);
    // an index naming a shard that is not there
    char *src = arch_dir("gemma2"), *tmp = tu_mkdtemp("ct_hf_idx");
    write_sharded(src, tmp, "model-00009-of-00002.safetensors");
    const char *n8[] = {"model.safetensors.index.json", "model-00009-of-00002.safetensors", NULL};
    expect_fail(tmp, n8);
    tu_rmtree(tmp), free(tmp), free(src);
    // no weights at all; no config.json
    d = bad_dir("llama", NULL, 0);
    const char *n9[] = {"no model.safetensors", NULL};
    expect_fail(d, n9);
    char *c = tu_join(d, "config.json");
    unlink(c);
    const char *n10[] = {"config.json", NULL};
    expect_fail(d, n10);
    free(c), tu_rmtree(d), free(d);
}

// ---- prompts: a model directory with a tokenizer.json ----------------------------------------------
// Each tiny model in a temp dir (config.json and model.safetensors linked) plus a tokenizer.json
// written by tests/lib/hf_fixtures.c (byte-level BPE for Llama-3 / Qwen3 / GPT-2, SentencePiece
// for Gemma-2): model_open and tokenizer_open on the same directory, a prompt encodes to ids
// inside the model's vocabulary and runs; the same ids give the same logits as the original
// directory.
Test(hf_model, prompt_through_directory_tokenizer) {
    for (int a = 0; a < 4; a++) {
        char *dir = arch_dir(ARCHS[a]), *tmp = tu_mkdtemp("ct_hf_tok");
        const char *files[2] = {"config.json", "model.safetensors"};
        for (int k = 0; k < 2; k++) {
            char *s0 = tu_join(dir, files[k]), *s1 = tu_join(tmp, files[k]);
            link_abs(s0, s1);
            free(s0), free(s1);
        }
        Model m, m0;
        cr_assert_eq(model_open(&m, tmp), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(model_open(&m0, dir), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(m.fingerprint, m0.fingerprint);
        int V = m.c.vocab_size;
        HfFixtureOpts o;
        hf_fixture_defaults(&o, V);
        if (a == 3) o.bos_id = o.eos_id = -2, o.extra_tokens = 0, o.add_bos = 0, o.split_regex = 0;   // GPT-2: 256 bytes
        if (a == 1) o.nfc = 1;
        int rc = a == 2 ? hf_fixture_sentencepiece(tmp, &o) : hf_fixture_bytelevel(tmp, &o);
        cr_assert_eq(rc, 0, "%s: %s", ARCHS[a], ct_errmsg());
        Tokenizer tk;
        cr_assert_eq(tokenizer_open(&tk, NULL, tmp, V), CT_OK, "%s: %s", ARCHS[a], ct_errmsg());
        int ids[128], n = 0;
        cr_assert_eq(tokenizer_encode(&tk, "Once upon a time, there was a tiny model.", 1, 0, ids, 128, &n), CT_OK,
                     "%s: %s", ARCHS[a], ct_errmsg());
        cr_assert(n >= 4 && n <= m.c.seq_len, "%s: %d tokens", ARCHS[a], n);
        for (int i = 0; i < n; i++) cr_assert(ids[i] >= 0 && ids[i] < V, "%s: id %d", ARCHS[a], ids[i]);
        float *l1 = malloc(sizeof(float) * (size_t)n * V), *l2 = malloc(sizeof(float) * (size_t)n * V);
        RunState s;
        cr_assert_eq(runstate_init(&s, &m.c, n), CT_OK);
        cr_assert_eq(model_forward_seq(&m, &s, ids, n, l1, NULL, NULL), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(model_forward_seq(&m0, &s, ids, n, l2, NULL, NULL), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(memcmp(l1, l2, sizeof(float) * (size_t)n * V), 0);
        for (size_t i = 0; i < (size_t)n * V; i++) cr_assert(isfinite(l1[i]));
        cr_log_info("%s: prompt -> %d tokens (first %d)", ARCHS[a], n, ids[0]);
        free(l1), free(l2);
        runstate_free(&s);
        tokenizer_free(&tk);
        model_free(&m), model_free(&m0);
        tu_rmtree(tmp);
        free(tmp), free(dir);
    }
}
