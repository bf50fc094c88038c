/* plan.h - the memory arithmetic behind coder_plan_memory and coder_plan_fit (plan.c, plan_fit.c):
 * a GGUF header opened once, then any number of configurations computed from it. */
#ifndef CODER_PLAN_H
#define CODER_PLAN_H

#include "model.h"

typedef struct plan_input {
    gguf_file *f;               /* mapped; only the header pages are read                       */
    model_hparams hp;
    coder_model_params mp;      /* the caller's parameters, defaults filled in                   */
    coder_session_params sp;
} plan_input;

/* Opens path and checks the parameters (n_ctx may be CODER_CTX_AUTO). plan_close releases it. */
coder_status plan_open(const char *path, const coder_model_params *mp, const coder_session_params *sp, plan_input *in);
void plan_close(plan_input *in);

/* Device memory the plan does not itemise (the CUDA context, cuBLAS's workspace): kept free by
 * coder_plan_fit's measured budget and by `auto` GPU layers at load. */
#define PLAN_DEVICE_RESERVE (768ull << 20)

/* The context a session gets for n_ctx 0: min(training context, 4096). */
int32_t plan_default_ctx(const model_hparams *hp);

/* The plan for context n_ctx (0: the default) and gpu_layers (-1 or more than the model has: all;
 * counted only when have_device). */
void plan_compute(const plan_input *in, int32_t n_ctx, int32_t gpu_layers, bool have_device, coder_plan *out);

/* coder_plan_fit with explicit budgets and device presence (tests simulate a GPU with it).
 * Budgets are used as given (no reserve subtracted). */
coder_status plan_fit(const char *path, coder_model_params *mp, coder_session_params *sp, uint64_t host_budget,
                      uint64_t device_budget, bool have_device, coder_plan *plan, char *why, size_t why_cap);

#endif
