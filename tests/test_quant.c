/* test_quant.c - type table, fp16/bf16, dequantizers and reference quantizers.
 *
 * References, all independent of lib/quant*.c:
 *  - refdata/dequant: llama.cpp's own dequantization of stored rows (bit for bit);
 *  - hand-built blocks whose values are obvious;
 *  - a float64 re-statement of FORMATS.md's "worked index formulas" over random blocks;
 *  - fp16: exhaustive round trips, every rounding midpoint, the compiler's _Float16 conversion;
 *  - quantize -> dequantize RMSE on N(0,1) data against bounds from docs/QUANT.md;
 *  - refdata/models: llama-quantize's Q4_K / Q6_K blocks of tiny-llama, from its F16 weights. */
#include <stdint.h>

#include "gguf.h"
#include "quant.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s) {   /* splitmix64 (also in bench/quant_rmse.py) */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unif(uint64_t *s) { return ((rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

/* n N(0,1) floats: Box-Muller on pairs of uniforms, exactly as bench/quant_rmse.py. */
static void gauss_fill(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = rng_unif(&s), u2 = rng_unif(&s);
        double r = sqrt(-2.0 * log(u1));
        x[i] = (float)(r * cos(2 * M_PI * u2));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(2 * M_PI * u2));
    }
}

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* f16 bits -> double straight from the definition (FORMATS.md 2.0). */
static double half_def(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? INFINITY : ldexp(1.0 + m / 1024.0, e - 15);
    return s ? -v : v;
}

/* ---- type table --------------------------------------------------------------------------- */

TEST(type_table) {
    static const struct { uint32_t id; const char *name; uint32_t blk, bytes; } t[] = {
        {0, "F32", 1, 4},       {1, "F16", 1, 2},       {2, "Q4_0", 32, 18},   {3, "Q4_1", 32, 20},
        {6, "Q5_0", 32, 22},    {7, "Q5_1", 32, 24},    {8, "Q8_0", 32, 34},   {9, "Q8_1", 32, 36},
        {10, "Q2_K", 256, 84},  {11, "Q3_K", 256, 110}, {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176},
        {14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292}, {23, "IQ4_XS", 256, 136}, {30, "BF16", 1, 2},
        {39, "MXFP4", 32, 17},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        CHECK_MSG(quant_type_known(t[i].id), "id %u", t[i].id);
        CHECK_MSG(strcmp(quant_type_name(t[i].id), t[i].name) == 0, "id %u", t[i].id);
        CHECK(quant_block_size(t[i].id) == t[i].blk);
        CHECK(quant_type_size(t[i].id) == t[i].bytes);
    }
    static const uint32_t removed[] = {4, 5, 31, 32, 33, 36, 37, 38, 40, 41, 1000, 0xffffffffu};
    for (size_t i = 0; i < sizeof removed / sizeof removed[0]; i++) {
        CHECK_MSG(!quant_type_known(removed[i]), "id %u", removed[i]);
        CHECK(!quant_type_supported(removed[i]));
        CHECK(quant_type_size(removed[i]) == 0 && quant_block_size(removed[i]) == 0);
        CHECK(strcmp(quant_type_name(removed[i]), "?") == 0);
    }
    static const uint32_t sup[] = {QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0,
                                   QT_Q5_1, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_Q8_K};
    for (size_t i = 0; i < sizeof sup / sizeof sup[0]; i++) CHECK(quant_type_supported(sup[i]));
    CHECK(!quant_type_supported(QT_Q2_K) && !quant_type_supported(QT_Q3_K) && !quant_type_supported(23));
    uint64_t b = 0;
    CHECK(quant_row_bytes(QT_Q4_K, 4096, &b) && b == 16 * 144);
    CHECK(quant_row_bytes(QT_F16, 3, &b) && b == 6);
    CHECK(!quant_row_bytes(QT_Q4_K, 4000, &b));
    CHECK(!quant_row_bytes(QT_Q8_0, 33, &b));
    CHECK(!quant_row_bytes(4, 32, &b));
    CHECK(!quant_row_bytes(QT_F32, UINT64_MAX / 2, &b));          /* overflow */
    CHECK(quant_row_bytes(QT_Q8_0, (UINT64_MAX / 34) / 2 * 32, &b));
    CHECK(!quant_row_bytes(QT_Q8_0, (UINT64_MAX / 34 + 1) * 32, &b));
}

TEST(bad_args) {
    float out[256];
    uint8_t buf[512] = {0};
    CHECK_STATUS(dequantize_row(QT_Q4_K, buf, out, 100), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "Q4_K") && strstr(coder_last_error(), "100"));
    CHECK_STATUS(dequantize_row(QT_Q8_0, buf, out, -32), CODER_ERR_INVALID_ARG);
    CHECK_STATUS(dequantize_row(QT_Q2_K, buf, out, 256), CODER_ERR_UNSUPPORTED);
    CHECK(strstr(coder_last_error(), "Q2_K"));
    CHECK_STATUS(dequantize_row(5, buf, out, 32), CODER_ERR_UNSUPPORTED);
    CHECK(strstr(coder_last_error(), "type 5"));
    CHECK_STATUS(quantize_row_ref(QT_Q6_K, out, buf, 255), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "Q6_K") && strstr(coder_last_error(), "255"));
    CHECK_STATUS(quantize_row_ref(QT_Q3_K, out, buf, 256), CODER_ERR_UNSUPPORTED);
    CHECK(strstr(coder_last_error(), "Q3_K"));
    CHECK_STATUS(quantize_row_ref(77, out, buf, 256), CODER_ERR_UNSUPPORTED);
    CHECK(strstr(coder_last_error(), "77"));
}

/* ---- fp16 / bf16 -------------------------------------------------------------------------- */

TEST(fp16_exhaustive_round_trip) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fp16_to_fp32((f16_t)h);
        int e = (h >> 10) & 31, m = h & 1023;
        if (e == 31 && m) {
            CHECK_MSG(isnan(f) && (f2u(f) >> 31) == (h >> 15), "h=%04x", h);
        } else {
            CHECK_MSG((double)f == half_def((uint16_t)h), "h=%04x: %g vs %g", h, f, half_def((uint16_t)h));
            CHECK_MSG((signbit(f) != 0) == ((h >> 15) != 0), "h=%04x sign", h);
        }
        CHECK_MSG(fp32_to_fp16(f) == h, "h=%04x -> %04x", h, fp32_to_fp16(f));
    }
}

/* Every midpoint between consecutive finite halves of one sign, and one f32 ulp either side:
 * below goes down, above goes up, the midpoint itself goes to the even one. */
TEST(fp16_rounding_midpoints) {
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double lo = half_def((uint16_t)h), hi = h + 1 < 0x7c00 ? half_def((uint16_t)(h + 1)) : 65536.0;
        float mid = (float)((lo + hi) / 2);    /* exact in f32: at most 12 significant bits */
        CHECK_MSG((double)mid == (lo + hi) / 2, "h=%04x", h);
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        CHECK_MSG(fp32_to_fp16(mid) == even, "h=%04x mid -> %04x", h, fp32_to_fp16(mid));
        CHECK_MSG(fp32_to_fp16(u2f(f2u(mid) - 1)) == h, "h=%04x below", h);
        CHECK_MSG(fp32_to_fp16(u2f(f2u(mid) + 1)) == h + 1, "h=%04x above", h);
        CHECK_MSG(fp32_to_fp16(-mid) == (even | 0x8000), "h=%04x neg", h);
    }
}

TEST(fp16_edges) {
    CHECK(fp32_to_fp16(0.0f) == 0x0000);
    CHECK(fp32_to_fp16(-0.0f) == 0x8000);
    CHECK(fp32_to_fp16(1.0f) == 0x3c00);
    CHECK(fp32_to_fp16(-2.0f) == 0xc000);
    CHECK(fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(fp32_to_fp16(65519.996f) == 0x7bff);
    CHECK(fp32_to_fp16(65520.0f) == 0x7c00);               /* midpoint to "65536": even = inf */
    CHECK(fp32_to_fp16(1e10f) == 0x7c00);
    CHECK(fp32_to_fp16(-1e10f) == 0xfc00);
    CHECK(fp32_to_fp16(INFINITY) == 0x7c00);
    CHECK(fp32_to_fp16(-INFINITY) == 0xfc00);
    f16_t n = fp32_to_fp16(NAN);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
    CHECK(isnan(fp16_to_fp32(n)));
    CHECK(fp32_to_fp16(u2f(0x7f800001)) != 0x7c00);        /* NaN with only low payload bits */
    CHECK(fp32_to_fp16(ldexpf(1, -14)) == 0x0400);          /* smallest normal */
    CHECK(fp32_to_fp16(ldexpf(1, -24)) == 0x0001);          /* smallest subnormal */
    CHECK(fp32_to_fp16(ldexpf(1, -25)) == 0x0000);          /* tie -> even (0) */
    CHECK(fp32_to_fp16(u2f(f2u(ldexpf(1, -25)) + 1)) == 0x0001);
    CHECK(fp32_to_fp16(ldexpf(3, -25)) == 0x0002);          /* 1.5 ulp: tie -> even (2) */
    CHECK(fp32_to_fp16(ldexpf(1, -30)) == 0x0000);
    CHECK(fp32_to_fp16(-ldexpf(1, -30)) == 0x8000);
    CHECK(fp32_to_fp16(1.0f + ldexpf(1, -11)) == 0x3c00);   /* tie -> even */
    CHECK(fp32_to_fp16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02);
    CHECK(fp16_to_fp32(0x7c00) == INFINITY && fp16_to_fp32(0xfc00) == -INFINITY);
    CHECK(fp16_to_fp32(0x0001) == ldexpf(1, -24));
    CHECK(fp16_to_fp32(0x03ff) == ldexpf(1023, -24));
    CHECK(fp16_to_fp32(0x3555) == 0.333251953125f);
}

/* The compiler's own conversion (libgcc / F16C, IEEE round-to-nearest-even) as a second reference
 * on a million random f32 patterns spread over every exponent. */
TEST(fp16_vs_compiler) {
#ifdef __FLT16_MAX__
    uint64_t s = 42;
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = (uint32_t)rng_next(&s);
        float f = u2f(u);
        if (isnan(f)) continue;
        _Float16 c = (_Float16)f;
        uint16_t want;
        memcpy(&want, &c, 2);
        CHECK_MSG(fp32_to_fp16(f) == want, "f32 %08x -> %04x, compiler %04x", u, fp32_to_fp16(f), want);
    }
#else
    SKIP("compiler has no _Float16");
#endif
}

TEST(bf16) {
    CHECK(fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(fp32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80);           /* tie -> even */
    CHECK(fp32_to_bf16(1.0f + 3 * ldexpf(1, -8)) == 0x3f82);       /* tie -> even (up) */
    CHECK(fp32_to_bf16(u2f(0x3f808001)) == 0x3f81);
    CHECK(fp32_to_bf16(-0.0f) == 0x8000);
    CHECK(fp32_to_bf16(INFINITY) == 0x7f80);
    CHECK(fp32_to_bf16(u2f(0x7f7fffff)) == 0x7f80);                /* FLT_MAX rounds to inf */
    CHECK(isnan(bf16_to_fp32(fp32_to_bf16(NAN))));
    CHECK(isnan(bf16_to_fp32(fp32_to_bf16(u2f(0x7f800001)))));     /* payload only in low bits */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bf16_to_fp32((bf16_t)h);
        CHECK(f2u(f) == h << 16);
        if (!isnan(f)) CHECK_MSG(fp32_to_bf16(f) == h, "bf16 %04x", h);
    }
}

/* ---- hand-built blocks -------------------------------------------------------------------- */

static int check_row(uint32_t type, const void *blk, const float *want, int n) {
    float got[256];
    if (dequantize_row(type, blk, got, n) != CODER_OK) return -2;
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) return i;
    return -1;
}

TEST(hand_blocks) {
    float want[256];
    int bad;
    { /* F32 / F16 / BF16 */
        float x[4] = {1.5f, -2.0f, 0.25f, 1e-3f};
        CHECK(check_row(QT_F32, x, x, 4) == -1);
        uint16_t h[4] = {0x3e00, 0xc000, 0x3400, 0x0000};
        float w16[4] = {1.5f, -2.0f, 0.25f, 0.0f};
        CHECK(check_row(QT_F16, h, w16, 4) == -1);
        uint16_t b[4] = {0x3fc0, 0xc000, 0x3e80, 0x0000};
        CHECK(check_row(QT_BF16, b, w16, 4) == -1);
    }
    { /* Q8_0: d = 1, qs = i - 16 */
        block_q8_0 b = {.d = 0x3c00};
        for (int i = 0; i < 32; i++) { b.qs[i] = (int8_t)(i - 16); want[i] = (float)(i - 16); }
        CHECK_MSG((bad = check_row(QT_Q8_0, &b, want, 32)) == -1, "Q8_0 at %d", bad);
    }
    { /* Q4_0: d = 2; low nibble l, high nibble 15 - l */
        block_q4_0 b = {.d = 0x4000};
        for (int l = 0; l < 16; l++) {
            b.qs[l] = (uint8_t)(l | ((15 - l) << 4));
            want[l] = 2.0f * (l - 8);
            want[l + 16] = 2.0f * (15 - l - 8);
        }
        CHECK_MSG((bad = check_row(QT_Q4_0, &b, want, 32)) == -1, "Q4_0 at %d", bad);
    }
    { /* Q4_1: d = 0.5, m = -1 */
        block_q4_1 b = {.d = 0x3800, .m = 0xbc00};
        for (int l = 0; l < 16; l++) {
            b.qs[l] = (uint8_t)(l | ((15 - l) << 4));
            want[l] = 0.5f * l - 1;
            want[l + 16] = 0.5f * (15 - l) - 1;
        }
        CHECK_MSG((bad = check_row(QT_Q4_1, &b, want, 32)) == -1, "Q4_1 at %d", bad);
    }
    { /* Q5_0: d = 1; high bits set for elements 16..31 only (qh LE u32 = 0xffff0000) */
        block_q5_0 b = {.d = 0x3c00, .qh = {0, 0, 0xff, 0xff}};
        for (int l = 0; l < 16; l++) {
            b.qs[l] = (uint8_t)(l | (l << 4));
            want[l] = (float)(l - 16);
            want[l + 16] = (float)(l + 16 - 16);
        }
        CHECK_MSG((bad = check_row(QT_Q5_0, &b, want, 32)) == -1, "Q5_0 at %d", bad);
    }
    { /* Q5_1: d = 1, m = 10; high bits for elements 0..15 only */
        block_q5_1 b = {.d = 0x3c00, .m = 0x4900, .qh = {0xff, 0xff, 0, 0}};
        for (int l = 0; l < 16; l++) {
            b.qs[l] = (uint8_t)(l | (l << 4));
            want[l] = (float)(l + 16 + 10);
            want[l + 16] = (float)(l + 10);
        }
        CHECK_MSG((bad = check_row(QT_Q5_1, &b, want, 32)) == -1, "Q5_1 at %d", bad);
    }
    /* Q4_K / Q5_K: d = 1, dmin = 0.5; sub-block j: scale 40 + j, min 20 + 5j (both need the 2 high
     * bits). Bytes built from FORMATS.md's bit table: s[k] = sc_k | (sc_{k+4} >> 4) << 6,
     * s[k+4] = m_k | (m_{k+4} >> 4) << 6, s[k+8] = (sc_{k+4} & 15) | (m_{k+4} & 15) << 4. */
    uint8_t sc[8], mn[8], s12[12];
    for (int j = 0; j < 8; j++) { sc[j] = (uint8_t)(40 + j); mn[j] = (uint8_t)(20 + 5 * j); }
    for (int k = 0; k < 4; k++) {
        s12[k] = (uint8_t)(sc[k] | ((sc[k + 4] >> 4) << 6));
        s12[k + 4] = (uint8_t)(mn[k] | ((mn[k + 4] >> 4) << 6));
        s12[k + 8] = (uint8_t)((sc[k + 4] & 15) | ((mn[k + 4] & 15) << 4));
    }
    { /* Q4_K: every byte 0x93: low nibble 3 (even sub-blocks), high nibble 9 (odd) */
        block_q4_k b = {.d = 0x3c00, .dmin = 0x3800};
        memcpy(b.scales, s12, 12);
        memset(b.qs, 0x93, sizeof b.qs);
        for (int i = 0; i < 256; i++) {
            int j = i / 32;
            want[i] = (float)(sc[j] * (j % 2 ? 9 : 3)) - 0.5f * mn[j];
        }
        CHECK_MSG((bad = check_row(QT_Q4_K, &b, want, 256)) == -1, "Q4_K at %d", bad);
    }
    { /* Q5_K: qh[l] = 0x0f for l < 16, else 0xf0: sub-blocks 0-3 have the high bit in their
       * first 16 elements, sub-blocks 4-7 in their last 16 */
        block_q5_k b = {.d = 0x3c00, .dmin = 0x3800};
        memcpy(b.scales, s12, 12);
        memset(b.qs, 0x93, sizeof b.qs);
        for (int l = 0; l < 32; l++) b.qh[l] = l < 16 ? 0x0f : 0xf0;
        for (int i = 0; i < 256; i++) {
            int j = i / 32, l = i % 32;
            int hb = (j < 4) == (l < 16);
            want[i] = (float)(sc[j] * ((j % 2 ? 9 : 3) + 16 * hb)) - 0.5f * mn[j];
        }
        CHECK_MSG((bad = check_row(QT_Q5_K, &b, want, 256)) == -1, "Q5_K at %d", bad);
    }
    { /* Q6_K: d = 0.25, scales[k] = k - 8; ql bytes 0x21, qh bytes 0xe4 (fields 0,1,2,3):
       * the four 32-runs of each half get q = 1-32, 17-32, 34-32, 50-32 */
        block_q6_k b = {.d = 0x3400};
        memset(b.ql, 0x21, sizeof b.ql);
        memset(b.qh, 0xe4, sizeof b.qh);
        for (int k = 0; k < 16; k++) b.scales[k] = (int8_t)(k - 8);
        static const int q[4] = {-31, -15, 2, 18};
        for (int i = 0; i < 256; i++) want[i] = 0.25f * (float)((i / 16 - 8) * q[(i % 128) / 32]);
        CHECK_MSG((bad = check_row(QT_Q6_K, &b, want, 256)) == -1, "Q6_K at %d", bad);
    }
    { /* Q8_K: d = -0.5, qs = i - 128 */
        block_q8_k b = {.d = -0.5f};
        for (int i = 0; i < 256; i++) { b.qs[i] = (int8_t)(i - 128); want[i] = -0.5f * (i - 128); }
        CHECK_MSG((bad = check_row(QT_Q8_K, &b, want, 256)) == -1, "Q8_K at %d", bad);
    }
}

/* ---- float64 worked index formulas (FORMATS.md 2.2 - 2.6) over random blocks --------------- */

static uint16_t rand_scale(uint64_t *s, double lo, double hi, int allow_neg) {
    double v = lo + (hi - lo) * rng_unif(s);
    if (allow_neg && (rng_next(s) & 1)) v = -v;
    return fp32_to_fp16((float)v);
}

static double hf(const uint8_t *p) { return half_def((uint16_t)(p[0] | p[1] << 8)); }

/* Element i of a block, in float64, and the magnitude of the terms summed (for the tolerance). */
static double formula(uint32_t type, const uint8_t *b, int i, double *mag) {
    switch (type) {
    case QT_Q4_0: {
        int byte = b[2 + i % 16], q = i < 16 ? (byte & 15) : (byte >> 4);
        *mag = fabs(hf(b) * (q - 8));
        return hf(b) * (q - 8);
    }
    case QT_Q4_1: {
        int byte = b[4 + i % 16], q = i < 16 ? (byte & 15) : (byte >> 4);
        *mag = fabs(hf(b) * q) + fabs(hf(b + 2));
        return hf(b) * q + hf(b + 2);
    }
    case QT_Q5_0: {
        uint32_t H = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
        int byte = b[6 + i % 16], q = (i < 16 ? (byte & 15) : (byte >> 4)) | (int)(((H >> i) & 1) << 4);
        *mag = fabs(hf(b) * (q - 16));
        return hf(b) * (q - 16);
    }
    case QT_Q5_1: {
        uint32_t H = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
        int byte = b[8 + i % 16], q = (i < 16 ? (byte & 15) : (byte >> 4)) | (int)(((H >> i) & 1) << 4);
        *mag = fabs(hf(b) * q) + fabs(hf(b + 2));
        return hf(b) * q + hf(b + 2);
    }
    case QT_Q4_K: case QT_Q5_K: {
        const uint8_t *s = b + 4;
        int j = i / 32, l = i % 32, sc, m;
        if (j < 4) { sc = s[j] & 0x3f; m = s[j + 4] & 0x3f; }
        else { sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4); m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4); }
        const uint8_t *qs = b + (type == QT_Q4_K ? 16 : 48);
        int byte = qs[32 * (i / 64) + l];
        int q = (j % 2 == 0) ? (byte & 0xf) : (byte >> 4);
        if (type == QT_Q5_K) q |= ((b[16 + l] >> j) & 1) << 4;
        double d = hf(b), dmin = hf(b + 2);
        *mag = fabs(d * sc * q) + fabs(dmin * m);
        return d * sc * q - dmin * m;
    }
    case QT_Q6_K: {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *scales = (const int8_t *)(b + 192);
        int h = i / 128, g = (i % 128) / 32, l = i % 32;
        int byte = ql[64 * h + 32 * (g & 1) + l];
        int lo = (g < 2) ? (byte & 0xf) : (byte >> 4);
        int hi = (qh[32 * h + l] >> (2 * g)) & 3;
        int q = (lo | (hi << 4)) - 32;
        double d = hf(b + 208);
        *mag = fabs(d * scales[i / 16] * q);
        return d * scales[i / 16] * q;
    }
    }
    return NAN;
}

TEST(index_formulas_random) {
    static const uint32_t types[] = {QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q4_K, QT_Q5_K, QT_Q6_K};
    uint64_t s = 7;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        uint32_t type = types[t], bs = quant_block_size(type), sz = quant_type_size(type);
        int nblk = 64;
        uint8_t *raw = malloc((size_t)nblk * sz);
        float *out = malloc((size_t)nblk * bs * sizeof(float));
        for (size_t k = 0; k < (size_t)nblk * sz; k++) raw[k] = (uint8_t)rng_next(&s);
        for (int k = 0; k < nblk; k++) {   /* sane f16 scales at their offsets */
            uint8_t *b = raw + (size_t)k * sz;
            uint16_t d0 = rand_scale(&s, 1e-4, 2.0, 1), d1 = rand_scale(&s, 1e-4, 2.0, 1);
            if (type == QT_Q4_K || type == QT_Q5_K) { d0 &= 0x7fff; d1 &= 0x7fff; }
            if (type == QT_Q6_K) { b[208] = (uint8_t)d0; b[209] = (uint8_t)(d0 >> 8); }
            else { b[0] = (uint8_t)d0; b[1] = (uint8_t)(d0 >> 8); }
            if (type == QT_Q4_1 || type == QT_Q5_1 || type == QT_Q4_K || type == QT_Q5_K) {
                b[2] = (uint8_t)d1; b[3] = (uint8_t)(d1 >> 8);
            }
        }
        CHECK_OK(dequantize_row(type, raw, out, (int64_t)nblk * bs));
        for (int k = 0; k < nblk; k++)
            for (uint32_t i = 0; i < bs; i++) {
                double mag, want = formula(type, raw + (size_t)k * sz, (int)i, &mag);
                double got = out[(size_t)k * bs + i];
                CHECK_MSG(fabs(got - want) <= 1.2e-7 * mag, "%s block %d elem %u: %.9g vs %.9g",
                          quant_type_name(type), k, i, got, want);
            }
        free(raw);
        free(out);
    }
}

/* ---- refdata: llama.cpp's dequantization, bit for bit ------------------------------------- */

/* Finds "key": after position p in json and returns the value's start (string content or number). */
static const char *json_after(const char *p, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *q = strstr(p, pat);
    if (!q) return NULL;
    q += strlen(pat);
    while (*q == ' ') q++;
    if (*q == '"') q++;
    return q;
}

TEST(refdata_dequant_bit_exact) {
    const char *rd = test_refdata();
    if (!rd) SKIP("refdata not found (set CODER_REFDATA)");
    char path[4096];
    snprintf(path, sizeof path, "%s/dequant/index.json", rd);
    char *js = test_read_file(path, NULL);
    CHECK_MSG(js != NULL, "%.900s", path);
    static const char *want_types[] = {"Q8_0", "Q6_K", "Q4_K", "Q5_0"};
    int found = 0;
    for (const char *p = js; (p = json_after(p, "type")) != NULL;) {
        char tname[16] = {0}, raw_name[256] = {0}, f32_name[256] = {0};
        sscanf(p, "%15[^\"]", tname);
        const char *e = json_after(p, "n_rows");
        long rows = e ? strtol(e, NULL, 10) : 0;
        e = json_after(p, "n_cols");
        long cols = e ? strtol(e, NULL, 10) : 0;
        e = json_after(p, "raw_file");
        if (e) sscanf(e, "%255[^\"]", raw_name);
        e = json_after(p, "f32_file");
        if (e) sscanf(e, "%255[^\"]", f32_name);
        uint32_t type = QT_COUNT;
        for (uint32_t t = 0; t < QT_COUNT; t++)
            if (strcmp(quant_type_name(t), tname) == 0) type = t;
        CHECK_MSG(type != QT_COUNT && rows > 0 && cols > 0, "entry %s", tname);
        size_t raw_size = 0, f32_size = 0;
        snprintf(path, sizeof path, "%s/dequant/%s", rd, raw_name);
        uint8_t *raw = test_read_file(path, &raw_size);
        snprintf(path, sizeof path, "%s/dequant/%s", rd, f32_name);
        float *ref = test_read_file(path, &f32_size);
        uint64_t row_bytes = 0;
        CHECK(raw && ref && quant_row_bytes(type, (uint64_t)cols, &row_bytes));
        CHECK(raw_size == row_bytes * (uint64_t)rows && f32_size == (size_t)rows * cols * 4);
        float *out = malloc(f32_size);
        for (long r = 0; r < rows; r++) CHECK_OK(dequantize_row(type, raw + r * row_bytes, out + r * cols, cols));
        for (long i = 0; i < rows * cols; i++)
            CHECK_MSG(f2u(out[i]) == f2u(ref[i]), "%s element %ld: %.9g vs llama.cpp %.9g", tname, i, out[i], ref[i]);
        for (size_t k = 0; k < 4; k++) found += strcmp(tname, want_types[k]) == 0;
        free(out);
        free(raw);
        free(ref);
        p += 1;
    }
    free(js);
    CHECK_MSG(found == 4, "found %d of the 4 expected types", found);
}

/* ---- quantize -> dequantize RMSE on N(0,1) data ------------------------------------------- */

/* Expected rmse on N(0,1) data = the independent figure of docs/QUANT.md: gguf-py's quantizers
 * on the same data (F16, Q8_0, Q5_1, Q5_0, Q4_1, Q4_0), llama-quantize's relative rmse on
 * refdata's tiny-llama weights (Q6_K, Q4_K). Q5_K has no independent figure (gguf-py cannot
 * quantize K-quants, refdata has no Q5_K file): our own measurement, a regression bound only.
 * Accepted: within 5% (the acceptance criterion is 10%). */
static const struct { uint32_t type; double want; } rmse_refs[] = {
    {QT_F16, 0.000207}, {QT_Q8_0, 0.005347}, {QT_Q6_K, 0.017725}, {QT_Q5_K, 0.036068},
    {QT_Q5_1, 0.037829}, {QT_Q5_0, 0.042614}, {QT_Q4_K, 0.071312}, {QT_Q4_1, 0.078152},
    {QT_Q4_0, 0.085867},
};

TEST(rmse_gaussian) {
    const size_t rows = 64, cols = 4096, n = rows * cols;   /* a quarter of the bench's data */
    float *x = malloc(n * 4), *y = malloc(n * 4);
    uint8_t *q = malloc(n * 4);
    gauss_fill(x, n, 1234);
    for (size_t t = 0; t < sizeof rmse_refs / sizeof rmse_refs[0]; t++) {
        uint32_t type = rmse_refs[t].type;
        uint64_t rb = 0;
        CHECK(quant_row_bytes(type, cols, &rb));
        for (size_t r = 0; r < rows; r++) {
            CHECK_OK(quantize_row_ref(type, x + r * cols, q + r * rb, (int64_t)cols));
            CHECK_OK(dequantize_row(type, q + r * rb, y + r * cols, (int64_t)cols));
        }
        double se = 0;
        for (size_t i = 0; i < n; i++) se += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        double rmse = sqrt(se / n);
        CHECK_MSG(fabs(rmse / rmse_refs[t].want - 1) <= 0.05, "%s rmse %.6f, reference %.6f",
                  quant_type_name(type), rmse, rmse_refs[t].want);
    }
    free(x);
    free(y);
    free(q);
}

/* Special rows: zeros, a constant, one spike; reconstruction must stay sane (no NaN, zeros exact). */
TEST(quantize_special_rows) {
    static const uint32_t types[] = {QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_Q8_K};
    float x[256], y[256];
    uint8_t q[512];
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        uint32_t type = types[t];
        memset(x, 0, sizeof x);
        CHECK_OK(quantize_row_ref(type, x, q, 256));
        CHECK_OK(dequantize_row(type, q, y, 256));
        for (int i = 0; i < 256; i++) CHECK_MSG(y[i] == 0, "%s zeros at %d: %g", quant_type_name(type), i, y[i]);
        x[77] = 3.0f;   /* one spike: exact for every format (it is the block max) */
        CHECK_OK(quantize_row_ref(type, x, q, 256));
        CHECK_OK(dequantize_row(type, q, y, 256));
        for (int i = 0; i < 256; i++)
            CHECK_MSG(fabsf(y[i] - x[i]) <= 3.0f * 2e-3f, "%s spike at %d: %g", quant_type_name(type), i, y[i]);
        for (int i = 0; i < 256; i++) x[i] = -0.75f;
        CHECK_OK(quantize_row_ref(type, x, q, 256));
        CHECK_OK(dequantize_row(type, q, y, 256));
        for (int i = 0; i < 256; i++)
            CHECK_MSG(fabsf(y[i] + 0.75f) <= 0.75f * 2e-3f, "%s const at %d: %g", quant_type_name(type), i, y[i]);
        /* NaN and Inf (overflowed activations): no undefined conversion (UBSan), and the blocks
         * holding them dequantize to NaN, the others as usual */
        x[40] = NAN;
        x[200] = -INFINITY;
        CHECK_OK(quantize_row_ref(type, x, q, 256));
        CHECK_OK(dequantize_row(type, q, y, 256));
        const int bs = (int)quant_block_size(type);
        for (int i = 0; i < 256; i++) {
            const bool poisoned = i / bs == 40 / bs || i / bs == 200 / bs;
            CHECK_MSG(poisoned ? isnan(y[i]) : fabsf(y[i] + 0.75f) <= 0.75f * 2e-3f, "%s non-finite row at %d: %g",
                      quant_type_name(type), i, y[i]);
        }
    }
}

/* ---- our quantizer vs llama-quantize, byte for byte --------------------------------------- */

/* refdata's tiny-llama-q4_k_m.gguf was written by llama-quantize (no imatrix) from
 * tiny-llama-f16.gguf: re-quantizing the F16 weights must give the same Q4_K / Q6_K blocks.
 * The first 32 rows of every such tensor (all of them at -O2 in bench_quant_rmse: 100%). */
TEST(llama_quantize_blocks) {
    const char *rd = test_refdata();
    if (!rd) SKIP("refdata not found (set CODER_REFDATA)");
    char p16[4096], pq[4096];
    snprintf(p16, sizeof p16, "%s/models/tiny-llama-f16.gguf", rd);
    snprintf(pq, sizeof pq, "%s/models/tiny-llama-q4_k_m.gguf", rd);
    gguf_file *f16 = NULL, *fq = NULL;
    CHECK_OK(gguf_open(p16, NULL, &f16));
    coder_status st = gguf_open(pq, NULL, &fq);
    if (st != CODER_OK) gguf_close(f16);
    CHECK_OK(st);
    size_t n_k4 = 0, n_k6 = 0, n_blocks = 0, n_diff = 0;
    char first_diff[128] = "";
    float *x = malloc(32 * 768 * sizeof(float));
    uint8_t *q = malloc(32 * 768 * 2);
    for (size_t i = 0; i < gguf_tensor_count(fq); i++) {
        const gguf_tensor *tq = gguf_tensor_at(fq, i);
        if (tq->type != QT_Q4_K && tq->type != QT_Q6_K) continue;
        const gguf_tensor *ts = gguf_find_tensor(f16, tq->name);
        if (!ts || ts->type != QT_F16 || ts->ne[0] != tq->ne[0] || ts->ne[0] > 768) continue;
        n_k4 += tq->type == QT_Q4_K;
        n_k6 += tq->type == QT_Q6_K;
        uint64_t rows = tq->ne[1] < 32 ? tq->ne[1] : 32, n = rows * tq->ne[0], rb = 0;
        quant_row_bytes(tq->type, tq->ne[0], &rb);
        dequantize_row(QT_F16, ts->data, x, (int64_t)n);
        quantize_row_ref(tq->type, x, q, (int64_t)n);
        size_t bsz = quant_type_size(tq->type);
        for (size_t b = 0; b < rows * rb / bsz; b++, n_blocks++)
            if (memcmp(q + b * bsz, (const uint8_t *)tq->data + b * bsz, bsz) != 0 && n_diff++ == 0)
                snprintf(first_diff, sizeof first_diff, "%s block %zu", tq->name, b);
    }
    free(x);
    free(q);
    gguf_close(f16);
    gguf_close(fq);
    CHECK_MSG(n_k4 >= 20 && n_k6 >= 5, "found %zu Q4_K and %zu Q6_K tensors", n_k4, n_k6);
    CHECK_MSG(n_diff == 0, "%zu of %zu blocks differ from llama-quantize, first: %s", n_diff, n_blocks, first_diff);
}

/* ---- activation formats ------------------------------------------------------------------- */

TEST(activation_q8_k) {
    float x[1024], y[1024];
    block_q8_k b[4];
    gauss_fill(x, 1024, 99);
    for (int i = 0; i < 256; i++) x[512 + i] *= 1e-3f;   /* a small-magnitude block */
    CHECK_OK(quantize_row_ref(QT_Q8_K, x, b, 1024));
    CHECK_OK(dequantize_row(QT_Q8_K, b, y, 1024));
    for (int k = 0; k < 4; k++) {
        double amax = 0;
        for (int i = 0; i < 256; i++) amax = fmax(amax, fabs(x[256 * k + i]));
        CHECK_NEAR(fabs(b[k].d), amax / 127, 0, 1e-6);
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += b[k].qs[16 * g + i];
            CHECK_MSG(b[k].bsums[g] == sum, "block %d bsum %d: %d vs %d", k, g, b[k].bsums[g], sum);
        }
        for (int i = 0; i < 256; i++)
            CHECK_MSG(fabs(y[256 * k + i] - x[256 * k + i]) <= 0.5001 * fabs(b[k].d), "block %d elem %d", k, i);
    }
}

TEST(activation_q8_1) {
    float x[256];
    block_q8_1 b[8];
    gauss_fill(x, 256, 5);
    CHECK_OK(quantize_row_ref(QT_Q8_1, x, b, 256));
    for (int k = 0; k < 8; k++) {
        double d = half_def(b[k].d), amax = 0;
        int sum = 0;
        for (int i = 0; i < 32; i++) {
            sum += b[k].qs[i];
            amax = fmax(amax, fabs(x[32 * k + i]));
        }
        CHECK_NEAR(d, amax / 127, 0, 1e-3);           /* d stored as f16 */
        /* s = f16(d_f32 * sum): within f16 rounding of the product with the stored d */
        CHECK_NEAR(half_def(b[k].s), d * sum, 1e-6, 2e-3);
        for (int i = 0; i < 32; i++)
            CHECK_MSG(fabs(b[k].qs[i] * d - x[32 * k + i]) <= 0.502 * d + 1e-3 * amax, "block %d elem %d", k, i);
    }
}

int main(void) {
    RUN(type_table);
    RUN(bad_args);
    RUN(fp16_exhaustive_round_trip);
    RUN(fp16_rounding_midpoints);
    RUN(fp16_edges);
    RUN(fp16_vs_compiler);
    RUN(bf16);
    RUN(hand_blocks);
    RUN(index_formulas_random);
    RUN(refdata_dequant_bit_exact);
    RUN(rmse_gaussian);
    RUN(quantize_special_rows);
    RUN(llama_quantize_blocks);
    RUN(activation_q8_k);
    RUN(activation_q8_1);
    return test_summary();
}
