/* mkmodel.c - presets, llama.cpp's per-tensor type recipe, metadata and tokenizer copy, and the
 * file layout of a synthetic model. The weights themselves are generated in parallel by
 * mkmodel_gen.c, straight into the file at the writer's offsets. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gguf.h"
#include "mkmodel_impl.h"
#include "quant.h"

/* Shapes from FORMATS.md 3.8 (HF config.json). tiny* match refdata's tiny models (tiny-qwen2 is
 * tied, tiny-llama untied); tiny-qwen3 has head_dim 128 with n_heads*head_dim (1024) != dim (256),
 * like the real Qwen3. llama-7b is the CodeLlama / DeepSeek-Coder 6.7B shape. */
static const mkmodel_preset mkmodel_presets[] = {
    /* name                 arch     layers dim  heads kv  hdim ffn    vocab  ctx    rope   eps   tied */
    {"tiny",               "qwen2",  4,  256,  8,  2, 32,  768,   0,      4096,  1e6f,  1e-6f, true},
    {"tiny-llama",         "llama",  4,  256,  8,  2, 32,  768,   0,      4096,  1e4f,  1e-5f, false},
    {"tiny-qwen3",         "qwen3",  4,  256,  8,  2, 128, 768,   0,      4096,  1e6f,  1e-6f, true},
    {"qwen2.5-0.5b",       "qwen2",  24, 896,  14, 2, 64,  4864,  151936, 32768, 1e6f,  1e-6f, true},
    {"qwen2.5-coder-1.5b", "qwen2",  28, 1536, 12, 2, 128, 8960,  151936, 32768, 1e6f,  1e-6f, true},
    {"qwen2.5-coder-7b",   "qwen2",  28, 3584, 28, 4, 128, 18944, 152064, 32768, 1e6f,  1e-6f, false},
    {"qwen2.5-coder-14b",  "qwen2",  48, 5120, 40, 8, 128, 13824, 152064, 32768, 1e6f,  1e-6f, false},
    {"qwen3-8b",           "qwen3",  36, 4096, 32, 8, 128, 12288, 151936, 40960, 1e6f,  1e-6f, false},
    {"llama-7b",           "llama",  32, 4096, 32, 32, 128, 11008, 32000, 4096,  1e4f,  1e-5f, false},
};

size_t mkmodel_preset_count(void) { return sizeof mkmodel_presets / sizeof mkmodel_presets[0]; }
const mkmodel_preset *mkmodel_preset_at(size_t i) { return i < mkmodel_preset_count() ? &mkmodel_presets[i] : NULL; }

const mkmodel_preset *mkmodel_find_preset(const char *name) {
    for (size_t i = 0; name && i < mkmodel_preset_count(); i++)
        if (strcmp(mkmodel_presets[i].name, name) == 0) return &mkmodel_presets[i];
    return NULL;
}

static const struct { const char *name; uint32_t file_type; } mkmodel_ftypes[] = {
    [MKMODEL_F16] = {"F16", 1}, [MKMODEL_Q8_0] = {"Q8_0", 7},
    [MKMODEL_Q6_K] = {"Q6_K", 18}, [MKMODEL_Q4_K_M] = {"Q4_K_M", 15},
};

coder_status mkmodel_parse_ftype(const char *s, mkmodel_ftype *out) {
    for (int i = 0; s && i < 4; i++)
        if (strcasecmp(s, mkmodel_ftypes[i].name) == 0) {
            *out = (mkmodel_ftype)i;
            return CODER_OK;
        }
    return coder_fail(CODER_ERR_INVALID_ARG, "mkmodel: --type '%s' is not one of F16, Q8_0, Q6_K, Q4_K_M",
                      s ? s : "(null)");
}
const char *mkmodel_ftype_name(mkmodel_ftype t) { return (unsigned)t < 4 ? mkmodel_ftypes[t].name : "?"; }
uint32_t mkmodel_ftype_file_type(mkmodel_ftype t) { return (unsigned)t < 4 ? mkmodel_ftypes[t].file_type : 0; }

/* ---- the recipe (FORMATS.md 2.9) ------------------------------------------------------------- */

static bool mkmodel_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Q6_K for the first and last eighth of the layers and every third one in between. */
static bool mkmodel_use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

uint32_t mkmodel_tensor_type(mkmodel_ftype ft, const char *name, uint32_t n_dims, uint64_t ne0,
                             uint32_t n_layers, bool tied) {
    /* Only 2-D+ "...weight" tensors that are not norms get quantized; norms and biases stay F32. */
    if (n_dims < 2 || !mkmodel_ends_with(name, "weight") || strstr(name, "_norm.weight")) return QT_F32;
    if (ft == MKMODEL_F16) return QT_F16;
    uint32_t t = ft == MKMODEL_Q8_0 ? QT_Q8_0 : ft == MKMODEL_Q6_K ? QT_Q6_K : QT_Q4_K;
    bool is_output = strcmp(name, "output.weight") == 0 || (tied && strcmp(name, "token_embd.weight") == 0);
    if (is_output) {
        if (ft != MKMODEL_Q8_0) t = QT_Q6_K;
    } else if (ft == MKMODEL_Q4_K_M) {
        int layer = -1;
        /* attn_v's index among all attn_v tensors is its layer index: one per layer here */
        if (sscanf(name, "blk.%d.", &layer) == 1 && layer >= 0 &&
            (mkmodel_ends_with(name, ".attn_v.weight") || mkmodel_ends_with(name, ".ffn_down.weight")) &&
            mkmodel_use_more_bits(layer, (int)n_layers))
            t = QT_Q6_K;
    }
    /* K-quants need whole 256-blocks per row */
    if (ne0 % 256 != 0) {
        if (t == QT_Q4_K) t = QT_Q5_0;
        else if (t == QT_Q6_K) t = QT_Q8_0;
    }
    if (ne0 % quant_block_size(t) != 0) t = QT_F16;
    return t;
}

/* ---- plan ----------------------------------------------------------------------------------- */

static coder_status mkmodel_plan_add(mkmodel_plan *p, const char *name, mkmodel_kind kind, uint32_t n_dims,
                                     uint64_t ne0, uint64_t ne1, mkmodel_ftype ft, const mkmodel_preset *pr) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        mkmodel_tensor *t = coder_realloc(p->t, cap * sizeof *t);
        if (!t) return coder_fail(CODER_ERR_NOMEM, "mkmodel: no memory for tensor %s", name);
        p->t = t;
        p->cap = cap;
    }
    mkmodel_tensor *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->kind = kind;
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->type = mkmodel_tensor_type(ft, name, n_dims, ne0, pr->n_layers, pr->tied);
    return CODER_OK;
}

static coder_status mkmodel_build_plan(const mkmodel_preset *pr, mkmodel_ftype ft, uint32_t n_vocab, mkmodel_plan *p) {
    uint64_t d = pr->dim, q_dim = (uint64_t)pr->n_heads * pr->head_dim, kv_dim = (uint64_t)pr->n_kv_heads * pr->head_dim;
    bool qwen2 = strcmp(pr->arch, "qwen2") == 0, qwen3 = strcmp(pr->arch, "qwen3") == 0;
    char nm[GGUF_MAX_NAME];
    TRY(mkmodel_plan_add(p, "token_embd.weight", MKMODEL_MATRIX, 2, d, n_vocab, ft, pr));
    TRY(mkmodel_plan_add(p, "output_norm.weight", MKMODEL_NORM, 1, d, 1, ft, pr));
    if (!pr->tied) TRY(mkmodel_plan_add(p, "output.weight", MKMODEL_MATRIX, 2, d, n_vocab, ft, pr));
    for (uint32_t l = 0; l < pr->n_layers; l++) {
#define ADD(suffix, kind, nd, a, b)                                                                \
    do {                                                                                           \
        snprintf(nm, sizeof nm, "blk.%u.%s", l, suffix);                                           \
        TRY(mkmodel_plan_add(p, nm, kind, nd, a, b, ft, pr));                                      \
    } while (0)
        ADD("attn_norm.weight", MKMODEL_NORM, 1, d, 1);
        ADD("attn_q.weight", MKMODEL_MATRIX, 2, d, q_dim);       /* (q_dim rows, d cols) */
        if (qwen2) ADD("attn_q.bias", MKMODEL_BIAS, 1, q_dim, 1);
        ADD("attn_k.weight", MKMODEL_MATRIX, 2, d, kv_dim);
        if (qwen2) ADD("attn_k.bias", MKMODEL_BIAS, 1, kv_dim, 1);
        ADD("attn_v.weight", MKMODEL_MATRIX, 2, d, kv_dim);
        if (qwen2) ADD("attn_v.bias", MKMODEL_BIAS, 1, kv_dim, 1);
        if (qwen3) {
            ADD("attn_q_norm.weight", MKMODEL_NORM, 1, pr->head_dim, 1);
            ADD("attn_k_norm.weight", MKMODEL_NORM, 1, pr->head_dim, 1);
        }
        ADD("attn_output.weight", MKMODEL_MATRIX, 2, q_dim, d);
        ADD("ffn_norm.weight", MKMODEL_NORM, 1, d, 1);
        ADD("ffn_gate.weight", MKMODEL_MATRIX, 2, d, pr->ffn_dim);
        ADD("ffn_up.weight", MKMODEL_MATRIX, 2, d, pr->ffn_dim);
        ADD("ffn_down.weight", MKMODEL_MATRIX, 2, pr->ffn_dim, d);
#undef ADD
    }
    return CODER_OK;
}

/* ---- metadata ------------------------------------------------------------------------------ */

static coder_status mkmodel_arch_kv(gguf_writer *w, const char *arch, const char *key, uint32_t v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return gguf_writer_set_u32(w, k, v);
}

static coder_status mkmodel_metadata(gguf_writer *w, const mkmodel_preset *pr, mkmodel_ftype ft, uint32_t n_vocab) {
    const char *a = pr->arch;
    char k[128];
    TRY(gguf_writer_set_str(w, "general.architecture", a, strlen(a)));
    TRY(gguf_writer_set_str(w, "general.name", pr->name, strlen(pr->name)));
    TRY(gguf_writer_set_u32(w, "general.file_type", mkmodel_ftype_file_type(ft)));
    TRY(gguf_writer_set_u32(w, "general.quantization_version", 2));
    TRY(mkmodel_arch_kv(w, a, "block_count", pr->n_layers));
    TRY(mkmodel_arch_kv(w, a, "context_length", pr->n_ctx_train));
    TRY(mkmodel_arch_kv(w, a, "embedding_length", pr->dim));
    TRY(mkmodel_arch_kv(w, a, "feed_forward_length", pr->ffn_dim));
    TRY(mkmodel_arch_kv(w, a, "attention.head_count", pr->n_heads));
    TRY(mkmodel_arch_kv(w, a, "attention.head_count_kv", pr->n_kv_heads));
    /* head_dim is d/H unless stated: qwen3 always states it (128) */
    if (strcmp(a, "qwen3") == 0 || pr->head_dim * pr->n_heads != pr->dim) {
        TRY(mkmodel_arch_kv(w, a, "attention.key_length", pr->head_dim));
        TRY(mkmodel_arch_kv(w, a, "attention.value_length", pr->head_dim));
    }
    if (strcmp(a, "llama") == 0) TRY(mkmodel_arch_kv(w, a, "rope.dimension_count", pr->head_dim));
    TRY(mkmodel_arch_kv(w, a, "vocab_size", n_vocab));
    snprintf(k, sizeof k, "%s.rope.freq_base", a);
    TRY(gguf_writer_set_f32(w, k, pr->rope_base));
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", a);
    TRY(gguf_writer_set_f32(w, k, pr->rms_eps));
    return CODER_OK;
}

/* Copies the vocab file's tokenizer.* keys; when the model has more embedding rows than tokens,
 * tokens/token_type/scores are rewritten with "[PAD<id>]" UNUSED (type 5, score 0) entries
 * appended, as llama.cpp's converter does for Qwen's padded embeddings. */
static coder_status mkmodel_tokenizer(gguf_writer *w, const gguf_file *v, uint64_t n_tok, uint32_t n_vocab) {
    if (n_tok >= n_vocab) return gguf_writer_copy_kvs(w, v, "tokenizer.");
    static const char *const rewritten[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores"};
    for (size_t i = 0; i < gguf_kv_count(v); i++) {
        const char *key = gguf_kv_key(v, i);
        if (strncmp(key, "tokenizer.", 10) != 0) continue;
        bool skip = false;
        for (size_t r = 0; r < 3; r++) skip |= strcmp(key, rewritten[r]) == 0;
        /* copy_kvs copies by prefix: skip keys an earlier copied key already covered */
        for (size_t j = 0; j < i && !skip; j++) {
            const char *pk = gguf_kv_key(v, j);
            bool pk_rewritten = false;
            for (size_t r = 0; r < 3; r++) pk_rewritten |= strcmp(pk, rewritten[r]) == 0;
            skip = !pk_rewritten && strncmp(pk, "tokenizer.", 10) == 0 && strncmp(key, pk, strlen(pk)) == 0;
        }
        if (!skip) TRY(gguf_writer_copy_kvs(w, v, key));
    }
    const gguf_str *items;
    uint64_t count;
    TRY(gguf_get_str_array(v, "tokenizer.ggml.tokens", &items, &count, true));
    gguf_str *tok = coder_calloc(n_vocab, sizeof *tok);
    char *pads = coder_malloc((size_t)(n_vocab - count) * 24);
    void *arr = coder_malloc((size_t)n_vocab * 4);
    coder_status st = (tok && pads && arr) ? CODER_OK
                      : coder_fail(CODER_ERR_NOMEM, "mkmodel: no memory to pad the vocabulary to %u tokens", n_vocab);
    for (uint64_t i = 0; st == CODER_OK && i < n_vocab; i++) {
        if (i < count) { tok[i] = items[i]; continue; }
        char *s = pads + (i - count) * 24;
        tok[i].ptr = s;
        tok[i].len = (uint64_t)snprintf(s, 24, "[PAD%llu]", (unsigned long long)i);
    }
    if (st == CODER_OK) st = gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", tok, n_vocab);
    for (int r = 1; r < 3 && st == CODER_OK; r++) {
        uint32_t et;
        const void *data = NULL;
        uint64_t n = 0;
        st = gguf_get_array(v, rewritten[r], &et, &data, &n, false);
        if (st != CODER_OK || !data) break;
        uint32_t want = r == 1 ? GGUF_TYPE_INT32 : GGUF_TYPE_FLOAT32;
        if (et != want || n != count) {
            st = coder_fail(CODER_ERR_UNSUPPORTED, "mkmodel: vocab key %s has type %s and %llu entries, expected %s x %llu",
                            rewritten[r], gguf_type_name(et), (unsigned long long)n, gguf_type_name(want), (unsigned long long)count);
            break;
        }
        memcpy(arr, data, (size_t)n * 4);
        for (uint64_t i = n; i < n_vocab; i++) {
            if (r == 1) { int32_t u = 5; memcpy((char *)arr + 4 * i, &u, 4); }
            else { float z = 0; memcpy((char *)arr + 4 * i, &z, 4); }
        }
        st = gguf_writer_set_array(w, rewritten[r], want, arr, n_vocab);
    }
    coder_mfree(tok);
    coder_mfree(pads);
    coder_mfree(arr);
    return st;
}

/* ---- driver -------------------------------------------------------------------------------- */

coder_status mkmodel_write(const mkmodel_opts *o, mkmodel_stats *stats) {
    if (!o || !o->out_path) return coder_fail(CODER_ERR_INVALID_ARG, "mkmodel: no output path");
    const mkmodel_preset *pr = mkmodel_find_preset(o->preset);
    if (!pr) return coder_fail(CODER_ERR_INVALID_ARG, "mkmodel: unknown preset '%s'", o->preset ? o->preset : "(null)");
    if ((unsigned)o->ftype > MKMODEL_Q4_K_M) return coder_fail(CODER_ERR_INVALID_ARG, "mkmodel: bad file type %d", (int)o->ftype);
    double t0 = coder_time_now();
    gguf_file *vocab = NULL;
    gguf_writer *w = NULL;
    mkmodel_plan plan = {0};
    bool begun = false;
    int fd = -1;
    coder_status st = CODER_OK;
    uint64_t n_tok = 0;
    if (o->vocab_path) {
        gguf_open_opts vo = {.use_mmap = true};
        st = gguf_open(o->vocab_path, &vo, &vocab);
        const gguf_str *items;
        if (st == CODER_OK) st = gguf_get_str_array(vocab, "tokenizer.ggml.tokens", &items, &n_tok, true);
        if (st != CODER_OK) coder_fail_context("mkmodel: vocab '%s'", o->vocab_path);
    }
    /* embedding rows: the preset's real size, or more if the vocab file has more tokens */
    uint64_t rows = pr->vocab_size ? pr->vocab_size : (n_tok ? n_tok : 32000);
    if (n_tok > rows) rows = n_tok;
    if (st == CODER_OK && rows > UINT32_MAX) st = coder_fail(CODER_ERR_LIMIT, "mkmodel: vocab of %llu tokens", (unsigned long long)rows);
    uint32_t n_vocab = (uint32_t)rows;
    if (st == CODER_OK) st = gguf_writer_new(0, &w);
    if (st == CODER_OK) st = mkmodel_metadata(w, pr, o->ftype, n_vocab);
    if (st == CODER_OK && vocab) st = mkmodel_tokenizer(w, vocab, n_tok, n_vocab);
    if (st == CODER_OK) st = mkmodel_build_plan(pr, o->ftype, n_vocab, &plan);
    for (size_t i = 0; st == CODER_OK && i < plan.n; i++) {
        mkmodel_tensor *t = &plan.t[i];
        st = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, NULL, &t->index);
    }
    if (st == CODER_OK) st = gguf_writer_begin(w, o->out_path, &fd);
    if (st == CODER_OK) {
        begun = true;
        for (size_t i = 0; i < plan.n; i++) {
            plan.t[i].file_offset = gguf_writer_tensor_file_offset(w, plan.t[i].index);
            plan.t[i].nbytes = gguf_writer_tensor_nbytes(w, plan.t[i].index);
        }
        int nth = o->n_threads > 0 ? o->n_threads : coder_cpu_count();
        st = mkmodel_gen_run(&plan, fd, o->out_path, o->seed, o->mode, nth);
    }
    if (begun) {
        coder_status st2 = gguf_writer_end(w);
        if (st == CODER_OK) st = st2;
        if (st != CODER_OK) unlink(o->out_path);
    }
    if (st == CODER_OK && stats) {
        memset(stats, 0, sizeof *stats);
        stats->n_tensors = plan.n;
        stats->vocab_size = n_vocab;
        stats->n_pad_tokens = vocab && n_tok < n_vocab ? (uint32_t)(n_vocab - n_tok) : 0;
        stats->file_bytes = plan.n ? plan.t[plan.n - 1].file_offset + plan.t[plan.n - 1].nbytes : 0;
        for (size_t i = 0; i < plan.n; i++)
            if (plan.t[i].type < 64) stats->type_count[plan.t[i].type]++;
        stats->seconds = coder_time_now() - t0;
    }
    coder_mfree(plan.t);
    gguf_writer_free(w);
    gguf_close(vocab);
    return st;
}
