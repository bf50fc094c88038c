/* forward.c - one layer loop for every supported architecture, over the backend op table.
 * Differences between architectures are data, not code paths: QKV biases (qwen2) and Q/K norms
 * (qwen3) are applied when the tensors exist; RoPE style and scaling come from the hparams.
 *
 *   x = embed(tokens)                                                  [n][dim]
 *   per layer:  h = rmsnorm(x) * attn_norm
 *               q = Wq h (+bq) [qnorm per head]  rope      k likewise, v = Wv h (+bv)
 *               cache <- k, v;  att = attention(q, cache)   x += Wo att
 *               h = rmsnorm(x) * ffn_norm;  x += Wdown (silu(Wgate h) * Wup h)
 *   logits = Wout (rmsnorm(x_last) * output_norm)                      [vocab]
 */
#include <stdio.h>

#include "forward.h"

struct forward_state {
    backend *b;
    const coder_model *m;
    int32_t n_batch;
    backend_buf *x, *h, *q, *k, *v, *att, *gate, *up, *logits;
    int32_t logits_rows;      /* rows the logits buffer holds (1, more in the logits_all path) */
    forward_debug_fn dbg;
    void *dbg_ud;
    float *dbg_host;
    size_t dbg_cap;
};

static coder_status debug_emit(forward_state *f, const char *name, int layer, const char *op, const backend_buf *buf,
                               int64_t rows, int64_t cols) {
    size_t n = (size_t)rows * (size_t)cols;
    if (n > f->dbg_cap) {
        float *p = coder_realloc(f->dbg_host, n * sizeof(float));
        if (!p) return coder_fail(CODER_ERR_NOMEM, "forward debug buffer of %zu floats", n);
        f->dbg_host = p;
        f->dbg_cap = n;
    }
    TRY(f->b->ops->buf_read(f->b, buf, 0, n, f->dbg_host));
    char full[64];
    if (layer >= 0) snprintf(full, sizeof full, "%s-%d", name, layer);
    else snprintf(full, sizeof full, "%s", name);
    f->dbg(f->dbg_ud, full, op, f->dbg_host, rows, cols);
    return CODER_OK;
}

/* Reports buf to the debug hook, if one is installed. */
#define DBG(name, layer, op, buf, rows, cols)                                                      \
    do {                                                                                           \
        if (f->dbg) TRY(debug_emit(f, name, layer, op, buf, rows, cols));                          \
    } while (0)

void forward_free(forward_state *f) {
    if (!f) return;
    backend *b = f->b;
    backend_buf *bufs[] = {f->x, f->h, f->q, f->k, f->v, f->att, f->gate, f->up, f->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) b->ops->buf_free(b, bufs[i]);
    coder_mfree(f->dbg_host);
    coder_mfree(f);
}

static coder_status alloc_rows(forward_state *f, int64_t rows, int64_t width, backend_buf **out) {
    uint64_t n;
    if (ck_mul((uint64_t)rows, (uint64_t)width, &n) || n > SIZE_MAX / sizeof(float))
        return coder_fail(CODER_ERR_LIMIT, "activation buffer %lld x %lld overflows", (long long)rows, (long long)width);
    return f->b->ops->buf_alloc(f->b, (size_t)n, out);
}

coder_status forward_new(backend *b, int32_t n_batch, forward_state **out) {
    *out = NULL;
    const model_hparams *hp = &b->model->hp;
    forward_state *f = coder_calloc(1, sizeof *f);
    if (!f) return coder_fail(CODER_ERR_NOMEM, "forward state");
    f->b = b;
    f->m = b->model;
    f->n_batch = n_batch;
    f->logits_rows = 1;
    const int64_t qw = (int64_t)hp->n_heads * hp->head_dim, kw = (int64_t)hp->n_kv_heads * hp->head_dim;
    /* h also holds the attention input of width dim and, in qwen3, is the scratch for per-head norms. */
    const int64_t hw = hp->dim > qw ? hp->dim : qw;
    coder_status st;
    if ((st = alloc_rows(f, n_batch, hp->dim, &f->x)) != CODER_OK || (st = alloc_rows(f, n_batch, hw, &f->h)) != CODER_OK ||
        (st = alloc_rows(f, n_batch, qw, &f->q)) != CODER_OK || (st = alloc_rows(f, n_batch, kw, &f->k)) != CODER_OK ||
        (st = alloc_rows(f, n_batch, kw, &f->v)) != CODER_OK || (st = alloc_rows(f, n_batch, qw, &f->att)) != CODER_OK ||
        (st = alloc_rows(f, n_batch, hp->ffn_dim, &f->gate)) != CODER_OK ||
        (st = alloc_rows(f, n_batch, hp->ffn_dim, &f->up)) != CODER_OK ||
        (st = alloc_rows(f, 1, hp->vocab_size, &f->logits)) != CODER_OK) {
        forward_free(f);
        return st;
    }
    *out = f;
    return CODER_OK;
}

coder_status forward_set_debug(forward_state *f, forward_debug_fn fn, void *user_data) {
    f->dbg = fn;
    f->dbg_ud = user_data;
    return CODER_OK;
}

/* W[i] @ x -> y[i] for the matrices that share an input (Q/K/V, gate/up): one dispatch where the
 * backend has matmul_many (decode on the CPU: one pool wake-up and join instead of 3 or 2). */
static coder_status fwd_matmuls(backend *b, const weight *const *ws, int count, const backend_buf *x, int n, backend_buf *const *ys) {
    if (b->ops->matmul_many) return b->ops->matmul_many(b, ws, count, x, n, ys);
    for (int i = 0; i < count; i++) TRY(b->ops->matmul(b, ws[i], x, n, ys[i]));
    return CODER_OK;
}

static coder_status forward_layer(forward_state *f, int il, int n, int32_t pos0) {
    backend *b = f->b;
    const backend_ops *o = b->ops;
    const model_hparams *hp = &f->m->hp;
    const layer_weights *L = &f->m->layers[il];
    const int dim = hp->dim, hd = hp->head_dim, nh = hp->n_heads, nkv = hp->n_kv_heads;
    const int qw = nh * hd, kw = nkv * hd;

    /* attention block */
    TRY(o->rms_norm(b, f->x, &L->attn_norm, n, dim, hp->rms_eps, f->h));
    DBG("attn_norm", il, "MUL", f->h, n, dim);
    {
        const weight *ws[3] = {&L->wq, &L->wk, &L->wv};
        backend_buf *ys[3] = {f->q, f->k, f->v};
        TRY(fwd_matmuls(b, ws, 3, f->h, n, ys));
    }
    DBG("Qcur", il, "MUL_MAT", f->q, n, qw);
    DBG("Kcur", il, "MUL_MAT", f->k, n, kw);
    DBG("Vcur", il, "MUL_MAT", f->v, n, kw);
    if (L->bq.data) {
        TRY(o->add_bias(b, f->q, &L->bq, n));
        DBG("Qcur", il, "ADD", f->q, n, qw);
    }
    if (L->bk.data) {
        TRY(o->add_bias(b, f->k, &L->bk, n));
        DBG("Kcur", il, "ADD", f->k, n, kw);
    }
    if (L->bv.data) {
        TRY(o->add_bias(b, f->v, &L->bv, n));
        DBG("Vcur", il, "ADD", f->v, n, kw);
    }
    if (L->q_norm.data) {   /* qwen3: RMS-normalise each head before RoPE */
        TRY(o->rms_norm(b, f->q, &L->q_norm, n * nh, hd, hp->rms_eps, f->q));
        DBG("Qcur_normed", il, "MUL", f->q, n, qw);
    }
    if (L->k_norm.data) {
        TRY(o->rms_norm(b, f->k, &L->k_norm, n * nkv, hd, hp->rms_eps, f->k));
        DBG("Kcur_normed", il, "MUL", f->k, n, kw);
    }
    TRY(o->rope(b, f->q, n, nh, pos0, il));
    DBG("Qcur", il, "ROPE", f->q, n, qw);
    TRY(o->rope(b, f->k, n, nkv, pos0, il));
    DBG("Kcur", il, "ROPE", f->k, n, kw);
    TRY(o->kv_write(b, il, f->k, f->v, n, pos0));
    TRY(o->attention(b, il, f->q, n, pos0, f->att));
    DBG("kqv_out", il, "CONT", f->att, n, qw);
    TRY(o->matmul(b, &L->wo, f->att, n, f->h));
    DBG("attn_out", il, "MUL_MAT", f->h, n, dim);
    if (L->post_attn_norm.data) {   /* gemma3 */
        TRY(o->rms_norm(b, f->h, &L->post_attn_norm, n, dim, hp->rms_eps, f->h));
        DBG("attn_post_norm", il, "MUL", f->h, n, dim);
    }
    TRY(o->add(b, f->x, f->h, n, dim));
    DBG("ffn_inp", il, "ADD", f->x, n, dim);

    /* feed-forward block */
    TRY(o->rms_norm(b, f->x, &L->ffn_norm, n, dim, hp->rms_eps, f->h));
    DBG("ffn_norm", il, "MUL", f->h, n, dim);
    {
        const weight *ws[2] = {&L->w_gate, &L->w_up};
        backend_buf *ys[2] = {f->gate, f->up};
        TRY(fwd_matmuls(b, ws, 2, f->h, n, ys));
    }
    DBG("ffn_gate", il, "MUL_MAT", f->gate, n, hp->ffn_dim);
    DBG("ffn_up", il, "MUL_MAT", f->up, n, hp->ffn_dim);
    if (hp->act_gelu) {
        TRY(o->geglu(b, f->gate, f->up, n, hp->ffn_dim));
        DBG("ffn_geglu", il, "GEGLU", f->gate, n, hp->ffn_dim);
    } else {
        TRY(o->swiglu(b, f->gate, f->up, n, hp->ffn_dim));
        DBG("ffn_swiglu", il, "SWIGLU", f->gate, n, hp->ffn_dim);
    }
    TRY(o->matmul(b, &L->w_down, f->gate, n, f->h));
    DBG("ffn_out", il, "MUL_MAT", f->h, n, dim);
    if (L->post_ffw_norm.data) {   /* gemma3 */
        TRY(o->rms_norm(b, f->h, &L->post_ffw_norm, n, dim, hp->rms_eps, f->h));
        DBG("ffn_post_norm", il, "MUL", f->h, n, dim);
    }
    TRY(o->add(b, f->x, f->h, n, dim));
    DBG("l_out", il, "ADD", f->x, n, dim);
    return CODER_OK;
}

coder_status forward_eval(forward_state *f, const int32_t *tokens, int n, int32_t pos0, const atomic_bool *cancel,
                          float *logits, float *logits_all) {
    backend *b = f->b;
    const backend_ops *o = b->ops;
    const model_hparams *hp = &f->m->hp;
    if (n < 1 || n > f->n_batch)
        return coder_fail(CODER_ERR_INTERNAL, "forward_eval: %d tokens for a batch of %d", n, (int)f->n_batch);

    TRY(o->embed(b, &f->m->tok_embd, tokens, n, f->x));
    DBG("embd", -1, "GET_ROWS", f->x, n, hp->dim);
    if (hp->embed_scale != 1.0f) TRY(o->scale(b, f->x, n, hp->dim, hp->embed_scale));   /* gemma3 */
    for (int il = 0; il < hp->n_layers; il++) {
        if (cancel && atomic_load_explicit(cancel, memory_order_relaxed))
            return coder_fail(CODER_ERR_CANCELLED, "evaluation cancelled before layer %d", il);
        TRY(forward_layer(f, il, n, pos0));
    }

    /* Output head: the last row only, or every row for logits_all. */
    int n_out = logits_all ? n : 1;
    if (n_out > f->logits_rows) {
        backend_buf *nb;
        TRY(alloc_rows(f, n_out, hp->vocab_size, &nb));
        o->buf_free(b, f->logits);
        f->logits = nb;
        f->logits_rows = n_out;
    }
    TRY(o->copy_rows(b, f->x, n - n_out, f->h, 0, n_out, hp->dim));
    TRY(o->rms_norm(b, f->h, &f->m->output_norm, n_out, hp->dim, hp->rms_eps, f->h));
    DBG("result_norm", -1, "MUL", f->h, n_out, hp->dim);
    TRY(o->matmul(b, &f->m->output, f->h, n_out, f->logits));
    DBG("result_output", -1, "MUL_MAT", f->logits, n_out, hp->vocab_size);
    if (logits_all) TRY(o->buf_read(b, f->logits, 0, (size_t)n_out * (size_t)hp->vocab_size, logits_all));
    if (logits)
        TRY(o->buf_read(b, f->logits, (size_t)(n_out - 1) * (size_t)hp->vocab_size, (size_t)hp->vocab_size, logits));
    return CODER_OK;
}
