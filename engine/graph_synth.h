// graph_synth.h — random attribution graphs of any size, for the renderer's and the viewer's
// tests and for their performance targets (10,000 nodes, 1,000,000 links) without running
// attribution.
//
// The graph looks like a real one: node blocks in METHOD §2 order (features sorted by
// (l, p, f), errors l*T + p, tokens, logits at T-1), edges only where attribution can put
// them (source layer < target layer for feature targets, source position <= target
// position; logits read everything), heavy-tailed weights of both signs, logit
// probabilities that decrease and sum below 1.  Same spec -> same graph on every platform
// (splitmix64 and integer arithmetic decide the structure).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/graph.h"

typedef struct GraphSynthSpec {
    int n_nodes;      // N, all kinds together (>= L*T + T + K + 1)
    size_t n_links;   // nonzero edges (at most what the causal structure allows)
    int L, T, K;      // layers, positions, logits
    uint64_t seed;
} GraphSynthSpec;

// Defaults: 10,000 nodes, 1,000,000 links, L 6, T 12, K 8, seed 1.
void graph_synth_default(GraphSynthSpec *s);

// Fill g (a sparse Graph: CSR, no dense adj) with the graph of spec s; labels, token and
// logit strings, prompt and slug ("synth-<N>-<M>-<seed>") are set.  Not pruned.
int graph_synth(Graph *g, const GraphSynthSpec *s);
