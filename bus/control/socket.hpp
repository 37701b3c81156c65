// Blocking Unix-socket helpers for the control channel (set-up path only, never the hot path).
#pragma once
#include "control/protocol.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace shmbus::control {

/// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  ~Fd();
  int get() const noexcept { return fd_; }
  int release() noexcept { int f = fd_; fd_ = -1; return f; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  void reset() noexcept;

 private:
  int fd_ = -1;
};

/// Connects to `path`; throws Error(DaemonUnavailable) naming the path and the errno.
Fd connect_unix(const std::string& path);
/// Writes all of `bytes`; false if the peer is gone.
bool send_all(int fd, const std::vector<std::uint8_t>& bytes) noexcept;
/// Reads exactly n bytes, waiting at most `timeout`. 1 = done, 0 = EOF, -1 = error/timeout.
int recv_exact(int fd, std::uint8_t* buf, std::size_t n, std::chrono::milliseconds timeout) noexcept;

/// One request, one reply: sends (type, body) and reads the reply. An ErrorReply becomes
/// Error(code, message). Throws Error(DaemonGone) if the daemon closed the socket.
std::vector<std::uint8_t> call(int fd, MsgType type, const Writer& body, MsgType expect,
                               std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace shmbus::control
