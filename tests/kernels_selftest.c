// kernels_selftest.c — the kernel checks of tests/test_simd.c without Criterion, for targets
// where Criterion is not installed (aarch64 under qemu: `make build/aarch64/kernels_selftest`,
// `qemu-aarch64 -L /usr/aarch64-linux-gnu build/aarch64/kernels_selftest`).  Runs every check
// on every table the host supports, prints one line per failing case and a final line
// "N passed, N failed"; exits 1 if anything failed.  Also runs the int8 golden accuracy check
// of tests/quant_checks.h on the active table when the shared models are present.
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
        QcGolden g = qc_golden_q8(sh);
        kc_case(&st, qc_ok(&g), simd_kernels()->name, "q8 golden accuracy: %s", g.err[0] ? g.err : "below the acceptance");
    } else {
        fprintf(stderr, "q8 golden accuracy: skipped (%s not found)\n", probe);
    }
    printf("%d passed, %d failed\n", st.passed, st.failed);
    return st.failed ? 1 : 0;
}
