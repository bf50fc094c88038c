#!/bin/sh
# `coder eval` writes the last position's logits; compare with llama.cpp's reference (refdata).
B=${CODER_BUILD:-build}
R=${CODER_REFDATA:-../shared/refdata}
if [ ! -f "$R/models/tiny-llama-f16.gguf" ]; then
    echo "SKIP cli_eval.sh:eval_matches_reference: no reference data at $R"; exit 0
fi
out=$(mktemp)
compare() { # file reference tolerance
    python3 - "$1" "$2" "$3" <<'PY'
import array, math, sys
a = array.array('f'); b = array.array('f')
a.frombytes(open(sys.argv[1], 'rb').read()); b.frombytes(open(sys.argv[2], 'rb').read())
if len(a) != len(b): print(f"length {len(a)} != {len(b)}"); sys.exit(1)
m = sum(b) / len(b)
sd = math.sqrt(sum((x - m) ** 2 for x in b) / len(b))
rms = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)) / len(b))
print(f"rel rms {rms / sd:.3g}"); sys.exit(0 if rms / sd <= float(sys.argv[3]) else 1)
PY
}
if "$B/coder" eval -m "$R/models/tiny-llama-f16.gguf" --kv f32 -o "$out" < "$R/logits/prompts/p1_code.txt" &&
   msg=$(compare "$out" "$R/logits/tiny-llama/f32/p1_code.last.f32" 1e-3); then
    echo "PASS cli_eval.sh:f16_file_f32_math ($msg)"
else echo "FAIL cli_eval.sh:f16_file_f32_math: $msg"; fi
# The CPU matmul quantizes activations (Q8_K) as llama.cpp does, so the reference is variant
# q4_k_m; 0.08 is the 2-8% spread random models show for rounding-level differences (see
# q4_k_m_vs_q8_activation_reference in tests/test_forward.c; this run measured 0.029).
if "$B/coder" eval -m "$R/models/tiny-qwen2-q4_k_m.gguf" -o "$out" < "$R/logits/prompts/p2_chatml.txt" &&
   msg=$(compare "$out" "$R/logits/tiny-qwen2/q4_k_m/p2_chatml.last.f32" 0.08); then
    echo "PASS cli_eval.sh:q4_k_m_vs_q4_k_m ($msg)"
else echo "FAIL cli_eval.sh:q4_k_m_vs_q4_k_m: $msg"; fi
rm -f "$out"
