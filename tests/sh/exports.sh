#!/bin/sh
# The shared library has the right soname and exports only coder_* symbols.
B=${CODER_BUILD:-build}
so=$B/libcoderinfer.so.0.1.0
if readelf -d "$so" | grep -q 'SONAME.*\[libcoderinfer.so.0\]'; then echo "PASS exports.sh:soname"
else echo "FAIL exports.sh:soname: $(readelf -d "$so" | grep SONAME)"; fi
bad=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^coder_' | grep -v '^CODERINFER_0$' | head -5)
n=$(nm -D --defined-only "$so" | grep -c ' coder_')
if [ -z "$bad" ] && [ "$n" -gt 10 ]; then echo "PASS exports.sh:only_coder_symbols ($n exported)"
else echo "FAIL exports.sh:only_coder_symbols: non-coder exports: $bad (coder_* count $n)"; fi
