// Queue producers, consumers, sessions (ack modes, transactions) and browsers.
#include "client/endpoints.hpp"
#include "common/paths.hpp"
#include "ring/futex.hpp"

#include <algorithm>
#include <cstring>
#include <immintrin.h>

namespace shmbus {

namespace detail {

namespace {
constexpr int kSpinsBeforePark = 128;
}  // namespace

// ------------------------------------------------------------------ sessions

std::uint64_t SessionImpl::ack_all() noexcept {
  std::uint64_t n = 0;
  for (auto* c : consumers) n += c->qreader.ack_all();
  for (auto* d : durables) {
    const std::uint64_t pending = d->delivered - d->committed;
    if (d->commit_durable(d->delivered) == Status::Ok) n += pending;
  }
  return n;
}

std::uint64_t SessionImpl::give_back_all() noexcept {
  std::uint64_t n = 0;
  for (auto* c : consumers) n += c->qreader.give_back_all();
  for (auto* d : durables) {
    n += d->delivered - d->committed;
    d->rewind_durable();
  }
  return n;
}

// ------------------------------------------------------------------ producers

Status ProducerImpl::acquire(std::uint32_t& slot) noexcept {
  if (qwriter.acquire(slot)) return Status::Ok;
  if (opts.on_full == FullPolicy::FailFast) return Status::QueueFull;
  const std::uint64_t deadline = common::mono_ns() + common::ms_to_ns_capped(opts.send_timeout);
  auto& h = qwriter.ring().header();
  for (int spins = 0;; ++spins) {
    if (spins < kSpinsBeforePark) {
      _mm_pause();
    } else {
      // The parker's half of the handshake; QueueRing::wake_producers (after an ack) wakes us.
      const std::uint64_t now = common::mono_ns();
      ring::park_once(h.space_seq, h.space_waiters, qwriter.entry().parked,
                      now < deadline ? std::min(deadline - now, kParkSliceNs) : 0,
                      [&] { return qwriter.ring().free_ring().looks_empty(std::memory_order_seq_cst); });
    }
    if (qwriter.acquire(slot)) return Status::Ok;
    if (!usable()) return Status::Closed;
    if (spins >= kSpinsBeforePark) {
      if (!conn->alive()) return Status::DaemonGone;
      if (common::mono_ns() >= deadline) return Status::QueueFull;
    }
  }
}

ring::QueueSendMeta ProducerImpl::meta(std::uint32_t length, const Effective& e, std::int64_t now_real) noexcept {
  ring::QueueSendMeta m;
  m.length = length;
  m.priority = static_cast<std::uint8_t>(e.priority);
  if (e.ttl.count() > 0 || e.delay.count() > 0) {
    const std::uint64_t now = common::mono_ns();  // the daemon and the consumers time these
    if (e.ttl.count() > 0) m.expires_at_ns = now + common::ms_to_ns_capped(e.ttl);
    if (e.delay.count() > 0) m.deliver_at_ns = now + common::ms_to_ns_capped(e.delay);
  }
  m.timestamp_ns = timestamps ? now_real : 0;
  m.persistent = e.mode == DeliveryMode::Persistent;
  m.durable_wait = m.persistent && opts.acks == Acks::Durable;  // transacted: commit() waits
  m.replicated_wait = m.persistent && opts.acks == Acks::Replicated;
  m.producer_seq = ++sequence;
  m.producer_id = id;
  m.incarnation = incarnation;
  return m;
}

Status ProducerImpl::publish(std::uint32_t slot, const ring::QueueSendMeta& m) noexcept {
  if (session->mode == AckMode::Transacted) {
    // The slot stays WRITING (invisible) until commit. Reserved up front; growing is the one
    // allocation a transaction may make, and only past its first 256 sends.
    pending.emplace_back(slot, m);
    return Status::Ok;
  }
  qwriter.publish(slot, m);
  if (m.durable_wait || m.replicated_wait) return wait_durable(m.producer_seq, m.replicated_wait);
  return Status::Ok;
}

bool ProducerImpl::log_failing() const noexcept {
  // Relaxed: a hint the persistence agent sets and clears; a send racing the change is either
  // refused or written (and then retried by the agent until the disk takes it).
  return qwriter.ring().header().persist_error.load(std::memory_order_relaxed) != 0;
}

bool ProducerImpl::replicas_ok() const noexcept {
  const auto& region = conn->header();
  // Relaxed: hints the daemon's replicator publishes (region_layout.hpp); the wait itself is
  // released by the `durable` word.
  const std::uint32_t min = region.repl_min_insync.load(std::memory_order_relaxed);
  return min != 0 && region.repl_isr.load(std::memory_order_relaxed) >= min;
}

Status ProducerImpl::wait_durable(std::uint64_t seq, bool replicated) noexcept {
  auto& e = qwriter.entry();
  auto& region = conn->header();
  const std::uint64_t deadline = common::mono_ns() + common::ms_to_ns_capped(opts.send_timeout);
  const auto done = [&] {
    // SYNC: seq_cst, the parker's look in the Dekker pair with the persistence agent's seq_cst
    // store of `durable` then its load of durable_waiters (QueueStore::maybe_flush); it also
    // acquires what that store released.
    const std::uint64_t w = e.durable.load(std::memory_order_seq_cst);
    return (w >> layout::kDurableSeqBits) == (id & 0xFFFFFF) &&
           (w & ((1ULL << layout::kDurableSeqBits) - 1)) >= (seq & ((1ULL << layout::kDurableSeqBits) - 1));
  };
  // Wake the persistence agent if it sleeps (our persist-ring push was a seq_cst CAS).
  ring::wake_waiters(region.persist_doorbell, region.persist_waiters);
  std::atomic<std::uint32_t> parked{0};  // the daemon never needs to uncount a durable waiter: slices are short
  while (!done()) {
    if (log_failing()) return Status::NotDurable;
    if (replicated && !replicas_ok()) return Status::NotReplicated;
    if (!conn->alive()) return Status::DaemonGone;
    const std::uint64_t now = common::mono_ns();
    if (now >= deadline) return replicated ? Status::NotReplicated : Status::NotDurable;
    // The agent stores `durable` (release) then bumps durable_seq and wakes (wake_waiters).
    ring::park_once(e.durable_seq, e.durable_waiters, parked, std::min(deadline - now, kParkSliceNs),
                    [&] { return !done(); });
  }
  return Status::Ok;
}

Status ProducerImpl::queue_send(std::span<const std::byte> body, const SendOptions& o) noexcept {
  if (body.size() > qwriter.ring().max_payload()) return Status::MessageTooLarge;
  const Effective e = effective(o);
  if (e.mode == DeliveryMode::Persistent && log_failing()) return Status::NotDurable;
  if (e.mode == DeliveryMode::Persistent && opts.acks == Acks::Replicated && !replicas_ok()) return Status::NotReplicated;
  std::uint32_t slot = 0;
  if (auto st = acquire(slot); st != Status::Ok) return st;
  std::memcpy(qwriter.ring().payload(slot), body.data(), body.size());
  // A raw payload has no JMSExpiration or JMSDeliveryTime: only the timestamp needs the clock.
  return publish(slot, meta(static_cast<std::uint32_t>(body.size()), e, timestamps ? common::real_ns() : 0));
}

void ProducerImpl::before_close() noexcept {
  if (!queue) return;
  // Uncommitted sends of a transacted session are rolled back (the daemon would free them too).
  for (auto& [slot, m] : pending) qwriter.discard(slot);
  pending.clear();
  std::erase(session->producers, this);
}

// ------------------------------------------------------------------ consumers

ReceiveResult ConsumerImpl::poll_queue(Message& out) noexcept {
  // DupsOk settles a full batch here, at the start of the next receive, never as the batch's
  // last message is handed out: a crash while processing it must bring it back.
  const bool dups_ok = session->mode == AckMode::DupsOk;
  if (dups_ok && since_flush >= std::max<std::uint32_t>(opts.dups_ok_batch, 1)) {
    qreader.ack_all();
    since_flush = 0;
  }
  for (;;) {
    auto r = take_queue(out);
    if (r.status == Status::WindowFull && dups_ok && since_flush != 0) {
      qreader.ack_all();  // a batch larger than the window: settle what was processed, go on
      since_flush = 0;
      continue;
    }
    if (r.status != Status::Ok) return r;
    if (qreader.still_mine(last_)) {
      settle_on_receive();
      return r;
    }
    // Taken back by the ack timeout while we copied (we were descheduled longer than the
    // timeout): another consumer has it; our copy may be torn. Take the next one.
  }
}

bool ConsumerImpl::fill_queue_message(Message& out, const layout::QueueSlotHeader& h, std::uint64_t word, const std::byte* data,
                        std::uint32_t len) noexcept {
  out.producer_id_ = h.producer_id;
  out.producer_seq_ = h.producer_seq;
  out.timestamp_ns_ = h.timestamp_ns;
  out.incarnation_ = h.incarnation;
  out.delivery_count_ = layout::QWord::count(word);
  out.redelivered_ = (h.flags & layout::kQFlagRedelivered) != 0 || out.delivery_count_ > 1;
  out.priority_ = h.priority;
  out.dead_letter_reason_ = h.reason;
  out.origin_dest_id_ = h.origin_dest_id;
  if (!out.set_payload(data, len, (h.flags & layout::kQFlagFramed) != 0)) return false;
  out.expiration_ns_ = out.framed_ ? out.frame_.expiration_ns() : 0;
  return true;
}

namespace {
/// take_matching's filter: the message in `slot` as it would be delivered, against the selector.
bool selector_filter(void* ctx, std::uint32_t slot, std::uint64_t word) noexcept {
  auto* c = static_cast<ConsumerImpl*>(ctx);
  const auto& q = c->qreader.ring();
  const layout::QueueSlotHeader* h = q.slot(slot);
  Message probe;  // a view straight into the slot: nothing is copied to evaluate
  const std::uint64_t as_delivered = layout::QWord::next(word, layout::QState::Delivered, 0, layout::QWord::count(word) + 1);
  if (!ConsumerImpl::fill_queue_message(probe, *h, as_delivered, q.payload(slot), std::min(h->length, q.max_payload()))) return false;
  return c->selector->matches(probe);
}
}  // namespace

ReceiveResult ConsumerImpl::take_queue(Message& out) noexcept {
  ring::QueueDelivery& d = last_;
  for (;;) {
    const ring::TakeStatus st =
        selector ? qreader.take_matching(d, ring::QueueReader::Filter{&selector_filter, this}) : qreader.take(d);
    switch (st) {
      case ring::TakeStatus::Ok: break;
      case ring::TakeStatus::WindowFull: return {Status::WindowFull, 0};
      case ring::TakeStatus::Empty:
        if (since_flush != 0) {  // DupsOk: nothing more now, settle the batch
          qreader.ack_all();
          since_flush = 0;
        }
        return {Status::Timeout, 0};
    }
    const auto& q = qreader.ring();
    const layout::QueueSlotHeader* h = q.slot(d.slot);
    // The slot is DELIVERED to us: nobody writes it until we settle it, so a plain copy is safe.
    const std::uint32_t len = std::min(h->length, q.max_payload());
    std::memcpy(buf.data(), q.payload(d.slot), len);
    out.seq_ = d.slot;
    out.consumer_ = this;
    out.slot_ = d.slot;
    out.word_ = d.word;
    if (fill_queue_message(out, *h, d.word, buf.data(), len)) return {Status::Ok, 0};
    if (!qreader.still_mine(d)) continue;  // torn by an ack timeout: poll_queue's case, here too
    // A frame that fails validation: a producer wrote garbage. Never handed out; acknowledged
    // so it does not come round again, and counted.
    qreader.ack(d);
    ++malformed;
  }
}

void ConsumerImpl::settle_on_receive() noexcept {
  switch (session->mode) {
    case AckMode::Auto:
      if (!defer_auto_ack) qreader.ack(last_);
      break;
    case AckMode::DupsOk: ++since_flush; break;  // settled at a later receive (poll_queue)
    default: break;  // Client, Individual, Transacted: tracked in the FIFO until settled
  }
}

Status ConsumerImpl::acknowledge(std::uint32_t slot, std::uint64_t word) noexcept {
  if (!usable()) return Status::Closed;
  if (durable) {  // a log position: CLIENT commits everything delivered, INDIVIDUAL up to this one
    if (session->mode == AckMode::Client) {
      session->ack_all();
      return Status::Ok;
    }
    return commit_durable(std::max(committed, word + 1));
  }
  switch (session->mode) {
    case AckMode::Individual:
      return qreader.ack({slot, word}) == ring::SettleStatus::Ok ? Status::Ok : Status::AckTooLate;
    case AckMode::Client: {
      const auto st = qreader.ack({slot, word});
      session->ack_all();
      return st == ring::SettleStatus::Ok ? Status::Ok : Status::AckTooLate;
    }
    default: return Status::Ok;
  }
}

void ConsumerImpl::before_close() noexcept {
  stop_listener();
  if (durable) {
    // AUTO / DUPS_OK: what was handed out was processed. CLIENT: what was not acknowledged comes again.
    if (session->mode == AckMode::Auto || session->mode == AckMode::DupsOk) commit_durable(delivered);
    std::erase(session->durables, this);
    return;
  }
  if (!queue) return;
  if (session->mode == AckMode::DupsOk) qreader.ack_all();  // processed: settle the batch
  // Everything else still unsettled goes back when the daemon reclaims this consumer.
  std::erase(session->consumers, this);
}

// ------------------------------------------------------------------ browser

namespace {
/// The plain fields of a slot header (the state word excluded): a browser's snapshot.
void copy_header(const layout::QueueSlotHeader& h, layout::QueueSlotHeader& c) noexcept {
  c.deliver_at_ns = h.deliver_at_ns;
  c.expires_at_ns = h.expires_at_ns;
  c.timestamp_ns = h.timestamp_ns;
  c.producer_seq = h.producer_seq;
  c.producer_id = h.producer_id;
  c.length = h.length;
  c.priority = h.priority;
  c.flags = h.flags;
  c.reason = h.reason;
  c.origin_dest_id = h.origin_dest_id;
  c.incarnation = h.incarnation;
}
}  // namespace

bool BrowserImpl::next(Message& out) noexcept {
  if (!conn->alive()) return false;
  while (prio > 0) {
    ring::IndexRing r = q.ready_ring(prio - 1);
    if (!started) {
      // Acquire: positions below what we load are claimed; cells say whether published.
      pos = r.header().head.load(std::memory_order_acquire);
      end = r.header().tail.load(std::memory_order_acquire);
      started = true;
    }
    while (pos < end) {
      const std::uint64_t p = pos++;
      std::uint32_t slot = 0, tag = 0;
      if (r.peek(p, slot, tag) != ring::IndexRing::Peek::Published) continue;  // popped meanwhile, or not published
      std::uint64_t w = 0;
      // Only the entry of the slot's current READY life (a stale entry would show it twice).
      if (!q.live(slot, tag, w)) continue;
      const auto* h = q.slot(slot);
      const std::uint32_t len = std::min(h->length, q.max_payload());
      std::memcpy(buf.data(), q.payload(slot), len);
      layout::QueueSlotHeader hc;
      copy_header(*h, hc);
      // SYNC: acquire fence, then the state again: if it still says the same READY word, nobody
      // took (and rewrote) the slot while we copied it.
      std::atomic_thread_fence(std::memory_order_acquire);
      if (h->state.load(std::memory_order_relaxed) != w) continue;
      // The browser shows the message as it waits: delivered count so far, redelivered flag.
      if (!ConsumerImpl::fill_queue_message(out, hc, w, buf.data(), len)) continue;  // a malformed frame: not shown
      out.redelivered_ = (hc.flags & layout::kQFlagRedelivered) != 0;
      out.seq_ = slot;
      out.consumer_ = nullptr;
      if (selector && !selector->matches(out)) continue;
      return true;
    }
    --prio;
    started = false;
  }
  return false;
}

}  // namespace detail

// ------------------------------------------------------------------ public API

const char* to_string(AckMode m) noexcept {
  switch (m) {
    case AckMode::Auto: return "auto";
    case AckMode::Client: return "client";
    case AckMode::DupsOk: return "dups_ok";
    case AckMode::Individual: return "individual";
    case AckMode::Transacted: return "transacted";
  }
  return "unknown";
}

Status Message::acknowledge() const noexcept {
  if (consumer_ == nullptr) return Status::Ok;
  return consumer_->acknowledge(slot_, word_);
}

AckMode Session::ack_mode() const noexcept { return impl_->mode; }

std::uint64_t Session::acknowledge() noexcept {
  return impl_->mode == AckMode::Client ? impl_->ack_all() : 0;
}

std::uint64_t Session::recover() noexcept {
  if (impl_->mode == AckMode::Auto || impl_->mode == AckMode::Transacted) return 0;
  for (auto* c : impl_->consumers) c->since_flush = 0;
  if (impl_->mode == AckMode::DupsOk) {  // nothing to give back on a log: go on from where it was
    for (auto* d : impl_->durables) d->commit_durable(d->delivered);
  }
  return impl_->give_back_all();
}

void Session::commit() {
  if (impl_->mode != AckMode::Transacted)
    throw Error(ErrorCode::InvalidArgument, "commit() on a session that is not transacted (create it with AckMode::Transacted)");
  // Publish every send, then (Acks::Durable) wait until the last durable one of each producer is
  // on disk: one group-committed fsync covers them all.
  std::vector<std::pair<detail::ProducerImpl*, std::uint64_t>> durable;
  for (auto* p : impl_->producers) {
    std::uint64_t last = 0;
    for (auto& [slot, m] : p->pending) {
      p->qwriter.publish(slot, m);
      if (m.durable_wait || m.replicated_wait) last = m.producer_seq;
    }
    p->pending.clear();
    if (last != 0) durable.emplace_back(p, last);
  }
  for (auto [p, seq] : durable)
    if (const auto st = p->wait_durable(seq, p->opts.acks == Acks::Replicated); st != Status::Ok)
      throw Error(st == Status::DaemonGone      ? ErrorCode::DaemonGone
                  : st == Status::NotReplicated ? ErrorCode::NotReplicated
                                                : ErrorCode::NotDurable,
                  std::string("commit: the transaction's sends are published, but its PERSISTENT messages could not be "
                              "made durable (") + to_string(st) + "; see shmbus stat: persist_error); its receives are not "
                              "acknowledged");
  std::uint32_t missed = 0;
  std::uint64_t acked = 0;
  for (auto* c : impl_->consumers) acked += c->qreader.ack_all(&missed);
  for (auto* d : impl_->durables)
    if (d->commit_durable(d->delivered) != Status::Ok)
      throw Error(ErrorCode::DaemonGone, "commit: the durable subscription's position could not be stored (shmbusd gone)");
  if (missed != 0)
    throw Error(ErrorCode::PartiallyCommitted,
                "commit: " + std::to_string(missed) + " of the " + std::to_string(missed + acked) +
                    " messages this transaction received had been taken back by the ack timeout "
                    "(ConsumerOptions::ack_timeout) before the commit; they will be delivered again. The "
                    "transaction's sends and its other receives are committed");
}

void Session::rollback() {
  if (impl_->mode != AckMode::Transacted)
    throw Error(ErrorCode::InvalidArgument, "rollback() on a session that is not transacted (create it with AckMode::Transacted)");
  for (auto* p : impl_->producers) {
    for (auto& [slot, m] : p->pending) p->qwriter.discard(slot);
    p->pending.clear();
  }
  impl_->give_back_all();
}

QueueBrowser::QueueBrowser(std::unique_ptr<detail::BrowserImpl> impl) : impl_(std::move(impl)) {}
QueueBrowser::QueueBrowser(QueueBrowser&&) noexcept = default;
QueueBrowser& QueueBrowser::operator=(QueueBrowser&&) noexcept = default;
QueueBrowser::~QueueBrowser() = default;
bool QueueBrowser::next(Message& out) noexcept { return impl_ && impl_->next(out); }

}  // namespace shmbus
