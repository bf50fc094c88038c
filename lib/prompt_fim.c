/* prompt_fim.c - fill-in-the-middle prompts as token ids (FORMATS.md 5.3 and 5.6). The special
 * tokens are looked up in the vocabulary by text (metadata fim_* ids take precedence), so the same
 * code serves every size of a family. Caller text (prefix, suffix, paths, file contents) is always
 * tokenized without parse_special: it cannot inject control tokens.
 *
 *   Qwen2.5-Coder  <|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>        (no BOS)
 *     repo-level   <|repo_name|>R\n<|file_sep|>path\ncontent\n ... <|file_sep|>target\n + the above
 *   StarCoder      <fim_prefix>P<fim_suffix>S<fim_middle>
 *   DeepSeek-Coder BOS <｜fim▁begin｜>P<｜fim▁hole｜>S<｜fim▁end｜>
 *   CodeLlama      BOS ▁<PRE> SP(P) ▁<SUF> SP_no_dummy_space(S) ▁<MID>                        */
#include <string.h>

#include "prompt.h"

static int32_t fim_find(const tokenizer *tok, const char *text) {
    return tokenizer_find(tok, text, strlen(text));
}

prompt_fim_ids prompt_fim_lookup(const tokenizer *tok) {
    prompt_fim_ids f = {PROMPT_FIM_NONE, -1, -1, -1, -1, -1, -1};
    static const struct {
        prompt_fim_family family;
        const char *pre, *suf, *mid, *repo, *sep, *eot;
    } families[] = {
        {PROMPT_FIM_QWEN, "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|repo_name|>",
         "<|file_sep|>", "<|fim_pad|>"},
        {PROMPT_FIM_STARCODER, "<fim_prefix>", "<fim_suffix>", "<fim_middle>", NULL, NULL, "<fim_pad>"},
        {PROMPT_FIM_DEEPSEEK, "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>",
         "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>",
         "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", NULL, NULL, NULL},
        {PROMPT_FIM_CODELLAMA, "\xE2\x96\x81<PRE>", "\xE2\x96\x81<SUF>", "\xE2\x96\x81<MID>", NULL, NULL,
         "\xE2\x96\x81<EOT>"},
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        int32_t pre = fim_find(tok, families[i].pre), suf = fim_find(tok, families[i].suf),
                mid = fim_find(tok, families[i].mid);
        if (pre < 0 || suf < 0 || mid < 0) continue;
        f.family = families[i].family;
        f.pre = pre;
        f.suf = suf;
        f.mid = mid;
        if (families[i].repo) f.repo = fim_find(tok, families[i].repo);
        if (families[i].sep) f.file_sep = fim_find(tok, families[i].sep);
        if (families[i].eot) f.eot = fim_find(tok, families[i].eot);
        break;
    }
    /* Metadata ids win when present (they describe the model, the texts are our guess). */
    const tokenizer_special *sp = tokenizer_specials(tok);
    if (sp->fim_pre >= 0 && sp->fim_suf >= 0 && sp->fim_mid >= 0) {
        if (f.family == PROMPT_FIM_NONE) f.family = PROMPT_FIM_QWEN; /* plain PSM order */
        f.pre = sp->fim_pre;
        f.suf = sp->fim_suf;
        f.mid = sp->fim_mid;
        if (sp->fim_rep >= 0) f.repo = sp->fim_rep;
        if (sp->fim_sep >= 0) f.file_sep = sp->fim_sep;
    }
    return f;
}

/* The SentencePiece dummy-prefix space must not precede the suffix (CodeLlama's
 * encode_infilling): encode "☺" + s and drop the tokens that spell the (space-prefixed) "☺". If
 * that boundary does not fall on a token boundary, fall back to the plain encoding. */
static void fim_suffix_no_space(prompt_build *b, const char *s) {
    prompt_build_flush(b);
    if (b->st != CODER_OK) return;
    size_t n = strlen(s);
    if (!tokenizer_specials(b->tok)->add_space_prefix || n == 0) {
        prompt_build_str(b, s);
        prompt_build_flush(b);
        return;
    }
    static const char smile[] = "\xE2\x98\xBA"; /* U+263A */
    char *text = coder_malloc(n + 3);
    size_t cap = n + 8;
    int32_t *ids = coder_malloc(cap * sizeof *ids);
    size_t n_ids = 0;
    coder_status st = (!text || !ids) ? coder_fail(CODER_ERR_NOMEM, "FIM: suffix of %zu bytes", n) : CODER_OK;
    if (st == CODER_OK) {
        memcpy(text, smile, 3);
        memcpy(text + 3, s, n);
        st = tokenizer_encode(b->tok, text, n + 3, 0, ids, cap, &n_ids);
        if (st == CODER_ERR_BUFFER_TOO_SMALL) {
            int32_t *bigger = coder_realloc(ids, n_ids * sizeof *ids);
            if (!bigger) st = coder_fail(CODER_ERR_NOMEM, "FIM: %zu suffix tokens", n_ids);
            else {
                ids = bigger;
                cap = n_ids;
                st = tokenizer_encode(b->tok, text, n + 3, 0, ids, cap, &n_ids);
            }
        }
    }
    /* Skip the leading tokens whose bytes spell " ☺" (or "☺"). */
    size_t skip = 0, got = 0;
    char piece[64], acc[8];
    while (st == CODER_OK && skip < n_ids && got < 4) {
        size_t len = 0;
        if (tokenizer_piece(b->tok, ids[skip], 0, piece, sizeof piece, &len) != CODER_OK || got + len > 4) break;
        memcpy(acc + got, piece, len);
        got += len;
        skip++;
    }
    bool clean = st == CODER_OK && ((got == 4 && !memcmp(acc, " \xE2\x98\xBA", 4)) ||
                                    (got == 3 && !memcmp(acc, smile, 3)));
    if (st != CODER_OK) b->st = st;
    else if (!clean) prompt_build_str(b, s), prompt_build_flush(b);
    else for (size_t i = skip; i < n_ids; i++) prompt_build_id(b, ids[i]);
    coder_mfree(text);
    coder_mfree(ids);
}

coder_status prompt_fim_tokens(const coder_model *m, const char *prefix, const char *suffix,
                               const char *repo_name, const coder_fim_file *files, size_t n_files,
                               const char *target_path, int32_t *tokens, size_t cap, size_t *n_tokens) {
    if (!m) return coder_fail(CODER_ERR_INVALID_ARG, "coder_fim_tokens: model is NULL");
    if (!n_tokens) return coder_fail(CODER_ERR_INVALID_ARG, "coder_fim_tokens: n_tokens is NULL");
    if (!tokens && cap > 0) return coder_fail(CODER_ERR_INVALID_ARG, "coder_fim_tokens: tokens is NULL with cap %zu", cap);
    if (!files && n_files > 0) return coder_fail(CODER_ERR_INVALID_ARG, "coder_fim_tokens: files is NULL with n_files %zu", n_files);
    if (!prefix) prefix = "";
    if (!suffix) suffix = "";
    for (size_t i = 0; i < n_files; i++)
        if (!files[i].path || !files[i].content)
            return coder_fail(CODER_ERR_INVALID_ARG, "coder_fim_tokens: files[%zu].%s is NULL", i,
                              files[i].path ? "content" : "path");
    prompt_fim_ids f = prompt_fim_lookup(m->tok);
    if (f.family == PROMPT_FIM_NONE)
        return coder_fail(CODER_ERR_UNSUPPORTED, "coder_fim_tokens: the vocabulary has no "
                          "fill-in-the-middle tokens (looked for Qwen, StarCoder, DeepSeek-Coder and "
                          "CodeLlama markers)");
    bool repo_level = repo_name || n_files > 0;
    if (repo_level && (f.repo < 0 || f.file_sep < 0))
        return coder_fail(CODER_ERR_UNSUPPORTED, "coder_fim_tokens: repository-level FIM needs "
                          "<|repo_name|> and <|file_sep|> tokens (Qwen2.5-Coder vocabularies)");
    if (repo_level && !target_path)
        return coder_fail(CODER_ERR_INVALID_ARG, "coder_fim_tokens: target_path is NULL with a "
                          "repository-level prompt");

    prompt_build b = {.tok = m->tok, .tokens_mode = true, .ids = tokens, .cap = cap};
    const tokenizer_special *sp = tokenizer_specials(m->tok);
    /* DeepSeek and CodeLlama are trained with BOS in front (add_bos in their metadata); Qwen never. */
    if ((f.family == PROMPT_FIM_DEEPSEEK || f.family == PROMPT_FIM_CODELLAMA) && sp->add_bos && sp->bos >= 0)
        prompt_build_id(&b, sp->bos);
    if (repo_level) {
        if (repo_name) {
            prompt_build_id(&b, f.repo);
            prompt_build_str(&b, repo_name);
            prompt_build_str(&b, "\n");
        }
        for (size_t i = 0; i < n_files; i++) {
            prompt_build_id(&b, f.file_sep);
            prompt_build_str(&b, files[i].path);
            prompt_build_str(&b, "\n");
            prompt_build_str(&b, files[i].content);
            prompt_build_str(&b, "\n");
        }
        prompt_build_id(&b, f.file_sep);
        prompt_build_str(&b, target_path);
        prompt_build_str(&b, "\n");
    }
    prompt_build_id(&b, f.pre);
    prompt_build_str(&b, prefix);
    prompt_build_id(&b, f.suf);
    if (f.family == PROMPT_FIM_CODELLAMA) fim_suffix_no_space(&b, suffix);
    else prompt_build_str(&b, suffix);
    prompt_build_id(&b, f.mid);
    prompt_build_flush(&b);
    coder_mfree(b.run);
    if (b.st != CODER_OK) return b.st;
    *n_tokens = b.len;
    if (b.len > cap)
        return coder_fail(CODER_ERR_BUFFER_TOO_SMALL, "coder_fim_tokens: needs %zu tokens, cap %zu",
                          b.len, cap);
    return CODER_OK;
}
