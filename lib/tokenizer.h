/* tokenizer.h - tokenizers built from GGUF metadata (byte-level BPE with the pre-tokenizers named by
 * tokenizer.ggml.pre, and SentencePiece with byte fallback). Immutable after load and reentrant:
 * any number of threads may encode/decode with one tokenizer. */
#ifndef CODER_TOKENIZER_H
#define CODER_TOKENIZER_H

#include "gguf.h"

typedef struct tokenizer tokenizer;

/* Special ids looked up from metadata (and by text where metadata lacks them); -1 = none. */
typedef struct tokenizer_special {
    int32_t bos, eos, eot, eom, unk, pad, sep;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_space_prefix;
} tokenizer_special;

/* Builds the tokenizer from f's tokenizer.* keys. Errors (group E of BAD_INPUTS.md):
 * CODER_ERR_FORMAT naming the key, CODER_ERR_UNSUPPORTED for an unknown model/pre. */
coder_status tokenizer_load(const gguf_file *f, tokenizer **out);
void tokenizer_free(tokenizer *t);

int32_t tokenizer_n_vocab(const tokenizer *t);
const tokenizer_special *tokenizer_specials(const tokenizer *t);
/* True for end-of-generation tokens (EOS, EOT, <|im_end|>, <|endoftext|>, FIM pad/rep/sep, ...). */
bool tokenizer_is_eog(const tokenizer *t, int32_t id);
/* True for CONTROL tokens (not rendered by decode without CODER_DETOKENIZE_SPECIAL). */
bool tokenizer_is_control(const tokenizer *t, int32_t id);
/* Id of the token whose text is exactly text[0..len), or -1. */
int32_t tokenizer_find(const tokenizer *t, const char *text, size_t len);

/* Encodes len bytes (flags: CODER_TOKENIZE_ADD_SPECIAL | CODER_TOKENIZE_PARSE_SPECIAL). Writes at
 * most cap ids, *n = full count; CODER_ERR_BUFFER_TOO_SMALL if it exceeds cap. */
coder_status tokenizer_encode(const tokenizer *t, const char *text, size_t len, unsigned flags,
                              int32_t *out, size_t cap, size_t *n);
/* The bytes of one token (flags: CODER_DETOKENIZE_SPECIAL). *len = full length; nothing written
 * past cap; CODER_ERR_BUFFER_TOO_SMALL if it does not fit; CODER_ERR_INVALID_ARG for a bad id. */
coder_status tokenizer_piece(const tokenizer *t, int32_t id, unsigned flags, char *buf, size_t cap,
                             size_t *len);

/* Concatenated pieces of n ids (flags: CODER_DETOKENIZE_SPECIAL). SentencePiece with
 * add_space_prefix drops one leading space of the first rendered piece (the encoder's dummy
 * prefix). *len = full length; at most cap bytes written; CODER_ERR_BUFFER_TOO_SMALL if it does
 * not fit; CODER_ERR_INVALID_ARG for an id outside the vocabulary. */
coder_status tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char *buf,
                              size_t cap, size_t *len);

/* Streaming detokenizer: feeds token bytes, emits only complete UTF-8 characters (an incomplete
 * sequence is held back; bytes that can never form a valid character are emitted as U+FFFD). */
typedef struct utf8_stream {
    unsigned char pending[8];
    size_t n_pending;
} utf8_stream;
/* Appends bytes; writes what is now complete into out (capacity >= len + 8 + 3*len is always
 * enough) and returns the number of bytes written. */
size_t utf8_stream_push(utf8_stream *s, const char *bytes, size_t len, char *out);
/* Flushes the held-back tail (incomplete sequence rendered as U+FFFD); returns bytes written. */
size_t utf8_stream_flush(utf8_stream *s, char *out);

#endif
