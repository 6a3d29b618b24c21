// main.c — the ctrace driver: one subcommand per job, `ctrace <cmd> --help` for each.
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"

static const Subcommand COMMANDS[] = {
    {"generate", "generate text from a model (llama2.c sampling: greedy, temperature, top-p)",
     cmd_generate, help_generate},
    {"info", "print a model's configuration, parameter count, ISA, threads, NUMA nodes, fingerprint",
     cmd_info, help_info},
    {"logits", "write the logits of every position of a token sequence (float32 [T, V])",
     cmd_logits, help_logits},
    {"mkmodel", "write a random, numerically sane llama2.c checkpoint of any size", cmd_mkmodel,
     help_mkmodel},
    {"bench-forward", "time prefill and decode of a model (markdown rows)", cmd_bench_forward,
     help_bench_forward},
    {"quantize", "write an int8 (q8) checkpoint that every command loads without re-quantizing",
     cmd_quantize, help_quantize},
    {"intervene", "set or scale transcoder features and compare next-token predictions (constrained/iterative/open)",
     cmd_intervene, help_intervene},
    {"steer", "generate with features steered at every position, next to the unsteered text", cmd_steer,
     help_steer},
    {"validate", "ablate/double a graph's top features and compare the real effects with its edges",
     cmd_validate, help_validate},
    {"attribute", "attribution graph of a prompt: model + transcoder -> viewer JSON, .ctg, scores",
     cmd_attribute, help_attribute},
    {"graph-info", "summarise a saved attribution graph (.ctg): counts, scores, top nodes",
     cmd_graph_info, help_graph_info},
    {"graph-diff", "compare two graphs of one prompt (e.g. q8 vs f32): shared nodes, edge correlation, top nodes",
     cmd_graph_diff, help_graph_diff},
    {"render", "draw a graph (.json or .ctg) as a layered SVG or HTML picture", cmd_render, help_render},
    {"serve", "local interactive viewer for the graphs of a directory (http://127.0.0.1:8041/)",
     cmd_serve, help_serve},
    {"synth-graph", "write a random graph of any size (tests and benchmarks of render/serve)",
     cmd_synth_graph, help_synth_graph},
    {"clt-eval", "error statistics of a transcoder: per-layer NMSE, L0, dead features; spliced KL, top-1, CE",
     cmd_clt_eval, help_clt_eval},
    {"sample", "generate a training corpus from the model (stories separated by blank lines)", cmd_sample,
     help_sample},
    {"train-clt", "train a cross-layer (or per-layer) transcoder on the model's own activations",
     cmd_train_clt, help_train_clt},
    {"train-model", "train a small Llama-family model from scratch on a text corpus (llama2.c output)",
     cmd_train_model, help_train_model},
    {"curriculum", "write the default model's synthetic corpus + tokenizer, or score a model on its held-out set",
     cmd_curriculum, help_curriculum},
    {"casestudy", "trace prompts to expected answers: graphs, strongest paths, interventions that test them",
     cmd_casestudy, help_casestudy},
};
#define NCOMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f) {
    fprintf(f, "ctrace — circuit tracing on CPUs\n\nusage: ctrace <command> [options]   "
               "(ctrace <command> --help for each)\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-14s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\nenvironment: CTRACE_ISA=scalar|avx2|avxvnni|avx512|amx|neon overrides the kernel table.\n");
}

int cli_fail(const char *cmd) {
    fprintf(stderr, "ctrace %s: %s\n", cmd, ct_errmsg());
    return 1;
}

int cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "ctrace %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see ctrace %s --help)\n", cmd);
    return 2;
}

int cli_is_help(const char *s) { return !strcmp(s, "-h") || !strcmp(s, "--help"); }

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage(cmd, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_usage(cmd, "option %s: expected an integer in [%ld, %ld], got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_u64(const char *cmd, const char *opt, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        cli_usage(cmd, "option %s: expected a non-negative integer, got '%s'", opt, s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        cli_usage(cmd, "option %s: expected a number in [%g, %g], got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(argv[1], COMMANDS[i].name) != 0) continue;
        for (int a = 2; a < argc; a++)
            if (cli_is_help(argv[a])) {
                COMMANDS[i].help();
                return 0;
            }
        return COMMANDS[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "ctrace: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
