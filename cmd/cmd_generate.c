// cmd_generate.c — `ctrace generate`: text generation with run.c's loop, sampler and output.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

void help_generate(void) {
    printf("usage: ctrace generate MODEL -z TOKENIZER [-p PROMPT] [-n STEPS] [-t TEMP] [--topp P]\n"
           "                        [-s SEED] [--threads N] [--dtype f32|q8|q8a8|bf16|bf16dot] [--numa MODE]\n\n"
           "Generates text exactly as llama2.c's run.c does: the prompt is encoded with BOS,\n"
           "STEPS counts forward passes including the prompt positions (default 256, at most\n"
           "the model's seq_len), the prompt is echoed, generation stops at BOS (llama2.c) or EOS (Hugging Face tokenizers).\n"
           "  -t TEMP     temperature, 0 = greedy (default 1.0)\n"
           "  --topp P    nucleus sampling threshold in [0, 1] (default 0.9; 0 or 1 = off)\n"
           "  -s SEED     random seed, >= 1 (default 42); the same seed gives the same text\n"
           "  --threads N worker threads (default: all cores); output is identical for any N\n"
           "%s", cli_weight_help());
}

int cmd_generate(int argc, char **argv) {
    const char *cmd = "generate", *model_path = NULL, *tok_path = NULL, *prompt = "";
    long steps = 256, threads = 0;
    double temp = 1.0, topp = 0.9;
    uint64_t seed = 42;
    CliWeightOpts wopt = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int wo = cli_weight_opt(cmd, argc, argv, &i, &wopt);
        if (wo < 0) return 2;
        if (wo > 0) continue;
        if (!strcmp(a, "-z") || !strcmp(a, "--tokenizer")) { if (!(tok_path = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { if (!(prompt = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--steps")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 0, 1 << 30, &steps)) return 2; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--temperature")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_float(cmd, a, v, 0, 1e6, &temp)) return 2; }
        else if (!strcmp(a, "--topp")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_float(cmd, a, v, 0, 1, &topp)) return 2; }
        else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_u64(cmd, a, v, &seed)) return 2; }
        else if (!strcmp(a, "--threads")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 0, 4096, &threads)) return 2; }
        else if (a[0] == '-') return cli_usage(cmd, "unknown option %s", a);
        else if (!model_path) model_path = a;
        else return cli_usage(cmd, "unexpected argument '%s'", a);
    }
    if (!model_path) return cli_usage(cmd, "missing MODEL");
    if (!tok_path && !model_path_is_hf(model_path)) return cli_usage(cmd, "missing -z TOKENIZER");
    if (seed == 0) return cli_usage(cmd, "-s: the seed must be >= 1 (xorshift has no state 0)");
    if (wopt.clt_dtype) return cli_usage(cmd, "--clt-dtype: generate loads no transcoder");

    Model m;
    Tokenizer tok;
    if (model_open_flags(&m, model_path, MODEL_OPEN_INT8_ONLY) != CT_OK) return cli_fail(cmd);
    if (tokenizer_open(&tok, tok_path, model_path, m.c.vocab_size) != CT_OK) {
        model_free(&m);
        return cli_fail(cmd);
    }
    int rc = 1, T = m.c.seq_len, n_prompt = 0;
    if (steps == 0 || steps > T) steps = T;
    int *ids = malloc(sizeof(int) * (size_t)T);
    RunState s;
    Sampler smp;
    ThreadPool *pool = NULL;
    memset(&s, 0, sizeof s);
    memset(&smp, 0, sizeof smp);
    if (tokenizer_encode(&tok, prompt, 1, 0, ids, T, &n_prompt) != CT_OK) {
        ct_error_ctx("prompt does not fit the model's context (seq_len %d tokens)", T);
        goto done;
    }
    // Threads (pinned per --numa) and weights (--dtype) before the run state, so its buffers
    // are first touched on the caller's node.
    if (!(pool = pool_create((int)threads))) goto done;
    int arc = cli_apply_model_opts(cmd, &wopt, &m, pool);
    if (arc) {
        pool_destroy(pool);
        free(ids);
        tokenizer_free(&tok);
        model_free(&m);
        return arc;
    }
    if (runstate_init(&s, &m.c, T) != CT_OK || sampler_init(&smp, m.c.vocab_size, (float)temp, (float)topp, seed) != CT_OK)
        goto done;
    // run.c's loop: feed the prompt, then sample; print each piece as it is decided.
    if (n_prompt == 0) {
        ct_error("-p: the prompt is empty and the tokenizer adds no BOS: nothing to start from");
        goto done;
    }
    int token = ids[0], next, pos = 0, stop = tokenizer_stop_id(&tok);
    double t0 = 0;
    while (pos < steps) {
        float *logits = model_forward(&m, &s, token, pos, NULL, pool);
        if (!logits) goto done;
        next = pos < n_prompt - 1 ? ids[pos + 1] : sampler_sample(&smp, logits);
        pos++;
        if (next == stop) break;  // llama2.c: BOS delimits sequences; Hugging Face: EOS
        const char *piece = tokenizer_decode(&tok, token, next);
        if (!piece) goto done;
        tokenizer_print_piece(stdout, piece);
        fflush(stdout);
        token = next;
        if (t0 == 0) t0 = ct_now();
    }
    printf("\n");
    if (pos > 1) fprintf(stderr, "achieved tok/s: %.1f\n", (pos - 1) / (ct_now() - t0));
    rc = 0;
done:
    if (rc) cli_fail(cmd);
    pool_destroy(pool);
    sampler_free(&smp);
    runstate_free(&s);
    free(ids);
    tokenizer_free(&tok);
    model_free(&m);
    return rc;
}
