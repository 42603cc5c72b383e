#!/usr/bin/env bats
# Migration between two hosts of a sandbox (deploy/sandbox), what comes
# before or without an online move: the peers' certificates, --dry-run,
# a destination that refuses (VEID or interface name taken), and the
# offline move (stop, copy, start). Each test makes its own VE and
# leaves nothing.

load helpers

setup_file() {
	sb_setup vzmo
}

teardown_file() {
	sb_teardown
}

teardown() {
	sb_test_teardown
}

@test "a peer with a certificate from another CA is refused" {
	local log="$VZ_SANDBOX_DIR/h2/var/log/vzagent.log" seen
	"$VZ_TOP/deploy/vz-certs" ca "$BATS_TEST_TMPDIR/rogue-ca" >/dev/null
	"$VZ_TOP/deploy/vz-certs" host "$BATS_TEST_TMPDIR/rogue-ca" "$BATS_TEST_TMPDIR/rogue" h9 198.18.0.9 >/dev/null
	seen=$(wc -l <"$log")
	run on c timeout 10 openssl s_client -connect 198.18.0.2:7799 -brief \
		-cert "$BATS_TEST_TMPDIR/rogue/host.crt" -key "$BATS_TEST_TMPDIR/rogue/host.key" \
		-CAfile "$BATS_TEST_TMPDIR/rogue/ca.crt" </dev/null
	echo "$output"
	# The client cannot tell: under TLS 1.3 its handshake is done before
	# the server has checked its certificate, so it says CONNECTION
	# ESTABLISHED either way. The agent's log is the proof, for this
	# connection and for its certificate (not, say, one missing).
	wait_for 5 bash -c "tail -n +$((seen + 1)) '$log' | grep -q 'Refused a migration peer: .*certificate refused'"
	grep "Refused a migration peer" "$log" | tail -1
	# The agent is still serving.
	run on h2 vzlist -a
	[ "$status" -eq 0 ]
}

@test "vzmigrate --dry-run checks the destination and moves nothing" {
	on h1 vzctl create 101 --ostemplate busybox --ipadd 198.18.1.1 >/dev/null
	on h1 vzctl start 101 >/dev/null
	run on h1 vzmigrate --dry-run --online h2 101
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"can be migrated to h2"* ]]
	running_on h1 101
	nothing_of h2 101
}

@test "a destination that already has the VEID refuses, and the VE stays where it was" {
	on h1 vzctl create 102 --ostemplate busybox --ipadd 198.18.1.2 >/dev/null
	on h1 vzctl start 102 >/dev/null
	on h2 vzctl create 102 --ostemplate busybox >/dev/null
	run on h1 vzmigrate --online h2 102
	echo "$output"
	[ "$status" -eq 44 ]
	[[ "$output" == *"VE 102 already exists on h2"* ]]
	[ "$(grep -c 'vzmigrate:' <<<"$output")" -eq 1 ]
	running_on h1 102
	on h2 vzctl destroy 102 >/dev/null
	nothing_of h2 102
}

@test "a destination where the VE's interface name is taken refuses before anything moves" {
	on h1 vzctl create 103 --ostemplate busybox --ipadd 198.18.1.3 >/dev/null
	on h1 vzctl start 103 >/dev/null
	on h2 ip link add veth103.0 type veth peer name vzmtaken
	run on h1 vzmigrate --online h2 103
	on h2 ip link del veth103.0
	echo "$output"
	[ "$status" -eq 130 ]
	[[ "$output" == *"Interface veth103.0 of VE 103 is in use on h2"* ]]
	running_on h1 103
	nothing_of h2 103
}

@test "vzmigrate without --online stops, moves and starts the VE" {
	on h1 vzctl create 104 --ostemplate busybox --ipadd 198.18.1.4 >/dev/null
	on h1 vzctl start 104 >/dev/null
	echo payload-offline >"$VZ_SANDBOX_DIR/h1/vz/root/104/root/marker"
	run on h1 vzmigrate h2 104
	echo "$output"
	[ "$status" -eq 0 ]
	running_on h2 104
	[ "$(on h2 vzctl exec 104 cat /root/marker)" = payload-offline ]
	# Reachable where it now runs, through its filter there; none is left
	# on the source (nothing_of).
	on h2 nft list table bridge vz_ve_104 >/dev/null
	on c busybox ping -c 1 -W 2 198.18.1.4 >/dev/null
	nothing_of h1 104
}

@test "a stopped VE moved offline stays stopped" {
	on h2 vzctl create 105 --ostemplate busybox --ipadd 198.18.1.5 >/dev/null
	echo payload-stopped >"$VZ_SANDBOX_DIR/h2/vz/private/105/root/marker"
	run on h2 vzmigrate h1 105
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(on h1 vzctl status 105)" = "VEID 105 exist unmounted down" ]
	[ "$(cat "$VZ_SANDBOX_DIR/h1/vz/private/105/root/marker")" = payload-stopped ]
	nothing_of h2 105
}
