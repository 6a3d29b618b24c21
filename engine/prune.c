// prune.c — influence, thresholds, node/edge pruning, dangling clean-up and graph scores.
// The formulas and every convention are in prune.h (METHOD §3).
//
// Everything runs on a CSR of A's nonzeros (target rows, fp32 weights) plus, per stage, a
// one-byte mask per CSR entry and a per-row denominator max(sum of kept |a|, 1e-10):
//     A^[t, s] = |a_ts| / den[t]   for kept entries, 0 otherwise.
// One influence term is a scatter  next[s] += (v[t] / den[t]) |a_ts|  over the rows with
// v[t] != 0, so a term costs O(nnz touched), and the loop is single-threaded and in a fixed
// order: the same graph gives the same bits.
#include "engine/prune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

// ---- a CSR view of A (borrowed from the Graph or built from dense rows) ---------------------
typedef struct Csr {
    int N;
    size_t nnz;
    const uint64_t *row;   // (N+1)
    const uint32_t *col;   // (nnz)
    const float *val;      // (nnz)
    uint64_t *own_row;     // set when the view owns its arrays
    uint32_t *own_col;
    float *own_val;
} Csr;

static void csr_free(Csr *c) {
    free(c->own_row), free(c->own_col), free(c->own_val);
    memset(c, 0, sizeof *c);
}

// Build a CSR from dense rows: rows[r] is node row_node[r]'s row (N floats).  Nodes without
// a row get an empty row.
static int csr_from_rows(Csr *c, int N, size_t n_rows, const float *const *rows,
                         const int32_t *row_node) {
    memset(c, 0, sizeof *c);
    c->N = N;
    uint64_t *row = calloc((size_t)N + 1, sizeof *row);
    int32_t *which = malloc(((size_t)N ? (size_t)N : 1) * sizeof *which);   // node -> r, or -1
    if (!row || !which) {
        free(row), free(which);
        return ct_error("prune: out of memory for %d rows", N);
    }
    for (int i = 0; i < N; i++) which[i] = -1;
    for (size_t r = 0; r < n_rows; r++) {
        int32_t t = row_node[r];
        if (t < 0 || t >= N) {
            free(row), free(which);
            return ct_error("prune: row %zu: node index expected in [0, %d), got %d", r, N, t);
        }
        if (which[t] >= 0) {
            int32_t first = which[t];
            free(row), free(which);
            return ct_error("prune: node %d has two rows (%d and %zu)", t, first, r);
        }
        which[t] = (int32_t)r;
    }
    // Pass 1: count nonzeros per node row; pass 2: fill in node order, sources ascending.
    size_t nnz = 0;
    for (int t = 0; t < N; t++) {
        row[t] = nnz;
        if (which[t] < 0) continue;
        const float *a = rows[which[t]];
        for (int s = 0; s < N; s++) nnz += a[s] != 0.0f;
    }
    row[N] = nnz;
    uint32_t *col = malloc((nnz ? nnz : 1) * sizeof *col);
    float *val = malloc((nnz ? nnz : 1) * sizeof *val);
    if (!col || !val) {
        free(row), free(which), free(col), free(val);
        return ct_error("prune: out of memory for a CSR of %zu edges", nnz);
    }
    for (int t = 0; t < N; t++) {
        if (which[t] < 0) continue;
        const float *a = rows[which[t]];
        size_t k = row[t];
        for (int s = 0; s < N; s++)
            if (a[s] != 0.0f) col[k] = (uint32_t)s, val[k++] = a[s];
    }
    free(which);
    c->nnz = nnz;
    c->row = c->own_row = row;
    c->col = c->own_col = col;
    c->val = c->own_val = val;
    return CT_OK;
}

// A view of g's adjacency: the Graph's own CSR when present (borrowed), else a CSR of the
// dense rows selected by row_done (NULL = all).
static int csr_view(const Graph *g, const uint8_t *row_done, Csr *c) {
    memset(c, 0, sizeof *c);
    c->N = g->n_nodes;
    if (g->sp_row) {
        c->nnz = g->sp_nnz, c->row = g->sp_row, c->col = g->sp_col, c->val = g->sp_val;
        return CT_OK;
    }
    if (!g->adj) return ct_error("prune: graph has neither a dense adjacency nor a CSR");
    size_t N = (size_t)g->n_nodes, n_rows = 0;
    const float **rows = malloc((N ? N : 1) * sizeof *rows);
    int32_t *rn = malloc((N ? N : 1) * sizeof *rn);
    if (!rows || !rn) {
        free(rows), free(rn);
        return ct_error("prune: out of memory");
    }
    for (size_t t = 0; t < N; t++)
        if (!row_done || row_done[t]) rows[n_rows] = g->adj + t * N, rn[n_rows++] = (int32_t)t;
    int rc = csr_from_rows(c, g->n_nodes, n_rows, rows, rn);
    free(rows), free(rn);
    return rc;
}

// ---- row denominators and the influence series ---------------------------------------------
// den[t] = max(sum over kept entries of row t of |a|, eps); 0 marks a row with no kept entry
// (or excluded by row_done), which the series skips.  Rejects non-finite weights.
static int row_denominators(const Csr *A, const uint8_t *mask, const uint8_t *row_done,
                            double *den) {
    for (int t = 0; t < A->N; t++) {
        double sum = 0.0;
        int any = 0;
        if (!row_done || row_done[t])
            for (uint64_t k = A->row[t]; k < A->row[t + 1]; k++) {
                if (mask && !mask[k]) continue;
                float a = A->val[k];
                if (!isfinite(a))
                    return ct_error("prune: adjacency entry A[%d, %u] = %g: expected a finite "
                                    "number (NaN/inf in the attribution rows)", t, A->col[k], a);
                sum += fabs((double)a);
                any = 1;
            }
        den[t] = any ? (sum > PRUNE_NORM_EPS ? sum : PRUNE_NORM_EPS) : 0.0;
    }
    return CT_OK;
}

// I = w A^ + w A^2 + ... with A^ given by (A, mask, den).  tmp: 2N doubles of scratch.
static int influence_series(const Csr *A, const uint8_t *mask, const double *den,
                            const double *w, double *I, double *tmp) {
    int N = A->N;
    double *v = tmp, *next = tmp + N;
    memcpy(v, w, sizeof(double) * (size_t)N);
    memset(I, 0, sizeof(double) * (size_t)N);
    // A nilpotent A^ needs at most N terms (the longest path has at most N - 1 edges).
    for (int it = 0; it <= N; it++) {
        memset(next, 0, sizeof(double) * (size_t)N);
        int any = 0;
        for (int t = 0; t < N; t++) {
            if (v[t] == 0.0 || den[t] == 0.0) continue;
            double c = v[t] / den[t];
            for (uint64_t k = A->row[t]; k < A->row[t + 1]; k++) {
                if (mask && !mask[k]) continue;
                next[A->col[k]] += c * fabs((double)A->val[k]);
            }
        }
        for (int s = 0; s < N; s++) {
            I[s] += next[s];
            any |= next[s] != 0.0;
        }
        if (!any) return CT_OK;
        double *sw = v;
        v = next, next = sw;
    }
    return ct_error("prune: influence did not vanish after %d terms: the adjacency has a cycle "
                    "(expected edges only from earlier layers/positions to later ones)", N + 1);
}

// ---- thresholds ------------------------------------------------------------------------------
static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int check_tau(double tau, const char *what) {
    if (!(tau >= 0.0 && tau <= 1.0))
        return ct_error("prune: %s expected in [0, 1], got %g", what, tau);
    return CT_OK;
}

int prune_threshold(const double *scores, size_t n, double tau, double *thr) {
    if (check_tau(tau, "threshold") != CT_OK) return CT_ERR;
    if (n == 0) return ct_error("prune_threshold: no scores (n = 0)");
    double *s = malloc(n * sizeof *s);
    if (!s) return ct_error("prune_threshold: out of memory for %zu scores", n);
    for (size_t i = 0; i < n; i++) {
        if (isnan(scores[i])) {
            free(s);
            return ct_error("prune_threshold: score %zu is NaN", i);
        }
        s[i] = scores[i];
    }
    qsort(s, n, sizeof *s, cmp_desc);
    // sum is the last cumsum in the same order, so c reaches exactly 1 at the end (sum > 0).
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += s[i];
    size_t k = n - 1;
    double cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += s[i];
        if (cum / sum >= tau) {   // NaN (sum == 0) never passes: k stays n - 1
            k = i;
            break;
        }
    }
    *thr = s[k];
    free(s);
    return CT_OK;
}

// LSD radix sort of non-negative floats, ascending: their bit patterns order like the values.
static void radix_sort_f32(uint32_t *key, uint32_t *tmp, size_t n) {
    size_t cnt[256];
    for (int shift = 0; shift < 32; shift += 8) {
        memset(cnt, 0, sizeof cnt);
        for (size_t i = 0; i < n; i++) cnt[(key[i] >> shift) & 255]++;
        size_t pos = 0;
        for (int b = 0; b < 256; b++) {
            size_t c = cnt[b];
            cnt[b] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++) tmp[cnt[(key[i] >> shift) & 255]++] = key[i];
        uint32_t *sw = key;
        key = tmp, tmp = sw;
    }
    // four passes: the result is back in the caller's key array
}

int prune_threshold_f32(const float *scores, size_t n, size_t n_zero, double tau, float *thr) {
    if (check_tau(tau, "threshold") != CT_OK) return CT_ERR;
    if (n + n_zero == 0) return ct_error("prune_threshold: no scores (n = 0)");
    if (n == 0) {
        *thr = 0.0f;
        return CT_OK;
    }
    uint32_t *key = malloc(n * sizeof *key), *tmp = malloc(n * sizeof *tmp);
    if (!key || !tmp) {
        free(key), free(tmp);
        return ct_error("prune_threshold: out of memory for %zu scores", n);
    }
    for (size_t i = 0; i < n; i++) {
        float x = scores[i];
        if (!(x >= 0.0f) || isinf(x)) {
            free(key), free(tmp);
            return ct_error("prune_threshold: edge score %zu = %g: expected finite and >= 0", i, x);
        }
        x += 0.0f;   // -0 -> +0 so the bit order is the numeric order
        memcpy(&key[i], &x, 4);
    }
    radix_sort_f32(key, tmp, n);
    double sum = 0.0;
    for (size_t i = n; i-- > 0;) {
        float x;
        memcpy(&x, &key[i], 4);
        sum += x;
    }
    float result = 0.0f;   // k = len - 1 lands on an implied zero when n_zero > 0
    if (n_zero == 0) memcpy(&result, &key[0], 4);
    double cum = 0.0;
    for (size_t i = n; i-- > 0;) {   // descending
        float x;
        memcpy(&x, &key[i], 4);
        cum += x;
        if (cum / sum >= tau) {
            result = x;
            break;
        }
    }
    *thr = result;
    free(key), free(tmp);
    return CT_OK;
}

// ---- public: influence -----------------------------------------------------------------------
static int check_logits(const Graph *g, const double *w) {
    if (g->n_logits <= 0)
        return ct_error("prune: the graph has no logit nodes (K = 0): nothing to attribute to");
    double sw = 0.0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!(w[i] >= 0.0) || isinf(w[i]))
            return ct_error("prune: node %d: logit probability expected finite and >= 0, got %g",
                            i, w[i]);
        sw += w[i];
    }
    if (sw == 0.0) return ct_error("prune: every logit probability is 0 (w = 0): no influence");
    return CT_OK;
}

int prune_influence(const Graph *g, const uint8_t *row_done, double *I) {
    if (graph_check(g) != CT_OK) return CT_ERR;
    size_t N = (size_t)g->n_nodes;
    Csr A;
    if (csr_view(g, row_done, &A) != CT_OK) return CT_ERR;
    double *w = malloc((3 * N + 1) * sizeof *w), *den = malloc((N + 1) * sizeof *den);
    int rc = CT_ERR;
    if (!w || !den) {
        ct_error("prune: out of memory");
        goto done;
    }
    graph_logit_weights(g, w);
    if (check_logits(g, w) != CT_OK || row_denominators(&A, NULL, row_done, den) != CT_OK ||
        influence_series(&A, NULL, den, w, I, w + N) != CT_OK)
        goto done;
    rc = CT_OK;
done:
    free(w), free(den);
    csr_free(&A);
    return rc;
}

int prune_rows_influence(int N, size_t n_rows, const float *const *rows, const int32_t *row_node,
                         const double *w, double *I) {
    if (N < 0) return ct_error("prune_rows_influence: N = %d", N);
    Csr A;
    if (csr_from_rows(&A, N, n_rows, rows, row_node) != CT_OK) return CT_ERR;
    double *den = malloc(((size_t)N + 1) * sizeof *den), *tmp = malloc((2 * (size_t)N + 1) * sizeof *tmp);
    int rc = CT_ERR;
    if (!den || !tmp) ct_error("prune: out of memory");
    else if (row_denominators(&A, NULL, NULL, den) == CT_OK &&
             influence_series(&A, NULL, den, w, I, tmp) == CT_OK)
        rc = CT_OK;
    free(den), free(tmp);
    csr_free(&A);
    return rc;
}

// Indices sorted by a double key descending, ties by lower index (qsort is not stable, so
// the index is part of the comparison).
typedef struct KeyIdx {
    double key;
    int32_t idx;
} KeyIdx;

static int cmp_keyidx(const void *a, const void *b) {
    const KeyIdx *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? 1 : -1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

int prune_rank_features(const Graph *g, const uint8_t *row_done, int32_t *order, int *n_order,
                        double *I_out) {
    size_t N = (size_t)g->n_nodes;
    double *I = I_out ? I_out : malloc((N + 1) * sizeof *I);
    KeyIdx *ki = malloc(((size_t)g->n_features + 1) * sizeof *ki);
    int rc = CT_ERR, n = 0;
    if (!I || !ki) {
        ct_error("prune: out of memory");
        goto done;
    }
    if (prune_influence(g, row_done, I) != CT_OK) goto done;
    for (int i = 0; i < g->n_features; i++)
        if (!row_done || !row_done[i]) ki[n].key = I[i], ki[n].idx = i, n++;
    qsort(ki, (size_t)n, sizeof *ki, cmp_keyidx);
    for (int j = 0; j < n; j++) order[j] = ki[j].idx;
    *n_order = n;
    rc = CT_OK;
done:
    if (!I_out) free(I);
    free(ki);
    return rc;
}

// ---- scores ----------------------------------------------------------------------------------
// replacement and completeness of (A, mask, den) with influence I and weights w.
static void scores_of(const Graph *g, const Csr *A, const uint8_t *mask, const double *den,
                      const double *I, const double *w, double *repl, double *compl) {
    int e0 = g->n_features, e1 = e0 + g->n_errors, t1 = e1 + g->n_tokens;
    double tok = 0.0, err = 0.0;
    for (int i = e0; i < e1; i++) err += I[i];
    for (int i = e1; i < t1; i++) tok += I[i];
    *repl = tok + err > 0.0 ? tok / (tok + err) : NAN;
    double num = 0.0, dsum = 0.0;
    for (int i = 0; i < g->n_nodes; i++) {
        double errfrac = 0.0;   // sum_{j error} A^[i, j]
        if (den[i] != 0.0) {
            for (uint64_t k = A->row[i]; k < A->row[i + 1]; k++) {
                if (mask && !mask[k]) continue;
                uint32_t j = A->col[k];
                if ((int)j >= e0 && (int)j < e1) errfrac += fabs((double)A->val[k]);
            }
            errfrac /= den[i];
        }
        double out = I[i] + w[i];
        num += (1.0 - errfrac) * out;
        dsum += out;
    }
    *compl = dsum > 0.0 ? num / dsum : NAN;
}

int prune_scores(const Graph *g, double *replacement, double *completeness) {
    if (graph_check(g) != CT_OK) return CT_ERR;
    size_t N = (size_t)g->n_nodes;
    Csr A;
    if (csr_view(g, NULL, &A) != CT_OK) return CT_ERR;
    double *buf = malloc((5 * N + 1) * sizeof *buf);
    int rc = CT_ERR;
    if (!buf) {
        ct_error("prune: out of memory");
    } else {
        double *w = buf, *den = w + N, *I = den + N, *tmp = I + N;
        graph_logit_weights(g, w);
        if (check_logits(g, w) == CT_OK && row_denominators(&A, NULL, NULL, den) == CT_OK &&
            influence_series(&A, NULL, den, w, I, tmp) == CT_OK) {
            scores_of(g, &A, NULL, den, I, w, replacement, completeness);
            rc = CT_OK;
        }
    }
    free(buf);
    csr_free(&A);
    return rc;
}

// ---- pruning ---------------------------------------------------------------------------------
int prune_graph(Graph *g, double node_threshold, double edge_threshold) {
    if (check_tau(node_threshold, "node_threshold") != CT_OK ||
        check_tau(edge_threshold, "edge_threshold") != CT_OK)
        return CT_ERR;
    if (graph_check(g) != CT_OK || graph_build_sparse(g) != CT_OK) return CT_ERR;
    int N = g->n_nodes;
    size_t n = (size_t)N;
    Csr A = {.N = N, .nnz = g->sp_nnz, .row = g->sp_row, .col = g->sp_col, .val = g->sp_val};
    size_t nnz = A.nnz;
    int fe_end = g->n_features + g->n_errors;   // feature and error nodes are [0, fe_end)

    double *buf = malloc((7 * n + 1) * sizeof *buf);
    uint8_t *keep = calloc(n + 1, 1), *has_in = malloc(n + 1), *has_out = malloc(n + 1);
    uint8_t *mask = malloc(nnz + 1);         // stage-2 entries: both endpoints kept
    float *S = malloc((nnz + 1) * sizeof *S);   // stage-2 edge scores (compacted)
    KeyIdx *ki = malloc((n + 1) * sizeof *ki);
    int rc = CT_ERR;
    if (!buf || !keep || !has_in || !has_out || !mask || !S || !ki) {
        ct_error("prune: out of memory for %d nodes, %zu edges", N, nnz);
        goto done;
    }
    double *w = buf, *den = w + n, *I = den + n, *I2 = I + n, *tmp = I2 + n;   // tmp: 2n
    double *Ip = tmp + 2 * n;

    // Full graph: I on A^, its scores.
    graph_logit_weights(g, w);
    if (check_logits(g, w) != CT_OK || row_denominators(&A, NULL, NULL, den) != CT_OK ||
        influence_series(&A, NULL, den, w, I, tmp) != CT_OK)
        goto done;
    scores_of(g, &A, NULL, den, I, w, &g->replacement_score, &g->completeness_score);

    // 1. Node pruning.
    double thr_n;
    if (prune_threshold(I, n, node_threshold, &thr_n) != CT_OK) goto done;
    for (int i = 0; i < N; i++) keep[i] = i >= fe_end || I[i] >= thr_n;

    // 2. Edge pruning on A^' (rows/columns of dropped nodes zeroed, renormalised).
    for (int t = 0; t < N; t++)
        for (uint64_t k = A.row[t]; k < A.row[t + 1]; k++) mask[k] = keep[t] && keep[A.col[k]];
    if (row_denominators(&A, mask, NULL, den) != CT_OK ||
        influence_series(&A, mask, den, w, I2, tmp) != CT_OK)
        goto done;
    size_t ns = 0;
    for (int t = 0; t < N; t++) {
        double It = I2[t] + w[t];   // I' = influence(A^', w) + w
        for (uint64_t k = A.row[t]; k < A.row[t + 1]; k++)
            if (mask[k]) S[ns++] = (float)(fabs((double)A.val[k]) / den[t] * It);
    }
    float thr_e;
    size_t NN = n * n;
    if (prune_threshold_f32(S, ns, NN - ns, edge_threshold, &thr_e) != CT_OK) goto done;
    uint8_t *ek = g->sp_keep ? g->sp_keep : malloc(nnz + 1);
    if (!ek) {
        ct_error("prune: out of memory");
        goto done;
    }
    g->sp_keep = ek;
    ns = 0;
    for (size_t k = 0; k < nnz; k++) ek[k] = mask[k] ? S[ns++] >= thr_e : 0;

    // 3. Dangling clean-up to a fixed point (each round can expose new dangling nodes; a
    //    round removes at least one node, so at most N rounds).
    for (;;) {
        memset(has_in, 0, n), memset(has_out, 0, n);
        for (int t = 0; t < N; t++)
            for (uint64_t k = A.row[t]; k < A.row[t + 1]; k++)
                if (ek[k]) has_in[t] = 1, has_out[A.col[k]] = 1;
        int changed = 0;
        for (int i = 0; i < fe_end; i++) {
            int drop = !has_out[i] || (i < g->n_features && !has_in[i]);
            if (keep[i] && drop) keep[i] = 0, changed = 1;
        }
        if (!changed) break;
        for (int t = 0; t < N; t++)
            for (uint64_t k = A.row[t]; k < A.row[t + 1]; k++)
                if (ek[k] && (!keep[t] || !keep[A.col[k]])) ek[k] = 0;
    }

    // Pruned graph scores on the kept edges, renormalised.
    if (row_denominators(&A, ek, NULL, den) != CT_OK ||
        influence_series(&A, ek, den, w, Ip, tmp) != CT_OK)
        goto done;
    scores_of(g, &A, ek, den, Ip, w, &g->pruned_replacement_score, &g->pruned_completeness_score);

    // Viewer influence: cumulative-influence rank fraction over I (unpruned).
    double sumI = 0.0;
    for (int i = 0; i < N; i++) ki[i].key = I[i], ki[i].idx = i;
    qsort(ki, n, sizeof *ki, cmp_keyidx);
    for (int r = 0; r < N; r++) sumI += ki[r].key;
    double cum = 0.0;
    for (int r = 0; r < N; r++) {
        cum += ki[r].key;
        GraphNode *nd = &g->nodes[ki[r].idx];
        nd->influence = sumI > 0.0 ? (float)(cum / sumI) : 1.0f;
        nd->influence_raw = (float)ki[r].key;
    }

    // Results into the Graph.
    free(g->node_keep);
    g->node_keep = keep;
    keep = NULL;
    g->n_kept_nodes = 0;
    for (int i = 0; i < N; i++) g->n_kept_nodes += g->node_keep[i];
    g->n_kept_edges = 0;
    for (size_t k = 0; k < nnz; k++) g->n_kept_edges += ek[k];
    if (g->adj) {
        uint8_t *dk = g->edge_keep ? g->edge_keep : malloc(NN ? NN : 1);
        if (!dk) {
            ct_error("prune: out of memory for the dense edge_keep (%zu bytes)", NN);
            goto done;
        }
        memset(dk, 0, NN);
        for (int t = 0; t < N; t++)
            for (uint64_t k = A.row[t]; k < A.row[t + 1]; k++) dk[(size_t)t * n + A.col[k]] = ek[k];
        g->edge_keep = dk;
    }
    g->node_threshold = (float)node_threshold;
    g->edge_threshold = (float)edge_threshold;
    rc = CT_OK;
done:
    free(buf), free(keep), free(has_in), free(has_out), free(mask), free(S), free(ki);
    return rc;
}
