# Shared setup for integration tests: one agent per test file, in a network
# namespace of its own and with its own VZ_ROOT and cgroup base, so tests
# never touch the host's VEs, bridge or cgroups. Everything made here is
# removed in vz_teardown, by pid and by name of what we created.

bats_require_minimum_version 1.5.0

VZ_TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
export PATH="$VZ_TOP/build/bin:$PATH"

# Poll a condition with a deadline instead of sleeping.
wait_for() {
	local secs=$1
	shift
	local end=$((SECONDS + secs))
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.05
	done
}

vz_ns() {
	nsenter --net="/run/netns/$VZ_NETNS" "$@"
}

vz_start_agent() {
	nsenter --net="/run/netns/$VZ_NETNS" \
		"$VZ_TOP/build/bin/vzagent" --log "$VZ_ROOT/var/log/vzagent.log" \
		>>"$VZ_ROOT/agent.stderr" 2>&1 &
	VZ_AGENT_PID=$!
	echo "$VZ_AGENT_PID" >"$VZ_ROOT/agent.pid"
	wait_for 10 test -S "$VZ_ROOT/run/vz/agent.sock"
}

vz_stop_agent() {
	local pid
	pid=$(cat "$VZ_ROOT/agent.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
}

# The busybox cache is built once per test run and copied into each root.
vz_template() {
	local shared="$VZ_TOP/build/test-cache"
	if [ ! -f "$shared/vz/template/cache/busybox.tar.zst" ]; then
		mkdir -p "$shared"
		VZ_ROOT="$shared" vzpkg create cache busybox >/dev/null
	fi
	mkdir -p "$VZ_ROOT/vz/template/cache"
	cp "$shared/vz/template/cache/busybox.tar.zst" "$VZ_ROOT/vz/template/cache/"
}

vz_setup() {
	export VZ_NETNS="vzt$$"
	export VZ_ROOT="$BATS_FILE_TMPDIR/root"
	export VZ_CGBASE="vzt$$"
	mkdir -p "$VZ_ROOT/etc/vz" "$VZ_ROOT/var/log"
	cat >"$VZ_ROOT/etc/vz/vz.conf" <<-CONF
		VE_BRIDGE="vzbr0"
		VE_IP_PREFIX="24"
		DEF_OSTEMPLATE="busybox"
		STOP_TIMEOUT="10"
		CGROUP_BASE="$VZ_CGBASE"
		LOG_LEVEL="debug"
	CONF
	ip netns add "$VZ_NETNS"
	vz_ns ip link set lo up
	vz_template
	vz_start_agent
	echo "$VZ_NETNS $VZ_CGBASE" >"$BATS_FILE_TMPDIR/ids"
}

vz_teardown() {
	[ -n "${VZ_ROOT:-}" ] || return 0
	local veid
	for veid in $(vzlist -a -1 2>/dev/null); do
		vzctl stop "$veid" --fast >/dev/null 2>&1
	done
	vz_stop_agent
	# Anything left behind by a failed test, by the pids and ids we made.
	local d f
	for f in "$VZ_ROOT"/run/vz/*.pid; do
		[ -f "$f" ] && kill -KILL "$(cut -d' ' -f1 "$f")" 2>/dev/null
	done
	for f in /sys/fs/cgroup/pids/"$VZ_CGBASE"/*/cgroup.procs /sys/fs/cgroup/"$VZ_CGBASE"/*/cgroup.procs; do
		[ -f "$f" ] && xargs -r kill -KILL <"$f" 2>/dev/null
	done
	sleep 0.2
	for d in /sys/fs/cgroup/*/"$VZ_CGBASE" /sys/fs/cgroup/"$VZ_CGBASE"; do
		[ -d "$d" ] || continue
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	grep -o " ${VZ_ROOT}[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null
	done
	ip netns del "$VZ_NETNS" 2>/dev/null
	rm -rf "$VZ_ROOT"
}

# Process $1 has ended: gone, or a zombie its parent has not reaped yet
# (kill -0 still reaches a zombie). Says what it is otherwise.
pid_dead() {
	local st
	st=$(sed -n 's/^State:\t\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 0
	[ -z "$st" ] || [ "$st" = Z ] || { echo "pid $1 is alive (state $st)"; return 1; }
}

# Host pid of a VE's init, from the agent's pid file.
vz_init_pid() {
	cut -d' ' -f1 "$VZ_ROOT/run/vz/$1.pid"
}

vz_cgroup_dir() {
	if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
		echo "/sys/fs/cgroup/$VZ_CGBASE/$1"
	else
		echo "/sys/fs/cgroup/pids/$VZ_CGBASE/$1"
	fi
}

# CPU time a VE's cgroup has used, in nanoseconds.
vz_cpu_ns() {
	local f
	if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
		f="/sys/fs/cgroup/$VZ_CGBASE/$1/cpu.stat"
		echo $(($(awk '$1 == "usage_usec" {print $2}' "$f") * 1000))
	else
		cat "/sys/fs/cgroup/cpuacct/$VZ_CGBASE/$1/cpuacct.usage"
	fi
}

# The words of the arguments, one space between each (columns of vzlist).
squeeze() {
	local -a w
	read -ra w -d '' <<<"$*" || true
	echo "${w[*]}"
}

# Monotonic time in nanoseconds.
now_ns() {
	date +%s%N
}


# ---- workloads (tests/workloads, zdtm style) --------------------------
#
# Host "-" is the single agent of vz_setup; h1, h2, ... are hosts of the
# sandbox of sb_setup. The workload named wl-NAME-TAG is wl-NAME run with
# -n TAG.

# Run a command as on host $1.
vz_on() {
	local h=$1
	shift
	if [ "$h" = - ]; then
		"$@"
	else
		"$VZ_TOP/deploy/sandbox" exec "$h" "$@"
	fi
}

# VZ_ROOT of host $1.
vz_root_of() {
	if [ "$1" = - ]; then echo "$VZ_ROOT"; else echo "$VZ_SANDBOX_DIR/$1"; fi
}

# Copy workloads $3... into VE $2 on host $1 (its root mounted).
wl_put() {
	local h=$1 veid=$2 w
	shift 2
	for w in "$@"; do
		cp "$VZ_TOP/build/tests/workloads/$w" "$(vz_root_of "$h")/vz/root/$veid/bin/"
	done
}

# Start, in VE $2 on host $1, each command line given (e.g. "wl-mem -m 64").
wl_run() {
	local h=$1 veid=$2 c
	shift 2
	for c in "$@"; do
		vz_on "$h" vzctl exec "$veid" "$c" >/dev/null || { echo "$c: did not start"; return 1; }
	done
}

# Ask workload $3 of VE $2 on host $1 whether its state is intact; prints
# its answer (PASS or FAIL: reason) and succeeds on PASS.
wl_check() {
	local h=$1 veid=$2 w=$3 out
	vz_on "$h" vzctl exec "$veid" "rm -f /run/$w.result; kill -USR1 \$(cat /run/$w.pid)" ||
		{ echo "$w: cannot signal it"; return 1; }
	wait_for 10 vz_on "$h" vzctl exec "$veid" test -f "/run/$w.result" || { echo "$w: no answer"; return 1; }
	out=$(vz_on "$h" vzctl exec "$veid" cat "/run/$w.result")
	echo "$w: $out"
	[ "$out" = PASS ]
}

# Every workload $3... of VE $2 on host $1 passes (all are asked first,
# then all answers read).
wl_all_pass() {
	local h=$1 veid=$2 w out rc=0
	shift 2
	for w in "$@"; do
		vz_on "$h" vzctl exec "$veid" "rm -f /run/$w.result; kill -USR1 \$(cat /run/$w.pid)" ||
			{ echo "$w: cannot signal it"; rc=1; }
	done
	for w in "$@"; do
		if ! wait_for 10 vz_on "$h" vzctl exec "$veid" test -f "/run/$w.result"; then
			echo "$w: no answer"
			rc=1
			continue
		fi
		out=$(vz_on "$h" vzctl exec "$veid" cat "/run/$w.result")
		echo "$w: $out"
		[ "$out" = PASS ] || rc=1
	done
	return $rc
}

# ---- a sandbox of hosts (deploy/sandbox) for migration tests ---------

SB="$VZ_TOP/deploy/sandbox"

# sb_setup NAME [N] [--coordinator [--no-member hK]...]: sandbox NAME (a
# short prefix; the bats pid is added, 11 characters at most in all) of N
# hosts (default 2), agents started with MIGRATE_TIMEOUT=5 so that a silent
# peer ends a migration in 5 s; with --coordinator, vzcoord too (the
# sandbox's coord) and every agent its member but those of --no-member.
# Lines in SB_AGENT_CONF are added to every host's vz.conf, and those of
# SB_COORD_CONF to vzcoord.conf (the coordinator restarted with them)
# before the agents restart.
sb_setup() {
	export VZ_SANDBOX="$1$$"
	export VZ_SANDBOX_DIR="$BATS_FILE_TMPDIR/sandbox"
	local n=${2:-2} coord=${3:-} k
	VZ_SANDBOX=${VZ_SANDBOX:0:11}
	"$SB" up "$n" "${@:3}" >/dev/null
	for ((k = 1; k <= n; k++)); do
		echo 'MIGRATE_TIMEOUT="5"' >>"$VZ_SANDBOX_DIR/h$k/etc/vz/vz.conf"
		[ -z "${SB_AGENT_CONF:-}" ] || echo "$SB_AGENT_CONF" >>"$VZ_SANDBOX_DIR/h$k/etc/vz/vz.conf"
	done
	if [ -n "$coord" ] && [ -n "${SB_COORD_CONF:-}" ]; then
		echo "$SB_COORD_CONF" >>"$VZ_SANDBOX_DIR/coord/etc/vz/vzcoord.conf"
		"$SB" restart coord
	fi
	SB_HOSTS=$(seq -f 'h%g' 1 "$n" | tr '\n' ' ')
	export SB_HOSTS
	restart_agents
}

sb_teardown() {
	local p
	for p in "$VZ_SANDBOX_DIR"/probe*.pid; do
		[ -f "$p" ] && kill -TERM "$(cat "$p")" 2>/dev/null
	done
	"$SB" down >/dev/null 2>&1
	return 0
}

on() {
	"$SB" exec "$@"
}

# A test leaves no link cut or slowed, and no VE, for the next.
sb_test_teardown() {
	local h v
	for h in $SB_HOSTS; do
		"$SB" link "$h" up >/dev/null 2>&1 || true
		"$SB" link "$h" rate off >/dev/null 2>&1 || true
	done
	[ -f "$BATS_TEST_TMPDIR/out" ] && cat "$BATS_TEST_TMPDIR/out"
	# An agent a failed test killed and did not restart.
	for h in $SB_HOSTS; do
		kill -0 "$(cat "$VZ_SANDBOX_DIR/$h/agent.pid")" 2>/dev/null || restart_agents "$h"
	done
	for h in $SB_HOSTS; do
		for v in $(on "$h" vzlist -a -1 2>/dev/null); do
			on "$h" vzctl stop "$v" --fast >/dev/null 2>&1
			on "$h" vzctl destroy "$v" >/dev/null 2>&1
		done
	done
	return 0
}

# The pool as the sandbox's coordinator sees it (sb_setup ... --coordinator).
# The state vzcoord status gives host $1.
host_state() {
	on coord vzcoord status | awk -v h="$1" '$1 == h { print $2 }'
}

state_is() {
	[ "$(host_state "$1")" = "$2" ]
}

# vzcoord list has VE $1 with status $2 on host $3.
listed() {
	on coord vzcoord list | awk -v v="$1" -v s="$2" -v h="$3" '$1 == v && $2 == s && $3 == h { f = 1 } END { exit !f }'
}

# The hosts vzcoord list gives VE $1 (one line each).
hosts_of() {
	on coord vzcoord list -j | jq -r ".[] | select(.veid == $1) | .host"
}

# VE $1 is on host $2, and on no other.
is_on() {
	[ "$(hosts_of "$1")" = "$2" ]
}

# shellcheck disable=SC2120 # the hosts are optional
# Agents read vz.conf at start: restart them (or those of the hosts named)
# by pid; VEs keep running.
restart_agents() {
	local h pid hosts=("$@")
	# shellcheck disable=SC2206 # word splitting wanted: a list of names
	[ ${#hosts[@]} -gt 0 ] || hosts=($SB_HOSTS)
	for h in "${hosts[@]}"; do
		pid=$(cat "$VZ_SANDBOX_DIR/$h/agent.pid")
		kill -TERM "$pid" 2>/dev/null || true
		wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
		VZ_ROOT="$VZ_SANDBOX_DIR/$h" nsenter --net="/run/netns/$VZ_SANDBOX-$h" "$VZ_TOP/build/bin/vzagent" \
			--log "$VZ_SANDBOX_DIR/$h/var/log/vzagent.log" </dev/null >>"$VZ_SANDBOX_DIR/$h/agent.stderr" 2>&1 3>&- &
		echo $! >"$VZ_SANDBOX_DIR/$h/agent.pid"
		# Not a job of the test's shell: kill_agent's kill is no news.
		disown $!
		wait_for 10 test -S "$VZ_SANDBOX_DIR/$h/run/vz/agent.sock"
	done
}

# Kill host $1's agent and its workers by pid. A VE's init is the agent's
# child too (it is a subreaper): it is left alone, as a crashed agent would.
kill_agent() {
	local pid kids
	pid=$(cat "$VZ_SANDBOX_DIR/$1/agent.pid")
	mapfile -t kids < <(agent_workers "$1")
	kill -KILL "$pid" "${kids[@]}"
}

# The pids of host $1's agent's workers (its children outside any VE).
agent_workers() {
	local pid k
	pid=$(cat "$VZ_SANDBOX_DIR/$1/agent.pid")
	for k in $(ps -o pid= --ppid "$pid" || true); do
		grep -q "/$VZ_SANDBOX-$1/" "/proc/$k/cgroup" 2>/dev/null || echo "$k"
	done
}

# The workload set most migration tests run, and the command lines.
SB_WORKLOADS=(wl-mem wl-counter wl-pipe wl-unix wl-file wl-threads wl-tcpecho)

# sb_ve HOST VEID [IP]: a running VE with the workloads of SB_WORKLOADS
# copied in and started (wl-churn copied too). No IP: none is given.
sb_ve() {
	local h=$1 veid=$2 ip=${3:-}
	if [ -n "$ip" ]; then
		on "$h" vzctl create "$veid" --ostemplate busybox --ipadd "$ip" >/dev/null
	else
		on "$h" vzctl create "$veid" --ostemplate busybox >/dev/null
	fi
	on "$h" vzctl start "$veid" >/dev/null
	wl_put "$h" "$veid" "${SB_WORKLOADS[@]}" wl-churn
	wl_run "$h" "$veid" "wl-mem -m 64 -r 2" wl-counter wl-pipe wl-unix wl-file "wl-threads -t 4" "wl-tcpecho -p 7000"
}

# The workloads of VE $2 on host $1 (those named after it, or the set of
# sb_ve) all pass their self-checks.
passes_on() {
	local h=$1 veid=$2
	shift 2
	[ $# -gt 0 ] || set -- "${SB_WORKLOADS[@]}"
	run wl_all_pass "$h" "$veid" "$@"
	echo "$output"
	[ "$status" -eq 0 ]
}

running_on() {
	[ "$(on "$1" vzctl status "$2")" = "VEID $2 exist mounted running" ]
}

# Nothing of VE $2 on host $1: no config, private area, mount, idmapped
# root, cgroup, pid file, veth, network filter or half-received images.
nothing_of() {
	local r="$VZ_SANDBOX_DIR/$1"
	[ ! -e "$r/etc/vz/conf/$2.conf" ] || { echo "config left on $1"; return 1; }
	[ ! -e "$r/vz/private/$2" ] || { echo "private area left on $1"; return 1; }
	if grep -q " $r/vz/root/$2 " /proc/self/mountinfo; then echo "mount left on $1"; return 1; fi
	if grep -q " $r/run/vz/idroot/$2 " /proc/self/mountinfo; then echo "idmapped root left on $1"; return 1; fi
	[ ! -d "/sys/fs/cgroup/pids/$VZ_SANDBOX-$1/$2" ] || { echo "cgroup left on $1"; return 1; }
	[ ! -e "$r/run/vz/$2.pid" ] || { echo "pid file left on $1"; return 1; }
	if on "$1" ip link show "veth$2.0" >/dev/null 2>&1; then echo "veth left on $1"; return 1; fi
	if on "$1" nft list table bridge "vz_ve_$2" >/dev/null 2>&1; then echo "network filter left on $1"; return 1; fi
	if compgen -G "$r/vz/dump/$2.incoming.*" >/dev/null; then echo "images left on $1"; return 1; fi
	if compgen -G "$r/vz/dump/$2.lazy.*" >/dev/null; then echo "lazy-restore files left on $1"; return 1; fi
	[ ! -e "$r/vz/migrate/$2.incoming" ] || { echo "incoming marker left on $1"; return 1; }
}

# vzmigrate on host $1 with the rest as arguments, in the background: its
# output, then "rc=STATUS", go to $BATS_TEST_TMPDIR/out.
migrate_bg() {
	local src=$1
	shift
	(
		rc=0
		on "$src" vzmigrate "$@" >"$BATS_TEST_TMPDIR/out" 2>&1 || rc=$?
		echo "rc=$rc" >>"$BATS_TEST_TMPDIR/out"
	) 3>&- &
}

# The background vzmigrate has ended (migrate_bg), within $1 seconds.
migrate_wait() {
	wait_for "$1" grep -q "^rc=" "$BATS_TEST_TMPDIR/out"
}

# The background vzmigrate ended with status $1.
migrate_rc() {
	grep -qx "rc=$1" "$BATS_TEST_TMPDIR/out"
}

# A TCP client in the sandbox's client namespace, talking to the echo
# server on port 7000 of address $2; its state goes to $1.status.
# Its first line (once connected) says its signal handlers are in place.
start_probe() {
	rm -f "$VZ_SANDBOX_DIR/$1.status"
	nsenter --net="/run/netns/$VZ_SANDBOX-c" "$VZ_TOP/build/tests/workloads/tcpprobe" \
		-o "$VZ_SANDBOX_DIR/$1.status" "$2" 7000 </dev/null >/dev/null 2>&1 3>&- &
	echo $! >"$VZ_SANDBOX_DIR/$1.pid"
	wait_for 10 test -s "$VZ_SANDBOX_DIR/$1.status"
	wait_for 5 probe_ok "$1"
}

probe_line() {
	rm -f "$VZ_SANDBOX_DIR/$1.status"
	kill -USR1 "$(cat "$VZ_SANDBOX_DIR/$1.pid")"
	wait_for 5 test -s "$VZ_SANDBOX_DIR/$1.status"
	cat "$VZ_SANDBOX_DIR/$1.status"
}

probe_ok() {
	[[ "$(probe_line "$1")" == *"state=ok"* ]] && [ "$(probe_field "$1" received)" -gt 10 ]
}

probe_field() {
	sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$(probe_line "$1")"
}

stop_probe() {
	local p
	p=$(cat "$VZ_SANDBOX_DIR/$1.pid" 2>/dev/null) && kill -TERM "$p" 2>/dev/null
	rm -f "$VZ_SANDBOX_DIR/$1.pid"
}
