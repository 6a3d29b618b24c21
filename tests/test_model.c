// test_model.c — llama2.c checkpoint loading: header validation and size checks with clear
// messages (file, field, expected, got), random checkpoints, parameter counts.
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "tests/lib/testutil.h"

static char *g_dir;
static char *g_good;   // a small valid checkpoint
static size_t g_good_n;

static void setup(void) {
    g_dir = tu_mkdtemp("ct_model");
    char *p = tu_join(g_dir, "good.bin");
    Config c = {.dim = 16, .hidden_dim = 40, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                .vocab_size = 32, .seq_len = 8, .shared_classifier = 1};
    cr_assert_eq(model_write_random(p, &c, 1), CT_OK, "%s", ct_errmsg());
    g_good = tu_read_file(p, &g_good_n);
    free(p);
}
static void teardown(void) {
    tu_rmtree(g_dir);
    free(g_dir);
    free(g_good);
}

// Write bytes to a file in the temp dir and try to load it; returns the load status.
static int load_bytes(const void *data, size_t n, Model *m) {
    char *p = tu_join(g_dir, "t.bin");
    tu_write_file(p, data, n);
    int rc = model_load_llama2c(m, p);
    free(p);
    return rc;
}

static void expect_error(const void *data, size_t n, const char *needle) {
    Model m;
    cr_assert_eq(load_bytes(data, n, &m), CT_ERR, "loaded a bad file (expected '%s')", needle);
    cr_assert(strstr(ct_errmsg(), needle) != NULL, "message '%s' lacks '%s'", ct_errmsg(), needle);
    cr_assert(strstr(ct_errmsg(), "t.bin") != NULL, "message '%s' does not name the file", ct_errmsg());
}

// Header with one field replaced.
static void expect_header_error(int field, int32_t value, const char *needle) {
    uint8_t *b = malloc(g_good_n);
    memcpy(b, g_good, g_good_n);
    memcpy(b + 4 * field, &value, 4);
    expect_error(b, g_good_n, needle);
    free(b);
}

TestSuite(model, .init = setup, .fini = teardown);

Test(model, loads_good_and_counts_params) {
    Model m;
    cr_assert_eq(load_bytes(g_good, g_good_n, &m), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(m.c.head_dim, 4);
    // emb 32*16 + L*(2*16 + 16*16 + 2*8*16 + 16*16 + 3*40*16) + 16
    size_t want = 32 * 16 + 2 * (2 * 16 + 256 + 2 * 8 * 16 + 256 + 3 * 40 * 16) + 16;
    cr_assert_eq(model_param_count(&m.c), want);
    cr_assert(m.w.wcls == m.w.token_embedding);
    // File size: header + params + RoPE tables (2 * seq_len * head_dim/2).
    cr_assert_eq(g_good_n, 28 + 4 * (want + 2 * 8 * 2));
    model_free(&m);
}

Test(model, random_is_reproducible_and_seeded) {
    char *a = tu_join(g_dir, "a.bin"), *b = tu_join(g_dir, "b.bin");
    Config c = {.dim = 16, .hidden_dim = 40, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                .vocab_size = 32, .seq_len = 8, .shared_classifier = 1};
    cr_assert_eq(model_write_random(a, &c, 1), CT_OK);
    cr_assert_eq(model_write_random(b, &c, 2), CT_OK);
    size_t na, nb;
    void *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
    cr_assert_eq(na, g_good_n);
    cr_assert_eq(memcmp(da, g_good, na), 0, "same seed, different bytes");
    cr_assert_neq(memcmp(da, db, na), 0, "different seeds, same bytes");
    free(da); free(db); free(a); free(b);
}

Test(model, untied_classifier) {
    char *p = tu_join(g_dir, "u.bin");
    Config c = {.dim = 16, .hidden_dim = 40, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1,
                .vocab_size = 32, .seq_len = 8, .shared_classifier = 0};
    cr_assert_eq(model_write_random(p, &c, 3), CT_OK);
    Model m;
    cr_assert_eq(model_load_llama2c(&m, p), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(m.c.shared_classifier, 0);
    cr_assert(m.w.wcls != m.w.token_embedding);
    cr_assert_eq((const uint8_t *)(m.w.wcls + 32 * 16), m.file.data + m.file.size, "wcls is not the last tensor");
    model_free(&m);
    // Drop the classifier: the header promises more than the file holds.
    size_t n;
    uint8_t *d = tu_read_file(p, &n);
    expect_error(d, n - 4 * 32 * 16, "promises");
    free(d);
    free(p);
}

Test(model, missing_file) {
    Model m;
    cr_assert_eq(model_load_llama2c(&m, "/nonexistent/dir/model.bin"), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "/nonexistent/dir/model.bin") != NULL, "%s", ct_errmsg());
}

Test(model, shorter_than_header) { expect_error(g_good, 20, "header"); }
Test(model, empty_file) { expect_error(g_good, 0, "header"); }
Test(model, truncated_weights) { expect_error(g_good, g_good_n - 1, "promises"); }
Test(model, truncated_half) { expect_error(g_good, g_good_n / 2, "promises"); }
Test(model, zero_dim) { expect_header_error(0, 0, "dim = 0"); }
Test(model, negative_hidden) { expect_header_error(1, -5, "hidden_dim = -5"); }
Test(model, zero_layers) { expect_header_error(2, 0, "n_layers = 0"); }
Test(model, huge_layers) { expect_header_error(2, 1 << 30, "n_layers"); }
Test(model, zero_heads) { expect_header_error(3, 0, "n_heads = 0"); }
Test(model, kv_heads_not_dividing) { expect_header_error(4, 3, "n_kv_heads = 3 must divide n_heads = 4"); }
Test(model, kv_heads_more_than_heads) { expect_header_error(4, 8, "n_kv_heads = 8"); }
Test(model, heads_not_dividing_dim) { expect_header_error(3, 3, "n_heads"); }
Test(model, zero_vocab) { expect_header_error(5, 0, "vocab_size"); }
Test(model, huge_vocab_promises_more) { expect_header_error(5, 1 << 20, "promises"); }
Test(model, int_min_vocab) { expect_header_error(5, INT32_MIN, "vocab_size"); }
Test(model, negative_seq_len) { expect_header_error(6, -1, "seq_len = -1"); }
Test(model, huge_dims_do_not_overflow) {
    // Every field at its maximum: size arithmetic must not wrap; the file is far too short.
    uint8_t *b = malloc(g_good_n);
    memcpy(b, g_good, g_good_n);
    int32_t h[7] = {1 << 16, 1 << 20, 1024, 1024, 1024, 1 << 24, 1 << 22};
    memcpy(b, h, sizeof h);
    expect_error(b, g_good_n, "promises");
    free(b);
}

Test(model, runstate_longer_than_context) {
    Model m;
    cr_assert_eq(load_bytes(g_good, g_good_n, &m), CT_OK);
    RunState s;
    cr_assert_eq(runstate_init(&s, &m.c, 9), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "seq_len") != NULL, "%s", ct_errmsg());
    cr_assert_eq(runstate_init(&s, &m.c, 8), CT_OK);
    int ids[8] = {1, 2, 3, 4, 5, 6, 7, 31};
    cr_assert_eq(model_forward_seq(&m, &s, ids, 8, NULL, NULL, NULL), CT_OK);
    ids[3] = 32;
    cr_assert_eq(model_forward_seq(&m, &s, ids, 8, NULL, NULL, NULL), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "token 32 at position 3") != NULL, "%s", ct_errmsg());
    cr_assert_null(model_forward(&m, &s, 1, 8, NULL, NULL));
    cr_assert(strstr(ct_errmsg(), "position 8") != NULL, "%s", ct_errmsg());
    runstate_free(&s);
    model_free(&m);
}
