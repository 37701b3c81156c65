// Peer `futex`: the raw floor of blocking paths. Two 32-bit counters on separate 128-byte blocks of an
// anonymous MAP_SHARED mapping (payload on the next cache line, as the floor). A side copies its
// payload in, release-stores its counter and calls FUTEX_WAKE on it; the other side sleeps in
// FUTEX_WAIT (shared, not FUTEX_PRIVATE) until the counter holds the expected value, then copies the
// payload out. No spinning before the sleep: every wait parks, as shmbus' park mode with spin_count 0.
#include "clock.hpp"
#include "pair.hpp"
#include "peers/peer_util.hpp"
#include "scenario_common.hpp"
#include "scenarios.hpp"

#include <atomic>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace shmbus::bench::peer {

namespace {

constexpr std::size_t kBlockAlign = 128;
constexpr std::size_t kPayloadOffset = 64;
static_assert(std::atomic<std::uint32_t>::is_always_lock_free && sizeof(std::atomic<std::uint32_t>) == 4);

struct Block {
  std::atomic<std::uint32_t>* seq;
  std::byte* payload;
};

long futex(std::atomic<std::uint32_t>* addr, int op, std::uint32_t val, const timespec* timeout) noexcept {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), op, val, timeout, nullptr, 0);
}

struct Side {
  Block in, out;
  std::uint32_t size;

  void send(const std::byte* src, std::uint32_t v) {
    std::memcpy(out.payload, src, size);
    out.seq->store(v, std::memory_order_release);
    if (futex(out.seq, FUTEX_WAKE, 1, nullptr) < 0) [[unlikely]]
      throw_errno("futex(FUTEX_WAKE)");
  }

  /// Sleeps until the peer published `v`, then copies its payload to `dst`.
  void receive(std::byte* dst, std::uint32_t v) {
    static constexpr timespec kTimeout{kTimeoutSeconds, 0};
    for (std::uint32_t seen; (seen = in.seq->load(std::memory_order_acquire)) != v;) {
      // Returns at once (EAGAIN) if the counter moved since `seen`: no lost wake-up.
      if (futex(in.seq, FUTEX_WAIT, seen, &kTimeout) < 0 && errno != EAGAIN && errno != EINTR) [[unlikely]] {
        if (errno == ETIMEDOUT) throw std::runtime_error("futex: peer did not answer within 5 s");
        throw_errno("futex(FUTEX_WAIT)");
      }
    }
    std::memcpy(dst, in.payload, size);
  }
};

std::vector<std::uint64_t> run(const Args& a, bool pin) {
  const std::size_t block = (kPayloadOffset + a.size + kBlockAlign - 1) / kBlockAlign * kBlockAlign;
  const SharedMem mem(2 * block);  // shared with the pong process forked below
  std::byte* base = mem.data();
  const Block ping{new (base) std::atomic<std::uint32_t>(0), base + kPayloadOffset};
  const Block pong{new (base + block) std::atomic<std::uint32_t>(0), base + block + kPayloadOffset};
  const std::uint64_t total = a.warmup + a.iterations;

  PairSpec spec;
  spec.pin = pin;
  spec.iterations = a.iterations;
  spec.pong = [&](const std::function<void()>& ready) {
    Side s{ping, pong, a.size};
    std::vector<std::byte> buf(a.size);
    ready();
    for (std::uint64_t i = 1; i <= total; ++i) {
      s.receive(buf.data(), static_cast<std::uint32_t>(i));
      s.send(buf.data(), static_cast<std::uint32_t>(i));
    }
  };
  spec.ping = [&](std::span<std::uint64_t> samples, const std::function<void()>& wait_ready) {
    Side s{pong, ping, a.size};
    std::vector<std::byte> out(a.size, std::byte{0x5a}), in(a.size);
    wait_ready();
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::uint64_t v = i + 1;
      stamp_message(out.data(), v);
      const std::uint64_t t0 = ticks();
      s.send(out.data(), static_cast<std::uint32_t>(v));
      s.receive(in.data(), static_cast<std::uint32_t>(v));
      const std::uint64_t t1 = ticks();
      if (message_stamp(in.data()) != v) [[unlikely]]
        throw std::runtime_error("futex: echoed message " + std::to_string(i) + " has the wrong content");
      if (i >= a.warmup) samples[i - a.warmup] = t1 - t0;
    }
  };
  return run_pair(spec);
}

}  // namespace

Peer futex_peer() {
  return {"futex", "futex (raw)", "block",
          "two 32-bit counters in a MAP_SHARED mapping, payload copied in and out; FUTEX_WAIT until the peer's "
          "counter changes, FUTEX_WAKE after each store (no spinning)",
          run};
}

}  // namespace shmbus::bench::peer
