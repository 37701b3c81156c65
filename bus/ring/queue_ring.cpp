#include "ring/queue_ring.hpp"

#include "common/paths.hpp"
#include "ring/futex.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <immintrin.h>

namespace shmbus::ring {

using layout::ClaimRecord;
using layout::kQueueNoSlot;
using layout::QueueSlotHeader;

namespace {
/// Tries of a Busy ring before a take/acquire reports "nothing" (the caller's wait loop retries).
constexpr int kBusyTries = 256;
constexpr int kTidyPerCall = 16;  // stale head entries a selector consumer drops per receive

/// A counter only its entry's owner writes: a plain load and store, not a locked RMW.
void bump(std::atomic<std::uint64_t>& c) noexcept {
  // Relaxed: statistics; single writer (the entry's owner), read by stat.
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void count_stale(layout::QueueHeader& h) noexcept {
  // Relaxed: statistics only.
  h.stale_entries.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

std::string_view check_queue(const void* base, std::size_t available) noexcept {
  if (available < sizeof(layout::QueueHeader)) return "queue mapping is smaller than its header";
  const auto* h = static_cast<const layout::QueueHeader*>(base);
  if (h->magic != layout::kQueueMagic) return "bad queue magic";
  // Acquire: pairs with the daemon's release store in init(): the config block is complete.
  if (h->layout_version.load(std::memory_order_acquire) != layout::kLayoutVersion) return "queue layout version mismatch";
  if (h->kind != 2) return "not a queue";
  if (!std::has_single_bit(h->slot_count) || h->slot_count < layout::kMinQueueSlots || h->slot_count > layout::kMaxQueueSlots)
    return "queue slot count is not a power of two in range";
  const auto g = layout::queue_geometry(h->slot_count, h->max_payload);
  if (h->slot_size != g.slot_size || h->window != g.window || h->ring_capacity != g.ring_capacity ||
      h->producers_off != g.producers_off || h->consumers_off != g.consumers_off || h->free_ring_off != g.free_ring_off ||
      h->ready_rings_off != g.ready_rings_off || h->ready_ring_stride != g.ready_ring_stride ||
      h->agent_ring_off != g.agent_ring_off || h->persist_ring_off != g.persist_ring_off || h->fifos_off != g.fifos_off ||
      h->slots_off != g.slots_off ||
      h->max_producers != layout::kQueueMaxProducers || h->max_consumers != layout::kQueueMaxConsumers)
    return "queue geometry is inconsistent";
  if (h->total_length != g.total || g.total > available) return "queue is longer than its mapping";
  const auto* b = static_cast<const std::byte*>(base);
  for (std::uint32_t i = 0; i < layout::kQueueIndexRings; ++i) {
    const std::uint64_t off = g.free_ring_off + std::uint64_t{i} * g.ready_ring_stride;
    if (auto e = check_index_ring(b + off, g.ready_ring_stride); !e.empty()) return e;
    if (static_cast<const layout::IndexRingHeader*>(static_cast<const void*>(b + off))->capacity != g.ring_capacity)
      return "queue index ring has the wrong capacity";
  }
  return {};
}

QueueRing::QueueRing(void* base) noexcept
    : base_(static_cast<std::byte*>(base)),
      hdr_(static_cast<layout::QueueHeader*>(base)),
      slots_(base_ + hdr_->slots_off) {}

bool QueueRing::init(void* base, std::uint64_t available, const QueueConfig& cfg) noexcept {
  if (!std::has_single_bit(cfg.slot_count) || cfg.slot_count < layout::kMinQueueSlots ||
      cfg.slot_count > layout::kMaxQueueSlots || cfg.max_payload == 0)
    return false;
  const auto g = layout::queue_geometry(cfg.slot_count, cfg.max_payload);
  if (g.total > available) return false;
  auto* h = static_cast<layout::QueueHeader*>(base);
  auto* b = static_cast<std::byte*>(base);
  h->magic = layout::kQueueMagic;
  h->kind = 2;
  h->total_length = g.total;
  h->slot_count = cfg.slot_count;
  h->slot_size = g.slot_size;
  h->max_payload = cfg.max_payload;
  h->dest_id = cfg.dest_id;
  h->max_producers = layout::kQueueMaxProducers;
  h->max_consumers = layout::kQueueMaxConsumers;
  h->window = g.window;
  h->max_deliveries = cfg.max_deliveries;
  h->redelivery_delay_ns = cfg.redelivery_delay_ns;
  h->flags = cfg.flags;
  h->ring_capacity = g.ring_capacity;
  h->producers_off = g.producers_off;
  h->consumers_off = g.consumers_off;
  h->free_ring_off = g.free_ring_off;
  h->ready_rings_off = g.ready_rings_off;
  h->ready_ring_stride = g.ready_ring_stride;
  h->agent_ring_off = g.agent_ring_off;
  h->persist_ring_off = g.persist_ring_off;
  h->fifos_off = g.fifos_off;
  h->slots_off = g.slots_off;
  std::memset(h->name, 0, sizeof h->name);
  std::memcpy(h->name, cfg.name.data(), std::min(cfg.name.size(), sizeof h->name - 1));
  // Relaxed (all of init): published by the release store of layout_version at the end.
  IndexRing::init_record(h->daemon_push, layout::kDaemonOwner, layout::ClaimRole::Pusher);
  IndexRing::init_record(h->daemon_pop, layout::kDaemonOwner, layout::ClaimRole::Popper);
  IndexRing::init_record(h->persist_push, layout::kDaemonOwner, layout::ClaimRole::Pusher);
  IndexRing::init_record(h->persist_pop, layout::kDaemonOwner, layout::ClaimRole::Popper);
  for (std::uint32_t i = 0; i < layout::kQueueIndexRings; ++i)
    IndexRing::init(b + g.free_ring_off + std::uint64_t{i} * g.ready_ring_stride, g.ring_capacity);
  for (std::uint32_t i = 0; i < layout::kQueueMaxProducers; ++i) {
    auto* e = reinterpret_cast<layout::QueueProducerEntry*>(b + g.producers_off + std::uint64_t{i} * sizeof(layout::QueueProducerEntry));
    e->held.store(kQueueNoSlot, std::memory_order_relaxed);
    IndexRing::init_record(e->push, i, layout::ClaimRole::Pusher);
    IndexRing::init_record(e->pop, i, layout::ClaimRole::Popper);
  }
  for (std::uint32_t i = 0; i < layout::kQueueMaxConsumers; ++i) {
    auto* e = reinterpret_cast<layout::QueueConsumerEntry*>(b + g.consumers_off + std::uint64_t{i} * sizeof(layout::QueueConsumerEntry));
    e->held.store(kQueueNoSlot, std::memory_order_relaxed);
    IndexRing::init_record(e->push, layout::kConsumerOwnerBase + i, layout::ClaimRole::Pusher);
    IndexRing::init_record(e->pop, layout::kConsumerOwnerBase + i, layout::ClaimRole::Popper);
  }
  // Every slot starts FREE (state word 0 in the zeroed mapping) and in the free ring.
  IndexRing free_ring(b + g.free_ring_off);
  for (std::uint32_t s = 0; s < cfg.slot_count; ++s) push(free_ring, s, h->daemon_push);
  // SYNC: release pairs with check_queue()'s acquire: everything above is visible first.
  h->layout_version.store(layout::kLayoutVersion, std::memory_order_release);
  return true;
}

layout::QueueProducerEntry* QueueRing::producer(std::uint32_t i) const noexcept {
  return reinterpret_cast<layout::QueueProducerEntry*>(base_ + hdr_->producers_off + std::uint64_t{i} * sizeof(layout::QueueProducerEntry));
}
layout::QueueConsumerEntry* QueueRing::consumer(std::uint32_t i) const noexcept {
  return reinterpret_cast<layout::QueueConsumerEntry*>(base_ + hdr_->consumers_off + std::uint64_t{i} * sizeof(layout::QueueConsumerEntry));
}
layout::FifoEntry* QueueRing::fifo(std::uint32_t consumer) const noexcept {
  return reinterpret_cast<layout::FifoEntry*>(base_ + hdr_->fifos_off) + std::uint64_t{consumer} * hdr_->window;
}

bool QueueRing::any_ready() const noexcept {
  // seq_cst loads: the parker's half of the handshake in push_ready().
  for (std::uint32_t p = 0; p < layout::kPriorities; ++p)
    if (!ready_ring(p).looks_empty(std::memory_order_seq_cst)) return true;
  return false;
}

void QueueRing::wake_producers() const noexcept {
  // The Dekker half, all seq_cst: our push (the seq_cst CAS of the free ring's tail), then the
  // waiters load; a parking producer counts itself, then loads the free ring's tail.
  wake_waiters(hdr_->space_seq, hdr_->space_waiters);
}

void QueueRing::push(IndexRing r, std::uint32_t slot, ClaimRecord& rec, std::uint32_t tag) noexcept {
  while (r.try_push(slot, rec, tag) != IndexStatus::Ok) _mm_pause();
}

void QueueRing::push_ready(std::uint32_t slot, ClaimRecord& rec) const noexcept {
  // Relaxed atomic load: a rotation may push a slot that others take and a producer rewrites
  // meanwhile; a stale priority only sends the (then stale) entry to another ring.
  const std::uint32_t prio = std::min<std::uint32_t>(
      std::atomic_ref<std::uint8_t>(this->slot(slot)->priority).load(std::memory_order_relaxed), layout::kPriorities - 1);
  // The cell's tag: the generation of the READY word this entry announces (our caller just
  // stored it, or found it). Acquire, for the same reason as every reader of the word. If the
  // slot moved on meanwhile the entry is stale whatever its tag says, and the scans skip it; in
  // the rare case the slot is READY again in a later life, the entry is a duplicate of that
  // life's own entry, which the CAS makes harmless.
  const std::uint32_t gen = QWord::gen_lo(this->slot(slot)->state.load(std::memory_order_acquire));
  push(ready_ring(prio), slot, rec, gen);
  // SYNC: Dekker with clear_ready_bit(), all four operations seq_cst: our push (the seq_cst CAS
  // of the ring's tail), then the mask load; the consumer clears the bit (seq_cst RMW), then
  // loads the ring's tail (seq_cst). Either we see the bit cleared and set it, or it sees our
  // push and sets it back. In steady state the bit is already set and this is one load of a
  // line consumers only read. (On x86 seq_cst loads are plain loads: no fence anywhere.)
  const std::uint32_t bit = 1U << prio;
  if ((hdr_->ready_mask.load(std::memory_order_seq_cst) & bit) == 0)
    // Release (seq_cst): a consumer that acquires the mask with our bit sees the push.
    hdr_->ready_mask.fetch_or(bit, std::memory_order_seq_cst);
  // The same Dekker shape with a parking consumer: it counts itself (seq_cst RMW), then loads the
  // rings' tails (seq_cst); we pushed (seq_cst CAS), then load its count (seq_cst).
  wake_waiters(hdr_->notify_seq, hdr_->waiters);
}

void QueueRing::clear_ready_bit(std::uint32_t prio) const noexcept {
  const std::uint32_t bit = 1U << prio;
  // SYNC: the consumer half of the Dekker pair in push_ready(): clear (seq_cst RMW), then look
  // again (seq_cst loads of the ring's tail and head).
  hdr_->ready_mask.fetch_and(~bit, std::memory_order_seq_cst);
  if (!ready_ring(prio).looks_empty(std::memory_order_seq_cst)) hdr_->ready_mask.fetch_or(bit, std::memory_order_seq_cst);
}

void QueueRing::refresh_ready_mask() const noexcept {
  for (std::uint32_t p = 0; p < layout::kPriorities; ++p) {
    const std::uint32_t bit = 1U << p;
    // Relaxed: a hint; set with release as in push_ready().
    if ((hdr_->ready_mask.load(std::memory_order_relaxed) & bit) == 0 && !ready_ring(p).looks_empty())
      hdr_->ready_mask.fetch_or(bit, std::memory_order_release);
  }
}

void QueueRing::push_free(std::uint32_t slot, ClaimRecord& rec) const noexcept {
  push(free_ring(), slot, rec);
  wake_producers();
}

// ---------------------------------------------------------------- producer side

QueueWriter::QueueWriter(QueueRing q, std::uint32_t entry) noexcept : q_(q), e_(q.producer(entry)), index_(entry) {}

bool QueueWriter::acquire(std::uint32_t& slot) noexcept {
  IndexRing fr = q_.free_ring();
  for (int busy = 0;;) {
    std::uint32_t s = 0;
    const IndexStatus st = fr.try_pop(s, e_->pop, &e_->held);
    if (st == IndexStatus::Empty) return false;
    if (st == IndexStatus::Busy) {
      if (++busy > kBusyTries) return false;  // an acker between its CAS and its publish: retry later
      _mm_pause();
      continue;
    }
    auto& word = q_.slot(s)->state;
    // Acquire: pairs with the release CAS/store that made it FREE: the last owner is done with it.
    std::uint64_t w = word.load(std::memory_order_acquire);
    // SYNC: acq_rel; the CAS makes us the only owner. A duplicate entry (crash recovery) finds the
    // slot in another state, or loses this CAS to the other entry's popper.
    if (QWord::state(w) != QState::Free ||
        !word.compare_exchange_strong(w, QWord::next(w, QState::Writing, index_, 0), std::memory_order_acq_rel,
                                      std::memory_order_relaxed)) {
      count_stale(q_.header());
      // Relaxed: read only after we are gone.
      e_->held.store(kQueueNoSlot, std::memory_order_relaxed);
      continue;
    }
    slot = s;  // `held` keeps naming it until publish/discard: WRITING slots are the walk's anyway
    return true;
  }
}

void QueueWriter::publish(std::uint32_t slot, const QueueSendMeta& m) noexcept {
  // Relaxed: read only after we are gone (see the crash rule in queue_ring.hpp).
  e_->held.store(slot, std::memory_order_relaxed);
  QueueSlotHeader* h = q_.slot(slot);
  h->deliver_at_ns = m.deliver_at_ns;
  // Relaxed atomic stores for the two fields that readers of a stale entry may look at while we
  // own the slot (expire_if_due, push_ready): their verdict is discarded by a failing CAS.
  std::atomic_ref<std::uint64_t>(h->expires_at_ns).store(m.expires_at_ns, std::memory_order_relaxed);
  h->timestamp_ns = m.timestamp_ns;
  h->producer_seq = m.producer_seq;
  h->producer_id = m.producer_id;
  h->length = m.length;
  std::atomic_ref<std::uint8_t>(h->priority).store(std::min<std::uint8_t>(m.priority, layout::kPriorities - 1),
                                                   std::memory_order_relaxed);
  // Relaxed atomic store: the persistence agent may read a stale entry's flags (it re-checks
  // the state word around the read, seqlock style).
  // A read-committed queue's PERSISTENT message is handed to the persistence agent only: it
  // pushes it to the ready (or agent) ring once committed.
  const bool gated = m.persistent && (q_.header().flags & layout::kQueueReadCommitted) != 0;
  std::atomic_ref<std::uint8_t>(h->flags).store(
      static_cast<std::uint8_t>((m.framed ? layout::kQFlagFramed : 0) | (m.persistent ? layout::kQFlagPersistent : 0) |
                                (gated ? layout::kQFlagGated : 0) |
                                (m.persistent && m.durable_wait ? layout::kQFlagDurableWait : 0) |
                                (m.persistent && m.replicated_wait ? layout::kQFlagReplicatedWait : 0)),
      std::memory_order_relaxed);
  h->producer_entry = static_cast<std::uint8_t>(index_);
  h->reason = 0;
  h->origin_dest_id = 0;
  h->incarnation = m.incarnation;
  const bool scheduled = m.deliver_at_ns != 0;
  // Relaxed: we are the slot's only owner (WRITING, owner = us).
  const std::uint64_t w = h->state.load(std::memory_order_relaxed);
  // SYNC: release pairs with the acquire load of whoever pops the slot number (consumer or
  // daemon): the header and payload written above are visible before the state says READY.
  h->state.store(QWord::next(w, scheduled ? QState::Scheduled : QState::Ready, 0, 0), std::memory_order_release);
  // A PERSISTENT message goes to the persistence agent first: from now on only that agent frees
  // the slot, so it can read the message whenever it gets to it.
  if (m.persistent) QueueRing::push(q_.persist_ring(), slot, e_->push);
  if (gated) {
    // nothing more: the persistence agent releases it (QueueStore::release_committed)
  } else if (scheduled) QueueRing::push(q_.agent_ring(), slot, e_->push);
  else q_.push_ready(slot, e_->push);
  // Relaxed: statistics / crash word.
  bump(e_->sent);
  e_->held.store(kQueueNoSlot, std::memory_order_relaxed);
}

void QueueWriter::discard(std::uint32_t slot) noexcept {
  // Relaxed: crash word.
  e_->held.store(slot, std::memory_order_relaxed);
  auto& word = q_.slot(slot)->state;
  const std::uint64_t w = word.load(std::memory_order_relaxed);  // we own it
  // Release: the next producer to pop it sees our writes finished.
  word.store(QWord::next(w, QState::Free, 0, 0), std::memory_order_release);
  q_.push_free(slot, e_->push);
  e_->held.store(kQueueNoSlot, std::memory_order_relaxed);
}

// ---------------------------------------------------------------- consumer side

QueueReader::QueueReader(QueueRing q, std::uint32_t entry, bool track) noexcept
    : q_(q), e_(q.consumer(entry)), index_(entry), track_(track) {}

bool QueueReader::mine(std::uint32_t slot, std::uint32_t gen_lo, std::uint64_t& word) const noexcept {
  // Acquire: pairs with the daemon's CAS when it took the delivery back (ack timeout).
  word = q_.slot(slot)->state.load(std::memory_order_acquire);
  return QWord::state(word) == QState::Delivered && QWord::owner(word) == index_ && QWord::gen_lo(word) == gen_lo;
}

void QueueReader::advance_head() noexcept {
  // Relaxed: we are the only writer of both cursors.
  const std::uint64_t tail = e_->fifo_tail.load(std::memory_order_relaxed);
  std::uint64_t head = e_->fifo_head.load(std::memory_order_relaxed);
  const layout::FifoEntry* f = q_.fifo(index_);
  const std::uint64_t mask = q_.window() - 1;
  std::uint64_t w = 0;
  while (head < tail && !mine(f[head & mask].slot, f[head & mask].gen_lo, w)) ++head;
  // Release: the daemon reads entries at and after head only.
  e_->fifo_head.store(head, std::memory_order_release);
}

std::uint64_t QueueReader::unsettled() noexcept {
  if (!track_) return 0;
  advance_head();
  // Relaxed: our own cursors.
  return e_->fifo_tail.load(std::memory_order_relaxed) - e_->fifo_head.load(std::memory_order_relaxed);
}

bool QueueReader::window_full(std::uint64_t& tail) noexcept {
  if (!track_) return false;
  // Relaxed: our own cursors.
  tail = e_->fifo_tail.load(std::memory_order_relaxed);
  if (tail - e_->fifo_head.load(std::memory_order_relaxed) >= q_.window()) {
    advance_head();
    if (tail - e_->fifo_head.load(std::memory_order_relaxed) >= q_.window()) return true;
  }
  return false;
}

bool QueueReader::expire_if_due(std::uint32_t s, std::uint64_t w) noexcept {
  QueueSlotHeader* h = q_.slot(s);
  // Relaxed: see publish(); a value from a later life only matters if the CAS below succeeds,
  // and it cannot (the word changed).
  const std::uint64_t exp = std::atomic_ref<std::uint64_t>(h->expires_at_ns).load(std::memory_order_relaxed);
  if (exp == 0 || common::mono_ns() < exp) return false;
  // SYNC: acq_rel; one winner among duplicate poppers and scanners. The daemon decides DLQ or drop.
  if (h->state.compare_exchange_strong(w, QWord::next(w, QState::Expired), std::memory_order_acq_rel,
                                       std::memory_order_relaxed))
    QueueRing::push(q_.agent_ring(), s, e_->push);
  else
    count_stale(q_.header());
  return true;
}

bool QueueReader::claim(std::uint32_t s, std::uint64_t w, std::uint64_t tail, QueueDelivery& d) noexcept {
  QueueSlotHeader* h = q_.slot(s);
  const std::uint32_t count = std::min<std::uint32_t>(QWord::count(w) + 1, QWord::kMaxCount);
  const std::uint64_t nw = QWord::next(w, QState::Delivered, index_, count);
  // SYNC: acq_rel; the delivery: exactly one consumer wins a READY word.
  if (!h->state.compare_exchange_strong(w, nw, std::memory_order_acq_rel, std::memory_order_relaxed)) return false;
  if (track_) {
    layout::FifoEntry& f = q_.fifo(index_)[tail & (q_.window() - 1)];
    // Relaxed atomic stores: the daemon may still read this entry's previous use (it reads
    // entries it has not passed yet with relaxed atomic loads and checks the generation);
    // the release store of the tail below publishes the new entry. No timestamp: the daemon
    // times a delivery from when it first sees the tail past it (never early, no clock read
    // here).
    std::atomic_ref<std::uint32_t>(f.slot).store(s, std::memory_order_relaxed);
    std::atomic_ref<std::uint32_t>(f.gen_lo).store(QWord::gen_lo(nw), std::memory_order_relaxed);
    // Release: the daemon's acquire load of the tail sees the entry.
    e_->fifo_tail.store(tail + 1, std::memory_order_release);
  }
  // Relaxed: statistics.
  bump(e_->received);
  d.slot = s;
  d.word = nw;
  return true;
}

TakeStatus QueueReader::take(QueueDelivery& d) noexcept {
  std::uint64_t tail = 0;
  if (window_full(tail)) return TakeStatus::WindowFull;
  int busy_tries = 0;
  for (;;) {
    bool busy = false;
    bool retry = false;
    // Acquire: pairs with the producers' release fetch_or: a set bit's push is visible. Only
    // rings whose bit is set are probed: an idle consumer pays one load, a busy one one ring.
    const std::uint32_t mask = q_.header().ready_mask.load(std::memory_order_acquire);
    for (std::uint32_t p = layout::kPriorities; p-- > 0 && !retry;) {
      if ((mask & (1U << p)) == 0) continue;
      std::uint32_t s = 0, tag = 0;
      const IndexStatus st = q_.ready_ring(p).try_pop(s, e_->pop, &e_->held, &tag);
      if (st == IndexStatus::Busy) busy = true;
      if (st == IndexStatus::Empty) q_.clear_ready_bit(p);
      if (st != IndexStatus::Ok) continue;
      retry = true;  // whatever happens to this entry, rescan from the top priority afterwards
      std::uint64_t w = 0;
      bool took = false;
      // A stale entry: the slot moved on, or it is READY in a later life (which has its own
      // entry: taking it here would deliver it ahead of older messages).
      if (!q_.live(s, tag, w)) count_stale(q_.header());
      else if (!expire_if_due(s, w)) {
        took = claim(s, w, tail, d);
        if (!took) count_stale(q_.header());
      }
      // Relaxed: crash word (a DELIVERED slot of a dead consumer is the release walk's).
      e_->held.store(kQueueNoSlot, std::memory_order_relaxed);
      if (took) return TakeStatus::Ok;
    }
    if (retry) continue;
    if (!busy || ++busy_tries > kBusyTries) return TakeStatus::Empty;
    _mm_pause();
  }
}

TakeStatus QueueReader::take_matching(QueueDelivery& d, const Filter& f) noexcept {
  std::uint64_t tail = 0;
  if (window_full(tail)) return TakeStatus::WindowFull;
  // Acquire: as in take().
  const std::uint32_t mask = q_.header().ready_mask.load(std::memory_order_acquire);
  for (std::uint32_t p = layout::kPriorities; p-- > 0;) {
    if ((mask & (1U << p)) == 0) continue;
    IndexRing r = q_.ready_ring(p);
    tidy_head(p, f);
    // Acquire: positions below the loaded tail are claimed; each cell's seq says whether published.
    const std::uint64_t head = r.header().head.load(std::memory_order_acquire);
    const std::uint64_t end = r.header().tail.load(std::memory_order_acquire);
    if (end <= head) {
      q_.clear_ready_bit(p);
      continue;
    }
    std::uint64_t pos = std::max(head, scan_[p]);
    for (; pos < end; ++pos) {
      std::uint32_t s = 0, tag = 0;
      const IndexRing::Peek pk = r.peek(pos, s, tag);
      if (pk == IndexRing::Peek::NotYet) break;  // claimed, not yet published: look again next time
      if (pk == IndexRing::Peek::Gone) continue;  // popped meanwhile (it is below the head now)
      std::uint64_t w = 0;
      // Taken from here, or a stale entry of an earlier life of the slot: not this cell's message.
      if (!q_.live(s, tag, w)) continue;
      if (expire_if_due(s, w)) continue;
      // The filter reads the slot while it is READY. If anyone takes it meanwhile the word
      // changes and the claim below fails, so a verdict on torn bytes is never acted on.
      if (!f.fn(f.ctx, s, w)) continue;
      if (claim(s, w, tail, d)) {
        scan_[p] = pos + 1;
        // The cell stays in the ring: whoever pops it finds the slot no longer READY (a stale
        // entry, skipped), or tidy_head() pops it.
        return TakeStatus::Ok;
      }
    }
    // Every published cell before `pos` was looked at: none of them matches now, and a cell's
    // message never changes while the cell lives (a message that comes back is pushed again).
    scan_[p] = pos;
  }
  return TakeStatus::Empty;
}

void QueueReader::tidy_head(std::uint32_t p, const Filter& f) noexcept {
  IndexRing r = q_.ready_ring(p);
  for (int i = 0; i < kTidyPerCall; ++i) {
    // Acquire: as in take_matching().
    const std::uint64_t head = r.header().head.load(std::memory_order_acquire);
    const std::uint64_t end = r.header().tail.load(std::memory_order_acquire);
    if (end <= head) return;
    std::uint32_t s = 0, tag = 0;
    if (r.peek(head, s, tag) != IndexRing::Peek::Published) return;
    // A live head (READY in the life this entry announces) is popped only when the ring holds
    // more entries than there are slots, which proves stale entries (a scan took them in place),
    // and only when nobody here wants it: it goes round to the tail so that the stale entries
    // behind it can be dropped and producers keep room.
    if (std::uint64_t w = 0; q_.live(s, tag, w) && (end - head <= q_.slot_count() || f.fn(f.ctx, s, w))) return;
    std::uint32_t v = 0, vtag = 0;
    if (r.try_pop(v, e_->pop, &e_->held, &vtag) != IndexStatus::Ok) return;
    // The entry actually popped (another popper may have won the head): live ones are never
    // dropped; to the tail (re-announced if we die here).
    if (std::uint64_t w = 0; q_.live(v, vtag, w)) {
      q_.push_ready(v, e_->push);
      // Relaxed: statistics.
      q_.header().selector_rotations.fetch_add(1, std::memory_order_relaxed);
    }
    // Relaxed: crash word.
    e_->held.store(kQueueNoSlot, std::memory_order_relaxed);
  }
}

bool QueueReader::scan_pending() const noexcept {
  for (std::uint32_t p = 0; p < layout::kPriorities; ++p) {
    IndexRing r = q_.ready_ring(p);
    // SYNC: seq_cst: the parker's half of the Dekker pair with push (seq_cst tail CAS).
    const std::uint64_t end = r.header().tail.load(std::memory_order_seq_cst);
    const std::uint64_t head = r.header().head.load(std::memory_order_seq_cst);
    if (end > std::max(head, scan_[p])) return true;
  }
  return false;
}

SettleStatus QueueReader::settle(const QueueDelivery& d, bool ack) noexcept {
  // Relaxed: crash word.
  e_->held.store(d.slot, std::memory_order_relaxed);
  std::uint64_t w = d.word;
  // Relaxed: the slot is DELIVERED to us; its flags changed last before it was (daemon's release).
  const bool persistent =
      (std::atomic_ref<std::uint8_t>(q_.slot(d.slot)->flags).load(std::memory_order_relaxed) & layout::kQFlagPersistent) != 0;
  const std::uint64_t nw = !ack ? QWord::next(w, QState::Redeliver)
                           : persistent ? QWord::next(w, QState::Acked, 0, 0)
                                        : QWord::next(w, QState::Free, 0, 0);
  // SYNC: acq_rel; races the daemon's ack-timeout CAS: one winner. Release: our reads of the
  // payload are finished before the next owner writes it.
  if (!q_.slot(d.slot)->state.compare_exchange_strong(w, nw, std::memory_order_acq_rel, std::memory_order_relaxed)) {
    e_->held.store(kQueueNoSlot, std::memory_order_relaxed);
    return SettleStatus::NotOwned;
  }
  if (ack && persistent) {
    QueueRing::push(q_.persist_ring(), d.slot, e_->push);
    // Relaxed: statistics.
    bump(e_->acked);
  } else if (ack) {
    q_.push_free(d.slot, e_->push);
    // Relaxed: statistics.
    bump(e_->acked);
  } else {
    QueueRing::push(q_.agent_ring(), d.slot, e_->push);
  }
  e_->held.store(kQueueNoSlot, std::memory_order_relaxed);
  return SettleStatus::Ok;
}

SettleStatus QueueReader::ack(const QueueDelivery& d) noexcept {
  const auto r = settle(d, true);
  if (track_) advance_head();
  return r;
}

SettleStatus QueueReader::give_back(const QueueDelivery& d) noexcept {
  const auto r = settle(d, false);
  if (track_) advance_head();
  return r;
}

std::uint32_t QueueReader::settle_all(bool ack, std::uint32_t* missed) noexcept {
  if (!track_) return 0;
  // Relaxed: our own cursors.
  const std::uint64_t tail = e_->fifo_tail.load(std::memory_order_relaxed);
  std::uint64_t head = e_->fifo_head.load(std::memory_order_relaxed);
  const layout::FifoEntry* f = q_.fifo(index_);
  const std::uint64_t mask = q_.window() - 1;
  std::uint32_t n = 0;
  for (; head < tail; ++head) {
    std::uint64_t w = 0;
    if (mine(f[head & mask].slot, f[head & mask].gen_lo, w) && settle({f[head & mask].slot, w}, ack) == SettleStatus::Ok) ++n;
    else if (missed != nullptr) ++*missed;  // taken back by the daemon (ack timeout), or settled already
  }
  // Release: as in advance_head().
  e_->fifo_head.store(tail, std::memory_order_release);
  return n;
}

}  // namespace shmbus::ring
