/* cpu_attention.c - causal grouped-query attention over the KV cache, and KV writes.
 *
 * For each (token, head): scores s_p = q_h . K_g[p] * scale for p <= pos, softmax, out_h =
 * sum_p a_p V_g[p], with g = h / (n_heads / n_kv_heads) (consecutive heads share a KV head).
 * Tasks are handed out dynamically over the pool; each thread keeps its scores in its own scratch
 * (cpu_attention_scratch_floats). Cost per token is O(pos * head_dim * n_heads) arithmetic over
 * O(pos * head_dim * n_kv_heads) cache bytes: memory bound on the cache at long contexts.
 * Cache rows are F16, F32, Q8_0, or Q8_0 K with Q4_0 V (kv_cache.h). */
#include <math.h>
#include <stdatomic.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cpu.h"

/* The G = n_heads / n_kv_heads query heads that share a KV head read the same cache rows: a task
 * takes a (token, KV head, group of those heads) and converts each K and V row to f32 once for the
 * whole group (F16, Q8_0 and Q4_0 rows through the kernel table's dequantizers), instead of once
 * per head. At long contexts the cache does not fit in the caches, so this divides the memory
 * traffic of attention by the group size (7 for qwen2.5-coder-7b). Groups are split into smaller
 * ones only when there would be fewer than two tasks per thread. Each head's arithmetic (the row
 * conversion, its dot products, softmax and axpys, in position order) does not depend on the
 * grouping, so the outputs do not depend on the thread count. */

typedef struct att_job {
    const cpu_attention_args *a;
    atomic_int next;
    int n_tasks, group;       /* heads per task                                               */
} att_job;

size_t cpu_attention_scratch_floats(int32_t n_ctx, int n_heads, int n_kv_heads, int head_dim) {
    const int g = n_kv_heads > 0 ? n_heads / n_kv_heads : 1;
    return (size_t)(g > 0 ? g : 1) * (size_t)n_ctx + 2 * (size_t)head_dim + 16;
}

/* Cache row segment [off, off + hd) of position p as f32: a pointer into the cache (F32) or buf. */
static const float *att_row(const cpu_kernels *k, const void *row, int32_t type, size_t off, int hd, float *buf) {
    switch (type) {
    case QT_F32: return (const float *)row + off;
    case QT_F16: k->dequant[QT_F16]((const uint16_t *)row + off, buf, hd); return buf;
    case QT_Q8_0: k->dequant[QT_Q8_0]((const block_q8_0 *)row + off / 32, buf, hd); return buf;
    default: k->dequant[QT_Q4_0]((const block_q4_0 *)row + off / 32, buf, hd); return buf;
    }
}

#if defined(__x86_64__)
/* AVX-512: att_task's work with each cache row segment converted in registers, 16 values at a time,
 * and used by every head of the group before the next 16 are loaded (no conversion buffer, no
 * call per row). Same arithmetic per head as above except the order of the float sums. */
#define ATT512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define ATT_MAX_GROUP 8   /* heads whose accumulators stay in registers; larger groups loop */
#define ATT_PB 128        /* V positions per block: 128 rows of a 7B head (128 x 256 B F16) fit L1 */

/* values [c, c + 16) of the row segment starting at off, as f32 */
ATT512 static inline __attribute__((always_inline)) __m512 att_load16(const void *row, int32_t type, size_t off, int c) {
    const size_t i = off + (size_t)c;
    switch (type) {
    case QT_F32: return _mm512_loadu_ps((const float *)row + i);
    case QT_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i)));
    case QT_Q8_0: {
        const block_q8_0 *b = (const block_q8_0 *)row + i / 32;
        const __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b->qs + i % 32))));
        return _mm512_mul_ps(_mm512_set1_ps(cpu_f16_to_f32(b->d)), v);
    }
    default: {   /* Q4_0: values 0..15 are the low nibbles, 16..31 the high ones */
        const block_q4_0 *b = (const block_q4_0 *)row + i / 32;
        __m128i q = _mm_loadu_si128((const __m128i *)b->qs);
        if (i % 32) q = _mm_srli_epi16(q, 4);
        q = _mm_and_si128(q, _mm_set1_epi8(15));
        const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(q), _mm512_set1_epi32(8)));
        return _mm512_mul_ps(_mm512_set1_ps(cpu_f16_to_f32(b->d)), v);
    }
    }
}

/* Written once with the head count as a constant (1..ATT_MAX_GROUP) so the accumulators live in
 * registers; att_heads_avx512 picks the instance. */
ATT512 static inline __attribute__((always_inline)) void att_heads_body(const cpu_attention_args *a, int32_t p0,
                                                                        int32_t pos, size_t off, int32_t kt, int32_t vt,
                                                                        const float *q, float *out, const int nh,
                                                                        float *sc) {
    const kv_cache *kv = a->kv;
    const int hd = a->head_dim;
    const int32_t n_ctx = kv->n_ctx;
    for (int32_t p = p0; p <= pos; p++) {
        const void *row = kv_cache_k_row(kv, a->layer, p);
        __m512 acc[ATT_MAX_GROUP];
        _Pragma("GCC unroll 8")
        for (int i = 0; i < nh; i++) acc[i] = _mm512_setzero_ps();
        for (int c = 0; c < hd; c += 16) {
            const __m512 k = att_load16(row, kt, off, c);
            _Pragma("GCC unroll 8")
            for (int i = 0; i < nh; i++) acc[i] = _mm512_fmadd_ps(_mm512_loadu_ps(q + (size_t)i * hd + c), k, acc[i]);
        }
        _Pragma("GCC unroll 8")
        for (int i = 0; i < nh; i++) sc[(size_t)i * n_ctx + (p - p0)] = _mm512_reduce_add_ps(acc[i]) * a->scale;
    }
    _Pragma("GCC unroll 8")
    for (int i = 0; i < nh; i++) cpu_softmax(sc + (size_t)i * n_ctx, pos - p0 + 1);
    /* V in blocks of ATT_PB positions (their rows stay in L1/L2) and, within a block, 16 output
     * dims at a time over its positions, so the accumulators stay in registers and every row is
     * read from memory once */
    for (int32_t pb = p0; pb <= pos; pb += ATT_PB) {
        const int32_t pe = pos - pb < ATT_PB ? pos : pb + ATT_PB - 1;
        for (int c = 0; c < hd; c += 16) {
            __m512 acc[ATT_MAX_GROUP];
            _Pragma("GCC unroll 8")
            for (int i = 0; i < nh; i++) acc[i] = pb == p0 ? _mm512_setzero_ps() : _mm512_loadu_ps(out + (size_t)i * hd + c);
            for (int32_t p = pb; p <= pe; p++) {
                const __m512 v = att_load16(kv_cache_v_row(kv, a->layer, p), vt, off, c);
                _Pragma("GCC unroll 8")
                for (int i = 0; i < nh; i++)
                    acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(sc[(size_t)i * n_ctx + (p - p0)]), v, acc[i]);
            }
            _Pragma("GCC unroll 8")
            for (int i = 0; i < nh; i++) _mm512_storeu_ps(out + (size_t)i * hd + c, acc[i]);
        }
    }
}

#define ATT_HEADS_FN(N)                                                                                    \
    ATT512 static void att_heads_##N(const cpu_attention_args *a, int32_t p0, int32_t pos, size_t off,       \
                                     int32_t kt, int32_t vt, const float *q, float *out, float *sc) {       \
        att_heads_body(a, p0, pos, off, kt, vt, q, out, N, sc);                                             \
    }
ATT_HEADS_FN(1) ATT_HEADS_FN(2) ATT_HEADS_FN(3) ATT_HEADS_FN(4)
ATT_HEADS_FN(5) ATT_HEADS_FN(6) ATT_HEADS_FN(7) ATT_HEADS_FN(8)

static void att_heads_avx512(const cpu_attention_args *a, int32_t p0, int32_t pos, size_t off, int32_t kt, int32_t vt,
                             const float *q, float *out, int nh, float *sc) {
    typedef void (*fn)(const cpu_attention_args *, int32_t, int32_t, size_t, int32_t, int32_t, const float *, float *,
                       float *);
    static const fn by_n[ATT_MAX_GROUP] = {att_heads_1, att_heads_2, att_heads_3, att_heads_4,
                                           att_heads_5, att_heads_6, att_heads_7, att_heads_8};
    by_n[nh - 1](a, p0, pos, off, kt, vt, q, out, sc);
}
#endif

static void att_task(const att_job *j, int task, float *scratch) {
    const cpu_attention_args *a = j->a;
    const int G = a->n_heads / a->n_kv_heads, per_kv = (G + j->group - 1) / j->group;
    const int t = task / (a->n_kv_heads * per_kv), g = task / per_kv % a->n_kv_heads, h0 = g * G + task % per_kv * j->group;
    const int nh = h0 + j->group <= (g + 1) * G ? j->group : (g + 1) * G - h0;
    const int hd = a->head_dim;
    const int32_t pos = a->pos0 + t, n_ctx = a->kv->n_ctx;
    const kv_cache *kv = a->kv;
    const size_t off = (size_t)g * hd;
    /* keys p0..pos; scores[i][p - p0] belongs to head h0 + i */
    const int32_t p0 = a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0;
    const int32_t kt = kv->type == CODER_KV_F16 ? QT_F16 : kv->type == CODER_KV_F32 ? QT_F32 : QT_Q8_0;
    const int32_t vt = kv->type == CODER_KV_Q8_0_Q4_0 ? QT_Q4_0 : kt;
    float *kbuf = scratch + (size_t)G * n_ctx, *vbuf = kbuf + hd;
    const float *q = a->q + ((size_t)t * a->n_heads + h0) * hd;
    float *out = a->out + ((size_t)t * a->n_heads + h0) * hd;
#if defined(__x86_64__)
    if (a->k->isa == CPU_ISA_AVX512 && hd % 16 == 0) {
        for (int i = 0; i < nh; i += ATT_MAX_GROUP)
            att_heads_avx512(a, p0, pos, off, kt, vt, q + (size_t)i * hd, out + (size_t)i * hd,
                             nh - i < ATT_MAX_GROUP ? nh - i : ATT_MAX_GROUP, scratch + (size_t)i * n_ctx);
        return;
    }
#endif
    for (int32_t p = p0; p <= pos; p++) {
        const float *kr = att_row(a->k, kv_cache_k_row(kv, a->layer, p), kt, off, hd, kbuf);
        for (int i = 0; i < nh; i++) scratch[(size_t)i * n_ctx + (p - p0)] = a->k->dot(kr, q + (size_t)i * hd, hd) * a->scale;
    }
    for (int i = 0; i < nh; i++) {
        cpu_softmax(scratch + (size_t)i * n_ctx, pos - p0 + 1);
        memset(out + (size_t)i * hd, 0, (size_t)hd * sizeof *out);
    }
    for (int32_t p = p0; p <= pos; p++) {
        const float *vr = att_row(a->k, kv_cache_v_row(kv, a->layer, p), vt, off, hd, vbuf);
        for (int i = 0; i < nh; i++) a->k->axpy(out + (size_t)i * hd, scratch[(size_t)i * n_ctx + (p - p0)], vr, hd);
    }
}


static void att_worker(void *arg, int ith, int nth) {
    att_job *j = arg;
    (void)nth;
    const cpu_attention_args *a = j->a;
    float *scratch = a->scratch + (size_t)ith * cpu_attention_scratch_floats(a->kv->n_ctx, a->n_heads, a->n_kv_heads, a->head_dim);
    for (;;) {
        int task = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (task >= j->n_tasks) break;
        att_task(j, task, scratch);
    }
}

void cpu_attention(threadpool *tp, const cpu_attention_args *a) {
    const int G = a->n_heads / a->n_kv_heads, nth = threadpool_size(tp);
    /* whole groups unless that leaves fewer than two tasks per thread */
    int group = G;
    while (group > 1 && (int64_t)a->n * a->n_kv_heads * ((G + group - 1) / group) < 2 * (int64_t)nth) group = (group + 1) / 2;
    const int per_kv = (G + group - 1) / group;
    att_job j = {.a = a, .n_tasks = a->n * a->n_kv_heads * per_kv, .group = group};
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
