// clt_eval.h — how well a transcoder replaces its model's MLPs (METHOD.md §1, "error
// statistics"), and the text -> BOS-led windows split that evaluation and training share.
//
// Per layer, over every position p >= 1 of every window (features and errors at BOS are
// zeroed in attribution, so BOS is left out here too):
//   NMSE (FVU)  = sum ||y^ - y||^2 / sum ||y - mean(y)||^2     y: the real MLP output,
//                 y^: the transcoder's reconstruction from the real resid_mid inputs
//   L0          = mean number of active features per position
//   dead        = fraction of features never active over the whole evaluation set
// Spliced model: every MLP output at p >= 1 is replaced by the reconstruction computed from
// the spliced model's own resid_mid (errors compound; nothing is added back).  Position 0
// keeps its real MLP output (the transcoder is not trained on BOS).  Then
//   KL(real || spliced) of the next-token distributions, mean over positions p >= 1
//   top-1 agreement of the two argmaxes, over positions p >= 1
//   cross-entropy of both on the text: -log p(token[p+1]), mean over p = 0..n-2.
#pragma once
#include <stddef.h>
#include <stdio.h>

#include "engine/clt.h"
#include "engine/model.h"
#include "engine/threads.h"
#include "engine/tokenizer.h"

// ---- text -> stories -> windows -----------------------------------------------------------------
// A corpus is UTF-8 text whose stories are paragraphs separated by blank lines (a line with
// only spaces, tabs or CR counts as blank); single newlines stay inside a story.
// Finds the next story at or after *pos: returns 1 and sets [*start, *start + *len), advancing
// *pos past it; returns 0 at the end of the text.
int text_next_story(const char *buf, size_t n, size_t *pos, size_t *start, size_t *len);

// A story tokenized as run.c does (BOS, dummy-prefix space, BPE): ids[0] = BOS.
typedef struct StoryTok {
    int *ids;
    int n, cap;
    char *text;           // NUL-terminated copy of the story for the tokenizer
    size_t text_cap;
} StoryTok;
int story_tokenize(StoryTok *st, const Tokenizer *t, const char *s, size_t len);
void story_free(StoryTok *st);
// A story of n ids (its start token ids[0] included: BOS, or tokenizer_start_id) is cut into
// windows of at most ctx tokens, each starting with that token:
// window k = [ids[0]] + ids[1 + k*(ctx-1) .. 1 + (k+1)*(ctx-1)).
static inline int story_n_windows(int n, int ctx) { return n <= 1 ? 0 : (n - 1 + ctx - 2) / (ctx - 1); }
// Writes window k into out (ctx) and returns its length (>= 2).
int story_window(const int *ids, int n, int ctx, int k, int *out);

// Every window of a text or of an id list, concatenated.
typedef struct TokWindows {
    int n;                // windows
    int *start;           // (n) offset of window w in tok
    int *len;             // (n) its length (BOS included)
    int *tok;             // all windows' ids
    size_t ntok;
} TokWindows;
// max_tokens > 0: stop after the window that reaches that many tokens.
int tokwin_from_text(TokWindows *w, const Tokenizer *t, const char *text, size_t n, int ctx, long max_tokens);
// An explicit id list is one story (a leading BOS is optional).
// From ids: start (the tokenizer's start token) is prepended unless ids[0] already is it.
int tokwin_from_ids(TokWindows *w, const int *ids, int n, int ctx, int start);
void tokwin_free(TokWindows *w);

// ---- evaluation ---------------------------------------------------------------------------------
typedef struct CltEvalOpts {
    ThreadPool *pool;     // windows run in parallel (NULL: the caller only)
    int progress;         // 1: progress on stderr
    int oracle;           // tests: the spliced run writes back the real MLP outputs instead
} CltEvalOpts;

typedef struct CltEvalResult {
    int L, F;
    long windows;
    long positions;       // positions p >= 1 (NMSE, L0, KL, top-1)
    long predictions;     // next-token predictions (cross-entropy)
    double *nmse;         // (L)
    double *l0;           // (L)
    double *dead;         // (L) fraction of F
    double mean_nmse, mean_l0, mean_dead;
    double kl;            // mean KL(real || spliced), nats
    double top1;          // fraction of positions where the argmaxes agree
    double ce_real, ce_spliced;  // nats per token
    double seconds;
} CltEvalResult;

int clt_eval(const Model *m, const Clt *c, const TokWindows *w, const CltEvalOpts *o, CltEvalResult *r);
void clt_eval_result_free(CltEvalResult *r);
// The readable table.
void clt_eval_print(FILE *f, const CltEvalResult *r);
// The JSON report (written atomically); model/clt/text name the inputs.
int clt_eval_write_json(const char *path, const CltEvalResult *r, const char *model, const char *clt,
                        const char *text, int ctx);
