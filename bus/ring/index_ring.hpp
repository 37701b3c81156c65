// Non-owning view over an index ring in shared memory (layout: layout/index_ring_layout.hpp):
// Vyukov's bounded MPMC ring of u32 values, with a claim record per participant so the daemon can
// repair a position whose claimer died between its head/tail CAS and its cell publish.
//
// Push at pos: cell.seq == pos means free -> CAS tail pos -> pos+1, write value, seq = pos + 1.
// Pop at pos:  cell.seq == pos + 1 means full -> CAS head pos -> pos+1, read value, seq = pos + cap.
// Around each CAS the participant's ClaimRecord says kPending (before), pos (after the CAS won),
// kIdle (after publishing), exactly like ProducerEntry::claim_seq on topics.
//
// Results: Ok; Full / Empty (true at one instant during the call); Busy: the cell at our position
// is still held by an older operation that won its CAS but has not published (a slow participant;
// or a dead one, which the daemon repairs: IndexRingRepair). The caller retries Busy.
// Pops skip tombstones (kNoValue, left by the repair of a dead push) transparently and count them.
//
// Hot path: noexcept, no allocation, no system call. A view is cheap to copy and is used by any
// number of threads/processes at once; a ClaimRecord must be used by one thread at a time.
#pragma once
#include "layout/index_ring_layout.hpp"

#include <atomic>
#include <string_view>

namespace shmbus::ring {

using layout::ClaimRecord;
using layout::IndexCell;
using layout::IndexRingHeader;

enum class IndexStatus { Ok, Full, Empty, Busy };

/// Validates an index ring inside a mapping of `available` bytes from `base`. "" when usable.
std::string_view check_index_ring(const void* base, std::size_t available) noexcept;

class IndexRing {
 public:
  IndexRing() = default;
  /// A view over an initialised ring (init(), or check_index_ring() on an attached mapping).
  explicit IndexRing(void* base) noexcept;

  /// Daemon side, before the enclosing region is published: capacity (a power of two within
  /// [kMinIndexRingCapacity, kMaxIndexRingCapacity]) and every cell free for its first lap.
  /// Returns false (touching nothing) for a bad capacity. `base` must be 128-byte aligned.
  static bool init(void* base, std::uint32_t capacity) noexcept;
  /// Sets up a participant's record (the conductor, before handing the record to its owner).
  static void init_record(ClaimRecord& r, std::uint32_t owner, layout::ClaimRole role) noexcept;

  /// Pushes `value` (never kNoValue: that is the tombstone). Full: `capacity` values are queued.
  /// `tag` rides along with the value (queue ready rings: the slot's generation).
  IndexStatus try_push(std::uint32_t value, ClaimRecord& rec, std::uint32_t tag = 0) noexcept;
  /// Pops the oldest value, skipping tombstones. Empty: nothing pushed is waiting.
  /// `hold`, when given, receives the value before the pop is published (the queue layer's
  /// crash-recovery word: a popper that dies after publishing still names what it took).
  /// `tag`, when given, receives the popped entry's tag.
  IndexStatus try_pop(std::uint32_t& value, ClaimRecord& rec, std::atomic<std::uint64_t>* hold = nullptr,
                      std::uint32_t* tag = nullptr) noexcept;
  /// True when no push has been claimed past the head (a hint). `mo` is acquire, or seq_cst when
  /// it is one half of a Dekker handshake with a push (whose tail CAS is seq_cst).
  bool looks_empty(std::memory_order mo = std::memory_order_acquire) const noexcept {
    return hdr_->tail.load(mo) <= hdr_->head.load(mo);
  }

  enum class Peek { Published, NotYet, Gone };
  /// Reads the entry at `pos` in place, without popping it (a queue's selector scan, its browser).
  /// Published: `value` and `tag` are what the cell held for `pos`. NotYet: no push of `pos` has
  /// published. Gone: `pos` was popped meanwhile (or the cell moved to a later lap).
  Peek peek(std::uint64_t pos, std::uint32_t& value, std::uint32_t& tag) const noexcept {
    IndexCell* c = cell(pos);
    // Acquire: pairs with the pusher's release of seq (value and tag visible).
    const std::uint64_t seq = c->seq.load(std::memory_order_acquire);
    if (seq != pos + 1) return seq < pos + 1 ? Peek::NotYet : Peek::Gone;
    // Relaxed atomic loads: a seqlock read (a later lap's pusher may be writing them), validated
    // by the re-check below.
    value = std::atomic_ref<std::uint32_t>(c->value).load(std::memory_order_relaxed);
    tag = std::atomic_ref<std::uint32_t>(c->tag).load(std::memory_order_relaxed);
    // Acquire: the cell still held them for `pos` (a fence-free seqlock re-check).
    return c->seq.load(std::memory_order_acquire) == pos + 1 ? Peek::Published : Peek::Gone;
  }

  IndexRingHeader& header() const noexcept { return *hdr_; }
  IndexCell* cell(std::uint64_t pos) const noexcept { return cells_ + (pos & mask_); }
  std::uint32_t capacity() const noexcept { return static_cast<std::uint32_t>(mask_ + 1); }
  bool valid() const noexcept { return hdr_ != nullptr; }

 private:
  IndexRingHeader* hdr_ = nullptr;
  IndexCell* cells_ = nullptr;
  std::uint64_t mask_ = 0;
};

}  // namespace shmbus::ring
