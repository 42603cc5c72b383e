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
# The coordinator's store (coordinator/store_sqlite.c) is Debian's libsqlite3;
# vzcoord join and leave (coordinator/ssh.c) speak SSH with Debian's libssh2.
# Both daemons tell systemd when they are ready (sd_notify, Type=notify
# units) with Debian's libsystemd; a no-op where systemd did not start them.
SYSTEMD_LIBS = $(shell pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd)
AGENT_LIBS += $(SYSTEMD_LIBS)
COORD_LIBS = $(shell pkg-config --libs sqlite3 2>/dev/null || echo -lsqlite3) \
	$(shell pkg-config --libs libssh2 2>/dev/null || echo -lssh2) -lm $(SYSTEMD_LIBS)

# make SAN=1 (and make test SAN=1): everything built with AddressSanitizer
# and UndefinedBehaviorSanitizer; tests/run-all then fails on any report
# they write (ASAN_OPTIONS/UBSAN_OPTIONS log_path, set there).
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
# The flags of the objects in $(B): changing them (SAN=1 or not, CFLAGS)
# rebuilds everything rather than mixing objects of both.
FLAGS_STAMP := $(B)/.flags
FLAGS_NOW := $(CC) $(CFLAGS) $(LDFLAGS)
$(shell mkdir -p $(B); [ "$$(cat $(FLAGS_STAMP) 2>/dev/null)" = '$(FLAGS_NOW)' ] || echo '$(FLAGS_NOW)' >$(FLAGS_STAMP))

PROTOS := $(wildcard proto/*.proto)
PROTO_C := $(PROTOS:proto/%.proto=$(B)/proto/%.pb-c.c)
PROTO_H := $(PROTOS:proto/%.proto=$(B)/proto/%.pb-c.h) $(B)/criu/rpc.pb-c.h

LIB_SRC := $(wildcard lib/*.c) $(wildcard transport/*.c)
AGENTLIB_SRC := $(filter-out agent/main.c,$(wildcard agent/*.c)) $(wildcard agent/migrate/*.c) $(wildcard ckpt/*.c)
# The coordinator: a library and its front end (coordinator/vzcoord.c).
COORDLIB_SRC := $(filter-out coordinator/vzcoord.c,$(wildcard coordinator/*.c))
TOOLS := vzctl vzlist vzpkg vzmigrate
TEST_TOOLS := $(B)/tests/vzorder $(B)/tests/vzhbdump
BINS := $(B)/bin/vzagent $(B)/bin/vzcoord $(TOOLS:%=$(B)/bin/%)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

all: $(BINS) $(B)/tests/workloads $(TEST_TOOLS)

$(B)/proto/%.pb-c.c $(B)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(B)/proto
	protoc-c --c_out=$(B)/proto -Iproto $<

$(B)/criu/rpc.pb-c.c $(B)/criu/rpc.pb-c.h: $(CRIU_RPC_PROTO)
	@mkdir -p $(B)/criu
	protoc-c --c_out=$(B)/criu -I$(dir $(CRIU_RPC_PROTO)) $<

$(B)/obj/%.o: %.c $(PROTO_H) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# Generated code is not held to our warnings.
$(B)/obj/$(B)/proto/%.o: $(B)/proto/%.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -O2 -g $(filter -fsanitize% -fno-%,$(CFLAGS)) -c -o $@ $<
$(B)/obj/$(B)/criu/%.o: $(B)/criu/%.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -O2 -g $(filter -fsanitize% -fno-%,$(CFLAGS)) -c -o $@ $<

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

# Test tools, not user tools (not in build/bin): vzorder sends one of the
# coordinator's orders, vzhbdump stands in for the coordinator and prints
# an agent's heartbeats (tests/integration/orders.bats).
$(TEST_TOOLS): $(B)/tests/%: $(B)/obj/tests/tools/%.o $(B)/libvzcoord.a $(B)/libvz.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Workloads run inside VEs: static, so they need nothing from the VE.
WORKLOADS := $(patsubst tests/workloads/%.c,$(B)/tests/workloads/%,$(wildcard tests/workloads/*.c))
$(B)/tests/workloads: $(WORKLOADS)
	@mkdir -p $@
$(B)/tests/workloads/%: tests/workloads/%.c $(wildcard tests/workloads/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -fsanitize% -fno-sanitize%,$(CFLAGS)) -static -pthread -o $@ $<

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
FUZZERS := $(B)/fuzz/fuzz_imgstream $(B)/fuzz/fuzz_frame $(B)/fuzz/fuzz_mig_record $(B)/fuzz/fuzz_memhash $(B)/fuzz/fuzz_pool \
	$(B)/fuzz/fuzz_order_record $(B)/fuzz/fuzz_trace
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
$(B)/fuzz/fuzz_order_record: tests/fuzz/fuzz_order_record.c agent/order_record.c $(PROTO_H)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(FUZZ_LIBS)
$(B)/fuzz/fuzz_trace: tests/fuzz/fuzz_trace.c coordinator/simulate.c coordinator/rebalance.c lib/err.c lib/util.c lib/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lm
# make fuzz: each fuzz target for FUZZ_TIME seconds (60 by default), on its
# corpus in build/fuzz/corpus/NAME, seeded from tests/fuzz/corpus/NAME when
# that exists; a crash's input is kept as build/fuzz/NAME-crash-*, and the
# first target that finds one fails the run.
FUZZ_TIME ?= 60
fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do \
		n=$$(basename $$f); mkdir -p $(B)/fuzz/corpus/$$n; seeds=; \
		[ -d tests/fuzz/corpus/$$n ] && seeds=tests/fuzz/corpus/$$n; \
		echo "== $$n for $(FUZZ_TIME) s"; \
		$$f -max_total_time=$(FUZZ_TIME) -rss_limit_mb=1024 -artifact_prefix=$(B)/fuzz/$$n- \
			$(B)/fuzz/corpus/$$n $$seeds >$(B)/fuzz/$$n.log 2>&1; rc=$$?; \
		tail -n 1 $(B)/fuzz/$$n.log; [ $$rc -eq 0 ] || { echo "$$n failed: $(B)/fuzz/$$n.log"; exit 1; }; \
	done

demo:
	deploy/demo

deps:
	deploy/install-deps

test:
	deploy/install-deps --check >/dev/null 2>&1 || deploy/install-deps
	$(MAKE) lint
	$(MAKE) -j$$(nproc) all $(UNIT_BINS) $(FUZZERS)
	VZ_SAN=$(SAN) tests/run-all $(UNIT_BINS)

lint:
	tests/lint

clean:
	rm -rf $(B)

# make install [PREFIX=/usr/local] [DESTDIR=]: the tools and daemons into
# PREFIX/sbin, vz-certs beside them, the templates' metadata into
# PREFIX/share/vz/templates (vzpkg looks there, beside its own sbin), the
# systemd units (ExecStart in PREFIX), /etc/vz/vz.conf and vzcoord.conf
# when absent (every setting, commented, with its default: a make install
# never replaces an administrator's), and what the docs' targets built:
# man pages ($(B)/man/NAME.N, made first when doc/man has sources) and
# bash completions (deploy/bash-completion/*). The configuration stays
# in /etc/vz whatever PREFIX is: the tools read it there (under VZ_ROOT).
PREFIX ?= /usr/local
SBINDIR := $(PREFIX)/sbin
DATADIR := $(PREFIX)/share
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
progs: $(BINS)
install: progs $(if $(wildcard doc/man/*.scd),man)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(DATADIR)/vz/templates $(DESTDIR)$(UNITDIR) $(DESTDIR)/etc/vz
	install -m 0755 $(BINS) $(DESTDIR)$(SBINDIR)/
	install -m 0755 deploy/vz-certs $(DESTDIR)$(SBINDIR)/vz-certs
	cp -R deploy/templates/. $(DESTDIR)$(DATADIR)/vz/templates/
	for u in deploy/systemd/*.service; do \
		sed 's|^ExecStart=/usr/sbin/|ExecStart=$(SBINDIR)/|' $$u >$(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u); done
	for f in deploy/etc/*.conf; do \
		t=$(DESTDIR)/etc/vz/$$(basename $$f); [ -e $$t ] || install -m 0644 $$f $$t || exit 1; done
	for m in $(B)/man/*.[1-8]; do \
		[ -f $$m ] || continue; s=$${m##*.}; \
		install -d $(DESTDIR)$(DATADIR)/man/man$$s && install -m 0644 $$m $(DESTDIR)$(DATADIR)/man/man$$s/ || exit 1; done
	for c in deploy/bash-completion/*; do \
		[ -f $$c ] || continue; \
		install -d $(DESTDIR)$(DATADIR)/bash-completion/completions && \
		install -m 0644 $$c $(DESTDIR)$(DATADIR)/bash-completion/completions/ || exit 1; done

# make deb: $(B)/deb/vzcluster_VERSION_amd64.deb, VERSION from
# debian/changelog, built by dpkg-buildpackage (debian/rules: dh) from a
# copy of the tracked and new files in $(B)/deb/src, so the package's
# `make clean` never touches this tree's $(B).
DEB_VERSION = $(shell dpkg-parsechangelog -S Version)
DEB_BUILD_OPTIONS ?= parallel=$(shell nproc)
deb:
	rm -rf $(B)/deb
	mkdir -p $(B)/deb/src
	git ls-files -z -co --exclude-standard | perl -0 -ne 'chomp; print "$$_\0" if -e' >$(B)/deb/files
	tar --null -T $(B)/deb/files -cf - | tar -xf - -C $(B)/deb/src
	cd $(B)/deb/src && DEB_BUILD_OPTIONS='$(DEB_BUILD_OPTIONS)' dpkg-buildpackage -us -uc -b
	@echo "Built $(B)/deb/vzcluster_$(DEB_VERSION)_amd64.deb"

.PHONY: all deps test lint clean demo fuzz progs install deb
.SECONDARY:
-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
