// Shared pieces of the sweep / rate / throughput scenarios: the run context (machine, clock,
// daemon), output (table or JSON, --out), message-size lists, shared memory, and a harness that
// runs N worker processes through common phases (set-up -> go -> measure -> stop).
#pragma once
#include "args.hpp"
#include "clock.hpp"
#include "machine.hpp"
#include "stats.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace shmbus::bench {

/// What every scenario report says about where and how it ran.
struct Context {
  Args args;
  Machine machine;
  ClockInfo clock;
  bool can_pin = false;  ///< --no-pin not given and CPUs 0 and 1 are both available
  std::string daemon;
};

/// Calibrates the clock (call before forking), probes the machine.
Context make_context(const Args& a, const std::string& daemon_desc);
/// "machine : ...\n": the machine line of every human table.
std::string machine_line(const Machine& m);
/// The "machine" JSON object of every report.
void machine_json(Json& j, const Machine& m);
/// "machine : ...\nclock   : ...\ndaemon  : ...\n" lines for the human table.
std::string context_lines(const Context& c);
/// Adds "clock", "clock_resolution_ns", "daemon" and the "machine" object.
void context_json(Json& j, const Context& c);
/// Prints the table (or the JSON with --json) on stdout and writes the JSON to --out. Exit code.
int emit(const Args& a, const std::string& table, const std::string& json);

/// Parses --sizes ("8,64,512"): each 8 .. 16 MiB. Throws std::runtime_error with the reason.
std::vector<std::uint32_t> parse_sizes(const std::string& list);
/// Ring slots used for a given message size: --capacity, reduced (to a power of two, >= 16) so
/// that one ring holds at most 64 MiB of payload. Both shmbus and the raw rings use it.
std::uint32_t capacity_for(const Args& a, std::uint32_t size);
/// 1234567 -> "1,234,567".
std::string grouped(double v);
/// Table row of percentiles: "%9.1f" x (p50 p90 p99 p99.9 p99.99 max).
std::string pct_cells(const Percentiles& p);
/// "plot_dir" and "plot_files" (comma-separated), when --plot was given.
void plots_json(Json& j, const Args& a, const std::vector<std::string>& files);
/// Keys p50_ns .. max_ns, min_ns.
void pct_json(Json& j, const Percentiles& p);

/// An anonymous MAP_SHARED|MAP_POPULATE mapping, shared with processes forked after it.
class SharedMem {
 public:
  explicit SharedMem(std::size_t bytes);
  ~SharedMem();
  SharedMem(const SharedMem&) = delete;
  SharedMem& operator=(const SharedMem&) = delete;
  std::byte* data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }
  template <class T>
  T* as() const noexcept { return reinterpret_cast<T*>(p_); }

 private:
  std::byte* p_ = nullptr;
  std::size_t n_ = 0;
};

/// Phases of a worker group; the coordinator (this process) moves them forward.
enum Phase : std::uint32_t { kSetup = 0, kGo = 1, kMeasure = 2, kStop = 3, kAbort = 4 };

struct GroupShared;

/// What a worker body sees.
class WorkerCtx {
 public:
  WorkerCtx(GroupShared* g, int index) : g_(g), index_(index) {}
  /// Set-up done: the coordinator waits for every worker's ready() before kGo.
  void ready() noexcept;
  /// Waits for kGo (throws if the coordinator aborts or goes away).
  void wait_go();
  /// Current phase (one acquire load of a line nobody writes during a phase).
  std::uint32_t phase() const noexcept;
  int index() const noexcept { return index_; }

 private:
  GroupShared* g_;
  int index_;
};

struct Worker {
  std::string name;  ///< "producer 1", ... (named in errors)
  int cpu = -1;      ///< pin to this CPU, -1: not pinned
  std::function<void(WorkerCtx&)> body;  ///< throw to fail; the message is reported
};

/// Forks one process per worker (each dies with the coordinator: PR_SET_PDEATHSIG). All errors
/// are std::runtime_error naming the worker and its message.
class Group {
 public:
  explicit Group(std::vector<Worker> workers);
  ~Group();  ///< aborts and reaps anything still running
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;
  /// Waits until every worker called ready(); throws if one fails or exits first.
  void wait_ready(std::uint64_t timeout_ns = 15'000'000'000ULL);
  void set_phase(Phase p) noexcept;
  /// Sleeps `ns` while watching the workers; throws if one fails.
  void sleep_watch(std::uint64_t ns);
  /// Waits for all workers to exit (kills them after `timeout_ns`); throws on any failure.
  void join(std::uint64_t timeout_ns);

 private:
  void check();  ///< throws if a worker failed or exited early
  [[noreturn]] void fail(const std::string& why);
  std::vector<Worker> workers_;
  std::vector<int> pids_;
  std::vector<int> status_;
  std::vector<bool> reaped_;
  SharedMem mem_;
  GroupShared* g_;
};

}  // namespace shmbus::bench
