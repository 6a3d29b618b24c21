// cmd_model.c — `ctrace info`, `ctrace logits`, `ctrace mkmodel`.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "engine/mem.h"
#include "engine/quantize.h"
#include "engine/tokenizer.h"
#include "simd/simd.h"

void help_info(void) {
    printf("usage: ctrace info MODEL [--threads N] [--dtype f32|q8|q8a8|bf16|bf16dot] [--numa MODE]\n\n"
           "Prints the configuration, parameter count, the kernel table (ISA) chosen for this CPU,\n"
           "threads, NUMA nodes, the weight dtype and the xxh3-64 fingerprint of the checkpoint\n"
           "file (llama2.c or a `ctrace quantize` q8 checkpoint).\n%s", cli_weight_help());
}

int cmd_info(int argc, char **argv) {
    const char *cmd = "info", *path = NULL, *v;
    long threads = 0;
    CliWeightOpts wopt = {0};
    for (int i = 1; i < argc; i++) {
        int wo = cli_weight_opt(cmd, argc, argv, &i, &wopt);
        if (wo < 0) return 2;
        if (wo > 0) continue;
        if (!strcmp(argv[i], "--threads")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, "--threads", v, 0, 4096, &threads)) return 2; }
        else if (argv[i][0] == '-') return cli_usage(cmd, "unknown option %s", argv[i]);
        else if (!path) path = argv[i];
        else return cli_usage(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!path) return cli_usage(cmd, "missing MODEL");
    if (wopt.clt_dtype) return cli_usage(cmd, "--clt-dtype: info loads no transcoder");
    Model m;
    if (model_open(&m, path) != CT_OK) return cli_fail(cmd);
    const Config *c = &m.c;
    int from_q8 = m.q8 != NULL;   // a quantized checkpoint
    ThreadPool *pool = pool_create((int)threads);
    int arc = cli_apply_model_opts(cmd, &wopt, &m, pool);
    if (arc) {
        pool_destroy(pool);
        model_free(&m);
        return arc;
    }
    char fp[17];
    ct_fingerprint_hex(m.fingerprint, fp);
    printf("model        %s\n", path);
    if (c->arch != ARCH_LLAMA2C)
        printf("format       Hugging Face %s, %s safetensors (%zu bytes of tensors)\n", model_arch_name(c->arch),
               m.src_dtype, m.src_bytes);
    else
        printf("format       %s (%zu bytes)\n", from_q8 ? "ctrace quantized checkpoint CTRACEQ8 v1" : "llama2.c version 0",
               m.file.size);
    printf("dim          %d\nhidden_dim   %d\nn_layers     %d\nn_heads      %d\nn_kv_heads   %d\n"
           "head_dim     %d\nvocab_size   %d\nseq_len      %d\nclassifier   %s\n",
           c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
           c->vocab_size, c->seq_len, c->shared_classifier ? "tied (token embedding)" : "untied");
    printf("parameters   %zu\n", model_param_count(c));
    printf("isa          %s\n", simd_kernels()->name);
    printf("threads      %d\n", pool_size(pool));
    printf("numa_nodes   %d\n", mem_numa_nodes());
    printf("numa         %s\n", wopt.numa ? wopt.numa : "off");
    if (model_is_q8(&m))
        printf("dtype        %s (int8 blocks of 32 + fp32 scale, %d-bit activations; %.1f MB packed, %d cop%s)\n",
               ct_dtype_name(model_dtype(&m)), 8 * m.q8->act_digits, m.q8->bytes / 1e6, m.q8->ncopies,
               m.q8->ncopies == 1 ? "y" : "ies");
    else if (model_dtype(&m) != CT_DTYPE_F32)
        printf("dtype        %s (weights of the forward's products; norms and embeddings fp32)\n",
               ct_dtype_name(model_dtype(&m)));
    else
        printf("dtype        f32%s\n", from_q8 ? " (dequantized from int8)" : "");
    printf("xxh3         %s\n", fp);
    pool_destroy(pool);
    model_free(&m);
    return 0;
}

void help_logits(void) {
    printf("usage: ctrace logits MODEL --tokens 1,403,407 [-o out.f32] [--threads N] [--dtype f32|q8|q8a8|bf16|bf16dot]\n"
           "                     [--numa MODE]\n\n"
           "Runs the token ids through the model and writes the logits after each position as\n"
           "float32 little-endian [T, V] (written to a temp file, then renamed).  Without -o,\n"
           "prints each position's argmax and top logit.\n%s", cli_weight_help());
}

int cmd_logits(int argc, char **argv) {
    const char *cmd = "logits", *path = NULL, *toks = NULL, *out = NULL, *v;
    long threads = 0;
    CliWeightOpts wopt = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int wo = cli_weight_opt(cmd, argc, argv, &i, &wopt);
        if (wo < 0) return 2;
        if (wo > 0) continue;
        if (!strcmp(a, "--tokens")) { if (!(toks = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-o")) { if (!(out = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--threads")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 0, 4096, &threads)) return 2; }
        else if (a[0] == '-') return cli_usage(cmd, "unknown option %s", a);
        else if (!path) path = a;
        else return cli_usage(cmd, "unexpected argument '%s'", a);
    }
    if (!path) return cli_usage(cmd, "missing MODEL");
    if (!toks) return cli_usage(cmd, "missing --tokens");
    if (wopt.clt_dtype) return cli_usage(cmd, "--clt-dtype: logits loads no transcoder");
    Model m;
    if (model_open_flags(&m, path, MODEL_OPEN_INT8_ONLY) != CT_OK) return cli_fail(cmd);
    int T = m.c.seq_len, n = 0, rc = 1;
    size_t V = (size_t)m.c.vocab_size;
    int *ids = malloc(sizeof(int) * ((size_t)T + 1));
    float *logits = NULL;
    RunState s;
    memset(&s, 0, sizeof s);
    ThreadPool *pool = NULL;
    // Parse one more than the context so "too long" is reported as such.
    if (tokens_parse_list(toks, m.c.vocab_size, ids, T + 1, &n) != CT_OK) {
        ct_error_ctx("--tokens");
        goto done;
    }
    if (n > T) {
        ct_error("--tokens: more than %d tokens, longer than the model's context (seq_len %d)", T, T);
        goto done;
    }
    if (!(pool = pool_create((int)threads))) goto done;
    int arc = cli_apply_model_opts(cmd, &wopt, &m, pool);
    if (arc) {
        pool_destroy(pool);
        free(ids);
        model_free(&m);
        return arc;
    }
    if (runstate_init(&s, &m.c, n) != CT_OK) goto done;
    if (!(logits = malloc(sizeof(float) * (size_t)n * V))) { ct_error("out of memory"); goto done; }
    if (model_forward_seq(&m, &s, ids, n, logits, NULL, pool) != CT_OK) goto done;
    if (out) {
        if (ct_write_file_atomic(out, logits, sizeof(float) * (size_t)n * V) != CT_OK) goto done;
    } else {
        for (int p = 0; p < n; p++) {
            const float *row = logits + (size_t)p * V;
            size_t best = 0;
            for (size_t j = 1; j < V; j++) if (row[j] > row[best]) best = j;
            printf("pos %d token %d argmax %zu logit %.6f\n", p, ids[p], best, row[best]);
        }
    }
    rc = 0;
done:
    if (rc) cli_fail(cmd);
    pool_destroy(pool);
    free(logits);
    runstate_free(&s);
    free(ids);
    model_free(&m);
    return rc;
}

void help_mkmodel(void) {
    printf("usage: ctrace mkmodel --dim D --layers L --heads H --kv-heads HKV --hidden HD --vocab V\n"
           "                      [--seq-len S] [--untied] --seed S -o OUT.bin\n\n"
           "Writes a random llama2.c checkpoint (weights ~ U(+-sqrt(3/fan_in)), gains 1): the\n"
           "same seed gives the same file.  For benchmarks at realistic sizes, e.g. the ~100M\n"
           "model: --dim 768 --layers 12 --heads 12 --kv-heads 12 --hidden 2048 --vocab 32000.\n");
}

int cmd_mkmodel(int argc, char **argv) {
    const char *cmd = "mkmodel", *out = NULL, *v;
    long dim = 0, layers = 0, heads = 0, kv = 0, hidden = 0, vocab = 0, seq = 256;
    uint64_t seed = 0;
    int have_seed = 0, untied = 0;
    struct { const char *opt; long *dst; } iopts[] = {
        {"--dim", &dim}, {"--layers", &layers}, {"--heads", &heads}, {"--kv-heads", &kv},
        {"--hidden", &hidden}, {"--vocab", &vocab}, {"--seq-len", &seq},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int matched = 0;
        for (size_t k = 0; k < sizeof iopts / sizeof iopts[0]; k++)
            if (!strcmp(a, iopts[k].opt)) {
                if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1 << 24, iopts[k].dst)) return 2;
                matched = 1;
            }
        if (matched) continue;
        if (!strcmp(a, "--seed") || !strcmp(a, "-s")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_u64(cmd, a, v, &seed)) return 2; have_seed = 1; }
        else if (!strcmp(a, "-o")) { if (!(out = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--untied")) untied = 1;
        else return cli_usage(cmd, "unknown option %s", a);
    }
    if (!dim || !layers || !heads || !hidden || !vocab)
        return cli_usage(cmd, "--dim, --layers, --heads, --hidden and --vocab are required");
    if (!kv) kv = heads;
    if (!have_seed) return cli_usage(cmd, "--seed is required (seeds are explicit)");
    if (!out) return cli_usage(cmd, "missing -o OUT.bin");
    Config c = {.dim = (int)dim, .hidden_dim = (int)hidden, .n_layers = (int)layers,
                .n_heads = (int)heads, .n_kv_heads = (int)kv, .vocab_size = (int)vocab,
                .seq_len = (int)seq, .shared_classifier = !untied};
    if (model_write_random(out, &c, seed) != CT_OK) return cli_fail(cmd);
    c.head_dim = c.dim / c.n_heads;
    fprintf(stderr, "wrote %s: %zu parameters\n", out, model_param_count(&c));
    return 0;
}
