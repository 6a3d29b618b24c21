// test_hf_attribute.c — attribution is exact on every Hugging Face architecture (Llama-3,
// Qwen3, Gemma-2, GPT-2): every edge equals an intervention through the frozen model.
//
// For a source s (feature, error or token) and every target t (every active feature's
// pre-activation, every salient logit before any final soft-cap, a logit difference), A[t, s]
// must equal the change of t when s's contribution is added at its location with attention
// patterns, every norm factor (Gemma's post-norms, Qwen's head norms, GPT-2's LayerNorm sigma)
// and every MLP output frozen at the clean run:
//   feature s = (l_s, p_s, f_s):  a_s * W_dec[l_s][f_s][l - l_s] added to the transcoder output
//                                 of layer l >= l_s at p_s (Gemma-2: after the post-MLP norm)
//   error (l, p):                 eps_l(p) added there
//   token p:                      the embedding output at p (Gemma: scaled; GPT-2: + position)
// Two independent references:
//   fp32: the engine's real forward (model_forward_seq_hooked, everything frozen) with a hook
//         adding the scaled vector; logits before the soft-cap are W_U final_normed, from the
//         capture.  Tolerance 1e-4 of the column's scale (its largest |change|).
//   fp64: a double-precision frozen linear model written here from the architecture
//         description (ref64), reading the clean capture's patterns and norm factors and
//         propagating the change only.  Tolerance 1e-9 of the column's scale; it is itself
//         checked against the fp32 reference on a few columns.
// Transcoders are random (tests/lib/testclt.c), written in circuit-tracer's layout and read
// back (clt_save / clt_load), with Gemma-2's input hook ln2.hook_normalized.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/attribute.h"
#include "engine/intervene.h"
#include "engine/prune.h"
#include "tests/lib/testclt.h"
#include "tests/lib/testutil.h"

static char *arch_dir(const char *arch) {
    char rel[128];
    snprintf(rel, sizeof rel, "models/hf-tiny/%s", arch);
    return tu_shared_path(rel);
}

static void load_arch(Model *m, const char *arch, int *toks, int T, uint64_t seed) {
    char *dir = arch_dir(arch);
    cr_assert_eq(model_open(m, dir), CT_OK, "%s", ct_errmsg());
    free(dir);
    TuRng rng;
    tu_rng_seed(&rng, seed);
    for (int i = 0; i < T; i++) toks[i] = (int)tu_rng_below(&rng, (uint32_t)m->c.vocab_size);
}

// A random transcoder calibrated on the prompt, saved in circuit-tracer's layout and loaded back.
static void hf_clt(Clt *c, const Model *m, const int *toks, int T, int F, CltKind kind, CltActKind act, int skip,
                   uint64_t seed, StDtype dt) {
    Clt c0;
    tu_random_clt(&c0, m, toks, T, F, kind, act, skip, seed, 0.08);
    free(c0.input_hook);
    c0.input_hook = strdup(model_tc_input_hook(&m->c));
    char *dir = tu_mkdtemp("ct_hfattr_clt");
    cr_assert_eq(clt_save(&c0, dir, dt), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(clt_load(c, dir, 0), CT_OK, "%s", ct_errmsg());
    cr_assert_str_eq(c->input_hook, model_tc_input_hook(&m->c));
    clt_free(&c0);
    tu_rmtree(dir);
    free(dir);
}

// ---- sources --------------------------------------------------------------------------------------
enum { SRC_NONE = -1, SRC_FEATURE = 0, SRC_ERROR = 1, SRC_TOKEN = 2 };
typedef struct Source {
    int kind, layer, pos, feat;
    float act;
} Source;

// The source's vector at (layer l, pos) (features: a_s W_dec[l_s][f][l - l_s]), in double.
static int source_vec(const Replacement *r, Source s, int l, int p, double *out) {
    int D = r->D;
    float *tmp = malloc(sizeof(float) * (size_t)D);
    int on = 0;
    if (s.kind == SRC_TOKEN && l < 0 && p == s.pos) {
        model_embed(r->m, r->tokens[p], p, tmp);
        for (int i = 0; i < D; i++) out[i] = tmp[i];
        on = 1;
    } else if (s.kind == SRC_ERROR && l == s.layer && p == s.pos) {
        for (int i = 0; i < D; i++) out[i] = r->eps[((size_t)l * r->T + p) * D + i];
        on = 1;
    } else if (s.kind == SRC_FEATURE && l >= s.layer && p == s.pos &&
               (r->clt->kind == CLT_CROSS_LAYER || l == s.layer)) {
        cr_assert_eq(clt_decoder_row(r->clt, s.layer, s.feat, l, tmp), CT_OK);
        for (int i = 0; i < D; i++) out[i] = (double)s.act * tmp[i];
        on = 1;
    }
    free(tmp);
    return on;
}

static Source column_source(const Replacement *r, size_t col) {
    size_t na = (size_t)r->n_active, LT = (size_t)r->L * r->T;
    if (col < na) return (Source){SRC_FEATURE, r->act_layer[col], r->act_pos[col], r->act_feat[col], r->act_val[col]};
    if (col < na + LT) return (Source){SRC_ERROR, (int)((col - na) / r->T), (int)((col - na) % r->T), -1, 0};
    return (Source){SRC_TOKEN, -1, (int)(col - na - LT), -1, 0};
}

// ---- fp32 reference: the engine's frozen forward with a hook ----------------------------------------
typedef struct HookCtx {
    const Replacement *r;
    Source s;
    double c;        // injection scale
    float *mid;      // (T, L, D) transcoder inputs of this run (for the skip)
    double *v;       // (D) scratch
} HookCtx;

static void inject_hook(void *ctx, HookSite site, int layer, int pos, float *vec) {
    HookCtx *h = ctx;
    const Replacement *r = h->r;
    const Clt *clt = r->clt;
    int D = r->D, L = r->L;
    if (site == HOOK_RESID_MID) {
        memcpy(h->mid + ((size_t)pos * L + layer) * D, vec, (size_t)D * sizeof(float));
        return;
    }
    if (site == HOOK_MLP_OUT && clt->has_skip) {   // the skip stays linear: W_skip (x - x_clean)
        const float *W = clt->layers[layer].W_skip;
        const float *x = h->mid + ((size_t)pos * L + layer) * D, *x0 = r->cap.resid_mid + ((size_t)pos * L + layer) * D;
        for (int o = 0; o < D; o++) {
            double s = 0;
            for (int i = 0; i < D; i++) s += (double)W[(size_t)o * D + i] * ((double)x[i] - (double)x0[i]);
            vec[o] = (float)((double)vec[o] + s);
        }
    }
    if (h->s.kind != SRC_NONE && source_vec(r, h->s, site == HOOK_EMBED ? -1 : layer, pos, h->v))
        for (int i = 0; i < D; i++) vec[i] = (float)((double)vec[i] + h->c * h->v[i]);
}

// Frozen run with source s (or none): transcoder inputs (T, L, D) and the last position's logits
// before the soft-cap, W_U final_normed, in double (V).
static void frozen_run(const Replacement *r, Source s, double c, float *mid, double *logits) {
    const Model *m = r->m;
    int D = r->D, T = r->T;
    RunState rs;
    Capture cap;
    cr_assert_eq(runstate_init(&rs, &m->c, T), CT_OK);
    cr_assert_eq(capture_init(&cap, &m->c, T, CAP_NORMS), CT_OK);
    double *v = malloc(sizeof(double) * (size_t)D);
    HookCtx h = {r, s, c, mid, v};
    ForwardHooks hk = {.frozen = &r->cap, .freeze_attn = 1, .freeze_norms = 1, .freeze_mlp = 1,
                       .hook = inject_hook, .ctx = &h};
    cr_assert_eq(model_forward_seq_hooked(m, &rs, r->tokens, T, NULL, &cap, NULL, &hk), CT_OK, "%s", ct_errmsg());
    const float *xf = cap.final_normed + (size_t)(T - 1) * D;
    for (int u = 0; u < r->V; u++) {
        double acc = 0;
        for (int i = 0; i < D; i++) acc += (double)m->w.wcls[(size_t)u * D + i] * xf[i];
        logits[u] = acc;
    }
    capture_free(&cap);
    runstate_free(&rs);
    free(v);
}

// ---- fp64 reference: the frozen linear model in double, from the architecture description ---------
// Only the change dx of the residual is propagated (the frozen model is affine; biases and the
// frozen MLP outputs are constants).  Per layer:
//   value path:  dxa(t) = inv_att(t) * g_att ⊙ C(dx(t))      C = centring for LayerNorm, else identity
//                dv(t) = Wv dxa(t);  do(p)_h = sum_t A[h,p,t] dv(t)_{kv(h)};  da = Wo do
//                Gemma: da = inv_post_att(p) * g_post_att ⊙ da;   dx(p) += da
//   transcoder:  dx_l(p) = dx(p) (Gemma: * inv_rms_ffn(p));  dmlp = source + W_skip dx_l;  dx += dmlp
//   final:       dlogits = W_U (inv_final * g_final ⊙ C(dx(T-1)))
static void center(double *x, int D) {
    double m = 0;
    for (int i = 0; i < D; i++) m += x[i];
    m /= D;
    for (int i = 0; i < D; i++) x[i] -= m;
}

static void ref64(const Replacement *r, Source s, double *dmid /*(T,L,D)*/, double *dlog /*(V)*/) {
    const Model *m = r->m;
    const Config *c = &m->c;
    const Weights *w = &m->w;
    const Clt *clt = r->clt;
    int L = r->L, T = r->T, D = r->D, V = r->V, H = c->n_heads, Hkv = c->n_kv_heads, Dh = c->head_dim;
    int Dq = H * Dh, Dkv = Hkv * Dh, grp = H / Hkv, ln = c->norm_kind == NORM_LAYER, post = c->post_norms;
    size_t Tc = (size_t)r->cap.T;
    double *x = calloc((size_t)T * D, sizeof(double)), *v = malloc(sizeof(double) * (size_t)T * Dkv);
    double *o = malloc(sizeof(double) * (size_t)Dq), *mo = malloc(sizeof(double) * (size_t)D);
    double *xa = malloc(sizeof(double) * (size_t)D), *sv = malloc(sizeof(double) * (size_t)D);
    double *da = malloc(sizeof(double) * (size_t)T * D);
    if (s.kind == SRC_TOKEN) source_vec(r, s, -1, s.pos, x + (size_t)s.pos * D);
    for (int l = 0; l < L; l++) {
        for (int t = 0; t < T; t++) {
            double inv = r->cap.inv_rms_att[(size_t)t * L + l];
            memcpy(xa, x + (size_t)t * D, sizeof(double) * (size_t)D);
            if (ln) center(xa, D);
            for (int i = 0; i < D; i++) xa[i] *= (double)w->rms_att[(size_t)l * D + i] * inv;
            for (int j = 0; j < Dkv; j++) {
                double acc = 0;
                const float *wv = w->wv + ((size_t)l * Dkv + j) * D;
                for (int i = 0; i < D; i++) acc += (double)wv[i] * xa[i];
                v[(size_t)t * Dkv + j] = acc;
            }
        }
        for (int p = 0; p < T; p++) {
            for (int h = 0; h < H; h++)
                for (int d = 0; d < Dh; d++) {
                    double acc = 0;
                    for (int t = 0; t <= p; t++)
                        acc += (double)r->cap.att[(((size_t)l * H + h) * Tc + p) * Tc + t] *
                               v[(size_t)t * Dkv + (size_t)(h / grp) * Dh + d];
                    o[h * Dh + d] = acc;
                }
            double ipa = post ? r->cap.inv_post_att[(size_t)p * L + l] : 1.0;
            for (int i = 0; i < D; i++) {
                double acc = 0;
                const float *wo = w->wo + ((size_t)l * D + i) * Dq;
                for (int j = 0; j < Dq; j++) acc += (double)wo[j] * o[j];
                da[(size_t)p * D + i] = post ? acc * ipa * w->post_att[(size_t)l * D + i] : acc;
            }
        }
        for (size_t e = 0; e < (size_t)T * D; e++) x[e] += da[e];
        for (int p = 0; p < T; p++) {
            double *xp = x + (size_t)p * D, *dm = dmid + ((size_t)p * L + l) * D;
            double sf = post ? r->cap.inv_rms_ffn[(size_t)p * L + l] : 1.0;
            for (int i = 0; i < D; i++) dm[i] = sf * xp[i];
            for (int i = 0; i < D; i++) mo[i] = 0;
            if (clt->has_skip)
                for (int i = 0; i < D; i++) {
                    double acc = 0;
                    for (int j = 0; j < D; j++) acc += (double)clt->layers[l].W_skip[(size_t)i * D + j] * dm[j];
                    mo[i] = acc;
                }
            if (source_vec(r, s, l, p, sv))
                for (int i = 0; i < D; i++) mo[i] += sv[i];
            for (int i = 0; i < D; i++) xp[i] += mo[i];
        }
    }
    double invf = r->cap.inv_rms_final[T - 1];
    memcpy(xa, x + (size_t)(T - 1) * D, sizeof(double) * (size_t)D);
    if (ln) center(xa, D);
    for (int i = 0; i < D; i++) xa[i] *= (double)w->rms_final[i] * invf;
    for (int u = 0; u < V; u++) {
        double acc = 0;
        for (int i = 0; i < D; i++) acc += (double)w->wcls[(size_t)u * D + i] * xa[i];
        dlog[u] = acc;
    }
    free(x), free(v), free(o), free(mo), free(xa), free(sv), free(da);
}

// ---- targets ---------------------------------------------------------------------------------------

// Column through the engine's fp32 frozen forward, scaled so the injected vector is as large as
// the residual there (then divided back: the frozen model is affine).
static void measure_fp32(const Replacement *r, Source s, const float *base_mid, const double *base_log,
                         const AttribTarget *tg, int n, double *ref) {
    size_t LTD = (size_t)r->T * r->L * r->D;
    int D = r->D;
    float *mid = malloc(LTD * sizeof(float));
    double *lg = malloc((size_t)r->V * sizeof(double)), *dmid = malloc(LTD * sizeof(double));
    double *sv = malloc(sizeof(double) * (size_t)D), nv = 0, nres = 0;
    source_vec(r, s, s.kind == SRC_TOKEN ? -1 : s.layer, s.pos, sv);
    for (int i = 0; i < D; i++) nv += sv[i] * sv[i];
    const float *res = r->cap.resid_pre + ((size_t)s.pos * (r->L + 1) + (s.kind == SRC_TOKEN ? 0 : s.layer + 1)) * D;
    for (int i = 0; i < D; i++) nres += (double)res[i] * res[i];
    double c = nv > 0 ? sqrt(nres / nv) : 1.0;
    if (!(c > 1e-3)) c = 1e-3;
    if (c > 1e6) c = 1e6;
    frozen_run(r, s, c, mid, lg);
    for (size_t i = 0; i < LTD; i++) dmid[i] = ((double)mid[i] - (double)base_mid[i]) / c;
    for (int u = 0; u < r->V; u++) lg[u] = (lg[u] - base_log[u]) / c;
    tu_target_changes(r, tg, n, dmid, lg, ref);
    free(mid), free(lg), free(dmid), free(sv);
}

static void measure_fp64(const Replacement *r, Source s, const AttribTarget *tg, int n, double *ref) {
    size_t LTD = (size_t)r->T * r->L * r->D;
    double *dmid = malloc(LTD * sizeof(double)), *dlog = malloc((size_t)r->V * sizeof(double));
    ref64(r, s, dmid, dlog);
    tu_target_changes(r, tg, n, dmid, dlog, ref);
    free(dmid), free(dlog);
}

// ---- the check -------------------------------------------------------------------------------------
typedef struct ExactReport {
    int n_feature_cols, n_error_cols, n_token_cols, n_rows, n_active;
    double worst;
} ExactReport;

static ExactReport check_exact(const Model *m, const Clt *clt, const int *toks, int T, int fp64, int threads,
                               const char *name) {
    ThreadPool *pool = threads > 1 ? pool_create(threads) : NULL;
    Replacement r;
    cr_assert_eq(replacement_build(&r, m, clt, toks, T, pool), CT_OK, "%s: %s", name, ct_errmsg());
    cr_assert_geq(r.n_active, 60, "%s: only %d active features", name, r.n_active);
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
    cr_assert_eq(sweeper_init(&sw, &r, 29, fp64, pool), CT_OK, "%s", ct_errmsg());
    size_t nc = sweeper_ncols(sw);
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

    size_t LTD = (size_t)T * r.L * r.D;
    float *base_mid = malloc(LTD * sizeof(float));
    double *base_log = malloc((size_t)r.V * sizeof(double));
    frozen_run(&r, (Source){SRC_NONE, 0, 0, 0, 0}, 1.0, base_mid, base_log);

    ExactReport rep = {0, 0, 0, n, r.n_active, 0};
    size_t na = (size_t)r.n_active, fstep = na / 70 ? na / 70 : 1;
    double tol = fp64 ? 1e-9 : 1e-4;
    double *ref = malloc((size_t)n * sizeof(double)), *ref2 = malloc((size_t)n * sizeof(double));
    int n_cross = 0;
    for (size_t col = 0; col < nc; col++) {
        if (col < na && col % fstep != 0 && col != na - 1) continue;
        Source s = column_source(&r, col);
        if (fp64) measure_fp64(&r, s, tg, n, ref);
        else measure_fp32(&r, s, base_mid, base_log, tg, n, ref);
        double scale = 0;
        for (int t = 0; t < n; t++) scale = fmax(scale, fabs(ref[t]));
        for (int t = 0; t < n; t++) {
            double a = A[(size_t)t * nc + col], err = fabs(a - ref[t]);
            rep.worst = fmax(rep.worst, scale > 0 ? err / scale : err);
            cr_assert(err <= tol * scale + 1e-30,
                      "%s (%s): column %zu (source kind %d, layer %d, pos %d, feat %d), row %d (kind %d layer %d pos %d): "
                      "A = %.12g, intervention = %.12g, scale %.3g",
                      name, fp64 ? "fp64" : "fp32", col, s.kind, s.layer, s.pos, s.feat, t, tg[t].kind, tg[t].layer,
                      tg[t].pos, a, ref[t], scale);
        }
        if (s.kind == SRC_FEATURE) rep.n_feature_cols++;
        else if (s.kind == SRC_ERROR) rep.n_error_cols++;
        else rep.n_token_cols++;
        // the double reference agrees with the engine's own frozen forward (a few columns of each kind)
        if (fp64 && (col % 31 == 0 || col == na || col == nc - 1) && n_cross < 12) {
            measure_fp32(&r, s, base_mid, base_log, tg, n, ref2);
            for (int t = 0; t < n; t++)
                cr_assert(fabs(ref2[t] - ref[t]) <= 1e-4 * scale + 1e-30,
                          "%s: double reference and engine forward disagree: column %zu row %d: %.9g vs %.9g", name, col,
                          t, ref[t], ref2[t]);
            n_cross++;
        }
    }
    cr_assert_geq(rep.n_feature_cols, 50);
    cr_assert_eq(rep.n_error_cols, r.L * T);
    cr_assert_eq(rep.n_token_cols, T);
    free(ref), free(ref2), free(base_mid), free(base_log), free(A), free(tg);
    replacement_free(&r);
    pool_destroy(pool);
    return rep;
}

static void arch_case(const char *arch, uint64_t seed) {
    Model m;
    int T = 16, toks[16];
    load_arch(&m, arch, toks, T, seed);
    struct { CltKind kind; CltActKind act; int skip, F, threads; StDtype dt; const char *what; } v[2] = {
        {CLT_CROSS_LAYER, CLT_ACT_JUMPRELU, 0, 192, 2, ST_F32, "CLT JumpReLU"},
        {CLT_PER_LAYER, CLT_ACT_RELU, 1, 160, 1, ST_BF16, "PLT+skip ReLU bf16"},
    };
    for (int i = 0; i < 2; i++) {
        Clt clt;
        hf_clt(&clt, &m, toks, T, v[i].F, v[i].kind, v[i].act, v[i].skip, seed * 7 + (uint64_t)i, v[i].dt);
        char name[128];
        snprintf(name, sizeof name, "%s %s", arch, v[i].what);
        ExactReport a = check_exact(&m, &clt, toks, T, 0, v[i].threads, name);
        ExactReport b = check_exact(&m, &clt, toks, T, 1, v[i].threads, name);
        cr_log_info("%s: T %d, %d active, %d feature / %d error / %d token columns, %d rows: fp32 worst %.2e, fp64 worst %.2e",
                    name, T, a.n_active, a.n_feature_cols, a.n_error_cols, a.n_token_cols, a.n_rows, a.worst, b.worst);
        clt_free(&clt);
    }
    model_free(&m);
}

Test(hf_attribute, exact_llama) { arch_case("llama", 11); }
Test(hf_attribute, exact_qwen3) { arch_case("qwen3", 12); }
Test(hf_attribute, exact_gemma2) { arch_case("gemma2", 13); }
Test(hf_attribute, exact_gpt2) { arch_case("gpt2", 14); }

// The whole pipeline on every architecture: a budgeted graph, pruning, and constrained
// interventions that reproduce the graph's direct edges (iv_validate; pre-soft-cap logits for
// Gemma-2).
Test(hf_attribute, graph_and_constrained_validation) {
    const char *archs[4] = {"llama", "qwen3", "gemma2", "gpt2"};
    for (int a = 0; a < 4; a++) {
        Model m;
        int T = 14, toks[14];
        load_arch(&m, archs[a], toks, T, 40 + (uint64_t)a);
        Clt clt;
        hf_clt(&clt, &m, toks, T, 128, CLT_CROSS_LAYER, CLT_ACT_JUMPRELU, 0, 90 + (uint64_t)a, ST_F32);
        Replacement r;
        cr_assert_eq(replacement_build(&r, &m, &clt, toks, T, NULL), CT_OK, "%s", ct_errmsg());
        AttribOptions o;
        attribute_options_default(&o);
        o.max_feature_nodes = r.n_active / 2;
        o.batch = 16;
        Graph g;
        cr_assert_eq(attribute_graph(&g, &r, &o), CT_OK, "%s: %s", archs[a], ct_errmsg());
        cr_assert_eq(graph_check(&g), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(g.n_features, r.n_active / 2);
        cr_assert_eq(prune_graph(&g, 0.8, 0.98), CT_OK, "%s", ct_errmsg());
        IvContext cx;
        cr_assert_eq(iv_context_init(&cx, &m, &clt, toks, T, NULL), CT_OK, "%s", ct_errmsg());
        IvValidation val;
        cr_assert_eq(iv_validate(&cx, &g, 3, 0, &val), CT_OK, "%s: %s", archs[a], ct_errmsg());
        for (int k = 0; k < 2; k++) {
            const IvStats *st = &val.overall[IV_VAL_CONSTRAINED][k];
            cr_assert_gt(st->n, 0);
            cr_assert(st->max_abs_err <= 1e-3 * st->max_abs_pred + 1e-6,
                      "%s: constrained %s: max error %.3g vs max prediction %.3g (pearson %.6f)", archs[a],
                      k ? "doubling" : "ablation", st->max_abs_err, st->max_abs_pred, st->pearson);
        }
        cr_log_info("%s: %d features, constrained ablation pearson %.6f max err %.2e / %.2e", archs[a], g.n_features,
                    val.overall[0][0].pearson, val.overall[0][0].max_abs_err, val.overall[0][0].max_abs_pred);
        iv_validation_free(&val);
        iv_context_free(&cx);
        graph_free(&g);
        replacement_free(&r);
        clt_free(&clt);
        model_free(&m);
    }
}

// A Gemma-2 transcoder must read ln2.hook_normalized; one labelled hook_resid_mid is refused.
Test(hf_attribute, gemma_refuses_resid_mid_transcoder) {
    Model m;
    int T = 10, toks[10];
    load_arch(&m, "gemma2", toks, T, 5);
    Clt clt;
    tu_random_clt(&clt, &m, toks, T, 32, CLT_CROSS_LAYER, CLT_ACT_RELU, 0, 3, 0.1);
    cr_assert_str_eq(clt.input_hook, "hook_resid_mid");
    Replacement r;
    cr_assert_neq(replacement_build(&r, &m, &clt, toks, T, NULL), CT_OK);
    cr_assert_not_null(strstr(ct_errmsg(), "ln2.hook_normalized"), "%s", ct_errmsg());
    clt_free(&clt);
    model_free(&m);
}
