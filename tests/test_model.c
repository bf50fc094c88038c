/* test_model.c - model loading: the refdata models load with the right hyperparameters, and every
 * bad input of group D (and C5, C8, G1, G9, G14) gives its status with a message naming the key or
 * tensor. Bad files are built by copying tiny-llama-q4_k_m.gguf / tiny-qwen2-q4_k_m.gguf with the
 * GGUF writer and changing one key or tensor. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "test.h"

#include "model.h"
#include "quant.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static char path_buf[4][4096];
static const char *refpath(int slot, const char *rel) {
    const char *d = test_refdata();
    if (!d) return NULL;
    snprintf(path_buf[slot], sizeof path_buf[slot], "%s/%s", d, rel);
    return path_buf[slot];
}
#define LLAMA_Q4 "models/tiny-llama-q4_k_m.gguf"
#define LLAMA_F16 "models/tiny-llama-f16.gguf"
#define QWEN2_Q4 "models/tiny-qwen2-q4_k_m.gguf"
#define NEED_REFDATA(rel)                                                                          \
    const char *src = refpath(0, rel);                                                             \
    if (!src || access(src, R_OK) != 0) SKIP("refdata not found (set CODER_REFDATA): %s", rel)

/* Log capture, for the D11 warning. */
static char log_text[16384];
static void log_sink(coder_log_level level, const char *msg, void *ud) {
    (void)level;
    (void)ud;
    size_t n = strlen(log_text);
    snprintf(log_text + n, sizeof log_text - n, "%s\n", msg);
}

/* A variant of a source file: keys dropped (a trailing '*' drops by prefix), keys added, tensors
 * dropped or replaced, tensors added. */
typedef struct variant {
    const char *drop_keys[12];
    void (*kvs)(gguf_writer *w);
    const char *drop_tensor;
    bool (*tensor)(gguf_writer *w, const gguf_tensor *t); /* true: handled (replaced/omitted) */
    void (*extra)(gguf_writer *w);
} variant;

static bool key_dropped(const variant *v, const char *key) {
    for (size_t i = 0; i < 12 && v->drop_keys[i]; i++) {
        const char *d = v->drop_keys[i];
        size_t n = strlen(d);
        if (n && d[n - 1] == '*' ? strncmp(key, d, n - 1) == 0 : strcmp(key, d) == 0) return true;
    }
    return false;
}

/* Scalar and string values of the refdata files (all that a clashing key can be there). */
static coder_status copy_kv_typed(gguf_writer *w, const gguf_file *f, const char *key, uint32_t type) {
    switch (type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: {
        uint32_t v;
        TRY(gguf_get_u32(f, key, &v, true));
        return gguf_writer_set_u32(w, key, v);
    }
    case GGUF_TYPE_FLOAT32: {
        float v;
        TRY(gguf_get_f32(f, key, &v, true));
        return gguf_writer_set_f32(w, key, v);
    }
    case GGUF_TYPE_STRING: {
        gguf_str v;
        TRY(gguf_get_str(f, key, &v, true));
        return gguf_writer_set_str(w, key, v.ptr, (size_t)v.len);
    }
    default:
        return coder_fail(CODER_ERR_UNSUPPORTED, "copy_kv_typed: key %s of type %u", key, type);
    }
}

static int variant_counter;
static char variant_path[256];

/* Writes the variant to a temporary file; returns its path or NULL (with a message on stdout). */
static const char *write_variant(const char *src, const variant *v) {
    gguf_open_opts oo = {.use_mmap = true};
    gguf_file *f = NULL;
    gguf_writer *w = NULL;
    if (gguf_open(src, &oo, &f) != CODER_OK || gguf_writer_new(0, &w) != CODER_OK) {
        printf("# write_variant: %s\n", coder_last_error());
        gguf_close(f);
        return NULL;
    }
    bool ok = true;
    size_t nkv = gguf_kv_count(f);
    for (size_t i = 0; i < nkv && ok; i++) {
        const char *key = gguf_kv_key(f, i);
        if (key_dropped(v, key)) continue;
        /* copy_kvs copies by prefix: when the full key is also the prefix of another key
         * (head_count / head_count_kv), copy it through the typed getters instead */
        bool clash = false;
        for (size_t j = 0; j < nkv; j++)
            if (j != i && strncmp(gguf_kv_key(f, j), key, strlen(key)) == 0) clash = true;
        if (clash ? copy_kv_typed(w, f, key, gguf_kv_type(f, i)) != CODER_OK
                  : gguf_writer_copy_kvs(w, f, key) != CODER_OK)
            ok = false;
    }
    if (ok && v->kvs) v->kvs(w);
    for (size_t i = 0; i < gguf_tensor_count(f) && ok; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (v->drop_tensor && !strcmp(t->name, v->drop_tensor)) continue;
        if (v->tensor && v->tensor(w, t)) continue;
        if (gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, NULL) != CODER_OK)
            ok = false;
    }
    if (ok && v->extra) v->extra(w);
    snprintf(variant_path, sizeof variant_path, "/tmp/test_model_%d_%d.gguf", (int)getpid(),
             variant_counter++);
    if (ok && gguf_writer_write_file(w, variant_path) != CODER_OK) ok = false;
    if (!ok) printf("# write_variant: %s\n", coder_last_error());
    gguf_writer_free(w);
    gguf_close(f);
    return ok ? variant_path : NULL;
}

/* Loads a variant of src; the model (if loaded) is freed unless keep is given. */
static coder_status load_variant(const char *src, const variant *v, const coder_model_params *p,
                                 coder_model **keep) {
    const char *path = write_variant(src, v);
    if (!path) return (coder_status)999;
    coder_model *m = (coder_model *)0x1;
    coder_status st = coder_model_load(path, p, &m);
    unlink(path);
    if (st != CODER_OK && m != NULL) return (coder_status)998; /* *out must be NULL on error */
    if (keep) *keep = m;
    else coder_model_free(m);
    return st;
}

#define ERR_HAS(s) CHECK_MSG(strstr(coder_last_error(), (s)) != NULL, "message '%s' lacks '%s'", \
                             coder_last_error(), (s))
/* One variant: expected status and a substring of the message. */
#define EXPECT_VARIANT(src, v, want, needle)                                                       \
    do {                                                                                           \
        CHECK_STATUS(load_variant((src), (v), NULL, NULL), (want));                                \
        ERR_HAS(needle);                                                                           \
    } while (0)

/* ---- the refdata models --------------------------------------------------------------------- */

/* Independent count of the weights of a llama/qwen2 model from its dimensions (FORMATS.md 3.2). */
static uint64_t expected_params(uint64_t d, uint64_t L, uint64_t H, uint64_t Hkv, uint64_t Dh,
                                uint64_t ff, uint64_t V, bool tied, bool bias) {
    uint64_t per_layer = 2 * d + d * H * Dh + 2 * d * Hkv * Dh + H * Dh * d + 3 * d * ff;
    if (bias) per_layer += H * Dh + 2 * Hkv * Dh;
    return V * d * (tied ? 1 : 2) + d + L * per_layer;
}

TEST(load_tiny_llama_f16) {
    NEED_REFDATA(LLAMA_F16);
    coder_model *m = NULL;
    CHECK_OK(coder_model_load(src, NULL, &m));
    coder_model_info info;
    info.size = sizeof info;
    coder_status st = coder_model_get_info(m, &info);
    bool tied = m->hp.tied_output;
    rope_style rope = m->hp.rope;
    float base = m->hp.rope_base, eps = m->hp.rms_eps;
    int32_t n_rot = m->hp.n_rot;
    coder_model_free(m);
    CHECK_OK(st);
    CHECK(!strcmp(info.arch, "llama"));
    CHECK(!strcmp(info.name, "tiny-llama"));
    CHECK(info.n_layers == 4 && info.dim == 256 && info.ffn_dim == 768);
    CHECK(info.n_heads == 8 && info.n_kv_heads == 2 && info.head_dim == 32);
    CHECK(info.vocab_size == 32000 && info.n_ctx_train == 4096);
    CHECK(info.bos_token == 1 && info.eos_token == 2 && info.add_bos == 1);
    CHECK(!tied);
    CHECK(rope == ROPE_NORM && n_rot == 32);
    CHECK_NEAR(base, 10000.0, 0, 1e-7);
    CHECK_NEAR(eps, 1e-5, 0, 1e-6);
    uint64_t np = expected_params(256, 4, 8, 2, 32, 768, 32000, false, false);
    CHECK_MSG(info.n_params == np, "n_params %llu want %llu", (unsigned long long)info.n_params,
              (unsigned long long)np);
    /* F16 matrices (2 bytes) and F32 norms (4 bytes): 2*n_params + 2*(norm elements). */
    uint64_t norms = 256 + 4 * 2 * 256;
    CHECK(info.weight_bytes == 2 * np + 2 * norms);
    CHECK(info.gpu_layers == 0);
}

TEST(load_tiny_llama_q4) {
    NEED_REFDATA(LLAMA_Q4);
    coder_model *m = NULL;
    CHECK_OK(coder_model_load(src, NULL, &m));
    coder_model_info info;
    info.size = sizeof info;
    coder_status st = coder_model_get_info(m, &info);
    bool tied = m->hp.tied_output;
    uint32_t out_type = m->output.type, emb_type = m->tok_embd.type;
    int64_t q_rows = m->layers[3].wq.rows, down_cols = m->layers[3].w_down.cols;
    uint64_t down_rb = m->layers[3].w_down.row_bytes;
    coder_model_free(m);
    CHECK_OK(st);
    CHECK(!strcmp(info.arch, "llama") && info.n_layers == 4 && info.dim == 256);
    CHECK(info.n_heads == 8 && info.n_kv_heads == 2 && info.ffn_dim == 768 && info.vocab_size == 32000);
    CHECK(!tied);
    CHECK(out_type == QT_Q6_K && emb_type == QT_Q4_K); /* llama-quantize's Q4_K_M recipe */
    CHECK(q_rows == 256 && down_cols == 768);
    CHECK(down_rb == 3 * 144 || down_rb == 3 * 210); /* 768 = 3 super-blocks, Q4_K or Q6_K */
    CHECK(info.n_params == expected_params(256, 4, 8, 2, 32, 768, 32000, false, false));
}

TEST(load_tiny_qwen2) {
    NEED_REFDATA(QWEN2_Q4);
    coder_model *m = NULL;
    CHECK_OK(coder_model_load(src, NULL, &m));
    coder_model_info info;
    info.size = sizeof info;
    coder_status st = coder_model_get_info(m, &info);
    model_hparams hp = m->hp;
    bool out_is_embd = m->output.data == m->tok_embd.data;
    bool has_bias = m->layers[2].bk.t != NULL && m->layers[2].bk.cols == 64;
    coder_model_free(m);
    CHECK_OK(st);
    CHECK(!strcmp(info.arch, "qwen2") && !strcmp(info.name, "tiny-qwen2"));
    CHECK(info.n_layers == 4 && info.dim == 256 && info.ffn_dim == 768);
    CHECK(info.n_heads == 8 && info.n_kv_heads == 2 && info.head_dim == 32);
    CHECK(info.vocab_size == 151936 && info.n_ctx_train == 4096);
    CHECK(info.bos_token == 151643 && info.eos_token == 151645 && info.add_bos == 0);
    CHECK(info.chat_format == CODER_CHAT_CHATML);
    CHECK(info.has_fim == 1);
    CHECK(hp.tied_output && out_is_embd && has_bias);
    CHECK(hp.rope == ROPE_NEOX && hp.has_qkv_bias && !hp.has_qk_norm);
    CHECK_NEAR(hp.rope_base, 1e6, 0, 1e-7);
    CHECK(hp.rope_scaling_type == ROPE_SCALING_NONE && hp.rope_freq_scale == 1.0f);
    CHECK(info.n_params == expected_params(256, 4, 8, 2, 32, 768, 151936, true, true));
}

TEST(load_read_mode_and_validate) {
    NEED_REFDATA(LLAMA_Q4);
    coder_model_params p;
    coder_model_params_init(&p);
    p.use_mmap = 0;
    p.validate_weights = 1; /* the random weights are all finite */
    coder_model *m = NULL;
    CHECK_OK(coder_model_load(src, &p, &m));
    coder_model_free(m);
}

/* ---- vocab-only ------------------------------------------------------------------------------ */

TEST(vocab_only_files) {
    static const struct { const char *file; int32_t n_vocab; int32_t fmt; } cases[] = {
        {"vocab/ggml-vocab-qwen2.gguf", 151936, CODER_CHAT_CHATML},
        {"vocab/ggml-vocab-qwen3.gguf", 151936, CODER_CHAT_QWEN3},
        {"vocab/ggml-vocab-llama-bpe.gguf", 128256, CODER_CHAT_LLAMA3},
        {"vocab/ggml-vocab-llama-spm.gguf", 32000, -1},
        {"vocab/ggml-vocab-deepseek-coder.gguf", 32256, -1},
        {"vocab/ggml-vocab-deepseek-llm.gguf", 102400, -1},
        {"vocab/ggml-vocab-gpt-2.gguf", 50257, -1},
        {"vocab/ggml-vocab-starcoder.gguf", 49152, -1},
        {"vocab/ggml-vocab-phi-3.gguf", 32064, -1},
    };
    NEED_REFDATA("vocab/ggml-vocab-qwen2.gguf");
    coder_model_params p;
    coder_model_params_init(&p);
    p.vocab_only = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = refpath(1, cases[i].file);
        coder_model *m = NULL;
        coder_status st = coder_model_load(path, &p, &m);
        CHECK_MSG(st == CODER_OK, "%s: %s", cases[i].file, coder_last_error());
        coder_model_info info;
        info.size = sizeof info;
        st = coder_model_get_info(m, &info);
        coder_model_free(m);
        CHECK_OK(st);
        CHECK_MSG(info.vocab_size == cases[i].n_vocab, "%s: vocab %d", cases[i].file, info.vocab_size);
        CHECK(info.n_layers == 0 && info.n_params == 0);
        if (cases[i].fmt >= 0)
            CHECK_MSG(info.chat_format == cases[i].fmt, "%s: format %d", cases[i].file, info.chat_format);
    }
    /* A vocabulary file is not a model: without vocab_only it is C8. */
    coder_model *m = (coder_model *)0x1;
    CHECK_STATUS(coder_model_load(src, NULL, &m), CODER_ERR_UNSUPPORTED);
    CHECK(m == NULL);
    ERR_HAS("vocab");
    /* ... and an architecture we do not run is named. */
    CHECK_STATUS(coder_model_load(refpath(1, "vocab/ggml-vocab-gpt-2.gguf"), NULL, &m), CODER_ERR_UNSUPPORTED);
    ERR_HAS("gpt2");
}

/* ---- group D -------------------------------------------------------------------------------- */

static void kv_block_count_0(gguf_writer *w) { gguf_writer_set_u32(w, "llama.block_count", 0); }
static void kv_block_count_513(gguf_writer *w) { gguf_writer_set_u32(w, "llama.block_count", 513); }
static void kv_block_count_max(gguf_writer *w) { gguf_writer_set_u32(w, "llama.block_count", 0xFFFFFFFFu); }
static void kv_block_count_str(gguf_writer *w) { gguf_writer_set_str(w, "llama.block_count", "4", 1); }
static void kv_heads_0(gguf_writer *w) { gguf_writer_set_u32(w, "llama.attention.head_count", 0); }
static void kv_kv_heads_0(gguf_writer *w) { gguf_writer_set_u32(w, "llama.attention.head_count_kv", 0); }
static void kv_kv_heads_3(gguf_writer *w) { gguf_writer_set_u32(w, "llama.attention.head_count_kv", 3); }
static void kv_heads_7(gguf_writer *w) {
    gguf_writer_set_u32(w, "llama.attention.head_count", 7);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", 7);
}
static void kv_rot_odd(gguf_writer *w) { gguf_writer_set_u32(w, "llama.rope.dimension_count", 31); }
static void kv_rot_big(gguf_writer *w) { gguf_writer_set_u32(w, "llama.rope.dimension_count", 64); }
static void kv_key_len_64(gguf_writer *w) { gguf_writer_set_u32(w, "llama.attention.key_length", 64); }
static void kv_val_len_16(gguf_writer *w) { gguf_writer_set_u32(w, "llama.attention.value_length", 16); }
static void kv_ctx_0(gguf_writer *w) { gguf_writer_set_u32(w, "llama.context_length", 0); }
static void kv_ctx_max(gguf_writer *w) { gguf_writer_set_u32(w, "llama.context_length", 0xFFFFFFFFu); }
static void kv_ctx_bool(gguf_writer *w) { gguf_writer_set_bool(w, "llama.context_length", true); }
static void kv_base_0(gguf_writer *w) { gguf_writer_set_f32(w, "llama.rope.freq_base", 0.0f); }
static void kv_base_nan(gguf_writer *w) { gguf_writer_set_f32(w, "llama.rope.freq_base", NAN); }
static void kv_base_inf(gguf_writer *w) { gguf_writer_set_f32(w, "llama.rope.freq_base", INFINITY); }
static void kv_eps_0(gguf_writer *w) { gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 0.0f); }
static void kv_eps_neg(gguf_writer *w) { gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", -1e-5f); }
static void kv_eps_nan(gguf_writer *w) { gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", NAN); }
static void kv_vocab_32001(gguf_writer *w) { gguf_writer_set_u32(w, "llama.vocab_size", 32001); }
static void kv_longrope(gguf_writer *w) { gguf_writer_set_str(w, "llama.rope.scaling.type", "longrope", 8); }
static void kv_experts(gguf_writer *w) { gguf_writer_set_u32(w, "llama.expert_count", 8); }
static void kv_arch_unknown(gguf_writer *w) { gguf_writer_set_str(w, "general.architecture", "mamba", 5); }
static void kv_type_adapter(gguf_writer *w) { gguf_writer_set_str(w, "general.type", "adapter", 7); }
static void kv_type_mmproj(gguf_writer *w) { gguf_writer_set_str(w, "general.type", "mmproj", 6); }
static void kv_scale_nan(gguf_writer *w) { gguf_writer_set_f32(w, "llama.rope.scaling.factor", NAN); }

TEST(d1_missing_keys) {
    NEED_REFDATA(LLAMA_Q4);
    static const char *keys[] = {"llama.block_count", "llama.embedding_length",
                                 "llama.feed_forward_length", "llama.attention.head_count",
                                 "llama.context_length", "llama.attention.layer_norm_rms_epsilon"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        variant v = {.drop_keys = {keys[i]}};
        CHECK_STATUS(load_variant(src, &v, NULL, NULL), CODER_ERR_FORMAT);
        ERR_HAS(keys[i]);
        ERR_HAS("missing");
    }
}

TEST(d2_block_count) {
    NEED_REFDATA(LLAMA_Q4);
    void (*fns[])(gguf_writer *) = {kv_block_count_0, kv_block_count_513, kv_block_count_max,
                                    kv_block_count_str};
    for (size_t i = 0; i < 4; i++) {
        variant v = {.drop_keys = {"llama.block_count"}, .kvs = fns[i]};
        EXPECT_VARIANT(src, &v, CODER_ERR_FORMAT, "llama.block_count");
    }
}

TEST(d3_d4_heads) {
    NEED_REFDATA(LLAMA_Q4);
    variant v0 = {.drop_keys = {"llama.attention.head_count"}, .kvs = kv_heads_0};
    EXPECT_VARIANT(src, &v0, CODER_ERR_FORMAT, "head_count");
    variant v1 = {.drop_keys = {"llama.attention.head_count_kv"}, .kvs = kv_kv_heads_0};
    EXPECT_VARIANT(src, &v1, CODER_ERR_FORMAT, "head_count_kv");
    variant v2 = {.drop_keys = {"llama.attention.head_count_kv"}, .kvs = kv_kv_heads_3};
    EXPECT_VARIANT(src, &v2, CODER_ERR_FORMAT, "head_count_kv");
    variant v3 = {.drop_keys = {"llama.attention.head_count", "llama.attention.head_count_kv"},
                  .kvs = kv_heads_7}; /* 256 % 7 != 0 */
    EXPECT_VARIANT(src, &v3, CODER_ERR_FORMAT, "embedding_length");
    variant v4 = {.drop_keys = {"llama.rope.dimension_count"}, .kvs = kv_rot_odd};
    EXPECT_VARIANT(src, &v4, CODER_ERR_FORMAT, "rope.dimension_count");
    variant v5 = {.drop_keys = {"llama.rope.dimension_count"}, .kvs = kv_rot_big};
    EXPECT_VARIANT(src, &v5, CODER_ERR_FORMAT, "rope.dimension_count");
    /* key_length 64 contradicts the tensors: attn_q must then have 8*64 rows */
    variant v6 = {.kvs = kv_key_len_64};
    EXPECT_VARIANT(src, &v6, CODER_ERR_FORMAT, "blk.0.attn_q.weight: wrong shape; expected [256, 512], got [256, 256]");
    variant v7 = {.kvs = kv_val_len_16};
    EXPECT_VARIANT(src, &v7, CODER_ERR_UNSUPPORTED, "value_length");
}

TEST(d6_context_rope_eps) {
    NEED_REFDATA(LLAMA_Q4);
    struct { const char *drop; void (*fn)(gguf_writer *); const char *needle; } cases[] = {
        {"llama.context_length", kv_ctx_0, "context_length"},
        {"llama.context_length", kv_ctx_max, "context_length"},
        {"llama.context_length", kv_ctx_bool, "context_length"},
        {"llama.rope.freq_base", kv_base_0, "freq_base"},
        {"llama.rope.freq_base", kv_base_nan, "freq_base"},
        {"llama.rope.freq_base", kv_base_inf, "freq_base"},
        {"llama.attention.layer_norm_rms_epsilon", kv_eps_0, "layer_norm_rms_epsilon"},
        {"llama.attention.layer_norm_rms_epsilon", kv_eps_neg, "layer_norm_rms_epsilon"},
        {"llama.attention.layer_norm_rms_epsilon", kv_eps_nan, "layer_norm_rms_epsilon"},
        {NULL, kv_scale_nan, "rope.scaling.factor"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        variant v = {.drop_keys = {cases[i].drop}, .kvs = cases[i].fn};
        EXPECT_VARIANT(src, &v, CODER_ERR_FORMAT, cases[i].needle);
    }
}

static void kv_linear4(gguf_writer *w) {
    gguf_writer_set_str(w, "llama.rope.scaling.type", "linear", 6);
    gguf_writer_set_f32(w, "llama.rope.scaling.factor", 4.0f);
}
static void kv_yarn(gguf_writer *w) {
    gguf_writer_set_str(w, "llama.rope.scaling.type", "yarn", 4);
    gguf_writer_set_f32(w, "llama.rope.scaling.factor", 4.0f);
    gguf_writer_set_u32(w, "llama.rope.scaling.original_context_length", 1024);
}

TEST(rope_scaling_keys) {
    NEED_REFDATA(LLAMA_Q4);
    coder_model *m = NULL;
    variant v = {.kvs = kv_linear4};
    CHECK_OK(load_variant(src, &v, NULL, &m));
    model_hparams hp = m->hp;
    coder_model_free(m);
    CHECK(hp.rope_scaling_type == ROPE_SCALING_LINEAR && hp.rope_freq_scale == 0.25f);
    variant y = {.kvs = kv_yarn};
    CHECK_OK(load_variant(src, &y, NULL, &m));
    hp = m->hp;
    coder_model_free(m);
    CHECK(hp.rope_scaling_type == ROPE_SCALING_YARN && hp.rope_freq_scale == 0.25f);
    CHECK(hp.yarn_orig_ctx == 1024 && hp.yarn_ext_factor == 1.0f && hp.yarn_attn_factor == 1.0f);
    CHECK(hp.yarn_beta_fast == 32.0f && hp.yarn_beta_slow == 1.0f);
    /* absent freq_base: 10000; absent head_count_kv: = head_count (then the K rows mismatch) */
    const char *qsrc = refpath(1, QWEN2_Q4);
    variant b = {.drop_keys = {"qwen2.rope.freq_base"}};
    CHECK_OK(load_variant(qsrc, &b, NULL, &m));
    hp = m->hp;
    coder_model_free(m);
    CHECK(hp.rope_base == 10000.0f);
}

/* Replacement tensors (static so the writer can keep pointers until the file is written). */
static uint8_t zero_buf[256 * 210];
static uint8_t *big_zero;
static bool t_k_wide(gguf_writer *w, const gguf_tensor *t) {
    if (strcmp(t->name, "blk.1.attn_k.weight")) return false;
    uint64_t ne[2] = {256, 128};
    gguf_writer_add_tensor(w, t->name, QT_Q4_K, 2, ne, zero_buf, NULL);
    return true;
}
static bool t_down_transposed(gguf_writer *w, const gguf_tensor *t) {
    if (strcmp(t->name, "blk.2.ffn_down.weight")) return false;
    uint64_t ne[2] = {256, 768};
    gguf_writer_add_tensor(w, t->name, t->type, 2, ne, big_zero, NULL); /* 768 rows of <= 210 B */
    return true;
}
static bool t_embd_short(gguf_writer *w, const gguf_tensor *t) {
    if (strcmp(t->name, "token_embd.weight")) return false;
    uint64_t ne[2] = {256, 31999};
    gguf_writer_add_tensor(w, t->name, t->type, 2, ne, t->data, NULL);
    return true;
}
static bool t_output_short(gguf_writer *w, const gguf_tensor *t) {
    if (strcmp(t->name, "output.weight")) return false;
    uint64_t ne[2] = {256, 31999};
    gguf_writer_add_tensor(w, t->name, t->type, 2, ne, t->data, NULL);
    return true;
}
static bool t_norm_q8(gguf_writer *w, const gguf_tensor *t) {
    if (strcmp(t->name, "blk.0.attn_norm.weight")) return false;
    uint64_t ne[1] = {256};
    gguf_writer_add_tensor(w, t->name, QT_Q8_0, 1, ne, zero_buf, NULL);
    return true;
}
static bool t_q_q2k(gguf_writer *w, const gguf_tensor *t) {
    if (strcmp(t->name, "blk.1.attn_q.weight")) return false;
    uint64_t ne[2] = {256, 256};
    gguf_writer_add_tensor(w, t->name, QT_Q2_K, 2, ne, zero_buf, NULL);
    return true;
}
static bool t_lora(gguf_writer *w, const gguf_tensor *t) {
    char name[80];
    snprintf(name, sizeof name, "%.50s.lora_a", t->name);
    gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, NULL);
    return true;
}
static float extra_data[4];
static void extra_tensors(gguf_writer *w) {
    uint64_t ne[1] = {4};
    gguf_writer_add_tensor(w, "blk.0.mystery.weight", QT_F32, 1, ne, extra_data, NULL);
    gguf_writer_add_tensor(w, "blk.9.attn_q.weight", QT_F32, 1, ne, extra_data, NULL);
}

TEST(d7_d8_d9_tensors) {
    NEED_REFDATA(LLAMA_Q4);
    variant v0 = {.drop_tensor = "blk.3.attn_q.weight"};
    EXPECT_VARIANT(src, &v0, CODER_ERR_FORMAT, "missing tensor blk.3.attn_q.weight");
    variant v1 = {.drop_tensor = "output_norm.weight"};
    EXPECT_VARIANT(src, &v1, CODER_ERR_FORMAT, "missing tensor output_norm.weight");
    variant v2 = {.tensor = t_k_wide};
    EXPECT_VARIANT(src, &v2, CODER_ERR_FORMAT,
                   "blk.1.attn_k.weight: wrong shape; expected [256, 64], got [256, 128]");
    big_zero = calloc(1, 768 * 210);
    variant v3 = {.tensor = t_down_transposed};
    EXPECT_VARIANT(src, &v3, CODER_ERR_FORMAT,
                   "blk.2.ffn_down.weight: wrong shape; expected [768, 256], got [256, 768]");
    free(big_zero);
    /* D9: the three vocabulary sizes must agree */
    variant v4 = {.tensor = t_embd_short};
    EXPECT_VARIANT(src, &v4, CODER_ERR_FORMAT,
                   "token_embd.weight: wrong shape; expected [256, 32000], got [256, 31999]");
    variant v5 = {.tensor = t_output_short};
    EXPECT_VARIANT(src, &v5, CODER_ERR_FORMAT,
                   "output.weight: wrong shape; expected [256, 32000], got [256, 31999]");
    variant v6 = {.drop_keys = {"llama.vocab_size"}, .kvs = kv_vocab_32001};
    EXPECT_VARIANT(src, &v6, CODER_ERR_FORMAT, "vocab_size");
}

TEST(d10_unsupported_types) {
    NEED_REFDATA(LLAMA_Q4);
    variant v0 = {.tensor = t_norm_q8};
    EXPECT_VARIANT(src, &v0, CODER_ERR_UNSUPPORTED, "blk.0.attn_norm.weight has type Q8_0");
    variant v1 = {.tensor = t_q_q2k};
    EXPECT_VARIANT(src, &v1, CODER_ERR_UNSUPPORTED, "blk.1.attn_q.weight has type Q2_K");
}

TEST(d11_unknown_tensors_warned) {
    NEED_REFDATA(LLAMA_Q4);
    log_text[0] = 0;
    coder_log_set(log_sink, NULL, CODER_LOG_WARN);
    variant v = {.extra = extra_tensors};
    coder_status st = load_variant(src, &v, NULL, NULL);
    coder_log_set(NULL, NULL, CODER_LOG_NONE);
    CHECK_OK(st);
    CHECK_MSG(strstr(log_text, "blk.0.mystery.weight") != NULL, "log: %.400s", log_text);
    CHECK_MSG(strstr(log_text, "blk.9.attn_q.weight") != NULL, "log: %.400s", log_text);
}

TEST(d12_unsupported_features) {
    NEED_REFDATA(LLAMA_Q4);
    variant v0 = {.kvs = kv_longrope};
    EXPECT_VARIANT(src, &v0, CODER_ERR_UNSUPPORTED, "rope.scaling.type");
    variant v1 = {.kvs = kv_experts};
    EXPECT_VARIANT(src, &v1, CODER_ERR_UNSUPPORTED, "expert_count");
    variant v2 = {.drop_keys = {"general.architecture"}, .kvs = kv_arch_unknown};
    EXPECT_VARIANT(src, &v2, CODER_ERR_UNSUPPORTED, "mamba");
}

TEST(c8_not_a_model) {
    NEED_REFDATA(LLAMA_Q4);
    variant v0 = {.drop_keys = {"general.architecture"}};
    EXPECT_VARIANT(src, &v0, CODER_ERR_UNSUPPORTED, "general.architecture");
    variant v1 = {.kvs = kv_type_adapter};
    EXPECT_VARIANT(src, &v1, CODER_ERR_UNSUPPORTED, "adapter");
    variant v2 = {.kvs = kv_type_mmproj};
    EXPECT_VARIANT(src, &v2, CODER_ERR_UNSUPPORTED, "mmproj");
    variant v3 = {.tensor = t_lora};
    EXPECT_VARIANT(src, &v3, CODER_ERR_UNSUPPORTED, "not a base model");
}

TEST(qwen2_bias_required) {
    NEED_REFDATA(QWEN2_Q4);
    variant v = {.drop_tensor = "blk.2.attn_v.bias"};
    EXPECT_VARIANT(src, &v, CODER_ERR_FORMAT, "missing tensor blk.2.attn_v.bias");
}

/* A qwen3 model built from the qwen2 one: head_dim 64 from key_length (8*64 = 512 != dim 256),
 * no biases, q/k norms. Replacement matrices are F32 (any computable type will do). */
static float *q3_q, *q3_kv, *q3_o, q3_norm[64];
static bool q3_drop_norm;
static void kv_qwen3(gguf_writer *w) {
    gguf_writer_set_str(w, "general.architecture", "qwen3", 5);
    gguf_writer_set_u32(w, "qwen3.block_count", 4);
    gguf_writer_set_u32(w, "qwen3.context_length", 40960);
    gguf_writer_set_u32(w, "qwen3.embedding_length", 256);
    gguf_writer_set_u32(w, "qwen3.feed_forward_length", 768);
    gguf_writer_set_u32(w, "qwen3.attention.head_count", 8);
    gguf_writer_set_u32(w, "qwen3.attention.head_count_kv", 2);
    gguf_writer_set_u32(w, "qwen3.attention.key_length", 64);
    gguf_writer_set_u32(w, "qwen3.attention.value_length", 64);
    gguf_writer_set_f32(w, "qwen3.rope.freq_base", 1e6f);
    gguf_writer_set_f32(w, "qwen3.attention.layer_norm_rms_epsilon", 1e-6f);
}
static bool t_qwen3(gguf_writer *w, const gguf_tensor *t) {
    const char *dot = strchr(t->name + 4, '.');
    if (strncmp(t->name, "blk.", 4) || !dot) return false;
    const char *s = dot + 1;
    uint64_t ne[2];
    if (strstr(s, ".bias")) return true; /* dropped */
    if (!strcmp(s, "attn_q.weight")) { ne[0] = 256; ne[1] = 512; gguf_writer_add_tensor(w, t->name, QT_F32, 2, ne, q3_q, NULL); }
    else if (!strcmp(s, "attn_k.weight") || !strcmp(s, "attn_v.weight")) { ne[0] = 256; ne[1] = 128; gguf_writer_add_tensor(w, t->name, QT_F32, 2, ne, q3_kv, NULL); }
    else if (!strcmp(s, "attn_output.weight")) { ne[0] = 512; ne[1] = 256; gguf_writer_add_tensor(w, t->name, QT_F32, 2, ne, q3_o, NULL); }
    else return false;
    if (!strcmp(s, "attn_q.weight")) {
        char name[64];
        ne[0] = 64;
        snprintf(name, sizeof name, "%.*s.attn_q_norm.weight", (int)(dot - t->name), t->name);
        gguf_writer_add_tensor(w, name, QT_F32, 1, ne, q3_norm, NULL);
        snprintf(name, sizeof name, "%.*s.attn_k_norm.weight", (int)(dot - t->name), t->name);
        if (!(q3_drop_norm && !strncmp(t->name, "blk.3.", 6))) gguf_writer_add_tensor(w, name, QT_F32, 1, ne, q3_norm, NULL);
    }
    return true;
}

TEST(qwen3_synthetic) {
    NEED_REFDATA(QWEN2_Q4);
    q3_q = calloc(256 * 512, sizeof(float));
    q3_kv = calloc(256 * 128, sizeof(float));
    q3_o = calloc(512 * 256, sizeof(float));
    for (int i = 0; i < 64; i++) q3_norm[i] = 1.0f;
    variant v = {.drop_keys = {"qwen2.*", "general.architecture"}, .kvs = kv_qwen3, .tensor = t_qwen3};
    coder_model *m = NULL;
    q3_drop_norm = false;
    coder_status st = load_variant(src, &v, NULL, &m);
    model_hparams hp = {0};
    int64_t qrows = 0, knorm = 0;
    if (st == CODER_OK) {
        hp = m->hp;
        qrows = m->layers[1].wq.rows;
        knorm = m->layers[3].k_norm.cols;
        coder_model_free(m);
    }
    q3_drop_norm = true;
    coder_status st2 = load_variant(src, &v, NULL, NULL);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", coder_last_error());
    free(q3_q);
    free(q3_kv);
    free(q3_o);
    CHECK_OK(st);
    CHECK(hp.arch == ARCH_QWEN3 && hp.head_dim == 64 && hp.n_rot == 64 && hp.rope == ROPE_NEOX);
    CHECK(hp.has_qk_norm && !hp.has_qkv_bias && hp.n_ctx_train == 40960);
    CHECK(qrows == 512 && knorm == 64);
    CHECK_STATUS(st2, CODER_ERR_FORMAT);
    CHECK_MSG(strstr(msg, "missing tensor blk.3.attn_k_norm.weight"), "%.400s", msg);
}

/* ---- C5: NaN/Inf weights with validate_weights --------------------------------------------- */

static uint8_t *nan_copy;
static bool t_nan_scale(gguf_writer *w, const gguf_tensor *t) {
    if (strcmp(t->name, "blk.0.ffn_up.weight")) return false;
    free(nan_copy);
    nan_copy = malloc(t->nbytes);
    memcpy(nan_copy, t->data, t->nbytes);
    /* row 5, super-block 1: its f16 d = NaN (0x7E00). Q4_K rows of 256 are one 144-byte block. */
    uint16_t nan16 = 0x7E00;
    memcpy(nan_copy + 5 * 144, &nan16, 2);
    gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, nan_copy, NULL);
    return true;
}
static float norm_inf[256];
static bool t_inf_norm(gguf_writer *w, const gguf_tensor *t) {
    if (strcmp(t->name, "output_norm.weight")) return false;
    memcpy(norm_inf, t->data, sizeof norm_inf);
    norm_inf[7] = INFINITY;
    gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, norm_inf, NULL);
    return true;
}

TEST(c5_nan_weights) {
    NEED_REFDATA(LLAMA_Q4);
    coder_model_params p;
    coder_model_params_init(&p);
    p.validate_weights = 1;
    variant v = {.tensor = t_nan_scale};
    coder_status st = load_variant(src, &v, &p, NULL);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", coder_last_error());
    coder_status st_off = load_variant(src, &v, NULL, NULL); /* not scanned: loads */
    free(nan_copy);
    nan_copy = NULL;
    CHECK_STATUS(st, CODER_ERR_FORMAT);
    CHECK_MSG(strstr(msg, "blk.0.ffn_up.weight") && strstr(msg, "row 5"), "%.400s", msg);
    CHECK_OK(st_off);
    variant v2 = {.tensor = t_inf_norm};
    CHECK_STATUS(load_variant(src, &v2, &p, NULL), CODER_ERR_FORMAT);
    ERR_HAS("output_norm.weight");
    ERR_HAS("column 7");
}

/* ---- progress and cancellation (G9) --------------------------------------------------------- */

static float progress_seen[64];
static int progress_n, progress_cancel_at;
static int progress_fn(float frac, void *ud) {
    (void)ud;
    if (progress_n < 64) progress_seen[progress_n] = frac;
    return progress_n++ == progress_cancel_at;
}

TEST(progress_and_cancel) {
    NEED_REFDATA(LLAMA_Q4);
    coder_model_params p;
    coder_model_params_init(&p);
    p.progress = progress_fn;
    p.validate_weights = 1;
    progress_n = 0;
    progress_cancel_at = -1;
    coder_model *m = NULL;
    CHECK_OK(coder_model_load(src, &p, &m));
    coder_model_free(m);
    int n = progress_n;
    CHECK(n >= 3 && n <= 64);
    CHECK(progress_seen[0] == 0.0f && progress_seen[n - 1] == 1.0f);
    for (int i = 1; i < n; i++) CHECK(progress_seen[i] >= progress_seen[i - 1]);
    for (int k = 0; k < n; k++) {
        progress_n = 0;
        progress_cancel_at = k;
        m = (coder_model *)0x1;
        CHECK_STATUS(coder_model_load(src, &p, &m), CODER_ERR_CANCELLED);
        CHECK(m == NULL);
        ERR_HAS("cancelled");
    }
}

/* ---- lifetime, arguments, params ------------------------------------------------------------ */

TEST(free_busy_with_sessions) {
    NEED_REFDATA(LLAMA_Q4);
    coder_model *m = NULL;
    CHECK_OK(coder_model_load(src, NULL, &m));
    atomic_store(&m->n_sessions, 2);
    coder_status st = coder_model_free(m);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", coder_last_error());
    atomic_store(&m->n_sessions, 0);
    CHECK_OK(coder_model_free(m));
    CHECK_STATUS(st, CODER_ERR_BUSY);
    CHECK_MSG(strstr(msg, "2 live session"), "%.400s", msg);
    CHECK_OK(coder_model_free(NULL));
}

TEST(g1_null_arguments) {
    NEED_REFDATA(LLAMA_Q4);
    coder_model *m = (coder_model *)0x1;
    coder_model_params_init(NULL); /* no crash */
    CHECK_STATUS(coder_model_load(NULL, NULL, &m), CODER_ERR_INVALID_ARG);
    CHECK(m == NULL);
    ERR_HAS("path");
    CHECK_STATUS(coder_model_load(src, NULL, NULL), CODER_ERR_INVALID_ARG);
    ERR_HAS("out");
    CHECK_OK(coder_model_load(src, NULL, &m));
    coder_model_info info;
    info.size = sizeof info;
    char buf[16];
    size_t need = 0;
    coder_status s1 = coder_model_get_info(NULL, &info);
    coder_status s2 = coder_model_get_info(m, NULL);
    coder_status s3 = coder_model_meta(NULL, "general.name", buf, sizeof buf, &need);
    coder_status s4 = coder_model_meta(m, NULL, buf, sizeof buf, &need);
    coder_status s5 = coder_model_meta(m, "general.name", NULL, sizeof buf, &need);
    coder_status s6 = coder_model_meta(m, "general.name", buf, sizeof buf, NULL);
    coder_status s7 = coder_model_meta(m, "no.such.key", buf, sizeof buf, &need);
    char msg7[1024];
    snprintf(msg7, sizeof msg7, "%s", coder_last_error());
    info.size = 0;
    coder_status s8 = coder_model_get_info(m, &info);
    coder_model_free(m);
    CHECK(s1 == CODER_ERR_INVALID_ARG && s2 == CODER_ERR_INVALID_ARG && s3 == CODER_ERR_INVALID_ARG);
    CHECK(s4 == CODER_ERR_INVALID_ARG && s5 == CODER_ERR_INVALID_ARG && s6 == CODER_ERR_INVALID_ARG);
    CHECK(s7 == CODER_ERR_INVALID_ARG && strstr(msg7, "no.such.key"));
    CHECK(s8 == CODER_ERR_INVALID_ARG);
    /* a path that is not a file */
    CHECK_STATUS(coder_model_load("/nonexistent/model.gguf", NULL, &m), CODER_ERR_IO);
    CHECK(m == NULL);
}

TEST(params_size_semantics) {
    NEED_REFDATA(LLAMA_Q4);
    coder_model_params p;
    coder_model_params_init(&p);
    CHECK(p.size == sizeof p && p.use_mmap == 0 && p.n_gpu_layers == -1 && p.n_threads == 0);
    CHECK(p.validate_weights == 0 && p.vocab_only == 0 && p.progress == NULL);
    coder_model *m = (coder_model *)0x1;
    p.size = 0;
    CHECK_STATUS(coder_model_load(src, &p, &m), CODER_ERR_INVALID_ARG);
    CHECK(m == NULL);
    ERR_HAS("size");
    p.size = sizeof p + 8;
    CHECK_STATUS(coder_model_load(src, &p, &m), CODER_ERR_INVALID_ARG);
    /* An older caller's shorter struct: the fields past its size are garbage and must be ignored. */
    coder_model_params_init(&p);
    p.size = offsetof(coder_model_params, validate_weights);
    p.validate_weights = 77;
    p.vocab_only = -5;
    p.progress = (coder_progress_fn)0x1234;
    CHECK_OK(coder_model_load(src, &p, &m));
    coder_model_free(m);
    coder_model_params_init(&p);
    p.n_gpu_layers = -2;
    CHECK_STATUS(coder_model_load(src, &p, &m), CODER_ERR_INVALID_ARG);
    ERR_HAS("n_gpu_layers");
    coder_model_params_init(&p);
    p.vocab_only = 2;
    CHECK_STATUS(coder_model_load(src, &p, &m), CODER_ERR_INVALID_ARG);
    ERR_HAS("vocab_only");
}

/* Older coder_model_info: only the fields within info->size are written. */
TEST(info_size_semantics) {
    NEED_REFDATA(LLAMA_Q4);
    coder_model *m = NULL;
    CHECK_OK(coder_model_load(src, NULL, &m));
    coder_model_info info;
    memset(&info, 0xAB, sizeof info);
    info.size = offsetof(coder_model_info, n_layers);
    coder_status st = coder_model_get_info(m, &info);
    coder_model_free(m);
    CHECK_OK(st);
    CHECK(!strcmp(info.arch, "llama"));
    CHECK(info.n_layers == (int32_t)0xABABABAB);
}

/* ---- G14: metadata as text with every buffer size -------------------------------------------- */

TEST(g14_meta_buffers) {
    NEED_REFDATA(LLAMA_Q4);
    coder_model *m = NULL;
    CHECK_OK(coder_model_load(src, NULL, &m));
    char buf[4096];
    size_t need = 0;
    memset(buf, 'X', sizeof buf);
    coder_status s0 = coder_model_meta(m, "general.name", buf, 0, &need);
    size_t need0 = need;
    char b0 = buf[0];
    coder_status s0n = coder_model_meta(m, "general.name", NULL, 0, &need);
    coder_status s1 = coder_model_meta(m, "general.name", buf, 1, &need);
    char b1[2] = {buf[0], buf[1]};
    coder_status s5 = coder_model_meta(m, "general.name", buf, 5, &need);
    char b5[6];
    memcpy(b5, buf, 6);
    coder_status sh = coder_model_meta(m, "general.name", buf, sizeof buf, &need);
    size_t need_h = need;
    char bh[32];
    snprintf(bh, sizeof bh, "%.31s", buf);
    char num[32], flt[32], arr[32], bl[32], ftype[32];
    coder_status sn = coder_model_meta(m, "llama.block_count", num, sizeof num, &need);
    size_t need_num = need;
    coder_status sf = coder_model_meta(m, "llama.rope.freq_base", flt, sizeof flt, &need);
    coder_status sa = coder_model_meta(m, "tokenizer.ggml.tokens", arr, sizeof arr, &need);
    coder_status sb = coder_model_meta(m, "tokenizer.ggml.add_bos_token", bl, sizeof bl, &need);
    coder_status st = coder_model_meta(m, "general.file_type", ftype, sizeof ftype, &need);
    coder_model_free(m);
    CHECK(s0 == CODER_ERR_BUFFER_TOO_SMALL && need0 == 11 && b0 == 'X');
    CHECK(s0n == CODER_ERR_BUFFER_TOO_SMALL);
    CHECK(s1 == CODER_ERR_BUFFER_TOO_SMALL && b1[0] == 0 && b1[1] == 'X');
    CHECK(s5 == CODER_ERR_BUFFER_TOO_SMALL && !strcmp(b5, "tiny") && b5[5] == 'X');
    CHECK_OK(sh);
    CHECK(!strcmp(bh, "tiny-llama") && need_h == 11);
    CHECK(sn == CODER_OK && !strcmp(num, "4") && need_num == 2);
    CHECK(sf == CODER_OK && !strcmp(flt, "10000"));
    CHECK(sa == CODER_OK && !strcmp(arr, "[32000 items]"));
    CHECK(sb == CODER_OK && !strcmp(bl, "true"));
    CHECK(st == CODER_OK && !strcmp(ftype, "15"));
}

/* ---- H8: allocation failure at each of the first allocation sites ------------------------- */

TEST(nomem_every_allocation) {
    NEED_REFDATA(LLAMA_Q4);
    /* A full load takes ~50 allocations (tokenizer included): fail each one in turn. */
    static const struct { const char *file; int vocab_only; } cases[] = {
        {LLAMA_Q4, 0}, {QWEN2_Q4, 0}, {"vocab/ggml-vocab-qwen3.gguf", 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *path = refpath(1, cases[c].file);
        coder_model_params p;
        coder_model_params_init(&p);
        p.vocab_only = cases[c].vocab_only;
        bool loaded = false;
        int n_fail = 0;
        for (long n = 0; n < 2000 && !loaded; n++) {
            coder_model *m = (coder_model *)0x1;
            coder_alloc_fail_after(n);
            coder_status st = coder_model_load(path, &p, &m);
            coder_alloc_fail_after(-1);
            if (st == CODER_OK) {
                coder_model_free(m);
                loaded = true;
                break;
            }
            n_fail++;
            CHECK_MSG(st == CODER_ERR_NOMEM, "%s allocation %ld: status %d (%.300s)", cases[c].file, n,
                      st, coder_last_error());
            CHECK(m == NULL);
        }
        CHECK_MSG(loaded && n_fail > 10, "%s: loaded %d after %d failures", cases[c].file, loaded, n_fail);
    }
}

int main(void) {
    RUN(load_tiny_llama_f16);
    RUN(load_tiny_llama_q4);
    RUN(load_tiny_qwen2);
    RUN(load_read_mode_and_validate);
    RUN(vocab_only_files);
    RUN(d1_missing_keys);
    RUN(d2_block_count);
    RUN(d3_d4_heads);
    RUN(d6_context_rope_eps);
    RUN(rope_scaling_keys);
    RUN(d7_d8_d9_tensors);
    RUN(d10_unsupported_types);
    RUN(d11_unknown_tensors_warned);
    RUN(d12_unsupported_features);
    RUN(c8_not_a_model);
    RUN(qwen2_bias_required);
    RUN(qwen3_synthetic);
    RUN(c5_nan_weights);
    RUN(progress_and_cancel);
    RUN(free_busy_with_sessions);
    RUN(g1_null_arguments);
    RUN(params_size_semantics);
    RUN(info_size_semantics);
    RUN(g14_meta_buffers);
    RUN(nomem_every_allocation);
    return test_summary();
}
