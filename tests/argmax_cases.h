/* argmax_cases.h - the backend argmax op (greedy decoding's next token, computed where the logits
 * are) on rows with planted answers: a maximum planted twice (the first wins), at the last index,
 * an all-equal row, a NaN first (it must not win), +Inf, all -Inf; the flag all_finite on each.
 * Shared by test_backend_ops.c (CPU) and test_gpu.c (CUDA). Returns NULL or what went wrong. */
#ifndef CODER_TEST_ARGMAX_CASES_H
#define CODER_TEST_ARGMAX_CASES_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"

static const char *argmax_cases_check(backend *b) {
    static char why[256];
    enum { W = 152064 };   /* a Qwen2.5 vocabulary: more than one pass of the device's block */
    float *rows = malloc(2 * (size_t)W * sizeof *rows);
    backend_buf *buf = NULL;
    if (!rows || b->ops->buf_alloc(b, 2 * (size_t)W, &buf) != CODER_OK) {
        free(rows);
        return "allocation";
    }
    uint32_t seed = 12345;
    for (size_t i = 0; i < 2 * (size_t)W; i++) {
        seed = seed * 1664525u + 1013904223u;
        rows[i] = (float)(seed >> 8) * (6.0f / 16777216.0f) - 3.0f;   /* in [-3, 3) */
    }
    float *r = rows + W;   /* row 1: the op must honour the row offset */
    const char *fail = NULL;
    for (int c = 0; c < 6 && !fail; c++) {
        float *saved = malloc((size_t)W * sizeof *saved);
        if (!saved) { fail = "allocation"; break; }
        memcpy(saved, r, (size_t)W * sizeof *r);
        int32_t want = -1;   /* -1: any index (the row has no maximum) */
        bool want_finite = true;
        switch (c) {
        case 0: r[100000] = r[120000] = 50.0f; want = 100000; break;
        case 1: r[W - 1] = 7.0f; want = W - 1; break;
        case 2: for (int i = 0; i < W; i++) r[i] = 1.5f; want = 0; break;
        case 3: r[0] = NAN; r[77] = 9.0f; want = 77; want_finite = false; break;
        case 4: r[5] = INFINITY; r[6] = 8.0f; want = 5; want_finite = false; break;
        case 5: for (int i = 0; i < W; i++) r[i] = -INFINITY; want_finite = false; break;
        }
        int32_t got = -2;
        bool finite = !want_finite;
        coder_status st = b->ops->buf_write(b, buf, 0, 2 * (size_t)W, rows);
        if (st == CODER_OK) st = b->ops->argmax(b, buf, 1, W, &got, &finite);
        if (st != CODER_OK) snprintf(why, sizeof why, "case %d: %s", c, coder_status_string(st)), fail = why;
        else if ((want >= 0 && got != want) || got < 0 || got >= W || finite != want_finite)
            snprintf(why, sizeof why, "case %d: argmax %d finite %d, want %d finite %d", c, (int)got, finite, (int)want,
                     want_finite),
                fail = why;
        memcpy(r, saved, (size_t)W * sizeof *r);
        free(saved);
    }
    b->ops->buf_free(b, buf);
    free(rows);
    return fail;
}

#endif
