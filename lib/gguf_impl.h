/* gguf_impl.h - private layout of a parsed GGUF file, shared by gguf.c (open/parse/validate) and
 * gguf_get.c (accessors and typed getters). Nothing outside gguf*.c includes this. */
#ifndef CODER_GGUF_IMPL_H
#define CODER_GGUF_IMPL_H

#include "gguf.h"

/* One metadata KV. Every pointer points into the file's bytes except key and strs. */
typedef struct gguf_kv {
    char *key;                /* NUL-terminated copy (keys never contain NUL: validated)           */
    size_t key_len;
    uint32_t type;            /* GGUF_TYPE_*                                                       */
    uint32_t elem_type;       /* arrays only                                                       */
    uint64_t count;           /* arrays: number of elements; scalars and strings: 1                */
    uint64_t offset;          /* file offset of the KV (its key-length field), for messages        */
    uint64_t value_offset;    /* file offset of the encoded value (just after the u32 type)        */
    uint64_t value_len;       /* encoded length of the value (what gguf_writer_copy_kvs copies)    */
    const uint8_t *data;      /* scalar: its bytes; ARRAY: first element                           */
    gguf_str str;             /* STRING                                                            */
    gguf_str *strs;           /* ARRAY of STRING: count items (owned)                              */
} gguf_kv;

struct gguf_file {
    const uint8_t *bytes;
    uint64_t size;
    int storage;              /* GGUF_STORE_*: how bytes are released                              */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    gguf_kv *kvs;
    size_t n_kv;              /* KVs fully parsed so far (gguf_close frees exactly these)          */
    gguf_tensor *tensors;
    size_t n_tensors;
    /* Open-addressing hash tables: slot holds index + 1, 0 = empty; capacity a power of two. */
    uint32_t *kv_table;
    size_t kv_table_cap;
    uint32_t *tensor_table;
    size_t tensor_table_cap;
};

/* FNV-1a over n bytes. */
static inline uint64_t gguf_hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

const gguf_kv *gguf_kv_find(const gguf_file *f, const char *key);
/* Checks text is non-empty, strict UTF-8 and free of NUL/control bytes (keys and tensor names). */
bool gguf_text_ok(const uint8_t *s, size_t n);

#endif
