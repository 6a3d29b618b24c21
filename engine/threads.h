// threads.h — a small pthread pool with static partitioning.
//
// pool_run calls fn(ctx, i, n) for i = 0..n-1 tasks, each task on exactly one thread; the
// caller picks the split (e.g. rows [i*R/n, (i+1)*R/n)) so each output element is computed
// by the same code whatever the thread count: results are byte-identical for any --threads.
#pragma once
#include <stddef.h>

typedef struct ThreadPool ThreadPool;
typedef void (*PoolFn)(void *ctx, int task, int ntasks);

// nthreads <= 0 means the number of online CPUs.  Returns NULL on failure (message set).
ThreadPool *pool_create(int nthreads);
void pool_destroy(ThreadPool *p);
int pool_size(const ThreadPool *p);   // 1 for a NULL pool
// Run fn over ntasks tasks spread over the pool's threads (the caller is thread 0) and wait.
// A NULL pool runs every task on the caller.
void pool_run(ThreadPool *p, PoolFn fn, void *ctx, int ntasks);
// Split [0, n) into parts: start of part i of k.
static inline size_t pool_split(size_t n, int i, int k) { return (size_t)((n * (size_t)i) / (size_t)k); }
