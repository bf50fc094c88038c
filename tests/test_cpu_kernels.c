/* test_cpu_kernels.c - the CPU kernels against independent references:
 *   - the scalar dequantizers of every weight type against lib/quant.c's dequantize_row (written
 *     separately from the FORMATS.md layouts), on random blocks at odd block counts;
 *   - every SIMD level's dequantizers and dot products against the scalar level and a float64 dot;
 *   - f16 conversions against quant.c (all 65536 halves, and random floats);
 *   - every level's swiglu (vector exp) against a float64 silu, special values included;
 *   - the threaded matmul (quantized activations) against a float64 loop within the activation
 *     rounding bound, single- vs multi-threaded, odd row counts, several passes. */
#include "test.h"

#include "cpu.h"

#define KR_SEED 0x9E3779B97F4A7C15ull
#include "kernel_rows.h"


TEST(scalar_dequant_matches_quant_c) {
    static uint8_t row[64 * 1024];
    static float a[9 * 256 + 32], b[9 * 256 + 32];
    const cpu_kernels *k = cpu_kernels_for(CPU_ISA_SCALAR);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t t = types[ti];
        int64_t n = (int64_t)quant_block_size(t) * (quant_block_size(t) == 1 ? 2307 : 9);   /* odd counts */
        for (int rep = 0; rep < 20; rep++) {
            fill_row(t, row, n);
            k->dequant[t](row, a, n);
            CHECK_OK(dequantize_row(t, row, b, n));
            for (int64_t i = 0; i < n; i++)
                CHECK_MSG(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])), "%s element %lld: %g vs quant.c %g",
                          quant_type_name(t), (long long)i, a[i], b[i]);
        }
    }
}

TEST(simd_matches_scalar) {
    static uint8_t row[64 * 1024];
    static float ref[9 * 256 + 64], got[9 * 256 + 64], x[9 * 256 + 64];
    const cpu_kernels *sc = cpu_kernels_for(CPU_ISA_SCALAR);
    int levels = 0;
    for (int isa = CPU_ISA_AVX2; isa <= CPU_ISA_AVX512; isa++) {
        const cpu_kernels *k = cpu_kernels_for((cpu_isa)isa);
        if (!k) continue;
        levels++;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            uint32_t t = types[ti];
            const int64_t bsz = quant_block_size(t);
            for (int nbk = 1; nbk <= 9; nbk += 2) {
                /* F32/F16/BF16: lengths that exercise every SIMD tail (e.g. 1..41). */
                int64_t n = bsz == 1 ? 1 + 5 * nbk : bsz * nbk;
                fill_row(t, row, n);
                for (int64_t i = 0; i < n; i++) x[i] = rndf();
                sc->dequant[t](row, ref, n);
                k->dequant[t](row, got, n);
                double d64 = 0, mag = 0;
                for (int64_t i = 0; i < n; i++) {
                    CHECK_MSG(got[i] == ref[i], "%s %s element %lld of %lld: %g vs %g", k->name, quant_type_name(t),
                              (long long)i, (long long)n, got[i], ref[i]);
                    d64 += (double)ref[i] * x[i];
                    mag += fabs((double)ref[i] * x[i]);
                }
                float tmp[9 * 256 + 64];
                double ds = cpu_dot_row(sc, t, row, x, n, tmp), dk = cpu_dot_row(k, t, row, x, n, tmp);
                CHECK_MSG(fabs(ds - d64) <= 1e-5 * mag + 1e-6, "scalar %s dot n=%lld: %g vs f64 %g", quant_type_name(t), (long long)n, ds, d64);
                CHECK_MSG(fabs(dk - d64) <= 1e-5 * mag + 1e-6, "%s %s dot n=%lld: %g vs f64 %g", k->name, quant_type_name(t), (long long)n, dk, d64);
            }
        }
        /* f32 dot, dot4, f16 dot/axpy/convert at every length 1..70 */
        for (int64_t n = 1; n <= 70; n++) {
            float w[4 * 70], y1[70], y2[70];
            uint16_t h[70], h1[70], h2[70];
            for (int64_t i = 0; i < 4 * n; i++) w[i] = rndf();
            for (int64_t i = 0; i < n; i++) x[i] = rndf(), h[i] = fp32_to_fp16(rndf()), y1[i] = y2[i] = rndf();
            float o1[4], o2[4];
            sc->dot4(w, (size_t)n, x, n, o1);
            k->dot4(w, (size_t)n, x, n, o2);
            for (int r = 0; r < 4; r++) CHECK_NEAR(o2[r], o1[r], 1e-5, 1e-5);
            CHECK_NEAR(k->dot(w, x, n), sc->dot(w, x, n), 1e-5, 1e-5);
            CHECK_NEAR(k->dot_f16(h, x, n), sc->dot_f16(h, x, n), 1e-5, 1e-5);
            sc->axpy_f16(y1, 0.37f, h, n);
            k->axpy_f16(y2, 0.37f, h, n);
            for (int64_t i = 0; i < n; i++) CHECK_NEAR(y2[i], y1[i], 1e-6, 1e-6);
            sc->to_f16(x, h1, n);
            k->to_f16(x, h2, n);
            CHECK(memcmp(h1, h2, (size_t)n * 2) == 0);
        }
    }
    if (!levels) SKIP("this CPU has no AVX2: only the scalar kernels exist");
}

TEST(f16_conversions) {
    for (uint32_t u = 0; u < 65536; u++) {
        float a = cpu_f16_to_f32((uint16_t)u), b = fp16_to_fp32((f16_t)u);
        CHECK_MSG(memcmp(&a, &b, 4) == 0 || (isnan(a) && isnan(b)), "half 0x%04x: %g vs %g", u, a, b);
        if (!isnan(a)) CHECK_MSG(cpu_f32_to_f16(a) == u, "round trip of half 0x%04x", u);
    }
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = rnd() | (rnd() << 21);
        float f;
        memcpy(&f, &bits, 4);
        if (isnan(f)) continue;
        CHECK_MSG(cpu_f32_to_f16(f) == fp32_to_fp16(f), "float %a: 0x%04x vs quant.c 0x%04x", f, cpu_f32_to_f16(f),
                  fp32_to_fp16(f));
    }
}

/* swiglu of every level against silu(g)*up in float64: within 4 ulp-ish (2e-6 relative + 1e-30),
 * across the whole range (|g| up to 200), at odd lengths (the vector tails), and the special
 * values: +inf -> inf*up, -inf -> NaN (as -inf/inf in the scalar formula), NaN -> NaN. */
TEST(swiglu_every_level) {
    enum { N = 1003 };
    float g[N], up[N], out[N];
    for (int i = 0; i < N; i++) {
        g[i] = (float)(rnd() % 4000001) * 1e-4f - 200.0f;
        if (i % 3 == 0) g[i] *= 0.01f;   /* most of a real model's gate values */
        up[i] = (float)(rnd() % 2001) * 1e-3f - 1.0f;
    }
    g[7] = INFINITY, g[11] = -INFINITY, g[13] = NAN, g[17] = 88.9f, g[19] = -88.9f, g[23] = 0.0f, g[29] = -0.0f;
    for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_AVX512; isa++) {
        const cpu_kernels *k = cpu_kernels_for((cpu_isa)isa);
        if (!k) continue;
        for (int len = N - 2; len <= N; len++) {
            memcpy(out, g, sizeof g);
            k->swiglu(out, up, len);
            for (int i = 0; i < len; i++) {
                const double x = g[i], want = x / (1.0 + exp(-x)) * (double)up[i];
                if (isnan(x) || (isinf(x) && x < 0)) {
                    CHECK_MSG(isnan(out[i]), "%s: swiglu(%g) = %g, want NaN", k->name, x, out[i]);
                    continue;
                }
                CHECK_MSG(fabs(out[i] - want) <= 2e-6 * fabs(want) + 1e-30 || (isinf(want) && out[i] == want),
                          "%s len %d: swiglu(%.9g, %.9g) = %.9g, want %.9g", k->name, len, x, up[i], out[i], want);
            }
        }
    }
}

/* The matmul quantizes the activations (cpu.h), so it is checked against the f32 float64 dot with
 * a bound on that rounding: |sum w_i (x_i - xq_i)| <= sum |w_i| * d_i / 2, d_i = (block amax)/127
 * (block 32 for Q8_0-family weights, 256 for K-quants, none for F32/F16/BF16). */
TEST(threaded_matmul) {
    const int64_t rows = 67, cols = 512;   /* 67 rows: a partial last tile */
    const int n_tok = 6;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t t = types[ti];
        uint64_t rb;
        quant_row_bytes(t, (uint64_t)cols, &rb);
        uint8_t *wd = malloc(rb * rows);
        float *x = malloc(sizeof(float) * cols * n_tok), *y1 = malloc(sizeof(float) * rows * n_tok),
              *y3 = malloc(sizeof(float) * rows * n_tok), *deq = malloc(sizeof(float) * cols), *half = malloc(sizeof(float) * cols);
        for (int64_t r = 0; r < rows; r++) fill_row(t, wd + r * rb, cols);
        for (int64_t i = 0; i < cols * n_tok; i++) x[i] = rndf();
        weight W = {.type = t, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
        const cpu_kernels *k = cpu_kernels_best();
        const cpu_act act = cpu_act_format(t);
        const int64_t blk = act == CPU_ACT_Q8A ? 32 : act == CPU_ACT_Q8K ? 256 : 0;
        /* room for 2 rows only: a 6-token matmul takes 3 passes */
        size_t qbytes = cpu_matmul_scratch_bytes(cols, 2);
        void *qbuf = coder_malloc_aligned(qbytes, 64);
        threadpool *p1 = NULL, *p3 = NULL;
        CHECK_OK(threadpool_new(1, &p1));
        CHECK_OK(threadpool_new(3, &p3));
        for (int n = 1; n <= n_tok; n += n_tok - 1) {   /* decode (1) and prefill (6) */
            CHECK_OK(cpu_matmul(p1, k, &W, x, n, y1, qbuf, qbytes));
            CHECK_OK(cpu_matmul(p3, k, &W, x, n, y3, qbuf, qbytes));
            for (int tt = 0; tt < n; tt++) {
                const float *xt = x + (size_t)tt * cols;
                for (int64_t c = 0; c < cols; c++) {   /* half a quantization step per element */
                    double amax = 0;
                    if (blk)
                        for (int64_t i = c / blk * blk; i < (c / blk + 1) * blk; i++) amax = fmax(amax, fabs(xt[i]));
                    half[c] = (float)(amax / 127 / 2);
                }
                for (int64_t r = 0; r < rows; r++) {
                    dequantize_row(t, wd + r * rb, deq, cols);
                    double ref = 0, mag = 0, qerr = 0;
                    for (int64_t c = 0; c < cols; c++) {
                        ref += (double)deq[c] * xt[c];
                        mag += fabs((double)deq[c] * xt[c]);
                        qerr += fabs((double)deq[c]) * half[c] * 1.0001;
                    }
                    CHECK_MSG(fabs(y1[tt * rows + r] - ref) <= qerr + 1e-5 * mag + 1e-6, "%s row %lld tok %d: %g vs %g (bound %g)",
                              quant_type_name(t), (long long)r, tt, y1[tt * rows + r], ref, qerr);
                    CHECK_MSG(y3[tt * rows + r] == y1[tt * rows + r], "%s threaded row %lld differs", quant_type_name(t), (long long)r);
                }
            }
        }
        if (blk) CHECK_STATUS(cpu_matmul(p1, k, &W, x, 1, y1, qbuf, 16), CODER_ERR_INTERNAL);   /* scratch too small */
        threadpool_free(p1);
        threadpool_free(p3);
        free(wd), free(x), free(y1), free(y3), free(deq), free(half);
        coder_mfree_aligned(qbuf);
    }
}

/* softmax of every level against a float64 softmax: rows of every tail length and a 16K-position
 * row (the sum is kept in double at every level), scores from -60 to 60, within 2e-6 relative +
 * 1e-12; a NaN score makes the whole row NaN (the session's NUMERIC check must see it), a -inf
 * score gets probability ~0. */
TEST(softmax_every_level) {
    enum { N = 16384 };
    static float in[N], out[N];
    static double ref[N];
    const int lens[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 1003, N};
    for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_AVX512; isa++) {
        const cpu_kernels *k = cpu_kernels_for((cpu_isa)isa);
        if (!k) continue;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const int n = lens[li];
            for (int i = 0; i < n; i++) in[i] = (float)(rnd() % 1200001) * 1e-4f - 60.0f;
            if (n > 5) in[5] = -INFINITY;
            double mx = -INFINITY, sum = 0;
            for (int i = 0; i < n; i++) mx = in[i] > mx ? in[i] : mx;
            for (int i = 0; i < n; i++) sum += (ref[i] = exp((double)in[i] - mx));
            memcpy(out, in, (size_t)n * sizeof *in);
            k->softmax(out, n);
            for (int i = 0; i < n; i++)
                CHECK_MSG(fabs(out[i] - ref[i] / sum) <= 2e-6 * ref[i] / sum + 1e-12, "%s n %d: p[%d] = %.9g, want %.9g", k->name,
                          n, i, out[i], ref[i] / sum);
            if (n > 5) CHECK_MSG(out[5] < 1e-30f, "%s: p(-inf) = %g", k->name, out[5]);   /* AVX2's exp floors at e^-87 */
            if (n < 3) continue;
            memcpy(out, in, (size_t)n * sizeof *in);
            out[n / 2] = NAN;
            k->softmax(out, n);
            for (int i = 0; i < n; i++) CHECK_MSG(isnan(out[i]), "%s n %d: a NaN score left p[%d] = %g", k->name, n, i, out[i]);
        }
    }
}

int main(void) {
    RUN(scalar_dequant_matches_quant_c);
    RUN(simd_matches_scalar);
    RUN(f16_conversions);
    RUN(swiglu_every_level);
    RUN(softmax_every_level);
    RUN(threaded_matmul);
    return test_summary();
}
