// safetensors.c — memory-mapped safetensors reader, atomic writer, bf16/fp16 conversions.
// See safetensors.h for the format and the validation rules.
#include "engine/safetensors.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <strings.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

// ---- scalar conversions -----------------------------------------------------------------------

static inline uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
static inline float bits_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

uint16_t st_f32_to_bf16(float x) {
    uint32_t u = f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);  // NaN stays NaN (quiet)
    // Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate.  A carry
    // out of the mantissa bumps the exponent, and the largest finite values round to Inf.
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float st_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t st_f32_to_f16(float x) {
    uint32_t u = f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) {  // Inf or NaN; NaN keeps its top payload bits and is made quiet
        if (a == 0x7f800000u) return sign | 0x7c00u;
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    }
    // 65520 = 65504 + half an ulp: ties to even rounds it up (65504's mantissa is odd) to Inf.
    if (a >= 0x477ff000u) return sign | 0x7c00u;
    if (a < 0x38800000u) {
        // Below 2^-14: an fp16 subnormal q * 2^-24 (or zero).  With the implicit bit,
        // value = m * 2^(e - 150), so q = m * 2^(e - 126) = m >> (126 - e), rounded.
        uint32_t e = a >> 23;
        if (e < 102) return sign;  // below 2^-25 (half the smallest subnormal): rounds to 0
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;  // 14..24
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;  // q may reach 0x400: the smallest normal
        return (uint16_t)(sign | q);
    }
    // Normal: rebias the exponent (127 -> 15) and drop 13 mantissa bits with RNE; a carry
    // propagates into the exponent, which is exactly right.
    uint32_t h = ((a >> 23) - 112u) << 10 | ((a >> 13) & 0x3ffu);
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * 0x1p-24f;  // exact: m < 2^10
        return (h & 0x8000u) ? -v : v;
    }
    if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

const char *st_dtype_name(StDtype dt) {
    switch (dt) {
    case ST_F32: return "F32";
    case ST_BF16: return "BF16";
    case ST_F16: return "F16";
    default: return "other";
    }
}

size_t st_dtype_size(StDtype dt) {
    switch (dt) {
    case ST_F32: return 4;
    case ST_BF16: return 2;
    case ST_F16: return 2;
    default: return 0;
    }
}

int st_dtype_parse(const char *s, StDtype *out) {
    static const struct {
        const char *name;
        StDtype dt;
    } names[] = {{"f32", ST_F32},  {"fp32", ST_F32},     {"float32", ST_F32}, {"bf16", ST_BF16},
                 {"bfloat16", ST_BF16}, {"f16", ST_F16}, {"fp16", ST_F16},    {"float16", ST_F16}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(s, names[i].name)) {
            *out = names[i].dt;
            return CT_OK;
        }
    return ct_error("unknown dtype '%s': expected f32, bf16 or f16", s);
}

void st_convert_f32(StDtype dt, const void *src, float *dst, size_t n) {
    const uint8_t *p = src;
    if (dt == ST_F32) {
        memcpy(dst, p, n * 4);
    } else if (dt == ST_BF16) {
        // bf16 is the top half of an fp32: a shift, written so the compiler vectorises it
        // (decoder rows of big transcoders go through here on every sweep).
        size_t i = 0;
#if defined(__SSE2__)
        // Interleaving zero halves below the bf16 halves is the shift, 8 values at a time.
        const __m128i z = _mm_setzero_si128();
        for (; i + 8 <= n; i += 8) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i));
            _mm_storeu_si128((__m128i *)(void *)(dst + i), _mm_unpacklo_epi16(z, x));
            _mm_storeu_si128((__m128i *)(void *)(dst + i + 4), _mm_unpackhi_epi16(z, x));
        }
#endif
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(dst + i, &u, 4);
        }
    } else if (dt == ST_F16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = st_f16_to_f32(h);
        }
    }
}

size_t st_scan_nonfinite(StDtype dt, const void *src, size_t n) {
    const uint8_t *p = src;
    if (dt == ST_F32) {
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            if ((u & 0x7f800000u) == 0x7f800000u) return i;
        }
    } else if (dt == ST_BF16 || dt == ST_F16) {
        uint16_t mask = dt == ST_BF16 ? 0x7f80u : 0x7c00u;  // exponent all ones: Inf or NaN
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            if ((h & mask) == mask) return i;
        }
    }
    return SIZE_MAX;
}

// ---- reader -------------------------------------------------------------------------------------

// Every dtype the safetensors format defines with a whole-byte size; readable ones map to ours.
static const struct {
    const char *name;
    size_t size;
    StDtype dt;
} k_dtypes[] = {
    {"F32", 4, ST_F32},     {"BF16", 2, ST_BF16},   {"F16", 2, ST_F16},     {"F64", 8, ST_OTHER},
    {"I64", 8, ST_OTHER},   {"I32", 4, ST_OTHER},   {"I16", 2, ST_OTHER},   {"I8", 1, ST_OTHER},
    {"U64", 8, ST_OTHER},   {"U32", 4, ST_OTHER},   {"U16", 2, ST_OTHER},   {"U8", 1, ST_OTHER},
    {"BOOL", 1, ST_OTHER},  {"F8_E4M3", 1, ST_OTHER}, {"F8_E5M2", 1, ST_OTHER},
    {"F8_E8M0", 1, ST_OTHER},
};

char *st_shape_str(const size_t *shape, int ndim, char *buf, size_t cap) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "(");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, i ? ", %zu" : "%zu", shape[i]);
    if (ndim == 1 && k < cap) k += (size_t)snprintf(buf + k, cap - k, ",");
    if (k < cap) snprintf(buf + k, cap - k, ")");
    return buf;
}

void st_close(StFile *f) {
    if (f->t)
        for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    ct_unmap_file(&f->mf);
    memset(f, 0, sizeof *f);
}

static int cmp_begin(const void *a, const void *b) {
    const StTensor *x = *(StTensor *const *)a, *y = *(StTensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

// Parse one header entry into t (name already set).  path for messages.
static int parse_entry(const char *path, const char *name, json_t *v, StTensor *t, size_t data_size) {
    if (!json_is_object(v))
        return ct_error("%s: header entry '%s' is not an object with dtype/shape/data_offsets", path, name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd)) return ct_error("%s: tensor %s: missing or non-string \"dtype\"", path, name);
    if (!json_is_array(js)) return ct_error("%s: tensor %s: missing or non-array \"shape\"", path, name);
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return ct_error("%s: tensor %s: \"data_offsets\" must be an array of 2 integers", path, name);

    const char *ds = json_string_value(jd);
    int found = 0;
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (!strcmp(ds, k_dtypes[i].name)) {
            t->dtype = k_dtypes[i].dt;
            t->elem_size = k_dtypes[i].size;
            found = 1;
        }
    if (!found)
        return ct_error("%s: tensor %s has unsupported dtype '%s' (ctrace reads F32, BF16 and F16)", path, name,
                        ds);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", ds);

    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS) return ct_error("%s: tensor %s has %zu dimensions (at most %d)", path, name, nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    t->numel = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *e = json_array_get(js, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return ct_error("%s: tensor %s: shape[%zu] is not a non-negative integer", path, name, i);
        t->shape[i] = (size_t)json_integer_value(e);
        if (!ct_mul_ok(t->numel, t->shape[i], &t->numel)) return ct_error_ctx("%s: tensor %s shape", path, name);
    }
    json_t *b = json_array_get(jo, 0), *e = json_array_get(jo, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 || json_integer_value(e) < 0)
        return ct_error("%s: tensor %s: data_offsets must be non-negative integers", path, name);
    t->begin = (size_t)json_integer_value(b);
    t->end = (size_t)json_integer_value(e);
    char sh[160];
    st_shape_str(t->shape, t->ndim, sh, sizeof sh);
    if (t->end < t->begin)
        return ct_error("%s: tensor %s: data_offsets [%zu, %zu] end before begin", path, name, t->begin, t->end);
    if (t->end > data_size)
        return ct_error("%s: tensor %s: data_offsets [%zu, %zu] out of range: the data buffer holds %zu bytes "
                        "(truncated file?)",
                        path, name, t->begin, t->end, data_size);
    size_t need;
    if (!ct_mul_ok(t->numel, t->elem_size, &need)) return ct_error_ctx("%s: tensor %s size", path, name);
    if (t->end - t->begin != need)
        return ct_error("%s: tensor %s: data_offsets [%zu, %zu] hold %zu bytes, but dtype %s with shape %s "
                        "needs %zu",
                        path, name, t->begin, t->end, t->end - t->begin, ds, sh, need);
    return CT_OK;
}

int st_open(StFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    if (ct_map_file(&f->mf, path) != CT_OK) return CT_ERR;
    const uint8_t *d = f->mf.data;
    size_t size = f->mf.size;
    json_t *root = NULL;
    if (size < 8) {
        ct_error("%s: %zu bytes is too small for a safetensors file (it starts with an 8-byte header length)",
                 path, size);
        goto fail;
    }
    uint64_t hlen;
    memcpy(&hlen, d, 8);
    if (hlen > size - 8) {
        ct_error("%s: header length %llu is beyond the file (%zu bytes after the length field); truncated, "
                 "or not a safetensors file?",
                 path, (unsigned long long)hlen, size - 8);
        goto fail;
    }
    if (hlen < 2 || d[8] != '{') {
        ct_error("%s: bad magic: expected a JSON header starting with '{' after the 8-byte length; is this a "
                 "safetensors file?",
                 path);
        goto fail;
    }
    f->data_start = 8 + (size_t)hlen;
    size_t data_size = size - f->data_start;

    json_error_t jerr;
    root = json_loadb((const char *)d + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (strstr(jerr.text, "duplicate"))
            ct_error("%s: duplicate tensor name in the header (%s)", path, jerr.text);
        else
            ct_error("%s: header is not valid JSON (line %d, column %d: %s)", path, jerr.line, jerr.column,
                     jerr.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        ct_error("%s: header is JSON but not an object of tensors", path);
        goto fail;
    }
    size_t cap = json_object_size(root);
    f->t = calloc(cap ? cap : 1, sizeof *f->t);
    if (!f->t) {
        ct_error("%s: out of memory for %zu tensor entries", path, cap);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) continue;
        StTensor *t = &f->t[f->n];
        t->name = strdup(key);
        f->n++;
        if (!t->name || parse_entry(path, key, val, t, data_size) != CT_OK) goto fail;
        t->data = d + f->data_start + t->begin;
    }

    // Overlap: sort by begin and compare each non-empty tensor with the furthest end so far.
    if (f->n > 1) {
        StTensor **ord = malloc((size_t)f->n * sizeof *ord);
        if (!ord) {
            ct_error("%s: out of memory", path);
            goto fail;
        }
        for (int i = 0; i < f->n; i++) ord[i] = &f->t[i];
        qsort(ord, (size_t)f->n, sizeof *ord, cmp_begin);
        const StTensor *far = NULL;
        for (int i = 0; i < f->n; i++) {
            const StTensor *t = ord[i];
            if (t->end == t->begin) continue;
            if (far && t->begin < far->end) {
                ct_error("%s: tensors %s [%zu, %zu] and %s [%zu, %zu] overlap in the data buffer", path, far->name,
                         far->begin, far->end, t->name, t->begin, t->end);
                free(ord);
                goto fail;
            }
            if (!far || t->end > far->end) far = t;
        }
        free(ord);
    }
    json_decref(root);
    return CT_OK;

fail:
    if (root) json_decref(root);
    st_close(f);
    return CT_ERR;
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

int st_get(const StFile *f, const char *name, const StTensor **out) {
    const StTensor *t = st_find(f, name);
    if (!t) {
        // List what the file does hold (truncated), which usually shows the naming scheme.
        char have[512];
        size_t k = 0;
        have[0] = 0;
        for (int i = 0; i < f->n && k + 40 < sizeof have; i++)
            k += (size_t)snprintf(have + k, sizeof have - k, "%s%s", i ? ", " : "", f->t[i].name);
        if (k + 40 >= sizeof have) snprintf(have + k, sizeof have - k, ", ...");
        return ct_error("%s: missing tensor %s (the file holds: %s)", f->mf.path, name, f->n ? have : "nothing");
    }
    if (t->dtype == ST_OTHER)
        return ct_error("%s: tensor %s has dtype %s; ctrace reads F32, BF16 and F16 only", f->mf.path, name,
                        t->dtype_name);
    *out = t;
    return CT_OK;
}

int st_check_shape(const StFile *f, const StTensor *t, int ndim, const size_t *shape, const char *what) {
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return CT_OK;
    char got[160], want[160];
    st_shape_str(t->shape, t->ndim, got, sizeof got);
    st_shape_str(shape, ndim, want, sizeof want);
    return ct_error("%s: tensor %s has shape %s, expected %s%s%s", f->mf.path, t->name, got, what ? what : "",
                    what ? " = " : "", want);
}

int st_read_rows_f32(const StFile *f, const StTensor *t, size_t row0, size_t nrows, float *dst) {
    if (t->dtype == ST_OTHER)
        return ct_error("%s: tensor %s has dtype %s; ctrace reads F32, BF16 and F16 only", f->mf.path, t->name,
                        t->dtype_name);
    size_t rows = t->ndim ? t->shape[0] : 1;
    size_t per = rows ? t->numel / rows : 0;
    if (row0 > rows || nrows > rows - row0)
        return ct_error("%s: tensor %s: rows [%zu, %zu) out of range (%zu rows)", f->mf.path, t->name, row0,
                        row0 + nrows, rows);
    st_convert_f32(t->dtype, t->data + row0 * per * t->elem_size, dst, nrows * per);
    return CT_OK;
}

int st_read_f32(const StFile *f, const StTensor *t, float *dst) {
    if (t->dtype == ST_OTHER)
        return ct_error("%s: tensor %s has dtype %s; ctrace reads F32, BF16 and F16 only", f->mf.path, t->name,
                        t->dtype_name);
    st_convert_f32(t->dtype, t->data, dst, t->numel);
    return CT_OK;
}

const float *st_f32_ptr(const StTensor *t) {
    if (t->dtype != ST_F32 || ((uintptr_t)t->data & 3u)) return NULL;
    return (const float *)(const void *)t->data;
}

int st_check_finite(const StFile *f, const StTensor *t) {
    if (t->dtype == ST_OTHER) return CT_OK;
    size_t i = st_scan_nonfinite(t->dtype, t->data, t->numel);
    if (i == SIZE_MAX) return CT_OK;
    float v;
    st_convert_f32(t->dtype, t->data + i * t->elem_size, &v, 1);
    // Unravel the flat index into coordinates for the message.
    size_t coord[ST_MAX_DIMS], rem = i;
    for (int k = t->ndim - 1; k >= 0; k--) {
        coord[k] = t->shape[k] ? rem % t->shape[k] : 0;
        rem = t->shape[k] ? rem / t->shape[k] : 0;
    }
    char cs[160];
    st_shape_str(coord, t->ndim, cs, sizeof cs);
    return ct_error("%s: tensor %s has %s at flat index %zu (element %s); the weights are corrupt", f->mf.path,
                    t->name, v != v ? "NaN" : (v > 0 ? "+Inf" : "-Inf"), i, cs);
}

// ---- writer -------------------------------------------------------------------------------------

int st_write(const char *path, const StWriteItem *items, int n) {
    json_t *root = json_object();
    char *hdr = NULL;
    uint16_t *buf16 = NULL;
    if (!root) return ct_error("%s: out of memory building the header", path);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const StWriteItem *it = &items[i];
        if (it->dtype != ST_F32 && it->dtype != ST_BF16 && it->dtype != ST_F16) {
            ct_error("%s: tensor %s: cannot write dtype %s", path, it->name, st_dtype_name(it->dtype));
            goto fail;
        }
        if (it->ndim < 0 || it->ndim > ST_MAX_DIMS) {
            ct_error("%s: tensor %s: %d dimensions", path, it->name, it->ndim);
            goto fail;
        }
        if (!strcmp(it->name, "__metadata__") || json_object_get(root, it->name)) {
            ct_error("%s: duplicate or reserved tensor name %s", path, it->name);
            goto fail;
        }
        size_t numel = 1, nbytes;
        json_t *shape = json_array();
        for (int k = 0; k < it->ndim; k++) {
            json_array_append_new(shape, json_integer((json_int_t)it->shape[k]));
            if (!ct_mul_ok(numel, it->shape[k], &numel)) {
                json_decref(shape);
                ct_error_ctx("%s: tensor %s", path, it->name);
                goto fail;
            }
        }
        nbytes = numel * st_dtype_size(it->dtype);
        json_t *offs = json_array();
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + nbytes)));
        json_t *e = json_object();
        json_object_set_new(e, "dtype", json_string(st_dtype_name(it->dtype)));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        json_object_set_new(root, it->name, e);
        off += nbytes;
    }
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", meta);
    hdr = json_dumps(root, JSON_COMPACT);
    if (!hdr) {
        ct_error("%s: cannot serialise the header", path);
        goto fail;
    }

    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;  // pad with spaces: data 8-byte aligned
    AtomicFile af;
    if (ct_atomic_open(&af, path) != CT_OK) goto fail;
    uint64_t h64 = padded;
    int bad = fwrite(&h64, 8, 1, af.f) != 1 || fwrite(hdr, 1, hl, af.f) != hl;
    for (size_t i = hl; i < padded && !bad; i++) bad = fputc(' ', af.f) == EOF;

    enum { CHUNK = 1 << 14 };
    for (int i = 0; i < n && !bad; i++) {
        const StWriteItem *it = &items[i];
        size_t numel = 1;
        for (int k = 0; k < it->ndim; k++) numel *= it->shape[k];
        if (it->raw || it->dtype == ST_F32) {
            const void *src = it->raw ? it->raw : (const void *)it->data;
            size_t nb = numel * st_dtype_size(it->dtype);
            if (nb && fwrite(src, 1, nb, af.f) != nb) bad = 1;
            continue;
        }
        if (!buf16 && !(buf16 = malloc(CHUNK * sizeof *buf16))) {
            ct_atomic_abort(&af);
            ct_error("%s: out of memory", path);
            goto fail;
        }
        for (size_t s = 0; s < numel && !bad; s += CHUNK) {
            size_t m = numel - s < CHUNK ? numel - s : CHUNK;
            for (size_t j = 0; j < m; j++)
                buf16[j] = it->dtype == ST_BF16 ? st_f32_to_bf16(it->data[s + j]) : st_f32_to_f16(it->data[s + j]);
            if (fwrite(buf16, 2, m, af.f) != m) bad = 1;
        }
    }
    if (bad) {
        ct_atomic_abort(&af);
        ct_error("%s: write failed (disk full?)", path);
        goto fail;
    }
    if (ct_atomic_commit(&af) != CT_OK) goto fail;
    free(buf16);
    free(hdr);
    json_decref(root);
    return CT_OK;

fail:
    free(buf16);
    free(hdr);
    json_decref(root);
    return CT_ERR;
}
