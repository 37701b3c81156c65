// shmbus-bench: latency scenarios run as real separate processes. See `shmbus-bench --help`.
#include "args.hpp"
#include "clock.hpp"
#include "launcher.hpp"
#include "machine.hpp"
#include "report.hpp"
#include "scenarios.hpp"
#include "shmbus/shmbus.hpp"

#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>

namespace {

using namespace shmbus::bench;

MechResult measure(const std::string& key, const std::string& label, const std::string& mode,
                   const std::string& description, int step, int steps, const Args& a,
                   const std::function<std::vector<std::uint64_t>()>& run) {
  std::fprintf(stderr, "[%d/%d] %-20s %llu + %llu round trips ... ", step, steps, label.c_str(),
               static_cast<unsigned long long>(a.warmup), static_cast<unsigned long long>(a.iterations));
  std::fflush(stderr);
  const std::uint64_t t0 = mono_ns();
  std::vector<std::uint64_t> samples = run();
  MechResult m;
  m.key = key;
  m.label = label;
  m.mode = mode;
  m.description = description;
  m.seconds = static_cast<double>(mono_ns() - t0) / 1e9;
  const double npt = clock_info().ns_per_tick;
  m.one_way = percentiles(samples, npt, 0.5);  // sorts
  m.rtt = percentiles_sorted(samples, npt, 1.0);
  std::fprintf(stderr, "%.2f s, one-way p50 %.1f ns\n", m.seconds, m.one_way.p50);
  return m;
}

int run(const Args& a) {
  Report r;
  r.args = a;
  r.machine = probe_machine();
  r.pinned = a.pin && can_pin_0_1();
  if (a.pin && !r.pinned) std::fprintf(stderr, "shmbus-bench: CPUs 0 and 1 are not both available: not pinning\n");
  DaemonLauncher daemon;
  std::string dir = a.dir;
  if (dir.empty()) {
    std::fprintf(stderr, "starting %s ... ", DaemonLauncher::binary().c_str());
    std::fflush(stderr);
    daemon.start();
    dir = daemon.dir();
    r.daemon = "own shmbusd (" + DaemonLauncher::binary() + ") in " + dir + ", pid " + std::to_string(daemon.pid());
    std::fprintf(stderr, "pid %d, dir %s\n", static_cast<int>(daemon.pid()), dir.c_str());
  } else {
    std::string err;
    if (!wait_for_daemon(dir, 2000, nullptr, nullptr, err)) {
      std::fprintf(stderr, "shmbus-bench: no shmbusd answers on %s: %s\n", dir.c_str(), err.c_str());
      return 1;
    }
    r.daemon = "existing shmbusd serving " + dir;
  }
  r.clock = init_clock();

  std::vector<FloorKind> floors{FloorKind::Plain};
  if (a.variants) floors.insert(floors.end(), {FloorKind::NoPause, FloorKind::Xchg, FloorKind::RingRmw});
  const int steps = static_cast<int>(floors.size()) + 1;
  int step = 0;
  for (const FloorKind k : floors) {
    const char* desc = k == FloorKind::Plain
                           ? "two counters on separate 128-byte blocks of a MAP_SHARED mapping, payload copied in and "
                             "out, release store / acquire-load busy-spin with _mm_pause"
                           : "the floor plus part of the shmbus ring's work (see bench/floor.cpp)";
    r.mechs.push_back(measure(floor_key(k), floor_label(k), "spin", desc, ++step, steps, a,
                              [&] { return run_floor(a, k, r.pinned); }));
  }
  const std::string desc = std::string("topic ping + topic pong, MessageProducer::send / MessageConsumer::receive, wait=") +
                           wait_name(a.wait) + ", disable_timestamp=true";
  r.mechs.push_back(measure("shmbus", "shmbus topic", wait_mode(a.wait), desc, ++step, steps, a,
                            [&] { return run_shmbus_pingpong(a, dir, r.pinned); }));
  daemon.stop();

  const std::string json = to_json(r);
  if (a.json) std::cout << json << "\n";
  else std::cout << to_table(r);
  if (!a.out.empty()) {
    std::ofstream f(a.out);
    f << json << "\n";
    if (!f) {
      std::fprintf(stderr, "shmbus-bench: cannot write %s\n", a.out.c_str());
      return 1;
    }
  }
  return 0;
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
