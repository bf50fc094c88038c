#!/bin/sh
# Runs each fuzz target for SECONDS seconds, one after another (single process each: the machine
# is shared), on its corpus build/fuzz/corpus/<target>, and prints per target one line
#   PASS fuzz_<t>: <executions> executions, <exec/s> exec/s, <seconds> s, corpus <n> inputs
# or FAIL with the crash artifact (build/fuzz/artifacts/), or SKIP (no refdata for the targets that
# need it). Exit status 1 if any target failed.
#   usage: sh tests/fuzz/run.sh SECONDS TARGET...
# Extra libFuzzer flags: FUZZ_FLAGS (e.g. FUZZ_FLAGS=-runs=10000000 for a count-based run).
S=${1:-60}
shift
B=${CODER_BUILD:-build}
mkdir -p "$B/fuzz/artifacts" "$B/fuzz/logs"
export FUZZ_SESSION_MODEL="${FUZZ_SESSION_MODEL:-$B/fuzz/session-model.gguf}"   # fuzz_session's model
REF=${CODER_REFDATA:-../shared/refdata}
status=0
for t in "$@"; do
    bin="$B/fuzz/fuzz_$t"
    # the tokenizer and prompt targets fuzz refdata's vocabularies: without refdata they skip, as the tests do
    case "$t" in tokenizer | prompt)
        if [ ! -f "$REF/vocab/ggml-vocab-qwen2.gguf" ]; then
            echo "SKIP fuzz_$t: refdata vocabularies not found at $REF (set CODER_REFDATA)"
            continue
        fi ;;
    esac
    log="$B/fuzz/logs/fuzz_$t.log"
    mkdir -p "$B/fuzz/corpus/$t"
    # -timeout: one input may take at most 10 s; -rss_limit_mb also caps any single malloc.
    # Leak detection is on (libFuzzer's default with ASan): a leaked allocation is a failure.
    "$bin" -max_total_time="$S" -timeout=10 -rss_limit_mb=2048 -max_len=131072 -print_final_stats=1 \
        -artifact_prefix="$B/fuzz/artifacts/$t-" $FUZZ_FLAGS "$B/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    secs=$(sed -n 's/.*Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    n=$(ls "$B/fuzz/corpus/$t" | wc -l)
    if [ $rc -eq 0 ]; then
        echo "PASS fuzz_$t: ${execs:-?} executions, ${eps:-?} exec/s, ${secs:-$S} s, corpus $n inputs"
    else
        echo "FAIL fuzz_$t: exit $rc after ${execs:-?} executions; log $log:"
        grep -E 'ERROR|SUMMARY|fuzz:|Test unit written|^    #[0-9] ' "$log" | head -30
        status=1
    fi
done
exit $status
