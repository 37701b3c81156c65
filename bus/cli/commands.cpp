#include "cli/commands.hpp"

#include "shmbus/shmbus.hpp"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>

namespace shmbus::cli {

namespace {

struct Opts {
  std::optional<std::uint64_t> count;
  std::optional<std::uint64_t> timeout_ms;
  bool json = false;
  std::vector<std::string> positional;
};

bool parse_opts(const std::vector<std::string>& args, Opts& o, bool allow_count, bool allow_timeout, bool allow_json) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if ((a == "--count" && allow_count) || (a == "--timeout" && allow_timeout)) {
      if (i + 1 >= args.size()) {
        std::cerr << "shmbus: " << a << " needs a value\n";
        return false;
      }
      const auto& v = args[++i];
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || v[0] == '-') {
        std::cerr << "shmbus: " << a << " needs a non-negative number, not '" << v << "'\n";
        return false;
      }
      (a == "--count" ? o.count : o.timeout_ms) = n;
    } else if (a == "--json" && allow_json) {
      o.json = true;
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

}  // namespace

int cmd_send(const Common& c, const std::vector<std::string>& args) {
  Opts o;
  if (!parse_opts(args, o, true, false, false)) return kUsage;
  if (o.positional.empty() || o.positional.size() > 2) {
    std::cerr << "shmbus: usage: shmbus send DEST [--count N] [TEXT | -]\n";
    return kUsage;
  }
  const auto dest = Destination::parse(o.positional[0]);
  auto conn = factory(c, "shmbus-send").create_connection();
  auto session = conn.create_session();
  auto producer = session.create_producer(dest, {}, {c.capacity, c.max_size});
  std::uint64_t sent = 0;
  const auto one = [&](std::string_view text) -> bool {
    const auto st = producer.send(text);
    if (st == Status::Ok) return ++sent, true;
    if (st == Status::MessageTooLarge)
      std::cerr << "shmbus: message " << (sent + 1) << " of " << text.size() << " bytes exceeds the max message size "
                << producer.max_message_size() << " of " << dest.uri() << " (fixed when it was created; see --max-size)\n";
    else
      std::cerr << "shmbus: send failed: " << to_string(st) << "\n";
    return false;
  };
  const bool from_stdin = o.positional.size() == 1 || o.positional[1] == "-";
  if (from_stdin) {
    std::string line;
    while ((!o.count || sent < *o.count) && std::getline(std::cin, line))
      if (!one(line)) return kFailed;
  } else {
    const std::uint64_t n = o.count.value_or(1);
    for (std::uint64_t i = 0; i < n; ++i)
      if (!one(o.positional[1])) return kFailed;
  }
  std::cerr << "shmbus: sent " << sent << " message(s) to " << dest.uri() << "\n";
  return kOk;
}

int cmd_recv(const Common& c, const std::vector<std::string>& args) {
  Opts o;
  if (!parse_opts(args, o, true, true, false)) return kUsage;
  if (o.positional.size() != 1) {
    std::cerr << "shmbus: usage: shmbus recv DEST [--count N] [--timeout MS]\n";
    return kUsage;
  }
  const auto dest = Destination::parse(o.positional[0]);
  auto conn = factory(c, "shmbus-recv").create_connection();
  auto session = conn.create_session();
  auto consumer = session.create_consumer(dest, {WaitStrategy::Park, 0}, {c.capacity, c.max_size});
  // Tell a waiting script we are subscribed (stderr, so stdout carries only messages).
  std::cerr << "shmbus: subscribed to " << dest.uri() << "\n";
  const auto timeout = o.timeout_ms ? std::chrono::nanoseconds(std::chrono::milliseconds(*o.timeout_ms))
                                    : std::chrono::nanoseconds(std::chrono::hours(24 * 365));
  std::uint64_t got = 0;
  Message m;
  while (!o.count || got < *o.count) {
    const auto r = consumer.receive(m, timeout);
    if (r.status == Status::Ok) {
      std::fwrite(m.body().data(), 1, m.body().size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
      ++got;
    } else if (r.status == Status::Lapped) {
      std::cerr << "shmbus: lapped: lost " << r.lost << " message(s)\n";
    } else if (r.status == Status::Timeout) {
      std::cerr << "shmbus: no message for " << *o.timeout_ms << " ms; received " << got << "\n";
      return o.count ? kTimeout : kOk;
    } else {
      std::cerr << "shmbus: receive failed: " << to_string(r.status)
                << (r.status == Status::DaemonGone ? " (shmbusd died or shut down)" : "") << "\n";
      return kFailed;
    }
  }
  return kOk;
}

int cmd_stat(const Common& c, const std::vector<std::string>& args) {
  Opts o;
  if (!parse_opts(args, o, false, false, true)) return kUsage;
  if (!o.positional.empty()) {
    std::cerr << "shmbus: usage: shmbus stat [--json]\n";
    return kUsage;
  }
  const BusStats s = factory(c, "shmbus-stat").create_connection().stats();
  if (o.json) {
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
      std::cout << (i ? "," : "") << "{\"name\":\"" << json_escape(d.uri) << "\",\"kind\":\"topic\",\"capacity\":"
                << d.capacity << ",\"max_message_size\":" << d.max_message_size << ",\"shm_bytes\":" << d.shm_bytes
                << ",\"published\":" << d.tail << ",\"producers\":" << d.producers
                << ",\"consumers\":" << d.subscribers.size() << ",\"holes_repaired\":" << d.holes_repaired
                << ",\"subscribers\":[";
      for (std::size_t j = 0; j < d.subscribers.size(); ++j) {
        const auto& ss = d.subscribers[j];
        std::cout << (j ? "," : "") << "{\"consumer_id\":" << ss.consumer_id << ",\"client\":" << ss.client_index
                  << ",\"pid\":" << ss.pid << ",\"position\":" << ss.position
                  << ",\"lag\":" << (d.tail > ss.position ? d.tail - ss.position : 0) << ",\"received\":" << ss.received
                  << ",\"lost\":" << ss.lost << "}";
      }
      std::cout << "]}";
    }
    std::cout << "]}\n";
    return kOk;
  }
  std::cout << "shmbusd pid " << s.daemon_pid << " on " << s.dir << ", up " << s.uptime_ms / 1000 << " s, "
            << s.clients.size() << " client(s)\n";
  if (s.destinations.empty()) std::cout << "no destinations\n";
  for (const auto& d : s.destinations) {
    std::cout << d.uri << "  capacity " << d.capacity << " x " << d.max_message_size << " B  published " << d.tail
              << "  producers " << d.producers << "  consumers " << d.subscribers.size() << "  holes repaired "
              << d.holes_repaired << "\n";
    for (const auto& ss : d.subscribers)
      std::cout << "    consumer " << ss.consumer_id << " (pid " << ss.pid << ")  position " << ss.position << "  lag "
                << (d.tail > ss.position ? d.tail - ss.position : 0) << "  received " << ss.received << "  lost "
                << ss.lost << "\n";
  }
  return kOk;
}

}  // namespace shmbus::cli
