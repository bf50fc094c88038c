/* test_tokenizer_bad.c - BAD_INPUTS.md group E (tokenizer metadata): vocabularies crafted with the
 * GGUF writer, each expecting its specific status and a message naming the key. The base
 * vocabulary is tiny and hand-built: 256 byte tokens (GPT-2 mapped), "ab" from merge "a b",
 * and <|end|> as CONTROL, so its good form's behaviour is obvious ("ab" -> one token). */
#include <stdint.h>
#include <unistd.h>

#include "gguf.h"
#include "test.h"
#include "tokenizer.h"
#include "unicode.h"

#define NV 258 /* 256 bytes + "ab" + "<|end|>" */

/* What to break in the base vocabulary. */
typedef struct bad {
    const char *model, *pre;          /* NULL: "gpt2" / "qwen2"; "-" omits the key           */
    int tokens;                       /* 0 normal, 1 missing, 2 empty, 3 INT32 array, 4 dup, 5 huge */
    int scores;                       /* 0 none, 1 short, 2 INT32 elements                   */
    int types;                        /* 0 normal, 1 one too many                            */
    bool set_bos;                     /* write bos (as INT32 when negative)                  */
    int64_t bos;
    const char *merge;                /* NULL: "a b"                                         */
    bool charsmap;                    /* add a 2-byte tokenizer.ggml.precompiled_charsmap    */
} bad;

static char tok_text[NV][8];
static char *huge_token;

static coder_status build(const bad *b, tokenizer **out, const char *path) {
    gguf_writer *w = NULL;
    gguf_str toks[NV];
    int32_t types[NV + 1];
    float scores[NV];
    for (int i = 0; i < 256; i++) {
        int l = unicode_encode(unicode_byte_to_cpt((uint8_t)i), tok_text[i]);
        toks[i] = (gguf_str){tok_text[i], (uint64_t)l};
        types[i] = 1;
    }
    toks[256] = (gguf_str){"ab", 2};
    types[256] = 1;
    toks[257] = (gguf_str){"<|end|>", 7};
    types[257] = 3;
    types[NV] = 1;
    for (int i = 0; i < NV; i++) scores[i] = 0;
    if (b->tokens == 4) toks[257] = (gguf_str){"ab", 2}; /* duplicate of token 256 */
    if (b->tokens == 5) toks[256] = (gguf_str){huge_token, 70000};
    coder_status st = gguf_writer_new(0, &w);
    if (st) return st;
    if (!b->model || strcmp(b->model, "-")) gguf_writer_set_str(w, "tokenizer.ggml.model", b->model ? b->model : "gpt2", strlen(b->model ? b->model : "gpt2"));
    if (!b->pre || strcmp(b->pre, "-")) gguf_writer_set_str(w, "tokenizer.ggml.pre", b->pre ? b->pre : "qwen2", strlen(b->pre ? b->pre : "qwen2"));
    if (b->tokens == 0 || b->tokens >= 4) gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", toks, NV);
    if (b->tokens == 2) gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", toks, 0);
    if (b->tokens == 3) gguf_writer_set_array(w, "tokenizer.ggml.tokens", GGUF_TYPE_INT32, types, NV);
    gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, b->types ? NV + 1 : NV);
    if (b->scores == 1) gguf_writer_set_array(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, NV - 1);
    if (b->scores == 2) gguf_writer_set_array(w, "tokenizer.ggml.scores", GGUF_TYPE_INT32, types, NV);
    if (b->set_bos) {
        if (b->bos < 0) gguf_writer_set_i32(w, "tokenizer.ggml.bos_token_id", (int32_t)b->bos);
        else gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)b->bos);
    }
    gguf_str merge = {b->merge ? b->merge : "a b", strlen(b->merge ? b->merge : "a b")};
    gguf_writer_set_str_array(w, "tokenizer.ggml.merges", &merge, 1);
    if (b->charsmap) gguf_writer_set_array(w, "tokenizer.ggml.precompiled_charsmap", GGUF_TYPE_UINT8, "\x01\x02", 2);
    st = gguf_writer_write_file(w, path);
    gguf_writer_free(w);
    if (st) return st;
    gguf_file *f = NULL;
    st = gguf_open(path, NULL, &f);
    if (st) return st;
    st = tokenizer_load(f, out);
    gguf_close(f);
    return st;
}

static char tmp_path[256];

#define BAD(name, want_status, want_text, ...)                                                    \
    TEST(name) {                                                                                   \
        bad b = {__VA_ARGS__};                                                   \
        tokenizer *t = NULL;                                                                       \
        coder_status st = build(&b, &t, tmp_path);                                                 \
        tokenizer_free(t);                                                                         \
        CHECK_STATUS(st, want_status);                                                             \
        CHECK_MSG(strstr(coder_last_error(), want_text) != NULL, "message '%s' lacks '%s'",        \
                  coder_last_error(), want_text);                                                  \
    }

BAD(e1_tokens_missing, CODER_ERR_FORMAT, "tokenizer.ggml.tokens", .tokens = 1)
BAD(e1_tokens_empty, CODER_ERR_FORMAT, "tokenizer.ggml.tokens", .tokens = 2)
BAD(e1_tokens_not_strings, CODER_ERR_FORMAT, "tokenizer.ggml.tokens", .tokens = 3)
BAD(e1_token_huge, CODER_ERR_FORMAT, "tokenizer.ggml.tokens[256]", .tokens = 5)
BAD(e2_scores_short, CODER_ERR_FORMAT, "tokenizer.ggml.scores", .scores = 1)
BAD(e2_scores_int, CODER_ERR_FORMAT, "tokenizer.ggml.scores", .scores = 2)
BAD(e2_types_long, CODER_ERR_FORMAT, "tokenizer.ggml.token_type", .types = 1)
BAD(e3_bos_too_big, CODER_ERR_FORMAT, "tokenizer.ggml.bos_token_id", .set_bos = true, .bos = NV)
BAD(e3_bos_negative, CODER_ERR_FORMAT, "tokenizer.ggml.bos_token_id", .set_bos = true, .bos = -1)
BAD(e4_merge_no_space, CODER_ERR_FORMAT, "tokenizer.ggml.merges[0]", .merge = "ab")
BAD(e4_merge_two_spaces, CODER_ERR_FORMAT, "tokenizer.ggml.merges[0]", .merge = "a  b")
BAD(e4_merge_unknown, CODER_ERR_FORMAT, "tokenizer.ggml.merges[0]", .merge = "a zz")
BAD(e6_charsmap_model, CODER_ERR_UNSUPPORTED, "tokenizer.ggml.model", .model = "t5", .charsmap = true)
BAD(e7_model_unknown, CODER_ERR_UNSUPPORTED, "tokenizer.ggml.model", .model = "bert")
BAD(e7_model_missing, CODER_ERR_FORMAT, "tokenizer.ggml.model", .model = "-")
BAD(e7_pre_unknown, CODER_ERR_UNSUPPORTED, "tokenizer.ggml.pre", .pre = "no-such-pre")

/* The good base vocabulary works, and duplicates are accepted (E1's documented handling: text
 * lookup gives the last id, as in llama.cpp). */
TEST(good_and_duplicates) {
    bad b = {0};
    tokenizer *t = NULL;
    CHECK_OK(build(&b, &t, tmp_path));
    int32_t ids[8];
    size_t n;
    coder_status st = tokenizer_encode(t, "ab<|end|>", 9, CODER_TOKENIZE_PARSE_SPECIAL, ids, 8, &n);
    bool ok = st == CODER_OK && n == 2 && ids[0] == 256 && ids[1] == 257 && tokenizer_is_eog(t, 257);
    tokenizer_free(t);
    CHECK_MSG(ok, "status %d n %zu", (int)st, n);
    b.tokens = 4; /* token 257 is "ab" too: lookups and the merge "a b" give the last id, 257 */
    t = NULL;
    CHECK_OK(build(&b, &t, tmp_path));
    st = tokenizer_encode(t, "ab", 2, 0, ids, 8, &n);
    ok = st == CODER_OK && n == 1 && ids[0] == 257 && tokenizer_find(t, "ab", 2) == 257;
    tokenizer_free(t);
    CHECK(ok);
}

/* E5: SentencePiece BYTE tokens must be spelled <0xNN>. */
static coder_status build_spm(const char *byte_text, tokenizer **out) {
    gguf_str toks[4] = {{"<unk>", 5}, {"<s>", 3}, {"</s>", 4}, {byte_text, strlen(byte_text)}};
    int32_t types[4] = {2, 3, 3, 6};
    float scores[4] = {0, 0, 0, 0};
    gguf_writer *w = NULL;
    TRY(gguf_writer_new(0, &w));
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5);
    gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", toks, 4);
    gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 4);
    gguf_writer_set_array(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 4);
    coder_status st = gguf_writer_write_file(w, tmp_path);
    gguf_writer_free(w);
    if (st) return st;
    gguf_file *f = NULL;
    TRY(gguf_open(tmp_path, NULL, &f));
    st = tokenizer_load(f, out);
    gguf_close(f);
    return st;
}

TEST(e5_byte_tokens) {
    static const char *const badtexts[] = {"<0x-1>", "<0xZZ>", "<0x100>", "<0x4>", "0x41"};
    for (size_t i = 0; i < sizeof badtexts / sizeof badtexts[0]; i++) {
        tokenizer *t = NULL;
        coder_status st = build_spm(badtexts[i], &t);
        tokenizer_free(t);
        CHECK_MSG(st == CODER_ERR_FORMAT, "%s: status %d", badtexts[i], (int)st);
        CHECK_MSG(strstr(coder_last_error(), "tokenizer.ggml.tokens[3]"), "%s: %s", badtexts[i], coder_last_error());
    }
    tokenizer *t = NULL;
    CHECK_OK(build_spm("<0x41>", &t));
    char piece[4];
    size_t n = 0;
    coder_status st = tokenizer_piece(t, 3, 0, piece, sizeof piece, &n);
    tokenizer_free(t);
    CHECK_OK(st);
    CHECK(n == 1 && piece[0] == 'A');
}

int main(void) {
    snprintf(tmp_path, sizeof tmp_path, "/tmp/test_tokenizer_bad_%d.gguf", (int)getpid());
    huge_token = calloc(70000, 1);
    memset(huge_token, 'x', 70000);
    RUN(e1_tokens_missing);
    RUN(e1_tokens_empty);
    RUN(e1_tokens_not_strings);
    RUN(e1_token_huge);
    RUN(e2_scores_short);
    RUN(e2_scores_int);
    RUN(e2_types_long);
    RUN(e3_bos_too_big);
    RUN(e3_bos_negative);
    RUN(e4_merge_no_space);
    RUN(e4_merge_two_spaces);
    RUN(e4_merge_unknown);
    RUN(e5_byte_tokens);
    RUN(e6_charsmap_model);
    RUN(e7_model_unknown);
    RUN(e7_model_missing);
    RUN(e7_pre_unknown);
    RUN(good_and_duplicates);
    free(huge_token);
    unlink(tmp_path);
    return test_summary();
}
