#include "scenario_common.hpp"

#include <bit>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace shmbus::bench {

Context make_context(const Args& a, const std::string& daemon_desc) {
  Context c;
  c.args = a;
  c.clock = init_clock();
  c.machine = probe_machine();
  c.can_pin = a.pin && can_pin_0_1();
  if (a.pin && !c.can_pin) std::fprintf(stderr, "shmbus-bench: CPUs 0 and 1 are not both available: not pinning\n");
  c.daemon = daemon_desc;
  return c;
}

std::string machine_line(const Machine& m) {
  char line[512];
  std::snprintf(line, sizeof line, "machine : %s, %d CPUs online (%d cores), %s %s, clocksource %s, loadavg %s\n",
                m.cpu_model.c_str(), m.cpus_online, m.cores, m.kernel.c_str(), m.arch.c_str(), m.clocksource.c_str(),
                m.loadavg.c_str());
  return line;
}

std::string context_lines(const Context& c) {
  return machine_line(c.machine) + "clock   : " + c.clock.description + "\ndaemon  : " + c.daemon + "\n";
}

void context_json(Json& j, const Context& c) {
  j.str("clock", c.clock.description).num("clock_resolution_ns", c.clock.resolution_ns, 2).str("daemon", c.daemon);
  machine_json(j, c.machine);
}

void machine_json(Json& j, const Machine& m) {
  j.begin("machine")
      .str("cpu_model", m.cpu_model)
      .integer("cpus_online", m.cpus_online)
      .integer("cores", m.cores)
      .str("kernel", m.kernel)
      .str("kernel_version", m.kernel_version)
      .str("arch", m.arch)
      .str("clocksource", m.clocksource)
      .str("loadavg", m.loadavg)
      .end();
}

int emit(const Args& a, const std::string& table, const std::string& json) {
  if (a.json) std::cout << json << "\n";
  else std::cout << table;
  std::cout.flush();
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

std::vector<std::uint32_t> parse_sizes(const std::string& list) {
  std::vector<std::uint32_t> out;
  std::size_t i = 0;
  while (i <= list.size()) {
    const std::size_t j = std::min(list.find(',', i), list.size());
    const std::string item = list.substr(i, j - i);
    char* end = nullptr;
    const unsigned long long n = std::strtoull(item.c_str(), &end, 10);
    if (item.empty() || item[0] == '-' || *end != '\0' || n < 8 || n > (16ULL << 20))
      throw std::runtime_error("--sizes: '" + item + "' is not a message size from 8 to 16777216 bytes");
    out.push_back(static_cast<std::uint32_t>(n));
    i = j + 1;
  }
  return out;
}

std::uint32_t capacity_for(const Args& a, std::uint32_t size) {
  constexpr std::uint64_t kRingBytes = 64ULL << 20;
  const std::uint64_t fit = std::max<std::uint64_t>(16, std::bit_floor(kRingBytes / size));
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(std::bit_ceil(std::uint64_t{a.capacity}), fit));
}

std::string grouped(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.0f", v);
  std::string s = b, o;
  const std::size_t start = (s[0] == '-') ? 1 : 0;
  for (std::size_t k = 0; k < s.size(); ++k) {
    o += s[k];
    const std::size_t left = s.size() - k - 1;
    if (k >= start && left > 0 && left % 3 == 0) o += ',';
  }
  return o;
}

std::string pct_cells(const Percentiles& p) {
  char b[160];
  std::snprintf(b, sizeof b, "%9.1f %9.1f %9.1f %9.1f %9.1f %11.1f", p.p50, p.p90, p.p99, p.p999, p.p9999, p.max);
  return b;
}

void pct_json(Json& j, const Percentiles& p) {
  j.num("p50_ns", p.p50).num("p90_ns", p.p90).num("p99_ns", p.p99).num("p999_ns", p.p999).num("p9999_ns", p.p9999)
      .num("max_ns", p.max).num("min_ns", p.min);
}

void plots_json(Json& j, const Args& a, const std::vector<std::string>& files) {
  if (a.plot_dir.empty()) return;
  std::string all;
  for (const auto& f : files) all += (all.empty() ? "" : ",") + f;
  j.str("plot_dir", a.plot_dir).str("plot_files", all);
}

// --- SharedMem

SharedMem::SharedMem(std::size_t bytes) : n_(std::max<std::size_t>(bytes, 1)) {
  void* m = ::mmap(nullptr, n_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (m == MAP_FAILED) throw std::runtime_error("mmap of " + std::to_string(n_) + " shared bytes: " + std::strerror(errno));
  p_ = static_cast<std::byte*>(m);
}

SharedMem::~SharedMem() { ::munmap(p_, n_); }

// --- Group

namespace {
constexpr int kMaxWorkers = 80;
}

struct alignas(128) WorkerSlot {
  std::atomic<int> ready;
  std::atomic<int> failed;
  char error[1024];
};

struct GroupShared {
  alignas(128) std::atomic<std::uint32_t> phase;
  WorkerSlot slots[kMaxWorkers];
};

void WorkerCtx::ready() noexcept { g_->slots[index_].ready.store(1, std::memory_order_release); }

std::uint32_t WorkerCtx::phase() const noexcept { return g_->phase.load(std::memory_order_acquire); }

void WorkerCtx::wait_go() {
  const std::uint64_t deadline = mono_ns() + 60'000'000'000ULL;
  std::uint32_t p;
  while ((p = phase()) == kSetup) {
    if (mono_ns() > deadline) throw std::runtime_error("no start signal within 60 s");
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (p == kAbort) throw std::runtime_error("aborted by the coordinator");
}

Group::Group(std::vector<Worker> workers) : workers_(std::move(workers)), mem_(sizeof(GroupShared)) {
  if (workers_.size() > static_cast<std::size_t>(kMaxWorkers)) throw std::runtime_error("too many worker processes");
  g_ = new (mem_.data()) GroupShared{};
  std::fflush(nullptr);
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      const std::string e = std::string("fork: ") + std::strerror(errno);
      set_phase(kAbort);
      join(2'000'000'000ULL);  // reaps the ones already started
      throw std::runtime_error(e);
    }
    if (pid == 0) {
      // Worker: never returns, never runs the coordinator's destructors (its daemon launcher, ...).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int rc = 0;
      try {
        const int cpu = workers_[i].cpu;
        if (cpu >= 0 && !pin_to_cpu(cpu)) throw std::runtime_error("sched_setaffinity(CPU " + std::to_string(cpu) + ") failed");
        WorkerCtx ctx(g_, static_cast<int>(i));
        workers_[i].body(ctx);
      } catch (const std::exception& e) {
        std::snprintf(g_->slots[i].error, sizeof g_->slots[i].error, "%s", e.what());
        g_->slots[i].failed.store(1, std::memory_order_release);
        rc = 1;
      }
      std::fflush(nullptr);
      ::_exit(rc);
    }
    pids_.push_back(pid);
    status_.push_back(0);
    reaped_.push_back(false);
  }
}

Group::~Group() {
  bool any = false;
  for (bool r : reaped_) any |= !r;
  if (!any) return;
  set_phase(kAbort);
  try {
    join(1'000'000'000ULL);
  } catch (...) {
  }
}

void Group::set_phase(Phase p) noexcept { g_->phase.store(p, std::memory_order_release); }

void Group::fail(const std::string& why) {
  set_phase(kAbort);
  std::string msg = why;
  try {
    join(2'000'000'000ULL);
  } catch (const std::exception& e) {
    msg += " (" + std::string(e.what()) + ")";
  }
  throw std::runtime_error(msg);
}

void Group::check() {
  for (std::size_t i = 0; i < pids_.size(); ++i) {
    if (g_->slots[i].failed.load(std::memory_order_acquire)) fail(workers_[i].name + " failed");
    if (!reaped_[i] && ::waitpid(pids_[i], &status_[i], WNOHANG) == pids_[i]) {
      reaped_[i] = true;
      if (g_->phase.load() < kStop) fail(workers_[i].name + " exited before the end");
    }
  }
}

void Group::wait_ready(std::uint64_t timeout_ns) {
  const std::uint64_t deadline = mono_ns() + timeout_ns;
  for (;;) {
    check();
    bool all = true;
    for (std::size_t i = 0; i < pids_.size(); ++i) all &= g_->slots[i].ready.load(std::memory_order_acquire) != 0;
    if (all) return;
    if (mono_ns() >= deadline) fail("worker processes not ready after " + std::to_string(timeout_ns / 1'000'000'000) + " s");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

void Group::sleep_watch(std::uint64_t ns) {
  const std::uint64_t end = mono_ns() + ns;
  for (std::uint64_t now = mono_ns(); now < end; now = mono_ns()) {
    check();
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<std::uint64_t>(end - now, 5'000'000)));
  }
}

void Group::join(std::uint64_t timeout_ns) {
  const std::uint64_t deadline = mono_ns() + timeout_ns;
  for (;;) {
    bool all = true;
    for (std::size_t i = 0; i < pids_.size(); ++i) {
      if (!reaped_[i] && ::waitpid(pids_[i], &status_[i], WNOHANG) == pids_[i]) reaped_[i] = true;
      all &= reaped_[i];
    }
    if (all) break;
    if (mono_ns() >= deadline) {
      for (std::size_t i = 0; i < pids_.size(); ++i)
        if (!reaped_[i]) {
          ::kill(pids_[i], SIGKILL);
          ::waitpid(pids_[i], &status_[i], 0);
          reaped_[i] = true;
          status_[i] = -1;  // marks "killed after the timeout"
        }
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  std::string errors;
  for (std::size_t i = 0; i < pids_.size(); ++i) {
    std::string e;
    if (g_->slots[i].failed.load(std::memory_order_acquire)) e = g_->slots[i].error;
    else if (status_[i] == -1) e = "did not finish within " + std::to_string(timeout_ns / 1'000'000) + " ms (killed)";
    else if (WIFSIGNALED(status_[i])) e = std::string("killed by signal ") + strsignal(WTERMSIG(status_[i]));
    else if (WIFEXITED(status_[i]) && WEXITSTATUS(status_[i]) != 0) e = "exited with status " + std::to_string(WEXITSTATUS(status_[i]));
    if (!e.empty()) errors += (errors.empty() ? "" : "; ") + workers_[i].name + ": " + e;
  }
  if (!errors.empty()) throw std::runtime_error(errors);
}

}  // namespace shmbus::bench
