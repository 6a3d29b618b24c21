// testutil.c — see testutil.h.
#include "tests/lib/testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void tu_rng_seed(TuRng *r, uint64_t seed) { r->s = seed; }

uint64_t tu_rng_u64(TuRng *r) {
    // splitmix64 (Steele, Lea, Flood 2014)
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double tu_rng_uniform(TuRng *r) { return (double)(tu_rng_u64(r) >> 11) * 0x1.0p-53; }

double tu_rng_normal(TuRng *r) {
    double u1 = tu_rng_uniform(r), u2 = tu_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint32_t tu_rng_below(TuRng *r, uint32_t n) { return (uint32_t)(tu_rng_uniform(r) * (double)n); }

void tu_fill_uniform(float *x, size_t n, TuRng *r, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * tu_rng_uniform(r));
}

void tu_fill_normal(float *x, size_t n, TuRng *r, float mean, float std) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(mean + std * tu_rng_normal(r));
}

double tu_nmse(const float *got, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0 ? num / den : num;
}

double tu_max_abs_diff(const float *got, const double *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

char *tu_mkdtemp(const char *prefix) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    size_t n = strlen(tmp) + strlen(prefix) + 16;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s/%s.XXXXXX", tmp, prefix);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

char *tu_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int tu_rmtree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return -1;
    int bad = 0;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return -1;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *sub = tu_join(path, e->d_name);
            if (!sub || tu_rmtree(sub) != 0) bad = 1;
            free(sub);
        }
        closedir(d);
        if (rmdir(path) != 0) bad = 1;
    } else if (unlink(path) != 0) {
        bad = 1;
    }
    return bad ? -1 : 0;
}

char *tu_shared_path(const char *rel) {
    const char *base = getenv("SHARED");
    if (!base || !*base) base = "../shared";
    return tu_join(base, rel);
}

void *tu_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long sz = ftell(f);
    rewind(f);
    void *buf = malloc(sz > 0 ? (size_t)sz : 1);
    if (buf && sz > 0 && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *n = (size_t)sz;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int bad = n && fwrite(data, 1, n, f) != n;
    if (fclose(f) != 0) bad = 1;
    return bad ? -1 : 0;
}
