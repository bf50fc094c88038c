/* test_mkmodel.c - synthetic models: every tiny preset in every type, reopened with gguf_open and
 * checked against an independent re-statement of llama.cpp's Q4_K_M / Q6_K / Q8_0 / F16 recipes
 * (itself checked against llama-quantize's files in refdata), plus metadata, values, determinism
 * and bad arguments.
 *
 * Optional: CODER_MKMODEL_CHECK=FILE.gguf checks a big file written by hand, e.g.
 *   ./build/coder mkmodel --preset qwen2.5-coder-7b --type Q4_K_M \
 *       --vocab ../shared/refdata/vocab/ggml-vocab-qwen2.gguf -o /tmp/q7.gguf --mode random
 *   CODER_MKMODEL_CHECK=/tmp/q7.gguf ./build/test/bin/test_mkmodel */
#include <stdint.h>
#include <unistd.h>

#include "gguf.h"
#include "mkmodel.h"
#include "quant.h"
#include "test.h"

static char tmpdir[256];

/* ---- the recipe, re-stated from FORMATS.md 2.9 -------------------------------------------- */

/* Layers whose attn_v / ffn_down get Q6_K in Q4_K_M, as listed in FORMATS.md's table (4 layers:
 * n/8 = 0, 7n/8 = 3, so layer 2 ((2-0)%3 == 2) and layer 3; refdata's tiny files agree). */
static bool q6_layer(int layer, int n_layers) {
    static const int l4[] = {2, 3, -1};
    static const int l24[] = {0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23, -1};
    static const int l28[] = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27, -1};
    static const int l36[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 31, 32, 33, 34, 35, -1};
    const int *l = n_layers == 4 ? l4 : n_layers == 24 ? l24 : n_layers == 28 ? l28 : n_layers == 36 ? l36 : NULL;
    if (!l) return false;
    for (; *l >= 0; l++)
        if (*l == layer) return true;
    return false;
}

static uint32_t want_type(const char *ft, const char *name, uint32_t n_dims, uint64_t ne0, int n_layers, bool tied) {
    size_t n = strlen(name);
    if (n_dims == 1) return QT_F32;                                 /* norms and biases */
    if (n < 6 || strcmp(name + n - 6, "weight") != 0) return QT_F32;
    if (strcmp(ft, "F16") == 0) return QT_F16;
    if (strcmp(ft, "Q8_0") == 0) return QT_Q8_0;
    bool output = strcmp(name, "output.weight") == 0 || (tied && strcmp(name, "token_embd.weight") == 0);
    bool k_ok = ne0 % 256 == 0;
    if (strcmp(ft, "Q6_K") == 0) return k_ok ? QT_Q6_K : QT_Q8_0;
    /* Q4_K_M */
    int layer = -1;
    sscanf(name, "blk.%d.", &layer);
    bool more = output || ((strstr(name, ".attn_v.weight") || strstr(name, ".ffn_down.weight")) && q6_layer(layer, n_layers));
    if (more) return k_ok ? QT_Q6_K : QT_Q8_0;
    return k_ok ? QT_Q4_K : QT_Q5_0;
}

/* Checks every tensor's type; counts tensors. */
static int check_types(const gguf_file *f, const char *ft, int n_layers, bool tied, char *err, size_t errn) {
    for (size_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        uint32_t w = want_type(ft, t->name, t->n_dims, t->ne[0], n_layers, tied);
        if (t->type != w) {
            snprintf(err, errn, "%s %s: type %s, want %s", ft, t->name, quant_type_name(t->type), quant_type_name(w));
            return -1;
        }
    }
    return (int)gguf_tensor_count(f);
}

/* The re-statement reproduces llama-quantize's own choices (refdata). */
TEST(recipe_matches_llama_quantize) {
    const char *rd = test_refdata();
    if (!rd) SKIP("refdata not found (set CODER_REFDATA)");
    static const struct { const char *file; bool tied; } m[] = {
        {"tiny-qwen2-q4_k_m.gguf", true}, {"tiny-llama-q4_k_m.gguf", false}};
    for (int k = 0; k < 2; k++) {
        char path[4096], err[256] = "";
        snprintf(path, sizeof path, "%s/models/%s", rd, m[k].file);
        gguf_file *f = NULL;
        CHECK_OK(gguf_open(path, NULL, &f));
        CHECK(gguf_find_tensor(f, "output.weight") == NULL || !m[k].tied);
        int n = check_types(f, "Q4_K_M", 4, m[k].tied, err, sizeof err);
        gguf_close(f);
        CHECK_MSG(n > 30, "%s: %s", m[k].file, err);
    }
}

/* ---- the tiny presets in every type ----------------------------------------------------- */

static coder_status make(const char *preset, const char *type, const char *vocab, mkmodel_mode mode, int threads,
                         uint64_t seed, const char *path, mkmodel_stats *st) {
    mkmodel_opts o = {.preset = preset, .vocab_path = vocab, .out_path = path, .seed = seed, .mode = mode,
                      .n_threads = threads};
    coder_status s = mkmodel_parse_ftype(type, &o.ftype);
    return s != CODER_OK ? s : mkmodel_write(&o, st);
}

static double tensor_std(const gguf_tensor *t, double *mean_out, bool *finite) {
    size_t n = (size_t)t->n_elements;
    float *x = malloc(n * sizeof(float));
    if (!x || dequantize_row(t->type, t->data, x, (int64_t)n) != CODER_OK) { free(x); return -1; }
    double m = 0, v = 0;
    *finite = true;
    for (size_t i = 0; i < n; i++) { m += x[i]; *finite &= isfinite(x[i]) != 0; }
    m /= (double)n;
    for (size_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    free(x);
    *mean_out = m;
    return sqrt(v / (double)n);
}

TEST(tiny_presets_all_types) {
    static const struct { const char *preset, *arch; bool tied; int n_tensors; } P[] = {
        {"tiny", "qwen2", true, 1 + 1 + 4 * 12}, {"tiny-llama", "llama", false, 1 + 1 + 1 + 4 * 9},
        {"tiny-qwen3", "qwen3", true, 1 + 1 + 4 * 11}};
    static const char *types[] = {"F16", "Q8_0", "Q6_K", "Q4_K_M"};
    static const uint32_t file_type[] = {1, 7, 18, 15};
    char path[512], err[256] = "";
    for (int p = 0; p < 3; p++)
        for (int k = 0; k < 4; k++) {
            snprintf(path, sizeof path, "%s/%s-%s.gguf", tmpdir, P[p].preset, types[k]);
            mkmodel_stats st;
            CHECK_OK(make(P[p].preset, types[k], NULL, MKMODEL_MODE_RANDOM, 2, 7, path, &st));
            gguf_file *f = NULL;
            CHECK_OK(gguf_open(path, NULL, &f));
            int n = check_types(f, types[k], 4, P[p].tied, err, sizeof err);
            gguf_str s = {0};
            uint32_t u = 0, nl = 0, hd = 0, ft = 0, qv = 0;
            char key[128];
            coder_status rc = gguf_get_str(f, "general.architecture", &s, true);
            snprintf(key, sizeof key, "%s.block_count", P[p].arch);
            if (rc == CODER_OK) rc = gguf_get_u32(f, key, &nl, true);
            snprintf(key, sizeof key, "%s.embedding_length", P[p].arch);
            if (rc == CODER_OK) rc = gguf_get_u32(f, key, &u, true);
            snprintf(key, sizeof key, "%s.attention.key_length", P[p].arch);
            if (rc == CODER_OK) rc = gguf_get_u32(f, key, &hd, false);
            if (rc == CODER_OK) rc = gguf_get_u32(f, "general.file_type", &ft, true);
            if (rc == CODER_OK) rc = gguf_get_u32(f, "general.quantization_version", &qv, true);
            static const char *more[] = {"context_length", "feed_forward_length", "attention.head_count",
                                         "attention.head_count_kv"};
            for (int m = 0; m < 4 && rc == CODER_OK; m++) {
                uint32_t x;
                snprintf(key, sizeof key, "%s.%s", P[p].arch, more[m]);
                rc = gguf_get_u32(f, key, &x, true);
            }
            float eps = 0, base = 0;
            snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", P[p].arch);
            if (rc == CODER_OK) rc = gguf_get_f32(f, key, &eps, true);
            snprintf(key, sizeof key, "%s.rope.freq_base", P[p].arch);
            if (rc == CODER_OK) rc = gguf_get_f32(f, key, &base, true);
            const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
            const gguf_tensor *q = gguf_find_tensor(f, "blk.0.attn_q.weight");
            bool has_out = gguf_find_tensor(f, "output.weight") != NULL;
            bool has_bias = gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL;
            bool has_qnorm = gguf_find_tensor(f, "blk.3.attn_q_norm.weight") != NULL;
            uint32_t align = gguf_alignment(f);
            bool arch_ok = s.len == strlen(P[p].arch) && memcmp(s.ptr, P[p].arch, s.len) == 0;
            bool emb_ok = emb && emb->ne[0] == 256 && emb->ne[1] == 32000;   /* no vocab: 32000 rows */
            bool q_ok = q && q->ne[0] == 256 && q->ne[1] == (strcmp(P[p].arch, "qwen3") == 0 ? 1024u : 256u);
            gguf_close(f);
            CHECK_STATUS(rc, CODER_OK);
            CHECK_MSG(n == P[p].n_tensors, "%s %s: %d tensors (%s)", P[p].preset, types[k], n, err);
            CHECK(arch_ok);
            CHECK(nl == 4 && u == 256 && ft == file_type[k] && qv == 2 && align == 32 && eps > 0 && base >= 1e4f);
            CHECK(hd == (strcmp(P[p].arch, "qwen3") == 0 ? 128u : 0u));
            CHECK(emb_ok);
            CHECK(q_ok);
            CHECK(has_out == !P[p].tied);
            CHECK(has_bias == (strcmp(P[p].arch, "qwen2") == 0));
            CHECK(has_qnorm == (strcmp(P[p].arch, "qwen3") == 0));
            CHECK(st.n_tensors == (size_t)n && st.vocab_size == 32000);
            unlink(path);
        }
}

/* Values: quantize mode gives N(0, 0.02) matrices and norms near 1; random mode sane scales. */
TEST(weight_values) {
    char path[512];
    for (int mode = 0; mode < 2; mode++) {
        snprintf(path, sizeof path, "%s/values-%d.gguf", tmpdir, mode);
        CHECK_OK(make("tiny-qwen3", mode ? "Q6_K" : "Q4_K_M", NULL, mode ? MKMODEL_MODE_QUANTIZE : MKMODEL_MODE_RANDOM,
                      2, 3, path, NULL));
        gguf_file *f = NULL;
        CHECK_OK(gguf_open(path, NULL, &f));
        char bad[256] = "";
        for (size_t i = 0; i < gguf_tensor_count(f) && !bad[0]; i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            if (strcmp(t->name, "token_embd.weight") == 0 && mode == 1) continue;   /* slow under ASan */
            double mean, sd;
            bool finite;
            sd = tensor_std(t, &mean, &finite);
            bool norm = strstr(t->name, "norm") != NULL;
            bool ok = finite && (norm ? fabs(mean - 1) < 0.02 && sd > 0.03 && sd < 0.08
                                      : mode == 1 ? fabs(sd - 0.02) < 0.001 && fabs(mean) < 0.002
                                                  : sd > 0.005 && sd < 0.08);
            if (!ok) snprintf(bad, sizeof bad, "mode %d %s: mean %g std %g finite %d", mode, t->name, mean, sd, finite);
        }
        gguf_close(f);
        unlink(path);
        CHECK_MSG(!bad[0], "%s", bad);
    }
}

/* Same seed -> same bytes for 1 and 3 threads; another seed -> different bytes. */
TEST(deterministic_across_threads) {
    char a[512], b[512], c[512];
    snprintf(a, sizeof a, "%s/det-a.gguf", tmpdir);
    snprintf(b, sizeof b, "%s/det-b.gguf", tmpdir);
    snprintf(c, sizeof c, "%s/det-c.gguf", tmpdir);
    CHECK_OK(make("tiny", "Q4_K_M", NULL, MKMODEL_MODE_RANDOM, 1, 11, a, NULL));
    CHECK_OK(make("tiny", "Q4_K_M", NULL, MKMODEL_MODE_RANDOM, 3, 11, b, NULL));
    CHECK_OK(make("tiny", "Q4_K_M", NULL, MKMODEL_MODE_RANDOM, 2, 12, c, NULL));
    size_t na, nb, nc;
    char *da = test_read_file(a, &na), *db = test_read_file(b, &nb), *dc = test_read_file(c, &nc);
    bool same = da && db && na == nb && memcmp(da, db, na) == 0;
    bool differ = dc && nc == na && memcmp(da, dc, na) != 0;
    free(da); free(db); free(dc);
    unlink(a); unlink(b); unlink(c);
    CHECK(same);
    CHECK(differ);
}

/* Tokenizer keys copied from a vocab file; token_embd rows = the vocab size. */
TEST(vocab_copy) {
    const char *rd = test_refdata();
    if (!rd) SKIP("refdata not found (set CODER_REFDATA)");
    char vpath[4096], path[512];
    snprintf(vpath, sizeof vpath, "%s/vocab/ggml-vocab-llama-spm.gguf", rd);
    snprintf(path, sizeof path, "%s/vocab.gguf", tmpdir);
    mkmodel_stats st;
    CHECK_OK(make("tiny-llama", "Q8_0", vpath, MKMODEL_MODE_RANDOM, 2, 1, path, &st));
    gguf_file *v = NULL, *f = NULL;
    CHECK_OK(gguf_open(vpath, NULL, &v));
    coder_status rc = gguf_open(path, NULL, &f);
    if (rc != CODER_OK) gguf_close(v);
    CHECK_OK(rc);
    size_t n_tok_keys = 0, missing = 0;
    for (size_t i = 0; i < gguf_kv_count(v); i++) {
        const char *k = gguf_kv_key(v, i);
        if (strncmp(k, "tokenizer.", 10) != 0) continue;
        n_tok_keys++;
        long j = gguf_find_key(f, k);
        missing += j < 0 || gguf_kv_type(f, (size_t)j) != gguf_kv_type(v, i);
    }
    const gguf_str *items = NULL;
    uint64_t count = 0;
    rc = gguf_get_str_array(f, "tokenizer.ggml.tokens", &items, &count, true);
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    uint64_t rows = emb ? emb->ne[1] : 0;
    gguf_close(f);
    gguf_close(v);
    unlink(path);
    CHECK_OK(rc);
    CHECK(n_tok_keys >= 5 && missing == 0);
    CHECK(count == 32000 && rows == 32000 && st.vocab_size == 32000 && st.n_pad_tokens == 0);
}

TEST(bad_args) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad.gguf", tmpdir);
    mkmodel_ftype ft;
    CHECK_STATUS(mkmodel_parse_ftype("Q4_K_S", &ft), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "Q4_K_S"));
    CHECK_OK(mkmodel_parse_ftype("q4_k_m", &ft));
    CHECK(ft == MKMODEL_Q4_K_M);
    CHECK_STATUS(make("gpt-5", "F16", NULL, MKMODEL_MODE_RANDOM, 1, 1, path, NULL), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "gpt-5"));
    CHECK_STATUS(make("tiny", "F16", "/nonexistent/vocab.gguf", MKMODEL_MODE_RANDOM, 1, 1, path, NULL), CODER_ERR_IO);
    CHECK(strstr(coder_last_error(), "/nonexistent/vocab.gguf"));
    CHECK_STATUS(make("tiny", "F16", NULL, MKMODEL_MODE_RANDOM, 1, 1, "/nonexistent/dir/x.gguf", NULL), CODER_ERR_IO);
    CHECK(strstr(coder_last_error(), "/nonexistent/dir/x.gguf"));
    CHECK(access(path, F_OK) != 0);
    mkmodel_opts o = {.preset = "tiny", .ftype = MKMODEL_F16};
    CHECK_STATUS(mkmodel_write(&o, NULL), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "output"));
}

/* Presets at real shapes: the recipe for a few real tensors (no file written). */
TEST(real_shape_recipe) {
    /* Qwen2.5-0.5B: n_embd 896 falls back (FORMATS.md 2.9 example) */
    CHECK(mkmodel_tensor_type(MKMODEL_Q4_K_M, "token_embd.weight", 2, 896, 24, true) == QT_Q8_0);
    CHECK(mkmodel_tensor_type(MKMODEL_Q4_K_M, "blk.0.attn_q.weight", 2, 896, 24, true) == QT_Q5_0);
    CHECK(mkmodel_tensor_type(MKMODEL_Q4_K_M, "blk.5.attn_v.weight", 2, 896, 24, true) == QT_Q8_0);
    CHECK(mkmodel_tensor_type(MKMODEL_Q4_K_M, "blk.5.ffn_down.weight", 2, 4864, 24, true) == QT_Q6_K);
    CHECK(mkmodel_tensor_type(MKMODEL_Q4_K_M, "blk.6.ffn_down.weight", 2, 4864, 24, true) == QT_Q4_K);
    CHECK(mkmodel_tensor_type(MKMODEL_Q6_K, "blk.6.ffn_up.weight", 2, 896, 24, true) == QT_Q8_0);
    CHECK(mkmodel_tensor_type(MKMODEL_Q4_K_M, "blk.6.attn_norm.weight", 1, 896, 24, true) == QT_F32);
    CHECK(mkmodel_tensor_type(MKMODEL_Q4_K_M, "blk.6.attn_q.bias", 1, 896, 24, true) == QT_F32);
    CHECK(mkmodel_tensor_type(MKMODEL_Q8_0, "output.weight", 2, 3584, 28, false) == QT_Q8_0);
    CHECK(mkmodel_tensor_type(MKMODEL_Q4_K_M, "token_embd.weight", 2, 3584, 28, false) == QT_Q4_K);
    for (int l = 0; l < 48; l++) {
        char nm[64];
        snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l);
        bool q6 = mkmodel_tensor_type(MKMODEL_Q4_K_M, nm, 2, 5120, 48, false) == QT_Q6_K;
        /* FORMATS.md table, 48 layers: 0..5, 8, 11, ..., 38 (step 3), 41..47 */
        bool want = l <= 5 || l >= 41 || (l >= 8 && (l - 8) % 3 == 0);
        CHECK_MSG(q6 == want, "layer %d", l);
    }
    const mkmodel_preset *p = mkmodel_find_preset("qwen2.5-coder-7b");
    CHECK(p && p->n_layers == 28 && p->dim == 3584 && p->n_heads == 28 && p->n_kv_heads == 4 && p->ffn_dim == 18944 &&
          p->vocab_size == 152064 && !p->tied);
    p = mkmodel_find_preset("llama-7b");
    CHECK(p && p->n_layers == 32 && p->dim == 4096 && p->n_heads == 32 && p->ffn_dim == 11008 && p->vocab_size == 32000);
    p = mkmodel_find_preset("qwen3-8b");
    CHECK(p && p->n_layers == 36 && p->head_dim == 128 && p->n_kv_heads == 8 && strcmp(p->arch, "qwen3") == 0);
}

/* CODER_MKMODEL_CHECK=FILE: a hand-made big Q4_K_M file (e.g. qwen2.5-coder-7b, 28 layers). */
TEST(check_big_file) {
    const char *path = getenv("CODER_MKMODEL_CHECK");
    if (!path || !*path) SKIP("set CODER_MKMODEL_CHECK=FILE.gguf to check a hand-made Q4_K_M file");
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, NULL, &f));
    uint32_t nl = 0;
    gguf_str arch = {0};
    const gguf_str *tok = NULL;
    uint64_t n_tok = 0;
    char key[128], err[256] = "";
    coder_status rc = gguf_get_str(f, "general.architecture", &arch, true);
    snprintf(key, sizeof key, "%.*s.block_count", (int)(arch.len < 32 ? arch.len : 32), arch.ptr ? arch.ptr : "");
    if (rc == CODER_OK) rc = gguf_get_u32(f, key, &nl, true);
    if (rc == CODER_OK) rc = gguf_get_str_array(f, "tokenizer.ggml.tokens", &tok, &n_tok, false);
    bool tied = gguf_find_tensor(f, "output.weight") == NULL;
    int n = rc == CODER_OK ? check_types(f, "Q4_K_M", (int)nl, tied, err, sizeof err) : -1;
    size_t count[64] = {0};
    for (size_t i = 0; i < gguf_tensor_count(f); i++) count[gguf_tensor_at(f, i)->type & 63]++;
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    bool vocab_ok = !tok || (emb && n_tok == emb->ne[1]);
    char last[64] = "";
    if (tok && n_tok) snprintf(last, sizeof last, "%.*s", (int)(tok[n_tok - 1].len < 60 ? tok[n_tok - 1].len : 60), tok[n_tok - 1].ptr);
    gguf_close(f);
    CHECK_OK(rc);
    CHECK_MSG(n > 0, "%s", err);
    CHECK(vocab_ok);
    printf("  %s: %u layers, %d tensors: F32 %zu, Q4_K %zu, Q5_0 %zu, Q6_K %zu, Q8_0 %zu; %llu tokens, last '%s'\n",
           path, nl, n, count[QT_F32], count[QT_Q4_K], count[QT_Q5_0], count[QT_Q6_K], count[QT_Q8_0],
           (unsigned long long)n_tok, last);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_mkmodel.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(recipe_matches_llama_quantize);
    RUN(real_shape_recipe);
    RUN(tiny_presets_all_types);
    RUN(weight_values);
    RUN(deterministic_across_threads);
    RUN(vocab_copy);
    RUN(bad_args);
    RUN(check_big_file);
    rmdir(tmpdir);
    return test_summary();
}
