// CRC32C (bus/log/crc32c.hpp): the known vectors (RFC 3720 B.4 and the "123456789" check value)
// on both the SSE4.2 and the slice-by-8 paths, continuation, and the two paths agreeing on every
// length and alignment.
#include "log/crc32c.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>
#include <vector>

namespace shmbus::log {
namespace {

using CrcFn = std::uint32_t (*)(std::uint32_t, const void*, std::size_t) noexcept;

struct Vector {
  std::vector<unsigned char> data;
  std::uint32_t crc;
};

std::vector<Vector> known_vectors() {
  std::vector<Vector> v;
  const std::string_view check = "123456789";
  v.push_back({{check.begin(), check.end()}, 0xE3069283});
  v.push_back({{}, 0x00000000});
  v.push_back({std::vector<unsigned char>(32, 0x00), 0x8A9136AA});
  v.push_back({std::vector<unsigned char>(32, 0xFF), 0x62A8AB43});
  std::vector<unsigned char> up(32), down(32);
  for (unsigned i = 0; i < 32; ++i) {
    up[i] = static_cast<unsigned char>(i);
    down[i] = static_cast<unsigned char>(31 - i);
  }
  v.push_back({up, 0x46DD794E});
  v.push_back({down, 0x113FDB5C});
  return v;
}

void expect_known_vectors(CrcFn fn, const char* name) {
  for (const Vector& k : known_vectors())
    EXPECT_EQ(fn(0, k.data.data(), k.data.size()), k.crc) << name << " on " << k.data.size() << " bytes";
}

TEST(Crc32c_test, SoftwarePathMatchesTheKnownVectors) { expect_known_vectors(crc32c_software, "software"); }

TEST(Crc32c_test, HardwarePathMatchesTheKnownVectors) {
  if (!crc32c_hardware()) GTEST_SKIP() << "this CPU has no SSE4.2: only the software path exists here";
  expect_known_vectors(crc32c_sse42, "sse4.2");
}

TEST(Crc32c_test, DispatchedCrcMatchesTheCheckValue) {
  EXPECT_EQ(crc32c(0, "123456789", 9), 0xE3069283U);
}

TEST(Crc32c_test, ContinuingFromAPartialCrcEqualsOneCall) {
  std::vector<unsigned char> data(1000);
  std::mt19937 rng(7);
  for (auto& b : data) b = static_cast<unsigned char>(rng());
  const std::uint32_t whole = crc32c(0, data.data(), data.size());
  for (std::size_t split = 0; split <= data.size(); split += 37) {
    const std::uint32_t first = crc32c(0, data.data(), split);
    EXPECT_EQ(crc32c(first, data.data() + split, data.size() - split), whole) << "split at " << split;
    EXPECT_EQ(crc32c_software(crc32c_software(0, data.data(), split), data.data() + split, data.size() - split), whole);
  }
}

TEST(Crc32c_test, BothPathsAgreeOnEveryLengthAndAlignment) {
  if (!crc32c_hardware()) GTEST_SKIP() << "this CPU has no SSE4.2: only the software path exists here";
  std::vector<unsigned char> data(4096 + 8);
  std::mt19937 rng(11);
  for (auto& b : data) b = static_cast<unsigned char>(rng());
  for (std::size_t align = 0; align < 8; ++align)
    for (std::size_t n = 0; n <= 300; ++n)
      ASSERT_EQ(crc32c_sse42(0, data.data() + align, n), crc32c_software(0, data.data() + align, n))
          << "length " << n << " at alignment " << align;
  EXPECT_EQ(crc32c_sse42(0x1234, data.data() + 3, 4096), crc32c_software(0x1234, data.data() + 3, 4096));
}

}  // namespace
}  // namespace shmbus::log
