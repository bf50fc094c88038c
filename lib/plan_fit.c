/* plan_fit.c - `auto` settings (coder_plan_fit): the GPU layer count and the context that fit the
 * memory, chosen with coder_plan_memory's arithmetic before anything is loaded.
 *
 * Order of the choice: GPU layers first (a layer on the GPU is the largest speed difference), at the
 * context the caller asked for, or with n_ctx auto at the default context min(training, 4096); then,
 * with n_ctx auto, the largest context that still fits both budgets with those layers: the training
 * context if it fits, otherwise the largest multiple of FIT_CTX_STEP below it.
 *
 * GPU layers are the last ones (the CPU runs the first n_layers - g, backend.h): the search takes
 * the most that fit, one layer at a time.
 *
 * Measured budgets (a budget argument of 0): host = /proc/meminfo MemAvailable less
 * min(10%, 1 GiB) for everything else on the machine; device = the free device memory less
 * PLAN_DEVICE_RESERVE for what the plan does not itemise (CUDA context, cuBLAS workspace). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "plan.h"
#ifdef CODER_HAVE_CUDA
#include "../cuda/cuda_api.h"
#endif

#define FIT_CTX_STEP 256
#define FIT_CTX_CAP_UNKNOWN 32768        /* no training context in the file: do not guess past this  */
#define FIT_HOST_RESERVE_MAX (1ull << 30)

static double fit_mib(uint64_t b) { return (double)b / 1048576.0; }

static bool fit_ok(const coder_plan *p, uint64_t host, uint64_t dev) {
    return p->host_bytes <= host && p->device_bytes <= dev;
}

/* Host memory available to a new allocation, from /proc/meminfo (page cache counts as available:
 * a mapped model's pages are page cache too). 0 when unknown. */
static uint64_t fit_host_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    unsigned long long kib = 0;
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
        fclose(f);
    }
    if (kib) return (uint64_t)kib * 1024u;
    long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

static uint64_t fit_device_free(void) {
#ifdef CODER_HAVE_CUDA
    size_t free_b = 0, total_b = 0;
    if (device_count() > 0 && cuda_mem_info(&free_b, &total_b) == CODER_OK)
        return free_b > PLAN_DEVICE_RESERVE ? (uint64_t)free_b - PLAN_DEVICE_RESERVE : 0;
#endif
    return 0;
}

/* The largest context in [lo, cap] (multiples of FIT_CTX_STEP, or cap itself) that fits; 0 if none. */
static int32_t fit_largest_ctx(const plan_input *in, int32_t gpu, bool dev, int32_t lo, int32_t cap, uint64_t host,
                               uint64_t devb) {
    coder_plan p;
    plan_compute(in, cap, gpu, dev, &p);
    if (fit_ok(&p, host, devb)) return cap;
    int32_t a = lo / FIT_CTX_STEP, b = (cap - 1) / FIT_CTX_STEP;   /* search k * STEP for k in [a, b] */
    if (a < 1) a = 1;
    int32_t best = 0;
    while (a <= b) {   /* the plan grows with the context: binary search */
        const int32_t k = a + (b - a) / 2;
        plan_compute(in, k * FIT_CTX_STEP, gpu, dev, &p);
        if (fit_ok(&p, host, devb)) {
            best = k * FIT_CTX_STEP;
            a = k + 1;
        } else {
            b = k - 1;
        }
    }
    return best;
}

coder_status plan_fit(const char *path, coder_model_params *mp, coder_session_params *sp, uint64_t host,
                      uint64_t devb, bool have_device, coder_plan *out, char *why, size_t why_cap) {
    if (!path || !mp || !sp || !out)
        return coder_fail(CODER_ERR_INVALID_ARG, "%s is NULL", !path ? "path" : !mp ? "mp" : !sp ? "sp" : "plan");
    if (out->size != sizeof *out)
        return coder_fail(CODER_ERR_INVALID_ARG, "plan->size = %zu: set it to sizeof(coder_plan) (%zu)", out->size,
                          sizeof *out);
    plan_input in;
    TRY(plan_open(path, mp, sp, &in));
    const int32_t L = in.hp.n_layers;
    const bool ctx_auto = in.sp.n_ctx == CODER_CTX_AUTO, gpu_auto = in.mp.n_gpu_layers == -1;
    const bool dev = have_device && in.mp.n_gpu_layers != 0;
    int32_t cap = in.hp.n_ctx_train > 0 ? in.hp.n_ctx_train : FIT_CTX_CAP_UNKNOWN;
    const int32_t ctx0 = ctx_auto || in.sp.n_ctx == 0 ? plan_default_ctx(&in.hp) : in.sp.n_ctx;
    char gpu_why[160] = "", ctx_why[200] = "";
    coder_plan p;

    int32_t gpu = 0;
    if (!dev) {
        snprintf(gpu_why, sizeof gpu_why, "%s", have_device ? "GPU off (n_gpu_layers 0)" : "no GPU: all layers on the CPU");
    } else if (!gpu_auto) {
        gpu = in.mp.n_gpu_layers > L ? L : in.mp.n_gpu_layers;
        snprintf(gpu_why, sizeof gpu_why, "%d of %d layers on the GPU (as asked)", (int)gpu, (int)L);
    } else {
        uint64_t need_all = 0;
        for (gpu = L; gpu > 0; gpu--) {
            plan_compute(&in, ctx0, gpu, true, &p);
            if (gpu == L) need_all = p.device_bytes;
            if (p.device_bytes <= devb) break;
        }
        if (gpu == L)
            snprintf(gpu_why, sizeof gpu_why, "all %d layers on the GPU (%.0f MiB of %.0f MiB at context %d)", (int)L,
                     fit_mib(need_all), fit_mib(devb), (int)ctx0);
        else
            snprintf(gpu_why, sizeof gpu_why, "%d of %d layers on the GPU: all would need %.0f MiB of device memory at "
                     "context %d, %.0f MiB available", (int)gpu, (int)L, fit_mib(need_all), (int)ctx0, fit_mib(devb));
    }

    int32_t ctx = ctx0;
    if (ctx_auto) {
        const int32_t lo = FIT_CTX_STEP < cap ? FIT_CTX_STEP : cap;
        ctx = fit_largest_ctx(&in, gpu, dev, lo, cap, host, devb);
        if (ctx == cap)
            snprintf(ctx_why, sizeof ctx_why, "context %d (the %s)", (int)ctx,
                     in.hp.n_ctx_train > 0 ? "training context" : "cap for files without a training context");
        else if (ctx > 0) {
            plan_compute(&in, ctx + FIT_CTX_STEP, gpu, dev, &p);
            snprintf(ctx_why, sizeof ctx_why, "context %d of %d: %d would need %.0f MiB host / %.0f MiB device", (int)ctx,
                     (int)cap, (int)(ctx + FIT_CTX_STEP), fit_mib(p.host_bytes), fit_mib(p.device_bytes));
        } else {
            ctx = lo;   /* nothing fits: report the smallest below */
        }
    } else {
        snprintf(ctx_why, sizeof ctx_why, "context %d (as asked)", (int)ctx);
    }

    plan_compute(&in, ctx, gpu, dev, &p);
    plan_close(&in);
    if (!fit_ok(&p, host, devb))
        return coder_fail(CODER_ERR_NOMEM, "'%s' at context %d with %d GPU layers needs %.0f MiB host and %.0f MiB device "
                          "memory; the budget is %.0f MiB host, %.0f MiB device", path, (int)ctx, (int)gpu,
                          fit_mib(p.host_bytes), fit_mib(p.device_bytes), fit_mib(host), fit_mib(devb));
    if (why && why_cap)
        snprintf(why, why_cap, "%s; %s; host %.0f of %.0f MiB, device %.0f of %.0f MiB", gpu_why, ctx_why,
                 fit_mib(p.host_bytes), fit_mib(host), fit_mib(p.device_bytes), fit_mib(devb));
    mp->n_gpu_layers = dev ? gpu : 0;
    sp->n_ctx = ctx;
    *out = p;
    return CODER_OK;
}

CODER_EXPORT coder_status coder_plan_fit(const char *path, coder_model_params *mp, coder_session_params *sp,
                                         uint64_t host_budget, uint64_t device_budget, coder_plan *plan, char *why,
                                         size_t why_cap) {
    if (why && why_cap) why[0] = 0;
    if (!mp || !sp) return coder_fail(CODER_ERR_INVALID_ARG, "%s is NULL", !mp ? "mp" : "sp");
    const bool have_device = mp->n_gpu_layers != 0 && device_count() > 0;
    if (!host_budget) {
        const uint64_t avail = fit_host_available(), reserve = avail / 10 < FIT_HOST_RESERVE_MAX ? avail / 10 : FIT_HOST_RESERVE_MAX;
        host_budget = avail - reserve;
    }
    if (!device_budget && have_device) device_budget = fit_device_free();
    return plan_fit(path, mp, sp, host_budget, device_budget, have_device, plan, why, why_cap);
}
