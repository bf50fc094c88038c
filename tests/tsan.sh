#!/bin/sh
# ThreadSanitizer run of the concurrency tests: test_generate (four sessions on one model in
# parallel, cancel from another thread, BUSY), test_bad_threads (tokenize, chat, load/free and
# log_set concurrently on a shared model) and test_cpu_gemv (the thread pool's task claiming, 1-3
# threads). Not part of `make test` (TSan cannot be combined with
# the ASan build): `make test-tsan` builds every lib/*.c with -fsanitize=thread into build/tsan/.
# Run from the repository root:  sh tests/tsan.sh
exec make --no-print-directory -j2 test-tsan
