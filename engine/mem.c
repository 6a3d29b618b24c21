// mem.c — pools, the default (libnuma-aware) allocator, carving, arenas.  See mem.h.
#include "engine/mem.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/common.h"

#if CTRACE_HAVE_NUMA
#include <numa.h>
#endif

// ---- policy names, NUMA presence ------------------------------------------------------------
static const char *const k_policy_names[MEM_NUMA_NPOLICY] = {"off", "local", "interleave"};

const char *mem_policy_name(MemPolicy p) {
    return ((unsigned)p < MEM_NUMA_NPOLICY) ? k_policy_names[p] : "?";
}

int mem_policy_parse(const char *name, MemPolicy *out) {
    for (int i = 0; i < MEM_NUMA_NPOLICY; i++)
        if (name && strcmp(name, k_policy_names[i]) == 0) {
            *out = (MemPolicy)i;
            return CT_OK;
        }
    return ct_error("memory policy: expected off|local|interleave, got '%s'", name ? name : "(null)");
}

// numa_available() makes a syscall; ask once per process.
static pthread_once_t g_numa_once = PTHREAD_ONCE_INIT;
static int g_numa_ok;
static void numa_probe(void) {
#if CTRACE_HAVE_NUMA
    g_numa_ok = numa_available() >= 0;
#else
    g_numa_ok = 0;
#endif
}

int mem_numa_available(void) {
    pthread_once(&g_numa_once, numa_probe);
    return g_numa_ok;
}

int mem_numa_nodes(void) {
#if CTRACE_HAVE_NUMA
    if (mem_numa_available()) {
        int n = numa_num_configured_nodes();
        return n > 0 ? n : 1;
    }
#endif
    return 1;
}

// ---- the default allocator ------------------------------------------------------------------
static size_t page_size(void) {
    static size_t ps;
    if (!ps) {
        long v = sysconf(_SC_PAGESIZE);
        ps = v > 0 ? (size_t)v : 4096;
    }
    return ps;
}

static size_t round_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }  // a: power of two

// How the default allocator serves one request; alloc and free must agree, and they do
// because the answer depends only on (policy, bytes, align) and the process-wide NUMA flag.
typedef enum { PATH_LIBC, PATH_NUMA_SMALL, PATH_MMAP } AllocPath;

static AllocPath choose_path(const MemDefaultCtx *c, size_t bytes, size_t align) {
    int numa = c && c->policy != MEM_NUMA_OFF && mem_numa_available();
    if (!numa) return PATH_LIBC;
    if (bytes >= MEM_LARGE_BYTES || align > page_size()) return PATH_MMAP;
    return PATH_NUMA_SMALL;   // numa_alloc_* hands out whole pages: page alignment >= 64
}

static size_t effective_align(size_t bytes, size_t align) {
    if (align < MEM_ALIGN) align = MEM_ALIGN;
    if (bytes >= MEM_LARGE_BYTES && align < MEM_HUGE_ALIGN) align = MEM_HUGE_ALIGN;
    return align;
}

#if CTRACE_HAVE_NUMA
// An mmap of exactly round_up(bytes, page) bytes starting at a multiple of align: map
// align extra, then unmap the unaligned head and the tail.
static void *mmap_aligned(size_t bytes, size_t align) {
    size_t len = round_up(bytes, page_size());
    size_t span = len + align;
    if (span < len) {
        ct_error("mem: mmap of %zu bytes aligned to %zu overflows size_t", bytes, align);
        return NULL;
    }
    uint8_t *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        ct_error("mem: mmap of %zu bytes failed: %s", span, strerror(errno));
        return NULL;
    }
    uint8_t *p = (uint8_t *)round_up((uintptr_t)raw, align);
    size_t head = (size_t)(p - raw), tail = span - head - len;
    if (head) munmap(raw, head);
    if (tail) munmap(p + len, tail);
    return p;
}

// Bind a fresh (untouched) range to the policy; pages are placed at first touch.
static void bind_range(void *p, size_t bytes, const MemDefaultCtx *c) {
    size_t len = round_up(bytes, page_size());
    if (c->policy == MEM_NUMA_INTERLEAVE) numa_interleave_memory(p, len, numa_all_nodes_ptr);
    else if (c->node >= 0) numa_tonode_memory(p, len, c->node);
    else numa_setlocal_memory(p, len);
}
#endif

void *mem_default_alloc(void *ctx, size_t bytes, size_t align) {
    const MemDefaultCtx *c = ctx;
    if (bytes == 0) bytes = MEM_ALIGN;
    align = effective_align(bytes, align);
    void *p = NULL;
    switch (choose_path(c, bytes, align)) {
    case PATH_LIBC: {
        int rc = posix_memalign(&p, align, bytes);
        if (rc != 0) {
            ct_error("mem: posix_memalign of %zu bytes (align %zu) failed: %s", bytes, align, strerror(rc));
            return NULL;
        }
        break;
    }
#if CTRACE_HAVE_NUMA
    case PATH_NUMA_SMALL:
        if (c->policy == MEM_NUMA_INTERLEAVE) p = numa_alloc_interleaved(bytes);
        else if (c->node >= 0) p = numa_alloc_onnode(bytes, c->node);
        else p = numa_alloc_local(bytes);
        if (!p) {
            ct_error("mem: libnuma allocation of %zu bytes (policy %s, node %d) failed", bytes,
                     mem_policy_name(c->policy), c->node);
            return NULL;
        }
        break;
    case PATH_MMAP:
        p = mmap_aligned(bytes, align);
        if (!p) return NULL;
        bind_range(p, bytes, c);
        break;
#else
    default:
        return NULL;   // unreachable: choose_path is PATH_LIBC without libnuma
#endif
    }
    // Hint only: transparent huge pages in "madvise" mode need it; failure is harmless.
    if (bytes >= MEM_LARGE_BYTES) madvise(p, round_up(bytes, page_size()), MADV_HUGEPAGE);
    return p;
}

void mem_default_free(void *ctx, void *p, size_t bytes, size_t align) {
    const MemDefaultCtx *c = ctx;
    if (!p) return;
    if (bytes == 0) bytes = MEM_ALIGN;
    align = effective_align(bytes, align);
    switch (choose_path(c, bytes, align)) {
    case PATH_LIBC: free(p); break;
#if CTRACE_HAVE_NUMA
    case PATH_NUMA_SMALL: numa_free(p, bytes); break;
    case PATH_MMAP: munmap(p, round_up(bytes, page_size())); break;
#else
    default: break;
#endif
    }
}

// ---- pool -----------------------------------------------------------------------------------
int mem_pool_init(Pool *p, const char *name, MemPolicy policy, const MemAllocator *allocator) {
    memset(p, 0, sizeof *p);
    p->name = name ? name : "pool";
    p->dflt.policy = policy;
    p->dflt.node = -1;
    if (allocator) {
        p->a = *allocator;
    } else {
        p->a = (MemAllocator){mem_default_alloc, mem_default_free, &p->dflt, "default"};
    }
    return CT_OK;
}

int mem_pool_free(Pool *p) {
    if (!p) return CT_OK;
    int rc = CT_OK;
    if (p->n_allocs != p->n_frees || p->bytes_live != 0)
        rc = ct_error("pool '%s': %zu allocation(s) of %zu bytes still live at mem_pool_free "
                      "(expected 0; %zu allocs, %zu frees)",
                      p->name, p->n_allocs - p->n_frees, p->bytes_live, p->n_allocs, p->n_frees);
    const char *name = p->name;
    memset(p, 0, sizeof *p);
    p->name = name;
    return rc;
}

// The pool's rounding: what mem_alloc asks the allocator for, and so what mem_free returns.
static int pool_round(const Pool *p, size_t bytes, size_t *r, size_t *align) {
    if (bytes > SIZE_MAX - MEM_ALIGN) {
        ct_error("pool '%s': request of %zu bytes overflows size_t", p->name, bytes);
        return 0;
    }
    *r = bytes ? round_up(bytes, MEM_ALIGN) : MEM_ALIGN;
    *align = *r >= MEM_LARGE_BYTES ? MEM_HUGE_ALIGN : MEM_ALIGN;
    return 1;
}

void *mem_alloc(Pool *p, size_t bytes) {
    size_t r, align;
    if (!pool_round(p, bytes, &r, &align)) return NULL;
    void *ptr = p->a.alloc(p->a.ctx, r, align);
    if (!ptr) {
        ct_error_ctx("pool '%s' (allocator %s, policy %s)", p->name, p->a.name ? p->a.name : "?",
                     mem_policy_name(p->dflt.policy));
        return NULL;
    }
    if ((uintptr_t)ptr & (align - 1)) {   // a plugged-in allocator broke the contract
        p->a.free(p->a.ctx, ptr, r, align);
        ct_error("pool '%s': allocator %s returned %p, expected %zu-byte alignment", p->name,
                 p->a.name ? p->a.name : "?", ptr, align);
        return NULL;
    }
    p->n_allocs++;
    p->bytes_live += r;
    if (p->bytes_live > p->bytes_peak) p->bytes_peak = p->bytes_live;
    return ptr;
}

void mem_free(Pool *p, void *ptr, size_t bytes) {
    if (!ptr) return;
    size_t r, align;
    if (!pool_round(p, bytes, &r, &align)) return;
    p->a.free(p->a.ctx, ptr, r, align);
    p->n_frees++;
    p->bytes_live = p->bytes_live >= r ? p->bytes_live - r : 0;
}

// ---- carve ----------------------------------------------------------------------------------
int mem_carve_layout(const MemCarveEntry *e, size_t n, size_t *offsets, size_t *total) {
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (offsets) offsets[i] = off;
        // Each buffer starts on a cache line, so no two buffers share one (no false sharing
        // between threads writing neighbouring buffers) and every vector load is aligned.
        if (e[i].bytes > SIZE_MAX - MEM_ALIGN || off > SIZE_MAX - round_up(e[i].bytes, MEM_ALIGN))
            return ct_error("carve: entry %zu '%s' of %zu bytes overflows size_t at offset %zu", i,
                            e[i].name ? e[i].name : "?", e[i].bytes, off);
        off += round_up(e[i].bytes, MEM_ALIGN);
    }
    *total = off;
    return CT_OK;
}

int mem_carve(MemCarve *c, Pool *pool, const MemCarveEntry *e, size_t n) {
    memset(c, 0, sizeof *c);
    size_t total;
    if (mem_carve_layout(e, n, NULL, &total) != CT_OK) return CT_ERR;
    uint8_t *base = mem_alloc(pool, total);
    if (!base) return ct_error_ctx("carve of %zu buffers (%zu bytes)", n, total);
    // Zeroed: a buffer read before it is written reads 0, not last run's garbage; and the
    // first touch happens here, on the thread that owns the pool's placement policy.
    memset(base, 0, total ? total : MEM_ALIGN);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].out) *e[i].out = base + off;
        off += round_up(e[i].bytes, MEM_ALIGN);
    }
    c->pool = pool;
    c->base = base;
    c->total = total;
    return CT_OK;
}

void mem_carve_free(MemCarve *c) {
    if (!c || !c->base) return;
    mem_free(c->pool, c->base, c->total);
    memset(c, 0, sizeof *c);
}

// ---- arena ----------------------------------------------------------------------------------
// A chunk's header sits in its first MEM_ALIGN bytes; data follows, cache-line aligned.
struct ArenaChunk {
    ArenaChunk *next;
    uint8_t *data;
    size_t cap;   // usable bytes
    size_t off;   // bump offset into data
};
_Static_assert(sizeof(ArenaChunk) <= MEM_ALIGN, "arena chunk header must fit one cache line");

static ArenaChunk *chunk_new(Arena *a, size_t cap) {
    if (cap > SIZE_MAX - MEM_ALIGN) {
        ct_error("arena '%s': chunk of %zu bytes overflows size_t", a->name, cap);
        return NULL;
    }
    uint8_t *mem = mem_alloc(a->pool, MEM_ALIGN + cap);
    if (!mem) {
        ct_error_ctx("arena '%s': chunk of %zu bytes", a->name, cap);
        return NULL;
    }
    ArenaChunk *ch = (ArenaChunk *)mem;
    ch->next = NULL;
    ch->data = mem + MEM_ALIGN;
    ch->cap = cap;
    ch->off = 0;
    a->n_chunks++;
    a->capacity += cap;
    return ch;
}

int arena_init(Arena *a, Pool *pool, const char *name, size_t bytes, int max_chunks) {
    memset(a, 0, sizeof *a);
    a->name = name ? name : "arena";
    if (max_chunks < 1)
        return ct_error("arena '%s': max_chunks: expected >= 1, got %d", a->name, max_chunks);
    if (bytes > SIZE_MAX - 2 * MEM_ALIGN)
        return ct_error("arena '%s': size of %zu bytes overflows size_t", a->name, bytes);
    a->pool = pool;
    a->max_chunks = max_chunks;
    a->chunk_bytes = bytes ? round_up(bytes, MEM_ALIGN) : MEM_ALIGN;
    a->first = a->cur = chunk_new(a, a->chunk_bytes);
    return a->first ? CT_OK : CT_ERR;
}

void *arena_alloc(Arena *a, size_t bytes) {
    if (bytes > SIZE_MAX - 2 * MEM_ALIGN) {
        ct_error("arena '%s': request of %zu bytes overflows size_t", a->name, bytes);
        return NULL;
    }
    if (!a->cur) {
        ct_error("arena '%s': not initialised (arena_init failed or arena_free was called)", a->name);
        return NULL;
    }
    size_t r = bytes ? round_up(bytes, MEM_ALIGN) : MEM_ALIGN;
    for (;;) {
        ArenaChunk *c = a->cur;
        if (c->cap - c->off >= r) {
            void *p = c->data + c->off;
            c->off += r;
            a->used += r;
            if (a->used > a->high_water) a->high_water = a->used;
            return p;
        }
        // The rest of this chunk stays unused until the next reset.
        if (c->next) {
            a->cur = c->next;
            continue;
        }
        if (a->n_chunks >= a->max_chunks) {
            ct_error("arena '%s': cannot allocate %zu bytes: %zu of %zu bytes used in %d chunk(s), "
                     "high-water %zu; expected the request to fit (raise the arena size%s)",
                     a->name, bytes, a->used, a->capacity, a->n_chunks, a->high_water,
                     a->max_chunks > 1 ? " or max_chunks" : " or allow growth");
            return NULL;
        }
        ArenaChunk *n = chunk_new(a, r > a->chunk_bytes ? r : a->chunk_bytes);
        if (!n) return NULL;
        c->next = n;
        a->cur = n;
    }
}

void arena_reset(Arena *a) {
    for (ArenaChunk *c = a->first; c; c = c->next) c->off = 0;
    a->cur = a->first;
    a->used = 0;
}

void arena_free(Arena *a) {
    if (!a || !a->pool) return;
    ArenaChunk *c = a->first;
    while (c) {
        ArenaChunk *next = c->next;
        mem_free(a->pool, c, MEM_ALIGN + c->cap);
        c = next;
    }
    const char *name = a->name;
    memset(a, 0, sizeof *a);
    a->name = name;
}
