// The daemon's side of a topic ring: finds holes left by producers that claimed a slot and then
// died (or stalled before starting to write) and fills them with padding, so readers move on.
// This is Aeron's "unblock" for our slot ring.
//
// It costs nothing per message: each tick it looks only at the slot each subscriber has been
// waiting on since the previous tick (position unchanged and below the tail). Dead clients' slots
// are also swept at once when the conductor reports the death (sweep_owner).
#pragma once
#include "ring/topic_ring.hpp"

#include <array>
#include <functional>

namespace shmbus::ring {

class TopicRepairer {
 public:
  TopicRepairer() = default;
  explicit TopicRepairer(TopicRing ring) noexcept;

  /// For every active subscriber whose position has not moved since the previous call and is
  /// below the tail, examines the slot it waits on: `writing` by a dead owner becomes padding; a
  /// claimed slot still untouched `stale_claim_ns` after it was first seen stuck becomes padding
  /// (a live producer that then starts it fails its CAS and re-claims). Returns slots padded.
  std::uint32_t scan(std::uint64_t now_ns, std::uint64_t stale_claim_ns,
                     const std::function<bool(std::uint32_t owner)>& is_dead) noexcept;
  /// Pads every slot of the last lap that `owner` is still writing. Returns slots padded.
  std::uint32_t sweep_owner(std::uint32_t owner) noexcept;

 private:
  std::uint32_t examine(std::uint64_t seq, std::uint64_t now_ns, std::uint64_t stale_claim_ns,
                        const std::function<bool(std::uint32_t)>& is_dead) noexcept;
  bool pad(SlotHeader* s, std::uint64_t expected, std::uint64_t seq) noexcept;

  static constexpr std::uint64_t kNone = ~0ULL;
  TopicRing ring_;
  std::array<std::uint64_t, layout::kMaxSubscribers> last_pos_{};  // per subscriber, at the previous scan
  /// Untouched claims being timed: {seq, first seen stuck}. Sequences never repeat, so an entry
  /// whose claim got resolved is harmless until it is replaced.
  struct Stuck {
    std::uint64_t seq = kNone;
    std::uint64_t since_ns = 0;
  };
  std::array<Stuck, 8> stuck_{};
};

}  // namespace shmbus::ring
