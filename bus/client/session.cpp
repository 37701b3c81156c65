#include "client/endpoints.hpp"
#include "common/paths.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <sys/random.h>

namespace shmbus {

namespace {

struct Opened {
  control::OpenOk ok;
  std::shared_ptr<detail::Mapping> map;
};

void check_options(bool queue, const DestinationOptions& o) {
  const std::uint32_t min_slots = queue ? layout::kMinQueueSlots : layout::kMinSlots;
  const std::uint32_t max_slots = queue ? layout::kMaxQueueSlots : layout::kMaxSlots;
  if (o.capacity < min_slots || o.capacity > max_slots)
    throw Error(ErrorCode::InvalidArgument, "capacity " + std::to_string(o.capacity) + " is out of range [" +
                                                std::to_string(min_slots) + ", " + std::to_string(max_slots) + "]");
  if (o.max_message_size < 1 || o.max_message_size > layout::kMaxPayload)
    throw Error(ErrorCode::InvalidArgument, "max message size " + std::to_string(o.max_message_size) +
                                                " is out of range [1, " + std::to_string(layout::kMaxPayload) + "]");
  if (o.redelivery_delay.count() < 0) throw Error(ErrorCode::InvalidArgument, "redelivery delay must not be negative");
  if (o.fsync.mode > FsyncPolicy::Mode::Always ||
      ((o.fsync.mode == FsyncPolicy::Mode::Interval || o.fsync.mode == FsyncPolicy::Mode::EveryN) &&
       (o.fsync.value < 1 || o.fsync.value > 3'600'000)))
    throw Error(ErrorCode::InvalidArgument, "fsync policy value " + std::to_string(o.fsync.value) +
                                                " is out of range [1, 3600000] (ms for Interval, messages for EveryN)");
  if (o.max_deliveries > layout::QWord::kMaxCount)
    throw Error(ErrorCode::InvalidArgument, "max deliveries " + std::to_string(o.max_deliveries) + " is above " +
                                                std::to_string(layout::QWord::kMaxCount) + " (0 means no limit)");
}

Opened open_dest(detail::ConnectionImpl& c, const Destination& d, control::Role role, const DestinationOptions& o,
                 AckMode mode = AckMode::Auto, std::chrono::milliseconds ack_timeout = {},
                 const std::string& subscription = {}) {
  check_options(d.kind() == Destination::Kind::Queue, o);
  if (ack_timeout.count() < 0) throw Error(ErrorCode::InvalidArgument, "ack timeout must not be negative");
  control::OpenDest m;
  m.kind = static_cast<std::uint8_t>(d.kind());
  m.role = role;
  m.name = d.name();
  m.capacity = std::bit_ceil(o.capacity);
  m.max_message_size = o.max_message_size;
  m.ack_mode = static_cast<std::uint8_t>(mode);
  m.ack_timeout_ns = mode == AckMode::Auto ? 0 : common::ms_to_ns_capped(ack_timeout);
  m.max_deliveries = o.max_deliveries;
  m.redelivery_delay_ns = common::ms_to_ns_capped(o.redelivery_delay);
  m.queue_flags = (o.dead_letter_queue ? layout::kQueueDlqEnabled : 0U) | (o.expired_to_dlq ? layout::kQueueExpiredToDlq : 0U) |
                  (o.read_committed ? layout::kQueueReadCommitted : 0U);
  m.fsync_mode = static_cast<std::uint8_t>(o.fsync.mode);
  m.fsync_value = o.fsync.value;
  m.subscription = subscription;
  const auto body = c.call(control::MsgType::OpenDest, control::encode(m), control::MsgType::OpenOk);
  control::Reader r(body);
  Opened out;
  control::decode(r, out.ok);
  out.map = c.map_dest(out.ok.dest_id, out.ok.shm_name, out.ok.shm_size);
  return out;
}

/// Asks the daemon for a temporary destination of kind `k`; returns its generated name.
std::string create_temp(detail::ConnectionImpl& c, Destination::Kind k, const DestinationOptions& o) {
  check_options(k == Destination::Kind::Queue, o);
  control::CreateTemp m;
  m.kind = static_cast<std::uint8_t>(k);
  m.capacity = std::bit_ceil(o.capacity);
  m.max_message_size = o.max_message_size;
  m.max_deliveries = o.max_deliveries;
  m.redelivery_delay_ns = common::ms_to_ns_capped(o.redelivery_delay);
  const auto body = c.call(control::MsgType::CreateTemp, control::encode(m), control::MsgType::TempOk);
  control::Reader r(body);
  control::TempOk ok;
  control::decode(r, ok);
  return ok.name;
}

/// A consumer endpoint of session `s` on what `o` opened (the fields every kind shares).
std::unique_ptr<detail::ConsumerImpl> new_consumer(const std::shared_ptr<detail::SessionImpl>& s, const Opened& o,
                                                   const ConsumerOptions& copts, message::Selector&& selector) {
  auto c = std::make_unique<detail::ConsumerImpl>();
  if (!selector.matches_all()) c->selector = std::make_unique<message::Selector>(std::move(selector));
  c->conn = s->conn;
  c->session = s;
  c->map = o.map;
  c->dest_id = o.ok.dest_id;
  c->id = o.ok.endpoint_id;
  c->opts = copts;
  return c;
}

ring::QueueRing queue_view(const Opened& o) {
  if (auto e = ring::check_queue(o.map->base(), o.map->size()); !e.empty())
    throw Error(ErrorCode::VersionMismatch, "queue shared memory " + o.ok.shm_name + ": " + std::string(e));
  return ring::QueueRing(o.map->base());
}

/// A random non-zero 64-bit producer incarnation: with the per-producer sequence it makes message
/// ids unique across producers, processes and daemon restarts (a collision needs 2^32 producers).
std::uint64_t new_incarnation() {
  std::uint64_t v = 0;
  while (v == 0) {
    if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v))
      throw Error(ErrorCode::Internal, std::string("getrandom: ") + std::strerror(errno));
  }
  return v;
}

}  // namespace

TemporaryQueue Session::create_temporary_queue(const DestinationOptions& opts) {
  return TemporaryQueue(create_temp(*impl_->conn, Destination::Kind::Queue, opts), impl_->conn);
}

TemporaryTopic Session::create_temporary_topic(const DestinationOptions& opts) {
  return TemporaryTopic(create_temp(*impl_->conn, Destination::Kind::Topic, opts), impl_->conn);
}

MessageProducer Session::create_producer(const Destination& dest, const ProducerOptions& popts,
                                         const DestinationOptions& opts) {
  const bool queue = dest.kind() == Destination::Kind::Queue;
  if (!queue && impl_->mode == AckMode::Transacted)
    throw Error(ErrorCode::Unsupported, "'" + dest.uri() + "': a transacted session sends to queues only in this version "
                                        "(topic sends cannot be held back until commit yet)");
  if (popts.priority > 9) throw Error(ErrorCode::InvalidArgument, "priority " + std::to_string(popts.priority) + " is not in 0-9");
  if (popts.time_to_live.count() < 0 || popts.delivery_delay.count() < 0 || popts.send_timeout.count() < 0)
    throw Error(ErrorCode::InvalidArgument, "time to live, delivery delay and send timeout must not be negative");
  if (popts.delivery_mode != DeliveryMode::Persistent && popts.delivery_mode != DeliveryMode::NonPersistent)
    throw Error(ErrorCode::InvalidArgument, "delivery mode must be PERSISTENT or NON_PERSISTENT");
  auto o = open_dest(*impl_->conn, dest, control::Role::Producer, opts);
  auto p = std::make_unique<detail::ProducerImpl>();
  p->conn = impl_->conn;
  p->session = impl_;
  p->map = o.map;
  p->dest_id = o.ok.dest_id;
  p->id = o.ok.endpoint_id;
  p->timestamps = !popts.disable_timestamp;
  p->opts = popts;
  p->incarnation = popts.disable_message_id ? 0 : new_incarnation();
  p->dest_uri = dest.uri();
  p->stall_timeout_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::max(popts.stall_timeout, std::chrono::milliseconds(0))).count());
  if (queue) {
    const auto q = queue_view(o);
    if (o.ok.entry_index >= q.header().max_producers)
      throw Error(ErrorCode::ProtocolError, "daemon returned an out-of-range producer index");
    p->queue = true;
    p->removed = &q.header().removed;
    p->qwriter = ring::QueueWriter(q, o.ok.entry_index);
    if (impl_->mode == AckMode::Transacted) p->pending.reserve(256);
    impl_->producers.push_back(p.get());
    return MessageProducer(std::move(p));
  }
  const ring::TopicRing ring(o.map->base());
  if (o.ok.entry_index >= ring.header().max_producers)
    throw Error(ErrorCode::ProtocolError, "daemon returned an out-of-range producer index");
  p->removed = &ring.header().removed;
  p->writer = ring::TopicWriter(ring, ring.producer(o.ok.entry_index), impl_->conn->client_index, o.ok.endpoint_id);
  return MessageProducer(std::move(p));
}

MessageConsumer Session::create_consumer(const Destination& dest, const ConsumerOptions& copts,
                                         const DestinationOptions& opts) {
  const bool queue = dest.kind() == Destination::Kind::Queue;
  auto selector = message::Selector::parse(copts.selector);  // before opening: a bad one changes nothing
  auto o = open_dest(*impl_->conn, dest, control::Role::Consumer, opts, impl_->mode, copts.ack_timeout);
  auto c = new_consumer(impl_, o, copts, std::move(selector));
  if (queue) {
    const auto q = queue_view(o);
    if (o.ok.entry_index >= q.header().max_consumers)
      throw Error(ErrorCode::ProtocolError, "daemon returned an out-of-range consumer index");
    c->queue = true;
    c->qreader = ring::QueueReader(q, o.ok.entry_index, impl_->mode != AckMode::Auto);
    c->buf.resize(std::max<std::uint32_t>(q.max_payload(), 1));
    impl_->consumers.push_back(c.get());
    return MessageConsumer(std::move(c));
  }
  const ring::TopicRing ring(o.map->base());
  if (o.ok.entry_index >= ring.header().max_subscribers)
    throw Error(ErrorCode::ProtocolError, "daemon returned an out-of-range subscriber index");
  c->reader = ring::TopicReader(ring, ring.subscriber(o.ok.entry_index), o.ok.start_position);
  c->buf.resize(ring.max_payload() == 0 ? 1 : ring.max_payload());
  return MessageConsumer(std::move(c));
}

QueueBrowser Session::create_browser(const Queue& queue, const DestinationOptions& opts, const std::string& selector) {
  auto sel = message::Selector::parse(selector);
  auto o = open_dest(*impl_->conn, queue, control::Role::Browser, opts);
  auto b = std::make_unique<detail::BrowserImpl>();
  if (!sel.matches_all()) b->selector = std::make_unique<message::Selector>(std::move(sel));
  b->conn = impl_->conn;
  b->map = o.map;
  b->q = queue_view(o);
  b->buf.resize(std::max<std::uint32_t>(b->q.max_payload(), 1));
  return QueueBrowser(std::move(b));
}

MessageConsumer Session::create_durable_subscriber(const Topic& topic, const std::string& name,
                                                   const ConsumerOptions& copts, const DestinationOptions& opts) {
  auto selector = message::Selector::parse(copts.selector);  // before opening: a bad one changes nothing
  auto o = open_dest(*impl_->conn, topic, control::Role::DurableSubscriber, opts, AckMode::Auto, {}, name);
  auto c = new_consumer(impl_, o, copts, std::move(selector));
  c->durable = true;
  c->log_dir = o.ok.log_dir;
  c->committed = c->delivered = o.ok.start_position;
  c->last_commit_ns = common::mono_ns();
  c->tail = std::make_unique<log::LogTail>(c->log_dir, o.ok.start_position);
  c->buf.resize(std::max<std::uint32_t>(opts.max_message_size, 1));
  impl_->durables.push_back(c.get());
  return MessageConsumer(std::move(c));
}

}  // namespace shmbus
