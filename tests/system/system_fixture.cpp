#include "system_fixture.hpp"

#include "common/paths.hpp"

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <sys/wait.h>
#include <thread>

namespace shmbus::systest {

namespace fs = std::filesystem;

Daemon::Daemon(const std::string& dir, const std::string& log_file, const std::vector<std::string>& extra)
    : dir_(dir) {
  std::vector<std::string> argv{SHMBUSD_PATH, "--dir", dir};
  argv.insert(argv.end(), extra.begin(), extra.end());
  child_ = Child::spawn(argv, {false, false, true});
  pump_ = std::make_unique<LogPump>(child_.release_stderr(), log_file);
}

std::string Daemon::wait_ready(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  if (!pump_->wait_for("listening on", timeout))
    return "shmbusd did not log 'listening on' within " + std::to_string(timeout.count()) + " ms; log:\n" + pump_->text();
  // The socket listens before that line is written; one attach proves it answers.
  try {
    auto c = ConnectionFactory(dir_, "readiness-probe").create_connection();
    if (Clock::now() > deadline) return "shmbusd answered only after the deadline";
    return {};
  } catch (const Error& e) {
    return std::string("shmbusd logged readiness but attach failed: ") + e.what() + "; log:\n" + pump_->text();
  }
}

std::map<std::string, std::string> fields(const std::string& line) {
  std::map<std::string, std::string> out;
  std::istringstream ss(line);
  for (std::string tok; ss >> tok;) {
    const auto eq = tok.find('=');
    if (eq == std::string::npos) out[tok] = "";
    else out[tok.substr(0, eq)] = tok.substr(eq + 1);
  }
  return out;
}

void SystemTest::SetUp() {
  char tmpl[] = "/tmp/shmbus-sys.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr) << "mkdtemp failed";
  root_ = tmpl;
  dir_ = root_ + "/bus";
  fs::create_directories(dir_);
  canonical_ = common::canonical_dir(dir_);
  ASSERT_TRUE(shm_objects().empty()) << "a fresh DIR must have no shared memory yet";
  start_daemon();
}

void SystemTest::TearDown() {
  observer_.reset();
  if (daemon_ && daemon_->child().running()) stop_daemon_and_check_clean(SIGTERM);
  if (HasFailure() && daemon_) std::cerr << "---- shmbusd log ----\n" << daemon_->log().text() << "---------------------\n";
  daemon_.reset();
  for (const auto& n : shm_objects()) ::unlink(("/dev/shm/" + n).c_str());  // never leak into other tests
  std::error_code ec;
  fs::remove_all(root_, ec);
}

void SystemTest::start_daemon(const std::vector<std::string>& extra_args) {
  observer_.reset();
  if (daemon_ && HasFailure()) std::cerr << "---- previous shmbusd log ----\n" << daemon_->log().text();
  daemon_.reset();  // a running one is killed first: two daemons on one DIR refuse each other
  daemon_ = std::make_unique<Daemon>(dir_, root_ + "/shmbusd.log", extra_args);
  const auto err = daemon_->wait_ready(kStartDeadline);
  ASSERT_TRUE(err.empty()) << err;
}

void SystemTest::stop_daemon_and_check_clean(int sig) {
  ASSERT_TRUE(daemon_ && daemon_->child().running()) << "no running daemon to stop";
  observer_.reset();
  daemon_->child().kill(sig);
  const auto st = daemon_->child().wait_exit(kStopDeadline);
  ASSERT_TRUE(st.has_value()) << "shmbusd did not exit within " << kStopDeadline.count() << " ms of signal " << sig;
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
      << "shmbusd should exit 0 on signal " << sig << " but " << describe_status(*st);
  EXPECT_TRUE(daemon_->log().wait_eof(kStopDeadline));
  EXPECT_NE(daemon_->log().text().find("shmbusd stopped"), std::string::npos) << "no shutdown line in the log";
  const auto left = shm_objects();
  EXPECT_TRUE(left.empty()) << "shared memory left in /dev/shm after a clean shutdown: " << left.front();
  EXPECT_FALSE(fs::exists(common::socket_path(canonical_))) << "control socket left behind";
}

std::vector<std::string> SystemTest::shm_objects() const {
  std::vector<std::string> out;
  const auto prefix = common::shm_prefix(canonical_);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/dev/shm", ec)) {
    const auto n = e.path().filename().string();
    if (n.rfind(prefix, 0) == 0) out.push_back(n);
  }
  return out;
}

Connection& SystemTest::observer() {
  if (!observer_) observer_.emplace(ConnectionFactory(dir_, "system-test").create_connection());
  return *observer_;
}

std::optional<BusStats> SystemTest::wait_stats(const std::function<bool(const BusStats&)>& pred, Millis timeout,
                                               const std::string& what) {
  const auto deadline = Clock::now() + timeout;
  BusStats last;
  for (;;) {
    last = observer().stats();
    if (pred(last)) return last;
    if (Clock::now() >= deadline) break;
    // Poll interval, not synchronisation: the condition is re-checked until the deadline.
    std::this_thread::sleep_for(Millis(1));
  }
  std::ostringstream s;
  for (const auto& d : last.destinations)
    s << " " << d.uri << "{producers=" << d.producers << " subscribers=" << d.subscribers.size() << " tail=" << d.tail
      << " holes_repaired=" << d.holes_repaired << "}";
  ADD_FAILURE() << "expected within " << timeout.count() << " ms: " << what << "; last stats: " << last.clients.size()
                << " client(s)," << s.str();
  return std::nullopt;
}

const DestinationStats* find_topic(const BusStats& s, const std::string& uri) {
  for (const auto& d : s.destinations)
    if (d.uri == uri) return &d;
  return nullptr;
}

bool SystemTest::wait_topic(const std::string& uri, std::size_t subscribers, Millis timeout, int producers) {
  return wait_stats(
             [&](const BusStats& s) {
               const auto* d = find_topic(s, uri);
               return d && d->subscribers.size() == subscribers &&
                      (producers < 0 || d->producers == static_cast<std::uint32_t>(producers));
             },
             timeout,
             uri + " with " + std::to_string(subscribers) + " subscriber(s)" +
                 (producers < 0 ? "" : " and " + std::to_string(producers) + " producer(s)"))
      .has_value();
}

Child SystemTest::agent(const std::string& cmd, const std::vector<std::string>& args) {
  std::vector<std::string> argv{BUS_AGENT_PATH, cmd, "--dir", dir_};
  argv.insert(argv.end(), args.begin(), args.end());
  return Child::spawn(argv, {true, true, false});
}

std::optional<std::map<std::string, std::string>> SystemTest::expect_line(Child& c, const std::string& prefix,
                                                                          Millis timeout, const std::string& what) {
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
  ADD_FAILURE() << "expected within " << timeout.count() << " ms: " << what << " ('" << prefix << "' from "
                << c.name() << "); " << (st ? describe_status(*st) : std::string("it is still running"));
  return std::nullopt;
}

SystemTest::CliResult SystemTest::run_cli(const std::vector<std::string>& args, const std::string& input,
                                          Millis timeout) {
  std::vector<std::string> argv{SHMBUS_CLI_PATH, "--dir", dir_};
  argv.insert(argv.end(), args.begin(), args.end());
  auto c = Child::spawn(argv, {true, true, true});
  c.write_stdin(input);
  c.close_stdin();
  CliResult r;
  const bool eof = c.drain(timeout, r.out, r.err);
  const auto st = c.wait_exit(eof ? timeout : Millis(0));
  if (st && WIFEXITED(*st)) r.exit_code = WEXITSTATUS(*st);
  else ADD_FAILURE() << "shmbus " << args.at(0) << " did not exit normally within " << timeout.count() << " ms; "
                     << (st ? describe_status(*st) : std::string("still running")) << "; stderr: " << r.err;
  return r;
}

void SystemTest::expect_clean_exit(Child& c, Millis timeout, const std::string& what) {
  const auto st = c.wait_exit(timeout);
  ASSERT_TRUE(st.has_value()) << what << ": " << c.name() << " did not exit within " << timeout.count() << " ms";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << what << ": " << c.name() << " " << describe_status(*st);
}

}  // namespace shmbus::systest
