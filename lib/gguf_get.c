/* gguf_get.c - read access to a parsed GGUF file: header facts, KV lookup by hash, the typed
 * metadata getters (integer getters accept any integer type whose value fits; float getters
 * FLOAT32/FLOAT64; anything else is CODER_ERR_FORMAT "key K has type T, expected ..."), and
 * tensor lookup. Values are read from the file bytes with explicit little-endian decoding. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gguf_impl.h"

typedef unsigned long long ull;

uint32_t gguf_version(const gguf_file *f) { return f ? f->version : 0; }
uint32_t gguf_alignment(const gguf_file *f) { return f ? f->alignment : 0; }
uint64_t gguf_data_offset(const gguf_file *f) { return f ? f->data_offset : 0; }
uint64_t gguf_file_size(const gguf_file *f) { return f ? f->size : 0; }
const void *gguf_file_bytes(const gguf_file *f) { return f ? f->bytes : NULL; }
int gguf_storage(const gguf_file *f) { return f ? f->storage : GGUF_STORE_BORROWED; }

size_t gguf_type_size(uint32_t type) {
    switch (type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

const char *gguf_type_name(uint32_t type) {
    static const char *const names[GGUF_TYPE_COUNT] = {
        "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
        "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64",
    };
    return type < GGUF_TYPE_COUNT ? names[type] : "?";
}

/* "UINT32" or "ARRAY[INT32]" for messages. */
static const char *gguf_kv_type_desc(const gguf_kv *kv, char *buf, size_t cap) {
    if (kv->type == GGUF_TYPE_ARRAY) snprintf(buf, cap, "ARRAY[%s]", gguf_type_name(kv->elem_type));
    else snprintf(buf, cap, "%s", gguf_type_name(kv->type));
    return buf;
}

const gguf_kv *gguf_kv_find(const gguf_file *f, const char *key) {
    if (!f || !key || !f->kv_table) return NULL;
    size_t len = strlen(key), mask = f->kv_table_cap - 1;
    for (size_t s = gguf_hash_bytes(key, len) & mask;; s = (s + 1) & mask) {
        uint32_t slot = f->kv_table[s];
        if (slot == 0) return NULL;
        const gguf_kv *kv = &f->kvs[slot - 1];
        if (kv->key_len == len && memcmp(kv->key, key, len) == 0) return kv;
    }
}

size_t gguf_kv_count(const gguf_file *f) { return f ? f->n_kv : 0; }
const char *gguf_kv_key(const gguf_file *f, size_t i) { return f && i < f->n_kv ? f->kvs[i].key : NULL; }
uint32_t gguf_kv_type(const gguf_file *f, size_t i) { return f && i < f->n_kv ? f->kvs[i].type : GGUF_TYPE_COUNT; }

long gguf_find_key(const gguf_file *f, const char *key) {
    const gguf_kv *kv = gguf_kv_find(f, key);
    return kv ? (long)(kv - f->kvs) : -1;
}

coder_status gguf_kv_raw(const gguf_file *f, size_t i, uint32_t *type, const void **value, uint64_t *len) {
    if (!f || i >= f->n_kv) return coder_fail(CODER_ERR_INVALID_ARG, "gguf_kv_raw: KV index %zu out of range", i);
    *type = f->kvs[i].type;
    *value = f->bytes + f->kvs[i].value_offset;
    *len = f->kvs[i].value_len;
    return CODER_OK;
}

/* Finds key for a getter: absent -> FORMAT if required, else OK with *kv NULL. */
static coder_status gguf_lookup(const gguf_file *f, const char *key, bool required, const gguf_kv **kv) {
    *kv = NULL;
    if (!f || !key) return coder_fail(CODER_ERR_INVALID_ARG, "gguf getter: file or key is NULL");
    *kv = gguf_kv_find(f, key);
    if (!*kv && required) return coder_fail(CODER_ERR_FORMAT, "missing key %s", key);
    return CODER_OK;
}

static coder_status gguf_wrong_type(const gguf_kv *kv, const char *expected) {
    char t[32];
    return coder_fail(CODER_ERR_FORMAT, "key %s has type %s, expected %s (KV at offset %llu)", kv->key,
                      gguf_kv_type_desc(kv, t, sizeof t), expected, (ull)kv->offset);
}

static uint64_t gguf_rd_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Reads an integer-typed KV as sign + magnitude. false if the KV is not an integer type. */
static bool gguf_kv_int(const gguf_kv *kv, bool *neg, uint64_t *mag) {
    uint64_t raw;
    int bits;
    bool is_signed;
    switch (kv->type) {
    case GGUF_TYPE_UINT8: bits = 8; is_signed = false; break;
    case GGUF_TYPE_INT8: bits = 8; is_signed = true; break;
    case GGUF_TYPE_UINT16: bits = 16; is_signed = false; break;
    case GGUF_TYPE_INT16: bits = 16; is_signed = true; break;
    case GGUF_TYPE_UINT32: bits = 32; is_signed = false; break;
    case GGUF_TYPE_INT32: bits = 32; is_signed = true; break;
    case GGUF_TYPE_UINT64: bits = 64; is_signed = false; break;
    case GGUF_TYPE_INT64: bits = 64; is_signed = true; break;
    default: return false;
    }
    raw = gguf_rd_le(kv->data, (size_t)bits / 8);
    *neg = is_signed && (raw >> (bits - 1)) & 1;
    if (*neg) {
        /* two's complement magnitude within `bits` bits */
        uint64_t mask = bits == 64 ? ~0ull : ((1ull << bits) - 1);
        *mag = ((~raw) & mask) + 1;
    } else {
        *mag = raw;
    }
    return true;
}

/* Integer getter core: value must be an integer in [-min_mag, max]. */
static coder_status gguf_get_int(const gguf_file *f, const char *key, bool required, uint64_t max, uint64_t min_mag,
                                 const char *expected, bool *found, bool *neg, uint64_t *mag) {
    const gguf_kv *kv;
    *found = false;
    TRY(gguf_lookup(f, key, required, &kv));
    if (!kv) return CODER_OK;
    if (!gguf_kv_int(kv, neg, mag)) return gguf_wrong_type(kv, expected);
    if ((*neg && *mag > min_mag) || (!*neg && *mag > max)) {
        char t[32];
        return coder_fail(CODER_ERR_FORMAT, "key %s has type %s with value %s%llu, expected %s (out of range; KV at offset %llu)",
                          kv->key, gguf_kv_type_desc(kv, t, sizeof t), *neg ? "-" : "", (ull)*mag, expected, (ull)kv->offset);
    }
    *found = true;
    return CODER_OK;
}

coder_status gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, bool required) {
    bool found, neg;
    uint64_t mag;
    TRY(gguf_get_int(f, key, required, UINT32_MAX, 0, "an integer in 0..4294967295", &found, &neg, &mag));
    if (found) *out = (uint32_t)mag;
    return CODER_OK;
}

coder_status gguf_get_i32(const gguf_file *f, const char *key, int32_t *out, bool required) {
    bool found, neg;
    uint64_t mag;
    TRY(gguf_get_int(f, key, required, INT32_MAX, 1ull << 31, "an integer in -2147483648..2147483647", &found, &neg, &mag));
    if (found) *out = neg ? (int32_t)(-(int64_t)mag) : (int32_t)mag;
    return CODER_OK;
}

coder_status gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, bool required) {
    bool found, neg;
    uint64_t mag;
    TRY(gguf_get_int(f, key, required, UINT64_MAX, 0, "a non-negative integer", &found, &neg, &mag));
    if (found) *out = mag;
    return CODER_OK;
}

coder_status gguf_get_f32(const gguf_file *f, const char *key, float *out, bool required) {
    const gguf_kv *kv;
    TRY(gguf_lookup(f, key, required, &kv));
    if (!kv) return CODER_OK;
    if (kv->type == GGUF_TYPE_FLOAT32) {
        uint32_t bits = (uint32_t)gguf_rd_le(kv->data, 4);
        memcpy(out, &bits, 4);
        return CODER_OK;
    }
    if (kv->type != GGUF_TYPE_FLOAT64) return gguf_wrong_type(kv, "FLOAT32 or FLOAT64");
    uint64_t bits = gguf_rd_le(kv->data, 8);
    double d;
    memcpy(&d, &bits, 8);
    if (isfinite(d) && fabs(d) > 3.4028234663852886e38)
        return coder_fail(CODER_ERR_FORMAT, "key %s has type FLOAT64 with value %g, expected a value that fits FLOAT32", kv->key, d);
    *out = (float)d;
    return CODER_OK;
}

coder_status gguf_get_bool(const gguf_file *f, const char *key, bool *out, bool required) {
    const gguf_kv *kv;
    TRY(gguf_lookup(f, key, required, &kv));
    if (!kv) return CODER_OK;
    if (kv->type != GGUF_TYPE_BOOL) return gguf_wrong_type(kv, "BOOL");
    *out = kv->data[0] != 0;
    return CODER_OK;
}

coder_status gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, bool required) {
    const gguf_kv *kv;
    TRY(gguf_lookup(f, key, required, &kv));
    if (!kv) return CODER_OK;
    if (kv->type != GGUF_TYPE_STRING) return gguf_wrong_type(kv, "STRING");
    *out = kv->str;
    return CODER_OK;
}

coder_status gguf_get_array(const gguf_file *f, const char *key, uint32_t *elem_type, const void **data, uint64_t *count,
                            bool required) {
    const gguf_kv *kv;
    TRY(gguf_lookup(f, key, required, &kv));
    if (!kv) return CODER_OK;
    if (kv->type != GGUF_TYPE_ARRAY || kv->elem_type == GGUF_TYPE_STRING) return gguf_wrong_type(kv, "an ARRAY of numbers");
    *elem_type = kv->elem_type;
    *data = kv->data;
    *count = kv->count;
    return CODER_OK;
}

coder_status gguf_get_str_array(const gguf_file *f, const char *key, const gguf_str **items, uint64_t *count, bool required) {
    const gguf_kv *kv;
    TRY(gguf_lookup(f, key, required, &kv));
    if (!kv) return CODER_OK;
    if (kv->type != GGUF_TYPE_ARRAY || kv->elem_type != GGUF_TYPE_STRING) return gguf_wrong_type(kv, "ARRAY[STRING]");
    *items = kv->strs;
    *count = kv->count;
    return CODER_OK;
}

size_t gguf_tensor_count(const gguf_file *f) { return f ? f->n_tensors : 0; }
const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i) { return f && i < f->n_tensors ? &f->tensors[i] : NULL; }

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    if (!f || !name || !f->tensor_table) return NULL;
    size_t len = strlen(name), mask = f->tensor_table_cap - 1;
    if (len >= GGUF_MAX_NAME) return NULL;
    for (size_t s = gguf_hash_bytes(name, len) & mask;; s = (s + 1) & mask) {
        uint32_t slot = f->tensor_table[s];
        if (slot == 0) return NULL;
        const gguf_tensor *t = &f->tensors[slot - 1];
        if (strcmp(t->name, name) == 0) return t;
    }
}
