// RouDi lifetime and child processes for the iceoryx peers (see iceoryx_support.hpp).
#include "peers/iceoryx_support.hpp"

#include "clock.hpp"
#include "peers/peer_util.hpp"

#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <sched.h>
#include <sstream>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace shmbus::bench::peer::iox_support {

namespace {

constexpr std::uint64_t kReadyTimeoutNs = 15'000'000'000ULL;

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

/// The last `n` characters of RouDi's output, without the trailing newlines.
std::string tail(std::string s, std::size_t n = 600) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.size() > n ? "..." + s.substr(s.size() - n) : s;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

/// Waits for `pid` at most `timeout_ns`; SIGKILLs it after that. Returns the waitpid status, or -1 on timeout.
int wait_child(pid_t pid, std::uint64_t timeout_ns) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  int status = 0;
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    const std::uint64_t deadline = mono_ns() + timeout_ns;
    int r;
    do {
      const std::uint64_t now = mono_ns();
      r = now >= deadline ? 0 : ::poll(&p, 1, static_cast<int>((deadline - now) / 1'000'000 + 1));
    } while (r < 0 && errno == EINTR);
    ::close(pidfd);
    if (r == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
  }
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

class Roudi {
 public:
  ~Roudi() {
    if (owner_ == ::getpid()) stop();  // not in forked children that exit()
  }

  void ensure(std::uint32_t payload_size) {
    if (pid_ > 0) {
      if (payload_size > chunk_) throw std::runtime_error("iceoryx: RouDi was started for smaller messages");
      if (::waitpid(pid_, nullptr, WNOHANG) == 0) return;
      pid_ = -1;
      throw std::runtime_error("iceoryx: RouDi exited during the run: " + tail(read_file(dir_ + "/roudi.log")));
    }
    start(payload_size);
  }

 private:
  void start(std::uint32_t payload_size) {
    char tmpl[] = "/tmp/shmbus-bench-iox.XXXXXX";
    if (!::mkdtemp(tmpl)) throw_errno("iceoryx: mkdtemp");
    dir_ = tmpl;
    owner_ = ::getpid();
    chunk_ = std::max<std::uint32_t>(128, (payload_size + 63) / 64 * 64);
    const std::string config = dir_ + "/roudi.toml", log = dir_ + "/roudi.log";
    // One segment, one mempool that fits a message: small and quick to reserve (the built-in
    // config reserves ~150 MB of pools).
    std::ofstream(config) << "[general]\nversion = 1\n\n[[segment]]\n\n[[segment.mempool]]\nsize = " << chunk_
                          << "\ncount = 512\n";
    const char* bin = std::getenv("IOX_ROUDI");
    const std::string roudi = bin && *bin ? bin : SHMBUS_IOX_ROUDI_PATH;
    std::fprintf(stderr, "starting %s ... ", roudi.c_str());
    std::fflush(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw_errno("iceoryx: fork");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the bench, even if it is SIGKILLed
      if (::getppid() != parent) ::_exit(127);
      cpu_set_t all;  // not pinned to the ping CPU the bench process may sit on
      CPU_ZERO(&all);
      for (int c = 0; c < ::get_nprocs_conf() && c < CPU_SETSIZE; ++c) CPU_SET(c, &all);
      ::sched_setaffinity(0, sizeof all, &all);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execl(roudi.c_str(), roudi.c_str(), "-c", config.c_str(), "-l", "warning", "-m", "on", nullptr);
      std::fprintf(stderr, "exec %s: %s\n", roudi.c_str(), std::strerror(errno));
      ::_exit(127);
    }
    try {
      wait_ready(log);
    } catch (...) {
      stop();
      throw;
    }
    std::fprintf(stderr, "pid %d, ready\n", static_cast<int>(pid_));
  }

  void wait_ready(const std::string& log) {
    const std::uint64_t deadline = mono_ns() + kReadyTimeoutNs;
    for (;;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("iox-roudi exited at start (" + describe(status) +
                                 "; another RouDi running? `pgrep -a iox-roudi`): " + tail(read_file(log)));
      }
      if (read_file(log).find("RouDi is ready for clients") != std::string::npos) break;
      if (mono_ns() >= deadline) throw std::runtime_error("iox-roudi not ready after 15 s: " + tail(read_file(log)));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // Ready means a runtime can register: try it in a probe process.
    const std::uint64_t now = mono_ns();
    run_in_child("iceoryx: registering a probe runtime with RouDi", deadline > now ? deadline - now : 1,
                 [] { init_runtime("shmbus-bench-probe"); });
  }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      if (wait_child(pid_, 5'000'000'000ULL) == -1)
        std::fprintf(stderr, "shmbus-bench: iox-roudi did not stop within 5 s: killed\n");
      pid_ = -1;
    }
    if (!dir_.empty()) {
      ::unlink((dir_ + "/roudi.toml").c_str());
      ::unlink((dir_ + "/roudi.log").c_str());
      ::rmdir(dir_.c_str());
      dir_.clear();
    }
  }

  pid_t pid_ = -1;
  pid_t owner_ = -1;
  std::uint32_t chunk_ = 0;
  std::string dir_;
};

Roudi& roudi() {
  static Roudi r;
  return r;
}

struct alignas(64) ChildShared {
  std::atomic<int> failed;
  char error[1024];
};

}  // namespace

void ensure_roudi(std::uint32_t payload_size) { roudi().ensure(payload_size); }

void init_runtime(const std::string& prefix) {
  const std::string name = prefix + "-" + std::to_string(::getpid());
  // Debian's build logs every registration at Debug level on stderr: warnings and errors only.
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn,
                                                           iox::log::LogLevelOutput::kHideLogLevel);
  iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
}

void run_in_child(const std::string& what, std::uint64_t timeout_ns, const std::function<void()>& fn) {
  void* mem = ::mmap(nullptr, sizeof(ChildShared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw_errno(what + ": mmap");
  OnExit unmap{[&] { ::munmap(mem, sizeof(ChildShared)); }};
  auto* shared = new (mem) ChildShared{};
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno(what + ": fork");
  if (pid == 0) {
    try {
      fn();
    } catch (const std::exception& e) {
      std::snprintf(shared->error, sizeof shared->error, "%s", e.what());
      shared->failed.store(1, std::memory_order_release);
      ::_exit(1);
    }
    std::exit(0);  // static destructors: the iceoryx runtime (if any) deregisters from RouDi
  }
  const int status = wait_child(pid, timeout_ns);
  if (status == -1) throw std::runtime_error(what + ": not done after " + std::to_string(timeout_ns / 1'000'000) + " ms");
  if (shared->failed.load(std::memory_order_acquire)) throw std::runtime_error(what + ": " + shared->error);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error(what + ": " + describe(status));
}

}  // namespace shmbus::bench::peer::iox_support
