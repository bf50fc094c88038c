/* kv_cache.c - allocation of the host KV cache (see kv_cache.h). */
#include "kv_cache.h"

coder_status kv_cache_new(int32_t type, int32_t n_layers, int32_t n_ctx, int32_t width, kv_cache **out) {
    *out = NULL;
    if (type != CODER_KV_F16 && type != CODER_KV_F32)
        return coder_fail(CODER_ERR_UNSUPPORTED, "kv_type %d: the CPU KV cache supports F16 (0) and F32 (1)", (int)type);
    if (n_layers < 1 || n_ctx < 1 || width < 1)
        return coder_fail(CODER_ERR_INVALID_ARG, "kv cache: n_layers %d, n_ctx %d, width %d must be >= 1",
                          (int)n_layers, (int)n_ctx, (int)width);
    size_t elt = type == CODER_KV_F16 ? 2 : 4, row, bytes;
    if (ck_mul_size((size_t)width, elt, &row) || ck_mul_size(row, (size_t)n_ctx, &bytes))
        return coder_fail(CODER_ERR_LIMIT, "kv cache: n_ctx %d x width %d overflows", (int)n_ctx, (int)width);
    kv_cache *kv = coder_calloc(1, sizeof *kv);
    if (!kv) return coder_fail(CODER_ERR_NOMEM, "kv cache: allocating the descriptor");
    kv->type = type;
    kv->n_layers = n_layers;
    kv->n_ctx = n_ctx;
    kv->width = width;
    kv->row_bytes = row;
    kv->k = coder_calloc((size_t)n_layers, sizeof *kv->k);
    kv->v = coder_calloc((size_t)n_layers, sizeof *kv->v);
    if (!kv->k || !kv->v) goto nomem;
    for (int l = 0; l < n_layers; l++) {
        kv->k[l] = coder_malloc_aligned(bytes, 64);
        kv->v[l] = coder_malloc_aligned(bytes, 64);
        if (!kv->k[l] || !kv->v[l]) goto nomem;
    }
    *out = kv;
    return CODER_OK;
nomem:
    kv_cache_free(kv);
    return coder_fail(CODER_ERR_NOMEM, "kv cache: allocating %d layers x 2 x %zu bytes (n_ctx %d)", (int)n_layers,
                      bytes, (int)n_ctx);
}

void kv_cache_free(kv_cache *kv) {
    if (!kv) return;
    for (int l = 0; l < kv->n_layers; l++) {
        if (kv->k) coder_mfree_aligned(kv->k[l]);
        if (kv->v) coder_mfree_aligned(kv->v[l]);
    }
    coder_mfree(kv->k);
    coder_mfree(kv->v);
    coder_mfree(kv);
}

uint64_t kv_cache_bytes(const kv_cache *kv) {
    return (uint64_t)kv->row_bytes * (uint64_t)kv->n_ctx * 2u * (uint64_t)kv->n_layers;
}
