/* mkmodel_impl.h - what mkmodel.c (plan, metadata) shares with mkmodel_gen.c (weight generation). */
#ifndef CODER_MKMODEL_IMPL_H
#define CODER_MKMODEL_IMPL_H

#include "gguf.h"
#include "mkmodel.h"

typedef enum { MKMODEL_MATRIX, MKMODEL_NORM, MKMODEL_BIAS } mkmodel_kind;

typedef struct mkmodel_tensor {
    char name[GGUF_MAX_NAME];
    mkmodel_kind kind;
    uint32_t type, n_dims;
    uint64_t ne[2];           /* ne[0] = row length, ne[1] = rows                                 */
    size_t index;             /* in the writer                                                     */
    uint64_t file_offset, nbytes;
} mkmodel_tensor;

typedef struct mkmodel_plan {
    mkmodel_tensor *t;
    size_t n, cap;
} mkmodel_plan;

/* Generates every tensor of the plan and pwrites it at its file offset, on n_threads threads.
 * Deterministic for a seed whatever n_threads: each fixed-size row chunk has its own seed. */
coder_status mkmodel_gen_run(const mkmodel_plan *plan, int fd, const char *path, uint64_t seed,
                             mkmodel_mode mode, int n_threads);

#endif
