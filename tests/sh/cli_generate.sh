#!/bin/sh
# The `coder` generate and bench commands end to end on the tiny qwen2 refdata model: streaming,
# --json, --stop, exit codes (usage 2, load 3, context 5, SIGINT 130), a closed pipe, bench --json.
B=${CODER_BUILD:-build}
C=$B/coder
R=${CODER_REFDATA:-../shared/refdata}
M=$R/models/tiny-qwen2-q4_k_m.gguf
T=cli_generate.sh
if [ ! -f "$M" ]; then echo "SKIP $T: refdata model $M absent"; exit 0; fi
if [ ! -x "$C" ]; then echo "FAIL $T: $C not built"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "PASS $T:$1"; }
bad() { echo "FAIL $T:$1: $2"; }
have_py=0; command -v python3 >/dev/null 2>&1 && have_py=1
json_get() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }

# streaming greedy text equals the --json text; stdout carries nothing else
"$C" -m "$M" -p "def fib(n):" -n 16 --temp 0 >"$tmp/out" 2>"$tmp/err" </dev/null; rc=$?
"$C" -m "$M" -p "def fib(n):" -n 16 --temp 0 --json >"$tmp/json" 2>/dev/null </dev/null
if [ $rc -eq 0 ] && [ -s "$tmp/out" ]; then ok streams; else bad streams "rc $rc, $(wc -c <"$tmp/out") bytes"; fi
if [ $have_py -eq 1 ]; then
    json_get "$tmp/json" "d['text']" >"$tmp/jtext" 2>"$tmp/jerr"
    printf '\n' >>"$tmp/out"   # print() adds a newline
    if cmp -s "$tmp/out" "$tmp/jtext" && [ "$(json_get "$tmp/json" "len(d['tokens'])")" = 16 ] &&
       [ "$(json_get "$tmp/json" "d['stop_reason']")" = length ]; then ok json_matches_stream
    else bad json_matches_stream "$(cat "$tmp/jerr") $(head -c 200 "$tmp/json")"; fi
    # --stop: the completion ends before the first occurrence of a piece of the greedy text
    stop=$(python3 -c "import json; t=json.load(open('$tmp/json'))['text']; print(t[len(t)//2:len(t)//2+2])")
    "$C" -m "$M" -p "def fib(n):" -n 16 --temp 0 --json --stop "$stop" >"$tmp/json2" 2>/dev/null </dev/null
    if python3 - "$tmp/json" "$tmp/json2" "$stop" <<'PY'
import json, sys
full = json.load(open(sys.argv[1]))["text"]; cut = json.load(open(sys.argv[2])); s = sys.argv[3]
sys.exit(0 if cut["stop_reason"] == "stop_string" and cut["text"] == full[:full.index(s)] else 1)
PY
    then ok stop_string; else bad stop_string "stop '$stop': $(head -c 300 "$tmp/json2")"; fi
fi

# exit codes
"$C" -m "$M" -p x --top-p 2 >/dev/null 2>&1 </dev/null; rc=$?
[ $rc -eq 2 ] && ok exit_usage || bad exit_usage "rc $rc"
"$C" -m "$tmp/missing.gguf" -p x >/dev/null 2>&1 </dev/null; rc=$?
[ $rc -eq 3 ] && ok exit_load || bad exit_load "rc $rc"
"$C" -m "$M" -c 16 -p "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen" >/dev/null 2>"$tmp/err" </dev/null; rc=$?
[ $rc -eq 5 ] && ok exit_context || bad exit_context "rc $rc: $(cat "$tmp/err")"

# a reader that goes away: clean stop, status 0, no signal death
( "$C" -m "$M" -p "def fib(n):" -n 200 --temp 0 </dev/null 2>"$tmp/err"; echo $? >"$tmp/rc" ) | head -c 10 >/dev/null
rc=$(cat "$tmp/rc")
[ "$rc" = 0 ] && ok closed_pipe || bad closed_pipe "rc $rc: $(cat "$tmp/err")"

# SIGINT during generation: exit 130, what was printed stays
"$C" -m "$M" -p "def fib(n):" -n -1 -c 4096 --temp 0 >"$tmp/int_out" 2>"$tmp/err" </dev/null &
pid=$!
sleep 1
kill -INT $pid
wait $pid; rc=$?
[ $rc -eq 130 ] && ok sigint || bad sigint "rc $rc: $(cat "$tmp/err")"

# stdin is appended after -p and a blank line (same prompt => same greedy token; $(...) drops a trailing newline, so stdin has none)
printf 'print(1)' | "$C" -m "$M" -p "Explain:" -n 1 --temp 0 --json >"$tmp/j3" 2>/dev/null
"$C" -m "$M" -p "$(printf 'Explain:\n\nprint(1)\n')" -n 1 --temp 0 --json >"$tmp/j4" 2>/dev/null </dev/null
if [ $have_py -eq 1 ]; then
    a=$(json_get "$tmp/j3" "d['tokens'], d['stats']['prompt_tokens']"); b=$(json_get "$tmp/j4" "d['tokens'], d['stats']['prompt_tokens']")
    [ -n "$a" ] && [ "$a" = "$b" ] && ok stdin_appended || bad stdin_appended "'$a' vs '$b'"
fi

# bench --json: one object with the roofline fields
"$C" bench -m "$M" -p 16 -n 8 -r 1 --bw-mib 64 --json >"$tmp/bench" 2>"$tmp/err" </dev/null; rc=$?
if [ $rc -eq 0 ] && { [ $have_py -eq 0 ] || [ "$(json_get "$tmp/bench" "all(d[k] > 0 for k in ('prefill_tps','decode_tps','bytes_per_token','mem_bw_gbs','roofline_fraction'))")" = True ]; }; then
    ok bench_json
else bad bench_json "rc $rc: $(cat "$tmp/bench" "$tmp/err")"; fi
# bench --depth: prefill and decode timed on forks of a session holding the context
"$C" bench -m "$M" -p 16 -n 8 -r 2 --depth 40 --bw-mib 64 --json >"$tmp/bench" 2>"$tmp/err" </dev/null; rc=$?
if [ $rc -eq 0 ] && { [ $have_py -eq 0 ] || [ "$(json_get "$tmp/bench" "d['depth'] == 40 and d['prefill_tps'] > 0 and d['decode_tps'] > 0")" = True ]; }; then
    ok bench_depth
else bad bench_depth "rc $rc: $(cat "$tmp/bench" "$tmp/err")"; fi
