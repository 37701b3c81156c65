// The daemon's side of a topic ring: finds sequences claimed by producers that died before
// publishing them (between claim and commit, at any instruction) and publishes padding in their
// place, so readers and the producers queued behind them move on. Aeron's "unblock" for our ring.
//
// A claim is repaired only when no live producer can hold it: a `writing` slot whose owner client
// is dead, or a claimed-but-unstarted sequence that no live producer's ProducerEntry names (nor is
// about to name: kClaimPending). A live producer, however slow, is never overruled, so no timeout
// is involved and no producer ever has its claim taken away.
//
// Cost: nothing per message. Each tick looks only at the slot a subscriber has been stuck on
// since the previous tick; the whole last lap is swept only after a client died.
#pragma once
#include "ring/topic_ring.hpp"

#include <array>
#include <functional>

namespace shmbus::ring {

/// Whether a client-table index belongs to a client that is not attached (dead or gone).
using IsDead = std::function<bool(std::uint32_t client_index)>;

struct SweepResult {
  std::uint32_t padded = 0;       ///< sequences published as padding
  std::uint32_t unpublished = 0;  ///< claimed sequences still held by live (or possibly live) producers
};

class TopicRepairer {
 public:
  TopicRepairer() = default;
  explicit TopicRepairer(TopicRing ring) noexcept;

  /// For every active subscriber whose position has not moved since the previous call and is
  /// below the tail, repairs the slot it waits on if its claimer is dead. Returns slots padded.
  std::uint32_t scan(const IsDead& is_dead) noexcept;
  /// Repairs every unpublished sequence of the last lap whose claimer is dead.
  SweepResult sweep(const IsDead& is_dead) noexcept;
  /// Once per tick: scan(), plus a sweep() when the tail has not moved since the previous tick
  /// and the last sweep did not find the ring fully published at this tail (producers may be
  /// queued behind a dead claim with no subscriber to notice). Returns slots padded.
  std::uint32_t tick(const IsDead& is_dead) noexcept;

 private:
  /// Repairs the unpublished laps of the slot of `seq`, oldest first, up to `seq`.
  SweepResult repair_slot(std::uint64_t seq, std::uint64_t tail, const IsDead& is_dead) noexcept;
  /// Could a live producer hold (or be about to learn it holds) sequence `target`?
  bool live_claimer(std::uint64_t target, const IsDead& is_dead) const noexcept;
  bool pad(SlotHeader* s, std::uint64_t expected, std::uint64_t seq) noexcept;

  static constexpr std::uint64_t kNone = ~0ULL;
  TopicRing ring_;
  std::array<std::uint64_t, layout::kMaxSubscribers> last_pos_{};  // per subscriber, at the previous scan
  std::uint64_t prev_tail_ = kNone;   // tail at the previous tick
  std::uint64_t clean_tail_ = kNone;  // tail at which a sweep last found everything published
};

}  // namespace shmbus::ring
