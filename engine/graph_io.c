// graph_io.c — viewer JSON, graph-metadata.json, raw .ctg: writers and readers.  Formats in
// graph_io.h.
#include "engine/graph_io.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "engine/common.h"

_Static_assert(sizeof(CtgHeader) == 176, "CtgHeader layout is part of the .ctg format");
#define CTG_NODE_SIZE 36u
#define CTG_NO_STRING 0xFFFFFFFFu
#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))
#define ID_MAX 48   // "%d_%d_%d" of three int32 fits in 36

// ---- small helpers -----------------------------------------------------------------------------
// Shortest "%.Ng" (N <= 9) that reads back to exactly f.  Trying 6 first saves most of the
// formatting work for typical weights (which need 7-9 digits) without changing the result.
static void fmt_f32(char *buf, size_t n, float f) {
    int p = 6;
    snprintf(buf, n, "%.*g", p, (double)f);
    if (strtof(buf, NULL) == f) {
        for (p = 1; p < 6; p++) {
            snprintf(buf, n, "%.*g", p, (double)f);
            if (strtof(buf, NULL) == f) return;
        }
        snprintf(buf, n, "%.6g", (double)f);
        return;
    }
    for (p = 7; p <= 9; p++) {
        snprintf(buf, n, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f) return;
    }
}

// A float as a jansson real that jansson (precision 9) prints as the shortest decimal above.
static json_t *jfloat(float f) {
    char b[48];
    fmt_f32(b, sizeof b, f);
    return json_real(strtod(b, NULL));
}

// A double score: a real, or null for NaN (JSON has no NaN).
static json_t *jscore(double x) { return isfinite(x) ? json_real(x) : json_null(); }


// A JSON string of s with every invalid byte replaced by U+FFFD; NULL s -> "".
static json_t *jstr(const char *s) {
    if (!s) return json_string("");
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1), *q = o;
    if (!o) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int k = ct_utf8_len(p);
        if (k) {
            memcpy(q, p, (size_t)k), q += k, p += k;
        } else {
            memcpy(q, "\xEF\xBF\xBD", 3), q += 3, p++;
        }
    }
    *q = 0;
    json_t *j = json_string(o);
    free(o);
    return j;
}

static const char *feature_type_name(int kind) {
    switch (kind) {
    case NODE_FEATURE: return "cross layer transcoder";
    case NODE_ERROR: return "mlp reconstruction error";
    case NODE_TOKEN: return "embedding";
    default: return "logit";
    }
}

// The last path component without trailing slashes ("dir/clt/" -> "clt"), malloc'd.
static char *base_name(const char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && p[b - 1] != '/') b--;
    return strndup(p + b, n - b);
}

// json_object_set_new that remembers a failure (allocation) instead of checking each call.
static void jset(json_t *o, const char *k, json_t *v, int *bad) {
    if (!v || json_object_set_new(o, k, v) != 0) *bad = 1;
}

static void jappend(json_t *a, json_t *v, int *bad) {
    if (!v || json_array_append_new(a, v) != 0) *bad = 1;
}

// Nonzero entries of A, from whichever form is present.
static size_t edge_count(const Graph *g) {
    if (g->sp_row) return g->sp_nnz;
    size_t n = 0, NN = (size_t)g->n_nodes * (size_t)g->n_nodes;
    if (g->adj)
        for (size_t i = 0; i < NN; i++) n += g->adj[i] != 0.0f;
    return n;
}

// ---- JSON: metadata, nodes ---------------------------------------------------------------------
static json_t *metadata_json(const Graph *g, int flags) {
    int bad = 0;
    json_t *m = json_object(), *info = json_object(), *toks = json_array(), *ids = json_array();
    json_t *scores = json_object(), *sf = json_object(), *sp = json_object();
    if (!m || !info || !toks || !ids || !scores || !sf || !sp) bad = 1;
    char fp[17];
    jset(m, "slug", json_string(g->slug ? g->slug : "graph"), &bad);
    char *scan = g->scan ? strdup(g->scan) : g->clt_path ? base_name(g->clt_path) : strdup("ctrace");
    jset(m, "scan", jstr(scan), &bad);
    free(scan);
    jset(m, "transcoder_list", json_array(), &bad);
    for (int p = 0; p < g->T; p++) {
        char num[16];
        const char *s = g->token_strs && g->token_strs[p] ? g->token_strs[p] : NULL;
        if (!s && g->tokens) snprintf(num, sizeof num, "%d", g->tokens[p]), s = num;
        jappend(toks, jstr(s), &bad);
        if (g->tokens) jappend(ids, json_integer(g->tokens[p]), &bad);
    }
    jset(m, "prompt_tokens", toks, &bad);
    jset(m, "prompt", jstr(g->prompt), &bad);
    jset(m, "node_threshold", jfloat(g->node_threshold), &bad);
    jset(m, "schema_version", json_integer(1), &bad);

    jset(info, "generator", json_string("ctrace"), &bad);
    jset(info, "model", jstr(g->model_path), &bad);
    jset(info, "transcoder", jstr(g->clt_path), &bad);
    ct_fingerprint_hex(g->model_fp, fp);
    jset(info, "model_xxh3", json_string(fp), &bad);
    ct_fingerprint_hex(g->clt_fp, fp);
    jset(info, "transcoder_xxh3", json_string(fp), &bad);
    ct_fingerprint_hex(g->prompt_fp, fp);
    jset(info, "prompt_xxh3", json_string(fp), &bad);
    jset(info, "n_layers", json_integer(g->L), &bad);
    jset(info, "n_ctx", json_integer(g->T), &bad);
    jset(info, "d_model", json_integer(g->D), &bad);
    jset(info, "d_transcoder", json_integer(g->F), &bad);
    jset(info, "vocab_size", json_integer(g->V), &bad);
    jset(info, "prompt_token_ids", ids, &bad);
    jset(info, "n_nodes", json_integer(g->n_nodes), &bad);
    jset(info, "n_features", json_integer(g->n_features), &bad);
    jset(info, "n_errors", json_integer(g->n_errors), &bad);
    jset(info, "n_tokens", json_integer(g->n_tokens), &bad);
    jset(info, "n_logits", json_integer(g->n_logits), &bad);
    jset(info, "n_edges", json_integer((json_int_t)edge_count(g)), &bad);
    jset(info, "n_active_features", json_integer(g->n_active_total), &bad);
    jset(info, "max_feature_nodes", json_integer(g->max_feature_nodes), &bad);
    jset(info, "edge_threshold", jfloat(g->edge_threshold), &bad);
    jset(info, "n_kept_nodes", json_integer(g->n_kept_nodes), &bad);
    jset(info, "n_kept_edges", json_integer((json_int_t)g->n_kept_edges), &bad);
    jset(info, "full_graph", json_boolean(flags & GRAPH_JSON_FULL), &bad);
    jset(sf, "replacement", jscore(g->replacement_score), &bad);
    jset(sf, "completeness", jscore(g->completeness_score), &bad);
    jset(sp, "replacement", jscore(g->pruned_replacement_score), &bad);
    jset(sp, "completeness", jscore(g->pruned_completeness_score), &bad);
    jset(scores, "full", sf, &bad);
    jset(scores, "pruned", sp, &bad);
    jset(info, "scores", scores, &bad);
    jset(m, "info", info, &bad);
    if (bad) {
        json_decref(m);
        ct_error("graph JSON: out of memory building the metadata");
        return NULL;
    }
    return m;
}

static json_t *node_json(const Graph *g, int i, const char *id) {
    const GraphNode *nd = &g->nodes[i];
    int bad = 0;
    json_t *o = json_object();
    if (!o) return NULL;
    char buf[ID_MAX + 64], layer[16];
    int64_t feature = nd->kind == NODE_FEATURE ? graph_cantor(nd->layer, nd->feature)
                      : nd->kind == NODE_ERROR ? -1
                      : nd->kind == NODE_TOKEN ? nd->pos : nd->token;
    if (nd->kind == NODE_TOKEN) snprintf(layer, sizeof layer, "E");
    else snprintf(layer, sizeof layer, "%d", nd->kind == NODE_LOGIT ? nd->layer + 1 : nd->layer);
    jset(o, "node_id", json_string(id), &bad);
    jset(o, "feature", json_integer(feature), &bad);
    jset(o, "layer", json_string(layer), &bad);
    jset(o, "ctx_idx", json_integer(nd->pos), &bad);
    jset(o, "feature_type", json_string(feature_type_name(nd->kind)), &bad);
    switch (nd->kind) {
    case NODE_FEATURE: snprintf(buf, sizeof buf, "%d_%d-0", nd->layer, nd->feature); break;
    case NODE_ERROR: snprintf(buf, sizeof buf, "%d_-1-%d", nd->layer, nd->pos); break;
    case NODE_TOKEN: snprintf(buf, sizeof buf, "E_%d-%d", nd->token, nd->pos); break;
    default: snprintf(buf, sizeof buf, "L_%d-%d", nd->token, nd->pos); break;
    }
    jset(o, "jsNodeId", json_string(buf), &bad);
    json_t *clerp;
    if (nd->kind == NODE_FEATURE) {
        clerp = jstr(g->node_labels ? g->node_labels[i] : NULL);
    } else if (nd->kind == NODE_TOKEN) {
        clerp = jstr(g->token_strs && nd->pos < g->T ? g->token_strs[nd->pos] : NULL);
    } else if (nd->kind == NODE_LOGIT) {
        int k = i - g->n_features - g->n_errors - g->n_tokens;
        const char *tok = g->logit_strs ? g->logit_strs[k] : NULL;
        char num[16];
        if (!tok) snprintf(num, sizeof num, "%d", nd->token), tok = num;
        size_t n = strlen(tok) + 48;
        char *c = malloc(n);
        if (!c) {
            json_decref(o);
            return NULL;
        }
        snprintf(c, n, "Output \"%s\" (p=%.3f)", tok, (double)nd->prob);
        clerp = jstr(c);
        free(c);
    } else {
        clerp = json_string("");
    }
    jset(o, "clerp", clerp, &bad);
    jset(o, "influence", jfloat(nd->influence), &bad);
    if (nd->kind == NODE_FEATURE || nd->kind == NODE_LOGIT) jset(o, "activation", jfloat(nd->activation), &bad);
    else jset(o, "activation", json_null(), &bad);
    jset(o, "token_prob", jfloat(nd->kind == NODE_LOGIT ? nd->prob : 0.0f), &bad);
    jset(o, "is_target_logit", json_boolean(nd->kind == NODE_LOGIT && nd->is_target), &bad);
    jset(o, "run_idx", json_integer(0), &bad);
    jset(o, "reverse_ctx_idx", json_integer(0), &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

// Fields json_real cannot hold (NaN/inf) would silently become missing keys: refuse them.
static int check_finite_nodes(const Graph *g, const uint8_t *written) {
    for (int i = 0; i < g->n_nodes; i++) {
        if (!written[i]) continue;
        const GraphNode *nd = &g->nodes[i];
        if (!isfinite(nd->activation) || !isfinite(nd->prob) || !isfinite(nd->influence))
            return ct_error("graph JSON: node %d (%s): activation %g, prob %g, influence %g: "
                            "expected finite numbers", i, graph_kind_name(nd->kind),
                            (double)nd->activation, (double)nd->prob, (double)nd->influence);
    }
    return CT_OK;
}

int graph_write_json(Graph *g, const char *path, int flags) {
    int full = flags & GRAPH_JSON_FULL;
    if (graph_check(g) != CT_OK) return ct_error_ctx("writing %s", path);
    if (!full && (!g->node_keep || (!g->sp_keep && !g->edge_keep)))
        return ct_error("writing %s: the graph is not pruned (no node/edge keep flags); prune it "
                        "first or write the full graph", path);
    if (graph_build_sparse(g) != CT_OK) return ct_error_ctx("writing %s", path);
    if (!full && !g->sp_keep) return ct_error("writing %s: no per-edge keep flags", path);
    int N = g->n_nodes, rc = CT_ERR;
    uint8_t *written = malloc((size_t)N + 1), *ambig = calloc((size_t)N + 1, 1);
    char(*ids)[ID_MAX] = malloc(((size_t)N + 1) * ID_MAX);
    int *err_at = NULL;   // (L*T) error node index at (l, p), or -1
    AtomicFile af = {0};
    json_t *meta = NULL;
    if (!written || !ambig || !ids) {
        ct_error("writing %s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < N; i++) {
        written[i] = full || g->node_keep[i];
        graph_node_id(g, i, ids[i], ID_MAX);
    }
    if (check_finite_nodes(g, written) != CT_OK) goto done;
    // Id collisions: a written layer-0 feature f at p and a written error at (l = f, p).
    if (g->L > 0 && g->T > 0) {
        size_t LT = (size_t)g->L * (size_t)g->T;
        if (!(err_at = malloc(LT * sizeof *err_at))) {
            ct_error("writing %s: out of memory", path);
            goto done;
        }
        for (size_t k = 0; k < LT; k++) err_at[k] = -1;
        for (int i = g->n_features; i < g->n_features + g->n_errors; i++)
            if (written[i]) err_at[(size_t)g->nodes[i].layer * (size_t)g->T + (size_t)g->nodes[i].pos] = i;
        for (int i = 0; i < g->n_features; i++) {
            const GraphNode *nd = &g->nodes[i];
            if (!written[i] || nd->layer != 0 || nd->feature >= g->L) continue;
            int e = err_at[(size_t)nd->feature * (size_t)g->T + (size_t)nd->pos];
            if (e >= 0) ambig[i] = ambig[e] = 1;
        }
    }
    if (!(meta = metadata_json(g, flags))) goto done;
    if (ct_atomic_open(&af, path) != CT_OK) goto done;
    FILE *f = af.f;
    fputs("{\"metadata\":", f);
    if (json_dumpf(meta, f, JSON_FLAGS) != 0) goto io_fail;
    fputs(",\n\"qParams\":{\"pinnedIds\":[],\"supernodes\":[],\"linkType\":\"both\","
          "\"clickedId\":\"\",\"sg_pos\":\"\"},\n\"nodes\":[\n", f);
    int first = 1;
    for (int i = 0; i < N; i++) {
        if (!written[i]) continue;
        json_t *o = node_json(g, i, ids[i]);
        if (!o) {
            ct_error("writing %s: out of memory building node %d", path, i);
            goto fail;
        }
        if (!first) fputs(",\n", f);
        first = 0;
        int r = json_dumpf(o, f, JSON_FLAGS);
        json_decref(o);
        if (r != 0) goto io_fail;
    }
    fputs("\n],\n\"links\":[\n", f);
    first = 1;
    for (int t = 0; t < N; t++) {
        if (!written[t]) continue;
        for (uint64_t k = g->sp_row[t]; k < g->sp_row[t + 1]; k++) {
            int s = (int)g->sp_col[k];
            if (!written[s] || (!full && !g->sp_keep[k])) continue;
            char wb[48];
            fmt_f32(wb, sizeof wb, g->sp_val[k]);
            // jansson prints a real without '.'/'e' with ".0"; links follow the same rule.
            const char *dot = strpbrk(wb, ".eEn") ? "" : ".0";
            if (!first) fputs(",\n", f);
            first = 0;
            fprintf(f, "{\"source\":\"%s\",\"target\":\"%s\",\"weight\":%s%s", ids[s], ids[t], wb, dot);
            if (ambig[s]) fprintf(f, ",\"source_type\":\"%s\"", feature_type_name(g->nodes[s].kind));
            if (ambig[t]) fprintf(f, ",\"target_type\":\"%s\"", feature_type_name(g->nodes[t].kind));
            fputc('}', f);
        }
    }
    fputs("\n]}\n", f);
    if (ct_atomic_commit(&af) != CT_OK) goto done;
    rc = CT_OK;
    goto done;
io_fail:
    ct_error("writing %s: write failed: %s", path, strerror(errno));
fail:
    ct_atomic_abort(&af);
done:
    json_decref(meta);
    free(written), free(ambig), free(ids), free(err_at);
    return rc;
}

// ---- graph-metadata.json -----------------------------------------------------------------------
int graph_update_index(const char *dir, const Graph *g, int flags) {
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    if (!path) return ct_error("out of memory");
    snprintf(path, n, "%s/graph-metadata.json", dir);
    int rc = CT_ERR;
    json_t *root = NULL, *meta = NULL;
    char *text = NULL;
    FILE *probe = fopen(path, "rb");
    if (probe) {
        fclose(probe);
        json_error_t je;
        root = json_load_file(path, 0, &je);
        if (!root) {
            ct_error("%s: not valid JSON (line %d, column %d: %s); fix or remove it", path, je.line,
                     je.column, je.text);
            goto done;
        }
        if (!json_is_object(root) || !json_is_array(json_object_get(root, "graphs"))) {
            ct_error("%s: expected an object {\"graphs\": [...]}, got something else; fix or "
                     "remove it", path);
            goto done;
        }
    } else if (errno != ENOENT) {
        ct_error("cannot read %s: %s", path, strerror(errno));
        goto done;
    } else {
        root = json_object();
        if (!root || json_object_set_new(root, "graphs", json_array()) != 0) {
            ct_error("out of memory");
            goto done;
        }
    }
    if (!(meta = metadata_json(g, flags))) goto done;
    json_t *graphs = json_object_get(root, "graphs");
    const char *slug = json_string_value(json_object_get(meta, "slug"));
    size_t i, m = json_array_size(graphs);
    for (i = 0; i < m; i++) {
        const char *s = json_string_value(json_object_get(json_array_get(graphs, i), "slug"));
        if (s && !strcmp(s, slug)) break;
    }
    // Replace in place (the list keeps its order), or append a new slug.
    int r = i < m ? json_array_set(graphs, i, meta) : json_array_append(graphs, meta);
    if (r != 0 || !(text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(9)))) {
        ct_error("%s: out of memory", path);
        goto done;
    }
    size_t len = strlen(text);
    text[len] = '\n';   // json_dumps' NUL becomes the final newline (written with its length)
    if (ct_write_file_atomic(path, text, len + 1) != CT_OK) goto done;
    rc = CT_OK;
done:
    json_decref(root), json_decref(meta);
    free(text), free(path);
    return rc;
}

// ---- JSON reader -------------------------------------------------------------------------------
// String -> node list map for link endpoints (open addressing; an id can name two nodes).
typedef struct IdMap {
    size_t cap;
    int32_t *slot;    // node index or -1
    char **key;       // borrowed from the node ids array
} IdMap;

static uint64_t hash_str(const char *s) { return ct_hash64(s, strlen(s)); }

static int idmap_init(IdMap *m, size_t n) {
    m->cap = 16;
    while (m->cap < 2 * n + 16) m->cap *= 2;
    m->slot = malloc(m->cap * sizeof *m->slot);
    m->key = malloc(m->cap * sizeof *m->key);
    if (!m->slot || !m->key) return ct_error("out of memory");
    for (size_t i = 0; i < m->cap; i++) m->slot[i] = -1;
    return CT_OK;
}

static void idmap_put(IdMap *m, char *key, int32_t v) {
    size_t h = (size_t)hash_str(key) & (m->cap - 1);
    while (m->slot[h] >= 0) h = (h + 1) & (m->cap - 1);
    m->slot[h] = v, m->key[h] = key;
}

// Up to two matches (the error/feature collision) into out; returns the count.
static int idmap_get(const IdMap *m, const char *key, int32_t out[2]) {
    int n = 0;
    size_t h = (size_t)hash_str(key) & (m->cap - 1);
    while (m->slot[h] >= 0) {
        if (!strcmp(m->key[h], key) && n < 2) out[n++] = m->slot[h];
        h = (h + 1) & (m->cap - 1);
    }
    return n;
}

typedef struct Trip {
    int32_t t, s;
    float w;
} Trip;

static int cmp_trip(const void *a, const void *b) {
    const Trip *x = a, *y = b;
    if (x->t != y->t) return (x->t > y->t) - (x->t < y->t);
    return (x->s > y->s) - (x->s < y->s);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

// Number field (integer or real); null or missing -> dflt when allowed.
static int jnum(const char *path, const char *where, json_t *o, const char *k, double dflt,
                int required, double *out) {
    json_t *v = json_object_get(o, k);
    if (json_is_number(v)) return *out = json_number_value(v), CT_OK;
    if ((!v && !required) || json_is_null(v)) return *out = dflt, CT_OK;
    return ct_error("%s: %s field \"%s\": expected a number, got %s", path, where, k,
                    v ? "another type" : "nothing");
}

static int parse_u64_hex(const char *s, uint64_t *out) {
    if (!s || strlen(s) != 16) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

int graph_read_json(Graph *g, const char *path) {
    memset(g, 0, sizeof *g);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return ct_error("%s: not valid JSON (line %d, column %d: %s)", path, je.line, je.column,
                        je.text);
    int rc = CT_ERR;
    int32_t *order = NULL, *map = NULL;
    char(*ids)[ID_MAX] = NULL;
    Trip *trip = NULL;
    IdMap im = {0};
    json_t *meta = json_object_get(root, "metadata"), *nodes = json_object_get(root, "nodes");
    json_t *links = json_object_get(root, "links");
    if (!json_is_object(meta) || !json_is_array(nodes) || !json_is_array(links)) {
        ct_error("%s: expected an object with \"metadata\" (object), \"nodes\" and \"links\" "
                 "(arrays); is this a graph JSON?", path);
        goto done;
    }
    size_t nn = json_array_size(nodes), nl = json_array_size(links);
    if (nn > INT32_MAX) {
        ct_error("%s: %zu nodes, more than supported", path, nn);
        goto done;
    }
    // Pass 1: each node's kind and fields, in file order.
    GraphNode *tmp = calloc(nn + 1, sizeof *tmp);
    char **labels = calloc(nn + 1, sizeof *labels);
    ids = malloc((nn + 1) * ID_MAX);
    order = malloc((nn + 1) * sizeof *order);
    map = malloc((nn + 1) * sizeof *map);
    if (!tmp || !labels || !ids || !order || !map) {
        free(tmp), free(labels);
        ct_error("%s: out of memory", path);
        goto done;
    }
    int counts[4] = {0, 0, 0, 0};
    int maxpos = -1, maxlayer = -1, logit_layer = -1;
    for (size_t i = 0; i < nn; i++) {
        json_t *o = json_array_get(nodes, i);
        char where[64];
        snprintf(where, sizeof where, "nodes[%zu]", i);
        const char *id = json_string_value(json_object_get(o, "node_id"));
        const char *ft = json_string_value(json_object_get(o, "feature_type"));
        if (!json_is_object(o) || !id || !ft) {
            ct_error("%s: %s: expected an object with string \"node_id\" and \"feature_type\"",
                     path, where);
            goto fail1;
        }
        if (strlen(id) >= ID_MAX) {
            ct_error("%s: %s: node_id \"%.60s...\" is too long", path, where, id);
            goto fail1;
        }
        strcpy(ids[i], id);
        GraphNode *nd = &tmp[i];
        int a, b, c, used = 0;
        nd->feature = -1, nd->token = -1;
        if (!strcmp(ft, "cross layer transcoder")) {
            nd->kind = NODE_FEATURE;
            if (sscanf(id, "%d_%d_%d%n", &a, &b, &c, &used) != 3 || id[used])
                goto bad_id;
            nd->layer = a, nd->feature = b, nd->pos = c;
        } else if (!strcmp(ft, "mlp reconstruction error")) {
            nd->kind = NODE_ERROR;
            if (sscanf(id, "0_%d_%d%n", &b, &c, &used) != 2 || id[used]) goto bad_id;
            nd->layer = b, nd->pos = c;
        } else if (!strcmp(ft, "embedding")) {
            nd->kind = NODE_TOKEN;
            if (sscanf(id, "E_%d_%d%n", &b, &c, &used) != 2 || id[used]) goto bad_id;
            nd->layer = -1, nd->token = b, nd->pos = c;
        } else if (!strcmp(ft, "logit")) {
            nd->kind = NODE_LOGIT;
            if (sscanf(id, "%d_%d_%d%n", &a, &b, &c, &used) != 3 || id[used]) goto bad_id;
            nd->layer = a - 1, nd->token = b, nd->pos = c;
            if (logit_layer >= 0 && logit_layer != a - 1) {
                ct_error("%s: %s: logit layer %d differs from an earlier logit's %d", path, where,
                         a, logit_layer + 1);
                goto fail1;
            }
            logit_layer = a - 1;
        } else {
            ct_error("%s: %s: feature_type expected \"cross layer transcoder\", \"mlp "
                     "reconstruction error\", \"embedding\" or \"logit\", got \"%s\"", path, where, ft);
            goto fail1;
        }
        if (nd->pos < 0 || nd->layer < -1 || nd->feature < -1 || (nd->kind >= NODE_TOKEN && nd->token < 0))
            goto bad_id;
        json_t *ctx = json_object_get(o, "ctx_idx");
        if (json_is_integer(ctx) && json_integer_value(ctx) != nd->pos) {
            ct_error("%s: %s: ctx_idx %lld disagrees with node_id \"%s\"", path, where,
                     (long long)json_integer_value(ctx), id);
            goto fail1;
        }
        double v;
        if (jnum(path, where, o, "influence", 0, 0, &v) != CT_OK) goto fail1;
        nd->influence = (float)v;
        if (jnum(path, where, o, "activation", 0, 0, &v) != CT_OK) goto fail1;
        nd->activation = (float)v;
        if (jnum(path, where, o, "token_prob", 0, 0, &v) != CT_OK) goto fail1;
        nd->prob = (float)v;
        nd->is_target = json_is_true(json_object_get(o, "is_target_logit"));
        const char *clerp = json_string_value(json_object_get(o, "clerp"));
        if (clerp && *clerp && (nd->kind == NODE_FEATURE || nd->kind == NODE_LOGIT))
            labels[i] = strdup(clerp);
        counts[nd->kind]++;
        if (nd->pos > maxpos) maxpos = nd->pos;
        if ((nd->kind == NODE_FEATURE || nd->kind == NODE_ERROR) && nd->layer > maxlayer)
            maxlayer = nd->layer;
        continue;
    bad_id:
        ct_error("%s: %s: node_id \"%s\" does not follow the %s form", path, where, id,
                 nd->kind == NODE_FEATURE ? "{l}_{f}_{p}" : nd->kind == NODE_ERROR ? "0_{l}_{p}"
                 : nd->kind == NODE_TOKEN ? "E_{tok}_{p}" : "{L+1}_{v}_{p}");
        goto fail1;
    }
    // Block order, file order inside each block.
    {
        int start[4] = {0, counts[0], counts[0] + counts[1], counts[0] + counts[1] + counts[2]};
        for (size_t i = 0; i < nn; i++) {
            int pos = start[tmp[i].kind]++;
            order[pos] = (int32_t)i;
            map[i] = pos;
        }
    }
    // Links -> triplets in graph indices.
    if (!(trip = malloc((nl + 1) * sizeof *trip)) || idmap_init(&im, nn) != CT_OK) {
        ct_error("%s: out of memory", path);
        goto fail1;
    }
    for (size_t i = 0; i < nn; i++) idmap_put(&im, ids[i], (int32_t)i);
    for (size_t j = 0; j < nl; j++) {
        json_t *o = json_array_get(links, j);
        int32_t ep[2];
        for (int side = 0; side < 2; side++) {
            const char *key = side ? "target" : "source";
            const char *id = json_string_value(json_object_get(o, key));
            if (!id) {
                ct_error("%s: links[%zu]: expected a string \"%s\"", path, j, key);
                goto fail1;
            }
            int32_t m[2];
            int nm = idmap_get(&im, id, m);
            if (nm == 0) {
                ct_error("%s: links[%zu]: %s \"%s\" is not a node id", path, j, key, id);
                goto fail1;
            }
            int32_t pick = nm > 1 && m[1] < m[0] ? m[1] : m[0];   // first in file order
            if (nm > 1) {
                // The error/layer-0-feature collision: the writer names the endpoint's type;
                // without it, a target is the feature (errors have no incoming edges) and a
                // source the node listed first.
                const char *ty = json_string_value(json_object_get(o, side ? "target_type" : "source_type"));
                int want = ty ? (!strcmp(ty, "mlp reconstruction error") ? NODE_ERROR : NODE_FEATURE)
                              : side ? NODE_FEATURE : -1;
                if (want >= 0) pick = tmp[m[0]].kind == want ? m[0] : m[1];
            }
            ep[side] = map[pick];
        }
        double w;
        if (!json_is_object(o) || jnum(path, "links", o, "weight", 0, 1, &w) != CT_OK) goto fail1;
        trip[j].s = ep[0], trip[j].t = ep[1], trip[j].w = (float)w;
    }
    qsort(trip, nl, sizeof *trip, cmp_trip);
    for (size_t j = 1; j < nl; j++)
        if (trip[j].t == trip[j - 1].t && trip[j].s == trip[j - 1].s) {
            ct_error("%s: two links from \"%s\" to \"%s\"", path, ids[order[trip[j].s]],
                     ids[order[trip[j].t]]);
            goto fail1;
        }
    // Build the Graph.
    if (graph_alloc_sparse(g, counts[0], counts[1], counts[2], counts[3], nl) != CT_OK) goto fail1;
    for (int p = 0; p < (int)nn; p++) {
        g->nodes[p] = tmp[order[p]];
    }
    {
        size_t k = 0;
        for (int t = 0; t < g->n_nodes; t++) {
            g->sp_row[t] = k;
            while (k < nl && trip[k].t == t) g->sp_col[k] = (uint32_t)trip[k].s, g->sp_val[k] = trip[k].w, k++;
        }
        g->sp_row[g->n_nodes] = k;
    }
    g->sp_keep = malloc(nl + 1);
    g->node_keep = malloc((size_t)g->n_nodes + 1);
    g->node_labels = calloc((size_t)g->n_nodes + 1, sizeof(char *));
    g->logit_strs = calloc((size_t)g->n_logits + 1, sizeof(char *));
    if (!g->sp_keep || !g->node_keep || !g->node_labels || !g->logit_strs) {
        ct_error("%s: out of memory", path);
        goto fail1;
    }
    memset(g->sp_keep, 1, nl + 1);
    memset(g->node_keep, 1, (size_t)g->n_nodes + 1);
    g->n_kept_nodes = g->n_nodes;
    g->n_kept_edges = nl;
    if (json_is_true(json_object_get(json_object_get(meta, "info"), "full_graph"))) {
        // A full-graph file says nothing about pruning: no keep flags.
        free(g->sp_keep), free(g->node_keep);
        g->sp_keep = NULL, g->node_keep = NULL;
        g->n_kept_nodes = 0, g->n_kept_edges = 0;
    }
    for (int p = 0; p < g->n_nodes; p++) {
        char *lab = labels[order[p]];
        labels[order[p]] = NULL;
        if (g->nodes[p].kind == NODE_LOGIT && lab) {
            // `Output "tok" (p=0.123)` -> tok
            int k = p - g->n_features - g->n_errors - g->n_tokens;
            char *q = strstr(lab, "Output \""), *e = strrchr(lab, '"');
            if (q && e && e >= q + 8) g->logit_strs[k] = strndup(q + 8, (size_t)(e - q - 8));
            free(lab);
        } else {
            g->node_labels[p] = lab;
        }
    }
    // Metadata.
    {
        json_t *info = json_object_get(meta, "info"), *pt = json_object_get(meta, "prompt_tokens");
        double v;
        g->slug = dup_or_null(json_string_value(json_object_get(meta, "slug")));
        g->scan = dup_or_null(json_string_value(json_object_get(meta, "scan")));
        g->prompt = strdup(json_string_value(json_object_get(meta, "prompt")) ?
                           json_string_value(json_object_get(meta, "prompt")) : "");
        if (jnum(path, "metadata", meta, "node_threshold", 0.8, 0, &v) != CT_OK) goto fail1;
        g->node_threshold = (float)v;
        g->edge_threshold = 0.98f;
        g->T = json_is_array(pt) && json_array_size(pt) > 0 ? (int)json_array_size(pt) : maxpos + 1;
        g->L = logit_layer >= 0 ? logit_layer : maxlayer + 1;
        if (json_is_array(pt) && json_array_size(pt) > 0) {
            g->token_strs = calloc((size_t)g->T, sizeof(char *));
            if (!g->token_strs) goto oom;
            for (int p = 0; p < g->T; p++)
                g->token_strs[p] = dup_or_null(json_string_value(json_array_get(pt, (size_t)p)));
        }
        g->replacement_score = g->completeness_score = NAN;
        g->pruned_replacement_score = g->pruned_completeness_score = NAN;
        if (json_is_object(info)) {
            g->model_path = dup_or_null(json_string_value(json_object_get(info, "model")));
            g->clt_path = dup_or_null(json_string_value(json_object_get(info, "transcoder")));
            parse_u64_hex(json_string_value(json_object_get(info, "model_xxh3")), &g->model_fp);
            parse_u64_hex(json_string_value(json_object_get(info, "transcoder_xxh3")), &g->clt_fp);
            parse_u64_hex(json_string_value(json_object_get(info, "prompt_xxh3")), &g->prompt_fp);
            json_t *x;
            if (json_is_integer(x = json_object_get(info, "d_model"))) g->D = (int)json_integer_value(x);
            if (json_is_integer(x = json_object_get(info, "d_transcoder"))) g->F = (int)json_integer_value(x);
            if (json_is_integer(x = json_object_get(info, "vocab_size"))) g->V = (int)json_integer_value(x);
            if (json_is_integer(x = json_object_get(info, "n_active_features"))) g->n_active_total = (int)json_integer_value(x);
            if (json_is_integer(x = json_object_get(info, "max_feature_nodes"))) g->max_feature_nodes = (int)json_integer_value(x);
            if (jnum(path, "metadata.info", info, "edge_threshold", 0.98, 0, &v) != CT_OK) goto fail1;
            g->edge_threshold = (float)v;
            json_t *ids_j = json_object_get(info, "prompt_token_ids");
            if (json_is_array(ids_j) && (int)json_array_size(ids_j) == g->T && g->T > 0) {
                if (!(g->tokens = malloc(sizeof(int) * (size_t)g->T))) goto oom;
                for (int p = 0; p < g->T; p++) g->tokens[p] = (int)json_integer_value(json_array_get(ids_j, (size_t)p));
            }
            json_t *sc = json_object_get(info, "scores");
            json_t *sf = json_object_get(sc, "full"), *sp = json_object_get(sc, "pruned");
            if (json_is_number(x = json_object_get(sf, "replacement"))) g->replacement_score = json_number_value(x);
            if (json_is_number(x = json_object_get(sf, "completeness"))) g->completeness_score = json_number_value(x);
            if (json_is_number(x = json_object_get(sp, "replacement"))) g->pruned_replacement_score = json_number_value(x);
            if (json_is_number(x = json_object_get(sp, "completeness"))) g->pruned_completeness_score = json_number_value(x);
        }
    }
    if (graph_check(g) != CT_OK) {
        ct_error_ctx("%s", path);
        goto fail1;
    }
    rc = CT_OK;
    goto done1;
oom:
    ct_error("%s: out of memory", path);
fail1:
    graph_free(g);
done1:
    for (size_t i = 0; i < nn; i++) free(labels[i]);
    free(labels), free(tmp);
done:
    free(ids), free(order), free(map), free(trip), free(im.slot), free(im.key);
    json_decref(root);
    return rc;
}

// ---- .ctg writer -------------------------------------------------------------------------------
typedef struct Out {
    FILE *f;
    XXH3_state_t *h;
    uint64_t n;
} Out;

static void out_put(Out *o, const void *p, size_t n) {
    if (!n) return;
    fwrite(p, 1, n, o->f);
    XXH3_64bits_update(o->h, p, n);
    o->n += n;
}

static uint64_t str_bytes(const char *s) { return 4 + (s ? strlen(s) : 0); }

static void out_str(Out *o, const char *s) {
    uint32_t n = s ? (uint32_t)strlen(s) : CTG_NO_STRING;
    out_put(o, &n, 4);
    if (s) out_put(o, s, n);
}

// Strings in file order; a NULL array stands for count NULL strings.
#define FOR_STRINGS(g, S)                                                                      \
    do {                                                                                       \
        S((g)->prompt);                                                                        \
        S((g)->slug);                                                                          \
        S((g)->scan);                                                                          \
        S((g)->model_path);                                                                    \
        S((g)->clt_path);                                                                      \
        for (int i_ = 0; i_ < (g)->T; i_++) S((g)->token_strs ? (g)->token_strs[i_] : NULL);   \
        for (int i_ = 0; i_ < (g)->n_logits; i_++) S((g)->logit_strs ? (g)->logit_strs[i_] : NULL); \
        for (int i_ = 0; i_ < (g)->n_nodes; i_++) S((g)->node_labels ? (g)->node_labels[i_] : NULL); \
    } while (0)

int graph_write_ctg(Graph *g, const char *path) {
    if (graph_check(g) != CT_OK || graph_build_sparse(g) != CT_OK) return ct_error_ctx("writing %s", path);
    if (g->T != g->n_tokens)
        return ct_error("writing %s: T (%d) expected to equal the number of token nodes (%d)", path,
                        g->T, g->n_tokens);
    int pruned = g->node_keep && g->sp_keep;
    uint64_t strings = 0;
#define ADD_LEN(s) strings += str_bytes(s)
    FOR_STRINGS(g, ADD_LEN);
#undef ADD_LEN
    size_t N = (size_t)g->n_nodes, nnz = g->sp_nnz;
    CtgHeader h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CTG_MAGIC, 8);
    h.version = CTG_VERSION;
    h.header_size = sizeof h;
    h.file_size = sizeof h + N * CTG_NODE_SIZE + (uint64_t)g->T * 4 + strings + (N + 1) * 8 +
                  (uint64_t)nnz * 9 + 8;
    h.model_fp = g->model_fp, h.clt_fp = g->clt_fp, h.prompt_fp = g->prompt_fp;
    h.scores[0] = g->replacement_score, h.scores[1] = g->completeness_score;
    h.scores[2] = g->pruned_replacement_score, h.scores[3] = g->pruned_completeness_score;
    h.nnz = nnz;
    h.n_kept_edges = pruned ? g->n_kept_edges : 0;
    h.strings_size = strings;
    h.n_nodes = g->n_nodes, h.n_features = g->n_features, h.n_errors = g->n_errors;
    h.n_tokens = g->n_tokens, h.n_logits = g->n_logits;
    h.L = g->L, h.T = g->T, h.D = g->D, h.F = g->F, h.V = g->V;
    h.n_active_total = g->n_active_total, h.max_feature_nodes = g->max_feature_nodes;
    h.n_kept_nodes = pruned ? g->n_kept_nodes : 0;
    h.flags = pruned ? CTG_PRUNED : 0;
    h.node_threshold = g->node_threshold, h.edge_threshold = g->edge_threshold;
    h.node_size = CTG_NODE_SIZE;

    AtomicFile af;
    XXH3_state_t *hs = XXH3_createState();
    if (!hs) return ct_error("writing %s: out of memory", path);
    if (ct_atomic_open(&af, path) != CT_OK) {
        XXH3_freeState(hs);
        return CT_ERR;
    }
    XXH3_64bits_reset(hs);
    Out o = {af.f, hs, 0};
    out_put(&o, &h, sizeof h);
    for (size_t i = 0; i < N; i++) {
        const GraphNode *nd = &g->nodes[i];
        uint8_t rec[CTG_NODE_SIZE] = {0};
        rec[0] = nd->kind, rec[1] = nd->is_target, rec[2] = pruned ? g->node_keep[i] : 0;
        int32_t iv[4] = {nd->layer, nd->pos, nd->feature, nd->token};
        float fv[4] = {nd->activation, nd->prob, nd->influence, nd->influence_raw};
        memcpy(rec + 4, iv, 16);
        memcpy(rec + 20, fv, 16);
        out_put(&o, rec, sizeof rec);
    }
    for (int p = 0; p < g->T; p++) {
        int32_t t = g->tokens ? g->tokens[p] : -1;
        out_put(&o, &t, 4);
    }
#define PUT_STR(s) out_str(&o, s)
    FOR_STRINGS(g, PUT_STR);
#undef PUT_STR
    out_put(&o, g->sp_row, (N + 1) * 8);
    out_put(&o, g->sp_col, nnz * 4);
    out_put(&o, g->sp_val, nnz * 4);
    if (pruned) {
        out_put(&o, g->sp_keep, nnz);
    } else {
        uint8_t z[4096] = {0};
        for (size_t k = 0; k < nnz; k += sizeof z) out_put(&o, z, nnz - k < sizeof z ? nnz - k : sizeof z);
    }
    uint64_t sum = XXH3_64bits_digest(hs);
    fwrite(&sum, 1, 8, af.f);
    o.n += 8;
    XXH3_freeState(hs);
    if (o.n != h.file_size) {
        ct_atomic_abort(&af);
        return ct_error("writing %s: internal size mismatch (%" PRIu64 " bytes written, header "
                        "says %" PRIu64 ")", path, o.n, h.file_size);
    }
    return ct_atomic_commit(&af);
}

// ---- .ctg reader -------------------------------------------------------------------------------
typedef struct In {
    const uint8_t *p, *end;
    const char *path;
} In;

static int in_str(In *in, char **out, const char *what, int idx) {
    uint32_t n;
    if (in->end - in->p < 4)
        return ct_error("%s: strings section: %s[%d] runs past the section end", in->path, what, idx);
    memcpy(&n, in->p, 4);
    in->p += 4;
    if (n == CTG_NO_STRING) return *out = NULL, CT_OK;
    if ((uint64_t)(in->end - in->p) < n)
        return ct_error("%s: strings section: %s[%d] has length %u, only %td bytes left", in->path,
                        what, idx, n, in->end - in->p);
    if (memchr(in->p, 0, n))
        return ct_error("%s: strings section: %s[%d] contains a NUL byte", in->path, what, idx);
    if (!(*out = strndup((const char *)in->p, n))) return ct_error("%s: out of memory", in->path);
    in->p += n;
    return CT_OK;
}

static int read_strs(In *in, char ***arr, int n, const char *what) {
    *arr = calloc((size_t)n + 1, sizeof(char *));
    if (!*arr) return ct_error("%s: out of memory", in->path);
    for (int i = 0; i < n; i++)
        if (in_str(in, &(*arr)[i], what, i) != CT_OK) return CT_ERR;
    return CT_OK;
}

int graph_read_ctg(Graph *g, const char *path) {
    memset(g, 0, sizeof *g);
    MappedFile mf;
    if (ct_map_file(&mf, path) != CT_OK) return CT_ERR;
    int rc = CT_ERR;
    CtgHeader h;
    const uint8_t *d = mf.data;
    if (mf.size < 12 || memcmp(d, CTG_MAGIC, 8) != 0) {
        char got[40] = "";
        for (size_t i = 0; i < 8 && i < mf.size; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%02x", d[i]);
        ct_error("%s: bad magic: expected \"CTGRAPH\\0\" (43544752415048 00), got %s%s; is this a "
                 "ctrace raw graph (.ctg, from ctrace attribute --raw)?", path, got[0] ? got : "an empty file",
                 mf.size < 8 ? " (file shorter than 8 bytes)" : "");
        goto done;
    }
    uint32_t version;
    memcpy(&version, d + 8, 4);
    if (version != CTG_VERSION) {
        ct_error("%s: unsupported .ctg version %u (this ctrace reads version %u); regenerate the "
                 "graph with this ctrace (ctrace attribute ... --raw)", path, version, CTG_VERSION);
        goto done;
    }
    if (mf.size < sizeof h) {
        ct_error("%s: truncated: %zu bytes, shorter than the %zu-byte header", path, mf.size, sizeof h);
        goto done;
    }
    memcpy(&h, d, sizeof h);
    if (h.header_size != sizeof h || h.node_size != CTG_NODE_SIZE)
        goto bad_hdr;
    if (h.n_nodes < 0 || h.n_features < 0 || h.n_errors < 0 || h.n_tokens < 0 || h.n_logits < 0 ||
        h.T != h.n_tokens || (long long)h.n_features + h.n_errors + h.n_tokens + h.n_logits != h.n_nodes) {
        ct_error("%s: header node counts: n_nodes %d expected = features %d + errors %d + tokens "
                 "%d + logits %d (all >= 0), tokens = T (%d)", path, h.n_nodes, h.n_features,
                 h.n_errors, h.n_tokens, h.n_logits, h.T);
        goto done;
    }
    uint64_t N = (uint64_t)h.n_nodes;
    // Sizes in u64: every term is bounded (N < 2^31, nnz checked against N^2 < 2^62) so the
    // sum cannot wrap before it is compared with the real file length.
    if (h.nnz > N * N) {
        ct_error("%s: header nnz %" PRIu64 " expected <= n_nodes^2 = %" PRIu64, path, h.nnz, N * N);
        goto done;
    }
    if (h.strings_size > mf.size || h.nnz > mf.size) {
        ct_error("%s: truncated or corrupt: header says %" PRIu64 " string bytes and %" PRIu64
                 " edges, the file has %zu bytes", path, h.strings_size, h.nnz, mf.size);
        goto done;
    }
    uint64_t want = sizeof h + N * CTG_NODE_SIZE + (uint64_t)h.T * 4 + h.strings_size +
                    (N + 1) * 8 + h.nnz * 9 + 8;
    if (h.file_size != want || mf.size != want) {
        ct_error("%s: %s: expected %" PRIu64 " bytes (from the header's counts), header says %" PRIu64
                 ", file has %zu", path, mf.size < want ? "truncated" : "size mismatch", want,
                 h.file_size, mf.size);
        goto done;
    }
    uint64_t sum;
    memcpy(&sum, d + want - 8, 8);
    if (ct_hash64(d, want - 8) != sum) {
        ct_error("%s: checksum mismatch (xxh3 of the contents differs from the stored one): the "
                 "file is corrupt", path);
        goto done;
    }
    if (graph_alloc_sparse(g, h.n_features, h.n_errors, h.n_tokens, h.n_logits, h.nnz) != CT_OK)
        goto done;
    g->L = h.L, g->T = h.T, g->D = h.D, g->F = h.F, g->V = h.V;
    g->model_fp = h.model_fp, g->clt_fp = h.clt_fp, g->prompt_fp = h.prompt_fp;
    g->replacement_score = h.scores[0], g->completeness_score = h.scores[1];
    g->pruned_replacement_score = h.scores[2], g->pruned_completeness_score = h.scores[3];
    g->n_active_total = h.n_active_total, g->max_feature_nodes = h.max_feature_nodes;
    g->node_threshold = h.node_threshold, g->edge_threshold = h.edge_threshold;
    int pruned = (h.flags & CTG_PRUNED) != 0;
    if (h.flags & ~CTG_PRUNED) {
        ct_error("%s: header flags 0x%x: expected only bit 0 (pruned)", path, h.flags);
        goto fail;
    }
    const uint8_t *p = d + sizeof h;
    if (pruned && !(g->node_keep = malloc(N + 1))) goto oom;
    for (uint64_t i = 0; i < N; i++, p += CTG_NODE_SIZE) {
        GraphNode *nd = &g->nodes[i];
        int32_t iv[4];
        float fv[4];
        memcpy(iv, p + 4, 16);
        memcpy(fv, p + 20, 16);
        if (p[0] > NODE_LOGIT || p[1] > 1 || p[2] > 1 || p[3] != 0) {
            ct_error("%s: node %" PRIu64 ": kind/is_target/keep/pad bytes %u/%u/%u/%u: expected "
                     "kind <= 3, flags 0 or 1, pad 0", path, i, p[0], p[1], p[2], p[3]);
            goto fail;
        }
        nd->kind = p[0], nd->is_target = p[1];
        if (pruned) g->node_keep[i] = p[2];
        nd->layer = iv[0], nd->pos = iv[1], nd->feature = iv[2], nd->token = iv[3];
        nd->activation = fv[0], nd->prob = fv[1], nd->influence = fv[2], nd->influence_raw = fv[3];
    }
    if (h.T > 0) {
        if (!(g->tokens = malloc(sizeof(int) * (size_t)h.T))) goto oom;
        memcpy(g->tokens, p, 4 * (size_t)h.T);
        p += 4 * (size_t)h.T;
    }
    In in = {p, p + h.strings_size, path};
    if (in_str(&in, &g->prompt, "prompt", 0) != CT_OK || in_str(&in, &g->slug, "slug", 0) != CT_OK ||
        in_str(&in, &g->scan, "scan", 0) != CT_OK || in_str(&in, &g->model_path, "model_path", 0) != CT_OK ||
        in_str(&in, &g->clt_path, "clt_path", 0) != CT_OK ||
        read_strs(&in, &g->token_strs, h.T, "token_strs") != CT_OK ||
        read_strs(&in, &g->logit_strs, h.n_logits, "logit_strs") != CT_OK ||
        read_strs(&in, &g->node_labels, h.n_nodes, "node_labels") != CT_OK)
        goto fail;
    if (in.p != in.end) {
        ct_error("%s: strings section: %td bytes left over after the last string (expected 0)",
                 path, in.end - in.p);
        goto fail;
    }
    p = in.end;
    memcpy(g->sp_row, p, (N + 1) * 8);
    p += (N + 1) * 8;
    memcpy(g->sp_col, p, h.nnz * 4);
    p += h.nnz * 4;
    memcpy(g->sp_val, p, h.nnz * 4);
    p += h.nnz * 4;
    if (!(g->sp_keep = malloc(h.nnz + 1))) goto oom;
    memcpy(g->sp_keep, p, h.nnz);
    for (uint64_t k = 0; k < h.nnz; k++)
        if (g->sp_keep[k] > 1) {
            ct_error("%s: edge %" PRIu64 ": keep flag expected 0 or 1, got %u", path, k, g->sp_keep[k]);
            goto fail;
        }
    if (!pruned) free(g->sp_keep), g->sp_keep = NULL;
    // Offsets and indices: graph_check names the row/edge and the bad value.
    if (graph_check(g) != CT_OK) {
        ct_error_ctx("%s", path);
        goto fail;
    }
    if (pruned) {
        int kn = 0;
        size_t ke = 0;
        for (uint64_t i = 0; i < N; i++) kn += g->node_keep[i];
        for (uint64_t k = 0; k < h.nnz; k++) ke += g->sp_keep[k];
        if (kn != h.n_kept_nodes || ke != h.n_kept_edges) {
            ct_error("%s: header says %d kept nodes and %" PRIu64 " kept edges, the flags give %d "
                     "and %zu", path, h.n_kept_nodes, h.n_kept_edges, kn, ke);
            goto fail;
        }
        g->n_kept_nodes = kn, g->n_kept_edges = ke;
    }
    rc = CT_OK;
    goto done;
bad_hdr:
    ct_error("%s: header_size %u / node_size %u: expected %zu / %u (a different build of version "
             "%u?)", path, h.header_size, h.node_size, sizeof h, CTG_NODE_SIZE, CTG_VERSION);
    goto done;
oom:
    ct_error("%s: out of memory", path);
fail:
    graph_free(g);
done:
    ct_unmap_file(&mf);
    return rc;
}
