// Starts a private shmbusd in a fresh temp dir and stops it with SIGTERM.
#pragma once
#include <string>
#include <sys/types.h>
#include <vector>

namespace shmbus::bench {

class DaemonLauncher {
 public:
  DaemonLauncher() = default;
  DaemonLauncher(const DaemonLauncher&) = delete;
  DaemonLauncher& operator=(const DaemonLauncher&) = delete;
  ~DaemonLauncher();

  /// $SHMBUSD if set, else the shmbusd built alongside this bench.
  static std::string binary();
  /// mkdtemp, fork+exec `shmbusd --dir TMP [extra_args...]` (log in TMP/shmbusd.log), then polls
  /// connect until it answers or `timeout_ms` passes. Throws std::runtime_error with the daemon's
  /// log on failure. `parent`: where the temp dir goes (default: std::filesystem::temp_directory_path).
  void start(int timeout_ms = 10'000, const std::vector<std::string>& extra_args = {}, const std::string& parent = {});
  /// SIGTERM, wait up to 5 s (then SIGKILL), remove the temp dir. Idempotent.
  void stop();

  const std::string& dir() const noexcept { return dir_; }
  /// The mkdtemp directory: dir() and the daemon's log are inside it.
  const std::string& base() const noexcept { return base_; }
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
