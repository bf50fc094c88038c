/* cublas_lazy.cu - cuBLAS loaded with dlopen the first time a GPU session needs it.
 *
 * Linking libcublas directly costs every process that links this library about 155 MB of resident
 * memory and ~0.1 s at start-up (libcublasLt's relocations are processed at load), GPU or not: a
 * `coder -p` per task and every CPU-only host would pay it. So the five cuBLAS calls we make go
 * through pointers resolved here, once. Search order: $CODER_CUBLAS (a path), then
 * libcublas.so.<major> and libcublas.so through the usual dlopen search (the library's and the
 * executable's run paths, LD_LIBRARY_PATH, the ldconfig cache), then the toolkit directory the
 * library was built against. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.cuh"

#define CUBLAS_STR2(x) #x
#define CUBLAS_STR(x) CUBLAS_STR2(x)
#ifndef CODER_CUDA_HOME
#define CODER_CUDA_HOME "/usr/local/cuda"
#endif

static cuda_blas_api blas_api;
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static char blas_why[512];   /* written once inside pthread_once */

static void blas_load(void) {
    const char *env = getenv("CODER_CUBLAS");
    const char *names[] = {env && *env ? env : NULL, "libcublas.so." CUBLAS_STR(CUBLAS_VER_MAJOR), "libcublas.so",
                           CODER_CUDA_HOME "/lib64/libcublas.so." CUBLAS_STR(CUBLAS_VER_MAJOR)};
    void *h = NULL;
    const char *err = "not tried";
    char other[256] = "";
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++) {
        if (!names[i]) continue;
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            err = dlerror();
            continue;
        }
        /* the unversioned name (or CODER_CUBLAS) may be another major version than the headers and
         * the static runtime we were built with: refuse it rather than call into it */
        typedef cublasStatus_t (*get_property_fn)(libraryPropertyType, int *);
        get_property_fn get_property = (get_property_fn)dlsym(h, "cublasGetProperty");
        int major = -1;
        if (!get_property || get_property(MAJOR_VERSION, &major) != CUBLAS_STATUS_SUCCESS || major != CUBLAS_VER_MAJOR) {
            snprintf(other, sizeof other, "%s is cuBLAS %d, not %d", names[i], major, (int)CUBLAS_VER_MAJOR);
            dlclose(h);
            h = NULL;
        }
    }
    if (!h) {
        snprintf(blas_why, sizeof blas_why, "cuBLAS (libcublas.so.%d) not found: %s%s%s; set CODER_CUBLAS to its path",
                 (int)CUBLAS_VER_MAJOR, err ? err : "?", other[0] ? "; " : "", other);
        return;
    }
    cuda_blas_api a;
    a.create = (decltype(a.create))dlsym(h, "cublasCreate_v2");
    a.destroy = (decltype(a.destroy))dlsym(h, "cublasDestroy_v2");
    a.set_stream = (decltype(a.set_stream))dlsym(h, "cublasSetStream_v2");
    a.set_math_mode = (decltype(a.set_math_mode))dlsym(h, "cublasSetMathMode");
    a.gemm_ex = (decltype(a.gemm_ex))dlsym(h, "cublasGemmEx");
    if (!a.create || !a.destroy || !a.set_stream || !a.set_math_mode || !a.gemm_ex) {
        snprintf(blas_why, sizeof blas_why, "cuBLAS: a symbol is missing from the loaded library (%s)", dlerror());
        dlclose(h);
        return;
    }
    blas_api = a;   /* the handle stays open for the life of the process */
}

extern "C" coder_status cuda_blas(const cuda_blas_api **out) {
    pthread_once(&blas_once, blas_load);
    *out = blas_api.create ? &blas_api : NULL;
    return blas_api.create ? CODER_OK : coder_fail(CODER_ERR_DEVICE, "%s", blas_why);
}

extern "C" coder_status cuda_blas_available(void) {
    const cuda_blas_api *a;
    return cuda_blas(&a);
}
