#!/usr/bin/env bash
# Low-latency live, measured as the acceptance of the low-latency issue
# asks: `sluice push --epoch --chunk 500ms` (2 s fragments, 0.5 s parts) →
# ingest → origin (pulling chunk by chunk) → distribution → nginx
# proxy_cache, played by hls.js (low-latency mode, catch-up by playback
# rate) and dash.js (low-latency mode from the MPD) in Chromium, then Shaka
# Player (LL-HLS) and `sluice play --low-latency` (LL-HLS and LL-DASH at
# once), each for SECONDS_RUN seconds (default 180). Prints each player's latency (wall
# clock minus the program date time of the frame shown, sampled once a
# second: p50, p95, max) and stalls, with the machine's load. It runs the
# e2e test TestLowLatencyChain for longer, with the players its CI run
# leaves out (SLUICE_LL_ALL=1); TESTS="TestClusterLowLatency" measures the
# scheduler/sender cluster the same way. See bench/README.md ("ll-latency.sh").
#   bash bench/ll-latency.sh
#   SECONDS_RUN=60 bash bench/ll-latency.sh
# Needs go, nginx, node with web/node_modules, chromium and the bundled sample.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_RUN=${SECONDS_RUN:-180}
TESTS=${TESTS:-TestLowLatencyChain}
cd "$REPO"
failed=0
for test in $TESTS; do
	LOG=$(mktemp /tmp/ll-latency.XXXXXX)
	echo "== $test, $SECONDS_RUN s per player; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	status=0
	SLUICE_LL_ALL=1 SLUICE_LL_SECONDS=$SECONDS_RUN go test -count=1 -v -timeout $((5 * SECONDS_RUN + 400))s \
		-run "^$test\$" ./internal/e2e/ >"$LOG" 2>&1 || status=$?
	echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
	grep -E 'low latency: latency|: ok=' "$LOG" | sed 's/^ *[a-z_]*_test.go:[0-9]*: //'
	if [[ $status -ne 0 ]]; then
		grep -E -- '--- FAIL|want' "$LOG" >&2 || true
		echo "$test failed (full output: $LOG)" >&2
		failed=1
		continue
	fi
	rm -f "$LOG"
done
exit $failed
