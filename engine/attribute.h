// attribute.h — attribution rows by batched transposed-linear sweeps over the local replacement
// model (METHOD §2), target selection, the feature budget, and the Graph they fill.
//
// Columns of a row ("source space", SRC = n_active + L*T + T):
//     [ active features of the Replacement, in its (l, p, f) order | errors l*T + p | tokens p ]
// Entry (t, s) is the change of target t's pre-activation (feature target) or demeaned logit
// (logit target) caused by source s's contribution in the frozen linear model:
//     feature s = (l_s, p_s, f_s):  a_s * W_dec[l_s][f_s][l' - l_s] added to mlp_out[l'](p_s), l' >= l_s
//     error (l, p):                 eps_l(p) added to mlp_out[l](p)
//     token p:                      the embedding output at p (model_embed)
//
// The algorithm (one sweep = up to B targets; shapes in elements):
//
//   G      (P, B, D)    gradient of every target wrt the residual stream at positions 0..P-1,
//                       P = 1 + max target position (causality: nothing after it matters)
//   GO     (P, B, H*Dh) gradient at the attention's wo input
//   Slots: position p uses rows [0, n_slot[p]) of G[p] and GO[p] for the targets alive there
//   (p <= p_b, layer <= l_b); a target joins positions 0..p_b when the sweep reaches its layer,
//   so no product touches a row that is still zero (attribute_sweep.h).
//
//   G[T-1][b] = inv_rms_final(T-1) * rms_final ⊙ u_b           logit rows (u_b = W_U[v] - mean_u W_U[u])
//   for l = L-1 .. 0:
//     per position p (threads take positions p = task, task + nt, ...):
//       S  = [eps_l(p); W_dec[l_s][f][l - l_s] for active (l_s <= l, p, f)]   (n_lp, D), gathered
//            ~128 KiB at a time so the copy and the product meet in L2
//       Y  = G[p][alive above l] S^T                           (nr, n_lp)   kernel matmul
//       row[b][err(l,p)] = Y[b,0];  row[b][feat s] += a_s Y[b,j]            sources read here
//       G[p][alive above l] += G W_skip[l]                     (skip stays linear; only with skip)
//       G[p][b] += W_enc[l][f_b]  for feature targets (l, p, f_b)           injected at resid_mid[l]
//       GO[p] = G[p] Wo[l]                                     (n_slot[p], H*Dh)  WoT made once
//     per block of 8 positions t (threads take blocks):
//       GV[t][b] = sum_{p >= t} sum_h A[l,h,p,t] GO[p][b][h] -> kv head of h   (n_slot[t], Hkv*Dh)
//       G[t] += inv_rms_att(t,l) * (GV (rms_att[l] ⊙ Wv[l]))   WvT (with the gain) made once
//   row[b][tok p] = <G[p][b], emb(p)>                              emb = model_embed(tok_p, p)
//
// Per architecture (engine/model.h), the same sweep with a few frozen factors more:
//   Gemma-2   GO[p] = inv_post_att(p,l) * G[p] (post_att[l] ⊙ Wo[l])   (post-attention norm; the
//             gain is folded into WoT); the transcoder input is x_l = inv_rms_ffn(p,l) * resid_mid,
//             so feature targets and the skip are scaled by it; sources write after the post-MLP
//             norm, straight into the residual (no factor).
//   GPT-2     LayerNorm: the value-path gradient and the logit vectors are centred (the mean
//             subtraction, transposed) before the frozen 1/sigma.
//   all       biases are constants (no edges); the token node's vector is the embedding output
//             (model_embed: * sqrt(D) for Gemma-2, + the position embedding for GPT-2); logit
//             targets are the logits before any final soft-cap.
//
// Cost per target row ~ sum over layers below it and positions p <= p_b of
// 2 D (2 H*Dh + n_lp) flops (+ the mixing, O(P) per position); the decoder rows of a source
// block are read once per sweep, so larger B amortises them (attribute_auto_batch).
//
// The MLPs are blocked, so the gradient wrt mlp_out[l] equals the gradient wrt the residual
// after layer l: the sources of layer l are read before layer l's own targets are injected,
// which makes same-layer feature->feature edges exactly 0 (decoders write after the encoder
// reads).  Every product goes through the kernel table's matmul (fp32) or a double loop
// (--fp64: the same sweep instantiated with double; engine/attribute_sweep.h is the template).
// Threads split positions statically and each output element is computed by the same code in
// the same order, so results are byte-identical for any thread count, and a row is
// bit-identical whatever batch it was computed in.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/graph.h"
#include "engine/replacement.h"
#include "engine/threads.h"

// ---- low level: rows of explicit targets ------------------------------------------------------
typedef enum { TARGET_FEATURE = 0, TARGET_LOGIT = 1 } TargetKind;

typedef struct AttribTarget {
    int kind;        // TargetKind
    // feature target: its (layer, pos, feature); the injected vector is W_enc[layer][feature]
    int layer, pos, feature;
    // logit target at the last position: token a; b >= 0 makes it logit_a - logit_b,
    // b < 0 the demeaned logit_a - mean_u logit_u
    int tok_a, tok_b;
} AttribTarget;

typedef struct Sweeper Sweeper;

// Per-run state: transposed weight copies (float or double), patterns transposed for the
// backward pass, per-thread scratch, and the (P, B, D) gradient buffers for max_batch rows.
int sweeper_init(Sweeper **out, const Replacement *r, int max_batch, int fp64, ThreadPool *pool);
void sweeper_free(Sweeper *sw);
// Number of source columns: n_active + L*T + T.
size_t sweeper_ncols(const Sweeper *sw);
// Rows of n targets (any n; processed max_batch at a time, in the given order).  Row i is
// written to rows32[i] (fp32 sweeper) or rows64[i] (fp64 sweeper), sweeper_ncols() entries;
// the other pointer array must be NULL.  Targets are validated (ranges, vocabulary).
int sweeper_rows(Sweeper *sw, const AttribTarget *t, int n, float *const *rows32,
                 double *const *rows64);

// ---- logit targets ---------------------------------------------------------------------------
// Salient logits of the real last-position distribution (softmax in double): tokens by
// probability descending (ties: lower id), until the cumulative probability >= min_prob,
// at most max_k.  ids/probs need max_k entries.  Returns the count (>= 1) or -1.
int attribute_salient_logits(const Replacement *r, int max_k, double min_prob, int *ids,
                             double *probs);

// ---- partial influence (the budget's ranking) ------------------------------------------------
// I (n_active): METHOD §3's influence of every active feature on the logits using only the rows
// computed so far (logit rows, and feat_rows[s] for visited features s, NULL otherwise),
// A^ = |A| / max(rowsum, 1e-10) with the given row sums (den).  One pass in reverse
// topological order (logits, then features by layer descending) — equal to the series
// w A^ + w A^2 + ... without the CSR that prune_rows_influence builds.
void attribute_partial_influence(const Replacement *r, int K, float *const *logit_rows,
                                 const double *logit_w, const double *logit_den,
                                 float *const *feat_rows, const double *feat_den, double *I);

// ---- the whole graph -------------------------------------------------------------------------
typedef struct AttribOptions {
    int max_feature_nodes;    // M >= 1; features beyond the budget are not nodes.  INT32_MAX: all
    int batch;                // rows per sweep; 0 = attribute_auto_batch()
    int update_interval;      // batches between partial-influence re-rankings (>= 1; 4)
    int max_logits;           // salient logits: at most this many (10)
    double logit_prob;        // salient logits: cumulative probability (0.95)
    const int *target_tokens; // explicit logit targets (n_target_tokens > 0) instead of salient
    int n_target_tokens;
    int diff_a, diff_b;       // both >= 0: one target logit_a - logit_b (overrides the above)
    int fp64;                 // sweeps in double (rows rounded to fp32 into the graph)
    ThreadPool *pool;
    // Called after every batch from the calling thread: rows done, rows planned.
    void (*progress)(void *ctx, size_t done, size_t total);
    void *progress_ctx;
} AttribOptions;

void attribute_options_default(AttribOptions *o);
// Rows per sweep when not given: 256, fewer for long prompts so the (T, B, D + H*Dh) gradient
// buffers stay near 512 MiB (at least 16).  Larger batches read each source block (the
// decoder rows of the active features) for more rows at once.
int attribute_auto_batch(const Replacement *r);

// Fill g (allocated here; graph_free it) from r: node table in METHOD §2 order (visited
// features only, sorted by (l, p, f)), the adjacency as CSR (sp_row/sp_col/sp_val; no dense
// N x N — graph_densify() adds it) with the rows of every visited feature and every logit,
// tokens, n_active_total, max_feature_nodes (the budget used) and sizes.  Without a budget
// (M >= active features) rows are computed in node order and compressed batch by batch;
// with one, the rows of visited features are kept over the columns they can have (features of
// lower layers, errors, tokens) for the partial influence, then compressed.  Provenance
// strings, fingerprints and thresholds are the caller's.  Logit node prob = softmax
// probability of the token (a difference target: that of token a); activation = the logit
// (difference: logit_a - logit_b).
int attribute_graph(Graph *g, const Replacement *r, const AttribOptions *o);
