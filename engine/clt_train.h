// clt_train.h — training cross-layer (and per-layer) transcoders on a CPU with the paper's
// recipe (../shared/docs/METHOD.md §1), from activations that ctrace's own forward pass
// streams out of a text corpus.
//
// Shapes (glossary in common.h): L layers, D model width, F features per layer, B rows per
// batch.  A "row" is one token position p >= 1 of one window: x (L, D) read at resid_mid and
// y (L, D) the MLP outputs.  Everything inside the trainer works in normalised units:
// x' = sx[l] * x_l, y' = sy[l] * y_l, with one scalar per layer chosen so the mean norm is
// sqrt(D); the scalars are folded back into the weights when saving.
//
// Loss of one batch (mean over its B rows), with n_{l,i} = ||W_dec[l][i]|| (all output layers):
//
//     rec      = sum_l ||y^'_l - y'_l||^2
//     sparsity = lambda   * sum_{l,i} tanh(c * n_{l,i} * a_{l,i})
//     preact   = lambda_p * sum_{l,i} ReLU(theta_{l,i} - h_{l,i}) * n_{l,i}
//
//     h = W_enc x' + b_enc,  a = h * [h > theta],  theta = exp(log_theta)     (JumpReLU)
//     y^'_lo = b_dec[lo] + sum_{l <= lo} W_dec[l][:, lo-l]^T a_l   (a PLT: only l == lo)
//
// Gradients: dL/dh = [h > theta] dL/da (a.e. exact), and for the threshold the
// straight-through estimator dL/dtheta = -(theta/eps) rect((h - theta)/eps) dL/da with
// rect(u) = [|u| < 1/2] (the derivative of the jump of height theta at h = theta, a Dirac,
// replaced by a box of width eps).  The preact term is differentiated exactly.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"
#include "engine/model.h"
#include "engine/threads.h"
#include "engine/tokenizer.h"

#define CLT_TRAIN_MAX_LAYERS 256

// ---- parameter layout -----------------------------------------------------------------------
// One flat vector of every trainable parameter, carved per layer in this order.
enum { CP_W_ENC = 0, CP_B_ENC, CP_LOG_THETA, CP_B_DEC, CP_W_DEC, CP_NKINDS };

typedef struct CltParamLayout {
    int L, D, F;
    int plt;                 // 1: per-layer transcoder (decoders write only their own layer)
    size_t n;                // total parameters
    size_t *off;             // (L, CP_NKINDS) offsets: W_enc (F, D), b_enc (F), log_theta (F),
                             //                         b_dec (D), W_dec (F, n_out, D)
} CltParamLayout;

int clt_layout_init(CltParamLayout *lay, int L, int D, int F, int plt);
void clt_layout_free(CltParamLayout *lay);
static inline size_t clt_layout_off(const CltParamLayout *lay, int l, int kind) {
    return lay->off[(size_t)l * CP_NKINDS + (size_t)kind];
}
// Output layers written by layer l's decoders: L - l (CLT) or 1 (PLT).
static inline int clt_layout_nout(const CltParamLayout *lay, int l) { return lay->plt ? 1 : lay->L - l; }

typedef struct CltLossHyper {
    double lambda;     // sparsity coefficient (already ramped for this step)
    double c;          // tanh sharpness
    double lambda_p;   // pre-activation (dead feature) coefficient
    double eps;        // STE bandwidth for the threshold (normalised units of h)
} CltLossHyper;

// What one loss evaluation measured (means over the batch rows).
typedef struct CltStepStats {
    double loss, rec, sparsity, preact;
    double rec_l[CLT_TRAIN_MAX_LAYERS];   // ||y^' - y'||^2 per layer
    double var_l[CLT_TRAIN_MAX_LAYERS];   // ||y' - mean_batch y'||^2 per layer
    double l0_l[CLT_TRAIN_MAX_LAYERS];    // active features per row, per layer
    double l0;                            // mean over layers of l0_l
    double nmse;                          // mean over layers of rec_l / var_l
    long entries;                         // (row, feature) pairs touched by the backward
} CltStepStats;

// ---- the production loss + gradient (fp32, threaded, sparse) --------------------------------
typedef struct CltCore CltCore;

// B_max: the largest batch passed later.  pool may be NULL; results do not depend on the
// number of threads (work is split by feature or by row, never inside a reduction).
int clt_core_init(CltCore **out, const CltParamLayout *lay, int B_max, ThreadPool *pool);
void clt_core_free(CltCore *core);
// X, Y: (B, L, D) normalised rows.  Writes the full gradient (lay->n) into grad and fills st
// (may be NULL).  Returns CT_OK, or CT_ERR when B is out of range or memory runs out.
int clt_core_loss_grad(CltCore *core, const float *params, const CltLossHyper *hp,
                       const float *X, const float *Y, int B, float *grad, CltStepStats *st);

// ---- the fp64 reference (dense loops, no tricks): for tests ---------------------------------
// Same loss and gradient as clt_core_loss_grad, in double.  When surr_log_theta0 (lay->n, or
// NULL) is given, the threshold enters through the finite-difference surrogate instead:
//     a = h [h > theta0] + theta0 * (ramp((h - theta)/eps) - ramp((h - theta0)/eps)),
//     ramp(u) = clamp(u + 1/2, 0, 1),  theta0 = exp(surr_log_theta0[...]) held fixed,
// whose value equals the JumpReLU at theta = theta0 and whose exact derivatives there are
// the STE formulas (see the comment in clt_train.c).  Returns the loss.
double clt_ref_loss_grad(const CltParamLayout *lay, const double *params, const CltLossHyper *hp,
                         const double *X, const double *Y, int B, const double *surr_log_theta0,
                         double *grad, CltStepStats *st);

// ---- corpus generation ------------------------------------------------------------------------
typedef struct CltSampleOpts {
    long tokens;        // stop once this many story tokens (BOS not counted) are written
    uint64_t seed;      // story k samples with seed = mix(seed, k): output independent of threads
    float temperature;  // 1.0
    float topp;         // 0.9
    int max_len;        // positions per story including BOS (<= seq_len); default 256
    int threads;        // <= 0: all cores
    int progress;       // 1: progress on stderr
} CltSampleOpts;
void clt_sample_opts_default(CltSampleOpts *o);
// Generate stories from BOS until BOS (or EOS, or max_len) and write them to out_path
// atomically, one story per paragraph: stories are separated by a blank line, runs of
// newlines inside a story are collapsed to one, control bytes other than newline/tab are
// dropped.  *n_tokens / *n_stories (may be NULL) receive what was written.
int clt_sample_corpus(const Model *m, const Tokenizer *tok, const CltSampleOpts *o,
                      const char *out_path, long *n_tokens, long *n_stories);

// ---- the training run --------------------------------------------------------------------------
typedef struct CltTrainOpts {
    const char *model_path, *tokenizer_path, *corpus_path, *out_dir;
    int features;           // F per layer (required)
    int plt;                // 1: train a per-layer transcoder (transcoder_set)
    long long tokens;       // training rows (token positions); steps = tokens / batch
    int batch;              // B rows per step (default 1024)
    double lr;              // Adam learning rate (default 2e-4)
    double lambda;          // final sparsity coefficient (ramped linearly from 0)
    double c;               // tanh sharpness (4)
    double lambda_p;        // preact coefficient (3e-6)
    double eps;             // STE bandwidth (normalised units)
    double theta_init;      // initial threshold (0.03)
    double init_frac;       // b_enc set so each feature fires on this fraction of rows
    double warmup_frac;     // linear lr warm-up over this fraction of the steps
    double decay_frac;      // linear lr decay to 0 over the last fraction of the steps
    double lambda_ramp;     // lambda reaches its final value after this fraction of the steps
    int ctx;                // window length in tokens (BOS first), 2..seq_len
    int buffer_rows;        // shuffle ring size (rows), >= batch
    int reuse;              // each row is drawn about `reuse` times (refill B/reuse per step)
    uint64_t seed;
    long checkpoint_every;  // steps between checkpoints (0: only at the end)
    int resume;             // continue from out_dir/checkpoint.bin
    int threads;            // <= 0: all cores
    long stop_after;        // tests: stop after this step as if killed (checkpoint written); 0 = off
    int progress;           // 1: progress lines on stderr
    int save_each_checkpoint; // 1: also write the transcoder files at each checkpoint
    const char *dtype;      // "f32" | "q8": the model's weights (engine/quantize.h); NULL: the
                            // checkpoint's own.  The transcoder being trained is always fp32.
    // Called after every step with that step's statistics (tests, logging); may be NULL.
    void (*on_step)(void *ctx, long step, long steps, const CltStepStats *st);
    void *on_step_ctx;
} CltTrainOpts;
void clt_train_opts_default(CltTrainOpts *o);
// The whole run: load model, tokenizer and corpus, stream activations, train, checkpoint,
// and write out_dir (circuit-tracer layout + config.yaml + checkpoint.bin).
int clt_train_run(const CltTrainOpts *o);

// Name of the checkpoint file inside out_dir.
#define CLT_CHECKPOINT_NAME "checkpoint.bin"
