# ctrace — circuit tracing on CPUs.  `make`, `make test`, `make bench`, `make demo`,
# `make asan`, `make clean`.  Missing Debian packages are installed by
# scripts/setup-deps.sh, which runs only when one of the probes below fails.

CC      ?= gcc
ifeq ($(origin CC),default)
CC      := gcc
endif
# NUMA=0 builds without libnuma, into its own tree (object files do not record their flags).
NUMA    ?= 1
B       := build$(if $(filter 0,$(NUMA)),/nonuma)
SHARED  ?= ../shared

# Never -Ofast: attribution needs honest NaN/Inf, and references must be reproducible.
# -ffp-contract=off keeps the compiler from fusing a*b+c behind our back (clang does by default),
# so a given ISA table gives the same bits with gcc and clang.
OPT      ?= -O2
CFLAGS_COMMON = -std=c11 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -Wshadow -fno-fast-math \
                -ffp-contract=off -D_GNU_SOURCE -I. -pthread
# EXTRA_CFLAGS / EXTRA_LDFLAGS carry sanitizer flags into the asan build.
# NUMA=0: no libnuma (one node; threads still pinned with sched_setaffinity).
CFLAGS   = $(CFLAGS_COMMON) -DCTRACE_HAVE_NUMA=$(NUMA) $(EXTRA_CFLAGS)
LDLIBS   = $(EXTRA_LDFLAGS) -lsleef $(if $(filter 1,$(NUMA)),-lnuma) -lxxhash -ljansson -lyaml -lzip \
           -lmicrohttpd -lpcre2-8 -lm -pthread

# Per-ISA flags: each simd/ file is built for its own instruction set; dispatch picks at run time.
FLAGS_x86_avx2   = -mavx2 -mfma -mf16c
FLAGS_x86_avx512 = -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq \
                   -mavx512vnni -mavx512bf16 -mamx-tile -mamx-int8

LIB_SRC  := $(sort $(wildcard engine/*.c simd/*.c quant/*.c))
CMD_SRC  := $(sort $(wildcard cmd/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TLIB_SRC := $(sort $(wildcard tests/lib/*.c))
BENCH_SRC:= $(sort $(wildcard bench/*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
CMD_OBJ  := $(CMD_SRC:%.c=$(B)/%.o)
TLIB_OBJ := $(TLIB_SRC:%.c=$(B)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(B)/tests/%)
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(B)/bench/%)

DEPS_OK  := $(B)/.deps-ok

.PHONY: all test bench demo demo-stories asan clean deps test-unit test-neon \
        asan-build neon-build nonuma-build test-nonuma
all: $(B)/ctrace

# ---- dependencies: probe, and install only when something is missing -------------------
PROBES = /usr/include/criterion/criterion.h /usr/include/x86_64-linux-gnu/sleef.h \
         /usr/include/numa.h /usr/include/xxhash.h /usr/include/jansson.h /usr/include/yaml.h \
         /usr/include/zip.h /usr/bin/aarch64-linux-gnu-gcc /usr/bin/qemu-aarch64 \
         /usr/include/aarch64-linux-gnu/sleef.h /usr/lib/aarch64-linux-gnu/libjansson.so \
         /usr/lib/aarch64-linux-gnu/libzip.so /usr/lib/aarch64-linux-gnu/libyaml.so \
         /usr/lib/aarch64-linux-gnu/libnuma.so /usr/lib/aarch64-linux-gnu/libxxhash.so /usr/bin/xxhsum /usr/bin/valgrind \
         /usr/include/microhttpd.h /usr/lib/aarch64-linux-gnu/libmicrohttpd.so /usr/bin/chromium \
         /usr/include/pcre2.h /usr/lib/aarch64-linux-gnu/libpcre2-8.so /usr/bin/jq
$(DEPS_OK):
	@missing=""; for f in $(PROBES); do [ -e $$f ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then echo "missing:$$missing -> scripts/setup-deps.sh" >&2; \
	  sh scripts/setup-deps.sh || exit 1; fi
	@mkdir -p $(B) && touch $@
deps: $(DEPS_OK)

# ---- library, driver -----------------------------------------------------------------------
$(B)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(FLAGS_$(basename $(notdir $<))) -MMD -MP -c $< -o $@

$(B)/libctrace.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/ctrace: $(CMD_OBJ) $(B)/libctrace.a
	$(CC) $(CFLAGS) -o $@ $(CMD_OBJ) $(B)/libctrace.a $(LDLIBS)

$(B)/tests/%: $(B)/tests/%.o $(TLIB_OBJ) $(B)/libctrace.a
	$(CC) $(CFLAGS) -o $@ $< $(TLIB_OBJ) $(B)/libctrace.a -lcriterion $(LDLIBS)

$(B)/bench/%: $(B)/bench/%.o $(B)/libctrace.a
	$(CC) $(CFLAGS) -o $@ $< $(B)/libctrace.a $(LDLIBS)

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d) $(TLIB_OBJ:.o=.d) $(TEST_BIN:=.d) $(BENCH_BIN:=.d)

# ---- tests ---------------------------------------------------------------------------------
# tests/run.sh runs every Criterion suite and every tests/cli/*.sh script, then prints one
# closing line "N passed, N failed".
test: $(B)/ctrace $(TEST_BIN) asan-build neon-build nonuma-build
	SHARED=$(SHARED) sh tests/run.sh all

test-unit: $(B)/ctrace $(TEST_BIN)
	SHARED=$(SHARED) sh tests/run.sh unit

# ---- sanitizers: ASan + UBSan on the scalar and AVX2 tables (valgrind cannot run AVX-512
# here; the dispatch override picks the paths valgrind could also check).
ASAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
asan-build: | $(DEPS_OK)
	$(MAKE) --no-print-directory B=$(B)/asan OPT=-O1 EXTRA_CFLAGS="$(ASAN_FLAGS)" \
	    EXTRA_LDFLAGS="$(ASAN_FLAGS)" $(B)/asan/ctrace $(TEST_SRC:tests/%.c=$(B)/asan/tests/%)
asan: asan-build
	SHARED=$(SHARED) sh tests/run.sh asan

# ---- without libnuma: the NUMA=0 build of the driver and of the suites that place memory
# (tests/run.sh nonuma checks it links no libnuma and gives the default build's bits).
NONUMA_BIN = $(B)/nonuma/ctrace $(B)/nonuma/tests/test_mem $(B)/nonuma/tests/test_quant
nonuma-build: | $(DEPS_OK)
	$(MAKE) --no-print-directory B=$(B)/nonuma NUMA=0 $(NONUMA_BIN)
test-nonuma: $(B)/ctrace nonuma-build
	SHARED=$(SHARED) sh tests/run.sh nonuma

# ---- NEON: cross-compiled for aarch64 and run under qemu-aarch64 -------------------------
AARCH64_CC = aarch64-linux-gnu-gcc
A64 := $(B)/aarch64
A64_CFLAGS = $(CFLAGS_COMMON) -march=armv8.2-a+dotprod -I/usr/include/aarch64-linux-gnu -DCTRACE_HAVE_NUMA=1
A64_LIBS   = -L/usr/lib/aarch64-linux-gnu -lsleef -lnuma -lxxhash -ljansson -lyaml -lzip -lmicrohttpd -lpcre2-8 -lm -pthread
A64_LIB_SRC := $(LIB_SRC)
A64_LIB_OBJ := $(A64_LIB_SRC:%.c=$(A64)/%.o)
$(A64)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(AARCH64_CC) $(A64_CFLAGS) -MMD -MP -c $< -o $@
$(A64)/libctrace.a: $(A64_LIB_OBJ)
	@rm -f $@
	aarch64-linux-gnu-ar rcs $@ $^
$(A64)/ctrace: $(CMD_SRC:%.c=$(A64)/%.o) $(A64)/libctrace.a
	$(AARCH64_CC) $(A64_CFLAGS) -o $@ $^ $(A64_LIBS)
$(A64)/kernels_selftest: $(A64)/tests/kernels_selftest.o $(A64)/libctrace.a
	$(AARCH64_CC) $(A64_CFLAGS) -o $@ $^ $(A64_LIBS)
neon-build: $(A64)/kernels_selftest $(A64)/forward_selftest $(A64)/ctrace
test-neon: neon-build
	SHARED=$(SHARED) sh tests/run.sh neon
-include $(A64_LIB_OBJ:.o=.d) $(wildcard $(A64)/tests/*.d $(A64)/cmd/*.d)

# ---- benchmarks and demo -------------------------------------------------------------------
bench: $(B)/ctrace $(BENCH_BIN)
	SHARED=$(SHARED) B=$(B) sh bench/run.sh

# bench_q8 compares the int8 kernels with OpenBLAS sgemm/sgemv when Debian's libopenblas-dev is
# installed; only this benchmark links it (the engine never does).  Looked up when the recipe
# runs (= and $(shell), not := and $(wildcard)): on a fresh machine the package arrives with the
# other dependencies, after this Makefile was read.
OPENBLAS_SO = $(shell for f in /usr/lib/x86_64-linux-gnu/libopenblas.so /usr/lib/aarch64-linux-gnu/libopenblas.so; \
                do [ -e $$f ] && { echo $$f; break; }; done)
$(B)/bench/bench_q8.o: CFLAGS += $(if $(OPENBLAS_SO),-DCT_HAVE_OPENBLAS)
$(B)/bench/bench_q8: $(B)/bench/bench_q8.o $(B)/libctrace.a
	$(CC) $(CFLAGS) -o $@ $< $(B)/libctrace.a $(LDLIBS) $(if $(OPENBLAS_SO),-lopenblas)

demo: $(B)/ctrace
	sh scripts/demo.sh
demo-stories: $(B)/ctrace
	SHARED=$(SHARED) sh scripts/demo-stories.sh

clean:
	rm -rf $(B)
$(A64)/forward_selftest: $(A64)/tests/forward_selftest.o $(A64)/libctrace.a
	$(AARCH64_CC) $(A64_CFLAGS) -o $@ $^ $(A64_LIBS)
