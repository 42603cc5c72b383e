#!/usr/bin/env bats
# The parsers of untrusted bytes under libFuzzer, for a bounded time each:
# the image-stream records and dump header (what a restore reads), a
# control frame (length header, then protobuf), the records of a
# migration's two-phase commit (what a restarted agent reads), and the
# memory digests a source sends for --verify-memory, and what an agent
# sends the coordinator (registration, heartbeat and its inventory), and
# the coordinator's order records, and the load traces of vzcoord simulate
# with the planner behind them. A crash, a sanitizer
# report or a leak fails the test and leaves the input in the log.

VZ_TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
# 5 s each in the suite (about a million inputs for most); make fuzz runs
# each for FUZZ_TIME (60 s) and longer on demand.
FUZZ_SECONDS=${VZ_FUZZ_SECONDS:-5}

# run_fuzzer NAME: tests/fuzz/corpus/NAME, where it exists, seeds the
# corpus, as for make fuzz (a text grammar is not found from nothing in
# seconds).
run_fuzzer() {
	local bin="$VZ_TOP/build/fuzz/$1" seeds="$VZ_TOP/tests/fuzz/corpus/$1"
	[ -x "$bin" ] || skip "$1 not built (make fuzz needs clang)"
	mkdir -p "$BATS_TEST_TMPDIR/corpus"
	[ ! -d "$seeds" ] || cp -L "$seeds"/* "$BATS_TEST_TMPDIR/corpus/"
	run "$bin" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=1024 \
		-artifact_prefix="$BATS_TEST_TMPDIR/" "$BATS_TEST_TMPDIR/corpus"
	echo "$output" | tail -n 5
	[ "$status" -eq 0 ]
	# UBSan reports and goes on: a report is a failure all the same
	if grep -q 'runtime error:' <<<"$output"; then
		grep -m 1 -A 2 'runtime error:' <<<"$output"
		return 1
	fi
	runs=$(grep -o 'Done [0-9]* runs' <<<"$output" | grep -o '[0-9]*')
	echo "# ${bin##*/}: $runs inputs in ${FUZZ_SECONDS} s, no crash" >&3
	[ "$runs" -gt 1000 ]
}

@test "the image stream and dump header parsers survive fuzzing" {
	run_fuzzer fuzz_imgstream
}

@test "the control frame parser survives fuzzing" {
	run_fuzzer fuzz_frame
}

@test "the migration record parsers survive fuzzing" {
	run_fuzzer fuzz_mig_record
}

@test "the --verify-memory digest parser and verdict survive fuzzing" {
	run_fuzzer fuzz_memhash
}

@test "the coordinator's reading of registrations and heartbeats survives fuzzing" {
	run_fuzzer fuzz_pool
}

@test "the coordinator's order records and epoch file parsers survive fuzzing" {
	run_fuzzer fuzz_order_record
}

@test "the load trace parser and the rebalancing planner survive fuzzing" {
	run_fuzzer fuzz_trace
}
