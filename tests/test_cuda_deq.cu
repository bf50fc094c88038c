/* test_cuda_deq.cu - the CUDA kernels' block decoders run on the host:
 * - cuda/quant.cuh's deq<T>::run (the one decoder of every GGUF block format that the float
 *   mat-vec, both prefill paths and the embedding lookup use) against lib/quant.c's
 *   dequantize_row: every type the device layer takes, every group of 8 elements of rows of several
 *   widths, bit for bit;
 * - cuda/vdot.cuh (the int8-activation mat-vec of mmv_int8.cu): its activation quantizer against
 *   lib/quant_ref.c's Q8_0 quants, and a whole warp's lanes (vdot_lane for lanes 0..31, 1 and 8
 *   tokens) against a double-precision dot of the dequantized weights and activations. The routines are
 * __host__ __device__, so this needs nvcc but no GPU; it runs in every CUDA build's `make test`.
 * (On the device nvcc may fuse a multiply-add the host rounds twice: test_gpu covers that.)
 * Blocks are random bytes with sane f16 scales, then raw random bytes (NaN/Inf scales included:
 * NaN must stay NaN). Rows lie one after another as in the device copy, and no 2-, 8- or 16-byte
 * load may be misaligned (a fault on the device). */
#include <stdint.h>
#include <limits.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "../cuda/cuda_api.h"
#include "../cuda/vdot.cuh"
#include "../cuda/topk.cuh"
#include "test.h"

extern "C" {
/* lib/quant.h (a C header); coder_status is an int-sized enum, 0 = CODER_OK */
int dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);
uint32_t quant_block_size(uint32_t type);
uint32_t quant_type_size(uint32_t type);
int quantize_row_ref(uint32_t type, const float *src, void *dst, int64_t n);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* An f16 in +-0.1 (a plausible scale). */
static uint16_t sane_half(void) {
    __half h = __float2half_rn(((float)(next_u32() % 20001) - 10000.0f) * 1e-5f);
    return __half_as_ushort(h);
}

/* Offsets of the f16 scale fields of one block of `type` (-1 ends). */
static void scale_fields(uint32_t type, int off[3]) {
    off[0] = off[1] = off[2] = -1;
    switch (type) {
    case CQ_Q8_0: case CQ_Q4_0: case CQ_Q5_0: off[0] = 0; break;
    case CQ_Q4_1: case CQ_Q5_1: case CQ_Q4_K: case CQ_Q5_K: off[0] = 0; off[1] = 2; break;
    case CQ_Q6_K: off[0] = 208; break;
    default: break;
    }
}

static void fill_row(uint32_t type, uint8_t *row, size_t bytes, int64_t cols, bool sane) {
    for (size_t i = 0; i < bytes; i++) row[i] = (uint8_t)next_u32();
    if (!sane) return;
    if (type == CQ_F16) {
        for (int64_t i = 0; i < cols; i++) { uint16_t h = sane_half(); memcpy(row + 2 * i, &h, 2); }
    } else if (type == CQ_BF16) {
        for (int64_t i = 0; i < cols; i++) row[2 * i + 1] = (uint8_t)(0x3c + next_u32() % 8);   /* exponent ~2^-7..2^0 */
    } else if (type == CQ_F32) {
        for (int64_t i = 0; i < cols; i++) {
            float f = ((float)(next_u32() % 20001) - 10000.0f) * 1e-4f;
            memcpy(row + 4 * i, &f, 4);
        }
    } else {
        const size_t bs = quant_type_size(type);
        int off[3];
        scale_fields(type, off);
        for (size_t b = 0; b + bs <= bytes; b += bs)
            for (int k = 0; k < 3 && off[k] >= 0; k++) { uint16_t h = sane_half(); memcpy(row + b + off[k], &h, 2); }
    }
}

static bool same_bits(float a, float b) {
    if (a != a && b != b) return true;   /* both NaN: payloads may differ */
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y;
}

static void run8(uint32_t type, const uint8_t *row, int64_t i0, float v[8]) {
#define DEQ_RUN(T) deq<T>::run(row, i0, v)
    CQ_DISPATCH(type, DEQ_RUN, for (int k = 0; k < 8; k++) v[k] = 12345.0f)
#undef DEQ_RUN
}

TEST(deq_matches_quant_c_every_type) {
    static const uint32_t types[] = {CQ_F32, CQ_F16, CQ_BF16, CQ_Q8_0, CQ_Q4_0, CQ_Q4_1,
                                     CQ_Q5_0, CQ_Q5_1, CQ_Q4_K, CQ_Q5_K, CQ_Q6_K};
    static const int64_t widths[] = {256, 512, 896, 1536, 4864};
    long checked = 0;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const uint32_t type = types[t], bsz = quant_block_size(type), tsz = quant_type_size(type);
        CHECK_MSG(bsz > 0 && tsz > 0, "type %u unknown to lib/quant.c", type);
        for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
            const int64_t cols = widths[w];
            if (cols % bsz) continue;
            const size_t bytes = (size_t)(cols / bsz) * tsz;
            /* K-quant rows are read with aligned 8-byte loads on the device: their row sizes must
             * keep every row of the 256-byte aligned weight copy 16-byte aligned */
            if (type == CQ_Q4_K || type == CQ_Q5_K) CHECK_MSG(bytes % 16 == 0, "type %u row of %zu bytes", type, bytes);
            /* rows one after another, as in the device's weight copy (256-byte aligned start):
             * the third row starts wherever 2 * row_bytes puts it */
            uint8_t *rows = (uint8_t *)aligned_alloc(256, (3 * bytes + 255) / 256 * 256);
            float *ref = (float *)malloc((size_t)cols * sizeof *ref);
            CHECK(rows && ref);
            for (int pass = 0; pass < 6; pass++) {   /* 4 sane rows, 2 of raw bytes */
                uint8_t *row = rows + (size_t)(pass % 3) * bytes;
                fill_row(type, row, bytes, cols, pass < 4);
                const int rs = dequantize_row(type, row, ref, cols);
                int bad = -1;
                float got = 0, want = 0;
                for (int64_t i0 = 0; rs == 0 && i0 < cols && bad < 0; i0 += 8) {
                    float v[8];
                    run8(type, row, i0, v);
                    for (int k = 0; k < 8; k++)
                        if (!same_bits(v[k], ref[i0 + k])) {
                            bad = (int)(i0 + k), got = v[k], want = ref[i0 + k];
                            break;
                        }
                    checked += 8;
                }
                if (rs != 0 || bad >= 0) {
                    free(rows);
                    free(ref);
                }
                CHECK_MSG(rs == 0, "dequantize_row type %u failed", type);
                CHECK_MSG(bad < 0, "type %u, %lld columns, pass %d: element %d is %.9g on the device path, %.9g in quant.c",
                          type, (long long)cols, pass, bad, got, want);
            }
            free(rows);
            free(ref);
        }
    }
    printf("  info: %ld elements compared\n", checked);
    CHECK_MSG(cq_host_misaligned_loads() == 0, "%ld loads would be misaligned on the device", cq_host_misaligned_loads());
}

/* The grouped device layouts (backend.cu cuda_group_rows, quant.cuh): deq of the grouped rows gives lib/quant.c's
 * values of the GGUF rows bit for bit, at widths with full and partial last groups; every row
 * starts 16-byte aligned. */
TEST(grouped_rows_same_values) {
    static const uint32_t types[] = {CQ_Q8_0, CQ_Q4_0, CQ_Q5_0, CQ_Q6_K};
    static const int64_t widths[] = {256, 512, 896, 2048, 3584, 4864, 18944};
    long checked = 0;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const uint32_t type = types[t], gt = type + 100, bsz = quant_block_size(type), tsz = quant_type_size(type);
        CHECK(cuda_group_of(gt).bytes == (int)tsz && cuda_group_of(gt).block == (int)bsz);
        for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
            const int64_t cols = widths[w], nb = cols / bsz;
            if (cols % bsz) continue;
            const size_t bytes = (size_t)nb * tsz, gbytes = (size_t)cuda_group_row_bytes(gt, nb);
            CHECK_MSG(gbytes % 16 == 0 && gbytes >= bytes && gbytes <= bytes + (size_t)cuda_group_of(gt).head,
                      "type %u, %lld blocks: grouped row of %zu bytes for %zu", type, (long long)nb, gbytes, bytes);
            uint8_t *src = (uint8_t *)malloc(bytes), *rows = (uint8_t *)aligned_alloc(256, (3 * gbytes + 255) / 256 * 256);
            float *ref = (float *)malloc((size_t)cols * sizeof *ref);
            CHECK(src && rows && ref);
            for (int r = 0; r < 3; r++) {
                fill_row(type, src, bytes, cols, r < 2);
                uint8_t *row = rows + (size_t)r * gbytes;
                cuda_group_rows(type, src, 1, cols, bytes, row);
                CHECK(dequantize_row(type, src, ref, cols) == 0);
                for (int64_t i0 = 0; i0 < cols; i0 += 8) {
                    float v[8];
                    run8(gt, row, i0, v);
                    for (int k = 0; k < 8; k++)
                        CHECK_MSG(same_bits(v[k], ref[i0 + k]), "type %u, %lld columns, row %d: element %lld is %.9g grouped, %.9g in quant.c",
                                  type, (long long)cols, r, (long long)(i0 + k), v[k], ref[i0 + k]);
                    checked += 8;
                }
            }
            free(src), free(rows), free(ref);
        }
    }
    printf("  info: %ld elements compared\n", checked);
    CHECK_MSG(cq_host_misaligned_loads() == 0, "%ld loads would be misaligned on the device", cq_host_misaligned_loads());
}

/* x [nt][cols] -> xq, xd with the kernel's per-block rule (quant_q8_kernel, whose max and vote are
 * order-free). */
static void quantize_acts(const float *x, int nt, int64_t cols, int8_t *xq, float *xd) {
    const int xs = (int)cuda_xd_stride(cols);
    for (int t = 0; t < nt; t++)
        for (int64_t i = 0; i < cols / 32; i++) {
            const float *b = x + (int64_t)t * cols + 32 * i;
            float amax = 0.0f;
            bool fin = true;
            for (int k = 0; k < 32; k++) {
                amax = fmaxf(amax, fabsf(b[k]));
                fin = fin && isfinite(b[k]);
            }
            const float d = cq_q8_scale(amax, fin);
            xd[t * xs + i] = d;
            for (int k = 0; k < 32; k++) xq[(int64_t)t * cols + 32 * i + k] = cq_q8_value(b[k], d);
        }
}

/* The warp's 32 lanes over one row, NT tokens. */
template <int T, int NT>
static void warp_row(const uint8_t *row, int64_t cols, const int8_t *xq, const float *xd, float y[8]) {
    for (int t = 0; t < NT; t++) y[t] = 0.0f;
    for (int lane = 0; lane < 32; lane++) {
        float acc[NT] = {0};
        vdot_lane<T, NT>(row, lane, cols, xq, xd, (int)cuda_xd_stride(cols), acc);
        for (int t = 0; t < NT; t++) y[t] += acc[t];
    }
}

static void warp_row_any(uint32_t type, int nt, const uint8_t *row, int64_t cols, const int8_t *xq, const float *xd,
                         float y[8]) {
#define WR(T) (nt == 1 ? warp_row<T, 1>(row, cols, xq, xd, y) : warp_row<T, 8>(row, cols, xq, xd, y))
    VDOT_DISPATCH(type, WR, y[0] = 12345.0f)
#undef WR
}

TEST(vdot_matches_exact_dot_every_int_type) {
    static const uint32_t types[] = {CQ_Q8_0, CQ_Q4_0, CQ_Q5_0, CQ_Q4_K, CQ_Q5_K, CQ_Q6_K};
    static const int64_t widths[] = {256, 512, 896, 2080, 3584, 4864};   /* 2080: padded scale stride */
    enum { NT = 8 };
    double worst = 0;
    long rows_checked = 0;
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        const int64_t cols = widths[w];
        const int xs = (int)cuda_xd_stride(cols);
        float *x = (float *)malloc((size_t)(NT * cols) * sizeof *x), *wref = (float *)malloc((size_t)cols * sizeof *wref);
        int8_t *xq = (int8_t *)aligned_alloc(256, (size_t)(NT * cols));
        float *xd = (float *)aligned_alloc(256, (size_t)(NT * xs) * sizeof *xd);
        uint8_t *q8 = (uint8_t *)malloc((size_t)(cols / 32) * 34);
        CHECK(x && wref && xq && xd && q8);
        for (int64_t i = 0; i < NT * cols; i++) x[i] = ((float)(next_u32() % 20001) - 10000.0f) * 1e-4f;
        for (int k = 0; k < 16; k++) x[next_u32() % (NT * cols)] *= 40.0f;   /* outliers set some blocks' scales */
        quantize_acts(x, NT, cols, xq, xd);
        /* the quantizer's rule is lib/quant_ref.c's Q8_0 (an independent implementation) */
        for (int t = 0; t < NT; t++) {
            CHECK(quantize_row_ref(CQ_Q8_0, x + t * cols, q8, cols) == 0);
            for (int64_t i = 0; i < cols; i++)
                CHECK_MSG((int8_t)q8[(i / 32) * 34 + 2 + i % 32] == xq[t * cols + i], "token %d element %lld: q %d, quant_ref %d",
                          t, (long long)i, xq[t * cols + i], (int8_t)q8[(i / 32) * 34 + 2 + i % 32]);
        }
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const uint32_t type = types[ti], bsz = quant_block_size(type), tsz = quant_type_size(type);
            if (cols % bsz) continue;
            const size_t bytes = (size_t)(cols / bsz) * tsz;
            uint8_t *rows = (uint8_t *)aligned_alloc(256, (3 * bytes + 255) / 256 * 256);
            CHECK(rows);
            for (int r = 0; r < 3; r++) {   /* rows one after another, as in the device copy */
                uint8_t *row = rows + (size_t)r * bytes;
                fill_row(type, row, bytes, cols, true);
                CHECK(dequantize_row(type, row, wref, cols) == 0);
                /* the 2-byte aligned formats also in their grouped device layout (third row of
                 * three: the 16-byte aligned rows follow one another) */
                const uint32_t gt = cuda_group_of(type).block ? type + 100 : 0;
                const size_t gbytes = gt ? (size_t)cuda_group_row_bytes(gt, cols / bsz) : 0;
                uint8_t *grows = gt ? (uint8_t *)aligned_alloc(256, (3 * gbytes + 255) / 256 * 256) : NULL;
                if (gt) cuda_group_rows(type, row, 1, cols, bytes, grows + 2 * gbytes);
                for (int pass = 0; pass < (gt ? 4 : 2); pass++) {
                    const int nt = pass % 2 ? NT : 1;
                    float y[NT];
                    const uint8_t *wrow = pass < 2 ? row : grows + 2 * gbytes;
                    /* vector loads only inside this row and the nt activation rows and scales */
                    cq_host_regions()[0] = {wrow, wrow + (pass < 2 ? bytes : gbytes)};
                    cq_host_regions()[1] = {(const uint8_t *)xq, (const uint8_t *)xq + nt * cols};
                    cq_host_regions()[2] = {(const uint8_t *)xd, (const uint8_t *)(xd + nt * xs)};
                    warp_row_any(pass < 2 ? type : gt, nt, wrow, cols, xq, xd, y);
                    cq_host_regions()[0] = cq_host_regions()[1] = cq_host_regions()[2] = {NULL, NULL};
                    for (int t = 0; t < nt; t++) {
                        double ref = 0, mag = 0;
                        for (int64_t i = 0; i < cols; i++) {
                            const double p = (double)wref[i] * (double)xq[t * cols + i] * (double)xd[t * xs + i / 32];
                            ref += p;
                            mag += fabs(p);
                        }
                        const double e = fabs((double)y[t] - ref) / (mag > 0 ? mag : 1);
                        worst = e > worst ? e : worst;
                        CHECK_MSG(e <= 1e-5, "type %u, %lld columns, row %d, %d tokens, token %d: %.9g, exact %.9g (error %.3g of sum |w x|)",
                                  pass < 2 ? type : gt, (long long)cols, r, nt, t, y[t], ref, e);
                    }
                    rows_checked++;
                }
                free(grows);
            }
            /* a non-finite activation reaches the output: NaN scale for its block */
            float keep = x[5];
            x[5] = NAN;
            quantize_acts(x, 1, cols, xq, xd);
            float y[NT];
            warp_row_any(type, 1, rows, cols, xq, xd, y);
            CHECK_MSG(y[0] != y[0], "type %u: NaN activation gave %g", type, y[0]);
            x[5] = keep;
            /* a block of tiny values (scale below FLT_MIN) quantizes to zeros, not to x * Inf */
            float saved[32];
            memcpy(saved, x, sizeof saved);
            for (int k = 0; k < 32; k++) x[k] = (float)(k % 3 - 1) * 1e-38f;
            quantize_acts(x, 1, cols, xq, xd);
            for (int k = 0; k < 32; k++) CHECK_MSG(xq[k] == 0, "tiny block: q[%d] = %d", k, xq[k]);
            warp_row_any(type, 1, rows, cols, xq, xd, y);
            CHECK_MSG(isfinite(y[0]), "type %u: tiny block gave %g", type, y[0]);
            memcpy(x, saved, sizeof saved);
            quantize_acts(x, 1, cols, xq, xd);
            free(rows);
        }
        free(x), free(wref), free(xq), free(xd), free(q8);
    }
    printf("  info: %ld row dots, worst error %.3g of sum |w x|\n", rows_checked, worst);
    CHECK_MSG(cq_host_oob_loads() == 0, "%ld loads outside the row or the activations", cq_host_oob_loads());
    CHECK_MSG(cq_host_misaligned_loads() == 0, "%ld loads would be misaligned on the device", cq_host_misaligned_loads());
}

/* The top-k kernels' sorting network (topk.cuh), its stages run one after another: a chunk of
 * logits-like values (ties, -Inf, padding) comes out in the sampler's order, as a stable sort by
 * (value descending, index ascending) puts it. */
static bool rank_before(const std::pair<float, int> &a, const std::pair<float, int> &b) {   /* written out: not topk_before */
    return a.first > b.first || (a.first == b.first && a.second < b.second);
}
TEST(topk_network_sorts_in_sampler_order) {
    static float v[CUDA_TOPK_CHUNK];
    static int id[CUDA_TOPK_CHUNK];
    for (int pass = 0; pass < 4; pass++) {
        std::vector<std::pair<float, int>> want;
        for (int i = 0; i < CUDA_TOPK_CHUNK; i++) {
            const bool pad = pass == 3 && i >= 1000;   /* a partial chunk: padding as the kernel writes it */
            float f = pad ? -INFINITY : ((float)(next_u32() % 2001) - 1000.0f) * (pass == 1 ? 0.5f : 0.001f);
            if (!pad && pass == 2 && i % 97 == 0) f = -INFINITY;
            v[i] = f;
            id[i] = pad ? INT_MAX : (int)(next_u32() % 1000000);   /* ids out of order, some repeated values */
            want.push_back({v[i], id[i]});
        }
        for (int size = 2; size <= CUDA_TOPK_CHUNK; size <<= 1)
            for (int stride = size >> 1; stride > 0; stride >>= 1)
                for (int t = 0; t < CUDA_TOPK_CHUNK / 2; t++) topk_exchange(v, id, size, stride, t);
        std::stable_sort(want.begin(), want.end(), rank_before);
        for (int i = 0; i < CUDA_TOPK_CHUNK; i++)
            CHECK_MSG(v[i] == want[i].first && id[i] == want[i].second, "pass %d place %d: (%g, %d), want (%g, %d)", pass, i,
                      v[i], id[i], want[i].first, want[i].second);
    }
}

int main(void) {
    RUN(deq_matches_quant_c_every_type);
    RUN(grouped_rows_same_values);
    RUN(vdot_matches_exact_dot_every_int_type);
    RUN(topk_network_sorts_in_sampler_order);
    return test_summary();
}
