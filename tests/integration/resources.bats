#!/usr/bin/env bats
# Resource management, measured: CPU shares and caps, memory and process
# limits with their beancounters, disk quota, limits changed on a running
# VE, and bad values refused. Each measurement prints its number.

load helpers
bats_require_minimum_version 1.5.0

setup_file() {
	vz_setup
}

teardown_file() {
	vz_teardown
}

# Run `secs` seconds of measurement of the CPU time of the given VEs;
# prints "veid:cpu_fraction" for each.
measure_cpu() {
	local secs=$1
	shift
	local -A cpu0
	local v t0 t1
	for v in "$@"; do cpu0[$v]=$(vz_cpu_ns "$v"); done
	t0=$(date +%s%N)
	sleep "$secs"
	t1=$(date +%s%N)
	for v in "$@"; do
		echo "$v:$(python3 -c "print(($(vz_cpu_ns "$v") - ${cpu0[$v]}) / ($t1 - $t0))")"
	done
}

burn() { # VEID N: N busy loops inside the VE
	vzctl exec "$1" "i=0; while [ \$i -lt $2 ]; do (while :; do :; done) & i=\$((i+1)); done" >/dev/null
}

@test "two CPU-bound VEs pinned to one CPU with cpuunits 1000 and 3000 share it about 1:3" {
	vzctl create 401 --ostemplate busybox --cpuunits 1000 --cpumask 0
	vzctl create 402 --ostemplate busybox --cpuunits 3000 --cpumask 0
	vzctl start 401
	vzctl start 402
	burn 401 1
	burn 402 1
	sleep 0.5
	out=$(measure_cpu 4 401 402)
	a=$(sed -n 's/^401://p' <<<"$out")
	b=$(sed -n 's/^402://p' <<<"$out")
	ratio=$(python3 -c "print($b / $a)")
	echo "# cpu 401=$a 402=$b ratio=$ratio (want 3, tolerance 2.3..3.9)" >&3
	python3 -c "assert 2.3 <= $ratio <= 3.9 and 0.85 <= $a + $b <= 1.05, ($a, $b)"
	vzctl stop 401 --fast
	vzctl stop 402 --fast
}

@test "a VE with --cpulimit 25 uses at most about a quarter of a CPU" {
	vzctl set 401 --cpulimit 25 --cpumask all --save
	vzctl start 401
	burn 401 2
	sleep 0.5
	use=$(measure_cpu 4 401 | sed 's/^401://')
	echo "# cpu used with --cpulimit 25: $use of one CPU (want <= 0.28)" >&3
	python3 -c "assert 0.18 <= $use <= 0.28, $use"
	# Raised on the running VE, the cap follows at once.
	vzctl set 401 --cpulimit 100
	use=$(measure_cpu 2 401 | sed 's/^401://')
	echo "# cpu used after --cpulimit 100: $use (want 0.85..1.05)" >&3
	python3 -c "assert 0.85 <= $use <= 1.05, $use"
	vzctl stop 401 --fast
}

@test "a VE that allocates past --ram has its failcnt rise and its process killed, the host and a neighbour keep running" {
	vzctl set 401 --ram 64M --swap 0 --save
	vzctl start 401
	vzctl start 402
	wl_put - 401 memhog
	run vzctl exec 401 'memhog 256; echo "exit $?"'
	echo "# memhog 256 MiB under --ram 64M: ${lines[-1]}" >&3
	[ "${lines[-1]}" = "exit 137" ]
	# Killed inside the VE, by the OOM killer of its own cgroup.
	# With --swap 0 the limit hit is RAM plus swap: physpages or swappages.
	oom=$(vzlist -H -o oomguarpages.f 401 | tr -d ' ')
	phys=$(vzlist -H -o physpages.f 401 | tr -d ' ')
	swap=$(vzlist -H -o swappages.f 401 | tr -d ' ')
	echo "# oomguarpages.f=$oom physpages.f=$phys swappages.f=$swap" >&3
	[ "$oom" -ge 1 ]
	[ $((phys + swap)) -ge 1 ]
	run vzctl exec 401 'memhog 16; echo "exit $?"'
	[ "${lines[-1]}" = "exit 0" ]
	run vzctl exec 402 'echo neighbour-ok'
	[ "$output" = "neighbour-ok" ]
	kill -0 "$(cat "$VZ_ROOT/agent.pid")"
}

@test "a fork bomb inside a VE with --numproc 64 stops at 64 processes and raises numproc's failcnt" {
	vzctl set 401 --numproc 64
	vzctl exec 401 'i=0; while [ $i -lt 200 ]; do sleep 1000 & i=$((i+1)); done 2>/dev/null; exit 0' || true
	held=$(vzlist -H -o numproc 401 | tr -d ' ')
	maxheld=$(vzlist -H -o numproc.m 401 | tr -d ' ')
	failcnt=$(vzlist -H -o numproc.f 401 | tr -d ' ')
	echo "# fork bomb under --numproc 64: numproc held=$held maxheld=$maxheld failcnt=$failcnt" >&3
	# The bomb's own shell has exited by now: held is 64 less it.
	[ "$maxheld" -eq 64 ]
	[ "$held" -le 64 ]
	[ "$held" -ge 60 ]
	[ "$failcnt" -ge 1 ]
	run vzctl ubc 401
	[[ "$output" =~ numproc\ +[0-9]+\ +64\ +64\ +64\ +[1-9] ]]
	vzctl set 401 --numproc 200
	vzctl exec 401 'killall sleep'
	wait_for 10 bash -c '[ "$(vzlist -H -o numproc 401)" -le 2 ]'
	run vzctl exec 402 'echo neighbour-ok'
	[ "$output" = "neighbour-ok" ]
}

@test "limits raised and lowered on a running VE take effect within a second" {
	t0=$(date +%s%N)
	vzctl set 401 --numproc 5
	run vzctl exec 401 'for i in 1 2 3 4 5 6; do sleep 100 >/dev/null 2>&1 & done 2>&1; true'
	t1=$(date +%s%N)
	echo "# --numproc 5 enforced $(( (t1 - t0) / 1000000 )) ms after vzctl set began: $output" >&3
	[[ "$output" == *"an't fork"* ]]
	[ $(( (t1 - t0) / 1000000 )) -lt 1000 ]
	t0=$(date +%s%N)
	vzctl set 401 --numproc 100 --ram 128M
	run vzctl exec 401 'killall sleep; for i in 1 2 3 4 5 6; do sleep 100 >/dev/null 2>&1 & done 2>&1; killall sleep; memhog 96 >/dev/null; echo "exit $?"'
	t1=$(date +%s%N)
	echo "# --numproc 100 --ram 128M in effect $(( (t1 - t0) / 1000000 )) ms after vzctl set began" >&3
	[[ "$output" != *"an't fork"* ]]
	[ "${lines[-1]}" = "exit 0" ]
	[ $(( (t1 - t0) / 1000000 )) -lt 1000 ]
}

@test "a VE that writes past --diskspace gets ENOSPC; raising it on the running VE lets the write through" {
	vzctl create 403 --ostemplate busybox --diskspace 300M
	vzctl start 403
	host_before=$(df -k --output=used "$VZ_ROOT" | tail -n 1)
	run vzctl exec 403 'dd if=/dev/urandom of=/big bs=1M count=400 conv=fsync 2>&1'
	echo "# 400 MiB into --diskspace 300M: $(grep -o 'No space left on device' <<<"$output" | head -n 1)" >&3
	[ "$status" -ne 0 ]
	[[ "$output" == *"No space left on device"* ]]
	# The VE wrote into its own image only.
	[ "$(stat -c %s "$VZ_ROOT/vz/private/403/root.hdd")" -eq $((300 * 1024 * 1024)) ]
	host_after=$(df -k --output=used "$VZ_ROOT" | tail -n 1)
	echo "# host file system grew by $(( (host_after - host_before) / 1024 )) MiB" >&3
	[ $((host_after - host_before)) -le $((310 * 1024)) ]
	vzctl set 403 --diskspace 700M --save
	run vzctl exec 403 'rm -f /big; dd if=/dev/urandom of=/big bs=1M count=400 conv=fsync 2>&1'
	[ "$status" -eq 0 ]
	[ "$(vzlist -H -o diskspace.h 403 | tr -d ' ')" -eq $((700 * 1024)) ]
	grep -q '^DISKSPACE="716800:716800"' "$VZ_ROOT/etc/vz/conf/403.conf"
}

@test "a disk smaller than the VE's files is refused and changes nothing; once they fit it shrinks online" {
	before=$(cat "$VZ_ROOT/etc/vz/conf/403.conf")
	run --separate-stderr vzctl set 403 --diskspace 300M --save
	[ "$status" -eq 46 ]
	[ "$stderr" = "vzctl: Cannot shrink the disk of VE 403 to 300 MiB: its files do not fit" ]
	[ "$(cat "$VZ_ROOT/etc/vz/conf/403.conf")" = "$before" ]
	[ "$(stat -c %s "$VZ_ROOT/vz/private/403/root.hdd")" -eq $((700 * 1024 * 1024)) ]
	vzctl exec 403 'rm /big; sync'
	run vzctl set 403 --diskspace 300M --save
	[ "$status" -eq 0 ]
	[ "$(stat -c %s "$VZ_ROOT/vz/private/403/root.hdd")" -eq $((300 * 1024 * 1024)) ]
	vzctl exec 403 'dd if=/dev/zero of=/small bs=1M count=50 conv=fsync'
}

@test "bad values give one clear line and change nothing" {
	conf="$VZ_ROOT/etc/vz/conf/401.conf"
	before=$(cat "$conf")
	limit_before=$(vzlist -H -o physpages.l 401)
	for args in "--ram banana" "--cpulimit -5" "--cpulimit 1000" "--cpuunits 3" "--numproc 0" \
		"--cpumask 7-9" "--swap lots" "--physpages 10:5" "--diskspace 1M"; do
		# shellcheck disable=SC2086 # $args is several words
		run --separate-stderr vzctl set 401 $args --save
		echo "# vzctl set $args -> $status: $stderr" >&3
		[ "$status" -eq 21 ]
		[ "${#stderr_lines[@]}" -eq 1 ]
		[[ "$stderr" == "vzctl: Invalid value"* ]]
	done
	# A good option beside a bad one is not applied either.
	run vzctl set 401 --numproc 7 --ram banana --save
	[ "$status" -eq 21 ]
	[ "$(cat "$conf")" = "$before" ]
	[ "$(vzlist -H -o physpages.l 401)" = "$limit_before" ]
	[ "$(vzlist -H -o numproc.l 401 | tr -d ' ')" = 100 ]
	run --separate-stderr vzctl set 401 --quotaugidlimit 100
	[ "$status" -eq 21 ]
	[[ "$stderr" == *"Second-level quota is not available"* ]]
}
