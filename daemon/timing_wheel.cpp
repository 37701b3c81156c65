#include "timing_wheel.hpp"

#include <algorithm>
#include <bit>
#include <new>
#include <stdexcept>
#include <string>

namespace shmbus::daemon {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("TimingWheelConfig: " + what);
}

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) noexcept { return a / b + (a % b != 0 ? 1 : 0); }

}  // namespace

TimingWheel::TimingWheel(const TimingWheelConfig& cfg, std::uint64_t start_ns)
    : tick_(cfg.tick_ns), levels_(cfg.levels), bits_(cfg.bucket_bits), max_timers_(cfg.max_timers) {
  require(cfg.tick_ns != 0, "tick_ns is 0; give the resolution in ns, e.g. 1000000 for 1 ms");
  require(cfg.levels >= 1 && cfg.levels <= 8, "levels is " + std::to_string(cfg.levels) + "; use 1..8");
  require(cfg.bucket_bits >= 1 && cfg.bucket_bits <= 16,
          "bucket_bits is " + std::to_string(cfg.bucket_bits) + "; use 1..16 (2..65536 buckets per level)");
  require(cfg.levels * cfg.bucket_bits <= 56, "levels * bucket_bits is " + std::to_string(cfg.levels * cfg.bucket_bits) +
                                                  "; keep it <= 56 (beyond that use the overflow list)");
  require(cfg.max_timers >= 1 && cfg.max_timers < kNil,
          "max_timers is " + std::to_string(cfg.max_timers) + "; use 1..2^32-2");
  require(cfg.initial_capacity <= cfg.max_timers, "initial_capacity " + std::to_string(cfg.initial_capacity) +
                                                      " exceeds max_timers " + std::to_string(cfg.max_timers));
  buckets_ = 1u << bits_;
  words_ = (buckets_ + 63) / 64;
  total_bits_ = levels_ * bits_;
  due_list_ = levels_ * buckets_;
  overflow_list_ = due_list_ + 2;
  heads_.assign(overflow_list_ + 1, kNil);
  occupied_.assign(std::size_t{levels_} * words_, 0);
  cur_ = start_ns / tick_;
  now_ = start_ns;
  nodes_.resize(cfg.initial_capacity);
  push_free(0);
}

std::uint64_t TimingWheel::span_ns() const noexcept {
  const auto ticks = std::uint64_t{1} << total_bits_;
  return ticks > UINT64_MAX / tick_ ? UINT64_MAX : ticks * tick_;
}

bool TimingWheel::grow() noexcept {
  const std::size_t old = nodes_.size();
  if (old >= max_timers_) return false;
  const std::size_t want = std::min<std::size_t>(max_timers_, std::max<std::size_t>(64, old * 2));
  try {
    nodes_.resize(want);
  } catch (const std::bad_alloc&) {
    return false;
  }
  push_free(old);
  return true;
}

// Puts the fresh slots [first, size) on the free list, lowest index on top so they are used in order.
void TimingWheel::push_free(std::size_t first) noexcept {
  for (std::size_t i = nodes_.size(); i-- > first;) {
    nodes_[i].next = free_head_;
    free_head_ = static_cast<std::uint32_t>(i);
  }
}

void TimingWheel::link(std::uint32_t idx, std::uint32_t list) noexcept {
  Node& n = nodes_[idx];
  n.list = list;
  n.prev = kNil;
  n.next = heads_[list];
  if (n.next != kNil) nodes_[n.next].prev = idx;
  heads_[list] = idx;
  if (is_bucket(list)) {
    const std::uint32_t level = list / buckets_, b = list % buckets_;
    occupied_[level * words_ + b / 64] |= std::uint64_t{1} << (b % 64);
    ++in_wheel_;
  }
}

void TimingWheel::unlink(std::uint32_t idx) noexcept {
  Node& n = nodes_[idx];
  if (n.prev != kNil)
    nodes_[n.prev].next = n.next;
  else
    heads_[n.list] = n.next;
  if (n.next != kNil) nodes_[n.next].prev = n.prev;
  if (is_bucket(n.list)) {
    --in_wheel_;
    if (heads_[n.list] == kNil) {
      const std::uint32_t level = n.list / buckets_, b = n.list % buckets_;
      occupied_[level * words_ + b / 64] &= ~(std::uint64_t{1} << (b % 64));
    }
  }
  n.prev = n.next = kNil;
  n.list = kNil;
}

void TimingWheel::release(std::uint32_t idx) noexcept {
  Node& n = nodes_[idx];
  n.list = kNil;
  n.prev = kNil;
  if (++n.generation == 0) n.generation = 1;  // 0 means "no timer" in a TimerId
  n.next = free_head_;
  free_head_ = idx;
}

// Puts an unlinked node with tick >= cur_ where it belongs relative to cur_: the level of the highest
// base-2^bits digit in which its tick differs from cur_ (that digit is then greater than cur_'s), or the
// overflow list when they differ above the top level. tick == cur_ goes to level 0 (cascades only).
void TimingWheel::place(std::uint32_t idx) noexcept {
  const std::uint64_t t = nodes_[idx].tick;
  const std::uint64_t diff = t ^ cur_;
  if ((diff >> total_bits_) != 0) {
    if (heads_[overflow_list_] == kNil || t < overflow_min_) overflow_min_ = t;
    link(idx, overflow_list_);
    return;
  }
  const std::uint32_t level = diff == 0 ? 0 : static_cast<std::uint32_t>(63 - std::countl_zero(diff)) / bits_;
  link(idx, bucket_list(level, (t >> (level * bits_)) & (buckets_ - 1)));
}

AddResult TimingWheel::add(std::uint64_t deadline_ns, std::uint64_t payload) noexcept {
  if (free_head_ == kNil && !grow()) return {TimerId{}, AddStatus::PoolExhausted};
  const std::uint32_t idx = free_head_;
  Node& n = nodes_[idx];
  free_head_ = n.next;
  n.tick = ceil_div(deadline_ns, tick_);
  n.payload = payload;
  ++armed_;
  // Past, or in a tick already processed (possible inside advance): due at the next advance().
  if (deadline_ns <= now_ || n.tick <= cur_)
    link(idx, due_list_);
  else
    place(idx);
  return {TimerId{idx, n.generation}, AddStatus::Ok};
}

bool TimingWheel::cancel(TimerId id) noexcept {
  if (id.index >= nodes_.size()) return false;
  const Node& n = nodes_[id.index];
  if (n.generation != id.generation || n.list == kNil) return false;
  unlink(id.index);
  release(id.index);
  --armed_;
  return true;
}

// Fires the whole list. Each timer is freed before its callback runs, so cancelling it from there is a
// no-op and its slot may be reused at once. Nothing the callbacks add can land on this list (see callers).
std::size_t TimingWheel::drain(std::uint32_t list, FireFn fn, void* ctx) noexcept {
  std::size_t fired = 0;
  while (heads_[list] != kNil) {
    const std::uint32_t idx = heads_[list];
    const std::uint64_t payload = nodes_[idx].payload;
    unlink(idx);
    release(idx);
    --armed_;
    ++fired;
    fn(ctx, payload);  // may add/cancel: nodes_ may reallocate, so no Node& is held across it
  }
  return fired;
}

std::uint32_t TimingWheel::next_occupied(std::uint32_t level, std::uint64_t from) const noexcept {
  for (std::uint64_t b = from; b < buckets_;) {
    const std::uint64_t word = occupied_[level * words_ + b / 64] >> (b % 64);
    if (word != 0) return static_cast<std::uint32_t>(b + static_cast<std::uint64_t>(std::countr_zero(word)));
    b = (b / 64 + 1) * 64;
  }
  return buckets_;
}

// The first tick after cur_ at which something happens: a level-0 bucket comes due, a higher level's bucket
// cascades, or the top level wraps while the overflow list may hold timers for the new round. Every
// level-L timer agrees with cur_ above digit L and is ahead of it at digit L, so the lowest level with an
// occupied bucket gives the earliest event. UINT64_MAX: nothing armed in the wheel or the overflow.
std::uint64_t TimingWheel::next_event_tick() const noexcept {
  std::uint64_t best = UINT64_MAX;
  for (std::uint32_t level = 0; in_wheel_ != 0 && level < levels_; ++level) {
    const std::uint32_t shift = level * bits_;
    const std::uint32_t b = next_occupied(level, ((cur_ >> shift) & (buckets_ - 1)) + 1);
    if (b == buckets_) continue;
    best = (cur_ >> (shift + bits_) << (shift + bits_)) | (std::uint64_t{b} << shift);
    break;
  }
  if (heads_[overflow_list_] != kNil)
    best = std::min(best, std::max(overflow_min_ >> total_bits_ << total_bits_, ((cur_ >> total_bits_) + 1) << total_bits_));
  return best;
}

// Detaches the bucket whole and walks it: one visit per node, nothing written to its neighbours.
void TimingWheel::cascade(std::uint32_t level) noexcept {
  const std::uint64_t b = (cur_ >> (level * bits_)) & (buckets_ - 1);
  const std::uint32_t list = bucket_list(level, b);
  std::uint32_t idx = heads_[list];
  heads_[list] = kNil;
  occupied_[level * words_ + b / 64] &= ~(std::uint64_t{1} << (b % 64));
  while (idx != kNil) {
    const std::uint32_t next = nodes_[idx].next;
    if (next != kNil) __builtin_prefetch(&nodes_[next]);
    --in_wheel_;
    place(idx);  // agrees with cur_ at this level now: lands lower, never back here
    idx = next;
  }
}

void TimingWheel::rescan_overflow() noexcept {
  std::uint64_t min = UINT64_MAX;
  for (std::uint32_t idx = heads_[overflow_list_]; idx != kNil;) {
    const std::uint32_t next = nodes_[idx].next;
    const std::uint64_t t = nodes_[idx].tick;
    if (((t ^ cur_) >> total_bits_) == 0) {
      unlink(idx);
      place(idx);
    } else {
      min = std::min(min, t);
    }
    idx = next;
  }
  overflow_min_ = min;
}

// cur_ has just moved to a new tick: bring down everything whose digit came round, top level first, so a
// timer can fall through several levels in one tick.
void TimingWheel::on_tick() noexcept {
  const std::uint32_t zero_digits = static_cast<std::uint32_t>(std::countr_zero(cur_)) / bits_;
  if (zero_digits >= levels_ && heads_[overflow_list_] != kNil) rescan_overflow();
  for (std::uint32_t level = std::min(zero_digits, levels_ - 1); level >= 1; --level) cascade(level);
}

std::size_t TimingWheel::advance_impl(std::uint64_t now_ns, FireFn fn, void* ctx) noexcept {
  if (in_advance_) return 0;  // nested call from a callback
  in_advance_ = true;
  // Past deadlines first; what the callbacks add as past goes on the other list, for the next advance.
  const std::uint32_t firing = due_list_;
  due_list_ = firing == levels_ * buckets_ ? firing + 1 : firing - 1;
  std::size_t fired = drain(firing, fn, ctx);
  if (now_ns > now_) {
    const std::uint64_t target = now_ns / tick_;
    while (cur_ < target) {
      const std::uint64_t t = next_event_tick();
      if (t > target) {
        cur_ = target;
        break;
      }
      cur_ = t;
      on_tick();
      // Callbacks add timers with tick <= cur_ to the due list and later ones to other buckets.
      fired += drain(bucket_list(0, cur_ & (buckets_ - 1)), fn, ctx);
    }
    now_ = now_ns;
  }
  in_advance_ = false;
  return fired;
}

std::uint64_t TimingWheel::next_wake_ns() const noexcept {
  if (heads_[due_list_] != kNil) return now_;
  const std::uint64_t t = next_event_tick();
  if (t == UINT64_MAX || t > UINT64_MAX / tick_) return UINT64_MAX;
  return t * tick_;
}

}  // namespace shmbus::daemon
