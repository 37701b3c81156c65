// Log::Impl: the state of one open log, shared by log.cpp (append, read, retention), recovery.cpp
// (open), compaction.cpp and checkpoint.cpp. Single-threaded like the Log.
#pragma once
#include "log/segment.hpp"
#include "log/segment_log.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace shmbus::log {

struct Log::Impl {
  std::string dir;
  LogConfig cfg;
  std::vector<Segment> segs;  // by base offset; never empty once open; the last is active
  std::uint64_t recovery_point = 0;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> epochs;  // (epoch, start offset), ascending
  bool dir_dirty = false;                // files created/removed since the last directory fsync
  std::vector<std::byte> enc_buf;        // append's encode buffer: reused, so no allocation per append
  mutable std::vector<std::byte> read_buf;  // read()'s window: RecordViews point into it

  Segment& active() noexcept { return segs.back(); }
  const Segment& active() const noexcept { return segs.back(); }
  std::uint64_t end_offset() const noexcept { return segs.back().next_offset; }
  /// Index of the segment that holds `offset` (the last one whose base is <= offset; 0 if none).
  std::size_t segment_for(std::uint64_t offset) const noexcept;
  /// A new empty active segment at base `base`.
  LogError roll(std::uint64_t base);
  /// Removes segment i's files and entry; the caller keeps the active one.
  void drop_segment(std::size_t i);
  /// Re-learns a segment's state and indexes from its .log (headers only, no CRC).
  LogError rescan(Segment& s);
  LogError flush();

  LogError write_recovery_checkpoint();
  LogError write_epoch_checkpoint();
  /// Reads both checkpoints (absent: recovery point 0, no epochs); EPROTONOSUPPORT if newer.
  LogError read_checkpoints();
};

}  // namespace shmbus::log
