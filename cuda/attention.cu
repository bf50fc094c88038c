/* attention.cu - the KV cache writes (F16, Q8_0, Q8_0 K + Q4_0 V: the CPU cache's row layouts,
 * kv_cache.h) and flash-attention style causal GQA attention, one kernel for decode and prefill,
 * head_dim 32 (the tiny test presets), 64 or 128.
 *
 *   out[t] head h = softmax(q_h . K_g^T / sqrt(hd)) V_g over cache rows 0 .. pos0+t,
 *   g = h / G with G = n_heads / n_kv_heads (consecutive heads share a KV head)
 *
 * Work decomposition. The query rows of one KV head g are flattened as rho = t*G + (h - g*G), so
 * the G heads that read the same K/V rows are processed together (decode: all G heads of a KV head
 * in one block; prefill: 32 consecutive (token, head) rows per block). grid = (row tiles,
 * n_kv_heads, splits): split s covers cache positions [s*chunk, (s+1)*chunk); decode at long
 * contexts uses many splits (split-KV / flash-decoding) so every multiprocessor streams part of
 * the cache; the partial results (m, l, acc) are merged by attn_combine_kernel.
 *
 * Inside a block (4 warps; warp w owns RPW consecutive rows): the rows' q (pre-scaled by
 * 1/sqrt(hd)) sit in shared memory as f32; key tiles of 32 positions of K and V are staged in
 * shared memory with 16-byte global loads (K rows padded by one word so that lane = key reads are
 * bank-conflict free). Lane j scores key j of the tile for each of its warp's rows, then an online
 * softmax (running max m, sum l, f32 accumulators acc[hd/32] per lane, lane owning dims
 * lane + 32e) folds the tile in. Masked keys (beyond the row's position or the cache end) score
 * -inf and their V rows are zero-filled, so unwritten cache memory never reaches the sums.
 * Quantized cache rows are dequantized while staging (to the same F16 tiles), so the inner loops
 * are the same for every cache format.
 * Scalar FMA arithmetic: correct first; a tensor-core (mma) prefill tile is the next step. */
#include <math.h>

#include "common.cuh"

#define ATT_WARPS 4
#define ATT_TK 32

/* ---- KV cache write ------------------------------------------------------------------------- */

/* F16 rows: f32 -> f16, round to nearest even */
__global__ void kv_write_kernel(__half *kc, __half *vc, const float *__restrict__ k, const float *__restrict__ v,
                                int64_t count, int width, int32_t pos0, const int32_t *pos_dev) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t base = (int64_t)step_pos(pos_dev, pos0) * width;
    if (i < count) {
        kc[base + i] = __float2half_rn(k[i]);
        vc[base + i] = __float2half_rn(v[i]);
    }
}

/* Quantized rows, one warp per 32-value block, lane j holding value j, with exactly the arithmetic
 * of lib/quant_ref.c so the device cache holds the CPU cache's bytes for the same inputs:
 *   Q8_0: d = amax / 127, q = (int8) roundf(x * (1/d));
 *   Q4_0: d = (signed value of largest magnitude, first on ties) / -8,
 *         q = min(15, (int)(x * (1/d) + 8.5)), value j in the low nibble of byte j, j+16 high.
 * A block holding NaN/Inf becomes zeros with a NaN scale (quant_ref.c's poison). */
template <int T>
__global__ void kv_quant_kernel(unsigned char *cache, const float *__restrict__ x, int64_t n_blocks, int blocks_per_row,
                                size_t row_bytes, int32_t pos0, const int32_t *pos_dev) {
    constexpr int BB = T == CUDA_KV_Q8_0 ? 34 : 18;   /* block bytes */
    const int64_t wid = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / WARP;
    const int lane = threadIdx.x % WARP;
    if (wid >= n_blocks) return;   /* warp-uniform */
    const int64_t t = wid / blocks_per_row, b = wid % blocks_per_row;
    unsigned char *blk = cache + (size_t)(step_pos(pos_dev, pos0) + t) * row_bytes + (size_t)b * BB;
    const float v = x[wid * WARP + lane];
    if (!__all_sync(0xffffffffu, isfinite(v))) {
        if (lane == 0) *(__half *)blk = __ushort_as_half((unsigned short)0x7e00);
        if (lane < BB - 2) blk[2 + lane] = 0;
        return;
    }
    const float amax = warp_max(fabsf(v));
    if (T == CUDA_KV_Q8_0) {
        const float d = amax / 127.f, id = d != 0.0f ? 1.0f / d : 0.0f;
        blk[2 + lane] = (unsigned char)(int8_t)roundf(v * id);
        if (lane == 0) *(__half *)blk = __float2half_rn(d);
    } else {
        const unsigned first = __ffs(__ballot_sync(0xffffffffu, fabsf(v) == amax)) - 1;
        const float mx = amax == 0.0f ? 0.0f : __shfl_sync(0xffffffffu, v, first);
        const float d = mx / -8, id = d != 0.0f ? 1.0f / d : 0.0f;
        /* two roundings, as quant_ref.c (C, no contraction): a fused multiply-add changes a nibble
         * about once in 370,000 blocks */
        const int q = min(15, (int)(int8_t)__fadd_rn(__fmul_rn(v, id), 8.5f));
        const int hi = __shfl_down_sync(0xffffffffu, q, 16);
        if (lane < 16) blk[2 + lane] = (unsigned char)(q | (hi << 4));
        if (lane == 0) *(__half *)blk = __float2half_rn(d);
    }
}

extern "C" coder_status cuda_kv_write(cuda_ctx *c, const cuda_kv_layer *kv, const float *k, const float *v, int n,
                                      int32_t pos0, int width) {
    const int64_t count = (int64_t)n * width;
    if (count <= 0) return CODER_OK;
    if (kv->fmt == CUDA_KVF_F16) {
        kv_write_kernel<<<cuda_blocks(count, 256), 256, 0, c->stream>>>((__half *)kv->k, (__half *)kv->v, k, v, count,
                                                                       width, pos0, ctx_pos_dev(c));
        LAUNCH_CHECK(c, "kv_write");
        return CODER_OK;
    }
    if (width % 32)
        return coder_fail(CODER_ERR_INTERNAL, "cuda kv_write: quantized cache row width %d is not a multiple of 32", width);
    const int bpr = width / 32;
    const int64_t nb = (int64_t)n * bpr, threads = nb * WARP;
    kv_quant_kernel<CUDA_KV_Q8_0><<<cuda_blocks(threads, 256), 256, 0, c->stream>>>((unsigned char *)kv->k, k, nb, bpr,
                                                                                   kv->k_row, pos0, ctx_pos_dev(c));
    LAUNCH_CHECK(c, "kv_write K q8_0");
    if (kv->fmt == CUDA_KVF_Q8_0)
        kv_quant_kernel<CUDA_KV_Q8_0><<<cuda_blocks(threads, 256), 256, 0, c->stream>>>((unsigned char *)kv->v, v, nb, bpr,
                                                                                       kv->v_row, pos0, ctx_pos_dev(c));
    else
        kv_quant_kernel<CUDA_KV_Q4_0><<<cuda_blocks(threads, 256), 256, 0, c->stream>>>((unsigned char *)kv->v, v, nb, bpr,
                                                                                       kv->v_row, pos0, ctx_pos_dev(c));
    LAUNCH_CHECK(c, "kv_write V");
    return CODER_OK;
}

/* 8 consecutive values c0 .. c0+7 (c0 % 8 == 0) of a cache row, as loaded: the attention kernel
 * issues a whole tile's loads into these before it needs them (load) and converts them to 8
 * halves when it stages the tile (halves). The quantized formats keep their bytes as four 16-bit
 * loads (the blocks are only 2-byte aligned) and the scale, so nothing waits on a load until the
 * conversion. A chunk that was not loaded (`clear`) converts to +0.0 in every value. */
template <int T> struct kv_chunk;

template <> struct kv_chunk<CUDA_KV_F16> {
    uint4 u;
    __device__ __forceinline__ void load(const unsigned char *row, int c0) { u = *(const uint4 *)(row + 2 * (size_t)c0); }
    __device__ __forceinline__ void clear() { u = make_uint4(0, 0, 0, 0); }
    __device__ __forceinline__ uint4 halves() const { return u; }
};

/* Q8_0 (34-byte blocks) and Q4_0 (18-byte blocks): the f16 scale and the 8 quant bytes (Q4_0:
 * the 8 bytes holding the values' nibbles, low nibbles for values 0-15 of a block, high for 16-31). */
template <int T> struct kv_chunk_q {
    static constexpr int BB = T == CUDA_KV_Q8_0 ? 34 : 18;
    unsigned short q[4];
    unsigned short d;
    bool hi;     /* Q4_0: the values are the high nibbles */
    bool none;   /* cleared: all +0 */
    __device__ __forceinline__ void load(const unsigned char *row, int c0) {
        const unsigned char *b = row + (size_t)(c0 / 32) * BB;
        const int w = c0 % 32, off = T == CUDA_KV_Q8_0 ? w : w % 16;
        const unsigned short *qs = (const unsigned short *)(b + 2 + off);
        d = *(const unsigned short *)b;
#pragma unroll
        for (int j = 0; j < 4; j++) q[j] = qs[j];
        hi = T == CUDA_KV_Q4_0 && w >= 16;
        none = false;
    }
    __device__ __forceinline__ void clear() { none = true; }
    __device__ __forceinline__ uint4 halves() const {
        if (none) return make_uint4(0, 0, 0, 0);
        union { uint4 u; __half h[8]; } r;
        const float df = __half2float(__ushort_as_half(d));
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int byte = (q[j / 2] >> (8 * (j % 2))) & 0xff;
            if (T == CUDA_KV_Q8_0) {
                r.h[j] = __float2half_rn(df * (float)(int8_t)byte);
            } else {
                const int v = hi ? byte >> 4 : byte & 15;
                r.h[j] = __float2half_rn(df * (float)(v - 8));
            }
        }
        return r.u;
    }
};
template <> struct kv_chunk<CUDA_KV_Q8_0> : kv_chunk_q<CUDA_KV_Q8_0> {};
template <> struct kv_chunk<CUDA_KV_Q4_0> : kv_chunk_q<CUDA_KV_Q4_0> {};

/* ---- attention ------------------------------------------------------------------------------ */

struct att_args {
    const unsigned char *kc, *vc;   /* one layer: [n_ctx] rows of k_row / v_row bytes         */
    size_t k_row, v_row;
    const float *q;           /* [n][n_heads*hd]                                             */
    float *out;               /* [n][n_heads*hd]                                             */
    float *part;              /* [splits][n][n_heads][hd + 2] (m, l, acc) when splits > 1    */
    int n, n_heads, G, kv_width;
    int32_t pos0;
    const int32_t *pos_dev;   /* in a recorded step: where pos0 is (step_pos)                */
    int splits;               /* blocks along the context (grid z); the last ones may be empty */
    float scale;
};

/* Positions per split: the context over `splits` blocks, in whole 32-key tiles. Computed from the
 * length on the device, so a recorded step stays right as the context grows (att_splits). */
__host__ __device__ __forceinline__ int32_t att_chunk(int32_t kv_len, int splits) {
    const int32_t chunk = (kv_len + splits - 1) / splits;
    return (chunk + ATT_TK - 1) / ATT_TK * ATT_TK;
}

template <int HD, int RPW, int KT, int VT>
__global__ void __launch_bounds__(ATT_WARPS * WARP) attn_kernel(const att_args a) {
    constexpr int R = ATT_WARPS * RPW;        /* rows per block           */
    constexpr int E = HD / WARP;              /* accumulator dims per lane */
    constexpr int KW = HD / 2 + 1;            /* padded K row in words     */
    __shared__ __align__(16) float qs[R][HD];
    __shared__ uint32_t ks[ATT_TK][KW];
    __shared__ __align__(16) __half vs[ATT_TK][HD];

    const int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    const int g = blockIdx.y, s = blockIdx.z;
    const int n_rows = a.n * a.G;
    const int rho0 = blockIdx.x * R;
    const int q_width = a.n_heads * HD;

    /* q rows of this block, scaled; rows past the end are zero (and never written out) */
    for (int i = threadIdx.x; i < R * HD; i += blockDim.x) {
        const int r = i / HD, d = i % HD, rho = rho0 + r;
        float val = 0.0f;
        if (rho < n_rows) {
            const int t = rho / a.G, h = g * a.G + rho % a.G;
            val = a.q[(size_t)t * q_width + (size_t)h * HD + d] * a.scale;
        }
        qs[r][d] = val;
    }
    const int rho_last = min(rho0 + R, n_rows) - 1;
    const int32_t pos0 = step_pos(a.pos_dev, a.pos0), chunk = att_chunk(pos0 + a.n, a.splits);
    const int32_t block_end = pos0 + rho_last / a.G + 1;          /* keys < block_end matter */
    const int32_t kv_lo = s * chunk, kv_hi = min(kv_lo + chunk, block_end);

    float m[RPW], l[RPW], acc[RPW][E];
    int32_t row_pos[RPW];
#pragma unroll
    for (int i = 0; i < RPW; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) acc[i][e] = 0.0f;
        const int rho = rho0 + warp * RPW + i;
        row_pos[i] = rho < n_rows ? pos0 + rho / a.G : -1;   /* -1: no key is visible */
    }

    /* Tile staging, software-pipelined: a thread's NC 16-byte chunks of K and of V for the next
     * tile are loaded into registers (all of them issued together) before the current tile's
     * arithmetic, and stored to shared memory after it. A tile loaded in place and then consumed
     * kept only 32 bytes per thread in flight and none during the arithmetic (SASS: one LDG.128
     * pair per staging iteration): at ~2 blocks per SM in decode, far too little to stream the
     * cache at HBM speed. Chunk i of a tile is row i / (HD/8), columns 8 * (i % (HD/8)) of head g. */
    constexpr int NC = ATT_TK * (HD / 8) / (ATT_WARPS * WARP);
    static_assert(NC * ATT_WARPS * WARP == ATT_TK * (HD / 8), "whole chunks per thread");
    kv_chunk<KT> kr[NC];
    kv_chunk<VT> vr[NC];
    auto fetch = [&](int32_t p0) {
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int i = threadIdx.x + c * ATT_WARPS * WARP, kk = i / (HD / 8), c8 = i % (HD / 8);
            const int32_t p = p0 + kk;
            if (p < kv_hi) {   /* keys past the split (or the block's last row) stay zero */
                kr[c].load(a.kc + (size_t)p * a.k_row, g * HD + c8 * 8);
                vr[c].load(a.vc + (size_t)p * a.v_row, g * HD + c8 * 8);
            } else {
                kr[c].clear();
                vr[c].clear();
            }
        }
    };
    if (kv_lo < kv_hi) fetch(kv_lo);

    for (int32_t p0 = kv_lo; p0 < kv_hi; p0 += ATT_TK) {
        __syncthreads();   /* the previous tile is consumed (and qs is written, first time) */
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int i = threadIdx.x + c * ATT_WARPS * WARP, kk = i / (HD / 8), c8 = i % (HD / 8);
            const uint4 kv = kr[c].halves(), vv = vr[c].halves();
            ks[kk][c8 * 4 + 0] = kv.x;
            ks[kk][c8 * 4 + 1] = kv.y;
            ks[kk][c8 * 4 + 2] = kv.z;
            ks[kk][c8 * 4 + 3] = kv.w;
            *(uint4 *)&vs[kk][c8 * 8] = vv;
        }
        __syncthreads();
        if (p0 + ATT_TK < kv_hi) fetch(p0 + ATT_TK);   /* in flight during this tile's arithmetic */

        /* scores: lane = key p0 + lane, for each of the warp's rows */
        float sc[RPW];
#pragma unroll
        for (int i = 0; i < RPW; i++) sc[i] = 0.0f;
#pragma unroll 8
        for (int d2 = 0; d2 < HD / 2; d2++) {
            const uint32_t w = ks[lane][d2];
            const float2 kf = __half22float2(*(const __half2 *)&w);
#pragma unroll
            for (int i = 0; i < RPW; i++) {
                const float2 qv = *(const float2 *)&qs[warp * RPW + i][2 * d2];
                sc[i] += qv.x * kf.x + qv.y * kf.y;
            }
        }
        const int32_t p = p0 + lane;
        float pr[RPW];
        int kmax[RPW], kmax_all = 0;   /* warp-uniform */
#pragma unroll
        for (int i = 0; i < RPW; i++) {
            pr[i] = 0.0f;
            kmax[i] = 0;
            const float si = (p < kv_hi && p <= row_pos[i]) ? sc[i] : -INFINITY;
            /* a NaN score poisons the row (fmaxf would drop it), as on the CPU: NUMERIC upstream */
            const float m_new = __any_sync(0xffffffffu, isnan(si)) ? NAN : fmaxf(m[i], warp_max(si));
            if (m_new == -INFINITY) continue;   /* nothing visible yet for this row (warp-uniform) */
            const float corr = expf(m[i] - m_new);   /* m = -inf -> 0 */
            pr[i] = expf(si - m_new);                /* masked -> 0  */
            l[i] = l[i] * corr + warp_sum(pr[i]);
            m[i] = m_new;
#pragma unroll
            for (int e = 0; e < E; e++) acc[i][e] *= corr;
            /* keys past the row's position (causal) or the split stay out: 0 * an infinite V is NaN */
            kmax[i] = min(ATT_TK, min(kv_hi, row_pos[i] + 1) - p0);
            kmax_all = max(kmax_all, kmax[i]);
        }
        /* keys outside, rows inside: each V element is loaded and converted once per tile, and
         * every row still adds its keys in key order (the same bits as a loop per row) */
#pragma unroll 2
        for (int kk = 0; kk < kmax_all; kk++) {
            float v[E];
#pragma unroll
            for (int e = 0; e < E; e++) v[e] = __half2float(vs[kk][lane + WARP * e]);
#pragma unroll
            for (int i = 0; i < RPW; i++) {
                if (kk >= kmax[i]) continue;   /* warp-uniform */
                const float pk = __shfl_sync(0xffffffffu, pr[i], kk);
#pragma unroll
                for (int e = 0; e < E; e++) acc[i][e] += pk * v[e];
            }
        }
    }

#pragma unroll
    for (int i = 0; i < RPW; i++) {
        const int rho = rho0 + warp * RPW + i;
        if (rho >= n_rows) continue;
        const int t = rho / a.G, h = g * a.G + rho % a.G;
        if (a.splits == 1) {
            const float inv = 1.0f / l[i];   /* key 0 is always visible: l > 0 */
            float *o = a.out + (size_t)t * q_width + (size_t)h * HD;
#pragma unroll
            for (int e = 0; e < E; e++) o[lane + WARP * e] = acc[i][e] * inv;
        } else {
            float *pp = a.part + (((size_t)s * a.n + t) * a.n_heads + h) * (HD + 2);
            if (lane == 0) {
                pp[0] = m[i];
                pp[1] = l[i];
            }
#pragma unroll
            for (int e = 0; e < E; e++) pp[2 + lane + WARP * e] = acc[i][e];
        }
    }
}

/* Merges the splits of one (token, head): out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s,
 * the sums in split order, empty splits (m = -inf) skipped. The first warp reads every split's
 * (m, l) at once and puts the weights in shared memory; then each thread's acc loads go out 8
 * splits at a time. (A loop of one split at a time waited on an L2 round trip per split: ~64 of
 * them per layer in a long-context decode step.) */
__global__ void attn_combine_kernel(const float *__restrict__ part, float *out, int n, int n_heads, int hd, int splits) {
    __shared__ float w_sh[CUDA_ATT_MAX_SPLITS], l_sh[CUDA_ATT_MAX_SPLITS];
    __shared__ bool empty_sh[CUDA_ATT_MAX_SPLITS];
    const size_t stride = (size_t)n * n_heads * (hd + 2);   /* from one split's partial to the next */
    const float *p = part + (size_t)blockIdx.x * (hd + 2);  /* blockIdx.x = t * n_heads + h */
    if (threadIdx.x < WARP) {
        float M = -INFINITY;
        for (int s = threadIdx.x; s < splits; s += WARP) M = fmaxf(M, p[s * stride]);
        M = warp_max(M);   /* fmaxf drops a NaN m_s; its weight below is NaN and poisons the output */
        for (int s = threadIdx.x; s < splits; s += WARP) {
            const float ms = p[s * stride];
            empty_sh[s] = ms == -INFINITY;
            w_sh[s] = expf(ms - M);
            l_sh[s] = p[s * stride + 1];
        }
    }
    __syncthreads();
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float num = 0.0f, den = 0.0f;
        for (int s0 = 0; s0 < splits; s0 += 8) {
            float v[8];
#pragma unroll
            for (int j = 0; j < 8; j++) v[j] = s0 + j < splits ? p[(s0 + j) * stride + 2 + d] : 0.0f;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int s = s0 + j;
                if (s >= splits || empty_sh[s]) continue;
                num += w_sh[s] * v[j];
                den += w_sh[s] * l_sh[s];
            }
        }
        out[(size_t)blockIdx.x * hd + d] = num / den;
    }
}

template <int HD, int RPW>
static void attn_launch(const att_args &a, int fmt, int n_kv_heads, cudaStream_t st) {
    const int R = ATT_WARPS * RPW;
    const dim3 grid(cuda_blocks((int64_t)a.n * a.G, R), (unsigned)n_kv_heads, (unsigned)a.splits);
    if (fmt == CUDA_KVF_F16) attn_kernel<HD, RPW, CUDA_KV_F16, CUDA_KV_F16><<<grid, ATT_WARPS * WARP, 0, st>>>(a);
    else if (fmt == CUDA_KVF_Q8_0) attn_kernel<HD, RPW, CUDA_KV_Q8_0, CUDA_KV_Q8_0><<<grid, ATT_WARPS * WARP, 0, st>>>(a);
    else attn_kernel<HD, RPW, CUDA_KV_Q8_0, CUDA_KV_Q4_0><<<grid, ATT_WARPS * WARP, 0, st>>>(a);
}

/* Blocks along the context: enough for two waves over the multiprocessors, at least 128 keys
 * each, within the partial-result scratch, at most CUDA_ATT_MAX_SPLITS. A function of the shape
 * and the context length only; a recorded decode step is replayed while it stays the same (the
 * split boundaries themselves follow the length on the device: att_chunk). Splits that the
 * rounding leaves without keys write empty partials (m = -inf), which the combine skips, so the
 * result equals a launch with only the non-empty ones. */
extern "C" int cuda_attention_splits(const cuda_ctx *c, int n, int32_t kv_len, int n_heads, int n_kv_heads, int head_dim) {
    const int G = n_heads / n_kv_heads;
    const int rpw = (int64_t)n * G <= ATT_WARPS * 2 ? 2 : 8;
    const int64_t row_tiles = cuda_blocks((int64_t)n * G, ATT_WARPS * rpw);
    int64_t want = (2 * (int64_t)c->n_sm + row_tiles * n_kv_heads - 1) / (row_tiles * n_kv_heads);
    const int64_t by_len = (kv_len + 127) / 128;
    const int64_t by_mem = (int64_t)(c->att_part_floats / ((size_t)n * n_heads * (head_dim + 2)));
    if (want > by_len) want = by_len;
    if (want > by_mem) want = by_mem;
    if (want > CUDA_ATT_MAX_SPLITS) want = CUDA_ATT_MAX_SPLITS;
    if (want < 1) want = 1;
    return (int)want;
}

extern "C" coder_status cuda_attention(cuda_ctx *c, const cuda_kv_layer *kv, const float *q, int n, int32_t pos0,
                                       int n_heads, int n_kv_heads, int head_dim, float *out) {
    const int fmt = kv->fmt;
    if (head_dim != 32 && head_dim != 64 && head_dim != 128)
        return coder_fail(CODER_ERR_UNSUPPORTED, "cuda attention: head_dim %d (32, 64 and 128 are implemented)", head_dim);
    if (n < 1 || n_kv_heads < 1 || n_heads % n_kv_heads != 0)
        return coder_fail(CODER_ERR_INTERNAL, "cuda attention: n %d, heads %d / %d", n, n_heads, n_kv_heads);
    att_args a;
    if (fmt != CUDA_KVF_F16 && fmt != CUDA_KVF_Q8_0 && fmt != CUDA_KVF_Q8_0_Q4_0)
        return coder_fail(CODER_ERR_INTERNAL, "cuda attention: cache format %d", fmt);
    a.kc = (const unsigned char *)kv->k;
    a.vc = (const unsigned char *)kv->v;
    a.k_row = kv->k_row;
    a.v_row = kv->v_row;
    a.q = q;
    a.out = out;
    a.part = c->att_part;
    a.n = n;
    a.n_heads = n_heads;
    a.G = n_heads / n_kv_heads;
    a.kv_width = n_kv_heads * head_dim;
    a.pos0 = pos0;
    a.pos_dev = ctx_pos_dev(c);
    a.scale = 1.0f / sqrtf((float)head_dim);
    const int rpw = (int64_t)n * a.G <= ATT_WARPS * 2 ? 2 : 8;
    a.splits = cuda_attention_splits(c, n, pos0 + n, n_heads, n_kv_heads, head_dim);

    if (head_dim == 32) {
        if (rpw == 2) attn_launch<32, 2>(a, fmt, n_kv_heads, c->stream);
        else attn_launch<32, 8>(a, fmt, n_kv_heads, c->stream);
    } else if (head_dim == 64) {
        if (rpw == 2) attn_launch<64, 2>(a, fmt, n_kv_heads, c->stream);
        else attn_launch<64, 8>(a, fmt, n_kv_heads, c->stream);
    } else {
        if (rpw == 2) attn_launch<128, 2>(a, fmt, n_kv_heads, c->stream);
        else attn_launch<128, 8>(a, fmt, n_kv_heads, c->stream);
    }
    LAUNCH_CHECK(c, "attention");
    if (a.splits > 1) {
        attn_combine_kernel<<<(unsigned)(n * n_heads), head_dim, 0, c->stream>>>(c->att_part, out, n, n_heads, head_dim,
                                                                               a.splits);
        LAUNCH_CHECK(c, "attention combine");
    }
    return CODER_OK;
}
