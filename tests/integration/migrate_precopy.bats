#!/usr/bin/env bats
# Online migration with pre-copy (issue 6) between two hosts of a sandbox:
# memory goes ahead in rounds while the VE runs and the destination
# restores lazily from its own copy; the workloads' self-checks and a TCP
# client outside the VE across the move; --verify-memory (both agents hash
# every writable private mapping, rseq areas left out, and refuse the go
# on a difference); memory only the kernel writes (read() into pages the
# tracker protected); a VE that writes faster than the link; --stop-copy
# and bad settings. Each test makes its own VE and leaves nothing.

load helpers

setup_file() {
	sb_setup vzmp
}

teardown_file() {
	sb_teardown
}

teardown() {
	stop_probe probe1
	sb_test_teardown
}

@test "vzmigrate --online keeps the workloads and the TCP client's connection" {
	sb_ve h1 101 198.18.1.1
	start_probe probe1 198.18.1.1
	run on h1 vzmigrate --online --times h2 101
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Total time suspended"* ]]
	agent_ms=$(sed -n 's/.*total suspended *\([0-9]*\) ms.*/\1/p' <<<"$output")
	running_on h2 101
	nothing_of h1 101
	passes_on h2 101
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

@test "pre-copy moves memory written by many threads, new mappings and new processes byte for byte" {
	sb_ve h2 102 198.18.1.2
	wl_run h2 102 'wl-mem -m 32 -r 8 -t 4 -n mt'
	# Maps memory every 20 ms and forks every 100 ms, so some of each
	# happens during the rounds and after the last. The digests leave each
	# thread's rseq area out (the kernel writes the CPU there), as read
	# just before the freeze; a child forked in that instant makes the
	# agent thaw and read them again.
	wl_run h2 102 wl-churn
	run on h2 vzmigrate --online --verify-memory h1 102
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Memory round 0:"* ]]
	[[ "$output" == *"uffd-wp tracker"* ]]
	[[ "$output" == *"Pre-copy converged"* ]]
	grep -q "VE 102: memory verified: [1-9][0-9]* mappings identical" "$VZ_SANDBOX_DIR/h1/var/log/vzagent.log"
	running_on h1 102
	nothing_of h2 102
	passes_on h1 102
	passes_on h1 102 wl-mem-mt wl-churn
}

@test "pre-copy tracks memory the kernel writes: read() into write-protected pages succeeds and arrives intact" {
	on h1 vzctl create 105 --ostemplate busybox >/dev/null
	# In a user namespace (the default): the tracker's userfaultfd is
	# user-mode only, and the destination's lazy restore holds
	# vm.unprivileged_userfaultfd at 1 while it runs.
	on h1 vzctl start 105 >/dev/null
	wl_put h1 105 wl-readinto
	# 32 MiB that only read() writes (from a file and from a pipe), 8 MiB
	# of it a second.
	wl_run h1 105 'wl-readinto -m 32 -r 8'
	passes_on h1 105 wl-readinto
	log="$VZ_SANDBOX_DIR/h1/var/log/vzagent.log"
	untracked=$(grep -c "is not tracked" "$log" || true)
	# What read() writes while the first round runs (~250 pages) takes
	# longer than 1 ms to send: there is a second round, and it sends the
	# pages that only read() wrote since the first protected them.
	run on h1 vzmigrate --online --verify-memory --downtime-ms 1 h2 105
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"uffd-wp tracker"* ]]
	[ "$(sed -n 's/^Memory round 1: \([0-9]*\) pages.*/\1/p' <<<"$output")" -gt 0 ]
	# Each process of the VE had its (user-mode-only) userfaultfd.
	[ "$(grep -c "is not tracked" "$log" || true)" -eq "$untracked" ]
	grep -q "VE 105: memory verified: [1-9][0-9]* mappings identical" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	grep -q "Put vm.unprivileged_userfaultfd back to [0-9]* after the lazy restore of VE 105: held" \
		"$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	running_on h2 105
	nothing_of h1 105
	passes_on h2 105 wl-readinto
}

@test "a VE writing faster than the link does not converge, and still moves correctly" {
	sb_ve h1 103 198.18.1.3
	wl_run h1 103 'wl-mem -m 32 -r 80 -t 2 -n fast'
	"$SB" link h1 rate 200mbit
	run on h1 vzmigrate --online --verify-memory --max-rounds 4 h2 103
	"$SB" link h1 rate off
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"did not converge"* ]]
	[ "$(grep -c '^Memory round [0-9]*:' <<<"$output")" -le 4 ]
	# Verified, and something was compared: "0 mappings identical" proves nothing.
	grep -q "VE 103: memory verified: [1-9][0-9]* mappings identical" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	running_on h2 103
	nothing_of h1 103
	passes_on h2 103
	passes_on h2 103 wl-mem-fast
}

@test "the destination prepares the restore while the VE still runs at the source, and will not start it meanwhile" {
	sb_ve h1 106 198.18.1.6
	wl_run h1 106 'wl-mem -m 64 -r 2 -t 1 -n slow'
	"$SB" link h1 rate 40mbit
	migrate_bg h1 --online h2 106
	wait_for 60 grep -q "^Memory round 0" "$BATS_TEST_TMPDIR/out"
	# Before the freeze: the root mounted, the cgroup and the bridge
	# filter made, the time it took logged.
	grep -q "VE 106: prepared the restore in [0-9.]* ms" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	grep -q " $VZ_SANDBOX_DIR/h2/vz/root/106 " /proc/self/mountinfo
	[ -d "/sys/fs/cgroup/pids/$VZ_SANDBOX-h2/106" ]
	on h2 nft list table bridge vz_ve_106 >/dev/null
	run ! grep -q "^Suspending" "$BATS_TEST_TMPDIR/out"
	running_on h1 106
	# Its config is there too, but the VE is the move's: a start is refused.
	run on h2 vzctl start 106
	echo "$output"
	[ "$status" -eq 9 ]
	# At full speed the rounds catch up with the writer.
	"$SB" link h1 rate off
	migrate_wait 120
	cat "$BATS_TEST_TMPDIR/out"
	migrate_rc 0
	running_on h2 106
	nothing_of h1 106
	passes_on h2 106
	passes_on h2 106 wl-mem-slow
}

@test "--stop-copy, verified too, and bad pre-copy settings" {
	sb_ve h2 104 198.18.1.4
	run on h2 vzmigrate --online --max-rounds 0 h1 104
	[ "$status" -eq 20 ]
	[[ "$output" == *"--max-rounds takes a number from 1 to 64"* ]]
	run on h2 vzmigrate --online --downtime-ms -5 h1 104
	[ "$status" -eq 20 ]
	[ "$(wc -l <<<"$output")" -eq 1 ]
	# An offline move carries no memory to verify.
	run on h2 vzmigrate --verify-memory h1 104
	[ "$status" -eq 20 ]
	[[ "$output" == *"--verify-memory compares the memory of a live move"* ]]
	running_on h2 104
	# Stop-and-copy's memory is in the images: --verify-memory compares it
	# all the same (it used to send no digests and verify nothing).
	run on h2 vzmigrate --online --stop-copy --verify-memory h1 104
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"memory: stop-and-copy (--stop-copy)"* ]]
	[[ "$output" != *"Memory round"* ]]
	grep -q "VE 104: memory verified: [1-9][0-9]* mappings identical" "$VZ_SANDBOX_DIR/h1/var/log/vzagent.log"
	running_on h1 104
	nothing_of h2 104
	passes_on h1 104
}
