#!/usr/bin/env bats
# The coordinator's queue of moves (issue 14 items 3 and 4): vzcoord
# migrate through the queue, a host drained live and undrained, a drain
# left partial by a VE its targets refuse, and a drain that a coordinator
# SIGKILLed and started again finishes. Three hosts and a coordinator; at
# most 2 moves out of and into a host, 3 in the pool.

load helpers

setup_file() {
	export SB_AGENT_CONF='HEARTBEAT_INTERVAL="1"'
	export SB_COORD_CONF=$'MAX_OUT_PER_HOST="2"\nMAX_IN_PER_HOST="2"\nMAX_MOVES="3"'
	sb_setup vzdr 3 --coordinator
	DB="$VZ_SANDBOX_DIR/coord/var/lib/vz/vzcoord.db"
	export DB
}

teardown_file() {
	sb_teardown
}

teardown() {
	local h
	[ -f "$BATS_TEST_TMPDIR/sampler.pid" ] && kill "$(cat "$BATS_TEST_TMPDIR/sampler.pid")" 2>/dev/null
	[ -f "$BATS_TEST_TMPDIR/stopped.pid" ] && kill -CONT "$(cat "$BATS_TEST_TMPDIR/stopped.pid")" 2>/dev/null
	stop_probe probe1
	stop_probe probe2
	rm -f "$VZ_SANDBOX_DIR"/h*/vz/migrate/105.incoming
	# No host is left in maintenance for the next test.
	for h in $SB_HOSTS; do
		[ "$(drain_of "$h")" = none ] || on coord vzcoord undrain "$h" --no-return || true
	done
	sb_test_teardown
}

# VE $1 is on h2 or h3, and on one host only (waits for the targets'
# next heartbeats, which the drain's end does not).
on_target() {
	wait_for 10 bash -c "[[ \"\$($SB exec coord vzcoord list -j | jq -r '.[] | select(.veid == $1) | .host')\" == h[23] ]]" ||
		{ echo "VE $1 on: $(hosts_of "$1")"; return 1; }
}

# Host $1's maintenance as vzcoord status -j gives it.
drain_of() {
	on coord vzcoord status -j | jq -r ".hosts[] | select(.name == \"$1\") | .drain"
}

drain_is() {
	[ "$(drain_of "$1")" = "$2" ]
}

# The newest move's id in the store (the store lasts the whole file: a
# test looks at the moves after the one it started with).
last_move() {
	sqlite3 "$DB" "SELECT coalesce(max(id), 0) FROM moves"
}

# VEs $2... on host $1, busybox; those after a "-" are left stopped.
make_ves() {
	local h=$1 v stopped=
	shift
	for v in "$@"; do
		[ "$v" = - ] && { stopped=1; continue; }
		on "$h" vzctl create "$v" --ostemplate busybox >/dev/null
		[ -n "$stopped" ] || on "$h" vzctl start "$v" >/dev/null
	done
	for v in "$@"; do
		[ "$v" = - ] || wait_for 10 is_on "$v" "$h" || { on coord vzcoord list; return 1; }
	done
}

# The running moves of the coordinator's store, every 50 ms, one line per
# sample: "src dst" pairs, space-separated, into $BATS_TEST_TMPDIR/samples.
start_sampler() {
	(
		while :; do
			sqlite3 "$DB" "SELECT group_concat(src || '>' || dst, ' ') FROM moves WHERE state = 'running'" \
				2>/dev/null || true
			sleep 0.05
		done >"$BATS_TEST_TMPDIR/samples"
	) 3>&- &
	echo $! >"$BATS_TEST_TMPDIR/sampler.pid"
}

# No sample saw more than 2 moves out of or into a host, or 3 in all; and
# one saw at least $1 at once.
samples_within_limits() {
	kill "$(cat "$BATS_TEST_TMPDIR/sampler.pid")"
	rm -f "$BATS_TEST_TMPDIR/sampler.pid"
	awk -v least="$1" '
		{ if (NF > most) most = NF
		  if (NF > 3) { print "pool: " $0; bad = 1 }
		  delete o; delete i
		  for (k = 1; k <= NF; k++) { split($k, p, ">"); o[p[1]]++; i[p[2]]++ }
		  for (h in o) if (o[h] > 2) { print "out of " h ": " $0; bad = 1 }
		  for (h in i) if (i[h] > 2) { print "into " h ": " $0; bad = 1 } }
		END { print NR " samples, at most " most " moves at once"; exit bad || most < least }
	' "$BATS_TEST_TMPDIR/samples"
}

@test "vzcoord migrate moves a VE through the queue and says how it went" {
	local first
	make_ves h1 101
	first=$(last_move)
	run on coord vzcoord migrate 101 h2
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"VE 101: queued as move "*", h1 -> h2 (precopy)"* ]]
	[[ "$output" == *"VE 101: moved h1 -> h2 in "*" s, pause "*" ms"* ]]
	running_on h2 101
	wait_for 10 is_on 101 h2
	on coord vzcoord events | grep -q "move 101 h1->h2 done"
	[ "$(sqlite3 "$DB" "SELECT state || ' ' || attempts FROM moves WHERE veid = 101 AND id > $first")" = "done 1" ]
}

@test "on a terminal vzcoord migrate writes a move's progress over itself, and keeps its decisions" {
	make_ves h1 101
	# script(1) gives the command a terminal; its output is what it wrote.
	run script -qefc "$SB exec coord vzcoord migrate 101 h3" /dev/null
	echo "$output" | cat -v
	[ "$status" -eq 0 ]
	[[ "$output" == *$'\r\e[KVE 101: Connecting to '* ]]
	[[ "$output" == *$'\r\e[KVE 101: moved h1 -> h3 in '* ]]
	running_on h3 101
}

@test "vzcoord migrate refuses an unknown VE, an unknown host and a VE already there, each with one line" {
	make_ves h1 101
	run on coord vzcoord migrate 999 h2
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"No VE 999 in the pool"* ]]
	run on coord vzcoord migrate 101 h9
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"No host h9 in the pool"* ]]
	run on coord vzcoord migrate 101 h1
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"VE 101 is already on h1"* ]]
	run on coord vzcoord migrate abc h1
	[ "$status" -eq 2 ]
	is_on 101 h1
}

@test "a host with six VEs drains live within the limits, refuses new VEs meanwhile, and undrain brings exactly those six back" {
	local v
	sb_ve h1 101 198.18.1.1
	sb_ve h1 102 198.18.1.2
	make_ves h1 103 104 - 105 106
	wait_for 10 is_on 101 h1
	wait_for 10 is_on 102 h1
	make_ves h2 110
	start_probe probe1 198.18.1.1
	start_probe probe2 198.18.1.2
	start_sampler
	(
		rc=0
		on coord vzcoord drain h1 >"$BATS_TEST_TMPDIR/drain" 2>&1 || rc=$?
		echo "rc=$rc" >>"$BATS_TEST_TMPDIR/drain"
	) 3>&- &
	wait_for 10 drain_is h1 draining
	# In maintenance: no new VE, and a move toward it goes elsewhere.
	run on h1 vzctl create 120 --ostemplate busybox
	echo "$output"
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *maintenance* ]]
	run on coord vzcoord migrate 110 h1
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Host h1 is in maintenance: VE 110 goes to h3 instead"* ]]
	wait_for 120 grep -q '^rc=' "$BATS_TEST_TMPDIR/drain"
	cat "$BATS_TEST_TMPDIR/drain"
	grep -qx 'rc=0' "$BATS_TEST_TMPDIR/drain"
	grep -q "Drain h1: 6 VEs, 6 can move" "$BATS_TEST_TMPDIR/drain"
	grep -q "Host h1 is drained" "$BATS_TEST_TMPDIR/drain"
	samples_within_limits 2
	drain_is h1 drained
	for v in 101 102 103 104 105 106; do
		on_target $v
	done
	# Spread over both targets.
	[ "$(on coord vzcoord list | awk '$3 == "h2"' | wc -l)" -ge 2 ]
	[ "$(on coord vzcoord list | awk '$3 == "h3"' | wc -l)" -ge 2 ]
	for v in 101 102; do
		passes_on "$(hosts_of $v)" $v
	done
	for p in probe1 probe2; do
		[ "$(probe_field $p state)" = ok ]
		[ "$(probe_field $p errors)" -eq 0 ]
	done

	start_sampler
	run on coord vzcoord undrain h1
	echo "$output"
	[ "$status" -eq 0 ]
	samples_within_limits 1
	drain_is h1 none
	for v in 101 102 103 104 105 106; do
		wait_for 10 is_on $v h1 || { echo "VE $v on: $(hosts_of $v)"; false; }
	done
	is_on 110 h3
	passes_on h1 101
	[ "$(probe_field probe1 errors)" -eq 0 ]
}

@test "undrain returns only the VEs still where the drain put them: one moved by hand since stays, and says so" {
	local moved other
	make_ves h1 101 102
	run on coord vzcoord drain h1
	echo "$output"
	[ "$status" -eq 0 ]
	on_target 101
	moved=$(hosts_of 101)
	other=h2
	[ "$moved" = h3 ] || other=h3
	on coord vzcoord migrate 101 "$other"
	wait_for 10 is_on 101 "$other"
	run on coord vzcoord undrain h1
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"VE 101 was moved by hand since, to $other: it stays there"* ]]
	[[ "$output" == *"VE 102: back from h"?" to h1"* ]]
	wait_for 10 is_on 102 h1
	is_on 101 "$other"
	drain_is h1 none
}

@test "a VE its targets refuse leaves the drain partial, and the other five move" {
	local v first
	make_ves h1 101 102 103 104 105 - 106
	first=$(last_move)
	# A move of 105 looks half-received on both targets: they refuse it.
	mkdir -p "$VZ_SANDBOX_DIR/h2/vz/migrate" "$VZ_SANDBOX_DIR/h3/vz/migrate"
	touch "$VZ_SANDBOX_DIR/h2/vz/migrate/105.incoming" "$VZ_SANDBOX_DIR/h3/vz/migrate/105.incoming"
	run on coord vzcoord drain h1
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Drain of h1 partial: 1 VEs left: VE 105"* ]]
	drain_is h1 partial
	running_on h1 105
	is_on 105 h1
	for v in 101 102 103 104 106; do
		on_target $v
	done
	# Retried once elsewhere (a move of its own), then left where it runs.
	[ "$(sqlite3 "$DB" "SELECT count(*) || ' ' || count(DISTINCT dst) || ' ' || max(attempts) FROM moves
		WHERE veid = 105 AND id > $first AND state = 'failed'")" = "2 2 2" ]
}

# The state and target of the newest move of VE $1 after move id $2.
move_of() {
	sqlite3 "$DB" "SELECT state || ' ' || dst FROM moves WHERE veid = $1 AND id > $2 ORDER BY id DESC LIMIT 1"
}

@test "a queued move toward a host that starts draining goes elsewhere, and no VE lands there" {
	local first
	make_ves h1 101 102 103
	first=$(last_move)
	# h1's link is slow, so that its two moves out (the limit) last while
	# the third waits in the queue.
	"$SB" link h1 rate 4mbit
	on coord vzcoord migrate 101 h2 --no-wait
	on coord vzcoord migrate 102 h2 --no-wait
	on coord vzcoord migrate 103 h3 --no-wait
	wait_for 10 bash -c "[ \"\$(sqlite3 '$DB' \"SELECT count(*) FROM moves WHERE id > $first AND state = 'running'\")\" -eq 2 ]"
	[ "$(move_of 103 "$first")" = "queued h3" ]
	run on coord vzcoord drain h3
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"VE 103: its queued move toward h3 goes to h2"* ]]
	[[ "$output" == *"Host h3 is drained"* ]]
	[[ "$(move_of 103 "$first")" == "queued h2" || "$(move_of 103 "$first")" == "running h2" ]]
	on coord vzcoord events | grep -q "move 103 h1->h3: h3 is in maintenance, h2"
	"$SB" link h1 rate off
	for v in 101 102 103; do
		wait_for 60 is_on $v h2 || { echo "VE $v on: $(hosts_of $v)"; false; }
	done
	[ "$(move_of 103 "$first")" = "done h2" ]
	[ -z "$(on h3 vzlist -a -1)" ]
	drain_is h3 drained
}

# What the store holds when a coordinator dies in the middle of drain h3,
# between its record and the re-targeting of the moves toward h3: h3 in
# maintenance, and a move of VE 101 toward it still queued.
drain_h3_recorded() {
	sqlite3 "$DB" "UPDATE hosts SET maint = 'draining' WHERE name = 'h3';
		INSERT INTO drains (host, state, started_ms, offline) VALUES ('h3', 'running', 0, 0);
		INSERT INTO moves (veid, src, dst, mode, state, attempts, created_ms, updated_ms, error, drain_host)
		VALUES (101, 'h1', 'h3', 'precopy', 'queued', 0, 0, 0, '', '')"
}

@test "a coordinator SIGKILLed before it re-targeted the moves toward a host it began to drain re-targets them when started again" {
	local first
	make_ves h1 101
	first=$(last_move)
	kill_coordinator drain_h3_recorded
	wait_for 30 is_on 101 h2 || { on coord vzcoord events | tail -n 20; false; }
	[ "$(move_of 101 "$first")" = "done h2" ]
	on coord vzcoord events | grep -q "move 101 h1->h3: h3 is in maintenance, h2"
	[ -z "$(on h3 vzlist -a -1)" ]
	wait_for 10 drain_is h3 drained
}

@test "a drain whose agent does not answer holds up nothing, and fails in one line leaving its host as it was" {
	local coord
	make_ves h1 101
	coord=$(cat "$VZ_SANDBOX_DIR/coord/coord.pid")
	cp "$VZ_SANDBOX_DIR/h1/agent.pid" "$BATS_TEST_TMPDIR/stopped.pid"
	kill -STOP "$(cat "$BATS_TEST_TMPDIR/stopped.pid")"
	(
		rc=0
		on coord vzcoord drain h1 >"$BATS_TEST_TMPDIR/drain" 2>&1 || rc=$?
		echo "rc=$rc" >>"$BATS_TEST_TMPDIR/drain"
	) 3>&- &
	# The order waits for the agent in a worker of its own, and the
	# coordinator answers meanwhile.
	wait_for 5 pgrep -P "$coord"
	timeout 3 "$SB" exec coord vzcoord status
	pgrep -P "$coord"
	run ! grep -q '^rc=' "$BATS_TEST_TMPDIR/drain"
	wait_for 20 grep -q '^rc=' "$BATS_TEST_TMPDIR/drain"
	cat "$BATS_TEST_TMPDIR/drain"
	run ! grep -qx 'rc=0' "$BATS_TEST_TMPDIR/drain"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/drain")" -eq 2 ]
	grep -q '^vzcoord: .*Host h1 not drained: its agent was not put in maintenance: ' "$BATS_TEST_TMPDIR/drain"
	drain_is h1 none
	kill -CONT "$(cat "$BATS_TEST_TMPDIR/stopped.pid")"
	wait_for 10 state_is h1 online
	# Not in maintenance: it takes new VEs, and 101 stayed.
	on h1 vzctl create 102 --ostemplate busybox >/dev/null
	is_on 101 h1
}

# Every VE of the sandbox destroyed.
destroy_ves() {
	local h v
	for h in $SB_HOSTS; do
		for v in $(on "$h" vzlist -a -1); do
			on "$h" vzctl stop "$v" --fast >/dev/null 2>&1 || true
			on "$h" vzctl destroy "$v" >/dev/null
		done
	done
	for v in 101 102 103 104 105 106; do
		wait_for 10 bash -c "[ -z \"\$($SB exec coord vzcoord list -j | jq '.[] | select(.veid == $v)')\" ]"
	done
}

# The coordinator SIGKILLed, then started again (the sandbox's restart);
# the command $@, if any, run while it is dead.
kill_coordinator() {
	local pid
	pid=$(cat "$VZ_SANDBOX_DIR/coord/coord.pid")
	kill -KILL "$pid"
	wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
	[ $# -eq 0 ] || "$@"
	"$SB" restart coord
	wait_for 10 on coord vzcoord status >/dev/null
}

# How many moves after id $1 are in state $2.
moves_in() {
	sqlite3 "$DB" "SELECT count(*) FROM moves WHERE id > $1 AND state = '$2'"
}

# Drain h1 of six VEs, the coordinator SIGKILLed at phase $1 (queued: as
# soon as the drain is recorded; moving: while a move runs; ended: once
# every move has ended) and started again; the drain ends drained, each
# VE on one host and moved once, to where it runs.
drain_killed_at() {
	local phase=$1 v first
	make_ves h1 101 102 103 104 - 105 106
	first=$(last_move)
	on coord vzcoord drain h1 --no-wait
	case $phase in
	moving) wait_for 20 bash -c "[ \"\$(sqlite3 '$DB' \"SELECT count(*) FROM moves WHERE id > $first AND state = 'running'\")\" -ge 1 ]" ;;
	ended) wait_for 60 bash -c "[ \"\$(sqlite3 '$DB' \"SELECT count(*) FROM moves WHERE id > $first AND state IN ('queued', 'running')\")\" -eq 0 ]" ;;
	esac
	echo "# killed at $phase: $(moves_in "$first" queued) queued, $(moves_in "$first" running) running, $(moves_in "$first" 'done') ended" >&3
	kill_coordinator
	wait_for 120 drain_is h1 drained || { on coord vzcoord events | tail -n 30; return 1; }
	for v in 101 102 103 104 105 106; do
		on_target $v
		# One move done, to where it runs; no other of it started.
		[ "$(sqlite3 "$DB" "SELECT group_concat(state || ' ' || dst) FROM moves WHERE veid = $v AND id > $first")" \
			= "done $(hosts_of $v)" ] || { sqlite3 "$DB" "SELECT * FROM moves WHERE veid = $v AND id > $first"; return 1; }
	done
	[ "$(on coord vzcoord list | awk '$1 ~ /^10[1-6]$/' | wc -l)" -eq 6 ]
	running_on "$(hosts_of 101)" 101
}

@test "a coordinator SIGKILLed at each phase of a drain finishes it once started again: no VE lost, on two hosts or moved twice" {
	local phase
	for phase in queued moving ended; do
		drain_killed_at $phase
		on coord vzcoord undrain h1 --no-return
		destroy_ves
	done
}
