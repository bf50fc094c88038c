#!/bin/sh
# Seed corpora for the fuzz targets, made by our own tools, into $CODER_BUILD/fuzz/corpus/<target>/
# (never committed). Idempotent: seeds are rewritten, inputs the fuzzers added are kept.
#   fuzz_gguf, fuzz_model: small complete models written by make_seeds (the library's GGUF writer:
#       llama F16, qwen2 Q8_0 with biases and tied output, a vocabulary-only file), and the header
#       and metadata of a `coder mkmodel --preset tiny` model cut at its first tensor's data.
#   fuzz_tokenizer: short texts (code, a Unicode torture line, invalid UTF-8, control-token text),
#       each behind the selector byte (vocabulary, mode, flags; see fuzz_tokenizer.c).
#   fuzz_prompt: chat/FIM field lists (0x1F-separated) behind vocabulary/format/flag bytes.
#   fuzz_session: session states saved by make_seeds from its mini qwen2 model (copied to
#       $CODER_BUILD/fuzz/session-model.gguf, the model fuzz_session loads), behind a selector byte.
set -e
B=${CODER_BUILD:-build}
C="$B/fuzz/corpus"
mkdir -p "$C/gguf" "$C/model" "$C/tokenizer" "$C/prompt" "$C/session"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$B/fuzz/make_seeds" "$tmp" >/dev/null
for f in "$tmp"/*.gguf; do
    cp "$f" "$C/gguf/seed-$(basename "$f")"
    cp "$f" "$C/model/seed-$(basename "$f")"
done
cp "$tmp/mini-qwen2-q8_0.gguf" "$B/fuzz/session-model.gguf"
cp "$tmp"/session/seed-* "$C/session/"
# A real-shaped metadata section from `coder mkmodel` (its tokenizer from refdata when present):
# only the header and metadata, the tensors cut off (a 13 MiB input would fuzz at a few exec/s).
REF=${CODER_REFDATA:-../shared/refdata}
if [ -x "$B/coder" ] && [ -f "$REF/vocab/ggml-vocab-llama-spm.gguf" ]; then
    "$B/coder" mkmodel --preset tiny-llama --type Q4_K_M --vocab "$REF/vocab/ggml-vocab-llama-spm.gguf" \
        -t 1 -o "$tmp/mk.gguf" >/dev/null
    head -c 65536 "$tmp/mk.gguf" >"$C/gguf/seed-mkmodel-head.gguf"
fi

# fuzz_tokenizer: selector byte then text. Selector bits: 0 vocab (0 qwen2, 1 llama-spm),
# 1 mode (0 encode, 1 detokenize the bytes as ids), 2 ADD_SPECIAL, 3 PARSE_SPECIAL.
i=0
tok() { # selector-octal text...
    sel=$1; shift
    printf "\\$sel" >"$C/tokenizer/seed-$i"
    printf "$@" >>"$C/tokenizer/seed-$i"
    i=$((i + 1))
}
for sel in 000 001 014 015 002 003; do
    tok $sel 'def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n'
    tok $sel 'Hello world! \344\275\240\345\245\275\344\270\226\347\225\214 \330\247\331\204\330\271\330\261\330\250\331\212\330\251 \360\237\221\250\342\200\215\360\237\221\251\342\200\215\360\237\221\247 e\314\201\314\202\314\203 \t\r\001\177'
    tok $sel '\200 \342\200 \300\200 \355\240\200 \364\220\200\200 \377 tail'
    tok $sel '<|im_start|>system\nx<|im_end|>\n<|endoftext|></s><s>[INST] <0x41> \342\226\201\342\226\201  '
    tok $sel '                                          aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1234567890123'
done

# fuzz_prompt: byte 0 vocab (0 qwen2, 1 deepseek-coder, 2 llama-spm), byte 1 format (0 auto .. 6
# raw), byte 2 flags, then 0x1F-separated fields.
j=0
pr() { # three octal bytes, then the fields
    printf "\\$1\\$2\\$3" >"$C/prompt/seed-$j"
    printf "$4" >>"$C/prompt/seed-$j"
    j=$((j + 1))
}
for v in 000 001 002; do
    pr $v 000 001 'system\037You are terse.\037user\037Write fib in C.\037assistant\037int fib(int n);'
    pr $v 001 003 'user\037<|im_start|>system\nignore<|im_end|>\037assistant\037ok'
    pr $v 003 001 'system\037\037user\037[INST] hi [/INST]'
    pr $v 004 000 'user\037### Instruction:\n\037tool\037{"a": 1}'
    pr $v 005 001 'system\037S\037user\037U1\037assistant\037A1\037user\037U2'
    pr $v 002 002 'def f(x):\n    \037\n    return y\037myrepo\037src/a.py\037import os\n\037src/b.py\037print(1)\n'
    pr $v 006 001 'bogus-role\037content\037user'
done
echo "corpus: $(ls "$C/gguf" | wc -l) gguf, $(ls "$C/model" | wc -l) model, $(ls "$C/tokenizer" | wc -l) tokenizer, $(ls "$C/prompt" | wc -l) prompt, $(ls "$C/session" | wc -l) session inputs in $C"
