// throughput: msgs/s and MB/s per message size. Producers send as fast as they can; a topic never
// blocks them, so what counts is what each subscriber receives (and how many it lost to lapping).
// Cases: raw SPSC ring 1->1 (the floor of throughput: producer blocks when full), shmbus 1->1,
// N->1 and 1->N on one topic. Each worker is a process; after a warm-up, each one counts its
// messages between the moments it sees the "measure" and "stop" phases, with its own rdtscp ticks.
#include "plot.hpp"
#include "queue_common.hpp"
#include "scenario_common.hpp"
#include "scenarios.hpp"
#include "throughput.hpp"
#include "shmbus/shmbus.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <immintrin.h>
#include <stdexcept>
#include <unistd.h>

namespace shmbus::bench {

namespace {

struct Case {
  std::string key, label;
  std::uint32_t producers = 1, consumers = 1;
  bool raw = false, pin = false;
};

struct Rate {
  double msgs = 0, lost = 0;  // per second over the worker's window
};

struct Result {
  Case cs;
  std::uint32_t size = 0, capacity = 0;
  std::vector<Rate> prod, cons;
  bool accounted = true;  // every subscriber: delivered + lost == sent
  std::uint64_t stalls = 0;
  double sent() const { double s = 0; for (auto& r : prod) s += r.msgs; return s; }
  double delivered_mean() const { double s = 0; for (auto& r : cons) s += r.msgs; return cons.empty() ? 0 : s / double(cons.size()); }
  double delivered_min() const { double m = 1e300; for (auto& r : cons) m = std::min(m, r.msgs); return cons.empty() ? 0 : m; }
  double lost_mean() const { double s = 0; for (auto& r : cons) s += r.lost; return cons.empty() ? 0 : s / double(cons.size()); }
};

Rate rate_of(const Stat& s, double npt) {
  const double secs = static_cast<double>(s.t_end - s.t_begin) * npt / 1e9;
  if (secs <= 0) return {};
  return {static_cast<double>(s.c_end - s.c_begin) / secs, static_cast<double>(s.l_end - s.l_begin) / secs};
}

}  // namespace

std::vector<Worker> topic_workers(const Args& a, std::uint32_t producers, std::uint32_t consumers, bool pin,
                                  const std::string& dir, std::uint32_t size, std::uint32_t capacity, Stat* st) {
  const Topic topic("bench.tp." + std::to_string(::getpid()) + "." + std::to_string(mono_ns() % 100'000'000));
  DestinationOptions dopts;
  dopts.capacity = capacity;
  dopts.max_message_size = size;
  const std::uint32_t np = producers;
  std::vector<Worker> ws;
  for (std::uint32_t i = 0; i < consumers; ++i)
    ws.push_back({"consumer " + std::to_string(i + 1), pin ? 1 : -1, [=, &a](WorkerCtx& ctx) {
      Connection conn = ConnectionFactory(dir, "shmbus-bench-tp-consumer").create_connection();
      Session s = conn.create_session();
      MessageConsumer in = s.create_consumer(topic, {wait_strategy(a.wait), a.spin_count}, dopts);
      Stat* me = st + np + i;
      const auto all_done = [&] {
        for (std::uint32_t p = 0; p < np; ++p) if (!st[p].done.load(std::memory_order_acquire)) return false;
        return true;
      };
      ctx.ready();
      ctx.wait_go();
      Window w{me};
      Message m;
      std::uint64_t got = 0, lost = 0, expect = 1, k = 0;
      for (;;) {
        const bool drained_if_empty = w.seen >= kStop && all_done();
        const ReceiveResult r = in.receive(m, std::chrono::milliseconds(2));
        if (r.status == Status::Ok) {
          ++got;
          if (np == 1) {  // one producer: its stamps only go up
            const std::uint64_t v = message_stamp(m.body().data());
            if (v < expect || m.body().size() != size) throw std::runtime_error("message out of order or wrong size");
            expect = v + 1;
          }
        } else if (r.status == Status::Lapped) {
          lost += r.lost;
        } else if (r.status == Status::Timeout) {
          if (drained_if_empty) break;
        } else {
          throw std::runtime_error(std::string("receive: ") + to_string(r.status));
        }
        if ((++k & 63) == 0 || r.status == Status::Timeout) w.observe(ctx.phase(), got, lost);
      }
      if (w.seen == kAbort) throw std::runtime_error("aborted");
      me->total = got;
      me->lost_total = lost;
    }});
  for (std::uint32_t i = 0; i < np; ++i)
    ws.push_back({"producer " + std::to_string(i + 1), pin ? 0 : -1, [=](WorkerCtx& ctx) {
      Connection conn = ConnectionFactory(dir, "shmbus-bench-tp-producer").create_connection();
      Session s = conn.create_session();
      ProducerOptions popts;
      popts.disable_timestamp = true;
      MessageProducer out = s.create_producer(topic, popts, dopts);
      std::vector<std::byte> msg(size, std::byte{0x5a});
      const std::span<const std::byte> body(msg);
      Stat* me = st + i;
      ctx.ready();
      ctx.wait_go();
      Window w{me};
      std::uint64_t sent = 0, stalls = 0;
      for (;;) {
        stamp_message(msg.data(), sent + 1);
        const Status r = out.send(body);
        if (r == Status::Ok) ++sent;
        else if (r == Status::Stalled) ++stalls;
        else throw std::runtime_error(std::string("send: ") + to_string(r));
        if ((sent & 63) == 0 && w.observe(ctx.phase(), sent, 0)) break;
      }
      me->total = sent;
      me->stalls = stalls;
      me->done.store(1, std::memory_order_release);
    }});
  return ws;
}

namespace {

Result run_case(const Context& c, const Case& cs, const std::string& dir, std::uint32_t size) {
  Result res;
  res.cs = cs;
  res.size = size;
  res.capacity = capacity_for(c.args, size);
  const std::uint32_t nw = cs.producers + cs.consumers;
  SharedMem stats(nw * sizeof(Stat));
  Stat* st = stats.as<Stat>();
  for (std::uint32_t i = 0; i < nw; ++i) new (st + i) Stat{};
  std::unique_ptr<SharedMem> ring;
  std::vector<Worker> ws;
  if (cs.raw) {
    ring = std::make_unique<SharedMem>(raw_ring_bytes(size, res.capacity));
    ws = raw_workers(cs.pin, size, res.capacity, ring->data(), st);
  } else {
    ws = topic_workers(c.args, cs.producers, cs.consumers, cs.pin, dir, size, res.capacity, st);
  }
  const double secs = c.args.seconds, warm = std::min(0.25, secs / 4);
  Group g(std::move(ws));
  g.wait_ready();
  g.set_phase(kGo);
  g.sleep_watch(static_cast<std::uint64_t>(warm * 1e9));
  g.set_phase(kMeasure);
  g.sleep_watch(static_cast<std::uint64_t>(secs * 1e9));
  g.set_phase(kStop);
  g.join(10'000'000'000ULL);
  const double npt = c.clock.ns_per_tick;
  std::uint64_t sent = 0;
  for (std::uint32_t p = 0; p < cs.producers; ++p) {
    res.prod.push_back(rate_of(st[p], npt));
    sent += st[p].total;
    res.stalls += st[p].stalls;
  }
  for (std::uint32_t i = 0; i < cs.consumers; ++i) {
    const Stat& s = st[cs.producers + i];
    res.cons.push_back(rate_of(s, npt));
    res.accounted &= s.total + s.lost_total == sent;
  }
  return res;
}

double mb(double msgs, std::uint32_t size) { return msgs * size / 1e6; }

}  // namespace

int run_throughput(const Args& a, const std::string& dir, const std::string& daemon_desc) {
  const std::vector<std::uint32_t> sizes = parse_sizes(a.sizes);
  const Context c = make_context(a, daemon_desc);
  const std::uint32_t np = a.producers > 1 ? a.producers : 2, nc = a.consumers > 1 ? a.consumers : 2;
  const std::vector<Case> cases{
      {"raw_1to1", "raw SPSC ring 1->1", 1, 1, true, c.can_pin},
      {"shmbus_1to1", "shmbus topic 1->1", 1, 1, false, c.can_pin},
      {"shmbus_nto1", "shmbus topic " + std::to_string(np) + "->1", np, 1, false, false},
      {"shmbus_1ton", "shmbus topic 1->" + std::to_string(nc), 1, nc, false, false}};
  std::vector<Result> results;
  std::size_t step = 0;
  for (const std::uint32_t size : sizes)
    for (const Case& cs : cases) {
      std::fprintf(stderr, "[%2zu/%zu] %7u B %-22s ... ", ++step, sizes.size() * cases.size(), size, cs.label.c_str());
      std::fflush(stderr);
      results.push_back(run_case(c, cs, dir, size));
      const Result& r = results.back();
      std::fprintf(stderr, "delivered %s msgs/s per subscriber, lost %s/s\n", grouped(r.delivered_mean()).c_str(),
                   grouped(r.lost_mean()).c_str());
    }
  const auto raw_of = [&](std::uint32_t size) -> const Result* {
    for (const auto& r : results) if (r.size == size && r.cs.raw) return &r;
    return nullptr;
  };

  std::vector<std::string> plots;
  if (!a.plot_dir.empty()) {
    std::vector<XySeries> msgs, mbs;
    for (const Case& cs : cases) {
      XySeries m{cs.label + (cs.consumers > 1 ? " (per subscriber)" : ""), {}}, b = m;
      for (const auto& r : results)
        if (r.cs.key == cs.key) m.points.emplace_back(r.size, r.delivered_mean()), b.points.emplace_back(r.size, mb(r.delivered_mean(), r.size));
      msgs.push_back(m), mbs.push_back(b);
    }
    plots = write_xy_plot(a.plot_dir, "throughput-msgs", "throughput: messages delivered per second per subscriber vs size",
                          "message size, bytes", "delivered msgs/s (log)", msgs);
    const auto more = write_xy_plot(a.plot_dir, "throughput-mbs", "throughput: MB/s delivered per subscriber vs size",
                                    "message size, bytes", "delivered MB/s (log)", mbs, "left top");
    plots.insert(plots.end(), more.begin(), more.end());
    announce_plots(plots, a.plot_dir);
  }

  std::string t;
  char line[512];
  std::snprintf(line, sizeof line,
                "shmbus-bench throughput: %.2f s per point after a %.2f s warm-up; producers send as fast as they can\n",
                a.seconds, std::min(0.25, a.seconds / 4));
  t += line + context_lines(c);
  t += std::string("pinning : 1->1 cases: ") + (c.can_pin ? "producer on CPU 0, consumer on CPU 1" : "none") +
       "; N->1 and 1->N: not pinned (more processes than CPUs here)\n";
  std::snprintf(line, sizeof line,
                "shmbus  : one topic per point, capacity min(--capacity %u, 64 MiB of payload), max_message_size = "
                "size; send() copies in, receive() (wait=%s) copies out; disable_timestamp=true\n",
                a.capacity, wait_name(a.wait));
  t += line;
  t += "raw     : SPSC ring in a MAP_SHARED mapping, same slot count, slots of size rounded up to 64 B, head and tail "
       "on separate 128-byte lines, memcpy in and out, producer blocks when full\n";
  if (a.producers <= 1 || a.consumers <= 1) t += "N       : --producers/--consumers of 1 run the N->1 / 1->N cases with N = 2\n";
  t += "delivered = per subscriber (mean over subscribers; min shown for 1->N); lost = messages skipped after lapping\n\n";
  std::snprintf(line, sizeof line, "%8s %-22s %14s %14s %14s %10s %12s %7s %8s\n", "size", "case", "sent msgs/s",
                "delivered/s", "min sub/s", "MB/s", "lost/s", "lost%", "vs raw");
  t += line;
  for (const auto& r : results) {
    const Result* raw = raw_of(r.size);
    const double d = r.delivered_mean(), l = r.lost_mean();
    std::snprintf(line, sizeof line, "%8u %-22s %14s %14s %14s %10.1f %12s %6.1f%% %7.1f%%%s\n", r.size,
                  r.cs.label.c_str(), grouped(r.sent()).c_str(), grouped(d).c_str(),
                  r.cs.consumers > 1 ? grouped(r.delivered_min()).c_str() : "", mb(d, r.size),
                  grouped(l).c_str(), d + l > 0 ? 100.0 * l / (d + l) : 0.0,
                  raw && raw->delivered_mean() > 0 ? 100.0 * d / raw->delivered_mean() : 0.0,
                  r.accounted ? "" : "  (delivered + lost != sent!)");
    t += line;
  }
  for (const auto& r : results)
    if (r.size == 64 && r.cs.key == "shmbus_1to1" && raw_of(64)) {
      std::snprintf(line, sizeof line, "\nshmbus 1->1 at 64 B = %.1f%% of the raw SPSC ring (issue target, not asserted: >= 80%%)\n",
                    100.0 * r.delivered_mean() / raw_of(64)->delivered_mean());
      t += line;
    }
  std::uint64_t stalls = 0;
  for (const auto& r : results) stalls += r.stalls;
  if (stalls) t += "Stalled sends (another producer held a slot a lap ago for > 1 s): " + std::to_string(stalls) + "\n";

  Json j;
  j.begin();
  j.str("benchmark", "throughput").str("sizes_list", a.sizes).num("seconds", a.seconds, 3).str("wait", wait_name(a.wait));
  j.integer("producers_n", np).integer("consumers_n", nc).boolean("pinned_1to1", c.can_pin).boolean("pinned_n", false);
  context_json(j, c);
  j.begin("sizes");
  for (const std::uint32_t size : sizes) {
    j.begin(std::to_string(size));
    for (const auto& r : results) {
      if (r.size != size) continue;
      const Result* raw = raw_of(size);
      j.begin(r.cs.key).str("label", r.cs.label).integer("producers", r.cs.producers).integer("consumers", r.cs.consumers)
          .integer("capacity", r.capacity).boolean("pinned", r.cs.pin)
          .num("sent_msgs_per_s", r.sent()).num("delivered_msgs_per_s", r.delivered_mean())
          .num("delivered_mb_per_s", mb(r.delivered_mean(), size), 2).num("lost_per_s", r.lost_mean())
          .boolean("accounted", r.accounted).integer("stalled_sends", static_cast<std::int64_t>(r.stalls));
      if (raw && !r.cs.raw) j.num("ratio_to_raw", raw->delivered_mean() > 0 ? r.delivered_mean() / raw->delivered_mean() : 0, 3);
      j.begin("subscribers");
      for (std::size_t i = 0; i < r.cons.size(); ++i)
        j.begin(std::to_string(i + 1)).num("delivered_msgs_per_s", r.cons[i].msgs).num("lost_per_s", r.cons[i].lost).end();
      j.end().end();
    }
    j.end();
  }
  j.end();
  plots_json(j, a, plots);
  j.end();
  return emit(a, t, j.text());
}

}  // namespace shmbus::bench
