// `shmbus dump-log PATH [--records]`: prints the batches (and records) of a segment log the way
// kafka-dump-log does. Read-only; safe on a segment another process is appending to.
// Exit codes: 0 every batch valid, 3 a CRC mismatch or a bad/torn tail, 2 usage or I/O error.
#include "cli/commands.hpp"
#include "log/segment_log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace shmbus::cli {

namespace {

constexpr int kDamaged = 3;  // documented for dump-log only: the log has a bad CRC or tail

std::string escape_key(std::span<const std::byte> key) {
  if (key.empty()) return "null";
  std::string s = "\"";
  for (const std::byte b : key) {
    const auto c = static_cast<unsigned char>(b);
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      s += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      s += hex;
    }
  }
  return s + "\"";
}

void print_batch(const log::BatchInfo& b) {
  std::printf("baseOffset: %llu lastOffset: %llu count: %u position: %llu size: %u epoch: %u firstTimestamp: %lld "
              "maxTimestamp: %lld crc: 0x%08x valid: %s",
              static_cast<unsigned long long>(b.base_offset), static_cast<unsigned long long>(b.last_offset),
              b.record_count, static_cast<unsigned long long>(b.position), b.size, b.leader_epoch,
              static_cast<long long>(b.first_timestamp_ns), static_cast<long long>(b.max_timestamp_ns), b.crc_stored,
              b.crc_ok ? "true" : "false");
  if (!b.crc_ok) std::printf(" computedCrc: 0x%08x", b.crc_computed);
  std::printf("\n");
}

void print_record(const log::RecordView& r) {
  std::printf("| offset: %llu timestamp: %lld key: %s valueBytes: %zu attributes: 0x%04x\n",
              static_cast<unsigned long long>(r.offset), static_cast<long long>(r.timestamp_ns),
              escape_key(r.key).c_str(), r.value.size(), static_cast<unsigned>(r.attributes));
}

// Dumps one file: kOk, kDamaged or kUsage (I/O error, already reported).
int dump_file(const std::string& path, bool records) {
  std::printf("Dumping %s\n", path.c_str());
  bool bad_crc = false;
  std::string tail;
  std::uint64_t tail_pos = 0;
  const log::LogError e = log::dump_segment(
      path, records,
      [&](const log::BatchInfo& b) {
        bad_crc = bad_crc || !b.crc_ok;
        print_batch(b);
      },
      print_record, tail, tail_pos);
  std::fflush(stdout);
  if (e) {
    std::fprintf(stderr, "shmbus dump-log: %s\n", e.what.c_str());
    return kUsage;
  }
  if (!tail.empty()) {
    struct stat st{};
    const long long size = ::stat(path.c_str(), &st) == 0 ? static_cast<long long>(st.st_size) : -1;
    std::printf("stopped at position %llu of %lld: %s\n", static_cast<unsigned long long>(tail_pos), size,
                tail.c_str());
  }
  return bad_crc || !tail.empty() ? kDamaged : kOk;
}

bool is_segment_name(const std::string& n) {
  return n.size() == 24 && n.ends_with(".log") &&
         std::all_of(n.begin(), n.begin() + 20, [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

int cmd_dump_log(const Common&, const std::vector<std::string>& args) {
  std::string path;
  bool records = false;
  for (const std::string& a : args) {
    if (a == "--records") records = true;
    else if (path.empty() && !a.starts_with("--")) path = a;
    else {
      std::fprintf(stderr, "shmbus dump-log: unexpected argument '%s'\nusage: shmbus dump-log PATH [--records]\n",
                   a.c_str());
      return kUsage;
    }
  }
  if (path.empty()) {
    std::fprintf(stderr, "shmbus dump-log: usage: shmbus dump-log PATH [--records]\n");
    return kUsage;
  }
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "shmbus dump-log: cannot open %s: %s\n", path.c_str(), std::strerror(errno));
    return kUsage;
  }
  if (!S_ISDIR(st.st_mode)) return dump_file(path, records);
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& ent : std::filesystem::directory_iterator(path, ec))
    if (is_segment_name(ent.path().filename().string())) names.push_back(ent.path().filename().string());
  if (ec) {
    std::fprintf(stderr, "shmbus dump-log: cannot read directory %s: %s\n", path.c_str(), ec.message().c_str());
    return kUsage;
  }
  std::sort(names.begin(), names.end());  // 20-digit names: text order is offset order
  int rc = kOk;
  for (const std::string& n : names) {
    const int r = dump_file((std::filesystem::path(path) / n).string(), records);
    if (r == kUsage) return r;
    rc = std::max(rc, r);
  }
  return rc;
}

}  // namespace shmbus::cli
