/* mkmodel.h - synthetic GGUF models of real shapes (`coder mkmodel`), for tests and benchmarks.
 *
 * A preset fixes the architecture and shapes (FORMATS.md 3.8); a file type picks the per-tensor
 * types with llama.cpp's recipe (FORMATS.md 2.9); the tokenizer is copied from a vocab GGUF.
 * Weights are random: MKMODEL_QUANTIZE draws N(0, 0.02) floats and quantizes them with the
 * reference quantizers (exact, slow for big presets); MKMODEL_RANDOM fills quantized blocks with
 * random bytes and sane scales directly (fast: the 7B preset in seconds, for speed work).
 * Output is deterministic for a seed, whatever the thread count. See docs/MKMODEL.md. */
#ifndef CODER_MKMODEL_H
#define CODER_MKMODEL_H

#include "core.h"

typedef enum { MKMODEL_F16, MKMODEL_Q8_0, MKMODEL_Q6_K, MKMODEL_Q4_K_M } mkmodel_ftype;
typedef enum { MKMODEL_MODE_RANDOM, MKMODEL_MODE_QUANTIZE } mkmodel_mode;

typedef struct mkmodel_preset {
    const char *name;        /* "qwen2.5-coder-7b"                                               */
    const char *arch;        /* general.architecture: "qwen2", "qwen3", "llama"                  */
    uint32_t n_layers, dim, n_heads, n_kv_heads, head_dim, ffn_dim;
    uint32_t vocab_size;     /* token_embd rows; 0 = the vocab file's token count (32000 without) */
    uint32_t n_ctx_train;
    float rope_base, rms_eps;
    bool tied;               /* no output.weight: token_embd doubles as the output matrix          */
} mkmodel_preset;

size_t mkmodel_preset_count(void);
const mkmodel_preset *mkmodel_preset_at(size_t i);
const mkmodel_preset *mkmodel_find_preset(const char *name);     /* NULL if unknown             */

/* "F16", "Q8_0", "Q6_K", "Q4_K_M" (case-insensitive); CODER_ERR_INVALID_ARG otherwise. */
coder_status mkmodel_parse_ftype(const char *s, mkmodel_ftype *out);
const char *mkmodel_ftype_name(mkmodel_ftype t);
uint32_t mkmodel_ftype_file_type(mkmodel_ftype t);               /* general.file_type value      */

/* llama.cpp's per-tensor type for a tensor `name` (e.g. "blk.3.ffn_down.weight") with n_dims and
 * row length ne0 in a model of n_layers layers; tied = the model has no output.weight. */
uint32_t mkmodel_tensor_type(mkmodel_ftype ft, const char *name, uint32_t n_dims, uint64_t ne0,
                             uint32_t n_layers, bool tied);

typedef struct mkmodel_opts {
    const char *preset;      /* preset name                                                       */
    mkmodel_ftype ftype;
    const char *vocab_path;  /* vocab GGUF whose tokenizer.* keys are copied; NULL: none           */
    const char *out_path;
    uint64_t seed;
    mkmodel_mode mode;
    int n_threads;           /* <= 0: all cores                                                   */
} mkmodel_opts;

typedef struct mkmodel_stats {
    size_t n_tensors;
    uint64_t file_bytes;
    uint32_t vocab_size;     /* token_embd rows                                                   */
    uint32_t n_pad_tokens;   /* "[PAD<id>]" tokens appended to reach vocab_size                    */
    size_t type_count[64];   /* tensors per ggml type id                                          */
    double seconds;
} mkmodel_stats;

/* Writes the model. On failure the partial file is removed. stats may be NULL. */
coder_status mkmodel_write(const mkmodel_opts *opts, mkmodel_stats *stats);

#endif
