#include "queue_agent.hpp"

#include "common/paths.hpp"

#include <algorithm>
#include <cstring>

namespace shmbus::daemon {

using layout::DeadLetterReason;
using layout::kQueueNoSlot;
using ring::IndexStatus;
using ring::QState;
using ring::QWord;

QueueAgent::QueueAgent(std::function<void(std::uint32_t)> need_dlq, std::uint64_t now_ns)
    : need_dlq_(std::move(need_dlq)), wheel_(TimingWheelConfig{}, now_ns), now_(now_ns) {}

QueueAgent::Queue* QueueAgent::find(std::uint32_t dest_id) noexcept {
  auto it = queues_.find(dest_id);
  return it == queues_.end() ? nullptr : &it->second;
}

void QueueAgent::add(std::uint32_t dest_id, std::string uri, ring::QueueRing q, std::shared_ptr<void> keep) {
  Queue x;
  x.dest_id = dest_id;
  x.uri = std::move(uri);
  x.q = q;
  x.keep = std::move(keep);
  x.sched_word.assign(q.slot_count(), ~0ULL);
  x.track.assign(layout::kQueueMaxConsumers, Tracking{});
  x.check_timer.assign(layout::kQueueMaxConsumers, TimerId{});
  x.check_at.assign(layout::kQueueMaxConsumers, 0);
  queues_.insert_or_assign(dest_id, std::move(x));
}

void QueueAgent::remove(std::uint32_t dest_id) {
  if (Queue* q = find(dest_id)) {
    for (auto t : q->check_timer) wheel_.cancel(t);
    queues_.erase(dest_id);  // deliver-at timers of this queue find no queue and are dropped
  }
  for (auto& [id, q] : queues_) {
    if (q.dlq_id != dest_id) continue;
    q.dlq_id = 0;  // its DLQ was removed (unused and empty): ask again at the next dead letter
    q.dlq_requested = false;
  }
}

void QueueAgent::set_dlq(std::uint32_t dest_id, std::uint32_t dlq_id) {
  Queue* q = find(dest_id);
  if (q == nullptr) return;
  q->dlq_id = dlq_id;
  if (dlq_id == 0) {  // no DLQ can exist: drop what waits for it, counted
    for (auto [slot, word] : q->dead_letters) {
      // Relaxed: statistics.
      q->q.header().dropped.fetch_add(1, std::memory_order_relaxed);
      free_slot(*q, slot, word);
    }
    q->dead_letters.clear();
  }
}

bool QueueAgent::cas(Queue& q, std::uint32_t slot, std::uint64_t& word, std::uint64_t next) {
  // SYNC: acq_rel; the daemon's transitions race only consumers' acks (DELIVERED -> FREE) and
  // duplicate poppers: one winner. Release publishes header fields the daemon wrote before.
  return q.q.slot(slot)->state.compare_exchange_strong(word, next, std::memory_order_acq_rel, std::memory_order_acquire);
}

void QueueAgent::free_slot(Queue& q, std::uint32_t slot, std::uint64_t word) {
  // A published PERSISTENT message is freed by the persistence agent only, after it has logged
  // why it left the queue (expired, dead-lettered, dropped): ACKED, to the persist ring. A
  // WRITING slot (a dead producer's) was never published: its flags may be an earlier life's.
  const bool persistent = QWord::state(word) != QState::Writing &&
                          (std::atomic_ref<std::uint8_t>(q.q.slot(slot)->flags).load(std::memory_order_relaxed) &
                           layout::kQFlagPersistent) != 0;
  if (persistent) {
    if (cas(q, slot, word, QWord::next(word, QState::Acked, 0, 0))) {
      ring::QueueRing::push(q.q.persist_ring(), slot, q.q.header().daemon_push);
      ++moved_;
    }
    return;
  }
  if (cas(q, slot, word, QWord::next(word, QState::Free, 0, 0))) {
    q.q.push_free(slot, q.q.header().daemon_push);
    ++moved_;
  }
}

void QueueAgent::make_ready(Queue& q, std::uint32_t slot, std::uint64_t word) {
  if (cas(q, slot, word, QWord::next(word, QState::Ready))) {
    q.q.push_ready(slot, q.q.header().daemon_push);
    ++moved_;
  }
}

void QueueAgent::schedule(Queue& q, std::uint32_t slot, std::uint64_t word) {
  if (q.sched_word[slot] == word) return;  // a duplicate agent-ring entry: its timer is armed
  const std::uint64_t at = q.q.slot(slot)->deliver_at_ns;
  if (at <= now_) {
    const std::uint64_t exp = q.q.slot(slot)->expires_at_ns;
    if (exp != 0 && exp <= now_) return expire(q, slot, word);
    return make_ready(q, slot, word);
  }
  if (!wheel_.add(at, payload(kDeliverAt, q.dest_id, slot)).ok()) {
    make_ready(q, slot, word);  // no timer memory left: deliver early rather than never
    return;
  }
  q.sched_word[slot] = word;
}

void QueueAgent::redeliver(Queue& q, std::uint32_t slot, std::uint64_t word) {
  auto& h = q.q.header();
  const bool is_dlq = (h.flags & layout::kQueueIsDlq) != 0;
  if (!is_dlq && h.max_deliveries != 0 && QWord::count(word) >= h.max_deliveries)
    return dead_letter(q, slot, word, DeadLetterReason::MaxDeliveries);
  auto* s = q.q.slot(slot);
  // The daemon owns a REDELIVER slot; atomic: the persistence agent may read the flags meanwhile.
  std::atomic_ref<std::uint8_t>(s->flags).fetch_or(layout::kQFlagRedelivered, std::memory_order_relaxed);
  // Relaxed: statistics.
  h.redelivered.fetch_add(1, std::memory_order_relaxed);
  if (h.redelivery_delay_ns != 0) {
    s->deliver_at_ns = now_ + h.redelivery_delay_ns;
    std::uint64_t w = word;
    if (cas(q, slot, w, QWord::next(word, QState::Scheduled))) schedule(q, slot, QWord::next(word, QState::Scheduled));
    return;
  }
  make_ready(q, slot, word);
}

void QueueAgent::expire(Queue& q, std::uint32_t slot, std::uint64_t word) {
  auto& h = q.q.header();
  // Relaxed: statistics.
  h.expired.fetch_add(1, std::memory_order_relaxed);
  if ((h.flags & layout::kQueueExpiredToDlq) != 0 && (h.flags & layout::kQueueDlqEnabled) != 0)
    return dead_letter(q, slot, word, DeadLetterReason::Expired);
  q.q.slot(slot)->reason = static_cast<std::uint8_t>(DeadLetterReason::Expired);  // the persistence agent logs why
  free_slot(q, slot, word);
}

void QueueAgent::dead_letter(Queue& q, std::uint32_t slot, std::uint64_t word, DeadLetterReason why) {
  auto& h = q.q.header();
  q.q.slot(slot)->reason = static_cast<std::uint8_t>(why);
  if ((h.flags & layout::kQueueDlqEnabled) == 0 || (h.flags & layout::kQueueIsDlq) != 0) {
    // Relaxed: statistics.
    h.dropped.fetch_add(1, std::memory_order_relaxed);
    return free_slot(q, slot, word);
  }
  // Own the slot while it waits: REDELIVER/EXPIRED are daemon states, in no ring.
  if (QWord::state(word) != QState::Redeliver && QWord::state(word) != QState::Expired) {
    std::uint64_t w = word;
    const std::uint64_t nw = QWord::next(word, QState::Redeliver);
    if (!cas(q, slot, w, nw)) return;
    word = nw;
  }
  if (q.dlq_id != 0) {
    if (Queue* d = find(q.dlq_id); d != nullptr && move_to_dlq(q, *d, slot, word)) return;
  } else if (!q.dlq_requested) {
    q.dlq_requested = true;
    need_dlq_(q.dest_id);
  }
  q.dead_letters.emplace_back(slot, word);
}

bool QueueAgent::move_to_dlq(Queue& q, Queue& dlq, std::uint32_t slot, std::uint64_t word) {
  // The daemon is the DLQ's producer here: it cannot die while the queue exists, so its claim
  // records need no repair, and the copy happens in one go on this thread.
  auto& dh = dlq.q.header();
  if (q.q.slot(slot)->length > dlq.q.max_payload()) {
    // The DLQ was opened first by a client with a smaller max message size: the message cannot
    // go there whole. Dropped and counted, never truncated.
    // Relaxed: statistics.
    q.q.header().dropped.fetch_add(1, std::memory_order_relaxed);
    free_slot(q, slot, word);
    return true;
  }
  std::uint32_t ds = 0;
  std::uint64_t dw = 0;
  for (;;) {
    const IndexStatus st = dlq.q.free_ring().try_pop(ds, dh.daemon_pop);
    if (st == IndexStatus::Empty || st == IndexStatus::Busy) return false;  // full: retry next tick
    // Acquire: pairs with the release that made it FREE.
    dw = dlq.q.slot(ds)->state.load(std::memory_order_acquire);
    if (QWord::state(dw) == QState::Free && cas(dlq, ds, dw, QWord::next(dw, QState::Writing, 0, 0))) break;
    // Relaxed: statistics.
    dh.stale_entries.fetch_add(1, std::memory_order_relaxed);
  }
  const auto* src = q.q.slot(slot);
  auto* dst = dlq.q.slot(ds);
  const std::uint32_t len = src->length;  // fits: checked above
  std::memcpy(dlq.q.payload(ds), q.q.payload(slot), len);
  dst->deliver_at_ns = 0;
  // Relaxed atomic stores: as QueueWriter::publish (readers of stale entries may look).
  std::atomic_ref<std::uint64_t>(dst->expires_at_ns).store(0, std::memory_order_relaxed);
  dst->timestamp_ns = src->timestamp_ns;
  dst->producer_seq = src->producer_seq;
  dst->producer_id = src->producer_id;
  dst->length = len;
  std::atomic_ref<std::uint8_t>(dst->priority).store(src->priority, std::memory_order_relaxed);
  // A frame stays a frame (its bytes are copied as they are); a PERSISTENT message stays one.
  const auto keep = static_cast<std::uint8_t>(layout::kQFlagFramed | layout::kQFlagPersistent);
  const auto dflags = static_cast<std::uint8_t>(std::atomic_ref<std::uint8_t>(const_cast<std::uint8_t&>(src->flags)).load(std::memory_order_relaxed) & keep);
  std::atomic_ref<std::uint8_t>(dst->flags).store(dflags, std::memory_order_relaxed);
  dst->producer_entry = 0xFF;  // no producer entry waits for this copy
  dst->reason = src->reason;
  dst->incarnation = src->incarnation;
  dst->origin_dest_id = q.dest_id;
  dw = QWord::next(dw, QState::Writing, 0, 0);
  // SYNC: release pairs with the popping consumer's acquire of the state word.
  dst->state.store(QWord::next(dw, QState::Ready, 0, 0), std::memory_order_release);
  // Pushed to the DLQ's persist ring before the original's ACKED entry (free_slot below): the
  // persistence agent logs the copy before the original's settlement (docs/persistence.md).
  if ((dflags & layout::kQFlagPersistent) != 0) ring::QueueRing::push(dlq.q.persist_ring(), ds, dh.daemon_push);
  dlq.q.push_ready(ds, dh.daemon_push);
  // Relaxed: statistics.
  q.q.header().dead_lettered.fetch_add(1, std::memory_order_relaxed);
  free_slot(q, slot, word);
  return true;
}

void QueueAgent::handle(Queue& q, std::uint32_t slot) {
  if (slot >= q.q.slot_count()) return;
  // Acquire: pairs with the release that put the slot in its current state.
  const std::uint64_t w = q.q.slot(slot)->state.load(std::memory_order_acquire);
  switch (QWord::state(w)) {
    case QState::Scheduled: return schedule(q, slot, w);
    case QState::Redeliver: return redeliver(q, slot, w);
    case QState::Expired: return expire(q, slot, w);
    default:
      // Relaxed: statistics (a duplicate entry; the slot moved on).
      q.q.header().stale_entries.fetch_add(1, std::memory_order_relaxed);
  }
}

bool QueueAgent::observe(Queue& q, std::uint32_t c) {
  auto* e = q.q.consumer(c);
  // Acquire: pairs with the conductor's release of the entry state (ack_timeout_ns, consumer_id).
  if (e->state.load(std::memory_order_acquire) != 1 || e->ack_timeout_ns == 0) return false;
  auto& t = q.track[c];
  if (t.consumer_id != e->consumer_id) {  // a new consumer in this entry
    wheel_.cancel(q.check_timer[c]);
    q.check_timer[c] = TimerId{};
    t = Tracking{};
    t.consumer_id = e->consumer_id;
  }
  // Acquire: pairs with the consumer's release store of its tail: entries below it are written.
  const std::uint64_t tail = e->fifo_tail.load(std::memory_order_acquire);
  if (tail > t.seen_tail) {
    // Every delivery below `tail` happened before now: timing it from now is never early, and
    // late by at most the tick since the last look. No clock read on the consumer's hot path.
    t.marks.emplace_back(tail, now_);
    t.seen_tail = tail;
    last_activity_ = now_;
  }
  return true;
}

void QueueAgent::check_acks(Queue& q, std::uint32_t c) {
  if (!observe(q, c)) return;
  auto* e = q.q.consumer(c);
  auto& t = q.track[c];
  // Acquire: entries below the consumer's head are settled; it only moves forward.
  std::uint64_t pos = std::max(t.checked, e->fifo_head.load(std::memory_order_acquire));
  while (!t.marks.empty() && t.marks.front().first <= pos) t.marks.pop_front();
  const auto* f = q.q.fifo(c);
  const std::uint64_t mask = q.q.window() - 1;
  while (pos < t.seen_tail && !t.marks.empty()) {
    const std::uint64_t deadline = t.marks.front().second + e->ack_timeout_ns;
    if (deadline > now_) {
      if (!q.check_timer[c].valid() || q.check_at[c] > deadline) {
        wheel_.cancel(q.check_timer[c]);
        q.check_timer[c] = wheel_.add(deadline, payload(kAckCheck, q.dest_id, c)).id;
        q.check_at[c] = deadline;
      }
      break;
    }
    // Relaxed atomic reads: the consumer may reuse an entry once its head passed it; a torn or
    // newer entry fails the generation check below, never acts on a delivery not timed out.
    const auto& fe = f[pos & mask];
    const std::uint32_t slot = std::atomic_ref<const std::uint32_t>(fe.slot).load(std::memory_order_relaxed);
    const std::uint32_t gen = std::atomic_ref<const std::uint32_t>(fe.gen_lo).load(std::memory_order_relaxed);
    if (++pos >= t.marks.front().first) t.marks.pop_front();
    if (slot >= q.q.slot_count()) continue;
    // Acquire: as in handle().
    std::uint64_t w = q.q.slot(slot)->state.load(std::memory_order_acquire);
    if (QWord::state(w) != QState::Delivered || QWord::owner(w) != c || QWord::gen_lo(w) != gen) continue;
    const std::uint64_t nw = QWord::next(w, QState::Redeliver);
    if (!cas(q, slot, w, nw)) continue;  // the ack won
    // Relaxed: statistics.
    q.q.header().ack_timeouts.fetch_add(1, std::memory_order_relaxed);
    redeliver(q, slot, nw);
  }
  t.checked = pos;
}

void QueueAgent::on_timer(std::uint64_t p) {
  const auto kind = static_cast<Kind>(p >> 62);
  Queue* q = find(static_cast<std::uint32_t>((p >> 32) & 0x3FFFFFFF));
  if (q == nullptr) return;
  const auto what = static_cast<std::uint32_t>(p);
  if (kind == kAckCheck) {
    if (what >= layout::kQueueMaxConsumers) return;
    q->check_timer[what] = TimerId{};
    return check_acks(*q, what);
  }
  if (what >= q->q.slot_count()) return;
  const std::uint64_t expect = q->sched_word[what];
  q->sched_word[what] = ~0ULL;
  // Acquire: as in handle().
  const std::uint64_t w = q->q.slot(what)->state.load(std::memory_order_acquire);
  if (w != expect) return;  // moved on (a duplicate timer, or the slot was reclaimed)
  const std::uint64_t exp = q->q.slot(what)->expires_at_ns;
  if (exp != 0 && exp <= now_) return expire(*q, what, w);
  make_ready(*q, what, w);
}

std::size_t QueueAgent::tick(std::uint64_t now_ns) {
  now_ = std::max(now_, now_ns);
  moved_ = 0;
  for (auto& [id, q] : queues_) {
    q.q.refresh_ready_mask();
    ring::IndexRing ar = q.q.agent_ring();
    std::uint32_t slot = 0;
    for (;;) {
      const IndexStatus st = ar.try_pop(slot, q.q.header().daemon_pop);
      if (st != IndexStatus::Ok) break;  // Busy: a pusher mid-publish; next tick
      handle(q, slot);
    }
    for (std::uint32_t c = 0; c < layout::kQueueMaxConsumers; ++c) {
      if (q.check_timer[c].valid()) observe(q, c);  // its timer will check; just note new deliveries
      else check_acks(q, c);
    }
    if (!q.dead_letters.empty() && q.dlq_id != 0) {
      if (Queue* d = find(q.dlq_id)) {
        std::size_t done = 0;
        for (; done < q.dead_letters.size(); ++done) {
          auto [s, w] = q.dead_letters[done];
          if (!move_to_dlq(q, *d, s, w)) break;
        }
        q.dead_letters.erase(q.dead_letters.begin(), q.dead_letters.begin() + static_cast<std::ptrdiff_t>(done));
      }
    }
  }
  for (auto& [id, q] : queues_) {
    if (!q.repair_again) continue;
    std::vector<std::uint32_t> orphans;
    Released r;
    repair_rings(q, orphans);
    reannounce(q, orphans, r);
  }
  wheel_.advance(now_, [this](std::uint64_t p) { on_timer(p); });
  if (moved_ != 0) last_activity_ = now_;
  return moved_;
}

std::uint32_t QueueAgent::repair_rings(Queue& q, std::vector<std::uint32_t>& orphans) {
  const auto is_live = [&q](std::uint32_t owner) {
    if (owner == layout::kDaemonOwner) return true;
    // Acquire: pairs with the conductor's release of the entry state.
    if (owner < layout::kConsumerOwnerBase) return q.q.producer(owner)->state.load(std::memory_order_acquire) == 1;
    return q.q.consumer(owner - layout::kConsumerOwnerBase)->state.load(std::memory_order_acquire) == 1;
  };
  const auto on_released = [&orphans](std::uint64_t, std::uint32_t v) { orphans.push_back(v); };
  if (q.records.empty()) {
    for (std::uint32_t i = 0; i < layout::kQueueMaxProducers; ++i) {
      q.records.push_back(&q.q.producer(i)->push);
      q.records.push_back(&q.q.producer(i)->pop);
    }
    for (std::uint32_t i = 0; i < layout::kQueueMaxConsumers; ++i) {
      q.records.push_back(&q.q.consumer(i)->push);
      q.records.push_back(&q.q.consumer(i)->pop);
    }
    q.records.push_back(&q.q.header().daemon_push);
    q.records.push_back(&q.q.header().daemon_pop);
    q.records.push_back(&q.q.header().persist_push);
    q.records.push_back(&q.q.header().persist_pop);
  }
  std::uint32_t repaired = 0;
  bool held = false;
  for (std::uint32_t k = 0; k < layout::kQueueIndexRings; ++k) {
    const auto res = ring::IndexRingRepair(q.q.index_ring(k), std::span<const layout::ClaimRecord* const>(q.records)).repair(is_live, on_released);
    repaired += res.tombstoned + res.released;
    held = held || res.held != 0;
  }
  // A cell held by a record that looked live (or pending) may still be a dead one's: records are
  // shared by the rings of a queue. Look again every tick until a pass finds nothing held.
  q.repair_again = held;
  return repaired;
}

void QueueAgent::reannounce(Queue& q, std::vector<std::uint32_t>& orphans, Released& r) {
  const auto n = q.q.slot_count();
  std::sort(orphans.begin(), orphans.end());
  orphans.erase(std::unique(orphans.begin(), orphans.end()), orphans.end());
  for (const auto s : orphans) {
    if (s >= n) continue;
    // Acquire: as in handle().
    const std::uint64_t w = q.q.slot(s)->state.load(std::memory_order_acquire);
    // A published PERSISTENT slot may have died on its way to the persist ring: push it there
    // too (the persistence agent ignores what it has already logged).
    const bool persistent = (std::atomic_ref<std::uint8_t>(q.q.slot(s)->flags).load(std::memory_order_relaxed) &
                             layout::kQFlagPersistent) != 0;
    const QState st = QWord::state(w);
    if (persistent && st != QState::Free && st != QState::Writing)
      ring::QueueRing::push(q.q.persist_ring(), s, q.q.header().daemon_push);
    switch (st) {
      case QState::Acked: break;
      case QState::Free: q.q.push_free(s, q.q.header().daemon_push); break;
      case QState::Ready: q.q.push_ready(s, q.q.header().daemon_push); break;
      case QState::Scheduled:
      case QState::Redeliver:
      case QState::Expired: handle(q, s); break;
      default: continue;  // WRITING / DELIVERED: a live owner's, or the walk's
    }
    ++r.reannounced;
  }
}

QueueAgent::Released QueueAgent::release(std::uint32_t dest_id, bool producer, std::uint32_t entry) {
  Released r;
  Queue* qp = find(dest_id);
  if (qp == nullptr) return r;
  Queue& q = *qp;
  const auto n = q.q.slot_count();
  // 1. Slots it owned.
  for (std::uint32_t s = 0; s < n; ++s) {
    // Acquire: as in handle().
    std::uint64_t w = q.q.slot(s)->state.load(std::memory_order_acquire);
    if (QWord::owner(w) != entry) continue;
    if (producer && QWord::state(w) == QState::Writing) {
      free_slot(q, s, w);
      ++r.freed;
    } else if (!producer && QWord::state(w) == QState::Delivered) {
      const std::uint64_t nw = QWord::next(w, QState::Redeliver);
      if (cas(q, s, w, nw)) {
        redeliver(q, s, nw);
        ++r.redelivered;
      }
    }
  }
  // 2. Index-ring cells it claimed and never published (a dead pop's value is re-announced
  // below like the held slot; a dead push leaves a tombstone, its slot is named by `held`).
  std::vector<std::uint32_t> orphans;
  r.ring_repairs += repair_rings(q, orphans);
  // 3. The slot between rings its `held` word names.
  auto& held = producer ? q.q.producer(entry)->held : q.q.consumer(entry)->held;
  // Relaxed: the owner is gone (closed or dead): nothing writes it concurrently.
  const std::uint64_t h = held.load(std::memory_order_relaxed);
  if (h != kQueueNoSlot) orphans.push_back(static_cast<std::uint32_t>(h));
  held.store(kQueueNoSlot, std::memory_order_relaxed);
  reannounce(q, orphans, r);
  // 4. Records and counts the dead participant cannot reset itself (a claim record left pending,
  // or naming a position, would look like a live claim once the entry has a new owner and block
  // every later repair; a parked count would make every publish pay a futex wake); then the
  // entry is free again.
  const auto reset_record = [](layout::ClaimRecord& rec) {
    // Relaxed: published by the entry's release store of state below.
    rec.op_pos.store(layout::kClaimIdle, std::memory_order_relaxed);
  };
  if (!producer) {
    auto* e = q.q.consumer(entry);
    reset_record(e->push);
    reset_record(e->pop);
    // Relaxed: the count only gates futex wakes; nobody else writes this entry's flag now.
    if (e->parked.exchange(0, std::memory_order_relaxed) != 0) q.q.header().waiters.fetch_sub(1, std::memory_order_relaxed);
    wheel_.cancel(q.check_timer[entry]);
    q.check_timer[entry] = TimerId{};
    // Relaxed: published by the state store below.
    e->fifo_head.store(0, std::memory_order_relaxed);
    e->fifo_tail.store(0, std::memory_order_relaxed);
    e->ack_timeout_ns = 0;
    q.track[entry] = Tracking{};
    // Release: the conductor hands the entry out only after it hears from us; the next owner
    // sees the cleared cursors.
    e->state.store(0, std::memory_order_release);
  } else {
    auto* e = q.q.producer(entry);
    reset_record(e->push);
    reset_record(e->pop);
    // Relaxed: as for consumers.
    if (e->parked.exchange(0, std::memory_order_relaxed) != 0) q.q.header().space_waiters.fetch_sub(1, std::memory_order_relaxed);
    e->state.store(0, std::memory_order_release);
  }
  return r;
}

}  // namespace shmbus::daemon
