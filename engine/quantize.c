// quantize.c — int8 model and transcoder weights, the quantized checkpoint (see quantize.h).
#include "engine/quantize.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/common.h"
#include "simd/simd.h"

#define Q8_MAGIC "CTRACEQ8"
#define Q8_VERSION 1u
#define Q8_HEADER 64u

static const char *const k_dtype_names[] = {"f32", "q8", "bf16", "bf16dot", "q8a8"};
#define N_DTYPES (sizeof k_dtype_names / sizeof k_dtype_names[0])

const char *ct_dtype_name(CtDtype d) { return (unsigned)d < N_DTYPES ? k_dtype_names[d] : "?"; }

int ct_dtype_parse(const char *s, CtDtype *out) {
    for (size_t i = 0; s && i < N_DTYPES; i++)
        if (!strcmp(s, k_dtype_names[i])) {
            *out = (CtDtype)i;
            return CT_OK;
        }
    return ct_error("dtype: expected f32|q8|q8a8|bf16|bf16dot, got '%s'", s ? s : "(null)");
}

QuantOpts quant_opts_default(void) {
    return (QuantOpts){.numa = NUMA_OFF, .pool = NULL, .dequant_f32 = -1, .act_digits = 2};
}

// The activation digits asked for (0: the default, 2), or an error for anything but 1 or 2.
static int opts_digits(const QuantOpts *o, int *dg) {
    *dg = o->act_digits ? o->act_digits : 2;
    if (*dg != 1 && *dg != 2) return ct_error("q8: activation digits must be 1 (q8a8) or 2 (q8), got %d", *dg);
    return CT_OK;
}

// o (or the defaults) with the activation digits of the int8 dtype d.
static QuantOpts opts_for_dtype(const QuantOpts *o, CtDtype d) {
    QuantOpts q = o ? *o : quant_opts_default();
    q.act_digits = ct_dtype_digits(d);
    return q;
}

// ---- thread-local activation scratch ---------------------------------------------------------
static pthread_key_t g_act_key;
static pthread_once_t g_act_once = PTHREAD_ONCE_INIT;
static void act_destroy(void *p) {
    q8_actbuf_free(p);
    free(p);
}
static void act_key_init(void) { pthread_key_create(&g_act_key, act_destroy); }

Q8ActBuf *q8_tls_actbuf(void) {
    pthread_once(&g_act_once, act_key_init);
    Q8ActBuf *b = pthread_getspecific(g_act_key);
    if (!b && (b = calloc(1, sizeof *b))) pthread_setspecific(g_act_key, b);
    return b;
}

// ---- model geometry --------------------------------------------------------------------------
// Rows and columns of per-layer matrix k, and where its fp32 weights start for layer l.
static void mat_shape(const Config *c, int k, size_t *rows, size_t *cols) {
    size_t D = (size_t)c->dim, Hd = (size_t)c->hidden_dim, Dq = (size_t)c->n_heads * c->head_dim;
    size_t Dkv = (size_t)c->n_kv_heads * c->head_dim;
    switch (k) {
    case Q8M_WQ: *rows = Dq, *cols = D; break;
    case Q8M_WK: case Q8M_WV: *rows = Dkv, *cols = D; break;
    case Q8M_WO: *rows = D, *cols = Dq; break;
    case Q8M_W2: *rows = D, *cols = Hd; break;
    default: *rows = Hd, *cols = D; break;   // w1, w3
    }
}

static const float *w_of(const Weights *w, int k) {
    const float *p[Q8M_PER_LAYER] = {w->wq, w->wk, w->wv, w->wo, w->w1, w->w2, w->w3};
    return p[k];
}
static const float **w_slot(Weights *w, int k) {
    const float **p[Q8M_PER_LAYER] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w1, &w->w2, &w->w3};
    return p[k];
}

static const char *const k_mat_names[Q8M_PER_LAYER] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};

// ---- packing (parallel, with the forward's panel split) ---------------------------------------
typedef struct PackJob {
    uint8_t *dst;
    const float *Wf;        // fp32 source, or
    const BlockQ8 *Wq;      // stored blocks
    size_t rows, cols, np;
    int failed;
} PackJob;

static void pack_task(void *ctx, int t, int nt) {
    PackJob *j = ctx;
    size_t p0 = pool_split(j->np, t, nt), p1 = pool_split(j->np, t + 1, nt);
    if (j->Wq) q8_pack_panels(j->dst, j->Wq, j->rows, j->cols, p0, p1);
    else if (q8_quantize_pack_panels(j->dst, j->Wf, j->rows, j->cols, p0, p1) != CT_OK) j->failed = 1;
}

// Pack one matrix; threads as forward.c's matmul() would use for a decode step (the same
// rule and split), so under --numa local each panel is first touched by its reader.
static int pack_matrix(ThreadPool *pool, uint8_t *dst, const float *Wf, const BlockQ8 *Wq, size_t rows, size_t cols) {
    PackJob j = {dst, Wf, Wq, rows, cols, q8_npanels(rows), 0};
    int nt = (rows * cols < (1u << 16)) ? 1 : pool_size(pool);
    if ((size_t)nt > j.np) nt = (int)j.np;
    pool_run(pool, pack_task, &j, nt);
    return j.failed ? ct_error("q8: packing a %zu x %zu matrix failed (out of memory)", rows, cols) : CT_OK;
}

static void free_copies(ModelQ8 *q) {
    for (int i = 0; i < q->ncopies; i++) {
        mem_free(&q->pools[i], q->copy[i], q->bytes);
        mem_pool_free(&q->pools[i]);
        q->copy[i] = NULL;
    }
    q->ncopies = 0;
    free(q->mats);
    q->mats = NULL;
}

// Undo pointer redirection and free the fp32 views this module owns.
static void restore_f32(Model *m) {
    ModelQ8 *q = m->q8;
    if (q->redirected) m->w = q->w_orig;
    q->redirected = 0;
    free(q->f32_owned);
    q->f32_owned = NULL;
    q->f32_owned_n = 0;
}

// Everything of m->q8.
static void q8_free(Model *m) {
    if (!m->q8) return;
    free_copies(m->q8);
    restore_f32(m);
    free(m->q8->file_f32);
    free(m->q8);
    m->q8 = NULL;
}

static void bf16_drop(Model *m, int restore);

void model_q8_free(Model *m) {
    q8_free(m);
    bf16_drop(m, 0);   // the model is going away: nothing to widen back
}

void model_dequantize(Model *m) {
    if (!m->q8) return;
    // A quantized checkpoint loaded without its fp32 matrices keeps running int8 if they
    // cannot be made (out of memory; message set).
    if (model_q8_file_f32(m) != CT_OK) return;
    free_copies(m->q8);
    if (!m->q8->src[0]) q8_free(m);   // nothing left to keep (fp32 checkpoint)
}

int model_is_q8(const Model *m) { return m->q8 && m->q8->ncopies > 0; }

const uint8_t *model_q8_local(const ModelQ8 *q, const uint8_t *p) {
    if (q->ncopies <= 1) return p;
    int n = numa_thread_node();
    if (n <= 0 || n >= q->ncopies || !q->copy[n]) return p;
    return q->copy[n] + (p - q->copy[0]);
}

// fp32 views for q8: the tied embedding (lookup == classifier values), and with dequant_f32
// every matrix.  Only for fp32 checkpoints (a quantized one is dequantized at load).
static int redirect_f32(Model *m, int all) {
    ModelQ8 *q = m->q8;
    const Config *c = &m->c;
    size_t D = (size_t)c->dim, V = (size_t)c->vocab_size, L = (size_t)c->n_layers;
    int tied = c->shared_classifier;
    size_t n = tied ? V * D : 0;
    if (all) {
        for (int k = 0; k < Q8M_PER_LAYER; k++) {
            size_t r, cc;
            mat_shape(c, k, &r, &cc);
            n += L * r * cc;
        }
        if (!tied) n += V * D;
    }
    if (n == 0) return CT_OK;
    q->w_orig = m->w;
    float *f = malloc(n * sizeof(float));
    BlockQ8 *row = malloc(q8_nblocks(c->hidden_dim > c->dim ? (size_t)c->hidden_dim : D) * sizeof *row);
    if (!f || !row) {
        free(f);
        free(row);
        return ct_error("q8: out of memory for %zu dequantized fp32 weights", n);
    }
    q->f32_owned = f;
    q->f32_owned_n = n;
    q->redirected = 1;
    // Quantize-dequantize every row: the exact values the packed int8 weights hold.
#define DEQ(dst, src, R, C) for (size_t r_ = 0; r_ < (R); r_++) { q8_quantize_row(row, (src) + r_ * (C), (C)); q8_dequantize_row((dst) + r_ * (C), row, (C)); }
    float *p = f;
    if (tied) {
        DEQ(p, q->w_orig.token_embedding, V, D);
        m->w.token_embedding = m->w.wcls = p;
        p += V * D;
    }
    if (all) {
        for (int k = 0; k < Q8M_PER_LAYER; k++) {
            size_t r, cc;
            mat_shape(c, k, &r, &cc);
            DEQ(p, w_of(&q->w_orig, k), L * r, cc);
            *w_slot(&m->w, k) = p;
            p += L * r * cc;
        }
        if (!tied) {
            DEQ(p, q->w_orig.wcls, V, D);
            m->w.wcls = p;
        }
    }
#undef DEQ
    free(row);
    return CT_OK;
}

int model_quantize(Model *m, const QuantOpts *opts) {
    QuantOpts o = opts ? *opts : quant_opts_default();
    const Config *c = &m->c;
    int digits;
    if (opts_digits(&o, &digits) != CT_OK) return CT_ERR;
    model_from_bf16(m);   // int8 is packed from the fp32 weights
    if (!m->w.w3 && !(m->q8 && m->q8->src[0]))   // GPT-2's ungated MLP: the packed layout holds w1, w2, w3 per layer
        return ct_error("q8: int8 weights need a gated MLP (gate/up/down); this %s model's MLP is ungated: "
                        "use --dtype f32", model_arch_name(c->arch));
    if (!m->q8) {
        if (!(m->q8 = calloc(1, sizeof *m->q8))) return ct_error("q8: out of memory");
    }
    ModelQ8 *q = m->q8;
    int from_file = q->src[0] != NULL;
    if (from_file && o.dequant_f32 == 1 && model_q8_file_f32(m) != CT_OK) return CT_ERR;
    free_copies(q);
    if (!from_file) restore_f32(m);
    size_t L = (size_t)c->n_layers, D = (size_t)c->dim, V = (size_t)c->vocab_size;
    q->L = c->n_layers;
    q->numa = o.numa;
    q->act_digits = digits;
    // Sizes: every per-layer matrix, then the classifier, each a multiple of 64 bytes.
    size_t bytes = 0;
    for (size_t l = 0; l < L; l++)
        for (int k = 0; k < Q8M_PER_LAYER; k++) {
            size_t r, cc;
            mat_shape(c, k, &r, &cc);
            bytes += q8_panels_bytes(r, cc);
        }
    bytes += q8_panels_bytes(V, D);
    q->bytes = bytes;
    int nodes = o.numa == NUMA_REPLICATE ? numa_node_count() : 1;
    MemPolicy pol = o.numa == NUMA_OFF ? MEM_NUMA_OFF : o.numa == NUMA_INTERLEAVE ? MEM_NUMA_INTERLEAVE : MEM_NUMA_LOCAL;
    for (int n = 0; n < nodes; n++) {
        mem_pool_init(&q->pools[n], "q8 weights", pol, NULL);
        if (o.numa == NUMA_REPLICATE && nodes > 1) q->pools[n].dflt.node = n;   // bound to node n
        // Not zeroed here: packing writes every byte, so the first touch is the packer's.
        q->copy[n] = mem_alloc(&q->pools[n], bytes);
        q->ncopies = n + 1;
        if (!q->copy[n]) {
            ct_error_ctx("q8: packed weights (%zu bytes, copy %d)", bytes, n);
            free_copies(q);
            return CT_ERR;
        }
    }
    q->mats = calloc(L * Q8M_PER_LAYER, sizeof *q->mats);
    if (!q->mats) {
        free_copies(q);
        return ct_error("q8: out of memory");
    }
    uint8_t *dst = q->copy[0];
    for (size_t l = 0; l < L; l++)
        for (int k = 0; k < Q8M_PER_LAYER; k++) {
            size_t r, cc;
            mat_shape(c, k, &r, &cc);
            const BlockQ8 *sq = from_file ? q->src[k] + l * r * q8_nblocks(cc) : NULL;
            const float *sf = from_file ? NULL : w_of(&m->w, k) + l * r * cc;
            if (pack_matrix(o.pool, dst, sf, sq, r, cc) != CT_OK) {
                ct_error_ctx("layer %zu %s", l, k_mat_names[k]);
                free_copies(q);
                return CT_ERR;
            }
            q->mats[l * Q8M_PER_LAYER + (size_t)k] = q8_panels_view(dst, r, cc);
            dst += q8_panels_bytes(r, cc);
        }
    const BlockQ8 *scls = from_file ? (c->shared_classifier ? q->src_emb : q->src_cls) : NULL;
    if (pack_matrix(o.pool, dst, from_file ? NULL : m->w.wcls, scls, V, D) != CT_OK) {
        ct_error_ctx("classifier");
        free_copies(q);
        return CT_ERR;
    }
    q->cls = q8_panels_view(dst, V, D);
    for (int n = 1; n < q->ncopies; n++) memcpy(q->copy[n], q->copy[0], bytes);   // replicas: bound pages
    if (!from_file) {
        int all = o.dequant_f32 == 1;
        if (redirect_f32(m, all) != CT_OK) {
            free_copies(q);
            return CT_ERR;
        }
    }
    return CT_OK;
}

int model_set_dtype(Model *m, CtDtype d, const QuantOpts *o) {
    if (d == CT_DTYPE_BF16 || d == CT_DTYPE_BF16DOT) return model_to_bf16(m, d == CT_DTYPE_BF16DOT, o);
    if (ct_dtype_is_q8(d)) {
        QuantOpts q = opts_for_dtype(o, d);
        return model_quantize(m, &q);
    }
    if (d != CT_DTYPE_F32) return ct_error("dtype: unknown value %d", (int)d);
    if (model_q8_file_f32(m) != CT_OK) return CT_ERR;
    model_from_bf16(m);
    model_dequantize(m);
    return CT_OK;
}

CtDtype model_dtype(const Model *m) {
    if (model_is_bf16(m)) return m->bf16->dot ? CT_DTYPE_BF16DOT : CT_DTYPE_BF16;
    if (!model_is_q8(m)) return CT_DTYPE_F32;
    return m->q8->act_digits == 1 ? CT_DTYPE_Q8A8 : CT_DTYPE_Q8;
}

// ---- quantized checkpoint ------------------------------------------------------------------
int model_file_is_q8(const uint8_t *data, size_t size) {
    return size >= 8 && memcmp(data, Q8_MAGIC, 8) == 0;
}

// Bytes of the file body for config c (after the 64-byte header).
static size_t q8_body_bytes(const Config *c) {
    size_t D = (size_t)c->dim, L = (size_t)c->n_layers, V = (size_t)c->vocab_size;
    size_t n = (2 * L * D + D) * sizeof(float);
    n += c->shared_classifier ? V * q8_nblocks(D) * sizeof(BlockQ8) : V * D * sizeof(float);
    for (int k = 0; k < Q8M_PER_LAYER; k++) {
        size_t r, cc;
        mat_shape(c, k, &r, &cc);
        n += L * r * q8_nblocks(cc) * sizeof(BlockQ8);
    }
    if (!c->shared_classifier) n += V * q8_nblocks(D) * sizeof(BlockQ8);
    return n;
}

int model_q8_file_f32(Model *m) {
    ModelQ8 *q = m->q8;
    if (!q || !q->src[0] || q->file_f32 || m->w.wq) return CT_OK;
    const Config *c = &m->c;
    size_t L = (size_t)c->n_layers, V = (size_t)c->vocab_size, D = (size_t)c->dim;
    int emb = c->shared_classifier && !m->w.token_embedding;   // an int8-only open left the tied table int8
    size_t nf = c->shared_classifier ? 0 : V * D;
    if (emb) nf += V * D;
    for (int k = 0; k < Q8M_PER_LAYER; k++) {
        size_t r, cc;
        mat_shape(c, k, &r, &cc);
        nf += L * r * cc;
    }
    float *o = malloc(nf * sizeof(float));
    if (!o) return ct_error("q8: out of memory for %zu dequantized fp32 weights (%.1f GB)", nf, nf * 4e-9);
    q->file_f32 = o;
    if (emb) {
        q8_dequantize_matrix(o, q->src_emb, V, D);
        m->w.token_embedding = m->w.wcls = o;
        o += V * D;
    }
    for (int k = 0; k < Q8M_PER_LAYER; k++) {
        size_t r, cc;
        mat_shape(c, k, &r, &cc);
        q8_dequantize_matrix(o, q->src[k], L * r, cc);
        *w_slot(&m->w, k) = o;
        o += L * r * cc;
    }
    if (!c->shared_classifier) {
        q8_dequantize_matrix(o, q->src_cls, V, D);
        m->w.wcls = o;
    }
    return CT_OK;
}

// Index of the first block whose scale could make a dequantized weight non-finite (|q| <= 128),
// or n.
static size_t bad_scale(const BlockQ8 *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(b[i].d * 128.0f)) return i;
    return n;
}

int model_load_q8_mapped(Model *m, const char *name, int f32) {
    const uint8_t *d = m->file.data;
    size_t size = m->file.size;
    if (size < Q8_HEADER)
        return ct_error("%s: %zu bytes, shorter than the %u-byte quantized checkpoint header", name, size, Q8_HEADER);
    uint32_t version, hb, block;
    int32_t h[7];
    memcpy(&version, d + 8, 4);
    memcpy(&hb, d + 12, 4);
    memcpy(h, d + 16, sizeof h);
    memcpy(&block, d + 44, 4);
    if (version != Q8_VERSION)
        return ct_error("%s: quantized checkpoint version %u, expected %u; re-run `ctrace quantize` with this build",
                        name, version, Q8_VERSION);
    if (hb != Q8_HEADER) return ct_error("%s: header bytes %u, expected %u", name, hb, Q8_HEADER);
    if (block != QK8) return ct_error("%s: block size %u, expected %d", name, block, QK8);
    Config *c = &m->c;
    memset(c, 0, sizeof *c);
    c->dim = h[0], c->hidden_dim = h[1], c->n_layers = h[2], c->n_heads = h[3], c->n_kv_heads = h[4];
    c->shared_classifier = h[5] > 0;
    c->vocab_size = h[5] == INT32_MIN ? 0 : abs(h[5]);
    c->seq_len = h[6];
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    if (config_validate(c, name) != CT_OK) return CT_ERR;
    c->head_dim = c->dim / c->n_heads;
    size_t want = Q8_HEADER + q8_body_bytes(c);
    if (size != want)
        return ct_error("%s: quantized checkpoint is %zu bytes, its header (dim=%d hidden_dim=%d n_layers=%d "
                        "n_heads=%d n_kv_heads=%d vocab_size=%d%s seq_len=%d) promises %zu; truncated?",
                        name, size, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
                        c->shared_classifier ? "" : " untied", c->seq_len, want);
    ModelQ8 *q = calloc(1, sizeof *q);
    if (!q) return ct_error("q8: out of memory");
    memcpy(&q->src_fingerprint, d + 48, 8);
    size_t D = (size_t)c->dim, L = (size_t)c->n_layers, V = (size_t)c->vocab_size, nbD = q8_nblocks(D);
    // fp32 (owned): the norms, and a tied embedding table (from its int8 blocks); the matrices
    // below (now, or on first need).  An untied table is fp32 in the file: it is read where it
    // lies in the mapping, never copied.  Int8-only (f32 == 0) with a tied classifier: the table
    // stays int8 too (model_embed dequantizes the rows it looks up; model_q8_file_f32 makes the
    // fp32 table on demand).
    int lazy_emb = !f32 && c->shared_classifier;
    size_t nf = 2 * L * D + D + (c->shared_classifier && !lazy_emb ? V * D : 0);
    float *f = malloc(nf * sizeof(float));
    if (!f) {
        free(q);
        return ct_error("%s: out of memory for %zu dequantized weights", name, nf);
    }
    const uint8_t *p = d + Q8_HEADER;
    float *o = f;
    Weights *w = &m->w;
    memset(w, 0, sizeof *w);
#define TAKE_F32(field, n) do { memcpy(o, p, (n) * sizeof(float)); w->field = o; o += (n); p += (n) * sizeof(float); } while (0)
    TAKE_F32(rms_att, L * D);
    TAKE_F32(rms_ffn, L * D);
    TAKE_F32(rms_final, D);
    const float *emb_mapped = NULL;
    if (!c->shared_classifier) {
        emb_mapped = w->token_embedding = (const float *)p;   // 4-byte aligned: header 64, fp32 sections
        p += V * D * sizeof(float);
    } else {
        q->src_emb = (const BlockQ8 *)p;   // 4-byte aligned: header 64, fp32 sections
        if (!lazy_emb) {
            q8_dequantize_matrix(o, q->src_emb, V, D);
            w->token_embedding = w->wcls = o;
            o += V * D;
        }
        p += V * nbD * sizeof(BlockQ8);
    }
#undef TAKE_F32
    // A scale that is NaN/Inf (or so large that 128 x it is) would poison every product.
    const char *bad_what = NULL;
    size_t bad_at = 0;
#define CHECK_SCALES(what, blocks, n) \
    if (!bad_what && (bad_at = bad_scale((blocks), (n))) < (n)) bad_what = (what)
    if (q->src_emb) CHECK_SCALES("token embedding", q->src_emb, V * nbD);
    for (int k = 0; k < Q8M_PER_LAYER; k++) {
        size_t r, cc;
        mat_shape(c, k, &r, &cc);
        q->src[k] = (const BlockQ8 *)p;
        CHECK_SCALES(k_mat_names[k], q->src[k], L * r * q8_nblocks(cc));
        p += L * r * q8_nblocks(cc) * sizeof(BlockQ8);
    }
    if (!c->shared_classifier) {
        q->src_cls = (const BlockQ8 *)p;
        CHECK_SCALES("classifier", q->src_cls, V * nbD);
    }
#undef CHECK_SCALES
    m->owned = f;
    m->q8 = q;
    size_t bad_f32 = 0, nemb = emb_mapped ? V * D : 0;
    while (bad_f32 < nf && isfinite(f[bad_f32])) bad_f32++;
    if (bad_f32 == nf)
        while (bad_f32 < nf + nemb && isfinite(emb_mapped[bad_f32 - nf])) bad_f32++;
    if (bad_what || bad_f32 < nf + nemb) {
        q8_free(m);
        free(f);
        m->owned = NULL;
        if (bad_what)
            return ct_error("%s: %s: the scale of block %zu is not finite, or so large that its weights are not "
                            "(corrupt file?)", name, bad_what, bad_at);
        return ct_error("%s: non-finite fp32 weight at index %zu of the norms and embedding (corrupt file?)", name,
                        bad_f32);
    }
    if (f32 && model_q8_file_f32(m) != CT_OK) {
        q8_free(m);
        free(f);
        m->owned = NULL;
        return CT_ERR;
    }
    m->fingerprint = ct_hash64(d, size);
    if (model_quantize(m, NULL) != CT_OK) {
        q8_free(m);
        free(f);
        m->owned = NULL;
        return CT_ERR;
    }
    return CT_OK;
}

// Write a matrix as BlockQ8 rows: copy stored blocks (Wq), else quantize fp32 rows one at a
// time.  (Packed models write through write_panels: exactly the blocks the int8 forward
// uses, no second quantization.)
static int write_q8_rows(FILE *f, const float *Wf, const BlockQ8 *Wq, size_t rows, size_t cols, BlockQ8 *row) {
    size_t nb = q8_nblocks(cols);
    if (Wq) return fwrite(Wq, sizeof(BlockQ8), rows * nb, f) == rows * nb ? CT_OK : CT_ERR;
    for (size_t r = 0; r < rows; r++) {
        q8_quantize_row(row, Wf + r * cols, cols);
        if (fwrite(row, sizeof(BlockQ8), nb, f) != nb) return CT_ERR;
    }
    return CT_OK;
}

// Unpack one packed matrix into BlockQ8 rows and write them.
static int write_panels(FILE *f, const Q8Panels *P) {
    size_t n = P->rows * P->nb;
    BlockQ8 *b = malloc((n ? n : 1) * sizeof *b);
    if (!b) return ct_error("q8: out of memory unpacking a %zu x %zu matrix", P->rows, P->cols);
    q8_unpack_panels(b, P->data, P->rows, P->cols);
    int ok = fwrite(b, sizeof *b, n, f) == n;
    free(b);
    return ok ? CT_OK : CT_ERR;
}

int model_save_q8(const Model *m, const char *path) {
    const Config *c = &m->c;
    if (model_is_bf16(m))   // the fp32 matrices may be released: the int8 blocks come from fp32
        return ct_error("%s: the model runs bf16; set it back to f32 (or q8) before writing a quantized checkpoint",
                        path);
    if (c->arch != ARCH_LLAMA2C)   // the CTRACEQ8 header describes llama2.c models only
        return ct_error("%s: a %s model cannot be written as a quantized llama2.c checkpoint (CTRACEQ8 "
                        "holds llama2.c models); run it with --dtype q8 instead", path, model_arch_name(c->arch));
    const ModelQ8 *q = m->q8 && m->q8->src[0] ? m->q8 : NULL;   // stored blocks to copy
    // fp32 sources: the original weights (never the redirected dequantized views).
    const Weights *w = m->q8 && m->q8->redirected ? &m->q8->w_orig : &m->w;
    size_t D = (size_t)c->dim, L = (size_t)c->n_layers, V = (size_t)c->vocab_size;
    uint8_t hdr[Q8_HEADER];
    memset(hdr, 0, sizeof hdr);
    memcpy(hdr, Q8_MAGIC, 8);
    uint32_t version = Q8_VERSION, hb = Q8_HEADER, block = QK8;
    int32_t h[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                    c->shared_classifier ? c->vocab_size : -c->vocab_size, c->seq_len};
    uint64_t fp = q ? q->src_fingerprint : m->fingerprint;
    memcpy(hdr + 8, &version, 4);
    memcpy(hdr + 12, &hb, 4);
    memcpy(hdr + 16, h, sizeof h);
    memcpy(hdr + 44, &block, 4);
    memcpy(hdr + 48, &fp, 8);
    size_t maxc = (size_t)(c->hidden_dim > c->dim ? c->hidden_dim : c->dim);
    BlockQ8 *row = malloc(q8_nblocks(maxc) * sizeof *row);
    if (!row) return ct_error("%s: out of memory", path);
    AtomicFile af;
    if (ct_atomic_open(&af, path) != CT_OK) {
        free(row);
        return CT_ERR;
    }
    int ok = fwrite(hdr, 1, sizeof hdr, af.f) == sizeof hdr;
    ok = ok && fwrite(w->rms_att, sizeof(float), L * D, af.f) == L * D;
    ok = ok && fwrite(w->rms_ffn, sizeof(float), L * D, af.f) == L * D;
    ok = ok && fwrite(w->rms_final, sizeof(float), D, af.f) == D;
    int packed = model_is_q8(m);
    if (!c->shared_classifier) ok = ok && fwrite(w->token_embedding, sizeof(float), V * D, af.f) == V * D;
    else if (!q && packed) ok = ok && write_panels(af.f, &m->q8->cls) == CT_OK;
    else ok = ok && write_q8_rows(af.f, w->token_embedding, q ? q->src_emb : NULL, V, D, row) == CT_OK;
    for (int k = 0; k < Q8M_PER_LAYER && ok; k++) {
        size_t r, cc;
        mat_shape(c, k, &r, &cc);
        if (!q && packed)
            for (size_t l = 0; l < L && ok; l++) ok = write_panels(af.f, &m->q8->mats[l * Q8M_PER_LAYER + (size_t)k]) == CT_OK;
        else ok = write_q8_rows(af.f, w_of(w, k), q ? q->src[k] : NULL, L * r, cc, row) == CT_OK;
    }
    if (!c->shared_classifier && ok)
        ok = (!q && packed ? write_panels(af.f, &m->q8->cls)
                           : write_q8_rows(af.f, w->wcls, q ? q->src_cls : NULL, V, D, row)) == CT_OK;
    free(row);
    if (!ok) {
        ct_atomic_abort(&af);
        return ct_error("%s: write failed (disk full?)", path);
    }
    return ct_atomic_commit(&af);
}

// ---- bf16 weights (see quantize.h) -----------------------------------------------------------
int model_is_bf16(const Model *m) { return m->bf16 != NULL; }

static int in_mapping(const Model *m, const void *p) {
    const uint8_t *b = m->file.data, *q = p;
    return b && q >= b && q < b + m->file.size;
}

// Give the whole pages inside [p, p + n) back to the OS (the partial pages at both ends may
// hold other tensors and stay).  Anonymous memory then reads as zeros until written again; a
// file mapping reads the file again.  The allocation itself stays valid.
static void release_pages(const float *p, size_t n) {
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), b = (uintptr_t)(p + n) & ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

// fp32 -> bf16, round to nearest even, NaN kept quiet: st_f32_to_bf16's rule, inlined here
// because a 100M-parameter conversion calls it 1e8 times (test_bf16 checks the f32 views
// against its own rounding).
static inline uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// The bf16 value of x widened back to fp32 (round to nearest even).
static inline float bf16_value(float x) { return from_bf16(to_bf16(x)); }

// Free what m->bf16 holds; restore: put the fp32 weights back first (widen the bf16 copies
// into released pages) and the original pointers.  restore = 0 only when the model is freed.
static void bf16_drop(Model *m, int restore) {
    ModelBf16 *b = m->bf16;
    if (!b) return;
    if (restore) {
        const Config *c = &m->c;
        size_t L = (size_t)c->n_layers, V = (size_t)c->vocab_size, D = (size_t)c->dim;
        if (b->released) {
            for (int k = 0; k < Q8M_PER_LAYER; k++) {
                float *dst = (float *)w_of(&b->w_orig, k);
                for (size_t i = 0; b->mats[k] && i < L * b->per_layer[k]; i++) dst[i] = from_bf16(b->mats[k][i]);
            }
            if (!c->shared_classifier) {
                float *dst = (float *)b->w_orig.wcls;
                for (size_t i = 0; i < V * D; i++) dst[i] = from_bf16(b->cls[i]);
            }
        }
        m->w = b->w_orig;
    }
    mem_free(&b->pool, b->mem, b->mem_bytes);
    mem_pool_free(&b->pool);
    free(b->f32_owned);
    free(b);
    m->bf16 = NULL;
}

void model_from_bf16(Model *m) { bf16_drop(m, 1); }

// Round n fp32 weights at src into dst (bf16); write the rounded values back when wb is set.
static void round_matrix(uint16_t *dst, const float *src, size_t n, float *wb) {
    if (wb) {
        for (size_t i = 0; i < n; i++) wb[i] = from_bf16(dst[i] = to_bf16(src[i]));
    } else {
        for (size_t i = 0; i < n; i++) dst[i] = to_bf16(src[i]);
    }
}

int model_to_bf16(Model *m, int dot, const QuantOpts *opts) {
    QuantOpts o = opts ? *opts : quant_opts_default();
    int views = o.dequant_f32 == 1;
    if (m->bf16 && m->bf16->views == views) {   // only the kernel choice changes
        m->bf16->dot = dot;
        return CT_OK;
    }
    if (model_q8_file_f32(m) != CT_OK) return CT_ERR;
    model_from_bf16(m);
    model_dequantize(m);   // back to the fp32 weights (a quantized checkpoint keeps its dequantized ones)
    if (m->q8 && m->q8->redirected) q8_free(m);
    const Config *c = &m->c;
    size_t L = (size_t)c->n_layers, V = (size_t)c->vocab_size, D = (size_t)c->dim;
    int tied = c->shared_classifier;
    ModelBf16 *b = calloc(1, sizeof *b);
    if (!b) return ct_error("bf16: out of memory");
    b->dot = dot;
    b->views = views;
    b->w_orig = m->w;
    b->in_place = m->owned != NULL && !in_mapping(m, m->w.wq);
    // one allocation, every matrix starting on a 64-byte boundary
    size_t off[Q8M_PER_LAYER + 1], total = 0;
    for (int k = 0; k < Q8M_PER_LAYER; k++) {
        size_t r, cc;
        mat_shape(c, k, &r, &cc);
        b->per_layer[k] = w_of(&m->w, k) ? r * cc : 0;
        off[k] = total;
        total += (L * b->per_layer[k] + 31) & ~(size_t)31;
    }
    off[Q8M_PER_LAYER] = total;
    total += V * D;
    MemPolicy pol = o.numa == NUMA_OFF ? MEM_NUMA_OFF : o.numa == NUMA_INTERLEAVE ? MEM_NUMA_INTERLEAVE : MEM_NUMA_LOCAL;
    mem_pool_init(&b->pool, "bf16 weights", pol, NULL);
    b->mem_bytes = total * sizeof(uint16_t);
    b->mem = mem_alloc(&b->pool, b->mem_bytes);
    if (!b->mem) {
        mem_pool_free(&b->pool);
        free(b);
        return ct_error_ctx("bf16: %zu weights (%.1f MB)", total, (double)total * 2 / 1e6);
    }
    // Mapped (or foreign) weights are never written: views are widened copies, and a tied
    // embedding whose values are not all bf16 gets a rounded copy for the lookup.
    size_t nown = 0, nmat = 0;
    for (int k = 0; k < Q8M_PER_LAYER; k++) nmat += L * b->per_layer[k];
    if (!tied) nmat += V * D;
    int emb_copy = 0;
    if (!b->in_place && tied)
        for (size_t i = 0; i < V * D && !emb_copy; i++) emb_copy = bf16_value(m->w.token_embedding[i]) != m->w.token_embedding[i];
    if (!b->in_place) nown = (views ? nmat : 0) + (tied && (views || emb_copy) ? V * D : 0);
    if (nown && !(b->f32_owned = malloc(nown * sizeof(float)))) {
        mem_free(&b->pool, b->mem, b->mem_bytes);
        mem_pool_free(&b->pool);
        free(b);
        return ct_error("bf16: out of memory for %zu fp32 views", nown);
    }
    b->f32_owned_n = nown;
    float *own = b->f32_owned;
    // Matrices: bf16 copies; the fp32 side is rounded in place (views, in place), copied
    // (views, mapped) or released.
    for (int k = 0; k <= Q8M_PER_LAYER; k++) {
        int cls = k == Q8M_PER_LAYER;
        const float *src = cls ? m->w.wcls : w_of(&m->w, k);
        size_t n = cls ? V * D : L * b->per_layer[k];
        if (!src) continue;
        uint16_t *dst = b->mem + off[k];
        if (cls) b->cls = dst;
        else b->mats[k] = dst;
        int keep = views || (cls && tied);   // the tied classifier is also the embedding table
        float *wb = NULL;
        if (keep && b->in_place) wb = (float *)src;
        else if (keep && (views || emb_copy)) wb = own, own += n;
        round_matrix(dst, src, n, wb);
        const float *view = wb ? wb : keep ? src : NULL;
        if (cls) {
            m->w.wcls = view;
            if (tied) m->w.token_embedding = view;
        } else {
            *w_slot(&m->w, k) = view;
        }
        if (!keep && (b->in_place || in_mapping(m, src))) {
            release_pages(src, n);
            b->released = b->in_place;   // only owned pages need writing back
        }
    }
    for (int k = 0; k < Q8M_PER_LAYER; k++) b->bytes += L * b->per_layer[k] * sizeof(uint16_t);
    b->bytes += V * D * sizeof(uint16_t);
    m->bf16 = b;
    return CT_OK;
}

// ---- transcoder ----------------------------------------------------------------------------
static void clt_q8_release(CltQ8 *q) {
    if (!q) return;
    if (q->enc_mem) mem_free(&q->pool, q->enc_mem, (size_t)q->L * q8_panels_bytes((size_t)q->F, (size_t)q->D));
    mem_pool_free(&q->pool);
    free(q->enc);
    free(q->dec);
    free(q->dec_mem);
    free(q->neg_inf);
    free(q);
}

void clt_dequantize(Clt *c) {
    clt_q8_release(c->q8);
    c->q8 = NULL;
}

// Is p inside the Clt's owned parameter block (so it may be overwritten)?
static int in_params(const Clt *c, const float *p) {
    return c->params && p >= c->params && p < c->params + c->n_params;
}

int clt_quantize(Clt *c, const QuantOpts *opts) {
    QuantOpts o = opts ? *opts : quant_opts_default();
    int deq = o.dequant_f32 != 0;   // default (-1) and 1: on
    int digits;
    if (opts_digits(&o, &digits) != CT_OK) return CT_ERR;
    clt_dequantize(c);
    CltQ8 *q = calloc(1, sizeof *q);
    if (!q) return ct_error("q8: out of memory");
    q->act_digits = digits;
    size_t L = (size_t)c->L, D = (size_t)c->D, F = (size_t)c->F, nbD = q8_nblocks(D);
    q->L = c->L, q->D = c->D, q->F = c->F, q->dec_nb = nbD;
    MemPolicy pol = o.numa == NUMA_OFF ? MEM_NUMA_OFF : o.numa == NUMA_INTERLEAVE ? MEM_NUMA_INTERLEAVE : MEM_NUMA_LOCAL;
    mem_pool_init(&q->pool, "q8 transcoder", pol, NULL);
    size_t eb = q8_panels_bytes(F, D), ndec = 0;
    for (size_t l = 0; l < L; l++) ndec += F * (size_t)c->layers[l].n_out * nbD;
    q->enc = calloc(L, sizeof *q->enc);
    q->dec = calloc(L, sizeof *q->dec);
    q->enc_mem = mem_alloc(&q->pool, L * eb);
    q->dec_mem = malloc((ndec ? ndec : 1) * sizeof(BlockQ8));
    q->neg_inf = malloc(F * sizeof(float));
    float *row = malloc(D * sizeof(float));
    if (!q->enc || !q->dec || !q->enc_mem || !q->dec_mem || !q->neg_inf || !row) {
        free(row);
        clt_q8_release(q);
        return ct_error("q8: out of memory quantizing the transcoder (%zu layers, F = %zu, D = %zu)", L, F, D);
    }
    for (size_t f = 0; f < F; f++) q->neg_inf[f] = -INFINITY;
    BlockQ8 *dp = q->dec_mem;
    for (size_t l = 0; l < L; l++) {
        CltLayer *ly = &c->layers[l];
        uint8_t *e = q->enc_mem + l * eb;
        if (pack_matrix(o.pool, e, ly->W_enc, NULL, F, D) != CT_OK) {
            free(row);
            clt_q8_release(q);
            return ct_error_ctx("transcoder layer %zu W_enc", l);
        }
        q->enc[l] = q8_panels_view(e, F, D);
        q->dec[l] = dp;
        size_t nout = (size_t)ly->n_out;
        for (size_t f = 0; f < F; f++)
            for (size_t k = 0; k < nout; k++) {
                int lo = c->kind == CLT_PER_LAYER ? (int)l : (int)(l + k);
                if (clt_decoder_row(c, (int)l, (int)f, lo, row) != CT_OK) {
                    free(row);
                    clt_q8_release(q);
                    return ct_error_ctx("transcoder layer %zu decoder row %zu", l, f);
                }
                q8_quantize_row(dp + (f * nout + k) * nbD, row, D);
            }
        dp += F * nout * nbD;
        if (deq) {   // fp32 readers see the int8 values
            BlockQ8 *tmp = malloc(nbD * sizeof *tmp);
            if (tmp) {
                for (size_t f = 0; f < F; f++) {
                    q8_quantize_row(tmp, ly->W_enc + f * D, D);
                    q8_dequantize_row(ly->W_enc + f * D, tmp, D);
                }
                free(tmp);
            }
            if (ly->W_dec && in_params(c, ly->W_dec))
                for (size_t i = 0; i < F * nout; i++) q8_dequantize_row(ly->W_dec + i * D, q->dec[l] + i * nbD, D);
        }
    }
    free(row);
    c->q8 = q;
    return CT_OK;
}

int clt_set_dtype(Clt *c, CtDtype d, const QuantOpts *o) {
    if (d != CT_DTYPE_F32 && !ct_dtype_is_q8(d))
        return ct_error("transcoder dtype %s: transcoders run f32, q8 or q8a8", ct_dtype_name(d));
    if (ct_dtype_is_q8(d)) {
        QuantOpts q = opts_for_dtype(o, d);
        return clt_quantize(c, &q);
    }
    clt_dequantize(c);
    return CT_OK;
}

CtDtype clt_dtype(const Clt *c) {
    if (!c->q8) return CT_DTYPE_F32;
    return c->q8->act_digits == 1 ? CT_DTYPE_Q8A8 : CT_DTYPE_Q8;
}

void clt_q8_encode(const Clt *c, int l, const float *X, int T, float *pre, float *act) {
    const CltQ8 *q = c->q8;
    const CltLayer *ly = &c->layers[l];
    size_t F = (size_t)c->F;
    Q8Act A;
    Q8ActBuf *buf = q8_tls_actbuf();
    if (!buf || q8_act_quantize_digits(&A, buf, X, (size_t)T, (size_t)c->D, q->act_digits) != CT_OK) {
        // Out of memory for scratch: report through NaN outputs, never silently.
        for (size_t i = 0; i < (size_t)T * F; i++) {
            if (pre) pre[i] = NAN;
            act[i] = NAN;
        }
        return;
    }
    const float *theta = c->act.kind == CLT_ACT_JUMPRELU ? ly->threshold
                       : c->act.kind == CLT_ACT_TOPK ? q->neg_inf : NULL;
    const SimdKernels *K = simd_kernels();
    if (q->act_digits == 1) {
        K->encode_q8(pre, act, F, &q->enc[l], &A, (size_t)T, 0, q->enc[l].np, ly->b_enc, theta);
    } else {   // both digit rows summed by the GEMM (matmul_q8x2), then encode_q8's epilogue (simd.h)
        float *h = pre ? pre : act;
        K->matmul_q8x2(h, F, &q->enc[l], &A, (size_t)T, 0, q->enc[l].np);
        for (size_t t = 0; t < (size_t)T; t++)
            for (size_t f = 0; f < F; f++) {
                float v = h[t * F + f] + ly->b_enc[f], th = theta ? theta[f] : 0.0f;
                if (pre) pre[t * F + f] = v;
                act[t * F + f] = simd_jump_act(v, th);
            }
    }
    if (c->act.kind == CLT_ACT_TOPK)   // act holds h (ReLU happens after the selection)
        for (int t = 0; t < T; t++) {
            float *h = (pre ? pre : act) + (size_t)t * F;
            clt_activate(c, l, h, act + (size_t)t * F);
        }
}

void clt_q8_decode_layer_add(const Clt *c, int l, const CltSparse *a, int lo, float *y) {
    if ((c->kind == CLT_PER_LAYER && lo != l) || lo < l) return;
    const CltQ8 *q = c->q8;
    size_t nout = (size_t)c->layers[l].n_out, nb = q->dec_nb;
    simd_kernels()->decode_rows_q8(y, q->dec[l] + (size_t)(lo - l) * nb, nout * nb, a->idx, a->val, (size_t)a->n,
                                   (size_t)c->D);
}

float clt_q8_feature_pre(const Clt *c, int l, int f, const float *x) {
    Q8Act A;
    Q8ActBuf *buf = q8_tls_actbuf();
    if (!buf || q8_act_quantize_digits(&A, buf, x, 1, (size_t)c->D, c->q8->act_digits) != CT_OK) return NAN;
    return q8_panels_row_dot(&c->q8->enc[l], (size_t)f, &A, 0) + c->layers[l].b_enc[f];   // encode_q8's order
}
