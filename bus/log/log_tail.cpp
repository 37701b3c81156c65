#include "log/log_tail.hpp"

#include "log/batch_codec.hpp"
#include "log/log_format.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

namespace shmbus::log {

namespace {
bool pread_all(int fd, void* buf, std::size_t n, std::uint64_t pos) {
  auto* p = static_cast<char*>(buf);
  while (n != 0) {
    const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(pos));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
    pos += static_cast<std::uint64_t>(r);
  }
  return true;
}
constexpr std::uint32_t kMaxBatch = 1U << 30;
}  // namespace

LogTail::LogTail(std::string dir, std::uint64_t from) : dir_(std::move(dir)), next_offset_(from), from_end_(from == kFromEnd) {}

LogTail::~LogTail() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<std::uint64_t> LogTail::list_bases() const {
  std::vector<std::uint64_t> out;
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.size() != 24 || n.compare(20, 4, ".log") != 0) continue;
    if (!std::all_of(n.begin(), n.begin() + 20, [](char c) { return c >= '0' && c <= '9'; })) continue;
    out.push_back(std::strtoull(n.substr(0, 20).c_str(), nullptr, 10));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool LogTail::open_segment_for(std::uint64_t offset) {
  const auto bases = list_bases();
  if (bases.empty()) return false;
  std::uint64_t base = bases.front();
  for (auto b : bases)
    if (b <= offset) base = b;
  const int fd = ::open((dir_ + "/" + segment_file_name(base, ".log")).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  base_ = base;
  pos_ = 0;
  if (offset != kFromEnd && offset < base) {  // retention deleted what it asked for
    skipped_ += base - offset;
    next_offset_ = base;
  }
  return true;
}

bool LogTail::advance_segment() {
  // The segment after ours: the smallest base above it (gaps appear after compaction).
  for (auto b : list_bases()) {
    if (b <= base_) continue;
    const int fd = ::open((dir_ + "/" + segment_file_name(b, ".log")).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ::close(fd_);
    fd_ = fd;
    base_ = b;
    pos_ = 0;
    return true;
  }
  return false;
}

bool LogTail::load_batch() {
  records_.clear();
  index_ = 0;
  BatchHeader h{};
  if (!pread_all(fd_, &h, sizeof h, pos_)) return false;  // nothing (whole) there yet
  if (h.magic != kBatchMagic || h.batch_length < sizeof h || h.batch_length > kMaxBatch) return false;
  batch_.resize(h.batch_length);
  if (!pread_all(fd_, batch_.data(), h.batch_length, pos_)) return false;
  // A batch still being written (or torn by a crash, until the daemon's recovery cuts it) fails
  // its CRC: looked at again on the next call.
  if (batch_crc(batch_.data(), h.batch_length) != h.crc) return false;
  const auto err = for_each_record(batch_.data(), h, [&](const RecordView& r) {
    records_.push_back(r);
    return true;
  });
  if (!err.empty()) return false;
  pos_ += h.batch_length;
  return true;
}

bool LogTail::next(RecordView& out) {
  if (!started_) {
    if (!open_segment_for(from_end_ ? ~0ULL - 1 : next_offset_)) {
      if (from_end_) {  // no log yet: everything that comes is new
        from_end_ = false;
        next_offset_ = 0;
      }
      return false;
    }
    started_ = true;
    if (from_end_) {  // skip to the end of what is there now
      next_offset_ = base_;
      while (load_batch())
        if (!records_.empty()) next_offset_ = records_.back().offset + 1;
      records_.clear();
      from_end_ = false;
    }
  }
  for (;;) {
    while (index_ < records_.size()) {
      const RecordView& r = records_[index_++];
      if (r.offset < next_offset_) continue;  // before where we start
      next_offset_ = r.offset + 1;
      out = r;
      return true;
    }
    if (load_batch()) continue;
    if (!advance_segment()) return false;
  }
}

}  // namespace shmbus::log
