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

/* Query tokens per task in a prefill (no sliding window): each block of K and V rows is read from
 * memory once for all of them (cpu_attention_impl.h: att_tile). Their scores need ATT_TILE times
 * the scratch of one. */
#define ATT_TILE 4

typedef struct att_job {
    const cpu_attention_args *a;
    atomic_int next;
    int n_tasks, group;       /* heads per task                                               */
    int tile;                 /* query tokens per task                                         */
} att_job;

size_t cpu_attention_scratch_floats(int32_t n_ctx, int n_heads, int n_kv_heads, int head_dim) {
    const int g = n_kv_heads > 0 ? n_heads / n_kv_heads : 1;
    return (size_t)ATT_TILE * (size_t)(g > 0 ? g : 1) * (size_t)n_ctx + 2 * (size_t)head_dim + 16;
}

/* The part of the cache rows one task reads: its KV head's segment of each K and V row. */
typedef struct att_rows {
    size_t off;               /* first value of the segment: g * head_dim                      */
    int32_t kt, vt;           /* K and V row types: QT_F16, QT_F32, QT_Q8_0 (K, V), QT_Q4_0 (V) */
    size_t k_at, k_len, v_at, v_len;   /* bytes of the segment within a K / V row              */
    bool v_early;             /* V rows prefetched during the scores (ATT_V_EARLY)              */
} att_rows;

/* Cache row segment [off, off + hd) of position p as f32: a pointer into the cache (F32) or buf. */
static const float *att_row(const cpu_kernels *k, const void *row, int32_t type, size_t off, int hd, float *buf) {
    switch (type) {
    case QT_F32: return (const float *)row + off;
    case QT_F16: k->dequant[QT_F16]((const uint16_t *)row + off, buf, hd); return buf;
    case QT_Q8_0: k->dequant[QT_Q8_0]((const block_q8_0 *)row + off / 32, buf, hd); return buf;
    default: k->dequant[QT_Q4_0]((const block_q4_0 *)row + off / 32, buf, hd); return buf;
    }
}

/* Where the segment [off, off + hd) of a cache row of `type` lies: bytes [*at, *at + *len). */
static inline void att_segment(int32_t type, size_t off, int hd, size_t *at, size_t *len) {
    const size_t bs = quant_block_size((uint32_t)type), ts = quant_type_size((uint32_t)type);
    const size_t b0 = off / bs, b1 = (off + (size_t)hd + bs - 1) / bs;   /* the blocks holding it */
    *at = b0 * ts;
    *len = (b1 - b0) * ts;
}

#if defined(__x86_64__)
/* SIMD versions of att_task's work (AVX-512 and AVX2, lib/cpu_attention_impl.h): each cache row
 * segment is converted in registers, a vector at a time, and used by every head of the group
 * before the next is loaded; V is accumulated in registers over blocks of ATT_PB positions. */
#define ATT_MAX_GROUP 8   /* heads whose accumulators stay in registers; larger groups loop */
#define ATT_PB 128        /* V positions per block: 128 rows of a 7B head (128 x 256 B F16) fit L1 */
/* The K rows of position p + ATT_PF are prefetched while p's scores are computed, and the V rows
 * too when the group's V (positions x row segment) is at most ATT_V_EARLY bytes - it then stays in
 * a 1 MiB L2 until the V pass - otherwise ATT_PF positions ahead in the V pass: a group reads
 * every other 128-256 bytes of the cache rows, a pattern the hardware prefetchers do not follow.
 * bench_kv_attention, all layers (the cache beyond the L3), 2 threads, ms a layer: 0.5B shape at
 * 4K 0.626 -> 0.14; 7B shape at 4K 1.79 -> 0.42, at 16K 8.57 -> 1.75 (V fetched in the scores
 * pass at 16K: 2.34; every V early at 4K: 0.50, none early: 0.19 for the 0.5B). */
#define ATT_PF 16
#define ATT_V_EARLY (640u << 10)
#define ATT_KB 64         /* K positions per block of a tile's scores: 64 rows of a 7B head, 16 KiB */
#define ATT_LEVEL 2
#include "cpu_attention_impl.h"
#undef ATT_LEVEL
#define ATT_LEVEL 1
#include "cpu_attention_impl.h"
#undef ATT_LEVEL
#endif

static void att_task(const att_job *j, int task, float *scratch) {
    const cpu_attention_args *a = j->a;
    const int G = a->n_heads / a->n_kv_heads, per_kv = (G + j->group - 1) / j->group;
    const int tile = task / (a->n_kv_heads * per_kv), g = task / per_kv % a->n_kv_heads, h0 = g * G + task % per_kv * j->group;
    const int nh = h0 + j->group <= (g + 1) * G ? j->group : (g + 1) * G - h0;
    const int t0 = tile * j->tile, nt = a->n - t0 < j->tile ? a->n - t0 : j->tile;
    const int hd = a->head_dim;
    const int32_t n_ctx = a->kv->n_ctx, last = a->pos0 + t0 + nt - 1;
    const kv_cache *kv = a->kv;
    att_rows r = {.off = (size_t)g * hd};
    r.kt = kv->type == CODER_KV_F16 ? QT_F16 : kv->type == CODER_KV_F32 ? QT_F32 : QT_Q8_0;
    r.vt = kv->type == CODER_KV_Q8_0_Q4_0 ? QT_Q4_0 : r.kt;
    att_segment(r.kt, r.off, hd, &r.k_at, &r.k_len);
    att_segment(r.vt, r.off, hd, &r.v_at, &r.v_len);
    /* keys p0..pos of each token; scores[i][p - p0] belong to head h0 + i */
    const int32_t p0_last = a->window > 0 && last - a->window + 1 > 0 ? last - a->window + 1 : 0;
    r.v_early = (uint64_t)(last - p0_last + 1) * r.v_len <= ATT_V_EARLY;
    const size_t qs = (size_t)a->n_heads * hd;
    const float *q = a->q + (size_t)t0 * qs + (size_t)h0 * hd;
    float *out = a->out + (size_t)t0 * qs + (size_t)h0 * hd;
#if defined(__x86_64__)
    if (a->k->isa != CPU_ISA_SCALAR && hd % 16 == 0) {
        const bool avx512 = a->k->isa == CPU_ISA_AVX512;
        for (int i = 0; i < nh; i += ATT_MAX_GROUP) {
            const int m = nh - i < ATT_MAX_GROUP ? nh - i : ATT_MAX_GROUP;
            const float *qi = q + (size_t)i * hd;
            float *oi = out + (size_t)i * hd, *sc = scratch + (size_t)i * n_ctx;
            if (nt > 1) {   /* a tile: no window (cpu_attention), p0 = 0 */
                if (avx512) att_tile_avx512(a, &r, t0, nt, qi, oi, m, sc, (size_t)G * n_ctx);
                else att_tile_avx2(a, &r, t0, nt, qi, oi, m, sc, (size_t)G * n_ctx);
            } else if (avx512) att_heads_avx512(a, &r, p0_last, last, qi, oi, m, sc);
            else att_heads_avx2(a, &r, p0_last, last, qi, oi, m, sc);
        }
        return;
    }
#endif
    float *kbuf = scratch + (size_t)G * n_ctx, *vbuf = kbuf + hd;
    for (int u = 0; u < nt; u++, q += qs, out += qs) {
        const int32_t pos = a->pos0 + t0 + u, p0 = a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0;
        for (int32_t p = p0; p <= pos; p++) {
            const float *kr = att_row(a->k, kv_cache_k_row(kv, a->layer, p), r.kt, r.off, hd, kbuf);
            for (int i = 0; i < nh; i++) scratch[(size_t)i * n_ctx + (p - p0)] = a->k->dot(kr, q + (size_t)i * hd, hd) * a->scale;
        }
        for (int i = 0; i < nh; i++) {
            a->k->softmax(scratch + (size_t)i * n_ctx, pos - p0 + 1);
            memset(out + (size_t)i * hd, 0, (size_t)hd * sizeof *out);
        }
        for (int32_t p = p0; p <= pos; p++) {
            const float *vr = att_row(a->k, kv_cache_v_row(kv, a->layer, p), r.vt, r.off, hd, vbuf);
            for (int i = 0; i < nh; i++) a->k->axpy(out + (size_t)i * hd, scratch[(size_t)i * n_ctx + (p - p0)], vr, hd);
        }
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
    /* tiles of ATT_TILE tokens (none with a window: each token's keys start elsewhere) and whole
     * groups, each made smaller while there would be fewer than two tasks per thread */
    int tile = a->window > 0 ? 1 : ATT_TILE;
    while (tile > 1 && (int64_t)((a->n + tile - 1) / tile) * a->n_kv_heads < 2 * (int64_t)nth) tile /= 2;
    const int64_t tiles = (a->n + tile - 1) / tile;
    int group = G;
    while (group > 1 && tiles * a->n_kv_heads * ((G + group - 1) / group) < 2 * (int64_t)nth) group = (group + 1) / 2;
    const int per_kv = (G + group - 1) / group;
    att_job j = {.a = a, .n_tasks = (int)tiles * a->n_kv_heads * per_kv, .group = group, .tile = tile};
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
