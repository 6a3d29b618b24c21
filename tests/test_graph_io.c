// test_graph_io.c — the viewer JSON (METHOD §4), graph-metadata.json and the raw .ctg.
//
// The JSON is parsed back with jansson directly (not through graph_read_json) and checked
// against ids, Cantor values and strings written out in this file from the METHOD §4 table.
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/graph.h"
#include "engine/graph_io.h"
#include "engine/prune.h"
#include "tests/lib/testutil.h"

// ---- the test graph ---------------------------------------------------------------------------
// L = 2, T = 3, N = 14:
//   0 Fa (l0,p1,f1) "0_1_1"   Cantor (0+1)(0+1+1)/2 + 1 = 2
//   1 Fb (l0,p2,f7) "0_7_2"   Cantor 7*8/2 + 7 = 35
//   2 Fc (l1,p2,f3) "1_3_2"   Cantor 4*5/2 + 3 = 13
//   3..8 errors (l,p) = (0,0) (0,1) (0,2) (1,0) (1,1) (1,2): "0_{l}_{p}"; (1,1) is "0_1_1",
//        the same id as Fa: the reference's collision
//   9 10 11 tokens 1, 500, 37: "E_1_0", "E_500_1", "E_37_2"
//   12 13 logits v 11 (p .7), 29 (p .2): "3_11_2", "3_29_2"
enum { FA, FB, FC, E00, E01, E02, E10, E11, E12, T0, T1, T2, G0, G1, NN };
static const char *IDS[NN] = {"0_1_1", "0_7_2", "1_3_2", "0_0_0", "0_0_1", "0_0_2", "0_1_0",
                              "0_1_1", "0_1_2", "E_1_0", "E_500_1", "E_37_2", "3_11_2", "3_29_2"};
static const long long FEAT[NN] = {2, 35, 13, -1, -1, -1, -1, -1, -1, 0, 1, 2, 11, 29};
static const char *LAYER[NN] = {"0", "0", "1", "0", "0", "0", "1", "1", "1", "E", "E", "E", "3", "3"};
static const char *JSID[NN] = {"0_1-0", "0_7-0", "1_3-0", "0_-1-0", "0_-1-1", "0_-1-2", "1_-1-0",
                               "1_-1-1", "1_-1-2", "E_1-0", "E_500-1", "E_37-2", "L_11-2", "L_29-2"};
static const int CTX[NN] = {1, 2, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 2, 2};
#define N_EDGES 17

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

static void build(Graph *g) {
    cr_assert_eq(graph_alloc(g, 3, 6, 3, 2), CT_OK, "%s", ct_errmsg());
    g->L = 2, g->T = 3, g->D = 16, g->F = 64, g->V = 600;
    int fl[3] = {0, 0, 1}, fp[3] = {1, 2, 2}, ff[3] = {1, 7, 3};
    float fa[3] = {0.5f, 1.25f, 2.0f};
    for (int i = 0; i < 3; i++) {
        GraphNode *nd = &g->nodes[i];
        nd->kind = NODE_FEATURE, nd->layer = fl[i], nd->pos = fp[i], nd->feature = ff[i];
        nd->activation = fa[i];
    }
    for (int l = 0; l < 2; l++)
        for (int p = 0; p < 3; p++) {
            GraphNode *nd = &g->nodes[E00 + l * 3 + p];
            nd->kind = NODE_ERROR, nd->layer = l, nd->pos = p;
        }
    int tok[3] = {1, 500, 37};
    for (int p = 0; p < 3; p++) {
        GraphNode *nd = &g->nodes[T0 + p];
        nd->kind = NODE_TOKEN, nd->layer = -1, nd->pos = p, nd->token = tok[p];
    }
    int lv[2] = {11, 29};
    float lp[2] = {0.7f, 0.2f}, la[2] = {9.5f, 7.25f};
    for (int k = 0; k < 2; k++) {
        GraphNode *nd = &g->nodes[G0 + k];
        nd->kind = NODE_LOGIT, nd->layer = 2, nd->pos = 2, nd->token = lv[k];
        nd->prob = lp[k], nd->activation = la[k], nd->is_target = 1;
    }
    float *A = g->adj;
#define E(t, s, w) A[(t) * NN + (s)] = (w)
    E(FA, T1, 2.0f), E(FA, T0, 0.5f);
    E(FB, T2, 1.0f), E(FB, T1, -0.5f);
    E(FC, FA, 1.5f), E(FC, FB, -2.0f), E(FC, E01, 0.25f), E(FC, E02, 0.75f), E(FC, T2, 0.1f);
    E(G0, FC, 3.0f), E(G0, FB, 1.0f), E(G0, E11, 0.5f), E(G0, E12, 0.2f), E(G0, T2, 1.0f);
    E(G1, FC, -1.0f), E(G1, E11, 1.5f), E(G1, T1, 0.5f);
#undef E
    g->tokens = malloc(3 * sizeof(int));
    memcpy(g->tokens, tok, sizeof tok);
    g->token_strs = calloc(3, sizeof(char *));
    g->token_strs[0] = xstrdup("<s>");
    g->token_strs[1] = xstrdup(" hello");
    g->token_strs[2] = xstrdup("\n\xff");   // a byte-fallback piece: not valid UTF-8
    g->logit_strs = calloc(2, sizeof(char *));
    g->logit_strs[0] = xstrdup("yes");
    g->logit_strs[1] = xstrdup("no \"q\"");
    g->node_labels = calloc(NN, sizeof(char *));
    g->node_labels[FC] = xstrdup("says hello");
    g->prompt = xstrdup("hello\nworld");
    g->slug = xstrdup("test-graph");
    g->model_path = xstrdup("/m/model.bin");
    g->clt_path = xstrdup("/c/clt/");
    g->model_fp = 0x0123456789abcdefULL, g->clt_fp = 42, g->prompt_fp = 0xfedcba9876543210ULL;
    g->n_active_total = 10, g->max_feature_nodes = 3;
}

static void build_pruned(Graph *g) {
    build(g);
    cr_assert_eq(prune_graph(g, 0.8, 0.98), CT_OK, "%s", ct_errmsg());
}

static char *g_dir;
static void setup(void) { cr_assert_not_null(g_dir = tu_mkdtemp("ctrace_graph_io")); }
static void teardown(void) {
    tu_rmtree(g_dir);
    free(g_dir);
}

static json_t *load(const char *path) {
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    cr_assert_not_null(j, "%s: line %d: %s", path, e.line, e.text);
    return j;
}

static int node_index(json_t *nodes, const char *id, const char *type) {
    for (size_t i = 0; i < json_array_size(nodes); i++) {
        json_t *n = json_array_get(nodes, i);
        if (!strcmp(json_string_value(json_object_get(n, "node_id")), id) &&
            (!type || !strcmp(json_string_value(json_object_get(n, "feature_type")), type)))
            return (int)i;
    }
    return -1;
}

static const char *TYPES[4] = {"cross layer transcoder", "mlp reconstruction error", "embedding", "logit"};

// ---- JSON ---------------------------------------------------------------------------------------
Test(graph_io, full_json_follows_the_table, .init = setup, .fini = teardown) {
    Graph g;
    build_pruned(&g);
    char *path = tu_join(g_dir, "full.json");
    cr_assert_eq(graph_write_json(&g, path, GRAPH_JSON_FULL), CT_OK, "%s", ct_errmsg());
    json_t *j = load(path);
    json_t *nodes = json_object_get(j, "nodes"), *links = json_object_get(j, "links");
    cr_assert_eq(json_array_size(nodes), NN);
    for (int i = 0; i < NN; i++) {
        json_t *n = json_array_get(nodes, (size_t)i);
        int kind = i < 3 ? 0 : i < 9 ? 1 : i < 12 ? 2 : 3;
        cr_assert_str_eq(json_string_value(json_object_get(n, "node_id")), IDS[i]);
        cr_assert_eq(json_integer_value(json_object_get(n, "feature")), FEAT[i], "node %d", i);
        cr_assert_str_eq(json_string_value(json_object_get(n, "layer")), LAYER[i]);
        cr_assert_eq(json_integer_value(json_object_get(n, "ctx_idx")), CTX[i]);
        cr_assert_str_eq(json_string_value(json_object_get(n, "feature_type")), TYPES[kind]);
        cr_assert_str_eq(json_string_value(json_object_get(n, "jsNodeId")), JSID[i]);
        cr_assert_eq(json_integer_value(json_object_get(n, "run_idx")), 0);
        cr_assert_eq(json_integer_value(json_object_get(n, "reverse_ctx_idx")), 0);
        cr_assert_eq((float)json_real_value(json_object_get(n, "influence")), g.nodes[i].influence);
        cr_assert_eq(json_is_true(json_object_get(n, "is_target_logit")), kind == 3);
        json_t *act = json_object_get(n, "activation");
        if (kind == 0 || kind == 3) cr_assert_eq((float)json_real_value(act), g.nodes[i].activation);
        else cr_assert(json_is_null(act), "node %d activation should be null", i);
    }
    // clerps: labels, token text (invalid byte -> U+FFFD), logit `Output "tok" (p=...)`.
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(nodes, FC), "clerp")), "says hello");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(nodes, FA), "clerp")), "");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(nodes, T1), "clerp")), " hello");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(nodes, T2), "clerp")), "\n\xEF\xBF\xBD");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(nodes, G0), "clerp")), "Output \"yes\" (p=0.700)");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(nodes, G1), "clerp")), "Output \"no \"q\"\" (p=0.200)");
    cr_assert_eq((float)json_real_value(json_object_get(json_array_get(nodes, G0), "token_prob")), 0.7f);
    cr_assert_eq(json_real_value(json_object_get(json_array_get(nodes, E01), "token_prob")), 0.0);
    // Links: every nonzero edge, endpoints are node ids, weight = A[target, source].
    cr_assert_eq(json_array_size(links), N_EDGES);
    int n_typed = 0;
    for (size_t k = 0; k < json_array_size(links); k++) {
        json_t *l = json_array_get(links, k);
        const char *src = json_string_value(json_object_get(l, "source"));
        const char *dst = json_string_value(json_object_get(l, "target"));
        const char *sty = json_string_value(json_object_get(l, "source_type"));
        const char *tty = json_string_value(json_object_get(l, "target_type"));
        int s = node_index(nodes, src, sty), t = node_index(nodes, dst, tty);
        cr_assert(s >= 0 && t >= 0, "link %zu: %s -> %s not nodes", k, src, dst);
        // "0_1_1" names Fa and e11: such links say which one.
        if (!strcmp(src, "0_1_1")) {
            cr_assert_not_null(sty, "link %zu from the ambiguous id has no source_type", k);
            n_typed++;
        } else {
            cr_assert_null(sty);
        }
        cr_assert_eq((float)json_real_value(json_object_get(l, "weight")), g.adj[t * NN + s],
                     "link %s -> %s", src, dst);
        cr_assert_neq(g.adj[t * NN + s], 0.0f);
    }
    cr_assert_eq(n_typed, 3);   // Fc <- Fa, g0 <- e11, g1 <- e11
    // qParams and metadata.
    json_t *q = json_object_get(j, "qParams");
    cr_assert_eq(json_array_size(json_object_get(q, "pinnedIds")), 0);
    cr_assert_eq(json_array_size(json_object_get(q, "supernodes")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(q, "linkType")), "both");
    cr_assert_str_eq(json_string_value(json_object_get(q, "clickedId")), "");
    cr_assert_str_eq(json_string_value(json_object_get(q, "sg_pos")), "");
    json_t *m = json_object_get(j, "metadata");
    cr_assert_str_eq(json_string_value(json_object_get(m, "slug")), "test-graph");
    cr_assert_str_eq(json_string_value(json_object_get(m, "scan")), "clt");
    cr_assert_str_eq(json_string_value(json_object_get(m, "prompt")), "hello\nworld");
    cr_assert_eq(json_integer_value(json_object_get(m, "schema_version")), 1);
    cr_assert_eq(json_real_value(json_object_get(m, "node_threshold")), 0.8);
    json_t *pt = json_object_get(m, "prompt_tokens");
    cr_assert_eq(json_array_size(pt), 3);
    cr_assert_str_eq(json_string_value(json_array_get(pt, 1)), " hello");
    json_t *info = json_object_get(m, "info");
    cr_assert_str_eq(json_string_value(json_object_get(info, "model_xxh3")), "0123456789abcdef");
    cr_assert_str_eq(json_string_value(json_object_get(info, "transcoder_xxh3")), "000000000000002a");
    cr_assert_str_eq(json_string_value(json_object_get(info, "prompt_xxh3")), "fedcba9876543210");
    cr_assert_str_eq(json_string_value(json_object_get(info, "model")), "/m/model.bin");
    cr_assert_eq(json_integer_value(json_object_get(info, "n_nodes")), NN);
    cr_assert_eq(json_integer_value(json_object_get(info, "n_edges")), N_EDGES);
    cr_assert(json_is_true(json_object_get(info, "full_graph")));
    json_t *sc = json_object_get(info, "scores");
    double r = json_real_value(json_object_get(json_object_get(sc, "full"), "replacement"));
    double c = json_real_value(json_object_get(json_object_get(sc, "pruned"), "completeness"));
    cr_assert_float_eq(r, g.replacement_score, 1e-8 * fabs(g.replacement_score));
    cr_assert_float_eq(c, g.pruned_completeness_score, 1e-8 * fabs(g.pruned_completeness_score));
    json_decref(j);
    free(path);
    graph_free(&g);
}

Test(graph_io, pruned_json_has_kept_nodes_and_edges_only, .init = setup, .fini = teardown) {
    Graph g;
    build_pruned(&g);
    cr_assert(g.n_kept_nodes < NN && g.n_kept_edges < N_EDGES, "the test graph should lose something");
    char *path = tu_join(g_dir, "g.json");
    cr_assert_eq(graph_write_json(&g, path, 0), CT_OK, "%s", ct_errmsg());
    json_t *j = load(path);
    json_t *nodes = json_object_get(j, "nodes"), *links = json_object_get(j, "links");
    cr_assert_eq(json_array_size(nodes), (size_t)g.n_kept_nodes);
    cr_assert_eq(json_array_size(links), g.n_kept_edges);
    size_t n = 0;
    for (int i = 0; i < NN; i++) {
        if (!g.node_keep[i]) continue;
        json_t *nd = json_array_get(nodes, n++);
        cr_assert_str_eq(json_string_value(json_object_get(nd, "node_id")), IDS[i]);
    }
    for (size_t k = 0; k < json_array_size(links); k++) {
        json_t *l = json_array_get(links, k);
        int s = node_index(nodes, json_string_value(json_object_get(l, "source")),
                           json_string_value(json_object_get(l, "source_type")));
        int t = node_index(nodes, json_string_value(json_object_get(l, "target")),
                           json_string_value(json_object_get(l, "target_type")));
        cr_assert(s >= 0 && t >= 0, "link %zu: endpoint is not a node", k);
        // map JSON node positions back to graph indices through the id table
        const char *sid = json_string_value(json_object_get(json_array_get(nodes, (size_t)s), "feature_type"));
        int gs = -1, gt = -1;
        for (int i = 0; i < NN; i++) {
            int kind = i < 3 ? 0 : i < 9 ? 1 : i < 12 ? 2 : 3;
            if (!strcmp(IDS[i], json_string_value(json_object_get(l, "source"))) && !strcmp(TYPES[kind], sid)) gs = i;
            if (!strcmp(IDS[i], json_string_value(json_object_get(l, "target"))) && kind != 1) gt = i;
        }
        cr_assert(gs >= 0 && gt >= 0);
        cr_assert(g.edge_keep[gt * NN + gs], "link %zu is not a kept edge", k);
        cr_assert_eq((float)json_real_value(json_object_get(l, "weight")), g.adj[gt * NN + gs]);
    }
    cr_assert(json_is_false(json_object_get(json_object_get(json_object_get(j, "metadata"), "info"), "full_graph")));
    json_decref(j);
    // Without keep flags the pruned form cannot be written.
    Graph u;
    build(&u);
    cr_assert_eq(graph_write_json(&u, path, 0), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "not pruned"), "%s", ct_errmsg());
    graph_free(&u);
    free(path);
    graph_free(&g);
}

Test(graph_io, json_reads_back, .init = setup, .fini = teardown) {
    Graph g, r;
    build_pruned(&g);
    char *path = tu_join(g_dir, "full.json");
    cr_assert_eq(graph_write_json(&g, path, GRAPH_JSON_FULL), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(graph_read_json(&r, path), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(r.n_nodes, NN);
    cr_assert(r.n_features == 3 && r.n_errors == 6 && r.n_tokens == 3 && r.n_logits == 2);
    cr_assert(r.L == 2 && r.T == 3 && r.D == 16 && r.F == 64 && r.V == 600);
    for (int i = 0; i < NN; i++) {
        GraphNode *a = &g.nodes[i], *b = &r.nodes[i];
        cr_assert(a->kind == b->kind && a->layer == b->layer && a->pos == b->pos &&
                  a->feature == b->feature && a->token == b->token, "node %d", i);
        cr_assert_eq(a->influence, b->influence);
        cr_assert_eq(a->prob, b->prob);
        if (a->kind == NODE_FEATURE || a->kind == NODE_LOGIT) cr_assert_eq(a->activation, b->activation);
        cr_assert_eq(a->is_target, b->is_target);
    }
    // Every edge (the ambiguous "0_1_1" endpoints resolved through source_type).
    cr_assert_eq(r.sp_nnz, N_EDGES);
    for (int t = 0; t < NN; t++)
        for (int s = 0; s < NN; s++) cr_assert_eq(graph_edge(&r, t, s), g.adj[t * NN + s], "A[%d,%d]", t, s);
    cr_assert_str_eq(r.slug, "test-graph");
    cr_assert_str_eq(r.prompt, "hello\nworld");
    cr_assert_str_eq(r.token_strs[1], " hello");
    cr_assert_str_eq(r.logit_strs[1], "no \"q\"");
    cr_assert_str_eq(r.node_labels[FC], "says hello");
    cr_assert_eq(r.model_fp, g.model_fp);
    cr_assert_eq(r.prompt_fp, g.prompt_fp);
    cr_assert_eq(r.tokens[1], 500);
    cr_assert_float_eq(r.completeness_score, g.completeness_score, 1e-8);
    cr_assert_null(r.node_keep);   // a full-graph file carries no pruning
    graph_free(&r);
    // The pruned file reads back too: its links resolve to its nodes.
    cr_assert_eq(graph_write_json(&g, path, 0), CT_OK);
    cr_assert_eq(graph_read_json(&r, path), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(r.n_nodes, g.n_kept_nodes);
    cr_assert_eq(r.sp_nnz, g.n_kept_edges);
    cr_assert_eq(r.n_kept_nodes, g.n_kept_nodes);
    cr_assert_not_null(r.node_keep);
    graph_free(&r);
    // A link to a missing node is rejected with its name.
    FILE *f = fopen(path, "w");
    fputs("{\"metadata\":{\"slug\":\"x\",\"prompt_tokens\":[\"a\"]},\"nodes\":[{\"node_id\":\"E_5_0\","
          "\"feature_type\":\"embedding\",\"ctx_idx\":0}],\"links\":[{\"source\":\"E_5_0\","
          "\"target\":\"1_2_0\",\"weight\":1.0}]}", f);
    fclose(f);
    cr_assert_eq(graph_read_json(&r, path), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "\"1_2_0\" is not a node id"), "%s", ct_errmsg());
    free(path);
    graph_free(&g);
}

Test(graph_io, json_is_byte_identical, .init = setup, .fini = teardown) {
    Graph a, b;
    build_pruned(&a);
    build_pruned(&b);
    char *p1 = tu_join(g_dir, "a.json"), *p2 = tu_join(g_dir, "b.json"), *p3 = tu_join(g_dir, "c.json");
    cr_assert_eq(graph_write_json(&a, p1, 0), CT_OK);
    cr_assert_eq(graph_write_json(&a, p2, 0), CT_OK);
    cr_assert_eq(graph_write_json(&b, p3, 0), CT_OK);
    size_t n1, n2, n3;
    char *d1 = tu_read_file(p1, &n1), *d2 = tu_read_file(p2, &n2), *d3 = tu_read_file(p3, &n3);
    cr_assert(n1 > 100 && n1 == n2 && n1 == n3);
    cr_assert_eq(memcmp(d1, d2, n1), 0);
    cr_assert_eq(memcmp(d1, d3, n1), 0);
    // Shortest round-trip floats: 0.8 is written as 0.8, not 0.800000012.
    cr_assert_not_null(strstr(d1, "\"node_threshold\":0.8,"));
    cr_assert_not_null(strstr(d1, "\"weight\":0.5"));
    free(d1), free(d2), free(d3), free(p1), free(p2), free(p3);
    graph_free(&a);
    graph_free(&b);
}

Test(graph_io, unwritable_output_is_reported) {
    Graph g;
    build_pruned(&g);
    cr_assert_eq(graph_write_json(&g, "/nonexistent-ctrace-dir/g.json", 0), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "/nonexistent-ctrace-dir/g.json"), "%s", ct_errmsg());
    cr_assert_eq(graph_write_ctg(&g, "/nonexistent-ctrace-dir/g.ctg"), CT_ERR);
    cr_assert_eq(graph_update_index("/nonexistent-ctrace-dir", &g, 0), CT_ERR);
    graph_free(&g);
}

// ---- graph-metadata.json -------------------------------------------------------------------------
Test(graph_io, metadata_index_insert_and_replace, .init = setup, .fini = teardown) {
    Graph g;
    build_pruned(&g);
    free(g.slug);
    g.slug = xstrdup("a");
    cr_assert_eq(graph_update_index(g_dir, &g, 0), CT_OK, "%s", ct_errmsg());
    free(g.slug);
    g.slug = xstrdup("b");
    cr_assert_eq(graph_update_index(g_dir, &g, 0), CT_OK, "%s", ct_errmsg());
    free(g.slug), free(g.prompt);
    g.slug = xstrdup("a");
    g.prompt = xstrdup("second version");
    cr_assert_eq(graph_update_index(g_dir, &g, 0), CT_OK, "%s", ct_errmsg());
    char *path = tu_join(g_dir, "graph-metadata.json");
    json_t *j = load(path);
    json_t *gs = json_object_get(j, "graphs");
    cr_assert_eq(json_array_size(gs), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(gs, 0), "slug")), "a");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(gs, 0), "prompt")), "second version");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(gs, 1), "slug")), "b");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(gs, 1), "prompt")), "hello\nworld");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(gs, 1), "schema_version")), 1);
    json_decref(j);
    // A corrupt index is reported, not overwritten.
    tu_write_file(path, "{\"graphs\": 3}", 13);
    cr_assert_eq(graph_update_index(g_dir, &g, 0), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "graph-metadata.json"), "%s", ct_errmsg());
    size_t n;
    char *d = tu_read_file(path, &n);
    cr_assert(n == 13 && !memcmp(d, "{\"graphs\": 3}", 13));
    free(d);
    free(path);
    graph_free(&g);
}

// ---- .ctg ---------------------------------------------------------------------------------------
Test(graph_io, ctg_round_trip, .init = setup, .fini = teardown) {
    Graph g, r;
    build_pruned(&g);
    char *path = tu_join(g_dir, "g.ctg");
    cr_assert_eq(graph_write_ctg(&g, path), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(graph_read_ctg(&r, path), CT_OK, "%s", ct_errmsg());
    cr_assert(r.n_nodes == NN && r.n_features == 3 && r.n_errors == 6 && r.n_tokens == 3 && r.n_logits == 2);
    cr_assert(r.L == 2 && r.T == 3 && r.D == 16 && r.F == 64 && r.V == 600);
    cr_assert(r.model_fp == g.model_fp && r.clt_fp == g.clt_fp && r.prompt_fp == g.prompt_fp);
    cr_assert(r.n_active_total == 10 && r.max_feature_nodes == 3);
    cr_assert(r.node_threshold == g.node_threshold && r.edge_threshold == g.edge_threshold);
    cr_assert(r.replacement_score == g.replacement_score && r.completeness_score == g.completeness_score);
    cr_assert(r.pruned_replacement_score == g.pruned_replacement_score &&
              r.pruned_completeness_score == g.pruned_completeness_score);
    cr_assert(r.n_kept_nodes == g.n_kept_nodes && r.n_kept_edges == g.n_kept_edges);
    for (int i = 0; i < NN; i++) {
        GraphNode *a = &g.nodes[i], *b = &r.nodes[i];
        cr_assert(a->kind == b->kind && a->layer == b->layer && a->pos == b->pos &&
                  a->feature == b->feature && a->token == b->token && a->is_target == b->is_target, "node %d", i);
        cr_assert(a->activation == b->activation && a->prob == b->prob && a->influence == b->influence &&
                  a->influence_raw == b->influence_raw, "node %d", i);
        cr_assert_eq(g.node_keep[i], r.node_keep[i]);
    }
    cr_assert_eq(r.sp_nnz, g.sp_nnz);
    cr_assert_eq(memcmp(r.sp_row, g.sp_row, (NN + 1) * 8), 0);
    cr_assert_eq(memcmp(r.sp_col, g.sp_col, g.sp_nnz * 4), 0);
    cr_assert_eq(memcmp(r.sp_val, g.sp_val, g.sp_nnz * 4), 0);
    cr_assert_eq(memcmp(r.sp_keep, g.sp_keep, g.sp_nnz), 0);
    for (int p = 0; p < 3; p++) {
        cr_assert_eq(r.tokens[p], g.tokens[p]);
        cr_assert_str_eq(r.token_strs[p], g.token_strs[p]);   // raw bytes, "\n\xff" included
    }
    cr_assert_str_eq(r.logit_strs[1], "no \"q\"");
    cr_assert_str_eq(r.node_labels[FC], "says hello");
    cr_assert_null(r.node_labels[FA]);
    cr_assert_null(r.scan);
    cr_assert_str_eq(r.prompt, g.prompt);
    cr_assert_str_eq(r.slug, g.slug);
    cr_assert_str_eq(r.clt_path, g.clt_path);
    // Dense form back: the same matrix and flags.
    cr_assert_eq(graph_densify(&r), CT_OK);
    cr_assert_eq(memcmp(r.adj, g.adj, NN * NN * sizeof(float)), 0);
    cr_assert_eq(memcmp(r.edge_keep, g.edge_keep, NN * NN), 0);
    // Same graph -> same bytes.
    char *p2 = tu_join(g_dir, "h.ctg");
    cr_assert_eq(graph_write_ctg(&r, p2), CT_OK, "%s", ct_errmsg());
    size_t n1, n2;
    void *d1 = tu_read_file(path, &n1), *d2 = tu_read_file(p2, &n2);
    cr_assert(n1 == n2 && !memcmp(d1, d2, n1));
    free(d1), free(d2), free(p2), free(path);
    graph_free(&r);
    graph_free(&g);
}

Test(graph_io, ctg_unpruned_round_trip, .init = setup, .fini = teardown) {
    Graph g, r;
    build(&g);
    char *path = tu_join(g_dir, "u.ctg");
    cr_assert_eq(graph_write_ctg(&g, path), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(graph_read_ctg(&r, path), CT_OK, "%s", ct_errmsg());
    cr_assert_null(r.node_keep);
    cr_assert_null(r.sp_keep);
    cr_assert_eq(r.sp_nnz, N_EDGES);
    for (int t = 0; t < NN; t++)
        for (int s = 0; s < NN; s++) cr_assert_eq(graph_edge(&r, t, s), g.adj[t * NN + s]);
    free(path);
    graph_free(&r);
    graph_free(&g);
}

// Write a modified copy of the file, optionally re-stamping the checksum so the reader gets
// past it to the check under test.
static void write_variant(const char *path, const uint8_t *d, size_t n, int restamp) {
    uint8_t *c = malloc(n);
    memcpy(c, d, n);
    if (restamp && n >= 8) {
        uint64_t h = ct_hash64(c, n - 8);
        memcpy(c + n - 8, &h, 8);
    }
    cr_assert_eq(tu_write_file(path, c, n), 0);
    free(c);
}

static void expect_reject(const char *path, const char *needle) {
    Graph r;
    cr_assert_eq(graph_read_ctg(&r, path), CT_ERR, "accepted a bad file (%s)", needle);
    cr_assert(strstr(ct_errmsg(), needle), "message \"%s\" lacks \"%s\"", ct_errmsg(), needle);
    cr_assert(strstr(ct_errmsg(), path), "message \"%s\" lacks the path", ct_errmsg());
}

Test(graph_io, ctg_malformed_rejected, .init = setup, .fini = teardown) {
    Graph g;
    build_pruned(&g);
    char *good = tu_join(g_dir, "g.ctg"), *bad = tu_join(g_dir, "bad.ctg");
    cr_assert_eq(graph_write_ctg(&g, good), CT_OK);
    size_t n;
    uint8_t *d = tu_read_file(good, &n);
    uint8_t *c = malloc(n);
    // Bad magic (with the hint).
    memcpy(c, d, n);
    c[0] = 'X';
    write_variant(bad, c, n, 0);
    expect_reject(bad, "bad magic");
    expect_reject(bad, "is this a ctrace raw graph");
    // Empty file.
    write_variant(bad, d, 0, 0);
    expect_reject(bad, "bad magic");
    // Other version.
    memcpy(c, d, n);
    uint32_t v2 = 2;
    memcpy(c + 8, &v2, 4);
    write_variant(bad, c, n, 0);
    expect_reject(bad, "unsupported .ctg version 2");
    expect_reject(bad, "regenerate");
    // Truncated: header only, and missing the last 10 bytes.
    write_variant(bad, d, 100, 0);
    expect_reject(bad, "truncated");
    write_variant(bad, d, n - 10, 0);
    expect_reject(bad, "truncated");
    // Trailing garbage.
    uint8_t *longer = calloc(n + 4, 1);
    memcpy(longer, d, n);
    write_variant(bad, longer, n + 4, 0);
    expect_reject(bad, "size mismatch");
    free(longer);
    // Corrupt weight byte: checksum.
    CtgHeader h;
    memcpy(&h, d, sizeof h);
    size_t col_off = sizeof h + (size_t)NN * 36 + 3 * 4 + h.strings_size + (NN + 1) * 8;
    memcpy(c, d, n);
    c[col_off + h.nnz * 4] ^= 0x40;
    write_variant(bad, c, n, 0);
    expect_reject(bad, "checksum mismatch");
    // Source index out of range (checksum re-stamped so the index check is reached).
    memcpy(c, d, n);
    uint32_t big = NN + 5;
    memcpy(c + col_off, &big, 4);
    write_variant(bad, c, n, 1);
    expect_reject(bad, "source expected < 14, got 19");
    // Row offsets that do not end at nnz.
    memcpy(c, d, n);
    uint64_t off = h.nnz + 1;
    memcpy(c + col_off - 8, &off, 8);
    write_variant(bad, c, n, 1);
    expect_reject(bad, "row offsets");
    // A node kind out of range.
    memcpy(c, d, n);
    c[sizeof h] = 7;
    write_variant(bad, c, n, 1);
    expect_reject(bad, "node 0: kind");
    // Node counts that do not add up.
    memcpy(c, d, n);
    int32_t nf = 4;
    memcpy(c + offsetof(CtgHeader, n_features), &nf, 4);
    write_variant(bad, c, n, 1);
    expect_reject(bad, "node counts");
    // Missing file.
    Graph r;
    cr_assert_eq(graph_read_ctg(&r, "/nonexistent-ctrace-dir/g.ctg"), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "cannot open"), "%s", ct_errmsg());
    free(c), free(d), free(good), free(bad);
    graph_free(&g);
}
