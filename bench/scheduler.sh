#!/usr/bin/env bash
# bench/scheduler.sh — control-plane cost of one scheduler (not in CI).
#
# Runs a real `sluice scheduler` against simulated senders, a simulated
# origin and N simulated players (internal/scheduler/bench_test.go,
# TestControlPlaneBench) and reports the scheduler process's CPU time per
# session-second: utime+stime from /proc over a measurement window, divided
# by sessions × seconds. Each simulated live player opens a session with the
# master playlist, reloads its video and audio media playlists every 2 s (one
# fragment; as its pathway's sender asks for them, rel.m3u8) and fetches the
# next block of each, which its sender reports as sent in the next batch;
# each on-demand player loads its playlists once and then only fetches. Every
# player polls its steering manifest every 2 s (the default TTL). The scheduler keeps the default regions (1 current,
# 2 alternative-send at two senders, 4 look-ahead) and batches every 100 ms.
#
# The players are a cheap generator: one raw HTTP/1.1 keep-alive connection
# per player up to CONNS (default 18 000: both processes stay under a file
# limit of 20 000; more players share them), no net/http client and no regexp, the
# connections spread over loopback source addresses 127.0.0.2 to .251 (4 000
# each, from an address of the run's own), the sessions opened over 5 s or at 2 000 a second. The RESULT line
# says what share of the intended load it reached (manifests/s: one playlist
# per session-second; steering/s: one per two), the latency the players saw,
# the generator's own CPU and the rest of the machine's (other_cpu): on a
# shared machine a figure is only good at 100 % of the load.
#
#   bench/scheduler.sh                 # 1000, 10000 and 50000 sessions, live and vod
#   SESSIONS="1000" MODES=live bench/scheduler.sh
#   WINDOW_S=30 SENDERS=8 bench/scheduler.sh
#   BASE_REV=main SESSIONS="1000 10000" MODES=live REPS=2 bench/scheduler.sh   # before/after
#
# With BASE_REV (a git revision, built with git archive) or BASE_BIN (a
# binary), every point runs twice per repetition, this tree's build and the
# base's, in alternating order, and each RESULT line starts with build=new or
# build=base: on a shared machine only such interleaved pairs compare. The
# generator (this tree's test binary) speaks both batch encodings, so a base
# from before the binary one works.
#
# The load generator runs on the same machine: on a small one it competes
# with the scheduler for CPU, which makes the figures pessimistic.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
# shellcheck source=bench/lib.sh
source bench/lib.sh
SESSIONS=${SESSIONS:-"1000 10000 50000"}
MODES=${MODES:-"live vod"}
REPS=${REPS:-1}
BASE_REV=${BASE_REV:-}
BASE_BIN=${BASE_BIN:-}
KEEP=${KEEP:-0}
WORK=$(mktemp -d)
bench_traps
go build -o "$WORK/sluice" ./cmd/sluice
go test -c -o "$WORK/scheduler.test" ./internal/scheduler
builds=(new)
if [[ -n $BASE_BIN ]]; then
	cp "$BASE_BIN" "$WORK/sluice-base"
	builds+=(base)
elif [[ -n $BASE_REV ]]; then
	build_sluice_rev "$BASE_REV" "$WORK/sluice-base"
	log "base: $BASE_REV ($BUILT_REV)"
	builds+=(base)
fi
ulimit -n 200000 2>/dev/null || ulimit -n 65536 2>/dev/null || true
echo "# scheduler control plane: CPU per session-second ($(nproc) CPUs, $(uname -r), builds: ${builds[*]})"
for ((rep = 0; rep < REPS; rep++)); do
	for mode in $MODES; do
		for n in $SESSIONS; do
			order=("${builds[@]}")
			if ((rep % 2 == 1)) && ((${#builds[@]} == 2)); then order=(base new); fi
			for b in "${order[@]}"; do
				bin=$WORK/sluice
				[[ $b == base ]] && bin=$WORK/sluice-base
				SLUICE_SCHED_BENCH_BIN="$bin" SESSIONS=$n MODE=$mode \
					"$WORK/scheduler.test" -test.run '^TestControlPlaneBench$' -test.v -test.timeout 10m 2>&1 |
					grep -E '^RESULT|FAIL|errors|first error' | sed "s/^RESULT /RESULT build=$b /" || true
			done
		done
	done
done
