/* tokenizer_spm.c - SentencePiece BPE-by-score (tokenizer.ggml.model = "llama"), FORMATS.md 4.5.
 *
 * A raw fragment gets the dummy-prefix space (when asked), every ' ' becomes U+2581, and the
 * symbols start as one UTF-8 character each (an invalid byte is a character of its own). The
 * adjacent pair whose concatenation is a vocabulary piece with the highest score (leftmost on
 * ties) is merged, via a max-heap with lazy invalidation (O(n log n)). Every final symbol is a
 * piece, except single characters the vocabulary lacks: those become byte tokens <0xNN> per
 * UTF-8 byte (UNK when even the byte token is missing). */
#include <stdio.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

typedef struct spm_sym {
    uint32_t start, n;            /* bytes of the escaped text; n = 0 once merged away       */
    int32_t prev, next;
} spm_sym;

typedef struct spm_bigram {
    float score;
    uint32_t left, right, size;   /* size: bytes of the pair when pushed (stale check)       */
} spm_bigram;

/* max-heap order: higher score first, then smaller left */
static inline bool spm_before(const spm_bigram *a, const spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct spm_work {
    const tokenizer *t;
    const char *text;             /* escaped text                                            */
    spm_sym *sym;
    spm_bigram *heap;
    size_t heap_n;
} spm_work;

static void spm_push(spm_work *w, spm_bigram e) {
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!spm_before(&e, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = e;
}

static spm_bigram spm_pop(spm_work *w) {
    spm_bigram top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && spm_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!spm_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static void spm_try_bigram(spm_work *w, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const spm_sym *l = &w->sym[left], *r = &w->sym[right];
    uint32_t size = l->n + r->n;
    int32_t id = tokenizer_find(w->t, w->text + l->start, size);
    if (id < 0) return;
    spm_push(w, (spm_bigram){w->t->score[id], (uint32_t)left, (uint32_t)right, size});
}

coder_status tokenizer_spm_load(tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        char name[8], c = (char)b;
        snprintf(name, sizeof name, "<0x%02X>", b);
        int32_t id = tokenizer_find(t, name, 6);
        if (id < 0) id = tokenizer_find(t, &c, 1);
        t->byte_id[b] = id;
    }
    return CODER_OK;
}

coder_status tokenizer_spm_encode(const tokenizer *t, const char *text, size_t len, bool space_prefix,
                                  tok_out *out) {
    /* escaped length: each space becomes 3 bytes */
    size_t n_sp = space_prefix, elen;
    for (size_t i = 0; i < len; i++) n_sp += text[i] == ' ';
    if (ck_add_size(len + space_prefix, 2 * n_sp, &elen) || elen > UINT32_MAX)
        return coder_fail(CODER_ERR_LIMIT, "tokenizer: fragment of %zu bytes is too long", len);
    if (elen == 0) return CODER_OK;
    char *e = coder_malloc(elen);
    spm_sym *sym = coder_malloc(elen * sizeof *sym);
    spm_bigram *heap = coder_malloc(3 * elen * sizeof *heap);
    coder_status st = CODER_OK;
    if (!e || !sym || !heap) {
        st = coder_fail(CODER_ERR_NOMEM, "tokenizer: no memory for a %zu-byte fragment", len);
        goto done;
    }
    size_t o = 0;
    if (space_prefix) { memcpy(e, "\xe2\x96\x81", 3); o = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(e + o, "\xe2\x96\x81", 3); o += 3; }
        else e[o++] = text[i];
    }
    int32_t n = 0;
    for (size_t i = 0; i < elen;) {
        int cl;
        unicode_decode((const unsigned char *)e + i, elen - i, &cl);
        sym[n] = (spm_sym){(uint32_t)i, (uint32_t)cl, n - 1, -1};
        if (n > 0) sym[n - 1].next = n;
        n++;
        i += (size_t)cl;
    }
    spm_work w = {t, e, sym, heap, 0};
    for (int32_t i = 1; i < n; i++) spm_try_bigram(&w, i - 1, i);
    while (w.heap_n) {
        spm_bigram b = spm_pop(&w);
        spm_sym *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = (int32_t)b.left;
        spm_try_bigram(&w, l->prev, (int32_t)b.left);
        spm_try_bigram(&w, (int32_t)b.left, l->next);
    }
    for (int32_t i = 0; i >= 0 && i < n; i = sym[i].next) {
        int32_t id = tokenizer_find(t, e + sym[i].start, sym[i].n);
        if (id >= 0) { tok_push(out, id); continue; }
        for (uint32_t k = 0; k < sym[i].n; k++) {
            int32_t bid = t->byte_id[(unsigned char)e[sym[i].start + k]];
            if (bid < 0) bid = t->sp.unk;
            if (bid < 0) {
                st = coder_fail(CODER_ERR_UNSUPPORTED, "tokenizer: byte 0x%02X has no token and the vocabulary has no UNK",
                                (unsigned char)e[sym[i].start + k]);
                goto done;
            }
            tok_push(out, bid);
        }
    }
done:
    coder_mfree(e);
    coder_mfree(sym);
    coder_mfree(heap);
    return st;
}
