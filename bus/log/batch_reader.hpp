// Sequential reads of the batches of one .log file through a caller-owned, reusable buffer: one
// pread fills a window of many batches, so a walk costs a syscall per window, not per batch.
#pragma once
#include "log/log_format.hpp"

#include <string_view>
#include <vector>

namespace shmbus::log {

class BatchReader {
 public:
  enum class Step { kBatch, kEnd, kBad, kNewerVersion, kIoError };

  /// Reads fd up to byte `end` (the known length of the data; bytes past it are ignored).
  BatchReader(int fd, std::uint64_t end, std::vector<std::byte>& buf) noexcept : fd_(fd), end_(end), buf_(buf) {}

  /// The batch at `pos`: kBatch with header()/data() set (crc_ok() when check_crc), kEnd at `end`,
  /// kBad with why() when the header is not sane or the batch passes `end`, kNewerVersion when a
  /// sane header carries a newer format version, kIoError with error().
  Step read(std::uint64_t pos, bool check_crc);

  const BatchHeader& header() const noexcept { return h_; }
  const std::byte* data() const noexcept { return data_; }  // header_.batch_length bytes
  bool crc_ok() const noexcept { return crc_ok_; }
  std::uint32_t crc_computed() const noexcept { return crc_; }
  std::string_view why() const noexcept { return why_; }
  int error() const noexcept { return err_; }
  std::uint64_t end() const noexcept { return end_; }

 private:
  // Makes [pos, pos+n) available in the window; false (with err_ or a short file) if it cannot.
  bool ensure(std::uint64_t pos, std::size_t n);

  int fd_;
  std::uint64_t end_;
  std::vector<std::byte>& buf_;
  std::uint64_t win_pos_ = 0;
  std::size_t win_len_ = 0;
  BatchHeader h_{};
  const std::byte* data_ = nullptr;
  bool crc_ok_ = false;
  std::uint32_t crc_ = 0;
  std::string_view why_;
  int err_ = 0;
};

}  // namespace shmbus::log
