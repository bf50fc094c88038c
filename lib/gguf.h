/* gguf.h - strict GGUF v2/v3 reader and a writer (internal API).
 *
 * The reader validates every count, length, type, dimension, offset and size with checked
 * arithmetic against the bytes actually present before allocating anything for it. Errors:
 * CODER_ERR_TRUNCATED (a field or tensor runs past the end; message has the offset),
 * CODER_ERR_FORMAT (malformed; message names the key/tensor/field and offset),
 * CODER_ERR_UNSUPPORTED (version, byte order, unknown tensor type), CODER_ERR_LIMIT (a cap below),
 * CODER_ERR_IO (open/stat/mmap/read), CODER_ERR_NOMEM. */
#ifndef CODER_GGUF_H
#define CODER_GGUF_H

#include "core.h"

/* Metadata value types (GGUF ids). */
enum {
    GGUF_TYPE_UINT8 = 0, GGUF_TYPE_INT8 = 1, GGUF_TYPE_UINT16 = 2, GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4, GGUF_TYPE_INT32 = 5, GGUF_TYPE_FLOAT32 = 6, GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8, GGUF_TYPE_ARRAY = 9, GGUF_TYPE_UINT64 = 10, GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12, GGUF_TYPE_COUNT = 13
};

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME 64              /* tensor names are shorter than this (llama.cpp's limit) */
#define GGUF_DEFAULT_ALIGNMENT 32

/* Caps (CODER_ERR_LIMIT beyond them); 0 in gguf_open_opts means "default". */
#define GGUF_DEFAULT_MAX_METADATA_BYTES (512ull << 20) /* sum of all string bytes and array bytes */
#define GGUF_DEFAULT_MAX_TENSORS 65536ull
#define GGUF_DEFAULT_MAX_KV 65536ull
#define GGUF_MAX_STRING_LEN (1ull << 30)
#define GGUF_MAX_ALIGNMENT (1u << 20)   /* general.alignment above it: CODER_ERR_FORMAT (BAD_INPUTS A13) */

/* A string inside the file: not NUL-terminated, points into the file's bytes. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

typedef struct gguf_tensor {
    char name[GGUF_MAX_NAME];         /* NUL-terminated copy                                    */
    uint32_t n_dims;                  /* 1..4                                                   */
    uint64_t ne[GGUF_MAX_DIMS];       /* ne[0] fastest; missing trailing dims are 1             */
    uint32_t type;                    /* ggml type id (quant.h)                                 */
    uint64_t offset;                  /* relative to the data section                          */
    uint64_t nbytes;                  /* validated size in bytes                                */
    uint64_t n_elements;
    const void *data;                 /* pointer to the bytes (mmap or memory copy)             */
} gguf_tensor;

typedef struct gguf_open_opts {
    bool use_mmap;                    /* true: mmap the file; false: read it into memory        */
    uint64_t max_metadata_bytes;      /* 0: GGUF_DEFAULT_MAX_METADATA_BYTES                      */
    uint64_t max_tensors;             /* 0: default                                             */
} gguf_open_opts;

typedef struct gguf_file gguf_file;

/* Opens and validates a file: header, every KV, every tensor info, and that every tensor lies
 * inside the file (C1: CODER_ERR_TRUNCATED naming the first tensor out of bounds). opts NULL: read
 * mode (the file is copied, so later changes to it cannot SIGBUS us) and default caps. Policies
 * and the status of each malformation: docs/GGUF.md. */
coder_status gguf_open(const char *path, const gguf_open_opts *opts, gguf_file **out);
/* Same checks over bytes in memory. The buffer is borrowed and must outlive the gguf_file. */
coder_status gguf_open_memory(const void *data, size_t size, const gguf_open_opts *opts, gguf_file **out);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);
uint64_t gguf_data_offset(const gguf_file *f);  /* file offset of the data section               */
uint64_t gguf_file_size(const gguf_file *f);
const void *gguf_file_bytes(const gguf_file *f);/* the whole file (mapped or read)                */
/* How the bytes are held (and released): GGUF_STORE_MMAP (a private read-only file mapping),
 * GGUF_STORE_HEAP (read into memory the gguf_file owns: writable), GGUF_STORE_BORROWED (the
 * caller's). */
enum { GGUF_STORE_BORROWED = 0, GGUF_STORE_MMAP = 1, GGUF_STORE_HEAP = 2 };
int gguf_storage(const gguf_file *f);

/* --- metadata ---
 * Typed getters by key. When the key is absent: required -> CODER_ERR_FORMAT "missing key K";
 * not required -> CODER_OK with *out untouched (so callers preset the default). When the key is
 * present with a type that cannot represent the requested one, or a value out of range:
 * CODER_ERR_FORMAT "key K has type T, expected ...". Integer getters accept any integer type whose
 * value fits; float getters accept FLOAT32/FLOAT64. */
size_t gguf_kv_count(const gguf_file *f);
const char *gguf_kv_key(const gguf_file *f, size_t i);     /* NUL-terminated                     */
uint32_t gguf_kv_type(const gguf_file *f, size_t i);
long gguf_find_key(const gguf_file *f, const char *key);   /* index, or -1                       */

coder_status gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, bool required);
coder_status gguf_get_i32(const gguf_file *f, const char *key, int32_t *out, bool required);
coder_status gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, bool required);
coder_status gguf_get_f32(const gguf_file *f, const char *key, float *out, bool required);
coder_status gguf_get_bool(const gguf_file *f, const char *key, bool *out, bool required);
coder_status gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, bool required);
/* Arrays of numbers: *data points at count packed little-endian elements of *elem_type (possibly
 * unaligned: read with memcpy). CODER_ERR_FORMAT if the key is not an array. */
coder_status gguf_get_array(const gguf_file *f, const char *key, uint32_t *elem_type,
                            const void **data, uint64_t *count, bool required);
/* Arrays of strings: *items is an array of count gguf_str owned by the gguf_file. */
coder_status gguf_get_str_array(const gguf_file *f, const char *key, const gguf_str **items,
                                uint64_t *count, bool required);

/* Size in bytes of one element of a metadata type (0 for STRING/ARRAY/invalid). */
size_t gguf_type_size(uint32_t type);
/* The encoded value of KV i exactly as stored (after its u32 type): what gguf_writer_copy_kvs
 * copies. *value points into the file's bytes. */
coder_status gguf_kv_raw(const gguf_file *f, size_t i, uint32_t *type, const void **value, uint64_t *len);
const char *gguf_type_name(uint32_t type);

/* --- tensors --- */
size_t gguf_tensor_count(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);   /* NULL if absent  */

/* --- writer ---
 * Usage: gguf_writer_new; add KVs and tensor infos (in file order); then either
 * gguf_writer_write_file (all tensor data given in memory) or the streaming form:
 * gguf_writer_begin (writes header + infos + padding, reserves the file size) followed by
 * gguf_writer_tensor_file_offset + pwrite of each tensor's bytes at that offset (any order,
 * any thread), then gguf_writer_end. */
typedef struct gguf_writer gguf_writer;

coder_status gguf_writer_new(uint32_t alignment, gguf_writer **out);   /* 0: default 32 */
void gguf_writer_free(gguf_writer *w);
coder_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
coder_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
coder_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
coder_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
coder_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
coder_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *v, size_t len);
/* Numeric array: count elements of elem_type, packed, copied. */
coder_status gguf_writer_set_array(gguf_writer *w, const char *key, uint32_t elem_type,
                                   const void *data, uint64_t count);
coder_status gguf_writer_set_str_array(gguf_writer *w, const char *key, const gguf_str *items,
                                       uint64_t count);
/* Copies every KV of src (e.g. a vocab file's tokenizer.* keys) whose key starts with prefix. */
coder_status gguf_writer_copy_kvs(gguf_writer *w, const gguf_file *src, const char *prefix);
/* Declares a tensor; data may be NULL for the streaming form. Returns its index in *index. */
coder_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                    const uint64_t *ne, const void *data, size_t *index);
coder_status gguf_writer_write_file(gguf_writer *w, const char *path);
coder_status gguf_writer_begin(gguf_writer *w, const char *path, int *fd_out);
uint64_t gguf_writer_tensor_file_offset(const gguf_writer *w, size_t index);
uint64_t gguf_writer_tensor_nbytes(const gguf_writer *w, size_t index);
coder_status gguf_writer_end(gguf_writer *w);  /* closes the file                                */

#endif
