/* test_cpu_gemm.c - the prefill GEMM (lib/cpu_gemm.c, reached through cpu_matmul for n > 4):
 *   - every weight type at every kernel level this CPU has, n = 5, 7, 33, 130 tokens, row counts
 *     that are not multiples of the 32-row panel (1, 31, 45), against the scalar reference: the
 *     scalar quantizer and the scalar per-row qdot kernel, one token at a time. The integer types'
 *     GEMM must equal it bit for bit (same integer block sums, same float operations in the same
 *     order); the per-row SIMD paths and the f32 GEMM only within float reordering:
 *     |y - ref| <= 1e-5 * sum_i |w_i x_i| (float64, dequantized weights) + 1e-6.
 *   - thread counts 1, 2, 3 give bit-identical outputs;
 *   - a NaN or Inf activation makes every output of its token NaN (the poisoned block scale,
 *     cpu_qdot_impl.h; F32/F16/BF16 weights: non-finite), the other tokens stay as the reference;
 *   - cpu_gemm itself says UNSUPPORTED at the levels without a GEMM. */
#include "test.h"

#include "cpu.h"
#include "cpu_gemm.h"

#define KR_SEED 0x9E3779B97F4A7C15ull
#include "kernel_rows.h"

/* Activations with block-wise varying magnitude and an all-zero block. */
static void fill_x(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const int64_t blk = i / 32;
        x[i] = blk % 5 == 3 ? 0.0f : rndf() * (float)(1 + blk % 7) * 0.7f;
    }
}

/* Columns per type: K-quants need 256-multiples, the 32-block types get 9 blocks (not a
 * multiple of 256), the float types an odd count. */
static int64_t cols_for(uint32_t t) {
    const cpu_act a = cpu_act_format(t);
    return a == CPU_ACT_Q8K ? 768 : a == CPU_ACT_Q8A ? 288 : 301;   /* f32: 3 k-blocks of the GEMM, a ragged tail */
}

/* ref[t][r]: the scalar quantizer and scalar qdot, one token and one row at a time. */
static void reference(uint32_t type, const uint8_t *wd, uint64_t rb, int64_t rows, int64_t cols, const float *x, int n,
                      float *ref) {
    const cpu_kernels *s = cpu_kernels_for(CPU_ISA_SCALAR);
    const cpu_act a = cpu_act_format(type);
    const size_t xs = a == CPU_ACT_F32 ? (size_t)cols * 4 : cpu_act_row_bytes(a, cols);
    void *q = malloc(xs);
    for (int t = 0; t < n; t++) {
        const void *xa = x + (size_t)t * cols;
        if (a != CPU_ACT_F32) {
            s->quant[a](x + (size_t)t * cols, q, cols);
            xa = q;
        }
        for (int64_t r = 0; r < rows; r++) s->qdot[type](cols, wd + (size_t)r * rb, xa, xs, 1, &ref[(size_t)t * rows + r]);
    }
    free(q);
}

/* sum_i |w_i x_i| in float64 (the tolerance's scale). */
static double magnitude(uint32_t type, const uint8_t *row, const float *x, int64_t cols, float *deq) {
    dequantize_row(type, row, deq, cols);
    double m = 0;
    for (int64_t c = 0; c < cols; c++) m += fabs((double)deq[c] * x[c]);
    return m;
}

TEST(every_type_level_shape_and_thread_count) {
    static const int ns[] = {5, 7, 33, 130};
    static const int64_t row_counts[] = {1, 31, 45};
    threadpool *pools[3] = {NULL, NULL, NULL};
    for (int p = 0; p < 3; p++) CHECK_OK(threadpool_new(p + 1, &pools[p]));
    int levels = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t type = types[ti];
        const int64_t cols = cols_for(type);
        uint64_t rb;
        quant_row_bytes(type, (uint64_t)cols, &rb);
        for (size_t ri = 0; ri < sizeof row_counts / sizeof row_counts[0]; ri++) {
            const int64_t rows = row_counts[ri];
            const int n = ns[(ti + ri) % 4];   /* every n meets every kind of type */
            uint8_t *wd = malloc(rb * (size_t)rows);
            float *x = malloc(sizeof(float) * (size_t)cols * n), *ref = malloc(sizeof(float) * (size_t)rows * n);
            float *y[4], *deq = malloc(sizeof(float) * (size_t)cols);   /* y[3]: cpu_gemm called directly */
            for (int p = 0; p < 4; p++) y[p] = malloc(sizeof(float) * (size_t)rows * n);
            for (int64_t r = 0; r < rows; r++) fill_row(type, wd + (size_t)r * rb, cols);
            fill_x(x, cols * n);
            reference(type, wd, rb, rows, cols, x, n, ref);
            const weight W = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
            const size_t qbytes = cpu_matmul_scratch_bytes(cols, n);
            void *qbuf = coder_malloc_aligned(qbytes, 64);
            for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_AVX512; isa++) {
                const cpu_kernels *k = cpu_kernels_for((cpu_isa)isa);
                if (!k) continue;
                levels |= 1 << isa;
                for (int p = 0; p < 3; p++) CHECK_OK(cpu_matmul(pools[p], k, &W, x, n, y[p], qbuf, qbytes));
                /* the GEMM itself too where cpu_matmul keeps the per-row path for this n (F16 n < 10) */
                const bool direct = cpu_gemm_supports(k, type) && !cpu_gemm_use(k, type, n);
                /* the integer types' GEMM does the scalar reference's operations in its order */
                const bool exact = cpu_gemm_use(k, type, n) && cpu_act_format(type) != CPU_ACT_F32;
                if (direct) CHECK_OK(cpu_gemm(pools[1], k, &W, x, n, y[3], NULL, 0));
                for (int t = 0; t < n; t++)
                    for (int64_t r = 0; r < rows; r++) {
                        const size_t i = (size_t)t * rows + (size_t)r;
                        const double tol = 1e-5 * magnitude(type, wd + (size_t)r * rb, x + (size_t)t * cols, cols, deq) + 1e-6;
                        if (exact)
                            CHECK_MSG(memcmp(&y[0][i], &ref[i], sizeof(float)) == 0, "%s %s rows %lld n %d: row %lld tok %d: %.9g, want exactly %.9g",
                                      k->name, quant_type_name(type), (long long)rows, n, (long long)r, t, y[0][i], ref[i]);
                        CHECK_MSG(fabs((double)y[0][i] - ref[i]) <= tol, "%s %s rows %lld n %d: row %lld tok %d: %.9g vs %.9g (tol %g)",
                                  k->name, quant_type_name(type), (long long)rows, n, (long long)r, t, y[0][i], ref[i], tol);
                        CHECK_MSG(y[1][i] == y[0][i] && y[2][i] == y[0][i], "%s %s: threads 1/2/3 differ at row %lld tok %d",
                                  k->name, quant_type_name(type), (long long)r, t);
                        CHECK_MSG(!direct || fabs((double)y[3][i] - ref[i]) <= tol, "%s %s n %d: cpu_gemm row %lld tok %d: %.9g vs %.9g",
                                  k->name, quant_type_name(type), n, (long long)r, t, y[3][i], ref[i]);
                    }
            }
            coder_mfree_aligned(qbuf);
            for (int p = 0; p < 4; p++) free(y[p]);
            free(wd), free(x), free(ref), free(deq);
        }
    }
    for (int p = 0; p < 3; p++) threadpool_free(pools[p]);
    if (!(levels & (1 << CPU_ISA_AVX512))) SKIP("no AVX-512 VNNI here: only the per-row levels were checked");
}

/* A NaN (token 1) or Inf (token 4) activation: all outputs of that token NaN, the rest exact. */
TEST(non_finite_activations_give_nan) {
    const cpu_kernels *k = cpu_kernels_best();
    threadpool *tp = NULL;
    CHECK_OK(threadpool_new(2, &tp));
    const int n = 6;
    const int64_t rows = 40;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t type = types[ti];
        const int64_t cols = cols_for(type);
        uint64_t rb;
        quant_row_bytes(type, (uint64_t)cols, &rb);
        uint8_t *wd = malloc(rb * (size_t)rows);
        float *x = malloc(sizeof(float) * (size_t)cols * n), *y = malloc(sizeof(float) * (size_t)rows * n),
              *ref = malloc(sizeof(float) * (size_t)rows * n);
        for (int64_t r = 0; r < rows; r++) fill_row(type, wd + (size_t)r * rb, cols);
        fill_x(x, cols * n);
        reference(type, wd, rb, rows, cols, x, n, ref);
        x[1 * cols + 7] = NAN;
        x[4 * cols + cols - 1] = INFINITY;
        const weight W = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
        const size_t qbytes = cpu_matmul_scratch_bytes(cols, n);
        void *qbuf = coder_malloc_aligned(qbytes, 64);
        CHECK_OK(cpu_matmul(tp, k, &W, x, n, y, qbuf, qbytes));
        for (int t = 0; t < n; t++)
            for (int64_t r = 0; r < rows; r++) {
                const float v = y[(size_t)t * rows + (size_t)r];
                if (t == 1 || t == 4) /* f32 activations: Inf * w stays +-Inf (as the per-row path) */
                    CHECK_MSG(cpu_act_format(type) == CPU_ACT_F32 ? !isfinite(v) : isnan(v), "%s %s tok %d row %lld: %g, want NaN",
                              k->name, quant_type_name(type), t, (long long)r, v);
                else CHECK_MSG(isfinite(v) && fabs(v - ref[(size_t)t * rows + (size_t)r]) <= 1e-3, "%s tok %d row %lld", quant_type_name(type), t, (long long)r);
            }
        coder_mfree_aligned(qbuf);
        free(wd), free(x), free(y), free(ref);
    }
    threadpool_free(tp);
}

TEST(unsupported_levels_say_so) {
    const weight W = {.type = QT_Q8_0, .rows = 1, .cols = 32, .row_bytes = 34, .data = NULL};
    CHECK(!cpu_gemm_supports(cpu_kernels_for(CPU_ISA_SCALAR), QT_Q8_0));
    CHECK(!cpu_gemm_supports(cpu_kernels_best(), QT_Q2_K));
    CHECK(!cpu_gemm_use(cpu_kernels_best(), QT_Q8_0, 4));   /* decode stays on the per-row path */
    CHECK_STATUS(cpu_gemm(NULL, cpu_kernels_for(CPU_ISA_SCALAR), &W, NULL, 5, NULL, NULL, 0), CODER_ERR_UNSUPPORTED);
}

int main(void) {
    RUN(every_type_level_shape_and_thread_count);
    RUN(non_finite_activations_give_nan);
    RUN(unsupported_levels_say_so);
    return test_summary();
}
