/* fake_model.h - a one-layer model object around hand-made weights (no file, no tokenizer), for
 * tests that drive backends op by op (test_gpu.c, test_backend_ops.c). The caller fills the weights
 * it needs with malloc'd data; fake_model_free frees them and any device copies. */
#ifndef CODER_TEST_FAKE_MODEL_H
#define CODER_TEST_FAKE_MODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static coder_model *fake_model(int dim, int ffn, int nh, int nkv, int hd) {
    coder_model *m = calloc(1, sizeof *m);
    coder_model_params_init(&m->params);
    model_hparams *hp = &m->hp;
    hp->arch = ARCH_QWEN2;
    snprintf(hp->arch_name, sizeof hp->arch_name, "qwen2");
    hp->n_layers = 1;
    hp->dim = dim;
    hp->ffn_dim = ffn;
    hp->n_heads = nh;
    hp->n_kv_heads = nkv;
    hp->head_dim = hd;
    hp->n_rot = hd;
    hp->vocab_size = 64;
    hp->n_ctx_train = 32768;
    hp->rms_eps = 1e-6f;
    hp->rope = ROPE_NEOX;
    hp->rope_base = 1e6f;
    hp->rope_freq_scale = 1.0f;
    hp->yarn_attn_factor = 1.0f;
    hp->yarn_ext_factor = -1.0f;
    m->layers = calloc(1, sizeof *m->layers);
    return m;
}

static void free_weight(weight *w) {
    free((void *)w->data);
    memset(w, 0, sizeof *w);
}

static void fake_model_free(coder_model *m) {
    if (!m) return;
    if (m->backend_free) m->backend_free(m);
    weight *ws[] = {&m->tok_embd, &m->output_norm, &m->output, &m->rope_freqs};
    for (size_t i = 0; i < 4; i++) free_weight(ws[i]);
    weight *lw = (weight *)m->layers;
    for (size_t i = 0; i < sizeof(layer_weights) / sizeof(weight); i++) free_weight(&lw[i]);
    free(m->layers);
    free(m);
}

#endif
