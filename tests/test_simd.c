// test_simd.c — every kernel of every table this host can run, against double-precision
// references (tolerances of simd.h), the same table's dot_f32 (bit-identity of matvec and
// matmul), scalar.c (elementwise ops) and llama2.c-style loops (scalar fidelity); then the
// dispatch rules: default choice, CTRACE_ISA override, errors for ISAs that cannot run.
// The checks live in kernel_checks.h, shared with the NEON selftest run under qemu.
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/kernel_checks.h"

// Run one check over every enabled table; each failing case has already printed a line.
static void for_each_table(void (*check)(KcStats *, const SimdKernels *), const char *what)
{
    int tested = 0;
    for (int i = 0; i < SIMD_NISA; i++) {
        if (!kc_isa_enabled((SimdIsa)i)) continue;
        const SimdKernels *K = simd_kernels_for((SimdIsa)i);
        cr_assert_not_null(K, "%s reported supported but has no table", simd_isa_name((SimdIsa)i));
        cr_assert_str_eq(K->name, simd_isa_name((SimdIsa)i));
        KcStats st = {0, 0};
        check(&st, K);
        cr_expect_eq(st.failed, 0, "%s: %d of %d %s cases failed (lines above)", K->name, st.failed,
                     st.passed + st.failed, what);
        cr_expect_gt(st.passed, 0, "%s: no %s cases ran", K->name, what);
        tested++;
    }
    cr_assert_geq(tested, 1, "no table tested");
}

static void check_rope(KcStats *st, const SimdKernels *K) { kc_check_rope(st, K, simd_kernels_for(SIMD_SCALAR)); }
static void check_axpy_scale(KcStats *st, const SimdKernels *K)
{
    kc_check_axpy_scale(st, K, simd_kernels_for(SIMD_SCALAR));
}

static void check_axpys(KcStats *st, const SimdKernels *K) { kc_check_axpys(st, K, simd_kernels_for(SIMD_SCALAR)); }
static void check_axpyv(KcStats *st, const SimdKernels *K) { kc_check_axpyv(st, K, simd_kernels_for(SIMD_SCALAR)); }

Test(simd, dot) { for_each_table(kc_check_dot, "dot_f32"); }
Test(simd, matvec_bit_identical_to_dot) { for_each_table(kc_check_matvec, "matvec_f32"); }
Test(simd, matmul_bit_identical_to_dot) { for_each_table(kc_check_matmul, "matmul_f32"); }
Test(simd, rmsnorm_and_aliasing) { for_each_table(kc_check_rmsnorm, "rmsnorm_f32"); }
Test(simd, softmax) { for_each_table(kc_check_softmax, "softmax_f32"); }
Test(simd, swiglu) { for_each_table(kc_check_swiglu, "swiglu_f32"); }
Test(simd, rope_pairs) { for_each_table(check_rope, "rope_pairs_f32"); }
Test(simd, axpy_scale) { for_each_table(check_axpy_scale, "axpy/scale"); }
Test(simd, dots_bit_identical_to_dot) { for_each_table(kc_check_dots, "dots_f32"); }
Test(simd, axpys_bit_identical_to_axpy) { for_each_table(check_axpys, "axpys_f32"); }
Test(simd, axpyv_bit_identical_to_scalar) { for_each_table(check_axpyv, "axpyv_f32"); }

Test(simd, matmul_q8_matvec_q8_encode_q8) { for_each_table(kc_check_matmul_q8, "matmul_q8/matvec_q8/encode_q8"); }
Test(simd, matvec_q8_stream_counts) { for_each_table(kc_check_matvec_q8_streams, "matvec_q8 stream counts"); }
Test(simd, matmul_q8t) { for_each_table(kc_check_matmul_q8t, "matmul_q8t"); }
Test(simd, decode_rows_q8) { for_each_table(kc_check_decode_q8, "decode_rows_q8"); }
Test(simd, q8_act_row) { for_each_table(kc_check_q8_act_row, "q8_act_row"); }

// The int8 format: quantizer rules (never -128, zero/tiny/NaN blocks), exact repack round trips.
Test(simd, q8_format_and_repack)
{
    KcStats st = {0, 0};
    kc_check_q8_format(&st, simd_kernels_for(SIMD_SCALAR));
    cr_expect_eq(st.failed, 0, "%d q8 format cases failed", st.failed);
    cr_expect_gt(st.passed, 0);
}

// Integer kernels are bit-identical across ISAs: every table against the scalar table on the
// same packed data (the per-table checks above compare each against the canonical loop too).
Test(simd, q8_bit_identical_across_tables)
{
    uint64_t seed = 99;
    size_t T = 9, rows = 77, cols = 333, nb = q8_nblocks(cols);
    BlockQ8 *W = kc_q8_matrix(rows, cols, &seed);
    uint8_t *base;
    Q8Panels P = kc_pack(W, rows, cols, 0, &base);
    KcAct X;
    kc_act_init(&X, T, cols, 0, &seed);
    const SimdKernels *S = simd_kernels_for(SIMD_SCALAR);
    float *ref = malloc(T * rows * sizeof(float)), *got = malloc(T * rows * sizeof(float));
    S->matmul_q8(ref, rows, &P, &X.a, T, 0, P.np);
    int tables = 0;
    for (int i = 0; i < SIMD_NISA; i++) {
        const SimdKernels *K = simd_kernels_for((SimdIsa)i);
        if (!K) continue;
        memset(got, 0, T * rows * sizeof(float));
        K->matmul_q8(got, rows, &P, &X.a, T, 0, P.np);
        cr_expect_eq(memcmp(got, ref, T * rows * sizeof(float)), 0, "%s matmul_q8 differs from scalar", K->name);
        tables++;
    }
    cr_expect_geq(tables, 1);
    (void)nb;
    free(W); free(base); kc_act_free(&X); free(ref); free(got);
}

// The engine's scalar path must reproduce llama2.c's logits: scalar.c == run.c's loops.
Test(simd, scalar_matches_llama2c_loops)
{
    KcStats st = {0, 0};
    kc_check_scalar_fidelity(&st, simd_kernels_for(SIMD_SCALAR));
    cr_expect_eq(st.failed, 0, "%d fidelity cases failed", st.failed);
    cr_expect_gt(st.passed, 0);
}

// Every entry of every table is filled (a half-written ISA still falls back to scalar).
Test(simd, tables_complete)
{
    for (int i = 0; i < SIMD_NISA; i++) {
        const SimdKernels *K = simd_kernels_for((SimdIsa)i);
        if (!simd_isa_supported((SimdIsa)i)) {
            cr_expect_null(K);
            continue;
        }
        cr_assert(K->name && K->dot_f32 && K->matvec_f32 && K->matmul_f32 && K->rmsnorm_f32 &&
                  K->softmax_f32 && K->swiglu_f32 && K->rope_pairs_f32 && K->axpy_f32 && K->scale_f32 &&
                  K->matvec_q8 && K->matmul_q8 && K->matmul_q8x2 && K->matmul_q8t && K->encode_q8 && K->decode_rows_q8 && K->q8_act_row,
                  "%s table has a NULL entry", simd_isa_name((SimdIsa)i));
    }
    cr_expect(simd_isa_supported(SIMD_SCALAR));
#if defined(__x86_64__)
    cr_expect(!simd_isa_supported(SIMD_NEON), "neon cannot be supported on x86-64");
#endif
    cr_expect_str_eq(simd_isa_name(SIMD_AVX2), "avx2");
    cr_expect_str_eq(simd_isa_name(SIMD_AVXVNNI), "avxvnni");
    cr_expect_str_eq(simd_isa_name(SIMD_AVX512), "avx512");
    cr_expect_str_eq(simd_isa_name(SIMD_AMX), "amx");
    cr_expect_str_eq(simd_isa_name((SimdIsa)99), "unknown");
#if defined(__x86_64__)
    // Every vector table runs vector int8 products (AVX-512 without VNNI borrows avx2's or
    // avxvnni's), never the scalar reference's.
    const SimdKernels *S = simd_kernels_for(SIMD_SCALAR);
    for (int i = 1; i < SIMD_NISA; i++) {
        const SimdKernels *K = simd_kernels_for((SimdIsa)i);
        if (!K) continue;
        cr_expect(K->matvec_q8 != S->matvec_q8 && K->matvec_q8x2 != S->matvec_q8x2 && K->matmul_q8 != S->matmul_q8 &&
                      K->matmul_q8x2 != S->matmul_q8x2 && K->matmul_q8t != S->matmul_q8t && K->encode_q8 != S->encode_q8,
                  "%s table runs scalar int8 products", K->name);
    }
    // avxvnni: the avx2 table with the int8 products on AVX-VNNI, supported exactly where the
    // kernel reports the avx_vnni flag (an independent reading of cpuid) beside avx2.
    // The power-of-two scale product defaults to vscalefps exactly on AMD (vendor_id).
    FILE *ci = fopen("/proc/cpuinfo", "r");
    if (ci) {
        char line[8192];
        int flag = -1, amd = 0;
        while (flag < 0 && fgets(line, sizeof line, ci)) {
            if (!strncmp(line, "vendor_id", 9)) amd = strstr(line, "AuthenticAMD") != NULL;
            if (!strncmp(line, "flags", 5)) {
                size_t n = strlen(line);
                if (n && line[n - 1] == '\n') line[n - 1] = ' ';
                flag = strstr(line, " avx_vnni ") != NULL;
            }
        }
        fclose(ci);
        if (flag >= 0)
            cr_expect_eq(simd_isa_supported(SIMD_AVXVNNI), flag && simd_isa_supported(SIMD_AVX2),
                         "avxvnni supported %d, /proc/cpuinfo avx_vnni %d", simd_isa_supported(SIMD_AVXVNNI), flag);
        cr_expect_eq(simd_q8_pow2_scalef(0), 0);
        cr_expect_eq(simd_q8_pow2_scalef_on(), amd, "vscalefps default %d on a %s CPU", simd_q8_pow2_scalef_on(),
                     amd ? "AMD" : "non-AMD");
    }
    if (simd_isa_supported(SIMD_AVXVNNI)) {
        const SimdKernels *A = simd_kernels_for(SIMD_AVXVNNI), *V = simd_kernels_for(SIMD_AVX2);
        cr_assert(V != NULL, "avxvnni supported without avx2");
        cr_expect_str_eq(A->name, "avxvnni");
        cr_expect(A->matvec_q8 != V->matvec_q8 && A->matvec_q8x2 != V->matvec_q8x2 && A->matmul_q8 != V->matmul_q8 &&
                      A->matmul_q8x2 != V->matmul_q8x2 && A->matmul_q8t != V->matmul_q8t && A->encode_q8 != V->encode_q8,
                  "avxvnni table does not install its int8 products");
        cr_expect(A->matmul_f32 == V->matmul_f32 && A->decode_rows_q8 == V->decode_rows_q8 &&
                      A->q8_act_row == V->q8_act_row && A->matvec_bf16w == V->matvec_bf16w,
                  "avxvnni table differs from avx2 beyond the int8 products");
    }
    // amx: the avx512 table with the batched int8 products on the tile unit, needing avx512.
    if (simd_isa_supported(SIMD_AMX)) {
        const SimdKernels *A = simd_kernels_for(SIMD_AMX), *V = simd_kernels_for(SIMD_AVX512);
        cr_assert(V != NULL, "amx supported without avx512");
        cr_expect_str_eq(A->name, "amx");
        cr_expect(A->matmul_q8 != V->matmul_q8 && A->matmul_q8x2 != V->matmul_q8x2 && A->encode_q8 != V->encode_q8,
                  "amx table does not install its batched int8 products");
        cr_expect(A->matvec_q8 == V->matvec_q8 && A->matmul_q8t == V->matmul_q8t && A->matmul_f32 == V->matmul_f32,
                  "amx table differs from avx512 beyond the int8 batches");
    }
#endif
    cr_expect(!simd_isa_supported((SimdIsa)99));
}

// ---- dispatch ---------------------------------------------------------------------------
// Criterion runs each test in its own process, so each sees a fresh dispatch state.

Test(dispatch, default_is_best_supported)
{
    unsetenv("CTRACE_ISA");
    SimdIsa best = SIMD_SCALAR;
    for (int i = 0; i < SIMD_NISA; i++)
        if (simd_isa_supported((SimdIsa)i)) best = (SimdIsa)i;
    cr_expect_eq(simd_active_isa(), best, "active %s, best %s", simd_isa_name(simd_active_isa()),
                 simd_isa_name(best));
    cr_expect_eq(simd_kernels(), simd_kernels_for(best));
}

Test(dispatch, env_override_scalar)
{
    setenv("CTRACE_ISA", "scalar", 1);
    cr_expect_eq(simd_active_isa(), SIMD_SCALAR);
    cr_expect_str_eq(simd_kernels()->name, "scalar");
}

Test(dispatch, env_override_each_supported_isa)
{
    // Each choice needs a fresh process: fork one per ISA.
    for (int i = 0; i < SIMD_NISA; i++) {
        if (!simd_isa_supported((SimdIsa)i)) continue;
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            setenv("CTRACE_ISA", simd_isa_name((SimdIsa)i), 1);
            _exit(simd_active_isa() == (SimdIsa)i && strcmp(simd_kernels()->name, simd_isa_name((SimdIsa)i)) == 0 ? 0 : 1);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "CTRACE_ISA=%s not honoured",
                  simd_isa_name((SimdIsa)i));
    }
}

static void call_kernels(void) { simd_kernels(); }

// Run fn in a child with the environment variable var=value; return its exit status (fn
// returning: 0) and stderr.
static int child_with_env(const char *var, const char *value, void (*fn)(void), char *err, size_t errcap)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        setenv(var, value, 1);
        fn();
        _exit(0);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t got;
    while (len + 1 < errcap && (got = read(fd[0], err + len, errcap - 1 - len)) > 0) len += (size_t)got;
    err[len] = 0;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int child_with_isa(const char *value, char *err, size_t errcap)
{
    return child_with_env("CTRACE_ISA", value, call_kernels, err, errcap);
}

Test(dispatch, env_override_unrunnable_exits_2)
{
    char err[512];
#if defined(__x86_64__)
    const char *other = "neon";
#else
    const char *other = "avx2";
#endif
    cr_expect_eq(child_with_isa(other, err, sizeof err), 2, "CTRACE_ISA=%s should exit 2", other);
    cr_expect(strstr(err, "CTRACE_ISA") && strstr(err, other), "message should name the variable and value: %s", err);
    cr_expect_eq(child_with_isa("sse9", err, sizeof err), 2);
    cr_expect(strstr(err, "sse9") && strstr(err, "scalar"), "message should list the choices: %s", err);
    // An ISA this build has but the CPU lacks also exits 2 (only testable on such a CPU).
    for (int i = 0; i < SIMD_NISA; i++)
        if (!simd_isa_supported((SimdIsa)i))
            cr_expect_eq(child_with_isa(simd_isa_name((SimdIsa)i), err, sizeof err), 2, "%s", simd_isa_name((SimdIsa)i));
}

Test(dispatch, unknown_value_exit_code, .exit_code = 2, .init = cr_redirect_stderr)
{
    setenv("CTRACE_ISA", "AVX512", 1);   // names are lower case
    simd_kernels();
}

// The decode matvec's product width: CTRACE_Q8_WIDTH picks it, anything but 256 or 512 exits 2.
static void exit_with_width(void) { _exit(simd_q8_matvec_width_default() == 256 ? 10 : simd_q8_matvec_width_default() == 512 ? 11 : 12); }

Test(dispatch, q8_width_env)
{
    char err[512];
    cr_expect_eq(child_with_env("CTRACE_Q8_WIDTH", "256", exit_with_width, err, sizeof err), 10);
    cr_expect_eq(child_with_env("CTRACE_Q8_WIDTH", "512", exit_with_width, err, sizeof err), 11);
    int rc = child_with_env("CTRACE_Q8_WIDTH", "", exit_with_width, err, sizeof err);   // unset: chosen
    cr_expect(rc == 10 || rc == 11, "default width: child exit %d", rc);
    cr_expect_eq(child_with_env("CTRACE_Q8_WIDTH", "1024", exit_with_width, err, sizeof err), 2);
    cr_expect(strstr(err, "CTRACE_Q8_WIDTH=1024") && strstr(err, "256 or 512"),
              "message should name the variable, the value and the choices: %s", err);
}

#if defined(__x86_64__)
// The clock check behind the default width: a ratio of two clocks, near 1 on any core that
// does not slow down much beside 512-bit products (never above 1 by more than timing noise).
Test(dispatch, avx512_vnni_clock_ratio_is_a_ratio)
{
    // Not under CTRACE_ISA=avx2 or scalar (the sanitizer runs): 512-bit code only where asked for.
    SimdIsa a = simd_active_isa();
    __builtin_cpu_init();
    if ((a != SIMD_AVX512 && a != SIMD_AMX) || !__builtin_cpu_supports("avx512vnni")) return;
    double r = simd_avx512_vnni_clock_ratio();
    cr_expect(r > 0.5 && r < 1.1, "clock beside 512-bit vpdpbusd / alone = %.3f", r);
}
#endif

Test(dispatch, force)
{
    unsetenv("CTRACE_ISA");
    cr_expect_eq(simd_force(SIMD_SCALAR), 0);
    cr_expect_eq(simd_active_isa(), SIMD_SCALAR);
    cr_expect_eq(simd_kernels(), simd_kernels_for(SIMD_SCALAR));
#if defined(__x86_64__)
    cr_expect_eq(simd_force(SIMD_NEON), -1);
#else
    cr_expect_eq(simd_force(SIMD_AVX2), -1);
#endif
    cr_expect_eq(simd_active_isa(), SIMD_SCALAR, "a failed force must not change the table");
    cr_expect_eq(simd_force((SimdIsa)99), -1);
}
