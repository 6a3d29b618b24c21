// safetensors.h — read (memory-mapped) and write safetensors files, and the fp32 <-> bf16 /
// fp16 conversions they need.
//
// File layout (https://github.com/huggingface/safetensors):
//     u64 little-endian N | N bytes of JSON header | data buffer
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)} with
// offsets relative to the start of the data buffer; an optional "__metadata__" entry holds
// string pairs and is ignored here.
//
// ctrace computes in fp32, so it reads F32, BF16 and F16 tensors.  Tensors of other standard
// dtypes (I64, U8, F64, ...) are still validated when the file is opened (their bytes must fit
// and not overlap), so a file with an extra integer tensor opens fine; st_get() rejects them
// with a message naming the dtype.  An unknown dtype string fails the open.
//
// The mapping is read-only and stays alive until st_close(): tensor data pointers point into
// it.  Tensor data has no alignment promise (the header length need not be a multiple of 4),
// so the conversions read through memcpy; use st_f32_ptr() for a direct float view when it is
// aligned.  The host must be little-endian (x86-64, aarch64).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"

#define ST_MAX_DIMS 8

typedef enum StDtype {
    ST_F32 = 0,
    ST_BF16 = 1,
    ST_F16 = 2,
    ST_OTHER = 3,   // a valid safetensors dtype ctrace does not compute with
} StDtype;

typedef struct StTensor {
    char *name;
    StDtype dtype;
    char dtype_name[16];        // as written in the header: "F32", "BF16", "I64", ...
    int ndim;                   // 0 for a scalar
    size_t shape[ST_MAX_DIMS];
    size_t numel;               // product of shape (1 for a scalar)
    size_t elem_size;           // bytes per element
    size_t begin, end;          // data_offsets, relative to the data buffer
    const uint8_t *data;        // into the mapping
} StTensor;

typedef struct StFile {
    MappedFile mf;              // mf.path names the file in messages
    int n;                      // tensors (excluding __metadata__), in header order
    StTensor *t;
    size_t data_start;          // 8 + N: file offset of the data buffer
} StFile;

// Open, map and validate: header length within the file, JSON object, every entry with a
// known dtype, a non-negative integer shape, data_offsets [begin, end] inside the data buffer
// with end - begin == numel * dtype size, no two tensors overlapping, no duplicate names.
int st_open(StFile *f, const char *path);
void st_close(StFile *f);

// Lookup: st_find returns NULL when absent (no error recorded).  st_get records an error
// naming the file and the tensors it does hold when absent, or the dtype when ctrace cannot
// read it (anything but F32/BF16/F16).
const StTensor *st_find(const StFile *f, const char *name);
int st_get(const StFile *f, const char *name, const StTensor **out);

// Check a tensor's shape; on mismatch: "<file>: tensor <name> has shape (a, b), expected
// <what> = (c, d)" (what is e.g. "(F, D)"; may be NULL).
int st_check_shape(const StFile *f, const StTensor *t, int ndim, const size_t *shape, const char *what);
// Format a shape as "(a, b, c)" into buf (returns buf).
char *st_shape_str(const size_t *shape, int ndim, char *buf, size_t cap);

// Convert the whole tensor (numel) or rows [row0, row0+nrows) of it to fp32.  A row is one
// index of dimension 0 (numel / shape[0] elements), so W_dec[f] of a (F, L-l, D) decoder is
// one row.  Fails (message set) for unreadable dtypes or rows out of range.
int st_read_f32(const StFile *f, const StTensor *t, float *dst);
int st_read_rows_f32(const StFile *f, const StTensor *t, size_t row0, size_t nrows, float *dst);
// Direct fp32 view when the tensor is F32 and 4-byte aligned in the mapping, else NULL.
const float *st_f32_ptr(const StTensor *t);

// Raw conversion of n elements of a readable dtype (no checks): dst[i] = (float)src[i].
void st_convert_f32(StDtype dt, const void *src, float *dst, size_t n);
// Index of the first NaN/Inf among n elements of dtype dt at src, or SIZE_MAX when all finite.
size_t st_scan_nonfinite(StDtype dt, const void *src, size_t n);
// Error when a tensor holds a NaN/Inf: "<file>: tensor <name> has NaN at index i (element
// (a, b)); the weights are corrupt".
int st_check_finite(const StFile *f, const StTensor *t);

// Scalar conversions.  fp32 -> bf16 / fp16 round to nearest, ties to even; fp16 handles
// subnormals, overflow to +-Inf (values >= 65520 in magnitude) and keeps NaN a (quiet) NaN.
uint16_t st_f32_to_bf16(float x);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float x);
float st_f16_to_f32(uint16_t h);

const char *st_dtype_name(StDtype dt);   // "F32", "BF16", "F16", "other"
size_t st_dtype_size(StDtype dt);        // 4, 2, 2 (0 for ST_OTHER)
// Parse "f32"/"fp32"/"float32"/"bf16"/"bfloat16"/"f16"/"fp16"/"float16" (case-insensitive).
int st_dtype_parse(const char *s, StDtype *out);

// ---- writer ---------------------------------------------------------------------------------
// One tensor to write: fp32 data converted to dtype on the way out (or raw bytes already in
// dtype when raw != NULL).  Tensors are laid out in the order given.
typedef struct StWriteItem {
    const char *name;
    StDtype dtype;              // ST_F32, ST_BF16 or ST_F16
    int ndim;
    size_t shape[ST_MAX_DIMS];
    const float *data;          // numel fp32 values (used when raw == NULL)
    const void *raw;            // numel * dtype size bytes, or NULL
} StWriteItem;

// Write a safetensors file atomically (temp file + rename): the header is padded with
// spaces to a multiple of 8 bytes, so every tensor starts 8-byte aligned when sizes allow,
// and carries {"__metadata__": {"format": "pt"}} like torch's writer.
int st_write(const char *path, const StWriteItem *items, int n);
