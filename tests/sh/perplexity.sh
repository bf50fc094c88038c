#!/bin/sh
# `coder perplexity` against a perplexity computed independently (python, float64) from llama.cpp's
# logits of every position (refdata tiny-llama/f32/p1_code.all.f32): one chunk of 20 tokens, the
# second half scored, as llama.cpp's tool does. Plus its usage errors.
B=${CODER_BUILD:-build}
R=${CODER_REFDATA:-../shared/refdata}
if [ ! -f "$R/models/tiny-llama-f16.gguf" ]; then
    echo "SKIP perplexity.sh:matches_reference_logits: no reference data at $R"; exit 0
fi
out=$("$B/coder" perplexity -m "$R/models/tiny-llama-f16.gguf" -f "$R/logits/prompts/p1_code.txt" -c 20 -b 7 \
      --kv f32 --json -q 2>&1)
msg=$(python3 - "$R/logits/tiny-llama/f32" "$out" <<'PY'
import array, json, math, sys
ref = json.load(open(sys.argv[1] + "/p1_code.json"))
got = json.loads(sys.argv[2])
tok, V = ref["prompt_tokens"], ref["n_vocab"]
a = array.array('f'); a.frombytes(open(sys.argv[1] + "/p1_code.all.f32", 'rb').read())
ctx, nll = 20, []
for pos in range(ctx // 2, ctx - 1):            # logits at pos predict the token at pos+1
    row = a[pos * V:(pos + 1) * V]
    m = max(row)
    nll.append(math.log(sum(math.exp(x - m) for x in row)) - (row[tok[pos + 1]] - m))
ppl = math.exp(sum(nll) / len(nll))
ok = got["tokens_scored"] == len(nll) and got["chunks"] == 1 and abs(got["ppl"] - ppl) <= 1e-3 * ppl
print(f"ours {got['ppl']:.5f} reference {ppl:.5f} over {len(nll)} tokens")
sys.exit(0 if ok else 1)
PY
) && echo "PASS perplexity.sh:matches_reference_logits ($msg)" || echo "FAIL perplexity.sh:matches_reference_logits: $msg $out"

# Too little text for one chunk: a usage error that says how many tokens are needed.
err=$("$B/coder" perplexity -m "$R/models/tiny-llama-f16.gguf" -f "$R/logits/prompts/p1_code.txt" -c 512 2>&1 >/dev/null)
rc=$?
if [ $rc -eq 2 ] && echo "$err" | grep -q "needs at least 512"; then echo "PASS perplexity.sh:short_text_refused"
else echo "FAIL perplexity.sh:short_text_refused: rc $rc: $err"; fi
err=$("$B/coder" perplexity -m "$R/models/tiny-llama-f16.gguf" 2>&1 >/dev/null)
rc=$?
if [ $rc -eq 2 ] && echo "$err" | grep -q -- "-f TEXT"; then echo "PASS perplexity.sh:missing_text_is_usage_error"
else echo "FAIL perplexity.sh:missing_text_is_usage_error: rc $rc: $err"; fi
err=$("$B/coder" perplexity -m /nonexistent.gguf -f "$R/logits/prompts/p1_code.txt" 2>&1 >/dev/null)
rc=$?
if [ $rc -eq 3 ] && echo "$err" | grep -q "nonexistent"; then echo "PASS perplexity.sh:missing_model_exit_3"
else echo "FAIL perplexity.sh:missing_model_exit_3: rc $rc: $err"; fi
