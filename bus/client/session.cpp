#include "client/endpoints.hpp"

#include <algorithm>
#include <bit>

namespace shmbus {

namespace {

struct Opened {
  control::OpenOk ok;
  std::shared_ptr<detail::Mapping> map;
};

Opened open_dest(detail::ConnectionImpl& c, const Destination& d, control::Role role, const DestinationOptions& o) {
  if (d.kind() != Destination::Kind::Topic)
    throw Error(ErrorCode::Unsupported, "'" + d.uri() + "': queues are not available in this version; use topic://NAME");
  if (o.capacity < layout::kMinSlots || o.capacity > layout::kMaxSlots)
    throw Error(ErrorCode::InvalidArgument, "capacity " + std::to_string(o.capacity) + " is out of range [" +
                                                std::to_string(layout::kMinSlots) + ", " + std::to_string(layout::kMaxSlots) + "]");
  if (o.max_message_size < 1 || o.max_message_size > layout::kMaxPayload)
    throw Error(ErrorCode::InvalidArgument, "max message size " + std::to_string(o.max_message_size) +
                                                " is out of range [1, " + std::to_string(layout::kMaxPayload) + "]");
  control::OpenDest m;
  m.kind = static_cast<std::uint8_t>(d.kind());
  m.role = role;
  m.name = d.name();
  m.capacity = std::bit_ceil(o.capacity);
  m.max_message_size = o.max_message_size;
  const auto body = c.call(control::MsgType::OpenDest, control::encode(m), control::MsgType::OpenOk);
  control::Reader r(body);
  Opened out;
  control::decode(r, out.ok);
  out.map = c.map_dest(out.ok.dest_id, out.ok.shm_name, out.ok.shm_size);
  return out;
}

}  // namespace

MessageProducer Session::create_producer(const Destination& dest, const ProducerOptions& popts,
                                         const DestinationOptions& opts) {
  auto o = open_dest(*conn_, dest, control::Role::Producer, opts);
  auto p = std::make_unique<detail::ProducerImpl>();
  p->conn = conn_;
  p->map = o.map;
  p->dest_id = o.ok.dest_id;
  p->id = o.ok.endpoint_id;
  const ring::TopicRing ring(o.map->base());
  if (o.ok.entry_index >= ring.header().max_producers)
    throw Error(ErrorCode::ProtocolError, "daemon returned an out-of-range producer index");
  p->writer = ring::TopicWriter(ring, ring.producer(o.ok.entry_index), conn_->client_index, o.ok.endpoint_id);
  p->timestamps = !popts.disable_timestamp;
  p->stall_timeout_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::max(popts.stall_timeout, std::chrono::milliseconds(0))).count());
  return MessageProducer(std::move(p));
}

MessageConsumer Session::create_consumer(const Destination& dest, const ConsumerOptions& copts,
                                         const DestinationOptions& opts) {
  auto o = open_dest(*conn_, dest, control::Role::Consumer, opts);
  auto c = std::make_unique<detail::ConsumerImpl>();
  c->conn = conn_;
  c->map = o.map;
  c->dest_id = o.ok.dest_id;
  c->id = o.ok.endpoint_id;
  const ring::TopicRing ring(o.map->base());
  if (o.ok.entry_index >= ring.header().max_subscribers)
    throw Error(ErrorCode::ProtocolError, "daemon returned an out-of-range subscriber index");
  c->reader = ring::TopicReader(ring, ring.subscriber(o.ok.entry_index), o.ok.start_position);
  c->opts = copts;
  c->buf.resize(ring.max_payload() == 0 ? 1 : ring.max_payload());
  return MessageConsumer(std::move(c));
}

}  // namespace shmbus
