// threads.c — pthread pool.  A job is handed off through an atomic generation counter: idle
// workers first spin on it for a short while (decode issues ~100 jobs of 10-100 us per token,
// and a condition-variable wake-up costs about as much as such a job on a VM), then sleep on
// a condition variable.  The caller runs its share, then spins on the count of workers still
// running before it sleeps too.  Which thread runs which task never changes.
#include "engine/threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "engine/common.h"

struct ThreadPool {
    int n;                  // threads including the caller
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    _Atomic unsigned long gen;   // job generation: written under mu, read by spinning workers
    atomic_int pending;          // workers still running the current job
    int sleepers;                // workers waiting on go (under mu)
    int caller_waits;            // the caller waits on done (under mu)
    int quit;                    // under mu; also flags gen's last increment
    long spin_ns;                // how long an idle thread polls before it sleeps
    PoolFn fn;                   // the job: written before gen is published
    void *ctx;
    int ntasks;
};

typedef struct { ThreadPool *p; int w; } WorkerArg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

// Poll until *gen differs from seen (returns 1) or spin_ns passes (returns 0).
static int spin_gen(ThreadPool *p, unsigned long seen) {
    if (p->spin_ns <= 0) return 0;
    long t0 = now_ns();
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&p->gen, memory_order_acquire) != seen) return 1;
        cpu_relax();
        if (!(i & 63) && now_ns() - t0 > p->spin_ns) return 0;
    }
}

static int spin_pending(ThreadPool *p) {
    if (p->spin_ns <= 0) return 0;
    long t0 = now_ns();
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) return 1;
        cpu_relax();
        if (!(i & 63) && now_ns() - t0 > p->spin_ns) return 0;
    }
}

// Thread w runs tasks w, w+n, w+2n, ... : a fixed assignment, so no task ever moves.
static void run_share(ThreadPool *p, int w) {
    for (int t = w; t < p->ntasks; t += p->n) p->fn(p->ctx, t, p->ntasks);
}

static void *worker(void *arg) {
    WorkerArg a = *(WorkerArg *)arg;
    free(arg);
    ThreadPool *p = a.p;
    unsigned long seen = 0;
    for (;;) {
        if (!spin_gen(p, seen)) {
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while (!p->quit && atomic_load_explicit(&p->gen, memory_order_relaxed) == seen)
                pthread_cond_wait(&p->go, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (p->fn == NULL) break;   // pool_destroy publishes a NULL job
        run_share(p, a.w);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            if (p->caller_waits) pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

ThreadPool *pool_create(int nthreads) {
    if (nthreads <= 0) nthreads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nthreads <= 0) nthreads = 1;
    ThreadPool *p = calloc(1, sizeof *p);
    if (!p) { ct_error("out of memory creating a thread pool"); return NULL; }
    p->n = nthreads;
    // CTRACE_SPIN_US: microseconds an idle thread polls for the next job (default 100; 0 sleeps
    // at once, as on a machine with more pool threads than free cores).
    const char *e = getenv("CTRACE_SPIN_US");
    long us = e && *e ? strtol(e, NULL, 10) : 100;
    p->spin_ns = us > 0 ? (us > 1000000 ? 1000000 : us) * 1000L : 0;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    p->tid = calloc((size_t)nthreads, sizeof *p->tid);
    if (!p->tid) { free(p); ct_error("out of memory creating a thread pool"); return NULL; }
    for (int w = 1; w < nthreads; w++) {
        WorkerArg *a = malloc(sizeof *a);
        if (!a || (a->p = p, a->w = w, pthread_create(&p->tid[w], NULL, worker, a) != 0)) {
            free(a);
            p->n = w;  // run with the threads we got
            break;
        }
    }
    return p;
}

// Publish a job (fn NULL: quit) to every worker.
static void publish(ThreadPool *p, PoolFn fn, void *ctx, int ntasks) {
    p->fn = fn;
    p->ctx = ctx;
    p->ntasks = ntasks;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    if (!fn) p->quit = 1;
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    if (p->sleepers) pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
}

void pool_destroy(ThreadPool *p) {
    if (!p) return;
    if (p->n > 1) publish(p, NULL, NULL, 0);
    for (int w = 1; w < p->n; w++) pthread_join(p->tid[w], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->tid);
    free(p);
}

int pool_size(const ThreadPool *p) { return p ? p->n : 1; }

void pool_run(ThreadPool *p, PoolFn fn, void *ctx, int ntasks) {
    if (!p || p->n == 1 || ntasks <= 1) {
        for (int t = 0; t < ntasks; t++) fn(ctx, t, ntasks);
        return;
    }
    publish(p, fn, ctx, ntasks);
    run_share(p, 0);
    if (!spin_pending(p)) {
        pthread_mutex_lock(&p->mu);
        p->caller_waits = 1;
        while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) pthread_cond_wait(&p->done, &p->mu);
        p->caller_waits = 0;
        pthread_mutex_unlock(&p->mu);
    }
}
