/* mmq_prefill.cu - matmul dispatch (mat-vec, this file's path or mma_prefill.cu's) and the
 * dequantize + cuBLAS prefill path (batches above 8 tokens).
 *
 *   y [n][rows] = x [n][cols] @ W^T,   W (rows, cols) in its GGUF block layout
 *
 * Prefill method (first path, simple and cuBLAS-fast): convert x to f16 once, then for chunks of
 * rows that fit the context's f16 scratch (cuda_ctx_params.deq_elems), dequantize the chunk to f16
 * with deq<T> (quant.cuh; one thread per 8 elements, one 16-byte store) and multiply with
 * cublasGemmEx (f16 inputs, f32 accumulation and output, tensor cores). Everything is queued on the
 * context's stream, so a chunk's GEMM finishes before the next dequantization reuses the scratch.
 *
 * In cuBLAS's column-major terms: the f16 chunk [rc][cols] row-major is a (cols x rc) matrix A
 * with lda = cols, x_f16 [n][cols] a (cols x n) matrix B with ldb = cols, and y + r0 a (rc x n)
 * matrix C with ldc = rows; C = A^T B.
 *
 * Precision: f16 rounding of activations and dequantized weights (relative 2^-11 each) with f32
 * accumulation: relative rms error about 4e-4 against the f32 CPU path. The hand-written
 * tensor-core kernel (mma_prefill.cu) avoids the f16 copy of the weights. */
#include "common.cuh"
#include "quant.cuh"


template <int T>
__global__ void dequant_f16_kernel(const uint8_t *__restrict__ W, uint64_t row_bytes, int64_t r0, int64_t n_rows,
                                   int64_t cols, __half *__restrict__ dst) {
    const int64_t per_row = cols / 8;
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n_rows * per_row) return;
    const int64_t r = idx / per_row, i0 = (idx % per_row) * 8;
    float v[8];
    deq<T>::run(W + (uint64_t)(r0 + r) * row_bytes, i0, v);
    __align__(16) __half h[8];
#pragma unroll
    for (int k = 0; k < 8; k++) h[k] = __float2half_rn(v[k]);
    *(uint4 *)(dst + r * cols + i0) = *(const uint4 *)h;
}

__global__ void f32_to_f16_kernel(const float *__restrict__ x, __half *__restrict__ y, int64_t count) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) y[i] = __float2half_rn(x[i]);
}

extern "C" coder_status cuda_dequant_f16(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t r0,
                                         int64_t n_rows, int64_t cols, void *dst_f16) {
    if (!cuda_type_ok(type, cols))
        return coder_fail(CODER_ERR_UNSUPPORTED, "cuda dequant: weight type %u with %lld columns has no kernel", type,
                          (long long)cols);
    const int64_t work = n_rows * (cols / 8);
    if (work <= 0) return CODER_OK;
    const unsigned grid = cuda_blocks(work, 256);
    const uint8_t *w = (const uint8_t *)W;
    __half *dst = (__half *)dst_f16;
#define DQ_L(T) dequant_f16_kernel<T><<<grid, 256, 0, c->stream>>>(w, row_bytes, r0, n_rows, cols, dst)
    CQ_DISPATCH(type, DQ_L, (void)0)
#undef DQ_L
    LAUNCH_CHECK(c, "dequant_f16");
    return CODER_OK;
}

extern "C" coder_status cuda_matmul(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t rows,
                                    int64_t cols, const float *x, int n, float *y) {
    if (n <= CUDA_MMV_MAX_TOKENS) return cuda_mmv(c, type, W, row_bytes, rows, cols, x, n, y, NULL, 0);
    if (c->prefill == CUDA_PREFILL_MMA || (c->prefill == CUDA_PREFILL_AUTO && n <= CUDA_MMA_AUTO_MAX_TOKENS))
        return cuda_matmul_mma(c, type, W, row_bytes, rows, cols, x, n, y);
    return cuda_matmul_cublas(c, type, W, row_bytes, rows, cols, x, n, y);
}

extern "C" coder_status cuda_matmul_many(cuda_ctx *c, const uint32_t *types, const cuda_mmv_part *parts, int count,
                                         int64_t cols, const float *x, int n) {
    if (count < 1 || count > CUDA_MMV_PARTS) return coder_fail(CODER_ERR_INTERNAL, "cuda matmul: %d weights at once", count);
    const int mv = n <= CUDA_MMV_MAX_TOKENS;
    int int8[CUDA_MMV_PARTS], any = 0;
    for (int k = 0; k < count; k++) any |= int8[k] = mv && cuda_mmv_int8_ok(c, types[k], cols);
    /* x's int8 form once for all, before a float part's launch would end a fused one */
    coder_status st = any ? cuda_need_acts(c, x, cols, n) : CODER_OK;
    for (int k = 0, run = 1; k < count && st == CODER_OK; k += run) {
        const cuda_mmv_part *p = &parts[k];
        run = 1;
        if (int8[k]) {
            while (k + run < count && types[k + run] == types[k]) run++;   /* same type: one launch */
            st = cuda_mmv_int8_parts(c, types[k], p, run, cols, n, 0);
        } else if (mv) {
            st = cuda_mmv(c, types[k], p->W, p->row_bytes, p->rows, cols, x, n, p->y, p->bias, 0);
        } else {
            st = cuda_matmul(c, types[k], p->W, p->row_bytes, p->rows, cols, x, n, p->y);
            if (st == CODER_OK && p->bias) st = cuda_add_bias(c, p->y, p->bias, n, (int)p->rows);
        }
    }
    return st;
}

extern "C" coder_status cuda_matmul_add(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t rows,
                                        int64_t cols, const float *x, int n, float *y) {
    if (n > CUDA_MMV_MAX_TOKENS)
        return coder_fail(CODER_ERR_INTERNAL, "cuda matmul_add: %d tokens (at most %d)", n, CUDA_MMV_MAX_TOKENS);
    return cuda_mmv(c, type, W, row_bytes, rows, cols, x, n, y, NULL, 1);
}

extern "C" coder_status cuda_matmul_cublas(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t rows,
                                           int64_t cols, const float *x, int n, float *y) {
    if (!cuda_type_ok(type, cols))
        return coder_fail(CODER_ERR_UNSUPPORTED, "cuda matmul: weight type %u with %lld columns has no kernel",
                          type, (long long)cols);
    if (n > c->p.max_tokens || cols > c->p.max_cols || !c->xh || !c->deq)
        return coder_fail(CODER_ERR_INTERNAL, "cuda matmul: %d tokens x %lld columns exceed the scratch (%d x %lld)", n,
                          (long long)cols, (int)c->p.max_tokens, (long long)c->p.max_cols);
    const int64_t chunk = c->p.deq_elems / cols;
    if (chunk < 1 || rows > INT32_MAX)
        return coder_fail(CODER_ERR_INTERNAL, "cuda matmul: weight scratch of %lld f16 holds no row of %lld",
                          (long long)c->p.deq_elems, (long long)cols);
    const int64_t count = (int64_t)n * cols;
    f32_to_f16_kernel<<<cuda_blocks(count, 256), 256, 0, c->stream>>>(x, c->xh, count);
    LAUNCH_CHECK(c, "f32_to_f16");
    const float one = 1.0f, zero = 0.0f;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int64_t rc = rows - r0 < chunk ? rows - r0 : chunk;
        coder_status st = cuda_dequant_f16(c, type, W, row_bytes, r0, rc, cols, c->deq);
        if (st != CODER_OK) return st;
        CUBLAS_TRY(c->bl->gemm_ex(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rc, n, (int)cols, &one, c->deq, CUDA_R_16F,
                                (int)cols, c->xh, CUDA_R_16F, (int)cols, &zero, y + r0, CUDA_R_32F, (int)rows,
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        if (c->sync_each) CUDA_TRY(cudaStreamSynchronize(c->stream));
    }
    return CODER_OK;
}
