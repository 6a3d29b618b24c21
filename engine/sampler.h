// sampler.h — next-token sampling exactly as llama2.c run.c does it: greedy argmax (first
// index on ties), temperature, top-p (nucleus) with run.c's cutoff and sort, and run.c's
// xorshift* random generator, so seeded samples reproduce the reference transcripts.
#pragma once
#include <stdint.h>

typedef struct { float prob; int index; } ProbIndex;

typedef struct Sampler {
    int vocab_size;
    float temperature;   // 0 = greedy
    float topp;          // <= 0 or >= 1: sample from the whole distribution
    uint64_t rng_state;  // run.c: the seed itself is the initial state
    ProbIndex *probindex;// (V) scratch for top-p
} Sampler;

int sampler_init(Sampler *s, int vocab_size, float temperature, float topp, uint64_t seed);
void sampler_free(Sampler *s);
// Samples from logits (V); modifies logits in place (temperature, softmax) as run.c does.
int sampler_sample(Sampler *s, float *logits);
uint32_t sampler_random_u32(uint64_t *state);
float sampler_random_f32(uint64_t *state);
int sample_argmax(const float *p, int n);
