/* model.c - binds the weight tensors of a GGUF file by name (FORMATS.md section 3.2), checking
 * presence, type and shape against the hyperparameters, and the optional NaN/Inf weight scan.
 *
 * Shapes are written in GGUF order, ne = [cols, rows]: a matrix W with `rows` outputs of `cols`
 * inputs computes y (rows,) = W (rows, cols) @ x (cols,). Messages print ne the same way
 * ("expected [256, 64], got [256, 128]"), as gguf tools show them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "quant.h"

/* Matrix types the compute paths implement (FORMATS.md 2.9, "minimum practical set"). */
static bool model_matrix_type_ok(uint32_t type) {
    switch (type) {
    case QT_F32: case QT_F16: case QT_BF16: case QT_Q8_0: case QT_Q4_0: case QT_Q4_1:
    case QT_Q5_0: case QT_Q5_1: case QT_Q4_K: case QT_Q5_K: case QT_Q6_K:
        return true;
    default:
        return false;
    }
}

static void model_shape_text(const gguf_tensor *t, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (uint32_t d = 0; d < t->n_dims && o < cap; d++) {
        int n = snprintf(buf + o, cap - o, "%s%llu", d ? ", " : "", (unsigned long long)t->ne[d]);
        if (n < 0) break;
        o += (size_t)n;
    }
}

/* Binds one tensor. rows == 0 means a 1-D tensor of `cols` elements (norm weight, bias, rope
 * factors), which must be F32; otherwise a [cols, rows] matrix of a type we can compute. */
static coder_status model_bind(const gguf_file *f, const char *name, bool required, int64_t cols,
                               int64_t rows, weight *w) {
    memset(w, 0, sizeof *w);
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        if (required) return coder_fail(CODER_ERR_FORMAT, "missing tensor %s", name);
        return CODER_OK;
    }
    bool vector = rows == 0;
    /* Trailing dimensions of 1 are tolerated (some writers store a vector as [n, 1]). */
    bool shape_ok = t->ne[0] == (uint64_t)cols && t->ne[1] == (uint64_t)(vector ? 1 : rows) &&
                    t->ne[2] == 1 && t->ne[3] == 1;
    if (!shape_ok) {
        char got[96];
        model_shape_text(t, got, sizeof got);
        if (vector)
            return coder_fail(CODER_ERR_FORMAT, "tensor %s: wrong shape; expected [%lld], got [%s]",
                              name, (long long)cols, got);
        return coder_fail(CODER_ERR_FORMAT, "tensor %s: wrong shape; expected [%lld, %lld], got [%s]",
                          name, (long long)cols, (long long)rows, got);
    }
    if (vector && t->type != QT_F32)
        return coder_fail(CODER_ERR_UNSUPPORTED, "tensor %s has type %s; norm weights, biases and "
                          "rope factors must be F32", name, quant_type_name(t->type));
    if (!vector && !model_matrix_type_ok(t->type))
        return coder_fail(CODER_ERR_UNSUPPORTED, "tensor %s has type %s (id %u), which this library "
                          "cannot compute (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, "
                          "Q4_K, Q5_K, Q6_K)", name, quant_type_name(t->type), t->type);
    uint64_t row_bytes = 0;
    if (!quant_row_bytes(t->type, (uint64_t)cols, &row_bytes))
        return coder_fail(CODER_ERR_FORMAT, "tensor %s: %lld columns are not a whole number of %s "
                          "blocks", name, (long long)cols, quant_type_name(t->type));
    w->t = t;
    w->type = t->type;
    w->cols = cols;
    w->rows = vector ? 1 : rows;
    w->row_bytes = row_bytes;
    w->data = t->data;
    return CODER_OK;
}

/* Per-layer tensors: suffix, and which arch feature requires it. */
typedef enum { NEED_ALL, NEED_QKV_BIAS, NEED_QK_NORM, NEED_POST_NORMS } layer_need;
typedef enum { SHAPE_DIM, SHAPE_Q, SHAPE_KV, SHAPE_HEAD, SHAPE_Q_IN_DIM_OUT, SHAPE_DIM_FFN,
               SHAPE_FFN_DIM, SHAPE_QOUT, SHAPE_KVOUT } layer_shape;

typedef struct layer_spec {
    const char *suffix;
    size_t offset;           /* of the weight in layer_weights */
    layer_need need;
    layer_shape shape;
} layer_spec;

#define LW(field) offsetof(layer_weights, field)
static const layer_spec layer_specs[] = {
    {"attn_norm.weight", LW(attn_norm), NEED_ALL, SHAPE_DIM},
    {"attn_q.weight", LW(wq), NEED_ALL, SHAPE_Q},
    {"attn_k.weight", LW(wk), NEED_ALL, SHAPE_KV},
    {"attn_v.weight", LW(wv), NEED_ALL, SHAPE_KV},
    {"attn_q.bias", LW(bq), NEED_QKV_BIAS, SHAPE_QOUT},
    {"attn_k.bias", LW(bk), NEED_QKV_BIAS, SHAPE_KVOUT},
    {"attn_v.bias", LW(bv), NEED_QKV_BIAS, SHAPE_KVOUT},
    {"attn_q_norm.weight", LW(q_norm), NEED_QK_NORM, SHAPE_HEAD},
    {"attn_k_norm.weight", LW(k_norm), NEED_QK_NORM, SHAPE_HEAD},
    {"attn_output.weight", LW(wo), NEED_ALL, SHAPE_Q_IN_DIM_OUT},
    {"ffn_norm.weight", LW(ffn_norm), NEED_ALL, SHAPE_DIM},
    {"ffn_gate.weight", LW(w_gate), NEED_ALL, SHAPE_DIM_FFN},
    {"ffn_up.weight", LW(w_up), NEED_ALL, SHAPE_DIM_FFN},
    {"ffn_down.weight", LW(w_down), NEED_ALL, SHAPE_FFN_DIM},
    {"post_attention_norm.weight", LW(post_attn_norm), NEED_POST_NORMS, SHAPE_DIM},
    {"post_ffw_norm.weight", LW(post_ffw_norm), NEED_POST_NORMS, SHAPE_DIM},
};
#define N_LAYER_SPECS (sizeof layer_specs / sizeof layer_specs[0])

static bool model_spec_needed(const model_hparams *hp, const layer_spec *s) {
    return s->need == NEED_ALL || (s->need == NEED_QKV_BIAS && hp->has_qkv_bias) ||
           (s->need == NEED_QK_NORM && hp->has_qk_norm) || (s->need == NEED_POST_NORMS && hp->has_post_norms);
}

/* (cols, rows) of a layer tensor; rows 0 = vector. */
static void model_spec_shape(const model_hparams *hp, layer_shape s, int64_t *cols, int64_t *rows) {
    int64_t q = (int64_t)hp->n_heads * hp->head_dim, kv = (int64_t)hp->n_kv_heads * hp->head_dim;
    switch (s) {
    case SHAPE_DIM: *cols = hp->dim; *rows = 0; break;
    case SHAPE_Q: *cols = hp->dim; *rows = q; break;
    case SHAPE_KV: *cols = hp->dim; *rows = kv; break;
    case SHAPE_HEAD: *cols = hp->head_dim; *rows = 0; break;
    case SHAPE_Q_IN_DIM_OUT: *cols = q; *rows = hp->dim; break;
    case SHAPE_DIM_FFN: *cols = hp->dim; *rows = hp->ffn_dim; break;
    case SHAPE_FFN_DIM: *cols = hp->ffn_dim; *rows = hp->dim; break;
    case SHAPE_QOUT: *cols = q; *rows = 0; break;
    case SHAPE_KVOUT: *cols = kv; *rows = 0; break;
    }
}

/* True when `name` is a tensor this architecture uses (so not an "unknown extra"). */
static bool model_name_known(const model_hparams *hp, const char *name) {
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "output_norm.weight") ||
        !strcmp(name, "output.weight"))
        return true;
    if (hp->arch == ARCH_LLAMA && !strcmp(name, "rope_freqs.weight")) return true;
    if (strncmp(name, "blk.", 4) != 0) return false;
    char *end = NULL;
    long layer = strtol(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || layer < 0 || layer >= hp->n_layers) return false;
    for (size_t i = 0; i < N_LAYER_SPECS; i++)
        if (model_spec_needed(hp, &layer_specs[i]) && !strcmp(end + 1, layer_specs[i].suffix))
            return true;
    return false;
}

static void model_count(coder_model *m, const weight *w) {
    if (!w->t) return;
    m->n_params += w->t->n_elements;
    m->weight_bytes += w->t->nbytes;
}

coder_status model_bind_weights(coder_model *m) {
    if (!m || !m->file || !m->layers)
        return coder_fail(CODER_ERR_INTERNAL, "model_bind_weights: model not prepared");
    const gguf_file *f = m->file;
    model_hparams *hp = &m->hp;

    /* C8: a GGUF with hparams but no base weights (a LoRA adapter names its tensors
     * blk.N.attn_q.weight.lora_a; a vocab-only file has none) is not a model we can run. */
    if (!gguf_find_tensor(f, "token_embd.weight") && !gguf_find_tensor(f, "blk.0.attn_norm.weight") &&
        !gguf_find_tensor(f, "blk.0.attn_q.weight"))
        return coder_fail(CODER_ERR_UNSUPPORTED, "file has no token_embd.weight and no blk.0.* "
                          "tensors (%zu tensors): not a base model (LoRA adapter, projector or "
                          "vocabulary-only file? use vocab_only for the latter)", gguf_tensor_count(f));

    m->n_params = m->weight_bytes = 0;
    TRY(model_bind(f, "token_embd.weight", true, hp->dim, hp->vocab_size, &m->tok_embd));
    TRY(model_bind(f, "output_norm.weight", true, hp->dim, 0, &m->output_norm));
    TRY(model_bind(f, "output.weight", false, hp->dim, hp->vocab_size, &m->output));
    hp->tied_output = m->output.t == NULL;
    model_count(m, &m->tok_embd);
    model_count(m, &m->output_norm);
    model_count(m, &m->output);
    if (hp->tied_output) m->output = m->tok_embd;
    if (hp->arch == ARCH_LLAMA) {
        TRY(model_bind(f, "rope_freqs.weight", false, hp->n_rot / 2, 0, &m->rope_freqs));
        model_count(m, &m->rope_freqs);
    }

    for (int32_t l = 0; l < hp->n_layers; l++) {
        for (size_t i = 0; i < N_LAYER_SPECS; i++) {
            const layer_spec *s = &layer_specs[i];
            weight *w = (weight *)((char *)&m->layers[l] + s->offset);
            memset(w, 0, sizeof *w);
            if (!model_spec_needed(hp, s)) continue;
            char name[GGUF_MAX_NAME + 16];
            snprintf(name, sizeof name, "blk.%d.%s", (int)l, s->suffix);
            int64_t cols = 0, rows = 0;
            model_spec_shape(hp, s->shape, &cols, &rows);
            TRY(model_bind(f, name, true, cols, rows, w));
            model_count(m, w);
        }
    }

    /* D11: tensors we do not use are reported and otherwise ignored. */
    size_t n_unknown = 0;
    for (size_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (model_name_known(hp, t->name)) continue;
        if (++n_unknown <= 8) LOG_WARN("ignoring unknown tensor %s", t->name);
    }
    if (n_unknown > 8) LOG_WARN("ignoring %zu unknown tensors in all", n_unknown);
    return CODER_OK;
}

coder_status model_progress(const coder_model *m, float frac) {
    if (!m->params.progress) return CODER_OK;
    if (m->params.progress(frac, m->params.progress_user_data) != 0)
        return coder_fail(CODER_ERR_CANCELLED, "model load cancelled by the progress callback at %.0f%%",
                          (double)frac * 100.0);
    return CODER_OK;
}

/* C5: every element finite. Rows are dequantized with the scalar reference dequantizer. */
static coder_status model_scan(const weight *w, float *buf) {
    if (!w->t) return CODER_OK;
    const unsigned char *p = w->data;
    for (int64_t r = 0; r < w->rows; r++, p += w->row_bytes) {
        coder_status st = dequantize_row(w->type, p, buf, w->cols);
        if (st != CODER_OK) {
            coder_fail_context("tensor %s row %lld", w->t->name, (long long)r);
            return st;
        }
        for (int64_t c = 0; c < w->cols; c++) {
            if (!isfinite(buf[c]))
                return coder_fail(CODER_ERR_FORMAT, "tensor %s has a %s value at row %lld, column "
                                  "%lld (byte offset %llu in the data section)", w->t->name,
                                  isnan(buf[c]) ? "NaN" : "infinite", (long long)r, (long long)c,
                                  (unsigned long long)(w->t->offset + (uint64_t)r * w->row_bytes));
        }
    }
    return CODER_OK;
}

coder_status model_validate_weights(const coder_model *m, float lo, float hi) {
    const model_hparams *hp = &m->hp;
    /* The widest row: every matrix has dim or ffn_dim or n_heads*head_dim columns. */
    int64_t max_cols = hp->dim;
    if (hp->ffn_dim > max_cols) max_cols = hp->ffn_dim;
    if ((int64_t)hp->n_heads * hp->head_dim > max_cols) max_cols = (int64_t)hp->n_heads * hp->head_dim;
    float *buf = coder_malloc((size_t)max_cols * sizeof(float));
    if (!buf) return coder_fail(CODER_ERR_NOMEM, "weight validation buffer of %lld floats", (long long)max_cols);

    size_t total = 4 + (size_t)hp->n_layers * N_LAYER_SPECS, done = 0;
    coder_status st = CODER_OK;
    const weight *top[4] = {&m->tok_embd, &m->output_norm, hp->tied_output ? NULL : &m->output,
                            &m->rope_freqs};
    for (size_t i = 0; i < 4 && st == CODER_OK; i++, done++)
        if (top[i]) st = model_scan(top[i], buf);
    for (int32_t l = 0; l < hp->n_layers && st == CODER_OK; l++) {
        st = model_progress(m, lo + (hi - lo) * (float)done / (float)total);
        for (size_t i = 0; i < N_LAYER_SPECS && st == CODER_OK; i++, done++)
            st = model_scan((const weight *)((const char *)&m->layers[l] + layer_specs[i].offset), buf);
    }
    coder_mfree(buf);
    return st;
}
