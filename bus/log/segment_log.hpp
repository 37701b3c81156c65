// Segment logs: the on-disk format of PERSISTENT messages (docs/persistence.md has the bytes).
//
// One Log per destination, in its own directory (DIR/data/<kind>.<name>/):
//   <base offset, 20 digits>.log        record batches, each with a CRC32C over its body
//   <base offset, 20 digits>.index      sparse offset -> file position (fixed 16-byte entries)
//   <base offset, 20 digits>.timeindex  sparse timestamp -> offset (fixed 16-byte entries)
//   recovery-point-offset-checkpoint    every offset below it was fsync'ed (recovery starts there;
//                                       rewritten lazily, so it may lag the disk, never lead it)
//   leader-epoch-checkpoint             (epoch, start offset) pairs, Kafka KIP-101
//   <offset, 20 digits>.snapshot        opaque state blobs written by the daemon (queue state,
//                                       producer state), CRC-checked, atomically renamed
//
// Single-threaded: one Log is owned by one thread (the daemon's persistence agent). Nothing here
// throws across that agent's loop: every call that can fail returns a LogError. Log::open may
// throw std::bad_alloc only.
//
// Readers of a log another process writes (dump-log, tests) use dump_segment()/read_segment_file(),
// which never write; replication reads a leader's logs with LogRangeReader (log_reader.hpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace shmbus::log {

/// Format version of every file this code writes; a directory holding a newer one is refused.
inline constexpr std::uint32_t kLogFormatVersion = 1;

/// An error from the log: errno-like code (0 = none) and what happened, naming the file.
struct LogError {
  int code = 0;  // an errno value (ENOSPC, EIO, ...) or EINVAL/EPROTO for format problems
  std::string what;
  explicit operator bool() const noexcept { return code != 0; }
};

struct LogConfig {
  std::uint64_t segment_bytes = 64ULL << 20;       // roll when the active .log would pass this
  std::uint64_t segment_ms = 7ULL * 24 * 3600 * 1000;  // roll when the active segment is older (its first batch's wall time)
  std::uint32_t index_interval_bytes = 4096;       // one .index/.timeindex entry per this many bytes of batches
  std::uint64_t retention_bytes = 0;               // 0: unlimited; else delete oldest segments past it
  std::uint64_t retention_ms = 0;                  // 0: forever; else delete segments whose newest record is older
  std::uint32_t checkpoint_interval_ms = 1000;     // flush() rewrites the recovery-point checkpoint at most this
                                                   // often (and after a roll); 0: on every flush
};

/// One record to append.
struct AppendRecord {
  std::int64_t timestamp_ns = 0;   // CLOCK_REALTIME
  std::uint16_t attributes = 0;    // opaque to the log except kAttrTombstone
  std::span<const std::byte> key;  // may be empty (no key: never compacted away)
  std::span<const std::byte> value;
  /// Appended to `value` in the same record (a gather: e.g. a record header here and a message's
  /// bytes there, encoded straight into the batch without first copying them together).
  std::span<const std::byte> value_tail = {};
};
/// A record with a key and this attribute is a tombstone: compaction removes the key, and the
/// tombstone itself once it is older than the tombstone retention.
inline constexpr std::uint16_t kAttrTombstone = 0x8000;

/// One record read back (views into the log's memory: valid until the next call on the Log).
struct RecordView {
  std::uint64_t offset = 0;
  std::int64_t timestamp_ns = 0;
  std::uint16_t attributes = 0;
  std::uint32_t leader_epoch = 0;
  std::span<const std::byte> key;
  std::span<const std::byte> value;
};

/// What recovery did when a log was opened.
struct RecoveryReport {
  std::uint32_t segments = 0;
  std::uint64_t batches_checked = 0;        // batches validated (from the recovery point on)
  std::uint64_t records_recovered = 0;
  bool truncated = false;                   // a torn or corrupt tail was cut off
  std::string truncated_file;               // the segment it was cut in
  std::uint64_t truncated_at_offset = 0;    // first offset dropped
  std::uint64_t truncated_at_position = 0;  // file position of the cut
  std::uint64_t bytes_dropped = 0;          // bytes removed from that segment (+ whole later segments)
  std::uint32_t segments_dropped = 0;       // later segments removed because they followed the damage
  std::uint32_t indexes_rebuilt = 0;        // .index/.timeindex found missing or damaged and rebuilt
  std::string reason;                       // why the tail was cut ("crc mismatch", "torn batch", ...)
};

struct SegmentInfo {
  std::uint64_t base_offset = 0;
  std::uint64_t next_offset = 0;  // one past its last record
  std::uint64_t bytes = 0;        // of its .log
  std::int64_t max_timestamp_ns = 0;
};

class Log {
 public:
  /// Opens (creating if absent) the log in `dir` and recovers it: batches from the recovery point
  /// on are validated (length, CRC32C, offsets in order); the first bad one and everything after
  /// it are cut off (report says where and how much); missing/damaged indexes are rebuilt.
  /// A directory written by a newer format version is refused (error EPROTONOSUPPORT).
  static std::unique_ptr<Log> open(const std::string& dir, const LogConfig& cfg, RecoveryReport* report, LogError& err);
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  /// Appends the records as one batch (one CRC) at log_end_offset(); `base` gets the first
  /// record's offset. Rolls a new segment first if the active one is full or too old. On any
  /// error (ENOSPC, EIO) nothing is appended: the log is as it was (a partly written batch is cut
  /// back), and the call may be retried later.
  LogError append(std::span<const AppendRecord> records, std::uint32_t leader_epoch, std::uint64_t& base);
  /// What flush() does about the recovery-point checkpoint file.
  enum class Checkpoint : std::uint8_t {
    kWhenDue,  // rewrite it if checkpoint_interval_ms passed since the last one, or after a roll
    kDefer,    // not now (a caller that wants to release durable waiters first, then flush again)
    kNow,      // always (after an fdatasync of the indexes); its errors are returned
  };
  /// Makes everything appended so far durable: fdatasync of each .log written since its last sync
  /// (the active one, plus a rolled one not synced yet; the directory too after a roll), then
  /// recovery_point() = log_end_offset(). The recovery-point checkpoint file is rewritten lazily
  /// (see Checkpoint; the destructor uses kNow). It may lag recovery_point() (recovery then
  /// validates from the older point: time, not data) but is never ahead of what was fdatasync'ed.
  /// A failed kWhenDue checkpoint write is not an error of flush(): the next flush retries it.
  LogError flush(Checkpoint checkpoint = Checkpoint::kWhenDue);

  std::uint64_t log_start_offset() const noexcept;
  std::uint64_t log_end_offset() const noexcept;   // next offset to assign
  std::uint64_t recovery_point() const noexcept;   // fdatasync'ed up to here (the checkpoint file may lag)
  std::uint64_t size_bytes() const noexcept;       // all .log files
  std::vector<SegmentInfo> segments() const;
  const std::string& dir() const noexcept;

  /// Calls fn for every record with offset >= from, in order, until fn returns false or
  /// max_bytes of batches were read (0: no limit). Returns an error only for I/O problems.
  LogError read(std::uint64_t from, std::uint64_t max_bytes, const std::function<bool(const RecordView&)>& fn) const;
  /// The first offset whose timestamp is >= ts (log_end_offset() if none).
  std::uint64_t offset_for_time(std::int64_t ts_ns) const;

  /// Deletes whole segments (never the active one) by the config's retention_bytes/retention_ms,
  /// oldest first. Returns how many were deleted.
  std::uint32_t apply_retention(std::int64_t now_realtime_ns);
  /// Deletes whole segments (never the active one) whose records are all below `offset`
  /// (a queue whose messages below it are all acknowledged). Returns how many.
  std::uint32_t delete_segments_below(std::uint64_t offset);
  /// Compacts every segment but the active one: keeps only the newest record per key (records
  /// without a key are kept), drops tombstones older than tombstone_retention_ms at `now`. Offsets
  /// are kept (gaps appear). Each segment is rewritten to a .cleaned file, then renamed over the
  /// original with its indexes rebuilt, so a crash mid-compaction leaves the old or the new segment.
  struct CompactionStats { std::uint64_t records_before = 0, records_after = 0, bytes_before = 0, bytes_after = 0; };
  LogError compact(std::int64_t now_realtime_ns, std::uint64_t tombstone_retention_ms, CompactionStats& stats);

  /// Leader epochs (issue 7 uses them; the daemon starts epoch 0): records the (epoch, start
  /// offset = log_end_offset()) pair in leader-epoch-checkpoint if epoch is new.
  LogError assign_epoch(std::uint32_t epoch);
  std::vector<std::pair<std::uint32_t, std::uint64_t>> epochs() const;
  /// Cuts the log back so that log_end_offset() == offset (replica truncation).
  LogError truncate_to(std::uint64_t offset);

  /// Replication, follower side: appends `batches`, whole encoded batches exactly as they sit in
  /// a leader's .log (LogRangeReader hands them out), byte for byte: same offsets, CRCs, epochs.
  /// All of them are validated before anything is written: magic, version, batch_length, CRC,
  /// records, and offsets against this log: a batch wholly below log_end_offset() is skipped
  /// (already held); one that straddles it is an error; batches must ascend; a gap (a batch that
  /// starts past the end: the leader compacted) is allowed, and log_end_offset() then becomes the
  /// last batch's last offset + 1. Epochs: a batch whose leader_epoch is newer than the latest
  /// entry starts that epoch at its base offset in epochs() and leader-epoch-checkpoint before it
  /// is written (entries at or past the log end hold no records here and are replaced); an epoch
  /// older than the latest one this log holds records of is an error. Writing is append()'s:
  /// rolls by segment_bytes/segment_ms (a rolled segment's base is the batch's base offset),
  /// index entries, a failed write (ENOSPC, EIO) cut back so the log is as before that batch
  /// (earlier batches of the call stay written). `appended_records` counts the records written.
  /// Errors name the batch by its byte position in `batches`
  /// ("batch at byte 4096 of the fetched data: crc mismatch ..."). Codes: EBADMSG the bytes are
  /// damaged (truncated, bad magic/length/CRC/records); EPROTONOSUPPORT a newer format version;
  /// EPROTO well-formed batches that do not fit this log (straddle, out of order, older epoch:
  /// the follower must reconcile with end_offset_for_epoch and truncate_to/reset_to).
  LogError append_raw(std::span<const std::byte> batches, std::uint64_t& appended_records);
  /// Drops every segment (newest first) and starts an empty log at `offset`: log_start_offset()
  /// == log_end_offset() == offset, whether offset is below, at or above the current end. Epochs
  /// are cleared, both checkpoints rewritten (recovery point = offset), the directory fsync'ed.
  /// For a follower whose log is wholly below the leader's start or has nothing in common with it.
  /// A crash in the middle leaves a prefix of the old log or the empty one (never a hole).
  LogError reset_to(std::uint64_t offset);

  struct Impl;

 private:
  explicit Log(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Kafka's OffsetsForLeaderEpoch answer (KIP-101) from a log's epochs() list ((epoch, start
/// offset), ascending) and its log_end_offset(): the largest epoch <= `requested` the list has,
/// ending where the next higher epoch starts, or at log_end_offset if it is the latest. A
/// `requested` below every listed epoch gives known = false (epoch and end_offset 0): the follower
/// has nothing in common with this log by epoch and must reset to the leader's start. An empty
/// list answers epoch 0 ending at log_end_offset: a log written before epochs were assigned (the
/// daemon appends with epoch 0) is one epoch-0 run.
/// Reads DIR/leader-epoch-checkpoint (what Log::open does), for a reader that does not own the
/// Log (a replication thread): an absent file is an empty list; a damaged or newer one an error.
LogError read_epoch_checkpoint(const std::string& dir, std::vector<std::pair<std::uint32_t, std::uint64_t>>& epochs);

struct EpochEnd {
  std::uint32_t epoch = 0;
  std::uint64_t end_offset = 0;
  bool known = false;
};
EpochEnd end_offset_for_epoch(const std::vector<std::pair<std::uint32_t, std::uint64_t>>& epochs,
                              std::uint32_t requested, std::uint64_t log_end_offset);

/// Snapshots: opaque state at a log offset, in DIR/<offset 20 digits>.snapshot (magic, version,
/// CRC32C, length, bytes). Written to a temporary file, fsync'ed, renamed, directory fsync'ed.
LogError write_snapshot(const std::string& dir, std::uint64_t offset, std::span<const std::byte> bytes);
/// The newest snapshot that checks out (a damaged one is skipped, the next older tried).
/// False when there is none.
bool load_latest_snapshot(const std::string& dir, std::uint64_t& offset, std::vector<std::byte>& bytes);
/// Deletes every snapshot but the newest `keep`.
void prune_snapshots(const std::string& dir, std::uint32_t keep);

/// One batch of a segment file, as dump-log prints it.
struct BatchInfo {
  std::uint64_t position = 0;
  std::uint64_t base_offset = 0;
  std::uint64_t last_offset = 0;
  std::uint32_t record_count = 0;
  std::uint32_t size = 0;
  std::uint32_t leader_epoch = 0;
  std::int64_t first_timestamp_ns = 0;
  std::int64_t max_timestamp_ns = 0;
  std::uint32_t crc_stored = 0;
  std::uint32_t crc_computed = 0;
  bool crc_ok = false;
};
/// Walks a .log file read-only: fn for each batch (and, when records is true, rec for each of its
/// records with a valid CRC). Stops at the first batch whose header is unreadable; `tail` says
/// why ("" at a clean end of file) and `tail_position` where.
LogError dump_segment(const std::string& path, bool records, const std::function<void(const BatchInfo&)>& fn,
                      const std::function<void(const RecordView&)>& rec, std::string& tail, std::uint64_t& tail_position);

/// The file names of a segment: dir/<20 digits>.log etc.
std::string segment_file_name(std::uint64_t base_offset, const char* ext);

}  // namespace shmbus::log
