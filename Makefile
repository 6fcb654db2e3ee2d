# dronegate - build, run, test.
#
#   make run    install missing Debian packages (nodejs/npm too), build, fill
#               web/vendor/, start the gateway (SQLite); prints the dashboard URL
#   make demo   the same, with 36 simulated drones flying (DRONES=N)
#   make install  PREFIX=/usr/local DESTDIR= : binaries, dashboard, man page,
#               systemd unit (see deploy/)
#   make test   install, build, run unit tests (plain and ASan+UBSan), fuzzers
#               briefly, and the integration tests against the real binary
#
# Sources are picked up by wildcard: one folder per layer under src/.

CC       ?= cc
CLANG    ?= clang
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -pthread -D_GNU_SOURCE -Isrc -Iinclude -I$(B)/gen
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
# per fuzz target in `make test` (a smoke run on the corpus; longer runs:
# make fuzz-run FUZZ_SECONDS=600)
TEST_FUZZ_SECONDS ?= 10

# Each component may add a mk/<name>.mk: EXTRA_BIN (built by `all`), LDLIBS,
# INTEGRATION_DEPS (built before the integration tests) and its own targets.
EXTRA_BIN :=
INTEGRATION_DEPS :=
# a rule in mk/*.mk must not become the default target
.DEFAULT_GOAL := all
-include $(sort $(wildcard mk/*.mk))

# Version: a v* git tag (git describe), else BASE_VERSION; the commit from git.
BASE_VERSION := 0.1.0
VERSION  ?= $(shell git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//')
ifeq ($(strip $(VERSION)),)
VERSION  := $(BASE_VERSION)
endif
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
DATADIR  ?= $(PREFIX)/share/dronegate
MANDIR   ?= $(PREFIX)/share/man
UNITDIR  ?= $(PREFIX)/lib/systemd/system
WEBFILES := index.html app.js app.css live-worker.js
DRONES   ?= 36

.PHONY: all deps deps-run web run demo install FORCE test unit unit-asan fuzz fuzz-run integration integration-asan integration-both browser bench clean mutants

all: $(B)/dronegate $(B)/dronegate-sim $(B)/dronegate-asan $(BENCH_BIN) $(EXTRA_BIN)

deps:
	@scripts/deps.sh
	@scripts/deps-stores.sh
	@scripts/deps-web.sh

# What `make run` needs: the build packages and nodejs/npm (not the store servers).
deps-run:
	@scripts/deps.sh
	@scripts/deps-web.sh

# Rewritten only when the version or commit changed (config.c, metrics.c).
$(B)/gen/dg_version.h: FORCE
	@mkdir -p $(dir $@)
	@printf '#define DG_VERSION "%s"\n#define DG_COMMIT "%s"\n' '$(VERSION)' '$(COMMIT)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

$(B)/obj/src/core/config.o $(B)/asan/src/core/config.o $(B)/obj/src/core/metrics.o $(B)/asan/src/core/metrics.o: $(B)/gen/dg_version.h

# The dashboard's JavaScript and basemap come from npm (web/package-lock.json).
web:
	@web/build.sh

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

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
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/dronegate-asan: $(B)/asan/$(MAIN:.c=.o) $(B)/libdronegate-core-asan.a
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

# every simulator drone but MAVLink is a libdronegate client (tools/sim/drive.c)
$(B)/dronegate-sim: $(SIMSRC) $(wildcard tools/sim/*.h) $(B)/libdronegate-core.a $(B)/libdronegate.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(SIMSRC) $(B)/libdronegate-core.a $(B)/libdronegate.a $(LDLIBS) $(CLIENT_LIBS)

$(B)/bench/%: bench/%.c $(B)/libdronegate-core.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libdronegate-core.a $(LDLIBS)

$(B)/tests/%: tests/unit/%.c tests/unit/check.h $(B)/libdronegate-core.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(B)/libdronegate-core.a $(LDLIBS)

$(B)/tests-asan/%: tests/unit/%.c tests/unit/check.h $(B)/libdronegate-core-asan.a
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(filter-out -O2 -g,$(CFLAGS)) $(SAN) -Itests/unit -o $@ $< $(B)/libdronegate-core-asan.a $(LDLIBS)

# libFuzzer targets: clang, with ASan+UBSan. The core is compiled once with
# the fuzzer's coverage (-fsanitize=fuzzer-no-link) into its own archive and
# every target links it (compiling every source per target took minutes).
FUZZ_CFLAGS = -O1 -g -std=gnu11 -D_GNU_SOURCE -Isrc -Iinclude -I$(B)/gen -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ    = $(LIBSRC:%.c=$(B)/fuzzobj/%.o)
$(B)/fuzzobj/%.o: %.c $(B)/gen/dg_version.h
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FUZZ_OBJ): | $(PB_GEN_H)
$(B)/libdronegate-core-fuzz.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(B)/fuzz/%: fuzz/%.c $(B)/libdronegate-core-fuzz.a
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(B)/libdronegate-core-fuzz.a $(LDLIBS)

# scripts/run.sh: web/build.sh, start the gateway, wait for /healthz, then
# print the dashboard URL and the command that starts simulated drones.
run: deps-run
	@$(MAKE) --no-print-directory $(B)/dronegate $(B)/dronegate-sim
	@scripts/run.sh -- $(ARGS)

demo: deps-run
	@$(MAKE) --no-print-directory $(B)/dronegate $(B)/dronegate-sim
	@scripts/run.sh --demo $(DRONES) -- $(ARGS)

$(B)/dronegate.8: $(B)/dronegate scripts/gen-man.sh
	scripts/gen-man.sh $(B)/dronegate > $@.tmp && mv $@.tmp $@

$(B)/dronegate-sim.1: $(B)/dronegate-sim $(B)/dronegate scripts/gen-man.sh
	scripts/gen-man.sh --sim $(B)/dronegate-sim $(B)/dronegate > $@.tmp && mv $@.tmp $@

# PREFIX (default /usr/local) and DESTDIR as usual. The unit's paths follow
# BINDIR and DATADIR; UNITDIR= (empty) skips the unit (debian/ installs it).
# web/vendor/ must be there (web/build.sh, needs npm).
install: $(B)/dronegate $(B)/dronegate-sim $(B)/dronegate.8 $(B)/dronegate-sim.1
	@test -f web/vendor/leaflet/leaflet.js || web/build.sh
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/web $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(B)/dronegate $(B)/dronegate-sim $(DESTDIR)$(BINDIR)/
	cd web && install -m 644 $(WEBFILES) $(DESTDIR)$(DATADIR)/web/
	cd web && find vendor -type f | while read -r f; do \
	    install -D -m 644 "$$f" "$(DESTDIR)$(DATADIR)/web/$$f" || exit 1; done
	install -m 644 $(B)/dronegate.8 $(DESTDIR)$(MANDIR)/man8/dronegate.8
	install -m 644 $(B)/dronegate-sim.1 $(DESTDIR)$(MANDIR)/man1/dronegate-sim.1
	test -z "$(UNITDIR)" || install -d $(DESTDIR)$(UNITDIR)
	test -z "$(UNITDIR)" || sed -e 's|/usr/bin/|$(BINDIR)/|g' -e 's|/usr/share/dronegate|$(DATADIR)|g' \
	    deploy/systemd/dronegate.service > $(DESTDIR)$(UNITDIR)/dronegate.service
	test -z "$(UNITDIR)" || chmod 644 $(DESTDIR)$(UNITDIR)/dronegate.service

unit: $(UNIT_BIN)
	@scripts/run-unit.sh $(UNIT_BIN)

unit-asan: $(UNIT_ASAN)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 scripts/run-unit.sh $(UNIT_ASAN)

fuzz: $(FUZZ_BIN)

fuzz-run: $(FUZZ_BIN)
	@scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

integration: $(B)/dronegate $(B)/dronegate-sim $(INTEGRATION_DEPS)
	@DRONEGATE_BIN=$(CURDIR)/$(B)/dronegate DRONEGATE_SIM=$(CURDIR)/$(B)/dronegate-sim \
	  /usr/bin/python3 -m pytest -q tests/integration

integration-asan: $(B)/dronegate-asan $(B)/dronegate-sim $(INTEGRATION_DEPS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 DRONEGATE_ASAN=1 \
	  DRONEGATE_BIN=$(CURDIR)/$(B)/dronegate-asan DRONEGATE_SIM=$(CURDIR)/$(B)/dronegate-sim \
	  /usr/bin/python3 -m pytest -q -m "not plain_only" tests/integration

# both passes at the same time (scripts/run-integration.sh says why)
integration-both: $(B)/dronegate $(B)/dronegate-asan $(B)/dronegate-sim $(INTEGRATION_DEPS)
	@B=$(B) scripts/run-integration.sh

browser: $(B)/dronegate $(B)/dronegate-sim
	@DG_SCREENSHOT=$(CURDIR)/$(B)/dashboard.png DRONEGATE_BIN=$(CURDIR)/$(B)/dronegate DRONEGATE_SIM=$(CURDIR)/$(B)/dronegate-sim tests/browser/run.sh

FORCE:

test: deps
	$(MAKE) -j$(shell nproc) all $(UNIT_BIN) $(UNIT_ASAN) $(FUZZ_BIN)
	$(MAKE) unit
	$(MAKE) unit-asan
	$(MAKE) fuzz-run FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)
	$(MAKE) integration-both
	$(MAKE) browser

# One-line mutants of the promise-carrying lines vs. their tests (not in `make test`; docs/tests-notes.md).
mutants:
	@scripts/mutants.sh $(MUTANTS)

bench: all
	@echo "see bench/README.md"

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
