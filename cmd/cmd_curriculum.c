// cmd_curriculum.c — `ctrace curriculum`: write the default model's training corpus, its
// tokenizer and held-out set, or evaluate a model on the held-out instances.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "engine/curriculum.h"
#include "engine/tokenizer.h"

void help_curriculum(void) {
    printf("usage: ctrace curriculum -o CORPUS [-n LINES] [--seed S] [--mix TASK=W,...]\n"
           "                         [--tokenizer-out TOK] [--heldout-out TSV]\n"
           "       ctrace curriculum --eval MODEL -z TOK [--seed S] [--per-task N]\n"
           "                         [--split heldout|train|both] [--threads N] [--dtype f32|q8|q8a8|bf16|bf16dot]\n\n"
           "Writes the synthetic curriculum of ctrace's default model, one document per line\n"
           "(tasks: acronym, addition, fact, geo, twohop, prose; engine/curriculum.h has the\n"
           "line formats and what is held out), or evaluates a model trained on it.\n"
           "  -o CORPUS          corpus text file ('-' = stdout)\n"
           "  -n LINES           number of lines (default 200000)\n"
           "  --seed S           world and line seed (default 1); evaluate with the same seed\n"
           "  --mix TASK=W,...   mixture weights, e.g. addition=0.4,prose=0.1 (defaults acronym\n"
           "                     0.17, addition 0.28, fact 0.20, geo 0.12, twohop 0.10, prose 0.13)\n"
           "  --tokenizer-out TOK  write the matching llama2.c tokenizer.bin (seed-independent)\n"
           "  --heldout-out TSV  write every held-out prompt/answer as TSV\n"
           "  --eval MODEL       greedy-decode held-out prompts and print a markdown accuracy table\n"
           "  -z TOK             tokenizer for --eval\n"
           "  --per-task N       instances per task (default 200; fewer when a task has fewer)\n"
           "  --split S          heldout (default), train or both\n"
           "  --threads N        worker threads for --eval (default 1)\n"
           "%s", cli_weight_help());
}

static int run_eval(const char *cmd, const char *model_path, const char *tok_path, uint64_t seed,
                    long per_task, const char *split, long threads, CliWeightOpts *wopt) {
    int splits[2], ns = 0;
    if (!strcmp(split, "heldout") || !strcmp(split, "both")) splits[ns++] = CUR_SPLIT_HELDOUT;
    if (!strcmp(split, "train") || !strcmp(split, "both")) splits[ns++] = CUR_SPLIT_TRAIN;
    if (!ns) return cli_usage(cmd, "--split: expected heldout, train or both, got '%s'", split);
    Model m;
    Tokenizer tok;
    CurWorld w;
    if (model_load_llama2c(&m, model_path) != CT_OK) return cli_fail(cmd);
    if (tokenizer_load(&tok, tok_path, m.c.vocab_size) != CT_OK) {
        model_free(&m);
        return cli_fail(cmd);
    }
    ThreadPool *pool = pool_create((int)threads);
    int rc = 1;
    memset(&w, 0, sizeof w);
    if (!pool) goto done;
    int arc = cli_apply_model_opts(cmd, wopt, &m, pool);
    if (arc) {
        rc = arc;
        goto done_quiet;
    }
    if (curriculum_world_init(&w, seed) != CT_OK) goto done;
    CurEvalResult res[2];
    double t0 = ct_now();
    for (int k = 0; k < ns; k++)
        if (curriculum_eval_model(&w, &tok, &m, pool, splits[k], (int)per_task, &res[k]) != CT_OK)
            goto done;
    printf("curriculum eval: %s, seed %llu, greedy, exact match of the whole answer\n\n",
           model_path, (unsigned long long)seed);
    curriculum_eval_print(stdout, res, ns);
    fprintf(stderr, "evaluated in %.1f s\n", ct_now() - t0);
    rc = 0;
done:
    if (rc) cli_fail(cmd);
done_quiet:
    curriculum_world_free(&w);
    pool_destroy(pool);
    tokenizer_free(&tok);
    model_free(&m);
    return rc;
}

int cmd_curriculum(int argc, char **argv) {
    const char *cmd = "curriculum", *out = NULL, *tok_out = NULL, *held_out = NULL;
    const char *eval_model = NULL, *tok_path = NULL, *split = "heldout", *v;
    long n_lines = 200000, per_task = 200, threads = 1;
    CurriculumOptions o;
    CliWeightOpts wopt = {0};
    curriculum_defaults(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int wo = cli_weight_opt(cmd, argc, argv, &i, &wopt);
        if (wo < 0) return 2;
        if (wo > 0) continue;
        if (!strcmp(a, "-o") || !strcmp(a, "--out")) { if (!(out = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--lines")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 0, 1L << 40, &n_lines)) return 2; }
        else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_u64(cmd, a, v, &o.seed)) return 2; }
        else if (!strcmp(a, "--mix")) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
            if (curriculum_parse_mix(&o, v) != CT_OK) return cli_usage(cmd, "%s", ct_errmsg());
        }
        else if (!strcmp(a, "--tokenizer-out")) { if (!(tok_out = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--heldout-out")) { if (!(held_out = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--eval")) { if (!(eval_model = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-z") || !strcmp(a, "--tokenizer")) { if (!(tok_path = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--per-task")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 0, 1 << 30, &per_task)) return 2; }
        else if (!strcmp(a, "--split")) { if (!(split = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--threads")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 0, 4096, &threads)) return 2; }
        else if (a[0] == '-' && a[1]) return cli_usage(cmd, "unknown option %s", a);
        else return cli_usage(cmd, "unexpected argument '%s'", a);
    }
    if (wopt.clt_dtype) return cli_usage(cmd, "--clt-dtype: curriculum loads no transcoder");
    if (eval_model) {
        if (!tok_path) return cli_usage(cmd, "--eval needs -z TOKENIZER (the one --tokenizer-out wrote)");
        if (out || tok_out || held_out)
            return cli_usage(cmd, "--eval evaluates only; write the corpus in a separate run");
        return run_eval(cmd, eval_model, tok_path, o.seed, per_task, split, threads, &wopt);
    }
    if (wopt.dtype || wopt.numa) return cli_usage(cmd, "--dtype/--numa apply to --eval only");
    if (!out && !tok_out && !held_out)
        return cli_usage(cmd, "nothing to do: give -o CORPUS, --tokenizer-out, --heldout-out or --eval");

    if (out) {
        long counts[CUR_NTASKS];
        int rc = !strcmp(out, "-") ? curriculum_generate(&o, stdout, n_lines, counts)
                                   : curriculum_generate_file(&o, out, n_lines, counts);
        if (rc != CT_OK) return cli_fail(cmd);
        fprintf(stderr, "wrote %ld lines (seed %llu) to %s:", n_lines, (unsigned long long)o.seed, out);
        for (int t = 0; t < CUR_NTASKS; t++)
            fprintf(stderr, " %s %.1f%%", curriculum_task_name(t),
                    n_lines ? 100.0 * (double)counts[t] / (double)n_lines : 0.0);
        fprintf(stderr, "\n");
    }
    if (tok_out) {
        int V = 0;
        if (curriculum_write_tokenizer(tok_out, &V) != CT_OK) return cli_fail(cmd);
        fprintf(stderr, "wrote tokenizer %s: vocab_size %d (use this as the model's vocab_size)\n",
                tok_out, V);
    }
    if (held_out) {
        CurWorld w;
        if (curriculum_world_init(&w, o.seed) != CT_OK) return cli_fail(cmd);
        int rc = curriculum_write_heldout_tsv(&w, held_out);
        int total = 0;
        for (int t = 0; t < CUR_NTASKS; t++) total += curriculum_count(&w, t, CUR_SPLIT_HELDOUT);
        curriculum_world_free(&w);
        if (rc != CT_OK) return cli_fail(cmd);
        fprintf(stderr, "wrote %d held-out instances to %s\n", total, held_out);
    }
    return 0;
}
