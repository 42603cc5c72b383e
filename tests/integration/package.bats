#!/usr/bin/env bats
# The Debian package: make deb builds it with what an administrator needs,
# apt installs it for real, its tools work from PATH and the units verify,
# the daemons' lines carry journald priorities, and neither an agent stop
# nor removing the package stops a running VE. This machine must have no
# vzcluster installed (the file skips otherwise); teardown_file purges it.

load helpers
# The installed tools before the build's (helpers put build/bin on PATH,
# which still serves teardown once the package is removed).
export PATH="/usr/sbin:$PATH"

VZ_UNITS=/lib/systemd/system
VZ_WANTS=/etc/systemd/system/multi-user.target.wants

pkg_installed() {
	dpkg-query -W -f='${Status}' vzcluster 2>/dev/null | grep -q ' installed$'
}

# Start the installed agent with JOURNAL_STREAM naming its stderr file, as
# systemd does for a unit's stderr connected to the journal.
pkg_start_agent() {
	local stream
	: >>"$VZ_ROOT/agent.stderr"
	stream=$(stat -c %d:%i "$VZ_ROOT/agent.stderr")
	JOURNAL_STREAM=$stream \
		nsenter --net="/run/netns/$VZ_NETNS" /usr/sbin/vzagent --log "$VZ_ROOT/var/log/vzagent.log" \
		>>"$VZ_ROOT/agent.stderr" 2>&1 &
	echo $! >"$VZ_ROOT/agent.pid"
	wait_for 10 test -S "$VZ_ROOT/run/vz/agent.sock"
}

setup_file() {
	if dpkg-query -W vzcluster >/dev/null 2>&1 || [ -e /usr/sbin/vzagent ] || [ -e /etc/vz/vz.conf ] ||
		[ -e /usr/share/vz ] || [ -e "$VZ_UNITS/vzagent.service" ]; then
		skip "vzcluster is installed on this machine already: this test would replace it"
	fi
	DEB_BUILD_OPTIONS=parallel=2 make -C "$VZ_TOP" deb >"$BATS_FILE_TMPDIR/deb.log" 2>&1 ||
		{ tail -n 30 "$BATS_FILE_TMPDIR/deb.log"; return 1; }
	VZ_DEB=$(ls "$VZ_TOP"/build/deb/vzcluster_*_amd64.deb)
	export VZ_DEB
	apt-get -o DPkg::Lock::Timeout=300 install -y "$VZ_DEB" >"$BATS_FILE_TMPDIR/apt.log" 2>&1 ||
		{ tail -n 30 "$BATS_FILE_TMPDIR/apt.log"; return 1; }
	export VZ_NETNS="vzt$$" VZ_ROOT="$BATS_FILE_TMPDIR/root" VZ_CGBASE="vzt$$"
	mkdir -p "$VZ_ROOT/etc/vz" "$VZ_ROOT/var/log"
	# The package's vz.conf (every setting at its default) and this file's
	# own cgroups.
	cp /etc/vz/vz.conf "$VZ_ROOT/etc/vz/vz.conf"
	printf 'CGROUP_BASE="%s"\nSTOP_TIMEOUT="10"\n' "$VZ_CGBASE" >>"$VZ_ROOT/etc/vz/vz.conf"
	ip netns add "$VZ_NETNS"
	vz_ns ip link set lo up
	/usr/sbin/vzpkg create cache busybox >"$BATS_FILE_TMPDIR/vzpkg.log" 2>&1 ||
		{ cat "$BATS_FILE_TMPDIR/vzpkg.log"; return 1; }
	pkg_start_agent
}

teardown_file() {
	vz_teardown
	if dpkg-query -W vzcluster >/dev/null 2>&1; then
		apt-get -o DPkg::Lock::Timeout=300 purge -y vzcluster >/dev/null 2>&1
	fi
}

@test "make deb builds a package of the tools, daemons, units, templates and vz.conf" {
	[[ $(basename "$VZ_DEB") == "vzcluster_$(cd "$VZ_TOP" && dpkg-parsechangelog -S Version)_amd64.deb" ]]
	run dpkg-deb -c "$VZ_DEB"
	[ "$status" -eq 0 ]
	for f in usr/sbin/vzctl usr/sbin/vzlist usr/sbin/vzpkg usr/sbin/vzmigrate usr/sbin/vzagent usr/sbin/vzcoord \
		usr/sbin/vz-certs lib/systemd/system/vzagent.service lib/systemd/system/vzcoord.service \
		etc/vz/vz.conf etc/vz/vzcoord.conf usr/share/vz/templates/busybox/config; do
		[[ $output == *" ./$f"* ]] || { echo "missing $f"; return 1; }
	done
	run dpkg-deb -f "$VZ_DEB" Depends
	# shlibs found the libraries; the programs the agent runs are named.
	[[ $output == *libsystemd0* && $output == *libseccomp2* && $output == *iproute2* && $output == *nftables* ]]
	run dpkg-deb -I "$VZ_DEB" conffiles
	[ "$(sort <<<"$output" | tr '\n' ' ')" = "/etc/vz/vz.conf /etc/vz/vzcoord.conf " ]
}

@test "vz.conf lists every setting the agent reads, vzcoord.conf the coordinator's" {
	cd "$VZ_TOP"
	agent=$(grep -ohE '(vz_conf_get\(&(a->|a\.|c->agent->)global|ve_setting_yes\(a, ve), "[A-Z_]+"' agent/*.c |
		grep -oE '"[A-Z_]+"' | tr -d '"' | sort -u)
	coord=$(grep -ohE '(conf_uint|conf_path|conf_str|vz_conf_get)\(&?f, (path, )?"[A-Z_]+"' coordinator/serve.c \
		coordinator/join.c | grep -oE '"[A-Z_]+"' | tr -d '"' | sort -u)
	# Both read METRICS_LISTEN through vz_metrics_conf (lib/metrics_http.c).
	grep -q 'vz_metrics_conf(&a->global' agent/global.c
	grep -q 'vz_metrics_conf(&f' coordinator/serve.c
	agent=$(printf '%s\nMETRICS_LISTEN\n' "$agent" | sort -u)
	coord=$(printf '%s\nMETRICS_LISTEN\n' "$coord" | sort -u)
	[ "$(wc -l <<<"$agent")" -ge 20 ] && [ "$(wc -l <<<"$coord")" -ge 20 ]
	conf() { sed -n 's/^#\([A-Z_]*\)=.*/\1/p' "$1" | sort -u; }
	run diff <(echo "$agent") <(conf deploy/etc/vz.conf)
	[ "$status" -eq 0 ]
	run diff <(echo "$coord") <(conf deploy/etc/vzcoord.conf)
	[ "$status" -eq 0 ]
	# And every line is commented: the code's defaults apply.
	run grep -c '^[A-Z]' deploy/etc/vz.conf deploy/etc/vzcoord.conf
	[ "$output" = "deploy/etc/vz.conf:0
deploy/etc/vzcoord.conf:0" ]
}

@test "apt installs the tools on PATH, vz.conf and the agent's unit enabled" {
	pkg_installed
	[ "$(command -v vzctl)" = /usr/sbin/vzctl ]
	for t in vzctl vzlist vzpkg vzmigrate vzagent vzcoord; do
		run "$t" --help
		[ "$status" -eq 0 ] || { echo "$t --help: $status"; return 1; }
		[[ $output == *Usage* ]]
	done
	cmp /etc/vz/vz.conf "$VZ_TOP/deploy/etc/vz.conf"
	# A pool has one coordinator: its unit is installed, not enabled.
	[ "$(readlink "$VZ_WANTS/vzagent.service")" = "$VZ_UNITS/vzagent.service" ]
	[ ! -e "$VZ_WANTS/vzcoord.service" ]
}

@test "the installed units are Type=notify, KillMode=process and pass systemd-analyze verify" {
	for u in vzagent vzcoord; do
		grep -qx 'Type=notify' "$VZ_UNITS/$u.service"
		grep -qx 'KillMode=process' "$VZ_UNITS/$u.service"
		grep -qx 'Restart=on-failure' "$VZ_UNITS/$u.service"
	done
	grep -qx 'ExecStart=/usr/sbin/vzagent' "$VZ_UNITS/vzagent.service"
	# The man pages it names are checked once the package has them.
	man=no
	[ -e /usr/share/man/man8/vzagent.8.gz ] && man=yes
	run systemd-analyze --man=$man verify "$VZ_UNITS/vzagent.service" "$VZ_UNITS/vzcoord.service"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# And verify does find a broken unit.
	sed 's|^ExecStart=.*|ExecStart=/usr/sbin/vzagent-none|' "$VZ_UNITS/vzagent.service" >"$BATS_TEST_TMPDIR/vzagent.service"
	run systemd-analyze --man=no verify "$BATS_TEST_TMPDIR/vzagent.service"
	[ "$status" -ne 0 ]
}

@test "man vzmigrate shows the installed page" {
	if ! dpkg -L vzcluster | grep -q '/man8/vzmigrate\.8'; then
		skip "No man pages in the package: this tree has no doc/man sources (the docs branch adds them)"
	fi
	run man -w vzmigrate
	[ "$status" -eq 0 ]
	[ "$output" = /usr/share/man/man8/vzmigrate.8.gz ]
}

@test "the installed tools create, start, exec in, stop and destroy a busybox VE" {
	[ -f "$VZ_ROOT/vz/template/cache/busybox.tar.zst" ]
	run vzctl create 101 --ostemplate busybox --ipadd 198.18.12.1
	[ "$status" -eq 0 ]
	run vzctl start 101
	[ "$status" -eq 0 ]
	run vzctl exec 101 cat /proc/1/comm
	[ "$output" = init ]
	run vzlist -H -o veid,status 101
	[ "$(squeeze "$output")" = "101 running" ]
	run vzctl stop 101
	[ "$status" -eq 0 ]
	run vzctl destroy 101
	[ "$status" -eq 0 ]
	[ ! -e "$VZ_ROOT/etc/vz/conf/101.conf" ]
}

@test "the agent's lines carry syslog priorities when stderr is the journal, not in its log file" {
	grep -q '^<6>vzagent: vzagent started' "$VZ_ROOT/agent.stderr"
	grep -q ' INFO  vzagent started' "$VZ_ROOT/var/log/vzagent.log"
	run grep -c '<[0-7]>' "$VZ_ROOT/var/log/vzagent.log"
	[ "$output" = 0 ]
	# An error is <3>; with stderr elsewhere than JOURNAL_STREAM says, no prefix.
	root="$BATS_TEST_TMPDIR/bad"
	mkdir -p "$root/etc/vz"
	echo 'VE_IP_PREFIX="99"' >"$root/etc/vz/vz.conf"
	: >"$root/err"
	stream=$(stat -c %d:%i "$root/err")
	VZ_ROOT=$root JOURNAL_STREAM=$stream vzagent 2>>"$root/err" || true
	[ "$(cat "$root/err")" = "<3>vzagent: $root/etc/vz/vz.conf: VE_IP_PREFIX must be 1..32" ]
	run env VZ_ROOT="$root" JOURNAL_STREAM="$(stat -c %d:%i "$root/err")" vzagent
	[ "$status" -ne 0 ]
	[ "$output" = "vzagent: $root/etc/vz/vz.conf: VE_IP_PREFIX must be 1..32" ]
}

@test "an agent stop leaves a running VE running, and the next agent adopts it" {
	run vzctl create 102 --ostemplate busybox
	[ "$status" -eq 0 ]
	run vzctl start 102
	[ "$status" -eq 0 ]
	init=$(vz_init_pid 102)
	# What systemctl stop does with KillMode=process: SIGTERM to the agent.
	agent=$(cat "$VZ_ROOT/agent.pid")
	kill -TERM "$agent"
	wait_for 10 pid_dead "$agent"
	run pid_dead "$init"
	[ "$status" -ne 0 ]
	pkg_start_agent
	run vzctl exec 102 cat /proc/1/comm
	[ "$output" = init ]
}

@test "removing the package leaves a running VE running" {
	init=$(vz_init_pid 102)
	run apt-get -o DPkg::Lock::Timeout=300 remove -y vzcluster
	[ "$status" -eq 0 ]
	run pkg_installed
	[ "$status" -ne 0 ]
	[ ! -e /usr/sbin/vzctl ]
	run pid_dead "$init"
	[ "$status" -ne 0 ]
	# The agent runs on; the build's vzctl still reaches it.
	run "$VZ_TOP/build/bin/vzctl" exec 102 cat /proc/1/comm
	[ "$output" = init ]
	# A removed package keeps its conffiles until purged.
	[ -f /etc/vz/vz.conf ]
}

@test "purging the package leaves none of its files" {
	run apt-get -o DPkg::Lock::Timeout=300 purge -y vzcluster
	[ "$status" -eq 0 ]
	run dpkg-query -W vzcluster
	[ "$status" -ne 0 ]
	for f in /etc/vz/vz.conf /etc/vz/vzcoord.conf "$VZ_UNITS/vzagent.service" "$VZ_WANTS/vzagent.service" \
		/usr/share/vz /usr/sbin/vzagent; do
		[ ! -e "$f" ] || { echo "$f is left"; return 1; }
	done
}
