/* bench_gemm.c - single-thread prefill matmul speed per weight type: the GEMM (cpu_gemm.c) against
 * the per-row path (cpu_matmul in 4-token calls, the method before it), interleaved, best of REPS.
 * W (rows x cols) = 2048 x 1536 (a 1.5B attention/ffn shape) against n = 128 tokens; prints
 * GMAC/s (rows*cols*n / CPU time of the one thread) and the max relative difference of the outputs.
 *   make build/bench/bench_gemm && ./build/bench/bench_gemm [REPS [N]] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu.h"
#include "cpu_gemm.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);   /* 1 thread: CPU time, robust on a shared machine */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 3;
    const uint32_t types[] = {QT_Q8_0, QT_Q5_0, QT_Q4_0, QT_Q4_1, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_F16, QT_BF16, QT_F32};
    const int64_t rows = 2048, cols = 1536;
    const int n = argc > 2 ? atoi(argv[2]) : 128;
    const cpu_kernels *k = cpu_kernels_best();
    threadpool *tp;
    if (threadpool_new(1, &tp) != CODER_OK) return 1;
    float *x = malloc(sizeof(float) * cols * n), *y0 = malloc(sizeof(float) * rows * n), *y1 = malloc(sizeof(float) * rows * n);
    for (int64_t i = 0; i < cols * n; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
    const size_t qb = cpu_matmul_scratch_bytes(cols, 4);
    void *q = coder_malloc_aligned(qb, 64);
    printf("isa %s, %lld x %lld, n %d, 1 thread\n%-6s | %10s %10s | %8s | %s\n", k->name, (long long)rows, (long long)cols, n,
           "type", "gemm GMAC/s", "rows GMAC/s", "speedup", "max rel diff");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        if (!cpu_gemm_supports(k, t)) continue;
        uint64_t rb;
        quant_row_bytes(t, (uint64_t)cols, &rb);
        uint8_t *w = malloc(rb * (size_t)rows);
        for (uint64_t i = 0; i < rb * (uint64_t)rows; i++) w[i] = (uint8_t)rnd();
        const uint64_t bs = quant_type_size(t), nb = rb * (uint64_t)rows / bs;
        for (uint64_t b = 0; b < nb; b++) {   /* sane f16 scales, as bench_qdot.c */
            uint8_t *blk = w + b * bs;
            const uint16_t h = 0x2000;
            if (t == QT_Q6_K) memcpy(blk + 208, &h, 2);
            else if (t == QT_F16 || t == QT_BF16) { uint16_t v = (uint16_t)(0x3000 + rnd() % 0x800); memcpy(blk, &v, 2); }
            else if (t == QT_F32) { float f = (float)((int)(rnd() % 2001) - 1000) / 1000.0f; memcpy(blk, &f, 4); }
            else { memcpy(blk, &h, 2); if (t == QT_Q4_1 || t == QT_Q4_K || t == QT_Q5_K) memcpy(blk + 2, &h, 2); }
        }
        weight W = {.type = t, .rows = rows, .cols = cols, .row_bytes = rb, .data = w};
        double bg = 1e9, br = 1e9;
        for (int rep = 0; rep < reps; rep++) {
            double t0 = now();
            if (cpu_gemm(tp, k, &W, x, n, y0, NULL, 0) != CODER_OK) return 1;
            double t1 = now();
            for (int t4 = 0; t4 < n; t4 += 4)
                if (cpu_matmul(tp, k, &W, x + (size_t)t4 * cols, n - t4 < 4 ? n - t4 : 4, y1 + (size_t)t4 * rows, q, qb) != CODER_OK)
                    return 1;
            double t2 = now();
            bg = t1 - t0 < bg ? t1 - t0 : bg;
            br = t2 - t1 < br ? t2 - t1 : br;
        }
        double md = 0, mx = 0;
        for (int64_t i = 0; i < rows * n; i++) {
            md = fmax(md, fabs((double)y0[i] - y1[i]));
            mx = fmax(mx, fabs((double)y1[i]));
        }
        const double macs = (double)rows * (double)cols * n;
        printf("%-6s | %10.1f %10.1f | %7.2fx | %.2e\n", quant_type_name(t), macs / bg * 1e-9, macs / br * 1e-9, br / bg, md / mx);
        free(w);
    }
    threadpool_free(tp);
    return 0;
}
