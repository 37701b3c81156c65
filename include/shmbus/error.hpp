/// @file error.hpp
/// @brief Error reporting: set-up calls throw shmbus::Error; hot-path calls return shmbus::Status.
#pragma once
#include <stdexcept>
#include <string>

namespace shmbus {

/// Why a set-up call failed. Carried by shmbus::Error and by control-protocol error replies.
enum class ErrorCode : unsigned {
  DaemonUnavailable = 1,  ///< no shmbusd answers on DIR/shmbusd.sock
  VersionMismatch = 2,    ///< protocol or shared-memory layout version differs
  BadDestination = 3,     ///< malformed URI, unknown scheme, bad name
  InvalidArgument = 4,    ///< an option out of range
  MessageTooLarge = 5,    ///< payload above the destination's max message size
  LimitExceeded = 6,      ///< too many clients, destinations or subscribers
  PermissionDenied = 7,   ///< peer credentials refused
  ProtocolError = 8,      ///< malformed control message
  DaemonGone = 9,         ///< the daemon died or shut down while we were attached
  Unsupported = 10,       ///< a feature not available in this version (e.g. queue://)
  Internal = 11,          ///< system call failure; the message names it
  Closed = 12,            ///< the object was closed
  PartiallyCommitted = 13,  ///< Session::commit(): some received messages had been taken back by the ack timeout first
  NotDurable = 14,          ///< Session::commit(): the sends are published but their PERSISTENT messages could not be made durable
  NotLeader = 15,           ///< this shmbusd is a replication follower (or was fenced): producers and consumers attach to the leader
  NotReplicated = 16,       ///< Session::commit(): PERSISTENT sends with Acks::Replicated could not be confirmed on min.insync replicas
};

/// Human name of an error code ("daemon-unavailable", ...).
const char* to_string(ErrorCode c) noexcept;

/// Thrown by every call that sets something up (connect, create, close). Never by the hot path.
class Error : public std::runtime_error {
 public:
  /// @param code what kind of failure; @param what says what was wrong and what to do.
  Error(ErrorCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  /// The failure kind.
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

/// Result of a hot-path call (send, claim, receive). These are outcomes, not failures.
enum class Status : unsigned {
  Ok = 0,
  Timeout,          ///< nothing arrived before the deadline
  Lapped,           ///< the consumer fell a whole ring behind; ReceiveResult::lost says how many
  MessageTooLarge,  ///< payload larger than the destination allows; nothing was sent
  DaemonGone,       ///< shmbusd died or shut down; re-create the connection
  Closed,           ///< the producer/consumer was closed
  Stalled,          ///< another live producer held the slot a ring ago for longer than stall_timeout; retry
  QueueFull,        ///< the queue had no free slot (at once with FullPolicy::FailFast, or for send_timeout); nothing was sent
  WindowFull,       ///< this consumer holds as many unsettled messages as the queue's window: acknowledge first
  AckTooLate,       ///< the message was already taken back (ack timeout, recover, rollback) or settled: it is, or was, redelivered
  InvalidMessage,   ///< the message could not be encoded (a header or property the frame cannot hold); nothing was sent
  /// PERSISTENT send: the daemon cannot write this destination's log (disk full, I/O error; `shmbus
  /// stat` shows it). Returned before sending while the condition lasts (nothing was sent), or,
  /// with Acks::Durable, when the message was queued but could not be made durable in time (it may
  /// still be delivered; it is not promised to survive a restart).
  NotDurable,
  /// PERSISTENT send with Acks::Replicated: fewer replicas are in sync than the leader's
  /// --min-insync (or this shmbusd does not replicate). Returned before sending while that lasts
  /// (nothing was sent), or when the message was queued but the high watermark did not pass it
  /// within send_timeout (it may still be replicated and delivered; send again at-least-once).
  NotReplicated,
};

/// Human name of a status ("ok", "timeout", ...).
const char* to_string(Status s) noexcept;

}  // namespace shmbus
