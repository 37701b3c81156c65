// Durable subscribers (docs/persistence.md, "Durable subscriptions"): a consumer of a topic that
// reads the topic's log (written by the daemon's persistence agent) from its subscription's
// position instead of the ring, so it receives what was published while it was away.
#include "client/endpoints.hpp"
#include "log/message_records.hpp"
#include "common/paths.hpp"
#include "ring/futex.hpp"

#include <cstring>

namespace shmbus {

namespace detail {

namespace {
constexpr std::uint64_t kCommitEvery = 64;                 // AUTO / DUPS_OK: commit after this many
constexpr std::uint64_t kCommitAfterNs = 100'000'000;      // ... or this long
constexpr std::uint64_t kDurablePollNs = 1'000'000;        // nothing new: look at the log again after this
}  // namespace

Status ConsumerImpl::commit_durable(std::uint64_t pos) noexcept {
  if (pos <= committed) return Status::Ok;
  if (!conn->alive()) return Status::DaemonGone;
  try {
    control::CommitPosition m{dest_id, id, pos};
    conn->call(control::MsgType::CommitPosition, control::encode(m), control::MsgType::CloseOk);
  } catch (const Error&) {
    return conn->alive() ? Status::Closed : Status::DaemonGone;
  }
  committed = pos;
  last_commit_ns = common::mono_ns();
  return Status::Ok;
}

void ConsumerImpl::rewind_durable() noexcept {
  try {
    tail = std::make_unique<log::LogTail>(log_dir, committed);
  } catch (...) {
    return;  // out of memory: keep reading forward
  }
  delivered = committed;
}

ReceiveResult ConsumerImpl::poll_durable(Message& out) noexcept {
  const bool batch = session->mode == AckMode::Auto || session->mode == AckMode::DupsOk;
  if (batch && delivered > committed &&
      (delivered - committed >= kCommitEvery || common::mono_ns() - last_commit_ns >= kCommitAfterNs))
    commit_durable(delivered);  // the previous receives were processed: at-least-once, in batches
  log::RecordView r;
  while (tail->next(r)) {
    delivered = r.offset + 1;
    if (r.attributes != static_cast<std::uint16_t>(log::RecordKind::TopicMessage) ||
        r.value.size() < sizeof(log::TopicMessageRecord)) {
      ++malformed;
      continue;
    }
    log::TopicMessageRecord h;
    std::memcpy(&h, r.value.data(), sizeof h);
    const std::size_t len = r.value.size() - sizeof h;
    if (len > buf.size()) buf.resize(len);  // a log written with a larger max message size
    std::memcpy(buf.data(), r.value.data() + sizeof h, len);
    ring::ReadMeta meta;
    meta.seq = r.offset;
    meta.producer_id = h.producer_id;
    meta.length = static_cast<std::uint32_t>(len);
    meta.flags = h.flags;
    meta.producer_seq = h.producer_seq;
    meta.timestamp_ns = h.timestamp_ns;
    meta.incarnation = h.incarnation;
    meta.expiration_ns = h.expiration_ns;
    if (!admit_topic(out, meta)) continue;  // expired, malformed or not selected: consumed anyway
    out.redelivered_ = r.offset < high;
    out.delivery_count_ = out.redelivered_ ? 2 : 1;
    high = std::max(high, delivered);
    if (session->mode == AckMode::Client || session->mode == AckMode::Individual) {
      out.consumer_ = this;
      out.word_ = r.offset;
    }
    return {Status::Ok, 0};
  }
  return {Status::Timeout, 0};
}

}  // namespace detail

void Session::unsubscribe(const Topic& topic, const std::string& name) {
  control::Unsubscribe m{topic.name(), name};
  impl_->conn->call(control::MsgType::Unsubscribe, control::encode(m), control::MsgType::CloseOk);
}

}  // namespace shmbus
