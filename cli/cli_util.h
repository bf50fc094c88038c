/* cli_util.h - helpers shared by the generate and bench subcommands: number parsing with clear
 * usage errors, whole-file reading, JSON string escaping, the stderr log sink, status -> exit code. */
#ifndef CODER_CLI_UTIL_H
#define CODER_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "coderinfer.h"

/* Each parser prints "coder: OPT: ..." to stderr and returns non-zero on a malformed value. */
int cli_parse_int(const char *opt, const char *v, long lo, long hi, int32_t *out);
int cli_parse_float(const char *opt, const char *v, float *out);
int cli_parse_u64(const char *opt, const char *v, uint64_t *out);
/* N, "auto" (-1) or "all" (every layer). */
/* Model loading in the CLI: mapped unless --no-mmap (no_mmap), with a SIGBUS handler that reports
 * a model file truncated while mapped and exits with EXIT_LOAD. */
void cli_model_mmap(coder_model_params *mp, int no_mmap);
/* -c: a context length >= 1, or "auto" (CODER_CTX_AUTO: coder_plan_fit chooses). */
int cli_parse_ctx(const char *opt, const char *v, int32_t *out);
int cli_parse_gpu_layers(const char *opt, const char *v, int *out);

typedef struct cli_buf {
    char *data;
    size_t len, cap;
} cli_buf;
/* Appends n bytes and keeps data NUL-terminated; non-zero when out of memory. */
int cli_buf_append(cli_buf *b, const void *p, size_t n);
/* Reads a whole file ("-" = stdin) into b; non-zero with errno set on failure. */
int cli_read_file(const char *path, cli_buf *b);

/* Writes s[0..len) as a JSON string literal: quotes, backslash and control characters escaped,
 * invalid UTF-8 bytes replaced by U+FFFD so the output is always valid JSON. */
void cli_json_string(FILE *f, const char *s, size_t len);

/* Installs a stderr log sink: 0 = none (-q), 1 = warnings, 2 = info (-v), 3 = debug (-vv). */
void cli_log_setup(int verbosity);

/* The exit code for a failed status; `fallback` for statuses with no specific code. */
int cli_exit_code(coder_status st, int fallback);

#endif
