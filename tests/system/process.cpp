#include "process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <sys/prctl.h>
#include <stdexcept>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>

extern char** environ;

namespace shmbus::systest {

namespace {

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void make_pipe(int fds[2]) {
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
}

}  // namespace

// fork + exec rather than posix_spawn: the child asks for SIGKILL when the test process dies
// (PR_SET_PDEATHSIG), so a crashed test never leaves a daemon or agent behind. Between fork and
// exec only async-signal-safe calls (the test process has threads: LogPump).
Child Child::spawn(const std::vector<std::string>& argv, SpawnOptions o) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  if (o.pipe_stdin) make_pipe(in);
  if (o.pipe_stdout) make_pipe(out);
  if (o.pipe_stderr) make_pipe(err);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the test died before prctl took effect
    const int null_in = o.pipe_stdin ? -1 : ::open("/dev/null", O_RDONLY);
    if (::dup2(o.pipe_stdin ? in[0] : null_in, 0) < 0) ::_exit(127);
    if (o.pipe_stdout && ::dup2(out[1], 1) < 0) ::_exit(127);
    if (o.pipe_stderr && ::dup2(err[1], 2) < 0) ::_exit(127);
    ::execve(args[0], args.data(), environ);
    ::_exit(127);
  }
  const int fork_errno = errno;
  close_fd(in[0]);
  close_fd(out[1]);
  close_fd(err[1]);
  Child c;
  c.name_ = argv.at(0);
  if (argv.size() > 1) c.name_ += " " + argv[1];
  c.in_ = in[1];
  c.out_ = out[0];
  c.err_ = err[0];
  if (pid < 0) throw std::runtime_error("cannot fork for " + argv[0] + ": " + std::strerror(fork_errno));
  c.pid_ = pid;
  c.pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, c.pid_, 0));
  if (c.pidfd_ < 0) throw std::runtime_error(std::string("pidfd_open: ") + std::strerror(errno));
  return c;
}

Child::Child(Child&& o) noexcept { *this = std::move(o); }

Child& Child::operator=(Child&& o) noexcept {
  if (this == &o) return *this;
  reset();
  pid_ = std::exchange(o.pid_, -1);
  pidfd_ = std::exchange(o.pidfd_, -1);
  in_ = std::exchange(o.in_, -1);
  out_ = std::exchange(o.out_, -1);
  err_ = std::exchange(o.err_, -1);
  name_ = std::move(o.name_);
  outbuf_ = std::move(o.outbuf_);
  status_ = std::exchange(o.status_, std::nullopt);
  return *this;
}

Child::~Child() { reset(); }

void Child::reset() noexcept {
  if (running()) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  close_fd(in_);
  close_fd(out_);
  close_fd(err_);
  close_fd(pidfd_);
  pid_ = -1;
  status_.reset();
}

std::optional<std::string> Child::read_line(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (const auto nl = outbuf_.find('\n'); nl != std::string::npos) {
      std::string line = outbuf_.substr(0, nl);
      outbuf_.erase(0, nl + 1);
      return line;
    }
    if (out_ < 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    char buf[4096];
    const ssize_t r = ::read(out_, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      close_fd(out_);
      continue;
    }
    outbuf_.append(buf, static_cast<std::size_t>(r));
  }
}

bool Child::write_stdin(const std::string& s) {
  // A child that exits without reading its stdin must fail the write (EPIPE), not kill the test
  // binary with SIGPIPE.
  static const bool ignored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
  (void)ignored;
  std::size_t off = 0;
  while (in_ >= 0 && off < s.size()) {
    const ssize_t n = ::write(in_, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return in_ >= 0;
}

void Child::close_stdin() { close_fd(in_); }

bool Child::drain(Millis timeout, std::string& out, std::string& err) {
  const auto deadline = Clock::now() + timeout;
  out += outbuf_;
  outbuf_.clear();
  while (out_ >= 0 || err_ >= 0) {
    pollfd p[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
    const int n = ::poll(p, 2, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    for (int i = 0; i < 2; ++i) {
      int& fd = i == 0 ? out_ : err_;
      if (fd < 0 || !p[i].revents) continue;
      char buf[4096];
      const ssize_t r = ::read(fd, buf, sizeof buf);
      if (r > 0) (i == 0 ? out : err).append(buf, static_cast<std::size_t>(r));
      else if (r == 0 || errno != EINTR) close_fd(fd);
    }
  }
  return true;
}

std::optional<int> Child::wait_exit(Millis timeout) {
  if (status_) return status_;
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    pollfd p{pidfd_, POLLIN, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    int st = 0;
    if (::waitpid(pid_, &st, 0) == pid_) {
      status_ = st;
      return status_;
    }
    if (errno != EINTR) return std::nullopt;
  }
}

void Child::kill(int sig) noexcept {
  if (running()) ::kill(pid_, sig);
}

int Child::release_stderr() noexcept { return std::exchange(err_, -1); }

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exited with " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("killed by signal ") + std::to_string(WTERMSIG(st)) + " (" + strsignal(WTERMSIG(st)) + ")";
  return "wait status " + std::to_string(st);
}

LogPump::LogPump(int fd, std::string file) : fd_(fd), file_(std::move(file)), thread_([this] { run(); }) {}

LogPump::~LogPump() {
  if (thread_.joinable()) thread_.join();  // the writer has exited or been killed: EOF comes
  if (fd_ >= 0) ::close(fd_);
}

void LogPump::run() {
  std::ofstream f(file_, std::ios::app);
  char buf[4096];
  for (;;) {
    const ssize_t r = ::read(fd_, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    f.write(buf, r);
    f.flush();
    std::lock_guard lk(mu_);
    text_.append(buf, static_cast<std::size_t>(r));
    cv_.notify_all();
  }
  std::lock_guard lk(mu_);
  eof_ = true;
  cv_.notify_all();
}

bool LogPump::wait_for(const std::string& text, Millis timeout, std::size_t from) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return text_.find(text, from) != std::string::npos || eof_; }) &&
         text_.find(text, from) != std::string::npos;
}

bool LogPump::wait_eof(Millis timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return eof_; });
}

std::string LogPump::text() const {
  std::lock_guard lk(mu_);
  return text_;
}

std::size_t LogPump::size() const {
  std::lock_guard lk(mu_);
  return text_.size();
}

}  // namespace shmbus::systest
