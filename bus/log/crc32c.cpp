#include "log/crc32c.hpp"

#include <array>
#include <cstring>
#include <nmmintrin.h>

namespace shmbus::log {

namespace {

constexpr std::uint32_t kPoly = 0x82F63B78;  // CRC32C, reflected

// table[k][b]: CRC of byte b followed by k zero bytes; slice-by-8 folds 8 input bytes per step.
constexpr std::array<std::array<std::uint32_t, 256>, 8> make_tables() {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t b = 0; b < 256; ++b) {
    std::uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c & 1U) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][b] = c;
  }
  for (std::size_t k = 1; k < 8; ++k)
    for (std::size_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFFU];
  return t;
}
constexpr auto kTables = make_tables();

std::uint32_t sw_raw(std::uint32_t c, const unsigned char* p, std::size_t n) noexcept {
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);  // little-endian: the first byte is the low byte, as the tables expect
    w ^= c;
    c = kTables[7][w & 0xFF] ^ kTables[6][(w >> 8) & 0xFF] ^ kTables[5][(w >> 16) & 0xFF] ^
        kTables[4][(w >> 24) & 0xFF] ^ kTables[3][(w >> 32) & 0xFF] ^ kTables[2][(w >> 40) & 0xFF] ^
        kTables[1][(w >> 48) & 0xFF] ^ kTables[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xFFU];
  return c;
}

__attribute__((target("sse4.2"))) std::uint32_t hw_raw(std::uint32_t c, const unsigned char* p,
                                                       std::size_t n) noexcept {
  std::uint64_t c64 = c;
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);  // unaligned loads are as fast as aligned ones on every SSE4.2 CPU
    c64 = _mm_crc32_u64(c64, w);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c64);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}

bool detect() noexcept {
  __builtin_cpu_init();  // harmless if already done; required if called from a static initialiser
  return __builtin_cpu_supports("sse4.2");
}

}  // namespace

bool crc32c_hardware() noexcept {
  static const bool hw = detect();
  return hw;
}

std::uint32_t crc32c_software(std::uint32_t crc, const void* data, std::size_t n) noexcept {
  return ~sw_raw(~crc, static_cast<const unsigned char*>(data), n);
}

std::uint32_t crc32c_sse42(std::uint32_t crc, const void* data, std::size_t n) noexcept {
  return ~hw_raw(~crc, static_cast<const unsigned char*>(data), n);
}

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) noexcept {
  return crc32c_hardware() ? crc32c_sse42(crc, data, n) : crc32c_software(crc, data, n);
}

}  // namespace shmbus::log
