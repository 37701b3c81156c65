#!/usr/bin/env bash
# Installs, from Debian packages, the optional peers of `shmbus-bench compare` and the plotting tool.
#
#   scripts/install-bench-peers.sh            # as root, or as a user with sudo
#
# What it installs (only what dpkg does not already report as installed):
#   libzmq3-dev          ZeroMQ headers + libzmq        -> peer `zmq` (ipc:// PAIR sockets)
#   iceoryx              the RouDi daemon (iox-roudi)   -> started and stopped by shmbus-bench itself
#   libiceoryx-posh-dev  iceoryx 2.0 headers, libs and CMake config (pulls libiceoryx-hoofs-dev)
#   libacl1-dev          libacl, which iceoryx_hoofs' CMake config links (iceoryx_hoofs::iceoryx_hoofs)
#   gnuplot-nox          PNG/SVG plots of the latency curves and throughput (no X11)
# The always-built peers (futex, uds, posix_mq, boost_mq) need only libc and libboost-dev
# (scripts/setup.sh installs the latter).
#
# Idempotent and non-interactive: `apt-get update` runs only when something is missing. Re-run CMake
# afterwards (cmake -S . -B build) so that it detects the new peers; `shmbus-bench compare` lists the
# ones it was built without, and why, on stderr.
set -euo pipefail

PKGS=(libzmq3-dev iceoryx libiceoryx-posh-dev libacl1-dev gnuplot-nox)

installed() {
  # dpkg-query prints "install ok installed" only for a fully installed package.
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for p in "${PKGS[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-bench-peers: all installed (${PKGS[*]})" >&2
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-bench-peers: run as root (sudo not found)" >&2; exit 1; }
  SUDO="sudo"
fi

echo "install-bench-peers: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Wait (up to 5 min) for another apt/dpkg run to release its lock instead of failing at once.
APT=(apt-get -o DPkg::Lock::Timeout=300 -qq)
$SUDO "${APT[@]}" update
$SUDO env DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null

for p in "${missing[@]}"; do
  installed "$p" || { echo "install-bench-peers: $p is still not installed" >&2; exit 1; }
done
echo "install-bench-peers: done; re-run cmake so that it finds the new peers" >&2
