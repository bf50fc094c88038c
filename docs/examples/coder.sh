#!/bin/sh
# coder.sh - libcoderinfer from the shell with `coder -p`: stdout carries only the completion,
# logs go to stderr, exit codes say what went wrong (2 usage, 3 model load, 5 prompt too long,
# 130 Ctrl-C), and stdin is appended to the -p prompt after a blank line.
#
#   sh docs/examples/coder.sh MODEL.gguf [FILE.py]
set -u
CODER=${CODER:-build/coder}
M=${1:?usage: coder.sh MODEL.gguf [FILE]}
F=${2:-}

# 1. A completion straight into a file (greedy, so the same every time).
"$CODER" -m "$M" -p "def is_prime(n):" -n 64 --temp 0 --stop "
def " >/tmp/completion.txt
case $? in
    0) echo "completion: $(wc -c </tmp/completion.txt) bytes" >&2 ;;
    3) echo "cannot load $M" >&2; exit 1 ;;
    *) echo "coder failed" >&2; exit 1 ;;
esac

# 2. Explain a file: the file arrives on stdin, after the -p text and a blank line.
if [ -n "$F" ]; then
    "$CODER" -m "$M" --chat -p "Explain what this code does, in two sentences:" -n 128 --temp 0 <"$F"
    [ $? -eq 5 ] && echo "$F is too long for the context (-c)" >&2
fi

# 3. Machine-readable output: one JSON object with text, tokens, stop reason and timings.
"$CODER" -m "$M" -p "SELECT" -n 16 --temp 0 --json </dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["stop_reason"], d["stats"]["decode_tps"], "tok/s")'

# 4. Fill in the middle, e.g. from an editor plugin.
"$CODER" -m "$M" --fim-prefix "def add(a, b):
    return " --fim-suffix "

print(add(1, 2))" -n 16 --temp 0 --stop "
" </dev/null
echo

# 5. Count tokens of a prompt without generating.
printf 'def fib(n):\n    return n\n' | "$CODER" tokenize -m "$M" 2>/dev/null
