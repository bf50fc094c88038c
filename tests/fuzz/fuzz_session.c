/* fuzz_session.c - libFuzzer target for the session-state loader (coder_session_load).
 *
 * The loader checks a whole-file checksum before it looks at anything else, so raw mutations would
 * almost never get past that check. The first input byte therefore selects how the rest becomes a
 * file:
 *   bits 0-1  the session's KV type: 0 F32, 1 F16, 2 Q8_0, 3 F16
 *   bits 2-3  0: the bytes as they are
 *             1: the bytes with the trailing checksum recomputed (reaches the field checks)
 *             2, 3: the bytes are a 96-byte header and an uncompressed payload; the target
 *                compresses the payload into a zstd frame, writes its size at offset 80 and appends
 *                the checksum (reaches the payload checks and the KV load)
 *   bit 4     with 2/3: also write the payload's true size at offset 72
 * A load that succeeds must leave a usable session: one more token evaluates (a non-finite KV
 * value may give CODER_ERR_NUMERIC, a clean status). A load that fails must leave the session as
 * it was (n_past unchanged).
 *
 * The model is the mini qwen2 Q8_0 file that make_seeds writes (make_corpus.sh copies it to
 * build/fuzz/session-model.gguf; FUZZ_SESSION_MODEL overrides the path); seeds are states saved
 * from it with each KV type, in each of the three forms. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* memfd_create */
#endif
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

#include "fuzz_common.h"
#include "session.h"   /* session_state_checksum */

#define HEADER 96

static int fd = -1;
static char path[64];
static coder_model *model;
static coder_session *sessions[3];   /* F32, F16, Q8_0 */
static unsigned char *file;
static size_t file_cap;

static void init(void) {
    const char *mp = getenv("FUZZ_SESSION_MODEL");
    if (!mp || !*mp) mp = "build/fuzz/session-model.gguf";
    coder_model_params p;
    coder_model_params_init(&p);
    p.n_gpu_layers = 0;
    if (coder_model_load(mp, &p, &model) != CODER_OK) {
        fprintf(stderr, "fuzz_session: cannot load %s (%s); run make fuzz-corpus or set FUZZ_SESSION_MODEL\n", mp,
                coder_last_error());
        exit(1);
    }
    static const int32_t kv[3] = {CODER_KV_F32, CODER_KV_F16, CODER_KV_Q8_0};
    for (int i = 0; i < 3; i++) {
        coder_session_params sp;
        coder_session_params_init(&sp);
        sp.n_ctx = 64;
        sp.n_batch = 16;
        sp.n_threads = 1;
        sp.kv_type = kv[i];
        if (coder_session_new(model, &sp, &sessions[i]) != CODER_OK) {
            fprintf(stderr, "fuzz_session: session: %s\n", coder_last_error());
            exit(1);
        }
    }
    fd = memfd_create("fuzz_session", 0);
    if (fd < 0) abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
}

static unsigned char *file_room(size_t n) {
    if (n > file_cap) {
        free(file);
        file = malloc(n);
        if (!file) abort();
        file_cap = n;
    }
    return file;
}

static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Builds the file image the selector asks for; returns its size. */
static size_t make_file(unsigned sel, const uint8_t *d, size_t n) {
    const unsigned form = (sel >> 2) & 3;
    if (form == 0 || n < HEADER) {
        memcpy(file_room(n ? n : 1), d, n);
        return n;
    }
    if (form == 1) {
        memcpy(file_room(n), d, n);
        if (n >= HEADER + 8) put64(file + n - 8, session_state_checksum(file, n - 8));
        return n;
    }
    const size_t raw = n - HEADER, bound = ZSTD_compressBound(raw);
    unsigned char *out = file_room(HEADER + bound + 8);
    memcpy(out, d, HEADER);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    if (!cc) abort();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    size_t comp = ZSTD_compress2(cc, out + HEADER, bound, d + HEADER, raw);
    ZSTD_freeCCtx(cc);
    if (ZSTD_isError(comp)) abort();
    put64(out + 80, comp);
    if (sel & 16) put64(out + 72, raw);
    put64(out + HEADER + comp, session_state_checksum(out, HEADER + comp));
    return HEADER + comp + 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!model) init();
    if (size < 1) return 0;
    const unsigned sel = data[0];
    const size_t n = make_file(sel, data + 1, size - 1);
    if (ftruncate(fd, 0) != 0 || (n && pwrite(fd, file, n, 0) != (ssize_t)n)) abort();
    const int which = (sel & 3) == 3 ? 1 : (int)(sel & 3);
    coder_session *s = sessions[which];
    const int32_t before = coder_session_n_past(s);
    coder_status st = coder_session_load(s, path);
    fuzz_check_status(st, "coder_session_load");
    if (st != CODER_OK) {
        if (coder_session_n_past(s) != before) {
            fprintf(stderr, "fuzz: a failed load changed n_past %d -> %d\n", (int)before, (int)coder_session_n_past(s));
            abort();
        }
        return 0;
    }
    if (coder_session_n_past(s) < coder_session_n_ctx(s)) {
        const int32_t tok = 97;
        st = coder_session_eval(s, &tok, 1);
        if (st != CODER_ERR_NUMERIC) fuzz_check_status(st, "coder_session_eval after load");
    }
    return 0;
}
