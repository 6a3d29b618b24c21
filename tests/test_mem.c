// test_mem.c — pools, the default allocator (libc and libnuma paths), carving, arenas.
//
// Expected values are written out by hand from the contract in engine/mem.h (64-byte
// rounding, 2 MiB alignment for large buffers), and NUMA placement is checked with the
// kernel's own answer (move_pages with no target nodes reports where each page lives).
#include <criterion/criterion.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/mem.h"

#if CTRACE_HAVE_NUMA
#include <numa.h>
#endif

#define MiB ((size_t)1 << 20)

static int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

// ---- a counting allocator: wraps the default one and remembers every live block ---------
#define MAX_LIVE 256
typedef struct Counting {
    MemDefaultCtx inner;
    size_t n_alloc, n_free, bytes_alloc, bytes_free;
    int bad_free;   // a free that did not match a live block's (ptr, bytes, align)
    struct { void *p; size_t bytes, align; } live[MAX_LIVE];
    int n_live;
} Counting;

static void *counting_alloc(void *ctx, size_t bytes, size_t align) {
    Counting *c = ctx;
    void *p = mem_default_alloc(&c->inner, bytes, align);
    if (!p) return NULL;
    cr_assert_lt(c->n_live, MAX_LIVE);
    c->live[c->n_live].p = p;
    c->live[c->n_live].bytes = bytes;
    c->live[c->n_live].align = align;
    c->n_live++;
    c->n_alloc++;
    c->bytes_alloc += bytes;
    return p;
}

static void counting_free(void *ctx, void *p, size_t bytes, size_t align) {
    Counting *c = ctx;
    int found = -1;
    for (int i = 0; i < c->n_live; i++)
        if (c->live[i].p == p) found = i;
    if (found < 0 || c->live[found].bytes != bytes || c->live[found].align != align) {
        c->bad_free++;
        return;   // do not hand a mismatched size to numa_free/munmap
    }
    c->live[found] = c->live[--c->n_live];
    c->n_free++;
    c->bytes_free += bytes;
    mem_default_free(&c->inner, p, bytes, align);
}

static MemAllocator counting_allocator(Counting *c, MemPolicy policy) {
    memset(c, 0, sizeof *c);
    c->inner.policy = policy;
    c->inner.node = -1;
    return (MemAllocator){counting_alloc, counting_free, c, "counting"};
}

// ---- names ---------------------------------------------------------------------------------
Test(mem, policy_names_round_trip) {
    for (int i = 0; i < MEM_NUMA_NPOLICY; i++) {
        MemPolicy p = MEM_NUMA_NPOLICY;
        cr_assert_eq(mem_policy_parse(mem_policy_name((MemPolicy)i), &p), CT_OK);
        cr_assert_eq(p, (MemPolicy)i);
    }
    cr_assert_str_eq(mem_policy_name(MEM_NUMA_OFF), "off");
    cr_assert_str_eq(mem_policy_name(MEM_NUMA_LOCAL), "local");
    cr_assert_str_eq(mem_policy_name(MEM_NUMA_INTERLEAVE), "interleave");
    cr_assert_str_eq(mem_policy_name((MemPolicy)42), "?");
    MemPolicy p;
    cr_assert_eq(mem_policy_parse("spread", &p), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "spread") != NULL, "message: %s", ct_errmsg());
}

// ---- pool alignment, every policy ----------------------------------------------------------
Test(mem, alignment_and_rounding_every_policy) {
    const size_t sizes[] = {1, 63, 64, 65, 1000, 4096, 4097, 2 * MiB - 1, 2 * MiB, 3 * MiB + 7};
    const size_t n = sizeof sizes / sizeof sizes[0];
    for (int pol = 0; pol < MEM_NUMA_NPOLICY; pol++) {
        Pool pool;
        mem_pool_init(&pool, "t", (MemPolicy)pol, NULL);
        void *ptr[16];
        size_t expect_live = 0;
        for (size_t i = 0; i < n; i++) {
            ptr[i] = mem_alloc(&pool, sizes[i]);
            cr_assert_not_null(ptr[i], "policy %d size %zu: %s", pol, sizes[i], ct_errmsg());
            // rounded size = next multiple of 64; >= 2 MiB after rounding -> 2 MiB aligned
            size_t r = (sizes[i] + 63) / 64 * 64;
            cr_assert(aligned(ptr[i], 64), "policy %d size %zu: %p", pol, sizes[i], ptr[i]);
            if (r >= 2 * MiB)
                cr_assert(aligned(ptr[i], 2 * MiB), "policy %d size %zu: %p not 2 MiB aligned", pol,
                          sizes[i], ptr[i]);
            memset(ptr[i], 0xA5, sizes[i]);   // the whole request is writable
            expect_live += r;
            cr_assert_eq(pool.bytes_live, expect_live);
        }
        cr_assert_eq(pool.n_allocs, n);
        cr_assert_eq(pool.bytes_peak, expect_live);
        for (size_t i = 0; i < n; i++) mem_free(&pool, ptr[i], sizes[i]);
        cr_assert_eq(pool.n_frees, n);
        cr_assert_eq(pool.bytes_live, 0);
        cr_assert_eq(mem_pool_free(&pool), CT_OK);
    }
}

// The madvise hint reaches the kernel: the mapping holding a large buffer carries "hg".
static int vma_has_flag(const void *p, const char *flag) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0, result = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            char pat[8];
            snprintf(pat, sizeof pat, " %s", flag);
            result = strstr(line, pat) != NULL;
            break;
        }
    }
    fclose(f);
    return result;
}

Test(mem, large_buffers_marked_hugepage) {
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0)
        cr_skip_test("kernel without transparent huge pages");
    for (int pol = 0; pol < MEM_NUMA_NPOLICY; pol++) {
        Pool pool;
        mem_pool_init(&pool, "huge", (MemPolicy)pol, NULL);
        void *p = mem_alloc(&pool, 4 * MiB);
        cr_assert_not_null(p);
        cr_assert_eq(vma_has_flag(p, "hg"), 1, "policy %s: no MADV_HUGEPAGE on %p",
                     mem_policy_name((MemPolicy)pol), p);
        mem_free(&pool, p, 4 * MiB);
        cr_assert_eq(mem_pool_free(&pool), CT_OK);
    }
}

Test(mem, zero_size_requests) {
    Pool pool;
    mem_pool_init(&pool, "zero", MEM_NUMA_OFF, NULL);
    void *a = mem_alloc(&pool, 0), *b = mem_alloc(&pool, 0);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b, "zero-size allocations must be distinct");
    cr_assert(aligned(a, 64) && aligned(b, 64));
    cr_assert_eq(pool.bytes_live, 2 * MEM_ALIGN);
    mem_free(&pool, a, 0);
    mem_free(&pool, b, 0);
    mem_free(&pool, NULL, 123);   // no-op, not counted
    cr_assert_eq(pool.n_frees, 2);
    cr_assert_eq(pool.bytes_live, 0);

    Arena ar;
    cr_assert_eq(arena_init(&ar, &pool, "z", 0, 1), CT_OK);   // 0 -> one cache line
    cr_assert_eq(ar.capacity, MEM_ALIGN);
    void *x = arena_alloc(&ar, 0);
    cr_assert_not_null(x);
    cr_assert_null(arena_alloc(&ar, 0), "the single line is used up");
    arena_free(&ar);
    cr_assert_eq(mem_pool_free(&pool), CT_OK);
}

Test(mem, pool_free_reports_leaks) {
    Pool pool;
    mem_pool_init(&pool, "leaky", MEM_NUMA_OFF, NULL);
    void *p = mem_alloc(&pool, 100);
    cr_assert_not_null(p);
    cr_assert_eq(mem_pool_free(&pool), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "leaky") && strstr(ct_errmsg(), "128 bytes"), "message: %s",
              ct_errmsg());
    free(p);   // the default OFF path is posix_memalign
}

static void *misaligned_alloc(void *ctx, size_t bytes, size_t align) {
    uint8_t *p = malloc(bytes + 64);
    *(void **)ctx = p;
    return p + 8;
}
static void misaligned_free(void *ctx, void *p, size_t bytes, size_t align) {
    free(*(void **)ctx);
}

Test(mem, allocator_that_breaks_alignment_is_rejected) {
    void *raw = NULL;
    MemAllocator bad = {misaligned_alloc, misaligned_free, &raw, "bad"};
    Pool pool;
    mem_pool_init(&pool, "strict", MEM_NUMA_OFF, &bad);
    cr_assert_null(mem_alloc(&pool, 256));
    cr_assert(strstr(ct_errmsg(), "alignment") != NULL, "message: %s", ct_errmsg());
    cr_assert_eq(pool.n_allocs, 0);
    cr_assert_eq(mem_pool_free(&pool), CT_OK);
}

// ---- carve ---------------------------------------------------------------------------------
Test(mem, carve_offsets_and_pointers) {
    int *ids;
    float *acts, *logits, *kv;
    void *empty;
    MemCarveEntry e[] = {
        {"ids", 10, (void **)&ids},       // -> 64
        {"acts", 64, (void **)&acts},     // -> 64
        {"empty", 0, &empty},             // -> 0
        {"logits", 65, (void **)&logits}, // -> 128
        {"kv", 1, (void **)&kv},          // -> 64
        {"layout-only", 7, NULL},         // -> 64
    };
    const size_t n = sizeof e / sizeof e[0];
    const size_t want_off[] = {0, 64, 128, 128, 256, 320};
    size_t off[6], total = 0;
    cr_assert_eq(mem_carve_layout(e, n, off, &total), CT_OK);
    for (size_t i = 0; i < n; i++) cr_assert_eq(off[i], want_off[i], "entry %zu", i);
    cr_assert_eq(total, 384);

    Counting cnt;
    MemAllocator ca = counting_allocator(&cnt, MEM_NUMA_OFF);
    Pool pool;
    mem_pool_init(&pool, "carve", MEM_NUMA_OFF, &ca);
    MemCarve c;
    cr_assert_eq(mem_carve(&c, &pool, e, n), CT_OK, "%s", ct_errmsg());
    cr_assert_eq(cnt.n_alloc, 1, "one allocation for the whole table");
    cr_assert_eq(c.total, 384);
    uint8_t *base = c.base;
    cr_assert_eq((uint8_t *)ids, base + 0);
    cr_assert_eq((uint8_t *)acts, base + 64);
    cr_assert_eq((uint8_t *)empty, base + 128);
    cr_assert_eq((uint8_t *)logits, base + 128);
    cr_assert_eq((uint8_t *)kv, base + 256);
    for (size_t i = 0; i < c.total; i++) cr_assert_eq(base[i], 0, "byte %zu not zeroed", i);
    // Fill each buffer with its own byte; none spills into a neighbour.
    memset(ids, 1, 10);
    memset(acts, 2, 64);
    memset(logits, 3, 65);
    memset(kv, 4, 1);
    cr_assert_eq(((uint8_t *)ids)[9], 1);
    cr_assert_eq(((uint8_t *)acts)[0], 2);
    cr_assert_eq(((uint8_t *)acts)[63], 2);
    cr_assert_eq(((uint8_t *)logits)[64], 3);
    cr_assert_eq(base[256 - 1], 0, "padding after logits untouched");
    mem_carve_free(&c);
    cr_assert_eq(cnt.n_free, 1);
    cr_assert_eq(cnt.bad_free, 0);
    cr_assert_eq(mem_pool_free(&pool), CT_OK);
}

Test(mem, carve_overflow_names_entry) {
    MemCarveEntry e[] = {{"small", 100, NULL}, {"huge", SIZE_MAX - 10, NULL}};
    size_t total = 0;
    cr_assert_eq(mem_carve_layout(e, 2, NULL, &total), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "huge") != NULL, "message: %s", ct_errmsg());
    MemCarveEntry e2[] = {{"a", SIZE_MAX / 2, NULL}, {"b", SIZE_MAX / 2, NULL}};
    cr_assert_eq(mem_carve_layout(e2, 2, NULL, &total), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "'b'") != NULL, "message: %s", ct_errmsg());
}

// ---- arena ---------------------------------------------------------------------------------
Test(mem, arena_fixed_fills_exactly_then_refuses) {
    Pool pool;
    mem_pool_init(&pool, "ar", MEM_NUMA_OFF, NULL);
    Arena a;
    cr_assert_eq(arena_init(&a, &pool, "captures", 1000, 1), CT_OK);   // -> 1024 usable
    cr_assert_eq(a.capacity, 1024);
    uint8_t *p1 = arena_alloc(&a, 100);   // 128
    uint8_t *p2 = arena_alloc(&a, 500);   // 512
    uint8_t *p3 = arena_alloc(&a, 384);   // 384 -> 1024 in total
    cr_assert(p1 && p2 && p3);
    cr_assert(aligned(p1, 64) && aligned(p2, 64) && aligned(p3, 64));
    cr_assert_eq(p2, p1 + 128);
    cr_assert_eq(p3, p1 + 640);
    cr_assert_eq(a.used, 1024);
    memset(p1, 1, 1024);   // the whole chunk is writable

    ct_error_clear();
    cr_assert_null(arena_alloc(&a, 1));
    const char *m = ct_errmsg();
    cr_assert(strstr(m, "captures") && strstr(m, "1024") && strstr(m, "cannot allocate 1 bytes"),
              "message: %s", m);
    cr_assert_eq(a.high_water, 1024);

    arena_reset(&a);
    cr_assert_eq(a.used, 0);
    cr_assert_eq(a.high_water, 1024, "reset keeps the high-water mark");
    cr_assert_eq(arena_alloc(&a, 1024), p1, "after reset the arena starts over");
    size_t allocs_before = pool.n_allocs;
    arena_reset(&a);
    cr_assert_not_null(arena_alloc(&a, 64));
    cr_assert_eq(pool.n_allocs, allocs_before, "steady state allocates nothing");
    cr_assert_null(arena_alloc(&a, SIZE_MAX), "overflowing request fails cleanly");
    arena_free(&a);
    cr_assert_null(arena_alloc(&a, 1), "freed arena refuses");
    cr_assert_eq(mem_pool_free(&pool), CT_OK);
}

Test(mem, arena_grows_by_chunks_up_to_limit) {
    Counting cnt;
    MemAllocator ca = counting_allocator(&cnt, MEM_NUMA_OFF);
    Pool pool;
    mem_pool_init(&pool, "grow", MEM_NUMA_OFF, &ca);
    Arena a;
    cr_assert_eq(arena_init(&a, &pool, "g", 256, 3), CT_OK);
    cr_assert_eq(cnt.n_alloc, 1);
    void *p[4];
    for (int i = 0; i < 3; i++) {
        p[i] = arena_alloc(&a, 200);   // 256: one per chunk
        cr_assert_not_null(p[i], "%s", ct_errmsg());
    }
    cr_assert_eq(a.n_chunks, 3);
    cr_assert_eq(cnt.n_alloc, 3);
    cr_assert_eq(a.capacity, 768);
    cr_assert_null(arena_alloc(&a, 1), "max_chunks reached");
    cr_assert(strstr(ct_errmsg(), "max_chunks") != NULL, "message: %s", ct_errmsg());

    // After a reset the same chunks are reused in order, without new allocations.
    arena_reset(&a);
    for (int i = 0; i < 3; i++) cr_assert_eq(arena_alloc(&a, 256), p[i]);
    cr_assert_eq(cnt.n_alloc, 3);
    arena_free(&a);

    // A request larger than the chunk size gets a chunk of its own size.
    cr_assert_eq(arena_init(&a, &pool, "g2", 256, 2), CT_OK);
    p[3] = arena_alloc(&a, 1000);
    cr_assert_not_null(p[3], "%s", ct_errmsg());
    cr_assert_eq(a.capacity, 256 + 1024);
    memset(p[3], 7, 1000);
    cr_assert_eq(a.high_water, 1024);
    arena_free(&a);

    cr_assert_eq(cnt.n_alloc, cnt.n_free);
    cr_assert_eq(cnt.bytes_alloc, cnt.bytes_free);
    cr_assert_eq(cnt.n_live, 0);
    cr_assert_eq(cnt.bad_free, 0);
    cr_assert_eq(mem_pool_free(&pool), CT_OK);
}

Test(mem, arena_bad_max_chunks) {
    Pool pool;
    mem_pool_init(&pool, "x", MEM_NUMA_OFF, NULL);
    Arena a;
    cr_assert_eq(arena_init(&a, &pool, "nochunks", 64, 0), CT_ERR);
    cr_assert(strstr(ct_errmsg(), "max_chunks") && strstr(ct_errmsg(), "got 0"), "%s", ct_errmsg());
    cr_assert_eq(mem_pool_free(&pool), CT_OK);
}

// ---- the counting allocator sees every allocation and every free -------------------------
Test(mem, counting_allocator_sees_everything) {
    for (int pol = 0; pol < MEM_NUMA_NPOLICY; pol++) {
        Counting cnt;
        MemAllocator ca = counting_allocator(&cnt, (MemPolicy)pol);
        Pool pool;
        mem_pool_init(&pool, "count", (MemPolicy)pol, &ca);
        // 5 pool allocations, one carve, one arena that grows to 2 chunks = 8 allocations.
        const size_t sizes[] = {0, 1, 4096, 3 * MiB, 100};
        void *p[5];
        for (int i = 0; i < 5; i++) p[i] = mem_alloc(&pool, sizes[i]);
        float *w;
        MemCarveEntry e[] = {{"w", 1000 * sizeof(float), (void **)&w}, {"b", 12, NULL}};
        MemCarve c;
        cr_assert_eq(mem_carve(&c, &pool, e, 2), CT_OK);
        Arena a;
        cr_assert_eq(arena_init(&a, &pool, "a", 4096, 2), CT_OK);
        cr_assert_not_null(arena_alloc(&a, 4000));
        cr_assert_not_null(arena_alloc(&a, 4000));
        cr_assert_eq(cnt.n_alloc, 8);
        cr_assert_eq(pool.n_allocs, 8);
        cr_assert_eq(pool.bytes_live, cnt.bytes_alloc);
        // The allocator was asked for the pool's rounded sizes with the pool's alignment.
        cr_assert_eq(cnt.live[0].bytes, 64);
        cr_assert_eq(cnt.live[0].align, 64);
        cr_assert_eq(cnt.live[3].bytes, 3 * MiB);
        cr_assert_eq(cnt.live[3].align, 2 * MiB);
        for (int i = 0; i < 5; i++) mem_free(&pool, p[i], sizes[i]);
        mem_carve_free(&c);
        arena_free(&a);
        cr_assert_eq(cnt.n_free, 8, "policy %s", mem_policy_name((MemPolicy)pol));
        cr_assert_eq(cnt.bad_free, 0);
        cr_assert_eq(cnt.n_live, 0);
        cr_assert_eq(cnt.bytes_free, cnt.bytes_alloc);
        cr_assert_eq(mem_pool_free(&pool), CT_OK);
    }
}

// ---- NUMA ----------------------------------------------------------------------------------
Test(mem, numa_node_count) {
#if CTRACE_HAVE_NUMA
    if (numa_available() >= 0) {
        cr_assert_eq(mem_numa_available(), 1);
        cr_assert_eq(mem_numa_nodes(), numa_num_configured_nodes());
        return;
    }
#endif
    cr_assert_eq(mem_numa_available(), 0);
    cr_assert_eq(mem_numa_nodes(), 1);
}

#if CTRACE_HAVE_NUMA
// The node the kernel placed the page holding p on (after touching it), or a negative errno.
static int node_of(void *p) {
    void *pages[1] = {p};
    int status[1] = {-1};
    if (numa_move_pages(0, 1, pages, NULL, status, 0) != 0) return -1000;
    return status[0];
}
#endif

Test(mem, numa_placement_when_available) {
#if CTRACE_HAVE_NUMA
    if (numa_available() < 0) cr_skip_test("kernel without NUMA support");
    int cpu = sched_getcpu();
    cr_assert_geq(cpu, 0);
    int here = numa_node_of_cpu(cpu);
    const size_t sizes[] = {4096, 100 * 1024, 6 * MiB};   // small path and aligned-mmap path
    for (int s = 0; s < 3; s++) {
        Pool pool;
        mem_pool_init(&pool, "local", MEM_NUMA_LOCAL, NULL);
        uint8_t *p = mem_alloc(&pool, sizes[s]);
        cr_assert_not_null(p, "%s", ct_errmsg());
        memset(p, 1, sizes[s]);
        // sched_getcpu may move between calls on a multi-node machine: accept the node of
        // either reading of the current CPU.
        int got = node_of(p), got_end = node_of(p + sizes[s] - 1);
        int now = numa_node_of_cpu(sched_getcpu());
        cr_assert(got == here || got == now, "size %zu on node %d, expected %d", sizes[s], got, here);
        cr_assert(got_end == here || got_end == now, "last page on node %d", got_end);
        mem_free(&pool, p, sizes[s]);
        cr_assert_eq(mem_pool_free(&pool), CT_OK);

        mem_pool_init(&pool, "node0", MEM_NUMA_LOCAL, NULL);
        pool.dflt.node = 0;   // an explicit node
        p = mem_alloc(&pool, sizes[s]);
        cr_assert_not_null(p, "%s", ct_errmsg());
        memset(p, 2, sizes[s]);
        cr_assert_eq(node_of(p), 0);
        mem_free(&pool, p, sizes[s]);
        cr_assert_eq(mem_pool_free(&pool), CT_OK);

        mem_pool_init(&pool, "spread", MEM_NUMA_INTERLEAVE, NULL);
        p = mem_alloc(&pool, sizes[s]);
        cr_assert_not_null(p, "%s", ct_errmsg());
        memset(p, 3, sizes[s]);
        int n = node_of(p);
        cr_assert(n >= 0 && n < mem_numa_nodes(), "interleaved page on node %d of %d", n,
                  mem_numa_nodes());
        mem_free(&pool, p, sizes[s]);
        cr_assert_eq(mem_pool_free(&pool), CT_OK);
    }
#else
    cr_skip_test("built without libnuma (CTRACE_HAVE_NUMA=0)");
#endif
}
