/* session.c - sessions: parameter validation, the busy try-lock, and evaluation in batches of
 * n_batch tokens over forward.c with cancellation and rollback (session.h). Everything a session
 * needs (KV cache, activations, threads, token and logit arrays) is allocated in coder_session_new;
 * evaluating tokens allocates nothing. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "forward.h"
#include "session.h"

#define SESSION_DEFAULT_CTX 4096
#define SESSION_MAX_CTX (1 << 22)      /* 4M positions: far past any supported model        */
#define SESSION_MAX_THREADS 1024

bool session_enter(coder_session *s) {
    if (atomic_flag_test_and_set_explicit(&s->busy, memory_order_acquire)) {
        coder_fail(CODER_ERR_BUSY, "session is in use by another thread");
        return false;
    }
    return true;
}

void session_leave(coder_session *s) { atomic_flag_clear_explicit(&s->busy, memory_order_release); }

CODER_EXPORT void coder_session_params_init(coder_session_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    p->n_ctx = 0;
    p->n_batch = 512;
    p->n_threads = 0;
    p->kv_type = CODER_KV_F16;
}

/* Copies the caller's params over the defaults, honouring a smaller (older) struct. */
static coder_status session_read_params(const coder_session_params *in, coder_session_params *p) {
    coder_session_params_init(p);
    if (!in) return CODER_OK;
    return coder_params_copy(p, sizeof *p, in, offsetof(coder_session_params, n_ctx), "session params");
}

CODER_EXPORT void coder_session_free(coder_session *s) {
    if (!s) return;
    forward_free(s->engine);
    backend_stages_free(&s->stages);
    coder_mfree(s->tokens);
    coder_mfree(s->logits);
    if (s->model) atomic_fetch_sub(&s->model->n_sessions, 1);
    coder_mfree(s);
}

CODER_EXPORT coder_status coder_session_new(coder_model *model, const coder_session_params *params, coder_session **out) {
    if (!out) return coder_fail(CODER_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!model) return coder_fail(CODER_ERR_INVALID_ARG, "model is NULL");
    if (model->vocab_only || !model->layers)
        return coder_fail(CODER_ERR_STATE, "model was loaded with vocab_only: it has no weights to evaluate");
    coder_session_params p;
    TRY(session_read_params(params, &p));
    const model_hparams *hp = &model->hp;

    if (p.n_ctx < 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "params->n_ctx = %d must be >= 0%s", (int)p.n_ctx,
                          p.n_ctx == CODER_CTX_AUTO ? " (CODER_CTX_AUTO is resolved by coder_plan_fit before the session)" : "");
    if (p.n_ctx == 0) p.n_ctx = hp->n_ctx_train > 0 && hp->n_ctx_train < SESSION_DEFAULT_CTX ? hp->n_ctx_train : SESSION_DEFAULT_CTX;
    if (p.n_ctx > SESSION_MAX_CTX)
        return coder_fail(CODER_ERR_LIMIT, "params->n_ctx = %d exceeds the limit %d", (int)p.n_ctx, SESSION_MAX_CTX);
    if (p.n_batch <= 0) return coder_fail(CODER_ERR_INVALID_ARG, "params->n_batch = %d must be >= 1", (int)p.n_batch);
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    if (p.n_threads < 0 || p.n_threads > SESSION_MAX_THREADS)
        return coder_fail(CODER_ERR_INVALID_ARG, "params->n_threads = %d (0 = all cores, at most %d)", (int)p.n_threads,
                          SESSION_MAX_THREADS);
    if (p.n_threads == 0) p.n_threads = coder_cpu_count();
    if (p.kv_type < CODER_KV_F16 || p.kv_type > CODER_KV_Q8_0_Q4_0)
        return coder_fail(CODER_ERR_INVALID_ARG, "params->kv_type = %d is not a coder_kv_type", (int)p.kv_type);
    if ((p.kv_type == CODER_KV_Q8_0 || p.kv_type == CODER_KV_Q8_0_Q4_0) && hp->head_dim % 32)
        return coder_fail(CODER_ERR_UNSUPPORTED, "params->kv_type = %s needs head_dim %% 32 == 0 (head_dim %d)",
                          p.kv_type == CODER_KV_Q8_0 ? "CODER_KV_Q8_0" : "CODER_KV_Q8_0_Q4_0", (int)hp->head_dim);

    coder_session *s = coder_calloc(1, sizeof *s);
    if (!s) return coder_fail(CODER_ERR_NOMEM, "session");
    s->model = model;
    atomic_fetch_add(&model->n_sessions, 1);
    s->n_ctx = p.n_ctx;
    s->n_batch = p.n_batch;
    s->n_threads = p.n_threads;
    s->kv_type = p.kv_type;
    atomic_init(&s->cancel, false);
    atomic_flag_clear(&s->busy);
    coder_status st;
    s->tokens = coder_malloc((size_t)s->n_ctx * sizeof *s->tokens);
    s->logits = coder_calloc((size_t)hp->vocab_size, sizeof *s->logits);
    if (!s->tokens || !s->logits) {
        st = coder_fail(CODER_ERR_NOMEM, "session arrays for n_ctx %d, vocab %d", (int)s->n_ctx, (int)hp->vocab_size);
        goto fail;
    }
    backend_params bp = {.n_ctx = s->n_ctx, .n_batch = s->n_batch, .n_threads = s->n_threads, .kv_type = s->kv_type};
    /* CUDA for the layers whose weights were uploaded at load, the CPU for the rest (backend.h) */
    if ((st = backend_stages_new(model, &bp, &s->stages)) != CODER_OK) goto fail;
    forward_state *fs;
    if ((st = forward_new(&s->stages, s->n_batch, &fs)) != CODER_OK) goto fail;
    s->engine = fs;
    *out = s;
    return CODER_OK;
fail:
    coder_session_free(s);
    return st;
}

coder_status session_eval(coder_session *s, const int32_t *tokens, size_t n) {
    return session_eval_all(s, tokens, n, NULL);
}

/* NUMERIC (the session back at n_past = start) if a logit of the last position is not finite. */
static coder_status check_logits(coder_session *s, int32_t start, size_t n) {
    const int32_t vocab = s->model->hp.vocab_size;
    for (int32_t i = 0; i < vocab; i++)
        if (!isfinite(s->logits[i])) {
            s->n_past = start;
            s->has_logits = false;
            return coder_fail(CODER_ERR_NUMERIC, "logit %d is %g after evaluating position %d", (int)i, (double)s->logits[i],
                              (int)(start + (int32_t)n - 1));
        }
    return CODER_OK;
}

/* What every evaluation checks before touching the session. */
static coder_status eval_check(const coder_session *s, const int32_t *tokens, size_t n) {
    if (!tokens && n) return coder_fail(CODER_ERR_INVALID_ARG, "tokens is NULL");
    if (n == 0) return coder_fail(CODER_ERR_INVALID_ARG, "n_tokens = 0: nothing to evaluate");
    if ((uint64_t)s->n_past + n > (uint64_t)s->n_ctx)
        return coder_fail(CODER_ERR_CONTEXT_FULL, "%zu tokens after %d held do not fit in n_ctx %d", n, (int)s->n_past,
                          (int)s->n_ctx);
    const int32_t vocab = s->model->hp.vocab_size;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            return coder_fail(CODER_ERR_INVALID_ARG, "tokens[%zu] = %d is outside the vocabulary [0, %d)", i, (int)tokens[i],
                              (int)vocab);
    return CODER_OK;
}

/* What an evaluation leaves for the caller besides the session's logits: the argmax of the last
 * logits (greedy) or their k best (sampling), computed on the backend; the logits themselves
 * stay there (pending) until session_logits. */
typedef struct eval_pick {
    int32_t *greedy_next;
    int k;
    int32_t *ids;
    float *vals;
} eval_pick;

/* session_eval_all, or with pick the argmax / top-k of the last logits. */
static coder_status eval_batches(coder_session *s, const int32_t *tokens, size_t n, float *logits_all, const eval_pick *pick) {
    TRY(eval_check(s, tokens, n));
    const int32_t vocab = s->model->hp.vocab_size;
    const int32_t start = s->n_past;
    for (size_t done = 0; done < n;) {
        if (atomic_load(&s->cancel))
            return coder_fail(CODER_ERR_CANCELLED, "evaluation cancelled after %zu of %zu tokens (n_past %d)", done, n,
                              (int)s->n_past);
        int nb = (int)(n - done < (size_t)s->n_batch ? n - done : (size_t)s->n_batch);
        coder_status st = forward_eval(s->engine, tokens + done, nb, s->n_past, &s->cancel, pick ? NULL : s->logits,
                                       logits_all ? logits_all + done * (size_t)vocab : NULL);
        if (st == CODER_ERR_CANCELLED) {
            coder_fail(CODER_ERR_CANCELLED, "evaluation cancelled after %zu of %zu tokens (n_past %d)", done, n,
                       (int)s->n_past);
            return st;
        }
        if (st != CODER_OK) {   /* keep what earlier whole batches computed */
            s->has_logits = false;
            return st;
        }
        memcpy(s->tokens + s->n_past, tokens + done, (size_t)nb * sizeof *tokens);
        s->n_past += nb;
        s->has_logits = true;
        s->logits_pending = pick != NULL;
        done += (size_t)nb;
    }
    if (pick) {
        bool finite = false;
        coder_status st = pick->greedy_next ? forward_argmax(s->engine, pick->greedy_next, &finite)
                                            : forward_topk(s->engine, pick->k, pick->ids, pick->vals, &finite);
        if (st != CODER_OK) {
            s->has_logits = false;
            return st;
        }
        if (finite) return CODER_OK;
        TRY(session_logits(s));   /* to name the logit that is not finite */
    }
    return check_logits(s, start, n);
}

coder_status session_eval_all(coder_session *s, const int32_t *tokens, size_t n, float *logits_all) {
    return eval_batches(s, tokens, n, logits_all, NULL);
}

coder_status session_eval_greedy(coder_session *s, int32_t token, int32_t *next) {
    const eval_pick pick = {.greedy_next = next};
    return eval_batches(s, &token, 1, NULL, &pick);
}

coder_status session_eval_topk(coder_session *s, int32_t token, int k, int32_t *ids, float *vals) {
    const eval_pick pick = {.k = k, .ids = ids, .vals = vals};
    return eval_batches(s, &token, 1, NULL, &pick);
}

coder_status session_eval_rows(coder_session *s, const int32_t *tokens, int n) {
    TRY(eval_check(s, tokens, n > 0 ? (size_t)n : 0));
    if (n > s->n_batch) return coder_fail(CODER_ERR_INTERNAL, "session_eval_rows: %d tokens for a batch of %d", n, (int)s->n_batch);
    if (atomic_load(&s->cancel))
        return coder_fail(CODER_ERR_CANCELLED, "evaluation cancelled before %d tokens (n_past %d)", n, (int)s->n_past);
    coder_status st = forward_eval_rows(s->engine, tokens, n, s->n_past, &s->cancel);
    if (st == CODER_ERR_CANCELLED) return st;
    if (st != CODER_OK) {
        s->has_logits = false;
        return st;
    }
    memcpy(s->tokens + s->n_past, tokens, (size_t)n * sizeof *tokens);
    s->n_past += n;
    s->has_logits = true;
    s->logits_pending = true;
    return CODER_OK;
}

coder_status session_logits(coder_session *s) {
    if (!s->has_logits || !s->logits_pending) return CODER_OK;
    coder_status st = forward_read_logits(s->engine, s->logits);
    if (st != CODER_OK) {
        s->has_logits = false;
        return st;
    }
    s->logits_pending = false;
    return CODER_OK;
}

coder_status session_truncate(coder_session *s, int32_t n_past) {
    if (n_past < 0 || n_past > s->n_past)
        return coder_fail(CODER_ERR_INVALID_ARG, "truncate to n_past %d: must be in [0, %d]", (int)n_past, (int)s->n_past);
    if (n_past == s->n_past) return CODER_OK;
    for (int i = 0; i < s->stages.n; i++) TRY(s->stages.b[i]->ops->kv_truncate(s->stages.b[i], n_past));
    s->n_past = n_past;
    s->has_logits = false;
    return CODER_OK;
}

CODER_EXPORT coder_status coder_session_reset(coder_session *s) {
    if (!s) return coder_fail(CODER_ERR_INVALID_ARG, "session is NULL");
    if (!session_enter(s)) return CODER_ERR_BUSY;
    coder_status st = session_truncate(s, 0);
    session_leave(s);
    return st;
}

CODER_EXPORT int32_t coder_session_n_ctx(const coder_session *s) { return s ? s->n_ctx : 0; }
CODER_EXPORT int32_t coder_session_n_past(const coder_session *s) { return s ? s->n_past : 0; }

CODER_EXPORT coder_status coder_session_eval(coder_session *s, const int32_t *tokens, size_t n_tokens) {
    if (!s) return coder_fail(CODER_ERR_INVALID_ARG, "session is NULL");
    if (!session_enter(s)) return CODER_ERR_BUSY;
    atomic_store(&s->cancel, false);   /* a cancel that arrived while idle is forgotten */
    coder_status st = session_eval(s, tokens, n_tokens);
    session_leave(s);
    return st;
}

CODER_EXPORT coder_status coder_session_eval_all(coder_session *s, const int32_t *tokens, size_t n_tokens,
                                                 float *logits, size_t cap) {
    if (!s || !logits) return coder_fail(CODER_ERR_INVALID_ARG, "%s is NULL", !s ? "session" : "logits");
    size_t need;
    if (ck_mul_size(n_tokens, (size_t)s->model->hp.vocab_size, &need))
        return coder_fail(CODER_ERR_INVALID_ARG, "n_tokens %zu * vocab_size overflows", n_tokens);
    if (cap < need)
        return coder_fail(CODER_ERR_BUFFER_TOO_SMALL, "logits holds %zu floats; %zu tokens need %zu", cap, n_tokens, need);
    if (!session_enter(s)) return CODER_ERR_BUSY;
    atomic_store(&s->cancel, false);
    coder_status st = session_eval_all(s, tokens, n_tokens, logits);
    session_leave(s);
    return st;
}

CODER_EXPORT coder_status coder_session_logits(coder_session *s, const float **logits, int32_t *vocab_size) {
    if (!s || !logits) return coder_fail(CODER_ERR_INVALID_ARG, "%s is NULL", !s ? "session" : "logits");
    *logits = NULL;
    if (!session_enter(s)) return CODER_ERR_BUSY;
    coder_status st = CODER_OK;
    if (!s->has_logits) st = coder_fail(CODER_ERR_STATE, "no logits: nothing evaluated since the session was created or reset");
    else if ((st = session_logits(s)) == CODER_OK) {
        *logits = s->logits;
        if (vocab_size) *vocab_size = s->model->hp.vocab_size;
    }
    session_leave(s);
    return st;
}

CODER_EXPORT void coder_session_cancel(coder_session *s) {
    if (s) atomic_store(&s->cancel, true);
}
