// sweep: the two-process ping-pong over message sizes, shmbus and the floor alternated per size in
// --rounds rounds (samples pooled per mechanism), one-way latency = RTT/2.
#include "plot.hpp"
#include "scenario_common.hpp"
#include "scenarios.hpp"

#include <algorithm>
#include <cstdio>

namespace shmbus::bench {

namespace {

struct Point {
  std::uint32_t size = 0;
  std::uint32_t capacity = 0;
  std::vector<std::uint64_t> floor, bus;  // RTT ticks, pooled over rounds (sorted once summarised)
  Percentiles pf, pb;
  double seconds_floor = 0, seconds_bus = 0;
};

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }
/// MB/s equivalent of one message per one-way p50: size bytes / p50 ns.
double mbps(std::uint32_t size, double p50_ns) { return p50_ns > 0 ? static_cast<double>(size) * 1e3 / p50_ns : 0.0; }

std::string table(const Context& c, const std::vector<Point>& pts) {
  const Args& a = c.args;
  std::string s;
  char line[512];
  std::snprintf(line, sizeof line,
                "shmbus-bench sweep: ping-pong per message size, %llu round trips per mechanism and size in %u "
                "alternating rounds (each after %llu warm-up); one-way latency = RTT/2, ns\n",
                static_cast<unsigned long long>(a.iterations), a.rounds, static_cast<unsigned long long>(a.warmup));
  s += line + context_lines(c);
  s += std::string("pinning : ") + (c.can_pin ? "ping on CPU 0, pong on CPU 1" : "none") + "\n";
  std::snprintf(line, sizeof line,
                "shmbus  : topics ping + pong with max_message_size = size, capacity = --capacity %u capped at 64 MiB "
                "of payload per ring; disable_timestamp=true; consumer wait=%s\n",
                a.capacity, wait_name(a.wait));
  s += line;
  s += "floor   : two counters + payload lines in a MAP_SHARED mapping, spin with _mm_pause (bench/floor.cpp)\n";
  s += "MB/s    : size / one-way p50 (one message in flight at a time: a latency figure, not throughput)\n\n";
  std::snprintf(line, sizeof line, "%8s %-7s %6s %9s %9s %9s %9s %9s %11s %9s %9s\n", "size", "mech", "slots", "p50",
                "p90", "p99", "p99.9", "p99.99", "max", "MB/s", "p50/floor");
  s += line;
  for (const auto& p : pts) {
    std::snprintf(line, sizeof line, "%8u %-7s %6s %s %9.0f %9s\n", p.size, "floor", "-", pct_cells(p.pf).c_str(),
                  mbps(p.size, p.pf.p50), "1.00x");
    s += line;
    std::snprintf(line, sizeof line, "%8u %-7s %6u %s %9.0f %8.2fx\n", p.size, "shmbus", p.capacity,
                  pct_cells(p.pb).c_str(), mbps(p.size, p.pb.p50), ratio(p.pb.p50, p.pf.p50));
    s += line;
  }
  return s;
}

std::string json(const Context& c, const std::vector<Point>& pts, const std::vector<std::string>& plots) {
  const Args& a = c.args;
  Json j;
  j.begin();
  j.str("benchmark", "sweep").str("latency", "one-way = RTT/2, ns").str("sizes_list", a.sizes);
  j.integer("iterations", static_cast<std::int64_t>(a.iterations))
      .integer("warmup", static_cast<std::int64_t>(a.warmup))
      .integer("rounds", a.rounds)
      .str("wait", wait_name(a.wait))
      .boolean("pinned", c.can_pin);
  context_json(j, c);
  j.begin("sizes");
  for (const auto& p : pts) {
    j.begin(std::to_string(p.size));
    j.integer("size", p.size).integer("capacity", p.capacity);
    j.begin("floor");
    pct_json(j, p.pf);
    j.num("mbps_at_p50", mbps(p.size, p.pf.p50)).num("seconds", p.seconds_floor, 3).end();
    j.begin("shmbus");
    pct_json(j, p.pb);
    j.num("mbps_at_p50", mbps(p.size, p.pb.p50)).num("seconds", p.seconds_bus, 3).str("mode", wait_mode(a.wait)).end();
    j.num("ratio_p50", ratio(p.pb.p50, p.pf.p50), 3)
        .num("ratio_p99", ratio(p.pb.p99, p.pf.p99), 3)
        .num("ratio_p999", ratio(p.pb.p999, p.pf.p999), 3);
    j.end();
  }
  j.end();
  plots_json(j, a, plots);
  j.end();
  return j.text();
}

}  // namespace

int run_sweep(const Args& a, const std::string& dir, const std::string& daemon_desc) {
  const std::vector<std::uint32_t> sizes = parse_sizes(a.sizes);
  const Context c = make_context(a, daemon_desc);
  std::vector<Point> pts(sizes.size());
  Args per = a;
  per.iterations = std::max<std::uint64_t>(1, a.iterations / a.rounds);
  const std::size_t steps = sizes.size() * a.rounds * 2;
  std::size_t step = 0;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    Point& p = pts[k];
    p.size = sizes[k];
    p.capacity = capacity_for(a, p.size);
    per.size = p.size;
    per.capacity = p.capacity;
    for (std::uint32_t round = 1; round <= a.rounds; ++round) {
      for (int m = 0; m < 2; ++m) {
        const bool bus = m == 1;
        std::fprintf(stderr, "[%3zu/%zu] size %7u round %u/%u %-6s ... ", ++step, steps, p.size, round, a.rounds,
                     bus ? "shmbus" : "floor");
        std::fflush(stderr);
        const std::uint64_t t0 = mono_ns();
        std::vector<std::uint64_t> s =
            bus ? run_shmbus_pingpong(per, dir, c.can_pin) : run_floor(per, FloorKind::Plain, c.can_pin);
        (bus ? p.seconds_bus : p.seconds_floor) += static_cast<double>(mono_ns() - t0) / 1e9;
        auto& pool = bus ? p.bus : p.floor;
        pool.insert(pool.end(), s.begin(), s.end());
        const auto q = percentiles(s, c.clock.ns_per_tick, 0.5);
        std::fprintf(stderr, "one-way p50 %.1f ns\n", q.p50);
      }
    }
    p.pf = percentiles(p.floor, c.clock.ns_per_tick, 0.5);  // sorts: the plots below use sorted samples
    p.pb = percentiles(p.bus, c.clock.ns_per_tick, 0.5);
  }

  std::vector<std::string> plots;
  if (!a.plot_dir.empty()) {
    std::vector<CurveSeries> curves;
    for (std::size_t k = 0; k < pts.size(); ++k) {
      const int color = static_cast<int>(k) + 1;
      curves.push_back({"shmbus " + std::to_string(pts[k].size) + " B", pts[k].bus, 0.5, color, false});
      curves.push_back({"floor " + std::to_string(pts[k].size) + " B", pts[k].floor, 0.5, color, true});
    }
    plots = write_latency_plot(a.plot_dir, "sweep-latency",
                               "sweep: ping-pong one-way latency (RTT/2) by percentile; solid shmbus, dashed floor",
                               curves);
    XySeries b50{"shmbus p50", {}}, f50{"floor p50", {}}, b99{"shmbus p99", {}}, f99{"floor p99", {}},
        b999{"shmbus p99.9", {}}, f999{"floor p99.9", {}};
    for (const auto& p : pts) {
      const double x = p.size;
      b50.points.emplace_back(x, p.pb.p50), f50.points.emplace_back(x, p.pf.p50);
      b99.points.emplace_back(x, p.pb.p99), f99.points.emplace_back(x, p.pf.p99);
      b999.points.emplace_back(x, p.pb.p999), f999.points.emplace_back(x, p.pf.p999);
    }
    const auto more = write_xy_plot(a.plot_dir, "sweep-size", "sweep: one-way latency (RTT/2) vs message size",
                                    "message size, bytes", "one-way latency, ns", {b50, f50, b99, f99, b999, f999}, "left top");
    plots.insert(plots.end(), more.begin(), more.end());
    announce_plots(plots, a.plot_dir);
  }
  return emit(a, table(c, pts), json(c, pts, plots));
}

}  // namespace shmbus::bench
