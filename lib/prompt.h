/* prompt.h - chat formats and fill-in-the-middle prompts (FORMATS.md section 5).
 *
 * Templates from files are never executed: the format is recognised by looking for distinctive
 * substrings in tokenizer.chat_template, then rendered by the library's own code. */
#ifndef CODER_PROMPT_H
#define CODER_PROMPT_H

#include "model.h"

/* Longest template scanned for recognition; longer ones are scanned up to this many bytes (the
 * markers are at the start of every real template). */
#define PROMPT_MAX_TEMPLATE_SCAN (1u << 20)

/* The coder_chat_format a template renders, or CODER_CHAT_AUTO (0) when none is recognised. Pure
 * substring search over at most PROMPT_MAX_TEMPLATE_SCAN bytes: linear time, no allocation. */
int32_t prompt_detect_template(const char *tmpl, size_t len);

/* The model's format: from tokenizer.chat_template when present and recognised, else from the
 * vocabulary (<|im_start|> -> CHATML, <|start_header_id|> -> LLAMA3), else CODER_CHAT_AUTO. */
int32_t prompt_detect_model(const gguf_file *f, const tokenizer *tok);

/* Renders messages as text (see coder_chat_apply). buf may be NULL when cap is 0. The output is
 * always NUL-terminated when cap > 0; *needed includes the NUL. */
coder_status prompt_chat_render(const coder_model *m, int32_t format, const coder_chat_message *msgs,
                                size_t n_msgs, unsigned flags, char *buf, size_t cap, size_t *needed);

/* Renders messages as token ids, the injection-safe path (F5): the scaffolding (role headers,
 * turn ends, BOS) is tokenized with PARSE_SPECIAL, message contents without it, so text like
 * "<|im_start|>system" inside a message becomes ordinary tokens. Proposed public form:
 *   coder_status coder_chat_tokens(const coder_model *, coder_chat_format, const coder_chat_message *,
 *                                  size_t n, unsigned flags, int32_t *tokens, size_t cap, size_t *n_tokens);
 * Writes at most cap ids; *n_tokens = full count (CODER_ERR_BUFFER_TOO_SMALL when > cap). */
coder_status prompt_chat_tokens(const coder_model *m, int32_t format, const coder_chat_message *msgs,
                                size_t n_msgs, unsigned flags, int32_t *tokens, size_t cap,
                                size_t *n_tokens);

/* Builds a FIM prompt as ids (see coder_fim_tokens). */
/* Fill-in-the-middle families, recognised from the vocabulary's token texts (FORMATS.md 5.3, 5.6). */
typedef enum prompt_fim_family {
    PROMPT_FIM_NONE = 0,
    PROMPT_FIM_QWEN = 1,        /* <|fim_prefix|> <|fim_suffix|> <|fim_middle|> (+ <|repo_name|>, <|file_sep|>) */
    PROMPT_FIM_STARCODER = 2,   /* <fim_prefix> <fim_suffix> <fim_middle>                     */
    PROMPT_FIM_DEEPSEEK = 3,    /* BOS <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix <｜fim▁end｜>   */
    PROMPT_FIM_CODELLAMA = 4    /* BOS ▁<PRE> prefix ▁<SUF> suffix(no dummy space) ▁<MID>       */
} prompt_fim_family;

typedef struct prompt_fim_ids {
    prompt_fim_family family;
    int32_t pre, suf, mid;      /* -1 when absent                                             */
    int32_t repo, file_sep;     /* Qwen repository-level tokens, -1 when absent                */
    int32_t eot;                /* CodeLlama ▁<EOT>, StarCoder/Qwen <|fim_pad|>; -1 when absent */
} prompt_fim_ids;

/* Looks the FIM tokens up in the vocabulary (by text; metadata ids take precedence). */
prompt_fim_ids prompt_fim_lookup(const tokenizer *tok);

/* The stop set for a chat format (format >= 1) or for FIM (format = -1): every EOG token of the
 * vocabulary plus the format's end-of-turn token, or for FIM the FIM markers (a model that emits
 * one has left the middle). Writes at most cap ids; returns the full count. */
size_t prompt_stop_tokens(const coder_model *m, int32_t format, int32_t *out, size_t cap);

coder_status prompt_fim_tokens(const coder_model *m, const char *prefix, const char *suffix,
                               const char *repo_name, const coder_fim_file *files, size_t n_files,
                               const char *target_path, int32_t *tokens, size_t cap, size_t *n_tokens);

/* --- the segment builder shared by the chat and FIM renderers ---
 * A prompt is a sequence of control tokens (by text) and raw text. Text mode concatenates
 * everything. Token mode encodes each maximal run of raw text WITHOUT parse_special (so caller
 * text can never produce a control token) and looks control tokens up by text: this equals
 * tokenizing the text form with PARSE_SPECIAL whenever the caller text contains no control-token
 * text, and is safe when it does. */
typedef struct prompt_build {
    const tokenizer *tok;
    bool tokens_mode;
    char *text;                   /* text mode: output buffer (cap bytes)                       */
    size_t cap, len;              /* len = full length so far (may exceed cap)                  */
    int32_t *ids;                 /* token mode: output (cap ids), len = full count             */
    char *run;                    /* token mode: pending raw text                              */
    size_t run_len, run_cap;
    coder_status st;              /* first failure                                              */
} prompt_build;

void prompt_build_text(prompt_build *b, const char *s, size_t n);
void prompt_build_str(prompt_build *b, const char *s);
/* A control token given by its text; token mode fails with CODER_ERR_UNSUPPORTED when the
 * vocabulary lacks it. */
void prompt_build_special(prompt_build *b, const char *text);
/* A token by id (token mode only; text mode appends nothing). */
void prompt_build_id(prompt_build *b, int32_t id);
/* Flushes the pending text run (token mode). */
void prompt_build_flush(prompt_build *b);

#endif
