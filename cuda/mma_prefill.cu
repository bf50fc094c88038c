/* mma_prefill.cu - the hand-written tensor-core prefill GEMM: y[t] = W @ x[t] for batches above 8
 * tokens, with W dequantized tile by tile into shared memory and never written to device memory.
 *
 *   W (rows, cols) in its GGUF block layout, x [n][cols] f32 -> y [n][rows] f32
 *
 * The other prefill path (mmq_prefill.cu) dequantizes whole row chunks to an f16 scratch in device
 * memory and calls cuBLAS: it writes and re-reads 2 bytes per weight (14 GB per 7B forward pass,
 * a few ms on an H100) on top of the GEMM. Here each 256-thread block owns a tile of MMA_BM weight
 * rows x MMA_BN tokens and walks the columns MMA_BK at a time:
 *   - every thread dequantizes 4 groups of 8 weights with deq<T> (quant.cuh, the decode kernel's
 *     routine) and converts 4 float4 of x, into registers, for the *next* step while the tensor
 *     cores work on the current one (register double-buffering: one barrier pair per step);
 *   - both tiles are stored to shared memory as f16 (rows padded by 8 halves, so WMMA's ldm is a
 *     multiple of 8 and the 16-byte row fragments fall in different banks);
 *   - 8 warps (4 along rows x 2 along tokens) each accumulate a 32 x 32 tile in 2 x 2 WMMA
 *     16x16x16 f16 fragments with f32 accumulation;
 *   - the result goes through shared memory (reusing the input tiles) so the store to y is
 *     coalesced along rows and bounds-checked for tails in rows and tokens.
 * Columns past `cols` (a multiple of 8, not of MMA_BK), rows past `rows` and tokens past n are
 * zeros in the tiles. Blocks along tokens are the fast grid dimension, so the blocks that run
 * together share weight rows and W comes from DRAM about once (L2 serves the other token tiles).
 * When row x token tiles are too few to fill the device (short batches), the columns are split
 * too (grid z) and a second kernel sums the partials in a fixed order (mma_splits).
 *
 * Precision equals the cuBLAS path's (f16 operands, f32 accumulation): relative rms error about
 * 4e-4 against the CPU. Which path prefill uses is cuda_ctx.prefill (CODER_CUDA_PREFILL=mma|cublas;
 * the default in docs/CUDA.md follows the per-shape timings of bench/gpu.sh in docs/PERF.md). */
#include <mma.h>

#include "common.cuh"
#include "quant.cuh"

#define MMA_BM 128
#define MMA_BN 64
#define MMA_BK 64
#define MMA_PAD 8
#define MMA_LD (MMA_BK + MMA_PAD)      /* halves per tile row in shared memory             */
#define MMA_OUT_LD (MMA_BM + 4)        /* floats per token row of the output staging tile  */
#define MMA_THREADS 256
#define MMA_W_UNITS (MMA_BM * MMA_BK / 8 / MMA_THREADS)   /* groups of 8 weights per thread: 4  */
#define MMA_X_UNITS (MMA_BN * MMA_BK / 4 / MMA_THREADS)   /* float4 of x per thread: 4          */

struct mma_in_tiles {
    __half w[MMA_BM][MMA_LD];
    __half x[MMA_BN][MMA_LD];
};
union mma_smem {
    mma_in_tiles in;
    float out[MMA_BN][MMA_OUT_LD];     /* C^T: out[token][row], WMMA's column-major store */
};

/* The next step's operands, in registers. */
struct mma_regs {
    __align__(16) __half w[MMA_W_UNITS][8];
    __align__(8) __half x[MMA_X_UNITS][4];
};

template <int T>
__device__ __forceinline__ void mma_load(const uint8_t *__restrict__ W, uint64_t row_bytes, int64_t r0, int64_t rows,
                                         int64_t cols, const float *__restrict__ x, int t0, int n, int64_t k0,
                                         mma_regs *r) {
#pragma unroll
    for (int u = 0; u < MMA_W_UNITS; u++) {
        const int unit = threadIdx.x + MMA_THREADS * u, row = unit / (MMA_BK / 8), g = unit % (MMA_BK / 8);
        const int64_t R = r0 + row, col = k0 + 8 * g;
        float v[8];
        if (R < rows && col < cols) deq<T>::run(W + (uint64_t)R * row_bytes, col, v);
        else {
#pragma unroll
            for (int k = 0; k < 8; k++) v[k] = 0.0f;
        }
#pragma unroll
        for (int k = 0; k < 8; k++) r->w[u][k] = __float2half_rn(v[k]);
    }
#pragma unroll
    for (int u = 0; u < MMA_X_UNITS; u++) {
        const int unit = threadIdx.x + MMA_THREADS * u, tok = unit / (MMA_BK / 4), c4 = unit % (MMA_BK / 4);
        const int64_t col = k0 + 4 * c4;
        float4 f = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        /* cols % 8 == 0 and col % 4 == 0: col < cols means all four are inside */
        if (t0 + tok < n && col < cols) f = __ldg((const float4 *)(x + (size_t)(t0 + tok) * (size_t)cols + col));
        r->x[u][0] = __float2half_rn(f.x);
        r->x[u][1] = __float2half_rn(f.y);
        r->x[u][2] = __float2half_rn(f.z);
        r->x[u][3] = __float2half_rn(f.w);
    }
}

__device__ __forceinline__ void mma_store(const mma_regs *r, mma_in_tiles *s) {
#pragma unroll
    for (int u = 0; u < MMA_W_UNITS; u++) {
        const int unit = threadIdx.x + MMA_THREADS * u, row = unit / (MMA_BK / 8), g = unit % (MMA_BK / 8);
        *(uint4 *)&s->w[row][8 * g] = *(const uint4 *)r->w[u];
    }
#pragma unroll
    for (int u = 0; u < MMA_X_UNITS; u++) {
        const int unit = threadIdx.x + MMA_THREADS * u, tok = unit / (MMA_BK / 4), c4 = unit % (MMA_BK / 4);
        *(uint2 *)&s->x[tok][4 * c4] = *(const uint2 *)r->x[u];
    }
}

/* Block (token tile x, row tile y, column split z) sums columns [z * k_chunk, +k_chunk) into y, or
 * with split-K (part != NULL) into part[z] (laid out like y) for mma_reduce_kernel. */
template <int T>
__global__ void __launch_bounds__(MMA_THREADS, 2)   /* two blocks per SM: <= 128 registers */
mma_prefill_kernel(const uint8_t *__restrict__ W, uint64_t row_bytes, int64_t rows, int64_t cols,
                   const float *__restrict__ x, int n, float *__restrict__ y, int64_t k_chunk, float *__restrict__ part) {
    using namespace nvcuda;
    __shared__ __align__(32) mma_smem sm;
    const int t0 = blockIdx.x * MMA_BN;
    const int64_t r0 = (int64_t)blockIdx.y * MMA_BM;
    const int64_t kb = (int64_t)blockIdx.z * k_chunk, ke = kb + k_chunk < cols ? kb + k_chunk : cols;
    if (part) y = part + (size_t)blockIdx.z * (size_t)n * (size_t)rows;
    const int warp = threadIdx.x / WARP, wm = warp % 4, wn = warp / 4;   /* 32 rows x 32 tokens each */

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    mma_regs next;
    mma_load<T>(W, row_bytes, r0, rows, cols, x, t0, n, kb, &next);
    for (int64_t k0 = kb; k0 < ke; k0 += MMA_BK) {
        __syncthreads();   /* the previous step's fragments are loaded: the tiles may change */
        mma_store(&next, &sm.in);
        __syncthreads();
        if (k0 + MMA_BK < ke) mma_load<T>(W, row_bytes, r0, rows, cols, x, t0, n, k0 + MMA_BK, &next);
#pragma unroll
        for (int kk = 0; kk < MMA_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b[2];
#pragma unroll
            for (int i = 0; i < 2; i++) wmma::load_matrix_sync(a[i], &sm.in.w[wm * 32 + 16 * i][kk], MMA_LD);
            /* B = x^T (k x tokens): x's rows [token][k] are B's columns */
#pragma unroll
            for (int j = 0; j < 2; j++) wmma::load_matrix_sync(b[j], &sm.in.x[wn * 32 + 16 * j][kk], MMA_LD);
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
        }
    }
    __syncthreads();   /* the input tiles become the output tile */
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(&sm.out[wn * 32 + 16 * j][wm * 32 + 16 * i], acc[i][j], MMA_OUT_LD,
                                    wmma::mem_col_major);
    __syncthreads();
    for (int e = threadIdx.x; e < MMA_BN * MMA_BM; e += MMA_THREADS) {
        const int tok = e / MMA_BM, row = e % MMA_BM;
        if (t0 + tok < n && r0 + row < rows) y[(size_t)(t0 + tok) * (size_t)rows + (size_t)(r0 + row)] = sm.out[tok][row];
    }
}

/* y[i] = the split-K partials summed in split order (deterministic: no atomics). */
__global__ void mma_reduce_kernel(const float *__restrict__ part, int splits, size_t count, float *__restrict__ y) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    float acc = part[i];
    for (int z = 1; z < splits; z++) acc += part[(size_t)z * count + i];
    y[i] = acc;
}

/* Column splits: with few row x token tiles (a 3584-row matrix and up to 64 tokens is 28 blocks
 * for 132 multiprocessors) the columns are shared out too, at least 4 tiles of them per split, up
 * to MMA_MAX_SPLITS, within the f16 weight scratch (unused by this path) reused for the partials.
 * A function of the shape and the device only, so results repeat. */
#define MMA_MAX_SPLITS 8
static int64_t mma_splits(const cuda_ctx *c, int64_t rows, int64_t cols, int n) {
    const int64_t tiles = (int64_t)cuda_blocks(n, MMA_BN) * ((rows + MMA_BM - 1) / MMA_BM);
    const int64_t k_tiles = (cols + MMA_BK - 1) / MMA_BK;
    int64_t s = (2 * (int64_t)c->n_sm + tiles - 1) / tiles;
    if (s > k_tiles / 4) s = k_tiles / 4;
    if (s > MMA_MAX_SPLITS) s = MMA_MAX_SPLITS;
    const int64_t room = c->deq ? c->p.deq_elems / 2 / ((int64_t)n * rows) : 0;   /* f32 partials */
    if (s > room) s = room;
    return s < 1 ? 1 : s;
}

extern "C" coder_status cuda_matmul_mma(cuda_ctx *c, uint32_t type, const void *W, uint64_t row_bytes, int64_t rows,
                                        int64_t cols, const float *x, int n, float *y) {
    if (!cuda_type_ok(type, cols))
        return coder_fail(CODER_ERR_UNSUPPORTED, "cuda matmul: weight type %u with %lld columns has no kernel", type,
                          (long long)cols);
    const int64_t row_tiles = (rows + MMA_BM - 1) / MMA_BM;
    if (rows <= 0 || n < 1 || row_tiles > 65535)
        return coder_fail(CODER_ERR_INTERNAL, "cuda mma matmul: %lld rows, %d tokens", (long long)rows, n);
    const int64_t k_tiles = (cols + MMA_BK - 1) / MMA_BK, want = mma_splits(c, rows, cols, n);
    const int64_t k_chunk = (k_tiles + want - 1) / want * MMA_BK, splits = (cols + k_chunk - 1) / k_chunk;
    float *part = splits > 1 ? (float *)c->deq : NULL;
    const dim3 grid(cuda_blocks(n, MMA_BN), (unsigned)row_tiles, (unsigned)splits);
    const uint8_t *w = (const uint8_t *)W;
#define MMA_L(T) mma_prefill_kernel<T><<<grid, MMA_THREADS, 0, c->stream>>>(w, row_bytes, rows, cols, x, n, y, k_chunk, part)
    CQ_DISPATCH(type, MMA_L, (void)0)
#undef MMA_L
    LAUNCH_CHECK(c, "mma_prefill");
    if (part) {
        const size_t count = (size_t)n * (size_t)rows;
        mma_reduce_kernel<<<cuda_blocks((int64_t)count, 256), 256, 0, c->stream>>>(part, (int)splits, count, y);
        LAUNCH_CHECK(c, "mma_prefill split-K sum");
    }
    return CODER_OK;
}
