/* forward.h - the transformer forward pass (qwen2, qwen3, llama), written once over the backend
 * op table (backend.h). Owns the activation buffers of one session, sized for n_batch tokens, on
 * each of its backends (a split model runs its layers on two: backend_stages). */
#ifndef CODER_FORWARD_H
#define CODER_FORWARD_H

#include <stdatomic.h>

#include "backend.h"

/* Debug hook: called after each named op with the result copied to host memory, data [rows][cols].
 * Names follow llama.cpp's graph ("attn_norm-0", "Qcur-0", "kqv_out-0", "l_out-3", "result_norm",
 * "result_output"); op says which step produced it ("MUL_MAT", "ADD" for a bias, "ROPE", ...). Costs
 * one predictable branch per op when unset. */
typedef void (*forward_debug_fn)(void *user_data, const char *name, const char *op, const float *data, int64_t rows,
                                 int64_t cols);

typedef struct forward_state forward_state;

coder_status forward_new(const backend_stages *stages, int32_t n_batch, forward_state **out);
void forward_free(forward_state *f);

/* Installs (fn != NULL) or removes the debug hook. Allocates a host copy buffer on first use. */
coder_status forward_set_debug(forward_state *f, forward_debug_fn fn, void *user_data);

/* Evaluates tokens[0..n) (1 <= n <= n_batch) at positions pos0.., writing K/V to the cache.
 * logits (vocab_size floats) receives the last token's logits. If logits_all is not NULL it
 * receives [n][vocab_size] logits of every token instead (test path: may allocate).
 * cancel is checked between layers: CODER_ERR_CANCELLED leaves logits untouched. Token ids
 * must already be validated. logits may be NULL: the logits stay on the backend for
 * forward_read_logits / forward_argmax until the next evaluation. */
coder_status forward_eval(forward_state *f, const int32_t *tokens, int n, int32_t pos0, const atomic_bool *cancel,
                          float *logits, float *logits_all);

/* After forward_eval with logits = NULL: the last evaluated token's logits copied to host memory,
 * or only their argmax (the first on ties) and whether all are finite, computed on the backend. */
coder_status forward_read_logits(forward_state *f, float *logits);
coder_status forward_argmax(forward_state *f, int32_t *token, bool *all_finite);
/* ... or their k (1..BACKEND_TOPK_MAX) largest with indices (descending, the lowest index first
 * on ties). */
coder_status forward_topk(forward_state *f, int k, int32_t *ids, float *vals, bool *all_finite);

/* forward_eval keeping the logits of every token on the backend, reading nothing back (prompt
 * lookup verifies a batch with one argmax per row): forward_argmax_row reads a row's argmax;
 * forward_select_row makes a row the one forward_read_logits / forward_argmax use (the last token
 * kept when the rest is dropped). */
coder_status forward_eval_rows(forward_state *f, const int32_t *tokens, int n, int32_t pos0, const atomic_bool *cancel);
coder_status forward_argmax_row(forward_state *f, int row, int32_t *token, bool *all_finite);
coder_status forward_select_row(forward_state *f, int row);

#endif
