#include "control/protocol.hpp"

#include <cstring>

namespace shmbus::control {

namespace {
template <class T>
void put(std::vector<std::uint8_t>& b, T v) {
  const std::size_t at = b.size();
  b.resize(at + sizeof(T));
  std::memcpy(b.data() + at, &v, sizeof(T));  // x86-64 and aarch64-linux are little-endian
}
[[noreturn]] void bad(const std::string& what) { throw Error(ErrorCode::ProtocolError, what); }
}  // namespace

Writer& Writer::u8(std::uint8_t v) { return put(buf_, v), *this; }
Writer& Writer::u16(std::uint16_t v) { return put(buf_, v), *this; }
Writer& Writer::u32(std::uint32_t v) { return put(buf_, v), *this; }
Writer& Writer::u64(std::uint64_t v) { return put(buf_, v), *this; }
Writer& Writer::str(std::string_view s) {
  if (s.size() > 0xFFFF) bad("string field longer than 65535 bytes");
  u16(static_cast<std::uint16_t>(s.size()));
  const std::size_t at = buf_.size();
  buf_.resize(at + s.size());
  if (!s.empty()) std::memcpy(buf_.data() + at, s.data(), s.size());
  return *this;
}

std::vector<std::uint8_t> Writer::frame(MsgType t, std::uint32_t request_id) const {
  std::vector<std::uint8_t> out;
  out.reserve(kHeaderSize + buf_.size());
  put(out, kMagic);
  put(out, static_cast<std::uint16_t>(t));
  put(out, std::uint16_t{0});
  put(out, static_cast<std::uint32_t>(buf_.size()));
  put(out, request_id);
  const std::size_t at = out.size();
  out.resize(at + buf_.size());
  if (!buf_.empty()) std::memcpy(out.data() + at, buf_.data(), buf_.size());
  return out;
}

const std::uint8_t* Reader::take(std::size_t n) {
  if (static_cast<std::size_t>(end_ - p_) < n) bad("control message body is truncated");
  const auto* r = p_;
  p_ += n;
  return r;
}
#define SHMBUS_READ(T) \
  T v;                 \
  std::memcpy(&v, take(sizeof(T)), sizeof(T)); \
  return v
std::uint8_t Reader::u8() { SHMBUS_READ(std::uint8_t); }
std::uint16_t Reader::u16() { SHMBUS_READ(std::uint16_t); }
std::uint32_t Reader::u32() { SHMBUS_READ(std::uint32_t); }
std::uint64_t Reader::u64() { SHMBUS_READ(std::uint64_t); }
#undef SHMBUS_READ
std::string Reader::str() {
  const auto n = u16();
  const auto* p = take(n);
  return {reinterpret_cast<const char*>(p), n};
}

FrameHeader decode_header(const std::uint8_t* b) {
  FrameHeader h;
  std::uint16_t type = 0, reserved = 0;
  std::memcpy(&h.magic, b, 4);
  std::memcpy(&type, b + 4, 2);
  std::memcpy(&reserved, b + 6, 2);
  std::memcpy(&h.body_len, b + 8, 4);
  std::memcpy(&h.request_id, b + 12, 4);
  if (h.magic != kMagic) bad("bad magic on the control socket: not a shmbus client (or a corrupted stream)");
  if (type < static_cast<std::uint16_t>(MsgType::Hello) || type > kLastMsgType)
    bad("unknown control message type " + std::to_string(type));
  if (reserved != 0) bad("reserved header field is not zero");
  if (h.body_len > kMaxBody) bad("control message body of " + std::to_string(h.body_len) + " bytes exceeds the limit");
  h.type = static_cast<MsgType>(type);
  return h;
}

Writer encode(const Hello& m) {
  Writer w;
  w.u32(m.protocol_version).u32(m.layout_version).str(m.client_name);
  return w;
}
void decode(Reader& r, Hello& m) {
  m.protocol_version = r.u32();
  m.layout_version = r.u32();
  m.client_name = r.str();
}
Writer encode(const HelloOk& m) {
  Writer w;
  w.u32(m.client_index).u32(m.generation).str(m.region_shm).u64(m.region_size).u32(static_cast<std::uint32_t>(m.daemon_pid));
  return w;
}
void decode(Reader& r, HelloOk& m) {
  m.client_index = r.u32();
  m.generation = r.u32();
  m.region_shm = r.str();
  m.region_size = r.u64();
  m.daemon_pid = static_cast<std::int32_t>(r.u32());
}
Writer encode(const ErrorReply& m) {
  Writer w;
  w.u32(static_cast<std::uint32_t>(m.code)).str(m.message);
  return w;
}
void decode(Reader& r, ErrorReply& m) {
  m.code = static_cast<ErrorCode>(r.u32());
  m.message = r.str();
}
Writer encode(const OpenDest& m) {
  Writer w;
  w.u8(m.kind).u8(static_cast<std::uint8_t>(m.role)).str(m.name).u32(m.capacity).u32(m.max_message_size);
  w.u8(m.ack_mode).u64(m.ack_timeout_ns).u32(m.max_deliveries).u64(m.redelivery_delay_ns).u32(m.queue_flags);
  w.str(m.subscription).u8(m.fsync_mode).u32(m.fsync_value);
  return w;
}
void decode(Reader& r, OpenDest& m) {
  m.kind = r.u8();
  m.role = static_cast<Role>(r.u8());
  m.name = r.str();
  m.capacity = r.u32();
  m.max_message_size = r.u32();
  m.ack_mode = r.u8();
  m.ack_timeout_ns = r.u64();
  m.max_deliveries = r.u32();
  m.redelivery_delay_ns = r.u64();
  m.queue_flags = r.u32();
  m.subscription = r.str();
  m.fsync_mode = r.u8();
  m.fsync_value = r.u32();
}
Writer encode(const OpenOk& m) {
  Writer w;
  w.u32(m.dest_id).u32(m.endpoint_id).u32(m.entry_index).u64(m.start_position).str(m.shm_name).u64(m.shm_size);
  w.str(m.log_dir);
  return w;
}
void decode(Reader& r, OpenOk& m) {
  m.dest_id = r.u32();
  m.endpoint_id = r.u32();
  m.entry_index = r.u32();
  m.start_position = r.u64();
  m.shm_name = r.str();
  m.shm_size = r.u64();
  m.log_dir = r.str();
}
Writer encode(const CommitPosition& m) {
  Writer w;
  w.u32(m.dest_id).u32(m.endpoint_id).u64(m.position);
  return w;
}
void decode(Reader& r, CommitPosition& m) {
  m.dest_id = r.u32();
  m.endpoint_id = r.u32();
  m.position = r.u64();
}
Writer encode(const Unsubscribe& m) {
  Writer w;
  w.str(m.name).str(m.subscription);
  return w;
}
void decode(Reader& r, Unsubscribe& m) {
  m.name = r.str();
  m.subscription = r.str();
}
Writer encode(const CloseEndpoint& m) {
  Writer w;
  w.u32(m.dest_id).u32(m.endpoint_id);
  return w;
}
void decode(Reader& r, CloseEndpoint& m) {
  m.dest_id = r.u32();
  m.endpoint_id = r.u32();
}
Writer encode(const StatReply& m) {
  Writer w;
  w.u32(static_cast<std::uint32_t>(m.daemon_pid)).str(m.dir).u64(m.uptime_ms);
  w.u32(static_cast<std::uint32_t>(m.clients.size()));
  for (const auto& c : m.clients) w.u32(c.index).u32(static_cast<std::uint32_t>(c.pid)).u32(c.uid).str(c.name);
  w.u32(static_cast<std::uint32_t>(m.destinations.size()));
  for (const auto& d : m.destinations) {
    w.str(d.uri).u32(d.dest_id).u32(d.capacity).u32(d.max_message_size).u32(d.producers);
    w.u64(d.tail).u64(d.holes_repaired).u64(d.shm_bytes);
    w.u32(static_cast<std::uint32_t>(d.subscribers.size()));
    for (const auto& s : d.subscribers)
      w.u32(s.consumer_id).u32(s.client_index).u32(static_cast<std::uint32_t>(s.pid)).u64(s.position).u64(s.received).u64(s.lost)
          .u64(s.acked).str(s.ack_mode);
    w.u64(d.depth).u64(d.scheduled).u64(d.in_flight).u64(d.redelivered).u64(d.dead_lettered).u64(d.expired);
    w.u64(d.ack_timeouts).u64(d.dropped).str(d.dlq).u8(d.temporary ? 1 : 0);
    w.u64(d.log_start_offset).u64(d.log_end_offset).u64(d.durable_offset).u64(d.log_segments).u64(d.log_bytes);
    w.u64(d.persisted).u64(d.restored).u32(d.persist_error);
    w.u32(static_cast<std::uint32_t>(d.durable_subscriptions.size()));
    for (const auto& s : d.durable_subscriptions) w.str(s.name).u64(s.position).u8(s.active ? 1 : 0);
  }
  const ReplicationStats& rp = m.replication;
  w.str(rp.role).u32(rp.epoch).str(rp.self).str(rp.leader).u8(rp.connected ? 1 : 0).u32(rp.min_insync).u64(rp.bytes);
  w.u32(static_cast<std::uint32_t>(rp.in_sync.size()));
  for (const auto& a : rp.in_sync) w.str(a);
  w.u32(static_cast<std::uint32_t>(rp.replicas.size()));
  for (const auto& x : rp.replicas)
    w.str(x.address).u8(x.connected ? 1 : 0).u8(x.in_sync ? 1 : 0).u64(x.lag).u64(x.caught_up_ms_ago).u64(x.bytes);
  w.u32(static_cast<std::uint32_t>(rp.logs.size()));
  for (const auto& l : rp.logs) {
    w.str(l.log).u64(l.log_start_offset).u64(l.log_end_offset).u64(l.high_watermark);
    w.u32(static_cast<std::uint32_t>(l.replica_offsets.size()));
    for (const auto o : l.replica_offsets) w.u64(o);
  }
  return w;
}
void decode(Reader& r, StatReply& m) {
  m.daemon_pid = static_cast<std::int32_t>(r.u32());
  m.dir = r.str();
  m.uptime_ms = r.u64();
  const auto nc = r.u32();
  if (nc > 65536) bad("stat reply lists too many clients");
  m.clients.resize(nc);
  for (auto& c : m.clients) {
    c.index = r.u32();
    c.pid = static_cast<std::int32_t>(r.u32());
    c.uid = r.u32();
    c.name = r.str();
  }
  const auto nd = r.u32();
  if (nd > 65536) bad("stat reply lists too many destinations");
  m.destinations.resize(nd);
  for (auto& d : m.destinations) {
    d.uri = r.str();
    d.dest_id = r.u32();
    d.capacity = r.u32();
    d.max_message_size = r.u32();
    d.producers = r.u32();
    d.tail = r.u64();
    d.holes_repaired = r.u64();
    d.shm_bytes = r.u64();
    const auto ns = r.u32();
    if (ns > 65536) bad("stat reply lists too many subscribers");
    d.subscribers.resize(ns);
    for (auto& s : d.subscribers) {
      s.consumer_id = r.u32();
      s.client_index = r.u32();
      s.pid = static_cast<std::int32_t>(r.u32());
      s.position = r.u64();
      s.received = r.u64();
      s.lost = r.u64();
      s.acked = r.u64();
      s.ack_mode = r.str();
    }
    d.depth = r.u64();
    d.scheduled = r.u64();
    d.in_flight = r.u64();
    d.redelivered = r.u64();
    d.dead_lettered = r.u64();
    d.expired = r.u64();
    d.ack_timeouts = r.u64();
    d.dropped = r.u64();
    d.dlq = r.str();
    d.temporary = r.u8() != 0;
    d.log_start_offset = r.u64();
    d.log_end_offset = r.u64();
    d.durable_offset = r.u64();
    d.log_segments = r.u64();
    d.log_bytes = r.u64();
    d.persisted = r.u64();
    d.restored = r.u64();
    d.persist_error = r.u32();
    const std::uint32_t nsubs = r.u32();
    for (std::uint32_t k = 0; k < nsubs; ++k) {
      DurableSubscriptionStats s;
      s.name = r.str();
      s.position = r.u64();
      s.active = r.u8() != 0;
      d.durable_subscriptions.push_back(std::move(s));
    }
  }
  ReplicationStats& rp = m.replication;
  rp.role = r.str();
  rp.epoch = r.u32();
  rp.self = r.str();
  rp.leader = r.str();
  rp.connected = r.u8() != 0;
  rp.min_insync = r.u32();
  rp.bytes = r.u64();
  const auto ni = r.u32();
  if (ni > 4096) bad("stat reply lists too many in-sync replicas");
  for (std::uint32_t i = 0; i < ni; ++i) rp.in_sync.push_back(r.str());
  const auto nr = r.u32();
  if (nr > 4096) bad("stat reply lists too many replicas");
  rp.replicas.resize(nr);
  for (auto& x : rp.replicas) {
    x.address = r.str();
    x.connected = r.u8() != 0;
    x.in_sync = r.u8() != 0;
    x.lag = r.u64();
    x.caught_up_ms_ago = r.u64();
    x.bytes = r.u64();
  }
  const auto nl = r.u32();
  if (nl > 1U << 20) bad("stat reply lists too many logs");
  rp.logs.resize(nl);
  for (auto& l : rp.logs) {
    l.log = r.str();
    l.log_start_offset = r.u64();
    l.log_end_offset = r.u64();
    l.high_watermark = r.u64();
    const auto no = r.u32();
    if (no > nr) bad("stat reply: a log lists more replica offsets than replicas");
    for (std::uint32_t i = 0; i < no; ++i) l.replica_offsets.push_back(r.u64());
  }
}
Writer encode(const CreateTemp& m) {
  Writer w;
  w.u8(m.kind).u32(m.capacity).u32(m.max_message_size).u32(m.max_deliveries).u64(m.redelivery_delay_ns);
  return w;
}
void decode(Reader& r, CreateTemp& m) {
  m.kind = r.u8();
  m.capacity = r.u32();
  m.max_message_size = r.u32();
  m.max_deliveries = r.u32();
  m.redelivery_delay_ns = r.u64();
}
Writer encode(const TempOk& m) {
  Writer w;
  w.u32(m.dest_id).str(m.name);
  return w;
}
void decode(Reader& r, TempOk& m) {
  m.dest_id = r.u32();
  m.name = r.str();
}
Writer encode(const DeleteTemp& m) {
  Writer w;
  w.u8(m.kind).str(m.name);
  return w;
}
void decode(Reader& r, DeleteTemp& m) {
  m.kind = r.u8();
  m.name = r.str();
}

}  // namespace shmbus::control
