#!/usr/bin/env bats
# vzcoord exec (issue 14 item 5), OpenVZ's "mass management": one command
# in every selected running VE of a pool of three hosts, twenty busybox
# VEs (101..120, VE v on host h((v - 101) % 3 + 1), hostname vev). Each
# VE's status and output come in VEID order, at most --parallel at once
# (proved by the times the commands themselves record), a spent --max-fail
# budget starts no more VE (proved by the marker files the skipped ones
# would have made), --timeout ends a command with 124, and vzcoord list
# shows NPROC, IP_ADDR and HOSTNAME as the agents report them.

load helpers

setup_file() {
	export SB_AGENT_CONF='HEARTBEAT_INTERVAL="1"'
	sb_setup vzex 3 --coordinator
	local v
	for v in $(seq 101 120); do
		on "$(host_of "$v")" vzctl create "$v" --ostemplate busybox --hostname "ve$v" \
			--ipadd "198.18.1.$((v - 100))" >/dev/null
		on "$(host_of "$v")" vzctl start "$v" >/dev/null
	done
	wait_for 20 all_listed_running || { on coord vzcoord list; false; }
}

teardown_file() {
	local v
	for v in $(seq 101 120); do
		on "$(host_of "$v")" vzctl stop "$v" --fast >/dev/null 2>&1
		on "$(host_of "$v")" vzctl destroy "$v" >/dev/null 2>&1
	done
	sb_teardown
}

teardown() {
	[ -f "$BATS_TEST_TMPDIR/out" ] && cat "$BATS_TEST_TMPDIR/out"
	local h
	# An agent a failed test killed and did not restart.
	for h in $SB_HOSTS; do
		kill -0 "$(cat "$VZ_SANDBOX_DIR/$h/agent.pid")" 2>/dev/null || restart_agents "$h"
	done
	# A VE a test stopped runs again for the next.
	for h in $SB_HOSTS; do
		for v in $(on "$h" vzlist -S -1 2>/dev/null); do
			case $v in 1[01][0-9] | 120) on "$h" vzctl start "$v" >/dev/null ;; esac
		done
	done
	return 0
}

host_of() {
	echo "h$((($1 - 101) % 3 + 1))"
}

all_listed_running() {
	[ "$(on coord vzcoord list -j | jq '[.[] | select(.status == "running")] | length')" -eq 20 ]
}

# The JSON of the last run (its stdout, in $output) is whole and valid.
json() {
	jq -e "$@" <<<"$output"
}

@test "vzcoord exec --all --parallel 4 gives each VE's status and output in VEID order, at most 4 at once" {
	# Each command prints its hostname and the uptime (s, 1/100) at its
	# start and end, then fails in the VEs whose VEID is a multiple of 3.
	local cmd='read s _ </proc/uptime; hostname; sleep 1; read e _ </proc/uptime; echo "times $s $e";
		h=$(hostname); exit $((${h#ve} % 3 == 0))'
	run on coord vzcoord exec --all --parallel 4 -- "$cmd"
	echo "$output" >"$BATS_TEST_TMPDIR/out"
	[ "$status" -eq 8 ]
	# 20 headers in VEID order, each followed by its own output.
	local v headers
	headers=$(grep -E '^[0-9]+ on h[0-9]: ' <<<"$output" | cut -d' ' -f1 | tr '\n' ' ')
	[ "$headers" = "$(seq -s ' ' 101 120) " ]
	for v in $(seq 101 120); do
		local want=$((v % 3 == 0))
		grep -Eqx "$v on $(host_of "$v"): exit $want in [0-9]+\.[0-9]{2} s" <<<"$output"
		# The line after the header is this VE's hostname, indented.
		[ "$(grep -A1 -E "^$v on " <<<"$output" | sed -n 2p)" = "  ve$v" ]
	done
	[ "${lines[-1]}" = "20 VEs: 13 ok, 7 failed, 0 skipped" ]
	# The most commands running at one moment: 4, never more.
	local peak
	peak=$(awk '$1 == "times" { s[n] = $2; e[n++] = $3 }
		END { for (i = 0; i < n; i++) { c = 0; for (j = 0; j < n; j++) if (s[j] <= s[i] && s[i] < e[j]) c++; if (c > m) m = c } print m }' \
		<<<"$output")
	echo "peak $peak"
	[ "$peak" -eq 4 ]
}

@test "--max-fail stops a run whose VEs fail: no new VE starts, those not started are skipped and never ran" {
	local v
	for v in $(seq 101 120); do
		on "$(host_of "$v")" vzctl exec "$v" rm -f /exec.marker
	done
	# 10% of 20: two failures are allowed, the third spends the budget.
	run on coord vzcoord exec --all --parallel 1 --max-fail 10% -- 'touch /exec.marker; echo failing; exit 3'
	echo "$output" >"$BATS_TEST_TMPDIR/out"
	[ "$status" -eq 8 ]
	for v in 101 102 103; do
		grep -Eqx "$v on $(host_of "$v"): exit 3 in [0-9.]+ s" <<<"$output"
		on "$(host_of "$v")" vzctl exec "$v" test -e /exec.marker
	done
	local ran=$output
	for v in $(seq 104 120); do
		grep -qx "$v on $(host_of "$v"): skipped: the failure budget (--max-fail 10%) was spent" <<<"$ran"
		run on "$(host_of "$v")" vzctl exec "$v" test -e /exec.marker
		[ "$status" -ne 0 ] || { echo "VE $v ran its command"; false; }
	done
	grep -qx "20 VEs: 0 ok, 3 failed, 17 skipped" "$BATS_TEST_TMPDIR/out"
}

@test "--timeout ends a VE's command with 124, the others go on" {
	local t0=$SECONDS
	run on coord vzcoord exec --ve 101,102 --timeout 1 -- 'h=$(hostname); [ "$h" = ve102 ] || exit 0; sleep 30'
	echo "$output" >"$BATS_TEST_TMPDIR/out"
	[ "$status" -eq 8 ]
	grep -Eqx "101 on h1: exit 0 in [0-9.]+ s" <<<"$output"
	grep -Eq "^102 on h2: exit 124 in [0-9.]+ s" <<<"$output"
	[ "${lines[-1]}" = "2 VEs: 1 ok, 1 failed, 0 skipped" ]
	[ $((SECONDS - t0)) -lt 15 ]
}

@test "--json is one object jq reads: each result, its output, and the summary" {
	run --separate-stderr on coord vzcoord exec --ve 103-106 --json -- 'hostname; h=$(hostname); exit $((${h#ve} % 2))'
	echo "$output" >"$BATS_TEST_TMPDIR/out"
	[ "$status" -eq 8 ]
	json '.results | length == 4'
	json '[.results[].veid] == [103, 104, 105, 106]'
	json '[.results[].host] == ["h3", "h1", "h2", "h3"]'
	json '[.results[].status] == [1, 0, 1, 0]'
	json '[.results[].result] == ["failed", "ok", "failed", "ok"]'
	json '[.results[].output] == ["ve103\n", "ve104\n", "ve105\n", "ve106\n"]'
	json '.results | all(.elapsed_ms >= 0 and .error == null)'
	json '.summary == {"ves": 4, "ok": 2, "failed": 2, "skipped": 0, "not_run": 0}'
	json '.exit_code == 8'
	# All ok: exit status 0.
	run --separate-stderr on coord vzcoord exec --ve 104,106 --json -- true
	[ "$status" -eq 0 ]
	json '.summary.ok == 2 and .exit_code == 0'
}

@test "a selected VE that cannot run is reported with its reason, not dropped" {
	on h1 vzctl stop 104 >/dev/null
	wait_for 10 bash -c "$SB exec coord vzcoord list -j | jq -e '.[] | select(.veid == 104) | .status == \"stopped\"'"
	run on coord vzcoord exec --ve 101,104,999 -- 'echo ran'
	echo "$output" >"$BATS_TEST_TMPDIR/out"
	[ "$status" -eq 8 ]
	grep -Eqx "101 on h1: exit 0 in [0-9.]+ s" <<<"$output"
	grep -qx "104 on h1: not run: not running (stopped)" <<<"$output"
	grep -qx "999 on -: not run: not in the pool" <<<"$output"
	[ "${lines[-1]}" = "3 VEs: 1 ok, 0 failed, 0 skipped, 2 not run" ]
	# --all leaves the stopped VE out; --host takes only that host's.
	run on coord vzcoord exec --host h1 -- 'hostname'
	[ "$status" -eq 0 ]
	[ "$(grep -cE '^[0-9]+ on h1: exit 0' <<<"$output")" -eq 6 ]
	[[ "$output" != *"104 on"* ]]
	[ "${lines[-1]}" = "6 VEs: 6 ok, 0 failed, 0 skipped" ]
}

@test "bad input is one clear line and a non-zero exit, before anything runs" {
	local v
	for v in 101 102; do
		on "$(host_of "$v")" vzctl exec "$v" rm -f /exec.marker
	done
	local -a bad=(
		"No command given|--all"
		"No command given|--all --"
		"Bad VE list '101,x'|--ve 101,x -- touch /exec.marker"
		"Choose the VEs|--all --host h1 -- touch /exec.marker"
		"Choose the VEs|-- touch /exec.marker"
		"--max-fail takes a share of the VEs, 0%..100%, not '150%'|--all --max-fail 150% -- touch /exec.marker"
		"--parallel takes 1..256|--all --parallel 0 -- touch /exec.marker"
		"No host h7 in the pool|--host h7 -- touch /exec.marker"
	)
	local b
	for b in "${bad[@]}"; do
		# shellcheck disable=SC2086 # the arguments split on purpose
		run --separate-stderr on coord vzcoord exec ${b#*|}
		echo "${b#*|}: $status: $stderr"
		[ "$status" -ne 0 ] && [ "$status" -ne 8 ]
		[ -z "$output" ]
		[ "${#stderr_lines[@]}" -eq 1 ]
		[[ "$stderr" == *"${b%%|*}"* ]]
	done
	for v in 101 102; do
		run on "$(host_of "$v")" vzctl exec "$v" test -e /exec.marker
		[ "$status" -ne 0 ]
	done
}

@test "vzcoord list shows each VE's NPROC, IP_ADDR and HOSTNAME, as vzlist does" {
	wait_for 10 bash -c "$SB exec coord vzcoord list -j | jq -e '.[] | select(.veid == 105) | .nproc > 0'" ||
		{ on coord vzcoord list -j; false; }
	run on coord vzcoord list
	echo "$output" >"$BATS_TEST_TMPDIR/out"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == *VEID*STATUS*HOST*MEM*CPU*NPROC*IP_ADDR*HOSTNAME ]]
	awk '$1 == 105 && $2 == "running" && $3 == "h2" && $6 > 0 && $7 == "198.18.1.5" && $8 == "ve105" { f = 1 }
		END { exit !f }' <<<"$output"
	run on coord vzcoord list -j
	json '.[] | select(.veid == 110) | .ip == "198.18.1.10" and .hostname == "ve110" and .nproc >= 1'
}

@test "the VEs of a host gone silent are reported not run, and each run's worker ends" {
	kill_agent h3
	wait_for 15 bash -c "$SB exec coord vzcoord status | awk '\$1 == \"h3\" { exit \$2 == \"online\" }'" ||
		{ on coord vzcoord status; false; }
	run on coord vzcoord exec --all -- true
	echo "$output" >"$BATS_TEST_TMPDIR/out"
	[ "$status" -eq 8 ]
	local v
	for v in 103 106 109 112 115 118; do
		grep -Eqx "$v on h3: not run: its host h3 is (suspect|offline)" <<<"$output"
	done
	[ "$(grep -cE '^[0-9]+ on h[12]: exit 0 in ' <<<"$output")" -eq 14 ]
	[ "${lines[-1]}" = "20 VEs: 14 ok, 0 failed, 0 skipped, 6 not run" ]
	restart_agents h3
	# Every run's worker has ended and been reaped: vzcoord has no child.
	local pid
	pid=$(cat "$VZ_SANDBOX_DIR/coord/coord.pid")
	wait_for 5 bash -c "[ -z \"\$(ps -o pid= --ppid $pid)\" ]" || { ps -o pid,stat,args --ppid "$pid"; false; }
}
