/* repack.c - the quantized matrices of a CPU-only model repacked 4 rows at a time at load (model.h:
 * model_repack, weight_row).
 *
 * Why: decode streams every weight byte once per token. The 4-row GEMV kernels read 4 rows
 * row_bytes apart, 4 streams per thread, which the memory system serves worse than one: 2 threads
 * over 512 MiB of 896-column Q8_0 rows (the 0.5B's shape) moved 34-37 GB/s against 45-46 for the
 * same bytes interleaved and for F16 rows read one at a time. Layouts: Q8_0 as block_q8_0x4 (per
 * block column the 4 scales, then the 4 rows' quants: one 64-byte load serves 2 rows); the other
 * integer types block by block (the 4 rows' blocks of a column one after another, read by the
 * unchanged kernels through padded block types, cpu_gemv_body.h). A group takes exactly the bytes
 * of its 4 rows, at byte 4 * g * row_bytes, so tiles of whole groups address them as before.
 *
 * When: 2-D weights of those types with a row count divisible by 4, in a model whose layers all
 * run on the CPU (the CUDA upload reads the standard layout), at the AVX2 and AVX-512 levels.
 * AVX-512's prefill GEMM packs the interleaved rows directly; AVX2 has no integer GEMM, and its
 * prefill then runs the repacked GEMV per token over cache-sized tiles (cpu_matmul.c), which beat
 * its 4-token qdot kernels: CODER_CPU_ISA=avx2, pp128 2 threads, 2 rounds, without -> with:
 * 0.5B Q8_0 215/213 -> 236/237 tok/s, 0.5B Q4_K_M 118/121 -> 125/114, 1.5B Q4_K_M 30/32 -> 46/52;
 * tg64 61.7/85.2 -> 91.0/98.9, 64.9/63.2 -> 79.4/68.7, 27.4/32.4 -> 31.8/35.5. The scalar
 * level (tests, CODER_CPU_ISA=scalar) gathers rows back, so it does not repack. A read-into-memory model is repacked in place; a mapped (or borrowed) one into a new
 * buffer with 2 MiB pages, the mapped source pages then dropped from this process (a private
 * read-only file mapping refaults them from the page cache if anything reads them again).
 *
 * The copy runs on the load's threads (coder_model_params.n_threads, at most 8): first-touching
 * the new buffer dominates (on this project's VMs the kernel's page clearing ran at ~0.5-1 GB/s;
 * on bare metal it is several times that).
 *
 * Every consumer of a repacked weight: the decode GEMV (cpu_kernels.gemv_x4), the other matmul
 * paths (cpu_matmul.c, cpu_matvec.c: gemv_x4 per token), the AVX-512 GEMM's panel packing
 * (cpu_gemm.c) and the embedding lookup of a tied output (cpu_backend.c, weight_row). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "model.h"
#include "threadpool.h"

static bool repack_type(uint32_t t) {
    switch (t) {
    case QT_Q8_0: case QT_Q4_0: case QT_Q4_1: case QT_Q5_0: case QT_Q5_1: case QT_Q4_K: case QT_Q5_K: case QT_Q6_K: return true;
    default: return false;
    }
}

static bool repack_eligible(const weight *w) {
    return w->t && w->data && repack_type(w->type) && !w->x4 && w->rows > 0 && w->rows % 4 == 0 &&
           w->cols % quant_block_size(w->type) == 0;
}

/* Rows src[0..3] (row_bytes apart) -> their group at dst (row_bytes * 4). dst may not alias src.
 * Q8_0: per block column the 4 scales, then the 4 quant arrays (block_q8_0x4); the others: the 4
 * rows' blocks of each column one after another. */
static void repack_group(uint32_t type, const uint8_t *src, uint64_t row_bytes, uint8_t *dst) {
    const size_t bs = quant_type_size(type), nb = (size_t)(row_bytes / bs);
    for (size_t b = 0; b < nb; b++)
        for (int i = 0; i < 4; i++) {
            const uint8_t *x = src + (uint64_t)i * row_bytes + b * bs;
            if (type == QT_Q8_0) {
                block_q8_0x4 *g = (block_q8_0x4 *)dst + b;
                memcpy(&g->d[i], x, sizeof(f16_t));
                memcpy(g->qs[i], x + sizeof(f16_t), QK8_0);
            } else memcpy(dst + (4 * b + (size_t)i) * bs, x, bs);
        }
}

const void *weight_row(const weight *W, int64_t r, void *tmp) {
    if (!W->x4) return (const char *)W->data + (uint64_t)r * W->row_bytes;
    const uint8_t *g = (const uint8_t *)W->data + (uint64_t)(r / 4) * 4 * W->row_bytes;
    const size_t bs = quant_type_size(W->type), nb = (size_t)(W->row_bytes / bs), i = (size_t)(r % 4);
    uint8_t *out = tmp;
    for (size_t b = 0; b < nb; b++) {
        if (W->type == QT_Q8_0) {
            const block_q8_0x4 *x = (const block_q8_0x4 *)g + b;
            memcpy(out + b * bs, &x->d[i], sizeof(f16_t));
            memcpy(out + b * bs + sizeof(f16_t), x->qs[i], QK8_0);
        } else memcpy(out + b * bs, g + (4 * b + i) * bs, bs);
    }
    return tmp;
}

#define REPACK_MAX 1024        /* matrices repacked (7 per layer + the output); more stay as they are */
#define REPACK_CHUNK 64        /* groups per claim                                              */
#define REPACK_THREADS 8

typedef struct repack_item {
    weight *w;
    const uint8_t *src;
    uint8_t *dst;             /* == src: in place                                             */
    int64_t first, chunks;    /* its chunks are job chunks first .. first + chunks - 1         */
    atomic_llong chunks_done; /* the thread that finishes the last one releases src             */
} repack_item;

typedef struct repack_job {
    repack_item item[REPACK_MAX];
    int n;
    bool release_src;         /* mapped: drop each source's pages once copied (peak RSS ~1x)   */
    size_t max_group;         /* bytes of the largest group (the in-place copy)               */
    atomic_llong next;        /* next chunk to claim, over all items in order                  */
    uint8_t *tmp[REPACK_THREADS];   /* per pool task: one group (in place), else NULL          */
} repack_job;

static void repack_add(repack_job *j, weight *w) {
    if (!repack_eligible(w) || j->n == REPACK_MAX) return;
    for (int i = 0; i < j->n; i++)
        if (j->item[i].src == w->data) return;   /* the same tensor bound twice (tied output) */
    const int64_t first = j->n ? j->item[j->n - 1].first + j->item[j->n - 1].chunks : 0;
    j->item[j->n++] = (repack_item){.w = w, .src = w->data, .first = first, .chunks = (w->rows / 4 + REPACK_CHUNK - 1) / REPACK_CHUNK};
    if (4 * w->row_bytes > j->max_group) j->max_group = (size_t)(4 * w->row_bytes);
}

static void repack_chunk(const repack_item *it, int64_t chunk, uint8_t *tmp) {
    const weight *w = it->w;
    const uint64_t group = 4 * w->row_bytes;
    const int64_t g1 = (chunk + 1) * REPACK_CHUNK < w->rows / 4 ? (chunk + 1) * REPACK_CHUNK : w->rows / 4;
    for (int64_t g = chunk * REPACK_CHUNK; g < g1; g++) {
        const uint8_t *s = it->src + (uint64_t)g * group;
        if (it->dst == it->src) s = memcpy(tmp, s, group);
        repack_group(w->type, s, w->row_bytes, it->dst + (uint64_t)g * group);
    }
}

/* Pool task ith: claims chunks in order (the chunk sizes differ by matrix) until none is left. */
static void repack_task(void *arg, int ith, int nth) {
    repack_job *j = arg;
    (void)nth;
    int i = 0;
    for (int64_t c; j->n > 0 && (c = atomic_fetch_add(&j->next, 1)) < j->item[j->n - 1].first + j->item[j->n - 1].chunks;) {
        while (c >= j->item[i].first + j->item[i].chunks) i++;   /* claims only grow */
        repack_item *it = &j->item[i];
        repack_chunk(it, c - it->first, j->tmp[ith]);
        if (j->release_src && atomic_fetch_add(&it->chunks_done, 1) + 1 == it->chunks)
            coder_release_pages((void *)(uintptr_t)it->src, (size_t)((uint64_t)it->w->rows * it->w->row_bytes));
    }
}

void model_repack(coder_model *m) {
    if (!m || m->vocab_only || !m->layers || m->gpu_layers >= m->hp.n_layers) return;
    const int32_t cpu_layers = m->hp.n_layers - m->gpu_layers;   /* a split model: the GPU has the rest and the output */
    const char *env = getenv("CODER_REPACK");
    if (env && strcmp(env, "0") == 0) return;
    if (cpu_kernels_best()->isa < CPU_ISA_AVX2) return;
    repack_job *j = coder_calloc(1, sizeof *j);
    if (!j) {
        LOG_WARN("no memory to plan the weight repacking; decode keeps the standard layout");
        return;
    }
    if (m->gpu_layers == 0) repack_add(j, &m->output);
    for (int l = 0; l < cpu_layers; l++) {
        layer_weights *L = &m->layers[l];
        weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) repack_add(j, ws[i]);
    }
    uint64_t total = 0;
    for (int i = 0; i < j->n; i++) total += (uint64_t)j->item[i].w->rows * j->item[i].w->row_bytes;
    const int kind = gguf_storage(m->file);
    if (total > 0 && kind != GGUF_STORE_HEAP) {
        m->repacked = coder_malloc_aligned((size_t)total, (size_t)2 << 20);
        if (!m->repacked) {
            LOG_WARN("no memory to repack %.1f MiB of weights; decode keeps the standard layout", (double)total / 1048576.0);
            j->n = 0;
        } else coder_advise_hugepages(m->repacked, (size_t)total);
    }
    uint64_t at = 0;
    for (int i = 0; i < j->n; i++) {
        repack_item *it = &j->item[i];
        it->dst = m->repacked ? (uint8_t *)m->repacked + at : (uint8_t *)(uintptr_t)it->src;
        at += (uint64_t)it->w->rows * it->w->row_bytes;
    }
    j->release_src = kind == GGUF_STORE_MMAP && m->repacked;
    int nth = m->params.n_threads > 0 ? m->params.n_threads : coder_cpu_count();
    if (nth > REPACK_THREADS) nth = REPACK_THREADS;
    threadpool *tp = NULL;
    if (j->n > 0 && threadpool_new(nth, &tp) != CODER_OK) {
        LOG_WARN("no threads to repack the weights: %s; decode keeps the standard layout", coder_last_error());
        j->n = 0;
    }
    for (int t = 0; t < nth && j->n > 0 && !m->repacked; t++)
        if (!(j->tmp[t] = coder_malloc(j->max_group))) {
            LOG_WARN("no memory to repack the weights in place; decode keeps the standard layout");
            j->n = 0;
        }
    const double t0 = coder_time_now();
    if (j->n > 0) threadpool_run(tp, repack_task, j);
    threadpool_free(tp);
    for (int t = 0; t < nth; t++) coder_mfree(j->tmp[t]);
    for (int i = 0; i < j->n; i++) {
        repack_item *it = &j->item[i];
        weight *ws[3] = {it->w, &m->tok_embd, &m->output};
        for (int k = 0; k < 3; k++)
            if (ws[k]->data == it->src) ws[k]->data = it->dst, ws[k]->x4 = true;
    }
    if (j->n > 0)
        LOG_INFO("repacked %d quantized matrices (%.1f MiB) 4 rows at a time for decode (%s, %d threads, %.0f ms)", j->n,
                 (double)total / 1048576.0, m->repacked ? "new buffer" : "in place", nth, (coder_time_now() - t0) * 1e3);
    coder_mfree(j);
}
