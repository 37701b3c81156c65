#!/usr/bin/env bash
# Longer crash loops than CI runs (docs/testing.md, "Persistence"): the daemon SIGKILLed at random
# moments under durable PERSISTENT sends, then every acknowledged message checked exactly once.
#   scripts/soak-persistence.sh [CYCLES] [REPEATS]   default 300 cycles, 3 repeats (each a new seed)
# Builds Release in build/ if needed. SHMBUS_SOAK_SEED=N replays one seed.
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES="${1:-300}"
REPEATS="${2:-3}"
bash scripts/setup.sh build
for r in $(seq 1 "$REPEATS"); do
  echo "== soak $r/$REPEATS: $CYCLES kill cycles"
  SHMBUS_SOAK_CYCLES="$CYCLES" build/tests/system/shmbus-system-tests \
    --gtest_filter='PersistenceSystem_test.DurableSendsSurviveRepeatedDaemonKills' --gtest_brief=1
  build/tests/unit/concurrent/shmbus-unit-queue-persistence-concurrency-tests --gtest_repeat=20 --gtest_brief=1
done
echo "== soak passed"
