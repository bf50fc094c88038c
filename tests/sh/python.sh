#!/bin/sh
# The Python binding: installs bindings/python offline with pip (no index, no build isolation)
# into a temporary directory, then runs pytest on that installed copy; one PASS/FAIL/SKIP line
# per test.
T=python
B=${CODER_BUILD:-build}
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then echo "SKIP $T: $PY not installed"; exit 0; fi
if ! "$PY" -c "import pytest" >/dev/null 2>&1; then echo "SKIP $T: pytest not installed (pip install pytest)"; exit 0; fi
root=$(pwd)
absB=$(cd "$B" && pwd)
R=${CODER_REFDATA:-../shared/refdata}
case "$R" in /*) ;; *) R="$root/$R" ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if "$PY" -m pip install -q --no-index --no-build-isolation --disable-pip-version-check --target "$tmp/site" \
        ./bindings/python >"$tmp/pip" 2>&1 && [ -f "$tmp/site/coderinfer/_api.py" ]; then
    echo "PASS $T:pip_install_offline"
    export PYTHONPATH="$tmp/site${PYTHONPATH:+:$PYTHONPATH}" CODERINFER_TEST_INSTALLED=1
else
    echo "FAIL $T:pip_install_offline: $(grep -v WARNING "$tmp/pip" | tail -c 800)"
fi

# The package directory is searched before the system: a copy of the library there is found.
if [ -n "$CODERINFER_TEST_INSTALLED" ] && [ -f "$absB/libcoderinfer.so.0" ]; then
    cp "$absB/libcoderinfer.so.0" "$tmp/site/coderinfer/"
    got=$(env -u CODERINFER_LIB "$PY" -c "import coderinfer; print(coderinfer.lib_path)" 2>&1)
    [ "$got" = "$tmp/site/coderinfer/libcoderinfer.so.0" ] && echo "PASS $T:finds_lib_in_package_dir" \
        || echo "FAIL $T:finds_lib_in_package_dir: $got"
    rm -f "$tmp/site/coderinfer/libcoderinfer.so.0"
    # A wrong $CODERINFER_LIB is an ImportError naming it, never a silent fallback.
    got=$(CODERINFER_LIB="$tmp/nowhere.so" "$PY" -c "import coderinfer" 2>&1)
    case "$got" in *ImportError*nowhere.so*) echo "PASS $T:bad_CODERINFER_LIB_is_ImportError" ;;
        *) echo "FAIL $T:bad_CODERINFER_LIB_is_ImportError: $(echo "$got" | tail -3)" ;; esac
fi

CODERINFER_LIB="$absB/libcoderinfer.so.0" CODER_BUILD="$absB" CODER_REFDATA="$R" \
    "$PY" -m pytest -v -rs -p no:cacheprovider bindings/python/tests >"$tmp/out" 2>&1; rc=$?
awk -v T="$T" '
    / PASSED/ && /::/ { n = $1; sub(/.*::/, "", n); print "PASS " T ":" n }
    / FAILED/ && /::/ && !/^FAILED/ { n = $1; sub(/.*::/, "", n); print "FAIL " T ":" n }
    / ERROR/ && /::/ && !/^ERROR/ { n = $1; sub(/.*::/, "", n); print "FAIL " T ":" n " (error)" }
    /^SKIPPED/ { sub(/^SKIPPED \[[0-9]+\] /, ""); print "SKIP " T ": " $0 }
' "$tmp/out"
case $rc in
    0) ;;
    1) sed -n '/= FAILURES =/,$p' "$tmp/out" | head -80 ;;
    5) echo "FAIL $T: pytest collected no tests" ;;
    *) echo "FAIL $T:pytest: exit $rc: $(tail -c 1500 "$tmp/out")" ;;
esac
exit 0
