/* kv_cache.h - the host KV cache: per layer, K and V as [n_ctx][n_kv_heads*head_dim] rows of F16
 * (default), F32, Q8_0 (width/32 blocks of {f16 d; int8 qs[32]} a row), or Q8_0 K with Q4_0 V
 * (width/32 blocks of {f16 d; u8 qs[16]}), K stored after RoPE. Position p of layer l is row p of
 * k[l] / v[l]. */
#ifndef CODER_KV_CACHE_H
#define CODER_KV_CACHE_H

#include "core.h"

typedef struct kv_cache {
    int32_t type;             /* coder_kv_type                                                  */
    int32_t n_layers, n_ctx, width;  /* width = n_kv_heads * head_dim                          */
    size_t row_bytes;         /* K row: kv_row_bytes(type, width)                               */
    size_t v_row_bytes;       /* V row: kv_v_row_bytes(type, width)                             */
    void **k, **v;            /* [n_layers] -> [n_ctx][row_bytes]                               */
} kv_cache;

/* Bytes of one K cache row of `width` values: 2*width (F16), 4*width (F32), width/32*34 (Q8_0 and
 * Q8_0_Q4_0). 0 for an unknown type or a quantized width that is not a multiple of 32. */
uint64_t kv_row_bytes(int32_t type, int64_t width);
/* The same for a V row: as K, except width/32*18 for Q8_0_Q4_0. */
uint64_t kv_v_row_bytes(int32_t type, int64_t width);

/* CODER_ERR_UNSUPPORTED for an unknown kv_type (or Q8_0 with width % 32 != 0),
 * CODER_ERR_LIMIT/NOMEM for sizes. Every page is written at creation (zeroed), so the memory is
 * committed now: an out-of-memory shows up here, not in the middle of a generation. */
coder_status kv_cache_new(int32_t type, int32_t n_layers, int32_t n_ctx, int32_t width, kv_cache **out);
void kv_cache_free(kv_cache *kv);
/* Total bytes of K and V. */
uint64_t kv_cache_bytes(const kv_cache *kv);

/* Copies rows pos0..pos0+n-1 of `layer` out to k, v (read) or in from them (load), packed
 * row_bytes (K) / v_row_bytes (V) apart. CODER_ERR_INTERNAL when the range is outside the cache. */
coder_status kv_cache_read(const kv_cache *kv, int layer, int32_t pos0, int n, void *k, void *v);
coder_status kv_cache_load(kv_cache *kv, int layer, int32_t pos0, int n, const void *k, const void *v);

static inline void *kv_cache_k_row(const kv_cache *kv, int layer, int32_t pos) {
    return (char *)kv->k[layer] + (size_t)pos * kv->row_bytes;
}
static inline void *kv_cache_v_row(const kv_cache *kv, int layer, int32_t pos) {
    return (char *)kv->v[layer] + (size_t)pos * kv->v_row_bytes;
}

#endif
