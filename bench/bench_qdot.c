/* bench_qdot.c - single-thread speed of the CPU dot kernels, per weight type and ISA level, against
 * the old method (dequantize the row to f32, then an f32 dot) in the same run, interleaved; best of
 * REPS. Matrix (rows x cols) = 4864 x 896 (a 0.5B ffn_up, in cache-ish) and 32768 x 896 (streams
 * from memory). Prints GB/s of weights read and ns per row for nt = 1 (decode) and 4 (prefill tile),
 * and GB/s of the decode GEMV kernel (cpu_gemv_impl.h) over all rows in one call.
 *   make build/bench/bench_qdot && ./build/bench/bench_qdot [REPS [COLS]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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
    const int reps = argc > 1 ? atoi(argv[1]) : 5;
    const uint32_t types[] = {QT_Q8_0, QT_Q5_0, QT_Q4_0, QT_Q4_1, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_F16, QT_BF16};
    /* a multiple of 256 for the K-quants (argv[2] may give 896 for the 0.5B's 32-block types) */
    const int64_t cols = argc > 2 ? atoi(argv[2]) : 1024 + 256;
    const int64_t row_counts[2] = {2048, 32768};
    float *x = malloc(sizeof(float) * cols * 4), *tmp = malloc(sizeof(float) * cols);
    for (int64_t i = 0; i < cols * 4; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
    void *q = coder_malloc_aligned(cpu_matmul_scratch_bytes(cols, 4), 64);
    printf("%-6s %-7s %6s | %9s %9s | %9s %9s | %9s | %s\n", "type", "isa", "rows", "nt1 GB/s", "ns/row", "nt4 GB/s", "ns/row/tok",
           "gemv GB/s", "old deq+dot GB/s");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        if (cols % (int64_t)quant_block_size(t)) continue;
        uint64_t rb;
        quant_row_bytes(t, (uint64_t)cols, &rb);
        for (int rc = 0; rc < 2; rc++) {
            const int64_t rows = row_counts[rc];
            uint8_t *w = malloc(rb * (size_t)rows);
            for (uint64_t i = 0; i < rb * (uint64_t)rows; i++) w[i] = (uint8_t)rnd();
            /* sane f16 scales: overwrite every 2-byte-aligned word that could be a scale with 0x2000-ish */
            const uint64_t bs = quant_type_size(t), nb = rb * (uint64_t)rows / bs;
            for (uint64_t b = 0; b < nb; b++) {
                uint8_t *blk = w + b * bs;
                const uint16_t h = 0x2000;
                if (t == QT_Q6_K) memcpy(blk + 208, &h, 2);
                else if (t == QT_F16 || t == QT_BF16) { uint16_t v = (uint16_t)(0x3000 + rnd() % 0x800); memcpy(blk, &v, 2); }
                else { memcpy(blk, &h, 2); if (t == QT_Q4_1 || t == QT_Q4_K || t == QT_Q5_K) memcpy(blk + 2, &h, 2); }
            }
            for (int isa = CPU_ISA_AVX2; isa <= CPU_ISA_AVX512; isa++) {
                const cpu_kernels *k = cpu_kernels_for((cpu_isa)isa);
                if (!k) continue;
                const cpu_act a = cpu_act_format(t);
                const size_t xs = a == CPU_ACT_F32 ? (size_t)cols * 4 : cpu_matmul_scratch_bytes(cols, 1);
                const void *xa = a == CPU_ACT_F32 ? (const void *)x : q;
                for (int r = 0; r < 4 && a != CPU_ACT_F32; r++) k->quant[a](x + r * cols, (char *)q + r * xs, cols);
                double best1 = 1e9, best4 = 1e9, bestold = 1e9, bestgv = 1e9;
                float *yv = malloc(sizeof(float) * (size_t)rows);
                volatile float sink = 0;
                for (int rep = 0; rep < reps; rep++) {
                    float out[4];
                    double t0 = now();
                    for (int64_t r = 0; r < rows; r++) {
                        k->qdot[t](cols, w + (size_t)r * rb, xa, xs, 1, out);
                        sink += out[0];
                    }
                    double t1 = now();
                    for (int64_t r = 0; r < rows; r++) {
                        k->qdot[t](cols, w + (size_t)r * rb, xa, xs, 4, out);
                        sink += out[3];
                    }
                    double t2 = now();
                    for (int64_t r = 0; r < rows; r++) sink += cpu_dot_row(k, t, w + (size_t)r * rb, x, cols, tmp);
                    double t3 = now();
                    k->gemv[t](cols, w, rb, rows, xa, yv);   /* decode: all rows, one call */
                    sink += yv[rows - 1];
                    double t4 = now();
                    bestgv = t4 - t3 < bestgv ? t4 - t3 : bestgv;
                    best1 = t1 - t0 < best1 ? t1 - t0 : best1;
                    best4 = t2 - t1 < best4 ? t2 - t1 : best4;
                    bestold = t3 - t2 < bestold ? t3 - t2 : bestold;
                }
                const double bytes = (double)rb * (double)rows;
                printf("%-6s %-7s %6lld | %9.2f %9.1f | %9.2f %9.1f | %9.2f | %.2f\n", quant_type_name(t), k->name, (long long)rows,
                       bytes / best1 * 1e-9, best1 / (double)rows * 1e9, bytes / best4 * 1e-9, best4 / (double)rows / 4 * 1e9,
                       bytes / bestgv * 1e-9, bytes / bestold * 1e-9);
                free(yv);
            }
            free(w);
        }
    }
    coder_mfree_aligned(q);
    free(x);
    free(tmp);
    return 0;
}
