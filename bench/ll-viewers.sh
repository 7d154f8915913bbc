#!/usr/bin/env bash
# Low-latency players per node: the server CPU per request and per
# player-second of N LL-HLS players (a blocking reload and a part every
# 0.5 s each) against N standard HLS players (the playlist and a segment
# every 2 s), interleaved. See bench/README.md ("ll-viewers.sh").
#   bash bench/ll-viewers.sh                       # N=1000, REPS=2
#   NS="300 1000" REPS=3 DURATION=30 bash bench/ll-viewers.sh
#
# The server is `GOMAXPROCS=1 sluice serve` pinned to SERVER_CPU, its demo
# channel pushed in 0.5 s CMAF chunks (--demo-chunk 500ms) for both modes
# (the standard players read the same playlists' segments and ignore the
# parts); bench/llviewers, pinned to CLIENT_CPU, plays the first video
# playlist. The other-CPU load is printed with each run.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
source "$REPO/bench/lib.sh"
NS=${NS:-1000}
REPS=${REPS:-2}
DURATION=${DURATION:-20}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
KEEP=${KEEP:-0}
PIDS=()
DATA_DIRS=()
WORK=$(mktemp -d /tmp/ll-viewers.XXXXXX)
bench_traps
pin_cores
build_sluice
(cd "$REPO" && go build -o "$WORK/llviewers" ./bench/llviewers) || die "build bench/llviewers"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

port=18680
run() { # N MODE
	local n=$1 mode=$2 data="$WORK/data-$mode-$n" addr="127.0.0.1:$port" pl master load
	port=$((port + 1))
	DATA_DIRS+=("$data")
	start_bg "$WORK/serve.log" env GOMAXPROCS=1 "${PIN_SRV[@]}" "$WORK/sluice" serve --listen "$addr" --data "$data" --demo-chunk 500ms
	local spid=$BG_PID
	for _ in $(seq 1 300); do
		master=$(curl -fs "http://$addr/demo.isml/master.m3u8" || true)
		pl=$(grep -m1 '^tracks/.*media.m3u8' <<<"$master" || true)
		if [[ -n $pl ]] && curl -fs "http://$addr/demo.isml/$pl" | grep -q 'EXT-X-PART:'; then break; fi
		sleep 0.2
	done
	[[ -n $pl ]] || die "no low-latency playlist at $addr"
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	"${PIN_CLI[@]}" "$WORK/llviewers" -url "http://$addr/demo.isml/$pl" -n "$n" -mode "$mode" -duration "${DURATION}s" -pid "$spid" ||
		log "llviewers failed ($mode, $n)"
	echo "  load before: $load, after: $(cut -d' ' -f1-3 /proc/loadavg)"
	stop_forget "$spid"
}

log "players: $NS; reps: $REPS; ${DURATION}s measured per run"
for rep in $(seq 1 "$REPS"); do
	for n in $NS; do
		for mode in standard ll; do
			echo "rep $rep:"
			run "$n" "$mode"
		done
	done
done
