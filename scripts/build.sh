#!/usr/bin/env bash
# Builds the sluice binary (default ./sluice; the first argument names
# another path) with the git commit it is built from stamped in, so that
# `sluice --version` names it. Go stamps the commit itself (-buildvcs) only
# in a plain git checkout and not with GOFLAGS=-buildvcs=false; this works
# in any checkout, a git worktree included. Outside git it builds without.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-sluice}
ldflags=()
if rev=$(git rev-parse HEAD 2>/dev/null); then
  modified=false
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    modified=true
  fi
  pkg=github.com/sluice-media/sluice/internal/cli
  ldflags=(-ldflags "-X $pkg.commit=$rev -X $pkg.modified=$modified")
fi
go build "${ldflags[@]}" -o "$out" ./cmd/sluice
