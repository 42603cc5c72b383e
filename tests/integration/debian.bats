#!/usr/bin/env bats
# A Debian 12 VE from a debootstrap template: built by vzpkg from the
# template's metadata (downloads about 40 MB from Debian's registry), then
# booted with its own sysvinit, used and shut down cleanly.

load helpers

setup_file() {
	[ -z "${VZ_TEST_OFFLINE:-}" ] || skip "VZ_TEST_OFFLINE is set: debootstrap needs Debian's package registry"
	vz_setup
	vzpkg create cache debian-12-minimal >"$BATS_FILE_TMPDIR/vzpkg.out" 2>&1
}

teardown_file() {
	vz_teardown
}

@test "vzpkg create cache debian-12-minimal builds a bookworm tree from its metadata" {
	[ -f "$VZ_ROOT/vz/template/debian-12-minimal/packages" ]
	grep -q '^Cache .*debian-12-minimal.tar.zst created' "$BATS_FILE_TMPDIR/vzpkg.out"
	run vzpkg list
	[[ "$output" =~ debian-12-minimal\ +[0-9]+[KM] ]]
}

@test "a Debian VE boots its own sysvinit and runs commands" {
	vzctl create 301 --ostemplate debian-12-minimal --hostname deb301 --ipadd 198.18.30.1
	vzctl start 301
	run vzctl exec 301 cat /etc/debian_version
	[[ "$output" =~ ^12\. ]]
	run vzctl exec 301 'readlink -f /proc/1/exe'
	[ "$output" = "/usr/sbin/init" ] || [ "$output" = "/sbin/init" ]
	# Its init runs confined (agent/ve_confine.c), as every VE's.
	[ "$(vzctl exec 301 "sed -n 's/^Seccomp:[[:space:]]*//p' /proc/1/status")" = 2 ]
	[ "$(vzctl exec 301 hostname)" = "deb301" ]
	vzctl exec 301 'ip -4 -o addr show dev eth0' | grep -q '198.18.30.1/24'
}

@test "a Debian VE shuts down through its init without being killed" {
	# sysvinit's halt ends the VE with reboot(2): CAP_SYS_BOOT must stay.
	run vzctl stop 301
	[ "$status" -eq 0 ]
	[[ "$output" != *"killing"* ]]
	run vzctl status 301
	[ "$output" = "VEID 301 exist unmounted down" ]
	vzctl destroy 301
}
