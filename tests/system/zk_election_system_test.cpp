// ZooKeeper leader election (daemon/zk_election.*) against a real ZooKeeper: one server per test
// suite, started on a free loopback port by scripts/zookeeper.sh (the Debian package `zookeeper`
// must be installed: without it every test fails, it does not skip). Each test uses its own root
// znode, so the tests do not see each other's candidates.
//
// Every wait is a condition-variable wait for a predicate over the views the listeners reported,
// with a generous deadline; nothing sleeps to let something happen.
//
// This binary is also the helper of the multi-process test: `shmbus-zk-tests --zk-candidate
// CONNECT ROOT SELF SESSION_MS` runs one ZkElection, prints "VIEW ROLE LEADER EPOCH" lines and
// stops cleanly when its stdin closes.
#include "process.hpp"
#include "zk_election.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <atomic>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using shmbus::daemon::ZkConfig;
using shmbus::daemon::ZkElection;
using shmbus::daemon::ZkView;
using shmbus::systest::Child;
using Role = ZkView::Role;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kWait = 30s;                     // generous: elections take milliseconds
constexpr std::uint32_t kSessionMs = 2000;      // short sessions: failover after a crash in ~2 s
constexpr const char* kZkJar = "/usr/share/java/zookeeper.jar";

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  std::uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// ---- the ZooKeeper server (scripts/zookeeper.sh) --------------------------------------------

bool run_script(const std::vector<std::string>& args, std::string& output) {
  std::vector<std::string> argv = {"/bin/bash", SHMBUS_ZK_SCRIPT};
  argv.insert(argv.end(), args.begin(), args.end());
  Child c = Child::spawn(argv, {.pipe_stdin = false, .pipe_stdout = true, .pipe_stderr = true});
  std::string out, err;
  c.drain(std::chrono::milliseconds(90s), out, err);
  const auto st = c.wait_exit(std::chrono::milliseconds(30s));
  output = out + err;
  return st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0;
}

struct ZkServer {
  std::string dir;
  std::uint16_t port = 0;
  std::string error;  // why it is not running; empty when it is

  std::string connect() const { return "127.0.0.1:" + std::to_string(port); }

  void start_fresh() {
    if (!std::filesystem::exists(kZkJar)) {
      error = std::string("ZooKeeper is not installed (") + kZkJar +
              " is missing): apt-get install zookeeper. These tests need a real ZooKeeper.";
      return;
    }
    char tmpl[] = "/tmp/shmbus-zk-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      error = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    dir = tmpl;
    // The script's watchdog stops ZooKeeper should this process die without TearDownTestSuite.
    ::setenv("ZK_OWNER_PID", std::to_string(::getpid()).c_str(), 1);
    std::string out;
    for (int attempt = 0; attempt < 3; ++attempt) {  // the free port may be taken in between
      port = free_loopback_port();
      if (port != 0 && run_script({"start", dir, std::to_string(port)}, out)) {
        error.clear();
        return;
      }
      error = "scripts/zookeeper.sh start " + dir + " " + std::to_string(port) + " failed:\n" + out;
    }
  }

  bool restart(std::string& out) { return run_script({"start", dir, std::to_string(port)}, out); }
  bool stop(std::string& out) { return run_script({"stop", dir}, out); }

  void shutdown() {
    if (dir.empty()) return;
    std::string out;
    if (!stop(out)) std::cerr << "scripts/zookeeper.sh stop failed:\n" << out;
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    dir.clear();
  }
};

ZkServer& server() {
  static ZkServer s;
  return s;
}

// ---- a TCP proxy that can black-hole a client (a network partition) ---------------------------

class TcpProxy {
 public:
  explicit TcpProxy(std::uint16_t upstream) : upstream_(upstream) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 64) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
        ::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0)
      throw std::runtime_error(std::string("proxy setup: ") + std::strerror(errno));
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~TcpProxy() {
    {
      std::lock_guard lk(mu_);
      quit_ = true;
    }
    wake();
    thread_.join();
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }
  std::uint16_t port() const { return port_; }
  /// On: nothing is forwarded or accepted any more (connections hang, like a partition).
  /// Off again: the hung connections are closed and new ones are forwarded.
  void set_blackhole(bool on) {
    {
      std::lock_guard lk(mu_);
      blackhole_ = on;
    }
    wake();
  }

 private:
  struct Pair {
    int client, upstream;
  };
  void wake() {
    const char b = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_[1], &b, 1);
  }
  static bool forward(int from, int to) {
    char buf[16384];
    const ssize_t n = ::read(from, buf, sizeof buf);
    if (n <= 0) return false;
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = ::send(to, buf + off, static_cast<std::size_t>(n - off), MSG_NOSIGNAL);
      if (w <= 0) return false;
      off += w;
    }
    return true;
  }
  int connect_upstream() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(upstream_);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
    if (fd >= 0) ::close(fd);
    return -1;
  }
  void run() {
    std::vector<Pair> pairs;
    bool was_blackholed = false;
    for (;;) {
      bool bh = false;
      {
        std::lock_guard lk(mu_);
        if (quit_) break;
        bh = blackhole_;
      }
      if (was_blackholed && !bh) {  // healed: drop the connections that hung meanwhile
        for (auto& p : pairs) ::close(p.client), ::close(p.upstream);
        pairs.clear();
      }
      was_blackholed = bh;
      std::vector<pollfd> fds{{wake_[0], POLLIN, 0}};
      if (!bh) {
        fds.push_back({listen_fd_, POLLIN, 0});
        for (const auto& p : pairs) {
          fds.push_back({p.client, POLLIN, 0});
          fds.push_back({p.upstream, POLLIN, 0});
        }
      }
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[0].revents) {
        char b[64];
        while (::read(wake_[0], b, sizeof b) > 0) {
        }
        continue;  // the mode may have changed
      }
      std::vector<bool> dead(pairs.size(), false);
      for (std::size_t i = 0; i < pairs.size(); ++i) {
        const auto& c = fds[2 + 2 * i];
        const auto& u = fds[3 + 2 * i];
        if (c.revents && !forward(pairs[i].client, pairs[i].upstream)) dead[i] = true;
        if (!dead[i] && u.revents && !forward(pairs[i].upstream, pairs[i].client)) dead[i] = true;
      }
      for (std::size_t i = pairs.size(); i-- > 0;)
        if (dead[i]) {
          ::close(pairs[i].client);
          ::close(pairs[i].upstream);
          pairs.erase(pairs.begin() + static_cast<std::ptrdiff_t>(i));
        }
      if (fds[1].revents) {
        const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          const int u = connect_upstream();
          if (u < 0) ::close(c);
          else pairs.push_back({c, u});
        }
      }
    }
    for (auto& p : pairs) ::close(p.client), ::close(p.upstream);
  }

  std::uint16_t upstream_;
  std::uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::mutex mu_;
  bool blackhole_ = false;
  bool quit_ = false;
  std::thread thread_;
};

// ---- what the members reported ----------------------------------------------------------------

struct Event {
  Clock::time_point at;
  ZkView view;
};

struct Stable {
  std::string leader;
  std::uint32_t epoch = 0;
};

class Views {
 public:
  void record(const std::string& who, const ZkView& v) {
    std::lock_guard lk(mu_);
    last_[who] = v;
    history_[who].push_back({Clock::now(), v});
    cv_.notify_all();
  }
  ZkView last(const std::string& who) const {
    std::lock_guard lk(mu_);
    auto it = last_.find(who);
    return it == last_.end() ? ZkView{} : it->second;
  }
  std::vector<Event> history(const std::string& who) const {
    std::lock_guard lk(mu_);
    auto it = history_.find(who);
    return it == history_.end() ? std::vector<Event>{} : it->second;
  }
  /// Waits until exactly one of `who` leads (with an epoch above `above`) and all the others
  /// follow it under that epoch.
  std::optional<Stable> wait_stable(const std::vector<std::string>& who, std::uint32_t above = 0,
                                    std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lk(mu_);
    std::optional<Stable> s;
    cv_.wait_for(lk, timeout, [&] { return (s = stable_locked(who, above)).has_value(); });
    return s;
  }
  /// Waits until `who` reports a view matching `pred`.
  bool wait_for(const std::string& who, const std::function<bool(const ZkView&)>& pred,
                std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return pred(last_[who]); });
  }
  std::string describe() const {
    std::lock_guard lk(mu_);
    std::ostringstream o;
    for (const auto& [who, v] : last_)
      o << "  " << who << ": " << to_string(v.role) << " " << v.leader << " epoch " << v.epoch << "\n";
    return o.str();
  }
  /// Safety over the whole test: two leaderships never share an epoch, and the epochs of
  /// successive leaderships (in the order they were first reported) strictly increase.
  void check_epochs() const {
    std::lock_guard lk(mu_);
    struct Lead {
      Clock::time_point at;
      std::string who;
      std::uint32_t epoch;
    };
    std::vector<Lead> leads;
    for (const auto& [who, h] : history_)
      for (const auto& e : h)
        if (e.view.role == Role::Leader) {
          bool seen = false;  // re-reported after a reconnection within the same session
          for (const auto& l : leads) seen |= (l.who == who && l.epoch == e.view.epoch);
          if (!seen) leads.push_back({e.at, who, e.view.epoch});
        }
    std::sort(leads.begin(), leads.end(), [](const Lead& a, const Lead& b) { return a.at < b.at; });
    for (std::size_t i = 1; i < leads.size(); ++i)
      EXPECT_GT(leads[i].epoch, leads[i - 1].epoch)
          << leads[i].who << " led with epoch " << leads[i].epoch << " after " << leads[i - 1].who << " led with "
          << leads[i - 1].epoch;
  }

 private:
  std::optional<Stable> stable_locked(const std::vector<std::string>& who, std::uint32_t above) {
    std::optional<Stable> s;
    for (const auto& w : who) {
      const ZkView& v = last_[w];
      if (v.role != Role::Leader) continue;
      if (s || v.leader != w) return std::nullopt;
      s = Stable{w, v.epoch};
    }
    if (!s || s->epoch <= above) return std::nullopt;
    for (const auto& w : who) {
      if (w == s->leader) continue;
      const ZkView& v = last_[w];
      if (v.role != Role::Follower || v.leader != s->leader || v.epoch != s->epoch) return std::nullopt;
    }
    return s;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, ZkView> last_;
  std::map<std::string, std::vector<Event>> history_;
};

bool ever_led(const std::vector<Event>& h) {
  return std::any_of(h.begin(), h.end(), [](const Event& e) { return e.view.role == Role::Leader; });
}

// ---- the fixture --------------------------------------------------------------------------------

class ZkElectionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server().start_fresh(); }
  static void TearDownTestSuite() { server().shutdown(); }

  void SetUp() override {
    ASSERT_TRUE(server().error.empty()) << server().error;
    static int n = 0;
    root_ = "/shmbus-test/" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
            std::to_string(::getpid()) + "-" + std::to_string(++n);
  }

  void TearDown() override {
    for (auto& [addr, m] : members_) m->stop();
    views_.check_epochs();
  }

  /// A member with address `addr` (registered as candidate when this returns).
  ZkElection& add(const std::string& addr, std::function<bool()> eligible = {}, std::string connect = {}) {
    ZkConfig cfg;
    cfg.connect = connect.empty() ? server().connect() : connect;
    cfg.root = root_;
    cfg.self = addr;
    cfg.session_timeout_ms = kSessionMs;
    auto el = std::make_unique<ZkElection>(cfg, [this, addr](const ZkView& v) { views_.record(addr, v); });
    if (eligible) el->set_eligible(std::move(eligible));
    std::string err;
    EXPECT_TRUE(el->start(err)) << addr << ": " << err;
    auto& ref = *el;
    members_[addr] = std::move(el);
    return ref;
  }

  ZkElection& member(const std::string& addr) { return *members_.at(addr); }

  Stable stable(const std::vector<std::string>& who, std::uint32_t above = 0) {
    auto s = views_.wait_stable(who, above);
    EXPECT_TRUE(s.has_value()) << "no single leader (epoch > " << above << ") followed by the others within "
                               << kWait.count() << " s; views:\n"
                               << views_.describe();
    return s.value_or(Stable{});
  }

  std::string root_;
  Views views_;  // declared before members_: the listeners write into it
  std::map<std::string, std::unique_ptr<ZkElection>> members_;
};

constexpr const char* A = "127.0.0.1:7001";
constexpr const char* B = "127.0.0.1:7002";
constexpr const char* C = "127.0.0.1:7003";

TEST_F(ZkElectionTest, ThreeCandidatesElectExactlyOneLeader) {
  add(A);
  add(B);
  add(C);
  const Stable s = stable({A, B, C});
  EXPECT_EQ(s.leader, A) << "the first registered candidate leads";
  EXPECT_GE(s.epoch, 1u);
  EXPECT_FALSE(ever_led(views_.history(B)));
  EXPECT_FALSE(ever_led(views_.history(C)));
  const ZkView v = member(A).view();
  EXPECT_EQ(v.role, Role::Leader);
  EXPECT_EQ(v.leader, A);
  EXPECT_EQ(member(B).view().leader, A);
}

TEST_F(ZkElectionTest, StoppingTheLeaderHandsOverWithHigherEpoch) {
  add(A);
  add(B);
  add(C);
  const Stable s1 = stable({A, B, C});
  ASSERT_EQ(s1.leader, A);

  member(A).stop();
  EXPECT_EQ(views_.last(A).role, Role::Unknown) << "a stopped member reports Unknown before stop() returns";
  const Stable s2 = stable({B, C}, s1.epoch);
  EXPECT_EQ(s2.leader, B) << "the next candidate in line takes over";
  EXPECT_GT(s2.epoch, s1.epoch);

  member(B).stop();
  const Stable s3 = stable({C}, s2.epoch);
  EXPECT_EQ(s3.leader, C);
  EXPECT_GT(s3.epoch, s2.epoch);
}

TEST_F(ZkElectionTest, OnlyInSyncReplicasMayTakeOver) {
  add(A);
  add(C);  // C registers before B ...
  add(B);
  const Stable s1 = stable({A, B, C});
  ASSERT_EQ(s1.leader, A);
  std::string err;
  ASSERT_TRUE(member(A).publish_isr({A, B}, err)) << err;
  EXPECT_FALSE(member(C).publish_isr({C}, err)) << "only the leader may publish the ISR";

  member(A).stop();
  const Stable s2 = stable({B, C}, s1.epoch);
  EXPECT_EQ(s2.leader, B) << "... but only B is in the ISR";
  EXPECT_FALSE(ever_led(views_.history(C)));

  // An empty set lifts the restriction.
  ASSERT_TRUE(member(B).publish_isr({}, err)) << err;
  member(B).stop();
  const Stable s3 = stable({C}, s2.epoch);
  EXPECT_EQ(s3.leader, C);
}

TEST_F(ZkElectionTest, IneligibleCandidatesDoNotLead) {
  auto a_ok = std::make_shared<std::atomic<bool>>(false);
  auto b_ok = std::make_shared<std::atomic<bool>>(false);
  add(A, [a_ok] { return a_ok->load(); });
  add(B, [b_ok] { return b_ok->load(); });
  // Nobody eligible: nobody leads. B becoming eligible lets it lead although A is first in line.
  b_ok->store(true);
  member(B).recheck();
  const Stable s1 = stable({A, B});
  EXPECT_EQ(s1.leader, B);

  add(C);
  const Stable s1c = stable({A, B, C});
  EXPECT_EQ(s1c.leader, B);
  member(B).stop();
  const Stable s2 = stable({A, C}, s1.epoch);
  EXPECT_EQ(s2.leader, C) << "A is first in line but still not eligible";

  a_ok->store(true);
  member(A).recheck();
  member(C).stop();
  const Stable s3 = stable({A}, s2.epoch);
  EXPECT_EQ(s3.leader, A);
  // A led only after it became eligible: exactly one leadership in its history.
  int leads = 0;
  for (const auto& e : views_.history(A)) leads += e.view.role == Role::Leader;
  EXPECT_EQ(leads, 1);
}

TEST_F(ZkElectionTest, PartitionedLeaderStepsDownBeforeItsSuccessorTakesOver) {
  TcpProxy proxy(server().port);
  add(A, {}, "127.0.0.1:" + std::to_string(proxy.port()));  // A reaches ZooKeeper through the proxy
  add(B);
  add(C);
  const Stable s1 = stable({A, B, C});
  ASSERT_EQ(s1.leader, A);

  // Partition A from ZooKeeper: its session expires on the server after kSessionMs; A's client
  // notices the silence after 2/3 of that and must report Unknown before anyone else leads.
  proxy.set_blackhole(true);
  ASSERT_TRUE(views_.wait_for(A, [](const ZkView& v) { return v.role == Role::Unknown; })) << views_.describe();
  const Stable s2 = stable({B, C}, s1.epoch);
  EXPECT_EQ(s2.leader, B);
  Clock::time_point a_down{}, b_up{};
  for (const auto& e : views_.history(A))
    if (e.view.role == Role::Unknown && a_down == Clock::time_point{}) a_down = e.at;
  for (const auto& e : views_.history(B))
    if (e.view.role == Role::Leader && b_up == Clock::time_point{}) b_up = e.at;
  EXPECT_LT(a_down, b_up) << "fencing: the old leader stepped down "
                          << std::chrono::duration_cast<std::chrono::milliseconds>(a_down - b_up).count()
                          << " ms after its successor took over";

  // Healed: A finds its session expired, registers again under a new one and follows B.
  proxy.set_blackhole(false);
  const Stable s3 = stable({A, B, C}, s1.epoch);
  EXPECT_EQ(s3.leader, B);
  EXPECT_EQ(s3.epoch, s2.epoch);
  int leads = 0;
  for (const auto& e : views_.history(A)) leads += e.view.role == Role::Leader;
  EXPECT_EQ(leads, 1) << "A never led again";

  // A registered again at the back of the line: when B goes, C (not A) is next.
  member(B).stop();
  const Stable s4 = stable({A, C}, s3.epoch);
  EXPECT_EQ(s4.leader, C);
}

TEST_F(ZkElectionTest, EpochSurvivesAZooKeeperRestart) {
  add(A);
  add(B);
  add(C);
  const Stable s1 = stable({A, B, C});

  std::string out;
  ASSERT_TRUE(server().stop(out)) << out;
  for (const char* m : {A, B, C})
    EXPECT_TRUE(views_.wait_for(m, [](const ZkView& v) { return v.role == Role::Unknown; }))
        << m << " still claims a role with ZooKeeper down";
  ASSERT_TRUE(server().restart(out)) << out;

  // The sessions may survive the restart (same leader, same epoch) or expire (a new election).
  const Stable s2 = stable({A, B, C});
  EXPECT_GE(s2.epoch, s1.epoch);
  member(s2.leader).stop();
  std::vector<std::string> rest;
  for (const char* m : {A, B, C})
    if (m != s2.leader) rest.push_back(m);
  const Stable s3 = stable(rest, s2.epoch);
  EXPECT_GT(s3.epoch, s2.epoch) << "the epoch znode survived the restart";
}

// ---- separate processes ----------------------------------------------------------------------

struct Candidate {
  std::string addr;
  Child child;
  std::thread reader;  // reads the child's stdout until it closes
  ~Candidate() {
    child.kill(SIGKILL);
    child.wait_exit(std::chrono::milliseconds(kWait));
    if (reader.joinable()) reader.join();
  }
};

TEST_F(ZkElectionTest, CandidatesInSeparateProcessesFailOverAfterACrash) {
  const std::string exe = self_exe();
  ASSERT_FALSE(exe.empty());
  std::mutex ready_mu;
  std::condition_variable ready_cv;
  std::map<std::string, bool> ready;
  std::vector<std::unique_ptr<Candidate>> cands;  // after what its readers use: destroyed first
  for (const char* addr : {A, B, C}) {
    auto c = std::make_unique<Candidate>();
    c->addr = addr;
    c->child = Child::spawn({exe, "--zk-candidate", server().connect(), root_, addr, std::to_string(kSessionMs)},
                            {.pipe_stdin = true, .pipe_stdout = true, .pipe_stderr = false});
    c->reader = std::thread([this, c = c.get(), &ready_mu, &ready_cv, &ready] {
      // Runs until the child's stdout closes (it exited); a silence of minutes means it hung.
      while (auto line = c->child.read_line(std::chrono::milliseconds(300s))) {
        std::istringstream in(*line);
        std::string tag, role, leader;
        std::uint32_t epoch = 0;
        in >> tag;
        if (tag == "READY") {
          std::lock_guard lk(ready_mu);
          ready[c->addr] = true;
          ready_cv.notify_all();
        } else if (tag == "VIEW" && (in >> role >> leader >> epoch)) {
          ZkView v;
          v.role = role == "leader" ? Role::Leader : role == "follower" ? Role::Follower : Role::Unknown;
          v.leader = leader == "-" ? "" : leader;
          v.epoch = epoch;
          views_.record(c->addr, v);
        }
      }
    });
    {
      // Registered before the next one starts: the order of the candidates is A, B, C.
      std::unique_lock lk(ready_mu);
      ASSERT_TRUE(ready_cv.wait_for(lk, kWait, [&] { return ready[addr]; })) << addr << " did not register";
    }
    cands.push_back(std::move(c));
  }
  const Stable s1 = stable({A, B, C});
  EXPECT_EQ(s1.leader, A);
  // A crashes: no clean close, so its session (and leadership) lasts until ZooKeeper expires it.
  cands[0]->child.kill(SIGKILL);
  const Stable s2 = stable({B, C}, s1.epoch);
  EXPECT_EQ(s2.leader, B);

  // B stops cleanly (stdin closed): C takes over at once.
  cands[1]->child.close_stdin();
  const auto st = cands[1]->child.wait_exit(std::chrono::milliseconds(kWait));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << shmbus::systest::describe_status(*st);
  const Stable s3 = stable({C}, s2.epoch);
  EXPECT_EQ(s3.leader, C);
  cands[2]->child.close_stdin();
  const auto st3 = cands[2]->child.wait_exit(std::chrono::milliseconds(kWait));
  ASSERT_TRUE(st3.has_value());
  EXPECT_TRUE(WIFEXITED(*st3) && WEXITSTATUS(*st3) == 0) << shmbus::systest::describe_status(*st3);
  EXPECT_TRUE(views_.wait_for(C, [](const ZkView& v) { return v.role == Role::Unknown; }))
      << "a stopping member reports Unknown before it exits";
}

// `--zk-candidate CONNECT ROOT SELF SESSION_MS`: one election member in its own process.
int candidate_main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s --zk-candidate CONNECT ROOT SELF SESSION_MS\n", argv[0]);
    return 2;
  }
  ZkConfig cfg;
  cfg.connect = argv[2];
  cfg.root = argv[3];
  cfg.self = argv[4];
  cfg.session_timeout_ms = static_cast<std::uint32_t>(std::strtoul(argv[5], nullptr, 10));
  ZkElection el(cfg, [](const ZkView& v) {
    std::printf("VIEW %s %s %u\n", to_string(v.role), v.leader.empty() ? "-" : v.leader.c_str(), v.epoch);
    std::fflush(stdout);
  });
  std::string err;
  if (!el.start(err)) {
    std::fprintf(stderr, "zk-candidate %s: %s\n", cfg.self.c_str(), err.c_str());
    return 1;
  }
  std::printf("READY\n");
  std::fflush(stdout);
  char buf[256];
  while (::read(0, buf, sizeof buf) > 0) {
  }
  el.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--zk-candidate") return candidate_main(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
