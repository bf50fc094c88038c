/* model.h - a loaded model: hyperparameters from metadata (table-driven per architecture), the
 * weight tensors bound by name with their types and shapes checked, and the tokenizer.
 * Immutable after coder_model_load; shared by any number of sessions and threads. */
#ifndef CODER_MODEL_H
#define CODER_MODEL_H

#include <stdatomic.h>

#include "gguf.h"
#include "tokenizer.h"

typedef enum arch_id { ARCH_LLAMA = 0, ARCH_QWEN2 = 1, ARCH_QWEN3 = 2, ARCH_GEMMA3 = 3 } arch_id;
typedef enum rope_style { ROPE_NORM = 0, ROPE_NEOX = 1 } rope_style;
typedef enum rope_scaling { ROPE_SCALING_NONE = 0, ROPE_SCALING_LINEAR = 1, ROPE_SCALING_YARN = 2 } rope_scaling;

/* Dimension glossary used everywhere: dim, ffn_dim, head_dim, n_heads, n_kv_heads, n_layers,
 * vocab_size. q has n_heads*head_dim rows, k and v n_kv_heads*head_dim. */
typedef struct model_hparams {
    arch_id arch;
    char arch_name[32];
    int32_t n_layers, dim, ffn_dim, n_heads, n_kv_heads, head_dim, n_rot;
    int32_t vocab_size, n_ctx_train;
    float rms_eps;
    rope_style rope;
    float rope_base;
    rope_scaling rope_scaling_type;
    float rope_freq_scale;        /* 1/factor                                          */
    int32_t yarn_orig_ctx;
    /* yarn_attn_factor is the metadata value (default 1). The YaRN magnitude correction
     * mscale = 1 + 0.1 ln(1/rope_freq_scale) is NOT folded in: the rope op multiplies
     * cos/sin by yarn_attn_factor * mscale when rope_scaling_type == ROPE_SCALING_YARN. */
    float yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
    bool has_qkv_bias, has_qk_norm, tied_output;
    /* Gemma 3 (defaults give the llama/qwen behaviour): */
    float embed_scale;            /* token embeddings are multiplied by this (gemma: sqrt(dim)) */
    float attn_scale;             /* scale of q.k (1/sqrt(head_dim) unless the arch says else) */
    bool act_gelu;                /* FFN: GELU(gate) * up instead of SiLU(gate) * up           */
    bool has_post_norms;          /* RMSNorm of the attention and FFN outputs before the add  */
    int32_t swa_window;           /* sliding-window layers see keys p-window+1 .. p; 0 = none */
    int32_t swa_pattern;          /* layer il is global when il % swa_pattern == swa_pattern-1 */
    float rope_base_swa;          /* RoPE base of the sliding-window layers                   */
} model_hparams;

/* True when layer il uses sliding-window attention (and the sliding-window RoPE base). */
static inline bool model_layer_is_swa(const model_hparams *hp, int il) {
    return hp->swa_window > 0 && hp->swa_pattern > 0 && il % hp->swa_pattern != hp->swa_pattern - 1;
}

/* A weight as stored in the file: `rows` outputs of `cols` inputs (GGUF ne = [cols, rows]); a 1-D
 * tensor has rows = 1. data points into the file bytes. */
typedef struct weight {
    const gguf_tensor *t;         /* NULL when the tensor is optional and absent        */
    uint32_t type;
    int64_t rows, cols;
    uint64_t row_bytes;
    const void *data;
    bool x4;                      /* rows repacked 4 at a time (repack.c)                */
} weight;

typedef struct layer_weights {
    weight attn_norm;
    weight wq, wk, wv, wo;
    weight bq, bk, bv;            /* qwen2 only                                         */
    weight q_norm, k_norm;        /* qwen3 only                                         */
    weight ffn_norm;
    weight w_gate, w_up, w_down;
    weight post_attn_norm, post_ffw_norm;   /* gemma3 only                              */
} layer_weights;

struct coder_model {
    gguf_file *file;
    tokenizer *tok;
    model_hparams hp;
    bool vocab_only;
    weight tok_embd, output_norm, output;   /* output = tok_embd when tied              */
    weight rope_freqs;                      /* optional (llama)                         */
    layer_weights *layers;                  /* n_layers                                 */
    int32_t chat_format;                    /* coder_chat_format recognised at load     */
    atomic_int n_sessions;                  /* coder_model_free refuses while > 0       */
    void *backend_data;                     /* backend-owned per-model state (CUDA)     */
    /* Called by coder_model_free (when set) to release backend_data. */
    void (*backend_free)(coder_model *m);
    coder_model_params params;              /* the load parameters (defaults filled in) */
    uint64_t n_params;                      /* elements of the bound weights (tied counted once) */
    uint64_t weight_bytes;                  /* bytes of the bound weights                */
    int32_t gpu_layers;                     /* layers placed on the GPU (set by the backend) */
    void *repacked;                         /* buffer of the repacked weights (repack.c), or NULL */
};

/* Reads and validates the hyperparameters of f (group D of BAD_INPUTS.md). */
coder_status model_read_hparams(const gguf_file *f, model_hparams *hp);
/* Binds every tensor by name, checking presence, type and shape against hp (m->file, m->hp set;
 * m->layers allocated with hp.n_layers entries). Sets tied_output, n_params, weight_bytes.
 * Missing tensor / wrong shape: CODER_ERR_FORMAT naming the tensor; a type we cannot compute
 * (quantized norm, Q2_K, IQ*): CODER_ERR_UNSUPPORTED; no block tensors at all: UNSUPPORTED.
 * Unknown extra tensors are logged (LOG_WARN) and ignored. */
coder_status model_bind_weights(coder_model *m);

/* Scans every bound weight for NaN/Inf (dequantizing row by row): CODER_ERR_FORMAT naming the
 * tensor and row. progress(frac in [lo, hi]) is called between tensors when set; a non-zero
 * return gives CODER_ERR_CANCELLED. */
coder_status model_validate_weights(const coder_model *m, float lo, float hi);

/* Repacks the quantized matrices the CPU runs (every layer and the output when gpu_layers is 0,
 * the first n_layers - gpu_layers layers of a split model) 4 rows at a time for
 * decode (repack.c says which, when and why). Not an error when it cannot: logs and keeps the
 * layout. $CODER_REPACK=0 turns it off. */
void model_repack(coder_model *m);
/* Row r of W as a standard row (row_bytes), gathered into tmp when W is repacked. */
const void *weight_row(const weight *W, int64_t r, void *tmp);

/* Calls m->params.progress (if any) with frac; CODER_ERR_CANCELLED when it returns non-zero. */
coder_status model_progress(const coder_model *m, float frac);

#endif
