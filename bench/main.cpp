// shmbus-bench: latency scenarios run as real separate processes. See `shmbus-bench --help`.
#include "args.hpp"
#include "clock.hpp"
#include "launcher.hpp"
#include "machine.hpp"
#include "report.hpp"
#include "peers.hpp"
#include "plot.hpp"
#include "scenario_common.hpp"
#include "scenarios.hpp"
#include "shmbus/shmbus.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>

namespace {

using namespace shmbus::bench;

/// One mechanism's pooled samples across rounds.
struct Mech {
  std::string key, label, mode, description;
  std::function<std::vector<std::uint64_t>(const Args&)> run;
  std::vector<std::uint64_t> samples;
  double seconds = 0;
  std::string error;  ///< set when a round failed: the mechanism is dropped from the report
};

MechResult summarise(Mech& m) {
  MechResult r;
  r.key = m.key;
  r.label = m.label;
  r.mode = m.mode;
  r.description = m.description;
  r.seconds = m.seconds;
  const double npt = clock_info().ns_per_tick;
  r.one_way = percentiles(m.samples, npt, 0.5);  // sorts
  r.rtt = percentiles_sorted(m.samples, npt, 1.0);
  return r;
}

/// Runs every mechanism once per round, alternating, so that a machine that drifts between fast
/// and slow states (a shared VM) affects each alike; then pools each mechanism's samples.
void measure_rounds(std::vector<Mech>& mechs, const Args& a) {
  Args per = a;
  per.iterations = std::max<std::uint64_t>(1, a.iterations / a.rounds);
  for (std::uint32_t round = 1; round <= a.rounds; ++round) {
    for (auto& m : mechs) {
      if (!m.error.empty()) continue;
      std::fprintf(stderr, "[round %u/%u] %-20s %llu + %llu round trips ... ", round, a.rounds, m.label.c_str(),
                   static_cast<unsigned long long>(per.warmup), static_cast<unsigned long long>(per.iterations));
      std::fflush(stderr);
      const std::uint64_t t0 = mono_ns();
      std::vector<std::uint64_t> s;
      try {
        s = m.run(per);
      } catch (const std::exception& e) {
        // One mechanism failing (a peer's daemon missing, say) must not cost the others' figures.
        m.error = e.what();
        record_failure(m.key, m.error);
        std::fprintf(stderr, "FAILED: %s\n", m.error.c_str());
        continue;
      }
      m.seconds += static_cast<double>(mono_ns() - t0) / 1e9;
      std::vector<std::uint64_t> sorted = s;
      const auto p = percentiles(sorted, clock_info().ns_per_tick, 0.5);
      std::fprintf(stderr, "one-way p50 %.1f ns\n", p.p50);
      m.samples.insert(m.samples.end(), s.begin(), s.end());
    }
  }
}

/// The daemon a run uses: its own in a temp dir, or the one serving --dir.
struct Bus {
  DaemonLauncher launcher;
  std::string dir;
  std::string description;
};

bool provide_bus(const Args& a, Bus& b) {
  if (a.dir.empty()) {
    std::fprintf(stderr, "starting %s ... ", DaemonLauncher::binary().c_str());
    std::fflush(stderr);
    b.launcher.start();
    b.dir = b.launcher.dir();
    b.description = "own shmbusd (" + DaemonLauncher::binary() + ") in " + b.dir + ", pid " +
                    std::to_string(b.launcher.pid());
    std::fprintf(stderr, "pid %d, dir %s\n", static_cast<int>(b.launcher.pid()), b.dir.c_str());
    return true;
  }
  std::string err;
  if (!wait_for_daemon(a.dir, 2000, nullptr, nullptr, err)) {
    std::fprintf(stderr, "shmbus-bench: no shmbusd answers on %s: %s\n", a.dir.c_str(), err.c_str());
    return false;
  }
  b.dir = a.dir;
  b.description = "existing shmbusd serving " + a.dir;
  return true;
}

bool wanted(const Args& a, const std::string& key) {
  if (a.only.empty()) return true;
  const std::string list = "," + a.only + ",";
  return list.find("," + key + ",") != std::string::npos;
}

/// pingpong: the floor (and --variants) and shmbus with --wait. compare: the 64-byte ping-pong for
/// every mechanism, each mode measured separately (shmbus spin and park; peers as they come).
/// queue-latency: the floor, shmbus topics and shmbus queues (one per --ack mode) with --wait.
int run_pingpong(const Args& a, const std::string& dir, Report& r) {
  const bool compare = a.command == "compare";
  std::vector<FloorKind> floors{FloorKind::Plain};
  if (a.variants) floors.insert(floors.end(), {FloorKind::NoPause, FloorKind::Xchg, FloorKind::RingRmw});
  std::vector<Mech> mechs;
  for (const FloorKind k : floors) {
    const char* desc = k == FloorKind::Plain
                           ? "two counters on separate 128-byte blocks of a MAP_SHARED mapping, payload copied in and "
                             "out, release store / acquire-load busy-spin with _mm_pause"
                           : "the floor plus part of the shmbus ring's work (see bench/floor.cpp)";
    mechs.push_back({floor_key(k), floor_label(k), "spin", desc,
                     [&r, k](const Args& x) { return run_floor(x, k, r.pinned); }, {}, 0, {}});
  }
  const auto add_shmbus = [&](const std::string& key, const std::string& label, Wait w) {
    mechs.push_back({key, label, wait_mode(w),
                     std::string("topic ping + topic pong, MessageProducer::send / MessageConsumer::receive, wait=") +
                         wait_name(w) + ", disable_timestamp=true",
                     [&r, &dir, w](const Args& x) {
                       Args y = x;
                       y.wait = w;
                       return run_shmbus_pingpong(y, dir, r.pinned);
                     },
                     {}, 0, {}});
  };
  if (a.command == "message-latency") {
    // Raw payloads next to JMS messages, alternated in the same rounds.
    add_shmbus("shmbus", "shmbus topic, raw send(bytes)", a.wait);
    const std::string w = std::string(", wait=") + wait_name(a.wait);
    mechs.push_back({"topic_message", "topic, BytesMessage + 2 props", wait_mode(a.wait),
                     "topic ping + topic pong, send(BytesMessage) with an int and a string property; the echo "
                     "reads the int property" + w,
                     [&r, &dir](const Args& x) { return run_message_pingpong(x, dir, r.pinned, false, false); }, {}, 0, {}});
    mechs.push_back({"topic_selector", "topic, message + selector", wait_mode(a.wait),
                     "as topic_message, both consumers with the selector \"kind IN ('ping', 'pong') AND n >= 0\"" + w,
                     [&r, &dir](const Args& x) { return run_message_pingpong(x, dir, r.pinned, false, true); }, {}, 0, {}});
    mechs.push_back({"queue_message", "queue auto, BytesMessage + 2 props", wait_mode(a.wait),
                     "queue ping + queue pong, AckMode::Auto, send(BytesMessage) with 2 properties" + w,
                     [&r, &dir](const Args& x) { return run_message_pingpong(x, dir, r.pinned, true, false); }, {}, 0, {}});
    mechs.push_back({"queue_selector", "queue auto, message + selector", wait_mode(a.wait),
                     "as queue_message, both consumers with the selector (in-place scan, docs/queues.md)" + w,
                     [&r, &dir](const Args& x) { return run_message_pingpong(x, dir, r.pinned, true, true); }, {}, 0, {}});
  } else if (a.command == "queue-latency") {
    // The topic figure next to each queue ack mode, alternated in the same rounds.
    add_shmbus("shmbus", "shmbus topic", a.wait);
    for (const std::string& ack : ack_names(a.ack))
      mechs.push_back({"queue_" + ack, "queue, " + ack, wait_mode(a.wait),
                       std::string("queue ping + queue pong, send / receive") +
                           (ack == "client" || ack == "individual" ? " + Message::acknowledge()" : "") + ", AckMode::" +
                           ack + ", wait=" + wait_name(a.wait) + ", disable_timestamp=true",
                       [&r, &dir, ack](const Args& x) { return run_queue_pingpong(x, dir, r.pinned, ack); }, {}, 0, {}});
  } else if (compare) {
    add_shmbus("shmbus", "shmbus topic", Wait::Spin);
    add_shmbus("shmbus_park", "shmbus topic, park", Wait::Park);
    for (auto& p : peers())
      mechs.push_back({p.key, p.label, p.mode, p.description,
                       [&r, run = p.run](const Args& x) { return run(x, r.pinned); }, {}, 0, {}});
    for (const auto& [key, why] : missing_peers())
      std::fprintf(stderr, "shmbus-bench: peer '%s' not built: %s\n", key.c_str(), why.c_str());
    std::erase_if(mechs, [&](const Mech& m) { return m.key != "floor" && m.key != "shmbus" && !wanted(a, m.key); });
  } else {
    add_shmbus("shmbus", "shmbus topic", a.wait);
  }
  measure_rounds(mechs, a);
  // Failed mechanisms stay in the report with their reason (and any samples earlier rounds gave).
  for (auto& m : mechs) r.mechs.push_back(summarise(m));  // sorts each one's samples
  if (!a.plot_dir.empty()) {
    std::vector<CurveSeries> cs;
    for (const auto& m : mechs)
      if (!m.samples.empty()) cs.push_back({m.label + " (" + m.mode + ")", m.samples, 0.5, 0, m.mode == "block"});
    const std::string stem = a.command.ends_with("-latency") ? a.command : a.command + "-latency";
    announce_plots(write_latency_plot(a.plot_dir, stem,
                                      a.command + ": one-way latency (RTT/2) by percentile, " + std::to_string(a.size) + " B",
                                      cs),
                   a.plot_dir);
  }
  // The floor and shmbus (and the queues, in queue-latency) are the point of the run: if one failed
  // the report means nothing (its error was printed as the round failed).
  for (const auto& m : mechs)
    if ((m.key == "floor" || m.key == "shmbus" || m.key.starts_with("queue_") || m.key.starts_with("topic_")) &&
        !m.error.empty())
      return 1;
  return 0;
}

int run(const Args& a) {
  if (a.command == "persist") return run_persist(a);  // its own daemon, on a disk
  if (a.command == "replicate") return run_replicate(a);  // its own leader + followers
  Bus bus;
  if (!provide_bus(a, bus)) return 1;
  if (a.command == "sweep") return run_sweep(a, bus.dir, bus.description);
  if (a.command == "rate") return run_rate(a, bus.dir, bus.description);
  if (a.command == "throughput") return run_throughput(a, bus.dir, bus.description);
  if (a.command == "queue-throughput") return run_queue_throughput(a, bus.dir, bus.description);
  Report r;
  r.args = a;
  r.machine = probe_machine();
  r.pinned = a.pin && can_pin_0_1();
  if (a.pin && !r.pinned) std::fprintf(stderr, "shmbus-bench: CPUs 0 and 1 are not both available: not pinning\n");
  r.daemon = bus.description;
  r.clock = init_clock();
  if (const int rc = run_pingpong(a, bus.dir, r); rc != 0) return rc;
  bus.launcher.stop();
  return emit(a, to_table(r), to_json(r));
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  int rc = 0;
  if (!parse_args(argc, argv, a, rc)) return rc;
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nshmbus-bench: %s\n", e.what());
    return 1;
  }
}
