#include "report.hpp"

#include "peers.hpp"
#include "scenario_common.hpp"

#include <cstdio>

namespace shmbus::bench {

namespace {

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

/// A mechanism without a single sample (its peer failed in its first round).
bool empty(const MechResult& m) { return m.one_way.max <= 0; }

/// What a mechanism is compared with, like with like: a spinning one with shmbus spinning
/// ("shmbus"), a blocking one with shmbus parking ("shmbus_park"). Null if that was not measured.
const MechResult* shmbus_ref(const Report& r, const MechResult& m) {
  const MechResult* ref = find(r, m.mode == "block" ? "shmbus_park" : "shmbus");
  if (!ref && m.mode == "block") ref = find(r, "shmbus");  // pingpong --wait park: "shmbus" parks
  return ref && ref->mode == m.mode && !empty(*ref) ? ref : nullptr;
}

void add_percentiles(Json& j, const MechResult& m) {
  j.num("p50_ns", m.one_way.p50)
      .num("p90_ns", m.one_way.p90)
      .num("p99_ns", m.one_way.p99)
      .num("p999_ns", m.one_way.p999)
      .num("p9999_ns", m.one_way.p9999)
      .num("max_ns", m.one_way.max)
      .num("min_ns", m.one_way.min)
      .num("rtt_p50_ns", m.rtt.p50)
      .num("rtt_p99_ns", m.rtt.p99)
      .num("rtt_p999_ns", m.rtt.p999)
      .str("mode", m.mode)
      .str("description", m.description)
      .num("seconds", m.seconds, 3);
}

}  // namespace

const MechResult* find(const Report& r, const std::string& key) {
  for (const auto& m : r.mechs)
    if (m.key == key) return &m;
  return nullptr;
}

std::string to_json(const Report& r) {
  const auto* floor = find(r, "floor");
  const auto* bus = find(r, "shmbus");
  Json j;
  j.begin();
  const bool queues = r.args.command == "queue-latency";
  const bool messages = r.args.command == "message-latency";
  j.str("benchmark", r.args.command.ends_with("-latency") ? r.args.command : "pingpong").str("latency", "one-way = RTT/2, ns");
  j.integer("iterations", static_cast<std::int64_t>(r.args.iterations))
      .integer("warmup", static_cast<std::int64_t>(r.args.warmup))
      .integer("rounds", r.args.rounds)
      .integer("size", r.args.size)
      .str("wait", wait_name(r.args.wait))
      .boolean("pinned", r.pinned)
      .str("clock", r.clock.description)
      .num("clock_resolution_ns", r.clock.resolution_ns, 2)
      .str("daemon", r.daemon);
  j.begin("options")
      .boolean("disable_timestamp", true)
      .str("consumer_wait", wait_name(r.args.wait))
      .integer("spin_count", r.args.spin_count)
      .integer("capacity", r.args.capacity)
      .integer("max_message_size", r.args.size);
  if (queues) j.str("queue_ack_modes", r.args.ack);
  j.end();
  // One object per mechanism. ratio_* is to the floor; ratio_shmbus_* to `shmbus_ref` (shmbus in the
  // same mode). A peer that failed has "error"; without any sample it has no figures at all.
  for (const auto& m : r.mechs) {
    j.begin(m.key);
    const std::string failure = peer_failure(m.key);
    if (!failure.empty()) j.str("error", failure);
    if (empty(m)) {
      j.str("mode", m.mode).str("description", m.description).end();
      continue;
    }
    add_percentiles(j, m);
    if (floor && &m != floor && !empty(*floor))
      j.num("ratio_p50", ratio(m.one_way.p50, floor->one_way.p50), 3)
          .num("ratio_p99", ratio(m.one_way.p99, floor->one_way.p99), 3)
          .num("ratio_p999", ratio(m.one_way.p999, floor->one_way.p999), 3);
    if (const auto* ref = shmbus_ref(r, m); ref && ref != &m)
      j.str("shmbus_ref", ref->key)
          .num("ratio_shmbus_p50", ratio(m.one_way.p50, ref->one_way.p50), 3)
          .num("ratio_shmbus_p99", ratio(m.one_way.p99, ref->one_way.p99), 3)
          .num("ratio_shmbus_p999", ratio(m.one_way.p999, ref->one_way.p999), 3);
    j.end();
  }
  if (r.args.command == "compare") {
    const auto missing = missing_peers();
    j.begin("not_built");
    for (const auto& [key, why] : missing) j.str(key, why);
    j.end();
  }
  if (queues && bus && !empty(*bus)) {
    // Each queue ack mode against the topic in the same run and mode (also in its own object as
    // ratio_shmbus_*): queue / topic one-way latency.
    j.begin("queue_vs_topic");
    for (const auto& m : r.mechs) {
      if (!m.key.starts_with("queue_") || empty(m)) continue;
      j.begin(m.key.substr(6))
          .num("ratio_p50", ratio(m.one_way.p50, bus->one_way.p50), 3)
          .num("ratio_p99", ratio(m.one_way.p99, bus->one_way.p99), 3)
          .num("ratio_p999", ratio(m.one_way.p999, bus->one_way.p999), 3)
          .end();
    }
    j.end();
  }
  if (messages && bus && !empty(*bus)) {
    // Each message shape against raw send(bytes) on topics, same run and mode.
    j.begin("message_vs_raw_topic");
    for (const auto& m : r.mechs) {
      if ((!m.key.starts_with("queue_") && !m.key.starts_with("topic_")) || empty(m)) continue;
      j.begin(m.key)
          .num("ratio_p50", ratio(m.one_way.p50, bus->one_way.p50), 3)
          .num("ratio_p99", ratio(m.one_way.p99, bus->one_way.p99), 3)
          .num("ratio_p999", ratio(m.one_way.p999, bus->one_way.p999), 3)
          .end();
    }
    j.end();
  }
  if (floor && bus) {
    j.num("ratio_p50", ratio(bus->one_way.p50, floor->one_way.p50), 3)
        .num("ratio_p99", ratio(bus->one_way.p99, floor->one_way.p99), 3)
        .num("ratio_p999", ratio(bus->one_way.p999, floor->one_way.p999), 3);
  }
  machine_json(j, r.machine);
  j.end();
  return j.text();
}

std::string to_table(const Report& r) {
  std::string s;
  char line[512];
  const auto& m = r.machine;
  std::snprintf(line, sizeof line,
                "shmbus-bench %s: %u-byte messages, %llu round trips in %u alternating rounds (each after %llu "
                "warm-up); one-way latency = RTT/2, ns\n",
                r.args.command.ends_with("-latency") ? r.args.command.c_str() : "pingpong", r.args.size, static_cast<unsigned long long>(r.args.iterations), r.args.rounds,
                static_cast<unsigned long long>(r.args.warmup));
  s += line;
  s += machine_line(m);
  s += "clock   : " + r.clock.description + "\n";
  s += std::string("pinning : ") + (r.pinned ? "ping on CPU 0, pong on CPU 1" : "none") + "\n";
  std::snprintf(line, sizeof line,
                "shmbus  : ProducerOptions{disable_timestamp=true}, ConsumerOptions{wait=%s, spin_count=%u}, "
                "send()/receive(), 2 topics x %u slots\n",
                wait_name(r.args.wait), r.args.spin_count, r.args.capacity);
  s += line;
  if (r.args.command == "queue-latency") {
    std::snprintf(line, sizeof line,
                  "queues  : the same with 2 queues x %u slots per ack mode (%s); client/individual call "
                  "Message::acknowledge() on each message inside the timed round trip, auto acks inside receive()\n",
                  r.args.capacity, r.args.ack.c_str());
    s += line;
  }
  s += "daemon  : " + r.daemon + "\n\n";
  const auto* floor = find(r, "floor");
  std::snprintf(line, sizeof line, "%-22s %-5s %9s %9s %9s %9s %11s %9s %9s %9s %9s\n", "mechanism", "mode", "p50",
                "p90", "p99", "p99.9", "max", "p50/floor", "p99/floor", "p50/bus", "p99/bus");
  s += line;
  std::string failures;
  for (const auto& x : r.mechs) {
    const auto& p = x.one_way;
    if (const std::string f = peer_failure(x.key); !f.empty()) failures += "  " + x.key + ": " + f + "\n";
    if (empty(x)) {
      std::snprintf(line, sizeof line, "%-22s %-5s %9s (no samples: failed, see below)\n", x.label.c_str(), x.mode.c_str(),
                    "-");
      s += line;
      continue;
    }
    const auto* ref = shmbus_ref(r, x);
    const auto cell = [](char* out, std::size_t n, bool have, double v) {
      if (have) std::snprintf(out, n, "%8.2fx", v);
      else std::snprintf(out, n, "%9s", "-");
    };
    char f50[24], f99[24], b50[24], b99[24];
    const bool have_floor = floor && !empty(*floor);
    cell(f50, sizeof f50, have_floor, have_floor ? ratio(p.p50, floor->one_way.p50) : 0);
    cell(f99, sizeof f99, have_floor, have_floor ? ratio(p.p99, floor->one_way.p99) : 0);
    cell(b50, sizeof b50, ref, ref ? ratio(p.p50, ref->one_way.p50) : 0);
    cell(b99, sizeof b99, ref, ref ? ratio(p.p99, ref->one_way.p99) : 0);
    std::snprintf(line, sizeof line, "%-22s %-5s %9.1f %9.1f %9.1f %9.1f %11.1f %s %s %s %s\n", x.label.c_str(),
                  x.mode.c_str(), p.p50, p.p90, p.p99, p.p999, p.max, f50, f99, b50, b99);
    s += line;
  }
  s += "x/bus: ratio to shmbus in the same mode (spin: \"shmbus topic\"; block: \"shmbus topic, park\")\n";
  if (!failures.empty()) s += "\nfailed (the other mechanisms ran):\n" + failures;
  if (r.args.command == "compare") {
    std::string missing;
    for (const auto& [key, why] : missing_peers()) missing += "  " + key + ": " + why + "\n";
    if (!missing.empty()) s += "\nnot built:\n" + missing;
  }
  if (const auto* bus = find(r, "shmbus"); bus && floor) {
    const double r50 = ratio(bus->one_way.p50, floor->one_way.p50);
    std::snprintf(line, sizeof line, "\nratio shmbus/floor: p50 %.2fx, p99 %.2fx (target, not asserted: p50 <= 1.5x%s)\n",
                  r50, ratio(bus->one_way.p99, floor->one_way.p99),
                  r.args.wait == Wait::Park ? "; park mode wakes a sleeping process, the floor spins" : "");
    s += line;
  }
  if (const auto* bus = find(r, "shmbus"); bus && !empty(*bus) && r.args.command.ends_with("-latency")) {
    for (const auto& x : r.mechs) {
      if ((!x.key.starts_with("queue_") && !x.key.starts_with("topic_")) || empty(x)) continue;
      std::snprintf(line, sizeof line, "ratio %s/topic: p50 %.2fx, p99 %.2fx, p99.9 %.2fx (same run, same wait)\n",
                    x.label.c_str(), ratio(x.one_way.p50, bus->one_way.p50), ratio(x.one_way.p99, bus->one_way.p99),
                    ratio(x.one_way.p999, bus->one_way.p999));
      s += line;
    }
  }
  // The other like-with-like targets (measured, not asserted).
  const auto* park = find(r, "shmbus_park");
  const auto* fx = find(r, "futex");
  if (park && fx && !empty(*park) && !empty(*fx)) {
    std::snprintf(line, sizeof line, "ratio shmbus park/futex: p50 %.2fx, p99 %.2fx (target: within 1.2x)\n",
                  ratio(park->one_way.p50, fx->one_way.p50), ratio(park->one_way.p99, fx->one_way.p99));
    s += line;
  }
  const auto* bus = find(r, "shmbus");
  const auto* iox = find(r, "iceoryx");
  if (bus && iox && !empty(*bus) && !empty(*iox)) {
    std::snprintf(line, sizeof line, "ratio iceoryx polling/shmbus: p50 %.2fx (target: >= 5x)\n",
                  ratio(iox->one_way.p50, bus->one_way.p50));
    s += line;
  }
  return s;
}

}  // namespace shmbus::bench
