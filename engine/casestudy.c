// casestudy.c — trace one prompt to its answer and test the graph with interventions
// (the algorithm is in casestudy.h).
#include "engine/casestudy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/attribute.h"
#include "engine/curriculum.h"
#include "engine/intervene.h"
#include "engine/prune.h"
#include "engine/replacement.h"

void case_options_default(CaseOptions *o) {
    memset(o, 0, sizeof *o);
    o->max_feature_nodes = 4096;
    o->node_threshold = 0.8;
    o->edge_threshold = 0.98;
}

void case_result_free(CaseResult *r) {
    if (!r) return;
    graph_free(&r->g);
    free(r->tokens);
    free(r->tok_path);
    memset(r, 0, sizeof *r);
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

int case_label_graph(Graph *g, const Tokenizer *tok) {
    g->token_strs = calloc((size_t)g->T, sizeof(char *));
    g->logit_strs = calloc((size_t)g->n_logits, sizeof(char *));
    if (!g->token_strs || !g->logit_strs) return ct_error("case study: out of memory for labels");
    for (int p = 0; p < g->T; p++)
        if (!(g->token_strs[p] = dup_or_empty(tokenizer_decode(tok, p ? g->tokens[p - 1] : -1, g->tokens[p]))))
            return ct_error("case study: out of memory for labels");
    int base = g->n_features + g->n_errors + g->n_tokens;
    for (int k = 0; k < g->n_logits; k++)
        if (!(g->logit_strs[k] = dup_or_empty(tokenizer_decode(tok, -1, g->nodes[base + k].token))))
            return ct_error("case study: out of memory for labels");
    return CT_OK;
}

void case_node_name(const Graph *g, int i, char *buf, size_t n) {
    const GraphNode *nd = &g->nodes[i];
    const char *ts = g->token_strs && nd->pos >= 0 && nd->pos < g->T ? g->token_strs[nd->pos] : "?";
    switch (nd->kind) {
    case NODE_FEATURE: snprintf(buf, n, "L%d F%d @%d '%s'", nd->layer, nd->feature, nd->pos, ts); break;
    case NODE_ERROR: snprintf(buf, n, "err L%d @%d '%s'", nd->layer, nd->pos, ts); break;
    case NODE_TOKEN: snprintf(buf, n, "tok '%s'@%d", ts, nd->pos); break;
    default: {
        int k = i - (g->n_features + g->n_errors + g->n_tokens);
        snprintf(buf, n, "logit '%s'", g->logit_strs && g->logit_strs[k] ? g->logit_strs[k] : "?");
    }
    }
}

// Layer rank of a node: edges always go from a lower rank to a strictly higher one.
static int node_rank(const Graph *g, int i) {
    const GraphNode *nd = &g->nodes[i];
    if (nd->kind == NODE_TOKEN) return -1;
    if (nd->kind == NODE_LOGIT) return g->L;
    return nd->layer;
}

// Strongest kept path from every node to the logit node `to` (casestudy.h).  best (N), next (N).
static void strongest_paths(const Graph *g, int to, double *best, int *next) {
    int N = g->n_nodes;
    for (int i = 0; i < N; i++) best[i] = 0, next[i] = -1;
    best[to] = 1;
    for (int r = g->L; r >= -1; r--)
        for (int t = 0; t < N; t++) {
            if (best[t] <= 0 || node_rank(g, t) != r) continue;
            double sum = 0;
            for (uint64_t e = g->sp_row[t]; e < g->sp_row[t + 1]; e++)
                if (g->sp_keep[e]) sum += fabs((double)g->sp_val[e]);
            if (sum <= 0) continue;
            for (uint64_t e = g->sp_row[t]; e < g->sp_row[t + 1]; e++) {
                int s = (int)g->sp_col[e];
                if (!g->sp_keep[e] || !g->node_keep[s]) continue;
                double v = best[t] * fabs((double)g->sp_val[e]) / sum;
                if (v > best[s]) best[s] = v, next[s] = t;
            }
        }
}

static double demeaned(const float *logits, int V, int a) {
    double mean = 0;
    for (int v = 0; v < V; v++) mean += logits[v];
    return (double)logits[a] - mean / V;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

int case_trace(const Model *m, const Tokenizer *tok, const Clt *clt, const char *prompt,
               const char *answer, const CaseOptions *o, CaseResult *out) {
    memset(out, 0, sizeof *out);
    out->iv_node = -1;
    out->logit_node = -1;
    int S = m->c.seq_len, V = m->c.vocab_size, rc = CT_ERR;
    Replacement rep;
    memset(&rep, 0, sizeof rep);
    IvContext cx;
    int have_cx = 0;
    Intervention iv;
    intervention_init(&iv);
    size_t nfull = strlen(prompt) + strlen(answer) + 1;
    char *full = malloc(nfull);
    int *ids = malloc(sizeof(int) * (size_t)(S + 1)), *ids2 = malloc(sizeof(int) * (size_t)(S + 1));
    double *best = NULL;
    int *next = NULL;
    if (!full || !ids || !ids2) { ct_error("case study: out of memory"); goto done; }
    snprintf(full, nfull, "%s%s", prompt, answer);
    int T = 0, T2 = 0;
    if (tokenizer_encode(tok, prompt, 1, 0, ids, S, &T) != CT_OK) goto done;
    if (tokenizer_encode(tok, full, 1, 0, ids2, S + 1, &T2) != CT_OK) goto done;
    if (T2 <= T || memcmp(ids, ids2, sizeof(int) * (size_t)T) != 0)
        { ct_error("case study: prompt '%s' + answer '%s': the answer does not start a new token", prompt, answer); goto done; }
    out->T = T;
    out->answer_token = ids2[T];
    if (!(out->tokens = malloc(sizeof(int) * (size_t)T))) { ct_error("case study: out of memory"); goto done; }
    memcpy(out->tokens, ids, sizeof(int) * (size_t)T);

    // 1. the local replacement model and the graph over the salient logits + the answer
    if (replacement_build(&rep, m, clt, ids, T, o->pool) != CT_OK) goto done;
    out->predicted_token = argmax(rep.logits, V);
    {
        double mx = rep.logits[out->predicted_token], z = 0;
        for (int v = 0; v < V; v++) z += exp((double)rep.logits[v] - mx);
        out->p_answer = exp((double)rep.logits[out->answer_token] - mx) / z;
    }
    int tgt[16];
    double probs[16];
    int K = attribute_salient_logits(&rep, 10, 0.95, tgt, probs);
    if (K < 0) goto done;
    int have = 0;
    for (int k = 0; k < K; k++) have |= tgt[k] == out->answer_token;
    if (!have) tgt[K++] = out->answer_token;
    AttribOptions ao;
    attribute_options_default(&ao);
    ao.max_feature_nodes = o->max_feature_nodes;
    ao.target_tokens = tgt;
    ao.n_target_tokens = K;
    ao.pool = o->pool;
    Graph *g = &out->g;
    if (attribute_graph(g, &rep, &ao) != CT_OK) goto done;
    g->prompt = dup_or_empty(prompt);
    g->slug = dup_or_empty(o->slug ? o->slug : "case");
    g->model_path = dup_or_empty(o->model_path);
    g->clt_path = dup_or_empty(o->clt_path);
    g->model_fp = m->fingerprint;
    g->clt_fp = clt_fingerprint(clt);
    g->prompt_fp = ct_hash64(ids, sizeof(int) * (size_t)T);
    if (!g->prompt || !g->slug || !g->model_path || !g->clt_path) { ct_error("case study: out of memory"); goto done; }
    if (case_label_graph(g, tok) != CT_OK) goto done;
    if (prune_graph(g, o->node_threshold, o->edge_threshold) != CT_OK) goto done;
    int lbase = g->n_features + g->n_errors + g->n_tokens, tbase = g->n_features + g->n_errors;
    for (int k = 0; k < g->n_logits; k++)
        if (g->nodes[lbase + k].token == out->answer_token) out->logit_node = lbase + k;

    // 2. strongest kept paths from every token to the answer
    int N = g->n_nodes;
    best = malloc(sizeof(double) * (size_t)N);
    next = malloc(sizeof(int) * (size_t)N);
    out->tok_path = calloc((size_t)T, sizeof(CasePath));
    if (!best || !next || !out->tok_path) { ct_error("case study: out of memory"); goto done; }
    strongest_paths(g, out->logit_node, best, next);
    for (int p = 0; p < T; p++) {
        CasePath *cp = &out->tok_path[p];
        int i = tbase + p;
        if (best[i] <= 0) continue;
        cp->strength = best[i];
        for (; i >= 0 && cp->n < CASE_MAX_PATH; i = next[i]) cp->node[cp->n++] = i;
    }

    // 3. kept features by influence
    for (int i = 0; i < g->n_features; i++) {
        if (!g->node_keep[i]) continue;
        int j = out->n_top < 8 ? out->n_top++ : 7;
        if (j == 7 && out->n_top == 8 && g->nodes[i].influence_raw <= g->nodes[out->top[7]].influence_raw) continue;
        out->top[j] = i;
        for (; j > 0 && g->nodes[out->top[j]].influence_raw > g->nodes[out->top[j - 1]].influence_raw; j--) {
            int s = out->top[j];
            out->top[j] = out->top[j - 1];
            out->top[j - 1] = s;
        }
    }

    // 4. interventions on the most influential feature
    if (out->n_top > 0) {
        // the most influential kept feature that supports the answer (a positive direct edge
        // into its logit); the most influential one when none does
        int s = out->top[0];
        for (int k = 0; k < out->n_top; k++)
            if (graph_edge(g, out->logit_node, out->top[k]) > 0) { s = out->top[k]; break; }
        const GraphNode *nd = &g->nodes[s];
        IvSpec sp = {.layer = nd->layer, .pos_lo = nd->pos, .pos_hi = nd->pos, .feature = nd->feature,
                     .kind = IV_SET, .value = 0.0f};
        snprintf(sp.text, sizeof sp.text, "%d:%d:%d=0", nd->layer, nd->pos, nd->feature);
        if (intervention_add(&iv, &sp) != CT_OK) goto done;
        if (iv_context_init(&cx, m, clt, ids, T, o->pool) != CT_OK) goto done;
        have_cx = 1;
        const float *before = cx.clean_logits + (size_t)(T - 1) * V;
        out->iv_node = s;
        out->iv_pred = -(double)graph_edge(g, out->logit_node, s);
        if (iv_run(&cx, &iv, IV_CONSTRAINED, 0, m->c.n_layers - 1) != CT_OK) goto done;
        const float *after = cx.logits + (size_t)(T - 1) * V;
        out->iv_constrained = demeaned(after, V, out->answer_token) - demeaned(before, V, out->answer_token);
        if (iv_run(&cx, &iv, IV_OPEN, 0, 0) != CT_OK) goto done;
        out->iv_open_top1 = argmax(after, V);
        out->iv_open_delta = (double)after[out->answer_token] - (double)before[out->answer_token];
    }
    rc = CT_OK;
done:
    if (rc != CT_OK) ct_error_ctx("case study '%s'", prompt);
    if (have_cx) iv_context_free(&cx);
    intervention_free(&iv);
    replacement_free(&rep);
    free(full);
    free(ids);
    free(ids2);
    free(best);
    free(next);
    return rc;
}

void case_print(FILE *f, const Tokenizer *tok, const char *name, const char *prompt, const char *answer, const CaseResult *r) {
    const Graph *g = &r->g;
    char a[128], b[128];
    fprintf(f, "### %s: \"%s\" -> \"%s\"\n", name, prompt, answer);
    fprintf(f, "  model: top-1 %s (p(answer) = %.3f); graph: %d feature nodes of %d active, kept %d nodes / %zu edges\n",
            r->predicted_token == r->answer_token ? "correct" : "WRONG", r->p_answer, g->n_features,
            g->n_active_total, g->n_kept_nodes, g->n_kept_edges);
    fprintf(f, "  scores: replacement %.3f, completeness %.3f (pruned %.3f, %.3f)\n", g->replacement_score,
            g->completeness_score, g->pruned_replacement_score, g->pruned_completeness_score);
    fprintf(f, "  top features by influence:");
    for (int k = 0; k < r->n_top && k < 5; k++) {
        case_node_name(g, r->top[k], a, sizeof a);
        fprintf(f, "%s %s (a=%.2f)", k ? "," : "", a, g->nodes[r->top[k]].activation);
    }
    fprintf(f, "\n  strongest paths to the answer:\n");
    for (int p = 1; p < r->T; p++) {
        const CasePath *cp = &r->tok_path[p];
        if (!cp->n) continue;
        fprintf(f, "    %.3f ", cp->strength);
        for (int k = 0; k < cp->n; k++) {
            case_node_name(g, cp->node[k], b, sizeof b);
            fprintf(f, "%s%s", k ? " -> " : "", b);
        }
        fprintf(f, "\n");
    }
    if (r->iv_node >= 0) {
        case_node_name(g, r->iv_node, a, sizeof a);
        fprintf(f, "  ablate %s: constrained change of the answer logit %.4f, graph edge predicts %.4f; "
                   "open (real model): answer logit %+.3f, top-1 '%s' -> '%s'\n",
                a, r->iv_constrained, r->iv_pred, r->iv_open_delta,
                tokenizer_decode(tok, -1, r->predicted_token), tokenizer_decode(tok, -1, r->iv_open_top1));
    }
}

// ---- built-in case studies ---------------------------------------------------------------------
// Token index (BOS = 0) of the character at byte offset `off` of text: the number of tokens of
// the prefix ending with that character, minus one.  The curriculum tokenizer gives every
// word, digit and punctuation mark its own token, so prefixes encode compositionally.
static int token_at(const Tokenizer *tok, const char *text, size_t off) {
    char buf[256];
    int ids[256], n = 0;
    if (off + 1 >= sizeof buf) return -1;
    memcpy(buf, text, off + 1);
    buf[off + 1] = 0;
    if (tokenizer_encode(tok, buf, 1, 0, ids, 256, &n) != CT_OK) return -1;
    return n - 1;
}

static void add_group(CaseSpec *s, const char *name, const Tokenizer *tok, size_t lo, size_t hi) {
    int g = s->n_groups++;
    snprintf(s->group_name[g], sizeof s->group_name[g], "%s", name);
    s->group_n[g] = 0;
    for (size_t k = lo; k < hi && s->group_n[g] < 8; k++) {
        int p = token_at(tok, s->prompt, k);
        int dup = 0;
        for (int j = 0; j < s->group_n[g]; j++) dup |= s->group_pos[g][j] == p;
        if (p > 0 && !dup) s->group_pos[g][s->group_n[g]++] = p;
    }
}

int case_builtin(const struct CurWorld *w, const Tokenizer *tok, int task, int index, CaseSpec *out) {
    memset(out, 0, sizeof *out);
    CurInstance in;
    if (curriculum_instance(w, task, CUR_SPLIT_HELDOUT, index, &in) != CT_OK) return CT_ERR;
    snprintf(out->name, sizeof out->name, "%s", curriculum_task_name(task));
    const char *p = in.prompt;
    size_t n = strlen(p);
    switch (task) {
    case CUR_ACRONYM: {
        // trace the first letter; its source is the first word after "The "
        snprintf(out->prompt, sizeof out->prompt, "%s", p);
        snprintf(out->answer, sizeof out->answer, "%c", in.answer[0]);
        const char *w0 = strstr(p, "The ");
        if (!w0) return ct_error("case study: acronym prompt '%s' has no 'The '", p);
        size_t a = (size_t)(w0 - p) + 4, b = a;
        while (p[b] && p[b] != ' ') b++;
        add_group(out, "first word", tok, a, b);
        break;
    }
    case CUR_ADDITION: {
        // "calc: A+B=" + all but the last answer digit -> the last (ones) digit
        size_t na = strlen(in.answer);
        snprintf(out->prompt, sizeof out->prompt, "%s%.*s", p, (int)(na - 1), in.answer);
        snprintf(out->answer, sizeof out->answer, "%c", in.answer[na - 1]);
        const char *plus = strchr(p, '+'), *colon = strchr(p, ':');
        if (!plus || !colon) return ct_error("case study: addition prompt '%s' is not 'calc: A+B='", p);
        size_t a0 = (size_t)(colon - p) + 2, a1 = (size_t)(plus - p), b1 = n - 1;
        add_group(out, "operand A", tok, a0, a1);
        add_group(out, "operand B", tok, a1 + 1, b1);
        break;
    }
    case CUR_FACT: {
        snprintf(out->prompt, sizeof out->prompt, "%s", p);
        snprintf(out->answer, sizeof out->answer, "%s", in.answer);
        // the person: the two capitalised words of the prompt
        size_t lo = n, hi = 0;
        for (size_t k = 0; k < n; k++)
            if (p[k] >= 'A' && p[k] <= 'Z' && (k == 0 || p[k - 1] == ' ')) {
                size_t e = k;
                while (p[e] && p[e] != ' ') e++;
                if (k < lo) lo = k;
                if (e > hi) hi = e;
            }
        if (hi <= lo) return ct_error("case study: fact prompt '%s' names nobody", p);
        add_group(out, "person", tok, lo, hi);
        break;
    }
    case CUR_TWOHOP: {
        snprintf(out->prompt, sizeof out->prompt, "%s", p);
        snprintf(out->answer, sizeof out->answer, "%s", in.answer);
        const char *c = strstr(p, "containing ");
        if (!c) return ct_error("case study: two-hop prompt '%s' has no 'containing '", p);
        size_t a = (size_t)(c - p) + 11, b = a;
        while (p[b] && p[b] != ' ') b++;
        add_group(out, "city", tok, a, b);
        break;
    }
    default:
        return ct_error("case study: task %d has no built-in case (acronym, addition, fact, twohop)", task);
    }
    for (int g = 0; g < out->n_groups; g++)
        if (!out->group_n[g]) return ct_error("case study %s: group '%s' has no token", out->name, out->group_name[g]);
    return CT_OK;
}

int case_paths_ok(const CaseSpec *s, const CaseResult *r, const char **fails) {
    for (int g = 0; g < s->n_groups; g++) {
        int ok = 0;
        for (int j = 0; j < s->group_n[g]; j++) {
            int p = s->group_pos[g][j];
            ok |= p < r->T && r->tok_path[p].n > 0;
        }
        if (!ok) {
            if (fails) *fails = s->group_name[g];
            return 0;
        }
    }
    return 1;
}

int case_ablate_positions(const Model *m, const Clt *clt, const CaseResult *r, const int *pos, int n_pos,
                          ThreadPool *pool, int *n_ablated, int *top1_after, double *answer_delta) {
    const Graph *g = &r->g;
    Intervention iv;
    intervention_init(&iv);
    *n_ablated = 0;
    for (int i = 0; i < g->n_features; i++) {
        const GraphNode *nd = &g->nodes[i];
        int hit = 0;
        for (int k = 0; k < n_pos; k++) hit |= nd->pos == pos[k];
        if (!hit || !g->node_keep[i]) continue;
        IvSpec sp = {.layer = nd->layer, .pos_lo = nd->pos, .pos_hi = nd->pos, .feature = nd->feature,
                     .kind = IV_SET, .value = 0.0f};
        snprintf(sp.text, sizeof sp.text, "%d:%d:%d=0", nd->layer, nd->pos, nd->feature);
        if (intervention_add(&iv, &sp) != CT_OK) { intervention_free(&iv); return CT_ERR; }
        (*n_ablated)++;
    }
    IvContext cx;
    int rc = iv_context_init(&cx, m, clt, r->tokens, r->T, pool);
    if (rc == CT_OK) {
        rc = iv_run(&cx, &iv, IV_OPEN, 0, 0);
        if (rc == CT_OK) {
            int V = m->c.vocab_size;
            const float *before = cx.clean_logits + (size_t)(r->T - 1) * V, *after = cx.logits + (size_t)(r->T - 1) * V;
            *top1_after = argmax(after, V);
            *answer_delta = (double)after[r->answer_token] - (double)before[r->answer_token];
        }
        iv_context_free(&cx);
    }
    intervention_free(&iv);
    return rc;
}
