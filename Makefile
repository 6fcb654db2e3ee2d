# dronegate - build, run, test.
#
#   make run    install missing Debian packages, build, start the gateway (SQLite)
#   make test   install, build, run unit tests (plain and ASan+UBSan), fuzzers
#               briefly, and the integration tests against the real binary
#
# Sources are picked up by wildcard: one folder per layer under src/.

CC       ?= cc
CLANG    ?= clang
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -pthread -D_GNU_SOURCE -Isrc -Iinclude
LDLIBS   := -lev -lsqlite3 -lpq -lcurl -lhttp_parser -lcrypto -lm -lpthread
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

B        := build
SRC      := $(sort $(wildcard src/*/*.c))
MAIN     := src/core/main.c
LIBSRC   := $(filter-out $(MAIN),$(SRC))
OBJ      := $(LIBSRC:%.c=$(B)/obj/%.o)
ASAN_OBJ := $(LIBSRC:%.c=$(B)/asan/%.o)
SIMSRC   := $(sort $(wildcard tools/sim/*.c))
UNIT     := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT:tests/unit/%.c=$(B)/tests/%)
UNIT_ASAN:= $(UNIT:tests/unit/%.c=$(B)/tests-asan/%)
FUZZ     := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ:fuzz/%.c=$(B)/fuzz/%)
BENCHSRC := $(sort $(wildcard bench/*.c))
BENCH_BIN:= $(BENCHSRC:bench/%.c=$(B)/bench/%)
FUZZ_SECONDS ?= 20

.PHONY: all deps web run test unit unit-asan fuzz fuzz-run integration integration-asan browser bench clean mutants

all: $(B)/dronegate $(B)/dronegate-sim $(B)/dronegate-asan $(BENCH_BIN)

deps:
	@scripts/deps.sh
	@scripts/deps-stores.sh

# The dashboard's JavaScript and basemap come from npm (web/package-lock.json).
web:
	@web/build.sh

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(filter-out -O2 -g,$(CFLAGS)) $(SAN) -MMD -MP -c $< -o $@

$(B)/libdronegate-core.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libdronegate-core-asan.a: $(ASAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/dronegate: $(B)/obj/$(MAIN:.c=.o) $(B)/libdronegate-core.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/dronegate-asan: $(B)/asan/$(MAIN:.c=.o) $(B)/libdronegate-core-asan.a
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

$(B)/dronegate-sim: $(SIMSRC) $(wildcard tools/sim/*.h) $(B)/libdronegate-core.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(SIMSRC) $(B)/libdronegate-core.a $(LDLIBS)

$(B)/bench/%: bench/%.c $(B)/libdronegate-core.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libdronegate-core.a $(LDLIBS)

$(B)/tests/%: tests/unit/%.c tests/unit/check.h $(B)/libdronegate-core.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(B)/libdronegate-core.a $(LDLIBS)

$(B)/tests-asan/%: tests/unit/%.c tests/unit/check.h $(B)/libdronegate-core-asan.a
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(filter-out -O2 -g,$(CFLAGS)) $(SAN) -Itests/unit -o $@ $< $(B)/libdronegate-core-asan.a $(LDLIBS)

# libFuzzer targets: clang, with ASan+UBSan, linked against sources directly.
$(B)/fuzz/%: fuzz/%.c $(LIBSRC)
	@mkdir -p $(dir $@)
	$(CLANG) -O1 -g -std=gnu11 -D_GNU_SOURCE -Isrc -Iinclude -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -o $@ $< $(LIBSRC) $(LDLIBS)

run: deps $(B)/dronegate $(B)/dronegate-sim
	@web/build.sh || echo "make run: the dashboard's npm packages could not be installed; the API works without them"
	@mkdir -p data
	./$(B)/dronegate --web-root ./web $(ARGS)

unit: $(UNIT_BIN)
	@scripts/run-unit.sh $(UNIT_BIN)

unit-asan: $(UNIT_ASAN)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 scripts/run-unit.sh $(UNIT_ASAN)

fuzz: $(FUZZ_BIN)

fuzz-run: $(FUZZ_BIN)
	@scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

integration: $(B)/dronegate $(B)/dronegate-sim
	@DRONEGATE_BIN=$(CURDIR)/$(B)/dronegate DRONEGATE_SIM=$(CURDIR)/$(B)/dronegate-sim \
	  /usr/bin/python3 -m pytest -q tests/integration

integration-asan: $(B)/dronegate-asan $(B)/dronegate-sim
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 DRONEGATE_ASAN=1 \
	  DRONEGATE_BIN=$(CURDIR)/$(B)/dronegate-asan DRONEGATE_SIM=$(CURDIR)/$(B)/dronegate-sim \
	  /usr/bin/python3 -m pytest -q tests/integration

browser: $(B)/dronegate $(B)/dronegate-sim
	@DG_SCREENSHOT=$(CURDIR)/$(B)/dashboard.png DRONEGATE_BIN=$(CURDIR)/$(B)/dronegate DRONEGATE_SIM=$(CURDIR)/$(B)/dronegate-sim tests/browser/run.sh

test: deps
	$(MAKE) -j$(shell nproc) all $(UNIT_BIN) $(UNIT_ASAN) $(FUZZ_BIN)
	$(MAKE) unit
	$(MAKE) unit-asan
	$(MAKE) fuzz-run
	$(MAKE) integration
	$(MAKE) integration-asan
	$(MAKE) browser

# One-line mutants of the promise-carrying lines vs. their tests (not in `make test`; docs/tests-notes.md).
mutants:
	@scripts/mutants.sh $(MUTANTS)

bench: all
	@echo "see bench/README.md"

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
