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
int cmd_train_clt(int argc, char **argv);
void help_train_clt(void);

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
