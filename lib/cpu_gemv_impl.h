/* cpu_gemv_impl.h - decode (one activation row) matrix-vector kernels, cpu.h: cpu_gemv_fn.
 * Included by cpu_kernels_impl.h at each CPU_LEVEL after cpu_qdot_impl.h (uses its helpers).
 *
 * out[r] = (weight row r) . x for r < nr, rows row_bytes apart. Decode reads every weight byte
 * once per token, so the kernel must keep up with memory (one core of this machine streams ~20-33
 * GB/s with the hardware prefetchers alone, ~30-38 with software prefetch): the per-row kernels of
 * cpu_qdot_impl.h spend their time on per-call setup, a horizontal sum per row and, for
 * Q5_0/Q4_0, a scalar FMA chain per block (the offset term). Here GEMV_NR = 4 rows go through one
 * loop: each activation block is loaded once for all of them, the weights are prefetched ~12 KiB
 * ahead, and
 *   - Q4_0/Q5_0 (and Q8_0 on AVX-512) fold the weight offset into the integer sum:
 *     sum((q - OFF) * qx) = dpbusd(q, qx) - OFF * sum(qx), the second term shared by the rows,
 *     so a block's integer sum equals the scalar reference's exactly;
 *   - AVX-512 packs several rows into one 512-bit register (Q4_0/Q5_0: four rows, one 128-bit
 *     lane each; Q8_0/Q4_K/Q6_K: two rows, one 256-bit half each), so each instruction serves
 *     2-4 rows. Before the batch-invariant scale step, `bench_qdot 5 1536` (32768 x 1536, 50-80 MB: from memory), one thread, load 4.6:
 *     Q8_0 38 GB/s (per-row kernel 22), Q5_0 32 (13), Q4_0 28 (10), Q4_K 29 (17), Q6_K 30 (14);
 *     F16 30 (33: pure streaming, where 4 interleaved rows gain nothing).
 *
 * Batch invariance (cpu_qdot_impl.h): per block, the 4 rows' integer sums are reduced exactly
 * into lanes 0..3 (hsum4_epi32; hsum4_pairs on AVX-512) and scaled with the scalar reference's
 * float operations in its order (block_step: mul, mul, add; no FMA), so every row's result is the
 * scalar reference's bits, as the GEMM's and the qdot kernels' are. Cost: ~8 single-uop integer
 * ops per block for 4 rows, in exchange for the per-row float converts, FMAs and final sums.
 * A row's arithmetic does not depend on how many rows share its call or where it sits in it (the
 * tails run the same body with NR = 1..3, a missing row repeats the last one), so results do not
 * depend on how rows are split among threads. F16 keeps float accumulators (not batch-invariant).
 * BF16 and F32 use the per-row kernels (rare in decode-sized models).
 * The scalar reference (level 0) is the per-row scalar kernel. */

#define GEMV_NR 4
/* The row loops must be unrolled: otherwise GCC keeps the accumulator array on the stack and every
 * FMA waits on a store-to-load forward. */
#define GEMV_UNROLL _Pragma("GCC unroll 4")

#if CPU_LEVEL == 0
#define GKFI static inline
#elif CPU_LEVEL == 1
#define GKFI static inline __attribute__((always_inline, target("avx2,fma,f16c")))
#else
#define GKFI static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#endif

/* The per-row fallback: used by level 0 for every type and by the SIMD levels for the rest. */
#define GEMV_ROWWISE(TYPE)                                                                              \
    KFN void FN(gemv_##TYPE)(int64_t n, const void *w, size_t row_bytes, int64_t nr, const void *x, float *out) { \
        for (int64_t r = 0; r < nr; r++) FN(qdot_##TYPE)(n, (const char *)w + (size_t)r * row_bytes, x, 0, 1, out + r); \
    }

#if CPU_LEVEL >= 1

/* Software prefetch GEMV_PF_BYTES ahead of every row stream (as the streams sweep their group,
 * the prefetches sweep the same bytes GEMV_PF_BYTES later, so every line is covered). Interleaved
 * 4-row streams alone defeat the hardware prefetchers: bench_qdot 32768 x 1280 Q8_0 (44 MB, from
 * memory), one thread: 8 GB/s without, 28-32 with ~10 KiB ahead (per-row qdot: 20-21). Distances
 * of 8, 10, 12, 16 KiB on 896-column Q8_0/Q5_0 and 4864-column Q4_K/Q6_K/F16 (noisy, shared
 * machine): 12 KiB was never far from the best. A prefetch is a hint: addresses past the end of
 * the matrix are harmless. */
#define GEMV_PF_BYTES 12288
#define GEMV_PREFETCH(p) _mm_prefetch((const char *)(p) + pf_dist_, _MM_HINT_T0)
/* The prefetch distance of a group call: a whole number of groups (GEMV_NR * rb bytes apart), at
 * least GEMV_PF_BYTES. Each row stream then prefetches the same offset of its row in a later
 * group, so every line is covered from the start of its row. A plain GEMV_PF_BYTES fails once a group is
 * longer than the distance (a 4864-column Q8_0 row is 5168 B): row r's prefetches land in rows r+2
 * and r+3 of the same group, already being read, and rows 2-3 of the next group start with a lead
 * of a fraction of a row. */
GKFI size_t FN(gemv_pf_dist)(size_t rb) {
    const size_t group = GEMV_NR * rb;
    return group >= GEMV_PF_BYTES ? group : group * ((GEMV_PF_BYTES + group - 1) / group);
}
/* Every line of a block larger than a cache line (the K-quants). */
#define GEMV_PREFETCH_BLOCK(p)                                                                           \
    for (size_t o_ = 0; o_ < sizeof *(p); o_ += 64) GEMV_PREFETCH((const char *)(p) + o_)

/* f16 scale d broadcast to 8 floats (vpbroadcastw + vcvtph2ps: no scalar-to-vector move). */
GKFI __m256 FN(h2f8)(f16_t d) { return _mm256_cvtph_ps(_mm_set1_epi16((short)d)); }
/* Four f16 scales (one per row) as floats in lanes 0..3. */
GKFI __m128 FN(h2f4)(f16_t a, f16_t b, f16_t c, f16_t d) {
    return _mm_cvtph_ps(_mm_setr_epi16((short)a, (short)b, (short)c, (short)d, 0, 0, 0, 0));
}
#if CPU_LEVEL == 2
/* p0 = [a | b], p1 = [c | d] (8 int32 lanes per row) -> the 4 row sums in lanes 0..3 (exact).
 * Eight single-uop ops for four rows: pairwise adds of interleaved lanes, then of 64-bit halves,
 * then of the 128-bit lane pairs, and one permute to gather a, b, c, d. */
GKFI __m128i FN(hsum4_pairs)(__m512i p0, __m512i p1) {
    __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi32(p0, p1), _mm512_unpackhi_epi32(p0, p1));   /* [a c a c] per lane */
    t = _mm512_add_epi32(t, _mm512_shuffle_epi32(t, (_MM_PERM_ENUM)0x4E));
    t = _mm512_add_epi32(t, _mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(2, 3, 0, 1)));               /* lanes 0: a c; 2: b d */
    return _mm512_castsi512_si128(_mm512_permutexvar_epi32(_mm512_setr_epi32(0, 8, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), t));
}
#endif
/* acc + (d*dx)*isum - (dmin*dx)*imin per lane (row): the Q4_K/Q5_K reference's block step. */
GKFI __m128 FN(k_block_step)(__m128 acc, __m128 d, __m128 dmin, __m128 dx, __m128i isum, __m128i imin) {
    const __m128 u = _mm_mul_ps(_mm_mul_ps(d, dx), _mm_cvtepi32_ps(isum));
    return _mm_add_ps(acc, _mm_sub_ps(u, _mm_mul_ps(_mm_mul_ps(dmin, dx), _mm_cvtepi32_ps(imin))));
}
/* Clamped row pointers: rows past NR repeat the last one (their lanes are computed, never stored). */
#define GEMV_ROWS(T)                                                                                      \
    const T *wr[GEMV_NR];                                                                                \
    GEMV_UNROLL                                                                                          \
    for (int r = 0; r < GEMV_NR; r++) wr[r] = (const T *)((const char *)w + (size_t)(r < NR ? r : NR - 1) * rb); \
    const size_t pf_dist_ = FN(gemv_pf_dist)(rb)

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

/* Q4_0 / Q5_0: unsigned q (<= 31: maddubs pairs stay below 32767 on AVX2) with the offset in the
 * integer sum: p = dpbusd(-OFF * sum(qx), q, qx) = sum((q - OFF) * qx) per lane, exact. */
#define GEMV_OFFSET_BODY(TYPE, OFF, QEXPR)                                                               \
    GKFI void FN(gb_##TYPE)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) { \
        const cpu_q8a *xb = x;                                                                          \
        GEMV_ROWS(block_##TYPE);                                                                        \
        __m128 acc = _mm_setzero_ps();                                                                  \
        for (int64_t ib = 0; ib < n / 32; ib++) {                                                       \
            const __m256i xq = FN(load32)(xb[ib].qs);                                                   \
            const __m256i off = _mm256_sub_epi32(_mm256_setzero_si256(),                                \
                                                 FN(dpbusd)(_mm256_setzero_si256(), _mm256_set1_epi8(OFF), xq)); \
            __m256i p[GEMV_NR];                                                                         \
            GEMV_UNROLL                                                                                 \
            for (int r = 0; r < GEMV_NR; r++) {                                                         \
                if (r >= NR) { p[r] = _mm256_setzero_si256(); continue; }                               \
                const block_##TYPE *b = wr[r] + ib;                                                     \
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
#define GEMV_SX_MAX 1024
GKFI int32_t FN(q8a_sum)(const cpu_q8a *b) {
    /* q + 128 as u8, summed in 8-byte groups (sad), minus 32 * 128 */
    const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(FN(load32)(b->qs), _mm256_set1_epi8((char)0x80)), _mm256_setzero_si256());
    __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    t = _mm_add_epi64(t, _mm_unpackhi_epi64(t, t));
    return _mm_cvtsi128_si32(t) - 32 * 128;
}
#define GEMV_OFFSET_BODY512(TYPE, OFF, HIBITS)                                                           \
    /* Block ib of the 4 rows: each 128-bit lane (one row) holds 4 int32 partials of sum(q * qx). */  \
    GKFI __m512i FN(gp_##TYPE)(const block_##TYPE *const *wr, const cpu_q8a *xb, int64_t ib) {         \
        const __m512i lo4 = _mm512_set1_epi8(0x0F);                                                     \
        const __m512i xlo = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)xb[ib].qs));       \
        const __m512i xhi = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(xb[ib].qs + 16))); \
        const block_##TYPE *a = wr[0] + ib, *b = wr[1] + ib, *c = wr[2] + ib, *d = wr[3] + ib;         \
        __m512i raw = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)a->qs));                 \
        raw = _mm512_inserti32x4(raw, _mm_loadu_si128((const __m128i *)b->qs), 1);                      \
        raw = _mm512_inserti32x4(raw, _mm_loadu_si128((const __m128i *)c->qs), 2);                      \
        raw = _mm512_inserti32x4(raw, _mm_loadu_si128((const __m128i *)d->qs), 3);                      \
        __m512i lo = _mm512_and_si512(raw, lo4), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), lo4); \
        HIBITS                                                                                          \
        return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo), hi, xhi);      \
    }                                                                                                   \
    /* sxo: OFF * sum(qx) per block, or NULL (computed here) */                                        \
    GKFI void FN(gb_##TYPE)(int64_t n, const void *w, size_t rb, const int NR, const void *x, const int32_t *sxo, float *out) { \
        const cpu_q8a *xb = x;                                                                          \
        GEMV_ROWS(block_##TYPE);                                                                        \
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
            const __m512i p0 = FN(gp_##TYPE)(wr, xb, ib), p1 = FN(gp_##TYPE)(wr, xb, ib + 1);           \
            /* per lane [p0 0+2, p1 0+2, p0 1+3, p1 1+3], then [s0 s1 s0 s1] */                     \
            __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi32(p0, p1), _mm512_unpackhi_epi32(p0, p1)); \
            t = _mm512_add_epi32(t, _mm512_shuffle_epi32(t, (_MM_PERM_ENUM)0x4E));                      \
            const __m128i o2 = sxo ? _mm_loadl_epi64((const __m128i *)(sxo + ib))                       \
                                   : _mm_setr_epi32(OFF * FN(q8a_sum)(xb + ib), OFF * FN(q8a_sum)(xb + ib + 1), 0, 0); \
            const __m256i s = _mm256_sub_epi32(_mm512_castsi512_si256(_mm512_permutexvar_epi32(pair, t)), \
                                               _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(o2), spread)); \
            const block_##TYPE *a = wr[0] + ib, *b = wr[1] + ib, *c = wr[2] + ib, *d = wr[3] + ib;     \
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
            __m512i p = FN(gp_##TYPE)(wr, xb, ib);                                                      \
            p = _mm512_add_epi32(p, _mm512_shuffle_epi32(p, (_MM_PERM_ENUM)0x4E));                      \
            p = _mm512_add_epi32(p, _mm512_shuffle_epi32(p, (_MM_PERM_ENUM)0xB1));                      \
            const __m128i s = _mm_sub_epi32(_mm512_castsi512_si128(_mm512_permutexvar_epi32(first, p)),  \
                                            _mm_set1_epi32(sxo ? sxo[ib] : OFF * FN(q8a_sum)(xb + ib)));  \
            acc = FN(block_step)(acc, FN(h2f4)(wr[0][ib].d, wr[1][ib].d, wr[2][ib].d, wr[3][ib].d), _mm_set1_ps(xb[ib].d), s); \
        }                                                                                               \
        FN(store4)(out, acc, NR);                                                                       \
    }                                                                                                   \
    KFN void FN(gemv_##TYPE)(int64_t n, const void *w, size_t row_bytes, int64_t nr, const void *x, float *out) { \
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
            FN(gb_##TYPE)(n, wc + (size_t)r * row_bytes, row_bytes, GEMV_NR, x, sxo, out + r);          \
        switch (nr - r) {                                                                               \
        case 1: FN(gb_##TYPE)(n, wc + (size_t)r * row_bytes, row_bytes, 1, x, sxo, out + r); break;     \
        case 2: FN(gb_##TYPE)(n, wc + (size_t)r * row_bytes, row_bytes, 2, x, sxo, out + r); break;     \
        case 3: FN(gb_##TYPE)(n, wc + (size_t)r * row_bytes, row_bytes, 3, x, sxo, out + r); break;     \
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
#undef GEMV_SX_MAX
#endif
#undef GEMV_OFFSET_BODY

/* Q4_1 / Q5_1: w = dw*q + mw; per block and row (dw*dx)*sum(q*qx) + mw*ds, as the reference. */
#define GEMV_MIN_BODY(TYPE, QEXPR)                                                                       \
    GKFI void FN(gb_##TYPE)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) { \
        const cpu_q8a *xb = x;                                                                          \
        GEMV_ROWS(block_##TYPE);                                                                        \
        __m128 acc = _mm_setzero_ps();                                                                  \
        for (int64_t ib = 0; ib < n / 32; ib++) {                                                       \
            const __m256i xq = FN(load32)(xb[ib].qs);                                                   \
            __m256i p[GEMV_NR];                                                                         \
            GEMV_UNROLL                                                                                 \
            for (int r = 0; r < GEMV_NR; r++) {                                                         \
                if (r >= NR) { p[r] = _mm256_setzero_si256(); continue; }                               \
                const block_##TYPE *b = wr[r] + ib;                                                     \
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
GKFI void FN(gb_q4_k)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const block_q8_k *xb = x;
    GEMV_ROWS(block_q4_k);
    __m128 acc = _mm_setzero_ps();
    const __m256i lo4 = _mm256_set1_epi8(0x0F);
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)xb[ib].bsums);
        __m256i is[GEMV_NR], im[GEMV_NR];
        GEMV_UNROLL
        for (int r = 0; r < GEMV_NR; r++) {
            if (r >= NR) { is[r] = im[r] = _mm256_setzero_si256(); continue; }
            const block_q4_k *b = wr[r] + ib;
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
GKFI void FN(gb_q4_k)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const block_q8_k *xb = x;
    GEMV_ROWS(block_q4_k);
    const int NP = (NR + 1) / 2;
    __m128 acc = _mm_setzero_ps();
    const __m512i lo4 = _mm512_set1_epi8(0x0F);
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const __m512i bsums = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)xb[ib].bsums));
        __m512i is[GEMV_NR / 2], im[GEMV_NR / 2];
        GEMV_UNROLL
        for (int p = 0; p < GEMV_NR / 2; p++) {
            if (p >= NP) { is[p] = im[p] = _mm512_setzero_si512(); continue; }
            const block_q4_k *a = wr[2 * p] + ib, *b = wr[2 * p + 1] + ib;
            GEMV_PREFETCH_BLOCK(a);
            if (2 * p + 1 < NR) GEMV_PREFETCH_BLOCK(b);
            uint8_t sa[16], sb[16];
            FN(k_unpack_scales)(a->scales, sa);
            FN(k_unpack_scales)(b->scales, sb);
            const __m128i sca = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sa));
            const __m128i scb = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sb));
            const __m512i sct = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(sca, sca)), _mm256_set_m128i(scb, scb), 1);
            const __m128i ma = _mm_loadl_epi64((const __m128i *)(sa + 8)), mb = _mm_loadl_epi64((const __m128i *)(sb + 8));
            const __m512i m16 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(ma, ma))),
                                                   _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mb, mb)), 1);
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
GKFI void FN(gb_q5_k)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const block_q8_k *xb = x;
    GEMV_ROWS(block_q5_k);
    __m128 acc = _mm_setzero_ps();
    const __m256i lo4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)xb[ib].bsums);
        __m256i is[GEMV_NR], im[GEMV_NR];
        GEMV_UNROLL
        for (int r = 0; r < GEMV_NR; r++) {
            if (r >= NR) { is[r] = im[r] = _mm256_setzero_si256(); continue; }
            const block_q5_k *b = wr[r] + ib;
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
GKFI void FN(gb_q6_k)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const block_q8_k *xb = x;
    GEMV_ROWS(block_q6_k);
    __m128 acc = _mm_setzero_ps();
    const __m256i lo4 = _mm256_set1_epi8(0x0F), hi2 = _mm256_set1_epi8(0x30);
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)xb[ib].bsums);
        __m256i is[GEMV_NR];
        GEMV_UNROLL
        for (int r = 0; r < GEMV_NR; r++) {
            if (r >= NR) { is[r] = _mm256_setzero_si256(); continue; }
            const block_q6_k *b = wr[r] + ib;
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
GKFI void FN(gb_q6_k)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const block_q8_k *xb = x;
    GEMV_ROWS(block_q6_k);
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
            const block_q6_k *a = wr[2 * p] + ib, *b = wr[2 * p + 1] + ib;
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

/* F16 weights, f32 activations: two accumulators per row (FMA latency), scalar tail. */
GKFI void FN(gb_f16)(int64_t n, const void *w, size_t rb, const int NR, const void *x, float *out) {
    const float *xf = x;
    const uint16_t *wr[GEMV_NR];
    const size_t pf_dist_ = GEMV_PF_BYTES;   /* one row per call: a single sequential stream */
#if CPU_LEVEL == 2
#define GV __m512
#define GW 16
#define GZERO _mm512_setzero_ps()
#define GFMA _mm512_fmadd_ps
#define GLOADX(p) _mm512_loadu_ps(p)
#define GLOADW(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define GHSUM(v) _mm512_reduce_add_ps(v)
#define GADD _mm512_add_ps
#else
#define GV __m256
#define GW 8
#define GZERO _mm256_setzero_ps()
#define GFMA _mm256_fmadd_ps
#define GLOADX(p) _mm256_loadu_ps(p)
#define GLOADW(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define GHSUM(v) FN(hsum8)(v)
#define GADD _mm256_add_ps
#endif
    GV a0[GEMV_NR], a1[GEMV_NR];
    GEMV_UNROLL
    for (int r = 0; r < NR; r++) wr[r] = (const uint16_t *)((const char *)w + (size_t)r * rb), a0[r] = a1[r] = GZERO;
    int64_t i = 0;
    for (; i + 2 * GW <= n; i += 2 * GW) {
        const GV x0 = GLOADX(xf + i), x1 = GLOADX(xf + i + GW);
        GEMV_UNROLL
        for (int r = 0; r < NR; r++) {
            GEMV_PREFETCH(wr[r] + i);   /* 2 * GW halves: one line (AVX-512), half (AVX2) */
            a0[r] = GFMA(GLOADW(wr[r] + i), x0, a0[r]);
            a1[r] = GFMA(GLOADW(wr[r] + i + GW), x1, a1[r]);
        }
    }
    for (; i + GW <= n; i += GW) {
        const GV x0 = GLOADX(xf + i);
        GEMV_UNROLL
        for (int r = 0; r < NR; r++) a0[r] = GFMA(GLOADW(wr[r] + i), x0, a0[r]);
    }
    GEMV_UNROLL
    for (int r = 0; r < NR; r++) {
        float s = GHSUM(GADD(a0[r], a1[r]));
        for (int64_t j = i; j < n; j++) s += FN(h2f)(wr[r][j]) * xf[j];
        out[r] = s;
    }
#undef GV
#undef GW
#undef GZERO
#undef GFMA
#undef GLOADX
#undef GLOADW
#undef GHSUM
#undef GADD
}

/* The exported kernels: groups of GEMV_NR rows, then the 1..3-row tail, NR constant in each. */
#define GEMV_ENTRY(TYPE)                                                                                \
    KFN void FN(gemv_##TYPE)(int64_t n, const void *w, size_t row_bytes, int64_t nr, const void *x, float *out) { \
        int64_t r = 0;                                                                                  \
        for (; r + GEMV_NR <= nr; r += GEMV_NR)                                                         \
            FN(gb_##TYPE)(n, (const char *)w + (size_t)r * row_bytes, row_bytes, GEMV_NR, x, out + r);  \
        switch (nr - r) {                                                                               \
        case 1: FN(gb_##TYPE)(n, (const char *)w + (size_t)r * row_bytes, row_bytes, 1, x, out + r); break; \
        case 2: FN(gb_##TYPE)(n, (const char *)w + (size_t)r * row_bytes, row_bytes, 2, x, out + r); break; \
        case 3: FN(gb_##TYPE)(n, (const char *)w + (size_t)r * row_bytes, row_bytes, 3, x, out + r); break; \
        default: break;                                                                                 \
        }                                                                                               \
    }
GEMV_ENTRY(q8_0)
#if CPU_LEVEL == 1   /* AVX-512: with the offset sums, above */
GEMV_ENTRY(q4_0)
GEMV_ENTRY(q5_0)
#endif
GEMV_ENTRY(q4_1)
GEMV_ENTRY(q5_1)
GEMV_ENTRY(q4_k)
GEMV_ENTRY(q6_k)
GEMV_ENTRY(q5_k)
/* F16 is pure streaming (one FMA per 2 bytes): one row at a time keeps a thread's reads one
 * sequential stream, which the prefetchers follow better than 4 interleaved rows. coder bench
 * decode, 2 threads, interleaved A/B (3 rounds, shared machine): 0.5B F16 49.9/48.8/35.5 ->
 * 56.4/55.5/41.5 tok/s, 1.5B F16 16.7/16.6/11.8 -> 18.9/14.8/14.0. */
KFN void FN(gemv_f16)(int64_t n, const void *w, size_t row_bytes, int64_t nr, const void *x, float *out) {
    for (int64_t r = 0; r < nr; r++) FN(gb_f16)(n, (const char *)w + (size_t)r * row_bytes, row_bytes, 1, x, out + r);
}
#undef GEMV_ENTRY
GEMV_ROWWISE(bf16)
GEMV_ROWWISE(f32)

/* Q8_0 repacked 4 rows per block (block_q8_0x4): the weights are one sequential stream, so a
 * plain prefetch distance serves, and the 4 scales are one 8-byte load. 2 threads over 512 MiB of
 * 896-column rows, /tmp microbenchmark: 45-46 GB/s against 34-37 for gb_q8_0 on the same rows
 * (F16 rows, one stream per thread: 45). Integer sums and scale steps as gb_q8_0: same bits. */
#define GEMV_X4_PREFETCH(b) \
    _mm_prefetch((const char *)(b) + GEMV_PF_BYTES, _MM_HINT_T0), _mm_prefetch((const char *)(b) + GEMV_PF_BYTES + 64, _MM_HINT_T0), \
    _mm_prefetch((const char *)(b) + GEMV_PF_BYTES + 128, _MM_HINT_T0)
GKFI void FN(gb_q8_0x4)(int64_t n, const block_q8_0x4 *w, const void *x, float *out) {
    const cpu_q8a *xb = x;
    __m128 acc = _mm_setzero_ps();
#if CPU_LEVEL == 2
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    for (int64_t ib = 0; ib < n / 32; ib++) {
        GEMV_X4_PREFETCH(w + ib);
        const __m512i xq = _mm512_broadcast_i64x4(FN(load32)(xb[ib].qs));
        const __m512i off = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, xq));
        const __m512i p0 = _mm512_dpbusd_epi32(off, _mm512_xor_si512(_mm512_loadu_si512(w[ib].qs[0]), bias), xq);
        const __m512i p1 = _mm512_dpbusd_epi32(off, _mm512_xor_si512(_mm512_loadu_si512(w[ib].qs[2]), bias), xq);
        acc = FN(block_step)(acc, _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)w[ib].d)), _mm_set1_ps(xb[ib].d),
                             FN(hsum4_pairs)(p0, p1));
    }
#else
    for (int64_t ib = 0; ib < n / 32; ib++) {
        GEMV_X4_PREFETCH(w + ib);
        const __m256i xq = FN(load32)(xb[ib].qs);
        __m256i p[4];
        GEMV_UNROLL
        for (int r = 0; r < 4; r++) {
            const __m256i q = FN(load32)(w[ib].qs[r]);
            p[r] = FN(dpbusd)(_mm256_setzero_si256(), _mm256_sign_epi8(q, q), _mm256_sign_epi8(xq, q));
        }
        acc = FN(block_step)(acc, _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)w[ib].d)), _mm_set1_ps(xb[ib].d),
                             FN(hsum4_epi32)(p[0], p[1], p[2], p[3]));
    }
#endif
    _mm_storeu_ps(out, acc);
}
#undef GEMV_X4_PREFETCH
KFN void FN(gemv_q8_0x4)(int64_t n, const void *w, size_t row_bytes, int64_t nr, const void *x, float *out) {
    for (int64_t r = 0; r + 4 <= nr; r += 4)
        FN(gb_q8_0x4)(n, (const block_q8_0x4 *)((const char *)w + (size_t)r * row_bytes), x, out + r);
}

#else /* CPU_LEVEL == 0 */
/* The scalar reference's arithmetic (sd_q8_0) on the repacked layout, row by row. */
KFN void FN(gemv_q8_0x4)(int64_t n, const void *w, size_t row_bytes, int64_t nr, const void *x, float *out) {
    const cpu_q8a *a = x;
    for (int64_t r = 0; r + 4 <= nr; r += 4) {
        const block_q8_0x4 *b = (const block_q8_0x4 *)((const char *)w + (size_t)r * row_bytes);
        for (int i = 0; i < 4; i++) {
            float s = 0;
            for (int64_t ib = 0; ib < n / 32; ib++) {
                int sumi = 0;
                for (int l = 0; l < 32; l++) sumi += b[ib].qs[i][l] * a[ib].qs[l];
                s += FN(h2f)(b[ib].d[i]) * a[ib].d * (float)sumi;
            }
            out[r + i] = s;
        }
    }
}
GEMV_ROWWISE(q8_0)
GEMV_ROWWISE(q4_0)
GEMV_ROWWISE(q5_0)
GEMV_ROWWISE(q4_1)
GEMV_ROWWISE(q5_1)
GEMV_ROWWISE(q4_k)
GEMV_ROWWISE(q5_k)
GEMV_ROWWISE(q6_k)
GEMV_ROWWISE(f16)
GEMV_ROWWISE(bf16)
GEMV_ROWWISE(f32)
#endif
#undef GEMV_ROWWISE
#undef GKFI
#undef GEMV_UNROLL
