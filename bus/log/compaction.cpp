// Log::compact: Kafka-style key compaction of every segment but the active one.
//
// Pass 1 maps each key to its newest offset in those segments (records in the active segment do
// not count yet: it may still be truncated, and the older value must survive that). Pass 2 copies
// each segment to <base>.log.cleaned keeping keyless records, the newest record of each key, and
// tombstones younger than the retention; batches keep their offsets (gaps appear) and a batch
// that loses every record disappears, except the last one of a segment, kept empty so that the
// segment's offset range survives. Crash safety: the .cleaned file is fsync'ed, the segment's
// index files are emptied (so no stale entry can outlive the rename), then it is renamed over
// the .log and the directory fsync'ed. A crash leaves the old or the new .log; open() deletes a
// leftover .cleaned and rebuilds empty indexes.
#include "log/batch_codec.hpp"
#include "log/batch_reader.hpp"
#include "log/io.hpp"
#include "log/log_impl.hpp"

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <unordered_map>

namespace shmbus::log {

namespace {

using KeyMap = std::unordered_map<std::string, std::uint64_t>;

std::string key_of(const RecordView& v) { return {reinterpret_cast<const char*>(v.key.data()), v.key.size()}; }

bool expired(std::int64_t ts, std::int64_t now, std::uint64_t retention_ms) {
  if (now <= ts) return false;
  return retention_ms < UINT64_MAX / 1'000'000 &&
         static_cast<std::uint64_t>(now) - static_cast<std::uint64_t>(ts) > retention_ms * 1'000'000;
}

// Walks the CRC-checked batches of s; fn(reader, pos) per batch. Corruption stops compaction.
template <class Fn>
LogError each_batch(Log::Impl& L, const Segment& s, Fn&& fn) {
  BatchReader rd(s.log_fd, s.bytes, L.read_buf);
  for (std::uint64_t pos = 0;;) {
    const BatchReader::Step st = rd.read(pos, true);
    if (st == BatchReader::Step::kEnd) return {};
    if (st == BatchReader::Step::kIoError) return io::sys_error(rd.error(), "cannot read", s.path(".log"));
    if (st != BatchReader::Step::kBatch || !rd.crc_ok())
      return LogError{EIO, s.path(".log") + ": not compacted: bad batch at position " + std::to_string(pos)};
    if (LogError e = fn(rd, pos)) return e;
    pos += rd.header().batch_length;
  }
}

struct Cleaner {
  Log::Impl& L;
  const KeyMap& newest;
  std::int64_t now;
  std::uint64_t retention_ms;
  Log::CompactionStats& stats;
  std::vector<KeptRecord> keep;

  bool wanted(const RecordView& v) const {
    if (v.key.empty()) return true;
    const auto it = newest.find(key_of(v));
    if (it == newest.end() || it->second != v.offset) return false;
    return (v.attributes & kAttrTombstone) == 0 || !expired(v.timestamp_ns, now, retention_ms);
  }

  // Writes the cleaned copy of s to fd; `out` gets its length.
  LogError copy(const Segment& s, int fd, std::uint64_t& out) {
    out = 0;
    return each_batch(L, s, [&](const BatchReader& rd, std::uint64_t pos) -> LogError {
      const BatchHeader& h = rd.header();
      keep.clear();
      (void)for_each_record(rd.data(), h, [&](const RecordView& v) {
        ++stats.records_before;
        if (wanted(v))
          keep.push_back({static_cast<std::uint32_t>(v.offset - h.base_offset), v.timestamp_ns, v.attributes, v.key,
                          v.value});
        return true;
      });
      stats.records_after += keep.size();
      const bool last = pos + h.batch_length == s.bytes;
      if (keep.empty() && !last) return {};
      const std::byte* bytes = rd.data();
      std::uint32_t len = h.batch_length;
      if (keep.size() != h.record_count) {  // unchanged batches are copied as they are, CRC and all
        if (LogError e = encode_kept(L.enc_buf, keep, h)) return e;
        bytes = L.enc_buf.data();
        len = load_at<BatchHeader>(bytes).batch_length;
      }
      if (const int e = io::pwrite_all(fd, bytes, len, out)) return io::sys_error(e, "cannot write", s.path(".log.cleaned"));
      out += len;
      return {};
    });
  }

  LogError clean(Segment& s) {
    const std::string cleaned = s.path(".log.cleaned");
    const int fd = ::open(cleaned.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return io::sys_error(errno, "cannot create", cleaned);
    std::uint64_t out = 0;
    LogError e = copy(s, fd, out);
    if (!e && out != s.bytes && ::fdatasync(fd) != 0) e = io::sys_error(errno, "cannot fdatasync", cleaned);
    ::close(fd);
    stats.bytes_before += s.bytes;
    stats.bytes_after += e ? s.bytes : out;
    if (e || out == s.bytes) {  // failed, or nothing to remove: keep the original
      ::unlink(cleaned.c_str());
      return e;
    }
    return swap_in(s, cleaned, out);
  }

  LogError swap_in(Segment& s, const std::string& cleaned, std::uint64_t out) {
    s.index.clear();
    s.tindex.clear();
    if (LogError e = s.write_indexes()) return e;
    if (LogError e = s.sync()) return e;
    if (::rename(cleaned.c_str(), s.path(".log").c_str()) != 0) {
      const int err = errno;
      ::unlink(cleaned.c_str());
      (void)L.rescan(s);  // the old .log stays: give it its indexes back
      return io::sys_error(err, "cannot rename over", s.path(".log"));
    }
    if (LogError e = io::fsync_dir(L.dir)) return e;
    if (LogError e = s.reopen_log()) return e;
    s.bytes = out;
    return L.rescan(s);
  }
};

}  // namespace

LogError Log::compact(std::int64_t now_realtime_ns, std::uint64_t tombstone_retention_ms, CompactionStats& stats) {
  Impl& L = *impl_;
  stats = {};
  KeyMap newest;
  for (std::size_t i = 0; i + 1 < L.segs.size(); ++i) {
    LogError e = each_batch(L, L.segs[i], [&](const BatchReader& rd, std::uint64_t) -> LogError {
      (void)for_each_record(rd.data(), rd.header(), [&](const RecordView& v) {
        if (!v.key.empty()) newest[key_of(v)] = v.offset;  // offsets ascend: the last seen is the newest
        return true;
      });
      return {};
    });
    if (e) return e;
  }
  Cleaner c{L, newest, now_realtime_ns, tombstone_retention_ms, stats, {}};
  for (std::size_t i = 0; i + 1 < L.segs.size(); ++i)
    if (LogError e = c.clean(L.segs[i])) return e;
  return {};
}

}  // namespace shmbus::log
