/*
 * coderinfer.h - the public interface of libcoderinfer, written as its manual.
 *
 * libcoderinfer runs local coding models (Qwen2.5-Coder, Qwen3, DeepSeek-Coder, CodeLlama, ...)
 * stored as GGUF files, in-process, on the CPU or an NVIDIA GPU.
 *
 * The shape of a program:
 *
 *     coder_model_params mp;  coder_model_params_init(&mp);
 *     coder_model *model;
 *     if (coder_model_load("model.gguf", &mp, &model) != CODER_OK)
 *         fprintf(stderr, "%s\n", coder_last_error());
 *     coder_session_params sp; coder_session_params_init(&sp);
 *     coder_session *s;  coder_session_new(model, &sp, &s);
 *     coder_gen_params gp;   coder_gen_params_init(&gp);
 *     coder_result r;        coder_result_init(&r);
 *     coder_generate(s, "def fib(n):", 11, &gp, &r);   // r.text holds the completion
 *     coder_result_clear(&r); coder_session_free(s); coder_model_free(model);
 *
 * Conventions that hold for every function below:
 *   - Fallible functions return coder_status. CODER_OK is 0, every error is negative. On error,
 *     coder_last_error() returns a message naming the key, tensor, byte offset or argument at fault,
 *     and every output handle is left NULL (or unchanged, for an existing object).
 *   - The library never calls exit() or abort(), never writes to stdout or stderr, and logs only
 *     through the callback installed with coder_log_set() (none by default: quiet).
 *   - Objects are opaque. *_free() functions accept NULL.
 *   - Params structs begin with a `size` field set by their *_init() function. Always call the init
 *     function first: it lets newer libraries accept structs from callers built against older headers.
 *   - Caller-buffer functions take (buf, cap, size_t *needed). When cap is too small they write
 *     nothing past cap, set *needed to the size required and return CODER_ERR_BUFFER_TOO_SMALL.
 *   - All text is UTF-8 with an explicit length where binary safety matters.
 *
 * Threading:
 *   - A coder_model is immutable once loaded; any number of threads and sessions may share it.
 *     Tokenize, detokenize and prompt formatting on a model are thread-safe.
 *   - A coder_session is used by one thread at a time. A second thread entering the same session
 *     concurrently gets CODER_ERR_BUSY. Different sessions on one model may run concurrently.
 *   - coder_session_cancel() and coder_log_set() may be called from any thread at any time.
 *   - Free every session of a model before freeing the model (coder_model_free on a model with live
 *     sessions returns without freeing and logs an error; see coder_model_free).
 */
#ifndef CODERINFER_H
#define CODERINFER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CODER_EXPORT __attribute__((visibility("default")))
#else
#define CODER_EXPORT
#endif

/* ------------------------------------------------------------------------------------------------
 * Version
 * --------------------------------------------------------------------------------------------- */

#define CODER_VERSION_MAJOR 0
#define CODER_VERSION_MINOR 1
#define CODER_VERSION_PATCH 0
#define CODER_VERSION_NUMBER (CODER_VERSION_MAJOR * 10000 + CODER_VERSION_MINOR * 100 + CODER_VERSION_PATCH)
/* The soname major: libcoderinfer.so.<CODER_ABI_VERSION>. Bumped only when the ABI breaks. */
#define CODER_ABI_VERSION 0

/* "0.1.0": the version of the library actually loaded (may differ from the header's). */
CODER_EXPORT const char *coder_version(void);
/* CODER_VERSION_NUMBER of the loaded library. */
CODER_EXPORT int coder_version_number(void);
/* CODER_ABI_VERSION of the loaded library; bindings compare it with the one they were written for. */
CODER_EXPORT int coder_abi_version(void);

/* ------------------------------------------------------------------------------------------------
 * Status codes. Part of the ABI: values are fixed, new codes are only appended.
 * --------------------------------------------------------------------------------------------- */

typedef enum coder_status {
    CODER_OK = 0,
    CODER_ERR_INVALID_ARG = -1,      /* a NULL pointer, an out-of-range value, a bad flag        */
    CODER_ERR_IO = -2,               /* open/read/mmap failed; path is a directory, FIFO, ...     */
    CODER_ERR_FORMAT = -3,           /* the file or data is malformed (message names the field)  */
    CODER_ERR_TRUNCATED = -4,        /* the file ends before a field or tensor it declares       */
    CODER_ERR_UNSUPPORTED = -5,      /* valid but not supported: version, type, architecture     */
    CODER_ERR_LIMIT = -6,            /* a declared size exceeds a configured limit               */
    CODER_ERR_NOMEM = -7,            /* host memory allocation failed                            */
    CODER_ERR_DEVICE = -8,           /* a GPU call failed (message has the call and error)       */
    CODER_ERR_DEVICE_NOMEM = -9,     /* GPU memory allocation failed (required vs available)     */
    CODER_ERR_DEVICE_LOST = -10,     /* a sticky GPU fault: the session must be freed            */
    CODER_ERR_CONTEXT_FULL = -11,    /* the tokens do not fit in the session's context           */
    CODER_ERR_CANCELLED = -12,       /* cancelled by coder_session_cancel or a callback          */
    CODER_ERR_BUSY = -13,            /* the object is in use by another thread / has dependents  */
    CODER_ERR_STATE = -14,           /* the call is not valid in the object's current state      */
    CODER_ERR_BUFFER_TOO_SMALL = -15,/* the caller's buffer is too small; *needed says how large */
    CODER_ERR_NUMERIC = -16,         /* NaN or Inf appeared in the logits                        */
    CODER_ERR_TEMPLATE = -17,        /* the chat template cannot be recognised or rendered       */
    CODER_ERR_INTERNAL = -18         /* a bug in the library: please report the message          */
} coder_status;

/* A static English name for a status ("CODER_ERR_FORMAT: malformed data"); never NULL. */
CODER_EXPORT const char *coder_status_string(coder_status status);

/* The detail message of the last failure on the calling thread (thread-local storage). Valid until
 * the next failing call on this thread; "" if there was none. Bytes from files are escaped. */
CODER_EXPORT const char *coder_last_error(void);

/* ------------------------------------------------------------------------------------------------
 * Logging. Quiet by default: nothing is logged until a sink is installed.
 * --------------------------------------------------------------------------------------------- */

typedef enum coder_log_level {
    CODER_LOG_DEBUG = 0,
    CODER_LOG_INFO = 1,
    CODER_LOG_WARN = 2,
    CODER_LOG_ERROR = 3,
    CODER_LOG_NONE = 4
} coder_log_level;

/* msg is one line without a trailing newline, valid only during the call. The sink may be called
 * from any thread that calls into the library (never from a hidden library thread), and must not
 * call back into the library. */
typedef void (*coder_log_fn)(coder_log_level level, const char *msg, void *user_data);

/* Installs a process-wide sink receiving messages at min_level and above; fn = NULL silences the
 * library. Thread-safe; takes effect for messages emitted after it returns. */
CODER_EXPORT void coder_log_set(coder_log_fn fn, void *user_data, coder_log_level min_level);

/* ------------------------------------------------------------------------------------------------
 * Models
 * --------------------------------------------------------------------------------------------- */

typedef struct coder_model coder_model;

/* Load progress: fraction in [0,1]. Return non-zero to cancel the load (CODER_ERR_CANCELLED). */
typedef int (*coder_progress_fn)(float fraction, void *user_data);

typedef struct coder_model_params {
    size_t size;              /* sizeof(coder_model_params); set by coder_model_params_init      */
    int use_mmap;             /* 0 (default): read the file into memory once (refused with
                                 CODER_ERR_NOMEM when larger than RAM); later changes to the file
                                 (truncated, rewritten, deleted) cannot affect the model or the
                                 host process. 1: map it read-only - faster loads from a warm page
                                 cache and pages shared between processes, but a file truncated
                                 by another process while mapped raises SIGBUS in the host (the
                                 library installs no signal handler). Use 1 only for files
                                 nothing will change. See docs/GGUF.md, "Files that change while
                                 loaded". A CPU-only model's quantized matrices are repacked
                                 for decode at load (in place when read; mapped: copied into a new
                                 buffer and their file pages released, so that part is neither
                                 shared nor loaded faster). $CODER_REPACK=0 turns it off.       */
    int n_gpu_layers;         /* -1 (default): as many as fit ("auto"); 0: CPU only; N: the last
                                 N layers and the output on the GPU, the rest on the CPU (N at
                                 least the layer count: all). No GPU: the CPU runs everything.   */
    int n_threads;            /* threads used while loading/validating; 0 (default): all cores  */
    int validate_weights;     /* 1: scan weights for NaN/Inf at load (slower); default 0         */
    int vocab_only;           /* 1: load only the tokenizer and prompt formats (also accepts the
                                 vocabulary-only GGUF files); sessions then fail with CODER_ERR_STATE */
    coder_progress_fn progress;   /* optional                                                   */
    void *progress_user_data;
} coder_model_params;

/* Fills p with the defaults above. */
CODER_EXPORT void coder_model_params_init(coder_model_params *p);

/* Opens, validates and prepares a GGUF model. Every size, offset and shape is checked against the
 * file before anything is allocated for it. On failure *out is NULL and coder_last_error() says why. */
CODER_EXPORT coder_status coder_model_load(const char *path, const coder_model_params *params,
                                           coder_model **out);

/* Frees the model. Returns CODER_ERR_BUSY (and frees nothing) while sessions on it are alive. */
CODER_EXPORT coder_status coder_model_free(coder_model *model);

typedef struct coder_model_info {
    size_t size;              /* sizeof(coder_model_info); set by the caller before the call     */
    char arch[32];            /* "qwen2", "llama", "qwen3"                                       */
    char name[128];           /* general.name, truncated; "" when absent                         */
    int32_t n_layers, dim, ffn_dim, n_heads, n_kv_heads, head_dim;
    int32_t vocab_size;
    int32_t n_ctx_train;      /* training context length                                         */
    uint64_t n_params;        /* number of weights                                              */
    uint64_t weight_bytes;    /* bytes of tensor data                                           */
    int32_t bos_token, eos_token;     /* -1 when the model has none                              */
    int32_t add_bos;          /* 1 when tokenizing with CODER_TOKENIZE_ADD_SPECIAL adds BOS       */
    int32_t has_fim;          /* 1 when the vocabulary has fill-in-the-middle tokens              */
    int32_t chat_format;      /* coder_chat_format recognised from tokenizer.chat_template        */
    int32_t gpu_layers;       /* layers actually placed on the GPU                                */
} coder_model_info;

/* Fills *info (info->size must be set to sizeof(coder_model_info)). */
CODER_EXPORT coder_status coder_model_get_info(const coder_model *model, coder_model_info *info);

/* Copies the metadata value of `key` rendered as text (numbers in decimal, arrays as "[n items]")
 * into buf, always NUL-terminated. *needed = bytes required including the NUL. */
CODER_EXPORT coder_status coder_model_meta(const coder_model *model, const char *key, char *buf,
                                           size_t cap, size_t *needed);

/* ------------------------------------------------------------------------------------------------
 * Tokens
 * --------------------------------------------------------------------------------------------- */

/* coder_tokenize flags */
#define CODER_TOKENIZE_ADD_SPECIAL 1u   /* add BOS/EOS where the model's metadata says so          */
#define CODER_TOKENIZE_PARSE_SPECIAL 2u /* match control-token text (<|im_start|>) in the input.
                                           Leave it off for untrusted text: then such text becomes
                                           ordinary tokens and cannot inject control tokens.      */

/* Tokenizes len bytes of text. Invalid UTF-8 bytes are tokenized as the bytes they are (byte-level
 * BPE) or as byte-fallback tokens (SentencePiece); nothing is dropped. Writes at most cap ids;
 * *n_tokens = number of ids of the full result (CODER_ERR_BUFFER_TOO_SMALL if > cap). */
CODER_EXPORT coder_status coder_tokenize(const coder_model *model, const char *text, size_t len,
                                         unsigned flags, int32_t *tokens, size_t cap,
                                         size_t *n_tokens);

/* coder_detokenize / coder_token_to_piece flags */
#define CODER_DETOKENIZE_SPECIAL 1u     /* render control tokens as their text (default: omitted)  */

/* Concatenated bytes of the tokens' text (exact bytes, possibly not valid UTF-8 when a token
 * sequence is cut inside a character). Not NUL-terminated; *len = bytes of the full result.
 * An id < 0 or >= vocab size gives CODER_ERR_INVALID_ARG. */
CODER_EXPORT coder_status coder_detokenize(const coder_model *model, const int32_t *tokens,
                                           size_t n_tokens, unsigned flags, char *buf, size_t cap,
                                           size_t *len);

/* The bytes of one token (not NUL-terminated). */
CODER_EXPORT coder_status coder_token_to_piece(const coder_model *model, int32_t token,
                                               unsigned flags, char *buf, size_t cap, size_t *len);

/* 1 if the token ends generation for this model (EOS, EOT, <|im_end|>, FIM pad, ...), else 0. */
CODER_EXPORT int coder_token_is_eog(const coder_model *model, int32_t token);

/* ------------------------------------------------------------------------------------------------
 * Prompt formats. No template text from the file is ever executed: the format is recognised from
 * tokenizer.chat_template and rendered by the library's own code.
 * --------------------------------------------------------------------------------------------- */

typedef enum coder_chat_format {
    CODER_CHAT_AUTO = 0,          /* recognise from the model's tokenizer.chat_template         */
    CODER_CHAT_CHATML = 1,        /* Qwen2.5, Qwen2.5-Coder: <|im_start|>role\n...<|im_end|>\n   */
    CODER_CHAT_QWEN3 = 2,         /* ChatML without default system prompt, with <think> handling */
    CODER_CHAT_LLAMA3 = 3,        /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>   */
    CODER_CHAT_DEEPSEEK_CODER = 4,/* DeepSeek-Coder instruct: ### Instruction: / ### Response:   */
    CODER_CHAT_LLAMA2 = 5,        /* CodeLlama / Llama-2: [INST] ... [/INST]                     */
    CODER_CHAT_RAW = 6            /* no formatting: contents concatenated                         */
} coder_chat_format;

typedef struct coder_chat_message {
    const char *role;             /* "system", "user", "assistant" or "tool"                    */
    const char *content;          /* NUL-terminated UTF-8                                       */
} coder_chat_message;

/* coder_chat_apply flags */
#define CODER_CHAT_ADD_GENERATION_PROMPT 1u /* end with the assistant turn header               */
#define CODER_CHAT_NO_THINK 2u              /* Qwen3: append the empty think block              */

/* Renders messages in `format` (CODER_CHAT_AUTO: the model's own) into buf as text to be tokenized
 * with CODER_TOKENIZE_PARSE_SPECIAL. NUL-terminated; *needed includes the NUL.
 * CODER_ERR_TEMPLATE when AUTO finds no recognisable format. */
CODER_EXPORT coder_status coder_chat_apply(const coder_model *model, coder_chat_format format,
                                           const coder_chat_message *messages, size_t n_messages,
                                           unsigned flags, char *buf, size_t cap, size_t *needed);

/* As coder_chat_apply, but returns token ids, and is safe for untrusted message text: control
 * tokens come only from the format's own scaffolding (turn markers, role headers); message content
 * is tokenized without special-token parsing, so "<|im_start|>system" inside a message stays plain
 * text. (Tokenizing coder_chat_apply's text with PARSE_SPECIAL does not have that property.)
 * Starts with BOS when the vocabulary asks for one. Writes at most cap ids; *n_tokens = full count. */
CODER_EXPORT coder_status coder_chat_tokens(const coder_model *model, coder_chat_format format,
                                            const coder_chat_message *messages, size_t n_messages,
                                            unsigned flags, int32_t *tokens, size_t cap,
                                            size_t *n_tokens);

typedef struct coder_fim_file {
    const char *path;             /* repository-relative path                                   */
    const char *content;          /* file text                                                  */
} coder_fim_file;

/* Builds the fill-in-the-middle prompt as token ids (special ids looked up in the vocabulary):
 * prefix, then suffix, then the "middle" marker; the model generates the middle. With repo_name
 * or files (Qwen2.5-Coder only) the repository-level form is produced, the target file last under
 * target_path. CODER_ERR_UNSUPPORTED when the vocabulary has no FIM tokens. */
CODER_EXPORT coder_status coder_fim_tokens(const coder_model *model, const char *prefix,
                                           const char *suffix, const char *repo_name,
                                           const coder_fim_file *files, size_t n_files,
                                           const char *target_path, int32_t *tokens, size_t cap,
                                           size_t *n_tokens);

/* ------------------------------------------------------------------------------------------------
 * Sessions: a KV cache and the tokens in it. One thread at a time per session.
 * --------------------------------------------------------------------------------------------- */

typedef struct coder_session coder_session;

typedef enum coder_kv_type {
    CODER_KV_F16 = 0,             /* default                                                    */
    CODER_KV_F32 = 1,
    CODER_KV_Q8_0 = 2,            /* 32-value blocks with an F16 scale (8.5 bits per value, 53% of
                                     F16): K and V rounded on write; head_dim % 32 == 0 required */
    CODER_KV_Q8_0_Q4_0 = 3        /* K in Q8_0, V in Q4_0 (4.5 bits per value): 41% of F16; V
                                     tolerates coarser rounding than K (added in 0.2)             */
} coder_kv_type;

typedef struct coder_session_params {
    size_t size;                  /* sizeof(coder_session_params)                               */
    int32_t n_ctx;                /* context length in tokens; 0 (default): min(training, 4096);
                                     CODER_CTX_AUTO: resolve it with coder_plan_fit first        */
    int32_t n_batch;              /* prompt tokens evaluated per step; default 512               */
    int32_t n_threads;            /* CPU threads; 0 (default): all cores                        */
    int32_t kv_type;              /* coder_kv_type; default CODER_KV_F16                        */
} coder_session_params;

CODER_EXPORT void coder_session_params_init(coder_session_params *p);

/* Creates a session on model (the model must outlive it). */
CODER_EXPORT coder_status coder_session_new(coder_model *model, const coder_session_params *params,
                                            coder_session **out);
CODER_EXPORT void coder_session_free(coder_session *session);

/* Forgets every token: the next evaluation starts at position 0. */
CODER_EXPORT coder_status coder_session_reset(coder_session *session);

/* Context length and number of tokens currently held. */
CODER_EXPORT int32_t coder_session_n_ctx(const coder_session *session);
CODER_EXPORT int32_t coder_session_n_past(const coder_session *session);

/* Appends n tokens at the next positions and computes the logits of the last one. Fails with
 * CODER_ERR_CONTEXT_FULL before computing anything if they do not fit; the session is unchanged
 * on every error except CODER_ERR_CANCELLED / device errors (then n_past says what was kept). */
CODER_EXPORT coder_status coder_session_eval(coder_session *session, const int32_t *tokens,
                                             size_t n_tokens);

/* coder_session_eval that also copies the logits of EVERY evaluated token into logits, as
 * [n_tokens][vocab_size] floats (cap = floats available; CODER_ERR_BUFFER_TOO_SMALL if fewer).
 * For scoring and perplexity; slower than coder_session_eval (the output head runs for every token). */
CODER_EXPORT coder_status coder_session_eval_all(coder_session *session, const int32_t *tokens,
                                                 size_t n_tokens, float *logits, size_t cap);

/* The logits (vocab_size floats) of the last evaluated position (coder_session_eval, or the last
 * token coder_generate evaluated); valid until the next call on the session. Greedy generation
 * takes each argmax where the logits are computed (on a GPU: 8 bytes back per token) and copies
 * them to the host only when this is called. CODER_ERR_STATE before any evaluation. */
CODER_EXPORT coder_status coder_session_logits(coder_session *session, const float **logits,
                                               int32_t *vocab_size);

/* Asks the generation or evaluation running on session (in another thread) to stop after the
 * current token. Async-safe; the call in progress returns CODER_ERR_CANCELLED (or a result with
 * stop reason CODER_STOP_CANCELLED) and the session remains usable. A cancel that arrives while
 * nothing runs is forgotten when the next call starts. */
CODER_EXPORT void coder_session_cancel(coder_session *session);

/* ------------------------------------------------------------------------------------------------
 * Generation
 * --------------------------------------------------------------------------------------------- */

/* Streaming: called with each new piece of text, always complete UTF-8 characters (a token cut in
 * a character is held back until the character is complete). Return non-zero to stop. */
typedef int (*coder_piece_fn)(const char *piece, size_t len, void *user_data);

/* Sampling, applied in this order each step (llama.cpp's order):
 *   1. repetition penalties over the last repeat_last_n tokens (prompt included):
 *      logit <= 0 ? logit *= repeat_penalty : logit /= repeat_penalty;
 *      logit -= count * frequency_penalty + presence_penalty
 *   2. top-k    3. top-p    4. min-p   (all on the untempered distribution)
 *   5. temperature; temperature <= 0 means greedy (argmax, lowest id on ties)
 *   6. draw from the softmax with a seeded generator (seed fixed => same tokens).               */
typedef struct coder_gen_params {
    size_t size;                  /* sizeof(coder_gen_params)                                   */
    int32_t max_tokens;           /* default 256; -1: until end of generation or context full   */
    float temperature;            /* default 0.8                                                */
    int32_t top_k;                /* default 40; <= 0 disables                                  */
    float top_p;                  /* default 0.95; 1 disables                                   */
    float min_p;                  /* default 0.05; 0 disables                                   */
    float repeat_penalty;         /* default 1.0 (off)                                          */
    int32_t repeat_last_n;        /* default 64                                                 */
    float frequency_penalty;      /* default 0                                                  */
    float presence_penalty;       /* default 0                                                  */
    uint64_t seed;                /* default 0xFFFFFFFF...: a random seed                       */
    const char *const *stop;      /* optional stop strings; generation ends before them         */
    size_t n_stop;
    unsigned tokenize_flags;      /* for text prompts; default ADD_SPECIAL | PARSE_SPECIAL      */
    coder_piece_fn on_piece;      /* optional streaming callback                                */
    void *user_data;
    /* Added in 0.2 (a caller built against 0.1 gets the defaults):                              */
    int32_t prompt_mode;          /* coder_prompt_mode; default CODER_PROMPT_CONTINUE            */
    int32_t context_policy;       /* coder_context_policy; default CODER_CONTEXT_REFUSE          */
    int32_t truncate_keep;        /* CODER_CONTEXT_TRUNCATE: prompt tokens kept from the start
                                     (a system prompt); default 0                               */
    /* Added in 0.2 (later in the cycle):                                                         */
    int32_t lookup_draft;         /* prompt-lookup decoding (greedy only: temperature 0, no
                                     penalties; ignored otherwise): where the last tokens occurred
                                     before in the context, up to this many of the tokens that
                                     followed are evaluated with the next one in one batch and kept
                                     as far as greedy decoding agrees (at most 7 on a GPU, whose
                                     mat-vec takes 8 tokens); 0 (default) off. Edits of
                                     code the prompt holds go several tokens per step. The output
                                     is greedy decoding's (bit for bit for quantized weights on the
                                     CPU; elsewhere a batch's rounding may differ in the last bit) */
} coder_gen_params;

/* coder_gen_params.prompt_mode: how the prompt relates to the tokens the session holds.         */
typedef enum coder_prompt_mode {
    CODER_PROMPT_CONTINUE = 0,    /* the prompt is appended after the tokens held (default)      */
    CODER_PROMPT_REUSE = 1        /* the prompt is the whole context: the longest common prefix of
                                     the tokens held and the prompt is kept (not re-evaluated),
                                     the rest of the session is dropped, and only the remaining
                                     prompt tokens are evaluated. At least one prompt token is
                                     always re-evaluated unless the session holds exactly the
                                     prompt and its logits. ADD_SPECIAL applies (position 0).    */
} coder_prompt_mode;

/* coder_gen_params.context_policy: a prompt that does not fit in the free context
 * (n_ctx - n_past with CONTINUE, n_ctx with REUSE).                                              */
typedef enum coder_context_policy {
    CODER_CONTEXT_REFUSE = 0,     /* CODER_ERR_CONTEXT_FULL before anything is evaluated; the
                                     message gives the prompt length, tokens held and n_ctx     */
    CODER_CONTEXT_TRUNCATE = 1    /* drop the middle of the prompt: keep its first K tokens and
                                     its last tokens so that it fills free - room, where room =
                                     min(max_tokens, free/2) (free/2 when max_tokens is -1) is
                                     left for generation, and K = min(truncate_keep, half of what
                                     is kept). A prompt that fits is never cut.                 */
} coder_context_policy;

CODER_EXPORT void coder_gen_params_init(coder_gen_params *p);

typedef enum coder_stop_reason {
    CODER_STOP_NONE = 0,
    CODER_STOP_EOG = 1,           /* the model emitted an end-of-generation token               */
    CODER_STOP_LENGTH = 2,        /* max_tokens reached                                         */
    CODER_STOP_STRING = 3,        /* a stop string matched                                      */
    CODER_STOP_CONTEXT_FULL = 4,  /* the context is full                                        */
    CODER_STOP_CANCELLED = 5,     /* coder_session_cancel or the callback asked to stop         */
    CODER_STOP_ERROR = 6
} coder_stop_reason;

typedef struct coder_stats {
    int32_t n_prompt;             /* prompt tokens evaluated (excluding reused ones)            */
    int32_t n_cached;             /* prompt tokens reused from the session                      */
    int32_t n_generated;          /* tokens generated                                           */
    double prefill_ms, decode_ms; /* wall time of prompt evaluation and of generation           */
    double prefill_tps, decode_tps;/* tokens per second of each                                 */
    /* Added in 0.2 (later in the cycle):                                                         */
    int32_t n_drafted, n_accepted;/* lookup_draft: tokens proposed and kept                     */
} coder_stats;

typedef struct coder_result {
    size_t size;                  /* sizeof(coder_result); set by coder_result_init             */
    char *text;                   /* the completion, NUL-terminated; owned by the library       */
    size_t text_len;
    int32_t *tokens;              /* the generated ids, owned by the library                    */
    size_t n_tokens;
    int32_t stop_reason;          /* coder_stop_reason                                          */
    coder_stats stats;
} coder_result;

CODER_EXPORT void coder_result_init(coder_result *r);
/* Frees what the library stored in r and re-initialises it. */
CODER_EXPORT void coder_result_clear(coder_result *r);

/* Tokenizes the prompt (gp->tokenize_flags), evaluates it after the tokens the session already
 * holds, and generates. The prompt continues the session: call coder_session_reset first for a
 * fresh start, or set gp->prompt_mode = CODER_PROMPT_REUSE to make the prompt the whole context
 * while reusing the evaluated prefix it shares with the session (agents re-sending a long system
 * prompt pay only for the new tokens). Fills *result (call coder_result_clear on it afterwards,
 * also after an error).
 *   - BOS is only ever added at position 0: with tokens already held (CONTINUE), ADD_SPECIAL is
 *     ignored.
 *   - A prompt that does not fit: gp->context_policy (CODER_ERR_CONTEXT_FULL by default).
 *   - stats.n_prompt = prompt tokens evaluated; stats.n_cached = tokens kept from the session
 *     (CONTINUE: all it held; REUSE: the common prefix).
 *   - An empty prompt continues from the session's current logits (CODER_ERR_INVALID_ARG if none).
 *   - A cancel (coder_session_cancel, or on_piece returning non-zero) returns CODER_OK with stop
 *     reason CODER_STOP_CANCELLED; the session keeps everything evaluated so far.
 *   - result->tokens excludes the end-of-generation token; every id in it has been evaluated into
 *     the session.
 *   - Parameter rules (else CODER_ERR_INVALID_ARG naming the field): temperature finite; top_p and
 *     min_p in [0,1]; repeat_penalty > 0; frequency/presence penalties >= 0; repeat_last_n >= 0;
 *     max_tokens >= -1; stop strings non-empty; lookup_draft in [0, 16];
 *     gp->size == sizeof(coder_gen_params). */
CODER_EXPORT coder_status coder_generate(coder_session *session, const char *prompt, size_t len,
                                         const coder_gen_params *gp, coder_result *result);

/* As coder_generate, with the prompt already tokenized. */
CODER_EXPORT coder_status coder_generate_tokens(coder_session *session, const int32_t *prompt,
                                                size_t n_prompt, const coder_gen_params *gp,
                                                coder_result *result);

/* ------------------------------------------------------------------------------------------------
 * Prefix sharing and session state (added in 0.2)
 * --------------------------------------------------------------------------------------------- */

/* Creates *out, a new session on src's model with src's parameters (n_ctx, n_batch, n_threads,
 * kv_type) holding a copy of src's tokens, KV cache and logits, so several continuations can share
 * one evaluated prefix (each fork then evaluates only its own tokens). src is not modified;
 * CODER_ERR_BUSY if another thread is using it. Costs one session's memory and a copy of
 * n_past positions of the cache. */
CODER_EXPORT coder_status coder_session_fork(coder_session *src, coder_session **out);

/* Writes the session's state to path: the token history, the KV cache of positions
 * 0..n_past-1 and the last logits, zstd-compressed, in a versioned file whose header names the
 * model (a 64-bit hash of the GGUF's metadata and tensor-info bytes, plus architecture and shape)
 * and the KV type, with a checksum over the whole file. The file is written to "path.tmp" and
 * renamed, so a reader never sees half a file. n_tokens < 0 saves every position held; otherwise
 * the first n_tokens positions only (then no logits are stored). Layout: docs/CLI.md,
 * "Session state files". CODER_ERR_IO when the file cannot be written. */
CODER_EXPORT coder_status coder_session_save(coder_session *session, const char *path, int32_t n_tokens);

/* Replaces the session's state with the one saved in path. Everything is checked before the
 * session is touched, and on any error the session is unchanged:
 *   CODER_ERR_IO         the file cannot be opened or read;
 *   CODER_ERR_FORMAT     not a session file (magic), a checksum mismatch (bit flips), sizes that
 *                        disagree with each other, or a payload that does not decompress to them;
 *   CODER_ERR_TRUNCATED  the file is shorter than its header says;
 *   CODER_ERR_UNSUPPORTED a newer format version;
 *   CODER_ERR_STATE      saved from another model (hash/shape differ) or with another kv_type;
 *   CODER_ERR_CONTEXT_FULL more positions than this session's n_ctx.
 * Declared sizes are validated against the model and the file size before anything is allocated
 * (a decompression bomb or a huge declared count allocates nothing). The message names the field. */
CODER_EXPORT coder_status coder_session_load(coder_session *session, const char *path);

/* ------------------------------------------------------------------------------------------------
 * Memory planning (added in 0.2)
 * --------------------------------------------------------------------------------------------- */

/* The result of coder_plan_memory. All sizes in bytes. */
typedef struct coder_plan {
    size_t size;                  /* sizeof(coder_plan); set by the caller before the call       */
    int32_t n_ctx;                /* the context planned for (session params, 0 -> the default)  */
    int32_t n_layers, gpu_layers; /* layers in the model; layers planned on the GPU              */
    int32_t kv_type;              /* the session's coder_kv_type                                 */
    uint64_t file_bytes;          /* size of the GGUF file                                       */
    uint64_t weight_bytes;        /* tensor data of the file                                     */
    uint64_t kv_bytes_per_token;  /* K+V of one position over all layers, for kv_type           */
    uint64_t kv_bytes_per_token_by_type[4]; /* the same for F16, F32, Q8_0, Q8_0_Q4_0 (index = coder_kv_type) */
    uint64_t kv_bytes;            /* n_ctx * kv_bytes_per_token                                  */
    uint64_t scratch_bytes;       /* activations, per-thread scratch, token and logit arrays     */
    uint64_t model_bytes;         /* tokenizer tables and model structures (estimate)            */
    uint64_t host_bytes;          /* host memory in all: the mapped file (weights pages count
                                     when touched), model_bytes, host KV and scratch             */
    uint64_t device_bytes;        /* GPU memory: weights, KV and scratch of the GPU layers       */
} coder_plan;

/* Plans the memory a model file and session parameters need, reading only the GGUF header (no
 * weights are touched). mp and sp may be NULL (defaults). With mp->n_gpu_layers != 0 and no GPU
 * available, the plan is for the CPU (gpu_layers 0). Errors are those of coder_model_load for the
 * header, and of coder_session_new for the parameters. */
CODER_EXPORT coder_status coder_plan_memory(const char *path, const coder_model_params *mp,
                                            const coder_session_params *sp, coder_plan *plan);

/* coder_session_params.n_ctx for coder_plan_fit: the largest context that fits (added in 0.2). */
#define CODER_CTX_AUTO (-1)

/* `auto` settings: resolves mp->n_gpu_layers == -1 (as many layers on the GPU as fit) and
 * sp->n_ctx == CODER_CTX_AUTO (the largest context that fits, up to the training context) against
 * memory budgets, writes the chosen values back into *mp and *sp, the plan for them into *plan, and
 * one line explaining the choice into why (may be NULL). Explicit values are kept and checked.
 * A budget of 0 means measured: host = MemAvailable less min(10%, 1 GiB); device = free device
 * memory less 768 MiB (context, cuBLAS workspace). GPU layers are chosen first (at the requested or
 * default context), then the context. CODER_ERR_NOMEM (with both figures) when even the smallest
 * choice does not fit; other errors as coder_plan_memory. Reads only the GGUF header. */
CODER_EXPORT coder_status coder_plan_fit(const char *path, coder_model_params *mp, coder_session_params *sp,
                                         uint64_t host_budget, uint64_t device_budget, coder_plan *plan,
                                         char *why, size_t why_cap);

#ifdef __cplusplus
}
#endif

#endif /* CODERINFER_H */
