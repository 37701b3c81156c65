#!/usr/bin/env bash
# Longer replication failover loops than CI runs (tests/system/replication_system_test.cpp,
# KillFailoverCycles): three shmbusd daemons; each cycle replicated sends, a SIGKILL of the
# leader, the most advanced follower promoted, the old leader restarted as a follower; at the end
# every acknowledged message checked exactly once and every replica's log byte for byte.
#   scripts/soak-replication.sh [CYCLES] [SEED] [REPEATS]
#     CYCLES   kill/failover cycles per run (default 200)
#     SEED     the seed of the first run (default: random); later runs use SEED+1, SEED+2, ...
#              Replay one run with: scripts/soak-replication.sh CYCLES SEED 1
#     REPEATS  runs (default 1)
# Builds Release in build/ if needed (SHMBUS_SOAK_BUILD_DIR to use another build directory).
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES="${1:-200}"
SEED="${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
REPEATS="${3:-1}"
BUILD="${SHMBUS_SOAK_BUILD_DIR:-build}"
case "$CYCLES$SEED$REPEATS" in
  *[!0-9]*) echo "usage: $0 [CYCLES] [SEED] [REPEATS] (numbers)" >&2; exit 2 ;;
esac
SHMBUS_BUILD_TARGETS="shmbus-replication-tests shmbusd shmbus-cli bus_agent" bash scripts/setup.sh "$BUILD"
BIN="$BUILD/tests/system/shmbus-replication-tests"
for r in $(seq 1 "$REPEATS"); do
  seed=$((SEED + r - 1))
  echo "== soak $r/$REPEATS: $CYCLES kill/failover cycles, seed $seed (replay: $0 $CYCLES $seed 1)"
  start=$(date +%s)
  SHMBUS_REPL_CYCLES="$CYCLES" SHMBUS_REPL_SEED="$seed" "$BIN" \
    --gtest_filter='Replication_test.KillFailoverCycles' --gtest_brief=1
  echo "== run $r passed in $(( $(date +%s) - start )) s"
done
echo "== soak passed"
