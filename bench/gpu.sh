#!/bin/sh
# bench/gpu.sh - the GPU checks and benchmark of issue 6, for a machine with an NVIDIA GPU.
#
#   sh bench/gpu.sh test    test_gpu (CUDA vs CPU per op, whole-model logits) + compute-sanitizer
#   sh bench/gpu.sh bench   qwen2.5-coder-7b synthetic models (Q4_K_M, Q6_K, Q8_0) made here:
#                           decode tok/s at depth 0 / 4096 / 16384, prefill 512 / 2048, and the
#                           fraction of the device bandwidth measured in the same run; then
#                           decode with CODER_CUDA_GRAPH=0 (the graphs' gain) and with 14 of 28
#                           layers on the GPU (partial offload)
#   sh bench/gpu.sh all     both (about 15-20 minutes on an H100; see docs/CUDA.md)
#
# Binaries come from $CODER_BIN (default build/: build/coder, build/test/bin/test_gpu,
# build/bench/bench_gpu_bw); missing ones are built with make. A vocabulary GGUF is needed for
# `coder bench` (the models are generated with its tokenizer): $CODER_GPU_VOCAB, else
# .gpu/ggml-vocab-qwen2.gguf, else ../shared/refdata/vocab/ggml-vocab-qwen2.gguf. Models are
# written to $GPU_WORK (default /tmp/coder_gpu) and deleted after use; results go to $OUT
# (default /tmp/coder_gpu_out): gpu_bench.jsonl, test.log, and the table printed last.
set -u
MODE=${1:-all}
BIN=${CODER_BIN:-build}
WORK=${GPU_WORK:-/tmp/coder_gpu}
OUTDIR=${OUT:-/tmp/coder_gpu_out}
TYPES=${GPU_TYPES:-"Q4_K_M Q6_K Q8_0"}
REPS=${GPU_REPS:-3}
mkdir -p "$WORK" "$OUTDIR"

# libcublas.so.13 is dlopened on first GPU use (cuda/cublas_lazy.cu); where neither the toolkit
# directory nor the ldconfig cache has it (e.g. the pip nvidia-cublas wheel), point CODER_CUBLAS at it
if [ ! -e "${CUDA_HOME:-/usr/local/cuda}/lib64/libcublas.so.13" ] && ! ldconfig -p 2>/dev/null | grep -q 'libcublas.so.13'; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64 $(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__))' 2>/dev/null)/cu13/lib \
             $(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__))' 2>/dev/null)/cublas/lib; do
        [ -e "$d/libcublas.so.13" ] && export CODER_CUBLAS="$d/libcublas.so.13" LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}" && break
    done
fi

need() {   # need TARGET: build it with make when absent
    [ -x "$1" ] || make -j"$(nproc)" "$1" >"$OUTDIR/build.log" 2>&1 || { echo "FAIL build $1 (see $OUTDIR/build.log)"; tail -20 "$OUTDIR/build.log"; exit 1; }
}

vocab() {
    for v in "${CODER_GPU_VOCAB:-}" .gpu/ggml-vocab-qwen2.gguf ../shared/refdata/vocab/ggml-vocab-qwen2.gguf; do
        [ -n "$v" ] && [ -f "$v" ] && { echo "$v"; return; }
    done
}

run_tests() {
    need "$BIN/test/bin/test_gpu"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>/dev/null
    v=$(vocab)
    qv=$(dirname "${v:-x}")/ggml-vocab-qwen3.gguf
    [ -f "$qv" ] && export CODER_GPU_VOCAB="$qv"
    echo "== test_gpu (all groups but model_7b)"
    timeout 420 "$BIN/test/bin/test_gpu" 2>&1 | tee "$OUTDIR/test.log" | grep -v '^  info:' ; rc1=$?
    echo "== test_gpu model_7b"
    timeout 300 "$BIN/test/bin/test_gpu" model_7b 2>&1 | tee -a "$OUTDIR/test.log" | grep -v '^  info:'
    san=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
    if [ -n "$san" ]; then
        echo "== compute-sanitizer memcheck: test_gpu model_tiny ops"
        timeout 300 "$san" --tool memcheck --error-exitcode 1 "$BIN/test/bin/test_gpu" model_tiny ops >"$OUTDIR/memcheck.log" 2>&1 \
            && echo "PASS memcheck" || { echo "FAIL memcheck"; tail -30 "$OUTDIR/memcheck.log"; }
    else
        echo "SKIP memcheck: compute-sanitizer not found"
    fi
    grep -E '^(PASS|FAIL|SKIP)' "$OUTDIR/test.log" | awk '{c[$1]++} END {printf "test_gpu: %d passed, %d failed, %d skipped\n", c["PASS"], c["FAIL"], c["SKIP"]}'
}

run_bench() {
    need "$BIN/coder"
    need "$BIN/bench/bench_gpu_bw"
    v=$(vocab)
    [ -n "$v" ] || { echo "FAIL bench: no vocabulary (set CODER_GPU_VOCAB or copy ggml-vocab-qwen2.gguf to .gpu/)"; exit 1; }
    "$BIN/bench/bench_gpu_bw" 2048 | tee "$OUTDIR/bw.txt"
    read_gbs=$(awk '/^gpu_bw/ {print $5}' "$OUTDIR/bw.txt")
    copy_gbs=$(awk '/^gpu_bw/ {print $3}' "$OUTDIR/bw.txt")
    : >"$OUTDIR/gpu_bench.jsonl"
    for t in $TYPES; do
        f="$WORK/q7-$t.gguf"
        echo "== mkmodel qwen2.5-coder-7b $t"
        timeout 300 "$BIN/coder" mkmodel --preset qwen2.5-coder-7b --type "$t" --vocab "$v" -o "$f" --mode random >/dev/null || { echo "FAIL mkmodel $t"; continue; }
        # (prefill tokens, depth, reps, GPU layers, CODER_CUDA_GRAPH): prefill and decode after depth
        # tokens of context (1: prefill from empty), the issue's rows, then
        # decode without CUDA graphs (their gain, same run) and half the layers on the CPU
        for spec in "512 1 $REPS all 1" "2048 1 $REPS all 1" "512 4096 $REPS all 1" "512 16384 2 all 1" "512 1 $REPS all 0" "512 1 1 14 1"; do
            set -- $spec
            label="$t"
            [ "$5" = 0 ] && label="$t no-graph"
            [ "$4" = all ] || label="$t $4-layers"
            echo "-- $label prefill $1, decode at depth $2"
            CODER_CUDA_GRAPH=$5 timeout 400 "$BIN/coder" bench -m "$f" -p "$1" -n 64 -r "$3" --depth "$2" --gpu-layers "$4" --bw-mib 64 --json \
                >"$OUTDIR/one.json" 2>"$OUTDIR/one.err" || { echo "FAIL bench $label $1 $2"; tail -5 "$OUTDIR/one.err"; continue; }
            sed "s/^{/{\"type\":\"$label\",\"gpu_read_gbs\":$read_gbs,\"gpu_copy_gbs\":$copy_gbs,/" "$OUTDIR/one.json" >>"$OUTDIR/gpu_bench.jsonl"
        done
        rm -f "$f"
    done
    # Bytes per decoded token: every weight once (coder bench's bytes_per_token) plus the K and V
    # rows read at that depth (7B: 28 layers x 2 x 512 f16 per position).
    python3 - "$OUTDIR/gpu_bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| type | prefill tok | depth | prefill tok/s | decode tok/s | GB/s (weights+KV) | of read bw | GPU layers |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    depth = r.get("depth", 1)
    kv = (depth if depth > 1 else 0) * 28 * 2 * 512 * 2
    gbs = r["decode_tps"] * (r["bytes_per_token"] + kv) / 1e9
    print("| %s | %d | %d | %.0f | %.1f | %.0f | %.0f%% | %d |" % (r["type"], r["prefill_tokens"], 0 if depth <= 1 else depth,
          r["prefill_tps"], r["decode_tps"], gbs, 100 * gbs / r["gpu_read_gbs"], r.get("gpu_layers", -1)))
if rows:
    print("\ndevice read bandwidth %.0f GB/s, copy %.0f GB/s (bench_gpu_bw, same run)" % (rows[0]["gpu_read_gbs"], rows[0]["gpu_copy_gbs"]))
PY
}

case "$MODE" in
    test) run_tests ;;
    bench) run_bench ;;
    all) run_tests; run_bench ;;
    *) echo "usage: sh bench/gpu.sh [test|bench|all]"; exit 2 ;;
esac
