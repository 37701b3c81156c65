// Helpers for the segment-log tests: a fresh temporary directory per test, byte/string
// conversions, and reading a whole log back as plain values to compare.
#pragma once
#include "log/segment_log.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::log::test {

/// mkdtemp directory, removed (with everything in it) when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "shmbus-log-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string as_string(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// A record read back, as values.
struct Rec {
  std::uint64_t offset = 0;
  std::int64_t ts = 0;
  std::string key;
  std::string value;
  std::uint16_t attributes = 0;
  std::uint32_t epoch = 0;
  bool operator==(const Rec&) const = default;
};

inline std::vector<Rec> read_all(const Log& sut, std::uint64_t from = 0, std::uint64_t max_bytes = 0) {
  std::vector<Rec> out;
  const LogError e = sut.read(from, max_bytes, [&](const RecordView& v) {
    out.push_back({v.offset, v.timestamp_ns, as_string(v.key), as_string(v.value), v.attributes, v.leader_epoch});
    return true;
  });
  EXPECT_FALSE(e) << "read failed: " << e.what;
  return out;
}

/// Appends one batch of records with the given keys/values/timestamps; returns the base offset.
struct Draft {
  std::string key;
  std::string value;
  std::int64_t ts = 0;
  std::uint16_t attributes = 0;
};
inline std::uint64_t append(Log& sut, const std::vector<Draft>& drafts, std::uint32_t epoch = 0) {
  std::vector<AppendRecord> recs;
  for (const Draft& d : drafts) recs.push_back({d.ts, d.attributes, as_bytes(d.key), as_bytes(d.value)});
  std::uint64_t base = 0;
  const LogError e = sut.append(recs, epoch, base);
  EXPECT_FALSE(e) << "append failed: " << e.what;
  return base;
}

inline std::unique_ptr<Log> open_ok(const std::string& dir, const LogConfig& cfg, RecoveryReport* report = nullptr) {
  LogError err;
  auto sut = Log::open(dir, cfg, report, err);
  EXPECT_TRUE(sut) << "open failed: " << err.what;
  return sut;
}

/// The batches of one .log file, as dump_segment sees them.
inline std::vector<BatchInfo> batches_of(const std::string& path) {
  std::vector<BatchInfo> out;
  std::string tail;
  std::uint64_t tail_pos = 0;
  const LogError e = dump_segment(path, false, [&](const BatchInfo& b) { out.push_back(b); }, [](const RecordView&) {},
                                  tail, tail_pos);
  EXPECT_FALSE(e) << e.what;
  return out;
}

inline void flip_byte(const std::string& path, std::uint64_t pos) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << "cannot open " << path;
  f.seekg(static_cast<std::streamoff>(pos));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(pos));
  f.put(static_cast<char>(c ^ 0x5A));
}

inline void write_file(const std::string& path, std::string_view content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(content.data(), static_cast<std::streamsize>(content.size()));
}

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline std::string seg(const std::string& dir, std::uint64_t base, const char* ext) {
  return dir + "/" + segment_file_name(base, ext);
}

}  // namespace shmbus::log::test
