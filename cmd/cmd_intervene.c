// cmd_intervene.c — `ctrace intervene`, `ctrace steer`, `ctrace validate`: set or scale
// transcoder features and watch the model (engine/intervene.h has the semantics).
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "engine/clt.h"
#include "engine/graph.h"
#include "engine/graph_io.h"
#include "engine/intervene.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

#define POS_HELP \
    "Intervention syntax: --set LAYER:POS:FEATURE=VALUE holds the feature at VALUE; --scale\n" \
    "LAYER:POS:FEATURE=FACTOR multiplies its current activation.  POS is one position P, a range\n" \
    "P..Q, an open range P.. (P and every later position, generated ones included), or * / all\n" \
    "(every position but BOS, i.e. 1..).  Each option may repeat; a feature may be named once\n" \
    "per position.  The change (value - current activation) times the feature's decoders is\n" \
    "added to the MLP outputs it writes (layers l..L-1 for a CLT, l for a PLT).\n"

// Weight options of the three commands (cmd_quantize.c); under q8 the fp32 code (decoder rows
// added by interventions, the graph's predictions) reads exactly the int8 values.
#define WEIGHT_USAGE "         [--dtype f32|q8|q8a8|bf16|bf16dot] [--clt-dtype f32|q8|q8a8] [--numa MODE]\n"

void help_intervene(void) {
    printf("usage: ctrace intervene MODEL -z TOKENIZER --clt DIR (-p PROMPT | --tokens IDS)\n"
           "         --set L:P:F=VALUE ... [--scale L:P:F=FACTOR ...] [--mode constrained|iterative|open]\n"
           "         [--layers A..B] [--top K] [--changes N] [--probe L:P:F ...] [--json OUT]\n"
           "         [--threads N]\n" WEIGHT_USAGE "\n"
           "Runs the prompt clean and with the intervention; prints the top-K next tokens (at the\n"
           "last position) with probabilities before and after, and the largest changes in feature\n"
           "activations (every feature re-encoded from the intervened run's resid_mid).\n\n" POS_HELP
           "\nModes (METHOD §5):\n"
           "  constrained  attention patterns, norm factors and MLP outputs of layers A..B frozen at\n"
           "               the clean run: pure direct effects (the graph's edges); current activation\n"
           "               = the clean one.  The default.\n"
           "  iterative    attention of layers A..B frozen; the real MLPs respond; the feature is held\n"
           "               at its value, so delta = value - its activation re-encoded in this run.\n"
           "  open         nothing frozen (as iterative, attention patterns move too).\n"
           "  --layers A..B  the frozen layer range (default every layer; not for open mode)\n"
           "  --top K      next tokens to list (default 10)\n"
           "  --changes N  feature changes to list (default 20)\n"
           "  --probe L:P:F  also report this feature's pre-activation and activation before/after\n"
           "  --json OUT   write everything (full last-position logits before/after included)\n"
           "  -z           needed with -p; with --tokens it only labels tokens\n"
           "%s%s", cli_weight_help(), cli_clt_dtype_help());
}

void help_steer(void) {
    printf("usage: ctrace steer MODEL -z TOKENIZER --clt DIR (-p PROMPT | --tokens IDS)\n"
           "         --set L:P:F=VALUE ... [--scale L:P:F=FACTOR ...] [-n N] [-t TEMP] [--topp P]\n"
           "         [-s SEED] [--json OUT] [--threads N]\n" WEIGHT_USAGE "\n"
           "Generates N new tokens (default 64; prompt + N <= seq_len) twice with the same sampler\n"
           "seed: unsteered, and steered with the intervention re-applied at every position it\n"
           "covers, new positions included (open mode: nothing frozen, KV cache as in generate).\n"
           "Prints the two texts one above the other; generation stops at BOS.\n\n" POS_HELP
           "Steering every generated token: use POS * (or P.. from a chosen position).\n"
           "  -t TEMP  temperature, 0 = greedy (default 1.0);  --topp P (default 0.9);  -s SEED (42)\n"
           "%s%s", cli_weight_help(), cli_clt_dtype_help());
}

void help_validate(void) {
    printf("usage: ctrace validate GRAPH.ctg MODEL --clt DIR [-z TOKENIZER] [--top N] [--pruned]\n"
           "         [--json OUT] [--threads N]\n" WEIGHT_USAGE "\n"
           "Tests an attribution graph against the real model.  For the N most influential feature\n"
           "nodes (default 10; influence on the logits, full graph), ablates each (set to 0) and\n"
           "doubles each (scale 2), and measures the change of every logit target (demeaned: logit\n"
           "- mean logit, last position) and of every downstream graph feature's pre-activation\n"
           "(later layer, same or later position, row computed), in two modes over every layer:\n"
           "  constrained  measured vs the direct prediction  A[t,s] / a_s * delta  (must agree to\n"
           "               fp32 rounding: correlations 1)\n"
           "  iterative    measured vs the graph's total effect: path sums through graph features\n"
           "               (I - E)^-1 with E = A / a_source, errors and non-graph features fixed\n"
           "Reports Pearson, Spearman, cosine, sign agreement and max |error| per node and pooled,\n"
           "as a table and (--json) with every target's measured and predicted change.\n"
           "  --pruned  only kept nodes and kept edges (the graph a viewer shows)\n"
           "%s%s"
           "  A graph attributed under q8 is validated with the same --dtype / --clt-dtype; constrained\n"
           "  correlations are then ~0.99, not 1 (each frozen run quantizes its activations again).\n",
           cli_weight_help(), cli_clt_dtype_help());
}

// ---- shared option handling ------------------------------------------------------------------------
typedef struct IvArgs {
    const char *model, *tok, *clt, *prompt, *tokens, *json, *mode, *layers;
    const char *graph;                 // validate
    long threads, top, changes, n_new, val_top;
    double temp, topp;
    uint64_t seed;
    int pruned;
    Intervention iv;
    char **probes;
    int n_probes;
    CliWeightOpts w;                   // --dtype, --clt-dtype, --numa (f32_views on)
} IvArgs;

// Parse options shared by the three commands; returns 0, or the usage exit code 2.
static int parse_args(const char *cmd, int argc, char **argv, IvArgs *a) {
    a->w.f32_views = 1;   // interventions and the graph's predictions read fp32 weights
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v;
        IvSpec sp;
        int wo = cli_weight_opt(cmd, argc, argv, &i, &a->w);
        if (wo < 0) return 2;
        if (wo > 0) continue;
        if (!strcmp(o, "-z") || !strcmp(o, "--tokenizer")) { if (!(a->tok = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(o, "--clt")) { if (!(a->clt = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(o, "-p") || !strcmp(o, "--prompt")) { if (!(a->prompt = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(o, "--tokens")) { if (!(a->tokens = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(o, "--json")) { if (!(a->json = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(o, "--mode") && strcmp(cmd, "intervene") == 0) { if (!(a->mode = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(o, "--layers") && strcmp(cmd, "intervene") == 0) { if (!(a->layers = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(o, "--threads")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, o, v, 0, 4096, &a->threads)) return 2; }
        else if (!strcmp(o, "--top")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, o, v, 1, 1 << 20, &a->top)) return 2; }
        else if (!strcmp(o, "--changes")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, o, v, 0, 1 << 20, &a->changes)) return 2; }
        else if (!strcmp(o, "-n") || !strcmp(o, "--steps")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, o, v, 0, 1 << 30, &a->n_new)) return 2; }
        else if (!strcmp(o, "-t") || !strcmp(o, "--temperature")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_float(cmd, o, v, 0, 1e6, &a->temp)) return 2; }
        else if (!strcmp(o, "--topp")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_float(cmd, o, v, 0, 1, &a->topp)) return 2; }
        else if (!strcmp(o, "-s") || !strcmp(o, "--seed")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_u64(cmd, o, v, &a->seed)) return 2; }
        else if (!strcmp(o, "--pruned")) a->pruned = 1;
        else if (!strcmp(o, "--probe")) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
            char **p = realloc(a->probes, (size_t)(a->n_probes + 1) * sizeof *p);
            if (!p) return cli_usage(cmd, "out of memory");
            a->probes = p;
            a->probes[a->n_probes++] = (char *)v;
        } else if (!strcmp(o, "--set") || !strcmp(o, "--scale")) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
            if (iv_parse_spec(v, !strcmp(o, "--set") ? IV_SET : IV_SCALE, &sp) != CT_OK)
                return cli_usage(cmd, "%s: %s", o, ct_errmsg());
            if (intervention_add(&a->iv, &sp) != CT_OK) return cli_usage(cmd, "%s", ct_errmsg());
        } else if (o[0] == '-' && o[1]) return cli_usage(cmd, "unknown option %s", o);
        else if (!strcmp(cmd, "validate") && !a->graph) a->graph = o;
        else if (!a->model) a->model = o;
        else return cli_usage(cmd, "unexpected argument '%s'", o);
    }
    return 0;
}

static void args_free(IvArgs *a) {
    intervention_free(&a->iv);
    free(a->probes);
}

// Loaded inputs.
typedef struct IvInputs {
    Model m;
    Tokenizer tok;
    Clt clt;
    int have_m, have_tok, have_clt;
    int *ids;
    int n;
    ThreadPool *pool;
} IvInputs;

static void inputs_free(IvInputs *in) {
    pool_destroy(in->pool);
    free(in->ids);
    if (in->have_clt) clt_free(&in->clt);
    if (in->have_tok) tokenizer_free(&in->tok);
    if (in->have_m) model_free(&in->m);
    memset(in, 0, sizeof *in);
}

// Model, pool, --dtype, tokenizer (when given), transcoder, --clt-dtype, prompt ids (when
// need_prompt).  Returns 0, or the exit code after printing the error.
static int load_inputs(const char *cmd, const IvArgs *a, IvInputs *in, int need_prompt) {
    memset(in, 0, sizeof *in);
    if (model_open(&in->m, a->model) != CT_OK) return cli_fail(cmd);
    in->have_m = 1;
    // Threads (pinned per --numa) and the model's weights before anything is computed.
    if (!(in->pool = pool_create((int)a->threads))) return cli_fail(cmd);
    int rc = cli_apply_model_opts(cmd, &a->w, &in->m, in->pool);
    if (rc) return rc;
    if (a->tok || model_path_is_hf(a->model)) {
        if (tokenizer_open(&in->tok, a->tok, a->model, in->m.c.vocab_size) != CT_OK) return cli_fail(cmd);
        in->have_tok = 1;
    }
    if (clt_load(&in->clt, a->clt, cli_clt_load_flags(&a->w)) != CT_OK) {
        ct_error_ctx("--clt %s", a->clt);
        return cli_fail(cmd);
    }
    in->have_clt = 1;
    if (clt_check_model(&in->clt, in->m.c.n_layers, in->m.c.dim) != CT_OK) return cli_fail(cmd);
    if ((rc = cli_apply_clt_opts(cmd, &a->w, &in->clt, in->pool))) return rc;
    if (need_prompt) {
        int T = in->m.c.seq_len;
        in->ids = malloc(sizeof(int) * ((size_t)T + 1));
        if (!in->ids) {
            ct_error("out of memory");
            return cli_fail(cmd);
        }
        if (a->tokens) {
            if (tokens_parse_list(a->tokens, in->m.c.vocab_size, in->ids, T + 1, &in->n) != CT_OK) {
                ct_error_ctx("--tokens");
                return cli_fail(cmd);
            }
            if (in->n > T) {
                ct_error("--tokens: more than %d tokens, longer than the model's context", T);
                return cli_fail(cmd);
            }
        } else if (tokenizer_encode(&in->tok, a->prompt, 1, 0, in->ids, T, &in->n) != CT_OK) {
            ct_error_ctx("-p: the prompt does not fit the model's context (seq_len %d tokens)", T);
            return cli_fail(cmd);
        }
        if (in->n < 1) {
            ct_error("empty prompt");
            return cli_fail(cmd);
        }
    }
    return 0;
}

// A printable label of a token id: the stored piece, quoted, escapes for control bytes.
static const char *tok_label(const IvInputs *in, int id, char *buf, size_t n) {
    const char *piece = in->have_tok ? tokenizer_piece(&in->tok, id) : NULL;
    if (!piece) {
        snprintf(buf, n, "#%d", id);
        return buf;
    }
    size_t k = 0;
    buf[k++] = '"';
    for (const unsigned char *p = (const unsigned char *)piece; *p && k + 6 < n; p++) {
        if (*p == '\n') buf[k++] = '\\', buf[k++] = 'n';
        else if (*p == '"') buf[k++] = '\\', buf[k++] = '"';
        else if (*p < 0x20) k += (size_t)snprintf(buf + k, n - k, "\\x%02x", *p);
        else buf[k++] = (char)*p;
    }
    buf[k++] = '"';
    buf[k] = 0;
    return buf;
}

// JSON helpers: NaN/Inf become null (JSON has neither); strings with invalid UTF-8 -> null.
static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }
static json_t *jtok_str(const IvInputs *in, int id) {
    const char *piece = in->have_tok ? tokenizer_piece(&in->tok, id) : NULL;
    json_t *s = piece ? json_string(piece) : NULL;
    return s ? s : json_null();
}
static json_t *jints(const int *x, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(x[i]));
    return a;
}
static json_t *jfloats(const float *x, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, jnum(x[i]));
    return a;
}
static json_t *jdoubles(const double *x, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, jnum(x[i]));
    return a;
}

static int write_json(json_t *root, const char *path) {
    AtomicFile af;
    if (ct_atomic_open(&af, path) != CT_OK) return CT_ERR;
    if (json_dumpf(root, af.f, JSON_INDENT(1) | JSON_REAL_PRECISION(9)) != 0 || fputc('\n', af.f) == EOF) {
        ct_atomic_abort(&af);
        return ct_error("%s: write failed", path);
    }
    return ct_atomic_commit(&af);
}

static json_t *jspec(const IvSpec *s) {
    json_t *o = json_object();
    json_object_set_new(o, "spec", json_string(s->text));
    json_object_set_new(o, "kind", json_string(s->kind == IV_SET ? "set" : "scale"));
    json_object_set_new(o, "layer", json_integer(s->layer));
    json_object_set_new(o, "pos_lo", json_integer(s->pos_lo));
    json_object_set_new(o, "pos_hi", s->pos_hi == IV_POS_END ? json_null() : json_integer(s->pos_hi));
    json_object_set_new(o, "feature", json_integer(s->feature));
    json_object_set_new(o, "value", jnum(s->value));
    return o;
}

static json_t *jchange(const IvFeatureChange *c) {
    json_t *o = json_object();
    json_object_set_new(o, "layer", json_integer(c->layer));
    json_object_set_new(o, "pos", json_integer(c->pos));
    json_object_set_new(o, "feature", json_integer(c->feature));
    json_object_set_new(o, "pre_before", jnum(c->pre_before));
    json_object_set_new(o, "pre_after", jnum(c->pre_after));
    json_object_set_new(o, "act_before", jnum(c->act_before));
    json_object_set_new(o, "act_after", jnum(c->act_after));
    return o;
}

static json_t *jtop(const IvInputs *in, const IvTopToken *t, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "token", json_integer(t[i].token));
        json_object_set_new(o, "piece", jtok_str(in, t[i].token));
        json_object_set_new(o, "p_before", jnum(t[i].p_before));
        json_object_set_new(o, "p_after", jnum(t[i].p_after));
        json_object_set_new(o, "logit_before", jnum(t[i].logit_before));
        json_object_set_new(o, "logit_after", jnum(t[i].logit_after));
        json_array_append_new(a, o);
    }
    return a;
}

static void print_top(const IvInputs *in, const char *title, const IvTopToken *t, int n) {
    char b[96];
    printf("%s\n  %-24s %10s %10s %12s %12s\n", title, "token", "p before", "p after", "logit before",
           "logit after");
    for (int i = 0; i < n; i++)
        printf("  %-24s %10.6f %10.6f %12.5f %12.5f\n", tok_label(in, t[i].token, b, sizeof b),
               t[i].p_before, t[i].p_after, (double)t[i].logit_before, (double)t[i].logit_after);
}

static int parse_probe(const char *cmd, const char *s, int *l, int *p, int *f) {
    char tail;
    if (sscanf(s, "%d:%d:%d%c", l, p, f, &tail) != 3)
        return cli_usage(cmd, "--probe '%s': expected LAYER:POS:FEATURE", s);
    return 0;
}

// ---- intervene --------------------------------------------------------------------------------------
int cmd_intervene(int argc, char **argv) {
    const char *cmd = "intervene";
    IvArgs a;
    memset(&a, 0, sizeof a);
    a.top = 10, a.changes = 20;
    intervention_init(&a.iv);
    int rc = parse_args(cmd, argc, argv, &a);
    if (rc) { args_free(&a); return rc; }
    IvMode mode = IV_CONSTRAINED;
    if (!a.model) rc = cli_usage(cmd, "missing MODEL");
    else if (!a.clt) rc = cli_usage(cmd, "missing --clt DIR");
    else if (!a.prompt == !a.tokens) rc = cli_usage(cmd, "give exactly one of -p PROMPT and --tokens IDS");
    else if (a.prompt && !a.tok && !model_path_is_hf(a.model)) rc = cli_usage(cmd, "-p needs -z TOKENIZER");
    else if (a.iv.n == 0) rc = cli_usage(cmd, "nothing to do: give at least one --set or --scale");
    else if (a.mode && iv_parse_mode(a.mode, &mode) != CT_OK) rc = cli_usage(cmd, "--mode: %s", ct_errmsg());
    else if (mode == IV_OPEN && a.layers) rc = cli_usage(cmd, "--layers applies to constrained and iterative modes, not open");
    int pl[64][3];
    if (!rc && a.n_probes > 64) rc = cli_usage(cmd, "at most 64 --probe options");
    for (int i = 0; !rc && i < a.n_probes; i++) rc = parse_probe(cmd, a.probes[i], &pl[i][0], &pl[i][1], &pl[i][2]);
    if (rc) { args_free(&a); return rc; }

    IvInputs in;
    IvContext cx;
    memset(&cx, 0, sizeof cx);
    IvTopToken *tb = NULL, *ta = NULL;
    IvFeatureChange *ch = NULL;
    json_t *root = NULL;
    int lo = 0, hi = 0, n_ch = 0;
    if ((rc = load_inputs(cmd, &a, &in, 1))) goto out;
    rc = 1;
    int L = in.m.c.n_layers, T = in.n;
    hi = L - 1;
    if (a.layers && iv_parse_layers(a.layers, L, &lo, &hi) != CT_OK) {
        rc = cli_usage(cmd, "--layers: %s", ct_errmsg());
        goto out;
    }
    if (intervention_check(&a.iv, &in.clt, T) != CT_OK) goto done;
    if (iv_context_init(&cx, &in.m, &in.clt, in.ids, T, in.pool) != CT_OK) goto done;
    if (iv_run(&cx, &a.iv, mode, lo, hi) != CT_OK) goto done;
    int K = (int)a.top < cx.V ? (int)a.top : cx.V;
    tb = malloc((size_t)K * sizeof *tb), ta = malloc((size_t)K * sizeof *ta);
    ch = malloc((size_t)(a.changes ? a.changes : 1) * sizeof *ch);
    if (!tb || !ta || !ch) { ct_error("out of memory"); goto done; }
    int nb = iv_top_tokens(&cx, T - 1, 0, K, tb), na = iv_top_tokens(&cx, T - 1, 1, K, ta);
    if (nb < 0 || na < 0) goto done;
    if (iv_feature_changes(&cx, &a.iv, (int)a.changes, ch, &n_ch) != CT_OK) goto done;

    // ---- text report
    char b[96];
    printf("prompt      %d tokens:", T);
    for (int p = 0; p < T; p++) printf(" %s", tok_label(&in, in.ids[p], b, sizeof b));
    printf("\nmode        %s", iv_mode_name(mode));
    if (mode == IV_CONSTRAINED) printf(" (attention, norms and MLP outputs of layers %d..%d frozen)", lo, hi);
    else if (mode == IV_ITERATIVE) printf(" (attention of layers %d..%d frozen; real MLPs)", lo, hi);
    else printf(" (nothing frozen)");
    printf("\ninterventions\n  %-20s %4s %12s %12s %12s %12s\n", "spec", "pos", "clean", "current", "held", "delta");
    for (int i = 0; i < cx.n_applied; i++) {
        const IvApplied *ap = &cx.applied[i];
        printf("  %-20s %4d %12.6f %12.6f %12.6f %12.6f\n", a.iv.specs[ap->spec].text, ap->pos,
               (double)ap->clean, (double)ap->current, (double)ap->target, (double)ap->delta);
    }
    printf("\n");
    print_top(&in, "next token, ranked before the intervention", tb, nb);
    print_top(&in, "next token, ranked after the intervention", ta, na);
    printf("\nlargest feature activation changes (re-encoded from resid_mid; intervened features excluded)\n"
           "  %5s %4s %8s %12s %12s %12s %12s\n", "layer", "pos", "feature", "act before", "act after",
           "pre before", "pre after");
    for (int i = 0; i < n_ch; i++)
        printf("  %5d %4d %8d %12.6f %12.6f %12.6f %12.6f\n", ch[i].layer, ch[i].pos, ch[i].feature,
               (double)ch[i].act_before, (double)ch[i].act_after, (double)ch[i].pre_before,
               (double)ch[i].pre_after);
    if (n_ch == 0) printf("  (none)\n");
    IvFeatureChange pr[64];
    for (int i = 0; i < a.n_probes; i++)
        if (iv_feature_probe(&cx, pl[i][0], pl[i][1], pl[i][2], &pr[i]) != CT_OK) goto done;
    if (a.n_probes) {
        printf("\nprobes\n");
        for (int i = 0; i < a.n_probes; i++)
            printf("  %5d %4d %8d %12.6f %12.6f %12.6f %12.6f\n", pr[i].layer, pr[i].pos, pr[i].feature,
                   (double)pr[i].act_before, (double)pr[i].act_after, (double)pr[i].pre_before,
                   (double)pr[i].pre_after);
    }

    // ---- JSON
    if (a.json) {
        root = json_object();
        json_object_set_new(root, "command", json_string("intervene"));
        json_object_set_new(root, "mode", json_string(iv_mode_name(mode)));
        json_t *ly = json_array();
        json_array_append_new(ly, json_integer(lo));
        json_array_append_new(ly, json_integer(hi));
        json_object_set_new(root, "layers", mode == IV_OPEN ? json_null() : ly);
        if (mode == IV_OPEN) json_decref(ly);
        json_object_set_new(root, "tokens", jints(in.ids, T));
        json_object_set_new(root, "position", json_integer(T - 1));
        json_t *sp = json_array();
        for (int i = 0; i < a.iv.n; i++) json_array_append_new(sp, jspec(&a.iv.specs[i]));
        json_object_set_new(root, "interventions", sp);
        json_t *apl = json_array();
        for (int i = 0; i < cx.n_applied; i++) {
            const IvApplied *ap = &cx.applied[i];
            json_t *o = json_object();
            json_object_set_new(o, "spec", json_integer(ap->spec));
            json_object_set_new(o, "pos", json_integer(ap->pos));
            json_object_set_new(o, "clean", jnum(ap->clean));
            json_object_set_new(o, "current", jnum(ap->current));
            json_object_set_new(o, "held", jnum(ap->target));
            json_object_set_new(o, "delta", jnum(ap->delta));
            json_array_append_new(apl, o);
        }
        json_object_set_new(root, "applied", apl);
        size_t V = (size_t)cx.V;
        json_object_set_new(root, "logits_before", jfloats(cx.clean_logits + (size_t)(T - 1) * V, cx.V));
        json_object_set_new(root, "logits_after", jfloats(cx.logits + (size_t)(T - 1) * V, cx.V));
        json_object_set_new(root, "top_before", jtop(&in, tb, nb));
        json_object_set_new(root, "top_after", jtop(&in, ta, na));
        json_t *c = json_array();
        for (int i = 0; i < n_ch; i++) json_array_append_new(c, jchange(&ch[i]));
        json_object_set_new(root, "feature_changes", c);
        json_t *pj = json_array();
        for (int i = 0; i < a.n_probes; i++) json_array_append_new(pj, jchange(&pr[i]));
        json_object_set_new(root, "probes", pj);
        if (write_json(root, a.json) != CT_OK) goto done;
    }
    rc = 0;
done:
    if (rc) cli_fail(cmd);
out:
    json_decref(root);
    free(tb), free(ta), free(ch);
    iv_context_free(&cx);
    inputs_free(&in);
    args_free(&a);
    return rc;
}

// ---- steer ------------------------------------------------------------------------------------------
// Append the decoded text of ids[from..n) (run.c decode, after ids[from-1]) to stdout and buf.
static void emit_text(const IvInputs *in, const int *ids, int n, char **buf) {
    size_t len = 0, cap = 256;
    char *s = malloc(cap);
    if (s) s[0] = 0;
    for (int i = 1; i < n; i++) {
        const char *piece = tokenizer_decode(&in->tok, ids[i - 1], ids[i]);
        if (!piece) continue;
        tokenizer_print_piece(stdout, piece);
        size_t k = strlen(piece);
        if (s && len + k + 1 > cap) {
            while (len + k + 1 > cap) cap *= 2;
            char *t = realloc(s, cap);
            if (!t) { free(s); s = NULL; }
            else s = t;
        }
        if (s) memcpy(s + len, piece, k + 1), len += k;
    }
    printf("\n");
    *buf = s;
}

int cmd_steer(int argc, char **argv) {
    const char *cmd = "steer";
    IvArgs a;
    memset(&a, 0, sizeof a);
    a.n_new = 64, a.temp = 1.0, a.topp = 0.9, a.seed = 42;
    intervention_init(&a.iv);
    int rc = parse_args(cmd, argc, argv, &a);
    if (rc) { args_free(&a); return rc; }
    if (!a.model) rc = cli_usage(cmd, "missing MODEL");
    else if (!a.clt) rc = cli_usage(cmd, "missing --clt DIR");
    else if (!a.tok && !model_path_is_hf(a.model)) rc = cli_usage(cmd, "missing -z TOKENIZER (the texts are printed)");
    else if (!a.prompt == !a.tokens) rc = cli_usage(cmd, "give exactly one of -p PROMPT and --tokens IDS");
    else if (a.iv.n == 0) rc = cli_usage(cmd, "nothing to steer with: give at least one --set or --scale");
    else if (a.seed == 0) rc = cli_usage(cmd, "-s: the seed must be >= 1 (xorshift has no state 0)");
    if (rc) { args_free(&a); return rc; }
    IvInputs in;
    int *t0 = NULL, *t1 = NULL, n0 = 0, n1 = 0;
    char *s0 = NULL, *s1 = NULL;
    Sampler smp;
    memset(&smp, 0, sizeof smp);
    json_t *root = NULL;
    if ((rc = load_inputs(cmd, &a, &in, 1))) goto out;
    rc = 1;
    int seq = in.m.c.seq_len, n_new = (int)a.n_new;
    if (in.n + n_new > seq) {
        fprintf(stderr, "ctrace steer: -n %d with a %d-token prompt exceeds seq_len %d; generating %d\n",
                n_new, in.n, seq, seq - in.n);
        n_new = seq - in.n;
    }
    if (intervention_check(&a.iv, &in.clt, in.n + n_new) != CT_OK) {
        ct_error_ctx("steering covers the prompt (%d tokens) and the %d generated positions", in.n, n_new);
        goto done;
    }
    t0 = malloc((size_t)(in.n + n_new) * sizeof(int));
    t1 = malloc((size_t)(in.n + n_new) * sizeof(int));
    if (!t0 || !t1) { ct_error("out of memory"); goto done; }
    // Same seed for both runs: differences come from the intervention, not the sampler.
    if (sampler_init(&smp, in.m.c.vocab_size, (float)a.temp, (float)a.topp, a.seed) != CT_OK ||
        iv_generate(&in.m, NULL, NULL, in.ids, in.n, n_new, &smp, tokenizer_stop_id(&in.tok), in.pool, t0, &n0, NULL) != CT_OK)
        goto done;
    sampler_free(&smp);
    if (sampler_init(&smp, in.m.c.vocab_size, (float)a.temp, (float)a.topp, a.seed) != CT_OK ||
        iv_generate(&in.m, &in.clt, &a.iv, in.ids, in.n, n_new, &smp, tokenizer_stop_id(&in.tok), in.pool, t1, &n1, NULL) != CT_OK)
        goto done;
    printf("steering (open mode, re-applied at every covered position):");
    for (int i = 0; i < a.iv.n; i++) printf(" %s%s", a.iv.specs[i].kind == IV_SCALE ? "scale " : "set ", a.iv.specs[i].text);
    printf("\n\nunsteered: ");
    emit_text(&in, t0, n0, &s0);
    printf("\nsteered:   ");
    emit_text(&in, t1, n1, &s1);
    if (a.json) {
        root = json_object();
        json_object_set_new(root, "command", json_string("steer"));
        json_object_set_new(root, "prompt_tokens", jints(in.ids, in.n));
        json_t *sp = json_array();
        for (int i = 0; i < a.iv.n; i++) json_array_append_new(sp, jspec(&a.iv.specs[i]));
        json_object_set_new(root, "interventions", sp);
        json_object_set_new(root, "temperature", json_real(a.temp));
        json_object_set_new(root, "topp", json_real(a.topp));
        json_object_set_new(root, "seed", json_integer((json_int_t)a.seed));
        json_t *u = json_object(), *st = json_object();
        json_t *j0 = s0 ? json_string(s0) : NULL, *j1 = s1 ? json_string(s1) : NULL;  // NULL: not UTF-8
        json_object_set_new(u, "tokens", jints(t0, n0));
        json_object_set_new(u, "text", j0 ? j0 : json_null());
        json_object_set_new(st, "tokens", jints(t1, n1));
        json_object_set_new(st, "text", j1 ? j1 : json_null());
        json_object_set_new(root, "unsteered", u);
        json_object_set_new(root, "steered", st);
        if (write_json(root, a.json) != CT_OK) goto done;
    }
    rc = 0;
done:
    if (rc) cli_fail(cmd);
out:
    json_decref(root);
    free(s0), free(s1), free(t0), free(t1);
    sampler_free(&smp);
    inputs_free(&in);
    args_free(&a);
    return rc;
}

// ---- validate ---------------------------------------------------------------------------------------
static const char *MODE_NAMES[2] = {"constrained", "iterative"};
static const char *KIND_NAMES[2] = {"ablate", "double"};

static json_t *jstats(const IvStats *s) {
    json_t *o = json_object();
    json_object_set_new(o, "n", json_integer(s->n));
    json_object_set_new(o, "pearson", jnum(s->pearson));
    json_object_set_new(o, "spearman", jnum(s->spearman));
    json_object_set_new(o, "cosine", jnum(s->cosine));
    json_object_set_new(o, "sign_agreement", jnum(s->sign_agree));
    json_object_set_new(o, "max_abs_error", jnum(s->max_abs_err));
    json_object_set_new(o, "max_abs_predicted", jnum(s->max_abs_pred));
    return o;
}

static void print_stats_row(const char *name, const char *act, int n, const char *mode, const char *kind,
                            const IvStats *s) {
    printf("%-14s %10s %6d  %-11s %-6s %9.6f %9.6f %9.6f %7.4f %10.3g %10.3g\n", name, act, n, mode, kind,
           s->pearson, s->spearman, s->cosine, s->sign_agree, s->max_abs_err, s->max_abs_pred);
}

int cmd_validate(int argc, char **argv) {
    const char *cmd = "validate";
    IvArgs a;
    memset(&a, 0, sizeof a);
    a.top = 10;
    intervention_init(&a.iv);
    int rc = parse_args(cmd, argc, argv, &a);
    if (rc) { args_free(&a); return rc; }
    if (!a.graph) rc = cli_usage(cmd, "missing GRAPH.ctg");
    else if (!a.model) rc = cli_usage(cmd, "missing MODEL");
    else if (!a.clt) rc = cli_usage(cmd, "missing --clt DIR");
    else if (a.prompt || a.tokens) rc = cli_usage(cmd, "the prompt comes from the graph; drop -p/--tokens");
    else if (a.iv.n) rc = cli_usage(cmd, "validate chooses its own interventions; drop --set/--scale");
    if (rc) { args_free(&a); return rc; }
    Graph g;
    memset(&g, 0, sizeof g);
    IvInputs in;
    memset(&in, 0, sizeof in);
    IvContext cx;
    memset(&cx, 0, sizeof cx);
    IvValidation val;
    memset(&val, 0, sizeof val);
    json_t *root = NULL;
    rc = 1;
    double t0 = ct_now();
    if (graph_read_ctg(&g, a.graph) != CT_OK) goto done;
    if ((rc = load_inputs(cmd, &a, &in, 0))) goto out;
    rc = 1;
    if (!g.tokens || g.T < 1) { ct_error("%s: the graph holds no prompt tokens", a.graph); goto done; }
    if (iv_context_init(&cx, &in.m, &in.clt, g.tokens, g.T, in.pool) != CT_OK) goto done;
    if (iv_validate(&cx, &g, (int)a.top, a.pruned, &val) != CT_OK) { ct_error_ctx("%s", a.graph); goto done; }

    printf("graph %s: %d feature nodes, T = %d, %d logit targets%s; the top %d feature nodes by influence,\n"
           "each ablated (set 0) and doubled (scale 2); constrained = direct effects (A[t,s] / a_s * delta),\n"
           "iterative = path sums through graph features; targets = downstream graph features "
           "(pre-activation) and logits (demeaned)\n",
           a.graph, g.n_features, g.T, g.n_logits, a.pruned ? " (kept nodes and edges only)" : "", val.n_nodes);
    printf("logit targets:");
    char tb[96];
    for (int i = g.n_nodes - g.n_logits; i < g.n_nodes; i++)
        printf(" %s (p=%.3f)", tok_label(&in, g.nodes[i].token, tb, sizeof tb), (double)g.nodes[i].prob);
    printf("\n\n");
    printf("%-14s %10s %6s  %-11s %-6s %9s %9s %9s %7s %10s %10s\n", "node", "activation", "n", "mode", "kind",
           "pearson", "spearman", "cosine", "sign", "max|err|", "max|pred|");
    char id[64], act[32];
    for (int r = 0; r < val.n_nodes; r++) {
        const IvValNode *vn = &val.nodes[r];
        graph_node_id(&g, vn->node, id, sizeof id);
        snprintf(act, sizeof act, "%.4f", (double)vn->activation);
        for (int m = 0; m < 2; m++)
            for (int k = 0; k < 2; k++)
                print_stats_row(m + k ? "" : id, m + k ? "" : act, vn->n_targets, MODE_NAMES[m], KIND_NAMES[k],
                                &vn->st[m][k]);
    }
    printf("\n");
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 2; k++)
            print_stats_row(m + k ? "" : "overall", "", val.overall[m][k].n, MODE_NAMES[m], KIND_NAMES[k],
                            &val.overall[m][k]);
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 2; k++)
            print_stats_row(m + k ? "" : "logits only", "", val.overall_logits[m][k].n, MODE_NAMES[m],
                            KIND_NAMES[k], &val.overall_logits[m][k]);
    fprintf(stderr, "validated %d nodes in %.2f s\n", val.n_nodes, ct_now() - t0);

    if (a.json) {
        root = json_object();
        json_object_set_new(root, "command", json_string("validate"));
        json_object_set_new(root, "graph", json_string(a.graph));
        json_object_set_new(root, "top", json_integer(val.n_nodes));
        json_object_set_new(root, "pruned_only", json_boolean(a.pruned));
        json_t *nodes = json_array();
        for (int r = 0; r < val.n_nodes; r++) {
            const IvValNode *vn = &val.nodes[r];
            json_t *o = json_object(), *tid = json_array();
            graph_node_id(&g, vn->node, id, sizeof id);
            json_object_set_new(o, "node_id", json_string(id));
            json_object_set_new(o, "layer", json_integer(vn->layer));
            json_object_set_new(o, "pos", json_integer(vn->pos));
            json_object_set_new(o, "feature", json_integer(vn->feature));
            json_object_set_new(o, "activation", jnum(vn->activation));
            for (int j = 0; j < vn->n_targets; j++) {
                graph_node_id(&g, vn->targets[j], id, sizeof id);
                json_array_append_new(tid, json_string(id));
            }
            json_object_set_new(o, "targets", tid);
            for (int m = 0; m < 2; m++) {
                json_t *mo = json_object();
                for (int k = 0; k < 2; k++) {
                    json_t *ko = jstats(&vn->st[m][k]);
                    json_object_set_new(ko, "delta", jnum(vn->delta[k]));
                    json_object_set_new(ko, "actual", jdoubles(vn->actual[m][k], vn->n_targets));
                    json_object_set_new(ko, "predicted", jdoubles(vn->pred[m][k], vn->n_targets));
                    json_object_set_new(mo, KIND_NAMES[k], ko);
                }
                json_object_set_new(o, MODE_NAMES[m], mo);
            }
            json_array_append_new(nodes, o);
        }
        json_object_set_new(root, "nodes", nodes);
        json_t *ov = json_object(), *ol = json_object();
        for (int m = 0; m < 2; m++) {
            json_t *mo = json_object(), *ml = json_object();
            for (int k = 0; k < 2; k++) {
                json_object_set_new(mo, KIND_NAMES[k], jstats(&val.overall[m][k]));
                json_object_set_new(ml, KIND_NAMES[k], jstats(&val.overall_logits[m][k]));
            }
            json_object_set_new(ov, MODE_NAMES[m], mo);
            json_object_set_new(ol, MODE_NAMES[m], ml);
        }
        json_object_set_new(root, "overall", ov);
        json_object_set_new(root, "overall_logits", ol);
        if (write_json(root, a.json) != CT_OK) goto done;
    }
    rc = 0;
done:
    if (rc) cli_fail(cmd);
out:
    json_decref(root);
    iv_validation_free(&val);
    iv_context_free(&cx);
    inputs_free(&in);
    graph_free(&g);
    args_free(&a);
    return rc;
}
