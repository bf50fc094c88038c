/* threadpool.c - persistent fork/join pool (see threadpool.h).
 *
 * A dispatch is a set of n_tasks independent tasks. The caller publishes (fn, ctx, n_tasks) and a
 * new generation in one 64-bit `state` word (generation << 32 | tasks not yet claimed); every
 * thread, the caller included, claims tasks with a compare-and-swap on that word, and the caller
 * returns once all tasks are *done*, not once every worker has checked in. On a machine shared
 * with other processes this matters: a worker that is descheduled when the dispatch starts claims
 * nothing, and the caller runs its share instead of spinning until the OS runs it again (with the
 * old check-in join, 2 threads on a loaded 2-core box spent ~75% of decode time in the barrier).
 *
 * Safety of the late worker: it reads fn/ctx/n_tasks only after a successful claim of a task of
 * generation g; the caller cannot finish g (and overwrite them) before that task is done, and a
 * claim against a stale generation fails the compare-and-swap.
 *
 * Workers spin on the generation for a short while before sleeping on the condvar, so back-to-back
 * ops (a decode step issues ~8 per layer) do not pay a futex wake each. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "threadpool.h"

/* Spin ~30 us before sleeping (workers) or yielding (the caller's join): long enough to bridge
 * consecutive ops of a decode step (a few us apart), short enough not to burn CPU time a shared
 * machine would give to the other thread. Measured by the clock, not by a pause count: a pause
 * takes ~55 ns on this Zen (20000 pauses, the old count, were ~1.1 ms) and ~3-40 ns elsewhere.
 * On the 2-core machine shared with other jobs, the old spin alone was ~18% of decode samples. */
#define SPIN_NS 30000
#define SPIN_CHECK_EVERY 16   /* pauses between clock reads (vDSO clock_gettime, ~20 ns) */

typedef struct worker {
    threadpool *pool;
    pthread_t thread;
} worker;

struct threadpool {
    int n_threads;
    worker *workers;          /* n_threads - 1                                               */
    int n_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    _Atomic uint64_t state;   /* generation << 32 | tasks left to claim                     */
    atomic_int n_done;        /* tasks of the current generation finished                    */
    atomic_bool quit;
    threadpool_fn fn;         /* written before the generation is published (release)        */
    void *ctx;
    int n_tasks;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until the generation differs from seen, or SPIN_NS pass; returns the last one read. */
static uint32_t spin_for_generation(threadpool *p, uint32_t seen) {
    const int64_t end = now_ns() + SPIN_NS;
    for (int i = 1;; i++) {
        const uint32_t g = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> 32);
        if (g != seen || atomic_load_explicit(&p->quit, memory_order_relaxed)) return g;
        cpu_relax();
        if (i % SPIN_CHECK_EVERY == 0 && now_ns() > end) return g;
    }
}

/* Claims and runs tasks of generation gen until none is left (or the generation moved on). */
static void run_tasks(threadpool *p, uint32_t gen) {
    uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
    for (;;) {
        const uint32_t left = (uint32_t)s;
        if ((uint32_t)(s >> 32) != gen || left == 0) return;
        if (!atomic_compare_exchange_weak_explicit(&p->state, &s, s - 1, memory_order_acquire, memory_order_acquire))
            continue;
        /* Task n - left of gen is ours: gen cannot complete (nor fn/ctx change) until we are done. */
        const int n = p->n_tasks;
        p->fn(p->ctx, n - (int)left, n);
        atomic_fetch_add_explicit(&p->n_done, 1, memory_order_release);
        s = atomic_load_explicit(&p->state, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    threadpool *p = w->pool;
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = spin_for_generation(p, seen);
        if (g == seen) {
            pthread_mutex_lock(&p->lock);
            while ((g = (uint32_t)(atomic_load(&p->state) >> 32)) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->wake, &p->lock);
            pthread_mutex_unlock(&p->lock);
        }
        if (atomic_load(&p->quit)) break;
        seen = g;
        run_tasks(p, g);
    }
    return NULL;
}

coder_status threadpool_new(int n_threads, threadpool **out) {
    *out = NULL;
    if (n_threads < 1) return coder_fail(CODER_ERR_INVALID_ARG, "threadpool: n_threads %d < 1", n_threads);
    threadpool *p = coder_calloc(1, sizeof *p);
    if (!p) return coder_fail(CODER_ERR_NOMEM, "threadpool: allocating the pool");
    p->n_threads = n_threads;
    atomic_init(&p->state, 0);
    atomic_init(&p->n_done, 0);
    atomic_init(&p->quit, false);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (n_threads > 1) {
        p->workers = coder_calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            threadpool_free(p);
            return coder_fail(CODER_ERR_NOMEM, "threadpool: allocating %d workers", n_threads - 1);
        }
        for (int i = 0; i < n_threads - 1; i++) {
            p->workers[i].pool = p;
            if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
                threadpool_free(p);
                return coder_fail(CODER_ERR_NOMEM, "threadpool: pthread_create failed for worker %d", i + 1);
            }
            p->n_started++;
        }
    }
    *out = p;
    return CODER_OK;
}

void threadpool_free(threadpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->workers[i].thread, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    coder_mfree(p->workers);
    coder_mfree(p);
}

int threadpool_size(const threadpool *p) { return p->n_threads; }

void threadpool_run_tasks(threadpool *p, int n_tasks, threadpool_fn fn, void *ctx) {
    if (n_tasks < 1) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int i = 0; i < n_tasks; i++) fn(ctx, i, n_tasks);
        return;
    }
    /* Every task of the previous generation is done, so no thread reads fn/ctx/n_tasks now. */
    const uint32_t gen = (uint32_t)(atomic_load_explicit(&p->state, memory_order_relaxed) >> 32) + 1;
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->lock);   /* pairs with the sleepers' check of the generation */
    atomic_store_explicit(&p->state, (uint64_t)gen << 32 | (uint32_t)n_tasks, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    run_tasks(p, gen);

    /* Only tasks a worker claimed and has not finished are left: spin, then yield (the worker
     * may be waiting for this very core). */
    if (atomic_load_explicit(&p->n_done, memory_order_acquire) < n_tasks) {
        const int64_t end = now_ns() + SPIN_NS;
        bool spin = true;
        for (int i = 1; atomic_load_explicit(&p->n_done, memory_order_acquire) < n_tasks; i++) {
            if (spin) cpu_relax();
            else sched_yield();
            if (spin && i % SPIN_CHECK_EVERY == 0 && now_ns() > end) spin = false;
        }
    }
}

void threadpool_run_n(threadpool *p, int n_max, threadpool_fn fn, void *ctx) {
    int n = n_max < p->n_threads ? n_max : p->n_threads;
    threadpool_run_tasks(p, n < 1 ? 1 : n, fn, ctx);
}

void threadpool_run(threadpool *p, threadpool_fn fn, void *ctx) { threadpool_run_n(p, p->n_threads, fn, ctx); }
