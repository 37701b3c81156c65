// Starts a private shmbusd in a fresh temp dir and stops it with SIGTERM.
#pragma once
#include <string>
#include <sys/types.h>

namespace shmbus::bench {

class DaemonLauncher {
 public:
  DaemonLauncher() = default;
  DaemonLauncher(const DaemonLauncher&) = delete;
  DaemonLauncher& operator=(const DaemonLauncher&) = delete;
  ~DaemonLauncher();

  /// $SHMBUSD if set, else the shmbusd built alongside this bench.
  static std::string binary();
  /// mkdtemp, fork+exec `shmbusd --dir TMP` (log in TMP/shmbusd.log), then polls connect until it
  /// answers or `timeout_ms` passes. Throws std::runtime_error with the daemon's log on failure.
  void start(int timeout_ms = 10'000);
  /// SIGTERM, wait up to 5 s (then SIGKILL), remove the temp dir. Idempotent.
  void stop();

  const std::string& dir() const noexcept { return dir_; }
  pid_t pid() const noexcept { return pid_; }

 private:
  std::string log_tail() const;
  std::string base_;  // the mkdtemp directory (log + daemon dir inside)
  std::string dir_;
  pid_t pid_ = -1;
};

/// Polls ConnectionFactory(dir).create_connection() until it succeeds or the deadline passes.
/// `alive` (may be null) is asked between attempts whether to keep waiting.
bool wait_for_daemon(const std::string& dir, int timeout_ms, bool (*alive)(void*), void* ctx, std::string& last_error);

}  // namespace shmbus::bench
