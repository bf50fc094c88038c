/* fuzz_common.h - shared by the libFuzzer targets: loading a refdata vocabulary once, and the
 * oracle every target applies to every call (a failure is a negative status with a message). */
#ifndef CODER_FUZZ_COMMON_H
#define CODER_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coderinfer.h"

/* A status is either CODER_OK or a known error code with a non-empty message; anything else is a
 * bug, reported as a crash so libFuzzer keeps the input. */
static inline void fuzz_check_status(coder_status st, const char *call) {
    if (st == CODER_OK) return;
    if (st > 0 || st < CODER_ERR_INTERNAL || st == CODER_ERR_INTERNAL || !coder_last_error()[0]) {
        fprintf(stderr, "fuzz: %s returned %d with message '%s'\n", call, (int)st, coder_last_error());
        abort();
    }
}

/* Loads refdata/vocab/ggml-vocab-NAME.gguf vocabulary-only ($CODER_REFDATA or ../shared/refdata). */
static inline coder_model *fuzz_load_vocab(const char *name) {
    const char *d = getenv("CODER_REFDATA");
    if (!d || !*d) d = "../shared/refdata";
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf", d, name);
    coder_model_params p;
    coder_model_params_init(&p);
    p.vocab_only = 1;
    coder_model *m = NULL;
    if (coder_model_load(path, &p, &m) != CODER_OK) {
        fprintf(stderr, "fuzz: cannot load %s (%s); set CODER_REFDATA\n", path, coder_last_error());
        exit(1);
    }
    return m;
}

#endif
