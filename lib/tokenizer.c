/* tokenizer.c - builds a tokenizer from a GGUF file's tokenizer.* keys (FORMATS.md 4.1, 5.4) and
 * dispatches encode/decode: special-token splitting (4.2), then BPE (tokenizer_bpe.c) or
 * SentencePiece (tokenizer_spm.c) on the raw fragments.
 *
 * Load-time rules for bad metadata (BAD_INPUTS.md group E), all CODER_ERR_FORMAT naming the key:
 *   tokens missing / empty / not strings / a token over TOKENIZER_MAX_TOKEN_LEN bytes;
 *   scores or token_type of the wrong element type or count; a token_type outside 1..6;
 *   a special id outside [0, n_vocab); a BYTE token not spelled <0xNN>; a malformed merge.
 *   Duplicate token texts are accepted: text lookup gives the last id, like llama.cpp.
 *   An unknown tokenizer.ggml.model or tokenizer.ggml.pre is CODER_ERR_UNSUPPORTED. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

#define TOKENIZER_MAX_TOKEN_LEN 65536 /* longest real token texts are a few hundred bytes */

/* ---- string -> id maps ---- */

uint64_t tokenizer_hash(const char *s, size_t len) {
    /* FNV-1a over 8-byte words, then a final mix: fast for the short keys we hash */
    uint64_t h = 0xcbf29ce484222325ull ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    memcpy(&w, s + i, len - i);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 32);
}

int32_t tokenizer_map_find(const tok_strmap *m, const char *arena, const uint32_t *off, const char *s,
                           size_t len) {
    if (!m->slots) return -1;
    for (size_t i = tokenizer_hash(s, len) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t v = m->slots[i];
        if (!v) return -1;
        uint32_t id = v - 1;
        if (off[id + 1] - off[id] == len && memcmp(arena + off[id], s, len) == 0) return (int32_t)id;
    }
}

/* Builds a map over the ids with keep[id] (NULL: all); a later id replaces an earlier equal key. */
coder_status tokenizer_map_build(tok_strmap *m, const char *arena, const uint32_t *off, int32_t n,
                                        const uint8_t *keep) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap <<= 1;
    m->slots = coder_calloc(cap, sizeof *m->slots);
    if (!m->slots) return coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory for a %zu-slot token map", cap);
    m->mask = cap - 1;
    for (int32_t id = 0; id < n; id++) {
        if (keep && !keep[id]) continue;
        const char *s = arena + off[id];
        size_t len = off[id + 1] - off[id];
        for (size_t i = tokenizer_hash(s, len) & m->mask;; i = (i + 1) & m->mask) {
            uint32_t v = m->slots[i];
            if (!v) { m->slots[i] = (uint32_t)id + 1; break; }
            uint32_t o = v - 1;
            if (off[o + 1] - off[o] == len && memcmp(arena + off[o], s, len) == 0) {
                m->slots[i] = (uint32_t)id + 1;
                break;
            }
        }
    }
    return CODER_OK;
}

/* ---- load ---- */

static coder_status tokenizer_read_special(const gguf_file *f, const char *key, int32_t n_vocab, int32_t *out) {
    uint64_t v = 0;
    if (gguf_find_key(f, key) < 0) return CODER_OK;
    TRY(gguf_get_u64(f, key, &v, true));
    if (v >= (uint64_t)n_vocab)
        return coder_fail(CODER_ERR_FORMAT, "key %s = %llu is outside the vocabulary (n_vocab %d)", key,
                          (unsigned long long)v, n_vocab);
    *out = (int32_t)v;
    return CODER_OK;
}

/* Finds the first of texts (in list order) present in the vocabulary; -1 if none. */
static int32_t tokenizer_find_any(const tokenizer *t, const char *const *texts) {
    for (; *texts; texts++) {
        int32_t id = tokenizer_find(t, *texts, strlen(*texts));
        if (id >= 0) return id;
    }
    return -1;
}

/* Specials given by text when the metadata lacks them, and the EOG set (FORMATS.md 5.4). Like
 * llama.cpp, a token picked this way is made CONTROL (so parse_special governs it and decode
 * hides it). */
static void tokenizer_mark_control(tokenizer *t, int32_t id) {
    if (id < 0) return;
    if (t->type[id] != TOK_CONTROL) {
        LOG_DEBUG("tokenizer: token %d used as a special token; its type becomes CONTROL", id);
        t->type[id] = TOK_CONTROL;
    }
}

static void tokenizer_find_specials(tokenizer *t) {
    static const char *const eot[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                      "<EOT>", "\xe2\x96\x81<EOT>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", NULL};
    static const char *const eom[] = {"<|eom_id|>", NULL};
    static const char *const pre[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                                      "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>", "\xe2\x96\x81<PRE>", NULL};
    static const char *const suf[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                                      "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>", "<SUF>", "\xe2\x96\x81<SUF>", NULL};
    static const char *const mid[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                                      "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>", "\xe2\x96\x81<MID>", NULL};
    static const char *const pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", NULL};
    static const char *const rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<repo_name>", "<REPO>", NULL};
    static const char *const sep[] = {"<|file_sep|>", "<file_sep>", NULL};
    static const char *const eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                            "<|eom_id|>", "<EOT>", "\xe2\x96\x81<EOT>",
                                            "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", NULL};
    struct { int32_t *field; const char *const *texts; } by_text[] = {
        {&t->sp.eot, eot}, {&t->sp.eom, eom}, {&t->sp.fim_pre, pre}, {&t->sp.fim_suf, suf},
        {&t->sp.fim_mid, mid}, {&t->sp.fim_pad, pad}, {&t->sp.fim_rep, rep}, {&t->sp.fim_sep, sep},
    };
    for (size_t i = 0; i < sizeof by_text / sizeof by_text[0]; i++) {
        if (*by_text[i].field >= 0) continue;
        *by_text[i].field = tokenizer_find_any(t, by_text[i].texts);
        tokenizer_mark_control(t, *by_text[i].field);
    }
    int32_t set[] = {t->sp.eos, t->sp.eot, t->sp.eom, t->sp.fim_pad, t->sp.fim_rep, t->sp.fim_sep};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        if (set[i] >= 0) t->eog[set[i]] = 1;
    for (const char *const *s = eog_texts; *s; s++) {
        int32_t id = tokenizer_find(t, *s, strlen(*s));
        if (id >= 0) {
            t->eog[id] = 1;
            tokenizer_mark_control(t, id);
        }
    }
}

/* Appends the bytes a token renders to. BPE NORMAL/BYTE/UNUSED: GPT-2 byte-decoded (raw text if
 * some character is outside the byte table); SPM NORMAL/UNUSED: U+2581 -> space; SPM BYTE <0xNN>:
 * that byte; CONTROL/USER_DEFINED/UNKNOWN: the raw text. */
static coder_status tokenizer_make_piece(tokenizer *t, int32_t id, char *out, size_t *out_len) {
    const char *s = t->text + t->text_off[id];
    size_t len = t->text_off[id + 1] - t->text_off[id], n = 0;
    uint8_t ty = t->type[id];
    if (ty == TOK_CONTROL || ty == TOK_USER_DEFINED || ty == TOK_UNKNOWN) {
        memcpy(out, s, len);
        *out_len = len;
        return CODER_OK;
    }
    if (t->model == TOKENIZER_SPM && ty == TOK_BYTE) {
        static const char hex[] = "0123456789ABCDEFabcdef";
        const char *h1 = len == 6 ? memchr(hex, s[3], 22) : NULL, *h2 = len == 6 ? memchr(hex, s[4], 22) : NULL;
        if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>' || !h1 || !h2 || !s[3] || !s[4]) {
            char esc[64];
            return coder_fail(CODER_ERR_FORMAT, "tokenizer.ggml.tokens[%d] is a BYTE token spelled '%s', expected <0xNN>",
                              id, coder_escape(s, len, esc, sizeof esc));
        }
        int hi = (int)(h1 - hex), lo = (int)(h2 - hex);
        hi = hi >= 16 ? hi - 6 : hi;
        lo = lo >= 16 ? lo - 6 : lo;
        out[0] = (char)(hi * 16 + lo);
        *out_len = 1;
        return CODER_OK;
    }
    if (t->model == TOKENIZER_SPM) {
        for (size_t i = 0; i < len;) {
            if (i + 3 <= len && memcmp(s + i, "\xe2\x96\x81", 3) == 0) { out[n++] = ' '; i += 3; }
            else out[n++] = s[i++];
        }
        *out_len = n;
        return CODER_OK;
    }
    for (size_t i = 0; i < len;) {
        int cl;
        uint32_t cp = unicode_decode((const unsigned char *)s + i, len - i, &cl);
        int b = cp < UNICODE_INVALID_BASE ? unicode_cpt_to_byte(cp) : -1;
        if (b < 0) { /* not byte-level text: render it as it is */
            memcpy(out, s, len);
            *out_len = len;
            return CODER_OK;
        }
        out[n++] = (char)b;
        i += (size_t)cl;
    }
    *out_len = n;
    return CODER_OK;
}

static int tokenizer_cand_cmp(const void *a, const void *b, void *arg) {
    const tokenizer *t = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = t->text_off[x + 1] - t->text_off[x], ly = t->text_off[y + 1] - t->text_off[y];
    if (lx != ly) return lx > ly ? -1 : 1; /* longest first */
    return x < y ? -1 : (x > y);           /* then lowest id (deterministic) */
}

/* Candidate list for special-token splitting, longest first, bucketed by first byte. */
static coder_status tokenizer_build_candidates(tokenizer *t) {
    size_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint8_t ty = t->type[id];
        if ((ty == TOK_CONTROL || ty == TOK_USER_DEFINED || ty == TOK_UNKNOWN) && t->text_off[id + 1] > t->text_off[id]) n++;
    }
    t->cand = coder_malloc((n ? n : 1) * sizeof *t->cand);
    t->cand_by_byte = coder_malloc((n ? n : 1) * sizeof *t->cand_by_byte);
    if (!t->cand || !t->cand_by_byte) return coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory for %zu special tokens", n);
    n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint8_t ty = t->type[id];
        if ((ty == TOK_CONTROL || ty == TOK_USER_DEFINED || ty == TOK_UNKNOWN) && t->text_off[id + 1] > t->text_off[id])
            t->cand[n++] = id;
    }
    t->n_cand = n;
    qsort_r(t->cand, n, sizeof *t->cand, tokenizer_cand_cmp, t);
    uint32_t count[256] = {0};
    for (size_t i = 0; i < n; i++) count[(unsigned char)t->text[t->text_off[t->cand[i]]]]++;
    t->cand_bucket[0] = 0;
    for (int b = 0; b < 256; b++) t->cand_bucket[b + 1] = t->cand_bucket[b] + count[b];
    uint32_t fill[256];
    memcpy(fill, t->cand_bucket, sizeof fill);
    for (size_t i = 0; i < n; i++) t->cand_by_byte[fill[(unsigned char)t->text[t->text_off[t->cand[i]]]]++] = (uint32_t)i;
    return CODER_OK;
}

static coder_status tokenizer_load_arrays(tokenizer *t, const gguf_file *f) {
    const gguf_str *toks;
    uint64_t n;
    TRY(gguf_get_str_array(f, "tokenizer.ggml.tokens", &toks, &n, true));
    if (n == 0) return coder_fail(CODER_ERR_FORMAT, "key tokenizer.ggml.tokens is an empty array");
    if (n > INT32_MAX) return coder_fail(CODER_ERR_LIMIT, "key tokenizer.ggml.tokens has %llu entries (max %d)",
                                         (unsigned long long)n, INT32_MAX);
    t->n_vocab = (int32_t)n;
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (toks[i].len > TOKENIZER_MAX_TOKEN_LEN)
            return coder_fail(CODER_ERR_FORMAT, "tokenizer.ggml.tokens[%llu] is %llu bytes long (max %d)",
                              (unsigned long long)i, (unsigned long long)toks[i].len, TOKENIZER_MAX_TOKEN_LEN);
        if (ck_add(total, toks[i].len, &total) || total > UINT32_MAX)
            return coder_fail(CODER_ERR_LIMIT, "tokenizer.ggml.tokens: token texts exceed 4 GiB");
    }
    t->text = coder_malloc(total ? total : 1);
    t->text_off = coder_malloc((n + 1) * sizeof *t->text_off);
    t->piece = coder_malloc(total ? total : 1); /* a piece is never longer than its text */
    t->piece_off = coder_malloc((n + 1) * sizeof *t->piece_off);
    t->type = coder_malloc(n);
    t->score = coder_calloc(n, sizeof *t->score);
    t->eog = coder_calloc(n, 1);
    if (!t->text || !t->text_off || !t->piece || !t->piece_off || !t->type || !t->score || !t->eog)
        return coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory for %llu tokens", (unsigned long long)n);
    uint32_t o = 0;
    for (uint64_t i = 0; i < n; i++) {
        t->text_off[i] = o;
        if (toks[i].len) memcpy(t->text + o, toks[i].ptr, toks[i].len);
        o += (uint32_t)toks[i].len;
    }
    t->text_off[n] = o;

    uint32_t et;
    const void *data;
    uint64_t count;
    if (gguf_find_key(f, "tokenizer.ggml.scores") >= 0) {
        TRY(gguf_get_array(f, "tokenizer.ggml.scores", &et, &data, &count, true));
        if (et != GGUF_TYPE_FLOAT32)
            return coder_fail(CODER_ERR_FORMAT, "key tokenizer.ggml.scores has element type %s, expected FLOAT32", gguf_type_name(et));
        if (count != n)
            return coder_fail(CODER_ERR_FORMAT, "key tokenizer.ggml.scores has %llu entries, tokenizer.ggml.tokens %llu",
                              (unsigned long long)count, (unsigned long long)n);
        memcpy(t->score, data, n * sizeof(float));
    }
    memset(t->type, TOK_NORMAL, n);
    if (gguf_find_key(f, "tokenizer.ggml.token_type") >= 0) {
        TRY(gguf_get_array(f, "tokenizer.ggml.token_type", &et, &data, &count, true));
        if (et != GGUF_TYPE_INT32 && et != GGUF_TYPE_UINT32)
            return coder_fail(CODER_ERR_FORMAT, "key tokenizer.ggml.token_type has element type %s, expected INT32", gguf_type_name(et));
        if (count != n)
            return coder_fail(CODER_ERR_FORMAT, "key tokenizer.ggml.token_type has %llu entries, tokenizer.ggml.tokens %llu",
                              (unsigned long long)count, (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, (const char *)data + 4 * i, 4);
            if (v < TOK_NORMAL || v > TOK_BYTE)
                return coder_fail(CODER_ERR_FORMAT, "tokenizer.ggml.token_type[%llu] = %d, expected 1..6", (unsigned long long)i, v);
            t->type[i] = (uint8_t)v;
        }
    }
    return CODER_OK;
}

static coder_status tokenizer_load_specials(tokenizer *t, const gguf_file *f) {
    tokenizer_special *sp = &t->sp;
    int32_t *all[] = {&sp->bos, &sp->eos, &sp->eot, &sp->eom, &sp->unk, &sp->pad, &sp->sep, &sp->fim_pre,
                      &sp->fim_suf, &sp->fim_mid, &sp->fim_pad, &sp->fim_rep, &sp->fim_sep};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) *all[i] = -1;
    if (t->model == TOKENIZER_SPM) { /* llama.cpp defaults for SentencePiece */
        if (t->n_vocab > 2) { sp->unk = 0; sp->bos = 1; sp->eos = 2; }
        sp->add_bos = true;
        sp->add_space_prefix = true;
    } else {
        sp->add_bos = t->pre.force_add_bos;
    }
    static const struct { const char *key; size_t off; } keys[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(tokenizer_special, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(tokenizer_special, eos)},
        {"tokenizer.ggml.eot_token_id", offsetof(tokenizer_special, eot)},
        {"tokenizer.ggml.eom_token_id", offsetof(tokenizer_special, eom)},
        {"tokenizer.ggml.unknown_token_id", offsetof(tokenizer_special, unk)},
        {"tokenizer.ggml.padding_token_id", offsetof(tokenizer_special, pad)},
        {"tokenizer.ggml.seperator_token_id", offsetof(tokenizer_special, sep)},
        {"tokenizer.ggml.prefix_token_id", offsetof(tokenizer_special, fim_pre)},
        {"tokenizer.ggml.suffix_token_id", offsetof(tokenizer_special, fim_suf)},
        {"tokenizer.ggml.middle_token_id", offsetof(tokenizer_special, fim_mid)},
        {"tokenizer.ggml.fim_pre_token_id", offsetof(tokenizer_special, fim_pre)},
        {"tokenizer.ggml.fim_suf_token_id", offsetof(tokenizer_special, fim_suf)},
        {"tokenizer.ggml.fim_mid_token_id", offsetof(tokenizer_special, fim_mid)},
        {"tokenizer.ggml.fim_pad_token_id", offsetof(tokenizer_special, fim_pad)},
        {"tokenizer.ggml.fim_rep_token_id", offsetof(tokenizer_special, fim_rep)},
        {"tokenizer.ggml.fim_sep_token_id", offsetof(tokenizer_special, fim_sep)},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        TRY(tokenizer_read_special(f, keys[i].key, t->n_vocab, (int32_t *)((char *)sp + keys[i].off)));
    TRY(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &sp->add_bos, false));
    TRY(gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &sp->add_eos, false));
    TRY(gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &sp->add_space_prefix, false));
    if (sp->add_bos && sp->bos < 0)
        return coder_fail(CODER_ERR_FORMAT, "key tokenizer.ggml.add_bos_token is true but there is no tokenizer.ggml.bos_token_id");
    if (sp->add_eos && sp->eos < 0)
        return coder_fail(CODER_ERR_FORMAT, "key tokenizer.ggml.add_eos_token is true but there is no tokenizer.ggml.eos_token_id");
    tokenizer_find_specials(t);
    return CODER_OK;
}

coder_status tokenizer_load(const gguf_file *f, tokenizer **out) {
    if (!f || !out) return coder_fail(CODER_ERR_INVALID_ARG, "tokenizer_load: NULL argument");
    *out = NULL;
    gguf_str model;
    TRY(gguf_get_str(f, "tokenizer.ggml.model", &model, true));
    tokenizer *t = coder_calloc(1, sizeof *t);
    if (!t) return coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory");
    coder_status st;
    char esc[80];
    if (model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0) {
        t->model = TOKENIZER_BPE;
        gguf_str pre = {"default", 7};
        if ((st = gguf_get_str(f, "tokenizer.ggml.pre", &pre, false)) != CODER_OK) goto fail;
        if (!pretokenize_lookup(pre.ptr, pre.len, &t->pre)) {
            st = coder_fail(CODER_ERR_UNSUPPORTED, "key tokenizer.ggml.pre = '%s' is not a supported pre-tokenizer",
                            coder_escape(pre.ptr, pre.len, esc, sizeof esc));
            goto fail;
        }
        if (gguf_find_key(f, "tokenizer.ggml.pre") < 0)
            LOG_WARN("tokenizer: no tokenizer.ggml.pre; using the 'default' pre-tokenizer (results may differ from the model's)");
    } else if (model.len == 5 && memcmp(model.ptr, "llama", 5) == 0) {
        t->model = TOKENIZER_SPM;
    } else {
        st = coder_fail(CODER_ERR_UNSUPPORTED, "key tokenizer.ggml.model = '%s' is not supported (gpt2 and llama are)",
                        coder_escape(model.ptr, model.len, esc, sizeof esc));
        goto fail;
    }
    if ((st = tokenizer_load_arrays(t, f)) != CODER_OK) goto fail;
    if ((st = tokenizer_map_build(&t->by_text, t->text, t->text_off, t->n_vocab, NULL)) != CODER_OK) goto fail;
    if ((st = tokenizer_load_specials(t, f)) != CODER_OK) goto fail;
    uint32_t o = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t len = 0;
        t->piece_off[id] = o;
        if ((st = tokenizer_make_piece(t, id, t->piece + o, &len)) != CODER_OK) goto fail;
        o += (uint32_t)len;
    }
    t->piece_off[t->n_vocab] = o;
    if ((st = tokenizer_build_candidates(t)) != CODER_OK) goto fail;
    st = t->model == TOKENIZER_BPE ? tokenizer_bpe_load(t, f) : tokenizer_spm_load(t);
    if (st != CODER_OK) goto fail;
    *out = t;
    return CODER_OK;
fail:
    tokenizer_free(t);
    return st;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    coder_mfree(t->text);
    coder_mfree(t->text_off);
    coder_mfree(t->piece);
    coder_mfree(t->piece_off);
    coder_mfree(t->type);
    coder_mfree(t->score);
    coder_mfree(t->eog);
    coder_mfree(t->by_text.slots);
    coder_mfree(t->by_bytes.slots);
    coder_mfree(t->in_by_bytes);
    coder_mfree(t->merges);
    coder_mfree(t->cand);
    coder_mfree(t->cand_by_byte);
    coder_mfree(t);
}

/* ---- queries ---- */

int32_t tokenizer_n_vocab(const tokenizer *t) { return t ? t->n_vocab : 0; }
const tokenizer_special *tokenizer_specials(const tokenizer *t) { return t ? &t->sp : NULL; }
bool tokenizer_is_eog(const tokenizer *t, int32_t id) { return t && id >= 0 && id < t->n_vocab && t->eog[id]; }
bool tokenizer_is_control(const tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && t->type[id] == TOK_CONTROL;
}
int32_t tokenizer_find(const tokenizer *t, const char *text, size_t len) {
    if (!t || (!text && len)) return -1;
    return tokenizer_map_find(&t->by_text, t->text, t->text_off, text ? text : "", len);
}
