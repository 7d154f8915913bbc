#!/usr/bin/env bash
# The whole test suite: setup, gofmt, vet, unit and integration tests (real
# ffmpeg, chromium, child processes), and bounded fuzzing runs: the ingest
# box-stream parser (45 s), and fuzzed fragment times through the store index
# and the three manifest renderers (15 s, a second, slower target: every
# input writes a small store).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
unformatted=$(gofmt -l $(find . -name '*.go' -not -path './web/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
go test -run '^$' -fuzz '^FuzzStreamParser$' -fuzztime "${FUZZTIME:-45s}" -fuzzminimizetime 10x ./internal/media
go test -run '^$' -fuzz '^FuzzTimeline$' -fuzztime "${FUZZTIME_TIMELINE:-15s}" -fuzzminimizetime 10x ./internal/store
# -parallel 3: the e2e tests without a browser (t.Parallel) wait on real-time
# pushes most of the time, so three of them share the two cores.
go test -count=1 -parallel 3 -timeout 40m ./...
