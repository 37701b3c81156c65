// Percentiles of round-trip samples, and a minimal JSON writer.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace shmbus::bench {

struct Percentiles {
  double min = 0, p50 = 0, p90 = 0, p99 = 0, p999 = 0, p9999 = 0, max = 0;
};

/// Sorts `ticks` in place and returns nearest-rank percentiles in ns, each multiplied by `scale`
/// (0.5 for one-way = RTT/2).
Percentiles percentiles(std::span<std::uint64_t> ticks, double ns_per_tick, double scale);
/// Percentiles of an already sorted array.
Percentiles percentiles_sorted(std::span<const std::uint64_t> sorted, double ns_per_tick, double scale);

/// Appends JSON text; the caller nests objects with begin/end. Keys and strings are escaped.
class Json {
 public:
  Json& begin(std::string_view key = {});   ///< opens an object (keyed unless at the top level)
  Json& end();
  Json& num(std::string_view key, double v, int decimals = 1);
  Json& integer(std::string_view key, std::int64_t v);
  Json& str(std::string_view key, std::string_view v);
  Json& boolean(std::string_view key, bool v);
  const std::string& text() const noexcept { return s_; }

 private:
  void key(std::string_view k);
  std::string s_;
  bool first_ = true;
};

std::string json_escape(std::string_view s);

}  // namespace shmbus::bench
