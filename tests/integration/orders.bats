#!/usr/bin/env bats
# The coordinator's orders to agents (issue 14; agent/orders.c, the client
# coordinator/order.c): sent by tests/tools/vzorder from the sandbox's
# coordinator host with its certificate (CN vzcoord). A move order moves a
# VE with its progress and its outcome kept for a query; an order with
# another certificate or an older epoch is refused; maintenance keeps new
# and incoming VEs off a host; exec runs a command in a VE with its
# output, its status and a timeout that leaves nothing of it running.

load helpers

VZORDER="$VZ_TOP/build/tests/vzorder"

setup_file() {
	sb_setup vzor 2 --coordinator
	echo 1 >"$BATS_FILE_TMPDIR/epoch"
}

teardown_file() {
	sb_teardown
}

teardown() {
	local h p conf="$VZ_SANDBOX_DIR/h1/etc/vz/vz.conf"
	for p in order hbdump; do
		[ ! -f "$BATS_TEST_TMPDIR/$p.pid" ] || kill "$(cat "$BATS_TEST_TMPDIR/$p.pid")" 2>/dev/null || true
	done
	# The heartbeat test points h1 at a stand-in coordinator; a failed one
	# may not have put it back.
	if grep -qx 'COORDINATOR="198.18.0.240:7801"' "$conf"; then
		sed -i -e '/^COORDINATOR="198.18.0.240:7801"$/d' -e '/^HEARTBEAT_INTERVAL="1"$/d' "$conf"
		restart_agents h1
	fi
	for h in $SB_HOSTS; do
		rm -f "$VZ_SANDBOX_DIR/$h/vz/maintenance"
	done
	sb_test_teardown
}

# vzorder from the coordinator's host, with its certificate and the epoch
# the tests have reached.
order() {
	on coord "$VZORDER" --epoch "$(cat "$BATS_FILE_TMPDIR/epoch")" "$@"
}

# A running VE $2 on host $1.
running_ve() {
	on "$1" vzctl create "$2" --ostemplate busybox >/dev/null
	on "$1" vzctl start "$2" >/dev/null
}

# The order $@ in the background, its output in $BATS_TEST_TMPDIR/order,
# its pid (vzorder's own: nsenter execs it) in order.pid.
order_bg() {
	VZ_ROOT="$VZ_SANDBOX_DIR/coord" nsenter --net="/run/netns/$VZ_SANDBOX-coord" "$VZORDER" \
		--epoch "$(cat "$BATS_FILE_TMPDIR/epoch")" "$@" >"$BATS_TEST_TMPDIR/order" 2>&1 3>&- &
	echo $! >"$BATS_TEST_TMPDIR/order.pid"
}

# A VE $2 on host $1 whose private area holds 32 MiB that do not
# compress, and h1's link slowed, so that its move takes seconds.
slow_ve() {
	running_ve "$1" "$2"
	head -c 32M /dev/urandom >"$VZ_SANDBOX_DIR/$1/vz/private/$2/big"
	"$SB" link "$1" rate 40mbit
}

@test "a migrate order moves a running VE from h1 to h2 with its progress, and a query says done" {
	running_ve h1 301
	run order --host h1 198.18.0.1 migrate 301 7001 198.18.0.2
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Connecting to 198.18.0.2"* ]]
	[[ "$output" == *"Migration summary for VE 301"* ]]
	[[ "${lines[-1]}" =~ ^done\ exit=0\ elapsed_ms=[1-9][0-9]*\ downtime_ms=[1-9][0-9]*$ ]]
	running_on h2 301
	[ ! -e "$VZ_SANDBOX_DIR/h1/etc/vz/conf/301.conf" ]
	run order 198.18.0.1 query 7001
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "done exit=0 "* ]]
	# The same order again (a coordinator retrying) is answered from the
	# record: nothing moves twice.
	run order 198.18.0.1 migrate 301 7001 198.18.0.2
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" != *Connecting* ]]
	running_on h2 301
}

@test "a failed move order says why, the VE runs at the source, and a query gives the same outcome" {
	running_ve h1 302
	running_ve h2 302
	local rc
	run order 198.18.0.1 migrate 302 7002 198.18.0.2
	echo "$output"
	rc=$status
	[ "$rc" -ne 0 ]
	[ "$rc" -ne 255 ]
	[[ "${lines[-1]}" == *"error=Migration of VE 302 to 198.18.0.2 failed: "*"VE 302 already exists on h2" ]]
	running_on h1 302
	run order 198.18.0.1 query 7002
	echo "$output"
	[ "$status" -eq "$rc" ]
	[[ "$output" == "done exit=$rc "*"VE 302 already exists on h2" ]]
}

@test "a move goes on when the coordinator's connection drops, and a query gives its outcome" {
	slow_ve h1 311
	order_bg 198.18.0.1 migrate 311 7011 198.18.0.2
	wait_for 20 grep -qs "First file pass" "$BATS_TEST_TMPDIR/order" || { cat "$BATS_TEST_TMPDIR/order"; false; }
	[ "$(order 198.18.0.1 query 7011 2>&1)" = running ]
	kill "$(cat "$BATS_TEST_TMPDIR/order.pid")"
	wait_for 10 pid_dead "$(cat "$BATS_TEST_TMPDIR/order.pid")"
	"$SB" link h1 rate off
	wait_for 60 running_on h2 311
	wait_for 10 bash -c "$SB exec coord $VZORDER --epoch \$(cat $BATS_FILE_TMPDIR/epoch) 198.18.0.1 query 7011 2>&1 | grep -q '^done exit=0 '"
	[ ! -e "$VZ_SANDBOX_DIR/h1/etc/vz/conf/311.conf" ]
}

@test "a move whose agent was killed mid-move is resolved by a query after the restart" {
	slow_ve h1 312
	order_bg 198.18.0.1 migrate 312 7012 198.18.0.2
	wait_for 20 grep -qs "First file pass" "$BATS_TEST_TMPDIR/order" || { cat "$BATS_TEST_TMPDIR/order"; false; }
	kill_agent h1
	"$SB" link h1 rate off
	restart_agents h1
	# Its migration port listens a moment after its control socket.
	wait_for 10 bash -c "! $SB exec coord $VZORDER 198.18.0.1 query 1 2>&1 | grep -q refused"
	run order 198.18.0.1 query 7012
	echo "$output"
	[ "$status" -eq 3 ]
	[[ "$output" == *"error=The agent restarted during the move; VE 312 runs here" ]]
	running_on h1 312
	wait_for 30 nothing_of h2 312
	# The outcome stays.
	[[ "$(order 198.18.0.1 query 7012 2>&1)" == "done exit=3 "* ]]
}

@test "an order sent with an agent's certificate is refused with one audit line, the VE untouched" {
	local log="$VZ_SANDBOX_DIR/h1/var/log/vzagent.log"
	running_ve h1 303
	run on coord "$VZORDER" --tls "$VZ_SANDBOX_DIR/h2/etc/vz/tls" 198.18.0.1 migrate 303 7003 198.18.0.2
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$status" -ne 255 ]
	[[ "$output" == *"error=h1 takes orders from vzcoord only, not from h2" ]]
	[ "$(grep -c 'Refused an order from h2 (198.18.0.240)' "$log")" -eq 1 ]
	running_on h1 303
	[ ! -e "$VZ_SANDBOX_DIR/h2/etc/vz/conf/303.conf" ]
	[ "$(order 198.18.0.1 query 7003 2>&1)" = unknown ]
}

@test "an order of an older epoch than the newest this agent has seen is refused" {
	running_ve h1 304
	run on coord "$VZORDER" --epoch 3 198.18.0.1 query 1
	[ "$status" -eq 0 ]
	echo 3 >"$BATS_FILE_TMPDIR/epoch"
	[ "$(cat "$VZ_SANDBOX_DIR/h1/vz/coord-epoch")" = 3 ]
	run on coord "$VZORDER" --epoch 2 198.18.0.1 migrate 304 7004 198.18.0.2
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$status" -ne 255 ]
	[[ "$output" == *"error=Order of epoch 2 refused: this agent has seen epoch 3 (a newer coordinator)" ]]
	running_on h1 304
	[ ! -e "$VZ_SANDBOX_DIR/h2/etc/vz/conf/304.conf" ]
	# The newest stays; the same epoch is taken.
	[ "$(cat "$VZ_SANDBOX_DIR/h1/vz/coord-epoch")" = 3 ]
	run order 198.18.0.1 query 7004
	[ "$status" -eq 0 ]
	[ "$output" = unknown ]
}

@test "maintenance keeps new and incoming VEs off a host, leaves its own startable, survives a restart, and ends" {
	running_ve h1 305
	on h2 vzctl create 306 --ostemplate busybox >/dev/null
	run order 198.18.0.2 maintenance on
	echo "$output"
	[ "$status" -eq 0 ]
	[ -e "$VZ_SANDBOX_DIR/h2/vz/maintenance" ]
	run on h2 vzctl create 307 --ostemplate busybox
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$output" = "vzctl: Host h2 is in maintenance (vzcoord drain): it takes no new VE" ]
	[ ! -e "$VZ_SANDBOX_DIR/h2/etc/vz/conf/307.conf" ]
	run on h1 vzmigrate --online h2 305
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$(grep -c 'h2 is in maintenance: it takes no incoming VE' <<<"$output")" -eq 1 ]
	running_on h1 305
	nothing_of h2 305
	# Its own VEs start as before.
	on h2 vzctl start 306 >/dev/null
	running_on h2 306
	# A file: a restarted agent is still in maintenance.
	restart_agents h2
	run on h2 vzctl create 307 --ostemplate busybox
	[ "$status" -ne 0 ]
	[[ "$output" == *"in maintenance"* ]]
	run order 198.18.0.2 maintenance off
	[ "$status" -eq 0 ]
	[ ! -e "$VZ_SANDBOX_DIR/h2/vz/maintenance" ]
	on h2 vzctl create 307 --ostemplate busybox >/dev/null
	run on h1 vzmigrate --online h2 305
	echo "$output"
	[ "$status" -eq 0 ]
	running_on h2 305
}

@test "exec returns the command's output and status, stdout and stderr merged" {
	running_ve h1 308
	run order 198.18.0.1 exec 308 10 'echo out; echo err >&2; hostname >/dev/null; exit 3'
	echo "$output"
	[ "$status" -eq 3 ]
	[ "${lines[0]}" = out ]
	[ "${lines[1]}" = err ]
	[ "${lines[2]}" = "done exit=3 elapsed_ms=${lines[2]#*elapsed_ms=}" ]
	[[ "${lines[2]}" != *error=* ]]
	run order 198.18.0.1 exec 308 10 'cat /proc/1/comm; kill -9 $$'
	echo "$output"
	[ "$status" -eq 137 ]
	[ "${lines[0]}" = init ]
	run order 198.18.0.1 exec 308 0 'test -d /proc/1'
	[ "$status" -eq 0 ]
	[[ "$output" == "done exit=0 "* ]]
}

@test "an exec past its timeout gives 124 and leaves none of its processes in the VE" {
	running_ve h1 309
	local t0=$SECONDS
	# A background job, an orphan of a subshell and the foreground sleep.
	run order 198.18.0.1 exec 309 2 'sleep 3001 & (sleep 3002 &); echo started; sleep 3003; echo never'
	echo "$output"
	[ "$status" -eq 124 ]
	[ "${lines[0]}" = started ]
	[[ "$output" != *never* ]]
	[[ "${lines[-1]}" == *"error=Timed out after 2 s" ]]
	[ $((SECONDS - t0)) -lt 10 ]
	run on h1 vzctl exec 309 ps
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" != *"sleep 300"* ]]
	running_on h1 309
}

@test "exec in a stopped or missing VE fails with one line" {
	on h1 vzctl create 310 --ostemplate busybox >/dev/null
	run order 198.18.0.1 exec 310 5 true
	echo "$output"
	[ "$status" -eq 31 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"error=VE 310 is not running on h1" ]]
	run order 198.18.0.1 exec 399 5 true
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$status" -ne 255 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"error=VE 399 does not exist on h1" ]]
}

@test "heartbeats carry each VE's processes, addresses, hostname and move, and the host's maintenance and epoch" {
	local conf="$VZ_SANDBOX_DIR/h1/etc/vz/vz.conf" hb="$BATS_TEST_TMPDIR/hb" epoch
	epoch=$(cat "$BATS_FILE_TMPDIR/epoch")
	on h1 vzctl create 313 --ostemplate busybox --ipadd 198.18.1.13/16 --ipadd 198.18.1.113 --hostname ve313 >/dev/null
	on h1 vzctl start 313 >/dev/null
	on h1 vzctl create 315 --ostemplate busybox >/dev/null
	slow_ve h1 314
	run order 198.18.0.1 maintenance on
	[ "$status" -eq 0 ]
	# A stand-in coordinator on another port prints what h1 sends.
	VZ_ROOT="$VZ_SANDBOX_DIR/coord" nsenter --net="/run/netns/$VZ_SANDBOX-coord" "$VZ_TOP/build/tests/vzhbdump" \
		7801 100 >"$hb" 2>&1 3>&- &
	echo $! >"$BATS_TEST_TMPDIR/hbdump.pid"
	wait_for 5 grep -q listening "$hb"
	printf 'COORDINATOR="198.18.0.240:7801"\nHEARTBEAT_INTERVAL="1"\n' >>"$conf"
	restart_agents h1
	order_bg 198.18.0.1 migrate 314 7014 198.18.0.2
	wait_for 20 grep -q '^ve 314 state=3 nproc=[1-9][0-9]* ip= hostname= move_id=7014$' "$hb" || { cat "$hb"; false; }
	grep -Eq '^ve 313 state=3 nproc=[1-9][0-9]* ip=198.18.1.13 198.18.1.113 hostname=ve313 move_id=0$' "$hb"
	grep -q '^ve 315 state=1 nproc=0 ip= hostname= move_id=0$' "$hb"
	grep -q "^hb [0-9]* draining=1 epoch=$epoch\$" "$hb"
	"$SB" link h1 rate off
	wait_for 60 running_on h2 314
	# Moved: no move of it in the next heartbeats, and maintenance over.
	run order 198.18.0.1 maintenance off
	[ "$status" -eq 0 ]
	wait_for 10 bash -c "tail -n 4 '$hb' | grep -q '^hb [0-9]* draining=0 epoch=$epoch\$'" || { tail "$hb"; false; }
	run ! grep -q '^ve 314 .*move_id=7014$' <(tail -n 4 "$hb")
}

@test "a query of a move id this agent never had says unknown" {
	run order 198.18.0.1 query 999999
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = unknown ]
}
