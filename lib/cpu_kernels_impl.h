/* cpu_kernels_impl.h - the CPU kernels, written once and compiled three times by cpu_matmul.c:
 * CPU_LEVEL 0 (plain C: the scalar reference), 1 (AVX2+FMA+F16C), 2 (AVX-512 F/BW/VL/DQ+VNNI). Each
 * instance's functions carry a `target` attribute, so the file builds without -m flags and the
 * right instance is picked at run time (cpu_kernels_for). The dequantizers are plain loops over
 * the block layouts of FORMATS.md section 2, written so the compiler vectorises them for the
 * target; the dot products are explicit intrinsics at levels 1 and 2.
 * Included with CPU_LEVEL and CPU_SUFFIX defined; defines nothing else visible. */

#define CPU_CAT2(a, b) a##_##b
#define CPU_CAT(a, b) CPU_CAT2(a, b)
#define FN(name) CPU_CAT(name, CPU_SUFFIX)

#if CPU_LEVEL == 0
#define KFN static
#elif CPU_LEVEL == 1
#define KFN static __attribute__((target("avx2,fma,f16c"), optimize("tree-vectorize")))
#else
#define KFN static __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c"), optimize("tree-vectorize")))
#endif

KFN inline float FN(h2f)(uint16_t h) {
#if CPU_LEVEL == 0
    return cpu_f16_to_f32(h);
#else
    return _cvtsh_ss(h);
#endif
}

/* ---- dequantizers: n elements, a multiple of the block size ---------------------------------- */

KFN void FN(deq_f16)(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    int64_t i = 0;
#if CPU_LEVEL == 2
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + i))));
#elif CPU_LEVEL == 1
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
#endif
    for (; i < n; i++) dst[i] = FN(h2f)(s[i]);
}

KFN void FN(deq_bf16)(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint32_t b = (uint32_t)s[i] << 16;
        memcpy(dst + i, &b, 4);
    }
}

KFN void FN(deq_f32)(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }

KFN void FN(deq_q8_0)(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t ib = 0; ib < n / QK8_0; ib++, dst += QK8_0) {
        const float d = FN(h2f)(b[ib].d);
        for (int l = 0; l < QK8_0; l++) dst[l] = (float)b[ib].qs[l] * d;
    }
}

KFN void FN(deq_q4_0)(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    for (int64_t ib = 0; ib < n / QK4_0; ib++, dst += QK4_0) {
        const float d = FN(h2f)(b[ib].d);
        for (int l = 0; l < 16; l++) {
            dst[l] = (float)((b[ib].qs[l] & 0x0F) - 8) * d;
            dst[l + 16] = (float)((b[ib].qs[l] >> 4) - 8) * d;
        }
    }
}

KFN void FN(deq_q4_1)(const void *src, float *dst, int64_t n) {
    const block_q4_1 *b = src;
    for (int64_t ib = 0; ib < n / QK4_1; ib++, dst += QK4_1) {
        const float d = FN(h2f)(b[ib].d), m = FN(h2f)(b[ib].m);
        for (int l = 0; l < 16; l++) {
            dst[l] = (float)(b[ib].qs[l] & 0x0F) * d + m;
            dst[l + 16] = (float)(b[ib].qs[l] >> 4) * d + m;
        }
    }
}

KFN void FN(deq_q5_0)(const void *src, float *dst, int64_t n) {
    const block_q5_0 *b = src;
    for (int64_t ib = 0; ib < n / QK5_0; ib++, dst += QK5_0) {
        const float d = FN(h2f)(b[ib].d);
        uint32_t qh;
        memcpy(&qh, b[ib].qh, 4);   /* bit i = 5th bit of element i */
        for (int l = 0; l < 16; l++) {
            const int h0 = (int)((qh >> l) & 1u) << 4, h1 = (int)((qh >> (l + 16)) & 1u) << 4;
            dst[l] = (float)(((b[ib].qs[l] & 0x0F) | h0) - 16) * d;
            dst[l + 16] = (float)(((b[ib].qs[l] >> 4) | h1) - 16) * d;
        }
    }
}

KFN void FN(deq_q5_1)(const void *src, float *dst, int64_t n) {
    const block_q5_1 *b = src;
    for (int64_t ib = 0; ib < n / QK5_1; ib++, dst += QK5_1) {
        const float d = FN(h2f)(b[ib].d), m = FN(h2f)(b[ib].m);
        uint32_t qh;
        memcpy(&qh, b[ib].qh, 4);
        for (int l = 0; l < 16; l++) {
            const int h0 = (int)((qh >> l) & 1u) << 4, h1 = (int)((qh >> (l + 16)) & 1u) << 4;
            dst[l] = (float)((b[ib].qs[l] & 0x0F) | h0) * d + m;
            dst[l + 16] = (float)((b[ib].qs[l] >> 4) | h1) * d + m;
        }
    }
}


KFN void FN(deq_q4_k)(const void *src, float *dst, int64_t n) {
    const block_q4_k *b = src;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const float d = FN(h2f)(b[ib].d), dmin = FN(h2f)(b[ib].dmin);
        const uint8_t *q = b[ib].qs;
        for (int c = 0; c < 4; c++, q += 32, dst += 64) {   /* 64 elements: sub-blocks 2c, 2c+1 */
            int sc, m;
            quant_k4_scale_min(2 * c, b[ib].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            quant_k4_scale_min(2 * c + 1, b[ib].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) dst[l] = d1 * (float)(q[l] & 0x0F) - m1;
            for (int l = 0; l < 32; l++) dst[l + 32] = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

KFN void FN(deq_q5_k)(const void *src, float *dst, int64_t n) {
    const block_q5_k *b = src;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const float d = FN(h2f)(b[ib].d), dmin = FN(h2f)(b[ib].dmin);
        const uint8_t *q = b[ib].qs, *qh = b[ib].qh;
        for (int c = 0; c < 4; c++, q += 32, dst += 64) {
            int sc, m;
            quant_k4_scale_min(2 * c, b[ib].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            quant_k4_scale_min(2 * c + 1, b[ib].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            const int s1 = 2 * c, s2 = 2 * c + 1;   /* bit j of qh[l]: high bit of sub-block j */
            for (int l = 0; l < 32; l++) dst[l] = d1 * (float)((q[l] & 0x0F) | (((qh[l] >> s1) & 1) << 4)) - m1;
            for (int l = 0; l < 32; l++) dst[l + 32] = d2 * (float)((q[l] >> 4) | (((qh[l] >> s2) & 1) << 4)) - m2;
        }
    }
}

KFN void FN(deq_q6_k)(const void *src, float *dst, int64_t n) {
    const block_q6_k *b = src;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const float d = FN(h2f)(b[ib].d);
        for (int h = 0; h < 2; h++, dst += 128) {
            const uint8_t *ql = b[ib].ql + 64 * h, *qh = b[ib].qh + 32 * h;
            const int8_t *sc = b[ib].scales + 8 * h;
            for (int g = 0; g < 4; g++) {                  /* 32 elements 128h + 32g + l      */
                const uint8_t *lo = ql + 32 * (g & 1);
                const int sh = g < 2 ? 0 : 4;
                const float d0 = d * (float)sc[2 * g], d1 = d * (float)sc[2 * g + 1];
                for (int l = 0; l < 16; l++)
                    dst[32 * g + l] = d0 * (float)((((lo[l] >> sh) & 0x0F) | (((qh[l] >> (2 * g)) & 3) << 4)) - 32);
                for (int l = 16; l < 32; l++)
                    dst[32 * g + l] = d1 * (float)((((lo[l] >> sh) & 0x0F) | (((qh[l] >> (2 * g)) & 3) << 4)) - 32);
            }
        }
    }
}

/* ---- f32 dot products ------------------------------------------------------------------------ */

#if CPU_LEVEL == 2
KFN inline float FN(hsum)(__m512 v) { return _mm512_reduce_add_ps(v); }
#elif CPU_LEVEL == 1
KFN inline float FN(hsum)(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

KFN float FN(dot)(const float *a, const float *b, int64_t n) {
    int64_t i = 0;
#if CPU_LEVEL == 2
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return FN(hsum)(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
#elif CPU_LEVEL == 1
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float t = FN(hsum)(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) t += a[i] * b[i];
    return t;
#else
    float s[8] = {0};   /* 8 partial sums: the same association for every n, less rounding */
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    for (; i < n; i++) s[0] += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
#endif
}

KFN void FN(dot4)(const float *w, size_t stride, const float *x, int64_t n, float out[4]) {
    const float *w0 = w, *w1 = w + stride, *w2 = w + 2 * stride, *w3 = w + 3 * stride;
#if CPU_LEVEL == 2
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 xv = _mm512_loadu_ps(x + i);
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + i), xv, s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + i), xv, s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + i), xv, s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + i), xv, s3);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w0 + i), xv, s0);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w1 + i), xv, s1);
        s2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w2 + i), xv, s2);
        s3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w3 + i), xv, s3);
    }
    out[0] = FN(hsum)(s0);
    out[1] = FN(hsum)(s1);
    out[2] = FN(hsum)(s2);
    out[3] = FN(hsum)(s3);
#elif CPU_LEVEL == 1
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i);
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, s3);
    }
    float t0 = FN(hsum)(s0), t1 = FN(hsum)(s1), t2 = FN(hsum)(s2), t3 = FN(hsum)(s3);
    for (; i < n; i++) {
        t0 += w0[i] * x[i];
        t1 += w1[i] * x[i];
        t2 += w2[i] * x[i];
        t3 += w3[i] * x[i];
    }
    out[0] = t0;
    out[1] = t1;
    out[2] = t2;
    out[3] = t3;
#else
    out[0] = FN(dot)(w0, x, n);
    out[1] = FN(dot)(w1, x, n);
    out[2] = FN(dot)(w2, x, n);
    out[3] = FN(dot)(w3, x, n);
#endif
}

/* ---- F16 helpers for the KV cache -------------------------------------------------------------- */

KFN float FN(dot_f16)(const uint16_t *a, const float *b, int64_t n) {
    int64_t i = 0;
#if CPU_LEVEL == 2
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i))), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i + 16))), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i))), _mm512_loadu_ps(b + i), s0);
    float t = FN(hsum)(_mm512_add_ps(s0, s1));
#elif CPU_LEVEL == 1
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8))), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))), _mm256_loadu_ps(b + i), s0);
    float t = FN(hsum)(_mm256_add_ps(s0, s1));
#else
    float s[8] = {0};
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += cpu_f16_to_f32(a[i + j]) * b[i + j];
    float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
#endif
    for (; i < n; i++) t += FN(h2f)(a[i]) * b[i];
    return t;
}

KFN void FN(axpy)(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

KFN void FN(axpy_f16)(float *y, float a, const uint16_t *x, int64_t n) {
    int64_t i = 0;
#if CPU_LEVEL == 2
    __m512 av = _mm512_set1_ps(a);
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))),
                                                _mm512_loadu_ps(y + i)));
#elif CPU_LEVEL == 1
    __m256 av = _mm256_set1_ps(a);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
                                                _mm256_loadu_ps(y + i)));
#endif
    for (; i < n; i++) y[i] += a * FN(h2f)(x[i]);
}

KFN void FN(to_f16)(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
#if CPU_LEVEL >= 1
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++) y[i] = cpu_f32_to_f16(x[i]);
}

/* ---- SwiGLU: gate[i] = silu(gate[i]) * up[i] ------------------------------------------------
 * Levels 1-2 evaluate exp with Cephes' expf polynomial (range reduction by ln 2 in two parts;
 * within a few ulp of libm's expf: test_cpu_kernels), the scalar level with libm's expf. The
 * argument is clamped first so +-inf and huge values give 0 / inf as expf does (and a NaN gate
 * still gives NaN through g itself). Measured: the libm loop was ~4% of a 0.5B F16 prefill's
 * samples, on one thread. */
#if CPU_LEVEL >= 1
#define CPU_EXP_POLY(V, FMA, MUL, ADD, SET1, r)                                                  \
    ADD(FMA(FMA(FMA(FMA(FMA(FMA(SET1(1.9875691500E-4f), r, SET1(1.3981999507E-3f)), r, SET1(8.3334519073E-3f)), r, \
                        SET1(4.1665795894E-2f)), r, SET1(1.6666665459E-1f)), r, SET1(5.0000001201E-1f)),         \
            MUL(r, r), r), SET1(1.0f))
#endif
#if CPU_LEVEL == 2
KFN inline __m512 FN(exp16)(__m512 x) {
    /* constants first: min/max return their second operand for a NaN, so NaN stays NaN */
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    const __m512 p = CPU_EXP_POLY(__m512, _mm512_fmadd_ps, _mm512_mul_ps, _mm512_add_ps, _mm512_set1_ps, r);
    return _mm512_scalef_ps(p, n);   /* p * 2^n, inf / 0 past the float range */
}
#elif CPU_LEVEL == 1
KFN inline __m256 FN(exp8)(__m256 x) {
    /* 2^n is built in the exponent field: n must stay in [-126, 127]; past 88.7 expf is inf */
    const __m256 over = _mm256_cmp_ps(x, _mm256_set1_ps(88.7f), _CMP_GT_OQ);
    x = _mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_max_ps(_mm256_set1_ps(-87.0f), x));   /* NaN stays NaN */
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    const __m256 p = CPU_EXP_POLY(__m256, _mm256_fmadd_ps, _mm256_mul_ps, _mm256_add_ps, _mm256_set1_ps, r);
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_blendv_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), _mm256_set1_ps(INFINITY), over);
}
#endif

KFN void FN(swiglu)(float *gate, const float *up, int64_t n) {
    int64_t i = 0;
#if CPU_LEVEL == 2
    const __m512 one = _mm512_set1_ps(1.0f), sign = _mm512_set1_ps(-0.0f);
    for (; i + 16 <= n; i += 16) {
        const __m512 g = _mm512_loadu_ps(gate + i);
        const __m512 e = FN(exp16)(_mm512_xor_ps(g, sign));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
    }
#elif CPU_LEVEL == 1
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = FN(exp8)(_mm256_xor_ps(g, sign));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
#endif
    cpu_swiglu(gate + i, up + i, n - i);
}

/* ---- softmax: x[i] = exp(x[i] - max) / sum -------------------------------------------------
 * The attention's score rows (up to n_ctx long). Exponentials as in swiglu, their sum in double
 * as at the scalar level (cpu_softmax), so a 16K-position row keeps the reference's accuracy.
 * Measured: libm's expf was a third of a 0.5B decode's samples at 4K context. */
KFN void FN(softmax)(float *x, int64_t n) {
#if CPU_LEVEL == 2
    if (n < 16) {
        cpu_softmax(x, n);
        return;
    }
    __m512 vm = _mm512_loadu_ps(x);
    int64_t i = 16;
    for (; i + 16 <= n; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(x + i));
    float mx = _mm512_reduce_max_ps(vm);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    const __m512 m = _mm512_set1_ps(mx);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (i = 0; i + 16 <= n; i += 16) {
        const __m512 e = FN(exp16)(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
        _mm512_storeu_ps(x + i, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; i < n; i++) sum += (x[i] = expf(x[i] - mx));
    const __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= (float)(1.0 / sum);
#elif CPU_LEVEL == 1
    if (n < 8) {
        cpu_softmax(x, n);
        return;
    }
    __m256 vm = _mm256_loadu_ps(x);
    int64_t i = 8;
    for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, vm);
    float mx = lanes[0];
    for (int j = 1; j < 8; j++) mx = lanes[j] > mx ? lanes[j] : mx;
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    const __m256 m = _mm256_set1_ps(mx);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = FN(exp8)(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double d[4];
    _mm256_storeu_pd(d, _mm256_add_pd(s0, s1));
    double sum = (d[0] + d[1]) + (d[2] + d[3]);
    for (; i < n; i++) sum += (x[i] = expf(x[i] - mx));
    const __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= (float)(1.0 / sum);
#else
    cpu_softmax(x, n);
#endif
}

#include "cpu_qdot_impl.h"
#include "cpu_gemv_impl.h"

static const cpu_kernels FN(kernels) = {
    .isa = (cpu_isa)CPU_LEVEL,
    .name = CPU_LEVEL == 0 ? "scalar" : CPU_LEVEL == 1 ? "avx2" : "avx512",
    .dequant = {
        [QT_F32] = FN(deq_f32), [QT_F16] = FN(deq_f16), [QT_BF16] = FN(deq_bf16),
        [QT_Q8_0] = FN(deq_q8_0), [QT_Q4_0] = FN(deq_q4_0), [QT_Q4_1] = FN(deq_q4_1),
        [QT_Q5_0] = FN(deq_q5_0), [QT_Q5_1] = FN(deq_q5_1), [QT_Q4_K] = FN(deq_q4_k),
        [QT_Q5_K] = FN(deq_q5_k), [QT_Q6_K] = FN(deq_q6_k),
    },
    .dot = FN(dot),
    .dot4 = FN(dot4),
    .dot_f16 = FN(dot_f16),
    .axpy = FN(axpy),
    .axpy_f16 = FN(axpy_f16),
    .to_f16 = FN(to_f16),
    .swiglu = FN(swiglu),
    .softmax = FN(softmax),
    .quant = {[CPU_ACT_Q8A] = FN(quant_q8a), [CPU_ACT_Q8K] = FN(quant_q8k)},
    .qdot = {
        [QT_F32] = FN(qdot_f32), [QT_F16] = FN(qdot_f16), [QT_BF16] = FN(qdot_bf16),
        [QT_Q8_0] = FN(qdot_q8_0), [QT_Q4_0] = FN(qdot_q4_0), [QT_Q4_1] = FN(qdot_q4_1),
        [QT_Q5_0] = FN(qdot_q5_0), [QT_Q5_1] = FN(qdot_q5_1), [QT_Q4_K] = FN(qdot_q4_k),
        [QT_Q5_K] = FN(qdot_q5_k), [QT_Q6_K] = FN(qdot_q6_k),
    },
    .gemv = {
        [QT_F32] = FN(gemv_f32), [QT_F16] = FN(gemv_f16), [QT_BF16] = FN(gemv_bf16),
        [QT_Q8_0] = FN(gemv_q8_0), [QT_Q4_0] = FN(gemv_q4_0), [QT_Q4_1] = FN(gemv_q4_1),
        [QT_Q5_0] = FN(gemv_q5_0), [QT_Q5_1] = FN(gemv_q5_1), [QT_Q4_K] = FN(gemv_q4_k),
        [QT_Q5_K] = FN(gemv_q5_k), [QT_Q6_K] = FN(gemv_q6_k),
    },
    .gemv_x4 = {
        [QT_Q8_0] = FN(gemv_x4_q8_0), [QT_Q4_0] = FN(gemv_x4_q4_0), [QT_Q4_1] = FN(gemv_x4_q4_1),
        [QT_Q5_0] = FN(gemv_x4_q5_0), [QT_Q5_1] = FN(gemv_x4_q5_1), [QT_Q4_K] = FN(gemv_x4_q4_k),
        [QT_Q5_K] = FN(gemv_x4_q5_k), [QT_Q6_K] = FN(gemv_x4_q6_k),
    },
};

#undef KFN
#undef FN
#undef CPU_CAT
#undef CPU_CAT2
