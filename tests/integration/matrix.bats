#!/usr/bin/env bats
# The workload x mode matrix: every workload of tests/workloads under
# each way a VE's state leaves a host and comes back: chkpnt/restore on
# one host, offline move, stop-copy (--online --stop-copy), pre-copy
# (--online) and post-copy (--online --postcopy), plus a VE without any
# IP address in each mode. Each cell is a test and its name says which.
#
# Shape: per mode, one VE runs the nine workloads that share a VE well
# (mem counter pipe unix file threads tcpecho churn readinto), and wl-stopped,
# wl-deleted and the VE without an address get a VE each, so that one
# that breaks its move names its own cell. The first cell that needs a
# VE in a mode makes it, starts its workloads and moves it (bounded by
# MX_OP_TIMEOUT seconds); later cells of that VE read the outcome.
# An offline move stops the VE: there, the workloads are started again
# on the destination and must pass there.

load helpers

# A bound, not a pace: a post-copy move of the eight-workload VE once
# outlasted 30 s on a loaded machine, where alone the whole cell, sandbox
# included, takes under 30 s; a move that hangs still fails.
MX_OP_TIMEOUT=90

setup_file() {
	sb_setup vzmx
}

teardown_file() {
	sb_teardown
}

# The command line that starts workload $1.
mx_cmd() {
	case $1 in
	mem) echo "wl-mem -m 16 -r 2" ;;
	threads) echo "wl-threads -t 4" ;;
	tcpecho) echo "wl-tcpecho -p 7000" ;;
	readinto) echo "wl-readinto -m 16 -r 4" ;;
	*) echo "wl-$1" ;;
	esac
}

# Mode index (for VEIDs) and the workloads of each VE kind.
mx_mode_idx() {
	case $1 in
	chkpnt) echo 1 ;; offline) echo 2 ;; stopcopy) echo 3 ;; precopy) echo 4 ;; postcopy) echo 5 ;;
	esac
}

mx_kind_of() {
	case $1 in
	stopped) echo 2 ;; deleted) echo 3 ;; noip) echo 4 ;; *) echo 1 ;;
	esac
}

mx_kind_wls() {
	case $1 in
	1) echo mem counter pipe unix file threads tcpecho churn readinto ;;
	2) echo stopped ;;
	3) echo deleted ;;
	4) echo counter ;;
	esac
}

# Run the mode's operation on VE $2 (on h1); prints where it ends up.
mx_op() {
	local mode=$1 veid=$2 t=$MX_OP_TIMEOUT
	case $mode in
	chkpnt)
		on h1 timeout "$t" vzctl chkpnt "$veid" && on h1 timeout "$t" vzctl restore "$veid" || return 1
		echo h1 >"$BATS_FILE_TMPDIR/mx-$veid.host"
		return 0
		;;
	offline) on h1 timeout "$t" vzmigrate h2 "$veid" || return 1 ;;
	stopcopy) on h1 timeout "$t" vzmigrate --online --stop-copy h2 "$veid" || return 1 ;;
	precopy) on h1 timeout "$t" vzmigrate --online h2 "$veid" || return 1 ;;
	postcopy) on h1 timeout "$t" vzmigrate --online --postcopy h2 "$veid" || return 1 ;;
	esac
	echo h2 >"$BATS_FILE_TMPDIR/mx-$veid.host"
}

# Make VE $2 of kind $3 for mode $1, start its workloads, do the mode's
# operation. Once per VE: the outcome (0 or the failure) is kept in
# mx-VEID.status, the operation's output in mx-VEID.log.
mx_prepare() {
	local mode=$1 veid=$2 kind=$3 f w h cmds=() ip=() wls=()
	f="$BATS_FILE_TMPDIR/mx-$veid"
	if [ ! -f "$f.status" ]; then
		for w in $(mx_kind_wls "$kind"); do
			cmds+=("$(mx_cmd "$w")")
			wls+=("wl-$w")
		done
		[ "$kind" -eq 4 ] || ip=(--ipadd "198.18.2.$((veid - 200))")
		# In an if: a failing step ends the list here, not the test (set -e).
		if {
			on h1 vzctl create "$veid" --ostemplate busybox "${ip[@]}" &&
				on h1 vzctl start "$veid" &&
				wl_put h1 "$veid" "${wls[@]}" &&
				wl_run h1 "$veid" "${cmds[@]}" &&
				wl_all_pass h1 "$veid" "${wls[@]}" &&
				echo "== $mode" && mx_op "$mode" "$veid"
		} >"$f.log" 2>&1; then
			echo 0 >"$f.status"
		else
			echo 1 >"$f.status"
		fi
		if [ "$(cat "$f.status")" -eq 0 ] && [ "$mode" = offline ]; then
			h=$(cat "$f.host")
			wl_run "$h" "$veid" "${cmds[@]}" >>"$f.log" 2>&1 || echo 1 >"$f.status"
		fi
	fi
	if [ "$(cat "$f.status")" -ne 0 ]; then
		echo "VE $veid ($mode) was not made, started or moved:"
		cat "$f.log"
		return 1
	fi
}

# One cell: workload $2 (or "noip") under mode $1 passes.
cell() {
	local mode=$1 wl=$2 kind veid h
	kind=$(mx_kind_of "$wl")
	veid=$((200 + $(mx_mode_idx "$mode") * 10 + kind))
	mx_prepare "$mode" "$veid" "$kind"
	h=$(cat "$BATS_FILE_TMPDIR/mx-$veid.host")
	running_on "$h" "$veid"
	if [ "$wl" = noip ]; then
		run on "$h" vzctl exec "$veid" 'ip -o addr show | grep -v " lo "; ip -o -4 addr show | grep -c inet'
		echo "$output"
		wl=counter
	fi
	run wl_check "$h" "$veid" "wl-$wl"
	echo "$mode / wl-$wl on $h: $output"
	[ "$status" -eq 0 ]
}

@test "chkpnt/restore: wl-mem passes" {
	cell chkpnt mem
}

@test "chkpnt/restore: wl-counter passes" {
	cell chkpnt counter
}

@test "chkpnt/restore: wl-pipe passes" {
	cell chkpnt pipe
}

@test "chkpnt/restore: wl-unix passes" {
	cell chkpnt unix
}

@test "chkpnt/restore: wl-file passes" {
	cell chkpnt file
}

@test "chkpnt/restore: wl-threads passes" {
	cell chkpnt threads
}

@test "chkpnt/restore: wl-tcpecho passes" {
	cell chkpnt tcpecho
}

@test "chkpnt/restore: wl-churn passes" {
	cell chkpnt churn
}

@test "chkpnt/restore: wl-readinto passes" {
	cell chkpnt readinto
}

@test "chkpnt/restore: wl-stopped passes" {
	cell chkpnt stopped
}

@test "chkpnt/restore: wl-deleted passes" {
	cell chkpnt deleted
}

@test "chkpnt/restore: a VE without an IP address runs on and its workload passes" {
	cell chkpnt noip
}

@test "offline move: wl-mem passes" {
	cell offline mem
}

@test "offline move: wl-counter passes" {
	cell offline counter
}

@test "offline move: wl-pipe passes" {
	cell offline pipe
}

@test "offline move: wl-unix passes" {
	cell offline unix
}

@test "offline move: wl-file passes" {
	cell offline file
}

@test "offline move: wl-threads passes" {
	cell offline threads
}

@test "offline move: wl-tcpecho passes" {
	cell offline tcpecho
}

@test "offline move: wl-churn passes" {
	cell offline churn
}

@test "offline move: wl-readinto passes" {
	cell offline readinto
}

@test "offline move: wl-stopped passes" {
	cell offline stopped
}

@test "offline move: wl-deleted passes" {
	cell offline deleted
}

@test "offline move: a VE without an IP address runs on and its workload passes" {
	cell offline noip
}

@test "stop-copy: wl-mem passes" {
	cell stopcopy mem
}

@test "stop-copy: wl-counter passes" {
	cell stopcopy counter
}

@test "stop-copy: wl-pipe passes" {
	cell stopcopy pipe
}

@test "stop-copy: wl-unix passes" {
	cell stopcopy unix
}

@test "stop-copy: wl-file passes" {
	cell stopcopy file
}

@test "stop-copy: wl-threads passes" {
	cell stopcopy threads
}

@test "stop-copy: wl-tcpecho passes" {
	cell stopcopy tcpecho
}

@test "stop-copy: wl-churn passes" {
	cell stopcopy churn
}

@test "stop-copy: wl-readinto passes" {
	cell stopcopy readinto
}

@test "stop-copy: wl-stopped passes" {
	cell stopcopy stopped
}

@test "stop-copy: wl-deleted passes" {
	cell stopcopy deleted
}

@test "stop-copy: a VE without an IP address runs on and its workload passes" {
	cell stopcopy noip
}

@test "pre-copy: wl-mem passes" {
	cell precopy mem
}

@test "pre-copy: wl-counter passes" {
	cell precopy counter
}

@test "pre-copy: wl-pipe passes" {
	cell precopy pipe
}

@test "pre-copy: wl-unix passes" {
	cell precopy unix
}

@test "pre-copy: wl-file passes" {
	cell precopy file
}

@test "pre-copy: wl-threads passes" {
	cell precopy threads
}

@test "pre-copy: wl-tcpecho passes" {
	cell precopy tcpecho
}

@test "pre-copy: wl-churn passes" {
	cell precopy churn
}

@test "pre-copy: wl-readinto passes" {
	cell precopy readinto
}

@test "pre-copy: wl-stopped passes" {
	cell precopy stopped
}

@test "pre-copy: wl-deleted passes" {
	cell precopy deleted
}

@test "pre-copy: a VE without an IP address runs on and its workload passes" {
	cell precopy noip
}

@test "post-copy: wl-mem passes" {
	cell postcopy mem
}

@test "post-copy: wl-counter passes" {
	cell postcopy counter
}

@test "post-copy: wl-pipe passes" {
	cell postcopy pipe
}

@test "post-copy: wl-unix passes" {
	cell postcopy unix
}

@test "post-copy: wl-file passes" {
	cell postcopy file
}

@test "post-copy: wl-threads passes" {
	cell postcopy threads
}

@test "post-copy: wl-tcpecho passes" {
	cell postcopy tcpecho
}

@test "post-copy: wl-churn passes" {
	cell postcopy churn
}

@test "post-copy: wl-readinto passes" {
	cell postcopy readinto
}

@test "post-copy: wl-stopped passes" {
	cell postcopy stopped
}

@test "post-copy: wl-deleted passes" {
	cell postcopy deleted
}

@test "post-copy: a VE without an IP address runs on and its workload passes" {
	cell postcopy noip
}
