/* shim.c - see shim.h. */
#include <string.h>
#include "shim.h"
#include "_cgo_export.h"

static int fail(int st, char **err) {
    if (st != CODER_OK && err) *err = strdup(coder_last_error());
    return st;
}

int go_model_load(const char *path, int use_mmap, int n_gpu_layers, int n_threads, int validate,
                  int vocab_only, coder_model **out, char **err) {
    coder_model_params p;
    coder_model_params_init(&p);
    p.use_mmap = use_mmap;
    p.n_gpu_layers = n_gpu_layers;
    p.n_threads = n_threads;
    p.validate_weights = validate;
    p.vocab_only = vocab_only;
    return fail(coder_model_load(path, &p, out), err);
}

int go_model_free(coder_model *m, char **err) { return fail(coder_model_free(m), err); }

int go_model_info(const coder_model *m, coder_model_info *info, char **err) {
    info->size = sizeof *info;
    return fail(coder_model_get_info(m, info), err);
}

int go_session_new(coder_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_threads, int32_t kv_type,
                   coder_session **out, char **err) {
    coder_session_params p;
    coder_session_params_init(&p);
    if (n_ctx > 0) p.n_ctx = n_ctx;
    if (n_batch > 0) p.n_batch = n_batch;
    if (n_threads > 0) p.n_threads = n_threads;
    if (kv_type >= 0) p.kv_type = kv_type;
    return fail(coder_session_new(m, &p, out), err);
}

int go_session_reset(coder_session *s, char **err) { return fail(coder_session_reset(s), err); }

int go_tokenize(const coder_model *m, const char *text, size_t len, unsigned flags, int32_t *toks,
                size_t cap, size_t *n, char **err) {
    return fail(coder_tokenize(m, text, len, flags, toks, cap, n), err);
}

int go_detokenize(const coder_model *m, const int32_t *toks, size_t n, unsigned flags, char *buf,
                  size_t cap, size_t *len, char **err) {
    return fail(coder_detokenize(m, toks, n, flags, buf, cap, len), err);
}

int go_chat_tokens(const coder_model *m, int format, const coder_chat_message *msgs, size_t n_msgs,
                   unsigned flags, int32_t *toks, size_t cap, size_t *n, char **err) {
    return fail(coder_chat_tokens(m, (coder_chat_format)format, msgs, n_msgs, flags, toks, cap, n), err);
}

int go_fim_tokens(const coder_model *m, const char *prefix, const char *suffix, const char *repo,
                  const coder_fim_file *files, size_t n_files, const char *target, int32_t *toks,
                  size_t cap, size_t *n, char **err) {
    return fail(coder_fim_tokens(m, prefix, suffix, repo, files, n_files, target, toks, cap, n), err);
}

static int go_piece_cb(const char *piece, size_t len, void *user_data) {
    return goPiece((char *)piece, len, (uintptr_t)user_data);
}

int go_generate(coder_session *s, const char *prompt, size_t len, const int32_t *toks, size_t n_toks,
                const coder_gen_params *gp, uintptr_t handle, coder_result *r, char **err) {
    coder_gen_params p = *gp;
    p.on_piece = handle ? go_piece_cb : NULL;
    p.user_data = (void *)handle;
    int st = prompt ? coder_generate(s, prompt, len, &p, r) : coder_generate_tokens(s, toks, n_toks, &p, r);
    return fail(st, err);
}
