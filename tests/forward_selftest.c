// forward_selftest.c — the golden forward checks as a plain program (no Criterion), built for
// aarch64 and run under qemu-aarch64 by `make test`: proves the NEON table end to end.
// For every kernel table the machine runs (scalar and NEON on aarch64), with 1 and 2 threads:
// the stories260K goldens of the reference program (tests/test_forward.c's checks) and the
// Hugging Face goldens of llama (fp32 and bf16), qwen3, gemma2 and gpt2 (tests/test_hf_model.c's
// checks); both from tests/golden_checks.h.  Then the logits of every model with 2 and 3
// threads must be bit-identical to 1 thread (static partitioning).  The shared data is read from $SHARED (default
// ../shared).  Prints one line per check and "N passed, N failed"; exits 1 on any failure.
#include <stdio.h>
#include <stdlib.h>

#include "simd/simd.h"
#include "tests/golden_checks.h"

static void note(const char *what, const GoldenHfErrs *e) {
    printf("     %s: logits %.2e hidden %.2e layers %.2e attn %.2e\n", what, e->logits, e->hidden, e->layers, e->attn);
}

static void report(const GoldenResult *r, const char *what, int *pass, int *fail) {
    if (r->fails) {
        (*fail)++;
        printf("FAIL %s (%d failures):\n%s", what, r->fails, r->msg);
    } else {
        (*pass)++;
        printf("ok   %s\n", what);
    }
    fflush(stdout);
}

// Logits of a 40-token prefill with pools of 2 and 3 threads: the same bits as with none.
static void threads_identical(const char *path, const char *isa, int *pass, int *fail) {
    GoldenResult r;
    memset(&r, 0, sizeof r);
    Model m;
    if (model_open(&m, path) != CT_OK) {
        golden_fail(&r, "%s", ct_errmsg());
    } else {
        int T = m.c.seq_len < 40 ? m.c.seq_len : 40, V = m.c.vocab_size, ids[40];
        for (int i = 0; i < T; i++) ids[i] = (i * 37 + 1) % V;
        size_t n = (size_t)T * V;
        float *l1 = malloc(sizeof(float) * n), *ln = malloc(sizeof(float) * n);
        RunState s;
        if (runstate_init(&s, &m.c, T) != CT_OK || model_forward_seq(&m, &s, ids, T, l1, NULL, NULL) != CT_OK) {
            golden_fail(&r, "%s", ct_errmsg());
        } else {
            for (int th = 2; th <= 3; th++) {
                ThreadPool *pool = pool_create(th);
                if (!pool || model_forward_seq(&m, &s, ids, T, ln, NULL, pool) != CT_OK)
                    golden_fail(&r, "%d threads: %s", th, ct_errmsg());
                else if (memcmp(l1, ln, sizeof(float) * n) != 0)
                    golden_fail(&r, "%d threads: logits differ from 1 thread", th);
                pool_destroy(pool);
            }
            runstate_free(&s);
        }
        free(l1), free(ln);
        model_free(&m);
    }
    char what[1200];
    snprintf(what, sizeof what, "%s: 2 and 3 threads bit-identical to 1 [%s]", path, isa);
    report(&r, what, pass, fail);
}

int main(void) {
    const char *shared = getenv("SHARED") && *getenv("SHARED") ? getenv("SHARED") : "../shared";
    static const char *const archs[] = {"llama", "qwen3", "gemma2", "gpt2"};
    int pass = 0, fail = 0;
    for (int isa = 0; isa < SIMD_NISA; isa++) {
        if (!simd_isa_supported((SimdIsa)isa)) continue;
        simd_force((SimdIsa)isa);
        const char *name = simd_isa_name((SimdIsa)isa);
        for (int th = 1; th <= 2; th++) {
            // 2 threads: a real pool, so the pool's hand-off runs under qemu too (results must
            // be bit-identical to 1 thread: decode == prefill bits and the same tolerances).
            ThreadPool *pool = th > 1 ? pool_create(th) : NULL;
            if (th > 1 && !pool) {
                printf("FAIL pool_create(%d): %s\n", th, ct_errmsg());
                fail++;
                continue;
            }
            char what[128];
            GoldenResult r = golden_check_all(shared, pool);
            snprintf(what, sizeof what, "stories260K goldens [%s, %d threads]", name, th);
            report(&r, what, &pass, &fail);
            for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
                memset(&r, 0, sizeof r);
                golden_hf_arch(&r, shared, archs[a], pool, name, note);
                snprintf(what, sizeof what, "hf-tiny/%s goldens [%s, %d threads]", archs[a], name, th);
                report(&r, what, &pass, &fail);
            }
            pool_destroy(pool);
        }
        char path[1100];
        snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", shared);
        threads_identical(path, name, &pass, &fail);
        for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
            snprintf(path, sizeof path, "%s/models/hf-tiny/%s", shared, archs[a]);
            threads_identical(path, name, &pass, &fail);
        }
    }
#if defined(__aarch64__)
    // The point of this program on aarch64: NEON must have been among the tables checked.
    if (!simd_isa_supported(SIMD_NEON)) {
        printf("FAIL neon not supported on aarch64\n");
        fail++;
    }
#endif
    printf("%d passed, %d failed\n", pass, fail);
    return fail != 0;
}
