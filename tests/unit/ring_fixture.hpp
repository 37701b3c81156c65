// Test helper: a topic ring in plain process memory, initialised field by field the way
// shmbusd's Conductor::find_or_create (daemon/requests.cpp) initialises a shared-memory topic.
// No daemon, no /dev/shm: the ring code only sees a base pointer.
#pragma once
#include "layout/topic_layout.hpp"
#include "ring/topic_ring.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <string_view>
#include <thread>
#include <vector>

namespace shmbus::test {

class RingMemory {
 public:
  RingMemory(std::uint32_t slot_count, std::uint32_t max_payload,
             std::uint32_t max_subscribers = layout::kMaxSubscribers,
             std::uint32_t max_producers = layout::kMaxProducers)
      : size_(layout::topic_size(slot_count, max_payload, max_subscribers, max_producers)) {
    const std::size_t alloc = layout::align_up(size_, layout::kHotBlock);
    base_ = std::aligned_alloc(layout::kHotBlock, alloc);
    if (base_ == nullptr) throw std::bad_alloc();
    std::memset(base_, 0, alloc);  // a fresh shm object is zero-filled: every stamp is empty(0)
    auto* h = static_cast<layout::TopicHeader*>(base_);
    h->magic = layout::kTopicMagic;
    h->kind = 1;
    h->total_length = size_;
    h->slot_count = slot_count;
    h->slot_size = layout::slot_size_for(max_payload);
    h->max_payload = max_payload;
    h->dest_id = 1;
    h->max_subscribers = max_subscribers;
    h->max_producers = max_producers;
    std::memcpy(h->name, "unit", 4);
    // SYNC: release pairs with check_topic()'s acquire, as in the daemon.
    h->layout_version.store(layout::kLayoutVersion, std::memory_order_release);
  }
  ~RingMemory() { std::free(base_); }
  RingMemory(const RingMemory&) = delete;
  RingMemory& operator=(const RingMemory&) = delete;

  void* base() const noexcept { return base_; }
  std::size_t size() const noexcept { return size_; }
  layout::TopicHeader& header() const noexcept { return *static_cast<layout::TopicHeader*>(base_); }
  ring::TopicRing ring() const noexcept { return ring::TopicRing(base_); }

  /// A reader on subscriber entry `index`, starting at `start` (the daemon passes the tail).
  ring::TopicReader reader(std::uint32_t index = 0, std::uint64_t start = 0) const noexcept {
    auto r = ring();
    auto* e = r.subscriber(index);
    e->position.store(start, std::memory_order_relaxed);
    e->state.store(1, std::memory_order_release);
    return ring::TopicReader(r, e, start);
  }
  /// Sets up ProducerEntry `index` the way the conductor does when a producer opens: client
  /// `client_index`, claim_seq idle, then state 1 (active).
  layout::ProducerEntry* producer_entry(std::uint32_t index, std::uint32_t client_index,
                                        std::uint32_t producer_id = 0) const noexcept {
    auto* e = ring().producer(index);
    e->client_index = client_index;
    e->producer_id = producer_id;
    e->claim_seq.store(layout::kClaimIdle, std::memory_order_relaxed);
    // Release: pairs with the repairer's acquire load of state, as in the daemon.
    e->state.store(1, std::memory_order_release);
    return e;
  }
  /// A writer for client `owner` with its own active ProducerEntry (the next unused index), so
  /// the repairer sees its claims as held by client `owner`.
  ring::TopicWriter writer(std::uint32_t owner, std::uint32_t producer_id) const noexcept {
    const std::uint32_t index = next_producer_.fetch_add(1, std::memory_order_relaxed);
    return ring::TopicWriter(ring(), producer_entry(index, owner, producer_id), owner, producer_id);
  }
  /// How many ProducerEntry indices writer() has handed out.
  std::uint32_t producers_used() const noexcept { return next_producer_.load(std::memory_order_relaxed); }

 private:
  std::size_t size_;
  void* base_ = nullptr;
  mutable std::atomic<std::uint32_t> next_producer_{0};
};

inline std::vector<std::byte> bytes(std::string_view s) {
  std::vector<std::byte> v(s.size());
  if (!s.empty()) std::memcpy(v.data(), s.data(), s.size());
  return v;
}

/// Claims, copies `body` in, commits. Returns the ring sequence, or ~0 when the claim failed.
inline std::uint64_t send(ring::TopicWriter& w, std::span<const std::byte> body, std::int64_t ts = 0) {
  ring::SlotClaim c;
  if (w.claim(static_cast<std::uint32_t>(body.size()), c) != ring::ClaimStatus::Ok) return ~0ULL;
  if (!body.empty()) std::memcpy(c.data, body.data(), body.size());
  w.commit(c, static_cast<std::uint32_t>(body.size()), ts);
  return c.seq;
}
inline std::uint64_t send(ring::TopicWriter& w, std::string_view text, std::int64_t ts = 0) {
  return send(w, std::span<const std::byte>(bytes(text)), ts);
}

/// One poll, with the payload copied into `body` (resized to the message length).
struct Polled {
  ring::PollStatus status = ring::PollStatus::Empty;
  ring::ReadMeta meta;
  std::uint64_t lost = 0;
  std::vector<std::byte> body;
  std::string text() const { return {reinterpret_cast<const char*>(body.data()), body.size()}; }
};
inline Polled poll(ring::TopicReader& r) {
  Polled p;
  std::vector<std::byte> buf(r.ring().max_payload() + 1);
  p.status = r.poll(buf.data(), p.meta, p.lost);
  if (p.status == ring::PollStatus::Message) buf.resize(p.meta.length), p.body = std::move(buf);
  return p;
}

/// Re-evaluates `cond` until it holds or `timeout` passes; yields between tries. This is a wait
/// on a condition with a deadline, never a sleep standing in for synchronisation.
template <class Cond>
bool wait_until(Cond cond, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    std::this_thread::yield();
  }
  return true;
}

}  // namespace shmbus::test
