// The 64-byte test payload the system tests send: who sent it, its per-producer sequence, a
// filler derived from both, and a checksum over everything before it.
//
//  offset size field
//       0    4 producer   the agent's --id (not the daemon-assigned producer id)
//       4    4 magic      0x53595354 "TSYS"
//       8    8 seq        1, 2, 3, ... per producer
//      16   40 filler     byte i = (producer * 31 + seq * 7 + i) & 0xff
//      56    8 checksum   FNV-1a of bytes 0..55
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace shmbus::systest {

inline constexpr std::size_t kPayloadSize = 64;
inline constexpr std::uint32_t kPayloadMagic = 0x53595354;

inline std::uint64_t fnv1a(const unsigned char* p, std::size_t n) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

inline void make_payload(std::uint32_t producer, std::uint64_t seq, unsigned char (&out)[kPayloadSize]) noexcept {
  std::memcpy(out, &producer, 4);
  std::memcpy(out + 4, &kPayloadMagic, 4);
  std::memcpy(out + 8, &seq, 8);
  for (std::size_t i = 16; i < 56; ++i) out[i] = static_cast<unsigned char>((producer * 31 + seq * 7 + i) & 0xff);
  const std::uint64_t sum = fnv1a(out, 56);
  std::memcpy(out + 56, &sum, 8);
}

struct Decoded {
  std::uint32_t producer = 0;
  std::uint64_t seq = 0;
  bool intact = false;  // right size, magic and checksum
};

inline Decoded read_payload(std::span<const std::byte> body) noexcept {
  Decoded d;
  if (body.size() != kPayloadSize) return d;
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  std::uint32_t magic = 0;
  std::uint64_t sum = 0;
  std::memcpy(&d.producer, p, 4);
  std::memcpy(&magic, p + 4, 4);
  std::memcpy(&d.seq, p + 8, 8);
  std::memcpy(&sum, p + 56, 8);
  d.intact = magic == kPayloadMagic && sum == fnv1a(p, 56);
  return d;
}

}  // namespace shmbus::systest
