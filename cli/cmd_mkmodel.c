/* cmd_mkmodel.c - `coder mkmodel`: writes a synthetic GGUF model of a real shape (lib/mkmodel.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "mkmodel.h"
#include "quant.h"

static void mkmodel_usage(FILE *f) {
    fprintf(f,
            "usage: coder mkmodel --preset P --type T -o OUT.gguf [--vocab VOCAB.gguf] [--seed N]\n"
            "                     [--mode random|quantize] [-t THREADS]\n"
            "  --preset P   architecture and shapes (list below)\n"
            "  --type T     F16 | Q8_0 | Q6_K | Q4_K_M (llama.cpp's per-tensor mix: docs/MKMODEL.md)\n"
            "  --vocab F    copy the tokenizer.* keys of this GGUF (e.g. refdata/vocab/ggml-vocab-qwen2.gguf);\n"
            "               the token list is padded with [PAD<id>] tokens up to the preset's embedding rows\n"
            "  --mode M     random (default): quantized blocks filled with random bytes and sane scales,\n"
            "               generated directly - fast, for speed work;\n"
            "               quantize: N(0, 0.02) floats quantized with the reference quantizers - values\n"
            "               as llama-quantize would store them, slower\n"
            "  --seed N     generator seed (default 1); the file is the same for any thread count\n"
            "  -t N         threads (default: all cores)\n"
            "presets:\n");
    for (size_t i = 0; i < mkmodel_preset_count(); i++) {
        const mkmodel_preset *p = mkmodel_preset_at(i);
        char vocab[32];
        if (p->vocab_size) snprintf(vocab, sizeof vocab, "%u", p->vocab_size);
        else snprintf(vocab, sizeof vocab, "from --vocab");
        fprintf(f, "  %-19s %-5s %2u layers, dim %u, %u/%u heads x %u, ffn %u, vocab %s%s\n", p->name, p->arch,
                p->n_layers, p->dim, p->n_heads, p->n_kv_heads, p->head_dim, p->ffn_dim, vocab,
                p->tied ? ", tied" : "");
    }
}

int cmd_mkmodel(int argc, char **argv) {
    mkmodel_opts o = {.seed = 1, .mode = MKMODEL_MODE_RANDOM};
    const char *type = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            mkmodel_usage(stdout);
            return EXIT_OK;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "coder mkmodel: unknown option or missing value: '%s'\n", a);
            mkmodel_usage(stderr);
            return EXIT_USAGE;
        }
        const char *v = argv[++i];
        char *end = NULL;
        if (strcmp(a, "--preset") == 0) o.preset = v;
        else if (strcmp(a, "--type") == 0) type = v;
        else if (strcmp(a, "--vocab") == 0) o.vocab_path = v;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) o.out_path = v;
        else if (strcmp(a, "--seed") == 0) {
            o.seed = strtoull(v, &end, 0);
            if (!*v || *end) { fprintf(stderr, "coder mkmodel: --seed '%s' is not a number\n", v); return EXIT_USAGE; }
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            long t = strtol(v, &end, 10);
            if (!*v || *end || t < 1 || t > 1024) { fprintf(stderr, "coder mkmodel: -t '%s' must be 1..1024\n", v); return EXIT_USAGE; }
            o.n_threads = (int)t;
        } else if (strcmp(a, "--mode") == 0) {
            if (strcmp(v, "random") == 0) o.mode = MKMODEL_MODE_RANDOM;
            else if (strcmp(v, "quantize") == 0) o.mode = MKMODEL_MODE_QUANTIZE;
            else { fprintf(stderr, "coder mkmodel: --mode '%s' is not random or quantize\n", v); return EXIT_USAGE; }
        } else {
            fprintf(stderr, "coder mkmodel: unknown option '%s'\n", a);
            mkmodel_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!o.preset || !type || !o.out_path) {
        fprintf(stderr, "coder mkmodel: --preset, --type and -o are required\n");
        mkmodel_usage(stderr);
        return EXIT_USAGE;
    }
    if (!mkmodel_find_preset(o.preset)) {
        fprintf(stderr, "coder mkmodel: unknown preset '%s'\n", o.preset);
        mkmodel_usage(stderr);
        return EXIT_USAGE;
    }
    if (mkmodel_parse_ftype(type, &o.ftype) != CODER_OK) {
        fprintf(stderr, "coder mkmodel: %s\n", coder_last_error());
        return EXIT_USAGE;
    }
    mkmodel_stats s;
    coder_status st = mkmodel_write(&o, &s);
    if (st != CODER_OK) {
        fprintf(stderr, "coder mkmodel: %s\n", coder_last_error());
        return st == CODER_ERR_NOMEM ? EXIT_NOMEM : st == CODER_ERR_INVALID_ARG ? EXIT_USAGE : EXIT_RUNTIME;
    }
    printf("wrote %s: %s %s (%s mode), %zu tensors, %.1f MiB, vocab %u", o.out_path, o.preset,
           mkmodel_ftype_name(o.ftype), o.mode == MKMODEL_MODE_RANDOM ? "random" : "quantize", s.n_tensors,
           s.file_bytes / 1048576.0, s.vocab_size);
    if (s.n_pad_tokens) printf(" (%u [PAD] tokens added)", s.n_pad_tokens);
    printf(", %.2f s\ntypes:", s.seconds);
    for (uint32_t t = 0; t < 64; t++)
        if (s.type_count[t]) printf(" %s %zu", quant_type_name(t), s.type_count[t]);
    printf("\n");
    return EXIT_OK;
}
