#!/usr/bin/env bats
# Online migration with post-copy between two hosts of a sandbox: the VE
# resumes on the destination at once and its memory follows; a link cut
# and a source agent killed after the go, while pages are still on their
# way, end with every page in place. Each test makes its own VE and
# leaves nothing.

load helpers

setup_file() {
	sb_setup vzmc
}

teardown_file() {
	sb_teardown
}

teardown() {
	stop_probe probe3
	sb_test_teardown
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
