// graph_synth.c — random attribution graphs with the structure of real ones (graph_synth.h).
#include "engine/graph_synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

void graph_synth_default(GraphSynthSpec *s) {
    s->n_nodes = 10000;
    s->n_links = 1000000;
    s->L = 6, s->T = 12, s->K = 8;
    s->seed = 1;
}

// splitmix64: a tiny, portable generator (the structure must not depend on the libc).
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint32_t rng_below(uint64_t *s, uint32_t n) { return (uint32_t)((rng_next(s) >> 32) * n >> 32); }
static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }
static double rng_normal(uint64_t *s) {
    double u = rng_unit(s), v = rng_unit(s);
    return sqrt(-2.0 * log(u > 0 ? u : 0x1.0p-53)) * cos(6.283185307179586 * v);
}

static const char *const WORDS[] = {
    " Once", " upon", " a", " time", ",", " there", " was", " little", " girl", " named", " Lily",
    ".", " She", " loved", " to", " play", " in", " the", " park", " with", " her", " dog", " Max",
    " sun", " big", " happy", " tree", " ball", " and", " went", " home", " mom"};
#define NWORDS (int)(sizeof WORDS / sizeof WORDS[0])

typedef struct FeatKey {
    int l, p;
} FeatKey;

static int cmp_featkey(const void *a, const void *b) {
    const FeatKey *x = a, *y = b;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return (x->p > y->p) - (x->p < y->p);
}

// Is node s a possible source of target t (causal structure of attribution)?
static int can_feed(const GraphNode *src, const GraphNode *tgt) {
    if (src->kind == NODE_LOGIT) return 0;
    if (src->pos > tgt->pos) return 0;
    if (tgt->kind == NODE_LOGIT) return 1;
    if (src->kind == NODE_TOKEN) return 1;
    return src->layer < tgt->layer;
}

int graph_synth(Graph *g, const GraphSynthSpec *s) {
    int L = s->L, T = s->T, K = s->K;
    if (L < 1 || T < 1 || K < 1)
        return ct_error("graph_synth: L, T, K expected >= 1, got %d, %d, %d", L, T, K);
    int n_err = L * T, n_feat = s->n_nodes - n_err - T - K;
    if (n_feat < 1)
        return ct_error("graph_synth: %d nodes leave no room for features (errors %d + tokens %d + "
                        "logits %d); ask for more nodes", s->n_nodes, n_err, T, K);
    uint64_t rs = s->seed * 0x2545F4914F6CDD1Dull + 7;
    // Features: random (l, p), sorted; f strictly increasing within a cell and >= L, so a
    // layer-0 feature id never equals an error id ("0_{l}_{p}").
    FeatKey *fk = malloc((size_t)n_feat * sizeof *fk);
    if (!fk) return ct_error("graph_synth: out of memory");
    for (int i = 0; i < n_feat; i++) fk[i].l = (int)rng_below(&rs, (uint32_t)L), fk[i].p = (int)rng_below(&rs, (uint32_t)T);
    qsort(fk, (size_t)n_feat, sizeof *fk, cmp_featkey);

    // Count the candidate sources of every target row to size the CSR.
    int N = s->n_nodes;
    if (graph_alloc_sparse(g, n_feat, n_err, T, K, s->n_links) != CT_OK) {
        free(fk);
        return CT_ERR;
    }
    g->L = L, g->T = T, g->D = 64, g->F = 4096, g->V = 512;
    int f = 0;
    for (int i = 0; i < n_feat; i++) {
        GraphNode *nd = &g->nodes[i];
        if (i == 0 || fk[i].l != fk[i - 1].l || fk[i].p != fk[i - 1].p) f = L + (int)rng_below(&rs, 8);
        else f += 1 + (int)rng_below(&rs, 8);
        nd->layer = fk[i].l, nd->pos = fk[i].p, nd->feature = f;
        nd->activation = (float)(fabs(rng_normal(&rs)) * 2.0 + 0.05);
    }
    free(fk);
    for (int l = 0; l < L; l++)
        for (int p = 0; p < T; p++) {
            GraphNode *nd = &g->nodes[n_feat + l * T + p];
            nd->layer = l, nd->pos = p;
        }
    int tok0 = n_feat + n_err, log0 = tok0 + T;
    g->tokens = malloc((size_t)T * sizeof(int));
    g->token_strs = calloc((size_t)T, sizeof(char *));
    g->logit_strs = calloc((size_t)K, sizeof(char *));
    g->node_labels = calloc((size_t)N, sizeof(char *));
    if (!g->tokens || !g->token_strs || !g->logit_strs || !g->node_labels) goto oom;
    size_t plen = 1;
    for (int p = 0; p < T; p++) {
        GraphNode *nd = &g->nodes[tok0 + p];
        int w = p == 0 ? 0 : (int)rng_below(&rs, NWORDS);
        nd->layer = -1, nd->pos = p, nd->token = p == 0 ? 1 : 3 + w;
        g->tokens[p] = nd->token;
        if (!(g->token_strs[p] = strdup(p == 0 ? "<s>" : WORDS[w]))) goto oom;
        plen += strlen(g->token_strs[p]);
    }
    // Probabilities 0.5, 0.25, ... scaled to leave some mass to the rest of the vocabulary.
    double mass = 0.9;
    for (int k = 0; k < K; k++) {
        GraphNode *nd = &g->nodes[log0 + k];
        nd->layer = L, nd->pos = T - 1, nd->token = 100 + k;
        nd->prob = (float)(mass * 0.5), mass *= 0.5;
        nd->activation = (float)(8.0 - k);
        nd->is_target = 1;
        if (!(g->logit_strs[k] = strdup(WORDS[(k * 7 + 3) % NWORDS]))) goto oom;
    }
    for (int i = 0; i < n_feat; i++) {
        char b[64];
        snprintf(b, sizeof b, "synthetic feature %d/%d near \"%s\"", g->nodes[i].layer, g->nodes[i].feature,
                 g->token_strs[g->nodes[i].pos]);
        if (!(g->node_labels[i] = strdup(b))) goto oom;
    }
    if (!(g->prompt = malloc(plen))) goto oom;
    g->prompt[0] = 0;
    for (int p = 1; p < T; p++) strcat(g->prompt, g->token_strs[p]);
    char slug[96];
    snprintf(slug, sizeof slug, "synth-%d-%zu-%llu", N, s->n_links, (unsigned long long)s->seed);
    if (!(g->slug = strdup(slug)) || !(g->model_path = strdup("synthetic")) || !(g->clt_path = strdup("synthetic")) ||
        !(g->scan = strdup("synthetic")))
        goto oom;

    // Edge budget: rows are the features and the logits; each row gets a share of the links
    // proportional to its candidate count, rounded down, the remainder handed out row by row.
    size_t *cand = calloc((size_t)N, sizeof *cand), *deg = calloc((size_t)N, sizeof *deg);
    if (!cand || !deg) {
        free(cand), free(deg);
        goto oom;
    }
    size_t total = 0;
    for (int t = 0; t < N; t++) {
        const GraphNode *tg = &g->nodes[t];
        if (tg->kind != NODE_FEATURE && tg->kind != NODE_LOGIT) continue;
        for (int u = 0; u < log0; u++) cand[t] += (size_t)can_feed(&g->nodes[u], tg);
        total += cand[t];
    }
    if (s->n_links > total) {
        free(cand), free(deg);
        graph_free(g);
        return ct_error("graph_synth: %zu links asked for, but the causal structure of %d nodes (L %d, T %d) "
                        "allows only %zu", s->n_links, N, L, T, total);
    }
    size_t given = 0;
    for (int t = 0; t < N; t++) {
        deg[t] = (size_t)((double)s->n_links * (double)cand[t] / (double)(total ? total : 1));
        if (deg[t] > cand[t]) deg[t] = cand[t];
        given += deg[t];
    }
    for (int t = 0; given < s->n_links; t = (t + 1) % N)
        if (deg[t] < cand[t]) deg[t]++, given++;
    // Selection sampling (Knuth's algorithm S): each row's sources come out ascending.
    size_t k = 0;
    for (int t = 0; t < N; t++) {
        g->sp_row[t] = k;
        size_t need = deg[t], left = cand[t];
        const GraphNode *tg = &g->nodes[t];
        for (int u = 0; u < log0 && need; u++) {
            if (!can_feed(&g->nodes[u], tg)) continue;
            if ((double)need > rng_unit(&rs) * (double)left) {
                // heavy tail: |w| = exp(N(0, 1)) / 10, sign with probability 0.7 positive
                double w = exp(rng_normal(&rs)) * 0.1;
                if (rng_unit(&rs) < 0.3) w = -w;
                g->sp_col[k] = (uint32_t)u;
                g->sp_val[k] = (float)w == 0.0f ? 1e-6f : (float)w;
                k++, need--;
            }
            left--;
        }
    }
    g->sp_row[N] = k;
    free(cand), free(deg);
    g->n_active_total = n_feat;
    g->max_feature_nodes = n_feat;
    return CT_OK;
oom:
    graph_free(g);
    return ct_error("graph_synth: out of memory");
}
