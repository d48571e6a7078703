# outboxd — one Makefile, no generated build system.
#   make            build build/outboxd and build/liboutboxd.a
#   make test       install what is missing, build, run every test
#   make demo       DynamoDB Local + outboxd on the console
#   make check-asan / check-tsan   the suite under sanitizers
#   make install PREFIX=/usr/local DESTDIR=
#   make deb        the Debian package, in build/deb/
#   make image      the container image without a registry: $(BUILD)/image/ (OCI)
#   V=1 shows full command lines; CC=clang builds with clang.

CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=
SANITIZE ?=
BUILD    ?= build
PYTHON   ?= /usr/bin/python3

PKGS     := jansson yaml-0.1 libsystemd openssl rdkafka
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wno-format-nonliteral -Wvla
CFLAGS   ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -DOUTBOXD_VERSION='"$(VERSION)"' $(WARN) $(CFLAGS) \
              -Iinclude -Isrc $(PKG_CFLAGS) -pthread -MMD -MP
LDLIBS   := $(PKG_LIBS) -pthread -lm

ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -O1
LDFLAGS    += -fsanitize=$(SANITIZE)
endif

# TSan (clang 14) does not intercept glibc's C11 threads, which librdkafka uses: under
# SANITIZE=thread every binary links tests/tsan/c11_threads.c, which routes them through
# pthreads (and check-tsan suppresses what TSan then reports inside librdkafka alone).
ifneq ($(findstring thread,$(SANITIZE)),)
TSAN_SHIM := $(BUILD)/tests/tsan/c11_threads.o
LDLIBS    += $(TSAN_SHIM)
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRC   := $(sort $(shell find src -name '*.c' -not -path 'src/cmd/*'))
CMD_SRC   := $(sort $(wildcard src/cmd/*.c))
UNIT_SRC  := $(sort $(filter-out tests/unit/test_main.c,$(wildcard tests/unit/test_*.c)))
TOOL_SRC  := $(sort $(wildcard tests/tools/*.c))

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
CMD_OBJ   := $(CMD_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_BIN  := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
LIB       := $(BUILD)/liboutboxd.a
BIN       := $(BUILD)/outboxd

.PHONY: all deps docs test test-unit tests-build demo check-asan check-tsan install clean

all: $(BIN) $(LIB)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ) | $(TSAN_SHIM)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(CMD_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CMD_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(BUILD)/tests/unit/test_main.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/tests/unit/test_main.o $(LIB) $(LDLIBS)

$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# The signer once more as built against an OpenSSL without its deprecated
# API (its EVP path), run on the same vectors.
SIGV4_EVP_OBJ := $(BUILD)/tests/evp/sigv4.o

$(SIGV4_EVP_OBJ): src/aws/sigv4.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $< (no deprecated OpenSSL)")
	$(Q)$(CC) $(ALL_CFLAGS) -DOPENSSL_NO_DEPRECATED -c -o $@ $<

$(BUILD)/tests/test_sigv4_evp: $(BUILD)/tests/unit/test_sigv4.o $(BUILD)/tests/unit/test_main.o $(SIGV4_EVP_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/tests/unit/test_main.o $(SIGV4_EVP_OBJ) $(LIB) $(LDLIBS)

# The pipeline against a fake DynamoDB: the fake's writer comes before the
# library, so the real one (dynamo/item_writes.o) is never linked in.
FAKE_WRITER_OBJ := $(BUILD)/tests/unit/fake_item_writer.o

$(BUILD)/tests/test_pipeline: $(BUILD)/tests/unit/test_pipeline.o $(BUILD)/tests/unit/test_main.o $(FAKE_WRITER_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@ (fake DynamoDB)")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/tests/unit/test_main.o $(FAKE_WRITER_OBJ) $(LIB) $(LDLIBS)

tests-build: $(BIN) $(UNIT_BIN) $(TOOL_BIN) $(BUILD)/tests/test_sigv4_evp

deps:
	@scripts/deps.sh

# The date of the newest Debian changelog entry: the man pages' date.
RELEASE_DATE = $(shell date -u +%F -d "$$(sed -n '/^ -- /{s/^ -- .*>  //p;q}' packaging/debian/changelog)")

# The image packaging/Containerfile describes, without a registry: a Debian root file
# system from mmdebstrap (cached in $(BUILD)/image-cache/), this build's binary, an OCI
# image written with umoci (scripts/image.sh says where it must equal the Containerfile).
image: $(BIN)
	$(Q)scripts/image.sh $(BUILD) $(BIN) $(VERSION)

.PHONY: image

# The documents generated from the config schema and the sink catalogue
# (a unit test fails while they differ from what the code generates).
docs: $(BUILD)/tools/config_reference
	$(Q)$(BUILD)/tools/config_reference markdown > docs/CONFIGURATION.md
	$(Q)$(BUILD)/tools/config_reference man $(RELEASE_DATE) > packaging/man/outboxd.yaml.5
	$(Q)$(BUILD)/tools/config_reference example > config/outboxd.yaml.example
	$(Q)cp config/outboxd.yaml.example tests/fuzz/corpus/config/outboxd.yaml.example

# make deb: the Debian package (packaging/debian/, debhelper), built from a
# copy of the tree in $(BUILD)/deb/ so this one stays clean; writes
# $(BUILD)/deb/outboxd_VERSION-REVISION_ARCH.deb. VERSION is the version:
# the changelog's newest entry must be of it.
DEB_DIR := $(BUILD)/deb

# dpkg-buildpackage runs without this make's MAKEFLAGS, SANITIZE and CC (make hands
# command-line variables down to recipes): the package is built as debian/rules says,
# not with the SANITIZE= and CC= of a `make check-asan` around the tests.
deb:
	$(Q)v=$$(dpkg-parsechangelog -l packaging/debian/changelog -S Version) && [ "$${v%-*}" = "$(VERSION)" ] || \
		{ echo "deb: packaging/debian/changelog is at $$v, VERSION at $(VERSION): add a changelog entry" >&2; exit 1; }
	$(Q)rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	$(Q)cp -r Makefile VERSION README.md include src config docs packaging $(DEB_DIR)/src/
	$(Q)cp -rL packaging/debian $(DEB_DIR)/src/debian
	$(Q)cd $(DEB_DIR)/src && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SANITIZE -u CC \
		dpkg-buildpackage -us -uc -b -Jauto >../build.log 2>&1 || \
		{ tail -30 ../build.log >&2; echo "deb: dpkg-buildpackage failed, log in $(DEB_DIR)/build.log" >&2; exit 1; }
	$(Q)ls $(DEB_DIR)/outboxd_*.deb

.PHONY: deb

test: deps
	$(Q)$(MAKE) --no-print-directory tests-build
	$(Q)BUILD=$(BUILD) PYTHON=$(PYTHON) tests/run

test-unit: tests-build
	$(Q)BUILD=$(BUILD) PYTHON=$(PYTHON) tests/run --unit-only

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) PYTHON=$(PYTHON) $(PYTHON) scripts/demo.py

# Benchmarks (tests/bench/run_bench.py, BENCHMARKS.md): not part of `make test`.
# BENCH_RUNS, BENCH_MESSAGES and BENCH_ONLY=drain,ceiling,latency,idle,accept narrow a run.
bench: deps
	$(Q)$(MAKE) --no-print-directory tests-build
	$(Q)BUILD=$(BUILD) $(PYTHON) tests/bench/run_bench.py

.PHONY: bench

# make soak [SOAK_MINUTES=30]: three relays against DynamoDB Local under kill -9, sink
# outages, throttling and shard splits, then the consumer's record is judged
# (tests/soak/README.md). Not part of `make test`; needs what scripts/deps.sh installs.
SOAK_MINUTES ?= 30

soak:
	$(Q)$(MAKE) --no-print-directory tests-build
	$(Q)BUILD=$(BUILD) SOAK_MINUTES=$(SOAK_MINUTES) $(PYTHON) tests/soak/soak.py

.PHONY: soak

# Instrumented builds are slower: the integration run gets an hour.
check-asan:
	$(Q)PYTEST_TIMEOUT=3600 $(MAKE) --no-print-directory test BUILD=build-asan SANITIZE=address,undefined CC=clang

check-tsan:
	$(Q)TSAN_OPTIONS="$$TSAN_OPTIONS suppressions=$(CURDIR)/tests/tsan/suppressions.txt" PYTEST_TIMEOUT=3600 \
		$(MAKE) --no-print-directory test BUILD=build-tsan SANITIZE=thread CC=clang

# make fuzz [FUZZ_SECONDS=600] [FUZZ_TARGETS="config record cloudevents"]:
# libFuzzer on the config loader, the record decoder, the CloudEvents
# encoder and the proxy variables and CONNECT answers, in build-fuzz/ (tests/fuzz/README.md). The library is built
# with fuzzer-no-link; only the fuzz binaries link libFuzzer's main.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= config record cloudevents proxy

$(BUILD)/fuzz/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/bodies.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(subst fuzzer-no-link,fuzzer,$(LDFLAGS)) -o $@ $^ $(LDLIBS)

fuzz-build: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)

fuzz:
	$(Q)$(MAKE) --no-print-directory fuzz-build BUILD=build-fuzz SANITIZE=fuzzer-no-link,address,undefined CC=clang
	$(Q)BUILD=build-fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run $(FUZZ_TARGETS)

.PHONY: fuzz fuzz-build
.PRECIOUS: $(BUILD)/tests/fuzz/%.o
-include $(wildcard $(BUILD)/tests/fuzz/*.d)

install: $(BIN) $(LIB)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/outboxd
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/outboxd
	install -m 0644 $(LIB) $(DESTDIR)$(PREFIX)/lib/liboutboxd.a
	install -m 0644 include/outboxd/*.h $(DESTDIR)$(PREFIX)/include/outboxd/
	install -d $(DESTDIR)$(PREFIX)/share/doc/outboxd
	install -m 0644 config/outboxd.yaml.example $(DESTDIR)$(PREFIX)/share/doc/outboxd/

clean:
	rm -rf build build-asan build-tsan build-clang

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d) $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%.d) \
         $(BUILD)/tests/unit/test_main.d $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/tools/%.d) \
         $(SIGV4_EVP_OBJ:.o=.d) $(FAKE_WRITER_OBJ:.o=.d)

# Benchmark instruments (tests/bench/, see its README): an in-memory DynamoDB
# and Streams server and the client that measures its ceiling.
# The servers share loop.c, linked into every instrument.
BENCH_SRC := $(sort $(filter-out tests/bench/loop.c,$(wildcard tests/bench/*.c)))
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
BENCH_LOOP := $(BUILD)/tests/bench/loop.o

$(BUILD)/bench/%: $(BUILD)/tests/bench/%.o $(BENCH_LOOP) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BENCH_LOOP) $(LIB) $(LDLIBS)

tests-build: $(BENCH_BIN)

-include $(BENCH_SRC:tests/bench/%.c=$(BUILD)/tests/bench/%.d) $(BENCH_LOOP:.o=.d)
