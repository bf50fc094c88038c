/* test_cpu_qdot.c - the activation quantizers and integer dot kernels of lib/cpu_qdot_impl.h:
 *   - the scalar quantizers against the format's definition (d = amax/127, |d*q - x| <= d/2,
 *     ds = d*sum(q), bsums = per-16 sums), including all-zero and saturating blocks;
 *   - every SIMD level's quantizer bit-identical to the scalar one;
 *   - the scalar dot kernel of every weight type against a float64 dot of the weights
 *     dequantized by lib/quant.c with the dequantized activations (an independent path);
 *   - every SIMD level's kernel against the scalar one, for 1..4 activation rows per call, odd
 *     block counts, and F32/F16/BF16 lengths that exercise every tail: bit-identical for the
 *     integer types, within 1e-5 * sum|w*x| + 1e-6 for the float ones. */
#include "test.h"

#include "cpu.h"

#define KR_SEED 0x2545F4914F6CDD1Dull
#include "kernel_rows.h"

/* Random activations: block-wise varying magnitude, a zero block, and exact .5 quotients. */
static void fill_x(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const int64_t blk = i / 32;
        const float scale = blk % 5 == 3 ? 0.0f : (float)(1 + blk % 7) * 0.7f;
        x[i] = rndf() * scale;
    }
    if (n >= 64) {                       /* block 1: amax 127 -> d 1, values k + 0.5 */
        for (int l = 0; l < 32; l++) x[32 + l] = (float)((int)(rnd() % 254) - 127) + 0.5f;
        x[32] = 127.0f;
    }
}

/* Dequantized activations: d * q, or x itself for f32. */
static void deq_act(cpu_act a, const void *q, const float *x, int64_t n, double *out) {
    if (a == CPU_ACT_F32) {
        for (int64_t i = 0; i < n; i++) out[i] = x[i];
    } else if (a == CPU_ACT_Q8A) {
        const cpu_q8a *b = q;
        for (int64_t i = 0; i < n; i++) out[i] = (double)b[i / 32].d * b[i / 32].qs[i % 32];
    } else {
        const block_q8_k *b = q;
        for (int64_t i = 0; i < n; i++) out[i] = (double)b[i / 256].d * b[i / 256].qs[i % 256];
    }
}

TEST(scalar_quantizers_follow_the_format) {
    static float x[9 * 256];
    static cpu_q8a qa[9 * 8];
    static block_q8_k qk[9];
    const cpu_kernels *sc = cpu_kernels_for(CPU_ISA_SCALAR);
    for (int rep = 0; rep < 50; rep++) {
        const int64_t n = 256 * (1 + rep % 9);
        fill_x(x, n);
        sc->quant[CPU_ACT_Q8A](x, qa, n);
        sc->quant[CPU_ACT_Q8K](x, qk, n);
        for (int64_t b = 0; b < n / 32; b++) {
            double amax = 0;
            int s = 0;
            for (int l = 0; l < 32; l++) amax = fmax(amax, fabs(x[32 * b + l]));
            CHECK_NEAR(qa[b].d, amax / 127, 0, 1e-6);
            for (int l = 0; l < 32; l++) {
                const double err = fabs((double)qa[b].d * qa[b].qs[l] - x[32 * b + l]);
                CHECK_MSG(err <= qa[b].d * 0.5000001 + 1e-30, "block %lld elt %d: %g -> %d (d %g)", (long long)b, l,
                          x[32 * b + l], qa[b].qs[l], qa[b].d);
                CHECK(qa[b].qs[l] >= -127 && qa[b].qs[l] <= 127);
                s += qa[b].qs[l];
            }
            CHECK_NEAR(qa[b].ds, (double)qa[b].d * s, 1e-30, 1e-6);
        }
        /* block 1 holds k + 0.5 with d exactly 1: round half to even */
        CHECK(qa[1].d == 1.0f);
        for (int l = 0; l < 32; l++) CHECK(l == 0 || (qa[1].qs[l] == (int)nearbyint(x[32 + l]) && qa[1].qs[l] % 2 == 0));
        for (int64_t b = 0; b < n / 256; b++) {
            double amax = 0;
            for (int l = 0; l < 256; l++) amax = fmax(amax, fabs(x[256 * b + l]));
            CHECK_NEAR(qk[b].d, amax / 127, 0, 1e-6);
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int l = 0; l < 16; l++) {
                    const float v = x[256 * b + 16 * g + l];
                    CHECK(fabs((double)qk[b].d * qk[b].qs[16 * g + l] - v) <= qk[b].d * 0.5000001 + 1e-30);
                    s += qk[b].qs[16 * g + l];
                }
                CHECK(qk[b].bsums[g] == s);
            }
        }
    }
}

TEST(simd_quantizers_bit_identical) {
    static float x[9 * 256];
    static cpu_q8a a0[9 * 8], a1[9 * 8];
    static block_q8_k k0[9], k1[9];
    const cpu_kernels *sc = cpu_kernels_for(CPU_ISA_SCALAR);
    int levels = 0;
    for (int isa = CPU_ISA_AVX2; isa <= CPU_ISA_AVX512; isa++) {
        const cpu_kernels *k = cpu_kernels_for((cpu_isa)isa);
        if (!k) continue;
        levels++;
        for (int rep = 0; rep < 50; rep++) {
            const int64_t n = 256 * (1 + rep % 9);
            fill_x(x, n);
            sc->quant[CPU_ACT_Q8A](x, a0, n);
            k->quant[CPU_ACT_Q8A](x, a1, n);
            CHECK_MSG(memcmp(a0, a1, sizeof(cpu_q8a) * (size_t)(n / 32)) == 0, "%s q8a differs (n %lld)", k->name, (long long)n);
            sc->quant[CPU_ACT_Q8K](x, k0, n);
            k->quant[CPU_ACT_Q8K](x, k1, n);
            CHECK_MSG(memcmp(k0, k1, sizeof(block_q8_k) * (size_t)(n / 256)) == 0, "%s q8k differs (n %lld)", k->name, (long long)n);
        }
    }
    if (!levels) SKIP("this CPU has no AVX2: only the scalar kernels exist");
}

/* One weight row against nt activation rows: scalar vs float64, each SIMD level vs scalar. */
static void check_type(uint32_t t, int64_t n, int nt, const cpu_kernels *const *lv, int n_lv, char *fail, size_t cap) {
    static uint8_t w[64 * 1024];
    static float x[4][9 * 256 + 64];
    static uint8_t q[4][12 * 1024];
    static double xd[9 * 256 + 64];
    static float wd[9 * 256 + 64];
    const cpu_act a = cpu_act_format(t);
    const size_t xs = a == CPU_ACT_F32 ? sizeof x[0] : sizeof q[0];
    fill_row(t, w, n);
    dequantize_row(t, w, wd, n);
    for (int r = 0; r < nt; r++) {
        fill_x(x[r], n);
        if (a != CPU_ACT_F32) lv[0]->quant[a](x[r], q[r], n);
    }
    const void *xa = a == CPU_ACT_F32 ? (const void *)x : (const void *)q;
    float ref[4], got[4];
    lv[0]->qdot[t](n, w, xa, xs, nt, ref);
    for (int r = 0; r < nt; r++) {
        deq_act(a, q[r], x[r], n, xd);
        double d64 = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) d64 += wd[i] * xd[i], mag += fabs(wd[i] * xd[i]);
        if (!(fabs(ref[r] - d64) <= 1e-5 * mag + 1e-6)) {
            snprintf(fail, cap, "scalar %s n=%lld row %d/%d: %.9g vs f64 %.9g (mag %g)", quant_type_name(t), (long long)n, r, nt,
                     ref[r], d64, mag);
            return;
        }
        for (int l = 1; l < n_lv; l++) {
            lv[l]->qdot[t](n, w, xa, xs, nt, got);
            /* integer types: the same bits (exact block sums, the reference's scale step) */
            if (a != CPU_ACT_F32 ? memcmp(got + r, ref + r, 4) != 0 : !(fabs(got[r] - ref[r]) <= 1e-5 * mag + 1e-6)) {
                snprintf(fail, cap, "%s %s n=%lld row %d/%d: %.9g vs scalar %.9g (mag %g)", lv[l]->name, quant_type_name(t),
                         (long long)n, r, nt, got[r], ref[r], mag);
                return;
            }
        }
    }
}

TEST(dot_kernels) {
    const cpu_kernels *lv[3];
    int n_lv = 0;
    for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_AVX512; isa++)
        if (cpu_kernels_for((cpu_isa)isa)) lv[n_lv++] = cpu_kernels_for((cpu_isa)isa);
    char fail[512] = "";
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        const int64_t bs = quant_block_size(t);
        for (int rep = 0; rep < 12; rep++) {
            /* blocks: 1, 3, 5, 7, 9 (odd counts); f32/f16/bf16: lengths 1..~2300 hitting every tail */
            const int64_t nb = 1 + 2 * (rep % 5);
            const int64_t n = bs == 1 ? (rep < 6 ? 1 + 13 * rep : 2304 - 7 * (rep - 6)) : (bs == 32 ? nb * 8 * 32 / 4 + 32 * (rep % 3) : bs * nb);
            for (int nt = 1; nt <= CPU_QDOT_NT; nt++) {
                check_type(t, n, nt, lv, n_lv, fail, sizeof fail);
                CHECK_MSG(!fail[0], "%s", fail);
            }
        }
    }
    printf("  %d kernel levels checked\n", n_lv);
}

int main(void) {
    RUN(scalar_quantizers_follow_the_format);
    RUN(simd_quantizers_bit_identical);
    RUN(dot_kernels);
    return test_summary();
}
