/* common.cuh - what every .cu file in cuda/ shares: the per-session context, status-returning
 * CUDA_TRY / LAUNCH_CHECK macros, and warp reductions.
 *
 * Error policy: no CUDA error aborts. CUDA_TRY(call) returns a coder_status from the enclosing
 * function with "file:line call: cudaErrorName (string)" recorded through coder_fail. */
#ifndef CODER_CUDA_COMMON_CUH
#define CODER_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_api.h"
#include "vdot.cuh"

extern "C" coder_status coder_fail(coder_status status, const char *fmt, ...);
extern "C" void coder_log(coder_log_level level, const char *fmt, ...);
extern "C" void *coder_calloc(size_t count, size_t size);
extern "C" void coder_mfree(void *p);

/* The status a CUDA error maps to: sticky faults lose the context (the session must be freed). */
static inline coder_status cuda_status_of(cudaError_t e) {
    switch (e) {
    case cudaErrorMemoryAllocation: return CODER_ERR_DEVICE_NOMEM;
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
        return CODER_ERR_DEVICE_LOST;
    default: return CODER_ERR_DEVICE;
    }
}

static inline coder_status cuda_fail_err(cudaError_t e, const char *file, int line, const char *what) {
    return coder_fail(cuda_status_of(e), "%s:%d %s: %s (%s)", file, line, what, cudaGetErrorName(e),
                      cudaGetErrorString(e));
}

#define CUDA_TRY(call)                                                                             \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) return cuda_fail_err(e_, __FILE__, __LINE__, #call);                \
    } while (0)

/* After every kernel launch: the launch error, and in CODER_CUDA_SYNC=1 mode the kernel's own. */
#define LAUNCH_CHECK(c, name)                                                                      \
    do {                                                                                           \
        (c)->launches++;                                                                           \
        cudaError_t e_ = cudaGetLastError();                                                       \
        if (e_ == cudaSuccess && (c)->sync_each) e_ = cudaStreamSynchronize((c)->stream);           \
        if (e_ != cudaSuccess) return cuda_fail_err(e_, __FILE__, __LINE__, "kernel " name);       \
    } while (0)

/* The cuBLAS entry points we use, resolved by dlopen on first use (cublas_lazy.cu says why). */
struct cuda_blas_api {
    cublasStatus_t (*create)(cublasHandle_t *);
    cublasStatus_t (*destroy)(cublasHandle_t);
    cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*set_math_mode)(cublasHandle_t, cublasMath_t);
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                              const void *, cudaDataType, int, const void *, cudaDataType, int, const void *, void *,
                              cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
};
/* The loaded API, or CODER_ERR_DEVICE naming what was not found (*out NULL). Thread-safe. */
extern "C" coder_status cuda_blas(const cuda_blas_api **out);

#define CUBLAS_TRY(call)                                                                           \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return coder_fail(s_ == CUBLAS_STATUS_ALLOC_FAILED ? CODER_ERR_DEVICE_NOMEM : CODER_ERR_DEVICE, \
                              "%s:%d %s: cuBLAS status %d", __FILE__, __LINE__, #call, (int)s_);   \
    } while (0)

/* Per-session state. Scratch is sized at creation (cuda_ctx_params), so ops allocate nothing. */
struct cuda_ctx {
    cudaStream_t stream;
    cublasHandle_t blas;
    const cuda_blas_api *bl;  /* cuda_blas(): set when blas is                                  */
    int sync_each;            /* CODER_CUDA_SYNC=1                                              */
    int prefill;              /* CUDA_PREFILL_*: CODER_CUDA_PREFILL=mma|cublas, else auto       */
    int mmv_f32;              /* CODER_CUDA_MMV=f32: the float mat-vec for every type (A/B)     */
    int n_sm;
    cuda_ctx_params p;
    int32_t *ids_dev;         /* [max_tokens] embedding ids                                    */
    int32_t *ids_host;        /* pinned [max_tokens]                                           */
    int32_t *argmax_dev;      /* [2]                                                           */
    int32_t *argmax_host;     /* pinned [2]                                                    */
    float *topk_val;          /* [CUDA_TOPK_CHUNK] pass 1's candidates (ops.cu cuda_topk)        */
    int *topk_id;             /* [CUDA_TOPK_CHUNK]                                               */
    int *topk_bad;            /* [CUDA_TOPK_MAX_WIDTH / CUDA_TOPK_CHUNK] per-block not-finite flags */
    int32_t *topk_dev;        /* [2 CUDA_TOPK_MAX + 1] the result                                */
    int32_t *topk_host;       /* pinned, the same                                                */
    __half *xh;               /* [max_tokens][max_cols] f16 activations for the GEMM path      */
    __half *deq;              /* [deq_elems] f16 dequantized weight rows                        */
    int8_t *xq;               /* [CUDA_MMV_MAX_TOKENS][max_cols] int8 activations (mmv_int8.cu) */
    float *xd;                /* [CUDA_MMV_MAX_TOKENS][cuda_xd_stride(max_cols)] their scales   */
    /* Kernels launched and device copies issued on the stream (LAUNCH_CHECK, cuda_d2d/h2d, graph
     * launches): xq/xd hold the int8 form of xq_src [xq_n][xq_cols] while launches == xq_at,
     * i.e. when the op that wrote it (a fused RMSNorm or SwiGLU, or a quantization) was the last
     * thing on the stream, so nothing can have changed xq_src since. */
    unsigned long long launches, xq_at;
    const float *xq_src;
    int xq_n;
    int64_t xq_cols;
    float *att_part;          /* [att_part_floats] split-KV partial results                     */
    size_t att_part_floats;
    /* decode steps as CUDA graphs (graph.cu) */
    cudaGraphExec_t graph_exec; /* the last step's executable graph, updated in place each step  */
    int graph_off;            /* CODER_CUDA_GRAPH=0, CODER_CUDA_SYNC=1 or a failed capture      */
    int capturing;
    int replaying;            /* cuda_graph_begin chose to relaunch the recorded step          */
    uint64_t graph_key;       /* what the recorded step was made for (cuda_graph_begin)        */
    int32_t *pos_dev;         /* [1] the step's position, set before each graph launch          */
    int pos_from_dev;         /* while recording: kernels read the position from pos_dev        */
    unsigned long long graph_updates, graph_instantiations, graph_replays;   /* tests and -vv */
};

#define WARP 32

extern "C" coder_status cuda_mmv_int8_parts(cuda_ctx *c, uint32_t type, const cuda_mmv_part *part, int count, int64_t cols,
                                            int n, int accumulate);

/* A mat-vec's result for one row and token: + bias (Q/K/V), or added to what y holds (the
 * residual stream): the same float additions, in the same order, as the add_bias / add ops the
 * fusion replaces, so fused and separate give the same bits. */
__device__ __forceinline__ void cuda_mmv_store(float *y, float v, const float *bias, int accumulate) {
    if (bias) v += *bias;
    *y = accumulate ? *y + v : v;
}

/* A decode step's position: the launch argument, or in a recorded (replayable) step the device
 * copy cuda_graph_begin sets before each launch. */
__device__ __forceinline__ int32_t step_pos(const int32_t *pos_dev, int32_t pos0) { return pos_dev ? *pos_dev : pos0; }
static inline const int32_t *ctx_pos_dev(const cuda_ctx *c) { return c->pos_from_dev ? c->pos_dev : NULL; }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* mmv_int8.cu: whether the int8-activation mat-vec takes this type and width in c; the n
 * activation rows x [n][cols] to the context's int8 scratch; and weights of one type times those
 * (each part's y [n][rows]). */
extern "C" int cuda_mmv_int8_ok(const cuda_ctx *c, uint32_t type, int64_t cols);
extern "C" coder_status cuda_quant_acts(cuda_ctx *c, const float *x, int64_t cols, int n);
/* cuda_quant_acts unless the last op on the stream left x's int8 form in the scratch. */
extern "C" coder_status cuda_need_acts(cuda_ctx *c, const float *x, int64_t cols, int n);
/* Whether an op writing y [n][cols] should also write its int8 form (then it calls
 * cuda_acts_written after its launch): mat-vec batches of widths the scratch holds. */
static inline int cuda_fuse_acts(const cuda_ctx *c, int n, int64_t cols) {
    return c->xq && !c->mmv_f32 && n >= 1 && n <= CUDA_MMV_MAX_TOKENS && cols % 32 == 0 && cols <= c->p.max_cols;
}
static inline void cuda_acts_written(cuda_ctx *c, const float *y, int n, int64_t cols) {
    c->xq_src = y;
    c->xq_n = n;
    c->xq_cols = cols;
    c->xq_at = c->launches;
}
/* The quantizer's per-warp step, shared by quant_q8_kernel and the fused RMSNorm / SwiGLU: the 32
 * lanes hold one block's values v (element e of the [n][cols] activations, block (t, i)). */
__device__ __forceinline__ void cuda_q8_block(float v, int lane, int64_t e, int64_t t, int64_t i, int xd_stride,
                                              int8_t *xq, float *xd) {
    const float amax = warp_max(fabsf(v));
    const float d = cq_q8_scale(amax, __all_sync(0xffffffffu, isfinite(v)));
    xq[e] = cq_q8_value(v, d);
    if (lane == 0) xd[t * xd_stride + i] = d;
}

static inline unsigned cuda_blocks(int64_t n, int per) { return (unsigned)((n + per - 1) / per); }

#endif
