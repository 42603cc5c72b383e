#!/usr/bin/env bats
# A long test, not part of `make test` (it runs for more than 10 minutes):
# issue 15's live rebalancing end to end, with the coordinator's automatic
# rounds. Three hosts and a coordinator; three VEs on h1, each burning a
# CPU and running two self-checking workloads, none elsewhere. The
# coordinator, with REBALANCE_INTERVAL="5" and otherwise the defaults but
# the hot threshold (the sandbox's three hosts share this machine's two
# cores, as in rebalance.bats), moves VEs live by itself until the pool is
# balanced; then, under the same load, for QUIET_S seconds more (600 by
# default) it must move nothing. Every 30 s a line of the table goes to
# bench/results/rebalance-quiet.txt: the time, the imbalance a dry run
# reads, each host's VEs, the moves so far. At the end every VE runs on
# exactly one host and its workloads pass.
#
#   make && bats tests/long/rebalance_quiet.bats
#   QUIET_S=60 bats tests/long/rebalance_quiet.bats     # a short look

load ../integration/helpers

QUIET_S=${QUIET_S:-600}
OUT="$VZ_TOP/bench/results/rebalance-quiet.txt"

setup_file() {
	export SB_AGENT_CONF='HEARTBEAT_INTERVAL="1"'
	export SB_COORD_CONF=$'REBALANCE_INTERVAL="5"\nREBALANCE_HOT="40"'
	sb_setup vzrq 3 --coordinator
}

teardown_file() {
	sb_teardown
}

# The moves in the coordinator's store, of every state.
moves() {
	sqlite3 "$VZ_SANDBOX_DIR/coord/var/lib/vz/vzcoord.db" "SELECT count(*) FROM moves"
}

moves_done() {
	sqlite3 "$VZ_SANDBOX_DIR/coord/var/lib/vz/vzcoord.db" "SELECT count(*) FROM moves WHERE state = 'done'"
}

# A dry run now: its lines in DRY.
dry() {
	DRY=$(on coord vzcoord rebalance --dry-run 2>&1)
}

# The imbalance the last dry run read, or the first line it printed when
# it gives none.
imbalance() {
	sed -n 's/.*imbalance \([0-9.]*\).*/\1/p' <<<"$DRY" | head -n 1 | grep . || echo "${DRY%%$'\n'*}"
}

# Each host's VEs as vzcoord lists them, "h1:101,102 h2:103 h3:-".
layout() {
	local h
	for h in h1 h2 h3; do
		printf '%s:%s ' "$h" "$(on coord vzcoord list | awk -v h="$h" '$3 == h { printf "%s%s", s, $1; s = "," }' | grep . || echo -)"
	done
}

balanced() {
	grep -q 'no move: imbalance' <<<"$DRY"
}

row() {
	printf '%6s  %5s  %-28s  %s\n' "$1" "$4" "$3" "$2" | tee -a "$OUT" >&3
}

@test "automatic rounds balance three busy VEs off h1, then move nothing for QUIET_S seconds of the same load" {
	local v h start t n0 n
	for v in 111 112 113; do
		on h1 vzctl create "$v" --ostemplate busybox >/dev/null
		on h1 vzctl start "$v" >/dev/null
		wl_put h1 "$v" wl-counter wl-mem
		wl_run h1 "$v" wl-counter "wl-mem -m 32 -r 1"
		on h1 vzctl exec "$v" 'while :; do :; done </dev/null >/dev/null 2>&1 &'
	done

	: >"$OUT"
	printf '# bats tests/long/rebalance_quiet.bats, QUIET_S=%s, %s\n' "$QUIET_S" "$(date -u +%FT%TZ)" >>"$OUT"
	row "t s" imbalance "VEs per host" moves
	start=$SECONDS
	# Balanced within 5 minutes: REBALANCE_ROUNDS (3) hot rounds of 5 s,
	# then one move at a time.
	dry
	until balanced && [ "$(moves_done)" -ge 1 ]; do
		[ $((SECONDS - start)) -lt 300 ] || { on coord vzcoord events | tail -30; return 1; }
		row $((SECONDS - start)) "$(imbalance)" "$(layout)" "$(moves)"
		sleep 10
		dry
	done
	n0=$(moves)
	row $((SECONDS - start)) "$(imbalance)" "$(layout)" "$n0"
	echo "# balanced after $((SECONDS - start)) s and $n0 moves; quiet from here" | tee -a "$OUT" >&3

	t=$SECONDS
	while [ $((SECONDS - t)) -lt "$QUIET_S" ]; do
		sleep 30
		dry
		n=$(moves)
		row $((SECONDS - start)) "$(imbalance)" "$(layout)" "$n"
		[ "$n" -eq "$n0" ] || { on coord vzcoord events | tail -30; return 1; }
	done
	echo "# $QUIET_S s of the same load: $((n - n0)) moves more" | tee -a "$OUT" >&3

	# Every VE on exactly one host, running, its workloads intact, and
	# every move of the store done.
	[ "$(moves_done)" -eq "$n0" ]
	for v in 111 112 113; do
		local where=()
		for h in h1 h2 h3; do
			running_on "$h" "$v" && where+=("$h")
		done
		[ "${#where[@]}" -eq 1 ]
		passes_on "${where[0]}" "$v" wl-counter wl-mem
	done
}
