/* cmd_tokenize.c - `coder tokenize -m FILE [--no-special]`
 * Reads all of stdin as exact bytes and prints the token ids on one line, space separated.
 * Default flags ADD_SPECIAL | PARSE_SPECIAL (BOS where the vocabulary adds one, control-token
 * text becomes control tokens); --no-special uses neither. Loads the model with vocab_only = 1,
 * so vocabulary-only GGUF files work too. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"

static void tokenize_usage(void) {
    fprintf(stderr, "usage: coder tokenize -m MODEL.gguf [--no-special] [-v] < text\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL;
    unsigned flags = CODER_TOKENIZE_ADD_SPECIAL | CODER_TOKENIZE_PARSE_SPECIAL;
    int verbosity = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-special")) flags = 0;
        else if (!strcmp(a, "-v")) verbosity = 2;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            tokenize_usage();
            return EXIT_OK;
        } else if (!strcmp(a, "-m") && i + 1 < argc) model_path = argv[++i];
        else {
            fprintf(stderr, "coder tokenize: unknown option or missing value: %s\n", a);
            tokenize_usage();
            return EXIT_USAGE;
        }
    }
    if (!model_path) {
        fprintf(stderr, "coder tokenize: -m MODEL is required\n");
        tokenize_usage();
        return EXIT_USAGE;
    }
    cli_log_setup(verbosity);

    cli_buf text = {0};
    if (cli_read_file("-", &text)) {
        fprintf(stderr, "coder tokenize: reading stdin: %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    int rc = EXIT_RUNTIME;
    coder_model *model = NULL;
    int32_t *tokens = NULL;
    coder_model_params mp;
    coder_model_params_init(&mp);
    mp.vocab_only = 1;
    mp.n_gpu_layers = 0;
    coder_status st = coder_model_load(model_path, &mp, &model);
    if (st != CODER_OK) {
        fprintf(stderr, "coder tokenize: %s: %s\n", model_path, coder_last_error());
        rc = cli_exit_code(st, EXIT_LOAD);
        goto done;
    }
    /* first call sizes the result, the second fills it */
    size_t n = 0;
    st = coder_tokenize(model, text.data ? text.data : "", text.len, flags, NULL, 0, &n);
    if (st == CODER_ERR_BUFFER_TOO_SMALL) {
        if (!(tokens = malloc((n ? n : 1) * sizeof *tokens))) {
            fprintf(stderr, "coder tokenize: out of memory for %zu tokens\n", n);
            rc = EXIT_NOMEM;
            goto done;
        }
        st = coder_tokenize(model, text.data, text.len, flags, tokens, n, &n);
    }
    if (st != CODER_OK) {
        fprintf(stderr, "coder tokenize: %s\n", coder_last_error());
        rc = cli_exit_code(st, EXIT_RUNTIME);
        goto done;
    }
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", tokens[i]);
    printf("\n");
    rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
done:
    free(tokens);
    free(text.data);
    coder_model_free(model);
    return rc;
}
