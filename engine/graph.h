// graph.h — an attribution graph in memory: the node table in METHOD §2 order and the
// adjacency A[target, source] over those nodes, plus what pruning and scoring add.
//
// Node order (METHOD §2):
//   [ selected active features (l, p, f) sorted by (l, p, f) | errors (L*T, index l*T + p) |
//     tokens (T) | logits (K) ]
// A is (N, N), row = target, column = source: dense row-major in adj, or sparse (below);
// attribution fills the sparse form.  Rows of error and token nodes are zero (nothing
// writes into them).  Only features the budget selected are nodes (as in circuit-tracer):
// active features outside the budget appear in neither rows nor columns.
//
// Sparse form (added for large graphs and for files read back): the same A as CSR by target
// row, sources ascending within a row, only nonzero entries:
//     row t's edges are sp_col[sp_row[t] .. sp_row[t+1]) with weights sp_val[...]
// A Graph may hold adj, the CSR, or both (graph_build_sparse() derives the CSR from adj; it
// is a snapshot: rebuild it if adj changes).  Pruning works on the CSR and writes sp_keep
// (one flag per CSR entry) and, when adj is present, the dense edge_keep too.
//
// Producers: engine/attribute.c fills nodes, adj and the metadata.  Consumers: prune.c
// (influence, pruning, scores), graph_io.c (JSON, raw .ctg), render/serve later.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum { NODE_FEATURE = 0, NODE_ERROR = 1, NODE_TOKEN = 2, NODE_LOGIT = 3 } NodeKind;

typedef struct GraphNode {
    uint8_t kind;       // NodeKind
    int32_t layer;      // feature/error: layer; token: -1 ("E"); logit: L (written as "L+1")
    int32_t pos;        // ctx_idx; logits: T - 1
    int32_t feature;    // feature index (features), -1 otherwise
    int32_t token;      // token id (token nodes) or vocabulary id (logit nodes), else -1
    float activation;   // feature activation; logit: the logit value; else 0
    float prob;         // logit nodes: softmax probability; else 0
    float influence;    // filled by pruning: the viewer's cumulative-influence rank fraction:
                        // nodes sorted by I descending (ties: lower index first), influence =
                        // cumsum(I)/sum(I) at the node's rank; smaller = more important
    uint8_t is_target;  // logit nodes that are targets (all of them, here)
    float influence_raw;  // filled by pruning: I_i, the node's influence on the logits (unpruned A^)
} GraphNode;

typedef struct Graph {
    // sizes
    int n_nodes;        // N
    int n_features, n_errors, n_tokens, n_logits;
    int L, T, D, F, V;
    GraphNode *nodes;   // (N)
    float *adj;         // (N, N) row-major, A[target * N + source]
    // prompt and provenance
    int *tokens;        // (T) prompt token ids
    char **token_strs;  // (T) decoded pieces, for labels
    char *prompt;       // prompt text ("" when given as ids)
    char *slug;
    char *model_path, *clt_path;
    uint64_t model_fp, clt_fp, prompt_fp;  // xxh3-64 fingerprints
    int n_active_total; // active features before the budget
    int max_feature_nodes;
    float node_threshold, edge_threshold;
    // filled by prune.c
    uint8_t *node_keep; // (N) 1 = kept after pruning
    uint8_t *edge_keep; // (N, N) 1 = kept edge (NULL until pruned)
    double replacement_score, completeness_score;                // full graph
    double pruned_replacement_score, pruned_completeness_score;  // pruned graph
    int n_kept_nodes;
    size_t n_kept_edges;
    // ---- added: sparse adjacency, labels, provenance (all optional; graph_free frees them) ----
    uint64_t *sp_row;   // (N+1) CSR row offsets by target, or NULL
    uint32_t *sp_col;   // (nnz) source node index, ascending within a row
    float *sp_val;      // (nnz) A[target, source], nonzero
    uint8_t *sp_keep;   // (nnz) 1 = kept edge (filled by pruning), or NULL
    size_t sp_nnz;
    char *scan;         // metadata "scan" (transcoder set name); NULL -> basename of clt_path
    char **logit_strs;  // (K) decoded logit tokens for the clerp `Output "tok" (p=...)`, or NULL
    char **node_labels; // (N) optional feature labels (clerp), entries may be NULL, or NULL
} Graph;

// Allocate nodes and a zero adjacency for the given counts; metadata pointers NULL.
int graph_alloc(Graph *g, int n_features, int n_errors, int n_tokens, int n_logits);
void graph_free(Graph *g);

// Like graph_alloc, but with no dense adj: sp_row zeroed (N+1), sp_col/sp_val room for nnz.
int graph_alloc_sparse(Graph *g, int n_features, int n_errors, int n_tokens, int n_logits,
                       size_t nnz);
// Derive the CSR (sp_*) from adj (no-op when sp_row is already set).  When edge_keep is
// set, sp_keep is derived from it too.
int graph_build_sparse(Graph *g);
// Add the dense adj (and edge_keep from sp_keep) to a sparse graph (no-op when adj is set).
int graph_densify(Graph *g);
// A[t, s] from whichever form is present (binary search in the CSR).
float graph_edge(const Graph *g, int t, int s);
// Check the node table: counts add up to N, kinds in block order, fields in range.
int graph_check(const Graph *g);
// Logit weights w (N): node prob on logit nodes, 0 elsewhere.
void graph_logit_weights(const Graph *g, double *w);
// Node id per METHOD §4 into buf ("12_345_6", "0_3_5" for errors, "E_791_2", "7_123_9").
// Returns the length (snprintf semantics).
int graph_node_id(const Graph *g, int i, char *buf, size_t n);
// Cantor pair (l+f)(l+f+1)/2 + f: the viewer's "feature" field of a feature node.
int64_t graph_cantor(int64_t l, int64_t f);
const char *graph_kind_name(int kind);   // "feature", "error", "token", "logit"

