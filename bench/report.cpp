#include "report.hpp"

#include <cstdio>

namespace shmbus::bench {

namespace {

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

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
  j.str("benchmark", "pingpong").str("latency", "one-way = RTT/2, ns");
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
      .integer("max_message_size", r.args.size)
      .end();
  for (const auto& m : r.mechs) {
    j.begin(m.key);
    add_percentiles(j, m);
    if (floor && &m != floor) j.num("ratio_p50", ratio(m.one_way.p50, floor->one_way.p50), 3)
                                  .num("ratio_p99", ratio(m.one_way.p99, floor->one_way.p99), 3);
    j.end();
  }
  if (floor && bus) {
    j.num("ratio_p50", ratio(bus->one_way.p50, floor->one_way.p50), 3)
        .num("ratio_p99", ratio(bus->one_way.p99, floor->one_way.p99), 3)
        .num("ratio_p999", ratio(bus->one_way.p999, floor->one_way.p999), 3);
  }
  j.begin("machine")
      .str("cpu_model", r.machine.cpu_model)
      .integer("cpus_online", r.machine.cpus_online)
      .integer("cores", r.machine.cores)
      .str("kernel", r.machine.kernel)
      .str("kernel_version", r.machine.kernel_version)
      .str("arch", r.machine.arch)
      .str("clocksource", r.machine.clocksource)
      .str("loadavg", r.machine.loadavg)
      .end();
  j.end();
  return j.text();
}

std::string to_table(const Report& r) {
  std::string s;
  char line[512];
  const auto& m = r.machine;
  std::snprintf(line, sizeof line,
                "shmbus-bench pingpong: %u-byte messages, %llu round trips in %u alternating rounds (each after %llu "
                "warm-up); one-way latency = RTT/2, ns\n",
                r.args.size, static_cast<unsigned long long>(r.args.iterations), r.args.rounds,
                static_cast<unsigned long long>(r.args.warmup));
  s += line;
  std::snprintf(line, sizeof line, "machine : %s, %d CPUs online (%d cores), %s %s, clocksource %s, loadavg %s\n",
                m.cpu_model.c_str(), m.cpus_online, m.cores, m.kernel.c_str(), m.arch.c_str(), m.clocksource.c_str(),
                m.loadavg.c_str());
  s += line;
  s += "clock   : " + r.clock.description + "\n";
  s += std::string("pinning : ") + (r.pinned ? "ping on CPU 0, pong on CPU 1" : "none") + "\n";
  std::snprintf(line, sizeof line,
                "shmbus  : ProducerOptions{disable_timestamp=true}, ConsumerOptions{wait=%s, spin_count=%u}, "
                "send()/receive(), 2 topics x %u slots\n",
                wait_name(r.args.wait), r.args.spin_count, r.args.capacity);
  s += line;
  s += "daemon  : " + r.daemon + "\n\n";
  const auto* floor = find(r, "floor");
  std::snprintf(line, sizeof line, "%-20s %-5s %9s %9s %9s %9s %11s %9s %9s\n", "mechanism", "mode", "p50", "p90",
                "p99", "p99.9", "max", "p50/floor", "p99/floor");
  s += line;
  for (const auto& x : r.mechs) {
    const auto& p = x.one_way;
    std::snprintf(line, sizeof line, "%-20s %-5s %9.1f %9.1f %9.1f %9.1f %11.1f %8.2fx %8.2fx\n", x.label.c_str(),
                  x.mode.c_str(), p.p50, p.p90, p.p99, p.p999, p.max, floor ? ratio(p.p50, floor->one_way.p50) : 0.0,
                  floor ? ratio(p.p99, floor->one_way.p99) : 0.0);
    s += line;
  }
  if (const auto* bus = find(r, "shmbus"); bus && floor) {
    const double r50 = ratio(bus->one_way.p50, floor->one_way.p50);
    std::snprintf(line, sizeof line, "\nratio shmbus/floor: p50 %.2fx, p99 %.2fx (target, not asserted: p50 <= 1.5x%s)\n",
                  r50, ratio(bus->one_way.p99, floor->one_way.p99),
                  r.args.wait == Wait::Park ? "; park mode wakes a sleeping process, the floor spins" : "");
    s += line;
  }
  return s;
}

}  // namespace shmbus::bench
