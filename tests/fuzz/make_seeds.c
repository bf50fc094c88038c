/* make_seeds.c - writes small GGUF seeds for fuzz_gguf / fuzz_model with the library's own GGUF
 * writer: complete, loadable models of a few tens of KiB (a 13 MiB `coder mkmodel` file would run
 * at a few executions per second). Each has a byte-level BPE vocabulary of 256 byte tokens, one
 * merge ("a b" -> "ab"), ChatML and Qwen FIM control tokens and a ChatML chat template.
 *   usage: make_seeds OUTDIR      -> OUTDIR/{mini-llama-f16,mini-qwen2-q8_0,mini-vocab}.gguf
 *                                    and OUTDIR/session/seed-* (fuzz_session inputs, see there)
 * Shapes: llama dim 16, 2 heads (kv 1) x 8, ffn 32, 1 layer; qwen2 dim 64, 2 heads x 32, ffn 64,
 * 2 layers, biases, tied output. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zstd.h>

#include "gguf.h"
#include "quant.h"
#include "unicode.h"

static const char *const specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_prefix|>",
                                       "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|repo_name|>",
                                       "<|file_sep|>"};
#define N_SPECIAL (sizeof specials / sizeof specials[0])
#define NV (257 + N_SPECIAL)

static coder_status add_vocab(gguf_writer *w) {
    static char text[256][8];
    gguf_str toks[NV];
    int32_t types[NV];
    for (int i = 0; i < 256; i++) {
        int l = unicode_encode(unicode_byte_to_cpt((uint8_t)i), text[i]);
        toks[i] = (gguf_str){text[i], (uint64_t)l};
        types[i] = 1;
    }
    toks[256] = (gguf_str){"ab", 2};
    types[256] = 1;
    for (size_t i = 0; i < N_SPECIAL; i++) {
        toks[257 + i] = (gguf_str){specials[i], strlen(specials[i])};
        types[257 + i] = 3;
    }
    gguf_str merge = {"a b", 3};
    static const char tmpl[] = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                               "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    TRY(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4));
    TRY(gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2", 5));
    TRY(gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", toks, NV));
    TRY(gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, NV));
    TRY(gguf_writer_set_str_array(w, "tokenizer.ggml.merges", &merge, 1));
    TRY(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 257));
    TRY(gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 257));
    TRY(gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false));
    return gguf_writer_set_str(w, "tokenizer.chat_template", tmpl, sizeof tmpl - 1);
}

/* Tensor data: deterministic small values, converted to the tensor's type. Kept until written. */
static void *blobs[64];
static size_t n_blobs;

static coder_status add_tensor(gguf_writer *w, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1,
                               float base) {
    uint64_t ne[2] = {ne0, ne1};
    size_t n = (size_t)(ne0 * ne1);
    float *f = malloc(n * sizeof *f);
    if (!f) return CODER_ERR_NOMEM;
    uint32_t x = 2463534242u ^ (uint32_t)(base * 1000);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        f[i] = base + 0.05f * ((float)(x % 2001) / 1000.0f - 1.0f);
    }
    uint64_t row = 0;
    if (!quant_row_bytes(type, ne0, &row)) return CODER_ERR_INVALID_ARG;
    uint8_t *data = malloc((size_t)(row * ne1));
    if (!data) return CODER_ERR_NOMEM;
    for (uint64_t r = 0; r < ne1; r++) TRY(quantize_row_ref(type, f + r * ne0, data + r * row, (int64_t)ne0));
    free(f);
    blobs[n_blobs++] = data;
    return gguf_writer_add_tensor(w, name, type, ne1 == 1 ? 1 : 2, ne, data, NULL);
}

static coder_status model(const char *path, const char *arch, uint32_t mtype, uint32_t L, uint32_t d, uint32_t H,
                          uint32_t Hkv, uint32_t ff, int qwen2) {
    gguf_writer *w = NULL;
    TRY(gguf_writer_new(0, &w));
    char k[96];
    uint32_t hd = d / H;
#define SETU(suffix, v) (snprintf(k, sizeof k, "%s." suffix, arch), gguf_writer_set_u32(w, k, v))
    coder_status st = gguf_writer_set_str(w, "general.architecture", arch, strlen(arch));
    if (!st) st = gguf_writer_set_str(w, "general.name", "fuzz-seed", 9);
    if (!st) st = SETU("block_count", L);
    if (!st) st = SETU("context_length", 256);
    if (!st) st = SETU("embedding_length", d);
    if (!st) st = SETU("feed_forward_length", ff);
    if (!st) st = SETU("attention.head_count", H);
    if (!st) st = SETU("attention.head_count_kv", Hkv);
    if (!st) st = SETU("rope.dimension_count", hd);
    if (!st) st = (snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch), gguf_writer_set_f32(w, k, 1e-6f));
    if (!st) st = (snprintf(k, sizeof k, "%s.rope.freq_base", arch), gguf_writer_set_f32(w, k, 10000.0f));
    if (!st) st = add_vocab(w);
    if (!st) st = add_tensor(w, "token_embd.weight", mtype, d, NV, 0.0f);
    if (!st) st = add_tensor(w, "output_norm.weight", QT_F32, d, 1, 1.0f);
    if (!st && !qwen2) st = add_tensor(w, "output.weight", mtype, d, NV, 0.0f);
    for (uint32_t l = 0; l < L && !st; l++) {
        char n[64];
#define T(suffix, type, a, b, base) (snprintf(n, sizeof n, "blk.%u." suffix, l), st = st ? st : add_tensor(w, n, type, a, b, base))
        T("attn_norm.weight", QT_F32, d, 1, 1.0f);
        T("attn_q.weight", mtype, d, H * hd, 0.0f);
        T("attn_k.weight", mtype, d, Hkv * hd, 0.0f);
        T("attn_v.weight", mtype, d, Hkv * hd, 0.0f);
        if (qwen2) {
            T("attn_q.bias", QT_F32, H * hd, 1, 0.0f);
            T("attn_k.bias", QT_F32, Hkv * hd, 1, 0.0f);
            T("attn_v.bias", QT_F32, Hkv * hd, 1, 0.0f);
        }
        T("attn_output.weight", mtype, H * hd, d, 0.0f);
        T("ffn_norm.weight", QT_F32, d, 1, 1.0f);
        T("ffn_gate.weight", mtype, d, ff, 0.0f);
        T("ffn_up.weight", mtype, d, ff, 0.0f);
        T("ffn_down.weight", mtype, ff, d, 0.0f);
    }
    if (!st) st = gguf_writer_write_file(w, path);
    gguf_writer_free(w);
    while (n_blobs) free(blobs[--n_blobs]);
    return st;
}

static coder_status vocab_only(const char *path) {
    gguf_writer *w = NULL;
    TRY(gguf_writer_new(0, &w));
    coder_status st = gguf_writer_set_str(w, "general.architecture", "qwen2", 5);
    if (!st) st = add_vocab(w);
    if (!st) st = gguf_writer_write_file(w, path);
    gguf_writer_free(w);
    return st;
}

/* Writes one fuzz_session input: the selector byte, then the bytes. */
static int write_seed(const char *dir, const char *name, unsigned sel, const void *d, size_t n) {
    char p[4200];
    snprintf(p, sizeof p, "%s/seed-%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return 1;
    unsigned char s = (unsigned char)sel;
    int bad = fwrite(&s, 1, 1, f) != 1 || fwrite(d, 1, n, f) != n;
    return fclose(f) != 0 || bad;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *b = NULL;
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (len > 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)len)) && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* fuzz_session seeds: states saved from the mini qwen2 model with each KV type (F32, F16, Q8_0 =
 * selector 0, 1, 2), all positions with logits and a 3-position prefix without, each in the three
 * forms of fuzz_session.c: as saved, checksum-fixing, and header + uncompressed payload. */
static int session_seeds(const char *model_path, const char *outdir) {
    char dir[4200], tmp[4300];
    snprintf(dir, sizeof dir, "%s/session", outdir);
    snprintf(tmp, sizeof tmp, "%s/state.tmp", outdir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return 1;
    coder_model_params mp;
    coder_model_params_init(&mp);
    coder_model *m = NULL;
    if (coder_model_load(model_path, &mp, &m) != CODER_OK) return 1;
    static const int32_t kv[3] = {CODER_KV_F32, CODER_KV_F16, CODER_KV_Q8_0};
    static const int32_t toks[7] = {1, 2, 3, 97, 98, 256, 258};
    int bad = 0;
    for (unsigned k = 0; k < 3 && !bad; k++)
        for (int part = 0; part < 2 && !bad; part++) {
            coder_session_params sp;
            coder_session_params_init(&sp);
            sp.n_ctx = 64;
            sp.n_threads = 1;
            sp.kv_type = kv[k];
            coder_session *s = NULL;
            size_t n = 0;
            unsigned char *f = NULL;
            bad = coder_session_new(m, &sp, &s) != CODER_OK || coder_session_eval(s, toks, 7) != CODER_OK ||
                  coder_session_save(s, tmp, part ? 3 : -1) != CODER_OK || !(f = read_all(tmp, &n)) || n < 104;
            coder_session_free(s);
            char name[32];
            for (unsigned form = 0; form < 2 && !bad; form++) {
                snprintf(name, sizeof name, "kv%u-%s-form%u", k, part ? "prefix" : "all", form);
                bad = write_seed(dir, name, k | form << 2, f, n);
            }
            if (!bad) {   /* form 2: the frame decompressed */
                unsigned long long raw = ZSTD_getFrameContentSize(f + 96, n - 104);
                unsigned char *img = raw < (1u << 24) ? malloc(96 + (size_t)raw + 1) : NULL;
                bad = !img || ZSTD_decompress(img + 96, (size_t)raw + 1, f + 96, n - 104) != raw;
                if (!bad) {
                    memcpy(img, f, 96);
                    snprintf(name, sizeof name, "kv%u-%s-form2", k, part ? "prefix" : "all");
                    bad = write_seed(dir, name, k | 2u << 2 | 16u, img, 96 + (size_t)raw);
                }
                free(img);
            }
            free(f);
        }
    remove(tmp);
    coder_model_free(m);
    if (bad) fprintf(stderr, "make_seeds: session seeds: %s\n", coder_last_error());
    return bad;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    char p[3][4096];
    snprintf(p[0], sizeof p[0], "%s/mini-llama-f16.gguf", argv[1]);
    snprintf(p[1], sizeof p[1], "%s/mini-qwen2-q8_0.gguf", argv[1]);
    snprintf(p[2], sizeof p[2], "%s/mini-vocab.gguf", argv[1]);
    coder_status st = model(p[0], "llama", QT_F16, 1, 16, 2, 1, 32, 0);
    if (!st) st = model(p[1], "qwen2", QT_Q8_0, 2, 64, 2, 2, 64, 1);   /* head_dim 32: Q8_0 KV works */
    if (!st) st = vocab_only(p[2]);
    if (st) {
        fprintf(stderr, "make_seeds: %s\n", coder_last_error());
        return 1;
    }
    /* every seed must load: a corpus of rejected files would only exercise the first checks */
    for (int i = 0; i < 3; i++) {
        coder_model_params mp;
        coder_model_params_init(&mp);
        mp.vocab_only = i == 2;
        coder_model *m = NULL;
        if (coder_model_load(p[i], &mp, &m) != CODER_OK) {
            fprintf(stderr, "make_seeds: %s does not load: %s\n", p[i], coder_last_error());
            return 1;
        }
        coder_model_free(m);
        printf("%s\n", p[i]);
    }
    return session_seeds(p[1], argv[1]);
}
