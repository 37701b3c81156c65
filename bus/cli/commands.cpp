#include "cli/commands.hpp"
#include "cli/message_args.hpp"

#include "message/selector.hpp"
#include "shmbus/shmbus.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>

namespace shmbus::cli {

namespace {

/// The options a command accepts (bit set).
enum Allow : unsigned {
  kOptCount = 1U << 0,     // --count N
  kOptTimeout = 1U << 1,   // --timeout MS
  kOptJson = 1U << 2,      // --json
  kOptPriority = 1U << 3,  // --priority 0-9 (sends)
  kOptTtl = 1U << 4,       // --ttl MS (sends)
  kOptDelay = 1U << 5,     // --delay MS (queue sends)
  kOptAck = 1U << 6,       // --ack MODE (queue receives)
  kOptNoAck = 1U << 7,     // --no-ack (queue receives)
  kOptType = 1U << 8,      // --type text|bytes|map|stream (sends)
  kOptProperty = 1U << 9,  // --property K[:TYPE]=V, repeatable (sends)
  kOptCorrelation = 1U << 10,  // --correlation-id ID (sends)
  kOptPersistent = 1U << 11,   // --persistent (sends)
  kOptSelector = 1U << 12,     // --selector EXPR (receives)
  kOptVerbose = 1U << 13,      // --verbose (receives)
  kOptAcks = 1U << 14,         // --acks memory|durable (sends)
  kOptDurable = 1U << 15,      // --durable NAME (topic receives)
};

/// Longest --ttl / --delay: about 31.7 years, far from overflowing a nanosecond deadline.
constexpr std::uint64_t kMaxMillis = 1'000'000'000'000ULL;

struct Opts {
  std::optional<std::uint64_t> count;
  std::optional<std::uint64_t> timeout_ms;
  std::optional<std::uint64_t> priority;
  std::optional<std::uint64_t> ttl_ms;
  std::optional<std::uint64_t> delay_ms;
  std::optional<AckMode> ack;
  bool no_ack = false;
  bool json = false;
  std::optional<BodyKind> type;
  std::vector<std::string> properties;
  std::optional<std::string> correlation_id;
  bool persistent = false;
  std::optional<Acks> acks;
  std::optional<std::string> durable;
  std::optional<std::string> selector;
  bool verbose = false;
  std::vector<std::string> positional;
};

/// A decimal number in [0, max]; false (nothing written) for anything else.
bool parse_u64(const std::string& v, std::uint64_t max, std::uint64_t& out) {
  if (v.empty() || v[0] < '0' || v[0] > '9') return false;  // no sign, no blanks
  errno = 0;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (*end != '\0' || errno == ERANGE || n > max) return false;
  out = n;
  return true;
}

/// The ack modes the CLI offers ("transacted" needs a program: commit/rollback).
std::optional<AckMode> parse_ack(const std::string& v) {
  for (AckMode m : {AckMode::Auto, AckMode::Client, AckMode::DupsOk, AckMode::Individual})
    if (v == to_string(m)) return m;
  return std::nullopt;
}

bool parse_opts(const std::vector<std::string>& args, Opts& o, unsigned allow) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    const auto allowed = [&](Allow f) { return (allow & f) != 0; };
    const bool takes_value = (a == "--count" && allowed(kOptCount)) || (a == "--timeout" && allowed(kOptTimeout)) ||
                             (a == "--priority" && allowed(kOptPriority)) || (a == "--ttl" && allowed(kOptTtl)) ||
                             (a == "--delay" && allowed(kOptDelay)) || (a == "--ack" && allowed(kOptAck)) ||
                             (a == "--type" && allowed(kOptType)) || (a == "--property" && allowed(kOptProperty)) ||
                             (a == "--correlation-id" && allowed(kOptCorrelation)) ||
                             (a == "--selector" && allowed(kOptSelector)) || (a == "--acks" && allowed(kOptAcks)) ||
                             (a == "--durable" && allowed(kOptDurable));
    if (takes_value) {
      if (i + 1 >= args.size()) {
        std::cerr << "shmbus: " << a << " needs a value\n";
        return false;
      }
      const auto& v = args[++i];
      if (a == "--type") {
        o.type = parse_body_kind(v);
        if (!o.type) {
          std::cerr << "shmbus: --type needs one of text, bytes, map, stream, not '" << v << "'\n";
          return false;
        }
      } else if (a == "--property") {
        o.properties.push_back(v);
      } else if (a == "--correlation-id") {
        o.correlation_id = v;
      } else if (a == "--selector") {
        o.selector = v;
      } else if (a == "--durable") {
        o.durable = v;
      } else if (a == "--acks") {
        if (v == "memory") o.acks = Acks::Memory;
        else if (v == "durable") o.acks = Acks::Durable;
        else if (v == "replicated") o.acks = Acks::Replicated;
        else {
          std::cerr << "shmbus: --acks needs memory, durable or replicated, not '" << v << "'\n";
          return false;
        }
      } else if (a == "--ack") {
        o.ack = parse_ack(v);
        if (!o.ack) {
          std::cerr << "shmbus: --ack needs one of auto, client, dups_ok, individual, not '" << v << "'\n";
          return false;
        }
      } else if (a == "--priority") {
        std::uint64_t n = 0;
        if (!parse_u64(v, 9, n)) {
          std::cerr << "shmbus: --priority needs a number from 0 (lowest) to 9 (highest), not '" << v << "'\n";
          return false;
        }
        o.priority = n;
      } else if (a == "--ttl" || a == "--delay") {
        std::uint64_t n = 0;
        if (!parse_u64(v, kMaxMillis, n)) {
          std::cerr << "shmbus: " << a << " needs a number of milliseconds from 0 to " << kMaxMillis << ", not '" << v
                    << "'\n";
          return false;
        }
        (a == "--ttl" ? o.ttl_ms : o.delay_ms) = n;
      } else {
        std::uint64_t n = 0;
        if (!parse_u64(v, ~std::uint64_t{0}, n)) {
          std::cerr << "shmbus: " << a << " needs a non-negative number, not '" << v << "'\n";
          return false;
        }
        (a == "--count" ? o.count : o.timeout_ms) = n;
      }
    } else if (a == "--json" && allowed(kOptJson)) {
      o.json = true;
    } else if (a == "--no-ack" && allowed(kOptNoAck)) {
      o.no_ack = true;
    } else if (a == "--persistent" && allowed(kOptPersistent)) {
      o.persistent = true;
    } else if (a == "--verbose" && allowed(kOptVerbose)) {
      o.verbose = true;
    } else if (a.size() > 1 && a.rfind("--", 0) == 0) {
      std::cerr << "shmbus: unknown option '" << a << "'\n";
      return false;
    } else {
      o.positional.push_back(a);
    }
  }
  return true;
}

ConnectionFactory factory(const Common& c, const char* who) { return ConnectionFactory(c.dir, who); }

bool is_queue(const DestinationStats& d) { return d.uri.rfind("queue://", 0) == 0; }

std::string json_escape(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\', out += static_cast<char>(ch);
    else if (ch < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", ch);
      out += b;
    } else out += static_cast<char>(ch);
  }
  return out;
}

void print_json(const BusStats& s) {
  std::cout << "{\"daemon\":{\"pid\":" << s.daemon_pid << ",\"dir\":\"" << json_escape(s.dir)
            << "\",\"uptime_ms\":" << s.uptime_ms << ",\"clients\":" << s.clients.size() << "},\"clients\":[";
  for (std::size_t i = 0; i < s.clients.size(); ++i) {
    const auto& cl = s.clients[i];
    std::cout << (i ? "," : "") << "{\"index\":" << cl.index << ",\"pid\":" << cl.pid << ",\"uid\":" << cl.uid
              << ",\"name\":\"" << json_escape(cl.name) << "\"}";
  }
  std::cout << "],\"destinations\":[";
  for (std::size_t i = 0; i < s.destinations.size(); ++i) {
    const auto& d = s.destinations[i];
    const bool queue = is_queue(d);
    std::cout << (i ? "," : "") << "{\"name\":\"" << json_escape(d.uri) << "\",\"kind\":\""
              << (queue ? "queue" : "topic") << "\",\"capacity\":" << d.capacity
              << ",\"max_message_size\":" << d.max_message_size << ",\"shm_bytes\":" << d.shm_bytes
              << ",\"temporary\":" << (d.temporary ? "true" : "false");
    if (queue) {
      std::cout << ",\"published\":" << d.tail << ",\"producers\":" << d.producers << ",\"consumers\":" << d.subscribers.size()
                << ",\"depth\":" << d.depth << ",\"scheduled\":" << d.scheduled << ",\"in_flight\":" << d.in_flight
                << ",\"redelivered\":" << d.redelivered << ",\"dead_lettered\":" << d.dead_lettered
                << ",\"expired\":" << d.expired << ",\"ack_timeouts\":" << d.ack_timeouts
                << ",\"dropped\":" << d.dropped << ",\"dlq\":\"" << json_escape(d.dlq) << "\""
                << ",\"log_start_offset\":" << d.log_start_offset << ",\"log_end_offset\":" << d.log_end_offset
                << ",\"durable_offset\":" << d.durable_offset << ",\"segments\":" << d.log_segments
                << ",\"log_bytes\":" << d.log_bytes << ",\"persisted\":" << d.persisted << ",\"restored\":" << d.restored
                << ",\"persist_error\":\"" << (d.persist_error ? std::strerror(static_cast<int>(d.persist_error)) : "") << "\"";
    } else {
      std::cout << ",\"published\":" << d.tail << ",\"producers\":" << d.producers
                << ",\"consumers\":" << d.subscribers.size() << ",\"holes_repaired\":" << d.holes_repaired;
      if (!d.durable_subscriptions.empty()) {
        std::cout << ",\"log_start_offset\":" << d.log_start_offset << ",\"log_end_offset\":" << d.log_end_offset
                  << ",\"durable_offset\":" << d.durable_offset << ",\"segments\":" << d.log_segments
                  << ",\"log_bytes\":" << d.log_bytes << ",\"persisted\":" << d.persisted
                  << ",\"persist_error\":\"" << (d.persist_error ? std::strerror(static_cast<int>(d.persist_error)) : "")
                  << "\",\"durable_subscriptions\":[";
        for (std::size_t k = 0; k < d.durable_subscriptions.size(); ++k) {
          const auto& s2 = d.durable_subscriptions[k];
          std::cout << (k ? "," : "") << "{\"name\":\"" << json_escape(s2.name) << "\",\"position\":" << s2.position
                    << ",\"lag\":" << (d.log_end_offset > s2.position ? d.log_end_offset - s2.position : 0)
                    << ",\"active\":" << (s2.active ? "true" : "false") << "}";
        }
        std::cout << "]";
      }
    }
    std::cout << ",\"subscribers\":[";
    for (std::size_t j = 0; j < d.subscribers.size(); ++j) {
      const auto& ss = d.subscribers[j];
      std::cout << (j ? "," : "") << "{\"consumer_id\":" << ss.consumer_id << ",\"client\":" << ss.client_index
                << ",\"pid\":" << ss.pid;
      if (queue)
        std::cout << ",\"received\":" << ss.received << ",\"acked\":" << ss.acked << ",\"ack_mode\":\""
                  << json_escape(ss.ack_mode) << "\"}";
      else
        std::cout << ",\"position\":" << ss.position << ",\"lag\":" << (d.tail > ss.position ? d.tail - ss.position : 0)
                  << ",\"received\":" << ss.received << ",\"lost\":" << ss.lost << "}";
    }
    std::cout << "]}";
  }
  const ReplicationStats& r = s.replication;
  std::cout << "],\"replication\":{\"role\":\"" << json_escape(r.role) << "\",\"epoch\":" << r.epoch << ",\"self\":\""
            << json_escape(r.self) << "\",\"leader\":\"" << json_escape(r.leader) << "\",\"connected\":"
            << (r.connected ? "true" : "false") << ",\"min_insync\":" << r.min_insync << ",\"bytes\":" << r.bytes
            << ",\"in_sync\":[";
  for (std::size_t i = 0; i < r.in_sync.size(); ++i) std::cout << (i ? "," : "") << "\"" << json_escape(r.in_sync[i]) << "\"";
  std::cout << "],\"replicas\":[";
  for (std::size_t i = 0; i < r.replicas.size(); ++i) {
    const auto& x = r.replicas[i];
    std::cout << (i ? "," : "") << "{\"address\":\"" << json_escape(x.address) << "\",\"connected\":"
              << (x.connected ? "true" : "false") << ",\"in_sync\":" << (x.in_sync ? "true" : "false") << ",\"lag\":" << x.lag
              << ",\"caught_up_ms_ago\":" << x.caught_up_ms_ago << ",\"bytes\":" << x.bytes << "}";
  }
  std::cout << "],\"logs\":[";
  for (std::size_t i = 0; i < r.logs.size(); ++i) {
    const auto& l = r.logs[i];
    std::cout << (i ? "," : "") << "{\"log\":\"" << json_escape(l.log) << "\",\"log_start_offset\":" << l.log_start_offset
              << ",\"log_end_offset\":" << l.log_end_offset << ",\"high_watermark\":" << l.high_watermark
              << ",\"replica_offsets\":{";
    for (std::size_t k = 0; k < l.replica_offsets.size() && k < r.replicas.size(); ++k)
      std::cout << (k ? "," : "") << "\"" << json_escape(r.replicas[k].address) << "\":" << l.replica_offsets[k];
    std::cout << "}}";
  }
  std::cout << "]}}\n";
}

void print_replication(const ReplicationStats& r) {
  if (r.role == "standalone") return;
  std::cout << "replication: " << r.role << "  epoch " << r.epoch << "  self " << r.self;
  if (r.role == "follower") {
    std::cout << "  leader " << r.leader << (r.connected ? " (fetching)" : " (not connected)") << "  fetched " << r.bytes
              << " B\n";
    for (const auto& l : r.logs)
      std::cout << "    " << l.log << "  offsets " << l.log_start_offset << ".." << l.log_end_offset << "  leader's high watermark "
                << l.high_watermark << "\n";
    return;
  }
  std::cout << "  min in-sync " << r.min_insync << "  in-sync set {";
  for (std::size_t i = 0; i < r.in_sync.size(); ++i) std::cout << (i ? ", " : "") << r.in_sync[i];
  std::cout << "}\n";
  for (const auto& x : r.replicas)
    std::cout << "    replica " << x.address << (x.connected ? "  connected" : "  DISCONNECTED") << (x.in_sync ? "  in sync" : "  NOT IN SYNC")
              << "  lag " << x.lag << " records  caught up " << x.caught_up_ms_ago << " ms ago  sent " << x.bytes << " B\n";
  for (const auto& l : r.logs) {
    std::cout << "    " << l.log << "  offsets " << l.log_start_offset << ".." << l.log_end_offset << "  high watermark "
              << l.high_watermark;
    for (std::size_t k = 0; k < l.replica_offsets.size() && k < r.replicas.size(); ++k)
      std::cout << "  " << r.replicas[k].address << "@" << l.replica_offsets[k];
    std::cout << "\n";
  }
}

void print_text(const BusStats& s) {
  std::cout << "shmbusd pid " << s.daemon_pid << " on " << s.dir << ", up " << s.uptime_ms / 1000 << " s, "
            << s.clients.size() << " client(s)\n";
  print_replication(s.replication);
  if (s.destinations.empty()) std::cout << "no destinations\n";
  for (const auto& d : s.destinations) {
    if (is_queue(d)) {
      std::cout << d.uri << (d.temporary ? " (temporary)" : "") << "  capacity " << d.capacity << " x "
                << d.max_message_size << " B  published " << d.tail << "  depth " << d.depth
                << "  scheduled " << d.scheduled << "  in-flight " << d.in_flight << "  producers " << d.producers
                << "  consumers " << d.subscribers.size() << "  redelivered " << d.redelivered << "  dead-lettered "
                << d.dead_lettered << "  expired " << d.expired << "  ack timeouts " << d.ack_timeouts << "  dropped "
                << d.dropped << "  dlq " << (d.dlq.empty() ? std::string("none") : d.dlq) << "\n";
      if (d.log_end_offset != 0 || d.persist_error != 0)
        std::cout << "    log offsets " << d.log_start_offset << ".." << d.log_end_offset << "  durable " << d.durable_offset
                  << "  segments " << d.log_segments << "  bytes " << d.log_bytes << "  persisted " << d.persisted
                  << "  restored " << d.restored
                  << (d.persist_error ? std::string("  WRITE FAILING: ") + std::strerror(static_cast<int>(d.persist_error)) : std::string())
                  << "\n";
      for (const auto& ss : d.subscribers)
        std::cout << "    consumer " << ss.consumer_id << " (pid " << ss.pid << ")  ack " << ss.ack_mode
                  << "  received " << ss.received << "  acked " << ss.acked << "\n";
      continue;
    }
    std::cout << d.uri << (d.temporary ? " (temporary)" : "") << "  capacity " << d.capacity << " x "
              << d.max_message_size << " B  published " << d.tail << "  producers " << d.producers << "  consumers " << d.subscribers.size() << "  holes repaired "
              << d.holes_repaired << "\n";
    if (!d.durable_subscriptions.empty()) {
      std::cout << "    log offsets " << d.log_start_offset << ".." << d.log_end_offset << "  durable " << d.durable_offset
                << "  segments " << d.log_segments << "  bytes " << d.log_bytes << "  persisted " << d.persisted
                << (d.persist_error ? std::string("  WRITE FAILING: ") + std::strerror(static_cast<int>(d.persist_error)) : std::string())
                << "\n";
      for (const auto& s2 : d.durable_subscriptions)
        std::cout << "    durable subscription " << s2.name << "  position " << s2.position << "  lag "
                  << (d.log_end_offset > s2.position ? d.log_end_offset - s2.position : 0) << (s2.active ? "  (open)" : "")
                  << "\n";
    }
    for (const auto& ss : d.subscribers)
      std::cout << "    consumer " << ss.consumer_id << " (pid " << ss.pid << ")  position " << ss.position << "  lag "
                << (d.tail > ss.position ? d.tail - ss.position : 0) << "  received " << ss.received << "  lost "
                << ss.lost << "\n";
  }
}

}  // namespace

namespace {

DestinationOptions dest_options(const Common& c) {
  DestinationOptions o;
  o.capacity = c.capacity;
  o.max_message_size = c.max_size;
  o.read_committed = c.read_committed;
  return o;
}

std::unique_ptr<OutgoingMessage> make_message(BodyKind k) {
  switch (k) {
    case BodyKind::Bytes: return std::make_unique<BytesMessage>();
    case BodyKind::Map: return std::make_unique<MapMessage>();
    case BodyKind::Stream: return std::make_unique<StreamMessage>();
    case BodyKind::Text: break;
  }
  return std::make_unique<TextMessage>();
}

}  // namespace

int cmd_send(const Common& c, const std::vector<std::string>& args) {
  Opts o;
  if (!parse_opts(args, o,
                  kOptCount | kOptPriority | kOptTtl | kOptDelay | kOptType | kOptProperty | kOptCorrelation |
                      kOptPersistent | kOptAcks))
    return kUsage;
  if (o.positional.empty() || o.positional.size() > 2) {
    std::cerr << "shmbus: usage: shmbus send DEST [--type text|bytes|map|stream] [--property K[:TYPE]=V ...] "
                 "[--correlation-id ID] [--persistent [--acks memory|durable|replicated]] [--priority 0-9] [--ttl MS] [--delay MS] [--count N] "
                 "[TEXT | -]\n";
    return kUsage;
  }
  const auto dest = Destination::parse(o.positional[0]);
  if (o.acks && !o.persistent) {
    std::cerr << "shmbus: --acks is for PERSISTENT messages: add --persistent\n";
    return kUsage;
  }
  if ((o.acks == Acks::Durable || o.acks == Acks::Replicated) && dest.kind() == Destination::Kind::Topic) {
    std::cerr << "shmbus: --acks " << (o.acks == Acks::Durable ? "durable" : "replicated") << " is for queues: " << dest.uri()
              << " is a topic (a topic send returns once it is in the ring; only queues wait for the disk or the replicas)\n";
    return kUsage;
  }
  if (o.delay_ms && dest.kind() == Destination::Kind::Topic) {
    std::cerr << "shmbus: --delay is for queues only: " << dest.uri()
              << " is a topic (topics have no delivery delay)\n";
    return kUsage;
  }
  // The message every TEXT/line is sent in: headers and properties first, all checked before
  // connecting (a bad one sends nothing).
  const BodyKind kind = o.type.value_or(BodyKind::Text);
  const auto msg = make_message(kind);
  for (const auto& p : o.properties) {
    std::string name, err;
    OwnedValue v;
    if (!parse_assignment(p, name, v, err)) {
      std::cerr << "shmbus: --property " << p << ": " << err << "; nothing sent\n";
      return kUsage;
    }
    try {
      msg->set_property(name, v.view());
    } catch (const Error& e) {
      std::cerr << "shmbus: --property " << p << ": " << e.what() << "; nothing sent\n";
      return kUsage;
    }
  }
  if (o.correlation_id) {
    try {
      msg->set_correlation_id(*o.correlation_id);
    } catch (const Error& e) {
      std::cerr << "shmbus: --correlation-id: " << e.what() << "; nothing sent\n";
      return kUsage;
    }
  }
  const bool from_stdin = o.positional.size() == 1 || o.positional[1] == "-";
  if (!from_stdin) {
    std::string err;
    if (!set_body(kind, *msg, o.positional[1], err)) {
      std::cerr << "shmbus: TEXT: " << err << (kind == BodyKind::Text ? " (--type bytes sends it as it is)" : "")
                << "; nothing sent\n";
      return kUsage;
    }
  }
  ProducerOptions popts{};
  if (o.priority) popts.priority = static_cast<std::uint8_t>(*o.priority);
  if (o.ttl_ms) popts.time_to_live = std::chrono::milliseconds(static_cast<std::int64_t>(*o.ttl_ms));
  if (o.delay_ms) popts.delivery_delay = std::chrono::milliseconds(static_cast<std::int64_t>(*o.delay_ms));
  if (o.persistent) popts.delivery_mode = DeliveryMode::Persistent;
  if (o.acks) popts.acks = *o.acks;
  auto conn = factory(c, "shmbus-send").create_connection();
  auto session = conn.create_session();
  auto producer = session.create_producer(dest, popts, dest_options(c));
  std::uint64_t sent = 0;
  const auto one = [&](std::size_t input_size) -> bool {
    const auto st = producer.send(*msg);
    if (st == Status::Ok) return ++sent, true;
    if (st == Status::MessageTooLarge)
      std::cerr << "shmbus: message " << (sent + 1) << " of " << input_size << " bytes (about "
                << msg->encoded_size_hint() + dest.uri().size() << " bytes with its headers and properties) exceeds "
                << "the max message size " << producer.max_message_size() << " of " << dest.uri()
                << " (fixed when it was created; see --max-size); sent " << sent << " message(s)\n";
    else if (st == Status::NotDurable)
      std::cerr << "shmbus: " << dest.uri() << ": the daemon cannot write PERSISTENT messages to disk (see shmbus stat: "
                << "persist_error); sent " << sent << " message(s)\n";
    else if (st == Status::NotReplicated)
      std::cerr << "shmbus: " << dest.uri() << ": not replicated: fewer in-sync replicas than the leader's --min-insync, "
                << "or the high watermark did not pass the message in time (see shmbus stat: replication); sent " << sent
                << " message(s)\n";
    else if (st == Status::QueueFull)
      std::cerr << "shmbus: " << dest.uri() << " is full: no consumer freed a slot within "
                << popts.send_timeout.count() << " ms; sent " << sent << " message(s)\n";
    else
      std::cerr << "shmbus: send failed: " << to_string(st)
                << (st == Status::DaemonGone ? " (shmbusd died or shut down)" : "") << "; sent " << sent
                << " message(s)\n";
    return false;
  };
  if (from_stdin) {
    std::string line, err;
    std::uint64_t line_no = 0;
    while ((!o.count || sent < *o.count) && std::getline(std::cin, line)) {
      ++line_no;
      if (!set_body(kind, *msg, line, err)) {
        std::cerr << "shmbus: line " << line_no << ": " << err
                  << (kind == BodyKind::Text ? " (--type bytes sends lines as they are)" : "") << "; sent " << sent
                  << " message(s) to " << dest.uri() << "\n";
        return kUsage;
      }
      if (!one(line.size())) return kFailed;
    }
  } else {
    const std::uint64_t n = o.count.value_or(1);
    for (std::uint64_t i = 0; i < n; ++i)
      if (!one(o.positional[1].size())) return kFailed;
  }
  std::cerr << "shmbus: sent " << sent << " message(s) to " << dest.uri() << "\n";
  return kOk;
}

int cmd_recv(const Common& c, const std::vector<std::string>& args) {
  Opts o;
  if (!parse_opts(args, o, kOptCount | kOptTimeout | kOptAck | kOptNoAck | kOptSelector | kOptVerbose | kOptDurable))
    return kUsage;
  if (o.positional.size() != 1) {
    std::cerr << "shmbus: usage: shmbus recv DEST [--count N] [--timeout MS] [--selector EXPR] [--verbose] [--ack "
                 "auto|client|dups_ok|individual | --no-ack] [--durable NAME]\n";
    return kUsage;
  }
  if (o.ack && o.no_ack) {
    std::cerr << "shmbus: --ack and --no-ack exclude each other (--no-ack receives in client mode and never "
                 "acknowledges)\n";
    return kUsage;
  }
  const auto dest = Destination::parse(o.positional[0]);
  const bool queue = dest.kind() == Destination::Kind::Queue;
  if (queue && o.durable) {
    std::cerr << "shmbus: --durable: " << dest.uri() << " is a queue; durable subscriptions are for topic://NAME "
              << "(queues keep their messages anyway)\n";
    return kUsage;
  }
  if (!queue && !o.durable && (o.ack || o.no_ack)) {
    std::cerr << "shmbus: " << (o.ack ? "--ack" : "--no-ack") << ": " << dest.uri()
              << " is a topic, and topics have no acknowledgements (only queue://NAME has)\n";
    return kUsage;
  }
  if (o.selector) {
    // Checked before connecting: a syntax error is a usage error, with or without a daemon, and
    // creates nothing.
    try {
      (void)message::Selector::parse(*o.selector);
    } catch (const Error& e) {
      std::cerr << "shmbus: --selector: " << e.what() << "\n";
      return kUsage;
    }
  }
  const AckMode mode = o.no_ack ? AckMode::Client : o.ack.value_or(AckMode::Auto);
  // Client and individual: the CLI acknowledges each message once it is printed (a crash before
  // that means redelivery). --no-ack never does: everything goes back when the CLI exits.
  const bool ack_each = !o.no_ack && (mode == AckMode::Client || mode == AckMode::Individual);
  auto conn = factory(c, "shmbus-recv").create_connection();
  auto session = conn.create_session(mode);
  ConsumerOptions copts;
  copts.wait = WaitStrategy::Park;
  copts.spin_count = 0;
  // A peek holds what it printed until it exits, never past an ack timeout (which would hand the
  // same message to it again).
  if (o.no_ack) copts.ack_timeout = std::chrono::milliseconds(0);
  copts.selector = o.selector.value_or(std::string{});
  auto consumer = o.durable ? session.create_durable_subscriber(Topic(dest.name()), *o.durable, copts, dest_options(c))
                            : session.create_consumer(dest, copts, dest_options(c));
  // Tell a waiting script we are subscribed (stderr, so stdout carries only messages).
  std::cerr << "shmbus: subscribed to " << dest.uri();
  if (o.durable) std::cerr << " as durable subscription '" << *o.durable << "'";
  if (queue || o.durable) std::cerr << " (ack " << (o.no_ack ? "none: --no-ack" : to_string(mode)) << ")";
  if (!copts.selector.empty()) std::cerr << " with selector " << copts.selector;
  std::cerr << "\n";
  const std::string uri = dest.uri();
  const auto timeout = o.timeout_ms ? std::chrono::nanoseconds(std::chrono::milliseconds(*o.timeout_ms))
                                    : std::chrono::nanoseconds(std::chrono::hours(24 * 365));
  std::uint64_t got = 0;
  const auto finish = [&](int code) {
    if (o.no_ack && got > 0)
      std::cerr << "shmbus: " << got << " message(s) not acknowledged (--no-ack): they go back to " << dest.uri()
                << " for redelivery\n";
    return code;
  };
  Message m;
  while (!o.count || got < *o.count) {
    const auto r = consumer.receive(m, timeout);
    if (r.status == Status::Ok) {
      // One write per message: headers (--verbose), the body, a newline (and an empty line
      // closing each --verbose message).
      std::string text = o.verbose ? format_headers(m, uri) : std::string{};
      text += format_body(m);
      text += o.verbose ? "\n\n" : "\n";
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      ++got;
      if (ack_each) {
        const auto st = m.acknowledge();
        if (st == Status::AckTooLate)
          std::cerr << "shmbus: message " << got << " was taken back before it was acknowledged (ack timeout); it will "
                       "be delivered again\n";
        else if (st != Status::Ok) {
          std::cerr << "shmbus: acknowledge failed: " << to_string(st)
                    << (st == Status::DaemonGone ? " (shmbusd died or shut down)" : "") << "\n";
          return kFailed;
        }
      }
    } else if (r.status == Status::Lapped) {
      std::cerr << "shmbus: lapped: lost " << r.lost << " message(s)\n";
    } else if (r.status == Status::Timeout) {
      std::cerr << "shmbus: no message for " << *o.timeout_ms << " ms; received " << got << "\n";
      return finish(o.count ? kTimeout : kOk);
    } else if (r.status == Status::WindowFull && o.no_ack) {
      std::cerr << "shmbus: holding " << got << " unacknowledged message(s), as many as " << dest.uri()
                << " lets one consumer hold; stopping\n";
      return finish(o.count ? kTimeout : kOk);
    } else {
      std::cerr << "shmbus: receive failed: " << to_string(r.status)
                << (r.status == Status::DaemonGone ? " (shmbusd died or shut down)" : "") << "\n";
      return finish(kFailed);
    }
  }
  return finish(kOk);
}

int cmd_stat(const Common& c, const std::vector<std::string>& args) {
  Opts o;
  if (!parse_opts(args, o, kOptJson)) return kUsage;
  if (!o.positional.empty()) {
    std::cerr << "shmbus: usage: shmbus stat [--json]\n";
    return kUsage;
  }
  const BusStats s = factory(c, "shmbus-stat").create_connection().stats();
  if (o.json) print_json(s);
  else print_text(s);
  return kOk;
}

int cmd_promote(const Common& c, const std::vector<std::string>& args) {
  Opts o;
  if (!parse_opts(args, o, 0)) return kUsage;
  if (!o.positional.empty()) {
    std::cerr << "shmbus: usage: shmbus promote [--dir DIR]\n";
    return kUsage;
  }
  const std::uint32_t epoch = factory(c, "shmbus-promote").create_connection().promote();
  std::cout << "promoted: this shmbusd leads now, epoch " << epoch << "\n";
  return kOk;
}

int cmd_unsubscribe(const Common& c, const std::vector<std::string>& args) {
  Opts o;
  if (!parse_opts(args, o, 0)) return kUsage;
  if (o.positional.size() != 2) {
    std::cerr << "shmbus: usage: shmbus unsubscribe topic://NAME SUBSCRIPTION\n";
    return kUsage;
  }
  const auto dest = Destination::parse(o.positional[0]);
  if (dest.kind() != Destination::Kind::Topic) {
    std::cerr << "shmbus: unsubscribe: " << dest.uri() << " is not a topic\n";
    return kUsage;
  }
  auto conn = factory(c, "shmbus-unsubscribe").create_connection();
  conn.create_session().unsubscribe(Topic(dest.name()), o.positional[1]);
  std::cerr << "shmbus: deleted durable subscription '" << o.positional[1] << "' of " << dest.uri() << "\n";
  return 0;
}

}  // namespace shmbus::cli
