/* tokenizer_encode.c - encode (special-token splitting, then BPE or SPM per raw fragment, BOS/EOS)
 * and decode (token pieces) of a loaded tokenizer.
 *
 * Special-token splitting (FORMATS.md 4.2) with the same result as llama.cpp's sequential
 * "for each candidate, longest first, split every raw fragment at each leftmost occurrence", in
 * one scan: every occurrence of every candidate is found (first-byte buckets), then occurrences
 * are accepted in (candidate priority, position) order unless they overlap an accepted one. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

typedef struct tok_occ {
    uint32_t prio;                /* index into t->cand (0 = longest)                        */
    size_t pos;
} tok_occ;

static int tok_occ_by_prio(const void *a, const void *b) {
    const tok_occ *x = a, *y = b;
    if (x->prio != y->prio) return x->prio < y->prio ? -1 : 1;
    return x->pos < y->pos ? -1 : (x->pos > y->pos);
}
static int tok_occ_by_pos(const void *a, const void *b) {
    const tok_occ *x = a, *y = b;
    return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

/* Finds the special-token fragments of text: *occ (sorted by position, non-overlapping). */
static coder_status tok_find_specials(const tokenizer *t, const char *text, size_t len, bool parse_special,
                                      tok_occ **occ_out, size_t *n_out) {
    tok_occ *occ = NULL;
    size_t n = 0, cap = 0;
    *occ_out = NULL;
    *n_out = 0;
    for (size_t p = 0; p < len; p++) {
        unsigned char c0 = (unsigned char)text[p];
        for (uint32_t k = t->cand_bucket[c0]; k < t->cand_bucket[c0 + 1]; k++) {
            uint32_t ci = t->cand_by_byte[k];
            int32_t id = t->cand[ci];
            if (!parse_special && t->type[id] != TOK_USER_DEFINED) continue;
            size_t l = t->text_off[id + 1] - t->text_off[id];
            if (l > len - p || memcmp(text + p, t->text + t->text_off[id], l) != 0) continue;
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 64;
                tok_occ *q = coder_realloc(occ, nc * sizeof *occ);
                if (!q) { coder_mfree(occ); return coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory for special tokens"); }
                occ = q;
                cap = nc;
            }
            occ[n++] = (tok_occ){ci, p};
        }
    }
    if (n == 0) return CODER_OK;
    /* accept by priority; a bitmap of taken bytes rejects overlaps */
    uint64_t *taken = coder_calloc(len / 64 + 1, sizeof *taken);
    if (!taken) { coder_mfree(occ); return coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory for special tokens"); }
    qsort(occ, n, sizeof *occ, tok_occ_by_prio);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->cand[occ[i].prio];
        size_t l = t->text_off[id + 1] - t->text_off[id], p = occ[i].pos;
        bool free_ = true;
        for (size_t q = p; q < p + l && free_; q++) free_ = !(taken[q / 64] >> (q % 64) & 1);
        if (!free_) continue;
        for (size_t q = p; q < p + l; q++) taken[q / 64] |= 1ull << (q % 64);
        occ[m++] = occ[i];
    }
    coder_mfree(taken);
    qsort(occ, m, sizeof *occ, tok_occ_by_pos);
    *occ_out = occ;
    *n_out = m;
    return CODER_OK;
}

coder_status tokenizer_encode(const tokenizer *t, const char *text, size_t len, unsigned flags, int32_t *out,
                              size_t cap, size_t *n) {
    if (n) *n = 0;
    if (!t || !n || (!text && len) || (!out && cap))
        return coder_fail(CODER_ERR_INVALID_ARG, "tokenize: NULL %s", !t ? "tokenizer" : !n ? "n_tokens" : !text ? "text" : "tokens");
    if (len > INT32_MAX)
        return coder_fail(CODER_ERR_LIMIT, "tokenize: text of %zu bytes exceeds the limit of %d bytes", len, INT32_MAX);
    if (!text) text = "";
    bool add = (flags & CODER_TOKENIZE_ADD_SPECIAL) != 0, parse = (flags & CODER_TOKENIZE_PARSE_SPECIAL) != 0;
    tok_out o = {out, cap, 0};
    tok_occ *occ;
    size_t n_occ;
    TRY(tok_find_specials(t, text, len, parse, &occ, &n_occ));
    bpe_scratch *scratch = NULL;
    coder_status st = CODER_OK;
    if (t->model == TOKENIZER_BPE && !(scratch = tokenizer_bpe_scratch_new())) {
        coder_mfree(occ);
        return coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory");
    }
    if (add && t->sp.add_bos) tok_push(&o, t->sp.bos);
    bool prev_special = true; /* SPM: the dummy space goes at the start and after each special */
    size_t pos = 0;
    for (size_t i = 0; i <= n_occ && st == CODER_OK; i++) {
        size_t end = i < n_occ ? occ[i].pos : len;
        if (end > pos) {
            if (t->model == TOKENIZER_BPE) st = tokenizer_bpe_encode(t, scratch, text, pos, end, &o);
            else st = tokenizer_spm_encode(t, text + pos, end - pos, t->sp.add_space_prefix && prev_special, &o);
            prev_special = false;
        }
        if (i < n_occ) {
            int32_t id = t->cand[occ[i].prio];
            tok_push(&o, id);
            pos = end + (t->text_off[id + 1] - t->text_off[id]);
            prev_special = true;
        }
    }
    tokenizer_bpe_scratch_free(scratch);
    coder_mfree(occ);
    if (st != CODER_OK) return st;
    if (add && t->sp.add_eos) tok_push(&o, t->sp.eos);
    *n = o.n;
    if (o.n > cap)
        return coder_fail(CODER_ERR_BUFFER_TOO_SMALL, "tokenize: %zu tokens do not fit in a buffer of %zu", o.n, cap);
    return CODER_OK;
}

/* The bytes id renders to (*rendered false: nothing, e.g. CONTROL without the special flag). */
static const char *tok_render(const tokenizer *t, int32_t id, unsigned flags, size_t *len) {
    uint8_t ty = t->type[id];
    bool show = ty == TOK_UNUSED ? false
              : (ty == TOK_CONTROL || ty == TOK_UNKNOWN) ? (flags & CODER_DETOKENIZE_SPECIAL) != 0
              : true;
    *len = show ? t->piece_off[id + 1] - t->piece_off[id] : 0;
    return t->piece + t->piece_off[id];
}

coder_status tokenizer_piece(const tokenizer *t, int32_t id, unsigned flags, char *buf, size_t cap, size_t *len) {
    if (len) *len = 0;
    if (!t || !len || (!buf && cap)) return coder_fail(CODER_ERR_INVALID_ARG, "token_to_piece: NULL argument");
    if (id < 0 || id >= t->n_vocab)
        return coder_fail(CODER_ERR_INVALID_ARG, "token id %d is outside the vocabulary (0..%d)", id, t->n_vocab - 1);
    size_t l;
    const char *p = tok_render(t, id, flags, &l);
    *len = l;
    if (l > cap) return coder_fail(CODER_ERR_BUFFER_TOO_SMALL, "token_to_piece: %zu bytes do not fit in %zu", l, cap);
    if (l) memcpy(buf, p, l);
    return CODER_OK;
}

coder_status tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char *buf, size_t cap,
                              size_t *len) {
    if (len) *len = 0;
    if (!t || !len || (!ids && n) || (!buf && cap)) return coder_fail(CODER_ERR_INVALID_ARG, "detokenize: NULL argument");
    size_t total = 0;
    bool strip = t->model == TOKENIZER_SPM && t->sp.add_space_prefix, first = true;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return coder_fail(CODER_ERR_INVALID_ARG, "detokenize: tokens[%zu] = %d is outside the vocabulary (0..%d)", i,
                              ids[i], t->n_vocab - 1);
        size_t l;
        const char *p = tok_render(t, ids[i], flags, &l);
        if (l == 0) continue;
        /* SPM: the first rendered piece loses the dummy-prefix space the encoder added */
        if (first && strip && t->type[ids[i]] != TOK_CONTROL && t->type[ids[i]] != TOK_USER_DEFINED && p[0] == ' ') {
            p++;
            l--;
        }
        first = false;
        if (total < cap) memcpy(buf + total, p, l <= cap - total ? l : cap - total);
        total += l;
    }
    *len = total;
    if (total > cap) return coder_fail(CODER_ERR_BUFFER_TOO_SMALL, "detokenize: %zu bytes do not fit in %zu", total, cap);
    return CODER_OK;
}
