/* tokenizer_bpe.c - byte-level BPE (tokenizer.ggml.model = "gpt2"), FORMATS.md 4.3.
 *
 * Works on raw bytes and token ids, never on the GPT-2 mapped text: at load each token's text is
 * mapped back to bytes (by_bytes) and each merge "A B" becomes an entry (id A, id B) -> (rank,
 * id of AB) of an open-addressing hash table. A word (from the pre-tokenizer) starts as one symbol
 * per byte; the adjacent pair with the lowest rank (leftmost on ties) is merged until no pair has
 * a merge. Short words keep the pair ranks in an array and rescan it (cheap, no hashing beyond
 * the two neighbours of each merge); long words use a binary heap with lazy invalidation so
 * pathological inputs (1M copies of one letter is one word) stay O(n log n). A per-call cache of
 * recent words skips the merging of repeated identifiers and keywords.
 *
 * Invalid UTF-8 needs no special case: every byte has a token, so decode(encode(x)) == x. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

#define BPE_SHORT_WORD 64         /* words up to this many bytes use the array merge loop     */
#define BPE_CACHE_SLOTS 8192      /* direct-mapped word cache, per encode call                */
#define BPE_CACHE_MAX_WORD 48     /* longer words are not cached                              */

typedef struct bpe_heap_entry {
    int32_t rank;
    uint32_t left, right;         /* symbol positions                                         */
    int32_t lid, rid;             /* their ids when pushed (stale if they changed)            */
} bpe_heap_entry;

typedef struct bpe_cache_slot {
    uint64_t hash;
    const char *word;             /* points into the caller's text (valid for the call)      */
    uint32_t len;
    uint32_t tok_off, n_tok;      /* into scratch->ctoks                                      */
} bpe_cache_slot;

struct bpe_scratch {
    int32_t *ids, *rank, *res;    /* (cap,) symbols and the merge of (ids[i], ids[i+1])      */
    uint32_t *nxt, *prv;          /* (cap,) linked list for long words                       */
    size_t cap;
    bpe_heap_entry *heap;
    size_t heap_n, heap_cap;
    bpe_cache_slot *cache;        /* NULL until the call is large enough to profit           */
    int32_t *ctoks;
    size_t ctoks_n, ctoks_cap;
    int32_t *word_out;            /* ids of the word being encoded                           */
    size_t word_n, word_cap;
};

bpe_scratch *tokenizer_bpe_scratch_new(void) { return coder_calloc(1, sizeof(bpe_scratch)); }

void tokenizer_bpe_scratch_free(bpe_scratch *s) {
    if (!s) return;
    coder_mfree(s->ids);
    coder_mfree(s->rank);
    coder_mfree(s->res);
    coder_mfree(s->nxt);
    coder_mfree(s->prv);
    coder_mfree(s->heap);
    coder_mfree(s->cache);
    coder_mfree(s->ctoks);
    coder_mfree(s->word_out);
    coder_mfree(s);
}

/* Grows *p (elements of size es) to at least need. */
static coder_status bpe_grow(void **p, size_t *cap, size_t need, size_t es) {
    if (need <= *cap) return CODER_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (ck_mul_size(c, 2, &c)) return coder_fail(CODER_ERR_NOMEM, "tokenizer: word of %zu bytes too large", need);
    }
    size_t bytes;
    if (ck_mul_size(c, es, &bytes)) return coder_fail(CODER_ERR_NOMEM, "tokenizer: word of %zu bytes too large", need);
    void *q = coder_realloc(*p, bytes);
    if (!q) return coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory for a %zu-byte word", need);
    *p = q;
    *cap = c;
    return CODER_OK;
}

static coder_status bpe_scratch_reserve(bpe_scratch *s, size_t n) {
    if (n <= s->cap) return CODER_OK;
    size_t c = s->cap, c0;
    c0 = c;
    TRY(bpe_grow((void **)&s->ids, &c, n, sizeof(int32_t)));
    int32_t **arrs[] = {&s->rank, &s->res};
    for (int i = 0; i < 2; i++) {
        size_t cc = c0;
        TRY(bpe_grow((void **)arrs[i], &cc, c, sizeof(int32_t)));
    }
    uint32_t **arrs2[] = {&s->nxt, &s->prv};
    for (int i = 0; i < 2; i++) {
        size_t cc = c0;
        TRY(bpe_grow((void **)arrs2[i], &cc, c, sizeof(uint32_t)));
    }
    s->cap = c;
    return CODER_OK;
}

/* ---- merge table ---- */

static inline size_t bpe_merge_slot(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 29) & mask;
}

/* Rank of merging (l, r) (INT32_MAX if none); *res = the merged id. */
static inline int32_t bpe_merge_find(const tokenizer *t, int32_t l, int32_t r, int32_t *res) {
    *res = -1;
    if ((l | r) < 0) return INT32_MAX; /* a byte without a token never merges */
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    for (size_t i = bpe_merge_slot(key, t->merges_mask);; i = (i + 1) & t->merges_mask) {
        const tok_merge *m = &t->merges[i];
        if (m->key == key) { *res = m->result; return m->rank; }
        if (m->key == UINT64_MAX) return INT32_MAX;
    }
}

coder_status tokenizer_bpe_load(tokenizer *t, const gguf_file *f) {
    int32_t n = t->n_vocab;
    /* by_bytes: tokens whose text is byte-level (all characters in the GPT-2 table) keyed by the
     * bytes they stand for; CONTROL/USER_DEFINED texts only when plain printable ASCII, whose
     * byte-level reading is the text itself. */
    t->in_by_bytes = coder_calloc((size_t)n, 1);
    if (!t->in_by_bytes) return coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory");
    for (int32_t id = 0; id < n; id++) {
        const unsigned char *s = (const unsigned char *)t->text + t->text_off[id];
        size_t len = t->text_off[id + 1] - t->text_off[id];
        bool ok = len > 0;
        uint8_t ty = t->type[id];
        if (ty == TOK_CONTROL || ty == TOK_USER_DEFINED || ty == TOK_UNKNOWN) {
            for (size_t i = 0; i < len && ok; i++) ok = s[i] >= 0x21 && s[i] <= 0x7E;
        } else {
            for (size_t i = 0; i < len && ok;) {
                int cl;
                uint32_t cp = unicode_decode(s + i, len - i, &cl);
                ok = cp < UNICODE_INVALID_BASE && unicode_cpt_to_byte(cp) >= 0;
                i += (size_t)cl;
            }
        }
        t->in_by_bytes[id] = ok;
    }
    TRY(tokenizer_map_build(&t->by_bytes, t->piece, t->piece_off, n, t->in_by_bytes));
    int n_missing = 0;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = tokenizer_map_find(&t->by_bytes, t->piece, t->piece_off, &c, 1);
        if (t->byte_id[b] < 0) n_missing++;
    }
    /* Some vocabularies (deepseek-coder) lack the bytes that never occur in valid UTF-8
     * (0xC0, 0xC1, 0xF5..0xFF); such a byte in the input encodes as UNK (or fails without one). */
    if (n_missing) LOG_DEBUG("tokenizer: %d of 256 byte tokens are missing", n_missing);

    /* merges: "A B", split at the first space at index >= 1; rank = index */
    const gguf_str *mg;
    uint64_t nm;
    TRY(gguf_get_str_array(f, "tokenizer.ggml.merges", &mg, &nm, true));
    if (nm > INT32_MAX) return coder_fail(CODER_ERR_LIMIT, "key tokenizer.ggml.merges has %llu entries", (unsigned long long)nm);
    size_t cap = 16;
    while (cap < nm * 2) cap <<= 1;
    t->merges = coder_malloc(cap * sizeof *t->merges);
    if (!t->merges) return coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory for %llu merges", (unsigned long long)nm);
    memset(t->merges, 0xFF, cap * sizeof *t->merges);
    t->merges_mask = cap - 1;
    t->n_merges = (size_t)nm;
    char *buf = coder_malloc(2 * 65536 + 2);
    if (!buf) return coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory");
    coder_status st = CODER_OK;
    char esc[96];
    for (uint64_t i = 0; i < nm; i++) {
        const char *m = mg[i].ptr;
        size_t len = (size_t)mg[i].len;
        const char *sp = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
        if (!sp || len > 2 * 65536) {
            st = coder_fail(CODER_ERR_FORMAT, "tokenizer.ggml.merges[%llu] = '%s' is not \"left right\"",
                            (unsigned long long)i, coder_escape(m, len, esc, sizeof esc));
            break;
        }
        size_t ll = (size_t)(sp - m), rl = len - ll - 1;
        int32_t l = tokenizer_find(t, m, ll), r = tokenizer_find(t, sp + 1, rl);
        memcpy(buf, m, ll);
        memcpy(buf + ll, sp + 1, rl);
        int32_t res = tokenizer_find(t, buf, ll + rl);
        if (l < 0 || r < 0 || res < 0) {
            st = coder_fail(CODER_ERR_FORMAT, "tokenizer.ggml.merges[%llu] = '%s': %s is not a token", (unsigned long long)i,
                            coder_escape(m, len, esc, sizeof esc), l < 0 ? "the left part" : r < 0 ? "the right part" : "the merged text");
            break;
        }
        uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
        for (size_t s = bpe_merge_slot(key, t->merges_mask);; s = (s + 1) & t->merges_mask) {
            tok_merge *e = &t->merges[s];
            if (e->key == key) break; /* a repeated pair keeps its first (lowest) rank */
            if (e->key == UINT64_MAX) {
                e->key = key;
                e->rank = (int32_t)i;
                e->result = res;
                break;
            }
        }
    }
    coder_mfree(buf);
    return st;
}

/* ---- encoding ---- */

static inline void bpe_heap_push(bpe_scratch *s, bpe_heap_entry e) {
    /* capacity reserved by the caller: at most 2 pushes per merge + n initial */
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        bpe_heap_entry *q = &s->heap[p];
        if (q->rank < e.rank || (q->rank == e.rank && q->left < e.left)) break;
        s->heap[i] = *q;
        i = p;
    }
    s->heap[i] = e;
}

static inline bpe_heap_entry bpe_heap_pop(bpe_scratch *s) {
    bpe_heap_entry top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && (s->heap[c + 1].rank < s->heap[c].rank ||
                          (s->heap[c + 1].rank == s->heap[c].rank && s->heap[c + 1].left < s->heap[c].left)))
            c++;
        if (last.rank < s->heap[c].rank || (last.rank == s->heap[c].rank && last.left < s->heap[c].left)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

/* Merges the n byte symbols in s->ids; the result ids are left in s->word_out. */
static coder_status bpe_merge_word(const tokenizer *t, bpe_scratch *s, size_t n) {
    int32_t *ids = s->ids;
    if (n <= BPE_SHORT_WORD) {
        int32_t *rank = s->rank, *res = s->res;
        for (size_t i = 0; i + 1 < n; i++) rank[i] = bpe_merge_find(t, ids[i], ids[i + 1], &res[i]);
        while (n > 1) {
            size_t best = 0;
            for (size_t i = 1; i + 1 < n; i++)
                if (rank[i] < rank[best]) best = i;
            if (rank[best] == INT32_MAX) break;
            ids[best] = res[best];
            /* drop symbol best+1 and the pair rank that began there */
            memmove(ids + best + 1, ids + best + 2, (n - best - 2) * sizeof *ids);
            memmove(rank + best + 1, rank + best + 2, (n > best + 2 ? n - best - 2 : 0) * sizeof *rank);
            memmove(res + best + 1, res + best + 2, (n > best + 2 ? n - best - 2 : 0) * sizeof *res);
            n--;
            if (best > 0) rank[best - 1] = bpe_merge_find(t, ids[best - 1], ids[best], &res[best - 1]);
            if (best + 1 < n) rank[best] = bpe_merge_find(t, ids[best], ids[best + 1], &res[best]);
        }
        TRY(bpe_grow((void **)&s->word_out, &s->word_cap, n, sizeof(int32_t)));
        memcpy(s->word_out, ids, n * sizeof *ids);
        s->word_n = n;
        return CODER_OK;
    }
    /* long word: linked list + heap. Heap holds at most n - 1 + 2 * (n - 1) entries. */
    size_t hcap = s->heap_cap;
    TRY(bpe_grow((void **)&s->heap, &hcap, 3 * n, sizeof(bpe_heap_entry)));
    s->heap_cap = hcap;
    s->heap_n = 0;
    uint32_t *nxt = s->nxt, *prv = s->prv;
    const uint32_t NONE = UINT32_MAX;
    for (size_t i = 0; i < n; i++) {
        nxt[i] = i + 1 < n ? (uint32_t)(i + 1) : NONE;
        prv[i] = i > 0 ? (uint32_t)(i - 1) : NONE;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r, rk = bpe_merge_find(t, ids[i], ids[i + 1], &r);
        if (rk != INT32_MAX) bpe_heap_push(s, (bpe_heap_entry){rk, (uint32_t)i, (uint32_t)(i + 1), ids[i], ids[i + 1]});
    }
    while (s->heap_n) {
        bpe_heap_entry e = bpe_heap_pop(s);
        /* stale: the right symbol was absorbed, or either side changed since the push */
        if (nxt[e.left] != e.right || ids[e.left] != e.lid || ids[e.right] != e.rid) continue;
        int32_t r = -1;
        bpe_merge_find(t, e.lid, e.rid, &r);
        ids[e.left] = r;
        ids[e.right] = -1;
        uint32_t after = nxt[e.right];
        nxt[e.left] = after;
        nxt[e.right] = NONE;
        if (after != NONE) prv[after] = e.left;
        int32_t r2 = -1, rk;
        if (prv[e.left] != NONE) {
            uint32_t p = prv[e.left];
            rk = bpe_merge_find(t, ids[p], r, &r2);
            if (rk != INT32_MAX) bpe_heap_push(s, (bpe_heap_entry){rk, p, e.left, ids[p], r});
        }
        if (after != NONE) {
            rk = bpe_merge_find(t, r, ids[after], &r2);
            if (rk != INT32_MAX) bpe_heap_push(s, (bpe_heap_entry){rk, e.left, after, r, ids[after]});
        }
    }
    size_t m = 0;
    TRY(bpe_grow((void **)&s->word_out, &s->word_cap, n, sizeof(int32_t)));
    for (uint32_t i = 0; i != NONE; i = nxt[i]) s->word_out[m++] = ids[i];
    s->word_n = m;
    return CODER_OK;
}

typedef struct bpe_call {
    const tokenizer *t;
    bpe_scratch *s;
    const char *text;
    tok_out *out;
} bpe_call;

/* Pushes n ids; -1 (a byte the vocabulary lacks) becomes UNK. */
static coder_status bpe_emit(const bpe_call *c, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 && (id = c->t->sp.unk) < 0)
            return coder_fail(CODER_ERR_UNSUPPORTED, "tokenize: the input has a byte with no token and the vocabulary has no UNK");
        tok_push(c->out, id);
    }
    return CODER_OK;
}

static coder_status bpe_word(void *user, size_t a, size_t b) {
    bpe_call *c = user;
    const tokenizer *t = c->t;
    bpe_scratch *s = c->s;
    const unsigned char *w = (const unsigned char *)c->text + a;
    size_t n = b - a;
    if (n == 1) return bpe_emit(c, &t->byte_id[w[0]], 1);
    if (t->pre.ignore_merges) {
        int32_t id = tokenizer_map_find(&t->by_bytes, t->piece, t->piece_off, (const char *)w, n);
        if (id >= 0) {
            tok_push(c->out, id);
            return CODER_OK;
        }
    }
    bpe_cache_slot *slot = NULL;
    uint64_t h = 0;
    if (s->cache && n <= BPE_CACHE_MAX_WORD) {
        h = tokenizer_hash((const char *)w, n);
        slot = &s->cache[h & (BPE_CACHE_SLOTS - 1)];
        if (slot->hash == h && slot->len == n && memcmp(slot->word, w, n) == 0) {
            return bpe_emit(c, s->ctoks + slot->tok_off, slot->n_tok);
        }
    }
    TRY(bpe_scratch_reserve(s, n));
    for (size_t i = 0; i < n; i++) s->ids[i] = t->byte_id[w[i]];
    TRY(bpe_merge_word(t, s, n));
    TRY(bpe_emit(c, s->word_out, s->word_n));
    if (slot) {
        /* the token arena is append-only for the call; restart it when it gets large */
        if (s->ctoks_n + s->word_n > (1u << 20)) {
            memset(s->cache, 0, BPE_CACHE_SLOTS * sizeof *s->cache);
            s->ctoks_n = 0;
        }
        TRY(bpe_grow((void **)&s->ctoks, &s->ctoks_cap, s->ctoks_n + s->word_n, sizeof(int32_t)));
        memcpy(s->ctoks + s->ctoks_n, s->word_out, s->word_n * sizeof(int32_t));
        slot->hash = h;
        slot->word = (const char *)w;
        slot->len = (uint32_t)n;
        slot->tok_off = (uint32_t)s->ctoks_n;
        slot->n_tok = (uint32_t)s->word_n;
        s->ctoks_n += s->word_n;
    }
    return CODER_OK;
}

coder_status tokenizer_bpe_encode(const tokenizer *t, bpe_scratch *s, const char *text, size_t a, size_t b,
                                  tok_out *out) {
    if (!s->cache && b - a >= 4096) { /* worth a cache: ~0.2 MB, zeroed once per call */
        s->cache = coder_calloc(BPE_CACHE_SLOTS, sizeof *s->cache);
        if (!s->cache) return coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory for the word cache");
    }
    bpe_call c = {t, s, text, out};
    return pretokenize_split(t->pre.type, text, a, b, bpe_word, &c);
}
