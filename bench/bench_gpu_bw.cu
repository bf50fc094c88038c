/* bench_gpu_bw.cu - device memory bandwidth of GPU 0, the ceiling decode is compared against.
 *
 *   build/bench/bench_gpu_bw [MiB]      (default 2048 MiB per buffer)
 *
 * copy: a 16-byte-per-thread grid-stride copy between two buffers, counting bytes read + written;
 * read: a 16-byte-per-thread read-only sum (what a weight-streaming mat-vec does). Each is timed
 * with CUDA events over 20 runs after 3 warm-ups; the median is printed. Buffers are filled with
 * non-zero data first. Last line: "gpu_bw copy_gbs C read_gbs R" for scripts. */
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cuda_runtime.h>

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "bench_gpu_bw: %s: %s\n", #call, cudaGetErrorString(e_));              \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

__global__ void fill(uint4 *p, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = make_uint4((unsigned)i, (unsigned)i * 3u + 1u, 7u, (unsigned)(i >> 7));
}

__global__ void copy(const uint4 *__restrict__ a, uint4 *__restrict__ b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) b[i] = a[i];
}

__global__ void readsum(const uint4 *__restrict__ a, size_t n, unsigned *out) {
    unsigned s = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint4 v = a[i];
        s += v.x ^ v.y ^ v.z ^ v.w;
    }
    if (s == 0x12345678u) *out = s;   /* keeps the loads */
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 2048;
    size_t bytes = mib << 20, n = bytes / 16;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    uint4 *a, *b;
    unsigned *o;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMalloc(&o, 4));
    const int grid = prop.multiProcessorCount * 8, block = 512;
    fill<<<grid, block>>>(a, n);
    fill<<<grid, block>>>(b, n);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    double res[2];
    for (int kind = 0; kind < 2; kind++) {
        std::vector<float> ms;
        for (int r = 0; r < 23; r++) {
            CK(cudaEventRecord(e0));
            if (kind == 0) copy<<<grid, block>>>(a, b, n);
            else readsum<<<grid, block>>>(a, n, o);
            CK(cudaEventRecord(e1));
            CK(cudaEventSynchronize(e1));
            CK(cudaGetLastError());
            float t;
            CK(cudaEventElapsedTime(&t, e0, e1));
            if (r >= 3) ms.push_back(t);
        }
        std::sort(ms.begin(), ms.end());
        double med = ms[ms.size() / 2] * 1e-3;
        res[kind] = (double)bytes * (kind == 0 ? 2 : 1) / med / 1e9;
    }
    printf("device     %s, %d SMs, %.1f GiB\n", prop.name, prop.multiProcessorCount, (double)prop.totalGlobalMem / (1 << 30));
    printf("copy       %.1f GB/s (read + write, %zu MiB buffers, median of 20)\n", res[0], mib);
    printf("read       %.1f GB/s (read-only sum)\n", res[1]);
    printf("gpu_bw copy_gbs %.1f read_gbs %.1f\n", res[0], res[1]);
    return 0;
}
