/* test_batch_invariant.c - a token's matmul result does not depend on the batch it is evaluated in.
 * For every integer weight type and every kernel level this machine has, cpu_matmul of each token
 * alone (n = 1: the GEMV), inside n = 2, 3, 4 (the per-row qdot kernels), and inside n = 7 and 33
 * (the GEMM where the level has one, the qdot kernels otherwise) must give the same bits (memcmp),
 * and those bits must be the scalar level's. This is what makes prompt-cache reuse (the last
 * prompt tokens evaluated one at a time) give the same logits as an uncached prefill.
 * Odd row counts (GEMV row tails, partial GEMM panels) and several block counts per row.
 * F16/BF16/F32 weights are not batch-invariant (float sums in kernel-dependent order): not tested. */
#include "test.h"

#include "cpu.h"
#include "model.h"

#define KR_SEED 0x243F6A8885A308D3ull
#define KR_NO_TYPE_LIST
#include "kernel_rows.h"

static const uint32_t types[] = {QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q4_K, QT_Q5_K, QT_Q6_K};

#define N_TOK 33

TEST(batch_size_does_not_change_bits) {
    const int64_t row_counts[] = {37, 101};
    const int64_t blocks[] = {1, 3, 7};
    const int batch[] = {2, 3, 4, 7, N_TOK};
    threadpool *pool = NULL;
    CHECK_OK(threadpool_new(2, &pool));
    const cpu_kernels *sc = cpu_kernels_for(CPU_ISA_SCALAR);
    int checked = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        for (size_t ri = 0; ri < sizeof row_counts / sizeof row_counts[0]; ri++) {
            for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
                const int64_t rows = row_counts[ri], cols = blocks[bi] * quant_block_size(t) * (quant_block_size(t) == 32 ? 3 : 1);
                uint64_t rb;
                quant_row_bytes(t, (uint64_t)cols, &rb);
                uint8_t *wd = malloc(rb * rows);
                float *x = malloc(sizeof(float) * cols * N_TOK), *ref = malloc(sizeof(float) * rows * N_TOK);
                float *alone = malloc(sizeof(float) * rows * N_TOK), *y = malloc(sizeof(float) * rows * N_TOK);
                const size_t qbytes = cpu_matmul_scratch_bytes(cols, N_TOK);
                void *qbuf = coder_malloc_aligned(qbytes, 64);
                CHECK(wd && x && ref && alone && y && qbuf);
                for (int64_t r = 0; r < rows; r++) fill_row(t, wd + r * rb, cols);
                for (int64_t i = 0; i < cols * N_TOK; i++) x[i] = rndf() * (float)(1 + (i / 32) % 5);
                weight W = {.type = t, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
                for (int tok = 0; tok < N_TOK; tok++)
                    CHECK_OK(cpu_matmul(pool, sc, &W, x + (size_t)tok * cols, 1, ref + (size_t)tok * rows, qbuf, qbytes));
                for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_AVX512; isa++) {
                    const cpu_kernels *k = cpu_kernels_for((cpu_isa)isa);
                    if (!k) continue;
                    for (int tok = 0; tok < N_TOK; tok++)
                        CHECK_OK(cpu_matmul(pool, k, &W, x + (size_t)tok * cols, 1, alone + (size_t)tok * rows, qbuf, qbytes));
                    CHECK_MSG(memcmp(alone, ref, sizeof(float) * rows * N_TOK) == 0, "%s %s %lldx%lld: n=1 differs from scalar",
                              k->name, quant_type_name(t), (long long)rows, (long long)cols);
                    for (size_t ni = 0; ni < sizeof batch / sizeof batch[0]; ni++) {
                        const int n = batch[ni];
                        /* tokens [off, off+n): every token is seen at several positions in a batch */
                        const int off = (N_TOK - n) / 2;
                        CHECK_OK(cpu_matmul(pool, k, &W, x + (size_t)off * cols, n, y, qbuf, qbytes));
                        for (int i = 0; i < n; i++) {
                            const float *a = alone + (size_t)(off + i) * rows, *b = y + (size_t)i * rows;
                            for (int64_t r = 0; r < rows; r++)
                                CHECK_MSG(memcmp(a + r, b + r, 4) == 0, "%s %s %lldx%lld n=%d tok %d row %lld: %.9g alone, %.9g in batch",
                                          k->name, quant_type_name(t), (long long)rows, (long long)cols, n, i, (long long)r, a[r], b[r]);
                        }
                        checked++;
                    }
                }
                free(wd), free(x), free(ref), free(alone), free(y);
                coder_mfree_aligned(qbuf);
            }
        }
    }
    threadpool_free(pool);
    printf("  %d (type, shape, level, batch) cases bit-identical\n", checked);
}

/* Rows repacked 4 at a time (lib/repack.c), interleaved here independently (Q8_0: per block
 * column the 4 scales, then the 4 quant arrays; the other types: the 4 rows' blocks of a column
 * one after another): cpu_matmul over the repacked weight (the x4 GEMV for n <= 4, the AVX-512
 * GEMM's packing or the per-token fallback for n = 7 and 33) gives the standard layout's scalar
 * bits on every level, and weight_row gathers every row back byte for byte. Row counts 4, 36 (a
 * partial GEMM panel) and 100, on 1 and 2 threads. */
static void interleave4(uint32_t t, const uint8_t *w, uint64_t rb, int64_t rows, uint8_t *w4) {
    const size_t bs = quant_type_size(t), nb = (size_t)(rb / bs);
    for (int64_t r = 0; r < rows; r++)
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *src = w + (uint64_t)r * rb + b * bs;
            uint8_t *g = w4 + (uint64_t)(r / 4) * 4 * rb;
            if (t == QT_Q8_0) {
                memcpy(g + b * 136 + 2 * (r % 4), src, 2);
                memcpy(g + b * 136 + 8 + 32 * (r % 4), src + 2, 32);
            } else memcpy(g + (4 * b + (size_t)(r % 4)) * bs, src, bs);
        }
}

TEST(repacked_rows_give_the_same_bits) {
    const int64_t row_counts[] = {4, 36, 100};
    const int64_t blocks[] = {1, 3, 7};
    const int batch[] = {1, 2, 3, 4, 7, N_TOK};
    const cpu_kernels *sc = cpu_kernels_for(CPU_ISA_SCALAR);
    int checked = 0;
    for (int nth = 1; nth <= 2; nth++) {
        threadpool *pool = NULL;
        CHECK_OK(threadpool_new(nth, &pool));
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
            for (size_t ri = 0; ri < sizeof row_counts / sizeof row_counts[0]; ri++)
                for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
                    const uint32_t t = types[ti];
                    const int64_t rows = row_counts[ri], cols = (int64_t)quant_block_size(t) * blocks[bi];
                    uint64_t rb;
                    quant_row_bytes(t, (uint64_t)cols, &rb);
                    uint8_t *wd = malloc(rb * rows), *w4 = malloc(rb * rows), *row = malloc(rb);
                    float *x = malloc(sizeof(float) * cols * N_TOK), *ref = malloc(sizeof(float) * rows * N_TOK);
                    float *y = malloc(sizeof(float) * rows * N_TOK);
                    const size_t qbytes = cpu_matmul_scratch_bytes(cols, N_TOK);
                    void *qbuf = coder_malloc_aligned(qbytes, 64);
                    CHECK(wd && w4 && row && x && ref && y && qbuf);
                    for (int64_t r = 0; r < rows; r++) fill_row(t, wd + r * rb, cols);
                    for (int64_t i = 0; i < cols * N_TOK; i++) x[i] = rndf() * (float)(1 + (i / 32) % 5);
                    interleave4(t, wd, rb, rows, w4);
                    weight W = {.type = t, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
                    weight W4 = W;
                    W4.data = w4, W4.x4 = true;
                    for (int64_t r = 0; r < rows; r++)
                        CHECK_MSG(memcmp(weight_row(&W4, r, row), wd + r * rb, rb) == 0, "%s weight_row %lld of %lldx%lld",
                                  quant_type_name(t), (long long)r, (long long)rows, (long long)cols);
                    for (int tok = 0; tok < N_TOK; tok++)
                        CHECK_OK(cpu_matmul(pool, sc, &W, x + (size_t)tok * cols, 1, ref + (size_t)tok * rows, qbuf, qbytes));
                    for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_AVX512; isa++) {
                        const cpu_kernels *k = cpu_kernels_for((cpu_isa)isa);
                        if (!k) continue;
                        for (size_t ni = 0; ni < sizeof batch / sizeof batch[0]; ni++) {
                            const int n = batch[ni], off = (N_TOK - n) / 2;
                            memset(y, 0xff, sizeof(float) * rows * n);
                            CHECK_OK(cpu_matmul(pool, k, &W4, x + (size_t)off * cols, n, y, qbuf, qbytes));
                            CHECK_MSG(memcmp(y, ref + (size_t)off * rows, sizeof(float) * rows * n) == 0,
                                      "%s repacked %s %lldx%lld n=%d, %d threads: differs from the standard rows' scalar bits", k->name,
                                      quant_type_name(t), (long long)rows, (long long)cols, n, nth);
                            checked++;
                        }
                    }
                    free(wd), free(w4), free(row), free(x), free(ref), free(y);
                    coder_mfree_aligned(qbuf);
                }
        threadpool_free(pool);
    }
    printf("  %d (type, shape, level, batch, threads) cases bit-identical\n", checked);
}

int main(void) {
    RUN(batch_size_does_not_change_bits);
    RUN(repacked_rows_give_the_same_bits);
    return test_summary();
}
