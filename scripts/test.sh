#!/usr/bin/env bash
# The whole test suite: setup, gofmt, vet, unit and integration tests (real
# ffmpeg, chromium, child processes), and a bounded fuzzing run of the ingest
# box-stream parser.
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
go test -count=1 -timeout 25m ./...
