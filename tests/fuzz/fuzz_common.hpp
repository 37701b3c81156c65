// Helpers shared by the fuzz targets: invariant checks that crash (so libFuzzer saves the input),
// exact-size heap copies (so ASan sees a read one byte past the end), value comparison.
#pragma once
#include "shmbus/message/frame.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace shmbus::fuzz {

/// An invariant of the code under test: on failure print where and what, then trap (libFuzzer
/// reports a crash and writes the input to its artifact file).
#define FUZZ_CHECK(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);  \
      std::fflush(stderr);                                                                 \
      __builtin_trap();                                                                    \
    }                                                                                      \
  } while (0)

/// An outcome that must not happen at all.
#define FUZZ_FAIL(what)                                                        \
  do {                                                                         \
    std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, what); \
    std::fflush(stderr);                                                       \
    __builtin_trap();                                                          \
  } while (0)

/// A copy of `data` in a heap block of exactly its size (ASan's redzone starts right after it).
class Exact {
 public:
  Exact(const void* data, std::size_t n) : n_(n), mem_(new std::byte[n]) {
    if (n) std::memcpy(mem_.get(), data, n);
  }
  std::span<const std::byte> span() const noexcept { return {mem_.get(), n_}; }
  std::size_t size() const noexcept { return n_; }

 private:
  std::size_t n_;
  std::unique_ptr<std::byte[]> mem_;
};

/// Reads every byte of a view (ASan checks each one) into a value the optimizer must keep.
inline std::uint64_t touch(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return h;
}
inline std::uint64_t touch(std::span<const std::byte> s) noexcept {
  return touch(std::string_view(reinterpret_cast<const char*>(s.data()), s.size()));
}

inline std::uint64_t bits(double d) noexcept {
  std::uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
}

/// Same type and same content (strings by bytes, floating point bit for bit or both NaN).
inline bool same_value(const message::Value& a, const message::Value& b) noexcept {
  using message::ValueType;
  if (a.type != b.type) return false;
  switch (a.type) {
    case ValueType::Null: return true;
    case ValueType::Float: case ValueType::Double:
      return (std::isnan(a.d) && std::isnan(b.d)) || bits(a.d) == bits(b.d);
    case ValueType::String: case ValueType::Bytes: return a.s == b.s;
    default: return a.i == b.i;
  }
}

/// Keeps a computed value alive without letting the compiler drop the reads that made it.
inline void sink(std::uint64_t v) noexcept {
  static volatile std::uint64_t s;
  s = s + v;
}

}  // namespace shmbus::fuzz
