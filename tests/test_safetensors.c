// test_safetensors.c — bf16/fp16 conversions against independent references, writer/reader
// round trips in every dtype, per-row reads, and malformed files (each with a clear error).
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/safetensors.h"
#include "tests/lib/testutil.h"

#define ASSERT_ERR(expr, substr)                                                                         \
    do {                                                                                                 \
        ct_error_clear();                                                                                \
        cr_assert_eq((expr), CT_ERR, "expected failure: %s", #expr);                                   \
        cr_assert(strstr(ct_errmsg(), (substr)) != NULL, "error \"%s\" lacks \"%s\"", ct_errmsg(), (substr)); \
    } while (0)

static uint32_t fbits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
static float bitsf(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

// ---- bf16 ---------------------------------------------------------------------------------------

// Independent reference: the two bf16 neighbours of x by truncation, chosen by distance in
// double; ties go to the even code.  Overflow treats the next code past the largest as 2^128.
static uint16_t ref_bf16(float x) {
    uint32_t u = fbits(x);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    double xv = fabs((double)x), lv = fabs((double)bitsf((uint32_t)lo << 16));
    double hv = ((hi & 0x7fff) == 0x7f80) ? ldexp(1.0, 128) : fabs((double)bitsf((uint32_t)hi << 16));
    if ((u & 0xffff) == 0) return lo;
    double dl = xv - lv, dh = hv - xv;
    if (dl < dh) return lo;
    if (dh < dl) return hi;
    return (lo & 1) ? hi : lo;
}

Test(bf16, exhaustive_roundtrip_of_every_code) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = st_bf16_to_f32((uint16_t)h);
        cr_assert_eq(fbits(f), h << 16);
        uint16_t back = st_f32_to_bf16(f);
        if (f != f) cr_assert((back & 0x7f80) == 0x7f80 && (back & 0x7f), "NaN %04x became %04x", h, back);
        else cr_assert_eq(back, h, "code %04x -> %04x", h, back);
    }
}

Test(bf16, hand_derived_rounding) {
    // 1 + 2^-8 sits exactly between 1.0 (0x3f80) and 1 + 2^-7 (0x3f81): ties to even -> 0x3f80.
    cr_assert_eq(st_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    // 1 + 3*2^-8 is between 0x3f81 and 0x3f82: the even one is 0x3f82.
    cr_assert_eq(st_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    // A hair above the tie rounds up.
    cr_assert_eq(st_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    cr_assert_eq(st_f32_to_bf16(-1.0f - 0x1p-8f), 0xbf80);
    cr_assert_eq(st_f32_to_bf16(-0.0f), 0x8000);
    cr_assert_eq(st_f32_to_bf16(bitsf(0x7f7fffff)), 0x7f80);  // FLT_MAX rounds to +Inf
    cr_assert_eq(st_f32_to_bf16(INFINITY), 0x7f80);
    cr_assert_eq(st_f32_to_bf16(bitsf(0x00010000)), 0x0001);   // subnormal exact
    uint16_t n = st_f32_to_bf16(bitsf(0x7f800001));             // signalling NaN with low payload only
    cr_assert((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0, "NaN must stay NaN, got %04x", n);
}

Test(bf16, random_floats_match_reference) {
    TuRng r;
    tu_rng_seed(&r, 7);
    for (int i = 0; i < 200000; i++) {
        uint32_t u = (uint32_t)tu_rng_u64(&r);
        if ((u & 0x7f800000) == 0x7f800000) continue;
        float x = bitsf(u);
        uint16_t got = st_f32_to_bf16(x), want = ref_bf16(x);
        cr_assert_eq(got, want, "x = %a (%08x): got %04x want %04x", x, u, got, want);
    }
}

// ---- fp16 ---------------------------------------------------------------------------------------

// fp16 code -> value from the definition (independent of the library's bit manipulation).
static double f16_def(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1.0 + m / 1024.0, e - 15);
    return s ? -v : v;
}

// Nearest fp16 by binary search over the 31744 finite non-negative codes (monotone in value).
static uint16_t ref_f16(float x) {
    double a = fabs((double)x);
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    if (a >= 65520.0) return sign | 0x7c00;
    int lo = 0, hi = 0x7bff;
    while (lo < hi) {  // largest code with value <= a
        int mid = (lo + hi + 1) / 2;
        if (f16_def((uint16_t)mid) <= a) lo = mid;
        else hi = mid - 1;
    }
    if (lo == 0x7bff) return sign | 0x7bff;  // a < 65520 here
    double dl = a - f16_def((uint16_t)lo), dh = f16_def((uint16_t)(lo + 1)) - a;
    int code = dl < dh ? lo : dh < dl ? lo + 1 : ((lo & 1) ? lo + 1 : lo);
    return (uint16_t)(sign | code);
}

Test(f16, exhaustive_decode_and_roundtrip) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = st_f16_to_f32((uint16_t)h);
        int e = (h >> 10) & 31;
        if (e == 31) {
            if (h & 1023) cr_assert(f != f, "code %04x must decode to NaN", h);
            else cr_assert(isinf(f) && (signbit(f) != 0) == ((h & 0x8000) != 0));
            continue;
        }
        cr_assert_eq((double)f, f16_def((uint16_t)h), "code %04x decodes to %a", h, f);
        if (h == 0x8000) cr_assert(signbit(f));
        cr_assert_eq(st_f32_to_f16(f), h, "code %04x does not round-trip (got %04x)", h, st_f32_to_f16(f));
    }
}

Test(f16, hand_derived_rounding) {
    cr_assert_eq(st_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);       // tie between 1 and 1+2^-10 -> even (1)
    cr_assert_eq(st_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);   // tie -> even code 0x3c02
    cr_assert_eq(st_f32_to_f16(65504.0f), 0x7bff);              // largest finite
    cr_assert_eq(st_f32_to_f16(65519.0f), 0x7bff);              // below the halfway point
    cr_assert_eq(st_f32_to_f16(65520.0f), 0x7c00);              // halfway: ties to even = Inf
    cr_assert_eq(st_f32_to_f16(-1e9f), 0xfc00);
    cr_assert_eq(st_f32_to_f16(0x1p-24f), 0x0001);              // smallest subnormal
    cr_assert_eq(st_f32_to_f16(0x1p-25f), 0x0000);              // tie between 0 and 2^-24 -> 0
    cr_assert_eq(st_f32_to_f16(1.5f * 0x1p-25f), 0x0001);       // above the tie
    cr_assert_eq(st_f32_to_f16(3 * 0x1p-25f), 0x0002);          // 1.5 * 2^-24: tie -> even 2
    cr_assert_eq(st_f32_to_f16(1023.5f * 0x1p-24f), 0x0400);    // tie below 2^-14 -> smallest normal
    cr_assert_eq(st_f32_to_f16(0x1p-14f), 0x0400);
    cr_assert_eq(st_f32_to_f16(-0.0f), 0x8000);
    cr_assert_eq(st_f32_to_f16(1e-30f), 0x0000);
    uint16_t n = st_f32_to_f16(NAN);
    cr_assert((n & 0x7c00) == 0x7c00 && (n & 0x3ff), "NaN -> %04x", n);
}

Test(f16, random_floats_match_reference) {
    TuRng r;
    tu_rng_seed(&r, 11);
    for (int i = 0; i < 100000; i++) {
        // exponents spanning underflow .. overflow of fp16
        float x = (float)ldexp(1.0 + tu_rng_uniform(&r), (int)tu_rng_below(&r, 46) - 28);
        uint32_t u = fbits(x) ^ (uint32_t)(tu_rng_u64(&r) & 0x1fff);  // scramble the low bits (ties too)
        if (i % 7 == 0) u = (u & ~0xfffu) | 0x1000u;                  // exact fp16 ties for normals
        x = bitsf(u);
        if (i & 1) x = -x;
        uint16_t got = st_f32_to_f16(x), want = ref_f16(x);
        cr_assert_eq(got, want, "x = %a: got %04x want %04x", x, got, want);
    }
}

// ---- writer / reader ------------------------------------------------------------------------------

typedef struct TmpDir {
    char *dir;
} TmpDir;

static char *tmp_file(TmpDir *t, const char *name) {
    if (!t->dir) t->dir = tu_mkdtemp("ctrace_st");
    cr_assert(t->dir);
    return tu_join(t->dir, name);
}

static void tmp_done(TmpDir *t) {
    if (t->dir) tu_rmtree(t->dir);
    free(t->dir);
}

static float bf16_round(float x) { return st_bf16_to_f32(st_f32_to_bf16(x)); }
static float f16_round(float x) { return st_f16_to_f32(st_f32_to_f16(x)); }

Test(st, roundtrip_every_dtype) {
    TmpDir td = {0};
    TuRng r;
    tu_rng_seed(&r, 3);
    float a[3 * 5], b[7], c3[2 * 3 * 4], s[1], ex[16];
    tu_fill_normal(a, 15, &r, 0, 1);
    tu_fill_uniform(b, 7, &r, -100, 100);
    tu_fill_normal(c3, 24, &r, 0, 1e-3f);
    s[0] = 3.25f;
    for (int i = 0; i < 16; i++) ex[i] = (float)(i - 8) / 64.0f;  // exact in bf16 and fp16
    StDtype dts[3] = {ST_F32, ST_BF16, ST_F16};
    for (int k = 0; k < 3; k++) {
        StWriteItem it[6] = {
            {.name = "a", .dtype = dts[k], .ndim = 2, .shape = {3, 5}, .data = a},
            {.name = "b.bias", .dtype = dts[k], .ndim = 1, .shape = {7}, .data = b},
            {.name = "c3", .dtype = dts[k], .ndim = 3, .shape = {2, 3, 4}, .data = c3},
            {.name = "scalar", .dtype = dts[k], .ndim = 0, .data = s},
            {.name = "empty", .dtype = dts[k], .ndim = 2, .shape = {0, 4}, .data = a},
            {.name = "exact", .dtype = dts[k], .ndim = 1, .shape = {16}, .data = ex},
        };
        char *p = tmp_file(&td, "t.safetensors");
        cr_assert_eq(st_write(p, it, 6), CT_OK, "%s", ct_errmsg());
        StFile f;
        cr_assert_eq(st_open(&f, p), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(f.n, 6);
        cr_assert_eq(f.data_start % 8, 0, "header padded to 8 bytes");
        for (int i = 0; i < 6; i++) {
            const StTensor *t;
            cr_assert_eq(st_get(&f, it[i].name, &t), CT_OK, "%s", ct_errmsg());
            cr_assert_eq(t->dtype, dts[k]);
            cr_assert_eq(t->ndim, it[i].ndim);
            size_t numel = 1;
            for (int d = 0; d < t->ndim; d++) {
                cr_assert_eq(t->shape[d], it[i].shape[d]);
                numel *= it[i].shape[d];
            }
            cr_assert_eq(t->numel, numel);
            float *got = malloc((numel ? numel : 1) * sizeof(float));
            cr_assert_eq(st_read_f32(&f, t, got), CT_OK);
            for (size_t j = 0; j < numel; j++) {
                float x = it[i].data[j];
                float want = dts[k] == ST_F32 ? x : dts[k] == ST_BF16 ? bf16_round(x) : f16_round(x);
                cr_assert_eq(fbits(got[j]), fbits(want), "%s[%zu] dtype %s: %a vs %a", it[i].name, j,
                             st_dtype_name(dts[k]), got[j], want);
                if (!strcmp(it[i].name, "exact")) cr_assert_eq(got[j], x, "exactly representable values round-trip");
            }
            free(got);
        }
        // per-row reads equal the full conversion
        const StTensor *t = st_find(&f, "c3");
        float full[24], rows[24];
        cr_assert_eq(st_read_f32(&f, t, full), CT_OK);
        cr_assert_eq(st_read_rows_f32(&f, t, 1, 1, rows), CT_OK);
        cr_assert_eq(memcmp(rows, full + 12, 12 * sizeof(float)), 0);
        ASSERT_ERR(st_read_rows_f32(&f, t, 1, 2, rows), "out of range");
        if (dts[k] == ST_F32) cr_assert(st_f32_ptr(st_find(&f, "a")) != NULL, "aligned F32 gives a direct view");
        else cr_assert(st_f32_ptr(st_find(&f, "a")) == NULL);
        cr_assert(st_find(&f, "__metadata__") == NULL);
        st_close(&f);
        free(p);
    }
    // atomic writes leave no temp files behind
    int count = 0;
    DIR *d = opendir(td.dir);
    struct dirent *e;
    while ((e = readdir(d))) count += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(count, 1);
    tmp_done(&td);
}

Test(st, write_errors) {
    float x[2] = {1, 2};
    StWriteItem it[2] = {{.name = "x", .dtype = ST_F32, .ndim = 1, .shape = {2}, .data = x},
                         {.name = "x", .dtype = ST_F32, .ndim = 1, .shape = {2}, .data = x}};
    TmpDir td = {0};
    char *p = tmp_file(&td, "dup.safetensors");
    ASSERT_ERR(st_write(p, it, 2), "duplicate");
    ASSERT_ERR(st_write("/nonexistent_dir_ctrace/x.safetensors", it, 1), "nonexistent_dir_ctrace");
    free(p);
    tmp_done(&td);
}

// A hand-built file: 8-byte length (hlen_override when nonzero), header text, data bytes.
static char *raw_file(TmpDir *td, const char *name, const char *hdr, uint64_t hlen_override, size_t data_len) {
    char *p = tmp_file(td, name);
    size_t hl = strlen(hdr);
    size_t n = 8 + hl + data_len;
    uint8_t *buf = calloc(1, n);
    uint64_t h = hlen_override ? hlen_override : hl;
    memcpy(buf, &h, 8);
    memcpy(buf + 8, hdr, hl);
    for (size_t i = 0; i < data_len; i++) buf[8 + hl + i] = (uint8_t)i;
    cr_assert_eq(tu_write_file(p, buf, n), 0);
    free(buf);
    return p;
}

Test(st, malformed_files) {
    TmpDir td = {0};
    StFile f;
    char *p;

    p = tmp_file(&td, "tiny");
    cr_assert_eq(tu_write_file(p, "abc", 3), 0);
    ASSERT_ERR(st_open(&f, p), "too small");
    free(p);

    p = raw_file(&td, "hl.safetensors", "{}", 1000, 0);
    ASSERT_ERR(st_open(&f, p), "beyond the file");
    free(p);

    p = raw_file(&td, "magic.safetensors", "GGUF....", 0, 0);
    ASSERT_ERR(st_open(&f, p), "bad magic");
    free(p);

    p = raw_file(&td, "json.safetensors", "{\"a\": {\"dtype\": \"F32\",", 0, 0);
    ASSERT_ERR(st_open(&f, p), "not valid JSON");
    free(p);

    p = raw_file(&td, "range.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, 8);
    ASSERT_ERR(st_open(&f, p), "out of range");
    free(p);

    p = raw_file(&td, "overlap.safetensors",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                 0, 16);
    ASSERT_ERR(st_open(&f, p), "overlap");
    free(p);

    p = raw_file(&td, "size.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 0, 16);
    ASSERT_ERR(st_open(&f, p), "needs 24");
    free(p);

    p = raw_file(&td, "bf16size.safetensors", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0,
                 16);
    ASSERT_ERR(st_open(&f, p), "dtype BF16 with shape (4,) needs 8");
    free(p);

    p = raw_file(&td, "dup.safetensors",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                 0, 8);
    ASSERT_ERR(st_open(&f, p), "duplicate");
    free(p);

    p = raw_file(&td, "dtype.safetensors", "{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4);
    ASSERT_ERR(st_open(&f, p), "unsupported dtype 'Q7'");
    free(p);

    p = raw_file(&td, "neg.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 0, 4);
    ASSERT_ERR(st_open(&f, p), "shape[0]");
    free(p);

    p = raw_file(&td, "rev.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 0, 4);
    ASSERT_ERR(st_open(&f, p), "end before begin");
    free(p);

    // Valid: an I64 tensor and __metadata__ alongside an F32 one; the I64 one is refused on use.
    p = raw_file(&td, "ok.safetensors",
                 "{\"__metadata__\":{\"format\":\"pt\"},"
                 "\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                 "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
                 "\"z\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[16,16]}}  ",
                 0, 24);
    cr_assert_eq(st_open(&f, p), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(f.n, 3);
    const StTensor *t;
    ASSERT_ERR(st_get(&f, "i", &t), "dtype I64");
    ASSERT_ERR(st_get(&f, "nope", &t), "missing tensor nope");
    cr_assert(strstr(ct_errmsg(), "x") != NULL, "lists what the file holds");
    cr_assert_eq(st_get(&f, "x", &t), CT_OK);
    size_t want[2] = {3, 1};
    ASSERT_ERR(st_check_shape(&f, t, 2, want, "(F, D)"), "tensor x has shape (2,), expected (F, D) = (3, 1)");
    st_close(&f);
    free(p);
    tmp_done(&td);
}

Test(st, nan_scan_names_tensor_and_index) {
    TmpDir td = {0};
    float w[12];
    for (int i = 0; i < 12; i++) w[i] = (float)i;
    w[7] = NAN;
    StDtype dts[3] = {ST_F32, ST_BF16, ST_F16};
    for (int k = 0; k < 3; k++) {
        StWriteItem it = {.name = "W_dec_2", .dtype = dts[k], .ndim = 2, .shape = {3, 4}, .data = w};
        char *p = tmp_file(&td, "nan.safetensors");
        cr_assert_eq(st_write(p, &it, 1), CT_OK);
        StFile f;
        cr_assert_eq(st_open(&f, p), CT_OK);
        ASSERT_ERR(st_check_finite(&f, st_find(&f, "W_dec_2")), "W_dec_2 has NaN at flat index 7 (element (1, 3))");
        cr_assert(strstr(ct_errmsg(), "nan.safetensors"));
        st_close(&f);
        free(p);
    }
    float inf[3] = {0, -INFINITY, 1};
    cr_assert_eq(st_scan_nonfinite(ST_F32, inf, 3), 1);
    cr_assert_eq(st_scan_nonfinite(ST_F32, w, 7), SIZE_MAX);
    tmp_done(&td);
}

Test(st, dtype_parse) {
    StDtype d;
    cr_assert_eq(st_dtype_parse("BF16", &d), CT_OK);
    cr_assert_eq(d, ST_BF16);
    cr_assert_eq(st_dtype_parse("fp16", &d), CT_OK);
    cr_assert_eq(d, ST_F16);
    cr_assert_eq(st_dtype_parse("float32", &d), CT_OK);
    cr_assert_eq(d, ST_F32);
    ASSERT_ERR(st_dtype_parse("int8", &d), "unknown dtype 'int8'");
}
