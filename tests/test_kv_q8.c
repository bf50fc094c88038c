/* test_kv_q8.c - the Q8_0 KV cache (CODER_KV_Q8_0, and CODER_KV_Q8_0_Q4_0: Q4_0 V rows; tolerance at
 * Q4_0_V_EXTRA) against llama.cpp's reference logits and against
 * the F16 cache, on every refdata model and prompt, and its fused attention kernels against a
 * float64 reference on hand-built rows.
 *
 * Stated tolerance: Q8_0 KV logits within 5e-2 relative rms (rms(a-b)/std(b)) of the F32-KV
 * reference, and within 5e-2 of the F16-KV logits. Observed: 0.8-3.0e-2 on these random-weight
 * models, whose sharp attention amplifies rounding (F16 KV: 0.4-1.1e-3). Q8_0 rounds each value to
 * 1/254 of its block's largest magnitude; the figures are printed and recorded in docs/PERF.md. */
#include "cpu.h"
#include "session.h"
#include "test.h"
#include "refmodel.h"

/* Q8_0 K + Q4_0 V: Q4_0 rounds each V value to 1/15 of its block's range (vs 1/254 for Q8_0), and
 * these random-weight models amplify it: measured 0.12-0.29 rel rms against F16 KV, so the bound
 * is the Q8_0 one plus 0.30. On real models the effect is a perplexity change (docs/PERF.md). */
#define Q4_0_V_EXTRA 0.30

static coder_model *load(const char *file) { return test_load_refmodel(file, 0); }

static int read_prompt(const char *json_path, int32_t *ids, int cap) {
    char *js = test_read_file(json_path, NULL);
    if (!js) return -1;
    int n = 0;
    const char *p = strstr(js, "\"prompt_tokens\"");
    p = p ? strchr(p, '[') : NULL;
    while (p && *p != ']' && n < cap) {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1) break;
        ids[n++] = (int32_t)v;
        p = end;
    }
    free(js);
    return n;
}

/* Last-position logits of ids with a cache of kv_type (caller frees). */
static float *eval_logits(coder_model *m, const int32_t *ids, int n, int kv_type) {
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = 1024;
    sp.n_threads = 2;
    sp.kv_type = kv_type;
    coder_session *s = NULL;
    if (coder_session_new(m, &sp, &s) != CODER_OK) return NULL;
    float *out = NULL;
    const float *lg;
    int32_t nv;
    if (coder_session_eval(s, ids, (size_t)n) == CODER_OK && coder_session_logits(s, &lg, &nv) == CODER_OK &&
        (out = malloc((size_t)nv * 4)))
        memcpy(out, lg, (size_t)nv * 4);
    coder_session_free(s);
    return out;
}

static void kv_vs_reference_case(int kv_type, double extra);

TEST(q8_0_kv_vs_reference) { kv_vs_reference_case(CODER_KV_Q8_0, 0); }
TEST(q8_0_q4_0_kv_vs_reference) { kv_vs_reference_case(CODER_KV_Q8_0_Q4_0, Q4_0_V_EXTRA); }

/* extra: added to the tolerances for the coarser V rounding of Q8_0_Q4_0 */
static void kv_vs_reference_case(int kv_type, double extra) {
    if (!test_refdata()) SKIP("refdata not found (set CODER_REFDATA)");
    const char *name = kv_type == CODER_KV_Q8_0 ? "Q8_0" : "Q8_0/Q4_0";
    /* Tolerances: F16 weights (activations stay f32): the Q8_0 rounding of K and V alone, 5e-2
     * (measured <= 0.031). Q4_K_M weights: activations are quantized to 8 bits before every matmul
     * and on these random-weight models a small change flips later roundings (the F16-KV run is
     * already 0.03-0.04 from llama.cpp's), so the bound is test_forward's q4_k_m one, 8e-2. */
    struct { const char *file, *dir, *variant; double tol; } models[] = {
        {"tiny-llama-f16.gguf", "tiny-llama", "f32", 5e-2},
        {"tiny-qwen2-q4_k_m.gguf", "tiny-qwen2", "q4_k_m", 8e-2},
    };
    const char *prompts[] = {"p1_code", "p2_chatml", "p3_text", "p4_long"};
    for (size_t mi = 0; mi < 2; mi++) {
        double worst_ref = 0, worst_f16 = 0;
        coder_model *m = load(models[mi].file);
        CHECK(m);
        for (size_t pi = 0; pi < 4; pi++) {
            char path[4096];
            int32_t ids[1024];
            snprintf(path, sizeof path, "%s/logits/%s/%s/%s.json", test_refdata(), models[mi].dir, models[mi].variant,
                     prompts[pi]);
            int n = read_prompt(path, ids, 1024);
            snprintf(path, sizeof path, "%s/logits/%s/%s/%s.last.f32", test_refdata(), models[mi].dir,
                     models[mi].variant, prompts[pi]);
            size_t bytes = 0;
            float *ref = test_read_file(path, &bytes);
            float *q8 = n > 0 ? eval_logits(m, ids, n, kv_type) : NULL;
            float *f16 = n > 0 ? eval_logits(m, ids, n, CODER_KV_F16) : NULL;
            int ok = ref && q8 && f16 && bytes / 4 == (size_t)m->hp.vocab_size;
            double e_ref = ok ? test_rel_rms(q8, ref, bytes / 4) : 1e9, e_f16 = ok ? test_rel_rms(q8, f16, bytes / 4) : 1e9,
                   f16_ref = ok ? test_rel_rms(f16, ref, bytes / 4) : 1e9;
            printf("  %-10s %-9s %3d tokens: %s KV vs ref %.3g, vs F16 KV %.3g (F16 KV vs ref %.3g)\n", models[mi].dir,
                   prompts[pi], n, name, e_ref, e_f16, f16_ref);
            free(ref);
            free(q8);
            free(f16);
            worst_ref = fmax(worst_ref, e_ref);
            worst_f16 = fmax(worst_f16, e_f16);
        }
        coder_model_free(m);
        CHECK_MSG(worst_ref < models[mi].tol + extra && worst_f16 < models[mi].tol + extra,
                  "%s %s: worst rel rms vs ref %g, vs F16 %g (tolerance %g)", models[mi].dir, name, worst_ref, worst_f16,
                  models[mi].tol + extra);
    }
}

/* The fused Q8_0 attention against float64 over the dequantized cache, on a hand-built cache. */
static void attention_kernel_case(int kv_type);

TEST(q8_0_attention_kernel) { attention_kernel_case(CODER_KV_Q8_0); }
TEST(q8_0_q4_0_attention_kernel) { attention_kernel_case(CODER_KV_Q8_0_Q4_0); }

static void attention_kernel_case(int kv_type) {
    const int n_heads = 4, n_kv = 2, hd = 64, n_ctx = 70, width = n_kv * hd;
    const uint32_t vq = kv_type == CODER_KV_Q8_0 ? QT_Q8_0 : QT_Q4_0;
    kv_cache *kv = NULL;
    CHECK_OK(kv_cache_new(kv_type, 1, n_ctx, width, &kv));
    CHECK(kv->row_bytes == (size_t)width / 32 * 34);
    CHECK(kv->v_row_bytes == (size_t)width / 32 * (vq == QT_Q8_0 ? 34 : 18));
    float *k = malloc((size_t)n_ctx * width * 4), *v = malloc((size_t)n_ctx * width * 4);
    float *q = malloc((size_t)n_heads * hd * 4), *out = malloc((size_t)n_heads * hd * 4), *deq = malloc((size_t)width * 4);
    float *scratch = malloc(cpu_attention_scratch_floats(n_ctx, n_heads, n_kv, hd) * 2 * sizeof(float));   /* 2 threads */
    CHECK(k && v && q && out && deq && scratch);
    uint32_t seed = 12345;
    for (int i = 0; i < n_ctx * width; i++) {
        seed = seed * 1664525u + 1013904223u;
        k[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 4;
        seed = seed * 1664525u + 1013904223u;
        v[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 2;
    }
    for (int i = 0; i < n_heads * hd; i++) q[i] = (float)sin(i * 0.37) * 0.8f;
    for (int isa = 0; isa < 3; isa++) {
        const cpu_kernels *kern = cpu_kernels_for((cpu_isa)isa);
        if (!kern) continue;
        cpu_kv_write(kern, kv, 0, k, v, n_ctx, 0);
        threadpool *tp = NULL;
        CHECK_OK(threadpool_new(2, &tp));
        const int32_t pos = n_ctx - 1;
        cpu_attention_args a = {.kv = kv, .layer = 0, .n = 1, .n_heads = n_heads, .n_kv_heads = n_kv, .head_dim = hd,
                                .pos0 = pos, .scale = 1.0f / sqrtf((float)hd), .q = q, .out = out, .scratch = scratch,
                                .k = kern};
        cpu_attention(tp, &a);
        threadpool_free(tp);
        double worst = 0;
        for (int h = 0; h < n_heads; h++) {
            int g = h / (n_heads / n_kv);
            double sc[70], mx = -1e300, sum = 0, o[64] = {0};
            for (int p = 0; p <= pos; p++) {
                CHECK_OK(dequantize_row(QT_Q8_0, kv_cache_k_row(kv, 0, p), deq, width));
                double d = 0;
                for (int j = 0; j < hd; j++) d += (double)q[h * hd + j] * deq[g * hd + j];
                sc[p] = d / sqrt((double)hd);
                mx = fmax(mx, sc[p]);
            }
            for (int p = 0; p <= pos; p++) sum += (sc[p] = exp(sc[p] - mx));
            for (int p = 0; p <= pos; p++) {
                CHECK_OK(dequantize_row(vq, kv_cache_v_row(kv, 0, p), deq, width));
                for (int j = 0; j < hd; j++) o[j] += sc[p] / sum * deq[g * hd + j];
            }
            for (int j = 0; j < hd; j++) worst = fmax(worst, fabs(o[j] - out[h * hd + j]));
        }
        printf("  %s, V %s: max abs error vs float64 %.3g\n", kern->name, quant_type_name(vq), worst);
        CHECK_MSG(worst < 1e-5, "%s: %g", kern->name, worst);
    }
    kv_cache_free(kv);
    free(k), free(v), free(q), free(out), free(deq), free(scratch);
}

int main(void) {
    RUN(q8_0_attention_kernel);
    RUN(q8_0_q4_0_attention_kernel);
    RUN(q8_0_kv_vs_reference);
    RUN(q8_0_q4_0_kv_vs_reference);
    return test_summary();
}
