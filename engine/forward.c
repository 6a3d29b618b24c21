// forward.c — the Llama-family forward pass (llama2.c semantics) with a KV cache, batched
// over a chunk of positions, and an optional capture of every intermediate.
//
// One story, top to bottom, for a chunk of n positions pos0..pos0+n-1 (n = 1 when decoding):
//
//   x = token_embedding[tok]                                  (n, D)
//   for each layer l:
//     xb   = rmsnorm(x) * rms_att[l]                          (n, D)    [inv_rms_att captured]
//     q    = wq xb;  k, v = wk xb, wv xb -> KV cache rows     (n, H*Dh), (n, Hkv*Dh)
//     rope(q), rope(k) on adjacent pairs (2i, 2i+1)
//     att  = softmax(q k^T / sqrt(Dh)) over keys 0..p         (H, n, p+1) [patterns captured]
//     xb   = att v  (query head h reads kv head h / (H/Hkv))  (n, H*Dh)
//     x   += wo xb                                            [attn_out, resid_mid captured]
//     xb   = rmsnorm(x) * rms_ffn[l]                          [mlp_in, inv_rms_ffn captured]
//     x   += w2 (silu(w1 xb) * (w3 xb))                       [mlp_out captured]
//   x = rmsnorm(x) * rms_final;  logits = wcls x              (n, V)
//
// Every matrix product goes through the kernel table; matmul rows are bit-identical to
// matvec rows (simd.h contract), so chunked prefill and one-token decode give the same bits,
// and work is split over threads by rows or heads, never by reduction, so any thread count
// gives the same bits.  With int8 weights (m->q8, engine/quantize.h) the products run the
// int8 kernels on activations quantized per row; everything else stays fp32.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/quantize.h"
#include "simd/simd.h"

#define CHUNK 64  // positions processed together in a prefill

// ---- run state ------------------------------------------------------------------------------
// Long-lived buffers: one allocation carved by a sizes table (llm.c habit).
int runstate_init(RunState *s, const Config *c, int T) {
    memset(s, 0, sizeof *s);
    if (T <= 0 || T > c->seq_len)
        return ct_error("run state: %d positions requested, the model's context (seq_len) is %d",
                        T, c->seq_len);
    size_t D = (size_t)c->dim, Hd = (size_t)c->hidden_dim, Dh = (size_t)c->head_dim;
    size_t H = (size_t)c->n_heads, Dkv = (size_t)c->n_kv_heads * Dh, L = (size_t)c->n_layers;
    size_t V = (size_t)c->vocab_size, B = CHUNK, t = (size_t)T, F4 = sizeof(float);
    MemCarveEntry tab[] = {
        {"x", B * D * F4, (void **)&s->x},           {"xb", B * D * F4, (void **)&s->xb},
        {"xb2", B * D * F4, (void **)&s->xb2},       {"hb", B * Hd * F4, (void **)&s->hb},
        {"hb2", B * Hd * F4, (void **)&s->hb2},      {"q", B * H * Dh * F4, (void **)&s->q},
        {"att", B * H * t * F4, (void **)&s->att},   {"logits", B * V * F4, (void **)&s->logits},
        {"key_cache", L * t * Dkv * F4, (void **)&s->key_cache},
        {"value_cache", L * t * Dkv * F4, (void **)&s->value_cache},
        {"rope_cos", t * Dh / 2 * F4, (void **)&s->rope_cos},
        {"rope_sin", t * Dh / 2 * F4, (void **)&s->rope_sin},
    };
    mem_pool_init(&s->pool, "run state", MEM_NUMA_LOCAL, NULL);
    if (mem_carve(&s->carve, &s->pool, tab, sizeof tab / sizeof tab[0]) != CT_OK) {
        ct_error_ctx("run state for T = %d", T);
        mem_pool_free(&s->pool);
        return CT_ERR;
    }
    s->T = T;
// RoPE angles exactly as llama2.c computes them, so the bits match the reference:
    // freq = 1 / powf(theta, head_dim_index / Dh), angle = pos * freq.
    for (int pos = 0; pos < T; pos++)
        for (size_t i = 0; i < Dh / 2; i++) {
            float freq = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)Dh);
            float val = (float)pos * freq;
            s->rope_cos[(size_t)pos * (Dh / 2) + i] = cosf(val);
            s->rope_sin[(size_t)pos * (Dh / 2) + i] = sinf(val);
        }
    return CT_OK;
}

void runstate_free(RunState *s) {
    if (s->carve.base) mem_carve_free(&s->carve);
    mem_pool_free(&s->pool);
    memset(s, 0, sizeof *s);
}

// ---- capture --------------------------------------------------------------------------------
// The capture's sizes table: only the groups named in flags get storage.
static size_t capture_table(Capture *cap, const Config *c, int T, int flags, MemCarveEntry *tab) {
    memset(cap, 0, sizeof *cap);
    size_t D = (size_t)c->dim, L = (size_t)c->n_layers, H = (size_t)c->n_heads, t = (size_t)T;
    size_t F4 = sizeof(float);
    cap->flags = flags;
    cap->T = T;
    cap->L = c->n_layers;
    cap->D = c->dim;
    cap->H = c->n_heads;
    struct { const char *name; float **p; size_t n; int flag; } g[] = {
        {"resid_pre", &cap->resid_pre, t * (L + 1) * D, CAP_RESID},
        {"resid_mid", &cap->resid_mid, t * L * D, CAP_RESID},
        {"attn_out", &cap->attn_out, t * L * D, CAP_ATTN_OUT},
        {"mlp_in", &cap->mlp_in, t * L * D, CAP_MLP},
        {"mlp_out", &cap->mlp_out, t * L * D, CAP_MLP},
        {"att", &cap->att, L * H * t * t, CAP_PATTERNS},
        {"inv_rms_att", &cap->inv_rms_att, t * L, CAP_NORMS},
        {"inv_rms_ffn", &cap->inv_rms_ffn, t * L, CAP_NORMS},
        {"inv_rms_final", &cap->inv_rms_final, t, CAP_NORMS},
        {"final_normed", &cap->final_normed, t * D, CAP_NORMS},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if (flags & g[i].flag) tab[n++] = (MemCarveEntry){g[i].name, g[i].n * F4, (void **)g[i].p};
    return n;
}

int capture_init(Capture *cap, const Config *c, int T, int flags) {
    MemCarveEntry tab[16];
    size_t n = capture_table(cap, c, T, flags, tab);
    mem_pool_init(&cap->pool, "capture", MEM_NUMA_LOCAL, NULL);
    if (mem_carve(&cap->carve, &cap->pool, tab, n) != CT_OK) {
        ct_error_ctx("capture for T = %d", T);
        mem_pool_free(&cap->pool);
        return CT_ERR;
    }
    return CT_OK;
}

int capture_init_arena(Capture *cap, const Config *c, int T, int flags, Arena *arena) {
    MemCarveEntry tab[16];
    size_t n = capture_table(cap, c, T, flags, tab), off[16], total;
    if (mem_carve_layout(tab, n, off, &total) != CT_OK) return CT_ERR;
    uint8_t *base = arena_alloc(arena, total);
    if (!base) return ct_error_ctx("capture for T = %d", T);
    memset(base, 0, total);
    for (size_t i = 0; i < n; i++) *tab[i].out = base + off[i];
    return CT_OK;
}

void capture_free(Capture *cap) {
    if (cap->carve.base) {
        mem_carve_free(&cap->carve);
        mem_pool_free(&cap->pool);
    }
    memset(cap, 0, sizeof *cap);
}

// ---- threaded products ----------------------------------------------------------------------
// Y (n, rows) = X (n, cols) W^T.  fp32: decode (n == 1) splits rows over tasks with matvec;
// prefill splits positions over tasks with matmul.  Either way each element is the same dot
// product.  int8 (Q != NULL, engine/quantize.h): X is quantized per row once, on the caller,
// and tasks split the 16-row panels of W for decode and prefill alike, so each thread reads
// only its own slice of the weights (the slice --numa local placed on its node); each element
// is the kernel table's canonical int8 value, so thread count and chunking never change bits.
typedef struct {
    float *Y;
    const float *W, *X;
    size_t n, rows, cols;
    int ntasks;
    const Q8Panels *Q;     // int8 weights, or NULL
    const Q8Act *A;        // X quantized
    const ModelQ8 *q8;     // for the NUMA replica lookup
} MatJob;

static void matjob_task(void *ctx, int t, int nt) {
    MatJob *j = ctx;
    const SimdKernels *K = simd_kernels();
    if (j->Q) {
        size_t p0 = pool_split(j->Q->np, t, nt), p1 = pool_split(j->Q->np, t + 1, nt);
        Q8Panels W = *j->Q;
        W.data = model_q8_local(j->q8, W.data);   // this node's copy under --numa replicate
        if (j->n == 1) K->matvec_q8(j->Y, &W, j->A, p0, p1);
        else if (p1 > p0) K->matmul_q8(j->Y, j->rows, &W, j->A, j->n, p0, p1);
        return;
    }
    if (j->n == 1) {
        size_t r0 = pool_split(j->rows, t, nt), r1 = pool_split(j->rows, t + 1, nt);
        K->matvec_f32(j->Y + r0, j->W + r0 * j->cols, j->X, r1 - r0, j->cols);
    } else {
        size_t p0 = pool_split(j->n, t, nt), p1 = pool_split(j->n, t + 1, nt);
        if (p1 > p0)
            K->matmul_f32(j->Y + p0 * j->rows, j->W, j->X + p0 * j->cols, p1 - p0, j->rows, j->cols);
    }
}

static void matmul(ThreadPool *pool, const Model *m, float *Y, const float *W, const Q8Panels *Q,
                   const float *X, size_t n, size_t rows, size_t cols) {
    MatJob j = {Y, W, X, n, rows, cols, 1, NULL, NULL, NULL};
    // Below ~64K multiply-adds a thread hand-off costs more than it saves.
    int nt = (rows * cols * n < (1u << 16)) ? 1 : pool_size(pool);
    Q8Act A;
    if (Q) {
        // Scratch is grow-only per thread; if even that fails, the fp32 weights (always
        // present) give a correct, slower answer.
        Q8ActBuf *buf = q8_tls_actbuf();
        if (buf && q8_act_quantize(&A, buf, X, n, cols) == CT_OK) {
            j.Q = Q, j.A = &A, j.q8 = m->q8;
            if ((size_t)nt > Q->np) nt = (int)Q->np;
        }
    }
    if (!j.Q && n > 1 && (size_t)nt > n) nt = (int)n;
    if (nt <= 1) matjob_task(&j, 0, 1);
    else pool_run(pool, matjob_task, &j, nt);
}

// ---- attention ------------------------------------------------------------------------------
typedef struct {
    const Config *c;
    RunState *s;
    Capture *cap;
    const float *frozen_att;  // (H, Tf, Tf) of this layer when attention is frozen, else NULL
    int frozen_T;
    int layer, pos0, n;
} AttnJob;

// Task = one (position, head) pair: scores against keys 0..p, softmax, weighted sum of values.
static void attn_task(void *ctx, int task, int ntasks) {
    AttnJob *j = ctx;
    const Config *c = j->c;
    const SimdKernels *K = simd_kernels();
    int H = c->n_heads, Dh = c->head_dim, T = j->s->T;
    int i = task / H, h = task % H, p = j->pos0 + i;
    size_t Dkv = (size_t)c->n_kv_heads * Dh, kvh = (size_t)(h / (H / c->n_kv_heads));
    const float *q = j->s->q + (size_t)i * H * Dh + (size_t)h * Dh;
    float *att = j->s->att + ((size_t)i * H + h) * T;
    const float *kc = j->s->key_cache + (size_t)j->layer * T * Dkv + kvh * Dh;
    const float *vc = j->s->value_cache + (size_t)j->layer * T * Dkv + kvh * Dh;
    if (j->frozen_att) {
        // Frozen pattern: the clean run's post-softmax weights; only the values move.
        const float *fa = j->frozen_att + ((size_t)h * j->frozen_T + p) * j->frozen_T;
        memcpy(att, fa, (size_t)(p + 1) * sizeof(float));
    } else {
        float scale = sqrtf((float)Dh);
        for (int t = 0; t <= p; t++) att[t] = K->dot_f32(q, kc + (size_t)t * Dkv, Dh) / scale;
        K->softmax_f32(att, (size_t)p + 1);
    }
    float *out = j->s->xb + (size_t)i * c->dim + (size_t)h * Dh;
    memset(out, 0, (size_t)Dh * sizeof(float));
    for (int t = 0; t <= p; t++) K->axpy_f32(out, att[t], vc + (size_t)t * Dkv, Dh);
    if (j->cap && (j->cap->flags & CAP_PATTERNS)) {
        size_t Tc = (size_t)j->cap->T;
        float *dst = j->cap->att + (((size_t)j->layer * H + h) * Tc + p) * Tc;
        memcpy(dst, att, (size_t)(p + 1) * sizeof(float));
    }
}

// ---- the chunk forward ----------------------------------------------------------------------
// Copy row i of a chunk buffer into the capture at (pos, layer).
static void cap_put(float *dst, int L1, int D, int pos, int l, const float *src) {
    memcpy(dst + ((size_t)pos * L1 + l) * D, src, (size_t)D * sizeof(float));
}

// Process positions pos0..pos0+n-1 (n <= CHUNK).  Logits for the chunk rows selected by
// want_all (all rows) or only the last row are left in s->logits (n or 1 rows).
// RMSNorm with a frozen 1/rms factor: linear in x (llama2.c order: w * (x * inv)).
static float norm_frozen(float *out, const float *x, const float *w, size_t n, float inv) {
    for (size_t i = 0; i < n; i++) out[i] = w[i] * (x[i] * inv);
    return inv;
}

static int in_range(const ForwardHooks *hk, int l) {
    return !hk->use_range || (l >= hk->layer_lo && l <= hk->layer_hi);
}

static void forward_chunk(const Model *m, RunState *s, const int *tok, int pos0, int n,
                          int want_all, Capture *cap, ThreadPool *pool, const ForwardHooks *hk) {
    const Config *c = &m->c;
    const Weights *w = &m->w;
    const SimdKernels *K = simd_kernels();
    size_t D = (size_t)c->dim, Hd = (size_t)c->hidden_dim, Dh = (size_t)c->head_dim;
    size_t H = (size_t)c->n_heads, Dkv = (size_t)c->n_kv_heads * Dh, T = (size_t)s->T;
    int L = c->n_layers;
    float *x = s->x, *xb = s->xb, *xb2 = s->xb2, *hb = s->hb, *hb2 = s->hb2;
    int capt = cap != NULL;
    const Capture *fz = hk ? hk->frozen : NULL;
    size_t FT = fz ? (size_t)fz->T : 0;
#define HOOK(site, l, i, v) do { if (hk && hk->hook) hk->hook(hk->ctx, site, l, pos0 + (i), v); } while (0)
    // int8 weights of layer l's matrix k (NULL: fp32), see engine/quantize.h.
    const int q8on = model_is_q8(m);
#define QW(k) (q8on ? &m->q8->mats[(size_t)l * Q8M_PER_LAYER + (k)] : NULL)
    const Q8Panels *qcls = q8on ? &m->q8->cls : NULL;

    for (int i = 0; i < n; i++) {
        memcpy(x + i * D, w->token_embedding + (size_t)tok[i] * D, D * sizeof(float));
        HOOK(HOOK_EMBED, -1, i, x + i * D);
    }

    for (int l = 0; l < L; l++) {
        // attention block
        for (int i = 0; i < n; i++) {
            if (capt && (cap->flags & CAP_RESID)) cap_put(cap->resid_pre, L + 1, (int)D, pos0 + i, l, x + i * D);
            float inv = fz && hk->freeze_norms && in_range(hk, l)
                ? norm_frozen(xb + i * D, x + i * D, w->rms_att + (size_t)l * D, D, fz->inv_rms_att[(size_t)(pos0 + i) * L + l])
                : K->rmsnorm_f32(xb + i * D, x + i * D, w->rms_att + (size_t)l * D, D, c->norm_eps);
            if (capt && (cap->flags & CAP_NORMS)) cap->inv_rms_att[(size_t)(pos0 + i) * L + l] = inv;
        }
        float *kdst = s->key_cache + ((size_t)l * T + (size_t)pos0) * Dkv;
        float *vdst = s->value_cache + ((size_t)l * T + (size_t)pos0) * Dkv;
        matmul(pool, m, s->q, w->wq + (size_t)l * D * D, QW(Q8M_WQ), xb, (size_t)n, H * Dh, D);
        matmul(pool, m, kdst, w->wk + (size_t)l * Dkv * D, QW(Q8M_WK), xb, (size_t)n, Dkv, D);
        matmul(pool, m, vdst, w->wv + (size_t)l * Dkv * D, QW(Q8M_WV), xb, (size_t)n, Dkv, D);
        for (int i = 0; i < n; i++) {
            const float *cs = s->rope_cos + (size_t)(pos0 + i) * (Dh / 2);
            const float *sn = s->rope_sin + (size_t)(pos0 + i) * (Dh / 2);
            for (size_t h = 0; h < H; h++) K->rope_pairs_f32(s->q + i * H * Dh + h * Dh, cs, sn, Dh / 2);
            for (size_t h = 0; h < (size_t)c->n_kv_heads; h++) K->rope_pairs_f32(kdst + i * Dkv + h * Dh, cs, sn, Dh / 2);
        }
        AttnJob aj = {c, s, cap, NULL, 0, l, pos0, n};
        if (fz && hk->freeze_attn && in_range(hk, l)) {
            aj.frozen_att = fz->att + (size_t)l * H * FT * FT;
            aj.frozen_T = (int)FT;
        }
        int ntask = n * (int)H;
        if (pool_size(pool) > 1 && (size_t)(pos0 + n) * Dh * (size_t)ntask >= (1u << 14))
            pool_run(pool, attn_task, &aj, ntask);
        else
            for (int t = 0; t < ntask; t++) attn_task(&aj, t, ntask);
        matmul(pool, m, xb2, w->wo + (size_t)l * D * D, QW(Q8M_WO), xb, (size_t)n, D, H * Dh);
        for (int i = 0; i < n; i++) {
            if (capt && (cap->flags & CAP_ATTN_OUT)) cap_put(cap->attn_out, L, (int)D, pos0 + i, l, xb2 + i * D);
            K->axpy_f32(x + i * D, 1.0f, xb2 + i * D, D);
            HOOK(HOOK_RESID_MID, l, i, x + i * D);
            if (capt && (cap->flags & CAP_RESID)) cap_put(cap->resid_mid, L, (int)D, pos0 + i, l, x + i * D);
        }
        // MLP block
        for (int i = 0; i < n; i++) {
            float inv = fz && hk->freeze_norms && in_range(hk, l)
                ? norm_frozen(xb + i * D, x + i * D, w->rms_ffn + (size_t)l * D, D, fz->inv_rms_ffn[(size_t)(pos0 + i) * L + l])
                : K->rmsnorm_f32(xb + i * D, x + i * D, w->rms_ffn + (size_t)l * D, D, c->norm_eps);
            if (capt && (cap->flags & CAP_NORMS)) cap->inv_rms_ffn[(size_t)(pos0 + i) * L + l] = inv;
            if (capt && (cap->flags & CAP_MLP)) cap_put(cap->mlp_in, L, (int)D, pos0 + i, l, xb + i * D);
        }
        if (fz && hk->freeze_mlp && in_range(hk, l)) {
            // Blocked MLP: its output is the clean run's constant.
            for (int i = 0; i < n; i++)
                memcpy(xb + i * D, fz->mlp_out + ((size_t)(pos0 + i) * L + l) * D, D * sizeof(float));
        } else {
            matmul(pool, m, hb, w->w1 + (size_t)l * Hd * D, QW(Q8M_W1), xb, (size_t)n, Hd, D);
            matmul(pool, m, hb2, w->w3 + (size_t)l * Hd * D, QW(Q8M_W3), xb, (size_t)n, Hd, D);
            for (int i = 0; i < n; i++) K->swiglu_f32(hb + i * Hd, hb2 + i * Hd, Hd);
            matmul(pool, m, xb, w->w2 + (size_t)l * D * Hd, QW(Q8M_W2), hb, (size_t)n, D, Hd);
        }
        for (int i = 0; i < n; i++) {
            HOOK(HOOK_MLP_OUT, l, i, xb + i * D);
            if (capt && (cap->flags & CAP_MLP)) cap_put(cap->mlp_out, L, (int)D, pos0 + i, l, xb + i * D);
            K->axpy_f32(x + i * D, 1.0f, xb + i * D, D);
        }
    }
    for (int i = 0; i < n; i++) {
        if (capt && (cap->flags & CAP_RESID)) cap_put(cap->resid_pre, L + 1, (int)D, pos0 + i, L, x + i * D);
        float inv = fz && hk->freeze_norms
            ? norm_frozen(x + i * D, x + i * D, w->rms_final, D, fz->inv_rms_final[pos0 + i])
            : K->rmsnorm_f32(x + i * D, x + i * D, w->rms_final, D, c->norm_eps);
        if (capt && (cap->flags & CAP_NORMS)) {
            cap->inv_rms_final[pos0 + i] = inv;
            memcpy(cap->final_normed + (size_t)(pos0 + i) * D, x + i * D, D * sizeof(float));
        }
    }
    size_t V = (size_t)c->vocab_size;
    if (want_all) matmul(pool, m, s->logits, w->wcls, qcls, x, (size_t)n, V, D);
    else matmul(pool, m, s->logits, w->wcls, qcls, x + (size_t)(n - 1) * D, 1, V, D);
#undef HOOK
#undef QW
}

float *model_forward(const Model *m, RunState *s, int token, int pos, Capture *cap, ThreadPool *pool) {
    return model_forward_hooked(m, s, token, pos, cap, pool, NULL);
}

// Frozen runs need the clean capture to hold what they read.
static int check_frozen(const ForwardHooks *hk, int last_pos) {
    if (!hk || !hk->frozen) {
        if (hk && (hk->freeze_attn || hk->freeze_norms || hk->freeze_mlp))
            return ct_error("forward: freezing requested without a frozen capture");
        return CT_OK;
    }
    const Capture *f = hk->frozen;
    if (last_pos >= f->T) return ct_error("forward: position %d beyond the frozen capture's %d", last_pos, f->T);
    if ((hk->freeze_attn && !f->att) || (hk->freeze_norms && !f->inv_rms_att) || (hk->freeze_mlp && !f->mlp_out))
        return ct_error("forward: the frozen capture lacks what is frozen (patterns/norms/MLP)");
    return CT_OK;
}

float *model_forward_hooked(const Model *m, RunState *s, int token, int pos, Capture *cap,
                            ThreadPool *pool, const ForwardHooks *hk) {
    if (check_frozen(hk, pos) != CT_OK) return NULL;
    if (pos < 0 || pos >= s->T) {
        ct_error("forward: position %d is outside the context [0, %d)", pos, s->T);
        return NULL;
    }
    if (token < 0 || token >= m->c.vocab_size) {
        ct_error("forward: token %d is outside the vocabulary [0, %d)", token, m->c.vocab_size);
        return NULL;
    }
    if (cap && pos >= cap->T) {
        ct_error("forward: position %d is beyond the capture's %d positions", pos, cap->T);
        return NULL;
    }
    forward_chunk(m, s, &token, pos, 1, 0, cap, pool, hk);
    return s->logits;
}

int model_forward_seq(const Model *m, RunState *s, const int *tokens, int n, float *logits_out,
                      Capture *cap, ThreadPool *pool) {
    return model_forward_seq_hooked(m, s, tokens, n, logits_out, cap, pool, NULL);
}

int model_forward_seq_hooked(const Model *m, RunState *s, const int *tokens, int n,
                             float *logits_out, Capture *cap, ThreadPool *pool,
                             const ForwardHooks *hk) {
    if (n > 0 && check_frozen(hk, n - 1) != CT_OK) return CT_ERR;
    if (n <= 0) return ct_error("forward: empty token sequence");
    if (n > s->T)
        return ct_error("forward: %d tokens but the run state holds %d positions (model seq_len %d)",
                        n, s->T, m->c.seq_len);
    if (cap && n > cap->T) return ct_error("forward: %d tokens but the capture holds %d", n, cap->T);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->c.vocab_size)
            return ct_error("forward: token %d at position %d is outside the vocabulary [0, %d)",
                            tokens[i], i, m->c.vocab_size);
    size_t V = (size_t)m->c.vocab_size;
    for (int p0 = 0; p0 < n; p0 += CHUNK) {
        int k = n - p0 < CHUNK ? n - p0 : CHUNK;
        forward_chunk(m, s, tokens + p0, p0, k, logits_out != NULL, cap, pool, hk);
        if (logits_out) memcpy(logits_out + (size_t)p0 * V, s->logits, (size_t)k * V * sizeof(float));
    }
    return CT_OK;
}
