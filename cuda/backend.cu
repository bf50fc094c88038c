/* backend.cu - the CUDA runtime side of the library: device discovery, device memory, the
 * pinned-staging weight uploader, and the per-session context (stream, cuBLAS handle, scratch).
 * Everything that crosses into C is extern "C" (cuda_api.h) and returns statuses; no CUDA error
 * ever aborts the host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>

#include "common.cuh"

extern "C" int cuda_device_probe(char *why, size_t why_cap, char *name, size_t name_cap) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        snprintf(why, why_cap, "cudaGetDeviceCount: %s", cudaGetErrorString(err));
        cudaGetLastError(); /* clear the non-sticky error so later probes start clean */
        return 0;
    }
    if (n == 0) {
        snprintf(why, why_cap, "no CUDA device found");
        return 0;
    }
    cudaDeviceProp prop;
    err = cudaGetDeviceProperties(&prop, 0);
    if (err != cudaSuccess) {
        snprintf(why, why_cap, "cudaGetDeviceProperties: %s", cudaGetErrorString(err));
        return 0;
    }
    if (prop.major < 8) {
        snprintf(why, why_cap, "%s has compute capability %d.%d; sm_80 or newer is required",
                 prop.name, prop.major, prop.minor);
        return 0;
    }
    snprintf(name, name_cap, "%s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
             (double)prop.totalGlobalMem / (1u << 30));
    return n;
}

/* ---- memory --------------------------------------------------------------------------------- */

extern "C" coder_status cuda_mem_info(size_t *free_bytes, size_t *total_bytes) {
    CUDA_TRY(cudaSetDevice(0));
    CUDA_TRY(cudaMemGetInfo(free_bytes, total_bytes));
    return CODER_OK;
}

/* Every device and pinned allocation of the device layer goes through these four, which count
 * what is live and can be told to fail (cuda_test_fail_alloc): the out-of-memory paths are tested
 * on a GPU with plenty of memory, leaks are counted exactly (cudaMemGetInfo sees 2 MiB pages). */
static std::atomic<int> fail_alloc_in{-1};
static std::atomic<long> live_dev{0}, live_pinned{0};

static bool alloc_fault(void) {
    int n = fail_alloc_in.load();
    while (n >= 0 && !fail_alloc_in.compare_exchange_weak(n, n - 1)) {}
    return n == 0;
}
static cudaError_t dev_malloc(void **p, size_t bytes) {
    if (alloc_fault()) return cudaErrorMemoryAllocation;
    const cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaSuccess) live_dev++;
    return e;
}
static void dev_free(void *p) {
    if (!p) return;
    cudaFree(p);
    live_dev--;
}
static cudaError_t pinned_malloc(void **p, size_t bytes) {
    if (alloc_fault()) return cudaErrorMemoryAllocation;
    const cudaError_t e = cudaHostAlloc(p, bytes, cudaHostAllocDefault);
    if (e == cudaSuccess) live_pinned++;
    return e;
}
static void pinned_free(void *p) {
    if (!p) return;
    cudaFreeHost(p);
    live_pinned--;
}

extern "C" void cuda_test_fail_alloc(int nth) { fail_alloc_in = nth < 0 ? -1 : nth; }
extern "C" void cuda_test_live_allocs(long *device, long *pinned) {
    *device = live_dev.load();
    *pinned = live_pinned.load();
}

extern "C" coder_status cuda_dev_alloc(void **out, size_t bytes, const char *what) {
    *out = NULL;
    if (bytes == 0) bytes = 256;   /* a valid pointer for empty buffers */
    cudaError_t e = dev_malloc(out, bytes);
    if (e != cudaSuccess) {
        *out = NULL;
        cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        cudaGetLastError();
        return coder_fail(e == cudaErrorMemoryAllocation ? CODER_ERR_DEVICE_NOMEM : cuda_status_of(e),
                          "cudaMalloc of %.1f MiB for %s: %s (device has %.1f of %.1f MiB free)",
                          (double)bytes / 1048576.0, what, cudaGetErrorString(e), (double)fr / 1048576.0,
                          (double)tot / 1048576.0);
    }
    return CODER_OK;
}

extern "C" void cuda_dev_free(void *p) { dev_free(p); }

extern "C" coder_status cuda_dev_memset(void *p, int byte, size_t bytes) {
    CUDA_TRY(cudaMemset(p, byte, bytes));
    CUDA_TRY(cudaDeviceSynchronize());
    return CODER_OK;
}

/* ---- uploader: two pinned buffers, one stream, an event per buffer --------------------------- */

struct cuda_uploader {
    cudaStream_t stream;
    void *pinned[2];
    cudaEvent_t done[2];
    int used[2];              /* an async copy out of pinned[i] was issued (wait before reuse) */
    size_t cap;
    int next;
};

extern "C" coder_status cuda_upload_end(cuda_uploader *u) {
    if (!u) return CODER_OK;
    coder_status st = CODER_OK;
    if (u->stream) {
        cudaError_t e = cudaStreamSynchronize(u->stream);
        if (e != cudaSuccess) st = cuda_fail_err(e, __FILE__, __LINE__, "cudaStreamSynchronize (upload)");
    }
    for (int i = 0; i < 2; i++) {
        if (u->done[i]) cudaEventDestroy(u->done[i]);
        pinned_free(u->pinned[i]);
    }
    if (u->stream) cudaStreamDestroy(u->stream);
    coder_mfree(u);
    return st;
}

extern "C" coder_status cuda_upload_begin(size_t staging_bytes, cuda_uploader **out) {
    *out = NULL;
    cuda_uploader *u = (cuda_uploader *)coder_calloc(1, sizeof *u);
    if (!u) return coder_fail(CODER_ERR_NOMEM, "cuda uploader");
    u->cap = staging_bytes;
    cudaError_t e = cudaSetDevice(0);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&u->stream, cudaStreamNonBlocking);
    for (int i = 0; i < 2 && e == cudaSuccess; i++) {
        e = pinned_malloc(&u->pinned[i], staging_bytes);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&u->done[i], cudaEventDisableTiming);
    }
    if (e != cudaSuccess) {
        coder_status st = cuda_fail_err(e, __FILE__, __LINE__, "upload staging (2 pinned buffers)");
        cuda_upload_end(u);
        return st;
    }
    *out = u;
    return CODER_OK;
}

extern "C" coder_status cuda_upload(cuda_uploader *u, void *dst, const void *src, size_t bytes) {
    const char *s = (const char *)src;
    char *d = (char *)dst;
    while (bytes > 0) {
        const int i = u->next;
        const size_t n = bytes < u->cap ? bytes : u->cap;
        if (u->used[i]) CUDA_TRY(cudaEventSynchronize(u->done[i]));   /* its last DMA finished */
        memcpy(u->pinned[i], s, n);   /* reads the mmap: page faults happen here, on the host */
        CUDA_TRY(cudaMemcpyAsync(d, u->pinned[i], n, cudaMemcpyHostToDevice, u->stream));
        CUDA_TRY(cudaEventRecord(u->done[i], u->stream));
        u->used[i] = 1;
        u->next = 1 - i;
        s += n;
        d += n;
        bytes -= n;
    }
    return CODER_OK;
}

/* ---- grouped weight layouts (cuda_api.h, quant.cuh) ------------------------------------------ */

extern "C" uint32_t cuda_device_type(uint32_t type) {
    const char *env = getenv("CODER_CUDA_GROUPED");
    if ((env && env[0] == '0') || !cuda_group_of(type).block || type >= 100) return type;
    return type + 100;
}

extern "C" void cuda_group_rows(uint32_t type, const void *src, int64_t rows, int64_t cols, uint64_t row_bytes, void *dst) {
    const cuda_group_fmt f = cuda_group_of(type);
    const int64_t nb = cols / f.block;
    const uint64_t out_bytes = cuda_group_row_bytes(type, nb);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *s = (const uint8_t *)src + (uint64_t)r * row_bytes;
        uint8_t *d = (uint8_t *)dst + (uint64_t)r * out_bytes;
        for (int64_t g0 = 0; g0 < nb; g0 += 8) {
            const int k = (int)(nb - g0 < 8 ? nb - g0 : 8);
            memset(d, 0, (size_t)f.head);   /* header fields of blocks the last group lacks */
            for (int j = 0; j < k; j++) {
                const uint8_t *b = s + (g0 + j) * f.bytes;
                uint8_t *pay = d + f.head + j * f.pay;
                if (f.block == 256) {   /* Q6_K {ql[128]; qh[64]; scales[16]; d} */
                    memcpy(d + 2 * j, b + 208, 2);
                    memcpy(d + 16 + 16 * j, b + 192, 16);
                    memcpy(pay, b, 192);
                } else if (f.head == 48) {   /* Q5_0 {d; qh[4]; qs[16]} */
                    memcpy(d + 2 * j, b, 2);
                    memcpy(d + 16 + 4 * j, b + 2, 4);
                    memcpy(pay, b + 6, 16);
                } else {   /* Q8_0, Q4_0 {d; qs} */
                    memcpy(d + 2 * j, b, 2);
                    memcpy(pay, b + 2, (size_t)f.pay);
                }
            }
            d += f.head + k * f.pay;
        }
    }
}

/* ---- per-session context -------------------------------------------------------------------- */

extern "C" void cuda_ctx_free(cuda_ctx *c) {
    if (!c) return;
    if (c->stream) cudaStreamSynchronize(c->stream);
    if (c->graph_exec) cudaGraphExecDestroy(c->graph_exec);
    if (c->blas) c->bl->destroy(c->blas);
    dev_free(c->ids_dev);
    dev_free(c->argmax_dev);
    dev_free(c->xh);
    dev_free(c->deq);
    dev_free(c->xq);
    dev_free(c->xd);
    dev_free(c->topk_val);
    dev_free(c->topk_id);
    dev_free(c->topk_bad);
    dev_free(c->topk_dev);
    pinned_free(c->topk_host);
    dev_free(c->att_part);
    dev_free(c->pos_dev);
    pinned_free(c->ids_host);
    pinned_free(c->argmax_host);
    if (c->stream) cudaStreamDestroy(c->stream);
    cudaGetLastError();
    coder_mfree(c);
}

extern "C" coder_status cuda_ctx_new(const cuda_ctx_params *p, cuda_ctx **out) {
    *out = NULL;
    cuda_ctx *c = (cuda_ctx *)coder_calloc(1, sizeof *c);
    if (!c) return coder_fail(CODER_ERR_NOMEM, "cuda context");
    c->p = *p;
    const char *env = getenv("CODER_CUDA_SYNC");
    c->sync_each = env && env[0] == '1';
    const char *genv = getenv("CODER_CUDA_GRAPH");
    c->graph_off = c->sync_each || (genv && genv[0] == '0');   /* a synchronising op cannot be captured */
    const char *menv = getenv("CODER_CUDA_MMV");
    c->mmv_f32 = menv && !strcmp(menv, "f32");
    const char *penv = getenv("CODER_CUDA_PREFILL");
    c->prefill = penv && !strcmp(penv, "mma") ? CUDA_PREFILL_MMA : penv && !strcmp(penv, "cublas") ? CUDA_PREFILL_CUBLAS
                                                                                                  : CUDA_PREFILL_AUTO;
    coder_status st = CODER_OK;
    cudaError_t e;
    int dev_sm = 0;
#define CTX_TRY(call, what)                                                                        \
    do {                                                                                           \
        if ((e = (call)) != cudaSuccess) {                                                         \
            st = cuda_fail_err(e, __FILE__, __LINE__, what);                                       \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)
    CTX_TRY(cudaSetDevice(0), "cudaSetDevice(0)");
    CTX_TRY(cudaDeviceGetAttribute(&dev_sm, cudaDevAttrMultiProcessorCount, 0), "multiprocessor count");
    c->n_sm = dev_sm;
    CTX_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    CTX_TRY(dev_malloc((void **)&c->ids_dev, (size_t)p->max_tokens * sizeof(int32_t)), "token id buffer");
    CTX_TRY(pinned_malloc((void **)&c->ids_host, (size_t)p->max_tokens * sizeof(int32_t)),
            "pinned token ids");
    CTX_TRY(dev_malloc((void **)&c->argmax_dev, 2 * sizeof(int32_t)), "argmax result");
    CTX_TRY(dev_malloc((void **)&c->pos_dev, sizeof(int32_t)), "decode step position");
    CTX_TRY(pinned_malloc((void **)&c->argmax_host, 2 * sizeof(int32_t)), "pinned argmax result");
    if (p->max_tokens > 8) {   /* the GEMM path exists only for batches above the mat-vec limit */
        CTX_TRY(dev_malloc((void **)&c->xh, (size_t)p->max_tokens * (size_t)p->max_cols * sizeof(__half)),
                "f16 activation scratch");
        CTX_TRY(dev_malloc((void **)&c->deq, (size_t)p->deq_elems * sizeof(__half)), "f16 weight scratch");
    }
    CTX_TRY(dev_malloc((void **)&c->xq, (size_t)CUDA_MMV_MAX_TOKENS * (size_t)p->max_cols), "int8 activation scratch");
    CTX_TRY(dev_malloc((void **)&c->xd, (size_t)CUDA_MMV_MAX_TOKENS * (size_t)cuda_xd_stride(p->max_cols) * sizeof(float)),
            "int8 activation scales");
    CTX_TRY(dev_malloc((void **)&c->topk_val, CUDA_TOPK_CHUNK * sizeof(float)), "top-k candidates");
    CTX_TRY(dev_malloc((void **)&c->topk_id, CUDA_TOPK_CHUNK * sizeof(int)), "top-k candidate ids");
    CTX_TRY(dev_malloc((void **)&c->topk_bad, CUDA_TOPK_MAX_WIDTH / CUDA_TOPK_CHUNK * sizeof(int)), "top-k flags");
    CTX_TRY(dev_malloc((void **)&c->topk_dev, (2 * CUDA_TOPK_MAX + 1) * sizeof(int32_t)), "top-k result");
    CTX_TRY(pinned_malloc((void **)&c->topk_host, (2 * CUDA_TOPK_MAX + 1) * sizeof(int32_t)), "pinned top-k result");
    c->att_part_floats = (size_t)CUDA_ATT_MAX_SPLITS * CUDA_ATT_PART_TOKENS * (size_t)p->max_heads *
                         (size_t)(p->head_dim + 2);
    CTX_TRY(dev_malloc((void **)&c->att_part, c->att_part_floats * sizeof(float)), "attention split scratch");
#undef CTX_TRY
    {
        const cuda_blas_api *bl = NULL;
        if ((st = cuda_blas(&bl)) != CODER_OK) goto fail;
        cublasStatus_t bs = bl->create(&c->blas);
        if (bs == CUBLAS_STATUS_SUCCESS) c->bl = bl;
        if (bs != CUBLAS_STATUS_SUCCESS) {
            c->blas = NULL;
            st = coder_fail(bs == CUBLAS_STATUS_ALLOC_FAILED ? CODER_ERR_DEVICE_NOMEM : CODER_ERR_DEVICE,
                            "cublasCreate: status %d", (int)bs);
            goto fail;
        }
        bs = bl->set_stream(c->blas, c->stream);
        if (bs == CUBLAS_STATUS_SUCCESS) bs = bl->set_math_mode(c->blas, CUBLAS_DEFAULT_MATH);
        if (bs != CUBLAS_STATUS_SUCCESS) {
            st = coder_fail(CODER_ERR_DEVICE, "cublasSetStream/SetMathMode: status %d", (int)bs);
            goto fail;
        }
    }
    *out = c;
    return CODER_OK;
fail:
    cudaGetLastError();
    cuda_ctx_free(c);
    return st;
}

extern "C" coder_status cuda_ctx_sync(cuda_ctx *c) {
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return CODER_OK;
}

extern "C" coder_status cuda_d2h(cuda_ctx *c, void *dst, const void *src, size_t bytes) {
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return CODER_OK;
}

extern "C" coder_status cuda_h2d(cuda_ctx *c, void *dst, const void *src, size_t bytes) {
    c->launches++;
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return CODER_OK;
}

extern "C" coder_status cuda_d2d(cuda_ctx *c, void *dst, const void *src, size_t bytes) {
    c->launches++;
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
    if (c->sync_each) CUDA_TRY(cudaStreamSynchronize(c->stream));
    return CODER_OK;
}
