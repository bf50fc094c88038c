/* cpu_attention.c - causal grouped-query attention over the KV cache, and KV writes.
 *
 * One task = one (token, head): scores s_p = q_h . K_g[p] / sqrt(head_dim) for p <= pos, softmax,
 * out_h = sum_p a_p V_g[p], with g = h / (n_heads / n_kv_heads) (consecutive heads share a KV
 * head). Tasks are handed out dynamically over the pool; each thread keeps its scores in its own
 * n_ctx-float scratch. Cost per token is O(pos * head_dim * n_heads): memory bound on the cache.
 * Cache rows are F16, F32, Q8_0, or Q8_0 K with Q4_0 V (kv_cache.h); a quantized row is dequantized
 * inside the dot/axpy. */
#include <math.h>
#include <stdatomic.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ATT_X86 1
#endif

#include "cpu.h"

/* ---- Q8_0 cache rows: the dequantization is fused into the dot product and the axpy ---------
 * A row segment of n values (n % 32 == 0) is n/32 blocks {f16 d; int8 qs[32]}, value = d * qs[j]. */

/* q (n,) . row (n,) = sum_b d_b * sum_j q[32b+j] * qs_b[j] */
static float att_dot_q8_0(const block_q8_0 *x, const float *q, int n) {
    float s = 0;
    for (int b = 0; b < n / 32; b++) {
        float acc[8] = {0};   /* 8 partial sums: lets the compiler vectorize without reassociating */
        for (int j = 0; j < 32; j += 8)
            for (int i = 0; i < 8; i++) acc[i] += q[b * 32 + j + i] * (float)x[b].qs[j + i];
        float bs = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        s += cpu_f16_to_f32(x[b].d) * bs;
    }
    return s;
}

/* y (n,) += a * row (n,) */
static void att_axpy_q8_0(float *y, float a, const block_q8_0 *x, int n) {
    for (int b = 0; b < n / 32; b++) {
        const float ad = a * cpu_f16_to_f32(x[b].d);
        for (int j = 0; j < 32; j++) y[b * 32 + j] += ad * (float)x[b].qs[j];
    }
}

/* Q4_0 V rows: blocks {f16 d; u8 qs[16]}, value j = d * ((qs[j] & 15) - 8), value j+16 = d * ((qs[j] >> 4) - 8) */
static void att_axpy_q4_0(float *y, float a, const block_q4_0 *x, int n) {
    for (int b = 0; b < n / 32; b++) {
        const float ad = a * cpu_f16_to_f32(x[b].d);
        float *yb = y + b * 32;
        for (int j = 0; j < 16; j++) {
            yb[j] += ad * (float)((x[b].qs[j] & 15) - 8);
            yb[j + 16] += ad * (float)((x[b].qs[j] >> 4) - 8);
        }
    }
}

#ifdef ATT_X86
__attribute__((target("avx2,fma"))) static void att_axpy_q4_0_avx2(float *y, float a, const block_q4_0 *x, int n) {
    const __m128i lo_mask = _mm_set1_epi8(15), eight = _mm_set1_epi8(8);
    for (int b = 0; b < n / 32; b++) {
        const __m256 ad = _mm256_set1_ps(a * cpu_f16_to_f32(x[b].d));
        const __m128i q = _mm_loadu_si128((const __m128i *)x[b].qs);
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(q, lo_mask), eight);                      /* values 0..15  */
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), lo_mask), eight);   /* values 16..31 */
        float *yb = y + b * 32;
        const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int k = 0; k < 4; k++) {
            const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k]));
            _mm256_storeu_ps(yb + 8 * k, _mm256_fmadd_ps(ad, v, _mm256_loadu_ps(yb + 8 * k)));
        }
    }
}

__attribute__((target("avx2,fma"))) static inline __m256 att_q8_load8(const int8_t *qs) {
    int64_t v;
    memcpy(&v, qs, 8);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(v)));
}

__attribute__((target("avx2,fma"))) static float att_dot_q8_0_avx2(const block_q8_0 *x, const float *q, int n) {
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < n / 32; b++) {
        const float *qb = q + b * 32;
        __m256 bs = _mm256_mul_ps(_mm256_loadu_ps(qb), att_q8_load8(x[b].qs));
        bs = _mm256_fmadd_ps(_mm256_loadu_ps(qb + 8), att_q8_load8(x[b].qs + 8), bs);
        bs = _mm256_fmadd_ps(_mm256_loadu_ps(qb + 16), att_q8_load8(x[b].qs + 16), bs);
        bs = _mm256_fmadd_ps(_mm256_loadu_ps(qb + 24), att_q8_load8(x[b].qs + 24), bs);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(cpu_f16_to_f32(x[b].d)), bs, acc);
    }
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

__attribute__((target("avx2,fma"))) static void att_axpy_q8_0_avx2(float *y, float a, const block_q8_0 *x, int n) {
    for (int b = 0; b < n / 32; b++) {
        const __m256 ad = _mm256_set1_ps(a * cpu_f16_to_f32(x[b].d));
        float *yb = y + b * 32;
        for (int j = 0; j < 32; j += 8)
            _mm256_storeu_ps(yb + j, _mm256_fmadd_ps(ad, att_q8_load8(x[b].qs + j), _mm256_loadu_ps(yb + j)));
    }
}
#endif

typedef struct att_job {
    const cpu_attention_args *a;
    atomic_int next;
    int n_tasks;
} att_job;

static void att_task(const cpu_attention_args *a, int task, float *scores) {
    const int t = task / a->n_heads, h = task % a->n_heads;
    const int hd = a->head_dim, g = h / (a->n_heads / a->n_kv_heads);
    const int32_t pos = a->pos0 + t;
    const kv_cache *kv = a->kv;
    const float *q = a->q + ((size_t)t * a->n_heads + h) * hd;
    float *out = a->out + ((size_t)t * a->n_heads + h) * hd;
    const float scale = a->scale;
    const size_t off = (size_t)g * hd;
    /* keys p0..pos; scores[i] belongs to position p0 + i */
    const int32_t p0 = a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0;
    const bool q8 = kv->type == CODER_KV_Q8_0 || kv->type == CODER_KV_Q8_0_Q4_0;   /* K rows */
#ifdef ATT_X86
    const bool avx2 = a->k->isa != CPU_ISA_SCALAR;
#else
    const bool avx2 = false;
#endif
    const size_t qoff = off / 32;   /* Q8_0: the head's first block in the row */
    if (q8) {
        for (int32_t p = p0; p <= pos; p++) {
            const block_q8_0 *row = (const block_q8_0 *)kv_cache_k_row(kv, a->layer, p) + qoff;
#ifdef ATT_X86
            if (avx2) { scores[p - p0] = att_dot_q8_0_avx2(row, q, hd) * scale; continue; }
#endif
            scores[p - p0] = att_dot_q8_0(row, q, hd) * scale;
        }
    } else if (kv->type == CODER_KV_F16) {
        for (int32_t p = p0; p <= pos; p++)
            scores[p - p0] = a->k->dot_f16((const uint16_t *)kv_cache_k_row(kv, a->layer, p) + off, q, hd) * scale;
    } else {
        for (int32_t p = p0; p <= pos; p++)
            scores[p - p0] = a->k->dot((const float *)kv_cache_k_row(kv, a->layer, p) + off, q, hd) * scale;
    }
    cpu_softmax(scores, pos - p0 + 1);
    memset(out, 0, (size_t)hd * sizeof *out);
    if (kv->type == CODER_KV_Q8_0_Q4_0) {
        for (int32_t p = p0; p <= pos; p++) {
            const block_q4_0 *row = (const block_q4_0 *)kv_cache_v_row(kv, a->layer, p) + qoff;
#ifdef ATT_X86
            if (avx2) { att_axpy_q4_0_avx2(out, scores[p - p0], row, hd); continue; }
#endif
            att_axpy_q4_0(out, scores[p - p0], row, hd);
        }
    } else if (q8) {
        for (int32_t p = p0; p <= pos; p++) {
            const block_q8_0 *row = (const block_q8_0 *)kv_cache_v_row(kv, a->layer, p) + qoff;
#ifdef ATT_X86
            if (avx2) { att_axpy_q8_0_avx2(out, scores[p - p0], row, hd); continue; }
#endif
            att_axpy_q8_0(out, scores[p - p0], row, hd);
        }
    } else if (kv->type == CODER_KV_F16) {
        for (int32_t p = p0; p <= pos; p++)
            a->k->axpy_f16(out, scores[p - p0], (const uint16_t *)kv_cache_v_row(kv, a->layer, p) + off, hd);
    } else {
        for (int32_t p = p0; p <= pos; p++)
            a->k->axpy(out, scores[p - p0], (const float *)kv_cache_v_row(kv, a->layer, p) + off, hd);
    }
}

static void att_worker(void *arg, int ith, int nth) {
    att_job *j = arg;
    (void)nth;
    float *scores = j->a->scratch + (size_t)ith * (size_t)j->a->kv->n_ctx;
    for (;;) {
        int task = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (task >= j->n_tasks) break;
        att_task(j->a, task, scores);
    }
}

void cpu_attention(threadpool *tp, const cpu_attention_args *a) {
    att_job j = {.a = a, .n_tasks = a->n * a->n_heads};
    atomic_init(&j.next, 0);
    threadpool_run_n(tp, j.n_tasks, att_worker, &j);
}

void cpu_kv_write(const cpu_kernels *k, kv_cache *kv, int layer, const float *kr, const float *vr, int n, int32_t pos0) {
    const int w = kv->width;
    for (int t = 0; t < n; t++) {
        if (kv->type == CODER_KV_Q8_0 || kv->type == CODER_KV_Q8_0_Q4_0) {   /* llama.cpp's Q8_0 / Q4_0 rounding */
            (void)quantize_row_ref(QT_Q8_0, kr + (size_t)t * w, kv_cache_k_row(kv, layer, pos0 + t), w);
            (void)quantize_row_ref(kv->type == CODER_KV_Q8_0 ? QT_Q8_0 : QT_Q4_0, vr + (size_t)t * w,
                                   kv_cache_v_row(kv, layer, pos0 + t), w);
        } else if (kv->type == CODER_KV_F16) {
            k->to_f16(kr + (size_t)t * w, kv_cache_k_row(kv, layer, pos0 + t), w);
            k->to_f16(vr + (size_t)t * w, kv_cache_v_row(kv, layer, pos0 + t), w);
        } else {
            memcpy(kv_cache_k_row(kv, layer, pos0 + t), kr + (size_t)t * w, (size_t)w * 4);
            memcpy(kv_cache_v_row(kv, layer, pos0 + t), vr + (size_t)t * w, (size_t)w * 4);
        }
    }
}
