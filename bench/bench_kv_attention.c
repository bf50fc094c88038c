/* bench_kv_attention.c - attention of the last tokens over a long cache, F16 vs Q8_0 KV,
 * interleaved repetitions. Head layout of qwen2.5-coder-7b (28 heads, 4 KV heads, head_dim 128)
 * unless given: bench_kv_attention [n_ctx [threads [heads kv_heads head_dim [layers [tokens]]]]]
 * (0.5B: 14 2 64 24). With layers > 1 each repetition visits every layer in turn, as a decode step
 * does, so the cache is read from memory once it outgrows the L3; times are per layer. tokens > 1:
 * a prefill batch of that many query tokens ending at the last position. */
#include <stdio.h>
#include <stdlib.h>

#include "cpu.h"

int main(int argc, char **argv) {
    const int n_ctx = argc > 1 ? atoi(argv[1]) : 8192, threads = argc > 2 ? atoi(argv[2]) : 2,
              nh = argc > 5 ? atoi(argv[3]) : 28, nkv = argc > 5 ? atoi(argv[4]) : 4, hd = argc > 5 ? atoi(argv[5]) : 128,
              w = nkv * hd, layers = argc > 6 ? atoi(argv[6]) : 1, nq = argc > 7 ? atoi(argv[7]) : 1;
    float *k = malloc((size_t)w * 4), *q = malloc((size_t)nq * nh * hd * 4), *out = malloc((size_t)nq * nh * hd * 4);
    float *scratch = malloc(cpu_attention_scratch_floats(n_ctx, nh, nkv, hd) * threads * sizeof(float));
    for (int i = 0; i < w; i++) k[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (int i = 0; i < nq * nh * hd; i++) q[i] = (float)((i * 13) % 29) / 30.0f - 0.5f;
    kv_cache *kv[2];
    int types[2] = {CODER_KV_F16, CODER_KV_Q8_0};
    const cpu_kernels *kern = cpu_kernels_best();
    for (int t = 0; t < 2; t++) {
        if (kv_cache_new(types[t], layers, n_ctx, w, &kv[t]) != CODER_OK) return 1;
        for (int l = 0; l < layers; l++)
            for (int p = 0; p < n_ctx; p++) cpu_kv_write(kern, kv[t], l, k, k, 1, p);
    }
    threadpool *tp;
    if (threadpool_new(threads, &tp) != CODER_OK) return 1;
    double best[2] = {1e9, 1e9};
    for (int rep = 0; rep < 10; rep++)
        for (int t = 0; t < 2; t++) {
            double t0 = coder_time_now();
            for (int l = 0; l < layers; l++) {
                cpu_attention_args a = {.kv = kv[t], .layer = l, .n = nq, .n_heads = nh, .n_kv_heads = nkv, .head_dim = hd,
                                        .pos0 = n_ctx - nq, .scale = 0.125f, .q = q, .out = out, .scratch = scratch, .k = kern};
                cpu_attention(tp, &a);
            }
            double dt = (coder_time_now() - t0) / layers;
            if (dt < best[t]) best[t] = dt;
        }
    printf("attention, %d token(s) up to %d positions, %d/%d heads of %d, %d layers, %s kernels, %d threads: F16 KV %.3f ms, "
           "Q8_0 KV %.3f ms a layer (best of 10)\n", nq, n_ctx, nh, nkv, hd, layers, kern->name, threads, best[0] * 1e3, best[1] * 1e3);
    threadpool_free(tp);
    kv_cache_free(kv[0]);
    kv_cache_free(kv[1]);
    free(k), free(q), free(out), free(scratch);
    return 0;
}
