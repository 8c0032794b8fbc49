# coronet: build, test, run, benchmark. `make help` lists the targets.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LUADIR ?= $(PREFIX)/share/lua/5.1
SCRIPTDIR ?= $(PREFIX)/share/coronet/scripts
CC ?= cc
PROVE ?= prove
LISTEN ?= 127.0.0.1:7000
WEB ?= 127.0.0.1:8080

# Warnings are errors; WERROR= builds anyway with a compiler that finds new
# ones.
WERROR ?= -Werror
WARN = -Wall -Wextra -Wshadow -Wundef -Wwrite-strings -Wstrict-prototypes \
       -Wmissing-prototypes -Wformat=2 -Wno-unused-parameter $(WERROR)
STD = -std=c99 -D_POSIX_C_SOURCE=200809L
OPT ?= -O2 -g
# pkg-config runs when a recipe expands these, after `deps` installed it.
PKG_CFLAGS = $(shell pkg-config --cflags luajit libuv openssl)
PKG_LIBS = $(shell pkg-config --libs luajit libuv openssl) -lm -lpthread
# The host's own C functions stay visible to LuaJIT's FFI (ffi.C).
EXPORT = -Wl,-E
ALL_CFLAGS = $(STD) $(OPT) $(WARN) $(CFLAGS) $(PKG_CFLAGS) \
             -DCN_LUADIR='"$(LUADIR)"'

BUILD ?= build
BIN ?= host/coronet
# Every host/*.c is part of the program: cn_*.c engines, lcn_*.c bindings.
OBJS = $(patsubst host/%.c,$(BUILD)/%.o,$(wildcard host/*.c))
CTESTS = $(BUILD)/test_buf $(BUILD)/test_timer $(FUZZ_REPLAYS)
HEADERS = $(wildcard host/*.h)
# libFuzzer harnesses t/fuzz/fuzz_NAME.c; `make test` replays their corpora.
FUZZ_NAMES = $(patsubst t/fuzz/fuzz_%.c,%,$(wildcard t/fuzz/fuzz_*.c))
FUZZ_REPLAYS = $(patsubst %,$(BUILD)/fuzz_%,$(FUZZ_NAMES))

.PHONY: all deps test check asan valgrind run bench bench-million format lint \
        clean install uninstall help fuzz fuzz-build fuzz-merge test-edge \
        soak

all: $(BIN)

deps:
	@tools/deps.sh

$(BUILD)/.deps: tools/deps.sh
	@tools/deps.sh
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/%.o: host/%.c $(HEADERS) $(BUILD)/.deps
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BIN): $(OBJS)
	$(CC) $(OPT) $(CFLAGS) $(LDFLAGS) $(EXPORT) -o $@ $(OBJS) $(PKG_LIBS)

$(BUILD)/test_%: t/c/test_%.c t/c/tap.h $(BUILD)/cn_buf.o $(BUILD)/cn_errno.o $(HEADERS)
	$(CC) $(ALL_CFLAGS) -Ihost -o $@ $< $(BUILD)/cn_buf.o $(BUILD)/cn_errno.o \
	  $(PKG_LIBS)

$(BUILD)/test_timer: host/cn_timer.c # it includes the wheel's source

# A harness without libFuzzer: replays the files and directories it is given.
$(BUILD)/fuzz_%: t/fuzz/fuzz_%.c t/fuzz/replay.c t/fuzz/fuzz.h $(OBJS)
	$(CC) $(ALL_CFLAGS) -Ihost -It/fuzz -DFUZZ_ROOT='"$(CURDIR)"' -o $@ $< \
	  t/fuzz/replay.c \
	  $(filter-out $(BUILD)/main.o,$(OBJS)) $(PKG_LIBS)

# The tests run under the host: `coronet --run t/NNN-topic.t` prints TAP.
# t/9*.t start their own redis-server (Debian: redis-server); without it
# they skip, unless CI is set.
test check: $(BIN) $(CTESTS)
	CORONET=$(abspath $(BIN)) CORONET_BUILD=$(abspath $(BUILD)) \
	  $(PROVE) $(PROVE_FLAGS) -e '$(BIN) --run' t/*.t

# The service tests (those starting servers through t/lib/server.lua) in
# both edge modes: through a byte-per-segment relay, then with a reload
# before each test (see t/lib/server.lua).
EDGE_TESTS ?= $(shell grep -l 'lib\.server\|lib\.scratch\|lib\.chat\|lib\.workers' t/*.t)
test-edge: $(BIN) $(CTESTS)
	@for mode in relay reload; do \
	  echo "== CORONET_EDGE=$$mode"; \
	  CORONET_EDGE=$$mode CORONET=$(abspath $(BIN)) \
	    CORONET_BUILD=$(abspath $(BUILD)) \
	    $(PROVE) $(PROVE_FLAGS) -e '$(BIN) --run' $(EDGE_TESTS) || exit 1; \
	done

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
SAN = -fsanitize=address,undefined -fno-omit-frame-pointer \
      -fno-sanitize-recover=undefined
asan:
	$(MAKE) test BUILD=build-asan BIN=host/coronet-asan OPT='-O1 -g' \
	  CFLAGS='$(SAN) $(CFLAGS)' LDFLAGS='$(SAN)' \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1

# Fuzzing: every t/fuzz/fuzz_NAME.c with clang's libFuzzer, ASan and UBSan,
# run FUZZ_SECONDS each (FUZZ_TOTAL=S: S seconds shared by all; FUZZ=NAME
# runs one) on a scratch corpus in $(FUZZ_BUILD)/work; `make fuzz-merge`
# adds what the runs found to the committed corpora in t/fuzz/corpus.
FUZZ_SECONDS ?= 10
FUZZ_TOTAL ?=
FUZZ_BUILD ?= build-fuzz
FUZZ_CC ?= clang
FUZZ ?= $(FUZZ_NAMES)
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
           -fno-omit-frame-pointer
FUZZ_CFLAGS = $(STD) -O1 -g $(WARN) $(PKG_CFLAGS) -DCN_LUADIR='"$(LUADIR)"'
FUZZ_OBJS = $(patsubst host/%.c,$(FUZZ_BUILD)/%.o,\
              $(filter-out host/main.c,$(wildcard host/*.c)))

$(FUZZ_BUILD)/%.o: host/%.c $(HEADERS) $(BUILD)/.deps
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: t/fuzz/fuzz_%.c t/fuzz/fuzz.h $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -Ihost -It/fuzz \
	  -DFUZZ_ROOT='"$(CURDIR)"' -o $@ $< $(FUZZ_OBJS) $(PKG_LIBS)

.SECONDARY: $(FUZZ_OBJS)

fuzz-build: $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ))

fuzz: fuzz-build
	FUZZ_TOTAL=$(FUZZ_TOTAL) t/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ)

fuzz-merge: fuzz-build
	t/fuzz/run.sh -merge $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ)

# The core tests under valgrind's memcheck (slow: a subset).
VALGRIND_TESTS ?= t/0*.t t/1*.t t/2*.t
valgrind: $(BIN) $(CTESTS)
	CORONET_VALGRIND=1 CORONET=$(abspath $(BIN)) \
	  CORONET_BUILD=$(abspath $(BUILD)) $(PROVE) $(PROVE_FLAGS) \
	  -e 'valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite $(BIN) --run' \
	  $(VALGRIND_TESTS)

run: $(BIN)
	$(BIN) scripts/chat.lua --listen $(LISTEN) -- --web $(WEB)

# Every workload beside the peers of ../shared/bench, the sub-benchmarks and
# the echo chart (bench/README.md); QUICK=1 for a smoke run of everything,
# WORKLOADS=echo,workers2 (or bench/run.sh -w) for some.
bench: $(BIN)
	bench/run.sh

# Idle connections over several processes sharing one address (default
# 100,000; MILLION="-n 1000000" for the million).
bench-million: $(BIN)
	bench/million.sh $(MILLION)

# Mixed traffic and reloads for SOAK_SECONDS, sampling the servers'
# resources; fails when one grows after the warm-up (bench/soak.sh).
SOAK_SECONDS ?= 120
soak: $(BIN)
	SOAK_SECONDS=$(SOAK_SECONDS) bench/soak.sh

format:
	clang-format -i host/*.c host/*.h t/c/*.c

lint:
	cppcheck --quiet --enable=warning,portability --error-exitcode=1 \
	  --suppress=missingIncludeSystem -Ihost host/*.c
	luarocks lint coronet-scm-1.rockspec

install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUADIR)/coronet \
	  $(DESTDIR)$(SCRIPTDIR)
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/coronet
	install -m 644 lua/coronet/*.lua $(DESTDIR)$(LUADIR)/coronet/
	install -m 644 scripts/*.lua $(DESTDIR)$(SCRIPTDIR)/
	@echo "installed $(BINDIR)/coronet, the modules in $(LUADIR)/coronet"
	@echo "and the example scripts in $(SCRIPTDIR)"

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/coronet
	rm -rf $(DESTDIR)$(LUADIR)/coronet $(DESTDIR)$(SCRIPTDIR)

clean:
	rm -rf build build-asan $(FUZZ_BUILD) host/coronet host/coronet-asan

help:
	@echo "make            build host/coronet"
	@echo "make run        serve scripts/chat.lua on $(LISTEN), its page on $(WEB)"
	@echo "                (make run LISTEN=HOST:PORT for another address)"
	@echo "make test       build and run the TAP suite with prove"
	@echo "make asan       the suite under ASan + UBSan"
	@echo "make test-edge  service tests through a relay, and with reloads"
	@echo "make valgrind   the core tests under valgrind"
	@echo "make fuzz       libFuzzer harnesses, FUZZ_SECONDS=$(FUZZ_SECONDS) each"
	@echo "make fuzz-merge add what fuzzing found to t/fuzz/corpus"
	@echo "make bench      benchmarks against the peers in ../shared/bench, the"
	@echo "                sub-benchmarks and the echo chart (QUICK=1: a smoke run)"
	@echo "make bench-million  100,000 idle connections over several processes"
	@echo "                (MILLION=\"-n 1000000\" for the million)"
	@echo "make soak       SOAK_SECONDS=$(SOAK_SECONDS) of mixed traffic and reloads"
	@echo "make install    PREFIX=$(PREFIX): the binary, the lua/ modules and"
	@echo "                the example scripts (in $(SCRIPTDIR))"
	@echo "make format     clang-format the C sources"
	@echo "make lint       cppcheck and luarocks lint"
