// forward.c — the forward pass of every supported architecture (llama2.c semantics for
// llama2.c checkpoints; Hugging Face semantics for Llama, Qwen3, Gemma-2 and GPT-2) with a KV
// cache, batched over a chunk of positions, and an optional capture of every intermediate.
//
// One story, top to bottom, for a chunk of n positions pos0..pos0+n-1 (n = 1 when decoding);
// the per-architecture switches of Config are in [brackets]:
//
//   x = token_embedding[tok] [* embed_scale] [+ pos_embedding[pos]]      (n, D)
//   for each layer l:
//     xb   = norm(x) * rms_att[l] [+ bias]                    (n, D)    [inv_rms_att captured]
//            norm = RMSNorm x/rms | [LayerNorm (x - mean)/sigma]
//     q    = wq xb [+ bq];  k, v = wk xb [+ bk], wv xb [+ bv] -> KV cache rows   (n, Dq), (n, Dkv)
//     [q, k = per-head RMSNorm * q_norm / k_norm]              Qwen3      [inv_qnorm/knorm]
//     rope(q), rope(k): adjacent pairs (2i, 2i+1) | [rotate-half pairs (i, i+Dh/2)] | [none]
//     s    = q k^T / sqrt(Dh)  [or * attn_scale]  [softcap: c tanh(s/c)]  over keys 0..p
//            [sliding window on even layers: keys p-W+1..p]
//     att  = softmax(s)                                       (H, n, p+1) [patterns captured]
//     xb   = att v  (query head h reads kv head h / (H/Hkv))  (n, Dq)
//     xb2  = wo xb [+ bo]                                     [attn_out captured]
//     [xb2 = rmsnorm(xb2) * post_att[l]]                      Gemma-2    [inv_post_att]
//     x   += xb2                                              [resid_mid captured, HOOK_RESID_MID]
//     xb   = norm(x) * rms_ffn[l] [+ bias]                    [mlp_in, inv_rms_ffn captured]
//            (Gemma-2: resid_mid := x/rms, the normalised input before the gain)
//     xb   = w2 (act(w1 xb [+ b1]) [* (w3 xb [+ b3])]) [+ b2]  silu*up | gelu_tanh*up | gelu_tanh
//     [xb  = rmsnorm(xb) * post_ffn[l]]                       Gemma-2    [mlp_raw, inv_post_ffn]
//     x   += xb                                               [mlp_out captured, HOOK_MLP_OUT]
//   x = norm(x) * rms_final [+ bias];  logits = wcls x  [softcap]        (n, V)
//
// Every matrix product goes through the kernel table; matmul rows are bit-identical to
// matvec rows (simd.h contract), so chunked prefill and one-token decode give the same bits,
// and work is split over threads by rows or heads, never by reduction, so any thread count
// gives the same bits.  With int8 weights (m->q8, engine/quantize.h) the products run the
// int8 kernels on activations quantized per row; with bf16 weights (m->bf16) the bf16 kernels
// (weights widened in registers: the fp32 bits of the rounded weights, or VDPBF16PS for
// bf16dot); everything else stays fp32.  The llama2.c path takes exactly the branches it
// always took (bit-identical to run.c's loops).
#include <math.h>
#include <stdio.h>
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
    size_t DX = D > H * Dh ? D : H * Dh;   // xb holds a normed row (D) or an attention row (Dq)
    MemCarveEntry tab[] = {
        {"x", B * D * F4, (void **)&s->x},           {"xb", B * DX * F4, (void **)&s->xb},
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
    // freq = 1 / powf(theta, head_dim_index / Dh), angle = pos * freq.  HF computes the same
    // inverse frequencies in fp32 (then optionally rescales them, Llama-3) and the angles as
    // the fp32 product pos * inv_freq.
    if (c->rope_style == ROPE_NONE) return CT_OK;
    for (size_t i = 0; i < Dh / 2; i++) {
        float freq = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)Dh);
        if (c->rope_llama3) {
            // Llama-3 rope_scaling: long wavelengths divided by factor, short ones kept, the
            // band between them interpolated (transformers _compute_llama3_parameters).
            float lo_wl = c->rope_orig_ctx / c->rope_low_freq, hi_wl = c->rope_orig_ctx / c->rope_high_freq;
            float wl = (float)(2.0 * M_PI) / freq;
            if (wl > lo_wl) {
                freq = freq / c->rope_factor;
            } else if (!(wl < hi_wl)) {
                float sm = (c->rope_orig_ctx / wl - c->rope_low_freq) / (c->rope_high_freq - c->rope_low_freq);
                freq = (1.0f - sm) * freq / c->rope_factor + sm * freq;
            }
        }
        for (int pos = 0; pos < T; pos++) {
            float val = (float)pos * freq;
            s->rope_cos[(size_t)pos * (Dh / 2) + i] = cosf(val);
            s->rope_sin[(size_t)pos * (Dh / 2) + i] = sinf(val);
        }
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
    size_t Hkv = (size_t)c->n_kv_heads, F4 = sizeof(float);
    cap->flags = flags;
    cap->T = T;
    cap->L = c->n_layers;
    cap->D = c->dim;
    cap->H = c->n_heads;
    cap->Hkv = c->n_kv_heads;
    int post = c->post_norms != 0, qk = c->qk_norm != 0;
    // {name, destination, floats, flag, present for this architecture}
    struct { const char *name; float **p; size_t n; int flag, on; } g[] = {
        {"resid_pre", &cap->resid_pre, t * (L + 1) * D, CAP_RESID, 1},
        {"resid_mid", &cap->resid_mid, t * L * D, CAP_RESID, 1},
        {"attn_out", &cap->attn_out, t * L * D, CAP_ATTN_OUT, 1},
        {"mlp_in", &cap->mlp_in, t * L * D, CAP_MLP, 1},
        {"mlp_out", &cap->mlp_out, t * L * D, CAP_MLP, 1},
        {"mlp_raw", &cap->mlp_raw, t * L * D, CAP_MLP, post},
        {"att", &cap->att, L * H * t * t, CAP_PATTERNS, 1},
        {"inv_rms_att", &cap->inv_rms_att, t * L, CAP_NORMS, 1},
        {"inv_rms_ffn", &cap->inv_rms_ffn, t * L, CAP_NORMS, 1},
        {"inv_rms_final", &cap->inv_rms_final, t, CAP_NORMS, 1},
        {"final_normed", &cap->final_normed, t * D, CAP_NORMS, 1},
        {"inv_post_att", &cap->inv_post_att, t * L, CAP_NORMS, post},
        {"inv_post_ffn", &cap->inv_post_ffn, t * L, CAP_NORMS, post},
        {"inv_qnorm", &cap->inv_qnorm, t * L * H, CAP_NORMS, qk},
        {"inv_knorm", &cap->inv_knorm, t * L * Hkv, CAP_NORMS, qk},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if ((flags & g[i].flag) && g[i].on) tab[n++] = (MemCarveEntry){g[i].name, g[i].n * F4, (void **)g[i].p};
    return n;
}

int capture_init(Capture *cap, const Config *c, int T, int flags) {
    MemCarveEntry tab[24];
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
    MemCarveEntry tab[24];
    size_t n = capture_table(cap, c, T, flags, tab), off[24], total;
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
    const Q8Act *A;        // X quantized (A->digits rows per token)
    const ModelQ8 *q8;     // for the NUMA replica lookup
    const uint16_t *B;     // bf16 weights (rows, cols), or NULL
    int bdot;              // bf16dot kernels (else bf16w)
} MatJob;

static void matjob_task(void *ctx, int t, int nt) {
    MatJob *j = ctx;
    const SimdKernels *K = simd_kernels();
    if (j->B) {   // bf16: the fp32 split below, with the bf16 kernels
        if (j->n == 1) {
            size_t r0 = pool_split(j->rows, t, nt), r1 = pool_split(j->rows, t + 1, nt);
            (j->bdot ? K->matvec_bf16dot : K->matvec_bf16w)(j->Y + r0, j->B + r0 * j->cols, j->X, r1 - r0, j->cols);
        } else {
            size_t p0 = pool_split(j->n, t, nt), p1 = pool_split(j->n, t + 1, nt);
            if (p1 > p0)
                (j->bdot ? K->matmul_bf16dot : K->matmul_bf16w)(j->Y + p0 * j->rows, j->B, j->X + p0 * j->cols,
                                                                p1 - p0, j->rows, j->cols);
        }
        return;
    }
    if (j->Q) {
        size_t p0 = pool_split(j->Q->np, t, nt), p1 = pool_split(j->Q->np, t + 1, nt);
        Q8Panels W = *j->Q;
        W.data = model_q8_local(j->q8, W.data);   // this node's copy under --numa replicate
        if (j->n == 1) (j->A->digits == 2 ? K->matvec_q8x2 : K->matvec_q8)(j->Y, &W, j->A, p0, p1);
        else if (p1 > p0) (j->A->digits == 2 ? K->matmul_q8x2 : K->matmul_q8)(j->Y, j->rows, &W, j->A, j->n, p0, p1);
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

// The input an int8 product quantized last on this thread, so the next product of the same X
// (wk and wv after wq, w3 after w1) reuses its quantization instead of redoing it.
typedef struct {
    const float *X;
    size_t n, cols;
    int digits;
    uint64_t gen;   // the scratch's generation after that quantization (nothing wrote it since)
    Q8Act A;
} LastAct;
static _Thread_local LastAct g_last_act;

// same_x: X is the previous product's input, unchanged since (the caller's promise; the
// quantization is reused only when X, n, cols and the digits also match).
static void matmul(ThreadPool *pool, const Model *m, float *Y, const float *W, const Q8Panels *Q,
                   const uint16_t *B, const float *X, size_t n, size_t rows, size_t cols, int same_x) {
    MatJob j = {Y, W, X, n, rows, cols, 1, NULL, NULL, NULL, B, B && m->bf16->dot};
    // Below ~64K multiply-adds a thread hand-off costs more than it saves.
    int nt = (rows * cols * n < (1u << 16)) ? 1 : pool_size(pool);
    if (Q && !B) {
        // Scratch is grow-only per thread; if even that fails, the fp32 weights give a
        // correct, slower answer (a model opened int8-only has none: abort below).
        Q8ActBuf *buf = q8_tls_actbuf();
        int dg = m->q8->act_digits;
        LastAct *la = &g_last_act;
        int reuse = buf && same_x && la->X == X && la->n == n && la->cols == cols && la->digits == dg &&
                    la->gen == buf->gen;
        if (!reuse) la->X = NULL;
        if (buf && (reuse || q8_act_quantize_digits(&la->A, buf, X, n, cols, dg) == CT_OK)) {
            *la = (LastAct){X, n, cols, dg, buf->gen, la->A};
            j.Q = Q, j.A = &la->A, j.q8 = m->q8;
            if ((size_t)nt > Q->np) nt = (int)Q->np;
        }
    }
    if (Q && !B && !j.Q && !W) {   // int8-only model (MODEL_OPEN_INT8_ONLY): nothing to fall back on
        fprintf(stderr, "ctrace: out of memory for int8 activation scratch (%zu x %zu)\n", n, cols);
        abort();
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
    int window;               // > 0: keys p-window+1..p only (a sliding-window layer)
} AttnJob;

// Positions of a chunk that one attention task takes together, and the keys it takes at a time:
// a block of ATTN_KEYS rows of the cache (every head; 192 KB for 768 floats a row) is read once
// for all the group's positions and heads while it sits in L2.  (At 1900 tokens of context,
// 16, 64, 256 or all keys per block gave the same speed within the VM's noise.)
#define ATTN_GROUP 8
#define ATTN_KEYS 64

// First key position p attends to (the sliding window), p itself the last.
static inline int attn_first(const AttnJob *j, int p) {
    return j->window > 0 && p - j->window + 1 > 0 ? p - j->window + 1 : 0;
}

// out(p, h) += att(p, h, t) v(t, h) for the keys t in [from, to] that position p attends to,
// in key order, one axpys_f32 call per (position, head): positions i0 .. i1-1 of the chunk,
// heads h0 .. h1-1.
static void attn_values_each(const AttnJob *j, int i0, int i1, int h0, int h1, int from, int to) {
    const Config *c = j->c;
    const SimdKernels *K = simd_kernels();
    int H = c->n_heads, Dh = c->head_dim, T = j->s->T, grp = H / c->n_kv_heads;
    size_t Dq = (size_t)H * Dh, Dkv = (size_t)c->n_kv_heads * Dh;
    const float *vc = j->s->value_cache + (size_t)j->layer * T * Dkv;
    for (int i = i0; i < i1; i++) {
        int p = j->pos0 + i, lo = attn_first(j, p), hi = to < p ? to : p;
        if (lo < from) lo = from;
        if (lo > hi) continue;
        for (int h = h0; h < h1; h++)
            K->axpys_f32(j->s->xb + (size_t)i * Dq + (size_t)h * Dh, 0, j->s->att + ((size_t)i * H + h) * T + lo, 0, 1,
                         vc + (size_t)lo * Dkv + (size_t)(h / grp) * Dh, Dkv, (size_t)(hi - lo + 1), (size_t)Dh);
    }
}

// Task = a group of up to ATTN_GROUP positions x a range of heads (ntasks / groups ranges; all
// heads when there are as many groups as threads).  For each (position p, head h) it
// computes what one loop over the keys would: score_t = dot_f32(q, k_t) scaled (and
// soft-capped), the softmax over t0..p, out = the axpys att_t v_t in key order.  Only the
// nesting and the calls differ: key blocks are the outer loop, so the cache is read in order,
// block by block, once per group; a head takes the block's scores for the whole group in one
// dots_f32 call (register tiles of several positions and keys) and the values of the keys the
// whole group attends to in one axpys_f32 call (rows Dkv floats apart; simd.h: the same bits
// as dot_f32 and axpy_f32 per key).  Before, each (position, head) task called dot_f32 and
// axpy_f32 once per key, reading one head's Dh floats of every row at a stride of Dkv.  The operations of each
// (p, h), and so the bits, do not depend on the groups, the head ranges, the blocks or the
// threads.
static void attn_task(void *ctx, int task, int ntasks) {
    AttnJob *j = ctx;
    const Config *c = j->c;
    const SimdKernels *K = simd_kernels();
    int H = c->n_heads, Dh = c->head_dim, T = j->s->T, grp = H / c->n_kv_heads, pos0 = j->pos0;
    int ng = (j->n + ATTN_GROUP - 1) / ATTN_GROUP, hs = ntasks / ng, r = task / ng;
    int h0 = r * H / hs, h1 = (r + 1) * H / hs;
    task %= ng;
    int i0 = task * ATTN_GROUP, i1 = i0 + ATTN_GROUP < j->n ? i0 + ATTN_GROUP : j->n;
    size_t Dq = (size_t)H * Dh, Dkv = (size_t)c->n_kv_heads * Dh;
    const float *kc = j->s->key_cache + (size_t)j->layer * T * Dkv;
    const float *vc = j->s->value_cache + (size_t)j->layer * T * Dkv;
    const float *qs = j->s->q;
    float *att = j->s->att, *xb = j->s->xb;
#define ATT(i, h) (att + ((size_t)(i) * H + (size_t)(h)) * T)
    // The group's keys: first(p) grows with p, so they are first(pos0 + i0) .. pos0 + i1 - 1.
    int tlo = attn_first(j, pos0 + i0), thi = pos0 + i1 - 1;
    if (j->frozen_att) {
        // Frozen pattern: the clean run's post-softmax weights; only the values move.
        for (int i = i0; i < i1; i++)
            for (int h = h0; h < h1; h++) {
                int p = pos0 + i;
                const float *fa = j->frozen_att + ((size_t)h * j->frozen_T + p) * j->frozen_T;
                memcpy(ATT(i, h), fa, (size_t)(p + 1) * sizeof(float));
            }
    } else {
        float scale = sqrtf((float)Dh), mul = c->attn_scale, cap = c->attn_softcap;
        for (int tb = tlo; tb <= thi; tb += ATTN_KEYS) {
            int te = tb + ATTN_KEYS - 1 < thi ? tb + ATTN_KEYS - 1 : thi;
            // Every position of the group against the whole block, in one call per head: the
            // entries past a position (t > p) are not used, those before its first key (t < t0,
            // a sliding window) are zeroed below.  Query head h reads kv head h / grp.
            for (int h = h0; h < h1; h++) {
                K->dots_f32(ATT(i0, h) + tb, (size_t)H * T, qs + (size_t)i0 * Dq + (size_t)h * Dh, Dq, (size_t)(i1 - i0),
                            kc + (size_t)tb * Dkv + (size_t)(h / grp) * Dh, Dkv, (size_t)(te - tb + 1), (size_t)Dh);
                for (int i = i0; i < i1; i++) {
                    int p = pos0 + i, lo = attn_first(j, p), hi = te < p ? te : p;
                    float *a = ATT(i, h);
                    for (int t = lo < tb ? tb : lo; t <= hi; t++) {
                        float sc = a[t];
                        sc = mul != 0.0f ? sc * mul : sc / scale;   // HF: * Dh^-0.5; llama2.c, GPT-2: / sqrt(Dh)
                        if (cap != 0.0f) sc = cap * tanhf(sc / cap);  // Gemma-2 attention soft-cap
                        a[t] = sc;
                    }
                }
            }
        }
        for (int i = i0; i < i1; i++) {
            int p = pos0 + i, t0 = attn_first(j, p);
            for (int h = h0; h < h1; h++) {
                for (int t = 0; t < t0; t++) ATT(i, h)[t] = 0.0f;   // outside the sliding window: weight 0
                K->softmax_f32(ATT(i, h) + t0, (size_t)(p + 1 - t0));
            }
        }
    }
    for (int i = i0; i < i1; i++) memset(xb + (size_t)i * Dq + (size_t)h0 * Dh, 0, (size_t)(h1 - h0) * Dh * sizeof(float));
    // Values, block by block.  The keys every position of the group attends to in this block
    // (clo .. chi) go through one axpys_f32 call per head for the whole group (each value row
    // loaded once for all of them); a position's keys before clo (a sliding window's start) and
    // after chi (the group's later positions, in its last block) go through calls of their own,
    // before and after, so each (p, h) still adds its keys in order.
    for (int tb = tlo; tb <= thi; tb += ATTN_KEYS) {
        int te = tb + ATTN_KEYS - 1 < thi ? tb + ATTN_KEYS - 1 : thi;
        int clo = attn_first(j, pos0 + i1 - 1), chi = te < pos0 + i0 ? te : pos0 + i0;
        if (clo < tb) clo = tb;
        if (clo > chi) {   // no key shared by the whole group: each position alone
            attn_values_each(j, i0, i1, h0, h1, tb, te);
            continue;
        }
        attn_values_each(j, i0, i1, h0, h1, tb, clo - 1);
        for (int h = h0; h < h1; h++)
            K->axpys_f32(xb + (size_t)i0 * Dq + (size_t)h * Dh, Dq, ATT(i0, h) + clo, (size_t)H * T, (size_t)(i1 - i0),
                         vc + (size_t)clo * Dkv + (size_t)(h / grp) * Dh, Dkv, (size_t)(chi - clo + 1), (size_t)Dh);
        attn_values_each(j, i0, i1, h0, h1, chi + 1, te);
    }
    if (j->cap && (j->cap->flags & CAP_PATTERNS)) {
        size_t Tc = (size_t)j->cap->T;
        for (int i = i0; i < i1; i++)
            for (int h = h0; h < h1; h++) {
                int p = pos0 + i;
                float *dst = j->cap->att + (((size_t)j->layer * H + h) * Tc + p) * Tc;
                memcpy(dst, ATT(i, h), (size_t)(p + 1) * sizeof(float));
            }
    }
#undef ATT
}

// ---- per-row helpers ------------------------------------------------------------------------
// Copy row i of a chunk buffer into the capture at (pos, layer).
static void cap_put(float *dst, int L1, int D, int pos, int l, const float *src) {
    memcpy(dst + ((size_t)pos * L1 + l) * D, src, (size_t)D * sizeof(float));
}

// RMSNorm with a frozen 1/rms factor: linear in x (llama2.c order: w * (x * inv)).
static float norm_frozen(float *out, const float *x, const float *w, size_t n, float inv) {
    if (!w) {
        for (size_t i = 0; i < n; i++) out[i] = x[i] * inv;
        return inv;
    }
    for (size_t i = 0; i < n; i++) out[i] = w[i] * (x[i] * inv);
    return inv;
}

// One row of a norm: out = w ⊙ N(x) (+ b); returns the factor (1/rms or 1/sigma).  frozen !=
// NULL: *frozen is the factor (the norm is linear).  out may alias x.  w == NULL: gain 1.
// RMSNorm goes through the kernel table (llama2.c's order of operations); LayerNorm accumulates
// the mean and the biased variance in double, subtracts the mean in fp32 (live even when the
// factor is frozen: it is linear) and applies w * ((x - mean) * inv) + b as torch does.
static float norm_row(const Config *c, const SimdKernels *K, float *out, const float *x, const float *w,
                      const float *b, size_t n, const float *frozen) {
    if (c->norm_kind == NORM_LAYER) {
        double mean = 0;
        for (size_t i = 0; i < n; i++) mean += x[i];
        mean /= (double)n;
        float inv;
        if (frozen) {
            inv = *frozen;
        } else {
            double var = 0;
            for (size_t i = 0; i < n; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
            inv = (float)(1.0 / sqrt(var / (double)n + (double)c->norm_eps));
        }
        float mu = (float)mean;
        for (size_t i = 0; i < n; i++) {
            float v = (x[i] - mu) * inv;
            if (w) v = w[i] * v;
            out[i] = b ? v + b[i] : v;
        }
        return inv;
    }
    if (frozen) return norm_frozen(out, x, w, n, *frozen);
    return K->rmsnorm_f32(out, x, w, n, c->norm_eps);
}

// Y (n, cols) += b (cols) on every row (the bias of a linear layer), when b is given.
static void add_bias(float *Y, const float *b, size_t n, size_t cols) {
    if (!b) return;
    const SimdKernels *K = simd_kernels();
    for (size_t i = 0; i < n; i++) K->axpy_f32(Y + i * cols, 1.0f, b, cols);
}

// HF RoPE: rotate the pairs (x[i], x[i + half]) by the angle of pair i (rotate_half):
//   x' = x cos + rotate_half(x) sin,  rotate_half(x) = (-x[half:], x[:half]).
static void rope_half(float *x, const float *c, const float *s, size_t half) {
    for (size_t i = 0; i < half; i++) {
        float x0 = x[i], x1 = x[i + half];
        x[i] = x0 * c[i] - x1 * s[i];
        x[i + half] = x1 * c[i] + x0 * s[i];
    }
}

// gelu with the tanh approximation (HF gelu_pytorch_tanh and GPT-2's gelu_new), fp32 like torch.
static inline float gelu_tanh(float x) {
    const float k = 0.7978845608028654f;   // sqrt(2 / pi)
    float inner = k * (x + 0.044715f * (x * x * x));
    return 0.5f * x * (1.0f + tanhf(inner));
}

static int in_range(const ForwardHooks *hk, int l) {
    return !hk->use_range || (l >= hk->layer_lo && l <= hk->layer_hi);
}

// ---- the chunk forward ----------------------------------------------------------------------
// Process positions pos0..pos0+n-1 (n <= CHUNK).  Logits for the chunk rows selected by
// want_all (all rows) or only the last row are left in s->logits (n or 1 rows).
static void forward_chunk(const Model *m, RunState *s, const int *tok, int pos0, int n,
                          int want_all, Capture *cap, ThreadPool *pool, const ForwardHooks *hk) {
    const Config *c = &m->c;
    const Weights *w = &m->w;
    const SimdKernels *K = simd_kernels();
    size_t D = (size_t)c->dim, Hd = (size_t)c->hidden_dim, Dh = (size_t)c->head_dim;
    size_t H = (size_t)c->n_heads, Hkv = (size_t)c->n_kv_heads, Dq = H * Dh, Dkv = Hkv * Dh;
    size_t T = (size_t)s->T;
    int L = c->n_layers;
    float *x = s->x, *xb = s->xb, *xb2 = s->xb2, *hb = s->hb, *hb2 = s->hb2;
    int capt = cap != NULL;
    int post = c->post_norms;   // Gemma-2: post-norms; resid_mid is the normalised FFN input
    const Capture *fz = hk ? hk->frozen : NULL;
    size_t FT = fz ? (size_t)fz->T : 0;
#define HOOK(site, l, i, v) do { if (hk && hk->hook) hk->hook(hk->ctx, site, l, pos0 + (i), v); } while (0)
    // The frozen factor of norm `arr` at (position i of the chunk, layer l), or NULL (live).
#define FZN(arr, i) (fz && hk->freeze_norms && in_range(hk, l) ? &fz->arr[(size_t)(pos0 + (i)) * L + l] : NULL)
#define CAPN(arr, i, v) do { if (capt && (cap->flags & CAP_NORMS)) cap->arr[(size_t)(pos0 + (i)) * L + l] = (v); } while (0)
    // int8 weights of layer l's matrix k (NULL: fp32), see engine/quantize.h.
    const int q8on = model_is_q8(m);
#define QW(k) (q8on ? &m->q8->mats[(size_t)l * Q8M_PER_LAYER + (k)] : NULL)
    const Q8Panels *qcls = q8on ? &m->q8->cls : NULL;
    // bf16 weights of layer l's matrix k (NULL: none); their fp32 pointers may then be NULL.
    const ModelBf16 *bf = m->bf16;
#define BW(k) (bf ? bf->mats[k] + (size_t)l * bf->per_layer[k] : NULL)
#define FW(p, off) ((p) ? (p) + (off) : NULL)

    for (int i = 0; i < n; i++) {
        model_embed(m, tok[i], pos0 + i, x + i * D);
        HOOK(HOOK_EMBED, -1, i, x + i * D);
    }

    for (int l = 0; l < L; l++) {
        // attention block
        const float *lb = w->rms_att_b ? w->rms_att_b + (size_t)l * D : NULL;
        for (int i = 0; i < n; i++) {
            if (capt && (cap->flags & CAP_RESID)) cap_put(cap->resid_pre, L + 1, (int)D, pos0 + i, l, x + i * D);
            float inv = norm_row(c, K, xb + i * D, x + i * D, w->rms_att + (size_t)l * D, lb, D, FZN(inv_rms_att, i));
            CAPN(inv_rms_att, i, inv);
        }
        float *kdst = s->key_cache + ((size_t)l * T + (size_t)pos0) * Dkv;
        float *vdst = s->value_cache + ((size_t)l * T + (size_t)pos0) * Dkv;
        matmul(pool, m, s->q, FW(w->wq, (size_t)l * Dq * D), QW(Q8M_WQ), BW(Q8M_WQ), xb, (size_t)n, Dq, D, 0);
        matmul(pool, m, kdst, FW(w->wk, (size_t)l * Dkv * D), QW(Q8M_WK), BW(Q8M_WK), xb, (size_t)n, Dkv, D, 1);
        matmul(pool, m, vdst, FW(w->wv, (size_t)l * Dkv * D), QW(Q8M_WV), BW(Q8M_WV), xb, (size_t)n, Dkv, D, 1);
        if (w->bq) {
            add_bias(s->q, w->bq + (size_t)l * Dq, (size_t)n, Dq);
            add_bias(kdst, w->bk + (size_t)l * Dkv, (size_t)n, Dkv);
            add_bias(vdst, w->bv + (size_t)l * Dkv, (size_t)n, Dkv);
        }
        if (c->qk_norm) {
            // Qwen3: RMSNorm of every query and key head (over Dh) before RoPE
            const float *qn = w->q_norm + (size_t)l * Dh, *kn = w->k_norm + (size_t)l * Dh;
            int frz = fz && hk->freeze_norms && in_range(hk, l);
            for (int i = 0; i < n; i++) {
                size_t r = (size_t)(pos0 + i) * L + l;
                for (size_t h = 0; h < H; h++) {
                    float *v = s->q + i * Dq + h * Dh;
                    float inv = frz ? norm_frozen(v, v, qn, Dh, fz->inv_qnorm[r * H + h])
                                    : K->rmsnorm_f32(v, v, qn, Dh, c->norm_eps);
                    if (capt && (cap->flags & CAP_NORMS)) cap->inv_qnorm[r * H + h] = inv;
                }
                for (size_t h = 0; h < Hkv; h++) {
                    float *v = kdst + i * Dkv + h * Dh;
                    float inv = frz ? norm_frozen(v, v, kn, Dh, fz->inv_knorm[r * Hkv + h])
                                    : K->rmsnorm_f32(v, v, kn, Dh, c->norm_eps);
                    if (capt && (cap->flags & CAP_NORMS)) cap->inv_knorm[r * Hkv + h] = inv;
                }
            }
        }
        if (c->rope_style != ROPE_NONE) {
            for (int i = 0; i < n; i++) {
                const float *cs = s->rope_cos + (size_t)(pos0 + i) * (Dh / 2);
                const float *sn = s->rope_sin + (size_t)(pos0 + i) * (Dh / 2);
                if (c->rope_style == ROPE_PAIRS) {
                    for (size_t h = 0; h < H; h++) K->rope_pairs_f32(s->q + i * Dq + h * Dh, cs, sn, Dh / 2);
                    for (size_t h = 0; h < Hkv; h++) K->rope_pairs_f32(kdst + i * Dkv + h * Dh, cs, sn, Dh / 2);
                } else {
                    for (size_t h = 0; h < H; h++) rope_half(s->q + i * Dq + h * Dh, cs, sn, Dh / 2);
                    for (size_t h = 0; h < Hkv; h++) rope_half(kdst + i * Dkv + h * Dh, cs, sn, Dh / 2);
                }
            }
        }
        // Gemma-2: layers with an even index are sliding-window layers
        int window = config_window(c, l);
        AttnJob aj = {c, s, cap, NULL, 0, l, pos0, n, window};
        if (fz && hk->freeze_attn && in_range(hk, l)) {
            aj.frozen_att = fz->att + (size_t)l * H * FT * FT;
            aj.frozen_T = (int)FT;
        }
        // Tasks: the groups of positions, each split into hs ranges of heads when there are
        // fewer groups than threads (decode: one group).  ~110M q8 at 1900 tokens, 2 threads:
        // decode 92-110 tok/s with one task, 143-175 with the heads split in two.
        int ngroup = (n + ATTN_GROUP - 1) / ATTN_GROUP;
        int par = (size_t)(pos0 + n) * Dh * (size_t)n * H >= (1u << 14);
        int nth = pool_size(pool), hs = par && ngroup < nth ? (nth < (int)H ? nth : (int)H) : 1;
        pool_run(par ? pool : NULL, attn_task, &aj, ngroup * hs);
        matmul(pool, m, xb2, FW(w->wo, (size_t)l * D * Dq), QW(Q8M_WO), BW(Q8M_WO), xb, (size_t)n, D, Dq, 0);
        if (w->bo) add_bias(xb2, w->bo + (size_t)l * D, (size_t)n, D);
        for (int i = 0; i < n; i++) {
            if (capt && (cap->flags & CAP_ATTN_OUT)) cap_put(cap->attn_out, L, (int)D, pos0 + i, l, xb2 + i * D);
            if (post) {   // Gemma-2: post-attention norm before the residual add
                float inv = norm_row(c, K, xb2 + i * D, xb2 + i * D, w->post_att + (size_t)l * D, NULL, D,
                                     FZN(inv_post_att, i));
                CAPN(inv_post_att, i, inv);
            }
            K->axpy_f32(x + i * D, 1.0f, xb2 + i * D, D);
            if (!post) {
                HOOK(HOOK_RESID_MID, l, i, x + i * D);
                if (capt && (cap->flags & CAP_RESID)) cap_put(cap->resid_mid, L, (int)D, pos0 + i, l, x + i * D);
            }
        }
        // MLP block
        const float *fb = w->rms_ffn_b ? w->rms_ffn_b + (size_t)l * D : NULL;
        for (int i = 0; i < n; i++) {
            float inv;
            if (post) {
                // Gemma-2: the transcoder reads the normalised input before the (1+w) gain
                inv = norm_row(c, K, xb + i * D, x + i * D, NULL, NULL, D, FZN(inv_rms_ffn, i));
                HOOK(HOOK_RESID_MID, l, i, xb + i * D);
                if (capt && (cap->flags & CAP_RESID)) cap_put(cap->resid_mid, L, (int)D, pos0 + i, l, xb + i * D);
                const float *g = w->rms_ffn + (size_t)l * D;
                for (size_t j = 0; j < D; j++) xb[i * D + j] = xb[i * D + j] * g[j];
            } else {
                inv = norm_row(c, K, xb + i * D, x + i * D, w->rms_ffn + (size_t)l * D, fb, D, FZN(inv_rms_ffn, i));
            }
            CAPN(inv_rms_ffn, i, inv);
            if (capt && (cap->flags & CAP_MLP)) cap_put(cap->mlp_in, L, (int)D, pos0 + i, l, xb + i * D);
        }
        if (fz && hk->freeze_mlp && in_range(hk, l)) {
            // Blocked MLP: its output (Gemma-2: after the post-norm) is the clean run's constant.
            for (int i = 0; i < n; i++) {
                size_t r = (size_t)(pos0 + i) * L + l;
                memcpy(xb + i * D, fz->mlp_out + r * D, D * sizeof(float));
                if (post && capt && (cap->flags & CAP_MLP) && fz->mlp_raw)
                    cap_put(cap->mlp_raw, L, (int)D, pos0 + i, l, fz->mlp_raw + r * D);
                if (post && capt && (cap->flags & CAP_NORMS) && fz->inv_post_ffn)
                    cap->inv_post_ffn[r] = fz->inv_post_ffn[r];
            }
        } else {
            matmul(pool, m, hb, FW(w->w1, (size_t)l * Hd * D), QW(Q8M_W1), BW(Q8M_W1), xb, (size_t)n, Hd, D, 0);
            if (w->b1) add_bias(hb, w->b1 + (size_t)l * Hd, (size_t)n, Hd);
            if (c->mlp_kind == MLP_GELU_TANH) {   // GPT-2: ungated
                for (size_t e = 0; e < (size_t)n * Hd; e++) hb[e] = gelu_tanh(hb[e]);
            } else {
                matmul(pool, m, hb2, FW(w->w3, (size_t)l * Hd * D), QW(Q8M_W3), BW(Q8M_W3), xb, (size_t)n, Hd, D, 1);
                if (w->b3) add_bias(hb2, w->b3 + (size_t)l * Hd, (size_t)n, Hd);
                if (c->mlp_kind == MLP_SWIGLU)
                    for (int i = 0; i < n; i++) K->swiglu_f32(hb + i * Hd, hb2 + i * Hd, Hd);
                else   // Gemma-2 GeGLU
                    for (size_t e = 0; e < (size_t)n * Hd; e++) hb[e] = gelu_tanh(hb[e]) * hb2[e];
            }
            matmul(pool, m, xb, FW(w->w2, (size_t)l * D * Hd), QW(Q8M_W2), BW(Q8M_W2), hb, (size_t)n, D, Hd, 0);
            if (w->b2) add_bias(xb, w->b2 + (size_t)l * D, (size_t)n, D);
            if (post)   // Gemma-2: post-MLP norm
                for (int i = 0; i < n; i++) {
                    if (capt && (cap->flags & CAP_MLP)) cap_put(cap->mlp_raw, L, (int)D, pos0 + i, l, xb + i * D);
                    float inv = norm_row(c, K, xb + i * D, xb + i * D, w->post_ffn + (size_t)l * D, NULL, D,
                                         FZN(inv_post_ffn, i));
                    CAPN(inv_post_ffn, i, inv);
                }
        }
        for (int i = 0; i < n; i++) {
            HOOK(HOOK_MLP_OUT, l, i, xb + i * D);
            if (capt && (cap->flags & CAP_MLP)) cap_put(cap->mlp_out, L, (int)D, pos0 + i, l, xb + i * D);
            K->axpy_f32(x + i * D, 1.0f, xb + i * D, D);
        }
    }
    for (int i = 0; i < n; i++) {
        if (capt && (cap->flags & CAP_RESID)) cap_put(cap->resid_pre, L + 1, (int)D, pos0 + i, L, x + i * D);
        float inv = norm_row(c, K, x + i * D, x + i * D, w->rms_final, w->rms_final_b, D,
                             fz && hk->freeze_norms ? &fz->inv_rms_final[pos0 + i] : NULL);
        if (capt && (cap->flags & CAP_NORMS)) {
            cap->inv_rms_final[pos0 + i] = inv;
            memcpy(cap->final_normed + (size_t)(pos0 + i) * D, x + i * D, D * sizeof(float));
        }
    }
    size_t V = (size_t)c->vocab_size;
    size_t nl = want_all ? (size_t)n : 1;
    if (want_all) matmul(pool, m, s->logits, w->wcls, qcls, bf ? bf->cls : NULL, x, (size_t)n, V, D, 0);
    else matmul(pool, m, s->logits, w->wcls, qcls, bf ? bf->cls : NULL, x + (size_t)(n - 1) * D, 1, V, D, 0);
    if (c->final_softcap != 0.0f) {   // Gemma-2: logits = cap * tanh(logits / cap)
        float fc = c->final_softcap;
        for (size_t e = 0; e < nl * V; e++) s->logits[e] = fc * tanhf(s->logits[e] / fc);
    }
#undef HOOK
#undef FZN
#undef CAPN
#undef QW
#undef BW
#undef FW
}

float *model_forward(const Model *m, RunState *s, int token, int pos, Capture *cap, ThreadPool *pool) {
    return model_forward_hooked(m, s, token, pos, cap, pool, NULL);
}

// Frozen runs need the clean capture to hold what they read.
static int check_frozen(const Model *m, const ForwardHooks *hk, int last_pos) {
    if (!hk || !hk->frozen) {
        if (hk && (hk->freeze_attn || hk->freeze_norms || hk->freeze_mlp))
            return ct_error("forward: freezing requested without a frozen capture");
        return CT_OK;
    }
    const Capture *f = hk->frozen;
    if (last_pos >= f->T) return ct_error("forward: position %d beyond the frozen capture's %d", last_pos, f->T);
    if ((hk->freeze_attn && !f->att) || (hk->freeze_norms && !f->inv_rms_att) || (hk->freeze_mlp && !f->mlp_out))
        return ct_error("forward: the frozen capture lacks what is frozen (patterns/norms/MLP)");
    if (hk->freeze_norms && ((m->c.post_norms && !f->inv_post_att) || (m->c.qk_norm && !f->inv_qnorm)))
        return ct_error("forward: the frozen capture lacks the %s norm factors (captured for another model?)",
                        model_arch_name(m->c.arch));
    if (f->L != m->c.n_layers || f->D != m->c.dim)
        return ct_error("forward: the frozen capture has L = %d, D = %d; the model L = %d, D = %d", f->L, f->D,
                        m->c.n_layers, m->c.dim);
    return CT_OK;
}

float *model_forward_hooked(const Model *m, RunState *s, int token, int pos, Capture *cap,
                            ThreadPool *pool, const ForwardHooks *hk) {
    if (check_frozen(m, hk, pos) != CT_OK) return NULL;
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
    if (n > 0 && check_frozen(m, hk, n - 1) != CT_OK) return CT_ERR;
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
