// Peer `uds`: a Unix domain socket, SOCK_SEQPACKET (connection-oriented, message boundaries kept, so
// one recv() returns one whole message), blocking send()/recv() with MSG_NOSIGNAL (a dead peer is an
// error, not a SIGPIPE). The pong side binds + listens on a name in the abstract namespace (nothing
// in the file system to clean up) and accepts; the ping side connects after the pong is ready.
#include "clock.hpp"
#include "pair.hpp"
#include "peers/peer_util.hpp"
#include "scenarios.hpp"

#include <cstddef>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace shmbus::bench::peer {

namespace {

/// An owned file descriptor.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

struct Address {
  sockaddr_un sa{};
  socklen_t len = 0;
};

/// "\0<name>": an abstract socket address.
Address abstract_address(const std::string& name) {
  Address a;
  a.sa.sun_family = AF_UNIX;
  if (name.size() + 1 > sizeof a.sa.sun_path) throw std::runtime_error("uds: socket name too long");
  std::memcpy(a.sa.sun_path + 1, name.data(), name.size());
  a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  return a;
}

Fd seqpacket_socket() {
  Fd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (s.fd < 0) throw_errno("uds: socket(AF_UNIX, SOCK_SEQPACKET)");
  return s;
}

void set_options(int fd, std::uint32_t size) {
  const timeval tv{kTimeoutSeconds, 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) throw_errno("uds: setsockopt(SO_RCVTIMEO)");
  // Room for a whole message of --size (up to 64 KiB) in one datagram.
  const int buf = static_cast<int>(std::max<std::uint32_t>(size * 4, 65536));
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf) != 0) throw_errno("uds: setsockopt(SO_SNDBUF)");
}

void send_all(int fd, const std::byte* p, std::uint32_t n) {
  const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
  if (w != static_cast<ssize_t>(n)) [[unlikely]] {
    if (w < 0) throw_errno("uds: send");
    throw std::runtime_error("uds: short send");
  }
}

void recv_all(int fd, std::byte* p, std::uint32_t n) {
  const ssize_t r = ::recv(fd, p, n, 0);
  if (r != static_cast<ssize_t>(n)) [[unlikely]] {
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) throw std::runtime_error("uds: peer did not answer within 5 s");
    if (r < 0) throw_errno("uds: recv");
    if (r == 0) throw std::runtime_error("uds: peer closed the connection");
    throw std::runtime_error("uds: message of " + std::to_string(r) + " bytes, expected " + std::to_string(n));
  }
}

std::vector<std::uint64_t> run(const Args& a, bool pin) {
  const Address addr = abstract_address(unique_name("shmbus-bench-uds"));
  const std::uint64_t total = a.warmup + a.iterations;

  PairSpec spec;
  spec.pin = pin;
  spec.iterations = a.iterations;
  spec.pong = [&](const std::function<void()>& ready) {
    Fd listener = seqpacket_socket();
    if (::bind(listener.fd, reinterpret_cast<const sockaddr*>(&addr.sa), addr.len) != 0) throw_errno("uds: bind");
    if (::listen(listener.fd, 1) != 0) throw_errno("uds: listen");
    std::vector<std::byte> buf(a.size);
    ready();
    Fd conn(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (conn.fd < 0) throw_errno("uds: accept");
    set_options(conn.fd, a.size);
    for (std::uint64_t i = 0; i < total; ++i) {
      recv_all(conn.fd, buf.data(), a.size);
      send_all(conn.fd, buf.data(), a.size);
    }
  };
  spec.ping = [&](std::span<std::uint64_t> samples, const std::function<void()>& wait_ready) {
    std::vector<std::byte> out(a.size, std::byte{0x5a}), in(a.size);
    Fd s = seqpacket_socket();
    wait_ready();
    if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&addr.sa), addr.len) != 0) throw_errno("uds: connect");
    set_options(s.fd, a.size);
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::uint64_t v = i + 1;
      stamp_message(out.data(), v);
      const std::uint64_t t0 = ticks();
      send_all(s.fd, out.data(), a.size);
      recv_all(s.fd, in.data(), a.size);
      const std::uint64_t t1 = ticks();
      if (message_stamp(in.data()) != v) [[unlikely]]
        throw std::runtime_error("uds: echoed message " + std::to_string(i) + " has the wrong content");
      if (i >= a.warmup) samples[i - a.warmup] = t1 - t0;
    }
  };
  return run_pair(spec);
}

}  // namespace

Peer uds_peer() {
  return {"uds", "Unix socket", "block",
          "AF_UNIX SOCK_SEQPACKET connection (abstract name), blocking send(MSG_NOSIGNAL)/recv of one whole "
          "message each way",
          run};
}

}  // namespace shmbus::bench::peer
