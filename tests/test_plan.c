/* test_plan.c - coder_plan_memory against hand-computed sizes of the refdata models and against what
 * coder_session_new really allocates (the allocation counters of core.h), plus bad arguments. */
#include "core.h"
#include "gguf.h"
#include "plan.h"
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

/* Plan of one explicit configuration, for checking coder_plan_fit's choices independently. */
static coder_plan plan_at(const char *file, int32_t n_ctx) {
    coder_model_params mp;
    coder_model_params_init(&mp);
    mp.n_gpu_layers = 0;
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = n_ctx;
    coder_plan p;
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    if (coder_plan_memory(model_path(file), &mp, &sp, &p) != CODER_OK) p.host_bytes = 0;
    return p;
}

/* n_ctx auto on the CPU: the largest multiple of 256 whose plan fits the host budget, the training
 * context when everything fits, NOMEM naming both figures when nothing does. */
TEST(fit_context_to_host_budget) {
    if (!test_refdata()) SKIP("refdata not found (set CODER_REFDATA)");
    const char *file = "tiny-qwen2-q4_k_m.gguf";
    coder_model_params mp;
    coder_model_params_init(&mp);
    mp.n_gpu_layers = 0;
    coder_model *m = NULL;
    mp.vocab_only = 1;
    CHECK_OK(coder_model_load(model_path(file), &mp, &m));
    coder_model_info info;
    info.size = sizeof info;
    CHECK_OK(coder_model_get_info(m, &info));
    coder_model_free(m);
    CHECK(info.n_ctx_train >= 1024);
    const uint64_t budget = plan_at(file, 1000).host_bytes;   /* 768 fits, 1024 does not */
    CHECK(budget > 0);
    coder_session_params sp;
    coder_plan p;
    char why[512];
    for (int pass = 0; pass < 3; pass++) {
        coder_model_params_init(&mp);
        mp.n_gpu_layers = 0;
        coder_session_params_init(&sp);
        sp.n_ctx = CODER_CTX_AUTO;
        memset(&p, 0, sizeof p);
        p.size = sizeof p;
        uint64_t b = pass == 0 ? budget : pass == 1 ? (uint64_t)1 << 40 : plan_at(file, 256).host_bytes - 1;
        coder_status st = coder_plan_fit(model_path(file), &mp, &sp, b, 0, &p, why, sizeof why);
        printf("  budget %llu: status %d, n_ctx %d: %s\n", (unsigned long long)b, st, (int)sp.n_ctx,
               st == CODER_OK ? why : coder_last_error());
        if (pass == 2) {
            CHECK_STATUS(st, CODER_ERR_NOMEM);
            CHECK(strstr(coder_last_error(), "MiB host") && strstr(coder_last_error(), "budget"));
            CHECK(sp.n_ctx == CODER_CTX_AUTO);   /* unchanged on error */
            continue;
        }
        CHECK_OK(st);
        CHECK(mp.n_gpu_layers == 0 && p.gpu_layers == 0 && p.n_ctx == sp.n_ctx);
        if (pass == 0) {
            CHECK_MSG(sp.n_ctx == 768, "n_ctx %d", (int)sp.n_ctx);
            CHECK(plan_at(file, 768).host_bytes <= budget && plan_at(file, 1024).host_bytes > budget);
            CHECK(p.host_bytes == plan_at(file, 768).host_bytes);
            CHECK(strstr(why, "context 768") && strstr(why, "1024 would need"));
        } else {
            CHECK_MSG(sp.n_ctx == info.n_ctx_train, "n_ctx %d, training %d", (int)sp.n_ctx, (int)info.n_ctx_train);
            CHECK(strstr(why, "training context") && strstr(why, "no GPU"));
        }
    }
    /* explicit values are kept, and checked */
    coder_session_params_init(&sp);
    sp.n_ctx = 512;
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    CHECK_OK(coder_plan_fit(model_path(file), &mp, &sp, budget, 0, &p, why, sizeof why));
    CHECK(sp.n_ctx == 512 && strstr(why, "as asked"));
    sp.n_ctx = 4096;
    CHECK_STATUS(coder_plan_fit(model_path(file), &mp, &sp, budget, 0, &p, NULL, 0), CODER_ERR_NOMEM);
    CHECK_STATUS(coder_plan_fit(model_path(file), NULL, &sp, budget, 0, &p, NULL, 0), CODER_ERR_INVALID_ARG);
    sp.n_ctx = -2;
    CHECK_STATUS(coder_plan_fit(model_path(file), &mp, &sp, budget, 0, &p, NULL, 0), CODER_ERR_INVALID_ARG);
    sp.n_ctx = CODER_CTX_AUTO;
    CHECK_STATUS(coder_plan_memory(model_path(file), &mp, &sp, &p), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "coder_plan_fit"));
}

/* The bytes of the GGUF tensors whose names start with prefix (a hand sum over the header). */
static uint64_t tensor_bytes_with_prefix(const char *file, const char *prefix) {
    gguf_file *f = NULL;
    gguf_open_opts oo = {.use_mmap = true};
    if (gguf_open(model_path(file), &oo, &f) != CODER_OK) return 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < gguf_tensor_count(f); i++)
        if (!strncmp(gguf_tensor_at(f, i)->name, prefix, strlen(prefix))) sum += gguf_tensor_at(f, i)->nbytes;
    gguf_close(f);
    return sum;
}

/* GPU layers auto with a simulated device (plan_fit's have_device): all layers when the device
 * budget holds them; one byte short, layer 0 moves back to the CPU (partial offload: the GPU has
 * the last layers) and the device plan shrinks by exactly that layer's weights and KV; without
 * room for any layer's weights and KV, none. The context is then fitted to both budgets. */
TEST(fit_gpu_layers_simulated_device) {
    if (!test_refdata()) SKIP("refdata not found (set CODER_REFDATA)");
    const char *file = "tiny-qwen2-q4_k_m.gguf";
    coder_model_params mp;
    coder_session_params sp;
    coder_plan p, all;
    char why[512];
    coder_model_params_init(&mp);
    coder_session_params_init(&sp);
    sp.n_ctx = 1024;
    memset(&all, 0, sizeof all);
    all.size = sizeof all;
    CHECK_OK(plan_fit(model_path(file), &mp, &sp, (uint64_t)1 << 40, (uint64_t)1 << 40, true, &all, why, sizeof why));
    printf("  ample device: %s\n", why);
    const int32_t L = all.n_layers;
    CHECK(mp.n_gpu_layers == L && all.gpu_layers == L && all.device_bytes > 0);
    CHECK(strstr(why, "all ") && strstr(why, "context 1024 (as asked)"));
    coder_model_params_init(&mp);
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    CHECK_OK(plan_fit(model_path(file), &mp, &sp, (uint64_t)1 << 40, all.device_bytes - 1, true, &p, why, sizeof why));
    printf("  device one byte short: %s\n", why);
    const uint64_t layer_w = tensor_bytes_with_prefix(file, "blk.0."), layer_kv = all.kv_bytes / (uint64_t)L,
                   layers_w = tensor_bytes_with_prefix(file, "blk.");
    CHECK(layer_w > 0 && layers_w > layer_w);
    CHECK(mp.n_gpu_layers == L - 1 && p.gpu_layers == L - 1 && strstr(why, " of "));
    CHECK_MSG(all.device_bytes - p.device_bytes == layer_w + layer_kv, "device plan shrank by %llu, want %llu + %llu",
              (unsigned long long)(all.device_bytes - p.device_bytes), (unsigned long long)layer_w, (unsigned long long)layer_kv);
    CHECK(p.host_bytes == all.host_bytes + layer_kv);   /* that layer's KV cache moved back to the host */
    coder_model_params_init(&mp);
    CHECK_OK(plan_fit(model_path(file), &mp, &sp, (uint64_t)1 << 40, all.device_bytes - layers_w - (uint64_t)L * layer_kv, true,
                      &p, why, sizeof why));
    printf("  device short of every layer: %s\n", why);
    CHECK(mp.n_gpu_layers == 0 && p.gpu_layers == 0 && p.device_bytes == 0 && strstr(why, "0 of"));
    /* both auto: the layers are fitted at the default context (here the training context, 4096) */
    coder_model_params_init(&mp);
    sp.n_ctx = 0;
    CHECK_OK(plan_fit(model_path(file), &mp, &sp, (uint64_t)1 << 40, (uint64_t)1 << 40, true, &all, why, sizeof why));
    for (int shorter = 0; shorter < 2; shorter++) {
        coder_model_params_init(&mp);
        sp.n_ctx = CODER_CTX_AUTO;
        memset(&p, 0, sizeof p);
        p.size = sizeof p;
        CHECK_OK(plan_fit(model_path(file), &mp, &sp, (uint64_t)1 << 40, all.device_bytes - (uint64_t)shorter, true, &p,
                          why, sizeof why));
        printf("  both auto, device budget %s: %s\n", shorter ? "one byte short" : "exact", why);
        CHECK(mp.n_gpu_layers == (shorter ? p.n_layers - 1 : p.n_layers) && p.device_bytes <= all.device_bytes);
        CHECK_MSG(sp.n_ctx == 4096, "n_ctx %d", (int)sp.n_ctx);
    }
    /* explicit 0 keeps the GPU off */
    coder_model_params_init(&mp);
    mp.n_gpu_layers = 0;
    sp.n_ctx = 512;
    CHECK_OK(plan_fit(model_path(file), &mp, &sp, (uint64_t)1 << 40, (uint64_t)1 << 40, true, &p, why, sizeof why));
    CHECK(mp.n_gpu_layers == 0 && p.device_bytes == 0 && strstr(why, "GPU off"));
}

int main(void) {
    RUN(plan_matches_hand_sizes_and_allocations);
    RUN(plan_bad_arguments);
    RUN(fit_context_to_host_budget);
    RUN(fit_gpu_layers_simulated_device);
    return test_summary();
}
