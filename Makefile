# stash: out-of-tree builds, one directory per variant; sources never see an object file.
#   make            build/extensions/stash (what ships: static, musl, the lean libraries),
#                   build/bin/fake-aws, build/bin/lambda-sim
#   make layer      build/layer/stash-x86_64.zip and stash-arm64.zip (the Lambda layers)
#   make test       install what is missing, build, run every test (unit, integration)
#   make asan       the same under ASan/UBSan (build/asan/...)
#   make tsan       unit tests under ThreadSanitizer (build/tsan/...)
#   make valgrind   unit tests under valgrind
#   make demo       fake-aws + lambda-sim + stash, a burst of invocations, what stash did
#   make bench      benchmarks (QUICK=1 for the CI smoke run) -> bench/results/
#   make fuzz       libFuzzer harnesses (clang) -> build/fuzz/fuzz/
# Knobs: V=1 (echo commands)  WERROR=0 (allow warnings locally)  CFLAGS/LDFLAGS (yours)
#        DEPS=system (build/extensions/stash linked against Debian's shared libraries instead)
NAME     := stash
BUILD    ?= build
WERROR   ?= 1
WARN     := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wold-style-definition -Wpointer-arith -Wwrite-strings -Wvla -Wformat=2 \
            -Wundef -Wimplicit-fallthrough -fno-common $(if $(filter 1,$(WERROR)),-Werror)
OPT      ?= -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
SANOPT   := -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=all
PKGS     := libmicrohttpd libcurl libcjson openssl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
BASE_CPPFLAGS = -I. -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -MMD -MP $(CPPFLAGS)
ALL_CPPFLAGS = $(BASE_CPPFLAGS) $(PKG_CFLAGS)
ALL_CFLAGS   = -std=c11 $(OPT) $(WARN) $(SAN) $(CFLAGS)
# --as-needed (Debian's gcc default, said here so it holds everywhere): a library is recorded as
# needed only if something in the binary uses it, so LDLIBS can name every library of every
# binary and stash maps none it does not use (each one costs every start a map and relocation).
ALL_LDFLAGS  = -Wl,--as-needed $(SAN_LD) $(LDFLAGS)
LDLIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm
Q        := $(if $(V),,@)

LIB_SRC  := $(wildcard common/*.c cache/*.c telemetry/*.c extension/*.c)
LIB_SRC  := $(filter-out extension/main.c,$(LIB_SRC))
LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))
FAKEAWS_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard sim/fake_aws/*.c))
SIM_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard sim/lambda_sim/*.c))
SIM_LIB_OBJ := $(filter-out $(BUILD)/obj/sim/lambda_sim/main.o,$(SIM_OBJ))
TESTS    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
FUZZERS  := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
# bench/floor.c is the bare libmicrohttpd responder the hit path is measured against.
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c bench/floor.c))
# Test helpers in C (tests/tools/*.c), e.g. emf_sample: known records through the EMF writer.
TOOLS    := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(wildcard tests/tools/*.c))

EXT      := $(BUILD)/extensions/$(NAME)
BINS     := $(EXT) $(if $(FAKEAWS_OBJ),$(BUILD)/bin/fake-aws) $(if $(SIM_OBJ),$(BUILD)/bin/lambda-sim)

# What ships.  DEPS=lean (the default): stash is linked statically against musl and against
# OpenSSL, libcurl, libmicrohttpd and cJSON built from Debian's source packages by
# scripts/lean-deps.sh, which keeps them in a cache outside the clone.  The result needs no
# shared library at all, so it starts on any Lambda image (Amazon Linux 2 and 2023, x86_64 and
# arm64).  DEPS=system links Debian's shared libraries: quicker to set up for local work, and
# what the sanitizer, valgrind and fuzz builds use.  fake-aws, lambda-sim, the unit tests and
# the bench tools are always system builds: they never ship.
DEPS     ?= lean
# -static: a static executable at a fixed address (README, "Building what ships", says why);
# LEAN_PIE=-static-pie gives a static PIE, which relocates itself at every start.
LEAN_PIE ?= -static
LEAN_OPT := -O2 -g -fPIE -fstack-protector-strong -ffunction-sections -fdata-sections
LEAN_CROSS_x86_64 :=
LEAN_CROSS_arm64  := aarch64-linux-gnu-
lean_prefix = $(shell scripts/lean-deps.sh prefix $(1))
LEAN_P_x86_64 := $(call lean_prefix,x86_64)
LEAN_P_arm64  := $(call lean_prefix,arm64)
LEAN_SRC := $(LIB_SRC) extension/main.c
SYS_EXT  := $(BUILD)/system/extensions/$(NAME)
LEAN_EXT_x86_64 := $(BUILD)/lean/x86_64/$(NAME)
LEAN_EXT_arm64  := $(BUILD)/lean/arm64/$(NAME)
LAYERS   := $(BUILD)/layer/$(NAME)-x86_64.zip $(BUILD)/layer/$(NAME)-arm64.zip

.PHONY: FORCE all deps test unit asan tsan tsan-unit valgrind fuzz fuzz-build bench demo lint format \
        format-check install clean layer lean-deps
all: $(BINS)

deps:
	$(Q)scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@
$(SYS_EXT): $(BUILD)/obj/extension/main.o $(LIB_OBJ)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $^ -o $@ $(LDLIBS)
$(EXT): $(if $(filter system,$(DEPS)),$(SYS_EXT),$(LEAN_EXT_x86_64))
	@mkdir -p $(@D)
	$(Q)cp $< $@

# The lean build, per architecture: its own objects, compiled by gcc (or the aarch64 cross gcc)
# against musl through the specs file lean-deps.sh writes, and linked static.  The link is redone
# when LEAN_PIE changes (link-flags holds the last one) and when the libraries are rebuilt (a
# new cache folder, so a new manifest).  scripts/check-static.sh refuses a
# result that needs any shared library, naming what it needs.
define lean_rules
$$(LEAN_P_$(1))/manifest.txt:
	$$(Q)scripts/lean-deps.sh build $(1)
$$(BUILD)/lean/$(1)/obj/%.o: %.c | $$(LEAN_P_$(1))/manifest.txt
	@mkdir -p $$(@D)
	$$(Q)$$(LEAN_CROSS_$(1))gcc -specs=$$(LEAN_P_$(1))/musl.specs $$(BASE_CPPFLAGS) \
	  -I$$(LEAN_P_$(1))/include -idirafter$$(LEAN_P_$(1))/kernel \
	  -std=c11 $$(LEAN_OPT) $$(WARN) $$(CFLAGS) -c $$< -o $$@
$$(BUILD)/lean/$(1)/link-flags: FORCE
	@mkdir -p $$(@D)
	@echo '$$(LEAN_PIE)' | cmp -s - $$@ || echo '$$(LEAN_PIE)' >$$@
$$(LEAN_EXT_$(1)): $$(patsubst %.c,$$(BUILD)/lean/$(1)/obj/%.o,$$(LEAN_SRC)) $$(BUILD)/lean/$(1)/link-flags \
                   $$(LEAN_P_$(1))/manifest.txt
	@mkdir -p $$(@D)
	$$(Q)$$(LEAN_CROSS_$(1))gcc -specs=$$(LEAN_P_$(1))/musl.specs $$(LEAN_PIE) -Wl,--gc-sections \
	  -Wl,-z,relro,-z,now $$(filter %.o,$$^) -o $$@ -L$$(LEAN_P_$(1))/lib -lcurl -lmicrohttpd -lcjson -lssl \
	  -lcrypto -pthread
	$$(Q)scripts/check-static.sh $$@
endef
$(eval $(call lean_rules,x86_64))
$(eval $(call lean_rules,arm64))
lean-deps: $(LEAN_P_x86_64)/manifest.txt $(LEAN_P_arm64)/manifest.txt

# A layer zip holds extensions/stash (0755) and nothing else: Lambda puts /opt/lib on the
# function's LD_LIBRARY_PATH, so a library shipped there would replace the runtime's own.
# The zip is reproducible: one fixed timestamp, no extra attributes, fixed order.
$(BUILD)/layer/$(NAME)-%.zip: $(BUILD)/lean/%/$(NAME)
	$(Q)scripts/make-layer.sh $< $@ $(LEAN_CROSS_$*)strip
layer:
	$(Q)start=$$(date +%s); $(MAKE) --no-print-directory $(LAYERS) && \
	  scripts/make-layer.sh --summary $(LAYERS) && \
	  echo "layer: done in $$(($$(date +%s) - start)) s"
$(BUILD)/bin/fake-aws: $(FAKEAWS_OBJ) $(LIB_OBJ)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $^ -o $@ $(LDLIBS)
$(BUILD)/bin/lambda-sim: $(SIM_OBJ) $(LIB_OBJ)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $^ -o $@ $(LDLIBS)
$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS) $(LDFLAGS_$*) $^ -o $@ -lcmocka $(LDLIBS)
# Per-test link flags: LDFLAGS_<test name>.  test_cache wraps malloc/calloc/free to prove that
# every block that held a cached secret was zeroed before it was freed.
LDFLAGS_test_cache := -Wl,--wrap=malloc,--wrap=calloc,--wrap=free
# test_shape wraps malloc/free to prove that every copy of a secret shaping makes is wiped.
LDFLAGS_test_shape := -Wl,--wrap=malloc,--wrap=free
# fake-aws's unit tests and fuzzer (test_fake_aws*, fuzz_fake_aws*) also link its modules, all
# but its main().
FAKEAWS_LIB := $(filter-out $(BUILD)/obj/sim/fake_aws/main.o,$(FAKEAWS_OBJ))
FAKEAWS_TESTS := $(filter $(BUILD)/tests/test_fake_aws%,$(TESTS))
$(FAKEAWS_TESTS): $(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ) $(FAKEAWS_LIB)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS) $^ -o $@ -lcmocka $(LDLIBS)
# The unit test of lambda-sim's pure parts links its modules too (an explicit rule wins over %).
$(BUILD)/tests/test_lambda_sim: tests/unit/test_lambda_sim.c $(SIM_LIB_OBJ) $(LIB_OBJ)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS) $^ -o $@ -lcmocka $(LDLIBS)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_OBJ)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS) $^ -o $@ $(LDLIBS)
FAKEAWS_FUZZERS := $(filter $(BUILD)/fuzz/fuzz_fake_aws%,$(FUZZERS))
$(FAKEAWS_FUZZERS): $(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_OBJ) $(FAKEAWS_LIB)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS) $^ -o $@ $(LDLIBS)
$(BUILD)/bench/%: bench/%.c $(LIB_OBJ)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS) $^ -o $@ $(LDLIBS)
$(BUILD)/tools/%: tests/tools/%.c $(LIB_OBJ)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS) $^ -o $@ $(LDLIBS)

# `test` installs what is missing first, so a fresh machine needs nothing but this command.
test: deps
	$(Q)$(MAKE) --no-print-directory unit
# The bench tools are built too: tests/integration/bench_quick.sh runs the quick benchmark.
# With DEPS=lean the layers are built and tested too (tests/integration/lean_*.sh), and the
# system build, which the benchmark measures beside the shipped one.
unit: $(BINS) $(TESTS) $(BENCHES) $(TOOLS) $(if $(filter lean,$(DEPS)),$(LAYERS) $(SYS_EXT))
	$(Q)STASH_DEPS=$(DEPS) tests/run.sh $(BUILD)
asan: deps
	$(Q)$(MAKE) --no-print-directory unit BUILD=build/asan DEPS=system OPT="$(SANOPT)" \
	  SAN=-fsanitize=address,undefined SAN_LD=-fsanitize=address,undefined
# Unit tests only: the integration scripts start the release binaries.
tsan: deps
	$(Q)$(MAKE) --no-print-directory tsan-unit BUILD=build/tsan DEPS=system OPT="$(SANOPT)" \
	  SAN=-fsanitize=thread SAN_LD=-fsanitize=thread
tsan-unit: $(TESTS)
	$(Q)tests/run.sh $(BUILD) --unit-only
valgrind: deps $(BINS) $(TESTS)
	$(Q)VALGRIND=1 tests/run.sh $(BUILD) --unit-only
fuzz: deps
	$(Q)$(MAKE) --no-print-directory fuzz-build BUILD=build/fuzz DEPS=system CC=clang OPT="$(SANOPT)" \
	  SAN=-fsanitize=fuzzer-no-link,address,undefined SAN_LD=-fsanitize=fuzzer,address,undefined
fuzz-build: $(FUZZERS)
bench: deps
	$(Q)$(MAKE) --no-print-directory $(BINS) $(SYS_EXT) $(BENCHES)
	$(Q)bench/run.sh $(BUILD) $(if $(QUICK),--quick)
demo: deps
	$(Q)$(MAKE) --no-print-directory $(BINS)
	$(Q)scripts/demo.sh $(BUILD)
# Every library source, the extension's main and both simulators: all clean under .clang-tidy.
LINT_SRC := $(LIB_SRC) extension/main.c $(wildcard sim/fake_aws/*.c sim/lambda_sim/*.c)
# One clang-tidy per file: clang-tidy 14 given several files carries analyzer state from one to
# the next (a false "uninitialized va_list" in every later vsnprintf caller).
lint:
	$(Q)rc=0; for f in $(LINT_SRC); do \
	  out=$$(clang-tidy --quiet $$f -- $(ALL_CPPFLAGS) -std=c11 2>&1) || rc=1; \
	  printf '%s' "$$out" | grep -v 'warnings generated' || true; \
	done; exit $$rc
format:
	clang-format -i $(LIB_SRC) $(wildcard */*.h tests/unit/*.c sim/*/*.c)
format-check:
	clang-format --dry-run -Werror $(LIB_SRC) $(wildcard */*.h tests/unit/*.c sim/*/*.c)
install: all   # layer layout: $(PREFIX)/extensions/$(NAME)
	install -D -m 0755 $(EXT) $(DESTDIR)$(or $(PREFIX),/opt)/extensions/$(NAME)
clean:
	rm -rf build

# ---- make reliability: stash under abuse and faults (tests/reliability/harness.py) ----
# The full run (soak SOAK_SECONDS, default 120, under the ASan build) writes
# bench/results/reliability.{md,json}; QUICK=1 is the under-a-minute run `make test` includes
# (tests/integration/reliability_quick.sh).
.PHONY: reliability
reliability: deps
	$(Q)$(MAKE) --no-print-directory $(BINS)
	$(Q)$(if $(QUICK),,$(MAKE) --no-print-directory build/asan/extensions/$(NAME) BUILD=build/asan \
	  DEPS=system OPT="$(SANOPT)" SAN=-fsanitize=address,undefined \
	  SAN_LD=-fsanitize=address,undefined)
	$(Q)ulimit -n "$$(ulimit -Hn)"; python3 tests/reliability/harness.py --build $(BUILD) \
	  $(if $(QUICK),--quick,--asan-build build/asan --out-json bench/results/reliability.json \
	  --out-md bench/results/reliability.md)

# make reproduce: the three published comparisons (TTL under load, cold/warm, prefetch) under
# lambda-sim with stash and fake-aws, beside the published figures -> bench/results/reproduce.*
# QUICK=1: scaled down, under a minute -> $(BUILD)/reproduce/ (never the committed results).
.PHONY: reproduce
reproduce: deps
	$(Q)$(MAKE) --no-print-directory $(BINS)
	$(Q)python3 bench/reproduce.py --build $(BUILD) $(if $(QUICK),--quick)

-include $(shell find $(BUILD)/obj $(BUILD)/lean -name '*.d' 2>/dev/null)
