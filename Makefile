# sekeyfs - build, test, fuzz, bench, install.
#
# The folder is the module: every .c in a module folder goes into that
# module's static library; programs are listed below; every
# tests/test_*.c is one Check program and every fuzz/fuzz_*.c one libFuzzer
# target, found by name, so adding a file needs no edit here.

PREFIX   ?= /usr/local
BUILD    ?= build
CC       ?= cc
PKGS     := libcrypto libxxhash sqlite3 libusb-1.0 fuse3
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter
CFLAGS   ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DFUSE_USE_VERSION=314 \
             $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) $(PKG_CFLAGS) -I. -MMD -MP
LDLIBS_ALL = $(PKG_LIBS) -lpthread -lm

# Modules in link order (a module may use only those after it).
MODULES  := fs kms sefile cube firmware wire
lib_srcs  = $(filter-out $(1)/main.c,$(wildcard $(1)/*.c))
lib_objs  = $(patsubst %.c,$(BUILD)/%.o,$(call lib_srcs,$(1)))
LIBS     := $(foreach m,$(MODULES),$(if $(call lib_srcs,$(m)),$(BUILD)/lib$(m).a))

# Programs: name, main source, lowest module it links (it gets that module
# and every module after it in MODULES).  Built only once the main exists.
libs_from = $(foreach m,$(wordlist $(call index_of,$(1)),99,$(MODULES)),$(if $(call lib_srcs,$(m)),$(BUILD)/lib$(m).a))
index_of  = $(words $(call upto,$(1),$(MODULES)))
upto      = $(if $(filter $(1),$(firstword $(2))),$(1),$(firstword $(2)) $(call upto,$(1),$(wordlist 2,99,$(2))))
PROG_MAIN_secube-emu := firmware/main.c
PROG_LIB_secube-emu  := firmware
PROG_MAIN_secube     := tools/secube.c
PROG_LIB_secube      := cube
PROG_MAIN_sefile     := tools/sefile.c
PROG_LIB_sefile      := sefile
PROG_MAIN_sekey      := tools/sekey.c
PROG_LIB_sekey       := fs
PROG_MAIN_sekeyfs    := fs/main.c
PROG_LIB_sekeyfs     := fs
CLI_SRCS := $(wildcard tools/cli*.c)
PROGRAMS := $(foreach p,secube-emu secube sefile sekey sekeyfs,$(if $(wildcard $(PROG_MAIN_$(p))),$(p)))
BINS     := $(addprefix $(BUILD)/bin/,$(PROGRAMS))
prog_objs = $(patsubst %.c,$(BUILD)/%.o,$(PROG_MAIN_$(1)) $(if $(filter tools/%,$(PROG_MAIN_$(1))),$(CLI_SRCS)))

TEST_SRCS := $(wildcard tests/test_*.c)
TEST_HELP := $(wildcard tests/helper_*.c)
TESTS     := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
BENCH_SRCS := $(wildcard bench/bench_*.c)
BENCHES   := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

.PHONY: all check test asan fuzz fuzz-long bench bench-quick install clean demo stress deps
all: $(BINS) $(TESTS) $(BENCHES)

deps:
	tools/install-deps

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

define module_lib
$(BUILD)/lib$(1).a: $(call lib_objs,$(1))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_lib,$(m))))

define program
$(BUILD)/bin/$(1): $(call prog_objs,$(1)) $(call libs_from,$(PROG_LIB_$(1)))
	@mkdir -p $$(dir $$@)
	$(CC) $(ALL_CFLAGS) -o $$@ $$^ $(LDLIBS_ALL)
endef
$(foreach p,$(PROGRAMS),$(eval $(call program,$(p))))

# tests/test_MODULE_*.c links MODULE and the modules below it.
test_module = $(word 2,$(subst _, ,$(notdir $(1))))
define test_prog
$(BUILD)/tests/$(1): $(BUILD)/tests/$(1).o $(if $(TEST_HELP),$(BUILD)/libtesthelp.a) $(call libs_from,$(call test_module,$(1)))
	@mkdir -p $$(dir $$@)
	$(CC) $(ALL_CFLAGS) -o $$@ $$^ $(CHECK_LIBS) $(LDLIBS_ALL)
endef
# Shared test helpers (tests/helper_*.c): an archive, so a test pulls in
# only what it calls.
$(BUILD)/libtesthelp.a: $(patsubst %.c,$(BUILD)/%.o,$(TEST_HELP))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(foreach t,$(TEST_SRCS),$(eval $(call test_prog,$(basename $(notdir $(t))))))

# bench/bench_MODULE_*.c links like a test.
define bench_prog
$(BUILD)/bench/$(1): $(BUILD)/bench/$(1).o $(call libs_from,$(call test_module,$(1)))
	@mkdir -p $$(dir $$@)
	$(CC) $(ALL_CFLAGS) -o $$@ $$^ $(LDLIBS_ALL)
endef
$(foreach b,$(BENCH_SRCS),$(eval $(call bench_prog,$(basename $(notdir $(b))))))

# The whole suite, as CI runs it: the tests, every fuzzer for a short
# fixed time, then the tests again under the sanitizers.
check:
	$(MAKE) test
	$(MAKE) fuzz
	$(MAKE) asan

# Unit tests, then program-level and mount-level tests, two at a time
# (TEST_JOBS=1: one at a time).
test: all
	TEST_JOBS=$${TEST_JOBS:-2} BUILD=$(BUILD) tests/run-tests.sh

# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	$(MAKE) BUILD=build-asan CC=clang \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1" \
	  test

# libFuzzer targets: every fuzz/fuzz_*.c, run for FUZZ_SECONDS each on
# its seed corpus tests/corpus/NAME (crashes kept as regression inputs).
FUZZ_SECONDS ?= 10
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) tools/run-fuzzers
fuzz-long:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-600} tools/run-fuzzers

bench: all
	BUILD=$(BUILD) tools/run-bench

# The same benchmarks, small and short (under two minutes), while developing.
bench-quick: all
	BENCH_QUICK=1 BUILD=$(BUILD) tools/run-bench

stress: all
	STRESS=1 SEFILE_FSX_OPS=$${SEFILE_FSX_OPS:-200000} BUILD=$(BUILD) tests/run-tests.sh

demo: all
	BUILD=$(BUILD) tools/demo

# Public headers: each module's whole public face (internal headers stay).
PUBLIC_HEADERS := wire/wire.h wire/buf.h wire/frame.h cube/cube.h sefile/sefile.h sefile/sdb.h \
                  kms/kms.h fs/fs.h
HOST_MODULES   := fs kms sefile cube wire
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/include/sekeyfs $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	for m in $(HOST_MODULES); do [ -e $(BUILD)/lib$$m.a ] && \
	  install -m 644 $(BUILD)/lib$$m.a $(DESTDIR)$(PREFIX)/lib/libsekeyfs_$$m.a; done; true
	for h in $(PUBLIC_HEADERS); do [ -e "$$h" ] || continue; \
	  install -d $(DESTDIR)$(PREFIX)/include/sekeyfs/$$(dirname $$h); \
	  install -m 644 $$h $(DESTDIR)$(PREFIX)/include/sekeyfs/$$h; done
	for m in docs/man/*.1; do [ -e "$$m" ] && install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man1/; done; true
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBS@|$(foreach m,$(HOST_MODULES),$(if $(call lib_srcs,$(m)),-lsekeyfs_$(m)))|' \
	  tools/sekeyfs.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/sekeyfs.pc

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
