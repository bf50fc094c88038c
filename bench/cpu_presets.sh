#!/bin/sh
# CPU figures for docs/PERF.md (issue 4 item 7 / issue 9): synthetic qwen2.5-0.5b and
# qwen2.5-coder-1.5b models in Q4_K_M, Q8_0 and F16, `coder bench` at pp128 / tg64 with 2 threads,
# the same settings as llama.cpp's figures in ../shared/refdata/README.md.
# Usage: sh bench/cpu_presets.sh [OUTDIR]   (models go to OUTDIR, default /tmp/coder-bench)
set -e
B=${CODER_BUILD:-build}
out=${1:-/tmp/coder-bench}
vocab=${CODER_REFDATA:-../shared/refdata}/vocab/ggml-vocab-qwen2.gguf
mkdir -p "$out"
for preset in qwen2.5-0.5b qwen2.5-coder-1.5b; do
    for type in Q4_K_M Q8_0 F16; do
        f="$out/$preset-$type.gguf"
        [ -f "$f" ] || "$B/coder" mkmodel --preset "$preset" --type "$type" --vocab "$vocab" -o "$f" --mode random >/dev/null
        printf '%s %s ' "$preset" "$type"
        "$B/coder" bench -m "$f" -p 128 -n 64 -t 2 -r ${REPS:-3} --json
        echo
    done
done
