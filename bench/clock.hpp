// The measurement clock: rdtscp when the TSC is invariant (constant_tsc + nonstop_tsc), calibrated
// against CLOCK_MONOTONIC; clock_gettime(CLOCK_MONOTONIC) otherwise.
#pragma once
#include <cstdint>
#include <ctime>
#include <string>
#include <x86intrin.h>

namespace shmbus::bench {

struct ClockInfo {
  bool tsc = false;           ///< ticks are TSC cycles (else ns of CLOCK_MONOTONIC)
  double ns_per_tick = 1.0;
  double resolution_ns = 0;   ///< smallest non-zero step seen between two reads
  std::string description;    ///< what the output says about the clock
};

/// Decides and calibrates (about 100 ms). Call once, before forking the measuring processes.
const ClockInfo& init_clock();
/// The clock chosen by init_clock().
const ClockInfo& clock_info() noexcept;

namespace detail {
extern bool g_use_tsc;
}

/// A timestamp in ticks. rdtscp waits for earlier instructions to finish before reading the TSC.
inline std::uint64_t ticks() noexcept {
  if (detail::g_use_tsc) [[likely]] {
    unsigned aux;
    return __rdtscp(&aux);
  }
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// CLOCK_MONOTONIC in ns (for deadlines, not for samples).
inline std::uint64_t mono_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace shmbus::bench
