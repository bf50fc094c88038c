/* fuzz_tokenizer.c - libFuzzer target for the tokenizers and detokenizer, on real vocabularies
 * from refdata (qwen2: byte-level BPE; llama-spm: SentencePiece with byte fallback).
 * Input byte 0 picks the vocabulary (bit 0), the mode (bit 1) and the flags (bits 2-3); the rest is
 *   mode 0: text to tokenize. Oracles: the count is the same with a too-small buffer (and nothing
 *           is written past it); byte-level BPE without special parsing round-trips exactly.
 *   mode 1: token ids (4 bytes each, mapped to [-1, vocab+1]) to detokenize, whole and piece by
 *           piece through the streaming UTF-8 decoder (which must only emit valid UTF-8). */
#include <stdint.h>

#include "fuzz_common.h"
#include "tokenizer.h"
#include "unicode.h"

static coder_model *vocab[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    vocab[0] = fuzz_load_vocab("qwen2");
    vocab[1] = fuzz_load_vocab("llama-spm");
    return 0;
}

static int utf8_ok(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = p[i], len, cp, min;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
        else return 0;
        if (i + len > n) return 0;
        for (unsigned k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

static void encode(coder_model *m, int is_bpe, unsigned flags, const char *text, size_t len) {
    size_t cap = len + 8, n = 0, n_small = 0;
    int32_t *ids = malloc((cap + 1) * sizeof *ids);
    coder_status st = coder_tokenize(m, text, len, flags, ids, cap, &n);
    if (st == CODER_ERR_BUFFER_TOO_SMALL) abort();   /* at most one id per byte plus specials */
    fuzz_check_status(st, "coder_tokenize");
    if (st == CODER_OK && n > 0) {
        int32_t guard[2] = {-77, -77};
        coder_status s2 = coder_tokenize(m, text, len, flags, guard, 1, &n_small);
        if (n > 1 && (s2 != CODER_ERR_BUFFER_TOO_SMALL || n_small != n || guard[1] != -77)) abort();
        if (guard[0] != ids[0]) abort();
        size_t out_len = 0;
        char *out = malloc(len * 4 + 64);
        coder_status sd = coder_detokenize(m, ids, n, 0, out, len * 4 + 64, &out_len);
        fuzz_check_status(sd, "coder_detokenize");
        if (is_bpe && flags == 0 && (sd != CODER_OK || out_len != len || memcmp(out, text, len) != 0)) {
            fprintf(stderr, "fuzz: BPE round trip differs (%zu -> %zu bytes)\n", len, out_len);
            abort();
        }
        free(out);
    }
    free(ids);
}

static void detokenize(coder_model *m, const uint8_t *d, size_t size) {
    int32_t nv = 0;
    coder_model_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    coder_model_get_info(m, &info);
    nv = info.vocab_size;
    size_t n = size / 4;
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, d + 4 * i, 4);
        ids[i] = (int32_t)(v % (uint32_t)(nv + 3)) - 1;   /* -1 .. nv+1: some out of range */
    }
    unsigned flags = size & 1 ? CODER_DETOKENIZE_SPECIAL : 0;
    size_t len = 0;
    coder_status st = coder_detokenize(m, ids, n, flags, NULL, 0, &len);
    if (st != CODER_ERR_BUFFER_TOO_SMALL) fuzz_check_status(st, "coder_detokenize");
    if (st == CODER_ERR_BUFFER_TOO_SMALL || st == CODER_OK) {
        /* a buffer 3 bytes short: nothing written past it */
        size_t cap = len > 3 ? len - 3 : 0;
        char *buf = malloc(cap + 16);
        memset(buf, 0x5A, cap + 16);
        size_t len2 = 0;
        coder_status s2 = coder_detokenize(m, ids, n, flags, buf, cap, &len2);
        if (len2 != len || (len > 0 && s2 != CODER_ERR_BUFFER_TOO_SMALL)) abort();
        for (size_t i = cap; i < cap + 16; i++)
            if ((unsigned char)buf[i] != 0x5A) abort();
        free(buf);
    }
    /* piece by piece through the streaming decoder */
    utf8_stream us = {0};
    char piece[512], out[512 * 4 + 16];
    for (size_t i = 0; i < n; i++) {
        size_t pl = 0;
        coder_status sp = coder_token_to_piece(m, ids[i], flags, piece, sizeof piece, &pl);
        if (sp != CODER_ERR_BUFFER_TOO_SMALL) fuzz_check_status(sp, "coder_token_to_piece");
        if (sp != CODER_OK) {
            if ((ids[i] < 0 || ids[i] >= nv) != (sp == CODER_ERR_INVALID_ARG)) abort();
            continue;
        }
        size_t w = utf8_stream_push(&us, piece, pl, out);
        if (!utf8_ok((unsigned char *)out, w)) abort();
    }
    size_t w = utf8_stream_flush(&us, out);
    if (!utf8_ok((unsigned char *)out, w)) abort();
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int which = data[0] & 1, mode = (data[0] >> 1) & 1;
    unsigned flags = (data[0] >> 2) & 3;   /* ADD_SPECIAL = 1, PARSE_SPECIAL = 2 */
    if (mode == 0) encode(vocab[which], which == 0, flags, (const char *)data + 1, size - 1);
    else detokenize(vocab[which], data + 1, size - 1);
    return 0;
}
