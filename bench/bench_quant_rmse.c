/* bench_quant_rmse.c - quantize -> dequantize error of the reference quantizers, and speed.
 *
 * Part 1: 256 rows x 4096 N(0,1) floats (splitmix64 + Box-Muller, seed 1234: the same data as
 * bench/quant_rmse.py), per type: rmse, max |err|, quantize and dequantize throughput (1 thread).
 * Part 2 (when refdata is present): the F16 weights of refdata's tiny-llama, re-quantized by us
 * to the type llama-quantize chose for each tensor in tiny-llama-q4_k_m.gguf; prints how many
 * blocks are byte-identical to llama.cpp's and both relative rmse figures.
 * Run: make build/bench/bench_quant_rmse && ./build/bench/bench_quant_rmse   (docs/QUANT.md) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unif(uint64_t *s) { return ((rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

static void gauss_fill(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = rng_unif(&s), u2 = rng_unif(&s);
        double r = sqrt(-2.0 * log(u1));
        x[i] = (float)(r * cos(2 * M_PI * u2));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(2 * M_PI * u2));
    }
}

static double rms_diff(const float *a, const float *b, size_t n, double *maxerr) {
    double se = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        se += d * d;
        if (fabs(d) > mx) mx = fabs(d);
    }
    if (maxerr) *maxerr = mx;
    return sqrt(se / (double)n);
}

static double std_of(const float *a, size_t n) {
    double m = 0, v = 0;
    for (size_t i = 0; i < n; i++) m += a[i];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) v += (a[i] - m) * (a[i] - m);
    return sqrt(v / (double)n);
}

static int gaussian_table(void) {
    const size_t rows = 256, cols = 4096, n = rows * cols;
    float *x = malloc(n * 4), *y = malloc(n * 4);
    uint8_t *q = malloc(n * 4);
    if (!x || !y || !q) return 1;
    gauss_fill(x, n, 1234);
    static const uint32_t types[] = {QT_F16, QT_BF16, QT_Q8_0, QT_Q6_K, QT_Q5_K, QT_Q5_1, QT_Q5_0,
                                     QT_Q4_K, QT_Q4_1, QT_Q4_0};
    printf("N(0,1) data, %zu x %zu, seed 1234, 1 thread\n", rows, cols);
    printf("| type | bits/w | rmse | max err | quantize MB/s (f32 in) | dequantize MB/s (f32 out) |\n");
    printf("|---|---:|---:|---:|---:|---:|\n");
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        uint32_t type = types[t];
        uint64_t rb = 0;
        quant_row_bytes(type, cols, &rb);
        double t0 = coder_time_now();
        for (size_t r = 0; r < rows; r++)
            if (quantize_row_ref(type, x + r * cols, q + r * rb, (int64_t)cols) != CODER_OK) return 1;
        double t1 = coder_time_now();
        int reps = 0;
        double t2 = coder_time_now(), t3;
        do {
            for (size_t r = 0; r < rows; r++)
                if (dequantize_row(type, q + r * rb, y + r * cols, (int64_t)cols) != CODER_OK) return 1;
            reps++;
            t3 = coder_time_now();
        } while (t3 - t2 < 0.2);
        double maxerr, rmse = rms_diff(x, y, n, &maxerr);
        printf("| %s | %.4g | %.6f | %.5f | %.0f | %.0f |\n", quant_type_name(type),
               8.0 * quant_type_size(type) / quant_block_size(type), rmse, maxerr,
               n * 4 / 1e6 / (t1 - t0), reps * n * 4 / 1e6 / (t3 - t2));
    }
    free(x);
    free(y);
    free(q);
    return 0;
}

/* Our quantizer vs llama-quantize on the same F16 weights. */
static int llama_compare(const char *rd) {
    char p16[4096], pq[4096];
    snprintf(p16, sizeof p16, "%s/models/tiny-llama-f16.gguf", rd);
    snprintf(pq, sizeof pq, "%s/models/tiny-llama-q4_k_m.gguf", rd);
    gguf_file *f16 = NULL, *fq = NULL;
    if (gguf_open(p16, NULL, &f16) != CODER_OK || gguf_open(pq, NULL, &fq) != CODER_OK) {
        printf("\n(tiny-llama files not readable: %s)\n", coder_last_error());
        gguf_close(f16);
        return 0;
    }
    printf("\nrefdata tiny-llama: F16 weights re-quantized by us vs llama-quantize's Q4_K_M file\n");
    printf("| type | tensors | blocks | identical blocks | rel. rmse llama.cpp | rel. rmse ours |\n");
    printf("|---|---:|---:|---:|---:|---:|\n");
    static const uint32_t types[] = {QT_Q4_K, QT_Q6_K};
    for (size_t t = 0; t < 2; t++) {
        uint64_t nblk = 0, same = 0, ntens = 0;
        double se_l = 0, se_o = 0, var = 0;
        for (size_t i = 0; i < gguf_tensor_count(fq); i++) {
            const gguf_tensor *tq = gguf_tensor_at(fq, i);
            const gguf_tensor *ts = gguf_find_tensor(f16, tq->name);
            if (tq->type != types[t] || !ts || ts->type != QT_F16) continue;
            ntens++;
            size_t n = tq->n_elements, bsz = quant_type_size(tq->type);
            float *x = malloc(n * 4), *yl = malloc(n * 4), *yo = malloc(n * 4);
            uint8_t *q = malloc(tq->nbytes);
            if (!x || !yl || !yo || !q) return 1;
            dequantize_row(QT_F16, ts->data, x, (int64_t)n);
            quantize_row_ref(tq->type, x, q, (int64_t)n);
            dequantize_row(tq->type, q, yo, (int64_t)n);
            dequantize_row(tq->type, tq->data, yl, (int64_t)n);
            for (size_t b = 0; b < tq->nbytes / bsz; b++, nblk++)
                same += memcmp(q + b * bsz, (const uint8_t *)tq->data + b * bsz, bsz) == 0;
            double sd = std_of(x, n), el = rms_diff(x, yl, n, NULL), eo = rms_diff(x, yo, n, NULL);
            se_l += el * el * n;
            se_o += eo * eo * n;
            var += sd * sd * n;
            free(x); free(yl); free(yo); free(q);
        }
        printf("| %s | %llu | %llu | %llu (%.3f%%) | %.6f | %.6f |\n", quant_type_name(types[t]),
               (unsigned long long)ntens, (unsigned long long)nblk, (unsigned long long)same,
               nblk ? 100.0 * same / nblk : 0.0, sqrt(se_l / var), sqrt(se_o / var));
    }
    gguf_close(f16);
    gguf_close(fq);
    return 0;
}

int main(void) {
    if (gaussian_table()) { fprintf(stderr, "bench_quant_rmse: failed: %s\n", coder_last_error()); return 1; }
    const char *rd = getenv("CODER_REFDATA");
    if (!rd || !*rd) rd = "../shared/refdata";
    return llama_compare(rd);
}
