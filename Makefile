# funnel - one non-recursive Makefile.
#
#   make              build every program into bin/
#   make test         install missing packages, build, check the layers, run all tests
#   make demo         install missing packages, build, run the main job end to end
#   make asan         build and run the same tests under AddressSanitizer + UBSan
#   make bench        benchmarks, BENCH_RUNS (3) runs, min/median/max (nothing is asserted)
#   make format       clang-format every source file
#   make check-format fail if `make format` would change a file
#   make check-layers fail if a file includes a header its folder may not use
#   make fuzz         build the libFuzzer targets (clang) and run each FUZZ_TIME s
#   make fuzz-smoke   the same for a few seconds each (run by `make test`)
#   make test-hosts   (root) the across-hosts and scale suites: network namespaces
#   make bench-hosts  (root) samples/s over namespaces under a 1 Gbit/s cap
#
# Flags: CFLAGS, CPPFLAGS and LDFLAGS given on the command line are added
# after the project's own (so `make CFLAGS=-O0` builds unoptimized); OPT
# replaces the optimization flags.
#
# THE LAYERS. Every folder below is one layer (a library) or one program.
# USES_<folder> lists the folders whose headers its files may include,
# besides its own; it is the one statement of the architecture:
# `check-layers` enforces it on every #include, and each program links
# only its own folder's archive and those of the folders it uses, so a
# call across a forbidden edge does not link either. tests/ and bench/
# may use everything.

.DEFAULT_GOAL := all
BUILD   ?= build
BIN     ?= bin
CC      ?= cc
OPT     ?= -O2 -march=x86-64-v2 -g

#           folder   may include
USES_common :=
USES_proto  := common
USES_table  := common
USES_data   := common
USES_model  := common
USES_ps     := common proto table obs
USES_emb    := common proto table
USES_worker := common proto table data model obs
USES_gen    := common
USES_obs    := common
USES_serve  := common proto table data model

# Link order: a folder before every folder it uses.
LAYERS   := worker emb ps gen serve model data table proto obs common
PROGRAMS := worker:funnel-worker ps:funnel-ps emb:funnel-emb gen:funnel-gen serve:funnel-serve

# Third-party libraries (pkg-config names) each folder's files use.
PKGS_common := inih libxxhash
PKGS_proto  := libzmq msgpack
PKGS_table  := rocksdb libxxhash
PKGS_data   := zlib
PKGS_model  := openblas
PKGS_ps     := libzmq
PKGS_gen    := zlib
PKGS_obs    := libmicrohttpd
PKGS_serve  := libzmq
PKGS_test   := cunit libzmq
# ... and those without a pkg-config file: oneDNN (bf16 products, dense.c)
# and its OpenMP runtime
LIBS_model  := -ldnnl -lgomp

ALL_PKGS := $(sort $(foreach d,$(LAYERS),$(PKGS_$(d))) $(PKGS_test))
FUNNEL_CFLAGS := -std=gnu11 -Wall -Wextra -pthread -MMD -MP -I. \
                 $(shell pkg-config --cflags $(ALL_PKGS) 2>/dev/null)

# Hot elementwise loops (ReLU masks, bias sums, optimizer updates): let GCC
# vectorize them - sqrtf without errno, and the dynamic cost model (-O2's
# "very cheap" model skips loops of unknown length). About 1.3x on a step.
VECTORIZE ?= -fno-math-errno -fvect-cost-model=dynamic
$(BUILD)/model/dense.o $(BUILD)/common/optim.o $(BUILD)/common/finite.o: FUNNEL_CFLAGS += $(VECTORIZE)

# Live metrics (obs/): the build's version in funnel_*_build_info, in a
# header rewritten only when the version changes (so metrics.o follows it).
FUNNEL_VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
VERSION_H := $(BUILD)/obs/version.h
$(VERSION_H): FORCE
	@mkdir -p $(dir $@)
	@echo '#define FUNNEL_VERSION "$(FUNNEL_VERSION)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
$(BUILD)/obs/metrics.o: $(VERSION_H)
$(BUILD)/obs/metrics.o: FUNNEL_CFLAGS += -include $(VERSION_H)
.PHONY: FORCE

COMPILE = $(CC) $(FUNNEL_CFLAGS) $(OPT) $(CPPFLAGS) $(CFLAGS)
LINK    = $(CC) $(OPT) $(CFLAGS) -pthread $(SANLIBS) $(LDFLAGS)

# Sources and archives: build/lib<folder>.a holds a folder's files but its main.
src_of     = $(filter-out %_main.c,$(wildcard $(1)/*.c))
lib_of     = $(BUILD)/lib$(1).a
# A folder's closure of used folders, itself first, in link order.
closure    = $(filter $(1) $(USES_$(1)),$(LAYERS))
libs_for   = $(foreach d,$(call closure,$(1)),$(call lib_of,$(d)))
ldlibs_for = $(shell pkg-config --libs $(sort $(foreach d,$(call closure,$(1)),$(PKGS_$(d)))) \
               2>/dev/null) $(foreach d,$(call closure,$(1)),$(LIBS_$(d))) -lm

ALL_SRC := $(foreach d,$(LAYERS),$(wildcard $(d)/*.c))
ALL_LIBS := $(foreach d,$(LAYERS),$(if $(call src_of,$(d)),$(call lib_of,$(d))))

$(foreach d,$(LAYERS),$(eval $(call lib_of,$(d)): $(patsubst %.c,$(BUILD)/%.o,$(call src_of,$(d)))))
$(ALL_LIBS):
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# bin/funnel-<name>: <folder>/<folder>_main.c + the folder's closure.
define program
$(BIN)/$(2): $(BUILD)/$(1)/$(1)_main.o $(call libs_for,$(1))
	@mkdir -p $(BIN)
	$$(LINK) -o $$@ $$^ $(call ldlibs_for,$(1))
PROGS += $(BIN)/$(2)
endef
$(foreach p,$(PROGRAMS),$(eval $(call program,$(word 1,$(subst :, ,$(p))),$(word 2,$(subst :, ,$(p))))))

TEST_SRC   := $(wildcard tests/*.c)
TEST_OBJ   := $(TEST_SRC:%.c=$(BUILD)/%.o)
TEST_BIN   := $(BIN)/funnel-tests
TEST_LIST  := $(BUILD)/tests/suites.h
BENCH_SRC  := $(wildcard bench/bench_*.c)
BENCH_BINS := $(BENCH_SRC:bench/bench_%.c=$(BIN)/bench-%)
EVERY_LIB  := $(ALL_LIBS)
EVERY_LDLIBS := $(shell pkg-config --libs $(ALL_PKGS) 2>/dev/null) $(LIBS_model) -lm

.PHONY: all deps test demo asan bench format check-format check-layers clean \
        fuzz fuzz-smoke fuzz-bins
all: $(PROGS) $(TEST_BIN) $(BENCH_BINS)

deps:
	@scripts/install-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(COMPILE) -c $< -o $@

$(BIN)/bench-%: $(BUILD)/bench/bench_%.o $(EVERY_LIB)
	@mkdir -p $(BIN)
	$(LINK) -o $@ $^ $(EVERY_LDLIBS)

# The suite list is generated from the file names tests/test_<suite>.c.
$(TEST_LIST): $(wildcard tests/test_*.c) Makefile
	@mkdir -p $(dir $@)
	@for f in $(sort $(wildcard tests/test_*.c)); do \
	  n=$${f#tests/test_}; echo "SUITE($${n%.c})"; done > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/main.o: $(TEST_LIST)
$(BUILD)/tests/main.o: FUNNEL_CFLAGS += -I$(BUILD)/tests

$(TEST_BIN): $(TEST_OBJ) $(EVERY_LIB)
	@mkdir -p $(BIN)
	$(LINK) -o $@ $^ $(EVERY_LDLIBS)

# Tests start the real programs from $(FUNNEL_BIN).
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory check-layers
	FUNNEL_BIN=$(BIN) $(TEST_BIN) $(SUITES)
	@$(MAKE) --no-print-directory fuzz-smoke

demo: deps
	@$(MAKE) --no-print-directory all
	scripts/demo.sh $(BIN)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan BIN=build/asan/bin \
	  OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  SANLIBS="-fsanitize=address,undefined" test

bench: deps
	@scripts/install-deps.sh --bench
	@$(MAKE) --no-print-directory all
	scripts/bench-runs.sh $(BIN) $(BENCH)

# test-slurm (root): funnel under a one-node Slurm started from a scratch
# folder (munged, slurmctld, slurmd); not in `make test`: needs root, 1-3 min.
.PHONY: test-slurm
test-slurm:
	@scripts/install-deps.sh --slurm
	@$(MAKE) --no-print-directory all
	tests/slurm/test-slurm.sh $(BIN)

# Fuzzing: tests/fuzz/fuzz_<name>.c are libFuzzer targets over the whole
# library, built by clang with ASan + UBSan into build/fuzz; their seed
# corpora are tests/fuzz/corpus/<name>/ (scripts/fuzz.sh never writes there).
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_TIME  ?= 60
FUZZ_SMOKE_TIME ?= 3
FUZZ_MAKE   = $(MAKE) --no-print-directory BUILD=build/fuzz BIN=build/fuzz/bin CC=clang \
  VECTORIZE=-fno-math-errno SANLIBS="-fsanitize=address,undefined" \
  OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"

$(BIN)/fuzz-%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/util.o $(EVERY_LIB)
	@mkdir -p $(BIN)
	$(LINK) -fsanitize=fuzzer -o $@ $^ $(EVERY_LDLIBS)
fuzz-bins: $(FUZZ_NAMES:%=$(BIN)/fuzz-%)
.SECONDARY: $(FUZZ_SRC:%.c=$(BUILD)/%.o) $(BUILD)/tests/fuzz/util.o

fuzz: deps
	@$(FUZZ_MAKE) fuzz-bins
	scripts/fuzz.sh build/fuzz/bin $(FUZZ_TIME) $(FUZZ_NAMES)

fuzz-smoke: deps
	@$(FUZZ_MAKE) fuzz-bins
	@scripts/fuzz.sh build/fuzz/bin $(FUZZ_SMOKE_TIME) $(FUZZ_NAMES)

# Across hosts (issue 13): "hosts" are network namespaces made by
# tests/hosts/hosts.sh (root; the suites skip with a message otherwise).
.PHONY: test-hosts bench-hosts
test-hosts: deps
	@$(MAKE) --no-print-directory all
	FUNNEL_HOSTS=1 FUNNEL_BIN=$(BIN) $(TEST_BIN) hosts scale

bench-hosts: deps
	@$(MAKE) --no-print-directory all
	tests/hosts/bench.sh $(BIN)

FORMAT_SRC := $(sort $(ALL_SRC) $(foreach d,$(LAYERS) tests tests/fuzz bench,$(wildcard $(d)/*.h)) \
                $(TEST_SRC) $(BENCH_SRC) $(wildcard tests/fuzz/*.c))
format:
	clang-format -i $(FORMAT_SRC)

check-format:
	@scripts/check-format.sh $(FORMAT_SRC)

check-layers:
	@scripts/check-layers.sh $(foreach d,$(LAYERS),"$(d): $(USES_$(d))")

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
