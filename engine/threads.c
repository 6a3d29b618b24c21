// threads.c — pthread pool: workers sleep on a condition variable, the caller runs its share.
#include "engine/threads.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/common.h"

struct ThreadPool {
    int n;                  // threads including the caller
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;      // job generation
    int pending;            // workers still running the current job
    int quit;
    PoolFn fn;
    void *ctx;
    int ntasks;
};

typedef struct { ThreadPool *p; int w; } WorkerArg;

// Thread w runs tasks w, w+n, w+2n, ... : a fixed assignment, so no task ever moves.
static void run_share(ThreadPool *p, int w) {
    for (int t = w; t < p->ntasks; t += p->n) p->fn(p->ctx, t, p->ntasks);
}

static void *worker(void *arg) {
    WorkerArg a = *(WorkerArg *)arg;
    free(arg);
    ThreadPool *p = a.p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->gen == seen) pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_share(p, a.w);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

ThreadPool *pool_create(int nthreads) {
    if (nthreads <= 0) nthreads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nthreads <= 0) nthreads = 1;
    ThreadPool *p = calloc(1, sizeof *p);
    if (!p) { ct_error("out of memory creating a thread pool"); return NULL; }
    p->n = nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->tid = calloc((size_t)nthreads, sizeof *p->tid);
    for (int w = 1; w < nthreads; w++) {
        WorkerArg *a = malloc(sizeof *a);
        a->p = p;
        a->w = w;
        if (pthread_create(&p->tid[w], NULL, worker, a) != 0) {
            free(a);
            p->n = w;  // run with the threads we got
            break;
        }
    }
    return p;
}

void pool_destroy(ThreadPool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
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
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->ntasks = ntasks;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    run_share(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
