// The conductor's request handlers: hello, open destination, close endpoint, stat.
#include "common/paths.hpp"
#include "conductor.hpp"
#include "log.hpp"
#include "shmbus/shmbus.hpp"

#include <algorithm>
#include <cstring>
#include <unistd.h>

namespace shmbus::daemon {

using control::MsgType;

void Conductor::reply(Client& c, MsgType t, const control::Writer& w, std::uint32_t id) {
  if (!control::send_all(c.fd.get(), w.frame(t, id))) c.closing = true;
}

void Conductor::reply_error(Client& c, ErrorCode code, const std::string& msg, std::uint32_t id) {
  reply(c, MsgType::Error, control::encode(control::ErrorReply{code, msg}), id);
}

void Conductor::handle_frame(Client& c, const control::FrameHeader& h, const std::vector<std::uint8_t>& body) {
  try {
    if (!c.index && h.type != MsgType::Hello)
      throw Error(ErrorCode::ProtocolError, "the first control message must be hello");
    control::Reader r(body);
    switch (h.type) {
      case MsgType::Hello: return on_hello(c, body, h.request_id);
      case MsgType::OpenDest: return on_open(c, body, h.request_id);
      case MsgType::CloseEndpoint: return on_close(c, body, h.request_id);
      case MsgType::Stat: return on_stat(c, h.request_id);
      case MsgType::CreateTemp: return on_create_temp(c, body, h.request_id);
      case MsgType::DeleteTemp: return on_delete_temp(c, body, h.request_id);
      case MsgType::CommitPosition: return on_commit_position(c, body, h.request_id);
      case MsgType::Unsubscribe: return on_unsubscribe(c, body, h.request_id);
      case MsgType::Promote: return on_promote(c, h.request_id);
      case MsgType::Detach:
        c.closing = true;
        c.close_reason = "detached";
        return;
      default: throw Error(ErrorCode::ProtocolError, "message type " + std::to_string(static_cast<int>(h.type)) + " is a reply, not a request");
    }
  } catch (const Error& e) {
    const bool fatal = e.code() == ErrorCode::ProtocolError || e.code() == ErrorCode::VersionMismatch ||
                       (e.code() == ErrorCode::LimitExceeded && !c.index);
    (fatal ? warn : info)(describe(c) + ": " + to_string(e.code()) + ": " + e.what() +
                          (fatal ? "; closing that connection" : ""));
    reply_error(c, e.code(), e.what(), h.request_id);
    if (fatal) c.closing = true;
  }
}

void Conductor::on_hello(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id) {
  if (c.index) throw Error(ErrorCode::ProtocolError, "hello sent twice on one connection");
  control::Reader r(body);
  control::Hello m;
  control::decode(r, m);
  if (m.protocol_version != control::kProtocolVersion)
    throw Error(ErrorCode::VersionMismatch, "control protocol version mismatch: client speaks " +
                                                std::to_string(m.protocol_version) + ", shmbusd speaks " +
                                                std::to_string(control::kProtocolVersion) +
                                                "; use a client and daemon from the same release");
  if (m.layout_version != layout::kLayoutVersion)
    throw Error(ErrorCode::VersionMismatch, "shared-memory layout version mismatch: client uses " +
                                                std::to_string(m.layout_version) + ", shmbusd uses " +
                                                std::to_string(layout::kLayoutVersion) +
                                                "; use a client and daemon from the same release");
  if (free_indices_.empty())
    throw Error(ErrorCode::LimitExceeded, "shmbusd already has " + std::to_string(cfg_.max_clients) +
                                              " clients attached (start it with a larger --max-clients)");
  const auto idx = free_indices_.back();
  free_indices_.pop_back();
  c.index = idx;
  c.name = m.client_name.substr(0, 47);
  auto& e = layout::client_table(region_)[idx];
  e.pid = c.pid;
  std::memset(e.name, 0, sizeof e.name);
  std::memcpy(e.name, c.name.data(), c.name.size());
  // Release: pid and name are visible to whoever sees Attached.
  e.state.store(static_cast<std::uint32_t>(layout::ClientState::Attached), std::memory_order_release);
  control::HelloOk ok;
  ok.client_index = idx;
  ok.generation = e.generation.load(std::memory_order_relaxed);
  ok.region_shm = region_shm_.name();
  ok.region_size = region_shm_.size();
  ok.daemon_pid = ::getpid();
  info(describe(c) + " attached (uid " + std::to_string(c.uid) + ")");
  reply(c, MsgType::HelloOk, control::encode(ok), id);
}

Conductor::Dest* Conductor::find_dest(std::uint32_t dest_id) {
  for (auto& [uri, d] : dests_)
    if (d.id == dest_id) return &d;
  return nullptr;
}

namespace {
/// OpenDest's fsync fields as FsyncPolicy::parse spells them ("" = the daemon's --fsync).
std::string fsync_spec(std::uint8_t mode, std::uint32_t value) {
  switch (static_cast<shmbus::FsyncPolicy::Mode>(mode)) {
    case shmbus::FsyncPolicy::Mode::Never: return "never";
    case shmbus::FsyncPolicy::Mode::Always: return "always";
    case shmbus::FsyncPolicy::Mode::Interval: return "interval:" + std::to_string(value);
    case shmbus::FsyncPolicy::Mode::EveryN: return "every:" + std::to_string(value);
    case shmbus::FsyncPolicy::Mode::Daemon: break;
  }
  return {};
}
/// The reverse, for a queue re-created from its queue.meta.
void fsync_fields(const std::string& spec, control::OpenDest& m) {
  FsyncPolicy p;
  if (spec.empty() || !FsyncPolicy::parse(spec, p)) return;
  using M = FsyncPolicy::Mode;
  using P = shmbus::FsyncPolicy::Mode;
  const P mode = p.mode == M::Never ? P::Never : p.mode == M::Always ? P::Always : p.mode == M::EveryN ? P::EveryN : P::Interval;
  m.fsync_mode = static_cast<std::uint8_t>(mode);
  m.fsync_value = static_cast<std::uint32_t>(mode == P::EveryN ? p.every : p.interval_ns / 1'000'000);
}
}  // namespace

Conductor::Dest& Conductor::create_queue(const std::string& uri, const std::string& name, const control::OpenDest& m) {
  if (m.fsync_mode > static_cast<std::uint8_t>(shmbus::FsyncPolicy::Mode::Always) ||
      ((m.fsync_mode == static_cast<std::uint8_t>(shmbus::FsyncPolicy::Mode::Interval) ||
        m.fsync_mode == static_cast<std::uint8_t>(shmbus::FsyncPolicy::Mode::EveryN)) &&
       (m.fsync_value < 1 || m.fsync_value > 3'600'000)))
    throw Error(ErrorCode::InvalidArgument, "fsync policy " + std::to_string(m.fsync_mode) + "/" +
                                                std::to_string(m.fsync_value) + " is out of range");
  if (m.capacity < layout::kMinQueueSlots || m.capacity > layout::kMaxQueueSlots || (m.capacity & (m.capacity - 1)) != 0)
    throw Error(ErrorCode::InvalidArgument, "queue capacity " + std::to_string(m.capacity) + " must be a power of two in [" +
                                                std::to_string(layout::kMinQueueSlots) + ", " +
                                                std::to_string(layout::kMaxQueueSlots) + "]");
  if (m.max_message_size < 1 || m.max_message_size > layout::kMaxPayload)
    throw Error(ErrorCode::InvalidArgument, "max message size " + std::to_string(m.max_message_size) +
                                                " must be in [1, " + std::to_string(layout::kMaxPayload) + "]");
  if (m.max_deliveries > layout::QWord::kMaxCount)
    throw Error(ErrorCode::InvalidArgument, "max deliveries " + std::to_string(m.max_deliveries) + " must be at most " +
                                                std::to_string(layout::QWord::kMaxCount));
  const auto g = layout::queue_geometry(m.capacity, m.max_message_size);
  if (g.total > layout::kMaxTopicBytes)
    throw Error(ErrorCode::LimitExceeded, uri + " would need " + std::to_string(g.total) + " bytes of shared memory (" +
                                              std::to_string(m.capacity) + " slots x " + std::to_string(g.slot_size) +
                                              " bytes); the limit is 4 GiB: lower capacity or max message size");
  Dest d;
  d.id = next_dest_id_++;
  d.uri = uri;
  d.name = name;
  d.queue = true;
  d.shm = std::make_shared<OwnedShm>(common::dest_shm_name(cfg_.dir, d.id), g.total);
  ring::QueueConfig qc;
  qc.slot_count = m.capacity;
  qc.max_payload = m.max_message_size;
  qc.dest_id = d.id;
  qc.max_deliveries = m.max_deliveries;
  qc.redelivery_delay_ns = m.redelivery_delay_ns;
  qc.flags = m.queue_flags & (layout::kQueueDlqEnabled | layout::kQueueExpiredToDlq | layout::kQueueIsDlq | layout::kQueueReadCommitted);
  qc.name = name;
  if (!ring::QueueRing::init(d.shm->base(), d.shm->size(), qc))
    throw Error(ErrorCode::Internal, uri + ": the queue layout could not be initialised");
  d.qring = ring::QueueRing(d.shm->base());
  d.subscriber_owner.assign(layout::kQueueMaxConsumers, -1);
  d.producer_owner.assign(layout::kQueueMaxProducers, -1);
  janitor_.inbox().enqueue(QueueCreated{d.id, uri, d.shm});
  // Temporary queues are never persisted (JMS: they do not outlive their connection).
  if (persist_ != nullptr && name.rfind(control::kTempPrefix, 0) != 0)
    persist_->post(PersistQueue{d.id, name, d.qring, d.shm, fsync_spec(m.fsync_mode, m.fsync_value)});
  info("created " + uri + ": " + std::to_string(m.capacity) + " messages x " + std::to_string(m.max_message_size) +
       " bytes max (" + std::to_string(g.total >> 10) + " KiB shared memory), max deliveries " +
       (m.max_deliveries ? std::to_string(m.max_deliveries) : std::string("unlimited")) +
       ((qc.flags & layout::kQueueIsDlq) ? ", dead-letter queue" : ""));
  return dests_.emplace(uri, std::move(d)).first->second;
}

void Conductor::create_dlq(std::uint32_t dest_id) {
  Dest* q = find_dest(dest_id);
  if (q == nullptr || !q->queue) return;
  std::uint32_t dlq_id = 0;
  try {
    control::OpenDest m;
    m.kind = static_cast<std::uint8_t>(Destination::Kind::Queue);
    m.capacity = q->qring.slot_count();
    m.max_message_size = q->qring.max_payload();
    m.queue_flags = layout::kQueueIsDlq;
    const std::string name = "DLQ." + q->name;
    const std::string uri = "queue://" + name;
    dlq_id = find_or_create(uri, name, m).id;
  } catch (const Error& e) {
    warn(q->uri + ": its dead-letter queue could not be created (" + e.what() + "); dead letters are dropped");
  }
  janitor_.inbox().enqueue(DlqReady{dest_id, dlq_id});
}

Conductor::Dest& Conductor::find_or_create(const std::string& uri, const std::string& name, const control::OpenDest& m) {
  if (auto it = dests_.find(uri); it != dests_.end()) return it->second;
  if (m.kind == static_cast<std::uint8_t>(Destination::Kind::Queue)) return create_queue(uri, name, m);
  if (m.capacity < layout::kMinSlots || m.capacity > layout::kMaxSlots || (m.capacity & (m.capacity - 1)) != 0)
    throw Error(ErrorCode::InvalidArgument, "capacity " + std::to_string(m.capacity) + " must be a power of two in [" +
                                                std::to_string(layout::kMinSlots) + ", " + std::to_string(layout::kMaxSlots) + "]");
  if (m.max_message_size < 1 || m.max_message_size > layout::kMaxPayload)
    throw Error(ErrorCode::InvalidArgument, "max message size " + std::to_string(m.max_message_size) +
                                                " must be in [1, " + std::to_string(layout::kMaxPayload) + "]");
  const auto size = layout::topic_size(m.capacity, m.max_message_size, layout::kMaxSubscribers, layout::kMaxProducers);
  if (size > layout::kMaxTopicBytes)
    throw Error(ErrorCode::LimitExceeded, uri + " would need " + std::to_string(size) + " bytes of shared memory (" +
                                              std::to_string(m.capacity) + " slots x " +
                                              std::to_string(layout::slot_size_for(m.max_message_size)) +
                                              " bytes); the limit is 4 GiB: lower capacity or max message size");
  Dest d;
  d.id = next_dest_id_++;
  d.uri = uri;
  d.shm = std::make_shared<OwnedShm>(common::dest_shm_name(cfg_.dir, d.id), size);
  auto* h = static_cast<layout::TopicHeader*>(d.shm->base());
  h->magic = layout::kTopicMagic;
  h->kind = 1;
  h->total_length = size;
  h->slot_count = m.capacity;
  h->slot_size = layout::slot_size_for(m.max_message_size);
  h->max_payload = m.max_message_size;
  h->dest_id = d.id;
  h->max_subscribers = layout::kMaxSubscribers;
  h->max_producers = layout::kMaxProducers;
  std::memcpy(h->name, name.data(), std::min(name.size(), sizeof h->name - 1));
  // SYNC: release pairs with check_topic()'s acquire; the config block above is complete first.
  h->layout_version.store(layout::kLayoutVersion, std::memory_order_release);
  d.ring = ring::TopicRing(h);
  d.subscriber_owner.assign(layout::kMaxSubscribers, -1);
  d.producer_owner.assign(layout::kMaxProducers, -1);
  janitor_.inbox().enqueue(TopicCreated{d.id, uri, d.shm});
  info("created " + uri + ": " + std::to_string(m.capacity) + " slots x " + std::to_string(m.max_message_size) +
       " bytes max message (" + std::to_string(size >> 10) + " KiB shared memory)");
  return dests_.emplace(uri, std::move(d)).first->second;
}

void Conductor::check_leader() const {
  if (repl_ == nullptr || repl_->role() == repl::NodeRole::Leader) return;
  if (repl_->role() == repl::NodeRole::Fenced)
    throw Error(ErrorCode::NotLeader, "this shmbusd was fenced: a newer leader (" + repl_->leader() +
                                          ") took over; restart it to follow, and attach to the leader");
  throw Error(ErrorCode::NotLeader, "this shmbusd is a replication follower of " + repl_->leader() +
                                        ": producers and consumers attach to the leader (or run `shmbus promote` here)");
}

void Conductor::on_promote(Client& c, std::uint32_t id) {
  if (repl_ == nullptr)
    throw Error(ErrorCode::InvalidArgument, "this shmbusd does not replicate: there is nothing to promote (start it with --follow)");
  std::uint32_t epoch = 0;
  std::string err;
  if (!repl_->promote(epoch, err)) throw Error(ErrorCode::InvalidArgument, "cannot promote: " + err);
  // The logs are the persistence agent's now: the queues and topics come back as after a restart.
  restore_stored_queues();
  restore_durable_topics();
  control::Writer w;
  w.u32(epoch);
  reply(c, MsgType::PromoteOk, w, id);
}

void Conductor::on_open(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id) {
  check_leader();
  control::Reader r(body);
  control::OpenDest m;
  control::decode(r, m);
  const bool queue = m.kind == static_cast<std::uint8_t>(Destination::Kind::Queue);
  if (!queue && m.kind != static_cast<std::uint8_t>(Destination::Kind::Topic))
    throw Error(ErrorCode::BadDestination, "unknown destination kind " + std::to_string(m.kind));
  if (!queue && m.role == control::Role::DurableSubscriber) return on_open_durable(c, m, id);
  if (m.role != control::Role::Producer && m.role != control::Role::Consumer && !(queue && m.role == control::Role::Browser))
    throw Error(ErrorCode::ProtocolError, "unknown endpoint role " + std::to_string(static_cast<int>(m.role)));
  // Validates the name (queues: at most 60 characters, so that DLQ.NAME is a name too).
  const auto dest = Destination::parse((queue ? "queue://" : "topic://") + m.name);
  if (queue && m.ack_mode > static_cast<std::uint8_t>(AckMode::Transacted))
    throw Error(ErrorCode::InvalidArgument, "unknown acknowledgement mode " + std::to_string(m.ack_mode));
  // A temporary name is never created here: the one it named was deleted (or never existed), and
  // opening it must not silently make an ordinary destination nobody will ever consume from.
  if (dest.name().starts_with(control::kTempPrefix) && !dests_.contains(dest.uri()))
    throw Error(ErrorCode::BadDestination, "temporary destination " + dest.uri() +
                                               " no longer exists (its connection closed or it was removed; names "
                                               "starting with TMP. are reserved for temporary destinations)");
  Dest& d = find_or_create(dest.uri(), dest.name(), m);
  if (d.queue != queue)
    throw Error(ErrorCode::BadDestination, "'" + dest.uri() + "' exists as another kind of destination");
  if (d.temporary && m.role != control::Role::Producer && d.temp_owner != static_cast<std::int64_t>(*c.index))
    throw Error(ErrorCode::PermissionDenied, dest.uri() + " is a temporary destination of another connection (client " +
                                                 std::to_string(d.temp_owner) +
                                                 "): only the connection that created it may consume from or browse it; "
                                                 "others may only produce to it");
  Endpoint e;
  e.dest_id = d.id;
  d.unused_since_ns = 0;
  e.role = m.role;
  control::OpenOk ok;
  ok.dest_id = d.id;
  ok.shm_name = d.shm->name();
  ok.shm_size = d.shm->size();
  if (m.role == control::Role::Browser) {  // maps the queue; no entry, nothing to close
    ok.entry_index = 0;
    ok.endpoint_id = 0;
    reply(c, MsgType::OpenOk, control::encode(ok), id);
    return;
  }
  const bool consumer = m.role == control::Role::Consumer;
  auto& owners = consumer ? d.subscriber_owner : d.producer_owner;
  std::uint32_t idx = 0;
  while (idx < owners.size() && owners[idx] != -1) ++idx;  // -2: still being reclaimed
  if (idx == owners.size())
    throw Error(ErrorCode::LimitExceeded, d.uri + " already has " + std::to_string(owners.size()) +
                                              (consumer ? (d.queue ? " consumers" : " subscribers") : " producers") +
                                              " (the per-destination limit)");
  owners[idx] = *c.index;
  e.entry_index = idx;
  e.endpoint_id = next_endpoint_id_++;
  ok.entry_index = idx;
  if (d.queue) {
    open_queue_entry(c, d, m, e, ok);
  } else if (consumer) {
    auto* se = d.ring.subscriber(idx);
    // Acquire: the subscriber starts at a tail at least as new as any claim made before now.
    const auto start = d.ring.header().tail.load(std::memory_order_acquire);
    se->client_index = *c.index;
    se->consumer_id = e.endpoint_id;
    se->position.store(start, std::memory_order_relaxed);
    se->lost.store(0, std::memory_order_relaxed);
    se->received.store(0, std::memory_order_relaxed);
    se->parked.store(0, std::memory_order_relaxed);
    // Release: the fields above are visible to whoever sees state 1 (janitor, stat).
    se->state.store(1, std::memory_order_release);
    ok.start_position = start;
  } else {
    auto* pe = d.ring.producer(idx);
    pe->client_index = *c.index;
    pe->producer_id = e.endpoint_id;
    pe->claim_seq.store(layout::kClaimIdle, std::memory_order_relaxed);
    // Release: as above, for the janitor's live-claimer check.
    pe->state.store(1, std::memory_order_release);
  }
  ok.endpoint_id = e.endpoint_id;
  c.endpoints.push_back(e);
  info(describe(c) + " opened " + (m.role == control::Role::Producer ? "producer " : "consumer ") +
       std::to_string(e.endpoint_id) + " on " + d.uri);
  reply(c, MsgType::OpenOk, control::encode(ok), id);
}

void Conductor::open_queue_entry(Client& c, Dest& d, const control::OpenDest& m, Endpoint& e, control::OpenOk& ok) {
  (void)ok;
  if (m.role == control::Role::Consumer) {
    auto* ce = d.qring.consumer(e.entry_index);
    ce->client_index = *c.index;
    ce->consumer_id = e.endpoint_id;
    ce->ack_mode = m.ack_mode;
    ce->ack_timeout_ns = m.ack_timeout_ns;
    // Relaxed: published by the release store of state below.
    ce->held.store(layout::kQueueNoSlot, std::memory_order_relaxed);
    ce->fifo_head.store(0, std::memory_order_relaxed);
    ce->fifo_tail.store(0, std::memory_order_relaxed);
    ce->received.store(0, std::memory_order_relaxed);
    ce->acked.store(0, std::memory_order_relaxed);
    ce->parked.store(0, std::memory_order_relaxed);
    // Release: the janitor and the ring repair see the fields above with state 1 (live).
    ce->state.store(1, std::memory_order_release);
  } else {
    auto* pe = d.qring.producer(e.entry_index);
    pe->client_index = *c.index;
    pe->producer_id = e.endpoint_id;
    // Relaxed: published by the release store of state below.
    pe->held.store(layout::kQueueNoSlot, std::memory_order_relaxed);
    pe->sent.store(0, std::memory_order_relaxed);
    pe->parked.store(0, std::memory_order_relaxed);
    pe->durable.store(0, std::memory_order_relaxed);
    pe->durable_waiters.store(0, std::memory_order_relaxed);
    // Release: as above.
    pe->state.store(1, std::memory_order_release);
  }
}

void Conductor::on_close(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id) {
  control::Reader r(body);
  control::CloseEndpoint m;
  control::decode(r, m);
  for (auto it = c.endpoints.begin(); it != c.endpoints.end(); ++it) {
    if (it->dest_id == m.dest_id && it->endpoint_id == m.endpoint_id) {
      release_endpoint(c, *it);
      c.endpoints.erase(it);
      reply(c, MsgType::CloseOk, control::Writer{}, id);
      return;
    }
  }
  throw Error(ErrorCode::InvalidArgument, "no endpoint " + std::to_string(m.endpoint_id) + " on destination " +
                                              std::to_string(m.dest_id) + " belongs to this client");
}

void Conductor::on_stat(Client& c, std::uint32_t id) {
  control::StatReply s;
  s.daemon_pid = ::getpid();
  s.dir = cfg_.dir;
  s.uptime_ms = (common::mono_ns() - started_ns_) / 1'000'000;
  if (repl_ != nullptr) s.replication = repl_->stats();
  std::map<std::uint32_t, int> pid_of;
  for (const auto& [fd, cl] : clients_) {
    if (!cl.index) continue;
    s.clients.push_back({*cl.index, cl.pid, cl.uid, cl.name});
    pid_of[*cl.index] = cl.pid;
  }
  for (const auto& [uri, d] : dests_) {
    if (d.queue) {
      s.destinations.push_back(queue_stats(d, pid_of));
      continue;
    }
    DestinationStats ds;
    const auto& h = d.ring.header();
    ds.uri = uri;
    ds.dest_id = d.id;
    ds.capacity = h.slot_count;
    ds.max_message_size = h.max_payload;
    ds.producers = static_cast<std::uint32_t>(
        std::count_if(d.producer_owner.begin(), d.producer_owner.end(), [](std::int64_t o) { return o >= 0; }));
    // Relaxed: statistics.
    ds.tail = h.tail.load(std::memory_order_relaxed);
    ds.holes_repaired = h.holes_repaired.load(std::memory_order_relaxed);
    ds.shm_bytes = d.shm->size();
    ds.temporary = d.temporary;
    if (d.figures) {
      // Relaxed: statistics the persistence agent publishes.
      ds.log_start_offset = d.figures->start.load(std::memory_order_relaxed);
      ds.log_end_offset = d.figures->end.load(std::memory_order_relaxed);
      ds.durable_offset = d.figures->durable.load(std::memory_order_relaxed);
      ds.log_segments = d.figures->segments.load(std::memory_order_relaxed);
      ds.log_bytes = d.figures->bytes.load(std::memory_order_relaxed);
      ds.persisted = d.figures->persisted.load(std::memory_order_relaxed);
      ds.persist_error = d.figures->error.load(std::memory_order_relaxed);
    }
    for (const auto& [n, sub] : d.subs) ds.durable_subscriptions.push_back({n, sub.position, sub.owner >= 0});
    for (std::uint32_t i = 0; i < d.subscriber_owner.size(); ++i) {
      if (d.subscriber_owner[i] < 0) continue;
      const auto* se = d.ring.subscriber(i);
      SubscriberStats ss;
      ss.consumer_id = se->consumer_id;
      ss.client_index = static_cast<std::uint32_t>(d.subscriber_owner[i]);
      ss.pid = pid_of[ss.client_index];
      ss.position = se->position.load(std::memory_order_relaxed);
      ss.received = se->received.load(std::memory_order_relaxed);
      ss.lost = se->lost.load(std::memory_order_relaxed);
      ds.subscribers.push_back(ss);
    }
    s.destinations.push_back(std::move(ds));
  }
  reply(c, MsgType::StatOk, control::encode(s), id);
}

void Conductor::on_create_temp(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id) {
  check_leader();
  control::Reader r(body);
  control::CreateTemp m;
  control::decode(r, m);
  const bool queue = m.kind == static_cast<std::uint8_t>(Destination::Kind::Queue);
  if (!queue && m.kind != static_cast<std::uint8_t>(Destination::Kind::Topic))
    throw Error(ErrorCode::BadDestination, "unknown destination kind " + std::to_string(m.kind));
  const std::string scheme = queue ? "queue://" : "topic://";
  std::string name;
  do {  // the counter is daemon-wide and the epoch random: a collision is not expected, but never reuse
    name = control::kTempPrefix + temp_epoch_ + "." + std::to_string(next_temp_++);
  } while (dests_.contains(scheme + name));
  const auto dest = Destination::parse(scheme + name);  // a valid name for every client
  control::OpenDest o;
  o.kind = m.kind;
  o.name = name;
  o.capacity = m.capacity;
  o.max_message_size = m.max_message_size;
  o.max_deliveries = m.max_deliveries;
  o.redelivery_delay_ns = m.redelivery_delay_ns;
  o.queue_flags = 0;  // no dead-letter queue: DLQ.TMP... would outlive it (dead letters are dropped, counted)
  Dest& d = find_or_create(dest.uri(), name, o);  // validates the geometry
  d.temporary = true;
  d.temp_owner = *c.index;
  c.temps.push_back(d.uri);
  info(describe(c) + " created temporary " + d.uri);
  reply(c, MsgType::TempOk, control::encode(control::TempOk{d.id, name}), id);
}

void Conductor::on_delete_temp(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id) {
  control::Reader r(body);
  control::DeleteTemp m;
  control::decode(r, m);
  const bool queue = m.kind == static_cast<std::uint8_t>(Destination::Kind::Queue);
  if (!queue && m.kind != static_cast<std::uint8_t>(Destination::Kind::Topic))
    throw Error(ErrorCode::BadDestination, "unknown destination kind " + std::to_string(m.kind));
  const std::string uri = (queue ? "queue://" : "topic://") + m.name;
  auto it = dests_.find(uri);
  if (it == dests_.end())
    throw Error(ErrorCode::BadDestination, "temporary destination " + uri + " no longer exists");
  Dest& d = it->second;
  if (!d.temporary) throw Error(ErrorCode::BadDestination, uri + " is not a temporary destination");
  if (d.temp_owner != static_cast<std::int64_t>(*c.index))
    throw Error(ErrorCode::PermissionDenied, uri + " is a temporary destination of another connection (client " +
                                                 std::to_string(d.temp_owner) + "): only its connection may remove it");
  // Live consumers only: one closed a moment ago (-2, still being reclaimed) does not count.
  const auto consumers = std::count_if(d.subscriber_owner.begin(), d.subscriber_owner.end(),
                                       [](std::int64_t o) { return o >= 0; });
  if (consumers != 0)
    throw Error(ErrorCode::InvalidArgument, "temporary destination " + uri + " still has " + std::to_string(consumers) +
                                                " consumer(s): close them before removing it");
  remove_temp(it, "removed by its connection");
  std::erase(c.temps, uri);
  reply(c, MsgType::CloseOk, control::Writer{}, id);
}

void Conductor::remove_temp(std::map<std::string, Dest>::iterator it, const std::string& why) {
  Dest& d = it->second;
  std::size_t others = 0;  // endpoints other clients still have on it (producers)
  for (const auto& [fd, cl] : clients_) {
    if (cl.index && static_cast<std::int64_t>(*cl.index) == d.temp_owner) continue;
    others += static_cast<std::size_t>(std::count_if(cl.endpoints.begin(), cl.endpoints.end(),
                                                     [&](const Endpoint& e) { return e.dest_id == d.id; }));
  }
  info("removed temporary " + it->first + " (" + why + "; " + std::to_string(d.shm->size() >> 10) +
       " KiB shared memory freed" +
       (others ? "; " + std::to_string(others) + " producer(s) of other clients get Status::Closed from now on" : std::string()) +
       ")");
  // As in expire_idle_topics: the name goes now; the janitor's mapping until it handles
  // TopicRemoved; a client's until it closes its endpoints. Dest ids are never reused, so a later
  // CloseEndpoint naming this one finds nothing to release and succeeds.
  // Release: producers still attached (other clients) see it on their next send and get
  // Status::Closed; a queue producer parked on a full queue is woken to see it.
  if (d.queue) {
    d.qring.header().removed.store(1, std::memory_order_release);
    d.qring.wake_producers();
  } else {
    d.ring.header().removed.store(1, std::memory_order_release);
  }
  d.shm->unlink();
  janitor_.inbox().enqueue(TopicRemoved{d.id});
  dests_.erase(it);
}

DestinationStats Conductor::queue_stats(const Dest& d, std::map<std::uint32_t, int>& pid_of) const {
  DestinationStats ds;
  const auto& h = d.qring.header();
  ds.uri = d.uri;
  ds.dest_id = d.id;
  ds.capacity = h.slot_count;
  ds.max_message_size = h.max_payload;
  ds.producers = static_cast<std::uint32_t>(
      std::count_if(d.producer_owner.begin(), d.producer_owner.end(), [](std::int64_t o) { return o >= 0; }));
  ds.shm_bytes = d.shm->size();
  ds.temporary = d.temporary;
  for (std::uint32_t i = 0; i < h.slot_count; ++i) {
    // Relaxed: a statistics snapshot; each word is read once.
    const auto st = layout::QWord::state(d.qring.slot(i)->state.load(std::memory_order_relaxed));
    if (st == layout::QState::Ready || st == layout::QState::Scheduled) ++ds.depth;
    if (st == layout::QState::Scheduled) ++ds.scheduled;
    if (st == layout::QState::Delivered) ++ds.in_flight;
  }
  // Relaxed: statistics.
  ds.redelivered = h.redelivered.load(std::memory_order_relaxed);
  ds.dead_lettered = h.dead_lettered.load(std::memory_order_relaxed);
  ds.expired = h.expired.load(std::memory_order_relaxed);
  ds.ack_timeouts = h.ack_timeouts.load(std::memory_order_relaxed);
  ds.dropped = h.dropped.load(std::memory_order_relaxed);
  ds.log_start_offset = h.log_start_offset.load(std::memory_order_relaxed);
  ds.log_end_offset = h.log_end_offset.load(std::memory_order_relaxed);
  ds.durable_offset = h.durable_offset.load(std::memory_order_relaxed);
  ds.log_segments = h.log_segments.load(std::memory_order_relaxed);
  ds.log_bytes = h.log_bytes.load(std::memory_order_relaxed);
  ds.persisted = h.persisted.load(std::memory_order_relaxed);
  ds.restored = h.restored.load(std::memory_order_relaxed);
  ds.persist_error = h.persist_error.load(std::memory_order_relaxed);
  std::uint64_t sent = d.sent_closed;
  for (std::uint32_t i = 0; i < d.producer_owner.size(); ++i)
    if (d.producer_owner[i] >= 0) sent += d.qring.producer(i)->sent.load(std::memory_order_relaxed);
  ds.tail = sent;  // messages sent (made READY or SCHEDULED), cumulative
  if ((h.flags & layout::kQueueDlqEnabled) != 0 && (h.flags & layout::kQueueIsDlq) == 0) ds.dlq = "queue://DLQ." + d.name;
  for (std::uint32_t i = 0; i < d.subscriber_owner.size(); ++i) {
    if (d.subscriber_owner[i] < 0) continue;
    const auto* ce = d.qring.consumer(i);
    SubscriberStats ss;
    ss.consumer_id = ce->consumer_id;
    ss.client_index = static_cast<std::uint32_t>(d.subscriber_owner[i]);
    ss.pid = pid_of[ss.client_index];
    ss.received = ce->received.load(std::memory_order_relaxed);
    ss.acked = ce->acked.load(std::memory_order_relaxed);
    ss.ack_mode = to_string(static_cast<AckMode>(ce->ack_mode));
    ds.subscribers.push_back(ss);
  }
  return ds;
}


void Conductor::restore_stored_queues() {
  for (const auto& sq : PersistenceAgent::stored_queues(cfg_.dir + "/data")) {
    control::OpenDest m;
    m.kind = static_cast<std::uint8_t>(Destination::Kind::Queue);
    m.capacity = sq.meta.capacity;
    m.max_message_size = sq.meta.max_message_size;
    m.max_deliveries = sq.meta.max_deliveries;
    m.redelivery_delay_ns = sq.meta.redelivery_delay_ns;
    m.queue_flags = sq.meta.flags;
    fsync_fields(sq.meta.fsync, m);
    const std::string uri = "queue://" + sq.name;
    try {
      Destination::parse(uri);  // a directory name that is not a valid queue name is not ours
      Dest& d = find_or_create(uri, sq.name, m);
      mark_if_unused(d);
    } catch (const Error& e) {
      warn("stored queue " + uri + " not restored: " + e.what());
    }
  }
}

}  // namespace shmbus::daemon
