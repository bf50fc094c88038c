#!/bin/sh
# ThreadSanitizer run of the generation tests (four sessions on one model in parallel, cancel from
# another thread, BUSY). Not part of `make test` (TSan cannot be combined with the ASan build);
# run by hand from the repository root:  sh tests/tsan.sh
# Builds every lib/*.c (CPU only) with -fsanitize=thread into build/tsan/ and runs test_generate.
set -e
CC=${CC:-cc}
B=${CODER_BUILD:-build}/tsan
mkdir -p "$B"
$CC -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=thread -pthread -Wall -Wextra -Wno-unused-parameter \
    -Iinclude -Ilib -Itests -o "$B/test_generate" tests/test_generate.c lib/*.c \
    -lpcre2-8 -lzstd -lm -ldl
CODER_REFDATA=${CODER_REFDATA:-../shared/refdata} TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    "$B/test_generate"
