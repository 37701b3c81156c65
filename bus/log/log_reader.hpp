// LogRangeReader: the leader side of log replication. It hands out ranges of whole record batches
// of a log that another thread or process appends to (the persistence agent owns the Log; the
// replication threads never touch it), as (fd, position, length) so that the caller can send them
// with sendfile(2) and the follower can append_raw() them byte for byte.
//
// It reads only batch headers (pread, 56 bytes each) and never checks CRCs (the follower does).
// Segments are found by listing DIR/*.log (20-digit names); the directory is listed again when
// an offset is not in the segments it knows or a segment ends. The steady state (each read()
// starting where the previous one stopped) costs an fstat and one pread per batch, no scan and
// no listing; any other start is positioned through the segment's sparse .index (pread binary
// search, each hit checked against the batch header it points at; position 0 if it looks wrong).
//
// A segment that compaction replaced (rename) or retention deleted keeps working through the fd
// already open: its bytes are still valid batches. One reader per consumer (follower); not
// thread-safe.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace shmbus::log {

class LogRangeReader {
 public:
  explicit LogRangeReader(std::string dir);
  ~LogRangeReader();
  LogRangeReader(const LogRangeReader&) = delete;
  LogRangeReader& operator=(const LogRangeReader&) = delete;

  /// Contiguous bytes [position, position + length) of one .log, open as `fd`. first_offset is
  /// the first batch's base offset (below `from` when `from` falls inside that batch), next_offset
  /// one past the last batch's last offset (where the next read() continues).
  struct Range {
    int fd = -1;
    std::uint64_t position = 0;
    std::uint32_t length = 0;
    std::uint64_t first_offset = 0;
    std::uint64_t next_offset = 0;
  };
  enum class Status { kOk, kNothing, kBelowStart, kError };

  /// Whole batches holding offsets >= from whose last offset is < below (the writer's published
  /// log end: a batch past it may still be cut back), up to max_bytes (at least one whole batch
  /// even if bigger), all from ONE segment file. A batch at position p is handed out only if
  /// p + batch_length <= the file size seen. kNothing: none yet (from >= below, or the bytes are
  /// not there yet). kBelowStart: `from` is below the oldest segment's base (retention deleted
  /// it); start_offset() says where the log starts. kError: error() says why (I/O error, corrupt
  /// header). out.fd stays valid until the next read() call (or the destructor).
  Status read(std::uint64_t from, std::uint64_t below, std::uint32_t max_bytes, Range& out);

  /// The oldest segment's base at the last directory listing (0 before the first).
  std::uint64_t start_offset() const noexcept { return start_; }
  const std::string& error() const noexcept { return error_; }

 private:
  enum class Walk { kFound, kNotYet, kEnd, kStale, kBad, kIoError };

  bool list();
  Status locate(std::uint64_t from, int& listings, std::uint64_t& pos);
  int open_segment(std::uint64_t base);
  void close_segment() noexcept;
  std::uint64_t index_position(std::uint64_t from);
  bool header_at(std::uint64_t pos, std::uint64_t base_offset) const;
  bool replaced() const;
  Walk walk(std::uint64_t& pos, std::uint64_t from, std::uint64_t below, std::uint32_t max_bytes, bool steady,
            Range& out);
  Status fail(std::string why);

  std::string dir_;
  std::vector<std::uint64_t> bases_;  // segment bases at the last listing, ascending
  std::uint64_t start_ = 0;
  std::string error_;
  int fd_ = -1;                 // the current segment's .log
  std::uint64_t base_ = 0;      // its base offset
  std::uint64_t size_seen_ = 0;  // its size at the last walk (a shrink means the writer truncated)
  bool resume_valid_ = false;   // every batch of the current segment before resume_pos_ ends below resume_offset_
  std::uint64_t resume_offset_ = 0;
  std::uint64_t resume_pos_ = 0;
};

}  // namespace shmbus::log
