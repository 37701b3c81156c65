// The daemon's side of a topic ring: finds holes left by producers that claimed a slot and then
// died (or stalled before starting to write) and fills them with padding, so readers move on.
// This is Aeron's "unblock" for our slot ring.
#pragma once
#include "ring/topic_ring.hpp"

#include <functional>

namespace shmbus::ring {

class TopicRepairer {
 public:
  TopicRepairer() = default;
  explicit TopicRepairer(TopicRing ring) noexcept;

  /// Walks from the last scan point towards the tail. A slot in `writing` whose owner is dead,
  /// or a claimed slot still untouched `stale_claim_ns` after it was first seen, becomes padding.
  /// Returns the number of slots padded.
  std::uint32_t scan(std::uint64_t now_ns, std::uint64_t stale_claim_ns,
                     const std::function<bool(std::uint32_t owner)>& is_dead) noexcept;
  /// Pads every slot of the last lap that `owner` is still writing. Returns slots padded.
  std::uint32_t sweep_owner(std::uint32_t owner) noexcept;

  std::uint64_t scan_position() const noexcept { return scan_; }

 private:
  bool pad(SlotHeader* s, std::uint64_t expected, std::uint64_t seq) noexcept;
  TopicRing ring_;
  std::uint64_t scan_ = 0;
  std::uint64_t stuck_seq_ = ~0ULL;
  std::uint64_t stuck_since_ns_ = 0;
};

}  // namespace shmbus::ring
