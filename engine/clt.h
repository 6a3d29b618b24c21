// clt.h — transcoders: cross-layer (CLT) and per-layer (PLT), their file formats, and running
// them (encode, sparse decode, reconstruction).  Spec: ../shared/docs/METHOD.md §1.
//
// Shapes (glossary in common.h): L layers, D model width, F features per layer, T positions.
//
//     h_l   = W_enc[l] x_l + b_enc[l]                  W_enc[l]: (F, D), x_l read at resid_mid
//     a_l   = act(h_l)                                 JumpReLU h*[h > theta], ReLU, or TopK
//     y^_l' = b_dec[l'] + sum_{l <= l'} W_dec[l][:, l'-l]^T a_l  (+ W_skip[l'] x_l')
//
// A CLT decoder of layer l writes to layers l..L-1: W_dec[l] is (F, L-l, D).  A PLT (a
// "transcoder_set") writes only to its own layer: W_dec[l] is (F, 1, D).
//
// Memory: every fp32 parameter the Clt owns lives in one block, c->params (n_params floats),
// carved per layer in this order: W_enc, b_enc, b_dec, threshold (JumpReLU only), W_dec (when
// resident in fp32 and owned), W_skip (when present).  A trainer can treat params as one
// vector (Adam state of the same length) and call clt_save().  Loaded decoders are either
// resident fp32 (CLT_LOAD_EAGER, or an aligned F32 file: a direct view of the mapping) or
// kept memory-mapped in their stored dtype and converted one row at a time.
//
// Formats (read and write; see METHOD.md):
//   CLT dir:  W_enc_{i}.safetensors {W_enc_i (F,D), b_enc_i (F), b_dec_i (D), threshold_i (F)?,
//             W_skip_i (D,D)?}, W_dec_{i}.safetensors {W_dec_i (F, L-i, D)}; L = number of
//             W_enc_* files.  circuit-tracer applies W_skip_i as x @ W_skip_i, so the file holds
//             the transpose of our (out, in) matrix.
//   PLT dir:  layer_{i}.safetensors {W_enc (F,D), W_dec (F,D), b_enc, b_dec,
//             activation_function.threshold (F)?, W_skip (D,D)? applied as W_skip x}.
//   GemmaScope params.npz (read only): W_enc (D,F) transposed, W_dec (F,D), b_enc, b_dec,
//             threshold; a single npz is one layer; a directory of layer_{i}/params.npz, or a
//             config.yaml "transcoders:" list of local paths, is a set.
//   config.yaml: model_kind (cross_layer_transcoder | transcoder_set), feature_input_hook,
//             feature_output_hook; ctrace also writes/reads activation (relu | jump_relu |
//             topk) and top_k.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"
#include "engine/safetensors.h"

typedef enum CltKind {
    CLT_CROSS_LAYER = 0,   // model_kind: cross_layer_transcoder
    CLT_PER_LAYER = 1,     // model_kind: transcoder_set
} CltKind;

typedef enum CltActKind {
    CLT_ACT_RELU = 0,      // a = max(h, 0)
    CLT_ACT_JUMPRELU = 1,  // a = h * [h > theta_f]   (per-feature threshold)
    CLT_ACT_TOPK = 2,      // keep the k largest h (ties: lower index first), then ReLU
} CltActKind;

typedef struct CltActivation {
    CltActKind kind;
    int k;                 // TopK only
} CltActivation;

typedef struct CltLayer {
    float *W_enc;          // (F, D)
    float *b_enc;          // (F)
    float *b_dec;          // (D)
    float *threshold;      // (F) JumpReLU thresholds, else NULL
    float *W_skip;         // (D, D) (out, in): skip = W_skip x; NULL when absent
    int n_out;             // output layers per decoder row: L - l (CLT) or 1 (PLT)
    float *W_dec;          // (F, n_out, D) resident fp32 in params, or a READ-ONLY view of an
                           // F32 file mapping (never write through it unless c->params owns it), or NULL
    const uint8_t *W_dec_raw; // (F, n_out, D) in W_dec_dtype inside a mapping (lazy decoders), or NULL
    StDtype W_dec_dtype;
    char *src_enc;         // file holding the encoder, for messages ("dir/W_enc_3.safetensors")
    char *name_enc;        // its tensor name ("W_enc_3", "W_enc", "W_enc.npy")
    int enc_transposed;    // 1 when stored (D, F) (GemmaScope npz)
} CltLayer;

typedef struct Clt {
    int L, D, F;
    CltKind kind;
    CltActivation act;
    int has_skip;
    CltLayer *layers;      // (L)
    char *input_hook;      // feature_input_hook  ("hook_resid_mid" when not given)
    char *output_hook;     // feature_output_hook ("hook_mlp_out" when not given)
    char *path;            // where it came from ("(memory)" for clt_alloc)
    float *params;         // one block holding every owned fp32 tensor (see top of file)
    size_t n_params;
    StFile *files;         // mappings kept alive for lazy / viewed decoders
    int n_files;
    struct CltQ8 *q8;      // int8 encoders/decoders (engine/quantize.h clt_quantize): when set,
                           // clt_encode*, clt_decode_* run the int8 kernels
} Clt;

// ---- construction, loading, saving ----------------------------------------------------------

// An fp32 in-memory transcoder, all parameters zero (thresholds zero for JumpReLU).
// Decoders are resident fp32 in c->params.  with_skip adds a zero W_skip per layer.
int clt_alloc(Clt *c, int L, int D, int F, CltKind kind, CltActivation act, int with_skip);
void clt_free(Clt *c);

enum {
    CLT_LOAD_EAGER = 1 << 0,    // convert every decoder to resident fp32 now
    CLT_LOAD_NO_SCAN = 1 << 1,  // skip the NaN/Inf scan of memory-mapped decoders (encoders are
                                // always scanned; they are converted anyway)
};

// Load a transcoder from:
//   - a directory with W_enc_*.safetensors (CLT) or layer_*.safetensors (PLT), or
//     layer_{i}/params.npz, or a config.yaml "transcoders:" list (relative paths);
//   - a single .npz file (one layer).
// config.yaml, when present, supplies hooks, model_kind (checked against the layout) and
// activation/top_k.  Without it, JumpReLU is used when thresholds are present, else ReLU.
// Shapes are checked for consistency across layers; NaN/Inf in weights is an error naming
// the file, tensor and index.
int clt_load(Clt *c, const char *path, int flags);
// A transcoder set from explicit per-layer files (.npz or PLT .safetensors), layer i = paths[i].
int clt_load_list(Clt *c, const char *const *paths, int n, int flags);

// Write c to dir (created if missing) in its own layout (CLT or PLT) with every tensor in
// dtype, plus config.yaml.  Each file is written atomically; config.yaml last.  Stale layer
// files of the same layout with index >= L are removed; a directory holding the other
// layout is refused.
int clt_save(const Clt *c, const char *dir, StDtype dtype);

// Check the transcoder fits a model with L layers of width D; errors name the file and
// tensor: "clt/W_enc_3.safetensors: tensor W_enc_3 has shape (128, 32), expected (F, D) =
// (128, 64) for a model with D = 64".
int clt_check_model(const Clt *c, int L, int D);
// xxh3-64 of the transcoder's weights (the fp32 parameter block, then every decoder held
// outside it): graphs record it as their transcoder fingerprint.
uint64_t clt_fingerprint(const Clt *c);

// Scan every resident and mapped tensor for NaN/Inf (error names layer, tensor, index).
int clt_check_finite(const Clt *c);

const char *clt_kind_name(CltKind k);          // "cross_layer_transcoder" | "transcoder_set"
const char *clt_act_name(CltActKind k);        // "relu" | "jump_relu" | "topk"

// ---- decoders -------------------------------------------------------------------------------

// Decoder row of feature f of layer l for output layer lo (l <= lo < L for a CLT, lo == l for
// a PLT), converted to fp32 into dst (D).  Returns CT_ERR on an invalid (l, f, lo).
int clt_decoder_row(const Clt *c, int l, int f, int lo, float *dst);
// The same row when it is resident fp32 (no copy), else NULL.  No range checks.
const float *clt_decoder_row_f32(const Clt *c, int l, int f, int lo);

// ---- running --------------------------------------------------------------------------------

// Apply layer l's activation to pre-activations h (F) into a (F); a may alias h.
void clt_activate(const Clt *c, int l, const float *h, float *a);
// pre = W_enc[l] x + b_enc[l] (via simd_kernels()->matvec_f32), act = activation(pre).
// pre may be NULL (act then receives the pre-activations first and is overwritten).
void clt_encode(const Clt *c, int l, const float *x /*(D)*/, float *pre /*(F)*/, float *act /*(F)*/);
// T positions at once via matmul_f32: X (T, D) -> pre, act (T, F).  Bit-identical to T calls
// of clt_encode (the kernel table's matmul contract).  pre may be NULL.
void clt_encode_batch(const Clt *c, int l, const float *X, int T, float *pre, float *act);

// Active features of one layer at one position: indices ascending, values nonzero.
typedef struct CltSparse {
    int n;
    int cap;
    int *idx;   // (cap)
    float *val; // (cap)
} CltSparse;
int clt_sparse_init(CltSparse *s, int cap);
void clt_sparse_free(CltSparse *s);
// s <- the nonzero entries of act (F); s->cap must be >= F (or >= the number of nonzeros).
void clt_sparsify(const float *act, int F, CltSparse *s);

// y (D) += sum_i a.val[i] * W_dec[l][a.idx[i], lo - l] — one source layer's contribution to
// output layer lo (simd axpy).  row (D) is scratch for decoders not resident in fp32 (may be
// NULL when they are).  Does nothing for a PLT when lo != l.
void clt_decode_layer_add(const Clt *c, int l, const CltSparse *a, int lo, float *y, float *row);
// y (D) += contributions to output layer lo from every source layer l <= lo (acts[l] for
// l = 0..lo; a PLT uses only acts[lo]).  Bias and skip are not added.
void clt_decode_add(const Clt *c, int lo, const CltSparse *acts, float *y, float *row);
// y (D) += W_skip[l] x (D); nothing when the transcoder has no skip.  tmp (D) scratch.
void clt_skip_add(const Clt *c, int l, const float *x, float *y, float *tmp);

// Workspace for clt_reconstruct.
typedef struct CltWork {
    float *pre;         // (F)
    float *act;         // (L, F) activations of the last reconstruction
    CltSparse *sp;      // (L) active features of the last reconstruction
    float *row;         // (D)
    float *tmp;         // (D)
    int sp_n;           // L
} CltWork;
int clt_work_init(CltWork *w, const Clt *c);
void clt_work_free(CltWork *w);
// One position: x (L, D) inputs of every layer -> y (L, D) = b_dec + decoded features + skip.
// Activations are left in w->act / w->sp.
void clt_reconstruct(const Clt *c, const float *x, float *y, CltWork *w);
