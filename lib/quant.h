/* quant.h - ggml tensor types: exact block layouts, sizes, and the scalar dequantizers and
 * reference quantizers. These scalar routines are the reference every fast path (SIMD, CUDA) is
 * tested against. Layouts: ../shared/docs/FORMATS.md section 2. */
#ifndef CODER_QUANT_H
#define CODER_QUANT_H

#include "core.h"

/* ggml type ids as stored in GGUF tensor infos. */
enum {
    QT_F32 = 0, QT_F16 = 1, QT_Q4_0 = 2, QT_Q4_1 = 3, QT_Q5_0 = 6, QT_Q5_1 = 7, QT_Q8_0 = 8,
    QT_Q8_1 = 9, QT_Q2_K = 10, QT_Q3_K = 11, QT_Q4_K = 12, QT_Q5_K = 13, QT_Q6_K = 14,
    QT_Q8_K = 15, QT_I8 = 24, QT_I16 = 25, QT_I32 = 26, QT_I64 = 27, QT_F64 = 28, QT_BF16 = 30,
    QT_COUNT = 40
};

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef uint16_t f16_t;   /* IEEE binary16 bits */
typedef uint16_t bf16_t;  /* bfloat16 bits      */

typedef struct { f16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
typedef struct { f16_t d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
typedef struct { f16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
typedef struct { f16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
typedef struct { f16_t d; int8_t qs[QK8_0]; } block_q8_0;
/* Four Q8_0 rows interleaved block by block (lib/repack.c): for each block column, the 4 rows'
 * scales, then their quants. 136 bytes, the same as the 4 blocks it holds. */
typedef struct { f16_t d[4]; int8_t qs[4][QK8_0]; } block_q8_0x4;
typedef struct { f16_t d, s; int8_t qs[QK8_0]; } block_q8_1;       /* s = d * sum(qs) */
typedef struct { f16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_k;
typedef struct { f16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_k;
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; f16_t d; } block_q6_k;
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_k;

_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");
_Static_assert(sizeof(block_q8_1) == 36, "block_q8_1 size");
_Static_assert(sizeof(block_q4_k) == 144, "block_q4_k size");
_Static_assert(sizeof(block_q5_k) == 176, "block_q5_k size");
_Static_assert(sizeof(block_q6_k) == 210, "block_q6_k size");
_Static_assert(sizeof(block_q8_k) == 292, "block_q8_k size");

/* Type table. Unknown or removed ids: quant_type_known() false, sizes 0, name "?". */
bool quant_type_known(uint32_t type);           /* a valid ggml type id (incl. ones we can't run) */
bool quant_type_supported(uint32_t type);       /* we can dequantize it                           */
const char *quant_type_name(uint32_t type);     /* "Q4_K", "F16", ...                             */
uint32_t quant_block_size(uint32_t type);       /* elements per block                             */
uint32_t quant_type_size(uint32_t type);        /* bytes per block                                */
/* Bytes of a row of n elements; false if n is not a multiple of the block size, or on overflow. */
bool quant_row_bytes(uint32_t type, uint64_t n, uint64_t *out);

/* Scalars (exact, round-to-nearest-even for the narrowing conversions). */
float fp16_to_fp32(f16_t h);
f16_t fp32_to_fp16(float f);
float bf16_to_fp32(bf16_t h);
bf16_t fp32_to_bf16(float f);

/* Dequantizes n elements (a multiple of the block size) starting at a block boundary. Supported:
 * F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K (and Q8_K for tests).
 * CODER_ERR_UNSUPPORTED for other types, CODER_ERR_INVALID_ARG for a bad n. */
coder_status dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);

/* Reference quantizers (llama.cpp-compatible results): F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K,
 * Q5_K, Q6_K, plus the activation formats Q8_1 and Q8_K. n a multiple of the block size. */
coder_status quantize_row_ref(uint32_t type, const float *src, void *dst, int64_t n);

/* 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block from its 12 packed scale
 * bytes (FORMATS.md 2.4). Shared by the dequantizers, the reference quantizer and the CPU kernels. */
static inline void quant_k4_scale_min(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

#endif
