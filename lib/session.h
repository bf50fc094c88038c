/* session.h - a session: one KV cache, the tokens in it, and the logits of the last position.
 * Used by one thread at a time (a try-lock turns concurrent use into CODER_ERR_BUSY).
 * The engine (session.c, forward.c, kv_cache.c, cpu_*.c) owns evaluation; generate.c and
 * sampler.c build generation on session_eval. */
#ifndef CODER_SESSION_H
#define CODER_SESSION_H

#include <stdatomic.h>

#include "backend.h"


struct coder_session {
    coder_model *model;
    int32_t n_ctx, n_batch, n_threads;
    int32_t kv_type;              /* coder_kv_type                                         */
    int32_t n_past;               /* tokens held in the KV cache                           */
    int32_t *tokens;              /* [n_ctx] the ids at positions 0..n_past-1              */
    float *logits;                /* [vocab_size] of the last evaluated position           */
    bool has_logits;
    bool logits_pending;          /* has_logits, but still on the backend (session_logits)  */
    atomic_bool cancel;           /* set by coder_session_cancel from any thread           */
    atomic_flag busy;             /* held for the duration of every public call            */
    backend_stages stages;        /* engine-owned: the backends running the layers          */
    void *engine;                 /* engine-owned scratch                                  */
};

/* Try-lock for public entry points: false (and CODER_ERR_BUSY recorded) if another thread is in. */
bool session_enter(coder_session *s);
void session_leave(coder_session *s);

/* Evaluates n tokens at positions n_past.. (n_past advances), leaving the logits of the last one
 * in s->logits. Checks s->cancel between batches and layers: returns CODER_ERR_CANCELLED with the
 * session rolled back to the last whole batch (n_past says what is kept). CODER_ERR_CONTEXT_FULL
 * before any work if n_past + n > n_ctx. The caller holds the session (session_enter). */
coder_status session_eval(coder_session *s, const int32_t *tokens, size_t n);

/* session_eval that also writes the logits of every token, [n][vocab_size], to logits_all. */
coder_status session_eval_all(coder_session *s, const int32_t *tokens, size_t n, float *logits_all);

/* session_eval of one token whose successor is chosen greedily where the logits are: *next =
 * their argmax (the lowest id on ties). The logits stay on the backend until session_logits asks
 * for them, so a greedy decode step copies back 8 bytes instead of vocab_size floats. */
coder_status session_eval_greedy(coder_session *s, int32_t token, int32_t *next);
/* Like session_eval_greedy for sampling: the k (1..BACKEND_TOPK_MAX) largest last logits and
 * their ids (descending, the lowest id first on ties: the sampler's top-k) instead of the argmax;
 * the same NUMERIC check and rollback when a logit is not finite. */
coder_status session_eval_topk(coder_session *s, int32_t token, int k, int32_t *ids, float *vals);

/* n <= n_batch tokens evaluated in one batch whose logits (every row) stay on the backend
 * (forward_argmax_row / forward_select_row on s->engine); the last row is the session's pending
 * logits. CODER_ERR_CANCELLED keeps nothing. */
coder_status session_eval_rows(coder_session *s, const int32_t *tokens, int n);

/* Makes s->logits current (copies them from the backend after session_eval_greedy). Call before
 * reading s->logits; a no-op when they are there already or there are none. */
coder_status session_logits(coder_session *s);

/* Drops every position >= n_past (for prefix reuse; n_past <= s->n_past). */
coder_status session_truncate(coder_session *s, int32_t n_past);

/* session_state.c: the checksum that ends a session state file (over every byte before it).
 * Exposed so tests can forge files with a valid checksum and reach the deeper checks. */
uint64_t session_state_checksum(const void *data, size_t n);

#endif
