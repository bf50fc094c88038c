/* platform.c - allocation wrappers (with the test-only failure injection), time and CPU count. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
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

void *coder_malloc(size_t n) { return alloc_allowed() ? malloc(n ? n : 1) : NULL; }
void *coder_calloc(size_t count, size_t size) { return alloc_allowed() ? calloc(count ? count : 1, size ? size : 1) : NULL; }
void *coder_realloc(void *p, size_t n) { return alloc_allowed() ? realloc(p, n ? n : 1) : NULL; }
void coder_mfree(void *p) { free(p); }

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
    return p;
}
void coder_mfree_aligned(void *p) { free(p); }

double coder_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int coder_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
