#!/usr/bin/env bats
# Checkpoint and restore of VEs that a new user's VE looks like, not a
# test's: one without any IP address, one where a process is stopped
# (Ctrl-Z in a shell), one with a process waiting in vfork() and a zombie,
# one holding open a file whose name and directory were removed. And a
# CRIU that hangs: every wait on it is bounded by CRIU_TIMEOUT, after
# which it is killed and the VE runs on.

load helpers

setup_file() {
	vz_setup
	# A parent whose child sits in vfork(): the child neither execs nor
	# exits until it is sent SIGTERM.
	cc -static -O1 -o "$BATS_FILE_TMPDIR/vforker" -x c - <<-'EOF'
		#include <fcntl.h>
		#include <signal.h>
		#include <stdio.h>
		#include <unistd.h>
		static volatile sig_atomic_t done;
		static void on_term(int s) { (void)s; done = 1; }
		int main(void)
		{
			FILE *f;
			pid_t c;

			int null = open("/dev/null", O_RDWR);

			if (fork() > 0)
				return 0;
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			setsid();
			f = fopen("/run/vforker.pid", "w");
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
			c = vfork();
			if (c == 0) {
				signal(SIGTERM, on_term);
				while (!done)
					pause();
				_exit(0);
			}
			f = fopen("/run/vforker.done", "w");
			fclose(f);
			for (;;)
				pause();
		}
	EOF
}

teardown_file() {
	vz_teardown
}

teardown() {
	local v
	for v in 931 932 933 934; do
		vzctl stop "$v" --fast >/dev/null 2>&1
		vzctl destroy "$v" >/dev/null 2>&1
	done
	true
}

nothing_left_of() {
	[ ! -e "$VZ_ROOT/run/vz/$1.pid" ] || { echo "pid file left"; return 1; }
	[ ! -d "$(vz_cgroup_dir "$1")" ] || { echo "cgroup left"; return 1; }
	! grep -q " $VZ_ROOT/vz/root/$1 " /proc/self/mountinfo || { echo "mount left"; return 1; }
	! vz_ns ip link show "veth$1.0" >/dev/null 2>&1 || { echo "veth left"; return 1; }
}

# The state letter of a process of VE $1 by its pid inside the VE.
ve_proc_state() {
	vzctl exec "$1" "sed 's/.*) \\(.\\).*/\\1/' /proc/$2/stat"
}

state_is() {
	[ "$(ve_proc_state "$1" "$2")" = "$3" ]
}

# Pids of the CRIU processes the agent's workers run (criu swrk is a
# worker's child): by the file each runs (criu, or the loader of the CRIU
# install-deps unpacked under its own root), never by a command line.
criu_pids() {
	local agent criu top w p exe
	agent=$(cat "$VZ_ROOT/agent.pid")
	criu=$(readlink -f "$(cat /etc/vz/criu.path)")
	top=$(dirname "$(dirname "$criu")")
	for w in $(pgrep -P "$agent"); do
		for p in $(pgrep -P "$w"); do
			exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
			case "$exe" in
			"$criu" | */criu | "$top"/root/*) echo "$p" ;;
			esac
		done
	done
}

@test "a VE without an IP address is checkpointed and restored" {
	vzctl create 931 --ostemplate busybox >/dev/null
	vzctl start 931 >/dev/null
	vzctl exec 931 'sleep 1000 </dev/null >/dev/null 2>&1 & echo $! >/run/sleeper.pid'
	sleeper=$(vzctl exec 931 cat /run/sleeper.pid)
	wait_for 10 vzctl exec 931 "grep -qx sleep /proc/$sleeper/comm"
	run timeout 120 vzctl chkpnt 931
	echo "$output"
	[ "$status" -eq 0 ]
	nothing_left_of 931
	run timeout 120 vzctl restore 931
	echo "$output"
	[ "$status" -eq 0 ]
	run vzctl status 931
	[ "$output" = "VEID 931 exist mounted running" ]
	[ "$(vzctl exec 931 cat "/proc/$sleeper/comm")" = sleep ]
	# It had no network and has none now: no veth was made for it.
	run vz_ns ip link show veth931.0
	[ "$status" -ne 0 ]
}

@test "a stopped process and a zombie survive chkpnt and restore, same pids, same states" {
	vzctl create 932 --ostemplate busybox --ipadd 198.18.21.2 >/dev/null
	vzctl start 932 >/dev/null
	# A job suspended as with Ctrl-Z, once it runs sleep (stopped before
	# its exec it would still hold the exec's stdin, the host's /dev/null).
	vzctl exec 932 'sleep 1000 </dev/null >/dev/null 2>&1 & echo $! >/run/stopped.pid'
	stopped=$(vzctl exec 932 cat /run/stopped.pid)
	wait_for 10 vzctl exec 932 "grep -qx sleep /proc/$stopped/comm"
	vzctl exec 932 "kill -STOP $stopped"
	# A zombie: sleep 1 exits, and its parent (now sleep 1000) never reaps it.
	vzctl exec 932 '(sleep 1 & echo $! >/run/zombie.pid; exec sleep 1000) </dev/null >/dev/null 2>&1 &'
	zombie=$(vzctl exec 932 cat /run/zombie.pid)
	wait_for 10 state_is 932 "$stopped" T
	wait_for 10 state_is 932 "$zombie" Z
	vzctl exec 932 'ps -o pid,stat,comm' >"$BATS_FILE_TMPDIR/ps.before"

	t0=$SECONDS
	run timeout 120 vzctl chkpnt 932
	echo "$output"
	[ "$status" -eq 0 ]
	[ $((SECONDS - t0)) -lt 60 ]
	nothing_left_of 932
	run timeout 120 vzctl restore 932
	echo "$output"
	[ "$status" -eq 0 ]
	vzctl exec 932 'ps -o pid,stat,comm' >"$BATS_FILE_TMPDIR/ps.after"
	diff <(grep -v ' ps$' "$BATS_FILE_TMPDIR/ps.before") <(grep -v ' ps$' "$BATS_FILE_TMPDIR/ps.after")
	# Still stopped, still the same process; it runs on when continued.
	[ "$(ve_proc_state 932 "$stopped")" = T ]
	[ "$(vzctl exec 932 cat "/proc/$stopped/comm")" = sleep ]
	vzctl exec 932 "kill -CONT $stopped"
	wait_for 10 state_is 932 "$stopped" S
	[ "$(ve_proc_state 932 "$zombie")" = Z ]
}

@test "a parent in vfork() is refused in bounded time, the VE runs on, and is checkpointed once the child exits" {
	vzctl create 932 --ostemplate busybox --ipadd 198.18.21.2 >/dev/null
	vzctl start 932 >/dev/null
	cp "$BATS_FILE_TMPDIR/vforker" "$VZ_ROOT/vz/root/932/bin/vforker"
	vzctl exec 932 /bin/vforker </dev/null
	vforker=$(vzctl exec 932 cat /run/vforker.pid)
	wait_for 10 vzctl exec 932 "grep -q '^PPid:.*$vforker\$' /proc/[0-9]*/status"
	child=$(vzctl exec 932 "grep -l '^PPid:.*$vforker\$' /proc/[0-9]*/status" | head -1 | cut -d/ -f3)
	run vzctl exec 932 test -e /run/vforker.done
	[ "$status" -ne 0 ]
	init=$(vz_init_pid 932)

	t0=$SECONDS
	run timeout 120 vzctl chkpnt 932
	echo "$output"
	[ "$status" -eq 16 ]
	[ $((SECONDS - t0)) -lt 30 ]
	[[ "$output" == *"waits in vfork() for its child"* ]]
	[ "$(grep -c 'vzctl:' <<<"$output")" -eq 1 ]
	run vzctl status 932
	[ "$output" = "VEID 932 exist mounted running" ]
	[ "$(vz_init_pid 932)" = "$init" ]
	# The pair goes on where it was: the child exits, its parent resumes.
	vzctl exec 932 "kill -TERM $child"
	wait_for 10 vzctl exec 932 test -e /run/vforker.done
	run timeout 120 vzctl chkpnt 932
	echo "$output"
	[ "$status" -eq 0 ]
	run timeout 120 vzctl restore 932
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(vzctl exec 932 cat "/proc/$vforker/comm")" = vforker ]
}

@test "a process holding files whose names and directory were removed survives chkpnt and restore" {
	vzctl create 933 --ostemplate busybox --ipadd 198.18.21.3 >/dev/null
	vzctl start 933 >/dev/null
	# f has no name left at all; g keeps another name elsewhere (so CRIU
	# must link it back, not copy it: its link_remap option).
	vzctl exec 933 'mkdir /gone /keep; echo hello-world-of-ghosts >/gone/f; echo linked-elsewhere >/gone/g; ln /gone/g /keep/g'
	vzctl exec 933 "sh -c 'exec 3</gone/f 4</gone/g; dd bs=1 count=6 <&3 >/dev/null 2>&1; dd bs=1 count=7 <&4 >/dev/null 2>&1; rm -rf /gone; echo \$\$ >/run/holder.pid; exec sleep 1000' </dev/null >/dev/null 2>&1 &"
	wait_for 10 vzctl exec 933 'test -s /run/holder.pid && test ! -e /gone'
	holder=$(vzctl exec 933 cat /run/holder.pid)
	wait_for 10 vzctl exec 933 "grep -qx sleep /proc/$holder/comm"
	[ "$(vzctl exec 933 "sed -n 's/^pos:[[:space:]]*//p' /proc/$holder/fdinfo/3")" = 6 ]
	[ "$(vzctl exec 933 "sed -n 's/^pos:[[:space:]]*//p' /proc/$holder/fdinfo/4")" = 7 ]
	run timeout 120 vzctl chkpnt 933
	echo "$output"
	[ "$status" -eq 0 ]
	run timeout 120 vzctl restore 933
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(vzctl exec 933 cat "/proc/$holder/fd/3")" = hello-world-of-ghosts ]
	[ "$(vzctl exec 933 cat "/proc/$holder/fd/4")" = linked-elsewhere ]
	[ "$(vzctl exec 933 "sed -n 's/^pos:[[:space:]]*//p' /proc/$holder/fdinfo/3")" = 6 ]
	[ "$(vzctl exec 933 "sed -n 's/^pos:[[:space:]]*//p' /proc/$holder/fdinfo/4")" = 7 ]
	# Nothing CRIU made to carry them is left in the VE's tree.
	run vzctl exec 933 test -e /gone
	[ "$status" -ne 0 ]
	[ -z "$(vzctl exec 933 "find / -xdev -name 'link_remap.*'")" ]
	[ "$(vzctl exec 933 cat /keep/g)" = linked-elsewhere ]
}

@test "a CRIU that hangs mid-dump is killed after CRIU_TIMEOUT and the VE runs on" {
	echo 'CRIU_TIMEOUT="6"' >>"$VZ_ROOT/etc/vz/vz.conf"
	vz_stop_agent
	vz_start_agent
	vzctl create 934 --ostemplate busybox --ipadd 198.18.21.4 >/dev/null
	vzctl start 934 >/dev/null
	vzctl exec 934 'sleep 1000 </dev/null >/dev/null 2>&1 & echo $! >/run/sleeper.pid'
	wait_for 10 vzctl exec 934 'grep -qx sleep /proc/$(cat /run/sleeper.pid)/comm'
	# Enough memory that the dump takes a while.
	wl_put - 934 wl-mem
	vzctl exec 934 /bin/wl-mem -m 128 >/dev/null
	init=$(vz_init_pid 934)
	freezer=/sys/fs/cgroup/freezer/$VZ_CGBASE/934/freezer.state
	[ -e "$freezer" ] || freezer=/sys/fs/cgroup/$VZ_CGBASE/934/cgroup.freeze

	t0=$SECONDS
	timeout 120 vzctl chkpnt 934 >"$BATS_FILE_TMPDIR/hang.out" 2>&1 &
	client=$!
	# Stop CRIU once it serves the dump (it names its request in its
	# command line: "criu: dump --rpc ...").
	pids=""
	end=$((SECONDS + 30))
	while [ -z "$pids" ] && [ "$SECONDS" -lt "$end" ]; do
		for p in $(criu_pids); do
			tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q 'dump' && pids="$pids $p"
		done
	done
	echo "criu: $pids; freezer: $(cat "$freezer")"
	[ -n "$pids" ]
	# shellcheck disable=SC2086 # a list of pids
	kill -STOP $pids
	wait $client && rc=0 || rc=$?
	took=$((SECONDS - t0))
	cat "$BATS_FILE_TMPDIR/hang.out"
	echo "took $took s"
	[ "$rc" -eq 16 ]
	[ "$took" -lt 40 ]
	grep -q "CRIU dump timed out after 6 s" "$BATS_FILE_TMPDIR/hang.out"
	[ "$(grep -c 'vzctl:' "$BATS_FILE_TMPDIR/hang.out")" -eq 1 ]
	# Nothing of CRIU is left, the VE is thawed and the same VE runs on.
	for p in $pids; do
		run kill -0 "$p"
		[ "$status" -ne 0 ]
	done
	[ -z "$(criu_pids)" ]
	# Nor a dump file of a state the VE has left behind.
	[ ! -e "$VZ_ROOT/vz/dump/Dump.934" ]
	run cat "$freezer"
	[[ "$output" == THAWED || "$output" == 0 ]]
	run vzctl status 934
	[ "$output" = "VEID 934 exist mounted running" ]
	[ "$(vz_init_pid 934)" = "$init" ]
	run timeout 10 vzctl exec 934 echo alive
	[ "$output" = alive ]
	sed -i '/^CRIU_TIMEOUT=/d' "$VZ_ROOT/etc/vz/vz.conf"
	vz_stop_agent
	vz_start_agent
}
