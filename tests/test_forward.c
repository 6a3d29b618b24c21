// test_forward.c — the forward pass against the reference program's goldens, for every ISA
// this machine runs and for 1 and 2 threads; decode == prefill (also over several attention
// key blocks, with a sliding window); thread-count determinism; a second real model
// (aidreams260K) runs with its own header.
#include <criterion/criterion.h>
#include <stdlib.h>

#include "simd/simd.h"
#include "tests/golden_checks.h"
#include "tests/lib/testutil.h"

static const char *shared(void) { return getenv("SHARED") ? getenv("SHARED") : "../shared"; }

static void check_isa(SimdIsa isa, int threads) {
    if (!simd_isa_supported(isa)) return;
    cr_assert_eq(simd_force(isa), 0);
    ThreadPool *pool = pool_create(threads);
    GoldenResult r = golden_check_all(shared(), pool);
    pool_destroy(pool);
    cr_assert_eq(r.fails, 0, "[%s, %d threads]\n%s", simd_isa_name(isa), threads, r.msg);
}

Test(forward, goldens_scalar) { check_isa(SIMD_SCALAR, 1); }
Test(forward, goldens_avx2) { check_isa(SIMD_AVX2, 1); }
Test(forward, goldens_avxvnni_2threads) { check_isa(SIMD_AVXVNNI, 2); }
Test(forward, goldens_avx512) { check_isa(SIMD_AVX512, 1); }
Test(forward, goldens_avx512_2threads) { check_isa(SIMD_AVX512, 2); }
Test(forward, goldens_amx_2threads) { check_isa(SIMD_AMX, 2); }
Test(forward, goldens_scalar_2threads) { check_isa(SIMD_SCALAR, 2); }

Test(forward, at_least_one_vector_isa) {
    // On x86-64 with AVX2 the vector tables must be in the build (or the above tests skip).
    int any = simd_isa_supported(SIMD_AVX2) || simd_isa_supported(SIMD_AVX512) || simd_isa_supported(SIMD_NEON);
    cr_assert(any, "no vector kernel table is available on this machine");
}

// A random llama2.c checkpoint of config c (model_write_random, seed) in a fresh temp dir
// (*dir, *path: the caller removes and frees them), loaded into m.
static void random_model(Model *m, const Config *c, uint64_t seed, const char *tag, char **dir, char **path) {
    *dir = tu_mkdtemp(tag);
    cr_assert_not_null(*dir);
    *path = tu_join(*dir, "m.bin");
    cr_assert_eq(model_write_random(*path, c, seed), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(model_load_llama2c(m, *path), CT_OK, "%s", ct_errmsg());
}

// Logits of a random GQA model with an untied classifier are byte-identical for 1, 2, 3
// threads, for prefill and decode, with a model large enough that the pool really splits.
Test(forward, thread_count_determinism) {
    char *dir, *path;
    Config c = {.dim = 256, .hidden_dim = 688, .n_layers = 2, .n_heads = 8, .n_kv_heads = 2,
                .vocab_size = 1000, .seq_len = 96, .shared_classifier = 0};
    Model m;
    random_model(&m, &c, 7, "ct_fwd", &dir, &path);
    cr_assert_eq(m.c.shared_classifier, 0);
    int n = 80;
    int ids[80];
    for (int i = 0; i < n; i++) ids[i] = (i * 37 + 11) % 1000;
    size_t V = 1000;
    float *ref = NULL;
    for (int th = 1; th <= 3; th++) {
        ThreadPool *pool = pool_create(th);
        RunState s;
        cr_assert_eq(runstate_init(&s, &m.c, n), CT_OK);
        float *lg = malloc(sizeof(float) * (size_t)n * V);
        cr_assert_eq(model_forward_seq(&m, &s, ids, n, lg, NULL, pool), CT_OK);
        for (int i = 0; i < (int)((size_t)n * V); i++) cr_assert(isfinite(lg[i]));
        if (!ref) ref = lg;
        else {
            cr_assert_eq(memcmp(ref, lg, sizeof(float) * (size_t)n * V), 0, "threads=%d changed the logits", th);
            free(lg);
        }
        runstate_free(&s);
        pool_destroy(pool);
    }
    free(ref);
    model_free(&m);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

// aidreams260K: other header (4 layers, no GQA, seq_len 128), runs and is deterministic.
Test(forward, aidreams_header_and_run) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/aidreams260K/aidreams260K.bin", shared());
    Model m;
    cr_assert_eq(model_load_llama2c(&m, path), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(m.c.n_layers, 4);
    cr_assert_eq(m.c.n_heads, 4);
    cr_assert_eq(m.c.n_kv_heads, 4);
    cr_assert_eq(m.c.seq_len, 128);
    RunState s;
    cr_assert_eq(runstate_init(&s, &m.c, 128), CT_OK);
    int ids[128];
    for (int i = 0; i < 128; i++) ids[i] = i == 0 ? 1 : 259 + (i * 7) % 253;
    float *lg = malloc(sizeof(float) * 128 * 512);
    cr_assert_eq(model_forward_seq(&m, &s, ids, 128, lg, NULL, NULL), CT_OK);
    for (int i = 0; i < 128 * 512; i++) cr_assert(isfinite(lg[i]));
    // A 129th token does not fit the context.
    int big[129] = {0};
    cr_assert_eq(model_forward_seq(&m, &s, big, 129, NULL, NULL, NULL), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "129") != NULL, "%s", ct_errmsg());
    free(lg);
    runstate_free(&s);
    model_free(&m);
}

// A capture carved from a per-prompt arena holds the same bits as one with its own block,
// and arena_reset lets the next prompt reuse the memory without a new allocation.
Test(forward, capture_in_arena) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", shared());
    Model m;
    cr_assert_eq(model_load_llama2c(&m, path), CT_OK, "%s", ct_errmsg());
    int ids[6] = {1, 403, 407, 261, 378, 383};
    RunState s;
    cr_assert_eq(runstate_init(&s, &m.c, 6), CT_OK);
    Capture own, ar;
    cr_assert_eq(capture_init(&own, &m.c, 6, CAP_ALL), CT_OK);
    cr_assert_eq(model_forward_seq(&m, &s, ids, 6, NULL, &own, NULL), CT_OK);
    Pool pool;
    mem_pool_init(&pool, "test", MEM_NUMA_OFF, NULL);
    Arena arena;
    cr_assert_eq(arena_init(&arena, &pool, "prompt", 4 << 20, 1), 0);
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(capture_init_arena(&ar, &m.c, 6, CAP_ALL, &arena), CT_OK, "%s", ct_errmsg());
        cr_assert_eq(model_forward_seq(&m, &s, ids, 6, NULL, &ar, NULL), CT_OK);
        size_t LD = (size_t)6 * 5 * 64;
        cr_assert_eq(memcmp(own.mlp_out, ar.mlp_out, LD * 4), 0);
        cr_assert_eq(memcmp(own.resid_mid, ar.resid_mid, LD * 4), 0);
        cr_assert_eq(memcmp(own.att, ar.att, (size_t)5 * 8 * 36 * 4), 0);
        cr_assert_eq(memcmp(own.inv_rms_ffn, ar.inv_rms_ffn, (size_t)6 * 5 * 4), 0);
        size_t allocs = pool.n_allocs;
        arena_reset(&arena);
        cr_assert_eq(pool.n_allocs, allocs, "arena_reset allocated");
    }
    // A capture too big for a fixed arena is an error, not an overflow.
    cr_assert_eq(capture_init_arena(&ar, &m.c, 512, CAP_ALL, &arena), CT_ERR);
    arena_free(&arena);
    cr_assert_eq(mem_pool_free(&pool), 0);
    capture_free(&own);
    runstate_free(&s);
    model_free(&m);
}

// Attention in key blocks of 64 and groups of 8 positions (forward.c attn_task): over 200
// tokens (4 blocks, partial groups in the last chunk) of a random GQA model, one-token decode
// (one position per task, heads split between threads) gives the prefill's logits bit for bit,
// for 1, 2 and 3 threads, with full causal attention and with a 40-key sliding window on the
// even layers (windows that start inside a block and inside a group).
Test(forward, attention_blocks_decode_equals_prefill) {
    char *dir, *path;
    Config c = {.dim = 128, .hidden_dim = 256, .n_layers = 2, .n_heads = 8, .n_kv_heads = 2,
                .vocab_size = 300, .seq_len = 256, .shared_classifier = 0};
    Model m;
    random_model(&m, &c, 11, "ct_att", &dir, &path);
    enum { N = 200 };
    int ids[N];
    for (int i = 0; i < N; i++) ids[i] = (i * 53 + 7) % 300;
    size_t V = 300;
    for (int w = 0; w <= 40; w += 40) {
        m.c.sliding_window = w;
        RunState s;
        cr_assert_eq(runstate_init(&s, &m.c, N), CT_OK);
        float *pre = malloc(sizeof(float) * N * V);
        cr_assert_eq(model_forward_seq(&m, &s, ids, N, pre, NULL, NULL), CT_OK);
        for (size_t i = 0; i < (size_t)N * V; i++) cr_assert(isfinite(pre[i]));
        for (int th = 1; th <= 3; th++) {
            ThreadPool *pool = pool_create(th);
            for (int p = 0; p < N; p++) {
                const float *lg = model_forward(&m, &s, ids[p], p, NULL, pool);
                cr_assert_not_null(lg);
                cr_assert_eq(memcmp(lg, pre + (size_t)p * V, V * sizeof(float)), 0,
                             "window %d, %d threads: decode logits of position %d differ from prefill", w, th, p);
            }
            pool_destroy(pool);
        }
        // The window changes the logits once the context passes it (and not before).
        if (w) {
            m.c.sliding_window = 0;
            float *full = malloc(sizeof(float) * N * V);
            cr_assert_eq(model_forward_seq(&m, &s, ids, N, full, NULL, NULL), CT_OK);
            cr_assert_eq(memcmp(full, pre, 40 * V * sizeof(float)), 0);
            cr_assert_neq(memcmp(full + 150 * V, pre + 150 * V, V * sizeof(float)), 0);
            free(full);
        }
        free(pre);
        runstate_free(&s);
    }
    model_free(&m);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
