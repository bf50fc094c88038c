#!/bin/sh
# The library never ends or writes to its host process (BAD_INPUTS runtime guarantee 1, STYLE.md):
# lib/ and cuda/ sources (comments stripped by the preprocessor, macros not expanded) must not call
# abort/exit/_exit/quick_exit/assert, nor print (printf, puts, putchar, perror, fprintf, vfprintf,
# fputs/fwrite to stdout/stderr, any use of stdout/stderr). Library output goes through LOG_* only.
# Prints one PASS or FAIL line per source set; run by `make test` (tests/sh/*.sh).
T=no_abort
cd "$(dirname "$0")/../.." || exit 1
CPP=${CC:-cc}
pat='(^|[^A-Za-z0-9_.>])(abort|exit|_exit|_Exit|quick_exit|assert|printf|vprintf|puts|putchar|perror|fprintf|vfprintf|dprintf)[[:space:]]*\(|(^|[^A-Za-z0-9_])(stdout|stderr)([^A-Za-z0-9_]|$)'
hits=""
n=0
for f in lib/*.c lib/*.h cuda/*.cu cuda/*.cuh; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    # -fpreprocessed: strip comments only (no includes, no macro expansion); -P: no line markers.
    out=$($CPP -x c -fpreprocessed -dD -E -P "$f" 2>/dev/null | grep -nE "$pat")
    [ -n "$out" ] && hits="$hits
$f: $out"
done
if [ "$n" -eq 0 ]; then
    echo "FAIL $T: no library sources found"
elif [ -n "$hits" ]; then
    echo "FAIL $T: forbidden calls in library sources (use coder_fail / LOG_*):$hits"
else
    echo "PASS $T: $n library sources free of abort/exit/assert/printf/stdout/stderr"
fi
# Self-test: the pattern must catch each forbidden form (so this check can fail).
miss=""
for s in 'abort();' '  exit(1);' 'assert(x);' 'printf("x");' 'fprintf(stderr, "x");' 'puts("a");' \
         'fputs("a", stdout);' 'if (x) _exit(2);'; do
    printf '%s\n' "$s" | grep -qE "$pat" || miss="$miss [$s]"
done
for s in 'snprintf(b, 4, "x");' 'vsnprintf(b, 4, f, ap);' 'coder_exit_code(x);' 'm->exit(1)' 'n_exit(2);'; do
    printf '%s\n' "$s" | grep -qE "$pat" && miss="$miss false-positive[$s]"
done
if [ -n "$miss" ]; then echo "FAIL $T:pattern_selftest:$miss"; else echo "PASS $T:pattern_selftest"; fi
exit 0
