/* bench_gpu_gemm.c - the two CUDA prefill paths side by side, per weight type, matrix shape and
 * batch: the hand-written tensor-core kernel (cuda_matmul_mma: tiles dequantized in shared memory)
 * and dequantize-to-f16 + cuBLAS (cuda_matmul_cublas). cuda_matmul's automatic choice
 * (CUDA_MMA_AUTO_MAX_TOKENS) is set from this table; docs/PERF.md keeps it.
 *
 *   build/bench/bench_gpu_gemm [TYPES] [REPS]     TYPES e.g. Q4_K,Q6_K,Q8_0 (default); REPS 5
 *
 * Shapes are Qwen2.5-Coder-7B's matrices (rows x cols): q/o 3584x3584, k/v 512x3584, gate/up
 * 18944x3584, down 3584x18944, output 152064x3584; batches 16..2048 tokens. Each figure is the
 * mean of REPS calls after one warm-up, host-timed between stream synchronisations; TFLOPS counts
 * 2 * rows * cols * n. Weights are random blocks with sane scales (speed does not depend on
 * values). The last column, mma time / cuBLAS time, says which path wins (< 1: the kernel). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "device.h"
#include "quant.h"
#ifdef CODER_HAVE_CUDA
#include "../cuda/cuda_api.h"
#endif

#ifndef CODER_HAVE_CUDA
int main(void) {
    printf("bench_gpu_gemm: built without CUDA\n");
    return 0;
}
#else

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t next64(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Random quant bytes, then every block's f16 scales set to small finite values. */
static void fill_weights(uint32_t type, uint8_t *w, size_t bytes) {
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        uint64_t r = next64();
        memcpy(w + i, &r, 8);
    }
    const size_t bs = quant_type_size(type);
    int off[2] = {-1, -1};
    if (type == QT_Q8_0 || type == QT_Q4_0 || type == QT_Q5_0) off[0] = 0;
    else if (type == QT_Q4_K || type == QT_Q5_K || type == QT_Q4_1 || type == QT_Q5_1) off[0] = 0, off[1] = 2;
    else if (type == QT_Q6_K) off[0] = 208;
    else if (type == QT_F16) {
        for (size_t i = 0; i + 2 <= bytes; i += 2) w[i + 1] = (uint8_t)(0x20 + next64() % 8);   /* ~2^-7 */
        return;
    }
    const uint16_t scale = 0x1c00;   /* 2^-8 */
    for (size_t b = 0; b + bs <= bytes; b += bs)
        for (int k = 0; k < 2; k++)
            if (off[k] >= 0) memcpy(w + b + off[k], &scale, 2);
}

typedef coder_status (*matmul_fn)(cuda_ctx *, uint32_t, const void *, uint64_t, int64_t, int64_t, const float *, int, float *);

static double time_ms(cuda_ctx *c, matmul_fn fn, uint32_t type, const void *W, uint64_t rb, int64_t rows, int64_t cols,
                      const float *x, int n, float *y, int reps) {
    if (fn(c, type, W, rb, rows, cols, x, n, y) != CODER_OK || cuda_ctx_sync(c) != CODER_OK) return -1;
    const double t0 = coder_time_now();
    for (int r = 0; r < reps; r++)
        if (fn(c, type, W, rb, rows, cols, x, n, y) != CODER_OK) return -1;
    if (cuda_ctx_sync(c) != CODER_OK) return -1;
    return (coder_time_now() - t0) * 1e3 / reps;
}

int main(int argc, char **argv) {
    const char *types_arg = argc > 1 ? argv[1] : "Q4_K,Q6_K,Q8_0";
    const int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (device_count() == 0) {
        printf("bench_gpu_gemm: no CUDA device: %s\n", device_unavailable_reason());
        return 0;
    }
    static const int64_t shapes[][2] = {{3584, 3584}, {512, 3584}, {18944, 3584}, {3584, 18944}, {152064, 3584}};
    static const int ns[] = {16, 32, 64, 128, 256, 512, 2048};
    const int max_n = 2048;
    const int64_t max_cols = 18944;
    cuda_ctx_params cp = {.max_tokens = max_n, .max_cols = max_cols, .deq_elems = cuda_deq_elems(152064 * 3584, max_cols),
                          .max_heads = 28, .head_dim = 128};
    cuda_ctx *c = NULL;
    float *x = NULL, *y = NULL;
    if (cuda_ctx_new(&cp, &c) != CODER_OK || cuda_dev_alloc((void **)&x, (size_t)max_n * max_cols * 4, "x") != CODER_OK ||
        cuda_dev_alloc((void **)&y, (size_t)max_n * 152064 * 4, "y") != CODER_OK) {
        fprintf(stderr, "bench_gpu_gemm: %s\n", coder_last_error());
        return 1;
    }
    {   /* x: small random floats */
        float *h = malloc((size_t)max_n * max_cols * 4);
        for (size_t i = 0; h && i < (size_t)max_n * max_cols; i++) h[i] = (float)((int)(next64() % 2001) - 1000) * 1e-3f;
        if (!h || cuda_h2d(c, x, h, (size_t)max_n * max_cols * 4) != CODER_OK) return 1;
        free(h);
    }
    char list[256];
    snprintf(list, sizeof list, "%s", types_arg);
    printf("%-5s %-13s %5s %9s %9s %9s %9s %7s\n", "type", "rows x cols", "n", "mma ms", "TFLOPS", "cublas ms", "TFLOPS", "mma/cb");
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        uint32_t type = 0;
        bool found = false;
        for (uint32_t t = 0; t < 40 && !found; t++)
            if (quant_type_supported(t) && strcmp(quant_type_name(t), tok) == 0) type = t, found = true;
        if (!found || !cuda_type_ok(type, 3584)) {
            fprintf(stderr, "bench_gpu_gemm: type %s has no kernel\n", tok);
            continue;
        }
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int64_t rows = shapes[s][0], cols = shapes[s][1];
            uint64_t rb = 0;
            if (!quant_row_bytes(type, (uint64_t)cols, &rb)) continue;
            const size_t bytes = (size_t)rb * (size_t)rows;
            uint8_t *h = malloc(bytes);
            void *W = NULL;
            if (!h || cuda_dev_alloc(&W, bytes, "weights") != CODER_OK) {
                fprintf(stderr, "bench_gpu_gemm: %s\n", h ? coder_last_error() : "host memory");
                free(h);
                continue;
            }
            fill_weights(type, h, bytes);
            if (cuda_h2d(c, W, h, bytes) != CODER_OK) return 1;
            free(h);
            for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
                const int n = ns[i];
                const double flop = 2.0 * (double)rows * (double)cols * n;
                const double a = time_ms(c, cuda_matmul_mma, type, W, rb, rows, cols, x, n, y, reps);
                const double b = time_ms(c, cuda_matmul_cublas, type, W, rb, rows, cols, x, n, y, reps);
                if (a < 0 || b < 0) {
                    fprintf(stderr, "bench_gpu_gemm: %s %lldx%lld n %d: %s\n", tok, (long long)rows, (long long)cols, n,
                            coder_last_error());
                    return 1;
                }
                printf("%-5s %6lldx%-6lld %5d %9.3f %9.1f %9.3f %9.1f %7.2f\n", tok, (long long)rows, (long long)cols, n, a,
                       flop / a * 1e-9, b, flop / b * 1e-9, a / b);
            }
            cuda_dev_free(W);
        }
    }
    cuda_dev_free(x);
    cuda_dev_free(y);
    cuda_ctx_free(c);
    return 0;
}
#endif
