#!/bin/sh
# The CLI maps the model (docs/GGUF.md, "Files that change while loaded"): a model file truncated by
# another process during generation must end coder with its message and exit status 3 (its SIGBUS
# handler), not a bare signal; with --no-mmap the generation is unaffected.
B=${CODER_BUILD:-build}
R=${CODER_REFDATA:-../shared/refdata}
if [ ! -f "$R/models/tiny-llama-f16.gguf" ]; then
    echo "SKIP cli_sigbus.sh:truncated_while_mapped: no reference data at $R"; exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { # mode: "" (mapped) or --no-mmap; prints "rc:stderr"
    cp "$R/models/tiny-llama-f16.gguf" "$dir/m.gguf"
    : >"$dir/out"
    "$B/coder" -m "$dir/m.gguf" $1 -p "hello" -n 3000 --temp 1 --seed 1 -t 1 >"$dir/out" 2>"$dir/err" &
    pid=$!
    # truncate once the first tokens are out: the whole run takes ~0.6 s on a quiet machine
    # (1164 tokens, then end of generation), so a fixed delay can miss it
    i=0
    while [ ! -s "$dir/out" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
    truncate -s 100 "$dir/m.gguf"
    wait $pid
    echo "$?:$(cat "$dir/err")"
}
out=$(run "")
case "$out" in
    3:*"model file changed while mapped"*) echo "PASS cli_sigbus.sh:truncated_while_mapped" ;;
    0:*) echo "SKIP cli_sigbus.sh:truncated_while_mapped: generation ended before the truncation" ;;
    *) echo "FAIL cli_sigbus.sh:truncated_while_mapped: $out" ;;
esac
out=$(run --no-mmap)
case "$out" in
    0:*) echo "PASS cli_sigbus.sh:no_mmap_unaffected" ;;
    *) echo "FAIL cli_sigbus.sh:no_mmap_unaffected: $out" ;;
esac
