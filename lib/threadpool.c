/* threadpool.c - persistent fork/join pool (see threadpool.h).
 *
 * Dispatch: the caller publishes (fn, ctx, n_active) under the mutex, bumps `generation` and
 * broadcasts; workers spin on `generation` for a short while before sleeping, so back-to-back
 * ops (a decode step issues ~10 ops per layer) do not pay a futex wake each. Join: each worker
 * increments `n_done`; the caller spins (then yields) until all have. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "threadpool.h"

/* ~20-50 us of spinning: long enough to bridge consecutive ops, short enough not to burn a core
 * shared with other processes when the session is idle. */
#define SPIN_ITERS 20000

typedef struct worker {
    threadpool *pool;
    int ith;
    pthread_t thread;
} worker;

struct threadpool {
    int n_threads;
    worker *workers;          /* n_threads - 1                                               */
    int n_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_uint generation;   /* bumped once per dispatch                                    */
    atomic_int n_done;        /* workers finished with the current dispatch                  */
    atomic_bool quit;
    threadpool_fn fn;         /* written under lock before the generation bump               */
    void *ctx;
    int n_active;             /* threads taking part in the current dispatch                 */
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *arg) {
    worker *w = arg;
    threadpool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load_explicit(&p->generation, memory_order_acquire);
        for (int i = 0; g == seen && i < SPIN_ITERS && !atomic_load(&p->quit); i++) {
            cpu_relax();
            g = atomic_load_explicit(&p->generation, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->lock);
            while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->wake, &p->lock);
            pthread_mutex_unlock(&p->lock);
        }
        if (atomic_load(&p->quit)) break;
        seen = g;
        /* fn/ctx/n_active were written before the release-increment of generation. */
        if (w->ith < p->n_active) p->fn(p->ctx, w->ith, p->n_active);
        atomic_fetch_add_explicit(&p->n_done, 1, memory_order_release);
    }
    return NULL;
}

coder_status threadpool_new(int n_threads, threadpool **out) {
    *out = NULL;
    if (n_threads < 1) return coder_fail(CODER_ERR_INVALID_ARG, "threadpool: n_threads %d < 1", n_threads);
    threadpool *p = coder_calloc(1, sizeof *p);
    if (!p) return coder_fail(CODER_ERR_NOMEM, "threadpool: allocating the pool");
    p->n_threads = n_threads;
    atomic_init(&p->generation, 0);
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
            p->workers[i].ith = i + 1;
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

void threadpool_run_n(threadpool *p, int n_max, threadpool_fn fn, void *ctx) {
    int n = n_max < p->n_threads ? n_max : p->n_threads;
    if (n < 1) n = 1;
    if (p->n_threads == 1 || n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n_active = n;
    atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    fn(ctx, 0, n);

    /* Every worker (active or not) acknowledges the dispatch, so the next one cannot race. */
    int want = p->n_threads - 1;
    for (long i = 0; atomic_load_explicit(&p->n_done, memory_order_acquire) < want; i++) {
        if (i < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
}

void threadpool_run(threadpool *p, threadpool_fn fn, void *ctx) { threadpool_run_n(p, p->n_threads, fn, ctx); }
