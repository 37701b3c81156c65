// Child processes for the system tests: spawn (fork/exec, killed if the test dies) with optional pipes, read lines with
// a deadline, wait for exit with a deadline (pidfd + poll, never a sleep), kill. A Child that is
// still running when destroyed is SIGKILLed and reaped.
#pragma once
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace shmbus::systest {

using Millis = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

struct SpawnOptions {
  bool pipe_stdin = false;   // else /dev/null
  bool pipe_stdout = false;  // else inherited
  bool pipe_stderr = false;  // else inherited
};

class Child {
 public:
  /// Starts argv[0] with argv; throws std::runtime_error naming the program when it cannot.
  static Child spawn(const std::vector<std::string>& argv, SpawnOptions o = {});
  Child() = default;
  Child(Child&& o) noexcept;
  Child& operator=(Child&& o) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  pid_t pid() const noexcept { return pid_; }
  const std::string& name() const noexcept { return name_; }
  /// Next line of stdout (without '\n'); nullopt on EOF or when `timeout` passes first.
  std::optional<std::string> read_line(Millis timeout);
  /// Writes to the child's stdin; false if it is closed.
  bool write_stdin(const std::string& s);
  void close_stdin();
  /// Reads stdout and stderr until both reach EOF or `timeout` passes; true on EOF.
  bool drain(Millis timeout, std::string& out, std::string& err);
  /// The raw wait status once the child exits within `timeout`; nullopt if it is still running.
  std::optional<int> wait_exit(Millis timeout);
  bool running() const noexcept { return pid_ > 0 && !status_; }
  void kill(int sig) noexcept;
  /// Takes the stderr pipe (for a LogPump).
  int release_stderr() noexcept;

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  std::string name_;
  std::string outbuf_;
  std::optional<int> status_;
  void reset() noexcept;
};

/// "exited with 3", "killed by signal 9".
std::string describe_status(int wait_status);

/// Copies a child's stderr pipe into memory and a file on a thread, so the child never blocks on
/// a full pipe; lets a test wait for a line containing some text.
class LogPump {
 public:
  LogPump(int fd, std::string file);
  ~LogPump();
  /// True once the text appears (searching from `from`); false when `timeout` passes or EOF.
  bool wait_for(const std::string& text, Millis timeout, std::size_t from = 0);
  /// True once the pipe reached EOF (the writer exited) within `timeout`.
  bool wait_eof(Millis timeout);
  std::string text() const;
  std::size_t size() const;

 private:
  void run();
  int fd_;
  std::string file_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
  bool eof_ = false;
  std::thread thread_;
};

}  // namespace shmbus::systest
