#!/bin/sh
# With no GPU or driver the library says so once through the log callback and runs on the CPU.
B=${CODER_BUILD:-build}
R=${CODER_REFDATA:-../shared/refdata}
m="$R/models/tiny-llama-q4_k_m.gguf"
[ -f "$m" ] || { echo "SKIP device_fallback.sh:cpu_fallback_message: no reference model at $m"; exit 0; }
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "SKIP device_fallback.sh:cpu_fallback_message: a GPU is present"; exit 0
fi
err=$("$B/coder" -m "$m" -p "x" -n 2 --temp 0 -v 2>&1 >/dev/null); rc=$?
n=$(printf '%s\n' "$err" | grep -c -E 'CUDA: no usable GPU .*running on the CPU|built without CUDA; running on the CPU')
if [ $rc -eq 0 ] && [ "$n" -eq 1 ]; then echo "PASS device_fallback.sh:cpu_fallback_message"
else echo "FAIL device_fallback.sh:cpu_fallback_message: rc=$rc, $n messages: $err"; fi
