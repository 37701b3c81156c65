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
  // Invariant: checkpointed <= recovery_point <= end_offset(). recovery_point is what was
  // fdatasync'ed (in memory, exact); checkpointed is what the checkpoint file says, rewritten
  // lazily, so it may lag (recovery then validates a little more) but is never ahead of the disk.
  std::uint64_t recovery_point = 0;
  std::uint64_t checkpointed = 0;
  std::int64_t checkpoint_ns = 0;  // CLOCK_MONOTONIC of the last checkpoint write
  bool checkpoint_due = false;     // a roll (or a failed lazy write): the next flush writes it
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
  /// Writes one encoded batch at the end (append and append_raw): rolls first (at the batch's base
  /// offset) if the active segment is full or too old; on failure the log is as before.
  LogError write_batch(const std::byte* batch, const BatchHeader& h);
  /// Starts `epoch` at offset `start` (>= end_offset()) in the epoch list and its checkpoint.
  /// Entries at or past the end hold no records and are dropped first; a no-op if the latest entry
  /// is this epoch, started at or before `start`. EPROTO if an entry holding records is newer.
  LogError begin_epoch(std::uint32_t epoch, std::uint64_t start);
  /// Removes segment i's files and entry; the caller keeps the active one.
  void drop_segment(std::size_t i);
  /// Re-learns a segment's state and indexes from its .log (headers only, no CRC).
  LogError rescan(Segment& s);
  /// fdatasync of the .log files written since their last sync (and the directory if segments came
  /// or went): recovery_point = end. The checkpoint file follows as `mode` says.
  LogError flush(Checkpoint mode);
  /// Syncs the indexes, then writes the checkpoint file = recovery_point (never past the disk).
  LogError checkpoint();

  /// Writes recovery_point to the checkpoint file; checkpointed follows on success.
  LogError write_recovery_checkpoint();
  LogError write_epoch_checkpoint();
  /// Reads both checkpoints (absent: recovery point 0, no epochs); EPROTONOSUPPORT if newer.
  LogError read_checkpoints();
};

}  // namespace shmbus::log
