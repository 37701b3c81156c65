// Peer `posix_mq`: two POSIX message queues (ping, pong), blocking mq_send / mq_timedreceive (the
// timeout, 5 s, is computed before the clock starts on the ping side and after the reply on the pong
// side, off the measured path). The pong side creates both queues (O_EXCL, mq_maxmsg 2,
// mq_msgsize --size); the ping side opens them and unlinks the names at once, so nothing is left in
// /dev/mqueue even if a side dies; the parent unlinks them again after the run in case ping never got there.
#include "clock.hpp"
#include "pair.hpp"
#include "peers/peer_util.hpp"
#include "scenarios.hpp"

#include <ctime>
#include <fcntl.h>
#include <mqueue.h>
#include <vector>

namespace shmbus::bench::peer {

namespace {

struct Queue {
  mqd_t q = static_cast<mqd_t>(-1);
  Queue(const std::string& name, int flags, std::uint32_t size) {
    mq_attr attr{};
    attr.mq_maxmsg = 2;
    attr.mq_msgsize = size;
    q = (flags & O_CREAT) ? ::mq_open(name.c_str(), flags, 0600, &attr) : ::mq_open(name.c_str(), flags);
    if (q == static_cast<mqd_t>(-1)) {
      if (errno == EINVAL && (flags & O_CREAT))
        throw_errno("posix_mq: mq_open(" + name + ", msgsize " + std::to_string(size) +
                    ") (see /proc/sys/fs/mqueue/msgsize_max)");
      throw_errno("posix_mq: mq_open(" + name + ")");
    }
  }
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  ~Queue() { ::mq_close(q); }

  void send(const std::byte* p, std::uint32_t n) const {
    if (::mq_send(q, reinterpret_cast<const char*>(p), n, 0) != 0) [[unlikely]]
      throw_errno("posix_mq: mq_send");
  }
  void receive(std::byte* p, std::uint32_t n, const timespec& deadline) const {
    const ssize_t r = ::mq_timedreceive(q, reinterpret_cast<char*>(p), n, nullptr, &deadline);
    if (r != static_cast<ssize_t>(n)) [[unlikely]] {
      if (r < 0 && errno == ETIMEDOUT) throw std::runtime_error("posix_mq: peer did not answer within 5 s");
      if (r < 0) throw_errno("posix_mq: mq_timedreceive");
      throw std::runtime_error("posix_mq: message of " + std::to_string(r) + " bytes");
    }
  }
};

/// mq_timedreceive takes an absolute CLOCK_REALTIME deadline.
timespec deadline() noexcept {
  timespec t;
  ::clock_gettime(CLOCK_REALTIME, &t);
  t.tv_sec += kTimeoutSeconds;
  return t;
}

std::vector<std::uint64_t> run(const Args& a, bool pin) {
  const std::string base = "/" + unique_name("shmbus-bench-mq");
  const std::string ping_name = base + "-ping", pong_name = base + "-pong";
  OnExit unlink{[&] {
    ::mq_unlink(ping_name.c_str());
    ::mq_unlink(pong_name.c_str());
  }};
  const std::uint64_t total = a.warmup + a.iterations;

  PairSpec spec;
  spec.pin = pin;
  spec.iterations = a.iterations;
  spec.pong = [&](const std::function<void()>& ready) {
    const Queue in(ping_name, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, a.size);
    const Queue out(pong_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, a.size);
    std::vector<std::byte> buf(a.size);
    ready();
    for (std::uint64_t i = 0; i < total; ++i) {
      const timespec d = deadline();
      in.receive(buf.data(), a.size, d);
      out.send(buf.data(), a.size);
    }
  };
  spec.ping = [&](std::span<std::uint64_t> samples, const std::function<void()>& wait_ready) {
    std::vector<std::byte> out_buf(a.size, std::byte{0x5a}), in_buf(a.size);
    wait_ready();
    const Queue out(ping_name, O_WRONLY | O_CLOEXEC, a.size);
    const Queue in(pong_name, O_RDONLY | O_CLOEXEC, a.size);
    ::mq_unlink(ping_name.c_str());  // both sides hold them open now: the names can go
    ::mq_unlink(pong_name.c_str());
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::uint64_t v = i + 1;
      stamp_message(out_buf.data(), v);
      const timespec d = deadline();
      const std::uint64_t t0 = ticks();
      out.send(out_buf.data(), a.size);
      in.receive(in_buf.data(), a.size, d);
      const std::uint64_t t1 = ticks();
      if (message_stamp(in_buf.data()) != v) [[unlikely]]
        throw std::runtime_error("posix_mq: echoed message " + std::to_string(i) + " has the wrong content");
      if (i >= a.warmup) samples[i - a.warmup] = t1 - t0;
    }
  };
  return run_pair(spec);
}

}  // namespace

Peer posix_mq_peer() {
  return {"posix_mq", "POSIX mq", "block",
          "two POSIX message queues (mq_maxmsg 2), blocking mq_send / mq_timedreceive", run};
}

}  // namespace shmbus::bench::peer
