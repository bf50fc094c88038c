#!/bin/sh
# `make install` / `make uninstall` into temporary prefixes: the soname links, header, coderinfer.pc
# and `coder` land under PREFIX (and under DESTDIR, which never leaks into the .pc); a C program
# built with `pkg-config --cflags --libs coderinfer` runs against the installed library and a
# test model; uninstall leaves no file behind.
T=install.sh
B=${CODER_BUILD:-build}
R=${CODER_REFDATA:-../shared/refdata}
V=$R/vocab/ggml-vocab-qwen2.gguf
MAKE=${MAKE:-make}
ok() { echo "PASS $T:$1"; }
bad() { echo "FAIL $T:$1: $2"; }
if ! command -v pkg-config >/dev/null 2>&1; then echo "SKIP $T: pkg-config not installed"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
P=$tmp/prefix
ver=$(sed -n 's/^VERSION *:= *//p' Makefile)
maj=$(sed -n 's/^SOMAJOR *:= *//p' Makefile)

if $MAKE -s install PREFIX="$P" >"$tmp/log" 2>&1; then ok make_install; else bad make_install "$(tail -c 800 "$tmp/log")"; exit 0; fi

# files and links
L=$P/lib
if [ -f "$L/libcoderinfer.so.$ver" ] && [ ! -L "$L/libcoderinfer.so.$ver" ] &&
   [ "$(readlink "$L/libcoderinfer.so.$maj")" = "libcoderinfer.so.$ver" ] &&
   [ "$(readlink "$L/libcoderinfer.so")" = "libcoderinfer.so.$maj" ]; then ok soname_links
else bad soname_links "$(ls -l "$L" 2>&1 | tr '\n' ' ')"; fi
if readelf -d "$L/libcoderinfer.so.$ver" | grep -q "SONAME.*\[libcoderinfer.so.$maj\]"; then ok soname
else bad soname "$(readelf -d "$L/libcoderinfer.so.$ver" | grep SONAME)"; fi
cmp -s include/coderinfer.h "$P/include/coderinfer.h" && ok header || bad header "missing or different"
[ -x "$P/bin/coder" ] && ok coder_binary || bad coder_binary "$P/bin/coder not executable"

# pkg-config from the installed .pc only (PKG_CONFIG_LIBDIR: no system or build-tree .pc)
export PKG_CONFIG_LIBDIR="$L/pkgconfig" PKG_CONFIG_PATH=
mv_=$(pkg-config --modversion coderinfer 2>&1)
flags=$(echo $(pkg-config --cflags --libs coderinfer 2>&1))
if [ "$mv_" = "$ver" ] && [ "$flags" = "-I$P/include -L$L -lcoderinfer" ]; then ok pkg_config
else bad pkg_config "modversion '$mv_', flags '$flags'"; fi

# DESTDIR: staged under DESTDIR, the .pc still says PREFIX
S=$tmp/stage
if $MAKE -s install PREFIX=/opt/coderinfer DESTDIR="$S" >"$tmp/log" 2>&1 &&
   [ -f "$S/opt/coderinfer/lib/libcoderinfer.so.$ver" ] && [ -x "$S/opt/coderinfer/bin/coder" ] &&
   grep -q '^prefix=/opt/coderinfer$' "$S/opt/coderinfer/lib/pkgconfig/coderinfer.pc" &&
   ! grep -q "$S" "$S/opt/coderinfer/lib/pkgconfig/coderinfer.pc"; then ok destdir
else bad destdir "$(tail -c 400 "$tmp/log"; cat "$S/opt/coderinfer/lib/pkgconfig/coderinfer.pc" 2>&1)"; fi
$MAKE -s uninstall PREFIX=/opt/coderinfer DESTDIR="$S" >/dev/null 2>&1
left=$(find "$S" ! -type d 2>/dev/null)
[ -z "$left" ] && ok destdir_uninstall || bad destdir_uninstall "left: $left"

# a program built against the installed library
cat >"$tmp/prog.c" <<'C'
#include <coderinfer.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    printf("version %s abi %d\n", coder_version(), coder_abi_version());
    if (argc < 2) return 0;
    coder_model_params mp; coder_model_params_init(&mp); mp.n_gpu_layers = 0;
    coder_model *m = NULL;
    if (coder_model_load(argv[1], &mp, &m) != CODER_OK) { printf("load: %s\n", coder_last_error()); return 1; }
    int32_t ids[16]; size_t n = 0;
    if (coder_tokenize(m, "Hello world", 11, 0, ids, 16, &n) != CODER_OK) return 1;
    printf("tokens");
    for (size_t i = 0; i < n; i++) printf(" %d", (int)ids[i]);
    printf("\n");
    coder_session_params sp; coder_session_params_init(&sp); sp.n_threads = 1;
    coder_session *s = NULL;
    if (coder_session_new(m, &sp, &s) != CODER_OK) { printf("session: %s\n", coder_last_error()); return 1; }
    coder_gen_params gp; coder_gen_params_init(&gp); gp.max_tokens = 8; gp.temperature = 0;
    coder_result r; coder_result_init(&r);
    coder_status st = coder_generate(s, argv[2], strlen(argv[2]), &gp, &r);
    printf("status %d generated %zu\ntext:%s\n", (int)st, r.n_tokens, r.text ? r.text : "");
    coder_result_clear(&r); coder_session_free(s); coder_model_free(m);
    return st == CODER_OK ? 0 : 1;
}
C
if ${CC:-cc} -std=c11 -Wall -Wextra -Werror -o "$tmp/prog" "$tmp/prog.c" $flags >"$tmp/cc" 2>&1; then ok compile_with_pkg_config
else bad compile_with_pkg_config "$(cat "$tmp/cc")"; fi
# it resolves the installed copy (through LD_LIBRARY_PATH), not the build tree's
if LD_LIBRARY_PATH="$L" ldd "$tmp/prog" 2>/dev/null | grep -q "libcoderinfer.so.$maj => $L/"; then ok links_installed_lib
else bad links_installed_lib "$(LD_LIBRARY_PATH="$L" ldd "$tmp/prog" 2>&1 | grep coder)"; fi

if [ ! -f "$V" ]; then
    echo "SKIP $T:run_with_model: refdata vocabulary $V absent"
elif ! "$P/bin/coder" mkmodel --preset tiny --type Q8_0 --vocab "$V" -o "$tmp/tiny.gguf" >"$tmp/mk" 2>&1; then
    bad run_with_model "mkmodel: $(cat "$tmp/mk")"
else
    LD_LIBRARY_PATH="$L" "$tmp/prog" "$tmp/tiny.gguf" "def fib(n):" >"$tmp/out" 2>&1; rc=$?
    # independent references: the refdata tokenizer ids of "Hello world" and the installed CLI's text
    want_ids=$(awk -v RS='\n__ggml_vocab_test__\n' '$0 == "Hello world" { print NR; exit }' "$V.inp")
    ref_ids=$(sed -n "${want_ids:-0}p" "$V.out" | sed 's/^ *//')
    cli=$("$P/bin/coder" -m "$tmp/tiny.gguf" -p "def fib(n):" -n 8 --temp 0 -t 1 </dev/null 2>/dev/null)
    if [ $rc -eq 0 ] && grep -q "^version $ver abi $maj\$" "$tmp/out" && grep -q "^status 0 generated 8\$" "$tmp/out" &&
       [ -n "$ref_ids" ] && grep -qx "tokens $ref_ids" "$tmp/out" &&
       [ "$(sed -n 's/^text://p' "$tmp/out")" = "$cli" ]; then ok run_with_model
    else bad run_with_model "rc $rc, ref ids '$ref_ids', cli '$cli': $(cat "$tmp/out")"; fi
fi

if $MAKE -s uninstall PREFIX="$P" >"$tmp/log" 2>&1; then
    left=$(find "$P" ! -type d)
    [ -z "$left" ] && ok uninstall_leaves_nothing || bad uninstall_leaves_nothing "left: $left"
else bad uninstall_leaves_nothing "$(cat "$tmp/log")"; fi
exit 0
