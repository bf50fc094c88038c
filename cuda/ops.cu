/* ops.cu - the element-wise ops of the CUDA backend: embedding lookup (with dequantization),
 * RMSNorm, bias add, residual add, SwiGLU, RoPE (NORM / NEOX, linear and YaRN scaling, frequency
 * factors) and argmax. Each follows its CPU twin in lib/cpu_ops.c / cpu_backend.c formula by
 * formula; shapes are in cuda_api.h. */
#include <math.h>
#include <limits.h>
#include <string.h>

#include "common.cuh"
#include "quant.cuh"
#include "topk.cuh"

/* ---- embedding: x[t] = dequant(E row ids[t]), one thread per 8 elements ------------------- */

template <int T>
__global__ void embed_kernel(const uint8_t *__restrict__ E, uint64_t row_bytes, int64_t cols,
                             const int32_t *__restrict__ ids, int n, float *__restrict__ x) {
    const int64_t i0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i0 >= cols) return;
    for (int t = blockIdx.y; t < n; t += gridDim.y) {   /* grid.y is capped at 65535 */
        float v[8];
        deq<T>::run(E + (uint64_t)ids[t] * row_bytes, i0, v);
        float4 *o = (float4 *)(x + (size_t)t * cols + i0);
        o[0] = make_float4(v[0], v[1], v[2], v[3]);
        o[1] = make_float4(v[4], v[5], v[6], v[7]);
    }
}

extern "C" coder_status cuda_embed(cuda_ctx *c, uint32_t type, const void *E, uint64_t row_bytes, int64_t cols,
                                   const int32_t *ids, int n, float *x) {
    if (!cuda_type_ok(type, cols))
        return coder_fail(CODER_ERR_UNSUPPORTED, "cuda embed: token_embd type %u with %lld columns has no kernel", type,
                          (long long)cols);
    if (n < 1 || n > c->p.max_tokens)
        return coder_fail(CODER_ERR_INTERNAL, "cuda embed: %d tokens for a batch of %d", n, (int)c->p.max_tokens);
    /* The pinned id buffer may still feed the previous call's copy: wait for the stream first. */
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    memcpy(c->ids_host, ids, (size_t)n * sizeof(int32_t));
    CUDA_TRY(cudaMemcpyAsync(c->ids_dev, c->ids_host, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice, c->stream));
    const dim3 grid(cuda_blocks(cols / 8, 128), (unsigned)(n < 65535 ? n : 65535));
    const uint8_t *e = (const uint8_t *)E;
#define EMB_L(T) embed_kernel<T><<<grid, 128, 0, c->stream>>>(e, row_bytes, cols, c->ids_dev, n, x)
    CQ_DISPATCH(type, EMB_L, (void)0)
#undef EMB_L
    LAUNCH_CHECK(c, "embed");
    return CODER_OK;
}

/* ---- RMSNorm: one 256-thread block per row ------------------------------------------------ */

__device__ float block_sum_256(float v, float *red /* [8] */) {
    v = warp_sum(v);
    if (threadIdx.x % WARP == 0) red[threadIdx.x / WARP] = v;
    __syncthreads();
    float s = 0.0f;
#pragma unroll
    for (int w = 0; w < 8; w++) s += red[w];
    return s;
}

/* Q: also the int8 form of y for the next mat-vec (cuda_fuse_acts; width % 32 == 0): warp w of
 * the 256 threads holds 32-block 8k + w of the row in step k, so each block is quantized by one
 * whole warp, the y values bit for bit those of the plain kernel. */
template <bool Q>
__global__ void __launch_bounds__(256) rms_norm_kernel(const float *x, const float *__restrict__ w, int width, float eps,
                                                       float *y, int8_t *xq, float *xd, int xd_stride) {
    __shared__ float red[8];
    const float *xr = x + (size_t)blockIdx.x * width;
    float *yr = y + (size_t)blockIdx.x * width;
    float s = 0.0f;
    for (int i = threadIdx.x; i < width; i += 256) s += xr[i] * xr[i];
    s = block_sum_256(s, red);
    const float scale = 1.0f / sqrtf(s / (float)width + eps);
    /* Each element is read and written by the same thread: y may alias x. */
    for (int i = threadIdx.x; i < width; i += 256) {
        const float v = w ? (xr[i] * scale) * w[i] : xr[i] * scale;
        yr[i] = v;
        if (Q) cuda_q8_block(v, threadIdx.x % WARP, (int64_t)blockIdx.x * width + i, blockIdx.x, i / 32, xd_stride, xq, xd);
    }
}

extern "C" coder_status cuda_rms_norm(cuda_ctx *c, const float *x, const float *w, int n_rows, int width, float eps,
                                      float *y, int acts) {
    if (n_rows <= 0) return CODER_OK;
    if (acts && cuda_fuse_acts(c, n_rows, width)) {
        rms_norm_kernel<true><<<(unsigned)n_rows, 256, 0, c->stream>>>(x, w, width, eps, y, c->xq, c->xd,
                                                                       (int)cuda_xd_stride(width));
        LAUNCH_CHECK(c, "rms_norm+q8");
        cuda_acts_written(c, y, n_rows, width);
        return CODER_OK;
    }
    rms_norm_kernel<false><<<(unsigned)n_rows, 256, 0, c->stream>>>(x, w, width, eps, y, NULL, NULL, 0);
    LAUNCH_CHECK(c, "rms_norm");
    return CODER_OK;
}

/* ---- bias, residual add, SwiGLU ------------------------------------------------------------ */

__global__ void add_bias_kernel(float *y, const float *__restrict__ b, int width, int64_t count) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) y[i] += b[i % width];
}

__global__ void add_kernel(float *x, const float *__restrict__ y, int64_t count) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) x[i] += y[i];
}

/* Q: also the int8 form for the down projection (width % 32 == 0: a warp's 32 elements are one
 * 32-block of one token, and whole warps pass or fail i < count). */
template <bool Q>
__global__ void swiglu_kernel(float *gate, const float *__restrict__ up, int64_t count, int width, int8_t *xq, float *xd,
                              int xd_stride) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) {
        const float g = gate[i];
        const float v = g / (1.0f + expf(-g)) * up[i];
        gate[i] = v;
        if (Q) cuda_q8_block(v, threadIdx.x % WARP, i, i / width, (i % width) / 32, xd_stride, xq, xd);
    }
}

extern "C" coder_status cuda_add_bias(cuda_ctx *c, float *y, const float *bias, int n, int width) {
    const int64_t count = (int64_t)n * width;
    if (count <= 0) return CODER_OK;
    add_bias_kernel<<<cuda_blocks(count, 256), 256, 0, c->stream>>>(y, bias, width, count);
    LAUNCH_CHECK(c, "add_bias");
    return CODER_OK;
}

extern "C" coder_status cuda_add(cuda_ctx *c, float *x, const float *y, int64_t count) {
    if (count <= 0) return CODER_OK;
    add_kernel<<<cuda_blocks(count, 256), 256, 0, c->stream>>>(x, y, count);
    LAUNCH_CHECK(c, "add");
    return CODER_OK;
}

extern "C" coder_status cuda_swiglu(cuda_ctx *c, float *gate, const float *up, int n, int width) {
    const int64_t count = (int64_t)n * width;
    if (count <= 0) return CODER_OK;
    if (cuda_fuse_acts(c, n, width)) {
        swiglu_kernel<true><<<cuda_blocks(count, 256), 256, 0, c->stream>>>(gate, up, count, width, c->xq, c->xd,
                                                                           (int)cuda_xd_stride(width));
        LAUNCH_CHECK(c, "swiglu+q8");
        cuda_acts_written(c, gate, n, width);
        return CODER_OK;
    }
    swiglu_kernel<false><<<cuda_blocks(count, 256), 256, 0, c->stream>>>(gate, up, count, width, NULL, NULL, 0);
    LAUNCH_CHECK(c, "swiglu");
    return CODER_OK;
}

/* ---- RoPE: one thread per (token, pair), looping over the heads ----------------------------
 * The angle is built exactly as lib/cpu_ops.c rope_cache does: theta = pos, multiplied by
 * theta_scale once per pair (iterated f32 products, not powf), so both backends agree. */

__global__ void rope_kernel(cuda_rope_params r, float *x, int n, int n_heads, int32_t pos0, const int32_t *pos_dev) {
    const int half = r.n_rot / 2;
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n * half) return;
    const int t = idx / half, j = idx % half;
    float theta = (float)(step_pos(pos_dev, pos0) + t);
    for (int i = 0; i < j; i++) theta *= r.theta_scale;
    const float ff = r.freq_factors ? r.freq_factors[j] : 1.0f;
    const float theta_extrap = theta / ff;
    const float theta_interp = r.freq_scale * theta_extrap;
    float th = theta_interp, mscale = r.attn_factor;
    if (r.ext_factor != 0.0f) {
        const float y = ((float)j - r.corr_dims[0]) / fmaxf(0.001f, r.corr_dims[1] - r.corr_dims[0]);
        const float ramp = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * r.ext_factor;
        th = theta_interp * (1.0f - ramp) + theta_extrap * ramp;
        mscale *= 1.0f + 0.1f * logf(1.0f / r.freq_scale);
    }
    const float cs = cosf(th) * mscale, sn = sinf(th) * mscale;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + ((size_t)t * n_heads + h) * r.head_dim;
        const int i0 = r.style == 1 ? j : 2 * j, i1 = r.style == 1 ? j + half : 2 * j + 1;
        const float a = v[i0], b = v[i1];
        v[i0] = a * cs - b * sn;
        v[i1] = a * sn + b * cs;
    }
}

extern "C" coder_status cuda_rope(cuda_ctx *c, const cuda_rope_params *r, float *x, int n, int n_heads, int32_t pos0) {
    const int64_t work = (int64_t)n * (r->n_rot / 2);
    if (work <= 0) return CODER_OK;
    rope_kernel<<<cuda_blocks(work, 128), 128, 0, c->stream>>>(*r, x, n, n_heads, pos0, ctx_pos_dev(c));
    LAUNCH_CHECK(c, "rope");
    return CODER_OK;
}

/* ---- argmax: one 1024-thread block; the first index on ties, NaN never wins; out[1] = 1 when
 * the row holds a NaN or an infinity (the host's finiteness check, without copying the row) ---- */

__global__ void __launch_bounds__(1024) argmax_kernel(const float *__restrict__ x, int n, int32_t *out) {
    __shared__ float bv[32];
    __shared__ int bi[32];
    float best = -INFINITY;
    int idx = n;   /* n = "none yet": loses every tie-break */
    int bad = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = x[i];
        bad |= !isfinite(v);
        if (v > best || (idx == n && v == best)) { best = v; idx = i; }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ov > best || (ov == best && oi < idx)) { best = ov; idx = oi; }
    }
    if (threadIdx.x % WARP == 0) { bv[threadIdx.x / WARP] = best; bi[threadIdx.x / WARP] = idx; }
    bad = __syncthreads_or(bad);
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x / WARP); w++)
            if (bv[w] > best || (bv[w] == best && bi[w] < idx)) { best = bv[w]; idx = bi[w]; }
        out[0] = idx < n ? idx : 0;
        out[1] = bad;
    }
}

extern "C" coder_status cuda_argmax(cuda_ctx *c, const float *x, int n, int32_t *out, int *all_finite) {
    if (n <= 0) return coder_fail(CODER_ERR_INTERNAL, "cuda argmax of %d values", n);
    argmax_kernel<<<1, 1024, 0, c->stream>>>(x, n, c->argmax_dev);
    LAUNCH_CHECK(c, "argmax");
    CUDA_TRY(cudaMemcpyAsync(c->argmax_host, c->argmax_dev, 2 * sizeof(int32_t), cudaMemcpyDeviceToHost, c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    *out = c->argmax_host[0];
    *all_finite = c->argmax_host[1] == 0;
    return CODER_OK;
}

/* ---- top-k of a logits row (sampling: k pairs back instead of the row) ---------------------- *
 * Pass 1: block b sorts entries [4096 b, 4096 (b + 1)) in shared memory (bitonic, by the sampler's
 * order: larger value first, the lower index on ties; padding last) and keeps its first k, plus
 * whether its entries were all finite. Pass 2: one block sorts those <= 64 x 64 candidates the
 * same way and writes the first k and the flag. Rows up to CUDA_TOPK_MAX_WIDTH. */

/* v/id [CUDA_TOPK_CHUNK] in shared memory, sorted in place (topk.cuh; the caller has written them). */
__device__ void topk_sort_chunk(float *v, int *id) {
    for (int size = 2; size <= CUDA_TOPK_CHUNK; size <<= 1)
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            __syncthreads();
            for (int t = threadIdx.x; t < CUDA_TOPK_CHUNK / 2; t += blockDim.x) topk_exchange(v, id, size, stride, t);
        }
    __syncthreads();
}

__global__ void __launch_bounds__(512) topk_pass1_kernel(const float *__restrict__ x, int width, int k, float *cv, int *ci,
                                                         int *bad) {
    __shared__ float v[CUDA_TOPK_CHUNK];
    __shared__ int id[CUDA_TOPK_CHUNK];
    const int base = blockIdx.x * CUDA_TOPK_CHUNK;
    int nf = 0;
    for (int i = threadIdx.x; i < CUDA_TOPK_CHUNK; i += blockDim.x) {
        const bool in = base + i < width;
        const float f = in ? x[base + i] : -INFINITY;
        nf |= in && !isfinite(f);
        v[i] = f;
        id[i] = in ? base + i : INT_MAX;   /* padding ranks after every entry, -Inf ones too */
    }
    nf = __syncthreads_or(nf);
    topk_sort_chunk(v, id);
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        cv[blockIdx.x * k + i] = v[i];
        ci[blockIdx.x * k + i] = id[i];
    }
    if (threadIdx.x == 0) bad[blockIdx.x] = nf;
}

__global__ void __launch_bounds__(512) topk_pass2_kernel(const float *__restrict__ cv, const int *__restrict__ ci, int n,
                                                         int k, const int *__restrict__ bad, int n_bad, int32_t *out) {
    __shared__ float v[CUDA_TOPK_CHUNK];
    __shared__ int id[CUDA_TOPK_CHUNK];
    int nf = 0;
    for (int i = threadIdx.x; i < CUDA_TOPK_CHUNK; i += blockDim.x) {
        v[i] = i < n ? cv[i] : -INFINITY;
        id[i] = i < n ? ci[i] : INT_MAX;
        if (i < n_bad) nf |= bad[i];
    }
    nf = __syncthreads_or(nf);
    topk_sort_chunk(v, id);
    /* out: [k] ids, [k] values (as bits), the flag */
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        out[i] = id[i];
        out[k + i] = __float_as_int(v[i]);
    }
    if (threadIdx.x == 0) out[2 * k] = nf;
}

extern "C" coder_status cuda_topk(cuda_ctx *c, const float *x, int width, int k, int32_t *ids, float *vals,
                                  int *all_finite) {
    if (k < 1 || k > CUDA_TOPK_MAX || k > width || width > CUDA_TOPK_MAX_WIDTH)
        return coder_fail(CODER_ERR_INTERNAL, "cuda topk: k = %d of %d", k, width);
    const int blocks = (int)cuda_blocks(width, CUDA_TOPK_CHUNK);
    topk_pass1_kernel<<<blocks, 512, 0, c->stream>>>(x, width, k, c->topk_val, c->topk_id, c->topk_bad);
    LAUNCH_CHECK(c, "topk pass 1");
    topk_pass2_kernel<<<1, 512, 0, c->stream>>>(c->topk_val, c->topk_id, blocks * k, k, c->topk_bad, blocks, c->topk_dev);
    LAUNCH_CHECK(c, "topk pass 2");
    CUDA_TRY(cudaMemcpyAsync(c->topk_host, c->topk_dev, (size_t)(2 * k + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost,
                             c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    memcpy(ids, c->topk_host, (size_t)k * sizeof *ids);
    memcpy(vals, c->topk_host + k, (size_t)k * sizeof *vals);
    *all_finite = c->topk_host[2 * k] == 0;
    return CODER_OK;
}
