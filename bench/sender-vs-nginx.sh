#!/usr/bin/env bash
# Sluice sender vs nginx serving the same blocks over loopback.
# See bench/README.md. Run from anywhere:  bash bench/sender-vs-nginx.sh
#
# This is bench/origin-vs-nginx.sh with VS=sender: the same media, nginx
# config, wrk script, measurements and table, with two `sluice sender`s in
# place of `sluice origin` (sender-ram: every block pinned in RAM by a
# look-ahead batch; sender-disk: nothing pinned, --no-admit). Every knob of
# that script applies (REPS, DURATION, COPIES, SLUICE_REV, PROFILE_DIR, ...),
# plus SENDER_DISK=0 (leave out sender-disk) and SENDER_RAM (budget, 1G).
set -euo pipefail
VS=sender exec bash "$(dirname "${BASH_SOURCE[0]}")/origin-vs-nginx.sh" "$@"
