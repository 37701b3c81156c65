#include "ring/topic_repair.hpp"

namespace shmbus::ring {

using layout::make_stamp;
using layout::stamp_seq;
using layout::stamp_state;

TopicRepairer::TopicRepairer(TopicRing ring) noexcept
    : ring_(ring), scan_(ring.header().tail.load(std::memory_order_acquire)) {}

bool TopicRepairer::pad(SlotHeader* s, std::uint64_t expected, std::uint64_t seq) noexcept {
  // SYNC: acq_rel CAS — a producer racing to start this claim CASes the same stamp and exactly one
  // wins; release pairs with readers' acquire load of the pad stamp.
  if (!s->stamp.compare_exchange_strong(expected, make_stamp(seq, SlotState::Pad), std::memory_order_acq_rel,
                                        std::memory_order_relaxed))
    return false;
  auto& h = ring_.header();
  // Relaxed: statistics only.
  h.holes_repaired.fetch_add(1, std::memory_order_relaxed);
  // Same Dekker as TopicWriter::publish: the CAS above is seq_cst-strong on x86 and we re-check waiters.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (h.waiters.load(std::memory_order_seq_cst) != 0) {
    h.notify_seq.fetch_add(1, std::memory_order_release);
    futex_wake_all(h.notify_seq);
  }
  return true;
}

std::uint32_t TopicRepairer::scan(std::uint64_t now_ns, std::uint64_t stale_claim_ns,
                                  const std::function<bool(std::uint32_t)>& is_dead) noexcept {
  // Acquire: slots below the tail we read have been claimed; their stamps are read with acquire.
  const std::uint64_t tail = ring_.header().tail.load(std::memory_order_acquire);
  const std::uint64_t n = ring_.slot_count();
  if (tail > n && scan_ < tail - n) scan_ = tail - n;  // older sequences are overwritten anyway
  std::uint32_t padded = 0;
  while (scan_ < tail) {
    SlotHeader* s = ring_.slot(scan_);
    // SYNC: acquire pairs with the producer's acq_rel CAS to writing (owner visible) and its
    // seq_cst exchange to data/pad.
    const std::uint64_t st = s->stamp.load(std::memory_order_acquire);
    const std::uint64_t sq = stamp_seq(st);
    if (sq > scan_ || (sq == scan_ && stamp_state(st) >= SlotState::Data)) {
      ++scan_;
      continue;
    }
    if (stamp_state(st) == SlotState::Writing) {  // writing(scan_), or an older lap still writing
      // Relaxed: ordered by the acquire load of the stamp above.
      const std::uint32_t owner = s->owner.load(std::memory_order_relaxed);
      if (is_dead(owner) && pad(s, st, scan_)) {
        ++padded;
        ++scan_;
        continue;
      }
      break;  // a live producer is writing: nothing after this can be judged yet
    }
    // From here the stamp is from an older lap and not being written.
    // Claimed (tail passed it) but the producer has not started: dead between fetch_add and CAS,
    // or descheduled. After the grace period, revoke it; a live producer then re-claims.
    if (stuck_seq_ != scan_) {
      stuck_seq_ = scan_;
      stuck_since_ns_ = now_ns;
      break;
    }
    if (now_ns - stuck_since_ns_ < stale_claim_ns) break;
    if (pad(s, st, scan_)) {
      ring_.header().claims_revoked.fetch_add(1, std::memory_order_relaxed);
      ++padded;
      ++scan_;
      continue;
    }
    // The producer won the race and is writing now; look again next tick.
    break;
  }
  return padded;
}

std::uint32_t TopicRepairer::sweep_owner(std::uint32_t owner) noexcept {
  const std::uint64_t tail = ring_.header().tail.load(std::memory_order_acquire);
  const std::uint64_t n = ring_.slot_count();
  std::uint32_t padded = 0;
  for (std::uint64_t seq = tail > n ? tail - n : 0; seq < tail; ++seq) {
    SlotHeader* s = ring_.slot(seq);
    const std::uint64_t st = s->stamp.load(std::memory_order_acquire);
    if (st == make_stamp(seq, SlotState::Writing) && s->owner.load(std::memory_order_relaxed) == owner &&
        pad(s, st, seq))
      ++padded;
  }
  return padded;
}

}  // namespace shmbus::ring
