/* graph.cu - a decode step recorded as a CUDA graph and launched as one unit (issue 6 item 3).
 *
 * Why: one decode step of a 7B model is ~400 small kernels. Launched one by one, each costs a few
 * microseconds of driver time and leaves a gap on the device; at ~2 ms per token that is most of
 * the budget. A graph launch submits them together and the device runs them back to back.
 *
 * How: every step is captured again (stream capture records the launches instead of running them)
 * and cudaGraphExecUpdate copies the new parameters - positions, attention splits - into the
 * executable graph made by the first step; a new one is instantiated only when the shape changes
 * (attention gains its combine kernel once the context passes 128 tokens, ~twice per session).
 * Capturing costs host time like launching, but no driver submission per kernel.
 *
 * The ops of a step must not synchronise (the embedding's id upload does, so forward.c starts
 * recording after it). An op that does anyway invalidates the capture: graphs are then turned off
 * for the context and the caller runs the step directly, so a capture problem costs speed, never a
 * result. */
#include "common.cuh"

extern "C" coder_status cuda_graph_begin(cuda_ctx *c) {
    if (c->graph_off) return CODER_ERR_UNSUPPORTED;
    cudaError_t e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        cudaGetLastError();
        c->graph_off = 1;
        coder_log(CODER_LOG_WARN, "CUDA graphs off for this session: cudaStreamBeginCapture: %s", cudaGetErrorString(e));
        return CODER_ERR_UNSUPPORTED;
    }
    c->capturing = 1;
    return CODER_OK;
}

/* Copies graph's parameters into the context's executable graph, or makes a new one. */
static coder_status graph_install(cuda_ctx *c, cudaGraph_t graph) {
    if (c->graph_exec) {
        cudaGraphExecUpdateResultInfo info;
        if (cudaGraphExecUpdate(c->graph_exec, graph, &info) == cudaSuccess) {
            c->graph_updates++;
            return CODER_OK;
        }
        cudaGetLastError();   /* the shape changed: not an error, instantiate below */
        cudaGraphExecDestroy(c->graph_exec);
        c->graph_exec = NULL;
    }
    const cudaError_t e = cudaGraphInstantiate(&c->graph_exec, graph, 0);
    if (e != cudaSuccess) {   /* e.g. out of memory: run steps directly from now on, not fail each */
        cudaGetLastError();
        c->graph_exec = NULL;
        c->graph_off = 1;
        coder_log(CODER_LOG_WARN, "CUDA graphs off for this session: instantiating the decode step failed (%s)",
                  cudaGetErrorString(e));
        return CODER_ERR_UNSUPPORTED;
    }
    c->graph_instantiations++;
    return CODER_OK;
}

extern "C" coder_status cuda_graph_end(cuda_ctx *c, int run) {
    if (!c->capturing) return coder_fail(CODER_ERR_INTERNAL, "cuda_graph_end without cuda_graph_begin");
    c->capturing = 0;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    if (e != cudaSuccess) {   /* an op could not be captured: nothing ran */
        cudaGetLastError();
        if (graph) cudaGraphDestroy(graph);
        c->graph_off = 1;
        coder_log(CODER_LOG_WARN, "CUDA graphs off for this session: the decode step could not be captured (%s)",
                  cudaGetErrorString(e));
        return CODER_ERR_UNSUPPORTED;
    }
    coder_status st = CODER_OK;
    if (run) {
        st = graph_install(c, graph);
        if (st == CODER_OK) {
            e = cudaGraphLaunch(c->graph_exec, c->stream);
            if (e == cudaSuccess && c->sync_each) e = cudaStreamSynchronize(c->stream);
            if (e != cudaSuccess) st = coder_fail(cuda_status_of(e), "cudaGraphLaunch: %s (%s)", cudaGetErrorName(e),
                                                  cudaGetErrorString(e));
        }
    }
    cudaGraphDestroy(graph);
    return st;
}

extern "C" void cuda_graph_counts(const cuda_ctx *c, unsigned long long *updates, unsigned long long *instantiations) {
    *updates = c->graph_updates;
    *instantiations = c->graph_instantiations;
}
