#include "launcher.hpp"

#include "clock.hpp"
#include "shmbus/shmbus.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#ifndef SHMBUSD_PATH
#define SHMBUSD_PATH "shmbusd"
#endif

namespace shmbus::bench {

namespace {

bool daemon_running(void* ctx) {
  const pid_t pid = *static_cast<pid_t*>(ctx);
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == 0;
}

}  // namespace

bool wait_for_daemon(const std::string& dir, int timeout_ms, bool (*alive)(void*), void* ctx, std::string& last_error) {
  const std::uint64_t deadline = mono_ns() + static_cast<std::uint64_t>(timeout_ms) * 1'000'000ULL;
  std::uint64_t pause_us = 200;
  for (;;) {
    try {
      ConnectionFactory f(dir, "shmbus-bench-probe");
      auto c = f.create_connection();
      c.close();
      return true;
    } catch (const Error& e) {
      last_error = e.what();
    }
    if (alive && !alive(ctx)) return false;
    if (mono_ns() >= deadline) return false;
    // Poll interval grows from 0.2 ms to 20 ms: quick when the daemon is quick, cheap when not.
    std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
    pause_us = std::min<std::uint64_t>(pause_us * 2, 20'000);
  }
}

std::string DaemonLauncher::binary() {
  if (const char* e = std::getenv("SHMBUSD"); e && *e) return e;
  return SHMBUSD_PATH;
}

std::string DaemonLauncher::log_tail() const {
  std::ifstream f(base_ + "/shmbusd.log");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() > 2000) s = "..." + s.substr(s.size() - 2000);
  return s.empty() ? "(empty log)" : s;
}

void DaemonLauncher::start(int timeout_ms, const std::vector<std::string>& extra_args, const std::string& parent) {
  const std::string bin = binary();
  if (::access(bin.c_str(), X_OK) != 0)
    throw std::runtime_error("shmbusd not found or not executable at '" + bin + "' (set SHMBUSD=/path/to/shmbusd)");
  const std::filesystem::path where = parent.empty() ? std::filesystem::temp_directory_path() : std::filesystem::path(parent);
  std::string tmpl = (where / "shmbus-bench.XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  base_ = tmpl;
  dir_ = base_ + "/bus";
  const std::string log = base_ + "/shmbusd.log";
  std::vector<std::string> args{bin, "--dir", dir_};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (auto& x : args) argv.push_back(x.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    ::execv(bin.c_str(), argv.data());
    std::fprintf(stderr, "exec %s: %s\n", bin.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  std::string err;
  if (!wait_for_daemon(dir_, timeout_ms, daemon_running, &pid_, err)) {
    const std::string tail = log_tail();
    stop();
    throw std::runtime_error("shmbusd (" + bin + ") did not answer on " + dir_ + " within " +
                             std::to_string(timeout_ms) + " ms: " + err + "\n--- shmbusd log ---\n" + tail);
  }
}

void DaemonLauncher::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    const std::uint64_t deadline = mono_ns() + 5'000'000'000ULL;
    int status = 0;
    for (;;) {
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) break;
      if (mono_ns() >= deadline) {
        std::fprintf(stderr, "shmbus-bench: shmbusd %d ignored SIGTERM for 5 s; sending SIGKILL\n", static_cast<int>(pid_));
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    pid_ = -1;
  }
  if (!base_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
    base_.clear();
  }
}

DaemonLauncher::~DaemonLauncher() { stop(); }

}  // namespace shmbus::bench
