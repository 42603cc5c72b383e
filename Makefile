# vzcluster: `make` builds everything into build/; `make test` installs what
# is missing, builds, and runs unit and integration tests.
B := build
CC ?= cc
PKGS := libprotobuf-c libzstd openssl
# CRIU's RPC messages, from the rpc.proto Debian's criu package installs.
CRIU_RPC_PROTO ?= /usr/include/criu/rpc.proto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wno-format-truncation -D_GNU_SOURCE -fno-strict-aliasing
CPPFLAGS += -I. -Ilib -Itransport -Iagent -Ickpt -Icoordinator -I$(B)/proto -I$(B)/criu $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS) -lev
# The agent's VE confinement (agent/ve_confine.c) builds its seccomp filter
# with Debian's libseccomp rather than hand-written BPF.
AGENT_LIBS = $(shell pkg-config --libs libseccomp 2>/dev/null || echo -lseccomp)
# The coordinator's store (coordinator/store_sqlite.c) is Debian's libsqlite3.
COORD_LIBS = $(shell pkg-config --libs sqlite3 2>/dev/null || echo -lsqlite3) -lm

PROTOS := $(wildcard proto/*.proto)
PROTO_C := $(PROTOS:proto/%.proto=$(B)/proto/%.pb-c.c)
PROTO_H := $(PROTOS:proto/%.proto=$(B)/proto/%.pb-c.h) $(B)/criu/rpc.pb-c.h

LIB_SRC := $(wildcard lib/*.c) $(wildcard transport/*.c)
AGENTLIB_SRC := $(filter-out agent/main.c,$(wildcard agent/*.c)) $(wildcard agent/migrate/*.c) $(wildcard ckpt/*.c)
# The coordinator: a library and its front end (coordinator/vzcoord.c).
COORDLIB_SRC := $(filter-out coordinator/vzcoord.c,$(wildcard coordinator/*.c))
TOOLS := vzctl vzlist vzpkg vzmigrate
BINS := $(B)/bin/vzagent $(B)/bin/vzcoord $(TOOLS:%=$(B)/bin/%)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

all: $(BINS) $(B)/tests/workloads $(B)/tests/vzorder

$(B)/proto/%.pb-c.c $(B)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(B)/proto
	protoc-c --c_out=$(B)/proto -Iproto $<

$(B)/criu/rpc.pb-c.c $(B)/criu/rpc.pb-c.h: $(CRIU_RPC_PROTO)
	@mkdir -p $(B)/criu
	protoc-c --c_out=$(B)/criu -I$(dir $(CRIU_RPC_PROTO)) $<

$(B)/obj/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# Generated code is not held to our warnings.
$(B)/obj/$(B)/proto/%.o: $(B)/proto/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -O2 -g -c -o $@ $<
$(B)/obj/$(B)/criu/%.o: $(B)/criu/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -O2 -g -c -o $@ $<

$(B)/libvz.a: $(call obj,$(LIB_SRC)) $(PROTO_C:%.c=$(B)/obj/%.o)
	rm -f $@
	$(AR) rcs $@ $^

$(B)/libvzagent.a: $(call obj,$(AGENTLIB_SRC)) $(B)/obj/$(B)/criu/rpc.pb-c.o
	rm -f $@
	$(AR) rcs $@ $^

$(B)/libvzcoord.a: $(call obj,$(COORDLIB_SRC))
	rm -f $@
	$(AR) rcs $@ $^

$(B)/bin/vzagent: $(call obj,agent/main.c) $(B)/libvzagent.a $(B)/libvz.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(AGENT_LIBS)

$(B)/bin/vzcoord: $(call obj,coordinator/vzcoord.c) $(B)/libvzcoord.a $(B)/libvz.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(COORD_LIBS)

.SECONDEXPANSION:
$(B)/bin/%: $$(call obj,$$(wildcard tools/%/*.c)) $(B)/libvz.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# A test client of the coordinator's orders (tests/integration/orders.bats),
# not a user tool: it is not in build/bin.
$(B)/tests/vzorder: $(call obj,tests/tools/vzorder.c) $(B)/libvzcoord.a $(B)/libvz.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Workloads run inside VEs: static, so they need nothing from the VE.
WORKLOADS := $(patsubst tests/workloads/%.c,$(B)/tests/workloads/%,$(wildcard tests/workloads/*.c))
$(B)/tests/workloads: $(WORKLOADS)
	@mkdir -p $@
$(B)/tests/workloads/%: tests/workloads/%.c $(wildcard tests/workloads/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -static -pthread -o $@ $<

# Unit tests: one criterion binary per directory under tests/unit/.
UNIT_DIRS := $(notdir $(wildcard tests/unit/*))
UNIT_BINS := $(UNIT_DIRS:%=$(B)/tests/unit/%)
$(B)/tests/unit/%: $$(call obj,$$(wildcard tests/unit/%/*.c)) $(B)/libvzagent.a $(B)/libvz.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(AGENT_LIBS) -lcriterion
# The coordinator's tests link its library and SQLite, not the agent's.
$(B)/tests/unit/coordinator: $(call obj,$(wildcard tests/unit/coordinator/*.c)) $(B)/libvzcoord.a $(B)/libvz.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(COORD_LIBS) -lcriterion

# libFuzzer targets for the parsers of untrusted bytes (clang only).
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE $(CPPFLAGS)
FUZZ_LIBS := $(PKG_LIBS)
FUZZERS := $(B)/fuzz/fuzz_imgstream $(B)/fuzz/fuzz_frame $(B)/fuzz/fuzz_mig_record $(B)/fuzz/fuzz_memhash $(B)/fuzz/fuzz_pool $(B)/fuzz/fuzz_trace
$(B)/fuzz/fuzz_imgstream: tests/fuzz/fuzz_imgstream.c ckpt/imgstream.c ckpt/dumpfile.c lib/err.c lib/util.c $(PROTO_H)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(FUZZ_LIBS)
$(B)/fuzz/fuzz_frame: tests/fuzz/fuzz_frame.c transport/frame.c lib/err.c $(B)/proto/control.pb-c.c $(B)/proto/migrate.pb-c.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(FUZZ_LIBS)
$(B)/fuzz/fuzz_mig_record: tests/fuzz/fuzz_mig_record.c agent/migrate/record.c lib/err.c lib/util.c lib/paths.c $(PROTO_H)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(FUZZ_LIBS)
$(B)/fuzz/fuzz_memhash: tests/fuzz/fuzz_memhash.c agent/migrate/memhash.c lib/err.c $(PROTO_H)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(FUZZ_LIBS)
$(B)/fuzz/fuzz_pool: tests/fuzz/fuzz_pool.c coordinator/members.c coordinator/store.c lib/err.c lib/util.c lib/log.c $(B)/proto/pool.pb-c.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(FUZZ_LIBS)
$(B)/fuzz/fuzz_trace: tests/fuzz/fuzz_trace.c coordinator/simulate.c coordinator/rebalance.c lib/err.c lib/util.c lib/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lm
fuzz: $(FUZZERS)

demo:
	deploy/demo

deps:
	deploy/install-deps

test:
	deploy/install-deps --check >/dev/null 2>&1 || deploy/install-deps
	$(MAKE) lint
	$(MAKE) -j$$(nproc) all $(UNIT_BINS) $(FUZZERS)
	tests/run-all $(UNIT_BINS)

lint:
	tests/lint

clean:
	rm -rf $(B)

.PHONY: all deps test lint clean demo fuzz
.SECONDARY:
-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
