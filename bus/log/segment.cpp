#include "log/segment.hpp"

#include "log/io.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <unistd.h>
#include <utility>

namespace shmbus::log {

namespace {

int open_file(const std::string& path, int flags) { return ::open(path.c_str(), flags | O_CLOEXEC, 0644); }

template <class T>
bool read_entries(int fd, std::vector<T>& out) {
  const std::int64_t size = io::file_size(fd);
  if (size < 0 || size % static_cast<std::int64_t>(sizeof(T)) != 0) return false;
  out.resize(static_cast<std::size_t>(size) / sizeof(T));
  std::size_t got = 0;
  return io::pread_upto(fd, out.data(), static_cast<std::size_t>(size), 0, got) == 0 &&
         got == static_cast<std::size_t>(size);
}

template <class T>
int write_entries(int fd, const std::vector<T>& v) {
  const std::size_t n = v.size() * sizeof(T);
  if (const int e = io::pwrite_all(fd, v.data(), n, 0)) return e;
  return ::ftruncate(fd, static_cast<off_t>(n)) == 0 ? 0 : errno;
}

}  // namespace

Segment::~Segment() { close_all(); }

Segment::Segment(Segment&& o) noexcept { *this = std::move(o); }

Segment& Segment::operator=(Segment&& o) noexcept {
  if (this == &o) return *this;
  close_all();
  dir = std::move(o.dir);
  base = o.base;
  next_offset = o.next_offset;
  bytes = o.bytes;
  max_ts = o.max_ts;
  roll_ts = o.roll_ts;
  since_index = o.since_index;
  log_dirty = o.log_dirty;
  index_dirty = o.index_dirty;
  index = std::move(o.index);
  tindex = std::move(o.tindex);
  log_fd = std::exchange(o.log_fd, -1);
  index_fd = std::exchange(o.index_fd, -1);
  time_fd = std::exchange(o.time_fd, -1);
  return *this;
}

void Segment::close_all() noexcept {
  for (int* fd : {&log_fd, &index_fd, &time_fd})
    if (*fd >= 0) ::close(std::exchange(*fd, -1));
}

std::string Segment::path(const char* ext) const { return io::join(dir, segment_file_name(base, ext)); }

LogError Segment::create(const std::string& dir, std::uint64_t base, Segment& out) {
  Segment s;
  s.dir = dir;
  s.base = s.next_offset = base;
  s.log_fd = open_file(s.path(".log"), O_RDWR | O_CREAT | O_TRUNC);
  if (s.log_fd < 0) return io::sys_error(errno, "cannot create", s.path(".log"));
  s.index_fd = open_file(s.path(".index"), O_RDWR | O_CREAT | O_TRUNC);
  if (s.index_fd < 0) {
    const LogError e = io::sys_error(errno, "cannot create", s.path(".index"));
    s.remove_files();
    return e;
  }
  s.time_fd = open_file(s.path(".timeindex"), O_RDWR | O_CREAT | O_TRUNC);
  if (s.time_fd < 0) {
    const LogError e = io::sys_error(errno, "cannot create", s.path(".timeindex"));
    s.remove_files();
    return e;
  }
  s.log_dirty = s.index_dirty = true;
  out = std::move(s);
  return {};
}

LogError Segment::open(const std::string& dir, std::uint64_t base, Segment& out) {
  Segment s;
  s.dir = dir;
  s.base = s.next_offset = base;
  s.log_fd = open_file(s.path(".log"), O_RDWR);
  if (s.log_fd < 0) return io::sys_error(errno, "cannot open", s.path(".log"));
  s.index_fd = open_file(s.path(".index"), O_RDWR | O_CREAT);
  if (s.index_fd < 0) return io::sys_error(errno, "cannot open", s.path(".index"));
  s.time_fd = open_file(s.path(".timeindex"), O_RDWR | O_CREAT);
  if (s.time_fd < 0) return io::sys_error(errno, "cannot open", s.path(".timeindex"));
  out = std::move(s);
  return {};
}

LogError Segment::reopen_log() {
  const int fd = open_file(path(".log"), O_RDWR);
  if (fd < 0) return io::sys_error(errno, "cannot reopen", path(".log"));
  if (log_fd >= 0) ::close(log_fd);
  log_fd = fd;
  return {};
}

bool Segment::note_index(const BatchHeader& h, std::uint64_t pos, std::uint32_t interval) {
  // Kafka's rule: an entry once more than `interval` bytes were written since the last one; the
  // batch at position 0 needs none (a lookup below the first entry starts at 0).
  const bool add = pos > 0 && since_index > interval;
  if (add) {
    index.push_back(IndexEntry{h.base_offset, pos});
    tindex.push_back(TimeIndexEntry{std::max(max_ts, h.max_timestamp), h.base_offset});
    since_index = 0;
  }
  since_index += h.batch_length;
  return add;
}

void Segment::reset_state() {
  next_offset = base;
  bytes = 0;
  max_ts = roll_ts = kNoTimestamp;
  since_index = 0;
  index.clear();
  tindex.clear();
}

void Segment::absorb(const BatchHeader& h, std::uint64_t pos, std::uint32_t interval) {
  note_index(h, pos, interval);
  next_offset = h.base_offset + h.last_offset_delta + 1;
  bytes = pos + h.batch_length;
  if (roll_ts == kNoTimestamp) roll_ts = h.max_timestamp;
  max_ts = std::max(max_ts, h.max_timestamp);
}

LogError Segment::append(const std::byte* batch, const BatchHeader& h, std::uint32_t interval) {
  const std::uint64_t pos = bytes;
  const std::size_t old_entries = index.size();
  const std::uint64_t old_since = since_index;
  log_dirty = true;  // even a failed write may have reached the file before it was cut back
  int e = io::pwrite_all(log_fd, batch, h.batch_length, pos);
  if (e == 0 && note_index(h, pos, interval)) {
    index_dirty = true;
    const std::uint64_t at = old_entries * sizeof(IndexEntry);
    e = io::pwrite_all(index_fd, &index.back(), sizeof(IndexEntry), at);
    if (e == 0) e = io::pwrite_all(time_fd, &tindex.back(), sizeof(TimeIndexEntry), at);
  }
  if (e != 0) {
    // Cut back whatever reached the files: the log must be exactly as before, and a retry must
    // write at the same position. ftruncate to a smaller size needs no space, so it works on a
    // full disk.
    index_dirty = index_dirty || index.size() != old_entries;
    (void)!::ftruncate(log_fd, static_cast<off_t>(pos));
    (void)!::ftruncate(index_fd, static_cast<off_t>(old_entries * sizeof(IndexEntry)));
    (void)!::ftruncate(time_fd, static_cast<off_t>(old_entries * sizeof(TimeIndexEntry)));
    index.resize(old_entries);
    tindex.resize(old_entries);
    since_index = old_since;
    return io::sys_error(e, "cannot append to", path(".log"));
  }
  next_offset = h.base_offset + h.last_offset_delta + 1;
  bytes = pos + h.batch_length;
  if (roll_ts == kNoTimestamp) roll_ts = h.max_timestamp;
  max_ts = std::max(max_ts, h.max_timestamp);
  return {};
}

bool Segment::load_indexes(std::uint64_t log_size) {
  if (!read_entries(index_fd, index) || !read_entries(time_fd, tindex) || index.size() != tindex.size()) return false;
  for (std::size_t i = 0; i < index.size(); ++i) {
    const IndexEntry& e = index[i];
    if (e.offset < base || e.position == 0 || e.position >= log_size || tindex[i].offset != e.offset) return false;
    if (i > 0 && (e.offset <= index[i - 1].offset || e.position <= index[i - 1].position ||
                  tindex[i].timestamp < tindex[i - 1].timestamp))
      return false;
  }
  return true;
}

LogError Segment::write_indexes() {
  index_dirty = true;
  if (const int e = write_entries(index_fd, index)) return io::sys_error(e, "cannot write", path(".index"));
  if (const int e = write_entries(time_fd, tindex)) return io::sys_error(e, "cannot write", path(".timeindex"));
  return {};
}

LogError Segment::truncate(std::uint64_t position) {
  if (::ftruncate(log_fd, static_cast<off_t>(position)) != 0) return io::sys_error(errno, "cannot truncate", path(".log"));
  bytes = position;
  const auto keep = static_cast<std::size_t>(
      std::lower_bound(index.begin(), index.end(), position,
                       [](const IndexEntry& e, std::uint64_t p) { return e.position < p; }) -
      index.begin());
  index.resize(keep);
  tindex.resize(keep);
  log_dirty = true;
  return write_indexes();
}

LogError Segment::sync_log() {
  if (!log_dirty) return {};
  if (::fdatasync(log_fd) != 0) return io::sys_error(errno, "cannot fdatasync", path(".log"));
  log_dirty = false;
  return {};
}

LogError Segment::sync_indexes() {
  if (!index_dirty) return {};
  if (::fdatasync(index_fd) != 0) return io::sys_error(errno, "cannot fdatasync", path(".index"));
  if (::fdatasync(time_fd) != 0) return io::sys_error(errno, "cannot fdatasync", path(".timeindex"));
  index_dirty = false;
  return {};
}

LogError Segment::sync() {
  if (LogError e = sync_log()) return e;
  return sync_indexes();
}

void Segment::remove_files() {
  close_all();
  // The .log first: a crash in between leaves orphan index files, which open() deletes.
  ::unlink(path(".log").c_str());
  ::unlink(path(".index").c_str());
  ::unlink(path(".timeindex").c_str());
}

std::uint64_t Segment::position_for(std::uint64_t offset) const noexcept {
  const auto it = std::upper_bound(index.begin(), index.end(), offset,
                                   [](std::uint64_t o, const IndexEntry& e) { return o < e.offset; });
  return it == index.begin() ? 0 : std::prev(it)->position;
}

std::uint64_t Segment::offset_before_time(std::int64_t ts) const noexcept {
  // Entries hold running maxima, so they are sorted: every record before the batch of the last
  // entry below ts is older than ts.
  const auto it = std::lower_bound(tindex.begin(), tindex.end(), ts,
                                   [](const TimeIndexEntry& e, std::int64_t t) { return e.timestamp < t; });
  return it == tindex.begin() ? base : std::prev(it)->offset;
}

SegmentInfo Segment::info() const noexcept {
  return SegmentInfo{base, next_offset, bytes, max_ts == kNoTimestamp ? 0 : max_ts};
}

}  // namespace shmbus::log
