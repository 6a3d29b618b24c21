// graph_diff.c — two graphs of one prompt side by side (see graph_diff.h).
#include "engine/graph_diff.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/prune.h"

// A node's identity as one integer: kind in bits 60..63, then the fields that make it unique
// (layer 12 bits, position 16 bits, feature 32 bits; logits: the vocabulary id).
static uint64_t node_key(const Graph *g, int i) {
    const GraphNode *n = &g->nodes[i];
    uint64_t k = (uint64_t)n->kind << 60;
    switch (n->kind) {
    case NODE_FEATURE: return k | (uint64_t)(uint32_t)n->layer << 48 | (uint64_t)(uint32_t)n->pos << 32 | (uint32_t)n->feature;
    case NODE_ERROR: return k | (uint64_t)(uint32_t)n->layer << 48 | (uint64_t)(uint32_t)n->pos << 32;
    case NODE_TOKEN: return k | (uint64_t)(uint32_t)n->pos << 32;
    default: return k | (uint32_t)n->token;
    }
}

typedef struct Edge {
    uint64_t t, s;   // target and source keys
    float w;
    uint8_t keep;
} Edge;

static int edge_cmp(const void *x, const void *y) {
    const Edge *a = x, *b = y;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    if (a->s != b->s) return a->s < b->s ? -1 : 1;
    return 0;
}

// Every nonzero edge of g with its endpoint keys, sorted by (t, s).
static Edge *edges_of(const Graph *g, size_t *n) {
    Edge *e = malloc((g->sp_nnz ? g->sp_nnz : 1) * sizeof *e);
    if (!e) return NULL;
    size_t k = 0;
    for (int t = 0; t < g->n_nodes; t++) {
        uint64_t kt = node_key(g, t);
        for (uint64_t j = g->sp_row[t]; j < g->sp_row[t + 1]; j++)
            if (g->sp_val[j] != 0.0f)
                e[k++] = (Edge){kt, node_key(g, (int)g->sp_col[j]), g->sp_val[j], g->sp_keep ? g->sp_keep[j] : 0};
    }
    qsort(e, k, sizeof *e, edge_cmp);
    *n = k;
    return e;
}

// Pearson correlation from running sums (double; edges are fp32).
typedef struct Corr {
    double n, sx, sy, sxx, syy, sxy;
} Corr;
static void corr_add(Corr *c, double x, double y) {
    c->n += 1, c->sx += x, c->sy += y, c->sxx += x * x, c->syy += y * y, c->sxy += x * y;
}
static double corr_get(const Corr *c) {
    if (c->n < 2) return NAN;
    double vx = c->sxx - c->sx * c->sx / c->n, vy = c->syy - c->sy * c->sy / c->n;
    if (!(vx > 0) || !(vy > 0)) return NAN;
    return (c->sxy - c->sx * c->sy / c->n) / sqrt(vx * vy);
}

// Walk both sorted lists.  kept == 0: every edge, a graph's weight 0 where it lacks the edge.
// kept == 1: the edges pruning kept in either graph, each graph's weight from its full
// adjacency (an edge that one graph computed but did not keep still has its weight there:
// whether pruning kept it is counted apart, in n_only_a / n_only_b).
static GraphDiffEdges compare_edges(const Edge *ea, size_t na, const Edge *eb, size_t nb, int kept) {
    GraphDiffEdges r;
    memset(&r, 0, sizeof r);
    Corr u = {0}, both = {0};
    double mass_b = 0, mass_only_b = 0;
    size_t i = 0, j = 0;
    while (i < na || j < nb) {
        int c = i == na ? 1 : j == nb ? -1 : edge_cmp(&ea[i], &eb[j]);
        int in_a = c <= 0 && (!kept || ea[i].keep), in_b = c >= 0 && (!kept || eb[j].keep);
        if (in_a || in_b) {
            double x = c <= 0 ? ea[i].w : 0, y = c >= 0 ? eb[j].w : 0;
            corr_add(&u, x, y);
            if (in_a && in_b) {
                corr_add(&both, x, y);
                r.n_both++;
                r.max_abs_diff = fmax(r.max_abs_diff, fabs(x - y));
            } else if (in_a) {
                r.n_only_a++;
            } else {
                r.n_only_b++;
                mass_only_b += fabs(y);
            }
            mass_b += fabs(y);
        }
        i += c <= 0, j += c >= 0;
    }
    r.n_union = (size_t)u.n;
    r.pearson_union = corr_get(&u);
    r.pearson_both = corr_get(&both);
    r.mass_only_b = mass_b > 0 ? mass_only_b / mass_b : 0;
    return r;
}

// Indices of the top k nodes by I (descending, ties by lower index; only I > 0), only
// features when asked.  Returns how many were written.
static int top_nodes(const Graph *g, const double *I, int k, int only_features, int *out) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (only_features && g->nodes[i].kind != NODE_FEATURE) continue;
        if (!(I[i] > 0)) continue;
        if (n == k && !(I[i] > I[out[k - 1]])) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && I[i] > I[out[j - 1]]) out[j] = out[j - 1], j--;
        out[j] = i;
    }
    return n;
}

static int top_overlap(const Graph *a, const double *Ia, const Graph *b, const double *Ib, int k, int only_features,
                       int *ta, int *tb) {
    int na = top_nodes(a, Ia, k, only_features, ta), nb = top_nodes(b, Ib, k, only_features, tb), o = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++) o += node_key(a, ta[i]) == node_key(b, tb[j]);
    return o;
}

static int count_shared_features(const Graph *a, const Graph *b) {
    size_t n = (size_t)a->n_features, m = (size_t)b->n_features;
    uint64_t *ka = malloc((n + 1) * sizeof *ka), *kb = malloc((m + 1) * sizeof *kb);
    if (!ka || !kb) {
        free(ka), free(kb);
        return -1;
    }
    size_t x = 0, y = 0;
    for (int i = 0; i < a->n_nodes; i++)
        if (a->nodes[i].kind == NODE_FEATURE) ka[x++] = node_key(a, i);
    for (int i = 0; i < b->n_nodes; i++)
        if (b->nodes[i].kind == NODE_FEATURE) kb[y++] = node_key(b, i);
    // feature nodes come sorted by (l, p, f), which is key order
    int both = 0;
    for (size_t i = 0, j = 0; i < x && j < y;) {
        if (ka[i] == kb[j]) both++, i++, j++;
        else if (ka[i] < kb[j]) i++;
        else j++;
    }
    free(ka), free(kb);
    return both;
}

int graph_diff(const Graph *a, const Graph *b, int top_k, GraphDiff *d) {
    memset(d, 0, sizeof *d);
    if (top_k < 1) return ct_error("graph-diff: top k must be >= 1, got %d", top_k);
    if (!a->sp_row || !b->sp_row) return ct_error("graph-diff: a graph has no sparse adjacency (graph_build_sparse)");
    if (a->T != b->T || (a->T > 0 && (!a->tokens || !b->tokens || memcmp(a->tokens, b->tokens, (size_t)a->T * sizeof(int)))))
        return ct_error("graph-diff: the graphs are of different prompts (%d and %d tokens%s)", a->T, b->T,
                        a->T == b->T ? ", different ids" : "");
    size_t na, nb;
    Edge *ea = edges_of(a, &na), *eb = edges_of(b, &nb);
    double *Ia = malloc((size_t)(a->n_nodes + 1) * sizeof *Ia), *Ib = malloc((size_t)(b->n_nodes + 1) * sizeof *Ib);
    int *ta = malloc((size_t)top_k * sizeof *ta), *tb = malloc((size_t)top_k * sizeof *tb);
    int rc = CT_ERR;
    if (!ea || !eb || !Ia || !Ib || !ta || !tb) {
        ct_error("graph-diff: out of memory (%zu + %zu edges)", a->sp_nnz, b->sp_nnz);
        goto done;
    }
    for (size_t i = 1; i < na; i++)
        if (!edge_cmp(&ea[i - 1], &ea[i])) {
            ct_error("graph-diff: the first graph holds two nodes of one identity");
            goto done;
        }
    for (size_t i = 1; i < nb; i++)
        if (!edge_cmp(&eb[i - 1], &eb[i])) {
            ct_error("graph-diff: the second graph holds two nodes of one identity");
            goto done;
        }
    d->n_feat_a = a->n_features, d->n_feat_b = b->n_features;
    if ((d->n_feat_both = count_shared_features(a, b)) < 0) {
        ct_error("graph-diff: out of memory");
        goto done;
    }
    d->full = compare_edges(ea, na, eb, nb, 0);
    d->pruned = a->sp_keep && b->sp_keep;
    if (d->pruned) d->kept = compare_edges(ea, na, eb, nb, 1);
    if (prune_influence(a, NULL, Ia) != CT_OK || prune_influence(b, NULL, Ib) != CT_OK) goto done;
    d->top_k = top_k;
    d->top_all = top_overlap(a, Ia, b, Ib, top_k, 0, ta, tb);
    d->top_feat = top_overlap(a, Ia, b, Ib, top_k, 1, ta, tb);
    rc = CT_OK;
done:
    free(ea), free(eb), free(Ia), free(Ib), free(ta), free(tb);
    return rc;
}

static void print_edges(FILE *f, int kept, const GraphDiffEdges *e) {
    fprintf(f, "%-7s edges %zu in the union, %zu in both, %zu only in a, %zu only in b (%.3g of b's |weight|)\n",
            kept ? "pruned" : "full", e->n_union, e->n_both, e->n_only_a, e->n_only_b, e->mass_only_b);
    fprintf(f, "        Pearson %.5f over the union (%s), %.5f over %s; max |a - b| %.3g\n", e->pearson_union,
            kept ? "weights from the full graphs" : "missing = 0", e->pearson_both,
            kept ? "edges both kept" : "shared edges", e->max_abs_diff);
}

void graph_diff_print(FILE *f, const GraphDiff *d) {
    fprintf(f, "features %d in a, %d in b, %d in both\n", d->n_feat_a, d->n_feat_b, d->n_feat_both);
    print_edges(f, 0, &d->full);
    if (d->pruned) print_edges(f, 1, &d->kept);
    else fprintf(f, "pruned  (a graph carries no pruning flags)\n");
    fprintf(f, "top %d by influence: %d shared (all nodes), %d shared (feature nodes)\n", d->top_k, d->top_all,
            d->top_feat);
}
