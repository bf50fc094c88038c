/* cuda_api.h - the C interface of the CUDA device layer (the .cu files in cuda/), used by lib/cuda_glue.c.
 *
 * Layering: the .cu files know nothing of models, sessions or the op table; they see device
 * pointers, shapes and ggml type ids. lib/cuda_glue.c (C) maps the backend op table (backend.h)
 * onto these calls and owns the model-level weight copy. Every function returns a coder_status and
 * records a message through coder_fail on failure (the call and the CUDA error string); nothing
 * aborts. Sticky device faults (illegal address, launch failure) give CODER_ERR_DEVICE_LOST,
 * allocation failures CODER_ERR_DEVICE_NOMEM, everything else CODER_ERR_DEVICE.
 *
 * All kernels run on the context's stream, in order; only cuda_d2h / cuda_ctx_sync / cuda_argmax
 * wait for the device. With CODER_CUDA_SYNC=1 in the environment every call synchronises and
 * checks, so the first failing kernel names itself (debugging aid). */
#ifndef CODER_CUDA_API_H
#define CODER_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#include "coderinfer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- device and memory (backend.cu) -------------------------------------------------------- */

/* Device 0's count/name probe (used by lib/device.c). Returns the device count, or 0 with why. */
int cuda_device_probe(char *why, size_t why_cap, char *name, size_t name_cap);
/* Free and total bytes of device 0. */
coder_status cuda_mem_info(size_t *free_bytes, size_t *total_bytes);
/* cudaMalloc of `bytes` (> 0); `what` names the allocation in the message. */
coder_status cuda_dev_alloc(void **out, size_t bytes, const char *what);
void cuda_dev_free(void *p);
/* Test hooks: the nth device or pinned allocation from now (0 = the next) fails as out of memory,
 * once (nth < 0: off); and how many of each are live. Tests only (a process-wide setting). */
void cuda_test_fail_alloc(int nth);
void cuda_test_live_allocs(long *device, long *pinned);
/* Synchronous memset (tests poison outputs with 0xFF = NaN floats). */
coder_status cuda_dev_memset(void *p, int byte, size_t bytes);

/* Uploads host bytes (e.g. from the mmap) to device memory through two pinned staging buffers,
 * double-buffered: the host copy into one overlaps the DMA out of the other. */
typedef struct cuda_uploader cuda_uploader;
coder_status cuda_upload_begin(size_t staging_bytes, cuda_uploader **out);
coder_status cuda_upload(cuda_uploader *u, void *dst, const void *src, size_t bytes);
/* Waits for every copy, frees the staging buffers and the stream (also after a failure). */
coder_status cuda_upload_end(cuda_uploader *u);

/* ---- device weight layouts ----------------------------------------------------------------- */

/* Q8_0, Q4_0, Q5_0 and Q6_K blocks (34, 18, 22, 210 bytes) are only 2-byte aligned; the device
 * stores their rows grouped (cuda/quant.cuh says how), under the type id + 100, so the kernels
 * read quants 16 bytes at a time. block/bytes: the GGUF block; head: a group's header (8
 * blocks' scale fields); pay: quant bytes per block. Zeros for other types. */
typedef struct cuda_group_fmt {
    int block, bytes, head, pay;
} cuda_group_fmt;
static inline cuda_group_fmt cuda_group_of(uint32_t type) {
    cuda_group_fmt f = {0, 0, 0, 0};
    switch (type >= 100 ? type - 100 : type) {
    case 8: f.block = 32, f.bytes = 34, f.head = 16, f.pay = 32; break;      /* Q8_0 */
    case 2: f.block = 32, f.bytes = 18, f.head = 16, f.pay = 16; break;      /* Q4_0 */
    case 6: f.block = 32, f.bytes = 22, f.head = 48, f.pay = 16; break;      /* Q5_0 */
    case 14: f.block = 256, f.bytes = 210, f.head = 144, f.pay = 192; break; /* Q6_K */
    default: break;
    }
    return f;
}
/* Bytes of a grouped row of nb blocks (a multiple of 16: full groups, then the last one with its
 * full header and only the blocks the row has). */
static inline uint64_t cuda_group_row_bytes(uint32_t type, int64_t nb) {
    const cuda_group_fmt f = cuda_group_of(type);
    const int64_t full = nb / 8, rem = nb % 8;
    return (uint64_t)full * (uint64_t)(f.head + 8 * f.pay) + (rem ? (uint64_t)(f.head + rem * f.pay) : 0);
}
/* Device bytes of a rows x cols tensor of GGUF type `type` taking file_bytes in the file, as
 * uploaded grouped (the plan's figure; with CODER_CUDA_GROUPED=0 the upload needs at most one
 * group header per row less). */
static inline uint64_t cuda_device_tensor_bytes(uint32_t type, int64_t rows, int64_t cols, uint64_t file_bytes) {
    const cuda_group_fmt f = cuda_group_of(type);
    if (!f.block || rows < 2 || cols % f.block) return file_bytes;
    return (uint64_t)rows * cuda_group_row_bytes(type, cols / f.block);
}
/* The type the device stores for a matrix of GGUF type `type` (its grouped id, or type itself;
 * CODER_CUDA_GROUPED=0: always type). */
uint32_t cuda_device_type(uint32_t type);
/* rows GGUF rows (row_bytes apart) of type -> grouped rows (cuda_group_row_bytes apart). */
void cuda_group_rows(uint32_t type, const void *src, int64_t rows, int64_t cols, uint64_t row_bytes, void *dst);

/* ---- per-session context: stream, cuBLAS handle, scratch (backend.cu) -------------------- */

typedef struct cuda_ctx_params {
    int32_t max_tokens;       /* n_batch: the most tokens an op sees                           */
    int64_t max_cols;         /* widest matmul input (f16 activation scratch per token)        */
    int64_t deq_elems;        /* f16 elements of the weight-dequantization scratch (prefill)   */
    int32_t max_heads;        /* n_heads (attention split scratch)                             */
    int32_t head_dim;
} cuda_ctx_params;

/* The top-k op (ops.cu cuda_topk): at most this many candidates, from rows of at most
 * CUDA_TOPK_MAX_WIDTH values sorted CUDA_TOPK_CHUNK at a time. */
#define CUDA_TOPK_MAX 64
#define CUDA_TOPK_CHUNK 4096
#define CUDA_TOPK_MAX_WIDTH (CUDA_TOPK_CHUNK / CUDA_TOPK_MAX * CUDA_TOPK_CHUNK)

/* Batches up to this many tokens take the mat-vec kernels (mmvq.cu, mmv_int8.cu); larger ones a
 * prefill path. */
#define CUDA_MMV_MAX_TOKENS 8
/* Split-KV attention partials: up to CUDA_ATT_MAX_SPLITS splits for up to CUDA_ATT_PART_TOKENS
 * query tokens of every head, each (m, l, acc[head_dim]); larger batches use fewer splits. */
#define CUDA_ATT_PART_TOKENS 8
#define CUDA_ATT_MAX_SPLITS 64
/* The prefill's dequantized-weight scratch: the largest matrix, at most this many f16 elements
 * (larger matrices go through it in row chunks), at least one row of the widest input. */
#define CUDA_DEQ_MAX_ELEMS ((int64_t)64 << 20)
static inline int64_t cuda_deq_elems(int64_t largest_matrix, int64_t max_cols) {
    if (largest_matrix < max_cols) largest_matrix = max_cols;
    if (largest_matrix <= CUDA_DEQ_MAX_ELEMS) return largest_matrix;
    return max_cols > CUDA_DEQ_MAX_ELEMS ? max_cols : CUDA_DEQ_MAX_ELEMS;
}
/* The mat-vec's int8 activations (mmv_int8.cu): xq [CUDA_MMV_MAX_TOKENS][max_cols] int8 and xd
 * [CUDA_MMV_MAX_TOKENS][cuda_xd_stride] f32 (one scale per 32; vdot.cuh's cq_xd_stride). */
static inline int64_t cuda_xd_stride(int64_t cols) { return ((cols / 32) + 3) & ~(int64_t)3; }
static inline uint64_t cuda_mmv_scratch_bytes(int64_t max_cols) {
    return (uint64_t)CUDA_MMV_MAX_TOKENS * ((uint64_t)max_cols + 4u * (uint64_t)cuda_xd_stride(max_cols));
}
/* Device bytes cuda_ctx_new allocates for p (the plan counts them; plain arithmetic, so builds
 * without CUDA can plan for a device): the f16 activation and weight scratch of the GEMM path
 * (batches above 8 only), the mat-vec's int8 activations and the attention partials. */
static inline uint64_t cuda_ctx_scratch_bytes(const cuda_ctx_params *p) {
    uint64_t b = (uint64_t)CUDA_ATT_MAX_SPLITS * CUDA_ATT_PART_TOKENS * (uint64_t)p->max_heads * (uint64_t)(p->head_dim + 2) * 4u;
    b += cuda_mmv_scratch_bytes(p->max_cols);
    b += (uint64_t)CUDA_TOPK_CHUNK * 8u + (uint64_t)CUDA_TOPK_MAX_WIDTH / CUDA_TOPK_CHUNK * 4u + (2u * CUDA_TOPK_MAX + 1u) * 4u;
    if (p->max_tokens > 8) b += ((uint64_t)p->max_tokens * (uint64_t)p->max_cols + (uint64_t)p->deq_elems) * 2u;
    return b;
}

typedef struct cuda_ctx cuda_ctx;
coder_status cuda_ctx_new(const cuda_ctx_params *p, cuda_ctx **out);
void cuda_ctx_free(cuda_ctx *c);
coder_status cuda_ctx_sync(cuda_ctx *c);
/* Device -> host copy on the context's stream; returns when the bytes are on the host. */
coder_status cuda_d2h(cuda_ctx *c, void *dst, const void *src, size_t bytes);
/* Host -> device copy on the context's stream (synchronous from the caller's view). */
coder_status cuda_h2d(cuda_ctx *c, void *dst, const void *src, size_t bytes);
/* Device -> device copy on the stream (asynchronous). */
coder_status cuda_d2d(cuda_ctx *c, void *dst, const void *src, size_t bytes);

/* ---- decode steps as CUDA graphs (graph.cu) ---------------------------------------------- */

/* Starts a decode step (one token at position pos0) recorded as a graph. key (non-zero) names
 * what the caller's side of the recording depends on (forward.c: its buffers); the device side
 * adds the attention split count. *replay = 1: a recording for this key exists: the caller runs
 * no ops and calls cuda_graph_end, which launches it with the new position. *replay = 0: the ops
 * called until cuda_graph_end are recorded, not run (kernels read the position from device
 * memory). CODER_ERR_UNSUPPORTED when graphs are off for this context ($CODER_CUDA_GRAPH=0,
 * $CODER_CUDA_SYNC=1, or an earlier capture failed): the caller runs the ops directly. */
coder_status cuda_graph_begin(cuda_ctx *c, int32_t pos0, uint64_t key, int *replay);
/* Ends the step. run != 0: a new recording replaces the parameters of the context's executable
 * graph (cudaGraphExecUpdate; instantiated anew when that fails) and it is launched,
 * asynchronously like any op; a replay launches it. run == 0 (an op failed or was cancelled while
 * recording): discarded. A capture that failed (an op that cannot be captured) turns graphs off
 * for the context, logged once, and returns CODER_ERR_UNSUPPORTED: nothing ran, the caller runs
 * the same ops directly. */
coder_status cuda_graph_end(cuda_ctx *c, int run);
/* Steps that updated the executable graph in place, instantiated a new one, replayed it. */
void cuda_graph_counts(const cuda_ctx *c, unsigned long long *updates, unsigned long long *instantiations,
                       unsigned long long *replays);
/* Attention's split count for n query tokens over kv_len positions (part of a recording's key). */
int cuda_attention_splits(const cuda_ctx *c, int n, int32_t kv_len, int n_heads, int n_kv_heads, int head_dim);

/* ---- matmul (mmvq.cu for n <= 8, mmq_prefill.cu above) ------------------------------------- */

/* y[t] = W @ x[t] for t < n:  W (rows, cols) of ggml `type`, rows of row_bytes each, device
 * copy in the GGUF layout; x [n][cols] f32, y [n][rows] f32. cols % 8 == 0 (cuda_type_ok). */
coder_status cuda_matmul(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t rows,
                         int64_t cols, const float *x, int n, float *y);
/* Several weights times the same x (Q/K/V, gate/up), each W[k] (rows[k], cols) into y[k] [n][rows[k]],
 * plus bias[k] [rows[k]] where not NULL. Mat-vec batches quantize x once for all, weights of one
 * type on the int8 path share one launch, and the bias is added as the rows are stored; larger
 * batches are cuda_matmul and cuda_add_bias per weight. */
#define CUDA_MMV_PARTS 4
typedef struct cuda_mmv_part {
    const void *W;
    uint64_t row_bytes;
    int64_t rows;
    float *y;
    const float *bias;
} cuda_mmv_part;
coder_status cuda_matmul_many(cuda_ctx *c, const uint32_t *types, const cuda_mmv_part *parts, int count, int64_t cols,
                              const float *x, int n);
/* The prefill paths (n > 8), exposed for tests and benchmarks: dequantize row chunks to f16 in
 * device memory + cuBLAS (mmq_prefill.cu), or the hand-written tensor-core kernel that
 * dequantizes tiles in shared memory (mma_prefill.cu). cuda_matmul picks by cuda_ctx.prefill:
 * CODER_CUDA_PREFILL=mma or cublas, else (auto) the kernel up to CUDA_MMA_AUTO_MAX_TOKENS tokens,
 * where the f16 copy of the whole matrix costs more than the GEMM saves (to be settled by the
 * bench/gpu.sh timings, docs/PERF.md). */
enum { CUDA_PREFILL_AUTO = 0, CUDA_PREFILL_MMA = 1, CUDA_PREFILL_CUBLAS = 2 };
#define CUDA_MMA_AUTO_MAX_TOKENS 64
coder_status cuda_matmul_cublas(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t rows,
                                int64_t cols, const float *x, int n, float *y);
coder_status cuda_matmul_mma(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t rows,
                             int64_t cols, const float *x, int n, float *y);
/* y[t] += W @ x[t] (the residual stream) for a mat-vec batch (n <= CUDA_MMV_MAX_TOKENS; the
 * backend's matmul_add_max_n): the add happens as each row is stored. */
coder_status cuda_matmul_add(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t rows,
                             int64_t cols, const float *x, int n, float *y);
/* Decode path only (n <= 8): int8 activations for Q4_K Q5_K Q6_K Q8_0 Q5_0 Q4_0 (mmv_int8.cu), f32
 * for the rest and for all with CODER_CUDA_MMV=f32 (mmvq.cu); + bias[row] where bias is not NULL,
 * and with accumulate the result is added to y. */
coder_status cuda_mmv(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t rows,
                      int64_t cols, const float *x, int n, float *y, const float *bias, int accumulate);
/* Whether the device layer computes with this weight type (F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1
 * Q4_K Q5_K Q6_K) at this width. */
int cuda_type_ok(uint32_t type, int64_t cols);
/* dst[r][c] = f16(dequant(W row r0+r)[c]) for r < n_rows: the prefill dequantizer (tests). */
coder_status cuda_dequant_f16(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t r0,
                              int64_t n_rows, int64_t cols, void *dst_f16);

/* ---- element-wise ops (ops.cu) ------------------------------------------------------------ */

/* x[t] = dequant(row ids[t] of E) for t < n. ids are host ints (copied through pinned memory). */
coder_status cuda_embed(cuda_ctx *c, uint32_t type, const void *E, uint64_t row_bytes, int64_t cols,
                        const int32_t *ids, int n, float *x);
/* y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w (w may be NULL); y may be x. */
/* acts != 0: a mat-vec reads y next, so its int8 form is written too (mmv_int8.cu). */
coder_status cuda_rms_norm(cuda_ctx *c, const float *x, const float *w, int n_rows, int width, float eps,
                           float *y, int acts);
/* y[t][i] += bias[i]. */
coder_status cuda_add_bias(cuda_ctx *c, float *y, const float *bias, int n, int width);
/* x[i] += y[i] for i < count. */
coder_status cuda_add(cuda_ctx *c, float *x, const float *y, int64_t count);
/* gate[i] = silu(gate[i]) * up[i] for i < count. */
coder_status cuda_swiglu(cuda_ctx *c, float *gate, const float *up, int n, int width);

/* RoPE parameters as resolved by the CPU backend's cpu_rope_init (same meaning). */
typedef struct cuda_rope_params {
    int style;                /* 0 NORM (adjacent pairs), 1 NEOX (halves)                       */
    int n_rot, head_dim;
    float theta_scale, freq_scale, ext_factor, attn_factor;
    float corr_dims[2];
    const float *freq_factors;/* device [n_rot/2] or NULL                                       */
} cuda_rope_params;
/* Rotates each head of x [n][n_heads*head_dim] in place, token t at position pos0 + t. */
coder_status cuda_rope(cuda_ctx *c, const cuda_rope_params *r, float *x, int n, int n_heads, int32_t pos0);

/* The k (1..CUDA_TOPK_MAX) largest of x[0..width) (width <= CUDA_TOPK_MAX_WIDTH) and their indices,
 * descending, the lowest index first on ties (the sampler's order); *all_finite as for argmax.
 * Copies 2k + 1 words back. */
coder_status cuda_topk(cuda_ctx *c, const float *x, int width, int k, int32_t *ids, float *vals, int *all_finite);
/* Index of the largest of x[0..n) (first on ties); copies 4 bytes back. */
coder_status cuda_argmax(cuda_ctx *c, const float *x, int n, int32_t *out, int *all_finite);

/* ---- cuBLAS (cublas_lazy.cu) ------------------------------------------------------------- */

/* Loads cuBLAS with dlopen if not yet done (no device needed): CODER_OK, or CODER_ERR_DEVICE with
 * what was not found. The library links no cuBLAS: this is the only way it is loaded. */
coder_status cuda_blas_available(void);

/* ---- KV cache and attention (attention.cu) ------------------------------------------------ */

/* Cache formats (the CPU cache's row layouts, lib/kv_cache.h): K and V F16; K and V Q8_0; K Q8_0
 * with V Q4_0. Values of coder_kv_type except F32, which the device cache does not have. */
enum { CUDA_KVF_F16 = 0, CUDA_KVF_Q8_0 = 2, CUDA_KVF_Q8_0_Q4_0 = 3 };
/* Element formats of one row (kernel template arguments). */
enum { CUDA_KV_F16 = 0, CUDA_KV_Q8_0 = 1, CUDA_KV_Q4_0 = 2 };

/* One layer of the device KV cache: n_ctx rows of k_row / v_row bytes in format fmt (the glue
 * takes the row sizes from lib/kv_cache.c's kv_row_bytes / kv_v_row_bytes, the layout's one
 * definition). */
typedef struct cuda_kv_layer {
    void *k, *v;
    int fmt;                  /* CUDA_KVF_*                                                    */
    size_t k_row, v_row;
} cuda_kv_layer;

/* Writes rows pos0.. of layer kv from k, v [n][width] f32 (F16: round to nearest even; Q8_0/Q4_0:
 * exactly lib/quant_ref.c's blocks), like the CPU cache. */
coder_status cuda_kv_write(cuda_ctx *c, const cuda_kv_layer *kv, const float *k, const float *v, int n, int32_t pos0,
                           int width);
/* Causal GQA attention of q [n][n_heads*head_dim] (token t at position pos0 + t) over cache rows
 * 0..pos0+t of layer kv; out like q. head_dim 32, 64 or 128. */
coder_status cuda_attention(cuda_ctx *c, const cuda_kv_layer *kv, const float *q, int n, int32_t pos0, int n_heads,
                            int n_kv_heads, int head_dim, float *out);

#ifdef __cplusplus
}
#endif

#endif
