/* test_bad_threads.c - BAD_INPUTS G8 beyond test_generate's parallel sessions: on one shared model,
 * at the same time, a session generating, threads tokenizing / detokenizing / building chat
 * prompts, a thread loading and freeing other models, and a thread switching the log sink. Every
 * result must equal the one computed serially before the threads start. Runs in `make test`
 * (ASan) and in `make test-tsan` (ThreadSanitizer: no data race may be reported). */
#include <pthread.h>
#include <stdatomic.h>

#include "core.h"
#include "test.h"

static coder_model *model;
static char model_path[4096], vocab_path[4096];

static const char TEXT[] = "def quicksort(xs):\n    return xs if len(xs) < 2 else  # \xe4\xbd\xa0\xe5\xa5\xbd <|im_end|>";
static int32_t ref_ids[256];
static size_t ref_n;
static int32_t ref_chat[256];
static size_t ref_chat_n;
static int32_t ref_gen[32];
static size_t ref_gen_n;
static const coder_chat_message MSGS[2] = {{"system", "Be brief."}, {"user", "Sort a list <|im_start|>"}};

static coder_status generate(int32_t *out, size_t *n) {
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.n_threads = 1;
    coder_session *s = NULL;
    TRY(coder_session_new(model, &sp, &s));
    coder_gen_params gp;
    coder_gen_params_init(&gp);
    gp.temperature = 0;
    gp.max_tokens = 12;
    coder_result r;
    coder_result_init(&r);
    coder_status st = coder_generate(s, "def fib(n):", 11, &gp, &r);
    if (st == CODER_OK) {
        *n = r.n_tokens;
        memcpy(out, r.tokens, r.n_tokens * sizeof *out);
    }
    coder_result_clear(&r);
    coder_session_free(s);
    return st;
}

static atomic_int failures;
#define T_FAIL(...) do { printf("# " __VA_ARGS__); printf("\n"); atomic_fetch_add(&failures, 1); } while (0)

static void *gen_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 1; i++) {
        int32_t ids[32];
        size_t n = 0;
        if (generate(ids, &n) != CODER_OK || n != ref_gen_n || memcmp(ids, ref_gen, n * sizeof *ids))
            T_FAIL("generation %d differs from the serial one (%s)", i, coder_last_error());
    }
    return NULL;
}

static void *tok_thread(void *arg) {
    int iters = *(int *)arg;
    for (int i = 0; i < iters; i++) {
        int32_t ids[256];
        size_t n = 0, len = 0;
        char buf[512];
        if (coder_tokenize(model, TEXT, sizeof TEXT - 1, 0, ids, 256, &n) != CODER_OK || n != ref_n ||
            memcmp(ids, ref_ids, n * sizeof *ids))
            T_FAIL("tokenize %d differs", i);
        if (coder_detokenize(model, ids, n, 0, buf, sizeof buf, &len) != CODER_OK || len != sizeof TEXT - 1 ||
            memcmp(buf, TEXT, len))
            T_FAIL("detokenize %d differs", i);
        if (coder_chat_tokens(model, CODER_CHAT_AUTO, MSGS, 2, CODER_CHAT_ADD_GENERATION_PROMPT, ids, 256, &n) != CODER_OK ||
            n != ref_chat_n || memcmp(ids, ref_chat, n * sizeof *ids))
            T_FAIL("chat_tokens %d differs", i);
    }
    return NULL;
}

static void sink(coder_log_level l, const char *msg, void *ud) {
    (void)l;
    (void)msg;
    atomic_fetch_add((atomic_int *)ud, 1);
}
static atomic_int n_logged;

static void *load_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 2; i++) {
        coder_log_set(i % 2 ? NULL : sink, &n_logged, CODER_LOG_DEBUG);
        coder_model_params p;
        coder_model_params_init(&p);
        p.vocab_only = 1;
        coder_model *m = NULL;
        if (coder_model_load(vocab_path, &p, &m) != CODER_OK) T_FAIL("load %d: %s", i, coder_last_error());
        /* a bad load in between: its error message is per thread and must not disturb the others */
        coder_model *bad = (coder_model *)0x1;
        if (coder_model_load("/nonexistent.gguf", NULL, &bad) != CODER_ERR_IO || bad) T_FAIL("bad load %d", i);
        if (coder_model_free(m) != CODER_OK) T_FAIL("free %d", i);
    }
    coder_log_set(NULL, NULL, CODER_LOG_NONE);
    return NULL;
}

TEST(shared_model_concurrent_use) {
    const char *d = test_refdata();
    if (!d) SKIP("refdata not found (set CODER_REFDATA)");
    snprintf(model_path, sizeof model_path, "%s/models/tiny-qwen2-q4_k_m.gguf", d);
    snprintf(vocab_path, sizeof vocab_path, "%s/vocab/ggml-vocab-qwen2.gguf", d);
    coder_model_params mp;
    coder_model_params_init(&mp);
    mp.n_gpu_layers = 0;
    CHECK_OK(coder_model_load(model_path, &mp, &model));
    /* serial references */
    CHECK_OK(coder_tokenize(model, TEXT, sizeof TEXT - 1, 0, ref_ids, 256, &ref_n));
    CHECK_OK(coder_chat_tokens(model, CODER_CHAT_AUTO, MSGS, 2, CODER_CHAT_ADD_GENERATION_PROMPT, ref_chat, 256,
                               &ref_chat_n));
    CHECK_OK(generate(ref_gen, &ref_gen_n));
    CHECK(ref_n > 10 && ref_chat_n > ref_n / 2 && ref_gen_n > 0);

    pthread_t th[5];
    int iters = 6;
    pthread_create(&th[0], NULL, gen_thread, NULL);
    pthread_create(&th[1], NULL, gen_thread, NULL);
    pthread_create(&th[2], NULL, tok_thread, &iters);
    pthread_create(&th[3], NULL, tok_thread, &iters);
    pthread_create(&th[4], NULL, load_thread, NULL);
    for (int i = 0; i < 5; i++) pthread_join(th[i], NULL);
    coder_status fr = coder_model_free(model);
    model = NULL;
    CHECK_OK(fr);
    CHECK_MSG(atomic_load(&failures) == 0, "%d mismatches (lines above)", atomic_load(&failures));
}

int main(void) {
    RUN(shared_model_concurrent_use);
    return test_summary();
}
