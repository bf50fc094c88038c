/* bench_tokenize.c - tokenizer throughput: 1 MiB of C source (this repository's lib/ C files,
 * concatenated in name order and repeated to exactly 1 MiB, so the input is deterministic) with
 * the qwen2 vocabulary (refdata/vocab/ggml-vocab-qwen2.gguf). Validates first (decode(encode(x))
 * == x), then reports the median of several runs, load time excluded.
 * Reference: llama.cpp tokenizes 1 MiB of C++ with the qwen2 vocab at 3.8 MB/s on this machine
 * kind (refdata/README.md). Usage: bench_tokenize [vocab.gguf] [source_dir] */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer.h"

#define BENCH_BYTES (1u << 20)
#define BENCH_RUNS 7

static int bench_name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Concatenates the .c files of dir in name order, repeated to BENCH_BYTES. */
static char *bench_source(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char *names[512];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512) {
        size_t l = strlen(e->d_name);
        if (l > 2 && strcmp(e->d_name + l - 2, ".c") == 0) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, bench_name_cmp);
    char *buf = malloc(BENCH_BYTES);
    size_t used = 0;
    for (int pass = 0; used < BENCH_BYTES && n > 0 && pass < 1000; pass++) {
        for (size_t i = 0; i < n && used < BENCH_BYTES; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            FILE *f = fopen(path, "rb");
            if (!f) continue;
            used += fread(buf + used, 1, BENCH_BYTES - used, f);
            fclose(f);
        }
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    if (used < BENCH_BYTES) { free(buf); return NULL; }
    return buf;
}

static int bench_dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *rd = getenv("CODER_REFDATA");
    char vpath[4096];
    snprintf(vpath, sizeof vpath, "%s/vocab/ggml-vocab-qwen2.gguf", rd && *rd ? rd : "../shared/refdata");
    const char *vocab = argc > 1 ? argv[1] : vpath, *src = argc > 2 ? argv[2] : "lib";
    char *text = bench_source(src);
    if (!text) { fprintf(stderr, "bench_tokenize: cannot read %s/*.c\n", src); return 1; }
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    double t0 = coder_time_now();
    if (gguf_open(vocab, NULL, &f) != CODER_OK || tokenizer_load(f, &t) != CODER_OK) {
        fprintf(stderr, "bench_tokenize: %s: %s\n", vocab, coder_last_error());
        return 1;
    }
    double load_s = coder_time_now() - t0;
    size_t cap = BENCH_BYTES, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    char *back = malloc(BENCH_BYTES);
    size_t blen = 0;
    if (tokenizer_encode(t, text, BENCH_BYTES, 0, ids, cap, &n) != CODER_OK ||
        tokenizer_decode(t, ids, n, 0, back, BENCH_BYTES, &blen) != CODER_OK || blen != BENCH_BYTES ||
        memcmp(back, text, BENCH_BYTES) != 0) {
        fprintf(stderr, "bench_tokenize: validation failed (round trip): %s\n", coder_last_error());
        return 1;
    }
    double s[BENCH_RUNS];
    for (int r = 0; r < BENCH_RUNS; r++) {
        double a = coder_time_now();
        tokenizer_encode(t, text, BENCH_BYTES, CODER_TOKENIZE_ADD_SPECIAL | CODER_TOKENIZE_PARSE_SPECIAL, ids, cap, &n);
        s[r] = coder_time_now() - a;
    }
    qsort(s, BENCH_RUNS, sizeof *s, bench_dbl_cmp);
    double med = s[BENCH_RUNS / 2];
    printf("bench_tokenize: qwen2 vocab, %u bytes of %s/*.c -> %zu tokens (%.2f bytes/token); load %.1f ms\n",
           BENCH_BYTES, src, n, (double)BENCH_BYTES / (double)n, load_s * 1e3);
    printf("encode: median %.2f ms of %d runs (best %.2f ms): %.2f MB/s, %.2f M tokens/s   [llama.cpp: 3.8 MB/s]\n",
           med * 1e3, BENCH_RUNS, s[0] * 1e3, BENCH_BYTES / med / 1e6, (double)n / med / 1e6);
    /* BAD_INPUTS F4 shapes at release speed (one run each; reported, not judged) */
    static const struct { const char *what; char fill; } patho[] = {
        {"1 MiB of 'a' (one word)", 'a'}, {"1 MiB of spaces", ' '}, {"1 MiB of newlines", '\n'}};
    for (size_t i = 0; i < sizeof patho / sizeof patho[0]; i++) {
        memset(text, patho[i].fill, BENCH_BYTES);
        double a = coder_time_now();
        tokenizer_encode(t, text, BENCH_BYTES, 0, ids, cap, &n);
        printf("pathological %-26s %7zu tokens in %6.1f ms\n", patho[i].what, n, (coder_time_now() - a) * 1e3);
    }
    free(ids);
    free(back);
    free(text);
    tokenizer_free(t);
    gguf_close(f);
    return 0;
}
