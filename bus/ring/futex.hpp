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

}  // namespace shmbus::ring
