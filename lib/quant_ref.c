/* quant_ref.c - reference quantizers, llama.cpp-compatible (its `quantize_row_*_ref` algorithms
 * without importance matrix), so files we write match llama-quantize's closely: the same search,
 * the same rounding helpers, the same float operation order. tests/test_quant.c checks Q4_K and
 * Q6_K block by block against llama-quantize's own output for refdata's tiny-llama model.
 *
 *   Q8_0, Q8_1: d = amax/127, q = round-half-away(x/d)        (Q8_1 also s = d * sum(q))
 *   Q4_0, Q5_0: d = vmax / -8 (-16), q = min(15 (31), trunc(x/d + 8.5 (16.5)))
 *   Q4_1, Q5_1: d = (max-min)/15 (31), m = min, q = min(15 (31), trunc((x-min)/d + 0.5))
 *   Q4_K, Q5_K: per 32-element sub-block a weighted least-squares search over (scale, min) pairs
 *               (quant_make_qkx2), then 6-bit scales/mins against super-scales d, dmin
 *   Q6_K:       per 16-element group a weighted (w = x^2) search over scales (quant_make_qx),
 *               then int8 group scales against a super-scale d
 *   Q8_K:       d = vmax / -127 (negative), q = round-half-even(x/d), bsums per 16 */
#include <math.h>
#include <string.h>

#include "quant.h"

#define QREF_GROUP_MAX_EPS 1e-15f

static inline int qref_min(int a, int b) { return a < b ? a : b; }
static inline int qref_max(int a, int b) { return a > b ? a : b; }

/* Round to nearest, ties to even, for |x| < 2^22: adding 1.5*2^23 leaves the integer in the low
 * mantissa bits (the FPU rounds the addition). */
static inline int qref_nearest_int(float x) {
    float v = x + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static bool qref_all_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

/* ---- 32-element formats ------------------------------------------------------------------- */

static void qref_q8_0(const float *x, block_q8_0 *y) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.f, id = d ? 1.0f / d : 0.0f;
    y->d = fp32_to_fp16(d);
    for (int j = 0; j < 32; j++) y->qs[j] = (int8_t)roundf(x[j] * id);
}

static void qref_q8_1(const float *x, block_q8_1 *y) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.f, id = d ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        y->qs[j] = (int8_t)roundf(x[j] * id);
        sum += y->qs[j];
    }
    y->d = fp32_to_fp16(d);
    y->s = fp32_to_fp16((float)sum * d);
}

/* The signed value with the largest magnitude (first one on ties). */
static float qref_signed_max(const float *x, int n) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    return max;
}

static void qref_q4_0(const float *x, block_q4_0 *y) {
    float d = qref_signed_max(x, 32) / -8, id = d ? 1.0f / d : 0.0f;
    y->d = fp32_to_fp16(d);
    for (int j = 0; j < 16; j++) {
        /* x*id + 8.5 lies in [0.5, 16.5]: truncation rounds; 16 is clamped to 15 */
        int q0 = qref_min(15, (int8_t)(x[j] * id + 8.5f));
        int q1 = qref_min(15, (int8_t)(x[j + 16] * id + 8.5f));
        y->qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void qref_q5_0(const float *x, block_q5_0 *y) {
    float d = qref_signed_max(x, 32) / -16, id = d ? 1.0f / d : 0.0f;
    y->d = fp32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        int q0 = qref_min(31, (int8_t)(x[j] * id + 16.5f));
        int q1 = qref_min(31, (int8_t)(x[j + 16] * id + 16.5f));
        y->qs[j] = (uint8_t)((q0 & 0xf) | ((q1 & 0xf) << 4));
        qh |= (uint32_t)((q0 >> 4) & 1) << j;
        qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    memcpy(y->qh, &qh, 4);
}

static void qref_minmax(const float *x, int n, float *mn, float *mx) {
    float lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < n; j++) { if (x[j] < lo) lo = x[j]; if (x[j] > hi) hi = x[j]; }
    *mn = lo;
    *mx = hi;
}

static void qref_q4_1(const float *x, block_q4_1 *y) {
    float mn, mx;
    qref_minmax(x, 32, &mn, &mx);
    float d = (mx - mn) / 15, id = d ? 1.0f / d : 0.0f;
    y->d = fp32_to_fp16(d);
    y->m = fp32_to_fp16(mn);
    for (int j = 0; j < 16; j++) {
        int q0 = qref_min(15, (int8_t)((x[j] - mn) * id + 0.5f));
        int q1 = qref_min(15, (int8_t)((x[j + 16] - mn) * id + 0.5f));
        y->qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void qref_q5_1(const float *x, block_q5_1 *y) {
    float mn, mx;
    qref_minmax(x, 32, &mn, &mx);
    float d = (mx - mn) / 31, id = d ? 1.0f / d : 0.0f;
    y->d = fp32_to_fp16(d);
    y->m = fp32_to_fp16(mn);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        int q0 = qref_min(31, (int8_t)((x[j] - mn) * id + 0.5f));
        int q1 = qref_min(31, (int8_t)((x[j + 16] - mn) * id + 0.5f));
        y->qs[j] = (uint8_t)((q0 & 0xf) | ((q1 & 0xf) << 4));
        qh |= (uint32_t)((q0 >> 4) & 1) << j;
        qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    memcpy(y->qh, &qh, 4);
}

/* ---- K-quant searches --------------------------------------------------------------------- */

/* Asymmetric quantization of n values to L[i] in 0..nmax with x ~ scale*L - min_out, minimising the
 * weighted squared error. Start from the min/max grid, then try nstep+1 grids of
 * (nmax + rmin + rdelta*is) steps over [min, max], each refined by the closed-form weighted
 * least-squares (scale, min) for its rounding; keep the best. min is clamped to <= 0 (stored
 * positive, subtracted). Returns scale, *min_out = -min. */
static float qref_make_qkx2(int n, int nmax, const float *x, const float *w, uint8_t *L,
                            float *min_out, uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float mn = x[0], mx = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        memset(L, 0, (size_t)n);
        *min_out = -mn;
        return 0.f;
    }
    float iscale = nmax / (mx - mn), scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; i++) {
        int l = qref_max(0, qref_min(nmax, qref_nearest_int(iscale * (x[i] - mn))));
        L[i] = (uint8_t)l;
        float diff = scale * L[i] + mn - x[i];
        best += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (mx - mn);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = qref_max(0, qref_min(nmax, qref_nearest_int(iscale * (x[i] - mn))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                err += w[i] * (diff * diff);
            }
            if (err < best) {
                memcpy(L, Laux, (size_t)n);
                best = err;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    *min_out = -mn;
    return scale;
}

/* Symmetric quantization of n values to L[i] = l + nmax, l in -nmax..nmax-1, with weights x^2
 * (llama.cpp's rmse_type 1): scale from the signed max, then 18 perturbed grids
 * (nmax + 0.1*is, is = -9..9) each refit by weighted least squares; keeps the best. */
static float qref_make_qx(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (amax < QREF_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = qref_max(-nmax, qref_min(nmax - 1, qref_nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = qref_max(-nmax, qref_min(nmax - 1, qref_nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = qref_max(-nmax, qref_min(nmax - 1, qref_nearest_int(iscale * x[i])));
                L[i] = (int8_t)(l + nmax);
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Packs 8 six-bit scales and mins into 12 bytes (FORMATS.md 2.4). */
static void qref_pack_k4_scales(const uint8_t *ls, const uint8_t *lm, uint8_t *s) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(ls[j] | ((ls[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)(lm[j] | ((lm[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((ls[j + 4] & 0xf) | ((lm[j + 4] & 0xf) << 4));
    }
}


/* Shared Q4_K/Q5_K super-block step: per sub-block search (weights sqrt(mean x^2) + |x|), 6-bit
 * scales against d = max_scale/63, dmin = max_min/63, then the final L (0..nmax) against the
 * rounded scales. */
static void qref_kx_superblock(const float *x, int nmax, float rmin, int nstep, f16_t *d_out,
                               f16_t *dmin_out, uint8_t *scales12, uint8_t *L) {
    float w[32], sc[8], mins[8];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
        sc[j] = qref_make_qkx2(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
        if (sc[j] > max_scale) max_scale = sc[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        /* llama.cpp stores nearest_int into a uint8_t before clamping to 63 */
        ls[j] = (uint8_t)qref_min(63, (uint8_t)qref_nearest_int(inv_scale * sc[j]));
        lm[j] = (uint8_t)qref_min(63, (uint8_t)qref_nearest_int(inv_min * mins[j]));
    }
    qref_pack_k4_scales(ls, lm, scales12);
    *d_out = fp32_to_fp16(max_scale / 63.f);
    *dmin_out = fp32_to_fp16(max_min / 63.f);
    float d = fp16_to_fp32(*d_out), dmin = fp16_to_fp32(*dmin_out);
    for (int j = 0; j < 8; j++) {
        int s, m;
        quant_k4_scale_min(j, scales12, &s, &m);
        float dj = d * s;
        if (!dj) continue;   /* keeps the search's L for an all-zero-scale sub-block */
        float dm = dmin * m;
        for (int l = 0; l < 32; l++) {
            int q = qref_nearest_int((x[32 * j + l] + dm) / dj);
            L[32 * j + l] = (uint8_t)qref_max(0, qref_min(nmax, q));
        }
    }
}

static void qref_q4_k(const float *x, block_q4_k *y) {
    uint8_t L[QK_K];
    qref_kx_superblock(x, 15, -1.f, 20, &y->d, &y->dmin, y->scales, L);
    /* qs[32c + l]: element 64c + l low nibble, 64c + 32 + l high nibble */
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            y->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

static void qref_q5_k(const float *x, block_q5_k *y) {
    uint8_t L[QK_K];
    qref_kx_superblock(x, 31, -0.5f, 15, &y->d, &y->dmin, y->scales, L);
    memset(y->qh, 0, sizeof y->qh);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int l1 = L[64 * c + l], l2 = L[64 * c + 32 + l];
            /* bit j of qh[l]: 5th bit of element 32j + l */
            y->qh[l] |= (uint8_t)(((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1)));
            y->qs[32 * c + l] = (uint8_t)((l1 & 0xf) | ((l2 & 0xf) << 4));
        }
}

static void qref_q6_k(const float *x, block_q6_k *y) {
    int8_t L[QK_K];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int g = 0; g < 16; g++) {
        scales[g] = qref_make_qx(16, 32, x + 16 * g, L + 16 * g);
        if (fabsf(scales[g]) > max_abs_scale) {
            max_abs_scale = fabsf(scales[g]);
            max_scale = scales[g];
        }
    }
    if (max_abs_scale < QREF_GROUP_MAX_EPS) {
        memset(y, 0, sizeof *y);
        return;
    }
    float iscale = -128.f / max_scale;
    y->d = fp32_to_fp16(1 / iscale);
    for (int g = 0; g < 16; g++) y->scales[g] = (int8_t)qref_min(127, qref_nearest_int(iscale * scales[g]));
    float d = fp16_to_fp32(y->d);
    for (int g = 0; g < 16; g++) {
        float dg = d * y->scales[g];
        if (!dg) continue;
        for (int i = 0; i < 16; i++) {
            int l = qref_max(-32, qref_min(31, qref_nearest_int(x[16 * g + i] / dg)));
            L[16 * g + i] = (int8_t)(l + 32);
        }
    }
    /* half h: ql[64h + l] = e(128h+l) | e(128h+64+l) << 4, ql[64h+32+l] = e(+32) | e(+96) << 4,
     * qh[32h + l] = the four 2-bit high parts of elements +0, +32, +64, +96 */
    for (int h = 0; h < 2; h++) {
        const int8_t *Lh = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
            y->ql[64 * h + l] = (uint8_t)((q1 & 0xf) | ((q3 & 0xf) << 4));
            y->ql[64 * h + 32 + l] = (uint8_t)((q2 & 0xf) | ((q4 & 0xf) << 4));
            y->qh[32 * h + l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
}

static void qref_q8_k(const float *x, block_q8_k *y) {
    float max = qref_signed_max(x, QK_K);
    if (max == 0) {
        memset(y, 0, sizeof *y);
        return;
    }
    float iscale = -127.f / max;
    for (int j = 0; j < QK_K; j++) y->qs[j] = (int8_t)qref_min(127, qref_nearest_int(iscale * x[j]));
    for (int g = 0; g < QK_K / 16; g++) {
        int sum = 0;
        for (int i = 0; i < 16; i++) sum += y->qs[16 * g + i];
        y->bsums[g] = (int16_t)sum;
    }
    y->d = 1 / iscale;
}

coder_status quantize_row_ref(uint32_t type, const float *src, void *dst, int64_t n) {
    uint32_t bs = quant_block_size(type);
    if (bs == 0)
        return coder_fail(CODER_ERR_UNSUPPORTED, "quantize: unknown tensor type %u", type);
    if (n < 0 || n % bs != 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "quantize %s: n = %lld is not a multiple of %u",
                          quant_type_name(type), (long long)n, bs);
    int64_t nb = n / bs;
    uint8_t *out = dst;
    switch (type) {
    case QT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return CODER_OK;
    case QT_F16:
        for (int64_t i = 0; i < n; i++) { f16_t h = fp32_to_fp16(src[i]); memcpy(out + 2 * i, &h, 2); }
        return CODER_OK;
    case QT_BF16:
        for (int64_t i = 0; i < n; i++) { bf16_t h = fp32_to_bf16(src[i]); memcpy(out + 2 * i, &h, 2); }
        return CODER_OK;
    default: break;
    }
    /* Quantize into a local block and copy out, so dst needs no alignment. A block holding NaN or
     * Inf (activations that overflowed, e.g. a K/V row written to a Q8_0 cache) would make the
     * float-to-int conversions undefined: it becomes zeros with a NaN scale instead, so the NaN
     * still reaches the logits and the caller gets CODER_ERR_NUMERIC. */
#define QREF_LOOP(T, fn)                                                                           \
    for (int64_t i = 0; i < nb; i++) {                                                             \
        T blk;                                                                                     \
        if (qref_all_finite(src + i * bs, bs)) {                                                   \
            fn(src + i * bs, &blk);                                                                \
        } else {                                                                                   \
            memset(&blk, 0, sizeof blk);                                                           \
            blk.d = _Generic(blk.d, float: (float)NAN, default: (f16_t)0x7e00);                    \
        }                                                                                          \
        memcpy(out + (size_t)i * sizeof(T), &blk, sizeof(T));                                      \
    }                                                                                              \
    return CODER_OK;
    switch (type) {
    case QT_Q8_0: QREF_LOOP(block_q8_0, qref_q8_0)
    case QT_Q8_1: QREF_LOOP(block_q8_1, qref_q8_1)
    case QT_Q4_0: QREF_LOOP(block_q4_0, qref_q4_0)
    case QT_Q4_1: QREF_LOOP(block_q4_1, qref_q4_1)
    case QT_Q5_0: QREF_LOOP(block_q5_0, qref_q5_0)
    case QT_Q5_1: QREF_LOOP(block_q5_1, qref_q5_1)
    case QT_Q4_K: QREF_LOOP(block_q4_k, qref_q4_k)
    case QT_Q5_K: QREF_LOOP(block_q5_k, qref_q5_k)
    case QT_Q6_K: QREF_LOOP(block_q6_k, qref_q6_k)
    case QT_Q8_K: QREF_LOOP(block_q8_k, qref_q8_k)
    default: break;
    }
#undef QREF_LOOP
    return coder_fail(CODER_ERR_UNSUPPORTED, "quantize: no reference quantizer for type %s",
                      quant_type_name(type));
}
