// CRC32C (Castagnoli), as Kafka's record batches use: SSE4.2 crc32 instructions when the CPU has
// them (checked once at start), else a slice-by-8 table.
#pragma once
#include <cstddef>
#include <cstdint>

namespace shmbus::log {

/// CRC32C of `n` bytes, continuing from `crc` (0 to start).
std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) noexcept;
/// Whether the hardware path is in use (for bench and docs).
bool crc32c_hardware() noexcept;

// Added for the tests and the benchmark, which check both paths against each other:
/// The slice-by-8 table path, always available.
std::uint32_t crc32c_software(std::uint32_t crc, const void* data, std::size_t n) noexcept;
/// The SSE4.2 path; only call it when crc32c_hardware() is true.
std::uint32_t crc32c_sse42(std::uint32_t crc, const void* data, std::size_t n) noexcept;

}  // namespace shmbus::log
