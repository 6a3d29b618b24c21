// train_model.h — training a Llama-family transformer from scratch on a CPU: a hand-written
// backward pass of engine/forward.c's forward (llama2.c semantics), AdamW, a token stream cut
// from a text corpus, checkpoints, and output in the llama2.c "version 0" format that every
// other ctrace command reads.
//
// Shapes (glossary in common.h): B sequences per batch, T = seq_len positions each, N = B*T
// predicted tokens, D, Hd, L, H, Hkv, Dh = D/H, V; C3 = D + 2*Hkv*Dh (q, k, v side by side).
//
// The model, per position (exactly forward.c):
//   x = token_embedding[tok]
//   per layer: xb = rmsnorm(x) * rms_att;  q, k, v = wq xb, wk xb, wv xb;  RoPE on adjacent
//              pairs;  causal softmax(q k^T / sqrt(Dh)) v (GQA: head h reads kv head
//              h / (H/Hkv));  x += wo (.);  xb = rmsnorm(x) * rms_ffn;
//              x += w2 (silu(w1 xb) * (w3 xb))
//   logits = wcls (rmsnorm(x) * rms_final);  loss = mean cross-entropy of the next tokens.
//
// The loss + gradient is written once (train_model.c) and instantiated for float (the
// trainer: kernel table products, threaded) and double (the reference the tests check
// against finite differences).  Every reduction runs in a fixed order and work is split by
// rows (tokens, weight rows, (sequence, kv head) pairs, vocabulary ranges), never inside a
// sum, so a run is byte-identical for any thread count, not only for the same one.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"
#include "engine/model.h"
#include "engine/threads.h"
#include "engine/tokenizer.h"

// ---- parameter layout: one flat vector in llama2.c file order ---------------------------------
enum {
    TM_EMB = 0,     // token_embedding (V, D)
    TM_RMS_ATT,     // (L, D)
    TM_WQ,          // (L, D, D)
    TM_WK,          // (L, Hkv*Dh, D)
    TM_WV,          // (L, Hkv*Dh, D)
    TM_WO,          // (L, D, D)
    TM_RMS_FFN,     // (L, D)
    TM_W1,          // (L, Hd, D)
    TM_W2,          // (L, D, Hd)
    TM_W3,          // (L, Hd, D)
    TM_RMS_FINAL,   // (D)
    TM_WCLS,        // (V, D); empty when the classifier is shared with the embedding
    TM_NTENSORS
};

typedef struct TmLayout {
    Config c;                   // head_dim, norm_eps, rope_theta filled in
    size_t off[TM_NTENSORS];    // first float of each tensor
    size_t len[TM_NTENSORS];    // floats of each tensor
    size_t n;                   // total floats (the trainable parameters)
} TmLayout;

// Validate c (config_validate plus a classifier choice) and lay the tensors out.  Only dim,
// hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len, shared_classifier are read;
// head_dim = D/H, norm_eps = 1e-5, rope_theta = 10000 (llama2.c) are set.
int tm_layout_init(TmLayout *lay, const Config *c, const char *name);
const char *tm_tensor_name(int k);
// 1 for tensors that get weight decay (every matrix, the embedding included; not the gains).
int tm_tensor_decays(int k);

// The initialisation: N(0, 0.02) for every matrix, wo and w2 additionally scaled by
// 1/sqrt(2L) (GPT-2's residual-projection habit), norm gains 1.  Deterministic for a seed.
void tm_init_params(const TmLayout *lay, float *params, uint64_t seed);

// ---- loss + gradient ----------------------------------------------------------------------------
// tokens: (B, T+1) per sequence: inputs tokens[0..T-1], targets tokens[1..T].
typedef struct TmCore TmCore;
// Buffers for batches of up to B_max sequences of T positions (T <= lay->c.seq_len).  pool may
// be NULL.  Memory per position: (6 D + 2 Dkv + 3 Hd + H T) floats per layer kept for the
// backward, plus about 2 V + 10 D + 7 Hd + 2 Dkv of scratch (D = 128, L = 4, Hd = 384, T = 64,
// V = 1000, B = 32: about 130 MB).
int tm_core_init(TmCore **out, const TmLayout *lay, int B_max, int T, ThreadPool *pool);
void tm_core_free(TmCore *core);
// fp32: mean cross-entropy over the B*T predictions into *loss; the full gradient (lay->n)
// into grad unless grad is NULL (then only the forward runs).  The forward gives the same
// logits, bit for bit, as model_forward_seq on the saved checkpoint.
int tm_core_loss_grad(TmCore *core, const float *params, const int32_t *tokens, int B,
                      float *grad, double *loss);
// After a call without a gradient: the logits (B*T, V) of that call, position n = b*T + t.
const float *tm_core_logits(const TmCore *core);
// The same code in double (no kernel table, plain loops): for tests.  Allocates per call.
int tm_ref_loss_grad(const TmLayout *lay, const double *params, const int32_t *tokens, int B,
                     int T, double *grad, double *loss);

// ---- corpus -------------------------------------------------------------------------------------
// Each non-blank line of the text is one document, encoded as [BOS] + tokens (run.c
// whitespace, tokenizer_encode with bos = 1, eos = 0) — llama2.c's pretokenisation: no EOS, the
// next document's BOS marks the end, which is where `ctrace generate` and `sample` stop.
// Documents are concatenated in file order; the last heldout_frac of the documents (at least
// one when the fraction is > 0 and there are two or more) form the held-out stream.
typedef struct TmCorpus {
    int32_t *tokens;        // (n) train stream [0, n_train), then held-out [n_train, n)
    size_t n, n_train;
    long docs, docs_train;  // documents (lines) in all / in the train part
    int vocab_size;         // V of the tokenizer that made it
} TmCorpus;
// Lines are encoded in parallel (pool may be NULL); the stream does not depend on threads.
// Lines end at '\n'; a trailing '\r' is dropped; lines of only spaces/tabs are skipped.
int tm_corpus_from_text(TmCorpus *c, const Tokenizer *tok, const char *text, size_t len,
                        double heldout_frac, ThreadPool *pool);
void tm_corpus_free(TmCorpus *c);

// ---- training -----------------------------------------------------------------------------------
typedef struct TrainModelOpts {
    // model
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, seq_len;  // hidden_dim 0: 3 * dim
    int shared_classifier;  // 1: logits use the token embedding (default); 0: a separate wcls
    // schedule
    int batch;              // B sequences per step
    long steps;             // optimizer steps (used when tokens == 0)
    long long tokens;       // > 0: steps = tokens / (batch * seq_len)
    double lr;              // peak learning rate
    double lr_min_frac;     // cosine decay ends at lr * lr_min_frac (0.1)
    long warmup;            // linear warm-up steps (capped at steps); -1: min(100, steps / 10)
    double weight_decay;    // AdamW decoupled decay, matrices only (0.1)
    double clip;            // global gradient-norm clip (1.0; 0 = off)
    double beta1, beta2, adam_eps;   // 0.9, 0.95, 1e-8
    uint64_t seed;          // initialisation and window sampling
    // checkpoints (training state: parameters, Adam moments, step, RNG)
    const char *checkpoint_path;   // NULL: none
    long checkpoint_every;         // steps between checkpoints (0: only at the end / at stop)
    const char *resume_path;       // continue this checkpoint (same options and corpus)
    long stop_after;               // tests: stop after this step as if killed (0 = off)
    // evaluation on the held-out stream (contiguous windows)
    long eval_every;        // steps between held-out evaluations (0: only at the end)
    long eval_tokens;       // predictions evaluated at most (default 65536)
    int progress;           // 1: progress lines on stderr
    void (*on_step)(void *ctx, long step, long steps, double loss, double lr);
    void *on_step_ctx;
} TrainModelOpts;
void train_model_opts_default(TrainModelOpts *o);

typedef struct TrainModelResult {
    long steps;             // total steps of the run (resumed runs count from 0)
    long steps_run;         // steps this call executed
    long long tokens;       // tokens trained on (steps * B * T)
    double train_loss;      // mean loss of the last (up to) 20 steps
    double first_loss;      // loss of step 1 (of this call)
    double eval_loss;       // held-out loss (NAN when there is no held-out stream)
    long eval_predictions;  // predictions it averaged
    double seconds, tok_per_s;  // this call's training time and throughput
    int stopped;            // 1 when stop_after ended the run early
} TrainModelResult;

typedef struct TrainedModel {
    TmLayout lay;
    float *params;          // (lay.n)
} TrainedModel;
void trained_model_free(TrainedModel *m);

// Train on corpus (its vocab_size is V).  pool may be NULL.  On success out holds the
// final parameters (also when stop_after stopped the run).
int train_model(const TrainModelOpts *o, const TmCorpus *corpus, ThreadPool *pool,
                TrainedModel *out, TrainModelResult *res);
// Mean held-out loss of params over contiguous windows of the stream (at most max_pred
// predictions); *n_pred receives how many were averaged (0: the stream is too short).
int train_model_eval(const TmLayout *lay, const float *params, const int32_t *stream, size_t n,
                     long max_pred, int batch, ThreadPool *pool, double *loss, long *n_pred);
// Write a llama2.c v0 checkpoint (7 int32 header, fp32 tensors, RoPE tables of (seq_len, Dh/2)
// that llama2.c skips; vocab_size < 0 in the header when the classifier is separate), atomically.
int train_model_save(const TmLayout *lay, const float *params, const char *path);
