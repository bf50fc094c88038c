#!/bin/sh
# `-c auto`: coder plan picks the largest context whose plan fits --host-mem (checked against two
# explicit `coder plan -c N` runs, i.e. coder_plan_memory), refuses a budget nothing fits with exit
# status 4 and both figures, and `coder -c auto` says what it chose and generates.
B=${CODER_BUILD:-build}
R=${CODER_REFDATA:-../shared/refdata}
M="$R/models/tiny-qwen2-q4_k_m.gguf"
if [ ! -f "$M" ]; then
    echo "SKIP plan_auto.sh:context_fits_budget: no reference data at $R"; exit 0
fi
host() { "$B/coder" plan -m "$M" -c "$1" --json | sed 's/.*"host_bytes":\([0-9]*\).*/\1/'; }
json=$("$B/coder" plan -m "$M" -c auto --host-mem 68 --json)
ctx=$(echo "$json" | sed 's/.*"n_ctx":\([0-9]*\).*/\1/')
budget=$((68 * 1048576))
if [ -n "$ctx" ] && [ "$(host "$ctx")" -le $budget ] && [ "$(host $((ctx + 256)))" -gt $budget ] &&
   echo "$json" | grep -q "\"auto\":\"no GPU.*context $ctx of"; then
    echo "PASS plan_auto.sh:context_fits_budget (n_ctx $ctx for 68 MiB)"
else echo "FAIL plan_auto.sh:context_fits_budget: $json"; fi

err=$("$B/coder" plan -m "$M" -c auto --host-mem 60 2>&1 >/dev/null); rc=$?
case "$rc:$err" in
    4:*"needs 64 MiB host"*"budget is 60 MiB host"*) echo "PASS plan_auto.sh:nothing_fits_is_nomem" ;;
    *) echo "FAIL plan_auto.sh:nothing_fits_is_nomem: exit $rc, $err" ;;
esac

err=$("$B/coder" -m "$M" -c auto -p "def f(x):" -n 4 --temp 0 2>&1 >/dev/null); rc=$?
case "$rc:$err" in
    0:*"coder: auto: "*"; context 4096 (the training context)"*) echo "PASS plan_auto.sh:generate_ctx_auto" ;;
    *) echo "FAIL plan_auto.sh:generate_ctx_auto: exit $rc, $err" ;;
esac
