// cli.h — what every ctrace subcommand shares: option parsing helpers, model loading with
// clear errors, the thread pool.
#pragma once
#include <stdint.h>

#include "engine/common.h"
#include "engine/model.h"
#include "engine/threads.h"

typedef struct Subcommand {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);   // argv[0] is the subcommand name
    void (*help)(void);
} Subcommand;

// Every subcommand: returns the process exit code (0 ok, 1 runtime error, 2 usage error).
int cmd_generate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_bench_forward(int argc, char **argv);
void help_generate(void);
void help_info(void);
void help_logits(void);
void help_mkmodel(void);
void help_bench_forward(void);
int cmd_quantize(int argc, char **argv);   // cmd_quantize.c
void help_quantize(void);
// Weight options of every subcommand that loads a model or a transcoder (cmd_quantize.c):
//   --dtype f32|q8, --clt-dtype f32|q8, --numa off|local|interleave|replicate.
// cli_weight_opt consumes argv[*i] (and its value) when it is one of them: returns 1, 0 when
// it is not ours, -1 after a usage error.  After loading: cli_apply_model_opts (pins threads
// per --numa, then --dtype; returns 0 or an exit code), cli_apply_clt_opts (--clt-dtype).
// f32_views = 1 (set by commands whose fp32 code reads the weights, e.g. attribution's backward
// sweeps): under q8 the model's fp32 weight pointers show exactly the int8 values.
typedef struct CliWeightOpts { const char *dtype, *clt_dtype, *numa; int f32_views; } CliWeightOpts;
int cli_weight_opt(const char *cmd, int argc, char **argv, int *i, CliWeightOpts *o);
int cli_apply_model_opts(const char *cmd, const CliWeightOpts *o, Model *m, ThreadPool *pool);
struct Clt;
int cli_apply_clt_opts(const char *cmd, const CliWeightOpts *o, struct Clt *c, ThreadPool *pool);
const char *cli_weight_help(void);   // help lines for --dtype and --numa
const char *cli_clt_dtype_help(void); // help line for --clt-dtype
int cli_clt_load_flags(const CliWeightOpts *o);   // clt_load flags these options need
int cmd_intervene(int argc, char **argv);
void help_intervene(void);
int cmd_steer(int argc, char **argv);
void help_steer(void);
int cmd_validate(int argc, char **argv);
void help_validate(void);
int cmd_attribute(int argc, char **argv);
void help_attribute(void);
int cmd_graph_info(int argc, char **argv);
void help_graph_info(void);
int cmd_graph_diff(int argc, char **argv);
void help_graph_diff(void);
int cmd_render(int argc, char **argv);
void help_render(void);
int cmd_serve(int argc, char **argv);
void help_serve(void);
int cmd_synth_graph(int argc, char **argv);
void help_synth_graph(void);
int cmd_clt_eval(int argc, char **argv);
void help_clt_eval(void);
int cmd_sample(int argc, char **argv);
void help_sample(void);
int cmd_casestudy(int argc, char **argv);   // cmd_casestudy.c
void help_casestudy(void);
int cmd_train_clt(int argc, char **argv);
void help_train_clt(void);
int cmd_train_model(int argc, char **argv);   // cmd_train_model.c
void help_train_model(void);
int cmd_curriculum(int argc, char **argv);   // cmd_curriculum.c
void help_curriculum(void);

// Print "ctrace <cmd>: <message>" and return 1 (runtime) — for ct_errmsg() failures.
int cli_fail(const char *cmd);
// Print a usage error and return 2.
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Parse numbers strictly (whole string, range); on failure print a usage error naming the option.
int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);
int cli_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
// "--opt value" helper: returns argv[++*i] or NULL after printing a usage error.
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
// Is this "-h" or "--help"?
int cli_is_help(const char *s);
