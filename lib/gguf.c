/* gguf.c - opens a GGUF v2/v3 file (mmap, read into memory, or borrowed bytes) and validates it
 * completely: header, every KV, every tensor info, alignment, split keys, tensor bounds and
 * overlaps. Policies (what is accepted, which status for what) are in docs/GGUF.md.
 *
 * Layout (all little-endian, packed):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv | n_kv x KV | n_tensors x info |
 *   zero padding to ALIGNMENT | data section (tensor k at data_offset + offset_k)
 *   KV   = str key | u32 type | value          str = u64 len | len bytes
 *   info = str name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset
 * Every declared count or length is checked against the bytes actually present before anything
 * is allocated for it, so a tiny file cannot make us allocate much. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_impl.h"
#include "quant.h"

/* Smallest encodings: KV = 8 (key len) + 1 (key) + 4 (type) + 1 (u8 value);
 * info = 8 + 1 (name) + 4 (n_dims) + 8 (one ne) + 4 (type) + 8 (offset). */
#define GGUF_MIN_KV_BYTES 14ull
#define GGUF_MIN_INFO_BYTES 33ull
#define GGUF_HEADER_BYTES 24ull
#define GGUF_I64_MAX 0x7FFFFFFFFFFFFFFFull

typedef unsigned long long ull;

/* strerror is not thread-safe; the GNU strerror_r into a block-scoped buffer is. */
#define GGUF_ERRSTR(e) strerror_r((e), (char[96]){0}, 96)

/* Read cursor over the file's bytes. ctx names the entry being parsed, for messages. */
typedef struct {
    const uint8_t *b;
    uint64_t size;
    uint64_t pos;
    char ctx[160];
} gguf_cur;

static const char *gguf_esc(const void *p, size_t n, char *buf, size_t cap) {
    coder_escape(p, n, buf, cap);
    return buf;
}

static coder_status gguf_need(const gguf_cur *c, uint64_t n, const char *field) {
    if (n <= c->size - c->pos) return CODER_OK;
    return coder_fail(CODER_ERR_TRUNCATED, "%s: %s at offset %llu needs %llu bytes but the file ends at %llu",
                      c->ctx, field, (ull)c->pos, (ull)n, (ull)c->size);
}

static uint32_t gguf_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t gguf_le64(const uint8_t *p) { return (uint64_t)gguf_le32(p) | (uint64_t)gguf_le32(p + 4) << 32; }

static coder_status gguf_rd_u32(gguf_cur *c, uint32_t *v, const char *field) {
    TRY(gguf_need(c, 4, field));
    *v = gguf_le32(c->b + c->pos);
    c->pos += 4;
    return CODER_OK;
}
static coder_status gguf_rd_u64(gguf_cur *c, uint64_t *v, const char *field) {
    TRY(gguf_need(c, 8, field));
    *v = gguf_le64(c->b + c->pos);
    c->pos += 8;
    return CODER_OK;
}

bool gguf_text_ok(const uint8_t *s, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7F) return false;
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return false;
        if (len > n - i) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

static size_t gguf_table_cap(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    return cap;
}

/* Inserts index idx (name at names[idx]) or returns the index already holding an equal name. */
static long gguf_table_insert(uint32_t *table, size_t cap, const char *name, size_t len, size_t idx,
                              const char *(*name_at)(const gguf_file *, size_t), const gguf_file *f) {
    size_t mask = cap - 1;
    for (size_t s = gguf_hash_bytes(name, len) & mask;; s = (s + 1) & mask) {
        if (table[s] == 0) {
            table[s] = (uint32_t)idx + 1;
            return -1;
        }
        const char *other = name_at(f, table[s] - 1);
        if (strlen(other) == len && memcmp(other, name, len) == 0) return (long)table[s] - 1;
    }
}
static const char *gguf_kv_name_at(const gguf_file *f, size_t i) { return f->kvs[i].key; }
static const char *gguf_tensor_name_at(const gguf_file *f, size_t i) { return f->tensors[i].name; }

/* ---- header ---------------------------------------------------------------------------------- */

static coder_status gguf_parse_magic(const gguf_file *f) {
    static const struct { const char bytes[5]; const char *what; } legacy[] = {
        {"lmgg", "legacy GGML (unversioned) file"}, {"fmgg", "legacy GGMF file"}, {"tjgg", "legacy GGJT file"},
        {"GGML", "legacy GGML file"}, {"GGMF", "legacy GGMF file"}, {"GGJT", "legacy GGJT file"},
        {"FUGG", "byte-reversed GGUF magic"},
    };
    uint64_t have = f->size < 4 ? f->size : 4;
    if (memcmp(f->bytes, "GGUF", (size_t)have) != 0) {
        char e[32];
        for (size_t i = 0; have == 4 && i < sizeof legacy / sizeof legacy[0]; i++)
            if (memcmp(f->bytes, legacy[i].bytes, 4) == 0)
                return coder_fail(CODER_ERR_FORMAT, "not a GGUF file: magic '%s' at offset 0 (%s; convert it with a current llama.cpp)",
                                  gguf_esc(f->bytes, 4, e, sizeof e), legacy[i].what);
        return coder_fail(CODER_ERR_FORMAT, "not a GGUF file: magic at offset 0 is '%s', expected 'GGUF'",
                          gguf_esc(f->bytes, (size_t)have, e, sizeof e));
    }
    if (f->size < 4)
        return coder_fail(CODER_ERR_TRUNCATED, "magic at offset 0: file is %llu bytes, shorter than the 4-byte magic", (ull)f->size);
    return CODER_OK;
}

static coder_status gguf_parse_version(gguf_cur *c, uint32_t *version) {
    uint32_t v;
    TRY(gguf_rd_u32(c, &v, "version"));
    *version = v;
    if (v == 2 || v == 3) return CODER_OK;
    if (v == 1)
        return coder_fail(CODER_ERR_UNSUPPORTED, "GGUF version 1 at offset 4 is not supported (v1 used 32-bit counts; re-convert the model to v3)");
    if (v != 0 && (v & 0xFFFFu) == 0)
        return coder_fail(CODER_ERR_UNSUPPORTED, "GGUF version field at offset 4 reads 0x%08X: big-endian file? only little-endian GGUF is supported", v);
    return coder_fail(CODER_ERR_UNSUPPORTED, "GGUF version %u at offset 4 is not supported (2 and 3 are)", v);
}

/* ---- KVs ------------------------------------------------------------------------------------- */

/* Adds n bytes to the metadata total; CODER_ERR_LIMIT past the budget. */
static coder_status gguf_budget(const gguf_cur *c, uint64_t *used, uint64_t n, uint64_t max, const char *what) {
    uint64_t t;
    if (ck_add(*used, n, &t) || t > max)
        return coder_fail(CODER_ERR_LIMIT, "%s: %s of %llu bytes at offset %llu takes the metadata past its budget of %llu bytes",
                          c->ctx, what, (ull)n, (ull)c->pos, (ull)max);
    *used = t;
    return CODER_OK;
}

/* Reads a string length and checks it against the cap and the bytes left (its bytes follow). */
static coder_status gguf_rd_strlen(gguf_cur *c, uint64_t *len, const char *field) {
    uint64_t at = c->pos;
    TRY(gguf_rd_u64(c, len, field));
    if (*len > GGUF_MAX_STRING_LEN)
        return coder_fail(CODER_ERR_LIMIT, "%s: %s %llu at offset %llu exceeds the %llu-byte string cap",
                          c->ctx, field, (ull)*len, (ull)at, (ull)GGUF_MAX_STRING_LEN);
    return gguf_need(c, *len, "string bytes");
}

static coder_status gguf_parse_value(gguf_cur *c, gguf_kv *kv, uint64_t *budget, uint64_t max_meta) {
    uint64_t at = c->pos;
    if (kv->type == GGUF_TYPE_STRING) {
        uint64_t len;
        TRY(gguf_rd_strlen(c, &len, "string length"));
        TRY(gguf_budget(c, budget, len, max_meta, "string"));
        kv->str.ptr = (const char *)c->b + c->pos;
        kv->str.len = len;
        c->pos += len;
        return CODER_OK;
    }
    if (kv->type != GGUF_TYPE_ARRAY) {
        size_t sz = gguf_type_size(kv->type);
        TRY(gguf_need(c, sz, "value"));
        kv->data = c->b + c->pos;
        if (kv->type == GGUF_TYPE_BOOL && kv->data[0] > 1)
            return coder_fail(CODER_ERR_FORMAT, "%s: BOOL value %u at offset %llu is not 0 or 1", c->ctx, kv->data[0], (ull)at);
        c->pos += sz;
        return CODER_OK;
    }
    TRY(gguf_rd_u32(c, &kv->elem_type, "array element type"));
    if (kv->elem_type == GGUF_TYPE_ARRAY)
        return coder_fail(CODER_ERR_FORMAT, "%s: nested array (element type ARRAY) at offset %llu is not allowed", c->ctx, (ull)at);
    if (kv->elem_type >= GGUF_TYPE_COUNT)
        return coder_fail(CODER_ERR_FORMAT, "%s: invalid array element type %u at offset %llu", c->ctx, kv->elem_type, (ull)at);
    uint64_t count_at = c->pos;
    TRY(gguf_rd_u64(c, &kv->count, "array count"));
    if (kv->elem_type != GGUF_TYPE_STRING) {
        uint64_t esz = gguf_type_size(kv->elem_type), bytes;
        if (ck_mul(kv->count, esz, &bytes))
            return coder_fail(CODER_ERR_FORMAT, "%s: array count %llu at offset %llu times element size %llu overflows",
                              c->ctx, (ull)kv->count, (ull)count_at, (ull)esz);
        TRY(gguf_budget(c, budget, bytes, max_meta, "array"));
        TRY(gguf_need(c, bytes, "array elements"));
        kv->data = c->b + c->pos;
        if (kv->elem_type == GGUF_TYPE_BOOL)
            for (uint64_t i = 0; i < kv->count; i++)
                if (kv->data[i] > 1)
                    return coder_fail(CODER_ERR_FORMAT, "%s: BOOL element %llu at offset %llu is %u, not 0 or 1",
                                      c->ctx, (ull)i, (ull)(c->pos + i), kv->data[i]);
        c->pos += bytes;
        return CODER_OK;
    }
    /* String array: each element is at least its 8-byte length, which bounds count before the
     * (count x 16 bytes) gguf_str table is allocated. */
    if (kv->count > (c->size - c->pos) / 8)
        return coder_fail(CODER_ERR_TRUNCATED, "%s: string array count %llu at offset %llu needs at least %llu bytes but only %llu remain",
                          c->ctx, (ull)kv->count, (ull)count_at, (ull)kv->count * 8, (ull)(c->size - c->pos));
    TRY(gguf_budget(c, budget, kv->count * 8, max_meta, "string array"));
    kv->data = c->b + c->pos;
    kv->strs = coder_calloc((size_t)kv->count, sizeof(gguf_str));
    if (!kv->strs) return coder_fail(CODER_ERR_NOMEM, "%s: no memory for %llu array strings", c->ctx, (ull)kv->count);
    for (uint64_t i = 0; i < kv->count; i++) {
        uint64_t len;
        uint64_t el_at = c->pos;
        coder_status st = gguf_rd_strlen(c, &len, "string length");
        if (st == CODER_OK) st = gguf_budget(c, budget, len, max_meta, "array string");
        if (st != CODER_OK) {
            coder_fail_context("element %llu (offset %llu)", (ull)i, (ull)el_at);
            return st;
        }
        kv->strs[i].ptr = (const char *)c->b + c->pos;
        kv->strs[i].len = len;
        c->pos += len;
    }
    return CODER_OK;
}

static coder_status gguf_parse_kv(gguf_file *f, gguf_cur *c, size_t i, uint64_t *budget, uint64_t max_meta) {
    gguf_kv *kv = &f->kvs[i];
    char e[96];
    kv->offset = c->pos;
    kv->count = 1;
    snprintf(c->ctx, sizeof c->ctx, "KV #%zu (offset %llu)", i, (ull)c->pos);
    uint64_t len;
    TRY(gguf_rd_strlen(c, &len, "key length"));
    const uint8_t *key = c->b + c->pos;
    if (len == 0) return coder_fail(CODER_ERR_FORMAT, "%s: empty key at offset %llu", c->ctx, (ull)(c->pos - 8));
    if (!gguf_text_ok(key, (size_t)len))
        return coder_fail(CODER_ERR_FORMAT, "%s: key '%s' at offset %llu has a NUL, control byte or invalid UTF-8",
                          c->ctx, gguf_esc(key, (size_t)len, e, sizeof e), (ull)c->pos);
    TRY(gguf_budget(c, budget, len, max_meta, "key"));
    kv->key = coder_strndup((const char *)key, (size_t)len);
    if (!kv->key) return coder_fail(CODER_ERR_NOMEM, "%s: no memory for the key", c->ctx);
    kv->key_len = (size_t)len;
    c->pos += len;
    f->n_kv = i + 1; /* from here gguf_close frees this KV */
    long dup = gguf_table_insert(f->kv_table, f->kv_table_cap, kv->key, kv->key_len, i, gguf_kv_name_at, f);
    if (dup >= 0)
        return coder_fail(CODER_ERR_FORMAT, "%s: duplicate key '%s' (first at offset %llu)", c->ctx,
                          gguf_esc(key, (size_t)len, e, sizeof e), (ull)f->kvs[dup].offset);
    snprintf(c->ctx, sizeof c->ctx, "key '%s' (KV #%zu at offset %llu)", gguf_esc(key, (size_t)len, e, sizeof e), i,
             (ull)kv->offset);
    uint64_t type_at = c->pos;
    TRY(gguf_rd_u32(c, &kv->type, "value type"));
    if (kv->type >= GGUF_TYPE_COUNT)
        return coder_fail(CODER_ERR_FORMAT, "%s: invalid value type %u (0x%08X) at offset %llu", c->ctx, kv->type, kv->type,
                          (ull)type_at);
    kv->value_offset = c->pos;
    TRY(gguf_parse_value(c, kv, budget, max_meta));
    kv->value_len = c->pos - kv->value_offset;
    return CODER_OK;
}

/* general.alignment: UINT32, a power of two, a multiple of 8, at most GGUF_MAX_ALIGNMENT. */
static coder_status gguf_parse_alignment(gguf_file *f) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_kv_find(f, "general.alignment");
    if (!kv) return CODER_OK;
    if (kv->type != GGUF_TYPE_UINT32)
        return coder_fail(CODER_ERR_FORMAT, "key general.alignment (offset %llu) has type %s, expected UINT32",
                          (ull)kv->offset, gguf_type_name(kv->type));
    uint32_t a = gguf_le32(kv->data);
    if (a == 0 || (a & (a - 1)) != 0 || a % 8 != 0 || a > GGUF_MAX_ALIGNMENT)
        return coder_fail(CODER_ERR_FORMAT, "key general.alignment (offset %llu) is %u; expected a power of two, a multiple of 8, at most %u",
                          (ull)kv->offset, a, GGUF_MAX_ALIGNMENT);
    f->alignment = a;
    return CODER_OK;
}

/* Split shards: see docs/GGUF.md. We load single files only. */
static coder_status gguf_parse_split(const gguf_file *f) {
    uint64_t count = 0, no = 0;
    bool has_count = gguf_find_key(f, "split.count") >= 0, has_no = gguf_find_key(f, "split.no") >= 0;
    if (!has_count && !has_no) return CODER_OK;
    if (!has_count) return coder_fail(CODER_ERR_FORMAT, "key split.no is present without split.count");
    TRY(gguf_get_u64(f, "split.count", &count, true));
    if (has_no) TRY(gguf_get_u64(f, "split.no", &no, true));
    if (count == 0) return coder_fail(CODER_ERR_FORMAT, "key split.count is 0");
    if (no >= count) return coder_fail(CODER_ERR_FORMAT, "key split.no = %llu is out of range for split.count = %llu", (ull)no, (ull)count);
    if (count > 1)
        return coder_fail(CODER_ERR_UNSUPPORTED, "split GGUF shard %llu of %llu (split.no, split.count); merge the shards first (llama-gguf-split --merge)",
                          (ull)no + 1, (ull)count);
    return CODER_OK;
}

/* ---- tensor infos ---------------------------------------------------------------------------- */

static bool gguf_type_removed(uint32_t t) { return t == 4 || t == 5 || (t >= 31 && t <= 33) || (t >= 36 && t <= 38); }

static coder_status gguf_check_type(const gguf_cur *c, uint32_t type, uint64_t at) {
    if (quant_type_known(type) && quant_block_size(type) > 0 && quant_type_size(type) > 0) return CODER_OK;
    if (quant_type_known(type))
        return coder_fail(CODER_ERR_UNSUPPORTED, "%s: tensor type %s (%u) at offset %llu has no known block layout",
                          c->ctx, quant_type_name(type), type, (ull)at);
    if (gguf_type_removed(type))
        return coder_fail(CODER_ERR_FORMAT, "%s: tensor type %u at offset %llu is a removed ggml type, never valid in a file", c->ctx, type, (ull)at);
    if (type < 256)
        return coder_fail(CODER_ERR_UNSUPPORTED, "%s: unknown tensor type %u at offset %llu (a newer ggml type?)", c->ctx, type, (ull)at);
    return coder_fail(CODER_ERR_FORMAT, "%s: invalid tensor type %u (0x%08X) at offset %llu", c->ctx, type, type, (ull)at);
}

/* Element count and byte size with overflow checks; both must fit in int64 like ggml's. */
static coder_status gguf_tensor_sizes(const gguf_cur *c, gguf_tensor *t, uint64_t at) {
    uint64_t n = 1;
    for (uint32_t j = 0; j < GGUF_MAX_DIMS; j++)
        if (ck_mul(n, t->ne[j], &n) || n > GGUF_I64_MAX)
            return coder_fail(CODER_ERR_FORMAT, "%s: element count %llu x %llu x %llu x %llu (offset %llu) overflows int64", c->ctx,
                              (ull)t->ne[0], (ull)t->ne[1], (ull)t->ne[2], (ull)t->ne[3], (ull)at);
    t->n_elements = n;
    uint32_t bs = quant_block_size(t->type);
    if (t->ne[0] % bs != 0)
        return coder_fail(CODER_ERR_FORMAT, "%s: ne[0] = %llu is not a multiple of the %s block size %u (offset %llu)", c->ctx,
                          (ull)t->ne[0], quant_type_name(t->type), bs, (ull)at);
    uint64_t bytes;
    if (!quant_row_bytes(t->type, t->ne[0], &bytes) || ck_mul(bytes, t->ne[1], &bytes) || ck_mul(bytes, t->ne[2], &bytes) ||
        ck_mul(bytes, t->ne[3], &bytes) || bytes > GGUF_I64_MAX)
        return coder_fail(CODER_ERR_FORMAT, "%s: byte size of %s [%llu, %llu, %llu, %llu] (offset %llu) overflows int64", c->ctx,
                          quant_type_name(t->type), (ull)t->ne[0], (ull)t->ne[1], (ull)t->ne[2], (ull)t->ne[3], (ull)at);
    t->nbytes = bytes;
    return CODER_OK;
}

static coder_status gguf_parse_info(gguf_file *f, gguf_cur *c, size_t i) {
    gguf_tensor *t = &f->tensors[i];
    char e[96];
    uint64_t start = c->pos;
    snprintf(c->ctx, sizeof c->ctx, "tensor #%zu (offset %llu)", i, (ull)start);
    uint64_t len;
    TRY(gguf_rd_u64(c, &len, "name length"));
    if (len == 0) return coder_fail(CODER_ERR_FORMAT, "%s: empty tensor name", c->ctx);
    if (len >= GGUF_MAX_NAME)
        return coder_fail(CODER_ERR_FORMAT, "%s: name length %llu at offset %llu; tensor names must be shorter than %d bytes",
                          c->ctx, (ull)len, (ull)start, GGUF_MAX_NAME);
    TRY(gguf_need(c, len, "name"));
    const uint8_t *name = c->b + c->pos;
    if (!gguf_text_ok(name, (size_t)len))
        return coder_fail(CODER_ERR_FORMAT, "%s: name '%s' at offset %llu has a NUL, control byte or invalid UTF-8", c->ctx,
                          gguf_esc(name, (size_t)len, e, sizeof e), (ull)c->pos);
    memcpy(t->name, name, (size_t)len);
    t->name[len] = 0;
    c->pos += len;
    f->n_tensors = i + 1;
    long dup = gguf_table_insert(f->tensor_table, f->tensor_table_cap, t->name, (size_t)len, i, gguf_tensor_name_at, f);
    if (dup >= 0) return coder_fail(CODER_ERR_FORMAT, "%s: duplicate tensor name '%s' (also tensor #%ld)", c->ctx, t->name, dup);
    snprintf(c->ctx, sizeof c->ctx, "tensor '%s' (#%zu at offset %llu)", t->name, i, (ull)start);

    uint64_t at = c->pos;
    TRY(gguf_rd_u32(c, &t->n_dims, "n_dims"));
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return coder_fail(CODER_ERR_FORMAT, "%s: n_dims = %u at offset %llu; must be 1..%d", c->ctx, t->n_dims, (ull)at, GGUF_MAX_DIMS);
    for (uint32_t j = 0; j < GGUF_MAX_DIMS; j++) t->ne[j] = 1;
    for (uint32_t j = 0; j < t->n_dims; j++) {
        at = c->pos;
        TRY(gguf_rd_u64(c, &t->ne[j], "ne"));
        if (t->ne[j] > GGUF_I64_MAX)
            return coder_fail(CODER_ERR_FORMAT, "%s: ne[%u] = %lld at offset %llu is negative", c->ctx, j, (long long)t->ne[j], (ull)at);
        if (t->ne[j] == 0)
            return coder_fail(CODER_ERR_FORMAT, "%s: ne[%u] = 0 at offset %llu; empty tensors are not accepted", c->ctx, j, (ull)at);
    }
    at = c->pos;
    TRY(gguf_rd_u32(c, &t->type, "type"));
    TRY(gguf_check_type(c, t->type, at));
    at = c->pos;
    TRY(gguf_rd_u64(c, &t->offset, "offset"));
    if (t->offset % f->alignment != 0)
        return coder_fail(CODER_ERR_FORMAT, "%s: data offset %llu (field at %llu) is not a multiple of the alignment %u", c->ctx,
                          (ull)t->offset, (ull)at, f->alignment);
    TRY(gguf_tensor_sizes(c, t, start));
    uint64_t end;
    if (ck_add(t->offset, t->nbytes, &end) || end > GGUF_I64_MAX)
        return coder_fail(CODER_ERR_FORMAT, "%s: data offset %llu + size %llu overflows int64", c->ctx, (ull)t->offset, (ull)t->nbytes);
    return CODER_OK;
}

typedef struct { uint64_t begin, end; size_t index; } gguf_span;

static int gguf_span_cmp(const void *a, const void *b) {
    const gguf_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Every tensor inside the file (the first one outside: TRUNCATED), then no two overlapping
 * (FORMAT). Gaps and any order are allowed. */
static coder_status gguf_check_layout(gguf_file *f) {
    for (size_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t b, e;
        if (ck_add(f->data_offset, t->offset, &b) || ck_add(b, t->nbytes, &e) || e > GGUF_I64_MAX)
            return coder_fail(CODER_ERR_FORMAT, "tensor '%s' (#%zu): data offset %llu + %llu + size %llu overflows int64", t->name, i,
                              (ull)f->data_offset, (ull)t->offset, (ull)t->nbytes);
        if (e > f->size)
            return coder_fail(CODER_ERR_TRUNCATED, "tensor '%s' (#%zu) occupies file bytes [%llu, %llu) but the file is only %llu bytes",
                              t->name, i, (ull)b, (ull)e, (ull)f->size);
        t->data = f->bytes + b;
    }
    if (f->n_tensors < 2) return CODER_OK;
    gguf_span *s = coder_malloc(f->n_tensors * sizeof *s);
    if (!s) return coder_fail(CODER_ERR_NOMEM, "no memory to sort %zu tensors", f->n_tensors);
    for (size_t i = 0; i < f->n_tensors; i++) s[i] = (gguf_span){f->tensors[i].offset, f->tensors[i].offset + f->tensors[i].nbytes, i};
    qsort(s, f->n_tensors, sizeof *s, gguf_span_cmp);
    coder_status st = CODER_OK;
    for (size_t i = 1; i < f->n_tensors && st == CODER_OK; i++)
        if (s[i].begin < s[i - 1].end)
            st = coder_fail(CODER_ERR_FORMAT, "tensor '%s' (data [%llu, %llu)) overlaps tensor '%s' (data [%llu, %llu))",
                            f->tensors[s[i].index].name, (ull)s[i].begin, (ull)s[i].end, f->tensors[s[i - 1].index].name,
                            (ull)s[i - 1].begin, (ull)s[i - 1].end);
    coder_mfree(s);
    return st;
}

/* ---- whole file ------------------------------------------------------------------------------ */

static coder_status gguf_parse(gguf_file *f, const gguf_open_opts *opts) {
    uint64_t max_meta = opts && opts->max_metadata_bytes ? opts->max_metadata_bytes : GGUF_DEFAULT_MAX_METADATA_BYTES;
    uint64_t max_tensors = opts && opts->max_tensors ? opts->max_tensors : GGUF_DEFAULT_MAX_TENSORS;
    gguf_cur c = {.b = f->bytes, .size = f->size, .pos = 0, .ctx = "header"};
    TRY(gguf_parse_magic(f));
    c.pos = 4;
    TRY(gguf_parse_version(&c, &f->version));
    uint64_t n_tensors, n_kv, need, t;
    TRY(gguf_rd_u64(&c, &n_tensors, "tensor count"));
    TRY(gguf_rd_u64(&c, &n_kv, "KV count"));
    if (n_kv > GGUF_DEFAULT_MAX_KV)
        return coder_fail(CODER_ERR_LIMIT, "header: KV count %llu at offset 16 exceeds the cap of %llu", (ull)n_kv, (ull)GGUF_DEFAULT_MAX_KV);
    if (n_tensors > max_tensors)
        return coder_fail(CODER_ERR_LIMIT, "header: tensor count %llu at offset 8 exceeds the cap of %llu", (ull)n_tensors, (ull)max_tensors);
    /* Both counts are <= 2^32 here, so this cannot overflow. */
    need = n_kv * GGUF_MIN_KV_BYTES + n_tensors * GGUF_MIN_INFO_BYTES;
    if (need > f->size - c.pos)
        return coder_fail(CODER_ERR_TRUNCATED, "header: %llu KVs and %llu tensor infos need at least %llu bytes after offset 24 but only %llu remain",
                          (ull)n_kv, (ull)n_tensors, (ull)need, (ull)(f->size - c.pos));
    f->kv_table_cap = gguf_table_cap((size_t)n_kv);
    f->tensor_table_cap = gguf_table_cap((size_t)n_tensors);
    f->kvs = coder_calloc((size_t)n_kv, sizeof *f->kvs);
    f->tensors = coder_calloc((size_t)n_tensors, sizeof *f->tensors);
    f->kv_table = coder_calloc(f->kv_table_cap, sizeof *f->kv_table);
    f->tensor_table = coder_calloc(f->tensor_table_cap, sizeof *f->tensor_table);
    if (!f->kvs || !f->tensors || !f->kv_table || !f->tensor_table)
        return coder_fail(CODER_ERR_NOMEM, "no memory for %llu KVs and %llu tensors", (ull)n_kv, (ull)n_tensors);
    uint64_t budget = 0;
    for (size_t i = 0; i < n_kv; i++) TRY(gguf_parse_kv(f, &c, i, &budget, max_meta));
    TRY(gguf_parse_alignment(f));
    TRY(gguf_parse_split(f));
    for (size_t i = 0; i < n_tensors; i++) TRY(gguf_parse_info(f, &c, i));
    if (ck_add(c.pos, f->alignment - 1, &t)) return coder_fail(CODER_ERR_FORMAT, "data section offset overflows");
    f->data_offset = t / f->alignment * f->alignment;
    return gguf_check_layout(f);
}

static coder_status gguf_finish(gguf_file *f, const gguf_open_opts *opts, gguf_file **out) {
    coder_status st = gguf_parse(f, opts);
    if (st != CODER_OK) {
        gguf_close(f);
        return st;
    }
    *out = f;
    return CODER_OK;
}

coder_status gguf_open_memory(const void *data, size_t size, const gguf_open_opts *opts, gguf_file **out) {
    if (!out) return coder_fail(CODER_ERR_INVALID_ARG, "gguf_open_memory: out is NULL");
    *out = NULL;
    if (!data && size) return coder_fail(CODER_ERR_INVALID_ARG, "gguf_open_memory: data is NULL");
    if (size == 0) return coder_fail(CODER_ERR_TRUNCATED, "GGUF buffer is empty (0 bytes)");
    gguf_file *f = coder_calloc(1, sizeof *f);
    if (!f) return coder_fail(CODER_ERR_NOMEM, "no memory for a gguf_file");
    f->bytes = data;
    f->size = size;
    f->storage = GGUF_STORE_BORROWED;
    return gguf_finish(f, opts, out);
}

/* Reads the whole file into an aligned buffer (read mode: later changes to the file cannot
 * reach us, unlike a mapping that SIGBUSes when the file shrinks). */
static coder_status gguf_read_all(int fd, uint64_t size, const char *pe, uint8_t **out) {
    /* C7 preflight: a file larger than physical RAM cannot be read into memory; fail before the
     * allocation (with overcommit it would "succeed" and the reads would meet the OOM killer). */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t ram = 0;
    if (pages > 0 && page > 0 && !ck_mul((uint64_t)pages, (uint64_t)page, &ram) && size > ram)
        return coder_fail(CODER_ERR_NOMEM, "'%s': reading %llu bytes into memory needs more than the %llu bytes of "
                          "RAM (use_mmap = 1 maps the file instead)", pe, (ull)size, (ull)ram);
    uint8_t *buf = coder_malloc_aligned((size_t)size, size >= (2u << 20) ? (2u << 20) : 4096);
    if (!buf) return coder_fail(CODER_ERR_NOMEM, "'%s': no memory to read %llu bytes", pe, (ull)size);
    coder_advise_hugepages(buf, (size_t)size);
    uint64_t done = 0;
    while (done < size) {
        size_t chunk = size - done > (1u << 30) ? (1u << 30) : (size_t)(size - done);
        ssize_t r = pread(fd, buf + done, chunk, (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            coder_status st = r < 0 ? coder_fail(CODER_ERR_IO, "'%s': read failed at offset %llu: %s", pe, (ull)done, GGUF_ERRSTR(errno))
                                    : coder_fail(CODER_ERR_IO, "'%s': file shrank while reading (end at offset %llu of %llu)", pe,
                                                 (ull)done, (ull)size);
            coder_mfree_aligned(buf);
            return st;
        }
        done += (uint64_t)r;
    }
    *out = buf;
    return CODER_OK;
}

coder_status gguf_open(const char *path, const gguf_open_opts *opts, gguf_file **out) {
    if (!out) return coder_fail(CODER_ERR_INVALID_ARG, "gguf_open: out is NULL");
    *out = NULL;
    if (!path) return coder_fail(CODER_ERR_INVALID_ARG, "gguf_open: path is NULL");
    if (!*path) return coder_fail(CODER_ERR_INVALID_ARG, "gguf_open: path is empty");
    char pe[200];
    gguf_esc(path, strlen(path), pe, sizeof pe);
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then rejects it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return coder_fail(CODER_ERR_IO, "cannot open '%s': %s", pe, GGUF_ERRSTR(errno));
    struct stat sb;
    coder_status st = CODER_OK;
    if (fstat(fd, &sb) != 0) st = coder_fail(CODER_ERR_IO, "cannot stat '%s': %s", pe, GGUF_ERRSTR(errno));
    else if (S_ISDIR(sb.st_mode)) st = coder_fail(CODER_ERR_IO, "'%s' is a directory, not a GGUF file", pe);
    else if (!S_ISREG(sb.st_mode)) st = coder_fail(CODER_ERR_IO, "'%s' is not a regular file (FIFO, device or socket)", pe);
    else if (sb.st_size == 0) st = coder_fail(CODER_ERR_TRUNCATED, "'%s' is empty (0 bytes)", pe);
    if (st != CODER_OK) {
        close(fd);
        return st;
    }
    uint64_t size = (uint64_t)sb.st_size;
    gguf_file *f = coder_calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return coder_fail(CODER_ERR_NOMEM, "no memory for a gguf_file");
    }
    f->size = size;
    if (opts && opts->use_mmap) {
        void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) st = coder_fail(CODER_ERR_IO, "cannot mmap '%s' (%llu bytes): %s", pe, (ull)size, GGUF_ERRSTR(errno));
        else {
            f->bytes = m;
            f->storage = GGUF_STORE_MMAP;
            coder_advise_hugepages(m, (size_t)size);
        }
    } else {
        uint8_t *buf = NULL;
        st = gguf_read_all(fd, size, pe, &buf);
        f->bytes = buf;
        f->storage = GGUF_STORE_HEAP;
    }
    close(fd);
    if (st != CODER_OK) {
        gguf_close(f);
        return st;
    }
    st = gguf_finish(f, opts, out);
    if (st != CODER_OK) coder_fail_context("'%s'", pe);
    return st;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_kv; i++) {
        coder_mfree(f->kvs[i].key);
        coder_mfree(f->kvs[i].strs);
    }
    coder_mfree(f->kvs);
    coder_mfree(f->tensors);
    coder_mfree(f->kv_table);
    coder_mfree(f->tensor_table);
    if (f->storage == GGUF_STORE_MMAP && f->bytes) munmap((void *)f->bytes, (size_t)f->size);
    if (f->storage == GGUF_STORE_HEAP) coder_mfree_aligned((void *)f->bytes);
    coder_mfree(f);
}
