// test_intervene.c — interventions, steering and graph validation (engine/intervene.h).
//
//   zero:        value = current activation (and scale 1, and 0 on an inactive feature) leaves
//                every logit bit-identical in every mode; a nonzero one changes them.
//   constrained: over all layers (and a sub-range), the change of every feature pre-activation
//                and every logit equals a double-precision frozen linear model written here
//                (frozen patterns, 1/rms factors and MLP outputs read from the clean capture;
//                the change alone is propagated), for a CLT, a PLT and a CLT with skip.
//   semantics:   constrained uses the clean activation of a later intervened feature even
//                when the residual moved; iterative re-encodes it; the real MLP's output at the
//                intervened layer moves by exactly delta * W_dec.
//   steering:    KV-cached steered generation equals recomputing the whole sequence from
//                scratch (no cache) with the same intervention, bit for bit, across a prefill
//                chunk boundary; and it differs from the unsteered text.
//   validate:    on a graph from attribute_graph, constrained predictions equal the measured
//                changes (correlation 1, errors at fp32 rounding); the iterative predictions
//                equal a dense Neumann-series (I - E)^-1 computed here.
//   stats:       hand-computed Pearson / Spearman (ties) / cosine / sign agreement.
//   errors:      malformed specs, feature/layer/position out of range, empty ranges.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/attribute.h"
#include "engine/intervene.h"
#include "engine/prune.h"
#include "engine/tokenizer.h"
#include "tests/lib/testclt.h"
#include "tests/lib/testutil.h"

#define PROMPT TU_STORIES_PROMPT

static IvSpec spec(int kind, int l, int p0, int p1, int f, float v) {
    IvSpec s;
    memset(&s, 0, sizeof s);
    s.kind = kind, s.layer = l, s.pos_lo = p0, s.pos_hi = p1, s.feature = f, s.value = v;
    return s;
}

// An active (clean) feature at (l, p): the first with a nonzero activation.
static int active_feature(IvContext *cx, int l, int p, float *a) {
    const float *x = cx->clean.resid_mid + ((size_t)p * cx->L + l) * cx->D;
    for (int f = 0; f < cx->F; f++) {
        *a = iv_feature_act(cx->clt, l, f, x, cx->scratch);
        if (*a != 0) return f;
    }
    cr_assert_fail("no active feature at layer %d position %d", l, p);
    return -1;
}
static int inactive_feature(IvContext *cx, int l, int p) {
    const float *x = cx->clean.resid_mid + ((size_t)p * cx->L + l) * cx->D;
    for (int f = 0; f < cx->F; f++)
        if (iv_feature_act(cx->clt, l, f, x, cx->scratch) == 0) return f;
    cr_assert_fail("no inactive feature at layer %d position %d", l, p);
    return -1;
}

// ---- zero interventions ------------------------------------------------------------------------
Test(intervene, zero_is_bit_identical_in_every_mode) {
    Model m;
    int toks[32], T;
    tu_load_stories(&m, toks, &T, 12);
    Clt clt;
    tu_random_clt(&clt, &m, toks, T, 64, CLT_CROSS_LAYER, CLT_ACT_JUMPRELU, 1, 3, 0.1);
    IvContext cx;
    cr_assert_eq(iv_context_init(&cx, &m, &clt, toks, T, NULL), CT_OK, "%s", ct_errmsg());
    size_t TV = (size_t)T * cx.V;
    float a1, a2;
    int f1 = active_feature(&cx, 1, 4, &a1), f2 = active_feature(&cx, 2, 7, &a2);
    int f3 = inactive_feature(&cx, 3, 5);
    struct { IvMode mode; int lo, hi; } modes[] = {
        {IV_CONSTRAINED, 0, 4}, {IV_CONSTRAINED, 1, 3}, {IV_CONSTRAINED, 0, 0}, {IV_ITERATIVE, 0, 4},
        {IV_ITERATIVE, 2, 4}, {IV_OPEN, 0, 4}};
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        Intervention iv;
        intervention_init(&iv);
        IvSpec s1 = spec(IV_SET, 1, 4, 4, f1, a1), s2 = spec(IV_SCALE, 2, 7, 7, f2, 1.0f);
        IvSpec s3 = spec(IV_SET, 3, 5, 5, f3, 0.0f);
        intervention_add(&iv, &s1), intervention_add(&iv, &s2), intervention_add(&iv, &s3);
        cr_assert_eq(iv_run(&cx, &iv, modes[k].mode, modes[k].lo, modes[k].hi), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(cx.n_applied, 3);
        for (int i = 0; i < 3; i++) cr_assert_eq(cx.applied[i].delta, 0.0f, "mode %zu spec %d delta", k, i);
        cr_assert(memcmp(cx.logits, cx.clean_logits, TV * sizeof(float)) == 0,
                  "zero intervention changed logits in %s mode, layers %d..%d", iv_mode_name(modes[k].mode),
                  modes[k].lo, modes[k].hi);
        cr_assert(memcmp(cx.run.resid_mid, cx.clean.resid_mid, (size_t)T * cx.L * cx.D * sizeof(float)) == 0);
        // ... and a real one changes them (the check above is not vacuous).
        iv.specs[0].value = a1 + 2.0f;
        cr_assert_eq(iv_run(&cx, &iv, modes[k].mode, modes[k].lo, modes[k].hi), CT_OK, "%s", ct_errmsg());
        cr_assert(memcmp(cx.logits + (size_t)(T - 1) * cx.V, cx.clean_logits + (size_t)(T - 1) * cx.V,
                         (size_t)cx.V * sizeof(float)) != 0, "mode %zu: nonzero intervention had no effect", k);
        // positions before the first intervened one never move (causality)
        cr_assert(memcmp(cx.logits, cx.clean_logits, (size_t)4 * cx.V * sizeof(float)) == 0);
        intervention_free(&iv);
    }
    iv_context_free(&cx);
    clt_free(&clt);
    model_free(&m);
}

// ---- constrained mode == a double-precision frozen linear model ---------------------------------
// Propagate the change of the residual stream only.  The intervention adds delta_i * W_dec of
// its feature to mlp_out of the layers it writes; MLP outputs are otherwise constant except for
// the skip (W_skip dresid_mid).  Attention: frozen patterns, the value path is linear with the
// frozen 1/rms factor.  Layers outside [lo, hi] are not modelled (the test uses the full range).
static void ref_linear(const IvContext *cx, const Intervention *iv, const double *delta /*(n, T)*/,
                       double *dmid /*(T, L, D)*/, double *dlog /*(T, V)*/) {
    const Model *m = cx->m;
    const Clt *clt = cx->clt;
    const Capture *cp = &cx->clean;
    int T = cx->T, L = cx->L, D = cx->D, V = cx->V, H = m->c.n_heads, Hkv = m->c.n_kv_heads;
    int Dh = m->c.head_dim, Dkv = Hkv * Dh;
    double *dx = calloc((size_t)T * D, sizeof(double)), *xb = malloc((size_t)T * D * sizeof(double));
    double *dv = malloc((size_t)T * Dkv * sizeof(double)), *o = malloc((size_t)H * Dh * sizeof(double));
    for (int l = 0; l < L; l++) {
        const float *wv = m->w.wv + (size_t)l * Dkv * D, *wo = m->w.wo + (size_t)l * D * H * Dh;
        const float *g = m->w.rms_att + (size_t)l * D;
        for (int t = 0; t < T; t++) {
            double inv = cp->inv_rms_att[(size_t)t * L + l];
            for (int i = 0; i < D; i++) xb[(size_t)t * D + i] = g[i] * dx[(size_t)t * D + i] * inv;
            for (int r = 0; r < Dkv; r++) {
                double s = 0;
                for (int i = 0; i < D; i++) s += (double)wv[(size_t)r * D + i] * xb[(size_t)t * D + i];
                dv[(size_t)t * Dkv + r] = s;
            }
        }
        for (int p = 0; p < T; p++) {
            for (int h = 0; h < H; h++) {
                int kvh = h / (H / Hkv);
                for (int j = 0; j < Dh; j++) {
                    double s = 0;
                    for (int t = 0; t <= p; t++)
                        s += (double)cp->att[(((size_t)l * H + h) * cp->T + p) * cp->T + t] *
                             dv[(size_t)t * Dkv + kvh * Dh + j];
                    o[h * Dh + j] = s;
                }
            }
            for (int i = 0; i < D; i++) {
                double s = 0;
                for (int r = 0; r < H * Dh; r++) s += (double)wo[(size_t)i * H * Dh + r] * o[r];
                dx[(size_t)p * D + i] += s;
            }
        }
        for (int p = 0; p < T; p++) {
            double *mid = dmid + ((size_t)p * L + l) * D;
            for (int i = 0; i < D; i++) mid[i] = dx[(size_t)p * D + i];
            double *y = dx + (size_t)p * D;
            if (clt->has_skip) {
                const float *W = clt->layers[l].W_skip;
                for (int i = 0; i < D; i++) {
                    double s = 0;
                    for (int j = 0; j < D; j++) s += (double)W[(size_t)i * D + j] * mid[j];
                    y[i] += s;
                }
            }
            for (int k = 0; k < iv->n; k++) {
                const IvSpec *s = &iv->specs[k];
                if (!iv_covers(s, p) || s->layer > l || (clt->kind == CLT_PER_LAYER && s->layer != l)) continue;
                const float *row = clt_decoder_row_f32(clt, s->layer, s->feature, l);
                for (int i = 0; i < D; i++) y[i] += delta[(size_t)k * T + p] * row[i];
            }
        }
    }
    for (int p = 0; p < T; p++) {
        double inv = cp->inv_rms_final[p];
        for (int i = 0; i < D; i++) xb[i] = m->w.rms_final[i] * dx[(size_t)p * D + i] * inv;
        for (int v = 0; v < V; v++) {
            double s = 0;
            for (int i = 0; i < D; i++) s += (double)m->w.wcls[(size_t)v * D + i] * xb[i];
            dlog[(size_t)p * V + v] = s;
        }
    }
    free(dx), free(xb), free(dv), free(o);
}

static void constrained_case(CltKind kind, int skip, uint64_t seed) {
    Model m;
    int toks[32], T;
    tu_load_stories(&m, toks, &T, 10);
    Clt clt;
    tu_random_clt(&clt, &m, toks, T, 48, kind, CLT_ACT_JUMPRELU, skip, seed, 0.12);
    IvContext cx;
    cr_assert_eq(iv_context_init(&cx, &m, &clt, toks, T, NULL), CT_OK, "%s", ct_errmsg());
    int L = cx.L, D = cx.D, V = cx.V, F = cx.F;
    float a1, a2;
    int f1 = active_feature(&cx, 0, 3, &a1), f2 = active_feature(&cx, 2, 5, &a2);
    Intervention iv;
    intervention_init(&iv);
    // an ablation, a doubling over a range, and switching on an inactive feature everywhere after 6
    IvSpec s1 = spec(IV_SET, 0, 3, 3, f1, 0.0f), s2 = spec(IV_SCALE, 2, 5, 6, f2, 2.0f);
    IvSpec s3 = spec(IV_SET, 1, 6, IV_POS_END, inactive_feature(&cx, 1, 6), 1.5f);
    intervention_add(&iv, &s1), intervention_add(&iv, &s2), intervention_add(&iv, &s3);
    cr_assert_eq(iv_run(&cx, &iv, IV_CONSTRAINED, 0, L - 1), CT_OK, "%s", ct_errmsg());
    double *delta = calloc((size_t)iv.n * T, sizeof(double));
    for (int i = 0; i < cx.n_applied; i++) {
        const IvApplied *ap = &cx.applied[i];
        cr_assert_eq(ap->current, ap->clean, "constrained: current activation is the clean one");
        delta[(size_t)ap->spec * T + ap->pos] = ap->delta;
    }
    cr_assert_eq(cx.n_applied, 1 + 2 + (T - 6));
    double *dmid = calloc((size_t)T * L * D, sizeof(double)), *dlog = calloc((size_t)T * V, sizeof(double));
    ref_linear(&cx, &iv, delta, dmid, dlog);
    // every feature pre-activation at every (l, p); tolerance relative to the change's scale
    double worst = 0, scale = 0;
    for (int l = 0; l < L; l++)
        for (int p = 0; p < T; p++) {
            const double *dm = dmid + ((size_t)p * L + l) * D;
            const float *xr = cx.run.resid_mid + ((size_t)p * L + l) * D;
            const float *xc = cx.clean.resid_mid + ((size_t)p * L + l) * D;
            for (int f = 0; f < F; f++) {
                const float *w = clt.layers[l].W_enc + (size_t)f * D;
                double want = 0;
                for (int i = 0; i < D; i++) want += (double)w[i] * dm[i];
                double got = (double)iv_feature_pre(&clt, l, f, xr) - (double)iv_feature_pre(&clt, l, f, xc);
                if (fabs(want) > scale) scale = fabs(want);
                if (fabs(got - want) > worst) worst = fabs(got - want);
            }
        }
    cr_assert_gt(scale, 0.1, "the intervention should move pre-activations (scale %g)", scale);
    cr_assert_lt(worst, 1e-5 * (1 + scale) * 4, "pre-activation change differs from the linear model by %g (scale %g)",
                 worst, scale);
    double wl = 0, sl = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) {
        double got = (double)cx.logits[i] - (double)cx.clean_logits[i];
        if (fabs(dlog[i]) > sl) sl = fabs(dlog[i]);
        if (fabs(got - dlog[i]) > wl) wl = fabs(got - dlog[i]);
    }
    cr_assert_gt(sl, 0.01);
    cr_assert_lt(wl, 2e-5 * (1 + sl) * 4, "logit change differs from the linear model by %g (scale %g)", wl, sl);
    cr_log_info("constrained %s%s: max |err| pre %.3g (scale %.3g), logits %.3g (scale %.3g)",
                kind == CLT_PER_LAYER ? "PLT" : "CLT", skip ? "+skip" : "", worst, scale, wl, sl);
    free(delta), free(dmid), free(dlog);
    intervention_free(&iv);
    iv_context_free(&cx);
    clt_free(&clt);
    model_free(&m);
}

Test(intervene, constrained_equals_frozen_linear_clt) { constrained_case(CLT_CROSS_LAYER, 0, 21); }
Test(intervene, constrained_equals_frozen_linear_plt) { constrained_case(CLT_PER_LAYER, 0, 22); }
Test(intervene, constrained_equals_frozen_linear_clt_skip) { constrained_case(CLT_CROSS_LAYER, 1, 23); }

// ---- what "current activation" means in each mode ----------------------------------------------
Test(intervene, current_activation_semantics) {
    Model m;
    int toks[32], T;
    tu_load_stories(&m, toks, &T, 10);
    Clt clt;
    tu_random_clt(&clt, &m, toks, T, 48, CLT_CROSS_LAYER, CLT_ACT_JUMPRELU, 0, 31, 0.12);
    IvContext cx;
    cr_assert_eq(iv_context_init(&cx, &m, &clt, toks, T, NULL), CT_OK, "%s", ct_errmsg());
    int L = cx.L, D = cx.D, p = 5;
    float a0, a3;
    int f0 = active_feature(&cx, 1, p, &a0), f3 = active_feature(&cx, 3, p, &a3);
    Intervention iv;
    intervention_init(&iv);
    IvSpec s0 = spec(IV_SET, 1, p, p, f0, a0 + 3.0f), s3 = spec(IV_SCALE, 3, p, p, f3, 0.5f);
    intervention_add(&iv, &s0), intervention_add(&iv, &s3);
    for (int mode = 0; mode < 3; mode++) {
        cr_assert_eq(iv_run(&cx, &iv, (IvMode)mode, 0, L - 1), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(cx.n_applied, 2);
        const IvApplied *A0 = &cx.applied[0], *A3 = &cx.applied[1];
        cr_assert_eq(A0->current, a0);   // nothing upstream changed layer 1's input
        cr_assert_eq(A0->delta, 3.0f);
        const float *x3 = cx.run.resid_mid + ((size_t)p * L + 3) * D;
        float re = iv_feature_act(&clt, 3, f3, x3, cx.scratch);
        if (mode == IV_CONSTRAINED) {
            cr_assert_eq(A3->current, a3, "constrained: clean activation");
        } else {
            cr_assert_eq(A3->current, re, "%s: re-encoded from the intervened resid_mid", iv_mode_name(mode));
            cr_assert_neq(re, a3, "the upstream intervention should move the re-encoded activation");
        }
        cr_assert_eq(A3->target, 0.5f * A3->current);
        // the real (or frozen) MLP output at layer 1 moved by exactly delta * W_dec[1][f0][0]
        const float *row = clt_decoder_row_f32(&clt, 1, f0, 1);
        const float *yr = cx.run.mlp_out + ((size_t)p * L + 1) * D, *yc = cx.clean.mlp_out + ((size_t)p * L + 1) * D;
        for (int i = 0; i < D; i++)
            cr_assert_float_eq(yr[i], yc[i] + 3.0f * row[i], 1e-5f * (1 + fabsf(yc[i])), "%s mlp_out[1] dim %d",
                               iv_mode_name(mode), i);
    }
    intervention_free(&iv);
    iv_context_free(&cx);
    clt_free(&clt);
    model_free(&m);
}

// ---- steering == recomputation without a KV cache ----------------------------------------------
Test(intervene, steer_equals_recompute) {
    Model m;
    int toks[32], T;
    tu_load_stories(&m, toks, &T, 8);
    Clt clt;
    tu_random_clt(&clt, &m, toks, T, 48, CLT_CROSS_LAYER, CLT_ACT_JUMPRELU, 0, 41, 0.12);
    int n_new = 62, V = m.c.vocab_size;   // T + n_new = 70 > the 64-position prefill chunk
    Intervention iv;
    intervention_init(&iv);
    IvSpec s1, s2;
    cr_assert_eq(iv_parse_spec("2:*:7=6", IV_SET, &s1), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(iv_parse_spec("1:3..:11=3", IV_SCALE, &s2), CT_OK, "%s", ct_errmsg());
    intervention_add(&iv, &s1), intervention_add(&iv, &s2);
    int *out = malloc((size_t)(T + n_new) * sizeof(int)), *out0 = malloc((size_t)(T + n_new) * sizeof(int));
    float *lg = malloc((size_t)n_new * V * sizeof(float));
    int n = 0, n0 = 0;
    Sampler smp;
    cr_assert_eq(sampler_init(&smp, V, 0.0f, 0.9f, 42), CT_OK);
    cr_assert_eq(iv_generate(&m, &clt, &iv, toks, T, n_new, &smp, -1, NULL, out, &n, lg), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(n, T + n_new);
    cr_assert_eq(iv_generate(&m, NULL, NULL, toks, T, n_new, &smp, -1, NULL, out0, &n0, NULL), CT_OK, "%s", ct_errmsg());
    cr_assert(memcmp(out, out0, (size_t)n * sizeof(int)) != 0, "steering changed nothing");
    ThreadPool *pool = pool_create(2);
    for (int i = 0; i < n_new; i++) {
        int len = T + i;
        IvContext cx;   // a fresh run state: the whole sequence from scratch
        cr_assert_eq(iv_context_init(&cx, &m, &clt, out, len, i % 2 ? pool : NULL), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(iv_run(&cx, &iv, IV_OPEN, 0, cx.L - 1), CT_OK, "%s", ct_errmsg());
        cr_assert(memcmp(cx.logits + (size_t)(len - 1) * V, lg + (size_t)i * V, (size_t)V * sizeof(float)) == 0,
                  "step %d: cached steered logits differ from the recomputation", i);
        cr_assert_eq(sample_argmax(cx.logits + (size_t)(len - 1) * V, V), out[len], "step %d token", i);
        iv_context_free(&cx);
    }
    pool_destroy(pool);
    sampler_free(&smp);
    free(out), free(out0), free(lg);
    intervention_free(&iv);
    clt_free(&clt);
    model_free(&m);
}

// ---- validation ----------------------------------------------------------------------------------
Test(intervene, validate_constrained_is_exact_and_iterative_is_path_sum) {
    Model m;
    int toks[32], T;
    tu_load_stories(&m, toks, &T, 9);
    Clt clt;
    tu_random_clt(&clt, &m, toks, T, 48, CLT_CROSS_LAYER, CLT_ACT_JUMPRELU, 0, 51, 0.1);
    Replacement r;
    cr_assert_eq(replacement_build(&r, &m, &clt, toks, T, NULL), CT_OK, "%s", ct_errmsg());
    AttribOptions o;
    attribute_options_default(&o);
    o.max_logits = 5, o.logit_prob = 0.99;
    Graph g;
    cr_assert_eq(attribute_graph(&g, &r, &o), CT_OK, "%s", ct_errmsg());
    IvContext cx;
    cr_assert_eq(iv_context_init(&cx, &m, &clt, toks, T, NULL), CT_OK, "%s", ct_errmsg());
    IvValidation val;
    cr_assert_eq(iv_validate(&cx, &g, 6, 0, &val), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(val.n_nodes, 6);
    int N = g.n_nodes, nF = g.n_features, lg0 = nF + g.n_errors + g.n_tokens;
    for (int a = 0; a < 2; a++) {
        const IvStats *s = &val.overall[IV_VAL_CONSTRAINED][a];
        cr_assert_gt(s->n, 20);
        cr_assert_gt(s->pearson, 1 - 1e-9, "constrained pearson %.12f", s->pearson);
        cr_assert_gt(s->cosine, 1 - 1e-9);
        cr_assert_lt(s->max_abs_err, 1e-4 * s->max_abs_pred, "constrained error %g vs scale %g", s->max_abs_err,
                     s->max_abs_pred);
        cr_log_info("validate: constrained %s pearson %.9f spearman %.6f; iterative pearson %.4f spearman %.4f",
                    a ? "double" : "ablate", s->pearson, s->spearman, val.overall[1][a].pearson,
                    val.overall[1][a].spearman);
    }
    // Iterative predictions: sum_k E^k e_s delta over feature nodes (E = A / a_source, the row of
    // s cleared because s is held), dense, in double, then E_logits applied.
    double *E = calloc((size_t)N * N, sizeof(double)), *v = malloc((size_t)N * sizeof(double));
    double *tot = malloc((size_t)N * sizeof(double)), *nx = malloc((size_t)N * sizeof(double));
    for (int t = 0; t < N; t++)
        for (int j = 0; j < nF; j++) E[(size_t)t * N + j] = (double)graph_edge(&g, t, j) / (double)g.nodes[j].activation;
    for (int r0 = 0; r0 < val.n_nodes; r0++) {
        const IvValNode *vn = &val.nodes[r0];
        for (int kind = 0; kind < 2; kind++) {
            memset(v, 0, (size_t)N * sizeof(double));
            v[vn->node] = vn->delta[kind];
            memcpy(tot, v, (size_t)N * sizeof(double));
            for (int it = 0; it < N + 1; it++) {   // nilpotent on features: ends early
                int any = 0;
                for (int t = 0; t < nF; t++) {
                    double s = 0;
                    if (t != vn->node)
                        for (int j = 0; j < nF; j++) s += E[(size_t)t * N + j] * v[j];
                    nx[t] = s;
                    any |= s != 0;
                }
                memcpy(v, nx, (size_t)nF * sizeof(double));
                for (int t = 0; t < nF; t++) tot[t] += v[t];
                if (!any) break;
            }
            for (int t = lg0; t < N; t++) {
                double s = 0;
                for (int j = 0; j < nF; j++) s += E[(size_t)t * N + j] * tot[j];
                tot[t] = s;
            }
            for (int j = 0; j < vn->n_targets; j++) {
                double want = tot[vn->targets[j]], got = vn->pred[IV_VAL_ITERATIVE][kind][j];
                cr_assert(fabs(got - want) <= 1e-9 * (1 + fabs(want)), "node %d target %d: path sum %g, want %g",
                          vn->node, vn->targets[j], got, want);
            }
        }
    }
    free(E), free(v), free(tot), free(nx);
    iv_validation_free(&val);
    iv_context_free(&cx);
    graph_free(&g);
    replacement_free(&r);
    clt_free(&clt);
    model_free(&m);
}

Test(intervene, stats_by_hand) {
    IvStats s;
    double a[] = {1, 2, 3, 4}, b[] = {2, 4, 6, 8}, c[] = {4, 3, 2, 1};
    iv_stats(a, b, 4, &s);
    cr_assert_float_eq(s.pearson, 1.0, 1e-12);
    cr_assert_float_eq(s.spearman, 1.0, 1e-12);
    cr_assert_float_eq(s.cosine, 1.0, 1e-12);
    cr_assert_float_eq(s.sign_agree, 1.0, 0);
    cr_assert_float_eq(s.max_abs_err, 4.0, 0);
    cr_assert_float_eq(s.max_abs_pred, 8.0, 0);
    iv_stats(a, c, 4, &s);
    cr_assert_float_eq(s.pearson, -1.0, 1e-12);
    cr_assert_float_eq(s.spearman, -1.0, 1e-12);
    cr_assert_float_eq(s.cosine, 20.0 / 30.0, 1e-12);   // (4+6+6+4) / (sqrt(30) sqrt(30))
    // ties: x = {1, 2, 2, 3} ranks {1, 2.5, 2.5, 4}; y = {1, 3, 2, 4}: ranks {1, 3, 2, 4}
    // pearson of ranks: mean 2.5; dx = {-1.5, 0, 0, 1.5}, dy = {-1.5, .5, -.5, 1.5}:
    // sxy = 4.5, sxx = 4.5, syy = 5  ->  4.5 / sqrt(22.5)
    double x[] = {1, 2, 2, 3}, y[] = {1, 3, 2, 4};
    iv_stats(x, y, 4, &s);
    cr_assert_float_eq(s.spearman, 4.5 / sqrt(22.5), 1e-12);
    // signs: pairs (1,-1) disagree, (2,2) agree, (1e-9, -1e-9) both below 1e-6 * 2: skipped, (0, 1) disagree
    double u[] = {1, 2, 1e-9, 0}, w[] = {-1, 2, -1e-9, 1};
    iv_stats(u, w, 4, &s);
    cr_assert_float_eq(s.sign_agree, 1.0 / 3.0, 1e-15);
    iv_stats(a, a, 1, &s);
    cr_assert(isnan(s.pearson) && isnan(s.spearman));
    double z[] = {0, 0, 0};
    iv_stats(z, z, 3, &s);
    cr_assert(isnan(s.cosine) && isnan(s.sign_agree));
}

// ---- bad specifications ----------------------------------------------------------------------------
static void expect_parse_error(const char *text, const char *needle) {
    IvSpec s;
    cr_assert_eq(iv_parse_spec(text, IV_SET, &s), CT_ERR, "'%s' parsed", text);
    cr_assert(strstr(ct_errmsg(), needle), "'%s': message '%s' lacks '%s'", text, ct_errmsg(), needle);
    cr_assert(strstr(ct_errmsg(), text), "'%s': message '%s' does not quote the spec", text, ct_errmsg());
}

static void expect_check_error(const Clt *clt, int T, const char *text, const char *needle) {
    Intervention iv;
    intervention_init(&iv);
    IvSpec s;
    cr_assert_eq(iv_parse_spec(text, IV_SET, &s), CT_OK, "'%s': %s", text, ct_errmsg());
    intervention_add(&iv, &s);
    cr_assert_eq(intervention_check(&iv, clt, T), CT_ERR, "'%s' accepted", text);
    cr_assert(strstr(ct_errmsg(), needle), "'%s': message '%s' lacks '%s'", text, ct_errmsg(), needle);
    intervention_free(&iv);
}

Test(intervene, bad_specifications) {
    expect_parse_error("3:5:17", "malformed");
    expect_parse_error("3:5=1", "malformed");
    expect_parse_error("a:1:2=3", "layer 'a' is not an integer");
    expect_parse_error("1:2:x=3", "feature 'x' is not an integer");
    expect_parse_error("1:2:3=abc", "not a finite number");
    expect_parse_error("1:2:3=inf", "not a finite number");
    expect_parse_error("1:2:3=", "not a finite number");
    expect_parse_error("1:2..x:3=1", "position '2..x'");
    expect_parse_error("1:first:3=1", "position 'first'");
    expect_parse_error("1:2:3:4=1", "malformed");
    Clt clt;
    CltActivation act = {CLT_ACT_RELU, 0};
    cr_assert_eq(clt_alloc(&clt, 5, 16, 32, CLT_CROSS_LAYER, act, 0), CT_OK);
    expect_check_error(&clt, 6, "1:2:32=1", "feature 32 is out of range");
    expect_check_error(&clt, 6, "1:2:-1=1", "feature -1 is out of range");
    expect_check_error(&clt, 6, "5:2:3=1", "layer 5 is out of range");
    expect_check_error(&clt, 6, "-1:2:3=1", "layer -1 is out of range");
    expect_check_error(&clt, 6, "1:6:3=1", "position 6 is beyond the prompt");
    expect_check_error(&clt, 6, "1:2..9:3=1", "position 9 is beyond the prompt");
    expect_check_error(&clt, 6, "1:7..:3=1", "position 7 is beyond the prompt");
    expect_check_error(&clt, 6, "1:4..2:3=1", "position range 4..2 is empty");
    // the same feature twice at one position
    Intervention iv;
    intervention_init(&iv);
    IvSpec a, b;
    iv_parse_spec("1:*:3=1", IV_SET, &a);
    iv_parse_spec("1:4:3=2", IV_SCALE, &b);
    intervention_add(&iv, &a), intervention_add(&iv, &b);
    cr_assert_eq(intervention_check(&iv, &clt, 6), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "already set by '1:*:3=1'"), "%s", ct_errmsg());
    intervention_free(&iv);
    // open-ended ranges are fine when they start inside
    expect_parse_error("1:all:3", "malformed");
    IvSpec ok;
    cr_assert_eq(iv_parse_spec("1:all:3=-2.5e-1", IV_SCALE, &ok), CT_OK);
    cr_assert(ok.pos_lo == 1 && ok.pos_hi == IV_POS_END && ok.value == -0.25f && ok.kind == IV_SCALE);
    // layer ranges
    int lo, hi;
    cr_assert_eq(iv_parse_layers("1..3", 5, &lo, &hi), CT_OK);
    cr_assert(lo == 1 && hi == 3);
    cr_assert_eq(iv_parse_layers("2", 5, &lo, &hi), CT_OK);
    cr_assert(lo == 2 && hi == 2);
    cr_assert_eq(iv_parse_layers("3..1", 5, &lo, &hi), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "is empty"), "%s", ct_errmsg());
    cr_assert_eq(iv_parse_layers("0..5", 5, &lo, &hi), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "must lie in 0..4"), "%s", ct_errmsg());
    cr_assert_eq(iv_parse_layers("x..2", 5, &lo, &hi), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "expected A..B"), "%s", ct_errmsg());
    IvMode md;
    cr_assert_eq(iv_parse_mode("sideways", &md), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "expected constrained, iterative or open"), "%s", ct_errmsg());
    clt_free(&clt);
}
