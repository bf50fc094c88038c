/* threadpool.h - a persistent pool of worker threads for the CPU backend. One pool per session
 * (created with it, so evaluation allocates nothing per token). A dispatch is a number of tasks
 * fn(ctx, i, n), i < n, each run exactly once by whichever thread (the caller included) claims it
 * first; the call returns when all are done. Workers spin briefly on a generation counter, then
 * sleep on a condvar, so an idle pool costs no CPU. */
#ifndef CODER_THREADPOOL_H
#define CODER_THREADPOOL_H

#include "core.h"

typedef struct threadpool threadpool;

/* fn(ctx, i, n): task i of n. It partitions the work by i itself. Tasks of one dispatch may run
 * concurrently or one after another on the same thread, in any order: never wait inside fn for
 * another task of the same dispatch. Scratch indexed by i is private to the task. */
typedef void (*threadpool_fn)(void *ctx, int ith, int nth);

/* n_threads >= 1 (the caller counts as one; n_threads - 1 workers are started). */
coder_status threadpool_new(int n_threads, threadpool **out);
void threadpool_free(threadpool *p);
int threadpool_size(const threadpool *p);

/* Runs n_tasks tasks (any number >= 1; more tasks than threads balance the load) and waits for
 * them. Not reentrant: only the thread that owns the pool (the session's thread) calls it, never
 * from inside fn. */
void threadpool_run_tasks(threadpool *p, int n_tasks, threadpool_fn fn, void *ctx);

/* As many tasks as threads: fn(ctx, i, size) for i < size. */
void threadpool_run(threadpool *p, threadpool_fn fn, void *ctx);

/* min(n_max, pool size) tasks. */
void threadpool_run_n(threadpool *p, int n_max, threadpool_fn fn, void *ctx);

#endif
