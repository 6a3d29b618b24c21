// common.c — errors, files, clocks, fingerprints.
#include "engine/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

static _Thread_local char g_err[2048];

int ct_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return CT_ERR;
}

int ct_error_ctx(const char *fmt, ...) {
    char prefix[1024], old[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    // Truncation is acceptable: messages are for people, and the prefix is short.
    size_t n = strlen(prefix);
    if (n > sizeof g_err - 3) n = sizeof g_err - 3;
    memcpy(g_err, prefix, n);
    memcpy(g_err + n, ": ", 2);
    size_t rest = sizeof g_err - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(g_err + n + 2, old, m);
    g_err[n + 2 + m] = 0;
    return CT_ERR;
}

const char *ct_errmsg(void) { return g_err[0] ? g_err : "unknown error"; }
void ct_error_clear(void) { g_err[0] = 0; }

int ct_mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) {
        ct_error("size overflow: %zu * %zu", a, b);
        return 0;
    }
    *out = a * b;
    return 1;
}

double ct_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t ct_peak_rss(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}

int ct_map_file(MappedFile *mf, const char *path) {
    memset(mf, 0, sizeof *mf);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ct_error("cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ct_error("cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ct_error("%s: not a regular file", path);
    }
    mf->size = (size_t)st.st_size;
    if (mf->size > 0) {
        void *p = mmap(NULL, mf->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return ct_error("cannot mmap %s: %s", path, strerror(e));
        }
        mf->data = p;
    }
    close(fd);
    mf->path = strdup(path);
    return CT_OK;
}

void ct_unmap_file(MappedFile *mf) {
    if (mf->data) munmap((void *)mf->data, mf->size);
    free(mf->path);
    memset(mf, 0, sizeof *mf);
}

int ct_atomic_open(AtomicFile *af, const char *path) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->tmp = malloc(n);
    af->path = strdup(path);
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        int e = errno;
        free(af->tmp);
        free(af->path);
        memset(af, 0, sizeof *af);
        return ct_error("cannot write %s (temp file for %s): %s", path, path, strerror(e));
    }
    return CT_OK;
}

void ct_atomic_abort(AtomicFile *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
}

int ct_atomic_commit(AtomicFile *af) {
    int bad = ferror(af->f) || fflush(af->f) != 0 || fsync(fileno(af->f)) != 0;
    int e = errno;
    if (fclose(af->f) != 0) bad = 1;
    af->f = NULL;
    if (bad) {
        ct_error("writing %s failed: %s", af->path, strerror(e));
        ct_atomic_abort(af);
        return CT_ERR;
    }
    if (rename(af->tmp, af->path) != 0) {
        e = errno;
        ct_error("cannot rename %s to %s: %s", af->tmp, af->path, strerror(e));
        ct_atomic_abort(af);
        return CT_ERR;
    }
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
    return CT_OK;
}

int ct_write_file_atomic(const char *path, const void *data, size_t n) {
    AtomicFile af;
    if (ct_atomic_open(&af, path) != CT_OK) return CT_ERR;
    if (n && fwrite(data, 1, n, af.f) != n) {
        ct_error("short write to %s", path);
        ct_atomic_abort(&af);
        return CT_ERR;
    }
    return ct_atomic_commit(&af);
}

uint64_t ct_hash64(const void *data, size_t n) { return (uint64_t)XXH3_64bits(data, n); }

void ct_fingerprint_hex(uint64_t h, char out[17]) { snprintf(out, 17, "%016llx", (unsigned long long)h); }

int ct_utf8_len(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int n;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;   // also stops at the terminating NUL
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void ct_buf_put(CtBuf *b, const void *src, size_t n) {
    if (b->bad) return;
    if (b->n + n > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 1 << 20) + n;
        uint8_t *np = realloc(b->p, nc);
        if (!np) {
            b->bad = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

int ct_buf_write_hashed(CtBuf *b, const char *path) {
    uint64_t h = b->bad ? 0 : ct_hash64(b->p, b->n);
    ct_buf_put(b, &h, 8);
    int rc = b->bad ? ct_error("%s: out of memory assembling the checkpoint", path)
                    : ct_write_file_atomic(path, b->p, b->n);
    free(b->p);
    memset(b, 0, sizeof *b);
    return rc;
}
