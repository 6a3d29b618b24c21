// forward_selftest.c — the golden forward checks as a plain program (no Criterion), built for
// aarch64 and run under qemu-aarch64 by `make test`: proves the NEON table end to end.
#include <stdio.h>
#include <stdlib.h>

#include "simd/simd.h"
#include "tests/golden_checks.h"

int main(void) {
    const char *shared = getenv("SHARED") ? getenv("SHARED") : "../shared";
    int pass = 0, fail = 0;
    for (int isa = 0; isa < SIMD_NISA; isa++) {
        if (!simd_isa_supported((SimdIsa)isa)) continue;
        simd_force((SimdIsa)isa);
        GoldenResult r = golden_check_all(shared, NULL);
        if (r.fails) {
            fail++;
            printf("FAIL golden forward [%s]:\n%s", simd_isa_name((SimdIsa)isa), r.msg);
        } else {
            pass++;
            printf("ok   golden forward [%s]\n", simd_isa_name((SimdIsa)isa));
        }
    }
    printf("%d passed, %d failed\n", pass, fail);
    return fail != 0;
}
