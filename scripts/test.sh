#!/usr/bin/env bash
# The whole test suite: Release build with warnings fatal, then ASan+UBSan, then TSan on the
# concurrent tests, then 10 s of libFuzzer per fuzz target (scripts/fuzz.sh), then
# `shmbus-bench compare --quick` to keep the benchmark suite and its peers working (no timing
# assertions).
set -euo pipefail
cd "$(dirname "$0")/.."
export CTEST_OUTPUT_ON_FAILURE=1
J="$(nproc)"
T0=$SECONDS
# Each stage's header says how long the run has taken so far (CI must stay under 15 minutes).
stage() { echo "== [$(( (SECONDS - T0) / 60 ))m$(( (SECONDS - T0) % 60 ))s] $*"; }

stage "Release build (-Werror) and tests"
bash scripts/install-bench-peers.sh   # the optional benchmark peers, so CI builds and runs them too
bash scripts/setup.sh build -DSHMBUS_WERROR=ON
ctest --test-dir build -j"$J" --timeout 300

stage "ASan+UBSan build and tests"
# What runs under ASan (CI's 15 minutes on 2 cores do not allow building every test twice): the
# unit and log tests, and the replication system tests, which drive the whole daemon end to end
# (queues, the persistence agent, restarts, kills, the replicator) in real processes. The other
# system tests (topics, queue kill loops, CLI, durable subscriptions...) run in the Release stage
# only, the ZooKeeper tests too (a JVM), the thread-concurrency tests under TSan; ctest skips the
# placeholders (NOT_BUILT) of what is not built here.
SHMBUS_BUILD_TARGETS="shmbusd shmbus-cli bus_agent shmbus-unit-tests shmbus-log-tests shmbus-replication-tests" \
  bash scripts/setup.sh build-asan -DSHMBUS_WERROR=ON -DSHMBUS_SANITIZE=address -DSHMBUS_BUILD_BENCH=OFF
# The replication tests run their full counts in the Release stage above (100,000 replicated
# sends, 20 kill/failover cycles); under ASan a third of the cycles and a fifth of the messages.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  SHMBUS_REPL_MESSAGES=20000 SHMBUS_REPL_CYCLES=7 \
  ctest --test-dir build-asan -j"$J" --timeout 600 -LE "zookeeper|tsan" -E "NOT_BUILT|ReplicationZk_test"

stage "TSan build, concurrent tests"
# Only the concurrent tests run under TSan: build only them (the rest is built twice above).
SHMBUS_BUILD_TARGETS="shmbus-unit-concurrency-tests shmbus-unit-queue-persistence-concurrency-tests shmbus-unit-replication-concurrency-tests" \
  bash scripts/setup.sh build-tsan -DSHMBUS_WERROR=ON -DSHMBUS_SANITIZE=thread -DSHMBUS_BUILD_BENCH=OFF
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan -L tsan --timeout 600

stage "libFuzzer: the frame decoder and the selector parser, 10 s each (clang, ASan+UBSan)"
bash scripts/fuzz.sh 10

stage "benchmark smoke run: every mechanism side by side (figures only, nothing asserted)"
build/bench/shmbus-bench compare --quick

stage "all test stages passed"
