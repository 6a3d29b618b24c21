// clt_train.c — the transcoder trainer: parameter layout, the fp32 loss + gradient (sparse,
// threaded), its fp64 reference, Adam, the activation stream with its shuffle ring,
// checkpoints, and the run loop.  Spec: ../shared/docs/METHOD.md §1; API in clt_train.h.
//
// One training step, top to bottom (B rows, every layer at once):
//
//   batch    B rows drawn from the shuffle ring, normalised        X', Y' (B, L, D)
//   encode   per layer, per feature chunk: H = W_enc X'^T + b_enc  (chunk, B) via matmul_f32
//            keep the entries (b, h) with h > theta - eps/2 (active, or inside the STE window),
//            and per feature the count and sum of (theta - h) over inactive rows (preact term)
//   decode   per row range: y^' = b_dec + sum over active (l, i) of a * W_dec[l][i]
//            (sparse axpy, walking each feature's entries), R = 2 (y^' - y') / B  (B, L, D)
//   backward per feature (l, i), over its entries only:
//            g    = <W_dec[l][i], R[b, l:]>            reconstruction dL/da   (sparse dot)
//            dL/da = g + lambda c n sech^2(c n a) / B  (tanh sparsity)
//            active:  dW_enc += dL/da x'_b, db_enc += dL/da, dW_dec += a R[b, l:]
//            window:  dtheta += -(theta/eps) dL/da                          (STE)
//            preact:  dense over inactive rows, but only through sums: every inactive row
//                     has the same dL/dh = kpre, so dW_enc += kpre sum_b x'_b plus
//                     (dL/dh - kpre) x'_b on active rows; count and sum of (theta - h) from encode
//            dW_dec += dn W_dec / n   (n = ||W_dec[l][i]|| enters tanh and preact)
//   adam     every parameter, split in ranges over threads
//
// Work is split by feature (encode, backward) or by row (decode); each output element is
// computed by the same code in the same order whatever the thread count, so a run is
// byte-identical for any --threads.  The only dense product is the encoder (matmul_f32 from
// the kernel table); everything after it touches only the (row, feature) pairs that matter.
#include "engine/clt_train.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/clt.h"
#include "engine/clt_eval.h"
#include "engine/quantize.h"
#include "engine/sampler.h"
#include "simd/simd.h"

// ---- small helpers ----------------------------------------------------------------------------
static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

// splitmix64: the trainer's only random generator (init, shuffling); one u64 of state.
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }
// [0, n) without modulo bias (rejection).
static uint64_t rng_below(uint64_t *s, uint64_t n) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t r = rng_next(s);
        if (r < lim) return r % n;
    }
}

// ---- layout ---------------------------------------------------------------------------------
int clt_layout_init(CltParamLayout *lay, int L, int D, int F, int plt) {
    memset(lay, 0, sizeof *lay);
    if (L < 1 || L > CLT_TRAIN_MAX_LAYERS)
        return ct_error("transcoder layout: layers L = %d, expected 1..%d", L, CLT_TRAIN_MAX_LAYERS);
    if (D < 1 || F < 1) return ct_error("transcoder layout: expected D >= 1 and F >= 1, got D = %d, F = %d", D, F);
    lay->off = malloc((size_t)L * CP_NKINDS * sizeof(size_t));
    if (!lay->off) return ct_error("transcoder layout: out of memory");
    lay->L = L, lay->D = D, lay->F = F, lay->plt = plt ? 1 : 0;
    size_t o = 0, Fz = (size_t)F, Dz = (size_t)D;
    for (int l = 0; l < L; l++) {
        size_t sizes[CP_NKINDS] = {Fz * Dz, Fz, Fz, Dz, Fz * (size_t)clt_layout_nout(lay, l) * Dz};
        for (int k = 0; k < CP_NKINDS; k++) {
            lay->off[(size_t)l * CP_NKINDS + k] = o;
            o += pad16(sizes[k]);   // 64-byte steps: every tensor starts aligned
        }
    }
    lay->n = o;
    return CT_OK;
}

void clt_layout_free(CltParamLayout *lay) {
    free(lay->off);
    memset(lay, 0, sizeof *lay);
}

// ---- the production loss + gradient ---------------------------------------------------------
#define FCHUNK 32   // features per encoder tile: (FCHUNK, B) pre-activations stay in L2

typedef struct Entry { int b; float h; } Entry;   // one (row, feature) pair kept by encode

typedef struct TaskBuf {
    float *H;            // (FCHUNK, B) encoder tile
    Entry *e;            // entries of the features this task encoded
    size_t n, cap;
    float *gx;           // (D) scratch: dW_enc accumulator
    int oom;
} TaskBuf;

struct CltCore {
    CltParamLayout lay;  // a copy (off owned)
    int B_max, ntask;
    ThreadPool *pool;
    TaskBuf *tb;         // (ntask)
    float *XL;           // (L, B, D) x' regrouped per layer (matmul needs contiguous rows)
    float *Sx;           // (L, D) sum over the batch of x'
    float *R;            // (B, L, D) 2 (y^' - y') / B
    double *err;         // (B, L) ||y^' - y'||^2 per row and layer
    int *f_task;         // (L*F) which task holds feature (l, i)'s entries
    size_t *f_off;       // (L*F) first entry in that task's buffer
    int *f_n;            // (L*F) number of entries
    int *f_nin;          // (L*F) inactive rows (h <= theta)
    double *f_sin;       // (L*F) sum over inactive rows of (theta - h)
    double *f_lsp;       // (L*F) the feature's sparsity loss
    double *f_lpre;      // (L*F) the feature's preact loss
    int *f_nact;         // (L*F) active rows
    float *f_th;         // (L*F) theta = exp(log_theta) of this step
    // per call
    const float *params, *Y;
    float *grad;
    const CltLossHyper *hp;
    int B;
};

void clt_core_free(CltCore *core) {
    if (!core) return;
    for (int t = 0; t < core->ntask && core->tb; t++) {
        free(core->tb[t].H);
        free(core->tb[t].e);
        free(core->tb[t].gx);
    }
    free(core->tb);
    free(core->XL);
    free(core->Sx);
    free(core->R);
    free(core->err);
    free(core->f_task);
    free(core->f_off);
    free(core->f_n);
    free(core->f_nin);
    free(core->f_sin);
    free(core->f_lsp);
    free(core->f_lpre);
    free(core->f_nact);
    free(core->f_th);
    clt_layout_free(&core->lay);
    free(core);
}

int clt_core_init(CltCore **out, const CltParamLayout *lay, int B_max, ThreadPool *pool) {
    *out = NULL;
    if (B_max < 1) return ct_error("transcoder trainer: batch must be >= 1, got %d", B_max);
    CltCore *c = calloc(1, sizeof *c);
    if (!c) return ct_error("transcoder trainer: out of memory");
    if (clt_layout_init(&c->lay, lay->L, lay->D, lay->F, lay->plt) != CT_OK) {
        free(c);
        return CT_ERR;
    }
    size_t L = (size_t)lay->L, D = (size_t)lay->D, F = (size_t)lay->F, B = (size_t)B_max;
    c->B_max = B_max;
    c->pool = pool;
    c->ntask = pool_size(pool);
    c->tb = calloc((size_t)c->ntask, sizeof *c->tb);
    int ok = c->tb != NULL;
    for (int t = 0; ok && t < c->ntask; t++) {
        TaskBuf *tb = &c->tb[t];
        tb->H = malloc(FCHUNK * B * sizeof(float));
        tb->gx = malloc(D * sizeof(float));
        tb->cap = 4096;
        tb->e = malloc(tb->cap * sizeof(Entry));
        ok = tb->H && tb->gx && tb->e;
    }
    c->XL = malloc(L * B * D * sizeof(float));
    c->Sx = malloc(L * D * sizeof(float));
    c->R = malloc(B * L * D * sizeof(float));
    c->err = malloc(B * L * sizeof(double));
    c->f_task = malloc(L * F * sizeof(int));
    c->f_off = malloc(L * F * sizeof(size_t));
    c->f_n = malloc(L * F * sizeof(int));
    c->f_nin = malloc(L * F * sizeof(int));
    c->f_sin = malloc(L * F * sizeof(double));
    c->f_lsp = malloc(L * F * sizeof(double));
    c->f_lpre = malloc(L * F * sizeof(double));
    c->f_nact = malloc(L * F * sizeof(int));
    c->f_th = malloc(L * F * sizeof(float));
    ok = ok && c->XL && c->Sx && c->R && c->err && c->f_task && c->f_off && c->f_n && c->f_nin &&
         c->f_sin && c->f_lsp && c->f_lpre && c->f_nact && c->f_th;
    if (!ok) {
        clt_core_free(c);
        return ct_error("transcoder trainer: out of memory for a batch of %d rows (F = %d, L = %d)",
                        B_max, lay->F, lay->L);
    }
    *out = c;
    return CT_OK;
}

static int entry_push(TaskBuf *tb, int b, float h) {
    if (tb->n == tb->cap) {
        size_t nc = tb->cap * 2;
        Entry *e = realloc(tb->e, nc * sizeof(Entry));
        if (!e) {
            tb->oom = 1;
            return CT_ERR;
        }
        tb->e = e;
        tb->cap = nc;
    }
    tb->e[tb->n].b = b;
    tb->e[tb->n].h = h;
    tb->n++;
    return CT_OK;
}

// Chunks of FCHUNK features, layer by layer; chunk j is handled by task j % ntask (interleaved
// so every task gets features of every layer: decoder lengths differ by layer).
static int n_chunks(const CltParamLayout *lay) { return lay->L * ((lay->F + FCHUNK - 1) / FCHUNK); }
static void chunk_range(const CltParamLayout *lay, int j, int *l, int *f0, int *f1) {
    int per = (lay->F + FCHUNK - 1) / FCHUNK;
    *l = j / per;
    *f0 = (j % per) * FCHUNK;
    *f1 = *f0 + FCHUNK < lay->F ? *f0 + FCHUNK : lay->F;
}

// Pass 1: pre-activations of a chunk of features, entries with h > theta - eps/2, preact sums.
static void encode_task(void *ctx, int task, int ntask) {
    CltCore *c = ctx;
    const CltParamLayout *lay = &c->lay;
    const SimdKernels *K = simd_kernels();
    TaskBuf *tb = &c->tb[task];
    int B = c->B, D = lay->D, F = lay->F;
    float half = (float)(0.5 * c->hp->eps);
    tb->n = 0;
    for (int j = task; j < n_chunks(lay); j += ntask) {
        int l, f0, f1;
        chunk_range(lay, j, &l, &f0, &f1);
        const float *Wenc = c->params + clt_layout_off(lay, l, CP_W_ENC);
        const float *benc = c->params + clt_layout_off(lay, l, CP_B_ENC);
        const float *lt = c->params + clt_layout_off(lay, l, CP_LOG_THETA);
        // H[fi][b] = <W_enc[f0+fi], x'_b>: "tokens" are features, "rows" are batch rows.
        K->matmul_f32(tb->H, c->XL + (size_t)l * B * D, Wenc + (size_t)f0 * D, (size_t)(f1 - f0),
                      (size_t)B, (size_t)D);
        for (int i = f0; i < f1; i++) {
            const float *Hi = tb->H + (size_t)(i - f0) * B;
            size_t fid = (size_t)l * F + i;
            float th = expf(lt[i]), lo = th - half, bi = benc[i];
            int nin = 0, nact = 0;
            double sin = 0;
            c->f_task[fid] = task;
            c->f_off[fid] = tb->n;
            c->f_th[fid] = th;
            for (int b = 0; b < B; b++) {
                float h = Hi[b] + bi;
                int in = !(h > th);
                nin += in;
                sin += in ? (double)(th - h) : 0.0;
                if (h > lo && entry_push(tb, b, h) != CT_OK) return;
            }
            nact = B - nin;
            c->f_n[fid] = (int)(tb->n - c->f_off[fid]);
            c->f_nin[fid] = nin;
            c->f_nact[fid] = nact;
            c->f_sin[fid] = sin;
        }
    }
}

// Pass 2 (per row range): y^' = b_dec + sparse decode; R = 2 (y^' - y') / B; squared errors.
// Each task owns rows [b0, b1) and walks every feature's entries (sorted by row) from the
// first row >= b0: the feature's decoder row stays in L1 while it is added to the rows that
// use it, and every row receives its features in ascending (l, i) order whatever the split.
static void decode_task(void *ctx, int task, int ntask) {
    CltCore *c = ctx;
    const CltParamLayout *lay = &c->lay;
    const SimdKernels *K = simd_kernels();
    int B = c->B, L = lay->L, D = lay->D, F = lay->F;
    size_t LD = (size_t)L * D;
    float two_b = 2.0f / (float)B;
    int b0 = (int)pool_split((size_t)B, task, ntask), b1 = (int)pool_split((size_t)B, task + 1, ntask);
    for (int b = b0; b < b1; b++)
        for (int l = 0; l < L; l++)
            memcpy(c->R + (size_t)b * LD + (size_t)l * D, c->params + clt_layout_off(lay, l, CP_B_DEC), (size_t)D * sizeof(float));
    for (int l = 0; l < L; l++) {
        size_t len = (size_t)clt_layout_nout(lay, l) * D;
        const float *Wd = c->params + clt_layout_off(lay, l, CP_W_DEC);
        for (int i = 0; i < F; i++) {
            size_t fid = (size_t)l * F + i;
            const Entry *e = c->tb[c->f_task[fid]].e + c->f_off[fid];
            int lo = 0, hi = c->f_n[fid];
            while (lo < hi) {   // first entry with row >= b0
                int mid = (lo + hi) / 2;
                if (e[mid].b < b0) lo = mid + 1;
                else hi = mid;
            }
            float th = c->f_th[fid];
            for (int k = lo; k < c->f_n[fid] && e[k].b < b1; k++)
                if (e[k].h > th) K->axpy_f32(c->R + (size_t)e[k].b * LD + (size_t)l * D, e[k].h, Wd + (size_t)i * len, len);
        }
    }
    for (int b = b0; b < b1; b++) {
        float *r = c->R + (size_t)b * LD;
        const float *y = c->Y + (size_t)b * LD;
        for (int l = 0; l < L; l++) {
            double e = 0;
            for (int d = 0; d < D; d++) {
                float diff = r[(size_t)l * D + d] - y[(size_t)l * D + d];
                e += (double)diff * diff;
                r[(size_t)l * D + d] = two_b * diff;
            }
            c->err[(size_t)b * L + l] = e;
        }
    }
}

// Pass 3 (per feature): the gradient of everything that touches feature (l, i).
static void backward_task(void *ctx, int task, int ntask) {
    CltCore *c = ctx;
    const CltParamLayout *lay = &c->lay;
    const SimdKernels *K = simd_kernels();
    const CltLossHyper *hp = c->hp;
    TaskBuf *tb = &c->tb[task];
    int B = c->B, L = lay->L, D = lay->D, F = lay->F;
    size_t LD = (size_t)L * D;
    double inv_b = 1.0 / B, lam = hp->lambda, cc = hp->c, lp = hp->lambda_p;
    float half = (float)(0.5 * hp->eps);
    for (int j = task; j < n_chunks(lay); j += ntask) {
        int l, f0, f1;
        chunk_range(lay, j, &l, &f0, &f1);
        size_t len = (size_t)clt_layout_nout(lay, l) * D;
        const float *XL = c->XL + (size_t)l * B * D;
        for (int i = f0; i < f1; i++) {
            size_t fid = (size_t)l * F + i;
            const float *W = c->params + clt_layout_off(lay, l, CP_W_DEC) + (size_t)i * len;
            float *gWdec = c->grad + clt_layout_off(lay, l, CP_W_DEC) + (size_t)i * len;
            float *gWenc = c->grad + clt_layout_off(lay, l, CP_W_ENC) + (size_t)i * D;
            float th = c->f_th[fid], hi = th + half;
            double n = sqrt((double)K->dot_f32(W, W, len));
            // preact: lambda_p * ReLU(theta - h) * n over the inactive rows (h <= theta); every
            // inactive row has dL/dh = kpre, so its dW_enc is kpre * (sum over all rows of x'
            // minus the active rows' x'): the active rows below add (dL/dh - kpre) x'.
            double kpre = -lp * n * inv_b;
            memset(tb->gx, 0, (size_t)D * sizeof(float));
            memset(gWdec, 0, len * sizeof(float));
            double db = 0, dth = 0, dn = 0, lsp = 0;
            const Entry *e = c->tb[c->f_task[fid]].e + c->f_off[fid];
            for (int k = 0; k < c->f_n[fid]; k++) {
                int b = e[k].b, act = e[k].h > th, win = e[k].h < hi;   // h > theta - eps/2 holds
                const float *r = c->R + (size_t)b * LD + (size_t)l * D;
                double g = K->dot_f32(W, r, len);                     // reconstruction dL/da
                if (act) {
                    double a = e[k].h, s = tanh(cc * n * a), sech2 = 1.0 - s * s;
                    lsp += lam * s * inv_b;
                    double ga = g + lam * cc * n * sech2 * inv_b;
                    dn += lam * cc * a * sech2 * inv_b;
                    K->axpy_f32(tb->gx, (float)(ga - kpre), XL + (size_t)b * D, (size_t)D);
                    K->axpy_f32(gWdec, (float)a, r, len);
                    db += ga;
                    if (win) dth += -(th / hp->eps) * ga;
                } else   // a = 0: tanh'(0) = 1
                    dth += -(th / hp->eps) * (g + lam * cc * n * inv_b);
            }
            int nin = c->f_nin[fid];
            double sin = c->f_sin[fid];
            c->f_lpre[fid] = lp * n * sin * inv_b;
            c->f_lsp[fid] = lsp;
            dn += lp * sin * inv_b;
            dth += lp * n * nin * inv_b;
            db += kpre * nin;
            const float *Sx = c->Sx + (size_t)l * D;
            for (int d = 0; d < D; d++) gWenc[d] = tb->gx[d] + (float)(kpre * (double)Sx[d]);
            if (n > 0) K->axpy_f32(gWdec, (float)(dn / n), W, len);
            c->grad[clt_layout_off(lay, l, CP_B_ENC) + i] = (float)db;
            c->grad[clt_layout_off(lay, l, CP_LOG_THETA) + i] = (float)(th * dth);
        }
    }
}

int clt_core_loss_grad(CltCore *c, const float *params, const CltLossHyper *hp, const float *X,
                       const float *Y, int B, float *grad, CltStepStats *st) {
    const CltParamLayout *lay = &c->lay;
    if (B < 1 || B > c->B_max)
        return ct_error("transcoder trainer: batch of %d rows, expected 1..%d", B, c->B_max);
    if (!(hp->eps > 0)) return ct_error("transcoder trainer: eps must be > 0, got %g", hp->eps);
    int L = lay->L, D = lay->D, F = lay->F;
    size_t LD = (size_t)L * D;
    c->params = params, c->Y = Y, c->grad = grad, c->hp = hp, c->B = B;
    // regroup x' per layer and sum it over the batch (preact term)
    for (int l = 0; l < L; l++) {
        float *xl = c->XL + (size_t)l * B * D;
        for (int b = 0; b < B; b++) memcpy(xl + (size_t)b * D, X + (size_t)b * LD + (size_t)l * D, (size_t)D * sizeof(float));
        for (int d = 0; d < D; d++) {
            double s = 0;
            for (int b = 0; b < B; b++) s += xl[(size_t)b * D + d];
            c->Sx[(size_t)l * D + d] = (float)s;
        }
    }
    for (int t = 0; t < c->ntask; t++) c->tb[t].oom = 0;
    pool_run(c->pool, encode_task, c, c->ntask);
    for (int t = 0; t < c->ntask; t++)
        if (c->tb[t].oom) return ct_error("transcoder trainer: out of memory for the encoder entries");
    pool_run(c->pool, decode_task, c, c->ntask);
    pool_run(c->pool, backward_task, c, c->ntask);
    // b_dec: sum over rows of R (sequential: a reduction over rows)
    for (int l = 0; l < L; l++) {
        float *g = grad + clt_layout_off(lay, l, CP_B_DEC);
        for (int d = 0; d < D; d++) {
            double s = 0;
            for (int b = 0; b < B; b++) s += c->R[(size_t)b * LD + (size_t)l * D + d];
            g[d] = (float)s;
        }
    }
    if (st) {
        memset(st, 0, sizeof *st);
        double inv_b = 1.0 / B;
        for (int l = 0; l < L; l++) {
            double e = 0, yy = 0;
            for (int b = 0; b < B; b++) e += c->err[(size_t)b * L + l];
            for (int d = 0; d < D; d++) {
                double s = 0;
                for (int b = 0; b < B; b++) {
                    double y = Y[(size_t)b * LD + (size_t)l * D + d];
                    s += y;
                    yy += y * y;
                }
                yy -= s * s * inv_b;
            }
            long act = 0;
            for (int i = 0; i < F; i++) act += c->f_nact[(size_t)l * F + i];
            st->rec_l[l] = e * inv_b;
            st->var_l[l] = yy * inv_b;
            st->l0_l[l] = (double)act * inv_b;
            st->rec += st->rec_l[l];
            st->l0 += st->l0_l[l] / L;
            st->nmse += (yy > 0 ? e / yy : 0) / L;
        }
        for (size_t fid = 0; fid < (size_t)L * F; fid++) {
            st->sparsity += c->f_lsp[fid];
            st->preact += c->f_lpre[fid];
            st->entries += c->f_n[fid];
        }
        st->loss = st->rec + st->sparsity + st->preact;
    }
    return CT_OK;
}

// ---- the fp64 reference -----------------------------------------------------------------------
// Dense loops straight from the formulas in clt_train.h: no entry lists, no sums-minus-active
// tricks, no threads.  The JumpReLU threshold, for finite differences:
//
//   The jump a = h [h > theta] depends on theta only through its discontinuity: away from
//   h = theta its derivative in theta is exactly 0 (write a = ReLU(h - theta) + theta [h > theta]:
//   -[h > theta] + [h > theta] = 0); at h = theta the jump of height theta moves, giving
//   -theta delta(h - theta).  The STE replaces the Dirac by a box of width eps:
//   da/dtheta ~ -(theta/eps) rect((h - theta)/eps).  A finite difference of the true loss in
//   theta is 0 or infinite, so we difference a surrogate in which that jump is spread over an
//   eps-wide linear ramp of height theta0 (the threshold at the point of evaluation):
//       a(theta) = h [h > theta0] + theta0 (ramp((h - theta)/eps) - ramp((h - theta0)/eps)).
//   At theta = theta0 it equals the JumpReLU, d a/d theta = -(theta0/eps) rect((h - theta0)/eps)
//   exactly (ramp' = rect), and d a/d h = [h > theta0] (the two ramps cancel), so its exact
//   gradient is the STE gradient; the preact term ReLU(theta - h) keeps the live theta.
static double ramp(double u) { return u < -0.5 ? 0.0 : u > 0.5 ? 1.0 : u + 0.5; }

double clt_ref_loss_grad(const CltParamLayout *lay, const double *P, const CltLossHyper *hp,
                         const double *X, const double *Y, int B, const double *surr, double *grad,
                         CltStepStats *st) {
    int L = lay->L, D = lay->D, F = lay->F;
    size_t LD = (size_t)L * D;
    double eps = hp->eps, inv_b = 1.0 / B;
    double *h = malloc((size_t)B * L * F * sizeof(double));
    double *a = malloc((size_t)B * L * F * sizeof(double));
    double *yh = malloc((size_t)B * LD * sizeof(double));
    double *nrm = malloc((size_t)L * F * sizeof(double));
    if (grad) memset(grad, 0, lay->n * sizeof(double));
    if (st) memset(st, 0, sizeof *st);
    for (int l = 0; l < L; l++)
        for (int i = 0; i < F; i++) {
            int no = clt_layout_nout(lay, l);
            const double *W = P + clt_layout_off(lay, l, CP_W_DEC) + (size_t)i * no * D;
            double s = 0;
            for (int k = 0; k < no * D; k++) s += W[k] * W[k];
            nrm[(size_t)l * F + i] = sqrt(s);
        }
    double rec = 0, lsp = 0, lpre = 0;
    // forward
    for (int b = 0; b < B; b++) {
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++) yh[(size_t)b * LD + (size_t)l * D + d] = P[clt_layout_off(lay, l, CP_B_DEC) + d];
        for (int l = 0; l < L; l++) {
            const double *x = X + (size_t)b * LD + (size_t)l * D;
            int no = clt_layout_nout(lay, l);
            for (int i = 0; i < F; i++) {
                size_t k = ((size_t)b * L + l) * F + i;
                double s = P[clt_layout_off(lay, l, CP_B_ENC) + i];
                for (int d = 0; d < D; d++) s += P[clt_layout_off(lay, l, CP_W_ENC) + (size_t)i * D + d] * x[d];
                h[k] = s;
                double th = exp(P[clt_layout_off(lay, l, CP_LOG_THETA) + i]);
                if (surr) {
                    double th0 = exp(surr[clt_layout_off(lay, l, CP_LOG_THETA) + i]);
                    a[k] = (s > th0 ? s : 0.0) + th0 * (ramp((s - th) / eps) - ramp((s - th0) / eps));
                } else
                    a[k] = s > th ? s : 0.0;
                double n = nrm[(size_t)l * F + i];
                lsp += hp->lambda * tanh(hp->c * n * a[k]) * inv_b;
                if (!(s > th)) lpre += hp->lambda_p * (th - s) * n * inv_b;
                if (st && s > th) st->l0_l[l] += inv_b;
                const double *W = P + clt_layout_off(lay, l, CP_W_DEC) + (size_t)i * no * D;
                for (int o = 0; o < no; o++)
                    for (int d = 0; d < D; d++) yh[(size_t)b * LD + (size_t)(l + o) * D + d] += W[(size_t)o * D + d] * a[k];
            }
        }
        for (int l = 0; l < L; l++)
            for (int d = 0; d < D; d++) {
                double r = yh[(size_t)b * LD + (size_t)l * D + d] - Y[(size_t)b * LD + (size_t)l * D + d];
                rec += r * r * inv_b;
                if (st) st->rec_l[l] += r * r * inv_b;
            }
    }
    double loss = rec + lsp + lpre;
    if (st) {
        st->rec = rec, st->sparsity = lsp, st->preact = lpre, st->loss = loss;
        for (int l = 0; l < L; l++) st->l0 += st->l0_l[l] / L;
    }
    if (grad) {
        for (int b = 0; b < B; b++) {
            double *R = yh + (size_t)b * LD;   // becomes 2 (y^ - y) / B
            for (size_t k = 0; k < LD; k++) R[k] = 2.0 * (R[k] - Y[(size_t)b * LD + k]) * inv_b;
            for (int l = 0; l < L; l++)
                for (int d = 0; d < D; d++) grad[clt_layout_off(lay, l, CP_B_DEC) + d] += R[(size_t)l * D + d];
            for (int l = 0; l < L; l++) {
                const double *x = X + (size_t)b * LD + (size_t)l * D;
                int no = clt_layout_nout(lay, l);
                for (int i = 0; i < F; i++) {
                    size_t k = ((size_t)b * L + l) * F + i;
                    const double *W = P + clt_layout_off(lay, l, CP_W_DEC) + (size_t)i * no * D;
                    double *gW = grad + clt_layout_off(lay, l, CP_W_DEC) + (size_t)i * no * D;
                    double n = nrm[(size_t)l * F + i], th = exp(P[clt_layout_off(lay, l, CP_LOG_THETA) + i]);
                    double g = 0;
                    for (int q = 0; q < no * D; q++) g += W[q] * R[(size_t)l * D + q];
                    double s = tanh(hp->c * n * a[k]), sech2 = 1 - s * s;
                    double ga = g + hp->lambda * hp->c * n * sech2 * inv_b;
                    double dn = hp->lambda * hp->c * a[k] * sech2 * inv_b;
                    for (int q = 0; q < no * D; q++) gW[q] += a[k] * R[(size_t)l * D + q];
                    double dh = h[k] > th ? ga : 0.0, dth = 0;
                    if (fabs((h[k] - th) / eps) < 0.5) dth += -(th / eps) * ga;
                    if (!(h[k] > th)) {   // preact
                        dh += -hp->lambda_p * n * inv_b;
                        dth += hp->lambda_p * n * inv_b;
                        dn += hp->lambda_p * (th - h[k]) * inv_b;
                    }
                    if (n > 0)
                        for (int q = 0; q < no * D; q++) gW[q] += dn * W[q] / n;
                    for (int d = 0; d < D; d++) grad[clt_layout_off(lay, l, CP_W_ENC) + (size_t)i * D + d] += dh * x[d];
                    grad[clt_layout_off(lay, l, CP_B_ENC) + i] += dh;
                    grad[clt_layout_off(lay, l, CP_LOG_THETA) + i] += th * dth;
                }
            }
        }
    }
    free(h);
    free(a);
    free(yh);
    free(nrm);
    return loss;
}

// ---- Adam -------------------------------------------------------------------------------------
typedef struct AdamJob {
    float *p, *g, *m, *v;
    size_t n;
    float lr_t, b1, b2, eps_t;
} AdamJob;

// Element-wise, so any split of the index range gives the same bits.
static void adam_task(void *ctx, int task, int ntask) {
    AdamJob *j = ctx;
    size_t a = pool_split(j->n, task, ntask), b = pool_split(j->n, task + 1, ntask);
    float b1 = j->b1, b2 = j->b2, c1 = 1.0f - b1, c2 = 1.0f - b2;
    for (size_t k = a; k < b; k++) {
        float g = j->g[k];
        float m = b1 * j->m[k] + c1 * g;
        float v = b2 * j->v[k] + c2 * (g * g);
        j->m[k] = m;
        j->v[k] = v;
        j->p[k] -= j->lr_t * m / (sqrtf(v) + j->eps_t);
    }
}

// One Adam step (Kingma & Ba, the efficient form: bias corrections folded into the step size
// and epsilon).  step counts from 1.
static void adam_step(ThreadPool *pool, float *p, float *g, float *m, float *v, size_t n, double lr, long step) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double c1 = 1.0 - pow(b1, (double)step), c2 = 1.0 - pow(b2, (double)step);
    AdamJob j = {p, g, m, v, n, (float)(lr * sqrt(c2) / c1), (float)b1, (float)b2, (float)(eps * sqrt(c2))};
    pool_run(pool, adam_task, &j, pool_size(pool));
}

// ---- corpus generation ------------------------------------------------------------------------
void clt_sample_opts_default(CltSampleOpts *o) {
    memset(o, 0, sizeof *o);
    o->tokens = 1000000;
    o->seed = 1;
    o->temperature = 1.0f;
    o->topp = 0.9f;
    o->max_len = 256;
}

// Story k's sampler seed: independent of threads and of the other stories; never 0 (xorshift).
static uint64_t story_seed(uint64_t seed, long k) {
    uint64_t s = seed ^ ((uint64_t)k * 0xD1B54A32D192ED03ull);
    uint64_t z = rng_next(&s);
    return z ? z : 1;
}

typedef struct Text { char *s; size_t n, cap; } Text;
static int text_put(Text *t, const char *p, size_t n) {
    if (t->n + n + 1 > t->cap) {
        size_t nc = (t->cap ? t->cap * 2 : 1024) + n;
        char *ns = realloc(t->s, nc);
        if (!ns) return CT_ERR;
        t->s = ns;
        t->cap = nc;
    }
    memcpy(t->s + t->n, p, n);
    t->n += n;
    t->s[t->n] = 0;
    return CT_OK;
}

typedef struct SampleJob {
    const Model *m;
    const Tokenizer *tok;
    const CltSampleOpts *o;
    long k0;           // first story of the group
    int G;
    Text *txt;         // (G) story texts
    long *ntok;        // (G) tokens generated
    RunState *rs;      // (ntask)
    Sampler *smp;      // (ntask)
    int failed;
    char err[512];
} SampleJob;

static void sample_task(void *ctx, int task, int ntask) {
    SampleJob *j = ctx;
    const Model *m = j->m;
    for (int g = task; g < j->G; g += ntask) {
        Text *t = &j->txt[g];
        t->n = 0;
        if (t->s) t->s[0] = 0;
        j->ntok[g] = 0;
        Sampler *s = &j->smp[task];
        s->rng_state = story_seed(j->o->seed, j->k0 + g);
        int token = tokenizer_start_id(j->tok), pending_nl = 0;
        int bos = tokenizer_bos_id(j->tok), eos = tokenizer_eos_id(j->tok);
        for (int pos = 0; pos < j->o->max_len - 1; pos++) {
            float *logits = model_forward(m, &j->rs[task], token, pos, NULL, NULL);
            if (!logits) goto fail;
            int next = sampler_sample(s, logits);
            if ((bos >= 0 && next == bos) || (eos >= 0 && next == eos)) break;
            const char *piece = tokenizer_decode(j->tok, token, next);
            if (!piece) goto fail;
            j->ntok[g]++;
            token = next;
            // Clean text: a run of newlines becomes one (a blank line separates stories),
            // control bytes other than newline and tab are dropped, no leading whitespace.
            for (const char *p = piece; *p; p++) {
                unsigned char ch = (unsigned char)*p;
                if (ch == '\n' || ch == '\r') {
                    pending_nl = t->n > 0;
                    continue;
                }
                if (ch < 0x20 && ch != '\t') continue;
                if (t->n == 0 && (ch == ' ' || ch == '\t')) continue;
                if (pending_nl && text_put(t, "\n", 1) != CT_OK) goto oom;
                pending_nl = 0;
                if (text_put(t, (const char *)&ch, 1) != CT_OK) goto oom;
            }
        }
        continue;
    oom:
        ct_error("sample: out of memory");
    fail:
        if (!__atomic_exchange_n(&j->failed, 1, __ATOMIC_RELAXED)) snprintf(j->err, sizeof j->err, "%s", ct_errmsg());
        return;
    }
}

int clt_sample_corpus(const Model *m, const Tokenizer *tok, const CltSampleOpts *o, const char *out_path,
                      long *n_tokens, long *n_stories) {
    if (o->tokens <= 0) return ct_error("sample: the token count must be positive, got %ld", o->tokens);
    if (o->seed == 0) return ct_error("sample: the seed must be >= 1 (xorshift has no state 0)");
    int max_len = o->max_len > 0 ? o->max_len : 256;
    if (max_len < 2 || max_len > m->c.seq_len)
        return ct_error("sample: story length %d must be in 2..%d (the model's seq_len)", max_len, m->c.seq_len);
    CltSampleOpts oo = *o;
    oo.max_len = max_len;
    ThreadPool *pool = pool_create(o->threads);
    if (!pool) return CT_ERR;
    int ntask = pool_size(pool), G = 64, rc = CT_ERR;
    SampleJob j = {.m = m, .tok = tok, .o = &oo, .G = G};
    j.txt = calloc((size_t)G, sizeof(Text));
    j.ntok = calloc((size_t)G, sizeof(long));
    j.rs = calloc((size_t)ntask, sizeof(RunState));
    j.smp = calloc((size_t)ntask, sizeof(Sampler));
    AtomicFile af = {0};
    int opened = 0, ok = j.txt && j.ntok && j.rs && j.smp;
    if (!ok) ct_error("sample: out of memory");
    for (int t = 0; ok && t < ntask; t++)
        ok = runstate_init(&j.rs[t], &m->c, max_len) == CT_OK &&
             sampler_init(&j.smp[t], m->c.vocab_size, o->temperature, o->topp, 1) == CT_OK;
    if (ok) ok = opened = ct_atomic_open(&af, out_path) == CT_OK;
    long total = 0, stories = 0, empty_run = 0, gen_tokens = 0, gen_stories = 0;
    double t0 = ct_now(), last = 0;
    for (long k0 = 0; ok && total < o->tokens; k0 += j.G) {
        // Stories have their own seeds, so the group size never changes the text: size it to
        // what is still missing at the mean story length seen so far.
        long want = gen_stories ? (long)((o->tokens - total) / (gen_tokens / (double)gen_stories + 1)) + 1 : 2L * ntask;
        j.G = want < ntask ? ntask : want > G ? G : (int)want;
        j.k0 = k0;
        pool_run(pool, sample_task, &j, ntask);
        if (j.failed) {
            ct_error("%s", j.err);
            ok = 0;
            break;
        }
        for (int g = 0; g < j.G; g++) gen_tokens += j.ntok[g];
        gen_stories += j.G;
        for (int g = 0; g < j.G && total < o->tokens; g++) {
            if (j.txt[g].n == 0) {   // the model ended the story at once: nothing to write
                if (++empty_run > 100000) {
                    ct_error("sample: 100000 empty stories in a row; the model never leaves BOS");
                    ok = 0;
                }
                continue;
            }
            empty_run = 0;
            if ((stories > 0 && fwrite("\n\n", 1, 2, af.f) != 2) || fwrite(j.txt[g].s, 1, j.txt[g].n, af.f) != j.txt[g].n) {
                ct_error("sample: short write to %s", out_path);
                ok = 0;
                break;
            }
            total += j.ntok[g];
            stories++;
        }
        if (o->progress && ct_now() - last > 0.5) {
            last = ct_now();
            fprintf(stderr, "\rsample: %ld/%ld tokens, %ld stories, %.0f tok/s", total, o->tokens, stories,
                    total / (last - t0 + 1e-9));
        }
    }
    if (o->progress) fprintf(stderr, "\n");
    if (ok && fwrite("\n", 1, 1, af.f) != 1) ok = 0, ct_error("sample: short write to %s", out_path);
    if (ok) rc = ct_atomic_commit(&af);
    else if (opened) ct_atomic_abort(&af);
    if (rc == CT_OK) {
        if (n_tokens) *n_tokens = total;
        if (n_stories) *n_stories = stories;
    }
    for (int t = 0; j.rs && t < ntask; t++) runstate_free(&j.rs[t]);
    for (int t = 0; j.smp && t < ntask; t++) sampler_free(&j.smp[t]);
    for (int g = 0; j.txt && g < G; g++) free(j.txt[g].s);
    free(j.txt), free(j.ntok), free(j.rs), free(j.smp);
    pool_destroy(pool);
    return rc;
}

// ---- the activation stream --------------------------------------------------------------------
// Windows come from the corpus in a fixed order (story by story, window by window, wrapping
// around at the end with epoch + 1).  They are run in groups of `group` windows (at most
// GROUP_MAX, fewer for wide models so a group stays under GROUP_BYTES), in parallel,
// each by model_forward_seq on its own run state (so a window's activations never depend on
// threads); the group's rows (positions p >= 1: x = resid_mid (L, D), y = MLP output (L, D))
// are handed out in order.  The stream's whole state is (cursor of the group's first window,
// rows of the group already handed out): a resumed run recomputes that group and skips.
#define GROUP_MAX 32
#define GROUP_BYTES ((size_t)256 << 20)
#define RING_BYTES ((size_t)1 << 30)   // default shuffle ring: 16 batches, capped at 1 GiB

// Windows per group for a model: part of the run's identity (it orders the rows).
static int stream_group(int ctx, int L, int D) {
    size_t per = (size_t)ctx * 2 * (size_t)L * D * sizeof(float);
    size_t g = GROUP_BYTES / per;
    return g < 1 ? 1 : g > GROUP_MAX ? GROUP_MAX : (int)g;
}

typedef struct Cursor {
    uint64_t epoch;
    uint64_t offset;   // where text_next_story starts looking for the current story
    int32_t window;    // window index inside that story
    int32_t pad;
} Cursor;

typedef struct Stream {
    const Model *m;
    const Tokenizer *tok;
    const char *text;
    size_t ntext;
    int ctx, L, D, ntask;
    ThreadPool *pool;
    Cursor g0, next;       // the current group's first window; the window after the group
    int group;             // windows per group
    float *rows;           // (group * (ctx-1), 2, L, D) raw rows of the group
    int nrows, used;
    StoryTok st;           // the story at st_offset, tokenized
    uint64_t st_offset, st_next;
    int st_valid;
    int *wtok;             // (group, ctx)
    int wlen[GROUP_MAX], woff[GROUP_MAX + 1];
    RunState *rs;          // (ntask)
    Capture *cap;          // (ntask)
    int failed;
    char err[512];
} Stream;

// The story at cursor offset (tokenized, cached); 0 at the end of the text.
static int stream_story(Stream *s, uint64_t offset) {
    if (s->st_valid && s->st_offset == offset) return 1;
    size_t pos = (size_t)offset, a, len;
    if (!text_next_story(s->text, s->ntext, &pos, &a, &len)) return 0;
    if (story_tokenize(&s->st, s->tok, s->text + a, len) != CT_OK) return -1;
    s->st_offset = offset;
    s->st_next = pos;
    s->st_valid = 1;
    return 1;
}

static void stream_forward_task(void *ctx, int task, int ntask) {
    Stream *s = ctx;
    size_t LD = (size_t)s->L * s->D;
    for (int g = task; g < s->group; g += ntask) {
        Capture *cap = &s->cap[task];
        if (model_forward_seq(s->m, &s->rs[task], s->wtok + (size_t)g * s->ctx, s->wlen[g], NULL, cap, NULL) != CT_OK) {
            if (!__atomic_exchange_n(&s->failed, 1, __ATOMIC_RELAXED)) snprintf(s->err, sizeof s->err, "%s", ct_errmsg());
            return;
        }
        for (int p = 1; p < s->wlen[g]; p++) {
            float *row = s->rows + (size_t)(s->woff[g] + p - 1) * 2 * LD;
            memcpy(row, cap->resid_mid + (size_t)p * LD, LD * sizeof(float));
            memcpy(row + LD, cap->mlp_out + (size_t)p * LD, LD * sizeof(float));
        }
    }
}

// Load the group of windows starting at cursor c and run it.
static int stream_load(Stream *s, Cursor c) {
    Cursor cur = c;
    int wrapped_empty = 0;
    s->woff[0] = 0;
    for (int g = 0; g < s->group; g++) {
        for (;;) {
            int r = stream_story(s, cur.offset);
            if (r < 0) return ct_error_ctx("corpus story at byte %llu", (unsigned long long)cur.offset);
            if (r == 0 || story_n_windows(s->st.n, s->ctx) == 0) {
                if (r == 0) {   // end of the text: next epoch
                    if (cur.offset == 0 || ++wrapped_empty > 1)
                        return ct_error("corpus: no story with a token after BOS (the text is empty or blank)");
                    cur.epoch++;
                    cur.offset = 0;
                } else
                    cur.offset = s->st_next;
                cur.window = 0;
                continue;
            }
            break;
        }
        wrapped_empty = 0;
        s->wlen[g] = story_window(s->st.ids, s->st.n, s->ctx, cur.window, s->wtok + (size_t)g * s->ctx);
        s->woff[g + 1] = s->woff[g] + s->wlen[g] - 1;
        if (++cur.window == story_n_windows(s->st.n, s->ctx)) {
            cur.offset = s->st_next;
            cur.window = 0;
        }
    }
    s->failed = 0;
    pool_run(s->pool, stream_forward_task, s, s->ntask);
    if (s->failed) return ct_error("%s", s->err);
    s->g0 = c;
    s->next = cur;
    s->nrows = s->woff[s->group];
    s->used = 0;
    return CT_OK;
}

static int stream_init(Stream *s, const Model *m, const Tokenizer *tok, const char *text, size_t n, int ctx,
                       ThreadPool *pool) {
    memset(s, 0, sizeof *s);
    s->m = m, s->tok = tok, s->text = text, s->ntext = n, s->ctx = ctx, s->pool = pool;
    s->L = m->c.n_layers, s->D = m->c.dim;
    s->ntask = pool_size(pool);
    size_t LD = (size_t)s->L * s->D;
    s->group = stream_group(ctx, s->L, s->D);
    s->rows = malloc((size_t)s->group * (ctx - 1) * 2 * LD * sizeof(float));
    s->wtok = malloc((size_t)s->group * ctx * sizeof(int));
    s->rs = calloc((size_t)s->ntask, sizeof(RunState));
    s->cap = calloc((size_t)s->ntask, sizeof(Capture));
    if (!s->rows || !s->wtok || !s->rs || !s->cap) return ct_error("activation stream: out of memory");
    for (int t = 0; t < s->ntask; t++)
        if (runstate_init(&s->rs[t], &m->c, ctx) != CT_OK || capture_init(&s->cap[t], &m->c, ctx, CAP_RESID | CAP_MLP) != CT_OK)
            return CT_ERR;
    return CT_OK;
}

static void stream_free(Stream *s) {
    for (int t = 0; s->rs && t < s->ntask; t++) runstate_free(&s->rs[t]);
    for (int t = 0; s->cap && t < s->ntask; t++) capture_free(&s->cap[t]);
    free(s->rs), free(s->cap), free(s->rows), free(s->wtok);
    story_free(&s->st);
    memset(s, 0, sizeof *s);
}

// Seek: the group at g0 with `used` rows already handed out.
static int stream_seek(Stream *s, Cursor g0, int used) {
    if (stream_load(s, g0) != CT_OK) return CT_ERR;
    if (used < 0 || used > s->nrows)
        return ct_error("checkpoint: stream position %d is outside the group's %d rows", used, s->nrows);
    s->used = used;
    return CT_OK;
}

// Next raw row (2, L, D) into dst.
static int stream_next(Stream *s, float *dst) {
    if (s->used == s->nrows && stream_load(s, s->next) != CT_OK) return CT_ERR;
    size_t LD = (size_t)s->L * s->D;
    memcpy(dst, s->rows + (size_t)s->used * 2 * LD, 2 * LD * sizeof(float));
    s->used++;
    return CT_OK;
}

// ---- checkpoints --------------------------------------------------------------------------------
// checkpoint.bin, native little-endian:
//   "CTCLTCK1", u32 version, then the run's identity (every option that shapes the result,
//   the model fingerprint, the corpus size and hash), then the state: step, RNG, stream cursor,
//   normalisation scalars, parameters, Adam moments, the ring's permutation and rows; and a
//   final xxh3-64 of everything before it.  Written atomically (temp file + rename).
#define CK_MAGIC "CTCLTCK1"
#define CK_VERSION 1u

typedef struct RunIdentity {   // fixed-size, compared field by field on resume
    int32_t L, D, F, plt, batch, buffer_rows, ctx, reuse, group, pad;
    int64_t tokens, steps;
    uint64_t seed, model_fp, corpus_size, corpus_hash;
    double lr, lambda, c, lambda_p, eps, theta_init, init_frac, warmup_frac, decay_frac, lambda_ramp;
} RunIdentity;

typedef struct TrainState {
    CltParamLayout lay;
    RunIdentity id;
    int64_t step;
    uint64_t rng;
    double sx[CLT_TRAIN_MAX_LAYERS], sy[CLT_TRAIN_MAX_LAYERS];
    float *P, *M, *V, *G;   // (lay.n) parameters, Adam moments, gradient
    int32_t *perm;          // (R) ring slots; the first B of each step are its batch
    float *ring;            // (R, 2, L, D) raw rows
    Stream stream;
} TrainState;


typedef struct Reader { const uint8_t *p; size_t n, at; } Reader;
static int get(Reader *r, void *dst, size_t n) {
    if (r->at + n > r->n) return CT_ERR;
    memcpy(dst, r->p + r->at, n);
    r->at += n;
    return CT_OK;
}

static size_t ring_row_floats(const TrainState *S) { return 2 * (size_t)S->lay.L * S->lay.D; }

static int checkpoint_write(const TrainState *S, const char *path) {
    CtBuf b = {0};
    uint32_t ver = CK_VERSION;
    ct_buf_put(&b, CK_MAGIC, 8);
    ct_buf_put(&b, &ver, 4);
    ct_buf_put(&b, &S->id, sizeof S->id);
    ct_buf_put(&b, &S->step, 8);
    ct_buf_put(&b, &S->rng, 8);
    ct_buf_put(&b, &S->stream.g0, sizeof(Cursor));
    int32_t used = S->stream.used;
    ct_buf_put(&b, &used, 4);
    ct_buf_put(&b, S->sx, (size_t)S->lay.L * sizeof(double));
    ct_buf_put(&b, S->sy, (size_t)S->lay.L * sizeof(double));
    uint64_t n = S->lay.n;
    ct_buf_put(&b, &n, 8);
    ct_buf_put(&b, S->P, n * sizeof(float));
    ct_buf_put(&b, S->M, n * sizeof(float));
    ct_buf_put(&b, S->V, n * sizeof(float));
    ct_buf_put(&b, S->perm, (size_t)S->id.buffer_rows * sizeof(int32_t));
    ct_buf_put(&b, S->ring, (size_t)S->id.buffer_rows * ring_row_floats(S) * sizeof(float));
    return ct_buf_write_hashed(&b, path);
}

// Compare the identity stored in a checkpoint with this run's; name the first difference.
static int identity_check(const RunIdentity *a, const RunIdentity *b, const char *path) {
#define CKI(f, name) if (a->f != b->f) return ct_error("%s: the checkpoint was made with %s = %lld, this run has %lld; resume with the same options (or use another -o)", path, name, (long long)a->f, (long long)b->f)
#define CKD(f, name) if (a->f != b->f) return ct_error("%s: the checkpoint was made with %s = %g, this run has %g; resume with the same options (or use another -o)", path, name, a->f, b->f)
    CKI(L, "layers"); CKI(D, "model width"); CKI(F, "--features"); CKI(plt, "--plt"); CKI(batch, "--batch");
    CKI(buffer_rows, "--buffer"); CKI(ctx, "--ctx"); CKI(reuse, "--reuse"); CKI(group, "window group");
    CKI(tokens, "--tokens"); CKI(steps, "steps"); CKI(seed, "--seed");
    if (a->model_fp != b->model_fp) return ct_error("%s: the checkpoint belongs to another model (fingerprint differs)", path);
    CKI(corpus_size, "corpus size (bytes)");
    if (a->corpus_hash != b->corpus_hash) return ct_error("%s: the corpus changed since the checkpoint (xxh3 differs)", path);
    CKD(lr, "--lr"); CKD(lambda, "--lambda"); CKD(c, "--c"); CKD(lambda_p, "--lambda-p"); CKD(eps, "--eps");
    CKD(theta_init, "--theta-init"); CKD(init_frac, "--init-frac"); CKD(warmup_frac, "--warmup");
    CKD(decay_frac, "--decay"); CKD(lambda_ramp, "--lambda-ramp");
#undef CKI
#undef CKD
    return CT_OK;
}

static int checkpoint_read(TrainState *S, const char *path) {
    MappedFile mf;
    if (ct_map_file(&mf, path) != CT_OK) return CT_ERR;
    Reader r = {mf.data, mf.size, 0};
    int rc = CT_ERR;
    char magic[8];
    uint32_t ver = 0;
    RunIdentity id;
    uint64_t h, n;
    Cursor g0;
    int32_t used;
    if (mf.size < 8 + 4 + sizeof id + 8 || memcmp(mf.data, CK_MAGIC, 8) != 0) {
        ct_error("%s: not a ctrace training checkpoint (expected magic %s)", path, CK_MAGIC);
        goto done;
    }
    memcpy(&h, mf.data + mf.size - 8, 8);
    if (ct_hash64(mf.data, mf.size - 8) != h) {
        ct_error("%s: checksum mismatch (the file is truncated or corrupt)", path);
        goto done;
    }
    r.n = mf.size - 8;
    if (get(&r, magic, 8) || get(&r, &ver, 4) || ver != CK_VERSION) {
        ct_error("%s: checkpoint version %u, this ctrace reads version %u", path, ver, CK_VERSION);
        goto done;
    }
    if (get(&r, &id, sizeof id) != CT_OK) {
        ct_error("%s: truncated header", path);
        goto done;
    }
    if (identity_check(&id, &S->id, path) != CT_OK) goto done;
    size_t L = (size_t)S->lay.L, R = (size_t)S->id.buffer_rows;
    if (get(&r, &S->step, 8) || get(&r, &S->rng, 8) || get(&r, &g0, sizeof g0) || get(&r, &used, 4) ||
        get(&r, S->sx, L * sizeof(double)) || get(&r, S->sy, L * sizeof(double)) || get(&r, &n, 8)) {
        ct_error("%s: truncated state", path);
        goto done;
    }
    if (n != S->lay.n) {
        ct_error("%s: %llu parameters, expected %zu", path, (unsigned long long)n, S->lay.n);
        goto done;
    }
    if (get(&r, S->P, n * sizeof(float)) || get(&r, S->M, n * sizeof(float)) || get(&r, S->V, n * sizeof(float)) ||
        get(&r, S->perm, R * sizeof(int32_t)) || get(&r, S->ring, R * ring_row_floats(S) * sizeof(float)) || r.at != r.n) {
        ct_error("%s: the state does not have the expected size", path);
        goto done;
    }
    for (size_t k = 0; k < R; k++)
        if (S->perm[k] < 0 || (size_t)S->perm[k] >= R) {
            ct_error("%s: ring permutation entry %zu = %d outside [0, %zu)", path, k, S->perm[k], R);
            goto done;
        }
    if (S->step < 0 || S->step > S->id.steps) {
        ct_error("%s: step %lld outside [0, %lld]", path, (long long)S->step, (long long)S->id.steps);
        goto done;
    }
    if (stream_seek(&S->stream, g0, used) != CT_OK) goto done;
    rc = CT_OK;
done:
    ct_unmap_file(&mf);
    return rc;
}

// ---- the run ----------------------------------------------------------------------------------
// Defaults measured on stories260K (D = 64, 5 layers) on 2 cores; see notes/clt_results.md.
// The paper's lr ~2e-4, eps ~1-2 and lambda_p ~3e-6 are for long runs on large models: in a
// 30-minute CPU budget lr 1e-2 reached the same NMSE in a fifth of the tokens, eps 0.3 gave
// the same quality as 1.0 while leaving far fewer (row, feature) pairs inside the STE window,
// and lambda_p 3e-4 revived the 15% of CLT features that 3e-6 left dead (at L0 ~26, NMSE
// 0.038 -> 0.034; 3e-3 was too strong: L0 60).
void clt_train_opts_default(CltTrainOpts *o) {
    memset(o, 0, sizeof *o);
    o->tokens = 5000000;
    o->batch = 512;
    o->lr = 1e-2;
    o->lambda = 0.05;
    o->c = 4.0;
    o->lambda_p = 3e-4;
    o->eps = 0.3;
    o->theta_init = 0.03;
    o->init_frac = 0.05;
    o->warmup_frac = 0.02;
    o->decay_frac = 0.2;
    o->lambda_ramp = 1.0;
    o->ctx = 128;
    o->buffer_rows = 0;   // 0: 16 batches, at most 1 GiB
    o->reuse = 1;
    o->seed = 1;
    o->checkpoint_every = 1000;
    o->progress = 1;
}

// k-th smallest of x (n), partially reordering x (Hoare quickselect, deterministic pivots).
static float select_kth(float *x, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float piv = x[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (x[i] < piv) i++;
            while (x[j] > piv) j--;
            if (i <= j) {
                float t = x[i];
                x[i] = x[j];
                x[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else break;
    }
    return x[k];
}

// The fresh-run initialisation (METHOD.md §1): scalars so the mean norms are sqrt(D),
// W_enc ~ U(+-1/sqrt(F)), W_dec ~ U(+-1/sqrt(L*D)), log theta = log theta_init, b_dec = mean y',
// b_enc so feature i fires (h > theta) on a fraction init_frac of the ring's rows.
static int init_params(TrainState *S, const CltTrainOpts *o) {
    const CltParamLayout *lay = &S->lay;
    int L = lay->L, D = lay->D, F = lay->F;
    size_t R = (size_t)S->id.buffer_rows, LD = (size_t)L * D, RW = ring_row_floats(S);
    for (int l = 0; l < L; l++) {
        double nx = 0, ny = 0;
        for (size_t r = 0; r < R; r++) {
            const float *row = S->ring + r * RW;
            double a = 0, b = 0;
            for (int d = 0; d < D; d++) {
                a += (double)row[(size_t)l * D + d] * row[(size_t)l * D + d];
                b += (double)row[LD + (size_t)l * D + d] * row[LD + (size_t)l * D + d];
            }
            nx += sqrt(a), ny += sqrt(b);
        }
        nx /= (double)R, ny /= (double)R;
        if (!(nx > 0) || !(ny > 0))
            return ct_error("corpus activations of layer %d are all zero (mean norm x %g, y %g): cannot normalise", l, nx, ny);
        S->sx[l] = sqrt((double)D) / nx;
        S->sy[l] = sqrt((double)D) / ny;
    }
    memset(S->P, 0, lay->n * sizeof(float));
    float ae = (float)(1.0 / sqrt((double)F)), ad = (float)(1.0 / sqrt((double)L * D));
    for (int l = 0; l < L; l++) {
        float *W = S->P + clt_layout_off(lay, l, CP_W_ENC);
        for (size_t k = 0; k < (size_t)F * D; k++) W[k] = ae * (float)(2 * rng_uniform(&S->rng) - 1);
    }
    for (int l = 0; l < L; l++) {
        float *W = S->P + clt_layout_off(lay, l, CP_W_DEC);
        for (size_t k = 0; k < (size_t)F * clt_layout_nout(lay, l) * D; k++) W[k] = ad * (float)(2 * rng_uniform(&S->rng) - 1);
        float *lt = S->P + clt_layout_off(lay, l, CP_LOG_THETA);
        for (int i = 0; i < F; i++) lt[i] = (float)log(o->theta_init);
        float *bd = S->P + clt_layout_off(lay, l, CP_B_DEC);
        for (int d = 0; d < D; d++) {
            double s = 0;
            for (size_t r = 0; r < R; r++) s += S->ring[r * RW + LD + (size_t)l * D + d];
            bd[d] = (float)(s / (double)R * S->sy[l]);
        }
    }
    // b_enc from the pre-activations of up to 8192 rows, one chunk of features at a time.
    size_t N = R < 8192 ? R : 8192, k = (size_t)((1.0 - o->init_frac) * (double)N);
    if (k >= N) k = N - 1;
    float *X = malloc(N * D * sizeof(float)), *H = malloc((size_t)FCHUNK * N * sizeof(float));
    if (!X || !H) {
        free(X), free(H);
        return ct_error("initialisation: out of memory");
    }
    const SimdKernels *K = simd_kernels();
    for (int l = 0; l < L; l++) {
        float s = (float)S->sx[l];
        for (size_t r = 0; r < N; r++)
            for (int d = 0; d < D; d++) X[r * D + d] = S->ring[r * RW + (size_t)l * D + d] * s;
        for (int f0 = 0; f0 < F; f0 += FCHUNK) {
            int f1 = f0 + FCHUNK < F ? f0 + FCHUNK : F;
            K->matmul_f32(H, X, S->P + clt_layout_off(lay, l, CP_W_ENC) + (size_t)f0 * D, (size_t)(f1 - f0), N, (size_t)D);
            for (int i = f0; i < f1; i++)
                S->P[clt_layout_off(lay, l, CP_B_ENC) + i] = (float)o->theta_init - select_kth(H + (size_t)(i - f0) * N, N, k);
        }
    }
    free(X), free(H);
    return CT_OK;
}

// Fold the normalisation back (h = (sx W_enc) x + b_enc; y^ = y^'/sy) and write the
// circuit-tracer layout with config.yaml.
static int save_transcoder(const TrainState *S, const char *dir) {
    const CltParamLayout *lay = &S->lay;
    int L = lay->L, D = lay->D, F = lay->F;
    Clt c;
    CltActivation act = {CLT_ACT_JUMPRELU, 0};
    if (clt_alloc(&c, L, D, F, lay->plt ? CLT_PER_LAYER : CLT_CROSS_LAYER, act, 0) != CT_OK) return CT_ERR;
    // The input site is the architecture's (Gemma-2 reads the normalised pre-FFN input).
    char *hook = strdup(model_tc_input_hook(&S->stream.m->c));
    if (!hook) { clt_free(&c); return ct_error("out of memory"); }
    free(c.input_hook);
    c.input_hook = hook;
    for (int l = 0; l < L; l++) {
        CltLayer *ly = &c.layers[l];
        const float *We = S->P + clt_layout_off(lay, l, CP_W_ENC), *be = S->P + clt_layout_off(lay, l, CP_B_ENC);
        const float *lt = S->P + clt_layout_off(lay, l, CP_LOG_THETA), *bd = S->P + clt_layout_off(lay, l, CP_B_DEC);
        const float *Wd = S->P + clt_layout_off(lay, l, CP_W_DEC);
        float sx = (float)S->sx[l], isy = (float)(1.0 / S->sy[l]);
        for (size_t k = 0; k < (size_t)F * D; k++) ly->W_enc[k] = We[k] * sx;
        for (int i = 0; i < F; i++) ly->b_enc[i] = be[i], ly->threshold[i] = expf(lt[i]);
        for (int d = 0; d < D; d++) ly->b_dec[d] = bd[d] * isy;
        int no = clt_layout_nout(lay, l);
        float *dst = (float *)ly->W_dec;   // resident fp32 in c.params (clt_alloc)
        for (int i = 0; i < F; i++)
            for (int o = 0; o < no; o++) {
                float s = (float)(1.0 / S->sy[lay->plt ? l : l + o]);
                for (int d = 0; d < D; d++) {
                    size_t q = ((size_t)i * no + o) * D + d;
                    dst[q] = Wd[q] * s;
                }
            }
    }
    int rc = clt_save(&c, dir, ST_F32);
    clt_free(&c);
    return rc;
}

// A run killed inside an atomic write leaves "<file>.tmp.<pid>" behind; remove those of
// processes that no longer exist, so a resumed run's directory holds exactly its outputs.
static void remove_stale_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *t = strstr(e->d_name, ".tmp.");
        if (!t) continue;
        char *end;
        long pid = strtol(t + 5, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) break;
        snprintf(p, n, "%s/%s", dir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
}

static double lr_at(const CltTrainOpts *o, long step, long steps) {
    long warm = (long)(o->warmup_frac * steps), dec = (long)(o->decay_frac * steps);
    if (warm > 0 && step < warm) return o->lr * (double)(step + 1) / (double)warm;
    if (dec > 0 && step >= steps - dec) return o->lr * (double)(steps - step) / (double)dec;
    return o->lr;
}

static double lambda_at(const CltTrainOpts *o, long step, long steps) {
    double ramp = o->lambda_ramp * (double)steps;
    if (ramp <= 1) return o->lambda;
    double f = (double)(step + 1) / ramp;
    return o->lambda * (f < 1 ? f : 1);
}

static int check_opts(const CltTrainOpts *o) {
    if (o->features < 1) return ct_error("train-clt: --features must be >= 1, got %d", o->features);
    if (o->batch < 1) return ct_error("train-clt: --batch must be >= 1, got %d", o->batch);
    if (o->tokens < o->batch) return ct_error("train-clt: --tokens %lld is less than one batch (%d)", o->tokens, o->batch);
    if (!(o->lr > 0) || !(o->eps > 0) || !(o->theta_init > 0) || !(o->c > 0) || o->lambda < 0 || o->lambda_p < 0)
        return ct_error("train-clt: --lr, --eps, --theta-init, --c must be > 0 and --lambda, --lambda-p >= 0");
    if (!(o->init_frac > 0 && o->init_frac < 1)) return ct_error("train-clt: --init-frac must be in (0, 1), got %g", o->init_frac);
    if (o->warmup_frac < 0 || o->decay_frac < 0 || o->warmup_frac + o->decay_frac > 1 || o->lambda_ramp < 0)
        return ct_error("train-clt: --warmup and --decay must be >= 0 with a sum <= 1, --lambda-ramp >= 0");
    if (o->reuse < 1 || o->reuse > o->batch) return ct_error("train-clt: --reuse must be in 1..batch, got %d", o->reuse);
    if (o->buffer_rows && o->buffer_rows < o->batch)
        return ct_error("train-clt: --buffer %d rows is smaller than a batch (%d)", o->buffer_rows, o->batch);
    CtDtype dt;
    if (o->dtype && ct_dtype_parse(o->dtype, &dt) != CT_OK) return ct_error_ctx("train-clt: --dtype");
    if (!o->out_dir || !o->corpus_path || !o->model_path || (!o->tokenizer_path && !model_path_is_hf(o->model_path)))
        return ct_error("train-clt: model, tokenizer, corpus and output directory are required");
    return CT_OK;
}

int clt_train_run(const CltTrainOpts *o) {
    if (check_opts(o) != CT_OK) return CT_ERR;
    Model m;
    Tokenizer tok;
    MappedFile corpus = {0};
    TrainState S;
    memset(&S, 0, sizeof S);
    ThreadPool *pool = NULL;
    CltCore *core = NULL;
    float *X = NULL, *Y = NULL;
    char *ck_path = NULL;
    int rc = CT_ERR, have_model = 0, have_tok = 0, have_corpus = 0;
    if (model_open(&m, o->model_path) != CT_OK) return CT_ERR;
    have_model = 1;
    if (tokenizer_open(&tok, o->tokenizer_path, o->model_path, m.c.vocab_size) != CT_OK) goto done;
    have_tok = 1;
    if (o->ctx < 2 || o->ctx > m.c.seq_len) {
        ct_error("train-clt: --ctx %d must be in 2..%d (the model's seq_len)", o->ctx, m.c.seq_len);
        goto done;
    }
    if (ct_map_file(&corpus, o->corpus_path) != CT_OK) goto done;
    have_corpus = 1;
    if (corpus.size == 0) {
        ct_error("%s: the corpus is empty (expected UTF-8 text, stories separated by blank lines)", o->corpus_path);
        goto done;
    }
    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST) {
        ct_error("cannot create directory %s: %s", o->out_dir, strerror(errno));
        goto done;
    }
    ck_path = malloc(strlen(o->out_dir) + sizeof(CLT_CHECKPOINT_NAME) + 2);
    sprintf(ck_path, "%s/%s", o->out_dir, CLT_CHECKPOINT_NAME);
    int have_ck = access(ck_path, F_OK) == 0;
    if (have_ck && !o->resume) {
        ct_error("%s exists: pass --resume to continue that run, or choose another -o", ck_path);
        goto done;
    }
    if (!have_ck && o->resume) {
        ct_error("--resume: no checkpoint at %s", ck_path);
        goto done;
    }
    remove_stale_temps(o->out_dir);
    int L = m.c.n_layers, D = m.c.dim, F = o->features, B = o->batch;
    if (clt_layout_init(&S.lay, L, D, F, o->plt) != CT_OK) goto done;
    RunIdentity *id = &S.id;
    id->L = L, id->D = D, id->F = F, id->plt = o->plt ? 1 : 0, id->batch = B;
    if (o->buffer_rows) id->buffer_rows = o->buffer_rows;
    else {
        size_t cap = RING_BYTES / (2 * (size_t)L * D * sizeof(float));
        id->buffer_rows = (int)((size_t)16 * B < cap ? (size_t)16 * B : cap < (size_t)B ? (size_t)B : cap);
    }
    id->ctx = o->ctx, id->reuse = o->reuse, id->group = stream_group(o->ctx, L, D);
    id->tokens = o->tokens, id->steps = o->tokens / B, id->seed = o->seed;
    id->model_fp = m.fingerprint, id->corpus_size = corpus.size, id->corpus_hash = ct_hash64(corpus.data, corpus.size);
    id->lr = o->lr, id->lambda = o->lambda, id->c = o->c, id->lambda_p = o->lambda_p, id->eps = o->eps;
    id->theta_init = o->theta_init, id->init_frac = o->init_frac, id->warmup_frac = o->warmup_frac;
    id->decay_frac = o->decay_frac, id->lambda_ramp = o->lambda_ramp;
    size_t R = (size_t)id->buffer_rows, n = S.lay.n, RW = ring_row_floats(&S), LD = (size_t)L * D;
    long steps = (long)id->steps;
    S.P = malloc(n * sizeof(float));
    S.M = calloc(n, sizeof(float));
    S.V = calloc(n, sizeof(float));
    S.G = malloc(n * sizeof(float));
    S.perm = malloc(R * sizeof(int32_t));
    S.ring = malloc(R * RW * sizeof(float));
    X = malloc((size_t)B * LD * sizeof(float));
    Y = malloc((size_t)B * LD * sizeof(float));
    if (!S.P || !S.M || !S.V || !S.G || !S.perm || !S.ring || !X || !Y) {
        ct_error("train-clt: out of memory (%zu parameters, ring of %zu rows)", n, R);
        goto done;
    }
    if (!(pool = pool_create(o->threads))) goto done;
    if (o->dtype) {
        // --dtype: int8 (or fp32) weights for the model that streams the activations.  A run
        // whose forward differs from the checkpoint's own dtype streams other activations, so
        // the model identity in checkpoint.bin says so (a --resume with another dtype fails).
        int was_q8 = model_is_q8(&m);
        CtDtype d = CT_DTYPE_F32;
        QuantOpts q = quant_opts_default();
        q.pool = pool;
        if (ct_dtype_parse(o->dtype, &d) != CT_OK || model_set_dtype(&m, d, &q) != CT_OK) {
            ct_error_ctx("train-clt: --dtype %s", o->dtype);
            goto done;
        }
        if (model_is_q8(&m) != was_q8 || (model_is_q8(&m) && model_dtype(&m) != CT_DTYPE_Q8)) {
            // q8 keeps the historical tag; q8a8 (8-bit activations) streams other activations
            uint64_t h[2] = {id->model_fp, !model_is_q8(&m) ? 0xf32u : model_dtype(&m) == CT_DTYPE_Q8 ? 0x7138u : 0x7138a8u};
            id->model_fp = ct_hash64(h, sizeof h);
        }
    }
    if (stream_init(&S.stream, &m, &tok, (const char *)corpus.data, corpus.size, o->ctx, pool) != CT_OK) goto done;
    if (clt_core_init(&core, &S.lay, B, pool) != CT_OK) goto done;
    if (o->resume) {
        if (checkpoint_read(&S, ck_path) != CT_OK) goto done;
        if (o->progress) fprintf(stderr, "train-clt: resumed %s at step %lld/%ld\n", ck_path, (long long)S.step, steps);
    } else {
        S.rng = o->seed;
        Cursor c0 = {0, 0, 0, 0};
        if (stream_seek(&S.stream, c0, 0) != CT_OK) goto done;
        for (size_t r = 0; r < R; r++) {
            S.perm[r] = (int32_t)r;
            if (stream_next(&S.stream, S.ring + r * RW) != CT_OK) goto done;
        }
        if (init_params(&S, o) != CT_OK) goto done;
        S.step = 0;
    }
    if (o->progress)
        fprintf(stderr, "train-clt: %s, L = %d, D = %d, F = %d, %zu parameters, batch %d, %ld steps, ring %zu rows, %d threads\n",
                o->plt ? "per-layer transcoder" : "cross-layer transcoder", L, D, F, n, B, steps, R, pool_size(pool));
    int refill = B / o->reuse;
    double t_last = ct_now(), t_start = t_last;
    long steps_since = 0, step0 = (long)S.step;
    CltStepStats acc;
    memset(&acc, 0, sizeof acc);
    while (S.step < steps) {
        // batch: B distinct ring slots (a partial Fisher-Yates over the persistent permutation)
        for (int j = 0; j < B; j++) {
            size_t k = (size_t)j + rng_below(&S.rng, R - (size_t)j);
            int32_t t = S.perm[j];
            S.perm[j] = S.perm[k];
            S.perm[k] = t;
            const float *row = S.ring + (size_t)S.perm[j] * RW;
            for (int l = 0; l < L; l++) {
                float sx = (float)S.sx[l], sy = (float)S.sy[l];
                for (int d = 0; d < D; d++) {
                    X[(size_t)j * LD + (size_t)l * D + d] = row[(size_t)l * D + d] * sx;
                    Y[(size_t)j * LD + (size_t)l * D + d] = row[LD + (size_t)l * D + d] * sy;
                }
            }
        }
        for (int j = 0; j < refill; j++)
            if (stream_next(&S.stream, S.ring + (size_t)S.perm[j] * RW) != CT_OK) goto done;
        CltLossHyper hp = {lambda_at(o, (long)S.step, steps), o->c, o->lambda_p, o->eps};
        CltStepStats st;
        if (clt_core_loss_grad(core, S.P, &hp, X, Y, B, S.G, &st) != CT_OK) goto done;
        if (!isfinite(st.loss)) {
            ct_error("train-clt: the loss became %g at step %lld (try a smaller --lr)", st.loss, (long long)S.step);
            goto done;
        }
        adam_step(pool, S.P, S.G, S.M, S.V, n, lr_at(o, (long)S.step, steps), (long)S.step + 1);
        S.step++;
        steps_since++;
        if (o->on_step) o->on_step(o->on_step_ctx, (long)S.step, steps, &st);
        acc.loss += st.loss, acc.rec += st.rec, acc.sparsity += st.sparsity, acc.preact += st.preact;
        acc.l0 += st.l0, acc.nmse += st.nmse;
        double now = ct_now();
        if (o->progress && (now - t_last > 5 || S.step == steps)) {
            double k = (double)steps_since;
            fprintf(stderr, "step %lld/%ld  %.0f tok/s  loss %.4f (rec %.4f  sparsity %.4f  preact %.2e)  L0 %.1f  NMSE %.4f  lr %.2e  lambda %.3g\n",
                    (long long)S.step, steps, k * B / (now - t_last), acc.loss / k, acc.rec / k, acc.sparsity / k,
                    acc.preact / k, acc.l0 / k, acc.nmse / k, lr_at(o, (long)S.step - 1, steps), hp.lambda);
            t_last = now;
            steps_since = 0;
            memset(&acc, 0, sizeof acc);
        }
        int stop = o->stop_after > 0 && S.step == o->stop_after;
        if ((o->checkpoint_every > 0 && S.step % o->checkpoint_every == 0) || S.step == steps || stop) {
            if (checkpoint_write(&S, ck_path) != CT_OK) goto done;
            if (o->save_each_checkpoint && S.step < steps && save_transcoder(&S, o->out_dir) != CT_OK) goto done;
        }
        if (stop) {
            if (o->progress) fprintf(stderr, "train-clt: stopped after step %lld (checkpoint written)\n", (long long)S.step);
            rc = CT_OK;
            goto done;
        }
    }
    if (save_transcoder(&S, o->out_dir) != CT_OK) goto done;
    if (o->progress)
        fprintf(stderr, "train-clt: done, %ld steps in %.1f s; wrote %s\n", steps - step0, ct_now() - t_start, o->out_dir);
    rc = CT_OK;
done:
    clt_core_free(core);
    stream_free(&S.stream);
    pool_destroy(pool);
    free(S.P), free(S.M), free(S.V), free(S.G), free(S.perm), free(S.ring), free(X), free(Y), free(ck_path);
    clt_layout_free(&S.lay);
    if (have_corpus) ct_unmap_file(&corpus);
    if (have_tok) tokenizer_free(&tok);
    if (have_model) model_free(&m);
    return rc;
}
