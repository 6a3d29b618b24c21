// quantize.h — int8 weights for the model and the transcoder (`--dtype f32|q8`,
// `--clt-dtype f32|q8`), the quantized checkpoint written by `ctrace quantize`, and bf16
// weights for the model (`--dtype bf16|bf16dot`, at the end of this header).
//
// What q8 means here (formats in quant/q8.h):
//   - every matrix the forward pass multiplies (wq wk wv wo w1 w2 w3 per layer, and the
//     classifier) is BlockQ8 int8 with one fp32 scale per 32 weights, repacked at load time
//     into 16-row panels (one sequential stream per matvec), optionally placed per --numa;
//   - activations stay fp32; each product quantizes its input rows to int8 blocks on the fly
//     (q8_act_quantize), runs the int8 kernel, and writes fp32 outputs;
//   - norms, RoPE, attention (KV cache) and the residual stream stay fp32;
//   - the token-embedding lookup reads the same values as the classifier when they are tied
//     (the dequantized int8 rows), the fp32 table when untied — so a `ctrace quantize` file
//     and `--dtype q8` on the fp32 checkpoint give the same logits bit for bit.
//   Transcoder (clt_quantize): encoders W_enc[l] (F, D) packed like the model's matrices
//   (encode_q8: bias and JumpReLU/ReLU threshold fused), decoders W_dec[l] (F, n_out, D) as
//   BlockQ8 rows read sparsely (decode_rows_q8).  W_skip and biases stay fp32.
//
// Quantized checkpoint (little endian):
//     0  char     magic[8] = "CTRACEQ8"
//     8  uint32   version = 1
//    12  uint32   header bytes = 64
//    16  int32    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//                 (llama2.c's header: vocab_size < 0 means an untied classifier)
//    44  uint32   block = 32 (values per BlockQ8)
//    48  uint64   xxh3-64 of the fp32 checkpoint it was made from (0 if unknown)
//    56  uint32   flags = 0, uint32 reserved = 0
//    64  fp32     rms_att (L, D), rms_ffn (L, D), rms_final (D)
//        fp32     token_embedding (V, D)                  untied only
//        BlockQ8  token_embedding (V, D)                  tied only (it is the classifier)
//        BlockQ8  wq (L*D, D), wk (L*Dkv, D), wv (L*Dkv, D), wo (L*D, D), w1 (L*Hd, D),
//                 w2 (L*D, Hd), w3 (L*Hd, D), then wcls (V, D) when untied
//   (a BlockQ8 matrix (R, C) is R rows of ceil(C/32) blocks of 36 bytes).  The size must match
//   exactly.  model_load_llama2c detects the magic and loads such a file: the stored blocks
//   are repacked as they are (never re-quantized) and dequantized once into fp32 for the
//   readers that need fp32 (embedding lookup, attribution).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/clt.h"
#include "engine/mem.h"
#include "engine/model.h"
#include "engine/numa.h"
#include "quant/q8.h"

// q8: int8 weights, activations at 16 bits as two int8 digits (quant/q8.h); q8a8: the same
// int8 weights with 8-bit activations (half the int8 work of batched products, less accurate).
typedef enum { CT_DTYPE_F32 = 0, CT_DTYPE_Q8 = 1, CT_DTYPE_BF16 = 2, CT_DTYPE_BF16DOT = 3, CT_DTYPE_Q8A8 = 4 } CtDtype;
const char *ct_dtype_name(CtDtype d);                    // "f32" | "q8" | "bf16" | "bf16dot" | "q8a8"
int ct_dtype_parse(const char *s, CtDtype *out);         // error names the value and choices
static inline int ct_dtype_is_q8(CtDtype d) { return d == CT_DTYPE_Q8 || d == CT_DTYPE_Q8A8; }
// Activation digits of an int8 dtype: 2 for q8, 1 for q8a8.
static inline int ct_dtype_digits(CtDtype d) { return d == CT_DTYPE_Q8A8 ? 1 : 2; }

typedef struct QuantOpts {
    NumaMode numa;       // placement of the packed weights (default NUMA_OFF); call numa_setup
                         // on the same pool first so "local" first-touches on the right nodes
    ThreadPool *pool;    // pack in parallel with the forward's split (NULL: on the caller)
    int dequant_f32;     // 1: the fp32 weight pointers are redirected to dequantized int8
                         // values, so fp32 readers (attribution's backward, interventions)
                         // see exactly the weights the int8 forward multiplies.  Model: off
                         // by default (costs an fp32 copy); transcoder: on by default
                         // (clt_quantize overwrites its owned fp32 parameters in place).
    int act_digits;      // activations: 2 (16-bit as two int8 digits, the default) or 1 (8-bit)
} QuantOpts;
// Defaults: numa off, no pool, dequant_f32 = -1 ("the default of each function").
QuantOpts quant_opts_default(void);

// ---- model ---------------------------------------------------------------------------------
enum { Q8M_WQ = 0, Q8M_WK, Q8M_WV, Q8M_WO, Q8M_W1, Q8M_W2, Q8M_W3, Q8M_PER_LAYER };

typedef struct ModelQ8 {
    int L;
    Q8Panels *mats;        // (L * Q8M_PER_LAYER) packed views into copy[0]: layer l, matrix k
    Q8Panels cls;          // the classifier (V, D)
    uint8_t *copy[CT_NUMA_MAX_NODES];  // packed copies: [0] primary; replicate: [n] on node n
    int ncopies;           // 0: not packed (the fp32 path runs)
    int act_digits;        // activation digits of every product: 2 (q8) or 1 (q8a8)
    size_t bytes;          // bytes of one copy
    NumaMode numa;
    Pool pools[CT_NUMA_MAX_NODES];     // one per copy (do not move a ModelQ8)
    // Quantized checkpoint: the stored BlockQ8 rows inside m->file (NULL otherwise).
    const BlockQ8 *src_emb;            // (V, D) tied only
    const BlockQ8 *src[Q8M_PER_LAYER]; // (L * rows, cols) each
    const BlockQ8 *src_cls;            // (V, D) untied only
    uint64_t src_fingerprint;          // of the fp32 checkpoint it came from
    // Quantized checkpoint: the fp32 matrices (wq .. w3, the untied classifier) dequantized
    // from src on first need (model_q8_file_f32); NULL until then.
    float *file_f32;
    // fp32 views this module owns: dequantized embedding (tied) or every weight (dequant_f32)
    float *f32_owned;
    size_t f32_owned_n;
    Weights w_orig;                    // m->w before any redirection (restored by dequantize)
    int redirected;
} ModelQ8;

// Build (or rebuild, e.g. with another --numa) the packed int8 weights of m.  From a quantized
// checkpoint the stored blocks are repacked unchanged; from fp32 weights each row is quantized
// (q8_quantize_row).  o == NULL: defaults.  Afterwards the forward pass runs int8.
int model_quantize(Model *m, const QuantOpts *o);
// Back to the fp32 path (packed copies freed).  A model loaded from a quantized checkpoint
// keeps its dequantized fp32 weights, so this runs fp32 arithmetic on the int8 values.
void model_dequantize(Model *m);
// --dtype: q8 -> model_quantize (re-packs with o), bf16 / bf16dot -> model_to_bf16 (with
// f32 views when o->dequant_f32 == 1), f32 -> back to fp32 from either.
int model_set_dtype(Model *m, CtDtype d, const QuantOpts *o);
// 1 when the forward pass of m runs int8.
int model_is_q8(const Model *m);
// The dtype the forward of m runs: f32, q8, bf16 or bf16dot.
CtDtype model_dtype(const Model *m);
// Everything of m->q8 and m->bf16 (called by model_free).
void model_q8_free(Model *m);

// Write m as a quantized checkpoint (atomically).  From a quantized checkpoint the stored
// blocks are copied; otherwise every matrix is quantized row by row.
int model_save_q8(const Model *m, const char *path);
// 1 if data starts with the quantized checkpoint magic.
int model_file_is_q8(const uint8_t *data, size_t size);
// Load a quantized checkpoint already mapped in m->file (model_load_llama2c calls this when
// the magic matches; name is for messages).  m->c, m->q8, and m->w: norms and the embedding
// table in fp32 (owned; a tied table dequantized), the matrices dequantized to fp32 now when
// f32 is 1, else left NULL until model_q8_file_f32 (the int8 forward never reads them: a
// 110M-parameter checkpoint then holds ~0.2 GB instead of ~0.7 GB).  Every block scale is
// checked finite either way.
int model_load_q8_mapped(Model *m, const char *name, int f32);
// The fp32 matrices of a quantized checkpoint loaded without them: dequantized now (once).
// CT_OK at once for any other model.  model_set_dtype (f32, bf16), model_to_bf16 and
// model_quantize with dequant_f32 call it.
int model_q8_file_f32(Model *m);

// The copy of packed bytes p (inside copy[0]) that the calling thread should read: its
// node's replica under --numa replicate, else p itself.
const uint8_t *model_q8_local(const ModelQ8 *q, const uint8_t *p);

// ---- transcoder ----------------------------------------------------------------------------
typedef struct CltQ8 {
    int L, D, F;
    Q8Panels *enc;         // (L) packed W_enc[l] (F, D)
    BlockQ8 **dec;         // (L) W_dec[l] as BlockQ8 rows (F * n_out, D)
    size_t dec_nb;         // blocks per decoder row = ceil(D / 32)
    uint8_t *enc_mem;      // one allocation for every packed encoder
    BlockQ8 *dec_mem;      // one allocation for every decoder
    float *neg_inf;        // (F) -inf thresholds: TopK takes the raw pre-activations
    int act_digits;        // encoder activations: 2 (16-bit, q8) or 1 (8-bit, q8a8)
    Pool pool;
} CltQ8;

// Quantize the transcoder: encoders packed, decoders as BlockQ8 rows (lazy stored-dtype
// decoders are converted one row at a time).  With dequant_f32 (the default here) the owned
// fp32 W_enc and resident W_dec are overwritten with the dequantized int8 values, so
// clt_decoder_row and friends agree with the int8 encode/decode; read-only decoder views
// (mapped files) are left as they are.  Afterwards clt_encode*, clt_decode_* run int8.
int clt_quantize(Clt *c, const QuantOpts *o);
// Back to fp32 arithmetic (the fp32 parameters stay as they are).
void clt_dequantize(Clt *c);
int clt_set_dtype(Clt *c, CtDtype d, const QuantOpts *o);
// The dtype the transcoder runs: f32, q8 or q8a8.
CtDtype clt_dtype(const Clt *c);

// The int8 paths of clt.c (called there when c->q8 is set).  X (T, D) -> pre, act (T, F).
void clt_q8_encode(const Clt *c, int l, const float *X, int T, float *pre, float *act);
void clt_q8_decode_layer_add(const Clt *c, int l, const CltSparse *a, int lo, float *y);
// One feature's pre-activation h = W_enc[l][f] x + b_enc[f] (x (D)), bit-identical to what
// clt_q8_encode gives for that feature (interventions and validation read single features).
// NaN when the activation scratch cannot be allocated.
float clt_q8_feature_pre(const Clt *c, int l, int f, const float *x);

// ---- bf16 weights (--dtype bf16 | bf16dot) ---------------------------------------------------
// What bf16 means here:
//   - every matrix the forward multiplies (wq wk wv wo w1 w2 w3 per layer, and the classifier)
//     is a bf16 copy of the fp32 weights, rounded to nearest even: exact for a bf16 checkpoint
//     (the Hugging Face loader widened it to fp32 without loss).  Decode streams half the bytes.
//   - bf16 (the default bf16 mode): products through matvec/matmul_bf16w (simd.h), the weights
//     widened in registers and summed in the fp32 kernels' order, so the logits are those of
//     the fp32 forward on the rounded weights, bit for bit: a bf16 checkpoint gives the same
//     logits with --dtype bf16 as with f32, and the bf16 goldens (hf-tiny/llama/bf16) hold.
//   - bf16dot: matvec/matmul_bf16dot, VDPBF16PS on CPUs with AVX512_BF16 (elsewhere scalar.c's
//     loop: the same bits, ~30x slower).  Activations are rounded to bf16 inside every product
//     (relative error <= 2^-9 each), so it is opt-in: on the tiny random hf-tiny Llama the
//     logits move by 0.2 (scale 16; the goldens allow 1e-4) and two argmaxes flip; on the
//     trained stories260K the mean KL to the fp32 goldens is 5e-5 (bf16: 4e-5), top-1 intact.
//     What it buys is prefill: ~1.6x bf16's products (2x the multiply rate of FMA); decode is
//     DRAM-bound on the same bf16 bytes either way (measured on a 110M model, Zen 5: prefill
//     ~1030 vs ~630 tok/s, decode ~94 vs ~85 tok/s, f32 ~430 / ~33; bench/run.sh).
//   - norms, embedding lookup, attention (KV cache), residual stream stay fp32.  The token
//     embedding lookup reads the values the classifier multiplies when they are tied (rounded
//     to bf16), the fp32 table when untied — as q8 does.
//   - fp32 matrices.  With f32 views (QuantOpts.dequant_f32 == 1: attribution, interventions)
//     the fp32 pointers show exactly the bf16 values.  Without, the fp32 matrix pointers are
//     NULL and their pages go back to the OS (madvise), so a bf16 model holds ~half the memory.
//     Weights in owned memory (Hugging Face models, dequantized int8) are rounded in place;
//     back in f32 (model_set_dtype) the bf16 copies are widened into place, so they keep the
//     bf16 values (exact for a bf16 checkpoint).  Weights in a read-only mapping (llama2.c
//     files) are untouched: views are owned widened copies, and f32 gets the mapping back.
typedef struct ModelBf16 {
    int dot;                          // 1: bf16dot kernels; 0: bf16w
    int views;                        // 1: the fp32 matrix pointers show the bf16 values
    uint16_t *mats[Q8M_PER_LAYER];    // (L, rows, cols) each, wq .. w3 (NULL: no w3, GPT-2)
    size_t per_layer[Q8M_PER_LAYER];  // rows * cols of one layer's matrix k
    uint16_t *cls;                    // (V, D) the classifier
    uint16_t *mem;                    // one allocation holding all of them (from pool)
    size_t mem_bytes;
    Pool pool;                        // 2 MiB aligned, huge pages, per --numa (do not move)
    size_t bytes;                     // bf16 bytes a decode step streams (every matrix once)
    Weights w_orig;                   // m->w before the conversion
    int in_place;                     // 1: the fp32 weights are owned memory, rounded in place
    int released;                     // 1: the fp32 matrix pages were given back (in place only)
    float *f32_owned;                 // mapped weights: widened views / rounded tied embedding
    size_t f32_owned_n;
} ModelBf16;

// Convert m's forward matrices to bf16 (dot: the bf16dot kernels), dropping any int8 packing
// first.  o == NULL: defaults (no f32 views).  Afterwards the forward runs bf16.
int model_to_bf16(Model *m, int dot, const QuantOpts *o);
// Back to the fp32 path (see above for what the fp32 weights then hold).
void model_from_bf16(Model *m);
// 1 when the forward pass of m runs bf16 (either mode).
int model_is_bf16(const Model *m);

// ---- products for other modules -----------------------------------------------------------
// A thread-local activation buffer (freed at thread exit): the scratch for on-the-fly
// activation quantization in any thread.
Q8ActBuf *q8_tls_actbuf(void);
