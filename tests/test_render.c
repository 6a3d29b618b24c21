// test_render.c — the static picture (engine/render.c), checked by parsing the SVG back:
// every drawn node and edge appears exactly once (data-id), edges join the centres of their
// nodes, no two node boxes overlap, nodes sit in their (layer, position) cell, text is escaped
// into well-formed UTF-8, the HTML page needs no network.  Graphs: synthetic ones
// (engine/graph_synth.c), a hand-made crowded one, and a real stories260K attribution graph.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/attribute.h"
#include "engine/clt.h"
#include "engine/common.h"
#include "engine/graph.h"
#include "engine/graph_io.h"
#include "engine/graph_synth.h"
#include "engine/model.h"
#include "engine/prune.h"
#include "engine/render.h"
#include "engine/replacement.h"
#include "engine/tokenizer.h"
#include "tests/lib/testutil.h"

// ---- an SVG reader for what render.c writes ------------------------------------------------------
typedef struct SvgNode {
    int id;
    float x0, y0, x1, y1;   // box
} SvgNode;

typedef struct SvgEdge {
    int s, t;
    float x1, y1, x2, y2;
} SvgEdge;

typedef struct Svg {
    SvgNode *nodes;
    int n_nodes;
    SvgEdge *edges;
    size_t n_edges;
} Svg;

// Value of attribute name in the tag [p, end), or NULL.  Copies into buf.
static const char *attr(const char *p, const char *end, const char *name, char *buf, size_t n) {
    size_t k = strlen(name);
    for (const char *q = p; q + k + 2 < end; q++) {
        if (q[-1] != ' ' || strncmp(q, name, k) || q[k] != '=' || q[k + 1] != '"') continue;
        const char *v = q + k + 2, *e = memchr(v, '"', (size_t)(end - v));
        cr_assert_not_null(e);
        size_t m = (size_t)(e - v) < n - 1 ? (size_t)(e - v) : n - 1;
        memcpy(buf, v, m);
        buf[m] = 0;
        return buf;
    }
    return NULL;
}

static float fattr(const char *p, const char *end, const char *name) {
    char b[64];
    cr_assert_not_null(attr(p, end, name, b, sizeof b), "attribute %s missing", name);
    return strtof(b, NULL);
}

static Svg parse_svg(const char *svg) {
    Svg r = {0};
    size_t cap_n = 1024, cap_e = 1024;
    r.nodes = malloc(cap_n * sizeof *r.nodes);
    r.edges = malloc(cap_e * sizeof *r.edges);
    for (const char *p = strchr(svg, '<'); p; p = strchr(p + 1, '<')) {
        const char *end = strchr(p, '>');
        cr_assert_not_null(end);
        char id[64];
        int circle = !strncmp(p, "<circle ", 8), rect = !strncmp(p, "<rect ", 6), path = !strncmp(p, "<path ", 6);
        if (!(circle || rect || path) || !attr(p, end, "data-id", id, sizeof id)) continue;
        if (path) {
            if (r.n_edges == cap_e) r.edges = realloc(r.edges, (cap_e *= 2) * sizeof *r.edges);
            SvgEdge *e = &r.edges[r.n_edges++];
            cr_assert_eq(sscanf(id, "%d:%d", &e->s, &e->t), 2, "edge data-id '%s'", id);
            char d[128];
            cr_assert_not_null(attr(p, end, "d", d, sizeof d));
            cr_assert_eq(sscanf(d, "M%f %fL%f %f", &e->x1, &e->y1, &e->x2, &e->y2), 4, "path d '%s'", d);
        } else {
            if (r.n_nodes == (int)cap_n) r.nodes = realloc(r.nodes, (cap_n *= 2) * sizeof *r.nodes);
            SvgNode *nd = &r.nodes[r.n_nodes++];
            nd->id = atoi(id);
            if (circle) {
                float cx = fattr(p, end, "cx"), cy = fattr(p, end, "cy"), rr = fattr(p, end, "r");
                nd->x0 = cx - rr, nd->x1 = cx + rr, nd->y0 = cy - rr, nd->y1 = cy + rr;
            } else {
                float x = fattr(p, end, "x"), y = fattr(p, end, "y");
                nd->x0 = x, nd->y0 = y, nd->x1 = x + fattr(p, end, "width"), nd->y1 = y + fattr(p, end, "height");
            }
        }
    }
    return r;
}

static void svg_free(Svg *s) {
    free(s->nodes), free(s->edges);
}

// Render into memory.
static char *render_mem(Graph *g, const RenderOptions *o, size_t *n) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(render_graph(g, o, f), CT_OK, "%s", ct_errmsg());
    fclose(f);
    if (n) *n = len;
    return buf;
}

// Every expected node and edge exactly once, nothing else; edges end at node centres; node
// boxes pairwise disjoint.
static void check_structure(const Graph *g, const Svg *s, const uint8_t *node_want, const uint8_t *edge_want) {
    int N = g->n_nodes;
    int *seen = calloc((size_t)N, sizeof *seen);
    float *cx = calloc((size_t)N, sizeof *cx), *cy = calloc((size_t)N, sizeof *cy);
    int want_nodes = 0;
    for (int i = 0; i < N; i++) want_nodes += node_want[i];
    for (int k = 0; k < s->n_nodes; k++) {
        int i = s->nodes[k].id;
        cr_assert(i >= 0 && i < N, "node data-id %d out of range", i);
        cr_assert(node_want[i], "node %d drawn but not expected", i);
        cr_assert_eq(seen[i]++, 0, "node %d drawn twice", i);
        cx[i] = 0.5f * (s->nodes[k].x0 + s->nodes[k].x1), cy[i] = 0.5f * (s->nodes[k].y0 + s->nodes[k].y1);
    }
    cr_assert_eq(s->n_nodes, want_nodes, "nodes drawn %d, expected %d", s->n_nodes, want_nodes);
    // edges: (target, source) must be an expected CSR entry, each once
    uint8_t *eseen = calloc(g->sp_nnz + 1, 1);
    size_t want_edges = 0;
    for (size_t k = 0; k < g->sp_nnz; k++) want_edges += edge_want[k];
    for (size_t k = 0; k < s->n_edges; k++) {
        const SvgEdge *e = &s->edges[k];
        cr_assert(e->s >= 0 && e->s < N && e->t >= 0 && e->t < N);
        uint64_t lo = g->sp_row[e->t], hi = g->sp_row[e->t + 1], j = lo;
        while (j < hi && g->sp_col[j] != (uint32_t)e->s) j++;
        cr_assert(j < hi, "edge %d -> %d drawn but not in the graph", e->s, e->t);
        cr_assert(edge_want[j], "edge %d -> %d drawn but not expected", e->s, e->t);
        cr_assert_eq(eseen[j]++, 0, "edge %d -> %d drawn twice", e->s, e->t);
        cr_assert(seen[e->s] && seen[e->t], "edge %d -> %d between undrawn nodes", e->s, e->t);
        cr_assert(fabsf(e->x1 - cx[e->s]) < 0.11f && fabsf(e->y1 - cy[e->s]) < 0.11f, "edge start off node %d", e->s);
        cr_assert(fabsf(e->x2 - cx[e->t]) < 0.11f && fabsf(e->y2 - cy[e->t]) < 0.11f, "edge end off node %d", e->t);
    }
    cr_assert_eq(s->n_edges, want_edges, "edges drawn %zu, expected %zu", s->n_edges, want_edges);
    // no two boxes overlap (they may not even touch: the grid leaves a gap)
    for (int a = 0; a < s->n_nodes; a++)
        for (int b = a + 1; b < s->n_nodes; b++) {
            const SvgNode *p = &s->nodes[a], *q = &s->nodes[b];
            int overlap = p->x0 < q->x1 && q->x0 < p->x1 && p->y0 < q->y1 && q->y0 < p->y1;
            cr_assert(!overlap, "boxes of nodes %d [%g,%g]x[%g,%g] and %d [%g,%g]x[%g,%g] overlap", p->id, p->x0,
                      p->x1, p->y0, p->y1, q->id, q->x0, q->x1, q->y0, q->y1);
        }
    free(seen), free(cx), free(cy), free(eseen);
}

static void synth(Graph *g, int N, size_t M, int L, int T, int K, uint64_t seed) {
    GraphSynthSpec s = {.n_nodes = N, .n_links = M, .L = L, .T = T, .K = K, .seed = seed};
    cr_assert_eq(graph_synth(g, &s), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(g->sp_nnz, M);
}

// ---- tests ---------------------------------------------------------------------------------------
Test(render, pruned_graph_every_kept_node_and_edge_once) {
    Graph g;
    synth(&g, 400, 5000, 4, 7, 5, 7);
    cr_assert_eq(prune_graph(&g, 0.8, 0.98), CT_OK, "%s", ct_errmsg());
    RenderOptions o;
    render_options_default(&o);
    char *svg = render_mem(&g, &o, NULL);
    Svg s = parse_svg(svg);
    check_structure(&g, &s, g.node_keep, g.sp_keep);
    cr_assert_gt(s.n_edges, 0);
    cr_assert_lt(s.n_edges, g.sp_nnz, "pruning dropped nothing: the test would not tell");
    cr_log_info("pruned: %d nodes, %zu edges drawn", s.n_nodes, s.n_edges);
    // byte-identical when rendered again
    char *again = render_mem(&g, &o, NULL);
    cr_assert_str_eq(svg, again);
    free(again), free(svg);
    svg_free(&s);
    graph_free(&g);
}

Test(render, all_draws_every_node_and_nonzero_edge) {
    Graph g;
    synth(&g, 250, 3000, 3, 6, 4, 3);
    cr_assert_eq(prune_graph(&g, 0.8, 0.98), CT_OK, "%s", ct_errmsg());
    g.sp_val[5] = 0.0f;   // a stored zero is not an edge
    RenderOptions o;
    render_options_default(&o);
    o.select = RENDER_ALL;
    char *svg = render_mem(&g, &o, NULL);
    Svg s = parse_svg(svg);
    uint8_t *all = malloc((size_t)g.n_nodes), *edges = malloc(g.sp_nnz);
    memset(all, 1, (size_t)g.n_nodes);
    for (size_t k = 0; k < g.sp_nnz; k++) edges[k] = g.sp_val[k] != 0.0f;
    check_structure(&g, &s, all, edges);
    free(all), free(edges), free(svg);
    svg_free(&s);
    graph_free(&g);
}

Test(render, max_nodes_keeps_the_most_influential) {
    Graph g;
    synth(&g, 300, 4000, 4, 6, 4, 5);
    cr_assert_eq(prune_graph(&g, 0.8, 0.98), CT_OK, "%s", ct_errmsg());
    RenderOptions o;
    render_options_default(&o);
    o.select = RENDER_ALL;
    o.max_nodes = 25;
    char *svg = render_mem(&g, &o, NULL);
    Svg s = parse_svg(svg);
    uint8_t *want = calloc((size_t)g.n_nodes, 1), *edges = calloc(g.sp_nnz, 1);
    // expected: the 25 feature/error nodes of smallest influence (ties: lower index), all
    // tokens and logits — computed here by selection, independently of render.c's sort
    int fe = g.n_features + g.n_errors;
    for (int pick = 0; pick < 25; pick++) {
        int best = -1;
        for (int i = 0; i < fe; i++)
            if (!want[i] && (best < 0 || g.nodes[i].influence < g.nodes[best].influence)) best = i;
        want[best] = 1;
    }
    for (int i = fe; i < g.n_nodes; i++) want[i] = 1;
    for (int t = 0; t < g.n_nodes; t++)
        for (uint64_t k = g.sp_row[t]; k < g.sp_row[t + 1]; k++) edges[k] = want[t] && want[g.sp_col[k]];
    check_structure(&g, &s, want, edges);
    free(want), free(edges), free(svg);
    svg_free(&s);
    graph_free(&g);
}

Test(render, pruned_needs_keep_flags) {
    Graph g;
    synth(&g, 100, 500, 2, 4, 3, 1);
    RenderOptions o;
    render_options_default(&o);
    o.select = RENDER_PRUNED;
    FILE *f = fopen("/dev/null", "w");
    cr_assert_eq(render_graph(&g, &o, f), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "--all"), "message: %s", ct_errmsg());
    o.select = RENDER_AUTO;   // unpruned graph: AUTO draws everything
    cr_assert_eq(render_graph(&g, &o, f), CT_OK, "%s", ct_errmsg());
    fclose(f);
    graph_free(&g);
}

// A crowded cell (300 features at one (layer, position)) and every node inside its cell.
Test(render, crowded_cell_wraps_without_overlap) {
    Graph g;
    int L = 2, T = 3, K = 2, F = 300 + 4;
    cr_assert_eq(graph_alloc_sparse(&g, F, L * T, T, K, 0), CT_OK);
    g.L = L, g.T = T;
    for (int i = 0; i < F; i++) {
        GraphNode *nd = &g.nodes[i];
        nd->layer = i < 300 ? 1 : 0, nd->pos = i < 300 ? 2 : i - 300 < T ? i - 300 : 0, nd->feature = i;
        nd->influence = (float)i / (float)F;
    }
    for (int e = 0; e < L * T; e++) g.nodes[F + e].layer = e / T, g.nodes[F + e].pos = e % T;
    for (int p = 0; p < T; p++) g.nodes[F + L * T + p].pos = p, g.nodes[F + L * T + p].token = p, g.nodes[F + L * T + p].layer = -1;
    for (int k = 0; k < K; k++) {
        GraphNode *nd = &g.nodes[F + L * T + T + k];
        nd->layer = L, nd->pos = T - 1, nd->token = 10 + k, nd->prob = 0.5f / (float)(k + 1);
    }
    cr_assert_eq(graph_check(&g), CT_OK, "%s", ct_errmsg());
    uint8_t *on = malloc((size_t)g.n_nodes);
    memset(on, 1, (size_t)g.n_nodes);
    RenderLayout lay;
    cr_assert_eq(render_layout(&g, on, &lay), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(lay.n, g.n_nodes);
    cr_assert_eq(lay.n_bands, L + 2);
    for (int s = 0; s < lay.n; s++) {
        const GraphNode *nd = &g.nodes[lay.node[s]];
        int band = nd->kind == NODE_TOKEN ? 0 : nd->kind == NODE_LOGIT ? L + 1 : nd->layer + 1;
        float x = lay.x[s], y = lay.y[s], r = lay.r[s];
        cr_assert(r >= RENDER_RMIN - 1e-6f && r <= RENDER_RMAX + 1e-6f);
        cr_assert(x - r >= lay.col_x0[nd->pos] && x + r <= lay.col_x0[nd->pos] + lay.col_w[nd->pos],
                  "node %d outside column %d", lay.node[s], nd->pos);
        cr_assert(y - r >= lay.band_y0[band] && y + r <= lay.band_y0[band] + lay.band_h[band],
                  "node %d outside band %d", lay.node[s], band);
        cr_assert_eq(lay.slot[lay.node[s]], s);
    }
    // bands stack upwards: embeddings lowest, logits highest
    for (int b = 1; b < lay.n_bands; b++) cr_assert_lt(lay.band_y0[b], lay.band_y0[b - 1]);
    for (int p = 1; p < T; p++) cr_assert_gt(lay.col_x0[p], lay.col_x0[p - 1]);
    // the crowded cell wrapped into rows: its band is taller than one row
    cr_assert_gt(lay.band_h[2], 3 * RENDER_PITCH);
    render_layout_free(&lay);
    RenderOptions o;
    render_options_default(&o);
    char *svg = render_mem(&g, &o, NULL);
    Svg sv = parse_svg(svg);
    uint8_t *none = calloc(1, 1);
    check_structure(&g, &sv, on, none);
    free(none), free(on), free(svg);
    svg_free(&sv);
    graph_free(&g);
}

// Is s (n bytes) valid UTF-8?
static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        int k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!k || (k == 2 && c < 0xC2) || i + (size_t)k > n) return 0;
        for (int j = 1; j < k; j++)
            if ((s[i + (size_t)j] & 0xC0) != 0x80) return 0;
        i += (size_t)k;
    }
    return 1;
}

Test(render, text_is_escaped_well_formed_utf8) {
    Graph g;
    synth(&g, 60, 200, 2, 4, 2, 9);
    free(g.token_strs[1]);
    g.token_strs[1] = strdup("<b>&\"'\xff\x01");
    free(g.prompt);
    g.prompt = strdup("a <script>alert(1)</script> & \xc3\x28 prompt");
    free(g.logit_strs[0]);
    g.logit_strs[0] = strdup("x<y");
    free(g.node_labels[0]);
    g.node_labels[0] = strdup("label with ]]> and <tags>");
    RenderOptions o;
    render_options_default(&o);
    size_t n;
    char *svg = render_mem(&g, &o, &n);
    cr_assert(valid_utf8((const unsigned char *)svg, n), "output is not valid UTF-8");
    cr_assert_null(strstr(svg, "<script"), "markup from a label leaked");
    cr_assert_null(strstr(svg, "<b>"));
    cr_assert_null(strstr(svg, "<tags>"));
    cr_assert_not_null(strstr(svg, "&lt;b&gt;&amp;&quot;&#39;\xEF\xBF\xBD\xEF\xBF\xBD"));
    cr_assert_not_null(strstr(svg, "x&lt;y"));
    // every '&' starts one of the five entities
    for (const char *p = strchr(svg, '&'); p; p = strchr(p + 1, '&'))
        cr_assert(!strncmp(p, "&amp;", 5) || !strncmp(p, "&lt;", 4) || !strncmp(p, "&gt;", 4) ||
                  !strncmp(p, "&quot;", 6) || !strncmp(p, "&#39;", 5), "bare & at ...%.20s", p);
    free(svg);
    graph_free(&g);
}

Test(render, html_page_needs_no_network) {
    Graph g;
    synth(&g, 80, 400, 2, 4, 3, 2);
    cr_assert_eq(prune_graph(&g, 0.8, 0.98), CT_OK, "%s", ct_errmsg());
    RenderOptions o;
    render_options_default(&o);
    o.format = RENDER_HTML;
    size_t n;
    char *html = render_mem(&g, &o, &n);
    cr_assert(!strncmp(html, "<!DOCTYPE html>", 15));
    cr_assert(n > 16 && !strcmp(html + n - 15, "</body></html>\n"));
    const char *svg = strstr(html, "<svg ");
    cr_assert_not_null(svg);
    cr_assert_null(strstr(svg + 1, "<svg "), "one picture");
    // the only URL is the SVG namespace name (an identifier, never fetched)
    for (const char *p = strstr(html, "http"); p; p = strstr(p + 1, "http"))
        cr_assert(!strncmp(p, "http://www.w3.org/2000/svg\"", 27), "a URL in the page: %.40s", p);
    cr_assert_null(strstr(html, "<script"));
    cr_assert_null(strstr(html, "src="));
    Svg s = parse_svg(html);
    check_structure(&g, &s, g.node_keep, g.sp_keep);
    svg_free(&s);
    free(html);
    graph_free(&g);
}

// Files read back (.ctg, JSON) draw the same picture as the graph in memory.
Test(render, graph_files_read_back_draw_the_same) {
    Graph g, c, j;
    synth(&g, 300, 3000, 3, 6, 4, 13);
    cr_assert_eq(prune_graph(&g, 0.8, 0.98), CT_OK, "%s", ct_errmsg());
    char *dir = tu_mkdtemp("ct_render");
    char *ctg = tu_join(dir, "g.ctg"), *json = tu_join(dir, "g.json"), *svgp = tu_join(dir, "g.svg");
    cr_assert_eq(graph_write_ctg(&g, ctg), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(graph_write_json(&g, json, 0), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(graph_read_ctg(&c, ctg), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(graph_read_json(&j, json), CT_OK, "%s", ct_errmsg());
    RenderOptions o;
    render_options_default(&o);
    char *a = render_mem(&g, &o, NULL), *b = render_mem(&c, &o, NULL);
    cr_assert_str_eq(a, b, "the .ctg read back draws a different picture");
    // the JSON holds the pruned graph only, in its own node order: compare the parsed sets
    Svg sa = parse_svg(a), sj;
    char *jj = render_mem(&j, &o, NULL);
    sj = parse_svg(jj);
    cr_assert_eq(sj.n_nodes, sa.n_nodes);
    cr_assert_eq(sj.n_edges, sa.n_edges);
    // render_graph_file writes the same bytes, atomically
    cr_assert_eq(render_graph_file(&g, &o, svgp), CT_OK, "%s", ct_errmsg());
    size_t n;
    char *disk = tu_read_file(svgp, &n);
    cr_assert_eq(n, strlen(a));
    cr_assert(!memcmp(disk, a, n));
    free(disk), free(a), free(b), free(jj);
    svg_free(&sa), svg_free(&sj);
    graph_free(&g), graph_free(&c), graph_free(&j);
    tu_rmtree(dir);
    free(dir), free(ctg), free(json), free(svgp);
}

// A real attribution graph: stories260K with a random TopK transcoder (4 features per layer
// and position), pruned, drawn and checked.
Test(render, stories260K_graph) {
    char *mp = tu_shared_path("models/stories260K/stories260K.bin");
    char *tp = tu_shared_path("models/stories260K/tok512.bin");
    Model m;
    cr_assert_eq(model_load_llama2c(&m, mp), CT_OK, "%s", ct_errmsg());
    Tokenizer tk;
    cr_assert_eq(tokenizer_load(&tk, tp, m.c.vocab_size), CT_OK, "%s", ct_errmsg());
    int toks[32], T = 0;
    cr_assert_eq(tokenizer_encode(&tk, "Once upon a time, there was a little girl named Lily", 1, 0, toks, 32, &T), CT_OK);
    int L = m.c.n_layers, D = m.c.dim, F = 96;
    Clt clt;
    CltActivation act = {CLT_ACT_TOPK, 4};
    cr_assert_eq(clt_alloc(&clt, L, D, F, CLT_CROSS_LAYER, act, 0), CT_OK, "%s", ct_errmsg());
    TuRng rng;
    tu_rng_seed(&rng, 260);
    for (int l = 0; l < L; l++) {
        CltLayer *ly = &clt.layers[l];
        tu_fill_normal(ly->W_enc, (size_t)F * D, &rng, 0.0f, 1.0f / sqrtf((float)D));
        tu_fill_normal(ly->W_dec, (size_t)F * ly->n_out * D, &rng, 0.0f, 0.5f / sqrtf((float)D));
    }
    Replacement rep;
    cr_assert_eq(replacement_build(&rep, &m, &clt, toks, T, NULL), CT_OK, "%s", ct_errmsg());
    AttribOptions ao;
    attribute_options_default(&ao);
    ao.max_feature_nodes = 150;
    Graph g;
    cr_assert_eq(attribute_graph(&g, &rep, &ao), CT_OK, "%s", ct_errmsg());
    g.token_strs = calloc((size_t)T, sizeof(char *));
    for (int p = 0; p < T; p++) g.token_strs[p] = strdup(p ? tokenizer_decode(&tk, toks[p - 1], toks[p]) : "<s>");
    g.prompt = strdup("Once upon a time, there was a little girl named Lily");
    g.slug = strdup("stories260K");
    cr_assert_eq(prune_graph(&g, 0.8, 0.98), CT_OK, "%s", ct_errmsg());
    cr_assert_gt(g.n_features, 20);
    RenderOptions o;
    render_options_default(&o);
    char *svg = render_mem(&g, &o, NULL);
    Svg s = parse_svg(svg);
    check_structure(&g, &s, g.node_keep, g.sp_keep);
    cr_assert_gt(s.n_edges, 10);
    cr_log_info("stories260K: T %d, %d features, %zu edges; drawn %d nodes, %zu edges", T, g.n_features, g.sp_nnz,
                s.n_nodes, s.n_edges);
    // and the unpruned graph, every nonzero edge
    o.select = RENDER_ALL;
    char *all = render_mem(&g, &o, NULL);
    Svg sa = parse_svg(all);
    uint8_t *on = malloc((size_t)g.n_nodes), *ed = malloc(g.sp_nnz + 1);
    memset(on, 1, (size_t)g.n_nodes);
    for (size_t k = 0; k < g.sp_nnz; k++) ed[k] = g.sp_val[k] != 0.0f && isfinite(g.sp_val[k]);
    check_structure(&g, &sa, on, ed);
    free(on), free(ed), free(all), free(svg);
    svg_free(&s), svg_free(&sa);
    graph_free(&g);
    replacement_free(&rep);
    clt_free(&clt);
    tokenizer_free(&tk);
    model_free(&m);
    free(mp), free(tp);
}
