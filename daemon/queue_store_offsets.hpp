// UnsettledOffsets: the offsets of a queue's logged messages still in the queue, for QueueStore.
// Messages are logged in offset order and settled in any order, so this is an ascending deque
// with settled entries marked dead in place (binary search to settle, dead ones dropped from the
// ends, the middle compacted once it is mostly dead): no allocation per message, unlike a
// std::set node per insert. Owned by the persistence agent's thread.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>

namespace shmbus::daemon {

class UnsettledOffsets {
 public:
  /// Adds an offset; in ascending order this is a push_back (out of order: a sorted insert).
  void insert(std::uint64_t o) {
    if (offs_.empty() || o > key(offs_.back())) {
      offs_.push_back(o);
      ++alive_;
      return;
    }
    const auto it = find(o);
    if (it != offs_.end() && key(*it) == o) {
      if ((*it & kDead) != 0) *it = o, ++alive_;
      return;
    }
    offs_.insert(it, o);
    ++alive_;
  }
  /// Removes an offset (no-op if absent).
  void erase(std::uint64_t o) {
    const auto it = find(o);
    if (it == offs_.end() || *it != o) return;  // absent, or already dead
    *it |= kDead;
    --alive_;
    while (!offs_.empty() && (offs_.front() & kDead) != 0) offs_.pop_front();
    while (!offs_.empty() && (offs_.back() & kDead) != 0) offs_.pop_back();
    if (offs_.size() > 1024 && offs_.size() > 4 * alive_) std::erase_if(offs_, [](std::uint64_t v) { return (v & kDead) != 0; });
  }
  /// Keeps only the offsets for which keep(o) is true.
  template <class Keep>
  void keep_if(Keep keep) {
    std::erase_if(offs_, [&](std::uint64_t v) { return (v & kDead) != 0 || !keep(v); });
    alive_ = offs_.size();
  }
  /// Calls fn(o) for each offset, ascending.
  template <class Fn>
  void for_each(Fn fn) const {
    for (const std::uint64_t v : offs_)
      if ((v & kDead) == 0) fn(v);
  }
  bool empty() const noexcept { return alive_ == 0; }
  std::size_t size() const noexcept { return alive_; }
  /// The lowest offset (the set must not be empty).
  std::uint64_t lowest() const noexcept { return offs_.front(); }

 private:
  static constexpr std::uint64_t kDead = 1ULL << 63;  // log offsets stay below 2^63
  static std::uint64_t key(std::uint64_t v) noexcept { return v & ~kDead; }
  std::deque<std::uint64_t>::iterator find(std::uint64_t o) {
    return std::lower_bound(offs_.begin(), offs_.end(), o, [](std::uint64_t v, std::uint64_t x) { return key(v) < x; });
  }

  std::deque<std::uint64_t> offs_;  // ascending by key; dead ones have kDead set
  std::size_t alive_ = 0;
};

}  // namespace shmbus::daemon
