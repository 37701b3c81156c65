#!/usr/bin/env bash
# Installs what shmbus needs from Debian (only what is missing) and builds it.
#   scripts/setup.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# clang + libclang-rt-dev (the libFuzzer runtime, only recommended by clang): scripts/fuzz.sh.
# libssl-dev: HMAC-SHA256 of the replication handshake; zookeeper + libzookeeper-mt-dev: automatic
# failover (docs/replication.md, docs/zookeeper.md). zookeeper comes without its recommends (Java
# runtime only: the tests run the server from its jars).
PKGS=(g++ cmake make libboost-dev libconcurrentqueue-dev libbenchmark-dev libgtest-dev libgmock-dev clang libclang-rt-dev
      libssl-dev libzookeeper-mt-dev)
NORECOMMENDS=(zookeeper)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for p in "${NORECOMMENDS[@]}"; do
  if ! dpkg -s "$p" >/dev/null 2>&1; then
    echo "setup: installing $p" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    [ ${#missing[@]} -gt 0 ] || $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null
  fi
done

BUILD_DIR="${1:-build}"
shift || true
# Quiet on success (the demo's output stays readable); the whole log on failure.
mkdir -p "$BUILD_DIR"
LOG="$BUILD_DIR/build.log"
echo "setup: building in $BUILD_DIR (log: $LOG)" >&2
# SHMBUS_BUILD_TARGETS="a b": build only these targets (CI's TSan stage needs only the concurrent tests).
TARGET_ARGS=()
if [ -n "${SHMBUS_BUILD_TARGETS:-}" ]; then
  read -r -a T <<<"$SHMBUS_BUILD_TARGETS"
  TARGET_ARGS=(--target "${T[@]}")
fi
if ! { cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@" && cmake --build "$BUILD_DIR" -j"$(nproc)" "${TARGET_ARGS[@]}"; } >"$LOG" 2>&1; then
  cat "$LOG" >&2
  echo "setup: build failed (log above, also in $LOG)" >&2
  exit 1
fi
