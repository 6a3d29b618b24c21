// test_serve.c — the viewer server's pieces that do not need a socket (the HTTP behaviour is
// tests/cli/serve.sh, the browser tests/cli/browser.sh): the embedded assets equal web/*,
// slug rules, qParams saves (validated, only the qParams bytes change, refused bodies leave
// the file untouched), and the packed graph the viewer reads (same links as the JSON).
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/graph.h"
#include "engine/graph_io.h"
#include "engine/graph_synth.h"
#include "engine/prune.h"
#include "engine/serve.h"
#include "engine/web_assets.h"
#include "tests/lib/testutil.h"

// Every file in web/ is embedded byte for byte, and nothing else is (scripts/embed.sh).
Test(serve, embedded_assets_equal_web_files) {
    DIR *d = opendir("web");
    cr_assert_not_null(d, "run the tests from the repository root (web/ not found)");
    struct dirent *e;
    size_t files = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *path = tu_join("web", e->d_name);
        size_t n;
        char *data = tu_read_file(path, &n);
        cr_assert_not_null(data, "%s", path);
        const WebAsset *a = web_asset_find(e->d_name);
        cr_assert_not_null(a, "%s is not embedded: run scripts/embed.sh", path);
        cr_assert(a->size == n && !memcmp(a->data, data, n), "%s differs from its embedded copy: run scripts/embed.sh", path);
        files++;
        free(data), free(path);
    }
    closedir(d);
    cr_assert_eq(files, web_assets_count, "embedded assets that are no longer in web/: run scripts/embed.sh");
    cr_assert_not_null(web_asset_find("viewer.js"));
    cr_assert_not_null(web_asset_find("viewer.html"));
    cr_assert_not_null(web_asset_find("viewer.css"));
    cr_assert_null(web_asset_find("../Makefile"));
    cr_assert(strstr(web_asset_find("viewer.js")->type, "javascript"));
    // the viewer loads nothing from elsewhere
    for (size_t i = 0; i < web_assets_count; i++) {
        cr_assert_null(strstr(web_assets[i].data, "http://"), "%s names an http:// URL", web_assets[i].name);
        cr_assert_null(strstr(web_assets[i].data, "https://"), "%s names an https:// URL", web_assets[i].name);
    }
}

Test(serve, slug_rules) {
    const char *ok[] = {"g", "graph", "synth-10000-1000000-1", "a.b_c-D9"};
    const char *bad[] = {"", ".", "..", ".hidden", "../x", "a/b", "a\\b", "a%2e", "a b", "a\nb", "é"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) cr_assert(serve_slug_ok(ok[i]), "%s", ok[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) cr_assert(!serve_slug_ok(bad[i]), "%s", bad[i]);
    char longs[200];
    memset(longs, 'a', sizeof longs - 1);
    longs[199] = 0;
    cr_assert(!serve_slug_ok(longs));
}

// A small pruned graph written as viewer JSON into a fresh directory.
static char *write_graph(Graph *g, char **dir) {
    GraphSynthSpec s = {.n_nodes = 120, .n_links = 600, .L = 3, .T = 5, .K = 3, .seed = 4};
    cr_assert_eq(graph_synth(g, &s), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(prune_graph(g, 0.8, 0.98), CT_OK, "%s", ct_errmsg());
    *dir = tu_mkdtemp("ct_serve");
    char *path = tu_join(*dir, "g.json");
    cr_assert_eq(graph_write_json(g, path, GRAPH_JSON_FULL), CT_OK, "%s", ct_errmsg());
    return path;
}

static char *node_id(const Graph *g, int i) {
    static char b[4][64];
    static int k;
    k = (k + 1) % 4;
    graph_node_id(g, i, b[k], sizeof b[k]);
    return b[k];
}

Test(serve, save_replaces_only_qparams) {
    Graph g;
    char *dir, *path = write_graph(&g, &dir);
    size_t n0;
    char *before = tu_read_file(path, &n0);
    char body[512];
    snprintf(body, sizeof body,
             "{\"pinnedIds\":[\"%s\",\"%s\"],\"supernodes\":[[\"say \\\"hi\\\" ü\",\"%s\",\"%s\"]],"
             "\"linkType\":\"input\",\"clickedId\":\"%s\",\"sg_pos\":\"1,2\"}",
             node_id(&g, 0), node_id(&g, g.n_nodes - 1), node_id(&g, 1), node_id(&g, 2), node_id(&g, 0));
    cr_assert_eq(serve_save_qparams(path, body, strlen(body)), 0, "%s", ct_errmsg());
    size_t n1;
    char *after = tu_read_file(path, &n1);
    // everything but the qParams value is byte-identical
    const char *q0 = strstr(before, "\"qParams\":") + 10, *q1 = strstr(after, "\"qParams\":") + 10;
    cr_assert_eq(q0 - before, q1 - after);
    cr_assert(!memcmp(before, after, (size_t)(q0 - before)));
    const char *e0 = strstr(q0, "},\n\"nodes\":"), *e1 = strstr(q1, "},\n\"nodes\":");
    cr_assert(e0 && e1);
    cr_assert_eq(n0 - (size_t)(e0 - before), n1 - (size_t)(e1 - after));
    cr_assert(!memcmp(e0, e1, n0 - (size_t)(e0 - before)), "bytes after qParams changed");
    // the file is valid JSON with the new qParams
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    cr_assert_not_null(root, "%s", je.text);
    json_t *q = json_object_get(root, "qParams");
    cr_assert_eq(json_array_size(json_object_get(q, "pinnedIds")), 2);
    json_t *sn = json_array_get(json_object_get(q, "supernodes"), 0);
    cr_assert_str_eq(json_string_value(json_array_get(sn, 0)), "say \"hi\" ü");
    cr_assert_str_eq(json_string_value(json_array_get(sn, 2)), node_id(&g, 2));
    cr_assert_str_eq(json_string_value(json_object_get(q, "linkType")), "input");
    cr_assert_str_eq(json_string_value(json_object_get(q, "sg_pos")), "1,2");
    json_decref(root);
    // and graph_read_json still reads it
    Graph r;
    cr_assert_eq(graph_read_json(&r, path), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(r.n_nodes, g.n_nodes);
    graph_free(&r);
    // defaults for the optional keys
    const char *minimal = "{\"pinnedIds\":[],\"supernodes\":[]}";
    cr_assert_eq(serve_save_qparams(path, minimal, strlen(minimal)), 0, "%s", ct_errmsg());
    root = json_load_file(path, 0, &je);
    q = json_object_get(root, "qParams");
    cr_assert_str_eq(json_string_value(json_object_get(q, "linkType")), "both");
    cr_assert_str_eq(json_string_value(json_object_get(q, "clickedId")), "");
    json_decref(root);
    free(before), free(after);
    graph_free(&g);
    tu_rmtree(dir);
    free(dir), free(path);
}

Test(serve, refused_saves_leave_the_file_untouched) {
    Graph g;
    char *dir, *path = write_graph(&g, &dir);
    size_t n0;
    char *before = tu_read_file(path, &n0);
    char good_id[80], body[600];
    snprintf(good_id, sizeof good_id, "\"%s\"", node_id(&g, 3));
    struct { const char *body; int status; } cases[] = {
        {"", 400},
        {"not json", 400},
        {"[1,2]", 400},
        {"{\"pinnedIds\":[\"nope_1_2\"],\"supernodes\":[]}", 400},
        {"{\"pinnedIds\":[1],\"supernodes\":[]}", 400},
        {"{\"pinnedIds\":{},\"supernodes\":[]}", 400},
        {"{\"supernodes\":[]}", 400},
        {"{\"pinnedIds\":[],\"supernodes\":[[\"name\"]]}", 400},
        {"{\"pinnedIds\":[],\"supernodes\":[[\"\",\"x\"]]}", 400},
        {"{\"pinnedIds\":[],\"supernodes\":[],\"linkType\":\"sideways\"}", 400},
        {"{\"pinnedIds\":[],\"supernodes\":[],\"clickedId\":\"nope\"}", 400},
        {"{\"pinnedIds\":[],\"supernodes\":[],\"extra\":1}", 400},
        {"{\"pinnedIds\":[],\"pinnedIds\":[],\"supernodes\":[]}", 400},
        {"{\"pinnedIds\":[],\"supernodes\":[]", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int st = serve_save_qparams(path, cases[i].body, strlen(cases[i].body));
        cr_assert_eq(st, cases[i].status, "body '%s': status %d, expected %d (%s)", cases[i].body, st, cases[i].status,
                     ct_errmsg());
        size_t n;
        char *now = tu_read_file(path, &n);
        cr_assert(n == n0 && !memcmp(now, before, n), "body '%s' changed the file", cases[i].body);
        free(now);
    }
    // a supernode naming an unknown id among good ones
    snprintf(body, sizeof body, "{\"pinnedIds\":[%s],\"supernodes\":[[\"s\",%s,\"0_99_99\"]]}", good_id, good_id);
    cr_assert_eq(serve_save_qparams(path, body, strlen(body)), 400);
    cr_assert(strstr(ct_errmsg(), "0_99_99"), "%s", ct_errmsg());
    // oversized
    size_t big = SERVE_MAX_POST + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    cr_assert_eq(serve_save_qparams(path, huge, big), 413);
    free(huge);
    size_t n;
    char *now = tu_read_file(path, &n);
    cr_assert(n == n0 && !memcmp(now, before, n));
    // no temp file left behind
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d))) cr_assert_null(strstr(e->d_name, ".tmp"), "left %s", e->d_name);
    closedir(d);
    // a missing graph file: 404
    char *missing = tu_join(dir, "missing.json");
    const char *ok = "{\"pinnedIds\":[],\"supernodes\":[]}";
    cr_assert_eq(serve_save_qparams(missing, ok, strlen(ok)), 404);
    free(missing), free(now), free(before);
    graph_free(&g);
    tu_rmtree(dir);
    free(dir), free(path);
}

// The packed form holds exactly the JSON's links (read independently with jansson here): the
// JSON's links in order, each found at its target row's next slot.
typedef struct Packed {
    uint32_t N, M, J, flags;
    const char *json;
    const uint32_t *row;
    const char *src;
    const float *w;
} Packed;

static Packed unpack(const char *buf, size_t n) {
    Packed p;
    cr_assert(n >= 24 && !memcmp(buf, "CTVIEW2", 8));
    uint32_t h[4];
    memcpy(h, buf + 8, sizeof h);
    p.N = h[0], p.M = h[1], p.J = h[2], p.flags = h[3];
    cr_assert_eq(p.J % 4, 0);
    size_t isz = (p.flags & 1) ? 2 : 4, off = 24 + (size_t)p.J, soff = off + 4 * ((size_t)p.N + 1);
    size_t woff = soff + (isz * p.M + 3) / 4 * 4;
    cr_assert_eq(n, woff + 4 * (size_t)p.M);
    p.json = buf + 24;
    p.row = (const uint32_t *)(buf + off);
    p.src = buf + soff;
    p.w = (const float *)(buf + woff);
    cr_assert_eq(p.row[0], 0);
    cr_assert_eq(p.row[p.N], p.M);
    return p;
}

static uint32_t packed_src(const Packed *p, size_t k) {
    if (p->flags & 1) {
        uint16_t v;
        memcpy(&v, p->src + 2 * k, 2);
        return v;
    }
    uint32_t v;
    memcpy(&v, p->src + 4 * k, 4);
    return v;
}

static void check_packed(const char *path, const char *buf, size_t n, int narrow) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    cr_assert_not_null(root, "%s", je.text);
    json_t *nodes = json_object_get(root, "nodes"), *links = json_object_get(root, "links");
    Packed p = unpack(buf, n);
    cr_assert_eq(p.N, json_array_size(nodes));
    cr_assert_eq(p.M, json_array_size(links));
    cr_assert_eq(p.flags & 1, (uint32_t)narrow, "16-bit sources exactly when N <= 65535");
    // the JSON part parses, and carries the nodes and qParams
    json_t *part = json_loadb(p.json, p.J, 0, &je);
    cr_assert_not_null(part, "%s", je.text);
    cr_assert(json_equal(json_object_get(part, "nodes"), nodes));
    json_t *q = json_object_get(root, "qParams");
    if (q) cr_assert(json_equal(json_object_get(part, "qParams"), q));
    else cr_assert_eq(json_object_size(json_object_get(part, "qParams")), 0, "no qParams in the file: {}");
    cr_assert_null(json_object_get(part, "links"));
    // node index of each id (ids are unique in synthetic graphs)
    json_t *index = json_object();
    for (size_t i = 0; i < p.N; i++)
        json_object_set_new(index, json_string_value(json_object_get(json_array_get(nodes, i), "node_id")),
                            json_integer((json_int_t)i));
    uint32_t *cursor = calloc(p.N, sizeof *cursor);
    for (size_t k = 0; k < p.M; k++) {
        json_t *l = json_array_get(links, k);
        const char *sid = json_string_value(json_object_get(l, "source"));
        const char *tid = json_string_value(json_object_get(l, "target"));
        json_t *ti = json_object_get(index, tid);
        cr_assert_not_null(ti, "target %s not found", tid);
        size_t t = (size_t)json_integer_value(ti);
        uint32_t at = p.row[t] + cursor[t]++;
        cr_assert(at < p.row[t + 1], "row of %s too short", tid);
        uint32_t s = packed_src(&p, at);
        cr_assert(s < p.N);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(nodes, s), "node_id")), sid);
        float want = (float)json_number_value(json_object_get(l, "weight"));
        cr_assert(p.w[at] == want, "link %zu: weight %.9g, JSON says %.9g", k, (double)p.w[at], (double)want);
    }
    for (uint32_t t = 0; t < p.N; t++) cr_assert_eq(p.row[t] + cursor[t], p.row[t + 1], "row %u has extra links", t);
    free(cursor);
    json_decref(index);
    json_decref(part);
    json_decref(root);
}

Test(serve, packed_graph_has_the_json_links) {
    Graph g;
    char *dir, *path = write_graph(&g, &dir);
    char *buf;
    size_t n;
    cr_assert_eq(serve_pack_graph(path, &buf, &n), CT_OK, "%s", ct_errmsg());
    check_packed(path, buf, n, 1);
    free(buf);
    graph_free(&g);
    tu_rmtree(dir);
    free(dir), free(path);
}

// More than 65535 nodes: 32-bit sources (a hand-written file; only the packer reads it).
Test(serve, packed_graph_wide_indices) {
    char *dir = tu_mkdtemp("ct_serve"), *path = tu_join(dir, "w.json");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    int N = 70000;
    fprintf(f, "{\"metadata\":{\"slug\":\"w\"},\n\"nodes\":[\n");
    for (int i = 0; i < N; i++)
        fprintf(f, "%s{\"node_id\":\"0_%d_0\",\"feature_type\":\"cross layer transcoder\"}", i ? ",\n" : "", i);
    fprintf(f, "\n],\n\"links\":[\n");
    TuRng rng;
    tu_rng_seed(&rng, 70);
    for (int k = 0; k < 3000; k++)
        fprintf(f, "%s{\"source\":\"0_%u_0\",\"target\":\"0_%u_0\",\"weight\":%.7g}", k ? ",\n" : "",
                tu_rng_below(&rng, (uint32_t)N), tu_rng_below(&rng, (uint32_t)N), tu_rng_normal(&rng));
    fprintf(f, "\n]}\n");
    fclose(f);
    char *buf;
    size_t n;
    cr_assert_eq(serve_pack_graph(path, &buf, &n), CT_OK, "%s", ct_errmsg());
    check_packed(path, buf, n, 0);
    free(buf);
    tu_rmtree(dir);
    free(dir), free(path);
}

// Hand-written JSON: links before nodes, whitespace, an error id equal to a layer-0 feature id
// told apart by source_type/target_type, numbers in every notation, an unknown key.
Test(serve, packed_graph_of_unusual_json) {
    char *dir = tu_mkdtemp("ct_serve");
    char *path = tu_join(dir, "h.json");
    const char *text =
        "{ \"links\" : [\n"
        "  {\"source\":\"0_1_2\",\"target\":\"5_7_2\",\"weight\":-1.5e-3,\"source_type\":\"mlp reconstruction error\"},\n"
        "  {\"source\":\"0_1_2\",\"target\":\"5_7_2\",\"weight\":2,\"source_type\":\"cross layer transcoder\"},\n"
        "  { \"weight\" : 0.30000001 , \"target\" : \"5_7_2\", \"note\": [1, {\"a\": \"]\"}], \"source\" : \"E_9_2\" },\n"
        "  {\"source\":\"E_9_2\",\"target\":\"gone\",\"weight\":1},\n"
        "  {\"source\":\"E_9_2\",\"target\":\"0_1_2\",\"target_type\":\"cross layer transcoder\",\"weight\":12345678901234567890}\n"
        "],\n"
        " \"nodes\": [\n"
        "  {\"node_id\":\"0_1_2\",\"feature_type\":\"cross layer transcoder\",\"layer\":\"0\",\"ctx_idx\":2},\n"
        "  {\"node_id\":\"0_1_2\",\"feature_type\":\"mlp reconstruction error\",\"layer\":\"1\",\"ctx_idx\":2},\n"
        "  {\"node_id\":\"E_9_2\",\"feature_type\":\"embedding\",\"layer\":\"E\",\"ctx_idx\":2},\n"
        "  {\"node_id\":\"5_7_2\",\"feature_type\":\"logit\",\"layer\":\"5\",\"ctx_idx\":2}\n"
        " ],\n"
        " \"metadata\": {\"slug\": \"h\"} }\n";
    cr_assert_eq(tu_write_file(path, text, strlen(text)), 0);
    char *buf;
    size_t n;
    cr_assert_eq(serve_pack_graph(path, &buf, &n), CT_OK, "%s", ct_errmsg());
    Packed p = unpack(buf, n);
    cr_assert_eq(p.N, 4);
    cr_assert_eq(p.M, 4, "the link to 'gone' is dropped");
    // by target: node 0 (feature 0_1_2) <- E_9_2; node 3 (logit) <- error, feature, E_9_2 in file order
    uint32_t want_row[5] = {0, 1, 1, 1, 4};
    for (int t = 0; t < 5; t++) cr_assert_eq(p.row[t], want_row[t], "row[%d]", t);
    uint32_t want_s[4] = {2, 1, 0, 2};
    float want_w[4] = {12345678901234567890.0f, -1.5e-3f, 2.0f, 0.30000001f};
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(packed_src(&p, (size_t)k), want_s[k], "link %d source", k);
        cr_assert(p.w[k] == want_w[k], "link %d weight %.9g", k, (double)p.w[k]);
    }
    json_error_t je;
    json_t *part = json_loadb(p.json, p.J, 0, &je);
    cr_assert_not_null(part, "%s", je.text);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(part, "metadata"), "slug")), "h");
    json_decref(part);
    free(buf);
    // not a graph: refused with a message
    const char *bad[] = {"[]", "{\"nodes\":[]}", "{\"nodes\":[], \"links\":[{\"source\":\"a\"}]}", "{\"nodes\":[],\"links\":[}",
                         "{\"nodes\":[{\"feature_type\":\"logit\"}],\"links\":[]}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(tu_write_file(path, bad[i], strlen(bad[i])), 0);
        cr_assert_eq(serve_pack_graph(path, &buf, &n), CT_ERR, "%s packed", bad[i]);
        cr_assert(strstr(ct_errmsg(), "h.json"), "%s", ct_errmsg());
    }
    tu_rmtree(dir);
    free(dir), free(path);
}
