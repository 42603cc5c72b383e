#!/usr/bin/env bats
# A VE's processes are confined as LXC and Docker confine a container by
# default (agent/ve_confine.c): the capabilities that reach the host are
# gone from init and from what vzctl exec and enter start, a seccomp
# filter runs in each, /proc and /sys have their masked and read-only
# paths, and a checkpoint and restore keeps all of it. The VE still halts
# itself through its own init (debian.bats shows sysvinit's, which needs
# CAP_SYS_BOOT).

load helpers

# The capabilities a VE's processes lose, as agent/ve_confine.c lists them.
DROPPED_CAPS="CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_TIME CAP_MAC_ADMIN CAP_MAC_OVERRIDE CAP_AUDIT_CONTROL
CAP_AUDIT_READ CAP_SYSLOG CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_PERFMON CAP_BPF"
# Its masked and read-only paths; a kernel without one has nothing to hide.
MASKED_PATHS="/proc/acpi /proc/asound /proc/kcore /proc/keys /proc/latency_stats /proc/sched_debug
/proc/scsi /proc/timer_list /proc/timer_stats /sys/devices/virtual/powercap /sys/firmware"
READONLY_PATHS="/proc/bus /proc/fs /proc/irq /proc/sysrq-trigger /proc/sys"

setup_file() {
	vz_setup
	vzctl create 101 --ostemplate busybox --ipadd 198.18.21.1 --hostname cf101 >/dev/null
	vzctl start 101 >/dev/null
}

teardown_file() {
	vz_teardown
}

# The mask of the capabilities named, from their numbers in the kernel's
# header.
cap_mask() {
	local m=0 name nr
	for name in "$@"; do
		nr=$(awk -v n="$name" '$1 == "#define" && $2 == n { print $3 }' /usr/include/linux/capability.h)
		[[ $nr =~ ^[0-9]+$ ]] || { echo "no $name in linux/capability.h" >&2; return 1; }
		m=$((m | (1 << nr)))
	done
	echo "$m"
}

# Field $2 (CapBnd, Seccomp, ...) of process $1 as the VE sees it.
ve_status() {
	vzctl exec 101 "sed -n 's/^$2:[[:space:]]*//p' /proc/$1/status"
}

# The mount options of the VE's mount on $1.
ve_mount_opts() {
	vzctl exec 101 "awk '\$5 == \"$1\" { print \$6 }' /proc/self/mountinfo"
}

# The bounding set a VE's processes must have, less ours: in a user
# namespace of its own every capability the kernel has (a new user
# namespace starts with all of them, over itself only); in the host's,
# the agent's.
expected_bnd() {
	local all mask
	if vzctl exec 101 'cat /proc/self/uid_map' | awk '$1 == 0 && $2 == 0 { found = 1 } END { exit !found }'; then
		all=$((16#$(sed -n 's/^CapBnd:\t//p' "/proc/$(cat "$VZ_ROOT/agent.pid")/status")))
	else
		all=$(((1 << ($(cat /proc/sys/kernel/cap_last_cap) + 1)) - 1))
	fi
	# shellcheck disable=SC2086 # a list of names
	mask=$(cap_mask $DROPPED_CAPS) || return 1
	echo $((all & ~mask))
}

@test "init and a vzctl exec process have the bounding set less the dropped capabilities" {
	local want boot
	want=$(expected_bnd)
	boot=$(cap_mask CAP_SYS_BOOT)
	for pid in 1 self; do
		bnd=$(ve_status $pid CapBnd)
		eff=$(ve_status $pid CapEff)
		echo "pid $pid: CapBnd $bnd CapEff $eff, expected $(printf %016x "$want")"
		[ $((16#$bnd)) -eq "$want" ]
		# Root's effective set is its bounding set: nothing else was lost.
		[ $((16#$eff)) -eq "$want" ]
		# Kept: init halts the VE with reboot(2).
		[ $((16#$bnd & boot)) -ne 0 ]
		[ "$(ve_status $pid CapInh)" = 0000000000000000 ]
		[ "$(ve_status $pid CapAmb)" = 0000000000000000 ]
	done
}

@test "init, vzctl exec and vzctl enter run under the seccomp filter without no_new_privs" {
	[ "$(ve_status 1 Seccomp)" = 2 ]
	[ "$(ve_status self Seccomp)" = 2 ]
	[ "$(ve_status 1 NoNewPrivs)" = 0 ]
	[ "$(ve_status self NoNewPrivs)" = 0 ]
	run bash -c "printf 'grep -E \"^(Seccomp|NoNewPrivs):\" /proc/self/status; exit\n' | vzctl enter 101"
	echo "$output"
	[[ "$output" =~ Seccomp:[[:space:]]+2 ]]
	[[ "$output" =~ NoNewPrivs:[[:space:]]+0 ]]
	# The host's side of it: init's filter as the kernel counts it.
	grep -qP '^Seccomp:\t2$' "/proc/$(vz_init_pid 101)/status"
}

@test "the read-only paths the host has are read-only mounts in the VE, /proc/sys/net excepted" {
	local p n=0
	for p in $READONLY_PATHS; do
		[ -e "$p" ] || continue
		n=$((n + 1))
		run ve_mount_opts "$p"
		echo "$p: $output"
		[[ "$output" == ro,* ]]
	done
	[ "$n" -gt 0 ]
	[[ "$(ve_mount_opts /proc/sys/net)" == rw,* ]]
	# A write fails though root may: the value it has now, so that
	# nothing of the host would change if it did not.
	run vzctl exec 101 'cat /proc/irq/default_smp_affinity >/proc/irq/default_smp_affinity'
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	if [ -e /proc/sysrq-trigger ]; then
		run vzctl exec 101 'echo h >/proc/sysrq-trigger'
		[ "$status" -ne 0 ]
		[[ "$output" == *"Read-only file system"* ]]
	fi
	run vzctl exec 101 'echo cf101 >/proc/sys/kernel/domainname'
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	# The VE's own network namespace's knobs stay its own to tune.
	before=$(vz_ns cat /proc/sys/net/ipv4/ip_forward)
	run vzctl exec 101 'echo 1 >/proc/sys/net/ipv4/ip_forward && cat /proc/sys/net/ipv4/ip_forward'
	[ "$status" -eq 0 ]
	[ "$output" = 1 ]
	[ "$(vz_ns cat /proc/sys/net/ipv4/ip_forward)" = "$before" ]
}

@test "the masked paths the host has read empty in the VE" {
	local p n=0
	for p in $MASKED_PATHS; do
		[ -e "$p" ] || continue
		n=$((n + 1))
		if [ -d "$p" ]; then
			# An empty read-only tmpfs of the VE's own.
			[ "$(vzctl exec 101 "ls -A $p | wc -l")" = 0 ]
			run ve_mount_opts "$p"
			[[ "$output" == ro,* ]]
		else
			# The VE's /dev/null bound over it.
			[ "$(vzctl exec 101 "wc -c <$p")" = 0 ]
			vzctl exec 101 "test -c $p"
			vzctl exec 101 "grep -q ' /null $p ' /proc/self/mountinfo"
		fi
	done
	[ "$n" -gt 0 ]
	# Where the host has something to show, the VE sees nothing of it.
	for p in /proc/timer_list /proc/kcore; do
		[ -e "$p" ] || continue
		[ "$(head -c 1 "$p" | wc -c)" = 1 ]
		[ "$(vzctl exec 101 "head -c 1 $p | wc -c")" = 0 ]
	done
}

@test "chkpnt and restore keep the capabilities, the seccomp filter and the masks of init" {
	local f before after
	before=$(for f in CapBnd CapEff CapPrm CapInh Seccomp Seccomp_filters NoNewPrivs; do
		echo "$f $(ve_status 1 $f)"
	done)
	mounts_before=$(vzctl exec 101 'cut -d" " -f4,5,6 /proc/1/mountinfo | sort')
	run vzctl chkpnt 101 --dumpfile "$VZ_ROOT/cf101.dump"
	echo "$output"
	[ "$status" -eq 0 ]
	run vzctl restore 101 --dumpfile "$VZ_ROOT/cf101.dump"
	echo "$output"
	[ "$status" -eq 0 ]
	after=$(for f in CapBnd CapEff CapPrm CapInh Seccomp Seccomp_filters NoNewPrivs; do
		echo "$f $(ve_status 1 $f)"
	done)
	echo "before: $before"
	echo "after:  $after"
	[ "$after" = "$before" ]
	[[ "$after" == *"Seccomp 2"* ]]
	# The same mounts (CRIU makes them in another order).
	[ "$(vzctl exec 101 'cut -d" " -f4,5,6 /proc/1/mountinfo | sort')" = "$mounts_before" ]
	[ "$(vzctl exec 101 'wc -c </proc/keys')" = 0 ]
	run vzctl exec 101 'cat /proc/irq/default_smp_affinity >/proc/irq/default_smp_affinity'
	[ "$status" -ne 0 ]
	# What vzctl exec starts after the restore is confined as before.
	[ "$(ve_status self Seccomp)" = 2 ]
	[ $((16#$(ve_status self CapBnd))) -eq "$(expected_bnd)" ]
}

@test "the VE halts itself through its own init, not by being killed" {
	run vzctl stop 101
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"VE was stopped"* ]]
	[[ "$output" != *"killing"* ]]
	run vzctl status 101
	[ "$output" = "VEID 101 exist unmounted down" ]
}
