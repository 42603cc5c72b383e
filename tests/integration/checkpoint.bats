#!/usr/bin/env bats
# Checkpoint and restore on one host: vzctl chkpnt/restore and
# suspend/resume of a VE running self-checking workloads and an
# established TCP connection to a client outside it; dump files that are
# truncated, corrupted, foreign or made by a newer CRIU are refused before
# anything is made; failures leave the VE as it was.

load helpers

WORKLOADS="wl-mem wl-counter wl-pipe wl-unix wl-file wl-threads wl-tcpecho"

setup_file() {
	vz_setup
	vzctl create 101 --ostemplate busybox --ipadd 198.18.20.1 --hostname ck101 >/dev/null
	vzctl create 102 --ostemplate busybox --ipadd 198.18.20.2 >/dev/null
	vzctl start 101 >/dev/null
	# The client outside the VE talks to it from the agent's host.
	vz_ns ip addr add 198.18.20.254/24 dev vzbr0
	# shellcheck disable=SC2086 # a list of names
	wl_put - 101 $WORKLOADS
	vzctl exec 101 /bin/wl-mem -m 64 >/dev/null
	vzctl exec 101 /bin/wl-counter >/dev/null
	vzctl exec 101 /bin/wl-pipe >/dev/null
	vzctl exec 101 /bin/wl-unix >/dev/null
	vzctl exec 101 /bin/wl-file >/dev/null
	vzctl exec 101 /bin/wl-threads -t 8 >/dev/null
	vzctl exec 101 /bin/wl-tcpecho -p 7000 >/dev/null
	# nsenter execs the probe: $! is the probe's own pid. It must not hold
	# bats' descriptors, or bats waits for it.
	nsenter --net="/run/netns/$VZ_NETNS" "$VZ_TOP/build/tests/workloads/tcpprobe" \
		-o "$VZ_ROOT/probe.status" 198.18.20.1 7000 </dev/null >/dev/null 2>&1 3>&- &
	echo $! >"$VZ_ROOT/probe.pid"
}

teardown_file() {
	local p
	p=$(cat "$VZ_ROOT/probe.pid" 2>/dev/null) && kill -TERM "$p" 2>/dev/null
	vz_teardown
}

# Every workload of VE $1 passes its self-check.
all_pass() {
	# shellcheck disable=SC2086 # a list of names
	wl_all_pass - "$1" $WORKLOADS
}

# The probe's state line: "sent=N received=N maxgap_us=N errors=N state=S".
ck_probe_field() {
	local p
	p=$(cat "$VZ_ROOT/probe.pid")
	rm -f "$VZ_ROOT/probe.status"
	kill -USR1 "$p"
	wait_for 5 test -s "$VZ_ROOT/probe.status" || return 1
	sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" "$VZ_ROOT/probe.status"
}

nothing_left_of() {
	[ ! -e "$VZ_ROOT/run/vz/$1.pid" ] || { echo "pid file left"; return 1; }
	[ ! -d "$(vz_cgroup_dir "$1")" ] || { echo "cgroup left"; return 1; }
	! grep -q " $VZ_ROOT/vz/root/$1 " /proc/self/mountinfo || { echo "mount left"; return 1; }
	! vz_ns ip link show "veth$1.0" >/dev/null 2>&1 || { echo "veth left"; return 1; }
	local d
	for d in "$VZ_ROOT"/vz/dump/"$1".*; do
		[ ! -e "$d" ] || [[ "$d" == *.log ]] || { echo "image dir left"; return 1; }
	done
}

@test "vzctl chkpnt --check says in plain words what this host can do" {
	run vzctl chkpnt --check
	echo "$output"
	# Each line is a verdict on one named feature.
	for f in "CRIU" "Kernel support for checkpoints" "Cgroup freezer" "Established TCP connections" \
		"soft-dirty" "userfaultfd write-protect" "Lazy pages"; do
		grep -E "^(yes|no|warn) +.*$f" <<<"$output"
	done
	# Its soft-dirty verdict agrees with CRIU's own probe of the kernel.
	criu=$(cat /etc/vz/criu.path)
	if "$criu" check --feature mem_dirty_track >/dev/null 2>&1; then
		grep -E '^yes .*soft-dirty' <<<"$output"
	else
		grep -E '^no .*soft-dirty.*CONFIG_MEM_SOFT_DIRTY' <<<"$output"
	fi
	if [ "$status" -eq 0 ]; then
		[[ "$output" == *"This host can checkpoint and restore VEs"* ]]
	else
		[ "$status" -eq 16 ]
		[[ "$output" == *"cannot checkpoint"* ]]
	fi
}

@test "every workload passes its self-check before the checkpoint" {
	run all_pass 101
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(ck_probe_field state)" = ok ]
	[ "$(ck_probe_field received)" -gt 100 ]
}

@test "vzctl chkpnt stops the VE and writes one dump file" {
	vzctl exec 101 'kill -USR2 $(cat /run/wl-mem.pid)'
	wait_for 10 vzctl exec 101 test -s /run/wl-mem.digest
	vzctl exec 101 cat /run/wl-mem.digest >"$VZ_ROOT/digest.before"
	vzctl exec 101 'ip link show eth0; ip addr show eth0' | grep -E 'ether|inet ' >"$VZ_ROOT/net.before"
	vzctl exec 101 'ps -o pid,comm' >"$VZ_ROOT/ps.before"
	t0=$(date +%s%N)
	run vzctl chkpnt 101 --dumpfile "$VZ_ROOT/ck101.dump"
	echo "$output"
	echo "# chkpnt took $((($(date +%s%N) - t0) / 1000000)) ms" >&3
	[ "$status" -eq 0 ]
	[[ "$output" == *"Checkpointing completed successfully"* ]]
	[ -s "$VZ_ROOT/ck101.dump" ]
	echo "# dump file: $(stat -c %s "$VZ_ROOT/ck101.dump") bytes" >&3
	run vzctl status 101
	[ "$output" = "VEID 101 exist unmounted down" ]
	nothing_left_of 101
	# The header names the VE, CRIU's version and the kernel.
	head -c 256 "$VZ_ROOT/ck101.dump" | grep -a -q "$(uname -r)"
	head -c 8 "$VZ_ROOT/ck101.dump" | grep -a -q VZDUMP
	# CRIU's log of the run is kept beside the images.
	grep -q "Dumping finished successfully" "$VZ_ROOT/vz/dump/101.dump.log"
	# The client outside still holds its connection (no reset while down).
	[ "$(ck_probe_field state)" = ok ]
}

@test "restore refuses a truncated dump file and makes nothing" {
	head -c 5000 "$VZ_ROOT/ck101.dump" >"$VZ_ROOT/trunc.dump"
	run vzctl restore 101 --dumpfile "$VZ_ROOT/trunc.dump"
	echo "$output"
	[ "$status" -eq 17 ]
	[[ "${lines[-1]}" == *"truncated"* ]]
	[ "$(grep -c 'vzctl:' <<<"$output")" -eq 1 ]
	nothing_left_of 101
}

@test "restore refuses a dump file with a bad checksum and makes nothing" {
	cp "$VZ_ROOT/ck101.dump" "$VZ_ROOT/bad.dump"
	size=$(stat -c %s "$VZ_ROOT/bad.dump")
	# Flip one byte in the middle of the compressed images.
	printf '\x5a' | dd of="$VZ_ROOT/bad.dump" bs=1 seek=$((size / 2)) conv=notrunc status=none
	cmp -s "$VZ_ROOT/ck101.dump" "$VZ_ROOT/bad.dump" && printf '\xa5' |
		dd of="$VZ_ROOT/bad.dump" bs=1 seek=$((size / 2)) conv=notrunc status=none
	run vzctl restore 101 --dumpfile "$VZ_ROOT/bad.dump"
	echo "$output"
	[ "$status" -eq 17 ]
	[[ "$output" == *"checksum does not match"* ]]
	nothing_left_of 101
	# Garbage is not a dump file at all.
	head -c 4096 /dev/urandom >"$VZ_ROOT/junk.dump"
	run vzctl restore 101 --dumpfile "$VZ_ROOT/junk.dump"
	[ "$status" -eq 17 ]
	[[ "$output" == *"Not a vzcluster dump file"* ]]
	nothing_left_of 101
}

@test "restore refuses a dump of another VE" {
	run vzctl restore 102 --dumpfile "$VZ_ROOT/ck101.dump"
	echo "$output"
	[ "$status" -eq 17 ]
	[[ "$output" == *"holds VE 101, not VE 102"* ]]
	nothing_left_of 102
	run vzctl status 102
	[ "$output" = "VEID 102 exist unmounted down" ]
}

@test "restore refuses a dump made by a newer CRIU, even with a valid checksum" {
	python3 "$BATS_TEST_DIRNAME/dumphdr.py" "$VZ_ROOT/ck101.dump" "$VZ_ROOT/newer.dump" criu_version 99.1.0
	run vzctl restore 101 --dumpfile "$VZ_ROOT/newer.dump"
	echo "$output"
	[ "$status" -eq 17 ]
	[[ "$output" == *"made by CRIU 99.1.0, newer than this host's"* ]]
	nothing_left_of 101
}

@test "a restore CRIU cannot finish leaves nothing behind and keeps the dump" {
	# Take away a file a workload holds open: CRIU cannot reopen it.
	vzctl mount 101 >/dev/null
	mv "$VZ_ROOT/vz/root/101/run/wl-file.dat" "$VZ_ROOT/wl-file.dat.aside" ||
		mv "$VZ_ROOT/vz/private/101/run/wl-file.dat" "$VZ_ROOT/wl-file.dat.aside"
	vzctl umount 101 >/dev/null
	run vzctl restore 101 --dumpfile "$VZ_ROOT/ck101.dump"
	echo "$output"
	[ "$status" -eq 17 ]
	[[ "$output" == *"Restoring failed"* ]]
	nothing_left_of 101
	[ -z "$(cat "$(dirname "$(vz_cgroup_dir 101)")"/cgroup.procs 2>/dev/null)" ]
	[ -s "$VZ_ROOT/ck101.dump" ]
	vzctl mount 101 >/dev/null
	mv "$VZ_ROOT/wl-file.dat.aside" "$VZ_ROOT/vz/root/101/run/wl-file.dat"
	vzctl umount 101 >/dev/null
}

@test "vzctl restore brings the VE back where it was: every workload passes" {
	t0=$(date +%s%N)
	run vzctl restore 101 --dumpfile "$VZ_ROOT/ck101.dump"
	echo "$output"
	echo "# restore took $((($(date +%s%N) - t0) / 1000000)) ms" >&3
	[ "$status" -eq 0 ]
	run vzctl status 101
	[ "$output" = "VEID 101 exist mounted running" ]
	run all_pass 101
	echo "$output"
	[ "$status" -eq 0 ]
	# Same processes with the same pids, same memory, same IP and MAC.
	[ "$(vzctl exec 101 'ps -o pid,comm' | grep -v ' ps$')" = "$(grep -v ' ps$' "$VZ_ROOT/ps.before")" ]
	vzctl exec 101 'kill -USR2 $(cat /run/wl-mem.pid)'
	sleep 0.5
	[ "$(vzctl exec 101 cat /run/wl-mem.digest)" = "$(cat "$VZ_ROOT/digest.before")" ]
	[ "$(vzctl exec 101 'ip link show eth0; ip addr show eth0' | grep -E 'ether|inet ')" = \
		"$(cat "$VZ_ROOT/net.before")" ]
	# A user-named dump file stays; the agent adopted the restored init.
	[ -s "$VZ_ROOT/ck101.dump" ]
	wait_for 5 grep -q "VE 101: running, init pid $(vz_init_pid 101)" "$VZ_ROOT/var/log/vzagent.log"
}

@test "the TCP client outside saw no reset and its connection carries on" {
	before=$(ck_probe_field received)
	wait_for 10 bash -c "[ \$(sed -n 's/.*received=\([0-9]*\).*/\1/p' <(kill -USR1 $(cat "$VZ_ROOT/probe.pid"); sleep 0.2; cat '$VZ_ROOT/probe.status')) -gt $((before + 200)) ]"
	[ "$(ck_probe_field state)" = ok ]
	[ "$(ck_probe_field errors)" -eq 0 ]
	echo "# longest gap seen by the client: $(ck_probe_field maxgap_us) us" >&3
}

@test "restore refuses a VE that is already running" {
	run vzctl restore 101 --dumpfile "$VZ_ROOT/ck101.dump"
	[ "$status" -eq 32 ]
	[[ "$output" == *"already running"* ]]
	run all_pass 101
	[ "$status" -eq 0 ]
}

@test "a checkpoint that fails leaves the VE running as before" {
	init=$(vz_init_pid 101)
	# The dump file cannot be written: CRIU has frozen and dumped the VE
	# when that is found, and must resume it.
	run vzctl chkpnt 101 --dumpfile /nonexistent-dir/x.dump
	echo "$output"
	[ "$status" -eq 16 ]
	[[ "$output" == *"Checkpointing failed"* ]]
	[ "$(grep -c 'vzctl:' <<<"$output")" -eq 1 ]
	run vzctl status 101
	[ "$output" = "VEID 101 exist mounted running" ]
	[ "$(vz_init_pid 101)" = "$init" ]
	run all_pass 101
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(ck_probe_field state)" = ok ]
}

@test "vzctl suspend and resume go through the default dump location" {
	run vzctl suspend 101
	[ "$status" -eq 0 ]
	[ -s "$VZ_ROOT/vz/dump/Dump.101" ]
	run vzctl status 101
	[ "$output" = "VEID 101 exist unmounted down suspended" ]
	run vzlist -H -o veid,status 101
	[[ "$output" == *"suspended"* ]]
	run vzctl resume 101
	[ "$status" -eq 0 ]
	[ ! -e "$VZ_ROOT/vz/dump/Dump.101" ]
	run vzctl status 101
	[ "$output" = "VEID 101 exist mounted running" ]
	run all_pass 101
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(ck_probe_field state)" = ok ]
}

@test "chkpnt and restore of a VE that is not there or not running say so" {
	run vzctl chkpnt 102
	[ "$status" -eq 31 ]
	[[ "$output" == *"not running"* ]]
	run vzctl restore 102
	[ "$status" -eq 17 ]
	[[ "$output" == *"no dump file"* ]]
	run vzctl chkpnt 999
	[ "$status" -eq 14 ]
	run vzctl chkpnt 101 --bogus
	[ "$status" -eq 20 ]
	nothing_left_of 102
}
