/* cpu_attention_impl.h - the SIMD body of cpu_attention.c's grouped-head task, included once per
 * ATT_LEVEL (2: AVX-512, 16 floats a vector; 1: AVX2, 8 floats). Defines att_heads_<level>(),
 * which computes nh <= ATT_MAX_GROUP heads sharing one KV head for one query position:
 * scores (one pass over K), softmax, then V in blocks of ATT_PB positions. Per head the same
 * arithmetic for any grouping, so results do not depend on the thread count. */

#if ATT_LEVEL == 2
#define ATT_T __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define ATT_FN(name) name##_avx512
#define ATT_W 16
#define att_vec __m512
#define V_ZERO() _mm512_setzero_ps()
#define V_LD(p) _mm512_loadu_ps(p)
#define V_ST(p, v) _mm512_storeu_ps(p, v)
#define V_SET1(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_SUM(v) _mm512_reduce_add_ps(v)
#else
#define ATT_T __attribute__((target("avx2,fma,f16c")))
#define ATT_FN(name) name##_avx2
#define ATT_W 8
#define att_vec __m256
#define V_ZERO() _mm256_setzero_ps()
#define V_LD(p) _mm256_loadu_ps(p)
#define V_ST(p, v) _mm256_storeu_ps(p, v)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_SUM(v) ATT_FN(att_sum)(v)
ATT_T static inline float att_sum_avx2(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}
#endif

/* values [c, c + ATT_W) of the row segment starting at off, as f32 (off + c is a multiple of ATT_W) */
ATT_T static inline __attribute__((always_inline)) att_vec ATT_FN(att_load)(const void *row, int32_t type, size_t off,
                                                                            int c) {
    const size_t i = off + (size_t)c;
    switch (type) {
    case QT_F32: return V_LD((const float *)row + i);
    case QT_F16:
#if ATT_LEVEL == 2
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i)));
#else
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
#endif
    case QT_Q8_0: {
        const block_q8_0 *b = (const block_q8_0 *)row + i / 32;
#if ATT_LEVEL == 2
        const att_vec v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b->qs + i % 32))));
#else
        const att_vec v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + i % 32))));
#endif
        return V_MUL(V_SET1(cpu_f16_to_f32(b->d)), v);
    }
    default: {   /* Q4_0: values 0..15 of a block are the low nibbles of its 16 bytes, 16..31 the high ones */
        const block_q4_0 *b = (const block_q4_0 *)row + i / 32;
        const size_t w = i % 32;
#if ATT_LEVEL == 2
        __m128i q = _mm_loadu_si128((const __m128i *)b->qs);
        if (w) q = _mm_srli_epi16(q, 4);
        q = _mm_and_si128(q, _mm_set1_epi8(15));
        const att_vec v = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(q), _mm512_set1_epi32(8)));
#else
        __m128i q = _mm_loadl_epi64((const __m128i *)(b->qs + w % 16));
        if (w >= 16) q = _mm_srli_epi16(q, 4);
        q = _mm_and_si128(q, _mm_set1_epi8(15));
        const att_vec v = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(q), _mm256_set1_epi32(8)));
#endif
        return V_MUL(V_SET1(cpu_f16_to_f32(b->d)), v);
    }
    }
}

/* s[j] = the sum of v_j's lanes, j < 4, each in one fixed order that depends on that vector alone
 * (a score's bits do not depend on which positions share its block). */
#if ATT_LEVEL == 2
ATT_T static inline __attribute__((always_inline)) void ATT_FN(att_sum4)(att_vec v0, att_vec v1, att_vec v2, att_vec v3,
                                                                        float s[4]) {
    const __m512 a = _mm512_add_ps(_mm512_shuffle_f32x4(v0, v1, 0x44), _mm512_shuffle_f32x4(v0, v1, 0xEE));
    const __m512 b = _mm512_add_ps(_mm512_shuffle_f32x4(v2, v3, 0x44), _mm512_shuffle_f32x4(v2, v3, 0xEE));
    __m512 c = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));   /* lane j: v_j's 4 partials */
    c = _mm512_add_ps(c, _mm512_permute_ps(c, 0x4E));
    c = _mm512_add_ps(c, _mm512_permute_ps(c, 0xB1));
    _mm_storeu_ps(s, _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), c)));
}
/* positions per block of the scores: nh x ATT_PJ accumulators, ATT_PJ K vectors and a q vector in
 * the 32 registers */
#define ATT_PJ(nh) ((nh) * 4 + 5 <= 32 ? 4 : 3)
#else
ATT_T static inline __attribute__((always_inline)) void ATT_FN(att_sum4)(att_vec v0, att_vec v1, att_vec v2, att_vec v3,
                                                                        float s[4]) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(v0, v1), _mm256_hadd_ps(v2, v3));
    _mm_storeu_ps(s, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}
#define ATT_PJ(nh) ((nh) * 2 + 3 <= 16 ? 2 : 1)   /* 16 registers */
#endif

/* Written once with the head count as a constant (1..ATT_MAX_GROUP), so the accumulators live in
 * registers; att_heads_<level> picks the instance. Scores are computed ATT_PJ positions at a time:
 * one load of each q vector serves them all, and their horizontal sums share the shuffles
 * (att_sum4) instead of one full reduction per head and position. */
ATT_T static inline __attribute__((always_inline)) void ATT_FN(att_heads_body)(const cpu_attention_args *a, int32_t p0,
                                                                               int32_t pos, size_t off, int32_t kt,
                                                                               int32_t vt, const float *q, float *out,
                                                                               const int nh, float *sc) {
    const kv_cache *kv = a->kv;
    const int hd = a->head_dim;
    const int32_t n_ctx = kv->n_ctx;
    enum { PJ = 4 };   /* array bound: ATT_PJ(nh) <= 4 positions are used */
    const int pj = ATT_PJ(nh);
    size_t k_at, k_len, v_at, v_len;
    att_segment(kt, off, hd, &k_at, &k_len);
    att_segment(vt, off, hd, &v_at, &v_len);
    /* V rows are fetched during the scores when they will still be in L2 for the V pass (up to
     * ATT_V_EARLY bytes), otherwise ahead of the V pass itself */
    const bool v_early = (uint64_t)(pos - p0 + 1) * v_len <= ATT_V_EARLY;
    for (int32_t p = p0; p <= pos; p += pj) {
        const int np = pos - p + 1 < pj ? pos - p + 1 : pj;   /* the last block may be short */
        const void *row[PJ];
        for (int j = 0; j < pj; j++) {
            row[j] = kv_cache_k_row(kv, a->layer, j < np ? p + j : p);
            if (p + j + ATT_PF <= pos) {
                const char *kp = (const char *)kv_cache_k_row(kv, a->layer, p + j + ATT_PF) + k_at;
                for (size_t o = 0; o < k_len; o += 64) _mm_prefetch(kp + o, _MM_HINT_T0);
                _mm_prefetch(kp + k_len - 1, _MM_HINT_T0);
                if (v_early) {
                    const char *vp = (const char *)kv_cache_v_row(kv, a->layer, p + j + ATT_PF) + v_at;
                    for (size_t o = 0; o < v_len; o += 64) _mm_prefetch(vp + o, _MM_HINT_T0);
                    _mm_prefetch(vp + v_len - 1, _MM_HINT_T0);
                }
            }
        }
        att_vec acc[ATT_MAX_GROUP][PJ];
        _Pragma("GCC unroll 8") for (int i = 0; i < nh; i++) _Pragma("GCC unroll 4") for (int j = 0; j < PJ; j++) acc[i][j] = V_ZERO();
        for (int c = 0; c < hd; c += ATT_W) {
            att_vec k[PJ];
            _Pragma("GCC unroll 4") for (int j = 0; j < pj; j++) k[j] = ATT_FN(att_load)(row[j], kt, off, c);
            _Pragma("GCC unroll 8") for (int i = 0; i < nh; i++) {
                const att_vec qv = V_LD(q + (size_t)i * hd + c);
                _Pragma("GCC unroll 4") for (int j = 0; j < pj; j++) acc[i][j] = V_FMA(qv, k[j], acc[i][j]);
            }
        }
        _Pragma("GCC unroll 8") for (int i = 0; i < nh; i++) {
            float s4[4];
            ATT_FN(att_sum4)(acc[i][0], pj > 1 ? acc[i][1] : V_ZERO(), pj > 2 ? acc[i][2] : V_ZERO(), pj > 3 ? acc[i][3] : V_ZERO(), s4);
            for (int j = 0; j < np; j++) sc[(size_t)i * n_ctx + (p + j - p0)] = s4[j] * a->scale;
        }
    }
    for (int i = 0; i < nh; i++) a->k->softmax(sc + (size_t)i * n_ctx, pos - p0 + 1);
    /* V in blocks of ATT_PB positions (their rows stay in L1/L2) and, within a block, one vector of
     * output dims at a time over its positions: the accumulators stay in registers and every row
     * is read from memory once */
    for (int32_t pb = p0; pb <= pos; pb += ATT_PB) {
        const int32_t pe = pos - pb < ATT_PB ? pos : pb + ATT_PB - 1;
        for (int c = 0; c < hd; c += ATT_W) {
            att_vec acc[ATT_MAX_GROUP];
            _Pragma("GCC unroll 8") for (int i = 0; i < nh; i++) acc[i] = pb == p0 ? V_ZERO() : V_LD(out + (size_t)i * hd + c);
            for (int32_t p = pb; p <= pe; p++) {
                if (c == 0 && !v_early && p + ATT_PF <= pos) {   /* the first pass over a block brings its rows */
                    const char *vp = (const char *)kv_cache_v_row(kv, a->layer, p + ATT_PF) + v_at;
                    for (size_t o = 0; o < v_len; o += 64) _mm_prefetch(vp + o, _MM_HINT_T0);
                    _mm_prefetch(vp + v_len - 1, _MM_HINT_T0);
                }
                const att_vec v = ATT_FN(att_load)(kv_cache_v_row(kv, a->layer, p), vt, off, c);
                _Pragma("GCC unroll 8") for (int i = 0; i < nh; i++)
                    acc[i] = V_FMA(V_SET1(sc[(size_t)i * n_ctx + (p - p0)]), v, acc[i]);
            }
            _Pragma("GCC unroll 8") for (int i = 0; i < nh; i++) V_ST(out + (size_t)i * hd + c, acc[i]);
        }
    }
}

#define ATT_HEADS_FN(N)                                                                                       \
    ATT_T static void ATT_FN(att_heads_##N)(const cpu_attention_args *a, int32_t p0, int32_t pos, size_t off,   \
                                            int32_t kt, int32_t vt, const float *q, float *out, float *sc) {    \
        ATT_FN(att_heads_body)(a, p0, pos, off, kt, vt, q, out, N, sc);                                        \
    }
ATT_HEADS_FN(1) ATT_HEADS_FN(2) ATT_HEADS_FN(3) ATT_HEADS_FN(4)
ATT_HEADS_FN(5) ATT_HEADS_FN(6) ATT_HEADS_FN(7) ATT_HEADS_FN(8)
#undef ATT_HEADS_FN

static void ATT_FN(att_heads)(const cpu_attention_args *a, int32_t p0, int32_t pos, size_t off, int32_t kt, int32_t vt,
                              const float *q, float *out, int nh, float *sc) {
    typedef void (*fn)(const cpu_attention_args *, int32_t, int32_t, size_t, int32_t, int32_t, const float *, float *,
                       float *);
    static const fn by_n[ATT_MAX_GROUP] = {ATT_FN(att_heads_1), ATT_FN(att_heads_2), ATT_FN(att_heads_3),
                                           ATT_FN(att_heads_4), ATT_FN(att_heads_5), ATT_FN(att_heads_6),
                                           ATT_FN(att_heads_7), ATT_FN(att_heads_8)};
    by_n[nh - 1](a, p0, pos, off, kt, vt, q, out, sc);
}

#undef ATT_PJ
#undef ATT_T
#undef ATT_FN
#undef ATT_W
#undef V_ZERO
#undef V_LD
#undef V_ST
#undef V_SET1
#undef V_FMA
#undef V_MUL
#undef att_vec
#undef V_SUM
