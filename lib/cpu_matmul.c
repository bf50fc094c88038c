/* cpu_matmul.c - the CPU kernel tables (three instruction-set levels of cpu_kernels_impl.h with
 * run-time dispatch) and the threaded matmul y = W x for n tokens.
 *
 * Method (see cpu.h): the n activation rows are quantized once (in parallel when n > 1) into the
 * format the weight type's integer dot kernel takes; then a worker takes a tile of weight rows
 * (about 32 KiB, so it stays in L1/L2) and, for every group of up to 4 tokens, calls the kernel
 * once per row: each weight block is unpacked once per 4 tokens, and each row tile is read from
 * memory once for the whole batch. Tiles are handed out dynamically (atomic counter), so a thread
 * slowed by another process does not hold the others up; the outputs do not depend on which
 * thread computed them. n <= CPU_QDOT_NT (decode) goes to cpu_matvec.c. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_HAVE_X86 1
#endif

#include "cpu.h"
#include "cpu_gemm.h"

#define CPU_LEVEL 0
#define CPU_SUFFIX scalar
#include "cpu_kernels_impl.h"
#undef CPU_LEVEL
#undef CPU_SUFFIX

#ifdef CPU_HAVE_X86
#define CPU_LEVEL 1
#define CPU_SUFFIX avx2
#include "cpu_kernels_impl.h"
#undef CPU_LEVEL
#undef CPU_SUFFIX

#define CPU_LEVEL 2
#define CPU_SUFFIX avx512
#include "cpu_kernels_impl.h"
#undef CPU_LEVEL
#undef CPU_SUFFIX
#endif

static bool cpu_has(cpu_isa isa) {
#ifdef CPU_HAVE_X86
    __builtin_cpu_init();
    switch (isa) {
    case CPU_ISA_SCALAR: return true;
    case CPU_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CPU_ISA_AVX512:   /* with VNNI (Ice Lake, Zen 4 and later); older AVX-512 parts use AVX2 */
        return cpu_has(CPU_ISA_AVX2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vnni");
    }
    return false;
#else
    return isa == CPU_ISA_SCALAR;
#endif
}

const cpu_kernels *cpu_kernels_for(cpu_isa isa) {
    if (!cpu_has(isa)) return NULL;
    switch (isa) {
    case CPU_ISA_SCALAR: return &kernels_scalar;
#ifdef CPU_HAVE_X86
    case CPU_ISA_AVX2: return &kernels_avx2;
    case CPU_ISA_AVX512: return &kernels_avx512;
#else
    default: break;
#endif
    }
    return NULL;
}

const cpu_kernels *cpu_kernels_best(void) {
    cpu_isa cap = CPU_ISA_AVX512;
    const char *env = getenv("CODER_CPU_ISA");
    if (env && strcmp(env, "scalar") == 0) cap = CPU_ISA_SCALAR;
    else if (env && strcmp(env, "avx2") == 0) cap = CPU_ISA_AVX2;
    for (int i = (int)cap; i > 0; i--) {
        const cpu_kernels *k = cpu_kernels_for((cpu_isa)i);
        if (k) return k;
    }
    return &kernels_scalar;
}

cpu_act cpu_act_format(uint32_t type) {
    switch (type) {
    case QT_Q8_0: case QT_Q4_0: case QT_Q4_1: case QT_Q5_0: case QT_Q5_1: return CPU_ACT_Q8A;
    case QT_Q4_K: case QT_Q5_K: case QT_Q6_K: return CPU_ACT_Q8K;
    default: return CPU_ACT_F32;
    }
}

size_t cpu_act_row_bytes(cpu_act a, int64_t n) {
    switch (a) {
    case CPU_ACT_Q8A: return (size_t)((n + 31) / 32) * sizeof(cpu_q8a);
    case CPU_ACT_Q8K: return (size_t)((n + QK_K - 1) / QK_K) * sizeof(block_q8_k);
    default: return (size_t)n * sizeof(float);
    }
}

/* Row stride of quantized activations: 64-byte multiples, so every row starts a cache line. */
static size_t mm_act_stride(cpu_act a, int64_t cols) { return (cpu_act_row_bytes(a, cols) + 63) & ~(size_t)63; }
/* Elements per activation block of format a, and the byte stride of one x row in it. */
static int64_t mm_act_block(cpu_act a) { return a == CPU_ACT_Q8A ? 32 : a == CPU_ACT_Q8K ? QK_K : 1; }
static size_t mm_x_stride(cpu_act a, int64_t cols) { return a == CPU_ACT_F32 ? (size_t)cols * sizeof(float) : mm_act_stride(a, cols); }

size_t cpu_matmul_scratch_bytes(int64_t max_cols, int n_rows) {
    size_t a = mm_act_stride(CPU_ACT_Q8A, max_cols), b = mm_act_stride(CPU_ACT_Q8K, max_cols);
    return (a > b ? a : b) * (size_t)(n_rows > 0 ? n_rows : 1);
}

float cpu_dot_row(const cpu_kernels *k, uint32_t type, const void *row, const float *x, int64_t n, float *tmp) {
    if (type == QT_F32) return k->dot(row, x, n);
    k->dequant[type](row, tmp, n);
    return k->dot(tmp, x, n);
}

typedef struct mm_job {
    const cpu_kernels *k;
    const weight *W;
    cpu_act act;
    const float *x;           /* [n][cols] f32 rows to quantize                                */
    void *q;                  /* [n] quantized rows, xs bytes apart                            */
    const void *xa;           /* the rows the kernel reads: q, or x for CPU_ACT_F32            */
    size_t xs;
    float *y;                 /* [n][rows]                                                    */
    int n;
    int64_t tile_rows, n_tiles;
    atomic_llong next;        /* next tile to hand out                                        */
} mm_job;

static void mm_quant_worker(void *arg, int ith, int nth) {
    mm_job *j = arg;
    const int64_t cols = j->W->cols;
    for (int t = ith; t < j->n; t += nth) j->k->quant[j->act](j->x + (size_t)t * cols, (char *)j->q + (size_t)t * j->xs, cols);
}

static void mm_tile(const mm_job *j, int64_t tile) {
    const weight *W = j->W;
    const int64_t rows = W->rows, cols = W->cols;
    const int64_t r0 = tile * j->tile_rows, r1 = r0 + j->tile_rows < rows ? r0 + j->tile_rows : rows;
    const cpu_qdot_fn dot = j->k->qdot[W->type];
    float out[CPU_QDOT_NT];
    if (W->x4) {   /* repacked rows (tile_rows a multiple of 4): the decode kernel per token */
        cpu_gemv_x4_tokens(j->k, W, r0, r1, j->xa, j->xs, j->n, j->y);
        return;
    }
    for (int t0 = 0; t0 < j->n; t0 += CPU_QDOT_NT) {
        const int nt = j->n - t0 < CPU_QDOT_NT ? j->n - t0 : CPU_QDOT_NT;
        const void *xt = (const char *)j->xa + (size_t)t0 * j->xs;
        float *yt = j->y + (size_t)t0 * rows;
        for (int64_t r = r0; r < r1; r++) {
            dot(cols, (const char *)W->data + (uint64_t)r * W->row_bytes, xt, j->xs, nt, out);
            for (int i = 0; i < nt; i++) yt[(size_t)i * rows + r] = out[i];
        }
    }
}

static void mm_worker(void *arg, int ith, int nth) {
    mm_job *j = arg;
    (void)ith;
    (void)nth;
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (t >= j->n_tiles) break;
        mm_tile(j, t);
    }
}

coder_status cpu_matmul(threadpool *tp, const cpu_kernels *k, const weight *W, const float *x, int n, float *y,
                        void *qbuf, size_t qbuf_bytes) {
    if (W->type >= QT_COUNT || !k->qdot[W->type])
        return coder_fail(CODER_ERR_UNSUPPORTED, "matmul: weight type %u (%s) has no CPU kernel", W->type,
                          quant_type_name(W->type));
    const cpu_act act = cpu_act_format(W->type);
    const int64_t blk = mm_act_block(act);
    if (W->cols % blk != 0)
        return coder_fail(CODER_ERR_FORMAT, "matmul: %lld columns of %s are not a multiple of %lld", (long long)W->cols,
                          quant_type_name(W->type), (long long)blk);
    /* Prefill: the register-blocked GEMM (cpu_gemm.c) where this level has one. */
    /* Repacked rows (repack.c): only the AVX-512 GEMM packs them (AVX2's GEMM is for floats). */
    if (n > CPU_QDOT_NT && (!W->x4 || k->isa == CPU_ISA_AVX512) && cpu_gemm_use(k, W->type, n))
        return cpu_gemm(tp, k, W, x, n, y, qbuf, qbuf_bytes);
    const size_t xs = mm_x_stride(act, W->cols);
    int cap = n;   /* rows per pass */
    if (act != CPU_ACT_F32) {
        if (qbuf_bytes < xs)
            return coder_fail(CODER_ERR_INTERNAL, "matmul: scratch of %zu bytes is too small for %lld columns", qbuf_bytes,
                              (long long)W->cols);
        cap = qbuf_bytes / xs < (size_t)n ? (int)(qbuf_bytes / xs) : n;
    }
    if (n <= CPU_QDOT_NT && cap == n)   /* decode and tiny batches: cpu_matvec.c */
        return cpu_matvec(tp, k, W, x, n, y, qbuf, xs);
    const int nth = threadpool_size(tp);
    /* Row tiles of ~32 KiB of weights (reused from cache by every token group), but at least
     * 4 tiles per thread so the dynamic hand-out can balance. */
    int64_t tile_rows = (int64_t)(32768 / (W->row_bytes ? W->row_bytes : 1));
    const int64_t balance = (W->rows + 4 * nth - 1) / (4 * nth);
    if (tile_rows > balance) tile_rows = balance;
    if (tile_rows < 1) tile_rows = 1;
    if (W->x4) tile_rows = (tile_rows + 3) & ~(int64_t)3;
    for (int t0 = 0; t0 < n; t0 += cap) {
        const int nn = n - t0 < cap ? n - t0 : cap;
        mm_job j = {.k = k, .W = W, .act = act, .x = x + (size_t)t0 * W->cols, .q = qbuf, .xs = xs,
                    .y = y + (size_t)t0 * W->rows, .n = nn, .tile_rows = tile_rows};
        j.xa = act == CPU_ACT_F32 ? (const void *)j.x : qbuf;
        j.n_tiles = (W->rows + tile_rows - 1) / tile_rows;
        atomic_init(&j.next, 0);
        if (act != CPU_ACT_F32) threadpool_run_n(tp, nn, mm_quant_worker, &j);
        threadpool_run_n(tp, j.n_tiles < nth ? (int)j.n_tiles : nth, mm_worker, &j);
    }
    return CODER_OK;
}

coder_status cpu_matmul_many(threadpool *tp, const cpu_kernels *k, const weight *const *W, int count, const float *x, int n,
                             float *const *y, void *qbuf, size_t qbuf_bytes) {
    bool one = count >= 1 && count <= CPU_MATVEC_MAX && n <= CPU_QDOT_NT;
    const cpu_act act = count >= 1 ? cpu_act_format(W[0]->type) : CPU_ACT_F32;
    const int64_t blk = mm_act_block(act);
    const size_t xs = count >= 1 ? mm_x_stride(act, W[0]->cols) : 0;
    if (act != CPU_ACT_F32 && qbuf_bytes < xs * (size_t)n) one = false;
    for (int i = 0; one && i < count; i++)
        one = W[i]->type < QT_COUNT && k->qdot[W[i]->type] && cpu_act_format(W[i]->type) == act && W[i]->cols == W[0]->cols &&
              W[i]->cols % blk == 0;
    if (one) return cpu_matvec_many(tp, k, W, count, x, n, y, qbuf, xs);
    for (int i = 0; i < count; i++) {
        const coder_status st = cpu_matmul(tp, k, W[i], x, n, y[i], qbuf, qbuf_bytes);
        if (st != CODER_OK) return st;
    }
    return CODER_OK;
}
