/* cmd_eval.c - `coder eval -m FILE [--no-special] [-t N] [--kv f16|f32] [-b N] -o OUT.f32`
 * Reads the prompt from stdin, tokenizes it as `coder tokenize` does (ADD_SPECIAL | PARSE_SPECIAL
 * unless --no-special), evaluates it in one session and writes the logits of the last position as
 * vocab_size float32 little-endian values: the format of refdata's *.last.f32 files, so a run can
 * be compared with llama.cpp directly. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"

static void eval_usage(void) {
    fprintf(stderr, "usage: coder eval -m MODEL.gguf -o OUT.f32 [--no-special] [-t THREADS] [--kv f16|f32] "
                    "[-b BATCH] [-v] < prompt.txt\n");
}

int cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *out_path = NULL;
    unsigned flags = CODER_TOKENIZE_ADD_SPECIAL | CODER_TOKENIZE_PARSE_SPECIAL;
    int32_t n_threads = 0, n_batch = 512, kv = CODER_KV_F16;
    int verbosity = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-special")) flags = 0;
        else if (!strcmp(a, "-v")) verbosity = 2;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            eval_usage();
            return EXIT_OK;
        } else if (!v) {
            fprintf(stderr, "coder eval: unknown option or missing value: %s\n", a);
            eval_usage();
            return EXIT_USAGE;
        } else if (!strcmp(a, "-m")) model_path = argv[++i];
        else if (!strcmp(a, "-o")) out_path = argv[++i];
        else if (!strcmp(a, "-t")) {
            if (cli_parse_int("-t", argv[++i], 0, 1024, &n_threads)) return EXIT_USAGE;
        } else if (!strcmp(a, "-b")) {
            if (cli_parse_int("-b", argv[++i], 1, 1 << 20, &n_batch)) return EXIT_USAGE;
        } else if (!strcmp(a, "--kv")) {
            i++;
            if (!strcmp(argv[i], "f16")) kv = CODER_KV_F16;
            else if (!strcmp(argv[i], "f32")) kv = CODER_KV_F32;
            else {
                fprintf(stderr, "coder eval: --kv: '%s' is not f16 or f32\n", argv[i]);
                return EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "coder eval: unknown option %s\n", a);
            eval_usage();
            return EXIT_USAGE;
        }
    }
    if (!model_path || !out_path) {
        fprintf(stderr, "coder eval: -m MODEL and -o OUT are required\n");
        eval_usage();
        return EXIT_USAGE;
    }
    cli_log_setup(verbosity);

    cli_buf text = {0};
    if (cli_read_file("-", &text)) {
        fprintf(stderr, "coder eval: reading stdin: %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    int rc = EXIT_RUNTIME;
    coder_model *model = NULL;
    coder_session *s = NULL;
    int32_t *tokens = NULL;
    FILE *out = NULL;
    coder_model_params mp;
    coder_model_params_init(&mp);
    mp.n_gpu_layers = 0;
    coder_status st = coder_model_load(model_path, &mp, &model);
    if (st != CODER_OK) {
        fprintf(stderr, "coder eval: %s: %s\n", model_path, coder_last_error());
        rc = cli_exit_code(st, EXIT_LOAD);
        goto done;
    }
    size_t n = 0;
    st = coder_tokenize(model, text.data ? text.data : "", text.len, flags, NULL, 0, &n);
    if (st != CODER_OK && st != CODER_ERR_BUFFER_TOO_SMALL) goto fail;
    if (n == 0) {
        fprintf(stderr, "coder eval: the prompt has no tokens\n");
        rc = EXIT_USAGE;
        goto done;
    }
    tokens = malloc(n * sizeof *tokens);
    if (!tokens) {
        rc = EXIT_NOMEM;
        goto done;
    }
    if ((st = coder_tokenize(model, text.data, text.len, flags, tokens, n, &n)) != CODER_OK) goto fail;
    if (n > INT32_MAX) {
        fprintf(stderr, "coder eval: %zu tokens is too many\n", n);
        rc = EXIT_CONTEXT;
        goto done;
    }
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = (int32_t)n;   /* exactly the prompt: the smallest KV cache */
    sp.n_batch = n_batch;
    sp.n_threads = n_threads;
    sp.kv_type = kv;
    if ((st = coder_session_new(model, &sp, &s)) != CODER_OK) goto fail;
    if ((st = coder_session_eval(s, tokens, n)) != CODER_OK) goto fail;
    const float *logits;
    int32_t n_vocab = 0;
    if ((st = coder_session_logits(s, &logits, &n_vocab)) != CODER_OK) goto fail;
    out = fopen(out_path, "wb");
    /* float32 little-endian: the in-memory layout on every platform this library supports */
    if (!out || fwrite(logits, sizeof(float), (size_t)n_vocab, out) != (size_t)n_vocab || fclose(out) != 0) {
        fprintf(stderr, "coder eval: writing %s: %s\n", out_path, strerror(errno));
        out = NULL;
        goto done;
    }
    out = NULL;
    if (verbosity >= 2) fprintf(stderr, "coder eval: %zu tokens, %d logits written to %s\n", n, (int)n_vocab, out_path);
    rc = EXIT_OK;
    goto done;
fail:
    fprintf(stderr, "coder eval: %s\n", coder_last_error());
    rc = cli_exit_code(st, EXIT_RUNTIME);
done:
    if (out) fclose(out);
    coder_session_free(s);
    coder_model_free(model);
    free(tokens);
    free(text.data);
    return rc;
}
