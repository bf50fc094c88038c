/* test_split.c - a model split over two backends (partial offload: backend.h backend_stages,
 * forward.c's stage hand-over, per-stage KV caches, session state across stages), checked on the
 * CPU: with m->gpu_layers = g set on a CPU-only model, a session runs layers 0..L-g-1 on one CPU
 * backend and the rest with the output on a second. The same kernels run the same data, so the
 * logits must equal the one-backend session's bit for bit; test_gpu.c's session_partial_offload
 * runs the real CPU + CUDA split on a GPU machine. */
#include <unistd.h>

#include "session.h"
#include "test.h"
#include "refmodel.h"

static coder_model *load(const char *file) { return test_load_refmodel(file, 0); }

/* A session of m split after its first L - g layers (g = 0: one backend). */
static coder_session *session_split(coder_model *m, int32_t g, int32_t kv_type) {
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = 256;
    sp.n_batch = 64;
    sp.n_threads = 2;
    sp.kv_type = kv_type;
    coder_session *s = NULL;
    const int32_t saved = m->gpu_layers;
    m->gpu_layers = g;   /* read once, by backend_stages_new */
    if (coder_session_new(m, &sp, &s) != CODER_OK) fprintf(stderr, "session: %s\n", coder_last_error());
    m->gpu_layers = saved;
    return s;
}

static void make_ids(int32_t *ids, int n, uint32_t seed, int32_t vocab) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        ids[i] = (int32_t)(100 + (seed >> 8) % (uint32_t)(vocab - 100));
    }
}

/* Every split point of each refdata model: a 100-token prefill (two batches) then 4 decode steps
 * give the same logits as the unsplit session, bit for bit, and every token's logits of a 20-token
 * eval_all too. */
static void split_logits_identical_for(const char *file) {
    coder_model *m = load(file);
    if (!m) SKIP("refdata model %s absent or not loadable", file);
    const int32_t L = m->hp.n_layers, V = m->hp.vocab_size;
    int32_t ids[104];
    make_ids(ids, 104, 7, V);
    float *ref = malloc((size_t)V * 5 * sizeof(float)), *all_ref = malloc((size_t)V * 20 * sizeof(float)),
          *all = malloc((size_t)V * 20 * sizeof(float));
    CHECK(ref && all_ref && all);
    for (int32_t g = 0; g < L; g++) {
        coder_session *s = session_split(m, g, CODER_KV_F16);
        CHECK(s);
        CHECK(s->stages.n == (g ? 2 : 1));
        if (g) CHECK(s->stages.first[1] == L - g && s->stages.b[0] != s->stages.b[1]);
        for (int step = 0; step < 5; step++) {
            CHECK_OK(coder_session_eval(s, step ? ids + 99 + step : ids, step ? 1 : 100));
            const float *lg;
            int32_t nv;
            CHECK_OK(coder_session_logits(s, &lg, &nv));
            if (g == 0) memcpy(ref + (size_t)step * V, lg, (size_t)V * sizeof(float));
            else CHECK_MSG(memcmp(ref + (size_t)step * V, lg, (size_t)V * sizeof(float)) == 0,
                           "%s split %d+%d: step %d logits differ from the unsplit session's", file, L - g, g, step);
        }
        CHECK_OK(coder_session_reset(s));
        CHECK_OK(coder_session_eval_all(s, ids, 20, g ? all : all_ref, (size_t)V * 20));
        if (g) CHECK_MSG(memcmp(all, all_ref, (size_t)V * 20 * sizeof(float)) == 0, "%s split %d+%d: eval_all differs", file,
                         L - g, g);
        coder_session_free(s);
    }
    printf("  info: %s: %d split points, logits equal to the unsplit session's\n", file, (int)L - 1);
    free(ref);
    free(all_ref);
    free(all);
    coder_model_free(m);
}

TEST(split_logits_identical_qwen2) { split_logits_identical_for("tiny-qwen2-q4_k_m.gguf"); }
TEST(split_logits_identical_llama) { split_logits_identical_for("tiny-llama-f16.gguf"); }

/* Session state crosses the split: a state saved by a split session loads into an unsplit one and
 * the other way round, a split session forks, and all continue with the uninterrupted logits
 * (F16 and Q8_0 caches). */
TEST(split_state_and_fork) {
    coder_model *m = load("tiny-qwen2-q4_k_m.gguf");
    if (!m) SKIP("refdata model tiny-qwen2-q4_k_m.gguf absent or not loadable");
    const int32_t L = m->hp.n_layers, V = m->hp.vocab_size;
    char path[64];
    snprintf(path, sizeof path, "/tmp/coder_split_%d.state", (int)getpid());
    int32_t ids[80];
    make_ids(ids, 80, 11, V);
    const int32_t kvs[2] = {CODER_KV_F16, CODER_KV_Q8_0};
    for (int k = 0; k < 2; k++) {
        coder_session *whole = session_split(m, 0, kvs[k]), *split = session_split(m, L / 2, kvs[k]);
        coder_session *into_whole = session_split(m, 0, kvs[k]), *into_split = session_split(m, L - 1, kvs[k]);
        coder_session *fork = NULL;
        CHECK(whole && split && into_whole && into_split);
        CHECK_OK(coder_session_eval(whole, ids, 60));
        CHECK_OK(coder_session_eval(split, ids, 60));
        CHECK_OK(coder_session_save(split, path, -1));
        CHECK_OK(coder_session_load(into_whole, path));
        CHECK_OK(coder_session_save(whole, path, -1));
        CHECK_OK(coder_session_load(into_split, path));
        CHECK_OK(coder_session_fork(split, &fork));
        coder_session *all[5] = {whole, split, into_whole, into_split, fork};
        const float *ref = NULL;
        for (int i = 0; i < 5; i++) {
            CHECK_OK(coder_session_eval(all[i], ids + 60, 20));
            const float *lg;
            int32_t nv;
            CHECK_OK(coder_session_logits(all[i], &lg, &nv));
            if (i == 0) ref = lg;
            else CHECK_MSG(memcmp(ref, lg, (size_t)V * sizeof(float)) == 0, "kv type %d: session %d of 5 differs", (int)kvs[k], i);
        }
        for (int i = 0; i < 5; i++) coder_session_free(all[i]);
    }
    unlink(path);
    coder_model_free(m);
}

/* A stage's backend caches only its own layers: a KV op for a layer of the other stage is an
 * internal error with a message, not a write outside the cache. */
TEST(stage_refuses_other_layers) {
    coder_model *m = load("tiny-qwen2-q4_k_m.gguf");
    if (!m) SKIP("refdata model tiny-qwen2-q4_k_m.gguf absent or not loadable");
    const int32_t L = m->hp.n_layers;
    coder_session *s = session_split(m, 1, CODER_KV_F16);
    CHECK(s && s->stages.n == 2);
    int32_t ids[4] = {1000, 2000, 3000, 4000};
    CHECK_OK(coder_session_eval(s, ids, 4));
    const int64_t w = (int64_t)m->hp.n_kv_heads * m->hp.head_dim;
    char *k = malloc((size_t)w * 2 * 4), *v = malloc((size_t)w * 2 * 4);
    CHECK(k && v);
    backend *b0 = s->stages.b[0], *b1 = s->stages.b[1];
    CHECK(backend_stage_of_layer(&s->stages, L - 2) == b0 && backend_stage_of_layer(&s->stages, L - 1) == b1);
    CHECK_OK(b0->ops->kv_read(b0, L - 2, 0, 4, k, v));
    CHECK_OK(b1->ops->kv_read(b1, L - 1, 0, 4, k, v));
    CHECK_STATUS(b0->ops->kv_read(b0, L - 1, 0, 4, k, v), CODER_ERR_INTERNAL);
    CHECK(strstr(coder_last_error(), "not in this backend's layers") != NULL);
    CHECK_STATUS(b1->ops->kv_load(b1, 0, 0, 4, k, v), CODER_ERR_INTERNAL);
    free(k);
    free(v);
    coder_session_free(s);
    coder_model_free(m);
}

int main(void) {
    RUN(split_logits_identical_qwen2);
    RUN(split_logits_identical_llama);
    RUN(split_state_and_fork);
    RUN(stage_refuses_other_layers);
    return test_summary();
}
