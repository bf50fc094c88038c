/* graph.cu - a decode step recorded as a CUDA graph once and replayed (issue 6 item 3).
 *
 * Why: one decode step of a 7B model is ~400 small kernels. Launched one by one, each costs a few
 * microseconds of driver time and leaves a gap on the device; at ~2 ms per token that is most of
 * the budget. Even captured into a graph each step, the capture itself costs host time per
 * kernel. So a step is recorded once and the graph is launched again for the next steps.
 *
 * How: what changes from one decode step to the next is the position. While recording, the
 * kernels that use it (RoPE, the KV write, attention) read it from device memory (ctx->pos_dev,
 * step_pos in common.cuh), and cuda_graph_begin writes it there before every launch. The attention
 * kernel also derives its split boundaries from that length on the device; only the number of
 * splits (grid z) is fixed in a recording, so the recording is keyed by it together with what the
 * caller passes (forward.c: its buffers' layout). A step with another key is recorded again, and
 * cudaGraphExecUpdate moves the new parameters into the executable graph (a new one is
 * instantiated when that fails). Up to ~8K tokens of context the split count grows every 128
 * tokens (a new recording each time); past that a graph is replayed for the rest of the session.
 *
 * The ops of a step must not synchronise (the embedding's id upload does, so forward.c starts
 * recording after it). An op that does anyway invalidates the capture: graphs are then turned off
 * for the context and the caller runs the step directly, so a capture problem costs speed, never a
 * result. */
#include "common.cuh"

__global__ void set_pos_kernel(int32_t *pos_dev, int32_t pos) { *pos_dev = pos; }

extern "C" coder_status cuda_graph_begin(cuda_ctx *c, int32_t pos0, uint64_t key, int *replay) {
    *replay = 0;
    if (c->graph_off || !c->pos_dev) return CODER_ERR_UNSUPPORTED;
    /* the position for this step, ahead of the graph on the stream (a kernel argument: no host
     * buffer to keep alive) */
    set_pos_kernel<<<1, 1, 0, c->stream>>>(c->pos_dev, pos0);
    LAUNCH_CHECK(c, "set_pos");
    if (c->graph_exec && c->graph_key == key) {
        c->replaying = 1;
        *replay = 1;
        return CODER_OK;
    }
    cudaError_t e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        cudaGetLastError();
        c->graph_off = 1;
        coder_log(CODER_LOG_WARN, "CUDA graphs off for this session: cudaStreamBeginCapture: %s", cudaGetErrorString(e));
        return CODER_ERR_UNSUPPORTED;
    }
    c->capturing = 1;
    c->pos_from_dev = 1;
    c->graph_key = key;
    return CODER_OK;
}

static coder_status graph_launch(cuda_ctx *c) {
    c->launches++;
    cudaError_t e = cudaGraphLaunch(c->graph_exec, c->stream);
    if (e == cudaSuccess && c->sync_each) e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) return coder_fail(cuda_status_of(e), "cudaGraphLaunch: %s (%s)", cudaGetErrorName(e), cudaGetErrorString(e));
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
    if (c->replaying) {
        c->replaying = 0;
        if (!run) return CODER_OK;
        c->graph_replays++;
        return graph_launch(c);
    }
    if (!c->capturing) return coder_fail(CODER_ERR_INTERNAL, "cuda_graph_end without cuda_graph_begin");
    c->capturing = 0;
    c->pos_from_dev = 0;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    if (e != cudaSuccess || !run) c->graph_key = 0;   /* nothing valid recorded for this key */
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
        if (st == CODER_OK) st = graph_launch(c);
        else c->graph_key = 0;
    }
    cudaGraphDestroy(graph);
    return st;
}

extern "C" void cuda_graph_counts(const cuda_ctx *c, unsigned long long *updates, unsigned long long *instantiations,
                                  unsigned long long *replays) {
    *updates = c->graph_updates;
    *instantiations = c->graph_instantiations;
    *replays = c->graph_replays;
}
