/* lookup.c - prompt-lookup drafts and their verification against greedy decoding (lookup.h). */
#include <string.h>

#include "forward.h"
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

coder_status lookup_trim(coder_session *s, int drop, int row) {
    TRY(session_truncate(s, s->n_past - drop));
    TRY(forward_select_row(s->engine, row));
    s->has_logits = true;   /* still on the backend, copied when asked for (session_logits) */
    s->logits_pending = true;
    return CODER_OK;
}

coder_status lookup_verify(coder_session *s, int32_t id, const int32_t *draft, int nd, int *n_ok, int32_t *next) {
    const int32_t base = s->n_past;
    int32_t batch[LOOKUP_MAX_DRAFT + 1];
    if (nd < 1 || nd > LOOKUP_MAX_DRAFT || nd + 1 > s->n_batch)
        return coder_fail(CODER_ERR_INTERNAL, "lookup_verify: %d drafts for a batch of %d", nd, (int)s->n_batch);
    batch[0] = id;
    memcpy(batch + 1, draft, (size_t)nd * sizeof *draft);
    TRY(session_eval_rows(s, batch, nd + 1));
    /* row k holds greedy's choice after batch[k] (an argmax where the logits are: 8 bytes back
     * from a GPU); draft[k] = batch[k + 1] stays if it is that choice */
    int k = 0;
    bool finite = true, all_finite = true;
    int32_t a = 0;
    for (;;) {
        coder_status st = forward_argmax_row(s->engine, k, &a, &finite);
        if (st != CODER_OK) {
            s->has_logits = false;
            return st;
        }
        all_finite &= finite;
        if (k == nd || a != draft[k]) break;
        k++;
    }
    if (!all_finite) {   /* as one-token steps would have: NUMERIC, nothing kept */
        TRY(session_truncate(s, base));
        return coder_fail(CODER_ERR_NUMERIC, "a logit is not finite after evaluating positions %d..%d", (int)base,
                          (int)(base + k));
    }
    TRY(lookup_trim(s, nd - k, k));
    *n_ok = k;
    *next = a;
    return CODER_OK;
}
