// intervene.h — feature interventions (METHOD §5): set or scale transcoder features and re-run
// the model; steered generation; and validation of an attribution graph's predictions against
// what the real model does when its features are ablated or doubled.
//
// ---- what an intervention does ---------------------------------------------------------------
// A spec names a feature (layer l, position range, feature f) and either a value (SET) or a
// factor (SCALE).  At every covered position p the forward pass is hooked:
//
//   at resid_mid[l](p):    a_cur  = the feature's "current" activation (see the modes)
//                          target = value (SET)  or  factor * a_cur (SCALE)
//                          delta  = target - a_cur
//   at mlp_out[l'](p):     mlp_out += delta * W_dec[l][f][l' - l]   for l' = l..L-1 (CLT), l' = l (PLT)
//
// A delta of exactly 0 adds nothing (not even a signed zero), so a zero intervention leaves
// every bit of the run unchanged.  Several specs add in the order they were given.
//
// Modes, over a layer range [A, B] (default: every layer):
//   IV_CONSTRAINED  attention patterns, 1/rms norm factors and MLP outputs of layers A..B are
//                   frozen at the clean run (the final norm is frozen too): inside the range the
//                   model is the linear local replacement model of METHOD §2, so the changes are
//                   pure direct effects and equal the graph's edges times delta / a (a transcoder
//                   skip stays linear, as in the replacement model: a frozen MLP output also moves
//                   by W_skip (resid_mid - clean resid_mid)).  a_cur of a
//                   feature whose layer is in [A, B] is its CLEAN activation (encoded from the
//                   clean resid_mid), whatever earlier interventions did to the residual.
//   IV_ITERATIVE    attention patterns of layers A..B frozen; norms and MLPs run for real, so
//                   effects flow through the real MLPs.  a_cur is RE-ENCODED from the intervened
//                   run's resid_mid[l](p) (which includes the effects of every intervention at
//                   earlier layers and earlier positions, but not the feature's own decoders,
//                   which write after its encoder reads).  The intervention holds the feature at
//                   its target: delta = target - re-encoded activation, so the MLP outputs carry
//                   exactly the held value's decoder contribution on top of what the real MLP
//                   computed.  SCALE multiplies the re-encoded activation.
//   IV_OPEN         nothing frozen (attention patterns change too); a_cur re-encoded as in
//                   IV_ITERATIVE.  Steered generation uses this mode.
// In IV_CONSTRAINED, features at layers outside [A, B] behave as in IV_OPEN.
// (circuit-tracer's feature_intervention likewise freezes only attention patterns for
// freeze_attention; its constrained_layers freezes norms only when the range is every layer and
// applies deltas only inside the range, where ctrace freezes norms over [A, B] and applies every
// delta.  Over all layers the two agree.)
// The forward's hook API reads layer_lo = layer_hi = 0 as "every layer", so the range 0..0 of a
// model with more than one layer cannot be expressed; iv_run rejects it with that reason.
//
// ---- position syntax (command line and iv_parse_spec) ----------------------------------------
//   LAYER:POS:FEATURE=NUMBER    POS is one of
//     P        one position
//     P..Q     positions P through Q (inclusive)
//     P..      P and every later position, including positions generated later (steering)
//     * | all  every position except BOS: the same as 1..
// Position 0 (BOS) can be named explicitly; features at BOS are not graph nodes (METHOD §1).
//
// ---- reports ----------------------------------------------------------------------------------
// Logits before are the clean run's (bit-identical to any zero intervention in any mode);
// logits after are the intervened run's.  Feature changes re-encode every (layer, position,
// feature) from the intervened run's resid_mid and diff against the clean encoding; the
// intervened features themselves are listed separately (their held value is not an encoding).
//
// ---- validation (iv_validate) ------------------------------------------------------------------
// For a source feature node s = (l_s, p_s, f_s) with activation a_s and an applied change
// delta (ablate: delta = -a_s; scale by 2: delta = +a_s), targets are every logit node and every
// feature node t with l_t > l_s, p_t >= p_s whose row was computed (has a nonzero edge).
// Measured: the change of t's pre-activation (W_enc[l_t][f_t] . resid_mid + b, re-encoded from the
// intervened run) or of the demeaned logit logit_v - mean_u logit_u at the last position (before
// any final soft-cap, Gemma-2, like the graph's logit targets).
// Predicted, with E[t, j] = A[t, j] / a_j the edge per unit activation of feature source j:
//   constrained:  pred_t = E[t, s] delta                      (direct effects: must match exactly)
//   iterative:    d_s = delta; for feature nodes t in node order (layers ascending):
//                   d_t = sum_{feature j} E[t, j] d_j          (t != s)
//                 pred_t = d_t, and for logits pred_v = sum_j E[v, j] d_j
//                 i.e. the path sums  e_t^T (I - E_FF)^-1 E[:, s] delta  restricted to the
//                 graph's feature nodes, linearised (an active feature's activation moves with
//                 its pre-activation; threshold crossings are ignored), errors held constant,
//                 features outside the graph (inactive, or not visited by the budget) fixed.
// Both runs use every layer (constrained: [0, L-1]; iterative: attention frozen everywhere).
// With pruned_only, sources, targets and edges are restricted to the kept ones.
// Statistics per (node, mode, kind) and pooled over nodes: Pearson and Spearman (average ranks
// for ties) correlation, cosine, sign agreement (pairs where either value exceeds
// 1e-6 x the largest magnitude of either vector; signs below that count as 0), and the largest
// absolute error next to the largest predicted magnitude.  Undefined values are NaN.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/clt.h"
#include "engine/graph.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/threads.h"

typedef enum { IV_SET = 0, IV_SCALE = 1 } IvKind;
typedef enum { IV_CONSTRAINED = 0, IV_ITERATIVE = 1, IV_OPEN = 2 } IvMode;

#define IV_POS_END INT32_MAX   // pos_hi of an open-ended range ("P..", "*")

typedef struct IvSpec {
    int layer;
    int pos_lo, pos_hi;        // inclusive; pos_hi == IV_POS_END: every position from pos_lo on
    int feature;
    int kind;                  // IvKind
    float value;               // SET: the value; SCALE: the factor
    char text[64];             // the spec as given (for messages), may be ""
} IvSpec;

typedef struct Intervention {
    IvSpec *specs;
    int n, cap;
} Intervention;

void intervention_init(Intervention *iv);
void intervention_free(Intervention *iv);
int intervention_add(Intervention *iv, const IvSpec *s);
// Parse "LAYER:POS:FEATURE=NUMBER" (POS syntax above) into *out with the given kind.  Only the
// syntax is checked here; ranges against a model come from intervention_check.
int iv_parse_spec(const char *text, int kind, IvSpec *out);
// Every spec against a transcoder and a sequence of n_pos positions: layer in [0, L), feature
// in [0, F), positions inside [0, n_pos) (open-ended ranges must start inside), P <= Q, and no
// feature named twice at the same position.  Errors quote the spec.
int intervention_check(const Intervention *iv, const Clt *clt, int n_pos);
// Does spec s cover position p?
static inline int iv_covers(const IvSpec *s, int p) { return p >= s->pos_lo && p <= s->pos_hi; }

// "constrained" | "iterative" | "open"
int iv_parse_mode(const char *s, IvMode *mode);
const char *iv_mode_name(int mode);
// "A..B" (or "A" alone) into 0 <= A <= B < L; errors for malformed text, out of range or empty.
int iv_parse_layers(const char *s, int L, int *lo, int *hi);

// One feature's pre-activation W_enc[l][f] . x + b_enc[l][f] (dot_f32: the same bits as
// clt_encode's matvec row) and activation.  scratch (2F) is used for TopK (whole layer).
float iv_feature_pre(const Clt *c, int l, int f, const float *x);
float iv_feature_act(const Clt *c, int l, int f, const float *x, float *scratch);

// ---- a prompt, its clean run and intervened runs ---------------------------------------------
// What one spec did at one position of the last run.
typedef struct IvApplied {
    int spec, pos;
    float clean;               // clean activation (from the clean resid_mid)
    float current;             // a_cur used (clean in constrained mode, else re-encoded)
    float target;              // value held
    float delta;               // target - current, the decoder multiplier
} IvApplied;

typedef struct IvContext {
    const Model *m;
    const Clt *clt;
    ThreadPool *pool;
    int T, L, D, F, V;
    int *tokens;               // (T)
    Capture clean;             // CAP_ALL of the clean run
    float *clean_logits;       // (T, V)
    // the last iv_run
    Capture run;               // CAP_RESID | CAP_MLP
    float *logits;             // (T, V)
    IvApplied *applied;        // (n_applied) in (spec, pos) order
    int n_applied, cap_applied;
    RunState s;                // T positions
    float *scratch;            // (2F + D)
} IvContext;

// Clean run of tokens (1 <= T <= seq_len).  The transcoder must fit the model.  m, clt and
// pool must outlive cx.
int iv_context_init(IvContext *cx, const Model *m, const Clt *clt, const int *tokens, int T,
                    ThreadPool *pool);
void iv_context_free(IvContext *cx);
// Run the intervention (checked against T) in mode over layers [lo, hi] (ignored for IV_OPEN);
// results in cx->logits, cx->run, cx->applied.
int iv_run(IvContext *cx, const Intervention *iv, IvMode mode, int lo, int hi);

// Next-token table of position pos: by = 0 ranks by the clean probabilities, 1 by the
// intervened ones (softmax in double).  out (K).  Returns the count written (min(K, V)).
typedef struct IvTopToken {
    int token;
    float logit_before, logit_after;
    double p_before, p_after;
} IvTopToken;
int iv_top_tokens(const IvContext *cx, int pos, int by, int K, IvTopToken *out);

// A feature's value before (clean) and after (the last run), re-encoded from resid_mid.
typedef struct IvFeatureChange {
    int layer, pos, feature;
    float pre_before, pre_after, act_before, act_after;
} IvFeatureChange;
// The largest |act_after - act_before| over every (l, p, f) not named by iv (ties: lower
// (l, p, f) first), nonzero changes only; out (max_n), *n_out the count.
int iv_feature_changes(IvContext *cx, const Intervention *iv, int max_n, IvFeatureChange *out,
                       int *n_out);
// One feature (any, named or not); error on a bad (l, p, f).
int iv_feature_probe(IvContext *cx, int l, int p, int f, IvFeatureChange *out);

// ---- steered generation (open mode, KV cache) -------------------------------------------------
// Feed prompt (n_prompt >= 1 tokens) and sample n_new tokens with smp, applying iv (NULL or
// empty: unsteered) at every covered position, new ones included.  Stops early after sampling
// stop_token (>= 0; -1: never).  tokens_out (n_prompt + n_new) receives the prompt and the new
// tokens, *n_out the total.  logits_out (n_new, V) or NULL: the logits each new token was
// sampled from (before the sampler's temperature/softmax).  n_prompt + n_new <= seq_len.
int iv_generate(const Model *m, const Clt *clt, const Intervention *iv, const int *prompt,
                int n_prompt, int n_new, Sampler *smp, int stop_token, ThreadPool *pool,
                int *tokens_out, int *n_out, float *logits_out);

// ---- validation of a graph ---------------------------------------------------------------------
enum { IV_VAL_CONSTRAINED = 0, IV_VAL_ITERATIVE = 1 };   // modes (first index)
enum { IV_VAL_ABLATE = 0, IV_VAL_DOUBLE = 1 };           // kinds: set to 0, scale by 2

typedef struct IvStats {
    int n;                     // pairs
    double pearson, spearman, cosine;
    double sign_agree;         // fraction of pairs above the tolerance with equal signs
    double max_abs_err;        // max |actual - predicted|
    double max_abs_pred;       // max |predicted|
} IvStats;

typedef struct IvValNode {
    int node;                  // graph node index of the source
    int layer, pos, feature;
    float activation;          // a_s (graph)
    float delta[2];            // applied change per kind
    int n_targets;
    int *targets;              // (n_targets) graph node indices
    double *actual[2][2];      // [mode][kind] (n_targets)
    double *pred[2][2];
    IvStats st[2][2];
} IvValNode;

typedef struct IvValidation {
    int n_nodes;
    IvValNode *nodes;
    IvStats overall[2][2];        // every pair of every node
    IvStats overall_logits[2][2]; // logit targets only
    int pruned_only;
} IvValidation;

// Pearson, Spearman, cosine, sign agreement and errors of n pairs (definitions above).
void iv_stats(const double *actual, const double *pred, int n, IvStats *st);
// Validate g (its CSR is built when missing) on cx, which must be the clean run of g's tokens
// with the graph's model and transcoder (checked: sizes, fingerprint when both are set, every
// source activation and logit value against the clean run).  The top_n feature nodes by
// influence on the logits (prune_influence on the full graph; with pruned_only, among the kept
// nodes; ties: lower index) are ablated and doubled.
int iv_validate(IvContext *cx, Graph *g, int top_n, int pruned_only, IvValidation *out);
void iv_validation_free(IvValidation *v);
