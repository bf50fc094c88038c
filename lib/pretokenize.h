/* pretokenize.h - the pre-tokenizers of byte-level BPE vocabularies (tokenizer.ggml.pre), FORMATS.md
 * 4.4. Each splits a byte range of text into "words" that BPE then encodes independently. The
 * regexes are implemented by hand on code points (lib/unicode.h classes): the hot qwen2/llama3
 * pattern as one scanner, the multi-pass ones as chains of small matchers with the regex-split
 * semantics (matches and the gaps between them are both kept, each fed to the next pass). */
#ifndef CODER_PRETOKENIZE_H
#define CODER_PRETOKENIZE_H

#include "core.h"

typedef enum pretokenize_type {
    PRETOK_DEFAULT = 0,     /* pre missing or "default"                                         */
    PRETOK_QWEN2,           /* one regex, every digit alone                                     */
    PRETOK_LLAMA3,          /* qwen2 with digits grouped 1-3 (llama-bpe)                        */
    PRETOK_GPT2,
    PRETOK_STARCODER,       /* \p{N}, then gpt-2                                                */
    PRETOK_DEEPSEEK_CODER,
    PRETOK_DEEPSEEK_LLM
} pretokenize_type;

typedef struct pretokenize_info {
    pretokenize_type type;
    bool ignore_merges;     /* a word that is itself a token is emitted whole (llama3)          */
    bool force_add_bos;     /* add_bos defaults to true (llama3) unless the metadata says       */
} pretokenize_info;

/* Maps a tokenizer.ggml.pre value (len bytes) to its pre-tokenizer; false if unknown. */
bool pretokenize_lookup(const char *name, size_t len, pretokenize_info *out);

/* Receives one word text[start..end) (never empty). A non-OK return stops the split. */
typedef coder_status (*pretokenize_sink)(void *user, size_t start, size_t end);

/* Splits text[start..end) into words in order; their concatenation is exactly the input range. */
coder_status pretokenize_split(pretokenize_type type, const char *text, size_t start, size_t end,
                               pretokenize_sink sink, void *user);

#endif
