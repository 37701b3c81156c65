// A read-only follower of a log that another process (the daemon's persistence agent) appends
// to: a durable subscriber reads its topic's log with it. It walks the segment files in offset
// order with pread, hands out only whole batches whose CRC checks (a batch being written fails
// the check and is looked at again later), and moves to the next segment when one exists.
#pragma once
#include "log/segment_log.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace shmbus::log {

class LogTail {
 public:
  /// Starts at `from`, or at the log's current end with kFromEnd. A `from` below the log's start
  /// (retention deleted it) starts at the start; skipped() says how many offsets that passed over.
  static constexpr std::uint64_t kFromEnd = ~0ULL;
  LogTail(std::string dir, std::uint64_t from);
  ~LogTail();
  LogTail(const LogTail&) = delete;
  LogTail& operator=(const LogTail&) = delete;

  /// The next record (views valid until the next call); false when there is none yet.
  bool next(RecordView& out);
  /// The offset the next record will have at least (where a subscription resumes).
  std::uint64_t position() const noexcept { return next_offset_; }
  std::uint64_t skipped() const noexcept { return skipped_; }

 private:
  bool open_segment_for(std::uint64_t offset);
  bool advance_segment();
  bool load_batch();
  std::vector<std::uint64_t> list_bases() const;

  std::string dir_;
  int fd_ = -1;
  std::uint64_t base_ = 0;      // of the open segment
  std::uint64_t pos_ = 0;       // file position of the next batch
  std::uint64_t next_offset_ = 0;
  std::uint64_t skipped_ = 0;
  bool started_ = false;
  bool from_end_ = false;
  std::vector<std::byte> batch_;
  std::vector<RecordView> records_;
  std::size_t index_ = 0;
};

}  // namespace shmbus::log
