// cmd_graph.c — `ctrace graph-info`: the summary of a saved attribution graph and its most
// influential nodes; `ctrace graph-diff`: two graphs of one prompt compared.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "engine/graph.h"
#include "engine/graph_diff.h"
#include "engine/graph_io.h"

void help_graph_info(void) {
    printf("usage: ctrace graph-info GRAPH.ctg [--top N]\n\n"
           "Prints a saved attribution graph's summary: prompt, model and transcoder (with xxh3\n"
           "fingerprints), nodes by kind, edges, replacement and completeness scores of the full\n"
           "and the pruned graph; then the N most influential nodes (default 20) with their\n"
           "labels.  Reads the raw binary graph (.ctg); a viewer JSON (.json) works too, with\n"
           "what it holds (the pruned graph).\n");
}

// A label on one line: control characters escaped, at most max bytes.
static void put_label(const char *s, size_t max) {
    if (!s) return;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n < max; p++, n++) {
        if (*p == '\n') fputs("\\n", stdout);
        else if (*p == '\t') fputs("\\t", stdout);
        else if (*p < 0x20 || *p == 0x7f) printf("\\x%02x", *p);
        else putchar(*p);
    }
    if (strlen(s) > max) fputs("...", stdout);
}

static void put_score(double x) {
    if (isnan(x)) printf("%8s", "n/a");
    else printf("%8.4f", x);
}

typedef struct RankIdx {
    float key;
    int idx;
} RankIdx;

static int cmp_rank(const void *a, const void *b) {
    const RankIdx *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? 1 : -1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

int cmd_graph_info(int argc, char **argv) {
    const char *cmd = "graph-info", *path = NULL, *v;
    long top = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--top")) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, "--top", v, 0, 1000000, &top)) return 2;
        } else if (argv[i][0] == '-') {
            return cli_usage(cmd, "unknown option %s", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            return cli_usage(cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!path) return cli_usage(cmd, "missing GRAPH.ctg");
    Graph g;
    int rc = ends_with(path, ".json") ? graph_read_json(&g, path) : graph_read_ctg(&g, path);
    if (rc != CT_OK) return cli_fail(cmd);

    char fp[17];
    printf("graph        %s\n", path);
    printf("slug         %s\n", g.slug ? g.slug : "");
    printf("prompt       \"");
    put_label(g.prompt, 200);
    printf("\" (%d tokens)\n", g.T);
    ct_fingerprint_hex(g.model_fp, fp);
    printf("model        %s  xxh3 %s\n", g.model_path ? g.model_path : "?", fp);
    ct_fingerprint_hex(g.clt_fp, fp);
    printf("transcoder   %s  xxh3 %s\n", g.clt_path ? g.clt_path : "?", fp);
    ct_fingerprint_hex(g.prompt_fp, fp);
    printf("prompt xxh3  %s\n", fp);
    printf("dims         L %d  T %d  D %d  F %d  V %d\n", g.L, g.T, g.D, g.F, g.V);

    int kept[4] = {0, 0, 0, 0};
    if (g.node_keep)
        for (int i = 0; i < g.n_nodes; i++) kept[g.nodes[i].kind] += g.node_keep[i];
    printf("nodes        %d: %d features", g.n_nodes, g.n_features);
    if (g.n_active_total > 0) printf(" (of %d active, budget %d)", g.n_active_total, g.max_feature_nodes);
    printf(", %d errors, %d tokens, %d logits\n", g.n_errors, g.n_tokens, g.n_logits);
    printf("edges        %zu nonzero\n", g.sp_nnz);
    if (g.node_keep) {
        printf("pruned       %d nodes (%d features, %d errors, %d tokens, %d logits), %zu edges; "
               "node_threshold %g, edge_threshold %g\n", g.n_kept_nodes, kept[0], kept[1], kept[2],
               kept[3], g.n_kept_edges, (double)g.node_threshold, (double)g.edge_threshold);
    } else {
        printf("pruned       no (keep flags not saved)\n");
    }
    printf("scores         replacement completeness\n");
    printf("  full       ");
    put_score(g.replacement_score);
    printf("    ");
    put_score(g.completeness_score);
    printf("\n  pruned     ");
    put_score(g.pruned_replacement_score);
    printf("    ");
    put_score(g.pruned_completeness_score);
    printf("\n");

    if (top > g.n_nodes) top = g.n_nodes;
    RankIdx *ri = malloc(((size_t)g.n_nodes + 1) * sizeof *ri);
    if (!ri) {
        graph_free(&g);
        ct_error("out of memory");
        return cli_fail(cmd);
    }
    // influence_raw (I) when present; a JSON carries only the rank fraction (smaller = more).
    int have_raw = 0;
    for (int i = 0; i < g.n_nodes; i++) have_raw |= g.nodes[i].influence_raw != 0.0f;
    for (int i = 0; i < g.n_nodes; i++)
        ri[i].key = have_raw ? g.nodes[i].influence_raw : -g.nodes[i].influence, ri[i].idx = i;
    qsort(ri, (size_t)g.n_nodes, sizeof *ri, cmp_rank);
    if (top > 0) {
        printf("\ntop %ld nodes by influence (I = influence on the logits; cum = cumulative rank "
               "fraction)\n", top);
        printf("%4s  %-20s %-7s %5s %4s %10s %8s %10s %s\n", "rank", "node_id", "kind", "layer",
               "pos", "I", "cum", "act", "label");
    }
    for (long r = 0; r < top; r++) {
        int i = ri[r].idx;
        const GraphNode *nd = &g.nodes[i];
        char id[64];
        graph_node_id(&g, i, id, sizeof id);
        char layer[16];
        if (nd->kind == NODE_TOKEN) snprintf(layer, sizeof layer, "E");
        else snprintf(layer, sizeof layer, "%d", nd->kind == NODE_LOGIT ? nd->layer + 1 : nd->layer);
        printf("%4ld  %-20s %-7s %5s %4d %10.4g %8.4f %10.4g ", r + 1, id, graph_kind_name(nd->kind),
               layer, nd->pos, (double)nd->influence_raw, (double)nd->influence,
               (double)nd->activation);
        if (nd->kind == NODE_FEATURE && g.node_labels && g.node_labels[i]) {
            put_label(g.node_labels[i], 60);
        } else if (nd->kind == NODE_TOKEN && g.token_strs && nd->pos < g.T) {
            putchar('"'), put_label(g.token_strs[nd->pos], 40), putchar('"');
        } else if (nd->kind == NODE_LOGIT) {
            int k = i - g.n_features - g.n_errors - g.n_tokens;
            printf("Output \"");
            if (g.logit_strs && g.logit_strs[k]) put_label(g.logit_strs[k], 40);
            else printf("%d", nd->token);
            printf("\" (p=%.3f)", (double)nd->prob);
        }
        putchar('\n');
    }
    free(ri);
    graph_free(&g);
    return 0;
}

// ---- ctrace graph-diff ------------------------------------------------------------------------
void help_graph_diff(void) {
    printf("usage: ctrace graph-diff A.ctg B.ctg [--top K]\n\n"
           "Compares two attribution graphs of the same prompt (e.g. `attribute --dtype q8\n"
           "--clt-dtype q8` against the fp32 graph): nodes matched by identity (feature l/p/f,\n"
           "error l/p, token p, logit id), then the features both hold; the edges in both, in one\n"
           "only, and the Pearson correlation of the edge weights over the union (a missing edge\n"
           "counts as 0) and over the shared edges, for the full graphs and the pruned ones (the\n"
           "edges pruning kept; needs .ctg files); and how many of the top K nodes by influence on\n"
           "the logits (default 20) the two graphs share, among all nodes and among features.\n"
           "Fails when the graphs are of different prompts.\n");
}

static int read_graph(const char *path, Graph *g) {
    return ends_with(path, ".json") ? graph_read_json(g, path) : graph_read_ctg(g, path);
}

int cmd_graph_diff(int argc, char **argv) {
    const char *cmd = "graph-diff", *pa = NULL, *pb = NULL, *v;
    long top = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--top")) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, "--top", v, 1, 1000000, &top)) return 2;
        } else if (argv[i][0] == '-') {
            return cli_usage(cmd, "unknown option %s", argv[i]);
        } else if (!pa) {
            pa = argv[i];
        } else if (!pb) {
            pb = argv[i];
        } else {
            return cli_usage(cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!pb) return cli_usage(cmd, "expected two graphs A.ctg B.ctg");
    Graph a, b;
    if (read_graph(pa, &a) != CT_OK) return cli_fail(cmd);
    if (read_graph(pb, &b) != CT_OK) {
        graph_free(&a);
        return cli_fail(cmd);
    }
    GraphDiff d;
    int rc = graph_diff(&a, &b, (int)top, &d);
    if (rc == CT_OK) {
        printf("a            %s\nb            %s\n", pa, pb);
        graph_diff_print(stdout, &d);
    }
    graph_free(&a);
    graph_free(&b);
    return rc == CT_OK ? 0 : cli_fail(cmd);
}
