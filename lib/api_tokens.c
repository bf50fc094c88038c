/* api_tokens.c - public token entry points: argument checks, then the model's tokenizer. */
#include "model.h"

static coder_status api_tokens_check(const coder_model *model, const char *fn) {
    if (!model) return coder_fail(CODER_ERR_INVALID_ARG, "%s: model is NULL", fn);
    if (!model->tok) return coder_fail(CODER_ERR_STATE, "%s: the model has no tokenizer", fn);
    return CODER_OK;
}

CODER_EXPORT coder_status coder_tokenize(const coder_model *model, const char *text, size_t len, unsigned flags,
                                         int32_t *tokens, size_t cap, size_t *n_tokens) {
    TRY(api_tokens_check(model, "coder_tokenize"));
    if (!n_tokens) return coder_fail(CODER_ERR_INVALID_ARG, "coder_tokenize: n_tokens is NULL");
    if (!text && len) return coder_fail(CODER_ERR_INVALID_ARG, "coder_tokenize: text is NULL with len %zu", len);
    if (!tokens && cap) return coder_fail(CODER_ERR_INVALID_ARG, "coder_tokenize: tokens is NULL with cap %zu", cap);
    return tokenizer_encode(model->tok, text, len, flags, tokens, cap, n_tokens);
}

CODER_EXPORT coder_status coder_detokenize(const coder_model *model, const int32_t *tokens, size_t n_tokens,
                                           unsigned flags, char *buf, size_t cap, size_t *len) {
    TRY(api_tokens_check(model, "coder_detokenize"));
    if (!len) return coder_fail(CODER_ERR_INVALID_ARG, "coder_detokenize: len is NULL");
    if (!tokens && n_tokens) return coder_fail(CODER_ERR_INVALID_ARG, "coder_detokenize: tokens is NULL");
    if (!buf && cap) return coder_fail(CODER_ERR_INVALID_ARG, "coder_detokenize: buf is NULL with cap %zu", cap);
    return tokenizer_decode(model->tok, tokens, n_tokens, flags, buf, cap, len);
}

CODER_EXPORT coder_status coder_token_to_piece(const coder_model *model, int32_t token, unsigned flags, char *buf,
                                               size_t cap, size_t *len) {
    TRY(api_tokens_check(model, "coder_token_to_piece"));
    if (!len) return coder_fail(CODER_ERR_INVALID_ARG, "coder_token_to_piece: len is NULL");
    if (!buf && cap) return coder_fail(CODER_ERR_INVALID_ARG, "coder_token_to_piece: buf is NULL with cap %zu", cap);
    return tokenizer_piece(model->tok, token, flags, buf, cap, len);
}

CODER_EXPORT int coder_token_is_eog(const coder_model *model, int32_t token) {
    return model && model->tok && tokenizer_is_eog(model->tok, token) ? 1 : 0;
}
