/* quant.c - ggml type table, exact fp16/bf16 conversions and the scalar dequantizers.
 *
 * The dequantizers are the reference every fast path is tested against, so they evaluate each
 * value with the same float operations, in the same order, as llama.cpp's scalar code (e.g. Q4_K
 * is (d*sc)*q - dmin*m, Q6_K is (d*sc)*q): tests/test_quant.c checks them bit for bit against
 * llama.cpp's own output (refdata/dequant). Layouts: ../shared/docs/FORMATS.md section 2. */
#include <string.h>

#include "quant.h"

/* ---- type table --------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    uint32_t block;   /* elements per block; 0 = not a valid id */
    uint32_t bytes;   /* bytes per block                          */
    bool supported;   /* dequantize_row handles it                */
} quant_type_info;

/* Ids 4, 5 (Q4_2/Q4_3), 31-33 and 36-38 (repacked variants) were removed and are never valid. */
static const quant_type_info quant_types[QT_COUNT] = {
    [QT_F32] = {"F32", 1, 4, true},        [QT_F16] = {"F16", 1, 2, true},
    [QT_Q4_0] = {"Q4_0", 32, 18, true},    [QT_Q4_1] = {"Q4_1", 32, 20, true},
    [QT_Q5_0] = {"Q5_0", 32, 22, true},    [QT_Q5_1] = {"Q5_1", 32, 24, true},
    [QT_Q8_0] = {"Q8_0", 32, 34, true},    [QT_Q8_1] = {"Q8_1", 32, 36, false},
    [QT_Q2_K] = {"Q2_K", 256, 84, false},  [QT_Q3_K] = {"Q3_K", 256, 110, false},
    [QT_Q4_K] = {"Q4_K", 256, 144, true},  [QT_Q5_K] = {"Q5_K", 256, 176, true},
    [QT_Q6_K] = {"Q6_K", 256, 210, true},  [QT_Q8_K] = {"Q8_K", 256, 292, true},
    [16] = {"IQ2_XXS", 256, 66, false},    [17] = {"IQ2_XS", 256, 74, false},
    [18] = {"IQ3_XXS", 256, 98, false},    [19] = {"IQ1_S", 256, 50, false},
    [20] = {"IQ4_NL", 32, 18, false},      [21] = {"IQ3_S", 256, 110, false},
    [22] = {"IQ2_S", 256, 82, false},      [23] = {"IQ4_XS", 256, 136, false},
    [QT_I8] = {"I8", 1, 1, false},         [QT_I16] = {"I16", 1, 2, false},
    [QT_I32] = {"I32", 1, 4, false},       [QT_I64] = {"I64", 1, 8, false},
    [QT_F64] = {"F64", 1, 8, false},       [29] = {"IQ1_M", 256, 56, false},
    [QT_BF16] = {"BF16", 1, 2, true},      [34] = {"TQ1_0", 256, 54, false},
    [35] = {"TQ2_0", 256, 66, false},      [39] = {"MXFP4", 32, 17, false},
};

bool quant_type_known(uint32_t type) { return type < QT_COUNT && quant_types[type].block != 0; }
bool quant_type_supported(uint32_t type) { return quant_type_known(type) && quant_types[type].supported; }
const char *quant_type_name(uint32_t type) { return quant_type_known(type) ? quant_types[type].name : "?"; }
uint32_t quant_block_size(uint32_t type) { return quant_type_known(type) ? quant_types[type].block : 0; }
uint32_t quant_type_size(uint32_t type) { return quant_type_known(type) ? quant_types[type].bytes : 0; }

bool quant_row_bytes(uint32_t type, uint64_t n, uint64_t *out) {
    if (!quant_type_known(type)) return false;
    uint64_t bs = quant_types[type].block;
    if (n % bs != 0) return false;
    return !ck_mul(n / bs, quant_types[type].bytes, out);
}

/* ---- scalars ------------------------------------------------------------------------------ */

static inline float quant_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t quant_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

float fp16_to_fp32(f16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f) return quant_f32_from_bits(sign | 0x7f800000u | (m << 13)); /* inf, NaN (payload kept) */
    if (e == 0) {
        if (m == 0) return quant_f32_from_bits(sign);
        /* subnormal m * 2^-24: shift the leading 1 up to bit 10, lowering the exponent */
        int ex = 1;
        while (!(m & 0x400)) { m <<= 1; ex--; }
        return quant_f32_from_bits(sign | ((uint32_t)(ex + 112) << 23) | ((m & 0x3ff) << 13));
    }
    return quant_f32_from_bits(sign | ((e + 112) << 23) | (m << 13));
}

/* Round to nearest, ties to even, on the integer bit patterns. NaN payloads are kept (top 10
 * bits; a payload that would vanish becomes the quiet NaN), so f16 -> f32 -> f16 is the identity
 * on all 65536 patterns. */
f16_t fp32_to_fp16(float f) {
    uint32_t x = quant_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) {
        uint32_t p = (ax >> 13) & 0x3ff;
        return (uint16_t)(sign | 0x7c00 | (p ? p : 0x200));
    }
    if (ax >= 0x47800000u) return (uint16_t)(sign | 0x7c00);   /* >= 65536 (and inf) */
    if (ax >= 0x38800000u) {                                   /* result normal (>= 2^-14) */
        uint32_t r = ax - 0x38000000u;                         /* rebias exponent 127 -> 15 */
        uint32_t h = r >> 13, rem = r & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;   /* may carry into inf: correct */
        return (uint16_t)(sign | h);
    }
    if (ax < 0x33000000u) return sign;                         /* < 2^-25 rounds to zero */
    /* subnormal result: round(value * 2^24); value = mant * 2^(e-150) */
    uint32_t e = ax >> 23, mant = (ax & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;                                  /* 14..24 */
    uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;           /* may become 0x400: correct */
    return (uint16_t)(sign | h);
}

float bf16_to_fp32(bf16_t h) { return quant_f32_from_bits((uint32_t)h << 16); }

bf16_t fp32_to_bf16(float f) {
    uint32_t x = quant_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((x >> 16) | 0x40); /* quiet NaN */
    return (bf16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* ---- dequantizers: one super-block / block at a time --------------------------------------- */

static void quant_deq_q4_0(const block_q4_0 *b, float *y) {
    float d = fp16_to_fp32(b->d);
    for (int l = 0; l < 16; l++) {
        y[l] = (float)((b->qs[l] & 0xf) - 8) * d;
        y[l + 16] = (float)((b->qs[l] >> 4) - 8) * d;
    }
}

static void quant_deq_q4_1(const block_q4_1 *b, float *y) {
    float d = fp16_to_fp32(b->d), m = fp16_to_fp32(b->m);
    for (int l = 0; l < 16; l++) {
        y[l] = (float)(b->qs[l] & 0xf) * d + m;
        y[l + 16] = (float)(b->qs[l] >> 4) * d + m;
    }
}

static void quant_deq_q5_0(const block_q5_0 *b, float *y) {
    float d = fp16_to_fp32(b->d);
    uint32_t qh;
    memcpy(&qh, b->qh, 4);  /* bit i = 5th bit of element i */
    for (int l = 0; l < 16; l++) {
        int q0 = (b->qs[l] & 0xf) | (int)(((qh >> l) & 1) << 4);
        int q1 = (b->qs[l] >> 4) | (int)(((qh >> (l + 16)) & 1) << 4);
        y[l] = (float)(q0 - 16) * d;
        y[l + 16] = (float)(q1 - 16) * d;
    }
}

static void quant_deq_q5_1(const block_q5_1 *b, float *y) {
    float d = fp16_to_fp32(b->d), m = fp16_to_fp32(b->m);
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    for (int l = 0; l < 16; l++) {
        int q0 = (b->qs[l] & 0xf) | (int)(((qh >> l) & 1) << 4);
        int q1 = (b->qs[l] >> 4) | (int)(((qh >> (l + 16)) & 1) << 4);
        y[l] = (float)q0 * d + m;
        y[l + 16] = (float)q1 * d + m;
    }
}

static void quant_deq_q8_0(const block_q8_0 *b, float *y) {
    float d = fp16_to_fp32(b->d);
    for (int l = 0; l < 32; l++) y[l] = (float)b->qs[l] * d;
}


static void quant_deq_q4_k(const block_q4_k *b, float *y) {
    float d = fp16_to_fp32(b->d), dmin = fp16_to_fp32(b->dmin);
    const uint8_t *q = b->qs;
    /* 64 elements per step: sub-block 2c in the low nibbles, 2c+1 in the high nibbles */
    for (int c = 0; c < 4; c++, q += 32, y += 64) {
        int sc, m;
        quant_k4_scale_min(2 * c, b->scales, &sc, &m);
        float d1 = d * sc, m1 = dmin * m;
        quant_k4_scale_min(2 * c + 1, b->scales, &sc, &m);
        float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) y[l] = d1 * (float)(q[l] & 0xf) - m1;
        for (int l = 0; l < 32; l++) y[32 + l] = d2 * (float)(q[l] >> 4) - m2;
    }
}

static void quant_deq_q5_k(const block_q5_k *b, float *y) {
    float d = fp16_to_fp32(b->d), dmin = fp16_to_fp32(b->dmin);
    const uint8_t *q = b->qs;
    for (int c = 0; c < 4; c++, q += 32, y += 64) {
        int sc, m;
        quant_k4_scale_min(2 * c, b->scales, &sc, &m);
        float d1 = d * sc, m1 = dmin * m;
        quant_k4_scale_min(2 * c + 1, b->scales, &sc, &m);
        float d2 = d * sc, m2 = dmin * m;
        int b1 = 2 * c, b2 = 2 * c + 1;  /* bit j of qh[l] is the high bit of element 32j + l */
        for (int l = 0; l < 32; l++)
            y[l] = d1 * (float)((q[l] & 0xf) + (((b->qh[l] >> b1) & 1) << 4)) - m1;
        for (int l = 0; l < 32; l++)
            y[32 + l] = d2 * (float)((q[l] >> 4) + (((b->qh[l] >> b2) & 1) << 4)) - m2;
    }
}

static void quant_deq_q6_k(const block_q6_k *b, float *y) {
    float d = fp16_to_fp32(b->d);
    const uint8_t *ql = b->ql, *qh = b->qh;
    const int8_t *sc = b->scales;
    /* two halves of 128; in each, ql[0..63] low/high nibbles and qh[0..31] 2-bit fields */
    for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is + 0] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
    }
}

static void quant_deq_q8_k(const block_q8_k *b, float *y) {
    for (int l = 0; l < QK_K; l++) y[l] = b->d * (float)b->qs[l];
}

coder_status dequantize_row(uint32_t type, const void *src, float *dst, int64_t n) {
    if (!quant_type_supported(type))
        return coder_fail(CODER_ERR_UNSUPPORTED, "dequantize: tensor type %u (%s) is not supported",
                          type, quant_type_name(type));
    int64_t bs = quant_types[type].block;
    if (n < 0 || n % bs != 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "dequantize %s: n = %lld is not a multiple of %lld",
                          quant_types[type].name, (long long)n, (long long)bs);
    int64_t nb = n / bs;
    const uint8_t *p = src;
    size_t sz = quant_types[type].bytes;
    switch (type) {
    case QT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case QT_F16:
        for (int64_t i = 0; i < n; i++) { f16_t h; memcpy(&h, p + 2 * i, 2); dst[i] = fp16_to_fp32(h); }
        break;
    case QT_BF16:
        for (int64_t i = 0; i < n; i++) { bf16_t h; memcpy(&h, p + 2 * i, 2); dst[i] = bf16_to_fp32(h); }
        break;
    /* Block structs have alignment 2 (4 for Q8_K), so rows from a file must be copied when the
     * source is not aligned; in practice GGUF data offsets are 32-aligned and block sizes even. */
#define QUANT_DEQ_LOOP(T, fn)                                                                      \
    for (int64_t i = 0; i < nb; i++) {                                                             \
        T blk;                                                                                     \
        memcpy(&blk, p + (size_t)i * sz, sizeof blk);                                              \
        fn(&blk, dst + i * bs);                                                                    \
    }                                                                                              \
    break;
    case QT_Q4_0: QUANT_DEQ_LOOP(block_q4_0, quant_deq_q4_0)
    case QT_Q4_1: QUANT_DEQ_LOOP(block_q4_1, quant_deq_q4_1)
    case QT_Q5_0: QUANT_DEQ_LOOP(block_q5_0, quant_deq_q5_0)
    case QT_Q5_1: QUANT_DEQ_LOOP(block_q5_1, quant_deq_q5_1)
    case QT_Q8_0: QUANT_DEQ_LOOP(block_q8_0, quant_deq_q8_0)
    case QT_Q4_K: QUANT_DEQ_LOOP(block_q4_k, quant_deq_q4_k)
    case QT_Q5_K: QUANT_DEQ_LOOP(block_q5_k, quant_deq_q5_k)
    case QT_Q6_K: QUANT_DEQ_LOOP(block_q6_k, quant_deq_q6_k)
    case QT_Q8_K: QUANT_DEQ_LOOP(block_q8_k, quant_deq_q8_k)
#undef QUANT_DEQ_LOOP
    default:
        return coder_fail(CODER_ERR_UNSUPPORTED, "dequantize: tensor type %u (%s) is not supported",
                          type, quant_type_name(type));
    }
    return CODER_OK;
}
