/* kv_cache.c - allocation of the host KV cache and raw row copies (see kv_cache.h). */
#include <string.h>

#include "kv_cache.h"

uint64_t kv_row_bytes(int32_t type, int64_t width) {
    if (width < 1) return 0;
    switch (type) {
    case CODER_KV_F16: return (uint64_t)width * 2u;
    case CODER_KV_F32: return (uint64_t)width * 4u;
    case CODER_KV_Q8_0:
    case CODER_KV_Q8_0_Q4_0: return width % 32 ? 0 : (uint64_t)width / 32u * 34u;
    default: return 0;
    }
}

uint64_t kv_v_row_bytes(int32_t type, int64_t width) {
    if (type != CODER_KV_Q8_0_Q4_0) return kv_row_bytes(type, width);
    return width < 1 || width % 32 ? 0 : (uint64_t)width / 32u * 18u;   /* block_q4_0: f16 d + 16 bytes */
}

coder_status kv_cache_new(int32_t type, int32_t n_layers, int32_t n_ctx, int32_t width, kv_cache **out) {
    *out = NULL;
    if (type != CODER_KV_F16 && type != CODER_KV_F32 && type != CODER_KV_Q8_0 && type != CODER_KV_Q8_0_Q4_0)
        return coder_fail(CODER_ERR_UNSUPPORTED, "kv_type %d: the CPU KV cache supports F16 (0), F32 (1), Q8_0 (2) and "
                          "Q8_0 K + Q4_0 V (3)", (int)type);
    if (n_layers < 1 || n_ctx < 1 || width < 1)
        return coder_fail(CODER_ERR_INVALID_ARG, "kv cache: n_layers %d, n_ctx %d, width %d must be >= 1",
                          (int)n_layers, (int)n_ctx, (int)width);
    if ((type == CODER_KV_Q8_0 || type == CODER_KV_Q8_0_Q4_0) && width % 32)
        return coder_fail(CODER_ERR_UNSUPPORTED, "kv_type %d (quantized): row width %d is not a multiple of 32", (int)type,
                          (int)width);
    size_t row = (size_t)kv_row_bytes(type, width), vrow = (size_t)kv_v_row_bytes(type, width), bytes, vbytes;
    if (ck_mul_size(row, (size_t)n_ctx, &bytes) || ck_mul_size(vrow, (size_t)n_ctx, &vbytes))
        return coder_fail(CODER_ERR_LIMIT, "kv cache: n_ctx %d x width %d overflows", (int)n_ctx, (int)width);
    kv_cache *kv = coder_calloc(1, sizeof *kv);
    if (!kv) return coder_fail(CODER_ERR_NOMEM, "kv cache: allocating the descriptor");
    kv->type = type;
    kv->n_layers = n_layers;
    kv->n_ctx = n_ctx;
    kv->width = width;
    kv->row_bytes = row;
    kv->v_row_bytes = vrow;
    kv->k = coder_calloc((size_t)n_layers, sizeof *kv->k);
    kv->v = coder_calloc((size_t)n_layers, sizeof *kv->v);
    if (!kv->k || !kv->v) goto nomem;
    for (int l = 0; l < n_layers; l++) {
        kv->k[l] = coder_malloc_aligned(bytes, 64);
        kv->v[l] = coder_malloc_aligned(vbytes, 64);
        if (!kv->k[l] || !kv->v[l]) goto nomem;
        /* commit the pages now (and never expose stale heap bytes through a state file) */
        memset(kv->k[l], 0, bytes);
        memset(kv->v[l], 0, vbytes);
    }
    *out = kv;
    return CODER_OK;
nomem:
    kv_cache_free(kv);
    return coder_fail(CODER_ERR_NOMEM, "kv cache: allocating %d layers x (%zu + %zu) bytes (n_ctx %d)", (int)n_layers,
                      bytes, vbytes, (int)n_ctx);
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
    return ((uint64_t)kv->row_bytes + kv->v_row_bytes) * (uint64_t)kv->n_ctx * (uint64_t)kv->n_layers;
}

static coder_status kv_check_range(const kv_cache *kv, int layer, int32_t pos0, int n, const char *what) {
    if (layer < 0 || layer >= kv->n_layers || pos0 < 0 || n < 0 || (int64_t)pos0 + n > kv->n_ctx)
        return coder_fail(CODER_ERR_INTERNAL, "%s: layer %d positions %d..+%d outside %d layers x n_ctx %d", what, layer,
                          (int)pos0, n, (int)kv->n_layers, (int)kv->n_ctx);
    return CODER_OK;
}

coder_status kv_cache_read(const kv_cache *kv, int layer, int32_t pos0, int n, void *k, void *v) {
    TRY(kv_check_range(kv, layer, pos0, n, "kv_read"));
    memcpy(k, kv_cache_k_row(kv, layer, pos0), (size_t)n * kv->row_bytes);
    memcpy(v, kv_cache_v_row(kv, layer, pos0), (size_t)n * kv->v_row_bytes);
    return CODER_OK;
}

coder_status kv_cache_load(kv_cache *kv, int layer, int32_t pos0, int n, const void *k, const void *v) {
    TRY(kv_check_range(kv, layer, pos0, n, "kv_load"));
    memcpy(kv_cache_k_row(kv, layer, pos0), k, (size_t)n * kv->row_bytes);
    memcpy(kv_cache_v_row(kv, layer, pos0), v, (size_t)n * kv->v_row_bytes);
    return CODER_OK;
}
