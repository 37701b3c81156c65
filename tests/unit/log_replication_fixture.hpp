// Helpers for the replication tests: a leader log filled with epochs, the raw bytes of a log's
// segments and batches, and the copy loop a follower runs (LogRangeReader -> append_raw).
#pragma once
#include "log/log_format.hpp"
#include "log/log_reader.hpp"
#include "log_fixture.hpp"

#include <algorithm>
#include <cstring>
#include <unistd.h>

namespace shmbus::log::test {

inline constexpr std::int64_t kMsNs = 1'000'000;
inline constexpr std::int64_t kT0 = 1'700'000'000'000 * kMsNs;

inline std::vector<std::byte> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  const std::string s{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

/// Base offsets of the .log files in dir, ascending.
inline std::vector<std::uint64_t> segment_bases(const std::string& dir) {
  std::vector<std::uint64_t> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() == 24 && n.ends_with(".log")) out.push_back(std::stoull(n.substr(0, 20)));
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Every batch of the log, in offset order: its .log files concatenated.
inline std::vector<std::byte> log_bytes(const std::string& dir) {
  std::vector<std::byte> out;
  for (const std::uint64_t b : segment_bases(dir)) {
    const auto f = file_bytes(seg(dir, b, ".log"));
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

/// The batches of a concatenation, each as its own byte vector.
inline std::vector<std::vector<std::byte>> split_batches(const std::vector<std::byte>& all) {
  std::vector<std::vector<std::byte>> out;
  for (std::size_t pos = 0; pos + 12 <= all.size();) {
    std::uint32_t len = 0;
    std::memcpy(&len, all.data() + pos + 8, sizeof len);
    out.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(pos),
                     all.begin() + static_cast<std::ptrdiff_t>(pos + len));
    pos += len;
  }
  return out;
}

inline std::vector<std::byte> concat(std::initializer_list<std::vector<std::byte>> parts) {
  std::vector<std::byte> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

/// Appends n batches of `per` records in `epoch`, values of value_size bytes; returns the records.
inline std::vector<Rec> fill_epoch(Log& sut, int n, int per, std::uint32_t epoch, std::size_t value_size = 20,
                                   int keys = 1000) {
  std::vector<Rec> expected;
  for (int b = 0; b < n; ++b) {
    std::vector<Draft> drafts;
    const std::uint64_t first = sut.log_end_offset();
    for (int r = 0; r < per; ++r) {
      const std::uint64_t off = first + static_cast<std::uint64_t>(r);
      std::string v = "v" + std::to_string(off);
      v.resize(std::max(v.size(), value_size), '.');
      drafts.push_back({"k" + std::to_string(off % static_cast<std::uint64_t>(keys)), v,
                        kT0 + static_cast<std::int64_t>(off) * kMsNs, 0});
    }
    const std::uint64_t base = append(sut, drafts, epoch);
    for (std::size_t r = 0; r < drafts.size(); ++r)
      expected.push_back({base + r, drafts[r].ts, drafts[r].key, drafts[r].value, 0, epoch});
  }
  return expected;
}

/// The bytes of a range the reader handed out.
inline std::vector<std::byte> range_bytes(const LogRangeReader::Range& r) {
  std::vector<std::byte> buf(r.length);
  const ssize_t got = ::pread(r.fd, buf.data(), buf.size(), static_cast<off_t>(r.position));
  EXPECT_EQ(got, static_cast<ssize_t>(r.length)) << "pread of a handed-out range";
  return buf;
}

/// The follower's fetch loop: read from its end below the leader's end, append_raw, until the
/// reader has nothing more. Returns how many ranges were copied.
inline int replicate(LogRangeReader& reader, const Log& leader, Log& follower, std::uint32_t max_bytes) {
  int ranges = 0;
  for (int guard = 0; guard < 100000; ++guard) {
    LogRangeReader::Range r;
    const auto st = reader.read(follower.log_end_offset(), leader.log_end_offset(), max_bytes, r);
    if (st == LogRangeReader::Status::kNothing) return ranges;
    EXPECT_EQ(st, LogRangeReader::Status::kOk) << reader.error();
    if (st != LogRangeReader::Status::kOk) return ranges;
    std::uint64_t n = 0;
    const LogError e = follower.append_raw(range_bytes(r), n);
    EXPECT_FALSE(e) << e.what;
    EXPECT_EQ(follower.log_end_offset(), r.next_offset);
    if (e) return ranges;
    ++ranges;
  }
  ADD_FAILURE() << "replication did not converge";
  return ranges;
}

}  // namespace shmbus::log::test
