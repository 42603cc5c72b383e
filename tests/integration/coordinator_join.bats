#!/usr/bin/env bats
# Enrolling a host (vzcoord join and leave, issue 14 item 7), over SSH for
# real: a sandbox of three hosts and a coordinator where h1 and h2 are
# members and h3 is not. Every host runs its own sshd in its namespace;
# the admin's key and a known_hosts of every host's key are the
# coordinator's (deploy/sandbox). The tests run in order: h3 joins, its
# leave is refused while its VE runs, then it leaves.

load helpers

setup_file() {
	export SB_AGENT_CONF='HEARTBEAT_INTERVAL="1"'
	sb_setup vzjo 3 --coordinator --no-member h3
	KNOWN="$VZ_SANDBOX_DIR/coord/root/.ssh/known_hosts"
	export KNOWN
}

teardown_file() {
	sb_teardown
}

teardown() {
	# No host is left in maintenance by a drain test that failed.
	on coord vzcoord undrain h1 --no-return >/dev/null 2>&1 || true
	sb_test_teardown
}

not_listed() {
	! on coord vzcoord list | awk -v v="$1" '$1 == v { f = 1 } END { exit !f }'
}

# What join must not touch on a host it refuses: its vz.conf, certificate
# and key, by their checksums.
h3_files() {
	local r="$VZ_SANDBOX_DIR/h3/etc/vz"
	md5sum "$r/vz.conf" "$r/tls/host.crt" "$r/tls/host.key" "$r/tls/ca.crt"
}

# join with known_hosts $1 is refused in one line saying $2, and nothing
# changed on h3, still out of the pool.
join_refused() {
	local before
	before=$(h3_files)
	run on coord vzcoord join root@h3 --known-hosts "$1"
	echo "$output"
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == *"$2"* ]]
	[ "$(h3_files)" = "$before" ]
	[ -z "$(host_state h3)" ]
}

# h3 in the pool, as the tests after the join want it.
h3_joined() {
	state_is h3 online || on coord vzcoord join root@h3 >/dev/null
	wait_for 10 state_is h3 online
}

@test "a host left out of the pool is not in vzcoord status" {
	wait_for 10 state_is h1 online
	wait_for 10 state_is h2 online
	run on coord vzcoord status
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output != *h3* ]]
	run ! grep -q '^COORDINATOR=' "$VZ_SANDBOX_DIR/h3/etc/vz/vz.conf"
	run on coord vzcoord leave h3
	[ "$status" -ne 0 ]
	[ "$output" = "vzcoord: No host h3 in the pool" ]
}

@test "join refuses a host whose key is not the one known_hosts holds, and does nothing there" {
	local kh="$BATS_TEST_TMPDIR/known_hosts"
	ssh-keygen -q -t ed25519 -N '' -f "$BATS_TEST_TMPDIR/other"
	{
		grep -v '^h3,' "$KNOWN"
		echo "h3,198.18.0.3 $(cut -d' ' -f1,2 "$BATS_TEST_TMPDIR/other.pub")"
	} >"$kh"
	join_refused "$kh" "Host key of h3 (198.18.0.3) is not the one $kh holds: refused, nothing done"
	# The fingerprint it gives is the host's, as ssh-keygen prints it.
	[[ $output == *"$(ssh-keygen -lf "$VZ_SANDBOX_DIR/h3/ssh/host_key.pub" | cut -d' ' -f2)"* ]]
}

@test "join refuses a host whose key is unknown, and does nothing there" {
	local kh="$BATS_TEST_TMPDIR/known_hosts"
	grep -v '^h3,' "$KNOWN" >"$kh"
	join_refused "$kh" "Host key of h3 (198.18.0.3) is unknown: refused, nothing done"
}

@test "join of an unreachable host fails with one line" {
	run on coord vzcoord join root@198.18.0.9
	echo "$output"
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == "vzcoord: Cannot reach 198.18.0.9 port 22: "* ]]
	# A host whose sshd does not listen there.
	run on coord vzcoord join root@h3 --port 2222
	echo "$output"
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == "vzcoord: Cannot reach 198.18.0.3 port 2222: Connection refused" ]]
	[ -z "$(host_state h3)" ]
}

@test "join refuses a key the host does not authorize" {
	ssh-keygen -q -t ed25519 -N '' -f "$BATS_TEST_TMPDIR/stranger"
	run on coord vzcoord join root@h3 --identity "$BATS_TEST_TMPDIR/stranger"
	echo "$output"
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == "vzcoord: root@h3 refused the key $BATS_TEST_TMPDIR/stranger: "* ]]
	[ -z "$(host_state h3)" ]
}

@test "join says in one line that the host's agent did not restart" {
	local conf="$VZ_SANDBOX_DIR/coord/etc/vz/vzcoord.conf"
	cp "$conf" "$BATS_TEST_TMPDIR/vzcoord.conf"
	echo 'AGENT_RESTART="echo no agent here; exit 3"' >>"$conf"
	run on coord vzcoord join root@h3
	cp "$BATS_TEST_TMPDIR/vzcoord.conf" "$conf"
	echo "$output"
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[ "$output" = "vzcoord: The agent of h3 did not restart: 'echo no agent here; exit 3' exited with status 3: no agent here" ]
	[ -z "$(host_state h3)" ]
}

@test "vzcoord join root@h3 enrolls h3: its certificate from the CA, COORDINATOR set, online with its VEs" {
	local old_serial r="$VZ_SANDBOX_DIR/h3/etc/vz"
	on h3 vzctl create 301 --ostemplate busybox >/dev/null
	on h3 vzctl start 301 >/dev/null
	old_serial=$(openssl x509 -noout -serial -in "$r/tls/host.crt")
	# Lines libssh2 cannot take are passed over, not fatal, as OpenSSH
	# does: a comment, a CA marker, a key type it does not know.
	cat >>"$KNOWN" <<-'LINES'
		# other hosts
		@cert-authority *.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxr0pKc4yGc3kBSYwNJYeo9uG5b5qZ1WYiy5LD2bbbb
		h9 sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIHxr0pKc4yGc3kBSYwNJYeo9uG5b5qZ1WYiy5LD2bbbbAAAABHNzaDo=
	LINES
	run on coord vzcoord join root@h3
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == "h3 joined the pool: online with "*" VEs, its agent a member of 198.18.0.240:7800 (198.18.0.3)" ]]
	state_is h3 online
	wait_for 10 listed 301 running h3 || { on coord vzcoord list; false; }
	grep -qx 'COORDINATOR="198.18.0.240:7800"' "$r/vz.conf"
	# A new certificate of CN h3, from the cluster's CA, its key private.
	[ "$(openssl x509 -noout -serial -in "$r/tls/host.crt")" != "$old_serial" ]
	openssl x509 -noout -subject -in "$r/tls/host.crt" | grep -q 'CN *= *h3'
	openssl verify -CAfile "$VZ_SANDBOX_DIR/ca/ca.crt" "$r/tls/host.crt"
	cmp "$VZ_SANDBOX_DIR/ca/ca.crt" "$r/tls/ca.crt"
	[ "$(stat -c %a "$r/tls/host.key")" = 600 ]
	# Its agent is a peer of the others under the new certificate: h1's VE
	# moves to it.
	on h1 vzctl create 302 --ostemplate busybox >/dev/null
	on h1 vzctl start 302 >/dev/null
	run on h1 vzmigrate h3 302
	echo "$output"
	[ "$status" -eq 0 ]
	wait_for 10 listed 302 running h3 || { on coord vzcoord list; false; }
}

@test "join of a member again renews its certificate, and it stays in the pool" {
	local old_serial r="$VZ_SANDBOX_DIR/h3/etc/vz"
	h3_joined
	old_serial=$(openssl x509 -noout -serial -in "$r/tls/host.crt")
	run on coord vzcoord join h3
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == "h3 joined the pool: online with "* ]]
	[ "$(openssl x509 -noout -serial -in "$r/tls/host.crt")" != "$old_serial" ]
	[ "$(grep -c '^COORDINATOR=' "$r/vz.conf")" -eq 1 ]
	state_is h3 online
}

# The hosts of VEs 311 and 312, sorted, are $1.
targets_are() {
	[ "$(echo "$(hosts_of 311) $(hosts_of 312)" | tr ' ' '\n' | sort | xargs)" = "$1" ]
}

@test "a host enrolled with vzcoord join takes part in the next drain, and undrain brings its VEs back" {
	local v
	h3_joined
	for v in 311 312; do
		on h1 vzctl create $v --ostemplate busybox >/dev/null
		on h1 vzctl start $v >/dev/null
	done
	for v in 311 312; do
		wait_for 10 listed $v running h1 || { on coord vzcoord list; false; }
	done
	# h2 and h3 are as empty as each other: the drain spreads one VE to each.
	run on coord vzcoord drain h1
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"Drain h1: 2 VEs, 2 can move"* ]]
	[[ $output == *"-> h3  precopy"* ]]
	[[ $output == *"-> h2  precopy"* ]]
	[[ $output == *"Host h1 is drained"* ]]
	# The targets' next heartbeats show them there.
	wait_for 10 targets_are "h2 h3" || { on coord vzcoord list; false; }
	for v in 311 312; do
		running_on "$(hosts_of $v)" $v
	done
	run on coord vzcoord undrain h1
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"VE 3"*": back from h3 to h1"* ]]
	for v in 311 312; do
		wait_for 10 is_on $v h1 || { echo "VE $v on: $(hosts_of $v)"; false; }
		running_on h1 $v
	done
	for v in 311 312; do
		on h1 vzctl stop $v --fast >/dev/null
		on h1 vzctl destroy $v >/dev/null
	done
}

@test "leave is refused while a VE runs on the host" {
	h3_joined
	on h3 vzctl create 303 --ostemplate busybox >/dev/null
	on h3 vzctl start 303 >/dev/null
	wait_for 10 listed 303 running h3
	run on coord vzcoord leave h3
	echo "$output"
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == "vzcoord: h3 has 1 VEs running or unknown (303): refused (vzcoord drain h3 first)" ]]
	state_is h3 online
	grep -qx 'COORDINATOR="198.18.0.240:7800"' "$VZ_SANDBOX_DIR/h3/etc/vz/vz.conf"
}

@test "leave is refused while the host is silent: its VEs are unknown" {
	h3_joined
	kill_agent h3
	wait_for 10 state_is h3 suspect
	run on coord vzcoord leave h3
	echo "$output"
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[ "$output" = "vzcoord: h3 is suspect: its VEs are unknown, refused (leave needs its agent back)" ]
	grep -qx 'COORDINATOR="198.18.0.240:7800"' "$VZ_SANDBOX_DIR/h3/etc/vz/vz.conf"
	restart_agents h3
	wait_for 10 state_is h3 online
}

@test "leave of a host with no VE running removes it, and its agent heartbeats no more" {
	local end pid
	h3_joined
	on h3 vzctl create 304 --ostemplate busybox >/dev/null
	wait_for 10 listed 304 stopped h3
	pid=$(cat "$VZ_SANDBOX_DIR/h3/agent.pid")
	# A hashed known_hosts (ssh-keygen -H, Debian's HashKnownHosts) serves.
	grep -v -e '^#' -e '^@' -e '^h9 ' "$KNOWN" >"$BATS_TEST_TMPDIR/known_hosts"
	ssh-keygen -q -H -f "$BATS_TEST_TMPDIR/known_hosts"
	run ! grep -q -F -e 'h3,' -e '198.18.0.3' "$BATS_TEST_TMPDIR/known_hosts"
	run on coord vzcoord leave h3 --known-hosts "$BATS_TEST_TMPDIR/known_hosts"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "h3 left the pool: its agent restarted with no coordinator" ]
	[ -z "$(host_state h3)" ]
	not_listed 304
	grep -qx 'COORDINATOR=""' "$VZ_SANDBOX_DIR/h3/etc/vz/vz.conf"
	# A new agent, which goes on serving its host.
	[ "$(cat "$VZ_SANDBOX_DIR/h3/agent.pid")" != "$pid" ]
	on h3 vzctl status 304 | grep -q exist
	on coord vzcoord events | grep -q ' left  *h3 .*vzcoord leave'
	# Three of its heartbeat intervals (1 s) go by without h3 coming back.
	end=$((SECONDS + 4))
	while [ "$SECONDS" -lt "$end" ]; do
		[ -z "$(host_state h3)" ] || { on coord vzcoord status; false; }
		sleep 0.2
	done
	# The store forgot it too: a coordinator started again knows no h3.
	"$SB" restart coord
	[ -z "$(host_state h3)" ]
	wait_for 10 state_is h1 online
}

@test "join and leave with bad usage say so in one line and exit 2" {
	local args
	for args in "join" "leave" "join h1 h2" "join --port 0 h3" "join --bogus h3" "join h3;reboot" "join root@" \
		"leave h3:99999"; do
		# shellcheck disable=SC2086 # the words of each case
		run on coord vzcoord $args
		echo "$args: $output"
		[ "$status" -eq 2 ]
		[ "${#lines[@]}" -eq 1 ]
		[[ $output == "vzcoord: "*"(vzcoord --help)" ]]
	done
}
