// cmd_view.c — looking at graphs: `ctrace render` (static SVG/HTML picture), `ctrace serve`
// (local interactive viewer), `ctrace synth-graph` (random graphs of any size for tests and
// benchmarks).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "engine/graph.h"
#include "engine/graph_io.h"
#include "engine/graph_synth.h"
#include "engine/prune.h"
#include "engine/render.h"
#include "engine/serve.h"

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static int read_graph(const char *path, Graph *g) {
    return ends_with(path, ".json") ? graph_read_json(g, path) : graph_read_ctg(g, path);
}

// ---- render -------------------------------------------------------------------------------------
void help_render(void) {
    printf("usage: ctrace render GRAPH (.json or .ctg) -o OUT.svg|OUT.html [--pruned|--all] [--max-nodes N]\n\n"
           "Draws an attribution graph as a layered picture: x = prompt position (labelled with the\n"
           "prompt's tokens), y = layer, embeddings at the bottom, logits at the top with their\n"
           "probabilities.  Features are circles sized by influence, errors grey squares, embeddings\n"
           "green, logits purple; edges blue (positive) or red (negative), wider and darker with\n"
           "|weight|.  A legend and the graph's scores sit in the header.  OUT.html is a page holding\n"
           "the SVG (no network needed).\n"
           "  --pruned        only the kept nodes and edges (default when the graph has keep flags)\n"
           "  --all           every node and every nonzero edge\n"
           "  --max-nodes N   at most N feature/error nodes, most influential first (tokens and\n"
           "                  logits always drawn)\n");
}

int cmd_render(int argc, char **argv) {
    const char *cmd = "render", *in = NULL, *out = NULL, *v;
    RenderOptions o;
    render_options_default(&o);
    long maxn = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(out = cli_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--pruned")) {
            o.select = RENDER_PRUNED;
        } else if (!strcmp(a, "--all")) {
            o.select = RENDER_ALL;
        } else if (!strcmp(a, "--max-nodes")) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, "--max-nodes", v, 1, 100000000, &maxn)) return 2;
        } else if (a[0] == '-') {
            return cli_usage(cmd, "unknown option %s", a);
        } else if (!in) {
            in = a;
        } else {
            return cli_usage(cmd, "unexpected argument '%s'", a);
        }
    }
    if (!in) return cli_usage(cmd, "missing GRAPH (.json or .ctg)");
    if (!out) return cli_usage(cmd, "missing -o OUT.svg or OUT.html");
    if (ends_with(out, ".html") || ends_with(out, ".htm")) o.format = RENDER_HTML;
    else if (ends_with(out, ".svg")) o.format = RENDER_SVG;
    else return cli_usage(cmd, "-o %s: expected a name ending in .svg or .html", out);
    o.max_nodes = (int)maxn;
    double t0 = ct_now();
    Graph g;
    if (read_graph(in, &g) != CT_OK) return cli_fail(cmd);
    double t1 = ct_now();
    int rc = render_graph_file(&g, &o, out);
    double t2 = ct_now();
    graph_free(&g);
    if (rc != CT_OK) return cli_fail(cmd);
    printf("render: wrote %s (read %.2f s, render %.2f s)\n", out, t1 - t0, t2 - t1);
    return 0;
}

// ---- serve --------------------------------------------------------------------------------------
void help_serve(void) {
    printf("usage: ctrace serve DIR [--port 8041] [--host 127.0.0.1] [--open SLUG]\n\n"
           "Serves the graphs listed in DIR/graph-metadata.json (each DIR/<slug>.json) to a browser:\n"
           "an index page, and per graph an interactive viewer (pan, zoom, node details, top inputs\n"
           "and outputs, a pruning slider, pins and supernodes saved back into the graph's qParams).\n"
           "Everything is served by ctrace itself; nothing is fetched from the network.  Loopback\n"
           "only unless --host says otherwise.  --port 0 picks a free port.  Ctrl-C stops it.\n"
           "  --open SLUG    print (and, when $BROWSER is set, open) that graph's page\n");
}

int cmd_serve(int argc, char **argv) {
    const char *cmd = "serve", *dir = NULL, *host = "127.0.0.1", *open_slug = NULL, *v;
    long port = 8041;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--port")) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, "--port", v, 0, 65535, &port)) return 2;
        } else if (!strcmp(a, "--host")) {
            if (!(host = cli_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--open")) {
            if (!(open_slug = cli_value(cmd, argc, argv, &i))) return 2;
        } else if (a[0] == '-') {
            return cli_usage(cmd, "unknown option %s", a);
        } else if (!dir) {
            dir = a;
        } else {
            return cli_usage(cmd, "unexpected argument '%s'", a);
        }
    }
    if (!dir) return cli_usage(cmd, "missing DIR (the directory holding graph-metadata.json)");
    if (serve_run(dir, host, (int)port, open_slug) != CT_OK) return cli_fail(cmd);
    return 0;
}

// ---- synth-graph --------------------------------------------------------------------------------
void help_synth_graph(void) {
    printf("usage: ctrace synth-graph [--nodes N] [--links M] [--layers L] [--tokens T] [--logits K]\n"
           "                          [--seed S] -o GRAPH.json [--raw GRAPH.ctg] [--pruned-json]\n\n"
           "Writes a random attribution graph with the structure of a real one (causal edges,\n"
           "heavy-tailed weights, decreasing logit probabilities), pruned and scored, for tests and\n"
           "benchmarks of render and serve.  Defaults: 10000 nodes, 1000000 links, L 6, T 12, K 8,\n"
           "seed 1.  The JSON holds every node and link (--pruned-json: the pruned graph only) and\n"
           "graph-metadata.json next to it is updated.\n");
}

int cmd_synth_graph(int argc, char **argv) {
    const char *cmd = "synth-graph", *out = NULL, *raw = NULL, *v;
    GraphSynthSpec s;
    graph_synth_default(&s);
    long n = s.n_nodes, L = s.L, T = s.T, K = s.K;
    uint64_t links = s.n_links, seed = s.seed;
    int pruned_json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--nodes")) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 4, 50000000, &n)) return 2;
        } else if (!strcmp(a, "--links")) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_u64(cmd, a, v, &links)) return 2;
        } else if (!strcmp(a, "--layers")) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1000, &L)) return 2;
        } else if (!strcmp(a, "--tokens")) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 100000, &T)) return 2;
        } else if (!strcmp(a, "--logits")) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1000, &K)) return 2;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_u64(cmd, a, v, &seed)) return 2;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(out = cli_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--raw")) {
            if (!(raw = cli_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--pruned-json")) {
            pruned_json = 1;
        } else {
            return cli_usage(cmd, "unknown option %s", a);
        }
    }
    if (!out) return cli_usage(cmd, "missing -o GRAPH.json");
    if (!ends_with(out, ".json")) return cli_usage(cmd, "-o %s: expected a name ending in .json", out);
    s.n_nodes = (int)n, s.n_links = (size_t)links, s.L = (int)L, s.T = (int)T, s.K = (int)K, s.seed = seed;
    Graph g;
    if (graph_synth(&g, &s) != CT_OK) return cli_fail(cmd);
    // The slug names the file: DIR/<slug>.json is what `ctrace serve` looks for.
    {
        const char *b = strrchr(out, '/');
        b = b ? b + 1 : out;
        free(g.slug);
        g.slug = strndup(b, strlen(b) - 5);
    }
    char *dir = strdup(out), *slash = dir ? strrchr(dir, '/') : NULL;
    int rc = 1;
    if (!dir || !g.slug) {
        ct_error("out of memory");
        goto done;
    }
    if (slash) *slash = 0;
    else strcpy(dir, ".");
    if (prune_graph(&g, 0.8, 0.98) != CT_OK) goto done;
    if (graph_write_json(&g, out, pruned_json ? 0 : GRAPH_JSON_FULL) != CT_OK) goto done;
    if (graph_update_index(dir, &g, pruned_json ? 0 : GRAPH_JSON_FULL) != CT_OK) goto done;
    if (raw && graph_write_ctg(&g, raw) != CT_OK) goto done;
    printf("synth-graph: %d nodes, %zu links (pruned: %d nodes, %zu links) -> %s%s%s\n", g.n_nodes, g.sp_nnz,
           g.n_kept_nodes, g.n_kept_edges, out, raw ? ", " : "", raw ? raw : "");
    rc = 0;
done:
    if (rc) cli_fail(cmd);
    free(dir);
    graph_free(&g);
    return rc;
}
