#include "ring/topic_repair.hpp"

namespace shmbus::ring {

using layout::make_stamp;
using layout::stamp_seq;
using layout::stamp_state;

TopicRepairer::TopicRepairer(TopicRing ring) noexcept : ring_(ring) { last_pos_.fill(kNone); }

bool TopicRepairer::pad(SlotHeader* s, std::uint64_t expected, std::uint64_t seq) noexcept {
  // SYNC: seq_cst CAS. Release pairs with readers' and waiting producers' acquire load of the pad
  // stamp. The CAS fails if the stamp moved since we judged it (then we judge again next time).
  // seq_cst orders it before the waiters load below: the Dekker handshake of TopicWriter::publish.
  if (!s->stamp.compare_exchange_strong(expected, make_stamp(seq, SlotState::Pad), std::memory_order_seq_cst,
                                        std::memory_order_relaxed))
    return false;
  auto& h = ring_.header();
  // Relaxed: statistics only.
  h.holes_repaired.fetch_add(1, std::memory_order_relaxed);
  wake_parked(h);
  return true;
}

bool TopicRepairer::live_claimer(std::uint64_t target, const IsDead& is_dead) const noexcept {
  const std::uint32_t n = std::min<std::uint32_t>(ring_.header().max_producers, layout::kMaxProducers);
  for (std::uint32_t i = 0; i < n; ++i) {
    const layout::ProducerEntry* p = ring_.producer(i);
    // Acquire: pairs with the conductor's release store when it set the entry up.
    if (p->state.load(std::memory_order_acquire) != 1 || is_dead(p->client_index)) continue;
    // SYNC: acquire pairs with the producer's release store of its claimed sequence (and, through
    // the tail's release sequence, with the relaxed "pending" store before its fetch_add).
    const std::uint64_t c = p->claim_seq.load(std::memory_order_acquire);
    // "Pending": the producer is between announcing and learning its sequence, which may be
    // `target`. Its window is a few instructions; judge again next time.
    if (c == target || c == layout::kClaimPending) return true;
  }
  return false;
}

SweepResult TopicRepairer::repair_slot(std::uint64_t seq, std::uint64_t tail, const IsDead& is_dead) noexcept {
  SweepResult r;
  const std::uint64_t n = ring_.slot_count();
  SlotHeader* s = ring_.slot(seq);
  for (;;) {
    // SYNC: acquire pairs with the publish exchange (data/pad) and with the writer's release
    // store of its writing mark (this lap's owner visible).
    const std::uint64_t st = s->stamp.load(std::memory_order_acquire);
    const std::uint64_t sq = stamp_seq(st);
    const SlotState state = stamp_state(st);
    if (sq > seq || (sq == seq && state >= SlotState::Data)) return r;  // published, or a newer lap
    // The oldest unpublished lap in this slot: the one being written, or the one after the last
    // publication (the first lap if the slot was never written).
    const std::uint64_t target = state == SlotState::Writing ? sq : st == 0 ? (seq & (n - 1)) : sq + n;
    if (target > seq || target >= tail) return r;  // not claimed yet
    const bool alive = state == SlotState::Writing
                           // Relaxed: ordered by the acquire load of the stamp above.
                           ? !is_dead(s->owner.load(std::memory_order_relaxed))
                           : live_claimer(target, is_dead);
    if (alive) {
      ++r.unpublished;
      return r;  // a live producer is writing, or about to: never overrule it
    }
    if (!pad(s, st, target)) continue;  // the stamp moved under us: judge again
    ++r.padded;
  }
}

std::uint32_t TopicRepairer::scan(const IsDead& is_dead) noexcept {
  // Acquire: the tail's release sequence carries every producer's "pending" announcement.
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
    // Relaxed: the position is a hint; repair_slot() judges the slot by its stamp alone.
    const std::uint64_t p = e->position.load(std::memory_order_relaxed);
    const bool stuck = p == last_pos_[i] && p < tail;
    last_pos_[i] = p;
    if (!stuck || p == examined) continue;
    examined = p;
    padded += repair_slot(p, tail, is_dead).padded;
  }
  return padded;
}

SweepResult TopicRepairer::sweep(const IsDead& is_dead) noexcept {
  const std::uint64_t tail = ring_.header().tail.load(std::memory_order_acquire);
  const std::uint64_t n = ring_.slot_count();
  SweepResult total;
  for (std::uint64_t seq = tail > n ? tail - n : 0; seq < tail; ++seq) {
    const SweepResult r = repair_slot(seq, tail, is_dead);
    total.padded += r.padded;
    total.unpublished += r.unpublished;
  }
  return total;
}

std::uint32_t TopicRepairer::tick(const IsDead& is_dead) noexcept {
  std::uint32_t padded = scan(is_dead);
  // Relaxed is enough to decide whether to sweep; sweep() loads the tail with acquire itself.
  const std::uint64_t t = ring_.header().tail.load(std::memory_order_relaxed);
  if (t == prev_tail_ && t != clean_tail_) {
    const SweepResult r = sweep(is_dead);
    padded += r.padded;
    if (r.unpublished == 0) clean_tail_ = t;
  }
  prev_tail_ = t;
  return padded;
}

}  // namespace shmbus::ring
