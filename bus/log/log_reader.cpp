#include "log/log_reader.hpp"

#include "log/io.hpp"
#include "log/log_format.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace shmbus::log {

namespace {
// Segments one read() may pass before it gives up for this call (it resumes on the next one):
// only gaps or a stale listing make it pass more than one.
constexpr int kMaxHops = 16;
constexpr int kMaxListings = 3;
}  // namespace

LogRangeReader::LogRangeReader(std::string dir) : dir_(std::move(dir)) {}

LogRangeReader::~LogRangeReader() { close_segment(); }

LogRangeReader::Status LogRangeReader::fail(std::string why) {
  error_ = std::move(why);
  resume_valid_ = false;
  return Status::kError;
}

void LogRangeReader::close_segment() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  resume_valid_ = false;
}

bool LogRangeReader::list() {
  bases_.clear();
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return true;  // no log yet
    fail(io::sys_error(errno, "cannot list", dir_).what);
    return false;
  }
  while (const dirent* e = ::readdir(d)) {
    std::uint64_t b = 0;
    if (io::parse_offset_name(e->d_name, ".log", b)) bases_.push_back(b);
  }
  ::closedir(d);
  std::sort(bases_.begin(), bases_.end());
  if (!bases_.empty()) start_ = bases_.front();
  return true;
}

int LogRangeReader::open_segment(std::uint64_t base) {
  const int fd = ::open(io::join(dir_, segment_file_name(base, ".log")).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  close_segment();
  fd_ = fd;
  base_ = base;
  size_seen_ = 0;
  return 0;
}

bool LogRangeReader::header_at(std::uint64_t pos, std::uint64_t base_offset) const {
  BatchHeader h{};
  std::size_t got = 0;
  if (io::pread_upto(fd_, &h, sizeof h, pos, got) != 0 || got != sizeof h) return false;
  return check_batch_header(h, UINT64_MAX).empty() && h.base_offset == base_offset;
}

std::uint64_t LogRangeReader::index_position(std::uint64_t from) {
  const int fd = ::open(io::join(dir_, segment_file_name(base_, ".index")).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const std::int64_t size = io::file_size(fd);
  // Binary search for the last entry with offset <= from, one 16-byte pread per probe.
  std::uint64_t lo = 0, hi = size > 0 ? static_cast<std::uint64_t>(size) / sizeof(IndexEntry) : 0;
  IndexEntry best{0, 0};
  bool found = false;
  while (lo < hi) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    IndexEntry e{};
    std::size_t got = 0;
    if (io::pread_upto(fd, &e, sizeof e, mid * sizeof e, got) != 0 || got != sizeof e) break;
    if (e.offset <= from) {
      best = e;
      found = true;
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  ::close(fd);
  // Trust the entry only if a batch with that base offset starts where it points (a garbage or
  // stale index, e.g. one rebuilt for a compacted file our fd predates, falls back to a scan).
  if (!found || best.offset < base_ || best.position == 0 || !header_at(best.position, best.offset)) return 0;
  return best.position;
}

bool LogRangeReader::replaced() const {
  struct stat mine{}, named{};
  if (::fstat(fd_, &mine) != 0) return true;
  if (::stat(io::join(dir_, segment_file_name(base_, ".log")).c_str(), &named) != 0) return true;
  return mine.st_ino != named.st_ino || mine.st_dev != named.st_dev;
}

LogRangeReader::Status LogRangeReader::locate(std::uint64_t from, int& listings, std::uint64_t& pos) {
  while (listings < kMaxListings) {
    if (!list()) return Status::kError;
    ++listings;
    if (bases_.empty()) return Status::kNothing;
    if (from < bases_.front()) return Status::kBelowStart;
    const std::uint64_t base = *std::prev(std::upper_bound(bases_.begin(), bases_.end(), from));
    if (fd_ < 0 || base_ != base || replaced()) {  // a fresh start takes the file the name holds now
      const int err = open_segment(base);
      if (err == ENOENT) continue;  // deleted since the listing
      if (err != 0) return fail(io::sys_error(err, "cannot open", io::join(dir_, segment_file_name(base, ".log"))).what);
    }
    pos = index_position(from);
    return Status::kOk;
  }
  return Status::kNothing;  // segments keep vanishing under us: try again on the next call
}

LogRangeReader::Walk LogRangeReader::walk(std::uint64_t& pos, std::uint64_t from, std::uint64_t below,
                                          std::uint32_t max_bytes, bool steady, Range& out) {
  const std::int64_t sz = io::file_size(fd_);
  if (sz < 0) {
    error_ = io::sys_error(errno, "cannot stat", io::join(dir_, segment_file_name(base_, ".log"))).what;
    return Walk::kIoError;
  }
  const auto size = static_cast<std::uint64_t>(sz);
  if (steady && (pos > size || size < size_seen_)) return Walk::kStale;  // the writer cut the file back
  size_seen_ = size;
  std::uint64_t total = 0;
  for (;;) {
    if (pos >= size || size - pos < sizeof(BatchHeader)) return total > 0 ? Walk::kFound : Walk::kEnd;
    BatchHeader h{};
    std::size_t got = 0;
    if (const int e = io::pread_upto(fd_, &h, sizeof h, pos, got)) {
      error_ = io::sys_error(e, "cannot read", io::join(dir_, segment_file_name(base_, ".log"))).what;
      return Walk::kIoError;
    }
    if (got != sizeof h) return total > 0 ? Walk::kFound : Walk::kEnd;  // shrank under us
    if (const std::string_view why = check_batch_header(h, UINT64_MAX); !why.empty()) {
      if (total > 0) return Walk::kFound;  // hand out the good ones; the next read reports it
      error_ = io::join(dir_, segment_file_name(base_, ".log")) + ": corrupt batch header at position " +
               std::to_string(pos) + " (" + std::string(why) + ")";
      return Walk::kBad;
    }
    const std::uint64_t last = h.base_offset + h.last_offset_delta;
    if (h.batch_length > size - pos) return total > 0 ? Walk::kFound : Walk::kNotYet;  // being written
    if (last < from) {
      pos += h.batch_length;
      continue;
    }
    if (last >= below) return total > 0 ? Walk::kFound : Walk::kNotYet;  // not published yet
    if (total > 0 && total + h.batch_length > max_bytes) return Walk::kFound;
    if (total == 0) {
      out.fd = fd_;
      out.position = pos;
      out.first_offset = h.base_offset;
    }
    total += h.batch_length;  // <= max(max_bytes, kMaxBatchBytes): fits the u32
    out.length = static_cast<std::uint32_t>(total);
    out.next_offset = last + 1;
    pos += h.batch_length;
    if (total >= max_bytes) return Walk::kFound;
  }
}

LogRangeReader::Status LogRangeReader::read(std::uint64_t from, std::uint64_t below, std::uint32_t max_bytes,
                                            Range& out) {
  out = Range{};
  error_.clear();
  if (from >= below) return Status::kNothing;
  int listings = 0;
  std::uint64_t pos = 0;
  bool steady = fd_ >= 0 && resume_valid_ && from == resume_offset_;
  if (steady) {
    pos = resume_pos_;
  } else if (const Status s = locate(from, listings, pos); s != Status::kOk) {
    return s;
  }
  const auto wait_here = [&] {  // nothing more now: the next read(from) continues at pos
    resume_valid_ = true;
    resume_offset_ = from;
    resume_pos_ = pos;
    return Status::kNothing;
  };
  for (int hop = 0; hop < kMaxHops; ++hop) {
    const Walk w = walk(pos, from, below, max_bytes, steady, out);
    const bool was_steady = std::exchange(steady, false);
    switch (w) {
      case Walk::kFound:
        resume_valid_ = true;
        resume_offset_ = out.next_offset;
        resume_pos_ = pos;
        return Status::kOk;
      case Walk::kNotYet:
        return wait_here();
      case Walk::kIoError:
        resume_valid_ = false;
        return Status::kError;
      case Walk::kStale:
      case Walk::kBad:
        resume_valid_ = false;
        if (!was_steady) return Status::kError;
        // The position we resumed at is no good (the writer truncated): start over from the index.
        if (const Status s = locate(from, listings, pos); s != Status::kOk) return s;
        continue;
      case Walk::kEnd:
        break;
    }
    // The end of this segment's bytes: move on if a later segment exists.
    auto later = std::upper_bound(bases_.begin(), bases_.end(), base_);
    if (later == bases_.end() && listings < kMaxListings) {
      if (!list()) return Status::kError;
      ++listings;
      later = std::upper_bound(bases_.begin(), bases_.end(), base_);
    }
    if (!bases_.empty() && from < bases_.front()) return Status::kBelowStart;  // ours was deleted, and more
    if (later != bases_.end()) {
      // The writer rolled, so this segment is final; but it may have grown between the walk's
      // fstat and the listing that showed the roll: look again before leaving it.
      const std::int64_t sz = io::file_size(fd_);
      if (sz > 0 && static_cast<std::uint64_t>(sz) > size_seen_) continue;
      if (const int err = open_segment(*later); err == ENOENT) {
        if (const Status s = locate(from, listings, pos); s != Status::kOk) return s;
      } else if (err != 0) {
        return fail(io::sys_error(err, "cannot open", io::join(dir_, segment_file_name(*later, ".log"))).what);
      } else {
        pos = 0;
      }
      continue;
    }
    if (replaced()) {  // ours is the newest, yet its name now holds another file (truncate/reset)
      close_segment();
      if (const Status s = locate(from, listings, pos); s != Status::kOk) return s;
      continue;
    }
    return wait_here();
  }
  return wait_here();
}

}  // namespace shmbus::log
