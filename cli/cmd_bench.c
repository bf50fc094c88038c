/* cmd_bench.c - `coder bench -m FILE [-p N] [-n N] [-t N] [-r REPS] [--json]`.
 *
 * Times prefill of N prompt tokens and decode of N tokens (one token per step, from a context of one
 * token), medians over REPS runs, and puts decode against the memory roofline: decode reads every
 * weight once per token, so tok/s * weight bytes per token is the bandwidth decode achieved, compared
 * with the machine's read bandwidth measured in the same run (threads streaming a buffer much larger
 * than the caches, best of a few passes). KV-cache reads are left out of the byte count: at these
 * context lengths they are < 1% of the weights. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "commands.h"
#include "model.h" /* the weight table: the CLI links the static library */

static double now_s(void) { return coder_time_now(); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- bytes read per decoded token ------------------------------------------------------------ */

static uint64_t weight_bytes(const weight *w) { return w->t ? (uint64_t)w->rows * w->row_bytes : 0; }

/* Every layer matrix and norm, the final norm and the output matrix, plus one embedding row (the
 * embedding lookup reads a single row; with tied embeddings the output matrix is that table). */
static uint64_t decode_bytes_per_token(const coder_model *m) {
    uint64_t sum = 0;
    for (int32_t l = 0; l < m->hp.n_layers; l++) {
        const layer_weights *lw = &m->layers[l];
        const weight *ws[] = {&lw->attn_norm, &lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->bq, &lw->bk, &lw->bv,
                              &lw->q_norm, &lw->k_norm, &lw->ffn_norm, &lw->w_gate, &lw->w_up, &lw->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) sum += weight_bytes(ws[i]);
    }
    sum += weight_bytes(&m->output_norm) + weight_bytes(&m->output);
    if (m->tok_embd.t) sum += m->tok_embd.row_bytes;
    return sum;
}

/* ---- memory read bandwidth ------------------------------------------------------------------- */

typedef struct bw_job {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} bw_job;

static void *bw_read(void *arg) {
    bw_job *j = arg;
    // four independent accumulators so the loop is bound by loads, not by the add chain
    uint64_t a = 0, b = 0, c = 0, d = 0;
    const uint64_t *p = j->p;
    for (size_t i = 0; i + 4 <= j->n; i += 4) {
        a += p[i];
        b += p[i + 1];
        c += p[i + 2];
        d += p[i + 3];
    }
    j->sum = a + b + c + d;
    return NULL;
}

/* Best-of-`passes` GB/s of `threads` threads each reading its share of `bytes`. */
static double measure_bandwidth(size_t bytes, int threads, int passes, uint64_t *sink) {
    size_t n = bytes / sizeof(uint64_t);
    uint64_t *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, n * sizeof *buf) != 0) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = i; // touch every page before timing
    bw_job jobs[256];
    pthread_t tid[256];
    if (threads > 256) threads = 256;
    double best = 0;
    for (int pass = 0; pass < passes; pass++) {
        size_t per = n / (size_t)threads / 4 * 4;
        double t0 = now_s();
        for (int t = 0; t < threads; t++) {
            jobs[t] = (bw_job){buf + (size_t)t * per, per, 0};
            if (t > 0 && pthread_create(&tid[t], NULL, bw_read, &jobs[t]) != 0) threads = t;
        }
        bw_read(&jobs[0]);
        for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
        double dt = now_s() - t0;
        for (int t = 0; t < threads; t++) *sink += jobs[t].sum;
        double gbs = (double)(per * (size_t)threads * sizeof *buf) / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}

/* ---- the command ----------------------------------------------------------------------------- */

static void usage(void) {
    fputs("usage: coder bench -m MODEL.gguf [-p N] [-n N] [-t N] [-r REPS] [--json]\n"
          "  -p N          prompt tokens to prefill (default 128)\n"
          "  -n N          tokens to decode (default 64)\n"
          "  -t N          threads (default: all cores)\n"
          "  -r REPS       repetitions, the median is reported (default 3)\n"
          "  --bw-mib M    buffer for the bandwidth measurement (default 1024)\n"
          "  --gpu-layers N|auto|all\n"
          "  --depth D     prefill and decode after D tokens of context, evaluated once untimed\n"
          "                (default 1: prefill from an empty context, as llama-bench's pp @ d0)\n"
          "  --no-mmap     read the model into memory instead of mapping it\n"
          "  --json        print one JSON object on stdout\n",
          stderr);
}

/* Deterministic prompt ids spread over the vocabulary (timing does not depend on which ids). */
static void fill_tokens(int32_t *ids, int32_t n, int32_t vocab) {
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int32_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((x >> 33) % (uint64_t)vocab);
    }
}

int cmd_bench(int argc, char **argv) {
    const char *path = getenv("CODER_MODEL");
    int32_t n_prompt = 128, n_gen = 64, threads = 0, reps = 3, bw_mib = 1024;
    int gpu_layers = -1, json = 0, no_mmap = 0;
    int32_t depth = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) { usage(); return EXIT_OK; }
        else if (!strcmp(o, "--json")) { json = 1; continue; }
        else if (!strcmp(o, "--no-mmap")) { no_mmap = 1; continue; }
        if (!v) { fprintf(stderr, "coder bench: unknown option or missing value '%s'\n", o); usage(); return EXIT_USAGE; }
        i++;
        if (!strcmp(o, "-m")) path = v;
        else if (!strcmp(o, "-p")) bad = cli_parse_int(o, v, 1, 1 << 20, &n_prompt);
        else if (!strcmp(o, "-n")) bad = cli_parse_int(o, v, 1, 1 << 20, &n_gen);
        else if (!strcmp(o, "-t")) bad = cli_parse_int(o, v, 1, 4096, &threads);
        else if (!strcmp(o, "-r")) bad = cli_parse_int(o, v, 1, 1000, &reps);
        else if (!strcmp(o, "--bw-mib")) bad = cli_parse_int(o, v, 16, 1 << 20, &bw_mib);
        else if (!strcmp(o, "--gpu-layers")) bad = cli_parse_gpu_layers(o, v, &gpu_layers);
        else if (!strcmp(o, "--depth")) bad = cli_parse_int(o, v, 1, 1 << 22, &depth);
        else { fprintf(stderr, "coder bench: unknown option '%s'\n", o); usage(); return EXIT_USAGE; }
        if (bad) return EXIT_USAGE;
    }
    if (!path || !*path) { fprintf(stderr, "coder bench: no model: pass -m FILE or set CODER_MODEL\n"); return EXIT_USAGE; }
    cli_log_setup(1);

    coder_model_params mp;
    coder_model_params_init(&mp);
    mp.n_gpu_layers = gpu_layers;
    mp.n_threads = threads;
    cli_model_mmap(&mp, no_mmap);
    coder_model *model = NULL;
    coder_session *s = NULL, *run = NULL;
    int32_t *ids = NULL;
    double *pre = NULL, *dec = NULL;
    int rc = EXIT_OK;
    coder_status st = coder_model_load(path, &mp, &model);
    if (st != CODER_OK) {
        fprintf(stderr, "coder bench: cannot load '%s': %s\n", path, coder_last_error());
        return cli_exit_code(st, EXIT_LOAD);
    }
    coder_session_params sp;
    coder_session_params_init(&sp);
    /* The timed prefill and decode both start from a fork of a session holding `ctx_len` tokens
     * (evaluated once, untimed): prefill after depth tokens of context (none for the default
     * depth 1), as llama-bench's pp @ d, and decode after depth. */
    const int32_t ctx_len = depth > 1 ? depth : 0;
    sp.n_ctx = ctx_len + (n_prompt > n_gen + 1 ? n_prompt : n_gen + 1) + 8;
    sp.n_threads = threads;
    if ((st = coder_session_new(model, &sp, &s)) != CODER_OK) {
        fprintf(stderr, "coder bench: cannot create a session: %s\n", coder_last_error());
        rc = cli_exit_code(st, EXIT_RUNTIME);
        goto done;
    }
    int32_t vocab = model->hp.vocab_size;
    int32_t n_ids = ctx_len + (n_prompt > n_gen + 1 ? n_prompt : n_gen + 1);
    ids = malloc((size_t)n_ids * sizeof *ids);
    pre = malloc((size_t)reps * sizeof *pre);
    dec = malloc((size_t)reps * sizeof *dec);
    if (!ids || !pre || !dec) { rc = EXIT_NOMEM; goto done; }
    fill_tokens(ids, n_ids, vocab);

    // one untimed warm-up pass (page faults of the mapped weights, thread start-up)
    if ((st = coder_session_eval(s, ids, (size_t)(n_prompt < 16 ? n_prompt : 16))) != CODER_OK) goto fail;
    if ((st = coder_session_reset(s)) != CODER_OK) goto fail;
    if (ctx_len > 0 && (st = coder_session_eval(s, ids, (size_t)ctx_len)) != CODER_OK) goto fail;
    for (int r = 0; r < reps; r++) {
        if ((st = coder_session_fork(s, &run)) != CODER_OK) goto fail;
        double t0 = now_s();
        if ((st = coder_session_eval(run, ids + ctx_len, (size_t)n_prompt)) != CODER_OK) goto fail;
        pre[r] = now_s() - t0;
        coder_session_free(run);
        run = NULL;
        if ((st = coder_session_fork(s, &run)) != CODER_OK) goto fail;
        if (ctx_len == 0 && (st = coder_session_eval(run, ids, 1)) != CODER_OK) goto fail;   /* depth 1 */
        t0 = now_s();
        for (int32_t i = depth; i < depth + n_gen; i++)
            if ((st = coder_session_eval(run, ids + i, 1)) != CODER_OK) goto fail;
        dec[r] = now_s() - t0;
        coder_session_free(run);
        run = NULL;
    }
    double pre_s = median(pre, reps), dec_s = median(dec, reps);
    int bw_threads = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (bw_threads < 1) bw_threads = 1;
    uint64_t sink = 0;
    double bw = measure_bandwidth((size_t)bw_mib << 20, bw_threads, 5, &sink);
    uint64_t bpt = decode_bytes_per_token(model);
    double pre_tps = n_prompt / pre_s, dec_tps = n_gen / dec_s;
    double dec_gbs = dec_tps * (double)bpt / 1e9;
    double frac = bw > 0 ? dec_gbs / bw : 0;
    coder_model_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    coder_model_get_info(model, &info);

    if (json) {
        printf("{\"model\":");
        cli_json_string(stdout, path, strlen(path));
        printf(",\"arch\":\"%s\",\"weight_bytes\":%llu,\"threads\":%d,\"reps\":%d,"
               "\"prefill_tokens\":%d,\"prefill_ms\":%.3f,\"prefill_tps\":%.2f,"
               "\"depth\":%d,\"gpu_layers\":%d,\"decode_tokens\":%d,\"decode_ms\":%.3f,\"decode_tps\":%.2f,"
               "\"bytes_per_token\":%llu,\"decode_gbs\":%.3f,\"mem_bw_gbs\":%.3f,\"mem_bw_mib\":%d,"
               "\"roofline_fraction\":%.4f}\n",
               info.arch, (unsigned long long)info.weight_bytes, bw_threads, (int)reps, (int)n_prompt,
               pre_s * 1e3, pre_tps, (int)depth, (int)info.gpu_layers, (int)n_gen, dec_s * 1e3, dec_tps, (unsigned long long)bpt, dec_gbs, bw,
               (int)bw_mib, frac);
    } else {
        printf("model      %s (%s, %.1f MiB of weights)\n", path, info.arch, (double)info.weight_bytes / (1 << 20));
        printf("prefill    %d tokens after %d of context: %.2f ms, %.1f tok/s (median of %d)\n", (int)n_prompt, (int)ctx_len,
               pre_s * 1e3, pre_tps, (int)reps);
        printf("decode     %d tokens after %d of context (%d layers on the GPU): %.2f ms, %.1f tok/s (median of %d)\n", (int)n_gen, (int)depth, (int)info.gpu_layers, dec_s * 1e3, dec_tps, (int)reps);
        printf("roofline   %.2f MiB read per token -> %.2f GB/s; memory read %.2f GB/s (%d threads, %d MiB)"
               " -> %.1f%% of roofline\n",
               (double)bpt / (1 << 20), dec_gbs, bw, bw_threads, (int)bw_mib, 100 * frac);
    }
    fflush(stdout);
    if (sink == 42) fprintf(stderr, " "); // keeps the reads observable
    goto done;
fail:
    fprintf(stderr, "coder bench: %s\n", coder_last_error());
    rc = cli_exit_code(st, EXIT_RUNTIME);
done:
    free(ids);
    free(pre);
    free(dec);
    coder_session_free(run);
    coder_session_free(s);
    coder_model_free(model);
    return rc;
}
