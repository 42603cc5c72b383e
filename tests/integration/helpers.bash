# Shared setup for integration tests: one agent per test file, in a network
# namespace of its own and with its own VZ_ROOT and cgroup base, so tests
# never touch the host's VEs, bridge or cgroups. Everything made here is
# removed in vz_teardown, by pid and by name of what we created.

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
	VZ_ROOT="$VZ_ROOT" nsenter --net="/run/netns/$VZ_NETNS" \
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
	grep -o " $VZ_ROOT[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null
	done
	ip netns del "$VZ_NETNS" 2>/dev/null
	rm -rf "$VZ_ROOT"
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

# Monotonic time in nanoseconds.
now_ns() {
	local up
	read -r up _ </proc/uptime
	date +%s%N
}

# Copy a static workload into a VE (its root must be mounted).
vz_put_workload() {
	cp "$VZ_TOP/build/tests/workloads/$2" "$VZ_ROOT/vz/root/$1/bin/$2"
}
