# funnel - one non-recursive Makefile.
#
#   make            build every program into bin/
#   make test       install missing packages, build, run all tests
#   make demo       install missing packages, build, run the main job end to end
#   make asan       build and run the same tests under AddressSanitizer + UBSan
#   make bench      benchmarks (print numbers; nothing is asserted)
#   make format     clang-format every source file
#
# Library code (everything but *_main.c, tests/ and bench/) is compiled once
# into build/libfunnel.a; programs, the test runner and benchmarks link it.

.DEFAULT_GOAL := all
BUILD   ?= build
BIN     ?= bin
CC      ?= cc
PKGS    := libzmq msgpack rocksdb openblas cunit inih zlib libxxhash
OPT     ?= -O2 -march=x86-64-v2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -Wall -Wextra -pthread -MMD -MP \
           -Icommon -Iproto -Iworker -Ips -Igen -Itests \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread $(SANLIBS)

SRC_DIRS := common proto worker ps gen
ALL_SRC  := $(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c))
MAIN_SRC := $(filter %_main.c,$(ALL_SRC))
LIB_SRC  := $(filter-out %_main.c,$(ALL_SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libfunnel.a

# program name -> main file
PROGS := $(BIN)/funnel-worker $(BIN)/funnel-ps $(BIN)/funnel-emb $(BIN)/funnel-gen
$(BIN)/funnel-worker: $(BUILD)/worker/worker_main.o
$(BIN)/funnel-ps:     $(BUILD)/ps/ps_main.o
$(BIN)/funnel-emb:    $(BUILD)/ps/emb_main.o
$(BIN)/funnel-gen:    $(BUILD)/gen/gen_main.o
PROGS := $(foreach p,$(PROGS),$(if $(wildcard $(patsubst $(BIN)/funnel-%,*/%_main.c,$(p))),$(p)))

TEST_SRC   := $(wildcard tests/*.c)
TEST_OBJ   := $(TEST_SRC:%.c=$(BUILD)/%.o)
TEST_BIN   := $(BIN)/funnel-tests
TEST_LIST  := $(BUILD)/tests/suites.h
BENCH_SRC  := $(wildcard bench/bench_*.c)
BENCH_BINS := $(BENCH_SRC:bench/bench_%.c=$(BIN)/bench-%)

.PHONY: all deps test demo asan bench format clean
all: $(PROGS) $(TEST_BIN) $(BENCH_BINS)

deps:
	@scripts/install-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Hot elementwise loops (ReLU masks, bias sums, optimizer updates): let GCC
# vectorize them - sqrtf without errno, and the dynamic cost model (-O2's
# "very cheap" model skips loops of unknown length). About 1.3x on a step.
$(BUILD)/worker/dense.o $(BUILD)/common/optim.o: CFLAGS += -fno-math-errno -fvect-cost-model=dynamic

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/funnel-%: $(LIB)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)

$(BIN)/bench-%: $(BUILD)/bench/bench_%.o $(LIB)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The suite list is generated from the file names tests/test_<suite>.c.
$(TEST_LIST): $(wildcard tests/test_*.c) Makefile
	@mkdir -p $(dir $@)
	@for f in $(sort $(wildcard tests/test_*.c)); do \
	  n=$${f#tests/test_}; echo "SUITE($${n%.c})"; done > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/main.o: $(TEST_LIST)
$(BUILD)/tests/main.o: CFLAGS += -I$(BUILD)/tests

$(TEST_BIN): $(TEST_OBJ) $(LIB)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Tests start the real programs from $(FUNNEL_BIN).
test: deps
	@$(MAKE) --no-print-directory all
	FUNNEL_BIN=$(BIN) $(TEST_BIN) $(SUITES)

demo: deps
	@$(MAKE) --no-print-directory all
	scripts/demo.sh $(BIN)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan BIN=build/asan/bin \
	  OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  SANLIBS="-fsanitize=address,undefined" test

bench: deps
	@scripts/install-deps.sh --bench
	@$(MAKE) --no-print-directory all
	scripts/bench.sh $(BIN)

format:
	clang-format -i $(ALL_SRC) $(wildcard */*.h) $(TEST_SRC) $(BENCH_SRC)

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
