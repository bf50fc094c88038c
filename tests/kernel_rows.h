/* kernel_rows.h - random weight rows for the CPU kernel tests (test_cpu_qdot, test_cpu_gemv,
 * test_cpu_gemm, test_cpu_kernels, test_batch_invariant): a xorshift generator seeded with KR_SEED (each test defines its own, so its data
 * stay what they were), the weight types with a CPU kernel, and fill_row: raw random bytes, so every
 * q value occurs (Q8_0 -128 and negative Q6_K scales included), with sane f16 block scales. */
#ifndef CODER_KERNEL_ROWS_H
#define CODER_KERNEL_ROWS_H

#include <stdint.h>
#include <string.h>

#include "quant.h"

static uint64_t rng = KR_SEED;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}
static float rndf(void) { return ((float)(rnd() % 2000001) / 1000000.0f) - 1.0f; }

#ifndef KR_NO_TYPE_LIST   /* a test with its own list of types defines this */
static const uint32_t types[] = {QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0,
                                 QT_Q5_1, QT_Q4_K, QT_Q5_K, QT_Q6_K};
#endif

static void fill_row(uint32_t t, void *dst, int64_t n) {
    uint64_t bytes;
    quant_row_bytes(t, (uint64_t)n, &bytes);
    uint8_t *p = dst;
    for (uint64_t i = 0; i < bytes; i++) p[i] = (uint8_t)rnd();
    const uint64_t bs = quant_type_size(t), nb = bytes / bs;
    for (uint64_t b = 0; b < nb; b++) {
        uint8_t *blk = p + b * bs;
        f16_t s1 = fp32_to_fp16(rndf() * 0.05f), s2 = fp32_to_fp16(rndf() * 0.05f);
        switch (t) {
        case QT_F32: { float f = rndf(); memcpy(blk, &f, 4); break; }
        case QT_F16: { f16_t h = fp32_to_fp16(rndf()); memcpy(blk, &h, 2); break; }
        case QT_BF16: { bf16_t h = fp32_to_bf16(rndf()); memcpy(blk, &h, 2); break; }
        case QT_Q6_K: memcpy(blk + 208, &s1, 2); break;
        case QT_Q8_0: case QT_Q4_0: case QT_Q5_0: memcpy(blk, &s1, 2); break;
        default: memcpy(blk, &s1, 2); memcpy(blk + 2, &s2, 2); break;
        }
    }
}

#endif
