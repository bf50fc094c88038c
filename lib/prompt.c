/* prompt.c - chat formats: recognition from tokenizer.chat_template by distinctive substrings
 * (the template is never executed, so hostile templates - recursion, huge ranges, sandbox
 * escapes - cannot run: E8), and rendering by our own code (FORMATS.md 5.2, 5.5, 5.6).
 *
 * Rendering goes through prompt_build, which produces either the text form (coder_chat_apply)
 * or token ids with control tokens only from the scaffolding (the F5-safe path, coder_chat_tokens).
 * The text form never contains the leading BOS: tokenizing it with CODER_TOKENIZE_ADD_SPECIAL adds
 * it where the model wants one. The token form starts with BOS when the vocabulary says add_bos. */
#include <string.h>

#include "prompt.h"

/* ---- recognition ------------------------------------------------------------------------- */

static bool prompt_has(const char *s, size_t len, const char *needle) {
    return memmem(s, len, needle, strlen(needle)) != NULL;
}

int32_t prompt_detect_template(const char *tmpl, size_t len) {
    if (!tmpl) return CODER_CHAT_AUTO;
    if (len > PROMPT_MAX_TEMPLATE_SCAN) len = PROMPT_MAX_TEMPLATE_SCAN;
    /* Order matters: Qwen3 is ChatML plus thinking markers. memmem is linear (two-way). */
    if (prompt_has(tmpl, len, "<|im_start|>")) {
        if (prompt_has(tmpl, len, "<think>") || prompt_has(tmpl, len, "enable_thinking") ||
            prompt_has(tmpl, len, "reasoning_content"))
            return CODER_CHAT_QWEN3;
        return CODER_CHAT_CHATML;
    }
    if (prompt_has(tmpl, len, "<|start_header_id|>") && prompt_has(tmpl, len, "<|eot_id|>"))
        return CODER_CHAT_LLAMA3;
    if (prompt_has(tmpl, len, "### Instruction:") && prompt_has(tmpl, len, "### Response:"))
        return CODER_CHAT_DEEPSEEK_CODER;
    if (prompt_has(tmpl, len, "[INST]") && prompt_has(tmpl, len, "[/INST]")) return CODER_CHAT_LLAMA2;
    return CODER_CHAT_AUTO;
}

int32_t prompt_detect_model(const gguf_file *f, const tokenizer *tok) {
    gguf_str s;
    if (gguf_find_key(f, "tokenizer.chat_template") >= 0 &&
        gguf_get_str(f, "tokenizer.chat_template", &s, true) == CODER_OK) {
        int32_t fmt = prompt_detect_template(s.ptr, (size_t)s.len);
        if (fmt != CODER_CHAT_AUTO) return fmt;
        LOG_WARN("tokenizer.chat_template (%llu bytes) matches no known chat format; pass an "
                 "explicit format to coder_chat_apply", (unsigned long long)s.len);
        return CODER_CHAT_AUTO;
    }
    /* No template: the vocabulary's turn markers are a safe guess. */
    if (tok && tokenizer_find(tok, "<|im_start|>", 12) >= 0) return CODER_CHAT_CHATML;
    if (tok && tokenizer_find(tok, "<|start_header_id|>", 19) >= 0) return CODER_CHAT_LLAMA3;
    return CODER_CHAT_AUTO;
}

/* ---- the segment builder ----------------------------------------------------------------- */

void prompt_build_flush(prompt_build *b) {
    if (b->st != CODER_OK || !b->tokens_mode || b->run_len == 0) return;
    size_t room = b->len < b->cap ? b->cap - b->len : 0, n = 0;
    coder_status st = tokenizer_encode(b->tok, b->run, b->run_len, 0, room ? b->ids + b->len : NULL,
                                       room, &n);
    if (st != CODER_OK && st != CODER_ERR_BUFFER_TOO_SMALL) {
        b->st = st;
        return;
    }
    if (ck_add_size(b->len, n, &b->len)) b->st = coder_fail(CODER_ERR_LIMIT, "prompt: token count overflows");
    b->run_len = 0;
}

void prompt_build_text(prompt_build *b, const char *s, size_t n) {
    if (b->st != CODER_OK || n == 0) return;
    if (!b->tokens_mode) {
        size_t end;
        if (ck_add_size(b->len, n, &end)) {
            b->st = coder_fail(CODER_ERR_LIMIT, "prompt: text length overflows");
            return;
        }
        if (b->len < b->cap) memcpy(b->text + b->len, s, n < b->cap - b->len ? n : b->cap - b->len);
        b->len = end;
        return;
    }
    size_t need;
    if (ck_add_size(b->run_len, n, &need)) {
        b->st = coder_fail(CODER_ERR_LIMIT, "prompt: text length overflows");
        return;
    }
    if (need > b->run_cap) {
        size_t cap = b->run_cap ? b->run_cap : 256;
        while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        char *r = coder_realloc(b->run, cap);
        if (!r) {
            b->st = coder_fail(CODER_ERR_NOMEM, "prompt: text run of %zu bytes", need);
            return;
        }
        b->run = r;
        b->run_cap = cap;
    }
    memcpy(b->run + b->run_len, s, n);
    b->run_len = need;
}

void prompt_build_str(prompt_build *b, const char *s) { prompt_build_text(b, s, strlen(s)); }

void prompt_build_id(prompt_build *b, int32_t id) {
    if (b->st != CODER_OK || !b->tokens_mode) return;
    prompt_build_flush(b);
    if (b->st != CODER_OK) return;
    if (b->len < b->cap) b->ids[b->len] = id;
    b->len++;
}

void prompt_build_special(prompt_build *b, const char *text) {
    if (b->st != CODER_OK) return;
    if (!b->tokens_mode) {
        prompt_build_str(b, text);
        return;
    }
    int32_t id = tokenizer_find(b->tok, text, strlen(text));
    if (id < 0) {
        b->st = coder_fail(CODER_ERR_UNSUPPORTED, "prompt: the vocabulary has no token '%s' that "
                           "this format needs", text);
        return;
    }
    prompt_build_id(b, id);
}

/* ---- formats ------------------------------------------------------------------------------ */

static const char chatml_default_system[] =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
/* DeepSeek-Coder instruct's template inserts this when no system message is given. */
static const char deepseek_default_system[] =
    "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek "
    "Company, and you only answer questions related to computer science. For politically sensitive "
    "questions, security and privacy issues, and other non-computer science questions, you will "
    "refuse to answer\n";

static bool role_is(const coder_chat_message *m, const char *r) { return !strcmp(m->role, r); }

/* Appends s with leading/trailing characters of `set` removed (Jinja strip/lstrip/rstrip). */
static void prompt_text_trimmed(prompt_build *b, const char *s, size_t n, const char *set, bool left,
                                bool right) {
    while (left && n > 0 && strchr(set, *s)) s++, n--;
    while (right && n > 0 && strchr(set, s[n - 1])) n--;
    prompt_build_text(b, s, n);
}

/* Tool results (role "tool"): consecutive ones share one user turn (Qwen 2.5 and 3 alike). */
static void chatml_tool(prompt_build *b, const coder_chat_message *msgs, size_t n, size_t i) {
    if (i == 0 || !role_is(&msgs[i - 1], "tool")) {
        prompt_build_special(b, "<|im_start|>");
        prompt_build_str(b, "user");
    }
    prompt_build_str(b, "\n<tool_response>\n");
    prompt_build_str(b, msgs[i].content);
    prompt_build_str(b, "\n</tool_response>");
    if (i + 1 == n || !role_is(&msgs[i + 1], "tool")) {
        prompt_build_special(b, "<|im_end|>");
        prompt_build_str(b, "\n");
    }
}

static void chatml_turn(prompt_build *b, const char *role, const char *content, size_t len) {
    prompt_build_special(b, "<|im_start|>");
    prompt_build_str(b, role);
    prompt_build_str(b, "\n");
    prompt_build_text(b, content, len);
    prompt_build_special(b, "<|im_end|>");
    prompt_build_str(b, "\n");
}

static void render_chatml(prompt_build *b, const coder_chat_message *msgs, size_t n, unsigned flags) {
    size_t start = 0;
    if (n > 0 && role_is(&msgs[0], "system")) {
        chatml_turn(b, "system", msgs[0].content, strlen(msgs[0].content));
        start = 1;
    } else {
        chatml_turn(b, "system", chatml_default_system, strlen(chatml_default_system));
    }
    for (size_t i = start; i < n; i++) {
        if (role_is(&msgs[i], "tool")) chatml_tool(b, msgs, n, i);
        else chatml_turn(b, msgs[i].role, msgs[i].content, strlen(msgs[i].content));
    }
    if (flags & CODER_CHAT_ADD_GENERATION_PROMPT) {
        prompt_build_special(b, "<|im_start|>");
        prompt_build_str(b, "assistant\n");
    }
}

/* Qwen3: no default system turn; reasoning of assistant turns before the last user query is
 * dropped, later ones keep a <think> block (the shipped template's rules, FORMATS.md 5.5). */
static void render_qwen3(prompt_build *b, const coder_chat_message *msgs, size_t n, unsigned flags) {
    size_t last_query = n ? n - 1 : 0;
    for (size_t k = n; k-- > 0;) {
        const char *c = msgs[k].content;
        size_t cl = strlen(c);
        bool tool_wrapped = cl >= 15 + 16 && !strncmp(c, "<tool_response>", 15) &&
                            !strcmp(c + cl - 16, "</tool_response>");
        if (role_is(&msgs[k], "user") && !tool_wrapped) {
            last_query = k;
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const coder_chat_message *m = &msgs[i];
        const char *c = m->content;
        size_t cl = strlen(c);
        if (role_is(m, "system") && i == 0) chatml_turn(b, "system", c, cl);
        else if (role_is(m, "user") || role_is(m, "system")) chatml_turn(b, m->role, c, cl);
        else if (role_is(m, "tool")) chatml_tool(b, msgs, n, i);
        else { /* assistant */
            const char *reason = "", *body = c;
            size_t reason_len = 0, body_len = cl;
            const char *end = memmem(c, cl, "</think>", 8);
            if (end) {
                /* reasoning = before the first </think>, after the last <think> in that part */
                const char *r = c, *p;
                while ((p = memmem(r, (size_t)(end - r), "<think>", 7)) != NULL) r = p + 7;
                reason = r;
                reason_len = (size_t)(end - r);
                /* body = after the last </think> */
                const char *last = end;
                while ((p = memmem(last + 8, cl - (size_t)(last + 8 - c), "</think>", 8)) != NULL) last = p;
                body = last + 8;
                body_len = cl - (size_t)(body - c);
                while (body_len > 0 && *body == '\n') body++, body_len--;
            }
            prompt_build_special(b, "<|im_start|>");
            prompt_build_str(b, "assistant\n");
            bool keep_think = i > last_query && (i + 1 == n || reason_len > 0);
            if (keep_think) {
                prompt_build_str(b, "<think>\n");
                prompt_text_trimmed(b, reason, reason_len, "\n", true, true);
                prompt_build_str(b, "\n</think>\n\n");
                prompt_text_trimmed(b, body, body_len, "\n", true, false);
            } else {
                prompt_build_text(b, body, body_len);
            }
            prompt_build_special(b, "<|im_end|>");
            prompt_build_str(b, "\n");
        }
    }
    if (flags & CODER_CHAT_ADD_GENERATION_PROMPT) {
        prompt_build_special(b, "<|im_start|>");
        prompt_build_str(b, "assistant\n");
        if (flags & CODER_CHAT_NO_THINK) prompt_build_str(b, "<think>\n\n</think>\n\n");
    }
}

/* Llama 3: <|start_header_id|>role<|end_header_id|>\n\n{content, trimmed}<|eot_id|>. */
static void render_llama3(prompt_build *b, const coder_chat_message *msgs, size_t n, unsigned flags) {
    for (size_t i = 0; i < n; i++) {
        prompt_build_special(b, "<|start_header_id|>");
        prompt_build_str(b, msgs[i].role);
        prompt_build_special(b, "<|end_header_id|>");
        prompt_build_str(b, "\n\n");
        prompt_text_trimmed(b, msgs[i].content, strlen(msgs[i].content), " \t\n\r", true, true);
        prompt_build_special(b, "<|eot_id|>");
    }
    if (flags & CODER_CHAT_ADD_GENERATION_PROMPT) {
        prompt_build_special(b, "<|start_header_id|>");
        prompt_build_str(b, "assistant");
        prompt_build_special(b, "<|end_header_id|>");
        prompt_build_str(b, "\n\n");
    }
}

/* DeepSeek-Coder instruct (v1): plain-text headers, <|EOT|> after each answer. */
static void render_deepseek(prompt_build *b, const coder_chat_message *msgs, size_t n, unsigned flags) {
    bool has_system = false;
    for (size_t i = 0; i < n; i++) has_system |= role_is(&msgs[i], "system");
    if (!has_system) prompt_build_str(b, deepseek_default_system);
    for (size_t i = 0; i < n; i++) {
        const coder_chat_message *m = &msgs[i];
        if (role_is(m, "system")) {
            prompt_build_str(b, m->content);
        } else if (role_is(m, "assistant")) {
            prompt_build_str(b, "### Response:\n");
            prompt_build_str(b, m->content);
            prompt_build_str(b, "\n");
            prompt_build_special(b, "<|EOT|>");
            prompt_build_str(b, "\n");
        } else { /* user, tool */
            prompt_build_str(b, "### Instruction:\n");
            prompt_build_str(b, m->content);
            prompt_build_str(b, "\n");
        }
    }
    if (flags & CODER_CHAT_ADD_GENERATION_PROMPT) prompt_build_str(b, "### Response:\n");
}

/* Llama 2 / CodeLlama-Instruct: [INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{user} [/INST] {answer} </s><s>[INST] ...
 * The first <s> is the BOS (see the file comment); the ones between turns are part of the format. */
static void render_llama2(prompt_build *b, const coder_chat_message *msgs, size_t n) {
    const char *system = NULL;
    bool first_user = true, after_answer = false;
    for (size_t i = 0; i < n; i++) {
        const coder_chat_message *m = &msgs[i];
        const char *c = m->content;
        if (role_is(m, "system")) {
            system = c;
            continue;
        }
        if (role_is(m, "assistant")) {
            prompt_build_str(b, " ");
            prompt_text_trimmed(b, c, strlen(c), " \t\n\r", true, true);
            prompt_build_str(b, " ");
            prompt_build_special(b, "</s>");
            after_answer = true;
            continue;
        }
        if (after_answer) prompt_build_special(b, "<s>");
        prompt_build_str(b, "[INST] ");
        if (system && first_user) {
            prompt_build_str(b, "<<SYS>>\n");
            prompt_text_trimmed(b, system, strlen(system), " \t\n\r", true, true);
            prompt_build_str(b, "\n<</SYS>>\n\n");
        }
        first_user = false;
        prompt_text_trimmed(b, c, strlen(c), " \t\n\r", true, true);
        prompt_build_str(b, " [/INST]");
        after_answer = false;
    }
}

static coder_status prompt_check(const coder_model *m, int32_t *format, const coder_chat_message *msgs,
                                 size_t n, unsigned flags) {
    if (!m) return coder_fail(CODER_ERR_INVALID_ARG, "chat: model is NULL");
    if (!msgs && n > 0) return coder_fail(CODER_ERR_INVALID_ARG, "chat: messages is NULL with %zu messages", n);
    if (flags & ~(unsigned)(CODER_CHAT_ADD_GENERATION_PROMPT | CODER_CHAT_NO_THINK))
        return coder_fail(CODER_ERR_INVALID_ARG, "chat: unknown flags 0x%x", flags);
    if (*format < CODER_CHAT_AUTO || *format > CODER_CHAT_RAW)
        return coder_fail(CODER_ERR_INVALID_ARG, "chat: format %d is not a coder_chat_format", *format);
    if (*format == CODER_CHAT_AUTO) {
        *format = m->chat_format;
        if (*format == CODER_CHAT_AUTO)
            return coder_fail(CODER_ERR_TEMPLATE, "chat: the model's tokenizer.chat_template is absent "
                              "or matches no known format (it is never executed); pass an explicit "
                              "coder_chat_format");
    }
    for (size_t i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!r) return coder_fail(CODER_ERR_INVALID_ARG, "chat: messages[%zu].role is NULL", i);
        if (!msgs[i].content) return coder_fail(CODER_ERR_INVALID_ARG, "chat: messages[%zu].content is NULL", i);
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "tool")) {
            char esc[80];
            coder_escape(r, strnlen(r, 32), esc, sizeof esc);
            return coder_fail(CODER_ERR_INVALID_ARG, "chat: messages[%zu].role '%s' is not system, "
                              "user, assistant or tool", i, esc);
        }
    }
    return CODER_OK;
}

static void prompt_render(prompt_build *b, int32_t format, const coder_chat_message *msgs, size_t n,
                          unsigned flags) {
    switch (format) {
    case CODER_CHAT_CHATML: render_chatml(b, msgs, n, flags); break;
    case CODER_CHAT_QWEN3: render_qwen3(b, msgs, n, flags); break;
    case CODER_CHAT_LLAMA3: render_llama3(b, msgs, n, flags); break;
    case CODER_CHAT_DEEPSEEK_CODER: render_deepseek(b, msgs, n, flags); break;
    case CODER_CHAT_LLAMA2: render_llama2(b, msgs, n); break;
    default: /* RAW */
        for (size_t i = 0; i < n; i++) prompt_build_str(b, msgs[i].content);
        break;
    }
    prompt_build_flush(b);
}

coder_status prompt_chat_render(const coder_model *m, int32_t format, const coder_chat_message *msgs,
                                size_t n_msgs, unsigned flags, char *buf, size_t cap, size_t *needed) {
    if (!needed) return coder_fail(CODER_ERR_INVALID_ARG, "coder_chat_apply: needed is NULL");
    if (!buf && cap > 0) return coder_fail(CODER_ERR_INVALID_ARG, "coder_chat_apply: buf is NULL with cap %zu", cap);
    TRY(prompt_check(m, &format, msgs, n_msgs, flags));
    prompt_build b = {.tok = m->tok, .tokens_mode = false, .text = buf, .cap = cap ? cap - 1 : 0};
    prompt_render(&b, format, msgs, n_msgs, flags);
    if (b.st != CODER_OK) return b.st;
    if (ck_add_size(b.len, 1, needed)) return coder_fail(CODER_ERR_LIMIT, "coder_chat_apply: size overflows");
    if (cap > 0) buf[b.len < cap - 1 ? b.len : cap - 1] = 0;
    if (*needed > cap)
        return coder_fail(CODER_ERR_BUFFER_TOO_SMALL, "coder_chat_apply: needs %zu bytes, cap %zu",
                          *needed, cap);
    return CODER_OK;
}

coder_status prompt_chat_tokens(const coder_model *m, int32_t format, const coder_chat_message *msgs,
                                size_t n_msgs, unsigned flags, int32_t *tokens, size_t cap,
                                size_t *n_tokens) {
    if (!n_tokens) return coder_fail(CODER_ERR_INVALID_ARG, "coder_chat_tokens: n_tokens is NULL");
    if (!tokens && cap > 0) return coder_fail(CODER_ERR_INVALID_ARG, "coder_chat_tokens: tokens is NULL with cap %zu", cap);
    TRY(prompt_check(m, &format, msgs, n_msgs, flags));
    prompt_build b = {.tok = m->tok, .tokens_mode = true, .ids = tokens, .cap = cap};
    const tokenizer_special *sp = tokenizer_specials(m->tok);
    if (sp->add_bos && sp->bos >= 0) prompt_build_id(&b, sp->bos);
    prompt_render(&b, format, msgs, n_msgs, flags);
    coder_mfree(b.run);
    if (b.st != CODER_OK) return b.st;
    *n_tokens = b.len;
    if (b.len > cap)
        return coder_fail(CODER_ERR_BUFFER_TOO_SMALL, "coder_chat_tokens: needs %zu tokens, cap %zu",
                          b.len, cap);
    return CODER_OK;
}

/* ---- stop sets ---------------------------------------------------------------------------- */

static void stop_add(int32_t id, int32_t *out, size_t cap, size_t *n) {
    if (id < 0) return;
    for (size_t i = 0; i < *n && i < cap; i++)
        if (out[i] == id) return;
    if (*n < cap) out[*n] = id;
    (*n)++;
}

size_t prompt_stop_tokens(const coder_model *m, int32_t format, int32_t *out, size_t cap) {
    const tokenizer *tok = m->tok;
    size_t n = 0;
    int32_t nv = tokenizer_n_vocab(tok);
    for (int32_t id = 0; id < nv; id++)
        if (tokenizer_is_eog(tok, id)) stop_add(id, out, cap, &n);
    static const char *turn_end[] = {"", "<|im_end|>", "<|im_end|>", "<|eot_id|>", "<|EOT|>", "</s>", ""};
    if (format >= CODER_CHAT_CHATML && format <= CODER_CHAT_RAW) {
        const char *t = turn_end[format];
        if (*t) stop_add(tokenizer_find(tok, t, strlen(t)), out, cap, &n);
    } else if (format < 0) {
        prompt_fim_ids f = prompt_fim_lookup(tok);
        stop_add(f.pre, out, cap, &n);
        stop_add(f.suf, out, cap, &n);
        stop_add(f.mid, out, cap, &n);
        stop_add(f.eot, out, cap, &n);
        stop_add(f.repo, out, cap, &n);
        stop_add(f.file_sep, out, cap, &n);
    }
    return n;
}
