/* cpu_attention.c - causal grouped-query attention over the KV cache, and KV writes.
 *
 * One task = one (token, head): scores s_p = q_h . K_g[p] / sqrt(head_dim) for p <= pos, softmax,
 * out_h = sum_p a_p V_g[p], with g = h / (n_heads / n_kv_heads) (consecutive heads share a KV
 * head). Tasks are handed out dynamically over the pool; each thread keeps its scores in its own
 * n_ctx-float scratch. Cost per token is O(pos * head_dim * n_heads): memory bound on the cache. */
#include <math.h>
#include <stdatomic.h>

#include "cpu.h"

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
    if (kv->type == CODER_KV_F16) {
        for (int32_t p = p0; p <= pos; p++)
            scores[p - p0] = a->k->dot_f16((const uint16_t *)kv_cache_k_row(kv, a->layer, p) + off, q, hd) * scale;
    } else {
        for (int32_t p = p0; p <= pos; p++)
            scores[p - p0] = a->k->dot((const float *)kv_cache_k_row(kv, a->layer, p) + off, q, hd) * scale;
    }
    cpu_softmax(scores, pos - p0 + 1);
    memset(out, 0, (size_t)hd * sizeof *out);
    if (kv->type == CODER_KV_F16) {
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
        if (kv->type == CODER_KV_F16) {
            k->to_f16(kr + (size_t)t * w, kv_cache_k_row(kv, layer, pos0 + t), w);
            k->to_f16(vr + (size_t)t * w, kv_cache_v_row(kv, layer, pos0 + t), w);
        } else {
            memcpy(kv_cache_k_row(kv, layer, pos0 + t), kr + (size_t)t * w, (size_t)w * 4);
            memcpy(kv_cache_v_row(kv, layer, pos0 + t), vr + (size_t)t * w, (size_t)w * 4);
        }
    }
}
