/* tokenizer_impl.h - the tokenizer object shared by tokenizer.c (load, specials, dispatch),
 * tokenizer_bpe.c and tokenizer_spm.c. Internal to those files. */
#ifndef CODER_TOKENIZER_IMPL_H
#define CODER_TOKENIZER_IMPL_H

#include "pretokenize.h"
#include "tokenizer.h"

/* tokenizer.ggml.token_type values */
enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5, TOK_BYTE = 6 };

typedef enum tokenizer_model { TOKENIZER_BPE = 0, TOKENIZER_SPM = 1 } tokenizer_model;

/* Open-addressing map from a byte string to a token id: slots hold id + 1 (0 = empty); the
 * string of id is (arena + off[id], off[id+1] - off[id]). */
typedef struct tok_strmap {
    uint32_t *slots;
    size_t mask;
} tok_strmap;

/* One merge: (left id, right id) -> rank (index in tokenizer.ggml.merges) and result id. */
typedef struct tok_merge {
    uint64_t key;                 /* left << 32 | right; UINT64_MAX = empty slot              */
    int32_t rank, result;
} tok_merge;

struct tokenizer {
    tokenizer_model model;
    pretokenize_info pre;         /* BPE only                                                 */
    int32_t n_vocab;
    tokenizer_special sp;

    char *text;                   /* raw token texts, as in the file, concatenated            */
    uint32_t *text_off;           /* (n_vocab + 1,)                                           */
    char *piece;                  /* decoded bytes each token renders to (see piece rules)     */
    uint32_t *piece_off;          /* (n_vocab + 1,)                                           */
    uint8_t *type;                /* (n_vocab,) TOK_*                                         */
    float *score;                 /* (n_vocab,) SPM merge priority (0 when absent)            */
    uint8_t *eog;                 /* (n_vocab,) 1 for end-of-generation ids                   */

    tok_strmap by_text;           /* raw text -> id (llama.cpp's token_to_id; last id wins)  */
    tok_strmap by_bytes;          /* BPE: decoded bytes -> id, keyed on the piece arena       */
    uint8_t *in_by_bytes;         /* (n_vocab,) BPE: 1 if id is keyed in by_bytes             */
    int32_t byte_id[256];         /* BPE: token of each single byte; SPM: <0xNN> (-1 none)    */

    tok_merge *merges;            /* BPE: hash table, mask + 1 slots                          */
    size_t merges_mask;
    size_t n_merges;

    /* Special-token matching (FORMATS.md 4.2): candidates longest first, bucketed by first byte. */
    int32_t *cand;                /* ids of CONTROL/USER_DEFINED/UNKNOWN tokens, by priority  */
    size_t n_cand;
    uint32_t cand_bucket[257];    /* candidates with first byte b: cand_by_byte[bucket[b]..[b+1]) */
    uint32_t *cand_by_byte;       /* indices into cand, ascending (= priority order)          */
};

/* Looks up bytes in a map whose keys live in (arena, off). -1 if absent. */
int32_t tokenizer_map_find(const tok_strmap *m, const char *arena, const uint32_t *off, const char *s,
                           size_t len);
uint64_t tokenizer_hash(const char *s, size_t len);
/* Builds a map over the ids with keep[id] (keep NULL: all ids); a later id replaces an earlier
 * equal key (llama.cpp's token_to_id behaves the same). */
coder_status tokenizer_map_build(tok_strmap *m, const char *arena, const uint32_t *off, int32_t n,
                                 const uint8_t *keep);

/* Collects output ids: writes the first cap, counts all. */
typedef struct tok_out {
    int32_t *ids;
    size_t cap, n;
} tok_out;
static inline void tok_push(tok_out *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* Per-call scratch memory of the BPE encoder (reused across the words of one call). */
typedef struct bpe_scratch bpe_scratch;
bpe_scratch *tokenizer_bpe_scratch_new(void);
void tokenizer_bpe_scratch_free(bpe_scratch *s);

/* BPE: builds by_bytes and the merge table (after texts, types and byte pieces are loaded). */
coder_status tokenizer_bpe_load(tokenizer *t, const gguf_file *f);
/* Encodes one raw fragment text[a..b) (pre-tokenize + merges) into out. */
coder_status tokenizer_bpe_encode(const tokenizer *t, bpe_scratch *s, const char *text, size_t a, size_t b,
                                  tok_out *out);

/* SPM: checks the byte tokens. */
coder_status tokenizer_spm_load(tokenizer *t);
/* Encodes one raw fragment; space_prefix prepends the dummy space. */
coder_status tokenizer_spm_encode(const tokenizer *t, const char *text, size_t len, bool space_prefix,
                                  tok_out *out);

#endif
