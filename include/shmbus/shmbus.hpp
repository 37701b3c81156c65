/// @file shmbus.hpp
/// @brief The shmbus client API: ConnectionFactory -> Connection -> Session ->
/// MessageProducer / MessageConsumer on a Destination (Topic).
///
/// Threading: a Connection may be shared by threads; a Session and the producers and consumers it
/// creates belong to one thread at a time (as in JMS).
/// Errors: set-up calls throw shmbus::Error; send/claim/receive are noexcept and return a Status.
#pragma once
#include "shmbus/error.hpp"
#include "shmbus/stats.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace shmbus {

namespace detail {
struct ConnectionImpl;
struct ProducerImpl;
struct ConsumerImpl;
}  // namespace detail

/// The directory a client uses when none is given: $SHMBUS_DIR, else $XDG_RUNTIME_DIR/shmbus,
/// else /tmp/shmbus-<uid>.
std::string default_dir();

/// A named destination: "topic://NAME" (queue://NAME comes with queues).
class Destination {
 public:
  /// Kind of destination.
  enum class Kind : std::uint8_t { Topic = 1, Queue = 2 };
  /// Parses "topic://NAME". NAME: 1-64 of [A-Za-z0-9._-]. Throws Error(BadDestination).
  static Destination parse(std::string_view uri);
  /// The kind.
  Kind kind() const noexcept { return kind_; }
  /// The NAME part.
  const std::string& name() const noexcept { return name_; }
  /// "topic://NAME".
  std::string uri() const;

 protected:
  Destination(Kind k, std::string name) : kind_(k), name_(std::move(name)) {}

 private:
  Kind kind_;
  std::string name_;
};

/// A publish/subscribe destination.
class Topic : public Destination {
 public:
  /// A topic named `name` (validated as in Destination::parse).
  explicit Topic(std::string name);
};

/// Geometry of a destination, applied when it is first created; ignored (the existing geometry
/// wins) when it already exists.
struct DestinationOptions {
  std::uint32_t capacity = 4096;          ///< ring slots, rounded up to a power of two
  std::uint32_t max_message_size = 4096;  ///< bytes per message
};

/// How a consumer waits for the next message.
enum class WaitStrategy : std::uint8_t {
  Spin,       ///< busy-poll: lowest latency, burns a core
  SpinYield,  ///< poll `spin_count` times, then sched_yield between polls
  Park,       ///< poll `spin_count` times, then sleep on a futex in shared memory
};

/// Per-consumer options.
struct ConsumerOptions {
  WaitStrategy wait = WaitStrategy::Park;  ///< default: do not burn a core
  std::uint32_t spin_count = 0;            ///< polls before yielding or parking
};

/// Per-producer options.
struct ProducerOptions {
  bool disable_timestamp = false;  ///< skip the CLOCK_REALTIME read per send (JMS setDisableMessageTimestamp)
  /// How long send()/claim() wait for the slot's previous lap — a full ring ago — to be published
  /// by another producer before returning Status::Stalled. That producer is descheduled, stopped,
  /// or holding a zero-copy claim; a dead one is repaired by the daemon within milliseconds. The
  /// claimed sequence is kept and reused by the next send()/claim().
  std::chrono::milliseconds stall_timeout{1000};
};

/// A received message. A view into the consumer's buffer: valid until the next receive.
class Message {
 public:
  /// Payload bytes.
  std::span<const std::byte> body() const noexcept { return {data_, size_}; }
  /// Payload as text (no validation here; the message model checks UTF-8).
  std::string_view text() const noexcept { return {reinterpret_cast<const char*>(data_), size_}; }
  /// Position in the destination's ring.
  std::uint64_t sequence() const noexcept { return seq_; }
  /// Daemon-assigned id of the producer that sent it.
  std::uint32_t producer_id() const noexcept { return producer_id_; }
  /// 1, 2, 3, ... per producer.
  std::uint64_t producer_sequence() const noexcept { return producer_seq_; }
  /// CLOCK_REALTIME at send in ns, 0 if the producer disabled timestamps.
  std::int64_t timestamp_ns() const noexcept { return timestamp_ns_; }

 private:
  friend struct detail::ConsumerImpl;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t seq_ = 0;
  std::uint32_t producer_id_ = 0;
  std::uint64_t producer_seq_ = 0;
  std::int64_t timestamp_ns_ = 0;
};

/// Outcome of MessageConsumer::receive.
struct ReceiveResult {
  Status status = Status::Ok;  ///< Ok: the message was filled in
  std::uint64_t lost = 0;      ///< with Status::Lapped: exactly how many messages were skipped
};

/// Space claimed in the ring for zero-copy sending: write into `buffer`, then commit.
struct Claim {
  Status status = Status::Closed;  ///< Ok when `buffer` is usable
  std::span<std::byte> buffer;     ///< max_message_size bytes, in shared memory
  std::uint64_t sequence = 0;      ///< ring position of the claimed slot
};

/// Sends to one destination. Move-only; closes on destruction.
class MessageProducer {
 public:
  MessageProducer(MessageProducer&&) noexcept;
  MessageProducer& operator=(MessageProducer&&) noexcept;
  ~MessageProducer();

  /// Copies `body` into the ring and publishes it.
  Status send(std::span<const std::byte> body) noexcept;
  /// Text convenience overload.
  Status send(std::string_view text) noexcept;
  /// Claims a slot of up to `length` bytes for writing in place.
  Claim claim(std::size_t length) noexcept;
  /// Publishes a claim with `length` bytes written (<= the claimed length).
  Status commit(Claim& claim, std::size_t length) noexcept;
  /// Gives a claim back unsent (readers skip it).
  void abort(Claim& claim) noexcept;
  /// Largest body this destination accepts.
  std::size_t max_message_size() const noexcept;
  /// Daemon-assigned producer id.
  std::uint32_t id() const noexcept;
  /// Detaches from the destination. Idempotent.
  void close();

 private:
  friend class Session;
  explicit MessageProducer(std::unique_ptr<detail::ProducerImpl> impl);
  std::unique_ptr<detail::ProducerImpl> impl_;
};

/// Receives from one destination. Move-only; closes on destruction.
class MessageConsumer {
 public:
  MessageConsumer(MessageConsumer&&) noexcept;
  MessageConsumer& operator=(MessageConsumer&&) noexcept;
  ~MessageConsumer();

  /// Waits up to `timeout` for the next message (per the consumer's WaitStrategy).
  ReceiveResult receive(Message& out, std::chrono::nanoseconds timeout) noexcept;
  /// Returns at once: Ok, Timeout (nothing there) or Lapped.
  ReceiveResult receive_no_wait(Message& out) noexcept;
  /// Messages lost to lapping since the consumer was created.
  std::uint64_t lost_total() const noexcept;
  /// Daemon-assigned consumer id.
  std::uint32_t id() const noexcept;
  /// Detaches from the destination. Idempotent.
  void close();

 private:
  friend class Session;
  explicit MessageConsumer(std::unique_ptr<detail::ConsumerImpl> impl);
  std::unique_ptr<detail::ConsumerImpl> impl_;
};

/// A single-threaded context for producing and consuming.
class Session {
 public:
  /// A Topic handle named `name`; the topic itself is created on first producer/consumer.
  Topic create_topic(const std::string& name) const { return Topic(name); }
  /// A producer on `dest`, creating the destination with `opts` if it does not exist.
  MessageProducer create_producer(const Destination& dest, const ProducerOptions& popts = {},
                                  const DestinationOptions& opts = {});
  /// A consumer on `dest`: it sees every message committed from now on.
  MessageConsumer create_consumer(const Destination& dest, const ConsumerOptions& copts = {},
                                  const DestinationOptions& opts = {});

 private:
  friend class Connection;
  explicit Session(std::shared_ptr<detail::ConnectionImpl> c) : conn_(std::move(c)) {}
  std::shared_ptr<detail::ConnectionImpl> conn_;
};

/// One attachment to shmbusd. Closes (detaches) on destruction.
class Connection {
 public:
  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&&) noexcept = default;
  ~Connection();
  /// A new session on this connection.
  Session create_session();
  /// True while the daemon is alive and this connection is open (one poll(2) on the socket).
  bool daemon_alive() const noexcept;
  /// A snapshot of the daemon's destinations, clients and counters. Throws Error.
  BusStats stats() const;
  /// Client index the daemon gave this connection.
  std::uint32_t client_id() const noexcept;
  /// Detaches; producers and consumers still alive report Status::Closed. Idempotent.
  void close();

 private:
  friend class ConnectionFactory;
  explicit Connection(std::shared_ptr<detail::ConnectionImpl> c) : impl_(std::move(c)) {}
  std::shared_ptr<detail::ConnectionImpl> impl_;
};

/// Creates connections to the shmbusd serving one directory.
class ConnectionFactory {
 public:
  /// `dir` empty means default_dir(). `client_name` shows in `shmbus stat`.
  explicit ConnectionFactory(std::string dir = {}, std::string client_name = {});
  /// Connects and says hello. Throws Error(DaemonUnavailable | VersionMismatch | ...).
  Connection create_connection() const;
  /// The directory in use.
  const std::string& dir() const noexcept { return dir_; }

 private:
  std::string dir_;
  std::string name_;
};

}  // namespace shmbus
