/* test_tokenizer_vocab.c - llama.cpp's tokenizer vectors (refdata/vocab/NAME.gguf.inp/.out) for all
 * nine vocabularies, and the prompt_tokens of the refdata logits runs. Independent reference:
 * ids produced by llama.cpp. */
#include <stdint.h>

#include "gguf.h"
#include "test.h"
#include "tokenizer.h"

static const char *const vocab_names[] = {"qwen2", "qwen3", "llama-bpe", "llama-spm", "deepseek-coder",
                                          "deepseek-llm", "gpt-2", "starcoder", "phi-3"};

static int total_vectors;

/* Runs one vocabulary's vectors; returns the number of failures (details in *msg). */
static int run_vocab(const char *dir, const char *name, int *n_run, char *msg, size_t msg_cap) {
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf", dir, name);
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    msg[0] = 0;
    if (gguf_open(path, NULL, &f) != CODER_OK || tokenizer_load(f, &t) != CODER_OK) {
        snprintf(msg, msg_cap, "%s: load failed: %s", name, coder_last_error());
        gguf_close(f);
        return 1;
    }
    size_t in_len, out_len;
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf.inp", dir, name);
    char *inp = test_read_file(path, &in_len);
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf.out", dir, name);
    char *outp = test_read_file(path, &out_len);
    int fails = 0;
    *n_run = 0;
    const char *marker = "\n__ggml_vocab_test__\n";
    char *p = inp, *q = outp;
    while (p && q && *p) {
        char *e = strstr(p, marker);
        if (!e) break;
        char *qe = strchr(q, '\n');
        if (!qe) break;
        *qe = 0;
        /* expected ids */
        int32_t want[4096];
        size_t nw = 0;
        for (char *s = q; *s;) {
            char *end;
            long v = strtol(s, &end, 10);
            if (end == s) break;
            want[nw++] = (int32_t)v;
            s = end;
        }
        int32_t got[4096];
        size_t ng = 0;
        coder_status st = tokenizer_encode(t, p, (size_t)(e - p), 0, got, 4096, &ng);
        bool ok = st == CODER_OK && ng == nw && memcmp(got, want, nw * sizeof(int32_t)) == 0;
        (*n_run)++;
        if (!ok) {
            if (!fails) {
                char esc[128];
                int o = snprintf(msg, msg_cap, "%s: input '%s' got", name, coder_escape(p, (size_t)(e - p), esc, sizeof esc));
                for (size_t i = 0; i < ng && i < 24 && o < (int)msg_cap - 16; i++) o += snprintf(msg + o, msg_cap - (size_t)o, " %d", got[i]);
                o += snprintf(msg + o, msg_cap - (size_t)o, " want");
                for (size_t i = 0; i < nw && i < 24 && o < (int)msg_cap - 16; i++) o += snprintf(msg + o, msg_cap - (size_t)o, " %d", want[i]);
            }
            fails++;
        }
        p = e + strlen(marker);
        q = qe + 1;
    }
    free(inp);
    free(outp);
    tokenizer_free(t);
    gguf_close(f);
    return fails;
}

TEST(vocab_vectors) {
    const char *dir = test_refdata();
    if (!dir) SKIP("no refdata (set CODER_REFDATA)");
    char msg[900];
    for (size_t i = 0; i < sizeof vocab_names / sizeof vocab_names[0]; i++) {
        int n = 0, fails = run_vocab(dir, vocab_names[i], &n, msg, sizeof msg);
        printf("  vocab %-15s %d vectors, %d failed\n", vocab_names[i], n, fails);
        total_vectors += n;
        CHECK_MSG(fails == 0, "%s", msg);
        CHECK_MSG(n == 46, "%s: %d vectors read", vocab_names[i], n);
    }
}

/* Parses the integers of the JSON array after "key": in js into out; returns the count or -1. */
static long json_int_array(const char *js, const char *key, int32_t *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(js, pat);
    if (!p || !(p = strchr(p, '['))) return -1;
    size_t n = 0;
    for (p++; *p && *p != ']';) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) { p++; continue; }
        if (n < cap) out[n] = (int32_t)v;
        n++;
        p = end;
    }
    return (long)n;
}

/* Every logits run's prompt_tokens, tokenized from the prompt file with ADD_SPECIAL|PARSE_SPECIAL. */
TEST(prompt_tokens) {
    const char *dir = test_refdata();
    if (!dir) SKIP("no refdata (set CODER_REFDATA)");
    static const struct { const char *model, *file, *variants[6]; } runs[] = {
        {"tiny-llama", "tiny-llama-f16.gguf", {"f32", "f16", "q4_k_m", "q4_k_m-deq-f32", "f32-kvf16-fa", "q4_k_m-kvf16-fa"}},
        {"tiny-qwen2", "tiny-qwen2-q4_k_m.gguf", {"q4_k_m", "q4_k_m-deq-f32", "q4_k_m-kvf16-fa", NULL, NULL, NULL}},
    };
    static const char *const prompts[] = {"p1_code", "p2_chatml", "p3_text", "p4_long"};
    int checked = 0;
    for (size_t r = 0; r < 2; r++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/models/%s", dir, runs[r].file);
        gguf_file *f = NULL;
        tokenizer *t = NULL;
        CHECK_OK(gguf_open(path, NULL, &f));
        coder_status st = tokenizer_load(f, &t);
        if (st != CODER_OK) gguf_close(f);
        CHECK_OK(st);
        for (size_t v = 0; v < 6 && runs[r].variants[v]; v++) {
            for (size_t k = 0; k < 4; k++) {
                snprintf(path, sizeof path, "%s/logits/%s/%s/%s.json", dir, runs[r].model, runs[r].variants[v], prompts[k]);
                char *js = test_read_file(path, NULL);
                if (!js) continue; /* kvf16-fa variants have p1_code only */
                static int32_t want[4096], got[4096];
                long nw = json_int_array(js, "prompt_tokens", want, 4096);
                free(js);
                snprintf(path, sizeof path, "%s/logits/prompts/%s.txt", dir, prompts[k]);
                size_t len;
                char *txt = test_read_file(path, &len);
                size_t ng = 0;
                st = txt ? tokenizer_encode(t, txt, len, CODER_TOKENIZE_ADD_SPECIAL | CODER_TOKENIZE_PARSE_SPECIAL, got, 4096, &ng)
                         : CODER_ERR_IO;
                free(txt);
                bool ok = st == CODER_OK && nw >= 0 && ng == (size_t)nw && memcmp(got, want, ng * sizeof *got) == 0;
                if (!ok) { tokenizer_free(t); gguf_close(f); }
                CHECK_MSG(ok, "%s/%s/%s: got %zu tokens (status %d), want %ld", runs[r].model, runs[r].variants[v],
                          prompts[k], ng, (int)st, nw);
                checked++;
            }
        }
        tokenizer_free(t);
        gguf_close(f);
    }
    printf("  prompt_tokens: %d runs reproduced exactly\n", checked);
    CHECK_MSG(checked == 27, "%d runs found, expected 27 (18 tiny-llama + 9 tiny-qwen2)", checked);
}

int main(void) {
    RUN(vocab_vectors);
    RUN(prompt_tokens);
    return test_summary();
}
