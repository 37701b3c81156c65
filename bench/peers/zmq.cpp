// Peer `zmq`: ZeroMQ PAIR sockets over ipc:// (an abstract-namespace name, "ipc://@...", so no socket
// file is left behind), blocking zmq_send / zmq_recv with ZMQ_RCVTIMEO 5 s. Each side creates its own
// context (with its I/O thread, which inherits the side's CPU pinning) after the fork; pong binds,
// ping connects. PAIR rather than REQ/REP: the lightest pattern, no envelope frames.
#include "clock.hpp"
#include "pair.hpp"
#include "peers/peer_util.hpp"
#include "scenarios.hpp"

#include <vector>
#include <zmq.h>

namespace shmbus::bench::peer {

namespace {

[[noreturn]] void throw_zmq(const std::string& what) {
  throw std::runtime_error("zmq: " + what + ": " + zmq_strerror(zmq_errno()));
}

/// A context with one PAIR socket, torn down without lingering.
struct Endpoint {
  void* ctx = nullptr;
  void* sock = nullptr;
  Endpoint() {
    ctx = zmq_ctx_new();
    if (!ctx) throw_zmq("zmq_ctx_new");
    sock = zmq_socket(ctx, ZMQ_PAIR);
    if (!sock) throw_zmq("zmq_socket(ZMQ_PAIR)");
    const int linger = 0, timeout_ms = kTimeoutSeconds * 1000;
    if (zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms) != 0)
      throw_zmq("zmq_setsockopt");
  }
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;
  ~Endpoint() {
    if (sock) zmq_close(sock);
    if (ctx) zmq_ctx_term(ctx);
  }
  void send(const std::byte* p, std::uint32_t n) const {
    if (zmq_send(sock, p, n, 0) != static_cast<int>(n)) [[unlikely]]
      throw_zmq("zmq_send");
  }
  void receive(std::byte* p, std::uint32_t n) const {
    const int r = zmq_recv(sock, p, n, 0);
    if (r != static_cast<int>(n)) [[unlikely]] {
      if (r < 0 && zmq_errno() == EAGAIN) throw std::runtime_error("zmq: peer did not answer within 5 s");
      if (r < 0) throw_zmq("zmq_recv");
      throw std::runtime_error("zmq: message of " + std::to_string(r) + " bytes");
    }
  }
};

std::vector<std::uint64_t> run(const Args& a, bool pin) {
  const std::string endpoint = "ipc://@" + unique_name("shmbus-bench-zmq");
  const std::uint64_t total = a.warmup + a.iterations;

  PairSpec spec;
  spec.pin = pin;
  spec.iterations = a.iterations;
  spec.pong = [&](const std::function<void()>& ready) {
    const Endpoint e;
    if (zmq_bind(e.sock, endpoint.c_str()) != 0) throw_zmq("zmq_bind(" + endpoint + ")");
    std::vector<std::byte> buf(a.size);
    ready();
    for (std::uint64_t i = 0; i < total; ++i) {
      e.receive(buf.data(), a.size);
      e.send(buf.data(), a.size);
    }
  };
  spec.ping = [&](std::span<std::uint64_t> samples, const std::function<void()>& wait_ready) {
    std::vector<std::byte> out(a.size, std::byte{0x5a}), in(a.size);
    const Endpoint e;
    wait_ready();
    if (zmq_connect(e.sock, endpoint.c_str()) != 0) throw_zmq("zmq_connect(" + endpoint + ")");
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::uint64_t v = i + 1;
      stamp_message(out.data(), v);
      const std::uint64_t t0 = ticks();
      e.send(out.data(), a.size);
      e.receive(in.data(), a.size);
      const std::uint64_t t1 = ticks();
      if (message_stamp(in.data()) != v) [[unlikely]]
        throw std::runtime_error("zmq: echoed message " + std::to_string(i) + " has the wrong content");
      if (i >= a.warmup) samples[i - a.warmup] = t1 - t0;
    }
  };
  return run_pair(spec);
}

}  // namespace

Peer zmq_peer() {
  int major = 0, minor = 0, patch = 0;
  zmq_version(&major, &minor, &patch);
  return {"zmq", "ZeroMQ ipc", "block",
          "libzmq " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch) +
              " ZMQ_PAIR sockets over ipc:// (abstract name), blocking zmq_send / zmq_recv",
          run};
}

}  // namespace shmbus::bench::peer
