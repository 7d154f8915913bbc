#!/usr/bin/env bash
# Per-tier availability latency of a live stream through the cluster, in
# low-latency mode (0.5 s parts, blocking reloads as LL players make them)
# and standard mode (whole 2 s fragments, 10 ms polls), interleaved:
# `sluice push` → ingest (a chunked pull read as it arrives) → origin
# (pulling) → distribution, and origin → two senders (parts to every sender)
# → a scheduler session's pathway playlist at a sender. Prints, per mode and
# tier, the delay after the tier before and after the ingest (p50/p95/max
# ms), with the load. See bench/README.md ("tier-latency-cluster.sh").
#   bash bench/tier-latency-cluster.sh                  # 60 s per mode, REPS=1
#   SECONDS_RUN=120 REPS=2 bash bench/tier-latency-cluster.sh
# Needs go and the bundled sample (internal/testmedia).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_RUN=${SECONDS_RUN:-60}
REPS=${REPS:-1}
cd "$REPO"
for rep in $(seq 1 "$REPS"); do
	for mode in ll standard; do
		OUT=$(mktemp /tmp/tier-latency-cluster.XXXXXX)
		echo "== rep $rep, mode $mode"
		SLUICE_TIER_MODE=$mode SLUICE_TIER_CLUSTER_SECONDS=$SECONDS_RUN SLUICE_TIER_REPORT=$OUT \
			go test -count=1 -timeout $((SECONDS_RUN + 300))s -run '^TestTierLatencyCluster$' ./internal/e2e/ >"$OUT.log" 2>&1 || {
			tail -50 "$OUT.log" >&2
			echo "TestTierLatencyCluster ($mode) failed (full output: $OUT.log)" >&2
			exit 1
		}
		cat "$OUT"
		rm -f "$OUT" "$OUT.log"
	done
done
