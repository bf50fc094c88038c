/* api_prompt.c - public prompt-format entry points (chat rendering and fill-in-the-middle). The
 * work is in prompt.c / prompt_fim.c; these check the handle and forward. */
#include "prompt.h"

CODER_EXPORT coder_status coder_chat_apply(const coder_model *model, coder_chat_format format,
                                           const coder_chat_message *messages, size_t n_messages,
                                           unsigned flags, char *buf, size_t cap, size_t *needed) {
    if (!model) return coder_fail(CODER_ERR_INVALID_ARG, "coder_chat_apply: model is NULL");
    return prompt_chat_render(model, (int32_t)format, messages, n_messages, flags, buf, cap, needed);
}

CODER_EXPORT coder_status coder_fim_tokens(const coder_model *model, const char *prefix,
                                           const char *suffix, const char *repo_name,
                                           const coder_fim_file *files, size_t n_files,
                                           const char *target_path, int32_t *tokens, size_t cap,
                                           size_t *n_tokens) {
    if (!model) return coder_fail(CODER_ERR_INVALID_ARG, "coder_fim_tokens: model is NULL");
    return prompt_fim_tokens(model, prefix, suffix, repo_name, files, n_files, target_path, tokens,
                             cap, n_tokens);
}

CODER_EXPORT coder_status coder_chat_tokens(const coder_model *model, coder_chat_format format,
                                            const coder_chat_message *messages, size_t n_messages,
                                            unsigned flags, int32_t *tokens, size_t cap,
                                            size_t *n_tokens) {
    if (!model) return coder_fail(CODER_ERR_INVALID_ARG, "coder_chat_tokens: model is NULL");
    return prompt_chat_tokens(model, (int32_t)format, messages, n_messages, flags, tokens, cap,
                              n_tokens);
}
