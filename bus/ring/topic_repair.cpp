#include "ring/topic_repair.hpp"

namespace shmbus::ring {

using layout::make_stamp;
using layout::stamp_seq;
using layout::stamp_state;

TopicRepairer::TopicRepairer(TopicRing ring) noexcept : ring_(ring) { last_pos_.fill(kNone); }

bool TopicRepairer::pad(SlotHeader* s, std::uint64_t expected, std::uint64_t seq) noexcept {
  // SYNC: seq_cst CAS — a producer racing to start this claim CASes the same stamp and exactly one
  // wins; release pairs with readers' acquire load of the pad stamp; seq_cst orders it before the
  // waiters load below, the same Dekker handshake as TopicWriter::publish.
  if (!s->stamp.compare_exchange_strong(expected, make_stamp(seq, SlotState::Pad), std::memory_order_seq_cst,
                                        std::memory_order_relaxed))
    return false;
  auto& h = ring_.header();
  // Relaxed: statistics only.
  h.holes_repaired.fetch_add(1, std::memory_order_relaxed);
  if (h.waiters.load(std::memory_order_seq_cst) != 0) {
    // Release: a woken parker's acquire load of notify_seq sees it changed.
    h.notify_seq.fetch_add(1, std::memory_order_release);
    futex_wake_all(h.notify_seq);
  }
  return true;
}

std::uint32_t TopicRepairer::examine(std::uint64_t seq, std::uint64_t now_ns, std::uint64_t stale_claim_ns,
                                     const std::function<bool(std::uint32_t)>& is_dead) noexcept {
  SlotHeader* s = ring_.slot(seq);
  // SYNC: acquire pairs with the producer's acq_rel CAS to writing (owner visible) and its
  // seq_cst exchange to data/pad.
  const std::uint64_t st = s->stamp.load(std::memory_order_acquire);
  const std::uint64_t sq = stamp_seq(st);
  if (sq > seq) return 0;  // a newer lap: the subscriber will see it is lapped
  if (sq == seq && stamp_state(st) >= SlotState::Data) return 0;  // ready: the subscriber is just not reading
  if (stamp_state(st) == SlotState::Writing) {
    // writing(seq), or an older lap still being written (the claimer of seq spins behind it).
    // Relaxed: ordered by the acquire load of the stamp above.
    if (is_dead(s->owner.load(std::memory_order_relaxed)) && pad(s, st, seq)) return 1;
    return 0;  // a live producer is writing in place
  }
  // Claimed (the tail is past seq) but not started: the claimer died between fetch_add and CAS, or
  // is descheduled. Time it; revoke after the grace period.
  Stuck* entry = nullptr;
  Stuck* oldest = &stuck_[0];
  for (auto& x : stuck_) {
    if (x.seq == seq) entry = &x;
    if (x.seq == kNone || (oldest->seq != kNone && x.since_ns < oldest->since_ns)) oldest = &x;
  }
  if (entry == nullptr) {
    *oldest = Stuck{seq, now_ns};
    return 0;
  }
  if (now_ns - entry->since_ns < stale_claim_ns) return 0;
  if (!pad(s, st, seq)) return 0;  // the producer won the race and is writing now
  entry->seq = kNone;
  ring_.header().claims_revoked.fetch_add(1, std::memory_order_relaxed);
  return 1;
}

std::uint32_t TopicRepairer::scan(std::uint64_t now_ns, std::uint64_t stale_claim_ns,
                                  const std::function<bool(std::uint32_t)>& is_dead) noexcept {
  // Acquire: a tail at least as new as the claims whose slots we are about to judge.
  const std::uint64_t tail = ring_.header().tail.load(std::memory_order_acquire);
  const std::uint32_t n = std::min<std::uint32_t>(ring_.header().max_subscribers, layout::kMaxSubscribers);
  std::uint32_t padded = 0;
  std::uint64_t examined = kNone;
  for (std::uint32_t i = 0; i < n; ++i) {
    const SubscriberEntry* e = ring_.subscriber(i);
    // Acquire: pairs with the conductor's release store of state when it set the entry up.
    if (e->state.load(std::memory_order_acquire) != 1) {
      last_pos_[i] = kNone;
      continue;
    }
    // Relaxed: the position is a hint; examine() judges the slot by its stamp alone.
    const std::uint64_t p = e->position.load(std::memory_order_relaxed);
    const bool stuck = p == last_pos_[i] && p < tail;
    last_pos_[i] = p;
    if (!stuck || p == examined) continue;
    examined = p;
    padded += examine(p, now_ns, stale_claim_ns, is_dead);
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
