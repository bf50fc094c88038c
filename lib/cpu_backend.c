/* cpu_backend.c - the CPU implementation of the backend op table (backend.h): host buffers, a
 * persistent thread pool, the KV cache, and scratch for quantized activations, attention scores and
 * dequantized small weights (norms, biases), all allocated here at session creation. */
#include <math.h>

#include "cpu.h"
#include "sampler.h"
#include "cpu_gemm.h"

typedef struct cpu_backend {
    backend base;
    const cpu_kernels *k;
    threadpool *tp;
    kv_cache *kv;
    cpu_rope rope;
    cpu_rope rope_swa;        /* gemma3's sliding-window layers: their own base, no scaling     */
    float *rope_cs;           /* [n_rot] cos/sin of one position                              */
    float *freq_factors;      /* [n_rot/2] rope_freqs dequantized, or NULL                    */
    void *mm_scratch;         /* quantized activations of up to n_batch rows                   */
    size_t mm_bytes;
    float *att_scratch;       /* threads x cpu_attention_scratch_floats                       */
    float *wtmp;              /* [max_width] a dequantized norm weight or bias                */
    int64_t wtmp_cap;
} cpu_backend;

#define F(buf) ((float *)(buf)->data)
#define CF(buf) ((const float *)(buf)->data)

static void cpu_free(backend *b) {
    cpu_backend *c = (cpu_backend *)b;
    if (!c) return;
    threadpool_free(c->tp);
    kv_cache_free(c->kv);
    coder_mfree(c->rope_cs);
    coder_mfree(c->freq_factors);
    coder_mfree_aligned(c->mm_scratch);
    coder_mfree(c->att_scratch);
    coder_mfree(c->wtmp);
    coder_mfree(c);
}

static coder_status cpu_buf_alloc(backend *b, size_t n_floats, backend_buf **out) {
    (void)b;
    *out = NULL;
    size_t bytes;
    if (ck_mul_size(n_floats, sizeof(float), &bytes))
        return coder_fail(CODER_ERR_LIMIT, "cpu buffer of %zu floats overflows", n_floats);
    backend_buf *buf = coder_calloc(1, sizeof *buf);
    if (!buf) return coder_fail(CODER_ERR_NOMEM, "cpu buffer descriptor");
    buf->data = coder_malloc_aligned(bytes, 64);
    if (!buf->data) {
        coder_mfree(buf);
        return coder_fail(CODER_ERR_NOMEM, "cpu buffer of %zu bytes", bytes);
    }
    buf->n_floats = n_floats;
    *out = buf;
    return CODER_OK;
}

static void cpu_buf_free(backend *b, backend_buf *buf) {
    (void)b;
    if (!buf) return;
    coder_mfree_aligned(buf->data);
    coder_mfree(buf);
}

static coder_status cpu_buf_read(backend *b, const backend_buf *buf, size_t off, size_t n, float *dst) {
    (void)b;
    TRY(backend_buf_range(buf, off, n, "buf_read"));
    memcpy(dst, CF(buf) + off, n * sizeof(float));
    return CODER_OK;
}

static coder_status cpu_buf_write(backend *b, backend_buf *buf, size_t off, size_t n, const float *src) {
    (void)b;
    TRY(backend_buf_range(buf, off, n, "buf_write"));
    memcpy(F(buf) + off, src, n * sizeof(float));
    return CODER_OK;
}

static coder_status cpu_argmax(backend *b, const backend_buf *x, int row, int width, int32_t *out, bool *all_finite) {
    (void)b;
    TRY(backend_buf_row(x, row, width, "argmax"));
    const float *v = CF(x) + (size_t)row * (size_t)width;
    int32_t best = 0;
    bool finite = true;
    for (int i = 0; i < width; i++) {
        finite &= isfinite(v[i]) != 0;
        if (v[i] > v[best] || isnan(v[best])) best = i;   /* NaN never wins */
    }
    *out = best;
    *all_finite = finite;
    return CODER_OK;
}

static coder_status cpu_topk(backend *b, const backend_buf *x, int row, int width, int k, int32_t *ids, float *vals,
                             bool *all_finite) {
    (void)b;
    TRY(backend_topk_args(x, row, width, k));
    *all_finite = sampler_top_select(CF(x) + (size_t)row * (size_t)width, width, k, ids, vals);
    return CODER_OK;
}

/* A small weight (norm, bias) as f32: the data itself if F32, else dequantized into wtmp. */
static const float *small_weight(cpu_backend *c, const weight *w, int64_t n) {
    if (!w || !w->data) return NULL;
    if (w->type == QT_F32) return w->data;
    c->k->dequant[w->type](w->data, c->wtmp, n);
    return c->wtmp;
}

static coder_status cpu_embed(backend *b, const weight *E, const int32_t *ids, int n, backend_buf *x) {
    cpu_backend *c = (cpu_backend *)b;
    if (E->type >= QT_COUNT || !c->k->dequant[E->type])
        return coder_fail(CODER_ERR_UNSUPPORTED, "token_embd: type %u has no CPU kernel", E->type);
    /* a repacked (tied output) row is gathered into wtmp: >= dim floats, more than a Q8_0 row */
    for (int t = 0; t < n; t++) c->k->dequant[E->type](weight_row(E, ids[t], c->wtmp), F(x) + (size_t)t * E->cols, E->cols);
    return CODER_OK;
}

static coder_status cpu_rms_norm_op(backend *b, const backend_buf *x, const weight *w, int n_rows, int width, float eps,
                                    backend_buf *y) {
    cpu_backend *c = (cpu_backend *)b;
    cpu_rms_norm(CF(x), small_weight(c, w, width), n_rows, width, eps, F(y));
    return CODER_OK;
}

static coder_status cpu_matmul_op(backend *b, const weight *W, const backend_buf *x, int n, backend_buf *y) {
    cpu_backend *c = (cpu_backend *)b;
    return cpu_matmul(c->tp, c->k, W, CF(x), n, F(y), c->mm_scratch, c->mm_bytes);
}

static coder_status cpu_add_bias(backend *b, backend_buf *y, const weight *bias, int n);

static coder_status cpu_matmul_many_op(backend *b, const weight *const *W, int count, const backend_buf *x, int n,
                                       backend_buf *const *y, const weight *const *bias) {
    cpu_backend *c = (cpu_backend *)b;
    float *ys[CPU_MATVEC_MAX];
    if (count < 1 || count > CPU_MATVEC_MAX) return coder_fail(CODER_ERR_INTERNAL, "matmul_many: %d weights", count);
    for (int i = 0; i < count; i++) ys[i] = F(y[i]);
    TRY(cpu_matmul_many(c->tp, c->k, W, count, CF(x), n, ys, c->mm_scratch, c->mm_bytes));
    for (int i = 0; bias && i < count; i++)
        if (bias[i] && bias[i]->data) TRY(cpu_add_bias(b, y[i], bias[i], n));
    return CODER_OK;
}

static coder_status cpu_add_bias(backend *b, backend_buf *y, const weight *bias, int n) {
    cpu_backend *c = (cpu_backend *)b;
    const int64_t width = bias->cols;
    const float *bv = small_weight(c, bias, width);
    for (int t = 0; t < n; t++) {
        float *yt = F(y) + (size_t)t * width;
        for (int64_t i = 0; i < width; i++) yt[i] += bv[i];
    }
    return CODER_OK;
}

static coder_status cpu_rope_op(backend *b, backend_buf *x, int n, int n_heads, int32_t pos0, int layer) {
    cpu_backend *c = (cpu_backend *)b;
    const cpu_rope *r = model_layer_is_swa(&b->model->hp, layer) ? &c->rope_swa : &c->rope;
    cpu_rope_apply(r, F(x), n, n_heads, pos0, c->rope_cs);
    return CODER_OK;
}

static coder_status cpu_kv_write_op(backend *b, int layer, const backend_buf *k, const backend_buf *v, int n, int32_t pos0) {
    cpu_backend *c = (cpu_backend *)b;
    int kl;
    TRY(backend_kv_index(b, layer, "kv_write", &kl));
    if (pos0 < 0 || pos0 + n > c->kv->n_ctx)
        return coder_fail(CODER_ERR_INTERNAL, "kv_write: positions %d..%d outside n_ctx %d", (int)pos0, (int)(pos0 + n),
                          (int)c->kv->n_ctx);
    cpu_kv_write(c->k, c->kv, kl, CF(k), CF(v), n, pos0);
    return CODER_OK;
}

static coder_status cpu_attention_op(backend *b, int layer, const backend_buf *q, int n, int32_t pos0, backend_buf *out) {
    cpu_backend *c = (cpu_backend *)b;
    const model_hparams *hp = &b->model->hp;
    int kl;
    TRY(backend_kv_index(b, layer, "attention", &kl));
    cpu_attention_args a = {.kv = c->kv, .layer = kl, .n = n, .n_heads = hp->n_heads, .n_kv_heads = hp->n_kv_heads,
                            .head_dim = hp->head_dim, .pos0 = pos0, .q = CF(q), .out = F(out),
                            .window = model_layer_is_swa(hp, layer) ? hp->swa_window : 0, .scale = hp->attn_scale,
                            .scratch = c->att_scratch, .k = c->k};
    cpu_attention(c->tp, &a);
    return CODER_OK;
}

/* The gated activations run on the pool when there is enough work (a prefill: n x ffn width
 * values, with an exp or tanh each); one token's row is cheaper than waking the threads. */
typedef struct glu_job {
    const cpu_kernels *k;
    float *gate;
    const float *up;
    int64_t n;
    bool gelu;
} glu_job;

static void glu_worker(void *arg, int ith, int nth) {
    const glu_job *j = arg;
    const int64_t per = ((j->n + nth - 1) / nth + 15) & ~(int64_t)15;   /* 64-byte pieces */
    const int64_t i0 = (int64_t)ith * per, i1 = i0 + per < j->n ? i0 + per : j->n;
    if (i0 >= i1) return;
    if (j->gelu) cpu_geglu(j->gate + i0, j->up + i0, i1 - i0);
    else j->k->swiglu(j->gate + i0, j->up + i0, i1 - i0);
}

static coder_status cpu_glu(cpu_backend *c, backend_buf *gate, const backend_buf *up, int n, int width, bool gelu) {
    glu_job j = {.k = c->k, .gate = F(gate), .up = CF(up), .n = (int64_t)n * width, .gelu = gelu};
    if (j.n >= 16384) threadpool_run(c->tp, glu_worker, &j);
    else glu_worker(&j, 0, 1);
    return CODER_OK;
}

static coder_status cpu_swiglu_op(backend *b, backend_buf *gate, const backend_buf *up, int n, int width) {
    return cpu_glu((cpu_backend *)b, gate, up, n, width, false);
}

static coder_status cpu_geglu_op(backend *b, backend_buf *gate, const backend_buf *up, int n, int width) {
    return cpu_glu((cpu_backend *)b, gate, up, n, width, true);
}

static coder_status cpu_scale_op(backend *b, backend_buf *x, int n, int width, float s) {
    (void)b;
    float *v = F(x);
    for (int64_t i = 0; i < (int64_t)n * width; i++) v[i] *= s;
    return CODER_OK;
}

static coder_status cpu_add_op(backend *b, backend_buf *x, const backend_buf *y, int n, int width) {
    (void)b;
    float *xv = F(x);
    const float *yv = CF(y);
    for (size_t i = 0; i < (size_t)n * (size_t)width; i++) xv[i] += yv[i];
    return CODER_OK;
}

static coder_status cpu_copy_rows(backend *b, const backend_buf *src, int src_row, backend_buf *dst, int dst_row, int n_rows,
                                  int width) {
    (void)b;
    memmove(F(dst) + (size_t)dst_row * width, CF(src) + (size_t)src_row * width, (size_t)n_rows * width * sizeof(float));
    return CODER_OK;
}

static coder_status cpu_kv_truncate(backend *b, int32_t n_keep) {
    (void)b;
    (void)n_keep;   /* rows past n_past are never read before being rewritten */
    return CODER_OK;
}

/* Raw KV rows for session state files and forks (kv_cache.c does the copy). */
static coder_status cpu_kv_read(backend *b, int layer, int32_t pos0, int n, void *k, void *v) {
    int kl;
    TRY(backend_kv_index(b, layer, "kv_read", &kl));
    return kv_cache_read(((cpu_backend *)b)->kv, kl, pos0, n, k, v);
}
static coder_status cpu_kv_load(backend *b, int layer, int32_t pos0, int n, const void *k, const void *v) {
    int kl;
    TRY(backend_kv_index(b, layer, "kv_load", &kl));
    return kv_cache_load(((cpu_backend *)b)->kv, kl, pos0, n, k, v);
}

/* Whether any matrix takes the GEMM's F16/BF16/F32 kind (it alone needs transposed f32 activations). */
static bool model_has_float_matrix(const coder_model *m) {
    if (m->output.data && cpu_gemm_is_float(m->output.type)) return true;
    for (int l = 0; l < m->hp.n_layers; l++) {
        const layer_weights *L = &m->layers[l];
        const weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if (ws[i]->data && cpu_gemm_is_float(ws[i]->type)) return true;
    }
    return false;
}

static const backend_ops cpu_ops = {
    .name = "cpu",
    .free = cpu_free,
    .buf_alloc = cpu_buf_alloc,
    .buf_free = cpu_buf_free,
    .buf_read = cpu_buf_read,
    .buf_write = cpu_buf_write,
    .argmax = cpu_argmax,
    .topk = cpu_topk,
    .embed = cpu_embed,
    .rms_norm = cpu_rms_norm_op,
    .matmul = cpu_matmul_op,
    .matmul_many = cpu_matmul_many_op,
    .add_bias = cpu_add_bias,
    .rope = cpu_rope_op,
    .kv_write = cpu_kv_write_op,
    .attention = cpu_attention_op,
    .swiglu = cpu_swiglu_op,
    .geglu = cpu_geglu_op,
    .scale = cpu_scale_op,
    .add = cpu_add_op,
    .copy_rows = cpu_copy_rows,
    .kv_truncate = cpu_kv_truncate,
    .kv_read = cpu_kv_read,
    .kv_load = cpu_kv_load,
};

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

coder_status cpu_backend_new(const coder_model *m, const backend_params *p, backend **out) {
    *out = NULL;
    const model_hparams *hp = &m->hp;
    cpu_backend *c = coder_calloc(1, sizeof *c);
    if (!c) return coder_fail(CODER_ERR_NOMEM, "cpu backend");
    c->base.ops = &cpu_ops;
    c->base.model = m;
    c->base.params = *p;
    c->k = cpu_kernels_best();
    coder_status st;
    if ((st = threadpool_new(p->n_threads, &c->tp)) != CODER_OK) goto fail;
    int32_t kv_first, kv_layers;
    if ((st = backend_kv_layers(&c->base, &kv_first, &kv_layers)) != CODER_OK) goto fail;
    if ((st = kv_cache_new(p->kv_type, kv_layers, p->n_ctx, hp->n_kv_heads * hp->head_dim, &c->kv)) != CODER_OK) goto fail;

    const int64_t max_cols = max64(max64(hp->dim, hp->ffn_dim), (int64_t)hp->n_heads * hp->head_dim);
    {   /* quantized activations of a batch, and the prefill GEMM's panels: nothing is allocated per matmul */
        const int nb = p->n_batch > 0 ? p->n_batch : 1;
        const size_t a = cpu_matmul_scratch_bytes(max_cols, nb),
                     g = cpu_gemm_scratch_bytes(max_cols, nb, p->n_threads, model_has_float_matrix(m));
        c->mm_bytes = a > g ? a : g;
    }
    c->wtmp_cap = max64(max_cols, (int64_t)hp->n_kv_heads * hp->head_dim);
    const int n_rot = hp->n_rot > 0 ? hp->n_rot : hp->head_dim;
    c->mm_scratch = coder_malloc_aligned(c->mm_bytes, 64);
    c->att_scratch = coder_malloc(cpu_attention_scratch_floats(p->n_ctx, hp->n_heads, hp->n_kv_heads, hp->head_dim) *
                                  (size_t)p->n_threads * sizeof(float));
    c->wtmp = coder_malloc((size_t)c->wtmp_cap * sizeof(float));
    c->rope_cs = coder_malloc((size_t)n_rot * sizeof(float));
    if (!c->mm_scratch || !c->att_scratch || !c->wtmp || !c->rope_cs) {
        st = coder_fail(CODER_ERR_NOMEM, "cpu backend scratch (%d threads, n_ctx %d)", (int)p->n_threads, (int)p->n_ctx);
        goto fail;
    }
    if (m->rope_freqs.data) {
        if (m->rope_freqs.type >= QT_COUNT || !c->k->dequant[m->rope_freqs.type] || m->rope_freqs.cols * 2 != n_rot) {
            st = coder_fail(CODER_ERR_FORMAT, "rope_freqs.weight: %lld values of type %u, want %d F32", (long long)m->rope_freqs.cols,
                            m->rope_freqs.type, n_rot / 2);
            goto fail;
        }
        c->freq_factors = coder_malloc((size_t)n_rot / 2 * sizeof(float));
        if (!c->freq_factors) {
            st = coder_fail(CODER_ERR_NOMEM, "rope_freqs");
            goto fail;
        }
        c->k->dequant[m->rope_freqs.type](m->rope_freqs.data, c->freq_factors, n_rot / 2);
    }
    cpu_rope_init(&c->rope, hp, c->freq_factors);
    model_hparams swa = *hp;   /* sliding-window layers: rope_base_swa, unscaled (llama.cpp's gemma3) */
    swa.rope_base = hp->rope_base_swa > 0 ? hp->rope_base_swa : hp->rope_base;
    swa.rope_scaling_type = ROPE_SCALING_NONE;
    swa.rope_freq_scale = 1.0f;
    cpu_rope_init(&c->rope_swa, &swa, c->freq_factors);
    LOG_DEBUG("cpu backend: %s kernels, %d threads, n_ctx %d, KV %s %.1f MiB", c->k->name, (int)p->n_threads, (int)p->n_ctx,
              p->kv_type == CODER_KV_F16 ? "f16" : p->kv_type == CODER_KV_Q8_0 ? "q8_0" : p->kv_type == CODER_KV_Q8_0_Q4_0 ? "q8_0/q4_0" : "f32", (double)kv_cache_bytes(c->kv) / 1048576.0);
    *out = &c->base;
    return CODER_OK;
fail:
    cpu_free(&c->base);
    return st;
}
