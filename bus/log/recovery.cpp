// Log::open: the directory is cleaned of leftovers, refused if a newer format wrote it, then every
// segment is loaded. Segments wholly below the recovery point were fsync'ed, so only their indexes
// are checked (and the few batch headers after the last index entry read); from the segment that
// holds the recovery point on, every batch is validated (header, CRC32C, records, increasing
// offsets). The first bad batch and everything after it are cut off.
#include "log/batch_codec.hpp"
#include "log/batch_reader.hpp"
#include "log/io.hpp"
#include "log/log_impl.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <set>
#include <unistd.h>

namespace shmbus::log {

namespace {

struct Cut {
  bool found = false;
  std::size_t seg = 0;
  std::uint64_t position = 0;
  std::uint64_t offset = 0;
  std::string reason;
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Temporary files this code writes; others' files in the directory (the daemon's) are left alone.
bool is_our_temporary(std::string_view n) {
  std::uint64_t b = 0;
  if (ends_with(n, ".log.cleaned")) return io::parse_offset_name(n.substr(0, n.size() - 8), ".log", b);
  if (!ends_with(n, ".tmp")) return false;
  const std::string_view stem = n.substr(0, n.size() - 4);
  return stem == kRecoveryCheckpoint || stem == kEpochCheckpoint || io::parse_offset_name(stem, ".snapshot", b);
}

LogError newer_version_error(const std::string& path, std::uint64_t position, unsigned version) {
  return LogError{EPROTONOSUPPORT, path + ": written by a newer shmbus (format version " + std::to_string(version) +
                                       " at position " + std::to_string(position) + ", this build reads up to " +
                                       std::to_string(kLogFormatVersion) +
                                       "); upgrade shmbus, or if the file is damaged inspect it with "
                                       "`shmbus dump-log` and move it away"};
}

// Reads the first bytes of a file: the version check must come before anything is modified.
template <class Header>
bool read_header(const std::string& path, Header& h) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t got = 0;
  const bool ok = io::pread_upto(fd, &h, sizeof h, 0, got) == 0 && got == sizeof h;
  ::close(fd);
  return ok;
}

// Creates the directory, removes what an interrupted operation left (our *.tmp, *.log.cleaned,
// index files without a .log), refuses a newer format, and returns the segment bases in order.
LogError prepare_dir(const std::string& dir, std::vector<std::uint64_t>& bases) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io::sys_error(ec.value(), "cannot create log directory", dir);
  const std::vector<std::string> names = io::list_dir(dir);
  std::set<std::uint64_t> logs;
  // The version check comes first: nothing is touched in a directory this build must refuse.
  for (const std::string& n : names) {
    const std::string path = io::join(dir, n);
    std::uint64_t b = 0;
    if (io::parse_offset_name(n, ".log", b)) {
      logs.insert(b);
      BatchHeader h{};
      if (read_header(path, h) && h.magic == kBatchMagic && h.version > kLogFormatVersion)
        return newer_version_error(path, 0, h.version);
    } else if (io::parse_offset_name(n, ".snapshot", b)) {
      SnapshotHeader h{};
      if (read_header(path, h) && h.magic == kSnapshotMagic && h.version > kLogFormatVersion)
        return newer_version_error(path, 0, h.version);
    }
  }
  for (const std::string& n : names) {
    const std::string path = io::join(dir, n);
    std::uint64_t b = 0;
    if (is_our_temporary(n)) {
      ::unlink(path.c_str());  // never renamed into place: the original is intact
    } else if (io::parse_offset_name(n, ".index", b) || io::parse_offset_name(n, ".timeindex", b)) {
      if (!logs.contains(b)) ::unlink(path.c_str());  // a deletion interrupted after its .log went
    }
  }
  bases.assign(logs.begin(), logs.end());
  return {};
}

// Trusts a flushed segment's indexes if they hang together; false if it must be fully validated.
bool load_flushed(Log::Impl& L, Segment& s, std::uint64_t size) {
  if (!s.load_indexes(size)) return false;
  std::vector<IndexEntry> index = std::move(s.index);
  std::vector<TimeIndexEntry> tindex = std::move(s.tindex);
  s.reset_state();
  BatchReader rd(s.log_fd, size, L.read_buf);
  if (size > 0) {
    if (rd.read(0, false) != BatchReader::Step::kBatch) return false;
    s.roll_ts = rd.header().max_timestamp;
  }
  std::uint64_t pos = index.empty() ? 0 : index.back().position;
  s.max_ts = tindex.empty() ? Segment::kNoTimestamp : tindex.back().timestamp;
  s.next_offset = index.empty() ? s.base : index.back().offset;
  s.index = std::move(index);
  s.tindex = std::move(tindex);
  bool first = true;
  for (;;) {
    const BatchReader::Step st = rd.read(pos, false);
    if (st == BatchReader::Step::kEnd) return true;
    if (st != BatchReader::Step::kBatch) return false;
    const BatchHeader& h = rd.header();
    if (first && !s.index.empty() && h.base_offset != s.index.back().offset) return false;
    const std::size_t n = s.index.size();
    s.absorb(h, pos, L.cfg.index_interval_bytes);
    if (s.index.size() != n) return false;  // the index missed an entry: rebuild it
    first = false;
    pos += h.batch_length;
  }
}

template <class T>
bool same_entries(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// Checks the on-disk index entry (if any) that should sit at this batch; a mismatch is damage.
struct IndexAudit {
  const std::vector<IndexEntry>& index;
  const std::vector<TimeIndexEntry>& tindex;
  std::size_t next = 0;
  bool damaged = false;
  void batch(const BatchHeader& h, std::uint64_t pos, std::int64_t running_max) {
    if (next < index.size() && index[next].position < pos) damaged = true;  // pointed inside a batch
    if (next < index.size() && index[next].position == pos) {
      if (index[next].offset != h.base_offset || tindex[next].timestamp != running_max) damaged = true;
      ++next;
    }
  }
};

// Validates every batch of segs[i]; re-learns its state and indexes; sets cut at the first bad one.
LogError validate(Log::Impl& L, std::size_t i, bool index_files_present, RecoveryReport& r, Cut& cut) {
  Segment& s = L.segs[i];
  const std::int64_t size = io::file_size(s.log_fd);
  if (size < 0) return io::sys_error(errno, "cannot stat", s.path(".log"));
  const bool disk_ok = index_files_present && s.load_indexes(static_cast<std::uint64_t>(size));
  if (!disk_ok) {  // whatever was read is not to be trusted, not even its length
    s.index.clear();
    s.tindex.clear();
  }
  const std::vector<IndexEntry> old_index = std::move(s.index);
  const std::vector<TimeIndexEntry> old_tindex = std::move(s.tindex);
  IndexAudit audit{old_index, old_tindex};
  s.reset_state();
  std::uint64_t min_next = std::max(s.base, i > 0 ? L.segs[i - 1].next_offset : 0);
  std::uint64_t pos = 0;
  BatchReader rd(s.log_fd, static_cast<std::uint64_t>(size), L.read_buf);
  for (;;) {
    const BatchReader::Step st = rd.read(pos, true);
    if (st == BatchReader::Step::kEnd) break;
    if (st == BatchReader::Step::kIoError) return io::sys_error(rd.error(), "cannot read", s.path(".log"));
    if (st == BatchReader::Step::kNewerVersion) return newer_version_error(s.path(".log"), pos, rd.header().version);
    const BatchHeader& h = rd.header();
    std::string_view why = st == BatchReader::Step::kBad ? rd.why() : std::string_view{};
    if (why.empty() && !rd.crc_ok()) why = "crc mismatch";
    if (why.empty() && h.base_offset < min_next) why = "offsets not increasing";
    if (why.empty()) why = for_each_record(rd.data(), h, [](const RecordView&) { return true; });
    if (!why.empty()) {
      cut = Cut{true, i, pos, std::max(s.next_offset, min_next), std::string(why)};
      break;
    }
    if (h.base_offset + h.last_offset_delta >= L.recovery_point) {
      ++r.batches_checked;
      r.records_recovered += h.record_count;
    }
    audit.batch(h, pos, std::max(s.max_ts, h.max_timestamp));
    s.absorb(h, pos, L.cfg.index_interval_bytes);
    min_next = s.next_offset;
    pos += h.batch_length;
  }
  const bool damaged = !disk_ok || audit.damaged || (!cut.found && audit.next != old_index.size());
  if (damaged) ++r.indexes_rebuilt;
  if (damaged || !same_entries(old_index, s.index) || !same_entries(old_tindex, s.tindex)) return s.write_indexes();
  return {};
}

LogError apply_cut(Log::Impl& L, const Cut& cut, RecoveryReport& r) {
  Segment& s = L.segs[cut.seg];
  const std::int64_t size = io::file_size(s.log_fd);
  r.truncated = true;
  r.truncated_file = s.path(".log");
  r.truncated_at_offset = cut.offset;
  r.truncated_at_position = cut.position;
  r.reason = cut.reason;
  r.bytes_dropped = size > 0 ? static_cast<std::uint64_t>(size) - cut.position : 0;
  if (LogError e = s.truncate(cut.position)) return e;
  // Newest first, so that a crash in between leaves a log with a clean end, never a hole.
  while (L.segs.size() > cut.seg + 1) {
    const std::int64_t later = io::file_size(L.segs.back().log_fd);
    r.bytes_dropped += later > 0 ? static_cast<std::uint64_t>(later) : 0;
    ++r.segments_dropped;
    L.drop_segment(L.segs.size() - 1);
  }
  return io::fsync_dir(L.dir);
}

LogError load_segments(Log::Impl& L, const std::vector<std::uint64_t>& bases, RecoveryReport& r) {
  std::size_t k = 0;  // the segment holding the recovery point: validated from here on
  for (std::size_t i = 0; i < bases.size(); ++i)
    if (bases[i] <= L.recovery_point) k = i;
  Cut cut;
  for (std::size_t i = 0; i < bases.size() && !cut.found; ++i) {
    Segment s;
    const bool present = ::access(io::join(L.dir, segment_file_name(bases[i], ".index")).c_str(), F_OK) == 0 &&
                         ::access(io::join(L.dir, segment_file_name(bases[i], ".timeindex")).c_str(), F_OK) == 0;
    if (LogError e = Segment::open(L.dir, bases[i], s)) return e;
    L.segs.push_back(std::move(s));
    if (i < k && present) {
      const std::int64_t size = io::file_size(L.segs[i].log_fd);
      if (size >= 0 && load_flushed(L, L.segs[i], static_cast<std::uint64_t>(size))) continue;
    }
    if (LogError e = validate(L, i, present, r, cut)) return e;
  }
  if (cut.found) {
    for (std::size_t i = L.segs.size(); i < bases.size(); ++i) {  // never opened: after the damage
      Segment s;
      if (Segment::open(L.dir, bases[i], s)) continue;
      L.segs.push_back(std::move(s));
    }
    if (LogError e = apply_cut(L, cut, r)) return e;
  }
  for (std::size_t i = k; i < L.segs.size(); ++i) L.segs[i].log_dirty = L.segs[i].index_dirty = true;  // maybe only in the page cache
  return {};
}

// After a cut the recovery point and the epochs may point past the end: bring them back.
LogError settle_checkpoints(Log::Impl& L) {
  const std::uint64_t end = L.end_offset();
  if (L.recovery_point > end) {
    L.recovery_point = end;
    if (LogError e = L.write_recovery_checkpoint()) return e;
  }
  const auto n = L.epochs.size();
  std::erase_if(L.epochs, [end](const auto& e) { return e.second > end; });
  if (L.epochs.size() != n) return L.write_epoch_checkpoint();
  return {};
}

}  // namespace

std::unique_ptr<Log> Log::open(const std::string& dir, const LogConfig& cfg, RecoveryReport* report, LogError& err) {
  err = {};
  RecoveryReport local;
  RecoveryReport& r = report != nullptr ? *report : local;
  r = RecoveryReport{};
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->cfg = cfg;
  std::vector<std::uint64_t> bases;
  err = prepare_dir(dir, bases);
  if (!err) err = impl->read_checkpoints();
  if (!err) err = load_segments(*impl, bases, r);
  if (!err && impl->segs.empty()) err = impl->roll(impl->recovery_point);  // a new log
  if (!err) err = settle_checkpoints(*impl);
  if (err) return nullptr;
  r.segments = static_cast<std::uint32_t>(impl->segs.size());
  return std::unique_ptr<Log>(new Log(std::move(impl)));
}

}  // namespace shmbus::log
