// The daemon's timing wheel: a hierarchical timing wheel (Varghese & Lauck; Kafka's purgatory) that will
// drive ack timeouts, redelivery delays, delayed delivery, expiry and client liveness. docs/timing-wheel.md.
//
// Single-threaded by design: one agent owns the wheel and is the only caller of every member. There are
// no locks and no atomics; other threads reach it through the owning agent's command queue.
//
//   levels x 2^bucket_bits buckets (default 4 x 256, tick 1 ms: 2^32 ticks ~ 49.7 days), each bucket an
//   intrusive doubly linked list of pool indices. A timer sits at the level of the highest base-2^bits
//   digit in which its expiry tick differs from the current tick, and cascades down when that digit comes
//   round. Timers beyond the wheel's span wait in one unsorted overflow list re-examined each time the
//   wheel's top level wraps (O(1) cancel everywhere; see the doc for why not a heap).
//
// Time is passed in (monotonic ns), never read here, so tests never sleep.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

namespace shmbus::daemon {

struct TimingWheelConfig {
  std::uint64_t tick_ns = 1'000'000;    // resolution: a timer fires at most one tick (minus 1 ns) late
  std::uint32_t levels = 4;             // 1..8
  std::uint32_t bucket_bits = 8;        // 1..16: 2^bits buckets per level; levels * bits <= 56
  std::uint32_t initial_capacity = 1024;  // timers preallocated in the pool
  std::uint32_t max_timers = 1u << 24;    // the pool doubles up to this, then add() fails with PoolExhausted
};

/// A handle to one armed timer: a pool slot and the slot's generation when it was armed. Once the timer
/// fires or is cancelled the slot's generation moves on, so a stale id can never touch the slot's next user.
struct TimerId {
  std::uint32_t index = 0;
  std::uint32_t generation = 0;  // 0 = no timer
  bool valid() const noexcept { return generation != 0; }
  friend bool operator==(TimerId, TimerId) = default;
};

enum class AddStatus : std::uint8_t {
  Ok,
  PoolExhausted,  // max_timers armed already (or memory ran out while growing): nothing was added
};

struct AddResult {
  TimerId id;
  AddStatus status = AddStatus::Ok;
  bool ok() const noexcept { return status == AddStatus::Ok; }
};

class TimingWheel {
 public:
  /// Throws std::invalid_argument naming the bad field when cfg is out of range (a set-up error).
  explicit TimingWheel(const TimingWheelConfig& cfg = {}, std::uint64_t start_ns = 0);
  TimingWheel(const TimingWheel&) = delete;
  TimingWheel& operator=(const TimingWheel&) = delete;
  TimingWheel(TimingWheel&&) noexcept = default;
  TimingWheel& operator=(TimingWheel&&) noexcept = default;

  /// Arms a timer that fires with `payload` in the first advance(now) with now >= ceil(deadline/tick)*tick.
  /// A deadline at or before the last advance()'s now (or within a tick already processed) fires on the
  /// next advance(). O(1); allocates only when the pool is full and below max_timers.
  AddResult add(std::uint64_t deadline_ns, std::uint64_t payload) noexcept;

  /// Disarms the timer. False, and nothing changes, if it already fired, was cancelled, or the id is stale.
  bool cancel(TimerId id) noexcept;

  /// Fires every timer due by now, calling on_fire(payload) for each in order of expiry tick (timers of one
  /// tick in no particular order), and returns how many fired. Re-entrancy (see docs/timing-wheel.md):
  /// on_fire may add() and cancel() freely; a nested advance() does nothing and returns 0; on_fire must not
  /// throw (advance is noexcept) nor destroy the wheel. A now earlier than the last one only fires timers
  /// added with past deadlines.
  template <class F>
  std::size_t advance(std::uint64_t now_ns, F&& on_fire) noexcept {
    using Fn = std::remove_reference_t<F>;
    return advance_impl(
        now_ns, [](void* ctx, std::uint64_t payload) { (*static_cast<Fn*>(ctx))(payload); },
        const_cast<void*>(static_cast<const void*>(std::addressof(on_fire))));
  }

  /// No timer fires before this time (UINT64_MAX: none armed); advancing earlier fires nothing. A lower
  /// bound: it may be a cascade point rather than an expiry. For the owning agent's sleep.
  std::uint64_t next_wake_ns() const noexcept;

  std::size_t size() const noexcept { return armed_; }            // armed timers
  std::size_t capacity() const noexcept { return nodes_.size(); }  // pool slots allocated
  std::uint64_t now_ns() const noexcept { return now_; }
  std::uint64_t tick_ns() const noexcept { return tick_; }
  /// Deadlines further than this from now go to the overflow list.
  std::uint64_t span_ns() const noexcept;

 private:
  using FireFn = void (*)(void* ctx, std::uint64_t payload);
  static constexpr std::uint32_t kNil = UINT32_MAX;
  struct Node {
    std::uint64_t tick = 0;  // expiry tick: ceil(deadline / tick_ns)
    std::uint64_t payload = 0;
    std::uint32_t prev = kNil;
    std::uint32_t next = kNil;
    std::uint32_t generation = 1;
    std::uint32_t list = kNil;  // the list holding it; kNil = free (in the pool's free list via next)
  };
  static_assert(sizeof(Node) == 32);

  std::size_t advance_impl(std::uint64_t now_ns, FireFn fn, void* ctx) noexcept;
  bool grow() noexcept;
  void push_free(std::size_t first) noexcept;
  std::uint32_t bucket_list(std::uint32_t level, std::uint64_t bucket) const noexcept {
    return level * buckets_ + static_cast<std::uint32_t>(bucket);
  }
  bool is_bucket(std::uint32_t list) const noexcept { return list < levels_ * buckets_; }
  void link(std::uint32_t idx, std::uint32_t list) noexcept;
  void unlink(std::uint32_t idx) noexcept;
  void release(std::uint32_t idx) noexcept;
  void place(std::uint32_t idx) noexcept;
  void on_tick() noexcept;
  void cascade(std::uint32_t level) noexcept;
  void rescan_overflow() noexcept;
  std::uint64_t next_event_tick() const noexcept;
  std::uint32_t next_occupied(std::uint32_t level, std::uint64_t from) const noexcept;
  std::size_t drain(std::uint32_t list, FireFn fn, void* ctx) noexcept;

  std::uint64_t tick_;
  std::uint32_t levels_;
  std::uint32_t bits_;
  std::uint32_t buckets_;  // 2^bits_
  std::uint32_t words_;    // bitmap words per level
  std::uint32_t total_bits_;
  std::uint32_t max_timers_;
  std::uint32_t due_list_;       // list that add() puts past deadlines on (one of two; advance swaps them)
  std::uint32_t overflow_list_;  // deadlines beyond the span
  std::uint32_t free_head_ = kNil;
  std::vector<Node> nodes_;
  std::vector<std::uint32_t> heads_;     // list heads: every bucket, then due x 2, then overflow
  std::vector<std::uint64_t> occupied_;  // per level: bit b set = bucket b non-empty
  std::uint64_t cur_;                    // last tick processed: every timer with tick <= cur_ has fired
  std::uint64_t now_;                    // now of the last advance (or start)
  std::uint64_t overflow_min_ = UINT64_MAX;  // lower bound of the overflow list's ticks
  std::size_t armed_ = 0;
  std::size_t in_wheel_ = 0;  // timers in the bucket lists
  bool in_advance_ = false;
};

}  // namespace shmbus::daemon
