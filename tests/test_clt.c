// test_clt.c — transcoder formats (CLT / PLT safetensors, GemmaScope npz, config.yaml) round
// trips and malformed inputs, and encode / decode / reconstruct against fp64 references.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "engine/clt.h"
#include "tests/lib/testutil.h"

#define ASSERT_ERR(expr, substr)                                                                         \
    do {                                                                                                 \
        ct_error_clear();                                                                                \
        cr_assert_eq((expr), CT_ERR, "expected failure: %s", #expr);                                   \
        cr_assert(strstr(ct_errmsg(), (substr)) != NULL, "error \"%s\" lacks \"%s\"", ct_errmsg(), (substr)); \
    } while (0)

#define ASSERT_OK(expr) cr_assert_eq((expr), CT_OK, "%s failed: %s", #expr, ct_errmsg())

static const CltActivation JUMP = {CLT_ACT_JUMPRELU, 0}, RELU = {CLT_ACT_RELU, 0};

static uint32_t fbits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

// Values k/256, |k| < 256: exact in bf16 (8 significant bits) and fp16 (11).
static void fill_exact(float *x, size_t n, TuRng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)((int)tu_rng_below(r, 511) - 255) / 256.0f;
}

// Random transcoder: exact-valued (see fill_exact) or normal.  Thresholds positive.
static void make_clt(Clt *c, int L, int D, int F, CltKind kind, CltActivation act, int skip, uint64_t seed, int exact) {
    ASSERT_OK(clt_alloc(c, L, D, F, kind, act, skip));
    TuRng r;
    tu_rng_seed(&r, seed);
    if (exact) fill_exact(c->params, c->n_params, &r);
    else tu_fill_normal(c->params, c->n_params, &r, 0, 0.5f);
    for (int l = 0; l < L; l++)
        if (c->layers[l].threshold)
            for (int f = 0; f < F; f++) c->layers[l].threshold[f] = fabsf(c->layers[l].threshold[f]) * 0.5f;
}

static float round_dt(float x, StDtype dt) {
    if (dt == ST_BF16) return st_bf16_to_f32(st_f32_to_bf16(x));
    if (dt == ST_F16) return st_f16_to_f32(st_f32_to_f16(x));
    return x;
}

static void assert_vec_dt(const float *got, const float *orig, size_t n, StDtype dt, const char *what, int l) {
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(fbits(got[i]), fbits(round_dt(orig[i], dt)), "layer %d %s[%zu]: %a vs %a (%s)", l, what, i,
                     got[i], round_dt(orig[i], dt), st_dtype_name(dt));
}

// b equals a with every tensor rounded through dt.
static void assert_same_clt(const Clt *a, const Clt *b, StDtype dt) {
    cr_assert_eq(b->L, a->L);
    cr_assert_eq(b->D, a->D);
    cr_assert_eq(b->F, a->F);
    cr_assert_eq(b->kind, a->kind);
    cr_assert_eq(b->act.kind, a->act.kind);
    cr_assert_eq(b->act.k, a->act.k);
    cr_assert_eq(b->has_skip, a->has_skip);
    size_t F = (size_t)a->F, D = (size_t)a->D;
    float *ra = malloc(D * sizeof(float)), *rb = malloc(D * sizeof(float));
    for (int l = 0; l < a->L; l++) {
        const CltLayer *x = &a->layers[l], *y = &b->layers[l];
        assert_vec_dt(y->W_enc, x->W_enc, F * D, dt, "W_enc", l);
        assert_vec_dt(y->b_enc, x->b_enc, F, dt, "b_enc", l);
        assert_vec_dt(y->b_dec, x->b_dec, D, dt, "b_dec", l);
        if (x->threshold) assert_vec_dt(y->threshold, x->threshold, F, dt, "threshold", l);
        else cr_assert_null(y->threshold);
        if (x->W_skip) assert_vec_dt(y->W_skip, x->W_skip, D * D, dt, "W_skip", l);
        cr_assert_eq(y->n_out, x->n_out);
        int lo_end = a->kind == CLT_CROSS_LAYER ? a->L : l + 1;
        for (int f = 0; f < a->F; f++)
            for (int lo = l; lo < lo_end; lo++) {
                ASSERT_OK(clt_decoder_row(a, l, f, lo, ra));
                ASSERT_OK(clt_decoder_row(b, l, f, lo, rb));
                assert_vec_dt(rb, ra, D, dt, "W_dec row", l);
            }
    }
    free(ra);
    free(rb);
}

static char *fresh_dir(const char *name) {
    char *d = tu_mkdtemp(name);
    cr_assert(d);
    return d;
}

// ---- round trips ----------------------------------------------------------------------------------

Test(clt_format, roundtrip_every_layout_and_dtype) {
    StDtype dts[3] = {ST_F32, ST_BF16, ST_F16};
    for (int kind = 0; kind < 2; kind++)
        for (int k = 0; k < 3; k++)
            for (int exact = 0; exact < 2; exact++) {
                Clt a, b, e;
                int skip = (k + exact) & 1;
                make_clt(&a, 3, 8, 12, (CltKind)kind, JUMP, skip, 100 + (uint64_t)(k * 4 + exact), exact);
                free(a.input_hook);
                a.input_hook = strdup("blocks.{layer}.hook_resid_mid: \"quoted\"");
                char *dir = fresh_dir("ctrace_clt");
                ASSERT_OK(clt_save(&a, dir, dts[k]));
                ASSERT_OK(clt_load(&b, dir, 0));                 // lazy decoders
                ASSERT_OK(clt_load(&e, dir, CLT_LOAD_EAGER));    // resident fp32 decoders
                assert_same_clt(&a, &b, dts[k]);
                assert_same_clt(&a, &e, dts[k]);
                if (exact) assert_same_clt(&a, &b, ST_F32);      // exactly representable: identical
                cr_assert_str_eq(b.input_hook, a.input_hook);
                cr_assert_str_eq(b.output_hook, "hook_mlp_out");
                // lazy bf16/f16 decoders stay mapped; lazy aligned F32 decoders are views
                cr_assert_eq(clt_decoder_row_f32(&b, 1, 2, 1) != NULL, dts[k] == ST_F32);
                cr_assert(clt_decoder_row_f32(&e, 1, 2, 1) != NULL);
                cr_assert_lt(b.n_params, e.n_params, "lazy load keeps decoders out of the block");
                if (kind == CLT_CROSS_LAYER && skip) {
                    // circuit-tracer applies W_skip_i as x @ W_skip_i: the file holds our transpose
                    char *p = tu_join(dir, "W_enc_2.safetensors");
                    StFile f;
                    const StTensor *t;
                    ASSERT_OK(st_open(&f, p));
                    ASSERT_OK(st_get(&f, "W_skip_2", &t));
                    float ws[64];
                    ASSERT_OK(st_read_f32(&f, t, ws));
                    for (int i = 0; i < 8; i++)
                        for (int j = 0; j < 8; j++)
                            cr_assert_eq(ws[i * 8 + j], round_dt(a.layers[2].W_skip[j * 8 + i], dts[k]));
                    st_close(&f);
                    free(p);
                }
                {
                    char *p = tu_join(dir, "config.yaml");
                    size_t n = 0;
                    char *y = tu_read_file(p, &n);
                    cr_assert(y);
                    y = realloc(y, n + 1);
                    y[n] = 0;
                    cr_assert(strstr(y, kind == CLT_CROSS_LAYER ? "model_kind: cross_layer_transcoder"
                                                                : "model_kind: transcoder_set"),
                              "%s", y);
                    cr_assert(strstr(y, "feature_output_hook: \"hook_mlp_out\""), "%s", y);
                    free(y);
                    free(p);
                }

                // Saving what was loaded reproduces the files byte for byte.
                char *dir2 = fresh_dir("ctrace_clt2");
                ASSERT_OK(clt_save(&b, dir2, dts[k]));
                const char *names[] = {"W_enc_1.safetensors", "W_dec_2.safetensors", "layer_1.safetensors",
                                       "config.yaml"};
                for (int i = 0; i < 4; i++) {
                    if (kind == CLT_CROSS_LAYER ? i == 2 : i < 2) continue;
                    char *p1 = tu_join(dir, names[i]), *p2 = tu_join(dir2, names[i]);
                    size_t n1 = 0, n2 = 0;
                    void *b1 = tu_read_file(p1, &n1), *b2 = tu_read_file(p2, &n2);
                    cr_assert(b1 && b2, "%s written", names[i]);
                    cr_assert(n1 == n2 && !memcmp(b1, b2, n1), "%s differs after a reload", names[i]);
                    free(b1), free(b2), free(p1), free(p2);
                }
                clt_free(&a), clt_free(&b), clt_free(&e);
                tu_rmtree(dir), tu_rmtree(dir2);
                free(dir), free(dir2);
            }
}

Test(clt_format, activation_from_config_and_files) {
    Clt a, b;
    char *dir = fresh_dir("ctrace_act");
    // TopK survives through config.yaml
    make_clt(&a, 2, 6, 10, CLT_PER_LAYER, (CltActivation){CLT_ACT_TOPK, 3}, 0, 5, 0);
    ASSERT_OK(clt_save(&a, dir, ST_F32));
    ASSERT_OK(clt_load(&b, dir, 0));
    cr_assert_eq(b.act.kind, CLT_ACT_TOPK);
    cr_assert_eq(b.act.k, 3);
    clt_free(&a), clt_free(&b);
    tu_rmtree(dir);
    free(dir);

    // ReLU: no threshold tensors on disk; without config.yaml the loader infers ReLU
    dir = fresh_dir("ctrace_act");
    make_clt(&a, 2, 6, 10, CLT_CROSS_LAYER, RELU, 0, 6, 0);
    ASSERT_OK(clt_save(&a, dir, ST_F32));
    char *cy = tu_join(dir, "config.yaml"), *e0 = tu_join(dir, "W_enc_0.safetensors");
    StFile f;
    ASSERT_OK(st_open(&f, e0));
    cr_assert_null(st_find(&f, "threshold_0"));
    st_close(&f);
    unlink(cy);
    ASSERT_OK(clt_load(&b, dir, 0));
    cr_assert_eq(b.act.kind, CLT_ACT_RELU);
    cr_assert_eq(b.kind, CLT_CROSS_LAYER);
    cr_assert_str_eq(b.input_hook, "hook_resid_mid");
    clt_free(&b);
    // config asking for JumpReLU without thresholds is an error
    cr_assert_eq(tu_write_file(cy, "activation: jump_relu\n", 22), 0);
    ASSERT_ERR(clt_load(&b, dir, 0), "no threshold");
    clt_free(&a);
    free(cy), free(e0);
    tu_rmtree(dir);
    free(dir);
}

Test(clt_format, per_feature_decoder_read_equals_full_conversion) {
    Clt a, b;
    make_clt(&a, 3, 10, 7, CLT_CROSS_LAYER, JUMP, 0, 9, 0);
    char *dir = fresh_dir("ctrace_dec");
    ASSERT_OK(clt_save(&a, dir, ST_BF16));
    ASSERT_OK(clt_load(&b, dir, 0));
    for (int l = 0; l < 3; l++) {
        char name[64], file[64];
        snprintf(file, sizeof file, "W_dec_%d.safetensors", l);
        snprintf(name, sizeof name, "W_dec_%d", l);
        char *p = tu_join(dir, file);
        StFile f;
        const StTensor *t;
        ASSERT_OK(st_open(&f, p));
        ASSERT_OK(st_get(&f, name, &t));
        cr_assert_eq(t->dtype, ST_BF16);
        cr_assert_eq(t->ndim, 3);
        cr_assert_eq(t->shape[1], (size_t)(3 - l));
        float *full = malloc(t->numel * sizeof(float)), row[10];
        ASSERT_OK(st_read_f32(&f, t, full));
        for (int fe = 0; fe < 7; fe++)
            for (int lo = l; lo < 3; lo++) {
                ASSERT_OK(clt_decoder_row(&b, l, fe, lo, row));
                cr_assert_eq(memcmp(row, full + ((size_t)fe * (3 - l) + (lo - l)) * 10, sizeof row), 0,
                             "row (%d, %d, %d)", l, fe, lo);
            }
        // per-row read of one feature equals the same slice
        float one[30];
        ASSERT_OK(st_read_rows_f32(&f, t, 4, 1, one));
        cr_assert_eq(memcmp(one, full + (size_t)4 * (3 - l) * 10, (size_t)(3 - l) * 10 * sizeof(float)), 0);
        free(full);
        st_close(&f);
        free(p);
    }
    float row[10];
    ASSERT_ERR(clt_decoder_row(&b, 2, 0, 1, row), "out of range");
    ASSERT_ERR(clt_decoder_row(&b, 0, 7, 1, row), "out of range");
    clt_free(&a), clt_free(&b);
    // PLT: only lo == l exists
    make_clt(&a, 2, 4, 3, CLT_PER_LAYER, RELU, 0, 2, 0);
    ASSERT_ERR(clt_decoder_row(&a, 0, 0, 1, row), "out of range");
    ASSERT_OK(clt_decoder_row(&a, 1, 2, 1, row));
    cr_assert_eq(memcmp(row, a.layers[1].W_dec + 2 * 4, 4 * sizeof(float)), 0);
    clt_free(&a);
    tu_rmtree(dir);
    free(dir);
}

// ---- GemmaScope npz ---------------------------------------------------------------------------------

typedef struct Npy {
    uint8_t *buf;
    size_t n;
} Npy;

// A .npy v1.0 file: magic, version, u16 header length, dict padded to a multiple of 64, data.
static Npy npy_make(const char *descr, const char *fortran, const size_t *shape, int ndim, const void *data,
                    size_t nbytes) {
    char dict[256], sh[96] = "(";
    for (int i = 0; i < ndim; i++) {
        char t[24];
        snprintf(t, sizeof t, i ? " %zu," : "%zu,", shape[i]);
        strcat(sh, t);
    }
    if (ndim > 1) sh[strlen(sh) - 1] = 0;  // numpy writes "(3, 4)" but "(5,)"
    strcat(sh, ")");
    snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, fortran, sh);
    size_t hl = strlen(dict) + 1, total = 10 + hl;
    size_t pad = (64 - total % 64) % 64;
    hl += pad;
    Npy o;
    o.n = 10 + hl + nbytes;
    o.buf = malloc(o.n);
    memcpy(o.buf, "\x93NUMPY\x01\x00", 8);
    o.buf[8] = (uint8_t)(hl & 0xff), o.buf[9] = (uint8_t)(hl >> 8);
    memset(o.buf + 10, ' ', hl);
    memcpy(o.buf + 10, dict, strlen(dict));
    o.buf[10 + hl - 1] = '\n';
    memcpy(o.buf + 10 + hl, data, nbytes);
    return o;
}

static void npz_write(const char *path, const char *const *names, Npy *arrs, int n, int compress) {
    int err;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    cr_assert(z, "zip_open %s: %d", path, err);
    for (int i = 0; i < n; i++) {
        zip_source_t *s = zip_source_buffer(z, arrs[i].buf, arrs[i].n, 0);
        cr_assert(s);
        zip_int64_t idx = zip_file_add(z, names[i], s, ZIP_FL_OVERWRITE);
        cr_assert(idx >= 0, "%s", zip_strerror(z));
        cr_assert_eq(zip_set_file_compression(z, (zip_uint64_t)idx, compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0), 0);
    }
    cr_assert_eq(zip_close(z), 0);
    for (int i = 0; i < n; i++) free(arrs[i].buf);
}

typedef struct GemmaLayer {
    int D, F;
    float *W_enc_t;  // (D, F) as GemmaScope stores it
    float *W_dec, *b_enc, *b_dec, *thr;
} GemmaLayer;

static void gemma_make(GemmaLayer *g, int D, int F, uint64_t seed) {
    TuRng r;
    tu_rng_seed(&r, seed);
    g->D = D, g->F = F;
    g->W_enc_t = malloc((size_t)D * F * 4);
    g->W_dec = malloc((size_t)D * F * 4);
    g->b_enc = malloc((size_t)F * 4);
    g->b_dec = malloc((size_t)D * 4);
    g->thr = malloc((size_t)F * 4);
    fill_exact(g->W_enc_t, (size_t)D * F, &r);  // exact in fp16 too, so '<f2' compares exactly
    fill_exact(g->W_dec, (size_t)D * F, &r);
    fill_exact(g->b_enc, (size_t)F, &r);
    fill_exact(g->b_dec, (size_t)D, &r);
    for (int f = 0; f < F; f++) g->thr[f] = (float)(f % 5) / 16.0f;
}

static void gemma_free(GemmaLayer *g) {
    free(g->W_enc_t), free(g->W_dec), free(g->b_enc), free(g->b_dec), free(g->thr);
}

// Convert n floats to the bytes of descr ('<f4', '<f8', '<f2'); returns malloc'd, *nb set.
static void *as_descr(const float *x, size_t n, const char *descr, size_t *nb) {
    if (!strcmp(descr, "<f8")) {
        double *d = malloc(n * 8);
        for (size_t i = 0; i < n; i++) d[i] = x[i];
        *nb = n * 8;
        return d;
    }
    if (!strcmp(descr, "<f2")) {
        uint16_t *h = malloc(n * 2);
        for (size_t i = 0; i < n; i++) h[i] = st_f32_to_f16(x[i]);
        *nb = n * 2;
        return h;
    }
    float *f = malloc(n * 4);
    memcpy(f, x, n * 4);
    *nb = n * 4;
    return f;
}

// skip_member: leave one array out; bad_descr: used for W_enc instead of descr.
static void gemma_write(const char *path, const GemmaLayer *g, const char *descr, int compress, const char *skip_member,
                        const char *wenc_descr, const char *fortran) {
    const char *names[5] = {"W_enc.npy", "W_dec.npy", "b_enc.npy", "b_dec.npy", "threshold.npy"};
    const float *data[5] = {g->W_enc_t, g->W_dec, g->b_enc, g->b_dec, g->thr};
    size_t shapes[5][2] = {{(size_t)g->D, (size_t)g->F}, {(size_t)g->F, (size_t)g->D}, {(size_t)g->F, 0},
                           {(size_t)g->D, 0}, {(size_t)g->F, 0}};
    int nd[5] = {2, 2, 1, 1, 1};
    Npy arrs[5];
    const char *use[5];
    int n = 0;
    for (int i = 0; i < 5; i++) {
        if (skip_member && !strcmp(skip_member, names[i])) continue;
        size_t cnt = shapes[i][0] * (nd[i] == 2 ? shapes[i][1] : 1), nb;
        const char *ds = (i == 0 && wenc_descr) ? wenc_descr : descr;
        void *bytes = as_descr(data[i], cnt, !strcmp(ds, "<f8") || !strcmp(ds, "<f2") ? ds : "<f4", &nb);
        arrs[n] = npy_make(ds, i == 0 && fortran ? fortran : "False", shapes[i], nd[i], bytes, nb);
        use[n++] = names[i];
        free(bytes);
    }
    npz_write(path, use, arrs, n, compress);
}

static void assert_gemma_layer(const Clt *c, int l, const GemmaLayer *g) {
    const CltLayer *ly = &c->layers[l];
    for (int f = 0; f < g->F; f++)
        for (int d = 0; d < g->D; d++)
            cr_assert_eq(ly->W_enc[(size_t)f * g->D + d], g->W_enc_t[(size_t)d * g->F + f], "W_enc^T (%d, %d)", f, d);
    cr_assert_eq(memcmp(ly->W_dec, g->W_dec, (size_t)g->F * g->D * 4), 0);
    cr_assert_eq(memcmp(ly->b_enc, g->b_enc, (size_t)g->F * 4), 0);
    cr_assert_eq(memcmp(ly->b_dec, g->b_dec, (size_t)g->D * 4), 0);
    cr_assert_eq(memcmp(ly->threshold, g->thr, (size_t)g->F * 4), 0);
}

Test(clt_npz, gemmascope_single_dir_and_list) {
    char *dir = fresh_dir("ctrace_npz");
    GemmaLayer g0, g1;
    gemma_make(&g0, 6, 10, 1);
    gemma_make(&g1, 6, 10, 2);
    const char *descrs[3] = {"<f4", "<f8", "<f2"};
    for (int i = 0; i < 3; i++) {
        char *p = tu_join(dir, "params.npz");
        gemma_write(p, &g0, descrs[i], i == 1, NULL, NULL, NULL);
        Clt c;
        ASSERT_OK(clt_load(&c, p, 0));
        cr_assert_eq(c.L, 1);
        cr_assert_eq(c.D, 6);
        cr_assert_eq(c.F, 10);
        cr_assert_eq(c.kind, CLT_PER_LAYER);
        cr_assert_eq(c.act.kind, CLT_ACT_JUMPRELU);
        assert_gemma_layer(&c, 0, &g0);
        ASSERT_OK(clt_check_model(&c, 1, 6));
        ASSERT_ERR(clt_check_model(&c, 1, 8), "W_enc has shape (6, 10), expected (D, F) = (8, 10) for a model with D = 8");
        clt_free(&c);
        unlink(p);
        free(p);
    }
    // directory of layer_{i}/params.npz
    char *l0 = tu_join(dir, "layer_0"), *l1 = tu_join(dir, "layer_1");
    cr_assert_eq(mkdir(l0, 0755), 0);
    cr_assert_eq(mkdir(l1, 0755), 0);
    char *p0 = tu_join(l0, "params.npz"), *p1 = tu_join(l1, "params.npz");
    gemma_write(p0, &g0, "<f4", 0, NULL, NULL, NULL);
    gemma_write(p1, &g1, "<f4", 1, NULL, NULL, NULL);
    Clt c;
    ASSERT_OK(clt_load(&c, dir, 0));
    cr_assert_eq(c.L, 2);
    assert_gemma_layer(&c, 0, &g0);
    assert_gemma_layer(&c, 1, &g1);
    clt_free(&c);
    // explicit list
    const char *list[2] = {p1, p0};
    ASSERT_OK(clt_load_list(&c, list, 2, 0));
    assert_gemma_layer(&c, 0, &g1);
    assert_gemma_layer(&c, 1, &g0);
    clt_free(&c);
    // config.yaml with a transcoders: list (relative paths) and hooks
    char *cy = tu_join(dir, "config.yaml");
    const char *yaml = "model_name: tiny\nmodel_kind: transcoder_set\nfeature_input_hook: ln2.hook_normalized\n"
                       "feature_output_hook: hook_mlp_out\ntranscoders:\n  - layer_1/params.npz\n  - \"layer_0/params.npz\"\n";
    cr_assert_eq(tu_write_file(cy, yaml, strlen(yaml)), 0);
    ASSERT_OK(clt_load(&c, dir, 0));
    cr_assert_eq(c.L, 2);
    assert_gemma_layer(&c, 0, &g1);
    cr_assert_str_eq(c.input_hook, "ln2.hook_normalized");
    clt_free(&c);
    const char *bad = "model_kind: cross_layer_transcoder\ntranscoders: [layer_0/params.npz]\n";
    cr_assert_eq(tu_write_file(cy, bad, strlen(bad)), 0);
    ASSERT_ERR(clt_load(&c, dir, 0), "model_kind");
    const char *hf = "transcoders:\n  - hf://google/gemma-scope/layer_0/params.npz\n";
    cr_assert_eq(tu_write_file(cy, hf, strlen(hf)), 0);
    ASSERT_ERR(clt_load(&c, dir, 0), "Hugging Face");
    const char *broken = "transcoders: [a, b\nmodel_kind: x\n";
    cr_assert_eq(tu_write_file(cy, broken, strlen(broken)), 0);
    ASSERT_ERR(clt_load(&c, dir, 0), "YAML error");
    free(cy), free(p0), free(p1), free(l0), free(l1);
    gemma_free(&g0), gemma_free(&g1);
    tu_rmtree(dir);
    free(dir);
}

Test(clt_npz, malformed) {
    char *dir = fresh_dir("ctrace_npzbad");
    GemmaLayer g;
    gemma_make(&g, 4, 8, 3);
    char *p = tu_join(dir, "params.npz");
    Clt c;

    gemma_write(p, &g, "<f4", 0, NULL, NULL, NULL);
    size_t n;
    uint8_t *bytes = tu_read_file(p, &n);
    cr_assert(bytes);
    cr_assert_eq(tu_write_file(p, bytes, n / 2), 0);  // truncated: the central directory is gone
    ASSERT_ERR(clt_load(&c, p, 0), "cannot open as an npz");
    cr_assert(strstr(ct_errmsg(), "truncated"));
    // corrupt a byte inside a stored member: the CRC check fails on read
    memcpy(bytes + 200, "\xff\xff\xff\xff", 4);
    cr_assert_eq(tu_write_file(p, bytes, n), 0);
    ASSERT_ERR(clt_load(&c, p, 0), "npz");
    free(bytes);

    gemma_write(p, &g, "<f4", 0, NULL, "<i4", NULL);
    ASSERT_ERR(clt_load(&c, p, 0), "unsupported dtype descr '<i4'");
    cr_assert(strstr(ct_errmsg(), "W_enc.npy"));
    gemma_write(p, &g, "<f4", 1, NULL, ">f4", NULL);
    ASSERT_ERR(clt_load(&c, p, 0), "unsupported dtype descr '>f4'");
    gemma_write(p, &g, "<f4", 0, NULL, NULL, "True");
    ASSERT_ERR(clt_load(&c, p, 0), "fortran_order is True");
    gemma_write(p, &g, "<f4", 0, "W_dec.npy", NULL, NULL);
    ASSERT_ERR(clt_load(&c, p, 0), "missing array W_dec.npy");
    // an array whose header promises more data than it holds ('<f8' header on '<f4' bytes)
    {
        size_t shp[2] = {4, 8};
        Npy a = npy_make("<f8", "False", shp, 2, g.W_enc_t, 32 * 4);
        const char *names[1] = {"W_enc.npy"};
        npz_write(p, names, &a, 1, 0);
        ASSERT_ERR(clt_load(&c, p, 0), "data holds 128 bytes but descr '<f8' with shape (4, 8) needs 256");
    }
    // a shape that disagrees with the others
    {
        GemmaLayer h;
        gemma_make(&h, 4, 8, 4);
        h.F = 8;
        gemma_write(p, &h, "<f4", 0, NULL, NULL, NULL);
        // rewrite b_dec with 5 entries
        size_t shp[1] = {5};
        Npy arrs[5];
        const char *names[5] = {"W_enc.npy", "W_dec.npy", "b_enc.npy", "b_dec.npy", "threshold.npy"};
        size_t s2a[2] = {4, 8}, s2b[2] = {8, 4}, sF[1] = {8};
        arrs[0] = npy_make("<f4", "False", s2a, 2, h.W_enc_t, 32 * 4);
        arrs[1] = npy_make("<f4", "False", s2b, 2, h.W_dec, 32 * 4);
        arrs[2] = npy_make("<f4", "False", sF, 1, h.b_enc, 8 * 4);
        arrs[3] = npy_make("<f4", "False", shp, 1, h.b_enc, 5 * 4);
        arrs[4] = npy_make("<f4", "False", sF, 1, h.thr, 8 * 4);
        npz_write(p, names, arrs, 5, 0);
        ASSERT_ERR(clt_load(&c, p, 0), "tensor b_dec has shape (5,), expected (D) = (4,)");
        gemma_free(&h);
    }
    // an unexpected key in the header dict
    {
        size_t shp[1] = {2};
        float v[2] = {1, 2};
        Npy a = npy_make("<f4', 'extra': 'x", "False", shp, 1, v, 8);
        const char *names[1] = {"W_enc.npy"};
        npz_write(p, names, &a, 1, 0);
        ASSERT_ERR(clt_load(&c, p, 0), "unexpected key 'extra'");
    }
    // NaN in weights
    g.W_dec[13] = NAN;
    gemma_write(p, &g, "<f4", 0, NULL, NULL, NULL);
    ASSERT_ERR(clt_load(&c, p, 0), "tensor W_dec has NaN at flat index 13");
    cr_assert(strstr(ct_errmsg(), "params.npz"));
    free(p);
    gemma_free(&g);
    tu_rmtree(dir);
    free(dir);
}

// ---- malformed safetensors layouts -------------------------------------------------------------------

// Rewrite one file of a saved layout from a modified copy of its tensors.
static void rewrite(const char *dir, const char *file, const StWriteItem *items, int n) {
    char *p = tu_join(dir, file);
    ASSERT_OK(st_write(p, items, n));
    free(p);
}

Test(clt_format, malformed_layouts) {
    enum { L = 3, D = 8, F = 16 };
    Clt a, c;
    make_clt(&a, L, D, F, CLT_CROSS_LAYER, JUMP, 0, 21, 0);
    char *dir = fresh_dir("ctrace_bad");
    ASSERT_OK(clt_save(&a, dir, ST_F32));
    ASSERT_OK(clt_load(&c, dir, 0));
    ASSERT_OK(clt_check_model(&c, L, D));
    ASSERT_ERR(clt_check_model(&c, L + 1, D), "layer count mismatch");
    cr_assert(strstr(ct_errmsg(), "3 layers but the model has 4"));
    ASSERT_ERR(clt_check_model(&c, L, 12),
               "W_enc_0.safetensors: tensor W_enc_0 has shape (16, 8), expected (F, D) = (16, 12) for a model with D = 12");
    clt_free(&c);

    const CltLayer *l1 = &a.layers[1];
    float big[F * (D + 1)];
    memset(big, 0, sizeof big);
    // missing tensor
    StWriteItem no_benc[3] = {{.name = "W_enc_1", .ndim = 2, .shape = {F, D}, .data = l1->W_enc},
                              {.name = "b_dec_1", .ndim = 1, .shape = {D}, .data = l1->b_dec},
                              {.name = "threshold_1", .ndim = 1, .shape = {F}, .data = l1->threshold}};
    rewrite(dir, "W_enc_1.safetensors", no_benc, 3);
    ASSERT_ERR(clt_load(&c, dir, 0), "missing tensor b_enc_1");
    cr_assert(strstr(ct_errmsg(), "W_enc_1.safetensors"));
    // shape mismatch in a later layer
    StWriteItem wide[4] = {{.name = "W_enc_1", .ndim = 2, .shape = {F, D + 1}, .data = big},
                           {.name = "b_enc_1", .ndim = 1, .shape = {F}, .data = l1->b_enc},
                           {.name = "b_dec_1", .ndim = 1, .shape = {D}, .data = l1->b_dec},
                           {.name = "threshold_1", .ndim = 1, .shape = {F}, .data = l1->threshold}};
    rewrite(dir, "W_enc_1.safetensors", wide, 4);
    ASSERT_ERR(clt_load(&c, dir, 0),
               "tensor W_enc_1 has shape (16, 9), expected (F, D) = (16, 8) (F and D from layer 0)");
    // missing threshold in one layer
    wide[0].shape[1] = D, wide[0].data = l1->W_enc;
    rewrite(dir, "W_enc_1.safetensors", wide, 3);
    ASSERT_ERR(clt_load(&c, dir, 0), "layer 1 has no threshold");
    // NaN in an encoder
    float wenc[F * D];
    memcpy(wenc, l1->W_enc, sizeof wenc);
    wenc[37] = NAN;
    wide[0].data = wenc;
    rewrite(dir, "W_enc_1.safetensors", wide, 4);
    ASSERT_ERR(clt_load(&c, dir, 0), "tensor W_enc_1 has NaN at flat index 37 (element (4, 5))");
    wide[0].data = l1->W_enc;
    rewrite(dir, "W_enc_1.safetensors", wide, 4);
    ASSERT_OK(clt_load(&c, dir, 0));
    clt_free(&c);
    // decoder with the wrong number of output layers (dtype bf16 to vary things)
    StWriteItem dec = {.name = "W_dec_1", .dtype = ST_BF16, .ndim = 3, .shape = {F, 3, D}, .data = a.layers[0].W_dec};
    rewrite(dir, "W_dec_1.safetensors", &dec, 1);
    ASSERT_ERR(clt_load(&c, dir, 0), "tensor W_dec_1 has shape (16, 3, 8), expected (F, L-1, D) = (16, 2, 8)");
    // NaN in a memory-mapped decoder: caught by the load scan; with NO_SCAN, by clt_check_finite
    float wdec[F * 2 * D];
    memcpy(wdec, l1->W_dec, sizeof wdec);
    wdec[100] = INFINITY;
    dec.shape[1] = 2, dec.data = wdec;
    rewrite(dir, "W_dec_1.safetensors", &dec, 1);
    ASSERT_ERR(clt_load(&c, dir, 0), "tensor W_dec_1 has +Inf at flat index 100");
    ASSERT_OK(clt_load(&c, dir, CLT_LOAD_NO_SCAN));
    ASSERT_ERR(clt_check_finite(&c), "layer 1 W_dec has NaN/Inf at flat index 100 (feature 6)");
    clt_free(&c);
    ASSERT_ERR(clt_load(&c, dir, CLT_LOAD_EAGER | CLT_LOAD_NO_SCAN), "W_dec_1 has +Inf");  // resident: always scanned
    dec.data = l1->W_dec;
    rewrite(dir, "W_dec_1.safetensors", &dec, 1);
    // model_kind disagreeing with the layout
    char *cy = tu_join(dir, "config.yaml");
    cr_assert_eq(tu_write_file(cy, "model_kind: transcoder_set\n", 27), 0);
    ASSERT_ERR(clt_load(&c, dir, 0), "model_kind: transcoder_set");
    cr_assert_eq(tu_write_file(cy, "model_kind: sae\n", 16), 0);
    ASSERT_ERR(clt_load(&c, dir, 0), "unknown model_kind 'sae'");
    unlink(cy);
    free(cy);
    // a gap in the layer numbering, then a missing decoder file
    char *e1 = tu_join(dir, "W_enc_1.safetensors"), *d1 = tu_join(dir, "W_dec_1.safetensors"),
         *d2 = tu_join(dir, "W_dec_2.safetensors");
    char *bak = tu_join(dir, "W_enc_1.bak");
    cr_assert_eq(rename(e1, bak), 0);
    free(bak);
    ASSERT_ERR(clt_load(&c, dir, 0), "W_enc_1.safetensors is missing");
    unlink(d1);
    ASSERT_ERR(clt_load(&c, dir, 0), "W_enc_1.safetensors is missing");
    unlink(d2);
    char *e2 = tu_join(dir, "W_enc_2.safetensors");
    unlink(e2);
    // now W_enc_0 only, with W_dec_0 of shape (F, 3, D): a 1-layer CLT whose decoder has 3 outputs
    ASSERT_ERR(clt_load(&c, dir, 0), "expected (F, L-0, D) = (16, 1, 8)");
    char *d0 = tu_join(dir, "W_dec_0.safetensors");
    unlink(d0);
    ASSERT_ERR(clt_load(&c, dir, 0), "W_dec");
    free(e1), free(d1), free(d2), free(e2), free(d0);
    tu_rmtree(dir);
    free(dir);

    // empty directory, wrong dtype in a PLT file, both layouts at once
    dir = fresh_dir("ctrace_bad2");
    ASSERT_ERR(clt_load(&c, dir, 0), "no transcoder found");
    char *pl = tu_join(dir, "layer_0.safetensors");
    const char *hdr = "{\"W_enc\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    size_t hl = strlen(hdr);
    uint8_t buf[8 + 128 + 16] = {0};
    uint64_t h64 = hl;
    memcpy(buf, &h64, 8);
    memcpy(buf + 8, hdr, hl);
    cr_assert_eq(tu_write_file(pl, buf, 8 + hl + 16), 0);
    ASSERT_ERR(clt_load(&c, dir, 0), "tensor W_enc has dtype I32");
    Clt p;
    make_clt(&p, 1, 4, 4, CLT_CROSS_LAYER, RELU, 0, 1, 0);
    ASSERT_ERR(clt_save(&p, dir, ST_F32), "refusing");
    char *e0 = tu_join(dir, "W_enc_0.safetensors");
    cr_assert_eq(tu_write_file(e0, buf, 8 + hl + 16), 0);
    ASSERT_ERR(clt_load(&c, dir, 0), "both");
    clt_free(&p), clt_free(&a);
    free(pl), free(e0);
    tu_rmtree(dir);
    free(dir);
}

Test(clt_format, save_removes_stale_layers) {
    Clt a, b;
    char *dir = fresh_dir("ctrace_stale");
    make_clt(&a, 4, 4, 5, CLT_PER_LAYER, JUMP, 0, 1, 0);
    ASSERT_OK(clt_save(&a, dir, ST_F16));
    clt_free(&a);
    make_clt(&a, 2, 4, 5, CLT_PER_LAYER, JUMP, 0, 2, 0);
    ASSERT_OK(clt_save(&a, dir, ST_F32));
    ASSERT_OK(clt_load(&b, dir, 0));
    cr_assert_eq(b.L, 2);
    assert_same_clt(&a, &b, ST_F32);
    clt_free(&a), clt_free(&b);
    tu_rmtree(dir);
    free(dir);
}

// ---- running vs fp64 references --------------------------------------------------------------------

// pre_ref (F) = W_enc x + b_enc in double; also the absolute scale sum |w x| + |b| per feature.
static void ref_pre(const Clt *c, int l, const float *x, double *pre, double *scale) {
    const CltLayer *ly = &c->layers[l];
    for (int f = 0; f < c->F; f++) {
        double s = ly->b_enc[f], a = fabs((double)ly->b_enc[f]);
        for (int d = 0; d < c->D; d++) {
            double t = (double)ly->W_enc[(size_t)f * c->D + d] * x[d];
            s += t, a += fabs(t);
        }
        pre[f] = s, scale[f] = a;
    }
}

// Reference activation from double pre-activations.  Returns 0 when the position is too close
// to a decision boundary to compare (TopK gap or threshold within margin).
static int ref_act(const Clt *c, int l, const double *pre, double *act, double margin) {
    int F = c->F;
    if (c->act.kind == CLT_ACT_TOPK) {
        int k = c->act.k;
        char *keep = calloc((size_t)F, 1);
        double kth = 0, next = -INFINITY;
        for (int j = 0; j < k; j++) {  // selection by repeated max: O(kF), fine here
            int best = -1;
            for (int f = 0; f < F; f++)
                if (!keep[f] && (best < 0 || pre[f] > pre[best])) best = f;
            keep[best] = 1;
            kth = pre[best];
        }
        for (int f = 0; f < F; f++)
            if (!keep[f] && pre[f] > next) next = pre[f];
        for (int f = 0; f < F; f++) act[f] = keep[f] && pre[f] > 0 ? pre[f] : 0;
        free(keep);
        return kth - next > margin;
    }
    int ok = 1;
    for (int f = 0; f < F; f++) {
        double th = c->act.kind == CLT_ACT_JUMPRELU ? c->layers[l].threshold[f] : 0.0;
        act[f] = pre[f] > th ? pre[f] : 0;
        if (fabs(pre[f] - th) < margin) ok = 0;
    }
    return ok;
}

Test(clt_run, encode_matches_fp64_for_every_activation) {
    enum { L = 2, D = 37, F = 53, T = 24 };
    CltActivation acts[3] = {{CLT_ACT_JUMPRELU, 0}, {CLT_ACT_RELU, 0}, {CLT_ACT_TOPK, 5}};
    TuRng r;
    tu_rng_seed(&r, 77);
    float X[T * D];
    tu_fill_normal(X, T * D, &r, 0, 1);
    for (int a = 0; a < 3; a++) {
        Clt c;
        make_clt(&c, L, D, F, CLT_CROSS_LAYER, acts[a], 0, 300 + (uint64_t)a, 0);
        int compared = 0;
        for (int l = 0; l < L; l++) {
            float pre[T * F], act[T * F], pre1[F], act1[F], act_only[F];
            clt_encode_batch(&c, l, X, T, pre, act);
            for (int t = 0; t < T; t++) {
                const float *x = X + t * D;
                clt_encode(&c, l, x, pre1, act1);
                clt_encode(&c, l, x, NULL, act_only);
                // batched == single, and pre == NULL gives the same activations (bit-identical)
                cr_assert_eq(memcmp(pre1, pre + t * F, sizeof pre1), 0, "batch pre differs at t = %d", t);
                cr_assert_eq(memcmp(act1, act + t * F, sizeof act1), 0, "batch act differs at t = %d", t);
                cr_assert_eq(memcmp(act1, act_only, sizeof act1), 0);
                double rp[F], sc[F], ra[F];
                ref_pre(&c, l, x, rp, sc);
                for (int f = 0; f < F; f++)
                    cr_assert_leq(fabs(pre1[f] - rp[f]), 8 * 1.2e-7 * sqrt(D) * sc[f] + 1e-30, "pre (%d, %d, %d)", l,
                                  t, f);
                if (!ref_act(&c, l, rp, ra, 1e-4)) continue;
                compared++;
                int nact = 0;
                for (int f = 0; f < F; f++) {
                    cr_assert_eq(act1[f] != 0, ra[f] != 0, "%s active set differs at (%d, %d, %d)",
                                 clt_act_name(acts[a].kind), l, t, f);
                    if (ra[f] != 0) cr_assert_eq(act1[f], pre1[f], "an active value is its pre-activation");
                    nact += act1[f] != 0;
                }
                if (acts[a].kind == CLT_ACT_TOPK) cr_assert_leq(nact, 5);
            }
        }
        cr_assert_geq(compared, T, "%s: too few positions away from decision boundaries (%d)",
                      clt_act_name(acts[a].kind), compared);
        clt_free(&c);
    }
}

Test(clt_run, topk_ties_and_aliasing) {
    Clt c;
    make_clt(&c, 1, 2, 6, CLT_PER_LAYER, (CltActivation){CLT_ACT_TOPK, 2}, 0, 1, 0);
    float h[6] = {0.5f, 2.0f, 0.5f, -1.0f, 2.0f, 3.0f}, a[6];
    clt_activate(&c, 0, h, a);
    float want[6] = {0, 0, 0, 0, 0, 3.0f};
    want[1] = 2.0f;  // tie between 1 and 4 at 2.0: the lower index wins
    cr_assert_eq(memcmp(a, want, sizeof a), 0, "%g %g %g %g %g %g", a[0], a[1], a[2], a[3], a[4], a[5]);
    clt_activate(&c, 0, h, h);  // in place
    cr_assert_eq(memcmp(h, want, sizeof h), 0);
    float neg[6] = {-3, -1, -2, -5, -4, -6};
    clt_activate(&c, 0, neg, a);  // the top 2 are negative: ReLU after selection zeroes them
    for (int i = 0; i < 6; i++) cr_assert_eq(a[i], 0.0f);
    clt_free(&c);
}

// y_ref (L, D): b_dec + sum over sources of a_ref * W_dec rows (+ skip), from reference
// activations; scale (L, D) the sum of absolute terms.
static void ref_reconstruct(const Clt *c, const float *x, const double *aref, double *y, double *scale) {
    int L = c->L, D = c->D, F = c->F;
    for (int lo = 0; lo < L; lo++)
        for (int d = 0; d < D; d++) {
            double s = c->layers[lo].b_dec[d], a = fabs(s);
            for (int l = 0; l <= lo; l++) {
                if (c->kind == CLT_PER_LAYER && l != lo) continue;
                const CltLayer *ly = &c->layers[l];
                int col = c->kind == CLT_CROSS_LAYER ? lo - l : 0;
                for (int f = 0; f < F; f++) {
                    double t = aref[l * F + f] * ly->W_dec[((size_t)f * ly->n_out + col) * D + d];
                    s += t, a += fabs(t);
                }
            }
            if (c->has_skip)
                for (int e = 0; e < D; e++) {
                    double t = (double)c->layers[lo].W_skip[(size_t)d * D + e] * x[lo * D + e];
                    s += t, a += fabs(t);
                }
            y[lo * D + d] = s, scale[lo * D + d] = a;
        }
}

static void check_reconstruct(CltKind kind, CltActivation act, int skip, uint64_t seed) {
    enum { L = 4, D = 24, F = 40 };
    Clt c;
    make_clt(&c, L, D, F, kind, act, skip, seed, 0);
    for (int l = 0; l < L; l++)
        for (int f = 0; f < F; f++) c.layers[l].b_enc[f] -= 0.5f;  // sparser
    CltWork w;
    ASSERT_OK(clt_work_init(&w, &c));
    TuRng r;
    tu_rng_seed(&r, seed * 3 + 1);
    int compared = 0;
    for (int t = 0; t < 12; t++) {
        float x[L * D], y[L * D];
        tu_fill_normal(x, L * D, &r, 0, 1);
        clt_reconstruct(&c, x, y, &w);
        double aref[L * F], pre[F], sc[F], yref[L * D], ysc[L * D];
        int ok = 1;
        for (int l = 0; l < L; l++) {
            ref_pre(&c, l, x + l * D, pre, sc);
            ok &= ref_act(&c, l, pre, aref + l * F, 1e-4);
        }
        if (!ok) continue;
        compared++;
        int active = 0;
        for (int l = 0; l < L; l++) {
            cr_assert_eq(w.sp[l].n, 0 + w.sp[l].n);
            for (int i = 0; i < w.sp[l].n; i++) {
                cr_assert(i == 0 || w.sp[l].idx[i] > w.sp[l].idx[i - 1], "sparse indices ascending");
                cr_assert_eq(w.sp[l].val[i], w.act[l * F + w.sp[l].idx[i]]);
            }
            active += w.sp[l].n;
        }
        ref_reconstruct(&c, x, aref, yref, ysc);
        for (int i = 0; i < L * D; i++)
            cr_assert_leq(fabs(y[i] - yref[i]), 1e-5 * ysc[i] + 1e-30, "%s %s skip=%d: y[%d] = %.9g, ref %.9g",
                          clt_kind_name(kind), clt_act_name(act.kind), skip, i, y[i], yref[i]);
        cr_assert_gt(active, 0, "some features must fire");
    }
    cr_assert_geq(compared, 6);
    clt_work_free(&w);
    clt_free(&c);
}

Test(clt_run, reconstruct_matches_fp64) {
    check_reconstruct(CLT_CROSS_LAYER, JUMP, 0, 11);
    check_reconstruct(CLT_CROSS_LAYER, RELU, 1, 12);
    check_reconstruct(CLT_CROSS_LAYER, (CltActivation){CLT_ACT_TOPK, 4}, 0, 13);
    check_reconstruct(CLT_PER_LAYER, JUMP, 1, 14);
    check_reconstruct(CLT_PER_LAYER, RELU, 0, 15);
}

Test(clt_run, clt_vs_plt_decode_semantics) {
    enum { L = 3, D = 16, F = 20 };
    Clt cc, pc;
    make_clt(&cc, L, D, F, CLT_CROSS_LAYER, RELU, 0, 40, 0);
    ASSERT_OK(clt_alloc(&pc, L, D, F, CLT_PER_LAYER, RELU, 0));
    // Same encoders and biases; the PLT decoder of layer l is the CLT's own-layer column.
    for (int l = 0; l < L; l++) {
        CltLayer *a = &cc.layers[l], *b = &pc.layers[l];
        memcpy(b->W_enc, a->W_enc, sizeof(float) * F * D);
        memcpy(b->b_enc, a->b_enc, sizeof(float) * F);
        memcpy(b->b_dec, a->b_dec, sizeof(float) * D);
        for (int f = 0; f < F; f++) memcpy(b->W_dec + (size_t)f * D, a->W_dec + (size_t)f * a->n_out * D, sizeof(float) * D);
    }
    CltWork wc, wp;
    ASSERT_OK(clt_work_init(&wc, &cc));
    ASSERT_OK(clt_work_init(&wp, &pc));
    TuRng r;
    tu_rng_seed(&r, 41);
    float x[L * D], yc[L * D], yp[L * D];
    tu_fill_normal(x, L * D, &r, 0, 1);
    clt_reconstruct(&cc, x, yc, &wc);
    clt_reconstruct(&pc, x, yp, &wp);
    cr_assert_eq(memcmp(wc.act, wp.act, sizeof(float) * L * F), 0, "same encoders, same activations");
    // layer 0: only layer-0 features write there in both, with identical operations
    cr_assert_eq(memcmp(yc, yp, sizeof(float) * D), 0);
    // later layers: the CLT adds the earlier layers' cross-layer decoders, the PLT does not
    for (int lo = 1; lo < L; lo++) {
        double extra[D] = {0};
        for (int l = 0; l < lo; l++)
            for (int f = 0; f < F; f++) {
                double a = wc.act[l * F + f];
                for (int d = 0; d < D; d++) extra[d] += a * cc.layers[l].W_dec[((size_t)f * cc.layers[l].n_out + (lo - l)) * D + d];
            }
        double maxe = 0;
        for (int d = 0; d < D; d++) {
            cr_assert_leq(fabs((double)yc[lo * D + d] - yp[lo * D + d] - extra[d]), 1e-4, "layer %d dim %d", lo, d);
            maxe = fmax(maxe, fabs(extra[d]));
        }
        cr_assert_gt(maxe, 1e-3, "cross-layer contribution must be visible");
    }
    // a PLT never writes across layers
    float y[D];
    memset(y, 0, sizeof y);
    clt_decode_layer_add(&pc, 0, &wp.sp[0], 1, y, NULL);
    for (int d = 0; d < D; d++) cr_assert_eq(y[d], 0.0f);
    cr_assert_gt(wp.sp[0].n, 0);
    clt_work_free(&wc), clt_work_free(&wp);
    clt_free(&cc), clt_free(&pc);
}

Test(clt_run, lazy_bf16_decoders_decode_like_eager) {
    enum { L = 3, D = 12, F = 18 };
    Clt a, lazy, eager;
    make_clt(&a, L, D, F, CLT_CROSS_LAYER, JUMP, 1, 50, 0);
    char *dir = fresh_dir("ctrace_lazy");
    ASSERT_OK(clt_save(&a, dir, ST_BF16));
    ASSERT_OK(clt_load(&lazy, dir, 0));
    ASSERT_OK(clt_load(&eager, dir, CLT_LOAD_EAGER));
    cr_assert_null(clt_decoder_row_f32(&lazy, 0, 0, 0));
    CltWork w1, w2;
    ASSERT_OK(clt_work_init(&w1, &lazy));
    ASSERT_OK(clt_work_init(&w2, &eager));
    TuRng r;
    tu_rng_seed(&r, 51);
    float x[L * D], y1[L * D], y2[L * D];
    tu_fill_normal(x, L * D, &r, 0, 1);
    clt_reconstruct(&lazy, x, y1, &w1);
    clt_reconstruct(&eager, x, y2, &w2);
    cr_assert_eq(memcmp(y1, y2, sizeof y1), 0, "row-at-a-time conversion gives the same bits");
    ASSERT_OK(clt_check_finite(&lazy));
    clt_work_free(&w1), clt_work_free(&w2);
    clt_free(&a), clt_free(&lazy), clt_free(&eager);
    tu_rmtree(dir);
    free(dir);
}

Test(clt_run, sparsify) {
    float act[9] = {0, 1.5f, 0, -0.0f, 2.0f, 0, 0, 0, -3.0f};
    CltSparse s;
    ASSERT_OK(clt_sparse_init(&s, 9));
    clt_sparsify(act, 9, &s);
    cr_assert_eq(s.n, 3);
    cr_assert_eq(s.idx[0], 1);
    cr_assert_eq(s.idx[1], 4);
    cr_assert_eq(s.idx[2], 8);
    cr_assert_eq(s.val[2], -3.0f);
    clt_sparse_free(&s);
}
