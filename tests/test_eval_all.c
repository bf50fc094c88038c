/* test_eval_all.c - coder_session_eval_all (the logits of every position, used by `coder
 * perplexity`) against llama.cpp's logits of every prompt position (refdata
 * logits/tiny-llama/f32/p1_code.all.f32), across batch boundaries and after a first call. */
#include "test.h"
#include "refmodel.h"

#include "coderinfer.h"
#include "core.h"   /* coder_alloc_fail_after */
#include "forward.h"
#include "session.h"

static coder_model *load_ref_model(const char *file) { return test_load_refmodel(file, -1); }

TEST(every_position_matches_reference) {
    if (!test_refdata()) SKIP("refdata not found (set CODER_REFDATA)");
    char path[4096];
    snprintf(path, sizeof path, "%s/logits/prompts/p1_code.txt", test_refdata());
    size_t text_len = 0, ref_bytes = 0;
    char *text = test_read_file(path, &text_len);
    snprintf(path, sizeof path, "%s/logits/tiny-llama/f32/p1_code.all.f32", test_refdata());
    float *ref = test_read_file(path, &ref_bytes);
    coder_model *m = load_ref_model("tiny-llama-f16.gguf");
    CHECK(text && ref && m);
    if (!text || !ref || !m) goto out;
    int32_t tok[64];
    size_t n = 0;
    CHECK_OK(coder_tokenize(m, text, text_len, CODER_TOKENIZE_ADD_SPECIAL | CODER_TOKENIZE_PARSE_SPECIAL, tok, 64, &n));
    const size_t vocab = 32000;
    CHECK_MSG(n == 21 && ref_bytes == n * vocab * 4, "%zu tokens, %zu reference bytes", n, ref_bytes);
    if (n != 21 || ref_bytes != n * vocab * 4) goto out;

    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.n_batch = 8;   /* 21 tokens: three batches, so row offsets across batches are exercised */
    sp.kv_type = CODER_KV_F32;
    coder_session *s = NULL;
    CHECK_OK(coder_session_new(m, &sp, &s));
    float *all = malloc(n * vocab * sizeof *all);
    /* In two calls (5 then 16 tokens) to check positions continue from n_past. */
    CHECK_OK(coder_session_eval_all(s, tok, 5, all, 5 * vocab));
    CHECK_OK(coder_session_eval_all(s, tok + 5, n - 5, all + 5 * vocab, (n - 5) * vocab));
    double worst = 0;
    for (size_t t = 0; t < n; t++) {
        double e = test_rel_rms(all + t * vocab, ref + t * vocab, vocab);
        if (e > worst) worst = e;
    }
    printf("  worst position rel rms %.3g\n", worst);
    CHECK_MSG(worst < 1e-3, "worst position rel rms %g", worst);
    const float *last;
    int32_t nv;
    CHECK_OK(coder_session_logits(s, &last, &nv));
    CHECK(nv == (int32_t)vocab && memcmp(last, all + (n - 1) * vocab, vocab * sizeof *last) == 0);
    CHECK(coder_session_n_past(s) == (int32_t)n);
    coder_session_free(s);
    free(all);
out:
    coder_model_free(m);
    free(text);
    free(ref);
}

TEST(bad_arguments) {
    if (!test_refdata()) SKIP("refdata not found (set CODER_REFDATA)");
    coder_model *m = load_ref_model("tiny-llama-f16.gguf");
    CHECK(m);
    if (!m) return;
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = 16;
    coder_session *s = NULL;
    CHECK_OK(coder_session_new(m, &sp, &s));
    int32_t tok[4] = {1, 822, 18755, 265};
    float *buf = malloc(4 * 32000 * sizeof *buf);
    CHECK_STATUS(coder_session_eval_all(s, tok, 4, buf, 4 * 32000 - 1), CODER_ERR_BUFFER_TOO_SMALL);
    CHECK(strstr(coder_last_error(), "floats") != NULL);
    CHECK_STATUS(coder_session_eval_all(s, tok, 4, NULL, 0), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "logits") != NULL);
    CHECK_STATUS(coder_session_eval_all(NULL, tok, 4, buf, 4 * 32000), CODER_ERR_INVALID_ARG);
    CHECK(coder_session_n_past(s) == 0);   /* refused calls evaluated nothing */
    tok[2] = 32000;
    CHECK_STATUS(coder_session_eval_all(s, tok, 4, buf, 4 * 32000), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "tokens[2]") != NULL);
    coder_session_free(s);
    coder_model_free(m);
    free(buf);
}

/* Evaluation allocates nothing once the session exists (issue 9 item 3): with every allocation
 * made to fail, a 40-token prefill (the GEMM, whose panels come from the session's scratch), a
 * 3-token batch and single-token decode steps still succeed, for integer and F16 weights. */
TEST(evaluation_allocates_nothing) {
    if (!test_refdata()) SKIP("refdata not found (set CODER_REFDATA)");
    const char *files[] = {"tiny-qwen2-q4_k_m.gguf", "tiny-llama-f16.gguf"};
    for (int f = 0; f < 2; f++) {
        coder_model *m = load_ref_model(files[f]);
        CHECK(m);
        coder_session_params sp;
        coder_session_params_init(&sp);
        sp.n_ctx = 128;
        sp.n_batch = 64;
        coder_session *s = NULL;
        CHECK_OK(coder_session_new(m, &sp, &s));
        int32_t tok[48];
        for (int i = 0; i < 48; i++) tok[i] = 100 + 7 * i;
        coder_alloc_fail_after(0);
        coder_status a = coder_session_eval(s, tok, 40), b = coder_session_eval(s, tok + 40, 3),
                     c = coder_session_eval(s, tok + 43, 1), d = coder_session_eval(s, tok + 44, 1);
        coder_alloc_fail_after(-1);
        char why[256];
        snprintf(why, sizeof why, "%s", coder_last_error());
        coder_session_free(s);
        coder_model_free(m);
        CHECK_MSG(a == CODER_OK && b == CODER_OK && c == CODER_OK && d == CODER_OK, "%s: statuses %d %d %d %d (%s)",
                  files[f], a, b, c, d, why);
    }
}

/* A greedy step leaves its logits on the backend (session_eval_greedy); an eval_all that then
 * needs a larger logits buffer replaces that buffer, and a cancel arriving after the embedding
 * leaves the new one unwritten. The session must still hand out the greedy step's logits. */
static coder_session *cancel_target;
static void cancel_after_embedding(void *ud, const char *name, const char *op, const float *data, int64_t rows,
                                   int64_t cols) {
    (void)ud, (void)op, (void)data, (void)rows, (void)cols;
    if (strcmp(name, "embd") == 0) atomic_store(&cancel_target->cancel, true);
}

TEST(cancelled_eval_all_keeps_pending_logits) {
    coder_model *m = test_load_refmodel("tiny-llama-f16.gguf", 0);
    if (!m) SKIP("refdata model tiny-llama-f16.gguf absent or not loadable");
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.n_batch = 16;
    coder_session *s = NULL;
    CHECK_OK(coder_session_new(m, &sp, &s));
    const int32_t vocab = m->hp.vocab_size;
    float *want = malloc((size_t)vocab * sizeof *want), *all = malloc((size_t)8 * vocab * sizeof *all);
    CHECK(want && all);
    int32_t prompt[4] = {1, 450, 4996, 17354}, toks[8] = {100, 200, 300, 400, 500, 600, 700, 800}, next = -1;
    CHECK_OK(session_eval(s, prompt, 4));
    CHECK_OK(session_eval_greedy(s, 1000, &next));
    CHECK(s->logits_pending);
    CHECK_OK(forward_read_logits(s->engine, want));
    cancel_target = s;
    CHECK_OK(forward_set_debug(s->engine, cancel_after_embedding, NULL));
    coder_status st = session_eval_all(s, toks, 8, all);
    CHECK_OK(forward_set_debug(s->engine, NULL, NULL));
    atomic_store(&s->cancel, false);
    const float *l = NULL;
    CHECK_STATUS(st, CODER_ERR_CANCELLED);
    CHECK(coder_session_n_past(s) == 5);
    CHECK_OK(coder_session_logits(s, &l, NULL));
    CHECK_MSG(memcmp(l, want, (size_t)vocab * sizeof *want) == 0, "the greedy step's logits were lost");
    int32_t best = 0;
    for (int32_t i = 1; i < vocab; i++)
        if (l[i] > l[best]) best = i;
    CHECK(best == next);
    free(want);
    free(all);
    coder_session_free(s);
    coder_model_free(m);
}

int main(void) {
    RUN(every_position_matches_reference);
    RUN(bad_arguments);
    RUN(evaluation_allocates_nothing);
    RUN(cancelled_eval_all_keeps_pending_logits);
    return test_summary();
}
