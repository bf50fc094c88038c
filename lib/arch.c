/* arch.c - GGUF metadata to model_hparams, table-driven per architecture (FORMATS.md section 3.1),
 * with the checks of group D of BAD_INPUTS.md: every key that feeds a division, a loop bound or an
 * allocation is validated here, so later code can trust hp.
 *
 * Policies (documented in the report and docs/GGUF.md):
 *   - required keys: general.architecture, {arch}.block_count, .embedding_length,
 *     .feed_forward_length, .attention.head_count, .context_length,
 *     .attention.layer_norm_rms_epsilon (llama.cpp requires the same set for these archs).
 *   - caps (CODER_ERR_FORMAT beyond them): block_count 1..512, embedding_length 1..65536,
 *     feed_forward_length 1..262144, head counts 1..1024, head_dim 2..1024 (even),
 *     context_length 1..16M tokens (2^24; Qwen3-2507 declares 262144, the 1M-token models ~1e6).
 *   - rms eps must be finite in (0, 1); rope freq base finite and > 0 (absent: 10000);
 *     rope scaling factor finite and > 0 (absent or 0: 1).
 *   - rope.scaling.type "none" | "linear" | "yarn"; anything else (longrope, ...) and MoE
 *     (expert_count > 0) are CODER_ERR_UNSUPPORTED. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

#define ARCH_MAX_LAYERS 512
#define ARCH_MAX_DIM 65536
#define ARCH_MAX_FFN 262144
#define ARCH_MAX_HEADS 1024
#define ARCH_MAX_HEAD_DIM 1024
#define ARCH_MAX_CTX (1 << 24)
#define ARCH_DEFAULT_ROPE_BASE 10000.0f

/* What differs between the supported architectures (FORMATS.md 3.3-3.5). */
typedef struct arch_desc {
    const char *name;
    arch_id id;
    rope_style rope;         /* llama: NORM (Q/K rows permuted by the converter); qwen*: NEOX    */
    bool qkv_bias;           /* qwen2: attn_{q,k,v}.bias required                               */
    bool qk_norm;            /* qwen3: attn_{q,k}_norm.weight required, head_dim from key_length */
} arch_desc;

static const arch_desc arch_table[] = {
    {"llama", ARCH_LLAMA, ROPE_NORM, false, false},
    {"qwen2", ARCH_QWEN2, ROPE_NEOX, true, false},
    {"qwen3", ARCH_QWEN3, ROPE_NEOX, false, true},
    {"gemma3", ARCH_GEMMA3, ROPE_NEOX, false, true},
};

/* "{arch}.{suffix}" into key (sized for every key used here). */
static const char *arch_key(char *key, size_t cap, const char *arch, const char *suffix) {
    snprintf(key, cap, "%s.%s", arch, suffix);
    return key;
}

/* Reads an integer key into [lo, hi]; absent and not required leaves *out untouched. */
static coder_status arch_get_int(const gguf_file *f, const char *arch, const char *suffix,
                                 bool required, int64_t lo, int64_t hi, int32_t *out) {
    char key[96];
    arch_key(key, sizeof key, arch, suffix);
    if (gguf_find_key(f, key) < 0) {
        if (required) return coder_fail(CODER_ERR_FORMAT, "missing key %s", key);
        return CODER_OK;
    }
    uint64_t v = 0;
    coder_status st = gguf_get_u64(f, key, &v, true);
    if (st != CODER_OK) {
        /* a negative signed value lands here too: say so in terms of the range */
        int32_t sv = 0;
        if (gguf_get_i32(f, key, &sv, true) == CODER_OK)
            return coder_fail(CODER_ERR_FORMAT, "key %s = %d is out of range [%lld, %lld]", key,
                              sv, (long long)lo, (long long)hi);
        return st;
    }
    if (v < (uint64_t)lo || v > (uint64_t)hi)
        return coder_fail(CODER_ERR_FORMAT, "key %s = %llu is out of range [%lld, %lld]", key,
                          (unsigned long long)v, (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return CODER_OK;
}

/* Reads an optional float key; absent leaves *out untouched. Rejects NaN/Inf always. */
static coder_status arch_get_float(const gguf_file *f, const char *arch, const char *suffix,
                                   bool required, float *out, bool *present) {
    char key[96];
    arch_key(key, sizeof key, arch, suffix);
    if (present) *present = false;
    if (gguf_find_key(f, key) < 0) {
        if (required) return coder_fail(CODER_ERR_FORMAT, "missing key %s", key);
        return CODER_OK;
    }
    float v = 0;
    TRY(gguf_get_f32(f, key, &v, true));
    if (!isfinite(v)) return coder_fail(CODER_ERR_FORMAT, "key %s is %g (not finite)", key, (double)v);
    *out = v;
    if (present) *present = true;
    return CODER_OK;
}

/* general.architecture: missing or not one of ours is "not a model we run" (C8, A15). */
static coder_status arch_lookup(const gguf_file *f, const arch_desc **out) {
    gguf_str s = {0};
    if (gguf_find_key(f, "general.architecture") < 0)
        return coder_fail(CODER_ERR_UNSUPPORTED,
                          "missing key general.architecture: not a model file (adapter, projector "
                          "or other GGUF?)");
    TRY(gguf_get_str(f, "general.architecture", &s, true));
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++) {
        if (s.len == strlen(arch_table[i].name) && memcmp(s.ptr, arch_table[i].name, s.len) == 0) {
            *out = &arch_table[i];
            return CODER_OK;
        }
    }
    char esc[80];
    coder_escape(s.ptr, s.len < 64 ? (size_t)s.len : 64, esc, sizeof esc);
    return coder_fail(CODER_ERR_UNSUPPORTED,
                      "general.architecture '%s%s' is not supported (supported: llama, qwen2, qwen3, gemma3)",
                      esc, s.len > 64 ? "..." : "");
}

static coder_status arch_read_rope_scaling(const gguf_file *f, const char *arch, model_hparams *hp) {
    char key[96];
    float factor = 1.0f;
    bool have_factor = false, have_legacy = false;
    TRY(arch_get_float(f, arch, "rope.scaling.factor", false, &factor, &have_factor));
    if (!have_factor) TRY(arch_get_float(f, arch, "rope.scale_linear", false, &factor, &have_legacy));
    if (factor == 0.0f) factor = 1.0f; /* the converters write 0 for "no scaling" */
    if (!(factor > 0.0f))
        return coder_fail(CODER_ERR_FORMAT, "key %s = %g: the rope scaling factor must be > 0",
                          arch_key(key, sizeof key, arch,
                                   have_legacy ? "rope.scale_linear" : "rope.scaling.factor"),
                          (double)factor);

    /* Absent type means linear (a no-op with factor 1), as in llama.cpp. */
    rope_scaling type = ROPE_SCALING_LINEAR;
    arch_key(key, sizeof key, arch, "rope.scaling.type");
    if (gguf_find_key(f, key) >= 0) {
        gguf_str s;
        TRY(gguf_get_str(f, key, &s, true));
        if (s.len == 4 && memcmp(s.ptr, "none", 4) == 0) type = ROPE_SCALING_NONE;
        else if (s.len == 6 && memcmp(s.ptr, "linear", 6) == 0) type = ROPE_SCALING_LINEAR;
        else if (s.len == 4 && memcmp(s.ptr, "yarn", 4) == 0) type = ROPE_SCALING_YARN;
        else {
            char esc[80];
            coder_escape(s.ptr, s.len < 64 ? (size_t)s.len : 64, esc, sizeof esc);
            return coder_fail(CODER_ERR_UNSUPPORTED,
                              "key %s = '%s': rope scaling type not supported (none, linear, yarn)",
                              key, esc);
        }
    }
    if (type == ROPE_SCALING_NONE) factor = 1.0f;
    if (type == ROPE_SCALING_LINEAR && factor == 1.0f) type = ROPE_SCALING_NONE;
    hp->rope_scaling_type = type;
    hp->rope_freq_scale = 1.0f / factor;

    /* YaRN parameters (defaults: ext 1 when YaRN else 0, attn 1, beta_fast 32, beta_slow 1). */
    hp->yarn_orig_ctx = hp->n_ctx_train;
    TRY(arch_get_int(f, arch, "rope.scaling.original_context_length", false, 1, ARCH_MAX_CTX,
                     &hp->yarn_orig_ctx));
    hp->yarn_ext_factor = type == ROPE_SCALING_YARN ? 1.0f : 0.0f;
    hp->yarn_attn_factor = 1.0f;
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;
    float v = 0;
    bool have = false;
    TRY(arch_get_float(f, arch, "rope.scaling.yarn_ext_factor", false, &v, &have));
    if (have && v >= 0.0f) hp->yarn_ext_factor = v; /* negative means "auto" */
    TRY(arch_get_float(f, arch, "rope.scaling.attn_factor", false, &hp->yarn_attn_factor, NULL));
    TRY(arch_get_float(f, arch, "rope.scaling.yarn_attn_factor", false, &hp->yarn_attn_factor, NULL));
    TRY(arch_get_float(f, arch, "rope.scaling.yarn_beta_fast", false, &hp->yarn_beta_fast, NULL));
    TRY(arch_get_float(f, arch, "rope.scaling.yarn_beta_slow", false, &hp->yarn_beta_slow, NULL));
    if (!(hp->yarn_attn_factor > 0.0f))
        return coder_fail(CODER_ERR_FORMAT, "key %s.rope.scaling.attn_factor = %g must be > 0", arch,
                          (double)hp->yarn_attn_factor);
    if (type == ROPE_SCALING_YARN && !(hp->yarn_beta_fast > 0.0f && hp->yarn_beta_slow > 0.0f))
        return coder_fail(CODER_ERR_FORMAT, "key %s.rope.scaling.yarn_beta_fast/slow must be > 0", arch);
    return CODER_OK;
}

/* Gemma 3 (llama.cpp's reading of the same files): embeddings scaled by sqrt(dim), GELU FFN,
 * RMSNorm after attention and FFN, and 5 of every 6 layers with 512-wide sliding-window attention
 * and RoPE base 10000 (the global layers use rope.freq_base and the rope scaling). q.k is scaled by
 * 1/sqrt(head_dim), except in the 27B model (62 layers) where it is 1/sqrt(dim / heads). */
static coder_status arch_read_gemma3(const gguf_file *f, const char *arch, model_hparams *hp) {
    hp->embed_scale = 1.0f;
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    if (hp->arch != ARCH_GEMMA3) return CODER_OK;
    hp->embed_scale = sqrtf((float)hp->dim);
    if (hp->n_layers == 62) hp->attn_scale = 1.0f / sqrtf((float)hp->dim / (float)hp->n_heads);
    hp->act_gelu = true;
    hp->has_post_norms = true;
    hp->swa_pattern = 6;
    hp->rope_base_swa = 10000.0f;
    hp->swa_window = 512;
    TRY(arch_get_int(f, arch, "attention.sliding_window", false, 1, ARCH_MAX_CTX, &hp->swa_window));
    return CODER_OK;
}

coder_status model_read_hparams(const gguf_file *f, model_hparams *hp) {
    if (!f || !hp) return coder_fail(CODER_ERR_INVALID_ARG, "model_read_hparams: NULL argument");
    memset(hp, 0, sizeof *hp);
    const arch_desc *a = NULL;
    TRY(arch_lookup(f, &a));
    const char *arch = a->name;
    snprintf(hp->arch_name, sizeof hp->arch_name, "%s", arch);
    hp->arch = a->id;
    hp->rope = a->rope;
    hp->has_qkv_bias = a->qkv_bias;
    hp->has_qk_norm = a->qk_norm;

    /* Mixture-of-experts variants of these archs are not implemented. */
    int32_t n_expert = 0;
    TRY(arch_get_int(f, arch, "expert_count", false, 0, INT32_MAX, &n_expert));
    if (n_expert > 0)
        return coder_fail(CODER_ERR_UNSUPPORTED, "key %s.expert_count = %d: mixture-of-experts "
                          "models are not supported", arch, n_expert);

    TRY(arch_get_int(f, arch, "block_count", true, 1, ARCH_MAX_LAYERS, &hp->n_layers));
    TRY(arch_get_int(f, arch, "embedding_length", true, 1, ARCH_MAX_DIM, &hp->dim));
    TRY(arch_get_int(f, arch, "feed_forward_length", true, 1, ARCH_MAX_FFN, &hp->ffn_dim));
    TRY(arch_get_int(f, arch, "attention.head_count", true, 1, ARCH_MAX_HEADS, &hp->n_heads));
    hp->n_kv_heads = hp->n_heads;
    TRY(arch_get_int(f, arch, "attention.head_count_kv", false, 1, ARCH_MAX_HEADS, &hp->n_kv_heads));
    if (hp->n_heads % hp->n_kv_heads != 0)
        return coder_fail(CODER_ERR_FORMAT, "key %s.attention.head_count = %d is not a multiple of "
                          "%s.attention.head_count_kv = %d", arch, hp->n_heads, arch, hp->n_kv_heads);

    /* head_dim: key_length when present (qwen3 writes 128, independent of dim), else dim / heads. */
    char key[96];
    if (gguf_find_key(f, arch_key(key, sizeof key, arch, "attention.key_length")) >= 0) {
        TRY(arch_get_int(f, arch, "attention.key_length", true, 1, ARCH_MAX_HEAD_DIM, &hp->head_dim));
    } else {
        if (hp->dim % hp->n_heads != 0)
            return coder_fail(CODER_ERR_FORMAT, "key %s.embedding_length = %d is not a multiple of "
                              "%s.attention.head_count = %d (and no attention.key_length)", arch,
                              hp->dim, arch, hp->n_heads);
        hp->head_dim = hp->dim / hp->n_heads;
    }
    int32_t v_len = hp->head_dim;
    TRY(arch_get_int(f, arch, "attention.value_length", false, 1, ARCH_MAX_HEAD_DIM, &v_len));
    if (v_len != hp->head_dim)
        return coder_fail(CODER_ERR_UNSUPPORTED, "key %s.attention.value_length = %d differs from "
                          "the key length %d: not supported", arch, v_len, hp->head_dim);
    if (hp->head_dim % 2 != 0 || hp->head_dim > ARCH_MAX_HEAD_DIM)
        return coder_fail(CODER_ERR_FORMAT, "%s head dimension %d must be even and <= %d", arch,
                          hp->head_dim, ARCH_MAX_HEAD_DIM);

    hp->n_rot = hp->head_dim;
    TRY(arch_get_int(f, arch, "rope.dimension_count", false, 0, INT32_MAX, &hp->n_rot));
    if (hp->n_rot <= 0 || hp->n_rot % 2 != 0 || hp->n_rot > hp->head_dim)
        return coder_fail(CODER_ERR_FORMAT, "key %s.rope.dimension_count = %d must be even, > 0 "
                          "and <= the head dimension %d", arch, hp->n_rot, hp->head_dim);

    TRY(arch_get_int(f, arch, "context_length", true, 1, ARCH_MAX_CTX, &hp->n_ctx_train));

    TRY(arch_get_float(f, arch, "attention.layer_norm_rms_epsilon", true, &hp->rms_eps, NULL));
    if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f))
        return coder_fail(CODER_ERR_FORMAT, "key %s.attention.layer_norm_rms_epsilon = %g must be "
                          "in (0, 1)", arch, (double)hp->rms_eps);

    hp->rope_base = ARCH_DEFAULT_ROPE_BASE;
    TRY(arch_get_float(f, arch, "rope.freq_base", false, &hp->rope_base, NULL));
    if (!(hp->rope_base > 0.0f))
        return coder_fail(CODER_ERR_FORMAT, "key %s.rope.freq_base = %g must be > 0", arch,
                          (double)hp->rope_base);

    TRY(arch_read_rope_scaling(f, arch, hp));
    TRY(arch_read_gemma3(f, arch, hp));

    /* Optional; when present it must agree with the tokenizer and the tensors (checked at load). */
    hp->vocab_size = 0;
    TRY(arch_get_int(f, arch, "vocab_size", false, 1, INT32_MAX, &hp->vocab_size));
    return CODER_OK;
}
