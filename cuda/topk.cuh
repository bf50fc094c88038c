/* topk.cuh - the compare-exchange network of the top-k kernels (ops.cu cuda_topk): a bitonic sort
 * of CUDA_TOPK_CHUNK (value, index) pairs into the sampler's order (larger value first, the lower
 * index on ties). Stage (size, stride) exchanges pair t = 0 .. CUDA_TOPK_CHUNK/2 - 1; the pairs of
 * one stage are disjoint, so the kernel runs a stage's pairs in parallel between barriers and
 * tests/test_cuda_deq.cu runs them one after another on the host. */
#ifndef CODER_CUDA_TOPK_CUH
#define CODER_CUDA_TOPK_CUH

#include "quant.cuh"

CQ_FN bool topk_before(float va, int ia, float vb, int ib) { return va > vb || (va == vb && ia < ib); }

CQ_FN void topk_exchange(float *v, int *id, int size, int stride, int t) {
    const int i = 2 * t - (t & (stride - 1)), j = i + stride;
    const bool first_half = (i & size) == 0;   /* this run ends up best-first, the other best-last */
    const bool swap = first_half ? topk_before(v[j], id[j], v[i], id[i]) : topk_before(v[i], id[i], v[j], id[j]);
    if (swap) {
        const float tv = v[i];
        const int ti = id[i];
        v[i] = v[j], id[i] = id[j];
        v[j] = tv, id[j] = ti;
    }
}

#endif
