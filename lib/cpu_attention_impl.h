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
/* vectors of output dims per pass of the V sum: nh x ATT_CB accumulators and ATT_CB V vectors */
#define ATT_CB(nh) (28 / ((nh) + 1) < 4 ? 28 / ((nh) + 1) : 4)
#else
ATT_T static inline __attribute__((always_inline)) void ATT_FN(att_sum4)(att_vec v0, att_vec v1, att_vec v2, att_vec v3,
                                                                        float s[4]) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(v0, v1), _mm256_hadd_ps(v2, v3));
    _mm_storeu_ps(s, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}
#define ATT_PJ(nh) ((nh) * 2 + 3 <= 16 ? 2 : 1)   /* 16 registers */
#define ATT_CB(nh) (14 / ((nh) + 1) < 4 ? 14 / ((nh) + 1) : 4)
#endif

/* The pieces below are written once with the head count nh as a constant (1..ATT_MAX_GROUP), so
 * the accumulators live in registers; att_heads_<level> / att_tile_<level> pick the instance. */

/* Prefetches the row segment [at, at + len) of row. */
#define ATT_PREFETCH(row, at, len)                                                                 \
    do {                                                                                           \
        const char *p_ = (const char *)(row) + (at);                                               \
        for (size_t o_ = 0; o_ < (len); o_ += 64) _mm_prefetch(p_ + o_, _MM_HINT_T0);              \
        _mm_prefetch(p_ + (len) - 1, _MM_HINT_T0);                                                 \
    } while (0)

/* Scores of positions p_lo..p_hi into sc[i * n_ctx + (p - p0)], ATT_PJ positions at a time: one
 * load of each q vector serves them all and their horizontal sums share the shuffles (att_sum4),
 * each score still a function of its own vector. With pf, the rows ATT_PF positions ahead (up to
 * pf_end) are prefetched: K, and V when r->v_early. */
ATT_T static inline __attribute__((always_inline)) void ATT_FN(att_scores)(const cpu_attention_args *a, const att_rows *r,
                                                                           int32_t p0, int32_t p_lo, int32_t p_hi,
                                                                           int32_t pf_end, bool pf, const float *q,
                                                                           const int nh, float *sc) {
    const kv_cache *kv = a->kv;
    const int hd = a->head_dim;
    const int32_t n_ctx = kv->n_ctx;
    enum { PJ = 4 };   /* array bound: ATT_PJ(nh) <= 4 positions are used */
    const int pj = ATT_PJ(nh);
    for (int32_t p = p_lo; p <= p_hi; p += pj) {
        const int np = p_hi - p + 1 < pj ? p_hi - p + 1 : pj;   /* the last block may be short */
        const void *row[PJ];
        for (int j = 0; j < pj; j++) {
            row[j] = kv_cache_k_row(kv, a->layer, j < np ? p + j : p);
            if (pf && p + j + ATT_PF <= pf_end) {
                ATT_PREFETCH(kv_cache_k_row(kv, a->layer, p + j + ATT_PF), r->k_at, r->k_len);
                if (r->v_early) ATT_PREFETCH(kv_cache_v_row(kv, a->layer, p + j + ATT_PF), r->v_at, r->v_len);
            }
        }
        att_vec acc[ATT_MAX_GROUP][PJ];
        _Pragma("GCC unroll 8") for (int i = 0; i < nh; i++) _Pragma("GCC unroll 4") for (int j = 0; j < PJ; j++) acc[i][j] = V_ZERO();
        for (int c = 0; c < hd; c += ATT_W) {
            att_vec k[PJ];
            _Pragma("GCC unroll 4") for (int j = 0; j < pj; j++) k[j] = ATT_FN(att_load)(row[j], r->kt, r->off, c);
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
}

/* out[i] += sum over p in pb..pe of sc[i][p - p0] V[p] (out[i] starts at 0 when pb == p0): one
 * vector of output dims at a time over the block's positions, the accumulators in registers and
 * every row read from memory once. With pf and late V (!r->v_early), the first pass prefetches
 * the V rows ATT_PF positions ahead, up to pf_end. */
ATT_T static inline __attribute__((always_inline)) void ATT_FN(att_values)(const cpu_attention_args *a, const att_rows *r,
                                                                           int32_t p0, int32_t pb, int32_t pe,
                                                                           int32_t pf_end, bool pf, const float *sc,
                                                                           float *out, const int nh) {
    const kv_cache *kv = a->kv;
    const int hd = a->head_dim;
    const int32_t n_ctx = kv->n_ctx;
    enum { CB = 4 };   /* array bound: ATT_CB(nh) <= 4 vectors of dims a pass */
    const int cb = ATT_CB(nh);
    for (int c0 = 0; c0 < hd; c0 += cb * ATT_W) {
        const int nb = (hd - c0) / ATT_W < cb ? (hd - c0) / ATT_W : cb;
        att_vec acc[ATT_MAX_GROUP][CB];
        _Pragma("GCC unroll 8") for (int i = 0; i < nh; i++) _Pragma("GCC unroll 4") for (int b = 0; b < CB; b++)
            acc[i][b] = pb == p0 || b >= nb ? V_ZERO() : V_LD(out + (size_t)i * hd + c0 + b * ATT_W);
        for (int32_t p = pb; p <= pe; p++) {
            if (pf && c0 == 0 && !r->v_early && p + ATT_PF <= pf_end)   /* the first pass over a block brings its rows */
                ATT_PREFETCH(kv_cache_v_row(kv, a->layer, p + ATT_PF), r->v_at, r->v_len);
            const void *row = kv_cache_v_row(kv, a->layer, p);
            att_vec v[CB];
            _Pragma("GCC unroll 4") for (int b = 0; b < CB; b++) v[b] = b < nb ? ATT_FN(att_load)(row, r->vt, r->off, c0 + b * ATT_W) : V_ZERO();
            _Pragma("GCC unroll 8") for (int i = 0; i < nh; i++) {
                const att_vec w = V_SET1(sc[(size_t)i * n_ctx + (p - p0)]);
                _Pragma("GCC unroll 4") for (int b = 0; b < nb; b++) acc[i][b] = V_FMA(w, v[b], acc[i][b]);
            }
        }
        _Pragma("GCC unroll 8") for (int i = 0; i < nh; i++) _Pragma("GCC unroll 4") for (int b = 0; b < nb; b++)
            V_ST(out + (size_t)i * hd + c0 + b * ATT_W, acc[i][b]);
    }
}

/* One query position: scores over p0..pos, softmax, then V in blocks of ATT_PB positions. */
ATT_T static inline __attribute__((always_inline)) void ATT_FN(att_heads_body)(const cpu_attention_args *a, const att_rows *r,
                                                                               int32_t p0, int32_t pos, const float *q,
                                                                               float *out, const int nh, float *sc) {
    const int32_t n_ctx = a->kv->n_ctx;
    ATT_FN(att_scores)(a, r, p0, p0, pos, pos, true, q, nh, sc);
    for (int i = 0; i < nh; i++) a->k->softmax(sc + (size_t)i * n_ctx, pos - p0 + 1);
    for (int32_t pb = p0; pb <= pos; pb += ATT_PB)
        ATT_FN(att_values)(a, r, p0, pb, pos - pb < ATT_PB ? pos : pb + ATT_PB - 1, pos, true, sc, out, nh);
}

/* nt consecutive query tokens t0.. (no window: p0 = 0 for all) with the arithmetic of
 * att_heads_body for each, position block by position block: a block of K rows (ATT_KB) or V rows
 * (ATT_PB) is read from memory once for the tile and from L1 by its other tokens. Token u's scores
 * are at sc + u * sc_stride, its q and out rows a->n_heads * head_dim apart. */
ATT_T static inline __attribute__((always_inline)) void ATT_FN(att_tile_body)(const cpu_attention_args *a, const att_rows *r,
                                                                              int t0, int nt, const float *q, float *out,
                                                                              const int nh, float *sc, size_t sc_stride) {
    const int32_t n_ctx = a->kv->n_ctx, first = a->pos0 + t0, last = first + nt - 1;
    const size_t qs = (size_t)a->n_heads * a->head_dim;
    for (int32_t kb = 0; kb <= last; kb += ATT_KB)
        for (int u = 0; u < nt; u++) {
            const int32_t pos = first + u, hi = pos - kb < ATT_KB ? pos : kb + ATT_KB - 1;
            if (kb <= hi) ATT_FN(att_scores)(a, r, 0, kb, hi, last, u == 0, q + (size_t)u * qs, nh, sc + (size_t)u * sc_stride);
        }
    for (int u = 0; u < nt; u++)
        for (int i = 0; i < nh; i++) a->k->softmax(sc + (size_t)u * sc_stride + (size_t)i * n_ctx, first + u + 1);
    for (int32_t pb = 0; pb <= last; pb += ATT_PB)
        for (int u = 0; u < nt; u++) {
            const int32_t pos = first + u;
            if (pb <= pos)
                ATT_FN(att_values)(a, r, 0, pb, pos - pb < ATT_PB ? pos : pb + ATT_PB - 1, last, u == 0, sc + (size_t)u * sc_stride,
                                   out + (size_t)u * qs, nh);
        }
}

#define ATT_HEADS_FN(N)                                                                                         \
    ATT_T static void ATT_FN(att_heads_##N)(const cpu_attention_args *a, const att_rows *r, int32_t p0, int32_t pos, \
                                            const float *q, float *out, float *sc) {                              \
        ATT_FN(att_heads_body)(a, r, p0, pos, q, out, N, sc);                                                    \
    }                                                                                                             \
    ATT_T static void ATT_FN(att_tile_##N)(const cpu_attention_args *a, const att_rows *r, int t0, int nt,         \
                                           const float *q, float *out, float *sc, size_t sc_stride) {             \
        ATT_FN(att_tile_body)(a, r, t0, nt, q, out, N, sc, sc_stride);                                           \
    }
ATT_HEADS_FN(1) ATT_HEADS_FN(2) ATT_HEADS_FN(3) ATT_HEADS_FN(4)
ATT_HEADS_FN(5) ATT_HEADS_FN(6) ATT_HEADS_FN(7) ATT_HEADS_FN(8)
#undef ATT_HEADS_FN

static void ATT_FN(att_heads)(const cpu_attention_args *a, const att_rows *r, int32_t p0, int32_t pos, const float *q,
                              float *out, int nh, float *sc) {
    typedef void (*fn)(const cpu_attention_args *, const att_rows *, int32_t, int32_t, const float *, float *, float *);
    static const fn by_n[ATT_MAX_GROUP] = {ATT_FN(att_heads_1), ATT_FN(att_heads_2), ATT_FN(att_heads_3),
                                           ATT_FN(att_heads_4), ATT_FN(att_heads_5), ATT_FN(att_heads_6),
                                           ATT_FN(att_heads_7), ATT_FN(att_heads_8)};
    by_n[nh - 1](a, r, p0, pos, q, out, sc);
}

static void ATT_FN(att_tile)(const cpu_attention_args *a, const att_rows *r, int t0, int nt, const float *q, float *out,
                             int nh, float *sc, size_t sc_stride) {
    typedef void (*fn)(const cpu_attention_args *, const att_rows *, int, int, const float *, float *, float *, size_t);
    static const fn by_n[ATT_MAX_GROUP] = {ATT_FN(att_tile_1), ATT_FN(att_tile_2), ATT_FN(att_tile_3),
                                           ATT_FN(att_tile_4), ATT_FN(att_tile_5), ATT_FN(att_tile_6),
                                           ATT_FN(att_tile_7), ATT_FN(att_tile_8)};
    by_n[nh - 1](a, r, t0, nt, q, out, sc, sc_stride);
}

#undef ATT_PREFETCH
#undef ATT_PJ
#undef ATT_CB
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
