#include "client/connection_impl.hpp"
#include "control/protocol.hpp"
#include "shmbus/shmbus.hpp"

namespace shmbus {

namespace {
constexpr std::size_t kMaxName = 64;

constexpr std::size_t kMaxQueueName = 60;  // so that its dead-letter queue "DLQ.NAME" is a name too

void check_name(std::string_view uri, std::string_view name, std::size_t max = kMaxName) {
  if (name.empty() || name.size() > max)
    throw Error(ErrorCode::BadDestination, "destination '" + std::string(uri) + "': the name must be 1 to " +
                                               std::to_string(max) + " characters" +
                                               (max == kMaxQueueName ? " (a queue's dead-letter queue is DLQ.NAME)" : ""));
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                    ch == '_' || ch == '-';
    if (!ok)
      throw Error(ErrorCode::BadDestination, "destination '" + std::string(uri) +
                                                 "': names may use only letters, digits, '.', '_' and '-'");
  }
}

// JMS TemporaryQueue/TemporaryTopic delete(): DeleteTemp on the creating connection.
void remove_temporary(const std::weak_ptr<detail::ConnectionImpl>& conn, const Destination& d) {
  const auto c = conn.lock();
  if (!c || c->closed.load(std::memory_order_relaxed))
    throw Error(ErrorCode::Closed, "temporary destination " + d.uri() +
                                       ": its connection is closed (the destination was deleted with it)");
  control::DeleteTemp m;
  m.kind = static_cast<std::uint8_t>(d.kind());
  m.name = d.name();
  c->call(control::MsgType::DeleteTemp, control::encode(m), control::MsgType::CloseOk);
}
}  // namespace

Destination Destination::parse(std::string_view uri) {
  const auto sep = uri.find("://");
  if (sep == std::string_view::npos)
    throw Error(ErrorCode::BadDestination,
                "destination '" + std::string(uri) + "' has no scheme: write topic://NAME (or queue://NAME)");
  const auto scheme = uri.substr(0, sep);
  const auto name = uri.substr(sep + 3);
  Kind k;
  if (scheme == "topic") k = Kind::Topic;
  else if (scheme == "queue") k = Kind::Queue;
  else
    throw Error(ErrorCode::BadDestination, "unknown destination scheme '" + std::string(scheme) + "://' in '" +
                                               std::string(uri) + "': use topic://NAME or queue://NAME");
  check_name(uri, name, k == Kind::Queue ? kMaxQueueName : kMaxName);
  return Destination(k, std::string(name));
}

std::string Destination::uri() const { return (kind_ == Kind::Topic ? "topic://" : "queue://") + name_; }

Topic::Topic(std::string name) : Destination(Kind::Topic, name) { check_name("topic://" + name, name); }
Queue::Queue(std::string name) : Destination(Kind::Queue, name) { check_name("queue://" + name, name, kMaxQueueName); }

TemporaryQueue::TemporaryQueue(std::string name, std::weak_ptr<detail::ConnectionImpl> conn)
    : Queue(std::move(name)), conn_(std::move(conn)) {}
void TemporaryQueue::remove() { remove_temporary(conn_, *this); }
TemporaryTopic::TemporaryTopic(std::string name, std::weak_ptr<detail::ConnectionImpl> conn)
    : Topic(std::move(name)), conn_(std::move(conn)) {}
void TemporaryTopic::remove() { remove_temporary(conn_, *this); }

const char* to_string(ErrorCode c) noexcept {
  switch (c) {
    case ErrorCode::DaemonUnavailable: return "daemon-unavailable";
    case ErrorCode::VersionMismatch: return "version-mismatch";
    case ErrorCode::BadDestination: return "bad-destination";
    case ErrorCode::InvalidArgument: return "invalid-argument";
    case ErrorCode::MessageTooLarge: return "message-too-large";
    case ErrorCode::LimitExceeded: return "limit-exceeded";
    case ErrorCode::PermissionDenied: return "permission-denied";
    case ErrorCode::ProtocolError: return "protocol-error";
    case ErrorCode::DaemonGone: return "daemon-gone";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::Internal: return "internal";
    case ErrorCode::Closed: return "closed";
    case ErrorCode::PartiallyCommitted: return "partially-committed";
    case ErrorCode::NotDurable: return "not-durable";
    case ErrorCode::NotLeader: return "not-leader";
    case ErrorCode::NotReplicated: return "not-replicated";
  }
  return "unknown";
}

const char* to_string(Status s) noexcept {
  switch (s) {
    case Status::Ok: return "ok";
    case Status::Timeout: return "timeout";
    case Status::Lapped: return "lapped";
    case Status::MessageTooLarge: return "message-too-large";
    case Status::DaemonGone: return "daemon-gone";
    case Status::Closed: return "closed";
    case Status::Stalled: return "stalled";
    case Status::QueueFull: return "queue-full";
    case Status::WindowFull: return "window-full";
    case Status::AckTooLate: return "ack-too-late";
    case Status::InvalidMessage: return "invalid-message";
    case Status::NotDurable: return "not-durable";
    case Status::NotReplicated: return "not-replicated";
  }
  return "unknown";
}

}  // namespace shmbus
