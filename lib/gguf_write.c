/* gguf_write.c - GGUF v3 writer. KVs are encoded when set (so the header is a concatenation);
 * tensor data offsets follow gguf-py: in declaration order, each tensor padded with zeros to the
 * alignment, offset_k = sum_{i<k} align_up(nbytes_i). The file is
 *   header | KVs | infos | zero pad to alignment | data (every tensor, each padded)
 * Streaming form: gguf_writer_begin writes everything before the data and extends the file to its
 * final size (a sparse, zero-filled file), so callers pwrite each tensor at its offset. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_impl.h"
#include "quant.h"

typedef unsigned long long ull;

/* strerror is not thread-safe; the GNU strerror_r into a block-scoped buffer is. */
#define GGUF_ERRSTR(e) strerror_r((e), (char[96]){0}, 96)

typedef struct {
    char *key;
    size_t key_len;
    uint32_t type;
    uint8_t *val;             /* encoded value (after the u32 type)                                 */
    size_t val_len;
} gguf_wkv;

typedef struct {
    char name[GGUF_MAX_NAME];
    uint32_t type, n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    const void *data;         /* borrowed; NULL for the streaming form                              */
    uint64_t nbytes, offset;  /* offset relative to the data section                                */
} gguf_wtensor;

enum { GGUF_W_BUILDING, GGUF_W_BEGUN, GGUF_W_DONE };

struct gguf_writer {
    uint32_t alignment;
    gguf_wkv *kvs;
    size_t n_kv, cap_kv;
    gguf_wtensor *tensors;
    size_t n_tensors, cap_tensors;
    uint64_t data_size;       /* sum of padded tensor sizes                                         */
    int fd;
    char *path;
    int state;
};

static void gguf_put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void gguf_put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static uint64_t gguf_align_up(uint64_t x, uint32_t a) { return (x + a - 1) / a * a; }

coder_status gguf_writer_new(uint32_t alignment, gguf_writer **out) {
    if (!out) return coder_fail(CODER_ERR_INVALID_ARG, "gguf_writer_new: out is NULL");
    *out = NULL;
    if (alignment == 0) alignment = GGUF_DEFAULT_ALIGNMENT;
    if ((alignment & (alignment - 1)) != 0 || alignment % 8 != 0 || alignment > GGUF_MAX_ALIGNMENT)
        return coder_fail(CODER_ERR_INVALID_ARG, "gguf_writer_new: alignment %u is not a power of two, multiple of 8, <= %u",
                          alignment, GGUF_MAX_ALIGNMENT);
    gguf_writer *w = coder_calloc(1, sizeof *w);
    if (!w) return coder_fail(CODER_ERR_NOMEM, "no memory for a gguf_writer");
    w->alignment = alignment;
    w->fd = -1;
    if (alignment != GGUF_DEFAULT_ALIGNMENT) {
        uint8_t v[4];
        gguf_put32(v, alignment);
        /* The one place general.alignment is written; setters refuse it. */
        w->kvs = coder_calloc(4, sizeof *w->kvs);
        w->cap_kv = 4;
        if (w->kvs) w->kvs[0].key = coder_strndup("general.alignment", 17);
        if (w->kvs && w->kvs[0].key) w->kvs[0].val = coder_malloc(4);
        if (!w->kvs || !w->kvs[0].key || !w->kvs[0].val) {
            if (w->kvs) w->n_kv = 1;
            gguf_writer_free(w);
            return coder_fail(CODER_ERR_NOMEM, "no memory for a gguf_writer");
        }
        memcpy(w->kvs[0].val, v, 4);
        w->kvs[0].key_len = 17;
        w->kvs[0].type = GGUF_TYPE_UINT32;
        w->kvs[0].val_len = 4;
        w->n_kv = 1;
    }
    *out = w;
    return CODER_OK;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        coder_mfree(w->kvs[i].key);
        coder_mfree(w->kvs[i].val);
    }
    coder_mfree(w->kvs);
    coder_mfree(w->tensors);
    if (w->fd >= 0) close(w->fd);
    coder_mfree(w->path);
    coder_mfree(w);
}

/* Validates key and takes ownership of val (freed on failure). */
static coder_status gguf_writer_add_kv(gguf_writer *w, const char *key, uint32_t type, uint8_t *val, size_t val_len,
                                       bool allow_alignment) {
    coder_status st = CODER_OK;
    size_t klen = key ? strlen(key) : 0;
    if (!w || !key) st = coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: writer or key is NULL");
    else if (w->state != GGUF_W_BUILDING) st = coder_fail(CODER_ERR_STATE, "gguf writer: key %s added after gguf_writer_begin", key);
    else if (!gguf_text_ok((const uint8_t *)key, klen) || klen > GGUF_MAX_STRING_LEN)
        st = coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: key '%s' is empty or has control bytes / invalid UTF-8", key);
    else if (!allow_alignment && strcmp(key, "general.alignment") == 0)
        st = coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: set general.alignment through gguf_writer_new");
    for (size_t i = 0; st == CODER_OK && i < w->n_kv; i++)
        if (w->kvs[i].key_len == klen && memcmp(w->kvs[i].key, key, klen) == 0)
            st = coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: duplicate key %s", key);
    if (st == CODER_OK && w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        gguf_wkv *k = coder_realloc(w->kvs, cap * sizeof *k);
        if (!k) st = coder_fail(CODER_ERR_NOMEM, "gguf writer: no memory for key %s", key);
        else { w->kvs = k; w->cap_kv = cap; }
    }
    char *kcopy = st == CODER_OK ? coder_strndup(key, klen) : NULL;
    if (st == CODER_OK && !kcopy) st = coder_fail(CODER_ERR_NOMEM, "gguf writer: no memory for key %s", key);
    if (st != CODER_OK) {
        coder_mfree(val);
        return st;
    }
    w->kvs[w->n_kv++] = (gguf_wkv){kcopy, klen, type, val, val_len};
    return CODER_OK;
}

/* Encodes a scalar of `size` bytes from the host value v (little-endian). */
static coder_status gguf_writer_scalar(gguf_writer *w, const char *key, uint32_t type, uint64_t v, size_t size) {
    uint8_t *val = coder_malloc(size);
    if (!val) return coder_fail(CODER_ERR_NOMEM, "gguf writer: no memory for key %s", key ? key : "(null)");
    for (size_t i = 0; i < size; i++) val[i] = (uint8_t)(v >> (8 * i));
    return gguf_writer_add_kv(w, key, type, val, size, false);
}

coder_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) { return gguf_writer_scalar(w, key, GGUF_TYPE_UINT32, v, 4); }
coder_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) { return gguf_writer_scalar(w, key, GGUF_TYPE_INT32, (uint32_t)v, 4); }
coder_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) { return gguf_writer_scalar(w, key, GGUF_TYPE_UINT64, v, 8); }
coder_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) { return gguf_writer_scalar(w, key, GGUF_TYPE_BOOL, v ? 1 : 0, 1); }
coder_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return gguf_writer_scalar(w, key, GGUF_TYPE_FLOAT32, bits, 4);
}

coder_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *v, size_t len) {
    if (!v && len) return coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: key %s: string is NULL", key ? key : "(null)");
    if (len > GGUF_MAX_STRING_LEN) return coder_fail(CODER_ERR_LIMIT, "gguf writer: key %s: string of %zu bytes is too long", key ? key : "(null)", len);
    uint8_t *val = coder_malloc(8 + len);
    if (!val) return coder_fail(CODER_ERR_NOMEM, "gguf writer: no memory for key %s", key ? key : "(null)");
    gguf_put64(val, len);
    if (len) memcpy(val + 8, v, len);
    return gguf_writer_add_kv(w, key, GGUF_TYPE_STRING, val, 8 + len, false);
}

coder_status gguf_writer_set_array(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t count) {
    const char *k = key ? key : "(null)";
    size_t esz = gguf_type_size(elem_type);
    uint64_t bytes, total;
    if (esz == 0) return coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: key %s: element type %u is not a number type", k, elem_type);
    if (ck_mul(count, esz, &bytes) || ck_add(bytes, 12, &total) || total > SIZE_MAX)
        return coder_fail(CODER_ERR_LIMIT, "gguf writer: key %s: array of %llu elements is too large", k, (ull)count);
    if (!data && count) return coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: key %s: array data is NULL", k);
    if (elem_type == GGUF_TYPE_BOOL)
        for (uint64_t i = 0; i < count; i++)
            if (((const uint8_t *)data)[i] > 1) return coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: key %s: BOOL element %llu is not 0/1", k, (ull)i);
    uint8_t *val = coder_malloc((size_t)total);
    if (!val) return coder_fail(CODER_ERR_NOMEM, "gguf writer: no memory for key %s", k);
    gguf_put32(val, elem_type);
    gguf_put64(val + 4, count);
    if (bytes) memcpy(val + 12, data, (size_t)bytes); /* host is little-endian (x86-64, aarch64) */
    return gguf_writer_add_kv(w, key, GGUF_TYPE_ARRAY, val, (size_t)total, false);
}

coder_status gguf_writer_set_str_array(gguf_writer *w, const char *key, const gguf_str *items, uint64_t count) {
    const char *k = key ? key : "(null)";
    uint64_t total = 12;
    if (!items && count) return coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: key %s: items is NULL", k);
    for (uint64_t i = 0; i < count; i++) {
        if (!items[i].ptr && items[i].len) return coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: key %s: item %llu is NULL", k, (ull)i);
        if (items[i].len > GGUF_MAX_STRING_LEN || ck_add(total, 8 + items[i].len, &total) || total > SIZE_MAX)
            return coder_fail(CODER_ERR_LIMIT, "gguf writer: key %s: string array too large at item %llu", k, (ull)i);
    }
    uint8_t *val = coder_malloc((size_t)total);
    if (!val) return coder_fail(CODER_ERR_NOMEM, "gguf writer: no memory for key %s", k);
    gguf_put32(val, GGUF_TYPE_STRING);
    gguf_put64(val + 4, count);
    size_t o = 12;
    for (uint64_t i = 0; i < count; i++) {
        gguf_put64(val + o, items[i].len);
        if (items[i].len) memcpy(val + o + 8, items[i].ptr, (size_t)items[i].len);
        o += 8 + (size_t)items[i].len;
    }
    return gguf_writer_add_kv(w, key, GGUF_TYPE_ARRAY, val, (size_t)total, false);
}

coder_status gguf_writer_copy_kvs(gguf_writer *w, const gguf_file *src, const char *prefix) {
    if (!w || !src || !prefix) return coder_fail(CODER_ERR_INVALID_ARG, "gguf_writer_copy_kvs: NULL argument");
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < gguf_kv_count(src); i++) {
        const char *key = gguf_kv_key(src, i);
        if (strncmp(key, prefix, plen) != 0 || strcmp(key, "general.alignment") == 0) continue;
        uint32_t type;
        const void *raw;
        uint64_t len;
        TRY(gguf_kv_raw(src, i, &type, &raw, &len));
        uint8_t *val = coder_malloc((size_t)len);
        if (!val) return coder_fail(CODER_ERR_NOMEM, "gguf writer: no memory to copy key %s (%llu bytes)", key, (ull)len);
        memcpy(val, raw, (size_t)len);
        TRY(gguf_writer_add_kv(w, key, type, val, (size_t)len, false));
    }
    return CODER_OK;
}

coder_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne,
                                    const void *data, size_t *index) {
    if (!w || !name || !ne) return coder_fail(CODER_ERR_INVALID_ARG, "gguf_writer_add_tensor: NULL argument");
    if (w->state != GGUF_W_BUILDING) return coder_fail(CODER_ERR_STATE, "gguf writer: tensor %s added after gguf_writer_begin", name);
    size_t len = strlen(name);
    if (len >= GGUF_MAX_NAME || !gguf_text_ok((const uint8_t *)name, len))
        return coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: tensor name '%.80s' is empty, >= %d bytes or not valid text", name, GGUF_MAX_NAME);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: duplicate tensor %s", name);
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS) return coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: tensor %s: n_dims %u", name, n_dims);
    if (!quant_type_known(type) || quant_block_size(type) == 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: tensor %s: unknown type %u", name, type);
    gguf_wtensor t = {.type = type, .n_dims = n_dims, .data = data};
    memcpy(t.name, name, len + 1);
    for (uint32_t j = 0; j < GGUF_MAX_DIMS; j++) t.ne[j] = j < n_dims ? ne[j] : 1;
    uint64_t bytes, padded, end;
    for (uint32_t j = 0; j < n_dims; j++)
        if (ne[j] == 0 || ne[j] > INT64_MAX) return coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: tensor %s: ne[%u] = %llu", name, j, (ull)ne[j]);
    if (t.ne[0] % quant_block_size(type) != 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "gguf writer: tensor %s: ne[0] = %llu is not a multiple of the %s block size %u", name,
                          (ull)t.ne[0], quant_type_name(type), quant_block_size(type));
    if (!quant_row_bytes(type, t.ne[0], &bytes) || ck_mul(bytes, t.ne[1], &bytes) || ck_mul(bytes, t.ne[2], &bytes) ||
        ck_mul(bytes, t.ne[3], &bytes) || ck_add(bytes, w->alignment - 1, &padded) || ck_add(w->data_size, padded, &end) ||
        end > INT64_MAX)
        return coder_fail(CODER_ERR_LIMIT, "gguf writer: tensor %s: size overflows", name);
    t.nbytes = bytes;
    t.offset = w->data_size;
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        gguf_wtensor *n = coder_realloc(w->tensors, cap * sizeof *n);
        if (!n) return coder_fail(CODER_ERR_NOMEM, "gguf writer: no memory for tensor %s", name);
        w->tensors = n;
        w->cap_tensors = cap;
    }
    w->data_size = t.offset + gguf_align_up(bytes, w->alignment);
    if (index) *index = w->n_tensors;
    w->tensors[w->n_tensors++] = t;
    return CODER_OK;
}

/* Bytes before the padding that precedes the data section. */
static uint64_t gguf_writer_meta_size(const gguf_writer *w) {
    uint64_t n = 24;
    for (size_t i = 0; i < w->n_kv; i++) n += 8 + w->kvs[i].key_len + 4 + w->kvs[i].val_len;
    for (size_t i = 0; i < w->n_tensors; i++) n += 8 + strlen(w->tensors[i].name) + 4 + 8ull * w->tensors[i].n_dims + 4 + 8;
    return n;
}

uint64_t gguf_writer_tensor_file_offset(const gguf_writer *w, size_t index) {
    if (!w || index >= w->n_tensors) return UINT64_MAX;
    return gguf_align_up(gguf_writer_meta_size(w), w->alignment) + w->tensors[index].offset;
}

uint64_t gguf_writer_tensor_nbytes(const gguf_writer *w, size_t index) {
    return w && index < w->n_tensors ? w->tensors[index].nbytes : 0;
}

static coder_status gguf_pwrite_all(int fd, const void *p, uint64_t n, uint64_t off, const char *path) {
    const uint8_t *b = p;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t r = pwrite(fd, b, chunk, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return coder_fail(CODER_ERR_IO, "write to '%s' failed at offset %llu: %s", path, (ull)off, r < 0 ? GGUF_ERRSTR(errno) : "no progress");
        b += r;
        n -= (uint64_t)r;
        off += (uint64_t)r;
    }
    return CODER_OK;
}

/* Serialises header, KVs and infos (zero-padded to the alignment) into one buffer. */
static coder_status gguf_writer_meta(const gguf_writer *w, uint8_t **out, uint64_t *size) {
    uint64_t meta = gguf_writer_meta_size(w), padded = gguf_align_up(meta, w->alignment);
    uint8_t *b = coder_calloc(1, (size_t)padded);
    if (!b) return coder_fail(CODER_ERR_NOMEM, "gguf writer: no memory for %llu header bytes", (ull)padded);
    memcpy(b, "GGUF", 4);
    gguf_put32(b + 4, 3);
    gguf_put64(b + 8, w->n_tensors);
    gguf_put64(b + 16, w->n_kv);
    size_t o = 24;
    for (size_t i = 0; i < w->n_kv; i++) {
        const gguf_wkv *k = &w->kvs[i];
        gguf_put64(b + o, k->key_len);
        memcpy(b + o + 8, k->key, k->key_len);
        o += 8 + k->key_len;
        gguf_put32(b + o, k->type);
        memcpy(b + o + 4, k->val, k->val_len);
        o += 4 + k->val_len;
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        const gguf_wtensor *t = &w->tensors[i];
        size_t len = strlen(t->name);
        gguf_put64(b + o, len);
        memcpy(b + o + 8, t->name, len);
        o += 8 + len;
        gguf_put32(b + o, t->n_dims);
        o += 4;
        for (uint32_t j = 0; j < t->n_dims; j++, o += 8) gguf_put64(b + o, t->ne[j]);
        gguf_put32(b + o, t->type);
        gguf_put64(b + o + 4, t->offset);
        o += 12;
    }
    *out = b;
    *size = padded;
    return CODER_OK;
}

coder_status gguf_writer_begin(gguf_writer *w, const char *path, int *fd_out) {
    if (!w || !path) return coder_fail(CODER_ERR_INVALID_ARG, "gguf_writer_begin: NULL argument");
    if (w->state != GGUF_W_BUILDING) return coder_fail(CODER_ERR_STATE, "gguf_writer_begin called twice");
    if (fd_out) *fd_out = -1;
    uint8_t *meta = NULL;
    uint64_t meta_size = 0;
    TRY(gguf_writer_meta(w, &meta, &meta_size));
    w->path = coder_strndup(path, strlen(path));
    if (!w->path) {
        coder_mfree(meta);
        return coder_fail(CODER_ERR_NOMEM, "gguf writer: no memory for the path");
    }
    coder_status st = CODER_OK;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) st = coder_fail(CODER_ERR_IO, "cannot create '%s': %s", path, GGUF_ERRSTR(errno));
    if (st == CODER_OK) st = gguf_pwrite_all(w->fd, meta, meta_size, 0, path);
    /* Reserve the final size: the padding and any tensor not yet written read as zeros. */
    if (st == CODER_OK && ftruncate(w->fd, (off_t)(meta_size + w->data_size)) != 0)
        st = coder_fail(CODER_ERR_IO, "cannot extend '%s' to %llu bytes: %s", path, (ull)(meta_size + w->data_size), GGUF_ERRSTR(errno));
    coder_mfree(meta);
    if (st != CODER_OK) {
        if (w->fd >= 0) {
            close(w->fd);
            unlink(path);
        }
        w->fd = -1;
        return st;
    }
    w->state = GGUF_W_BEGUN;
    if (fd_out) *fd_out = w->fd;
    return CODER_OK;
}

coder_status gguf_writer_end(gguf_writer *w) {
    if (!w) return coder_fail(CODER_ERR_INVALID_ARG, "gguf_writer_end: writer is NULL");
    if (w->state != GGUF_W_BEGUN) return coder_fail(CODER_ERR_STATE, "gguf_writer_end without gguf_writer_begin");
    int fd = w->fd;
    w->fd = -1;
    w->state = GGUF_W_DONE;
    if (close(fd) != 0) return coder_fail(CODER_ERR_IO, "closing '%s' failed: %s", w->path, GGUF_ERRSTR(errno));
    return CODER_OK;
}

coder_status gguf_writer_write_file(gguf_writer *w, const char *path) {
    if (!w || !path) return coder_fail(CODER_ERR_INVALID_ARG, "gguf_writer_write_file: NULL argument");
    for (size_t i = 0; i < w->n_tensors; i++)
        if (!w->tensors[i].data)
            return coder_fail(CODER_ERR_INVALID_ARG, "gguf_writer_write_file: tensor %s has no data (use the streaming form)", w->tensors[i].name);
    TRY(gguf_writer_begin(w, path, NULL));
    coder_status st = CODER_OK;
    for (size_t i = 0; i < w->n_tensors && st == CODER_OK; i++)
        st = gguf_pwrite_all(w->fd, w->tensors[i].data, w->tensors[i].nbytes, gguf_writer_tensor_file_offset(w, i), path);
    if (st == CODER_OK) st = gguf_writer_end(w);
    if (st != CODER_OK) {
        if (w->fd >= 0) close(w->fd);
        w->fd = -1;
        w->state = GGUF_W_DONE;
        unlink(path);
    }
    return st;
}
