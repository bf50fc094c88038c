/* cpu_gemm.h - the prefill GEMM (cpu_gemm.c): y[t] = W x[t] for many tokens at once. */
#ifndef CODER_CPU_GEMM_H
#define CODER_CPU_GEMM_H

#include "cpu.h"

/* True when kernel level k has a GEMM for weight type `type` (AVX-512 VNNI, every type with a
 * qdot kernel); cpu_matmul uses it for n > CPU_QDOT_NT tokens. */
bool cpu_gemm_supports(const cpu_kernels *k, uint32_t type);

/* W (rows, cols) @ x [n][cols] -> y [n][rows], split over the pool. Same activation quantization
 * as cpu_matmul; the results do not depend on the thread count. CODER_ERR_UNSUPPORTED when
 * !cpu_gemm_supports(k, W->type); CODER_ERR_NOMEM when its scratch cannot be allocated. */
coder_status cpu_gemm(threadpool *tp, const cpu_kernels *k, const weight *W, const float *x, int n, float *y);

#endif
