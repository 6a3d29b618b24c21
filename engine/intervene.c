// intervene.c — feature interventions, steered generation and graph validation.
// See intervene.h for the semantics of each mode and what validation computes.
//
// The whole mechanism is one forward hook (IvHook): at resid_mid[l](p) it decides each covered
// spec's delta (value held minus current activation), at mlp_out[l'](p) it adds delta times the
// feature's decoder row for output layer l'.  Freezing is the forward's own (ForwardHooks).
#include "engine/intervene.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/prune.h"
#include "engine/quantize.h"
#include "simd/simd.h"

// ---- specs --------------------------------------------------------------------------------------
void intervention_init(Intervention *iv) { memset(iv, 0, sizeof *iv); }

void intervention_free(Intervention *iv) {
    free(iv->specs);
    memset(iv, 0, sizeof *iv);
}

int intervention_add(Intervention *iv, const IvSpec *s) {
    if (iv->n == iv->cap) {
        int cap = iv->cap ? 2 * iv->cap : 8;
        IvSpec *p = realloc(iv->specs, (size_t)cap * sizeof *p);
        if (!p) return ct_error("intervention: out of memory for %d specs", cap);
        iv->specs = p;
        iv->cap = cap;
    }
    iv->specs[iv->n++] = *s;
    return CT_OK;
}

// Strict integer: the whole of [s, e) is an optionally signed decimal that fits an int.
static int parse_int(const char *s, const char *e, int *out) {
    if (s == e || e - s > 12) return 0;
    char buf[16];
    memcpy(buf, s, (size_t)(e - s));
    buf[e - s] = 0;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || *end || end == buf || v < -2147483647L || v > 2147483646L) return 0;
    *out = (int)v;
    return 1;
}

#define SPEC_SYNTAX "expected LAYER:POS:FEATURE=NUMBER with POS one of P, P..Q, P.., * or all " \
                    "(e.g. 2:5:117=0 or 1:*:40=3.5)"

int iv_parse_spec(const char *text, int kind, IvSpec *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->text, sizeof out->text, "%s", text);
    out->kind = kind;
    const char *eq = strchr(text, '=');
    const char *c1 = strchr(text, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!eq || !c1 || !c2 || c2 > eq || memchr(c2 + 1, ':', (size_t)(eq - c2 - 1)))
        return ct_error("malformed intervention '%s': %s", text, SPEC_SYNTAX);
    if (!parse_int(text, c1, &out->layer))
        return ct_error("malformed intervention '%s': layer '%.*s' is not an integer; %s", text,
                        (int)(c1 - text), text, SPEC_SYNTAX);
    if (!parse_int(c2 + 1, eq, &out->feature))
        return ct_error("malformed intervention '%s': feature '%.*s' is not an integer; %s", text,
                        (int)(eq - c2 - 1), c2 + 1, SPEC_SYNTAX);
    // position: P | P..Q | P.. | * | all
    const char *ps = c1 + 1, *pe = c2;
    size_t pn = (size_t)(pe - ps);
    const char *dots = NULL;
    for (const char *q = ps; q + 1 < pe; q++)
        if (q[0] == '.' && q[1] == '.') { dots = q; break; }
    if ((pn == 1 && ps[0] == '*') || (pn == 3 && !strncmp(ps, "all", 3))) {
        out->pos_lo = 1;
        out->pos_hi = IV_POS_END;
    } else if (dots) {
        if (!parse_int(ps, dots, &out->pos_lo))
            return ct_error("malformed intervention '%s': position '%.*s' is not P, P..Q, P.., * or all",
                            text, (int)pn, ps);
        if (dots + 2 == pe) out->pos_hi = IV_POS_END;
        else if (!parse_int(dots + 2, pe, &out->pos_hi))
            return ct_error("malformed intervention '%s': position '%.*s' is not P, P..Q, P.., * or all",
                            text, (int)pn, ps);
    } else {
        if (!parse_int(ps, pe, &out->pos_lo))
            return ct_error("malformed intervention '%s': position '%.*s' is not P, P..Q, P.., * or all",
                            text, (int)pn, ps);
        out->pos_hi = out->pos_lo;
    }
    char *end;
    errno = 0;
    double v = strtod(eq + 1, &end);
    if (eq[1] == 0 || *end || errno || !isfinite(v) || fabs(v) > 3.4e38)
        return ct_error("malformed intervention '%s': %s '%s' is not a finite number; %s", text,
                        kind == IV_SCALE ? "factor" : "value", eq + 1, SPEC_SYNTAX);
    out->value = (float)v;
    return CT_OK;
}

static const char *spec_name(const IvSpec *s, char *buf, size_t n) {
    if (s->text[0]) return s->text;
    snprintf(buf, n, "%d:%d:%d=%g", s->layer, s->pos_lo, s->feature, (double)s->value);
    return buf;
}

int intervention_check(const Intervention *iv, const Clt *clt, int n_pos) {
    char b1[80], b2[80];
    for (int i = 0; i < iv->n; i++) {
        const IvSpec *s = &iv->specs[i];
        const char *nm = spec_name(s, b1, sizeof b1);
        if (s->kind != IV_SET && s->kind != IV_SCALE)
            return ct_error("intervention '%s': kind %d is neither set nor scale", nm, s->kind);
        if (s->layer < 0 || s->layer >= clt->L)
            return ct_error("intervention '%s': layer %d is out of range: the model and transcoder "
                            "have %d layers (0..%d)", nm, s->layer, clt->L, clt->L - 1);
        if (s->feature < 0 || s->feature >= clt->F)
            return ct_error("intervention '%s': feature %d is out of range: the transcoder has %d "
                            "features per layer (0..%d)", nm, s->feature, clt->F, clt->F - 1);
        if (s->pos_lo < 0)
            return ct_error("intervention '%s': position %d is negative (positions start at 0, BOS)",
                            nm, s->pos_lo);
        if (s->pos_hi < s->pos_lo)
            return ct_error("intervention '%s': position range %d..%d is empty", nm, s->pos_lo, s->pos_hi);
        if (s->pos_lo >= n_pos || (s->pos_hi != IV_POS_END && s->pos_hi >= n_pos))
            return ct_error("intervention '%s': position %d is beyond the prompt, which has %d "
                            "positions (0..%d, BOS included)", nm,
                            s->pos_lo >= n_pos ? s->pos_lo : s->pos_hi, n_pos, n_pos - 1);
        if (!isfinite(s->value))
            return ct_error("intervention '%s': the %s is not finite", nm,
                            s->kind == IV_SCALE ? "factor" : "value");
        for (int j = 0; j < i; j++) {
            const IvSpec *o = &iv->specs[j];
            if (o->layer != s->layer || o->feature != s->feature) continue;
            if (o->pos_hi < s->pos_lo || s->pos_hi < o->pos_lo) continue;
            int p = o->pos_lo > s->pos_lo ? o->pos_lo : s->pos_lo;
            return ct_error("intervention '%s': feature %d of layer %d at position %d is already "
                            "set by '%s'; name each feature once per position", nm, s->feature,
                            s->layer, p, spec_name(o, b2, sizeof b2));
        }
    }
    return CT_OK;
}

int iv_parse_mode(const char *s, IvMode *mode) {
    if (!strcmp(s, "constrained")) *mode = IV_CONSTRAINED;
    else if (!strcmp(s, "iterative")) *mode = IV_ITERATIVE;
    else if (!strcmp(s, "open")) *mode = IV_OPEN;
    else return ct_error("mode '%s': expected constrained, iterative or open", s);
    return CT_OK;
}

const char *iv_mode_name(int mode) {
    return mode == IV_CONSTRAINED ? "constrained" : mode == IV_ITERATIVE ? "iterative"
         : mode == IV_OPEN ? "open" : "?";
}

int iv_parse_layers(const char *s, int L, int *lo, int *hi) {
    const char *dots = strstr(s, "..");
    int a, b;
    if (dots ? !(parse_int(s, dots, &a) && parse_int(dots + 2, s + strlen(s), &b))
             : !parse_int(s, s + strlen(s), &a))
        return ct_error("layer range '%s': expected A..B (or one layer A), e.g. 0..%d", s, L - 1);
    if (!dots) b = a;
    if (a > b) return ct_error("layer range '%s' is empty (%d > %d); write A..B with A <= B", s, a, b);
    if (a < 0 || b >= L)
        return ct_error("layer range '%s': layers must lie in 0..%d (the model has %d layers), got %d..%d",
                        s, L - 1, L, a, b);
    *lo = a;
    *hi = b;
    return CT_OK;
}

// ---- one feature ----------------------------------------------------------------------------------
float iv_feature_pre(const Clt *c, int l, int f, const float *x) {
    if (c->q8) return clt_q8_feature_pre(c, l, f, x);   // --clt-dtype q8: the int8 encoder's value
    const CltLayer *ly = &c->layers[l];
    float h = simd_kernels()->dot_f32(ly->W_enc + (size_t)f * (size_t)c->D, x, (size_t)c->D);
    return h + ly->b_enc[f];   // clt_encode's order: matvec row, then the bias
}

float iv_feature_act(const Clt *c, int l, int f, const float *x, float *scratch) {
    if (c->act.kind == CLT_ACT_TOPK) {   // depends on the whole layer
        clt_encode(c, l, x, scratch, scratch + c->F);
        return scratch[c->F + f];
    }
    float h = iv_feature_pre(c, l, f, x);
    float th = c->act.kind == CLT_ACT_JUMPRELU ? c->layers[l].threshold[f] : 0.0f;
    return simd_jump_act(h, th);   // clt_activate's rule
}

// ---- the hook -------------------------------------------------------------------------------------
typedef struct IvHook {
    const Clt *clt;
    const Intervention *iv;
    int mode, lo, hi;          // constrained: layers [lo, hi] use clean activations
    const Capture *clean;      // clean resid_mid (constrained mode), or NULL
    int Tcap;                  // positions the arrays below hold
    float *cur, *target, *delta;  // (n, Tcap)
    uint8_t *done;             // (n, Tcap) 1 once the spec's delta at that position is known
    float *row;                // (D) decoder row scratch
    float *scratch;            // (2F) TopK scratch
    float *mid;                // (Tcap, D) this layer's resid_mid (constrained + skip only), else NULL
    float *dx;                 // (2D) skip scratch
} IvHook;

static int hook_init(IvHook *h, const Clt *clt, const Intervention *iv, int mode, int lo, int hi,
                     const Capture *clean, int Tcap) {
    memset(h, 0, sizeof *h);
    h->clt = clt, h->iv = iv, h->mode = mode, h->lo = lo, h->hi = hi, h->clean = clean, h->Tcap = Tcap;
    size_t n = (size_t)(iv ? iv->n : 0) * (size_t)Tcap;
    h->cur = calloc(n ? n : 1, sizeof(float));
    h->target = calloc(n ? n : 1, sizeof(float));
    h->delta = calloc(n ? n : 1, sizeof(float));
    h->done = calloc(n ? n : 1, 1);
    h->row = malloc((size_t)clt->D * sizeof(float));
    h->scratch = malloc((size_t)2 * (size_t)clt->F * sizeof(float));
    if (!h->cur || !h->target || !h->delta || !h->done || !h->row || !h->scratch)
        return ct_error("intervention: out of memory for the hook state (%zu entries)", n);
    if (mode == IV_CONSTRAINED && clt->has_skip) {
        h->mid = malloc((size_t)Tcap * (size_t)clt->D * sizeof(float));
        h->dx = malloc((size_t)2 * (size_t)clt->D * sizeof(float));
        if (!h->mid || !h->dx) return ct_error("intervention: out of memory for the skip state");
    }
    return CT_OK;
}

static void hook_free(IvHook *h) {
    free(h->cur), free(h->target), free(h->delta), free(h->done), free(h->row), free(h->scratch);
    free(h->mid), free(h->dx);
    memset(h, 0, sizeof *h);
}

static void iv_hook(void *ctx, HookSite site, int layer, int pos, float *vec) {
    IvHook *h = ctx;
    const Clt *c = h->clt;
    if (!h->iv || pos >= h->Tcap) return;
    int frozen_here = h->mode == IV_CONSTRAINED && layer >= h->lo && layer <= h->hi && h->clean &&
                      pos < h->clean->T;
    if (site == HOOK_RESID_MID && h->mid && frozen_here)
        memcpy(h->mid + (size_t)pos * (size_t)c->D, vec, (size_t)c->D * sizeof(float));
    if (site == HOOK_MLP_OUT && h->mid && frozen_here) {
        // A transcoder skip stays linear in the replacement model: the blocked MLP's output
        // moves by W_skip (resid_mid - clean resid_mid).  Nothing is added when x is unchanged.
        const float *x = h->mid + (size_t)pos * (size_t)c->D;
        const float *x0 = h->clean->resid_mid + ((size_t)pos * (size_t)c->L + (size_t)layer) * (size_t)c->D;
        int moved = 0;
        for (int i = 0; i < c->D; i++) moved |= (h->dx[i] = x[i] - x0[i]) != 0.0f;
        if (moved) clt_skip_add(c, layer, h->dx, vec, h->dx + c->D);
    }
    if (site == HOOK_RESID_MID) {
        // Decide each covered spec's delta from the current (or clean) activation.
        for (int i = 0; i < h->iv->n; i++) {
            const IvSpec *s = &h->iv->specs[i];
            if (s->layer != layer || !iv_covers(s, pos)) continue;
            const float *x = vec;
            if (frozen_here)
                x = h->clean->resid_mid + ((size_t)pos * (size_t)c->L + (size_t)layer) * (size_t)c->D;
            float cur = iv_feature_act(c, layer, s->feature, x, h->scratch);
            float tgt = s->kind == IV_SET ? s->value : s->value * cur;
            size_t k = (size_t)i * (size_t)h->Tcap + (size_t)pos;
            h->cur[k] = cur;
            h->target[k] = tgt;
            h->delta[k] = tgt - cur;
            h->done[k] = 1;
        }
    } else if (site == HOOK_MLP_OUT) {
        // Add delta * decoder row for this output layer; a zero delta adds nothing at all.
        for (int i = 0; i < h->iv->n; i++) {
            const IvSpec *s = &h->iv->specs[i];
            if (s->layer > layer || !iv_covers(s, pos)) continue;
            if (c->kind == CLT_PER_LAYER && s->layer != layer) continue;
            size_t k = (size_t)i * (size_t)h->Tcap + (size_t)pos;
            if (!h->done[k] || h->delta[k] == 0.0f) continue;
            const float *row = clt_decoder_row_f32(c, s->layer, s->feature, layer);
            if (!row) {
                clt_decoder_row(c, s->layer, s->feature, layer, h->row);   // (l, f, lo) checked
                row = h->row;
            }
            simd_kernels()->axpy_f32(vec, h->delta[k], row, (size_t)c->D);
        }
    }
}

// Translate [lo, hi] to the forward's layer range.
static int hooks_range(ForwardHooks *hk, int L, int lo, int hi) {
    if (lo < 0 || hi >= L || lo > hi)
        return ct_error("layer range %d..%d: expected 0 <= A <= B < %d", lo, hi, L);
    hk->use_range = 1;
    hk->layer_lo = lo;
    hk->layer_hi = hi;
    return CT_OK;
}

// ---- context and runs -----------------------------------------------------------------------------
int iv_context_init(IvContext *cx, const Model *m, const Clt *clt, const int *tokens, int T,
                    ThreadPool *pool) {
    memset(cx, 0, sizeof *cx);
    const Config *c = &m->c;
    if (clt_check_model(clt, c->n_layers, c->dim) != CT_OK) return CT_ERR;
    if (T < 1) return ct_error("intervene: empty prompt (at least the BOS token is needed)");
    if (T > c->seq_len)
        return ct_error("intervene: prompt of %d tokens is longer than the model's context (seq_len %d)",
                        T, c->seq_len);
    cx->m = m, cx->clt = clt, cx->pool = pool;
    cx->T = T, cx->L = c->n_layers, cx->D = c->dim, cx->F = clt->F, cx->V = c->vocab_size;
    size_t TV = (size_t)T * (size_t)cx->V;
    cx->tokens = malloc((size_t)T * sizeof(int));
    cx->clean_logits = malloc(TV * sizeof(float));
    cx->logits = malloc(TV * sizeof(float));
    cx->scratch = malloc(((size_t)2 * (size_t)cx->F + (size_t)cx->D) * sizeof(float));
    if (!cx->tokens || !cx->clean_logits || !cx->logits || !cx->scratch) {
        iv_context_free(cx);
        return ct_error("intervene: out of memory for %d positions x %d logits", T, cx->V);
    }
    memcpy(cx->tokens, tokens, (size_t)T * sizeof(int));
    if (runstate_init(&cx->s, c, T) != CT_OK || capture_init(&cx->clean, c, T, CAP_ALL) != CT_OK ||
        capture_init(&cx->run, c, T, CAP_RESID | CAP_MLP | (c->final_softcap != 0.0f ? CAP_NORMS : 0)) != CT_OK ||
        model_forward_seq(m, &cx->s, tokens, T, cx->clean_logits, &cx->clean, pool) != CT_OK) {
        iv_context_free(cx);
        return ct_error_ctx("intervene: clean run");
    }
    return CT_OK;
}

void iv_context_free(IvContext *cx) {
    free(cx->tokens);
    free(cx->clean_logits);
    free(cx->logits);
    free(cx->applied);
    free(cx->scratch);
    capture_free(&cx->clean);
    capture_free(&cx->run);
    runstate_free(&cx->s);
    memset(cx, 0, sizeof *cx);
}

static const float *clean_mid(const IvContext *cx, int l, int p) {
    return cx->clean.resid_mid + ((size_t)p * (size_t)cx->L + (size_t)l) * (size_t)cx->D;
}
static const float *run_mid(const IvContext *cx, int l, int p) {
    return cx->run.resid_mid + ((size_t)p * (size_t)cx->L + (size_t)l) * (size_t)cx->D;
}

int iv_run(IvContext *cx, const Intervention *iv, IvMode mode, int lo, int hi) {
    if (intervention_check(iv, cx->clt, cx->T) != CT_OK) return CT_ERR;
    if (mode != IV_CONSTRAINED && mode != IV_ITERATIVE && mode != IV_OPEN)
        return ct_error("intervene: unknown mode %d", (int)mode);
    ForwardHooks hk;
    memset(&hk, 0, sizeof hk);
    if (mode != IV_OPEN) {
        if (hooks_range(&hk, cx->L, lo, hi) != CT_OK) return CT_ERR;
        hk.frozen = &cx->clean;
        hk.freeze_attn = 1;
        hk.freeze_norms = hk.freeze_mlp = mode == IV_CONSTRAINED;
    } else {
        lo = 0, hi = cx->L - 1;
    }
    IvHook h;
    if (hook_init(&h, cx->clt, iv, mode, lo, hi, &cx->clean, cx->T) != CT_OK) {
        hook_free(&h);
        return CT_ERR;
    }
    hk.hook = iv_hook;
    hk.ctx = &h;
    int rc = model_forward_seq_hooked(cx->m, &cx->s, cx->tokens, cx->T, cx->logits, &cx->run,
                                      cx->pool, &hk);
    // What each spec did, in (spec, position) order.
    cx->n_applied = 0;
    for (int i = 0; rc == CT_OK && i < iv->n; i++)
        for (int p = 0; p < cx->T; p++) {
            size_t k = (size_t)i * (size_t)cx->T + (size_t)p;
            if (!h.done[k]) continue;
            if (cx->n_applied == cx->cap_applied) {
                int cap = cx->cap_applied ? 2 * cx->cap_applied : 16;
                IvApplied *a = realloc(cx->applied, (size_t)cap * sizeof *a);
                if (!a) { rc = ct_error("intervene: out of memory"); break; }
                cx->applied = a;
                cx->cap_applied = cap;
            }
            const IvSpec *s = &iv->specs[i];
            cx->applied[cx->n_applied++] = (IvApplied){
                i, p, iv_feature_act(cx->clt, s->layer, s->feature, clean_mid(cx, s->layer, p), cx->scratch),
                h.cur[k], h.target[k], h.delta[k]};
        }
    hook_free(&h);
    return rc == CT_OK ? CT_OK : ct_error_ctx("intervene (%s mode)", iv_mode_name(mode));
}

// ---- reports --------------------------------------------------------------------------------------
static void softmax_d(const float *x, int n, double *p) {
    double mx = x[0], s = 0;
    for (int i = 1; i < n; i++) if (x[i] > mx) mx = x[i];
    for (int i = 0; i < n; i++) s += (p[i] = exp((double)x[i] - mx));
    for (int i = 0; i < n; i++) p[i] /= s;
}

int iv_top_tokens(const IvContext *cx, int pos, int by, int K, IvTopToken *out) {
    int V = cx->V;
    if (pos < 0 || pos >= cx->T) return ct_error("top tokens: position %d outside [0, %d)", pos, cx->T);
    double *pb = malloc((size_t)V * sizeof(double)), *pa = malloc((size_t)V * sizeof(double));
    if (!pb || !pa) {
        free(pb), free(pa);
        return ct_error("top tokens: out of memory");
    }
    const float *lb = cx->clean_logits + (size_t)pos * V, *la = cx->logits + (size_t)pos * V;
    softmax_d(lb, V, pb);
    softmax_d(la, V, pa);
    const double *key = by ? pa : pb;
    if (K > V) K = V;
    // Selection of the K best (ties: lower id), O(V K): K is small.
    int n = 0;
    for (int v = 0; v < V; v++) {
        if (n == K && !(key[v] > key[out[n - 1].token])) continue;
        int j = n < K ? n++ : K - 1;
        while (j > 0 && key[v] > key[out[j - 1].token]) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = (IvTopToken){v, lb[v], la[v], pb[v], pa[v]};
    }
    free(pb), free(pa);
    return n;
}

static int named(const Intervention *iv, int l, int p, int f) {
    for (int i = 0; iv && i < iv->n; i++) {
        const IvSpec *s = &iv->specs[i];
        if (s->layer == l && s->feature == f && iv_covers(s, p)) return 1;
    }
    return 0;
}

int iv_feature_changes(IvContext *cx, const Intervention *iv, int max_n, IvFeatureChange *out,
                       int *n_out) {
    int F = cx->F, n = 0;
    *n_out = 0;
    if (max_n <= 0) return CT_OK;
    float *buf = malloc((size_t)4 * (size_t)F * sizeof(float));
    if (!buf) return ct_error("feature changes: out of memory");
    float *pb = buf, *ab = buf + F, *pa = buf + 2 * (size_t)F, *aa = buf + 3 * (size_t)F;
    // Kept sorted by |change| descending; candidates come in (l, p, f) order, so an equal
    // change never displaces an earlier one (ties: lower (l, p, f) first).
    for (int l = 0; l < cx->L; l++)
        for (int p = 0; p < cx->T; p++) {
            clt_encode(cx->clt, l, clean_mid(cx, l, p), pb, ab);
            clt_encode(cx->clt, l, run_mid(cx, l, p), pa, aa);
            for (int f = 0; f < F; f++) {
                float d = fabsf(aa[f] - ab[f]);
                if (!(d > 0) || (n == max_n && !(d > fabsf(out[n - 1].act_after - out[n - 1].act_before))))
                    continue;
                if (named(iv, l, p, f)) continue;
                int j = n < max_n ? n++ : max_n - 1;
                while (j > 0 && d > fabsf(out[j - 1].act_after - out[j - 1].act_before)) {
                    out[j] = out[j - 1];
                    j--;
                }
                out[j] = (IvFeatureChange){l, p, f, pb[f], pa[f], ab[f], aa[f]};
            }
        }
    free(buf);
    *n_out = n;
    return CT_OK;
}

int iv_feature_probe(IvContext *cx, int l, int p, int f, IvFeatureChange *out) {
    if (l < 0 || l >= cx->L || p < 0 || p >= cx->T || f < 0 || f >= cx->F)
        return ct_error("probe %d:%d:%d: expected layer in 0..%d, position in 0..%d, feature in 0..%d",
                        l, p, f, cx->L - 1, cx->T - 1, cx->F - 1);
    *out = (IvFeatureChange){l, p, f,
                             iv_feature_pre(cx->clt, l, f, clean_mid(cx, l, p)),
                             iv_feature_pre(cx->clt, l, f, run_mid(cx, l, p)),
                             iv_feature_act(cx->clt, l, f, clean_mid(cx, l, p), cx->scratch),
                             iv_feature_act(cx->clt, l, f, run_mid(cx, l, p), cx->scratch)};
    return CT_OK;
}

// ---- steered generation ---------------------------------------------------------------------------
int iv_generate(const Model *m, const Clt *clt, const Intervention *iv, const int *prompt,
                int n_prompt, int n_new, Sampler *smp, int stop_token, ThreadPool *pool,
                int *tokens_out, int *n_out, float *logits_out) {
    const Config *c = &m->c;
    *n_out = 0;
    if (n_prompt < 1) return ct_error("steer: empty prompt (at least the BOS token is needed)");
    if (n_new < 0) return ct_error("steer: %d new tokens requested", n_new);
    int total = n_prompt + n_new;
    if (total > c->seq_len)
        return ct_error("steer: prompt (%d tokens) + new tokens (%d) exceed the model's context "
                        "(seq_len %d)", n_prompt, n_new, c->seq_len);
    int have_iv = iv && iv->n > 0;
    if (have_iv) {
        if (!clt) return ct_error("steer: an intervention needs a transcoder");
        if (clt_check_model(clt, c->n_layers, c->dim) != CT_OK ||
            intervention_check(iv, clt, total) != CT_OK)
            return CT_ERR;
    }
    memcpy(tokens_out, prompt, (size_t)n_prompt * sizeof(int));
    *n_out = n_prompt;
    if (n_new == 0) return CT_OK;
    RunState s;
    IvHook h;
    memset(&h, 0, sizeof h);
    ForwardHooks hk;
    memset(&hk, 0, sizeof hk);
    if (runstate_init(&s, c, total) != CT_OK) return CT_ERR;
    int rc = CT_OK;
    if (have_iv) {
        rc = hook_init(&h, clt, iv, IV_OPEN, 0, c->n_layers - 1, NULL, total);
        hk.hook = iv_hook;
        hk.ctx = &h;
    }
    size_t V = (size_t)c->vocab_size;
    float *lg = malloc(V * sizeof(float));
    if (!lg) rc = ct_error("steer: out of memory");
    // Prompt as one prefill (its last logits are left in s.logits), then one token at a time;
    // the hook re-applies the intervention at every covered position, new ones included.
    if (rc == CT_OK)
        rc = model_forward_seq_hooked(m, &s, prompt, n_prompt, NULL, NULL, pool, have_iv ? &hk : NULL);
    const float *logits = s.logits;
    for (int i = 0; rc == CT_OK && i < n_new; i++) {
        if (i > 0) {
            int pos = n_prompt + i - 1;
            logits = model_forward_hooked(m, &s, tokens_out[pos], pos, NULL, pool, have_iv ? &hk : NULL);
            if (!logits) { rc = CT_ERR; break; }
        }
        if (logits_out) memcpy(logits_out + (size_t)i * V, logits, V * sizeof(float));
        memcpy(lg, logits, V * sizeof(float));   // the sampler scales / softmaxes in place
        int next = sampler_sample(smp, lg);
        tokens_out[(*n_out)++] = next;
        if (next == stop_token) break;
    }
    free(lg);
    hook_free(&h);
    runstate_free(&s);
    return rc == CT_OK ? CT_OK : ct_error_ctx("steer");
}

// ---- statistics -----------------------------------------------------------------------------------
static double pearson(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= n, my /= n;
    for (int i = 0; i < n; i++) {
        double a = x[i] - mx, b = y[i] - my;
        sxy += a * b, sxx += a * a, syy += b * b;
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

typedef struct { double v; int i; } RankItem;
static int rank_cmp(const void *a, const void *b) {
    const RankItem *x = a, *y = b;
    return x->v < y->v ? -1 : x->v > y->v ? 1 : x->i - y->i;
}

// Ranks 1..n with ties sharing their average rank.
static void ranks(const double *x, int n, double *r, RankItem *tmp) {
    for (int i = 0; i < n; i++) tmp[i] = (RankItem){x[i], i};
    qsort(tmp, (size_t)n, sizeof *tmp, rank_cmp);
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && tmp[j + 1].v == tmp[i].v) j++;
        double avg = 0.5 * (double)(i + j) + 1.0;
        for (int k = i; k <= j; k++) r[tmp[k].i] = avg;
        i = j + 1;
    }
}

void iv_stats(const double *actual, const double *pred, int n, IvStats *st) {
    memset(st, 0, sizeof *st);
    st->n = n;
    st->pearson = st->spearman = st->cosine = st->sign_agree = NAN;
    if (n <= 0) return;
    double dot = 0, na = 0, np = 0, big = 0;
    for (int i = 0; i < n; i++) {
        dot += actual[i] * pred[i], na += actual[i] * actual[i], np += pred[i] * pred[i];
        double e = fabs(actual[i] - pred[i]);
        if (e > st->max_abs_err || e != e) st->max_abs_err = e;
        if (fabs(pred[i]) > st->max_abs_pred) st->max_abs_pred = fabs(pred[i]);
        if (fabs(actual[i]) > big) big = fabs(actual[i]);
    }
    if (st->max_abs_pred > big) big = st->max_abs_pred;
    if (na > 0 && np > 0) st->cosine = dot / sqrt(na * np);
    st->pearson = pearson(actual, pred, n);
    double tol = 1e-6 * big;
    int cnt = 0, agree = 0;
    for (int i = 0; i < n; i++) {
        if (!(fabs(actual[i]) > tol) && !(fabs(pred[i]) > tol)) continue;
        int sa = actual[i] > tol ? 1 : actual[i] < -tol ? -1 : 0;
        int sp = pred[i] > tol ? 1 : pred[i] < -tol ? -1 : 0;
        cnt++, agree += sa == sp;
    }
    if (cnt) st->sign_agree = (double)agree / cnt;
    if (n >= 2) {
        double *ra = malloc((size_t)n * sizeof(double)), *rp = malloc((size_t)n * sizeof(double));
        RankItem *tmp = malloc((size_t)n * sizeof *tmp);
        if (ra && rp && tmp) {
            ranks(actual, n, ra, tmp);
            ranks(pred, n, rp, tmp);
            st->spearman = pearson(ra, rp, n);
        }
        free(ra), free(rp), free(tmp);
    }
}

// The last position's logits before the final soft-cap (Gemma-2): W_U final_normed, through
// the kernel table's matvec like the forward's classifier.  The capture needs CAP_NORMS.
static void precap_logits(const IvContext *cx, const Capture *cap, float *out) {
    const Model *m = cx->m;
    size_t D = (size_t)m->c.dim;
    simd_kernels()->matvec_f32(out, m->w.wcls, cap->final_normed + (size_t)(cx->T - 1) * D, (size_t)cx->V, D);
}

// ---- validation -----------------------------------------------------------------------------------
// A[t, s] from the CSR, 0 when absent (or not kept with pruned_only).
static float edge_at(const Graph *g, int t, int s, int pruned_only) {
    uint64_t lo = g->sp_row[t], hi = g->sp_row[t + 1];
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (g->sp_col[mid] < (uint32_t)s) lo = mid + 1;
        else hi = mid;
    }
    if (lo >= g->sp_row[t + 1] || g->sp_col[lo] != (uint32_t)s) return 0.0f;
    if (pruned_only && !g->sp_keep[lo]) return 0.0f;
    return g->sp_val[lo];
}

void iv_validation_free(IvValidation *v) {
    for (int i = 0; v->nodes && i < v->n_nodes; i++) {
        IvValNode *nd = &v->nodes[i];
        free(nd->targets);
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) free(nd->actual[a][b]), free(nd->pred[a][b]);
    }
    free(v->nodes);
    memset(v, 0, sizeof *v);
}

typedef struct { double I; int node; } InflItem;
static int infl_cmp(const void *a, const void *b) {
    const InflItem *x = a, *y = b;
    if (x->I > y->I) return -1;
    if (x->I < y->I) return 1;
    return x->node - y->node;
}

// Sanity: the graph belongs to this model, transcoder and prompt.
static int validate_check_graph(const IvContext *cx, const Graph *g) {
    if (graph_check(g) != CT_OK) return CT_ERR;
    if (g->L != cx->L || g->T != cx->T || (g->D && g->D != cx->D) || (g->F && g->F != cx->F) ||
        (g->V && g->V != cx->V))
        return ct_error("validate: the graph has L=%d T=%d D=%d F=%d V=%d, the model/transcoder/prompt "
                        "give L=%d T=%d D=%d F=%d V=%d", g->L, g->T, g->D, g->F, g->V, cx->L, cx->T,
                        cx->D, cx->F, cx->V);
    if (g->model_fp && cx->m->fingerprint && g->model_fp != cx->m->fingerprint) {
        char a[17], b[17];
        ct_fingerprint_hex(g->model_fp, a);
        ct_fingerprint_hex(cx->m->fingerprint, b);
        return ct_error("validate: the graph was built with model xxh3 %s, this model is %s", a, b);
    }
    for (int p = 0; g->tokens && p < g->T; p++)
        if (g->tokens[p] != cx->tokens[p])
            return ct_error("validate: prompt token %d is %d in the graph but %d here", p, g->tokens[p],
                            cx->tokens[p]);
    return CT_OK;
}

int iv_validate(IvContext *cx, Graph *g, int top_n, int pruned_only, IvValidation *out) {
    memset(out, 0, sizeof *out);
    out->pruned_only = pruned_only;
    if (validate_check_graph(cx, g) != CT_OK) return CT_ERR;
    if (graph_build_sparse(g) != CT_OK) return ct_error_ctx("validate");
    if (pruned_only && (!g->node_keep || !g->sp_keep))
        return ct_error("validate: --pruned needs a pruned graph (node and edge keep flags)");
    if (top_n < 1) return ct_error("validate: --top must be >= 1, got %d", top_n);
    int N = g->n_nodes, nF = g->n_features, L = cx->L, T = cx->T, V = cx->V;
    int lg0 = nF + g->n_errors + g->n_tokens;   // first logit node
    if (g->n_logits < 1) return ct_error("validate: the graph has no logit nodes");
    // Every feature node's activation and every logit must match the clean run.
    for (int i = 0; i < nF; i++) {
        const GraphNode *nd = &g->nodes[i];
        if (nd->layer < 0 || nd->layer >= L || nd->pos < 0 || nd->pos >= T || nd->feature < 0 ||
            nd->feature >= cx->F)
            return ct_error("validate: graph node %d is feature (%d, %d, %d), outside the model "
                            "(L=%d, T=%d, F=%d)", i, nd->layer, nd->pos, nd->feature, L, T, cx->F);
        float a = iv_feature_act(cx->clt, nd->layer, nd->feature, clean_mid(cx, nd->layer, nd->pos),
                                 cx->scratch);
        if (nd->activation == 0.0f || !isfinite(nd->activation))
            return ct_error("validate: graph feature node %d (layer %d, pos %d, feature %d) has activation "
                            "%g; feature nodes must be active", i, nd->layer, nd->pos, nd->feature,
                            (double)nd->activation);
        if (!(fabsf(a - nd->activation) <= 1e-4f * fmaxf(1.0f, fabsf(nd->activation))))
            return ct_error("validate: graph feature node %d (layer %d, pos %d, feature %d) has activation "
                            "%g, the transcoder gives %g on this prompt: is this the transcoder the graph "
                            "was built with?", i, nd->layer, nd->pos, nd->feature,
                            (double)nd->activation, (double)a);
    }
    for (int i = lg0; i < N; i++) {
        const GraphNode *nd = &g->nodes[i];
        if (nd->token < 0 || nd->token >= V)
            return ct_error("validate: logit node %d names token %d outside the vocabulary [0, %d)", i,
                            nd->token, V);
        float x = cx->clean_logits[(size_t)(T - 1) * V + nd->token];
        if (!(fabsf(x - nd->activation) <= 1e-3f * fmaxf(1.0f, fabsf(x))))
            return ct_error("validate: logit node %d (token %d) holds %g, the model gives %g: a different "
                            "model or prompt, or a difference target (--target-diff), which validate "
                            "does not support", i, nd->token, (double)nd->activation, (double)x);
    }
    // Rows the attribution computed (a visited feature has at least one incoming edge).
    uint8_t *visited = calloc((size_t)N, 1);
    double *I = malloc((size_t)N * sizeof(double)), *d = malloc((size_t)N * sizeof(double));
    int softcap = cx->m->c.final_softcap != 0.0f;
    float *pre_clean = NULL, *pre_run = NULL;
    InflItem *order = malloc((size_t)(nF ? nF : 1) * sizeof *order);
    int rc = CT_ERR;
    Intervention iv;
    intervention_init(&iv);
    if (!visited || !I || !d || !order) {
        ct_error("validate: out of memory for %d nodes", N);
        goto done;
    }
    for (int t = 0; t < N; t++)
        for (uint64_t k = g->sp_row[t]; k < g->sp_row[t + 1]; k++)
            if (!pruned_only || g->sp_keep[k]) { visited[t] = 1; break; }
    if (prune_influence(g, NULL, I) != CT_OK) goto done;
    int n_cand = 0;
    for (int i = 0; i < nF; i++)
        if (!pruned_only || g->node_keep[i]) order[n_cand++] = (InflItem){I[i], i};
    qsort(order, (size_t)n_cand, sizeof *order, infl_cmp);
    if (top_n > n_cand) top_n = n_cand;
    out->nodes = calloc((size_t)(top_n ? top_n : 1), sizeof *out->nodes);
    if (!out->nodes) {
        ct_error("validate: out of memory");
        goto done;
    }
    // Clean demeaned logits of the last position (before any final soft-cap, as the graph's
    // logit targets: W_U final_normed; pre_run holds the intervened run's).
    const float *cl = cx->clean_logits + (size_t)(T - 1) * V;
    if (softcap) {
        if (!(pre_clean = malloc((size_t)V * sizeof(float))) || !(pre_run = malloc((size_t)V * sizeof(float)))) {
            ct_error("validate: out of memory");
            goto done;
        }
        precap_logits(cx, &cx->clean, pre_clean);
        cl = pre_clean;
    }
    double cmean = 0;
    for (int v = 0; v < V; v++) cmean += cl[v];
    cmean /= V;

    for (int r = 0; r < top_n; r++) {
        int s = order[r].node;
        const GraphNode *sn = &g->nodes[s];
        IvValNode *vn = &out->nodes[out->n_nodes++];
        vn->node = s, vn->layer = sn->layer, vn->pos = sn->pos, vn->feature = sn->feature;
        vn->activation = sn->activation;
        // targets: downstream visited features, then every logit
        vn->targets = malloc((size_t)(N ? N : 1) * sizeof(int));
        if (!vn->targets) { ct_error("validate: out of memory"); goto done; }
        for (int t = 0; t < nF; t++) {
            const GraphNode *tn = &g->nodes[t];
            if (t == s || !visited[t] || tn->layer <= sn->layer || tn->pos < sn->pos) continue;
            if (pruned_only && !g->node_keep[t]) continue;
            vn->targets[vn->n_targets++] = t;
        }
        for (int t = lg0; t < N; t++) vn->targets[vn->n_targets++] = t;
        int nt = vn->n_targets;
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                vn->actual[a][b] = calloc((size_t)nt, sizeof(double));
                vn->pred[a][b] = calloc((size_t)nt, sizeof(double));
                if (!vn->actual[a][b] || !vn->pred[a][b]) { ct_error("validate: out of memory"); goto done; }
            }
        for (int kind = 0; kind < 2; kind++) {
            IvSpec sp;
            memset(&sp, 0, sizeof sp);
            sp.layer = sn->layer, sp.pos_lo = sp.pos_hi = sn->pos, sp.feature = sn->feature;
            sp.kind = kind == IV_VAL_ABLATE ? IV_SET : IV_SCALE;
            sp.value = kind == IV_VAL_ABLATE ? 0.0f : 2.0f;
            snprintf(sp.text, sizeof sp.text, "%d:%d:%d%s", sn->layer, sn->pos, sn->feature,
                     kind == IV_VAL_ABLATE ? "=0" : "*2");
            iv.n = 0;
            if (intervention_add(&iv, &sp) != CT_OK) goto done;
            for (int mode = 0; mode < 2; mode++) {
                if (iv_run(cx, &iv, mode == IV_VAL_CONSTRAINED ? IV_CONSTRAINED : IV_ITERATIVE, 0, L - 1) != CT_OK)
                    goto done;
                double delta = cx->n_applied ? cx->applied[0].delta : 0.0;
                vn->delta[kind] = (float)delta;
                // measured
                const float *al = cx->logits + (size_t)(T - 1) * V;
                if (softcap) {
                    precap_logits(cx, &cx->run, pre_run);
                    al = pre_run;
                }
                double amean = 0;
                for (int v = 0; v < V; v++) amean += al[v];
                amean /= V;
                for (int j = 0; j < nt; j++) {
                    const GraphNode *tn = &g->nodes[vn->targets[j]];
                    double x;
                    if (tn->kind == NODE_LOGIT)
                        x = ((double)al[tn->token] - amean) - ((double)cl[tn->token] - cmean);
                    else
                        x = (double)iv_feature_pre(cx->clt, tn->layer, tn->feature, run_mid(cx, tn->layer, tn->pos)) -
                            (double)iv_feature_pre(cx->clt, tn->layer, tn->feature, clean_mid(cx, tn->layer, tn->pos));
                    vn->actual[mode][kind][j] = x;
                }
                // predicted
                if (mode == IV_VAL_CONSTRAINED) {
                    for (int j = 0; j < nt; j++)
                        vn->pred[mode][kind][j] =
                            (double)edge_at(g, vn->targets[j], s, pruned_only) / sn->activation * delta;
                } else {
                    // Path sums in node order: feature edges only go to later layers.
                    memset(d, 0, (size_t)N * sizeof(double));
                    d[s] = delta;
                    for (int t = 0; t < N; t++) {
                        if (t == s || (t >= nF && t < lg0)) continue;
                        double acc = 0;
                        for (uint64_t k = g->sp_row[t]; k < g->sp_row[t + 1]; k++) {
                            uint32_t j = g->sp_col[k];
                            if (j >= (uint32_t)nF || d[j] == 0 || (pruned_only && !g->sp_keep[k])) continue;
                            acc += (double)g->sp_val[k] / g->nodes[j].activation * d[j];
                        }
                        d[t] = acc;
                    }
                    for (int j = 0; j < nt; j++) vn->pred[mode][kind][j] = d[vn->targets[j]];
                }
                iv_stats(vn->actual[mode][kind], vn->pred[mode][kind], nt, &vn->st[mode][kind]);
            }
        }
    }
    // Pooled statistics.
    {
        size_t tot = 0;
        for (int r = 0; r < out->n_nodes; r++) tot += (size_t)out->nodes[r].n_targets;
        double *xa = malloc((tot ? tot : 1) * sizeof(double)), *xp = malloc((tot ? tot : 1) * sizeof(double));
        if (!xa || !xp) {
            free(xa), free(xp);
            ct_error("validate: out of memory");
            goto done;
        }
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                for (int only_logits = 0; only_logits < 2; only_logits++) {
                    int n = 0;
                    for (int r = 0; r < out->n_nodes; r++) {
                        const IvValNode *vn = &out->nodes[r];
                        for (int j = 0; j < vn->n_targets; j++) {
                            if (only_logits && vn->targets[j] < lg0) continue;
                            xa[n] = vn->actual[a][b][j], xp[n] = vn->pred[a][b][j], n++;
                        }
                    }
                    iv_stats(xa, xp, n, only_logits ? &out->overall_logits[a][b] : &out->overall[a][b]);
                }
        free(xa), free(xp);
    }
    rc = CT_OK;
done:
    intervention_free(&iv);
    free(visited), free(I), free(d), free(order), free(pre_clean), free(pre_run);
    if (rc != CT_OK) iv_validation_free(out);
    return rc;
}
