#!/usr/bin/env bats
# Metrics and --json (issue 18, items 5 and 6): the agents' and the
# coordinator's /metrics pages checked by Prometheus' own parser (promtool
# check metrics), their figures against what vzctl, vzmigrate and vzcoord
# print; vzmigrate --json and vzcoord migrate --json read with jq; bad
# requests to /metrics refused while the agent serves on. Two hosts and a
# coordinator; the pages are scraped from inside each one's namespace.

load helpers

AGENT_PORT=9720
COORD_PORT=9721

setup_file() {
	export SB_AGENT_CONF='HEARTBEAT_INTERVAL="1"'
	sb_setup vzmet 2 --coordinator
}

teardown_file() {
	sb_teardown
}

teardown() {
	sb_test_teardown
}

# scrape HOST PORT: its /metrics page into $BATS_TEST_TMPDIR/HOST.prom,
# checked by promtool (which fails on a malformed page or lint problems).
scrape() {
	local f="$BATS_TEST_TMPDIR/$1.prom"
	on "$1" curl -sf --max-time 5 "http://127.0.0.1:$2/metrics" >"$f" || { echo "no page from $1"; return 1; }
	run promtool check metrics <"$f"
	echo "$output"
	[ "$status" -eq 0 ]
}

# value HOST SERIES: the value of that exact series of HOST's last scrape.
value() {
	awk -v s="$2" '$1 == s { print $2; f = 1 } END { exit !f }' "$BATS_TEST_TMPDIR/$1.prom"
}

# counted HOST SIDE N: HOST's page counts N successful moves on SIDE.
counted() {
	scrape "$1" "$AGENT_PORT" >/dev/null && [ "$(value "$1" "vz_migrations_total{side=\"$2\",result=\"ok\"}")" = "$3" ]
}

# near A B TOLERANCE: |A - B| <= TOLERANCE.
near() {
	awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'
}

# The buckets of histogram series $2 (its name and labels before le) in
# host $1's last scrape never decrease, and +Inf's is the count.
buckets_sane() {
	local h=$1 s=$2
	awk -v s="$s" -v c="$(value "$h" "${s}_count")" '
		index($1, s "_bucket") == 1 { if ($2 < last) bad = 1; last = $2; inf = $2 }
		END { exit bad || inf != c }' "$BATS_TEST_TMPDIR/$h.prom"
}

@test "the agent's /metrics page passes promtool and has a running VE's memory, CPU and beancounters" {
	on h1 vzctl create 101 --ostemplate busybox >/dev/null
	on h1 vzctl start 101 >/dev/null
	scrape h1 "$AGENT_PORT"
	[ "$(value h1 'vz_ve_running{ctid="101"}')" = 1 ]
	mem=$(value h1 'vz_ve_memory_bytes{ctid="101"}')
	[ "$mem" -gt 0 ]
	value h1 'vz_ve_cpu_seconds_total{ctid="101"}'
	# numproc as vzctl's beancounters show it (held, then maxheld).
	held=$(value h1 'vz_ve_ubc_held{ctid="101",resource="numproc"}')
	[ "$held" -ge 1 ]
	[ "$(value h1 'vz_ve_ubc_maxheld{ctid="101",resource="numproc"}')" -ge "$held" ]
	run on h1 vzctl ubc 101
	echo "$output"
	[ "$status" -eq 0 ]
	ubc_held=$(awk '{ for (i = 1; i < NF; i++) if ($i == "numproc") print $(i + 1) }' <<<"$output")
	[ "$ubc_held" = "$held" ]
	value h1 'vz_ve_ubc_failcnt_total{ctid="101",resource="numproc"}'
	# A stopped VE is listed, with no figures.
	on h1 vzctl stop 101 >/dev/null
	scrape h1 "$AGENT_PORT"
	[ "$(value h1 'vz_ve_running{ctid="101"}')" = 0 ]
	run value h1 'vz_ve_memory_bytes{ctid="101"}'
	[ "$status" -ne 0 ]
}

@test "a migration is counted on both sides, and vzmigrate --json gives its summary's figures" {
	on h1 vzctl create 102 --ostemplate busybox >/dev/null
	on h1 vzctl start 102 >/dev/null
	run on h1 vzmigrate --online h2 102
	echo "$output"
	[ "$status" -eq 0 ]
	human=$output
	scrape h1 "$AGENT_PORT"
	[ "$(value h1 'vz_migrations_total{side="source",result="ok"}')" = 1 ]
	# The destination's worker ends once every page is in (after vzmigrate).
	wait_for 10 counted h2 destination 1
	[ "$(value h1 'vz_migration_downtime_seconds_count')" = 1 ]
	[ "$(value h1 'vz_migration_duration_seconds_count{side="source"}')" = 1 ]
	[ "$(value h2 'vz_migration_duration_seconds_count{side="destination"}')" = 1 ]
	buckets_sane h1 vz_migration_downtime_seconds
	buckets_sane h1 'vz_migration_phase_seconds{phase="dump"'
	# The figures are the summary's: downtime (ms, rounded) and bytes.
	down_ms=$(awk '/total suspended/ { print $3 }' <<<"$human")
	near "$(value h1 vz_migration_downtime_seconds_sum)" "$(awk -v m="$down_ms" 'BEGIN { print m / 1000 }')" 0.001
	wire=$(sed -n 's/.*bytes: [0-9]* before compression, \([0-9]*\) on the wire.*/\1/p' <<<"$human")
	[ "$(value h1 'vz_migration_wire_bytes_sum{side="source"}')" = "$wire" ]
	[ "$(value h2 'vz_migration_wire_bytes_sum{side="destination"}')" -gt 0 ]
	rounds=$(grep -c '^ *round [0-9]' <<<"$human")
	[ "$(value h1 vz_migration_rounds_sum)" = "$rounds" ]

	# Back with --json: one object on stdout and nothing else.
	run --separate-stderr on h2 vzmigrate --online --json h1 102
	echo "$output"
	[ "$status" -eq 0 ]
	json=$output
	[ "$(wc -l <<<"$json")" -eq 1 ]
	jq -e '.ok == true and .veid == 102 and .dest == "h1" and .mode == "online"' <<<"$json"
	# The phases of the human summary, each a field.
	for phase in first_file_pass suspend_dump second_file_pass copy_dump undump_resume downtime total; do
		jq -e ".times_ms.$phase >= 0" <<<"$json"
	done
	grep -q 'first file pass' <<<"$human"
	grep -q 'undump + resume' <<<"$human"
	[ "$(jq -r '.memory.kind' <<<"$json")" = precopy ]
	scrape h2 "$AGENT_PORT"
	[ "$(value h2 'vz_migration_wire_bytes_sum{side="source"}')" = "$(jq -r .bytes.wire <<<"$json")" ]
	near "$(value h2 vz_migration_downtime_seconds_sum)" "$(jq -r '.times_ms.downtime / 1000' <<<"$json")" 0.001
	[ "$(value h2 vz_migration_rounds_sum)" = "$(jq -r '.memory.rounds | length' <<<"$json")" ]

	# A failure is one object too.
	run --separate-stderr on h1 vzmigrate --online --json h2 999
	echo "$output"
	[ "$status" -ne 0 ]
	jq -e '.ok == false and .veid == 999 and (.error | length > 0)' <<<"$output"
}

@test "vzcoord's /metrics page has the hosts' states, the queue and the imbalance; status --json is -j" {
	wait_for 10 state_is h1 online
	wait_for 10 state_is h2 online
	scrape coord "$COORD_PORT"
	for h in h1 h2; do
		[ "$(value coord "vz_pool_host_state{host=\"$h\",state=\"online\"}")" = 1 ]
		[ "$(value coord "vz_pool_host_state{host=\"$h\",state=\"offline\"}")" = 0 ]
		[ "$(value coord "vz_pool_host_maintenance{host=\"$h\",maint=\"none\"}")" = 1 ]
	done
	[ "$(value coord vz_pool_queue_depth)" = 0 ]
	imb=$(value coord vz_pool_imbalance)
	awk -v i="$imb" 'BEGIN { exit !(i >= 0) }'
	[ "$(on coord vzcoord status --json | jq -c '.hosts[] | [.name, .state]')" = \
		"$(on coord vzcoord status -j | jq -c '.hosts[] | [.name, .state]')" ]
}

@test "vzcoord migrate --json gives the move's outcome, as its last line says it" {
	on h1 vzctl create 103 --ostemplate busybox >/dev/null
	on h1 vzctl start 103 >/dev/null
	wait_for 10 is_on 103 h1
	scrape h1 "$AGENT_PORT"
	before=$(value h1 'vz_migrations_total{side="source",result="ok"}')
	run --separate-stderr on coord vzcoord migrate 103 h2 --json
	echo "$output"
	[ "$status" -eq 0 ]
	jq -e '.command == "migrate" and .ok == true and (.moves | length) == 1' <<<"$output"
	jq -e '.moves[0] | .veid == 103 and .src == "h1" and .dst == "h2" and .moved == true' <<<"$output"
	pause=$(jq -r '.lines[] | select(startswith("VE 103: moved h1 -> h2"))' <<<"$output" |
		sed -n 's/.*pause \([0-9]*\) ms.*/\1/p')
	[ -n "$pause" ]
	[ "$(jq -r '.moves[0].downtime_ms' <<<"$output")" = "$pause" ]
	# The coordinator's order is the same engine: the agent counts it.
	scrape h1 "$AGENT_PORT"
	[ "$(value h1 'vz_migrations_total{side="source",result="ok"}')" = $((before + 1)) ]
	scrape coord "$COORD_PORT"
	[ "$(value coord 'vz_pool_moves{state="done"}')" -ge 1 ]
	run --separate-stderr on coord vzcoord migrate 998 h2 --json
	echo "$output"
	[ "$status" -ne 0 ]
	jq -e '.ok == false and (.error | length > 0)' <<<"$output"
	# A dry run's plan: its lines, as the human output has them, no move.
	run --separate-stderr on coord vzcoord drain h2 --dry-run --json
	echo "$output"
	[ "$status" -eq 0 ]
	jq -e '.command == "drain" and .ok == true and (.moves | length) == 0' <<<"$output"
	json=$output
	run on coord vzcoord drain h2 --dry-run
	[ "$status" -eq 0 ]
	[ "$(jq -r '.lines[]' <<<"$json")" = "$output" ]
}

@test "/metrics answers 404, 405, 400 and 431 to what it does not serve, and the agent serves on" {
	url="http://127.0.0.1:$AGENT_PORT"
	[ "$(on h1 curl -s -o /dev/null -w '%{http_code}' "$url/other")" = 404 ]
	[ "$(on h1 curl -s -o /dev/null -w '%{http_code}' -X POST "$url/metrics")" = 405 ]
	run on h1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$AGENT_PORT; printf 'garbage\r\n\r\n' >&3; head -n 1 <&3"
	[[ $output == "HTTP/1.0 400 "* ]]
	run on h1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$AGENT_PORT; head -c 5000 /dev/zero | tr '\\0' a >&3; head -n 1 <&3"
	[[ $output == "HTTP/1.0 431 "* ]]
	# A client that connects and says nothing holds up no one.
	run on h1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$AGENT_PORT; curl -sf --max-time 2 -o /dev/null $url/metrics && echo served"
	[ "$output" = served ]
	run on h1 vzlist -a
	[ "$status" -eq 0 ]
	scrape h1 "$AGENT_PORT"
}
