#include "client/endpoints.hpp"
#include "common/paths.hpp"

#include <cstring>

namespace shmbus {

namespace detail {

void EndpointBase::close_endpoint() noexcept {
  if (closed) return;
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
  for (;;) {
    switch (writer.claim(length, c)) {
      case ring::ClaimStatus::Ok: return Status::Ok;
      case ring::ClaimStatus::TooLarge: return Status::MessageTooLarge;
      case ring::ClaimStatus::Stalled:
        // A previous-lap producer still holds the slot; the daemon repairs it if that producer
        // died. Keep trying while the daemon lives.
        if (!conn->alive()) return Status::DaemonGone;
        break;
    }
  }
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

Status MessageProducer::send(std::span<const std::byte> body) noexcept {
  if (!impl_ || !impl_->usable()) return Status::Closed;
  if (body.size() > impl_->writer.ring().max_payload()) return Status::MessageTooLarge;
  ring::SlotClaim c;
  const auto len = static_cast<std::uint32_t>(body.size());
  if (auto st = impl_->claim_slot(len, c); st != Status::Ok) return st;
  std::memcpy(c.data, body.data(), len);
  impl_->writer.commit(c, len, impl_->timestamps ? common::real_ns() : 0);
  return Status::Ok;
}

Status MessageProducer::send(std::string_view text) noexcept {
  return send(std::as_bytes(std::span<const char>(text.data(), text.size())));
}

Claim MessageProducer::claim(std::size_t length) noexcept {
  Claim out;
  if (!impl_ || !impl_->usable()) return out;
  if (length > impl_->writer.ring().max_payload()) {
    out.status = Status::MessageTooLarge;
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
  ring::SlotClaim c{reinterpret_cast<layout::SlotHeader*>(claim.buffer.data()) - 1, claim.buffer.data(), claim.sequence};
  impl_->writer.commit(c, static_cast<std::uint32_t>(length), impl_->timestamps ? common::real_ns() : 0);
  claim.status = Status::Closed;  // a claim commits once
  return Status::Ok;
}

void MessageProducer::abort(Claim& claim) noexcept {
  if (!impl_ || claim.status != Status::Ok) return;
  ring::SlotClaim c{reinterpret_cast<layout::SlotHeader*>(claim.buffer.data()) - 1, claim.buffer.data(), claim.sequence};
  impl_->writer.abort(c);
  claim.status = Status::Closed;
}

std::size_t MessageProducer::max_message_size() const noexcept { return impl_ ? impl_->writer.ring().max_payload() : 0; }
std::uint32_t MessageProducer::id() const noexcept { return impl_ ? impl_->id : 0; }
void MessageProducer::close() {
  if (impl_) impl_->close_endpoint();
}

}  // namespace shmbus
