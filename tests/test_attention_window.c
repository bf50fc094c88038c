/* test_attention_window.c - the CPU attention's sliding window (gemma3) and q.k scale against a
 * float64 reference written out here: position p attends to keys max(0, p-window+1) .. p. Every
 * kernel level, 11 query tokens (the SIMD levels take them in tiles of up to 4 without a window)
 * over 300 positions (several key and value blocks). */
#include <math.h>

#include "test.h"

#include "cpu.h"

static float frand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* out [n][nh*hd] for queries at pos0.. over the cache, in double. */
static void ref_attention(const float *kc, const float *vc, const float *q, int n, int32_t pos0, int nh, int nkv,
                          int hd, int window, double scale, double *out) {
    for (int t = 0; t < n; t++)
        for (int h = 0; h < nh; h++) {
            const int g = h / (nh / nkv), pos = pos0 + t;
            const int lo = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
            double mx = -INFINITY, sum = 0, s[512];
            for (int p = lo; p <= pos; p++) {
                double d = 0;
                for (int i = 0; i < hd; i++) d += (double)q[(t * nh + h) * hd + i] * kc[(p * nkv + g) * hd + i];
                s[p - lo] = d * scale;
                if (s[p - lo] > mx) mx = s[p - lo];
            }
            for (int p = lo; p <= pos; p++) sum += (s[p - lo] = exp(s[p - lo] - mx));
            for (int i = 0; i < hd; i++) {
                double acc = 0;
                for (int p = lo; p <= pos; p++) acc += s[p - lo] / sum * vc[(p * nkv + g) * hd + i];
                out[(t * nh + h) * hd + i] = acc;
            }
        }
}

static void check_window(int window, float scale) {
    enum { NH = 4, NKV = 2, HD = 16, CTX = 300, N = 11 };
    const int32_t pos0 = CTX - N;
    kv_cache *kv = NULL;
    threadpool *tp = NULL;
    static float kc[CTX * NKV * HD], vc[CTX * NKV * HD], q[N * NH * HD], o[N * NH * HD];
    static double ref[N * NH * HD];
    float *scratch = malloc(2 * cpu_attention_scratch_floats(CTX, NH, NKV, HD) * sizeof(float));
    CHECK(scratch);
    CHECK_OK(kv_cache_new(CODER_KV_F32, 1, CTX, NKV * HD, &kv));
    CHECK_OK(threadpool_new(2, &tp));
    if (!kv || !tp) goto out;
    uint32_t seed = 7u + (uint32_t)window;
    for (int i = 0; i < CTX * NKV * HD; i++) kc[i] = 2.0f * frand(&seed), vc[i] = frand(&seed);
    for (int i = 0; i < N * NH * HD; i++) q[i] = 2.0f * frand(&seed);
    for (int p = 0; p < CTX; p++) {
        memcpy(kv_cache_k_row(kv, 0, p), kc + p * NKV * HD, NKV * HD * sizeof(float));
        memcpy(kv_cache_v_row(kv, 0, p), vc + p * NKV * HD, NKV * HD * sizeof(float));
    }
    ref_attention(kc, vc, q, N, pos0, NH, NKV, HD, window, scale, ref);
    for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_AVX512; isa++) {
        const cpu_kernels *k = cpu_kernels_for((cpu_isa)isa);
        if (!k) continue;
        cpu_attention_args a = {.kv = kv, .layer = 0, .n = N, .n_heads = NH, .n_kv_heads = NKV, .head_dim = HD,
                                .pos0 = pos0, .window = window, .scale = scale, .q = q, .out = o, .scratch = scratch, .k = k};
        cpu_attention(tp, &a);
        double worst = 0;
        for (int i = 0; i < N * NH * HD; i++)
            if (fabs(o[i] - ref[i]) > worst) worst = fabs(o[i] - ref[i]);
        CHECK_MSG(worst < 1e-5, "%s, window %d: max abs error %g", k->name, window, worst);
    }
out:
    free(scratch);
    threadpool_free(tp);
    kv_cache_free(kv);
}

TEST(full_causal) { check_window(0, 0.25f); }
TEST(sliding_window_5) { check_window(5, 0.25f); }
TEST(window_1_is_own_value) { check_window(1, 0.1f); }
TEST(window_wider_than_context) { check_window(1000, 0.25f); }

/* A window actually changes the result (the test above would pass if window were ignored only when
 * the reference ignored it too). */
TEST(window_matters) {
    /* scores 1, 1, 2: full = (10e + 5e) / (2e + e^2) = 3.18; window 2 = 5e / (e + e^2) = 1.34 */
    float kc[3 * 2] = {1, 0, 0, 1, 1, 1}, vc[3 * 2] = {10, 0, 5, 5, 0, 1}, q[2] = {1, 1};
    double full[2], win[2];
    ref_attention(kc, vc, q, 1, 2, 1, 1, 2, 0, 1.0, full);
    ref_attention(kc, vc, q, 1, 2, 1, 1, 2, 2, 1.0, win);
    CHECK_NEAR(full[0], 15.0 / (2.0 + exp(1.0)), 1e-9, 0);
    CHECK_NEAR(win[0], 5.0 / (1.0 + exp(1.0)), 1e-9, 0);
}

int main(void) {
    RUN(full_causal);
    RUN(sliding_window_5);
    RUN(window_1_is_own_value);
    RUN(window_wider_than_context);
    RUN(window_matters);
    return test_summary();
}
