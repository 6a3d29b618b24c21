// casestudy.h — one traced prompt, end to end: the attribution graph of the answer, its scores,
// the nodes that matter, the strongest paths from the prompt's tokens to the answer logit, and
// interventions that test what the graph claims.
//
// For a prompt P and its expected answer text A (the continuation, e.g. P = "calc: 36+59=9",
// A = "5"):
//   answer token  = the first token of encode(P + A) after the tokens of encode(P)
//   graph         = attribute_graph over the salient logits (+ the answer token if it is not
//                   among them), pruned at (node, edge) thresholds (0.8, 0.98)
//   strength(s)   = the strongest path s -> answer logit over KEPT edges, an edge t <- s
//                   weighing |A[t,s]| / sum_kept |A[t,.]| (the normalised adjacency that pruning
//                   uses); paths are products of weights, found by one pass over the nodes in
//                   reverse layer order (edges always go to a strictly later layer: tokens <
//                   layer 0 < ... < layer L-1 < logits)
//   intervention  = the kept feature node with the largest influence on the logits among those
//                   with a positive direct edge into the answer logit (else the largest of all):
//     constrained ablation (set to 0; attention, norms and MLPs frozen): the change of the
//       demeaned answer logit must equal the graph's edge  A[answer, s] * (-a_s) / a_s = -A[answer, s]
//     open ablation (nothing frozen): the real model's new top-1 at the last position
#pragma once
#include <stdio.h>

#include "engine/clt.h"
#include "engine/graph.h"
#include "engine/model.h"
#include "engine/threads.h"
#include "engine/tokenizer.h"

#define CASE_MAX_PATH 16

typedef struct CaseOptions {
    int max_feature_nodes;     // attribution budget (default 4096)
    double node_threshold;     // pruning (0.8)
    double edge_threshold;     // (0.98)
    ThreadPool *pool;          // may be NULL
    const char *model_path, *clt_path;   // provenance strings of the graph (may be NULL)
    const char *slug;          // graph slug (may be NULL)
} CaseOptions;

void case_options_default(CaseOptions *o);

typedef struct CasePath {
    int n;                     // nodes on the path, source first, answer logit last (0: none)
    int node[CASE_MAX_PATH];
    double strength;           // product of the normalised edge weights
} CasePath;

typedef struct CaseResult {
    Graph g;                   // pruned and scored (graph_free via case_result_free)
    int T;                     // prompt tokens (with BOS)
    int *tokens;               // (T)
    int answer_token;          // expected first answer token
    int predicted_token;       // the real model's top-1 at the last position
    double p_answer;           // its probability of the answer token
    int logit_node;            // node index of the answer's logit
    CasePath *tok_path;        // (T) strongest kept path from each token node to the answer
    int top[8], n_top;         // kept feature nodes by influence, most influential first
    // interventions on the chosen feature (iv_node = -1 when the graph has no kept feature)
    int iv_node;
    double iv_pred;            // graph's predicted change of the demeaned answer logit
    double iv_constrained;     // measured, constrained (must equal iv_pred to fp32 rounding)
    int iv_open_top1;          // the real model's top-1 after the open-mode ablation
    double iv_open_delta;      // change of the answer logit (raw) under the open ablation
} CaseResult;

// Trace prompt -> answer on the model with the transcoder.  out is filled (free it with
// case_result_free, also after an error).
int case_trace(const Model *m, const Tokenizer *tok, const Clt *clt, const char *prompt,
               const char *answer, const CaseOptions *o, CaseResult *out);
void case_result_free(CaseResult *r);

// Token strings and logit strings of a graph (labels for JSON and pictures).
int case_label_graph(Graph *g, const Tokenizer *tok);
// "L3 F120 @5 ' 9'", "tok ' 9'@5", "err L2 @5", "logit ' 95'" — a short name for node i.
void case_node_name(const Graph *g, int i, char *buf, size_t n);
// The printed report of one case: prediction, scores, top nodes, paths, interventions.
void case_print(FILE *f, const Tokenizer *tok, const char *name, const char *prompt, const char *answer,
                const CaseResult *r);

// ---- the built-in case studies on the curriculum model (engine/curriculum.h) -----------------
struct CurWorld;
#define CASE_MAX_GROUPS 4

// A case with the token groups its graph must connect to the answer: the check passes when,
// for every group, at least one of its token positions has a kept path to the answer logit.
typedef struct CaseSpec {
    char name[32];
    char prompt[256];
    char answer[64];
    int n_groups;
    char group_name[CASE_MAX_GROUPS][32];
    int group_pos[CASE_MAX_GROUPS][8], group_n[CASE_MAX_GROUPS];
} CaseSpec;

// The paper's case studies on held-out instance `index` of the curriculum (task: CUR_ACRONYM,
// CUR_ADDITION, CUR_FACT or CUR_TWOHOP):
//   acronym   "The Central Trade Youth Group (" -> "C"        group: the word " Central"
//   addition  "calc: 60+97=15" -> "7" (the ones digit)        groups: operand A's digits,
//                                                              operand B's digits
//   fact      "Pia Pruitt trains every day for" -> " rowing"  group: the person's name
//   twohop    "the capital of the state containing Yarby is" -> " Garrow"   group: the city
int case_builtin(const struct CurWorld *w, const Tokenizer *tok, int task, int index, CaseSpec *out);
// Does the traced result pass the spec's path check?  fails (may be NULL) receives the first
// group without a path.
int case_paths_ok(const CaseSpec *s, const CaseResult *r, const char **fails);

// The group experiment: ablate (set to 0) every kept feature node of the graph at the given
// token positions, with nothing frozen (the real model), and report the new top-1 at the last
// position and the change of the answer logit.  *n_ablated receives the feature count.
int case_ablate_positions(const Model *m, const Clt *clt, const CaseResult *r, const int *pos, int n_pos,
                          ThreadPool *pool, int *n_ablated, int *top1_after, double *answer_delta);
