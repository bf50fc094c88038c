/* cpu_qdot_impl.h - activation quantizers and the per-type dot kernels (cpu.h: cpu_quant_fn,
 * cpu_qdot_fn), included by cpu_kernels_impl.h at each CPU_LEVEL (0 scalar reference, 1 AVX2,
 * 2 AVX-512 VL/BW + VNNI). Uses that file's KFN/FN/h2f.
 *
 * Integer scheme (weights as stored, FORMATS.md section 2):
 *   Q8_0              w = dw * qw, qw signed; per 32-block dw * dx * sum(qw * qx).
 *                     SIMD: |qw| (u8) x sign(qx, qw) (s8) -> dpbusd.
 *   Q4_0, Q5_0        w = dw * (q - OFF), q unsigned (nibble / 5 bits, OFF 8 / 16): sum((q - OFF)*qx)
 *                     in int; SIMD: dpbusd(-OFF * sum(qx), q, qx), the offset inside the int sum.
 *   Q4_1, Q5_1        w = dw * q + mw, q unsigned; dw*dx*sum(q*qx) + mw * ds.
 *   Q4_K, Q5_K        per super-block d*dx*sum_j sc_j*sum(q*qx) - dmin*dx*sum_j m_j*bsum_j,
 *                     q unsigned; SIMD: maddubs(q, qx) (s16 pairs) then dpwssd by the 16-bit
 *                     scale, summed in int32 over the super-block.
 *   Q6_K              d*dx*sum_k sc_k*(sum(q*qx) - 32*bsum_k), q = 6 bits unsigned.
 * All integer partial sums are exact (bounds noted at each kernel). Batch invariance: every SIMD
 * kernel reduces a block's integer sum exactly, then applies the scale step of the scalar reference
 * (s + (dw*dx)*(float)sumi [+ mw*ds | - (dmin*dx)*(float)summ], mul then add, never an FMA) with
 * one float lane per token (here) or per row (cpu_gemv_impl.h), as the GEMM does (cpu_gemm_impl.h):
 * for the integer types every level, kernel and batch size gives the scalar reference's bits, so a
 * token's logits do not depend on whether it was evaluated alone, in 2..4, or in a prefill batch.
 * The float weight types (F16/BF16/F32) are not batch-invariant: their f32 sums run in lane order.
 *
 * SIMD kernels are written once as an always-inline body taking the token count NT as a
 * constant (1..4), so the unpacked weight block stays in registers for NT activation rows. */

#if CPU_LEVEL == 0
#define KFI static inline
#elif CPU_LEVEL == 1
#define KFI static inline __attribute__((always_inline, target("avx2,fma,f16c")))
#else
#define KFI static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#endif

#define XROW(x, t, xs) ((const void *)((const char *)(x) + (size_t)(t) * (xs)))

/* ---- activation quantizers -------------------------------------------------------------------- */

/* Quantizes 32 floats with inverse scale id; returns the sums of qs[0..16) and qs[16..32). */
KFI void FN(q8_32)(const float *x, float id, int8_t *qs, int *s0, int *s1) {
#if CPU_LEVEL == 2
    /* Clamped to +-127: a NaN/Inf activation (a corrupt model; the session reports NUMERIC)
     * converts to INT_MIN, and the sums below must not overflow. */
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    const __m512i i0 = _mm512_min_epi32(hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), vid))));
    const __m512i i1 =
        _mm512_min_epi32(hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16), vid))));
    _mm_storeu_si128((__m128i *)qs, _mm512_cvtepi32_epi8(i0));
    _mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtepi32_epi8(i1));
    *s0 = _mm512_reduce_add_epi32(i0);
    *s1 = _mm512_reduce_add_epi32(i1);
#elif CPU_LEVEL == 1
    const __m256 vid = _mm256_set1_ps(id);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);   /* NaN/Inf: see above */
#define Q8_CLAMP(v) _mm256_min_epi32(hi, _mm256_max_epi32(lo, (v)))
    __m256i i0 = Q8_CLAMP(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), vid)));
    __m256i i1 = Q8_CLAMP(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), vid)));
    __m256i i2 = Q8_CLAMP(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), vid)));
    __m256i i3 = Q8_CLAMP(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), vid)));
#undef Q8_CLAMP
    __m256i a = _mm256_add_epi32(i0, i1), b = _mm256_add_epi32(i2, i3);
    __m128i a4 = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    __m128i b4 = _mm_add_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    a4 = _mm_hadd_epi32(a4, b4);   /* a0+a1, a2+a3, b0+b1, b2+b3 */
    a4 = _mm_hadd_epi32(a4, a4);
    *s0 = _mm_cvtsi128_si32(a4);
    *s1 = _mm_extract_epi32(a4, 1);
    /* pack 32 int32 -> 32 int8; packs work per 128-bit lane, the permute restores the order */
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)qs, p);
#else
    int a = 0, b = 0;
    for (int l = 0; l < 32; l++) {
        const float v = x[l] * id;   /* NaN/Inf clamp to -127 like the SIMD paths' INT_MIN */
        const int q = v >= -127.0f && v <= 127.0f ? (int)lrintf(v) : (v > 127.0f ? 127 : -127);   /* half to even */
        qs[l] = (int8_t)q;
        if (l < 16) a += q;
        else b += q;
    }
    *s0 = a;
    *s1 = b;
#endif
}

/* max |x[i]| for i < n (n a multiple of 32). */
KFI float FN(amax)(const float *x, int64_t n) {
#if CPU_LEVEL == 2
    __m512 m = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    return _mm512_reduce_max_ps(m);
#elif CPU_LEVEL == 1
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
#else
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
#endif
}

/* True when x[0..n) has no NaN or Inf (n a multiple of 32): x - x is 0 exactly for finite x. */
KFI bool FN(all_finite)(const float *x, int64_t n) {
#if CPU_LEVEL == 2
    __mmask16 bad = 0;
    for (int64_t i = 0; i < n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        bad |= _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), _mm512_setzero_ps(), _CMP_NEQ_UQ);
    }
    return bad == 0;
#elif CPU_LEVEL == 1
    __m256 bad = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_NEQ_UQ));
    }
    return _mm256_movemask_ps(bad) == 0;
#else
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
#endif
}

KFN void FN(quant_q8a)(const float *x, void *dst, int64_t n) {
    cpu_q8a *y = dst;
    for (int64_t ib = 0; ib < n / 32; ib++, x += 32) {
        const float d = FN(amax)(x, 32) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int s0, s1;
        FN(q8_32)(x, id, y[ib].qs, &s0, &s1);
        /* a NaN/Inf activation poisons the block's scale so the result is NaN, not a clamped guess */
        y[ib].d = FN(all_finite)(x, 32) ? d : NAN;
        y[ib].ds = y[ib].d * (float)(s0 + s1);
    }
}

KFN void FN(quant_q8k)(const float *x, void *dst, int64_t n) {
    block_q8_k *y = dst;
    for (int64_t ib = 0; ib < n / QK_K; ib++, x += QK_K) {
        const float d = FN(amax)(x, QK_K) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int g = 0; g < 8; g++) {
            int s0, s1;
            FN(q8_32)(x + 32 * g, id, y[ib].qs + 32 * g, &s0, &s1);
            y[ib].bsums[2 * g] = (int16_t)s0;
            y[ib].bsums[2 * g + 1] = (int16_t)s1;
        }
        y[ib].d = FN(all_finite)(x, QK_K) ? d : NAN;   /* NaN/Inf: see quant_q8a */
    }
}

/* ---- SIMD helpers ----------------------------------------------------------------------------- */

#if CPU_LEVEL >= 1
/* acc + sum of 4 adjacent u8*s8 products per int32 lane (|result| <= 4*255*127 per call). */
KFI __m256i FN(dpbusd)(__m256i acc, __m256i u, __m256i s) {
#if CPU_LEVEL == 2
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    /* maddubs saturates at 2*255*127 > 32767: callers keep u <= 128 (see each kernel). */
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}
/* acc + sum of 2 adjacent s16*s16 products per int32 lane. */
KFI __m256i FN(dpwssd)(__m256i acc, __m256i a, __m256i b) {
#if CPU_LEVEL == 2
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}
KFI float FN(hsum8)(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
KFI __m256i FN(load32)(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
/* The lane sums of a, b, c, d as lanes 0..3: a block's exact integer sum for 4 rows or tokens
 * (the kernels' bounds keep every partial sum in int32, so any order gives the same integer). */
KFI __m128i FN(hsum4_epi32)(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}
/* acc + (dw * dx) * (float)isum per lane: the scalar reference's block step (two multiplies, then
 * the add, in its order; never an FMA), so each lane's running sum is bit-identical to it and a
 * result does not depend on the batch size or the kernel. Lanes = rows (gemv) or tokens (qdot). */
KFI __m128 FN(block_step)(__m128 acc, __m128 dw, __m128 dx, __m128i isum) {
    return _mm_add_ps(acc, _mm_mul_ps(_mm_mul_ps(dw, dx), _mm_cvtepi32_ps(isum)));
}
/* Token loops unrolled so p[] and the gathered scales stay in registers (a gather through a
 * float array costs a store-forwarding stall per block: 4x slower, measured). */
#define QDOT_TOKENS _Pragma("GCC unroll 4") for (int t = 0; t < CPU_QDOT_NT; t++)
/* Field f of block ib of activation rows 0..3 in lanes 0..3 (0 past NT, never read). */
#define QDOT_GATHER(T, f) _mm_setr_ps(QDOT_X1(T, f, 0), QDOT_X1(T, f, 1), QDOT_X1(T, f, 2), QDOT_X1(T, f, 3))
#define QDOT_X1(T, f, t) (NT > (t) ? ((const T *)XROW(x, t, xs) + ib)->f : 0.0f)
/* The 4 lanes of v to out[0..nr). */
KFI void FN(store4)(float *out, __m128 v, int nr) {
    float o[4];
    _mm_storeu_ps(o, v);
    for (int i = 0; i < nr; i++) out[i] = o[i];
}
/* 16 packed bytes -> 32 nibbles: low nibbles (elements 0..15) then high nibbles (16..31). */
KFI __m256i FN(nibbles16)(const uint8_t *p) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F));
}
/* bit j of the 32-bit word at p -> 0x10 in byte j (the fifth bit of Q5_0/Q5_1 element j). */
KFI __m256i FN(bits16)(const uint8_t *p) {
    uint32_t b;
    memcpy(&b, p, 4);
#if CPU_LEVEL == 2
    return _mm256_maskz_mov_epi8((__mmask32)b, _mm256_set1_epi8(0x10));
#else
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)b), shuf);   /* byte j = byte j/8 of b */
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));  /* all bits but j%8      */
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1)), _mm256_set1_epi8(0x10));
#endif
}
#endif

/* ---- Q8_0 / Q4_0 / Q5_0: signed weights ------------------------------------------------------- */

#if CPU_LEVEL >= 1
/* Q8_0: signed weights; |qw| <= 128 and |qx| <= 127, so maddubs pairs stay below 32767 (AVX2).
 * Lanes of the float accumulator = tokens; each block's integer sum is reduced exactly, then
 * scaled as the scalar reference does (block_step). */
KFI void FN(qb_q8_0)(int64_t n, const void *w, const void *x, size_t xs, const int NT, float *out) {
    const block_q8_0 *wb = w;
    __m128 acc = _mm_setzero_ps();
    for (int64_t ib = 0; ib < n / 32; ib++) {
        const __m256i q = FN(load32)(wb[ib].qs);
        const __m256i aq = _mm256_sign_epi8(q, q);
        __m256i p[CPU_QDOT_NT];
        QDOT_TOKENS {
            if (t >= NT) { p[t] = _mm256_setzero_si256(); continue; }
            const cpu_q8a *xb = (const cpu_q8a *)XROW(x, t, xs) + ib;
            p[t] = FN(dpbusd)(_mm256_setzero_si256(), aq, _mm256_sign_epi8(FN(load32)(xb->qs), q));
        }
        acc = FN(block_step)(acc, _mm_set1_ps(FN(h2f)(wb[ib].d)), QDOT_GATHER(cpu_q8a, d), FN(hsum4_epi32)(p[0], p[1], p[2], p[3]));
    }
    FN(store4)(out, acc, NT);
}

/* Q4_0 / Q5_0 (OFF = 8 / 16) and Q4_1 / Q5_1 (MIN): the weights as unsigned q <= 31 (maddubs
 * pairs <= 2*31*127). OFF types take the offset into the integer sum as the reference does:
 * dpbusd(-OFF * sum(qx), q, qx) = sum((q - OFF) * qx), exact; MIN types add mw * ds after the
 * scaled sum, as the reference: (dw*dx)*isum + mw*ds. */
#define QDOT_UNSIGNED_BODY(TYPE, QEXPR, OFF, MIN, MEXPR)                                                       \
    KFI void FN(qb_##TYPE)(int64_t n, const void *w, const void *x, size_t xs, const int NT, float *out) { \
        const block_##TYPE *wb = w;                                                                     \
        __m128 acc = _mm_setzero_ps();                                                                  \
        for (int64_t ib = 0; ib < n / 32; ib++) {                                                       \
            const block_##TYPE *b = wb + ib;                                                            \
            const __m256i q = QEXPR;                                                                    \
            __m256i p[CPU_QDOT_NT];                                                                     \
            QDOT_TOKENS {                                                                               \
                if (t >= NT) { p[t] = _mm256_setzero_si256(); continue; }                               \
                const cpu_q8a *xb = (const cpu_q8a *)XROW(x, t, xs) + ib;                               \
                const __m256i xq = FN(load32)(xb->qs);                                                  \
                const __m256i off = OFF ? _mm256_sub_epi32(_mm256_setzero_si256(),                      \
                                                           FN(dpbusd)(_mm256_setzero_si256(), _mm256_set1_epi8(OFF), xq)) \
                                        : _mm256_setzero_si256();                                       \
                p[t] = FN(dpbusd)(off, q, xq);                                                          \
            }                                                                                           \
            const __m128i isum = FN(hsum4_epi32)(p[0], p[1], p[2], p[3]);                               \
            if (MIN) {                                                                                  \
                const __m128 u = _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(FN(h2f)(b->d)), QDOT_GATHER(cpu_q8a, d)), _mm_cvtepi32_ps(isum)); \
                acc = _mm_add_ps(acc, _mm_add_ps(u, _mm_mul_ps(_mm_set1_ps(MEXPR), QDOT_GATHER(cpu_q8a, ds)))); \
            } else {                                                                                    \
                acc = FN(block_step)(acc, _mm_set1_ps(FN(h2f)(b->d)), QDOT_GATHER(cpu_q8a, d), isum);          \
            }                                                                                           \
        }                                                                                               \
        FN(store4)(out, acc, NT);                                                                       \
    }
QDOT_UNSIGNED_BODY(q4_0, FN(nibbles16)(b->qs), 8, 0, 0.0f)
QDOT_UNSIGNED_BODY(q5_0, _mm256_or_si256(FN(nibbles16)(b->qs), FN(bits16)(b->qh)), 16, 0, 0.0f)
QDOT_UNSIGNED_BODY(q4_1, FN(nibbles16)(b->qs), 0, 1, FN(h2f)(b->m))
QDOT_UNSIGNED_BODY(q5_1, _mm256_or_si256(FN(nibbles16)(b->qs), FN(bits16)(b->qh)), 0, 1, FN(h2f)(b->m))
#undef QDOT_UNSIGNED_BODY

/* ---- K-quants ------------------------------------------------------------------------------- */

/* The 8 6-bit scales and 8 mins of a Q4_K/Q5_K block (FORMATS.md 2.4) as bytes sm[0..8), sm[8..16). */
KFI void FN(k_unpack_scales)(const uint8_t *s, uint8_t sm[16]) {
    uint32_t u[4];
    memcpy(u, s, 12);
    const uint32_t m1 = 0x3f3f3f3f, m2 = 0x0f0f0f0f, m3 = 0x03030303;
    u[3] = ((u[2] >> 4) & m2) | (((u[1] >> 6) & m3) << 4);      /* mins 4..7   */
    const uint32_t mins03 = u[1] & m1;                         /* mins 0..3   */
    u[1] = (u[2] & m2) | (((u[0] >> 6) & m3) << 4);            /* scales 4..7 */
    u[2] = mins03;
    u[0] &= m1;                                                /* scales 0..3 */
    memcpy(sm, u, 16);
}

/* Adds dmin*dx*sum_j m_j*(bsum_2j + bsum_2j+1) (j < 8) to *accm: m16 holds m_j twice per pair. */
KFI __m256i FN(k_minsum)(const block_q8_k *xb, __m256i m16) {
    return _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)xb->bsums), m16);
}

/* The end of a Q4_K/Q5_K super-block, lanes = tokens: the exact integer sums, then the reference's
 * (d*dx)*isum - (dmin*dx)*imin, added to acc. */
KFI __m128 FN(k_step)(__m128 acc, float d, float dmin, const void *x, size_t xs, int64_t ib, const int NT,
                      const __m256i *isum, const __m256i *isum2, const __m256i *imin) {
    __m256i s[CPU_QDOT_NT], m[CPU_QDOT_NT];
    QDOT_TOKENS {
        if (t >= NT) { s[t] = m[t] = _mm256_setzero_si256(); continue; }
        s[t] = _mm256_add_epi32(isum[t], isum2[t]), m[t] = imin[t];
    }
    const __m128 dx4 = QDOT_GATHER(block_q8_k, d);
    const __m128 u = _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(d), dx4), _mm_cvtepi32_ps(FN(hsum4_epi32)(s[0], s[1], s[2], s[3])));
    const __m128 v = _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(dmin), dx4), _mm_cvtepi32_ps(FN(hsum4_epi32)(m[0], m[1], m[2], m[3])));
    return _mm_add_ps(acc, _mm_sub_ps(u, v));
}

/* Q4_K: q <= 15; per lane per block |sum| <= 8 * 2*(2*15*127)*63: int32. */
KFI void FN(qb_q4_k)(int64_t n, const void *w, const void *x, size_t xs, const int NT, float *out) {
    const block_q4_k *wb = w;
    __m128 acc = _mm_setzero_ps();
    const __m256i lo4 = _mm256_set1_epi8(0x0F);
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const block_q4_k *b = wb + ib;
        uint8_t sm[16];
        FN(k_unpack_scales)(b->scales, sm);
        /* m16 lane k (per-16 bsum k) = m_{k/2} */
        const __m128i m8 = _mm_loadl_epi64((const __m128i *)(sm + 8));
        const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
        const float d = FN(h2f)(b->d), dmin = FN(h2f)(b->dmin);
        __m256i isum[CPU_QDOT_NT], isum2[CPU_QDOT_NT], imin[CPU_QDOT_NT];   /* 2 chains: dpwssd latency */
        for (int t = 0; t < NT; t++) {
            isum[t] = isum2[t] = _mm256_setzero_si256();
            imin[t] = FN(k_minsum)((const block_q8_k *)XROW(x, t, xs) + ib, m16);
        }
        for (int j = 0; j < 4; j++) {
            const __m256i raw = FN(load32)(b->qs + 32 * j);
            const __m256i q0 = _mm256_and_si256(raw, lo4), q1 = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
            const __m256i s0 = _mm256_set1_epi16(sm[2 * j]), s1 = _mm256_set1_epi16(sm[2 * j + 1]);
            for (int t = 0; t < NT; t++) {
                const int8_t *xq = ((const block_q8_k *)XROW(x, t, xs) + ib)->qs + 64 * j;
                isum[t] = FN(dpwssd)(isum[t], _mm256_maddubs_epi16(q0, FN(load32)(xq)), s0);
                isum2[t] = FN(dpwssd)(isum2[t], _mm256_maddubs_epi16(q1, FN(load32)(xq + 32)), s1);
            }
        }
        acc = FN(k_step)(acc, d, dmin, x, xs, ib, NT, isum, isum2, imin);
    }
    FN(store4)(out, acc, NT);
}

/* Q5_K: q <= 31; bounds as Q4_K doubled. Bit 2j (2j+1) of qh[l] is the fifth bit of element l of
 * sub-block 2j (2j+1). */
KFI void FN(qb_q5_k)(int64_t n, const void *w, const void *x, size_t xs, const int NT, float *out) {
    const block_q5_k *wb = w;
    __m128 acc = _mm_setzero_ps();
    const __m256i lo4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const block_q5_k *b = wb + ib;
        uint8_t sm[16];
        FN(k_unpack_scales)(b->scales, sm);
        const __m128i m8 = _mm_loadl_epi64((const __m128i *)(sm + 8));
        const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
        const float d = FN(h2f)(b->d), dmin = FN(h2f)(b->dmin);
        __m256i isum[CPU_QDOT_NT], isum2[CPU_QDOT_NT], imin[CPU_QDOT_NT];   /* 2 chains: dpwssd latency */
        for (int t = 0; t < NT; t++) {
            isum[t] = isum2[t] = _mm256_setzero_si256();
            imin[t] = FN(k_minsum)((const block_q8_k *)XROW(x, t, xs) + ib, m16);
        }
        __m256i qh = FN(load32)(b->qh);   /* shifted right by 2 per j: bits 0, 1 are current */
        for (int j = 0; j < 4; j++) {
            const __m256i raw = FN(load32)(b->qs + 32 * j);
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(raw, lo4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), b4));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4),
                                               _mm256_and_si256(_mm256_slli_epi16(qh, 3), b4));
            qh = _mm256_srli_epi16(qh, 2);
            const __m256i s0 = _mm256_set1_epi16(sm[2 * j]), s1 = _mm256_set1_epi16(sm[2 * j + 1]);
            for (int t = 0; t < NT; t++) {
                const int8_t *xq = ((const block_q8_k *)XROW(x, t, xs) + ib)->qs + 64 * j;
                isum[t] = FN(dpwssd)(isum[t], _mm256_maddubs_epi16(q0, FN(load32)(xq)), s0);
                isum2[t] = FN(dpwssd)(isum2[t], _mm256_maddubs_epi16(q1, FN(load32)(xq + 32)), s1);
            }
        }
        acc = FN(k_step)(acc, d, dmin, x, xs, ib, NT, isum, isum2, imin);
    }
    FN(store4)(out, acc, NT);
}

/* Q6_K: q <= 63 (maddubs pairs <= 16002); per lane per block |sum| <= 8*2*16002*128 + the offset
 * 32*2*2032*128: int32. */
KFI void FN(qb_q6_k)(int64_t n, const void *w, const void *x, size_t xs, const int NT, float *out) {
    const block_q6_k *wb = w;
    __m128 acc = _mm_setzero_ps();
    const __m256i lo4 = _mm256_set1_epi8(0x0F), hi2 = _mm256_set1_epi8(0x30);
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const block_q6_k *b = wb + ib;
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        __m256i isum[CPU_QDOT_NT], isum2[CPU_QDOT_NT];   /* 2 chains: dpwssd latency */
        for (int t = 0; t < NT; t++) {   /* -32 * sum_k sc_k * bsum_k, spread over the lanes */
            isum2[t] = _mm256_setzero_si256();
            const __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)((const block_q8_k *)XROW(x, t, xs) + ib)->bsums), sc16);
            isum[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
        }
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = FN(load32)(b->ql + 64 * h), ql1 = FN(load32)(b->ql + 64 * h + 32);
            const __m256i qh = FN(load32)(b->qh + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, lo4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), hi2));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, lo4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), hi2));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), lo4), _mm256_and_si256(qh, hi2));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), lo4),
                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), hi2));
            for (int g = 0; g < 4; g++) {
                const int k = 8 * h + 2 * g;   /* scales k (elements 0..15 of the group), k+1 */
                const __m256i s = _mm256_set_m128i(_mm_set1_epi16(b->scales[k + 1]), _mm_set1_epi16(b->scales[k]));
                for (int t = 0; t < NT; t++) {
                    const int8_t *xq = ((const block_q8_k *)XROW(x, t, xs) + ib)->qs + 128 * h + 32 * g;
                    if (g & 1) isum2[t] = FN(dpwssd)(isum2[t], _mm256_maddubs_epi16(q[g], FN(load32)(xq)), s);
                    else isum[t] = FN(dpwssd)(isum[t], _mm256_maddubs_epi16(q[g], FN(load32)(xq)), s);
                }
            }
        }
        __m256i st[CPU_QDOT_NT];
        QDOT_TOKENS {
            if (t >= NT) { st[t] = _mm256_setzero_si256(); continue; }
            st[t] = _mm256_add_epi32(isum[t], isum2[t]);
        }
        acc = FN(block_step)(acc, _mm_set1_ps(FN(h2f)(b->d)), QDOT_GATHER(block_q8_k, d), FN(hsum4_epi32)(st[0], st[1], st[2], st[3]));
    }
    FN(store4)(out, acc, NT);
}

/* ---- F16 / BF16 / F32 weights against f32 activations ------------------------------------------ */

#if CPU_LEVEL == 2
#define FVEC __m512
#define FW 16
#define FZERO _mm512_setzero_ps()
#define FFMA _mm512_fmadd_ps
#define FLOADX(p) _mm512_loadu_ps(p)
#define FHSUM(v) _mm512_reduce_add_ps(v)
#define FLOAD_f16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define FLOAD_bf16(p) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#define FLOAD_f32(p) _mm512_loadu_ps(p)
#else
#define FVEC __m256
#define FW 8
#define FZERO _mm256_setzero_ps()
#define FFMA _mm256_fmadd_ps
#define FLOADX(p) _mm256_loadu_ps(p)
#define FHSUM(v) FN(hsum8)(v)
#define FLOAD_f16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define FLOAD_bf16(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#define FLOAD_f32(p) _mm256_loadu_ps(p)
#endif
#define SCAL_f16(p, i) FN(h2f)((p)[i])
#define SCAL_bf16(p, i) FN(bf2f)((p)[i])
#define SCAL_f32(p, i) ((p)[i])

/* Two accumulators per row (FMA latency), 2*FW weights per step, scalar tail. */
#define QDOT_FLOAT_BODY(NAME, WT)                                                                       \
    KFI void FN(qb_##NAME)(int64_t n, const void *w, const void *x, size_t xs, const int NT, float *out) { \
        const WT *wp = w;                                                                               \
        FVEC a0[CPU_QDOT_NT], a1[CPU_QDOT_NT];                                                          \
        for (int t = 0; t < NT; t++) a0[t] = FZERO, a1[t] = FZERO;                                      \
        int64_t i = 0;                                                                                  \
        for (; i + 2 * FW <= n; i += 2 * FW) {                                                          \
            const FVEC w0 = FLOAD_##NAME(wp + i), w1 = FLOAD_##NAME(wp + i + FW);                       \
            for (int t = 0; t < NT; t++) {                                                              \
                const float *xt = (const float *)XROW(x, t, xs);                                        \
                a0[t] = FFMA(w0, FLOADX(xt + i), a0[t]);                                                \
                a1[t] = FFMA(w1, FLOADX(xt + i + FW), a1[t]);                                           \
            }                                                                                           \
        }                                                                                               \
        for (; i + FW <= n; i += FW) {                                                                  \
            const FVEC w0 = FLOAD_##NAME(wp + i);                                                       \
            for (int t = 0; t < NT; t++) a0[t] = FFMA(w0, FLOADX((const float *)XROW(x, t, xs) + i), a0[t]); \
        }                                                                                               \
        for (int t = 0; t < NT; t++) {                                                                  \
            const float *xt = (const float *)XROW(x, t, xs);                                            \
            float s = FHSUM(a0[t]) + FHSUM(a1[t]);                                                      \
            for (int64_t j = i; j < n; j++) s += SCAL_##NAME(wp, j) * xt[j];                            \
            out[t] = s;                                                                                 \
        }                                                                                               \
    }
#endif /* CPU_LEVEL >= 1 */

KFI float FN(bf2f)(uint16_t h) {
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

#if CPU_LEVEL >= 1
QDOT_FLOAT_BODY(f16, uint16_t)
QDOT_FLOAT_BODY(bf16, uint16_t)
QDOT_FLOAT_BODY(f32, float)
#undef QDOT_FLOAT_BODY
#undef FVEC
#undef FW
#undef FZERO
#undef FFMA
#undef FLOADX
#undef FHSUM
#undef FLOAD_f16
#undef FLOAD_bf16
#undef FLOAD_f32

/* The exported kernels: NT as a compile-time constant in each case. */
#define QDOT_ENTRY(TYPE)                                                                                \
    KFN void FN(qdot_##TYPE)(int64_t n, const void *w, const void *x, size_t xs, int nt, float *out) {  \
        switch (nt) {                                                                                   \
        case 1: FN(qb_##TYPE)(n, w, x, xs, 1, out); break;                                              \
        case 2: FN(qb_##TYPE)(n, w, x, xs, 2, out); break;                                              \
        case 3: FN(qb_##TYPE)(n, w, x, xs, 3, out); break;                                              \
        default: FN(qb_##TYPE)(n, w, x, xs, 4, out); break;                                             \
        }                                                                                               \
    }

#else /* CPU_LEVEL == 0: the scalar reference, one activation row at a time */

static float FN(sd_q8_0)(int64_t n, const void *w, const void *x) {
    const block_q8_0 *b = w;
    const cpu_q8a *a = x;
    float s = 0;
    for (int64_t ib = 0; ib < n / 32; ib++) {
        int sumi = 0;
        for (int l = 0; l < 32; l++) sumi += b[ib].qs[l] * a[ib].qs[l];
        s += FN(h2f)(b[ib].d) * a[ib].d * (float)sumi;
    }
    return s;
}

static float FN(sd_q4_0)(int64_t n, const void *w, const void *x) {
    const block_q4_0 *b = w;
    const cpu_q8a *a = x;
    float s = 0;
    for (int64_t ib = 0; ib < n / 32; ib++) {
        int sumi = 0;
        for (int l = 0; l < 16; l++)
            sumi += ((b[ib].qs[l] & 0x0F) - 8) * a[ib].qs[l] + ((b[ib].qs[l] >> 4) - 8) * a[ib].qs[l + 16];
        s += FN(h2f)(b[ib].d) * a[ib].d * (float)sumi;
    }
    return s;
}

static float FN(sd_q5_0)(int64_t n, const void *w, const void *x) {
    const block_q5_0 *b = w;
    const cpu_q8a *a = x;
    float s = 0;
    for (int64_t ib = 0; ib < n / 32; ib++) {
        uint32_t qh;
        memcpy(&qh, b[ib].qh, 4);
        int sumi = 0;
        for (int l = 0; l < 16; l++) {
            const int q0 = ((b[ib].qs[l] & 0x0F) | (int)(((qh >> l) & 1u) << 4)) - 16;
            const int q1 = ((b[ib].qs[l] >> 4) | (int)(((qh >> (l + 16)) & 1u) << 4)) - 16;
            sumi += q0 * a[ib].qs[l] + q1 * a[ib].qs[l + 16];
        }
        s += FN(h2f)(b[ib].d) * a[ib].d * (float)sumi;
    }
    return s;
}

static float FN(sd_q4_1)(int64_t n, const void *w, const void *x) {
    const block_q4_1 *b = w;
    const cpu_q8a *a = x;
    float s = 0;
    for (int64_t ib = 0; ib < n / 32; ib++) {
        int sumi = 0;
        for (int l = 0; l < 16; l++) sumi += (b[ib].qs[l] & 0x0F) * a[ib].qs[l] + (b[ib].qs[l] >> 4) * a[ib].qs[l + 16];
        s += FN(h2f)(b[ib].d) * a[ib].d * (float)sumi + FN(h2f)(b[ib].m) * a[ib].ds;
    }
    return s;
}

static float FN(sd_q5_1)(int64_t n, const void *w, const void *x) {
    const block_q5_1 *b = w;
    const cpu_q8a *a = x;
    float s = 0;
    for (int64_t ib = 0; ib < n / 32; ib++) {
        uint32_t qh;
        memcpy(&qh, b[ib].qh, 4);
        int sumi = 0;
        for (int l = 0; l < 16; l++) {
            const int q0 = (b[ib].qs[l] & 0x0F) | (int)(((qh >> l) & 1u) << 4);
            const int q1 = (b[ib].qs[l] >> 4) | (int)(((qh >> (l + 16)) & 1u) << 4);
            sumi += q0 * a[ib].qs[l] + q1 * a[ib].qs[l + 16];
        }
        s += FN(h2f)(b[ib].d) * a[ib].d * (float)sumi + FN(h2f)(b[ib].m) * a[ib].ds;
    }
    return s;
}

/* Q4_K and Q5_K share the scale/min structure; hb = NULL for Q4_K. */
static float FN(sd_kq)(int64_t n, const uint8_t *scales, f16_t dd, f16_t dm, const uint8_t *qs, const uint8_t *qh,
                       const block_q8_k *a) {
    (void)n;
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        quant_k4_scale_min(j, scales, &sc, &m);
        const uint8_t *q = qs + 32 * (j / 2);
        int s = 0;
        for (int l = 0; l < 32; l++) {
            int v = (j & 1) ? q[l] >> 4 : q[l] & 0x0F;
            if (qh) v |= ((qh[l] >> j) & 1) << 4;
            s += v * a->qs[32 * j + l];
        }
        sumi += sc * s;
        summ += m * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
    }
    return FN(h2f)(dd) * a->d * (float)sumi - FN(h2f)(dm) * a->d * (float)summ;
}

static float FN(sd_q4_k)(int64_t n, const void *w, const void *x) {
    const block_q4_k *b = w;
    const block_q8_k *a = x;
    float s = 0;
    for (int64_t ib = 0; ib < n / QK_K; ib++) s += FN(sd_kq)(n, b[ib].scales, b[ib].d, b[ib].dmin, b[ib].qs, NULL, a + ib);
    return s;
}

static float FN(sd_q5_k)(int64_t n, const void *w, const void *x) {
    const block_q5_k *b = w;
    const block_q8_k *a = x;
    float s = 0;
    for (int64_t ib = 0; ib < n / QK_K; ib++) s += FN(sd_kq)(n, b[ib].scales, b[ib].d, b[ib].dmin, b[ib].qs, b[ib].qh, a + ib);
    return s;
}

static float FN(sd_q6_k)(int64_t n, const void *w, const void *x) {
    const block_q6_k *b = w;
    const block_q8_k *a = x;
    float s = 0;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        int sumi = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b[ib].ql + 64 * h, *qh = b[ib].qh + 32 * h;
            for (int g = 0; g < 4; g++) {              /* elements 128h + 32g + l, l < 32 */
                const uint8_t *lo = ql + 32 * (g & 1);
                const int sh = g < 2 ? 0 : 4;
                for (int l = 0; l < 32; l++) {
                    const int q = (((lo[l] >> sh) & 0x0F) | (((qh[l] >> (2 * g)) & 3) << 4)) - 32;
                    sumi += b[ib].scales[8 * h + 2 * g + l / 16] * q * a[ib].qs[128 * h + 32 * g + l];
                }
            }
        }
        s += FN(h2f)(b[ib].d) * a[ib].d * (float)sumi;
    }
    return s;
}

static float FN(sd_f16)(int64_t n, const void *w, const void *x) { return FN(dot_f16)(w, x, n); }
static float FN(sd_f32)(int64_t n, const void *w, const void *x) { return FN(dot)(w, x, n); }
static float FN(sd_bf16)(int64_t n, const void *w, const void *x) {
    const uint16_t *h = w;
    const float *xf = x;
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += FN(bf2f)(h[i + j]) * xf[i + j];
    for (; i < n; i++) s[0] += FN(bf2f)(h[i]) * xf[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

#define QDOT_ENTRY(TYPE)                                                                                \
    static void FN(qdot_##TYPE)(int64_t n, const void *w, const void *x, size_t xs, int nt, float *out) { \
        for (int t = 0; t < nt; t++) out[t] = FN(sd_##TYPE)(n, w, XROW(x, t, xs));                       \
    }
#endif

QDOT_ENTRY(q8_0)
QDOT_ENTRY(q4_0)
QDOT_ENTRY(q5_0)
QDOT_ENTRY(q4_1)
QDOT_ENTRY(q5_1)
QDOT_ENTRY(q4_k)
QDOT_ENTRY(q5_k)
QDOT_ENTRY(q6_k)
QDOT_ENTRY(f16)
QDOT_ENTRY(bf16)
QDOT_ENTRY(f32)
#undef QDOT_ENTRY
#undef XROW
#undef QDOT_TOKENS
#undef QDOT_GATHER
#undef QDOT_X1
#undef KFI
