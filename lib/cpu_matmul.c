/* cpu_matmul.c - the CPU kernel tables (three instruction-set levels of cpu_kernels_impl.h with
 * run-time dispatch) and the threaded matmul y = W x for n tokens.
 *
 * Method (see cpu.h): a worker takes a tile of 4 weight rows, dequantizes them to f32 in its
 * scratch (F32 weights are used in place), then computes the 4 dot products with every token of
 * the batch, so a prefill dequantizes each row once and streams it from L1 across the batch.
 * Tiles are handed out dynamically (atomic counter) in chunks, so a thread slowed by another
 * process does not hold the others up. */
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_HAVE_X86 1
#endif

#include "cpu.h"

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
    case CPU_ISA_AVX512:
        return cpu_has(CPU_ISA_AVX2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
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

size_t cpu_matmul_scratch_floats(int64_t max_cols) { return (size_t)CPU_MATMUL_TILE * (size_t)max_cols + 16; }

float cpu_dot_row(const cpu_kernels *k, uint32_t type, const void *row, const float *x, int64_t n, float *tmp) {
    if (type == QT_F32) return k->dot(row, x, n);
    k->dequant[type](row, tmp, n);
    return k->dot(tmp, x, n);
}

typedef struct mm_job {
    const cpu_kernels *k;
    const weight *W;
    const float *x;           /* [n][cols]                                                    */
    float *y;                 /* [n][rows]                                                    */
    int n;
    float *scratch;
    size_t scratch_per_thread;
    int64_t n_tiles, chunk;
    atomic_llong next;        /* next tile to hand out                                        */
} mm_job;

static void mm_tile(const mm_job *j, float *buf, int64_t tile) {
    const weight *W = j->W;
    const int64_t rows = W->rows, cols = W->cols;
    const int64_t r0 = tile * CPU_MATMUL_TILE;
    const int nr = (int)(rows - r0 < CPU_MATMUL_TILE ? rows - r0 : CPU_MATMUL_TILE);
    const float *w;
    size_t stride;
    if (W->type == QT_F32) {
        w = (const float *)W->data + r0 * cols;
        stride = (size_t)cols;
    } else {
        for (int i = 0; i < nr; i++)
            j->k->dequant[W->type]((const char *)W->data + (uint64_t)(r0 + i) * W->row_bytes, buf + (size_t)i * cols, cols);
        w = buf;
        stride = (size_t)cols;
    }
    if (nr == CPU_MATMUL_TILE) {
        float out[4];
        for (int t = 0; t < j->n; t++) {
            j->k->dot4(w, stride, j->x + (size_t)t * cols, cols, out);
            float *yt = j->y + (size_t)t * rows + r0;
            yt[0] = out[0];
            yt[1] = out[1];
            yt[2] = out[2];
            yt[3] = out[3];
        }
    } else {
        for (int t = 0; t < j->n; t++)
            for (int i = 0; i < nr; i++)
                j->y[(size_t)t * rows + r0 + i] = j->k->dot(w + (size_t)i * stride, j->x + (size_t)t * cols, cols);
    }
}

static void mm_worker(void *arg, int ith, int nth) {
    mm_job *j = arg;
    (void)nth;
    float *buf = j->scratch + (size_t)ith * j->scratch_per_thread;
    for (;;) {
        int64_t t0 = atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
        if (t0 >= j->n_tiles) break;
        int64_t t1 = t0 + j->chunk < j->n_tiles ? t0 + j->chunk : j->n_tiles;
        for (int64_t t = t0; t < t1; t++) mm_tile(j, buf, t);
    }
}

coder_status cpu_matmul(threadpool *tp, const cpu_kernels *k, const weight *W, const float *x, int n, float *y,
                        float *scratch, size_t scratch_per_thread) {
    if (W->type >= QT_COUNT || !k->dequant[W->type])
        return coder_fail(CODER_ERR_UNSUPPORTED, "matmul: weight type %u (%s) has no CPU kernel", W->type,
                          quant_type_name(W->type));
    if ((size_t)CPU_MATMUL_TILE * (size_t)W->cols > scratch_per_thread)
        return coder_fail(CODER_ERR_INTERNAL, "matmul: scratch of %zu floats is too small for %lld columns",
                          scratch_per_thread, (long long)W->cols);
    mm_job j = {.k = k, .W = W, .x = x, .y = y, .n = n, .scratch = scratch, .scratch_per_thread = scratch_per_thread};
    j.n_tiles = (W->rows + CPU_MATMUL_TILE - 1) / CPU_MATMUL_TILE;
    int nth = threadpool_size(tp);
    /* About 8 chunks per thread: enough to balance, few enough atomics. */
    j.chunk = j.n_tiles / ((int64_t)nth * 8);
    if (j.chunk < 1) j.chunk = 1;
    atomic_init(&j.next, 0);
    int64_t useful = (j.n_tiles + j.chunk - 1) / j.chunk;
    threadpool_run_n(tp, useful < nth ? (int)useful : nth, mm_worker, &j);
    return CODER_OK;
}
