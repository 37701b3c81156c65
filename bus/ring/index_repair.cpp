#include "ring/index_repair.hpp"

namespace shmbus::ring {

using layout::ClaimRole;
using layout::kClaimPending;
using layout::kNoValue;

bool IndexRingRepair::live_record(const ClaimRecord& r, std::uint64_t pos, ClaimRole role,
                                  const IsLiveOwner& is_live) const noexcept {
  // Acquire: pairs with init_record()'s release store of state (the owner is visible).
  if (r.state.load(std::memory_order_acquire) != static_cast<std::uint32_t>(role) || !is_live(r.owner)) return false;
  // SYNC: acquire pairs with the participant's release stores of its position and of idle (a
  // value newer than `pos` means its publish of `pos` is visible to our CAS), and, through the
  // head/tail release sequence loaded by repair(), with its relaxed "pending" before the CAS.
  const std::uint64_t c = r.op_pos.load(std::memory_order_acquire);
  // "Pending": between announcing and learning its position, which may be `pos`. Its window is
  // a few instructions; judge again next call. A record shared by several rings (queues) may
  // name `pos` in another ring: a false "held", which only delays the repair.
  return c == pos || c == kClaimPending;
}

bool IndexRingRepair::live_claim(std::uint64_t pos, ClaimRole role, const IsLiveOwner& is_live) const noexcept {
  for (const ClaimRecord& r : records_)
    if (live_record(r, pos, role, is_live)) return true;
  for (const ClaimRecord* r : record_ptrs_)
    if (live_record(*r, pos, role, is_live)) return true;
  return false;
}

IndexRepairResult IndexRingRepair::repair(const IsLiveOwner& is_live, const OnReleased& on_released) noexcept {
  IndexRepairResult res;
  auto& h = ring_.header();
  const std::uint64_t cap = ring_.capacity();
  // SYNC: acquire pairs with the participants' CAS (release sequences of head and tail): every
  // position below what we load is claimed, and its claimer's "pending" (or newer) record is
  // visible to the record loads in live_claim().
  const std::uint64_t head = h.head.load(std::memory_order_acquire);
  const std::uint64_t tail = h.tail.load(std::memory_order_acquire);
  // A stuck cell at p keeps the tail below p + capacity (the push at p + capacity needs it), so
  // every stuck position is in the last lap.
  for (std::uint64_t p = tail > cap ? tail - cap : 0; p < tail; ++p) {
    IndexCell* c = ring_.cell(p);
    // SYNC: acquire pairs with the publishes (release stores of seq); the value of a full cell is
    // visible for the report below.
    std::uint64_t seq = c->seq.load(std::memory_order_acquire);
    if (seq == p) {
      // Free for the push at p, yet the tail is past p: the push won its CAS and never published.
      if (live_claim(p, ClaimRole::Pusher, is_live)) {
        ++res.held;
        continue;
      }
      c->value = kNoValue;  // the claimer is dead: nobody else writes this cell
      // SYNC: release pairs with the poppers' acquire load of seq (the tombstone value is
      // visible). The CAS fails if the cell moved since we judged it (seq values never repeat).
      if (c->seq.compare_exchange_strong(seq, p + 1, std::memory_order_release, std::memory_order_relaxed)) {
        ++res.tombstoned;
        // Relaxed: statistics only.
        h.tombstones_written.fetch_add(1, std::memory_order_relaxed);
      }
    } else if (seq == p + 1 && p < head) {
      // Full at p, yet the head is past p: the pop won its CAS and never published.
      if (live_claim(p, ClaimRole::Popper, is_live)) {
        ++res.held;
        continue;
      }
      const std::uint32_t v = c->value;  // read before the cell is handed to the next lap's pusher
      // SYNC: release pairs with the next lap's pusher's acquire load of seq: our read of the
      // value is finished before it overwrites it.
      if (c->seq.compare_exchange_strong(seq, p + cap, std::memory_order_release, std::memory_order_relaxed)) {
        ++res.released;
        // Relaxed: statistics only.
        h.pops_released.fetch_add(1, std::memory_order_relaxed);
        if (v != kNoValue) on_released(p, v);  // a dead pop of a tombstone released nothing
      }
    }
  }
  return res;
}

}  // namespace shmbus::ring
