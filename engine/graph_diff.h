// graph_diff.h — how far two attribution graphs of the same prompt are apart: an int8 graph
// against the fp32 one (`--dtype q8 --clt-dtype q8`), two transcoders, two code versions.
// `ctrace graph-diff A.ctg B.ctg` prints it.
//
// Nodes are matched by identity, not by index (the two graphs may hold different active
// features: a pre-activation near its JumpReLU threshold can cross it): feature (l, p, f),
// error (l, p), token p, logit (its vocabulary id).  Edges are matched by (target, source)
// identity.  Reported:
//   - features of each graph and how many both hold;
//   - edges: the union of both graphs' nonzero edges, those in both, those in one only, and
//     the share of b's total |weight| on edges only b holds;
//   - Pearson correlation of the edge weights over the union (an edge one graph lacks counts
//     as 0 there) and over the edges both hold, for the full graphs;
//   - when both carry pruning flags, the same over the pruned graphs: the edges kept in either
//     graph, each weighed by its graph's full adjacency (an edge one graph holds but did not
//     keep keeps its weight: pruning decisions are counted apart, as kept in one only);
//   - the largest |w_a - w_b| over shared edges;
//   - of the top k nodes by influence on the logits (prune_influence on each full graph),
//     how many are the same node, among all nodes and among feature nodes.
// Both graphs must be of the same prompt (same token ids), else an error says so.
#pragma once
#include <stddef.h>
#include <stdio.h>

#include "engine/graph.h"

typedef struct GraphDiffEdges {
    size_t n_union, n_both, n_only_a, n_only_b;   // pruned: kept in either, both, a only, b only
    double pearson_union;    // missing edge = 0 (NaN when fewer than 2 edges or no variance)
    double pearson_both;     // over the edges both graphs hold
    double mass_only_b;      // sum |w| of b's edges that a lacks / sum |w| of b's edges
    double max_abs_diff;     // over the edges both hold
} GraphDiffEdges;

typedef struct GraphDiff {
    int n_feat_a, n_feat_b, n_feat_both;
    GraphDiffEdges full;     // every edge of each graph
    int pruned;              // 1: both graphs carry keep flags, `kept` is filled
    GraphDiffEdges kept;     // the edges pruning kept in each graph
    int top_k;               // requested k (each graph may have fewer influential nodes)
    int top_all, top_feat;   // overlap of the two top-k lists: all nodes, feature nodes
} GraphDiff;

// Compare a and b (each with its CSR: graph_build_sparse; files read back have it).
// top_k >= 1.  Returns 0, or -1 (message set) on different prompts or out of memory.
int graph_diff(const Graph *a, const Graph *b, int top_k, GraphDiff *d);

// The report as text lines (what `ctrace graph-diff` prints).
void graph_diff_print(FILE *f, const GraphDiff *d);
