// test_attribute.c — the gold standard: every attribution edge equals an intervention.
//
// For a source s (feature, error or token) and every target t (every active feature's
// pre-activation, every salient logit, a logit difference), A[t, s] must equal the change
// of t when s's contribution is added at its location in the frozen model (attention
// patterns, 1/rms factors and every MLP output frozen at the clean run):
//   feature s = (l_s, p_s, f_s):  a_s * W_dec[l_s][f_s][l - l_s] added to mlp_out[l](p_s), l >= l_s
//   error (l, p):                 eps_l(p) added to mlp_out[l](p)
//   token p:                      token_embedding[tok_p] added to the embedding output at p
// Two independent references:
//   fp32: the engine's real forward (model_forward_seq_hooked with freeze_attn, freeze_norms,
//         freeze_mlp) with a hook adding the vector (scaled by c so the change is as large as
//         the residual itself, then divided by c: the frozen model is linear, and the scaling
//         keeps the fp32 cancellation in (perturbed - base) small).  A transcoder skip
//         (mlp_out = const + W_skip dx) is added by the same hook.  Tolerance 1e-4 of the
//         column's scale (its largest |change|).
//   fp64: a double-precision frozen linear model written here (ref64: mirrors forward.c, reads
//         the same frozen patterns and 1/rms factors from the capture, propagates the change
//         only, so there is no cancellation).  Tolerance 1e-9 of the column's scale.  The
//         reference is itself checked against the engine forward on a few columns.
// Columns: every error, every token, and >= 100 features; rows: all of them.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/attribute.h"
#include "engine/graph_io.h"
#include "engine/prune.h"
#include "engine/tokenizer.h"
#include "simd/simd.h"
#include "tests/lib/testclt.h"
#include "tests/lib/testutil.h"

#define PROMPT TU_STORIES_PROMPT

// ---- fixtures ---------------------------------------------------------------------------------
// A random tiny model: GQA (H = 6, Hkv = 2) and an untied classifier.
static char *tiny_model(Model *m, int *toks, int T, uint64_t seed) {
    char *dir = tu_mkdtemp("ct_attr_m");
    cr_assert_not_null(dir);
    char *path = tu_join(dir, "tiny.bin");
    Config c = {.dim = 48, .hidden_dim = 96, .n_layers = 3, .n_heads = 6, .n_kv_heads = 2,
                .vocab_size = 97, .seq_len = 32, .shared_classifier = 0};
    cr_assert_eq(model_write_random(path, &c, seed), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(model_load_llama2c(m, path), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(m->c.shared_classifier, 0);
    cr_assert_lt(m->c.n_kv_heads, m->c.n_heads);
    TuRng rng;
    tu_rng_seed(&rng, seed + 1);
    toks[0] = 1;
    for (int i = 1; i < T; i++) toks[i] = (int)tu_rng_below(&rng, 97);
    free(path);
    return dir;
}

// ---- the fp32 reference: the engine's frozen forward with a hook --------------------------------
enum { SRC_NONE = -1, SRC_FEATURE = 0, SRC_ERROR = 1, SRC_TOKEN = 2 };

typedef struct Source {
    int kind, layer, pos, feat;
    float act;
} Source;

typedef struct HookCtx {
    const Replacement *r;
    Source s;
    double c;        // scale of the injection
    float *mid;      // (T, L, D) resid_mid of this run (for the skip)
    float *row;      // (D)
} HookCtx;

static void add_scaled(float *vec, const float *v, double c, int D) {
    for (int i = 0; i < D; i++) vec[i] = (float)((double)vec[i] + c * (double)v[i]);
}

static void inject_hook(void *ctx, HookSite site, int layer, int pos, float *vec) {
    HookCtx *h = ctx;
    const Replacement *r = h->r;
    const Clt *clt = r->clt;
    int D = r->D, L = r->L, T = r->T;
    if (site == HOOK_RESID_MID) {
        memcpy(h->mid + ((size_t)pos * L + layer) * D, vec, (size_t)D * sizeof(float));
        return;
    }
    if (site == HOOK_EMBED) {
        if (h->s.kind == SRC_TOKEN && pos == h->s.pos)
            add_scaled(vec, r->m->w.token_embedding + (size_t)r->tokens[pos] * D, h->c, D);
        return;
    }
    // HOOK_MLP_OUT: frozen output + skip of the change of x + the source
    if (clt->has_skip) {
        const float *W = clt->layers[layer].W_skip;
        const float *x = h->mid + ((size_t)pos * L + layer) * D;
        const float *x0 = r->cap.resid_mid + ((size_t)pos * L + layer) * D;
        for (int o = 0; o < D; o++) {
            double s = 0;
            for (int i = 0; i < D; i++) s += (double)W[(size_t)o * D + i] * ((double)x[i] - (double)x0[i]);
            vec[o] = (float)((double)vec[o] + s);
        }
    }
    if (h->s.kind == SRC_ERROR && layer == h->s.layer && pos == h->s.pos)
        add_scaled(vec, r->eps + ((size_t)layer * T + pos) * D, h->c, D);
    if (h->s.kind == SRC_FEATURE && pos == h->s.pos && layer >= h->s.layer &&
        (clt->kind == CLT_CROSS_LAYER || layer == h->s.layer)) {
        cr_assert_eq(clt_decoder_row(clt, h->s.layer, h->s.feat, layer, h->row), CT_OK);
        add_scaled(vec, h->row, h->c * h->s.act, D);
    }
}

// Run the frozen forward with source s (or none); mid (T, L, D) and logits (V) of the last position.
static void frozen_run(const Replacement *r, Source s, double c, float *mid, float *logits) {
    const Model *m = r->m;
    RunState rs;
    cr_assert_eq(runstate_init(&rs, &m->c, r->T), CT_OK);
    float *row = malloc((size_t)r->D * sizeof(float));
    HookCtx h = {r, s, c, mid, row};
    ForwardHooks hk = {.frozen = &r->cap, .freeze_attn = 1, .freeze_norms = 1, .freeze_mlp = 1,
                       .hook = inject_hook, .ctx = &h};
    cr_assert_eq(model_forward_seq_hooked(m, &rs, r->tokens, r->T, NULL, NULL, NULL, &hk), CT_OK, "%s",
                 ct_errmsg());
    memcpy(logits, rs.logits, (size_t)r->V * sizeof(float));
    runstate_free(&rs);
    free(row);
}

// The source's vector at its first location (for the injection scale).
static double source_norm(const Replacement *r, Source s) {
    int D = r->D;
    const float *v;
    float *row = malloc((size_t)D * sizeof(float));
    double sc = 1;
    if (s.kind == SRC_TOKEN) v = r->m->w.token_embedding + (size_t)r->tokens[s.pos] * D;
    else if (s.kind == SRC_ERROR) v = r->eps + ((size_t)s.layer * r->T + s.pos) * D;
    else {
        clt_decoder_row(r->clt, s.layer, s.feat, s.layer, row);
        v = row;
        sc = fabs(s.act);
    }
    double n = 0;
    for (int i = 0; i < D; i++) n += (double)v[i] * v[i];
    free(row);
    return sqrt(n) * sc;
}

// ---- the fp64 reference: the frozen linear model in double ----------------------------------------
// Propagates only the change dx of the residual stream (the frozen model is affine; its
// constant part cancels):  per layer, dxb = rms_att ⊙ inv_rms ⊙ dx;  dv = Wv dxb;  do(p)_h =
// sum_{t<=p} A[h,p,t] dv(t)_{kv(h)};  dx += Wo do  (-> dmid);  dmlp = source at (l, p) +
// W_skip dmid;  dx += dmlp.  Final: dlogits = Wcls (rms_final ⊙ inv_final ⊙ dx(T-1)).
static void ref64(const Replacement *r, Source s, double *dmid /*(T,L,D)*/, double *dlog /*(V)*/) {
    const Model *m = r->m;
    const Weights *w = &m->w;
    const Clt *clt = r->clt;
    int L = r->L, T = r->T, D = r->D, V = r->V, H = m->c.n_heads, Hkv = m->c.n_kv_heads, Dh = m->c.head_dim;
    int Dq = H * Dh, Dkv = Hkv * Dh, grp = H / Hkv;
    size_t Tc = (size_t)r->cap.T;
    double *x = calloc((size_t)T * D, sizeof(double));
    double *v = malloc((size_t)T * Dkv * sizeof(double));
    double *o = malloc((size_t)Dq * sizeof(double));
    double *mo = malloc((size_t)D * sizeof(double));
    float *row = malloc((size_t)D * sizeof(float));
    if (s.kind == SRC_TOKEN)
        for (int i = 0; i < D; i++) x[(size_t)s.pos * D + i] = w->token_embedding[(size_t)r->tokens[s.pos] * D + i];
    for (int l = 0; l < L; l++) {
        for (int t = 0; t < T; t++) {
            double inv = r->cap.inv_rms_att[(size_t)t * L + l];
            for (int j = 0; j < Dkv; j++) {
                double acc = 0;
                const float *wv = w->wv + ((size_t)l * Dkv + j) * D;
                for (int i = 0; i < D; i++) acc += (double)wv[i] * ((double)w->rms_att[(size_t)l * D + i] * inv * x[(size_t)t * D + i]);
                v[(size_t)t * Dkv + j] = acc;
            }
        }
        for (int p = T - 1; p >= 0; p--) {  // descending: x(p) changes only after all reads of v
            for (int h = 0; h < H; h++)
                for (int d = 0; d < Dh; d++) {
                    double acc = 0;
                    for (int t = 0; t <= p; t++)
                        acc += (double)r->cap.att[(((size_t)l * H + h) * Tc + p) * Tc + t] *
                               v[(size_t)t * Dkv + (size_t)(h / grp) * Dh + d];
                    o[h * Dh + d] = acc;
                }
            for (int i = 0; i < D; i++) {
                double acc = 0;
                const float *wo = w->wo + ((size_t)l * D + i) * Dq;
                for (int j = 0; j < Dq; j++) acc += (double)wo[j] * o[j];
                x[(size_t)p * D + i] += acc;
            }
        }
        for (int p = 0; p < T; p++) {
            double *xp = x + (size_t)p * D;
            memcpy(dmid + ((size_t)p * L + l) * D, xp, (size_t)D * sizeof(double));
            for (int i = 0; i < D; i++) mo[i] = 0;
            if (clt->has_skip)
                for (int i = 0; i < D; i++) {
                    double acc = 0;
                    for (int j = 0; j < D; j++) acc += (double)clt->layers[l].W_skip[(size_t)i * D + j] * xp[j];
                    mo[i] = acc;
                }
            if (s.kind == SRC_ERROR && s.layer == l && s.pos == p)
                for (int i = 0; i < D; i++) mo[i] += r->eps[((size_t)l * T + p) * D + i];
            if (s.kind == SRC_FEATURE && s.pos == p && l >= s.layer &&
                (clt->kind == CLT_CROSS_LAYER || l == s.layer)) {
                clt_decoder_row(clt, s.layer, s.feat, l, row);
                for (int i = 0; i < D; i++) mo[i] += (double)s.act * (double)row[i];
            }
            for (int i = 0; i < D; i++) xp[i] += mo[i];
        }
    }
    double invf = r->cap.inv_rms_final[T - 1];
    for (int i = 0; i < D; i++) mo[i] = (double)w->rms_final[i] * invf * x[(size_t)(T - 1) * D + i];
    for (int u = 0; u < V; u++) {
        double acc = 0;
        for (int i = 0; i < D; i++) acc += (double)w->wcls[(size_t)u * D + i] * mo[i];
        dlog[u] = acc;
    }
    free(x), free(v), free(o), free(mo), free(row);
}

// ---- target values from a measured change --------------------------------------------------------
// ref (n targets) from dmid (T, L, D) and dlog (V).

// Column of source s measured through the engine's fp32 frozen forward.
static void measure_fp32(const Replacement *r, Source s, const float *base_mid, const float *base_log,
                         const AttribTarget *tg, int n, double *ref) {
    size_t LTD = (size_t)r->T * r->L * r->D;
    float *mid = malloc(LTD * sizeof(float)), *lg = malloc((size_t)r->V * sizeof(float));
    double *dmid = malloc(LTD * sizeof(double)), *dlog = malloc((size_t)r->V * sizeof(double));
    // scale: the injected vector as large as the residual at its location
    double nv = source_norm(r, s), nres = 0;
    const float *res = s.kind == SRC_TOKEN ? r->cap.resid_pre + ((size_t)s.pos * (r->L + 1)) * r->D
                                           : r->cap.resid_mid + ((size_t)s.pos * r->L + s.layer) * r->D;
    for (int i = 0; i < r->D; i++) nres += (double)res[i] * res[i];
    double c = nv > 0 ? sqrt(nres) / nv : 1.0;
    if (!(c > 1e-3)) c = 1e-3;
    if (c > 1e6) c = 1e6;
    frozen_run(r, s, c, mid, lg);
    for (size_t i = 0; i < LTD; i++) dmid[i] = ((double)mid[i] - (double)base_mid[i]) / c;
    for (int u = 0; u < r->V; u++) dlog[u] = ((double)lg[u] - (double)base_log[u]) / c;
    tu_target_changes(r, tg, n, dmid, dlog, ref);
    free(mid), free(lg), free(dmid), free(dlog);
}

static void measure_fp64(const Replacement *r, Source s, const AttribTarget *tg, int n, double *ref) {
    size_t LTD = (size_t)r->T * r->L * r->D;
    double *dmid = malloc(LTD * sizeof(double)), *dlog = malloc((size_t)r->V * sizeof(double));
    ref64(r, s, dmid, dlog);
    tu_target_changes(r, tg, n, dmid, dlog, ref);
    free(dmid), free(dlog);
}

static Source column_source(const Replacement *r, size_t col) {
    Source s = {SRC_NONE, 0, 0, 0, 0};
    size_t na = (size_t)r->n_active, LT = (size_t)r->L * r->T;
    if (col < na) s = (Source){SRC_FEATURE, r->act_layer[col], r->act_pos[col], r->act_feat[col], r->act_val[col]};
    else if (col < na + LT) s = (Source){SRC_ERROR, (int)((col - na) / r->T), (int)((col - na) % r->T), -1, 0};
    else s = (Source){SRC_TOKEN, -1, (int)(col - na - LT), -1, 0};
    return s;
}

// ---- the check ------------------------------------------------------------------------------------
typedef struct ExactReport {
    int n_feature_cols, n_error_cols, n_token_cols, n_rows, n_active;
    double worst;     // largest |A - ref| / scale seen
} ExactReport;

static ExactReport check_exact(const Model *m, const Clt *clt, const int *toks, int T, int fp64,
                               int threads, const char *name) {
    ThreadPool *pool = threads > 1 ? pool_create(threads) : NULL;
    Replacement r;
    cr_assert_eq(replacement_build(&r, m, clt, toks, T, pool), CT_OK, "%s: %s", name, ct_errmsg());
    cr_assert_geq(r.n_active, 100, "%s: only %d active features", name, r.n_active);
    int ids[10];
    double pr[10];
    int K = attribute_salient_logits(&r, 10, 0.95, ids, pr);
    cr_assert_geq(K, 1);
    int n = r.n_active + K + 1;
    AttribTarget *tg = calloc((size_t)n, sizeof *tg);
    for (int i = 0; i < r.n_active; i++)
        tg[i] = (AttribTarget){TARGET_FEATURE, r.act_layer[i], r.act_pos[i], r.act_feat[i], -1, -1};
    for (int k = 0; k < K; k++) tg[r.n_active + k] = (AttribTarget){TARGET_LOGIT, 0, 0, 0, ids[k], -1};
    tg[n - 1] = (AttribTarget){TARGET_LOGIT, 0, 0, 0, ids[0], (ids[0] + 7) % r.V};
    Sweeper *sw;
    cr_assert_eq(sweeper_init(&sw, &r, 37, fp64, pool), CT_OK, "%s", ct_errmsg());
    size_t nc = sweeper_ncols(sw);
    cr_assert_eq(nc, (size_t)r.n_active + (size_t)r.L * T + T);
    double *A = malloc((size_t)n * nc * sizeof(double));
    if (fp64) {
        double **rows = malloc((size_t)n * sizeof(double *));
        for (int i = 0; i < n; i++) rows[i] = A + (size_t)i * nc;
        cr_assert_eq(sweeper_rows(sw, tg, n, NULL, rows), CT_OK, "%s", ct_errmsg());
        free(rows);
    } else {
        float *A32 = malloc((size_t)n * nc * sizeof(float));
        float **rows = malloc((size_t)n * sizeof(float *));
        for (int i = 0; i < n; i++) rows[i] = A32 + (size_t)i * nc;
        cr_assert_eq(sweeper_rows(sw, tg, n, rows, NULL), CT_OK, "%s", ct_errmsg());
        for (size_t i = 0; i < (size_t)n * nc; i++) A[i] = A32[i];
        free(rows), free(A32);
    }
    sweeper_free(sw);

    // base run of the fp32 reference (no source)
    size_t LTD = (size_t)T * r.L * r.D;
    float *base_mid = malloc(LTD * sizeof(float)), *base_log = malloc((size_t)r.V * sizeof(float));
    Source none = {SRC_NONE, 0, 0, 0, 0};
    frozen_run(&r, none, 1.0, base_mid, base_log);

    // columns: every error, every token, >= 100 features spread over the list
    ExactReport rep = {0, 0, 0, n, r.n_active, 0};
    size_t na = (size_t)r.n_active;
    size_t fstep = na / 120 ? na / 120 : 1;
    double tol = fp64 ? 1e-9 : 1e-4;
    double *ref = malloc((size_t)n * sizeof(double)), *ref2 = malloc((size_t)n * sizeof(double));
    int n_cross = 0;
    for (size_t col = 0; col < nc; col++) {
        if (col < na && col % fstep != 0 && col != na - 1) continue;
        Source s = column_source(&r, col);
        if (fp64) measure_fp64(&r, s, tg, n, ref);
        else measure_fp32(&r, s, base_mid, base_log, tg, n, ref);
        double scale = 0;
        for (int t = 0; t < n; t++) scale = fabs(ref[t]) > scale ? fabs(ref[t]) : scale;
        for (int t = 0; t < n; t++) {
            double a = A[(size_t)t * nc + col], err = fabs(a - ref[t]);
            double rel = scale > 0 ? err / scale : err;
            if (rel > rep.worst) rep.worst = rel;
            cr_assert(err <= tol * scale + 1e-30,
                      "%s (%s): column %zu (source kind %d, layer %d, pos %d, feat %d), row %d (kind %d "
                      "layer %d pos %d): A = %.12g, intervention = %.12g, scale %.3g",
                      name, fp64 ? "fp64" : "fp32", col, s.kind, s.layer, s.pos, s.feat, t, tg[t].kind,
                      tg[t].layer, tg[t].pos, a, ref[t], scale);
        }
        if (s.kind == SRC_FEATURE) rep.n_feature_cols++;
        else if (s.kind == SRC_ERROR) rep.n_error_cols++;
        else rep.n_token_cols++;
        // the double reference agrees with the engine's own forward (a few columns of each kind)
        if (fp64 && (col % 37 == 0 || col == na || col == nc - 1) && n_cross < 12) {
            measure_fp32(&r, s, base_mid, base_log, tg, n, ref2);
            for (int t = 0; t < n; t++)
                cr_assert(fabs(ref2[t] - ref[t]) <= 1e-4 * scale + 1e-30,
                          "%s: double reference and engine forward disagree: column %zu row %d: %.9g vs %.9g",
                          name, col, t, ref[t], ref2[t]);
            n_cross++;
        }
    }
    cr_assert_geq(rep.n_feature_cols, 100);
    cr_assert_eq(rep.n_error_cols, r.L * T);
    cr_assert_eq(rep.n_token_cols, T);
    free(ref), free(ref2), free(base_mid), free(base_log), free(A), free(tg);
    replacement_free(&r);
    pool_destroy(pool);
    return rep;
}

// ---- exactness ---------------------------------------------------------------------------------------
static void stories_case(CltKind kind, CltActKind act, int skip, int F, int threads, const char *name) {
    Model m;
    int toks[24], T;
    tu_load_stories(&m, toks, &T, 16);
    Clt clt;
    tu_random_clt(&clt, &m, toks, T, F, kind, act, skip, 11 + (uint64_t)kind * 3 + (uint64_t)skip, 0.06);
    ExactReport a = check_exact(&m, &clt, toks, T, 0, threads, name);
    ExactReport b = check_exact(&m, &clt, toks, T, 1, threads, name);
    cr_log_info("%s: T %d, %d active, fp32 worst %.2e, fp64 worst %.2e", name, T, a.n_active, a.worst, b.worst);
    clt_free(&clt);
    model_free(&m);
}

Test(attribute, exact_stories_clt) { stories_case(CLT_CROSS_LAYER, CLT_ACT_JUMPRELU, 0, 256, 1, "stories260K CLT"); }
Test(attribute, exact_stories_plt) { stories_case(CLT_PER_LAYER, CLT_ACT_JUMPRELU, 0, 256, 2, "stories260K PLT"); }
Test(attribute, exact_stories_clt_skip) { stories_case(CLT_CROSS_LAYER, CLT_ACT_RELU, 1, 192, 2, "stories260K CLT+skip"); }
Test(attribute, exact_stories_plt_skip_topk) { stories_case(CLT_PER_LAYER, CLT_ACT_TOPK, 1, 128, 1, "stories260K PLT+skip TopK"); }

// The transcoder goes through the circuit-tracer files (clt_save + clt_load), bf16 decoders
// kept memory-mapped (converted row by row in the sweep).
Test(attribute, exact_stories_saved_bf16) {
    Model m;
    int toks[24], T;
    tu_load_stories(&m, toks, &T, 14);
    Clt c0, clt;
    tu_random_clt(&c0, &m, toks, T, 256, CLT_CROSS_LAYER, CLT_ACT_JUMPRELU, 0, 5, 0.06);
    char *dir = tu_mkdtemp("ct_attr_clt");
    cr_assert_eq(clt_save(&c0, dir, ST_BF16), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(clt_load(&clt, dir, 0), CT_OK, "%s", ct_errmsg());
    check_exact(&m, &clt, toks, T, 0, 2, "stories260K bf16 CLT from disk");
    check_exact(&m, &clt, toks, T, 1, 1, "stories260K bf16 CLT from disk");
    clt_free(&clt), clt_free(&c0);
    tu_rmtree(dir);
    free(dir);
    model_free(&m);
}

Test(attribute, exact_tiny_gqa_untied) {
    Model m;
    int toks[20];
    char *dir = tiny_model(&m, toks, 20, 3);
    Clt clt;
    tu_random_clt(&clt, &m, toks, 20, 96, CLT_CROSS_LAYER, CLT_ACT_JUMPRELU, 0, 9, 0.08);
    check_exact(&m, &clt, toks, 20, 0, 2, "tiny GQA untied CLT");
    check_exact(&m, &clt, toks, 20, 1, 2, "tiny GQA untied CLT");
    clt_free(&clt);
    tu_random_clt(&clt, &m, toks, 20, 96, CLT_PER_LAYER, CLT_ACT_RELU, 1, 10, 0.08);
    check_exact(&m, &clt, toks, 20, 0, 1, "tiny GQA untied PLT+skip");
    check_exact(&m, &clt, toks, 20, 1, 1, "tiny GQA untied PLT+skip");
    clt_free(&clt);
    model_free(&m);
    tu_rmtree(dir);
    free(dir);
}

// ---- graphs: budget, determinism, targets ----------------------------------------------------------
typedef struct Fix {
    Model m;
    Clt clt;
    int toks[24];
    int T;
} Fix;

static void fix_init(Fix *f, int F, int maxT) {
    tu_load_stories(&f->m, f->toks, &f->T, maxT);
    tu_random_clt(&f->clt, &f->m, f->toks, f->T, F, CLT_CROSS_LAYER, CLT_ACT_JUMPRELU, 0, 21, 0.06);
}
static void fix_free(Fix *f) {
    clt_free(&f->clt);
    model_free(&f->m);
}

static int graph_index_of(const Graph *g, int kind, int l, int p, int f) {
    for (int i = 0; i < g->n_nodes; i++) {
        const GraphNode *nd = &g->nodes[i];
        if (nd->kind == kind && nd->layer == l && nd->pos == p && (kind != NODE_FEATURE || nd->feature == f))
            return i;
    }
    return -1;
}

// The budget keeps M features; each kept edge equals the full graph's edge between the same
// nodes, bit for bit (a row does not depend on the batch it was computed in); every logit row
// is the same.  The first features chosen are the ones the logit rows rank highest.
Test(attribute, budget_rows_match_full_graph) {
    Fix f;
    fix_init(&f, 256, 16);
    Replacement r;
    cr_assert_eq(replacement_build(&r, &f.m, &f.clt, f.toks, f.T, NULL), CT_OK, "%s", ct_errmsg());
    AttribOptions o;
    attribute_options_default(&o);
    o.max_feature_nodes = INT32_MAX;
    Graph full, bud;
    cr_assert_eq(attribute_graph(&full, &r, &o), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(full.n_features, r.n_active);
    cr_assert_eq(graph_check(&full), CT_OK, "%s", ct_errmsg());
    o.max_feature_nodes = r.n_active / 3;
    o.batch = 16;
    o.update_interval = 2;
    cr_assert_eq(attribute_graph(&bud, &r, &o), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(graph_check(&bud), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(bud.n_features, r.n_active / 3);
    cr_assert_eq(bud.n_active_total, r.n_active);
    cr_assert_eq(bud.n_logits, full.n_logits);
    cr_assert_eq(graph_densify(&full), CT_OK);
    cr_assert_eq(graph_densify(&bud), CT_OK);
    int *map = malloc((size_t)bud.n_nodes * sizeof(int));
    for (int i = 0; i < bud.n_nodes; i++) {
        const GraphNode *nd = &bud.nodes[i];
        map[i] = graph_index_of(&full, nd->kind, nd->layer, nd->pos, nd->feature);
        if (nd->kind == NODE_LOGIT) map[i] = full.n_nodes - bud.n_logits + (i - (bud.n_nodes - bud.n_logits));
        cr_assert_geq(map[i], 0);
    }
    size_t nb = (size_t)bud.n_nodes, nf = (size_t)full.n_nodes, nonzero = 0;
    for (size_t t = 0; t < nb; t++)
        for (size_t s = 0; s < nb; s++) {
            float a = bud.adj[t * nb + s], b = full.adj[(size_t)map[t] * nf + (size_t)map[s]];
            cr_assert(a == b, "budget edge (%zu <- %zu) = %g, full graph %g", t, s, a, b);
            nonzero += a != 0;
        }
    cr_assert_gt(nonzero, 1000);
    // the most influential feature by the logit rows alone is in the budget graph
    size_t na = (size_t)r.n_active, nc = na + (size_t)r.L * r.T + r.T;
    int K = full.n_logits;
    float **lrow = malloc((size_t)K * sizeof(float *));
    double *lw = malloc((size_t)K * sizeof(double)), *lden = malloc((size_t)K * sizeof(double));
    float *rowsK = calloc((size_t)K * nc, sizeof(float));
    for (int k = 0; k < K; k++) {
        lrow[k] = rowsK + (size_t)k * nc;
        size_t t = nf - (size_t)K + (size_t)k;
        for (size_t s = 0; s < nc; s++) lrow[k][s] = full.adj[t * nf + s];
        lw[k] = full.nodes[t].prob;
        lden[k] = 0;
        for (size_t s = 0; s < nc; s++) lden[k] += fabs(lrow[k][s]);
    }
    float **frow = calloc(na, sizeof(float *));
    double *fden = calloc(na, sizeof(double)), *I = malloc(na * sizeof(double));
    attribute_partial_influence(&r, K, lrow, lw, lden, frow, fden, I);
    size_t best = 0;
    for (size_t s = 1; s < na; s++) if (I[s] > I[best]) best = s;
    cr_assert_gt(I[best], 0);
    cr_assert_geq(graph_index_of(&bud, NODE_FEATURE, r.act_layer[best], r.act_pos[best], r.act_feat[best]), 0,
                  "the top feature by logit influence was not selected");
    free(lrow), free(lw), free(lden), free(rowsK), free(frow), free(fden), free(I), free(map);
    graph_free(&full), graph_free(&bud);
    replacement_free(&r);
    fix_free(&f);
}

// The one-pass partial influence equals prune.c's series (an independent implementation) on
// the logit rows plus a random half of the feature rows.
Test(attribute, partial_influence_matches_prune) {
    Fix f;
    fix_init(&f, 192, 14);
    Replacement r;
    cr_assert_eq(replacement_build(&r, &f.m, &f.clt, f.toks, f.T, NULL), CT_OK, "%s", ct_errmsg());
    AttribOptions o;
    attribute_options_default(&o);
    o.max_feature_nodes = INT32_MAX;
    Graph g;
    cr_assert_eq(attribute_graph(&g, &r, &o), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(graph_densify(&g), CT_OK);
    int N = g.n_nodes, K = g.n_logits;
    size_t na = (size_t)r.n_active, nc = na + (size_t)r.L * r.T + r.T;
    TuRng rng;
    tu_rng_seed(&rng, 77);
    const float **rows = malloc((size_t)N * sizeof(float *));
    int32_t *row_node = malloc((size_t)N * sizeof(int32_t));
    float **frow = calloc(na, sizeof(float *)), **lrow = malloc((size_t)K * sizeof(float *));
    double *fden = calloc(na, sizeof(double)), *lden = calloc((size_t)K, sizeof(double));
    double *w = calloc((size_t)N, sizeof(double)), *lw = malloc((size_t)K * sizeof(double));
    double *Ip = malloc((size_t)N * sizeof(double)), *I = malloc(na * sizeof(double));
    size_t nrows = 0;
    for (int k = 0; k < K; k++) {
        int t = N - K + k;
        rows[nrows] = g.adj + (size_t)t * N, row_node[nrows++] = t;
        lrow[k] = g.adj + (size_t)t * N;
        for (size_t s = 0; s < nc; s++) lden[k] += fabs(lrow[k][s]);
        w[t] = lw[k] = g.nodes[t].prob;
    }
    int n_sel = 0;
    for (size_t s = 0; s < na; s++) {
        if (tu_rng_below(&rng, 2)) continue;
        rows[nrows] = g.adj + s * (size_t)N, row_node[nrows++] = (int32_t)s;
        frow[s] = g.adj + s * (size_t)N;
        // the row as attribute.c stores it: [features of lower layers | errors, tokens]
        size_t hi = (size_t)r.lp_start[(size_t)r.act_layer[s] * r.T];
        for (size_t c = hi; c < na; c++) cr_assert_eq(frow[s][c], 0.0f, "edge from a same/higher-layer feature");
        for (size_t c = 0; c < nc; c++) fden[s] += fabs(frow[s][c]);
        n_sel++;
    }
    cr_assert_gt(n_sel, 50);
    cr_assert_eq(prune_rows_influence(N, nrows, rows, row_node, w, Ip), CT_OK, "%s", ct_errmsg());
    attribute_partial_influence(&r, K, lrow, lw, lden, frow, fden, I);
    double mx = 0;
    for (size_t s = 0; s < na; s++) mx = Ip[s] > mx ? Ip[s] : mx;
    cr_assert_gt(mx, 0);
    for (size_t s = 0; s < na; s++)
        cr_assert(fabs(I[s] - Ip[s]) <= 1e-9 * mx, "feature %zu: one-pass %.12g, series %.12g", s, I[s], Ip[s]);
    free(rows), free(row_node), free(frow), free(lrow), free(fden), free(lden), free(w), free(lw), free(Ip), free(I);
    graph_free(&g);
    replacement_free(&r);
    fix_free(&f);
}

// Same inputs -> the same graph bytes for 1 and 2 threads and different batch sizes, and the
// same JSON file after pruning.
static char *graph_json(Graph *g, const char *dir, const char *name) {
    g->slug = strdup("same");
    g->prompt = strdup(PROMPT);
    g->model_path = strdup("m.bin");
    g->clt_path = strdup("clt");
    cr_assert_eq(prune_graph(g, 0.8, 0.98), CT_OK, "%s", ct_errmsg());
    char *path = tu_join(dir, name);
    cr_assert_eq(graph_write_json(g, path, 0), CT_OK, "%s", ct_errmsg());
    return path;
}

Test(attribute, deterministic_threads_and_batches) {
    Fix f;
    fix_init(&f, 256, 16);
    char *dir = tu_mkdtemp("ct_attr_det");
    Graph g[3];
    int th[3] = {1, 2, 2}, bs[3] = {64, 64, 5};
    char *json[3];
    for (int i = 0; i < 3; i++) {
        ThreadPool *pool = th[i] > 1 ? pool_create(th[i]) : NULL;
        Replacement r;
        cr_assert_eq(replacement_build(&r, &f.m, &f.clt, f.toks, f.T, pool), CT_OK, "%s", ct_errmsg());
        AttribOptions o;
        attribute_options_default(&o);
        o.max_feature_nodes = i == 0 ? INT32_MAX : r.n_active;   // same budget, spelled two ways
        o.batch = bs[i];
        o.pool = pool;
        cr_assert_eq(attribute_graph(&g[i], &r, &o), CT_OK, "%s", ct_errmsg());
        char name[32];
        snprintf(name, sizeof name, "g%d.json", i);
        json[i] = graph_json(&g[i], dir, name);
        replacement_free(&r);
        pool_destroy(pool);
    }
    for (int i = 1; i < 3; i++) {
        cr_assert_eq(g[i].sp_nnz, g[0].sp_nnz);
        cr_assert_eq(memcmp(g[i].sp_row, g[0].sp_row, ((size_t)g[0].n_nodes + 1) * sizeof(uint64_t)), 0);
        cr_assert_eq(memcmp(g[i].sp_col, g[0].sp_col, g[0].sp_nnz * sizeof(uint32_t)), 0);
        cr_assert_eq(memcmp(g[i].sp_val, g[0].sp_val, g[0].sp_nnz * sizeof(float)), 0,
                     "edge weights differ for %d threads, batch %d", th[i], bs[i]);
        size_t n0, n1;
        void *a = tu_read_file(json[0], &n0), *b = tu_read_file(json[i], &n1);
        cr_assert(a && b && n0 == n1 && memcmp(a, b, n0) == 0, "JSON differs for %d threads, batch %d", th[i], bs[i]);
        free(a), free(b);
    }
    // the JSON reads back; every link endpoint is a node
    Graph rb;
    cr_assert_eq(graph_read_json(&rb, json[0]), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(rb.n_nodes, g[0].n_kept_nodes);
    for (size_t e = 0; e < rb.sp_nnz; e++) cr_assert_lt(rb.sp_col[e], (uint32_t)rb.n_nodes);
    graph_free(&rb);
    for (int i = 0; i < 3; i++) graph_free(&g[i]), free(json[i]);
    tu_rmtree(dir);
    free(dir);
    fix_free(&f);
}

// fp64 sweeps give the fp32 graph's edges to fp32 accuracy.
Test(attribute, fp64_graph_close_to_fp32) {
    Fix f;
    fix_init(&f, 128, 12);
    Replacement r;
    cr_assert_eq(replacement_build(&r, &f.m, &f.clt, f.toks, f.T, NULL), CT_OK, "%s", ct_errmsg());
    AttribOptions o;
    attribute_options_default(&o);
    Graph a, b;
    cr_assert_eq(attribute_graph(&a, &r, &o), CT_OK, "%s", ct_errmsg());
    o.fp64 = 1;
    cr_assert_eq(attribute_graph(&b, &r, &o), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(a.n_nodes, b.n_nodes);
    cr_assert_eq(graph_densify(&a), CT_OK);
    cr_assert_eq(graph_densify(&b), CT_OK);
    size_t N = (size_t)a.n_nodes;
    for (size_t t = 0; t < N; t++) {
        double mx = 0;
        for (size_t s = 0; s < N; s++) mx = fmax(mx, fabs(b.adj[t * N + s]));
        for (size_t s = 0; s < N; s++)
            cr_assert(fabs(a.adj[t * N + s] - b.adj[t * N + s]) <= 1e-4 * mx, "row %zu col %zu: %g vs %g", t, s,
                      a.adj[t * N + s], b.adj[t * N + s]);
    }
    graph_free(&a), graph_free(&b);
    replacement_free(&r);
    fix_free(&f);
}

// Salient logits: most probable first, until the cumulative probability reaches the target,
// at most max_k; explicit targets and a difference give one logit node each, with the
// token's probability and logit.
Test(attribute, logit_targets) {
    Fix f;
    fix_init(&f, 64, 10);
    Replacement r;
    cr_assert_eq(replacement_build(&r, &f.m, &f.clt, f.toks, f.T, NULL), CT_OK, "%s", ct_errmsg());
    double *p = malloc((size_t)r.V * sizeof(double)), mx = -1e30, s = 0;
    for (int v = 0; v < r.V; v++) mx = fmax(mx, r.logits[v]);
    for (int v = 0; v < r.V; v++) s += p[v] = exp((double)r.logits[v] - mx);
    for (int v = 0; v < r.V; v++) p[v] /= s;
    int ids[10];
    double pr[10];
    for (int maxk = 1; maxk <= 10; maxk += 9)
        for (double q = 0.3; q < 1.0; q += 0.3) {
            int k = attribute_salient_logits(&r, maxk, q, ids, pr);
            cr_assert(k >= 1 && k <= maxk);
            double cum = 0;
            for (int i = 0; i < k; i++) {
                cr_assert_float_eq(pr[i], p[ids[i]], 1e-12);
                if (i) cr_assert_geq(pr[i - 1], pr[i]);
                int higher = 0;   // nothing left out is more probable
                for (int v = 0; v < r.V; v++) higher += p[v] > pr[i];
                cr_assert_leq(higher, i);
                cum += pr[i];
                if (i < k - 1) cr_assert_lt(cum, q, "stopped late");
            }
            if (k < maxk) cr_assert_geq(cum, q - 1e-12, "stopped early");
        }
    AttribOptions o;
    attribute_options_default(&o);
    int tt[2] = {ids[0], 100};
    o.target_tokens = tt, o.n_target_tokens = 2;
    Graph g;
    cr_assert_eq(attribute_graph(&g, &r, &o), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(g.n_logits, 2);
    const GraphNode *l1 = &g.nodes[g.n_nodes - 1];
    cr_assert_eq(l1->kind, NODE_LOGIT);
    cr_assert_eq(l1->token, 100);
    cr_assert_float_eq(l1->prob, (float)p[100], 1e-9);
    cr_assert_eq(l1->activation, r.logits[100]);
    cr_assert_eq(l1->pos, r.T - 1);
    cr_assert_eq(l1->layer, r.L);
    graph_free(&g);
    o.n_target_tokens = 0;
    o.diff_a = 100, o.diff_b = 200;
    cr_assert_eq(attribute_graph(&g, &r, &o), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(g.n_logits, 1);
    cr_assert_eq(g.nodes[g.n_nodes - 1].activation, r.logits[100] - r.logits[200]);
    graph_free(&g);
    free(p);
    replacement_free(&r);
    fix_free(&f);
}

// ---- bad inputs --------------------------------------------------------------------------------------
static void expect_err(int rc, const char *needle) {
    cr_assert_neq(rc, CT_OK, "expected an error mentioning '%s'", needle);
    cr_assert_not_null(strstr(ct_errmsg(), needle), "message '%s' lacks '%s'", ct_errmsg(), needle);
}

Test(attribute, bad_inputs) {
    Fix f;
    fix_init(&f, 64, 10);
    Replacement r;
    int *longp = malloc(600 * sizeof(int));
    for (int i = 0; i < 600; i++) longp[i] = i ? 300 : 1;
    expect_err(replacement_build(&r, &f.m, &f.clt, longp, f.m.c.seq_len + 1, NULL), "context");
    expect_err(replacement_build(&r, &f.m, &f.clt, f.toks, 0, NULL), "empty");
    free(longp);
    Clt c4, c32;
    CltActivation act = {CLT_ACT_RELU, 0};
    cr_assert_eq(clt_alloc(&c4, f.m.c.n_layers - 1, f.m.c.dim, 16, CLT_CROSS_LAYER, act, 0), CT_OK);
    cr_assert_eq(clt_alloc(&c32, f.m.c.n_layers, f.m.c.dim / 2, 16, CLT_CROSS_LAYER, act, 0), CT_OK);
    cr_assert_neq(replacement_build(&r, &f.m, &c4, f.toks, f.T, NULL), CT_OK);
    cr_log_info("layer mismatch: %s", ct_errmsg());
    cr_assert_neq(replacement_build(&r, &f.m, &c32, f.toks, f.T, NULL), CT_OK);
    cr_log_info("width mismatch: %s", ct_errmsg());
    clt_free(&c4), clt_free(&c32);

    cr_assert_eq(replacement_build(&r, &f.m, &f.clt, f.toks, f.T, NULL), CT_OK, "%s", ct_errmsg());
    AttribOptions o;
    Graph g;
    attribute_options_default(&o);
    o.max_feature_nodes = 0;
    expect_err(attribute_graph(&g, &r, &o), "budget");
    attribute_options_default(&o);
    o.batch = -1;
    expect_err(attribute_graph(&g, &r, &o), "batch");
    attribute_options_default(&o);
    int bad = f.m.c.vocab_size;
    o.target_tokens = &bad, o.n_target_tokens = 1;
    expect_err(attribute_graph(&g, &r, &o), "vocabulary");
    attribute_options_default(&o);
    o.diff_a = 5, o.diff_b = 5;
    expect_err(attribute_graph(&g, &r, &o), "distinct");
    Sweeper *sw;
    cr_assert_eq(sweeper_init(&sw, &r, 4, 0, NULL), CT_OK);
    float *row = malloc(sweeper_ncols(sw) * sizeof(float));
    AttribTarget t = {TARGET_FEATURE, r.L, 1, 0, -1, -1};
    expect_err(sweeper_rows(sw, &t, 1, &row, NULL), "outside");
    t = (AttribTarget){TARGET_LOGIT, 0, 0, 0, -3, -1};
    expect_err(sweeper_rows(sw, &t, 1, &row, NULL), "vocabulary");
    expect_err(sweeper_rows(sw, &t, 1, NULL, NULL), "rows expected");
    free(row);
    sweeper_free(sw);
    replacement_free(&r);
    fix_free(&f);
}

// ---- the driver: `ctrace attribute` ------------------------------------------------------------------
// The binary next to this test's directory (build/tests/test_attribute -> build/ctrace, and
// the same for the asan build).
static char *ctrace_bin(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert_gt(n, 0);
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    *slash = 0;
    slash = strrchr(exe, '/');
    cr_assert_not_null(slash);
    *slash = 0;
    char *bin = tu_join(exe, "ctrace");
    struct stat st;
    cr_assert_eq(stat(bin, &st), 0, "%s is missing: build it (make) before the tests", bin);
    return bin;
}

// Run `ctrace attribute <args>`; returns the exit status, stderr in *err (malloc'd).
static int run_attr(const char *tmp, const char *args, char **err) {
    char *bin = ctrace_bin(), *errf = tu_join(tmp, "stderr.txt");
    char *m = tu_shared_path("models/stories260K/stories260K.bin"), *z = tu_shared_path("models/stories260K/tok512.bin");
    size_t n = strlen(bin) + strlen(m) + strlen(z) + strlen(args) + strlen(errf) + 64;
    char *cmd = malloc(n);
    snprintf(cmd, n, "%s attribute %s -z %s %s >/dev/null 2>%s", bin, m, z, args, errf);
    int st = system(cmd);
    size_t len;
    *err = tu_read_file(errf, &len);
    if (*err) *err = realloc(*err, len + 1), (*err)[len] = 0;
    free(bin), free(errf), free(m), free(z), free(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void cli_expect_fail(const char *tmp, const char *args, const char *needle) {
    char *err = NULL;
    int rc = run_attr(tmp, args, &err);
    cr_assert_neq(rc, 0, "ctrace attribute %s: exit 0", args);
    cr_assert(err && strstr(err, needle), "ctrace attribute %s: stderr lacks '%s': %s", args, needle, err ? err : "");
    free(err);
}

Test(attribute, cli_identical_json_and_bad_inputs) {
    Fix f;
    fix_init(&f, 256, 16);
    char *tmp = tu_mkdtemp("ct_attr_cli");
    char *cdir = tu_join(tmp, "clt"), *c4 = tu_join(tmp, "clt4"), *c32 = tu_join(tmp, "clt32");
    cr_assert_eq(clt_save(&f.clt, cdir, ST_F32), CT_OK, "%s", ct_errmsg());
    Clt w;
    CltActivation act = {CLT_ACT_RELU, 0};
    cr_assert_eq(clt_alloc(&w, f.m.c.n_layers - 1, f.m.c.dim, 8, CLT_CROSS_LAYER, act, 0), CT_OK);
    cr_assert_eq(clt_save(&w, c4, ST_F32), CT_OK, "%s", ct_errmsg());
    clt_free(&w);
    cr_assert_eq(clt_alloc(&w, f.m.c.n_layers, f.m.c.dim / 2, 8, CLT_CROSS_LAYER, act, 0), CT_OK);
    cr_assert_eq(clt_save(&w, c32, ST_F32), CT_OK, "%s", ct_errmsg());
    clt_free(&w);

    // 1 and 2 threads: the same JSON and .ctg bytes; the index lists the graph
    char args[4096], *err = NULL;
    for (int th = 1; th <= 2; th++) {
        snprintf(args, sizeof args, "--clt %s -p '%s' -o %s/g%d.json --raw %s/g%d.ctg --slug same --threads %d",
                 cdir, PROMPT, tmp, th, tmp, th, th);
        cr_assert_eq(run_attr(tmp, args, &err), 0, "ctrace attribute failed: %s", err);
        free(err);
    }
    const char *ext[2] = {"json", "ctg"};
    for (int e = 0; e < 2; e++) {
        char p1[4200], p2[4200];
        snprintf(p1, sizeof p1, "%s/g1.%s", tmp, ext[e]);
        snprintf(p2, sizeof p2, "%s/g2.%s", tmp, ext[e]);
        size_t n1, n2;
        void *a = tu_read_file(p1, &n1), *b = tu_read_file(p2, &n2);
        cr_assert(a && b && n1 == n2 && memcmp(a, b, n1) == 0, "%s differs between 1 and 2 threads", ext[e]);
        free(a), free(b);
    }
    char *idx = tu_join(tmp, "graph-metadata.json");
    size_t ni;
    char *ix = tu_read_file(idx, &ni);
    cr_assert_not_null(ix, "no graph-metadata.json");
    ix = realloc(ix, ni + 1), ix[ni] = 0;
    cr_assert_not_null(strstr(ix, "\"same\""));
    free(ix), free(idx);
    Graph g;
    snprintf(args, sizeof args, "%s/g1.ctg", tmp);
    cr_assert_eq(graph_read_ctg(&g, args), CT_OK, "%s", ct_errmsg());
    cr_assert_gt(g.n_features, 100);
    cr_assert_eq(g.n_errors, g.L * g.T);
    cr_assert(g.replacement_score > 0 && g.replacement_score <= 1);
    graph_free(&g);

    // bad inputs
    char *many = malloc(8 * 600);
    many[0] = 0;
    for (int i = 0; i <= f.m.c.seq_len; i++) strcat(many, i ? ",300" : "1");
    snprintf(args, sizeof args, "--clt %s --tokens %s -o %s/x.json", cdir, many, tmp);
    cli_expect_fail(tmp, args, "context");
    free(many);
    snprintf(args, sizeof args, "--clt %s -p '' -o %s/x.json", cdir, tmp);
    cli_expect_fail(tmp, args, "empty");
    snprintf(args, sizeof args, "--clt %s -p hello -o %s/x.json", c4, tmp);
    cli_expect_fail(tmp, args, "layer");
    snprintf(args, sizeof args, "--clt %s -p hello -o %s/x.json", c32, tmp);
    cli_expect_fail(tmp, args, "D = 64");
    snprintf(args, sizeof args, "--clt %s -p hello -o %s/x.json --target 512", cdir, tmp);
    cli_expect_fail(tmp, args, "vocabulary");
    snprintf(args, sizeof args, "--clt %s -p hello -o %s/x.json --max-feature-nodes 0", cdir, tmp);
    cli_expect_fail(tmp, args, "budget");
    snprintf(args, sizeof args, "--clt %s -p hello -o /nonexistent/dir/x.json", cdir);
    cli_expect_fail(tmp, args, "/nonexistent/dir");
    snprintf(args, sizeof args, "%s/x.json", tmp);
    struct stat st;
    cr_assert_neq(stat(args, &st), 0, "a failed run left %s behind", args);

    tu_rmtree(tmp);
    free(tmp), free(cdir), free(c4), free(c32);
    fix_free(&f);
}

// A transcoder trained on another site (the normalised MLP input) is refused, not mis-attributed.
Test(attribute, refuses_other_hook_sites) {
    Fix f;
    fix_init(&f, 32, 8);
    Replacement r;
    free(f.clt.input_hook);
    f.clt.input_hook = strdup("ln2.hook_normalized");
    expect_err(replacement_build(&r, &f.m, &f.clt, f.toks, f.T, NULL), "feature_input_hook");
    free(f.clt.input_hook);
    f.clt.input_hook = strdup("blocks.0.hook_resid_mid");
    free(f.clt.output_hook);
    f.clt.output_hook = strdup("hook_resid_post");
    expect_err(replacement_build(&r, &f.m, &f.clt, f.toks, f.T, NULL), "feature_output_hook");
    fix_free(&f);
}
