/* core.h - what every library file needs: status recording, logging, checked arithmetic and the
 * allocation wrappers (one place, so tests can inject allocation failures at every site). */
#ifndef CODER_CORE_H
#define CODER_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coderinfer.h"

#if defined(__GNUC__) || defined(__clang__)
#define CODER_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CODER_PRINTF(a, b)
#endif

/* Records a formatted detail message for the calling thread and returns `status`, so a failure is
 * one line: `return coder_fail(CODER_ERR_FORMAT, "key %s: ...", key);` */
coder_status coder_fail(coder_status status, const char *fmt, ...) CODER_PRINTF(2, 3);

/* Prepends "context: " to the current thread's message (for callers adding where it happened). */
void coder_fail_context(const char *fmt, ...) CODER_PRINTF(1, 2);

/* Forwards a failure: evaluates expr once and returns its status if it is not CODER_OK. */
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        coder_status try_status_ = (expr);                                                         \
        if (try_status_ != CODER_OK) return try_status_;                                           \
    } while (0)

/* Logs through the installed sink (nothing when none is installed or below its level). */
void coder_log(coder_log_level level, const char *fmt, ...) CODER_PRINTF(2, 3);
#define LOG_DEBUG(...) coder_log(CODER_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) coder_log(CODER_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) coder_log(CODER_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) coder_log(CODER_LOG_ERROR, __VA_ARGS__)

/* Writes at most cap bytes of `len` bytes of s into out as printable ASCII (\xNN for the rest),
 * NUL-terminated, so file bytes can go into messages safely. Returns out. */
char *coder_escape(const void *s, size_t len, char *out, size_t cap);

/* Checked arithmetic: return true on overflow (like the builtins they wrap). */
static inline bool ck_add(uint64_t a, uint64_t b, uint64_t *out) { return __builtin_add_overflow(a, b, out); }
static inline bool ck_mul(uint64_t a, uint64_t b, uint64_t *out) { return __builtin_mul_overflow(a, b, out); }
static inline bool ck_add_size(size_t a, size_t b, size_t *out) { return __builtin_add_overflow(a, b, out); }
static inline bool ck_mul_size(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out); }

/* Allocation. Every library allocation goes through these, never malloc directly: the test build
 * can make the N-th call fail (coder_alloc_fail_after) to prove every error path frees what it took. */
void *coder_malloc(size_t n);
void *coder_calloc(size_t count, size_t size);
void *coder_realloc(void *p, size_t n);
void coder_mfree(void *p);
char *coder_strndup(const char *s, size_t n);
/* Aligned allocation (alignment a power of two >= sizeof(void*)); free with coder_mfree_aligned. */
void *coder_malloc_aligned(size_t n, size_t alignment);
void coder_mfree_aligned(void *p);
/* Asks the kernel for 2 MiB pages over the whole 2 MiB units inside [p, p + n), before they are
 * first touched (mmap'd model files, model buffers). Decode streams the weights, and with 4 KiB
 * pages every 4 KiB of them costs a TLB miss: a 2-thread read microbenchmark moved ~10% more with
 * 2 MiB pages. For a file mapping, faults on pages not yet cached then read the file in 2 MiB
 * folios: a 0.5B Q8_0 model evicted from the cache came back fully PMD-mapped (FilePmdMapped
 * 518144 kB of 518620), against 245760 kB as left in the cache by the writer. */
void coder_advise_hugepages(void *p, size_t n);
/* Drops the 4 KiB pages wholly inside [p, p + n) of a private read-only file mapping from this
 * process (MADV_DONTNEED): they refault from the page cache if read again. */
void coder_release_pages(void *p, size_t n);

/* Test hook: after `n` more successful allocations, every allocation fails (-1 disables).
 * Not exported; tests link the static archive. */
void coder_alloc_fail_after(long n);

/* Test hook: bytes currently held through these wrappers (malloc_usable_size) and the peak since
 * the last coder_alloc_peak_reset (which sets the peak to the current amount). For memory-bound
 * tests such as "a huge declared count allocates nothing large". */
size_t coder_alloc_peak_bytes(void);
size_t coder_alloc_current_bytes(void);
void coder_alloc_peak_reset(void);

/* Copies a caller's params struct (its first field is `size_t size`) over dst, which already holds
 * the defaults: only the caller's first src->size bytes, so a caller built against an older,
 * shorter struct keeps the defaults of the fields it does not know. src->size must lie in
 * [min_size, dst_size]; otherwise CODER_ERR_INVALID_ARG naming `what`. dst->size becomes dst_size. */
coder_status coder_params_copy(void *dst, size_t dst_size, const void *src, size_t min_size,
                               const char *what);

/* Wall-clock time in seconds (monotonic). */
double coder_time_now(void);

/* Number of online CPU cores (at least 1). */
int coder_cpu_count(void);

#endif
