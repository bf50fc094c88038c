#!/bin/sh
# Runs every test binary and test script given, prints their PASS/FAIL/SKIP lines, and ends with
# the one summary line "N passed, N failed, N skipped". Exit status 1 if anything failed.
log=$(mktemp)
status=0
for t in "$@"; do
    [ -e "$t" ] || continue
    case "$t" in
        *.sh) sh "$t" >"$log.one" 2>&1; rc=$? ;;
        *)    "$t" >"$log.one" 2>&1; rc=$? ;;
    esac
    cat "$log.one"
    cat "$log.one" >>"$log"
    # A binary that crashed or exited non-zero without reporting a FAIL still counts as a failure.
    if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$log.one"; then
        echo "FAIL $(basename "$t"): exited with status $rc"
        echo "FAIL $(basename "$t"): exited with status $rc" >>"$log"
    fi
done
p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^SKIP ' "$log")
rm -f "$log" "$log.one"
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
