/* cpu_matvec.c - y = W x for n <= CPU_QDOT_NT tokens (decode and tiny batches), split over the
 * pool (cpu.h: cpu_matvec; cpu_matmul hands these sizes here).
 *
 * Decode reads every weight byte once per token and does little arithmetic per byte, so this is a
 * memory-streaming problem: the activations are quantized once on the calling thread (one row of
 * a few KiB: cheaper than a dispatch), then the rows are cut into tiles of ~TILE_BYTES of
 * contiguous weights, each one pool task (threadpool_run_tasks): a thread streams a whole tile
 * (prefetcher-friendly) and a thread descheduled by another process holds up at most one tile.
 * n == 1 uses the multi-row GEMV kernels (cpu_gemv_impl.h); n = 2..4 the qdot kernels, which read
 * each weight row once for all n tokens. Row results do not depend on the tiling or the thread, and
 * for the integer weight types not on n either: both kernels give the scalar reference's bits, as the
 * prefill GEMM does (cpu_qdot_impl.h, batch invariance). */
#include <limits.h>

#include "cpu.h"

/* 256 KiB: a task's claim (one compare-and-swap on a line shared by the cores, ~100 ns) is
 * negligible next to streaming it, and MIN_TASKS_PER_THREAD still splits the 0.5B model's
 * 0.5-3 MiB projections finely. Decode A/B against 64 KiB tiles (2 threads, shared machine,
 * medians): 0.5B Q4_K_M +6%, Q8_0 +2%, 1.5B Q4_K_M +5%; 512 KiB was no better. */
#define TILE_BYTES 262144
/* Tasks per thread at least, so a late or slow thread can be covered by the others. */
#define MIN_TASKS_PER_THREAD 4

/* One weight of a dispatch: its tiles are tasks first .. first + n_tiles - 1. */
typedef struct mv_part {
    const weight *W;
    float *y;                 /* [n][rows]                                                    */
    int64_t tile_rows;
    int first;
} mv_part;

typedef struct mv_job {
    const cpu_kernels *k;
    const void *xa;           /* [n] activation rows in the kernel's format, xs bytes apart     */
    size_t xs;
    int n;
    int count;
    mv_part part[CPU_MATVEC_MAX];
} mv_job;

void cpu_gemv_x4_tokens(const cpu_kernels *k, const weight *W, int64_t r0, int64_t r1, const void *xa, size_t xs, int n, float *y) {
    const char *w0 = (const char *)W->data + (uint64_t)r0 * W->row_bytes;
    for (int t = 0; t < n; t++) k->gemv_x4[W->type](W->cols, w0, W->row_bytes, r1 - r0, (const char *)xa + (size_t)t * xs, y + (size_t)t * W->rows + r0);
}

static void mv_task(void *arg, int task, int n_tasks) {
    const mv_job *j = arg;
    (void)n_tasks;
    int i = j->count - 1;
    while (task < j->part[i].first) i--;
    const mv_part *p = &j->part[i];
    const weight *W = p->W;
    const int64_t r0 = (int64_t)(task - p->first) * p->tile_rows, r1 = r0 + p->tile_rows < W->rows ? r0 + p->tile_rows : W->rows;
    const char *w0 = (const char *)W->data + (uint64_t)r0 * W->row_bytes;
    if (W->x4) {   /* whole groups of 4 rows (tile_rows and rows are multiples of 4) */
        cpu_gemv_x4_tokens(j->k, W, r0, r1, j->xa, j->xs, j->n, p->y);
        return;
    }
    if (j->n == 1) {
        j->k->gemv[W->type](W->cols, w0, W->row_bytes, r1 - r0, j->xa, p->y + r0);
        return;
    }
    const cpu_qdot_fn dot = j->k->qdot[W->type];
    float out[CPU_QDOT_NT];
    for (int64_t r = r0; r < r1; r++) {
        dot(W->cols, w0 + (uint64_t)(r - r0) * W->row_bytes, j->xa, j->xs, j->n, out);
        for (int t = 0; t < j->n; t++) p->y[(size_t)t * W->rows + r] = out[t];
    }
}

coder_status cpu_matvec_many(threadpool *tp, const cpu_kernels *k, const weight *const *W, int count, const float *x, int n,
                             float *const *y, void *qbuf, size_t xs) {
    if (count < 1 || count > CPU_MATVEC_MAX) return coder_fail(CODER_ERR_INTERNAL, "matvec: %d weights in one dispatch", count);
    const cpu_act act = cpu_act_format(W[0]->type);
    mv_job j = {.k = k, .xa = act == CPU_ACT_F32 ? (const void *)x : qbuf, .xs = xs, .n = n, .count = count};
    if (act != CPU_ACT_F32)
        for (int t = 0; t < n; t++) k->quant[act](x + (size_t)t * W[0]->cols, (char *)qbuf + (size_t)t * xs, W[0]->cols);
    const int nth = threadpool_size(tp);
    int64_t tasks = 0;
    for (int i = 0; i < count; i++) {
        int64_t tile_rows = (int64_t)(TILE_BYTES / (W[i]->row_bytes ? W[i]->row_bytes : 1));
        const int64_t balance = (W[i]->rows + (int64_t)MIN_TASKS_PER_THREAD * nth - 1) / ((int64_t)MIN_TASKS_PER_THREAD * nth);
        if (tile_rows > balance) tile_rows = balance;
        tile_rows = (tile_rows + 3) & ~(int64_t)3;   /* whole groups of the 4-row kernels */
        if (tile_rows < 4) tile_rows = 4;
        j.part[i] = (mv_part){.W = W[i], .y = y[i], .tile_rows = tile_rows, .first = (int)tasks};
        tasks += (W[i]->rows + tile_rows - 1) / tile_rows;
        if (tasks > INT_MAX) return coder_fail(CODER_ERR_LIMIT, "matvec: %lld rows", (long long)W[i]->rows);
    }
    threadpool_run_tasks(tp, (int)tasks, mv_task, &j);
    return CODER_OK;
}

coder_status cpu_matvec(threadpool *tp, const cpu_kernels *k, const weight *W, const float *x, int n, float *y,
                        void *qbuf, size_t xs) {
    return cpu_matvec_many(tp, k, &W, 1, x, n, &y, qbuf, xs);
}
