// train_model.c — training a Llama-family transformer from scratch: the loss and its full
// backward pass (written once, instantiated for float and double), AdamW with warm-up and
// cosine decay, gradient clipping, the corpus token stream, checkpoints and the run loop.
// API and the model's equations in train_model.h.
//
// One training step, top to bottom (B windows of T+1 tokens drawn from the train stream):
//
//   forward  exactly engine/forward.c, for all N = B*T positions at once, keeping what the
//            backward needs per layer: x, rmsnorm outputs and 1/rms, q and k after RoPE, v,
//            attention probabilities P (B, H, T, T), attention output, resid_mid, w1 x, w3 x,
//            silu(w1 x) * w3 x; then the final norm, logits and softmax.
//   backward dlogits = (softmax - onehot) / N, then every block in reverse:
//              a linear Y = X W^T gives dX = dY W  and  dW = dY^T X
//              rmsnorm y = g * x * inv gives dx = inv g dy - (inv^3 / D) (sum_d g dy x) x,
//                                             dg = sum_n dy x inv
//              SwiGLU h = silu(a) u gives da = dh u silu'(a), du = dh silu(a)
//              attention: dP = dO V^T, dS = P (dP - rowsum(P dP)) / sqrt(Dh),
//                         dQ = dS K, dK += dS^T Q, dV += P^T dO  (kv heads summed over their
//                         query group), then RoPE transposed (rotation by -angle)
//            and the embedding gets dx of every position scattered onto its token's row
//            (plus dwcls when the classifier is shared).
//   update   global gradient norm -> clip factor, AdamW (decoupled decay on matrices only).
//
// Every big product is the kernel table's matmul_f32 (Y = X W^T, reductions over contiguous
// rows): dX = dY W reads W transposed once per step, dW = dY^T X reads both operands
// transposed so the reduction runs over the N tokens.  Work is split over threads by rows
// of an output (tokens, weight rows, (sequence, kv head) pairs, vocabulary ranges), so each
// number is computed by the same code in the same order whatever the thread count.
//
// The loss + gradient lives in the section guarded by TM_REAL_PASS below: this file includes
// itself twice, with REAL = float (primitives from the kernel table) and REAL = double
// (plain loops), so the fp64 reference the tests check against finite differences is the
// very code that trains.
#ifndef TM_REAL_PASS
#include "engine/train_model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mem.h"
#include "simd/simd.h"

// ---- layout -----------------------------------------------------------------------------------
static const char *const TM_NAMES[TM_NTENSORS] = {
    "token_embedding", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3", "rms_final", "wcls",
};

const char *tm_tensor_name(int k) { return (unsigned)k < TM_NTENSORS ? TM_NAMES[k] : "?"; }

int tm_tensor_decays(int k) { return !(k == TM_RMS_ATT || k == TM_RMS_FFN || k == TM_RMS_FINAL); }

int tm_layout_init(TmLayout *lay, const Config *cin, const char *name) {
    memset(lay, 0, sizeof *lay);
    Config c = *cin;
    if (config_validate(&c, name) != CT_OK) return CT_ERR;
    c.head_dim = c.dim / c.n_heads;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.shared_classifier = c.shared_classifier ? 1 : 0;
    size_t D = (size_t)c.dim, Hd = (size_t)c.hidden_dim, L = (size_t)c.n_layers, V = (size_t)c.vocab_size;
    size_t Dkv = (size_t)c.n_kv_heads * c.head_dim;
    size_t len[TM_NTENSORS] = {V * D, L * D, L * D * D, L * Dkv * D, L * Dkv * D, L * D * D,
                               L * D,  L * Hd * D, L * D * Hd, L * Hd * D, D, c.shared_classifier ? 0 : V * D};
    size_t o = 0;
    for (int k = 0; k < TM_NTENSORS; k++) {
        lay->off[k] = o;
        lay->len[k] = len[k];
        o += len[k];
    }
    lay->n = o;
    lay->c = c;
    return CT_OK;
}

// ---- random numbers -----------------------------------------------------------------------------
// splitmix64: initialisation and window sampling; one u64 of state, saved in checkpoints.
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
// N(0, 1) by Box-Muller (one value per call; u1 in (0, 1] so the log is finite).
static double rng_normal(uint64_t *s) {
    double u1 = 1.0 - rng_uniform(s), u2 = rng_uniform(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void tm_init_params(const TmLayout *lay, float *p, uint64_t seed) {
    uint64_t s = seed ^ 0x5EED1A17BEEFull;   // a stream apart from the data sampler's
    float resid = (float)(1.0 / sqrt(2.0 * lay->c.n_layers));
    for (int k = 0; k < TM_NTENSORS; k++) {
        float *t = p + lay->off[k];
        if (!tm_tensor_decays(k)) {   // norm gains
            for (size_t i = 0; i < lay->len[k]; i++) t[i] = 1.0f;
            continue;
        }
        float sc = (k == TM_WO || k == TM_W2) ? resid : 1.0f;
        for (size_t i = 0; i < lay->len[k]; i++) t[i] = (float)(0.02 * rng_normal(&s)) * sc;
    }
}

// ---- primitives for REAL = float: the kernel table (K, fetched once per step) ------------------
static void mm_f32(const SimdKernels *K, float *Y, const float *W, const float *X, size_t T, size_t rows, size_t cols) {
    K->matmul_f32(Y, W, X, T, rows, cols);
}
static void axpy_f32(const SimdKernels *K, float *y, float a, const float *x, size_t n) { K->axpy_f32(y, a, x, n); }
static float rmsnorm_f32(const SimdKernels *K, float *o, const float *x, const float *w, size_t n, float eps) {
    return K->rmsnorm_f32(o, x, w, n, eps);
}
static void softmax_f32(const SimdKernels *K, float *x, size_t n) { K->softmax_f32(x, n); }
static void swiglu_f32(const SimdKernels *K, float *g, const float *u, size_t n) { K->swiglu_f32(g, u, n); }
static void rope_f32(const SimdKernels *K, float *x, const float *c, const float *s, size_t np) {
    K->rope_pairs_f32(x, c, s, np);
}

// ---- primitives for REAL = double: plain loops, the same operations (K unused) -----------------
static void mm_f64(const SimdKernels *K, double *Y, const double *W, const double *X, size_t T, size_t rows, size_t cols) {
    for (size_t t = 0; t < T; t++)
        for (size_t r = 0; r < rows; r++) {
            double s = 0;
            for (size_t c = 0; c < cols; c++) s += W[r * cols + c] * X[t * cols + c];
            Y[t * rows + r] = s;
        }
}
static double dot_f64(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
static void axpy_f64(const SimdKernels *K, double *y, double a, const double *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}
static double rmsnorm_f64(const SimdKernels *K, double *o, const double *x, const double *w, size_t n, double eps) {
    double ss = dot_f64(x, x, n), inv = 1.0 / sqrt(ss / (double)n + eps);
    for (size_t i = 0; i < n; i++) o[i] = w[i] * (x[i] * inv);
    return inv;
}
static void softmax_f64(const SimdKernels *K, double *x, size_t n) {
    double mx = x[0], s = 0;
    for (size_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (size_t i = 0; i < n; i++) s += (x[i] = exp(x[i] - mx));
    for (size_t i = 0; i < n; i++) x[i] /= s;
}
static void swiglu_f64(const SimdKernels *K, double *g, const double *u, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
}
static void rope_f64(const SimdKernels *K, double *x, const double *c, const double *s, size_t np) {
    for (size_t i = 0; i < np; i++) {
        double x0 = x[2 * i], x1 = x[2 * i + 1];
        x[2 * i] = x0 * c[i] - x1 * s[i];
        x[2 * i + 1] = x0 * s[i] + x1 * c[i];
    }
}

// ---- the two instances ------------------------------------------------------------------------------
#define TM_REAL_PASS
#define REAL float
#define SFX(x) x##_f32
#define MM mm_f32
#define AXPY axpy_f32
#define RMSNORM rmsnorm_f32
#define SOFTMAX softmax_f32
#define SWIGLU swiglu_f32
#define ROPE rope_f32
#define EXP expf
#define LOG logf
#define SQRT sqrtf
#define POW powf
#define COS cosf
#define SIN sinf
#include "engine/train_model.c"
#undef REAL
#undef SFX
#undef MM
#undef AXPY
#undef RMSNORM
#undef SOFTMAX
#undef SWIGLU
#undef ROPE
#undef EXP
#undef LOG
#undef SQRT
#undef POW
#undef COS
#undef SIN
#define REAL double
#define SFX(x) x##_f64
#define MM mm_f64
#define AXPY axpy_f64
#define RMSNORM rmsnorm_f64
#define SOFTMAX softmax_f64
#define SWIGLU swiglu_f64
#define ROPE rope_f64
#define EXP exp
#define LOG log
#define SQRT sqrt
#define POW pow
#define COS cos
#define SIN sin
#include "engine/train_model.c"
#undef REAL
#undef SFX
#undef MM
#undef AXPY
#undef RMSNORM
#undef SOFTMAX
#undef SWIGLU
#undef ROPE
#undef EXP
#undef LOG
#undef SQRT
#undef POW
#undef COS
#undef SIN

// ---- public wrappers of the instances ------------------------------------------------------------
struct TmCore { Core_f32 *k; };

int tm_core_init(TmCore **out, const TmLayout *lay, int B_max, int T, ThreadPool *pool) {
    *out = NULL;
    TmCore *c = calloc(1, sizeof *c);
    if (!c) return ct_error("train-model: out of memory");
    if (core_init_f32(&c->k, lay, B_max, T, pool) != CT_OK) {
        free(c);
        return CT_ERR;
    }
    *out = c;
    return CT_OK;
}

void tm_core_free(TmCore *c) {
    if (!c) return;
    core_free_f32(c->k);
    free(c);
}

int tm_core_loss_grad(TmCore *c, const float *params, const int32_t *tokens, int B, float *grad, double *loss) {
    return core_loss_grad_f32(c->k, params, tokens, B, grad, loss);
}

const float *tm_core_logits(const TmCore *c) { return c->k->LG; }

int tm_ref_loss_grad(const TmLayout *lay, const double *params, const int32_t *tokens, int B, int T,
                     double *grad, double *loss) {
    Core_f64 *k;
    if (core_init_f64(&k, lay, B, T, NULL) != CT_OK) return CT_ERR;
    int rc = core_loss_grad_f64(k, params, tokens, B, grad, loss);
    core_free_f64(k);
    return rc;
}

// ---- corpus ---------------------------------------------------------------------------------------
typedef struct Line { size_t at, len; } Line;

typedef struct EncJob {
    const Tokenizer *tok;
    const char *text;
    const Line *lines;
    size_t nlines;
    int nchunks;
    int32_t **out;      // (nchunks) token arrays
    size_t *nout;       // (nchunks)
    int *fail;          // (nchunks) 1: out of memory, 2: encoder error
} EncJob;

// Encode the lines of chunk k (contiguous, so concatenating chunks in order is file order).
static void enc_chunk(EncJob *j, int k) {
    size_t l0 = pool_split(j->nlines, k, j->nchunks), l1 = pool_split(j->nlines, k + 1, j->nchunks);
    size_t cap = 0, n = 0, bufcap = 0;
    int32_t *out = NULL;
    char *buf = NULL;
    int *ids = NULL;
    for (size_t i = l0; i < l1; i++) {
        size_t len = j->lines[i].len;
        // at most one id per byte, plus the dummy-prefix space and BOS
        size_t need = len + 3;
        if (len + 1 > bufcap) {
            free(buf);
            free(ids);
            bufcap = 2 * (len + 1);
            buf = malloc(bufcap);
            ids = malloc((bufcap + 3) * sizeof(int));
            if (!buf || !ids) goto oom;
        }
        memcpy(buf, j->text + j->lines[i].at, len);
        buf[len] = 0;
        int got = 0;
        if (tokenizer_encode(j->tok, buf, 1, 0, ids, (int)need, &got) != CT_OK) {
            j->fail[k] = 2;
            break;
        }
        if (n + (size_t)got > cap) {
            size_t nc = 2 * cap + (size_t)got + 1024;
            int32_t *no = realloc(out, nc * sizeof(int32_t));
            if (!no) goto oom;
            out = no;
            cap = nc;
        }
        for (int t = 0; t < got; t++) out[n++] = ids[t];
    }
    free(buf);
    free(ids);
    j->out[k] = out;
    j->nout[k] = n;
    return;
oom:
    free(buf);
    free(ids);
    free(out);
    j->fail[k] = 1;
}

static void enc_task(void *ctx, int t, int nt) {
    EncJob *j = ctx;
    for (int k = t; k < j->nchunks; k += nt) enc_chunk(j, k);
}

int tm_corpus_from_text(TmCorpus *c, const Tokenizer *tok, const char *text, size_t len, double heldout_frac,
                        ThreadPool *pool) {
    memset(c, 0, sizeof *c);
    if (!(heldout_frac >= 0 && heldout_frac < 1))
        return ct_error("corpus: held-out fraction must be in [0, 1), got %g", heldout_frac);
    // lines: '\n' ends a line, a trailing '\r' is dropped, lines of only spaces/tabs are skipped
    size_t cap = 1024, nl = 0;
    Line *lines = malloc(cap * sizeof *lines);
    if (!lines) return ct_error("corpus: out of memory");
    for (size_t at = 0; at < len;) {
        const char *nlp = memchr(text + at, '\n', len - at);
        size_t end = nlp ? (size_t)(nlp - text) : len, e = end;
        if (e > at && text[e - 1] == '\r') e--;
        int blank = 1;
        for (size_t i = at; i < e && blank; i++) blank = text[i] == ' ' || text[i] == '\t';
        for (size_t i = at; i < e && !blank; i++)
            if (text[i] == 0) {   // the encoder reads C strings: a NUL would cut the line short
                free(lines);
                return ct_error("corpus: NUL byte at offset %zu (line %zu); expected UTF-8 text", i, nl + 1);
            }
        if (!blank) {
            if (nl == cap) {
                Line *nw = realloc(lines, 2 * cap * sizeof *lines);
                if (!nw) {
                    free(lines);
                    return ct_error("corpus: out of memory");
                }
                lines = nw;
                cap *= 2;
            }
            lines[nl++] = (Line){at, e - at};
        }
        at = end + 1;
    }
    if (nl == 0) {
        free(lines);
        return ct_error("corpus: no text (every line is empty); expected one document per line");
    }
    EncJob j = {tok, text, lines, nl, 0, NULL, NULL, NULL};
    j.nchunks = 8 * pool_size(pool);
    if ((size_t)j.nchunks > nl) j.nchunks = (int)nl;
    j.out = calloc((size_t)j.nchunks, sizeof *j.out);
    j.nout = calloc((size_t)j.nchunks, sizeof *j.nout);
    j.fail = calloc((size_t)j.nchunks, sizeof *j.fail);
    int rc = CT_ERR;
    if (!j.out || !j.nout || !j.fail) {
        ct_error("corpus: out of memory");
        goto done;
    }
    pool_run(pool, enc_task, &j, pool_size(pool));
    for (int k = 0; k < j.nchunks; k++)
        if (j.fail[k]) {
            if (j.fail[k] == 1) ct_error("corpus: out of memory while encoding");
            else ct_error("corpus: the tokenizer failed on a line of chunk %d", k);
            goto done;
        }
    // held-out: the last documents; find where they start in the stream by counting BOS
    long nho = 0;
    if (heldout_frac > 0 && nl >= 2) {
        nho = (long)ceil(heldout_frac * (double)nl);
        if (nho < 1) nho = 1;
        if ((size_t)nho >= nl) nho = (long)nl - 1;
    }
    size_t total = 0;
    for (int k = 0; k < j.nchunks; k++) total += j.nout[k];
    c->tokens = malloc((total ? total : 1) * sizeof(int32_t));
    if (!c->tokens) {
        ct_error("corpus: out of memory for %zu tokens", total);
        goto done;
    }
    size_t n = 0;
    long doc = 0, first_ho = (long)nl - nho;
    c->n_train = SIZE_MAX;
    for (int k = 0; k < j.nchunks; k++)
        for (size_t i = 0; i < j.nout[k]; i++) {
            if (j.out[k][i] == TOK_BOS) {
                // every document starts with BOS (bos = 1); BOS never occurs inside one
                if (doc == first_ho && c->n_train == SIZE_MAX) c->n_train = n;
                doc++;
            }
            c->tokens[n++] = j.out[k][i];
        }
    c->n = n;
    if (c->n_train == SIZE_MAX) c->n_train = n;
    c->docs = (long)nl;
    c->docs_train = first_ho;
    c->vocab_size = tok->vocab_size;
    rc = CT_OK;
done:
    if (j.out)
        for (int k = 0; k < j.nchunks; k++) free(j.out[k]);
    free(j.out);
    free(j.nout);
    free(j.fail);
    free(lines);
    if (rc != CT_OK) tm_corpus_free(c);
    return rc;
}

void tm_corpus_free(TmCorpus *c) {
    free(c->tokens);
    memset(c, 0, sizeof *c);
}

// ---- optimizer ------------------------------------------------------------------------------------
#define NORM_BLOCK 65536   // gradient-norm partial sums over fixed blocks: thread-independent

typedef struct OptJob {
    const TmLayout *lay;
    float *p, *g, *m, *v;
    double *part;          // (nblocks) squared-norm partials
    size_t nblocks;
    float gscale, lr, b1, b2, c1, c2, eps, wd;
} OptJob;

static void norm_task(void *ctx, int t, int nt) {
    OptJob *j = ctx;
    size_t b0 = pool_split(j->nblocks, t, nt), b1 = pool_split(j->nblocks, t + 1, nt);
    for (size_t b = b0; b < b1; b++) {
        size_t i0 = b * NORM_BLOCK, i1 = i0 + NORM_BLOCK < j->lay->n ? i0 + NORM_BLOCK : j->lay->n;
        double s = 0;
        for (size_t i = i0; i < i1; i++) s += (double)j->g[i] * j->g[i];
        j->part[b] = s;
    }
}

// AdamW, element by element (any split gives the same bits):
//   g' = clip_scale g;  m = b1 m + (1-b1) g';  v = b2 v + (1-b2) g'^2
//   p -= lr (m / c1 / (sqrt(v / c2) + eps) + wd p)      c1, c2 the bias corrections
static void adamw_task(void *ctx, int t, int nt) {
    OptJob *j = ctx;
    const TmLayout *lay = j->lay;
    float b1 = j->b1, b2 = j->b2, o1 = 1.0f - b1, o2 = 1.0f - b2;
    for (int k = 0; k < TM_NTENSORS; k++) {
        size_t a = lay->off[k] + pool_split(lay->len[k], t, nt), e = lay->off[k] + pool_split(lay->len[k], t + 1, nt);
        float wd = tm_tensor_decays(k) ? j->wd : 0.0f;
        for (size_t i = a; i < e; i++) {
            float g = j->g[i] * j->gscale;
            float m = b1 * j->m[i] + o1 * g;
            float v = b2 * j->v[i] + o2 * (g * g);
            j->m[i] = m;
            j->v[i] = v;
            float mh = m / j->c1, vh = v / j->c2;
            j->p[i] -= j->lr * (mh / (sqrtf(vh) + j->eps) + wd * j->p[i]);
        }
    }
}

// ---- checkpoints ----------------------------------------------------------------------------------
// Training state, native little-endian:
//   "CTTMCK01", u32 version, the run identity (every option and input that shapes the
//   weights), step, RNG state, the recent-loss ring, n, parameters, Adam m, Adam v, and a
//   final xxh3-64 of everything before it.  Written atomically.
#define CK_MAGIC "CTTMCK01"
#define CK_VERSION 1u
#define LOSS_RING 20

typedef struct TmIdentity {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len, shared, batch, pad;
    int64_t steps, warmup;
    uint64_t seed, n_train, train_hash;
    double lr, lr_min_frac, weight_decay, clip, beta1, beta2, adam_eps;
} TmIdentity;

typedef struct TmState {
    TmIdentity id;
    int64_t step;
    uint64_t rng;
    double losses[LOSS_RING];   // losses of the last steps (ring, by step % LOSS_RING)
    size_t n;
    float *P, *M, *V;
} TmState;


static int checkpoint_write(const TmState *S, const char *path) {
    CtBuf b = {0};
    uint32_t ver = CK_VERSION;
    uint64_t n = S->n;
    ct_buf_put(&b, CK_MAGIC, 8);
    ct_buf_put(&b, &ver, 4);
    ct_buf_put(&b, &S->id, sizeof S->id);
    ct_buf_put(&b, &S->step, 8);
    ct_buf_put(&b, &S->rng, 8);
    ct_buf_put(&b, S->losses, sizeof S->losses);
    ct_buf_put(&b, &n, 8);
    ct_buf_put(&b, S->P, n * sizeof(float));
    ct_buf_put(&b, S->M, n * sizeof(float));
    ct_buf_put(&b, S->V, n * sizeof(float));
    return ct_buf_write_hashed(&b, path);
}

static int identity_check(const TmIdentity *a, const TmIdentity *b, const char *path) {
#define CKI(f, name) if (a->f != b->f) return ct_error("%s: the checkpoint was made with %s = %lld, this run has %lld; resume with the same options and corpus", path, name, (long long)a->f, (long long)b->f)
#define CKD(f, name) if (a->f != b->f) return ct_error("%s: the checkpoint was made with %s = %g, this run has %g; resume with the same options and corpus", path, name, a->f, b->f)
    CKI(dim, "--dim"); CKI(hidden_dim, "--hidden"); CKI(n_layers, "--layers"); CKI(n_heads, "--heads");
    CKI(n_kv_heads, "--kv-heads"); CKI(vocab_size, "vocab_size (tokenizer)"); CKI(seq_len, "--seq-len");
    CKI(shared, "shared classifier"); CKI(batch, "--batch"); CKI(steps, "steps"); CKI(warmup, "--warmup");
    CKI(seed, "--seed"); CKI(n_train, "train tokens");
    if (a->train_hash != b->train_hash) return ct_error("%s: the corpus changed since the checkpoint (xxh3 of the train tokens differs)", path);
    CKD(lr, "--lr"); CKD(lr_min_frac, "lr_min_frac"); CKD(weight_decay, "--wd"); CKD(clip, "--clip");
    CKD(beta1, "beta1"); CKD(beta2, "beta2"); CKD(adam_eps, "adam eps");
#undef CKI
#undef CKD
    return CT_OK;
}

static int checkpoint_read(TmState *S, const char *path) {
    MappedFile mf;
    if (ct_map_file(&mf, path) != CT_OK) return CT_ERR;
    int rc = CT_ERR;
    size_t head = 8 + 4 + sizeof(TmIdentity) + 8 + 8 + sizeof S->losses + 8;
    const uint8_t *p = mf.data;
    uint32_t ver;
    uint64_t h, n;
    TmIdentity id;
    if (mf.size < head + 8 || memcmp(p, CK_MAGIC, 8) != 0) {
        ct_error("%s: not a ctrace train-model checkpoint (expected magic %s)", path, CK_MAGIC);
        goto done;
    }
    memcpy(&h, p + mf.size - 8, 8);
    if (ct_hash64(p, mf.size - 8) != h) {
        ct_error("%s: checksum mismatch (the file is truncated or corrupt)", path);
        goto done;
    }
    memcpy(&ver, p + 8, 4);
    if (ver != CK_VERSION) {
        ct_error("%s: checkpoint version %u, this ctrace reads version %u", path, ver, CK_VERSION);
        goto done;
    }
    memcpy(&id, p + 12, sizeof id);
    if (identity_check(&id, &S->id, path) != CT_OK) goto done;
    size_t at = 12 + sizeof id;
    memcpy(&S->step, p + at, 8), at += 8;
    memcpy(&S->rng, p + at, 8), at += 8;
    memcpy(S->losses, p + at, sizeof S->losses), at += sizeof S->losses;
    memcpy(&n, p + at, 8), at += 8;
    if (n != S->n || mf.size != head + 3 * n * sizeof(float) + 8) {
        ct_error("%s: holds %llu parameters (%zu bytes), this model has %zu", path, (unsigned long long)n, mf.size, S->n);
        goto done;
    }
    memcpy(S->P, p + at, n * sizeof(float)), at += n * sizeof(float);
    memcpy(S->M, p + at, n * sizeof(float)), at += n * sizeof(float);
    memcpy(S->V, p + at, n * sizeof(float));
    if (S->step < 0 || S->step > S->id.steps) {
        ct_error("%s: step %lld is outside the run's 0..%lld", path, (long long)S->step, (long long)S->id.steps);
        goto done;
    }
    rc = CT_OK;
done:
    ct_unmap_file(&mf);
    return rc;
}

// ---- llama2.c output --------------------------------------------------------------------------------
int train_model_save(const TmLayout *lay, const float *params, const char *path) {
    const Config *c = &lay->c;
    int32_t h[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                    c->shared_classifier ? c->vocab_size : -c->vocab_size, c->seq_len};
    size_t half = (size_t)c->head_dim / 2, S = (size_t)c->seq_len;
    float *rope = malloc(2 * S * half * sizeof(float) + 1);
    if (!rope) return ct_error("%s: out of memory", path);
    // freq_cis_real / imag as llama2.c's export writes them (readers skip them)
    for (size_t pos = 0; pos < S; pos++)
        for (size_t i = 0; i < half; i++) {
            float freq = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
            rope[pos * half + i] = cosf((float)pos * freq);
            rope[S * half + pos * half + i] = sinf((float)pos * freq);
        }
    AtomicFile af;
    if (ct_atomic_open(&af, path) != CT_OK) {
        free(rope);
        return CT_ERR;
    }
    size_t before = lay->off[TM_WCLS];   // every tensor up to rms_final, in file order
    fwrite(h, sizeof h, 1, af.f);
    fwrite(params, sizeof(float), before, af.f);
    fwrite(rope, sizeof(float), 2 * S * half, af.f);
    if (lay->len[TM_WCLS]) fwrite(params + lay->off[TM_WCLS], sizeof(float), lay->len[TM_WCLS], af.f);
    free(rope);
    return ct_atomic_commit(&af);
}

void trained_model_free(TrainedModel *m) {
    free(m->params);
    memset(m, 0, sizeof *m);
}

// ---- evaluation -----------------------------------------------------------------------------------
// Contiguous windows of T+1 tokens starting at 0, T, 2T, ...; at most ceil(max_pred / T) windows.
static int eval_with(TmCore *core, int B, int T, const float *params, const int32_t *s, size_t n, long max_pred,
                     double *loss, long *n_pred) {
    *loss = NAN;
    *n_pred = 0;
    if (n < (size_t)T + 1) return CT_OK;
    size_t nw = (n - 1) / (size_t)T, cap = max_pred > 0 ? ((size_t)max_pred + T - 1) / (size_t)T : nw;
    if (nw > cap) nw = cap;
    int32_t *buf = malloc((size_t)B * (T + 1) * sizeof(int32_t));
    if (!buf) return ct_error("evaluation: out of memory");
    double sum = 0;
    for (size_t w0 = 0; w0 < nw; w0 += (size_t)B) {
        int b = (int)(nw - w0 < (size_t)B ? nw - w0 : (size_t)B);
        for (int i = 0; i < b; i++) memcpy(buf + (size_t)i * (T + 1), s + (w0 + i) * T, (size_t)(T + 1) * sizeof(int32_t));
        double l;
        if (tm_core_loss_grad(core, params, buf, b, NULL, &l) != CT_OK) {
            free(buf);
            return CT_ERR;
        }
        sum += l * b * T;
    }
    free(buf);
    *n_pred = (long)(nw * (size_t)T);
    *loss = sum / (double)*n_pred;
    return CT_OK;
}

int train_model_eval(const TmLayout *lay, const float *params, const int32_t *stream, size_t n, long max_pred,
                     int batch, ThreadPool *pool, double *loss, long *n_pred) {
    TmCore *core;
    int T = lay->c.seq_len;
    if (batch < 1) return ct_error("evaluation: batch must be >= 1, got %d", batch);
    for (size_t i = 0; i < n; i++)
        if (stream[i] < 0 || stream[i] >= lay->c.vocab_size)
            return ct_error("evaluation: token %d at %zu is outside the vocabulary [0, %d)", stream[i], i, lay->c.vocab_size);
    if (tm_core_init(&core, lay, batch, T, pool) != CT_OK) return CT_ERR;
    int rc = eval_with(core, batch, T, params, stream, n, max_pred, loss, n_pred);
    tm_core_free(core);
    return rc;
}

// ---- the run --------------------------------------------------------------------------------------
void train_model_opts_default(TrainModelOpts *o) {
    memset(o, 0, sizeof *o);
    o->dim = 128;
    o->hidden_dim = 0;   // 3 * dim
    o->n_layers = 4;
    o->n_heads = 4;
    o->n_kv_heads = 4;
    o->seq_len = 64;
    o->shared_classifier = 1;
    o->batch = 32;
    o->steps = 1000;
    o->lr = 3e-3;
    o->lr_min_frac = 0.1;
    o->warmup = -1;      // min(100, steps / 10)
    o->weight_decay = 0.1;
    o->clip = 1.0;
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->adam_eps = 1e-8;
    o->seed = 1;
    o->eval_tokens = 65536;
}

// Linear warm-up to lr over `warmup` steps, then cosine decay to lr * lr_min_frac at the end.
static double lr_at(const TmIdentity *id, long step) {
    double lr = id->lr, lo = lr * id->lr_min_frac;
    long w = (long)id->warmup, n = (long)id->steps;
    if (step < w) return lr * (double)(step + 1) / (double)w;
    if (n <= w + 1) return lr;
    double f = (double)(step - w) / (double)(n - w - 1);
    return lo + 0.5 * (lr - lo) * (1.0 + cos(3.141592653589793 * f));
}

static void fmt_eta(char *out, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(out, n, "?");
    else if (s >= 3600) snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)(fmod(s, 3600) / 60));
    else if (s >= 60) snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(out, n, "%.0fs", s);
}

static int check_opts(const TrainModelOpts *o, const TmCorpus *corpus, Config *c) {
    memset(c, 0, sizeof *c);
    c->dim = o->dim, c->hidden_dim = o->hidden_dim ? o->hidden_dim : 3 * o->dim, c->n_layers = o->n_layers;
    c->n_heads = o->n_heads, c->n_kv_heads = o->n_kv_heads, c->vocab_size = corpus->vocab_size;
    c->seq_len = o->seq_len, c->shared_classifier = o->shared_classifier;
    if (o->seq_len < 2) return ct_error("train-model: --seq-len must be >= 2, got %d", o->seq_len);
    if (o->batch < 1) return ct_error("train-model: --batch must be >= 1, got %d", o->batch);
    if (!(o->lr > 0) || !(o->lr_min_frac >= 0 && o->lr_min_frac <= 1))
        return ct_error("train-model: --lr must be > 0 (got %g) and lr_min_frac in [0, 1] (got %g)", o->lr, o->lr_min_frac);
    if (o->warmup < -1) return ct_error("train-model: --warmup must be >= 0 (or -1: automatic), got %ld", o->warmup);
    if (!(o->weight_decay >= 0) || !(o->clip >= 0))
        return ct_error("train-model: --wd and --clip must be >= 0, got %g and %g", o->weight_decay, o->clip);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->adam_eps > 0))
        return ct_error("train-model: Adam betas must be in [0, 1) and eps > 0");
    if (corpus->vocab_size < 1) return ct_error("train-model: the corpus has no vocabulary size");
    if (config_validate(c, "train-model") != CT_OK) return CT_ERR;
    if (corpus->n_train < (size_t)o->seq_len + 1)
        return ct_error("train-model: the train stream has %zu tokens but one window needs seq_len + 1 = %d; "
                        "give a larger corpus or a smaller --seq-len", corpus->n_train, o->seq_len + 1);
    for (size_t i = 0; i < corpus->n; i++)
        if (corpus->tokens[i] < 0 || corpus->tokens[i] >= corpus->vocab_size)
            return ct_error("train-model: corpus token %d at %zu is outside the vocabulary [0, %d)",
                            corpus->tokens[i], i, corpus->vocab_size);
    long long per = (long long)o->batch * o->seq_len;
    long steps = o->tokens > 0 ? (long)(o->tokens / per) : o->steps;
    if (steps < 1)
        return ct_error("train-model: %s gives no step (one step is batch * seq_len = %lld tokens)",
                        o->tokens > 0 ? "--tokens" : "--steps", per);
    if (o->checkpoint_every < 0 || o->stop_after < 0 || o->eval_every < 0)
        return ct_error("train-model: --checkpoint-every, --eval-every and stop_after must be >= 0");
    if ((o->checkpoint_every > 0 || o->stop_after > 0) && !o->checkpoint_path)
        return ct_error("train-model: checkpoints need a checkpoint path (--checkpoint FILE)");
    return CT_OK;
}

int train_model(const TrainModelOpts *o, const TmCorpus *corpus, ThreadPool *pool, TrainedModel *out,
                TrainModelResult *res) {
    memset(out, 0, sizeof *out);
    memset(res, 0, sizeof *res);
    res->eval_loss = NAN;
    Config c;
    if (check_opts(o, corpus, &c) != CT_OK) return CT_ERR;
    TmLayout lay;
    if (tm_layout_init(&lay, &c, "train-model") != CT_OK) return CT_ERR;
    int B = o->batch, T = o->seq_len, rc = CT_ERR;
    long long per = (long long)B * T;
    long steps = o->tokens > 0 ? (long)(o->tokens / per) : o->steps;
    TmState S;
    memset(&S, 0, sizeof S);
    TmIdentity *id = &S.id;
    id->dim = c.dim, id->hidden_dim = c.hidden_dim, id->n_layers = c.n_layers, id->n_heads = c.n_heads;
    id->n_kv_heads = c.n_kv_heads, id->vocab_size = c.vocab_size, id->seq_len = c.seq_len;
    id->shared = lay.c.shared_classifier, id->batch = B, id->steps = steps;
    long warm = o->warmup >= 0 ? o->warmup : (steps / 10 < 100 ? steps / 10 : 100);
    id->warmup = warm < steps ? warm : steps;
    id->seed = o->seed, id->n_train = corpus->n_train;
    id->train_hash = ct_hash64(corpus->tokens, corpus->n_train * sizeof(int32_t));
    id->lr = o->lr, id->lr_min_frac = o->lr_min_frac, id->weight_decay = o->weight_decay, id->clip = o->clip;
    id->beta1 = o->beta1, id->beta2 = o->beta2, id->adam_eps = o->adam_eps;
    size_t n = lay.n;
    S.n = n;
    S.P = malloc(n * sizeof(float));
    S.M = calloc(n, sizeof(float));
    S.V = calloc(n, sizeof(float));
    float *G = malloc(n * sizeof(float));
    size_t nblocks = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    double *part = malloc(nblocks * sizeof(double));
    int32_t *batch = malloc((size_t)B * (T + 1) * sizeof(int32_t));
    TmCore *core = NULL;
    if (!S.P || !S.M || !S.V || !G || !part || !batch) {
        ct_error("train-model: out of memory (%zu parameters)", n);
        goto done;
    }
    if (tm_core_init(&core, &lay, B, T, pool) != CT_OK) goto done;
    if (o->resume_path) {
        if (checkpoint_read(&S, o->resume_path) != CT_OK) goto done;
        if (o->progress) fprintf(stderr, "train-model: resumed %s at step %lld/%ld\n", o->resume_path, (long long)S.step, steps);
    } else {
        tm_init_params(&lay, S.P, o->seed);
        S.rng = o->seed;
        S.step = 0;
    }
    const int32_t *ho = corpus->tokens + corpus->n_train;
    size_t nho = corpus->n - corpus->n_train;
    if (o->progress)
        fprintf(stderr, "train-model: D = %d, Hd = %d, L = %d, H = %d, Hkv = %d, V = %d, T = %d, %zu parameters; "
                        "batch %d x %d, %ld steps; %zu train / %zu held-out tokens; %d threads\n",
                c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, T, n, B, T, steps,
                corpus->n_train, nho, pool_size(pool));
    double t_start = ct_now(), t_last = t_start, acc = 0;
    long since = 0, step0 = (long)S.step;
    OptJob oj = {&lay, S.P, G, S.M, S.V, part, nblocks, 0, 0, 0, 0, 0, 0, 0, 0};
    while (S.step < steps) {
        for (int b = 0; b < B; b++) {
            size_t at = (size_t)rng_below(&S.rng, (uint64_t)(corpus->n_train - (size_t)T));
            memcpy(batch + (size_t)b * (T + 1), corpus->tokens + at, (size_t)(T + 1) * sizeof(int32_t));
        }
        double loss;
        if (tm_core_loss_grad(core, S.P, batch, B, G, &loss) != CT_OK) goto done;
        if (!isfinite(loss)) {
            ct_error("train-model: the loss became %g at step %lld (try a smaller --lr)", loss, (long long)S.step + 1);
            goto done;
        }
        pool_run(pool, norm_task, &oj, pool_size(pool));
        double nrm = 0;
        for (size_t k = 0; k < nblocks; k++) nrm += part[k];
        nrm = sqrt(nrm);
        double lr = lr_at(id, (long)S.step), t1 = (double)S.step + 1;
        oj.gscale = (float)(o->clip > 0 && nrm > o->clip ? o->clip / nrm : 1.0);
        oj.lr = (float)lr, oj.b1 = (float)o->beta1, oj.b2 = (float)o->beta2, oj.eps = (float)o->adam_eps;
        oj.c1 = (float)(1.0 - pow(o->beta1, t1)), oj.c2 = (float)(1.0 - pow(o->beta2, t1));
        oj.wd = (float)o->weight_decay;
        pool_run(pool, adamw_task, &oj, pool_size(pool));
        S.losses[S.step % LOSS_RING] = loss;
        S.step++;
        if (S.step == step0 + 1) res->first_loss = loss;
        acc += loss, since++;
        if (o->on_step) o->on_step(o->on_step_ctx, (long)S.step, steps, loss, lr);
        double now = ct_now();
        if (o->progress && (now - t_last > 5 || S.step == steps)) {
            double tps = (double)since * per / (now - t_last), done_s = (double)(S.step - step0);
            char eta[32];
            fmt_eta(eta, sizeof eta, (now - t_start) / done_s * (double)(steps - S.step));
            fprintf(stderr, "step %lld/%ld  loss %.4f  lr %.2e  |g| %.3f  %.0f tok/s  ETA %s\n", (long long)S.step, steps,
                    acc / (double)since, lr, nrm, tps, eta);
            t_last = now, acc = 0, since = 0;
        }
        if (o->eval_every > 0 && S.step % o->eval_every == 0 && S.step < steps && nho > (size_t)T) {
            double el;
            long np;
            if (eval_with(core, B, T, S.P, ho, nho, o->eval_tokens, &el, &np) != CT_OK) goto done;
            if (o->progress) fprintf(stderr, "step %lld/%ld  held-out loss %.4f (%ld predictions)\n", (long long)S.step, steps, el, np);
        }
        int stop = o->stop_after > 0 && S.step == o->stop_after && S.step < steps;
        if (o->checkpoint_path && ((o->checkpoint_every > 0 && S.step % o->checkpoint_every == 0) || S.step == steps || stop))
            if (checkpoint_write(&S, o->checkpoint_path) != CT_OK) goto done;
        if (stop) {
            res->stopped = 1;
            if (o->progress) fprintf(stderr, "train-model: stopped after step %lld (checkpoint written)\n", (long long)S.step);
            break;
        }
    }
    res->seconds = ct_now() - t_start;
    res->steps = (long)S.step;
    res->steps_run = (long)S.step - step0;
    res->tokens = (long long)S.step * per;
    res->tok_per_s = res->seconds > 0 ? (double)res->steps_run * per / res->seconds : 0;
    {
        long k = S.step < LOSS_RING ? (long)S.step : LOSS_RING;
        double s = 0;
        for (long i = 0; i < k; i++) s += S.losses[i];
        res->train_loss = k ? s / (double)k : NAN;
    }
    if (!res->stopped && nho > (size_t)T &&
        eval_with(core, B, T, S.P, ho, nho, o->eval_tokens, &res->eval_loss, &res->eval_predictions) != CT_OK)
        goto done;
    out->lay = lay;
    out->params = S.P;
    S.P = NULL;
    rc = CT_OK;
done:
    tm_core_free(core);
    free(S.P), free(S.M), free(S.V), free(G), free(part), free(batch);
    return rc;
}

#else  // TM_REAL_PASS ====================================================================================
// The loss + gradient for one REAL type.  Names get SFX (_f32 / _f64); the primitives MM,
// AXPY, RMSNORM, SOFTMAX, SWIGLU, ROPE and the math functions EXP, LOG, ... are REAL's.

typedef struct SFX(Core) SFX(Core);
// A parallel piece of work: items [i0, i1) of a job, run by task `task` (for scratch).
typedef void (*SFX(Fn))(SFX(Core) *c, size_t i0, size_t i1, int task);

struct SFX(Core) {
    TmLayout lay;
    const SimdKernels *K;  // the kernel table of this step (float); unused by double
    int Bmax, T, nt;
    ThreadPool *pool;
    Pool mp;
    MemCarve carve;
    // RoPE tables (T, Dh/2): cos, sin, -sin (the transposed rotation)
    REAL *rc, *rs, *rns;
    // kept by the forward, per layer
    REAL *X;      // (L+1, N, D) residual entering each layer; index L: the final residual
    REAL *XN1;    // (L, N, D)   rmsnorm(x) * rms_att
    REAL *INV1;   // (L, N)      its 1/rms
    REAL *Q;      // (L, N, D)   q after RoPE
    REAL *Kk;     // (L, N, Dkv) k after RoPE
    REAL *Vv;     // (L, N, Dkv)
    REAL *P;      // (L, B, H, T, T) attention probabilities (row t holds keys 0..t)
    REAL *AO;     // (L, N, D)   attention output (before wo)
    REAL *XM;     // (L, N, D)   resid_mid
    REAL *XN2;    // (L, N, D)   rmsnorm(resid_mid) * rms_ffn
    REAL *INV2;   // (L, N)
    REAL *H1;     // (L, N, Hd)  w1 xn2
    REAL *H3;     // (L, N, Hd)  w3 xn2
    REAL *HG;     // (L, N, Hd)  silu(h1) * h3
    REAL *XF;     // (N, D)      final normed
    REAL *INVF;   // (N)
    REAL *LG;     // (N, V)      logits -> probabilities -> dlogits
    REAL *TL;     // (N)         per-token loss
    // backward scratch
    REAL *TMP;    // (N, D)      product outputs
    REAL *dX, *dXM, *dXN, *dAO;   // (N, D)
    REAL *dQKV;   // (N, C3)     d q | d k | d v
    REAL *dQKVT;  // (C3, N)
    REAL *dH13;   // (N, 2 Hd)   d h1 | d h3
    REAL *dH13T;  // (2 Hd, N)
    REAL *dHG;    // (N, Hd)
    REAL *AT;     // (max(D, Hd), N)  an activation, transposed
    REAL *DT;     // (max(D, V), N)   an output gradient, transposed
    REAL *WqkvT;  // (D, C3)     this layer's [wq; wk; wv] transposed
    REAL *WoT;    // (D, D)
    REAL *W13T;   // (D, 2 Hd)   [w1; w3] transposed
    REAL *W2T;    // (Hd, D)
    REAL *WclsT;  // (D, V)
    REAL *SCR;    // (nt, scr) per-task scratch: a logits row, or attention blocks
    size_t scr;   // max(V, Hd, 10 T Dh + 4 T^2)
    REAL *ONES;   // (Hd) ones: swiglu with u = 1 gives silu
    // the call in progress
    const REAL *W;
    REAL *G;
    const int32_t *tok;
    int B, l;
    size_t N;
    // the parallel job in progress
    SFX(Fn) fn;
    size_t nitems;
    struct { REAL *Y; const REAL *W, *X; size_t T, rows, cols; } mm;
    struct { REAL *dst; const REAL *src; size_t ldd, rows, cols; } tr;
    struct { REAL *dx, *dg; const REAL *add, *dy, *x, *g, *inv; } rb;
};

static void SFX(core_free)(SFX(Core) *c) {
    if (!c) return;
    if (c->carve.base) mem_carve_free(&c->carve);
    mem_pool_free(&c->mp);
    free(c);
}

static int SFX(core_init)(SFX(Core) **out, const TmLayout *lay, int Bmax, int T, ThreadPool *pool) {
    *out = NULL;
    if (Bmax < 1 || T < 1 || T > lay->c.seq_len)
        return ct_error("train-model: batch %d x %d positions, expected >= 1 sequence of 1..%d (seq_len)", Bmax, T, lay->c.seq_len);
    SFX(Core) *c = calloc(1, sizeof *c);
    if (!c) return ct_error("train-model: out of memory");
    c->lay = *lay;
    c->Bmax = Bmax, c->T = T, c->pool = pool, c->nt = pool_size(pool);
    const Config *cf = &lay->c;
    size_t D = (size_t)cf->dim, Hd = (size_t)cf->hidden_dim, L = (size_t)cf->n_layers, H = (size_t)cf->n_heads;
    size_t Dh = (size_t)cf->head_dim, Dkv = (size_t)cf->n_kv_heads * Dh, V = (size_t)cf->vocab_size;
    size_t N = (size_t)Bmax * T, t = (size_t)T, C3 = D + 2 * Dkv, R = sizeof(REAL);
    size_t DHd = D > Hd ? D : Hd, DV = D > V ? D : V, att_scr = 10 * t * Dh + 4 * t * t;
    c->scr = V > att_scr ? V : att_scr;
    c->scr = c->scr > Hd ? c->scr : Hd;
    MemCarveEntry tab[] = {
        {"rope cos", t * Dh / 2 * R, (void **)&c->rc},     {"rope sin", t * Dh / 2 * R, (void **)&c->rs},
        {"rope -sin", t * Dh / 2 * R, (void **)&c->rns},   {"x", (L + 1) * N * D * R, (void **)&c->X},
        {"xn1", L * N * D * R, (void **)&c->XN1},          {"inv1", L * N * R, (void **)&c->INV1},
        {"q", L * N * D * R, (void **)&c->Q},              {"k", L * N * Dkv * R, (void **)&c->Kk},
        {"v", L * N * Dkv * R, (void **)&c->Vv},           {"att", L * N * H * t * R, (void **)&c->P},
        {"ao", L * N * D * R, (void **)&c->AO},            {"xm", L * N * D * R, (void **)&c->XM},
        {"xn2", L * N * D * R, (void **)&c->XN2},          {"inv2", L * N * R, (void **)&c->INV2},
        {"h1", L * N * Hd * R, (void **)&c->H1},           {"h3", L * N * Hd * R, (void **)&c->H3},
        {"hg", L * N * Hd * R, (void **)&c->HG},           {"xf", N * D * R, (void **)&c->XF},
        {"invf", N * R, (void **)&c->INVF},                {"logits", N * V * R, (void **)&c->LG},
        {"token loss", N * R, (void **)&c->TL},            {"tmp", N * D * R, (void **)&c->TMP},
        {"dx", N * D * R, (void **)&c->dX},                {"dxm", N * D * R, (void **)&c->dXM},
        {"dxn", N * D * R, (void **)&c->dXN},              {"dao", N * D * R, (void **)&c->dAO},
        {"dqkv", N * C3 * R, (void **)&c->dQKV},           {"dqkv^T", N * C3 * R, (void **)&c->dQKVT},
        {"dh13", N * 2 * Hd * R, (void **)&c->dH13},       {"dh13^T", N * 2 * Hd * R, (void **)&c->dH13T},
        {"dhg", N * Hd * R, (void **)&c->dHG},             {"act^T", DHd * N * R, (void **)&c->AT},
        {"grad^T", DV * N * R, (void **)&c->DT},           {"wqkv^T", D * C3 * R, (void **)&c->WqkvT},
        {"wo^T", D * D * R, (void **)&c->WoT},             {"w13^T", D * 2 * Hd * R, (void **)&c->W13T},
        {"w2^T", Hd * D * R, (void **)&c->W2T},            {"wcls^T", D * V * R, (void **)&c->WclsT},
        {"scratch", (size_t)c->nt * c->scr * R, (void **)&c->SCR}, {"ones", Hd * R, (void **)&c->ONES},
    };
    mem_pool_init(&c->mp, "train-model", MEM_NUMA_OFF, NULL);
    if (mem_carve(&c->carve, &c->mp, tab, sizeof tab / sizeof tab[0]) != CT_OK) {
        ct_error_ctx("train-model buffers for %d x %d positions", Bmax, T);
        SFX(core_free)(c);
        return CT_ERR;
    }
    for (size_t i = 0; i < Hd; i++) c->ONES[i] = 1;
    // RoPE angles as forward.c computes them (float: the same bits as the inference tables)
    size_t half = Dh / 2;
    for (size_t p = 0; p < t; p++)
        for (size_t i = 0; i < half; i++) {
            REAL freq = (REAL)1 / POW((REAL)cf->rope_theta, (REAL)(2 * i) / (REAL)Dh);
            REAL val = (REAL)p * freq;
            c->rc[p * half + i] = COS(val);
            c->rs[p * half + i] = SIN(val);
            c->rns[p * half + i] = -SIN(val);
        }
    *out = c;
    return CT_OK;
}

// ---- parallel helpers ------------------------------------------------------------------------------
static void SFX(task)(void *ctx, int t, int nt) {
    SFX(Core) *c = ctx;
    size_t i0 = pool_split(c->nitems, t, nt), i1 = pool_split(c->nitems, t + 1, nt);
    if (i1 > i0) c->fn(c, i0, i1, t);
}

// Run fn over nitems items, split into one contiguous range per thread.
static void SFX(par)(SFX(Core) *c, SFX(Fn) fn, size_t nitems) {
    c->fn = fn;
    c->nitems = nitems;
    int nt = c->nt;
    if ((size_t)nt > nitems) nt = (int)nitems;
    if (nt <= 1) {
        if (nitems) fn(c, 0, nitems, 0);
        return;
    }
    pool_run(c->pool, SFX(task), c, nt);
}

static void SFX(mm_items)(SFX(Core) *c, size_t i0, size_t i1, int task) {
    MM(c->K, c->mm.Y + i0 * c->mm.rows, c->mm.W, c->mm.X + i0 * c->mm.cols, i1 - i0, c->mm.rows, c->mm.cols);
}

// Y (T, rows) = X (T, cols) W^T, split over the T rows of X.
static void SFX(matmul)(SFX(Core) *c, REAL *Y, const REAL *W, const REAL *X, size_t T, size_t rows, size_t cols) {
    c->mm.Y = Y, c->mm.W = W, c->mm.X = X, c->mm.T = T, c->mm.rows = rows, c->mm.cols = cols;
    SFX(par)(c, SFX(mm_items), T);
}

// dst[j*ldd + r] = src[r*cols + j]: dst rows j split over tasks; 8x8 tiles go through a
// local block so both the reads and the writes are runs of 8 contiguous elements.
static void SFX(tr_items)(SFX(Core) *c, size_t j0, size_t j1, int task) {
    const REAL *src = c->tr.src;
    REAL *dst = c->tr.dst;
    size_t rows = c->tr.rows, cols = c->tr.cols, ldd = c->tr.ldd, r0 = 0;
    for (; r0 + 8 <= rows; r0 += 8) {
        size_t j = j0;
        for (; j + 8 <= j1; j += 8) {
            REAL t[8][8];
            for (int r = 0; r < 8; r++)
                for (int k = 0; k < 8; k++) t[k][r] = src[(r0 + r) * cols + j + k];
            for (int k = 0; k < 8; k++) memcpy(dst + (j + k) * ldd + r0, t[k], sizeof t[k]);
        }
        for (; j < j1; j++)
            for (size_t r = r0; r < r0 + 8; r++) dst[j * ldd + r] = src[r * cols + j];
    }
    for (; r0 < rows; r0++)
        for (size_t j = j0; j < j1; j++) dst[j * ldd + r0] = src[r0 * cols + j];
}

static void SFX(transpose)(SFX(Core) *c, REAL *dst, size_t ldd, const REAL *src, size_t rows, size_t cols) {
    c->tr.dst = dst, c->tr.src = src, c->tr.ldd = ldd, c->tr.rows = rows, c->tr.cols = cols;
    SFX(par)(c, SFX(tr_items), cols);
}

// ---- forward pieces (items = positions n = b*T + t unless noted) -------------------------------------
#define DIMS                                                                                         \
    const Config *cf = &c->lay.c;                                                                    \
    size_t D = (size_t)cf->dim, Hd = (size_t)cf->hidden_dim, Dh = (size_t)cf->head_dim;              \
    size_t H = (size_t)cf->n_heads, Hkv = (size_t)cf->n_kv_heads, Dkv = Hkv * Dh, T = (size_t)c->T; \
    size_t N = c->N, V = (size_t)cf->vocab_size, C3 = D + 2 * Dkv, l = (size_t)c->l;                 \
    (void)cf, (void)D, (void)Hd, (void)Dh, (void)H, (void)Hkv, (void)Dkv, (void)T, (void)N, (void)V, \
        (void)C3, (void)l

#define PARAM(k) (c->W + c->lay.off[k])
#define GRAD(k) (c->G + c->lay.off[k])

static void SFX(f_embed)(SFX(Core) *c, size_t n0, size_t n1, int task) {
    DIMS;
    const REAL *emb = PARAM(TM_EMB);
    for (size_t n = n0; n < n1; n++) {
        int tk = c->tok[(n / T) * (T + 1) + n % T];
        memcpy(c->X + n * D, emb + (size_t)tk * D, D * sizeof(REAL));
    }
}

static void SFX(f_norm1)(SFX(Core) *c, size_t n0, size_t n1, int task) {
    DIMS;
    const REAL *g = PARAM(TM_RMS_ATT) + l * D, *x = c->X + l * N * D;
    REAL *y = c->XN1 + l * N * D, *inv = c->INV1 + l * N;
    for (size_t n = n0; n < n1; n++) inv[n] = RMSNORM(c->K, y + n * D, x + n * D, g, D, (REAL)cf->norm_eps);
}

static void SFX(f_rope)(SFX(Core) *c, size_t n0, size_t n1, int task) {
    DIMS;
    size_t half = Dh / 2;
    REAL *q = c->Q + l * N * D, *k = c->Kk + l * N * Dkv;
    for (size_t n = n0; n < n1; n++) {
        const REAL *cs = c->rc + (n % T) * half, *sn = c->rs + (n % T) * half;
        for (size_t h = 0; h < H; h++) ROPE(c->K, q + n * D + h * Dh, cs, sn, half);
        for (size_t h = 0; h < Hkv; h++) ROPE(c->K, k + n * Dkv + h * Dh, cs, sn, half);
    }
}

// Copy head block (T, Dh) of rows [n0, n0+T) with row stride ld, or transpose it to (Dh, T).
static void SFX(gather)(REAL *dst, const REAL *src, size_t ld, size_t T, size_t Dh) {
    for (size_t t = 0; t < T; t++) memcpy(dst + t * Dh, src + t * ld, Dh * sizeof(REAL));
}
static void SFX(gather_t)(REAL *dst, const REAL *src, size_t ld, size_t T, size_t Dh) {
    for (size_t t = 0; t < T; t++)
        for (size_t d = 0; d < Dh; d++) dst[d * T + t] = src[t * ld + d];
}

// Items = (sequence b, head h) pairs: forward.c's attn_task for every position of the
// sequence.  Scores for all (t, s) come from one product S = Q K^T (each entry is the table's
// dot_f32 of the same rows, the matmul contract), the upper triangle is ignored; the values
// are summed with axpy in key order, exactly as forward.c does.
static void SFX(f_attn)(SFX(Core) *c, size_t i0, size_t i1, int task) {
    DIMS;
    const REAL *q = c->Q + l * N * D, *k = c->Kk + l * N * Dkv, *v = c->Vv + l * N * Dkv;
    REAL *ao = c->AO + l * N * D, scale = SQRT((REAL)Dh);
    REAL *Qh = c->SCR + (size_t)task * c->scr, *Kh = Qh + T * Dh, *S = Kh + T * Dh;
    for (size_t it = i0; it < i1; it++) {
        size_t b = it / H, h = it % H, kvh = h / (H / Hkv);
        SFX(gather)(Qh, q + b * T * D + h * Dh, D, T, Dh);
        SFX(gather)(Kh, k + b * T * Dkv + kvh * Dh, Dkv, T, Dh);
        MM(c->K, S, Kh, Qh, T, T, Dh);                             // S[t, s] = q_t . k_s
        for (size_t t = 0; t < T; t++) {
            size_t n = b * T + t;
            REAL *att = c->P + (((l * c->B + b) * H + h) * T + t) * T;
            for (size_t s = 0; s <= t; s++) att[s] = S[t * T + s] / scale;
            SOFTMAX(c->K, att, t + 1);
            REAL *o = ao + n * D + h * Dh;
            memset(o, 0, Dh * sizeof(REAL));
            for (size_t s = 0; s <= t; s++) AXPY(c->K, o, att[s], v + (b * T + s) * Dkv + kvh * Dh, Dh);
        }
    }
}

static void SFX(f_resid1)(SFX(Core) *c, size_t n0, size_t n1, int task) {
    DIMS;
    const REAL *x = c->X + l * N * D;
    REAL *xm = c->XM + l * N * D;
    for (size_t i = n0 * D; i < n1 * D; i++) xm[i] = x[i] + c->TMP[i];
}

static void SFX(f_norm2)(SFX(Core) *c, size_t n0, size_t n1, int task) {
    DIMS;
    const REAL *g = PARAM(TM_RMS_FFN) + l * D, *x = c->XM + l * N * D;
    REAL *y = c->XN2 + l * N * D, *inv = c->INV2 + l * N;
    for (size_t n = n0; n < n1; n++) inv[n] = RMSNORM(c->K, y + n * D, x + n * D, g, D, (REAL)cf->norm_eps);
}

static void SFX(f_swiglu)(SFX(Core) *c, size_t n0, size_t n1, int task) {
    DIMS;
    const REAL *h1 = c->H1 + l * N * Hd, *h3 = c->H3 + l * N * Hd;
    REAL *hg = c->HG + l * N * Hd;
    memcpy(hg + n0 * Hd, h1 + n0 * Hd, (n1 - n0) * Hd * sizeof(REAL));
    for (size_t n = n0; n < n1; n++) SWIGLU(c->K, hg + n * Hd, h3 + n * Hd, Hd);
}

static void SFX(f_resid2)(SFX(Core) *c, size_t n0, size_t n1, int task) {
    DIMS;
    const REAL *xm = c->XM + l * N * D;
    REAL *x = c->X + (l + 1) * N * D;
    for (size_t i = n0 * D; i < n1 * D; i++) x[i] = xm[i] + c->TMP[i];
}

static void SFX(f_normf)(SFX(Core) *c, size_t n0, size_t n1, int task) {
    DIMS;
    const REAL *g = PARAM(TM_RMS_FINAL), *x = c->X + (size_t)cf->n_layers * N * D;
    for (size_t n = n0; n < n1; n++) c->INVF[n] = RMSNORM(c->K, c->XF + n * D, x + n * D, g, D, (REAL)cf->norm_eps);
}

// Softmax and loss per position.  With a gradient wanted, LG becomes dlogits = (p - onehot) / N;
// without, LG keeps the logits (tm_core_logits).  The loss is -log p[target]; when p underflows
// it is the log-sum-exp of the logits.
static void SFX(f_loss)(SFX(Core) *c, size_t n0, size_t n1, int task) {
    DIMS;
    REAL *sc = c->SCR + (size_t)task * c->scr;
    REAL invN = (REAL)1 / (REAL)N;
    for (size_t n = n0; n < n1; n++) {
        REAL *lg = c->LG + n * V, *pr = c->G ? lg : sc, *lo = c->G ? sc : lg;   // probabilities, logits
        int y = c->tok[(n / T) * (T + 1) + n % T + 1];
        memcpy(sc, lg, V * sizeof(REAL));
        SOFTMAX(c->K, pr, V);
        REAL p = pr[y];
        if (p > (REAL)1e-30) c->TL[n] = -LOG(p);
        else {
            double mx = lo[0], s = 0;
            for (size_t j = 1; j < V; j++) mx = lo[j] > mx ? lo[j] : mx;
            for (size_t j = 0; j < V; j++) s += exp((double)lo[j] - mx);
            c->TL[n] = (REAL)(log(s) + mx - (double)lo[y]);
        }
        if (c->G) {
            for (size_t j = 0; j < V; j++) lg[j] *= invN;
            lg[y] -= invN;
        }
    }
}

// ---- backward pieces ---------------------------------------------------------------------------------
// RMSNorm backward per position: dx = add + inv g dy - (inv^3 / D) (sum_d g dy x) x.
static void SFX(b_rms_dx)(SFX(Core) *c, size_t n0, size_t n1, int task) {
    DIMS;
    const REAL *g = c->rb.g;
    for (size_t n = n0; n < n1; n++) {
        const REAL *dy = c->rb.dy + n * D, *x = c->rb.x + n * D;
        REAL *dx = c->rb.dx + n * D, inv = c->rb.inv[n];
        double s = 0;
        for (size_t d = 0; d < D; d++) s += (double)(g[d] * dy[d]) * x[d];
        REAL k = (REAL)(s * (double)inv * inv * inv / (double)D);
        const REAL *add = c->rb.add ? c->rb.add + n * D : NULL;
        for (size_t d = 0; d < D; d++) dx[d] = (add ? add[d] : 0) + (inv * (g[d] * dy[d]) - k * x[d]);
    }
}

// ... and the gain: dg[d] = sum_n dy[n, d] x[n, d] inv[n]; items = d, sums in position order.
static void SFX(b_rms_dg)(SFX(Core) *c, size_t d0, size_t d1, int task) {
    DIMS;
    REAL *dg = c->rb.dg;
    for (size_t d = d0; d < d1; d++) dg[d] = 0;
    for (size_t n = 0; n < N; n++) {
        const REAL *dy = c->rb.dy + n * D, *x = c->rb.x + n * D;
        REAL inv = c->rb.inv[n];
        for (size_t d = d0; d < d1; d++) dg[d] += dy[d] * (x[d] * inv);
    }
}

static void SFX(rms_backward)(SFX(Core) *c, REAL *dx, const REAL *add, const REAL *dy, const REAL *x, const REAL *g,
                              const REAL *inv, REAL *dg) {
    c->rb.dx = dx, c->rb.add = add, c->rb.dy = dy, c->rb.x = x, c->rb.g = g, c->rb.inv = inv, c->rb.dg = dg;
    SFX(par)(c, SFX(b_rms_dx), c->N);
    SFX(par)(c, SFX(b_rms_dg), (size_t)c->lay.c.dim);
}

// SwiGLU backward: h = silu(a) u  ->  da = dh u silu'(a), du = dh silu(a), into dH13 (N, 2 Hd),
// silu'(a) = sg (1 + a (1 - sg)), sg = sigmoid(a).  silu(a) comes from the table's swiglu with
// u = 1 (vectorised exp), and sg = silu(a) / a (1/2 near a = 0, where the ratio is 0/0).
static void SFX(b_swiglu)(SFX(Core) *c, size_t n0, size_t n1, int task) {
    DIMS;
    const REAL *h1 = c->H1 + l * N * Hd, *h3 = c->H3 + l * N * Hd;
    REAL *si = c->SCR + (size_t)task * c->scr;
    for (size_t n = n0; n < n1; n++) {
        memcpy(si, h1 + n * Hd, Hd * sizeof(REAL));
        SWIGLU(c->K, si, c->ONES, Hd);
        for (size_t j = 0; j < Hd; j++) {
            REAL a = h1[n * Hd + j], u = h3[n * Hd + j], dh = c->dHG[n * Hd + j], silu = si[j];
            REAL sg = a > (REAL)1e-20 || a < (REAL)-1e-20 ? silu / a : (REAL)0.5;
            c->dH13[n * 2 * Hd + j] = dh * u * (sg * ((REAL)1 + a * ((REAL)1 - sg)));
            c->dH13[n * 2 * Hd + Hd + j] = dh * silu;
        }
    }
}

// Attention backward.  Items = (sequence b, kv head) pairs; per query head h of the group,
// with the blocks of this sequence gathered into (T, Dh) / (Dh, T) scratch:
//   dP  = dO V^T                                   (T, T)
//   dS  = P (dP - rowsum(P dP)) / sqrt(Dh)         zero above the diagonal
//   dQ  = dS K,  dK += dS^T Q,  dV += P^T dO       (T, Dh)
// The group's heads are added in order, so the dK, dV sums run in a fixed order.  Writes
// dQKV (gradients of q and k after RoPE).
static void SFX(b_attn)(SFX(Core) *c, size_t i0, size_t i1, int task) {
    DIMS;
    const REAL *q = c->Q + l * N * D, *k = c->Kk + l * N * Dkv, *v = c->Vv + l * N * Dkv;
    REAL scale = SQRT((REAL)Dh);
    size_t grp = H / Hkv, TD = T * Dh, TT = T * T;
    REAL *Kh = c->SCR + (size_t)task * c->scr, *Vh = Kh + TD, *Qh = Vh + TD, *dOh = Qh + TD;
    REAL *KhT = dOh + TD, *QhT = KhT + TD, *dOhT = QhT + TD, *tmp = dOhT + TD, *dKa = tmp + TD, *dVa = dKa + TD;
    REAL *dP = dVa + TD, *dS = dP + TT, *dST = dS + TT, *PT = dST + TT;
    for (size_t it = i0; it < i1; it++) {
        size_t b = it / Hkv, kvh = it % Hkv;
        SFX(gather)(Kh, k + b * T * Dkv + kvh * Dh, Dkv, T, Dh);
        SFX(gather)(Vh, v + b * T * Dkv + kvh * Dh, Dkv, T, Dh);
        SFX(gather_t)(KhT, k + b * T * Dkv + kvh * Dh, Dkv, T, Dh);
        memset(dKa, 0, 2 * TD * sizeof(REAL));   // dKa, dVa
        for (size_t h = kvh * grp; h < (kvh + 1) * grp; h++) {
            const REAL *P = c->P + ((l * c->B + b) * H + h) * TT;
            SFX(gather)(Qh, q + b * T * D + h * Dh, D, T, Dh);
            SFX(gather_t)(QhT, q + b * T * D + h * Dh, D, T, Dh);
            SFX(gather)(dOh, c->dAO + b * T * D + h * Dh, D, T, Dh);
            SFX(gather_t)(dOhT, c->dAO + b * T * D + h * Dh, D, T, Dh);
            MM(c->K, dP, Vh, dOh, T, T, Dh);                         // dP[t, s] = dO_t . v_s
            for (size_t t = 0; t < T; t++) {
                double sum = 0;
                for (size_t s2 = 0; s2 <= t; s2++) sum += (double)P[t * T + s2] * dP[t * T + s2];
                for (size_t s2 = 0; s2 < T; s2++) {
                    REAL ds = s2 <= t ? P[t * T + s2] * (dP[t * T + s2] - (REAL)sum) / scale : 0;
                    dS[t * T + s2] = ds;
                    dST[s2 * T + t] = ds;
                    PT[s2 * T + t] = s2 <= t ? P[t * T + s2] : 0;
                }
            }
            MM(c->K, tmp, KhT, dS, T, Dh, T);                        // dQ = dS K
            for (size_t t = 0; t < T; t++) memcpy(c->dQKV + (b * T + t) * C3 + h * Dh, tmp + t * Dh, Dh * sizeof(REAL));
            MM(c->K, tmp, QhT, dST, T, Dh, T);                       // dS^T Q
            for (size_t i = 0; i < TD; i++) dKa[i] += tmp[i];
            MM(c->K, tmp, dOhT, PT, T, Dh, T);                       // P^T dO
            for (size_t i = 0; i < TD; i++) dVa[i] += tmp[i];
        }
        for (size_t t = 0; t < T; t++) {
            memcpy(c->dQKV + (b * T + t) * C3 + D + kvh * Dh, dKa + t * Dh, Dh * sizeof(REAL));
            memcpy(c->dQKV + (b * T + t) * C3 + D + Dkv + kvh * Dh, dVa + t * Dh, Dh * sizeof(REAL));
        }
    }
}

// RoPE transposed: rotate dq, dk by -angle.
static void SFX(b_rope)(SFX(Core) *c, size_t n0, size_t n1, int task) {
    DIMS;
    size_t half = Dh / 2;
    for (size_t n = n0; n < n1; n++) {
        const REAL *cs = c->rc + (n % T) * half, *sn = c->rns + (n % T) * half;
        for (size_t h = 0; h < H; h++) ROPE(c->K, c->dQKV + n * C3 + h * Dh, cs, sn, half);
        for (size_t h = 0; h < Hkv; h++) ROPE(c->K, c->dQKV + n * C3 + D + h * Dh, cs, sn, half);
    }
}

// Embedding: items = vocabulary rows; each row sums its positions' dx in position order.
static void SFX(b_embed)(SFX(Core) *c, size_t v0, size_t v1, int task) {
    DIMS;
    REAL *ge = GRAD(TM_EMB);
    if (!cf->shared_classifier) memset(ge + v0 * D, 0, (v1 - v0) * D * sizeof(REAL));
    for (size_t n = 0; n < N; n++) {
        size_t tk = (size_t)c->tok[(n / T) * (T + 1) + n % T];
        if (tk < v0 || tk >= v1) continue;
        for (size_t d = 0; d < D; d++) ge[tk * D + d] += c->dX[n * D + d];
    }
}

// ---- the whole step ----------------------------------------------------------------------------------
static int SFX(core_loss_grad)(SFX(Core) *c, const REAL *W, const int32_t *tok, int B, REAL *G, double *loss) {
    if (B < 1 || B > c->Bmax) return ct_error("train-model: batch of %d sequences, expected 1..%d", B, c->Bmax);
    const Config *cf = &c->lay.c;
    size_t D = (size_t)cf->dim, Hd = (size_t)cf->hidden_dim, L = (size_t)cf->n_layers, H = (size_t)cf->n_heads;
    size_t Dkv = (size_t)cf->n_kv_heads * cf->head_dim, V = (size_t)cf->vocab_size, T = (size_t)c->T;
    size_t N = (size_t)B * T, C3 = D + 2 * Dkv;
    for (size_t i = 0; i < (size_t)B * (T + 1); i++)
        if (tok[i] < 0 || (size_t)tok[i] >= V)
            return ct_error("train-model: token %d at %zu is outside the vocabulary [0, %zu)", tok[i], i, V);
    c->W = W, c->G = G, c->tok = tok, c->B = B, c->N = N;
    c->K = sizeof(REAL) == sizeof(float) ? simd_kernels() : NULL;
    const REAL *wcls = c->W + c->lay.off[cf->shared_classifier ? TM_EMB : TM_WCLS];

    // forward
    SFX(par)(c, SFX(f_embed), N);
    for (size_t l = 0; l < L; l++) {
        c->l = (int)l;
        SFX(par)(c, SFX(f_norm1), N);
        const REAL *xn1 = c->XN1 + l * N * D;
        SFX(matmul)(c, c->Q + l * N * D, PARAM(TM_WQ) + l * D * D, xn1, N, D, D);
        SFX(matmul)(c, c->Kk + l * N * Dkv, PARAM(TM_WK) + l * Dkv * D, xn1, N, Dkv, D);
        SFX(matmul)(c, c->Vv + l * N * Dkv, PARAM(TM_WV) + l * Dkv * D, xn1, N, Dkv, D);
        SFX(par)(c, SFX(f_rope), N);
        SFX(par)(c, SFX(f_attn), (size_t)B * H);
        SFX(matmul)(c, c->TMP, PARAM(TM_WO) + l * D * D, c->AO + l * N * D, N, D, D);
        SFX(par)(c, SFX(f_resid1), N);
        SFX(par)(c, SFX(f_norm2), N);
        const REAL *xn2 = c->XN2 + l * N * D;
        SFX(matmul)(c, c->H1 + l * N * Hd, PARAM(TM_W1) + l * Hd * D, xn2, N, Hd, D);
        SFX(matmul)(c, c->H3 + l * N * Hd, PARAM(TM_W3) + l * Hd * D, xn2, N, Hd, D);
        SFX(par)(c, SFX(f_swiglu), N);
        SFX(matmul)(c, c->TMP, PARAM(TM_W2) + l * D * Hd, c->HG + l * N * Hd, N, D, Hd);
        SFX(par)(c, SFX(f_resid2), N);
    }
    SFX(par)(c, SFX(f_normf), N);
    SFX(matmul)(c, c->LG, wcls, c->XF, N, V, D);
    SFX(par)(c, SFX(f_loss), N);
    double s = 0;
    for (size_t n = 0; n < N; n++) s += c->TL[n];
    *loss = s / (double)N;
    if (!G) return CT_OK;

    // backward: classifier and final norm
    REAL *gcls = c->G + c->lay.off[cf->shared_classifier ? TM_EMB : TM_WCLS];
    SFX(transpose)(c, c->WclsT, V, wcls, V, D);
    SFX(matmul)(c, c->TMP, c->WclsT, c->LG, N, D, V);                  // dXF = dlogits wcls
    SFX(transpose)(c, c->DT, N, c->LG, N, V);
    SFX(transpose)(c, c->AT, N, c->XF, N, D);
    SFX(matmul)(c, gcls, c->AT, c->DT, V, D, N);                       // dwcls = dlogits^T XF
    SFX(rms_backward)(c, c->dX, NULL, c->TMP, c->X + L * N * D, PARAM(TM_RMS_FINAL), c->INVF, GRAD(TM_RMS_FINAL));
    for (size_t l = L; l-- > 0;) {
        c->l = (int)l;
        // MLP: x_{l+1} = xm + w2 hg
        SFX(transpose)(c, c->W2T, D, PARAM(TM_W2) + l * D * Hd, D, Hd);
        SFX(matmul)(c, c->dHG, c->W2T, c->dX, N, Hd, D);              // dHG = dX w2
        SFX(transpose)(c, c->DT, N, c->dX, N, D);
        SFX(transpose)(c, c->AT, N, c->HG + l * N * Hd, N, Hd);
        SFX(matmul)(c, GRAD(TM_W2) + l * D * Hd, c->AT, c->DT, D, Hd, N);  // dw2 = dX^T HG
        SFX(par)(c, SFX(b_swiglu), N);
        SFX(transpose)(c, c->dH13T, N, c->dH13, N, 2 * Hd);
        SFX(transpose)(c, c->AT, N, c->XN2 + l * N * D, N, D);
        SFX(matmul)(c, GRAD(TM_W1) + l * Hd * D, c->AT, c->dH13T, Hd, D, N);
        SFX(matmul)(c, GRAD(TM_W3) + l * Hd * D, c->AT, c->dH13T + Hd * N, Hd, D, N);
        SFX(transpose)(c, c->W13T, 2 * Hd, PARAM(TM_W1) + l * Hd * D, Hd, D);
        SFX(transpose)(c, c->W13T + Hd, 2 * Hd, PARAM(TM_W3) + l * Hd * D, Hd, D);
        SFX(matmul)(c, c->dXN, c->W13T, c->dH13, N, D, 2 * Hd);      // dXN2 = dH1 w1 + dH3 w3
        SFX(rms_backward)(c, c->dXM, c->dX, c->dXN, c->XM + l * N * D, PARAM(TM_RMS_FFN) + l * D, c->INV2 + l * N,
                          GRAD(TM_RMS_FFN) + l * D);
        // attention: xm = x + wo ao
        SFX(transpose)(c, c->WoT, D, PARAM(TM_WO) + l * D * D, D, D);
        SFX(matmul)(c, c->dAO, c->WoT, c->dXM, N, D, D);              // dAO = dXM wo
        SFX(transpose)(c, c->DT, N, c->dXM, N, D);
        SFX(transpose)(c, c->AT, N, c->AO + l * N * D, N, D);
        SFX(matmul)(c, GRAD(TM_WO) + l * D * D, c->AT, c->DT, D, D, N);  // dwo = dXM^T AO
        SFX(par)(c, SFX(b_attn), (size_t)B * cf->n_kv_heads);
        SFX(par)(c, SFX(b_rope), N);
        SFX(transpose)(c, c->dQKVT, N, c->dQKV, N, C3);
        SFX(transpose)(c, c->AT, N, c->XN1 + l * N * D, N, D);
        SFX(matmul)(c, GRAD(TM_WQ) + l * D * D, c->AT, c->dQKVT, D, D, N);
        SFX(matmul)(c, GRAD(TM_WK) + l * Dkv * D, c->AT, c->dQKVT + D * N, Dkv, D, N);
        SFX(matmul)(c, GRAD(TM_WV) + l * Dkv * D, c->AT, c->dQKVT + (D + Dkv) * N, Dkv, D, N);
        SFX(transpose)(c, c->WqkvT, C3, PARAM(TM_WQ) + l * D * D, D, D);
        SFX(transpose)(c, c->WqkvT + D, C3, PARAM(TM_WK) + l * Dkv * D, Dkv, D);
        SFX(transpose)(c, c->WqkvT + D + Dkv, C3, PARAM(TM_WV) + l * Dkv * D, Dkv, D);
        SFX(matmul)(c, c->dXN, c->WqkvT, c->dQKV, N, D, C3);          // dXN1 = dQ wq + dK wk + dV wv
        SFX(rms_backward)(c, c->dX, c->dXM, c->dXN, c->X + l * N * D, PARAM(TM_RMS_ATT) + l * D, c->INV1 + l * N,
                          GRAD(TM_RMS_ATT) + l * D);
    }
    SFX(par)(c, SFX(b_embed), V);
    return CT_OK;
}

#undef DIMS
#undef PARAM
#undef GRAD
#endif  // TM_REAL_PASS
