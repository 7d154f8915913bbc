#!/usr/bin/env bash
# Per-tier listing latency in standard (non-LL) mode: `sluice push` → ingest →
# origin (pulling) → distribution → nginx proxy_cache on 127.0.0.1, every live
# manifest (DASH MPD, HLS media playlist, Smooth Manifest) reloaded every 10 ms
# at every tier. Prints, per format and tier, when each fragment is first listed
# there relative to the tier before and to the ingest (p50/p95/max, ms), and the
# distribution server's upstream request rate. See bench/README.md
# ("tier-latency.sh"). It runs the e2e test TestTierLatency for longer:
#   bash bench/tier-latency.sh                 # 120 s
#   SECONDS_RUN=300 bash bench/tier-latency.sh
# Needs go, nginx and the bundled sample (internal/testmedia).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_RUN=${SECONDS_RUN:-120}
OUT=${OUT:-$(mktemp /tmp/tier-latency.XXXXXX)}
cd "$REPO"
SLUICE_TIER_SECONDS=$SECONDS_RUN SLUICE_TIER_REPORT=$OUT \
	go test -count=1 -timeout $((SECONDS_RUN + 300))s -run '^TestTierLatency$' ./internal/e2e/ >"$OUT.log" 2>&1 || {
	tail -50 "$OUT.log" >&2
	echo "TestTierLatency failed (full output: $OUT.log)" >&2
	[[ -s $OUT ]] && cat "$OUT"
	exit 1
}
cat "$OUT"
rm -f "$OUT.log"
