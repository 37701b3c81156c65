#include "control/socket.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace shmbus::control {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}
Fd::~Fd() { reset(); }
void Fd::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Fd connect_unix(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw Error(ErrorCode::Internal, std::string("socket(AF_UNIX): ") + std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    throw Error(ErrorCode::InvalidArgument, "socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    throw Error(ErrorCode::DaemonUnavailable, "cannot connect to shmbusd at " + path + ": " + std::strerror(e) +
                                                  " (is `shmbusd --dir DIR` running for this directory?)");
  }
  return fd;
}

bool send_all(int fd, const std::vector<std::uint8_t>& bytes) noexcept {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

int recv_exact(int fd, std::uint8_t* buf, std::size_t n, std::chrono::milliseconds timeout) noexcept {
  std::size_t off = 0;
  while (off < n) {
    pollfd p{fd, POLLIN, 0};
    const int pr = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) return -1;
    const ssize_t r = ::recv(fd, buf + off, n - off, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r == 0) return 0;
    if (r < 0) return -1;
    off += static_cast<std::size_t>(r);
  }
  return 1;
}

std::vector<std::uint8_t> call(int fd, MsgType type, const Writer& body, MsgType expect,
                               std::chrono::milliseconds timeout) {
  static std::atomic<std::uint32_t> next_id{1};
  // Relaxed: only uniqueness matters; the id is echoed for debugging.
  const std::uint32_t id = next_id.fetch_add(1, std::memory_order_relaxed);
  if (!send_all(fd, body.frame(type, id)))
    throw Error(ErrorCode::DaemonGone, "shmbusd closed the control connection (daemon died or shut down)");
  std::uint8_t hb[kHeaderSize];
  const int r = recv_exact(fd, hb, sizeof hb, timeout);
  if (r == 0) throw Error(ErrorCode::DaemonGone, "shmbusd closed the control connection (daemon died or shut down)");
  if (r < 0) throw Error(ErrorCode::DaemonGone, "no reply from shmbusd within " + std::to_string(timeout.count()) + " ms");
  const FrameHeader h = decode_header(hb);
  std::vector<std::uint8_t> b(h.body_len);
  if (h.body_len && recv_exact(fd, b.data(), b.size(), timeout) != 1)
    throw Error(ErrorCode::DaemonGone, "shmbusd closed the control connection mid-reply");
  if (h.type == MsgType::Error) {
    Reader rd(b);
    ErrorReply e;
    decode(rd, e);
    throw Error(e.code, e.message);
  }
  if (h.type != expect) throw Error(ErrorCode::ProtocolError, "unexpected reply type from shmbusd");
  return b;
}

}  // namespace shmbus::control
