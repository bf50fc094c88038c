/* session_state.c - session state files (coder_session_save / coder_session_load) and forks
 * (coder_session_fork). Both move raw KV rows through the backend's kv_read / kv_load ops.
 *
 * File layout (little-endian; format version 1):
 *   off  size
 *     0     8  magic "CODERKV\0"
 *     8     4  u32 format version (1)
 *    12     4  u32 header bytes (96)
 *    16     8  u64 model hash: state_hash64 of the GGUF bytes [0, data offset) (metadata + infos)
 *    24    16  arch name, NUL-padded
 *    40    16  i32 n_layers, n_kv_heads, head_dim, vocab_size
 *    56     4  i32 kv_type (coder_kv_type)
 *    60     4  i32 n_ctx of the writing session (informational)
 *    64     4  i32 n_tokens (positions saved)
 *    68     4  u32 flags (bit 0: logits present)
 *    72     8  u64 raw bytes: the uncompressed payload
 *    80     8  u64 compressed bytes
 *    88     8  reserved (0)
 *    96     C  one zstd frame (content size and XXH64 content checksum included) of the payload:
 *              i32 tokens[n_tokens]; f32 logits[vocab] if flag 0; per layer: K rows then V rows,
 *              n_tokens rows each of kv_row_bytes (K) / kv_v_row_bytes (V) (kv_type, n_kv_heads*head_dim)
 *  96+C     8  u64 state_hash64 of bytes [0, 96+C)
 *
 * Loading reads and checks everything (sizes against the file size and the model, checksum,
 * decompressed size) into a private buffer before the session is touched. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY   /* ZSTD_customMem: zstd allocates through coder_malloc too */
#include <zstd.h>
#include <zstd_errors.h>

#include "backend.h"
#include "kv_cache.h"
#include "session.h"

#define STATE_MAGIC "CODERKV"          /* 8 bytes with the NUL */
#define STATE_VERSION 1u
#define STATE_HEADER 96u
#define STATE_FLAG_LOGITS 1u
#define STATE_ZSTD_LEVEL 1             /* fast: the cache is written on the critical path of a CLI call */
#define STATE_COPY_ROWS 256            /* positions per chunk in a fork */

/* zstd's own allocations go through the library's wrappers (failure injection, accounting). */
static void *state_zalloc(void *opaque, size_t n) {
    (void)opaque;
    return coder_malloc(n);
}
static void state_zfree(void *opaque, void *p) {
    (void)opaque;
    coder_mfree(p);
}
static const ZSTD_customMem state_zmem = {state_zalloc, state_zfree, NULL};

/* ---- hashing: 64-bit, 8 bytes a step (murmur-style mix); integrity, not security -------------- */

static uint64_t state_mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static uint64_t state_hash64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    const uint64_t k1 = 0x87c37b91114253d5ull, k2 = 0x4cf5ad432745937full;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w *= k1;
        w = (w << 31) | (w >> 33);
        h ^= w * k2;
        h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
    }
    uint64_t t = 0;
    for (size_t j = 0; i + j < n; j++) t |= (uint64_t)p[i + j] << (8 * j);
    h ^= t * k1;
    return state_mix(h ^ (uint64_t)n);
}

uint64_t session_state_checksum(const void *data, size_t n) { return state_hash64(0, data, n); }

/* The model's identity: the hash of its metadata and tensor infos (every byte before the data). */
static uint64_t state_model_hash(const coder_model *m) {
    return state_hash64(0x636f646572ull, gguf_file_bytes(m->file), (size_t)gguf_data_offset(m->file));
}

/* ---- little-endian fields ------------------------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A backend without the raw KV row ops: say so instead of calling NULL. */
static coder_status state_backend_ok(const coder_session *s, const char *what) {
    for (int i = 0; i < s->stages.n; i++) {
        const backend *b = s->stages.b[i];
        if (!b->ops->kv_read || !b->ops->kv_load)
            return coder_fail(CODER_ERR_UNSUPPORTED, "%s: the %s backend cannot copy its KV cache", what, b->ops->name);
    }
    return CODER_OK;
}

/* The raw KV rows of `layer`, positions pos0.., through the backend that caches it. */
static coder_status state_kv_read(const coder_session *s, int layer, int32_t pos0, int n, void *k, void *v) {
    backend *b = backend_stage_of_layer(&s->stages, layer);
    return b->ops->kv_read(b, layer, pos0, n, k, v);
}
static coder_status state_kv_load(coder_session *s, int layer, int32_t pos0, int n, const void *k, const void *v) {
    backend *b = backend_stage_of_layer(&s->stages, layer);
    return b->ops->kv_load(b, layer, pos0, n, k, v);
}

/* The payload size for n tokens, or CODER_ERR_FORMAT/LIMIT on overflow. */
static coder_status state_raw_bytes(const coder_session *s, int32_t n, bool logits, uint64_t *out) {
    const model_hparams *hp = &s->model->hp;
    const int64_t w = (int64_t)hp->n_kv_heads * hp->head_dim;
    uint64_t row = kv_row_bytes(s->kv_type, w) + kv_v_row_bytes(s->kv_type, w), kv, total;
    if (ck_mul(row, (uint64_t)n, &kv) || ck_mul(kv, (uint64_t)hp->n_layers, &kv) ||
        ck_add(kv, (uint64_t)n * 4u, &total) || ck_add(total, logits ? (uint64_t)hp->vocab_size * 4u : 0, &total) ||
        total > SIZE_MAX / 2)
        return coder_fail(CODER_ERR_LIMIT, "session state: %d positions overflow the payload size", (int)n);
    *out = total;
    return CODER_OK;
}

/* ---- fork ----------------------------------------------------------------------------------- */

CODER_EXPORT coder_status coder_session_fork(coder_session *src, coder_session **out) {
    if (!out) return coder_fail(CODER_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!src) return coder_fail(CODER_ERR_INVALID_ARG, "src is NULL");
    TRY(state_backend_ok(src, "fork"));
    if (!session_enter(src)) return CODER_ERR_BUSY;
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = src->n_ctx;
    sp.n_batch = src->n_batch;
    sp.n_threads = src->n_threads;
    sp.kv_type = src->kv_type;
    coder_session *dst = NULL;
    void *buf = NULL;
    coder_status st = coder_session_new(src->model, &sp, &dst);
    if (st != CODER_OK) goto done;
    const model_hparams *hp = &src->model->hp;
    const int64_t w = (int64_t)hp->n_kv_heads * hp->head_dim;
    const size_t krow = (size_t)kv_row_bytes(src->kv_type, w), row = krow + (size_t)kv_v_row_bytes(src->kv_type, w);
    const int chunk = src->n_past < STATE_COPY_ROWS ? src->n_past : STATE_COPY_ROWS;
    if (chunk > 0 && !(buf = coder_malloc((size_t)chunk * row))) {
        st = coder_fail(CODER_ERR_NOMEM, "fork: copy buffer of %zu bytes", (size_t)chunk * row);
        goto done;
    }
    for (int l = 0; l < hp->n_layers && st == CODER_OK; l++)
        for (int32_t p = 0; p < src->n_past && st == CODER_OK; p += chunk) {
            int n = src->n_past - p < chunk ? src->n_past - p : chunk;
            char *k = buf, *v = (char *)buf + (size_t)chunk * krow;
            st = state_kv_read(src, l, p, n, k, v);
            if (st == CODER_OK) st = state_kv_load(dst, l, p, n, k, v);
        }
    if (st != CODER_OK) goto done;
    if ((st = session_logits(src)) != CODER_OK) goto done;
    memcpy(dst->tokens, src->tokens, (size_t)src->n_past * sizeof *src->tokens);
    memcpy(dst->logits, src->logits, (size_t)hp->vocab_size * sizeof *src->logits);
    dst->n_past = src->n_past;
    dst->has_logits = src->has_logits;
    *out = dst;
    dst = NULL;
done:
    coder_mfree(buf);
    coder_session_free(dst);
    session_leave(src);
    return st;
}

/* ---- save ----------------------------------------------------------------------------------- */

static void state_header(const coder_session *s, int32_t n, uint32_t flags, uint64_t raw, uint64_t comp,
                         unsigned char h[STATE_HEADER]) {
    const model_hparams *hp = &s->model->hp;
    memset(h, 0, STATE_HEADER);
    memcpy(h, STATE_MAGIC, 8);
    put32(h + 8, STATE_VERSION);
    put32(h + 12, STATE_HEADER);
    put64(h + 16, state_model_hash(s->model));
    memcpy(h + 24, hp->arch_name, strnlen(hp->arch_name, 15));
    put32(h + 40, (uint32_t)hp->n_layers);
    put32(h + 44, (uint32_t)hp->n_kv_heads);
    put32(h + 48, (uint32_t)hp->head_dim);
    put32(h + 52, (uint32_t)hp->vocab_size);
    put32(h + 56, (uint32_t)s->kv_type);
    put32(h + 60, (uint32_t)s->n_ctx);
    put32(h + 64, (uint32_t)n);
    put32(h + 68, flags);
    put64(h + 72, raw);
    put64(h + 80, comp);
}

/* Builds the whole file in memory: *file (coder_malloc'd), *size bytes. Session held. */
static coder_status state_serialize(coder_session *s, int32_t n, unsigned char **file, size_t *size) {
    const model_hparams *hp = &s->model->hp;
    TRY(session_logits(s));
    const bool logits = n == s->n_past && s->has_logits;
    uint64_t raw_bytes;
    TRY(state_raw_bytes(s, n, logits, &raw_bytes));
    const int64_t w = (int64_t)hp->n_kv_heads * hp->head_dim;
    const size_t krow = (size_t)kv_row_bytes(s->kv_type, w), vrow = (size_t)kv_v_row_bytes(s->kv_type, w);
    unsigned char *raw = coder_malloc(raw_bytes ? (size_t)raw_bytes : 1), *out = NULL;
    if (!raw) return coder_fail(CODER_ERR_NOMEM, "session state: payload of %llu bytes", (unsigned long long)raw_bytes);
    coder_status st = CODER_OK;
    unsigned char *p = raw;
    memcpy(p, s->tokens, (size_t)n * 4);
    p += (size_t)n * 4;
    if (logits) {
        memcpy(p, s->logits, (size_t)hp->vocab_size * 4);
        p += (size_t)hp->vocab_size * 4;
    }
    for (int l = 0; l < hp->n_layers && st == CODER_OK && n > 0; l++) {
        st = state_kv_read(s, l, 0, n, p, p + (size_t)n * krow);
        p += (size_t)n * (krow + vrow);
    }
    if (st != CODER_OK) goto done;
    size_t bound = ZSTD_compressBound((size_t)raw_bytes), total;
    if (ck_add_size(bound, STATE_HEADER + 8, &total) || !(out = coder_malloc(total))) {
        st = coder_fail(CODER_ERR_NOMEM, "session state: compression buffer of %zu bytes", bound);
        goto done;
    }
    ZSTD_CCtx *cc = ZSTD_createCCtx_advanced(state_zmem);
    if (!cc) {
        st = coder_fail(CODER_ERR_NOMEM, "session state: zstd context");
        goto done;
    }
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, STATE_ZSTD_LEVEL);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    size_t comp = ZSTD_compress2(cc, out + STATE_HEADER, bound, raw, (size_t)raw_bytes);
    ZSTD_freeCCtx(cc);
    if (ZSTD_isError(comp)) {
        st = coder_fail(ZSTD_getErrorCode(comp) == ZSTD_error_memory_allocation ? CODER_ERR_NOMEM : CODER_ERR_INTERNAL,
                        "session state: zstd compression: %s", ZSTD_getErrorName(comp));
        goto done;
    }
    state_header(s, n, logits ? STATE_FLAG_LOGITS : 0, raw_bytes, comp, out);
    put64(out + STATE_HEADER + comp, session_state_checksum(out, STATE_HEADER + comp));
    *file = out;
    *size = STATE_HEADER + comp + 8;
    out = NULL;
done:
    coder_mfree(raw);
    coder_mfree(out);
    return st;
}

static coder_status state_write_file(const char *path, const unsigned char *data, size_t size) {
    size_t plen = strlen(path);
    char *tmp = coder_malloc(plen + 5);
    if (!tmp) return coder_fail(CODER_ERR_NOMEM, "session state: path");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    coder_status st = CODER_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) st = coder_fail(CODER_ERR_IO, "session state: cannot create '%s': %s", tmp, strerror(errno));
    else {
        bool ok = fwrite(data, 1, size, f) == size;
        ok = (fclose(f) == 0) && ok;
        if (!ok) st = coder_fail(CODER_ERR_IO, "session state: writing '%s': %s", tmp, strerror(errno));
        else if (rename(tmp, path) != 0)
            st = coder_fail(CODER_ERR_IO, "session state: renaming '%s' to '%s': %s", tmp, path, strerror(errno));
        if (st != CODER_OK) remove(tmp);
    }
    coder_mfree(tmp);
    return st;
}

CODER_EXPORT coder_status coder_session_save(coder_session *s, const char *path, int32_t n_tokens) {
    if (!s || !path) return coder_fail(CODER_ERR_INVALID_ARG, "%s is NULL", !s ? "session" : "path");
    TRY(state_backend_ok(s, "session save"));
    if (!session_enter(s)) return CODER_ERR_BUSY;
    coder_status st = CODER_OK;
    int32_t n = n_tokens < 0 ? s->n_past : n_tokens;
    unsigned char *file = NULL;
    size_t size = 0;
    if (n > s->n_past)
        st = coder_fail(CODER_ERR_INVALID_ARG, "n_tokens = %d: the session holds %d", (int)n_tokens, (int)s->n_past);
    if (st == CODER_OK) st = state_serialize(s, n, &file, &size);
    session_leave(s);   /* the file write needs no session */
    if (st == CODER_OK) st = state_write_file(path, file, size);
    coder_mfree(file);
    return st;
}

/* ---- load ----------------------------------------------------------------------------------- */

/* Reads the whole file after checking its size against the header (no allocation beyond the real
 * file size). *data holds header + frame + checksum. */
static coder_status state_read_file(const char *path, unsigned char **data, size_t *size) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return coder_fail(CODER_ERR_IO, "session state '%s': %s", path, strerror(errno));
    coder_status st = CODER_OK;
    struct stat sb;
    unsigned char h[STATE_HEADER];
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = coder_fail(CODER_ERR_IO, "session state '%s': not a regular file", path);
        goto done;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    size_t got = fread(h, 1, sizeof h, f);
    if (got < 8 || memcmp(h, STATE_MAGIC, 8) != 0) {
        st = got < 8 ? coder_fail(CODER_ERR_TRUNCATED, "session state '%s': %zu bytes, no magic at offset 0", path, got)
                     : coder_fail(CODER_ERR_FORMAT, "session state '%s': magic at offset 0 is not \"CODERKV\"", path);
        goto done;
    }
    if (got < 16) {
        st = coder_fail(CODER_ERR_TRUNCATED, "session state '%s': %zu bytes, the version field ends at 16", path, got);
        goto done;
    }
    uint32_t version = get32(h + 8), hbytes = get32(h + 12);
    if (version > STATE_VERSION) {
        st = coder_fail(CODER_ERR_UNSUPPORTED, "session state '%s': format version %u (offset 8); this library reads %u",
                        path, version, STATE_VERSION);
        goto done;
    }
    if (version == 0 || hbytes != STATE_HEADER) {
        st = coder_fail(CODER_ERR_FORMAT, "session state '%s': version %u / header bytes %u (offset 8) are not 1 / %u",
                        path, version, hbytes, STATE_HEADER);
        goto done;
    }
    if (got < STATE_HEADER) {
        st = coder_fail(CODER_ERR_TRUNCATED, "session state '%s': %zu bytes, the header needs %u", path, got, STATE_HEADER);
        goto done;
    }
    uint64_t comp = get64(h + 80), need;
    if (ck_add(comp, STATE_HEADER + 8, &need) || need > fsize) {
        st = coder_fail(CODER_ERR_TRUNCATED, "session state '%s': compressed bytes %llu (offset 80) need a file of %llu+ "
                        "bytes, it has %llu", path, (unsigned long long)comp, (unsigned long long)comp + STATE_HEADER + 8,
                        (unsigned long long)fsize);
        goto done;
    }
    if (need != fsize) {
        st = coder_fail(CODER_ERR_FORMAT, "session state '%s': %llu bytes after the declared end (offset %llu)", path,
                        (unsigned long long)(fsize - need), (unsigned long long)need);
        goto done;
    }
    unsigned char *buf = need <= SIZE_MAX ? coder_malloc((size_t)need) : NULL;
    if (!buf) {
        st = coder_fail(CODER_ERR_NOMEM, "session state '%s': %llu bytes", path, (unsigned long long)need);
        goto done;
    }
    memcpy(buf, h, STATE_HEADER);
    if (fread(buf + STATE_HEADER, 1, (size_t)need - STATE_HEADER, f) != (size_t)need - STATE_HEADER) {
        coder_mfree(buf);
        st = coder_fail(CODER_ERR_TRUNCATED, "session state '%s': short read of %llu bytes", path, (unsigned long long)need);
        goto done;
    }
    *data = buf;
    *size = (size_t)need;
done:
    fclose(f);
    return st;
}

/* Checks a file image against the session; on success *raw holds the decompressed payload. */
static coder_status state_check(coder_session *s, const unsigned char *d, size_t size, unsigned char **raw_out,
                                int32_t *n_out, bool *logits_out) {
    *raw_out = NULL;
    const model_hparams *hp = &s->model->hp;
    const size_t comp = size - STATE_HEADER - 8;
    uint64_t want = session_state_checksum(d, STATE_HEADER + comp), have = get64(d + STATE_HEADER + comp);
    if (want != have)
        return coder_fail(CODER_ERR_FORMAT, "session state: checksum at offset %zu is %016llx, the bytes hash to %016llx "
                          "(the file is corrupt)", STATE_HEADER + comp, (unsigned long long)have, (unsigned long long)want);
    char arch[16];
    memcpy(arch, d + 24, 15);
    arch[15] = 0;
    const int32_t nl = (int32_t)get32(d + 40), nkv = (int32_t)get32(d + 44), hd = (int32_t)get32(d + 48),
                  nv = (int32_t)get32(d + 52);
    if (strcmp(arch, hp->arch_name) || nl != hp->n_layers || nkv != hp->n_kv_heads || hd != hp->head_dim ||
        nv != hp->vocab_size) {
        char esc[64];
        return coder_fail(CODER_ERR_STATE, "session state: saved from another model (arch %s, %d layers, %d kv heads x %d, "
                          "vocab %d at offset 24; this model: %s, %d, %d x %d, %d)",
                          coder_escape(arch, strlen(arch), esc, sizeof esc), (int)nl, (int)nkv, (int)hd, (int)nv,
                          hp->arch_name, (int)hp->n_layers, (int)hp->n_kv_heads, (int)hp->head_dim, (int)hp->vocab_size);
    }
    if (get64(d + 16) != state_model_hash(s->model))
        return coder_fail(CODER_ERR_STATE, "session state: model hash %016llx (offset 16) differs from this model's %016llx: "
                          "saved from another model file of the same shape", (unsigned long long)get64(d + 16),
                          (unsigned long long)state_model_hash(s->model));
    const int32_t kvt = (int32_t)get32(d + 56), n = (int32_t)get32(d + 64);
    const uint32_t flags = get32(d + 68);
    if (kvt != s->kv_type)
        return coder_fail(CODER_ERR_STATE, "session state: kv_type %d (offset 56) differs from the session's %d", (int)kvt,
                          (int)s->kv_type);
    if (n < 0 || (flags & ~STATE_FLAG_LOGITS) || (n == 0 && (flags & STATE_FLAG_LOGITS)))
        return coder_fail(CODER_ERR_FORMAT, "session state: n_tokens %d (offset 64) / flags 0x%x (offset 68) invalid", (int)n,
                          flags);
    if (n > s->n_ctx)
        return coder_fail(CODER_ERR_CONTEXT_FULL, "session state: n_tokens %d (offset 64) exceed the session's n_ctx %d",
                          (int)n, (int)s->n_ctx);
    const bool logits = flags & STATE_FLAG_LOGITS;
    uint64_t raw_bytes;
    TRY(state_raw_bytes(s, n, logits, &raw_bytes));
    if (get64(d + 72) != raw_bytes)
        return coder_fail(CODER_ERR_FORMAT, "session state: raw bytes %llu (offset 72) should be %llu for %d positions",
                          (unsigned long long)get64(d + 72), (unsigned long long)raw_bytes, (int)n);
    const unsigned char *frame = d + STATE_HEADER;
    unsigned long long fcs = ZSTD_getFrameContentSize(frame, comp);
    if (fcs != raw_bytes)
        return coder_fail(CODER_ERR_FORMAT, "session state: the zstd frame at offset %u declares %lld bytes, the header %llu",
                          STATE_HEADER, fcs >= ZSTD_CONTENTSIZE_ERROR ? -1ll : (long long)fcs, (unsigned long long)raw_bytes);
    unsigned char *raw = coder_malloc(raw_bytes ? (size_t)raw_bytes : 1);
    if (!raw) return coder_fail(CODER_ERR_NOMEM, "session state: payload of %llu bytes", (unsigned long long)raw_bytes);
    ZSTD_DCtx *dc = ZSTD_createDCtx_advanced(state_zmem);
    if (!dc) {
        coder_mfree(raw);
        return coder_fail(CODER_ERR_NOMEM, "session state: zstd context");
    }
    size_t got = ZSTD_decompressDCtx(dc, raw, (size_t)raw_bytes, frame, comp);
    ZSTD_freeDCtx(dc);
    if (ZSTD_isError(got) || got != raw_bytes) {
        coder_mfree(raw);
        if (ZSTD_isError(got) && ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation)
            return coder_fail(CODER_ERR_NOMEM, "session state: zstd decompression: %s", ZSTD_getErrorName(got));
        return coder_fail(CODER_ERR_FORMAT, "session state: zstd frame at offset %u: %s", STATE_HEADER,
                          ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short content");
    }
    for (int32_t i = 0; i < n; i++) {
        int32_t t;
        memcpy(&t, raw + (size_t)i * 4, 4);
        if (t < 0 || t >= hp->vocab_size) {
            coder_mfree(raw);
            return coder_fail(CODER_ERR_FORMAT, "session state: token %d of the payload is %d, outside the vocabulary",
                              (int)i, (int)t);
        }
    }
    if (logits)
        for (int32_t i = 0; i < hp->vocab_size; i++) {
            float v;
            memcpy(&v, raw + (size_t)n * 4 + (size_t)i * 4, 4);
            if (!isfinite(v)) {
                coder_mfree(raw);
                return coder_fail(CODER_ERR_FORMAT, "session state: logit %d of the payload is not finite", (int)i);
            }
        }
    *raw_out = raw;
    *n_out = n;
    *logits_out = logits;
    return CODER_OK;
}

CODER_EXPORT coder_status coder_session_load(coder_session *s, const char *path) {
    if (!s || !path) return coder_fail(CODER_ERR_INVALID_ARG, "%s is NULL", !s ? "session" : "path");
    TRY(state_backend_ok(s, "session load"));
    unsigned char *file = NULL, *raw = NULL;
    size_t size = 0;
    TRY(state_read_file(path, &file, &size));
    if (!session_enter(s)) {
        coder_mfree(file);
        return CODER_ERR_BUSY;
    }
    int32_t n = 0;
    bool logits = false;
    coder_status st = state_check(s, file, size, &raw, &n, &logits);
    coder_mfree(file);
    if (st != CODER_OK) goto done;
    const model_hparams *hp = &s->model->hp;
    const int64_t w = (int64_t)hp->n_kv_heads * hp->head_dim;
    const size_t krow = (size_t)kv_row_bytes(s->kv_type, w), vrow = (size_t)kv_v_row_bytes(s->kv_type, w);
    const unsigned char *p = raw + (size_t)n * 4 + (logits ? (size_t)hp->vocab_size * 4 : 0);
    for (int l = 0; l < hp->n_layers && st == CODER_OK && n > 0; l++, p += (size_t)n * (krow + vrow))
        st = state_kv_load(s, l, 0, n, p, p + (size_t)n * krow);
    for (int i = 0; i < s->stages.n && st == CODER_OK && n < s->n_past; i++)
        st = s->stages.b[i]->ops->kv_truncate(s->stages.b[i], n);
    if (st != CODER_OK) {   /* a backend failure half way: the cache is neither old nor new */
        s->n_past = 0;
        s->has_logits = false;
        coder_fail_context("the session was reset");
        goto done;
    }
    memcpy(s->tokens, raw, (size_t)n * 4);
    if (logits) memcpy(s->logits, raw + (size_t)n * 4, (size_t)hp->vocab_size * 4);
    s->n_past = n;
    s->has_logits = logits;
    s->logits_pending = false;
done:
    if (st != CODER_OK && st != CODER_ERR_BUSY) coder_fail_context("loading '%s'", path);
    coder_mfree(raw);
    session_leave(s);
    return st;
}
