#include "log/batch_reader.hpp"

#include "log/batch_codec.hpp"
#include "log/io.hpp"

#include <algorithm>

namespace shmbus::log {

namespace {
constexpr std::size_t kWindow = 256 * 1024;  // large enough that small batches cost one pread per window
}

bool BatchReader::ensure(std::uint64_t pos, std::size_t n) {
  if (pos >= win_pos_ && pos + n <= win_pos_ + win_len_) return true;
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(std::max(n, kWindow), end_ - pos));
  if (buf_.size() < want) buf_.resize(want);
  std::size_t got = 0;
  err_ = io::pread_upto(fd_, buf_.data(), want, pos, got);
  win_pos_ = pos;
  win_len_ = err_ == 0 ? got : 0;
  return err_ == 0 && got >= n;
}

BatchReader::Step BatchReader::read(std::uint64_t pos, bool check_crc) {
  data_ = nullptr;
  crc_ok_ = false;
  why_ = {};
  if (pos >= end_) return Step::kEnd;
  if (end_ - pos < sizeof(BatchHeader)) {
    why_ = "torn batch header";
    return Step::kBad;
  }
  if (!ensure(pos, sizeof(BatchHeader))) {
    why_ = "torn batch header";
    return err_ != 0 ? Step::kIoError : Step::kBad;
  }
  h_ = load_at<BatchHeader>(buf_.data() + (pos - win_pos_));
  why_ = check_batch_header(h_, end_ - pos);
  if (!why_.empty()) return Step::kBad;
  if (h_.version > kLogFormatVersion) return Step::kNewerVersion;
  if (h_.version == 0) {
    why_ = "bad version";
    return Step::kBad;
  }
  if (!ensure(pos, h_.batch_length)) {
    why_ = "torn batch";
    return err_ != 0 ? Step::kIoError : Step::kBad;
  }
  data_ = buf_.data() + (pos - win_pos_);
  if (check_crc) {
    crc_ = batch_crc(data_, h_.batch_length);
    crc_ok_ = crc_ == h_.crc;
  }
  return Step::kBatch;
}

}  // namespace shmbus::log
