// Client-side producer, consumer, session and browser state (the pimpls behind the public API).
#pragma once
#include "client/connection_impl.hpp"
#include "message/selector.hpp"
#include "log/log_tail.hpp"
#include "ring/queue_ring.hpp"
#include "ring/topic_ring.hpp"

#include <functional>
#include <thread>
#include <vector>

namespace shmbus::detail {

inline constexpr std::uint64_t kCheckEveryNoWait = 4096;
/// Longest single futex sleep of a parked consumer or producer: bounds how late it notices a
/// dead daemon.
inline constexpr std::uint64_t kParkSliceNs = 20'000'000;

struct ProducerImpl;
struct ConsumerImpl;

/// One Session: its ack mode and the queue endpoints whose acks/sends it settles together.
struct SessionImpl {
  std::shared_ptr<ConnectionImpl> conn;
  AckMode mode = AckMode::Auto;
  std::vector<ConsumerImpl*> consumers;  // queue consumers open in this session
  std::vector<ProducerImpl*> producers;  // queue producers open in this session
  std::vector<ConsumerImpl*> durables;   // durable subscribers open in this session
  std::uint64_t ack_all() noexcept;
  std::uint64_t give_back_all() noexcept;
};

struct EndpointBase {
  std::shared_ptr<ConnectionImpl> conn;
  std::shared_ptr<Mapping> map;
  std::shared_ptr<SessionImpl> session;
  std::uint32_t dest_id = 0;
  std::uint32_t id = 0;
  bool closed = false;
  virtual ~EndpointBase() = default;
  /// Settles what the session must settle before the daemon reclaims the rest (queues).
  virtual void before_close() noexcept {}
  /// Tells the daemon we are gone (best effort: a dead daemon needs no telling).
  void close_endpoint() noexcept;
  /// The destination's `removed` word (TopicHeader / QueueHeader): set when the daemon deletes it.
  const std::atomic<std::uint32_t>* removed = nullptr;
  bool usable() const noexcept {
    // Relaxed: hints. A send racing the close or the deletion may still land (in a mapping
    // nobody reads any more); every later one sees it.
    return !closed && !conn->closed.load(std::memory_order_relaxed) &&
           (removed == nullptr || removed->load(std::memory_order_relaxed) == 0);
  }
};

struct ProducerImpl : EndpointBase {
  ring::TopicWriter writer;
  bool timestamps = true;
  std::uint64_t stall_timeout_ns = 0;
  Status claim_slot(std::uint32_t length, ring::SlotClaim& c) noexcept;
  // Queues
  bool queue = false;
  ring::QueueWriter qwriter;
  ProducerOptions opts;
  std::uint64_t sequence = 0;
  std::vector<std::pair<std::uint32_t, ring::QueueSendMeta>> pending;  // transacted, until commit
  /// A free slot, waiting (FullPolicy::Block) up to send_timeout.
  Status acquire(std::uint32_t& slot) noexcept;
  /// A send's options after SendOptions' overrides of the producer's (ProducerOptions).
  struct Effective {
    int priority = 4;  // 0-9
    std::chrono::milliseconds ttl{0}, delay{0};
    DeliveryMode mode = DeliveryMode::NonPersistent;
  };
  Effective effective(const SendOptions& o) const noexcept;
  /// Whether a send with `e` needs CLOCK_REALTIME (timestamps on, or a TTL, or a queue delay).
  bool needs_clock(const Effective& e) const noexcept;
  /// CLOCK_REALTIME now, or 0 when nothing the send writes needs it.
  std::int64_t real_now(const Effective& e) const noexcept;
  /// JMSExpiration for a send at `now_real`: 0 without a TTL.
  std::int64_t expiration_for(const Effective& e, std::int64_t now_real) const noexcept;
  /// The queue slot's fields for a send at `now_real` (real_now()).
  ring::QueueSendMeta meta(std::uint32_t length, const Effective& e, std::int64_t now_real) noexcept;
  /// Publishes now, or keeps it for commit (transacted).
  Status publish(std::uint32_t slot, const ring::QueueSendMeta& m) noexcept;
  Status queue_send(std::span<const std::byte> body, const SendOptions& o) noexcept;
  /// PERSISTENT sends are refused while the daemon cannot write the queue's log.
  bool log_failing() const noexcept;
  /// Acks::Durable: waits until the persistence agent says producer_seq `seq` is on disk.
  Status wait_durable(std::uint64_t seq, bool replicated = false) noexcept;
  /// Acks::Replicated can be promised now: a leader with at least min.insync replicas in sync.
  bool replicas_ok() const noexcept;
  // The message model
  std::uint64_t incarnation = 0;  // random, 0 with disable_message_id
  std::string dest_uri;           // JMSDestination
  Status send_message(const OutgoingMessage& m, const SendOptions& o) noexcept;
  Status topic_send_message(const OutgoingMessage& m, const SendOptions& o) noexcept;
  Status queue_send_message(const OutgoingMessage& m, const SendOptions& o) noexcept;
  /// Encodes `m` into `buf` with the producer's headers. Ok, MessageTooLarge or InvalidMessage.
  Status encode(const OutgoingMessage& m, const Effective& e, std::span<std::byte> buf, std::uint64_t seq,
                std::int64_t now_real, std::size_t& size) noexcept;
  void before_close() noexcept override;
  std::uint32_t max_payload() const noexcept { return queue ? qwriter.ring().max_payload() : writer.ring().max_payload(); }
};

struct ConsumerImpl : EndpointBase {
  ring::TopicReader reader;
  ConsumerOptions opts;
  std::vector<std::byte> buf;
  std::uint64_t lost_total = 0;
  std::uint64_t empty_polls = 0;
  std::unique_ptr<message::Selector> selector;  // null: every message
  std::uint64_t skipped = 0;    // topics: not matching the selector
  std::uint64_t expired = 0;    // topics: past JMSExpiration, dropped
  std::uint64_t malformed = 0;  // a frame that failed validation, dropped
  /// Fills `out` from a topic slot's meta and payload copy; false: drop it (expired, malformed, no match).
  bool admit_topic(Message& out, const ring::ReadMeta& meta) noexcept;
  ReceiveResult poll(Message& out) noexcept;
  ReceiveResult wait_and_poll(Message& out, std::chrono::nanoseconds timeout) noexcept;
  bool park(std::uint64_t deadline_ns) noexcept;
  // Queues
  bool queue = false;
  ring::QueueReader qreader;
  std::uint32_t since_flush = 0;  // DupsOk: receipts since the last batch ack
  // Listener (asynchronous delivery)
  std::function<void(const Message&)> on_message;
  std::thread listener;
  std::atomic<bool> listener_stop{false};
  bool defer_auto_ack = false;  // the listener acks AUTO deliveries when on_message returns
  void listen() noexcept;
  void stop_listener() noexcept;
  ~ConsumerImpl() override { stop_listener(); }
  ring::QueueDelivery last_;     // the delivery being handed out
  ReceiveResult poll_queue(Message& out) noexcept;
  ReceiveResult take_queue(Message& out) noexcept;
  void settle_on_receive() noexcept;
  /// Fills `out` from a queue slot (header `h`, delivered word `word`) whose payload is at
  /// `data`: the frame (opened in place) or a raw payload. False: a frame that fails validation.
  static bool fill_queue_message(Message& out, const layout::QueueSlotHeader& h, std::uint64_t word,
                                 const std::byte* data, std::uint32_t len) noexcept;
  Status acknowledge(std::uint32_t slot, std::uint64_t word) noexcept;
  void before_close() noexcept override;
  // Durable subscribers (durable_consumer.cpp): read the topic's log, not the ring.
  bool durable = false;
  std::unique_ptr<log::LogTail> tail;
  std::string log_dir;
  std::uint64_t delivered = 0;   // next offset after the last message handed out
  std::uint64_t committed = 0;   // what the daemon has as this subscription's position
  std::uint64_t high = 0;        // one past the highest offset ever handed out (redelivered flag)
  std::uint64_t last_commit_ns = 0;
  ReceiveResult poll_durable(Message& out) noexcept;
  /// Tells the daemon the subscription consumed everything below `pos`.
  Status commit_durable(std::uint64_t pos) noexcept;
  /// Reads again from the committed position (recover, rollback).
  void rewind_durable() noexcept;
};


struct BrowserImpl {
  std::unique_ptr<message::Selector> selector;
  std::shared_ptr<ConnectionImpl> conn;
  std::shared_ptr<Mapping> map;
  ring::QueueRing q;
  std::vector<std::byte> buf;
  std::uint32_t prio = layout::kPriorities;  // ring being walked + 1 (0: done)
  std::uint64_t pos = 0, end = 0;
  bool started = false;
  bool next(Message& out) noexcept;
};

}  // namespace shmbus::detail
