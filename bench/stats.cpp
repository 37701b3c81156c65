#include "stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace shmbus::bench {

namespace {

double at(std::span<const std::uint64_t> s, double q) {
  // Nearest rank: the smallest sample with at least q of the samples at or below it.
  const auto n = s.size();
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(n)));
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return static_cast<double>(s[rank - 1]);
}

}  // namespace

Percentiles percentiles_sorted(std::span<const std::uint64_t> s, double ns_per_tick, double scale) {
  Percentiles p;
  if (s.empty()) return p;
  const double k = ns_per_tick * scale;
  p.min = static_cast<double>(s.front()) * k;
  p.p50 = at(s, 0.50) * k;
  p.p90 = at(s, 0.90) * k;
  p.p99 = at(s, 0.99) * k;
  p.p999 = at(s, 0.999) * k;
  p.p9999 = at(s, 0.9999) * k;
  p.max = static_cast<double>(s.back()) * k;
  return p;
}

Percentiles percentiles(std::span<std::uint64_t> ticks, double ns_per_tick, double scale) {
  std::sort(ticks.begin(), ticks.end());
  return percentiles_sorted(ticks, ns_per_tick, scale);
}

std::string json_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size() + 2);
  for (const char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      case '\r': o += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          o += b;
        } else {
          o += c;
        }
    }
  }
  return o;
}

void Json::key(std::string_view k) {
  if (!first_) s_ += ',';
  first_ = false;
  if (!k.empty()) {
    s_ += '"';
    s_ += json_escape(k);
    s_ += "\":";
  }
}

Json& Json::begin(std::string_view k) {
  key(k);
  s_ += '{';
  first_ = true;
  return *this;
}

Json& Json::end() {
  s_ += '}';
  first_ = false;
  return *this;
}

Json& Json::num(std::string_view k, double v, int decimals) {
  key(k);
  if (!std::isfinite(v)) {
    s_ += "null";
    return *this;
  }
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  s_ += b;
  return *this;
}

Json& Json::integer(std::string_view k, std::int64_t v) {
  key(k);
  s_ += std::to_string(v);
  return *this;
}

Json& Json::str(std::string_view k, std::string_view v) {
  key(k);
  s_ += '"';
  s_ += json_escape(v);
  s_ += '"';
  return *this;
}

Json& Json::boolean(std::string_view k, bool v) {
  key(k);
  s_ += v ? "true" : "false";
  return *this;
}

}  // namespace shmbus::bench
