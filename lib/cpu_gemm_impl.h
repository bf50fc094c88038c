/* cpu_gemm_impl.h - the prefill GEMM micro-kernels (cpu_gemm.c), AVX-512 F/BW/VL/DQ + VNNI.
 * Included once by cpu_gemm.c with FN/KFN/KFI defined; the scalar reference is the per-row
 * k->qdot of cpu_qdot_impl.h (level 0), which the tests compare every output with.
 *
 * Layout ("panel"): GEMM_PR = 32 weight rows unpacked once per matmul into 2 vectors of 16
 * rows, so one zmm lane holds one row and the 4 bytes of a dword are 4 consecutive columns:
 *   wq[block][rv][k/4][lane][k%4]   unsigned 8-bit weights q (w = scale * (q - offset) + min)
 * A dword of activations (4 columns of one token) is broadcast and vpdpbusd adds q.x for 16
 * rows at once: no horizontal sums, each weight load feeds NT tokens, each broadcast 2 vectors.
 * The per-block scales (one float per row) are applied per block and token with the scalar
 * reference's float operations in its order (mul, then add; no FMA), and the integer block sums
 * are the reference's exactly (bounds at each kernel): the integer types are bit-identical to the
 * scalar reference (test_cpu_gemm checks ==), whatever the batch size, tile or thread, and so to
 * the decode kernels (GEMV, qdot), which follow the same order (test_batch_invariant).
 * F16/BF16/F32 weights use the other orientation (lanes = tokens; see gemm_f32_tile): they need
 * no transposing pack, only a conversion to f32. */

/* Small loops over tokens and k-steps must be unrolled so the accumulator arrays live in
 * registers (GCC -O2 keeps them on the stack otherwise: 3x slower, measured). */
#define GEMM_UNROLL _Pragma("GCC unroll 16")

#define GEMM_PR 32   /* rows per panel: 2 zmm of 16 lanes                                   */
#define GEMM_NTA 6   /* tokens per Q8A micro-tile: 12 int + 12 float accumulators + 5 temps   */
#define GEMM_NTK 4   /* tokens per Q8K micro-tile: 3 x 8 accumulators (isum, sub-block, float) */

/* The 4 activation bytes at p as a broadcast dword (unaligned-safe). */
KFI __m512i FN(bcast4)(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* Stores the 16 row lanes of v to y[0..n) (n <= 16: the panel's row tail). */
KFI void FN(store_rows)(float *y, __m512 v, int n) {
    if (n >= 16) _mm512_storeu_ps(y, v);
    else if (n > 0) _mm512_mask_storeu_ps(y, (__mmask16)((1u << n) - 1), v);
}

/* ---- 32-blocks (Q8_0, Q4_0, Q5_0 with OFF; Q4_1, Q5_1 with MIN) against cpu_q8a -------------
 * Per block, lane, token: isum = sum(q*qx) - OFF*sum(qx) (|q| <= 255, 32 terms: int32 exact),
 * y += (dw*dx) * isum [+ m * ds].  aux[t][b] = OFF*sum(qx) (0 for MIN types). */
KFI void FN(gemm_q8a_tile)(const uint8_t *wq, const float *dw, const float *mw, int nblk, const void *x, size_t xs,
                           const int32_t *aux, int aux_stride, const int NT, const int MIN, float *y, int64_t ys,
                           int nrows) {
    __m512 fa[2][GEMM_NTA];
    GEMM_UNROLL
    for (int t = 0; t < NT; t++) fa[0][t] = fa[1][t] = _mm512_setzero_ps();
    for (int b = 0; b < nblk; b++) {
        const uint8_t *wb = wq + (size_t)b * 1024;
        __m512i ia[2][GEMM_NTA];
        GEMM_UNROLL
        for (int t = 0; t < NT; t++) ia[0][t] = ia[1][t] = _mm512_setzero_si512();
        GEMM_UNROLL
        for (int k4 = 0; k4 < 8; k4++) {
            const __m512i w0 = _mm512_loadu_si512(wb + 64 * k4), w1 = _mm512_loadu_si512(wb + 512 + 64 * k4);
            GEMM_UNROLL
            for (int t = 0; t < NT; t++) {
                const cpu_q8a *xb = (const cpu_q8a *)((const char *)x + (size_t)t * xs) + b;
                const __m512i xv = FN(bcast4)(xb->qs + 4 * k4);
                ia[0][t] = _mm512_dpbusd_epi32(ia[0][t], w0, xv);
                ia[1][t] = _mm512_dpbusd_epi32(ia[1][t], w1, xv);
            }
        }
        const __m512 d0 = _mm512_loadu_ps(dw + (size_t)b * GEMM_PR), d1 = _mm512_loadu_ps(dw + (size_t)b * GEMM_PR + 16);
        GEMM_UNROLL
        for (int t = 0; t < NT; t++) {
            const cpu_q8a *xb = (const cpu_q8a *)((const char *)x + (size_t)t * xs) + b;
            const __m512 dx = _mm512_set1_ps(xb->d);
            if (!MIN) {
                const __m512i off = _mm512_set1_epi32(aux[(size_t)t * aux_stride + b]);
                ia[0][t] = _mm512_sub_epi32(ia[0][t], off);
                ia[1][t] = _mm512_sub_epi32(ia[1][t], off);
            }
            /* y += (dw*dx)*isum [+ m*ds]: the scalar reference's operations in its order (no FMA),
             * so the GEMM is bit-identical to it */
            __m512 u0 = _mm512_mul_ps(_mm512_mul_ps(d0, dx), _mm512_cvtepi32_ps(ia[0][t]));
            __m512 u1 = _mm512_mul_ps(_mm512_mul_ps(d1, dx), _mm512_cvtepi32_ps(ia[1][t]));
            if (MIN) {
                const __m512 ds = _mm512_set1_ps(xb->ds);
                u0 = _mm512_add_ps(u0, _mm512_mul_ps(_mm512_loadu_ps(mw + (size_t)b * GEMM_PR), ds));
                u1 = _mm512_add_ps(u1, _mm512_mul_ps(_mm512_loadu_ps(mw + (size_t)b * GEMM_PR + 16), ds));
            }
            fa[0][t] = _mm512_add_ps(fa[0][t], u0);
            fa[1][t] = _mm512_add_ps(fa[1][t], u1);
        }
    }
    for (int t = 0; t < NT; t++) {
        FN(store_rows)(y + (size_t)t * ys, fa[0][t], nrows);
        FN(store_rows)(y + (size_t)t * ys + 16, fa[1][t], nrows - 16);
    }
}

/* ---- 256-blocks (Q4_K, Q5_K: NSUB 8 sub-blocks of 32; Q6_K: NSUB 16 of 16) against block_q8_k
 * Per super-block, lane, token:
 *   isum = sum_s sc_s * sum(q*qx over sub-block s)          (vpdpbusd, then vpmulld by sc_s)
 *   msum = sum_i mp_i . (bsums[2i], bsums[2i+1])            (vpdpwssd on int16 pairs)
 *   Q4_K/Q5_K: mp_i = (m_i, m_i),  y += d*dx*isum - dmin*dx*msum
 *   Q6_K:      mp_i = (sc_2i, sc_2i+1), y += d*dx*(isum - 32*msum)  (q unsigned, offset 32)
 * Bounds: Q4_K/Q5_K |isum| <= 8*32*31*127*63 < 2^31; Q6_K 16*16*63*127*128 + 32*16*128*2032
 * < 2^31: int32 exact, as the scalar reference's sums. */
KFI void FN(gemm_q8k_tile)(const uint8_t *wq, const int32_t *sc, const int32_t *mp, const float *dd, const float *dm,
                           int nblk, const void *x, size_t xs, const int NT, const int NSUB, float *y, int64_t ys,
                           int nrows) {
    const int K4 = 64 / NSUB;   /* dwords of one sub-block */
    __m512 fa[2][GEMM_NTK];
    GEMM_UNROLL
    for (int t = 0; t < NT; t++) fa[0][t] = fa[1][t] = _mm512_setzero_ps();
    for (int b = 0; b < nblk; b++) {
        const uint8_t *wb = wq + (size_t)b * 8192;
        const int32_t *scb = sc + (size_t)b * NSUB * GEMM_PR, *mpb = mp + (size_t)b * 8 * GEMM_PR;
        __m512i is[2][GEMM_NTK];
        GEMM_UNROLL
        for (int t = 0; t < NT; t++) is[0][t] = is[1][t] = _mm512_setzero_si512();
        GEMM_UNROLL
        for (int s = 0; s < NSUB; s++) {
            __m512i ps[2][GEMM_NTK];
            GEMM_UNROLL
            for (int t = 0; t < NT; t++) ps[0][t] = ps[1][t] = _mm512_setzero_si512();
            GEMM_UNROLL
            for (int k = 0; k < K4; k++) {
                const int k4 = s * K4 + k;
                const __m512i w0 = _mm512_loadu_si512(wb + 64 * k4), w1 = _mm512_loadu_si512(wb + 4096 + 64 * k4);
                GEMM_UNROLL
                for (int t = 0; t < NT; t++) {
                    const block_q8_k *xb = (const block_q8_k *)((const char *)x + (size_t)t * xs) + b;
                    const __m512i xv = FN(bcast4)(xb->qs + 4 * k4);
                    ps[0][t] = _mm512_dpbusd_epi32(ps[0][t], w0, xv);
                    ps[1][t] = _mm512_dpbusd_epi32(ps[1][t], w1, xv);
                }
            }
            const __m512i s0 = _mm512_loadu_si512(scb + s * GEMM_PR), s1 = _mm512_loadu_si512(scb + s * GEMM_PR + 16);
            GEMM_UNROLL
            for (int t = 0; t < NT; t++) {
                is[0][t] = _mm512_add_epi32(is[0][t], _mm512_mullo_epi32(ps[0][t], s0));
                is[1][t] = _mm512_add_epi32(is[1][t], _mm512_mullo_epi32(ps[1][t], s1));
            }
        }
        __m512i ms[2][GEMM_NTK];
        GEMM_UNROLL
        for (int t = 0; t < NT; t++) ms[0][t] = ms[1][t] = _mm512_setzero_si512();
        GEMM_UNROLL
        for (int i = 0; i < 8; i++) {
            const __m512i m0 = _mm512_loadu_si512(mpb + i * GEMM_PR), m1 = _mm512_loadu_si512(mpb + i * GEMM_PR + 16);
            GEMM_UNROLL
            for (int t = 0; t < NT; t++) {
                const block_q8_k *xb = (const block_q8_k *)((const char *)x + (size_t)t * xs) + b;
                const __m512i bv = FN(bcast4)((const int8_t *)(xb->bsums + 2 * i));
                ms[0][t] = _mm512_dpwssd_epi32(ms[0][t], m0, bv);
                ms[1][t] = _mm512_dpwssd_epi32(ms[1][t], m1, bv);
            }
        }
        const __m512 d0 = _mm512_loadu_ps(dd + (size_t)b * GEMM_PR), d1 = _mm512_loadu_ps(dd + (size_t)b * GEMM_PR + 16);
        const __m512 n0 = _mm512_loadu_ps(dm + (size_t)b * GEMM_PR), n1 = _mm512_loadu_ps(dm + (size_t)b * GEMM_PR + 16);
        GEMM_UNROLL
        for (int t = 0; t < NT; t++) {
            const block_q8_k *xb = (const block_q8_k *)((const char *)x + (size_t)t * xs) + b;
            const __m512 dx = _mm512_set1_ps(xb->d);
            if (NSUB == 16) {   /* Q6_K: the offset in the integer sum, as the reference */
                is[0][t] = _mm512_sub_epi32(is[0][t], _mm512_slli_epi32(ms[0][t], 5));
                is[1][t] = _mm512_sub_epi32(is[1][t], _mm512_slli_epi32(ms[1][t], 5));
            }
            /* y += (d*dx)*isum [- (dmin*dx)*msum]: the scalar reference's order, bit-identical */
            __m512 u0 = _mm512_mul_ps(_mm512_mul_ps(d0, dx), _mm512_cvtepi32_ps(is[0][t]));
            __m512 u1 = _mm512_mul_ps(_mm512_mul_ps(d1, dx), _mm512_cvtepi32_ps(is[1][t]));
            if (NSUB == 8) {
                u0 = _mm512_sub_ps(u0, _mm512_mul_ps(_mm512_mul_ps(n0, dx), _mm512_cvtepi32_ps(ms[0][t])));
                u1 = _mm512_sub_ps(u1, _mm512_mul_ps(_mm512_mul_ps(n1, dx), _mm512_cvtepi32_ps(ms[1][t])));
            }
            fa[0][t] = _mm512_add_ps(fa[0][t], u0);
            fa[1][t] = _mm512_add_ps(fa[1][t], u1);
        }
    }
    for (int t = 0; t < NT; t++) {
        FN(store_rows)(y + (size_t)t * ys, fa[0][t], nrows);
        FN(store_rows)(y + (size_t)t * ys + 16, fa[1][t], nrows - 16);
    }
}

/* ---- F16 / BF16 / F32 weights against f32 activations: lanes are tokens ---------------------
 * The activations are transposed once per matmul into xt[group][k][GEMM_GT] (GEMM_GT tokens a
 * group, zero-padded); a panel's weight rows are only converted to f32, row-major, a k-block at
 * a time (wf[32][GEMM_KB]: no transpose); the micro-kernel broadcasts one weight per row, so 4 rows x
 * NV vectors of 16 tokens cost 4 broadcasts and NV loads per 4*NV FMAs. (The row-lane panel the
 * integer kinds use needs a transposing pack: for F16 it cost ~0.5x of the kernel's time, perf.)
 * k runs in blocks of GEMM_KB so a group's xt block (32 KiB) stays in L1 across the panel's 8 row
 * groups; partial sums wait in yt. Every output is one FMA chain over k in order, so
 * it does not depend on the batch size, the tile or the thread. */
#define GEMM_GT 64    /* tokens per f32 group: 4 zmm                                          */
#define GEMM_KB 128   /* k per block: 128 x 64 tokens x 4 bytes = 32 KiB of xt                 */

/* yt[4 rows][NV vectors] (+)= wf[4 rows][0..kn) . xt[0..kn)[NV vectors]; wf rows ws apart. */
KFI void FN(gemm_f32_tile)(const float *wf, int64_t ws, const float *xt, int64_t kn, const int NV, float *yt, bool first) {
    __m512 acc[4][GEMM_GT / 16];
    GEMM_UNROLL
    for (int r = 0; r < 4; r++) {
        GEMM_UNROLL
        for (int v = 0; v < NV; v++) acc[r][v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(yt + r * GEMM_GT + 16 * v);
    }
    for (int64_t k = 0; k < kn; k++) {
        __m512 xv[GEMM_GT / 16];
        GEMM_UNROLL
        for (int v = 0; v < NV; v++) xv[v] = _mm512_loadu_ps(xt + k * GEMM_GT + 16 * v);
        GEMM_UNROLL
        for (int r = 0; r < 4; r++) {
            const __m512 w = _mm512_set1_ps(wf[r * ws + k]);
            GEMM_UNROLL
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(w, xv[v], acc[r][v]);
        }
    }
    GEMM_UNROLL
    for (int r = 0; r < 4; r++) {
        GEMM_UNROLL
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(yt + r * GEMM_GT + 16 * v, acc[r][v]);
    }
}
