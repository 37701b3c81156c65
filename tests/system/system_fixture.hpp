// The fixture every system test uses: a fresh temp DIR, shmbusd started on it as a child process
// (its stderr pumped into memory and DIR/../shmbusd.log), and on teardown SIGTERM, exit code 0 and
// nothing of that DIR left in /dev/shm.
#pragma once
#include "process.hpp"
#include "shmbus/shmbus.hpp"

#include <functional>
#include <gtest/gtest.h>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace shmbus::systest {

inline constexpr Millis kStartDeadline{10000};
inline constexpr Millis kStopDeadline{10000};

/// One shmbusd child process.
class Daemon {
 public:
  Daemon(const std::string& dir, const std::string& log_file, const std::vector<std::string>& extra = {});
  LogPump& log() { return *pump_; }
  Child& child() { return child_; }
  /// Waits until it logs that it listens, then until a client can attach. Empty on success,
  /// else what went wrong (with the log).
  std::string wait_ready(Millis timeout);

 private:
  std::string dir_;
  std::unique_ptr<LogPump> pump_;  // destroyed after child_, which kills a still-running daemon
  Child child_;
};

/// "key=value key=value" -> map.
std::map<std::string, std::string> fields(const std::string& line);

class SystemTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  /// Starts a daemon on dir_ (replacing daemon_) and waits until it serves; fails the test if not.
  void start_daemon(const std::vector<std::string>& extra_args = {});
  /// Sends `sig`, expects exit code 0 within kStopDeadline and no shm or socket left behind.
  void stop_daemon_and_check_clean(int sig);
  /// /dev/shm objects named shmbus.<hash of dir_>.*
  std::vector<std::string> shm_objects() const;

  /// The test's own attached client (created on first use), for stats.
  Connection& observer();
  /// Polls stats (every ms) until `pred` holds; fails with `what` and the last snapshot if not.
  std::optional<BusStats> wait_stats(const std::function<bool(const BusStats&)>& pred, Millis timeout,
                                     const std::string& what);
  /// Waits until `uri` shows `subscribers` subscribers (and optionally `producers` producers).
  bool wait_topic(const std::string& uri, std::size_t subscribers, Millis timeout, int producers = -1);

  /// A bus_agent process on dir_: stdin and stdout piped, stderr inherited.
  Child agent(const std::string& cmd, const std::vector<std::string>& args);
  /// The next stdout line of `c` that starts with `prefix`; fails the test saying what was expected.
  std::optional<std::map<std::string, std::string>> expect_line(Child& c, const std::string& prefix, Millis timeout,
                                                                const std::string& what);
  /// Runs `shmbus --dir dir_ ARGS` to completion (stdin gets `input` then EOF).
  struct CliResult {
    int exit_code = -1;  // -1: did not exit normally within the deadline
    std::string out, err;
  };
  CliResult run_cli(const std::vector<std::string>& args, const std::string& input = {}, Millis timeout = Millis(10000));
  /// Expects `c` to exit with code 0 within `timeout`.
  void expect_clean_exit(Child& c, Millis timeout, const std::string& what);

  std::string root_;       // mkdtemp directory
  std::string dir_;        // root_/bus: the DIR shmbusd serves
  std::string canonical_;  // common::canonical_dir(dir_)
  std::unique_ptr<Daemon> daemon_;
  std::optional<Connection> observer_;
};

const DestinationStats* find_topic(const BusStats& s, const std::string& uri);

}  // namespace shmbus::systest
