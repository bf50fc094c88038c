/* mmvq.cu - decode matrix-vector products y[t] = W @ x[t] for 1..8 tokens, every weight type.
 *
 *   W (rows, cols) in its GGUF block layout @ x [n][cols] f32 -> y [n][rows] f32
 *
 * One warp per weight row, four rows per 128-thread block. Each lane takes 8 consecutive elements
 * per step (a warp covers 256 elements: one K-quant super-block, eight 32-blocks), dequantizes them
 * in registers with deq<T> (quant.cuh) and multiplies them with the NT token rows of x (two 16-byte
 * loads each; x is re-read by every row, so it stays in L1/L2). The row's bytes are read exactly
 * once from device memory, so the kernel is bound by weight bandwidth; the step loop is unrolled
 * twice so each lane has two blocks' loads in flight. Batches above 8 go to the GEMM path
 * (mmq_prefill.cu); batches 3, 5, 6, 7 are split into 4/2/1 launches (each reads W once).
 *
 * Activations stay f32, so the result matches an exact product to float rounding. Only F32, F16,
 * BF16, Q4_1 and Q5_1 weights come here by default: the integer formats go to mmv_int8.cu (int8
 * activations and __dp4a, vdot.cuh says why); CODER_CUDA_MMV=f32 sends them here too (A/B). */
#include "common.cuh"
#include "quant.cuh"

#define MMV_WARPS 4

template <int T, int NT>
__global__ void __launch_bounds__(MMV_WARPS * WARP)
mmv_kernel(const uint8_t *__restrict__ W, uint64_t row_bytes, int rows, int cols, const float *__restrict__ x,
           float *__restrict__ y, const float *__restrict__ bias, int accumulate) {
    const int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    const int row = blockIdx.x * MMV_WARPS + warp;
    if (row >= rows) return;   /* whole warps leave together: row is per warp */
    const uint8_t *wr = W + (uint64_t)row * row_bytes;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
#pragma unroll 2
    for (int i0 = lane * 8; i0 < cols; i0 += WARP * 8) {
        float v[8];
        deq<T>::run(wr, i0, v);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float4 *xp = (const float4 *)(x + (size_t)t * cols + i0);
            const float4 a = __ldg(xp), b = __ldg(xp + 1);
            acc[t] += v[0] * a.x + v[1] * a.y + v[2] * a.z + v[3] * a.w + v[4] * b.x + v[5] * b.y + v[6] * b.z +
                      v[7] * b.w;
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = warp_sum(acc[t]);
    if (lane == 0) {
#pragma unroll
        for (int t = 0; t < NT; t++) cuda_mmv_store(y + (size_t)t * rows + row, acc[t], bias ? bias + row : NULL, accumulate);
    }
}

/* Whole blocks only: the kernels walk cols / block size blocks (a loader that let a K-quant row
 * of 288 columns through would otherwise get 256 of them multiplied, silently). */
extern "C" int cuda_type_ok(uint32_t type, int64_t cols) {
    const int64_t block = type == CQ_Q4_K || type == CQ_Q5_K || type == CQ_Q6_K || type == CQ_Q6_KG ? 256
                          : type == CQ_F32 || type == CQ_F16 || type == CQ_BF16 ? 8 : 32;
    if (cols <= 0 || cols % block != 0 || cols > (int64_t)1 << 30) return 0;
    int ok = 0;
#define MMV_OK(T) ok = 1
    CQ_DISPATCH(type, MMV_OK, ok = 0)
#undef MMV_OK
    return ok;
}

template <int NT>
static void mmv_launch(uint32_t type, const uint8_t *W, uint64_t row_bytes, int rows, int cols, const float *x,
                       float *y, const float *bias, int accumulate, cudaStream_t s) {
    const dim3 grid(cuda_blocks(rows, MMV_WARPS)), block(MMV_WARPS * WARP);
#define MMV_L(T) mmv_kernel<T, NT><<<grid, block, 0, s>>>(W, row_bytes, rows, cols, x, y, bias, accumulate)
    CQ_DISPATCH(type, MMV_L, (void)0)
#undef MMV_L
}

extern "C" coder_status cuda_mmv(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t rows,
                                 int64_t cols, const float *x, int n, float *y, const float *bias, int accumulate) {
    if (!cuda_type_ok(type, cols))
        return coder_fail(CODER_ERR_UNSUPPORTED, "cuda matmul: weight type %u with %lld columns has no kernel",
                          type, (long long)cols);
    if (rows <= 0 || rows > INT32_MAX || n < 1)
        return coder_fail(CODER_ERR_INTERNAL, "cuda matmul: %lld rows, %d tokens", (long long)rows, n);
    if (cuda_mmv_int8_ok(c, type, cols)) {
        const cuda_mmv_part part = {W, row_bytes, rows, y, bias};
        coder_status st = cuda_need_acts(c, x, cols, n);
        return st != CODER_OK ? st : cuda_mmv_int8_parts(c, type, &part, 1, cols, n, accumulate);
    }
    for (int t = 0; t < n;) {
        const int left = n - t, nt = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const float *xt = x + (size_t)t * (size_t)cols;
        float *yt = y + (size_t)t * (size_t)rows;
        const uint8_t *w = (const uint8_t *)W;
        switch (nt) {
        case 8: mmv_launch<8>(type, w, row_bytes, (int)rows, (int)cols, xt, yt, bias, accumulate, c->stream); break;
        case 4: mmv_launch<4>(type, w, row_bytes, (int)rows, (int)cols, xt, yt, bias, accumulate, c->stream); break;
        case 2: mmv_launch<2>(type, w, row_bytes, (int)rows, (int)cols, xt, yt, bias, accumulate, c->stream); break;
        default: mmv_launch<1>(type, w, row_bytes, (int)rows, (int)cols, xt, yt, bias, accumulate, c->stream); break;
        }
        LAUNCH_CHECK(c, "mmv");
        t += nt;
    }
    return CODER_OK;
}
