/* gguf_bytes.h - a tiny growable byte buffer for crafting raw GGUF bytes in tests, independent of
 * the library's writer (so the reader is tested against bytes built by hand).
 *
 *   gb b = {0};
 *   gb_header(&b, 3, n_tensors, n_kv);
 *   gb_kv_u32(&b, "general.alignment", 32);
 *   gb_info(&b, "w", 2, (uint64_t[]){32, 4}, 0, 0);     // name, n_dims, ne, ggml type, offset
 *   gb_pad(&b, 32); gb_zeros(&b, 512);
 *   ... b.p, b.n ...; gb_free(&b);
 * Field offsets for later patching: remember b.n before appending. */
#ifndef CODER_TEST_GGUF_BYTES_H
#define CODER_TEST_GGUF_BYTES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
} gb;

static inline void gb_raw(gb *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) abort(); /* test helper: out of memory ends the test binary */
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}
static inline void gb_u8(gb *b, uint8_t v) { gb_raw(b, &v, 1); }
static inline void gb_u32(gb *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    gb_raw(b, x, 4);
}
static inline void gb_u64(gb *b, uint64_t v) {
    gb_u32(b, (uint32_t)v);
    gb_u32(b, (uint32_t)(v >> 32));
}
static inline void gb_zeros(gb *b, size_t n) {
    static const uint8_t z[64];
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        gb_raw(b, z, k);
        n -= k;
    }
}
static inline void gb_pad(gb *b, size_t align) { gb_zeros(b, (align - b->n % align) % align); }
/* GGUF string: u64 length + bytes. */
static inline void gb_strn(gb *b, const void *s, size_t n) {
    gb_u64(b, n);
    gb_raw(b, s, n);
}
static inline void gb_str(gb *b, const char *s) { gb_strn(b, s, strlen(s)); }
static inline void gb_header(gb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    gb_raw(b, "GGUF", 4);
    gb_u32(b, version);
    gb_u64(b, n_tensors);
    gb_u64(b, n_kv);
}
/* KVs: key, u32 type, value. */
static inline void gb_kv_u32(gb *b, const char *key, uint32_t v) { gb_str(b, key); gb_u32(b, 4); gb_u32(b, v); }
static inline void gb_kv_i32(gb *b, const char *key, int32_t v) { gb_str(b, key); gb_u32(b, 5); gb_u32(b, (uint32_t)v); }
static inline void gb_kv_u16(gb *b, const char *key, uint16_t v) { gb_str(b, key); gb_u32(b, 2); gb_u8(b, (uint8_t)v); gb_u8(b, (uint8_t)(v >> 8)); }
static inline void gb_kv_str(gb *b, const char *key, const char *v) { gb_str(b, key); gb_u32(b, 8); gb_str(b, v); }
static inline void gb_kv_f32(gb *b, const char *key, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    gb_str(b, key);
    gb_u32(b, 6);
    gb_u32(b, u);
}
/* Tensor info: name, n_dims, ne[n_dims], type, offset. */
static inline void gb_info(gb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset) {
    gb_str(b, name);
    gb_u32(b, n_dims);
    for (uint32_t j = 0; j < n_dims; j++) gb_u64(b, ne[j]);
    gb_u32(b, type);
    gb_u64(b, offset);
}
static inline void gb_put32(gb *b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++) b->p[at + i] = (uint8_t)(v >> (8 * i));
}
static inline void gb_put64(gb *b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; i++) b->p[at + i] = (uint8_t)(v >> (8 * i));
}
static inline void gb_free(gb *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

#endif
