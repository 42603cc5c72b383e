#!/usr/bin/env bats
# --onboot yes: the first agent since the host booted starts the VEs whose
# config says ONBOOT="yes", and no other; a restarted agent leaves stopped
# VEs stopped. A boot empties /run, so the test removes the agent's marker
# there to play one.

load helpers

setup_file() {
	vz_setup
}

teardown_file() {
	vz_teardown
}

agent_log() {
	cat "$VZ_ROOT/var/log/vzagent.log"
}

# Lines of the agent's log so far, to look only at what comes after.
log_lines() {
	wc -l <"$VZ_ROOT/var/log/vzagent.log"
}

# The VE's state as `vzctl status` says it: down or running.
status_is() {
	local want="exist unmounted down"
	if [ "$2" = running ]; then
		want="exist mounted running"
	fi
	run vzctl status "$1"
	[ "$output" = "VEID $1 $want" ]
}

log_since_has() {
	tail -n +"$(($1 + 1))" "$VZ_ROOT/var/log/vzagent.log" | grep -q "$2"
}

@test "the first agent since boot starts the VE with --onboot yes and not the one without" {
	vzctl create 601 --ostemplate busybox --onboot yes
	vzctl create 602 --ostemplate busybox
	vzctl create 603 --ostemplate busybox --onboot no
	grep -q '^ONBOOT="yes"' "$VZ_ROOT/etc/vz/conf/601.conf"
	status_is 601 down
	vz_stop_agent
	# A reboot: /run is empty, no VE runs.
	rm -f "$VZ_ROOT/run/vz/onboot.done"
	n=$(log_lines)
	vz_start_agent
	wait_for 30 log_since_has "$n" "Start at boot: done"
	status_is 601 running
	run vzctl exec 601 cat /proc/1/comm
	[ "$output" = "init" ]
	log_since_has "$n" "VE 601: started at boot (ONBOOT=yes)"
	status_is 602 down
	status_is 603 down
	run log_since_has "$n" "VE 60[23]: started at boot"
	[ "$status" -ne 0 ]
}

@test "a restarted agent leaves a stopped ONBOOT VE stopped and adopts a running one" {
	vzctl start 602
	vzctl stop 601
	status_is 601 down
	vz_stop_agent
	n=$(log_lines)
	vz_start_agent
	wait_for 10 log_since_has "$n" "Not the first agent since boot"
	wait_for 10 log_since_has "$n" "VE 602: running, init pid"
	status_is 601 down
	status_is 602 running
	run log_since_has "$n" "started at boot"
	[ "$status" -ne 0 ]
	vzctl stop 602
}

@test "an ONBOOT VE that is DISABLED is not started at boot, and says why" {
	vzctl set 603 --onboot yes --disabled yes --save
	vz_stop_agent
	rm -f "$VZ_ROOT/run/vz/onboot.done"
	n=$(log_lines)
	vz_start_agent
	wait_for 30 log_since_has "$n" "Start at boot: done"
	log_since_has "$n" "VE 603: not started at boot (ONBOOT=yes): VE 603 start is disabled"
	status_is 603 down
	status_is 601 running
	vzctl stop 601
	for veid in 601 602 603; do
		vzctl destroy "$veid"
	done
}
