/* cuda_glue.c - the CUDA backend's C side: backend selection, the model-level weight upload and
 * the op table (backend.h) mapped onto the device layer (cuda/cuda_api.h).
 *
 * Memory plan (docs/CUDA.md):
 *   model (once, at load): one device arena holding every bound weight in its GGUF bytes (Q8_0,
 *     Q4_0, Q5_0 and Q6_K matrices regrouped for 16-byte loads: cuda_api.h cuda_device_type),
 *     each tensor 256-byte aligned; looked up by the weight's host data pointer (a sorted
 *     table), so a tied output matrix shares token_embd's copy. Planned before the first allocation against
 *     cudaMemGetInfo; uploaded from the mmap through two pinned staging buffers.
 *   session: the KV cache (F16, 2 x n_layers x n_ctx x kv_width), activation buffers (forward.c
 *     asks buf_alloc), and the context's scratch (f16 activations, f16 weight chunk for prefill
 *     GEMMs, attention split partials) - all allocated in cuda_backend_new.
 * Built without CUDA, only backend_model_place exists (CPU always). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu.h"
#include "device.h"
#include "kv_cache.h"
#include "plan.h"
#include "quant.h"
#include "sampler.h"

#ifdef CODER_HAVE_CUDA
#include "../cuda/cuda_api.h"

#define CUDA_GLUE_ALIGN 256u
#define CUDA_GLUE_STAGING (32u << 20)          /* bytes per pinned staging buffer (two)      */
#define CUDA_GLUE_RESERVE ((size_t)256 << 20)  /* left free for cuBLAS, contexts, the KV     */

typedef struct cuda_wentry {
    const void *host;         /* weight.data: the key                                         */
    void *dev;
    const weight *w;          /* first weight seen with this data (for names and sizes)        */
    uint32_t dtype;           /* the device layout's type id (cuda_device_type)                */
    uint64_t drow;            /* bytes per row on the device                                   */
} cuda_wentry;

typedef struct cuda_model {
    void *arena;
    size_t arena_bytes;
    cuda_wentry *w;           /* sorted by host                                               */
    size_t n_w;
} cuda_model;

static const char *cuda_glue_wname(const weight *w) { return w->t ? w->t->name : "?"; }

static int cuda_glue_cmp(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const cuda_wentry *)a)->host, y = (uintptr_t)((const cuda_wentry *)b)->host;
    return (x > y) - (x < y);
}

/* The device entry of W, or NULL when W has no data or was never uploaded. */
static const cuda_wentry *cuda_glue_entry(const cuda_model *cm, const weight *W) {
    if (!W || !W->data) return NULL;
    cuda_wentry key = {.host = W->data};
    return bsearch(&key, cm->w, cm->n_w, sizeof key, cuda_glue_cmp);
}

/* W's device layout: its type and row size there (matrices of the 2-byte aligned formats are
 * stored grouped). */
static void cuda_glue_layout(const weight *w, uint32_t *dtype, uint64_t *drow) {
    *dtype = w->rows > 1 ? cuda_device_type(w->type) : w->type;
    *drow = *dtype != w->type ? cuda_group_row_bytes(*dtype, w->cols / cuda_group_of(*dtype).block) : w->row_bytes;
}

/* Uploads W's rows regrouped (cuda_group_rows) a chunk at a time through a host buffer. */
static coder_status cuda_glue_upload_grouped(cuda_uploader *up, const cuda_wentry *e) {
    const weight *w = e->w;
    int64_t chunk = e->drow >= (8u << 20) ? 1 : (int64_t)((8u << 20) / e->drow);
    if (chunk > w->rows) chunk = w->rows;
    void *buf = coder_malloc((size_t)(chunk * (int64_t)e->drow));
    if (!buf) return coder_fail(CODER_ERR_NOMEM, "cuda upload: regrouping buffer");
    coder_status st = CODER_OK;
    for (int64_t r = 0; r < w->rows && st == CODER_OK; r += chunk) {
        const int64_t n = w->rows - r < chunk ? w->rows - r : chunk;
        cuda_group_rows(w->type, (const char *)w->data + (uint64_t)r * w->row_bytes, n, w->cols, w->row_bytes, buf);
        st = cuda_upload(up, (char *)e->dev + (uint64_t)r * e->drow, buf, (size_t)(n * (int64_t)e->drow));
    }
    coder_mfree(buf);
    return st;
}

static void cuda_model_free(coder_model *m) {
    cuda_model *cm = m->backend_data;
    if (!cm) return;
    cuda_dev_free(cm->arena);
    coder_mfree(cm->w);
    coder_mfree(cm);
    m->backend_data = NULL;
    m->backend_free = NULL;
    m->gpu_layers = 0;
}

/* The weight slots that go to the GPU with its last g layers, data or not: tok_embd only when
 * every layer does (with a split, the CPU stage embeds), output_norm, output, rope_freqs, then 14
 * per layer; *n gets the count. */
static coder_status cuda_glue_slots(const coder_model *m, int32_t g, const weight ***out, size_t *n) {
    const size_t per = sizeof(layer_weights) / sizeof(weight);
    _Static_assert(sizeof(layer_weights) % sizeof(weight) == 0, "layer_weights is an array of weights");
    const int32_t L = m->hp.n_layers;
    size_t total = 4 + per * (size_t)g;
    const weight **s = coder_calloc(total, sizeof *s);
    if (!s) return coder_fail(CODER_ERR_NOMEM, "cuda upload: table of %zu weights", total);
    size_t k = 0;
    if (g >= L) s[k++] = &m->tok_embd;
    s[k++] = &m->output_norm;
    s[k++] = &m->output;
    s[k++] = &m->rope_freqs;
    for (int32_t l = L - g; l < L; l++) {
        const weight *lw = (const weight *)&m->layers[l];
        for (size_t i = 0; i < per; i++) s[k++] = &lw[i];
    }
    *out = s;
    *n = k;
    return CODER_OK;
}

coder_status cuda_model_upload(coder_model *m, int32_t g, float lo, float hi) {
    if (m->backend_data) return CODER_OK;
    if (g < 1 || g > m->hp.n_layers) g = m->hp.n_layers;
    const weight **slots = NULL;
    size_t n_slots = 0;
    TRY(cuda_glue_slots(m, g, &slots, &n_slots));
    coder_status st = CODER_OK;
    cuda_uploader *up = NULL;
    cuda_model *cm = coder_calloc(1, sizeof *cm);
    if (cm) cm->w = coder_calloc(n_slots, sizeof *cm->w);
    if (!cm || !cm->w) {
        st = coder_fail(CODER_ERR_NOMEM, "cuda upload: weight table");
        goto fail;
    }
    /* the unique weights with data, checked against the device kernels */
    for (size_t i = 0; i < n_slots; i++) {
        const weight *w = slots[i];
        if (!w->data) continue;
        if (w->rows > 1 && !cuda_type_ok(w->type, w->cols)) {
            st = coder_fail(CODER_ERR_UNSUPPORTED, "tensor %s: type %s with %lld columns has no CUDA kernel",
                            cuda_glue_wname(w), quant_type_name(w->type), (long long)w->cols);
            goto fail;
        }
        cuda_wentry e = {.host = w->data, .w = w};
        cuda_glue_layout(w, &e.dtype, &e.drow);
        cm->w[cm->n_w++] = e;
    }
    qsort(cm->w, cm->n_w, sizeof *cm->w, cuda_glue_cmp);
    size_t k = 0;   /* drop duplicates (tied output = token_embd) */
    for (size_t i = 0; i < cm->n_w; i++)
        if (k == 0 || cm->w[k - 1].host != cm->w[i].host) cm->w[k++] = cm->w[i];
    cm->n_w = k;

    /* plan: offsets in one arena */
    uint64_t total = 0;
    size_t *offs = coder_calloc(cm->n_w ? cm->n_w : 1, sizeof *offs);
    if (!offs) {
        st = coder_fail(CODER_ERR_NOMEM, "cuda upload: offsets");
        goto fail;
    }
    for (size_t i = 0; i < cm->n_w; i++) {
        const weight *w = cm->w[i].w;
        uint64_t bytes;
        if (ck_mul((uint64_t)w->rows, cm->w[i].drow, &bytes) || ck_add(total, CUDA_GLUE_ALIGN - 1, &total)) {
            coder_mfree(offs);
            st = coder_fail(CODER_ERR_LIMIT, "cuda upload: tensor %s size overflows", cuda_glue_wname(w));
            goto fail;
        }
        total &= ~(uint64_t)(CUDA_GLUE_ALIGN - 1);
        offs[i] = (size_t)total;
        if (ck_add(total, bytes, &total)) {
            coder_mfree(offs);
            st = coder_fail(CODER_ERR_LIMIT, "cuda upload: total size overflows at tensor %s", cuda_glue_wname(w));
            goto fail;
        }
    }
    size_t dev_free = 0, dev_total = 0;
    if ((st = cuda_mem_info(&dev_free, &dev_total)) != CODER_OK) {
        coder_mfree(offs);
        goto fail;
    }
    if (total + CUDA_GLUE_RESERVE > dev_free) {
        coder_mfree(offs);
        st = coder_fail(CODER_ERR_DEVICE_NOMEM,
                        "GPU weights need %.1f MiB (+%zu MiB reserve) but the device has %.1f MiB free of %.1f MiB",
                        (double)total / 1048576.0, CUDA_GLUE_RESERVE >> 20, (double)dev_free / 1048576.0,
                        (double)dev_total / 1048576.0);
        goto fail;
    }
    cm->arena_bytes = (size_t)total;
    if ((st = cuda_dev_alloc(&cm->arena, cm->arena_bytes, "model weights")) != CODER_OK ||
        (st = cuda_upload_begin(CUDA_GLUE_STAGING, &up)) != CODER_OK) {
        coder_mfree(offs);
        goto fail;
    }
    uint64_t done = 0;
    for (size_t i = 0; i < cm->n_w; i++) {
        const weight *w = cm->w[i].w;
        const size_t bytes = (size_t)((uint64_t)w->rows * cm->w[i].drow);
        cm->w[i].dev = (char *)cm->arena + offs[i];
        st = cm->w[i].dtype != w->type ? cuda_glue_upload_grouped(up, &cm->w[i]) : cuda_upload(up, cm->w[i].dev, w->data, bytes);
        if (st != CODER_OK) {
            coder_fail_context("uploading tensor %s", cuda_glue_wname(w));
            break;
        }
        done += bytes;
        if ((st = model_progress(m, lo + (hi - lo) * (float)((double)done / (double)(total ? total : 1)))) != CODER_OK)
            break;
    }
    coder_mfree(offs);
    {
        coder_status st2 = cuda_upload_end(up);
        up = NULL;
        if (st == CODER_OK) st = st2;
    }
    if (st != CODER_OK) goto fail;
    coder_mfree(slots);
    m->backend_data = cm;
    m->backend_free = cuda_model_free;
    m->gpu_layers = g;
    LOG_INFO("CUDA: %d of %d layers, %zu weight tensors, %.1f MiB uploaded (device had %.1f MiB free)", (int)g,
             (int)m->hp.n_layers, cm->n_w, (double)total / 1048576.0, (double)dev_free / 1048576.0);
    return CODER_OK;
fail:
    if (up) cuda_upload_end(up);
    if (cm) {
        cuda_dev_free(cm->arena);
        coder_mfree(cm->w);
        coder_mfree(cm);
    }
    coder_mfree(slots);
    return st;
}

/* ---- the session backend -------------------------------------------------------------------- */

typedef struct cuda_backend {
    backend base;
    cuda_ctx *ctx;
    const cuda_model *cm;
    void *kv;                 /* K of every layer, then V: [n_ctx] rows each, kv_fmt's layout   */
    size_t k_layer_bytes, v_layer_bytes, k_row, v_row;
    int32_t n_ctx, kv_width;
    int32_t kv_first, kv_layers;   /* the layers of this stage (backend_kv_layers)                */
    int kv_fmt;               /* CUDA_KVF_*: the session's kv_type (F32 is kept as F16)         */
    cuda_rope_params rope;
} cuda_backend;

#define CB(b) ((cuda_backend *)(b))
#define DF(buf) ((float *)(buf)->data)

/* K and V of the model's `layer`: the cache holds the stage's layers kv_first .. kv_first+kv_layers-1. */
static void *cuda_glue_k(cuda_backend *c, int layer) { return (char *)c->kv + (size_t)(layer - c->kv_first) * c->k_layer_bytes; }
static void *cuda_glue_v(cuda_backend *c, int layer) {
    return (char *)c->kv + (size_t)c->kv_layers * c->k_layer_bytes + (size_t)(layer - c->kv_first) * c->v_layer_bytes;
}
static cuda_kv_layer cuda_glue_layer(cuda_backend *c, int layer) {
    return (cuda_kv_layer){.k = cuda_glue_k(c, layer), .v = cuda_glue_v(c, layer), .fmt = c->kv_fmt, .k_row = c->k_row,
                           .v_row = c->v_row};
}

/* A matrix's device copy and layout, or CODER_ERR_INTERNAL naming it. */
typedef struct cuda_glue_mat {
    void *p;
    uint32_t type;
    uint64_t row_bytes;
} cuda_glue_mat;
static coder_status cuda_glue_need_mat(cuda_backend *c, const weight *W, cuda_glue_mat *out) {
    const cuda_wentry *e = cuda_glue_entry(c->cm, W);
    if (!e) return coder_fail(CODER_ERR_INTERNAL, "cuda: tensor %s has no device copy", W ? cuda_glue_wname(W) : "(null)");
    *out = (cuda_glue_mat){e->dev, e->dtype, e->drow};
    return CODER_OK;
}

/* The device copy of a vector (norm, bias: the file's layout) or CODER_ERR_INTERNAL naming it. */
static coder_status cuda_glue_need(cuda_backend *c, const weight *W, void **out) {
    cuda_glue_mat m;
    TRY(cuda_glue_need_mat(c, W, &m));
    *out = m.p;
    return CODER_OK;
}

static void cuda_glue_free(backend *b) {
    cuda_backend *c = CB(b);
    if (!c) return;
    cuda_ctx_free(c->ctx);
    cuda_dev_free(c->kv);
    coder_mfree(c);
}

static coder_status cuda_glue_buf_alloc(backend *b, size_t n_floats, backend_buf **out) {
    (void)b;
    *out = NULL;
    size_t bytes;
    if (ck_mul_size(n_floats, sizeof(float), &bytes))
        return coder_fail(CODER_ERR_LIMIT, "cuda buffer of %zu floats overflows", n_floats);
    backend_buf *buf = coder_calloc(1, sizeof *buf);
    if (!buf) return coder_fail(CODER_ERR_NOMEM, "cuda buffer descriptor");
    coder_status st = cuda_dev_alloc(&buf->data, bytes, "activation buffer");
    if (st != CODER_OK) {
        coder_mfree(buf);
        return st;
    }
    buf->n_floats = n_floats;
    *out = buf;
    return CODER_OK;
}

static void cuda_glue_buf_free(backend *b, backend_buf *buf) {
    (void)b;
    if (!buf) return;
    cuda_dev_free(buf->data);
    coder_mfree(buf);
}

static coder_status cuda_glue_buf_read(backend *b, const backend_buf *buf, size_t off, size_t n, float *dst) {
    TRY(backend_buf_range(buf, off, n, "buf_read"));
    return cuda_d2h(CB(b)->ctx, dst, DF(buf) + off, n * sizeof(float));
}

static coder_status cuda_glue_buf_write(backend *b, backend_buf *buf, size_t off, size_t n, const float *src) {
    TRY(backend_buf_range(buf, off, n, "buf_write"));
    return cuda_h2d(CB(b)->ctx, DF(buf) + off, src, n * sizeof(float));
}

static coder_status cuda_glue_embed(backend *b, const weight *E, const int32_t *ids, int n, backend_buf *x) {
    cuda_glue_mat e = {0};
    TRY(cuda_glue_need_mat(CB(b), E, &e));
    return cuda_embed(CB(b)->ctx, e.type, e.p, e.row_bytes, E->cols, ids, n, DF(x));
}

static coder_status cuda_glue_rms_norm(backend *b, const backend_buf *x, const weight *w, int n_rows, int width, float eps,
                                       backend_buf *y) {
    void *wd = NULL;
    if (w && w->data) TRY(cuda_glue_need(CB(b), w, &wd));
    /* the norms over the model width feed mat-vecs (their int8 form is written along); the
     * per-head q/k norms of qwen3 feed RoPE */
    const int acts = width == b->model->hp.dim;
    return cuda_rms_norm(CB(b)->ctx, DF(x), wd, n_rows, width, eps, DF(y), acts);
}

static coder_status cuda_glue_matmul(backend *b, const weight *W, const backend_buf *x, int n, backend_buf *y) {
    cuda_glue_mat wd = {0};
    TRY(cuda_glue_need_mat(CB(b), W, &wd));
    coder_status st = cuda_matmul(CB(b)->ctx, wd.type, wd.p, wd.row_bytes, W->rows, W->cols, DF(x), n, DF(y));
    if (st != CODER_OK) coder_fail_context("matmul %s", cuda_glue_wname(W));
    return st;
}

/* Q/K/V and gate/up: the mat-vec quantizes x once for all and runs same-type weights in one
 * launch (cuda_matmul_many). */
static coder_status cuda_glue_matmul_many(backend *b, const weight *const *W, int count, const backend_buf *x, int n,
                                          backend_buf *const *y, const weight *const *bias) {
    if (count < 1 || count > CUDA_MMV_PARTS) return coder_fail(CODER_ERR_INTERNAL, "matmul_many: %d weights", count);
    uint32_t types[CUDA_MMV_PARTS];
    cuda_mmv_part parts[CUDA_MMV_PARTS];
    for (int k = 0; k < count; k++) {
        cuda_glue_mat wd = {0};
        TRY(cuda_glue_need_mat(CB(b), W[k], &wd));
        if (W[k]->cols != W[0]->cols) return coder_fail(CODER_ERR_INTERNAL, "matmul_many: widths differ");
        void *bd = NULL;
        if (bias && bias[k] && bias[k]->data) {
            TRY(cuda_glue_need(CB(b), bias[k], &bd));
            if (bias[k]->cols != W[k]->rows) return coder_fail(CODER_ERR_INTERNAL, "matmul_many: bias of %lld for %lld rows",
                                                               (long long)bias[k]->cols, (long long)W[k]->rows);
        }
        types[k] = wd.type;
        parts[k] = (cuda_mmv_part){wd.p, wd.row_bytes, W[k]->rows, DF(y[k]), (const float *)bd};
    }
    coder_status st = cuda_matmul_many(CB(b)->ctx, types, parts, count, W[0]->cols, DF(x), n);
    if (st != CODER_OK) coder_fail_context("matmul %s and %d more", cuda_glue_wname(W[0]), count - 1);
    return st;
}

static coder_status cuda_glue_matmul_add(backend *b, const weight *W, const backend_buf *x, int n, backend_buf *y) {
    cuda_glue_mat wd = {0};
    TRY(cuda_glue_need_mat(CB(b), W, &wd));
    coder_status st = cuda_matmul_add(CB(b)->ctx, wd.type, wd.p, wd.row_bytes, W->rows, W->cols, DF(x), n, DF(y));
    if (st != CODER_OK) coder_fail_context("matmul %s", cuda_glue_wname(W));
    return st;
}

static coder_status cuda_glue_add_bias(backend *b, backend_buf *y, const weight *bias, int n) {
    void *bd;
    TRY(cuda_glue_need(CB(b), bias, &bd));
    return cuda_add_bias(CB(b)->ctx, DF(y), bd, n, (int)bias->cols);
}

static coder_status cuda_glue_rope(backend *b, backend_buf *x, int n, int n_heads, int32_t pos0, int layer) {
    (void)layer;   /* one RoPE for every layer: per-layer bases (gemma3) never reach this backend */
    return cuda_rope(CB(b)->ctx, &CB(b)->rope, DF(x), n, n_heads, pos0);
}

/* Cache positions pos0 .. pos0+n-1 exist. */
static coder_status cuda_glue_positions(const cuda_backend *c, int32_t pos0, int n, const char *what) {
    if (pos0 >= 0 && n >= 0 && (int64_t)pos0 + n <= c->n_ctx) return CODER_OK;
    return coder_fail(CODER_ERR_INTERNAL, "%s: positions %d..+%d outside n_ctx %d", what, (int)pos0, n, (int)c->n_ctx);
}

static coder_status cuda_glue_kv_write(backend *b, int layer, const backend_buf *k, const backend_buf *v, int n, int32_t pos0) {
    cuda_backend *c = CB(b);
    TRY(backend_kv_index(b, layer, "kv_write", NULL));
    TRY(cuda_glue_positions(c, pos0, n, "kv_write"));
    const cuda_kv_layer kl = cuda_glue_layer(c, layer);
    return cuda_kv_write(c->ctx, &kl, DF(k), DF(v), n, pos0, c->kv_width);
}

static coder_status cuda_glue_attention(backend *b, int layer, const backend_buf *q, int n, int32_t pos0, backend_buf *out) {
    cuda_backend *c = CB(b);
    const model_hparams *hp = &b->model->hp;
    TRY(backend_kv_index(b, layer, "attention", NULL));
    TRY(cuda_glue_positions(c, pos0, n, "attention"));
    const cuda_kv_layer kl = cuda_glue_layer(c, layer);
    return cuda_attention(c->ctx, &kl, DF(q), n, pos0, hp->n_heads, hp->n_kv_heads, hp->head_dim, DF(out));
}

static coder_status cuda_glue_swiglu(backend *b, backend_buf *gate, const backend_buf *up, int n, int width) {
    return cuda_swiglu(CB(b)->ctx, DF(gate), DF(up), n, width);
}

static coder_status cuda_glue_add(backend *b, backend_buf *x, const backend_buf *y, int n, int width) {
    return cuda_add(CB(b)->ctx, DF(x), DF(y), (int64_t)n * width);
}

static coder_status cuda_glue_copy_rows(backend *b, const backend_buf *src, int src_row, backend_buf *dst, int dst_row,
                                        int n_rows, int width) {
    return cuda_d2d(CB(b)->ctx, DF(dst) + (size_t)dst_row * width, DF(src) + (size_t)src_row * width,
                    (size_t)n_rows * width * sizeof(float));
}

static coder_status cuda_glue_kv_truncate(backend *b, int32_t n_keep) {
    (void)b;
    (void)n_keep;   /* rows past n_past are never read before being rewritten */
    return CODER_OK;
}

static coder_status cuda_glue_argmax(backend *b, const backend_buf *x, int row, int width, int32_t *out, bool *all_finite) {
    TRY(backend_buf_row(x, row, width, "argmax"));
    int finite = 0;
    TRY(cuda_argmax(CB(b)->ctx, DF(x) + (size_t)row * (size_t)width, width, out, &finite));
    *all_finite = finite != 0;
    return CODER_OK;
}

/* Rows wider than the device kernel takes (vocabularies above 262144) come to the host whole. */
_Static_assert(BACKEND_TOPK_MAX <= CUDA_TOPK_MAX, "the device top-k returns BACKEND_TOPK_MAX candidates");
static coder_status cuda_glue_topk(backend *b, const backend_buf *x, int row, int width, int k, int32_t *ids, float *vals,
                                   bool *all_finite) {
    TRY(backend_topk_args(x, row, width, k));
    const float *r = DF(x) + (size_t)row * (size_t)width;
    if (width <= CUDA_TOPK_MAX_WIDTH) {
        int finite = 0;
        TRY(cuda_topk(CB(b)->ctx, r, width, k, ids, vals, &finite));
        *all_finite = finite != 0;
        return CODER_OK;
    }
    float *host = coder_malloc((size_t)width * sizeof *host);
    if (!host) return coder_fail(CODER_ERR_NOMEM, "topk: a row of %d logits", width);
    coder_status st = cuda_d2h(CB(b)->ctx, host, r, (size_t)width * sizeof *host);
    if (st == CODER_OK) *all_finite = sampler_top_select(host, width, k, ids, vals);
    coder_mfree(host);
    return st;
}

/* Session state (save, load, fork) moves raw cache rows: the device rows have the CPU cache's
 * layout for F16, Q8_0 and Q8_0 K + Q4_0 V, so state files move between the backends. An F32
 * session keeps an F16 device cache: its rows are not F32 rows, so it cannot exchange them. */
static coder_status cuda_glue_kv_range(cuda_backend *c, int layer, int32_t pos0, int n, const char *what) {
    if (c->base.params.kv_type == CODER_KV_F32)
        return coder_fail(CODER_ERR_UNSUPPORTED, "%s: the CUDA KV cache has no F32 rows (kept as F16); use kv_type F16, "
                          "Q8_0 or Q8_0_Q4_0 for session state on the GPU", what);
    TRY(backend_kv_index(&c->base, layer, what, NULL));
    return cuda_glue_positions(c, pos0, n, what);
}

static coder_status cuda_glue_kv_read(backend *b, int layer, int32_t pos0, int n, void *k, void *v) {
    cuda_backend *c = CB(b);
    TRY(cuda_glue_kv_range(c, layer, pos0, n, "kv_read"));
    TRY(cuda_d2h(c->ctx, k, (char *)cuda_glue_k(c, layer) + (size_t)pos0 * c->k_row, (size_t)n * c->k_row));
    return cuda_d2h(c->ctx, v, (char *)cuda_glue_v(c, layer) + (size_t)pos0 * c->v_row, (size_t)n * c->v_row);
}

static coder_status cuda_glue_kv_load(backend *b, int layer, int32_t pos0, int n, const void *k, const void *v) {
    cuda_backend *c = CB(b);
    TRY(cuda_glue_kv_range(c, layer, pos0, n, "kv_load"));
    TRY(cuda_h2d(c->ctx, (char *)cuda_glue_k(c, layer) + (size_t)pos0 * c->k_row, k, (size_t)n * c->k_row));
    return cuda_h2d(c->ctx, (char *)cuda_glue_v(c, layer) + (size_t)pos0 * c->v_row, v, (size_t)n * c->v_row);
}

/* A recording holds the caller's buffers (layout) and attention's split count for this context
 * length: replayable while both stay. */
static coder_status cuda_glue_step_begin(backend *b, int32_t pos0, uint64_t layout, bool *replay) {
    *replay = false;
    TRY(cuda_glue_positions(CB(b), pos0, 1, "decode step"));   /* a replay calls no op: checked here */
    const model_hparams *hp = &b->model->hp;
    const int splits = cuda_attention_splits(CB(b)->ctx, 1, pos0 + 1, hp->n_heads, hp->n_kv_heads, hp->head_dim);
    int r = 0;
    coder_status st = cuda_graph_begin(CB(b)->ctx, pos0, layout << 8 | (uint64_t)splits, &r);
    *replay = r != 0;
    return st;
}
static coder_status cuda_glue_step_end(backend *b, bool run) { return cuda_graph_end(CB(b)->ctx, run); }

void cuda_backend_graph_counts(const backend *b, unsigned long long *updates, unsigned long long *instantiations,
                               unsigned long long *replays) {
    cuda_graph_counts(((const cuda_backend *)b)->ctx, updates, instantiations, replays);
}

static const backend_ops cuda_glue_ops = {
    .name = "cuda",
    .free = cuda_glue_free,
    .buf_alloc = cuda_glue_buf_alloc,
    .buf_free = cuda_glue_buf_free,
    .buf_read = cuda_glue_buf_read,
    .embed = cuda_glue_embed,
    .rms_norm = cuda_glue_rms_norm,
    .matmul = cuda_glue_matmul,
    .matmul_many = cuda_glue_matmul_many,
    .matmul_add = cuda_glue_matmul_add,
    .matmul_add_max_n = CUDA_MMV_MAX_TOKENS,
    .add_bias = cuda_glue_add_bias,
    .rope = cuda_glue_rope,
    .kv_write = cuda_glue_kv_write,
    .attention = cuda_glue_attention,
    .swiglu = cuda_glue_swiglu,
    .add = cuda_glue_add,
    .copy_rows = cuda_glue_copy_rows,
    .kv_truncate = cuda_glue_kv_truncate,
    .kv_read = cuda_glue_kv_read,
    .kv_load = cuda_glue_kv_load,
    .buf_write = cuda_glue_buf_write,
    .argmax = cuda_glue_argmax,
    .topk = cuda_glue_topk,
    .step_begin = cuda_glue_step_begin,
    .step_end = cuda_glue_step_end,
};

static int64_t cuda_glue_max64(int64_t a, int64_t b) { return a > b ? a : b; }

coder_status cuda_backend_new(const coder_model *m, const backend_params *p, backend **out) {
    *out = NULL;
    const cuda_model *cm = m->backend_data;
    if (!cm) return coder_fail(CODER_ERR_STATE, "cuda backend: the model's weights are not on the GPU");
    const model_hparams *hp = &m->hp;
    cuda_backend *c = coder_calloc(1, sizeof *c);
    if (!c) return coder_fail(CODER_ERR_NOMEM, "cuda backend");
    c->base.ops = &cuda_glue_ops;
    c->base.model = m;
    c->base.params = *p;
    c->cm = cm;
    c->n_ctx = p->n_ctx;
    c->kv_width = hp->n_kv_heads * hp->head_dim;
    coder_status st;
    if ((st = backend_kv_layers(&c->base, &c->kv_first, &c->kv_layers)) != CODER_OK) goto fail;

    /* the widest matmul input, and the largest matrix (prefill dequantization chunk) */
    int64_t max_cols = cuda_glue_max64(cuda_glue_max64(hp->dim, hp->ffn_dim), (int64_t)hp->n_heads * hp->head_dim);
    int64_t max_elems = max_cols;
    for (size_t i = 0; i < cm->n_w; i++) {
        const weight *w = cm->w[i].w;
        if (w->rows > 1) max_elems = cuda_glue_max64(max_elems, w->rows * w->cols);
    }
    cuda_ctx_params cp = {.max_tokens = p->n_batch, .max_cols = max_cols,
                          .deq_elems = cuda_deq_elems(max_elems, max_cols),
                          .max_heads = hp->n_heads, .head_dim = hp->head_dim};
    if ((st = cuda_ctx_new(&cp, &c->ctx)) != CODER_OK) goto fail;

    /* the cache rows: the CPU cache's layouts (kv_cache.c); F32 is kept as F16 on the device */
    c->kv_fmt = p->kv_type == CODER_KV_Q8_0 ? CUDA_KVF_Q8_0 : p->kv_type == CODER_KV_Q8_0_Q4_0 ? CUDA_KVF_Q8_0_Q4_0 : CUDA_KVF_F16;
    const int32_t row_type = c->kv_fmt == CUDA_KVF_F16 ? CODER_KV_F16 : p->kv_type;
    c->k_row = (size_t)kv_row_bytes(row_type, c->kv_width);
    c->v_row = (size_t)kv_v_row_bytes(row_type, c->kv_width);
    size_t kv_bytes, all_k, all_v;
    if (!c->k_row || !c->v_row) {
        st = coder_fail(CODER_ERR_UNSUPPORTED, "cuda KV cache: kv_type %d needs a row width (%d) that is a multiple of 32",
                        (int)p->kv_type, (int)c->kv_width);
        goto fail;
    }
    if (ck_mul_size(c->k_row, (size_t)p->n_ctx, &c->k_layer_bytes) || ck_mul_size(c->v_row, (size_t)p->n_ctx, &c->v_layer_bytes) ||
        ck_mul_size(c->k_layer_bytes, (size_t)c->kv_layers, &all_k) || ck_mul_size(c->v_layer_bytes, (size_t)c->kv_layers, &all_v) ||
        ck_add_size(all_k, all_v, &kv_bytes)) {
        st = coder_fail(CODER_ERR_LIMIT, "cuda KV cache: n_ctx %d x width %d overflows", (int)p->n_ctx, (int)c->kv_width);
        goto fail;
    }
    if ((st = cuda_dev_alloc(&c->kv, kv_bytes, "KV cache")) != CODER_OK) {
        coder_fail_context("n_ctx %d", (int)p->n_ctx);
        goto fail;
    }

    /* RoPE exactly as the CPU backend resolves it; frequency factors from the device copy */
    {
        cpu_rope r;
        const float *ff_dev = NULL;
        const int n_rot = hp->n_rot > 0 ? hp->n_rot : hp->head_dim;
        if (m->rope_freqs.data) {
            if (m->rope_freqs.type != QT_F32 || m->rope_freqs.cols * 2 != n_rot) {
                st = coder_fail(CODER_ERR_FORMAT, "rope_freqs.weight: %lld values of type %u, want %d F32",
                                (long long)m->rope_freqs.cols, m->rope_freqs.type, n_rot / 2);
                goto fail;
            }
            void *d;
            if ((st = cuda_glue_need(c, &m->rope_freqs, &d)) != CODER_OK) goto fail;
            ff_dev = d;
        }
        cpu_rope_init(&r, hp, ff_dev);   /* only copies the pointer */
        c->rope = (cuda_rope_params){.style = r.style, .n_rot = r.n_rot, .head_dim = r.head_dim,
                                     .theta_scale = r.theta_scale, .freq_scale = r.freq_scale,
                                     .ext_factor = r.ext_factor, .attn_factor = r.attn_factor,
                                     .corr_dims = {r.corr_dims[0], r.corr_dims[1]}, .freq_factors = ff_dev};
    }
    if (p->kv_type == CODER_KV_F32) LOG_DEBUG("cuda backend: kv_type F32 requested; the device cache is F16");
    LOG_DEBUG("cuda backend: n_ctx %d, n_batch %d, KV (format %d) %.1f MiB, prefill scratch %.1f MiB", (int)p->n_ctx,
              (int)p->n_batch, c->kv_fmt, (double)kv_bytes / 1048576.0, (double)cp.deq_elems * 2 / 1048576.0);
    *out = &c->base;
    return CODER_OK;
fail:
    cuda_glue_free(&c->base);
    return st;
}

#endif /* CODER_HAVE_CUDA */

/* ---- selection (both builds) ---------------------------------------------------------------- */

#ifdef CODER_HAVE_CUDA
/* `auto` (n_gpu_layers -1): the most layers whose device plan (plan.c, for a default session:
 * weights, KV cache, scratch) fits the free device memory less PLAN_DEVICE_RESERVE, as
 * coder_plan_fit chooses; 0 when not even one does. */
static int32_t cuda_glue_auto_layers(const coder_model *m, size_t dev_free, uint64_t *need_all) {
    plan_input in = {.f = m->file, .hp = m->hp, .mp = m->params};
    coder_session_params_init(&in.sp);
    int32_t g = m->hp.n_layers;
    for (; g > 0; g--) {
        coder_plan p;
        plan_compute(&in, 0, g, true, &p);
        const uint64_t need = p.device_bytes + PLAN_DEVICE_RESERVE;
        if (g == m->hp.n_layers) *need_all = need;
        if (need <= dev_free) break;
    }
    return g;
}
#endif

coder_status backend_model_place(coder_model *m, float lo, float hi) {
    m->gpu_layers = 0;
    const int want = m->params.n_gpu_layers;
    if (want == 0 || m->vocab_only || !m->layers) return CODER_OK;
#ifdef CODER_HAVE_CUDA
    if (device_count() == 0) return CODER_OK;   /* device_count logged why, once */
    /* The CUDA kernels do not have gemma3's GELU, embedding scale and sliding-window attention yet. */
    const int hd = m->hp.head_dim;   /* the attention kernel's head sizes; attn_scale 1/sqrt(hd) */
    if (m->hp.act_gelu || m->hp.swa_window > 0 || m->hp.embed_scale != 1.0f || (hd != 32 && hd != 64 && hd != 128) ||
        fabsf(m->hp.attn_scale - 1.0f / sqrtf((float)hd)) > 1e-6f / sqrtf((float)hd)) {
        LOG_WARN("the CUDA backend does not support this %s model yet (head_dim %d; GELU, sliding windows, embedding "
                 "scale and other attention scales are CPU-only); running it on the CPU", m->hp.arch_name, hd);
        return CODER_OK;
    }
    const int32_t n_layers = m->hp.n_layers;
    if (cuda_blas_available() != CODER_OK) {   /* sessions need cuBLAS for prefill: decide here */
        if (want != -1) {   /* an explicit request fails, as below */
            coder_fail_context("n_gpu_layers = %d", want);
            return CODER_ERR_DEVICE;
        }
        LOG_WARN("%s; running this model on the CPU", coder_last_error());
        return CODER_OK;
    }
    int32_t g = want == -1 || want > n_layers ? n_layers : want;
    if (want == -1) {
        size_t dev_free = 0, dev_total = 0;
        uint64_t need_all = 0;
        if (cuda_mem_info(&dev_free, &dev_total) != CODER_OK) {
            LOG_WARN("%s; running this model on the CPU", coder_last_error());
            return CODER_OK;
        }
        g = cuda_glue_auto_layers(m, dev_free, &need_all);
        if (g == 0) {
            LOG_WARN("auto: not one layer fits in the GPU's %.0f MiB free (all would need %.0f MiB); running on the CPU",
                     (double)dev_free / 1048576.0, (double)need_all / 1048576.0);
            return CODER_OK;
        }
        if (g < n_layers)
            LOG_INFO("auto: %d of %d layers on the GPU: all would need %.0f MiB with a default session (context %d), "
                     "%.0f MiB is free", (int)g, (int)n_layers, (double)need_all / 1048576.0, (int)plan_default_ctx(&m->hp),
                     (double)dev_free / 1048576.0);
    }
    coder_status st = cuda_model_upload(m, g, lo, hi);
    if (st == CODER_OK || st == CODER_ERR_CANCELLED) return st;
    if (want == -1) {
        LOG_WARN("GPU offload failed (%s); running this model on the CPU", coder_last_error());
        return CODER_OK;
    }
    coder_fail_context("n_gpu_layers = %d", want);
    return st;
#else
    (void)lo;
    (void)hi;
    return CODER_OK;
#endif
}
