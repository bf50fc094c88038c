/* refmodel.h - loading a model of the reference data in a test (include after test.h).
 * NULL, with the reason on stderr, when the file is absent or does not load: tests SKIP then. */
#ifndef CODER_TEST_REFMODEL_H
#define CODER_TEST_REFMODEL_H

#include "coderinfer.h"
#include "test.h"

/* refdata/models/<file> with n_gpu_layers (0: the CPU; -1: the library's default). */
static inline coder_model *test_load_refmodel(const char *file, int n_gpu_layers) {
    const char *d = test_refdata();
    if (!d) return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/models/%s", d, file);
    coder_model_params mp;
    coder_model_params_init(&mp);
    mp.n_gpu_layers = n_gpu_layers;
    coder_model *m = NULL;
    if (coder_model_load(path, &mp, &m) != CODER_OK) fprintf(stderr, "load %s: %s\n", path, coder_last_error());
    return m;
}

#endif
