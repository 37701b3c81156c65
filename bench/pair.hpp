// Two real processes: "pong" in a forked child pinned to CPU 1, "ping" (the measuring side) in this
// process pinned to CPU 0. Each side does its own set-up after the fork (a shmbus Connection is
// never shared across fork).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace shmbus::bench {

struct PairSpec {
  bool pin = true;               ///< pin ping to CPU 0 and pong to CPU 1
  std::uint64_t iterations = 0;  ///< measured round trips = samples
  /// Child side. Set up, call `ready()`, then answer every ping. Throw to fail (message is reported).
  std::function<void(const std::function<void()>& ready)> pong;
  /// Parent side. Set up, call `wait_ready()` (returns once the child is ready, throws if it failed),
  /// then run warm-up + measured round trips, writing one RTT in ticks per measured round trip.
  std::function<void(std::span<std::uint64_t> samples, const std::function<void()>& wait_ready)> ping;
};

/// Runs both sides and returns the RTT samples (ticks, unsorted). Throws std::runtime_error with
/// both sides' errors when either fails.
std::vector<std::uint64_t> run_pair(const PairSpec& spec);

/// Spin timeout for the floor loops: a side waiting this long for its peer gives up.
inline constexpr std::uint64_t kPeerTimeoutNs = 5'000'000'000ULL;

}  // namespace shmbus::bench
