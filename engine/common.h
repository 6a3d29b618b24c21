// common.h — status codes, error messages, small helpers shared by every module.
//
// Dimension glossary used in shape comments throughout engine/:
//   T  tokens in the prompt (position 0 is BOS)      D   model width (dim)
//   F  transcoder features per layer                 Hd  MLP hidden width (hidden_dim)
//   H  query heads      Hkv  key/value heads         Dh  head width (D / H)
//   L  layers           V    vocabulary              K   number of logit targets
//
// Library functions never exit(): they return 0 on success and -1 on failure, after
// recording a message with ct_error(); the driver prints ct_errmsg() and exits non-zero.
// Messages name the file, the field, what was expected and what was found.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CT_OK 0
#define CT_ERR (-1)

// Record an error message (printf-style) for this thread; returns CT_ERR.
int ct_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Prepend context to the current message ("loading X: <old message>"); returns CT_ERR.
int ct_error_ctx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *ct_errmsg(void);
void ct_error_clear(void);

// size_t product with overflow check; returns 0 and sets an error on overflow.
int ct_mul_ok(size_t a, size_t b, size_t *out);

// Monotonic wall clock in seconds.
double ct_now(void);
// Peak resident set size of this process, bytes (from getrusage).
size_t ct_peak_rss(void);

// ---- files ----------------------------------------------------------------------------------
// A read-only memory map of a whole file.
typedef struct MappedFile {
    const uint8_t *data;
    size_t size;
    char *path;          // owned copy
} MappedFile;
int ct_map_file(MappedFile *mf, const char *path);   // error names the path and errno text
void ct_unmap_file(MappedFile *mf);

// Atomic output: write to "<path>.tmp.<pid>", fsync, rename over path.  ct_atomic_open
// returns a FILE* for the temp file; ct_atomic_commit closes, checks and renames; on
// failure (or ct_atomic_abort) the temp file is removed and path is untouched.
typedef struct AtomicFile {
    FILE *f;
    char *path;
    char *tmp;
} AtomicFile;
int ct_atomic_open(AtomicFile *af, const char *path);
int ct_atomic_commit(AtomicFile *af);
void ct_atomic_abort(AtomicFile *af);
// Write a whole buffer atomically.
int ct_write_file_atomic(const char *path, const void *data, size_t n);

// Length of the valid UTF-8 sequence at s (1-4), or 0 when the bytes there are not one
// (jansson's rules: no overlongs, no surrogates, nothing above U+10FFFF).  Stops at a NUL.
int ct_utf8_len(const unsigned char *s);

// xxh3-64 fingerprint of a byte range, printed as 16 hex digits by ct_fingerprint_hex.
uint64_t ct_hash64(const void *data, size_t n);
void ct_fingerprint_hex(uint64_t h, char out[17]);

// A growable byte buffer: checkpoints are assembled in one, hashed, then written in one go.
// A failed allocation sets bad and later puts do nothing (check bad once at the end).
typedef struct CtBuf { uint8_t *p; size_t n, cap; int bad; } CtBuf;
void ct_buf_put(CtBuf *b, const void *src, size_t n);
// Append the xxh3-64 of the contents, write them to path atomically (temp + rename) and free
// the buffer; a buffer that ran out of memory is reported instead ("out of memory assembling
// the checkpoint").  The checkpoint format of train-clt and train-model ends this way.
int ct_buf_write_hashed(CtBuf *b, const char *path);
