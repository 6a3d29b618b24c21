// bench_clt.c — transcoder encoder throughput against the FMA peak measured in the same run.
//
// Encoder of one layer of a CLT with F = 8192 features on D = 768 (the ~100M benchmark
// model's width), T = 64 positions at once (clt_encode_batch: the kernel table's matmul
// plus JumpReLU).  FLOPs per call = 2 T F D.  The result is checked against a double
// reference on a few entries before timing.  Prints markdown rows.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wunused-function"  // probes.h is a header of static probes
#include "bench/probes.h"
#include "engine/clt.h"
#include "simd/simd.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

int main(void) {
    const int D = 768, F = 8192, T = 64;
    Clt c;
    CltActivation act = {CLT_ACT_JUMPRELU, 0};
    if (clt_alloc(&c, 1, D, F, CLT_CROSS_LAYER, act, 0) != CT_OK) {
        fprintf(stderr, "bench_clt: %s\n", ct_errmsg());
        return 1;
    }
    CltLayer *ly = &c.layers[0];
    for (size_t i = 0; i < (size_t)F * D; i++) ly->W_enc[i] = frand() * 0.036f;
    for (int f = 0; f < F; f++) ly->b_enc[f] = -0.1f, ly->threshold[f] = 0.2f;
    float *X = malloc(sizeof(float) * (size_t)T * D), *pre = malloc(sizeof(float) * (size_t)T * F);
    float *a = malloc(sizeof(float) * (size_t)T * F);
    for (size_t i = 0; i < (size_t)T * D; i++) X[i] = frand();
    char cpu[128];
    probe_cpu_model(cpu, sizeof cpu);
    const char *fisa = "";
    double peak = probe_fma_gflops(3, 0.2, &fisa);
    printf("| CPU | ISA | threads | kernel | sizes | figure | ratio |\n|---|---|---|---|---|---|---|\n");
    for (int isa = 0; isa < SIMD_NISA; isa++) {
        if (!simd_isa_supported((SimdIsa)isa)) continue;
        simd_force((SimdIsa)isa);
        clt_encode_batch(&c, 0, X, T, pre, a);
        // verify a few pre-activations against a double dot product
        for (int k = 0; k < 16; k++) {
            int t = (k * 7) % T, f = (k * 977) % F;
            double ref = ly->b_enc[f];
            for (int d = 0; d < D; d++) ref += (double)ly->W_enc[(size_t)f * D + d] * X[(size_t)t * D + d];
            if (fabs(ref - pre[(size_t)t * F + f]) > 1e-3 * (1 + fabs(ref))) {
                fprintf(stderr, "bench_clt: %s encoder disagrees with the reference\n", simd_isa_name((SimdIsa)isa));
                return 1;
            }
        }
        int reps = 0;
        double t0 = ct_now(), el;
        do {
            clt_encode_batch(&c, 0, X, T, pre, a);
            reps++;
        } while ((el = ct_now() - t0) < 0.5);
        double gf = 2.0 * T * F * D * reps / el / 1e9;
        printf("| %s | %s | 1 | clt_encode_batch (JumpReLU) | T=%d, F=%d, D=%d | %.1f GFLOP/s | %.2f of %s FMA peak (%.0f) |\n",
               cpu, simd_isa_name((SimdIsa)isa), T, F, D, gf, gf / peak, fisa, peak);
    }
    free(X), free(pre), free(a);
    clt_free(&c);
    return 0;
}
