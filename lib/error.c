/* error.c - status strings, the per-thread detail message, the log sink and version queries. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>

#include "core.h"

#define MESSAGE_CAP 1024

static _Thread_local char last_error[MESSAGE_CAP];

/* The sink is read on every log call from any thread and replaced rarely: a mutex keeps the
 * (fn, user_data, level) triple consistent; the level is also kept atomically for a cheap early out. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static coder_log_fn log_fn;
static void *log_user_data;
static atomic_int log_min_level = CODER_LOG_NONE;

CODER_EXPORT const char *coder_version(void) { return "0.1.0"; }
CODER_EXPORT int coder_version_number(void) { return CODER_VERSION_NUMBER; }
CODER_EXPORT int coder_abi_version(void) { return CODER_ABI_VERSION; }

CODER_EXPORT const char *coder_status_string(coder_status status) {
    switch (status) {
    case CODER_OK: return "CODER_OK: success";
    case CODER_ERR_INVALID_ARG: return "CODER_ERR_INVALID_ARG: invalid argument";
    case CODER_ERR_IO: return "CODER_ERR_IO: input/output error";
    case CODER_ERR_FORMAT: return "CODER_ERR_FORMAT: malformed data";
    case CODER_ERR_TRUNCATED: return "CODER_ERR_TRUNCATED: data ends early";
    case CODER_ERR_UNSUPPORTED: return "CODER_ERR_UNSUPPORTED: not supported";
    case CODER_ERR_LIMIT: return "CODER_ERR_LIMIT: size exceeds a limit";
    case CODER_ERR_NOMEM: return "CODER_ERR_NOMEM: out of host memory";
    case CODER_ERR_DEVICE: return "CODER_ERR_DEVICE: GPU error";
    case CODER_ERR_DEVICE_NOMEM: return "CODER_ERR_DEVICE_NOMEM: out of GPU memory";
    case CODER_ERR_DEVICE_LOST: return "CODER_ERR_DEVICE_LOST: GPU in a failed state";
    case CODER_ERR_CONTEXT_FULL: return "CODER_ERR_CONTEXT_FULL: context is full";
    case CODER_ERR_CANCELLED: return "CODER_ERR_CANCELLED: cancelled";
    case CODER_ERR_BUSY: return "CODER_ERR_BUSY: object in use";
    case CODER_ERR_STATE: return "CODER_ERR_STATE: invalid state for this call";
    case CODER_ERR_BUFFER_TOO_SMALL: return "CODER_ERR_BUFFER_TOO_SMALL: buffer too small";
    case CODER_ERR_NUMERIC: return "CODER_ERR_NUMERIC: NaN or Inf in results";
    case CODER_ERR_TEMPLATE: return "CODER_ERR_TEMPLATE: chat template error";
    case CODER_ERR_INTERNAL: return "CODER_ERR_INTERNAL: internal error";
    }
    return "CODER_ERR_?: unknown status";
}

CODER_EXPORT const char *coder_last_error(void) { return last_error; }

coder_status coder_fail(coder_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void coder_fail_context(const char *fmt, ...) {
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Build "prefix: old message" by hand: the result is cut at MESSAGE_CAP on purpose. */
    char joined[MESSAGE_CAP];
    size_t np = strlen(prefix), no = strlen(last_error), o = 0;
    for (size_t i = 0; i < np && o + 1 < sizeof joined; i++) joined[o++] = prefix[i];
    for (size_t i = 0; i < 2 && o + 1 < sizeof joined; i++) joined[o++] = ": "[i];
    for (size_t i = 0; i < no && o + 1 < sizeof joined; i++) joined[o++] = last_error[i];
    joined[o] = 0;
    memcpy(last_error, joined, o + 1);
}

CODER_EXPORT void coder_log_set(coder_log_fn fn, void *user_data, coder_log_level min_level) {
    pthread_mutex_lock(&log_lock);
    log_fn = fn;
    log_user_data = user_data;
    atomic_store(&log_min_level, fn ? (int)min_level : CODER_LOG_NONE);
    pthread_mutex_unlock(&log_lock);
}

void coder_log(coder_log_level level, const char *fmt, ...) {
    if ((int)level < atomic_load_explicit(&log_min_level, memory_order_relaxed)) return;
    char msg[MESSAGE_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    if (log_fn && (int)level >= atomic_load(&log_min_level)) log_fn(level, msg, log_user_data);
    pthread_mutex_unlock(&log_lock);
}

char *coder_escape(const void *s, size_t len, char *out, size_t cap) {
    const unsigned char *p = s;
    size_t o = 0;
    if (cap == 0) return out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            if (o + 1 >= cap) break;
            out[o++] = (char)c;
        } else {
            if (o + 4 >= cap) break;
            snprintf(out + o, 5, "\\x%02X", c);
            o += 4;
        }
    }
    out[o] = 0;
    return out;
}
