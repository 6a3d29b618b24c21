// mem.h — where buffers live: pools with a pluggable allocator, one carved allocation for
// long-lived buffers, and a per-prompt bump arena.
//
// Three layers, each built on the one before:
//   Pool   owns an allocator (alloc/free function pointers + ctx, as in BLIS's pools) and
//          counts what goes through it.  The default allocator places memory with libnuma
//          (node-local or interleaved) when the kernel offers NUMA, else posix_memalign.
//          Tests plug in a counting allocator to check that every byte is given back.
//   Carve  one allocation cut into named, 64-byte aligned buffers from a sizes table
//          (llm.c's fill_in_*_sizes + malloc_and_point): KV cache, activations, scratch.
//   Arena  a bump allocator for per-prompt captures: arena_reset between prompts keeps the
//          chunks, so a steady state allocates nothing; overflow is an error naming the
//          arena, the request and the capacity, unless the arena may grow by chunks.
//
// Alignment: every pointer handed out is at least MEM_ALIGN (64 bytes, one cache line and
// one zmm register); pool buffers of MEM_LARGE_BYTES or more are 2 MiB aligned and marked
// MADV_HUGEPAGE, so a large weight or KV buffer costs few TLB entries.
//
// Not thread-safe: a Pool or Arena belongs to one owner (a model, a run state, a thread);
// threads that need scratch get an Arena each.
//
// Zero-size requests are legal and return a distinct, freeable, non-NULL pointer (they
// take MEM_ALIGN bytes), so NULL always means failure (with ct_error set).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifndef CTRACE_HAVE_NUMA
#define CTRACE_HAVE_NUMA 0
#endif

#define MEM_ALIGN ((size_t)64)
#define MEM_HUGE_ALIGN ((size_t)2 << 20)
#define MEM_LARGE_BYTES ((size_t)2 << 20)   // at or above this: 2 MiB aligned + MADV_HUGEPAGE

typedef enum {
    MEM_NUMA_OFF = 0,     // plain posix_memalign; first touch decides placement
    MEM_NUMA_LOCAL,       // on the node of the calling thread (or of Pool.node if >= 0)
    MEM_NUMA_INTERLEAVE,  // pages spread round-robin over all nodes (shared weights)
    MEM_NUMA_NPOLICY
} MemPolicy;

// "off", "local", "interleave"; "?" for anything else.
const char *mem_policy_name(MemPolicy p);
// Parse a name from mem_policy_name; returns 0, or -1 with an error naming the value.
int mem_policy_parse(const char *name, MemPolicy *out);
// 1 when built with libnuma and the kernel supports it (numa_available() >= 0).
int mem_numa_available(void);
// Number of configured NUMA nodes; 1 without libnuma.
int mem_numa_nodes(void);

// ---- allocator ------------------------------------------------------------------------------
// alloc returns `bytes` bytes aligned to `align` (a power of two >= MEM_ALIGN), or NULL with
// ct_error set.  free receives the same bytes and align that alloc was given (numa_free and
// munmap need the size).  bytes is never 0 here: the pool rounds zero up.
typedef struct MemAllocator {
    void *(*alloc)(void *ctx, size_t bytes, size_t align);
    void (*free)(void *ctx, void *p, size_t bytes, size_t align);
    void *ctx;
    const char *name;   // for messages, e.g. "default", "counting"
} MemAllocator;

// The default allocator's context: a policy and a node (-1 = the calling thread's node).
typedef struct MemDefaultCtx {
    MemPolicy policy;
    int node;
} MemDefaultCtx;

// The default allocator functions (ctx is a MemDefaultCtx*), public so a test allocator can
// wrap them.  Without NUMA (or with MEM_NUMA_OFF) these use posix_memalign; with NUMA, small
// buffers come from numa_alloc_local/onnode/interleaved and large ones (or alignments beyond
// a page) from an aligned mmap bound to the policy with mbind before first touch.
void *mem_default_alloc(void *ctx, size_t bytes, size_t align);
void mem_default_free(void *ctx, void *p, size_t bytes, size_t align);

// ---- pool -----------------------------------------------------------------------------------
typedef struct Pool {
    const char *name;       // for messages ("weights", "kv", ...)
    MemAllocator a;         // the allocator in use
    MemDefaultCtx dflt;     // context of the default allocator (a.ctx points here: do not
                            // copy or move an initialised Pool)
    size_t n_allocs, n_frees;
    size_t bytes_live;      // bytes currently handed out (after rounding)
    size_t bytes_peak;      // high-water mark of bytes_live
} Pool;

// allocator == NULL selects the default allocator with the given policy (node = -1).
// With a custom allocator, policy is only recorded.  Always succeeds; returns 0.
int mem_pool_init(Pool *p, const char *name, MemPolicy policy, const MemAllocator *allocator);
// Returns -1 (message names the pool and what is still live) if allocations were not freed;
// the pool is reset either way.  NULL is a no-op.
int mem_pool_free(Pool *p);
// bytes rounded up to MEM_ALIGN (0 -> MEM_ALIGN); aligned to MEM_ALIGN, or to MEM_HUGE_ALIGN
// with MADV_HUGEPAGE when the rounded size is >= MEM_LARGE_BYTES.  NULL on failure.
void *mem_alloc(Pool *p, size_t bytes);
// Give back a pointer from mem_alloc with the same `bytes`.  NULL is a no-op.
void mem_free(Pool *p, void *ptr, size_t bytes);

// ---- carve: one allocation, named buffers from a sizes table --------------------------------
typedef struct MemCarveEntry {
    const char *name;   // for messages
    size_t bytes;       // 0 is allowed: the pointer is valid but points at no storage
    void **out;         // receives the buffer's address (may be NULL: layout only)
} MemCarveEntry;

typedef struct MemCarve {
    Pool *pool;
    void *base;
    size_t total;       // bytes of the single allocation
} MemCarve;

// Offsets of each entry (offsets may be NULL) and the total: each offset is a multiple of
// MEM_ALIGN, entries in table order, no overlap.  -1 on size_t overflow (names the entry).
int mem_carve_layout(const MemCarveEntry *e, size_t n, size_t *offsets, size_t *total);
// Allocate the total from pool (zero-filled) and store base + offset[i] into *e[i].out.
int mem_carve(MemCarve *c, Pool *pool, const MemCarveEntry *e, size_t n);
void mem_carve_free(MemCarve *c);

// ---- arena: per-prompt bump allocator -------------------------------------------------------
typedef struct ArenaChunk ArenaChunk;

typedef struct Arena {
    const char *name;
    Pool *pool;
    size_t chunk_bytes;     // usable bytes of the first chunk and of each growth chunk
    int max_chunks;         // 1: fixed size, overflow is an error; >1: may grow
    int n_chunks;
    ArenaChunk *first;      // chunk list (kept across resets)
    ArenaChunk *cur;        // chunk being bumped
    size_t used;            // bytes handed out since the last reset (with alignment padding)
    size_t high_water;      // largest `used` ever seen
    size_t capacity;        // usable bytes over all chunks
} Arena;

// Allocates the first chunk of `bytes` (rounded to MEM_ALIGN) from pool.  max_chunks >= 1.
int arena_init(Arena *a, Pool *pool, const char *name, size_t bytes, int max_chunks);
// 64-byte aligned; 0 bytes takes MEM_ALIGN.  On overflow of a fixed arena (or when growth is
// exhausted), returns NULL with an error naming the arena, the request, used and capacity.
// Memory is not zeroed.
void *arena_alloc(Arena *a, size_t bytes);
// Forget every allocation (keeps the chunks and the high-water mark).
void arena_reset(Arena *a);
void arena_free(Arena *a);
