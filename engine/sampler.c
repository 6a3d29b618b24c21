// sampler.c — llama2.c-compatible sampling (see sampler.h).
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>

#include "engine/common.h"
#include "simd/simd.h"

int sampler_init(Sampler *s, int vocab_size, float temperature, float topp, uint64_t seed) {
    s->vocab_size = vocab_size;
    s->temperature = temperature;
    s->topp = topp;
    s->rng_state = seed;
    s->probindex = malloc((size_t)vocab_size * sizeof(ProbIndex));
    if (!s->probindex) return ct_error("sampler: out of memory");
    return CT_OK;
}

void sampler_free(Sampler *s) {
    free(s->probindex);
    s->probindex = NULL;
}

// xorshift* (Marsaglia / Vigna), as run.c's random_u32.
uint32_t sampler_random_u32(uint64_t *state) {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}

// A float in [0, 1): the top 24 bits of a random u32.
float sampler_random_f32(uint64_t *state) { return (float)(sampler_random_u32(state) >> 8) / 16777216.0f; }

int sample_argmax(const float *p, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[best]) best = i;
    return best;
}

// Sample an index from probabilities that sum to 1, given coin in [0, 1).
static int sample_mult(const float *p, int n, float coin) {
    float cdf = 0.0f;
    for (int i = 0; i < n; i++) {
        cdf += p[i];
        if (coin < cdf) return i;
    }
    return n - 1;  // rounding errors
}

static int compare_desc(const void *a, const void *b) {
    const ProbIndex *x = a, *y = b;
    if (x->prob > y->prob) return -1;
    if (x->prob < y->prob) return 1;
    return 0;
}

// Top-p: keep the smallest set of most probable tokens whose mass exceeds topp.  Tokens
// below (1 - topp) / (n - 1) cannot be in it and are dropped before sorting (run.c's trick).
static int sample_topp(const float *p, int n, float topp, ProbIndex *pi, float coin) {
    int n0 = 0;
    const float cutoff = (1.0f - topp) / (float)(n - 1);
    for (int i = 0; i < n; i++)
        if (p[i] >= cutoff) {
            pi[n0].index = i;
            pi[n0].prob = p[i];
            n0++;
        }
    qsort(pi, (size_t)n0, sizeof(ProbIndex), compare_desc);
    float cum = 0.0f;
    int last = n0 - 1;
    for (int i = 0; i < n0; i++) {
        cum += pi[i].prob;
        if (cum > topp) {
            last = i;
            break;
        }
    }
    float r = coin * cum;
    float cdf = 0.0f;
    for (int i = 0; i <= last; i++) {
        cdf += pi[i].prob;
        if (r < cdf) return pi[i].index;
    }
    return pi[last].index;
}

int sampler_sample(Sampler *s, float *logits) {
    if (s->temperature == 0.0f) return sample_argmax(logits, s->vocab_size);
    for (int q = 0; q < s->vocab_size; q++) logits[q] /= s->temperature;
    // The scalar softmax is run.c's own arithmetic: seeded samples reproduce its transcripts.
    simd_kernels_for(SIMD_SCALAR)->softmax_f32(logits, (size_t)s->vocab_size);
    float coin = sampler_random_f32(&s->rng_state);
    if (s->topp <= 0 || s->topp >= 1) return sample_mult(logits, s->vocab_size, coin);
    return sample_topp(logits, s->vocab_size, s->topp, s->probindex, coin);
}
