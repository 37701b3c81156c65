// Shared by throughput.cpp and throughput_raw.cpp: per-worker counts and the measuring window.
#pragma once
#include "clock.hpp"
#include "scenario_common.hpp"

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace shmbus::bench {

/// One worker's counts, written by that worker only.
struct alignas(128) Stat {
  std::uint64_t c_begin, c_end, t_begin, t_end, l_begin, l_end;  // measured window: messages, ticks, lost
  std::uint64_t total, lost_total, stalls;                        // whole run
  std::atomic<std::uint32_t> done;                                // producers: total is final
};

/// Records the window when the phase moves; true once it has seen kStop (or kAbort).
struct Window {
  Stat* st;
  std::uint32_t seen = kGo;
  bool observe(std::uint32_t ph, std::uint64_t count, std::uint64_t lost) noexcept {
    if (ph == seen) [[likely]] return seen >= kStop;
    const std::uint64_t t = ticks();
    if (ph >= kMeasure && seen < kMeasure) st->t_begin = t, st->c_begin = count, st->l_begin = lost;
    if (ph >= kStop) st->t_end = t, st->c_end = count, st->l_end = lost;
    seen = ph;
    return seen >= kStop;
  }
};

/// The topic workers of `throughput` (consumers first, then producers; st[0..producers) are the
/// producers' Stats, then the consumers'): producers send stamped `size`-byte messages as fast as
/// they can on a fresh topic until kStop; consumers (--wait) count what they receive and what they
/// lose to lapping until every producer is done and the ring is drained. `a`: --wait, --spin-count
/// (must outlive the workers' fork, as the Group does).
std::vector<Worker> topic_workers(const Args& a, std::uint32_t producers, std::uint32_t consumers, bool pin,
                                  const std::string& dir, std::uint32_t size, std::uint32_t capacity, Stat* st);

/// The raw SPSC ring workers (consumer, producer) on `mem` (see throughput_raw.cpp); st[0] is the
/// producer's Stat, st[1] the consumer's.
std::vector<Worker> raw_workers(bool pin, std::uint32_t size, std::uint32_t capacity, std::byte* mem, Stat* st);
/// Bytes of shared memory the raw ring needs.
std::size_t raw_ring_bytes(std::uint32_t size, std::uint32_t capacity);

}  // namespace shmbus::bench
