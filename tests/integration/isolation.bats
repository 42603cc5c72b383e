#!/usr/bin/env bats
# Escapes from a VE, each tried as root inside a busybox VE (issue 13): a
# VE made with the defaults (its own user namespace, the capabilities and
# system calls of a container's root, the network filter on its bridge
# port) must refuse every one and leave the host as it was; a VE set
# --userns no (or --antispoof no) shows where the danger remains.
#
# One function per escape, esc_NAME MODE, serves both tests: MODE is
# "default", "nouserns" or "noantispoof". It makes the VEs it needs, tries
# the escape, checks the host, prints what happened and returns
#   0  refused, and the host unchanged
#   1  the escape worked (inside the VE, or seen on the host)
#   2  the test itself went wrong
#   3  this kernel lacks what the escape needs (the test skips)
# The network escapes give the host an address on the VEs' bridge and
# try to take the neighbour's traffic from it; what the filter dropped
# is read from its counters.
# Each escape is harmless even where it works: a host knob written is put
# back at once (and again in teardown), the block device is a loop device
# of a scratch file, the module and kexec calls carry arguments the kernel
# refuses after its permission check, the clock is set to the time just
# read.

load helpers
bats_require_minimum_version 1.5.0

setup_file() {
	vz_setup
}

teardown_file() {
	vz_teardown
}

teardown() {
	local v c
	for v in $(vzlist -a -1 2>/dev/null); do
		vzctl stop "$v" --fast >/dev/null 2>&1
		vzctl destroy "$v" >/dev/null 2>&1
	done
	if [ -f "$BATS_TEST_TMPDIR/undo" ]; then
		while IFS= read -r c; do
			eval "$c" >/dev/null 2>&1 || true
		done < <(tac "$BATS_TEST_TMPDIR/undo")
	fi
	return 0
}

ESC="$VZ_TOP/build/tests/workloads/escape"
A=501
B=502
A_IP=198.18.5.1
B_IP=198.18.5.2
C_IP=198.18.5.3
# The host's own address on the VEs' bridge, for the tests that need one.
HOST_IP=198.18.5.254

# on_teardown CMD ARG...: run CMD in this test's teardown, after its VEs
# are gone (the last registered first).
on_teardown() {
	printf '%q ' "$@" >>"$BATS_TEST_TMPDIR/undo"
	echo >>"$BATS_TEST_TMPDIR/undo"
}

put_value() {
	echo "$2" >"$1"
}

# ve MODE VEID IP [vzctl set options]: a running busybox VE with the escape
# helper in its /bin.
ve() {
	local mode=$1 veid=$2 ip=$3
	shift 3
	vzctl create "$veid" --ostemplate busybox --ipadd "$ip" >/dev/null || return 1
	if [ "$mode" = nouserns ]; then
		vzctl set "$veid" --userns no --save >/dev/null || return 1
	fi
	if [ "$mode" = noantispoof ]; then
		vzctl set "$veid" --antispoof no --save >/dev/null || return 1
	fi
	if [ $# -gt 0 ]; then
		vzctl set "$veid" "$@" --save >/dev/null || return 1
	fi
	vzctl start "$veid" >/dev/null || return 1
	wl_put - "$veid" escape
}

# in_ve VEID SCRIPT: run SCRIPT with the VE's sh as its root; stderr too.
in_ve() {
	vzctl exec "$1" "$2" 2>&1
}

# refused MODE NAME: esc_NAME in a VE of MODE is refused, the host as it was.
refused() {
	run "esc_$2" "$1"
	echo "$output"
	[ "$status" -ne 3 ] || skip "${lines[-1]}"
	[ "$status" -eq 0 ]
}

# escapes MODE NAME: esc_NAME in a VE of MODE works (the danger remains).
escapes() {
	run "esc_$2" "$1"
	echo "$output"
	[ "$status" -ne 3 ] || skip "${lines[-1]}"
	[ "$status" -eq 1 ]
}

# A VE script's output $1 reports a step that worked.
some_done() {
	grep -qE ': done$' <<<"$1"
}

# A host knob the escape writes: prints the value to write, one that
# differs from the host's (Y/N or a number), and has it put back in
# teardown.
other_value() {
	local knob=$1 before
	before=$(cat "$knob") || return 1
	on_teardown put_value "$knob" "$before"
	case $before in
	Y) echo N ;;
	N) echo Y ;;
	*) echo $((before + 1)) ;;
	esac
}

# knob_unchanged KNOB BEFORE: the host's KNOB still holds BEFORE; if not,
# says so and puts BEFORE back.
knob_unchanged() {
	local now
	now=$(cat "$1")
	echo "host's $1: $2 before, $now after"
	[ "$now" = "$2" ] && return 0
	put_value "$1" "$2"
	return 1
}

# ---- the VE's root ----------------------------------------------------

# The premise of the rest: a default VE's init is in a user namespace of
# its own whose root is no root of the host; a --userns no VE's is in the
# host's.
esc_userns() {
	local init map
	ve "$1" $A $A_IP || return 2
	init=$(vz_init_pid $A)
	map=$(head -n 1 "/proc/$init/uid_map")
	echo "init $init: user namespace $(readlink "/proc/$init/ns/user") (the host's: $(readlink /proc/self/ns/user)), uid_map: $(squeeze "$map")"
	[ "$(readlink "/proc/$init/ns/user")" != "$(readlink /proc/self/ns/user)" ] || return 1
	# uid 0 inside maps to a host uid other than 0, over 65536 ids.
	local inside outside count
	read -r inside outside count <<<"$map"
	if [ "$inside" != 0 ] || [ "$outside" = 0 ] || [ "$count" != 65536 ]; then return 1; fi
	return 0
}

@test "default VE: its root is not the host's root (a user namespace of its own, 65536 unprivileged host ids)" {
	refused default userns
}

@test "--userns no: the VE's root is the host's root" {
	escapes nouserns userns
}

# ---- /sys and /proc ---------------------------------------------------

# knob_escape MODE KNOB SCRIPT: run SCRIPT in a VE of MODE, WANT in it
# standing for a value other than the host's KNOB. The escape worked if a
# line of its output says "write ...: done" or the host's KNOB changed
# (it is put back).
knob_escape() {
	local knob=$2 before want out rc=0
	before=$(cat "$knob") || return 2
	want=$(other_value "$knob") || return 2
	ve "$1" $A $A_IP || return 2
	out=$(in_ve $A "${3//WANT/$want}")
	echo "$out"
	knob_unchanged "$knob" "$before" || rc=1
	if grep -q "^write .*: done" <<<"$out"; then rc=1; fi
	return $rc
}

# Remount /sys read-write and write a host-wide sysfs knob (printk's
# timestamps: harmless, and put back).
esc_sys_rw() {
	local knob=/sys/module/printk/parameters/time opts rc=0
	[ -e "$knob" ] || {
		echo "the host has no $knob"
		return 3
	}
	opts=$(findmnt -no OPTIONS /sys)
	knob_escape "$1" "$knob" "mount -o remount,rw /sys && echo 'remount /sys rw: done'
		echo WANT >$knob && echo 'write $knob: done'" || rc=$?
	[ "$rc" -ne 2 ] || return 2
	[ "$(findmnt -no OPTIONS /sys)" = "$opts" ] || {
		echo "the host's /sys is now $(findmnt -no OPTIONS /sys), was $opts"
		rc=1
	}
	return $rc
}

@test "default VE: remount /sys read-write and write a host sysfs knob is refused" {
	refused default sys_rw
}

@test "--userns no: remount /sys read-write and write a host sysfs knob works (the danger remains)" {
	escapes nouserns sys_rw
}

# Get a writable /proc/sys by remounting /proc (and a read-only /proc/sys
# over it) read-write, unmounting what covers it, or mounting a new proc;
# write a host-wide knob through each.
esc_proc_rw() {
	local knob=kernel/printk_ratelimit
	knob_escape "$1" "/proc/sys/$knob" "mount -o remount,rw /proc && echo 'remount /proc rw: done'
		for m in \$(awk '\$5 ~ \"^/proc/\" {print \$5}' /proc/self/mountinfo | sort -r); do
			mount -o remount,bind,rw \$m && echo \"remount \$m rw: done\"
			umount \$m && echo \"umount \$m: done\"
		done
		mkdir -p /tmp/newproc && mount -t proc proc /tmp/newproc && echo 'mount a new proc: done'
		for p in /proc /tmp/newproc; do
			[ -e \$p/sys/$knob ] && echo WANT >\$p/sys/$knob && echo \"write \$p/sys/$knob: done\"
		done
		umount /tmp/newproc 2>/dev/null; true"
}

@test "default VE: remount /proc read-write (or mount a new proc) and write a host /proc/sys knob is refused" {
	refused default proc_rw
}

@test "--userns no: remount /proc read-write and write a host /proc/sys knob works (the danger remains)" {
	escapes nouserns proc_rw
}

# Write a host-wide /proc/sys knob as it is mounted in the VE.
esc_sysctl() {
	local knob=/proc/sys/kernel/printk_ratelimit
	knob_escape "$1" "$knob" "echo WANT >$knob && echo 'write $knob: done'"
}

@test "default VE: writing a host /proc/sys knob (kernel.printk_ratelimit) is refused" {
	refused default sysctl
}

@test "--userns no: writing a host /proc/sys knob is refused too (a read-only mount; test 6 shows root can remount it)" {
	refused nouserns sysctl
}

# Write 'h' (print the help: harmless) to /proc/sysrq-trigger.
esc_sysrq() {
	local out n0 n1 rc=0
	[ -e /proc/sysrq-trigger ] || {
		echo "this kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ is off)"
		return 3
	}
	n0=$(dmesg | grep -c 'sysrq: HELP')
	ve "$1" $A $A_IP || return 2
	out=$(in_ve $A "echo h >/proc/sysrq-trigger && echo 'write /proc/sysrq-trigger: done'")
	echo "$out"
	n1=$(dmesg | grep -c 'sysrq: HELP')
	echo "sysrq help lines in the host's log: $n0 before, $n1 after"
	[ "$n1" = "$n0" ] || rc=1
	if some_done "$out"; then rc=1; fi
	return $rc
}

@test "default VE: writing /proc/sysrq-trigger is refused" {
	refused default sysrq
}

@test "--userns no: writing /proc/sysrq-trigger works (the danger remains)" {
	escapes nouserns sysrq
}

# ---- devices, modules, kexec, the clock -------------------------------

# mknod a host block device, a loop device over a scratch file this test
# makes, and read and write it.
esc_mknod() {
	local img="$BATS_TEST_TMPDIR/disk.img" tag="vz-escape-$$" loop maj min out rc=0
	truncate -s 1M "$img" || return 2
	printf '%s' "$tag" | dd of="$img" conv=notrunc status=none || return 2
	loop=$(losetup -f --show "$img") || {
		echo "no loop device to be had"
		return 3
	}
	on_teardown losetup -d "$loop"
	maj=$((16#$(stat -c %t "$loop")))
	min=$((16#$(stat -c %T "$loop")))
	echo "host: $loop ($maj:$min) over $img"
	ve "$1" $A $A_IP || return 2
	out=$(in_ve $A "for d in /dev /tmp; do
			mknod \$d/esc-disk b $maj $min && echo \"mknod \$d/esc-disk: done\" || continue
			head -c ${#tag} \$d/esc-disk >/tmp/esc-read && echo \"read: \$(cat /tmp/esc-read)\"
			printf pwned | dd of=\$d/esc-disk bs=512 seek=1 conv=notrunc,fsync 2>/dev/null &&
				echo \"write \$d/esc-disk: done\"
			rm -f \$d/esc-disk
		done")
	echo "$out"
	if grep -q "^read: $tag" <<<"$out" || grep -q "^write .*: done" <<<"$out"; then rc=1; fi
	if [ "$(dd if="$img" bs=512 skip=1 count=1 status=none | head -c 5)" = pwned ]; then
		echo "the host's scratch file was written through the VE's device node"
		rc=1
	fi
	return $rc
}

@test "default VE: mknod and open of a host block device (a loop device) is refused" {
	refused default mknod
}

@test "--userns no: mknod and open of a host block device works (the danger remains)" {
	escapes nouserns mknod
}

# call MODE WHAT: run the helper's `escape WHAT` in a VE. ENOSYS from a
# default VE is a failure: the kernel lacks the call, but the VE's seccomp
# filter must refuse it (EPERM) before the kernel is asked.
esc_call() {
	local out rc
	ve "$1" $A $A_IP || return 2
	out=$(in_ve $A "escape $2")
	rc=$?
	echo "$out"
	case $rc in
	0) return 1 ;;
	1) return 0 ;;
	3)
		if [ "$1" = default ]; then
			echo "ENOSYS: this kernel lacks the call, and nothing in the VE refused it first (a seccomp filter answers EPERM)"
			return 2
		fi
		echo "this kernel lacks $2 (ENOSYS): there is nothing to try"
		return 3
		;;
	*) return 2 ;;
	esac
}

# init_module of bytes that are no module and finit_module with a flag
# that does not exist: ENOEXEC or EINVAL says the call was let through,
# EPERM that it was refused.
esc_init_module() {
	local before rc
	before=$(cat /proc/modules 2>/dev/null)
	esc_call "$1" init_module
	rc=$?
	[ "$(cat /proc/modules 2>/dev/null)" = "$before" ] || {
		echo "the host's module list changed"
		return 1
	}
	return $rc
}

@test "default VE: loading a kernel module (init_module, finit_module) is refused" {
	refused default init_module
}

@test "--userns no: loading a kernel module is refused too (CAP_SYS_MODULE dropped, seccomp)" {
	refused nouserns init_module
}

# kexec_load with 17 segments and kexec_file_load with a flag that does
# not exist: EINVAL after the permission check, nothing loaded or
# unloaded.
esc_kexec() {
	local before rc
	before=$(cat /sys/kernel/kexec_loaded 2>/dev/null)
	esc_call "$1" kexec
	rc=$?
	[ "$(cat /sys/kernel/kexec_loaded 2>/dev/null)" = "$before" ] || {
		echo "the host's kexec image changed"
		return 1
	}
	return $rc
}

@test "default VE: kexec_load and kexec_file_load are refused" {
	refused default kexec
}

@test "--userns no: kexec_load is refused too (seccomp)" {
	refused nouserns kexec
}

# The difference of the host's CLOCK_REALTIME and CLOCK_MONOTONIC, in ns:
# setting the clock changes it.
clock_offset() {
	python3 -c 'import time; print(time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_MONOTONIC))'
}

# clock_settime(CLOCK_REALTIME) to the time just read.
esc_settime() {
	local o0 o1 rc
	o0=$(clock_offset)
	esc_call "$1" settime
	rc=$?
	o1=$(clock_offset)
	echo "host's realtime - monotonic moved by $((o1 - o0)) ns"
	# Anything past 50 ms is a clock that was set, not the read's jitter.
	[ $(((o1 - o0) < 0 ? o0 - o1 : o1 - o0)) -lt 50000000 ] || return 1
	return $rc
}

@test "default VE: setting the host's clock (clock_settime) is refused" {
	refused default settime
}

@test "--userns no: setting the host's clock is refused too (CAP_SYS_TIME dropped, seccomp)" {
	refused nouserns settime
}

# ---- host files and processes -----------------------------------------

# open_by_handle_at of a host file outside every VE (the "shocker"
# escape): the handle is made on the host, the VE opens it to read and to
# append.
esc_open_by_handle() {
	local secret="$VZ_ROOT/escape-secret" text="host secret $$" h out rc=0
	echo "$text" >"$secret" || return 2
	on_teardown rm -f "$secret"
	ve "$1" $A $A_IP || return 2
	[ "$(stat -c %d "$secret")" = "$(stat -c %d "$VZ_ROOT/vz/root/$A/bin")" ] || {
		echo "the VE's root is on another filesystem than $VZ_ROOT: a handle relative to it cannot name the host file"
		return 3
	}
	h=$("$ESC" handle "$secret") || return 2
	out=$(in_ve $A "escape open_by_handle $h; escape open_by_handle $h pwned")
	echo "$out"
	if grep -qE "^(read: $text|wrote)" <<<"$out"; then rc=1; fi
	[ "$(cat "$secret")" = "$text" ] || {
		echo "the host file was changed: $(cat "$secret")"
		rc=1
	}
	return $rc
}

@test "default VE: open_by_handle_at of a host file is refused" {
	refused default open_by_handle
}

@test "--userns no: open_by_handle_at of a host file is refused too (seccomp)" {
	refused nouserns open_by_handle
}

# A host process (a sleep this test starts) is not in the VE's /proc and
# cannot be signalled from it.
esc_host_process() {
	local arg="3600.$$" pid out rc=0
	ve "$1" $A $A_IP || return 2
	sleep "$arg" >/dev/null 2>&1 3>&- &
	pid=$!
	on_teardown kill -KILL "$pid"
	out=$(in_ve $A "for f in /proc/[0-9]*/cmdline; do
			[ \"\$(tr '\\0' ' ' <\$f)\" = 'sleep $arg ' ] && echo \"sees the host's sleep: \$f\"
		done
		if [ -e /proc/$pid ]; then
			echo 'pid $pid is one of the VE: no kill tried'
		else
			kill -TERM $pid && echo 'kill $pid: done'
		fi; true")
	echo "$out"
	if grep -qE "^sees|: done$" <<<"$out"; then rc=1; fi
	kill -0 "$pid" 2>/dev/null || {
		echo "the host's sleep (pid $pid) is gone"
		rc=1
	}
	return $rc
}

@test "default VE: a host process is neither seen nor signalled" {
	refused default host_process
}

@test "--userns no: a host process is neither seen nor signalled (its own pid namespace)" {
	refused nouserns host_process
}

# ---- the neighbour ----------------------------------------------------

# Change a file in a neighbour VE's root: by the host's paths, by ..
# past the VE's root or through /proc/PID/root, and by a file handle
# the host gives out.
esc_neighbour_files() {
	local rel=root/neighbour-secret text="secret of $B" h p out rc=0
	ve "$1" $A $A_IP || return 2
	ve "$1" $B $B_IP || return 2
	in_ve $B "echo '$text' >/$rel" || return 2
	local paths=("$VZ_ROOT/vz/root/$B/$rel" "$VZ_ROOT/vz/private/$B/$rel"
		"/../../../..$VZ_ROOT/vz/private/$B/$rel" "/proc/1/root/../..$VZ_ROOT/vz/private/$B/$rel"
		"/proc/self/cwd/../../..$VZ_ROOT/vz/root/$B/$rel")
	local script=""
	for p in "${paths[@]}"; do
		script+="cat '$p' 2>/dev/null && echo 'read $p: done'; [ -e '$p' ] && echo pwned >>'$p' && echo 'write $p: done'; "
	done
	h=$("$ESC" handle "$VZ_ROOT/vz/private/$B/$rel") || return 2
	out=$(in_ve $A "$script escape open_by_handle $h; escape open_by_handle $h pwned")
	echo "$out"
	if grep -qE "^(read|write) .*: done|^read: $text|^wrote" <<<"$out"; then rc=1; fi
	[ "$(cat "$VZ_ROOT/vz/private/$B/$rel")" = "$text" ] || {
		echo "VE $B's file was changed: $(cat "$VZ_ROOT/vz/private/$B/$rel")"
		rc=1
	}
	return $rc
}

@test "default VE: a neighbour VE's files are out of reach" {
	refused default neighbour_files
}

@test "--userns no: a neighbour VE's files are out of reach too (open_by_handle_at refused by seccomp)" {
	refused nouserns neighbour_files
}

# The host's file of VE $1's memory limit.
mem_limit_file() {
	if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
		echo "/sys/fs/cgroup/$VZ_CGBASE/$1/memory.max"
	else
		echo "/sys/fs/cgroup/memory/$VZ_CGBASE/$1/memory.limit_in_bytes"
	fi
}

# lift_limits VEID FIND_EXPR SIGNS: in VE A, mount every cgroup hierarchy
# it can (v1 memory and pids, v2) under /tmp/cg-*; in each directory of
# its cgroup views (those and /sys/fs/cgroup) that FIND_EXPR (find's
# tests, as the VE's sh reads them) selects, say "sees DIR" and lift the
# memory limit. The escape worked if a line of what A did matches SIGNS
# (an extended regex) or VE VEID's limit on the host changed.
lift_limits() {
	local lim before out rc=0
	lim=$(mem_limit_file "$1")
	before=$(cat "$lim") || return 2
	out=$(in_ve $A "for c in memory pids; do
			mkdir -p /tmp/cg-\$c && mount -t cgroup -o \$c none /tmp/cg-\$c && echo \"mount cgroup \$c: done\"
		done
		mkdir -p /tmp/cg-unified && mount -t cgroup2 none /tmp/cg-unified && echo 'mount cgroup2: done'
		for d in \$(find /sys/fs/cgroup /tmp/cg-* $2 2>/dev/null); do
			echo \"sees \$d\"
			[ -f \$d/memory.max ] && echo max >\$d/memory.max && echo \"write \$d/memory.max: done\"
			[ -f \$d/memory.limit_in_bytes ] && echo -1 >\$d/memory.memsw.limit_in_bytes
			[ -f \$d/memory.limit_in_bytes ] && echo -1 >\$d/memory.limit_in_bytes &&
				echo \"write \$d/memory.limit_in_bytes: done\"
		done
		for m in /tmp/cg-*; do umount \$m 2>/dev/null; done; true")
	echo "$out"
	if grep -qE "$3" <<<"$out"; then rc=1; fi
	echo "VE $1's memory limit on the host: $before before, $(cat "$lim") after"
	[ "$(cat "$lim")" = "$before" ] || rc=1
	return $rc
}

# Find the neighbour's cgroup in any cgroup view the VE can have, and
# raise its memory limit there.
esc_neighbour_cgroup() {
	ve "$1" $A $A_IP || return 2
	ve "$1" $B $B_IP --ram 128M || return 2
	lift_limits $B "-type d \\( -name $B -o -name $VZ_CGBASE \\)" "^sees|^write .*: done"
}

@test "default VE: a neighbour VE's cgroup is neither seen nor changed" {
	refused default neighbour_cgroup
}

@test "--userns no: a neighbour VE's cgroup is neither seen nor changed (its own cgroup namespace)" {
	refused nouserns neighbour_cgroup
}

# Raise the VE's own memory limit from inside (its cgroup is the root of
# its cgroup namespace): a VE must stay within what it was given.
esc_own_limit() {
	ve "$1" $A $A_IP --ram 128M || return 2
	lift_limits $A "-maxdepth 0 -type d" "^write .*: done"
}

@test "default VE: raising its own memory limit from inside is refused" {
	refused default own_limit
}

@test "--userns no: raising its own memory limit from inside works (the danger remains)" {
	escapes nouserns own_limit
}

# Mount a cgroup v1 hierarchy (a new named one, whose root has a
# release_agent, and the host's memory one) and write release_agent: a
# program the host's kernel would run as the host's root.
esc_release_agent() {
	local out rc=0
	grep -qw cgroup /proc/filesystems || {
		echo "this kernel has no cgroup v1"
		return 3
	}
	ve "$1" $A $A_IP || return 2
	out=$(in_ve $A "mkdir -p /tmp/cg-named /tmp/cg-memory
		mount -t cgroup -o none,name=vzescape none /tmp/cg-named && echo 'mount a named cgroup v1 hierarchy: done'
		mount -t cgroup -o memory none /tmp/cg-memory && echo 'mount cgroup memory: done'
		for f in /tmp/cg-named/release_agent /tmp/cg-memory/release_agent; do
			[ -f \$f ] && echo \"sees \$f: '\$(cat \$f)'\"
			[ -f \$f ] && echo /bin/true >\$f && echo \"write \$f: done\"
		done
		umount /tmp/cg-named 2>/dev/null; umount /tmp/cg-memory 2>/dev/null; true")
	echo "$out"
	if grep -q "^write .*: done" <<<"$out"; then rc=1; fi
	# A named hierarchy made by the VE would be the host's: it shows in
	# every process's /proc/PID/cgroup until it is gone.
	if ! wait_for 5 bash -c '! grep -q name=vzescape /proc/self/cgroup'; then
		echo "the VE's named cgroup hierarchy is left on the host"
		rc=1
	fi
	return $rc
}

@test "default VE: mounting a cgroup v1 hierarchy and writing release_agent is refused" {
	refused default release_agent
}

@test "--userns no: writing release_agent is refused (a hierarchy made in a cgroup namespace is refused, mounts are rooted at the VE's cgroup)" {
	refused nouserns release_agent
}

# The neighbour's network: the VE sees only lo and eth0, and cannot touch
# the neighbour's veth or the bridge (or put the neighbour's address on
# it).
esc_neighbour_net() {
	local before after out links rc=0
	ve "$1" $A $A_IP || return 2
	ve "$1" $B $B_IP || return 2
	before=$(vz_ns ip -o link show; vz_ns ip -4 -o addr show)
	out=$(in_ve $A "ip link | sed -n 's/^[0-9]*: \\([^:@]*\\).*/link \\1/p'
		ip link set veth$B.0 down && echo 'set veth$B.0 down: done'
		ip addr add $B_IP/24 dev vzbr0 && echo 'add $B_IP to vzbr0: done'
		ip link set vzbr0 down && echo 'set vzbr0 down: done'; true")
	echo "$out"
	links=$(sed -n 's/^link //p' <<<"$out" | sort | tr '\n' ' ')
	echo "links in the VE: $links"
	[ "$links" = "eth0 lo " ] || rc=1
	if some_done "$out"; then rc=1; fi
	after=$(vz_ns ip -o link show; vz_ns ip -4 -o addr show)
	[ "$after" = "$before" ] || {
		echo "the host's links or addresses changed:"
		diff <(echo "$before") <(echo "$after")
		rc=1
	}
	in_ve $B "ping -c 1 -W 2 $A_IP" >/dev/null || {
		echo "VE $B lost its network"
		rc=1
	}
	return $rc
}

@test "default VE: a neighbour VE's network is neither seen nor configured" {
	refused default neighbour_net
}

@test "--userns no: a neighbour VE's network is neither seen nor configured (its own network namespace)" {
	refused nouserns neighbour_net
}

# ---- the neighbour's addresses: the network filter ---------------------

# Why this host has no VE network filter (the agent said so at start), or
# nothing when it has one.
filter_unsupported() {
	sed -n 's/.*VE network filter: \(unsupported: .*\)/\1/p' "$VZ_ROOT/var/log/vzagent.log" | head -n 1
}

# Give the host an address on the VEs' bridge, taken away in teardown.
host_ip() {
	vz_ns ip addr add "$HOST_IP/24" dev vzbr0 || return 1
	on_teardown vz_ns ip addr del "$HOST_IP/24" dev vzbr0
}

# The MAC of VE $1's eth0.
ve_mac() {
	vzctl exec "$1" cat /sys/class/net/eth0/address
}

# The MAC the host's neighbour table has for address $1.
host_neigh() {
	vz_ns ip neigh show "$1" dev vzbr0 | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}'
}

# The port of the host's bridge where it has learnt MAC $1.
fdb_port() {
	vz_ns bridge fdb show br vzbr0 | awk -v m="$1" '$1 == m && $2 == "dev" {print $3; exit}'
}

# Packets that counters $2... of VE $1's filter dropped (0 without one).
dropped() {
	local veid=$1 c n=0
	shift
	for c in "$@"; do
		n=$((n + $(vz_ns nft list counter bridge "vz_ve_$veid" "$c" 2>/dev/null |
			awk '$1 == "packets" {n = $2} END {print n + 0}')))
	done
	echo "$n"
}

# The filter of VE $1 exists.
has_filter() {
	vz_ns nft list table bridge "vz_ve_$1" >/dev/null 2>&1
}

# neighbour_setup MODE: VEs A and B of MODE, the host on their bridge and
# in touch with B (its neighbour table and the bridge know B). Prints what
# it knows; returns 3 when this host has no filter to try.
neighbour_setup() {
	local why
	why=$(filter_unsupported)
	if [ -n "$why" ] && [ "$1" != noantispoof ]; then
		echo "this host has no VE network filter: $why"
		return 3
	fi
	ve "$1" $A $A_IP || return 2
	ve "$1" $B $B_IP || return 2
	host_ip || return 2
	vz_ns busybox ping -c 1 -W 2 $B_IP >/dev/null || {
		echo "the host cannot reach VE $B at all"
		return 2
	}
	A_MAC=$(ve_mac $A) && B_MAC=$(ve_mac $B) || return 2
	echo "VE $A is $A_MAC, VE $B is $B_MAC"
}

# neighbour_intact RC D0 COUNTERS...: the host still reaches B as B (its
# neighbour entry for B's address and the bridge's entry for B's MAC name
# B), else 1; with a filter, its COUNTERS rose from D0 (else the escape
# was not tried: 2). Prints what it saw.
neighbour_intact() {
	local rc=$1 d0=$2 d1
	shift 2
	vz_ns busybox ping -c 1 -W 2 $B_IP >/dev/null || {
		echo "the host gets no answer from $B_IP"
		rc=1
	}
	echo "the host's entry for $B_IP: $(host_neigh $B_IP); the bridge has $B_MAC on $(fdb_port "$B_MAC")"
	[ "$(host_neigh $B_IP)" = "$B_MAC" ] || rc=1
	[ "$(fdb_port "$B_MAC")" = "veth$B.0" ] || rc=1
	if has_filter $A; then
		d1=$(dropped $A "$@")
		echo "VE $A's filter dropped $((d1 - d0)) packets ($*)"
		if [ "$rc" -eq 0 ] && [ "$d1" -le "$d0" ]; then rc=2; fi
	fi
	return "$rc"
}

# Take the neighbour's address: put it on eth0, announce it (gratuitous
# ARP, requests and replies) and use it.
esc_neighbour_ip() {
	local d0 out rc=0
	neighbour_setup "$1" || return $?
	d0=$(dropped $A spoof_arp spoof_ipv4)
	out=$(in_ve $A "ip addr add $B_IP/24 dev eth0 && echo 'add $B_IP to eth0: done'
		arping -U -c 2 -w 2 -I eth0 -s $B_IP $B_IP >/dev/null
		arping -A -c 2 -w 2 -I eth0 -s $B_IP $B_IP >/dev/null
		ping -c 2 -W 1 -I $B_IP $HOST_IP >/dev/null && echo 'ping the host as $B_IP: answered'; true")
	echo "$out"
	if grep -q answered <<<"$out"; then rc=1; fi
	neighbour_intact "$rc" "$d0" spoof_arp spoof_ipv4
}

@test "default VE: a neighbour's address put on eth0 takes none of its traffic" {
	refused default neighbour_ip
}

@test "--userns no: a neighbour's address put on eth0 takes none of its traffic (the filter is the host's)" {
	refused nouserns neighbour_ip
}

@test "--antispoof no: a VE takes a neighbour's address and its traffic (the danger remains)" {
	escapes noantispoof neighbour_ip
}

# Take the neighbour's MAC: give it to eth0 and send with it.
esc_neighbour_mac() {
	local d0 out rc=0
	neighbour_setup "$1" || return $?
	d0=$(dropped $A spoof_mac)
	out=$(in_ve $A "ip link set eth0 address $B_MAC && echo 'set eth0 to $B_MAC: done'
		ip neigh flush dev eth0 >/dev/null 2>&1
		ping -c 2 -W 1 $HOST_IP >/dev/null && echo 'ping the host with $B_MAC: answered'; true")
	echo "$out"
	if grep -q answered <<<"$out"; then rc=1; fi
	neighbour_intact "$rc" "$d0" spoof_mac
}

@test "default VE: a VE that takes its neighbour's MAC is cut off, and the neighbour keeps its traffic" {
	refused default neighbour_mac
}

@test "--antispoof no: a VE takes its neighbour's MAC and its traffic (the danger remains)" {
	escapes noantispoof neighbour_mac
}

# The filter's life: made at the start, over what a crashed agent left,
# gone with the VE.
@test "a VE's network filter is made at its start over a stale one, and vzctl stop removes it" {
	local why
	why=$(filter_unsupported)
	[ -z "$why" ] || skip "this host has no VE network filter: $why"
	# Left by an agent that died: a table of the VE's name, with a chain
	# that drops everything of the VE's port.
	vz_ns nft -f - <<-NFT
		table bridge vz_ve_$A {
			chain stale {
				type filter hook prerouting priority 0; policy accept;
				iifname "veth$A.0" drop
			}
		}
	NFT
	ve default $A $A_IP
	host_ip
	run vz_ns nft list table bridge vz_ve_$A
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"iifname \"veth$A.0\" jump ve"* ]]
	[[ "$output" == *"ip saddr != $A_IP "* ]]
	[[ "$output" == *"ether saddr != $(ve_mac $A) "* ]]
	[[ "$output" != *stale* ]]
	vz_ns busybox ping -c 1 -W 2 $A_IP >/dev/null
	vzctl stop $A >/dev/null
	run vz_ns nft list table bridge vz_ve_$A
	[ "$status" -ne 0 ]
}

@test "vzctl set --ipadd on a running VE lets the new address through at once, --ipdel stops it, --antispoof acts at once" {
	local why d0
	why=$(filter_unsupported)
	[ -z "$why" ] || skip "this host has no VE network filter: $why"
	ve default $A $A_IP
	ve default $B $B_IP
	vzctl set $A --ipadd $C_IP >/dev/null
	run in_ve $B "ping -c 1 -W 2 $C_IP"
	echo "$output"
	[ "$status" -eq 0 ]
	vzctl set $A --ipdel $C_IP >/dev/null
	# The VE's root puts the address back: the filter no longer lets it out.
	in_ve $A "ip addr add $C_IP/24 dev eth0"
	d0=$(dropped $A spoof_ipv4 spoof_arp)
	run in_ve $B "ping -c 1 -W 2 $C_IP"
	echo "$output"
	[ "$status" -ne 0 ]
	echo "dropped: $d0 before, $(dropped $A spoof_ipv4 spoof_arp) after"
	[ "$(dropped $A spoof_ipv4 spoof_arp)" -gt "$d0" ]
	# Its own address still works.
	in_ve $B "ping -c 1 -W 2 $A_IP" >/dev/null
	# --antispoof takes effect at once too.
	vzctl set $A --antispoof no >/dev/null
	run has_filter $A
	[ "$status" -ne 0 ]
	vzctl set $A --antispoof yes >/dev/null
	has_filter $A
}

@test "vzctl chkpnt removes a VE's network filter and vzctl restore makes it again" {
	local why d0
	why=$(filter_unsupported)
	[ -z "$why" ] || skip "this host has no VE network filter: $why"
	ve default $A $A_IP
	host_ip
	vzctl chkpnt $A >/dev/null
	run has_filter $A
	[ "$status" -ne 0 ]
	vzctl restore $A >/dev/null
	has_filter $A
	vz_ns busybox ping -c 1 -W 2 $A_IP >/dev/null
	d0=$(dropped $A spoof_ipv4)
	run in_ve $A "ip addr add $B_IP/24 dev eth0 && ping -c 1 -W 1 -I $B_IP $HOST_IP"
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$(dropped $A spoof_ipv4)" -gt "$d0" ]
}
