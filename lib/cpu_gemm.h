/* cpu_gemm.h - the prefill GEMM (cpu_gemm.c): y[t] = W x[t] for many tokens at once. */
#ifndef CODER_CPU_GEMM_H
#define CODER_CPU_GEMM_H

#include "cpu.h"

/* True when kernel level k has a GEMM for weight type `type`: AVX-512 VNNI every type with a qdot
 * kernel, AVX2 F16/BF16/F32; the scalar level none. */
bool cpu_gemm_supports(const cpu_kernels *k, uint32_t type);

/* True when cpu_matmul should take the GEMM for n tokens: supported, and n above the point where
 * the per-row path (which needs no packing) is faster - 5 for the integer types, 10 for F16/BF16/
 * F32 (bench_gemm, one thread, 2048 x 1536: F16 GEMM 0.55x the per-row path at n = 5, 0.88x at 8,
 * 1.16x at 12; Q4_K 0.97x at 5, 1.37x at 8; the 32-block types 1.4-1.7x at 5). */
bool cpu_gemm_use(const cpu_kernels *k, uint32_t type, int n);

/* Scratch bytes cpu_gemm needs for up to n tokens of up to max_cols columns on nth threads, the
 * largest over the weight types (the F16/BF16/F32 kind, whose transposed activations take 4 bytes
 * per value, only when float_weights: a quantized model's session need not hold them): a
 * session that passes this much never allocates in a prefill. */
size_t cpu_gemm_scratch_bytes(int64_t max_cols, int n, int nth, bool float_weights);

/* True when weight type t takes the GEMM's F16/BF16/F32 kind (for float_weights above). */
bool cpu_gemm_is_float(uint32_t type);

/* W (rows, cols) @ x [n][cols] -> y [n][rows], split over the pool. Same activation quantization
 * as cpu_matmul; the results do not depend on the thread count. scratch (64-byte aligned) is used
 * when it holds scratch_bytes >= what this call needs; otherwise (or NULL) the call allocates its
 * own. CODER_ERR_UNSUPPORTED when !cpu_gemm_supports(k, W->type); CODER_ERR_NOMEM when its scratch
 * cannot be allocated. */
coder_status cpu_gemm(threadpool *tp, const cpu_kernels *k, const weight *W, const float *x, int n, float *y,
                      void *scratch, size_t scratch_bytes);

#endif
