/* topk_cases.h - the backend topk op (sampling's k best logits, computed where the logits are)
 * against the sampler's own top-k (sampler_top_k: descending, the lowest id first on ties) on
 * rows of a Qwen2.5-sized vocabulary: random values, coarse values with many ties, a tie at the
 * k-th place, the best at the last index, k = 1 and BACKEND_TOPK_MAX; the all_finite flag with a
 * NaN, an +Inf and a -Inf; and the bad k values. Shared by test_backend_ops.c (CPU) and
 * test_gpu.c (CUDA). Returns NULL or what went wrong. */
#ifndef CODER_TEST_TOPK_CASES_H
#define CODER_TEST_TOPK_CASES_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "sampler.h"

static const char *topk_cases_check(backend *b) {
    static char why[256];
    enum { W = 152064, NCASE = 8 };
    float *rows = malloc(2 * (size_t)W * sizeof *rows);
    sampler_cand *cand = malloc((size_t)W * sizeof *cand);
    backend_buf *buf = NULL;
    if (!rows || !cand || b->ops->buf_alloc(b, 2 * (size_t)W, &buf) != CODER_OK) {
        free(rows), free(cand);
        return "allocation";
    }
    const char *fail = NULL;
    for (int c = 0; c < NCASE && !fail; c++) {
        uint32_t seed = 777u + (uint32_t)c;
        for (size_t i = 0; i < 2 * (size_t)W; i++) {
            seed = seed * 1664525u + 1013904223u;
            rows[i] = (float)(seed >> 8) * (6.0f / 16777216.0f) - 3.0f;
        }
        float *r = rows + W;   /* row 1: the op must honour the row offset */
        int k = 40;
        bool want_finite = true;
        switch (c) {
        case 1: for (int i = 0; i < W; i++) r[i] = floorf(r[i] * 4.0f) * 0.25f; k = BACKEND_TOPK_MAX; break;   /* ties */
        case 2: for (int i = 0; i < W; i += 1000) r[i] = 9.0f; k = 64; break;   /* 153 equal maxima: the lowest 64 ids */
        case 3: r[W - 1] = 20.0f; k = 1; break;
        case 4: r[10] = NAN; want_finite = false; break;
        case 5: r[W / 2] = INFINITY; want_finite = false; break;
        case 6: r[3] = -INFINITY; want_finite = false; break;
        case 7: k = 17; break;
        default: break;
        }
        int32_t ids[BACKEND_TOPK_MAX];
        float vals[BACKEND_TOPK_MAX];
        bool finite = !want_finite;
        coder_status st = b->ops->buf_write(b, buf, 0, 2 * (size_t)W, rows);
        if (st == CODER_OK) st = b->ops->topk(b, buf, 1, W, k, ids, vals, &finite);
        if (st != CODER_OK) {
            snprintf(why, sizeof why, "case %d: %s", c, coder_status_string(st));
            fail = why;
            break;
        }
        if (finite != want_finite) {
            snprintf(why, sizeof why, "case %d: all_finite %d, want %d", c, finite, want_finite);
            fail = why;
            break;
        }
        if (!want_finite) continue;   /* the values are meaningless then */
        for (int i = 0; i < W; i++) cand[i].id = i, cand[i].logit = r[i];
        sampler_list l = {cand, (size_t)W, false};
        sampler_top_k(&l, k);
        for (int i = 0; i < k && !fail; i++)
            if (ids[i] != l.c[i].id || vals[i] != l.c[i].logit) {
                snprintf(why, sizeof why, "case %d k %d: place %d is id %d (%g), the sampler's id %d (%g)", c, k, i,
                         (int)ids[i], vals[i], (int)l.c[i].id, l.c[i].logit);
                fail = why;
            }
    }
    for (int bad = 0; bad < 3 && !fail; bad++) {   /* k outside 1..BACKEND_TOPK_MAX (and <= width) */
        const int k = bad == 0 ? 0 : bad == 1 ? BACKEND_TOPK_MAX + 1 : 8;
        const int width = bad == 2 ? 4 : W;
        int32_t ids[BACKEND_TOPK_MAX + 1];
        float vals[BACKEND_TOPK_MAX + 1];
        bool finite;
        if (b->ops->topk(b, buf, 0, width, k, ids, vals, &finite) != CODER_ERR_INTERNAL) {
            snprintf(why, sizeof why, "k %d of width %d accepted", k, width);
            fail = why;
        }
    }
    b->ops->buf_free(b, buf);
    free(rows);
    free(cand);
    return fail;
}

#endif
