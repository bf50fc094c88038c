/* cli_util.c - see cli_util.h. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "commands.h"

int cli_parse_int(const char *opt, const char *v, long lo, long hi, int32_t *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "coder: %s: '%s' is not an integer in [%ld, %ld]\n", opt, v, lo, hi);
        return 1;
    }
    *out = (int32_t)x;
    return 0;
}

int cli_parse_float(const char *opt, const char *v, float *out) {
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (errno || end == v || *end || isnan(x)) {
        fprintf(stderr, "coder: %s: '%s' is not a number\n", opt, v);
        return 1;
    }
    *out = x;
    return 0;
}

int cli_parse_u64(const char *opt, const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    if (v[0] == '-') {
        if (strcmp(v, "-1") == 0) { *out = UINT64_MAX; return 0; } /* -1: random, as llama.cpp */
        fprintf(stderr, "coder: %s: '%s' is not a non-negative integer\n", opt, v);
        return 1;
    }
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end) {
        fprintf(stderr, "coder: %s: '%s' is not a non-negative integer\n", opt, v);
        return 1;
    }
    *out = (uint64_t)x;
    return 0;
}

int cli_parse_ctx(const char *opt, const char *v, int32_t *out) {
    if (strcmp(v, "auto") == 0) { *out = CODER_CTX_AUTO; return 0; }
    return cli_parse_int(opt, v, 1, INT_MAX, out);
}

int cli_parse_gpu_layers(const char *opt, const char *v, int *out) {
    if (strcmp(v, "auto") == 0) { *out = -1; return 0; }
    if (strcmp(v, "all") == 0) { *out = INT_MAX; return 0; } /* clamped to the layer count at load */
    int32_t n;
    if (cli_parse_int(opt, v, 0, INT_MAX, &n)) return 1;
    *out = n;
    return 0;
}

int cli_buf_append(cli_buf *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return 1;
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int cli_read_file(const char *path, cli_buf *b) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return 1;
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (cli_buf_append(b, chunk, n)) { errno = ENOMEM; rc = 1; break; }
    if (!rc && ferror(f)) rc = 1;
    if (!rc && cli_buf_append(b, "", 0)) { errno = ENOMEM; rc = 1; }
    if (f != stdin) fclose(f);
    return rc;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there are not one. */
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

void cli_json_string(FILE *f, const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        unsigned c = p[i];
        if (c == '"') fputs("\\\"", f);
        else if (c == '\\') fputs("\\\\", f);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20 || c == 0x7F) fprintf(f, "\\u%04x", c);
        else if (c < 0x80) fputc((int)c, f);
        else {
            size_t l = utf8_valid_len(p + i, len - i);
            if (l == 0) {
                fputs("\\ufffd", f);
                i++;
                continue;
            }
            fwrite(p + i, 1, l, f);
            i += l;
            continue;
        }
        i++;
    }
    fputc('"', f);
}

static void log_to_stderr(coder_log_level level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "coder [%s] %s\n", level <= CODER_LOG_ERROR ? names[level] : "?", msg);
}

void cli_log_setup(int verbosity) {
    if (verbosity <= 0) { coder_log_set(NULL, NULL, CODER_LOG_NONE); return; }
    coder_log_level lvl = verbosity == 1 ? CODER_LOG_WARN : verbosity == 2 ? CODER_LOG_INFO : CODER_LOG_DEBUG;
    coder_log_set(log_to_stderr, NULL, lvl);
}

int cli_exit_code(coder_status st, int fallback) {
    switch (st) {
    case CODER_OK: return EXIT_OK;
    case CODER_ERR_IO:
    case CODER_ERR_FORMAT:
    case CODER_ERR_TRUNCATED:
    case CODER_ERR_UNSUPPORTED:
    case CODER_ERR_LIMIT: return EXIT_LOAD;
    case CODER_ERR_NOMEM:
    case CODER_ERR_DEVICE_NOMEM: return EXIT_NOMEM;
    case CODER_ERR_CONTEXT_FULL: return EXIT_CONTEXT;
    case CODER_ERR_CANCELLED: return EXIT_INTERRUPTED;
    case CODER_ERR_INVALID_ARG: return fallback == EXIT_LOAD ? EXIT_LOAD : EXIT_USAGE;
    default: return fallback;
    }
}

/* The CLI maps models (fast loads from a warm page cache: one process per task) and, since this
 * process is its own host, catches the one hazard of mapping: another process truncating the file
 * (SIGBUS). The library itself reads files into memory by default and installs no handlers. */
static void cli_on_sigbus(int sig) {
    (void)sig;
    static const char msg[] = "\ncoder: the model file changed while mapped (SIGBUS: truncated by another process?); "
                              "run again, or pass --no-mmap for files that may change\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(EXIT_LOAD);
}

void cli_model_mmap(coder_model_params *mp, int no_mmap) {
    mp->use_mmap = !no_mmap;
    if (!mp->use_mmap) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
