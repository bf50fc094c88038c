/* mmv_int8.cu - decode matrix-vector products with int8 activations: y[t] = W @ x[t], 1..8 tokens,
 * for Q4_K, Q5_K, Q6_K, Q8_0, Q5_0 and Q4_0 weights (vdot.cuh says why and how; the other types
 * and CODER_CUDA_MMV=f32 use mmvq.cu's float kernel).
 *
 * The n activation rows are quantized once (one warp per 32-block: max |x| by shuffles, then
 * q = round(x / d)) into the context's xq / xd scratch - once for all the weights that read them
 * (cuda_matmul_many: Q/K/V, gate/up) - then one warp per weight row walks its units and reduces
 * by shuffles; four rows per 128-thread block, as in mmvq.cu; weights of one type that share the
 * activations share the launch. Each weight byte is read once from device memory for all n
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
    cuda_q8_block(x[e], lane, e, t, i, xd_stride, xq, xd);
}

/* Up to CUDA_MMV_PARTS weights of one type read the same activations in one launch (Q/K/V,
 * gate/up): their rows are numbered one after another, so the 512-row K and V projections of a
 * 7B model fill the GPU together with Q instead of launching 128 blocks each. */
struct mmv8_parts {
    const uint8_t *W[CUDA_MMV_PARTS];
    uint64_t row_bytes[CUDA_MMV_PARTS];
    float *y[CUDA_MMV_PARTS];
    const float *bias[CUDA_MMV_PARTS];   /* [rows] or NULL */
    int rows[CUDA_MMV_PARTS];
    int end[CUDA_MMV_PARTS];   /* cumulative rows */
    int count;
};

template <int T, int NT>
__global__ void __launch_bounds__(MMV8_WARPS * WARP)
mmv_int8_kernel(const mmv8_parts p, int64_t cols, const int8_t *__restrict__ xq, const float *__restrict__ xd,
                int xd_stride, int accumulate) {
    const int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    int row = blockIdx.x * MMV8_WARPS + warp, k = 0;
    while (k < p.count - 1 && row >= p.end[k]) k++;
    if (row >= p.end[k]) return;   /* per warp */
    if (k > 0) row -= p.end[k - 1];
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    vdot_lane<T, NT>(p.W[k] + (uint64_t)row * p.row_bytes[k], lane, cols, xq, xd, xd_stride, acc);
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = warp_sum(acc[t]);
    if (lane == 0) {
        float *y = p.y[k];
        const float *bias = p.bias[k] ? p.bias[k] + row : NULL;
#pragma unroll
        for (int t = 0; t < NT; t++) cuda_mmv_store(y + (size_t)t * p.rows[k] + row, acc[t], bias, accumulate);
    }
}

extern "C" int cuda_mmv_int8_ok(const cuda_ctx *c, uint32_t type, int64_t cols) {
    if (!cuda_fuse_acts(c, 1, cols) || !cuda_type_ok(type, cols)) return 0;   /* the scratch holds cols; whole blocks */
    int ok = 0;
#define V8_OK(T) ok = 1
    VDOT_DISPATCH(type, V8_OK, ok = 0)
#undef V8_OK
    return ok;
}

extern "C" coder_status cuda_quant_acts(cuda_ctx *c, const float *x, int64_t cols, int n) {
    if (n < 1 || n > CUDA_MMV_MAX_TOKENS || cols % 32 != 0 || cols > c->p.max_cols)
        return coder_fail(CODER_ERR_INTERNAL, "cuda int8 activations: %d x %lld (scratch %d x %lld)", n, (long long)cols,
                          CUDA_MMV_MAX_TOKENS, (long long)c->p.max_cols);
    const int64_t n_blocks = (int64_t)n * (cols / 32);
    quant_q8_kernel<<<cuda_blocks(n_blocks, 8), 8 * WARP, 0, c->stream>>>(x, cols, n_blocks, (int)cuda_xd_stride(cols),
                                                                          c->xq, c->xd);
    LAUNCH_CHECK(c, "quant_q8");
    cuda_acts_written(c, x, n, cols);
    return CODER_OK;
}

extern "C" coder_status cuda_need_acts(cuda_ctx *c, const float *x, int64_t cols, int n) {
    if (c->xq_src == x && c->xq_n == n && c->xq_cols == cols && c->xq_at == c->launches) return CODER_OK;
    return cuda_quant_acts(c, x, cols, n);
}

/* 0 when the type has no int8 kernel (nothing launched). */
template <int NT>
static int mmv_int8_launch(uint32_t type, const mmv8_parts &p, int64_t cols, const int8_t *xq, const float *xd,
                           int xd_stride, int accumulate, cudaStream_t s) {
    const dim3 grid(cuda_blocks(p.end[p.count - 1], MMV8_WARPS)), block(MMV8_WARPS * WARP);
#define V8_L(T) mmv_int8_kernel<T, NT><<<grid, block, 0, s>>>(p, cols, xq, xd, xd_stride, accumulate)
    VDOT_DISPATCH(type, V8_L, return 0)
#undef V8_L
    return 1;
}

extern "C" coder_status cuda_mmv_int8_parts(cuda_ctx *c, uint32_t type, const cuda_mmv_part *part, int count, int64_t cols,
                                            int n, int accumulate) {
    if (count < 1 || count > CUDA_MMV_PARTS || n < 1 || n > CUDA_MMV_MAX_TOKENS || !cuda_mmv_int8_ok(c, type, cols))
        return coder_fail(CODER_ERR_INTERNAL, "cuda int8 mat-vec: %d weights of type %u, %lld columns, %d tokens", count,
                          type, (long long)cols, n);
    const int xd_stride = (int)cuda_xd_stride(cols);
    for (int t = 0; t < n;) {
        const int left = n - t, nt = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        mmv8_parts p;
        p.count = count;
        int64_t end = 0;
        for (int k = 0; k < count; k++) {
            end += part[k].rows;
            if (part[k].rows <= 0 || end > INT32_MAX - MMV8_WARPS)   /* the kernel's row numbers are int */
                return coder_fail(CODER_ERR_INTERNAL, "cuda mat-vec: %lld rows in all", (long long)end);
            p.W[k] = (const uint8_t *)part[k].W;
            p.row_bytes[k] = part[k].row_bytes;
            p.rows[k] = (int)part[k].rows;
            p.end[k] = (int)end;
            p.y[k] = part[k].y + (size_t)t * (size_t)part[k].rows;
            p.bias[k] = part[k].bias;
        }
        const int8_t *xq = c->xq + (size_t)t * (size_t)cols;
        const float *xd = c->xd + (size_t)t * (size_t)xd_stride;
        int launched;
        switch (nt) {
        case 8: launched = mmv_int8_launch<8>(type, p, cols, xq, xd, xd_stride, accumulate, c->stream); break;
        case 4: launched = mmv_int8_launch<4>(type, p, cols, xq, xd, xd_stride, accumulate, c->stream); break;
        case 2: launched = mmv_int8_launch<2>(type, p, cols, xq, xd, xd_stride, accumulate, c->stream); break;
        default: launched = mmv_int8_launch<1>(type, p, cols, xq, xd, xd_stride, accumulate, c->stream); break;
        }
        if (!launched) return coder_fail(CODER_ERR_INTERNAL, "cuda int8 mat-vec: no kernel for type %u", type);
        LAUNCH_CHECK(c, "mmv_int8");
        t += nt;
    }
    return CODER_OK;
}
