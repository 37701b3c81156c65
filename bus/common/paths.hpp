// Where things live for one DIR: the control socket, the lock, and the shm object names.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace shmbus::common {

/// Absolute, normalised form of `dir` (must exist for the hash to be stable).
std::string canonical_dir(const std::string& dir);
/// 16 hex digits identifying DIR in /dev/shm names (FNV-1a of the canonical path).
std::string dir_hash(const std::string& canonical);
/// Prefix of every shm object the daemon of this DIR creates: "shmbus.<hash>.".
std::string shm_prefix(const std::string& canonical);
std::string region_shm_name(const std::string& canonical);
std::string dest_shm_name(const std::string& canonical, std::uint32_t dest_id);
std::string socket_path(const std::string& canonical);
std::string lock_path(const std::string& canonical);
/// Unix socket paths are limited to 107 bytes; returns a message when `path` is too long.
std::string check_socket_path(const std::string& path);

/// CLOCK_MONOTONIC / CLOCK_REALTIME in ns.
std::uint64_t mono_ns() noexcept;

std::int64_t real_ns() noexcept;

/// A user's duration in ms as ns, clamped to [0, 2^42 ms] (~139 years): "practically never"
/// stays never, and neither the product nor CLOCK_MONOTONIC/CLOCK_REALTIME + it can wrap.
constexpr std::uint64_t ms_to_ns_capped(std::chrono::milliseconds d) noexcept {
  constexpr std::int64_t kMaxMs = std::int64_t{1} << 42;
  const std::int64_t ms = d.count();
  return static_cast<std::uint64_t>(ms < 0 ? 0 : ms > kMaxMs ? kMaxMs : ms) * 1'000'000ULL;
}
static_assert(ms_to_ns_capped(std::chrono::milliseconds::max()) < (std::uint64_t{1} << 63) / 2);

}  // namespace shmbus::common
