/* backend_stages.c - the backends of one session: one, or two when a model is split between the
 * CPU and the GPU (partial offload, backend.h). */
#include <string.h>

#include "backend.h"

/* The layers b's params give it (n_layers 0: all), unchecked. */
static void stage_layers(const backend *b, int32_t *first, int32_t *count) {
    *first = b->params.n_layers ? b->params.layer0 : 0;
    *count = b->params.n_layers ? b->params.n_layers : b->model->hp.n_layers;
}

coder_status backend_kv_layers(const backend *b, int32_t *first, int32_t *count) {
    const int32_t all = b->model->hp.n_layers;
    stage_layers(b, first, count);
    if (*first < 0 || *count < 1 || *first > all - *count)
        return coder_fail(CODER_ERR_INTERNAL, "%s backend: layers %d..+%d outside the model's %d", b->ops->name, (int)*first,
                          (int)*count, (int)all);
    return CODER_OK;
}

coder_status backend_kv_index(const backend *b, int layer, const char *op, int *index) {
    int32_t first, count;
    stage_layers(b, &first, &count);
    if (layer < first || layer >= first + count)
        return coder_fail(CODER_ERR_INTERNAL, "%s: layer %d is not in this backend's layers %d..%d", op, layer, (int)first,
                          (int)(first + count - 1));
    if (index) *index = layer - first;
    return CODER_OK;
}

/* The backend of one stage: CUDA for the GPU's layers when the model's weights were uploaded. */
static coder_status stage_backend_new(const coder_model *m, const backend_params *p, bool gpu, backend **out) {
    if (gpu && m->backend_data) return cuda_backend_new(m, p, out);
    return cpu_backend_new(m, p, out);
}

coder_status backend_stages_new(const coder_model *m, const backend_params *p, backend_stages *out) {
    memset(out, 0, sizeof *out);
    const int32_t L = m->hp.n_layers, g = m->gpu_layers;
    if (g <= 0 || g >= L) {   /* one stage: every layer on the GPU (when uploaded) or the CPU */
        out->n = 1;
        out->first[1] = L;
        return stage_backend_new(m, p, g > 0, &out->b[0]);
    }
    const int32_t split = L - g;
    backend_params cpu = *p, gpu = *p;
    cpu.layer0 = 0;
    cpu.n_layers = split;
    gpu.layer0 = split;
    gpu.n_layers = g;
    out->first[1] = split;
    out->first[2] = L;
    coder_status st = stage_backend_new(m, &cpu, false, &out->b[0]);
    if (st == CODER_OK) {
        out->n = 1;
        st = stage_backend_new(m, &gpu, true, &out->b[1]);
    }
    if (st != CODER_OK) {
        backend_stages_free(out);
        return st;
    }
    out->n = 2;
    LOG_DEBUG("model split: layers 0-%d on the %s, %d-%d and the output on the %s", (int)split - 1, out->b[0]->ops->name,
              (int)split, (int)L - 1, out->b[1]->ops->name);
    return CODER_OK;
}

void backend_stages_free(backend_stages *s) {
    for (int i = 0; i < s->n; i++)
        if (s->b[i]) s->b[i]->ops->free(s->b[i]);
    memset(s, 0, sizeof *s);
}

backend *backend_stage_of_layer(const backend_stages *s, int layer) {
    for (int i = 0; i + 1 < s->n; i++)
        if (layer < s->first[i + 1]) return s->b[i];
    return s->b[s->n - 1];
}
