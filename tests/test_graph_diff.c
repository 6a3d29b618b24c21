// test_graph_diff.c — engine/graph_diff.h on small hand-built graphs: nodes matched by
// identity (not index), the edge union / shared / one-sided counts, both Pearson figures for
// the full and the pruned graphs, the top-k overlap, and the refusal of graphs of different
// prompts.  The expected correlations come from the edge pairs listed by hand below, through
// a textbook two-pass Pearson written here (not the running sums of graph_diff.c).
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/graph.h"
#include "engine/graph_diff.h"

#define ASSERT_OK(x) cr_assert_eq((x), CT_OK, "%s", ct_errmsg())

static double pearson(const double *x, const double *y, int n) {
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) mx += x[i] / n, my += y[i] / n;
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxy / sqrt(sxx * syy);
}

// L = 2, T = 2, two logits (vocabulary ids 7 and 9), tokens {1, 42}.  feats: (l, p, f) each.
static void build(Graph *g, int nf, const int (*feats)[3]) {
    ASSERT_OK(graph_alloc(g, nf, 4, 2, 2));
    for (int i = 0; i < nf; i++) {
        GraphNode *nd = &g->nodes[i];
        nd->kind = NODE_FEATURE, nd->layer = feats[i][0], nd->pos = feats[i][1], nd->feature = feats[i][2];
        nd->activation = 1.0f, nd->token = -1;
    }
    g->L = 2, g->T = 2;
    for (int l = 0; l < 2; l++)
        for (int q = 0; q < 2; q++) {
            GraphNode *nd = &g->nodes[nf + l * 2 + q];
            nd->kind = NODE_ERROR, nd->layer = l, nd->pos = q, nd->feature = -1, nd->token = -1;
        }
    static const int tok[2] = {1, 42}, lv[2] = {7, 9};
    static const float p[2] = {0.6f, 0.3f};
    for (int q = 0; q < 2; q++) {
        GraphNode *nd = &g->nodes[nf + 4 + q];
        nd->kind = NODE_TOKEN, nd->layer = -1, nd->pos = q, nd->feature = -1, nd->token = tok[q];
    }
    for (int k = 0; k < 2; k++) {
        GraphNode *nd = &g->nodes[nf + 6 + k];
        nd->kind = NODE_LOGIT, nd->layer = 2, nd->pos = 1, nd->feature = -1, nd->token = lv[k];
        nd->prob = p[k], nd->is_target = 1;
    }
    g->tokens = malloc(2 * sizeof(int));
    memcpy(g->tokens, tok, sizeof tok);
}

static void edge(Graph *g, int t, int s, float w) { g->adj[(size_t)t * g->n_nodes + s] = w; }

// Graph A: features F0 (0,1,3), F1 (1,1,5).  Nodes: F0 0, F1 1, e00 2, e01 3, e10 4, e11 5,
// t0 6, t1 7, g7 8, g9 9.
static void build_a(Graph *g) {
    static const int f[2][3] = {{0, 1, 3}, {1, 1, 5}};
    build(g, 2, f);
    edge(g, 0, 6, 1), edge(g, 0, 7, -3);
    edge(g, 1, 0, 2), edge(g, 1, 3, -1), edge(g, 1, 7, 1);
    edge(g, 8, 1, 3), edge(g, 8, 0, -1), edge(g, 8, 5, 0.5f), edge(g, 8, 7, 0.5f);
    edge(g, 9, 1, -1), edge(g, 9, 5, 1), edge(g, 9, 6, 2);
    ASSERT_OK(graph_build_sparse(g));
}

// Graph B: one more feature FX (0,1,4) between them, so every index from F1 on moves:
// F0 0, FX 1, F1 2, e00 3, e01 4, e10 5, e11 6, t0 7, t1 8, g7 9, g9 10.  Against A:
// g7 <- F0 is -2 (A: -1), g9 <- t0 is gone, g9 <- e01 0.7 is new, FX <- t0 0.5 and g7 <- FX
// 0.25 are FX's own edges.
static void build_b(Graph *g) {
    static const int f[3][3] = {{0, 1, 3}, {0, 1, 4}, {1, 1, 5}};
    build(g, 3, f);
    edge(g, 0, 7, 1), edge(g, 0, 8, -3);
    edge(g, 2, 0, 2), edge(g, 2, 4, -1), edge(g, 2, 8, 1);
    edge(g, 9, 2, 3), edge(g, 9, 0, -2), edge(g, 9, 6, 0.5f), edge(g, 9, 8, 0.5f);
    edge(g, 10, 2, -1), edge(g, 10, 6, 1), edge(g, 10, 4, 0.7f);
    edge(g, 1, 7, 0.5f), edge(g, 9, 1, 0.25f);
    ASSERT_OK(graph_build_sparse(g));
}

// Mark edge (t, s) kept in g's CSR (sp_keep allocated on first use).
static void keep(Graph *g, int t, int s) {
    if (!g->sp_keep) cr_assert_not_null(g->sp_keep = calloc(g->sp_nnz, 1));
    for (uint64_t j = g->sp_row[t]; j < g->sp_row[t + 1]; j++)
        if ((int)g->sp_col[j] == s) {
            g->sp_keep[j] = 1;
            return;
        }
    cr_assert_fail("no edge %d <- %d", t, s);
}

Test(graph_diff, identity_matching_counts_and_pearson) {
    Graph a, b;
    build_a(&a);
    build_b(&b);
    GraphDiff d;
    ASSERT_OK(graph_diff(&a, &b, 20, &d));
    cr_expect_eq(d.n_feat_a, 2);
    cr_expect_eq(d.n_feat_b, 3);
    cr_expect_eq(d.n_feat_both, 2);
    // The union, by hand (A weight, B weight; edges are fp32, so 0.7 is 0.7f), shared ones first:
    static const double x[15] = {1, -3, 2, -1, 1, 3, -1, 0.5, 0.5, -1, 1, 2, 0, 0, 0};
    static const double y[15] = {1, -3, 2, -1, 1, 3, -2, 0.5, 0.5, -1, 1, 0, (double)0.7f, 0.5, 0.25};
    cr_expect_eq(d.full.n_union, 15);
    cr_expect_eq(d.full.n_both, 11);
    cr_expect_eq(d.full.n_only_a, 1);
    cr_expect_eq(d.full.n_only_b, 3);
    cr_expect_float_eq(d.full.pearson_union, pearson(x, y, 15), 1e-12, "union %.15g", d.full.pearson_union);
    cr_expect_float_eq(d.full.pearson_both, pearson(x, y, 11), 1e-12, "both %.15g", d.full.pearson_both);
    cr_expect_float_eq(d.full.max_abs_diff, 1.0, 1e-12);
    // |w| of b's one-sided edges 0.7 + 0.5 + 0.25 over all of b's 17.45
    cr_expect_float_eq(d.full.mass_only_b, 1.45 / 17.45, 1e-6);
    cr_expect_eq(d.pruned, 0, "no keep flags, yet pruned figures");
    graph_free(&a), graph_free(&b);
}

Test(graph_diff, pruned_edges_weighed_by_the_full_graphs) {
    Graph a, b;
    build_a(&a);
    build_b(&b);
    // A keeps g7<-F1, g7<-F0, g9<-t0; B keeps g7<-F1, g7<-F0, g9<-e01 and F1<-F0 (which A has
    // but did not keep: its A weight 2 still counts).
    keep(&a, 8, 1), keep(&a, 8, 0), keep(&a, 9, 6);
    keep(&b, 9, 2), keep(&b, 9, 0), keep(&b, 10, 4), keep(&b, 2, 0);
    GraphDiff d;
    ASSERT_OK(graph_diff(&a, &b, 20, &d));
    cr_assert_eq(d.pruned, 1);
    // Kept in either: g7<-F1 (3, 3), g7<-F0 (-1, -2), g9<-t0 (2, B lacks it: 0),
    // g9<-e01 (A lacks it: 0, 0.7), F1<-F0 (2, 2).  Kept in both: the first two.
    static const double x[5] = {3, -1, 2, 0, 2}, y[5] = {3, -2, 0, (double)0.7f, 2};
    cr_expect_eq(d.kept.n_union, 5);
    cr_expect_eq(d.kept.n_both, 2);
    cr_expect_eq(d.kept.n_only_a, 1);
    cr_expect_eq(d.kept.n_only_b, 2);
    cr_expect_float_eq(d.kept.pearson_union, pearson(x, y, 5), 1e-12, "kept union %.15g", d.kept.pearson_union);
    cr_expect(isnan(d.kept.pearson_both) || fabs(d.kept.pearson_both - 1.0) < 1e-12,
              "two points always correlate perfectly: %.15g", d.kept.pearson_both);
    // The full figures do not change with keep flags.
    cr_expect_eq(d.full.n_union, 15);
    graph_free(&a), graph_free(&b);
}

// Influence of A (test_prune.c derives it by hand for the same graph): F1 .435, t1 .421875,
// F0 .3375, t0 .234375, e11 .135, e01 .10875; every other node 0.
Test(graph_diff, top_k_overlap) {
    Graph a, a2;
    build_a(&a);
    build_a(&a2);
    GraphDiff d;
    ASSERT_OK(graph_diff(&a, &a2, 3, &d));
    cr_expect_eq(d.top_all, 3);
    cr_expect_eq(d.top_feat, 2, "A has two features");
    cr_expect_float_eq(d.full.pearson_union, 1.0, 1e-12);
    cr_expect_eq(d.full.n_only_a + d.full.n_only_b, 0);
    ASSERT_OK(graph_diff(&a, &a2, 20, &d));
    cr_expect_eq(d.top_all, 6, "six nodes have influence > 0");
    // Drop F1's incoming edges in a2: its influence stays (it still feeds the logits), but F0,
    // t1 and e01 lose what flowed through F1.  With a = .6, b = .3 (logit weights), a2 has
    // F1 .6a + .25b = .435, t0 .5b + .05a = .18, t1 .1a + .15a = .15, e11 .135, F0 .2a = .12:
    // top 2 of a2 = F1, t0; of A = F1, t1.  Overlap 1.
    for (uint64_t j = a2.sp_row[1]; j < a2.sp_row[2]; j++) a2.sp_val[j] = 0.0f;
    ASSERT_OK(graph_diff(&a, &a2, 2, &d));
    cr_expect_eq(d.top_all, 1, "top-2 overlap %d", d.top_all);
    graph_free(&a), graph_free(&a2);
}

Test(graph_diff, different_prompts_refused) {
    Graph a, b;
    build_a(&a);
    build_a(&b);
    b.tokens[1] = 43;
    GraphDiff d;
    cr_expect_eq(graph_diff(&a, &b, 20, &d), CT_ERR);
    cr_expect(strstr(ct_errmsg(), "different prompts") != NULL, "%s", ct_errmsg());
    cr_expect_eq(graph_diff(&a, &a, 0, &d), CT_ERR, "top k 0 accepted");
    graph_free(&a), graph_free(&b);
}
