// The floor: two processes ping-pong over two counters in an anonymous MAP_SHARED mapping.
//
// mapping:  [ping block][pong block], each 128-byte aligned:
//   +0   std::atomic<uint64_t> seq   (its own 64-byte line)
//   +64  payload[size]               (next line(s): the same shape as a shmbus slot)
// A side publishes by copying its payload in and storing seq (release); the peer spins on seq
// (acquire, with _mm_pause: without it this CPU is slower) and copies the payload out. Same message size, copies and iteration count as shmbus.
#include "clock.hpp"
#include "pair.hpp"
#include "scenario_common.hpp"
#include "scenarios.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <immintrin.h>
#include <stdexcept>
#include <sys/mman.h>

namespace shmbus::bench {

namespace {

constexpr std::size_t kBlockAlign = 128;
constexpr std::size_t kPayloadOffset = 64;
constexpr std::uint64_t kWriting = 1ULL << 63;

struct Block {
  std::atomic<std::uint64_t>* seq;
  std::byte* payload;
};

/// The producer-private claim counter of the RingRmw variant (like TopicHeader::tail with one producer).
struct alignas(kBlockAlign) PrivateTail {
  std::atomic<std::uint64_t> v{0};
};

template <FloorKind K>
struct Side {
  Block in, out;
  std::uint32_t size;
  PrivateTail tail;

  void send(const std::byte* src, std::uint64_t v) noexcept {
    if constexpr (K == FloorKind::RingRmw) {
      // What TopicWriter::claim does on top of the floor: a fetch_add on a producer-owned claim
      // counter, a look at the slot, and a plain release store of the writing mark.
      (void)tail.v.fetch_add(1, std::memory_order_acq_rel);
      (void)out.seq->load(std::memory_order_acquire);
      out.seq->store(v | kWriting, std::memory_order_release);
      std::atomic_thread_fence(std::memory_order_release);
    }
    std::memcpy(out.payload, src, size);
    if constexpr (K == FloorKind::Xchg || K == FloorKind::RingRmw) {
      (void)out.seq->exchange(v, std::memory_order_seq_cst);
    } else {
      out.seq->store(v, std::memory_order_release);
    }
  }

  /// Spins until the peer published `v`, then copies its payload to `dst`.
  void receive(std::byte* dst, std::uint64_t v) {
    std::uint32_t spins = 0;
    while (in.seq->load(std::memory_order_acquire) != v) {
      if constexpr (K != FloorKind::NoPause) _mm_pause();
      if (++spins == (1U << 22)) {
        spins = 0;
        check_deadline();
      }
    }
    deadline_ = 0;
    std::memcpy(dst, in.payload, size);
  }

  void check_deadline() {
    const std::uint64_t now = mono_ns();
    if (deadline_ == 0) deadline_ = now + kPeerTimeoutNs;
    else if (now >= deadline_) throw std::runtime_error("peer did not answer within 5 s");
  }
  std::uint64_t deadline_ = 0;
};

template <FloorKind K>
std::vector<std::uint64_t> run_kind(const Args& a, bool pin) {
  const std::size_t block = (kPayloadOffset + a.size + kBlockAlign - 1) / kBlockAlign * kBlockAlign;
  const SharedMem mem(2 * block);  // shared with the pong process forked below
  std::byte* base = mem.data();
  const Block ping{new (base) std::atomic<std::uint64_t>(0), base + kPayloadOffset};
  const Block pong{new (base + block) std::atomic<std::uint64_t>(0), base + block + kPayloadOffset};
  const std::uint64_t total = a.warmup + a.iterations;

  PairSpec spec;
  spec.pin = pin;
  spec.iterations = a.iterations;
  spec.pong = [&](const std::function<void()>& ready) {
    Side<K> s{ping, pong, a.size, {}};
    std::vector<std::byte> buf(a.size);
    ready();
    for (std::uint64_t v = 1; v <= total; ++v) {
      s.receive(buf.data(), v);
      s.send(buf.data(), v);
    }
  };
  spec.ping = [&](std::span<std::uint64_t> samples, const std::function<void()>& wait_ready) {
    Side<K> s{pong, ping, a.size, {}};
    std::vector<std::byte> out(a.size, std::byte{0x5a}), in(a.size);
    wait_ready();
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::uint64_t v = i + 1;
      stamp_message(out.data(), v);
      const std::uint64_t t0 = ticks();
      s.send(out.data(), v);
      s.receive(in.data(), v);
      const std::uint64_t t1 = ticks();
      if (message_stamp(in.data()) != v) [[unlikely]]
        throw std::runtime_error("floor: echoed message " + std::to_string(message_stamp(in.data())) + " != " + std::to_string(v));
      if (i >= a.warmup) samples[i - a.warmup] = t1 - t0;
    }
  };
  return run_pair(spec);
}

}  // namespace

const char* floor_key(FloorKind k) noexcept {
  switch (k) {
    case FloorKind::Plain: return "floor";
    case FloorKind::NoPause: return "floor_nopause";
    case FloorKind::Xchg: return "floor_xchg";
    case FloorKind::RingRmw: return "floor_ring_rmw";
  }
  return "?";
}

const char* floor_label(FloorKind k) noexcept {
  switch (k) {
    case FloorKind::Plain: return "floor (2 atomics)";
    case FloorKind::NoPause: return "floor, no pause";
    case FloorKind::Xchg: return "floor +xchg";
    case FloorKind::RingRmw: return "floor +claim work";
  }
  return "?";
}

std::vector<std::uint64_t> run_floor(const Args& a, FloorKind kind, bool pin) {
  switch (kind) {
    case FloorKind::Plain: return run_kind<FloorKind::Plain>(a, pin);
    case FloorKind::NoPause: return run_kind<FloorKind::NoPause>(a, pin);
    case FloorKind::Xchg: return run_kind<FloorKind::Xchg>(a, pin);
    case FloorKind::RingRmw: return run_kind<FloorKind::RingRmw>(a, pin);
  }
  return {};
}

}  // namespace shmbus::bench
