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
 * A split model (partial offload) runs the layers of each stage on its backend and hands x over
 * between them; the first stage embeds, the last computes the logits.
 */
#include <stdio.h>

#include "forward.h"

/* The activations of one stage (backend.h: backend_stages), in its backend's memory. */
typedef struct fwd_stage {
    backend *b;
    int32_t first, end;       /* layers first .. end-1                                          */
    backend_buf *x, *h, *q, *k, *v, *att, *gate, *up;
} fwd_stage;

struct forward_state {
    const coder_model *m;
    int32_t n_batch;
    int n_stages;
    fwd_stage st[BACKEND_MAX_STAGES];
    backend_buf *logits;      /* on the last stage                                              */
    int32_t logits_rows;      /* rows the logits buffer holds (1, more in the logits_all path) */
    int32_t last_row;         /* the row of the last evaluated token's logits                  */
    int32_t n_rows;           /* rows the last evaluation wrote                                */
    uint64_t layout;          /* changes when a buffer does (recorded decode steps: step_begin) */
    float *handover;          /* [n_batch][dim] host copy of x between stages (split models)  */
    forward_debug_fn dbg;
    void *dbg_ud;
    float *dbg_host;
    size_t dbg_cap;
};

static backend *fwd_last(const forward_state *f) { return f->st[f->n_stages - 1].b; }

/* Names for buffer layouts, unique in the process: a backend's recorded step is replayed only for
 * the forward state and buffers it was recorded with (step_begin). */
static uint64_t next_layout(void) {
    static atomic_uint_fast64_t counter = 1;
    return (uint64_t)atomic_fetch_add(&counter, 1);
}

static coder_status debug_emit(forward_state *f, backend *b, const char *name, int layer, const char *op,
                               const backend_buf *buf, int64_t rows, int64_t cols) {
    size_t n = (size_t)rows * (size_t)cols;
    if (n > f->dbg_cap) {
        float *p = coder_realloc(f->dbg_host, n * sizeof(float));
        if (!p) return coder_fail(CODER_ERR_NOMEM, "forward debug buffer of %zu floats", n);
        f->dbg_host = p;
        f->dbg_cap = n;
    }
    TRY(b->ops->buf_read(b, buf, 0, n, f->dbg_host));
    char full[64];
    if (layer >= 0) snprintf(full, sizeof full, "%s-%d", name, layer);
    else snprintf(full, sizeof full, "%s", name);
    f->dbg(f->dbg_ud, full, op, f->dbg_host, rows, cols);
    return CODER_OK;
}

/* Reports buf (of backend b) to the debug hook, if one is installed. */
#define DBG(b, name, layer, op, buf, rows, cols)                                                   \
    do {                                                                                           \
        if (f->dbg) TRY(debug_emit(f, b, name, layer, op, buf, rows, cols));                       \
    } while (0)

void forward_free(forward_state *f) {
    if (!f) return;
    for (int i = 0; i < f->n_stages; i++) {
        fwd_stage *s = &f->st[i];
        backend_buf *bufs[] = {s->x, s->h, s->q, s->k, s->v, s->att, s->gate, s->up};
        for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++) s->b->ops->buf_free(s->b, bufs[j]);
    }
    if (f->n_stages) fwd_last(f)->ops->buf_free(fwd_last(f), f->logits);
    coder_mfree(f->handover);
    coder_mfree(f->dbg_host);
    coder_mfree(f);
}

static coder_status alloc_rows(backend *b, int64_t rows, int64_t width, backend_buf **out) {
    uint64_t n;
    if (ck_mul((uint64_t)rows, (uint64_t)width, &n) || n > SIZE_MAX / sizeof(float))
        return coder_fail(CODER_ERR_LIMIT, "activation buffer %lld x %lld overflows", (long long)rows, (long long)width);
    return b->ops->buf_alloc(b, (size_t)n, out);
}

static coder_status stage_alloc(fwd_stage *s, const model_hparams *hp, int32_t n_batch) {
    const int64_t qw = (int64_t)hp->n_heads * hp->head_dim, kw = (int64_t)hp->n_kv_heads * hp->head_dim;
    /* h also holds the attention input of width dim and, in qwen3, is the scratch for per-head norms. */
    const int64_t hw = hp->dim > qw ? hp->dim : qw;
    backend *b = s->b;
    TRY(alloc_rows(b, n_batch, hp->dim, &s->x));
    TRY(alloc_rows(b, n_batch, hw, &s->h));
    TRY(alloc_rows(b, n_batch, qw, &s->q));
    TRY(alloc_rows(b, n_batch, kw, &s->k));
    TRY(alloc_rows(b, n_batch, kw, &s->v));
    TRY(alloc_rows(b, n_batch, qw, &s->att));
    TRY(alloc_rows(b, n_batch, hp->ffn_dim, &s->gate));
    return alloc_rows(b, n_batch, hp->ffn_dim, &s->up);
}

coder_status forward_new(const backend_stages *stages, int32_t n_batch, forward_state **out) {
    *out = NULL;
    if (stages->n < 1 || stages->n > BACKEND_MAX_STAGES)
        return coder_fail(CODER_ERR_INTERNAL, "forward_new: %d stages", stages->n);
    const coder_model *m = stages->b[0]->model;
    const model_hparams *hp = &m->hp;
    forward_state *f = coder_calloc(1, sizeof *f);
    if (!f) return coder_fail(CODER_ERR_NOMEM, "forward state");
    f->m = m;
    f->n_batch = n_batch;
    f->logits_rows = 1;
    f->layout = next_layout();
    coder_status st = CODER_OK;
    for (int i = 0; i < stages->n && st == CODER_OK; i++) {
        f->st[i] = (fwd_stage){.b = stages->b[i], .first = stages->first[i], .end = stages->first[i + 1]};
        f->n_stages = i + 1;
        st = stage_alloc(&f->st[i], hp, n_batch);
    }
    if (st == CODER_OK) st = alloc_rows(fwd_last(f), 1, hp->vocab_size, &f->logits);
    if (st == CODER_OK && f->n_stages > 1 && !(f->handover = coder_malloc((size_t)n_batch * (size_t)hp->dim * sizeof(float))))
        st = coder_fail(CODER_ERR_NOMEM, "stage hand-over buffer of %d x %d floats", (int)n_batch, (int)hp->dim);
    if (st != CODER_OK) {
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

/* W[i] @ x (+ bias[i]) -> y[i] for the matrices that share an input (Q/K/V, gate/up): one dispatch
 * where the backend has matmul_many (decode on the CPU: one pool wake-up and join instead of 3 or
 * 2; on CUDA one launch, the bias added as rows are stored). */
static coder_status fwd_matmuls(backend *b, const weight *const *ws, int count, const backend_buf *x, int n, backend_buf *const *ys,
                                const weight *const *bias) {
    if (b->ops->matmul_many) return b->ops->matmul_many(b, ws, count, x, n, ys, bias);
    for (int i = 0; i < count; i++) {
        TRY(b->ops->matmul(b, ws[i], x, n, ys[i]));
        if (bias && bias[i] && bias[i]->data) TRY(b->ops->add_bias(b, ys[i], bias[i], n));
    }
    return CODER_OK;
}

/* x += post_norm(W @ in): an output projection into the residual stream. In one matmul_add where
 * the backend has it, unless a norm comes between (gemma3) or the debug hook wants the products
 * (names: the debug names of the product and of its norm). */
static coder_status fwd_residual(forward_state *f, fwd_stage *S, int il, const weight *W, const backend_buf *in, int n,
                                 const weight *post_norm, const char *name, const char *norm_name) {
    backend *b = S->b;
    const backend_ops *o = b->ops;
    const int dim = f->m->hp.dim;
    if (o->matmul_add && n <= o->matmul_add_max_n && !post_norm->data && !f->dbg) return o->matmul_add(b, W, in, n, S->x);
    TRY(o->matmul(b, W, in, n, S->h));
    DBG(b, name, il, "MUL_MAT", S->h, n, dim);
    if (post_norm->data) {
        TRY(o->rms_norm(b, S->h, post_norm, n, dim, f->m->hp.rms_eps, S->h));
        DBG(b, norm_name, il, "MUL", S->h, n, dim);
    }
    return o->add(b, S->x, S->h, n, dim);
}

static coder_status forward_layer(forward_state *f, fwd_stage *S, int il, int n, int32_t pos0) {
    backend *b = S->b;
    const backend_ops *o = b->ops;
    const model_hparams *hp = &f->m->hp;
    const layer_weights *L = &f->m->layers[il];
    const int dim = hp->dim, hd = hp->head_dim, nh = hp->n_heads, nkv = hp->n_kv_heads;
    const int qw = nh * hd, kw = nkv * hd;

    /* attention block */
    TRY(o->rms_norm(b, S->x, &L->attn_norm, n, dim, hp->rms_eps, S->h));
    DBG(b, "attn_norm", il, "MUL", S->h, n, dim);
    {
        /* the biases go into the matmuls unless the debug hook wants the products alone */
        const weight *ws[3] = {&L->wq, &L->wk, &L->wv}, *bias[3] = {&L->bq, &L->bk, &L->bv};
        backend_buf *ys[3] = {S->q, S->k, S->v};
        TRY(fwd_matmuls(b, ws, 3, S->h, n, ys, f->dbg ? NULL : bias));
    }
    DBG(b, "Qcur", il, "MUL_MAT", S->q, n, qw);
    DBG(b, "Kcur", il, "MUL_MAT", S->k, n, kw);
    DBG(b, "Vcur", il, "MUL_MAT", S->v, n, kw);
    if (f->dbg && L->bq.data) {
        TRY(o->add_bias(b, S->q, &L->bq, n));
        DBG(b, "Qcur", il, "ADD", S->q, n, qw);
    }
    if (f->dbg && L->bk.data) {
        TRY(o->add_bias(b, S->k, &L->bk, n));
        DBG(b, "Kcur", il, "ADD", S->k, n, kw);
    }
    if (f->dbg && L->bv.data) {
        TRY(o->add_bias(b, S->v, &L->bv, n));
        DBG(b, "Vcur", il, "ADD", S->v, n, kw);
    }
    if (L->q_norm.data) {   /* qwen3: RMS-normalise each head before RoPE */
        TRY(o->rms_norm(b, S->q, &L->q_norm, n * nh, hd, hp->rms_eps, S->q));
        DBG(b, "Qcur_normed", il, "MUL", S->q, n, qw);
    }
    if (L->k_norm.data) {
        TRY(o->rms_norm(b, S->k, &L->k_norm, n * nkv, hd, hp->rms_eps, S->k));
        DBG(b, "Kcur_normed", il, "MUL", S->k, n, kw);
    }
    TRY(o->rope(b, S->q, n, nh, pos0, il));
    DBG(b, "Qcur", il, "ROPE", S->q, n, qw);
    TRY(o->rope(b, S->k, n, nkv, pos0, il));
    DBG(b, "Kcur", il, "ROPE", S->k, n, kw);
    TRY(o->kv_write(b, il, S->k, S->v, n, pos0));
    TRY(o->attention(b, il, S->q, n, pos0, S->att));
    DBG(b, "kqv_out", il, "CONT", S->att, n, qw);
    TRY(fwd_residual(f, S, il, &L->wo, S->att, n, &L->post_attn_norm, "attn_out", "attn_post_norm"));
    DBG(b, "ffn_inp", il, "ADD", S->x, n, dim);

    /* feed-forward block */
    TRY(o->rms_norm(b, S->x, &L->ffn_norm, n, dim, hp->rms_eps, S->h));
    DBG(b, "ffn_norm", il, "MUL", S->h, n, dim);
    {
        const weight *ws[2] = {&L->w_gate, &L->w_up};
        backend_buf *ys[2] = {S->gate, S->up};
        TRY(fwd_matmuls(b, ws, 2, S->h, n, ys, NULL));
    }
    DBG(b, "ffn_gate", il, "MUL_MAT", S->gate, n, hp->ffn_dim);
    DBG(b, "ffn_up", il, "MUL_MAT", S->up, n, hp->ffn_dim);
    if (hp->act_gelu) {
        TRY(o->geglu(b, S->gate, S->up, n, hp->ffn_dim));
        DBG(b, "ffn_geglu", il, "GEGLU", S->gate, n, hp->ffn_dim);
    } else {
        TRY(o->swiglu(b, S->gate, S->up, n, hp->ffn_dim));
        DBG(b, "ffn_swiglu", il, "SWIGLU", S->gate, n, hp->ffn_dim);
    }
    TRY(fwd_residual(f, S, il, &L->w_down, S->gate, n, &L->post_ffw_norm, "ffn_out", "ffn_post_norm"));
    DBG(b, "l_out", il, "ADD", S->x, n, dim);
    return CODER_OK;
}

/* Copies rows [0, n) of x from one stage to the next through host memory. */
static coder_status stage_handover(forward_state *f, const fwd_stage *from, fwd_stage *to, int n) {
    const size_t count = (size_t)n * (size_t)f->m->hp.dim;
    TRY(from->b->ops->buf_read(from->b, from->x, 0, count, f->handover));
    return to->b->ops->buf_write(to->b, to->x, 0, count, f->handover);
}

/* Everything after the embedding: the layers of every stage, then the output head on the last
 * one into f->logits rows [0, n_out). Reads nothing back unless the debug hook is set. */
static coder_status forward_body(forward_state *f, int n, int32_t pos0, const atomic_bool *cancel, int n_out) {
    const model_hparams *hp = &f->m->hp;
    fwd_stage *S = &f->st[0];
    for (int si = 0; si < f->n_stages; si++) {
        if (si > 0) TRY(stage_handover(f, &f->st[si - 1], &f->st[si], n));
        S = &f->st[si];
        for (int il = S->first; il < S->end; il++) {
            if (cancel && atomic_load_explicit(cancel, memory_order_relaxed))
                return coder_fail(CODER_ERR_CANCELLED, "evaluation cancelled before layer %d", il);
            TRY(forward_layer(f, S, il, n, pos0));
        }
    }
    backend *b = S->b;
    const backend_ops *o = b->ops;
    TRY(o->copy_rows(b, S->x, n - n_out, S->h, 0, n_out, hp->dim));
    TRY(o->rms_norm(b, S->h, &f->m->output_norm, n_out, hp->dim, hp->rms_eps, S->h));
    DBG(b, "result_norm", -1, "MUL", S->h, n_out, hp->dim);
    TRY(o->matmul(b, &f->m->output, S->h, n_out, f->logits));
    DBG(b, "result_output", -1, "MUL_MAT", f->logits, n_out, hp->vocab_size);
    return CODER_OK;
}

/* A decode step on one backend that can record it (CUDA graphs): forward_body recorded and run as
 * one unit, or the recording of an earlier step replayed at this position (the ops are not called
 * at all: the same ops on the same buffers). *done false: the backend did not record (or its
 * recording failed and nothing ran), so the caller runs forward_body directly. */
static coder_status forward_body_recorded(forward_state *f, int32_t pos0, const atomic_bool *cancel, bool *done) {
    *done = false;
    backend *b = f->st[0].b;
    if (cancel && atomic_load_explicit(cancel, memory_order_relaxed))
        return coder_fail(CODER_ERR_CANCELLED, "evaluation cancelled before layer 0");
    bool replay = false;
    coder_status st = b->ops->step_begin(b, pos0, f->layout, &replay);
    if (st == CODER_ERR_UNSUPPORTED) return CODER_OK;
    TRY(st);
    if (replay) {
        st = b->ops->step_end(b, true);
        if (st == CODER_ERR_UNSUPPORTED) return CODER_OK;
        *done = true;
        return st;
    }
    const coder_status body = forward_body(f, 1, pos0, cancel, 1);
    st = b->ops->step_end(b, body == CODER_OK);
    if (st == CODER_ERR_UNSUPPORTED) return CODER_OK;
    *done = true;
    return st != CODER_OK ? st : body;
}

/* The evaluation itself: the logits of the last token, or of every token (all_rows), stay in
 * f->logits on the last backend. */
static coder_status forward_run(forward_state *f, const int32_t *tokens, int n, int32_t pos0, const atomic_bool *cancel,
                                bool all_rows) {
    const model_hparams *hp = &f->m->hp;
    if (n < 1 || n > f->n_batch)
        return coder_fail(CODER_ERR_INTERNAL, "forward_eval: %d tokens for a batch of %d", n, (int)f->n_batch);

    backend *b = f->st[0].b;
    TRY(b->ops->embed(b, &f->m->tok_embd, tokens, n, f->st[0].x));
    DBG(b, "embd", -1, "GET_ROWS", f->st[0].x, n, hp->dim);
    if (hp->embed_scale != 1.0f) TRY(b->ops->scale(b, f->st[0].x, n, hp->dim, hp->embed_scale));   /* gemma3 */

    /* Output head: the last row only, or every row (its buffer grown first). */
    b = fwd_last(f);
    const int n_out = all_rows ? n : 1;
    if (n_out > f->logits_rows) {
        backend_buf *nb;
        TRY(alloc_rows(b, n_out, hp->vocab_size, &nb));
        /* the last logits move along: they stay readable if this evaluation is cancelled (the
         * session may not have fetched them: greedy steps leave them here) */
        coder_status st = f->n_rows ? b->ops->copy_rows(b, f->logits, f->last_row, nb, 0, 1, hp->vocab_size) : CODER_OK;
        if (st != CODER_OK) {
            b->ops->buf_free(b, nb);
            return st;
        }
        if (f->n_rows) f->n_rows = 1, f->last_row = 0;
        b->ops->buf_free(b, f->logits);
        f->logits = nb;
        f->logits_rows = n_out;
        f->layout = next_layout();   /* a recorded step wrote to the old buffer */
    }
    bool done = false;
    if (n == 1 && !all_rows && f->n_stages == 1 && b->ops->step_begin && !f->dbg)
        TRY(forward_body_recorded(f, pos0, cancel, &done));
    if (!done) TRY(forward_body(f, n, pos0, cancel, n_out));
    f->n_rows = n_out;
    f->last_row = n_out - 1;
    return CODER_OK;
}

coder_status forward_eval(forward_state *f, const int32_t *tokens, int n, int32_t pos0, const atomic_bool *cancel,
                          float *logits, float *logits_all) {
    TRY(forward_run(f, tokens, n, pos0, cancel, logits_all != NULL));
    backend *b = fwd_last(f);
    if (logits_all) TRY(b->ops->buf_read(b, f->logits, 0, (size_t)n * (size_t)f->m->hp.vocab_size, logits_all));
    if (logits) TRY(forward_read_logits(f, logits));
    return CODER_OK;
}

coder_status forward_eval_rows(forward_state *f, const int32_t *tokens, int n, int32_t pos0, const atomic_bool *cancel) {
    return forward_run(f, tokens, n, pos0, cancel, true);
}

coder_status forward_argmax_row(forward_state *f, int row, int32_t *token, bool *all_finite) {
    if (row < 0 || row >= f->n_rows) return coder_fail(CODER_ERR_INTERNAL, "forward_argmax_row: row %d of %d", row, (int)f->n_rows);
    return fwd_last(f)->ops->argmax(fwd_last(f), f->logits, row, f->m->hp.vocab_size, token, all_finite);
}

coder_status forward_select_row(forward_state *f, int row) {
    if (row < 0 || row >= f->n_rows) return coder_fail(CODER_ERR_INTERNAL, "forward_select_row: row %d of %d", row, (int)f->n_rows);
    f->last_row = row;
    return CODER_OK;
}

coder_status forward_read_logits(forward_state *f, float *logits) {
    const size_t vocab = (size_t)f->m->hp.vocab_size;
    return fwd_last(f)->ops->buf_read(fwd_last(f), f->logits, (size_t)f->last_row * vocab, vocab, logits);
}

coder_status forward_argmax(forward_state *f, int32_t *token, bool *all_finite) {
    return forward_argmax_row(f, f->last_row, token, all_finite);
}

coder_status forward_topk(forward_state *f, int k, int32_t *ids, float *vals, bool *all_finite) {
    return fwd_last(f)->ops->topk(fwd_last(f), f->logits, f->last_row, f->m->hp.vocab_size, k, ids, vals, all_finite);
}
