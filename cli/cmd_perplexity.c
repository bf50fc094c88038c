/* cmd_perplexity.c - `coder perplexity -m FILE -f TEXT [-c CTX]`: perplexity of a model over a text.
 *
 * Chunked the way llama.cpp's perplexity tool does it, so figures are comparable: the text is
 * tokenized once (with BOS where the model adds one), cut into floor(n_tokens / CTX) chunks of CTX
 * tokens, each chunk is evaluated from an empty cache with its first token replaced by BOS (when
 * the model has one), and only the second half of each chunk is scored: the logits at positions
 * CTX/2 .. CTX-2 predict the tokens at CTX/2+1 .. CTX-1, so every scored token sees at least CTX/2
 * tokens of context. PPL = exp(mean negative log-likelihood); the +/- is one standard error
 * propagated from the per-token NLL spread. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_util.h"
#include "commands.h"

static void ppl_usage(void) {
    fprintf(stderr, "usage: coder perplexity -m MODEL.gguf -f TEXT.txt [-c CTX (512)] [-b BATCH (128)] "
                    "[--chunks N] [-t THREADS] [--kv f16|f32|q8_0|q8_0-q4_0] [--json] [-q|-v]\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* -log softmax(logits)[target], in double with the max subtracted. */
static double token_nll(const float *logits, int32_t n_vocab, int32_t target) {
    float mx = logits[0];
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    return log(sum) - ((double)logits[target] - mx);
}

typedef struct ppl_opts {
    int32_t n_ctx, n_batch, n_threads, kv, max_chunks;
    int json, verbosity;
} ppl_opts;

typedef struct ppl_sums {
    double nll, nll2;
    size_t count;
} ppl_sums;

/* Evaluates one chunk of o->n_ctx tokens in session s and adds the NLL of its scored half. */
static coder_status ppl_chunk(coder_session *s, const int32_t *tok, int32_t bos, const ppl_opts *o, int32_t *batch,
                              float *logits, int32_t n_vocab, ppl_sums *sum) {
    coder_status st = coder_session_reset(s);
    if (st != CODER_OK) return st;
    const int32_t first = o->n_ctx / 2;
    for (int32_t p = 0; p < o->n_ctx && st == CODER_OK; p += o->n_batch) {
        int32_t nb = o->n_ctx - p < o->n_batch ? o->n_ctx - p : o->n_batch;
        memcpy(batch, tok + p, (size_t)nb * sizeof *batch);
        if (p == 0 && bos >= 0) batch[0] = bos;
        if (p + nb <= first) {   /* nothing scored in this batch: only the last logits are needed */
            st = coder_session_eval(s, batch, (size_t)nb);
            continue;
        }
        st = coder_session_eval_all(s, batch, (size_t)nb, logits, (size_t)nb * (size_t)n_vocab);
        /* logits row i predicts the token at position p+i+1 */
        for (int32_t i = 0; st == CODER_OK && i < nb; i++) {
            int32_t pos = p + i;
            if (pos < first || pos >= o->n_ctx - 1) continue;
            double nll = token_nll(logits + (size_t)i * (size_t)n_vocab, n_vocab, tok[pos + 1]);
            sum->nll += nll;
            sum->nll2 += nll * nll;
            sum->count++;
        }
    }
    return st;
}

static int ppl_parse(int argc, char **argv, ppl_opts *o, const char **model_path, const char **text_path) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "-q")) o->verbosity = 0;
        else if (!strcmp(a, "-v")) o->verbosity = 2;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            ppl_usage();
            return -1;
        } else if (!v) {
            fprintf(stderr, "coder perplexity: unknown option or missing value: %s\n", a);
            return 1;
        } else if (!strcmp(a, "-m")) *model_path = argv[++i];
        else if (!strcmp(a, "-f")) *text_path = argv[++i];
        else if (!strcmp(a, "-c")) {
            if (cli_parse_int("-c", argv[++i], 4, 1 << 20, &o->n_ctx)) return 1;
        } else if (!strcmp(a, "-b")) {
            if (cli_parse_int("-b", argv[++i], 1, 1 << 20, &o->n_batch)) return 1;
        } else if (!strcmp(a, "--chunks")) {
            if (cli_parse_int("--chunks", argv[++i], 1, INT32_MAX, &o->max_chunks)) return 1;
        } else if (!strcmp(a, "-t")) {
            if (cli_parse_int("-t", argv[++i], 0, 1024, &o->n_threads)) return 1;
        } else if (!strcmp(a, "--kv")) {
            i++;
            if (!strcmp(argv[i], "f16")) o->kv = CODER_KV_F16;
            else if (!strcmp(argv[i], "f32")) o->kv = CODER_KV_F32;
            else if (!strcmp(argv[i], "q8_0")) o->kv = CODER_KV_Q8_0;
            else if (!strcmp(argv[i], "q8_0-q4_0")) o->kv = CODER_KV_Q8_0_Q4_0;
            else {
                fprintf(stderr, "coder perplexity: --kv: '%s' is not f16, f32, q8_0 or q8_0-q4_0\n", argv[i]);
                return 1;
            }
        } else {
            fprintf(stderr, "coder perplexity: unknown option %s\n", a);
            return 1;
        }
    }
    if (!*model_path || !*text_path) {
        fprintf(stderr, "coder perplexity: -m MODEL and -f TEXT are required\n");
        return 1;
    }
    return 0;
}

int cmd_perplexity(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL;
    ppl_opts o = {.n_ctx = 512, .n_batch = 128, .kv = CODER_KV_F16, .verbosity = 1};
    int pr = ppl_parse(argc, argv, &o, &model_path, &text_path);
    if (pr) {
        if (pr > 0) ppl_usage();
        return pr < 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (o.n_batch > o.n_ctx) o.n_batch = o.n_ctx;
    cli_log_setup(o.verbosity);

    cli_buf text = {0};
    if (cli_read_file(text_path, &text)) {
        fprintf(stderr, "coder perplexity: reading %s: %s\n", text_path, strerror(errno));
        return EXIT_RUNTIME;
    }
    int rc = EXIT_RUNTIME;
    coder_model *model = NULL;
    coder_session *s = NULL;
    int32_t *tokens = NULL;
    float *logits = NULL;
    int32_t *batch = NULL;
    double t0 = now_s();
    coder_model_params mp;
    coder_model_params_init(&mp);
    coder_status st = coder_model_load(model_path, &mp, &model);
    if (st != CODER_OK) {
        fprintf(stderr, "coder perplexity: %s: %s\n", model_path, coder_last_error());
        rc = cli_exit_code(st, EXIT_LOAD);
        goto done;
    }
    coder_model_info info = {.size = sizeof info};
    if ((st = coder_model_get_info(model, &info)) != CODER_OK) goto fail;
    /* Plain text: special-token text in the file is scored as text, as llama.cpp does. */
    size_t n = 0;
    st = coder_tokenize(model, text.data ? text.data : "", text.len, CODER_TOKENIZE_ADD_SPECIAL, NULL, 0, &n);
    if (st != CODER_OK && st != CODER_ERR_BUFFER_TOO_SMALL) goto fail;
    if (!(tokens = malloc((n ? n : 1) * sizeof *tokens))) {
        rc = EXIT_NOMEM;
        goto done;
    }
    if ((st = coder_tokenize(model, text.data ? text.data : "", text.len, CODER_TOKENIZE_ADD_SPECIAL, tokens, n, &n)) !=
        CODER_OK)
        goto fail;
    size_t n_chunks = n / (size_t)o.n_ctx;
    if (n_chunks == 0) {
        fprintf(stderr, "coder perplexity: %s has %zu tokens; a context of %d needs at least %d (use a smaller -c)\n",
                text_path, n, (int)o.n_ctx, (int)o.n_ctx);
        rc = EXIT_USAGE;
        goto done;
    }
    if (o.max_chunks > 0 && n_chunks > (size_t)o.max_chunks) n_chunks = (size_t)o.max_chunks;
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = o.n_ctx;
    sp.n_batch = o.n_batch;
    sp.n_threads = o.n_threads;
    sp.kv_type = o.kv;
    if ((st = coder_session_new(model, &sp, &s)) != CODER_OK) goto fail;
    logits = malloc((size_t)o.n_batch * (size_t)info.vocab_size * sizeof *logits);
    batch = malloc((size_t)o.n_batch * sizeof *batch);
    if (!logits || !batch) {
        rc = EXIT_NOMEM;
        goto done;
    }
    if (o.verbosity >= 1)
        fprintf(stderr, "coder perplexity: %zu tokens, %zu chunks of %d, scoring the second half of each\n", n,
                n_chunks, (int)o.n_ctx);
    double t1 = now_s();
    ppl_sums sum = {0};
    for (size_t c = 0; c < n_chunks; c++) {
        st = ppl_chunk(s, tokens + c * (size_t)o.n_ctx, info.add_bos ? info.bos_token : -1, &o, batch, logits,
                       info.vocab_size, &sum);
        if (st != CODER_OK) goto fail;
        if (!o.json) {
            printf("[%zu]%.4f%s", c + 1, exp(sum.nll / (double)sum.count), c + 1 == n_chunks ? "\n" : ",");
            fflush(stdout);
        }
    }
    double t2 = now_s();
    double mean = sum.nll / (double)sum.count;
    double var = sum.count > 1 ? (sum.nll2 / (double)sum.count - mean * mean) / (double)(sum.count - 1) : 0;
    double ppl = exp(mean), err = ppl * sqrt(var > 0 ? var : 0);
    size_t evaluated = n_chunks * (size_t)o.n_ctx;
    if (o.json)
        printf("{\"ppl\": %.6f, \"ppl_err\": %.6f, \"tokens_text\": %zu, \"tokens_scored\": %zu, \"chunks\": %zu, "
               "\"ctx\": %d, \"seconds\": %.3f, \"load_seconds\": %.3f, \"tok_per_s\": %.2f}\n",
               ppl, err, n, sum.count, n_chunks, (int)o.n_ctx, t2 - t1, t1 - t0, (double)evaluated / (t2 - t1));
    else
        printf("PPL = %.4f +/- %.4f over %zu scored tokens (%zu chunks of %d; text %zu tokens); "
               "%.2f s, %.1f tok/s evaluated (load %.2f s)\n",
               ppl, err, sum.count, n_chunks, (int)o.n_ctx, n, t2 - t1, (double)evaluated / (t2 - t1), t1 - t0);
    rc = EXIT_OK;
    goto done;
fail:
    fprintf(stderr, "coder perplexity: %s\n", coder_last_error());
    rc = cli_exit_code(st, EXIT_RUNTIME);
done:
    coder_session_free(s);
    coder_model_free(model);
    free(logits);
    free(batch);
    free(tokens);
    free(text.data);
    return rc;
}
