#!/usr/bin/env bats
# Bad input gets one clear line on stderr, a non-zero OpenVZ exit code,
# and leaves nothing half-made.

load helpers
bats_require_minimum_version 1.5.0

setup_file() {
	vz_setup
	vzctl create 201 --ostemplate busybox --ipadd 198.18.20.1
}

teardown_file() {
	vz_teardown
}

# run a command, keeping stderr apart: $status, $output (stdout), $errout.
run_err() {
	run --separate-stderr "$@"
	errout=$stderr
}

nothing_made() {
	[ ! -e "$VZ_ROOT/etc/vz/conf/$1.conf" ]
	[ ! -e "$VZ_ROOT/vz/private/$1" ]
	! grep -q " $VZ_ROOT/vz/root/$1 " /proc/self/mountinfo
}

@test "an unknown VEID is named in one error line" {
	for cmd in start stop restart destroy mount umount; do
		run_err vzctl $cmd 999
		[ "$status" -eq 14 ]
		[ "$errout" = "vzctl: VE 999 does not exist" ]
	done
	run_err vzctl exec 999 true
	[ "$status" -eq 14 ]
	run_err vzctl set 999 --hostname x --save
	[ "$status" -eq 14 ]
	nothing_made 999
}

@test "a VEID that is not a number is refused" {
	for id in abc 0 -5 12x 99999999999; do
		run_err vzctl start "$id"
		[ "$status" -eq 20 ]
		[[ "$errout" == "vzctl: Invalid VEID '$id'"* ]]
		[ "${#stderr_lines[@]}" -eq 1 ]
	done
}

@test "creating a VEID that exists fails and keeps the VE" {
	before=$(cat "$VZ_ROOT/etc/vz/conf/201.conf")
	run_err vzctl create 201 --ostemplate busybox
	[ "$status" -eq 44 ]
	[ "$errout" = "vzctl: VE 201 already exists" ]
	[ "$(cat "$VZ_ROOT/etc/vz/conf/201.conf")" = "$before" ]
	[ -x "$VZ_ROOT/vz/private/201/sbin/init" ]
}

@test "a template that does not exist leaves nothing behind" {
	run_err vzctl create 202 --ostemplate no-such-template
	[ "$status" -eq 91 ]
	[[ "$errout" == "vzctl: OS template no-such-template not found"* ]]
	[ "${#stderr_lines[@]}" -eq 1 ]
	nothing_made 202
	run_err vzctl create 202 --ostemplate ../../etc
	[ "$status" -eq 21 ]
	nothing_made 202
}

@test "a broken template cache leaves nothing behind" {
	echo garbage >"$VZ_ROOT/vz/template/cache/broken.tar.zst"
	run_err vzctl create 203 --ostemplate broken
	[ "$status" -eq 48 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	nothing_made 203
	rm "$VZ_ROOT/vz/template/cache/broken.tar.zst"
}

@test "malformed values are refused before anything is made" {
	run_err vzctl create 204 --ostemplate busybox --hostname 'bad name!'
	[ "$status" -eq 21 ]
	[[ "$errout" == "vzctl: Invalid hostname 'bad name!'"* ]]
	nothing_made 204
	run_err vzctl create 204 --ostemplate busybox --ipadd 198.18.20.300
	[ "$status" -eq 21 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	nothing_made 204
	run_err vzctl create 204 --ostemplate busybox --ipadd 198.18.20.1
	[ "$status" -eq 78 ]
	[[ "$errout" == *"already used by VE 201"* ]]
	nothing_made 204
	run_err vzctl create 204 --ostemplate busybox --bogus 1
	[ "$status" -eq 20 ]
	[ "$errout" = "vzctl: Invalid option --bogus" ]
	run_err vzctl create 204 --ostemplate busybox --hostname
	[ "$status" -eq 20 ]
	nothing_made 204
	before=$(cat "$VZ_ROOT/etc/vz/conf/201.conf")
	run_err vzctl set 201 --hostname ok --onboot maybe --save
	[ "$status" -eq 21 ]
	[ "$(cat "$VZ_ROOT/etc/vz/conf/201.conf")" = "$before" ]
}

@test "a VE in the wrong state for the command is refused" {
	run_err vzctl stop 201
	[ "$status" -eq 31 ]
	[ "$errout" = "vzctl: Unable to stop: VE 201 is not running" ]
	run_err vzctl exec 201 true
	[ "$status" -eq 31 ]
	run_err vzctl umount 201
	[ "$status" -eq 40 ]
	vzctl start 201
	run_err vzctl start 201
	[ "$status" -eq 32 ]
	[ "$errout" = "vzctl: VE 201 is already running" ]
	run_err vzctl destroy 201
	[ "$status" -eq 32 ]
	[ -x "$VZ_ROOT/vz/private/201/sbin/init" ]
	run_err vzctl mount 201
	[ "$status" -eq 41 ]
	vzctl stop 201 --fast
}

@test "unknown commands and missing arguments print usage errors" {
	run_err vzctl frobnicate 201
	[ "$status" -eq 20 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	run_err vzctl exec 201
	[ "$status" -eq 20 ]
	run_err vzctl start
	[ "$status" -eq 20 ]
}

@test "the agent serves root only" {
	# Let another user reach the socket, so the agent itself must refuse.
	d="$VZ_ROOT/run/vz"
	while [ "$d" != / ]; do chmod o+x "$d"; d=$(dirname "$d"); done
	chmod 0666 "$VZ_ROOT/run/vz/agent.sock"
	run_err setpriv --reuid=65534 --regid=65534 --clear-groups env VZ_ROOT="$VZ_ROOT" "$VZ_TOP/build/bin/vzctl" status 201
	chmod 0600 "$VZ_ROOT/run/vz/agent.sock"
	[ "$status" -eq 12 ]
	[[ "$errout" == *"Permission denied"* ]]
	grep -q "Refused a client with uid 65534" "$VZ_ROOT/var/log/vzagent.log"
}

@test "without an agent the CLI says so in one line" {
	VZ_ROOT="$BATS_TEST_TMPDIR/none" run --separate-stderr vzctl status 201
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"Cannot reach vzagent"* ]]
}
