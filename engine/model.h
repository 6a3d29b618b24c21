// model.h — a Llama-family transformer: configuration, weights, forward pass with KV cache,
// and the per-prompt capture of every intermediate that attribution needs.
//
// Shapes use the glossary in common.h: T, D, Hd (hidden), L, H, Hkv, Dh, V.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"
#include "engine/mem.h"
#include "engine/threads.h"

typedef struct Config {
    int dim;          // D
    int hidden_dim;   // Hd
    int n_layers;     // L
    int n_heads;      // H
    int n_kv_heads;   // Hkv   (H % Hkv == 0)
    int vocab_size;   // V     (always positive here; see shared_classifier)
    int seq_len;      // maximum context
    int head_dim;     // Dh = D / H
    int shared_classifier; // 1: logits use the token embedding; 0: a separate wcls follows
    float norm_eps;   // 1e-5 for llama2.c
    float rope_theta; // 10000 for llama2.c
} Config;

// Pointers into the read-only mapping (or into owned memory for synthetic models).
typedef struct Weights {
    const float *token_embedding; // (V, D)
    const float *rms_att;         // (L, D)
    const float *wq;              // (L, H*Dh, D)
    const float *wk;              // (L, Hkv*Dh, D)
    const float *wv;              // (L, Hkv*Dh, D)
    const float *wo;              // (L, D, H*Dh)
    const float *rms_ffn;         // (L, D)
    const float *w1;              // (L, Hd, D)   gate
    const float *w2;              // (L, D, Hd)   down
    const float *w3;              // (L, Hd, D)   up
    const float *rms_final;       // (D)
    const float *wcls;            // (V, D)   == token_embedding when shared
} Weights;

typedef struct Model {
    Config c;
    Weights w;
    MappedFile file;      // the checkpoint mapping (empty for in-memory models)
    float *owned;         // weights owned by the model (in-memory / synthetic), else NULL
    uint64_t fingerprint; // xxh3-64 of the checkpoint bytes
    struct ModelQ8 *q8;   // int8 weights (engine/quantize.h): the forward runs int8 when packed
} Model;

// Load a llama2.c "version 0" checkpoint (7 int32 header, fp32 tensors), memory-mapped.
// Every header field is validated and the file size must hold what the header promises.
// A quantized checkpoint (`ctrace quantize`, magic "CTRACEQ8", engine/quantize.h) is detected
// by its magic and loaded as int8 (m->q8 packed, fp32 views dequantized).
int model_load_llama2c(Model *m, const char *path);
// Open any model a user may pass: a Hugging Face model directory or its config.json
// (engine/hf_model.h), else a llama2.c / q8 checkpoint file. What every subcommand calls.
int model_open(Model *m, const char *path);
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

// ---- capture: what one forward pass records, per position -----------------------------------
enum {
    CAP_RESID     = 1 << 0,  // resid_pre[l] (residual entering layer l), resid_mid[l], resid_final
    CAP_ATTN_OUT  = 1 << 1,  // attn_out[l]   (wo projection, before the residual add)
    CAP_MLP       = 1 << 2,  // mlp_in[l] (normed, with gain), mlp_out[l] (w2 output)
    CAP_PATTERNS  = 1 << 3,  // att[l][h][p][0..p] post-softmax attention weights
    CAP_NORMS     = 1 << 4,  // inv_rms_att[l], inv_rms_ffn[l], inv_rms_final, final_normed
    CAP_ALL       = 0x1f,
};

typedef struct Capture {
    int flags;
    int T;                 // capacity in positions
    int L, D, H;
    float *resid_pre;      // (T, L+1, D)  index l = L is resid_final
    float *resid_mid;      // (T, L, D)    residual after attention, before the FFN norm
    float *attn_out;       // (T, L, D)
    float *mlp_in;         // (T, L, D)
    float *mlp_out;        // (T, L, D)
    float *att;            // (L, H, T, T) row p holds weights for keys 0..p, zeros after
    float *inv_rms_att;    // (T, L)
    float *inv_rms_ffn;    // (T, L)
    float *inv_rms_final;  // (T)
    float *final_normed;   // (T, D)
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
    float *q;          // (H*Dh)
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
    HOOK_RESID_MID,     // residual after attention, before the FFN norm (transcoder input)
    HOOK_MLP_OUT,       // MLP output before the residual add (transcoder output, may be edited)
    HOOK_NSITES
} HookSite;

typedef struct ForwardHooks {
    // Frozen values come from the capture of a clean run of the same tokens (CAP_PATTERNS
    // for attention, CAP_NORMS for norms, CAP_MLP for MLP outputs).
    const Capture *frozen;
    int freeze_attn;    // use frozen post-softmax patterns (values still flow: A^T on V path)
    int freeze_norms;   // use frozen 1/rms factors (gains stay): norms become linear
    int freeze_mlp;     // MLP output := frozen mlp_out (the MLP is blocked)
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
