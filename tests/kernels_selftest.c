// kernels_selftest.c — the kernel checks of tests/test_simd.c without Criterion, for targets
// where Criterion is not installed (aarch64 under qemu: `make build/aarch64/kernels_selftest`,
// `qemu-aarch64 -L /usr/aarch64-linux-gnu build/aarch64/kernels_selftest`).  Runs every check
// on every table the host supports, prints one line per failing case and a final line
// "N passed, N failed"; exits 1 if anything failed.  Also runs the int8 golden accuracy check
// of tests/quant_checks.h on the active table when the shared models are present, and the
// bf16-weight kernel checks of tests/bf16_checks.h on every table.
#include "tests/bf16_checks.h"
#include "tests/kernel_checks.h"
#include "tests/quant_checks.h"

int main(void)
{
    KcStats st = {0, 0};
    for (int i = 0; i < SIMD_NISA; i++) {
        if (!kc_isa_enabled((SimdIsa)i)) continue;
        const SimdKernels *K = simd_kernels_for((SimdIsa)i);
        int before = st.failed;
        kc_case(&st, K != NULL && strcmp(K->name, simd_isa_name((SimdIsa)i)) == 0, simd_isa_name((SimdIsa)i),
                "table missing or misnamed");
        if (!K) continue;
        kc_check_all(&st, K);
        bc_check_all(&st, K);
        fprintf(stderr, "%s: %s\n", K->name, st.failed == before ? "ok" : "FAILED");
    }
#if defined(__aarch64__)
    // NEON is mandatory on AArch64: it must be the default table.
    const char *env = getenv("CTRACE_ISA");
    kc_case(&st, simd_isa_supported(SIMD_NEON), "neon", "not supported on aarch64");
    if (!env || !*env)
        kc_case(&st, simd_active_isa() == SIMD_NEON, "neon", "not the default table (got %s)",
                simd_isa_name(simd_active_isa()));
#endif
    // int8 forward end to end on the active table (NEON under qemu): stories260K q8 vs the
    // golden fp32 logits (tests/quant_checks.h).  Skipped when the shared data is absent.
    const char *sh = getenv("SHARED") && *getenv("SHARED") ? getenv("SHARED") : "../shared";
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/models/stories260K/golden/goldens.json", sh);
    FILE *pf = fopen(probe, "r");
    if (pf) {
        fclose(pf);
        QcGolden g = qc_golden_q8(sh, CT_DTYPE_Q8);
        kc_case(&st, qc_ok(&g, 0.99), simd_kernels()->name, "q8 golden accuracy: %s", g.err[0] ? g.err : "below the acceptance");
        g = qc_golden_q8(sh, CT_DTYPE_Q8A8);
        kc_case(&st, qc_ok(&g, 0.98), simd_kernels()->name, "q8a8 golden accuracy: %s", g.err[0] ? g.err : "below the acceptance");
    } else {
        fprintf(stderr, "q8 golden accuracy: skipped (%s not found)\n", probe);
    }
    // bf16 forward end to end on the active table: the bf16 Hugging Face checkpoint gives the
    // same logits with --dtype bf16 (bf16w kernels) as its f32 load, bit for bit.
    char bdir[1024];
    snprintf(bdir, sizeof bdir, "%s/models/hf-tiny/llama/bf16", sh);
    Model ma, mb;
    if (model_open(&ma, bdir) == CT_OK) {
        int ok = model_open(&mb, bdir) == CT_OK && model_set_dtype(&mb, CT_DTYPE_BF16, NULL) == CT_OK;
        int ids[12] = {1, 403, 407, 100, 2, 9, 77, 300, 511, 0, 17, 250};
        size_t V = (size_t)ma.c.vocab_size;
        float *la = malloc(12 * V * sizeof(float)), *lb = malloc(12 * V * sizeof(float));
        RunState sa, sb;
        memset(&sa, 0, sizeof sa), memset(&sb, 0, sizeof sb);
        ok = ok && runstate_init(&sa, &ma.c, 12) == CT_OK;
        ok = ok && runstate_init(&sb, &mb.c, 12) == CT_OK;
        ok = ok && model_forward_seq(&ma, &sa, ids, 12, la, NULL, NULL) == CT_OK &&
             model_forward_seq(&mb, &sb, ids, 12, lb, NULL, NULL) == CT_OK;
        kc_case(&st, ok && memcmp(la, lb, 12 * V * sizeof(float)) == 0, simd_kernels()->name,
                "bf16 checkpoint: --dtype bf16 logits differ from its f32 load%s", ok ? "" : " (or failed to run)");
        runstate_free(&sa), runstate_free(&sb);
        free(la), free(lb);
        model_free(&ma), model_free(&mb);
    } else {
        fprintf(stderr, "bf16 forward: skipped (%s)\n", ct_errmsg());
    }
    printf("%d passed, %d failed\n", st.passed, st.failed);
    return st.failed ? 1 : 0;
}
