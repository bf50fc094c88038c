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
 * The scalar reference (level 0) is the per-row scalar kernel.
 *
 * Rows repacked 4 at a time at load (lib/repack.c) have their own entries, gemv_x4_TYPE: the same
 * group kernels over one sequential stream (cpu_gemv_body.h is included twice: standard and
 * repacked), Q8_0 with its own layout and kernel (gb_q8_0x4), level 0 by gathering each row. */

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
/* Used only in cpu_gemv_body.h: a repacked (GEMV_S4) pointer's type spans its column's 4 blocks,
 * and each row prefetches its own. */
#define GEMV_PREFETCH_BLOCK(p)                                                                           \
    for (size_t o_ = 0; o_ < sizeof *(p) / (GEMV_S4 ? 4 : 1); o_ += 64) GEMV_PREFETCH((const char *)(p) + o_)

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
/* The 6-bit scales and mins of two Q4_K/Q5_K blocks (12 bytes at sa, sb; 16 are read, the rest
 * of the block follows) unpacked as k_unpack_scales does, in vector registers: 128-bit lane 0 =
 * a's 8 scales then 8 mins, lane 1 = b's. ~10 instructions instead of ~35 scalar ones and moves
 * per pair. */
GKFI __m256i FN(k_unpack_scales2)(const uint8_t *sa, const uint8_t *sb) {
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)sa)),
                                              _mm_loadu_si128((const __m128i *)sb), 1);   /* u0 u1 u2 per lane */
    const __m256i m4 = _mm256_set1_epi32(0x0f0f0f0f);
    const __m256i lo = _mm256_and_si256(v, _mm256_set1_epi32(0x3f3f3f3f));               /* scales 0-3, mins 0-3 */
    const __m256i u2 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_shuffle_epi32(v, 0xAA), _mm256_setr_epi32(0, 4, 0, 0, 0, 4, 0, 0)), m4);
    const __m256i top = _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(v, 6), _mm256_set1_epi32(0x03030303)), 4);
    return _mm256_unpacklo_epi32(lo, _mm256_or_si256(u2, top));                            /* sc0-3 sc4-7 mn0-3 mn4-7 */
}
#endif
/* acc + (d*dx)*isum - (dmin*dx)*imin per lane (row): the Q4_K/Q5_K reference's block step. */
GKFI __m128 FN(k_block_step)(__m128 acc, __m128 d, __m128 dmin, __m128 dx, __m128i isum, __m128i imin) {
    const __m128 u = _mm_mul_ps(_mm_mul_ps(d, dx), _mm_cvtepi32_ps(isum));
    return _mm_add_ps(acc, _mm_sub_ps(u, _mm_mul_ps(_mm_mul_ps(dmin, dx), _mm_cvtepi32_ps(imin))));
}
/* The padded block types of the repacked kernels (cpu_gemv_body.h): a block's fields, then room
 * for the other 3 rows' blocks of its column. */
#ifndef CPU_GEMV_S4_TYPES
#define CPU_GEMV_S4_TYPES
#define GEMV_S4_TYPE(T, ...)                                                                             \
    typedef struct { __VA_ARGS__ uint8_t pad_[3 * sizeof(block_##T)]; } block_##T##_s4;                  \
    _Static_assert(sizeof(block_##T##_s4) == 4 * sizeof(block_##T), "block_" #T "_s4 size");
GEMV_S4_TYPE(q4_0, f16_t d; uint8_t qs[QK4_0 / 2];)
GEMV_S4_TYPE(q4_1, f16_t d, m; uint8_t qs[QK4_1 / 2];)
GEMV_S4_TYPE(q5_0, f16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2];)
GEMV_S4_TYPE(q5_1, f16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2];)
GEMV_S4_TYPE(q4_k, f16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2];)
GEMV_S4_TYPE(q5_k, f16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2];)
GEMV_S4_TYPE(q6_k, uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; f16_t d;)
#undef GEMV_S4_TYPE
#endif

#define GEMV_S4 0
#include "cpu_gemv_body.h"
#undef GEMV_S4
#define GEMV_S4 1
#include "cpu_gemv_body.h"
#undef GEMV_S4
#undef GEMV_SX_MAX

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
/* Rows repacked 4 at a time block by block (repack.c): whole groups, one stream each. */
#define GEMV_X4_ENTRY(TYPE)                                                                              \
    KFN void FN(gemv_x4_##TYPE)(int64_t n, const void *w, size_t row_bytes, int64_t nr, const void *x, float *out) { \
        for (int64_t r = 0; r + GEMV_NR <= nr; r += GEMV_NR)                                            \
            FN(gb_##TYPE##_s4)(n, (const char *)w + (size_t)r * row_bytes, sizeof(block_##TYPE), GEMV_NR, x, out + r); \
    }
#if CPU_LEVEL == 1   /* AVX-512: with the offset sums, cpu_gemv_body.h */
GEMV_X4_ENTRY(q4_0)
GEMV_X4_ENTRY(q5_0)
#endif
GEMV_X4_ENTRY(q4_1)
GEMV_X4_ENTRY(q5_1)
GEMV_X4_ENTRY(q4_k)
GEMV_X4_ENTRY(q5_k)
GEMV_X4_ENTRY(q6_k)
#undef GEMV_X4_ENTRY
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
KFN void FN(gemv_x4_q8_0)(int64_t n, const void *w, size_t row_bytes, int64_t nr, const void *x, float *out) {
    for (int64_t r = 0; r + 4 <= nr; r += 4)
        FN(gb_q8_0x4)(n, (const block_q8_0x4 *)((const char *)w + (size_t)r * row_bytes), x, out + r);
}

#else /* CPU_LEVEL == 0 */
/* Repacked rows (repack.c) at the scalar level: each row gathered back by weight_row, then the
 * scalar kernel (its bits by construction). Rows up to 64 KiB gather on the stack (every model we
 * know: a 28672-column Q8_0 row is 30 KiB); longer ones into the heap, NaN if that fails. */
static void FN(gemv_x4_gather)(uint32_t type, cpu_qdot_fn dot, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                               const void *x, float *out) {
    uint8_t stack_row[65536];
    uint8_t *row = row_bytes <= sizeof stack_row ? stack_row : malloc(row_bytes);
    const weight W = {.type = type, .rows = nr, .cols = n, .row_bytes = row_bytes, .data = w, .x4 = true};
    for (int64_t r = 0; r < nr - nr % 4; r++) {
        if (row) dot(n, weight_row(&W, r, row), x, 0, 1, out + r);
        else out[r] = NAN;
    }
    if (row != stack_row) free(row);
}
#define GEMV_X4_GATHER(TYPE, QT)                                                                         \
    KFN void FN(gemv_x4_##TYPE)(int64_t n, const void *w, size_t row_bytes, int64_t nr, const void *x, float *out) { \
        FN(gemv_x4_gather)(QT, FN(qdot_##TYPE), n, w, row_bytes, nr, x, out);                          \
    }
GEMV_X4_GATHER(q8_0, QT_Q8_0)
GEMV_X4_GATHER(q4_0, QT_Q4_0)
GEMV_X4_GATHER(q4_1, QT_Q4_1)
GEMV_X4_GATHER(q5_0, QT_Q5_0)
GEMV_X4_GATHER(q5_1, QT_Q5_1)
GEMV_X4_GATHER(q4_k, QT_Q4_K)
GEMV_X4_GATHER(q5_k, QT_Q5_K)
GEMV_X4_GATHER(q6_k, QT_Q6_K)
#undef GEMV_X4_GATHER
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
