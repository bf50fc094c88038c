/* threadpool.h - a persistent pool of worker threads for the CPU backend. One pool per session
 * (created with it, so evaluation allocates nothing per token). threadpool_run hands the same
 * function to every thread (the caller is thread 0) and returns when all have finished: a cheap
 * fork/join barrier - workers spin briefly on a generation counter, then sleep on a condvar, so
 * an idle pool costs no CPU. */
#ifndef CODER_THREADPOOL_H
#define CODER_THREADPOOL_H

#include "core.h"

typedef struct threadpool threadpool;

/* fn(ctx, ith, nth): thread ith of nth (0 = the caller). It partitions the work by ith itself. */
typedef void (*threadpool_fn)(void *ctx, int ith, int nth);

/* n_threads >= 1 (the caller counts as one; n_threads - 1 workers are started). */
coder_status threadpool_new(int n_threads, threadpool **out);
void threadpool_free(threadpool *p);
int threadpool_size(const threadpool *p);

/* Runs fn on every thread of the pool and waits for all of them. Not reentrant: only the thread
 * that owns the pool (the session's thread) calls it, never from inside fn. */
void threadpool_run(threadpool *p, threadpool_fn fn, void *ctx);

/* Runs fn on min(n_max, pool size) threads; the others return at once. For small work items. */
void threadpool_run_n(threadpool *p, int n_max, threadpool_fn fn, void *ctx);

#endif
