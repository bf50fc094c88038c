#!/bin/sh
# `coder --prompt-cache FILE` on the tiny qwen2 refdata model: the first call writes the file, a
# second call with the same prefix and a new question reuses it (cached_tokens > 0, fewer tokens
# evaluated) and prints exactly what an uncached run prints at --temp 0; a corrupt or foreign file
# is ignored with a warning (same output, exit 0); --kv-type q8_0 works with the cache too.
B=${CODER_BUILD:-build}
C=$B/coder
R=${CODER_REFDATA:-../shared/refdata}
M=$R/models/tiny-qwen2-q4_k_m.gguf
M2=$R/models/tiny-llama-f16.gguf
T=prompt_cache.sh
if [ ! -f "$M" ]; then echo "SKIP $T: refdata model $M absent"; exit 0; fi
if [ ! -x "$C" ]; then echo "FAIL $T: $C not built"; exit 0; fi
if ! command -v python3 >/dev/null 2>&1; then echo "SKIP $T: python3 absent (JSON checks)"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "PASS $T:$1"; }
bad() { echo "FAIL $T:$1: $2"; }
jget() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }

prefix=$(python3 -c "print(' '.join('def f%d(x):\n    return x * %d\n' % (i, i) for i in range(40)))")
q1="$prefix
# question one: add a docstring to f3"
q2="$prefix
# question two: rename f7"
run() { "$C" -m "$M" -n 12 --temp 0 -t 2 --json "$@" </dev/null; }

run -p "$q1" >"$tmp/u1" 2>/dev/null
run -p "$q2" >"$tmp/u2" 2>/dev/null
run -p "$q1" --prompt-cache "$tmp/pc" >"$tmp/c1" 2>"$tmp/e1"; rc1=$?
if [ $rc1 -eq 0 ] && [ -s "$tmp/pc" ] && [ "$(jget "$tmp/c1" "d['stats']['cached_tokens']")" = 0 ] &&
   [ "$(jget "$tmp/c1" d[\'text\'])" = "$(jget "$tmp/u1" d[\'text\'])" ]; then ok first_call_writes_cache
else bad first_call_writes_cache "rc $rc1, $(cat "$tmp/e1") $(ls -l "$tmp")"; fi

run -p "$q2" --prompt-cache "$tmp/pc" >"$tmp/c2" 2>"$tmp/e2"; rc2=$?
n_total=$(jget "$tmp/u2" "d['stats']['prompt_tokens']")
cached=$(jget "$tmp/c2" "d['stats']['cached_tokens']")
evald=$(jget "$tmp/c2" "d['stats']['prompt_tokens']")
if [ $rc2 -eq 0 ] && [ "$cached" -gt 100 ] && [ $((cached + evald)) -eq "$n_total" ] && [ "$evald" -lt 30 ]; then
    ok second_call_reuses_prefix
else bad second_call_reuses_prefix "rc $rc2, cached $cached + evaluated $evald of $n_total; $(cat "$tmp/e2")"; fi
if [ "$(jget "$tmp/c2" d[\'tokens\'])" = "$(jget "$tmp/u2" d[\'tokens\'])" ]; then ok cached_output_equals_uncached
else bad cached_output_equals_uncached "$(head -c 300 "$tmp/c2") vs $(head -c 300 "$tmp/u2")"; fi

# the same prompt again: everything but the last token comes from the file, and it is not rewritten
before=$(stat -c %Y.%s "$tmp/pc"); sleep 1
run -p "$q2" --prompt-cache "$tmp/pc" >"$tmp/c3" 2>/dev/null
if [ "$(jget "$tmp/c3" "d['stats']['prompt_tokens']")" = 1 ] && [ "$(stat -c %Y.%s "$tmp/pc")" = "$before" ] &&
   [ "$(jget "$tmp/c3" d[\'tokens\'])" = "$(jget "$tmp/u2" d[\'tokens\'])" ]; then ok same_prompt_all_cached
else bad same_prompt_all_cached "$(head -c 300 "$tmp/c3")"; fi

# a corrupt file: warning, same output, exit 0
python3 -c "
import sys; b = bytearray(open('$tmp/pc','rb').read()); b[len(b)//2] ^= 1; open('$tmp/bad','wb').write(b)"
run -p "$q2" --prompt-cache "$tmp/bad" >"$tmp/c4" 2>"$tmp/e4"; rc4=$?
if [ $rc4 -eq 0 ] && grep -q "prompt cache not used.*checksum" "$tmp/e4" &&
   [ "$(jget "$tmp/c4" d[\'tokens\'])" = "$(jget "$tmp/u2" d[\'tokens\'])" ]; then ok corrupt_cache_ignored
else bad corrupt_cache_ignored "rc $rc4, $(cat "$tmp/e4")"; fi

# a file from another model is refused by name
if [ -f "$M2" ]; then
    "$C" -m "$M2" -p "hello" -n 2 --temp 0 --prompt-cache "$tmp/pc" >/dev/null 2>"$tmp/e5" </dev/null; rc5=$?
    if [ $rc5 -eq 0 ] && grep -q "another model" "$tmp/e5"; then ok foreign_cache_refused
    else bad foreign_cache_refused "rc $rc5, $(cat "$tmp/e5")"; fi
fi

# Q8_0 KV cache: a cached second call equals an uncached Q8_0 run
run -p "$q1" --kv-type q8_0 --prompt-cache "$tmp/pq" >/dev/null 2>&1
run -p "$q2" --kv-type q8_0 --prompt-cache "$tmp/pq" >"$tmp/q2c" 2>/dev/null
run -p "$q2" --kv-type q8_0 >"$tmp/q2u" 2>/dev/null
if [ "$(jget "$tmp/q2c" "d['stats']['cached_tokens']")" -gt 100 ] &&
   [ "$(jget "$tmp/q2c" d[\'tokens\'])" = "$(jget "$tmp/q2u" d[\'tokens\'])" ]; then ok q8_0_cache
else bad q8_0_cache "$(head -c 200 "$tmp/q2c") vs $(head -c 200 "$tmp/q2u")"; fi
# an F16 run does not take the Q8_0 file
run -p "$q2" --prompt-cache "$tmp/pq" >/dev/null 2>"$tmp/e6"
if grep -q "kv_type" "$tmp/e6"; then ok kv_type_mismatch_refused; else bad kv_type_mismatch_refused "$(cat "$tmp/e6")"; fi

# a prompt longer than -c: refused (exit 5) unless --truncate-prompt
"$C" -m "$M" -p "$q1" -c 64 -n 4 --temp 0 >/dev/null 2>"$tmp/e7" </dev/null; rc7=$?
"$C" -m "$M" -p "$q1" -c 64 -n 4 --temp 0 --truncate-prompt --keep 8 --json >"$tmp/c8" 2>"$tmp/e8" </dev/null; rc8=$?
if [ $rc7 -eq 5 ] && grep -q "n_ctx 64" "$tmp/e7" && [ $rc8 -eq 0 ] &&
   [ "$(jget "$tmp/c8" "d['stats']['prompt_tokens']")" = 60 ]; then ok context_policy
else bad context_policy "rc $rc7/$rc8: $(cat "$tmp/e7" "$tmp/e8") $(head -c 200 "$tmp/c8")"; fi
