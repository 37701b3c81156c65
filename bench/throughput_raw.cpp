// The raw SPSC ring, the floor of throughput: [head line][tail line][capacity slots of size
// rounded up to 64 bytes] in a MAP_SHARED mapping; head and tail each on their own 128-byte block,
// each side caches the other's index; memcpy in and out; the producer blocks (spins) when full.
#include "scenarios.hpp"
#include "throughput.hpp"

#include <cstring>
#include <immintrin.h>
#include <stdexcept>

namespace shmbus::bench {

namespace {
struct alignas(128) RawIndex {
  std::atomic<std::uint64_t> v;
};
}  // namespace

std::size_t raw_ring_bytes(std::uint32_t size, std::uint32_t capacity) {
  return 2 * sizeof(RawIndex) + std::size_t{capacity} * ((size + 63) / 64 * 64);
}

std::vector<Worker> raw_workers(bool pin, std::uint32_t size, std::uint32_t capacity, std::byte* mem, Stat* st) {
  auto* head = new (mem) RawIndex{};
  auto* tail = new (mem + sizeof(RawIndex)) RawIndex{};
  std::byte* slots = mem + 2 * sizeof(RawIndex);
  const std::size_t slot = (size + 63) / 64 * 64;
  const std::uint64_t mask = capacity - 1;
  Worker cons{"raw consumer", pin ? 1 : -1, [=](WorkerCtx& ctx) {
    std::vector<std::byte> buf(size);
    ctx.ready();
    ctx.wait_go();
    Window w{st + 1};
    std::uint64_t t = 0, cached = 0, spins = 0;
    for (;;) {
      if (t == cached && (cached = head->v.load(std::memory_order_acquire)) == t) {
        _mm_pause();
        if ((++spins & 255) == 0) {
          w.observe(ctx.phase(), t, 0);
          if (w.seen == kAbort) throw std::runtime_error("aborted");
          if (st[0].done.load(std::memory_order_acquire) && t == st[0].total) break;
        }
        continue;
      }
      std::memcpy(buf.data(), slots + (t & mask) * slot, size);
      if (message_stamp(buf.data()) != t + 1) throw std::runtime_error("raw ring: message out of order");
      tail->v.store(++t, std::memory_order_release);
      if ((t & 63) == 0) w.observe(ctx.phase(), t, 0);
    }
    st[1].total = t;
  }};
  Worker prod{"raw producer", pin ? 0 : -1, [=](WorkerCtx& ctx) {
    std::vector<std::byte> msg(size, std::byte{0x5a});
    ctx.ready();
    ctx.wait_go();
    Window w{st};
    std::uint64_t h = 0, cached = 0, spins = 0;
    for (;;) {
      if (h - cached == capacity && h - (cached = tail->v.load(std::memory_order_acquire)) == capacity) {
        _mm_pause();  // full: the producer blocks
        if ((++spins & 255) == 0 && w.observe(ctx.phase(), h, 0)) break;
        continue;
      }
      stamp_message(msg.data(), h + 1);
      std::memcpy(slots + (h & mask) * slot, msg.data(), size);
      head->v.store(++h, std::memory_order_release);
      if ((h & 63) == 0 && w.observe(ctx.phase(), h, 0)) break;
    }
    st[0].total = h;
    st[0].done.store(1, std::memory_order_release);
  }};
  return {cons, prod};
}

}  // namespace shmbus::bench
