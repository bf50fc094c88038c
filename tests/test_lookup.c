/* test_lookup.c - prompt-lookup decoding (lib/lookup.c, coder_gen_params.lookup_draft) on the
 * refdata models: drafts come from the most recent earlier occurrence of the last 4/3/2 tokens and
 * never hold an end-of-generation token; verifying greedy's own continuation keeps all of it and a
 * wrong token cuts the draft there, leaving the session (tokens, logits: the batch row of the last
 * kept token, taken from the backend when asked for) as one-token steps would;
 * whole generations with lookup equal plain greedy ones (tokens, text, session length, final
 * logits), also when max_tokens or a stop string ends them inside a verified batch. */
#include "test.h"
#include "refmodel.h"

#include "lookup.h"

static coder_session *session_for(coder_model *m) {
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = 512;
    sp.n_threads = 2;
    coder_session *s = NULL;
    if (coder_session_new(m, &sp, &s) != CODER_OK) fprintf(stderr, "session: %s\n", coder_last_error());
    return s;
}

TEST(draft_from_latest_occurrence) {
    coder_model *m = test_load_refmodel("tiny-qwen2-q4_k_m.gguf", 0);
    if (!m) SKIP("refdata model tiny-qwen2-q4_k_m.gguf absent or not loadable");
    coder_session *s = session_for(m);
    CHECK(s != NULL);
    /* ... 10 11 12 [13 14 15] ... 10 11 12 [20 21] ... 10 11 +last 12: the latest "10 11 12" wins */
    const int32_t ctx[] = {5, 10, 11, 12, 13, 14, 15, 6, 7, 10, 11, 12, 20, 21, 8, 9, 10, 11};
    CHECK_OK(session_eval(s, ctx, sizeof ctx / sizeof ctx[0]));
    int32_t d[LOOKUP_MAX_DRAFT];
    int n = lookup_draft(s, 12, m->tok, 4, d);
    CHECK(n == 4 && d[0] == 20 && d[1] == 21 && d[2] == 8 && d[3] == 9);
    CHECK(lookup_draft(s, 12, m->tok, 1, d) == 1 && d[0] == 20);
    CHECK(lookup_draft(s, 99, m->tok, 4, d) == 0);   /* "11 99" never occurred */
    /* an end-of-generation token ends the draft */
    int32_t eog = -1;
    for (int32_t t = 0; t < m->hp.vocab_size && eog < 0; t++)
        if (coder_token_is_eog(m, t)) eog = t;
    CHECK(eog >= 0);
    const int32_t more[] = {30, 31, 32, eog, 33, 30, 31};
    CHECK_OK(session_eval(s, more, sizeof more / sizeof more[0]));
    n = lookup_draft(s, 32, m->tok, 4, d);
    CHECK_MSG(n == 0, "drafted %d tokens across an end-of-generation token", n);
    coder_session_free(s);
    coder_model_free(m);
}

/* Greedy's continuation of a prompt, one token at a time, with the logits after each token. */
static int greedy_steps(coder_session *s, int32_t first, int n, int32_t *out, float *logits) {
    const int32_t vocab = s->model->hp.vocab_size;
    int32_t t = first;
    for (int i = 0; i < n; i++) {
        if (session_eval(s, &t, 1) != CODER_OK) return 0;
        out[i] = t;
        memcpy(logits + (size_t)i * vocab, s->logits, (size_t)vocab * sizeof(float));
        int32_t best = 0;
        for (int32_t v = 1; v < vocab; v++)
            if (s->logits[v] > s->logits[best]) best = v;
        t = best;
    }
    return 1;
}

TEST(verify_keeps_what_greedy_agrees_with) {
    coder_model *m = test_load_refmodel("tiny-qwen2-q4_k_m.gguf", 0);
    if (!m) SKIP("refdata model tiny-qwen2-q4_k_m.gguf absent or not loadable");
    const int32_t vocab = m->hp.vocab_size;
    const int32_t prompt[] = {1, 100, 200, 300, 400, 500};
    coder_session *ref = session_for(m), *s = session_for(m);
    CHECK(ref && s);
    CHECK_OK(session_eval(ref, prompt, 6));
    CHECK_OK(session_eval(s, prompt, 6));
    int32_t first = 0;
    for (int32_t v = 1; v < vocab; v++)
        if (ref->logits[v] > ref->logits[first]) first = v;
    int32_t g[8];
    float *gl = malloc((size_t)8 * vocab * sizeof *gl);
    CHECK(gl != NULL);
    CHECK(greedy_steps(ref, first, 8, g, gl));   /* g[0] = first, g[i+1] = greedy after g[i] */
    /* the whole draft agrees: 6 tokens in one batch, next = greedy's 7th */
    int ok = -1;
    int32_t next = -1;
    CHECK_OK(lookup_verify(s, g[0], g + 1, 5, &ok, &next));
    CHECK(ok == 5 && next == g[6] && s->n_past == 12);
    CHECK(memcmp(s->tokens + 6, g, 6 * sizeof *g) == 0);
    CHECK_OK(session_logits(s));   /* the batch's last row, left on the backend */
    CHECK_MSG(memcmp(s->logits, gl + (size_t)5 * vocab, (size_t)vocab * sizeof(float)) == 0,
              "logits after a verified batch differ from one-token steps (batch invariance)");
    /* a wrong third draft: g[1], g[2] kept, the rest dropped, next = g[3] */
    CHECK_OK(session_truncate(s, 6));
    CHECK(!s->has_logits);
    int32_t bad[5] = {g[1], g[2], (g[3] + 1) % vocab, g[4], g[5]};
    CHECK_OK(lookup_verify(s, g[0], bad, 5, &ok, &next));
    CHECK(ok == 2 && next == g[3] && s->n_past == 9 && s->has_logits);
    CHECK_OK(session_logits(s));   /* row 2 of the batch */
    CHECK(memcmp(s->logits, gl + (size_t)2 * vocab, (size_t)vocab * sizeof(float)) == 0);
    free(gl);
    coder_session_free(ref);
    coder_session_free(s);
    coder_model_free(m);
}

static coder_status gen(coder_session *s, const char *prompt, int lookup, int max_tokens, const char *stop,
                        coder_result *r) {
    coder_gen_params gp;
    coder_gen_params_init(&gp);
    gp.temperature = 0;
    gp.max_tokens = max_tokens;
    gp.lookup_draft = lookup;
    const char *stops[1] = {stop};
    if (stop) {
        gp.stop = stops;
        gp.n_stop = 1;
    }
    coder_result_init(r);
    return coder_generate(s, prompt, strlen(prompt), &gp, r);
}

TEST(generation_equals_greedy) {
    static const char *models[] = {"tiny-qwen2-q4_k_m.gguf", "tiny-llama-q4_k_m.gguf"};
    static const char *prompt = "def add(a, b):\n    return a + b\n\ndef add(a, b):\n    return a + b\n\ndef add(a, b):\n";
    int drafted = 0, accepted = 0, runs = 0;
    for (size_t mi = 0; mi < 2; mi++) {
        coder_model *m = test_load_refmodel(models[mi], 0);
        if (!m) SKIP("refdata model %s absent or not loadable", models[mi]);
        /* (max_tokens, stop): long runs, a short one, one cut by a stop string found in the plain run */
        char stop_str[64] = "";
        for (int variant = 0; variant < 3; variant++) {
            coder_session *a = session_for(m), *b = session_for(m);
            CHECK(a && b);
            coder_result ra, rb;
            const int max_tokens = variant == 1 ? 7 : 300;
            const char *stop = variant == 2 ? stop_str : NULL;
            CHECK_OK(gen(a, prompt, 0, max_tokens, stop, &ra));
            CHECK_OK(gen(b, prompt, 8, max_tokens, stop, &rb));
            CHECK_MSG(ra.n_tokens == rb.n_tokens && memcmp(ra.tokens, rb.tokens, ra.n_tokens * sizeof *ra.tokens) == 0,
                      "%s variant %d: %zu tokens plain, %zu with lookup, or different ones", models[mi], variant, ra.n_tokens,
                      rb.n_tokens);
            CHECK(ra.text_len == rb.text_len && memcmp(ra.text, rb.text, ra.text_len) == 0);
            CHECK(ra.stop_reason == rb.stop_reason);
            CHECK(coder_session_n_past(a) == coder_session_n_past(b));
            const float *la, *lb;
            int32_t nv;
            CHECK_OK(coder_session_logits(a, &la, &nv));
            CHECK_OK(coder_session_logits(b, &lb, &nv));
            CHECK_MSG(memcmp(la, lb, (size_t)nv * sizeof *la) == 0, "%s variant %d: final logits differ", models[mi], variant);
            if (variant == 0 && ra.text_len > 40) {   /* a stop string in the middle of the plain text */
                size_t at = ra.text_len / 2, len = 3;
                memcpy(stop_str, ra.text + at, len);
                stop_str[len] = 0;
                if (strlen(stop_str) != len) stop_str[0] = 0;
            }
            if (variant == 2) CHECK(stop_str[0] == 0 || ra.stop_reason == CODER_STOP_STRING);
            drafted += rb.stats.n_drafted;
            accepted += rb.stats.n_accepted;
            CHECK(ra.stats.n_drafted == 0 && rb.stats.n_accepted <= rb.stats.n_drafted);
            runs++;
            coder_result_clear(&ra);
            coder_result_clear(&rb);
            coder_session_free(a);
            coder_session_free(b);
            if (variant == 1 && stop_str[0] == 0) break;
        }
        coder_model_free(m);
    }
    printf("  info: %d runs, %d tokens drafted, %d kept\n", runs, drafted, accepted);
    CHECK(drafted > 0);
}

TEST(bad_lookup_values) {
    coder_model *m = test_load_refmodel("tiny-qwen2-q4_k_m.gguf", 0);
    if (!m) SKIP("refdata model tiny-qwen2-q4_k_m.gguf absent or not loadable");
    coder_session *s = session_for(m);
    CHECK(s != NULL);
    coder_result r;
    CHECK_STATUS(gen(s, "x", -1, 4, NULL, &r), CODER_ERR_INVALID_ARG);
    coder_result_clear(&r);
    CHECK_STATUS(gen(s, "x", LOOKUP_MAX_DRAFT + 1, 4, NULL, &r), CODER_ERR_INVALID_ARG);
    coder_result_clear(&r);
    CHECK(coder_session_n_past(s) == 0);
    coder_session_free(s);
    coder_model_free(m);
}

int main(void) {
    RUN(draft_from_latest_occurrence);
    RUN(verify_keeps_what_greedy_agrees_with);
    RUN(generation_equals_greedy);
    RUN(bad_lookup_values);
    return test_summary();
}
