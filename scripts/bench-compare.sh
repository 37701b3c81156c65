#!/usr/bin/env bash
# One command for the side-by-side latency table: installs shmbus's build dependencies and every
# optional peer (Debian packages), builds, and runs `shmbus-bench compare` with the arguments given
# (e.g. --quick, --json, --out FILE, --plot DIR).
#   bash scripts/bench-compare.sh [--quick] [--json] ...
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-bench-peers.sh
bash scripts/setup.sh build >&2
exec build/bench/shmbus-bench compare "$@"
