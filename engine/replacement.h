// replacement.h — the local replacement model of one prompt (METHOD §2).
//
// One real forward pass with a full capture (attention patterns, 1/rms factors, resid_mid,
// MLP outputs), then the transcoder on every (layer, position):
//
//     x_l(p)   = resid_mid[l](p)                         (D)  read BEFORE the FFN norm (Gemma-2:
//                                                              the pre-FFN norm's normalised input
//                                                              before its gain; see model.h)
//     a_l(p)   = act(W_enc[l] x_l(p) + b_enc[l])         (F)  kept sparse: active features only
//     y^_l(p)  = b_dec[l] + sum_{l_s <= l} W_dec[l_s][:, l - l_s]^T a_{l_s}(p) (+ W_skip[l] x_l(p))
//     eps_l(p) = mlp_out[l](p) - y^_l(p)                 (D)  error node vector
//
// Position 0 (BOS): following METHOD §1 and circuit-tracer (which zeroes the BOS row of the
// activation matrix and of the error vectors when the prompt starts with a special token), the
// features of position 0 are treated as inactive (they are not nodes) and eps_l(0) = 0.  The
// MLP outputs of position 0 are then pure constants of the linear model (like b_dec): nothing
// is attributed to them.  ctrace applies this to position 0 whatever token it holds (METHOD:
// position 0 is BOS).
//
// With attention patterns, norm denominators and every MLP output frozen at these clean
// values, the model is linear in the residual stream, and
//     mlp_out[l](p) = const + sum_s a_s W_dec[l_s][f_s][l - l_s] + eps_l(p)  (+ W_skip[l] dx_l(p))
// which is what engine/attribute.c differentiates.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/clt.h"
#include "engine/model.h"
#include "engine/threads.h"

typedef struct Replacement {
    const Model *m;
    const Clt *clt;
    int L, T, D, F, V;
    int *tokens;             // (T) prompt ids
    Capture cap;             // the clean run: CAP_ALL, T positions
    float *logits;           // (V) real logits of the last position
    // Active features, position 0 excluded, sorted by (layer, pos, feature).
    int n_active;
    int *act_layer;          // (n_active)
    int *act_pos;            // (n_active)
    int *act_feat;           // (n_active)
    float *act_val;          // (n_active) activation a_s (nonzero)
    int *lp_start;           // (L*T + 1): features of (l, p) are [lp_start[l*T+p], lp_start[l*T+p+1])
    float *recon;            // (L, T, D) y^_l(p); rows of p = 0 hold b_dec (+ skip) only
    float *eps;              // (L, T, D) eps_l(p); rows of p = 0 are zero
} Replacement;

// Run the model on tokens (T >= 1, T <= seq_len), encode with clt, fill r.  The transcoder must
// fit the model (clt_check_model is called) and read / write the architecture's transcoder
// sites (model.h; feature_input_hook must name resid_mid, or ln2.hook_normalized for Gemma-2;
// the output hook mlp_out; anything else is refused).  pool may be NULL.  Deterministic for any number
// of threads.  m and clt must outlive r.
int replacement_build(Replacement *r, const Model *m, const Clt *clt, const int *tokens, int T,
                      ThreadPool *pool);
void replacement_free(Replacement *r);

// Index of feature (l, p, f) in the active list, or -1 if it is not active.
int replacement_find(const Replacement *r, int l, int p, int f);
