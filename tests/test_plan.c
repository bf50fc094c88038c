/* test_plan.c - coder_plan_memory against hand-computed sizes of the refdata models and against what
 * coder_session_new really allocates (the allocation counters of core.h), plus bad arguments. */
#include "core.h"
#include "test.h"

static char path[4096];
static const char *model_path(const char *file) {
    snprintf(path, sizeof path, "%s/models/%s", test_refdata(), file);
    return path;
}

TEST(plan_matches_hand_sizes_and_allocations) {
    if (!test_refdata()) SKIP("refdata not found (set CODER_REFDATA)");
    const char *files[] = {"tiny-llama-f16.gguf", "tiny-qwen2-q4_k_m.gguf"};
    for (int fi = 0; fi < 2; fi++) {
        coder_model_params mp;
        coder_model_params_init(&mp);
        mp.n_gpu_layers = 0;
        coder_model *m = NULL;
        CHECK_OK(coder_model_load(model_path(files[fi]), &mp, &m));
        coder_model_info info;
        info.size = sizeof info;
        CHECK_OK(coder_model_get_info(m, &info));
        for (int kvt = 0; kvt < 3; kvt++) {
            coder_session_params sp;
            coder_session_params_init(&sp);
            sp.n_ctx = 1000;
            sp.n_threads = 2;
            sp.kv_type = kvt;
            coder_plan p;
            memset(&p, 0, sizeof p);
            p.size = sizeof p;
            CHECK_OK(coder_plan_memory(model_path(files[fi]), &mp, &sp, &p));
            /* hand sizes: width = kv heads * head_dim values a row, K and V, every layer */
            uint64_t width = (uint64_t)info.n_kv_heads * (uint64_t)info.head_dim;
            uint64_t row[3] = {width * 2, width * 4, width / 32 * 34};
            CHECK(p.n_ctx == 1000 && p.n_layers == info.n_layers && p.kv_type == kvt && p.gpu_layers == 0);
            for (int t = 0; t < 3; t++) CHECK(p.kv_bytes_per_token_by_type[t] == 2 * (uint64_t)info.n_layers * row[t]);
            CHECK(p.kv_bytes == 1000 * p.kv_bytes_per_token);
            CHECK_MSG(p.weight_bytes == info.weight_bytes, "plan %llu, model %llu", (unsigned long long)p.weight_bytes,
                      (unsigned long long)info.weight_bytes);
            CHECK(p.host_bytes >= p.kv_bytes + p.scratch_bytes && p.device_bytes == 0);
            /* what a session really allocates: within 5% of KV + scratch */
            coder_session *s = NULL;
            if (kvt == 0) {   /* the first session of a model may fill model-level caches: not per session */
                CHECK_OK(coder_session_new(m, &sp, &s));
                coder_session_free(s);
            }
            size_t before = coder_alloc_current_bytes();
            CHECK_OK(coder_session_new(m, &sp, &s));
            double got = (double)(coder_alloc_current_bytes() - before), want = (double)(p.kv_bytes + p.scratch_bytes);
            coder_session_free(s);
            printf("  %s kv %d: session allocates %.0f bytes, plan %.0f (%.2f%%)\n", files[fi], kvt, got, want,
                   100 * (want - got) / got);
            CHECK_MSG(fabs(want - got) <= 0.05 * got, "allocated %.0f, planned %.0f", got, want);
        }
        CHECK_OK(coder_model_free(m));
    }
}

TEST(plan_bad_arguments) {
    coder_plan p;
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    CHECK_STATUS(coder_plan_memory("/nonexistent/model.gguf", NULL, NULL, &p), CODER_ERR_IO);
    CHECK_STATUS(coder_plan_memory(NULL, NULL, NULL, &p), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "path"));
    p.size = 3;
    CHECK_STATUS(coder_plan_memory("/nonexistent", NULL, NULL, &p), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "plan->size"));
    if (!test_refdata()) SKIP("refdata not found (set CODER_REFDATA)");
    p.size = sizeof p;
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.kv_type = 9;
    CHECK_STATUS(coder_plan_memory(model_path("tiny-llama-f16.gguf"), NULL, &sp, &p), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "kv_type"));
    /* a vocabulary-only file has no model shape */
    char vpath[4096];
    snprintf(vpath, sizeof vpath, "%s/vocab/ggml-vocab-qwen2.gguf", test_refdata());
    coder_status st = coder_plan_memory(vpath, NULL, NULL, &p);
    CHECK_MSG(st == CODER_ERR_FORMAT || st == CODER_ERR_UNSUPPORTED, "status %d: %s", st, coder_last_error());
    CHECK(st != CODER_ERR_UNSUPPORTED || strstr(coder_last_error(), "token_embd"));
}

int main(void) {
    RUN(plan_matches_hand_sizes_and_allocations);
    RUN(plan_bad_arguments);
    return test_summary();
}
