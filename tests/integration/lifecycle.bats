#!/usr/bin/env bats
# A VE's whole life on one host: create, start, exec, enter, list, set,
# restart, stop, destroy; two VEs that reach each other; the agent's
# restart adopting running VEs.

load helpers

setup_file() {
	vz_setup
}

teardown_file() {
	vz_teardown
}

@test "vzctl create makes a stopped VE from the busybox template" {
	run vzctl create 101 --ostemplate busybox --hostname ve101 --ipadd 198.18.10.1
	[ "$status" -eq 0 ]
	[ -f "$VZ_ROOT/etc/vz/conf/101.conf" ]
	grep -q '^OSTEMPLATE="busybox"' "$VZ_ROOT/etc/vz/conf/101.conf"
	grep -q '^IP_ADDRESS="198.18.10.1"' "$VZ_ROOT/etc/vz/conf/101.conf"
	grep -q '^NETIF=".*host_ifname=veth101.0' "$VZ_ROOT/etc/vz/conf/101.conf"
	[ -x "$VZ_ROOT/vz/private/101/sbin/init" ]
	run vzctl status 101
	[ "$output" = "VEID 101 exist unmounted down" ]
}

@test "vzctl start runs the VE's init as pid 1 in new namespaces" {
	run vzctl start 101
	[ "$status" -eq 0 ]
	[[ "$output" == *"VE start in progress"* ]]
	run vzctl status 101
	[ "$output" = "VEID 101 exist mounted running" ]
	init=$(vz_init_pid 101)
	for ns in pid mnt uts ipc net cgroup; do
		[ "$(readlink "/proc/$init/ns/$ns")" != "$(readlink "/proc/self/ns/$ns")" ]
	done
	run vzctl exec 101 cat /proc/1/comm
	[ "$output" = "init" ]
	run vzctl exec 101 hostname
	[ "$output" = "ve101" ]
	# The VE's processes are in its cgroup.
	grep -qx "$init" "$(vz_cgroup_dir 101)/cgroup.procs"
}

@test "no host file descriptor or mount leaks into a VE" {
	run vzctl exec 101 'ls -l /proc/1/fd | grep -- "->" | sed "s/.*-> //" | sort -u'
	[ "$status" -eq 0 ]
	[ "$output" = "/dev/null" ]
	# In its own user namespace a VE cannot make device nodes: the six it
	# has are the host's, each bound on its own. Below /proc and /sys: the
	# masks and read-only binds, which confine.bats checks.
	run vzctl exec 101 'cut -d" " -f5 /proc/1/mountinfo | grep -v "^/proc/\\|^/sys/" | sort | tr "\n" " "'
	[ "$output" = "/ /dev /dev/full /dev/mqueue /dev/null /dev/pts /dev/random /dev/shm /dev/tty /dev/urandom /dev/zero /proc /sys " ]
}

@test "vzctl exec streams stdin, stdout and stderr and returns the exit status" {
	run bash -c 'echo hello-from-host | vzctl exec 101 "cat; echo to-stderr >&2; exit 7" 2>"$BATS_TEST_TMPDIR/err"'
	[ "$status" -eq 7 ]
	[ "$output" = "hello-from-host" ]
	[ "$(cat "$BATS_TEST_TMPDIR/err")" = "to-stderr" ]
	run vzctl exec 101 true
	[ "$status" -eq 0 ]
}

@test "vzctl enter gives a shell on a pty of the VE" {
	run bash -c "printf 'tty; hostname; exit 3\n' | vzctl enter 101"
	[ "$status" -eq 3 ]
	[[ "$output" == *"/dev/pts/0"* ]]
	[[ "$output" == *"ve101"* ]]
	[[ "$output" == *"entered into VE 101"* ]]
}

@test "vzlist shows running VEs in OpenVZ's table" {
	run vzlist
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" =~ ^\ +VEID\ +NPROC\ STATUS\ +IP_ADDR\ +HOSTNAME$ ]]
	[[ "${lines[1]}" =~ ^\ +101\ +[0-9]+\ running\ +198\.18\.10\.1\ +ve101$ ]]
	nproc=$(vzlist -H -o nproc 101 | tr -d ' ')
	[ "$nproc" -ge 1 ]
}

@test "two VEs on one host ping each other over the bridge" {
	vzctl create 102 --ostemplate busybox --hostname ve102 --ipadd 198.18.10.2
	vzctl start 102
	run vzctl exec 101 ping -c 2 -W 2 198.18.10.2
	[ "$status" -eq 0 ]
	run vzctl exec 102 ping -c 2 -W 2 198.18.10.1
	[ "$status" -eq 0 ]
	# The host ends sit on the bridge.
	vz_ns ip -o link show veth101.0 | grep -q 'master vzbr0'
	vz_ns ip -o link show veth102.0 | grep -q 'master vzbr0'
}

@test "vzlist -a, -S, -H, -o, -s and -j select, sort and format" {
	vzctl create 103 --ostemplate busybox --hostname aaa
	run vzlist -H -o veid
	[ "$(squeeze "$output")" = "101 102" ]
	run vzlist -a -H -o veid
	[ "$(squeeze "$output")" = "101 102 103" ]
	run vzlist -S -H -o veid,status
	[ "$(squeeze "$output")" = "103 stopped" ]
	run vzlist -a -H -o veid -s -veid
	[ "$(squeeze "$output")" = "103 102 101" ]
	run vzlist -a -H -o hostname,veid -s hostname
	[ "$(squeeze "${lines[0]}")" = "aaa 103" ]
	run vzlist -a -j
	[ "$status" -eq 0 ]
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); m={v["veid"]:v for v in d}; assert m[101]["status"]=="running" and m[101]["ip"]==["198.18.10.1"] and m[103]["status"]=="stopped" and m[103]["nproc"] is None, d' "$output"
	run vzlist -o bogus
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	vzctl destroy 103
}

@test "vzctl set changes a running VE at once and --save keeps it" {
	run vzctl set 101 --hostname renamed --ipadd 198.18.10.11
	[ "$status" -eq 0 ]
	[ "$(vzctl exec 101 hostname)" = "renamed" ]
	vzctl exec 101 ip -o addr show dev eth0 | grep -q '198.18.10.11/24'
	# Not saved: the config still has the old name.
	grep -q '^HOSTNAME="ve101"' "$VZ_ROOT/etc/vz/conf/101.conf"
	run vzctl set 101 --hostname renamed --ipdel 198.18.10.11 --save
	[ "$status" -eq 0 ]
	grep -q '^HOSTNAME="renamed"' "$VZ_ROOT/etc/vz/conf/101.conf"
	run vzctl exec 101 ip -o addr show dev eth0
	[[ "$output" != *198.18.10.11* ]]
}

@test "vzctl restart gives the VE a new init and keeps its address and MAC" {
	old=$(vz_init_pid 101)
	mac=$(vzctl exec 101 cat /sys/class/net/eth0/address)
	run vzctl restart 101
	[ "$status" -eq 0 ]
	new=$(vz_init_pid 101)
	[ "$old" != "$new" ]
	[ "$(vzctl exec 101 hostname)" = "renamed" ]
	[ "$(vzctl exec 101 cat /sys/class/net/eth0/address)" = "$mac" ]
	vzctl exec 102 ping -c 1 -W 2 198.18.10.1
}

@test "a restarted agent adopts running VEs" {
	init=$(vz_init_pid 101)
	vz_stop_agent
	# The VEs kept running while no agent was there.
	kill -0 "$init"
	vz_start_agent
	run vzctl status 101
	[ "$output" = "VEID 101 exist mounted running" ]
	run vzctl exec 101 hostname
	[ "$output" = "renamed" ]
	grep -q "VE 101: running, init pid $init" "$VZ_ROOT/var/log/vzagent.log"
}

@test "a VE whose init exits is cleaned up by the agent" {
	vzctl exec 102 'kill -USR2 1'
	wait_for 15 bash -c "vzctl status 102 | grep -q 'exist unmounted down'"
	[ ! -d "$(vz_cgroup_dir 102)" ]
	run ! vz_ns ip link show veth102.0
}

@test "vzctl stop shuts the VE down and removes its cgroups, veth and mount" {
	init=$(vz_init_pid 101)
	run vzctl stop 101
	[ "$status" -eq 0 ]
	[[ "$output" == *"VE was stopped"* ]]
	pid_dead "$init"
	run vzctl status 101
	[ "$output" = "VEID 101 exist unmounted down" ]
	[ ! -d "$(vz_cgroup_dir 101)" ]
	run ! grep -q " $VZ_ROOT/vz/root/101 " /proc/self/mountinfo
	wait_for 5 bash -c "! nsenter --net=/run/netns/$VZ_NETNS ip link show veth101.0 2>/dev/null"
}

@test "vzctl stop --fast kills at once" {
	vzctl start 101
	init=$(vz_init_pid 101)
	run vzctl stop 101 --fast
	[ "$status" -eq 0 ]
	pid_dead "$init"
	run vzctl status 101
	[ "$output" = "VEID 101 exist unmounted down" ]
}

@test "vzctl destroy removes the config, private area and root" {
	run vzctl destroy 101
	[ "$status" -eq 0 ]
	[ ! -e "$VZ_ROOT/etc/vz/conf/101.conf" ]
	[ ! -e "$VZ_ROOT/vz/private/101" ]
	[ ! -e "$VZ_ROOT/vz/root/101" ]
	run vzctl status 101
	[ "$output" = "VEID 101 deleted unmounted down" ]
	vzctl destroy 102
	run vzlist -a -H
	[ -z "$output" ]
}
