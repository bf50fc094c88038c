/* shim.h - C helpers of the Go binding. Each wrapper reads coder_last_error() on the thread that
 * made the call (it is thread-local, and a goroutine may move between threads between two cgo
 * calls) and hands back a malloc'd copy in *err, which the Go side frees. */
#ifndef CODERINFER_GO_SHIM_H
#define CODERINFER_GO_SHIM_H
#include <stdint.h>
#include <stdlib.h>
#include <coderinfer.h>

int go_model_load(const char *path, int use_mmap, int n_gpu_layers, int n_threads, int validate,
                  int vocab_only, coder_model **out, char **err);
int go_model_free(coder_model *m, char **err);
int go_model_info(const coder_model *m, coder_model_info *info, char **err);
int go_session_new(coder_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_threads, int32_t kv_type,
                   coder_session **out, char **err);
int go_session_reset(coder_session *s, char **err);
int go_tokenize(const coder_model *m, const char *text, size_t len, unsigned flags, int32_t *toks,
                size_t cap, size_t *n, char **err);
int go_detokenize(const coder_model *m, const int32_t *toks, size_t n, unsigned flags, char *buf,
                  size_t cap, size_t *len, char **err);
int go_chat_tokens(const coder_model *m, int format, const coder_chat_message *msgs, size_t n_msgs,
                   unsigned flags, int32_t *toks, size_t cap, size_t *n, char **err);
int go_fim_tokens(const coder_model *m, const char *prefix, const char *suffix, const char *repo,
                  const coder_fim_file *files, size_t n_files, const char *target, int32_t *toks,
                  size_t cap, size_t *n, char **err);
/* Runs coder_generate (prompt != NULL) or coder_generate_tokens (toks). *gp is copied; when
 * handle != 0 the copy's on_piece forwards every piece to the Go function goPiece(handle). */
int go_generate(coder_session *s, const char *prompt, size_t len, const int32_t *toks, size_t n_toks,
                const coder_gen_params *gp, uintptr_t handle, coder_result *r, char **err);
#endif
