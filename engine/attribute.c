// attribute.c — attribution rows by batched backward sweeps through the frozen linear model,
// logit targets, the influence-ordered feature budget, and the Graph they fill.
// The algorithm, with shapes, is in attribute.h; the sweep itself is attribute_sweep.h,
// instantiated below for float (kernel table) and double (--fp64).
#include "engine/attribute.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "simd/simd.h"

// ---- per-run state ---------------------------------------------------------------------------
struct Sweeper {
    const Replacement *r;
    ThreadPool *pool;
    int nt;             // tasks per parallel step (= threads)
    int fp64;           // REAL = double when set, else float
    int B;              // max rows per sweep
    int L, T, D, H, Hkv, Dh, Dq, Dkv, V;
    size_t ncols;       // n_active + L*T + T
    int center;         // LayerNorm model (GPT-2): value-path and logit gradients are centred
    int post;           // Gemma-2 post-norms: GO scaled by the post-attention norm's frozen factor,
                        // feature targets and the skip by the pre-FFN norm's (x_l = resid * inv)
    // REAL copies, made once per run
    void *WoT;          // (L, H*Dh, D)    WoT[l][j'][i] = wo[l][i][j] (Gemma-2: * post_att[l][i]),
                        // row j' of column j = (kvh grp + hh) Dh + e at (hh Hkv + kvh) Dh + e: GO's
                        // columns grouped by a head's index hh in its kv group (mix_task)
    void *WvT;          // (L, D, Hkv*Dh)  WvT[l][i][j] = rms_att[l][i] * wv[l][j][i]
    void *WskT;         // (L, D, D)       WskT[l][i][o] = W_skip[l][o][i], or NULL
    void *emb;          // (T, D)          embedding output of tok_p at p (model_embed)
    double *ufin;       // (D)             rms_final * inv_rms_final(T-1)
    double *wmean;      // (D)             mean over the vocabulary of the classifier rows
    int max_nlp;        // largest source block (rows: 1 error + features)
    int src_chunk;      // source rows gathered and multiplied at a time
    // sweep buffers
    void *G;            // (T, B, D)
    void *GO;           // (T, B, H*Dh)
    void *tvec;         // (B, D) injection vectors of the current sweep
    void **S;           // (nt) (src_chunk, D) gathered sources
    void **Y;           // (nt) (B, src_chunk) source products
    int **fidx;         // (nt) (max_nlp) feature indices of a source block
    void **GV;          // (nt) (MIX_TB, B, Hkv*Dh) a block of positions being mixed
    void **GX;          // (nt) (B, D)
    void **AH;          // (nt) (MIX_PC, grp, MIX_TB, Dkv) pattern coefficients of (p, hh, t): head
                        // kvh grp + hh's weight of (p, t) repeated over its Dh dims at kvh Dh
    void **XP;          // (nt) (MIX_PC grp) GO row pointers of one gradient row (mix_task)
    float **tmp;        // (nt) (D) decoder-row conversion scratch
    int *tl, *tpos;     // (B) targets of the current sweep
    void **rowp;        // (B) output rows of the current sweep
    int *n_slot, *nr_slot;      // (T)
    int *slot_row, *row_slot;   // (T, B)
};

#define MIX_TB 8   // positions mixed together (attribute_sweep.h mix_task)
#define MIX_PC 16  // later positions mixed into them per kernel call (mix_task)

typedef struct SweepJob {
    const Sweeper *sw;
    int l;              // layer being swept
    int P;              // positions 0..P-1
    int nb;             // rows
    const int *n_slot;  // (P) rows alive at each position (attribute_sweep.h: slots)
    const int *nr_slot; // (P) of which alive above layer l (they read layer l's sources)
    const int *slot_row;// (P, B) row of each slot
    const int *row_slot;// (P, B) slot of each row, -1 = not alive there
    const int *tpos;    // (nb)
    const void *tvec;   // (nb, D) REAL
    void *const *rows;  // (nb) REAL output rows
} SweepJob;

// ---- primitives for the two instantiations ----------------------------------------------------
// Y[t*rows + r] = W[r] . X[t]   W: (rows, cols), X: (T, cols)
static inline void mm_f32(float *Y, const float *W, const float *X, size_t T, size_t rows, size_t cols) {
    if (T && rows) simd_kernels()->matmul_f32(Y, W, X, T, rows, cols);
}
// Double reference order: four interleaved partial sums, combined pairwise.
static void mm_f64(double *Y, const double *W, const double *X, size_t T, size_t rows, size_t cols) {
    for (size_t t = 0; t < T; t++) {
        const double *x = X + t * cols;
        for (size_t r = 0; r < rows; r++) {
            const double *w = W + r * cols;
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            size_t c = 0;
            for (; c + 4 <= cols; c += 4) {
                s0 += w[c] * x[c];
                s1 += w[c + 1] * x[c + 1];
                s2 += w[c + 2] * x[c + 2];
                s3 += w[c + 3] * x[c + 3];
            }
            for (; c < cols; c++) s0 += w[c] * x[c];
            Y[t * rows + r] = (s0 + s1) + (s2 + s3);
        }
    }
}
// Elementwise y += a x (no reduction: the split over threads cannot change a bit).  Short
// rows (a head, Dh < 16) inline; longer through the kernel table.
static inline void axpy_f32(float *restrict y, float a, const float *restrict x, size_t n) {
    if (n >= 16) {
        simd_kernels()->axpy_f32(y, a, x, n);
        return;
    }
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}
static inline void axpy_f64(double *restrict y, double a, const double *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}
// Per row t < T, for s < k in order: Y[t] += C[s lds + t ldt] X[s] elementwise.
static inline void axpyv_f32(float *const *Y, size_t T, const float *C, size_t ldt, size_t lds, const float *const *X,
                             size_t k, size_t n) {
    simd_kernels()->axpyv_f32(Y, T, C, ldt, lds, X, k, n);
}
static inline void axpyv_f64(double *const *Y, size_t T, const double *C, size_t ldt, size_t lds,
                             const double *const *X, size_t k, size_t n) {
    for (size_t t = 0; t < T; t++)
        for (size_t s = 0; s < k; s++)
            for (size_t i = 0; i < n; i++) Y[t][i] += C[s * lds + t * ldt + i] * X[s][i];
}
// Load fp32 data into REAL.
static inline void loadf_f32(float *dst, const float *src, size_t n) { memcpy(dst, src, n * sizeof(float)); }
static inline void loadf_f64(double *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
}
static inline float dot_f32(const float *a, const float *b, size_t n) { return simd_kernels()->dot_f32(a, b, n); }
static inline double dot_f64(const double *a, const double *b, size_t n) {
    double s = 0;
    mm_f64(&s, a, b, 1, 1, n);
    return s;
}

#define REAL float
#define SFX(x) x##_f32
#define MM mm_f32
#define AXPY axpy_f32
#define AXPYV axpyv_f32
#define LOADF loadf_f32
#define DOT dot_f32
#include "engine/attribute_sweep.h"
#undef REAL
#undef SFX
#undef MM
#undef AXPY
#undef AXPYV
#undef LOADF
#undef DOT
#define REAL double
#define SFX(x) x##_f64
#define MM mm_f64
#define AXPY axpy_f64
#define AXPYV axpyv_f64
#define LOADF loadf_f64
#define DOT dot_f64
#include "engine/attribute_sweep.h"
#undef REAL
#undef SFX
#undef MM
#undef AXPY
#undef AXPYV
#undef LOADF
#undef DOT

// ---- sweeper ---------------------------------------------------------------------------------
static void *alloc_real(int fp64, size_t n) {
    return malloc((n ? n : 1) * (fp64 ? sizeof(double) : sizeof(float)));
}
static inline void put_real(void *a, int fp64, size_t i, double v) {
    if (fp64) ((double *)a)[i] = v;
    else ((float *)a)[i] = (float)v;
}

size_t sweeper_ncols(const Sweeper *sw) { return sw->ncols; }

void sweeper_free(Sweeper *sw) {
    if (!sw) return;
    free(sw->WoT), free(sw->WvT), free(sw->WskT), free(sw->emb);
    free(sw->ufin), free(sw->wmean), free(sw->G), free(sw->GO), free(sw->tvec);
    for (int i = 0; i < sw->nt; i++) {
        if (sw->S) free(sw->S[i]);
        if (sw->Y) free(sw->Y[i]);
        if (sw->GV) free(sw->GV[i]);
        if (sw->GX) free(sw->GX[i]);
        if (sw->tmp) free(sw->tmp[i]);
        if (sw->AH) free(sw->AH[i]);
        if (sw->XP) free(sw->XP[i]);
        if (sw->fidx) free(sw->fidx[i]);
    }
    free(sw->fidx), free(sw->S), free(sw->Y), free(sw->GV), free(sw->GX), free(sw->tmp), free(sw->AH), free(sw->XP);
    free(sw->tl), free(sw->tpos), free(sw->rowp);
    free(sw->n_slot), free(sw->nr_slot), free(sw->slot_row), free(sw->row_slot);
    free(sw);
}

int sweeper_init(Sweeper **out, const Replacement *r, int max_batch, int fp64, ThreadPool *pool) {
    *out = NULL;
    if (max_batch < 1) return ct_error("attribution: batch size must be >= 1, got %d", max_batch);
    const Model *m = r->m;
    const Config *c = &m->c;
    Sweeper *sw = calloc(1, sizeof *sw);
    if (!sw) return ct_error("attribution: out of memory");
    sw->r = r;
    sw->pool = pool;
    sw->nt = pool_size(pool);
    sw->fp64 = fp64 != 0;
    sw->B = max_batch;
    sw->L = r->L, sw->T = r->T, sw->D = r->D, sw->V = r->V;
    sw->H = c->n_heads, sw->Hkv = c->n_kv_heads, sw->Dh = c->head_dim;
    sw->Dq = sw->H * sw->Dh, sw->Dkv = sw->Hkv * sw->Dh;
    sw->center = c->norm_kind == NORM_LAYER;
    sw->post = c->post_norms != 0;
    size_t L = (size_t)sw->L, T = (size_t)sw->T, D = (size_t)sw->D, Dq = (size_t)sw->Dq,
           Dkv = (size_t)sw->Dkv, B = (size_t)sw->B, V = (size_t)sw->V;
    int f64 = sw->fp64;
    sw->ncols = (size_t)r->n_active + L * T + T;

    // largest source block: 1 error row + active features of layers <= l at p
    int mx = 1;
    for (size_t l = 0; l < L; l++)
        for (size_t p = 0; p < T; p++) {
            int n = 1;
            size_t ls0 = r->clt->kind == CLT_PER_LAYER ? l : 0;
            for (size_t ls = ls0; ls <= l; ls++) n += r->lp_start[ls * T + p + 1] - r->lp_start[ls * T + p];
            if (n > mx) mx = n;
        }
    sw->max_nlp = mx;
    // ~128 KiB of gathered rows per product: the copy and the matmul meet in L2
    int ch = (int)((128u << 10) / (D * (f64 ? sizeof(double) : sizeof(float))));
    sw->src_chunk = ch < 16 ? 16 : ch > mx ? mx : ch;

    sw->WoT = alloc_real(f64, L * Dq * D);
    sw->WvT = alloc_real(f64, L * D * Dkv);
    sw->WskT = r->clt->has_skip ? alloc_real(f64, L * D * D) : NULL;
    sw->emb = alloc_real(f64, T * D);
    sw->ufin = malloc(D * sizeof(double));
    sw->wmean = calloc(D, sizeof(double));
    sw->G = alloc_real(f64, T * B * D);
    sw->GO = alloc_real(f64, T * B * Dq);
    sw->tvec = alloc_real(f64, B * D);
    sw->S = calloc((size_t)sw->nt, sizeof(void *));
    sw->Y = calloc((size_t)sw->nt, sizeof(void *));
    sw->GV = calloc((size_t)sw->nt, sizeof(void *));
    sw->GX = calloc((size_t)sw->nt, sizeof(void *));
    sw->tmp = calloc((size_t)sw->nt, sizeof(float *));
    sw->AH = calloc((size_t)sw->nt, sizeof(void *));
    sw->XP = calloc((size_t)sw->nt, sizeof(void *));
    sw->fidx = calloc((size_t)sw->nt, sizeof(int *));
    sw->tl = malloc(B * sizeof(int));
    sw->tpos = malloc(B * sizeof(int));
    sw->rowp = malloc(B * sizeof(void *));
    sw->n_slot = malloc(T * sizeof(int));
    sw->nr_slot = malloc(T * sizeof(int));
    sw->slot_row = malloc(T * B * sizeof(int));
    sw->row_slot = malloc(T * B * sizeof(int));
    int ok = sw->WoT && sw->WvT && (sw->WskT || !r->clt->has_skip) && sw->emb &&
             sw->ufin && sw->wmean && sw->G && sw->GO && sw->tvec && sw->S && sw->Y && sw->GV &&
             sw->GX && sw->tmp && sw->AH && sw->XP && sw->fidx && sw->tl && sw->tpos && sw->rowp && sw->n_slot && sw->nr_slot &&
             sw->slot_row && sw->row_slot;
    for (int i = 0; ok && i < sw->nt; i++) {
        sw->S[i] = alloc_real(f64, (size_t)sw->src_chunk * D);
        sw->Y[i] = alloc_real(f64, B * (size_t)sw->src_chunk);
        sw->fidx[i] = malloc((size_t)mx * sizeof(int));
        sw->GV[i] = alloc_real(f64, (size_t)MIX_TB * B * Dkv);
        sw->GX[i] = alloc_real(f64, B * D);
        sw->tmp[i] = malloc(D * sizeof(float));
        sw->AH[i] = alloc_real(f64, (size_t)MIX_PC * MIX_TB * Dq);
        sw->XP[i] = malloc((size_t)MIX_PC * (size_t)(sw->H / sw->Hkv) * sizeof(void *));
        ok = sw->S[i] && sw->Y[i] && sw->GV[i] && sw->GX[i] && sw->tmp[i] && sw->AH[i] && sw->XP[i] && sw->fidx[i];
    }
    if (!ok) {
        sweeper_free(sw);
        return ct_error("attribution: out of memory for sweep buffers (batch %d, T = %d, D = %d, "
                        "largest source block %d rows); try a smaller --batch", max_batch, r->T, r->D, mx);
    }

    const Weights *w = &m->w;
    for (size_t l = 0; l < L; l++) {
        const float *wo = w->wo + l * D * Dq;   // (D, Dq)
        const float *wv = w->wv + l * Dkv * D;  // (Dkv, D)
        size_t Dh = (size_t)sw->Dh, grp = (size_t)(sw->H / sw->Hkv);
        for (size_t i = 0; i < D; i++)
            for (size_t jq = 0; jq < Dq; jq++) {
                size_t h = jq / Dh, e = jq % Dh, row = ((h % grp) * (size_t)sw->Hkv + h / grp) * Dh + e;
                double v = wo[i * Dq + jq];   // Gemma-2: the post-attention norm's gain folded in
                put_real(sw->WoT, f64, (l * Dq + row) * D + i, sw->post ? (double)w->post_att[l * D + i] * v : v);
            }
        for (size_t jv = 0; jv < Dkv; jv++)  // the attention norm's gain folded in
            for (size_t i = 0; i < D; i++)
                put_real(sw->WvT, f64, (l * D + i) * Dkv + jv, (double)w->rms_att[l * D + i] * (double)wv[jv * D + i]);
        if (sw->WskT) {
            const float *ws = r->clt->layers[l].W_skip;  // (D out, D in)
            for (size_t o = 0; o < D; o++)
                for (size_t i = 0; i < D; i++) put_real(sw->WskT, f64, (l * D + i) * D + o, ws[o * D + i]);
        }
    }
    float *e = malloc(D * sizeof(float));
    if (!e) {
        sweeper_free(sw);
        return ct_error("attribution: out of memory");
    }
    for (size_t t = 0; t < T; t++) {
        model_embed(m, r->tokens[t], (int)t, e);
        for (size_t i = 0; i < D; i++) put_real(sw->emb, f64, t * D + i, e[i]);
    }
    free(e);
    double invf = r->cap.inv_rms_final[T - 1];
    for (size_t i = 0; i < D; i++) sw->ufin[i] = (double)w->rms_final[i] * invf;
    for (size_t v = 0; v < V; v++)
        for (size_t i = 0; i < D; i++) sw->wmean[i] += w->wcls[v * D + i];
    for (size_t i = 0; i < D; i++) sw->wmean[i] /= (double)V;
    *out = sw;
    return CT_OK;
}

static int target_check(const Sweeper *sw, const AttribTarget *t, int i) {
    if (t->kind == TARGET_FEATURE) {
        if (t->layer < 0 || t->layer >= sw->L || t->pos < 0 || t->pos >= sw->T || t->feature < 0 ||
            t->feature >= sw->r->F)
            return ct_error("attribution target %d: feature (layer %d, pos %d, feature %d) outside "
                            "L = %d, T = %d, F = %d", i, t->layer, t->pos, t->feature, sw->L, sw->T, sw->r->F);
    } else if (t->kind == TARGET_LOGIT) {
        if (t->tok_a < 0 || t->tok_a >= sw->V || t->tok_b >= sw->V)
            return ct_error("attribution target %d: token %d%s%d outside the vocabulary [0, %d)", i,
                            t->tok_a, t->tok_b >= 0 ? " - " : "", t->tok_b >= 0 ? t->tok_b : 0, sw->V);
    } else {
        return ct_error("attribution target %d: unknown kind %d", i, t->kind);
    }
    return CT_OK;
}

int sweeper_rows(Sweeper *sw, const AttribTarget *t, int n, float *const *rows32, double *const *rows64) {
    if ((sw->fp64 && !rows64) || (!sw->fp64 && !rows32))
        return ct_error("sweeper_rows: %s rows expected for a%s sweeper", sw->fp64 ? "double" : "float",
                        sw->fp64 ? "n fp64" : "n fp32");
    for (int i = 0; i < n; i++)
        if (target_check(sw, &t[i], i) != CT_OK) return CT_ERR;
    const Weights *w = &sw->r->m->w;
    size_t D = (size_t)sw->D;
    for (int c0 = 0; c0 < n; c0 += sw->B) {
        int nb = n - c0 < sw->B ? n - c0 : sw->B;
        for (int b = 0; b < nb; b++) {
            const AttribTarget *tg = &t[c0 + b];
            if (tg->kind == TARGET_LOGIT) {
                // d(logit_a - mean_u logit_u)/d x_final = (W_U[a] - mean_u W_U[u]) ⊙ rms_final * inv_rms
                const float *wa = w->wcls + (size_t)tg->tok_a * D;
                const float *wb = tg->tok_b >= 0 ? w->wcls + (size_t)tg->tok_b * D : NULL;
                // LayerNorm: then centred (the mean subtraction, transposed); summed in double
                double mean = 0;
                for (size_t i = 0; i < D; i++) {
                    double u = ((double)wa[i] - (wb ? (double)wb[i] : sw->wmean[i])) * sw->ufin[i];
                    mean += u;
                }
                mean = sw->center ? mean / (double)D : 0.0;
                for (size_t i = 0; i < D; i++) {
                    double u = ((double)wa[i] - (wb ? (double)wb[i] : sw->wmean[i])) * sw->ufin[i];
                    put_real(sw->tvec, sw->fp64, (size_t)b * D + i, u - mean);
                }
                sw->tl[b] = sw->L;
                sw->tpos[b] = sw->T - 1;
            } else {
                const float *we = sw->r->clt->layers[tg->layer].W_enc + (size_t)tg->feature * D;
                for (size_t i = 0; i < D; i++) put_real(sw->tvec, sw->fp64, (size_t)b * D + i, we[i]);
                sw->tl[b] = tg->layer;
                sw->tpos[b] = tg->pos;
            }
            sw->rowp[b] = sw->fp64 ? (void *)rows64[c0 + b] : (void *)rows32[c0 + b];
        }
        if (sw->fp64) sweep_f64(sw, nb, sw->tl, sw->tpos, sw->tvec, (double *const *)sw->rowp);
        else sweep_f32(sw, nb, sw->tl, sw->tpos, sw->tvec, (float *const *)sw->rowp);
    }
    return CT_OK;
}

// ---- logit targets ----------------------------------------------------------------------------
typedef struct ProbIdx {
    double p;
    int i;
} ProbIdx;
static int cmp_prob(const void *a, const void *b) {
    const ProbIdx *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i);
}

// softmax of the last-position logits in double
static double *softmax_last(const Replacement *r) {
    double *p = malloc((size_t)r->V * sizeof(double));
    if (!p) return NULL;
    double mx = -INFINITY, s = 0;
    for (int v = 0; v < r->V; v++) mx = r->logits[v] > mx ? r->logits[v] : mx;
    for (int v = 0; v < r->V; v++) s += (p[v] = exp((double)r->logits[v] - mx));
    for (int v = 0; v < r->V; v++) p[v] /= s;
    return p;
}

int attribute_salient_logits(const Replacement *r, int max_k, double min_prob, int *ids, double *probs) {
    if (max_k < 1) return ct_error("attribution: --max-logits must be >= 1, got %d", max_k);
    double *p = softmax_last(r);
    ProbIdx *pi = malloc((size_t)r->V * sizeof *pi);
    if (!p || !pi) {
        free(p), free(pi);
        return ct_error("attribution: out of memory (V = %d)", r->V);
    }
    for (int v = 0; v < r->V; v++) pi[v].p = p[v], pi[v].i = v;
    qsort(pi, (size_t)r->V, sizeof *pi, cmp_prob);
    int k = 0;
    double cum = 0;
    while (k < max_k && k < r->V) {
        ids[k] = pi[k].i, probs[k] = pi[k].p;
        cum += pi[k].p;
        k++;
        if (cum >= min_prob) break;   // circuit-tracer: searchsorted(cumsum, p) + 1
    }
    free(p), free(pi);
    return k;
}

// ---- partial influence for the budget ---------------------------------------------------------
// I (n_active) = influence of every feature on the logits through the rows computed so far
// (METHOD §3 on those rows; rows not computed count as zero).  Rows are processed in reverse
// topological order — logits, then visited features by index descending, i.e. layer
// descending (a feature's edges come only from lower layers) — so each node's total weight
// q = w + I is final when its row is spread: I[s] += q_t |A[t,s]| / max(rowsum_t, 1e-10).
// One pass over the rows equals the series w A^ + w A^2 + ... (tests/test_attribute.c checks
// it against prune_rows_influence).
void attribute_partial_influence(const Replacement *r, int K, float *const *logit_rows,
                                 const double *logit_w, const double *logit_den,
                                 float *const *feat_rows, const double *feat_den, double *I) {
    size_t na = (size_t)r->n_active;
    memset(I, 0, na * sizeof(double));
    for (int k = 0; k < K; k++) {
        double cf = logit_w[k] / (logit_den[k] > 1e-10 ? logit_den[k] : 1e-10);
        if (cf == 0) continue;
        const float *row = logit_rows[k];
        for (size_t s = 0; s < na; s++) I[s] += cf * fabs((double)row[s]);
    }
    for (size_t t = na; t-- > 0;) {
        if (!feat_rows[t] || I[t] == 0) continue;
        double cf = I[t] / (feat_den[t] > 1e-10 ? feat_den[t] : 1e-10);
        const float *row = feat_rows[t];
        size_t hi = (size_t)r->lp_start[(size_t)r->act_layer[t] * (size_t)r->T];  // features of lower layers
        for (size_t s = 0; s < hi; s++) I[s] += cf * fabs((double)row[s]);
    }
}

// ---- the whole graph ---------------------------------------------------------------------------
int attribute_auto_batch(const Replacement *r) {
    // G and GO hold (T, B, D + H*Dh) floats: keep them near 512 MiB, at most 256 rows (past
    // that the source reads are amortised and the gain is small), at least 16.
    const Config *c = &r->m->c;
    size_t per_row = (size_t)r->T * ((size_t)c->dim + (size_t)c->n_heads * (size_t)c->head_dim) * sizeof(float);
    size_t b = ((size_t)512 << 20) / (per_row ? per_row : 1);
    return b > 256 ? 256 : b < 16 ? 16 : (int)b;
}

void attribute_options_default(AttribOptions *o) {
    memset(o, 0, sizeof *o);
    o->max_feature_nodes = 7500;   // circuit-tracer's CLI default
    o->batch = 0;                  // attribute_auto_batch
    o->update_interval = 4;
    o->max_logits = 10;
    o->logit_prob = 0.95;
    o->diff_a = o->diff_b = -1;
}

// Order of a budget round's queue: by position, then layer, then index, so one sweep's
// targets share their positions (P small) and the layer prefix applies.
static int cmp_pos_layer(const void *a, const void *b, void *ctx) {
    int i = *(const int *)a, j = *(const int *)b;
    const Replacement *r = ctx;
    if (r->act_pos[i] != r->act_pos[j]) return r->act_pos[i] < r->act_pos[j] ? -1 : 1;
    if (r->act_layer[i] != r->act_layer[j]) return r->act_layer[i] < r->act_layer[j] ? -1 : 1;
    return (i > j) - (i < j);
}
static int cmp_keyidx_desc(const void *a, const void *b) {
    const ProbIdx *x = a, *y = b;   // p = key, i = index
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i);
}

// The adjacency is written as CSR (graph.h), row by row in node order: no dense N x N.
typedef struct CsrOut {
    Graph *g;
    size_t cap;   // room in sp_col / sp_val
    int next;     // first node whose row start is not yet recorded
} CsrOut;

// Row of `node` (rows must come in increasing node order): nonzero entries of feat (nfeat
// feature columns, mapped through map when given: -1 = not a node) then of rest (nrest
// columns starting at node rest_base).
static int csr_row(CsrOut *c, int node, const float *feat, size_t nfeat, const int32_t *map,
                   const float *rest, size_t nrest, uint32_t rest_base) {
    Graph *g = c->g;
    for (; c->next <= node; c->next++) g->sp_row[c->next] = g->sp_nnz;
    size_t need = g->sp_nnz + nfeat + nrest;
    if (need > c->cap) {
        size_t cap = c->cap + c->cap / 2 > need ? c->cap + c->cap / 2 : need + (1 << 20);
        uint32_t *col = realloc(g->sp_col, cap * sizeof *col);
        if (col) g->sp_col = col;
        float *val = realloc(g->sp_val, cap * sizeof *val);
        if (val) g->sp_val = val;
        if (!col || !val) return ct_error("attribution: out of memory for %zu edges", cap);
        c->cap = cap;
    }
    // Branch-free compaction: always store, advance only past kept entries (room was made
    // for every candidate above).
    size_t n = g->sp_nnz;
    uint32_t *sc = g->sp_col;
    float *sv = g->sp_val;
    if (map)
        for (size_t j = 0; j < nfeat; j++) {
            sc[n] = (uint32_t)map[j], sv[n] = feat[j];
            n += (feat[j] != 0.0f) & (map[j] >= 0);
        }
    else
        for (size_t j = 0; j < nfeat; j++) {
            sc[n] = (uint32_t)j, sv[n] = feat[j];
            n += feat[j] != 0.0f;
        }
    for (size_t j = 0; j < nrest; j++) {
        sc[n] = rest_base + (uint32_t)j, sv[n] = rest[j];
        n += rest[j] != 0.0f;
    }
    g->sp_nnz = n;
    g->sp_row[node + 1] = n;
    c->next = node + 1;
    return CT_OK;
}

static void csr_end(CsrOut *c) {
    for (; c->next <= c->g->n_nodes; c->next++) c->g->sp_row[c->next] = c->g->sp_nnz;
}

// Rows of nb targets into the float scratch rows p32[0..nb) (fp64 sweeps through p64).
typedef struct RowBatch {
    Sweeper *sw;
    size_t nsrc;
    float **p32;    // (B) rows of nsrc floats
    double **p64;   // (B) rows of nsrc doubles (fp64 only)
} RowBatch;

static int batch_rows(RowBatch *rb, const AttribTarget *t, int nb) {
    if (!rb->sw->fp64) return sweeper_rows(rb->sw, t, nb, rb->p32, NULL);
    if (sweeper_rows(rb->sw, t, nb, NULL, rb->p64) != CT_OK) return CT_ERR;
    for (int b = 0; b < nb; b++)
        for (size_t c = 0; c < rb->nsrc; c++) rb->p32[b][c] = (float)rb->p64[b][c];
    return CT_OK;
}

static double abs_sum(const float *row, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs((double)row[i]);
    return s;
}

static AttribTarget feature_target(const Replacement *r, int s) {
    AttribTarget t = {TARGET_FEATURE, r->act_layer[s], r->act_pos[s], r->act_feat[s], -1, -1};
    return t;
}

int attribute_graph(Graph *g, const Replacement *r, const AttribOptions *o) {
    memset(g, 0, sizeof *g);
    if (o->max_feature_nodes < 1)
        return ct_error("attribution: the feature budget (max_feature_nodes) must be >= 1, got %d",
                        o->max_feature_nodes);
    if (o->batch < 0) return ct_error("attribution: the batch size must be >= 1 (0 = automatic), got %d", o->batch);
    if (o->update_interval < 1)
        return ct_error("attribution: update_interval must be >= 1, got %d", o->update_interval);
    int L = r->L, T = r->T, V = r->V, B = o->batch ? o->batch : attribute_auto_batch(r);
    size_t n_act = (size_t)r->n_active;

    // 1. logit targets
    int K = 0;
    double *pall = softmax_last(r);
    if (!pall) return ct_error("attribution: out of memory (V = %d)", V);
    if (o->diff_a >= 0 || o->diff_b >= 0) {
        if (o->diff_a < 0 || o->diff_a >= V || o->diff_b < 0 || o->diff_b >= V || o->diff_a == o->diff_b) {
            free(pall);
            return ct_error("attribution: target difference %d,%d: both tokens must be distinct ids in "
                            "[0, %d)", o->diff_a, o->diff_b, V);
        }
        K = 1;
    } else if (o->n_target_tokens > 0) {
        K = o->n_target_tokens;
        for (int k = 0; k < K; k++)
            if (o->target_tokens[k] < 0 || o->target_tokens[k] >= V) {
                free(pall);
                return ct_error("attribution: target token %d is outside the vocabulary [0, %d)",
                                o->target_tokens[k], V);
            }
    } else {
        if (o->max_logits < 1 || !(o->logit_prob > 0 && o->logit_prob <= 1)) {
            free(pall);
            return ct_error("attribution: salient logits need max_logits >= 1 (got %d) and logit_prob "
                            "in (0, 1] (got %g)", o->max_logits, o->logit_prob);
        }
        K = o->max_logits < V ? o->max_logits : V;
    }
    int *ids = malloc((size_t)K * sizeof(int)), *ids_b = malloc((size_t)K * sizeof(int));
    double *probs = malloc((size_t)K * sizeof(double));
    if (!ids || !ids_b || !probs) {
        free(pall), free(ids), free(ids_b), free(probs);
        return ct_error("attribution: out of memory");
    }
    if (o->diff_a >= 0) {
        ids[0] = o->diff_a, ids_b[0] = o->diff_b, probs[0] = pall[o->diff_a];
    } else if (o->n_target_tokens > 0) {
        for (int k = 0; k < K; k++) ids[k] = o->target_tokens[k], ids_b[k] = -1, probs[k] = pall[ids[k]];
    } else {
        K = attribute_salient_logits(r, K, o->logit_prob, ids, probs);
        for (int k = 0; k < K; k++) ids_b[k] = -1;
    }
    free(pall);

    int M = o->max_feature_nodes < (long long)n_act ? o->max_feature_nodes : (int)n_act;
    int full = (size_t)M == n_act;
    size_t nrest = (size_t)L * T + T;       // error and token columns
    size_t nsrc = n_act + nrest;            // source columns of a row
    int BK = B > K ? B : K;
    Sweeper *sw = NULL;
    RowBatch rb = {NULL, nsrc, NULL, NULL};
    AttribTarget *tg = malloc((size_t)BK * sizeof *tg);
    float *scratch32 = malloc((size_t)BK * nsrc * sizeof(float));
    double *scratch64 = o->fp64 ? malloc((size_t)BK * nsrc * sizeof(double)) : NULL;
    rb.p32 = malloc((size_t)BK * sizeof(float *));
    rb.p64 = o->fp64 ? malloc((size_t)BK * sizeof(double *)) : NULL;
    int *queue = malloc((n_act ? n_act : 1) * sizeof(int));
    uint8_t *visited = calloc(n_act ? n_act : 1, 1);
    int32_t *newidx = malloc((n_act ? n_act : 1) * sizeof(int32_t));
    float *lblock = malloc(((size_t)K * nsrc + 1) * sizeof(float));   // logit rows (K, nsrc)
    float **frow = NULL;        // budget: stored row of each visited feature: [lower-layer features | rest]
    float **blocks = NULL;      // budget: one allocation per batch of stored rows
    int nblocks = 0;
    double *fden = NULL, *I = NULL, *lden = NULL;
    float **lrow = NULL;
    ProbIdx *rank = NULL;
    int rc = CT_ERR;
    if (!tg || !scratch32 || (o->fp64 && (!scratch64 || !rb.p64)) || !rb.p32 || !queue || !visited ||
        !newidx || !lblock) {
        ct_error("attribution: out of memory");
        goto done;
    }
    for (int b = 0; b < BK; b++) {
        rb.p32[b] = scratch32 + (size_t)b * nsrc;
        if (o->fp64) rb.p64[b] = scratch64 + (size_t)b * nsrc;
    }
    if (sweeper_init(&sw, r, B, o->fp64, o->pool) != CT_OK) goto done;
    rb.sw = sw;
    size_t total = (size_t)K + (size_t)M, ndone = 0;

    // 2. logit rows first (the budget ranks features by their influence on these)
    for (int k = 0; k < K; k++) tg[k] = (AttribTarget){TARGET_LOGIT, 0, 0, 0, ids[k], ids_b[k]};
    for (int k0 = 0; k0 < K; k0 += B) {
        int nb = K - k0 < B ? K - k0 : B;
        if (batch_rows(&rb, tg + k0, nb) != CT_OK) goto done;
        for (int b = 0; b < nb; b++) memcpy(lblock + (size_t)(k0 + b) * nsrc, rb.p32[b], nsrc * sizeof(float));
    }
    ndone += (size_t)K;
    if (o->progress) o->progress(o->progress_ctx, ndone, total);

    CsrOut co = {g, 0, 0};
    if (full) {
        // 3a. every active feature is a node: batches in node order, rows straight into the CSR
        if (graph_alloc_sparse(g, (int)n_act, L * T, T, K, 0) != CT_OK) goto done;
        g->sp_nnz = 0;
        for (size_t q0 = 0; q0 < n_act; q0 += (size_t)B) {
            int nb = n_act - q0 < (size_t)B ? (int)(n_act - q0) : B;
            for (int b = 0; b < nb; b++) tg[b] = feature_target(r, (int)q0 + b);
            if (batch_rows(&rb, tg, nb) != CT_OK) goto done;
            for (int b = 0; b < nb; b++) {
                int s = (int)q0 + b;
                size_t hi = (size_t)r->lp_start[(size_t)r->act_layer[s] * T];  // lower-layer features
                if (csr_row(&co, s, rb.p32[b], hi, NULL, rb.p32[b] + n_act, nrest, (uint32_t)n_act) != CT_OK)
                    goto done;
            }
            ndone += (size_t)nb;
            if (o->progress) o->progress(o->progress_ctx, ndone, total);
        }
        for (size_t s = 0; s < n_act; s++) visited[s] = 1, newidx[s] = (int32_t)s;
    } else {
        // 3b. the budget: rounds of the most influential unvisited features (partial influence
        // on the rows so far), update_interval batches per round.  A feature's row is stored
        // only over the columns it can have: features of lower layers, errors, tokens.
        frow = calloc(n_act, sizeof(float *));
        fden = calloc(n_act, sizeof(double));
        I = malloc(n_act * sizeof(double));
        rank = malloc(n_act * sizeof *rank);
        lden = malloc((size_t)K * sizeof(double));
        lrow = malloc((size_t)K * sizeof(float *));
        blocks = malloc(((size_t)M / (size_t)B + 2 + (size_t)M / ((size_t)o->update_interval * B) + 1) *
                        sizeof(float *));
        if (!frow || !fden || !I || !rank || !lden || !lrow || !blocks) {
            ct_error("attribution: out of memory");
            goto done;
        }
        for (int k = 0; k < K; k++) {
            lrow[k] = lblock + (size_t)k * nsrc;
            lden[k] = abs_sum(lrow[k], nsrc);
        }
        int n_vis = 0;
        while (n_vis < M) {
            attribute_partial_influence(r, K, lrow, probs, lden, frow, fden, I);
            size_t nu = 0;
            for (size_t s = 0; s < n_act; s++)
                if (!visited[s]) rank[nu].p = I[s], rank[nu].i = (int)s, nu++;
            size_t qn = (size_t)o->update_interval * (size_t)B;
            if (qn > (size_t)(M - n_vis)) qn = (size_t)(M - n_vis);
            qsort(rank, nu, sizeof *rank, cmp_keyidx_desc);
            for (size_t i = 0; i < qn; i++) queue[i] = rank[i].i;
            qsort_r(queue, qn, sizeof(int), cmp_pos_layer, (void *)r);
            for (size_t q0 = 0; q0 < qn; q0 += (size_t)B) {
                int nb = qn - q0 < (size_t)B ? (int)(qn - q0) : B;
                size_t need = 0;
                for (int b = 0; b < nb; b++) {
                    int s = queue[q0 + (size_t)b];
                    tg[b] = feature_target(r, s);
                    need += (size_t)r->lp_start[(size_t)r->act_layer[s] * T] + nrest;
                }
                if (batch_rows(&rb, tg, nb) != CT_OK) goto done;
                float *blk = malloc((need ? need : 1) * sizeof(float));
                if (!blk) {
                    ct_error("attribution: out of memory storing %d rows", nb);
                    goto done;
                }
                blocks[nblocks++] = blk;
                for (int b = 0; b < nb; b++) {
                    int s = queue[q0 + (size_t)b];
                    size_t hi = (size_t)r->lp_start[(size_t)r->act_layer[s] * T];
                    memcpy(blk, rb.p32[b], hi * sizeof(float));
                    memcpy(blk + hi, rb.p32[b] + n_act, nrest * sizeof(float));
                    frow[s] = blk;
                    fden[s] = abs_sum(blk, hi + nrest);
                    visited[s] = 1;
                    blk += hi + nrest;
                }
                n_vis += nb;
                ndone += (size_t)nb;
                if (o->progress) o->progress(o->progress_ctx, ndone, total);
            }
        }
        // 4. assemble: visited features in (l, p, f) order, their columns only
        int nf = 0;
        for (size_t s = 0; s < n_act; s++) newidx[s] = visited[s] ? nf++ : -1;
        if (graph_alloc_sparse(g, nf, L * T, T, K, 0) != CT_OK) goto done;
        g->sp_nnz = 0;
        for (size_t s = 0; s < n_act; s++) {
            if (!visited[s]) continue;
            size_t hi = (size_t)r->lp_start[(size_t)r->act_layer[s] * T];
            if (csr_row(&co, newidx[s], frow[s], hi, newidx, frow[s] + hi, nrest, (uint32_t)nf) != CT_OK)
                goto done;
        }
    }
    {
        int nf = g->n_features;
        for (int k = 0; k < K; k++) {
            const float *row = lblock + (size_t)k * nsrc;
            if (csr_row(&co, nf + L * T + T + k, row, n_act, full ? NULL : newidx, row + n_act, nrest,
                        (uint32_t)nf) != CT_OK)
                goto done;
        }
        csr_end(&co);
    }

    // 5. node table
    {
        int nf = g->n_features, f = 0;
        for (size_t s = 0; s < n_act; s++) {
            if (!visited[s]) continue;
            GraphNode *nd = &g->nodes[f++];
            nd->kind = NODE_FEATURE, nd->layer = r->act_layer[s], nd->pos = r->act_pos[s];
            nd->feature = r->act_feat[s], nd->token = -1, nd->activation = r->act_val[s];
        }
        for (int l = 0; l < L; l++)
            for (int p = 0; p < T; p++) {
                GraphNode *nd = &g->nodes[nf + l * T + p];
                nd->kind = NODE_ERROR, nd->layer = l, nd->pos = p, nd->feature = -1, nd->token = -1;
            }
        for (int p = 0; p < T; p++) {
            GraphNode *nd = &g->nodes[nf + L * T + p];
            nd->kind = NODE_TOKEN, nd->layer = -1, nd->pos = p, nd->feature = -1, nd->token = r->tokens[p];
        }
        for (int k = 0; k < K; k++) {
            GraphNode *nd = &g->nodes[nf + L * T + T + k];
            nd->kind = NODE_LOGIT, nd->layer = L, nd->pos = T - 1, nd->feature = -1, nd->token = ids[k];
            nd->activation = r->logits[ids[k]] - (ids_b[k] >= 0 ? r->logits[ids_b[k]] : 0.0f);
            nd->prob = (float)probs[k];
            nd->is_target = 1;
        }
        g->L = L, g->T = T, g->D = r->D, g->F = r->F, g->V = V;
        g->n_active_total = (int)n_act;
        g->max_feature_nodes = M;
        g->tokens = malloc((size_t)T * sizeof(int));
        if (!g->tokens) {
            ct_error("attribution: out of memory");
            goto done;
        }
        memcpy(g->tokens, r->tokens, (size_t)T * sizeof(int));
    }
    rc = CT_OK;
done:
    if (rc != CT_OK) graph_free(g);
    sweeper_free(sw);
    for (int i = 0; i < nblocks; i++) free(blocks[i]);
    free(blocks);
    free(ids), free(ids_b), free(probs), free(tg), free(scratch32), free(scratch64), free(rb.p32), free(rb.p64);
    free(queue), free(visited), free(newidx), free(lblock), free(frow), free(fden), free(I), free(lden);
    free(lrow), free(rank);
    return rc;
}
