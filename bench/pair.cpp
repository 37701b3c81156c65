#include "pair.hpp"

#include "clock.hpp"
#include "machine.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <sys/mman.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace shmbus::bench {

namespace {

struct alignas(128) PairControl {
  std::atomic<int> child_ready;
  std::atomic<int> child_failed;
  char child_error[2048];
};

class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  /// Non-blocking: true while the child has not exited.
  bool running() {
    if (reaped_) return false;
    const pid_t r = ::waitpid(pid_, &status_, WNOHANG);
    if (r == pid_) reaped_ = true;
    return r == 0;
  }
  /// Waits up to `timeout_ns`, then SIGKILLs. Returns the exit status (or -signal).
  int join(std::uint64_t timeout_ns) {
    const std::uint64_t deadline = mono_ns() + timeout_ns;
    while (running() && mono_ns() < deadline) std::this_thread::sleep_for(std::chrono::microseconds(500));
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status_, 0);
      reaped_ = true;
    }
    if (WIFEXITED(status_)) return WEXITSTATUS(status_);
    return WIFSIGNALED(status_) ? -WTERMSIG(status_) : -1;
  }

 private:
  pid_t pid_;
  int status_ = 0;
  bool reaped_ = false;
};

std::string child_error(const PairControl& c) {
  return c.child_failed.load(std::memory_order_acquire) ? std::string(c.child_error) : std::string();
}

}  // namespace

std::vector<std::uint64_t> run_pair(const PairSpec& spec) {
  void* mem = ::mmap(nullptr, sizeof(PairControl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
  auto* ctl = new (mem) PairControl{};
  struct Unmap {
    void* p;
    ~Unmap() { ::munmap(p, sizeof(PairControl)); }
  } unmap{mem};

  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Child: never returns, never runs the parent's destructors (its daemon launcher, ...).
    int rc = 0;
    try {
      if (spec.pin && !pin_to_cpu(1)) throw std::runtime_error("sched_setaffinity(CPU 1) failed");
      spec.pong([ctl] { ctl->child_ready.store(1, std::memory_order_release); });
    } catch (const std::exception& e) {
      std::snprintf(ctl->child_error, sizeof ctl->child_error, "%s", e.what());
      ctl->child_failed.store(1, std::memory_order_release);
      rc = 1;
    }
    ::_exit(rc);
  }

  Child child(pid);
  std::vector<std::uint64_t> samples;
  try {
    if (spec.pin && !pin_to_cpu(0)) throw std::runtime_error("sched_setaffinity(CPU 0) failed");
    // Allocated after the fork and touched (value-initialised): no copy-on-write or first-touch
    // page fault inside the measured loop.
    samples.assign(spec.iterations, 0);
    auto wait_ready = [&] {
      const std::uint64_t deadline = mono_ns() + 15'000'000'000ULL;
      while (!ctl->child_ready.load(std::memory_order_acquire)) {
        if (ctl->child_failed.load(std::memory_order_acquire) || !child.running())
          throw std::runtime_error("pong process failed during set-up");
        if (mono_ns() >= deadline) throw std::runtime_error("pong process not ready after 15 s");
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    };
    spec.ping(samples, wait_ready);
  } catch (const std::exception& e) {
    std::string msg = std::string("ping: ") + e.what();
    const int rc = child.join(200'000'000ULL);
    const std::string ce = child_error(*ctl);
    if (!ce.empty()) msg += "; pong: " + ce;
    else if (rc != 0) msg += "; pong exited with status " + std::to_string(rc);
    throw std::runtime_error(msg);
  }
  const int rc = child.join(10'000'000'000ULL);
  if (rc != 0) {
    const std::string ce = child_error(*ctl);
    throw std::runtime_error("pong: " + (ce.empty() ? "exited with status " + std::to_string(rc) : ce));
  }
  return samples;
}

}  // namespace shmbus::bench
