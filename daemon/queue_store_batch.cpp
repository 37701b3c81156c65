// QueueStore: the write path (persist ring -> one batch -> the log) and the flush that makes
// durable sends return. See queue_store.hpp and docs/persistence.md.
#include "queue_store.hpp"

#include "common/paths.hpp"
#include "log.hpp"
#include "ring/futex.hpp"

#include <algorithm>
#include <cstring>

namespace shmbus::daemon {

using layout::QState;
using layout::QWord;

namespace {
constexpr std::uint64_t kNone = ~0ULL;
// A batch ends at this many records or bytes of values (whichever first); the loop in the agent
// drains on with the next batch, so this bounds the encode buffer, not the throughput.
constexpr std::size_t kMaxBatchRecords = 4096;
constexpr std::size_t kMaxBatchBytes = 4U << 20;

template <class T>
std::span<const std::byte> bytes_of(const T& x) noexcept {
  return std::as_bytes(std::span<const T>(&x, 1));
}
std::int64_t mono_to_real(std::uint64_t mono, std::uint64_t now_mono, std::int64_t now_real) {
  if (mono == 0) return 0;
  return now_real + (static_cast<std::int64_t>(mono) - static_cast<std::int64_t>(now_mono));
}
}  // namespace

std::size_t QueueStore::drain(std::uint64_t now_mono) {
  popped_.clear();
  batch_.clear();
  heads_.clear();
  settle_values_.clear();
  is_settle_.clear();
  batch_bytes_ = 0;
  batch_slots_.clear();
  settles_.clear();
  durable_wait_ = false;
  batch_seqs_.clear();
  batch_gates_.clear();
  if (q_.persist_ring().looks_empty() && retry_.empty() && deferred_.empty()) return 0;
  if (!ensure_log()) {
    drain_without_log();
    return 0;
  }
  if (++drain_gen_ == 0) {  // wrapped: forget the old marks rather than match one
    std::fill(popped_in_.begin(), popped_in_.end(), 0);
    std::fill(settled_in_.begin(), settled_in_.end(), 0);
    drain_gen_ = 1;
  }
  // Both clocks now, as a pair (deadlines are converted between them; the caller's now_mono may
  // be a whole round old).
  (void)now_mono;
  now_mono_ = common::mono_ns();
  now_real_ = common::real_ns();
  // Settlements of dead letters waited one round: their DLQ copies are logged by now.
  for (const auto& d : deferred_) {
    popped_.push_back(d.slot);
    popped_in_[d.slot] = drain_gen_;
    add_settle(d.slot, d.word, d.reason);
  }
  deferred_.clear();
  auto retry = std::move(retry_);
  retry_.clear();
  for (auto s : retry) classify(s);
  while (batch_.size() < kMaxBatchRecords && batch_bytes_ < kMaxBatchBytes) {
    std::uint32_t s = 0;
    if (q_.persist_ring().try_pop(s, q_.header().persist_pop) != ring::IndexStatus::Ok) break;
    classify(s);
  }
  if (batch_.empty()) return 0;
  return append_batch() ? batch_.size() : 0;
}

void QueueStore::drain_without_log() {
  // The log could not be opened: settle without logging so the queue does not wedge (the error
  // word already refuses new PERSISTENT sends).
  std::uint32_t s = 0;
  while (q_.persist_ring().try_pop(s, q_.header().persist_pop) == ring::IndexStatus::Ok) {
    if (s >= q_.slot_count()) continue;
    // Acquire: pairs with the release CAS that made it ACKED.
    const std::uint64_t w = q_.slot(s)->state.load(std::memory_order_acquire);
    if (QWord::state(w) == QState::Acked) free_acked(s, w);
    else if ((std::atomic_ref<std::uint8_t>(q_.slot(s)->flags).load(std::memory_order_relaxed) & layout::kQFlagGated) != 0)
      release(s, w);  // nothing can be committed without a log: deliver rather than hold it forever
  }
}

void QueueStore::release(std::uint32_t s, std::uint64_t w) {
  if (QWord::state(w) == QState::Ready) q_.push_ready(s, q_.header().persist_push);
  else if (QWord::state(w) == QState::Scheduled) ring::QueueRing::push(q_.agent_ring(), s, q_.header().persist_push);
}

std::size_t QueueStore::release_committed() {
  if (gated_.empty() || !log_) return 0;
  // Committed: below the high watermark on a replicating leader, else fsync'ed.
  const std::uint64_t committed = pub_.replicating() ? pub_.high_watermark() : log_->recovery_point();
  std::size_t n = 0;
  while (!gated_.empty() && gated_.front().offset < committed) {
    const Gate g = gated_.front();
    gated_.pop_front();
    // Acquire: pairs with the release that published the slot's state (its header is ours to read).
    const std::uint64_t w = q_.slot(g.slot)->state.load(std::memory_order_acquire);
    if (QWord::gen(w) != g.gen) continue;  // expired or removed and reused since: nothing to release
    release(g.slot, w);
    ++n;
  }
  return n;
}

void QueueStore::free_acked(std::uint32_t s, std::uint64_t word) {
  // SYNC: acq_rel; only this agent moves an ACKED slot; release hands the slot to the next
  // producer (its acquire of FREE) after our reads of it.
  if (q_.slot(s)->state.compare_exchange_strong(word, QWord::next(word, QState::Free, 0, 0), std::memory_order_acq_rel))
    q_.push_free(s, q_.header().persist_push);
}

void QueueStore::classify(std::uint32_t s) {
  if (s >= q_.slot_count()) return;
  auto* h = q_.slot(s);
  for (int tries = 0; tries < 8; ++tries) {
    // Acquire: pairs with the release that published this state (header and payload visible).
    const std::uint64_t w1 = h->state.load(std::memory_order_acquire);
    const QState st = QWord::state(w1);
    if (st == QState::Free || st == QState::Writing) return;  // a stale entry
    // Relaxed atomic read, then a seqlock check: if the generation did not move, the flags are
    // this life's; a PERSISTENT life is freed by nobody but us, so its bytes stay put.
    const std::uint8_t fl = std::atomic_ref<std::uint8_t>(h->flags).load(std::memory_order_relaxed);
    // SYNC: the acquire fence orders the flags read before the second state load.
    std::atomic_thread_fence(std::memory_order_acquire);
    const std::uint64_t w2 = h->state.load(std::memory_order_relaxed);
    if (QWord::gen(w1) != QWord::gen(w2) && QWord::state(w2) != QState::Acked) continue;
    if ((fl & layout::kQFlagPersistent) == 0) return;
    if (popped_in_[s] == drain_gen_ && QWord::state(w2) != QState::Acked) return;
    popped_.push_back(s);
    popped_in_[s] = drain_gen_;
    if (logged_[s] == kNone) add_message(s, fl, w2);
    if (QWord::state(w2) != QState::Acked) return;
    if (settled_in_[s] == drain_gen_) return;
    const auto why = h->reason == 0 ? SettleReason::Acked
                     : h->reason == static_cast<std::uint8_t>(layout::DeadLetterReason::Expired) ? SettleReason::Expired
                                                                                                 : SettleReason::DeadLettered;
    if (why == SettleReason::DeadLettered) deferred_.push_back({s, w2, 0, why});
    else add_settle(s, w2, why);
    return;
  }
}

void QueueStore::add_message(std::uint32_t s, std::uint8_t fl, std::uint64_t word) {
  const auto* h = q_.slot(s);
  QueueMessageRecord r{};
  r.timestamp_ns = h->timestamp_ns;
  // Relaxed atomic loads: fields that stale-entry readers look at are written atomically.
  r.expires_real_ns = mono_to_real(std::atomic_ref<const std::uint64_t>(h->expires_at_ns).load(std::memory_order_relaxed),
                                   now_mono_, now_real_);
  r.deliver_at_real_ns = mono_to_real(h->deliver_at_ns, now_mono_, now_real_);
  r.producer_seq = h->producer_seq;
  r.incarnation = h->incarnation;
  r.producer_id = h->producer_id;
  r.priority = std::atomic_ref<const std::uint8_t>(h->priority).load(std::memory_order_relaxed);
  r.flags = static_cast<std::uint8_t>(fl & (layout::kQFlagFramed | layout::kQFlagPersistent));
  r.reason = h->reason;
  r.origin_dest_id = h->origin_dest_id;
  const std::uint32_t len = std::min(h->length, q_.max_payload());
  heads_.push_back(r);
  log::AppendRecord a;
  a.timestamp_ns = h->timestamp_ns != 0 ? h->timestamp_ns : now_real_;
  a.attributes = static_cast<std::uint16_t>(RecordKind::QueueMessage);
  a.value_tail = std::span<const std::byte>(q_.payload(s), len);  // gathered by the encoder
  batch_.push_back(a);
  is_settle_.push_back(0);
  batch_bytes_ += sizeof r + len;
  logged_[s] = log_->log_end_offset() + batch_.size() - 1;
  batch_slots_.push_back(s);
  batch_seqs_.push_back({h->producer_entry, h->producer_id, h->producer_seq, h->incarnation, logged_[s],
                         (fl & layout::kQFlagReplicatedWait) != 0});
  if ((fl & layout::kQFlagDurableWait) != 0) durable_wait_ = true;
  if ((fl & layout::kQFlagGated) != 0) batch_gates_.push_back({logged_[s], s, QWord::gen(word)});
}

void QueueStore::add_settle(std::uint32_t s, std::uint64_t word, SettleReason why) {
  if (logged_[s] == kNone) return;  // cannot happen: add_message ran first
  QueueSettleRecord r{};
  r.offset = logged_[s];
  r.reason = static_cast<std::uint8_t>(why);
  settle_values_.push_back(r);
  log::AppendRecord a;
  a.timestamp_ns = now_real_;
  a.attributes = static_cast<std::uint16_t>(RecordKind::QueueSettle);
  batch_.push_back(a);
  is_settle_.push_back(1);
  batch_bytes_ += sizeof r;
  settles_.push_back({s, word, r.offset, why});
  settled_in_[s] = drain_gen_;
}

bool QueueStore::append_batch() {
  // The values' vectors are complete now (no more reallocation): point the records at them.
  for (std::size_t i = 0, m = 0, st = 0; i < batch_.size(); ++i)
    batch_[i].value = is_settle_[i] != 0 ? bytes_of(settle_values_[st++]) : bytes_of(heads_[m++]);
  std::uint64_t base = 0;
  const std::uint64_t expected = log_->log_end_offset();
  if (auto err = log_->append(batch_, pub_.epoch_for(*log_), base); err) {
    set_error(err.code, err.what);
    for (auto s : batch_slots_) logged_[s] = kNone;  // logged again when retried
    retry_ = popped_;
    for (const auto& p : settles_) retry_.push_back(p.slot);
    std::sort(retry_.begin(), retry_.end());
    retry_.erase(std::unique(retry_.begin(), retry_.end()), retry_.end());
    return false;
  }
  if (base != expected) warn("queue://" + name_ + ": log assigned offset " + std::to_string(base) + ", expected " + std::to_string(expected));
  clear_error();
  for (auto s : batch_slots_) unsettled_.insert(logged_[s]);
  std::uint64_t* hi = nullptr;  // the map's values stay put: look up each run of one incarnation once
  for (std::size_t i = 0; i < batch_seqs_.size(); ++i) {
    const SeqNote& b = batch_seqs_[i];
    if (i == 0 || b.incarnation != batch_seqs_[i - 1].incarnation) hi = &producers_[b.incarnation];
    *hi = std::max(*hi, b.seq);
    if (b.entry >= layout::kQueueMaxProducers) continue;  // a restored message or a DLQ copy
    if (b.replicated) {  // released by the replicator when the high watermark passes it
      repl_waiters_.push_back({b.offset, b.entry, b.pid, b.seq});
      continue;
    }
    pending_seq_[b.entry] = std::max(pending_seq_[b.entry], b.seq);
    pending_pid_[b.entry] = b.pid;
  }
  for (const auto& p : settles_) {
    unsettled_.erase(p.offset);
    logged_[p.slot] = kNone;
    free_acked(p.slot, p.word);
  }
  gated_.insert(gated_.end(), batch_gates_.begin(), batch_gates_.end());
  batch_gates_.clear();
  pub_.published(*log_, repl_waiters_);
  // Relaxed: statistics.
  q_.header().persisted.fetch_add(batch_slots_.size(), std::memory_order_relaxed);
  if (unflushed_ == 0) first_unflushed_ns_ = now_mono_;
  unflushed_ += batch_.size();
  since_snapshot_ += batch_.size();
  if (durable_wait_) flush_now_ = true;
  return true;
}

void QueueStore::maybe_flush(std::uint64_t now_mono, bool force) {
  if (!log_ || unflushed_ == 0) return;
  if (!force && !flush_now_ && !policy_.due(unflushed_, first_unflushed_ns_, now_mono)) return;
  // The .log fdatasync only: the producers waiting for it are told before the checkpoint file is
  // rewritten (when due, after them: it only shortens a recovery).
  if (auto err = log_->flush(log::Log::Checkpoint::kDefer); err) {
    set_error(err.code, err.what);
    return;
  }
  unflushed_ = 0;
  first_unflushed_ns_ = 0;
  flush_now_ = false;
  for (std::uint32_t e = 0; e < layout::kQueueMaxProducers; ++e) {
    if (pending_seq_[e] == 0) continue;
    auto* p = q_.producer(e);
    // SYNC: seq_cst store, then wake_waiters' seq_cst load of the waiter count: Dekker with the
    // parked producer (count itself, then load `durable` seq_cst in its check).
    p->durable.store(layout::durable_word(pending_pid_[e], pending_seq_[e]), std::memory_order_seq_cst);
    ring::wake_waiters(p->durable_seq, p->durable_waiters);
    pending_seq_[e] = 0;
  }
  (void)log_->flush(log::Log::Checkpoint::kWhenDue);  // a failure here is retried by the next flush
}

std::uint64_t QueueStore::next_flush_ns() const noexcept {
  if (unflushed_ != 0 && flush_now_) return 0;
  return policy_.due_at(unflushed_, first_unflushed_ns_);
}

}  // namespace shmbus::daemon
