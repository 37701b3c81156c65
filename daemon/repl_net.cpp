#include "repl_net.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

namespace shmbus::daemon::repl {

namespace {
// Reads exactly n bytes: a non-blocking recv first (the bytes are usually there already: no poll
// syscall on the replication round trip), then poll for the rest. 1 done, 0 EOF, -1 error/timeout.
int read_exact(int fd, std::uint8_t* buf, std::size_t n, std::chrono::milliseconds timeout) noexcept {
  std::size_t off = 0;
  while (off < n) {
    const ssize_t r = ::recv(fd, buf + off, n - off, MSG_DONTWAIT);
    if (r > 0) {
      off += static_cast<std::size_t>(r);
      continue;
    }
    if (r == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    pollfd p{fd, POLLIN, 0};
    const int pr = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) return -1;
  }
  return 1;
}
}  // namespace

bool split_address(const std::string& addr, std::string& host, std::uint16_t& port, std::string& err) {
  const auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == addr.size()) {
    err = "'" + addr + "' is not HOST:PORT";
    return false;
  }
  host = addr.substr(0, colon);
  const std::string p = addr.substr(colon + 1);
  char* end = nullptr;
  const unsigned long v = std::strtoul(p.c_str(), &end, 10);
  if (*end != '\0' || v == 0 || v > 65535) {
    err = "'" + addr + "': port must be 1 to 65535";
    return false;
  }
  port = static_cast<std::uint16_t>(v);
  return true;
}

namespace {
bool resolve(const std::string& host, std::uint16_t port, sockaddr_in& sa, std::string& err) {
  std::memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) == 1) return true;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res); rc != 0 || res == nullptr) {
    err = "cannot resolve '" + host + "': " + ::gai_strerror(rc);
    return false;
  }
  sa.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  ::freeaddrinfo(res);
  return true;
}
}  // namespace

void tune(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

control::Fd listen_tcp(const std::string& addr) {
  std::string host, err;
  std::uint16_t port = 0;
  sockaddr_in sa{};
  if (!split_address(addr, host, port, err) || !resolve(host, port, sa, err)) throw std::runtime_error(err);
  control::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    throw std::runtime_error("cannot listen on " + addr + ": " + std::strerror(errno));
  if (::listen(fd.get(), 64) != 0) throw std::runtime_error("cannot listen on " + addr + ": " + std::strerror(errno));
  return fd;
}

control::Fd connect_tcp(const std::string& addr, std::chrono::milliseconds timeout, std::string& err) {
  std::string host;
  std::uint16_t port = 0;
  sockaddr_in sa{};
  if (!split_address(addr, host, port, err) || !resolve(host, port, sa, err)) return {};
  control::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    err = std::string("socket: ") + std::strerror(errno);
    return {};
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    if (errno != EINPROGRESS) {
      err = "cannot connect to " + addr + ": " + std::strerror(errno);
      return {};
    }
    pollfd p{fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
      err = "cannot connect to " + addr + ": timed out";
      return {};
    }
    int so = 0;
    socklen_t len = sizeof so;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so, &len);
    if (so != 0) {
      err = "cannot connect to " + addr + ": " + std::strerror(so);
      return {};
    }
  }
  const int fl = ::fcntl(fd.get(), F_GETFL);
  ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK);
  tune(fd.get());
  return fd;
}

void Conn::send(const std::vector<std::uint8_t>& bytes) {
  if (!control::send_all(fd_.get(), bytes)) throw ReplError("the peer closed the connection (send failed)");
}

void Conn::send_file(int file_fd, std::uint64_t pos, std::uint32_t len) {
  off_t off = static_cast<off_t>(pos);
  std::size_t left = len;
  while (left > 0) {
    const ssize_t n = ::sendfile(fd_.get(), file_fd, &off, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw ReplError(std::string("sendfile failed: ") + (n == 0 ? "file shorter than expected" : std::strerror(errno)));
    left -= static_cast<std::size_t>(n);
  }
}

Header Conn::recv(std::chrono::milliseconds timeout) {
  std::uint8_t hb[kHeaderSize];
  const int r = read_exact(fd_.get(), hb, kHeaderSize, timeout);
  if (r == 0) throw ReplError("the peer closed the connection");
  if (r < 0) throw ReplError("no frame from the peer within " + std::to_string(timeout.count()) + " ms (or a socket error)");
  const Header h = decode_header(hb);
  if (buf_.size() < h.length) buf_.resize(h.length);
  len_ = h.length;
  if (h.length != 0) {
    const int r2 = read_exact(fd_.get(), buf_.data(), h.length, std::chrono::milliseconds(10'000));
    if (r2 <= 0) throw ReplError("the peer sent a frame header and then not its " + std::to_string(h.length) + " bytes");
  }
  bytes_in_ += kHeaderSize + h.length;
  return h;
}

void Conn::shutdown() noexcept {
  if (fd_) ::shutdown(fd_.get(), SHUT_RDWR);
}

}  // namespace shmbus::daemon::repl
