// test_threads.c — the thread pool's contract (engine/threads.h): every task runs exactly once,
// on the thread its index names (task t on thread t % n, the caller being thread 0), and the
// caller sees every task's writes when pool_run returns; both hand-off paths (polling and
// sleeping on a condition variable) and pool_destroy from either state.
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/threads.h"

#define MAXT 64

// A hang fails the test: each test runs in its own process, and SIGALRM ends it (Criterion's
// .timeout is not used: with several timed tests in parallel it leaks under LeakSanitizer).
#define WATCHDOG(s) alarm(s)

typedef struct {
    pthread_t who[MAXT];   // thread that ran task t
    int runs[MAXT];        // how many times task t ran in this job
    long val[MAXT];        // job-dependent value written by task t
    long job;
    long sleep_us;         // tasks on threads other than the caller sleep this long
    pthread_t caller;
    atomic_int bad_args;   // tasks called with t or n out of range (checked by the caller:
                           // Criterion's asserts stay on the test's own thread)
} Job;

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {}
}

static void task(void *ctx, int t, int n) {
    Job *j = ctx;
    if (!(t >= 0 && t < n && n <= MAXT)) {
        atomic_fetch_add(&j->bad_args, 1);
        return;
    }
    if (j->sleep_us && !pthread_equal(pthread_self(), j->caller)) sleep_us(j->sleep_us);
    j->who[t] = pthread_self();
    j->runs[t]++;
    j->val[t] = j->job * 1000 + t;
}

// Run `jobs` jobs of ntasks tasks on a pool of nth threads (spin: CTRACE_SPIN_US, NULL for the
// default) and check each one as soon as pool_run returns.
static void run_jobs(int nth, int ntasks, int jobs, const char *spin, long gap_us, long task_sleep_us) {
    if (spin) setenv("CTRACE_SPIN_US", spin, 1);
    else unsetenv("CTRACE_SPIN_US");
    ThreadPool *p = pool_create(nth);
    cr_assert_not_null(p);
    cr_assert_eq(pool_size(p), nth);
    Job *j = calloc(1, sizeof *j);
    j->caller = pthread_self();
    j->sleep_us = task_sleep_us;
    pthread_t seen[MAXT];   // the thread behind each worker index, the same for every job
    memset(seen, 0, sizeof seen);
    int have[MAXT] = {0};
    for (int k = 0; k < jobs; k++) {
        memset(j->runs, 0, sizeof j->runs);
        j->job = k;
        pool_run(p, task, j, ntasks);
        cr_assert_eq(atomic_load(&j->bad_args), 0, "job %d: a task got an index outside [0, %d)", k, ntasks);
        for (int t = 0; t < ntasks; t++) {
            cr_assert_eq(j->runs[t], 1, "job %d: task %d ran %d times (threads %d, tasks %d)", k, t,
                         j->runs[t], nth, ntasks);
            cr_assert_eq(j->val[t], (long)k * 1000 + t, "job %d: task %d's write not visible", k, t);
            int w = ntasks <= 1 ? 0 : t % nth;
            if (w == 0) cr_assert(pthread_equal(j->who[t], j->caller), "job %d: task %d not on the caller", k, t);
            else cr_assert(!pthread_equal(j->who[t], j->caller), "job %d: task %d ran on the caller", k, t);
            if (!have[w]) {
                seen[w] = j->who[t];
                have[w] = 1;
            } else {
                cr_assert(pthread_equal(seen[w], j->who[t]), "job %d: task %d moved to another thread", k, t);
            }
        }
        if (gap_us) sleep_us(gap_us);
    }
    // Distinct worker indices are distinct threads.
    for (int a = 0; a < nth; a++)
        for (int b = a + 1; b < nth; b++)
            if (have[a] && have[b]) cr_assert(!pthread_equal(seen[a], seen[b]), "workers %d and %d share a thread", a, b);
    pool_destroy(p);
    free(j);
    unsetenv("CTRACE_SPIN_US");
}

Test(threads, back_to_back_jobs_polling) {
    WATCHDOG(120);
    // Jobs follow each other at once: the workers find each one while polling.
    for (int nth = 2; nth <= 5; nth++) {
        run_jobs(nth, 2 * nth + 1, 3000, NULL, 0, 0);
        run_jobs(nth, nth, 3000, NULL, 0, 0);
        run_jobs(nth, 1, 100, NULL, 0, 0);
        run_jobs(nth, 0, 100, NULL, 0, 0);
        run_jobs(nth, nth - 1, 1000, NULL, 0, 0);
    }
}

Test(threads, sleeping_workers) {
    WATCHDOG(120);
    // No polling (CTRACE_SPIN_US=0): every hand-off goes through the condition variables; and
    // with polling, gaps longer than the poll (1 ms > 100 us) so the workers are asleep again.
    for (int nth = 2; nth <= 4; nth++) {
        run_jobs(nth, 3 * nth, 500, "0", 0, 0);
        run_jobs(nth, 3 * nth, 40, "0", 300, 0);
        run_jobs(nth, 3 * nth, 40, NULL, 1000, 0);
        run_jobs(nth, 3 * nth, 40, "5", 200, 0);
    }
}

Test(threads, caller_waits_for_slow_workers) {
    WATCHDOG(120);
    // The workers' tasks outlast the caller's poll: the caller must sleep on the completion
    // signal and still see every write.
    run_jobs(2, 4, 20, NULL, 0, 2000);
    run_jobs(3, 7, 20, "0", 0, 500);
    run_jobs(3, 7, 20, "50", 0, 1500);
}

Test(threads, destroy_from_any_state) {
    WATCHDOG(60);
    // Destroyed right after creation, right after a job (workers polling), after they slept.
    for (int nth = 1; nth <= 4; nth++) {
        ThreadPool *p = pool_create(nth);
        cr_assert_not_null(p);
        pool_destroy(p);
        Job *j = calloc(1, sizeof *j);
        j->caller = pthread_self();
        p = pool_create(nth);
        pool_run(p, task, j, 2 * nth);
        pool_destroy(p);
        p = pool_create(nth);
        pool_run(p, task, j, 2 * nth);
        sleep_us(5000);
        pool_destroy(p);
        for (int t = 0; t < 2 * nth; t++) cr_assert_eq(j->runs[t], 2);
        free(j);
    }
    pool_destroy(NULL);
    cr_assert_eq(pool_size(NULL), 1);
}

Test(threads, null_pool_runs_on_caller) {
    Job *j = calloc(1, sizeof *j);
    j->caller = pthread_self();
    pool_run(NULL, task, j, 9);
    for (int t = 0; t < 9; t++) {
        cr_assert_eq(j->runs[t], 1);
        cr_assert(pthread_equal(j->who[t], j->caller));
    }
    free(j);
}
