// clt_eval.c — error statistics of a transcoder as a replacement for its model's MLPs, and the
// text -> story -> window split (see clt_eval.h for the definitions of every number).
//
// Per window (windows run in parallel, one task per thread, results summed in window order):
//   real run     model_forward_seq with CAP_RESID | CAP_MLP: resid_mid x (T, L, D), MLP
//                outputs y (T, L, D), logits (T, V)
//   reconstruct  clt_reconstruct per position p >= 1: y^ (L, D), active features
//   spliced run  hooks: at resid_mid of layer l encode the live x_l; at the MLP output of
//                layer l write b_dec + sum_{l0 <= l} W_dec[l0][:, l - l0]^T a_l0 (+ skip)
//   compare      log-softmax of both logit rows in double: KL, argmax, cross-entropy
#include "engine/clt_eval.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/sampler.h"
#include "simd/simd.h"

// ---- stories and windows ----------------------------------------------------------------------
static int is_blank_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\r'; }

// Is the line starting at p blank (only spaces/tabs/CR before '\n' or the end)?  *next is set
// past its newline.
static int line_blank(const char *b, size_t n, size_t p, size_t *next) {
    while (p < n && is_blank_ws(b[p])) p++;
    if (p < n && b[p] != '\n') return 0;
    *next = p < n ? p + 1 : n;
    return 1;
}

int text_next_story(const char *buf, size_t n, size_t *pos, size_t *start, size_t *len) {
    size_t p = *pos, nx;
    while (p < n && line_blank(buf, n, p, &nx)) p = nx;   // skip blank lines
    if (p >= n) {
        *pos = n;
        return 0;
    }
    size_t s = p, e = n;
    for (size_t q = p; q < n; q++) {
        if (buf[q] != '\n') continue;
        if (q + 1 >= n || line_blank(buf, n, q + 1, &nx)) {   // the story ends at this newline
            e = q;
            break;
        }
    }
    while (e > s && (buf[e - 1] == '\n' || buf[e - 1] == '\r')) e--;
    *start = s;
    *len = e - s;
    *pos = e < n ? e + 1 : n;
    return 1;
}

int story_tokenize(StoryTok *st, const Tokenizer *t, const char *s, size_t len) {
    if (len + 1 > st->text_cap) {
        char *nt = realloc(st->text, len + 1);
        if (!nt) return ct_error("corpus: out of memory for a story of %zu bytes", len);
        st->text = nt;
        st->text_cap = len + 1;
    }
    memcpy(st->text, s, len);
    st->text[len] = 0;
    // BOS + the dummy-prefix space + at most one token per byte.
    if (len > (size_t)INT32_MAX - 8) return ct_error("corpus: a story of %zu bytes is too long", len);
    int need = (int)len + 3;
    if (need > st->cap) {
        int *ni = realloc(st->ids, (size_t)need * sizeof(int));
        if (!ni) return ct_error("corpus: out of memory for a story of %zu bytes", len);
        st->ids = ni;
        st->cap = need;
    }
    // The story's start token, then its text: BOS, or for tokenizers without one (GPT-2) the
    // token that separates documents (tokenizer_start_id).  Windows begin with ids[0].
    st->ids[0] = tokenizer_start_id(t);
    if (tokenizer_encode(t, st->text, 0, 0, st->ids + 1, st->cap - 1, &st->n) != CT_OK) return CT_ERR;
    st->n += 1;
    return CT_OK;
}

void story_free(StoryTok *st) {
    free(st->ids);
    free(st->text);
    memset(st, 0, sizeof *st);
}

int story_window(const int *ids, int n, int ctx, int k, int *out) {
    int a = 1 + k * (ctx - 1), b = a + ctx - 1 < n ? a + ctx - 1 : n;
    out[0] = ids[0];
    memcpy(out + 1, ids + a, (size_t)(b - a) * sizeof(int));
    return 1 + b - a;
}

static int tokwin_add(TokWindows *w, const int *ids, int n, int ctx, size_t *cap_w, size_t *cap_t) {
    int nw = story_n_windows(n, ctx);
    for (int k = 0; k < nw; k++) {
        if ((size_t)w->n == *cap_w) {
            size_t nc = *cap_w ? *cap_w * 2 : 64;
            int *s = realloc(w->start, nc * sizeof(int)), *l = s ? realloc(w->len, nc * sizeof(int)) : NULL;
            if (s) w->start = s;
            if (l) w->len = l;
            if (!s || !l) return ct_error("windows: out of memory");
            *cap_w = nc;
        }
        if (w->ntok + (size_t)ctx > *cap_t) {
            size_t nc = (*cap_t ? *cap_t * 2 : 4096) + (size_t)ctx;
            int *t = realloc(w->tok, nc * sizeof(int));
            if (!t) return ct_error("windows: out of memory");
            w->tok = t;
            *cap_t = nc;
        }
        if (w->ntok > (size_t)INT32_MAX - (size_t)ctx) return ct_error("windows: more than 2^31 tokens");
        int len = story_window(ids, n, ctx, k, w->tok + w->ntok);
        w->start[w->n] = (int)w->ntok;
        w->len[w->n] = len;
        w->n++;
        w->ntok += (size_t)len;
    }
    return CT_OK;
}

int tokwin_from_text(TokWindows *w, const Tokenizer *t, const char *text, size_t n, int ctx, long max_tokens) {
    memset(w, 0, sizeof *w);
    if (ctx < 2) return ct_error("windows: ctx must be >= 2 tokens, got %d", ctx);
    StoryTok st = {0};
    size_t pos = 0, s, len, cap_w = 0, cap_t = 0;
    while (text_next_story(text, n, &pos, &s, &len)) {
        if (story_tokenize(&st, t, text + s, len) != CT_OK || tokwin_add(w, st.ids, st.n, ctx, &cap_w, &cap_t) != CT_OK) {
            story_free(&st);
            tokwin_free(w);
            return CT_ERR;
        }
        if (max_tokens > 0 && w->ntok >= (size_t)max_tokens) break;
    }
    story_free(&st);
    if (w->n == 0) return ct_error("windows: the text holds no story (it is empty or only blank lines)");
    return CT_OK;
}

int tokwin_from_ids(TokWindows *w, const int *ids, int n, int ctx, int start) {
    memset(w, 0, sizeof *w);
    if (ctx < 2) return ct_error("windows: ctx must be >= 2 tokens, got %d", ctx);
    int *tmp = malloc(((size_t)n + 1) * sizeof(int));
    if (!tmp) return ct_error("windows: out of memory");
    int k = 0;
    tmp[k++] = start;
    for (int i = (n > 0 && ids[0] == start) ? 1 : 0; i < n; i++) tmp[k++] = ids[i];
    size_t cap_w = 0, cap_t = 0;
    int rc = tokwin_add(w, tmp, k, ctx, &cap_w, &cap_t);
    free(tmp);
    if (rc == CT_OK && w->n == 0) rc = ct_error("windows: the token list has no token after BOS");
    if (rc != CT_OK) tokwin_free(w);
    return rc;
}

void tokwin_free(TokWindows *w) {
    free(w->start);
    free(w->len);
    free(w->tok);
    memset(w, 0, sizeof *w);
}

// ---- evaluation -------------------------------------------------------------------------------
// What one window contributes (summed over windows in order, so results never depend on threads).
typedef struct WinStats {
    double *sse;     // (L) sum ||y^ - y||^2
    double *sy;      // (L, D) sum y
    double *syy;     // (L) sum ||y||^2
    long *act;       // (L) active features summed over positions
    long positions, predictions, agree;
    double kl, ce_real, ce_spl;
} WinStats;

typedef struct Splice {
    const Clt *c;
    CltSparse *sp;         // (T, L) active features per position and layer
    float *xs;             // (T, L, D) live inputs (for W_skip)
    float *pre, *act;      // (F)
    float *row, *tmp;      // (D)
    const Capture *real;   // oracle: the real MLP outputs
    int oracle;
} Splice;

static void splice_hook(void *ctx, HookSite site, int l, int pos, float *vec) {
    Splice *s = ctx;
    const Clt *c = s->c;
    int L = c->L, D = c->D;
    if (pos == 0) return;   // BOS keeps the real MLP output
    if (site == HOOK_RESID_MID) {
        if (s->oracle) return;
        clt_encode(c, l, vec, s->pre, s->act);
        clt_sparsify(s->act, c->F, &s->sp[(size_t)pos * L + l]);
        memcpy(s->xs + ((size_t)pos * L + l) * D, vec, (size_t)D * sizeof(float));
    } else if (site == HOOK_MLP_OUT) {
        if (s->oracle) {
            memcpy(vec, s->real->mlp_out + ((size_t)pos * L + l) * D, (size_t)D * sizeof(float));
            return;
        }
        memcpy(vec, c->layers[l].b_dec, (size_t)D * sizeof(float));
        clt_decode_add(c, l, &s->sp[(size_t)pos * L], vec, s->row);
        clt_skip_add(c, l, s->xs + ((size_t)pos * L + l) * D, vec, s->tmp);
    }
}

// log-softmax of one logit row, in double.
static void log_softmax(const float *z, int V, double *out) {
    double mx = z[0];
    for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    double s = 0;
    for (int v = 0; v < V; v++) s += exp((double)z[v] - mx);
    double lse = mx + log(s);
    for (int v = 0; v < V; v++) out[v] = (double)z[v] - lse;
}

typedef struct EvalJob {
    const Model *m;
    const Clt *c;
    const TokWindows *w;
    const CltEvalOpts *o;
    WinStats *ws;               // (windows)
    unsigned char **alive;      // (ntask) (L, F) per task
    int ctx;
    volatile int done;          // windows finished (progress only)
    int failed;
    char err[512];
} EvalJob;

static void eval_task(void *vctx, int task, int ntask) {
    EvalJob *j = vctx;
    const Model *m = j->m;
    const Clt *c = j->c;
    int L = c->L, D = c->D, F = c->F, V = m->c.vocab_size, T = j->ctx;
    RunState rs;
    Capture cap;
    CltWork cw;
    Splice sp = {0};
    memset(&rs, 0, sizeof rs);
    memset(&cap, 0, sizeof cap);
    memset(&cw, 0, sizeof cw);
    float *lr = malloc((size_t)T * V * sizeof(float)), *ls = malloc((size_t)T * V * sizeof(float));
    double *pr = malloc((size_t)V * sizeof(double)), *ps = malloc((size_t)V * sizeof(double));
    float *yh = malloc((size_t)L * D * sizeof(float));
    sp.c = c;
    sp.sp = calloc((size_t)T * L, sizeof(CltSparse));
    sp.xs = malloc((size_t)T * L * D * sizeof(float));
    sp.pre = malloc((size_t)F * sizeof(float));
    sp.act = malloc((size_t)F * sizeof(float));
    sp.row = malloc((size_t)D * sizeof(float));
    sp.tmp = malloc((size_t)D * sizeof(float));
    sp.real = &cap;
    sp.oracle = j->o->oracle;
    int ok = lr && ls && pr && ps && yh && sp.sp && sp.xs && sp.pre && sp.act && sp.row && sp.tmp;
    for (int k = 0; ok && k < T * L; k++) ok = clt_sparse_init(&sp.sp[k], F) == CT_OK;
    ok = ok && runstate_init(&rs, &m->c, T) == CT_OK && capture_init(&cap, &m->c, T, CAP_RESID | CAP_MLP) == CT_OK &&
         clt_work_init(&cw, c) == CT_OK;
    unsigned char *alive = j->alive[task];
    ForwardHooks hk = {0};
    hk.hook = splice_hook;
    hk.ctx = &sp;
    for (int wi = task; ok && wi < j->w->n; wi += ntask) {
        const int *tok = j->w->tok + j->w->start[wi];
        int n = j->w->len[wi];
        WinStats *st = &j->ws[wi];
        if (model_forward_seq(m, &rs, tok, n, lr, &cap, NULL) != CT_OK) { ok = 0; break; }
        for (int p = 1; p < n; p++) {
            const float *x = cap.resid_mid + (size_t)p * L * D, *y = cap.mlp_out + (size_t)p * L * D;
            clt_reconstruct(c, x, yh, &cw);
            for (int l = 0; l < L; l++) {
                double e = 0, yy = 0;
                for (int d = 0; d < D; d++) {
                    double r = (double)yh[l * D + d] - y[l * D + d];
                    e += r * r;
                    yy += (double)y[l * D + d] * y[l * D + d];
                    st->sy[l * D + d] += y[l * D + d];
                }
                st->sse[l] += e;
                st->syy[l] += yy;
                st->act[l] += cw.sp[l].n;
                for (int k = 0; k < cw.sp[l].n; k++) alive[(size_t)l * F + cw.sp[l].idx[k]] = 1;
            }
            st->positions++;
        }
        if (model_forward_seq_hooked(m, &rs, tok, n, ls, NULL, NULL, &hk) != CT_OK) { ok = 0; break; }
        for (int p = 0; p < n; p++) {
            log_softmax(lr + (size_t)p * V, V, pr);
            log_softmax(ls + (size_t)p * V, V, ps);
            if (p + 1 < n) {
                st->ce_real -= pr[tok[p + 1]];
                st->ce_spl -= ps[tok[p + 1]];
                st->predictions++;
            }
            if (p == 0) continue;
            double kl = 0;
            for (int v = 0; v < V; v++) kl += exp(pr[v]) * (pr[v] - ps[v]);
            st->kl += kl;
            st->agree += sample_argmax(lr + (size_t)p * V, V) == sample_argmax(ls + (size_t)p * V, V);
        }
        if (task == 0 && j->o->progress) {
            int d = __atomic_add_fetch(&j->done, 1, __ATOMIC_RELAXED);
            fprintf(stderr, "\rclt-eval: %d/%d windows", d, j->w->n);
        } else
            __atomic_add_fetch(&j->done, 1, __ATOMIC_RELAXED);
    }
    if (!ok && !__atomic_exchange_n(&j->failed, 1, __ATOMIC_RELAXED))
        snprintf(j->err, sizeof j->err, "%s", ct_errmsg());
    for (int k = 0; sp.sp && k < T * L; k++) clt_sparse_free(&sp.sp[k]);
    free(sp.sp), free(sp.xs), free(sp.pre), free(sp.act), free(sp.row), free(sp.tmp);
    free(lr), free(ls), free(pr), free(ps), free(yh);
    clt_work_free(&cw);
    capture_free(&cap);
    runstate_free(&rs);
}

int clt_eval(const Model *m, const Clt *c, const TokWindows *w, const CltEvalOpts *o, CltEvalResult *r) {
    memset(r, 0, sizeof *r);
    if (clt_check_model(c, m->c.n_layers, m->c.dim) != CT_OK) return CT_ERR;
    if (w->n <= 0) return ct_error("clt-eval: no windows to evaluate");
    int L = c->L, D = c->D, F = c->F, ctx = 0;
    for (int i = 0; i < w->n; i++) ctx = w->len[i] > ctx ? w->len[i] : ctx;
    if (ctx > m->c.seq_len)
        return ct_error("clt-eval: windows of %d tokens exceed the model's context (seq_len %d)", ctx, m->c.seq_len);
    double t0 = ct_now();
    int ntask = pool_size(o->pool);
    EvalJob j = {.m = m, .c = c, .w = w, .o = o, .ctx = ctx};
    j.ws = calloc((size_t)w->n, sizeof(WinStats));
    j.alive = calloc((size_t)ntask, sizeof(unsigned char *));
    // one block for every window's sums: sse (L), sy (L*D), syy (L) doubles; act (L) longs
    double *dblk = calloc((size_t)w->n * (size_t)L * (size_t)(D + 2), sizeof(double));
    long *lblk = calloc((size_t)w->n * (size_t)L, sizeof(long));
    int ok = j.ws && j.alive && dblk && lblk;
    for (int t = 0; ok && t < ntask; t++) ok = (j.alive[t] = calloc((size_t)L * F, 1)) != NULL;
    if (ok) {
        for (int i = 0; i < w->n; i++) {
            double *b = dblk + (size_t)i * L * (D + 2);
            j.ws[i].sse = b;
            j.ws[i].syy = b + L;
            j.ws[i].sy = b + 2 * L;
            j.ws[i].act = lblk + (size_t)i * L;
        }
        pool_run(o->pool, eval_task, &j, ntask);
        if (o->progress) fprintf(stderr, "\n");
        if (j.failed) ok = 0, ct_error("%s", j.err);
    } else
        ct_error("clt-eval: out of memory for %d windows", w->n);
    r->nmse = calloc((size_t)L, sizeof(double));
    r->l0 = calloc((size_t)L, sizeof(double));
    r->dead = calloc((size_t)L, sizeof(double));
    double *sy = calloc((size_t)L * D, sizeof(double));
    if (ok && (!r->nmse || !r->l0 || !r->dead || !sy)) ok = 0, ct_error("clt-eval: out of memory");
    if (ok) {
        r->L = L, r->F = F, r->windows = w->n;
        double kl = 0, cer = 0, ces = 0;
        long agree = 0;
        double *sse = calloc((size_t)L, sizeof(double)), *syy = calloc((size_t)L, sizeof(double));
        long *act = calloc((size_t)L, sizeof(long));
        for (int i = 0; i < w->n; i++) {   // window order: the same sums for any thread count
            const WinStats *s = &j.ws[i];
            for (int l = 0; l < L; l++) {
                sse[l] += s->sse[l];
                syy[l] += s->syy[l];
                act[l] += s->act[l];
                for (int d = 0; d < D; d++) sy[l * D + d] += s->sy[l * D + d];
            }
            r->positions += s->positions;
            r->predictions += s->predictions;
            agree += s->agree;
            kl += s->kl, cer += s->ce_real, ces += s->ce_spl;
        }
        double np = r->positions > 0 ? (double)r->positions : 1;
        for (int l = 0; l < L; l++) {
            double m2 = 0;
            for (int d = 0; d < D; d++) m2 += sy[l * D + d] * sy[l * D + d];
            double var = syy[l] - m2 / np;   // sum ||y - mean||^2
            r->nmse[l] = var > 0 ? sse[l] / var : (sse[l] > 0 ? INFINITY : 0);
            r->l0[l] = (double)act[l] / np;
            long alive = 0;
            for (int f = 0; f < F; f++) {
                int a = 0;
                for (int t = 0; t < ntask; t++) a |= j.alive[t][(size_t)l * F + f];
                alive += a;
            }
            r->dead[l] = 1.0 - (double)alive / F;
            r->mean_nmse += r->nmse[l] / L;
            r->mean_l0 += r->l0[l] / L;
            r->mean_dead += r->dead[l] / L;
        }
        r->kl = kl / np;
        r->top1 = (double)agree / np;
        r->ce_real = r->predictions ? cer / r->predictions : 0;
        r->ce_spliced = r->predictions ? ces / r->predictions : 0;
        free(sse), free(syy), free(act);
    }
    for (int t = 0; j.alive && t < ntask; t++) free(j.alive[t]);
    free(j.alive), free(j.ws), free(dblk), free(lblk), free(sy);
    r->seconds = ct_now() - t0;
    if (!ok) {
        clt_eval_result_free(r);
        return CT_ERR;
    }
    return CT_OK;
}

void clt_eval_result_free(CltEvalResult *r) {
    free(r->nmse);
    free(r->l0);
    free(r->dead);
    r->nmse = r->l0 = r->dead = NULL;
}

void clt_eval_print(FILE *f, const CltEvalResult *r) {
    fprintf(f, "%ld windows, %ld positions (p >= 1), %ld next-token predictions, %.1f s\n\n", r->windows,
            r->positions, r->predictions, r->seconds);
    fprintf(f, "| layer | NMSE (FVU) | L0 | dead |\n|---:|---:|---:|---:|\n");
    for (int l = 0; l < r->L; l++)
        fprintf(f, "| %d | %.4f | %.2f | %.1f%% |\n", l, r->nmse[l], r->l0[l], 100 * r->dead[l]);
    fprintf(f, "| mean | %.4f | %.2f | %.1f%% |\n\n", r->mean_nmse, r->mean_l0, 100 * r->mean_dead);
    fprintf(f, "spliced model (every MLP output at p >= 1 replaced, no error added back):\n");
    fprintf(f, "  KL(real || spliced)   %.4f nats/token\n", r->kl);
    fprintf(f, "  top-1 agreement       %.2f%%\n", 100 * r->top1);
    fprintf(f, "  cross-entropy real    %.4f nats/token\n", r->ce_real);
    fprintf(f, "  cross-entropy spliced %.4f nats/token  (+%.4f)\n", r->ce_spliced, r->ce_spliced - r->ce_real);
}

int clt_eval_write_json(const char *path, const CltEvalResult *r, const char *model, const char *clt,
                        const char *text, int ctx) {
    json_t *root = json_object(), *layers = json_array();
    json_object_set_new(root, "model", json_string(model ? model : ""));
    json_object_set_new(root, "transcoder", json_string(clt ? clt : ""));
    json_object_set_new(root, "text", json_string(text ? text : ""));
    json_object_set_new(root, "ctx", json_integer(ctx));
    json_object_set_new(root, "windows", json_integer(r->windows));
    json_object_set_new(root, "positions", json_integer(r->positions));
    json_object_set_new(root, "predictions", json_integer(r->predictions));
    json_object_set_new(root, "features_per_layer", json_integer(r->F));
    for (int l = 0; l < r->L; l++) {
        json_t *o = json_object();
        json_object_set_new(o, "layer", json_integer(l));
        json_object_set_new(o, "nmse", json_real(r->nmse[l]));
        json_object_set_new(o, "l0", json_real(r->l0[l]));
        json_object_set_new(o, "dead_fraction", json_real(r->dead[l]));
        json_array_append_new(layers, o);
    }
    json_object_set_new(root, "layers", layers);
    json_t *mean = json_object();
    json_object_set_new(mean, "nmse", json_real(r->mean_nmse));
    json_object_set_new(mean, "l0", json_real(r->mean_l0));
    json_object_set_new(mean, "dead_fraction", json_real(r->mean_dead));
    json_object_set_new(root, "mean", mean);
    json_t *sp = json_object();
    json_object_set_new(sp, "kl", json_real(r->kl));
    json_object_set_new(sp, "top1_agreement", json_real(r->top1));
    json_object_set_new(sp, "ce_real", json_real(r->ce_real));
    json_object_set_new(sp, "ce_spliced", json_real(r->ce_spliced));
    json_object_set_new(sp, "bos", json_string("position 0 keeps the real MLP outputs"));
    json_object_set_new(root, "spliced", sp);
    json_object_set_new(root, "seconds", json_real(r->seconds));
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(root);
    if (!s) return ct_error("%s: could not format the JSON report", path);
    size_t n = strlen(s);
    s[n] = '\n';   // json_dumps leaves room for the NUL; replace it by a newline we write
    int rc = ct_write_file_atomic(path, s, n + 1);
    free(s);
    return rc;
}
