// cmd_attribute.c — `ctrace attribute`: model + transcoder + prompt -> attribution graph.
//
//   replacement model (engine/replacement.c) -> rows by backward sweeps (engine/attribute.c)
//   -> influence, pruning, scores (engine/prune.c) -> viewer JSON, graph-metadata.json index,
//   raw .ctg (engine/graph_io.c)
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "engine/attribute.h"
#include "engine/clt.h"
#include "engine/graph_io.h"
#include "engine/prune.h"
#include "engine/quantize.h"
#include "engine/replacement.h"
#include "engine/serve.h"
#include "engine/tokenizer.h"
#include "simd/simd.h"

void help_attribute(void) {
    printf("usage: ctrace attribute MODEL -z TOKENIZER --clt DIR (-p PROMPT | --tokens IDS) -o GRAPH.json\n"
           "                         [--raw GRAPH.ctg] [--slug NAME] [--max-feature-nodes M] [--batch B]\n"
           "                         [--node-threshold 0.8] [--edge-threshold 0.98] [--max-logits 10]\n"
           "                         [--logit-prob 0.95] [--target TOKEN]... | [--target-diff A,B]\n"
           "                         [--fp64] [--threads N] [--dtype f32|q8|q8a8|bf16|bf16dot] [--clt-dtype f32|q8|q8a8]\n"
           "                         [--numa MODE] [--serve]\n\n"
           "Builds the attribution graph of a prompt (METHOD.md §2-4): the local replacement model\n"
           "(transcoder features and error nodes, attention and norms frozen), every edge by batched\n"
           "backward sweeps, pruning and scores; writes the viewer JSON (pruned graph), updates\n"
           "graph-metadata.json next to it, and optionally the raw binary graph with every edge.\n"
           "  --clt DIR              transcoder (CLT or PLT directory, circuit-tracer layout)\n"
           "  -p PROMPT              text, encoded with BOS;  --tokens IDS  comma-separated ids\n"
           "                         (position 0 is treated as BOS: its features and errors are zero)\n"
           "  --max-feature-nodes M  feature budget, most influential first (default 7500)\n"
           "  --batch B              rows per backward sweep (default: 256, fewer for long prompts)\n"
           "  --max-logits K, --logit-prob P   salient logit targets: most probable tokens until\n"
           "                         their cumulative probability reaches P, at most K\n"
           "  --target TOKEN         explicit logit target (an id or a single-token string; repeatable)\n"
           "  --target-diff A,B      one target: logit_A - logit_B\n"
           "  --fp64                 sweeps in double precision (slower; edges rounded to fp32)\n"
           "  --threads N            worker threads (default: all cores); output identical for any N\n"
           "  --serve                open the result in the local viewer (ctrace serve on the output\n"
           "                         directory, http://127.0.0.1:8041/); Ctrl-C stops it\n"
           "%s%s"
           "  Under q8 the backward sweeps read fp32 copies holding exactly the int8 weights (model\n"
           "  and transcoder), so every edge is exact for the int8 replacement model.\n",
           cli_weight_help(), cli_clt_dtype_help());
}

// ---- small helpers ---------------------------------------------------------------------------
static int dir_writable(const char *path, const char *opt) {
    char *tmp = strdup(path);
    if (!tmp) return ct_error("out of memory");
    const char *dir = dirname(tmp);
    struct stat st;
    int rc = CT_OK;
    if (stat(dir, &st) != 0) rc = ct_error("%s %s: output directory %s: %s", opt, path, dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode)) rc = ct_error("%s %s: %s is not a directory", opt, path, dir);
    else if (access(dir, W_OK) != 0)
        rc = ct_error("%s %s: output directory %s is not writable: %s", opt, path, dir, strerror(errno));
    free(tmp);
    return rc;
}

// A token given as an id ("403") or as text that encodes to exactly one token (" Lily").
static int parse_token(const Tokenizer *tk, int V, const char *s, const char *opt, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s && !*end && !errno) {
        if (v < 0 || v >= V) return ct_error("%s %s: token id outside the vocabulary [0, %d)", opt, s, V);
        *out = (int)v;
        return CT_OK;
    }
    int ids[4], n = 0;
    if (tokenizer_encode(tk, s, 0, 0, ids, 4, &n) != CT_OK || n != 1)
        return ct_error("%s '%s': expected a token id in [0, %d) or text that is one token (it is %d)",
                        opt, s, V, n);
    // run.c's encode adds a dummy-prefix space: " x" is what "x" means at the end of a prompt.
    *out = ids[0];
    return CT_OK;
}


typedef struct Progress {
    int tty;
    double t0, last;
} Progress;

static void progress_cb(void *ctx, size_t done, size_t total) {
    Progress *pr = ctx;
    if (!pr->tty) return;
    double now = ct_now();
    if (done < total && now - pr->last < 0.1) return;
    pr->last = now;
    int w = 30, k = total ? (int)((double)done / (double)total * w) : w;
    fprintf(stderr, "\rattribute [");
    for (int i = 0; i < w; i++) fputc(i < k ? '#' : ' ', stderr);
    fprintf(stderr, "] %zu/%zu rows  %.1f s", done, total, now - pr->t0);
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
}

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

// "out/graph.json" -> "graph"
static char *default_slug(const char *out) {
    char *tmp = strdup(out), *b = basename(tmp);
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".json")) b[n - 5] = 0;
    char *s = strdup(b);
    free(tmp);
    return s;
}

int cmd_attribute(int argc, char **argv) {
    const char *cmd = "attribute", *model_path = NULL, *tok_path = NULL, *clt_path = NULL, *prompt = NULL,
               *ids_str = NULL, *out = NULL, *raw = NULL, *slug = NULL, *diff = NULL, *v;
    const char *targets[64];
    int n_targets = 0, fp64 = 0, serve = 0;
    long max_nodes = 7500, batch = 0, max_logits = 10, threads = 0;
    double node_thr = 0.8, edge_thr = 0.98, logit_prob = 0.95;
    CliWeightOpts wopt = {.f32_views = 1};   // the sweeps read fp32 weights: show the int8 values
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int wo = cli_weight_opt(cmd, argc, argv, &i, &wopt);
        if (wo < 0) return 2;
        if (wo > 0) continue;
        if (!strcmp(a, "-z") || !strcmp(a, "--tokenizer")) { if (!(tok_path = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--clt")) { if (!(clt_path = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { if (!(prompt = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--tokens")) { if (!(ids_str = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) { if (!(out = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--raw")) { if (!(raw = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--serve")) serve = 1;
        else if (!strcmp(a, "--slug")) { if (!(slug = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--max-feature-nodes")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 0, INT_MAX, &max_nodes)) return 2; }
        else if (!strcmp(a, "--batch")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1 << 16, &batch)) return 2; }
        else if (!strcmp(a, "--node-threshold")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_float(cmd, a, v, 0, 1, &node_thr)) return 2; }
        else if (!strcmp(a, "--edge-threshold")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_float(cmd, a, v, 0, 1, &edge_thr)) return 2; }
        else if (!strcmp(a, "--max-logits")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1 << 20, &max_logits)) return 2; }
        else if (!strcmp(a, "--logit-prob")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_float(cmd, a, v, 1e-9, 1, &logit_prob)) return 2; }
        else if (!strcmp(a, "--target")) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
            if (n_targets == 64) return cli_usage(cmd, "at most 64 --target tokens");
            targets[n_targets++] = v;
        }
        else if (!strcmp(a, "--target-diff")) { if (!(diff = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--fp64")) fp64 = 1;
        else if (!strcmp(a, "--threads")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 0, 4096, &threads)) return 2; }
        else if (a[0] == '-' && a[1]) return cli_usage(cmd, "unknown option %s", a);
        else if (!model_path) model_path = a;
        else return cli_usage(cmd, "unexpected argument '%s'", a);
    }
    if (serve && slug && out) {
        // The viewer finds a graph as DIR/<slug>.json.
        char *base = default_slug(out);
        int same = !strcmp(base, slug);
        free(base);
        if (!same) return cli_usage(cmd, "--serve: the viewer finds a graph as DIR/<slug>.json, so -o must be named %s.json", slug);
    }
    if (!model_path) return cli_usage(cmd, "missing MODEL");
    if (!tok_path && !model_path_is_hf(model_path)) return cli_usage(cmd, "missing -z TOKENIZER");
    if (!clt_path) return cli_usage(cmd, "missing --clt DIR (the transcoder)");
    if (!out) return cli_usage(cmd, "missing -o GRAPH.json");
    if (!prompt == !ids_str) return cli_usage(cmd, "give exactly one of -p PROMPT and --tokens IDS");
    if (prompt && !*prompt) return cli_usage(cmd, "-p: the prompt is empty");
    if (max_nodes < 1) return cli_usage(cmd, "--max-feature-nodes: the feature budget must be >= 1, got %ld", max_nodes);
    if (diff && n_targets) return cli_usage(cmd, "--target and --target-diff exclude each other");
    if (dir_writable(out, "-o") != CT_OK || (raw && dir_writable(raw, "--raw") != CT_OK)) return cli_fail(cmd);

    double t0 = ct_now();
    Model m;
    Tokenizer tk;
    Clt clt;
    Replacement rep;
    Graph g;
    memset(&rep, 0, sizeof rep);
    memset(&g, 0, sizeof g);
    memset(&clt, 0, sizeof clt);
    int rc = 1, have_tk = 0, *ids = NULL, T = 0, tgt_ids[64];
    ThreadPool *pool = NULL;
    char *outdir = NULL;
    uint64_t clt_fp = 0;
    if (model_open(&m, model_path) != CT_OK) return cli_fail(cmd);
    if (tokenizer_open(&tk, tok_path, model_path, m.c.vocab_size) != CT_OK) goto done;
    have_tk = 1;
    // Threads (pinned per --numa) and the model's weights (--dtype) first.
    if (!(pool = pool_create((int)threads))) goto done;
    if ((rc = cli_apply_model_opts(cmd, &wopt, &m, pool))) goto done_usage;
    rc = 1;
    if (clt_load(&clt, clt_path, cli_clt_load_flags(&wopt)) != CT_OK) goto done;
    if (clt_check_model(&clt, m.c.n_layers, m.c.dim) != CT_OK) {
        ct_error_ctx("transcoder %s does not fit model %s", clt_path, model_path);
        goto done;
    }
    clt_fp = clt_fingerprint(&clt);   // of the files, before --clt-dtype rewrites anything
    if ((rc = cli_apply_clt_opts(cmd, &wopt, &clt, pool))) goto done_usage;
    rc = 1;
    int S = m.c.seq_len, V = m.c.vocab_size;
    if (!(ids = malloc(sizeof(int) * ((size_t)S + 1)))) { ct_error("out of memory"); goto done; }
    if (prompt) {
        int need = 0;
        if (tokenizer_encode(&tk, prompt, 1, 0, ids, S, &need) != CT_OK) {
            ct_error("-p: the prompt is %d tokens (with BOS), longer than the model's context (seq_len %d)",
                     need, S);
            goto done;
        }
        T = need;
    } else {
        if (tokens_parse_list(ids_str, V, ids, S + 1, &T) != CT_OK) { ct_error_ctx("--tokens"); goto done; }
        if (T > S) {
            ct_error("--tokens: more than %d tokens, longer than the model's context (seq_len %d)", S, S);
            goto done;
        }
        int bos = tokenizer_bos_id(&tk);
        if (ids[0] != bos)
            fprintf(stderr, "ctrace attribute: note: --tokens does not start with the tokenizer's BOS (%d); "
                            "position 0 is still treated as BOS (its features and errors are zeroed)\n", bos);
    }
    AttribOptions o;
    attribute_options_default(&o);
    o.max_feature_nodes = (int)max_nodes;
    o.batch = (int)batch;
    o.max_logits = (int)max_logits;
    o.logit_prob = logit_prob;
    o.fp64 = fp64;
    for (int k = 0; k < n_targets; k++)
        if (parse_token(&tk, V, targets[k], "--target", &tgt_ids[k]) != CT_OK) goto done;
    if (n_targets) o.target_tokens = tgt_ids, o.n_target_tokens = n_targets;
    if (diff) {
        char *d = strdup(diff), *comma = d ? strchr(d, ',') : NULL;
        if (!comma) {
            free(d);
            rc = cli_usage(cmd, "--target-diff: expected A,B (two tokens), got '%s'", diff);
            goto done_usage;
        }
        *comma = 0;
        int ok = parse_token(&tk, V, d, "--target-diff", &o.diff_a) == CT_OK &&
                 parse_token(&tk, V, comma + 1, "--target-diff", &o.diff_b) == CT_OK;
        free(d);
        if (!ok) goto done;
    }

    // 1. local replacement model, 2. rows, 3. prune and score
    if (replacement_build(&rep, &m, &clt, ids, T, pool) != CT_OK) goto done;
    Progress pr = {isatty(2), ct_now(), 0};
    o.pool = pool;
    o.progress = progress_cb;
    o.progress_ctx = &pr;
    double ta = ct_now();
    if (attribute_graph(&g, &rep, &o) != CT_OK) goto done;
    double t_rows = ct_now() - ta;
    g.prompt = xstrdup(prompt ? prompt : "");
    g.slug = slug ? strdup(slug) : default_slug(out);
    g.model_path = xstrdup(model_path);
    g.clt_path = xstrdup(clt_path);
    g.model_fp = m.fingerprint;
    g.clt_fp = clt_fp;
    g.prompt_fp = ct_hash64(ids, (size_t)T * sizeof(int));
    g.token_strs = calloc((size_t)T, sizeof(char *));
    g.logit_strs = calloc((size_t)g.n_logits, sizeof(char *));
    if (!g.prompt || !g.slug || !g.model_path || !g.clt_path || !g.token_strs || !g.logit_strs) {
        ct_error("out of memory");
        goto done;
    }
    for (int p = 0; p < T; p++) {
        const char *piece = tokenizer_decode(&tk, p ? ids[p - 1] : -1, ids[p]);
        g.token_strs[p] = strdup(piece ? piece : "");
    }
    for (int k = 0; k < g.n_logits; k++) {
        const GraphNode *nd = &g.nodes[g.n_features + g.n_errors + g.n_tokens + k];
        const char *a = tokenizer_decode(&tk, -1, nd->token);
        if (diff) {
            const char *b = tokenizer_decode(&tk, -1, o.diff_b);
            size_t n = strlen(a ? a : "") + strlen(b ? b : "") + 4;
            if ((g.logit_strs[k] = malloc(n))) snprintf(g.logit_strs[k], n, "%s - %s", a ? a : "", b ? b : "");
        } else {
            g.logit_strs[k] = strdup(a ? a : "");
        }
    }
    double tp = ct_now();
    if (prune_graph(&g, node_thr, edge_thr) != CT_OK) goto done;
    double t_prune = ct_now() - tp;

    // 4. files: JSON (pruned), index, raw graph (every edge)
    if (graph_write_json(&g, out, 0) != CT_OK) goto done;
    {
        char *tmp = strdup(out);
        outdir = tmp ? strdup(dirname(tmp)) : NULL;
        free(tmp);
    }
    if (!outdir || graph_update_index(outdir, &g, 0) != CT_OK) goto done;
    if (raw && graph_write_ctg(&g, raw) != CT_OK) goto done;

    size_t nnz = g.sp_nnz;
    printf("attribute: %d tokens, %d active features -> %d feature nodes (budget %ld), %d errors, %d tokens, "
           "%d logits\n", T, rep.n_active, g.n_features, max_nodes, g.n_errors, g.n_tokens, g.n_logits);
    printf("  edges %zu nonzero; pruned: %d nodes, %zu edges (node %.3g, edge %.3g)\n", nnz, g.n_kept_nodes,
           g.n_kept_edges, node_thr, edge_thr);
    printf("  scores: replacement %.4f, completeness %.4f (pruned: %.4f, %.4f)\n", g.replacement_score,
           g.completeness_score, g.pruned_replacement_score, g.pruned_completeness_score);
    printf("  time %.2f s (rows %.2f s, prune %.2f s), %s, %d threads, %s sweeps, model %s, transcoder %s, "
           "peak RSS %.1f MiB\n", ct_now() - t0, t_rows, t_prune, simd_kernels()->name, pool_size(pool),
           fp64 ? "fp64" : "fp32", ct_dtype_name(model_dtype(&m)), ct_dtype_name(clt_dtype(&clt)),
           (double)ct_peak_rss() / (1 << 20));
    printf("  wrote %s%s%s and %s/graph-metadata.json\n", out, raw ? ", " : "", raw ? raw : "", outdir);
    if (serve && serve_run(outdir, "127.0.0.1", 8041, g.slug) != CT_OK) goto done;
    rc = 0;
done:
    if (rc) cli_fail(cmd);
done_usage:
    free(outdir);
    graph_free(&g);
    replacement_free(&rep);
    pool_destroy(pool);
    free(ids);
    clt_free(&clt);
    if (have_tk) tokenizer_free(&tk);
    model_free(&m);
    return rc;
}
