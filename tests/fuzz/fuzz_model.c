/* fuzz_model.c - libFuzzer target for the model loader: the input is a GGUF file, loaded through
 * the public coder_model_load from a memfd (/proc/self/fd/N) three ways: vocab_only, full in read
 * mode with weight validation, full mapped. A model that loads must then work: a session on it
 * evaluates two tokens (the first and last id) and tokenizes/detokenizes a short text. So shapes
 * the loader accepts but the engine cannot compute are found here. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* memfd_create */
#endif
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"

static int fd = -1;
static char path[64];

static void use_model(coder_model *m, int full) {
    coder_model_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    fuzz_check_status(coder_model_get_info(m, &info), "coder_model_get_info");
    int32_t ids[64];
    size_t n = 0;
    static const char text[] = "def f(x):\n    return x  # \xc3\xa9<|im_end|>";
    coder_status st = coder_tokenize(m, text, sizeof text - 1, CODER_TOKENIZE_ADD_SPECIAL | CODER_TOKENIZE_PARSE_SPECIAL,
                                     ids, 64, &n);
    if (st != CODER_ERR_BUFFER_TOO_SMALL) fuzz_check_status(st, "coder_tokenize");
    if (st == CODER_OK) {
        char buf[256];
        size_t len = 0;
        st = coder_detokenize(m, ids, n, CODER_DETOKENIZE_SPECIAL, buf, sizeof buf, &len);
        if (st != CODER_ERR_BUFFER_TOO_SMALL) fuzz_check_status(st, "coder_detokenize");
    }
    /* evaluate only small models: a fuzzed file may declare big (valid) shapes */
    if (!full || info.weight_bytes > (4u << 20) || info.vocab_size <= 0 || info.dim > 4096) return;
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = 8;
    sp.n_batch = 2;
    sp.n_threads = 1;
    sp.kv_type = CODER_KV_F32;
    coder_session *s = NULL;
    st = coder_session_new(m, &sp, &s);
    fuzz_check_status(st, "coder_session_new");
    if (st != CODER_OK) return;
    int32_t two[2] = {0, info.vocab_size - 1};
    st = coder_session_eval(s, two, 2);
    fuzz_check_status(st, "coder_session_eval");
    coder_session_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fd < 0) {
        fd = memfd_create("fuzz_model", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) abort();
    for (int mode = 0; mode < 3; mode++) {
        coder_model_params p;
        coder_model_params_init(&p);
        p.n_gpu_layers = 0;
        p.n_threads = 1;
        p.vocab_only = mode == 0;
        p.use_mmap = mode == 2;
        p.validate_weights = mode == 1;
        coder_model *m = (coder_model *)0x1;
        coder_status st = coder_model_load(path, &p, &m);
        fuzz_check_status(st, "coder_model_load");
        if (st != CODER_OK) {
            if (m != NULL) abort();
            if (mode == 0) return 0;   /* no vocabulary: the full loads need one too */
            continue;
        }
        use_model(m, mode != 0);
        if (coder_model_free(m) != CODER_OK) abort();
    }
    return 0;
}
