// replicate: Acks::Replicated PERSISTENT queue sends and follower catch-up next to loopback TCP, in one run.
//
//  1. The floor: 64 B ping-pong over 127.0.0.1 between two threads (blocking, TCP_NODELAY), in 4
//     chunks pooled: at the start, right before each follower count's cases (their "adjacent" RTT:
//     this machine drifts) and at the end; and one every 200 us (CPUs idle in between). A bulk
//     transfer over one socket (1 MiB writes), and the same with the receiver pwriting to a file in
//     /var/tmp with an fdatasync every 20 ms and at the end (received and on disk).
//  2. A leader (`--listen A --replicate-to B,C`) and two followers (`--listen B|C --follow A`), own
//     shmbusds under /var/tmp sharing a replication.secret. A producer in this process sends 64 B
//     PERSISTENT messages one at a time to a fresh queue that holds them all (no consumer), timing
//     each send(): Acks::Replicated, and Acks::Memory / Acks::Durable for context; with both
//     followers in sync, then with one (C stopped). After each case: wait until all caught up.
//  3. Catch-up: with C stopped, the leader's log gets 64 MiB (--quick; else 256 MiB) of 1 KiB
//     messages (Acks::Memory; the queue holds them all, so no snapshot trims the log); B follows.
//     Then C is started and its stats polled every 2 ms until each of its logs reaches the leader's
//     end: MB/s of fetched batch bytes (ReplicationStats::bytes) from its spawn and from the first
//     poll that saw bytes (no process start or handshake), next to the bulk figures.
#include "clock.hpp"
#include "launcher.hpp"
#include "scenario_common.hpp"
#include "scenarios.hpp"
#include "stats.hpp"
#include "shmbus/shmbus.hpp"

#include <arpa/inet.h>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace shmbus::bench {

namespace {

constexpr std::uint64_t kMiB = 1ULL << 20;
constexpr std::uint32_t kFillSize = 1024;

std::string fmt(const char* f, ...) {
  char b[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(b, sizeof b, f, ap);
  va_end(ap);
  return b;
}

[[noreturn]] void sys_fail(const std::string& what) { throw std::runtime_error(what + ": " + std::strerror(errno)); }

template <class F>
struct Defer {
  F f;
  ~Defer() { f(); }
};
template <class F>
Defer(F) -> Defer<F>;

// --- loopback TCP ---------------------------------------------------------------------------------

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() { if (fd >= 0) ::close(fd); }
};

void nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Fd listen_loopback(std::uint16_t& port) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.fd < 0) sys_fail("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s.fd, 4) != 0 ||
      ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    sys_fail("listening on 127.0.0.1");
  port = ntohs(a.sin_port);
  return s;
}

Fd connect_loopback(std::uint16_t port) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (s.fd < 0 || ::connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    sys_fail("connecting to 127.0.0.1:" + std::to_string(port));
  nodelay(s.fd);
  return s;
}

/// All `n` bytes sent (`out`) or received; false on EOF or an error.
bool io_all(bool out, int fd, char* p, std::size_t n) {
  for (std::size_t done = 0; done < n;) {
    const ssize_t r = out ? ::send(fd, p + done, n - done, MSG_NOSIGNAL) : ::recv(fd, p + done, n - done, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<std::size_t>(r);
  }
  return true;
}

/// Round trips of 64 B between two threads (pinned to CPUs 0 and 1 with `pin`), back to back or
/// one every gap_us (both threads asleep in between, as the replication path's are): ticks.
std::vector<std::uint64_t> tcp_rtt(std::uint64_t warmup, std::uint64_t n, bool pin, long gap_us = 0) {
  std::uint16_t port = 0;
  Fd l = listen_loopback(port);
  std::thread echo([&l, pin] {
    Fd c(::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (c.fd < 0 || (pin && !pin_to_cpu(1))) return;
    nodelay(c.fd);
    char b[64];
    while (io_all(false, c.fd, b, sizeof b) && io_all(true, c.fd, b, sizeof b)) {
    }
  });
  Defer join{[&] {
    ::shutdown(l.fd, SHUT_RDWR);  // unblocks accept() if connect failed
    echo.join();
  }};
  std::vector<std::uint64_t> s;
  s.reserve(n);
  std::string err;
  std::thread ping([&] {  // not this thread: it would stay pinned
    try {
      if (pin && !pin_to_cpu(0)) throw std::runtime_error("sched_setaffinity(CPU 0) failed");
      Fd c = connect_loopback(port);
      char b[64] = {};
      for (std::uint64_t i = 0; i < warmup + n; ++i) {
        std::memcpy(b, &i, sizeof i);
        if (gap_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
        const std::uint64_t t0 = ticks();
        if (!io_all(true, c.fd, b, sizeof b) || !io_all(false, c.fd, b, sizeof b)) throw std::runtime_error("TCP ping-pong: the echo thread closed or failed after " + std::to_string(i) + " round trips");
        const std::uint64_t t1 = ticks();
        if (i >= warmup) s.push_back(t1 - t0);
      }
    } catch (const std::exception& e) {
      err = e.what();
    }
  });
  ping.join();
  if (!err.empty()) throw std::runtime_error(err);
  return s;
}

struct Bulk {
  std::uint64_t bytes = 0;
  double seconds = 0;
  double mb_s() const { return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0; }
};

/// `total` bytes over one loopback socket, 1 MiB writes; the receiver recvs into 1 MiB and, with
/// `file_dir`, pwrites each chunk to a fresh file there with an fdatasync every 20 ms and at the
/// end. Timed from the first write to the last byte received (and synced).
Bulk tcp_bulk(std::uint64_t total, const std::string& file_dir) {
  std::uint16_t port = 0;
  Fd l = listen_loopback(port);
  Bulk res{total, 0};
  std::uint64_t t_end = 0;
  std::string rx_err;
  std::thread rx([&] {
    try {
      Fd c(::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC));
      if (c.fd < 0) return;
      Fd file;
      if (!file_dir.empty()) {
        std::string path = file_dir + "/.shmbus-bench-bulk.XXXXXX";
        file.fd = ::mkstemp(path.data());
        if (file.fd < 0) sys_fail("mkstemp in " + file_dir);
        ::unlink(path.c_str());
      }
      std::vector<char> buf(kMiB);
      std::uint64_t got = 0, last_sync = mono_ns();
      while (got < total) {
        const ssize_t r = ::recv(c.fd, buf.data(), std::min<std::uint64_t>(buf.size(), total - got), 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) sys_fail("bulk recv");
        if (file.fd >= 0) {
          for (ssize_t w = 0; w < r;) {
            const ssize_t k = ::pwrite(file.fd, buf.data() + w, static_cast<std::size_t>(r - w), static_cast<off_t>(got) + w);
            if (k <= 0) sys_fail("bulk pwrite");
            w += k;
          }
          if (mono_ns() - last_sync >= 20'000'000) ::fdatasync(file.fd), last_sync = mono_ns();
        }
        got += static_cast<std::uint64_t>(r);
      }
      if (file.fd >= 0 && ::fdatasync(file.fd) != 0) sys_fail("bulk fdatasync");
      t_end = mono_ns();
    } catch (const std::exception& e) {
      rx_err = e.what();
    }
  });
  Defer join{[&] {
    ::shutdown(l.fd, SHUT_RDWR);  // unblocks accept() if connect failed
    if (rx.joinable()) rx.join();
  }};
  std::vector<char> chunk(kMiB);
  for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>((i * 2654435761U) >> 13);
  {
    Fd c = connect_loopback(port);
    const std::uint64_t t0 = mono_ns();
    for (std::uint64_t sent = 0; sent < total; sent += kMiB)
      if (!io_all(true, c.fd, chunk.data(), std::min(kMiB, total - sent))) sys_fail("bulk send");
    rx.join();
    if (!rx_err.empty() || t_end == 0) throw std::runtime_error("bulk receiver: " + (rx_err.empty() ? "no end" : rx_err));
    res.seconds = static_cast<double>(t_end - t0) / 1e9;
  }
  return res;
}

// --- the daemons ----------------------------------------------------------------------------------

std::string file_tail(const std::string& path, std::size_t max = 1500) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  return s.size() > max ? "..." + s.substr(s.size() - max) : s.empty() ? "(empty log)" : s;
}

/// One shmbusd of the replica set: DIR = BASE/NAME (with replication.secret), log BASE/NAME.log.
struct Daemon {
  std::string name, base, dir, listen;
  pid_t pid = -1;
  std::optional<Connection> conn;  // for stats

  Daemon(std::string n, std::string b, std::uint16_t port)
      : name(std::move(n)), base(std::move(b)), dir(base + "/" + name), listen("127.0.0.1:" + std::to_string(port)) {}
  Daemon(const Daemon&) = delete;
  ~Daemon() { stop(); }
  std::string log_path() const { return base + "/" + name + ".log"; }

  void start(const std::vector<std::string>& extra, const std::string& secret) {
    std::filesystem::create_directories(dir);
    const std::string sp = dir + "/replication.secret";
    std::ofstream(sp, std::ios::trunc) << secret << "\n";
    ::chmod(sp.c_str(), 0600);
    const std::string bin = DaemonLauncher::binary();
    std::vector<std::string> args{bin, "--dir", dir, "--listen", listen};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& x : args) argv.push_back(x.data());
    argv.push_back(nullptr);
    const std::string log = log_path();
    const pid_t parent = ::getpid();
    std::fflush(nullptr);
    pid = ::fork();
    if (pid < 0) sys_fail("fork");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the bench dies: so do its daemons
      if (::getppid() != parent) ::_exit(1);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd >= 0) ::dup2(fd, STDOUT_FILENO), ::dup2(fd, STDERR_FILENO);
      ::execv(bin.c_str(), argv.data());
      std::fprintf(stderr, "exec %s: %s\n", bin.c_str(), std::strerror(errno));
      ::_exit(127);
    }
    std::string err;
    const auto alive = [](void* p) {
      auto* d = static_cast<Daemon*>(p);
      int st = 0;
      if (::waitpid(d->pid, &st, WNOHANG) == 0) return true;
      d->pid = -1;  // reaped: never signal that pid again
      return false;
    };
    if (!wait_for_daemon(dir, 15'000, alive, this, err)) {
      const std::string why = name + " (" + bin + " " + listen + ") did not answer on " + dir + ": " + err +
                              "\n--- " + log + " ---\n" + file_tail(log);
      stop();
      throw std::runtime_error(why);
    }
    conn.emplace(ConnectionFactory(dir, "shmbus-bench-replicate").create_connection());
  }

  BusStats stats() {
    if (!conn) throw std::runtime_error(name + " is not running");
    return conn->stats();
  }

  /// SIGTERM, up to 10 s, then SIGKILL. Idempotent.
  void stop() {
    conn.reset();
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    const std::uint64_t deadline = mono_ns() + 10'000'000'000ULL;
    int st = 0;
    for (pid_t r = 0; r != pid && !(r < 0 && errno != EINTR); r = ::waitpid(pid, &st, WNOHANG)) {
      if (mono_ns() > deadline) {
        std::fprintf(stderr, "shmbus-bench: %s (pid %d) ignored SIGTERM for 10 s: SIGKILL\n", name.c_str(), static_cast<int>(pid));
        ::kill(pid, SIGKILL), ::waitpid(pid, &st, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid = -1;
  }
};

template <class Pred>
void wait_until(const std::string& what, std::uint64_t timeout_ms, Pred&& done, std::uint64_t every_ms = 10) {
  const std::uint64_t deadline = mono_ns() + timeout_ms * 1'000'000;
  while (!done()) {
    if (mono_ns() > deadline) throw std::runtime_error("timed out after " + std::to_string(timeout_ms) + " ms waiting for " + what);
    std::this_thread::sleep_for(std::chrono::milliseconds(every_ms));
  }
}

/// The leader's in-sync set is exactly `want` members (itself included), every one connected.
void wait_isr(Daemon& leader, std::size_t want) {
  wait_until("the leader's in-sync set to hold " + std::to_string(want) + " daemons", 30'000, [&] {
    const auto r = leader.stats().replication;
    return r.role == "leader" && r.in_sync.size() == want;
  });
}

/// Every connected follower holds everything the leader has (lag 0 in the leader's view).
void wait_caught_up(Daemon& leader, std::uint64_t timeout_ms = 60'000) {
  wait_until("the followers to catch up", timeout_ms, [&] {
    for (const auto& r : leader.stats().replication.replicas)
      if (r.connected && r.lag != 0) return false;
    return true;
  }, 20);
}

// --- sends ------------------------------------------------------------------------------------------

struct SendCase {
  std::string key, label;
  std::uint64_t n = 0;
  double rtt_adjacent = 0;  // p50 of the TCP RTT chunk measured right before this follower count's cases
  Percentiles p;
  std::uint64_t over_1ms = 0, over_4ms = 0;  // sends that took longer
  double seconds = 0;                        // the n timed sends, wall
  std::string error;
  double msgs_s() const { return seconds > 0 ? static_cast<double>(n) / seconds : 0; }
};

/// `warmup` + `n` sends of `size` bytes, one at a time, to a fresh queue `qname` that holds them
/// all; returns each timed send()'s duration in ticks.
std::vector<std::uint64_t> run_sends(const std::string& dir, const std::string& qname, Acks acks, std::uint32_t size,
                                     std::uint64_t warmup, std::uint64_t n, double& seconds) {
  Connection conn = ConnectionFactory(dir, "shmbus-bench-replicate-producer").create_connection();
  Session s = conn.create_session();
  const ProducerOptions po{.disable_timestamp = true, .delivery_mode = DeliveryMode::Persistent, .acks = acks};
  const DestinationOptions d{.capacity = static_cast<std::uint32_t>(std::bit_ceil(std::max<std::uint64_t>(16, warmup + n))),
                             .max_message_size = size};
  MessageProducer out = s.create_producer(Queue(qname), po, d);  // send_timeout: 10 s
  std::vector<std::byte> msg(size, std::byte{0x5a});
  std::vector<std::uint64_t> samples;
  samples.reserve(n);
  std::uint64_t t_start = 0;
  for (std::uint64_t i = 0; i < warmup + n; ++i) {
    if (i == warmup) t_start = mono_ns();
    stamp_message(msg.data(), i + 1);
    const std::uint64_t t0 = ticks();
    const Status st = out.send(msg);
    const std::uint64_t t1 = ticks();
    if (st != Status::Ok)
      throw std::runtime_error(std::string("send: ") + to_string(st) + " after " + std::to_string(i) + " sends (" +
                               fmt("%.1f ms", static_cast<double>(t1 - t0) * clock_info().ns_per_tick / 1e6) + ")");
    if (i >= warmup) samples.push_back(t1 - t0);
  }
  seconds = static_cast<double>(mono_ns() - t_start) / 1e9;
  return samples;
}

const DestinationStats* find_queue(const BusStats& b, const std::string& name) {
  for (const auto& d : b.destinations)
    if (d.uri == "queue://" + name) return &d;
  return nullptr;
}

/// A process's CPU since it started, from /proc/PID/task/*/schedstat: its busiest thread's ms on a
/// CPU and ms runnable but waiting for one, and all its threads' ms on a CPU.
struct CpuUse {
  double busiest_run_ms = 0, busiest_wait_ms = 0, total_run_ms = 0;
};
CpuUse cpu_since_start(pid_t pid) {
  CpuUse u;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream f(e.path() / "schedstat");
    double run = 0, wait = 0;
    if (!(f >> run >> wait)) continue;
    u.total_run_ms += run / 1e6;
    if (run / 1e6 > u.busiest_run_ms) u.busiest_run_ms = run / 1e6, u.busiest_wait_ms = wait / 1e6;
  }
  return u;
}

struct CatchUp {
  std::uint64_t messages = 0, queue_log_bytes = 0, fetched_bytes = 0;
  double fill_seconds = 0, follower_b_seconds = 0;  // the fill's sends; B done after the fill
  double from_spawn_seconds = 0, steady_seconds = 0;
  std::uint64_t steady_bytes = 0;
  CpuUse follower;  // follower-c from its spawn
  std::string error;
  double spawn_mb_s() const { return from_spawn_seconds > 0 ? static_cast<double>(fetched_bytes) / from_spawn_seconds / 1e6 : 0; }
  double steady_mb_s() const { return steady_seconds > 0 ? static_cast<double>(steady_bytes) / steady_seconds / 1e6 : 0; }
};

std::string pct_row(const std::string& label, std::uint64_t n, const Percentiles& p, const std::string& extra) {
  return fmt("   %-38s %7llu %10.0f %10.0f %10.0f %10.0f ", label.c_str(), static_cast<unsigned long long>(n), p.p50, p.p99,
             p.p999, p.max) + extra + "\n";
}

}  // namespace

int run_replicate(const Args& a) {
  const bool quick = a.quick;
  const std::uint64_t rtt_n = quick ? 20'000 : 100'000, rtt_warm = quick ? 1'000 : 5'000;
  const std::uint64_t n_repl = a.iterations_set ? a.iterations : quick ? 2'000 : 10'000;
  const std::uint64_t n_mem = quick ? 20'000 : 100'000, n_dur = quick ? 500 : 2'000;
  const std::uint64_t fill_bytes = (quick ? 64 : 256) * kMiB;
  const std::string parent = std::filesystem::is_directory("/var/tmp") ? "/var/tmp" : std::filesystem::temp_directory_path().string();
  std::string base = parent + "/shmbus-bench-repl.XXXXXX";
  if (::mkdtemp(base.data()) == nullptr) sys_fail("mkdtemp in " + parent);
  Defer rm{[&] {
    std::error_code ec;
    std::filesystem::remove_all(base, ec);
  }};
  const Context c = make_context(a, "own leader + 2 followers (" + DaemonLauncher::binary() + ") in " + base);
  std::vector<std::string> problems;
  std::vector<std::uint64_t> rtt, cold;
  const auto rtt_chunk = [&](const char* when, std::uint64_t n) {
    std::fprintf(stderr, "TCP loopback ping-pong 64 B x %llu (%s) ... ", static_cast<unsigned long long>(n), when);
    auto s = tcp_rtt(rtt_warm, n, c.can_pin);
    rtt.insert(rtt.end(), s.begin(), s.end());
    const double p50 = percentiles(s, clock_info().ns_per_tick, 1.0).p50;
    std::fprintf(stderr, "p50 %.0f ns\n", p50);
    return p50;
  };

  // 1. the floor (first chunk); bulk.
  rtt_chunk("start", rtt_n / 4);
  std::fprintf(stderr, "TCP loopback bulk %s ... ", fmt("%llu MiB", static_cast<unsigned long long>(fill_bytes / kMiB)).c_str());
  const Bulk bulk = tcp_bulk(fill_bytes, {});
  std::fprintf(stderr, "%.0f MB/s\nTCP loopback bulk into a file in %s ... ", bulk.mb_s(), base.c_str());
  const Bulk bulk_file = tcp_bulk(fill_bytes, base);
  std::fprintf(stderr, "%.0f MB/s\n", bulk_file.mb_s());

  // 2. the replica set: free loopback ports (all three held open at once, so they differ).
  std::uint16_t ports[3];
  {
    Fd l0 = listen_loopback(ports[0]), l1 = listen_loopback(ports[1]), l2 = listen_loopback(ports[2]);
  }
  std::string secret;  // 32 random hex digits, the same in every daemon's DIR/replication.secret
  std::random_device rd;
  for (int i = 0; i < 4; ++i) secret += fmt("%08x", rd());
  Daemon lead("leader", base, ports[0]), fb("follower-b", base, ports[1]), fc("follower-c", base, ports[2]);
  std::vector<SendCase> cases;
  CatchUp cu;
  const std::vector<std::string> follow_args{"--follow", lead.listen};
  try {
    std::fprintf(stderr, "starting leader %s, followers %s and %s in %s ... ", lead.listen.c_str(), fb.listen.c_str(),
                 fc.listen.c_str(), base.c_str());
    lead.start({"--replicate-to", fb.listen + "," + fc.listen}, secret);
    fb.start(follow_args, secret);
    fc.start(follow_args, secret);
    wait_isr(lead, 3);
    std::fprintf(stderr, "all in sync\n");
    const std::string tag = std::to_string(::getpid());
    for (const int followers : {2, 1}) {
      if (followers == 1) {
        std::fprintf(stderr, "stopping follower-c ... ");
        fc.stop();
        wait_isr(lead, 2);
        std::fprintf(stderr, "leader + follower-b in sync\n");
      }
      const double adjacent = rtt_chunk(followers == 2 ? "before the 2-follower cases" : "before the 1-follower cases", rtt_n / 4);
      if (followers == 1) {
        std::fprintf(stderr, "TCP loopback ping-pong 64 B x %llu, one every 200 us ... ", static_cast<unsigned long long>(rtt_n / 10));
        cold = tcp_rtt(rtt_n / 100, rtt_n / 10, c.can_pin, 200);
        std::fprintf(stderr, "done\n");
      }
      for (const auto& [acks, key, n] : {std::tuple{Acks::Replicated, "Replicated", n_repl}, std::tuple{Acks::Memory, "Memory", n_mem},
                                         std::tuple{Acks::Durable, "Durable", n_dur}}) {
        SendCase sc;
        sc.key = "followers_" + std::to_string(followers) + "_" + key;
        sc.label = fmt("%d follower%s, Acks::%s", followers, followers == 1 ? "" : "s", key);
        sc.n = n;
        sc.rtt_adjacent = adjacent;
        std::fprintf(stderr, "  %-36s 64 B x %llu ... ", sc.label.c_str(), static_cast<unsigned long long>(n));
        try {
          auto s = run_sends(lead.dir, "bench.repl." + sc.key + "." + tag, acks, 64, 20, n, sc.seconds);
          sc.p = percentiles(s, clock_info().ns_per_tick, 1.0);
          for (const auto x : s) {
            const double ns = static_cast<double>(x) * clock_info().ns_per_tick;
            sc.over_1ms += ns > 1e6, sc.over_4ms += ns > 4e6;
          }
          std::fprintf(stderr, "p50 %.0f ns\n", sc.p.p50);
          wait_caught_up(lead);
        } catch (const std::exception& e) {
          sc.error = e.what();
          problems.push_back(sc.label + ": " + sc.error);
          std::fprintf(stderr, "FAILED: %s\n", sc.error.c_str());
        }
        cases.push_back(std::move(sc));
      }
    }

    // 3. catch-up: fill with C stopped (B follows meanwhile), then start C.
    cu.messages = fill_bytes / kFillSize;
    const std::string fill = "bench.repl.fill." + tag;
    std::fprintf(stderr, "filling queue://%s: %llu x %u B (Acks::Memory, follower-c stopped) ... ", fill.c_str(),
                 static_cast<unsigned long long>(cu.messages), kFillSize);
    (void)run_sends(lead.dir, fill, Acks::Memory, kFillSize, 0, cu.messages, cu.fill_seconds);
    std::uint64_t t0 = mono_ns();
    std::map<std::string, std::uint64_t> ends;  // the leader's logs and their ends
    wait_until("the leader to log all " + std::to_string(cu.messages) + " messages", 120'000, [&] {
      ends.clear();
      for (const auto& l : lead.stats().replication.logs) ends[l.log] = l.log_end_offset;
      return ends["queue." + fill] >= cu.messages;
    }, 50);
    wait_caught_up(lead, 300'000);
    cu.follower_b_seconds = static_cast<double>(mono_ns() - t0) / 1e9;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));  // log_bytes is refreshed every 100 ms
    if (const DestinationStats* d = find_queue(lead.stats(), fill)) cu.queue_log_bytes = d->log_bytes;
    std::fprintf(stderr, "%.2f s; log %s B; follower-b caught up %.2f s later\nstarting follower-c: catch-up of %zu logs ... ",
                 cu.fill_seconds, grouped(static_cast<double>(cu.queue_log_bytes)).c_str(), cu.follower_b_seconds, ends.size());
    t0 = mono_ns();
    fc.start(follow_args, secret);
    std::uint64_t first_t = 0, first_b = 0, last_t = 0;
    wait_until("follower-c to catch up", 300'000, [&] {
      const BusStats b = fc.stats();
      const std::uint64_t now = mono_ns();
      cu.fetched_bytes = b.replication.bytes;
      if (first_t == 0 && cu.fetched_bytes != 0) first_t = now, first_b = cu.fetched_bytes;
      std::size_t done = 0;
      for (const auto& l : b.replication.logs)
        if (auto it = ends.find(l.log); it != ends.end() && l.log_end_offset >= it->second) ++done;
      last_t = now;
      return done == ends.size();
    }, 2);
    cu.follower = cpu_since_start(fc.pid);
    cu.from_spawn_seconds = static_cast<double>(last_t - t0) / 1e9;
    if (last_t > first_t && cu.fetched_bytes > first_b) {
      cu.steady_seconds = static_cast<double>(last_t - first_t) / 1e9;
      cu.steady_bytes = cu.fetched_bytes - first_b;
    }
    std::fprintf(stderr, "%s B in %.3f s from spawn (%.0f MB/s), %.0f MB/s steady\n",
                 grouped(static_cast<double>(cu.fetched_bytes)).c_str(), cu.from_spawn_seconds, cu.spawn_mb_s(), cu.steady_mb_s());
  } catch (const std::exception& e) {
    cu.error = e.what();
    std::string logs;
    for (const Daemon* d : {&lead, &fb, &fc}) logs += "\n--- " + d->log_path() + " ---\n" + file_tail(d->log_path(), 800);
    problems.push_back(cu.error + logs);
    std::fprintf(stderr, "\nFAILED: %s\n", cu.error.c_str());
  }
  for (Daemon* d : {&fc, &fb, &lead}) d->stop();
  rtt_chunk("end", rtt_n - rtt.size());
  const Percentiles rp = percentiles(rtt, clock_info().ns_per_tick, 1.0), cp = percentiles(cold, clock_info().ns_per_tick, 1.0);
  const auto ratio = [](double x, double floor) { return floor > 0 ? x / floor : 0; };
  const auto times = [](double r) { return r < 0.01 ? std::string("<0.01x") : fmt("%.2fx", r); };

  // --- the table
  std::string t = "replicate: Acks::Replicated PERSISTENT queue sends and follower catch-up, next to loopback TCP\n" + context_lines(c);
  t += "daemons : leader --replicate-to B,C (--fsync interval:10, min in-sync 2), followers --follow A, under " + parent + "\n\n";
  t += std::string("1. loopback TCP (127.0.0.1, blocking sockets, TCP_NODELAY), two threads of this process") +
       (c.can_pin ? " on CPUs 0 and 1\n" : ", not pinned\n");
  t += fmt("   %-38s %7s %10s %10s %10s %10s\n", "case", "n", "p50 ns", "p99 ns", "p99.9 ns", "max ns");
  t += pct_row("64 B round trip (4 chunks pooled)", rtt.size(), rp, "");
  t += pct_row("the same, one every 200 us (CPUs idle)", cold.size(), cp, fmt("(p50 %.2fx back-to-back)", ratio(cp.p50, rp.p50)));
  t += fmt("   bulk, 1 MiB writes, %s: %.0f MB/s; into a file (pwrite, fdatasync every 20 ms and at the end): %.0f MB/s\n\n",
           fmt("%llu MiB", static_cast<unsigned long long>(fill_bytes / kMiB)).c_str(), bulk.mb_s(), bulk_file.mb_s());
  t += "2. 64 B PERSISTENT sends to a fresh queue on the leader, one at a time, send() duration (no consumer: the queue\n"
       "   holds them all). Acks::Replicated returns once every in-sync follower has fetched past the message.\n";
  t += fmt("   %-38s %7s %10s %10s %10s %10s %9s %5s %5s  %s\n", "case", "n", "p50 ns", "p99 ns", "p99.9 ns", "max ns", "msgs/s",
           ">1ms", ">4ms", "p50 / RTT p50: pooled, adjacent");
  for (const auto& s : cases)
    t += s.error.empty() ? pct_row(s.label, s.n, s.p, fmt("%9s %5llu %5llu  ", grouped(s.msgs_s()).c_str(), static_cast<unsigned long long>(s.over_1ms),
                                                          static_cast<unsigned long long>(s.over_4ms)) +
                                                          times(ratio(s.p.p50, rp.p50)) + ", " + times(ratio(s.p.p50, s.rtt_adjacent)) +
                                                          fmt(" (%.0f ns)", s.rtt_adjacent))
                         : fmt("   %-38s FAILED: ", s.label.c_str()) + s.error + "\n";
  t += "\n3. follower catch-up: " + grouped(static_cast<double>(cu.messages)) + " x 1 KiB PERSISTENT messages logged while follower-c was\n"
       "   stopped; then it is started and fetches every log it lacks (ReplicationStats::bytes, polled every 2 ms)\n";
  if (cu.from_spawn_seconds > 0) {
    t += fmt("   leader's queue log %s B; fill sends %.2f s (%s msgs/s); follower-b caught up %.2f s after them\n",
             grouped(static_cast<double>(cu.queue_log_bytes)).c_str(), cu.fill_seconds,
             grouped(static_cast<double>(cu.messages) / cu.fill_seconds).c_str(), cu.follower_b_seconds);
    const auto row = [&](const char* label, std::uint64_t bytes, double secs, double mbs) {
      t += fmt("   %-44s %12s B %7.3f s %6.0f MB/s = %3.0f%% of TCP bulk, %3.0f%% of bulk into a file\n", label,
               grouped(static_cast<double>(bytes)).c_str(), secs, mbs, 100 * ratio(mbs, bulk.mb_s()), 100 * ratio(mbs, bulk_file.mb_s()));
    };
    row("from spawn (process start + handshake incl.)", cu.fetched_bytes, cu.from_spawn_seconds, cu.spawn_mb_s());
    if (cu.steady_seconds > 0) row("steady (first poll with bytes -> caught up)", cu.steady_bytes, cu.steady_seconds, cu.steady_mb_s());
    const double win = cu.from_spawn_seconds * 1e3;
    t += fmt("   CPU in those %.0f ms: follower-c's busiest thread (its fetch loop) on a CPU %.0f ms (%.0f%%), runnable but\n"
             "   waiting for a CPU %.0f ms (%.0f%%); all its threads %.0f ms\n",
             win, cu.follower.busiest_run_ms, 100 * cu.follower.busiest_run_ms / win, cu.follower.busiest_wait_ms,
             100 * cu.follower.busiest_wait_ms / win, cu.follower.total_run_ms);
  } else {
    t += "   not measured: " + cu.error + "\n";
  }
  for (const auto& p : problems) t += "FAILED: " + p + "\n";

  // --- the JSON
  Json j;
  j.begin().str("benchmark", "replicate").boolean("quick", quick);
  context_json(j, c);
  j.begin("tcp_rtt").integer("size", 64).boolean("pinned_cpus_0_1", c.can_pin).integer("n", static_cast<std::int64_t>(rtt.size()));
  pct_json(j, rp);
  j.end().begin("tcp_rtt_one_every_200us").integer("n", static_cast<std::int64_t>(cold.size()));
  pct_json(j, cp);
  j.end();
  for (const auto& [k, b] : {std::pair{"tcp_bulk", &bulk}, std::pair{"tcp_bulk_into_file", &bulk_file}})
    j.begin(k).integer("bytes", static_cast<std::int64_t>(b->bytes)).num("seconds", b->seconds, 4).num("mb_per_s", b->mb_s()).end();
  j.begin("sends").integer("size", 64).str("queue", "fresh per case, holds every message, no consumer");
  for (const auto& s : cases) {
    j.begin(s.key).integer("n", static_cast<std::int64_t>(s.n));
    if (s.error.empty()) {
      pct_json(j, s.p);
      j.num("msgs_per_s", s.msgs_s()).num("p50_to_tcp_rtt_p50", ratio(s.p.p50, rp.p50), 3);
      j.integer("over_1ms", static_cast<std::int64_t>(s.over_1ms)).integer("over_4ms", static_cast<std::int64_t>(s.over_4ms));
      j.num("adjacent_tcp_rtt_p50_ns", s.rtt_adjacent).num("p50_to_adjacent_tcp_rtt_p50", ratio(s.p.p50, s.rtt_adjacent), 3);
    } else {
      j.str("error", s.error);
    }
    j.end();
  }
  j.end();
  j.begin("catch_up").integer("message_size", kFillSize).integer("messages", static_cast<std::int64_t>(cu.messages));
  j.integer("leader_queue_log_bytes", static_cast<std::int64_t>(cu.queue_log_bytes))
      .integer("fetched_bytes", static_cast<std::int64_t>(cu.fetched_bytes))
      .num("fill_seconds", cu.fill_seconds, 4)
      .num("follower_b_done_after_fill_seconds", cu.follower_b_seconds, 4)
      .num("from_spawn_seconds", cu.from_spawn_seconds, 4)
      .num("from_spawn_mb_per_s", cu.spawn_mb_s())
      .integer("steady_bytes", static_cast<std::int64_t>(cu.steady_bytes))
      .num("steady_seconds", cu.steady_seconds, 4)
      .num("steady_mb_per_s", cu.steady_mb_s())
      .num("steady_to_tcp_bulk", ratio(cu.steady_mb_s(), bulk.mb_s()), 3)
      .num("steady_to_tcp_bulk_into_file", ratio(cu.steady_mb_s(), bulk_file.mb_s()), 3);
  j.begin("follower_c_cpu_from_spawn").num("busiest_thread_cpu_ms", cu.follower.busiest_run_ms, 2)
      .num("busiest_thread_runnable_wait_ms", cu.follower.busiest_wait_ms, 2).num("all_threads_cpu_ms", cu.follower.total_run_ms, 2).end();
  if (!cu.error.empty()) j.str("error", cu.error);
  j.end().end();
  Args out = a;
  if (out.out.empty() && std::filesystem::is_directory("bench/results")) out.out = "bench/results/replicate.json";
  const int rc = emit(out, t, j.text());
  if (!out.out.empty()) std::fprintf(stderr, "JSON written to %s\n", out.out.c_str());
  if (!problems.empty()) {
    std::fprintf(stderr, "shmbus-bench: replicate: %zu case(s) failed (see the report)\n", problems.size());
    return 1;
  }
  return rc;
}

}  // namespace shmbus::bench
