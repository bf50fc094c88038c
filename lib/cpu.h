/* cpu.h - internals of the CPU backend: the per-ISA kernel table (cpu_matmul.c), the threaded
 * matmul, attention (cpu_attention.c) and the small ops (cpu_ops.c).
 *
 * Matmul method: the activation rows are quantized ONCE per matmul to an 8-bit block format
 * (cpu_q8a: 32-value blocks for Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 weights; block_q8_k: 256-value blocks
 * for Q4_K/Q5_K/Q6_K), then each weight row is dotted with them by an integer kernel that reads
 * the weights as stored (k->qdot[type]); F32/F16/BF16 weights are dotted with the f32 activations
 * directly. This is the rounding llama.cpp's CPU backend has (refdata variant `q4_k_m`). */
#ifndef CODER_CPU_H
#define CODER_CPU_H

#include <string.h>

#include "backend.h"
#include "kv_cache.h"
#include "quant.h"
#include "threadpool.h"

typedef enum cpu_isa { CPU_ISA_SCALAR = 0, CPU_ISA_AVX2 = 1, CPU_ISA_AVX512 = 2 } cpu_isa;

/* Dequantizes n elements (n a multiple of the type's block size) of one row. */
typedef void (*cpu_dequant_fn)(const void *src, float *dst, int64_t n);

/* Activation formats a weight type's dot kernel takes (cpu_act_format). */
typedef enum cpu_act { CPU_ACT_F32 = 0, CPU_ACT_Q8A = 1, CPU_ACT_Q8K = 2 } cpu_act;

/* A 32-value activation block: x[i] ~ d * qs[i], qs = round-half-even(x / d), d = amax / 127,
 * ds = d * sum(qs) (the min term of Q4_1/Q5_1). 40 bytes. */
typedef struct cpu_q8a { float d, ds; int8_t qs[32]; } cpu_q8a;
_Static_assert(sizeof(cpu_q8a) == 40, "cpu_q8a size");

/* Quantizes n floats (n a multiple of the block: 32 for Q8A, 256 for Q8K) to dst. Every level
 * gives bit-identical blocks (round-half-even, same amax/d arithmetic). */
typedef void (*cpu_quant_fn)(const float *x, void *dst, int64_t n);

/* out[t] = (row w of n elements) . (activation row t) for t < nt (1..CPU_QDOT_NT): activation row
 * t starts x_stride bytes after row t-1 and is in the format cpu_act_format(type) says (f32 for
 * F32/F16/BF16). The weight row is read once for all nt rows (the prefill tile). */
#define CPU_QDOT_NT 4
typedef void (*cpu_qdot_fn)(int64_t n, const void *w, const void *x, size_t x_stride, int nt, float *out);

/* Decode: out[r] = (weight row r) . x for r < nr, one activation row x in the cpu_act_format(type)
 * format, weight rows row_bytes apart (cpu_gemv_impl.h). A row's result does not depend on nr or
 * on where the row sits in the call. */
typedef void (*cpu_gemv_fn)(int64_t n, const void *w, size_t row_bytes, int64_t nr, const void *x, float *out);

/* One instruction-set level's kernels. The scalar table is the reference the others are tested
 * against; it is plain C (no intrinsics) and gives the same results on any machine. */
typedef struct cpu_kernels {
    cpu_isa isa;
    const char *name;                               /* "scalar", "avx2", "avx512"            */
    cpu_dequant_fn dequant[QT_COUNT];               /* NULL where the type is unsupported     */
    float (*dot)(const float *a, const float *b, int64_t n);
    /* out[i] = w[i*stride .. +n) . x  for i < 4 (four weight rows against one activation row) */
    void (*dot4)(const float *w, size_t stride, const float *x, int64_t n, float out[4]);
    float (*dot_f16)(const uint16_t *a, const float *b, int64_t n);
    void (*axpy)(float *y, float a, const float *x, int64_t n);          /* y += a*x          */
    void (*axpy_f16)(float *y, float a, const uint16_t *x, int64_t n);
    void (*to_f16)(const float *x, uint16_t *y, int64_t n);             /* round to nearest even */
    void (*swiglu)(float *gate, const float *up, int64_t n);            /* gate = silu(gate)*up */
    void (*softmax)(float *x, int64_t n);           /* x = exp(x - max) / sum, in place        */
    cpu_quant_fn quant[3];                          /* [CPU_ACT_Q8A], [CPU_ACT_Q8K]           */
    cpu_qdot_fn qdot[QT_COUNT];                     /* NULL where the type is unsupported     */
    cpu_gemv_fn gemv[QT_COUNT];                     /* NULL exactly where qdot is             */
    /* Decode over rows repacked 4 at a time (repack.c: Q8_0 as block_q8_0x4, the other integer
     * types block by block; nr a multiple of 4, row_bytes the rows' own size): one sequential
     * stream instead of four. Same bits as gemv[type]. NULL for the float types. */
    cpu_gemv_fn gemv_x4[QT_COUNT];
} cpu_kernels;

/* The activation format the dot kernel of weight type t takes. */
cpu_act cpu_act_format(uint32_t type);
/* Bytes of one activation row of n values in format a (n a multiple of its block). */
size_t cpu_act_row_bytes(cpu_act a, int64_t n);

/* The table for isa, or NULL when this CPU lacks it. */
const cpu_kernels *cpu_kernels_for(cpu_isa isa);
/* The best table this CPU supports; $CODER_CPU_ISA=scalar|avx2|avx512 caps the choice. */
const cpu_kernels *cpu_kernels_best(void);

/* Exact scalar conversions (IEEE binary16, round to nearest even). */
static inline float cpu_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 31u, m = h & 1023u, bits;
    if (e == 0) {
        float f = (float)m * 0x1p-24f;
        return sign ? -f : f;
    }
    bits = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e + 112u) << 23) | (m << 13));
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static inline uint16_t cpu_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);   /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) {                                    /* half subnormal or zero   */
        float v;
        memcpy(&v, &ax, 4);
        v += 0.5f;                          /* the FPU rounds |f| to a multiple of 2^-24  */
        uint32_t b;
        memcpy(&b, &v, 4);
        return (uint16_t)(sign | (b - 0x3f000000u));
    }
    ax += 0xc8000fffu + ((ax >> 13) & 1u); /* rebias exponent 127 -> 15, round half even */
    return (uint16_t)(sign | (ax >> 13));
}

/* Bytes of matmul scratch (the quantized activations) for up to n_rows rows of max_cols values;
 * a matmul of more rows than fit is done in several passes. */
size_t cpu_matmul_scratch_bytes(int64_t max_cols, int n_rows);

/* y[t] = W @ x[t] for t < n:  W (rows, cols) @ x [n][cols] -> y [n][rows], split over the pool.
 * qbuf: qbuf_bytes (>= cpu_matmul_scratch_bytes(cols, 1)) for the quantized activations, 64-byte
 * aligned. */
coder_status cpu_matmul(threadpool *tp, const cpu_kernels *k, const weight *W, const float *x, int n,
                        float *y, void *qbuf, size_t qbuf_bytes);

/* Rows [r0, r1) of a repacked weight (W->x4; r0, r1 multiples of 4) against n activation rows
 * xs bytes apart: y[t][r] = row r . x_t, y rows W->rows apart (cpu_matvec.c). */
void cpu_gemv_x4_tokens(const cpu_kernels *k, const weight *W, int64_t r0, int64_t r1, const void *xa, size_t xs, int n, float *y);
/* cpu_matmul for n <= CPU_QDOT_NT (cpu_matvec.c): qbuf holds n rows of xs bytes (the checked
 * activation stride; ignored for f32 activations). */
coder_status cpu_matvec(threadpool *tp, const cpu_kernels *k, const weight *W, const float *x, int n, float *y,
                        void *qbuf, size_t xs);
/* Up to CPU_MATVEC_MAX weights against the same x in one dispatch (one pool wake-up and join
 * instead of one each): W[i] @ x -> y[i]. Every W[i] must have W[0]'s columns and activation
 * format (cpu_matmul_many checks). */
#define CPU_MATVEC_MAX 3
coder_status cpu_matvec_many(threadpool *tp, const cpu_kernels *k, const weight *const *W, int count, const float *x, int n,
                             float *const *y, void *qbuf, size_t xs);
/* cpu_matmul of each W[i] (count <= CPU_MATVEC_MAX) with the same x: one dispatch (cpu_matvec_many)
 * for decode-sized n when the weights share their columns and activation format, else one
 * cpu_matmul each. Results are those of cpu_matmul bit for bit. */
coder_status cpu_matmul_many(threadpool *tp, const cpu_kernels *k, const weight *const *W, int count, const float *x, int n,
                             float *const *y, void *qbuf, size_t qbuf_bytes);

/* Dot product of one stored row of `type` (n elements) with x, through k; tmp holds n floats. */
float cpu_dot_row(const cpu_kernels *k, uint32_t type, const void *row, const float *x, int64_t n, float *tmp);

/* --- cpu_ops.c ---------------------------------------------------------------------------- */
/* y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w   (w may be NULL: no scale); y may alias x.      */
void cpu_rms_norm(const float *x, const float *w, int64_t n_rows, int64_t width, float eps, float *y);
/* RoPE parameters resolved from hparams once per session. */
typedef struct cpu_rope {
    int style;                /* ROPE_NORM / ROPE_NEOX                                        */
    int n_rot, head_dim;
    float theta_scale;        /* base^(-2/n_rot)                                             */
    float freq_scale, ext_factor, attn_factor;
    float corr_dims[2];       /* YaRN ramp bounds                                            */
    const float *freq_factors;/* [n_rot/2] or NULL                                           */
} cpu_rope;
void cpu_rope_init(cpu_rope *r, const model_hparams *hp, const float *freq_factors);
/* Rotates x [n][n_heads*head_dim] in place, token t at position pos0 + t. cs: n_rot floats. */
void cpu_rope_apply(const cpu_rope *r, float *x, int n, int n_heads, int32_t pos0, float *cs);
void cpu_swiglu(float *gate, const float *up, int64_t n);
/* gate[i] = gelu(gate[i]) * up[i], GELU in its tanh form (as gemma and ggml use). */
void cpu_geglu(float *gate, const float *up, int64_t n);
/* In-place softmax of x[0..n). */
void cpu_softmax(float *x, int64_t n);

/* --- cpu_attention.c ------------------------------------------------------------------------ */
typedef struct cpu_attention_args {
    const kv_cache *kv;
    int layer, n, n_heads, n_kv_heads, head_dim;
    int32_t pos0;
    int32_t window;           /* > 0: position p sees keys p-window+1 .. p only (gemma3 SWA)   */
    float scale;              /* q.k scale (hp.attn_scale)                                     */
    const float *q;           /* [n][n_heads*head_dim]                                        */
    float *out;               /* [n][n_heads*head_dim]                                        */
    float *scratch;           /* threads * cpu_attention_scratch_floats(...) floats             */
    const cpu_kernels *k;
} cpu_attention_args;
void cpu_attention(threadpool *tp, const cpu_attention_args *a);
/* Scratch floats one thread of cpu_attention needs (scores of a head group, two converted rows). */
size_t cpu_attention_scratch_floats(int32_t n_ctx, int n_heads, int n_kv_heads, int head_dim);
/* Writes k, v [n][width] to the cache rows pos0.. of layer. */
void cpu_kv_write(const cpu_kernels *k, kv_cache *kv, int layer, const float *kr, const float *vr, int n, int32_t pos0);

#endif
