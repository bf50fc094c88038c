/* test_cpu_gemv.c - the decode kernels of lib/cpu_gemv_impl.h and the n <= 4 matmul path
 * (lib/cpu_matvec.c):
 *   - every level's gemv for every weight type against the scalar per-row kernel (itself checked
 *     against a float64 dot in test_cpu_qdot.c), for row counts 1..9 and 13 (every 4-row group
 *     plus 1..3-row tail) and odd block counts: the integer types bit-identical (the integer block
 *     sums are exact and the scale step is the reference's), the float types within
 *     1e-5 * sum|w*x| + 1e-6 (float sums in another order);
 *   - rows past 32768 columns (the AVX-512 Q4_0/Q5_0 per-call sum table) likewise;
 *   - a row's result is bit-identical whether it is computed alone or in any group of a call;
 *   - cpu_matmul for n = 1..4 tokens gives bit-identical outputs on 1, 2 and 3 threads, equal
 *     (integer types: bit for bit; float types: same tolerance) to the scalar kernels
 *     (batch sizes up to 33 against n = 1: test_batch_invariant.c);
 *   - a NaN or Inf activation makes every output NaN (the block-scale poisoning of quant_q8a;
 *     f32 activations: not finite). */
#include "test.h"

#include "cpu.h"

#define KR_SEED 0x9E3779B97F4A7C15ull
#include "kernel_rows.h"

static void fill_x(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = rndf() * (float)(1 + (i / 32) % 5);
}

/* |w . x| summed per element, for the tolerance: from the dequantized row and the f32 x. */
static double magnitude(uint32_t t, const void *row, const float *x, int64_t n, float *tmp) {
    dequantize_row(t, row, tmp, n);
    double m = 0;
    for (int64_t i = 0; i < n; i++) m += fabs((double)tmp[i] * x[i]);
    return m;
}

#define MAX_ROWS 13
#define MAX_COLS (9 * 256 + 32 * 3)

TEST(gemv_matches_scalar_rows) {
    static uint8_t w[MAX_ROWS * MAX_COLS * 4];
    static float x[MAX_COLS], tmp[MAX_COLS];
    static uint8_t q[16 * 1024];
    const cpu_kernels *lv[3];
    int n_lv = 0;
    for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_AVX512; isa++)
        if (cpu_kernels_for((cpu_isa)isa)) lv[n_lv++] = cpu_kernels_for((cpu_isa)isa);
    const int row_counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        const int64_t bs = quant_block_size(t);
        for (int rep = 0; rep < 6; rep++) {
            /* 1, 3, 5, 7, 9 blocks, (32-blocks: +0..2 blocks); float types: lengths with every tail */
            const int64_t nb = 1 + 2 * (rep % 5);
            const int64_t n = bs == 1 ? 1 + 7 * rep + 301 * (rep % 3) : bs == 32 ? 32 * (nb * 2 + rep % 3) : bs * nb;
            uint64_t rb;
            quant_row_bytes(t, (uint64_t)n, &rb);
            rb += 8 * (uint64_t)(rep & 1);   /* a stride longer than the row must not matter */
            for (int r = 0; r < MAX_ROWS; r++) fill_row(t, w + (size_t)r * rb, n);
            fill_x(x, n);
            const cpu_act a = cpu_act_format(t);
            if (a != CPU_ACT_F32) lv[0]->quant[a](x, q, n);
            const void *xa = a == CPU_ACT_F32 ? (const void *)x : (const void *)q;
            float ref[MAX_ROWS], got[MAX_ROWS], one;
            for (int r = 0; r < MAX_ROWS; r++) lv[0]->qdot[t](n, w + (size_t)r * rb, xa, 0, 1, ref + r);
            for (int l = 0; l < n_lv; l++) {
                for (size_t ci = 0; ci < sizeof row_counts / sizeof row_counts[0]; ci++) {
                    const int nr = row_counts[ci];
                    memset(got, 0xff, sizeof got);
                    lv[l]->gemv[t](n, w, rb, nr, xa, got);
                    for (int r = 0; r < MAX_ROWS; r++) {
                        if (r >= nr) {   /* rows past nr untouched */
                            uint32_t bits;
                            memcpy(&bits, got + r, 4);
                            CHECK_MSG(bits == 0xffffffffu, "%s %s nr %d wrote row %d", lv[l]->name, quant_type_name(t), nr, r);
                            continue;
                        }
                        const double mag = magnitude(t, w + (size_t)r * rb, x, n, tmp);
                        CHECK_MSG(a != CPU_ACT_F32 ? memcmp(got + r, ref + r, 4) == 0 : fabs(got[r] - ref[r]) <= 1e-5 * mag + 1e-6, "%s %s n=%lld nr=%d row %d: %.9g vs scalar %.9g",
                                  lv[l]->name, quant_type_name(t), (long long)n, nr, r, got[r], ref[r]);
                        lv[l]->gemv[t](n, w + (size_t)r * rb, rb, 1, xa, &one);   /* alone: the same bits */
                        CHECK_MSG(memcmp(&one, got + r, 4) == 0, "%s %s nr=%d row %d: %.9g alone, %.9g in the group",
                                  lv[l]->name, quant_type_name(t), nr, r, one, got[r]);
                    }
                }
            }
        }
    }
    printf("  %d kernel levels checked\n", n_lv);
}

/* Rows longer than the kernels' per-call tables (AVX-512 Q4_0/Q5_0 keep the activation block
 * sums for up to 32768 columns, past that they compute them per block): still the scalar bits. */
TEST(gemv_long_rows_match_scalar) {
    const uint32_t long_types[] = {QT_Q4_0, QT_Q5_0, QT_Q8_0};
    const int64_t lens[] = {32 * 1024, 32 * 1025, 32 * 1031};   /* at, just past, past and odd */
    const int nr = 6;
    const cpu_kernels *sc = cpu_kernels_for(CPU_ISA_SCALAR);
    for (size_t ti = 0; ti < sizeof long_types / sizeof long_types[0]; ti++) {
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const uint32_t t = long_types[ti];
            const int64_t n = lens[li];
            uint64_t rb;
            quant_row_bytes(t, (uint64_t)n, &rb);
            uint8_t *w = malloc((size_t)rb * nr);
            float *x = malloc(sizeof(float) * n);
            void *q = malloc(cpu_matmul_scratch_bytes(n, 1));
            CHECK(w && x && q);
            for (int r = 0; r < nr; r++) fill_row(t, w + (size_t)r * rb, n);
            fill_x(x, n);
            sc->quant[cpu_act_format(t)](x, q, n);
            float ref[6], got[6];
            for (int r = 0; r < nr; r++) sc->qdot[t](n, w + (size_t)r * rb, q, 0, 1, ref + r);
            for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_AVX512; isa++) {
                const cpu_kernels *k = cpu_kernels_for((cpu_isa)isa);
                if (!k) continue;
                k->gemv[t](n, w, rb, nr, q, got);
                for (int r = 0; r < nr; r++)
                    CHECK_MSG(memcmp(got + r, ref + r, 4) == 0, "%s %s n=%lld row %d: %.9g vs scalar %.9g", k->name,
                              quant_type_name(t), (long long)n, r, got[r], ref[r]);
            }
            free(w), free(x), free(q);
        }
    }
}

/* cpu_matmul for n <= 4 on 1, 2, 3 threads: identical bits, and near the scalar kernels. */
TEST(matvec_threads_identical) {
    const int64_t rows = 1001, cols = 2 * 256 + 256;   /* odd rows: a partial tile and a 1-row tail */
    const int max_n = CPU_QDOT_NT;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        uint64_t rb;
        quant_row_bytes(t, (uint64_t)cols, &rb);
        uint8_t *wd = malloc(rb * rows);
        float *x = malloc(sizeof(float) * cols * max_n), *tmp = malloc(sizeof(float) * cols);
        float *y[3];
        for (int i = 0; i < 3; i++) y[i] = malloc(sizeof(float) * rows * max_n);
        CHECK(wd && x && tmp && y[0] && y[1] && y[2]);
        for (int64_t r = 0; r < rows; r++) fill_row(t, wd + r * rb, cols);
        fill_x(x, cols * max_n);
        weight W = {.type = t, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
        const size_t qbytes = cpu_matmul_scratch_bytes(cols, max_n);
        void *qbuf = coder_malloc_aligned(qbytes, 64), *qs = coder_malloc_aligned(qbytes, 64);
        CHECK(qbuf && qs);
        const cpu_kernels *sc = cpu_kernels_for(CPU_ISA_SCALAR);
        const cpu_act a = cpu_act_format(t);
        for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_AVX512; isa++) {
            const cpu_kernels *k = cpu_kernels_for((cpu_isa)isa);
            if (!k) continue;
            for (int n = 1; n <= max_n; n++) {
                for (int th = 1; th <= 3; th++) {
                    threadpool *p = NULL;
                    CHECK_OK(threadpool_new(th, &p));
                    coder_status st = cpu_matmul(p, k, &W, x, n, y[th - 1], qbuf, qbytes);
                    threadpool_free(p);
                    CHECK_OK(st);
                }
                CHECK_MSG(memcmp(y[0], y[1], sizeof(float) * rows * n) == 0, "%s %s n=%d: 2 threads differ", k->name,
                          quant_type_name(t), n);
                CHECK_MSG(memcmp(y[0], y[2], sizeof(float) * rows * n) == 0, "%s %s n=%d: 3 threads differ", k->name,
                          quant_type_name(t), n);
                for (int tt = 0; tt < n; tt++) {
                    const float *xt = x + (size_t)tt * cols;
                    if (a != CPU_ACT_F32) sc->quant[a](xt, qs, cols);
                    for (int64_t r = 0; r < rows; r += 7) {
                        float ref;
                        sc->qdot[t](cols, wd + r * rb, a == CPU_ACT_F32 ? (const void *)xt : qs, 0, 1, &ref);
                        const double mag = magnitude(t, wd + r * rb, xt, cols, tmp);
                        CHECK_MSG(a != CPU_ACT_F32 ? memcmp(&y[0][tt * rows + r], &ref, 4) == 0
                                                   : fabs(y[0][tt * rows + r] - ref) <= 1e-5 * mag + 1e-6, "%s %s n=%d tok %d row %lld: %.9g vs %.9g",
                                  k->name, quant_type_name(t), n, tt, (long long)r, y[0][tt * rows + r], ref);
                    }
                }
            }
        }
        free(wd), free(x), free(tmp), free(y[0]), free(y[1]), free(y[2]);
        coder_mfree_aligned(qbuf);
        coder_mfree_aligned(qs);
    }
}

/* One NaN or Inf activation: every output row NaN, on every level, alone and in 4-row groups. */
TEST(nonfinite_activation_gives_nan) {
    const int64_t rows = 9, cols = 512;
    const float bad[2] = {NAN, INFINITY};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        uint64_t rb;
        quant_row_bytes(t, (uint64_t)cols, &rb);
        uint8_t *wd = malloc(rb * rows);
        float *x = malloc(sizeof(float) * cols), y[9];
        CHECK(wd && x);
        for (int64_t r = 0; r < rows; r++) fill_row(t, wd + r * rb, cols);
        weight W = {.type = t, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
        const size_t qbytes = cpu_matmul_scratch_bytes(cols, 1);
        void *qbuf = coder_malloc_aligned(qbytes, 64);
        threadpool *p = NULL;
        CHECK_OK(threadpool_new(2, &p));
        for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_AVX512; isa++) {
            const cpu_kernels *k = cpu_kernels_for((cpu_isa)isa);
            if (!k) continue;
            for (int bi = 0; bi < 2; bi++) {
                fill_x(x, cols);
                x[37] = bad[bi];
                CHECK_OK(cpu_matmul(p, k, &W, x, 1, y, qbuf, qbytes));
                /* f32 activations carry an Inf as +-Inf (one term per row); the 8-bit ones poison d */
                const bool fl = cpu_act_format(t) == CPU_ACT_F32;
                for (int64_t r = 0; r < rows; r++)
                    CHECK_MSG(fl ? !isfinite(y[r]) : isnan(y[r]), "%s %s x has %g: row %lld = %g", k->name, quant_type_name(t), bad[bi], (long long)r, y[r]);
            }
        }
        threadpool_free(p);
        free(wd), free(x);
        coder_mfree_aligned(qbuf);
    }
}

int main(void) {
    RUN(gemv_matches_scalar_rows);
    RUN(gemv_long_rows_match_scalar);
    RUN(matvec_threads_identical);
    RUN(nonfinite_activation_gives_nan);
    return test_summary();
}
