// test_casestudy.c — one traced prompt end to end (engine/casestudy.h) on stories260K with a
// random transcoder: the answer token, the paths (checked edge by edge against the graph, with
// strengths recomputed here), the ranking of the top features, and the constrained ablation
// against the graph's edge.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/casestudy.h"
#include "engine/tokenizer.h"
#include "tests/lib/testclt.h"
#include "tests/lib/testutil.h"

typedef struct Fix {
    Model m;
    Tokenizer tk;
    Clt clt;
    int toks[64], T;
} Fix;

static void fix_init(Fix *f) {
    tu_load_stories(&f->m, f->toks, &f->T, 64);
    char *tp = tu_shared_path("models/stories260K/tok512.bin");
    cr_assert_eq(tokenizer_load(&f->tk, tp, f->m.c.vocab_size), CT_OK, "%s", ct_errmsg());
    free(tp);
    tu_random_clt(&f->clt, &f->m, f->toks, f->T, 96, CLT_CROSS_LAYER, CLT_ACT_JUMPRELU, 0, 77, 0.08);
}

static void fix_free(Fix *f) {
    clt_free(&f->clt);
    tokenizer_free(&f->tk);
    model_free(&f->m);
}

// |A[t,s]| / sum of |A[t,.]| over t's kept edges, or -1 when s -> t is not a kept edge.
static double kept_weight(const Graph *g, int t, int s) {
    double sum = 0, w = -1;
    for (uint64_t e = g->sp_row[t]; e < g->sp_row[t + 1]; e++) {
        if (!g->sp_keep[e]) continue;
        sum += fabs(g->sp_val[e]);
        if ((int)g->sp_col[e] == s) w = fabs(g->sp_val[e]);
    }
    return w < 0 ? -1 : w / sum;
}

Test(casestudy, trace_paths_and_ablation) {
    Fix f;
    fix_init(&f);
    CaseOptions o;
    case_options_default(&o);
    CaseResult r;
    int rc = case_trace(&f.m, &f.tk, &f.clt, TU_STORIES_PROMPT, " was", &o, &r);
    cr_assert_eq(rc, CT_OK, "%s", ct_errmsg());
    const Graph *g = &r.g;
    cr_assert_eq(r.T, f.T);
    // the answer token: encode(prompt + answer) continues encode(prompt) with it
    int ids[80], n = 0;
    cr_assert_eq(tokenizer_encode(&f.tk, "was", 0, 0, ids, 80, &n)  /* run.c adds the leading space */, CT_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(r.answer_token, ids[0]);
    cr_assert_geq(r.logit_node, g->n_features + g->n_errors + g->n_tokens);
    cr_assert_eq(g->nodes[r.logit_node].token, r.answer_token);
    // every path: kept edges, ends at the answer logit, strength = product of weights
    int npaths = 0;
    for (int p = 0; p < r.T; p++) {
        const CasePath *cp = &r.tok_path[p];
        if (!cp->n) continue;
        npaths++;
        cr_assert_eq(cp->node[0], g->n_features + g->n_errors + p);
        cr_assert_eq(cp->node[cp->n - 1], r.logit_node);
        double prod = 1;
        for (int k = 0; k + 1 < cp->n; k++) {
            double w = kept_weight(g, cp->node[k + 1], cp->node[k]);
            cr_assert_gt(w, 0, "path of token %d: step %d is not a kept edge", p, k);
            prod *= w;
        }
        cr_assert_float_eq(cp->strength, prod, 1e-12 * (1 + prod));
        // no single kept edge from this token to the logit beats the path
        double direct = kept_weight(g, r.logit_node, cp->node[0]);
        cr_assert_leq(direct, cp->strength * (1 + 1e-12));
    }
    cr_assert_gt(npaths, 0, "no token reaches the answer through kept edges");
    // the top features: kept, in descending influence
    cr_assert_gt(r.n_top, 0);
    for (int k = 0; k < r.n_top; k++) {
        cr_assert(g->node_keep[r.top[k]]);
        cr_assert_eq(g->nodes[r.top[k]].kind, NODE_FEATURE);
        if (k) cr_assert_geq(g->nodes[r.top[k - 1]].influence_raw, g->nodes[r.top[k]].influence_raw);
    }
    for (int i = 0; i < g->n_features; i++)
        if (g->node_keep[i]) cr_assert_leq(g->nodes[i].influence_raw, g->nodes[r.top[0]].influence_raw);
    // constrained ablation == the graph's edge (direct effect of -a_s)
    // the ablated feature: the first of the top list with a positive edge into the answer
    int want = r.top[0];
    for (int k = 0; k < r.n_top; k++)
        if (graph_edge(g, r.logit_node, r.top[k]) > 0) { want = r.top[k]; break; }
    cr_assert_eq(r.iv_node, want);
    double tol = 1e-4 * (fabs(r.iv_pred) + 1e-3);
    cr_assert(fabs(r.iv_constrained - r.iv_pred) <= tol, "constrained %.8g vs graph %.8g", r.iv_constrained,
              r.iv_pred);
    case_result_free(&r);
    fix_free(&f);
}

Test(casestudy, answer_must_start_a_token) {
    Fix f;
    fix_init(&f);
    CaseOptions o;
    case_options_default(&o);
    CaseResult r;
    // "She" + "s" merges into a longer piece or shifts the tokens: refused with a message
    cr_assert_eq(case_trace(&f.m, &f.tk, &f.clt, "Once upon a time, there was a little girl named Lily. Sh", "e",
                            &o, &r), CT_ERR);
    cr_assert_not_null(strstr(ct_errmsg(), "does not start a new token"), "%s", ct_errmsg());
    case_result_free(&r);
    fix_free(&f);
}
