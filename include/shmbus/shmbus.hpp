/// @file shmbus.hpp
/// @brief The shmbus client API: ConnectionFactory -> Connection -> Session ->
/// MessageProducer / MessageConsumer / QueueBrowser on a Destination (Topic or Queue).
///
/// Threading: a Connection may be shared by threads; a Session and the producers and consumers it
/// creates belong to one thread at a time (as in JMS).
/// Errors: set-up calls throw shmbus::Error; send/claim/receive are noexcept and return a Status.
#pragma once
#include "shmbus/error.hpp"
#include "shmbus/message.hpp"
#include "shmbus/stats.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace shmbus {

namespace detail {
struct ConnectionImpl;
struct ProducerImpl;
struct ConsumerImpl;
struct SessionImpl;
struct BrowserImpl;
}  // namespace detail

/// The directory a client uses when none is given: $SHMBUS_DIR, else $XDG_RUNTIME_DIR/shmbus,
/// else /tmp/shmbus-<uid>.
std::string default_dir();

/// A named destination: "topic://NAME" (publish/subscribe) or "queue://NAME" (point-to-point).
class Destination {
 public:
  /// Kind of destination.
  enum class Kind : std::uint8_t { Topic = 1, Queue = 2 };
  /// Parses "topic://NAME" or "queue://NAME". NAME: 1-64 of [A-Za-z0-9._-] (queues: 1-60, so
  /// that their dead-letter queue "DLQ.NAME" is a valid name too). Throws Error(BadDestination).
  static Destination parse(std::string_view uri);
  /// The kind.
  Kind kind() const noexcept { return kind_; }
  /// The NAME part.
  const std::string& name() const noexcept { return name_; }
  /// "topic://NAME" or "queue://NAME".
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

/// A point-to-point destination: each message goes to exactly one consumer and waits for one.
class Queue : public Destination {
 public:
  /// A queue named `name` (validated as in Destination::parse).
  explicit Queue(std::string name);
};

/// A queue made by Session::create_temporary_queue() (JMS TemporaryQueue). The daemon names it
/// "TMP.<epoch>.<n>" (names starting with "TMP." are reserved): pass it as a reply-to, and any
/// connection can create a producer on Destination::parse(reply_to). Only the connection that
/// created it can create consumers or browsers on it (others: Error(PermissionDenied)). It is
/// deleted when that connection closes or its process dies, or by remove(); a producer opened on
/// it after that gets Error(BadDestination, "temporary destination ... no longer exists").
/// A temporary queue has no dead-letter queue (dead letters are dropped and counted) and never
/// expires while its connection lives. Copies share the one queue; a plain Queue copy (slicing)
/// names it too but cannot remove() it.
class TemporaryQueue : public Queue {
 public:
  /// Deletes it now (JMS delete()). Throws Error(InvalidArgument) while it has a consumer (close
  /// them first), Error(BadDestination) if it no longer exists (removed before), Error(Closed)
  /// once its connection is closed (it was deleted with it). Producers still open on it keep a
  /// valid, orphaned mapping: see docs/api.md, "Request/reply and temporary destinations".
  void remove();

 private:
  friend class Session;
  TemporaryQueue(std::string name, std::weak_ptr<detail::ConnectionImpl> conn);
  std::weak_ptr<detail::ConnectionImpl> conn_;
};

/// A topic made by Session::create_temporary_topic() (JMS TemporaryTopic); the same rules as
/// TemporaryQueue.
class TemporaryTopic : public Topic {
 public:
  /// Deletes it now; as TemporaryQueue::remove().
  void remove();

 private:
  friend class Session;
  TemporaryTopic(std::string name, std::weak_ptr<detail::ConnectionImpl> conn);
  std::weak_ptr<detail::ConnectionImpl> conn_;
};

/// How a session acknowledges what its consumers receive from queues (topics need no acks).
enum class AckMode : std::uint8_t {
  Auto,        ///< each message is acknowledged as receive() returns it (at-most-once if the process dies after)
  Client,      ///< Message::acknowledge() acknowledges every message the session has received so far
  DupsOk,      ///< acknowledged lazily in batches: after a crash some may come again (never lost)
  Individual,  ///< Message::acknowledge() acknowledges exactly that message
  Transacted,  ///< Session::commit() makes sends visible and acknowledges receives; rollback() undoes both
};
/// "auto", "client", "dups_ok", "individual", "transacted".
const char* to_string(AckMode m) noexcept;

/// When a PERSISTENT send returns (ProducerOptions::acks).
enum class Acks : std::uint8_t {
  Memory,   ///< in the queue's shared memory: survives the producer, not a daemon crash before the write
  Durable,  ///< written to the queue's log and fsync'ed: survives a daemon or host crash
  /// Replicated (docs/replication.md): in the log of every in-sync replica (the high watermark
  /// passed it), with at least the leader's --min-insync replicas in sync: survives the loss of
  /// the leader's host. Fails with Status::NotReplicated rather than settle for less.
  Replicated,
};

/// What a producer does when a queue has no free slot.
enum class FullPolicy : std::uint8_t {
  Block,     ///< wait up to ProducerOptions::send_timeout for a consumer to free one, then Status::QueueFull
  FailFast,  ///< Status::QueueFull at once
};
/// When the daemon fsyncs a queue's log (DestinationOptions::fsync). Durable sends
/// (Acks::Durable) are fsync'ed at once whatever the policy (group commit).
struct FsyncPolicy {
  enum class Mode : std::uint8_t {
    Daemon = 0,    ///< the daemon's --fsync (default interval:10)
    Never = 1,     ///< the OS writes back; fsync only for durable sends, snapshots and shutdown
    Interval = 2,  ///< at most `value` ms after the first unflushed message
    EveryN = 3,    ///< after `value` messages
    Always = 4,    ///< after every batch the daemon writes
  };
  Mode mode = Mode::Daemon;
  std::uint32_t value = 0;  ///< Interval: ms (1 to 3600000); EveryN: messages (1 to 3600000)
};

/// Geometry of a destination, applied when it is first created; ignored (the existing geometry
/// wins) when it already exists.
struct DestinationOptions {
  std::uint32_t capacity = 4096;          ///< ring slots (queues: messages held at most), rounded up to a power of two
  std::uint32_t max_message_size = 4096;  ///< bytes per message
  // Queues only:
  std::uint32_t max_deliveries = 10;           ///< a message delivered this often and not acknowledged goes to the DLQ (0: no limit)
  std::chrono::milliseconds redelivery_delay{0};  ///< a message given back waits this long before it is delivered again
  bool dead_letter_queue = true;               ///< dead letters go to queue://DLQ.NAME (false: dropped, counted)
  bool expired_to_dlq = false;                 ///< expired messages go to the DLQ too (false: dropped, counted)
  FsyncPolicy fsync{};                          ///< when the queue's log of PERSISTENT messages is fsync'ed
  /// Queues: consumers see a PERSISTENT message only once it is committed -- below the leader's
  /// high watermark on a replicating daemon (no failover can take it back), else once fsync'ed.
  bool read_committed = false;
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
  /// Queues, every ack mode but Auto: a message not acknowledged this long after delivery is
  /// taken back by the daemon and delivered again (to any consumer), flagged redelivered.
  /// 0 = never (only the consumer's death or close gives it back).
  std::chrono::milliseconds ack_timeout{30'000};
  /// Queues, AckMode::DupsOk: once this many messages were handed out, the next receive
  /// acknowledges them (and whenever the queue is empty or the window is full).
  std::uint32_t dups_ok_batch = 32;
  /// JMS message selector (SQL-92 subset over headers and properties, docs/selectors.md),
  /// parsed when the consumer is created (a syntax error throws Error(InvalidArgument) naming
  /// the position). Empty: every message. Topics: the consumer skips what does not match. Queues:
  /// what does not match stays in the queue for other consumers.
  std::string selector{};
};

/// Per-producer options.
struct ProducerOptions {
  bool disable_timestamp = false;  ///< skip the CLOCK_REALTIME read per send (JMS setDisableMessageTimestamp)
  /// How long send()/claim() wait for the slot's previous lap — a full ring ago — to be published
  /// by another producer before returning Status::Stalled. That producer is descheduled, stopped,
  /// or holding a zero-copy claim; a dead one is repaired by the daemon within milliseconds. The
  /// claimed sequence is kept and reused by the next send()/claim().
  std::chrono::milliseconds stall_timeout{1000};
  /// JMSDeliveryMode of what this producer sends. PERSISTENT messages to a queue are written to
  /// the queue's segment log by the daemon's persistence agent and survive a daemon restart
  /// (docs/persistence.md); topics carry the mode in the header only.
  DeliveryMode delivery_mode = DeliveryMode::NonPersistent;
  /// When a PERSISTENT send returns: Acks::Memory once it is in the queue (the daemon writes it
  /// soon after, fsync by the queue's policy); Acks::Durable once the daemon has written and
  /// fsync'ed it (group commit: many producers share one fsync); in a transacted session
  /// Session::commit() waits instead. NON_PERSISTENT sends ignore it.
  Acks acks = Acks::Memory;
  bool disable_message_id = false;  ///< JMS setDisableMessageID: JMSMessageID is null
  std::uint8_t priority = 4;                     ///< JMS priority 0-9 (queues deliver higher first; topics carry it)
  std::chrono::milliseconds time_to_live{0};     ///< 0: never expires; else not delivered after send + ttl (queues and topics)
  // Queues only (topics ignore them):
  std::chrono::milliseconds delivery_delay{0};   ///< 0: at once; else not delivered before send + delay
  FullPolicy on_full = FullPolicy::Block;        ///< a full queue: wait or fail at once
  std::chrono::milliseconds send_timeout{10'000};  ///< FullPolicy::Block: longest wait for a free slot
};

/// Per-message overrides of the producer's options (negative / 0: use the producer's).
struct SendOptions {
  int priority = -1;                             ///< 0-9
  std::chrono::milliseconds time_to_live{-1};
  std::chrono::milliseconds delivery_delay{-1};  ///< queues only
  DeliveryMode delivery_mode{0};                 ///< 0: the producer's
};

/// A received message (JMS Message on the consuming side). A zero-copy view into the consumer's
/// buffer: valid until the next receive on that consumer (copy what you keep).
///
/// A message sent as an OutgoingMessage (TextMessage, MapMessage, ...) carries a frame with every
/// header and property; one sent with send(bytes) is a raw payload: body_type() Bytes, no
/// properties, headers from the slot (id, timestamp, priority, expiration). It is also the
/// PropertySource a selector evaluates: get("JMSPriority"), get("color"), ...
class Message final : public message::PropertySource {
 public:
  // ---- body
  /// Text, Bytes, Map, Stream or Object (Bytes for a raw payload).
  BodyType body_type() const noexcept { return framed_ ? frame_.body_type() : BodyType::Bytes; }
  /// The body bytes: a raw payload, or a framed message's body (Text: the UTF-8; Bytes: the
  /// bytes; Map/Stream/Object: their encoding, docs/message-frame.md).
  std::span<const std::byte> body() const noexcept { return framed_ ? frame_.body() : std::span<const std::byte>{data_, size_}; }
  /// Text: the validated UTF-8. A raw payload: its bytes as text (not validated). Others: "".
  std::string_view text() const noexcept;
  /// Bytes: a reader over the body (the BytesMessage write_* order). Others: empty.
  BytesReader bytes_reader() const noexcept;
  /// Map: the entries (lookup by name, iteration in name order). Others: empty.
  MapReader map() const noexcept { return framed_ ? frame_.map() : MapReader{}; }
  /// Stream: the values in order, at the first one. Others: empty.
  StreamReader stream() const noexcept { return framed_ ? frame_.stream() : StreamReader{}; }
  /// Object: the serializer type name the sender used. Others: "".
  std::string_view object_type() const noexcept { return framed_ ? frame_.object_type() : std::string_view{}; }
  /// Object: decodes with the serializer registered for T. Throws Error(InvalidArgument) when
  /// this is not an ObjectMessage, T has no serializer, or the message names another type (never
  /// decodes bytes as a type the message does not name); whatever the serializer throws.
  template <class T>
  T object() const {
    auto [name, codec] = Serializers::lookup(typeid(T));
    check_object_type(name);
    T out{};
    codec.second(frame_.object_data(), &out);
    return out;
  }
  /// The whole encoded frame (docs/message-frame.md), empty for a raw payload.
  std::span<const std::byte> frame() const noexcept { return framed_ ? std::span<const std::byte>{data_, size_} : std::span<const std::byte>{}; }
  /// True when the message carries a frame (sent as an OutgoingMessage).
  bool framed() const noexcept { return framed_; }

  // ---- headers
  /// JMSMessageID: the producer's random 64-bit incarnation and its per-producer sequence;
  /// unique across producers and daemon restarts. Null (0, 0) for producers with message ids disabled.
  message::MessageId message_id() const noexcept;
  /// "ID:" + 32 hex digits (incarnation, then sequence), or "" when null.
  std::string message_id_string() const;
  /// CLOCK_REALTIME at send in ns, 0 if the producer disabled timestamps (JMSTimestamp).
  std::int64_t timestamp_ns() const noexcept { return timestamp_ns_; }
  /// JMSCorrelationID, "" when absent.
  std::string_view correlation_id() const noexcept { return framed_ ? frame_.correlation_id() : std::string_view{}; }
  /// JMSType, "" when absent.
  std::string_view type() const noexcept { return framed_ ? frame_.type() : std::string_view{}; }
  /// JMSReplyTo as a URI ("queue://NAME", "topic://NAME"), "" when absent.
  std::string_view reply_to() const noexcept { return framed_ ? frame_.reply_to() : std::string_view{}; }
  /// JMSDestination as a URI ("" for a raw payload).
  std::string_view destination() const noexcept { return framed_ ? frame_.destination() : std::string_view{}; }
  /// JMSDeliveryMode (a raw payload: NonPersistent).
  DeliveryMode delivery_mode() const noexcept { return framed_ ? frame_.delivery_mode() : DeliveryMode::NonPersistent; }
  /// JMSExpiration: CLOCK_REALTIME ns after which it is not delivered; 0 = never.
  std::int64_t expiration_ns() const noexcept { return expiration_ns_; }
  /// JMSDeliveryTime: CLOCK_REALTIME ns before which it was not delivered; 0 = at once.
  std::int64_t delivery_time_ns() const noexcept { return framed_ ? frame_.delivery_time_ns() : 0; }
  /// Position in the destination's ring (topics) or slot number (queues).
  std::uint64_t sequence() const noexcept { return seq_; }
  /// Daemon-assigned id of the producer that sent it.
  std::uint32_t producer_id() const noexcept { return producer_id_; }
  /// 1, 2, 3, ... per producer.
  std::uint64_t producer_sequence() const noexcept { return producer_seq_; }
  /// Queues: true when this message was delivered before (and not acknowledged) (JMSRedelivered).
  bool redelivered() const noexcept { return redelivered_; }
  /// Queues: 1 on the first delivery, 2 on the first redelivery, ... (JMSXDeliveryCount).
  std::uint32_t delivery_count() const noexcept { return delivery_count_; }
  /// JMS priority 0-9 (JMSPriority).
  std::uint8_t priority() const noexcept { return priority_; }
  /// Messages in a dead-letter queue: 1 = max deliveries reached, 2 = expired; else 0.
  std::uint8_t dead_letter_reason() const noexcept { return dead_letter_reason_; }
  /// Messages in a dead-letter queue: the daemon id of the queue it died in; else 0.
  std::uint32_t origin_destination_id() const noexcept { return origin_dest_id_; }

  // ---- properties (JMS get<Type>Property, with the JMS conversion rules)
  /// A property (not a header), Null when absent.
  Value property(std::string_view name) const noexcept { return framed_ ? frame_.property(name) : Value{}; }
  bool property_exists(std::string_view name) const noexcept { return !property(name).is_null(); }
  /// Every property, in name order.
  MapReader properties() const noexcept { return framed_ ? frame_.properties() : MapReader{}; }
  Converted<bool> get_bool_property(std::string_view n) const noexcept { return message::as_bool(property(n)); }
  Converted<std::int8_t> get_byte_property(std::string_view n) const noexcept { return message::as_int8(property(n)); }
  Converted<std::int16_t> get_short_property(std::string_view n) const noexcept { return message::as_int16(property(n)); }
  Converted<std::int32_t> get_int_property(std::string_view n) const noexcept { return message::as_int32(property(n)); }
  Converted<std::int64_t> get_long_property(std::string_view n) const noexcept { return message::as_int64(property(n)); }
  Converted<float> get_float_property(std::string_view n) const noexcept { return message::as_float(property(n)); }
  Converted<double> get_double_property(std::string_view n) const noexcept { return message::as_double(property(n)); }
  StringConverted get_string_property(std::string_view n) const noexcept { return message::as_string(property(n)); }
  /// PropertySource: a JMS header name a selector may use (JMSPriority, JMSMessageID,
  /// JMSTimestamp, JMSCorrelationID, JMSType, JMSDeliveryMode, JMSExpiration, JMSDeliveryTime,
  /// JMSRedelivered, JMSXDeliveryCount, JMSReplyTo, JMSDestination; times in ms), else a property.
  Value get(std::string_view name) const noexcept override;

  /// Queues, AckMode::Client: acknowledges every message the session received so far;
  /// AckMode::Individual: exactly this one. Other modes and topics: nothing to do, Ok.
  /// AckTooLate: it was taken back first (ack timeout, recover, rollback) or already acknowledged.
  /// Valid until the consumer is closed (not only until the next receive).
  Status acknowledge() const noexcept;

 private:
  friend struct detail::ConsumerImpl;
  friend struct detail::BrowserImpl;
  void check_object_type(std::string_view registered) const;
  /// Points the message at `len` payload bytes at `data`: a frame (opened, validated) or a raw
  /// payload. False: a frame that fails validation (the message must not be handed out).
  bool set_payload(const std::byte* data, std::size_t len, bool framed) noexcept;
  detail::ConsumerImpl* consumer_ = nullptr;  // queues: who can acknowledge it
  std::uint32_t slot_ = 0;
  std::uint64_t word_ = 0;
  bool redelivered_ = false;
  bool framed_ = false;
  std::uint8_t priority_ = 0;
  std::uint8_t dead_letter_reason_ = 0;
  std::uint32_t delivery_count_ = 0;
  std::uint32_t origin_dest_id_ = 0;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t seq_ = 0;
  std::uint32_t producer_id_ = 0;
  std::uint64_t producer_seq_ = 0;
  std::uint64_t incarnation_ = 0;
  std::int64_t timestamp_ns_ = 0;
  std::int64_t expiration_ns_ = 0;
  message::FrameReader frame_;
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
  /// Send with per-message options (SendOptions: priority, time to live, delivery mode; delivery
  /// delay on queues only).
  Status send(std::span<const std::byte> body, const SendOptions& o) noexcept;
  /// Text convenience overload.
  Status send(std::string_view text, const SendOptions& o) noexcept;
  /// Sends a JMS message (Text, Bytes, Map, Stream, Object): its frame is encoded in place in the
  /// destination's shared memory, with JMSMessageID, JMSTimestamp, JMSDestination, JMSPriority,
  /// JMSExpiration, JMSDeliveryTime and JMSDeliveryMode from the producer (and `o`). No
  /// allocation. MessageTooLarge: the frame does not fit max_message_size; InvalidMessage: it
  /// cannot be encoded. Either way nothing was sent.
  Status send(const OutgoingMessage& m, const SendOptions& o = {}) noexcept;
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
  // Queue receives return Ok, Timeout, WindowFull (settle some first), DaemonGone or Closed.
  /// Asynchronous delivery (JMS MessageListener): from now on `on_message` runs on a thread this
  /// consumer owns, once per message, in order. AckMode::Auto acknowledges a queue message when
  /// `on_message` returns, and gives it back for redelivery if it throws (at-least-once: a crash
  /// inside the listener brings the message back). Client/Individual: call acknowledge() in it;
  /// Transacted: call Session::commit()/rollback() in it. While a listener is set, the session
  /// belongs to that thread (JMS): receive() returns Status::Closed, and the consumer must not
  /// be closed from inside its own listener. Stopped by close() or destruction. Throws
  /// Error(InvalidArgument) if a listener is already set or `on_message` is empty.
  void set_message_listener(std::function<void(const Message&)> on_message);
  /// Messages lost to lapping since the consumer was created.
  std::uint64_t lost_total() const noexcept;
  /// Topics: messages skipped because they did not match the selector.
  std::uint64_t skipped_total() const noexcept;
  /// Topics: messages dropped because they were past their JMSExpiration when they arrived.
  std::uint64_t expired_total() const noexcept;
  /// Messages whose frame failed validation (a broken producer), never handed out.
  std::uint64_t malformed_total() const noexcept;
  /// Daemon-assigned consumer id.
  std::uint32_t id() const noexcept;
  /// Detaches from the destination. Idempotent.
  void close();

 private:
  friend class Session;
  explicit MessageConsumer(std::unique_ptr<detail::ConsumerImpl> impl);
  std::unique_ptr<detail::ConsumerImpl> impl_;
};

/// Looks at the messages waiting in a queue without consuming them (JMS QueueBrowser): highest
/// priority first, in delivery order within a priority. A snapshot that never blocks anyone.
class QueueBrowser {
 public:
  QueueBrowser(QueueBrowser&&) noexcept;
  QueueBrowser& operator=(QueueBrowser&&) noexcept;
  ~QueueBrowser();
  /// The next waiting message (a copy, valid until the next call), or false at the end.
  bool next(Message& out) noexcept;

 private:
  friend class Session;
  explicit QueueBrowser(std::unique_ptr<detail::BrowserImpl> impl);
  std::unique_ptr<detail::BrowserImpl> impl_;
};

/// A single-threaded context for producing and consuming.
class Session {
 public:
  /// A Topic handle named `name`; the topic itself is created on first producer/consumer.
  Topic create_topic(const std::string& name) const { return Topic(name); }
  /// A Queue handle named `name`; the queue itself is created on first producer/consumer.
  Queue create_queue(const std::string& name) const { return Queue(name); }
  /// A temporary queue owned by this session's connection (JMS createTemporaryQueue), created now
  /// with `opts` (geometry, max_deliveries, redelivery_delay; no dead-letter queue). Throws Error.
  TemporaryQueue create_temporary_queue(const DestinationOptions& opts = {});
  /// A temporary topic owned by this session's connection (JMS createTemporaryTopic).
  TemporaryTopic create_temporary_topic(const DestinationOptions& opts = {});
  /// A producer on `dest`, creating the destination with `opts` if it does not exist.
  MessageProducer create_producer(const Destination& dest, const ProducerOptions& popts = {},
                                  const DestinationOptions& opts = {});
  /// A consumer on `dest`: it sees every message committed from now on.
  MessageConsumer create_consumer(const Destination& dest, const ConsumerOptions& copts = {},
                                  const DestinationOptions& opts = {});
  /// A durable subscriber (JMS createDurableSubscriber) of subscription `name` on `topic`: the
  /// daemon logs the topic's PERSISTENT messages while the subscription exists, so it receives
  /// what was published while no subscriber was open, from where it last acknowledged; the
  /// subscription (and its position) survives daemon restarts until unsubscribe(). A new
  /// subscription starts at the end of the log. One open subscriber per subscription at a time.
  /// Acknowledgements are positions in the log: Client/Individual commit on acknowledge(), Auto
  /// and DupsOk every 64 messages or 100 ms and at close (after a crash up to that many come
  /// again), Transacted at commit(). NON_PERSISTENT messages are not logged: they reach only the
  /// ordinary subscribers. Throws Error (bad name, a subscriber already open).
  MessageConsumer create_durable_subscriber(const Topic& topic, const std::string& name, const ConsumerOptions& copts = {},
                                            const DestinationOptions& opts = {});
  /// Deletes durable subscription `name` of `topic` (JMS unsubscribe); with the last one the
  /// topic's log is deleted. Throws Error if it does not exist or a subscriber is open.
  void unsubscribe(const Topic& topic, const std::string& name);
  /// A browser over `queue` (created with `opts` if it does not exist), showing only messages
  /// matching `selector` (empty: all). Throws Error(InvalidArgument) for a selector syntax error.
  QueueBrowser create_browser(const Queue& queue, const DestinationOptions& opts = {}, const std::string& selector = {});

  /// The session's acknowledgement mode.
  AckMode ack_mode() const noexcept;
  /// AckMode::Client: acknowledges every message received so far (as Message::acknowledge()).
  /// Returns how many were acknowledged. Other modes: 0.
  std::uint64_t acknowledge() noexcept;
  /// Gives every received, unacknowledged queue message back for redelivery (JMS recover).
  /// Returns how many. Not for transacted sessions (use rollback); Auto: nothing to give back.
  std::uint64_t recover() noexcept;
  /// Transacted: makes every send since the last commit/rollback deliverable and acknowledges
  /// every receive. Throws Error(InvalidArgument) on a non-transacted session, and
  /// Error(PartiallyCommitted) when some receives had been taken back by the ack timeout before
  /// the commit (they will be delivered again; everything else is committed).
  void commit();
  /// Transacted: discards the sends and gives the receives back for redelivery.
  void rollback();

 private:
  friend class Connection;
  explicit Session(std::shared_ptr<detail::SessionImpl> s) : impl_(std::move(s)) {}
  std::shared_ptr<detail::SessionImpl> impl_;
};

/// One attachment to shmbusd. Closes (detaches) on destruction.
class Connection {
 public:
  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&&) noexcept = default;
  ~Connection();
  /// A new session on this connection with acknowledgement mode `mode`.
  Session create_session(AckMode mode = AckMode::Auto);
  /// True while the daemon is alive and this connection is open (one poll(2) on the socket).
  bool daemon_alive() const noexcept;
  /// A snapshot of the daemon's destinations, clients and counters. Throws Error.
  BusStats stats() const;
  /// Replication (docs/replication.md): turns the follower this connection is attached to into the
  /// leader with a new epoch (`shmbus promote`). Returns that epoch. Throws Error(InvalidArgument)
  /// if the daemon is not a follower.
  std::uint32_t promote();
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
