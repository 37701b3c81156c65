// Snapshots: <offset 20 digits>.snapshot = SnapshotHeader (log_format.hpp) + opaque bytes, written
// through a .tmp file that is fsync'ed and renamed (io::write_file_atomic), so a crash leaves the
// old set of snapshots or the new one; a damaged file is skipped in favour of the next older one.
#include "log/crc32c.hpp"
#include "log/io.hpp"
#include "log/log_format.hpp"

#include <algorithm>
#include <cerrno>
#include <unistd.h>

namespace shmbus::log {

namespace {

std::uint32_t snapshot_crc(const SnapshotHeader& h, const std::byte* payload, std::size_t n) {
  return crc32c(crc32c(0, &h, offsetof(SnapshotHeader, crc)), payload, n);
}

// Offsets of the snapshots in dir, newest first.
std::vector<std::uint64_t> snapshot_offsets(const std::string& dir) {
  std::vector<std::uint64_t> v;
  for (const std::string& n : io::list_dir(dir)) {
    std::uint64_t off = 0;
    if (io::parse_offset_name(n, ".snapshot", off)) v.push_back(off);
  }
  std::sort(v.rbegin(), v.rend());
  return v;
}

bool valid_snapshot(const std::vector<std::byte>& raw, std::uint64_t offset) {
  if (raw.size() < sizeof(SnapshotHeader)) return false;
  const auto h = load_at<SnapshotHeader>(raw.data());
  return h.magic == kSnapshotMagic && h.version >= 1 && h.version <= kLogFormatVersion && h.offset == offset &&
         h.length == raw.size() - sizeof(SnapshotHeader) &&
         h.crc == snapshot_crc(h, raw.data() + sizeof(SnapshotHeader), raw.size() - sizeof(SnapshotHeader));
}

}  // namespace

LogError write_snapshot(const std::string& dir, std::uint64_t offset, std::span<const std::byte> bytes) {
  SnapshotHeader h{};
  h.magic = kSnapshotMagic;
  h.version = static_cast<std::uint16_t>(kLogFormatVersion);
  h.offset = offset;
  h.length = bytes.size();
  h.crc = snapshot_crc(h, bytes.data(), bytes.size());
  std::vector<std::byte> file(sizeof h + bytes.size());
  std::memcpy(file.data(), &h, sizeof h);
  if (!bytes.empty()) std::memcpy(file.data() + sizeof h, bytes.data(), bytes.size());
  return io::write_file_atomic(dir, segment_file_name(offset, ".snapshot"), file.data(), file.size());
}

bool load_latest_snapshot(const std::string& dir, std::uint64_t& offset, std::vector<std::byte>& bytes) {
  std::vector<std::byte> raw;
  for (const std::uint64_t off : snapshot_offsets(dir)) {
    if (!io::read_file(io::join(dir, segment_file_name(off, ".snapshot")), raw) || !valid_snapshot(raw, off)) continue;
    offset = off;
    bytes.assign(raw.begin() + static_cast<std::ptrdiff_t>(sizeof(SnapshotHeader)), raw.end());
    return true;
  }
  return false;
}

void prune_snapshots(const std::string& dir, std::uint32_t keep) {
  const std::vector<std::uint64_t> offs = snapshot_offsets(dir);
  for (std::size_t i = keep; i < offs.size(); ++i)
    ::unlink(io::join(dir, segment_file_name(offs[i], ".snapshot")).c_str());
}

}  // namespace shmbus::log
