// testutil.h — helpers shared by the Criterion suites: a seeded RNG, random fills, NMSE,
// temporary directories, and paths into the shared read-only data (../shared by default).
//
// Everything is prefixed tu_ so nothing collides with a libctrace symbol.
#pragma once
#include <stddef.h>
#include <stdint.h>

// splitmix64 state: deterministic for a given seed on every platform.
typedef struct TuRng {
    uint64_t s;
} TuRng;

void tu_rng_seed(TuRng *r, uint64_t seed);
uint64_t tu_rng_u64(TuRng *r);
double tu_rng_uniform(TuRng *r);            // [0, 1), 53 random bits
double tu_rng_normal(TuRng *r);             // N(0, 1), Box-Muller
uint32_t tu_rng_below(TuRng *r, uint32_t n);  // [0, n), n > 0

// x[i] ~ U(lo, hi) / N(mean, std^2), rounded to float.
void tu_fill_uniform(float *x, size_t n, TuRng *r, float lo, float hi);
void tu_fill_normal(float *x, size_t n, TuRng *r, float mean, float std);

// ||got - ref||^2 / ||ref||^2 in double; when ref is all zero, returns ||got||^2.
double tu_nmse(const float *got, const float *ref, size_t n);
// max_i |got[i] - ref[i]| in double.
double tu_max_abs_diff(const float *got, const double *ref, size_t n);

// A fresh directory "/tmp/<prefix>.XXXXXX" (malloc'd path; NULL on failure).
char *tu_mkdtemp(const char *prefix);
// Remove a directory tree (best effort; returns 0 when everything went).
int tu_rmtree(const char *path);
// "<dir>/<name>" as a malloc'd string.
char *tu_join(const char *dir, const char *name);

// getenv("SHARED") or "../shared", joined with rel (malloc'd).
char *tu_shared_path(const char *rel);

// Whole-file helpers for building malformed inputs: read (malloc'd, *n set) and write.
void *tu_read_file(const char *path, size_t *n);
int tu_write_file(const char *path, const void *data, size_t n);
