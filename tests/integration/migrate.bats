#!/usr/bin/env bats
# Migration between two hosts of a sandbox (deploy/sandbox): offline and
# online moves, the workloads' self-checks and a TCP client outside the VE
# across an online move, and failures (destination refuses, link cut while
# the VE is frozen, destination agent killed, destination disk full,
# foreign certificate): each leaves the VE running on exactly one host and
# nothing of the failed attempt on the other.

VZ_TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
SB="$VZ_TOP/deploy/sandbox"

setup_file() {
	export VZ_SANDBOX="vzm$$"
	export VZ_SANDBOX_DIR="$BATS_FILE_TMPDIR/sandbox"
	"$SB" up 2 >/dev/null
	# Fail fast in fault tests: a silent peer ends a migration in 5 s.
	for h in h1 h2; do
		echo 'MIGRATE_TIMEOUT="5"' >>"$VZ_SANDBOX_DIR/$h/etc/vz/vz.conf"
	done
	"$SB" restart-agents >/dev/null 2>&1 || restart_agents
}

teardown_file() {
	local p
	for p in "$VZ_SANDBOX_DIR"/probe*.pid; do
		[ -f "$p" ] && kill -TERM "$(cat "$p")" 2>/dev/null
	done
	"$SB" down >/dev/null 2>&1
}

on() {
	"$SB" exec "$@"
}

# Agents read vz.conf at start: restart them (or those of the hosts named)
# by pid, VEs keep running.
restart_agents() {
	local h pid hosts=("$@")
	[ ${#hosts[@]} -gt 0 ] || hosts=(h1 h2)
	for h in "${hosts[@]}"; do
		pid=$(cat "$VZ_SANDBOX_DIR/$h/agent.pid")
		kill -TERM "$pid" 2>/dev/null || true
		wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
		VZ_ROOT="$VZ_SANDBOX_DIR/$h" nsenter --net="/run/netns/$VZ_SANDBOX-$h" "$VZ_TOP/build/bin/vzagent" \
			--log "$VZ_SANDBOX_DIR/$h/var/log/vzagent.log" </dev/null >>"$VZ_SANDBOX_DIR/$h/agent.stderr" 2>&1 3>&- &
		echo $! >"$VZ_SANDBOX_DIR/$h/agent.pid"
		wait_for 10 test -S "$VZ_SANDBOX_DIR/$h/run/vz/agent.sock"
	done
}

# A fault test must not leave the link cut or slow for the next one.
teardown() {
	local h
	for h in h1 h2; do
		"$SB" link $h up >/dev/null 2>&1 || true
		"$SB" link $h rate off >/dev/null 2>&1 || true
	done
	[ -f "$BATS_TEST_TMPDIR/out" ] && cat "$BATS_TEST_TMPDIR/out"
	return 0
}

wait_for() {
	local secs=$1
	shift
	local end=$((SECONDS + secs))
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.05
	done
}

put_workloads() {
	local h=$1 veid=$2 w
	for w in wl-mem wl-counter wl-pipe wl-unix wl-file wl-threads wl-tcpecho; do
		cp "$VZ_TOP/build/tests/workloads/$w" "$VZ_SANDBOX_DIR/$h/vz/root/$veid/bin/"
	done
}

start_workloads() {
	on "$1" vzctl exec "$2" 'wl-mem -m 64 -r 2; wl-counter; wl-pipe; wl-unix; wl-file; wl-threads -t 4; wl-tcpecho -p 7000' >/dev/null
}

# The workloads named (default: the seven of start_workloads) of VE $2 on
# host $1 pass their self-checks.
all_pass() {
	local h=$1 veid=$2 w out rc=0 ws=("${@:3}")
	[ ${#ws[@]} -gt 0 ] || ws=(wl-mem wl-counter wl-pipe wl-unix wl-file wl-threads wl-tcpecho)
	for w in "${ws[@]}"; do
		on "$h" vzctl exec "$veid" "rm -f /run/$w.result; kill -USR1 \$(cat /run/$w.pid)" || return 1
	done
	for w in "${ws[@]}"; do
		wait_for 10 on "$h" vzctl exec "$veid" test -f "/run/$w.result"
		out=$(on "$h" vzctl exec "$veid" cat "/run/$w.result")
		echo "$w: $out"
		[ "$out" = PASS ] || rc=1
	done
	return $rc
}

start_probe() {
	nsenter --net="/run/netns/$VZ_SANDBOX-c" "$VZ_TOP/build/tests/workloads/tcpprobe" \
		-o "$VZ_SANDBOX_DIR/$1.status" "$2" 7000 </dev/null >/dev/null 2>&1 3>&- &
	echo $! >"$VZ_SANDBOX_DIR/$1.pid"
	wait_for 5 probe_ok "$1"
}

probe_line() {
	rm -f "$VZ_SANDBOX_DIR/$1.status"
	kill -USR1 "$(cat "$VZ_SANDBOX_DIR/$1.pid")"
	wait_for 5 test -s "$VZ_SANDBOX_DIR/$1.status"
	cat "$VZ_SANDBOX_DIR/$1.status"
}

probe_ok() {
	[[ "$(probe_line "$1")" == *"state=ok"* ]] && [ "$(probe_field "$1" received)" -gt 10 ]
}

probe_field() {
	sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$(probe_line "$1")"
}

# Nothing of VE $2 on host $1: no config, private area, mount, cgroup,
# pid file, veth or half-received images.
nothing_of() {
	local r="$VZ_SANDBOX_DIR/$1"
	[ ! -e "$r/etc/vz/conf/$2.conf" ] || { echo "config left on $1"; return 1; }
	[ ! -e "$r/vz/private/$2" ] || { echo "private area left on $1"; return 1; }
	! grep -q " $r/vz/root/$2 " /proc/self/mountinfo || { echo "mount left on $1"; return 1; }
	[ ! -d "/sys/fs/cgroup/pids/$VZ_SANDBOX-$1/$2" ] || { echo "cgroup left on $1"; return 1; }
	[ ! -e "$r/run/vz/$2.pid" ] || { echo "pid file left on $1"; return 1; }
	! on "$1" ip link show "veth$2.0" >/dev/null 2>&1 || { echo "veth left on $1"; return 1; }
	! ls "$r"/vz/dump/"$2".incoming.* >/dev/null 2>&1 || { echo "images left on $1"; return 1; }
	! ls "$r"/vz/dump/"$2".lazy.* >/dev/null 2>&1 || { echo "lazy-restore files left on $1"; return 1; }
	[ ! -e "$r/vz/migrate/$2.incoming" ] || { echo "incoming marker left on $1"; return 1; }
}

# Kill host $1's agent and its workers by pid. A VE's init is the agent's
# child too (it is a subreaper): it is left alone, as a crashed agent would.
kill_agent() {
	local pid k kids=""
	pid=$(cat "$VZ_SANDBOX_DIR/$1/agent.pid")
	for k in $(ps -o pid= --ppid "$pid" || true); do
		grep -q "/$VZ_SANDBOX-$1/" "/proc/$k/cgroup" 2>/dev/null || kids="$kids $k"
	done
	kill -KILL "$pid" $kids
}

# The workloads of VE 101 on host $1 (or those named after it) all pass
# their self-checks.
passes_on() {
	run all_pass "$1" 101 "${@:2}"
	echo "$output"
	[ "$status" -eq 0 ]
}

# vzmigrate on host $1 with the rest as arguments, in the background: its
# output, then "rc=STATUS", go to $BATS_TEST_TMPDIR/out.
migrate_bg() {
	local src=$1
	shift
	(rc=0; on "$src" vzmigrate "$@" >"$BATS_TEST_TMPDIR/out" 2>&1 || rc=$?; echo "rc=$rc" >>"$BATS_TEST_TMPDIR/out") &
}

running_on() {
	[ "$(on "$1" vzctl status "$2")" = "VEID $2 exist mounted running" ]
}

@test "a peer with a certificate from another CA is refused" {
	"$VZ_TOP/deploy/vz-certs" ca "$BATS_TEST_TMPDIR/rogue-ca" >/dev/null
	"$VZ_TOP/deploy/vz-certs" host "$BATS_TEST_TMPDIR/rogue-ca" "$BATS_TEST_TMPDIR/rogue" h9 198.18.0.9 >/dev/null
	run on c timeout 10 openssl s_client -connect 198.18.0.2:7799 -brief \
		-cert "$BATS_TEST_TMPDIR/rogue/host.crt" -key "$BATS_TEST_TMPDIR/rogue/host.key" \
		-CAfile "$BATS_TEST_TMPDIR/rogue/ca.crt" </dev/null
	echo "$output"
	[ "$status" -ne 0 ] || [[ "$output" != *"CONNECTION ESTABLISHED"* ]] || ! [[ "$output" == *"Verification: OK"* ]]
	wait_for 5 grep -q "Refused a migration peer.*certificate" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	grep "Refused a migration peer" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log" | tail -1
	# The agent is still serving.
	run on h2 vzlist -a
	[ "$status" -eq 0 ]
}

@test "vzmigrate --dry-run checks the destination and moves nothing" {
	on h1 vzctl create 101 --ostemplate busybox --ipadd 198.18.1.1 >/dev/null
	on h1 vzctl start 101 >/dev/null
	run on h1 vzmigrate --dry-run --online h2 101
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"can be migrated to h2"* ]]
	running_on h1 101
	nothing_of h2 101
}

@test "a destination that already has the VEID refuses, and the VE stays where it was" {
	on h2 vzctl create 101 --ostemplate busybox >/dev/null
	run on h1 vzmigrate --online h2 101
	echo "$output"
	[ "$status" -eq 44 ]
	[[ "$output" == *"VE 101 already exists on h2"* ]]
	[ "$(grep -c 'vzmigrate:' <<<"$output")" -eq 1 ]
	running_on h1 101
	on h2 vzctl destroy 101 >/dev/null
	nothing_of h2 101
}

@test "a destination where the VE's interface name is taken refuses before anything moves" {
	on h2 ip link add veth101.0 type veth peer name vzmtaken
	run on h1 vzmigrate --online h2 101
	on h2 ip link del veth101.0
	echo "$output"
	[ "$status" -eq 130 ]
	[[ "$output" == *"Interface veth101.0 of VE 101 is in use on h2"* ]]
	running_on h1 101
	nothing_of h2 101
}

@test "vzmigrate without --online stops, moves and starts the VE" {
	echo payload-offline >"$VZ_SANDBOX_DIR/h1/vz/root/101/root/marker"
	run on h1 vzmigrate h2 101
	echo "$output"
	[ "$status" -eq 0 ]
	running_on h2 101
	[ "$(on h2 vzctl exec 101 cat /root/marker)" = payload-offline ]
	nothing_of h1 101
	# And back, while stopped: it stays stopped.
	on h2 vzctl stop 101 >/dev/null
	run on h2 vzmigrate h1 101
	[ "$status" -eq 0 ]
	[ "$(on h1 vzctl status 101)" = "VEID 101 exist unmounted down" ]
	nothing_of h2 101
	on h1 vzctl start 101 >/dev/null
}

@test "vzmigrate --online keeps the workloads and the TCP client's connection" {
	put_workloads h1 101
	start_workloads h1 101
	start_probe probe1 198.18.1.1
	run on h1 vzmigrate --online --times h2 101
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Total time suspended"* ]]
	agent_ms=$(sed -n 's/.*total suspended *\([0-9]*\) ms.*/\1/p' <<<"$output")
	running_on h2 101
	nothing_of h1 101
	passes_on h2
	# The client outside kept its connection and talks to the new host.
	wait_for 10 bash -c "[ \$(sed -n 's/.*received=\([0-9]*\).*/\1/p' '$VZ_SANDBOX_DIR/probe1.status') -gt 0 ]"
	[ "$(probe_field probe1 state)" = ok ]
	[ "$(probe_field probe1 errors)" -eq 0 ]
	on c busybox ping -c 1 -W 2 198.18.1.1 >/dev/null
	# Downtime: the agent's figure and the probe's longest gap agree. The
	# probe cannot see less than the freeze (less a little at its edges),
	# and sees more by at most its own TCP retransmission backoff: the
	# next retransmission after the VE is back comes within one backoff
	# interval, which is at most the time already waited plus the 200 ms
	# minimum RTO.
	probe_ms=$(($(probe_field probe1 maxgap_us) / 1000))
	echo "# downtime: agent $agent_ms ms, external probe $probe_ms ms" >&3
	[ "$probe_ms" -ge $((agent_ms * 8 / 10 - 100)) ]
	[ "$probe_ms" -le $((agent_ms * 2 + 250)) ]
}

@test "a link cut while the VE is frozen resumes it on the source and clears the destination" {
	# Slow the link so the dump is in flight when it is cut.
	"$SB" link h1 rate 40mbit
	migrate_bg h2 --online h1 101
	wait_for 30 grep -q "Suspending and dumping" "$BATS_TEST_TMPDIR/out"
	wait_for 30 grep -q "Second file pass" "$BATS_TEST_TMPDIR/out"
	"$SB" link h1 down
	wait_for 60 grep -q "^rc=" "$BATS_TEST_TMPDIR/out"
	cat "$BATS_TEST_TMPDIR/out"
	"$SB" link h1 up
	"$SB" link h1 rate off
	! grep -q "^rc=0" "$BATS_TEST_TMPDIR/out"
	running_on h2 101
	wait_for 30 nothing_of h1 101
	passes_on h2
}

@test "a destination agent killed during the move leaves the VE running on the source" {
	"$SB" link h1 rate 40mbit
	migrate_bg h2 --online h1 101
	wait_for 30 grep -q "Suspending and dumping" "$BATS_TEST_TMPDIR/out"
	# The agent and every worker it forked, by pid.
	kill_agent h1
	wait_for 60 grep -q "^rc=" "$BATS_TEST_TMPDIR/out"
	"$SB" link h1 rate off
	# A restarted agent finds what the killed one left and clears it.
	restart_agents
	! grep -q "^rc=0" "$BATS_TEST_TMPDIR/out"
	running_on h2 101
	wait_for 30 nothing_of h1 101
	passes_on h2
}

@test "a destination whose disk fills up refuses the dump; the VE runs on" {
	mount -t tmpfs -o size=8m vzm-full "$VZ_SANDBOX_DIR/h1/vz/dump"
	run on h2 vzmigrate --online h1 101
	umount "$VZ_SANDBOX_DIR/h1/vz/dump"
	echo "$output"
	[ "$status" -ne 0 ]
	running_on h2 101
	wait_for 10 nothing_of h1 101
	passes_on h2
}

@test "the VE moves back online and still passes" {
	run on h2 vzmigrate --online h1 101
	echo "$output"
	[ "$status" -eq 0 ]
	running_on h1 101
	nothing_of h2 101
	passes_on h1
}

@test "a source agent killed after its decision: the VE ends up on the destination only" {
	ls "$VZ_SANDBOX_DIR"/h1/vz/migrate/ >"$BATS_TEST_TMPDIR/before" 2>/dev/null || true
	migrate_bg h1 --online h2 101
	# The moment the source has written "go" for this migration.
	wait_for 60 bash -c "ls '$VZ_SANDBOX_DIR'/h1/vz/migrate/ | grep -vxF -f '$BATS_TEST_TMPDIR/before' | grep -q '\.decision$' || grep -q '^rc=' '$BATS_TEST_TMPDIR/out'"
	kill_agent h1
	wait_for 60 grep -q "^rc=" "$BATS_TEST_TMPDIR/out"
	restart_agents
	# The destination finishes with the source's go, asked again if need be.
	wait_for 60 running_on h2 101
	wait_for 30 nothing_of h1 101
	passes_on h2
}

# Pre-copy (issue 6): memory goes ahead in rounds while the VE runs; the
# destination restores lazily from its own copy. --verify-memory has both
# agents hash every writable private mapping (rseq areas, which the kernel
# rewrites per CPU, left out) and refuse the go on any difference.
@test "pre-copy moves memory written by many threads, new mappings and new processes byte for byte" {
	cp "$VZ_TOP/build/tests/workloads/wl-churn" "$VZ_SANDBOX_DIR/h2/vz/root/101/bin/"
	on h2 vzctl exec 101 'wl-mem -m 32 -r 8 -t 4 -n mt' >/dev/null
	# Maps memory every 20 ms and forks every 100 ms, so some of each
	# happens during the rounds and after the last. The digests leave each
	# thread's rseq area out (the kernel writes the CPU there), as read
	# just before the freeze; a child forked in that instant makes the
	# agent thaw and read them again.
	on h2 vzctl exec 101 wl-churn >/dev/null
	run on h2 vzmigrate --online --verify-memory h1 101
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Memory round 0:"* ]]
	[[ "$output" == *"uffd-wp tracker"* ]]
	[[ "$output" == *"Pre-copy converged"* ]]
	grep "VE 101: memory verified" "$VZ_SANDBOX_DIR/h1/var/log/vzagent.log" | tail -1
	grep -q "VE 101: memory verified: [1-9][0-9]* mappings identical" "$VZ_SANDBOX_DIR/h1/var/log/vzagent.log"
	running_on h1 101
	nothing_of h2 101
	passes_on h1
	passes_on h1 wl-mem-mt wl-churn
}

@test "a VE writing faster than the link does not converge, and still moves correctly" {
	"$SB" link h1 rate 200mbit
	on h1 vzctl exec 101 'wl-mem -m 32 -r 80 -t 2 -n fast' >/dev/null
	run on h1 vzmigrate --online --verify-memory --max-rounds 4 h2 101
	"$SB" link h1 rate off
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"did not converge"* ]]
	[ "$(grep -c '^Memory round [0-9]*:' <<<"$output")" -le 4 ]
	grep -q "VE 101: memory verified" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	running_on h2 101
	nothing_of h1 101
	passes_on h2
}

@test "--stop-copy and bad pre-copy settings" {
	run on h2 vzmigrate --online --max-rounds 0 h1 101
	[ "$status" -eq 20 ]
	[[ "$output" == *"--max-rounds takes a number from 1 to 64"* ]]
	run on h2 vzmigrate --online --downtime-ms -5 h1 101
	[ "$status" -eq 20 ]
	[ "$(wc -l <<<"$output")" -eq 1 ]
	running_on h2 101
	run on h2 vzmigrate --online --stop-copy h1 101
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"memory: stop-and-copy (--stop-copy)"* ]]
	[[ "$output" != *"Memory round"* ]]
	running_on h1 101
	nothing_of h2 101
}

@test "a source agent killed during a pre-copy dump, before its decision: the VE runs on at the source" {
	migrate_bg h1 --online h2 101
	# Rounds done, slow the link so the frozen part takes a while.
	wait_for 60 grep -q "^Pre-copy" "$BATS_TEST_TMPDIR/out"
	"$SB" link h1 rate 2mbit
	wait_for 30 grep -q "Suspending and dumping" "$BATS_TEST_TMPDIR/out"
	sleep 0.3
	kill_agent h1
	! ls "$VZ_SANDBOX_DIR"/h1/vz/migrate/*.decision 2>/dev/null
	wait_for 60 grep -q "^rc=" "$BATS_TEST_TMPDIR/out"
	"$SB" link h1 rate off
	! grep -q "^rc=0" "$BATS_TEST_TMPDIR/out"
	# The restarted agent ends CRIU's session and thaws the VE.
	restart_agents
	wait_for 30 running_on h1 101
	wait_for 60 nothing_of h2 101
	grep "VE 101: migration .* was not decided" "$VZ_SANDBOX_DIR/h1/var/log/vzagent.log"
	! ls "$VZ_SANDBOX_DIR"/h1/vz/migrate/*.outgoing 2>/dev/null
	passes_on h1
}

@test "a restore that fails on the destination resumes the VE on the source" {
	"$SB" link h1 rate 100mbit
	migrate_bg h1 --online h2 101
	# After the first file pass, the destination loses a program the VE
	# runs: the second pass sends only what changed at the source, so
	# CRIU cannot find it when it restores.
	wait_for 60 grep -q "^First file pass:" "$BATS_TEST_TMPDIR/out"
	rm "$VZ_SANDBOX_DIR/h2/vz/private/101/bin/wl-counter"
	wait_for 120 grep -q "^rc=" "$BATS_TEST_TMPDIR/out"
	"$SB" link h1 rate off
	cat "$BATS_TEST_TMPDIR/out"
	grep -q "^rc=3" "$BATS_TEST_TMPDIR/out"
	grep -q "Restore on the destination" "$BATS_TEST_TMPDIR/out"
	[ "$(grep -c '^vzmigrate:' "$BATS_TEST_TMPDIR/out")" -eq 1 ]
	running_on h1 101
	wait_for 30 nothing_of h2 101
	passes_on h1
}

@test "--postcopy resumes the VE on the destination at once and fetches its memory after" {
	run on h1 vzmigrate --online --postcopy --verify-memory h2 101
	[ "$status" -eq 20 ]
	[ "$(wc -l <<<"$output")" -eq 1 ]
	start_probe probe3 198.18.1.1
	run on h1 vzmigrate --online --postcopy --times h2 101
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"depends on this host until the last page has arrived"* ]]
	[[ "$output" == *"memory: post-copy: fetched by"* ]]
	[[ "$output" != *"Memory round"* ]]
	grep -q "VE 101: post-copy: [1-9][0-9]* pages pushed to" "$VZ_SANDBOX_DIR/h1/var/log/vzagent.log"
	grep -q "VE 101: every page in place" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	running_on h2 101
	nothing_of h1 101
	passes_on h2
	[ "$(probe_field probe3 state)" = ok ]
	[ "$(probe_field probe3 errors)" -eq 0 ]
}

@test "a link cut during the first file pass or the memory rounds leaves the VE running on the source" {
	for phase in "Syncing the private area" "Memory round 0"; do
		"$SB" link h1 rate 40mbit
		migrate_bg h2 --online h1 101
		wait_for 60 grep -q "^$phase" "$BATS_TEST_TMPDIR/out"
		"$SB" link h1 down
		wait_for 60 grep -q "^rc=" "$BATS_TEST_TMPDIR/out"
		"$SB" link h1 up
		"$SB" link h1 rate off
		echo "# cut during: $phase" >&3
		! grep -q "^rc=0" "$BATS_TEST_TMPDIR/out"
		! grep -q "^Suspending" "$BATS_TEST_TMPDIR/out"
		running_on h2 101
		wait_for 30 nothing_of h1 101
		passes_on h2
	done
}

# The VE's CPU quota on host $1 (v1 cfs quota in µs, -1 for none).
cpu_quota() {
	cat "/sys/fs/cgroup/cpu/$VZ_SANDBOX-$1/$2/cpu.cfs_quota_us"
}

@test "--auto-converge caps the CPU of a VE that writes faster than the link until it converges, and lifts the cap" {
	# wl-mem-fast (from the test above) rewrites 32 MiB at 80 MiB/s; the
	# link carries 25 MB/s. The VE's own limit: one and a half CPUs.
	on h2 vzctl set 101 --cpulimit 150 --save >/dev/null
	[ "$(cpu_quota h2 101)" -eq 150000 ]
	"$SB" link h2 rate 200mbit
	# A move that fails while the cap holds ends the cap.
	migrate_bg h2 --online --auto-converge h1 101
	wait_for 60 grep -q "^Auto-converge:" "$BATS_TEST_TMPDIR/out"
	capped=$(cpu_quota h2 101)
	echo "# capped: quota $capped us per period of $(cat "/sys/fs/cgroup/cpu/$VZ_SANDBOX-h2/101/cpu.cfs_period_us")" >&3
	[ "$capped" -lt 150000 ]
	[ -e "$VZ_SANDBOX_DIR/h2/vz/migrate/101.capped" ]
	"$SB" link h2 down
	wait_for 60 grep -q "^rc=" "$BATS_TEST_TMPDIR/out"
	"$SB" link h2 up
	! grep -q "^rc=0" "$BATS_TEST_TMPDIR/out"
	running_on h2 101
	[ "$(cpu_quota h2 101)" -eq 150000 ]
	[ "$(cat "/sys/fs/cgroup/cpu/$VZ_SANDBOX-h2/101/cpu.cfs_period_us")" -eq 100000 ]
	[ ! -e "$VZ_SANDBOX_DIR/h2/vz/migrate/101.capped" ]
	wait_for 30 nothing_of h1 101
	# Without the cap the same VE does not converge in 10 rounds (the
	# test above); with it, it does, and moves byte for byte.
	run on h2 vzmigrate --online --auto-converge --verify-memory h1 101
	"$SB" link h2 rate off
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Pre-copy converged"*"auto-converge capped the VE at"* ]]
	[[ "$output" == *"(CPU capped at "* ]]
	grep -q "VE 101: memory verified" "$VZ_SANDBOX_DIR/h1/var/log/vzagent.log"
	running_on h1 101
	nothing_of h2 101
	[ "$(cpu_quota h1 101)" -eq 150000 ]
	passes_on h1
	passes_on h1 wl-mem-fast
}

@test "--auto-converge with --postcopy or --stop-copy is refused" {
	for other in --postcopy --stop-copy; do
		run on h1 vzmigrate --online --auto-converge $other h2 101
		echo "$output"
		[ "$status" -eq 20 ]
		[ "${#lines[@]}" -eq 1 ]
		[[ "$output" == *"--auto-converge"*"$other"* ]]
	done
	run on h1 vzmigrate --auto-converge h2 101
	[ "$status" -eq 20 ]
	running_on h1 101
}

@test "a link cut during post-copy, after the go: the destination waits for the source and gets every page" {
	# VE 101 holds about 140 MiB; at 40 Mbit/s its pages take half a
	# minute to follow it, and the cut outlasts MIGRATE_TIMEOUT (5 s), so
	# both ends see their streams fail.
	"$SB" link h1 rate 40mbit
	migrate_bg h1 --online --postcopy h2 101
	wait_for 60 grep -q "runs on h2 now" "$BATS_TEST_TMPDIR/out"
	sleep 1
	"$SB" link h1 down
	sleep 8
	"$SB" link h1 up
	wait_for 180 grep -q "^rc=" "$BATS_TEST_TMPDIR/out"
	"$SB" link h1 rate off
	grep -q "^rc=0" "$BATS_TEST_TMPDIR/out"
	log="$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	grep -E "VE 101: post-copy: (lost the source|the push from the source broke)" "$log" | tail -2
	grep -qE "VE 101: post-copy: (lost the source|the push from the source broke)" "$log"
	grep "VE 101: every page in place" "$log" | tail -1
	! grep -q "VE 101: its memory cannot be brought in full" "$log"
	running_on h2 101
	wait_for 30 nothing_of h1 101
	passes_on h2
	passes_on h2 wl-mem-mt wl-mem-fast
}

@test "a source agent killed during post-copy, after the go: the VE still gets every page" {
	local log1="$VZ_SANDBOX_DIR/h1/var/log/vzagent.log" n0 lost0
	n0=$(grep -c "VE 101: every page in place" "$log1" || true)
	lost0=$(grep -c "VE 101: its memory cannot be brought in full" "$log1" || true)
	"$SB" link h2 rate 40mbit
	migrate_bg h2 --online --postcopy h1 101
	wait_for 60 grep -q "runs on h1 now" "$BATS_TEST_TMPDIR/out"
	sleep 1
	# The agent and its workers (the migration's and those serving pages)
	# die; CRIU and the frozen source copy stay, and so must the copy.
	kill_agent h2
	restart_agents h2
	wait_for 180 bash -c "[ \$(grep -c 'VE 101: every page in place' $log1) -gt $n0 ]"
	"$SB" link h2 rate off
	grep "VE 101: migration [0-9a-f]* is in post-copy: the frozen source copy stays" \
		"$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	[ "$(grep -c "VE 101: its memory cannot be brought in full" "$log1" || true)" -eq "$lost0" ]
	running_on h1 101
	wait_for 60 nothing_of h2 101
	passes_on h1
	passes_on h1 wl-mem-mt wl-mem-fast
}
