/* mmv_int8.cu - decode matrix-vector products with int8 activations: y[t] = W @ x[t], 1..8 tokens,
 * for Q4_K, Q5_K, Q6_K, Q8_0, Q5_0 and Q4_0 weights (vdot.cuh says why and how; the other types
 * and CODER_CUDA_MMV=f32 use mmvq.cu's float kernel).
 *
 * Two launches per matmul: the n activation rows are quantized once (one warp per 32-block:
 * max |x| by shuffles, then q = round(x / d)) into the context's xq / xd scratch, then one warp
 * per weight row walks its units (lane, lane + 32, ...) and reduces by shuffles; four rows per
 * 128-thread block, as in mmvq.cu. Each weight byte is read once from device memory for all n
 * tokens; the int8 activations (a quarter of the f32 bytes) are re-read from L1/L2. */
#include "common.cuh"
#include "vdot.cuh"

#define MMV8_WARPS 4

__global__ void quant_q8_kernel(const float *__restrict__ x, int64_t cols, int64_t n_blocks, int xd_stride,
                                int8_t *__restrict__ xq, float *__restrict__ xd) {
    const int64_t g = (int64_t)blockIdx.x * 8 + threadIdx.x / WARP;   /* a 32-block of some token's row */
    if (g >= n_blocks) return;                                       /* whole warps leave together */
    const int lane = threadIdx.x % WARP;
    const int64_t per_row = cols / 32, t = g / per_row, i = g % per_row, e = t * cols + i * 32 + lane;
    const float v = x[e];
    const float amax = warp_max(fabsf(v));
    const float d = cq_q8_scale(amax, __all_sync(0xffffffffu, isfinite(v)));
    xq[e] = cq_q8_value(v, d);
    if (lane == 0) xd[t * xd_stride + i] = d;
}

template <int T, int NT>
__global__ void __launch_bounds__(MMV8_WARPS * WARP)
mmv_int8_kernel(const uint8_t *__restrict__ W, uint64_t row_bytes, int rows, int64_t cols, const int8_t *__restrict__ xq,
                const float *__restrict__ xd, int xd_stride, float *__restrict__ y) {
    const int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    const int row = blockIdx.x * MMV8_WARPS + warp;
    if (row >= rows) return;   /* per warp */
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    vdot_lane<T, NT>(W + (uint64_t)row * row_bytes, lane, cols, xq, xd, xd_stride, acc);
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = warp_sum(acc[t]);
    if (lane == 0) {
#pragma unroll
        for (int t = 0; t < NT; t++) y[(size_t)t * rows + row] = acc[t];
    }
}

extern "C" int cuda_mmv_int8_ok(const cuda_ctx *c, uint32_t type, int64_t cols) {
    if (c->mmv_f32 || !c->xq || cols % 32 != 0 || cols > c->p.max_cols) return 0;
    int ok = 0;
#define V8_OK(T) ok = 1
    VDOT_DISPATCH(type, V8_OK, ok = 0)
#undef V8_OK
    return ok;
}

template <int NT>
static void mmv_int8_launch(uint32_t type, const uint8_t *W, uint64_t row_bytes, int rows, int64_t cols, const int8_t *xq,
                            const float *xd, int xd_stride, float *y, cudaStream_t s) {
    const dim3 grid(cuda_blocks(rows, MMV8_WARPS)), block(MMV8_WARPS * WARP);
#define V8_L(T) mmv_int8_kernel<T, NT><<<grid, block, 0, s>>>(W, row_bytes, rows, cols, xq, xd, xd_stride, y)
    VDOT_DISPATCH(type, V8_L, (void)0)
#undef V8_L
}

/* Called by cuda_mmv (mmvq.cu) after its checks, for types cuda_mmv_int8_ok accepts. */
extern "C" coder_status cuda_mmv_int8(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t rows,
                                      int64_t cols, const float *x, int n, float *y) {
    if (n > CUDA_MMV_MAX_TOKENS)
        return coder_fail(CODER_ERR_INTERNAL, "cuda mat-vec: %d tokens (at most %d)", n, CUDA_MMV_MAX_TOKENS);
    const int xd_stride = (int)cuda_xd_stride(cols);
    const int64_t n_blocks = (int64_t)n * (cols / 32);
    quant_q8_kernel<<<cuda_blocks(n_blocks, 8), 8 * WARP, 0, c->stream>>>(x, cols, n_blocks, xd_stride, c->xq, c->xd);
    LAUNCH_CHECK(c, "quant_q8");
    for (int t = 0; t < n;) {
        const int left = n - t, nt = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const int8_t *xq = c->xq + (size_t)t * (size_t)cols;
        const float *xd = c->xd + (size_t)t * (size_t)xd_stride;
        float *yt = y + (size_t)t * (size_t)rows;
        const uint8_t *w = (const uint8_t *)W;
        switch (nt) {
        case 8: mmv_int8_launch<8>(type, w, row_bytes, (int)rows, cols, xq, xd, xd_stride, yt, c->stream); break;
        case 4: mmv_int8_launch<4>(type, w, row_bytes, (int)rows, cols, xq, xd, xd_stride, yt, c->stream); break;
        case 2: mmv_int8_launch<2>(type, w, row_bytes, (int)rows, cols, xq, xd, xd_stride, yt, c->stream); break;
        default: mmv_int8_launch<1>(type, w, row_bytes, (int)rows, cols, xq, xd, xd_stride, yt, c->stream); break;
        }
        LAUNCH_CHECK(c, "mmv_int8");
        t += nt;
    }
    return CODER_OK;
}
