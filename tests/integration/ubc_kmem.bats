#!/usr/bin/env bats
# --kmemsize: `vzctl ubc` shows the configured barrier and limit only when
# the kernel enforces a kernel memory limit; otherwise (cgroup v2, or a v1
# memory.kmem.limit_in_bytes that is accepted and ignored, as since Linux
# 5.16) kmemsize is n/a with the reason. Whether this kernel enforces it is
# found here on our own probe cgroup, not taken from the agent.

load helpers

setup_file() {
	vz_setup
	vzctl create 611 --ostemplate busybox --kmemsize 20M:24M
	vzctl start 611
}

teardown_file() {
	vz_teardown
}

# Does this kernel hold a kmem limit written to a cgroup of ours?
kmem_enforced() {
	local d="/sys/fs/cgroup/memory/$VZ_CGBASE/kmem-probe.$$" v
	[ -f "/sys/fs/cgroup/memory/$VZ_CGBASE/memory.kmem.limit_in_bytes" ] || return 1
	mkdir "$d" || return 1
	echo 10485760 >"$d/memory.kmem.limit_in_bytes" 2>/dev/null
	v=$(cat "$d/memory.kmem.limit_in_bytes")
	rmdir "$d"
	[ "$v" = 10485760 ]
}

@test "vzctl ubc shows kmemsize as n/a with the reason when the kernel does not enforce it" {
	grep -q '^KMEMSIZE="20971520:25165824"' "$VZ_ROOT/etc/vz/conf/611.conf"
	run vzctl ubc 611
	[ "$status" -eq 0 ]
	echo "$output"
	line=$(grep ' kmemsize ' <<<"$output")
	if kmem_enforced; then
		echo "# this kernel enforces kmem limits: expecting the configured values" >&3
		[[ "$line" =~ kmemsize\ +[0-9]+\ +[0-9]+\ +20971520\ +25165824\ +[0-9]+ ]]
	else
		echo "# this kernel ignores kmem limits: expecting n/a" >&3
		[[ "$line" =~ kmemsize\ +n/a\ +n/a\ +n/a\ +n/a\ +n/a ]]
		run grep -E '^  kmemsize +.*(ignores memory.kmem.limit_in_bytes|cgroup v2 has no kernel memory limit)' <<<"$output"
		[ "$status" -eq 0 ]
	fi
}

@test "vzlist shows no kmemsize barrier or limit the kernel does not enforce" {
	run vzlist -H -o kmemsize.b,kmemsize.l 611
	[ "$status" -eq 0 ]
	echo "$output"
	if kmem_enforced; then
		[[ "$output" =~ 20971520\ +25165824 ]]
	else
		run grep -E '20971520|25165824' <<<"$output"
		[ "$status" -ne 0 ]
	fi
}
