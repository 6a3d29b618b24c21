// cmd_quantize.c — `ctrace quantize IN OUT`, and the weight options every subcommand that
// loads a model or a transcoder shares: --dtype f32|q8|q8a8|bf16|bf16dot, --clt-dtype f32|q8|q8a8,
// --numa MODE.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "engine/clt.h"
#include "engine/quantize.h"
#include "simd/simd.h"

// ---- shared weight options -------------------------------------------------------------------
int cli_weight_opt(const char *cmd, int argc, char **argv, int *i, CliWeightOpts *o) {
    const char *a = argv[*i], **dst = NULL;
    if (!strcmp(a, "--dtype")) dst = &o->dtype;
    else if (!strcmp(a, "--clt-dtype")) dst = &o->clt_dtype;
    else if (!strcmp(a, "--numa")) dst = &o->numa;
    else return 0;
    const char *v = cli_value(cmd, argc, argv, i);
    if (!v) return -1;
    CtDtype d = CT_DTYPE_F32;
    NumaMode n;
    int bad = dst == &o->numa ? numa_mode_parse(v, &n) != CT_OK : ct_dtype_parse(v, &d) != CT_OK;
    if (dst == &o->clt_dtype && d != CT_DTYPE_F32 && !ct_dtype_is_q8(d)) bad = 1;   // transcoders: f32|q8|q8a8
    if (bad) {
        cli_usage(cmd, "option %s: expected %s, got '%s'", a,
                  dst == &o->numa ? "off|local|interleave|replicate"
                  : dst == &o->dtype ? "f32|q8|q8a8|bf16|bf16dot" : "f32|q8|q8a8",
                  v);
        return -1;
    }
    *dst = v;
    return 1;
}

// --numa first (pins the pool's threads, so int8 packing below first-touches on the right
// nodes), then --dtype.  Without --dtype the checkpoint's own dtype runs (a Hugging Face bf16
// checkpoint runs f32: the loader widens it); a quantized checkpoint is re-packed when --numa
// asks for a placement.  bf16 / bf16dot: bf16 copies of the matrices; the fp32 ones are
// released unless f32_views.
int cli_apply_model_opts(const char *cmd, const CliWeightOpts *o, Model *m, ThreadPool *pool) {
    NumaMode nm = NUMA_OFF;
    if (o->numa && numa_mode_parse(o->numa, &nm) != CT_OK) return cli_usage(cmd, "%s", ct_errmsg());
    if (numa_setup(pool, nm, NULL) != CT_OK) return cli_fail(cmd);
    CtDtype d = model_dtype(m);
    if (o->dtype && ct_dtype_parse(o->dtype, &d) != CT_OK) return cli_usage(cmd, "--dtype %s", ct_errmsg());
    QuantOpts q = quant_opts_default();
    q.numa = nm;
    q.pool = pool;
    q.dequant_f32 = o->f32_views ? 1 : -1;
    int q8 = ct_dtype_is_q8(d);
    if (q8) q.act_digits = ct_dtype_digits(d);
    int repack = q8 && (!model_is_q8(m) || nm != NUMA_OFF || o->f32_views);
    if (d == CT_DTYPE_F32) {
        if (model_set_dtype(m, CT_DTYPE_F32, NULL) != CT_OK) return cli_fail(cmd);
    }
    else if (q8) {
        if (repack && model_quantize(m, &q) != CT_OK) return cli_fail(cmd);
        m->q8->act_digits = q.act_digits;   // a quantized checkpoint keeps its packing: only the activations change
    } else {
        const SimdKernels *K = simd_kernels(), *S = simd_kernels_for(SIMD_SCALAR);
        if (d == CT_DTYPE_BF16DOT && K != S && K->matmul_bf16dot == S->matmul_bf16dot)
            fprintf(stderr, "ctrace %s: --dtype bf16dot: the %s table has no VDPBF16PS (AVX512_BF16): the scalar "
                            "loop runs (slow); --dtype bf16 runs vector kernels\n", cmd, K->name);
        if (model_to_bf16(m, d == CT_DTYPE_BF16DOT, &q) != CT_OK) return cli_fail(cmd);
    }
    return 0;
}

// --clt-dtype q8 for a command whose fp32 code reads the transcoder (f32_views): decoders are
// loaded resident (not memory-mapped), so clt_quantize can overwrite them with their int8
// values and the fp32 readers (attribution sweeps, interventions) add exactly what the int8
// decoder adds.  Otherwise lazy loading as usual.
int cli_clt_load_flags(const CliWeightOpts *o) {
    return o->f32_views && o->clt_dtype && (!strcmp(o->clt_dtype, "q8") || !strcmp(o->clt_dtype, "q8a8"))
         ? CLT_LOAD_EAGER : 0;
}

int cli_apply_clt_opts(const char *cmd, const CliWeightOpts *o, struct Clt *c, ThreadPool *pool) {
    CtDtype d = CT_DTYPE_F32;
    if (!o->clt_dtype) return 0;
    if (ct_dtype_parse(o->clt_dtype, &d) != CT_OK) return cli_usage(cmd, "--clt-dtype %s", ct_errmsg());
    NumaMode nm = NUMA_OFF;
    if (o->numa && numa_mode_parse(o->numa, &nm) != CT_OK) return cli_usage(cmd, "%s", ct_errmsg());
    QuantOpts q = quant_opts_default();
    q.numa = nm;
    q.pool = pool;
    q.dequant_f32 = o->f32_views ? 1 : -1;
    if (clt_set_dtype(c, d, &q) != CT_OK) return cli_fail(cmd);
    return 0;
}

const char *cli_clt_dtype_help(void) {
    return "  --clt-dtype f32|q8|q8a8\n"
           "                      weights of the transcoder: q8 = int8 encoders (activations as\n"
           "                      16-bit integers per block of 32, two int8 digits) and int8\n"
           "                      decoder rows; q8a8 = 8-bit activations (faster, less exact);\n"
           "                      W_skip and biases stay fp32 (default f32)\n";
}

const char *cli_weight_help(void) {
    return "  --dtype f32|q8|q8a8|bf16|bf16dot\n"
           "                      weights of the model: q8 = int8 blocks of 32 with an fp32 scale,\n"
           "                      activations quantized per block of 32 to 16-bit integers (two\n"
           "                      int8 digits) in each product; q8a8 = 8-bit activations (half\n"
           "                      the int8 work in prefill, less exact); bf16 =\n"
           "                      bf16 matrices (rounded to nearest even), fp32 arithmetic: the\n"
           "                      logits of f32 on the rounded weights, bit for bit; bf16dot = bf16\n"
           "                      activations too (VDPBF16PS on AVX512_BF16 CPUs; approximate)\n"
           "                      (default: the checkpoint's own dtype; `ctrace quantize` files\n"
           "                      are q8; Hugging Face bf16 checkpoints run f32)\n"
           "  --numa MODE         off|local|interleave|replicate: pin threads and place the int8\n"
           "                      weights per NUMA node (one node here: all modes equivalent)\n";
}

// ---- ctrace quantize -------------------------------------------------------------------------
void help_quantize(void) {
    printf("usage: ctrace quantize IN OUT [--threads N]\n\n"
           "Writes OUT, a quantized checkpoint (magic CTRACEQ8, version 1) of the llama2.c model\n"
           "IN: every matrix the forward multiplies as int8 blocks of 32 values with an fp32 scale\n"
           "(the scale minimising each block's squared error), norms in fp32.  Every subcommand\n"
           "loads OUT directly (detected by its magic) without re-quantizing; --dtype f32 runs it\n"
           "in fp32 on the dequantized weights.  The written file is loaded back and its logits on\n"
           "a few tokens are compared with `--dtype q8` on IN (they must match bit for bit).\n");
}

int cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize", *in = NULL, *out = NULL, *v;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--threads")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 0, 4096, &threads)) return 2; }
        else if (a[0] == '-') return cli_usage(cmd, "unknown option %s", a);
        else if (!in) in = a;
        else if (!out) out = a;
        else return cli_usage(cmd, "unexpected argument '%s'", a);
    }
    if (!in || !out) return cli_usage(cmd, "expected IN and OUT");
    if (!strcmp(in, out)) return cli_usage(cmd, "IN and OUT are the same file");
    Model m, mq;
    memset(&mq, 0, sizeof mq);
    if (model_load_llama2c(&m, in) != CT_OK) return cli_fail(cmd);
    int rc = 1;
    ThreadPool *pool = pool_create((int)threads);
    float *a = NULL, *b = NULL;
    QuantOpts q = quant_opts_default();
    q.pool = pool;
    double t0 = ct_now();
    if (!pool || model_quantize(&m, &q) != CT_OK || model_save_q8(&m, out) != CT_OK) goto done;
    double t1 = ct_now();
    // Check: the file loads as int8 and gives exactly the logits of --dtype q8 on IN.
    if (model_load_llama2c(&mq, out) != CT_OK) goto done;
    int n = m.c.seq_len < 8 ? m.c.seq_len : 8, ids[8];
    for (int i = 0; i < n; i++) ids[i] = (1 + 97 * i) % m.c.vocab_size;
    size_t V = (size_t)m.c.vocab_size;
    a = malloc(sizeof(float) * V * (size_t)n);
    b = malloc(sizeof(float) * V * (size_t)n);
    RunState s1, s2;
    if (!a || !b || runstate_init(&s1, &m.c, n) != CT_OK) goto done;
    if (runstate_init(&s2, &mq.c, n) != CT_OK) { runstate_free(&s1); goto done; }
    int ok = model_forward_seq(&m, &s1, ids, n, a, NULL, pool) == CT_OK &&
             model_forward_seq(&mq, &s2, ids, n, b, NULL, pool) == CT_OK;
    runstate_free(&s1);
    runstate_free(&s2);
    if (!ok) goto done;
    if (memcmp(a, b, sizeof(float) * V * (size_t)n) != 0) {
        ct_error("%s: logits of the written file differ from --dtype q8 on %s (please report)", out, in);
        goto done;
    }
    fprintf(stderr, "wrote %s: %zu parameters, %zu bytes (fp32 checkpoint %zu bytes), %.1f s; reload check ok\n",
            out, model_param_count(&m.c), mq.file.size, m.file.size, t1 - t0);
    rc = 0;
done:
    if (rc) cli_fail(cmd);
    free(a);
    free(b);
    pool_destroy(pool);
    model_free(&mq);
    model_free(&m);
    return rc;
}
