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

static double *read_f64(const char *path, size_t n) {
    size_t got;
    double *d = tu_read_file(path, &got);
    cr_assert_not_null(d, "cannot read %s", path);
    cr_assert_eq(got, n * sizeof(double), "%s: %zu bytes, expected %zu", path, got, n * sizeof(double));
    return d;
}

// ---- the golden check of one sequence ----------------------------------------------------------
typedef struct Tol { double logits, act, attn; } Tol;
typedef struct Errs { double logits, hidden, layers, attn; } Errs;

static double maxd(double a, double b) { return a > b ? a : b; }

// The output of the pre-attention norm, recomputed in double from the captured residual and
// factor (the goldens' attn.in): RMSNorm w * x * inv; LayerNorm w * (x - mean) * inv + b.
static void attn_in(const Model *m, const Capture *cap, int l, int p, double *out) {
    int D = m->c.dim, L = m->c.n_layers;
    const float *x = cap->resid_pre + ((size_t)p * (L + 1) + l) * D;
    double inv = cap->inv_rms_att[(size_t)p * L + l], mean = 0;
    if (m->c.norm_kind == NORM_LAYER) {
        for (int i = 0; i < D; i++) mean += x[i];
        mean /= D;
    }
    for (int i = 0; i < D; i++) {
        out[i] = (double)m->w.rms_att[(size_t)l * D + i] * ((x[i] - mean) * inv);
        if (m->w.rms_att_b) out[i] += m->w.rms_att_b[(size_t)l * D + i];
    }
}

static Errs check_sequence(const Model *m, const char *gdir, json_t *seq, const char *const *lv, int K,
                           const Tol *tol, ThreadPool *pool, const char *what) {
    Errs e = {0, 0, 0, 0};
    json_t *ids_j = json_object_get(seq, "ids"), *files = json_object_get(seq, "files");
    int T = (int)json_integer_value(json_object_get(seq, "n"));
    cr_assert(T > 0 && (int)json_array_size(ids_j) == T);
    int *ids = malloc(sizeof(int) * (size_t)T);
    for (int i = 0; i < T; i++) ids[i] = (int)json_integer_value(json_array_get(ids_j, (size_t)i));
    int L = m->c.n_layers, D = m->c.dim, V = m->c.vocab_size, H = m->c.n_heads;
    char path[4096];
#define GOLD(name, n) (snprintf(path, sizeof path, "%s/%s", gdir, \
        json_string_value(json_object_get(json_object_get(json_object_get(files, name), "f64"), "file"))), read_f64(path, n))
    double *gl = GOLD("logits", (size_t)T * V);
    double *gh = GOLD("hidden", (size_t)(L + 1) * T * D);
    double *gr = GOLD("resid_final", (size_t)T * D);
    double *gy = GOLD("layers", (size_t)L * K * T * D);
    double *ga = json_object_get(files, "attn") ? GOLD("attn", (size_t)L * H * T * T) : NULL;
#undef GOLD

    RunState s;
    Capture cap;
    cr_assert_eq(runstate_init(&s, &m->c, T), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(capture_init(&cap, &m->c, T, CAP_ALL), CT_OK, "%s", ct_errmsg());
    float *lg = malloc(sizeof(float) * (size_t)T * V);
    cr_assert_eq(model_forward_seq(m, &s, ids, T, lg, &cap, pool), CT_OK, "%s", ct_errmsg());

    // logits and argmax of every row
    for (int p = 0; p < T; p++) {
        const float *a = lg + (size_t)p * V;
        const double *b = gl + (size_t)p * V;
        int am = 0, bm = 0;
        for (int v = 0; v < V; v++) {
            e.logits = maxd(e.logits, fabs(a[v] - b[v]));
            if (a[v] > a[am]) am = v;
            if (b[v] > b[bm]) bm = v;
        }
        cr_assert_eq(am, bm, "%s: row %d argmax %d, golden %d", what, p, am, bm);
    }
    // hidden: entries 0..L-1 = residual entering layer l, entry L = the final norm's output
    for (int l = 0; l <= L; l++)
        for (int p = 0; p < T; p++)
            for (int i = 0; i < D; i++) {
                double mine = l < L ? cap.resid_pre[((size_t)p * (L + 1) + l) * D + i] : cap.final_normed[(size_t)p * D + i];
                e.hidden = maxd(e.hidden, fabs(mine - gh[((size_t)l * T + p) * D + i]));
            }
    for (int p = 0; p < T; p++)
        for (int i = 0; i < D; i++)
            e.hidden = maxd(e.hidden, fabs(cap.resid_pre[((size_t)p * (L + 1) + L) * D + i] - gr[(size_t)p * D + i]));
    // per-layer vectors, by name
    double *ain = malloc(sizeof(double) * (size_t)D);
    int post = m->c.post_norms;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < K; k++)
            for (int p = 0; p < T; p++) {
                const double *g = gy + (((size_t)l * K + k) * T + p) * D;
                size_t r = (size_t)p * L + l;
                const float *next = cap.resid_pre + ((size_t)p * (L + 1) + l + 1) * D;
                const float *pre = cap.resid_pre + ((size_t)p * (L + 1) + l) * D;
                if (!strcmp(lv[k], "attn.in")) attn_in(m, &cap, l, p, ain);
                for (int i = 0; i < D; i++) {
                    double mine;
                    // Gemma-2: the true residual after attention = next - mlp_out (post-normed)
                    double mid_true = post ? (double)next[i] - cap.mlp_out[r * D + i] : cap.resid_mid[r * D + i];
                    if (!strcmp(lv[k], "attn.in")) mine = ain[i];
                    else if (!strcmp(lv[k], "attn.out")) mine = cap.attn_out[r * D + i];
                    else if (!strcmp(lv[k], "attn.out_postnorm")) mine = mid_true - pre[i];
                    else if (!strcmp(lv[k], "mlp_norm.in")) mine = mid_true;
                    else if (!strcmp(lv[k], "mlp.in")) mine = cap.mlp_in[r * D + i];
                    else if (!strcmp(lv[k], "mlp.out")) mine = post ? cap.mlp_raw[r * D + i] : cap.mlp_out[r * D + i];
                    else if (!strcmp(lv[k], "mlp.out_postnorm")) mine = cap.mlp_out[r * D + i];
                    else cr_assert_fail("%s: unknown layer vector %s in goldens.json", what, lv[k]);
                    e.layers = maxd(e.layers, fabs(mine - g[i]));
                }
                if (post)   // resid_mid is the normalised input before the gain: times the gain = mlp.in
                    for (int i = 0; i < D; i++) {
                        double want = (double)cap.resid_mid[r * D + i] * m->w.rms_ffn[(size_t)l * D + i];
                        cr_assert(fabs(want - cap.mlp_in[r * D + i]) <= 1e-6 * (1 + fabs(want)),
                                  "%s: Gemma resid_mid * gain != mlp_in at l=%d p=%d", what, l, p);
                    }
            }
    free(ain);
    if (ga)
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++)
                for (int p = 0; p < T; p++)
                    for (int t = 0; t < T; t++) {
                        double mine = t <= p ? cap.att[(((size_t)l * H + h) * T + p) * T + t] : 0.0;
                        e.attn = maxd(e.attn, fabs(mine - ga[(((size_t)l * H + h) * T + p) * T + t]));
                    }
    cr_assert(e.logits <= tol->logits, "%s: logits max |diff| %.3g > %.3g", what, e.logits, tol->logits);
    cr_assert(e.hidden <= tol->act, "%s: hidden max |diff| %.3g > %.3g", what, e.hidden, tol->act);
    cr_assert(e.layers <= tol->act, "%s: layer vectors max |diff| %.3g > %.3g", what, e.layers, tol->act);
    cr_assert(e.attn <= tol->attn, "%s: attention max |diff| %.3g > %.3g", what, e.attn, tol->attn);

    // decode one position at a time: the same bits as the prefill
    RunState s2;
    cr_assert_eq(runstate_init(&s2, &m->c, T), CT_OK);
    for (int p = 0; p < T; p++) {
        const float *lo = model_forward(m, &s2, ids[p], p, NULL, pool);
        cr_assert_not_null(lo, "%s", ct_errmsg());
        cr_assert_eq(memcmp(lo, lg + (size_t)p * V, sizeof(float) * (size_t)V), 0,
                     "%s: decode logits at %d differ from prefill bits", what, p);
    }
    runstate_free(&s2);
    free(lg), free(ids), free(gl), free(gh), free(gr), free(gy), free(ga);
    capture_free(&cap);
    runstate_free(&s);
    return e;
}

// Every variant and sequence of one architecture's goldens; returns the worst errors.
static Errs check_arch(const char *arch, ThreadPool *pool, const char *isa) {
    char *dir = arch_dir(arch);
    char *gj = tu_join(dir, "golden/goldens.json");
    json_error_t jerr;
    json_t *root = json_load_file(gj, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", gj, jerr.text);
    json_t *lvj = json_object_get(root, "layer_vectors");
    int K = (int)json_array_size(lvj);
    const char *lv[16];
    cr_assert(K > 0 && K <= 16);
    for (int k = 0; k < K; k++) lv[k] = json_string_value(json_array_get(lvj, (size_t)k));
    json_t *ts = json_object_get(json_object_get(root, "tolerance_suggestion"), "fp32_engine_vs_f64");
    Tol tol = {json_number_value(json_object_get(ts, "logits_atol")),
               json_number_value(json_object_get(ts, "hidden_resid_layers_atol")),
               json_number_value(json_object_get(ts, "attn_atol"))};
    cr_assert(tol.logits > 0 && tol.logits <= 1e-4 && tol.act > 0 && tol.attn > 0);
    Errs worst = {0, 0, 0, 0};
    const char *vname;
    json_t *var;
    int nseq = 0;
    json_object_foreach(json_object_get(root, "variants"), vname, var) {
        char *mdir = tu_join(dir, json_string_value(json_object_get(var, "model_dir")));
        char *gdir0 = tu_join(dir, "golden"), *gdir = tu_join(gdir0, json_string_value(json_object_get(var, "golden_dir")));
        Model m;
        cr_assert_eq(model_open(&m, mdir), CT_OK, "%s", ct_errmsg());
        cr_assert_str_eq(model_arch_name(m.c.arch), json_string_value(json_object_get(root, "arch")));
        if (!strcmp(vname, "bf16")) cr_assert_str_eq(m.src_dtype, "BF16");
        const char *sname;
        json_t *seq;
        json_object_foreach(json_object_get(var, "sequences"), sname, seq) {
            char what[256];
            snprintf(what, sizeof what, "%s/%s/%s [%s, %d threads]", arch, vname, sname, isa, pool_size(pool));
            Errs e = check_sequence(&m, gdir, seq, lv, K, &tol, pool, what);
            worst.logits = maxd(worst.logits, e.logits), worst.hidden = maxd(worst.hidden, e.hidden);
            worst.layers = maxd(worst.layers, e.layers), worst.attn = maxd(worst.attn, e.attn);
            cr_log_info("%s: logits %.2e hidden %.2e layers %.2e attn %.2e", what, e.logits, e.hidden, e.layers, e.attn);
            nseq++;
        }
        model_free(&m);
        free(mdir), free(gdir0), free(gdir);
    }
    cr_assert_geq(nseq, 2, "%s: expected seq1 and seq2", arch);
    json_decref(root);
    free(gj), free(dir);
    return worst;
}

static void goldens_all_isas(const char *arch) {
    for (int isa = 0; isa < SIMD_NISA; isa++) {
        if (!simd_isa_supported((SimdIsa)isa)) continue;
        cr_assert_eq(simd_force((SimdIsa)isa), 0);
        for (int th = 1; th <= 2; th++) {
            ThreadPool *pool = th > 1 ? pool_create(th) : NULL;
            check_arch(arch, pool, simd_isa_name((SimdIsa)isa));
            pool_destroy(pool);
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
