// prune.h — influence, pruning and graph scores of an attribution graph (METHOD §3).
//
//     A^ = |A| / max(rowsum |A|, 1e-10)      each target row sums to 1 (or is empty)
//     I  = w A^ + w A^2 + ...                w (N): logit probabilities on logit nodes, else 0
//
// A^ is never formed: A is held as a CSR of its nonzeros (graph.h) and row t is scaled by
// 1/max(rowsum_t, 1e-10) on the fly, so one term of the series costs O(nnz of the rows the
// current vector touches).  Edges go from earlier layers/positions to later ones, so A^ is
// nilpotent and the series ends after at most (longest path) terms; the loop stops when the vector is exactly zero, and reports a cycle
// after N + 1 terms.  Sums are in double; the CSR keeps A in fp32.
//
// threshold(scores, tau): sort descending, c = cumsum / sum, k = first index with c >= tau
// (k = len - 1 when none, e.g. all scores zero); keep scores >= sorted[k].
//
// prune_graph:
//   1. I on A^; keep nodes with I >= threshold(I, node_threshold); tokens, logits always kept.
//   2. A' = A with the rows and columns of dropped nodes zeroed, renormalised to A^';
//      I' = influence(A^', w) + w; S[t,s] = A^'[t,s] I'[t]; keep edges with
//      S >= threshold(S over all N*N entries, edge_threshold).  An "edge" is a nonzero entry
//      of A^': the N*N - nnz implied zeros take part in the threshold (they matter only when
//      every score is 0, where the threshold is 0 and every nonzero edge is kept) but are
//      never kept themselves.
//   3. To a fixed point: drop feature/error nodes with no kept outgoing edge, feature nodes
//      with no kept incoming edge, and edges touching dropped nodes.  Tokens, logits stay.
//
// Scores, full graph (on the unpruned A^, I as above):
//   replacement  = sum_tokens I / (sum_tokens I + sum_errors I)
//   completeness = sum_i (1 - sum_{j error} A^[i,j]) (I_i + w_i) / sum_i (I_i + w_i)
// Scores, pruned graph: the same two formulas on A_p = A restricted to the kept edges
// (after step 3; their endpoints are kept nodes), renormalised by the kept rows' own sums:
// A^_p = |A_p| / max(rowsum |A_p|, 1e-10), I_p = influence(A^_p, w).  Dropped nodes have
// I_p = 0 and w = 0, so the sums run over the kept nodes.  A score whose denominator is 0 is
// NaN (JSON writes null).
//
// The viewer's node "influence" (GraphNode.influence) follows circuit-tracer: nodes sorted
// by I (unpruned) descending, ties by lower node index; influence = cumsum(I)/sum(I) at the
// node's rank, so the most influential node has the smallest value and every node whose I is
// 0 gets 1.  When sum(I) = 0 every node gets 1.  GraphNode.influence_raw holds I itself.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/graph.h"

#define PRUNE_NORM_EPS 1e-10   // the clamp in max(rowsum |A|, eps)

// threshold(scores, tau) of the header on n scores (any order; not modified).  tau in [0, 1];
// n >= 1; NaN scores are rejected.
int prune_threshold(const double *scores, size_t n, double tau, double *thr);
// The same on fp32 scores with n_zero implied extra zeros (the edge scores use it; a radix
// sort keeps it O(n) for millions of edges).
int prune_threshold_f32(const float *scores, size_t n, size_t n_zero, double tau, float *thr);

// I (N) on A^ of g.  row_done (N) or NULL: rows with row_done[t] == 0 count as zero rows,
// which is exactly the partial influence of the feature budget ("section 3 on the rows so
// far": logit rows first, then visited features).  Uses the CSR when present, else reads only
// the selected rows of the dense adj.
int prune_influence(const Graph *g, const uint8_t *row_done, double *I);

// Influence over N nodes from rows held elsewhere: rows[r] (N floats, dense) is the row of
// node row_node[r] (each node at most once); every other row is zero.  w (N): the start
// vector (logit weights).  I (N) out.  For a caller that keeps computed rows in its own
// batch buffers.
int prune_rows_influence(int N, size_t n_rows, const float *const *rows, const int32_t *row_node,
                         const double *w, double *I);

// The feature budget's next picks: every feature node with row_done[i] == 0, ordered by
// partial influence (prune_influence with row_done) descending, ties by lower node index.
// order (n_features) receives node indices, *n_order their count.  I (N) or NULL receives
// the influence vector.
int prune_rank_features(const Graph *g, const uint8_t *row_done, int32_t *order, int *n_order,
                        double *I);

// Replacement and completeness of the full graph (header formulas).
int prune_scores(const Graph *g, double *replacement, double *completeness);

// Steps 1-3 and both pairs of scores.  Builds g's CSR when missing (graph_build_sparse) and
// fills: node_keep (N), sp_keep (nnz), edge_keep (N*N, only when g->adj is set),
// n_kept_nodes, n_kept_edges, the four scores, node_threshold/edge_threshold, and every
// node's influence and influence_raw.  Thresholds outside [0, 1] are rejected, as is a graph
// with no logit nodes or all-zero logit probabilities, or a non-finite entry of A.
int prune_graph(Graph *g, double node_threshold, double edge_threshold);
