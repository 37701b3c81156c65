// Log::truncate_to: replica truncation. Whole segments past the offset go (newest first), the
// batch holding the offset is cut at its start or, if the offset falls inside it, rewritten in
// place with the records below the offset only, so that log_end_offset() lands exactly there.
#include "log/batch_codec.hpp"
#include "log/batch_reader.hpp"
#include "log/io.hpp"
#include "log/log_impl.hpp"

#include <algorithm>
#include <cerrno>
#include <unistd.h>

namespace shmbus::log {

namespace {

// Position to cut segment s at so that it ends at `offset`; rewrites a batch that straddles it.
LogError cut_position(Log::Impl& L, Segment& s, std::uint64_t offset, std::uint64_t& cut) {
  BatchReader rd(s.log_fd, s.bytes, L.read_buf);
  cut = s.bytes;
  for (std::uint64_t pos = s.position_for(offset);;) {
    const BatchReader::Step st = rd.read(pos, false);
    if (st == BatchReader::Step::kEnd) return {};
    if (st != BatchReader::Step::kBatch)
      return LogError{EIO, s.path(".log") + ": cannot truncate: unreadable batch at position " + std::to_string(pos)};
    const BatchHeader h = rd.header();
    if (h.base_offset >= offset) {
      cut = pos;
      return {};
    }
    if (h.base_offset + h.last_offset_delta >= offset) {
      std::vector<KeptRecord> keep;  // rare path: an allocation is fine here
      (void)for_each_record(rd.data(), h, [&](const RecordView& v) {
        if (v.offset < offset) keep.push_back({static_cast<std::uint32_t>(v.offset - h.base_offset), v.timestamp_ns,
                                               v.attributes, v.key, v.value});
        return v.offset < offset;
      });
      BatchHeader shorter = h;
      shorter.last_offset_delta = static_cast<std::uint32_t>(offset - 1 - h.base_offset);
      if (LogError e = encode_kept(L.enc_buf, keep, shorter)) return e;
      const auto nh = load_at<BatchHeader>(L.enc_buf.data());
      // A crash between this write and the ftruncate leaves a batch whose CRC fails: recovery
      // then cuts at pos, below the requested offset, which a replica re-fetches anyway.
      if (const int e = io::pwrite_all(s.log_fd, L.enc_buf.data(), nh.batch_length, pos))
        return io::sys_error(e, "cannot rewrite a batch of", s.path(".log"));
      cut = pos + nh.batch_length;
      return {};
    }
    pos += h.batch_length;
  }
}

}  // namespace

LogError Log::truncate_to(std::uint64_t offset) {
  Impl& L = *impl_;
  if (offset > L.end_offset())
    return LogError{EINVAL, "cannot truncate " + L.dir + " to " + std::to_string(offset) + ": it ends at " +
                                std::to_string(L.end_offset())};
  if (offset == L.end_offset()) return {};
  if (offset <= L.segs.front().base) {
    while (!L.segs.empty()) L.drop_segment(L.segs.size() - 1);
    if (LogError e = L.roll(offset)) return e;
  } else {
    const std::size_t i = L.segment_for(offset);
    while (L.segs.size() > i + 1) L.drop_segment(L.segs.size() - 1);
    Segment& s = L.segs[i];
    std::uint64_t cut = 0;
    if (LogError e = cut_position(L, s, offset, cut)) return e;
    if (cut == 0 && i > 0) {
      // Nothing of it is left: the segment before it becomes the active one again, as on a log
      // that never rolled here (a replica then rolls where its leader does).
      L.drop_segment(i);
    } else {
      if (LogError e = s.truncate(cut)) return e;
      if (LogError e = L.rescan(s)) return e;
    }
  }
  std::erase_if(L.epochs, [offset](const auto& e) { return e.second >= offset; });
  if (LogError e = L.write_epoch_checkpoint()) return e;
  if (L.recovery_point > L.end_offset()) {
    L.recovery_point = L.end_offset();
    if (LogError e = L.write_recovery_checkpoint()) return e;
  }
  return io::fsync_dir(L.dir);
}

}  // namespace shmbus::log
