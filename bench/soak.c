/* soak.c - BAD_INPUTS H12: N cycles of model load -> session -> generate -> free on a tiny model,
 * printing every `every` cycles the resident set (/proc/self/statm), the open file descriptors
 * (/proc/self/fd) and the library's live-bytes counter, so a slow leak of memory, mappings or
 * descriptors shows as a rising column. Not part of the tests (make soak; minutes of CPU).
 *
 *   build/bench/soak MODEL.gguf [cycles=10000] [every=1000] [mmap=1]
 *
 * Each cycle: coder_model_load (mmap or read mode), coder_session_new (n_ctx 64, 1 thread),
 * coder_generate of 4 greedy tokens from a fixed prompt, and a bad load (missing file) whose error
 * path must not leak either; then everything is freed. The generated ids must be identical in
 * every cycle (checked against cycle 0). Exit status 1 on any failure or mismatch. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coderinfer.h"

size_t coder_alloc_current_bytes(void); /* lib/core.h test hook, in the static archive */

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [cycles=10000] [every=1000] [mmap=1]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    long cycles = argc > 2 ? atol(argv[2]) : 10000, every = argc > 3 ? atol(argv[3]) : 1000;
    int use_mmap = argc > 4 ? atoi(argv[4]) : 1;
    if (every <= 0) every = 1000;
    int32_t first[8];
    size_t n_first = 0;
    double t0 = now_s();
    printf("%8s %10s %6s %12s %8s\n", "cycle", "rss_kib", "fds", "lib_bytes", "s");
    for (long c = 0; c < cycles; c++) {
        coder_model_params mp;
        coder_model_params_init(&mp);
        mp.use_mmap = use_mmap;
        mp.n_gpu_layers = 0;
        coder_model *m = NULL;
        if (coder_model_load(path, &mp, &m) != CODER_OK) {
            fprintf(stderr, "cycle %ld: load: %s\n", c, coder_last_error());
            return 1;
        }
        coder_model *bad = NULL;
        if (coder_model_load("/nonexistent/soak.gguf", &mp, &bad) != CODER_ERR_IO || bad) {
            fprintf(stderr, "cycle %ld: the bad load did not fail with CODER_ERR_IO\n", c);
            return 1;
        }
        coder_session_params sp;
        coder_session_params_init(&sp);
        sp.n_ctx = 64;
        sp.n_threads = 1;
        coder_session *s = NULL;
        if (coder_session_new(m, &sp, &s) != CODER_OK) {
            fprintf(stderr, "cycle %ld: session: %s\n", c, coder_last_error());
            return 1;
        }
        coder_gen_params gp;
        coder_gen_params_init(&gp);
        gp.temperature = 0;
        gp.max_tokens = 4;
        coder_result r;
        coder_result_init(&r);
        if (coder_generate(s, "def fib(n):", 11, &gp, &r) != CODER_OK) {
            fprintf(stderr, "cycle %ld: generate: %s\n", c, coder_last_error());
            return 1;
        }
        if (c == 0) {
            n_first = r.n_tokens < 8 ? r.n_tokens : 8;
            memcpy(first, r.tokens, n_first * sizeof *first);
        } else if (r.n_tokens < n_first || memcmp(first, r.tokens, n_first * sizeof *first) != 0) {
            fprintf(stderr, "cycle %ld: generated ids differ from cycle 0\n", c);
            return 1;
        }
        coder_result_clear(&r);
        coder_session_free(s);
        if (coder_model_free(m) != CODER_OK) {
            fprintf(stderr, "cycle %ld: model free: %s\n", c, coder_last_error());
            return 1;
        }
        if (c == 0 || (c + 1) % every == 0)
            printf("%8ld %10ld %6d %12zu %8.1f\n", c + 1, rss_kib(), open_fds(), coder_alloc_current_bytes(),
                   now_s() - t0);
        fflush(stdout);
    }
    return 0;
}
