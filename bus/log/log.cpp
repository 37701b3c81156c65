// The Log's steady-state operations: append (one pwrite per batch, rolling first when due), flush,
// reads through the sparse index, time lookups, retention, and epochs. Open/recovery is in
// recovery.cpp, compaction in compaction.cpp, truncation in truncate.cpp.
#include "log/batch_codec.hpp"
#include "log/batch_reader.hpp"
#include "log/io.hpp"
#include "log/log_impl.hpp"

#include <algorithm>
#include <cerrno>
#include <ctime>

namespace shmbus::log {

namespace {

constexpr std::uint64_t kNsPerMs = 1'000'000;

std::int64_t mono_now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Whether `later` is more than `ms` milliseconds after `earlier` (no overflow for any inputs).
bool older_than(std::int64_t earlier, std::int64_t later, std::uint64_t ms) noexcept {
  if (later <= earlier) return false;
  const std::uint64_t diff = static_cast<std::uint64_t>(later) - static_cast<std::uint64_t>(earlier);
  return ms < UINT64_MAX / kNsPerMs && diff > ms * kNsPerMs;
}

LogError corrupt(const Segment& s, std::uint64_t pos, std::string_view why) {
  return LogError{EIO, s.path(".log") + ": corrupt batch at position " + std::to_string(pos) + " (" +
                           std::string(why) + ")"};
}

}  // namespace

std::size_t Log::Impl::segment_for(std::uint64_t offset) const noexcept {
  const auto it = std::upper_bound(segs.begin(), segs.end(), offset,
                                   [](std::uint64_t o, const Segment& s) { return o < s.base; });
  return it == segs.begin() ? 0 : static_cast<std::size_t>(it - segs.begin()) - 1;
}

LogError Log::Impl::roll(std::uint64_t base) {
  Segment s;
  if (LogError e = Segment::create(dir, base, s)) return e;
  segs.push_back(std::move(s));
  dir_dirty = true;
  checkpoint_due = true;  // the next flush moves the checkpoint into the new segment
  return {};
}

void Log::Impl::drop_segment(std::size_t i) {
  segs[i].remove_files();
  segs.erase(segs.begin() + static_cast<std::ptrdiff_t>(i));
  dir_dirty = true;
}

LogError Log::Impl::rescan(Segment& s) {
  const std::uint64_t end = s.bytes;
  s.reset_state();
  BatchReader rd(s.log_fd, end, read_buf);
  for (std::uint64_t pos = 0;;) {
    const BatchReader::Step st = rd.read(pos, false);
    if (st == BatchReader::Step::kEnd) break;
    if (st == BatchReader::Step::kIoError) return io::sys_error(rd.error(), "cannot read", s.path(".log"));
    if (st != BatchReader::Step::kBatch) return corrupt(s, pos, rd.why());
    s.absorb(rd.header(), pos, cfg.index_interval_bytes);
    pos += rd.header().batch_length;
  }
  return s.write_indexes();
}

LogError Log::Impl::flush(Checkpoint mode) {
  // The durable part: one fdatasync per .log written since its last sync (the active one, plus a
  // rolled one not synced yet). The indexes are derived data (recovery rebuilds them) and the
  // checkpoint only shortens recovery, so neither is on this path.
  for (Segment& s : segs)
    if (LogError e = s.sync_log()) return e;
  if (dir_dirty) {  // a created segment must survive as a name, too
    if (LogError e = io::fsync_dir(dir)) return e;
    dir_dirty = false;
  }
  recovery_point = end_offset();
  if (checkpointed == recovery_point || mode == Checkpoint::kDefer) return {};
  const std::int64_t now = mono_now_ns();
  const bool force = mode == Checkpoint::kNow;
  const bool due = force || checkpoint_due || cfg.checkpoint_interval_ms == 0 ||
                   now - checkpoint_ns >= static_cast<std::int64_t>(cfg.checkpoint_interval_ms) * 1'000'000;
  if (!due) return {};
  checkpoint_ns = now;
  LogError e = checkpoint();
  // A lazy checkpoint that fails costs recovery time, not data: the records are on disk, so the
  // flush succeeds and the next one tries again. A forced one reports the error.
  checkpoint_due = static_cast<bool>(e);
  return force ? e : LogError{};
}

LogError Log::Impl::checkpoint() {
  // Segments below the new recovery point get their indexes trusted at open: sync them first.
  for (Segment& s : segs)
    if (LogError e = s.sync_indexes()) return e;
  return write_recovery_checkpoint();
}

Log::Log(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Log::~Log() {
  // A clean close is a flush, so that the next open validates nothing; errors have nowhere to go
  // and cost only a longer recovery.
  if (impl_) (void)impl_->flush(Checkpoint::kNow);
}

LogError Log::append(std::span<const AppendRecord> records, std::uint32_t leader_epoch, std::uint64_t& base) {
  Impl& L = *impl_;
  const std::uint64_t b = L.end_offset();
  if (LogError e = encode_batch(L.enc_buf, records, b, leader_epoch)) return e;
  if (LogError e = L.write_batch(L.enc_buf.data(), load_at<BatchHeader>(L.enc_buf.data()))) return e;
  base = b;
  return {};
}

LogError Log::Impl::write_batch(const std::byte* batch, const BatchHeader& h) {
  const Segment& a = active();
  const bool rolled = !a.empty() && (a.bytes + h.batch_length > cfg.segment_bytes ||
                                     older_than(a.roll_ts, h.max_timestamp, cfg.segment_ms));
  if (rolled)
    if (LogError e = roll(h.base_offset)) return e;
  if (LogError e = active().append(batch, h, cfg.index_interval_bytes)) {
    if (rolled) drop_segment(segs.size() - 1);  // as it was: the old active segment again
    return e;
  }
  return {};
}

LogError Log::flush(Checkpoint checkpoint) { return impl_->flush(checkpoint); }

std::uint64_t Log::log_start_offset() const noexcept { return impl_->segs.front().base; }
std::uint64_t Log::log_end_offset() const noexcept { return impl_->end_offset(); }
std::uint64_t Log::recovery_point() const noexcept { return impl_->recovery_point; }
const std::string& Log::dir() const noexcept { return impl_->dir; }

std::uint64_t Log::size_bytes() const noexcept {
  std::uint64_t n = 0;
  for (const Segment& s : impl_->segs) n += s.bytes;
  return n;
}

std::vector<SegmentInfo> Log::segments() const {
  std::vector<SegmentInfo> v;
  v.reserve(impl_->segs.size());
  for (const Segment& s : impl_->segs) v.push_back(s.info());
  return v;
}

LogError Log::read(std::uint64_t from, std::uint64_t max_bytes, const std::function<bool(const RecordView&)>& fn) const {
  const Impl& L = *impl_;
  std::uint64_t consumed = 0;
  for (std::size_t i = L.segment_for(from); i < L.segs.size(); ++i) {
    const Segment& s = L.segs[i];
    if (s.next_offset <= from) continue;
    BatchReader rd(s.log_fd, s.bytes, L.read_buf);
    for (std::uint64_t pos = s.position_for(from);;) {
      const BatchReader::Step st = rd.read(pos, true);
      if (st == BatchReader::Step::kEnd) break;
      if (st == BatchReader::Step::kIoError) return io::sys_error(rd.error(), "cannot read", s.path(".log"));
      if (st != BatchReader::Step::kBatch) return corrupt(s, pos, rd.why());
      if (!rd.crc_ok()) return corrupt(s, pos, "crc mismatch");
      const BatchHeader& h = rd.header();
      pos += h.batch_length;
      if (h.base_offset + h.last_offset_delta < from) continue;
      bool stop = false;
      const std::string_view why = for_each_record(rd.data(), h, [&](const RecordView& v) {
        if (v.offset < from) return true;
        stop = !fn(v);
        return !stop;
      });
      if (!why.empty()) return corrupt(s, pos - h.batch_length, why);
      consumed += h.batch_length;
      if (stop || (max_bytes != 0 && consumed >= max_bytes)) return {};
    }
  }
  return {};
}

std::uint64_t Log::offset_for_time(std::int64_t ts_ns) const {
  const Impl& L = *impl_;
  for (const Segment& s : L.segs) {
    if (s.empty() || s.max_ts < ts_ns) continue;
    BatchReader rd(s.log_fd, s.bytes, L.read_buf);
    for (std::uint64_t pos = s.position_for(s.offset_before_time(ts_ns));;) {
      if (rd.read(pos, false) != BatchReader::Step::kBatch) break;
      const BatchHeader& h = rd.header();
      pos += h.batch_length;
      if (h.max_timestamp < ts_ns) continue;  // the header says no record of it qualifies
      std::uint64_t found = UINT64_MAX;
      (void)for_each_record(rd.data(), h, [&](const RecordView& v) {
        if (v.timestamp_ns < ts_ns) return true;
        found = v.offset;
        return false;
      });
      if (found != UINT64_MAX) return found;
    }
  }
  return L.end_offset();
}

std::uint32_t Log::apply_retention(std::int64_t now_realtime_ns) {
  Impl& L = *impl_;
  std::uint32_t n = 0;
  if (L.cfg.retention_bytes > 0) {
    // Kafka's rule: drop the oldest segment while what remains is still at least retention_bytes.
    std::uint64_t total = size_bytes();
    while (L.segs.size() > 1 && total - L.segs.front().bytes >= L.cfg.retention_bytes) {
      total -= L.segs.front().bytes;
      L.drop_segment(0);
      ++n;
    }
  }
  if (L.cfg.retention_ms > 0) {
    while (L.segs.size() > 1 && (L.segs.front().max_ts == Segment::kNoTimestamp ||
                                 older_than(L.segs.front().max_ts, now_realtime_ns, L.cfg.retention_ms))) {
      L.drop_segment(0);
      ++n;
    }
  }
  return n;
}

std::uint32_t Log::delete_segments_below(std::uint64_t offset) {
  Impl& L = *impl_;
  std::uint32_t n = 0;
  while (L.segs.size() > 1 && L.segs.front().next_offset <= offset) {
    L.drop_segment(0);
    ++n;
  }
  return n;
}

LogError Log::assign_epoch(std::uint32_t epoch) {
  Impl& L = *impl_;
  if (!L.epochs.empty() && epoch == L.epochs.back().first) return {};
  if (!L.epochs.empty() && epoch < L.epochs.back().first)
    return LogError{EINVAL, "leader epoch " + std::to_string(epoch) + " is older than the latest, " +
                                std::to_string(L.epochs.back().first)};
  return L.begin_epoch(epoch, L.end_offset());
}

LogError Log::Impl::begin_epoch(std::uint32_t epoch, std::uint64_t start) {
  if (!epochs.empty() && epochs.back().first == epoch && epochs.back().second <= start) return {};
  const auto saved = epochs;
  // An epoch that started at or past the end holds no records: it is superseded (Kafka does the
  // same). Past the end only happens when append_raw's write of an epoch's first batch failed.
  while (!epochs.empty() && epochs.back().second >= end_offset()) epochs.pop_back();
  if (!epochs.empty() && epochs.back().first > epoch) {
    const std::uint32_t latest = epochs.back().first;
    epochs = saved;
    return LogError{EPROTO, "leader epoch " + std::to_string(epoch) + " is older than epoch " +
                                std::to_string(latest) + ", the latest this log holds records of"};
  }
  if (epochs.empty() || epochs.back().first < epoch) epochs.emplace_back(epoch, start);  // else it continues
  LogError e = write_epoch_checkpoint();
  if (e) epochs = saved;
  return e;
}

std::vector<std::pair<std::uint32_t, std::uint64_t>> Log::epochs() const { return impl_->epochs; }

}  // namespace shmbus::log
