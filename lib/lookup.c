/* lookup.c - prompt-lookup drafts and their verification against greedy decoding (lookup.h). */
#include <math.h>
#include <string.h>

#include "lookup.h"

static int32_t seq_at(const coder_session *s, int32_t last, int32_t i) { return i < s->n_past ? s->tokens[i] : last; }

int lookup_draft(const coder_session *s, int32_t last, const tokenizer *tok, int max, int32_t *draft) {
    const int32_t len = s->n_past + 1;
    for (int g = 4; g >= 2; g--) {
        if (len < g + 1) continue;
        /* the most recent earlier occurrence of the last g tokens (it must leave a token after it) */
        for (int32_t p = len - g - 1; p >= 0; p--) {
            int32_t k = 0;
            while (k < g && seq_at(s, last, p + k) == seq_at(s, last, len - g + k)) k++;
            if (k < g) continue;
            int n = 0;
            for (int32_t i = p + g; i < len && n < max; i++) {
                const int32_t t = seq_at(s, last, i);
                if (tokenizer_is_eog(tok, t)) break;
                draft[n++] = t;
            }
            return n;
        }
    }
    return 0;
}

/* The first largest value of row (NaN never wins); *finite = every value is finite. */
static int32_t row_argmax(const float *row, int32_t n, bool *finite) {
    int32_t best = 0;
    bool ok = true;
    for (int32_t i = 0; i < n; i++) {
        ok &= isfinite(row[i]) != 0;
        if (row[i] > row[best] || isnan(row[best])) best = i;
    }
    *finite = ok;
    return best;
}

coder_status lookup_trim(coder_session *s, int drop, const float *rows, int row) {
    const int32_t vocab = s->model->hp.vocab_size;
    TRY(session_truncate(s, s->n_past - drop));
    memcpy(s->logits, rows + (size_t)row * (size_t)vocab, (size_t)vocab * sizeof *s->logits);
    s->has_logits = true;
    s->logits_pending = false;
    return CODER_OK;
}

coder_status lookup_verify(coder_session *s, int32_t id, const int32_t *draft, int nd, float *rows, int *n_ok,
                           int32_t *next) {
    const int32_t vocab = s->model->hp.vocab_size, base = s->n_past;
    int32_t batch[LOOKUP_MAX_DRAFT + 1];
    if (nd < 1 || nd > LOOKUP_MAX_DRAFT || nd + 1 > s->n_batch)
        return coder_fail(CODER_ERR_INTERNAL, "lookup_verify: %d drafts for a batch of %d", nd, (int)s->n_batch);
    batch[0] = id;
    memcpy(batch + 1, draft, (size_t)nd * sizeof *draft);
    TRY(session_eval_all(s, batch, (size_t)nd + 1, rows));
    /* row k holds greedy's choice after batch[k]; draft[k] = batch[k + 1] stays if it is that */
    int k = 0;
    bool finite = true, all_finite = true;
    int32_t a = row_argmax(rows, vocab, &finite);
    all_finite &= finite;
    while (k < nd && a == draft[k]) {
        k++;
        a = row_argmax(rows + (size_t)k * (size_t)vocab, vocab, &finite);
        all_finite &= finite;
    }
    if (!all_finite) {   /* as one-token steps would have: NUMERIC, nothing kept */
        coder_status st = session_truncate(s, base);
        if (st != CODER_OK) return st;
        return coder_fail(CODER_ERR_NUMERIC, "a logit is not finite after evaluating positions %d..%d", (int)base,
                          (int)(base + k));
    }
    if (k < nd) TRY(lookup_trim(s, nd - k, rows, k));
    *n_ok = k;
    *next = a;
    return CODER_OK;
}
