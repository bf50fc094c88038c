#!/bin/sh
# The Go binding: `go vet` and `go test -v` in bindings/go against the build tree (through
# build/coderinfer-uninstalled.pc), one PASS/FAIL/SKIP line per Go test; and the Go example builds.
# No network: GOPROXY=off, GOTOOLCHAIN=local, caches under build/.
T=go
B=${CODER_BUILD:-build}
if ! command -v go >/dev/null 2>&1; then echo "SKIP $T: go not installed (apt-get install golang-go)"; exit 0; fi
if [ ! -f "$B/coderinfer-uninstalled.pc" ]; then echo "FAIL $T: $B/coderinfer-uninstalled.pc missing (make lib)"; exit 0; fi
root=$(pwd)
absB=$(cd "$B" && pwd)
R=${CODER_REFDATA:-../shared/refdata}
case "$R" in /*) ;; *) R="$root/$R" ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The Go build cache does not notice a change in a header outside the package (coderinfer.h): key the
# cache on the header's hash so a changed struct layout is never linked against stale cgo objects.
hh=$(sha1sum include/coderinfer.h | cut -c1-12)
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS= GOCACHE="$absB/go-cache-$hh" GOPATH="$absB/gopath" \
       PKG_CONFIG_PATH="$absB" CODER_BUILD="$absB" CODER_REFDATA="$R" CGO_ENABLED=1
cd bindings/go || { echo "FAIL $T: bindings/go missing"; exit 0; }

if go vet ./... >"$tmp/vet" 2>&1; then echo "PASS $T:vet"; else echo "FAIL $T:vet: $(head -c 600 "$tmp/vet")"; fi
if go build -o "$tmp/agent" "$root/docs/examples/agent.go" >"$tmp/ex" 2>&1; then echo "PASS $T:example_agent_builds"
else echo "FAIL $T:example_agent_builds: $(head -c 600 "$tmp/ex")"; fi

# cgocheck=2: the runtime checks every pointer passed to C (Go 1.19 reads it from GODEBUG).
GODEBUG=cgocheck=2 go test -count=1 -v ./... >"$tmp/out" 2>&1; rc=$?
awk -v T="$T" '
    /^--- PASS: / { print "PASS " T ":" $3; next }
    /^--- FAIL: / { print "FAIL " T ":" $3; fail = 1; next }
    /^    [a-z_]+\.go:[0-9]+: / { last = $0; sub(/^ +[a-z_]+\.go:[0-9]+: /, "", last); next }
    /^=== RUN/ { last = ""; next }
    /^--- SKIP: / { print "SKIP " T ":" $3 ": " last; next }
' "$tmp/out"
if [ $rc -ne 0 ]; then
    if grep -q '^--- FAIL: ' "$tmp/out"; then grep -v '^=== RUN' "$tmp/out" | grep -B2 -A8 -- '--- FAIL' | head -60
    else echo "FAIL $T:go_test: exit $rc: $(tail -c 1500 "$tmp/out")"; fi
fi
exit 0
