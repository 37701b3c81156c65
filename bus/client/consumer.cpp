#include "client/endpoints.hpp"
#include "common/paths.hpp"

#include <immintrin.h>
#include <sched.h>

namespace shmbus {

namespace detail {

namespace {
/// How often a spinning consumer looks at the clock and at the daemon (in polls).
constexpr std::uint32_t kCheckEvery = 256;
}  // namespace

bool ConsumerImpl::admit_topic(Message& out, const ring::ReadMeta& meta) noexcept {
  out.consumer_ = nullptr;
  out.seq_ = meta.seq;
  out.producer_id_ = meta.producer_id;
  out.producer_seq_ = meta.producer_seq;
  out.timestamp_ns_ = meta.timestamp_ns;
  out.incarnation_ = meta.incarnation;
  out.expiration_ns_ = meta.expiration_ns;
  out.redelivered_ = false;
  out.delivery_count_ = 1;
  out.dead_letter_reason_ = 0;
  out.origin_dest_id_ = 0;
  if (!out.set_payload(buf.data(), meta.length, (meta.flags & layout::kSlotFramed) != 0)) {
    ++malformed;  // a producer wrote garbage: never handed out
    return false;
  }
  out.priority_ = out.framed_ ? static_cast<std::uint8_t>(out.frame_.priority()) : layout::kDefaultPriority;
  // JMS: an expired message is not delivered. One clock read, only for messages with a TTL.
  if (out.expiration_ns_ != 0 && common::real_ns() >= out.expiration_ns_) {
    ++expired;
    return false;
  }
  if (selector && !selector->matches(out)) {
    ++skipped;
    return false;
  }
  return true;
}

ReceiveResult ConsumerImpl::poll(Message& out) noexcept {
  if (queue) return poll_queue(out);
  if (durable) return poll_durable(out);
  for (;;) {
    ring::ReadMeta meta;
    std::uint64_t lost = 0;
    switch (reader.poll(buf.data(), meta, lost)) {
      case ring::PollStatus::Message:
        if (admit_topic(out, meta)) return {Status::Ok, 0};
        continue;  // dropped (expired, malformed, not selected): the next one
      case ring::PollStatus::Lapped:
        lost_total += lost;
        return {Status::Lapped, lost};
      case ring::PollStatus::Empty: break;
    }
    return {Status::Timeout, 0};
  }
}

bool ConsumerImpl::park(std::uint64_t deadline_ns) noexcept {
  const std::uint64_t now = common::mono_ns();
  const std::uint64_t slice = now < deadline_ns ? std::min(deadline_ns - now, kParkSliceNs) : 0;
  // The parker's half of the handshake: QueueRing::push_ready / TopicWriter::publish wake us.
  if (durable) {
    // The log grows by files another process appends to: nothing to park on; look again soon.
    std::atomic<std::uint32_t> nap{0};
    ring::futex_wait(nap, 0, std::chrono::nanoseconds(std::min<std::uint64_t>(slice, 1'000'000)));
  } else if (queue) {
    auto& qh = qreader.ring().header();
    ring::park_once(qh.notify_seq, qh.waiters, qreader.entry().parked, slice, [&] {
      // seq_cst loads. A selector consumer waits for a push it has not scanned yet: messages
      // that are there but do not match must not keep it awake.
      return selector ? !qreader.scan_pending() : !qreader.ring().any_ready();
    });
  } else {
    auto& h = reader.ring().header();
    ring::park_once(h.notify_seq, h.waiters, reader.entry().parked, slice,
                    [&] { return !reader.ready(std::memory_order_seq_cst); });
  }
  return conn->alive();
}

ReceiveResult ConsumerImpl::wait_and_poll(Message& out, std::chrono::nanoseconds timeout) noexcept {
  if (auto r = poll(out); r.status != Status::Timeout) return r;
  const std::uint64_t deadline = common::mono_ns() + static_cast<std::uint64_t>(std::max<std::int64_t>(timeout.count(), 0));
  std::uint32_t spins = 0;
  for (std::uint64_t n = 1;; ++n) {
    if (auto r = poll(out); r.status != Status::Timeout) return r;  // one acquire load when empty
    const bool spinning = opts.wait == WaitStrategy::Spin || spins < opts.spin_count;
    if (spinning) {
      ++spins;
      _mm_pause();
      if (n % kCheckEvery != 0) continue;
      if (!usable()) return {Status::Closed, 0};
      if (common::mono_ns() >= deadline) return {Status::Timeout, 0};
      // Spinning consumers check the daemon about every millisecond (one poll syscall).
      if (n % (kCheckEvery * 64) == 0 && !conn->alive()) return {Status::DaemonGone, 0};
      continue;
    }
    if (!usable()) return {Status::Closed, 0};
    if (opts.wait == WaitStrategy::SpinYield) {
      ::sched_yield();
      if (n % kCheckEvery == 0 && !conn->alive()) return {Status::DaemonGone, 0};
    } else if (!park(deadline)) {
      return {usable() ? Status::DaemonGone : Status::Closed, 0};
    }
    if (common::mono_ns() >= deadline) {
      if (auto r = poll(out); r.status != Status::Timeout) return r;
      return {Status::Timeout, 0};
    }
  }
}

void ConsumerImpl::listen() noexcept {
  Message m;
  while (!listener_stop.load(std::memory_order_acquire)) {
    // A bounded wait, so that stop_listener() is noticed within one slice.
    const auto r = wait_and_poll(m, std::chrono::milliseconds(20));
    if (r.status == Status::DaemonGone || r.status == Status::Closed) return;
    if (r.status == Status::WindowFull) {  // Client/Individual listener holding a full window
      std::this_thread::yield();
      continue;
    }
    if (r.status != Status::Ok) continue;  // Timeout; Lapped is counted in lost_total
    bool ok = true;
    try {
      on_message(m);
    } catch (...) {
      ok = false;  // JMS: a listener that throws in AUTO mode gets the message again
    }
    if (queue && session->mode == AckMode::Auto) {
      if (ok) qreader.ack(last_);
      else qreader.give_back(last_);
    }
  }
}

void ConsumerImpl::stop_listener() noexcept {
  if (!listener.joinable()) return;
  // Release: the listener thread's acquire load sees it within one wait slice.
  listener_stop.store(true, std::memory_order_release);
  if (listener.get_id() == std::this_thread::get_id()) {
    listener.detach();  // closed from inside the listener: the loop ends when it returns
    return;
  }
  listener.join();
}

}  // namespace detail

void MessageConsumer::set_message_listener(std::function<void(const Message&)> on_message) {
  if (!impl_ || !impl_->usable()) throw Error(ErrorCode::Closed, "the consumer is closed");
  if (!on_message) throw Error(ErrorCode::InvalidArgument, "set_message_listener needs a callable");
  if (impl_->listener.joinable()) throw Error(ErrorCode::InvalidArgument, "this consumer already has a message listener");
  impl_->on_message = std::move(on_message);
  impl_->defer_auto_ack = true;
  impl_->listener = std::thread([c = impl_.get()] { c->listen(); });
}

MessageConsumer::MessageConsumer(std::unique_ptr<detail::ConsumerImpl> impl) : impl_(std::move(impl)) {}
MessageConsumer::MessageConsumer(MessageConsumer&&) noexcept = default;
MessageConsumer& MessageConsumer::operator=(MessageConsumer&& o) noexcept {
  if (this != &o) {
    if (impl_) impl_->close_endpoint();
    impl_ = std::move(o.impl_);
  }
  return *this;
}
MessageConsumer::~MessageConsumer() {
  if (impl_) impl_->close_endpoint();
}

ReceiveResult MessageConsumer::receive(Message& out, std::chrono::nanoseconds timeout) noexcept {
  if (!impl_ || !impl_->usable() || impl_->listener.joinable()) return {Status::Closed, 0};
  return impl_->wait_and_poll(out, timeout);
}

ReceiveResult MessageConsumer::receive_no_wait(Message& out) noexcept {
  if (!impl_ || !impl_->usable() || impl_->listener.joinable()) return {Status::Closed, 0};
  auto r = impl_->poll(out);
  // An empty poll looks at the daemon every kCheckEvery tries: a poll loop learns of a dead
  // daemon without paying a syscall per poll.
  if (r.status == Status::Timeout && ++impl_->empty_polls % detail::kCheckEveryNoWait == 0 && !impl_->conn->alive())
    return {Status::DaemonGone, 0};
  return r;
}

std::uint64_t MessageConsumer::lost_total() const noexcept { return impl_ ? impl_->lost_total : 0; }
std::uint64_t MessageConsumer::skipped_total() const noexcept { return impl_ ? impl_->skipped : 0; }
std::uint64_t MessageConsumer::expired_total() const noexcept { return impl_ ? impl_->expired : 0; }
std::uint64_t MessageConsumer::malformed_total() const noexcept { return impl_ ? impl_->malformed : 0; }
std::uint32_t MessageConsumer::id() const noexcept { return impl_ ? impl_->id : 0; }
void MessageConsumer::close() {
  if (impl_) impl_->close_endpoint();
}

}  // namespace shmbus
