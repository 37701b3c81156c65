// rate: one-way latency at a fixed send rate, corrected for coordinated omission.
//
// A producer process sends message i at its intended time t0 + i/rate (busy-waiting until then,
// never sending early) and writes into the message: [0,8) intended send time, [8,16) actual send
// time (read just before send()), [16,24) i. The consumer process takes the receive time right after
// receive() returns and records receive - intended (corrected: a stalled sender, or a backlog
// behind it, shows up as latency, as with HdrHistogram's expected-interval correction or wrk2) and
// receive - actual (uncorrected). Both times are rdtscp ticks (see clock.hpp): one TSC shared by
// the two processes on this machine, calibrated once before the fork.
#include "plot.hpp"
#include "scenario_common.hpp"
#include "scenarios.hpp"
#include "shmbus/shmbus.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <immintrin.h>
#include <stdexcept>
#include <unistd.h>

namespace shmbus::bench {

namespace {

struct alignas(128) RateShared {
  std::uint64_t first_actual, last_actual, late, max_lag, stalls;  // producer (measured part)
  alignas(128) std::uint64_t received, lost, negative;              // consumer
};

constexpr std::uint32_t kHeader = 24;

WaitStrategy strategy(Wait w) {
  return w == Wait::Spin ? WaitStrategy::Spin : w == Wait::Yield ? WaitStrategy::SpinYield : WaitStrategy::Park;
}

inline void put(std::byte* p, std::size_t off, std::uint64_t v) noexcept { std::memcpy(p + off, &v, 8); }
inline std::uint64_t get(const std::byte* p, std::size_t off) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p + off, 8);
  return v;
}

}  // namespace

int run_rate(const Args& a, const std::string& dir, const std::string& daemon_desc) {
  const Context c = make_context(a, daemon_desc);
  const std::uint32_t size = std::max(a.size, kHeader);
  if (size != a.size) std::fprintf(stderr, "shmbus-bench: rate needs %u-byte messages (two times + index): using %u\n", kHeader, size);
  const std::uint64_t n = a.iterations, total = a.warmup + a.iterations;
  SharedMem mem(sizeof(RateShared) + 2 * n * sizeof(std::uint64_t));
  auto* sh = new (mem.data()) RateShared{};
  auto* corrected = reinterpret_cast<std::uint64_t*>(mem.data() + sizeof(RateShared));
  auto* uncorrected = corrected + n;
  const double npt = c.clock.ns_per_tick;
  const auto tps = static_cast<std::uint64_t>(std::llround(1e9 / npt));  // ticks per second
  const std::uint64_t interval = tps / a.rate;                            // ticks between sends
  const Topic topic("bench.rate." + std::to_string(::getpid()) + "." + std::to_string(mono_ns() % 1'000'000));
  DestinationOptions dopts;
  dopts.capacity = a.capacity;
  dopts.max_message_size = size;

  Worker consumer{"consumer", c.can_pin ? 1 : -1, [&](WorkerCtx& ctx) {
    ConnectionFactory f(dir, "shmbus-bench-rate-consumer");
    Connection conn = f.create_connection();
    Session s = conn.create_session();
    ConsumerOptions copts;
    copts.wait = strategy(a.wait);
    copts.spin_count = a.spin_count;
    MessageConsumer in = s.create_consumer(topic, copts, dopts);
    std::memset(corrected, 0, 2 * n * sizeof(std::uint64_t));  // no first-touch fault while measuring
    ctx.ready();
    ctx.wait_go();
    Message m;
    std::uint64_t got = 0, lost = 0, neg = 0, k = 0;
    while (got + lost < total) {
      const ReceiveResult r = in.receive(m, std::chrono::seconds(5));
      const std::uint64_t t = ticks();
      if (r.status == Status::Lapped) {
        lost += r.lost;
        continue;
      }
      if (r.status != Status::Ok)
        throw std::runtime_error("receive failed after " + std::to_string(got) + " of " + std::to_string(total) +
                                 " messages: " + to_string(r.status));
      ++got;
      const std::byte* b = m.body().data();
      const std::uint64_t intended = get(b, 0), actual = get(b, 8), i = get(b, 16);
      if (i < a.warmup || k >= n) continue;
      neg += (t < intended) + (t < actual);
      corrected[k] = t > intended ? t - intended : 0;
      uncorrected[k] = t > actual ? t - actual : 0;
      ++k;
    }
    sh->received = k;
    sh->lost = lost;
    sh->negative = neg;
  }};
  Worker producer{"producer", c.can_pin ? 0 : -1, [&](WorkerCtx& ctx) {
    ConnectionFactory f(dir, "shmbus-bench-rate-producer");
    Connection conn = f.create_connection();
    Session s = conn.create_session();
    ProducerOptions popts;
    popts.disable_timestamp = true;
    MessageProducer out = s.create_producer(topic, popts, dopts);
    std::vector<std::byte> msg(size, std::byte{0x5a});
    const std::span<const std::byte> body(msg);
    ctx.ready();
    ctx.wait_go();
    const std::uint64_t t0 = ticks() + tps / 1000;  // first send 1 ms from now
    std::uint64_t late = 0, max_lag = 0, stalls = 0, now = 0;
    for (std::uint64_t i = 0; i < total; ++i) {
      // t0 + i * tps / rate without overflow (rate <= 1e8, tps ~ 3e9).
      const std::uint64_t intended = t0 + i / a.rate * tps + i % a.rate * tps / a.rate;
      while ((now = ticks()) < intended) _mm_pause();
      put(msg.data(), 0, intended);
      put(msg.data(), 8, now);
      put(msg.data(), 16, i);
      Status st;
      while ((st = out.send(body)) == Status::Stalled) ++stalls;
      if (st != Status::Ok) throw std::runtime_error("send " + std::to_string(i) + " failed: " + to_string(st));
      if (i < a.warmup) continue;
      if (i == a.warmup) sh->first_actual = now;
      const std::uint64_t lag = now - intended;
      late += lag > interval;
      max_lag = std::max(max_lag, lag);
    }
    sh->last_actual = now;
    sh->late = late;
    sh->max_lag = max_lag;
    sh->stalls = stalls;
  }};

  std::fprintf(stderr, "rate: %s msgs/s, %llu + %llu messages of %u B (about %.1f s) ... ", grouped(double(a.rate)).c_str(),
               static_cast<unsigned long long>(a.warmup), static_cast<unsigned long long>(n), size,
               static_cast<double>(total) / static_cast<double>(a.rate));
  std::fflush(stderr);
  Group g({consumer, producer});
  g.wait_ready();
  g.set_phase(kGo);
  g.join(static_cast<std::uint64_t>(static_cast<double>(total) / static_cast<double>(a.rate) * 2e9) + 30'000'000'000ULL);
  std::fprintf(stderr, "done\n");

  const std::size_t k = sh->received;
  std::vector<std::uint64_t> corr(corrected, corrected + k), unc(uncorrected, uncorrected + k);
  const Percentiles pc = percentiles(corr, npt, 1.0), pu = percentiles(unc, npt, 1.0);
  const double span_s = static_cast<double>(sh->last_actual - sh->first_actual) * npt / 1e9;
  const double achieved = n > 1 && span_s > 0 ? static_cast<double>(n - 1) / span_s : 0.0;
  const double max_lag_ns = static_cast<double>(sh->max_lag) * npt;

  std::vector<std::string> plots;
  if (!a.plot_dir.empty()) {
    plots = write_latency_plot(a.plot_dir, "rate-latency",
                               "rate: one-way latency at " + grouped(double(a.rate)) + " msgs/s, " +
                                   std::to_string(size) + " B, consumer wait=" + wait_name(a.wait),
                               {{"corrected (from intended send time)", corr, 1.0, 1, false},
                                {"uncorrected (from actual send time)", unc, 1.0, 2, true}});
    announce_plots(plots, a.plot_dir);
  }

  std::string t;
  char line[512];
  std::snprintf(line, sizeof line,
                "shmbus-bench rate: one-way latency at a fixed send rate, %s msgs/s target, %llu messages of %u B "
                "(after %llu warm-up), ns\n",
                grouped(double(a.rate)).c_str(), static_cast<unsigned long long>(n), size,
                static_cast<unsigned long long>(a.warmup));
  t += line + context_lines(c);
  t += std::string("pinning : ") + (c.can_pin ? "producer on CPU 0, consumer on CPU 1" : "none") + "\n";
  std::snprintf(line, sizeof line,
                "shmbus  : one topic, capacity %u, max_message_size %u; producer disable_timestamp=true, busy-waits "
                "to each intended send time; consumer wait=%s\n",
                a.capacity, size, wait_name(a.wait));
  t += line;
  t += "times   : rdtscp in both processes (one TSC on this machine); receive time read right after receive()\n";
  std::snprintf(line, sizeof line,
                "achieved: %s msgs/s (actual send times of the measured messages); sender late by more than one "
                "interval (%.0f ns) on %llu, max lag %.0f ns; lost (lapped) %llu; Stalled sends %llu\n\n",
                grouped(achieved).c_str(), static_cast<double>(interval) * npt, static_cast<unsigned long long>(sh->late),
                max_lag_ns, static_cast<unsigned long long>(sh->lost), static_cast<unsigned long long>(sh->stalls));
  t += line;
  std::snprintf(line, sizeof line, "%-38s %9s %9s %9s %9s %9s %11s\n", "one-way latency, ns", "p50", "p90", "p99",
                "p99.9", "p99.99", "max");
  t += line;
  t += std::string("corrected (receive - intended send)     ") + pct_cells(pc) + "\n";
  t += std::string("uncorrected (receive - actual send)     ") + pct_cells(pu) + "\n";
  if (sh->negative)
    t += "warning: " + std::to_string(sh->negative) + " receive times before their send time (TSC not in sync across CPUs?); counted as 0\n";

  Json j;
  j.begin();
  j.str("benchmark", "rate").str("latency", "one-way, ns");
  j.integer("target_rate", static_cast<std::int64_t>(a.rate))
      .num("achieved_rate", achieved, 1)
      .integer("iterations", static_cast<std::int64_t>(n))
      .integer("warmup", static_cast<std::int64_t>(a.warmup))
      .integer("received", static_cast<std::int64_t>(k))
      .integer("size", size)
      .integer("capacity", a.capacity)
      .str("wait", wait_name(a.wait))
      .boolean("pinned", c.can_pin)
      .str("time_source", "rdtscp (TSC shared by both processes)")
      .integer("late_sends", static_cast<std::int64_t>(sh->late))
      .num("max_send_lag_ns", max_lag_ns)
      .integer("lost", static_cast<std::int64_t>(sh->lost))
      .integer("stalled_sends", static_cast<std::int64_t>(sh->stalls))
      .integer("negative_samples", static_cast<std::int64_t>(sh->negative));
  context_json(j, c);
  j.begin("corrected").str("from", "intended send time t0 + i/rate");
  pct_json(j, pc);
  j.end();
  j.begin("uncorrected").str("from", "actual send time (just before send())");
  pct_json(j, pu);
  j.end();
  plots_json(j, a, plots);
  j.end();
  return emit(a, t, j.text());
}

}  // namespace shmbus::bench
