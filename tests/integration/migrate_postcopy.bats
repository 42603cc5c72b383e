#!/usr/bin/env bats
# Online migration with post-copy between two hosts of a sandbox: the VE
# resumes on the destination at once and its memory follows; a link cut
# and a source agent killed after the go, while pages are still on their
# way, end with every page in place; a VE in a user namespace has the
# host's vm.unprivileged_userfaultfd at 1 for its lazy restore only, and
# an agent that ended holding it so has it put back at the next start.
# Each test makes its own VE and leaves nothing.

load helpers

setup_file() {
	sb_setup vzmc
}

teardown_file() {
	sb_teardown
}

UFFD_SYSCTL=/proc/sys/vm/unprivileged_userfaultfd
UFFD_ORIG=/run/vz/sysctl-unprivileged_userfaultfd.orig

teardown() {
	stop_probe probe3
	# A test that changed the host's sysctl by hand puts it back.
	if [ -f "$BATS_TEST_TMPDIR/uffd.was" ]; then
		cat "$BATS_TEST_TMPDIR/uffd.was" >"$UFFD_SYSCTL"
		rm -f "$UFFD_ORIG"
	fi
	[ -z "${UFFD_WATCH:-}" ] || kill "$UFFD_WATCH" 2>/dev/null || true
	sb_test_teardown
}

# The values the sysctl takes, each change on a line, into $1 (in the
# background; its pid in UFFD_WATCH).
uffd_watch() {
	(
		last=
		while :; do
			read -r v <"$UFFD_SYSCTL"
			[ "$v" = "$last" ] || echo "$v" >>"$1"
			last=$v
		done
	) 3>&- &
	UFFD_WATCH=$!
	wait_for 5 test -s "$1"
}

# A VE of about 140 MiB: at 40 Mbit/s its pages take half a minute to
# follow it.
big_ve() {
	sb_ve "$1" "$2" "$3"
	wl_run "$1" "$2" 'wl-mem -m 32 -r 8 -t 4 -n mt' 'wl-mem -m 32 -r 80 -t 2 -n fast'
}

@test "--postcopy resumes the VE on the destination at once and fetches its memory after" {
	sb_ve h1 101 198.18.1.1
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
	# The destination says so once the last page is stored, which may come
	# just after vzmigrate has returned.
	wait_for 30 grep -q "VE 101: every page in place" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	# In a user namespace (the default): the host's userfaultfd setting
	# was raised for the restore only (the test of VE 104 watches it).
	grep -q "vm.unprivileged_userfaultfd back to .* lazy restore of VE 101" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	running_on h2 101
	nothing_of h1 101
	passes_on h2 101
	[ "$(probe_field probe3 state)" = ok ]
	[ "$(probe_field probe3 errors)" -eq 0 ]
}

@test "a link cut during post-copy, after the go: the destination waits for the source and gets every page" {
	big_ve h1 102 198.18.1.2
	local log="$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	"$SB" link h1 rate 40mbit
	migrate_bg h1 --online --postcopy h2 102
	wait_for 60 grep -q "runs on h2 now" "$BATS_TEST_TMPDIR/out"
	# Pages are on their way when the link goes.
	wait_for 30 grep -q "VE 102: post-copy: serving migration" "$VZ_SANDBOX_DIR/h1/var/log/vzagent.log"
	"$SB" link h1 down
	# The cut lasts until the destination has seen its stream fail (after
	# MIGRATE_TIMEOUT, 5 s, of silence).
	wait_for 60 grep -qE "VE 102: post-copy: (lost the source|the push from the source broke)" "$log"
	"$SB" link h1 up
	migrate_wait 180
	"$SB" link h1 rate off
	migrate_rc 0
	grep -E "VE 102: post-copy: (lost the source|the push from the source broke)" "$log" | tail -2
	# The destination logs it once it has the last page, which may be just
	# after vzmigrate returns.
	wait_for 30 grep -q "VE 102: every page in place" "$log"
	run ! grep -q "VE 102: its memory cannot be brought in full" "$log"
	running_on h2 102
	wait_for 30 nothing_of h1 102
	passes_on h2 102
	passes_on h2 102 wl-mem-mt wl-mem-fast
}

@test "a source agent killed during post-copy, after the go: the VE still gets every page" {
	big_ve h2 103 198.18.1.3
	local log1="$VZ_SANDBOX_DIR/h1/var/log/vzagent.log"
	"$SB" link h2 rate 40mbit
	migrate_bg h2 --online --postcopy h1 103
	wait_for 60 grep -q "runs on h1 now" "$BATS_TEST_TMPDIR/out"
	wait_for 30 grep -q "VE 103: post-copy: serving migration" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	# The agent and its workers (the migration's and those serving pages)
	# die; CRIU and the frozen source copy stay, and so must the copy.
	kill_agent h2
	restart_agents h2
	wait_for 180 grep -q "VE 103: every page in place" "$log1"
	"$SB" link h2 rate off
	grep "VE 103: migration [0-9a-f]* is in post-copy: the frozen source copy stays" \
		"$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	run ! grep -q "VE 103: its memory cannot be brought in full" "$log1"
	running_on h1 103
	wait_for 60 nothing_of h2 103
	passes_on h1 103
	passes_on h1 103 wl-mem-mt wl-mem-fast
}

@test "a VE in the host's user namespace (--userns no) moves by post-copy with the host's userfaultfd setting untouched" {
	on h1 vzctl create 105 --ostemplate busybox >/dev/null
	on h1 vzctl set 105 --userns no --save >/dev/null
	on h1 vzctl start 105 >/dev/null
	wl_put h1 105 wl-counter
	wl_run h1 105 wl-counter
	run on h1 vzmigrate --online --postcopy h2 105
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"user namespace: the host's on both sides (--userns no)"* ]]
	wait_for 30 grep -q "VE 105: every page in place" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	run ! grep -q "vm.unprivileged_userfaultfd.* VE 105" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	running_on h2 105
	nothing_of h1 105
	passes_on h2 105 wl-counter
}

@test "a VE in a user namespace: vm.unprivileged_userfaultfd is 1 for its lazy restore only" {
	local was log="$VZ_SANDBOX_DIR/h2/var/log/vzagent.log" seen="$BATS_TEST_TMPDIR/seen"
	was=$(<"$UFFD_SYSCTL")
	[ "$was" = 0 ] || skip "vm.unprivileged_userfaultfd is $was on this host: there is nothing to raise"
	on h1 vzctl create 104 --ostemplate busybox >/dev/null
	on h1 vzctl start 104 >/dev/null
	# A VE made with the defaults has a user namespace of its own.
	[ "$(on h1 vzctl exec 104 'cat /proc/self/uid_map' | awk '{ print $2 }')" -ge 1000000 ]
	wl_put h1 104 wl-counter wl-readinto
	wl_run h1 104 wl-counter 'wl-readinto -m 16 -r 4'
	uffd_watch "$seen"
	run on h1 vzmigrate --online --postcopy h2 104
	echo "$output"
	[ "$status" -eq 0 ]
	wait_for 30 grep -q "VE 104: every page in place" "$log"
	kill "$UFFD_WATCH"
	UFFD_WATCH=
	grep "vm.unprivileged_userfaultfd" "$log"
	grep -q "Raised vm.unprivileged_userfaultfd to 1 for the lazy restore of VE 104 (it was 0)" "$log"
	grep -q "Put vm.unprivileged_userfaultfd back to 0 after the lazy restore of VE 104: held [0-9]* ms" "$log"
	echo "# vm.unprivileged_userfaultfd $(sed -n 's/.*lazy restore of VE 104: \(held [0-9]* ms\).*/\1/p' "$log")" >&3
	# It was seen at 1, and is 0 again with nothing left recorded.
	[ "$(tr '\n' ' ' <"$seen")" = "0 1 0 " ]
	[ "$(<"$UFFD_SYSCTL")" = 0 ]
	[ ! -e "$UFFD_ORIG" ]
	running_on h2 104
	nothing_of h1 104
	passes_on h2 104 wl-counter wl-readinto
}

@test "an agent that ended with vm.unprivileged_userfaultfd raised: the next start puts it back" {
	local was log="$VZ_SANDBOX_DIR/h2/var/log/vzagent.log"
	was=$(<"$UFFD_SYSCTL")
	echo "$was" >"$BATS_TEST_TMPDIR/uffd.was"
	# What a destination killed during a lazy restore leaves: the value it
	# found recorded, the sysctl raised, nobody holding it.
	mkdir -p /run/vz
	echo "$was" >"$UFFD_ORIG"
	echo 1 >"$UFFD_SYSCTL"
	restart_agents h2
	grep -q "Put vm.unprivileged_userfaultfd back to $was: an agent had raised it for a lazy restore" "$log"
	[ "$(<"$UFFD_SYSCTL")" = "$was" ]
	[ ! -e "$UFFD_ORIG" ]
}
