// The daemon's side of an index ring: repairs positions whose claimer won its head/tail CAS and
// died before publishing the cell (at any instruction in between), so the participants queued
// behind that cell move on. The same rule as topic hole repair (ring/topic_repair.hpp): a position
// is repaired only when no live participant can hold it — no ClaimRecord of a live owner, of the
// matching role, names the position or is kClaimPending. A live participant, however slow, is
// never overruled; no timeout is involved.
//
//   dead push at p (cell.seq == p, tail > p): publish a tombstone (value kNoValue, seq = p + 1);
//     poppers skip it. The value the dead pusher meant to push is not recovered here: it never got
//     Ok, and the layer above (the queue's slot walk) owns its slot numbers.
//   dead pop at p (cell.seq == p + 1, head > p): publish the cell free (seq = p + capacity) and
//     report its value to the caller, which may or may not have been read by the dead popper:
//     at-least-once; the queue layer decides by the slot's state word where the slot goes back.
//
// Cost: one pass over the last lap (capacity cells) per call; call it when a client dies, or when
// a tick finds head or tail not moving while participants report Busy.
#pragma once
#include "ring/index_ring.hpp"

#include <functional>
#include <span>

namespace shmbus::ring {

/// Whether a client-table index belongs to a live (attached) client.
using IsLiveOwner = std::function<bool(std::uint32_t owner)>;
/// Receives the value of a cell whose dead popper's claim was released (position, value).
using OnReleased = std::function<void(std::uint64_t pos, std::uint32_t value)>;

struct IndexRepairResult {
  std::uint32_t tombstoned = 0;  ///< dead pushes published as tombstones
  std::uint32_t released = 0;    ///< dead pops published free (values reported)
  std::uint32_t held = 0;        ///< unpublished positions a live (or possibly live) participant holds
};

class IndexRingRepair {
 public:
  /// `records`: every ClaimRecord that can operate on this ring (free ones are ignored).
  IndexRingRepair(IndexRing ring, std::span<const ClaimRecord> records) noexcept
      : ring_(ring), records_(records) {}
  /// The same, with records scattered through an enclosing layout (a queue's entries).
  IndexRingRepair(IndexRing ring, std::span<const ClaimRecord* const> records) noexcept
      : ring_(ring), record_ptrs_(records) {}

  /// Repairs every claimed-but-unpublished position of the last lap whose claimer is dead.
  IndexRepairResult repair(const IsLiveOwner& is_live, const OnReleased& on_released) noexcept;

 private:
  /// Could a live participant of `role` hold (or be about to learn it holds) position `pos`?
  bool live_claim(std::uint64_t pos, layout::ClaimRole role, const IsLiveOwner& is_live) const noexcept;

  IndexRing ring_;
  bool live_record(const ClaimRecord& r, std::uint64_t pos, layout::ClaimRole role, const IsLiveOwner& is_live) const noexcept;
  std::span<const ClaimRecord> records_;
  std::span<const ClaimRecord* const> record_ptrs_;
};

}  // namespace shmbus::ring
