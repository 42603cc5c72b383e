#!/usr/bin/env bats
# VEs in user namespaces of their own: each VE's root is a range of 65536
# unprivileged host ids, never given to two VEs of a host, its files keep
# their owners on disk through an idmapped mount, --userns no keeps the
# host's namespace, and checkpoint/restore and moves keep the namespace
# (a move to a host where the range is taken gives it another, and says so).

load helpers

setup_file() {
	sb_setup vzun
}

teardown_file() {
	sb_teardown
}

teardown() {
	sb_test_teardown
}

# The host id VE $2's uid 0 maps to on host $1, read from inside.
map_of() {
	on "$1" vzctl exec "$2" 'cat /proc/self/uid_map' | awk '$1 == 0 { print $2 " " $3 }'
}

# The host uid that runs VE $2's init on host $1.
init_uid_of() {
	local pid
	pid=$(cut -d' ' -f1 "$VZ_SANDBOX_DIR/$1/run/vz/$2.pid")
	awk '/^Uid:/ { print $2 }' "/proc/$pid/status"
}

@test "a VE's root is a range of host ids of its own, and its files keep their owners on disk" {
	on h1 vzctl create 101 --ostemplate busybox >/dev/null
	on h1 vzctl create 102 --ostemplate busybox >/dev/null
	on h1 vzctl start 101 >/dev/null
	on h1 vzctl start 102 >/dev/null
	read -r base101 count101 <<<"$(map_of h1 101)"
	read -r base102 count102 <<<"$(map_of h1 102)"
	echo "101: $base101 ($count101), 102: $base102 ($count102)"
	[ "$count101" -eq 65536 ]
	[ "$count102" -eq 65536 ]
	[ "$base101" -ge 1000000 ]
	[ "$base102" -ge 1000000 ]
	# Ranges do not overlap.
	[ $((base101 + 65536)) -le "$base102" ] || [ $((base102 + 65536)) -le "$base101" ]
	[ "$(init_uid_of h1 101)" = "$base101" ]
	[ "$(on h1 vzlist -H -o userns 101 | tr -d ' ')" = "$base101" ]
	grep -qx "USERNS_UID=\"$base101\"" "$VZ_SANDBOX_DIR/h1/etc/vz/conf/101.conf"
	# Inside, root is uid 0 and owns /; a file it makes is 0's on disk.
	[ "$(on h1 vzctl exec 101 'id -u; stat -c %u /bin/busybox')" = "$(printf '0\n0')" ]
	on h1 vzctl exec 101 'echo hi >/root/made; chown 33:33 /root/made; echo x >/root/mine'
	[ "$(stat -c %u:%g "$VZ_SANDBOX_DIR/h1/vz/private/101/root/made")" = "33:33" ]
	[ "$(stat -c %u "$VZ_SANDBOX_DIR/h1/vz/private/101/root/mine")" = "0" ]
}

@test "a range another VE holds is given up for a free one at start" {
	on h1 vzctl create 103 --ostemplate busybox >/dev/null
	on h1 vzctl create 104 --ostemplate busybox >/dev/null
	on h1 vzctl start 103 >/dev/null
	read -r base103 _ <<<"$(map_of h1 103)"
	# A config copied by hand that names 103's range.
	echo "USERNS_UID=\"$base103\"" >>"$VZ_SANDBOX_DIR/h1/etc/vz/conf/104.conf"
	on h1 vzctl start 104 >/dev/null
	read -r base104 _ <<<"$(map_of h1 104)"
	echo "103: $base103, 104: $base104"
	[ "$base104" != "$base103" ]
	grep -qx "USERNS_UID=\"$base104\"" "$VZ_SANDBOX_DIR/h1/etc/vz/conf/104.conf"
}

@test "--userns no keeps the host's user namespace, and yes brings the range back" {
	on h1 vzctl create 105 --ostemplate busybox >/dev/null
	run on h1 vzctl set 105 --userns maybe --save
	[ "$status" -eq 21 ]
	on h1 vzctl set 105 --userns no --save >/dev/null
	on h1 vzctl start 105 >/dev/null
	[ "$(map_of h1 105)" = "0 4294967295" ]
	[ "$(init_uid_of h1 105)" = "0" ]
	[ "$(on h1 vzlist -H -o userns 105 | tr -d ' ')" = "no" ]
	on h1 vzctl set 105 --userns yes --save >/dev/null
	on h1 vzctl restart 105 >/dev/null
	read -r base _ <<<"$(map_of h1 105)"
	[ "$base" -ge 1000000 ]
	run on h1 vzctl set --help
	[[ "$output" == *"--userns yes|no"* ]]
	[[ "$output" == *"host block device"* ]]
}

@test "a process of another user is checkpointed and restored, in its namespace" {
	on h1 vzctl create 106 --ostemplate busybox >/dev/null
	on h1 vzctl start 106 >/dev/null
	read -r base _ <<<"$(map_of h1 106)"
	on h1 vzctl exec 106 'su -s /bin/sh nobody -c "sleep 1000 </dev/null >/dev/null 2>&1 &"'
	wait_for 10 on h1 vzctl exec 106 'ps -o user,comm | grep -q "^nobody *sleep"'
	run on h1 vzctl chkpnt 106
	echo "$output"
	[ "$status" -eq 0 ]
	run on h1 vzctl restore 106
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(map_of h1 106)" = "$base 65536" ]
	on h1 vzctl exec 106 'ps -o user,comm' | grep -q '^nobody *sleep'
	# The restore's idmapped root is gone from the host's mounts.
	run grep -c "/run/vz/idroot/" /proc/self/mountinfo
	[ "$output" = "0" ]
}

@test "--userns no: CRIU cannot dump a process of another user where the host's root lacks CAP_SYS_RESOURCE" {
	capeff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
	[ $(((0x$capeff >> 24) & 1)) -eq 0 ] || skip "this host's root has CAP_SYS_RESOURCE: CRIU can read the limits"
	on h1 vzctl create 107 --ostemplate busybox >/dev/null
	on h1 vzctl set 107 --userns no --save >/dev/null
	on h1 vzctl start 107 >/dev/null
	on h1 vzctl exec 107 'su -s /bin/sh nobody -c "sleep 1000 </dev/null >/dev/null 2>&1 &"'
	wait_for 10 on h1 vzctl exec 107 'ps -o user,comm | grep -q "^nobody *sleep"'
	run on h1 vzctl chkpnt 107
	echo "$output"
	[ "$status" -eq 16 ]
	[[ "$output" == *"rlimit"* ]]
	running_on h1 107
}

@test "a move keeps the VE's range when it is free there, and gives it another when not" {
	on h1 vzctl create 110 --ostemplate busybox --ipadd 198.18.1.10 >/dev/null
	on h1 vzctl start 110 >/dev/null
	read -r base _ <<<"$(map_of h1 110)"
	on h1 vzctl exec 110 'su -s /bin/sh nobody -c "sleep 1000 </dev/null >/dev/null 2>&1 &"'
	run on h1 vzmigrate --online --stop-copy h2 110
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"user namespace: root is host uid $base here, $base on h2 (the same range)"* ]]
	running_on h2 110
	[ "$(map_of h2 110)" = "$base 65536" ]
	on h2 vzctl exec 110 'ps -o user,comm' | grep -q '^nobody *sleep'
	# On h1 a new VE now takes that range; the move back must take another.
	on h1 vzctl create 111 --ostemplate busybox >/dev/null
	on h1 vzctl start 111 >/dev/null
	[ "$(map_of h1 111)" = "$base 65536" ]
	run on h2 vzmigrate --online --stop-copy h1 110
	echo "$output"
	[ "$status" -eq 0 ]
	running_on h1 110
	read -r back _ <<<"$(map_of h1 110)"
	echo "back on h1 with $back"
	[ "$back" != "$base" ]
	[[ "$output" == *"user namespace: root is host uid $base here, $back on h1"* ]]
	grep -qx "USERNS_UID=\"$back\"" "$VZ_SANDBOX_DIR/h1/etc/vz/conf/110.conf"
	on h1 vzctl exec 110 'ps -o user,comm' | grep -q '^nobody *sleep'
	[ "$(on h1 vzctl exec 110 'stat -c %u /bin/busybox')" = "0" ]
}
