/* platform.c - allocation wrappers (with the test-only failure injection), time and CPU count. */
#include <stdatomic.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

/* -1: never fail. Otherwise the number of allocations still allowed to succeed. */
static atomic_long alloc_budget = -1;

void coder_alloc_fail_after(long n) { atomic_store(&alloc_budget, n); }

static bool alloc_allowed(void) {
    long b = atomic_load_explicit(&alloc_budget, memory_order_relaxed);
    if (b < 0) return true;
    while (b > 0) {
        if (atomic_compare_exchange_weak(&alloc_budget, &b, b - 1)) return true;
    }
    return b < 0;
}

/* Bytes held and the peak (test hook; relaxed atomics: approximate under concurrency). */
static atomic_size_t alloc_current, alloc_peak;

static void *alloc_track(void *p) {
    if (p) {
        size_t now = atomic_fetch_add_explicit(&alloc_current, malloc_usable_size(p), memory_order_relaxed) + malloc_usable_size(p);
        size_t peak = atomic_load_explicit(&alloc_peak, memory_order_relaxed);
        while (now > peak && !atomic_compare_exchange_weak(&alloc_peak, &peak, now)) {}
    }
    return p;
}
static void alloc_untrack(void *p) {
    if (p) atomic_fetch_sub_explicit(&alloc_current, malloc_usable_size(p), memory_order_relaxed);
}
size_t coder_alloc_peak_bytes(void) { return atomic_load(&alloc_peak); }
size_t coder_alloc_current_bytes(void) { return atomic_load(&alloc_current); }
void coder_alloc_peak_reset(void) { atomic_store(&alloc_peak, atomic_load(&alloc_current)); }

void *coder_malloc(size_t n) { return alloc_allowed() ? alloc_track(malloc(n ? n : 1)) : NULL; }
void *coder_calloc(size_t count, size_t size) { return alloc_allowed() ? alloc_track(calloc(count ? count : 1, size ? size : 1)) : NULL; }
void *coder_realloc(void *p, size_t n) {
    if (!alloc_allowed()) return NULL;
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n ? n : 1);
    if (!q) return NULL;
    atomic_fetch_sub_explicit(&alloc_current, old, memory_order_relaxed);
    return alloc_track(q);
}
void coder_mfree(void *p) {
    alloc_untrack(p);
    free(p);
}

char *coder_strndup(const char *s, size_t n) {
    char *d = coder_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

void *coder_malloc_aligned(size_t n, size_t alignment) {
    if (!alloc_allowed()) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, alignment, n ? n : 1) != 0) return NULL;
    return alloc_track(p);
}
void coder_mfree_aligned(void *p) {
    alloc_untrack(p);
    free(p);
}

/* madvise over the whole `unit`-aligned units inside [p, p + n); a hint, errors change nothing. */
static void advise_inside(void *p, size_t n, uintptr_t unit, int advice) {
    const uintptr_t b = ((uintptr_t)p + unit - 1) & ~(unit - 1), e = ((uintptr_t)p + n) & ~(unit - 1);
    if (e > b) (void)madvise((void *)b, e - b, advice);
}

void coder_advise_hugepages(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
    advise_inside(p, n, (uintptr_t)2 << 20, MADV_HUGEPAGE);
#else
    (void)p, (void)n;
#endif
}

void coder_release_pages(void *p, size_t n) { advise_inside(p, n, 4096, MADV_DONTNEED); }

coder_status coder_params_copy(void *dst, size_t dst_size, const void *src, size_t min_size,
                               const char *what) {
    size_t size;
    memcpy(&size, src, sizeof size);
    if (size < min_size || size > dst_size)
        return coder_fail(CODER_ERR_INVALID_ARG, "%s.size = %zu (expected %zu..%zu): call its _init function first",
                          what, size, min_size, dst_size);
    memcpy(dst, src, size);
    memcpy(dst, &dst_size, sizeof dst_size);
    return CODER_OK;
}

double coder_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int coder_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
