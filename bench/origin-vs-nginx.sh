#!/usr/bin/env bash
# Sluice origin (or sender) vs nginx serving the same fragment files over loopback.
# See bench/README.md. Run from anywhere:  bash bench/origin-vs-nginx.sh
# The sender mode (VS=sender) is bench/sender-vs-nginx.sh.
#
# One run: builds sluice, encodes two H.264 MP4s with ffmpeg (~200 KB and
# ~2 MB fragments), imports them into a tmpfs data directory, starts nginx
# (1 worker, sendfile) and `sluice origin` (GOMAXPROCS=1) pinned to one core,
# checks every fragment URL answers 200 with the right length on both, loads
# each with wrk (pinned to the other core) cycling through the fragments of
# one size, and prints a table with sluice/nginx ratios.
#
# VS=sender: instead of `sluice origin`, two `sluice sender`s (GOMAXPROCS=1,
# same core): sender-ram, whose blocks are all pinned in RAM by a look-ahead
# batch (bench/senderbench hold -pin), and sender-disk (--no-admit, nothing
# pinned: every block from its block directory). `sluice sender-load` writes
# the imported assets to each (static membership, one sender, R=1); nginx
# serves sender-disk's block directory, i.e. the same block files; wrk
# fetches the senders' /b/<token>/<point>/<track>/<start>.m4s URLs with one
# valid token per block (bench/senderbench urls).
#
# Knobs (environment):
#   DURATION=10   seconds per measured wrk run      WARMUP=2  seconds of warm-up
#   CONNS=16      wrk connections (1 thread)        REPS=1    interleaved repetitions (median)
#   COPIES=3      imports of each MP4 (distinct files, so the set is not one hot file)
#   SMALL_SECONDS=60  BIG_SECONDS=40   length of the two encoded movies (2 s fragments)
#   SERVER_CPU=1  CLIENT_CPU=0         cores for the servers and for wrk
#   PROFILE_DIR=  if set: after the table, one extra run per size and server under
#                 `perf record` plus an strace of one request, reports written there
#   KEEP=0        1 keeps the temp directories (paths printed) instead of deleting them
#   SLUICE_REV=   build this git revision (e.g. HEAD, HEAD~3, a commit) from `git archive`
#                 instead of the work tree, e.g. to A/B a change or when the tree is mid-edit
#   SLUICE_BIN=   use this sluice binary instead of building anything
#   VS=origin     what nginx is compared with: origin (`sluice origin`) or sender
#   SENDER_DISK=1 VS=sender: 0 leaves out sender-disk (only nginx and sender-ram)
#   SENDER_RAM=1G VS=sender: RAM budget of sender-ram (must hold every block)
#   SENDER_FLAGS= VS=sender: more `sluice sender` flags for both, e.g. "--pacing off"
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-16}
REPS=${REPS:-1}
COPIES=${COPIES:-3}
SMALL_SECONDS=${SMALL_SECONDS:-60}
BIG_SECONDS=${BIG_SECONDS:-40}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
PROFILE_DIR=${PROFILE_DIR:-}
KEEP=${KEEP:-0}
SLUICE_BIN=${SLUICE_BIN:-}
SLUICE_REV=${SLUICE_REV:-}
VS=${VS:-origin}
SENDER_DISK=${SENDER_DISK:-1}
SENDER_RAM=${SENDER_RAM:-1G}
SENDER_FLAGS=${SENDER_FLAGS:-}

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
LUA=$BENCH_DIR/wrk-cycle.lua

# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

require_tools go ffmpeg nginx wrk curl taskset ss
[[ $REPS =~ ^[1-9][0-9]*$ && $COPIES =~ ^[1-9][0-9]*$ && $DURATION =~ ^[1-9][0-9]*$ ]] ||
	die "REPS, COPIES and DURATION must be positive integers"
# The servers compared, nginx (the baseline of the ratios) first.
case $VS in
origin) SERVERS=(nginx sluice) ;;
sender)
	SERVERS=(nginx sender-ram)
	[[ $SENDER_DISK == 0 ]] || SERVERS+=(sender-disk)
	;;
*) die "VS=$VS: want origin or sender" ;;
esac

# Pinning: server and client on different cores when there are two.
pin_cores

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
# The research notes (throughput-baseline.md) found DAMON evicting ext4
# page cache on this VM, so the fragments live on tmpfs when there is one.
if [[ -d /dev/shm && -w /dev/shm ]]; then
	DATA=$(mktemp -d /dev/shm/sluice-bench-data.XXXXXX)
else
	DATA=$WORK/data
	mkdir -p "$DATA"
fi
DATA_DIRS=("$DATA") # removed on exit
bench_traps

# ---------------------------------------------------------------- build
log "load before: $(uptime)"
LOAD_BEFORE=$(uptime)
build_sluice
SLUICE=$WORK/sluice
if [[ $VS == sender ]]; then
	# The helper always comes from the work tree (it only uses the cluster contract).
	(cd "$REPO" && go build -o "$WORK/senderbench" ./bench/senderbench) || die "go build ./bench/senderbench failed"
	SB=$WORK/senderbench
fi

# ---------------------------------------------------------------- media
# 640x360 at 800 kbit/s CBR with a 2 s GOP: 2 s x 800 kbit/s = ~200 KB a fragment.
# 1920x1080 at 8 Mbit/s CBR with a 2 s GOP: ~2 MB a fragment.
# Video only: the fragments measured are the video track's.
log "encoding ${SMALL_SECONDS}s of 640x360 and ${BIG_SECONDS}s of 1920x1080 with ffmpeg"
encode() { # size seconds bitrate preset out
	ffmpeg -nostdin -hide_banner -loglevel error -y \
		-f lavfi -i "testsrc2=size=$1:rate=25" -t "$2" \
		-c:v libx264 -preset "$4" -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 \
		-b:v "$3" -minrate "$3" -maxrate "$3" -bufsize "$3" -x264-params nal-hrd=cbr \
		-movflags +faststart "$5"
}
start_bg "$WORK/ffmpeg-small.log" encode 640x360 "$SMALL_SECONDS" 800k veryfast "$WORK/small.mp4"
enc1=$BG_PID
start_bg "$WORK/ffmpeg-big.log" encode 1920x1080 "$BIG_SECONDS" 8M ultrafast "$WORK/big.mp4"
enc2=$BG_PID
rc1=0 rc2=0
wait "$enc1" || rc1=$?
forget_pid "$enc1"
wait "$enc2" || rc2=$?
forget_pid "$enc2"
[[ $rc1 -eq 0 ]] || { cat "$WORK/ffmpeg-small.log" >&2; die "ffmpeg (small) failed"; }
[[ $rc2 -eq 0 ]] || { cat "$WORK/ffmpeg-big.log" >&2; die "ffmpeg (big) failed"; }

log "importing into $DATA ($COPIES copies of each)"
for ((c = 1; c <= COPIES; c++)); do
	"$SLUICE" import --quiet --data "$DATA" "$WORK/small.mp4" "frag200k-$c" >>"$WORK/import.log" 2>&1 ||
		{ cat "$WORK/import.log" >&2; die "sluice import (small) failed"; }
	"$SLUICE" import --quiet --data "$DATA" "$WORK/big.mp4" "frag2m-$c" >>"$WORK/import.log" 2>&1 ||
		{ cat "$WORK/import.log" >&2; die "sluice import (big) failed"; }
done

# ---------------------------------------------------------------- servers
pick_port() { # a free 127.0.0.1 TCP port, not in "$@"
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 30000))
		[[ " $* " == *" $p "* ]] && continue
		if [[ -z $(ss -Htln "sport = :$p") ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
declare -A PORT=() MAINPID=()
for srv in "${SERVERS[@]}"; do
	PORT[$srv]=$(pick_port "${PORT[@]}") || die "no free port"
done

SIZES=(200k 2m)
declare -A SIZE_LABEL=([200k]="~200 KB" [2m]="~2 MB")
# list_sizes: after $WORK/<size>.nginx and $WORK/<size>.bytes are written, log and record the set.
list_sizes() {
	local s=$1 n avg minmax
	n=$(wc -l <"$WORK/$s.bytes")
	[[ $n -gt 0 ]] || die "no $s fragments were imported"
	avg=$(awk '{t+=$1} END {printf "%.0f", t/NR/1000}' "$WORK/$s.bytes")
	minmax=$(sort -n "$WORK/$s.bytes" | sed -n '1p;$p' | awk '{printf "%s%.0f", (NR > 1 ? "-" : ""), $1 / 1000}')
	log "$s set: $n fragments, mean $avg KB (range $minmax KB)"
	declare -g "N_$s=$n" "AVG_$s=$avg" "RANGE_$s=$minmax"
}

if [[ $VS == origin ]]; then
	# Path lists. On disk: <data>/<asset>/t/<track>/<start>.m4s
	#   nginx  (root = data dir): /<asset>/t/<track>/<start>.m4s
	#   sluice:                   /<asset>.isml/tracks/<track>/<start>.m4s
	# plus <size>.bytes: the file sizes in the same order, for the checks.
	NGINX_ROOT=$DATA
	for s in "${SIZES[@]}"; do
		: >"$WORK/$s.nginx"
		: >"$WORK/$s.sluice"
		: >"$WORK/$s.bytes"
		while IFS= read -r f; do
			rel=${f#"$DATA"/}                        # asset/t/track/start.m4s
			asset=${rel%%/t/*}
			rest=${rel#*/t/}                         # track/start.m4s
			echo "/$rel" >>"$WORK/$s.nginx"
			echo "/$asset.isml/tracks/$rest" >>"$WORK/$s.sluice"
			stat -c %s "$f" >>"$WORK/$s.bytes"
		done < <(find "$DATA" -path "$DATA/frag$s-*/t/*/*.m4s" -type f | sort)
		list_sizes "$s"
	done
else
	# Senders: each with its own block directory on tmpfs, loaded with
	# `sluice sender-load` (one sender, R=1), so each holds every block.
	export SLUICE_CLUSTER_SECRET
	SLUICE_CLUSTER_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	SENDERS=("${SERVERS[@]:1}")
	declare -A SDIR=()
	for srv in "${SENDERS[@]}"; do
		SDIR[$srv]=$(mktemp -d "${DATA%/*}/sluice-bench-$srv.XXXXXX")
		DATA_DIRS+=("${SDIR[$srv]}")
		args=(--ram "$SENDER_RAM")
		[[ $srv == sender-disk ]] && args=(--ram 1M --no-admit)
		# shellcheck disable=SC2206 # SENDER_FLAGS is a word list
		args+=($SENDER_FLAGS)
		start_bg "$WORK/$srv.out" env GOMAXPROCS=1 "${PIN_SRV[@]}" "$SLUICE" sender --data "${SDIR[$srv]}" \
			--listen "127.0.0.1:${PORT[$srv]}" --id "$srv" --log-level warn "${args[@]}"
		MAINPID[$srv]=$BG_PID
	done
	for srv in "${SENDERS[@]}"; do
		for ((i = 0; i < 100; i++)); do
			kill -0 "${MAINPID[$srv]}" 2>/dev/null || { cat "$WORK/$srv.out" >&2; die "$srv exited"; }
			curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:${PORT[$srv]}/healthz" && break
			sleep 0.1
		done
		((i < 100)) || { cat "$WORK/$srv.out" >&2; die "$srv did not answer /healthz within 10 s"; }
		for a in $(cd "$DATA" && ls -d frag*); do
			"$SLUICE" sender-load --senders "http://127.0.0.1:${PORT[$srv]}" --replicas 1 "$DATA" "$a" \
				>>"$WORK/sender-load.log" 2>&1 || { cat "$WORK/sender-load.log" >&2; die "sluice sender-load $a to $srv failed"; }
		done
	done
	log "sender-load: $(grep -c '^loaded' "$WORK/sender-load.log") asset loads, e.g. $(grep -m1 '^loaded' "$WORK/sender-load.log")"
	# Lists. In a sender's block directory: <point>/<track>/<start>.m4s
	#   nginx (root = the last sender's block directory): /<point>/<track>/<start>.m4s
	#   senders: /b/<token>/<point>/<track>/<start>.m4s (one token per block, senderbench urls)
	# plus <size>.blocks (the block list of senderbench) and <size>.bytes.
	NGINX_ROOT=${SDIR[${SENDERS[-1]}]}
	for s in "${SIZES[@]}"; do
		: >"$WORK/$s.blocks"
		: >"$WORK/$s.bytes"
		while IFS= read -r f; do
			echo "${f#"$NGINX_ROOT"/}" >>"$WORK/$s.blocks"
			stat -c %s "$f" >>"$WORK/$s.bytes"
		done < <(find "$NGINX_ROOT" -path "$NGINX_ROOT/frag$s-*/*/*.m4s" -type f | sort)
		sed 's|^|/|' "$WORK/$s.blocks" >"$WORK/$s.nginx"
		"$SB" urls -blocks "$WORK/$s.blocks" >"$WORK/$s.urls" || die "senderbench urls failed"
		for srv in "${SENDERS[@]}"; do cp "$WORK/$s.urls" "$WORK/$s.$srv"; done
		list_sizes "$s"
	done
	# Each sender must hold the same files as nginx's root (sender-load wrote the same bytes).
	for srv in "${SENDERS[@]}"; do
		[[ ${SDIR[$srv]} == "$NGINX_ROOT" ]] && continue
		diff -r -q -x '*.json' "${SDIR[$srv]}" "$NGINX_ROOT" >/dev/null ||
			die "the block directories of $srv and ${SENDERS[-1]} differ"
	done
	# The scheduler's part: name the session of the tokens at each sender (and
	# pin every block at sender-ram), then renew the lease and collect the
	# sent-reports every 100 ms, as a scheduler does. On the client's core.
	cat "$WORK"/{200k,2m}.blocks >"$WORK/all.blocks"
	declare -A HOLDPID=()
	for srv in "${SENDERS[@]}"; do
		pin=()
		[[ $srv == sender-ram ]] && pin=(-pin)
		start_bg "$WORK/hold-$srv.out" "${PIN_CLI[@]}" "$SB" hold -sender "http://127.0.0.1:${PORT[$srv]}" \
			-blocks "$WORK/all.blocks" -scheduler "bench-$srv" "${pin[@]}"
		HOLDPID[$srv]=$BG_PID
		for ((i = 0; i < 400; i++)); do
			grep -q '^READY' "$WORK/hold-$srv.out" && break
			kill -0 "${HOLDPID[$srv]}" 2>/dev/null || { cat "$WORK/hold-$srv.out" >&2; die "senderbench hold $srv failed"; }
			sleep 0.1
		done
		grep -q '^READY' "$WORK/hold-$srv.out" || die "senderbench hold $srv: not ready within 40 s"
		log "$srv: $(grep '^READY' "$WORK/hold-$srv.out")"
	done
fi

nginx_conf "$WORK/nginx" "127.0.0.1:${PORT[nginx]}" "$NGINX_ROOT" 4096
log "starting nginx on 127.0.0.1:${PORT[nginx]} (root $NGINX_ROOT); servers on core ${PIN_SRV[2]:-any}"
start_bg "$WORK/nginx.out" "${PIN_SRV[@]}" nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" \
	-c "$WORK/nginx/nginx.conf" -g 'daemon off;'
MAINPID[nginx]=$BG_PID
if [[ $VS == origin ]]; then
	log "starting sluice origin on 127.0.0.1:${PORT[sluice]}"
	start_bg "$WORK/sluice.out" env GOMAXPROCS=1 "${PIN_SRV[@]}" "$SLUICE" origin --data "$DATA" \
		--listen "127.0.0.1:${PORT[sluice]}" --log-level warn
	MAINPID[sluice]=$BG_PID
fi

wait_ready() { # server: up to 10 s for the first fragment to answer
	local srv=$1 url i
	url="http://127.0.0.1:${PORT[$srv]}$(head -1 "$WORK/200k.$srv")"
	for ((i = 0; i < 100; i++)); do
		kill -0 "${MAINPID[$srv]}" 2>/dev/null || { cat "$WORK/$srv.out" "$WORK/nginx/error.log" >&2 2>/dev/null; die "$srv exited"; }
		curl -sf -o /dev/null --max-time 2 "$url" && return 0
		sleep 0.1
	done
	cat "$WORK/$srv.out" >&2
	die "$srv did not answer $url within 10 s"
}
for srv in "${SERVERS[@]}"; do wait_ready "$srv"; done

# Processes whose CPU time is the server's: nginx master + worker, sluice or a sender.
server_pids() {
	local pid=${MAINPID[$1]}
	echo "$pid" $(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
}
cpu_ticks() { # sum of utime+stime (clock ticks) over the pids
	local p t=0 v
	for p in "$@"; do
		v=$(sed 's/^.*) //' /proc/"$p"/stat 2>/dev/null | awk '{print $12 + $13}') || v=0
		t=$((t + ${v:-0}))
	done
	echo "$t"
}
HZ=$(getconf CLK_TCK)
machine_busy_ticks() { # all CPUs: user+nice+system+irq+softirq+steal
	awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}
children_cpu_secs() { # user+sys seconds of this shell's reaped children (wrk), into file $1
	# `times` must run in this shell (not in a pipe or $(...)) to see its children.
	times >"$1"
}
times_secs() { # the children line of a `times` output file, in seconds
	awk 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
		printf "%.3f", t
	}' "$1"
}

# ---------------------------------------------------------------- checks
# Every fragment, every server: status 200 and the file's length.
check_all() {
	local srv=$1 s=$2 cfg=$WORK/curl-$srv-$s.cfg bad
	: >"$cfg"
	while IFS= read -r p; do
		printf 'url = "http://127.0.0.1:%s%s"\noutput = "/dev/null"\n' "${PORT[$srv]}" "$p" >>"$cfg"
	done <"$WORK/$s.$srv"
	curl -s --max-time 60 -K "$cfg" -w '%{http_code} %{size_download}\n' >"$WORK/check-$srv-$s.txt" || true
	bad=$(paste -d' ' "$WORK/check-$srv-$s.txt" "$WORK/$s.bytes" "$WORK/$s.$srv" |
		awk '$1 != 200 || $2 != $3 {print "  " $4 ": status " $1 ", " $2 " bytes, file has " $3; n++}
		     END {if (NR == 0) print "  no answers"}')
	if [[ -n $bad || $(wc -l <"$WORK/check-$srv-$s.txt") -ne $(wc -l <"$WORK/$s.bytes") ]]; then
		log "$srv does not serve the $s fragments correctly:"
		printf '%s\n' "$bad" | head -20 >&2
		return 1
	fi
}
for s in "${SIZES[@]}"; do
	for srv in "${SERVERS[@]}"; do
		check_all "$srv" "$s" || die "$srv failed the $s check"
	done
done
log "${SERVERS[*]} answer 200 with the right length for all fragments"
for srv in "${SERVERS[@]}"; do
	log "$srv headers: $(curl -s -D - -o /dev/null "http://127.0.0.1:${PORT[$srv]}$(head -1 "$WORK/200k.$srv")" | tr -d '\r' | tr '\n' '|')"
done
# sender_stats server: the sender's counters (senderbench stats), one line
sender_stats() { "$SB" stats -sender "http://127.0.0.1:${PORT[$1]}"; }
declare -A STATS0=()
if [[ $VS == sender ]]; then
	for srv in "${SENDERS[@]}"; do STATS0[$srv]=$(sender_stats "$srv") || die "stats of $srv"; done
fi

# ---------------------------------------------------------------- load
# run_wrk server size seconds out
run_wrk() {
	"${PIN_CLI[@]}" timeout -k 5 $(($3 + 30)) wrk -t1 -c"$CONNS" -d"$3s" --timeout 10s \
		-s "$LUA" "http://127.0.0.1:${PORT[$1]}" -- "$WORK/$2.$1" >"$4" 2>&1
}
field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" "$1" | head -1; }

RESULTS=$WORK/results.tsv
: >"$RESULTS"
FAILED=0
TOTAL_RUNS=$((REPS * ${#SIZES[@]} * ${#SERVERS[@]}))
run=0
for ((rep = 1; rep <= REPS; rep++)); do
	for s in "${SIZES[@]}"; do
		for srv in "${SERVERS[@]}"; do
			run=$((run + 1))
			out=$WORK/wrk-$srv-$s-$rep.txt
			run_wrk "$srv" "$s" "$WARMUP" "$WORK/warmup.txt" || true
			pids=$(server_pids "$srv")
			t0=$(cpu_ticks $pids)
			m0=$(machine_busy_ticks)
			w0=$(date +%s%N)
			children_cpu_secs "$WORK/times0.txt"
			if ! run_wrk "$srv" "$s" "$DURATION" "$out"; then
				cat "$out" >&2
				die "wrk against $srv failed"
			fi
			t1=$(cpu_ticks $pids)
			m1=$(machine_busy_ticks)
			w1=$(date +%s%N)
			children_cpu_secs "$WORK/times1.txt"
			c0=$(times_secs "$WORK/times0.txt")
			c1=$(times_secs "$WORK/times1.txt")
			grep -q '^RESULT ' "$out" || { cat "$out" >&2; die "no RESULT line from wrk"; }
			req=$(field "$out" requests)
			dur=$(field "$out" duration_us)
			bytes=$(field "$out" bytes)
			p50=$(field "$out" p50_us)
			p99=$(field "$out" p99_us)
			errs=$(($(field "$out" connect) + $(field "$out" read) + $(field "$out" write) + $(field "$out" timeout)))
			status=$(field "$out" status)
			if [[ $status -ne 0 || $req -eq 0 ]]; then
				log "$srv $s: $status non-2xx answers out of $req"
				FAILED=1
			fi
			[[ $errs -eq 0 ]] || log "$srv $s: $errs socket errors"
			awk -v s="$s" -v srv="$srv" -v rep="$rep" -v req="$req" -v dur="$dur" -v bytes="$bytes" \
				-v p50="$p50" -v p99="$p99" -v ticks=$((t1 - t0)) -v hz="$HZ" -v errs="$errs" -v st="$status" \
				-v mticks=$((m1 - m0)) -v c0="$c0" -v c1="$c1" -v wall=$(((w1 - w0) / 1000000)) 'BEGIN {
				secs = dur / 1e6; cpu = ticks / hz; wrk = c1 - c0
				# everything else the machine did meanwhile (other users, kernel threads, this script)
				other = mticks / hz - cpu - wrk; if (other < 0) other = 0
				printf "%s\t%s\t%d\t%.1f\t%.1f\t%.3f\t%.3f\t%.1f\t%.1f\t%.0f\t%.0f\t%d\t%d\n", s, srv, rep,
					req / secs, bytes / secs / 1e6, p50 / 1000, p99 / 1000,
					100 * cpu / secs, (req > 0 ? cpu / req * 1e6 : 0),
					100 * wrk / secs, 100 * other / (wall / 1000), errs, st
			}' >>"$RESULTS"
			log "[$run/$TOTAL_RUNS] $(tail -1 "$RESULTS" | awk -F'\t' '{printf "%-4s %-11s rep %d: %8.0f req/s %8.1f MB/s  p50 %.2f ms  p99 %.2f ms  server CPU %.0f%% (%.1f us/req)  wrk CPU %.0f%%  other CPU %.0f%%", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11}')"
		done
	done
done
LOAD_AFTER=$(uptime)
log "load after: $LOAD_AFTER"

# Senders: where the sends of the runs (warm-ups included) came from, and the
# sent-reports the scheduler's part collected. sender-ram must have sent
# every block from RAM, sender-disk none.
SENDER_LINES=()
if [[ $VS == sender ]]; then
	sfield() { sed -n "s/.*\b$2=\([0-9]*\).*/\1/p" <<<"$1"; }
	for srv in "${SENDERS[@]}"; do
		st1=$(sender_stats "$srv") || die "stats of $srv"
		ram=$(($(sfield "$st1" sends_ram) - $(sfield "${STATS0[$srv]}" sends_ram)))
		disk=$(($(sfield "$st1" sends_disk) - $(sfield "${STATS0[$srv]}" sends_disk)))
		stop_pid "${HOLDPID[$srv]}"
		forget_pid "${HOLDPID[$srv]}"
		done_line=$(grep '^DONE' "$WORK/hold-$srv.out" || echo "DONE ?")
		SENDER_LINES+=("$srv: $ram sends from RAM, $disk from disk during the runs; $(sfield "$st1" pinned_blocks) blocks pinned ($(($(sfield "$st1" pinned_bytes) / 1000000)) MB); scheduler side: ${done_line#DONE }")
		if [[ $srv == sender-ram && $disk -ne 0 ]] || [[ $srv == sender-disk && $ram -ne 0 ]]; then
			log "$srv: $ram sends from RAM and $disk from disk: not what this server is meant to measure"
			FAILED=1
		fi
	done
fi

# ---------------------------------------------------------------- table
# Median over the repetitions of every column, then sluice/nginx ratios.
# efficiency = nginx server-CPU-per-request / sluice's (1.0 = as cheap as nginx).
echo
echo "Sluice $VS vs nginx, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, wrk -t1 -c$CONNS -d${DURATION}s over loopback, ${REPS} run(s) each (median)"
if [[ $VS == origin ]]; then
	echo "servers on core ${PIN_SRV[2]:-any} (nginx: 1 worker, sendfile, tcp_nopush; sluice: GOMAXPROCS=1), wrk on core ${PIN_CLI[2]:-any}"
else
	echo "servers on core ${PIN_SRV[2]:-any} (nginx: 1 worker, sendfile, tcp_nopush, root = sender-disk's block directory;"
	echo "sluice sender: GOMAXPROCS=1, sender-ram: every block pinned in RAM (memfd), sender-disk: --no-admit, nothing pinned),"
	echo "wrk on core ${PIN_CLI[2]:-any}; the scheduler's part (a batch every 100 ms) on core ${PIN_CLI[2]:-any}${SENDER_FLAGS:+; sender flags: $SENDER_FLAGS}"
	printf '%s\n' "${SENDER_LINES[@]}"
fi
echo "sluice: $BUILT_FROM"
echo "fragments: 200k = $N_200k files, mean $AVG_200k KB ($RANGE_200k KB); 2m = $N_2m files, mean $AVG_2m KB ($RANGE_2m KB); tmpfs"
echo "load before: ${LOAD_BEFORE##*load average: }; after: ${LOAD_AFTER##*load average: }"
echo
awk -F'\t' -v label200k="${SIZE_LABEL[200k]}" -v label2m="${SIZE_LABEL[2m]}" -v servers="${SERVERS[*]}" '
function median(key, col,    n, i, j, a, t) {
	n = cnt[key]
	for (i = 1; i <= n; i++) a[i] = v[key, i, col]
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	key = $1 SUBSEP $2; cnt[key]++
	for (c = 4; c <= 11; c++) v[key, cnt[key], c] = $c
	if (!($1 in seen)) { seen[$1] = 1; order[++ns] = $1 }
}
END {
	label["200k"] = label200k; label["2m"] = label2m
	nsrv = split(servers, srvs, " ") # srvs[1] is nginx, the baseline
	print "| size | server | req/s | MB/s | p50 ms | p99 ms | server CPU % | server CPU µs/req | wrk CPU % | other CPU % |"
	print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for (i = 1; i <= ns; i++) {
		s = order[i]
		for (k = 1; k <= nsrv; k++) {
			srv = srvs[k]
			key = s SUBSEP srv
			for (c = 4; c <= 11; c++) m[srv, c] = median(key, c)
			printf "| %s | %s | %.0f | %.1f | %.2f | %.2f | %.0f | %.1f | %.0f | %.0f |\n", label[s], srv,
				m[srv, 4], m[srv, 5], m[srv, 6], m[srv, 7], m[srv, 8], m[srv, 9], m[srv, 10], m[srv, 11]
		}
		b = srvs[1]
		for (k = 2; k <= nsrv; k++) {
			srv = srvs[k]
			printf "| %s | **%s/%s** | **%.2f×** | **%.2f×** | %.2f× | %.2f× | | efficiency **%.2f×** | | |\n", label[s], srv, b,
				m[srv, 4] / m[b, 4], m[srv, 5] / m[b, 5],
				m[srv, 6] / m[b, 6], m[srv, 7] / m[b, 7],
				(m[srv, 9] > 0 ? m[b, 9] / m[srv, 9] : 0)
		}
	}
}' "$RESULTS"
echo
echo "MB = 10^6 bytes of HTTP response (headers + body) as counted by wrk. server CPU = utime+stime of the"
echo "server processes (nginx master+worker; ${SERVERS[*]:1}) during the run, % of one core; µs/req = that CPU / requests."
echo "efficiency = nginx µs/req ÷ ${SERVERS[1]%-*} µs/req. Latency ratios are ${SERVERS[1]%-*}/nginx (lower is better for ${SERVERS[1]%-*})."
echo "wrk CPU = the load generator's user+sys (100% = its core is saturated: client-bound). other CPU = all the"
echo "rest of the machine's busy time in the run (other users, kernel threads), % of one core (2 cores = 200%)."
NOISY=$(awk -F'\t' '$11 > 25' "$RESULTS" | wc -l)
if [[ $NOISY -gt 0 ]]; then
	echo
	echo "WARNING: in $NOISY of $TOTAL_RUNS runs the rest of the machine used > 25% of a core (other CPU):"
	echo "the cores were shared, so req/s and latency are unreliable there; compare µs/req, or rerun (REPS=3)."
fi
if [[ $REPS -gt 1 ]]; then
	echo
	echo "per run (size, server, rep, req/s, MB/s, p50 ms, p99 ms, server CPU %, µs/req, wrk CPU %, other CPU %, socket errors, non-2xx):"
	sed 's/^/  /' "$RESULTS"
fi

# ---------------------------------------------------------------- profile
if [[ -n $PROFILE_DIR ]]; then
	mkdir -p "$PROFILE_DIR"
	PROFILE_DIR=$(cd "$PROFILE_DIR" && pwd)
	command -v strace >/dev/null || die "PROFILE_DIR needs strace"
	command -v perf >/dev/null || die "PROFILE_DIR needs perf"
	log "profiling into $PROFILE_DIR"
	for s in "${SIZES[@]}"; do
		for srv in "${SERVERS[@]}"; do
			# Syscalls of one request (the worker for nginx).
			tp=$(server_pids "$srv" | awk '{print $NF}')
			url="http://127.0.0.1:${PORT[$srv]}$(sed -n 2p "$WORK/$s.$srv")"
			start_bg "$PROFILE_DIR/strace-$srv-$s.txt" timeout 20 strace -f -qq -p "$tp" \
				-e trace=read,pread64,write,writev,sendfile,openat,fstat,newfstatat,statx,close,setsockopt,copy_file_range,splice
			st_pid=$BG_PID
			sleep 1
			curl -s -o /dev/null --max-time 5 "$url" || true
			sleep 0.5
			stop_pid "$st_pid"
			forget_pid "$st_pid"
			{
				echo "# syscall counts for one GET $url"
				sed -E 's/^\[pid +[0-9]+\] //' "$PROFILE_DIR/strace-$srv-$s.txt" | grep -Eo '^[a-z0-9_]+\(' | sort | uniq -c | sort -rn
			} >"$PROFILE_DIR/strace-$srv-$s.summary.txt" || true
			# CPU profile of a loaded run (perf, cpu-clock, call graphs).
			perf record -q -e cpu-clock -F 999 -g -o "$WORK/perf-$srv-$s.data" \
				-p "$(server_pids "$srv" | tr ' ' ',')" -- sleep "$DURATION" >/dev/null 2>&1 &
			perf_pid=$!
			PIDS+=("$perf_pid")
			run_wrk "$srv" "$s" "$DURATION" "$PROFILE_DIR/wrk-$srv-$s.txt" || true
			wait "$perf_pid" || true
			forget_pid "$perf_pid"
			perf report -i "$WORK/perf-$srv-$s.data" --stdio --no-children --sort symbol \
				--percent-limit 0.7 -g none 2>/dev/null | grep -v '^$' | head -60 >"$PROFILE_DIR/perf-$srv-$s.flat.txt" || true
			perf report -i "$WORK/perf-$srv-$s.data" --stdio --children --sort symbol \
				--percent-limit 3 -g none 2>/dev/null | grep -v '^$' | head -60 >"$PROFILE_DIR/perf-$srv-$s.children.txt" || true
			log "profiled $srv $s"
		done
	done
fi

exit "$FAILED"
