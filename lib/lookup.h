/* lookup.h - prompt-lookup decoding (coder_gen_params.lookup_draft): when the last tokens of the
 * context occurred before, the tokens that followed them there are a likely continuation (an agent
 * rewriting code it was shown); they are evaluated together with the next token in one batch and
 * kept as far as greedy decoding agrees, so several tokens cost about one weight pass. */
#ifndef CODER_LOOKUP_H
#define CODER_LOOKUP_H

#include "session.h"
#include "tokenizer.h"

#define LOOKUP_MAX_DRAFT 16
#define LOOKUP_MAX_DRAFT_GPU 7   /* + the token before them: the CUDA mat-vec's 8 (f32, like decode) */

/* The context is the session's tokens followed by `last` (the token about to be evaluated). Up to
 * max tokens that followed the most recent earlier occurrence of its last 4, 3 or 2 tokens (the
 * longest that occurs) go to draft, cut before any end-of-generation token; returns how many
 * (0: none). */
int lookup_draft(const coder_session *s, int32_t last, const tokenizer *tok, int max, int32_t *draft);

/* Evaluates id then draft[0..nd) in one batch (nd + 1 <= n_batch) and keeps id and the longest
 * prefix of the draft that greedy decoding agrees with (one argmax per row, computed where the
 * logits are); the rest leaves the session again. *n_ok = drafts kept, *next = greedy's choice
 * after the last kept token. CODER_ERR_NUMERIC, the session as before, if a logit it used is not
 * finite. The batch's logits stay on the backend for lookup_trim. */
coder_status lookup_verify(coder_session *s, int32_t id, const int32_t *draft, int nd, int *n_ok, int32_t *next);

/* Drops the session's last `drop` positions (drop may be 0), evaluated in the batch lookup_verify
 * ran: the session's logits become those of batch row `row`, the new last position. */
coder_status lookup_trim(coder_session *s, int drop, int row);

#endif
