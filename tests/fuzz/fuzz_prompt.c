/* fuzz_prompt.c - libFuzzer target for the chat and fill-in-the-middle prompt builders and the
 * chat-template recogniser, on refdata vocabularies (qwen2: ChatML + Qwen FIM; deepseek-coder:
 * its own chat and FIM tokens; llama-spm: Llama-2 format, no FIM).
 * Input: byte 0 = vocabulary (% 3), byte 1 = format (% 7, 0 = the model's own), byte 2 = flags;
 * the rest is split at 0x1F into fields: (role, content) pairs for the chat calls; prefix, suffix,
 * repo name, then (path, content) pairs for FIM. The whole rest is also fed to the template
 * recogniser as a chat template. Oracles: statuses (fuzz_common.h); the text render's length is
 * the same with every buffer size and nothing is written past the buffer; chat_tokens' count is
 * the same with a too-small buffer. */
#include <stdint.h>

#include "fuzz_common.h"
#include "prompt.h"

static coder_model *vocab[3];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    vocab[0] = fuzz_load_vocab("qwen2");
    vocab[1] = fuzz_load_vocab("deepseek-coder");
    vocab[2] = fuzz_load_vocab("llama-spm");
    return 0;
}

#define MAX_FIELDS 24

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    coder_model *m = vocab[data[0] % 3];
    coder_chat_format fmt = (coder_chat_format)(data[1] % 7);
    unsigned flags = data[2] & 3;
    const char *rest = (const char *)data + 3;
    size_t rlen = size - 3;
    (void)prompt_detect_template(rest, rlen);

    /* fields: NUL-terminated copies (content stops at an embedded NUL, as for any C string) */
    char *copy = malloc(rlen + 1);
    memcpy(copy, rest, rlen);
    copy[rlen] = 0;
    char *field[MAX_FIELDS];
    size_t nf = 0;
    field[nf++] = copy;
    for (size_t i = 0; i < rlen && nf < MAX_FIELDS; i++)
        if (copy[i] == 0x1F) {
            copy[i] = 0;
            field[nf++] = copy + i + 1;
        }

    coder_chat_message msgs[MAX_FIELDS / 2];
    size_t nm = nf / 2;
    for (size_t i = 0; i < nm; i++) msgs[i] = (coder_chat_message){field[2 * i], field[2 * i + 1]};

    size_t need = 0;
    coder_status st = coder_chat_apply(m, fmt, msgs, nm, flags, NULL, 0, &need);
    if (st != CODER_ERR_BUFFER_TOO_SMALL) fuzz_check_status(st, "coder_chat_apply");
    if (st == CODER_ERR_BUFFER_TOO_SMALL || st == CODER_OK) {
        size_t cap = need > 2 ? need - 2 : 0, need2 = 0;
        char *buf = malloc(need + 16);
        memset(buf, 0x5A, need + 16);
        coder_status s2 = coder_chat_apply(m, fmt, msgs, nm, flags, buf, cap, &need2);
        if (need2 != need || (need > cap && s2 != CODER_ERR_BUFFER_TOO_SMALL)) abort();
        for (size_t i = cap; i < need + 16; i++)
            if ((unsigned char)buf[i] != 0x5A) abort();
        s2 = coder_chat_apply(m, fmt, msgs, nm, flags, buf, need, &need2);
        if (s2 != CODER_OK || need2 != need || strlen(buf) + 1 != need) abort();
        free(buf);
    }

    size_t nt = 0, nt2 = 0;
    st = coder_chat_tokens(m, fmt, msgs, nm, flags, NULL, 0, &nt);
    if (st != CODER_ERR_BUFFER_TOO_SMALL) fuzz_check_status(st, "coder_chat_tokens");
    if (st == CODER_ERR_BUFFER_TOO_SMALL || st == CODER_OK) {
        int32_t *ids = malloc((nt + 1) * sizeof *ids);
        st = coder_chat_tokens(m, fmt, msgs, nm, flags, ids, nt, &nt2);
        if (st != CODER_OK || nt2 != nt) abort();
        free(ids);
    }

    coder_fim_file files[MAX_FIELDS / 2];
    size_t nfiles = nf > 3 ? (nf - 3) / 2 : 0;
    for (size_t i = 0; i < nfiles; i++) files[i] = (coder_fim_file){field[3 + 2 * i], field[4 + 2 * i]};
    const char *prefix = field[0], *suffix = nf > 1 ? field[1] : "", *repo = nf > 2 && (flags & 1) ? field[2] : NULL;
    const char *target = nf > 2 && (flags & 2) ? field[2] : NULL;
    st = coder_fim_tokens(m, prefix, suffix, repo, nfiles ? files : NULL, nfiles, target, NULL, 0, &nt);
    if (st != CODER_ERR_BUFFER_TOO_SMALL) fuzz_check_status(st, "coder_fim_tokens");
    if (st == CODER_ERR_BUFFER_TOO_SMALL || st == CODER_OK) {
        int32_t *ids = malloc((nt + 1) * sizeof *ids);
        st = coder_fim_tokens(m, prefix, suffix, repo, nfiles ? files : NULL, nfiles, target, ids, nt, &nt2);
        if (st != CODER_OK || nt2 != nt) abort();
        free(ids);
    }
    free(copy);
    return 0;
}
