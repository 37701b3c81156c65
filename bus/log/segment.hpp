// One segment: its .log (batches appended with pwrite at the tail), its sparse .index and
// .timeindex (kept whole in memory, appended to disk with pwrite as entries are added), and what
// the Log needs to know about it without reading it (offset range, size, timestamps).
#pragma once
#include "log/log_format.hpp"

#include <limits>
#include <string>
#include <vector>

namespace shmbus::log {

class Segment {
 public:
  static constexpr std::int64_t kNoTimestamp = std::numeric_limits<std::int64_t>::min();

  Segment() = default;
  ~Segment();
  Segment(Segment&& o) noexcept;
  Segment& operator=(Segment&& o) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  /// Creates the three files of a new, empty segment (truncating stale ones of the same name).
  static LogError create(const std::string& dir, std::uint64_t base, Segment& out);
  /// Opens an existing .log (its index files are created if missing); the state is not loaded.
  static LogError open(const std::string& dir, std::uint64_t base, Segment& out);

  /// Appends one encoded batch with one pwrite, then its index entries if one is due. On failure
  /// the files are cut back to their old sizes and the state is unchanged.
  LogError append(const std::byte* batch, const BatchHeader& h, std::uint32_t index_interval);

  /// Forgets everything known about the content (before a scan re-learns it with absorb()).
  void reset_state();
  /// Learns the valid batch at `pos` during a scan: offsets, size, timestamps, index entries.
  void absorb(const BatchHeader& h, std::uint64_t pos, std::uint32_t index_interval);
  /// Reads the .index/.timeindex files into memory; false if they are missing or inconsistent with
  /// each other or with a .log of `log_size` bytes.
  bool load_indexes(std::uint64_t log_size);
  /// Rewrites both index files from memory.
  LogError write_indexes();
  /// Cuts the .log (and the index entries at or past it) at `position`; the state fields other
  /// than bytes and the index are the caller's to re-learn.
  LogError truncate(std::uint64_t position);
  /// fdatasync of the .log if it was written since its last sync (what a durable append needs).
  LogError sync_log();
  /// fdatasync of the .index and .timeindex if written since their last sync (before a checkpoint
  /// moves past this segment: recovery trusts the indexes of segments below the recovery point).
  LogError sync_indexes();
  /// Both.
  LogError sync();
  /// Closes and unlinks the three files.
  void remove_files();
  /// Re-opens the .log after it was replaced by rename (compaction).
  LogError reopen_log();

  /// File position of the last indexed batch at or before `offset` (0 if none).
  std::uint64_t position_for(std::uint64_t offset) const noexcept;
  /// Offset of the last time-index entry whose timestamp is below ts (base if none).
  std::uint64_t offset_before_time(std::int64_t ts) const noexcept;
  std::string path(const char* ext) const;
  SegmentInfo info() const noexcept;
  bool empty() const noexcept { return bytes == 0; }

  std::string dir;
  std::uint64_t base = 0;
  std::uint64_t next_offset = 0;  // one past the last record's offset
  std::uint64_t bytes = 0;        // valid bytes of the .log
  std::int64_t max_ts = kNoTimestamp;
  std::int64_t roll_ts = kNoTimestamp;  // the first batch's max timestamp: segment_ms counts from it
  std::uint64_t since_index = 0;        // bytes of batches since the last index entry
  bool log_dirty = false;               // .log written since its last fdatasync
  bool index_dirty = false;             // .index/.timeindex written since their last fdatasync
  std::vector<IndexEntry> index;
  std::vector<TimeIndexEntry> tindex;
  int log_fd = -1;
  int index_fd = -1;
  int time_fd = -1;

 private:
  void close_all() noexcept;
  bool note_index(const BatchHeader& h, std::uint64_t pos, std::uint32_t interval);
};

}  // namespace shmbus::log
