/* backend.cu - the CUDA side of the library: device discovery (kernels and the op table come with
 * the CUDA backend issue). Everything that crosses into C is extern "C" and returns statuses; no
 * CUDA error ever aborts the host. */
#include <cuda_runtime.h>
#include <stdio.h>

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
