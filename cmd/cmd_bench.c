// cmd_bench.c — `ctrace bench-forward`: prefill and decode throughput of one model, as a
// markdown row.  Decode is also reported as bytes streamed per second (weights and the KV
// cache rows it attends to) and, when the caller passes the DRAM read bandwidth it measured in
// the same run, as a fraction of it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "engine/quantize.h"
#include "simd/simd.h"

void help_bench_forward(void) {
    printf("usage: ctrace bench-forward MODEL [--threads N] [--prompt P] [--gen G] [--isa ISA]\n"
           "                            [--dram-gbs X] [--header] [--dtype f32|q8|q8a8|bf16|bf16dot]\n"
           "                            [--numa MODE] [--best K]\n\n"
           "Times a P-token prefill (default 64) and G decode steps (default 64) on random\n"
           "token ids (seed 1) and prints one markdown row.  decode GB/s = bytes read per token\n"
           "x tok/s: the weights (fp32 parameters, the packed int8 bytes under q8, the bf16\n"
           "matrices under bf16) and the fp32 keys and values attended to (their mean over the G\n"
           "steps); --dram-gbs adds it as a fraction of that bandwidth; --header prints the header.\n"
           "--best K repeats prefill and decode K times and keeps the fastest of each (for shared\n"
           "machines; default 1).\n%s", cli_weight_help());
}

int cmd_bench_forward(int argc, char **argv) {
    const char *cmd = "bench-forward", *path = NULL, *isa = NULL, *v;
    long threads = 0, P = 64, G = 64, best = 1;
    double dram = 0;
    int header = 0;
    CliWeightOpts wopt = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int wo = cli_weight_opt(cmd, argc, argv, &i, &wopt);
        if (wo < 0) return 2;
        if (wo > 0) continue;
        if (!strcmp(a, "--best")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 100, &best)) return 2; continue; }
        if (!strcmp(a, "--threads")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 0, 4096, &threads)) return 2; }
        else if (!strcmp(a, "--prompt")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1 << 20, &P)) return 2; }
        else if (!strcmp(a, "--gen")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1 << 20, &G)) return 2; }
        else if (!strcmp(a, "--dram-gbs")) { if (!(v = cli_value(cmd, argc, argv, &i)) || cli_float(cmd, a, v, 0, 1e6, &dram)) return 2; }
        else if (!strcmp(a, "--isa")) { if (!(isa = cli_value(cmd, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--header")) header = 1;
        else if (a[0] == '-') return cli_usage(cmd, "unknown option %s", a);
        else if (!path) path = a;
        else return cli_usage(cmd, "unexpected argument '%s'", a);
    }
    if (!path) return cli_usage(cmd, "missing MODEL");
    if (isa) {
        int found = 0;
        for (int k = 0; k < SIMD_NISA; k++)
            if (!strcmp(isa, simd_isa_name((SimdIsa)k))) {
                if (simd_force((SimdIsa)k) != 0) return cli_usage(cmd, "--isa %s: not supported on this CPU/build", isa);
                found = 1;
            }
        if (!found) return cli_usage(cmd, "--isa: expected scalar|avx2|avxvnni|avx512|amx|neon, got '%s'", isa);
    }
    Model m;
    if (model_open_flags(&m, path, MODEL_OPEN_INT8_ONLY) != CT_OK) return cli_fail(cmd);
    if (P + G > m.c.seq_len) {
        ct_error("--prompt %ld + --gen %ld exceeds the model's seq_len %d", P, G, m.c.seq_len);   // before model_free clears m
        model_free(&m);
        return cli_fail(cmd);
    }
    RunState s;
    ThreadPool *pool = pool_create((int)threads);
    int arc = cli_apply_model_opts(cmd, &wopt, &m, pool);
    if (arc) {
        pool_destroy(pool);
        model_free(&m);
        return arc;
    }
    if (runstate_init(&s, &m.c, (int)(P + G)) != CT_OK) { pool_destroy(pool); model_free(&m); return cli_fail(cmd); }
    int *ids = malloc(sizeof(int) * (size_t)(P + G));
    uint64_t r = 1;
    for (long i = 0; i < P + G; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int)((r >> 33) % (uint64_t)m.c.vocab_size);
    }
    // Warm-up: touch every weight once so the first timing is not page faults.
    model_forward_seq(&m, &s, ids, 1, NULL, NULL, pool);
    double prefill = 0, decode = 0;
    for (long k = 0; k < best; k++) {   // keep the fastest pass (the least disturbed)
        double t0 = ct_now();
        model_forward_seq(&m, &s, ids, (int)P, NULL, NULL, pool);
        double t1 = ct_now();
        for (long i = 0; i < G; i++) model_forward(&m, &s, ids[P + i], (int)(P + i), NULL, pool);
        double t2 = ct_now();
        if ((double)P / (t1 - t0) > prefill) prefill = (double)P / (t1 - t0);
        if ((double)G / (t2 - t1) > decode) decode = (double)G / (t2 - t1);
    }
    // Bytes a decode step must stream: every weight matrix once (norms are negligible) — fp32
    // parameters, the packed int8 weights (quants + scales) under q8, the bf16 matrices under
    // bf16 — and the keys and values it attends to (fp32 cache rows of Dkv floats; a
    // sliding-window layer reads at most its window), averaged over the G steps.
    size_t params = model_param_count(&m.c);
    CtDtype dt = model_dtype(&m);
    double bytes_tok = ct_dtype_is_q8(dt) ? (double)m.q8->bytes
                     : model_is_bf16(&m) ? (double)m.bf16->bytes : (double)params * sizeof(float);
    double kv_rows = 0;
    for (long i = 0; i < G; i++)
        for (int l = 0; l < m.c.n_layers; l++) {
            long keys = P + i + 1, w = config_window(&m.c, l);
            kv_rows += (double)(w > 0 && keys > w ? w : keys);
        }
    bytes_tok += 2.0 * kv_rows / (double)G * (double)m.c.n_kv_heads * m.c.head_dim * sizeof(float);
    double gbs = decode * bytes_tok / 1e9;
    char cpu[128] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) { snprintf(cpu, sizeof cpu, "%s", c + 2); cpu[strcspn(cpu, "\n")] = 0; }
                break;
            }
        fclose(f);
    }
    if (header)
        printf("| model | params | CPU | ISA | dtype | threads | prefill tok/s (P=%ld) | decode tok/s | decode GB/s | of DRAM read |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n", P);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char frac[32] = "n/a (no probe)";
    if (dram > 0) snprintf(frac, sizeof frac, "%.0f%%", 100.0 * gbs / dram);
    printf("| %s | %.1fM | %s | %s | %s | %d | %.1f | %.1f | %.2f | %s |\n", base, params / 1e6, cpu,
           simd_kernels()->name, ct_dtype_name(dt), pool_size(pool), prefill, decode, gbs, frac);
    free(ids);
    runstate_free(&s);
    pool_destroy(pool);
    model_free(&m);
    return 0;
}
