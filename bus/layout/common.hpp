// Shared constants for every shared-memory layout of shmbus.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace shmbus::layout {

/// Bumped whenever any shared-memory layout changes in a way an older peer cannot read.
inline constexpr std::uint32_t kLayoutVersion = 3;  // 2: message frames, slot incarnation/expiration; 3: persistence (queue persist ring, ACKED, durable words)

inline constexpr std::size_t kCacheLine = 64;
/// Hot counters get a 128-byte block: adjacent-line prefetch pairs 64-byte lines.
inline constexpr std::size_t kHotBlock = 128;

inline constexpr std::uint64_t kRegionMagic = 0x4752'5355'424D'4853ULL;  // "SHMBUSRG" little-endian
inline constexpr std::uint64_t kTopicMagic  = 0x5054'5355'424D'4853ULL;  // "SHMBUSTP" little-endian

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::int32_t>::is_always_lock_free);

constexpr std::size_t align_up(std::size_t v, std::size_t a) noexcept { return (v + a - 1) / a * a; }

}  // namespace shmbus::layout
