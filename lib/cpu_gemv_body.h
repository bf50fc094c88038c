/* cpu_gemv_body.h - the 4-row group kernels of cpu_gemv_impl.h, included by it twice per level:
 * GEMV_S4 0 for rows row_bytes apart (gb_TYPE), GEMV_S4 1 for rows repacked 4 at a time, block by
 * block (gb_TYPE_s4; lib/repack.c). The repacked kernels are the same code: their row pointers
 * start one block apart and have the padded block types (block_TYPE_s4, 4 blocks long), so
 * `wr[r] + ib` steps over the other rows' blocks of the block column, and a group is one
 * sequential stream. Same arithmetic, so the same bits. */
#if GEMV_S4
#define GB(T) FN(gb_##T##_s4)
#define GP(T) FN(gp_##T##_s4)
#define GV(T) FN(gemv_x4_##T)
#define BT(T) block_##T##_s4
#define GEMV_PF_DIST(rb) ((size_t)GEMV_PF_BYTES)   /* one stream */
#else
#define GB(T) FN(gb_##T)
#define GP(T) FN(gp_##T)
#define GV(T) FN(gemv_##T)
#define BT(T) block_##T
#define GEMV_PF_DIST(rb) FN(gemv_pf_dist)(rb)
#endif

/* Clamped row pointers: rows past NR repeat the last one (their lanes are computed, never stored). */
#define GEMV_ROWS(T)                                                                                      \
    const T *wr[GEMV_NR];                                                                                \
    GEMV_UNROLL                                                                                          \
    for (int r = 0; r < GEMV_NR; r++) wr[r] = (const T *)((const char *)w + (size_t)(r < NR ? r : NR - 1) * rb); \
    const size_t pf_dist_ = GEMV_PF_DIST(rb)

#if !GEMV_S4   /* Q8_0 repacked: block_q8_0x4, gb_q8_0x4 in cpu_gemv_impl.h */
#if CPU_LEVEL == 1
/* Q8_0: |qw| (u8) x sign(qx, qw) (s8), as qdot_q8_0. Lanes of the float accumulator = rows. */
GKFI void FN(gb_q8_0)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const cpu_q8a *xb = x;
    GEMV_ROWS(block_q8_0);
    __m128 acc = _mm_setzero_ps();
    for (int64_t ib = 0; ib < n / 32; ib++) {
        const __m256i xq = FN(load32)(xb[ib].qs);
        __m256i p[GEMV_NR];
        GEMV_UNROLL
        for (int r = 0; r < GEMV_NR; r++) {
            if (r >= NR) { p[r] = _mm256_setzero_si256(); continue; }
            GEMV_PREFETCH(wr[r] + ib);
            const __m256i q = FN(load32)(wr[r][ib].qs);
            p[r] = FN(dpbusd)(_mm256_setzero_si256(), _mm256_sign_epi8(q, q), _mm256_sign_epi8(xq, q));
        }
        acc = FN(block_step)(acc, FN(h2f4)(wr[0][ib].d, wr[1][ib].d, wr[2][ib].d, wr[3][ib].d), _mm_set1_ps(xb[ib].d),
                             FN(hsum4_epi32)(p[0], p[1], p[2], p[3]));
    }
    FN(store4)(out, acc, NR);
}

#else
/* Q8_0 on AVX-512 (which has no 512-bit sign): two rows per register [a | b], the weights made
 * unsigned (q ^ 0x80 = q + 128) and the offset taken out of the integer sum as for Q4_0:
 * p = dpbusd(-128 * sum(qx), q + 128, qx) = sum(q * qx) per lane, exact (|p| <= 4*255*127 + 4*128*127).
 * Missing rows repeat the last one; lanes of the float accumulator = rows (hsum4_pairs). */
GKFI void FN(gb_q8_0)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const cpu_q8a *xb = x;
    GEMV_ROWS(block_q8_0);
    const int NP = (NR + 1) / 2;
    __m128 acc = _mm_setzero_ps();
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    for (int64_t ib = 0; ib < n / 32; ib++) {
        const __m512i xq = _mm512_broadcast_i64x4(FN(load32)(xb[ib].qs));
        const __m512i off = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, xq));
        __m512i pz[GEMV_NR / 2];
        GEMV_UNROLL
        for (int p = 0; p < GEMV_NR / 2; p++) {
            if (p >= NP) { pz[p] = _mm512_setzero_si512(); continue; }
            const block_q8_0 *a = wr[2 * p] + ib, *b = wr[2 * p + 1] + ib;
            GEMV_PREFETCH(a);
            if (2 * p + 1 < NR) GEMV_PREFETCH(b);
            const __m512i q = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(FN(load32)(a->qs)), FN(load32)(b->qs), 1), bias);
            pz[p] = _mm512_dpbusd_epi32(off, q, xq);
        }
        acc = FN(block_step)(acc, FN(h2f4)(wr[0][ib].d, wr[1][ib].d, wr[2][ib].d, wr[3][ib].d), _mm_set1_ps(xb[ib].d),
                             FN(hsum4_pairs)(pz[0], pz[1]));
    }
    FN(store4)(out, acc, NR);
}
#endif
#endif

/* Q4_0 / Q5_0: unsigned q (<= 31: maddubs pairs stay below 32767 on AVX2) with the offset in the
 * integer sum: p = dpbusd(-OFF * sum(qx), q, qx) = sum((q - OFF) * qx) per lane, exact. */
#define GEMV_OFFSET_BODY(TYPE, OFF, QEXPR)                                                               \
    GKFI void GB(TYPE)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) { \
        const cpu_q8a *xb = x;                                                                          \
        GEMV_ROWS(BT(TYPE));                                                                        \
        __m128 acc = _mm_setzero_ps();                                                                  \
        for (int64_t ib = 0; ib < n / 32; ib++) {                                                       \
            const __m256i xq = FN(load32)(xb[ib].qs);                                                   \
            const __m256i off = _mm256_sub_epi32(_mm256_setzero_si256(),                                \
                                                 FN(dpbusd)(_mm256_setzero_si256(), _mm256_set1_epi8(OFF), xq)); \
            __m256i p[GEMV_NR];                                                                         \
            GEMV_UNROLL                                                                                 \
            for (int r = 0; r < GEMV_NR; r++) {                                                         \
                if (r >= NR) { p[r] = _mm256_setzero_si256(); continue; }                               \
                const BT(TYPE) *b = wr[r] + ib;                                                     \
                GEMV_PREFETCH(b);                                                                       \
                p[r] = FN(dpbusd)(off, QEXPR, xq);                                                      \
            }                                                                                           \
            acc = FN(block_step)(acc, FN(h2f4)(wr[0][ib].d, wr[1][ib].d, wr[2][ib].d, wr[3][ib].d),     \
                                 _mm_set1_ps(xb[ib].d), FN(hsum4_epi32)(p[0], p[1], p[2], p[3]));       \
        }                                                                                               \
        FN(store4)(out, acc, NR);                                                                       \
    }
#if CPU_LEVEL == 1
GEMV_OFFSET_BODY(q4_0, 8, FN(nibbles16)(b->qs))
GEMV_OFFSET_BODY(q5_0, 16, _mm256_or_si256(FN(nibbles16)(b->qs), FN(bits16)(b->qh)))
#else
/* AVX-512: the four rows in one 512-bit register, one 128-bit lane each: lo = the low nibbles
 * (elements 0..15) of rows a|b|c|d, hi = the high nibbles (16..31), against the activation's
 * first and second 16 bytes broadcast to every lane. One load + 3 inserts, 3 ALU ops and 2 dpbusd
 * per block serve four rows; two blocks' sums are reduced together (6 ops and a permute for 8
 * sums), the offset term subtracted from the exact sums, then one block step per block (Q5_0 is
 * most of a "Q4_K_M" 0.5B model). Missing rows (NR < 4) repeat the last one and are not stored. */
/* The activation blocks' integer sums times OFF, computed once per call (per tile, not per 4 rows)
 * for up to GEMV_SX_MAX blocks (32768 columns; 4 KiB of stack), past that per block as needed. */
#ifndef GEMV_SX_MAX
#define GEMV_SX_MAX 1024
#endif
#if !GEMV_S4
GKFI int32_t FN(q8a_sum)(const cpu_q8a *b) {
    /* q + 128 as u8, summed in 8-byte groups (sad), minus 32 * 128 */
    const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(FN(load32)(b->qs), _mm256_set1_epi8((char)0x80)), _mm256_setzero_si256());
    __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    t = _mm_add_epi64(t, _mm_unpackhi_epi64(t, t));
    return _mm_cvtsi128_si32(t) - 32 * 128;
}
#endif
#define GEMV_OFFSET_BODY512(TYPE, OFF, HIBITS)                                                           \
    /* Block ib of the 4 rows: each 128-bit lane (one row) holds 4 int32 partials of sum(q * qx). */  \
    GKFI __m512i GP(TYPE)(const BT(TYPE) *const *wr, const cpu_q8a *xb, int64_t ib) {         \
        const __m512i lo4 = _mm512_set1_epi8(0x0F);                                                     \
        const __m512i xlo = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)xb[ib].qs));       \
        const __m512i xhi = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(xb[ib].qs + 16))); \
        const BT(TYPE) *a = wr[0] + ib, *b = wr[1] + ib, *c = wr[2] + ib, *d = wr[3] + ib;         \
        __m512i raw = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)a->qs));                 \
        raw = _mm512_inserti32x4(raw, _mm_loadu_si128((const __m128i *)b->qs), 1);                      \
        raw = _mm512_inserti32x4(raw, _mm_loadu_si128((const __m128i *)c->qs), 2);                      \
        raw = _mm512_inserti32x4(raw, _mm_loadu_si128((const __m128i *)d->qs), 3);                      \
        __m512i lo = _mm512_and_si512(raw, lo4), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), lo4); \
        HIBITS                                                                                          \
        return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo), hi, xhi);      \
    }                                                                                                   \
    /* sxo: OFF * sum(qx) per block, or NULL (computed here) */                                        \
    GKFI void GB(TYPE)(int64_t n, const void *w, size_t rb, const int NR, const void *x, const int32_t *sxo, float *out) { \
        const cpu_q8a *xb = x;                                                                          \
        GEMV_ROWS(BT(TYPE));                                                                        \
        __m128 acc = _mm_setzero_ps();                                                                  \
        const __m512i first = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);       \
        const __m512i pair = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);       \
        const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);                               \
        const int64_t nb = n / 32;                                                                      \
        int64_t ib = 0;                                                                                 \
        /* Two blocks per step: their 8 sums (4 rows x 2 blocks) reduced together, the offset terms \
         * subtracted (exact integers), then the two block steps in the reference's order. */         \
        for (; ib + 2 <= nb; ib += 2) {                                                                 \
            GEMV_UNROLL                                                                                 \
            for (int r = 0; r < GEMV_NR; r++)                                                           \
                if (r < NR) GEMV_PREFETCH(wr[r] + ib);   /* 2 blocks (44 B) < a line: every line hit */ \
            const __m512i p0 = GP(TYPE)(wr, xb, ib), p1 = GP(TYPE)(wr, xb, ib + 1);           \
            /* per lane [p0 0+2, p1 0+2, p0 1+3, p1 1+3], then [s0 s1 s0 s1] */                     \
            __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi32(p0, p1), _mm512_unpackhi_epi32(p0, p1)); \
            t = _mm512_add_epi32(t, _mm512_shuffle_epi32(t, (_MM_PERM_ENUM)0x4E));                      \
            const __m128i o2 = sxo ? _mm_loadl_epi64((const __m128i *)(sxo + ib))                       \
                                   : _mm_setr_epi32(OFF * FN(q8a_sum)(xb + ib), OFF * FN(q8a_sum)(xb + ib + 1), 0, 0); \
            const __m256i s = _mm256_sub_epi32(_mm512_castsi512_si256(_mm512_permutexvar_epi32(pair, t)), \
                                               _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(o2), spread)); \
            const BT(TYPE) *a = wr[0] + ib, *b = wr[1] + ib, *c = wr[2] + ib, *d = wr[3] + ib;     \
            const __m256 dw = _mm256_cvtph_ps(_mm_setr_epi16((short)a[0].d, (short)b[0].d, (short)c[0].d, (short)d[0].d, \
                                                             (short)a[1].d, (short)b[1].d, (short)c[1].d, (short)d[1].d)); \
            const __m256 dx = _mm256_set_m128(_mm_set1_ps(xb[ib + 1].d), _mm_set1_ps(xb[ib].d));        \
            const __m256 u = _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(s));               \
            acc = _mm_add_ps(acc, _mm256_castps256_ps128(u));                                           \
            acc = _mm_add_ps(acc, _mm256_extractf128_ps(u, 1));                                         \
        }                                                                                               \
        for (; ib < nb; ib++) {                                                                         \
            GEMV_UNROLL                                                                                 \
            for (int r = 0; r < GEMV_NR; r++)                                                           \
                if (r < NR) GEMV_PREFETCH(wr[r] + ib);                                                  \
            __m512i p = GP(TYPE)(wr, xb, ib);                                                      \
            p = _mm512_add_epi32(p, _mm512_shuffle_epi32(p, (_MM_PERM_ENUM)0x4E));                      \
            p = _mm512_add_epi32(p, _mm512_shuffle_epi32(p, (_MM_PERM_ENUM)0xB1));                      \
            const __m128i s = _mm_sub_epi32(_mm512_castsi512_si128(_mm512_permutexvar_epi32(first, p)),  \
                                            _mm_set1_epi32(sxo ? sxo[ib] : OFF * FN(q8a_sum)(xb + ib)));  \
            acc = FN(block_step)(acc, FN(h2f4)(wr[0][ib].d, wr[1][ib].d, wr[2][ib].d, wr[3][ib].d), _mm_set1_ps(xb[ib].d), s); \
        }                                                                                               \
        FN(store4)(out, acc, NR);                                                                       \
    }                                                                                                   \
    KFN void GV(TYPE)(int64_t n, const void *w, size_t row_bytes, int64_t nr, const void *x, float *out) { \
        const cpu_q8a *xb = x;                                                                          \
        int32_t sx[GEMV_SX_MAX];                                                                        \
        const int32_t *sxo = NULL;                                                                      \
        if (n / 32 <= GEMV_SX_MAX) {                                                                    \
            for (int64_t ib = 0; ib < n / 32; ib++) sx[ib] = OFF * FN(q8a_sum)(xb + ib);                 \
            sxo = sx;                                                                                   \
        }                                                                                               \
        const char *wc = w;                                                                             \
        int64_t r = 0;                                                                                  \
        for (; r + GEMV_NR <= nr; r += GEMV_NR)                                                         \
            GB(TYPE)(n, wc + (size_t)r * row_bytes, GEMV_S4 ? sizeof(block_##TYPE) : row_bytes, GEMV_NR, x, sxo, out + r); \
        if (GEMV_S4) return;   /* repacked: whole groups only */                                        \
        switch (nr - r) {                                                                               \
        case 1: GB(TYPE)(n, wc + (size_t)r * row_bytes, row_bytes, 1, x, sxo, out + r); break;     \
        case 2: GB(TYPE)(n, wc + (size_t)r * row_bytes, row_bytes, 2, x, sxo, out + r); break;     \
        case 3: GB(TYPE)(n, wc + (size_t)r * row_bytes, row_bytes, 3, x, sxo, out + r); break;     \
        default: break;                                                                                 \
        }                                                                                               \
    }
/* Q5_0's fifth bits: element j < 16 of row L is byte 16L + j of lo (bit j of its qh), element
 * 16 + j byte 16L + j of hi (bit 16 + j): masks of the qh halves, then +16. */
#define GEMV_Q5_HIBITS                                                                                  \
    uint32_t ha, hb, hc, hd;                                                                            \
    memcpy(&ha, a->qh, 4);                                                                              \
    memcpy(&hb, b->qh, 4);                                                                              \
    memcpy(&hc, c->qh, 4);                                                                              \
    memcpy(&hd, d->qh, 4);                                                                              \
    const uint64_t mlo = (ha & 0xFFFFu) | (uint64_t)(hb & 0xFFFFu) << 16 | (uint64_t)(hc & 0xFFFFu) << 32 | (uint64_t)hd << 48; \
    const uint64_t mhi = (ha >> 16) | (uint64_t)(hb >> 16) << 16 | (uint64_t)(hc >> 16) << 32 | (uint64_t)(hd >> 16) << 48; \
    lo = _mm512_mask_add_epi8(lo, (__mmask64)mlo, lo, _mm512_set1_epi8(0x10));                          \
    hi = _mm512_mask_add_epi8(hi, (__mmask64)mhi, hi, _mm512_set1_epi8(0x10));
GEMV_OFFSET_BODY512(q4_0, 8, )
GEMV_OFFSET_BODY512(q5_0, 16, GEMV_Q5_HIBITS)
#undef GEMV_Q5_HIBITS
#undef GEMV_OFFSET_BODY512
#endif
#undef GEMV_OFFSET_BODY

/* Q4_1 / Q5_1: w = dw*q + mw; per block and row (dw*dx)*sum(q*qx) + mw*ds, as the reference. */
#define GEMV_MIN_BODY(TYPE, QEXPR)                                                                       \
    GKFI void GB(TYPE)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) { \
        const cpu_q8a *xb = x;                                                                          \
        GEMV_ROWS(BT(TYPE));                                                                        \
        __m128 acc = _mm_setzero_ps();                                                                  \
        for (int64_t ib = 0; ib < n / 32; ib++) {                                                       \
            const __m256i xq = FN(load32)(xb[ib].qs);                                                   \
            __m256i p[GEMV_NR];                                                                         \
            GEMV_UNROLL                                                                                 \
            for (int r = 0; r < GEMV_NR; r++) {                                                         \
                if (r >= NR) { p[r] = _mm256_setzero_si256(); continue; }                               \
                const BT(TYPE) *b = wr[r] + ib;                                                     \
                GEMV_PREFETCH(b);                                                                       \
                p[r] = FN(dpbusd)(_mm256_setzero_si256(), QEXPR, xq);                                   \
            }                                                                                           \
            const __m128 dw = FN(h2f4)(wr[0][ib].d, wr[1][ib].d, wr[2][ib].d, wr[3][ib].d);             \
            const __m128 mw = FN(h2f4)(wr[0][ib].m, wr[1][ib].m, wr[2][ib].m, wr[3][ib].m);             \
            const __m128 u = _mm_mul_ps(_mm_mul_ps(dw, _mm_set1_ps(xb[ib].d)),                         \
                                        _mm_cvtepi32_ps(FN(hsum4_epi32)(p[0], p[1], p[2], p[3])));       \
            acc = _mm_add_ps(acc, _mm_add_ps(u, _mm_mul_ps(mw, _mm_set1_ps(xb[ib].ds))));               \
        }                                                                                               \
        FN(store4)(out, acc, NR);                                                                       \
    }
GEMV_MIN_BODY(q4_1, FN(nibbles16)(b->qs))
GEMV_MIN_BODY(q5_1, _mm256_or_si256(FN(nibbles16)(b->qs), FN(bits16)(b->qh)))
#undef GEMV_MIN_BODY

#if CPU_LEVEL == 1
/* Q4_K: as qb_q4_k (bounds there), the activation super-block's 8 loads shared by the rows. */
GKFI void GB(q4_k)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const block_q8_k *xb = x;
    GEMV_ROWS(BT(q4_k));
    __m128 acc = _mm_setzero_ps();
    const __m256i lo4 = _mm256_set1_epi8(0x0F);
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)xb[ib].bsums);
        __m256i is[GEMV_NR], im[GEMV_NR];
        GEMV_UNROLL
        for (int r = 0; r < GEMV_NR; r++) {
            if (r >= NR) { is[r] = im[r] = _mm256_setzero_si256(); continue; }
            const BT(q4_k) *b = wr[r] + ib;
            GEMV_PREFETCH_BLOCK(b);
            uint8_t sm[16];
            FN(k_unpack_scales)(b->scales, sm);
            const __m128i m8 = _mm_loadl_epi64((const __m128i *)(sm + 8));
            im[r] = _mm256_madd_epi16(bsums, _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8)));
            __m256i isum = _mm256_setzero_si256(), isum2 = _mm256_setzero_si256();
            for (int j = 0; j < 4; j++) {
                const __m256i raw = FN(load32)(b->qs + 32 * j);
                const int8_t *xq = xb[ib].qs + 64 * j;
                const __m256i q0 = _mm256_and_si256(raw, lo4), q1 = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
                isum = FN(dpwssd)(isum, _mm256_maddubs_epi16(q0, FN(load32)(xq)), _mm256_set1_epi16(sm[2 * j]));
                isum2 = FN(dpwssd)(isum2, _mm256_maddubs_epi16(q1, FN(load32)(xq + 32)), _mm256_set1_epi16(sm[2 * j + 1]));
            }
            is[r] = _mm256_add_epi32(isum, isum2);
        }
        acc = FN(k_block_step)(acc, FN(h2f4)(wr[0][ib].d, wr[1][ib].d, wr[2][ib].d, wr[3][ib].d),
                               FN(h2f4)(wr[0][ib].dmin, wr[1][ib].dmin, wr[2][ib].dmin, wr[3][ib].dmin), _mm_set1_ps(xb[ib].d),
                               FN(hsum4_epi32)(is[0], is[1], is[2], is[3]), FN(hsum4_epi32)(im[0], im[1], im[2], im[3]));
    }
    FN(store4)(out, acc, NR);
}

#else
/* Q4_K on AVX-512: two rows per register [a | b] (32 bytes of quants each), as qb_q4_k otherwise
 * (bounds there). The 8 sub-block scales of both rows sit in one register as 16-bit words (a's
 * in 128-bit lanes 0-1, b's in 2-3), and one in-lane byte shuffle per sub-block broadcasts each
 * row's scale to its half: ~90 instructions per pair and super-block instead of ~140. Missing
 * rows repeat the last one; the block sums of the 4 rows are reduced together (hsum4_pairs). */
GKFI void GB(q4_k)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const block_q8_k *xb = x;
    GEMV_ROWS(BT(q4_k));
    const int NP = (NR + 1) / 2;
    __m128 acc = _mm_setzero_ps();
    const __m512i lo4 = _mm512_set1_epi8(0x0F);
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const __m512i bsums = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)xb[ib].bsums));
        __m512i is[GEMV_NR / 2], im[GEMV_NR / 2];
        GEMV_UNROLL
        for (int p = 0; p < GEMV_NR / 2; p++) {
            if (p >= NP) { is[p] = im[p] = _mm512_setzero_si512(); continue; }
            const BT(q4_k) *a = wr[2 * p] + ib, *b = wr[2 * p + 1] + ib;
            GEMV_PREFETCH_BLOCK(a);
            if (2 * p + 1 < NR) GEMV_PREFETCH_BLOCK(b);
            const __m256i sm = FN(k_unpack_scales2)(a->scales, b->scales);
            /* words: 128-bit lanes a's scales, a's mins, b's scales, b's mins -> a a b b scales */
            const __m512i sw = _mm512_cvtepu8_epi16(sm);
            const __m512i sct = _mm512_shuffle_i64x2(sw, sw, _MM_SHUFFLE(2, 2, 0, 0));
            const __m512i m16 = _mm512_cvtepu8_epi16(_mm256_unpackhi_epi8(sm, sm));   /* m_j twice per pair */
            const __m512i imin = _mm512_madd_epi16(bsums, m16);
            __m512i isum = _mm512_setzero_si512(), isum2 = _mm512_setzero_si512();
            GEMV_UNROLL
            for (int j = 0; j < 4; j++) {
                const __m512i raw = _mm512_inserti64x4(_mm512_castsi256_si512(FN(load32)(a->qs + 32 * j)), FN(load32)(b->qs + 32 * j), 1);
                const __m512i q0 = _mm512_and_si512(raw, lo4), q1 = _mm512_and_si512(_mm512_srli_epi16(raw, 4), lo4);
                const int8_t *xq = xb[ib].qs + 64 * j;
                const __m512i x0 = _mm512_broadcast_i64x4(FN(load32)(xq)), x1 = _mm512_broadcast_i64x4(FN(load32)(xq + 32));
                /* word k of each lane to all 8 words: bytes 2k, 2k+1 */
                const __m512i s0 = _mm512_shuffle_epi8(sct, _mm512_set1_epi16((short)((4 * j + 1) << 8 | (4 * j))));
                const __m512i s1 = _mm512_shuffle_epi8(sct, _mm512_set1_epi16((short)((4 * j + 3) << 8 | (4 * j + 2))));
                isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q0, x0), s0);
                isum2 = _mm512_dpwssd_epi32(isum2, _mm512_maddubs_epi16(q1, x1), s1);
            }
            is[p] = _mm512_add_epi32(isum, isum2), im[p] = imin;
        }
        acc = FN(k_block_step)(acc, FN(h2f4)(wr[0][ib].d, wr[1][ib].d, wr[2][ib].d, wr[3][ib].d),
                               FN(h2f4)(wr[0][ib].dmin, wr[1][ib].dmin, wr[2][ib].dmin, wr[3][ib].dmin), _mm_set1_ps(xb[ib].d),
                               FN(hsum4_pairs)(is[0], is[1]), FN(hsum4_pairs)(im[0], im[1]));
    }
    FN(store4)(out, acc, NR);
}
#endif

/* Q5_K (both SIMD levels, 256-bit): as qb_q5_k (bounds there), 4 rows per call sharing the
 * activation loads and one exact block reduction (it had only the per-row kernel before). */
GKFI void GB(q5_k)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const block_q8_k *xb = x;
    GEMV_ROWS(BT(q5_k));
    __m128 acc = _mm_setzero_ps();
    const __m256i lo4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)xb[ib].bsums);
        __m256i is[GEMV_NR], im[GEMV_NR];
        GEMV_UNROLL
        for (int r = 0; r < GEMV_NR; r++) {
            if (r >= NR) { is[r] = im[r] = _mm256_setzero_si256(); continue; }
            const BT(q5_k) *b = wr[r] + ib;
            GEMV_PREFETCH_BLOCK(b);
            uint8_t sm[16];
            FN(k_unpack_scales)(b->scales, sm);
            const __m128i m8 = _mm_loadl_epi64((const __m128i *)(sm + 8));
            im[r] = _mm256_madd_epi16(bsums, _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8)));
            __m256i isum = _mm256_setzero_si256(), isum2 = _mm256_setzero_si256();
            __m256i qh = FN(load32)(b->qh);   /* shifted right by 2 per j: bits 0, 1 are current */
            for (int j = 0; j < 4; j++) {
                const __m256i raw = FN(load32)(b->qs + 32 * j);
                const int8_t *xq = xb[ib].qs + 64 * j;
                const __m256i q0 = _mm256_or_si256(_mm256_and_si256(raw, lo4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), b4));
                const __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4),
                                                   _mm256_and_si256(_mm256_slli_epi16(qh, 3), b4));
                qh = _mm256_srli_epi16(qh, 2);
                isum = FN(dpwssd)(isum, _mm256_maddubs_epi16(q0, FN(load32)(xq)), _mm256_set1_epi16(sm[2 * j]));
                isum2 = FN(dpwssd)(isum2, _mm256_maddubs_epi16(q1, FN(load32)(xq + 32)), _mm256_set1_epi16(sm[2 * j + 1]));
            }
            is[r] = _mm256_add_epi32(isum, isum2);
        }
        acc = FN(k_block_step)(acc, FN(h2f4)(wr[0][ib].d, wr[1][ib].d, wr[2][ib].d, wr[3][ib].d),
                               FN(h2f4)(wr[0][ib].dmin, wr[1][ib].dmin, wr[2][ib].dmin, wr[3][ib].dmin), _mm_set1_ps(xb[ib].d),
                               FN(hsum4_epi32)(is[0], is[1], is[2], is[3]), FN(hsum4_epi32)(im[0], im[1], im[2], im[3]));
    }
    FN(store4)(out, acc, NR);
}


#if CPU_LEVEL == 1
/* Q6_K: as qb_q6_k (bounds there). */
GKFI void GB(q6_k)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const block_q8_k *xb = x;
    GEMV_ROWS(BT(q6_k));
    __m128 acc = _mm_setzero_ps();
    const __m256i lo4 = _mm256_set1_epi8(0x0F), hi2 = _mm256_set1_epi8(0x30);
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)xb[ib].bsums);
        __m256i is[GEMV_NR];
        GEMV_UNROLL
        for (int r = 0; r < GEMV_NR; r++) {
            if (r >= NR) { is[r] = _mm256_setzero_si256(); continue; }
            const BT(q6_k) *b = wr[r] + ib;
            GEMV_PREFETCH_BLOCK(b);
            const __m256i off = _mm256_madd_epi16(bsums, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales)));
            __m256i isum = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5)), isum2 = _mm256_setzero_si256();
            for (int h = 0; h < 2; h++) {
                const __m256i ql0 = FN(load32)(b->ql + 64 * h), ql1 = FN(load32)(b->ql + 64 * h + 32);
                const __m256i qh = FN(load32)(b->qh + 32 * h);
                const int8_t *xq = xb[ib].qs + 128 * h;
                const int8_t *sc = b->scales + 8 * h;
                const __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, lo4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), hi2));
                const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql1, lo4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), hi2));
                const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), lo4), _mm256_and_si256(qh, hi2));
                const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), lo4),
                                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), hi2));
#define G6_SCALE(k) _mm256_set_m128i(_mm_set1_epi16(sc[(k) + 1]), _mm_set1_epi16(sc[k]))
                isum = FN(dpwssd)(isum, _mm256_maddubs_epi16(q0, FN(load32)(xq)), G6_SCALE(0));
                isum2 = FN(dpwssd)(isum2, _mm256_maddubs_epi16(q1, FN(load32)(xq + 32)), G6_SCALE(2));
                isum = FN(dpwssd)(isum, _mm256_maddubs_epi16(q2, FN(load32)(xq + 64)), G6_SCALE(4));
                isum2 = FN(dpwssd)(isum2, _mm256_maddubs_epi16(q3, FN(load32)(xq + 96)), G6_SCALE(6));
#undef G6_SCALE
            }
            is[r] = _mm256_add_epi32(isum, isum2);
        }
        acc = FN(block_step)(acc, FN(h2f4)(wr[0][ib].d, wr[1][ib].d, wr[2][ib].d, wr[3][ib].d), _mm_set1_ps(xb[ib].d),
                             FN(hsum4_epi32)(is[0], is[1], is[2], is[3]));
    }
    FN(store4)(out, acc, NR);
}

#else
/* Q6_K on AVX-512: two rows per register [a | b], as qb_q6_k otherwise (bounds there). Scales:
 * for half h, row a's 8 scales as 16-bit words in 128-bit lanes 0-1, b's in 2-3; a shuffle per
 * group g picks scale 8h+2g in the even lanes (elements 0..15) and 8h+2g+1 in the odd ones. */
GKFI void GB(q6_k)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const block_q8_k *xb = x;
    GEMV_ROWS(BT(q6_k));
    const int NP = (NR + 1) / 2;
    __m128 acc = _mm_setzero_ps();
    const __m512i lo4 = _mm512_set1_epi8(0x0F), hi2 = _mm512_set1_epi8(0x30);
#define Q6_PAIR(pa, pb) _mm512_inserti64x4(_mm512_castsi256_si512(FN(load32)(pa)), FN(load32)(pb), 1)
#define Q6_SCALES(pa, pb)                                                                                \
    _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(pa))))), \
                       _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(pb)))), 1)
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const __m512i bsums = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)xb[ib].bsums));
        __m512i is[GEMV_NR / 2];
        GEMV_UNROLL
        for (int p = 0; p < GEMV_NR / 2; p++) {
            if (p >= NP) { is[p] = _mm512_setzero_si512(); continue; }
            const BT(q6_k) *a = wr[2 * p] + ib, *b = wr[2 * p + 1] + ib;
            GEMV_PREFETCH_BLOCK(a);
            if (2 * p + 1 < NR) GEMV_PREFETCH_BLOCK(b);
            const __m512i sc16 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a->scales))),
                                                    _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales)), 1);
            __m512i isum = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(_mm512_madd_epi16(bsums, sc16), 5));
            __m512i isum2 = _mm512_setzero_si512();
            GEMV_UNROLL
            for (int h = 0; h < 2; h++) {
                const __m512i ql0 = Q6_PAIR(a->ql + 64 * h, b->ql + 64 * h), ql1 = Q6_PAIR(a->ql + 64 * h + 32, b->ql + 64 * h + 32);
                const __m512i qh = Q6_PAIR(a->qh + 32 * h, b->qh + 32 * h);
                const __m512i sct = Q6_SCALES(a->scales + 8 * h, b->scales + 8 * h);
                const int8_t *xq = xb[ib].qs + 128 * h;
                __m512i q[4];
                q[0] = _mm512_or_si512(_mm512_and_si512(ql0, lo4), _mm512_and_si512(_mm512_slli_epi16(qh, 4), hi2));
                q[1] = _mm512_or_si512(_mm512_and_si512(ql1, lo4), _mm512_and_si512(_mm512_slli_epi16(qh, 2), hi2));
                q[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql0, 4), lo4), _mm512_and_si512(qh, hi2));
                q[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql1, 4), lo4), _mm512_and_si512(_mm512_srli_epi16(qh, 2), hi2));
                GEMV_UNROLL
                for (int g = 0; g < 4; g++) {
                    /* even lanes: word 2g (bytes 4g, 4g+1); odd lanes: word 2g+1 */
                    const __m512i ctl = _mm512_broadcast_i64x4(_mm256_set_m128i(_mm_set1_epi16((short)((4 * g + 3) << 8 | (4 * g + 2))),
                                                                                _mm_set1_epi16((short)((4 * g + 1) << 8 | (4 * g)))));
                    const __m512i sg = _mm512_shuffle_epi8(sct, ctl);
                    const __m512i xg = _mm512_broadcast_i64x4(FN(load32)(xq + 32 * g));
                    if (g & 1) isum2 = _mm512_dpwssd_epi32(isum2, _mm512_maddubs_epi16(q[g], xg), sg);
                    else isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q[g], xg), sg);
                }
            }
            is[p] = _mm512_add_epi32(isum, isum2);
        }
        acc = FN(block_step)(acc, FN(h2f4)(wr[0][ib].d, wr[1][ib].d, wr[2][ib].d, wr[3][ib].d), _mm_set1_ps(xb[ib].d),
                             FN(hsum4_pairs)(is[0], is[1]));
    }
#undef Q6_PAIR
#undef Q6_SCALES
    FN(store4)(out, acc, NR);
}
#endif


#undef GB
#undef GP
#undef GV
#undef BT
#undef GEMV_PF_DIST
#undef GEMV_ROWS
