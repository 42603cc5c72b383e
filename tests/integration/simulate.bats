#!/usr/bin/env bats
# vzcoord simulate: the rebalancing planner over the synthetic traces of
# tests/sim/, in simulated time. No sandbox, no root: the command reads a
# file and computes.

bats_require_minimum_version 1.5.0

setup_file() {
	VZ_TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	export VZ_TOP
	export PATH="$VZ_TOP/build/bin:$PATH"
	export SIM="$VZ_TOP/tests/sim"
}

# The moves of stdout: "HH:MM:SS  move VEID FROM->TO: ...".
moves() {
	grep -E '^[0-9]{2}:[0-9]{2}:[0-9]{2}  move [0-9]+ [a-z0-9]+->[a-z0-9]+: imbalance [0-9.]+->[0-9.]+, ' <<<"$output"
}

@test "a stable pool makes no move in a simulated day" {
	run --separate-stderr vzcoord simulate "$SIM/stable.trace"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "${lines[0]}" = "trace $SIM/stable.trace: 3 hosts, 6 VEs, 24 h in steps of 300 s" ]
	[ "$(moves | wc -l)" -eq 0 ]
	[[ "${lines[-1]}" =~ ^summary:\ 0\ moves\ in\ 24\ h,\ imbalance\ start\ 0\.[0-9]+\ end\ 0\.[0-9]+\ max\ 0\.(0|1)[0-9]$ ]]
}

@test "one hot host: a few moves off it, each lowering the imbalance, then quiet" {
	run --separate-stderr vzcoord simulate "$SIM/hot-host.trace"
	[ "$status" -eq 0 ]
	mapfile -t mv < <(moves)
	[ "${#mv[@]}" -ge 1 ] && [ "${#mv[@]}" -le 4 ]
	for m in "${mv[@]}"; do
		[[ "$m" =~ move\ [0-9]+\ h1-\>h[23]:\ imbalance\ ([0-9.]+)-\>([0-9.]+),\ [0-9.]+\ [GM]iB,\ about\ [0-9]+\ s$ ]]
		awk -v a="${BASH_REMATCH[1]}" -v b="${BASH_REMATCH[2]}" 'BEGIN { exit !(b < a) }'
		# all within the first hour
		[[ "$m" =~ ^00: ]]
	done
	[[ "${lines[-1]}" =~ end\ 0\.(0|1)[0-9]\  ]]
}

@test "the same trace gives the same moves and decisions twice" {
	for t in swing hot-host anti-affinity; do
		a=$(vzcoord simulate "$SIM/$t.trace" --log)
		b=$(vzcoord simulate "$SIM/$t.trace" --log)
		[ -n "$a" ]
		[ "$a" = "$b" ]
		grep -q ' move ' <<<"$a"
	done
}

@test "a swinging load moves no VE twice within the 6 h cooldown" {
	run vzcoord simulate "$SIM/swing.trace"
	[ "$status" -eq 0 ]
	# VEID and start second of each move; the same VE again >= 21600 s later
	moves | awk '{ split($1, t, ":"); s = t[1] * 3600 + t[2] * 60 + t[3]; v = $3
		if (v in last && s - last[v] < 21600) { print "VE " v " moved again after " s - last[v] " s"; bad = 1 }
		last[v] = s; n++ } END { exit bad || n == 0 }'
}

@test "pinned, anti-affinity and unfit hosts are kept: the log says why" {
	run vzcoord simulate "$SIM/anti-affinity.trace" --log --hours 2
	[ "$status" -eq 0 ]
	log=$output
	grep -q '101 on h1 not moved: pinned' <<<"$log"
	grep -q '102 on h1 not moved: no target (h2 holds its label, h3 holds its label, h4 in maintenance, h5 offline)' <<<"$log"
	grep -qE ' move 10[456] h1->h[23]:' <<<"$log"
	run ! grep -E ' move (101|102) |->h[45]:' <<<"$log"
}

@test "a drained or lost host is no target while it is so; events are printed" {
	run vzcoord simulate "$SIM/drain.trace" --hours 12
	[ "$status" -eq 0 ]
	grep -qx '00:05:00  event host h2 online, in maintenance' <<<"$output"
	grep -qx '02:05:00  event host h3 offline' <<<"$output"
	grep -qx '06:00:00  event host h2 online' <<<"$output"
	# no move to h2 before 06:00, none to h3 from 02:00 to 03:00
	moves | awk '{ t = $1; split($4, ft, "->"); to = ft[2]; sub(":", "", to)
		if ((to == "h2" && t < "06:00:00") || (to == "h3" && t >= "02:00:00" && t < "03:00:00")) {
			print "move at " t " to " to; bad = 1 }
		n++ } END { exit bad || n < 2 }'
}

@test "the TSV and the plot of a run" {
	out="$BATS_TEST_TMPDIR/run"
	run vzcoord simulate "$SIM/hot-host.trace" --hours 2 --tsv "$out.tsv"
	[ "$status" -eq 0 ]
	[ "$(head -n 1 "$out.tsv")" = "$(printf 'hours\tseconds\timbalance\tmoves\th1\th2\th3')" ]
	# a row per round: 2 h of 5 min, both ends
	[ "$(wc -l <"$out.tsv")" -eq 26 ]
	[ "$(awk -F'\t' 'NR > 1 { n += $4 } END { print n }' "$out.tsv")" -eq "$(moves | wc -l)" ]
	if ! command -v gnuplot >/dev/null; then
		run vzcoord simulate "$SIM/hot-host.trace" --hours 2 --plot "$out.png"
		[ "$status" -ne 0 ]
		skip "gnuplot is not installed: the plot is refused in one line, as checked"
	fi
	run vzcoord simulate "$SIM/hot-host.trace" --hours 2 --plot "$out.png"
	[ "$status" -eq 0 ]
	[ "$(head -c 8 "$out.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
	[ -s "$out.tsv" ]
}

@test "a bad trace is one clear error line and a non-zero exit" {
	run --separate-stderr vzcoord simulate "$SIM/bad.trace"
	[ "$status" -eq 21 ]
	[ -z "$output" ]
	[ "$stderr" = "vzcoord: $SIM/bad.trace:4: Unknown load function 'wave' (const, square, sine, steps)" ]
	run --separate-stderr vzcoord simulate "$BATS_TEST_TMPDIR/none.trace"
	[ "$status" -eq 21 ]
	[[ "$stderr" =~ ^vzcoord:\ Read\ trace\ .*none\.trace:\ No\ such\ file\ or\ directory$ ]]
	[ "${#stderr_lines[@]}" -eq 1 ]
	run --separate-stderr vzcoord simulate "$SIM/stable.trace" --hours 0
	[ "$status" -eq 2 ]
	[ "$stderr" = "vzcoord: simulate: --hours takes 1 to 8784, not '0' (vzcoord --help)" ]
	run --separate-stderr vzcoord simulate
	[ "$status" -eq 2 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
}
