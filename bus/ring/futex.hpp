// Thin wrappers over futex(2) on a word in shared memory. Boost.Interprocess has no futex:
// its interprocess_condition needs a mutex on the producer side, which the hot path refuses.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>

namespace shmbus::ring {

/// Sleeps while *word == expected, at most `timeout`. Returns false on timeout.
bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::chrono::nanoseconds timeout) noexcept;
/// Wakes every thread of every process parked on `word`.
void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept;

/// The waker's half of the park handshake (Dekker), after the caller's seq_cst publish (a topic
/// slot's stamp exchange, an index ring's tail CAS): if anyone counts itself in `waiters`, bump
/// `word` and wake them all. Either we see the parker's count, or it sees our publish.
inline void wake_waiters(std::atomic<std::uint32_t>& word, std::atomic<std::uint32_t>& waiters) noexcept {
  // SYNC: seq_cst load, the other half of the parker's seq_cst increment in park_once().
  if (waiters.load(std::memory_order_seq_cst) != 0) {
    // Release: a woken parker's acquire load of the word sees it changed.
    word.fetch_add(1, std::memory_order_release);
    futex_wake_all(word);
  }
}

/// The parker's half: sleeps on `word` at most `slice_ns`, unless `nothing_yet()` (which must use
/// seq_cst loads of what the waker publishes) says there is something already. `parked` (the
/// parker's own flag in shared memory) lets the daemon take a parker killed while asleep off the
/// `waiters` count. Returns at once, after the sleep, or when woken.
template <class NothingYet>
void park_once(std::atomic<std::uint32_t>& word, std::atomic<std::uint32_t>& waiters, std::atomic<std::uint32_t>& parked,
               std::uint64_t slice_ns, NothingYet&& nothing_yet) noexcept {
  // Acquire: pairs with the waker's release increment; read BEFORE looking again, so a publish
  // after our look changes the word and futex_wait returns at once.
  const std::uint32_t seen = word.load(std::memory_order_acquire);
  // SYNC: seq_cst increment, then the caller's seq_cst look (Dekker with wake_waiters()).
  waiters.fetch_add(1, std::memory_order_seq_cst);
  // Relaxed: read by the daemon only after we are gone.
  parked.store(1, std::memory_order_relaxed);
  if (slice_ns != 0 && nothing_yet()) futex_wait(word, seen, std::chrono::nanoseconds(slice_ns));
  parked.store(0, std::memory_order_relaxed);
  // Relaxed: the count only gates whether wakers call futex_wake.
  waiters.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace shmbus::ring
