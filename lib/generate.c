/* generate.c - coder_generate / coder_generate_tokens: evaluate the prompt after what the session
 * holds, then sample, evaluate and stream one token at a time until a stop condition.
 *
 * Invariant after every call: the session holds the tokens it held before, the prompt, and every id
 * in result->tokens (each generated token is evaluated right after it is sampled, so a following
 * call continues exactly where this one stopped). An end-of-generation token is neither evaluated
 * nor returned.
 *
 * Text path per token: token bytes -> utf8_stream (complete characters only) -> result text ->
 * stop-string check -> on_piece for the part that can no longer be the start of a stop string. */
#include <stddef.h>
#include <string.h>

#include "backend.h"
#include "lookup.h"
#include "sampler.h"
#include "session.h"

CODER_EXPORT void coder_gen_params_init(coder_gen_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    p->max_tokens = 256;
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->frequency_penalty = 0;
    p->presence_penalty = 0;
    p->seed = UINT64_MAX;
    p->tokenize_flags = CODER_TOKENIZE_ADD_SPECIAL | CODER_TOKENIZE_PARSE_SPECIAL;
}

CODER_EXPORT void coder_result_init(coder_result *r) {
    if (!r) return;
    memset(r, 0, sizeof *r);
    r->size = sizeof *r;
}

CODER_EXPORT void coder_result_clear(coder_result *r) {
    if (!r) return;
    if (r->size == sizeof *r) {
        coder_mfree(r->text);
        coder_mfree(r->tokens);
    }
    coder_result_init(r);
}

/* ---- text: stop strings and streaming -------------------------------------------------------- */

typedef struct gen_text {
    char *buf;                    /* the completion so far, NUL-terminated                   */
    size_t len, cap;
    size_t emitted;               /* bytes of buf already handed to on_piece                 */
    const coder_gen_params *gp;
    utf8_stream u8;
    bool stop_string;             /* a stop string matched: buf is cut before it             */
    bool callback_stop;           /* on_piece returned non-zero                              */
} gen_text;

static coder_status text_reserve(gen_text *t, size_t extra) {
    size_t need;
    if (ck_add_size(t->len, extra, &need) || ck_add_size(need, 1, &need))
        return coder_fail(CODER_ERR_NOMEM, "result text: size overflow");
    if (need <= t->cap) return CODER_OK;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < need) cap *= 2;
    char *b = coder_realloc(t->buf, cap);
    if (!b) return coder_fail(CODER_ERR_NOMEM, "result text: %zu bytes", cap);
    t->buf = b;
    t->cap = cap;
    return CODER_OK;
}

static void text_emit(gen_text *t, size_t upto) {
    if (upto <= t->emitted) return;
    if (t->gp->on_piece && !t->callback_stop) {
        if (t->gp->on_piece(t->buf + t->emitted, upto - t->emitted, t->gp->user_data) != 0)
            t->callback_stop = true;
    }
    t->emitted = upto;
}

/* After bytes were appended at [old_len, len): cuts at the earliest stop string that now matches,
 * else streams everything that cannot be the beginning of a stop string. */
static void text_settle(gen_text *t, size_t old_len, bool final) {
    const coder_gen_params *gp = t->gp;
    size_t cut = SIZE_MAX;
    for (size_t i = 0; i < gp->n_stop; i++) {
        size_t sl = strlen(gp->stop[i]);
        if (sl > t->len) continue;
        // a new match must end in the new bytes: start from old_len - (sl - 1)
        size_t from = old_len >= sl - 1 ? old_len - (sl - 1) : 0;
        const char *hit = memmem(t->buf + from, t->len - from, gp->stop[i], sl);
        if (hit && (size_t)(hit - t->buf) < cut) cut = (size_t)(hit - t->buf);
    }
    if (cut != SIZE_MAX) {
        t->len = cut;
        t->buf[cut] = 0;
        t->stop_string = true;
        text_emit(t, cut);
        return;
    }
    size_t safe = t->len;
    if (!final) {
        // hold back the longest tail that is a proper prefix of some stop string
        size_t hold = 0;
        for (size_t i = 0; i < gp->n_stop; i++) {
            size_t sl = strlen(gp->stop[i]);
            for (size_t k = sl - 1; k > hold; k--)
                if (k <= t->len && memcmp(t->buf + t->len - k, gp->stop[i], k) == 0) {
                    hold = k;
                    break;
                }
        }
        safe = t->len - hold;
        // a byte-level stop string could split a character: stream whole characters only
        while (safe > t->emitted && ((unsigned char)t->buf[safe] & 0xC0) == 0x80) safe--;
    }
    text_emit(t, safe);
}

static coder_status text_push(gen_text *t, const char *bytes, size_t n) {
    TRY(text_reserve(t, 4 * n + 16)); // utf8_stream_push writes at most len + 8 + 3*len
    size_t old = t->len;
    t->len += utf8_stream_push(&t->u8, bytes, n, t->buf + t->len);
    t->buf[t->len] = 0;
    if (t->len > old) text_settle(t, old, false);
    return CODER_OK;
}

/* End of generation: the held-back tail is final (an incomplete character becomes U+FFFD). */
static coder_status text_finish(gen_text *t) {
    if (t->stop_string) return CODER_OK;
    TRY(text_reserve(t, 16));
    size_t old = t->len;
    t->len += utf8_stream_flush(&t->u8, t->buf + t->len);
    t->buf[t->len] = 0;
    text_settle(t, old, true);
    return CODER_OK;
}

/* ---- the generation loop ------------------------------------------------------------------- */

static coder_status result_push_token(coder_result *r, size_t *cap, int32_t tok) {
    if (r->n_tokens == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        int32_t *p = coder_realloc(r->tokens, nc * sizeof *p);
        if (!p) return coder_fail(CODER_ERR_NOMEM, "result tokens: %zu ids", nc);
        r->tokens = p;
        *cap = nc;
    }
    r->tokens[r->n_tokens++] = tok;
    return CODER_OK;
}

static coder_status check_stops(const coder_gen_params *gp) {
    if (gp->n_stop && !gp->stop) return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.stop is NULL with n_stop = %zu", gp->n_stop);
    for (size_t i = 0; i < gp->n_stop; i++)
        if (!gp->stop[i] || !gp->stop[i][0])
            return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.stop[%zu] is %s", i, gp->stop[i] ? "empty" : "NULL");
    return CODER_OK;
}

/* The decode loop proper. The caller holds the session and has validated everything. */
static coder_status generate_run(coder_session *s, const int32_t *prompt, size_t n_prompt,
                                 const coder_gen_params *gp, coder_result *r) {
    const tokenizer *tok = s->model->tok;
    int32_t vocab = s->model->hp.vocab_size;
    coder_stats *st = &r->stats;
    st->n_cached = s->n_past;
    st->n_prompt = (int32_t)n_prompt;
    r->stop_reason = CODER_STOP_ERROR;

    sampler *sm = NULL;
    TRY(sampler_new(gp, vocab, &sm));
    gen_text text = {.gp = gp};
    size_t tok_cap = 0;
    char piece_stack[256], *piece = piece_stack;
    size_t piece_cap = sizeof piece_stack;
    coder_status status = text_reserve(&text, 0);
    if (status != CODER_OK) goto done;
    text.buf[0] = 0;

    double t0 = coder_time_now();
    if (n_prompt > 0) {
        status = session_eval(s, prompt, n_prompt);
        if (status == CODER_ERR_CANCELLED) {
            r->stop_reason = CODER_STOP_CANCELLED;
            status = CODER_OK;
            goto done;
        }
        if (status != CODER_OK) goto done;
    }
    double t1 = coder_time_now();
    st->prefill_ms = (t1 - t0) * 1e3;
    st->prefill_tps = n_prompt && t1 > t0 ? (double)n_prompt / (t1 - t0) : 0;

    // penalty window: the last repeat_last_n tokens the session holds (prompt included)
    int32_t from = s->n_past > gp->repeat_last_n ? s->n_past - gp->repeat_last_n : 0;
    for (int32_t i = from; i < s->n_past; i++) sampler_accept(sm, s->tokens[i]);

    // Greedy decoding takes each next token's argmax where the logits are (a few bytes back per
    // step from a GPU); `next` holds it, -1 when the logits must be sampled on the host.
    const bool argmax = sampler_is_argmax(sm);
    int32_t next = -1;
    // Sampling whose chain starts with a small top-k takes the k best logits where they are (k
    // pairs back per step instead of the vocabulary); n_top > 0: top_ids/top_vals hold them.
    int32_t top_k = argmax ? 0 : sampler_top_only(sm, BACKEND_TOPK_MAX);
    if (top_k > s->model->hp.vocab_size) top_k = s->model->hp.vocab_size;
    int32_t top_ids[BACKEND_TOPK_MAX], n_top = 0;
    float top_vals[BACKEND_TOPK_MAX];
    // Prompt lookup (greedy only): drafts verified with the token before them; the kept ones wait
    // in queue[qi..nq), already evaluated, and go out one per iteration like sampled tokens.
    int max_draft = argmax ? gp->lookup_draft : 0;
    if (max_draft > s->n_batch - 1) max_draft = s->n_batch - 1;
    // On a GPU batches above 8 tokens take the f16 prefill path: greedy's choices could then differ
    // from one-token steps (f32), so drafts stay within the mat-vec's 8 tokens there.
    const backend *last = s->stages.b[s->stages.n - 1];
    if (strcmp(last->ops->name, "cpu") != 0 && max_draft > LOOKUP_MAX_DRAFT_GPU) max_draft = LOOKUP_MAX_DRAFT_GPU;
    int32_t queue[LOOKUP_MAX_DRAFT];
    int qi = 0, nq = 0;
    int draft_len = max_draft;   // adapts: doubles after a draft kept whole, else kept + 1
    for (;;) {
        if (atomic_load(&s->cancel)) { r->stop_reason = CODER_STOP_CANCELLED; break; }
        if (gp->max_tokens >= 0 && r->n_tokens >= (size_t)gp->max_tokens) { r->stop_reason = CODER_STOP_LENGTH; break; }
        int32_t id;
        if (qi < nq) {
            id = queue[qi++];   // drafted, verified and evaluated with the batch
        } else {
            if (s->n_past >= s->n_ctx) { r->stop_reason = CODER_STOP_CONTEXT_FULL; break; }
            id = next;
            if (id < 0 && n_top > 0) {
                if ((status = sampler_sample_top(sm, top_ids, top_vals, n_top, &id)) != CODER_OK) goto done;
            } else if (id < 0) {
                if ((status = session_logits(s)) != CODER_OK) goto done;
                if ((status = sampler_sample(sm, s->logits, &id)) != CODER_OK) goto done;
            }
            n_top = 0;
            if (tokenizer_is_eog(tok, id)) { r->stop_reason = CODER_STOP_EOG; break; }
            int nd = 0;
            if (max_draft > 0) {   // drafts may not outrun max_tokens or the context
                long room = gp->max_tokens >= 0 ? (long)gp->max_tokens - (long)r->n_tokens - 1 : max_draft;
                if (room > s->n_ctx - s->n_past - 1) room = s->n_ctx - s->n_past - 1;
                if (room > draft_len) room = draft_len;
                if (room > 0) nd = lookup_draft(s, id, tok, (int)room, queue);
            }
            if (nd > 0) {
                int ok = 0;
                status = lookup_verify(s, id, queue, nd, &ok, &next);
                if (status == CODER_OK) {
                    st->n_drafted += nd;
                    st->n_accepted += ok;
                    // rejected drafts cost a wider batch for nothing: ask for what was kept last time
                    draft_len = ok == nd ? (2 * draft_len < max_draft ? 2 * draft_len : max_draft) : ok + 1;
                    qi = 0;
                    nq = ok;
                }
            } else {
                if (argmax) {
                    status = session_eval_greedy(s, id, &next);
                } else if (top_k > 0) {
                    status = session_eval_topk(s, id, top_k, top_ids, top_vals);
                    if (status == CODER_OK) n_top = top_k;
                } else {
                    status = session_eval(s, &id, 1);
                }
            }
            if (status == CODER_ERR_CANCELLED) { // the token was not kept: drop it, text unchanged
                r->stop_reason = CODER_STOP_CANCELLED;
                status = CODER_OK;
                break;
            }
            if (status != CODER_OK) goto done;
        }
        if ((status = result_push_token(r, &tok_cap, id)) != CODER_OK) goto done;
        sampler_accept(sm, id);

        size_t plen = 0;
        status = tokenizer_piece(tok, id, 0, piece, piece_cap, &plen);
        if (status == CODER_ERR_BUFFER_TOO_SMALL) {
            if (piece != piece_stack) coder_mfree(piece);
            piece = coder_malloc(plen);
            piece_cap = plen;
            if (!piece) {
                piece = piece_stack;
                piece_cap = sizeof piece_stack;
                status = coder_fail(CODER_ERR_NOMEM, "token %d text: %zu bytes", (int)id, plen);
                goto done;
            }
            status = tokenizer_piece(tok, id, 0, piece, piece_cap, &plen);
        }
        if (status == CODER_ERR_INVALID_ARG) { // an output row past the tokenizer's vocabulary: no text
            LOG_DEBUG("generate: token %d has no text", (int)id);
            plen = 0;
        } else if (status != CODER_OK) {
            goto done;
        }
        if ((status = text_push(&text, piece, plen)) != CODER_OK) goto done;
        if (text.stop_string) { r->stop_reason = CODER_STOP_STRING; break; }
        if (text.callback_stop) { r->stop_reason = CODER_STOP_CANCELLED; break; }
    }
    // Verified drafts the loop did not emit (a stop string, a cancel) leave the session, so it holds
    // exactly the returned tokens; the logits are those after the last of them.
    if (qi < nq && (status = lookup_trim(s, nq - qi, qi)) != CODER_OK) goto done;
    status = text_finish(&text);
    if (status == CODER_OK && text.stop_string) r->stop_reason = CODER_STOP_STRING;
    {
        double t2 = coder_time_now();
        st->decode_ms = (t2 - t1) * 1e3;
        st->n_generated = (int32_t)r->n_tokens;
        st->decode_tps = r->n_tokens && t2 > t1 ? (double)r->n_tokens / (t2 - t1) : 0;
    }
done:
    if (status != CODER_OK) r->stop_reason = CODER_STOP_ERROR;
    if (piece != piece_stack) coder_mfree(piece);
    sampler_free(sm);
    r->text = text.buf;
    r->text_len = text.buf ? text.len : 0;
    if (r->text) r->text[r->text_len] = 0;
    return status;
}

/* Checks common to both entry points; clears the result. *out receives the caller's params over
 * the defaults (a 0.1 caller's struct lacks the 0.2 fields): the rest of the call reads only *out. */
static coder_status generate_check(coder_session *s, const coder_gen_params *gp, coder_result *r, coder_gen_params *out) {
    if (!r) return coder_fail(CODER_ERR_INVALID_ARG, "result is NULL");
    if (r->size != sizeof *r)
        return coder_fail(CODER_ERR_INVALID_ARG, "result.size = %zu: call coder_result_init first", r->size);
    coder_result_clear(r);
    if (!s) return coder_fail(CODER_ERR_INVALID_ARG, "session is NULL");
    if (!gp) return coder_fail(CODER_ERR_INVALID_ARG, "gen_params is NULL");
    coder_gen_params_init(out);
    TRY(coder_params_copy(out, sizeof *out, gp, offsetof(coder_gen_params, prompt_mode), "gen_params"));
    TRY(sampler_check_params(out));
    if (out->prompt_mode != CODER_PROMPT_CONTINUE && out->prompt_mode != CODER_PROMPT_REUSE)
        return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.prompt_mode = %d is not a coder_prompt_mode", (int)out->prompt_mode);
    if (out->context_policy != CODER_CONTEXT_REFUSE && out->context_policy != CODER_CONTEXT_TRUNCATE)
        return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.context_policy = %d is not a coder_context_policy",
                          (int)out->context_policy);
    if (out->truncate_keep < 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.truncate_keep = %d must be >= 0", (int)out->truncate_keep);
    if (out->lookup_draft < 0 || out->lookup_draft > LOOKUP_MAX_DRAFT)
        return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.lookup_draft = %d must be in [0, %d]", (int)out->lookup_draft,
                          LOOKUP_MAX_DRAFT);
    return check_stops(out);
}

/* CODER_CONTEXT_TRUNCATE: the first `keep` and the last `target - keep` tokens of prompt (n > avail)
 * into a new array (*cut, caller frees). room for generation = min(max_tokens, avail/2). */
static coder_status generate_truncate(const int32_t *prompt, size_t n, size_t avail, const coder_gen_params *gp,
                                      int32_t **cut, size_t *n_cut) {
    size_t room = gp->max_tokens >= 0 && (size_t)gp->max_tokens < avail / 2 ? (size_t)gp->max_tokens : avail / 2;
    size_t target = avail - room;
    if (target < 1) target = 1;
    size_t keep = (size_t)gp->truncate_keep < target / 2 ? (size_t)gp->truncate_keep : target / 2;
    int32_t *c = coder_malloc(target * sizeof *c);
    if (!c) return coder_fail(CODER_ERR_NOMEM, "truncated prompt: %zu ids", target);
    memcpy(c, prompt, keep * sizeof *c);
    memcpy(c + keep, prompt + (n - (target - keep)), (target - keep) * sizeof *c);
    LOG_INFO("prompt of %zu tokens truncated to %zu (first %zu + last %zu; %zu left for generation)", n, target, keep,
             target - keep, avail - target);
    *cut = c;
    *n_cut = target;
    return CODER_OK;
}

/* Checks the prompt against the session (held), applies the context policy and prefix reuse;
 * then runs. */
static coder_status generate_locked(coder_session *s, const int32_t *prompt, size_t n_prompt,
                                   const coder_gen_params *gp, coder_result *r) {
    int32_t vocab = s->model->hp.vocab_size;
    const bool reuse = gp->prompt_mode == CODER_PROMPT_REUSE;
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= vocab)
            return coder_fail(CODER_ERR_INVALID_ARG, "prompt[%zu] = %d: outside the vocabulary [0, %d)", i,
                              (int)prompt[i], (int)vocab);
    if (reuse && n_prompt == 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "prompt is empty with prompt_mode CODER_PROMPT_REUSE (it is the whole context)");
    if (n_prompt == 0 && !s->has_logits)
        return coder_fail(CODER_ERR_INVALID_ARG, "prompt is empty and the session holds no logits to continue from");
    const size_t avail = (size_t)(reuse ? s->n_ctx : s->n_ctx - s->n_past);
    int32_t *cut = NULL;
    if (n_prompt > avail) {
        if (gp->context_policy != CODER_CONTEXT_TRUNCATE || avail == 0) {
            r->stop_reason = CODER_STOP_CONTEXT_FULL;
            return coder_fail(CODER_ERR_CONTEXT_FULL,
                              "prompt of %zu tokens after %d held does not fit n_ctx %d (%zu free; context_policy "
                              "CODER_CONTEXT_TRUNCATE would cut its middle)",
                              n_prompt, reuse ? 0 : (int)s->n_past, (int)s->n_ctx, avail);
        }
        TRY(generate_truncate(prompt, n_prompt, avail, gp, &cut, &n_prompt));
        prompt = cut;
    }
    size_t start = 0;
    if (reuse) {   /* keep the longest common prefix; evaluate at least the last prompt token */
        size_t common = 0, held = (size_t)s->n_past;
        while (common < held && common < n_prompt && s->tokens[common] == prompt[common]) common++;
        start = common;
        if (common == n_prompt && !(held == n_prompt && s->has_logits)) start = n_prompt - 1;
        coder_status st = session_truncate(s, (int32_t)start);
        if (st != CODER_OK) {
            coder_mfree(cut);
            return st;
        }
    }
    coder_status st = generate_run(s, prompt + start, n_prompt - start, gp, r);
    coder_mfree(cut);
    return st;
}

CODER_EXPORT coder_status coder_generate_tokens(coder_session *session, const int32_t *prompt,
                                                size_t n_prompt, const coder_gen_params *gp_in,
                                                coder_result *result) {
    coder_gen_params gp;
    TRY(generate_check(session, gp_in, result, &gp));
    if (!prompt && n_prompt) return coder_fail(CODER_ERR_INVALID_ARG, "prompt is NULL with n_prompt = %zu", n_prompt);
    if (!session_enter(session)) return CODER_ERR_BUSY;
    atomic_store(&session->cancel, false);
    coder_status st = generate_locked(session, prompt, n_prompt, &gp, result);
    session_leave(session);
    return st;
}

CODER_EXPORT coder_status coder_generate(coder_session *session, const char *prompt, size_t len,
                                         const coder_gen_params *gp_in, coder_result *result) {
    coder_gen_params gp;
    TRY(generate_check(session, gp_in, result, &gp));
    if (!prompt && len) return coder_fail(CODER_ERR_INVALID_ARG, "prompt is NULL with len = %zu", len);
    if (!session_enter(session)) return CODER_ERR_BUSY;
    atomic_store(&session->cancel, false);
    // BOS belongs at position 0 only: a prompt that continues a session gets no special tokens added
    unsigned flags = gp.tokenize_flags;
    if (session->n_past > 0 && gp.prompt_mode == CODER_PROMPT_CONTINUE) flags &= ~CODER_TOKENIZE_ADD_SPECIAL;
    int32_t stack_ids[512], *ids = stack_ids;
    size_t n = 0;
    coder_status st = tokenizer_encode(session->model->tok, prompt ? prompt : "", len, flags, ids, 512, &n);
    if (st == CODER_ERR_BUFFER_TOO_SMALL) {
        ids = coder_malloc(n * sizeof *ids);
        if (!ids) {
            session_leave(session);
            return coder_fail(CODER_ERR_NOMEM, "prompt tokens: %zu ids", n);
        }
        size_t n2 = 0;
        st = tokenizer_encode(session->model->tok, prompt, len, flags, ids, n, &n2);
        n = n2;
    }
    if (st == CODER_OK) st = generate_locked(session, ids, n, &gp, result);
    if (ids != stack_ids) coder_mfree(ids);
    session_leave(session);
    return st;
}
