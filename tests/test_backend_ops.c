/* test_backend_ops.c - backend ops that no whole-model comparison covers, on the CPU backend:
 * argmax (greedy decoding takes the next token from it without copying the logits back; the
 * planted cases of argmax_cases.h, which test_gpu.c runs on the device), topk (sampling takes the
 * k best logits from it: against the sampler's own top-k, topk_cases.h) and their bad arguments. */
#include "test.h"

#include "argmax_cases.h"
#include "topk_cases.h"
#include "fake_model.h"

static backend *cpu_backend(coder_model *m) {
    backend_params bp = {.n_ctx = 16, .n_batch = 4, .n_threads = 2, .kv_type = CODER_KV_F16};
    backend *b = NULL;
    if (cpu_backend_new(m, &bp, &b) != CODER_OK) fprintf(stderr, "cpu backend: %s\n", coder_last_error());
    return b;
}

/* One of the shared case files on a CPU backend: NULL or what went wrong. */
static const char *on_cpu(const char *(*check)(backend *)) {
    coder_model *m = fake_model(64, 128, 2, 1, 32);
    backend *b = cpu_backend(m);
    const char *why = b ? check(b) : "no backend";
    if (b) b->ops->free(b);
    fake_model_free(m);
    return why;
}

TEST(argmax_planted_rows) {
    const char *why = on_cpu(argmax_cases_check);
    CHECK_MSG(!why, "cpu argmax: %s", why);
}

TEST(topk_matches_the_sampler) {
    const char *why = on_cpu(topk_cases_check);
    CHECK_MSG(!why, "cpu topk: %s", why);
}

TEST(argmax_outside_the_buffer) {
    coder_model *m = fake_model(64, 128, 2, 1, 32);
    backend *b = cpu_backend(m);
    CHECK(b != NULL);
    backend_buf *buf = NULL;
    CHECK_OK(b->ops->buf_alloc(b, 100, &buf));
    int32_t id = -1;
    bool finite = false;
    coder_status past_end = b->ops->argmax(b, buf, 2, 50, &id, &finite);   /* rows 0..1 exist */
    coder_status neg_row = b->ops->argmax(b, buf, -1, 50, &id, &finite);
    coder_status no_width = b->ops->argmax(b, buf, 0, 0, &id, &finite);
    b->ops->buf_free(b, buf);
    b->ops->free(b);
    fake_model_free(m);
    CHECK_STATUS(past_end, CODER_ERR_INTERNAL);
    CHECK_STATUS(neg_row, CODER_ERR_INTERNAL);
    CHECK_STATUS(no_width, CODER_ERR_INTERNAL);
    CHECK(id == -1);
}

int main(void) {
    RUN(argmax_planted_rows);
    RUN(topk_matches_the_sampler);
    RUN(argmax_outside_the_buffer);
    return test_summary();
}
