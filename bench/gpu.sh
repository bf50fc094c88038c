#!/bin/sh
# bench/gpu.sh - the GPU checks and benchmark of issue 6, for a machine with an NVIDIA GPU.
#
#   sh bench/gpu.sh test    test_gpu one group per process (CUDA vs CPU per op, whole-model logits,
#                           the session group, model_7b; a crash or hang loses one group only), a
#                           group that fails or crashes rerun once with CODER_CUDA_SYNC=1 (names
#                           the faulting kernel); then compute-sanitizer memcheck on model_tiny + ops
#   sh bench/gpu.sh bench   qwen2.5-coder-7b synthetic models (Q4_K_M, Q6_K, Q8_0) made here:
#                           decode tok/s at depth 0 / 4096 / 16384, prefill 512 / 2048, and the
#                           fraction of the device bandwidth measured in the same run; then
#                           decode with CODER_CUDA_GRAPH=0 (the graphs' gain), with
#                           CODER_CUDA_MMV=f32 (the float mat-vec instead of the int8 one) and with
#                           14 of 28 layers on the GPU (partial offload)
#   sh bench/gpu.sh all     test groups, bench, then memcheck with the time left (docs/CUDA.md)
#
# Time: every step runs under a cap and is skipped once $GPU_BUDGET seconds (default: test 330,
# bench 330, all 560) have passed since the start, so the whole run ends inside one device call.
# GPU_GROUPS (default "matmul ops attention model_tiny model_small session plan model_7b") picks groups.
#
# Binaries come from $CODER_BIN (default build/: build/coder, build/test/bin/test_gpu,
# build/bench/bench_gpu_bw, build/bench/bench_gpu_gemm when present); missing ones are built
# with make only when CODER_BIN is build/.
# Shared libraries the binaries need and the machine lacks (libzstd.so.1) are taken from
# $CODER_BIN/../lib when present. Vocabularies (the GGUF files' tokenizers; no text is tokenized):
# bench: $CODER_GPU_VOCAB, else .gpu/ggml-vocab-qwen2.gguf, else ../shared/refdata/vocab/...;
# test_gpu's session group: $CODER_GPU_VOCAB, else .gpu/ggml-vocab-qwen3.gguf, else refdata's,
# else the bench one. Models are written to $GPU_WORK (default /tmp/coder_gpu) and deleted after
# use; results go to $OUT (default /tmp/coder_gpu_out), at most 8 files: env.txt, test.log,
# memcheck.log, bw.txt, bench.log, gpu_bench.jsonl, table.md (the table printed last).
# Exit status: 0 when nothing failed, 1 otherwise.
set -u
MODE=${1:-all}
BIN=${CODER_BIN:-build}
WORK=${GPU_WORK:-/tmp/coder_gpu}
OUTDIR=${OUT:-/tmp/coder_gpu_out}
TYPES=${GPU_TYPES:-"Q4_K_M Q6_K Q8_0"}
REPS=${GPU_REPS:-3}
TEST_GROUPS=${GPU_GROUPS:-"matmul ops attention model_tiny model_small session plan model_7b"}
case "$MODE" in
    test) BUDGET=${GPU_BUDGET:-330} ;;
    bench) BUDGET=${GPU_BUDGET:-330} ;;
    all) BUDGET=${GPU_BUDGET:-560} ;;
    *) echo "usage: sh bench/gpu.sh [test|bench|all]"; exit 2 ;;
esac
T0=$(date +%s)
FAILS=0
mkdir -p "$WORK" "$OUTDIR"

elapsed() { echo $(($(date +%s) - T0)); }
# cap N: N seconds, or fewer when less of the budget is left (0: nothing left)
cap() {
    c_left=$((BUDGET - $(elapsed)))
    [ "$c_left" -lt 0 ] && c_left=0
    [ "$c_left" -lt "$1" ] && echo "$c_left" || echo "$1"
}
fail() { FAILS=$((FAILS + 1)); echo "FAIL $*"; }

need() {   # need TARGET: build it with make when absent (only for the build/ tree)
    [ -x "$1" ] && return 0
    if [ "$BIN" != build ]; then
        echo "FAIL missing $1 (CODER_BIN=$BIN: build here, copy to .gpu/bin and carry .gpu; docs/CUDA.md)"
        exit 1
    fi
    make -j"$(nproc)" "$1" >"$OUTDIR/build.log" 2>&1 || { echo "FAIL build $1 (see $OUTDIR/build.log)"; tail -20 "$OUTDIR/build.log"; exit 1; }
}

first_file() { for f in "$@"; do [ -n "$f" ] && [ -f "$f" ] && { echo "$f"; return; }; done; }
bench_vocab() { first_file "${CODER_GPU_VOCAB:-}" .gpu/ggml-vocab-qwen2.gguf ../shared/refdata/vocab/ggml-vocab-qwen2.gguf; }
test_vocab() {
    first_file "${CODER_GPU_VOCAB:-}" .gpu/ggml-vocab-qwen3.gguf ../shared/refdata/vocab/ggml-vocab-qwen3.gguf \
        .gpu/ggml-vocab-qwen2.gguf ../shared/refdata/vocab/ggml-vocab-qwen2.gguf
}

# libcublas.so.13 is dlopened on first GPU use (cuda/cublas_lazy.cu: $CODER_CUBLAS, the usual
# search, then /usr/local/cuda/lib64). Found here once and exported, so every run uses the same one
# and the log says which; the pip wheels (nvidia-cublas: nvidia/cu13/lib) are a namespace package.
find_cublas() {
    [ -n "${CODER_CUBLAS:-}" ] && [ -e "$CODER_CUBLAS" ] && { echo "$CODER_CUBLAS"; return; }
    for d in "${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64; do
        [ -e "$d/libcublas.so.13" ] && { echo "$d/libcublas.so.13"; return; }
    done
    p=$(ldconfig -p 2>/dev/null | awk '/libcublas\.so\.13 / {print $NF; exit}')
    [ -n "$p" ] && { echo "$p"; return; }
    for d in $(python3 -c 'import nvidia; print(" ".join(nvidia.__path__))' 2>/dev/null); do
        for s in cu13/lib cublas/lib; do [ -e "$d/$s/libcublas.so.13" ] && { echo "$d/$s/libcublas.so.13"; return; }; done
    done
    find /usr /opt -name libcublas.so.13 2>/dev/null | head -1
}

preflight() {
    {
        echo "date $(date -u +%FT%TZ)  host $(uname -r)  cpus $(nproc)  mode $MODE  budget ${BUDGET}s"
        smi=$(command -v nvidia-smi || ls /usr/local/nvidia/bin/nvidia-smi 2>/dev/null)
        [ -n "$smi" ] && "$smi" --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>&1 \
            || echo "nvidia-smi: not found"
        free -g 2>/dev/null | sed -n 2p
        df -h /tmp 2>/dev/null | tail -1
    } | tee "$OUTDIR/env.txt"
    for b in "$@"; do
        if ldd "$b" 2>/dev/null | grep -q 'not found'; then
            ldd "$b" | grep 'not found' | sed "s|^|$b: |" | tee -a "$OUTDIR/env.txt"
            if [ -d "$BIN/../lib" ]; then
                LD_LIBRARY_PATH="$(cd "$BIN/../lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
                export LD_LIBRARY_PATH
                echo "  -> LD_LIBRARY_PATH=$LD_LIBRARY_PATH" | tee -a "$OUTDIR/env.txt"
            fi
        fi
    done
    cb=$(find_cublas)
    if [ -n "$cb" ]; then
        CODER_CUBLAS=$cb
        LD_LIBRARY_PATH="$(dirname "$cb")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export CODER_CUBLAS LD_LIBRARY_PATH
        echo "cuBLAS: $cb" | tee -a "$OUTDIR/env.txt"
    else
        echo "WARN cuBLAS: libcublas.so.13 not found (every GPU session will fail); set CODER_CUBLAS" | tee -a "$OUTDIR/env.txt"
    fi
    # a binary that cannot start (a missing shared library) fails here, in a second
    for b in "$@"; do
        if ldd "$b" 2>/dev/null | grep -q 'not found'; then fail "cannot run $b:"; ldd "$b"; exit 1; fi
    done
    "$1" --help >/dev/null 2>&1 || { fail "cannot run $1 --help"; exit 1; }
}

# one test_gpu process per group: a crash or a hang loses that group only
run_group() {   # run_group GROUP CAP [sync]
    g_log=$WORK/group.log
    if [ "${3:-}" = sync ]; then
        CODER_CUDA_SYNC=1 CODER_GPU_VOCAB="$TV" timeout -k 10 "$2" $LINEBUF "$BIN/test/bin/test_gpu" "$1" >"$g_log" 2>&1
    else
        CODER_GPU_VOCAB="$TV" timeout -k 10 "$2" $LINEBUF "$BIN/test/bin/test_gpu" "$1" >"$g_log" 2>&1
    fi
    g_rc=$?
    return 0
}

TV=$(test_vocab)
LINEBUF=
command -v stdbuf >/dev/null 2>&1 && LINEBUF="stdbuf -oL"
first=1
run_tests() {   # run_tests "GROUP..."
    [ -n "$TV" ] || echo "WARN no vocabulary: the session group SKIPs (copy ggml-vocab-qwen3.gguf to .gpu/)"
    failed=
    for g in $1; do
        case $g in matmul) c=$(cap 180) ;; model_small) c=$(cap 150) ;; model_7b) c=$(cap 240) ;; *) c=$(cap 120) ;; esac
        if [ "$c" -lt 20 ]; then echo "SKIP group:$g time budget spent" | tee -a "$OUTDIR/test.log"; continue; fi
        t=$(elapsed)
        run_group "$g" "$c"
        echo "== test_gpu $g: rc $g_rc, $(($(elapsed) - t)) s (cap $c s)" | tee -a "$OUTDIR/test.log"
        cat "$WORK/group.log" >>"$OUTDIR/test.log"
        # cublas_loaded_lazily runs in every process: shown once
        if [ $first = 1 ]; then grep -E '^(PASS|FAIL|SKIP) ' "$WORK/group.log"; else grep -E '^(PASS|FAIL|SKIP) ' "$WORK/group.log" | grep -v ':cublas_loaded_lazily'; fi
        first=0
        grep -qE '^(PASS|FAIL|SKIP) ' "$WORK/group.log" || { echo "FAIL group:$g no results" >>"$OUTDIR/test.log"; fail "group $g: no results"; }
        case $g_rc in
            0) ;;
            124|137) echo "FAIL group:$g timed out after $c s" >>"$OUTDIR/test.log"
                fail "group $g: timed out after $c s; last lines:"; tail -3 "$WORK/group.log" ;;
            1) failed="$failed $g" ;;
            *) echo "FAIL group:$g exit $g_rc" >>"$OUTDIR/test.log"
                fail "group $g: exit $g_rc (signal $((g_rc - 128)) if > 128); last lines:"; tail -5 "$WORK/group.log"; failed="$failed $g" ;;
        esac
    done
    # a group that failed or crashed again with every op synchronised: the first failing kernel
    # names itself (a hang is not rerun: the log's last info line shows where it stopped)
    for g in $failed; do
        c=$(cap 90)
        if [ "$c" -lt 30 ]; then echo "SKIP sync rerun of $g: time budget spent"; continue; fi
        t=$(elapsed)
        run_group "$g" "$c" sync
        echo "== CODER_CUDA_SYNC=1 test_gpu $g: rc $g_rc, $(($(elapsed) - t)) s" | tee -a "$OUTDIR/test.log"
        sed 's/^/[sync] /' "$WORK/group.log" >>"$OUTDIR/test.log"
        grep -E '^FAIL' "$WORK/group.log" | sed 's/^/[sync] /'
        [ "$g_rc" -gt 1 ] && tail -3 "$WORK/group.log" | sed 's/^/[sync] /'
    done
    rm -f "$WORK/group.log" "${TMPDIR:-/tmp}"/coder_gpu_[0-9]*.gguf /tmp/coder_gpu_[0-9]*.gguf /tmp/coder_gpu_[0-9]*.state
}

test_summary() {
    if grep -q 'no CUDA device' "$OUTDIR/test.log"; then
        fail "test_gpu saw no CUDA device: $(grep -m1 -o 'no CUDA device.*' "$OUTDIR/test.log")"
    fi
    grep -E '^(PASS|FAIL|SKIP) ' "$OUTDIR/test.log" | awk '{n = $2; sub(/:$/, "", n); s[n] = $1} END {for (n in s) c[s[n]]++;
        printf "test_gpu: %d passed, %d failed, %d skipped\n", c["PASS"], c["FAIL"], c["SKIP"]; exit (c["FAIL"] > 0)}' || FAILS=$((FAILS + 1))
}

run_memcheck() {
    need "$BIN/test/bin/test_gpu"
    san=$(command -v compute-sanitizer || ls "${CUDA_HOME:-/usr/local/cuda}"/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer \
          /usr/local/cuda-*/bin/compute-sanitizer 2>/dev/null | head -1)
    if [ -z "$san" ]; then echo "SKIP memcheck: compute-sanitizer not found"; return; fi
    c=$(cap 180)
    if [ "$c" -lt 40 ]; then echo "SKIP memcheck: time budget spent"; return; fi
    echo "== compute-sanitizer memcheck: test_gpu model_tiny ops (cap $c s)"
    t=$(elapsed)
    CODER_GPU_VOCAB="${TV:-}" timeout -k 10 "$c" "$san" --tool memcheck --print-limit 50 --error-exitcode 99 \
        "$BIN/test/bin/test_gpu" model_tiny ops >"$OUTDIR/memcheck.log" 2>&1
    rc=$?
    grep -E '^(PASS|FAIL|SKIP) |ERROR SUMMARY' "$OUTDIR/memcheck.log" | grep -v ':cublas_loaded_lazily'
    if grep -q 'Device not supported' "$OUTDIR/memcheck.log"; then echo "SKIP memcheck: compute-sanitizer: device not supported (gVisor?)"
    elif [ $rc = 99 ]; then fail "memcheck: errors reported, see memcheck.log"; grep -m 20 -E '^=+ +(Invalid|Uninit|Program hit|Address|at )' "$OUTDIR/memcheck.log"
    elif [ $rc = 124 ] || [ $rc = 137 ]; then fail "memcheck: timed out after $c s"
    elif [ $rc != 0 ]; then fail "memcheck: exit $rc"; tail -15 "$OUTDIR/memcheck.log"
    else echo "PASS memcheck ($(($(elapsed) - t)) s)"
    fi
}

run_bench() {
    need "$BIN/coder"
    need "$BIN/bench/bench_gpu_bw"
    v=$(bench_vocab)
    [ -n "$v" ] || { fail "bench: no vocabulary (set CODER_GPU_VOCAB or copy ggml-vocab-qwen2.gguf to .gpu/)"; return; }
    # no device, no bench: without one coder bench would run the 7B rows on the CPU for an hour
    timeout 60 "$BIN/bench/bench_gpu_bw" 2048 >"$OUTDIR/bw.txt" 2>&1
    cat "$OUTDIR/bw.txt"
    read_gbs=$(awk '/^gpu_bw/ {print $5}' "$OUTDIR/bw.txt")
    copy_gbs=$(awk '/^gpu_bw/ {print $3}' "$OUTDIR/bw.txt")
    [ -n "$read_gbs" ] || { fail "bench: bench_gpu_bw found no usable GPU"; return; }
    # the two prefill paths per 7B matrix shape and batch (sets CUDA_MMA_AUTO_MAX_TOKENS): into bw.txt
    if [ -x "$BIN/bench/bench_gpu_gemm" ]; then
        c=$(cap 90)
        echo "== bench_gpu_gemm Q4_K (mma kernel vs dequantize + cuBLAS; cap $c s)" | tee -a "$OUTDIR/bw.txt"
        timeout -k 10 "$c" "$BIN/bench/bench_gpu_gemm" "${GPU_GEMM_TYPES:-Q4_K}" 3 2>&1 | tee -a "$OUTDIR/bw.txt" \
            || fail "bench_gpu_gemm: exit status (see bw.txt)"
    fi
    : >"$OUTDIR/gpu_bench.jsonl"
    : >"$OUTDIR/bench.log"
    for t in $TYPES; do
        f="$WORK/q7-$t.gguf"
        c=$(cap 120)
        if [ "$c" -lt 60 ]; then echo "SKIP bench $t: time budget spent"; continue; fi
        s=$(elapsed)
        timeout "$c" "$BIN/coder" mkmodel --preset qwen2.5-coder-7b --type "$t" --vocab "$v" -o "$f" --mode random >>"$OUTDIR/bench.log" 2>&1 \
            || { fail "mkmodel $t"; tail -3 "$OUTDIR/bench.log"; rm -f "$f"; continue; }
        echo "== mkmodel qwen2.5-coder-7b $t: $(($(elapsed) - s)) s"
        # (prefill tokens, depth, reps, GPU layers, CODER_CUDA_GRAPH, CODER_CUDA_MMV): prefill and
        # decode after depth tokens of context (1: prefill from empty), the issue's rows, then
        # decode without CUDA graphs (their gain, same run), with the float mat-vec, and half the
        # layers on the CPU
        for spec in "512 1 $REPS all 1 int8" "2048 1 $REPS all 1 int8" "512 4096 $REPS all 1 int8" "512 16384 2 all 1 int8" \
                    "512 1 $REPS all 0 int8" "512 1 $REPS all 1 f32" "512 1 1 14 1 int8"; do
            set -- $spec
            label="$t"
            [ "$5" = 0 ] && label="$t no-graph"
            [ "$6" = f32 ] && label="$t f32-mmv"
            [ "$4" = all ] || label="$t $4-layers"
            c=$(cap 120)
            [ "$2" = 16384 ] && c=$(cap 180)
            if [ "$c" -lt 30 ]; then echo "SKIP bench $label prefill $1 depth $2: time budget spent"; continue; fi
            s=$(elapsed)
            CODER_CUDA_GRAPH=$5 CODER_CUDA_MMV=$6 timeout -k 10 "$c" "$BIN/coder" bench -m "$f" -p "$1" -n 64 -r "$3" --depth "$2" --gpu-layers "$4" --bw-mib 64 --json \
                >"$WORK/one.json" 2>"$WORK/one.err"
            rc=$?
            { echo "== $label prefill $1, decode at depth $2: exit $rc, $(($(elapsed) - s)) s (cap $c s)"; cat "$WORK/one.err"; } >>"$OUTDIR/bench.log"
            if [ $rc != 0 ] || ! grep -q '^{' "$WORK/one.json"; then
                fail "bench $label prefill $1 depth $2: exit $rc after $(($(elapsed) - s)) s"; tail -3 "$WORK/one.err"; continue
            fi
            gl=$(sed -n 's/.*"gpu_layers":\([-0-9]*\).*/\1/p' "$WORK/one.json")
            want=28
            [ "$4" = all ] || want=$4
            [ "$gl" = "$want" ] || fail "bench $label: ran with $gl GPU layers, not $want"
            sed "s/^{/{\"type\":\"$label\",\"gpu_read_gbs\":$read_gbs,\"gpu_copy_gbs\":$copy_gbs,/" "$WORK/one.json" | tee -a "$OUTDIR/gpu_bench.jsonl" \
                | sed -n 's/.*"prefill_tokens":\([0-9]*\).*"prefill_tps":\([0-9.]*\).*"depth":\([0-9]*\).*"decode_tps":\([0-9.]*\).*/-- prefill \1 at depth \3: \2 tok\/s; decode: \4 tok\/s/p' \
                | sed "s/^--/-- $label ($(($(elapsed) - s)) s)/"
        done
        rm -f "$f" "$WORK/one.json" "$WORK/one.err"
    done
    table
}

# Bytes per decoded token: every weight once (coder bench's bytes_per_token) plus the K and V
# rows read at that depth (7B: 28 layers x 2 x 512 f16 per position).
table() {
    command -v python3 >/dev/null 2>&1 || { echo "no python3: the rows are in gpu_bench.jsonl"; return; }
    python3 - "$OUTDIR/gpu_bench.jsonl" <<'PY' | tee "$OUTDIR/table.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| type | prefill tok | depth | prefill tok/s | decode tok/s | GB/s (weights+KV) | of read bw | GPU layers |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    depth = r.get("depth", 1)
    kv = (depth if depth > 1 else 0) * 28 * 2 * 512 * 2
    gbs = r["decode_tps"] * (r["bytes_per_token"] + kv) / 1e9
    bw = r["gpu_read_gbs"] or float("nan")
    print("| %s | %d | %d | %.0f | %.1f | %.0f | %.0f%% | %d |" % (r["type"], r["prefill_tokens"], 0 if depth <= 1 else depth,
          r["prefill_tps"], r["decode_tps"], gbs, 100 * gbs / bw, r.get("gpu_layers", -1)))
if rows:
    print("\ndevice read bandwidth %.0f GB/s, copy %.0f GB/s (bench_gpu_bw, same run)" % (rows[0]["gpu_read_gbs"], rows[0]["gpu_copy_gbs"]))
PY
}

case "$MODE" in
    test) need "$BIN/coder"; need "$BIN/test/bin/test_gpu"; preflight "$BIN/coder" "$BIN/test/bin/test_gpu"
          : >"$OUTDIR/test.log"; run_tests "$TEST_GROUPS"; run_memcheck; test_summary ;;
    bench) need "$BIN/coder"; need "$BIN/bench/bench_gpu_bw"; preflight "$BIN/coder" "$BIN/bench/bench_gpu_bw"; run_bench ;;
    # all: the bench before model_7b (the costliest group, 7B shapes are in matmul and attention too)
    all) for b in coder test/bin/test_gpu bench/bench_gpu_bw; do need "$BIN/$b"; done
         preflight "$BIN/coder" "$BIN/test/bin/test_gpu" "$BIN/bench/bench_gpu_bw"
         : >"$OUTDIR/test.log"
         run_tests "$(echo " $TEST_GROUPS " | sed 's/ model_7b / /')"
         run_bench
         case " $TEST_GROUPS " in *" model_7b "*) run_tests model_7b ;; esac
         run_memcheck; test_summary ;;
esac
echo "== gpu.sh $MODE: $(elapsed) s, $FAILS failure(s)"
[ "$FAILS" = 0 ]
