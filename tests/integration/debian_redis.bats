#!/usr/bin/env bats
# A real service that is not root moves: a Debian 12 VE from the
# debian-12-redis template (built here by vzpkg with debootstrap, about
# 50 MB from Debian's registry) runs redis-server as its user redis, in
# the VE's user namespace. A client outside (tests/workloads/redisprobe,
# in the sandbox's client namespace) keeps one connection and writes
# INCR counter + SET key:N (1000 bytes) every millisecond, after setting
# 50,000 keys first. The VE moves with pre-copy, comes
# back with post-copy, goes and returns with stop-and-copy, and is
# checkpointed and restored; after each the client saw no reset and no
# error reply, its writes go on, every key it wrote reads back intact on
# the same connection, and redis-server still runs as redis. The tests
# share the VE and the client, in this order; each finds the VE where the
# one before left it.

load helpers

VEID=201
IP=198.18.2.1
# Keys of 1000 bytes the client sets before it starts writing: about
# 60 MiB of redis memory that has to move as it is.
PRELOAD=50000

setup_file() {
	[ -z "${VZ_TEST_OFFLINE:-}" ] || skip "VZ_TEST_OFFLINE is set: debootstrap needs Debian's package registry"
	local cache="$BATS_FILE_TMPDIR/cache" h
	VZ_ROOT="$cache" vzpkg create cache debian-12-redis >"$BATS_FILE_TMPDIR/vzpkg.out" 2>&1
	sb_setup vzrd
	for h in $SB_HOSTS; do
		cp "$cache/vz/template/cache/debian-12-redis.tar.zst" "$VZ_SANDBOX_DIR/$h/vz/template/cache/"
	done
}

teardown_file() {
	[ -n "${VZ_SANDBOX_DIR:-}" ] || return 0
	stop_client
	sb_test_teardown
	sb_teardown
}

# The host the VE runs on now.
ve_host() {
	local h
	for h in $SB_HOSTS; do
		running_on "$h" "$VEID" && echo "$h" && return 0
	done
	echo "VE $VEID runs nowhere" >&2
	return 1
}

# The other host of the two.
other_host() {
	if [ "$1" = h1 ]; then echo h2; else echo h1; fi
}

# Host pids of the VE's redis-server on host $1.
redis_pids() {
	local p
	find "/sys/fs/cgroup/pids/$VZ_SANDBOX-$1/$VEID" -name cgroup.procs -exec cat {} + |
		while read -r p; do
			[ "$(cat "/proc/$p/comm" 2>/dev/null)" != redis-server ] || echo "$p"
		done
}

# redis-server runs in the VE on host $1 as the VE's user redis: so says
# ps inside, and on the host its uid is the VE's range base plus redis's
# uid, not a host uid.
runs_as_redis() {
	local h=$1 base uid pid host_uid
	[ "$(squeeze "$(on "$h" vzctl exec "$VEID" 'ps -o user=,comm= -C redis-server')")" = "redis redis-server" ] ||
		{ echo "ps in the VE: $(on "$h" vzctl exec "$VEID" 'ps -o user,pid,comm -C redis-server')"; return 1; }
	base=$(sed -n 's/^USERNS_UID="\([0-9]*\)"$/\1/p' "$VZ_SANDBOX_DIR/$h/etc/vz/conf/$VEID.conf")
	uid=$(on "$h" vzctl exec "$VEID" 'id -u redis')
	pid=$(redis_pids "$h")
	if [ -z "$base" ] || [ -z "$uid" ] || [ "$(wc -w <<<"$pid")" -ne 1 ]; then
		echo "range base '$base', redis uid '$uid', host pids '$pid'"
		return 1
	fi
	host_uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
	if [ "$host_uid" -ne $((base + uid)) ] || [ "$host_uid" -lt 65536 ]; then
		echo "redis-server runs as host uid $host_uid, not $base + $uid"
		return 1
	fi
}

# ---- the client outside (tests/workloads/redisprobe) ----

CLIENT_STATUS() { echo "$VZ_SANDBOX_DIR/redis.status"; }

# Started, connected and preloaded: it has written its first line (a
# signal before its handlers are in place would end it).
start_client() {
	rm -f "$(CLIENT_STATUS)"
	nsenter --net="/run/netns/$VZ_SANDBOX-c" "$VZ_TOP/build/tests/workloads/redisprobe" \
		-s 1000 -p "$PRELOAD" -o "$(CLIENT_STATUS)" "$IP" 6379 </dev/null >/dev/null 2>"$VZ_SANDBOX_DIR/redis.stderr" 3>&- &
	echo $! >"$VZ_SANDBOX_DIR/redis.pid"
	wait_for 60 test -s "$(CLIENT_STATUS)" || { cat "$VZ_SANDBOX_DIR/redis.stderr"; return 1; }
}

stop_client() {
	local p
	p=$(cat "$VZ_SANDBOX_DIR/redis.pid" 2>/dev/null) || return 0
	kill -TERM "$p" 2>/dev/null
	wait_for 10 pid_dead "$p"
	rm -f "$VZ_SANDBOX_DIR/redis.pid"
}

# Ask the client with signal $1 (USR1 status, USR2 verify) and print its line.
client_line() {
	rm -f "$(CLIENT_STATUS)"
	kill "-$1" "$(cat "$VZ_SANDBOX_DIR/redis.pid")"
	wait_for 30 test -s "$(CLIENT_STATUS)"
	cat "$(CLIENT_STATUS)"
}

field() {
	sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"
}

# The client writes: its count has passed $1.
client_past() {
	[ "$(field written "$(client_line USR1)")" -gt "$1" ]
}

# The client saw nothing wrong and writes on, and every key it wrote reads
# back intact on its one connection. Prints its line; keeps it in
# redis.verified (its maxgap_us: the longest wait since the last check).
client_intact() {
	local line before n
	line=$(client_line USR1)
	before=$(field written "$line")
	wait_for 10 client_past $((before + 100)) || { echo "the client's writes stopped: $line"; return 1; }
	line=$(client_line USR2)
	echo "client: $line"
	echo "$line" >"$VZ_SANDBOX_DIR/redis.verified"
	n=$(field written "$line")
	if [ "$(field state "$line")" != ok ] || [ "$(field errors "$line")" -ne 0 ] ||
		[ "$(field bad "$line")" -ne 0 ] || [ "$(field verified "$line")" -ne $((n + PRELOAD)) ]; then
		cat "$VZ_SANDBOX_DIR/redis.stderr"
		return 1
	fi
	[ "$(field state "$(client_line USR1)")" = ok ]
}

# The memory redis-server holds in the VE on host $1, as INFO says it.
redis_memory() {
	on "$1" vzctl exec "$VEID" 'redis-cli info memory' | sed -n 's/^used_memory_human:\([^\r]*\).*/\1/p'
}

# The longest wait of the client between the last two checks, in ms.
# More than the VE's downtime when a request of the client was lost in
# the freeze: TCP's retransmission backoff adds to it.
client_gap_ms() {
	echo $(($(field maxgap_us "$(cat "$VZ_SANDBOX_DIR/redis.verified")") / 1000))
}

# Redis itself, asked inside the VE on host $1 with its own redis-cli,
# holds the preloaded keys, at least $2 written ones and the counter, and
# the counter is at least $2.
redis_holds() {
	local dbsize counter
	dbsize=$(on "$1" vzctl exec "$VEID" 'redis-cli dbsize')
	counter=$(on "$1" vzctl exec "$VEID" 'redis-cli get counter')
	echo "redis: dbsize $dbsize, counter $counter"
	[ "$dbsize" -gt $((PRELOAD + $2)) ] && [ "$counter" -ge "$2" ]
}

# Keys the client has set: preloaded and written.
client_keys() {
	echo $((PRELOAD + $(field written "$(client_line USR1)")))
}

# Move the VE with vzmigrate's options "$@" to the other host; check the
# move and everything after it; print the downtime of the summary.
move_and_check() {
	local src dst n
	src=$(ve_host)
	dst=$(other_host "$src")
	n=$(field written "$(client_line USR1)")
	# A move that failed before may still be cleaning up there.
	wait_for 30 nothing_of "$dst" "$VEID"
	run on "$src" vzmigrate "$@" "$dst" "$VEID"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"user namespace: root is host uid"* ]]
	downtime=$(sed -n 's/^ *total suspended *\([0-9]*\) ms.*/\1/p' <<<"$output")
	running_on "$dst" "$VEID"
	wait_for 30 nothing_of "$src" "$VEID"
	client_intact
	redis_holds "$dst" "$n"
	runs_as_redis "$dst"
	echo "# vzmigrate $* $src -> $dst: downtime $downtime ms (vzmigrate's summary, total suspended)," \
		"client's longest wait $(client_gap_ms) ms, $(client_keys) keys," \
		"redis holds $(redis_memory "$dst")" >&3
}

@test "vzpkg create cache debian-12-redis builds a tree with redis-server at runlevel 2" {
	grep -q '^Cache .*debian-12-redis.tar.zst created' "$BATS_FILE_TMPDIR/vzpkg.out"
	# The minimal template's steps ran too: its inittab without gettys.
	tar --zstd -xOf "$VZ_SANDBOX_DIR/h1/vz/template/cache/debian-12-redis.tar.zst" ./etc/inittab |
		grep -qx 'id:2:initdefault:'
	run ! grep -q getty <(tar --zstd -xOf "$VZ_SANDBOX_DIR/h1/vz/template/cache/debian-12-redis.tar.zst" ./etc/inittab)
}

@test "a Debian VE starts redis-server as its user redis, and a client outside writes to it" {
	on h1 vzctl create "$VEID" --ostemplate debian-12-redis --hostname redis --ipadd "$IP" >/dev/null
	on h1 vzctl start "$VEID" >/dev/null
	wait_for 30 runs_as_redis h1
	run runs_as_redis h1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(on h1 vzctl exec "$VEID" 'redis-cli config get protected-mode' | tail -1)" = no ]
	start_client
	wait_for 10 client_past 500
	run client_intact
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "vzmigrate --online (pre-copy) moves it: the client sees no error and every key is intact" {
	move_and_check --online
	[[ "$output" == *"Memory round 0:"* ]]
}

@test "vzmigrate --online --postcopy moves it back: the client sees no error and every key is intact" {
	move_and_check --online --postcopy
	[[ "$output" == *"memory: post-copy: fetched by"* ]]
}

@test "vzmigrate --online --stop-copy moves it there and back: the client sees no error and every key is intact" {
	move_and_check --online --stop-copy
	[[ "$output" == *"memory: stop-and-copy"* ]]
	move_and_check --online --stop-copy
}

@test "vzctl chkpnt and restore of it: the client sees no error and every key is intact" {
	local h n
	h=$(ve_host)
	n=$(field written "$(client_line USR1)")
	run on "$h" vzctl chkpnt "$VEID"
	echo "$output"
	[ "$status" -eq 0 ]
	run on "$h" vzctl status "$VEID"
	echo "$output"
	# Without --dumpfile the dump is the agent's own: the VE is suspended.
	[ "$output" = "VEID $VEID exist unmounted down suspended" ]
	# Nothing answers while it is down, and the client is not told to stop.
	[ "$(field state "$(client_line USR1)")" = ok ]
	run on "$h" vzctl restore "$VEID"
	echo "$output"
	[ "$status" -eq 0 ]
	running_on "$h" "$VEID"
	run client_intact
	echo "$output"
	[ "$status" -eq 0 ]
	redis_holds "$h" "$n"
	runs_as_redis "$h"
	echo "# vzctl chkpnt + restore on $h: client's longest wait $(client_gap_ms) ms," \
		"$(client_keys) keys, redis holds $(redis_memory "$h")" >&3
}

@test "the client stops by its pid and the VE leaves nothing" {
	local h line
	h=$(ve_host)
	line=$(client_line USR1)
	[ "$(field state "$line")" = ok ]
	stop_client
	[ ! -e "$VZ_SANDBOX_DIR/redis.pid" ]
	on "$h" vzctl stop "$VEID" >/dev/null
	on "$h" vzctl destroy "$VEID" >/dev/null
	nothing_of h1 "$VEID"
	nothing_of h2 "$VEID"
}
