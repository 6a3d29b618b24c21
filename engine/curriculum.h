// curriculum.h — the synthetic curriculum ctrace trains its own default model on, the
// tokenizer that goes with it, and the held-out accuracy evaluation.
//
// The corpus is plain text, one document per line (`ctrace train-model` encodes each
// non-empty line as BOS + tokens). Every line is one of six tasks; the case studies of the
// "Circuit Tracing" paper are the first five:
//
//   acronym   The National Digital Analytics Group (NDAG)
//             The Royal Water Trade Council (RWTC)                    (3 or 4 capitalised words)
//   addition  calc: 36+59=95                                        (operands 10..99)
//   fact      Ravi Olsen plays the sport of hockey                  (template F0)
//             the sport played by Ravi Olsen is hockey               (template F1)
//             Ravi Olsen is a famous hockey player                   (template F2)
//             Ravi Olsen trains every day for hockey                 (template F3)
//             on the weekend Ravi Olsen plays hockey                 (template F4)
//   geo       Brenmoor is in the state of Kestra                     (G0, city -> state)
//             the state containing Brenmoor is Kestra                (G1, city -> state)
//             the capital of Kestra is Tirrel                        (G2, state -> capital)
//             Tirrel is the capital of Kestra                        (G3, capital -> state)
//   twohop    the capital of the state containing Brenmoor is Tirrel (T0)
//             Fact: the capital of the state containing Brenmoor is Tirrel (T0 with prefix)
//             Brenmoor is in a state whose capital is Tirrel         (T1)
//   prose     Mira walked to the market. The small dog sat near the river.
// fact and geo lines carry the prefix "Fact: " with probability fact_prefix_p.
//
// Everything is a function of the seed: which 160 first/last-name pairs are people and
// their sports, which 5 of the 80 cities lie in each of the 16 states and which is the
// capital. The word lists are fixed, so the tokenizer does not depend on the seed.
//
// Held out (never a training line, whatever the seed and the number of lines):
//   addition  the pairs (a, b) with mix(100a + b) % 10 == 0: 853 of the 8100 (seed-free).
//   acronym   the word combinations with mix(combination) % 10 == 0: 2688 of the 27440
//             (seed-free); every word still appears in training inside other combinations.
//   fact      per person, one of the five templates F0..F4 (chosen by the seed); the
//             person's sport is trained through the other four. Held-out = the fact asked in
//             a phrasing never used for that person (cross-template generalisation; the
//             train split asks the trained phrasings, i.e. recall).
//   twohop    per state, one non-capital city: its T0, "Fact:" T0 and T1 lines never appear,
//             while its G0/G1 lines and its state's G2/G3 lines do, and two-hop lines of the
//             other 48 non-capital cities do.
//   geo, prose  nothing held out (geo has a train split for the evaluation).
// The "train" split of each task lists instances the generator may emit (a sanity check
// that the model learned the task at all, beside the held-out generalisation).
//
// Prompt / answer: the prompt is the line up to the answer, the answer the text the model
// must continue with: "calc: 36+59=" -> "95", "The National Digital Analytics Group (" ->
// "NDAG)", "Ravi Olsen plays the sport of" -> " hockey", "the capital of the state
// containing Brenmoor is" -> " Tirrel". prompt + answer + suffix is the whole line (suffix is
// " player" for F2, empty otherwise).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/model.h"
#include "engine/threads.h"
#include "engine/tokenizer.h"

typedef enum CurTask {
    CUR_ACRONYM = 0,
    CUR_ADDITION,
    CUR_FACT,
    CUR_GEO,
    CUR_TWOHOP,
    CUR_PROSE,
    CUR_NTASKS
} CurTask;

enum { CUR_SPLIT_HELDOUT = 0, CUR_SPLIT_TRAIN = 1 };

// Sizes of the invented world (fixed; the seed only permutes who/what goes where).
#define CUR_N_PEOPLE 160
#define CUR_N_STATES 16
#define CUR_CITIES_PER_STATE 5
#define CUR_FACT_TEMPLATES 5

typedef struct CurriculumOptions {
    uint64_t seed;                 // world and line stream; any value (0 included)
    double weight[CUR_NTASKS];     // mixture weights, >= 0, normalised by their sum
    double fact_prefix_p;          // probability of "Fact: " before fact and geo lines
} CurriculumOptions;

// Defaults: seed 1; acronym 0.17, addition 0.28, fact 0.20, geo 0.12, twohop 0.10,
// prose 0.13; fact_prefix_p 0.25.
void curriculum_defaults(CurriculumOptions *o);
const char *curriculum_task_name(int task);      // "acronym", ..., NULL when out of range
int curriculum_task_from_name(const char *name); // -1 when unknown
// "addition=0.4,prose=0" sets those weights (others keep their value). Errors name the item.
int curriculum_parse_mix(CurriculumOptions *o, const char *spec);

// One instance: the whole line is prompt + answer + suffix.
typedef struct CurInstance {
    int task;
    char prompt[192];
    char answer[48];
    char suffix[48];
} CurInstance;

// The invented world of a seed plus every instance list (shuffled by the seed, so the first
// N of a list are a random sample). Building it takes about a millisecond.
typedef struct CurWorld {
    uint64_t seed;
    int person_first[CUR_N_PEOPLE], person_last[CUR_N_PEOPLE]; // indices into the name lists
    int person_sport[CUR_N_PEOPLE];
    int person_heldout_tmpl[CUR_N_PEOPLE];                     // 0..4: F0..F4
    int state_city[CUR_N_STATES][CUR_CITIES_PER_STATE];        // city ids; [s][0] is the capital
    int city_state[CUR_N_STATES * CUR_CITIES_PER_STATE];       // city id -> state id
    int state_heldout_city[CUR_N_STATES];                      // city id held out of two-hop
    uint32_t *list[CUR_NTASKS][2];  // instance codes per task and split (NULL when empty)
    int count[CUR_NTASKS][2];
} CurWorld;

int curriculum_world_init(CurWorld *w, uint64_t seed);
void curriculum_world_free(CurWorld *w);
// Number of instances of a task in a split (0 for prose, and for geo's held-out split).
int curriculum_count(const CurWorld *w, int task, int split);
// Instance index (0 <= index < curriculum_count) of a task and split.
int curriculum_instance(const CurWorld *w, int task, int split, int index, CurInstance *out);
// Convenience form: builds the world of seed on every call (about a millisecond).
int curriculum_heldout(int task, int index, uint64_t seed, char *prompt, size_t prompt_cap,
                       char *answer, size_t answer_cap);

// Write n_lines training lines ("...\n" each) to f. counts (may be NULL) receives the number
// of lines per task. The same options give the same bytes.
int curriculum_generate(const CurriculumOptions *o, FILE *f, long n_lines, long *counts);
// The same into a file, written atomically (temp + rename).
int curriculum_generate_file(const CurriculumOptions *o, const char *path, long n_lines,
                             long *counts);
// Every held-out instance as TSV: "# ctrace curriculum held-out v1 seed=S" line, header
// "task\tprompt\tanswer\tsuffix", then one row per instance (fields hold no tab or newline;
// answers and suffixes may start with a space).
int curriculum_write_heldout_tsv(const CurWorld *w, const char *path);

// ---- tokenizer ---------------------------------------------------------------------------
// Every distinct word the generator can emit (letters only), in a fixed order:
// curriculum_word(i) for 0 <= i < curriculum_word_count() (NULL out of range).
int curriculum_word_count(void);
const char *curriculum_word(int i);
// A llama2.c tokenizer.bin for the curriculum: ids 0 <unk>, 1 "\n<s>\n", 2 "\n</s>\n",
// 3..258 "<0xHH>", 259 " ", then every printable ASCII character, " (", then for every word
// w all prefixes of " w" of length >= 2 (a trie; score = length, so the one mergeable pair
// inside a word always grows it by one letter). With run.c's dummy prefix, every word becomes
// one token " w", digits and capital letters outside words stay single tokens, and
// punctuation is one token per character. *vocab_size (may be NULL) receives V.
int curriculum_write_tokenizer(const char *path, int *vocab_size);

// ---- evaluation ----------------------------------------------------------------------------
// A next-token predictor: given tokens[0..n-1] (tokens[0] is BOS), set *next to the greedy
// choice. Returns 0, or -1 after ct_error.
typedef int (*CurPredictFn)(void *ctx, const int *tokens, int n, int *next);

typedef struct CurEvalResult {
    int split;
    int n[CUR_NTASKS];          // instances evaluated (0: task not evaluated)
    int correct[CUR_NTASKS];
    double acc[CUR_NTASKS];     // correct / n, 0 when n == 0
} CurEvalResult;

// For each task with instances in split, take the first min(per_task, count) instances,
// encode BOS + prompt and BOS + prompt + answer (the prompt ids must be a prefix of the line
// ids: the answer ids are the rest), then decode greedily for exactly as many tokens as the
// answer has; an instance is correct when every decoded token equals the answer's.
int curriculum_eval(const CurWorld *w, const Tokenizer *t, int split, int per_task,
                    CurPredictFn predict, void *ctx, CurEvalResult *r);
// A model as a CurPredictFn: greedy argmax of the logits (lowest id on ties). Consecutive
// calls reuse the KV cache for the positions whose tokens did not change. pool may be NULL.
typedef struct CurModelPredictor CurModelPredictor;
int curriculum_predictor_init(CurModelPredictor **p, const Model *m, ThreadPool *pool);
int curriculum_predict_model(void *predictor, const int *tokens, int n, int *next);
void curriculum_predictor_free(CurModelPredictor *p);
// curriculum_eval with that predictor.
int curriculum_eval_model(const CurWorld *w, const Tokenizer *t, const Model *m,
                          ThreadPool *pool, int split, int per_task, CurEvalResult *r);
// Markdown table "| task | split | n | correct | accuracy |" of the given results.
void curriculum_eval_print(FILE *f, const CurEvalResult *results, int n_results);
