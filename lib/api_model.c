/* api_model.c - public model entry points: parameter checks, the load sequence (open, tokenizer,
 * hyperparameters, weights, optional validation) with progress and cancellation, info and
 * metadata queries, and free. Every error path leaves *out NULL and frees what it took. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "device.h"
#include "model.h"
#include "prompt.h"

CODER_EXPORT void coder_model_params_init(coder_model_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    p->use_mmap = 0;   /* safe by default: see coderinfer.h and docs/GGUF.md */
    p->n_gpu_layers = -1;
    p->n_threads = 0;
    p->validate_weights = 0;
    p->vocab_only = 0;
}

/* Copies the caller's params over the defaults, the first p->size bytes: a caller built
 * against an older (shorter) struct gets defaults for the fields it does not know. */
static coder_status api_model_params(const coder_model_params *p, coder_model_params *out) {
    coder_model_params_init(out);
    if (!p) return CODER_OK;
    TRY(coder_params_copy(out, sizeof *out, p, offsetof(coder_model_params, use_mmap), "model params"));
    if (out->use_mmap != 0 && out->use_mmap != 1)
        return coder_fail(CODER_ERR_INVALID_ARG, "params->use_mmap = %d (expected 0 or 1)", out->use_mmap);
    if (out->validate_weights != 0 && out->validate_weights != 1)
        return coder_fail(CODER_ERR_INVALID_ARG, "params->validate_weights = %d (expected 0 or 1)",
                          out->validate_weights);
    if (out->vocab_only != 0 && out->vocab_only != 1)
        return coder_fail(CODER_ERR_INVALID_ARG, "params->vocab_only = %d (expected 0 or 1)", out->vocab_only);
    if (out->n_gpu_layers < -1)
        return coder_fail(CODER_ERR_INVALID_ARG, "params->n_gpu_layers = %d (expected -1, 0 or a "
                          "layer count)", out->n_gpu_layers);
    if (out->n_threads < 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "params->n_threads = %d (expected >= 0)", out->n_threads);
    return CODER_OK;
}

/* C8: GGUF files that are not base models but say so in their metadata. */
static coder_status api_model_check_kind(const gguf_file *f) {
    if (gguf_find_key(f, "general.type") >= 0) {
        gguf_str s;
        TRY(gguf_get_str(f, "general.type", &s, true));
        if (!(s.len == 5 && memcmp(s.ptr, "model", 5) == 0)) {
            char esc[80];
            coder_escape(s.ptr, s.len < 64 ? (size_t)s.len : 64, esc, sizeof esc);
            return coder_fail(CODER_ERR_UNSUPPORTED, "general.type is '%s': not a base model "
                              "(adapters and projectors cannot be loaded as models)", esc);
        }
    }
    if (gguf_find_key(f, "adapter.type") >= 0)
        return coder_fail(CODER_ERR_UNSUPPORTED, "key adapter.type present: this is an adapter, "
                          "not a base model");
    return CODER_OK;
}

/* Vocabulary-only load: no hparams validation (the vocab files carry arbitrary architectures);
 * the architecture name and training context are recorded for coder_model_get_info. */
static void api_model_vocab_hparams(coder_model *m) {
    model_hparams *hp = &m->hp;
    gguf_str s;
    if (gguf_find_key(m->file, "general.architecture") >= 0 &&
        gguf_get_str(m->file, "general.architecture", &s, true) == CODER_OK) {
        coder_escape(s.ptr, s.len, hp->arch_name, sizeof hp->arch_name);
        char key[96];
        snprintf(key, sizeof key, "%s.context_length", hp->arch_name);
        int32_t ctx = 0;
        if (gguf_find_key(m->file, key) >= 0 && gguf_get_i32(m->file, key, &ctx, true) == CODER_OK &&
            ctx > 0)
            hp->n_ctx_train = ctx;
    }
    hp->vocab_size = tokenizer_n_vocab(m->tok);
}

static void api_model_destroy(coder_model *m) {
    if (!m) return;
    if (m->backend_free) m->backend_free(m);
    coder_mfree(m->layers);
    coder_mfree_aligned(m->repacked);
    tokenizer_free(m->tok);
    gguf_close(m->file);
    coder_mfree(m);
}

static coder_status api_model_load(const char *path, coder_model *m) {
    TRY(model_progress(m, 0.0f));
    gguf_open_opts oo = {0};
    oo.use_mmap = m->params.use_mmap != 0;
    TRY(gguf_open(path, &oo, &m->file));
    TRY(api_model_check_kind(m->file));
    TRY(model_progress(m, 0.1f));

    /* Without an architecture we know, only vocab_only can make sense of the file; checking it
     * before the (slow) tokenizer build gives the clearer message for LoRA/mmproj files too. */
    if (!m->params.vocab_only) TRY(model_read_hparams(m->file, &m->hp));

    TRY(tokenizer_load(m->file, &m->tok));
    TRY(model_progress(m, 0.3f));
    m->chat_format = prompt_detect_model(m->file, m->tok);
    if (m->params.vocab_only) {
        m->vocab_only = true;
        api_model_vocab_hparams(m);
        return model_progress(m, 1.0f);
    }

    /* D9: the vocabulary sizes must agree (token_embd/output rows are checked against it). */
    int32_t n_tok = tokenizer_n_vocab(m->tok);
    if (m->hp.vocab_size != 0 && m->hp.vocab_size != n_tok)
        return coder_fail(CODER_ERR_FORMAT, "key %s.vocab_size = %d but tokenizer.ggml.tokens has "
                          "%d entries", m->hp.arch_name, m->hp.vocab_size, n_tok);
    m->hp.vocab_size = n_tok;

    m->layers = coder_calloc((size_t)m->hp.n_layers, sizeof *m->layers);
    if (!m->layers) return coder_fail(CODER_ERR_NOMEM, "layer table of %d layers", m->hp.n_layers);
    TRY(model_bind_weights(m));
    TRY(model_progress(m, 0.4f));
    if (m->params.validate_weights) TRY(model_validate_weights(m, 0.4f, 0.95f));
    TRY(backend_model_place(m, 0.95f, 0.99f));   /* GPU upload when asked for and possible (cuda_glue.c) */
    model_repack(m);
    LOG_INFO("loaded %s: %s, %d layers, dim %d, %d/%d heads, vocab %d, %.1f MiB of weights",
             path, m->hp.arch_name, m->hp.n_layers, m->hp.dim, m->hp.n_heads, m->hp.n_kv_heads,
             m->hp.vocab_size, (double)m->weight_bytes / (1024.0 * 1024.0));
    return model_progress(m, 1.0f);
}

CODER_EXPORT coder_status coder_model_load(const char *path, const coder_model_params *params,
                                           coder_model **out) {
    if (out) *out = NULL;
    if (!out) return coder_fail(CODER_ERR_INVALID_ARG, "coder_model_load: out is NULL");
    if (!path) return coder_fail(CODER_ERR_INVALID_ARG, "coder_model_load: path is NULL");
    coder_model_params p;
    TRY(api_model_params(params, &p));
    (void)device_count(); /* logs once which device (or the CPU) runs the model */

    coder_model *m = coder_calloc(1, sizeof *m);
    if (!m) return coder_fail(CODER_ERR_NOMEM, "coder_model_load: model object");
    m->params = p;
    atomic_init(&m->n_sessions, 0);
    coder_status st = api_model_load(path, m);
    if (st != CODER_OK) {
        api_model_destroy(m);
        return st;
    }
    *out = m;
    return CODER_OK;
}

CODER_EXPORT coder_status coder_model_free(coder_model *model) {
    if (!model) return CODER_OK;
    int n = atomic_load(&model->n_sessions);
    if (n > 0) {
        LOG_ERROR("coder_model_free: the model still has %d live session(s); not freed", n);
        return coder_fail(CODER_ERR_BUSY, "coder_model_free: the model still has %d live "
                          "session(s); free them first", n);
    }
    api_model_destroy(model);
    return CODER_OK;
}

/* Copies at most cap-1 bytes of s[0..len) into dst, not cutting a UTF-8 character, NUL-terminated. */
static void api_copy_text(char *dst, size_t cap, const char *s, size_t len) {
    size_t n = len < cap - 1 ? len : cap - 1;
    if (n < len)
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    memcpy(dst, s, n); /* an embedded NUL simply ends the text early */
    dst[n] = 0;
}

CODER_EXPORT coder_status coder_model_get_info(const coder_model *model, coder_model_info *info) {
    if (!model) return coder_fail(CODER_ERR_INVALID_ARG, "coder_model_get_info: model is NULL");
    if (!info) return coder_fail(CODER_ERR_INVALID_ARG, "coder_model_get_info: info is NULL");
    size_t size = info->size;
    if (size < sizeof(size_t) || size > sizeof *info)
        return coder_fail(CODER_ERR_INVALID_ARG, "coder_model_get_info: info->size = %zu (expected "
                          "%zu)", size, sizeof *info);
    coder_model_info r;
    memset(&r, 0, sizeof r);
    r.size = size;
    const model_hparams *hp = &model->hp;
    api_copy_text(r.arch, sizeof r.arch, hp->arch_name, strlen(hp->arch_name));
    gguf_str s;
    if (gguf_find_key(model->file, "general.name") >= 0 &&
        gguf_get_str(model->file, "general.name", &s, true) == CODER_OK)
        api_copy_text(r.name, sizeof r.name, s.ptr, (size_t)s.len);
    r.n_layers = hp->n_layers;
    r.dim = hp->dim;
    r.ffn_dim = hp->ffn_dim;
    r.n_heads = hp->n_heads;
    r.n_kv_heads = hp->n_kv_heads;
    r.head_dim = hp->head_dim;
    r.vocab_size = hp->vocab_size;
    r.n_ctx_train = hp->n_ctx_train;
    r.n_params = model->n_params;
    r.weight_bytes = model->weight_bytes;
    const tokenizer_special *sp = tokenizer_specials(model->tok);
    r.bos_token = sp->bos;
    r.eos_token = sp->eos;
    r.add_bos = sp->add_bos ? 1 : 0;
    r.has_fim = sp->fim_pre >= 0 && sp->fim_suf >= 0 && sp->fim_mid >= 0;
    r.chat_format = model->chat_format;
    r.gpu_layers = model->gpu_layers;
    memcpy(info, &r, size);
    return CODER_OK;
}

/* Renders metadata value i as text into out (at most cap bytes, not terminated); returns the full
 * length. Strings are their bytes; numbers decimal; bools true/false; arrays "[n items]". */
static size_t api_meta_render(const gguf_file *f, const char *key, uint32_t type, char *tmp,
                              size_t tmp_cap, const char **text) {
    *text = tmp;
    int n = 0;
    switch (type) {
    case GGUF_TYPE_STRING: {
        gguf_str s = {0};
        if (gguf_get_str(f, key, &s, true) != CODER_OK) break;
        *text = s.ptr;
        return (size_t)s.len;
    }
    case GGUF_TYPE_BOOL: {
        bool b = false;
        if (gguf_get_bool(f, key, &b, true) == CODER_OK) n = snprintf(tmp, tmp_cap, "%s", b ? "true" : "false");
        break;
    }
    case GGUF_TYPE_FLOAT32: case GGUF_TYPE_FLOAT64: {
        float v = 0;
        if (gguf_get_f32(f, key, &v, true) == CODER_OK) n = snprintf(tmp, tmp_cap, "%.9g", (double)v);
        break;
    }
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: {
        int32_t v = 0;
        if (gguf_get_i32(f, key, &v, true) == CODER_OK) n = snprintf(tmp, tmp_cap, "%" PRId32, v);
        break;
    }
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64: {
        uint64_t v = 0;
        int32_t sv = 0;
        if (gguf_get_u64(f, key, &v, true) == CODER_OK) n = snprintf(tmp, tmp_cap, "%" PRIu64, v);
        else if (gguf_get_i32(f, key, &sv, true) == CODER_OK) n = snprintf(tmp, tmp_cap, "%" PRId32, sv);
        break;
    }
    case GGUF_TYPE_ARRAY: {
        const gguf_str *items = NULL;
        const void *data = NULL;
        uint64_t count = 0;
        uint32_t et = 0;
        if (gguf_get_str_array(f, key, &items, &count, true) == CODER_OK ||
            gguf_get_array(f, key, &et, &data, &count, true) == CODER_OK)
            n = snprintf(tmp, tmp_cap, "[%" PRIu64 " items]", count);
        break;
    }
    default:
        break;
    }
    if (n <= 0) n = snprintf(tmp, tmp_cap, "?");
    return (size_t)n < tmp_cap ? (size_t)n : tmp_cap - 1;
}

CODER_EXPORT coder_status coder_model_meta(const coder_model *model, const char *key, char *buf,
                                           size_t cap, size_t *needed) {
    if (!model) return coder_fail(CODER_ERR_INVALID_ARG, "coder_model_meta: model is NULL");
    if (!key) return coder_fail(CODER_ERR_INVALID_ARG, "coder_model_meta: key is NULL");
    if (!needed) return coder_fail(CODER_ERR_INVALID_ARG, "coder_model_meta: needed is NULL");
    if (!buf && cap > 0) return coder_fail(CODER_ERR_INVALID_ARG, "coder_model_meta: buf is NULL with cap %zu", cap);
    long i = gguf_find_key(model->file, key);
    if (i < 0) {
        char esc[160];
        coder_escape(key, strnlen(key, 128), esc, sizeof esc);
        *needed = 0;
        return coder_fail(CODER_ERR_INVALID_ARG, "coder_model_meta: no metadata key '%s'", esc);
    }
    char tmp[64];
    const char *text = NULL;
    size_t len = api_meta_render(model->file, key, gguf_kv_type(model->file, (size_t)i), tmp,
                                 sizeof tmp, &text);
    *needed = len + 1;
    if (cap == 0)
        return coder_fail(CODER_ERR_BUFFER_TOO_SMALL, "coder_model_meta: key %s needs %zu bytes, cap 0",
                          key, len + 1);
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(buf, text, n);
    buf[n] = 0;
    if (len + 1 > cap)
        return coder_fail(CODER_ERR_BUFFER_TOO_SMALL, "coder_model_meta: key %s needs %zu bytes, "
                          "cap %zu", key, len + 1, cap);
    return CODER_OK;
}
