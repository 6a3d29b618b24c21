// test_prune.c — influence, thresholds, node/edge pruning, dangling clean-up and scores
// (METHOD §3) on small hand-built DAGs.  Every expected number is derived by hand in the
// comments below (exact fractions), never by the code under test.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/graph.h"
#include "engine/prune.h"
#include "tests/lib/testutil.h"

#define TOL 1e-12   // double arithmetic on exact-ish fractions
#define FTOL 1e-6   // values stored as float (GraphNode fields)

static void set_edge(Graph *g, int t, int s, float a) { g->adj[(size_t)t * g->n_nodes + s] = a; }

// Fill the error, token and logit blocks in METHOD §2 order for L layers, T positions.
static void fill_blocks(Graph *g, int L, int T, const int *tok, const int *logit_v, const float *p) {
    g->L = L, g->T = T;
    int e0 = g->n_features;
    for (int l = 0; l < L; l++)
        for (int q = 0; q < T; q++) {
            GraphNode *nd = &g->nodes[e0 + l * T + q];
            nd->kind = NODE_ERROR, nd->layer = l, nd->pos = q;
        }
    int t0 = e0 + L * T;
    for (int q = 0; q < T; q++) {
        GraphNode *nd = &g->nodes[t0 + q];
        nd->kind = NODE_TOKEN, nd->layer = -1, nd->pos = q, nd->token = tok[q];
    }
    for (int k = 0; k < g->n_logits; k++) {
        GraphNode *nd = &g->nodes[t0 + T + k];
        nd->kind = NODE_LOGIT, nd->layer = L, nd->pos = T - 1, nd->token = logit_v[k];
        nd->prob = p[k], nd->is_target = 1;
    }
}

static void set_feature(Graph *g, int i, int l, int q, int f, float act) {
    GraphNode *nd = &g->nodes[i];
    nd->kind = NODE_FEATURE, nd->layer = l, nd->pos = q, nd->feature = f, nd->activation = act;
}

// ---- graph 1: 2 features, 4 error nodes (2 used), 2 tokens, 2 logits -----------------------
// L = 2, T = 2.  Node indices:
//   0 F0 (l0,p1,f3)   1 F1 (l1,p1,f5)
//   2 e00  3 e01  4 e10  5 e11      (error index l*T + p)
//   6 t0   7 t1     8 g0 (p=.6)  9 g1 (p=.3)
// A (target <- source: weight), and A^ = |A| / rowsum|A|:
//   F0 <- t0 1, t1 -3                    sum 4:  t0 1/4, t1 3/4
//   F1 <- F0 2, e01 -1, t1 1             sum 4:  F0 1/2, e01 1/4, t1 1/4
//   g0 <- F1 3, F0 -1, e11 .5, t1 .5     sum 5:  F1 .6, F0 .2, e11 .1, t1 .1
//   g1 <- F1 -1, e11 1, t0 2             sum 4:  F1 1/4, e11 1/4, t0 1/2
enum { F0 = 0, F1 = 1, E00 = 2, E01 = 3, E10 = 4, E11 = 5, T0 = 6, T1 = 7, G0 = 8, G1 = 9 };

static void build_graph1(Graph *g) {
    cr_assert_eq(graph_alloc(g, 2, 4, 2, 2), CT_OK, "%s", ct_errmsg());
    set_feature(g, F0, 0, 1, 3, 1.5f);
    set_feature(g, F1, 1, 1, 5, 2.5f);
    int tok[2] = {1, 42}, lv[2] = {7, 9};
    float p[2] = {0.6f, 0.3f};
    fill_blocks(g, 2, 2, tok, lv, p);
    set_edge(g, F0, T0, 1.0f), set_edge(g, F0, T1, -3.0f);
    set_edge(g, F1, F0, 2.0f), set_edge(g, F1, E01, -1.0f), set_edge(g, F1, T1, 1.0f);
    set_edge(g, G0, F1, 3.0f), set_edge(g, G0, F0, -1.0f), set_edge(g, G0, E11, 0.5f),
        set_edge(g, G0, T1, 0.5f);
    set_edge(g, G1, F1, -1.0f), set_edge(g, G1, E11, 1.0f), set_edge(g, G1, T0, 2.0f);
}

// The probabilities are floats (w = (double)0.6f, not .6), and I is linear in w, so each I is
// derived as a g0 part (per unit weight a) plus a g1 part (per unit weight b).
//   I = w A^ + w A^2 + w A^3:
//   from g0 (weight a):  step1 F1 .6a, F0 .2a, e11 .1a, t1 .1a
//                        step2 F1 .6a -> F0 .3a, e01 .15a, t1 .15a;  F0 .2a -> t0 .05a, t1 .15a
//                        step3 F0 .3a -> t0 .075a, t1 .225a
//        totals: F1 .6a, F0 .5a, e01 .15a, e11 .1a, t0 .125a, t1 .1a+.15a+.15a+.225a = .625a
//   from g1 (weight b):  step1 F1 .25b, e11 .25b, t0 .5b
//                        step2 F1 .25b -> F0 .125b, e01 .0625b, t1 .0625b
//                        step3 F0 .125b -> t0 .03125b, t1 .09375b
//        totals: F1 .25b, F0 .125b, e01 .0625b, e11 .25b, t0 .53125b, t1 .15625b
// With a = .6, b = .3: F1 .435, F0 .3375, e01 .10875, e11 .135, t0 .234375, t1 .421875.
static void expected_I1(double a, double b, double *I) {
    memset(I, 0, 10 * sizeof *I);
    I[F1] = .6 * a + .25 * b;
    I[F0] = .5 * a + .125 * b;
    I[E01] = .15 * a + .0625 * b;
    I[E11] = .1 * a + .25 * b;
    I[T0] = .125 * a + .53125 * b;
    I[T1] = .625 * a + .15625 * b;
}

Test(prune, influence_hand_dag) {
    Graph g;
    build_graph1(&g);
    double I[10], want[10];
    cr_assert_eq(prune_influence(&g, NULL, I), CT_OK, "%s", ct_errmsg());
    expected_I1(0.6f, 0.3f, want);
    for (int i = 0; i < 10; i++) cr_assert_float_eq(I[i], want[i], TOL, "I[%d] = %.15g, want %.15g", i, I[i], want[i]);
    // The decimal values quoted above, to float precision of w.
    cr_assert_float_eq(I[F1], 0.435, 1e-7);
    cr_assert_float_eq(I[T1], 0.421875, 1e-7);
    // The same through prune_rows_influence (rows handed over as pointers, any order).
    const float *rows[4] = {g.adj + G1 * 10, g.adj + F0 * 10, g.adj + G0 * 10, g.adj + F1 * 10};
    int32_t rn[4] = {G1, F0, G0, F1};
    double w[10], I2[10];
    graph_logit_weights(&g, w);
    cr_assert_eq(prune_rows_influence(10, 4, rows, rn, w, I2), CT_OK, "%s", ct_errmsg());
    for (int i = 0; i < 10; i++) cr_assert_float_eq(I2[i], want[i], TOL);
    graph_free(&g);
}

Test(prune, scores_hand_dag) {
    Graph g;
    build_graph1(&g);
    double a = 0.6f, b = 0.3f, I[10], repl, compl;
    expected_I1(a, b, I);
    cr_assert_eq(prune_scores(&g, &repl, &compl), CT_OK, "%s", ct_errmsg());
    // replacement = (I_t0 + I_t1) / (I_t0 + I_t1 + I_e01 + I_e11); with .6/.3: .65625 / .9
    double tok = I[T0] + I[T1], err = I[E01] + I[E11];
    cr_assert_float_eq(repl, tok / (tok + err), TOL);
    cr_assert_float_eq(repl, 0.65625 / 0.9, 1e-7);
    // completeness: error fractions of rows: F1 1/4 (e01), g0 .1 (e11), g1 1/4 (e11).
    // out = I + w: sum = 1.6725 + .9 = 2.5725; num = 2.5725 - (.25*.435 + .1*.6 + .25*.3)
    double out = 0;
    for (int i = 0; i < 10; i++) out += I[i];
    out += a + b;
    double num = out - (0.25 * I[F1] + 0.1 * a + 0.25 * b);
    cr_assert_float_eq(compl, num / out, TOL);
    cr_assert_float_eq(compl, 2.32875 / 2.5725, 1e-7);
    graph_free(&g);
}

// Pruning graph 1 with node_threshold 0.8 and edge_threshold 0.9.
// 1. Sorted I: F1 .435, t1 .421875, F0 .3375, t0 .234375, e11 .135, e01 .10875, 0 x4;
//    sum 1.6725; cumsum/sum: .260, .512, .714, .854 >= .8 at index 3 -> threshold .234375.
//    Kept: F0, F1 (and tokens, logits); dropped: every error node.
// 2. A^' (error columns gone, rows renormalised):
//      F0 <- t0 1/4, t1 3/4;  F1 <- F0 2/3, t1 1/3;  g0 <- F1 2/3, F0 2/9, t1 1/9;
//      g1 <- F1 1/3, t0 2/3
//    I2 = influence(A^', w):  step1 (g0 .6, g1 .3): F1 .4 + .1 = .5, F0 2/15, t1 1/15, t0 .2
//      step2: F1 .5 -> F0 1/3, t1 1/6;  F0 2/15 -> t0 1/30, t1 1/10
//      step3: F0 1/3 -> t0 1/12, t1 1/4
//      I2: F1 1/2, F0 7/15;  I' = I2 + w: F1 .5, F0 7/15, g0 .6, g1 .3
//    S = A^' * I'[target]:
//      g0<-F1 .4, F0<-t1 .35, F1<-F0 1/3, g1<-t0 .2, F1<-t1 1/6, g0<-F0 2/15, F0<-t0 7/60,
//      g1<-F1 .1, g0<-t1 1/15;  sum 28/15 = 1.8667
//    cumsum/sum at 2/15: 1.58333/1.86667 = .848 < .9; at 7/60: 1.7/1.86667 = .911 >= .9
//    -> threshold 7/60: g1<-F1 and g0<-t1 are dropped; 7 edges kept.
// 3. Clean-up: F0 and F1 keep incoming and outgoing edges: nothing changes.
// Pruned scores: A_p rows: F0 <- t0 1/4, t1 3/4; F1 <- F0 2/3, t1 1/3; g0 <- F1 3/4, F0 1/4;
//    g1 <- t0 1.  No error node is left, so replacement = completeness = 1.
Test(prune, prune_hand_dag) {
    Graph g;
    build_graph1(&g);
    cr_assert_eq(prune_graph(&g, 0.8, 0.9), CT_OK, "%s", ct_errmsg());
    uint8_t want_nodes[10] = {1, 1, 0, 0, 0, 0, 1, 1, 1, 1};
    for (int i = 0; i < 10; i++) cr_assert_eq(g.node_keep[i], want_nodes[i], "node %d", i);
    cr_assert_eq(g.n_kept_nodes, 6);
    // Kept edges: (target, source)
    int want_e[7][2] = {{G0, F1}, {F0, T1}, {F1, F0}, {G1, T0}, {F1, T1}, {G0, F0}, {F0, T0}};
    cr_assert_eq(g.n_kept_edges, 7);
    for (int t = 0; t < 10; t++)
        for (int s = 0; s < 10; s++) {
            int want = 0;
            for (int k = 0; k < 7; k++) want |= want_e[k][0] == t && want_e[k][1] == s;
            cr_assert_eq(g.edge_keep[t * 10 + s], want, "edge %d <- %d", t, s);
        }
    // sp_keep agrees with the dense flags.
    size_t nk = 0;
    for (int t = 0; t < 10; t++)
        for (uint64_t k = g.sp_row[t]; k < g.sp_row[t + 1]; k++) {
            cr_assert_eq(g.sp_keep[k], g.edge_keep[t * 10 + g.sp_col[k]]);
            nk += g.sp_keep[k];
        }
    cr_assert_eq(nk, 7);
    // Full-graph scores as in scores_hand_dag; pruned: exactly 1.
    cr_assert_float_eq(g.replacement_score, 0.65625 / 0.9, 1e-7);
    cr_assert_float_eq(g.completeness_score, 2.32875 / 2.5725, 1e-7);
    cr_assert_float_eq(g.pruned_replacement_score, 1.0, TOL);
    cr_assert_float_eq(g.pruned_completeness_score, 1.0, TOL);
    // Viewer influence: cumulative rank fraction, order F1, t1, F0, t0, e11, e01, then the
    // zeros (e00, e10, g0, g1) at 1:  .435/1.6725, .856875/1.6725, 1.194375/1.6725,
    // 1.42875/1.6725, 1.56375/1.6725, 1.
    double cum[10] = {[F1] = .435 / 1.6725, [T1] = .856875 / 1.6725, [F0] = 1.194375 / 1.6725,
                      [T0] = 1.42875 / 1.6725, [E11] = 1.56375 / 1.6725, [E01] = 1, [E00] = 1,
                      [E10] = 1, [G0] = 1, [G1] = 1};
    for (int i = 0; i < 10; i++) cr_assert_float_eq(g.nodes[i].influence, cum[i], FTOL, "node %d: %g", i, g.nodes[i].influence);
    cr_assert_float_eq(g.nodes[F1].influence_raw, 0.435, FTOL);
    cr_assert_float_eq(g.nodes[G0].influence_raw, 0.0, 0.0);
    cr_assert_float_eq(g.node_threshold, 0.8f, 0.0);
    cr_assert_float_eq(g.edge_threshold, 0.9f, 0.0);
    graph_free(&g);
}

// Pruned scores with errors left in (graph 1, thresholds 1.0 / 1.0 keep every node with
// I > 0... and every edge):  node threshold 1: cumsum reaches 1 at e01 (the last nonzero), so
// threshold .10875: e00, e10 (I = 0) dropped, every edge kept (their ends all have I > 0).
// Then the pruned graph is the full graph minus nodes without edges: pruned scores = full.
Test(prune, thresholds_one_keep_everything_with_influence) {
    Graph g;
    build_graph1(&g);
    cr_assert_eq(prune_graph(&g, 1.0, 1.0), CT_OK, "%s", ct_errmsg());
    uint8_t want_nodes[10] = {1, 1, 0, 1, 0, 1, 1, 1, 1, 1};
    for (int i = 0; i < 10; i++) cr_assert_eq(g.node_keep[i], want_nodes[i], "node %d", i);
    cr_assert_eq(g.n_kept_edges, 12);
    cr_assert_float_eq(g.pruned_replacement_score, g.replacement_score, TOL);
    cr_assert_float_eq(g.pruned_completeness_score, g.completeness_score, TOL);
    graph_free(&g);
}

// ---- graph 3: a chain that the clean-up removes in two rounds ------------------------------
// L = 2, T = 2; features A (l0,p1,f0) = 0, B (l1,p1,f0) = 1; errors 2..5; t0 6, t1 7;
// g1 8, g2 9 (p = .5 each).
//   A <- t1 1;  B <- A 1;  g1 <- B 1, t1 4 (A^ .2, .8);  g2 <- B 1, t0 4 (A^ .2, .8)
// I: step1 B .1 + .1 = .2, t1 .4, t0 .4;  step2 A .2;  step3 t1 .2
//    -> B .2, A .2, t1 .6, t0 .4.
// Node threshold 1.0: sorted .6 .4 .2 .2, cumsum 1.4 reached at index 3 -> threshold .2:
//    A, B kept; errors (I = 0) dropped.
// A^' = A^;  I' = I + w: B .2, A .2, g1 .5, g2 .5.
// S: g1<-B .1, g1<-t1 .4, g2<-B .1, g2<-t0 .4, B<-A .2, A<-t1 .2; sum 1.4.
// Edge threshold .8: cumsum .4 .8 1.0 1.2 -> /1.4: .286 .571 .714 .857 >= .8 at index 3
//    -> threshold .2: g1<-B and g2<-B dropped.
// Clean-up round 1: B has no outgoing edge -> dropped, with B<-A.
//          round 2: A has no outgoing edge -> dropped, with A<-t1.
// Final: tokens and logits; edges g1<-t1, g2<-t0.  Pruned: I_p t1 .5, t0 .5 -> replacement
// 1, completeness 1.
Test(prune, dangling_cleanup_two_rounds) {
    Graph g;
    cr_assert_eq(graph_alloc(&g, 2, 4, 2, 2), CT_OK);
    set_feature(&g, 0, 0, 1, 0, 1.0f);
    set_feature(&g, 1, 1, 1, 0, 1.0f);
    int tok[2] = {1, 5}, lv[2] = {3, 4};
    float p[2] = {0.5f, 0.5f};
    fill_blocks(&g, 2, 2, tok, lv, p);
    set_edge(&g, 0, 7, 1.0f);
    set_edge(&g, 1, 0, 1.0f);
    set_edge(&g, 8, 1, 1.0f), set_edge(&g, 8, 7, 4.0f);
    set_edge(&g, 9, 1, 1.0f), set_edge(&g, 9, 6, 4.0f);
    double I[10];
    cr_assert_eq(prune_influence(&g, NULL, I), CT_OK);
    cr_assert_float_eq(I[0], 0.2, TOL);
    cr_assert_float_eq(I[1], 0.2, TOL);
    cr_assert_float_eq(I[7], 0.6, TOL);
    cr_assert_float_eq(I[6], 0.4, TOL);
    cr_assert_eq(prune_graph(&g, 1.0, 0.8), CT_OK, "%s", ct_errmsg());
    uint8_t want_nodes[10] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
    for (int i = 0; i < 10; i++) cr_assert_eq(g.node_keep[i], want_nodes[i], "node %d", i);
    cr_assert_eq(g.n_kept_edges, 2);
    cr_assert(g.edge_keep[8 * 10 + 7] && g.edge_keep[9 * 10 + 6]);
    cr_assert_float_eq(g.pruned_replacement_score, 1.0, TOL);
    cr_assert_float_eq(g.pruned_completeness_score, 1.0, TOL);
    graph_free(&g);
}

// ---- graph 4: a feature without incoming edges is dropped; an error node is not -------------
// L = 1, T = 2; feature C (l0,p1,f2) = 0 with no row; errors e00 1, e01 2; t0 3, t1 4; g 5 (p 1).
//   g <- C 1, e01 1, t1 2:  A^ .25, .25, .5
// I: C .25, e01 .25, t1 .5.  Node threshold .8: sorted .5 .25 .25 -> cumsum/sum .5 .75 1 ->
//    index 2 -> threshold .25: C and e01 kept.
// S = A^ * 1: .25, .25, .5; edge threshold .98 -> index 2 -> threshold .25: all kept.
// Clean-up: C has an outgoing edge but no incoming one -> dropped (features need both);
//    e01 needs only an outgoing edge -> kept.
// Full scores: replacement .5 / (.5 + .25) = 2/3; completeness: out C .25, e01 .25, t1 .5,
//    g 1 (sum 2); g's error fraction .25 -> (2 - .25) / 2 = .875.
// Pruned: g <- e01 1, t1 2 -> A^ 1/3, 2/3; I_p e01 1/3, t1 2/3: replacement 2/3;
//    completeness: out e01 1/3, t1 2/3, g 1 (sum 2); (2 - 1/3) / 2 = 5/6.
Test(prune, feature_without_incoming_dropped_error_kept) {
    Graph g;
    cr_assert_eq(graph_alloc(&g, 1, 2, 2, 1), CT_OK);
    set_feature(&g, 0, 0, 1, 2, 3.0f);
    int tok[2] = {1, 9}, lv[1] = {4};
    float p[1] = {1.0f};
    fill_blocks(&g, 1, 2, tok, lv, p);
    set_edge(&g, 5, 0, 1.0f), set_edge(&g, 5, 2, -1.0f), set_edge(&g, 5, 4, 2.0f);
    cr_assert_eq(prune_graph(&g, 0.8, 0.98), CT_OK, "%s", ct_errmsg());
    uint8_t want_nodes[6] = {0, 0, 1, 1, 1, 1};
    for (int i = 0; i < 6; i++) cr_assert_eq(g.node_keep[i], want_nodes[i], "node %d", i);
    cr_assert_eq(g.n_kept_edges, 2);
    cr_assert(!g.edge_keep[5 * 6 + 0] && g.edge_keep[5 * 6 + 2] && g.edge_keep[5 * 6 + 4]);
    cr_assert_float_eq(g.replacement_score, 2.0 / 3.0, TOL);
    cr_assert_float_eq(g.completeness_score, 0.875, TOL);
    cr_assert_float_eq(g.pruned_replacement_score, 2.0 / 3.0, TOL);
    cr_assert_float_eq(g.pruned_completeness_score, 5.0 / 6.0, TOL);
    graph_free(&g);
}

// ---- threshold() ---------------------------------------------------------------------------
Test(prune, threshold_edge_cases) {
    double thr;
    // All equal: cumsum/sum .25 .5 .75 1; tau .5 -> index 1 -> 2: every score kept.
    double eq[4] = {2, 2, 2, 2};
    cr_assert_eq(prune_threshold(eq, 4, 0.5, &thr), CT_OK);
    cr_assert_eq(thr, 2.0);
    // Single element: c = 1 >= tau -> the element itself.
    double one[1] = {5};
    cr_assert_eq(prune_threshold(one, 1, 0.8, &thr), CT_OK);
    cr_assert_eq(thr, 5.0);
    // All zero: sum 0, no c >= tau -> k = len - 1 -> 0 (keep everything).
    double z[3] = {0, 0, 0};
    cr_assert_eq(prune_threshold(z, 3, 0.8, &thr), CT_OK);
    cr_assert_eq(thr, 0.0);
    // tau 0: index 0, the maximum.
    double m[4] = {3, 1, 2, 0};
    cr_assert_eq(prune_threshold(m, 4, 0.0, &thr), CT_OK);
    cr_assert_eq(thr, 3.0);
    // tau 1: sorted 3 2 1 0, c = .5 .833 1 1 -> index 2 -> 1 (the zero is not kept).
    cr_assert_eq(prune_threshold(m, 4, 1.0, &thr), CT_OK);
    cr_assert_eq(thr, 1.0);
    // tau .6: c .5 < .6, .833 >= .6 -> 2.
    cr_assert_eq(prune_threshold(m, 4, 0.6, &thr), CT_OK);
    cr_assert_eq(thr, 2.0);
    // Input order does not matter, input is not modified.
    cr_assert(m[0] == 3 && m[1] == 1 && m[2] == 2 && m[3] == 0);
    // Bad arguments.
    cr_assert_eq(prune_threshold(m, 4, 1.5, &thr), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "[0, 1]"), "%s", ct_errmsg());
    cr_assert_eq(prune_threshold(m, 0, 0.5, &thr), CT_ERR);
    double bad[2] = {1, NAN};
    cr_assert_eq(prune_threshold(bad, 2, 0.5, &thr), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "NaN"), "%s", ct_errmsg());
}

Test(prune, threshold_f32_matches_definition) {
    float thr;
    // .5 .25 + three implied zeros, tau .9: c .667 1 -> .25.
    float s[2] = {0.25f, 0.5f};
    cr_assert_eq(prune_threshold_f32(s, 2, 3, 0.9, &thr), CT_OK);
    cr_assert_eq(thr, 0.25f);
    // Only implied zeros -> 0.
    cr_assert_eq(prune_threshold_f32(NULL, 0, 5, 0.9, &thr), CT_OK);
    cr_assert_eq(thr, 0.0f);
    // Listed zeros and implied zeros, sum 0 -> 0.
    float zz[2] = {0, 0};
    cr_assert_eq(prune_threshold_f32(zz, 2, 0, 0.5, &thr), CT_OK);
    cr_assert_eq(thr, 0.0f);
    // Against the double version on random data with duplicates (the radix sort, the order
    // of the cumulative sum): same threshold for many tau.
    TuRng r;
    tu_rng_seed(&r, 7);
    enum { n = 3001 };
    static float x[n];
    static double xd[n];
    for (int i = 0; i < n; i++) {
        x[i] = (i % 5 == 0) ? 0.0f : (float)(tu_rng_uniform(&r) < 0.1 ? 0.5 : tu_rng_uniform(&r) * tu_rng_uniform(&r));
        xd[i] = x[i];
    }
    double taus[6] = {0, 0.3, 0.8, 0.9, 0.98, 1};
    for (int k = 0; k < 6; k++) {
        double td;
        cr_assert_eq(prune_threshold(xd, n, taus[k], &td), CT_OK);
        cr_assert_eq(prune_threshold_f32(x, n, 0, taus[k], &thr), CT_OK);
        cr_assert_eq((double)thr, td, "tau %g: f32 %g double %g", taus[k], thr, td);
    }
    float neg[1] = {-1.0f};
    cr_assert_eq(prune_threshold_f32(neg, 1, 0, 0.5, &thr), CT_ERR);
}

// ---- termination, partial influence, sparse form, errors -------------------------------------
// A chain of 60 features  f0 <- t1,  f_i <- f_{i-1},  g <- f59: every A^ row has one entry of
// weight 1, so all the mass w = 1 flows down the chain: I = 1 for every feature and for t1,
// and the series needs 61 terms (longer than the layer count: termination is by the vector
// becoming zero, not a fixed depth).
Test(prune, long_chain_terminates) {
    enum { NF = 60 };
    Graph g;
    cr_assert_eq(graph_alloc(&g, NF, 2, 2, 1), CT_OK);
    for (int i = 0; i < NF; i++) set_feature(&g, i, 0, 1, i, 1.0f);
    int tok[2] = {1, 2}, lv[1] = {3};
    float p[1] = {1.0f};
    fill_blocks(&g, 1, 2, tok, lv, p);
    int t1 = NF + 3, gl = NF + 4;
    set_edge(&g, 0, t1, 0.5f);
    for (int i = 1; i < NF; i++) set_edge(&g, i, i - 1, (float)(i % 3) - 1.5f);
    set_edge(&g, gl, NF - 1, 7.0f);
    double I[NF + 5];
    cr_assert_eq(prune_influence(&g, NULL, I), CT_OK, "%s", ct_errmsg());
    for (int i = 0; i < NF; i++) cr_assert_float_eq(I[i], 1.0, TOL, "f%d", i);
    cr_assert_float_eq(I[t1], 1.0, TOL);
    cr_assert_eq(I[gl], 0.0);
    graph_free(&g);
}

Test(prune, cycle_is_reported) {
    Graph g;
    cr_assert_eq(graph_alloc(&g, 2, 1, 1, 1), CT_OK);
    set_feature(&g, 0, 0, 0, 0, 1.0f);
    set_feature(&g, 1, 0, 0, 1, 1.0f);
    int tok[1] = {1}, lv[1] = {2};
    float p[1] = {1.0f};
    fill_blocks(&g, 1, 1, tok, lv, p);
    set_edge(&g, 0, 1, 1.0f), set_edge(&g, 1, 0, 1.0f), set_edge(&g, 4, 0, 1.0f);
    double I[5];
    cr_assert_eq(prune_influence(&g, NULL, I), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "cycle"), "%s", ct_errmsg());
    graph_free(&g);
}

// Partial influence on graph 1 (the feature budget): with only the logit rows computed,
// I = w A^ (one term): F1 .6a + .25b = .435, F0 .2a = .12.  Both features unvisited -> order
// F1, F0.  After visiting F1 (its row added): F0 gets .12 + .435 * 1/2 = .3375; only F0 is
// unvisited.
Test(prune, partial_influence_ranks_unvisited_features) {
    Graph g;
    build_graph1(&g);
    double a = 0.6f, b = 0.3f;
    uint8_t done[10] = {0};
    done[G0] = done[G1] = 1;
    int32_t order[2];
    int n = -1;
    double I[10];
    // Only logit rows filled in adj, as the budget loop would have it.
    Graph h;
    build_graph1(&h);
    memset(h.adj + F0 * 10, 0, 10 * sizeof(float));
    memset(h.adj + F1 * 10, 0, 10 * sizeof(float));
    cr_assert_eq(prune_rank_features(&h, done, order, &n, I), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(n, 2);
    cr_assert(order[0] == F1 && order[1] == F0);
    cr_assert_float_eq(I[F1], .6 * a + .25 * b, TOL);
    cr_assert_float_eq(I[F0], .2 * a, TOL);
    // row_done masks rows even when adj holds them (graph g has every row).
    cr_assert_eq(prune_rank_features(&g, done, order, &n, I), CT_OK);
    cr_assert_float_eq(I[F0], .2 * a, TOL);
    done[F1] = 1;
    cr_assert_eq(prune_rank_features(&g, done, order, &n, I), CT_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(order[0], F0);
    cr_assert_float_eq(I[F0], .2 * a + (.6 * a + .25 * b) * 0.5, TOL);
    graph_free(&g);
    graph_free(&h);
}

// Dense and sparse-only graphs prune identically.
Test(prune, sparse_graph_prunes_like_dense) {
    Graph d, s;
    build_graph1(&d);
    build_graph1(&s);
    cr_assert_eq(graph_build_sparse(&s), CT_OK);
    free(s.adj);
    s.adj = NULL;
    cr_assert_eq(prune_graph(&d, 0.8, 0.9), CT_OK);
    cr_assert_eq(prune_graph(&s, 0.8, 0.9), CT_OK, "%s", ct_errmsg());
    cr_assert_null(s.edge_keep);
    cr_assert_eq(s.sp_nnz, d.sp_nnz);
    cr_assert_eq(memcmp(s.sp_keep, d.sp_keep, d.sp_nnz), 0);
    cr_assert_eq(memcmp(s.node_keep, d.node_keep, 10), 0);
    cr_assert_eq(s.replacement_score, d.replacement_score);
    cr_assert_eq(s.pruned_completeness_score, d.pruned_completeness_score);
    for (int i = 0; i < 10; i++) cr_assert_eq(s.nodes[i].influence, d.nodes[i].influence);
    // graph_edge reads both forms alike; graph_densify restores the dense matrix.
    for (int t = 0; t < 10; t++)
        for (int q = 0; q < 10; q++) cr_assert_eq(graph_edge(&s, t, q), graph_edge(&d, t, q));
    cr_assert_eq(graph_densify(&s), CT_OK);
    cr_assert_eq(memcmp(s.adj, d.adj, 100 * sizeof(float)), 0);
    cr_assert_eq(memcmp(s.edge_keep, d.edge_keep, 100), 0);
    graph_free(&d);
    graph_free(&s);
}

Test(prune, bad_inputs) {
    Graph g;
    build_graph1(&g);
    cr_assert_eq(prune_graph(&g, 1.2, 0.9), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "node_threshold"), "%s", ct_errmsg());
    cr_assert_eq(prune_graph(&g, 0.8, -0.1), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "edge_threshold"), "%s", ct_errmsg());
    set_edge(&g, F1, F0, NAN);
    cr_assert_eq(prune_graph(&g, 0.8, 0.9), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "A[1, 0]"), "%s", ct_errmsg());
    graph_free(&g);
    // All logit probabilities zero.
    build_graph1(&g);
    g.nodes[G0].prob = g.nodes[G1].prob = 0.0f;
    cr_assert_eq(prune_graph(&g, 0.8, 0.9), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "logit probabilit"), "%s", ct_errmsg());
    graph_free(&g);
    // Node table out of block order.
    build_graph1(&g);
    g.nodes[F1].kind = NODE_ERROR;
    cr_assert_eq(prune_graph(&g, 0.8, 0.9), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "node 1: kind expected feature"), "%s", ct_errmsg());
    graph_free(&g);
    // No logits at all.
    cr_assert_eq(graph_alloc(&g, 0, 1, 1, 0), CT_OK);
    g.nodes[0].layer = 0;
    g.nodes[1].token = 1;
    g.L = 1, g.T = 1;
    cr_assert_eq(prune_graph(&g, 0.8, 0.9), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "no logit nodes"), "%s", ct_errmsg());
    graph_free(&g);
}

Test(prune, ids_and_cantor) {
    Graph g;
    build_graph1(&g);
    char id[64];
    graph_node_id(&g, F0, id, sizeof id);
    cr_assert_str_eq(id, "0_3_1");
    graph_node_id(&g, E11, id, sizeof id);
    cr_assert_str_eq(id, "0_1_1");   // the reference's error id (collides with a feature "0_1_1")
    graph_node_id(&g, T1, id, sizeof id);
    cr_assert_str_eq(id, "E_42_1");
    graph_node_id(&g, G1, id, sizeof id);
    cr_assert_str_eq(id, "3_9_1");   // L + 1 = 3, vocabulary id 9, position T - 1 = 1
    // (l+f)(l+f+1)/2 + f: (0,0) 0, (1,0) 1, (0,1) 2, (2,3) 5*6/2+3 = 18, and a large one
    // (25, 131071): 131096 * 131097 / 2 + 131071 = 8593146156 + 131071.
    cr_assert_eq(graph_cantor(0, 0), 0);
    cr_assert_eq(graph_cantor(1, 0), 1);
    cr_assert_eq(graph_cantor(0, 1), 2);
    cr_assert_eq(graph_cantor(2, 3), 18);
    cr_assert_eq(graph_cantor(25, 131071), 8593146156LL + 131071);
    graph_free(&g);
}
