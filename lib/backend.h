/* backend.h - the op table a compute backend implements (cpu_backend.c; cuda_glue.c over cuda/).
 *
 * forward.c runs ONE layer loop for every architecture over these ops, so a backend never sees
 * the architecture, only tensors. Activations live in backend buffers (backend_buf: device memory
 * for a GPU backend, plain host floats for the CPU) holding row-major f32 matrices [rows][width];
 * forward.c never touches their contents except through buf_read. Weights are the model's
 * `weight` descriptors; a backend resolves them to its own copy (model->backend_data) if it has one.
 *
 * A backend object is per session: it owns the KV cache, scratch and threads, all allocated at
 * creation, so evaluating tokens allocates nothing. Every op may fail (a GPU backend reports
 * CODER_ERR_DEVICE*); the CPU backend's ops cannot fail once created.
 *
 * Shape conventions (n = tokens in the batch, positions pos0 .. pos0+n-1):
 *   x, h        [n][dim]                 q, att  [n][n_heads*head_dim]
 *   k, v        [n][n_kv_heads*head_dim] gate,up [n][ffn_dim]      logits [n_out][vocab_size] */
#ifndef CODER_BACKEND_H
#define CODER_BACKEND_H

#include "model.h"

typedef struct backend backend;

/* A backend's f32 buffer: host memory for the CPU backend, device memory for a GPU backend.
 * Only the backend that allocated it dereferences data. */
typedef struct backend_buf {
    void *data;
    size_t n_floats;
} backend_buf;

typedef struct backend_params {
    int32_t n_ctx;            /* KV cache length in positions                                   */
    int32_t n_batch;          /* the most tokens one forward call passes to an op               */
    int32_t n_threads;        /* >= 1                                                           */
    int32_t kv_type;          /* CODER_KV_F16, CODER_KV_F32 or CODER_KV_Q8_0                    */
    /* The layers this backend runs (a stage of a split model, see backend_stages): its KV cache
     * holds layers layer0 .. layer0+n_layers-1 only. Ops still take the model's layer numbers.
     * n_layers 0: every layer. */
    int32_t layer0, n_layers;
} backend_params;

typedef struct backend_ops {
    const char *name;
    void (*free)(backend *b);

    /* Buffers of f32 activations ([rows][width] row-major), allocated at session creation. */
    coder_status (*buf_alloc)(backend *b, size_t n_floats, backend_buf **out);
    void (*buf_free)(backend *b, backend_buf *buf);
    /* Copies n floats starting at float offset `off` of buf to host memory (synchronises). */
    coder_status (*buf_read)(backend *b, const backend_buf *buf, size_t off, size_t n, float *dst);

    /* x[t] = row ids[t] of tok_embd, dequantized.                          x: [n][dim]        */
    coder_status (*embed)(backend *b, const weight *tok_embd, const int32_t *ids, int n, backend_buf *x);
    /* y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w, for rows r < n_rows of `width` (y may be x).
     * Also the per-head q/k norms of qwen3 (rows = tokens*heads, width = head_dim).           */
    coder_status (*rms_norm)(backend *b, const backend_buf *x, const weight *w, int n_rows, int width,
                             float eps, backend_buf *y);
    /* y[t] = W @ x[t] for t < n:  W (rows, cols) @ x[n][cols] -> y[n][rows]. n = 1 is a
     * matrix-vector product (decode), n > 1 a matrix-matrix product (prefill).               */
    coder_status (*matmul)(backend *b, const weight *W, const backend_buf *x, int n, backend_buf *y);
    /* y[i] = W[i] @ x (+ bias[i] where bias and bias[i]->data are set) for i < count (<= 3; Q/K/V,
     * gate/up): the same bits as count matmuls and add_bias, in one dispatch where the backend can
     * (the CUDA mat-vec adds the bias as it stores a row). Optional (NULL: the caller runs
     * matmul and add_bias). */
    coder_status (*matmul_many)(backend *b, const weight *const *W, int count, const backend_buf *x, int n, backend_buf *const *y,
                                const weight *const *bias);
    /* y[t] += W @ x[t] for t < n <= matmul_add_max_n: the residual add fused into the matmul, the
     * same bits as matmul into another buffer and add. Optional (NULL). */
    coder_status (*matmul_add)(backend *b, const weight *W, const backend_buf *x, int n, backend_buf *y);
    int matmul_add_max_n;
    /* y[t] += bias for t < n.                                 bias (width,), y [n][width]    */
    coder_status (*add_bias)(backend *b, backend_buf *y, const weight *bias, int n);
    /* Rotates each head of x in place for positions pos0+t (style, base and scaling from the
     * model's hparams; sliding-window layers of gemma3 use hp.rope_base_swa and no scaling, see
     * model_layer_is_swa).                                    x [n][n_heads*head_dim]        */
    coder_status (*rope)(backend *b, backend_buf *x, int n, int n_heads, int32_t pos0, int layer);
    /* Writes k[t], v[t] to the cache of `layer` at positions pos0+t.                          */
    coder_status (*kv_write)(backend *b, int layer, const backend_buf *k, const backend_buf *v, int n,
                             int32_t pos0);
    /* Causal GQA attention of q[t] (position pos0+t) over cache positions 0..pos0+t of `layer`
     * (only pos0+t-swa_window+1 .. pos0+t when model_layer_is_swa(hp, layer)):
     * out[t] head h = softmax(q_h . K_g^T * hp.attn_scale) V_g, g = h / (n_heads/n_kv_heads).
     *                                                          q, out [n][n_heads*head_dim]   */
    coder_status (*attention)(backend *b, int layer, const backend_buf *q, int n, int32_t pos0,
                              backend_buf *out);
    /* gate[i] = silu(gate[i]) * up[i] for i < n*width.        gate, up [n][width]             */
    coder_status (*swiglu)(backend *b, backend_buf *gate, const backend_buf *up, int n, int width);
    /* gate[i] = gelu(gate[i]) * up[i] (tanh form) for i < n*width.   gate, up [n][width]     */
    coder_status (*geglu)(backend *b, backend_buf *gate, const backend_buf *up, int n, int width);
    /* x[i] *= s for i < n*width.                                                              */
    coder_status (*scale)(backend *b, backend_buf *x, int n, int width, float s);
    /* x[i] += y[i] for i < n*width.                                                          */
    coder_status (*add)(backend *b, backend_buf *x, const backend_buf *y, int n, int width);
    /* dst row dst_row+i = src row src_row+i, for i < n_rows rows of `width`.                  */
    coder_status (*copy_rows)(backend *b, const backend_buf *src, int src_row, backend_buf *dst,
                              int dst_row, int n_rows, int width);
    /* Forgets cache positions >= n_keep (a backend may do nothing: positions are overwritten). */
    coder_status (*kv_truncate)(backend *b, int32_t n_keep);
    /* Raw cache rows of `layer`, positions pos0..pos0+n-1, in the cache's own encoding
     * (kv_row_bytes(kv_type, n_kv_heads*head_dim) bytes a row, rows packed): copied to host
     * memory k, v (kv_read) or from it (kv_load). Session state files and forks use them.       */
    coder_status (*kv_read)(backend *b, int layer, int32_t pos0, int n, void *k, void *v);
    coder_status (*kv_load)(backend *b, int layer, int32_t pos0, int n, const void *k, const void *v);

    /* Copies n host floats into buf at float offset off (a split model's stage hand-over).   */
    coder_status (*buf_write)(backend *b, backend_buf *buf, size_t off, size_t n, const float *src);

    /* *out = index of the largest value of row `row` of x [.][width] (the first on ties; NaN
     * never wins), *all_finite = no NaN or infinity in the row. Computed where x lives, so a
     * greedy step copies back 8 bytes instead of the logits (synchronises).                   */
    coder_status (*argmax)(backend *b, const backend_buf *x, int row, int width, int32_t *out, bool *all_finite);
    /* The k (1..BACKEND_TOPK_MAX) largest values of row `row` and their indices, in descending
     * order, the lowest index first on ties (the sampler's top-k order), and *all_finite as for
     * argmax (when false the values are meaningless). A sampling step then copies back k pairs
     * instead of the logits (synchronises).                                                   */
    coder_status (*topk)(backend *b, const backend_buf *x, int row, int width, int k, int32_t *ids, float *vals,
                         bool *all_finite);

    /* ---- optional ops (NULL where a backend lacks them; the CPU backend sets none) ---- */
    /* A one-token decode step at position pos0 recorded and launched as one unit (CUDA graphs):
     * the ops called between step_begin and step_end(run true) may be recorded instead of run,
     * then run together by step_end; they must not read results back (buf_read, argmax) in
     * between. layout (non-zero) names the buffers the caller passes: a recording made with the
     * same layout may be replayed, then step_begin sets *replay and the caller calls step_end
     * without calling the ops at all (the same ops on the same buffers, at the new position).
     * step_begin: CODER_ERR_UNSUPPORTED when the backend will not record (run the ops directly).
     * step_end with run false discards the recording (an op failed or was cancelled);
     * CODER_ERR_UNSUPPORTED from step_end means the recording failed and nothing ran: run the
     * same ops directly. */
    coder_status (*step_begin)(backend *b, int32_t pos0, uint64_t layout, bool *replay);
    coder_status (*step_end)(backend *b, bool run);
} backend_ops;

struct backend {
    const backend_ops *ops;
    const coder_model *model;
    backend_params params;
};

/* The CPU backend (cpu_backend.c). */
coder_status cpu_backend_new(const coder_model *m, const backend_params *p, backend **out);

/* The layers [*first, *first + *count) whose KV cache b holds (params n_layers 0: all);
 * CODER_ERR_INTERNAL when the params name layers outside the model (backend creation). */
coder_status backend_kv_layers(const backend *b, int32_t *first, int32_t *count);
/* The index in b's KV cache of the model's `layer` (index may be NULL: only the check);
 * CODER_ERR_INTERNAL naming op when b does not hold it (a split model's other stage). */
coder_status backend_kv_index(const backend *b, int layer, const char *op, int *index);
/* CODER_ERR_INTERNAL naming op unless floats [off, off + n) lie inside buf (buf_read, buf_write). */
static inline coder_status backend_buf_range(const backend_buf *buf, size_t off, size_t n, const char *op) {
    if (off <= buf->n_floats && n <= buf->n_floats - off) return CODER_OK;
    return coder_fail(CODER_ERR_INTERNAL, "%s: [%zu, +%zu) outside a buffer of %zu floats", op, off, n, buf->n_floats);
}
/* The most candidates the topk op returns. */
#define BACKEND_TOPK_MAX 64

/* Row `row` of width floats lies in buf (argmax). */
static inline coder_status backend_buf_row(const backend_buf *buf, int row, int width, const char *op) {
    if (row < 0 || width <= 0) return coder_fail(CODER_ERR_INTERNAL, "%s of row %d, width %d", op, row, width);
    return backend_buf_range(buf, (size_t)row * (size_t)width, (size_t)width, op);
}
/* The topk op's arguments: the row lies in buf and 1 <= k <= min(BACKEND_TOPK_MAX, width). */
static inline coder_status backend_topk_args(const backend_buf *buf, int row, int width, int k) {
    if (k < 1 || k > BACKEND_TOPK_MAX || k > width) return coder_fail(CODER_ERR_INTERNAL, "topk: k = %d of %d", k, width);
    return backend_buf_row(buf, row, width, "topk");
}

/* A session's backends. With m->gpu_layers = g, 0 < g < n_layers (partial offload), layers
 * 0 .. n_layers-g-1 run on the CPU (stage 0, which also embeds the tokens) and the last g layers
 * on the GPU (stage 1, which also computes the logits: the output matrix is the largest), as in
 * llama.cpp. Otherwise there is one stage. forward.c hands the hidden state from one stage to the
 * next through host memory (buf_read, buf_write): dim floats per token, once per evaluation. */
#define BACKEND_MAX_STAGES 2
typedef struct backend_stages {
    int n;
    backend *b[BACKEND_MAX_STAGES];
    int32_t first[BACKEND_MAX_STAGES + 1];   /* stage i runs layers first[i] .. first[i+1]-1 */
} backend_stages;

coder_status backend_stages_new(const coder_model *m, const backend_params *p, backend_stages *out);
void backend_stages_free(backend_stages *s);
/* The backend that runs (and caches) `layer`. */
backend *backend_stage_of_layer(const backend_stages *s, int layer);

/* ---- weight placement (cuda_glue.c; built with and without CUDA) ---------------------------
 * backend_model_place runs once at the end of coder_model_load. With params.n_gpu_layers != 0 and
 * a usable device it uploads the weights of the last g layers, the output head (and token_embd
 * when g is every layer) to the GPU in their GGUF formats (m->backend_data, freed by
 * m->backend_free) and sets m->gpu_layers = g: g = n_gpu_layers (at most n_layers), or for -1
 * (auto) the most layers whose device plan for a default session (plan.c) fits the free device
 * memory less PLAN_DEVICE_RESERVE (logged when not all). When an auto upload fails the model stays on the CPU with a LOG_WARN;
 * an explicit request returns the error (CODER_ERR_DEVICE_NOMEM etc.), having freed everything.
 * progress is reported in [lo, hi]. */
coder_status backend_model_place(coder_model *m, float lo, float hi);

#ifdef CODER_HAVE_CUDA
/* The CUDA backend (cuda_glue.c over cuda/). Requires cuda_model_upload to have succeeded.
 * The device cache takes p->kv_type, except F32, kept as F16. */
coder_status cuda_backend_new(const coder_model *m, const backend_params *p, backend **out);
/* Uploads the weights of m's last g layers and its output head (every bound weight when g is
 * n_layers or out of range); sets backend_data, backend_free, gpu_layers = g. All device memory
 * is planned first: CODER_ERR_DEVICE_NOMEM names the bytes needed and free. */
coder_status cuda_model_upload(coder_model *m, int32_t g, float lo, float hi);
/* Decode steps of a CUDA backend b run as graphs: recorded into the executable graph in place /
 * into a new one, and replayed without recording. */
void cuda_backend_graph_counts(const backend *b, unsigned long long *updates, unsigned long long *instantiations,
                               unsigned long long *replays);
#else
static inline coder_status cuda_backend_new(const coder_model *m, const backend_params *p, backend **out) {
    (void)m;
    (void)p;
    *out = NULL;
    return coder_fail(CODER_ERR_UNSUPPORTED, "built without CUDA (make CUDA=1 where nvcc is installed)");
}
static inline coder_status cuda_model_upload(coder_model *m, int32_t g, float lo, float hi) {
    (void)m;
    (void)g;
    (void)lo;
    (void)hi;
    return coder_fail(CODER_ERR_UNSUPPORTED, "built without CUDA (make CUDA=1 where nvcc is installed)");
}
#endif

#endif
