#include "client/endpoints.hpp"
#include "common/paths.hpp"

#include <algorithm>
#include <cstring>

namespace shmbus {

namespace detail {

void EndpointBase::close_endpoint() noexcept {
  if (closed) return;
  // Always: a session must forget this endpoint even when the connection is already closed.
  before_close();
  closed = true;
  if (!conn->alive()) return;
  try {
    control::CloseEndpoint m{dest_id, id};
    conn->call(control::MsgType::CloseEndpoint, control::encode(m), control::MsgType::CloseOk);
  } catch (const Error&) {
    // The daemon went away meanwhile: it cleans up after us when it sees the socket close.
  }
}

Status ProducerImpl::claim_slot(std::uint32_t length, ring::SlotClaim& c) noexcept {
  std::uint64_t deadline = 0;  // the clock is read only once the claim has stalled
  for (;;) {
    switch (writer.claim(length, c)) {
      case ring::ClaimStatus::Ok: return Status::Ok;
      case ring::ClaimStatus::TooLarge: return Status::MessageTooLarge;
      case ring::ClaimStatus::Stalled: {
        // Another producer has not yet published this slot's previous lap. If it died, the
        // daemon pads it within milliseconds; if it lives (descheduled, stopped, or holding a
        // zero-copy claim) we give up after stall_timeout and keep the claim for the next call.
        if (!conn->alive()) return Status::DaemonGone;
        const std::uint64_t now = common::mono_ns();
        if (deadline == 0) deadline = now + stall_timeout_ns;
        else if (now >= deadline) return Status::Stalled;
        break;
      }
    }
  }
}

ProducerImpl::Effective ProducerImpl::effective(const SendOptions& o) const noexcept {
  Effective e;
  e.priority = std::clamp(o.priority >= 0 ? o.priority : int{opts.priority}, 0, 9);
  e.ttl = o.time_to_live.count() >= 0 ? o.time_to_live : opts.time_to_live;
  e.delay = o.delivery_delay.count() >= 0 ? o.delivery_delay : opts.delivery_delay;
  e.mode = o.delivery_mode == DeliveryMode{0} ? opts.delivery_mode : o.delivery_mode;
  return e;
}

bool ProducerImpl::needs_clock(const Effective& e) const noexcept {
  // JMSTimestamp, JMSExpiration and JMSDeliveryTime are the only users of CLOCK_REALTIME here.
  return timestamps || e.ttl.count() > 0 || (queue && e.delay.count() > 0);
}

std::int64_t ProducerImpl::real_now(const Effective& e) const noexcept { return needs_clock(e) ? common::real_ns() : 0; }

std::int64_t ProducerImpl::expiration_for(const Effective& e, std::int64_t now_real) const noexcept {
  return e.ttl.count() > 0 ? now_real + static_cast<std::int64_t>(common::ms_to_ns_capped(e.ttl)) : 0;
}

Status ProducerImpl::encode(const OutgoingMessage& m, const Effective& e, std::span<std::byte> buf, std::uint64_t seq,
                            std::int64_t now_real, std::size_t& size) noexcept {
  message::FrameWriter w(buf);
  if (incarnation != 0) w.set_message_id({incarnation, seq});
  if (timestamps) w.set_timestamp_ns(now_real);
  w.set_expiration_ns(expiration_for(e, now_real));
  if (queue && e.delay.count() > 0) w.set_delivery_time_ns(now_real + static_cast<std::int64_t>(common::ms_to_ns_capped(e.delay)));
  w.set_priority(e.priority);
  w.set_delivery_mode(e.mode);
  w.set_delivery_count(1);
  w.set_destination(dest_uri);
  switch (m.encode(w)) {
    case message::FrameStatus::Ok: size = w.size(); return Status::Ok;
    case message::FrameStatus::TooLarge: return Status::MessageTooLarge;
    case message::FrameStatus::InvalidArgument: break;
  }
  return Status::InvalidMessage;
}

Status ProducerImpl::topic_send_message(const OutgoingMessage& m, const SendOptions& o) noexcept {
  const std::uint32_t cap = writer.ring().max_payload();
  // Surely too large (the hint is exact but for <= 6 bytes of pad): refuse before claiming a slot.
  if (m.encoded_size_hint() + dest_uri.size() > cap + std::size_t{6}) return Status::MessageTooLarge;
  ring::SlotClaim c;
  if (auto st = claim_slot(cap, c); st != Status::Ok) return st;
  const Effective e = effective(o);
  const std::int64_t now = real_now(e);
  std::size_t size = 0;
  const Status st = encode(m, e, {c.data, cap}, writer.sent() + 1, now, size);
  if (st != Status::Ok) {
    writer.abort(c);  // readers skip the padding
    return st;
  }
  writer.commit(c, static_cast<std::uint32_t>(size), timestamps ? now : 0,
                layout::kSlotFramed | (e.mode == DeliveryMode::Persistent ? layout::kSlotPersistent : 0U), incarnation,
                expiration_for(e, now));
  return Status::Ok;
}

Status ProducerImpl::queue_send_message(const OutgoingMessage& m, const SendOptions& o) noexcept {
  const std::uint32_t cap = qwriter.ring().max_payload();
  if (m.encoded_size_hint() + dest_uri.size() > cap + std::size_t{6}) return Status::MessageTooLarge;
  const Effective e = effective(o);
  if (e.mode == DeliveryMode::Persistent && log_failing()) return Status::NotDurable;
  if (e.mode == DeliveryMode::Persistent && opts.acks == Acks::Replicated && !replicas_ok()) return Status::NotReplicated;
  std::uint32_t slot = 0;
  if (auto st = acquire(slot); st != Status::Ok) return st;
  const std::int64_t now = real_now(e);
  std::size_t size = 0;
  const Status st = encode(m, e, {qwriter.ring().payload(slot), cap}, sequence + 1, now, size);
  if (st != Status::Ok) {
    qwriter.discard(slot);
    return st;
  }
  auto qm = meta(static_cast<std::uint32_t>(size), e, now);
  qm.framed = true;
  return publish(slot, qm);
}

}  // namespace detail

MessageProducer::MessageProducer(std::unique_ptr<detail::ProducerImpl> impl) : impl_(std::move(impl)) {}
MessageProducer::MessageProducer(MessageProducer&&) noexcept = default;
MessageProducer& MessageProducer::operator=(MessageProducer&& o) noexcept {
  if (this != &o) {
    if (impl_) impl_->close_endpoint();
    impl_ = std::move(o.impl_);
  }
  return *this;
}
MessageProducer::~MessageProducer() {
  if (impl_) impl_->close_endpoint();
}

Status MessageProducer::send(std::span<const std::byte> body) noexcept { return send(body, SendOptions{}); }

Status MessageProducer::send(std::span<const std::byte> body, const SendOptions& o) noexcept {
  if (!impl_ || !impl_->usable()) return Status::Closed;
  if (impl_->queue) return impl_->queue_send(body, o);
  if (body.size() > impl_->writer.ring().max_payload()) return Status::MessageTooLarge;
  ring::SlotClaim c;
  const auto len = static_cast<std::uint32_t>(body.size());
  if (auto st = impl_->claim_slot(len, c); st != Status::Ok) return st;
  std::memcpy(c.data, body.data(), len);
  const auto e = impl_->effective(o);
  const std::int64_t now = impl_->real_now(e);
  impl_->writer.commit(c, len, impl_->timestamps ? now : 0,
                       e.mode == DeliveryMode::Persistent ? layout::kSlotPersistent : 0U, impl_->incarnation,
                       impl_->expiration_for(e, now));
  return Status::Ok;
}

Status MessageProducer::send(const OutgoingMessage& m, const SendOptions& o) noexcept {
  if (!impl_ || !impl_->usable()) return Status::Closed;
  return impl_->queue ? impl_->queue_send_message(m, o) : impl_->topic_send_message(m, o);
}

Status MessageProducer::send(std::string_view text) noexcept {
  return send(std::as_bytes(std::span<const char>(text.data(), text.size())));
}

Status MessageProducer::send(std::string_view text, const SendOptions& o) noexcept {
  return send(std::as_bytes(std::span<const char>(text.data(), text.size())), o);
}

Claim MessageProducer::claim(std::size_t length) noexcept {
  Claim out;
  if (!impl_ || !impl_->usable()) return out;
  if (length > impl_->max_payload()) {
    out.status = Status::MessageTooLarge;
    return out;
  }
  if (impl_->queue) {
    std::uint32_t slot = 0;
    out.status = impl_->acquire(slot);
    if (out.status == Status::Ok) {
      out.buffer = {impl_->qwriter.ring().payload(slot), impl_->max_payload()};
      out.sequence = slot;
    }
    return out;
  }
  ring::SlotClaim c;
  out.status = impl_->claim_slot(static_cast<std::uint32_t>(length), c);
  if (out.status == Status::Ok) {
    out.buffer = {c.data, impl_->writer.ring().max_payload()};
    out.sequence = c.seq;
  }
  return out;
}

Status MessageProducer::commit(Claim& claim, std::size_t length) noexcept {
  if (!impl_ || claim.status != Status::Ok) return Status::Closed;
  if (length > claim.buffer.size()) {
    abort(claim);
    return Status::MessageTooLarge;
  }
  if (impl_->queue) {
    const auto slot = static_cast<std::uint32_t>(claim.sequence);
    claim.status = Status::Closed;
    return impl_->publish(slot, impl_->meta(static_cast<std::uint32_t>(length), impl_->effective({}),
                                            impl_->timestamps ? common::real_ns() : 0));
  }
  ring::SlotClaim c{reinterpret_cast<layout::SlotHeader*>(claim.buffer.data()) - 1, claim.buffer.data(), claim.sequence};
  impl_->writer.commit(c, static_cast<std::uint32_t>(length), impl_->timestamps ? common::real_ns() : 0, 0,
                       impl_->incarnation, 0);
  claim.status = Status::Closed;  // a claim commits once
  return Status::Ok;
}

void MessageProducer::abort(Claim& claim) noexcept {
  if (!impl_ || claim.status != Status::Ok) return;
  if (impl_->queue) {
    impl_->qwriter.discard(static_cast<std::uint32_t>(claim.sequence));
    claim.status = Status::Closed;
    return;
  }
  ring::SlotClaim c{reinterpret_cast<layout::SlotHeader*>(claim.buffer.data()) - 1, claim.buffer.data(), claim.sequence};
  impl_->writer.abort(c);
  claim.status = Status::Closed;
}

std::size_t MessageProducer::max_message_size() const noexcept { return impl_ ? impl_->max_payload() : 0; }
std::uint32_t MessageProducer::id() const noexcept { return impl_ ? impl_->id : 0; }
void MessageProducer::close() {
  if (impl_) impl_->close_endpoint();
}

}  // namespace shmbus
