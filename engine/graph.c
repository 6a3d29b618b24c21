// graph.c — allocation, the dense <-> sparse (CSR) forms of the adjacency, node ids, checks.
// See graph.h for the node order and the two forms of A.
#include "engine/graph.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

static int set_counts(Graph *g, int n_features, int n_errors, int n_tokens, int n_logits) {
    memset(g, 0, sizeof *g);
    if (n_features < 0 || n_errors < 0 || n_tokens < 0 || n_logits < 0)
        return ct_error("graph_alloc: negative node count (features %d, errors %d, tokens %d, "
                        "logits %d)", n_features, n_errors, n_tokens, n_logits);
    long long N = (long long)n_features + n_errors + n_tokens + n_logits;
    // Node indices are stored as u32 in the CSR and as int everywhere else.
    if (N > INT32_MAX)
        return ct_error("graph_alloc: %lld nodes, more than the supported %d", N, INT32_MAX);
    g->n_nodes = (int)N;
    g->n_features = n_features;
    g->n_errors = n_errors;
    g->n_tokens = n_tokens;
    g->n_logits = n_logits;
    g->node_threshold = 0.8f;
    g->edge_threshold = 0.98f;
    g->nodes = calloc(N ? (size_t)N : 1, sizeof(GraphNode));
    if (!g->nodes) return ct_error("graph_alloc: out of memory for %lld nodes", N);
    // Sensible defaults so a half-filled node is recognisable: kinds by block, ids -1.
    for (int i = 0; i < g->n_nodes; i++) {
        GraphNode *nd = &g->nodes[i];
        nd->kind = i < n_features ? NODE_FEATURE
                   : i < n_features + n_errors ? NODE_ERROR
                   : i < n_features + n_errors + n_tokens ? NODE_TOKEN : NODE_LOGIT;
        nd->feature = -1;
        nd->token = -1;
    }
    return CT_OK;
}

int graph_alloc(Graph *g, int n_features, int n_errors, int n_tokens, int n_logits) {
    if (set_counts(g, n_features, n_errors, n_tokens, n_logits) != CT_OK) return CT_ERR;
    size_t N = (size_t)g->n_nodes, NN;
    if (!ct_mul_ok(N, N, &NN) || !ct_mul_ok(NN, sizeof(float), &NN)) {
        graph_free(g);
        return ct_error_ctx("graph_alloc: dense adjacency of %zu x %zu", N, N);
    }
    g->adj = calloc(NN ? NN / sizeof(float) : 1, sizeof(float));
    if (!g->adj) {
        graph_free(g);
        return ct_error("graph_alloc: out of memory for the dense adjacency (%zu x %zu floats, "
                        "%.1f GiB); use graph_alloc_sparse", N, N, (double)NN / (1 << 30));
    }
    return CT_OK;
}

int graph_alloc_sparse(Graph *g, int n_features, int n_errors, int n_tokens, int n_logits,
                       size_t nnz) {
    if (set_counts(g, n_features, n_errors, n_tokens, n_logits) != CT_OK) return CT_ERR;
    size_t N = (size_t)g->n_nodes;
    g->sp_row = calloc(N + 1, sizeof(uint64_t));
    g->sp_col = malloc((nnz ? nnz : 1) * sizeof(uint32_t));
    g->sp_val = malloc((nnz ? nnz : 1) * sizeof(float));
    g->sp_nnz = nnz;
    if (!g->sp_row || !g->sp_col || !g->sp_val) {
        graph_free(g);
        return ct_error("graph_alloc_sparse: out of memory for %zu nodes, %zu edges", N, nnz);
    }
    return CT_OK;
}

static void free_strs(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

void graph_free(Graph *g) {
    if (!g) return;
    free(g->nodes);
    free(g->adj);
    free(g->tokens);
    free_strs(g->token_strs, g->T);   // token_strs is (T)
    free(g->prompt);
    free(g->slug);
    free(g->model_path);
    free(g->clt_path);
    free(g->node_keep);
    free(g->edge_keep);
    free(g->sp_row);
    free(g->sp_col);
    free(g->sp_val);
    free(g->sp_keep);
    free(g->scan);
    free_strs(g->logit_strs, g->n_logits);
    free_strs(g->node_labels, g->n_nodes);
    memset(g, 0, sizeof *g);
}

int graph_build_sparse(Graph *g) {
    if (g->sp_row) return CT_OK;
    if (!g->adj) return ct_error("graph: neither a dense adjacency nor a CSR is present");
    size_t N = (size_t)g->n_nodes, nnz = 0;
    // Two passes over the dense matrix: count, then fill (no regrowth, exact sizes).
    for (size_t i = 0; i < N * N; i++) nnz += g->adj[i] != 0.0f;
    uint64_t *row = malloc((N + 1) * sizeof *row);
    uint32_t *col = malloc((nnz ? nnz : 1) * sizeof *col);
    float *val = malloc((nnz ? nnz : 1) * sizeof *val);
    uint8_t *keep = g->edge_keep ? malloc(nnz ? nnz : 1) : NULL;
    if (!row || !col || !val || (g->edge_keep && !keep)) {
        free(row), free(col), free(val), free(keep);
        return ct_error("graph: out of memory for a CSR of %zu edges", nnz);
    }
    size_t k = 0;
    for (size_t t = 0; t < N; t++) {
        row[t] = k;
        const float *a = g->adj + t * N;
        for (size_t s = 0; s < N; s++) {
            if (a[s] == 0.0f) continue;
            col[k] = (uint32_t)s;
            val[k] = a[s];
            if (keep) keep[k] = g->edge_keep[t * N + s];
            k++;
        }
    }
    row[N] = k;
    g->sp_row = row, g->sp_col = col, g->sp_val = val, g->sp_nnz = nnz;
    if (keep) {
        free(g->sp_keep);
        g->sp_keep = keep;
    }
    return CT_OK;
}

int graph_densify(Graph *g) {
    if (g->adj) return CT_OK;
    if (!g->sp_row) return ct_error("graph: neither a dense adjacency nor a CSR is present");
    size_t N = (size_t)g->n_nodes, NN;
    if (!ct_mul_ok(N, N, &NN)) return ct_error_ctx("graph_densify");
    float *adj = calloc(NN ? NN : 1, sizeof(float));
    uint8_t *ek = g->sp_keep ? calloc(NN ? NN : 1, 1) : NULL;
    if (!adj || (g->sp_keep && !ek)) {
        free(adj), free(ek);
        return ct_error("graph_densify: out of memory for %zu x %zu", N, N);
    }
    for (size_t t = 0; t < N; t++)
        for (uint64_t k = g->sp_row[t]; k < g->sp_row[t + 1]; k++) {
            adj[t * N + g->sp_col[k]] = g->sp_val[k];
            if (ek) ek[t * N + g->sp_col[k]] = g->sp_keep[k];
        }
    g->adj = adj;
    if (ek) {
        free(g->edge_keep);
        g->edge_keep = ek;
    }
    return CT_OK;
}

float graph_edge(const Graph *g, int t, int s) {
    if (t < 0 || s < 0 || t >= g->n_nodes || s >= g->n_nodes) return 0.0f;
    if (g->adj) return g->adj[(size_t)t * (size_t)g->n_nodes + (size_t)s];
    if (!g->sp_row) return 0.0f;
    uint64_t lo = g->sp_row[t], hi = g->sp_row[t + 1];   // sources ascending: bisect
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (g->sp_col[mid] < (uint32_t)s) lo = mid + 1;
        else hi = mid;
    }
    return lo < g->sp_row[t + 1] && g->sp_col[lo] == (uint32_t)s ? g->sp_val[lo] : 0.0f;
}

const char *graph_kind_name(int kind) {
    switch (kind) {
    case NODE_FEATURE: return "feature";
    case NODE_ERROR: return "error";
    case NODE_TOKEN: return "token";
    case NODE_LOGIT: return "logit";
    default: return "?";
    }
}

int graph_check(const Graph *g) {
    long long N = (long long)g->n_features + g->n_errors + g->n_tokens + g->n_logits;
    if (N != g->n_nodes)
        return ct_error("graph: n_nodes %d but features %d + errors %d + tokens %d + logits %d = %lld",
                        g->n_nodes, g->n_features, g->n_errors, g->n_tokens, g->n_logits, N);
    if (!g->nodes && g->n_nodes) return ct_error("graph: node table missing");
    int b1 = g->n_features, b2 = b1 + g->n_errors, b3 = b2 + g->n_tokens;
    for (int i = 0; i < g->n_nodes; i++) {
        const GraphNode *nd = &g->nodes[i];
        int want = i < b1 ? NODE_FEATURE : i < b2 ? NODE_ERROR : i < b3 ? NODE_TOKEN : NODE_LOGIT;
        if (nd->kind != want)
            return ct_error("graph: node %d: kind expected %s (block order features | errors | "
                            "tokens | logits), got %s (%d)", i, graph_kind_name(want),
                            graph_kind_name(nd->kind), nd->kind);
        if (nd->pos < 0 || (g->T > 0 && nd->pos >= g->T))
            return ct_error("graph: node %d (%s): ctx_idx expected in [0, %d), got %d", i,
                            graph_kind_name(nd->kind), g->T, nd->pos);
        if ((nd->kind == NODE_FEATURE || nd->kind == NODE_ERROR) &&
            (nd->layer < 0 || (g->L > 0 && nd->layer >= g->L)))
            return ct_error("graph: node %d (%s): layer expected in [0, %d), got %d", i,
                            graph_kind_name(nd->kind), g->L, nd->layer);
        if (nd->kind == NODE_FEATURE && nd->feature < 0)
            return ct_error("graph: node %d (feature): feature index expected >= 0, got %d", i,
                            nd->feature);
        if ((nd->kind == NODE_TOKEN || nd->kind == NODE_LOGIT) && nd->token < 0)
            return ct_error("graph: node %d (%s): token id expected >= 0, got %d", i,
                            graph_kind_name(nd->kind), nd->token);
        if (nd->kind == NODE_LOGIT && g->L > 0 && nd->layer != g->L)
            return ct_error("graph: node %d (logit): layer expected L = %d, got %d", i, g->L,
                            nd->layer);
    }
    if (g->sp_row) {
        if (g->sp_row[0] != 0 || g->sp_row[g->n_nodes] != g->sp_nnz)
            return ct_error("graph: CSR row offsets expected 0..%zu, got %" PRIu64 "..%" PRIu64,
                            g->sp_nnz, g->sp_row[0], g->sp_row[g->n_nodes]);
        for (int t = 0; t < g->n_nodes; t++) {
            if (g->sp_row[t + 1] < g->sp_row[t])
                return ct_error("graph: CSR row offsets decrease at row %d", t);
            for (uint64_t k = g->sp_row[t]; k < g->sp_row[t + 1]; k++) {
                if (g->sp_col[k] >= (uint32_t)g->n_nodes)
                    return ct_error("graph: edge %" PRIu64 " (target %d): source expected < %d, "
                                    "got %u", k, t, g->n_nodes, g->sp_col[k]);
                if (k > g->sp_row[t] && g->sp_col[k] <= g->sp_col[k - 1])
                    return ct_error("graph: row %d: sources not strictly ascending at edge %" PRIu64,
                                    t, k);
            }
        }
    }
    return CT_OK;
}

void graph_logit_weights(const Graph *g, double *w) {
    for (int i = 0; i < g->n_nodes; i++)
        w[i] = g->nodes[i].kind == NODE_LOGIT ? (double)g->nodes[i].prob : 0.0;
}

int64_t graph_cantor(int64_t l, int64_t f) { return (l + f) * (l + f + 1) / 2 + f; }

int graph_node_id(const Graph *g, int i, char *buf, size_t n) {
    const GraphNode *nd = &g->nodes[i];
    switch (nd->kind) {
    case NODE_FEATURE: return snprintf(buf, n, "%d_%d_%d", nd->layer, nd->feature, nd->pos);
    // The reference's error id "0_{l}_{p}": it can collide with a layer-0 feature's id
    // (feature index == l at the same position); readers use feature_type to tell them apart.
    case NODE_ERROR: return snprintf(buf, n, "0_%d_%d", nd->layer, nd->pos);
    case NODE_TOKEN: return snprintf(buf, n, "E_%d_%d", nd->token, nd->pos);
    case NODE_LOGIT: return snprintf(buf, n, "%d_%d_%d", nd->layer + 1, nd->token, nd->pos);
    default: return snprintf(buf, n, "?_%d", i);
    }
}
