#!/usr/bin/env bats
# Faults during an online migration between two hosts of a sandbox: link
# cut while the VE is frozen or before it is, destination agent killed,
# destination disk full, source agent killed before or after its
# decision, a restore that fails on the destination. Each leaves the VE
# running on exactly one host and nothing of the failed attempt on the
# other. Each test makes its own VE and leaves nothing.

load helpers

setup_file() {
	sb_setup vzmf
}

teardown_file() {
	sb_teardown
}

teardown() {
	local h p
	# A test that failed while it held workers stopped or a decision in a
	# FIFO must not wedge the next one.
	for h in h1 h2; do
		for p in $(agent_workers "$h" 2>/dev/null); do
			kill -CONT "$p" 2>/dev/null || true
		done
		find "$VZ_SANDBOX_DIR/$h/vz/migrate" -maxdepth 1 -type p -delete 2>/dev/null || true
	done
	"$SB" link h1 rate off >/dev/null 2>&1 || true
	sb_test_teardown
}

@test "a link cut while the VE is frozen resumes it on the source and clears the destination" {
	sb_ve h2 101 198.18.1.1
	# Slow the link so the dump is in flight when it is cut.
	"$SB" link h1 rate 40mbit
	migrate_bg h2 --online h1 101
	wait_for 30 grep -q "Suspending and dumping" "$BATS_TEST_TMPDIR/out"
	wait_for 30 grep -q "Second file pass" "$BATS_TEST_TMPDIR/out"
	"$SB" link h1 down
	migrate_wait 60
	"$SB" link h1 up
	"$SB" link h1 rate off
	run ! migrate_rc 0
	running_on h2 101
	wait_for 30 nothing_of h1 101
	passes_on h2 101
}

@test "a destination agent killed during the move leaves the VE running on the source" {
	sb_ve h2 102 198.18.1.2
	"$SB" link h1 rate 40mbit
	migrate_bg h2 --online h1 102
	wait_for 30 grep -q "Suspending and dumping" "$BATS_TEST_TMPDIR/out"
	# The agent and every worker it forked, by pid.
	kill_agent h1
	migrate_wait 60
	"$SB" link h1 rate off
	# A restarted agent finds what the killed one left and clears it.
	restart_agents h1
	run ! migrate_rc 0
	running_on h2 102
	wait_for 30 nothing_of h1 102
	passes_on h2 102
}

@test "a destination whose disk fills up refuses the dump; the VE runs on" {
	sb_ve h2 103 198.18.1.3
	mount -t tmpfs -o size=8m vzm-full "$VZ_SANDBOX_DIR/h1/vz/dump"
	run on h2 vzmigrate --online h1 103
	umount "$VZ_SANDBOX_DIR/h1/vz/dump"
	echo "$output"
	[ "$status" -ne 0 ]
	running_on h2 103
	wait_for 10 nothing_of h1 103
	passes_on h2 103
}

# Hold the online move of VE $1 from host h1 at its decision: the source
# writes its decision with O_EXCL and reads one already there, so a FIFO
# in its place blocks the worker until something is written into it. The
# FIFO is made as soon as the source logs the move's id, before its first
# file pass (the link to h1 is slowed so that the pass and the rounds take
# seconds, far longer than this takes). Prints the FIFO's path once the
# destination has restored the VE and waits for the go (the VE frozen at
# the source).
hold_decision() {
	local veid=$1 log="$VZ_SANDBOX_DIR/h1/var/log/vzagent.log" mid
	wait_for 30 grep -q "VE $veid: migration [0-9a-f]* to " "$log" || {
		echo "the move did not start"
		return 1
	}
	mid=$(sed -n "s/.*VE $veid: migration \([0-9a-f]*\) to .*/\1/p" "$log" | tail -n 1)
	# The agent makes the records' directory with its first record: a test
	# run alone may get here first.
	mkdir -m 0700 "$VZ_SANDBOX_DIR/h1/vz/migrate" 2>/dev/null || [ -d "$VZ_SANDBOX_DIR/h1/vz/migrate" ]
	mkfifo "$VZ_SANDBOX_DIR/h1/vz/migrate/$veid.$mid.decision" || return 1
	wait_for 120 grep -q "VE $veid: restored (frozen)" "$VZ_SANDBOX_DIR/h2/var/log/vzagent.log" || {
		echo "not restored on h2"
		return 1
	}
	echo "$VZ_SANDBOX_DIR/h1/vz/migrate/$veid.$mid.decision"
}

# Host $1's source copy of VE $2 is doomed: its agent logged the commit
# of move $3, and no process of the VE is left that could run again: each
# is gone, a zombie, or has a SIGKILL pending. During CRIU's dump the
# tasks are held by ptrace, not by the freezer (CRIU thaws the cgroup once
# it has seized them), so the SIGKILL mostly ends them at once.
doomed() {
	local p st
	grep -q "VE $2: migration $3 committed" "$VZ_SANDBOX_DIR/$1/var/log/vzagent.log" || return 1
	while read -r p; do
		st=$(awk '$1 == "State:" { print $2 }' "/proc/$p/status" 2>/dev/null)
		case $st in "" | Z | X) continue ;; esac
		sigkill_pending "$p" || return 1
	done <"/sys/fs/cgroup/pids/$VZ_SANDBOX-$1/$2/cgroup.procs"
}

# Process $1 has a SIGKILL pending (its own or its thread group's).
sigkill_pending() {
	local hex
	while read -r hex; do
		(((16#$hex & 16#100) != 0)) && return 0
	done < <(awk '$1 == "ShdPnd:" || $1 == "SigPnd:" { print $2 }' "/proc/$1/status" 2>/dev/null)
	return 1
}

@test "a source agent killed after its decision: the VE ends up on the destination only" {
	sb_ve h1 104 198.18.1.4
	local fifo workers mid
	"$SB" link h1 rate 100mbit
	migrate_bg h1 --online h2 104
	fifo=$(hold_decision 104)
	mid=$(basename "$fifo" .decision)
	mid=${mid#104.}
	# The destination's workers stop before they see the go; the source
	# then writes "go", dooms its copy (SIGKILL to every task CRIU holds),
	# sends the go and waits for a DONE that cannot come: killed there.
	mapfile -t workers < <(agent_workers h2)
	kill -STOP "${workers[@]}"
	timeout 10 bash -c "echo go >'$fifo'"
	# Under MIGRATE_TIMEOUT (5 s): after that CRIU would end the copy of
	# its own, doomed or not, when the source gives up waiting for DONE.
	wait_for 3 doomed h1 104 "$mid"
	kill_agent h1
	kill -CONT "${workers[@]}"
	# What the dead worker wrote, as a file.
	rm "$fifo"
	echo go >"$fifo"
	migrate_wait 60
	run ! migrate_rc 0
	restart_agents h1
	# The destination finishes with the source's go, asked again if need be.
	wait_for 60 running_on h2 104
	wait_for 30 nothing_of h1 104
	passes_on h2 104
}

@test "a source agent killed during a pre-copy dump, before its decision: the VE runs on at the source" {
	sb_ve h1 105 198.18.1.5
	local fifo init
	"$SB" link h1 rate 100mbit
	migrate_bg h1 --online h2 105
	fifo=$(hold_decision 105)
	# Killed with the VE seized by CRIU for the dump, its session open.
	echo "freezer: $(cat "/sys/fs/cgroup/freezer/$VZ_SANDBOX-h1/105/freezer.state")"
	init=$(cut -d' ' -f1 "$VZ_SANDBOX_DIR/h1/run/vz/105.pid")
	grep -Eq '^TracerPid:[[:space:]]*[1-9]' "/proc/$init/status"
	kill_agent h1
	rm "$fifo"
	run ! compgen -G "$VZ_SANDBOX_DIR/h1/vz/migrate/105.*.decision"
	migrate_wait 60
	run ! migrate_rc 0
	# The restarted agent ends CRIU's session and thaws the VE.
	restart_agents h1
	wait_for 30 running_on h1 105
	wait_for 60 nothing_of h2 105
	grep "VE 105: migration .* was not decided" "$VZ_SANDBOX_DIR/h1/var/log/vzagent.log"
	run ! compgen -G "$VZ_SANDBOX_DIR/h1/vz/migrate/105.*.outgoing"
	passes_on h1 105
}

@test "a restore that fails on the destination resumes the VE on the source" {
	sb_ve h1 106 198.18.1.6
	"$SB" link h1 rate 100mbit
	migrate_bg h1 --online h2 106
	# After the first file pass, the destination loses a program the VE
	# runs: the second pass sends only what changed at the source, so
	# CRIU cannot find it when it restores.
	wait_for 60 grep -q "^First file pass:" "$BATS_TEST_TMPDIR/out"
	rm "$VZ_SANDBOX_DIR/h2/vz/private/106/bin/wl-counter"
	migrate_wait 120
	"$SB" link h1 rate off
	migrate_rc 3
	grep -q "Restore on the destination" "$BATS_TEST_TMPDIR/out"
	[ "$(grep -c '^vzmigrate:' "$BATS_TEST_TMPDIR/out")" -eq 1 ]
	running_on h1 106
	wait_for 30 nothing_of h2 106
	passes_on h1 106
}

@test "a link cut during the first file pass or the memory rounds leaves the VE running on the source" {
	sb_ve h2 107 198.18.1.7
	for phase in "Syncing the private area" "Memory round 0"; do
		echo "# cut during: $phase" >&3
		"$SB" link h1 rate 40mbit
		migrate_bg h2 --online h1 107
		wait_for 60 grep -q "^$phase" "$BATS_TEST_TMPDIR/out"
		"$SB" link h1 down
		migrate_wait 60
		"$SB" link h1 up
		"$SB" link h1 rate off
		run ! migrate_rc 0
		run ! grep -q "^Suspending" "$BATS_TEST_TMPDIR/out"
		running_on h2 107
		wait_for 30 nothing_of h1 107
		passes_on h2 107
	done
}
