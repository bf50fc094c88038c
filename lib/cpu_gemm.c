/* cpu_gemm.c - the prefill matmul (n > CPU_QDOT_NT tokens): y[t] = W x[t] as a register-blocked
 * GEMM. W (rows, cols) @ x [n][cols] -> y [n][rows].
 *
 * Method: threads take panels of GEMM_PR = 32 weight rows (atomic counter; the outputs do not
 * depend on which thread computed them). For the integer types a panel is unpacked once per
 * matmul into a layout where one zmm lane is one row (cpu_gemm_impl.h) and is then reused from
 * L1/L2 by every token: the micro-kernel keeps 32 rows x 6 tokens (x 4 for K-quants) of
 * accumulators in registers over the whole K loop, so a weight byte is unpacked once per matmul (was: once per 4 tokens) and
 * there are no per-row horizontal sums. Activations are quantized once, as in cpu_matmul.c.
 * F16/BF16/F32 weights (AVX-512) turn it around: lanes are tokens (gemm_f32_panel).
 *
 * Cost model (0.5B, pp128): 46 GMAC per prompt; the kernels do 512 int8 MACs per 8 vpdpbusd
 * plus ~4 ops of scale handling per block and token.
 * Levels: AVX-512 VNNI has every kind; AVX2 only the f32 panel (F16/BF16/F32 weights); the
 * others, and the scalar level, keep the per-row qdot path - the reference the tests compare with.
 * Scratch (panels, quantized activations) comes from the session (cpu_backend.c sizes its matmul
 * scratch with cpu_gemm_scratch_bytes), so a prefill allocates nothing; a caller with a smaller
 * buffer (tests) gets one allocation per call. */
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GEMM_HAVE_X86 1
#endif

#include "cpu.h"
#include "cpu_gemm.h"

#ifdef GEMM_HAVE_X86
#define FN(name) name##_avx512
#define KFN static __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#define KFI static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#include "cpu_gemm_impl.h"

typedef enum gemm_kind { GEMM_NONE, GEMM_Q8A, GEMM_Q8K, GEMM_F32 } gemm_kind;

static gemm_kind gemm_kind_of(uint32_t type) {
    switch (type) {
    case QT_Q8_0: case QT_Q4_0: case QT_Q5_0: case QT_Q4_1: case QT_Q5_1: return GEMM_Q8A;
    case QT_Q4_K: case QT_Q5_K: case QT_Q6_K: return GEMM_Q8K;
    case QT_F16: case QT_BF16: case QT_F32: return GEMM_F32;
    default: return GEMM_NONE;
    }
}

/* Offset subtracted from the stored unsigned weight (0: the type has a min instead). */
static int gemm_offset(uint32_t type) {
    return type == QT_Q8_0 ? 128 : type == QT_Q4_0 ? 8 : type == QT_Q5_0 ? 16 : 0;
}

/* Bytes of one thread's panel for cols columns (64-byte multiples per array). */
#define ALIGN64(v) (((v) + 63) & ~(size_t)63)
/* Bytes of the transposed activations of the AVX-512 f32 kind (gemm_f32_panel). */
static size_t gemm_xt_bytes(int64_t cols, int n) {
    return ALIGN64((size_t)(n + GEMM_GT - 1) / GEMM_GT * GEMM_GT * (size_t)cols * sizeof(float));
}

static size_t gemm_panel_bytes(gemm_kind kind, int64_t cols, int n) {
    const size_t pr = GEMM_PR;
    switch (kind) {
    case GEMM_Q8A: { const size_t nb = (size_t)cols / 32; return ALIGN64(nb * 1024) + 2 * ALIGN64(nb * pr * 4); }
    case GEMM_Q8K: { const size_t nb = (size_t)cols / QK_K; return ALIGN64(nb * 8192) + ALIGN64(nb * 16 * pr * 4) + ALIGN64(nb * 8 * pr * 4) + 2 * ALIGN64(nb * pr * 4); }
    /* AVX2: the row-lane panel; AVX-512: wf (one k-block) and yt */
    case GEMM_F32: return ALIGN64((size_t)(cols > GEMM_KB ? cols : GEMM_KB) * pr * 4) + pr * ((size_t)(n + GEMM_GT - 1) / GEMM_GT) * GEMM_GT * 4;
    default: return 0;
    }
}


/* Writes the nq unpacked bytes q (element order) to one lane of the panel: dword e/4 of the lane
 * goes 64 bytes after dword e/4 - 1 (dst already points at the lane). One 32-bit store per 4
 * weights: the unpacking is SIMD, only this transpose is scalar (measured: the byte-wise
 * version took 3x the kernel's time at n = 128). */
KFI void FN(gemm_put_lane)(uint8_t *dst, const uint8_t *q, int nq) {
    for (int e4 = 0; e4 < nq / 4; e4++) memcpy(dst + 64 * e4, q + 4 * e4, 4);
}

/* 16 packed bytes -> 32 nibbles: low nibbles (elements 0..15) then high nibbles (16..31). */
KFI __m256i FN(gemm_nibbles)(const uint8_t *p) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F));
}
/* bit j of the 32-bit word at p -> 0x10 in byte j (the fifth bit of Q5_0/Q5_1 element j). */
KFI __m256i FN(gemm_bits)(const uint8_t *p) {
    uint32_t b;
    memcpy(&b, p, 4);
    return _mm256_maskz_mov_epi8((__mmask32)b, _mm256_set1_epi8(0x10));
}

/* Unpacks blocks [b0, b1) of weight row `row` (NULL: a padding row, all zero) into lane r of a
 * panel (the integer kinds; the f32 kind only converts rows, gemm_f32_panel). x4 >= 0: the row
 * is row x4 of the repacked group at `row` (repack.c: Q8_0 as block_q8_0x4, the others block by
 * block). */
KFN void FN(gemm_pack_row)(uint32_t type, const void *row, int x4, int64_t cols, int r, uint8_t *panel, int64_t b0, int64_t b1) {
    const gemm_kind kind = gemm_kind_of(type);
    /* block b of this row: of a repacked group (other than Q8_0's layout), block 4b + x4 */
#define PACK_BLOCK(T) ((const T *)row + (x4 >= 0 ? 4 * b + (size_t)x4 : b))
    const int lane = r & 15, rv = r >> 4;
    if (kind == GEMM_Q8A) {
        const size_t nb = (size_t)cols / 32;
        float *dw = (float *)(panel + ALIGN64(nb * 1024)), *mw = dw + ALIGN64(nb * GEMM_PR * 4) / 4;
        uint8_t q[32];
        for (size_t b = (size_t)b0; b < (size_t)b1; b++) {
            __m256i v = _mm256_setzero_si256();
            float d = 0, m = 0;
            if (!row) {
            } else if (type == QT_Q8_0) {
                const block_q8_0x4 *g = (const block_q8_0x4 *)row + b;
                const block_q8_0 *x = (const block_q8_0 *)row + b;
                const int8_t *qs = x4 >= 0 ? g->qs[x4] : x->qs;
                v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)qs), _mm256_set1_epi8((char)0x80));   /* q + 128 */
                d = _cvtsh_ss(x4 >= 0 ? g->d[x4] : x->d);
            } else if (type == QT_Q4_0) {
                const block_q4_0 *x = PACK_BLOCK(block_q4_0);
                v = FN(gemm_nibbles)(x->qs), d = _cvtsh_ss(x->d);
            } else if (type == QT_Q4_1) {
                const block_q4_1 *x = PACK_BLOCK(block_q4_1);
                v = FN(gemm_nibbles)(x->qs), d = _cvtsh_ss(x->d), m = _cvtsh_ss(x->m);
            } else if (type == QT_Q5_0) {
                const block_q5_0 *x = PACK_BLOCK(block_q5_0);
                v = _mm256_or_si256(FN(gemm_nibbles)(x->qs), FN(gemm_bits)(x->qh)), d = _cvtsh_ss(x->d);
            } else {
                const block_q5_1 *x = PACK_BLOCK(block_q5_1);
                v = _mm256_or_si256(FN(gemm_nibbles)(x->qs), FN(gemm_bits)(x->qh)), d = _cvtsh_ss(x->d), m = _cvtsh_ss(x->m);
            }
            _mm256_storeu_si256((__m256i *)q, v);
            FN(gemm_put_lane)(panel + b * 1024 + (size_t)rv * 512 + (size_t)lane * 4, q, 32);
            dw[b * GEMM_PR + (size_t)r] = d;
            mw[b * GEMM_PR + (size_t)r] = m;
        }
        return;
    }
    /* GEMM_Q8K */
    const size_t nb = (size_t)cols / QK_K;
    int32_t *sc = (int32_t *)(panel + ALIGN64(nb * 8192));
    int32_t *mp = sc + ALIGN64(nb * 16 * GEMM_PR * 4) / 4;
    float *dd = (float *)(mp + ALIGN64(nb * 8 * GEMM_PR * 4) / 4), *dm = dd + ALIGN64(nb * GEMM_PR * 4) / 4;
    const int nsub = type == QT_Q6_K ? 16 : 8;
    const __m256i lo4 = _mm256_set1_epi8(0x0F);
    uint8_t q[QK_K];
    for (size_t b = (size_t)b0; b < (size_t)b1; b++) {
        uint8_t *dst = panel + b * 8192 + (size_t)rv * 4096 + (size_t)lane * 4;
        int32_t *scb = sc + b * (size_t)nsub * GEMM_PR + r, *mpb = mp + b * 8 * GEMM_PR + r;
        float d = 0, dmin = 0;
        if (!row) {
            memset(q, 0, sizeof q);
            for (int s = 0; s < nsub; s++) scb[s * GEMM_PR] = 0;
            for (int i = 0; i < 8; i++) mpb[i * GEMM_PR] = 0;
        } else if (type == QT_Q6_K) {
            const block_q6_k *x = PACK_BLOCK(block_q6_k);
            const __m256i hi2 = _mm256_set1_epi8(0x30);
            for (int h = 0; h < 2; h++) {   /* elements 128h + 32g + l (as cpu_qdot_impl.h qb_q6_k) */
                const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h));
                const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h + 32));
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
                uint8_t *o = q + 128 * h;
                _mm256_storeu_si256((__m256i *)o, _mm256_or_si256(_mm256_and_si256(ql0, lo4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), hi2)));
                _mm256_storeu_si256((__m256i *)(o + 32), _mm256_or_si256(_mm256_and_si256(ql1, lo4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), hi2)));
                _mm256_storeu_si256((__m256i *)(o + 64), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), lo4), _mm256_and_si256(qh, hi2)));
                _mm256_storeu_si256((__m256i *)(o + 96), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), lo4),
                                                                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), hi2)));
            }
            for (int s = 0; s < 16; s++) scb[s * GEMM_PR] = x->scales[s];
            for (int i = 0; i < 8; i++)
                mpb[i * GEMM_PR] = (int32_t)((uint32_t)(uint16_t)x->scales[2 * i] | ((uint32_t)(uint16_t)x->scales[2 * i + 1] << 16));
            d = _cvtsh_ss(x->d);
        } else {
            const uint8_t *scales, *qs, *qhp = NULL;
            if (type == QT_Q4_K) {
                const block_q4_k *x = PACK_BLOCK(block_q4_k);
                scales = x->scales, qs = x->qs, d = _cvtsh_ss(x->d), dmin = _cvtsh_ss(x->dmin);
            } else {
                const block_q5_k *x = PACK_BLOCK(block_q5_k);
                scales = x->scales, qs = x->qs, qhp = x->qh, d = _cvtsh_ss(x->d), dmin = _cvtsh_ss(x->dmin);
            }
            const __m256i qh = qhp ? _mm256_loadu_si256((const __m256i *)qhp) : _mm256_setzero_si256();
            for (int j2 = 0; j2 < 4; j2++) {   /* sub-blocks 2*j2 (low nibbles), 2*j2+1 (high) */
                const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * j2));
                __m256i a = _mm256_and_si256(raw, lo4), c = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
                if (qhp) {   /* bit j of qh[l]: the fifth bit of element l of sub-block j */
                    const __m256i b4 = _mm256_set1_epi8(0x10);
                    a = _mm256_or_si256(a, _mm256_maskz_mov_epi8(_mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(1 << (2 * j2)))), b4));
                    c = _mm256_or_si256(c, _mm256_maskz_mov_epi8(_mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(2 << (2 * j2)))), b4));
                }
                _mm256_storeu_si256((__m256i *)(q + 64 * j2), a);
                _mm256_storeu_si256((__m256i *)(q + 64 * j2 + 32), c);
            }
            for (int j = 0; j < 8; j++) {
                int s, m;
                quant_k4_scale_min(j, scales, &s, &m);
                scb[j * GEMM_PR] = s;
                mpb[j * GEMM_PR] = (int32_t)((uint32_t)m | ((uint32_t)m << 16));
            }
        }
        FN(gemm_put_lane)(dst, q, QK_K);
        dd[b * GEMM_PR + (size_t)r] = d;
        dm[b * GEMM_PR + (size_t)r] = dmin;
    }
}
#undef PACK_BLOCK

typedef struct gemm_job {
    const weight *W;
    gemm_kind kind;
    cpu_isa isa;              /* AVX512: every kind; AVX2: GEMM_F32 only                      */
    const void *x;            /* quantized rows xs bytes apart, or the f32 rows (AVX2 f32)    */
    size_t xs;
    const int32_t *aux;       /* [n][cols/32] OFF*sum(qx) for Q8A types                       */
    const float *xt;          /* AVX-512 f32 kind: [groups][cols][GEMM_GT] transposed x       */
    cpu_dequant_fn to_f32;    /* AVX-512 f32 kind: the level's F16/BF16/F32 row converter     */
    float *y;                 /* [n][rows]                                                    */
    int n;
    uint8_t *panels;          /* one panel per thread, panel_bytes apart                     */
    size_t panel_bytes;
    int64_t n_panels;
    atomic_llong next;
} gemm_job;

/* NT as a compile-time constant for each token-tail size. */
KFN void FN(gemm_q8a_run)(const gemm_job *j, const uint8_t *panel, int t0, int nt, int nrows, float *y) {
    const int64_t cols = j->W->cols;
    const size_t nb = (size_t)cols / 32;
    const float *dw = (const float *)(panel + ALIGN64(nb * 1024)), *mw = dw + ALIGN64(nb * GEMM_PR * 4) / 4;
    const void *x = (const char *)j->x + (size_t)t0 * j->xs;
    const int32_t *aux = j->aux + (size_t)t0 * nb;
    const int min = gemm_offset(j->W->type) == 0;
    const int64_t ys = j->W->rows;
#define Q8A_CASE(NT)                                                                                        \
    if (min) FN(gemm_q8a_tile)(panel, dw, mw, (int)nb, x, j->xs, aux, (int)nb, NT, 1, y, ys, nrows);        \
    else FN(gemm_q8a_tile)(panel, dw, mw, (int)nb, x, j->xs, aux, (int)nb, NT, 0, y, ys, nrows);
    switch (nt) {
    case 1: Q8A_CASE(1) break;
    case 2: Q8A_CASE(2) break;
    case 3: Q8A_CASE(3) break;
    case 4: Q8A_CASE(4) break;
    case 5: Q8A_CASE(5) break;
    default: Q8A_CASE(6) break;
    }
#undef Q8A_CASE
}

KFN void FN(gemm_q8k_run)(const gemm_job *j, const uint8_t *panel, int t0, int nt, int nrows, float *y) {
    const size_t nb = (size_t)j->W->cols / QK_K;
    const int32_t *sc = (const int32_t *)(panel + ALIGN64(nb * 8192));
    const int32_t *mp = sc + ALIGN64(nb * 16 * GEMM_PR * 4) / 4;
    const float *dd = (const float *)(mp + ALIGN64(nb * 8 * GEMM_PR * 4) / 4), *dm = dd + ALIGN64(nb * GEMM_PR * 4) / 4;
    const void *x = (const char *)j->x + (size_t)t0 * j->xs;
    const int q6 = j->W->type == QT_Q6_K;
    const int64_t ys = j->W->rows;
#define Q8K_CASE(NT)                                                                                    \
    if (q6) FN(gemm_q8k_tile)(panel, sc, mp, dd, dm, (int)nb, x, j->xs, NT, 16, y, ys, nrows);          \
    else FN(gemm_q8k_tile)(panel, sc, mp, dd, dm, (int)nb, x, j->xs, NT, 8, y, ys, nrows);
    switch (nt) {
    case 1: Q8K_CASE(1) break;
    case 2: Q8K_CASE(2) break;
    case 3: Q8K_CASE(3) break;
    default: Q8K_CASE(4) break;
    }
#undef Q8K_CASE
}

/* One panel of the f32 kind (AVX-512). k-blocks outermost: a block of the panel's rows is
 * converted to f32 (wf[32][GEMM_KB], 16 KiB: stays in L1) and multiplied with every token
 * group's xt block, partial sums in yt[group][32][GEMM_GT]. (Converting whole rows first needed
 * 32 x cols x 4 bytes - 1.1 MiB for a 1.5B ffn_down, past L2 - re-read for every group.) The
 * weight rows of the thread's next panel (from row rn; -1: none) are prefetched into L2 during
 * the compute, spread over the k-blocks: the conversion otherwise stalls on memory (perf: ~12% of
 * this function's samples on the first load of each F16 row, 0.5B model). */
KFN void FN(gemm_f32_panel)(const gemm_job *j, uint8_t *panel, int64_t r0, int nrows, int64_t rn) {
    const weight *W = j->W;
    const int64_t cols = W->cols, ys = W->rows;
    const int groups = (j->n + GEMM_GT - 1) / GEMM_GT;
    const char *pf = NULL, *pf_end = NULL;
    size_t pf_step = 0;
    if (rn >= 0) {
        const int64_t nn = W->rows - rn < GEMM_PR ? W->rows - rn : GEMM_PR;
        pf = (const char *)W->data + (uint64_t)rn * W->row_bytes;
        pf_end = pf + (uint64_t)nn * W->row_bytes;
        const size_t steps = (size_t)((cols + GEMM_KB - 1) / GEMM_KB);
        pf_step = ((size_t)(pf_end - pf) / steps + 63) & ~(size_t)63;
    }
    float *wf = (float *)panel, *yt = (float *)(panel + GEMM_PR * GEMM_KB * 4);
    const int nrg = (nrows + 3) / 4;
    const uint64_t ebytes = W->row_bytes / (uint64_t)cols;   /* 2 (F16, BF16) or 4 (F32) */
    for (int64_t k0 = 0; k0 < cols; k0 += GEMM_KB) {
        const int64_t kn = cols - k0 < GEMM_KB ? cols - k0 : GEMM_KB;
        for (int r = 0; r < 4 * nrg; r++) {
            if (r < nrows) j->to_f32((const char *)W->data + (uint64_t)(r0 + r) * W->row_bytes + (uint64_t)k0 * ebytes, wf + (size_t)r * GEMM_KB, kn);
            else memset(wf + (size_t)r * GEMM_KB, 0, (size_t)kn * sizeof(float));   /* padding rows */
        }
        for (size_t o = 0; pf && o < pf_step && pf < pf_end; o += 64, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
        for (int gi = 0; gi < groups; gi++) {
            const int nt = j->n - gi * GEMM_GT < GEMM_GT ? j->n - gi * GEMM_GT : GEMM_GT;
            const float *xt = j->xt + ((size_t)gi * (size_t)cols + (size_t)k0) * GEMM_GT;
            for (int g = 0; g < nrg; g++) {
                const float *w = wf + (size_t)g * 4 * GEMM_KB;
                float *y4 = yt + ((size_t)gi * GEMM_PR + (size_t)g * 4) * GEMM_GT;
                switch ((nt + 15) / 16) {
                case 1: FN(gemm_f32_tile)(w, GEMM_KB, xt, kn, 1, y4, k0 == 0); break;
                case 2: FN(gemm_f32_tile)(w, GEMM_KB, xt, kn, 2, y4, k0 == 0); break;
                case 3: FN(gemm_f32_tile)(w, GEMM_KB, xt, kn, 3, y4, k0 == 0); break;
                default: FN(gemm_f32_tile)(w, GEMM_KB, xt, kn, 4, y4, k0 == 0); break;
                }
            }
        }
    }
    for (int t = 0; t < j->n; t++) {
        const float *src = yt + ((size_t)(t / GEMM_GT) * GEMM_PR) * GEMM_GT + (size_t)(t % GEMM_GT);
        for (int r = 0; r < nrows; r++) j->y[(size_t)t * (size_t)ys + (size_t)(r0 + r)] = src[(size_t)r * GEMM_GT];
    }
}

/* xt[g][k][l] = x[g*GEMM_GT + l][k] (0 past the last token); token groups split over threads. */
typedef struct gemm_xt_job {
    const float *x;
    float *xt;
    int64_t cols;
    int n;
} gemm_xt_job;

static void gemm_xt_worker(void *arg, int ith, int nth) {
    const gemm_xt_job *j = arg;
    const int groups = (j->n + GEMM_GT - 1) / GEMM_GT;
    /* (group, 16-column chunk) units, so one group of 64 tokens still uses every thread */
    const int64_t chunks = (j->cols + 15) / 16, units = (int64_t)groups * chunks;
    for (int64_t u = ith; u < units; u += nth) {
        const int g = (int)(u / chunks);
        const int64_t c0 = (u % chunks) * 16, c1 = c0 + 16 < j->cols ? c0 + 16 : j->cols;
        float *dst = j->xt + (size_t)g * (size_t)j->cols * GEMM_GT;
        for (int l = 0; l < GEMM_GT; l++) {
            const int t = g * GEMM_GT + l;
            const float *src = j->x + (size_t)t * (size_t)j->cols;
            for (int64_t k = c0; k < c1; k++) dst[k * GEMM_GT + l] = t < j->n ? src[k] : 0.0f;
        }
    }
}

/* ---- AVX2 + FMA + F16C: the f32 panel only. The integer kinds are not done at this level yet
 * (without VNNI each 4 products cost maddubs + madd + add, and Q8_0's q + 128 would saturate
 * maddubs); they keep the per-row path. Same panel layout; a micro-tile is 16 rows (2 ymm) x 6
 * tokens: 12 accumulators of the 16 ymm registers. */
#define KFN2 static __attribute__((target("avx2,fma,f16c")))
#define KFI2 static inline __attribute__((always_inline, target("avx2,fma,f16c")))
#define GEMM_NT2 6

KFN2 void gemm_pack_f32_avx2(uint32_t type, const void *row, int r, uint8_t *panel, int64_t c0, int64_t c1) {
    float *wf = (float *)panel + r;
    float v[8];
    int64_t k = c0;
    for (; row && k + 8 <= c1; k += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + k));
        _mm256_storeu_ps(v, type == QT_F32 ? _mm256_loadu_ps((const float *)row + k)
                            : type == QT_F16 ? _mm256_cvtph_ps(h)
                                             : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
        for (int i = 0; i < 8; i++) wf[(k + i) * GEMM_PR] = v[i];
    }
    for (; k < c1; k++)
        wf[k * GEMM_PR] = !row ? 0.0f : type == QT_F32 ? ((const float *)row)[k]
                        : type == QT_F16 ? _cvtsh_ss(((const uint16_t *)row)[k]) : bf16_to_fp32(((const uint16_t *)row)[k]);
}

/* Stores the 8 row lanes of v to y[0..n) (n may be <= 0 or < 8: the panel's row tail). */
KFI2 void gemm_store8_avx2(float *y, __m256 v, int n) {
    if (n >= 8) _mm256_storeu_ps(y, v);
    else if (n > 0) _mm256_maskstore_ps(y, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), v);
}

KFI2 void gemm_f32_tile_avx2(const float *wf, int64_t cols, const float *x, size_t xs, const int NT, float *y, int64_t ys,
                             int nrows) {
    const size_t xf = xs / sizeof(float);
    for (int h = 0; h < 2; h++) {   /* rows 16h .. 16h+15 of the panel */
        __m256 fa[2][GEMM_NT2];
        GEMM_UNROLL
        for (int t = 0; t < NT; t++) fa[0][t] = fa[1][t] = _mm256_setzero_ps();
        for (int64_t k = 0; k < cols; k++) {
            const __m256 w0 = _mm256_loadu_ps(wf + k * GEMM_PR + 16 * h), w1 = _mm256_loadu_ps(wf + k * GEMM_PR + 16 * h + 8);
            GEMM_UNROLL
            for (int t = 0; t < NT; t++) {
                const __m256 xv = _mm256_broadcast_ss(x + (size_t)t * xf + (size_t)k);
                fa[0][t] = _mm256_fmadd_ps(w0, xv, fa[0][t]);
                fa[1][t] = _mm256_fmadd_ps(w1, xv, fa[1][t]);
            }
        }
        GEMM_UNROLL
        for (int t = 0; t < NT; t++) {
            gemm_store8_avx2(y + (size_t)t * ys + 16 * h, fa[0][t], nrows - 16 * h);
            gemm_store8_avx2(y + (size_t)t * ys + 16 * h + 8, fa[1][t], nrows - 16 * h - 8);
        }
    }
}

KFN2 void gemm_f32_run_avx2(const gemm_job *j, const uint8_t *panel, int t0, int nt, int nrows, float *y) {
    const float *x = (const float *)((const char *)j->x + (size_t)t0 * j->xs);
    const float *wf = (const float *)panel;
    const int64_t cols = j->W->cols, ys = j->W->rows;
    switch (nt) {
    case 1: gemm_f32_tile_avx2(wf, cols, x, j->xs, 1, y, ys, nrows); break;
    case 2: gemm_f32_tile_avx2(wf, cols, x, j->xs, 2, y, ys, nrows); break;
    case 3: gemm_f32_tile_avx2(wf, cols, x, j->xs, 3, y, ys, nrows); break;
    case 4: gemm_f32_tile_avx2(wf, cols, x, j->xs, 4, y, ys, nrows); break;
    case 5: gemm_f32_tile_avx2(wf, cols, x, j->xs, 5, y, ys, nrows); break;
    default: gemm_f32_tile_avx2(wf, cols, x, j->xs, 6, y, ys, nrows); break;
    }
}

/* Packing prefetches the source chunk of the row this many rows ahead: the 32 short streams
 * defeat the hardware prefetcher (perf, 0.5B models on the loaded machine: packing time / kernel
 * time 0.58 -> 0.35 for Q4_K_M and 0.59 -> 0.48 for F16 with 2-4 rows ahead; 1 row: 0.41 / 0.55). */
#define GEMM_PF_ROWS 4

static void gemm_worker(void *arg, int ith, int nth) {
    gemm_job *j = arg;
    (void)nth;
    const weight *W = j->W;
    uint8_t *panel = j->panels + (size_t)ith * j->panel_bytes;
    const bool avx2 = j->isa == CPU_ISA_AVX2;
    const int step = avx2 ? GEMM_NT2 : j->kind == GEMM_Q8A ? GEMM_NTA : GEMM_NTK;
    /* The panel is packed in chunks of ~32 KiB for all 32 rows: the dword stores of the transpose
     * stay in L1 (row by row over a whole 150-600 KiB panel they missed it: 2x slower), and each
     * row is still read in runs of 0.5-0.7 KiB (8 KiB chunks, 32 short streams, made the reads
     * latency-bound: pack time 1.5x the F16 kernel's in the 0.5B model, 0.6x with 32 KiB, and
     * ~0.5x with the prefetch below). */
    const int64_t units = j->kind == GEMM_F32 ? W->cols : j->kind == GEMM_Q8A ? W->cols / 32 : W->cols / QK_K;
    const int64_t chunk = j->kind == GEMM_F32 ? 256 : j->kind == GEMM_Q8A ? 32 : 4;
    const uint64_t unit_bytes = W->row_bytes / (uint64_t)units;
    for (;;) {
        const int64_t p = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (p >= j->n_panels) break;
        const int64_t r0 = p * GEMM_PR;
        const int nrows = W->rows - r0 < GEMM_PR ? (int)(W->rows - r0) : GEMM_PR;
        if (j->kind == GEMM_F32 && !avx2) {
            /* claim the next panel now, so its rows can be prefetched during this one */
            for (int64_t q = p;;) {
                const int64_t qn = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
                const int64_t q0 = q * GEMM_PR;
                FN(gemm_f32_panel)(j, panel, q0, W->rows - q0 < GEMM_PR ? (int)(W->rows - q0) : GEMM_PR,
                                   qn < j->n_panels ? qn * GEMM_PR : -1);
                if (qn >= j->n_panels) return;
                q = qn;
            }
        }
        for (int64_t c0 = 0; c0 < units; c0 += chunk)
            for (int r = 0; r < GEMM_PR; r++) {
                /* a repacked row: its group's base (panels start at a multiple of 4 rows) */
                const int x4 = W->x4 ? r % 4 : -1;
                const void *row = r < nrows ? (const char *)W->data + (uint64_t)(r0 + (x4 >= 0 ? r - x4 : r)) * W->row_bytes : NULL;
                const int64_t c1 = c0 + chunk < units ? c0 + chunk : units;
                /* the chunk of the row GEMM_PF_ROWS ahead (wrapping into the next chunk); of a
                 * repacked group, the chunk of all 4 rows, at its first row */
                const int rp = (r + GEMM_PF_ROWS) % GEMM_PR;
                const int64_t cp = r + GEMM_PF_ROWS < GEMM_PR ? c0 : c0 + chunk;
                if (rp < nrows && cp < units && (x4 < 0 || rp % 4 == 0)) {
                    const int64_t cp1 = cp + chunk < units ? cp + chunk : units;
                    const uint64_t ub = x4 >= 0 ? 4 * unit_bytes : unit_bytes;
                    const char *src = (const char *)W->data + (uint64_t)(r0 + rp) * W->row_bytes + (uint64_t)cp * ub;
                    for (uint64_t o = 0; o < (uint64_t)(cp1 - cp) * ub; o += 64) _mm_prefetch(src + o, _MM_HINT_T0);
                }
                if (avx2) gemm_pack_f32_avx2(W->type, row, r, panel, c0, c1);
                else FN(gemm_pack_row)(W->type, row, x4, W->cols, r, panel, c0, c1);
            }
        for (int t0 = 0; t0 < j->n; t0 += step) {
            const int nt = j->n - t0 < step ? j->n - t0 : step;
            float *y = j->y + (size_t)t0 * W->rows + r0;
            if (avx2) gemm_f32_run_avx2(j, panel, t0, nt, nrows, y);
            else if (j->kind == GEMM_Q8A) FN(gemm_q8a_run)(j, panel, t0, nt, nrows, y);
            else FN(gemm_q8k_run)(j, panel, t0, nt, nrows, y);
        }
    }
}

typedef struct gemm_quant_job {
    const cpu_kernels *k;
    cpu_act act;
    const float *x;
    int64_t cols;
    void *q;
    size_t xs;
    int32_t *aux;
    int off, n;
} gemm_quant_job;

/* Quantizes the activation rows (tokens split over the threads) and, for the offset types, the
 * per-block OFF*sum(qx) the kernel subtracts. */
static void gemm_quant_worker(void *arg, int ith, int nth) {
    gemm_quant_job *j = arg;
    const size_t nb = (size_t)j->cols / 32;
    for (int t = ith; t < j->n; t += nth) {
        void *qr = (char *)j->q + (size_t)t * j->xs;
        j->k->quant[j->act](j->x + (size_t)t * j->cols, qr, j->cols);
        if (j->act != CPU_ACT_Q8A) continue;
        const cpu_q8a *qb = qr;
        for (size_t b = 0; b < nb; b++) {
            int s = 0;
            for (int l = 0; l < 32; l++) s += qb[b].qs[l];
            j->aux[(size_t)t * nb + b] = j->off * s;
        }
    }
}
#endif /* GEMM_HAVE_X86 */

bool cpu_gemm_supports(const cpu_kernels *k, uint32_t type) {
#ifdef GEMM_HAVE_X86
    if (!k || type >= QT_COUNT) return false;
    return k->isa == CPU_ISA_AVX512 ? gemm_kind_of(type) != GEMM_NONE : k->isa == CPU_ISA_AVX2 && gemm_kind_of(type) == GEMM_F32;
#else
    (void)k;
    (void)type;
    return false;
#endif
}

bool cpu_gemm_use(const cpu_kernels *k, uint32_t type, int n) {
    if (!cpu_gemm_supports(k, type)) return false;
    return n >= (cpu_act_format(type) == CPU_ACT_F32 ? 10 : CPU_QDOT_NT + 1);
}

bool cpu_gemm_is_float(uint32_t type) { return type == QT_F16 || type == QT_BF16 || type == QT_F32; }

size_t cpu_gemm_scratch_bytes(int64_t max_cols, int n, int nth, bool float_weights) {
    size_t best = 0;
#ifdef GEMM_HAVE_X86
    static const gemm_kind kinds[] = {GEMM_Q8A, GEMM_Q8K, GEMM_F32};
    static const cpu_act acts[] = {CPU_ACT_Q8A, CPU_ACT_Q8K, CPU_ACT_F32};
    for (int i = 0; i < (float_weights ? 3 : 2); i++) {
        const size_t xs = acts[i] == CPU_ACT_F32 ? 0 : ALIGN64(cpu_act_row_bytes(acts[i], max_cols));
        const size_t xt = acts[i] == CPU_ACT_F32 ? gemm_xt_bytes(max_cols, n) : 0;
        const size_t aux = acts[i] == CPU_ACT_Q8A ? ALIGN64((size_t)n * (size_t)(max_cols / 32) * 4) : 0;
        const size_t b = gemm_panel_bytes(kinds[i], max_cols, n) * (size_t)nth + xs * (size_t)n + aux + xt;
        if (b > best) best = b;
    }
#else
    (void)max_cols, (void)n, (void)nth, (void)float_weights;
#endif
    return best;
}

coder_status cpu_gemm(threadpool *tp, const cpu_kernels *k, const weight *W, const float *x, int n, float *y,
                      void *scratch, size_t scratch_bytes) {
    if (!cpu_gemm_supports(k, W->type))
        return coder_fail(CODER_ERR_UNSUPPORTED, "gemm: no %s kernel for %s", k ? k->name : "?", quant_type_name(W->type));
#ifdef GEMM_HAVE_X86
    const gemm_kind kind = gemm_kind_of(W->type);
    const cpu_act act = cpu_act_format(W->type);
    const int64_t blk = act == CPU_ACT_Q8A ? 32 : act == CPU_ACT_Q8K ? QK_K : 1;
    if (n < 1) return coder_fail(CODER_ERR_INTERNAL, "gemm: %d tokens", n);
    if (W->cols % blk != 0)
        return coder_fail(CODER_ERR_FORMAT, "gemm: %lld columns of %s are not a multiple of %lld", (long long)W->cols,
                          quant_type_name(W->type), (long long)blk);
    const int nth = threadpool_size(tp);
    const size_t pb = gemm_panel_bytes(kind, W->cols, n);
    const size_t xs = act == CPU_ACT_F32 ? 0 : ALIGN64(cpu_act_row_bytes(act, W->cols));
    const size_t xt_bytes = act == CPU_ACT_F32 && k->isa == CPU_ISA_AVX512 ? gemm_xt_bytes(W->cols, n) : 0;
    const size_t aux_bytes = act == CPU_ACT_Q8A ? ALIGN64((size_t)n * (size_t)(W->cols / 32) * 4) : 0;
    /* panels, quantized rows, aux: the session's scratch (sized by cpu_gemm_scratch_bytes), or one
     * allocation for this call when the caller has none that large */
    const size_t bytes = pb * (size_t)nth + xs * (size_t)n + aux_bytes + xt_bytes;
    const bool own = !scratch || scratch_bytes < bytes || (uintptr_t)scratch % 64 != 0;
    uint8_t *buf = own ? coder_malloc_aligned(bytes, 64) : scratch;
    if (!buf) return coder_fail(CODER_ERR_NOMEM, "gemm: %zu bytes of scratch", bytes);
    gemm_job j = {.W = W, .kind = kind, .isa = k->isa, .y = y, .n = n, .panels = buf, .panel_bytes = pb};
    j.n_panels = (W->rows + GEMM_PR - 1) / GEMM_PR;
    atomic_init(&j.next, 0);
    if (act == CPU_ACT_F32) {
        j.x = x;
        j.xs = (size_t)W->cols * sizeof(float);
        if (xt_bytes) {
            gemm_xt_job xj = {.x = x, .xt = (float *)(buf + pb * (size_t)nth), .cols = W->cols, .n = n};
            threadpool_run(tp, gemm_xt_worker, &xj);
            j.xt = xj.xt;
            j.to_f32 = k->dequant[W->type];
        }
    } else {
        uint8_t *q = buf + pb * (size_t)nth;
        gemm_quant_job qj = {.k = k, .act = act, .x = x, .cols = W->cols, .q = q, .xs = xs,
                             .aux = (int32_t *)(q + xs * (size_t)n), .off = gemm_offset(W->type), .n = n};
        threadpool_run_n(tp, n, gemm_quant_worker, &qj);
        j.x = q;
        j.xs = xs;
        j.aux = qj.aux;
    }
    threadpool_run_n(tp, j.n_panels < nth ? (int)j.n_panels : nth, gemm_worker, &j);
    if (own) coder_mfree_aligned(buf);
    return CODER_OK;
#else
    return CODER_ERR_UNSUPPORTED;
#endif
}
