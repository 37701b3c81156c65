#include "replication_fixture.hpp"

#include "common/paths.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <netinet/in.h>
#include <set>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace shmbus::systest {

namespace fs = std::filesystem;

namespace {
constexpr Millis kPoll{5};  // stats poll interval (not synchronisation: conditions are re-checked)

std::string tail(const std::string& s, std::size_t n) { return s.size() > n ? "..." + s.substr(s.size() - n) : s; }
}  // namespace

std::uint16_t free_loopback_port() {
  static std::mutex mu;
  static std::set<std::uint16_t> handed_out;
  std::lock_guard lk(mu);
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    socklen_t len = sizeof sa;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0;
    ::close(fd);
    if (!ok) throw std::runtime_error(std::string("bind 127.0.0.1:0: ") + std::strerror(errno));
    const std::uint16_t port = ntohs(sa.sin_port);
    if (handed_out.insert(port).second) return port;
  }
  throw std::runtime_error("no fresh loopback port in 100 attempts");
}

void ReplicationTest::SetUp() {
  char tmpl[] = "/tmp/shmbus-repl.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr) << "mkdtemp failed";
  root_ = tmpl;
}

void ReplicationTest::TearDown() {
  // Clean stops (SIGTERM, exit 0): a replicating daemon must shut down as cleanly as any other.
  for (auto& n : nodes_) {
    n->conn.reset();
    if (!n->running()) continue;
    n->daemon->child().kill(SIGTERM);
    const auto st = n->daemon->child().wait_exit(kStopDeadline);
    EXPECT_TRUE(st.has_value()) << "node " << n->name << " did not exit within " << kStopDeadline.count()
                                << " ms of SIGTERM";
    if (st) {
      EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
          << "node " << n->name << " should exit 0 on SIGTERM but " << describe_status(*st);
    }
  }
  if (HasFailure()) dump_logs();
  for (auto& n : nodes_) {
    n->daemon.reset();
    const auto prefix = common::shm_prefix(n->canonical);
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/dev/shm", ec))
      if (e.path().filename().string().rfind(prefix, 0) == 0) ::unlink(e.path().c_str());
  }
  std::error_code ec;
  if (!HasFailure() || std::getenv("SHMBUS_KEEP_FAILED") == nullptr) fs::remove_all(root_, ec);
  else std::cerr << "kept " << root_ << " (SHMBUS_KEEP_FAILED)\n";
}

void ReplicationTest::dump_logs() const {
  for (const auto& n : nodes_) {
    std::ifstream in(n->log_file());
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::cerr << "---- node " << n->name << " (" << n->addr << ", " << n->dir << ") shmbusd log, all starts ----\n"
              << tail(all, 12000) << "\n";
  }
  std::cerr << "---------------------\n";
}

ReplNode& ReplicationTest::add_node(const std::string& name, const std::string& secret) {
  auto n = std::make_unique<ReplNode>();
  n->name = name;
  n->root = root_ + "/" + name;
  n->dir = n->root + "/bus";
  fs::create_directories(n->dir);
  n->canonical = common::canonical_dir(n->dir);
  n->addr = "127.0.0.1:" + std::to_string(free_loopback_port());
  const std::string secret_file = n->dir + "/replication.secret";
  std::ofstream(secret_file, std::ios::trunc | std::ios::binary) << secret << "\n";
  ::chmod(secret_file.c_str(), 0600);
  nodes_.push_back(std::move(n));
  return *nodes_.back();
}

std::vector<std::string> ReplicationTest::lead_args(const ReplNode& self, const std::vector<const ReplNode*>& followers,
                                                    const std::vector<std::string>& extra) {
  std::string to;
  for (const auto* f : followers) to += (to.empty() ? "" : ",") + f->addr;
  std::vector<std::string> a{"--listen", self.addr, "--replicate-to", to};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

std::vector<std::string> ReplicationTest::follow_args(const ReplNode& self, const ReplNode& leader,
                                                      const std::vector<std::string>& extra) {
  std::vector<std::string> a{"--listen", self.addr, "--follow", leader.addr};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

void ReplicationTest::start(ReplNode& n, const std::vector<std::string>& args) {
  ASSERT_FALSE(n.running()) << "node " << n.name << " is already running";
  n.conn.reset();
  n.args = args;
  n.daemon.reset();
  n.daemon = std::make_unique<Daemon>(n.dir, n.log_file(), args);
  ++n.starts;
  // The conductor's line, not the replicator's ("listening on HOST:PORT" comes first).
  const std::string ready = "listening on " + common::socket_path(n.canonical);
  if (!n.daemon->log().wait_for(ready, kStartDeadline)) {
    const auto st = n.daemon->child().wait_exit(Millis(0));
    FAIL() << "node " << n.name << " (start " << n.starts << ") did not log '" << ready << "' within "
           << kStartDeadline.count() << " ms (" << (st ? describe_status(*st) : std::string("still running"))
           << "); log:\n"
           << n.daemon->log().text();
  }
  try {
    n.conn.emplace(ConnectionFactory(n.dir, "repl-test").create_connection());
  } catch (const Error& e) {
    FAIL() << "node " << n.name << " logged readiness but attach failed: " << e.what() << "; log:\n"
           << n.daemon->log().text();
  }
}

void ReplicationTest::restart(ReplNode& n) { start(n, n.args); }

void ReplicationTest::kill(ReplNode& n, int sig) {
  ASSERT_TRUE(n.running()) << "node " << n.name << " is not running";
  n.conn.reset();
  n.daemon->child().kill(sig);
  const auto st = n.daemon->child().wait_exit(kStopDeadline);
  ASSERT_TRUE(st.has_value()) << "node " << n.name << " did not exit within " << kStopDeadline.count()
                              << " ms of signal " << sig;
  if (sig == SIGKILL) {
    ASSERT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL) << "node " << n.name << ": " << describe_status(*st);
  } else {
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
        << "node " << n.name << " should exit 0 on signal " << sig << " but " << describe_status(*st);
  }
  EXPECT_TRUE(n.daemon->log().wait_eof(kStopDeadline));
}

BusStats ReplicationTest::stats(ReplNode& n) {
  if (!n.conn) n.conn.emplace(ConnectionFactory(n.dir, "repl-test").create_connection());
  try {
    return n.conn->stats();
  } catch (const Error&) {
    n.conn.reset();
    throw;
  }
}

std::optional<BusStats> ReplicationTest::wait_stats(ReplNode& n, const std::function<bool(const BusStats&)>& pred,
                                                    Millis timeout, const std::string& what) {
  const auto deadline = Clock::now() + timeout;
  std::optional<BusStats> last;
  std::string err;
  for (;;) {
    try {
      last = stats(n);
      err.clear();
      if (pred(*last)) return last;
    } catch (const Error& e) {
      err = e.what();
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(kPoll);  // poll interval, not synchronisation
  }
  ADD_FAILURE() << "expected within " << timeout.count() << " ms on node " << n.name << ": " << what
                << "; last replication stats: " << (last ? describe(last->replication) : std::string("none"))
                << (err.empty() ? "" : "; last error: " + err);
  return std::nullopt;
}

std::optional<ReplicationStats> ReplicationTest::wait_repl(ReplNode& n,
                                                           const std::function<bool(const ReplicationStats&)>& pred,
                                                           Millis timeout, const std::string& what) {
  const auto s = wait_stats(n, [&](const BusStats& b) { return pred(b.replication); }, timeout, what);
  if (!s) return std::nullopt;
  return s->replication;
}

std::optional<DestinationStats> ReplicationTest::wait_queue(ReplNode& n, const std::string& uri,
                                                            const std::function<bool(const DestinationStats&)>& pred,
                                                            Millis timeout, const std::string& what) {
  const DestinationStats* found = nullptr;
  std::string last;
  const auto s = wait_stats(
      n,
      [&](const BusStats& b) {
        found = find_topic(b, uri);
        if (found)
          last = "depth=" + std::to_string(found->depth) + " in_flight=" + std::to_string(found->in_flight) +
                 " restored=" + std::to_string(found->restored) + " log=" + std::to_string(found->log_start_offset) +
                 ".." + std::to_string(found->log_end_offset);
        return found && pred(*found);
      },
      timeout, uri + ": " + what);
  if (!s) {
    ADD_FAILURE() << uri << " on node " << n.name << " last: " << (last.empty() ? "absent" : last);
    return std::nullopt;
  }
  return *find_topic(*s, uri);
}

bool ReplicationTest::wait_in_sync(ReplNode& leader, std::size_t size, Millis timeout) {
  return wait_repl(
             leader,
             [&](const ReplicationStats& r) {
               if (r.role != "leader" || r.in_sync.size() != size) return false;
               for (const auto& x : r.replicas)
                 if (x.in_sync && (!x.connected || x.lag != 0)) return false;
               return true;
             },
             timeout, "leader with " + std::to_string(size) + " in-sync replicas (itself included), none lagging")
      .has_value();
}

Child ReplicationTest::agent(ReplNode& n, const std::string& cmd, const std::vector<std::string>& args) {
  std::vector<std::string> argv{BUS_AGENT_PATH, cmd, "--dir", n.dir};
  argv.insert(argv.end(), args.begin(), args.end());
  return Child::spawn(argv, {true, true, false});
}

std::optional<Fields> ReplicationTest::expect_line(Child& c, const std::string& prefix, Millis timeout,
                                                   const std::string& what) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    const auto line = c.read_line(left.count() > 0 ? left : Millis(0));
    if (!line) break;
    if (line->rfind(prefix, 0) == 0) return fields(*line);
    if (line->rfind("error", 0) == 0) {
      ADD_FAILURE() << c.name() << " reported: " << *line << " (expected: " << what << ")";
      return std::nullopt;
    }
  }
  const auto st = c.wait_exit(Millis(0));
  ADD_FAILURE() << "expected within " << timeout.count() << " ms: " << what << " ('" << prefix << "' from " << c.name()
                << "); " << (st ? describe_status(*st) : std::string("it is still running"));
  return std::nullopt;
}

CliRun ReplicationTest::cli(ReplNode& n, const std::vector<std::string>& args, Millis timeout) {
  std::vector<std::string> argv{SHMBUS_CLI_PATH, "--dir", n.dir};
  argv.insert(argv.end(), args.begin(), args.end());
  auto c = Child::spawn(argv, {true, true, true});
  c.close_stdin();
  CliRun r;
  const bool eof = c.drain(timeout, r.out, r.err);
  const auto st = c.wait_exit(eof ? timeout : Millis(0));
  if (st && WIFEXITED(*st)) r.exit_code = WEXITSTATUS(*st);
  else
    ADD_FAILURE() << "shmbus " << args.at(0) << " on node " << n.name << " did not exit normally within "
                  << timeout.count() << " ms; " << (st ? describe_status(*st) : std::string("still running"))
                  << "; stderr: " << r.err;
  return r;
}

std::uint32_t ReplicationTest::promote(ReplNode& n) {
  const auto r = cli(n, {"promote"});
  const std::string want = "promoted: this shmbusd leads now, epoch ";
  EXPECT_EQ(r.exit_code, 0) << "shmbus promote on node " << n.name << ": " << r.out << r.err;
  const auto at = r.out.find(want);
  EXPECT_NE(at, std::string::npos) << "shmbus promote on node " << n.name << " printed: " << r.out << r.err;
  if (r.exit_code != 0 || at == std::string::npos) return 0;
  return static_cast<std::uint32_t>(std::stoul(r.out.substr(at + want.size())));
}

SegmentFiles ReplicationTest::segment_files(const ReplNode& n, const std::string& log) {
  SegmentFiles out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(n.dir + "/data/" + log, ec)) {
    if (e.path().extension() != ".log") continue;
    std::ifstream in(e.path(), std::ios::binary);
    out[e.path().filename().string()] =
        std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  return out;
}

std::string ReplicationTest::log_stream(const SegmentFiles& f) {
  std::string all;
  for (const auto& [name, bytes] : f) all += bytes;
  return all;
}

std::string ReplicationTest::compare_segments(const SegmentFiles& a, const SegmentFiles& b) {
  std::ostringstream s;
  for (const auto& [name, bytes] : a) {
    const auto it = b.find(name);
    if (it == b.end()) {
      s << name << " (" << bytes.size() << " bytes) only on the first; ";
      continue;
    }
    if (it->second == bytes) continue;
    std::size_t i = 0;
    while (i < bytes.size() && i < it->second.size() && bytes[i] == it->second[i]) ++i;
    s << name << " differs: " << bytes.size() << " vs " << it->second.size() << " bytes, first difference at byte "
      << i << "; ";
  }
  for (const auto& [name, bytes] : b)
    if (!a.count(name)) s << name << " (" << bytes.size() << " bytes) only on the second; ";
  return s.str();
}

void ReplicationTest::keep_copy(const ReplNode& n, const std::string& log, const std::string& tag) const {
  std::error_code ec;
  const std::string to = root_ + "/" + tag + "-" + n.name;
  fs::create_directories(to, ec);
  fs::copy(n.dir + "/data/" + log, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
  std::cerr << "[ info ] copied " << n.dir << "/data/" << log << " to " << to
            << (ec ? " (failed: " + ec.message() + ")" : std::string()) << "\n";
}

std::string ReplicationTest::compare_nodes(const ReplNode& a, const ReplNode& b, const std::string& log,
                                           const std::string& tag) const {
  const std::string diff = compare_segments(segment_files(a, log), segment_files(b, log));
  if (!diff.empty()) {
    keep_copy(a, log, tag);
    keep_copy(b, log, tag);
  }
  return diff;
}

const ReplicatedLogStats* find_log(const ReplicationStats& r, const std::string& name) {
  for (const auto& l : r.logs)
    if (l.log == name) return &l;
  return nullptr;
}

std::uint64_t log_end(const ReplicationStats& r, const std::string& name) {
  const auto* l = find_log(r, name);
  return l ? l->log_end_offset : 0;
}

const ReplicaStats* find_replica(const ReplicationStats& r, const std::string& addr) {
  for (const auto& x : r.replicas)
    if (x.address == addr) return &x;
  return nullptr;
}

std::string describe(const ReplicationStats& r) {
  std::ostringstream s;
  s << "role=" << r.role << " epoch=" << r.epoch << " self=" << r.self << " leader=" << r.leader
    << " connected=" << r.connected << " min_insync=" << r.min_insync << " in_sync={";
  for (std::size_t i = 0; i < r.in_sync.size(); ++i) s << (i ? "," : "") << r.in_sync[i];
  s << "}";
  for (const auto& x : r.replicas)
    s << " replica{" << x.address << " connected=" << x.connected << " in_sync=" << x.in_sync << " lag=" << x.lag
      << " caught_up_ms_ago=" << x.caught_up_ms_ago << "}";
  for (const auto& l : r.logs) {
    s << " log{" << l.log << " " << l.log_start_offset << ".." << l.log_end_offset << " hw=" << l.high_watermark;
    for (auto o : l.replica_offsets) s << " @" << o;
    s << "}";
  }
  return s.str();
}

std::vector<Record> read_records(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << path;
  std::vector<Record> out;
  Record r;
  while (f.read(reinterpret_cast<char*>(&r), sizeof r)) out.push_back(r);
  EXPECT_TRUE(f.eof() && f.gcount() == 0) << path << " ends with a partial record";
  return out;
}

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::stoull(v) : fallback;
}

std::uint64_t num(const Fields& f, const std::string& k) {
  const auto it = f.find(k);
  if (it == f.end()) {
    ADD_FAILURE() << "line has no field '" << k << "'";
    return ~0ULL;
  }
  return std::stoull(it->second);
}

}  // namespace shmbus::systest
