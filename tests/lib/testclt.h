// testclt.h — fixtures shared by the suites that need a model and a transcoder: the real
// stories260K model with a prompt, and random transcoders calibrated to fire on a prompt.
#pragma once
#include "engine/clt.h"
#include "engine/attribute.h"
#include "engine/model.h"
#include "engine/replacement.h"

// The prompt every stories260K fixture encodes.
extern const char *const TU_STORIES_PROMPT;

// Load ../shared stories260K and encode TU_STORIES_PROMPT with BOS into toks (the first maxT
// tokens when it is longer); *T the count.  Asserts on failure.
void tu_load_stories(Model *m, int *toks, int *T, int maxT);

// Random transcoder (kind, activation, optional skip) on m whose thresholds (JumpReLU) or
// encoder biases (ReLU) are calibrated on toks so that about frac of each layer's
// (position >= 1, feature) pairs fire.  Asserts on failure.
void tu_random_clt(Clt *c, const Model *m, const int *toks, int T, int F, CltKind kind,
                   CltActKind act, int skip, uint64_t seed, double frac);

// What an exactness test compares with a row of attribution: the change of each target given
// the change of resid_mid (dmid, (T, L, D)) and of the logits (dlog, (V)) a source caused:
// W_enc . dmid for a feature target, dlog[a] - dlog[b] (or - mean dlog) for a logit target.
void tu_target_changes(const Replacement *r, const AttribTarget *tg, int n, const double *dmid,
                       const double *dlog, double *ref);
