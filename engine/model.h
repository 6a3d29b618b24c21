// model.h — a decoder-only transformer (llama2.c checkpoints and the Hugging Face Llama, Qwen3,
// Gemma-2 and GPT-2 architectures): configuration, weights, forward pass with KV cache, and the
// per-prompt capture of every intermediate that attribution needs.
//
// Shapes use the glossary in common.h: T, D, Hd (hidden), L, H, Hkv, Dh, V.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"
#include "engine/mem.h"
#include "engine/threads.h"

// Architectures.  ARCH_LLAMA2C is the zero value, and every switch below is zero for it, so a
// Config written with designated initialisers (tests, mkmodel) is a llama2.c model.
typedef enum {
    ARCH_LLAMA2C = 0,  // llama2.c checkpoint: adjacent-pair RoPE, scores / sqrtf(Dh)
    ARCH_LLAMA,        // HF LlamaForCausalLM (Llama-2/3): rotate-half RoPE, optional llama3 scaling
    ARCH_QWEN3,        // HF Qwen3ForCausalLM: Llama + per-head RMSNorm of q and k before RoPE
    ARCH_GEMMA2,       // HF Gemma2ForCausalLM: (1+w) norms, post-norms, GeGLU, soft-caps, sliding window
    ARCH_GPT2,         // HF GPT2LMHeadModel: LayerNorm, learned positions, biases, gelu_new MLP
    ARCH_COUNT
} ModelArch;
typedef enum { NORM_RMS = 0, NORM_LAYER = 1 } NormKind;           // LayerNorm: centred, with bias
typedef enum { ROPE_PAIRS = 0, ROPE_HALF = 1, ROPE_NONE = 2 } RopeStyle;
typedef enum { MLP_SWIGLU = 0, MLP_GEGLU_TANH = 1, MLP_GELU_TANH = 2 } MlpKind;

typedef struct Config {
    int dim;          // D
    int hidden_dim;   // Hd
    int n_layers;     // L
    int n_heads;      // H
    int n_kv_heads;   // Hkv   (H % Hkv == 0)
    int vocab_size;   // V     (always positive here; see shared_classifier)
    int seq_len;      // maximum context
    int head_dim;     // Dh = D / H for llama2.c; explicit in HF configs (H*Dh may differ from D)
    int shared_classifier; // 1: logits use the token embedding; 0: a separate wcls follows
    float norm_eps;   // 1e-5 for llama2.c
    float rope_theta; // 10000 for llama2.c
    // ---- per-architecture switches (all zero = llama2.c) ----------------------------------
    int arch;          // ModelArch
    int norm_kind;     // NormKind of every norm (Gemma's (1+w) gains are stored as 1+w at load)
    int rope_style;    // RopeStyle: llama2.c pairs (2i, 2i+1); HF rotate-half pairs (i, i+Dh/2)
    int mlp_kind;      // MlpKind: silu(w1 x) * w3 x | gelu_tanh(w1 x) * w3 x | gelu_tanh(w1 x)
    int qk_norm;       // Qwen3: RMSNorm of every q and k head (weights (Dh)) before RoPE
    int post_norms;    // Gemma-2: norms after attention and after the MLP, before the residual add;
                       // the transcoder input is the pre-FFN norm's normalised input (no gain)
    int learned_pos;   // GPT-2: a learned position embedding is added to the token embedding
    int attn_bias;     // q/k/v/o projections carry biases
    int mlp_bias;      // MLP projections carry biases
    float embed_scale; // embedding output multiplied by this; 0 = none.  Gemma: sqrt(D) rounded
                       // to fp32, the dtype ctrace computes in (HF rounds the normaliser to the
                       // dtype the model runs in: a bf16 run would use bf16(sqrt(D)))
    float attn_scale;  // scores multiplied by this (HF: Dh^-0.5 or query_pre_attn_scalar^-0.5);
                       // 0 = divided by sqrtf(Dh) (llama2.c, GPT-2)
    float attn_softcap;  // scores = cap * tanh(scores / cap) before the mask; 0 = none
    float final_softcap; // logits = cap * tanh(logits / cap); 0 = none
    int sliding_window;  // > 0: layers with even index attend to the last sliding_window keys
    int rope_llama3;     // Llama-3 rope_scaling of the inverse frequencies (the 4 fields below)
    float rope_factor, rope_low_freq, rope_high_freq, rope_orig_ctx;
} Config;

// The keys layer l attends to: the last config_window(c, l) of them (Gemma-2's sliding window on
// the layers with an even index), or all when 0.
static inline int config_window(const Config *c, int l) {
    return c->sliding_window > 0 && l % 2 == 0 ? c->sliding_window : 0;
}

// Pointers into the read-only mapping (or into owned memory for synthetic and HF models).
// Dq = H*Dh, Dkv = Hkv*Dh.  Optional tensors are NULL when the architecture has none.
typedef struct Weights {
    const float *token_embedding; // (V, D)
    const float *rms_att;         // (L, D)   pre-attention norm gain (Gemma: 1+w)
    const float *wq;              // (L, Dq, D)
    const float *wk;              // (L, Dkv, D)
    const float *wv;              // (L, Dkv, D)
    const float *wo;              // (L, D, Dq)
    const float *rms_ffn;         // (L, D)   pre-MLP norm gain (Gemma: 1+w)
    const float *w1;              // (L, Hd, D)   gate (GPT-2: c_fc, transposed)
    const float *w2;              // (L, D, Hd)   down
    const float *w3;              // (L, Hd, D)   up (NULL for GPT-2's ungated MLP)
    const float *rms_final;       // (D)
    const float *wcls;            // (V, D)   == token_embedding when shared
    // optional (HF architectures)
    const float *bq, *bk, *bv, *bo;        // (L, Dq), (L, Dkv), (L, Dkv), (L, D)   attention biases
    const float *b1, *b3, *b2;             // (L, Hd), (L, Hd), (L, D)              MLP biases
    const float *rms_att_b, *rms_ffn_b;    // (L, D)   LayerNorm biases (GPT-2)
    const float *rms_final_b;              // (D)
    const float *q_norm, *k_norm;          // (L, Dh)  Qwen3 per-head norm gains
    const float *post_att, *post_ffn;      // (L, D)   Gemma-2 post-norm gains (1+w)
    const float *pos_embedding;            // (seq_len, D)  GPT-2 learned positions
} Weights;

typedef struct Model {
    Config c;
    Weights w;
    MappedFile file;      // the checkpoint mapping (empty for in-memory models)
    float *owned;         // weights owned by the model (in-memory / synthetic / HF), else NULL
    uint64_t fingerprint; // xxh3-64 of the checkpoint bytes (HF: of config.json and of every
                          // tensor's name, dtype, shape and bytes, so shards do not change it)
    char src_dtype[8];    // HF: dtype of the stored weights ("F32", "BF16", "F16", "mixed"), else ""
    size_t src_bytes;     // HF: bytes of tensor data read (all shards), else 0
    struct ModelQ8 *q8;   // int8 weights (engine/quantize.h): the forward runs int8 when packed
    struct ModelBf16 *bf16; // bf16 weights (engine/quantize.h): the forward runs bf16 when set
} Model;

// Load a llama2.c "version 0" checkpoint (7 int32 header, fp32 tensors), memory-mapped.
// Every header field is validated and the file size must hold what the header promises.
// A quantized checkpoint (`ctrace quantize`, magic "CTRACEQ8", engine/quantize.h) is detected
// by its magic and loaded as int8 (m->q8 packed, fp32 views dequantized).
int model_load_llama2c(Model *m, const char *path);
// Open any model a user may pass: a Hugging Face model directory or its config.json
// (engine/hf_model.h), else a llama2.c / q8 checkpoint file. What every subcommand calls.
int model_open(Model *m, const char *path);
// model_open with flags.  MODEL_OPEN_INT8_ONLY: a quantized checkpoint keeps only its int8
// matrices (no fp32 copies: a quarter of the memory, faster load; a tied embedding table stays
// int8 too, model_embed dequantizing the rows it looks up) until something asks for
// fp32 (model_set_dtype f32 / bf16, model_quantize with dequant_f32; engine/quantize.h
// model_q8_file_f32).  For commands that only run the forward (generate, logits,
// bench-forward); code reading m->w's matrices directly must not get such a model.
enum { MODEL_OPEN_INT8_ONLY = 1 };
int model_open_flags(Model *m, const char *path, int flags);
// 1 when path names a Hugging Face model (a directory, or a file named config.json).
int model_path_is_hf(const char *path);
// Build a model around owned memory laid out exactly as a llama2.c file (header included).
int model_from_llama2c_bytes(Model *m, const void *bytes, size_t n, const char *name);
void model_free(Model *m);
size_t model_param_count(const Config *c);
// Write a random but numerically sane llama2.c checkpoint (for benchmarks and tests).
int model_write_random(const char *path, const Config *c, uint64_t seed);
// Validate a config (dims positive, heads divide, sizes sane); name is used in messages.
int config_validate(const Config *c, const char *name);
// "llama2.c", "llama", "qwen3", "gemma2", "gpt2".
const char *model_arch_name(int arch);
// The embedding output of token tok at position pos (what the residual stream starts with, and
// the vector of a token node in attribution): token_embedding[tok] (* embed_scale)
// (+ pos_embedding[pos]).  out (D).
void model_embed(const Model *m, int tok, int pos, float *out);
// The transcoder input site of this architecture, as circuit-tracer names it:
// "hook_resid_mid" (llama2.c, Llama, Qwen3, GPT-2) or "ln2.hook_normalized" (Gemma-2).
const char *model_tc_input_hook(const Config *c);

// ---- capture: what one forward pass records, per position -----------------------------------
// The transcoder sites, per architecture (circuit-tracer's hook points):
//   llama2.c, Llama, Qwen3, GPT-2: input = resid_mid (the residual after attention, before the
//       pre-MLP norm); output = mlp_out (the MLP output added to the residual).
//   Gemma-2: input = the pre-FFN norm's normalised input before its (1+w) gain (circuit-tracer
//       "ln2.hook_normalized" = resid_mid_true * inv_rms_ffn); output = the output of
//       post_feedforward_layernorm ("hook_mlp_out", what is added to the residual).
// resid_mid and mlp_out hold these sites for every architecture, and HOOK_RESID_MID /
// HOOK_MLP_OUT see them, so transcoder code (encoding, errors, training, interventions) is
// the same for all.  For Gemma-2 the true residual after attention is resid_pre[l+1] -
// mlp_out[l], and the MLP module's own output (before its post-norm) is mlp_raw.
// Norm factors: inv_rms_* are 1/rms (RMSNorm) or 1/sigma (LayerNorm, whose mean subtraction
// is linear and so is never frozen).
enum {
    CAP_RESID     = 1 << 0,  // resid_pre[l] (residual entering layer l), resid_mid[l], resid_final
    CAP_ATTN_OUT  = 1 << 1,  // attn_out[l]   (wo projection + bias, before any post-norm and the add)
    CAP_MLP       = 1 << 2,  // mlp_in[l] (the MLP module's input: normed, with gain), mlp_out[l]
                             // (transcoder output, above), mlp_raw[l] (Gemma-2)
    CAP_PATTERNS  = 1 << 3,  // att[l][h][p][0..p] post-softmax attention weights
    CAP_NORMS     = 1 << 4,  // every norm factor (below) and final_normed
    CAP_ALL       = 0x1f,
};

typedef struct Capture {
    int flags;
    int T;                 // capacity in positions
    int L, D, H, Hkv;
    float *resid_pre;      // (T, L+1, D)  index l = L is resid_final
    float *resid_mid;      // (T, L, D)    transcoder input (see above)
    float *attn_out;       // (T, L, D)
    float *mlp_in;         // (T, L, D)
    float *mlp_out;        // (T, L, D)    transcoder output (see above)
    float *mlp_raw;        // (T, L, D)    Gemma-2: MLP module output before its post-norm, else NULL
    float *att;            // (L, H, T, T) row p holds weights for keys 0..p, zeros after
    float *inv_rms_att;    // (T, L)       pre-attention norm
    float *inv_rms_ffn;    // (T, L)       pre-MLP norm
    float *inv_rms_final;  // (T)
    float *final_normed;   // (T, D)       input of the classifier (before any soft-cap)
    float *inv_post_att;   // (T, L)       Gemma-2 post-attention norm, else NULL
    float *inv_post_ffn;   // (T, L)       Gemma-2 post-MLP norm, else NULL
    float *inv_qnorm;      // (T, L, H)    Qwen3 per-head query norm, else NULL
    float *inv_knorm;      // (T, L, Hkv)  Qwen3 per-head key norm, else NULL
    Pool pool;             // owns the carved block (unused when the capture lives in an arena)
    MemCarve carve;        // one allocation carved by a sizes table
} Capture;

// A capture with its own carved allocation (capture_free releases it) ...
int capture_init(Capture *cap, const Config *c, int T, int flags);
// ... or carved out of a per-prompt arena (arena_reset releases it; capture_free is a no-op).
int capture_init_arena(Capture *cap, const Config *c, int T, int flags, Arena *arena);
void capture_free(Capture *cap);

// ---- run state: KV cache and scratch for one sequence ---------------------------------------
typedef struct RunState {
    int T;             // positions the cache holds (<= seq_len)
    float *x;          // (D) residual
    float *xb;         // (D)
    float *xb2;        // (D)
    float *hb;         // (Hd)
    float *hb2;        // (Hd)
    float *q;          // (H*Dh)   (xb holds max(D, H*Dh) per position: the attention output)
    float *att;        // (H, T) scores
    float *logits;     // (V)
    float *key_cache;  // (L, T, Hkv*Dh)
    float *value_cache;// (L, T, Hkv*Dh)
    float *rope_cos;   // (T, Dh/2)
    float *rope_sin;   // (T, Dh/2)
    Pool pool;         // node-local pool (libnuma when available); do not copy a RunState
    MemCarve carve;    // every buffer above, one allocation carved by a sizes table
} RunState;

int runstate_init(RunState *s, const Config *c, int T);
void runstate_free(RunState *s);

// ---- hooks and freezing: the local replacement model and interventions ---------------------
// A hook sees (and may change) a vector of one position at one site of the forward pass.
typedef enum {
    HOOK_EMBED = 0,     // x after the token embedding (layer = -1): token-node injection
    HOOK_RESID_MID,     // transcoder input: residual after attention, before the FFN norm
                        // (Gemma-2: the pre-FFN norm's normalised input before its gain; an
                        // edit there changes the MLP input, not the residual)
    HOOK_MLP_OUT,       // transcoder output before the residual add (may be edited; Gemma-2:
                        // after the post-MLP norm)
    HOOK_NSITES
} HookSite;

typedef struct ForwardHooks {
    // Frozen values come from the capture of a clean run of the same tokens (CAP_PATTERNS
    // for attention, CAP_NORMS for norms, CAP_MLP for MLP outputs).
    const Capture *frozen;
    int freeze_attn;    // use frozen post-softmax patterns (values still flow: A^T on V path)
    int freeze_norms;   // use frozen 1/rms (1/sigma) factors of EVERY norm (gains, biases and
                        // LayerNorm's mean subtraction stay): norms become linear
    int freeze_mlp;     // transcoder output := frozen mlp_out (the MLP block is blocked)
    int use_range;          // 0: freezing applies to every layer; 1: only to [layer_lo, layer_hi]
    int layer_lo, layer_hi;
    // Called in position order on the calling thread; vec has D floats.
    void (*hook)(void *ctx, HookSite site, int layer, int pos, float *vec);
    void *ctx;
} ForwardHooks;

// One position.  Reads token at pos, updates the KV cache, returns the logits (V).
// cap may be NULL; when given, this position's intermediates are written into it.
// pool may be NULL (single-threaded).  Results are byte-identical for any thread count.
float *model_forward(const Model *m, RunState *s, int token, int pos, Capture *cap, ThreadPool *pool);
float *model_forward_hooked(const Model *m, RunState *s, int token, int pos, Capture *cap,
                            ThreadPool *pool, const ForwardHooks *hk);

// Run a whole prompt (positions 0..n-1) and write the logits of every position into
// logits_out (n, V) when not NULL.  Same bits as calling model_forward position by position.
int model_forward_seq(const Model *m, RunState *s, const int *tokens, int n, float *logits_out,
                      Capture *cap, ThreadPool *pool);
// The same with hooks / freezing (hk may be NULL).  Frozen runs must cover positions the
// frozen capture holds.
int model_forward_seq_hooked(const Model *m, RunState *s, const int *tokens, int n,
                             float *logits_out, Capture *cap, ThreadPool *pool,
                             const ForwardHooks *hk);
