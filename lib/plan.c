/* plan.c - coder_plan_memory: the memory a model file and session parameters will need, from the
 * GGUF header alone (the file is mapped; only the header pages are read).
 *
 * Host bytes = resident weights + model tables + KV cache + scratch, where
 *   resident weights  every tensor except token_embd (read whole by every token), plus the header;
 *                     token_embd is read one row per distinct token, so it pages in gradually and is
 *                     counted at the rows of n_ctx distinct tokens (at most the whole table) -
 *                     when mapped (use_mmap 1); read mode (the default) copies the whole file;
 *   model tables      tokenizer and model structures: PLAN_TABLE_BYTES_PER_TOKEN per vocabulary
 *                     entry plus the header bytes (measured, docs/PERF.md "Agent features");
 *   KV cache          n_ctx * kv_bytes_per_token, committed at session creation (kv_cache.c);
 *   scratch           what coder_session_new allocates besides the cache: forward.c's activation
 *                     buffers for n_batch tokens, cpu_backend.c's per-thread matmul tiles and
 *                     attention scores, the token and logit arrays.
 * The GPU columns follow the CUDA backend's layout when one is present: the last gpu_layers
 * layers' weights and KV, the output head, activations and the CUDA context's scratch on the
 * device (no GPU: all zero); what the plan does not itemise (the CUDA context itself, cuBLAS's
 * workspace) is PLAN_DEVICE_RESERVE (plan.h). */
#include <stdio.h>
#include <string.h>

#include "cpu.h"
#include "cpu_gemm.h"
#include "device.h"
#include "kv_cache.h"
#include "plan.h"
#include "quant.h"
#include "../cuda/cuda_api.h"   /* plain C: the device scratch arithmetic */

#define PLAN_DEFAULT_CTX 4096
/* Tokenizer tables per vocabulary entry (id<->piece maps, hash slots, scores, merges ranks) and
 * process overhead (binary, libc, thread stacks touched): `coder tokenize` on the qwen2 vocabulary
 * peaks at 28.4 MiB RSS = 151936 x 110 + 5.9 MiB header + 6 MiB. */
#define PLAN_TABLE_BYTES_PER_TOKEN 110u
#define PLAN_PROCESS_BYTES (6u << 20)

static uint64_t plan_max(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* Whether tensor t goes to the GPU with its last g of L layers (cuda_glue.c's cuda_glue_slots):
 * the layers' tensors, the output head (output.weight, or token_embd when the output is tied to it)
 * and rope_freqs; token_embd itself only when every layer does. */
static bool plan_on_device(const gguf_tensor *t, int32_t L, int32_t g, bool tied) {
    if (g <= 0) return false;
    int layer = -1;
    if (sscanf(t->name, "blk.%d.", &layer) == 1) return layer >= L - g && layer < L;
    if (!strcmp(t->name, "token_embd.weight")) return g >= L || tied;
    return !strcmp(t->name, "output.weight") || !strcmp(t->name, "output_norm.weight") || !strcmp(t->name, "rope_freqs.weight");
}

coder_status plan_open(const char *path, const coder_model_params *mp_in, const coder_session_params *sp_in,
                       plan_input *in) {
    memset(in, 0, sizeof *in);
    if (!path) return coder_fail(CODER_ERR_INVALID_ARG, "path is NULL");
    coder_model_params_init(&in->mp);
    if (mp_in) TRY(coder_params_copy(&in->mp, sizeof in->mp, mp_in, offsetof(coder_model_params, use_mmap), "model params"));
    coder_session_params_init(&in->sp);
    if (sp_in) TRY(coder_params_copy(&in->sp, sizeof in->sp, sp_in, offsetof(coder_session_params, n_ctx), "session params"));
    const coder_session_params *sp = &in->sp;
    if (sp->n_ctx < CODER_CTX_AUTO || sp->n_batch <= 0 || sp->n_threads < 0 || sp->kv_type < 0 || sp->kv_type > CODER_KV_Q8_0_Q4_0)
        return coder_fail(CODER_ERR_INVALID_ARG, "session params: n_ctx %d, n_batch %d, n_threads %d, kv_type %d out of range",
                          (int)sp->n_ctx, (int)sp->n_batch, (int)sp->n_threads, (int)sp->kv_type);
    if (in->mp.n_gpu_layers < -1)
        return coder_fail(CODER_ERR_INVALID_ARG, "model params: n_gpu_layers %d (expected -1, 0 or a layer count)",
                          in->mp.n_gpu_layers);
    gguf_open_opts oo = {.use_mmap = true};
    TRY(gguf_open(path, &oo, &in->f));
    coder_status st = model_read_hparams(in->f, &in->hp);
    if (st == CODER_OK && (!gguf_find_tensor(in->f, "token_embd.weight") || !gguf_find_tensor(in->f, "blk.0.attn_q.weight")))
        st = coder_fail(CODER_ERR_UNSUPPORTED, "'%s': no token_embd.weight / blk.0.attn_q.weight tensors (a "
                        "vocabulary-only file?): nothing to plan", path);
    if (st != CODER_OK) {
        gguf_close(in->f);
        in->f = NULL;
        return st;
    }
    if (in->hp.vocab_size == 0)   /* no <arch>.vocab_size key: the loader takes the tokenizer's count = embedding rows */
        in->hp.vocab_size = (int32_t)gguf_find_tensor(in->f, "token_embd.weight")->ne[1];
    return CODER_OK;
}

void plan_close(plan_input *in) {
    if (in->f) gguf_close(in->f);
    in->f = NULL;
}

int32_t plan_default_ctx(const model_hparams *hp) {
    return hp->n_ctx_train > 0 && hp->n_ctx_train < PLAN_DEFAULT_CTX ? hp->n_ctx_train : PLAN_DEFAULT_CTX;
}

void plan_compute(const plan_input *in, int32_t n_ctx_req, int32_t gpu_req, bool have_device, coder_plan *out) {
    const gguf_file *f = in->f;
    const model_hparams hp = in->hp;
    const coder_session_params sp = in->sp;
    const int32_t n_ctx = n_ctx_req > 0 ? n_ctx_req : plan_default_ctx(&hp);
    const int64_t n_batch = sp.n_batch < n_ctx ? sp.n_batch : n_ctx, threads = sp.n_threads ? sp.n_threads : coder_cpu_count();

    coder_plan p;
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    p.n_ctx = n_ctx;
    p.n_layers = hp.n_layers;
    p.kv_type = sp.kv_type;
    p.file_bytes = gguf_file_size(f);
    const uint64_t header = gguf_data_offset(f);
    uint64_t embd = 0, embd_row = 0;
    bool float_matrix = false;   /* cpu_backend.c sizes the GEMM's f32 kind only for these */
    for (size_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        p.weight_bytes += t->nbytes;
        if (t->n_dims >= 2 && t->ne[1] > 1 && cpu_gemm_is_float(t->type)) float_matrix = true;
        if (!strcmp(t->name, "token_embd.weight")) {
            embd = t->nbytes;
            embd_row = t->ne[1] ? t->nbytes / t->ne[1] : 0;
        }
    }
    const int64_t width = (int64_t)hp.n_kv_heads * hp.head_dim;
    for (int t = 0; t < 4; t++)
        p.kv_bytes_per_token_by_type[t] = (uint64_t)hp.n_layers * (kv_row_bytes(t, width) + kv_v_row_bytes(t, width));
    p.kv_bytes_per_token = p.kv_bytes_per_token_by_type[sp.kv_type];
    p.kv_bytes = p.kv_bytes_per_token * (uint64_t)n_ctx;

    /* forward.c: x, h, q, k, v, att, gate, up for n_batch rows + one logits row (f32) */
    const uint64_t qw = (uint64_t)hp.n_heads * hp.head_dim, kw = (uint64_t)width, dim = (uint64_t)hp.dim;
    uint64_t act = (uint64_t)n_batch * (dim + plan_max(dim, qw) + 2 * qw + 2 * kw + 2 * (uint64_t)hp.ffn_dim) + hp.vocab_size;
    /* cpu_backend.c: matmul tiles, attention scores per thread, a small weight, rope table */
    const uint64_t max_cols = plan_max(plan_max(dim, (uint64_t)hp.ffn_dim), qw);
    /* (matmul scratch: the quantized activations of n_batch rows, in bytes) */
    const uint64_t mm_a = (uint64_t)cpu_matmul_scratch_bytes((int64_t)max_cols, n_batch > 0 ? n_batch : 1),
                   mm_g = (uint64_t)cpu_gemm_scratch_bytes((int64_t)max_cols, n_batch > 0 ? (int)n_batch : 1, (int)threads, float_matrix),
                   mm_bytes = mm_a > mm_g ? mm_a : mm_g;   /* cpu_backend.c: the larger of the two */
    uint64_t cpu = (uint64_t)cpu_attention_scratch_floats(n_ctx, hp.n_heads, hp.n_kv_heads, hp.head_dim) * (uint64_t)threads +
                   max_cols + (uint64_t)hp.head_dim;
    /* session.c: tokens and logits */
    p.scratch_bytes = (act + cpu + hp.vocab_size) * 4u + mm_bytes + (uint64_t)n_ctx * 4u;
    p.model_bytes = (uint64_t)hp.vocab_size * PLAN_TABLE_BYTES_PER_TOKEN + header + PLAN_PROCESS_BYTES;

    /* GPU layers: only when a device exists (the CPU backend otherwise runs everything). The
     * device holds the last `gpu` layers' weights and KV, the output head, the GPU stage's
     * activation buffers and the CUDA context's scratch (cuda_glue.c, cuda_api.h). */
    int32_t gpu = 0;
    if (gpu_req != 0 && have_device) gpu = gpu_req < 0 || gpu_req > hp.n_layers ? hp.n_layers : gpu_req;
    p.gpu_layers = gpu;
    const bool tied = !gguf_find_tensor(f, "output.weight");
    uint64_t dev_w = 0;
    int64_t largest = 0;
    for (size_t i = 0; gpu && i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (!plan_on_device(t, hp.n_layers, gpu, tied)) continue;
        uint64_t rb = 0;   /* rows x columns: the device stores some formats regrouped (cuda_api.h) */
        const bool sized = quant_row_bytes(t->type, t->ne[0], &rb) && rb > 0;
        dev_w += sized ? cuda_device_tensor_bytes(t->type, (int64_t)(t->nbytes / rb), (int64_t)t->ne[0], t->nbytes) : t->nbytes;
        if (t->n_dims >= 2 && t->ne[1] > 1 && (int64_t)(t->ne[0] * t->ne[1]) > largest) largest = (int64_t)(t->ne[0] * t->ne[1]);
    }
    const uint64_t kv_layer = p.kv_bytes / (uint64_t)hp.n_layers;
    const cuda_ctx_params cp = {.max_tokens = (int32_t)n_batch, .max_cols = (int64_t)max_cols,
                                .deq_elems = cuda_deq_elems(largest, (int64_t)max_cols), .max_heads = hp.n_heads,
                                .head_dim = hp.head_dim};
    p.device_bytes = gpu ? dev_w + kv_layer * (uint64_t)gpu + (act + hp.vocab_size) * 4u + cuda_ctx_scratch_bytes(&cp) : 0;

    /* token_embd pages in one row per distinct token: at most n_ctx rows (or the whole table) */
    uint64_t embd_resident = embd_row ? embd_row * (uint64_t)n_ctx : embd;
    if (embd_resident > embd || !gguf_find_tensor(f, "output.weight")) embd_resident = embd;   /* tied: the output matmul reads it all */
    if (!in->mp.use_mmap) embd_resident = embd;   /* read mode: the whole file is copied */
    const uint64_t resident_w = p.weight_bytes - embd + embd_resident;
    p.host_bytes = resident_w + p.model_bytes + p.scratch_bytes + (p.kv_bytes - kv_layer * (uint64_t)gpu);
    *out = p;
}

CODER_EXPORT coder_status coder_plan_memory(const char *path, const coder_model_params *mp,
                                            const coder_session_params *sp, coder_plan *plan) {
    if (!path || !plan) return coder_fail(CODER_ERR_INVALID_ARG, "%s is NULL", !path ? "path" : "plan");
    if (plan->size != sizeof *plan)
        return coder_fail(CODER_ERR_INVALID_ARG, "plan->size = %zu: set it to sizeof(coder_plan) (%zu)", plan->size,
                          sizeof *plan);
    plan_input in;
    TRY(plan_open(path, mp, sp, &in));
    if (in.sp.n_ctx == CODER_CTX_AUTO) {
        plan_close(&in);
        return coder_fail(CODER_ERR_INVALID_ARG, "session params: n_ctx CODER_CTX_AUTO is resolved by coder_plan_fit, "
                          "not coder_plan_memory");
    }
    plan_compute(&in, in.sp.n_ctx, in.mp.n_gpu_layers, device_count() > 0, plan);
    plan_close(&in);
    return CODER_OK;
}
