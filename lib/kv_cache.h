/* kv_cache.h - the host KV cache: per layer, K and V as [n_ctx][n_kv_heads*head_dim] rows of F16
 * (default) or F32, K stored after RoPE. Position p of layer l is row p of k[l] / v[l]. */
#ifndef CODER_KV_CACHE_H
#define CODER_KV_CACHE_H

#include "core.h"

typedef struct kv_cache {
    int32_t type;             /* CODER_KV_F16 or CODER_KV_F32                                   */
    int32_t n_layers, n_ctx, width;  /* width = n_kv_heads * head_dim                          */
    size_t row_bytes;         /* width * (2 or 4)                                               */
    void **k, **v;            /* [n_layers] -> [n_ctx][width]                                   */
} kv_cache;

/* CODER_ERR_UNSUPPORTED for a kv_type other than F16/F32, CODER_ERR_LIMIT/NOMEM for sizes. */
coder_status kv_cache_new(int32_t type, int32_t n_layers, int32_t n_ctx, int32_t width, kv_cache **out);
void kv_cache_free(kv_cache *kv);
/* Total bytes of K and V. */
uint64_t kv_cache_bytes(const kv_cache *kv);

static inline void *kv_cache_k_row(const kv_cache *kv, int layer, int32_t pos) {
    return (char *)kv->k[layer] + (size_t)pos * kv->row_bytes;
}
static inline void *kv_cache_v_row(const kv_cache *kv, int layer, int32_t pos) {
    return (char *)kv->v[layer] + (size_t)pos * kv->row_bytes;
}

#endif
