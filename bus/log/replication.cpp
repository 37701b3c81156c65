// The follower side of log replication: Log::append_raw (batches copied byte for byte from a
// leader), Log::reset_to (start over at the leader's offset), and end_offset_for_epoch (KIP-101's
// OffsetsForLeaderEpoch answer, which tells a follower where its log diverges from the leader's).
#include "log/batch_codec.hpp"
#include "log/io.hpp"
#include "log/log_impl.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <iterator>
#include <utility>

namespace shmbus::log {

namespace {

// A batch of the span that passed validation and is to be written.
struct Planned {
  std::size_t position;  // in the span
  BatchHeader header;
};

LogError at_byte(int code, std::size_t position, const std::string& why) {
  return LogError{code, "batch at byte " + std::to_string(position) + " of the fetched data: " + why};
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Why the batch at `pos` cannot be a batch ("" if it checks out), with the errno to report.
std::string check_bytes(std::span<const std::byte> all, std::size_t pos, BatchHeader& h, int& code) {
  const std::size_t left = all.size() - pos;
  code = EBADMSG;
  if (left < sizeof(BatchHeader))
    return "truncated batch header (" + std::to_string(left) + " bytes left, a header is " +
           std::to_string(sizeof(BatchHeader)) + ")";
  h = load_at<BatchHeader>(all.data() + pos);
  if (h.magic != kBatchMagic) return "bad magic " + hex32(h.magic) + " (expected " + hex32(kBatchMagic) + ")";
  if (h.batch_length < sizeof(BatchHeader) || h.batch_length > kMaxBatchBytes)
    return "bad batch length " + std::to_string(h.batch_length);
  if (h.batch_length > left)
    return "truncated batch (batch_length " + std::to_string(h.batch_length) + ", only " + std::to_string(left) +
           " bytes left)";
  if (h.version > kLogFormatVersion) {
    code = EPROTONOSUPPORT;
    return "format version " + std::to_string(h.version) + " is newer than this build's (" +
           std::to_string(kLogFormatVersion) + ")";
  }
  if (h.version != kLogFormatVersion) return "bad format version " + std::to_string(h.version);
  if (const std::string_view why = check_batch_header(h, left); !why.empty()) return std::string(why);
  if (const std::uint32_t crc = batch_crc(all.data() + pos, h.batch_length); crc != h.crc)
    return "crc mismatch (stored " + hex32(h.crc) + ", computed " + hex32(crc) + ")";
  if (const std::string_view why = for_each_record(all.data() + pos, h, [](const RecordView&) { return true; });
      !why.empty())
    return std::string(why);
  return {};
}

}  // namespace

LogError Log::append_raw(std::span<const std::byte> batches, std::uint64_t& appended_records) {
  Impl& L = *impl_;
  appended_records = 0;
  const std::uint64_t end = L.end_offset();
  // The newest epoch this log holds records of (entries at or past the end hold none).
  bool have_latest = false;
  std::uint32_t latest = 0;
  for (const auto& [epoch, start] : L.epochs)
    if (start < end) {
      have_latest = true;
      latest = epoch;
    }
  std::vector<Planned> plan;  // one small allocation per fetch
  bool have_prev = false;
  std::uint64_t prev_last = 0;
  for (std::size_t pos = 0; pos < batches.size();) {
    BatchHeader h{};
    int code = 0;
    if (const std::string why = check_bytes(batches, pos, h, code); !why.empty()) return at_byte(code, pos, why);
    const std::uint64_t last = h.base_offset + h.last_offset_delta;
    const auto range = [&] { return "offsets " + std::to_string(h.base_offset) + ".." + std::to_string(last); };
    if (have_prev && h.base_offset <= prev_last)
      return at_byte(EPROTO, pos, "out of order: " + range() + " after a batch ending at " + std::to_string(prev_last));
    have_prev = true;
    prev_last = last;
    if (last >= end) {
      if (h.base_offset < end)
        return at_byte(EPROTO, pos, range() + " straddle the log end " + std::to_string(end) +
                                        " (the logs diverge: truncate first)");
      if (have_latest && h.leader_epoch < latest)
        return at_byte(EPROTO, pos, "leader epoch " + std::to_string(h.leader_epoch) + " is older than epoch " +
                                        std::to_string(latest) + ", the latest this log holds records of");
      have_latest = true;
      latest = h.leader_epoch;
      plan.push_back({pos, h});
    }  // else wholly below the end: already held, skipped
    pos += h.batch_length;
  }
  for (const Planned& p : plan) {
    const BatchHeader& h = p.header;
    if (LogError e = L.begin_epoch(h.leader_epoch, h.base_offset)) return at_byte(e.code, p.position, e.what);
    if (LogError e = L.write_batch(batches.data() + p.position, h)) return at_byte(e.code, p.position, e.what);
    appended_records += h.record_count;
  }
  return {};
}

LogError Log::reset_to(std::uint64_t offset) {
  Impl& L = *impl_;
  // A lower recovery point is always safe, so it goes first: a crash below then recovers a prefix
  // of the old log validated from `offset` on, or an empty log at `offset`.
  if (offset < L.recovery_point) {
    const std::uint64_t old = std::exchange(L.recovery_point, offset);
    if (LogError e = L.write_recovery_checkpoint()) {
      L.recovery_point = old;
      return e;
    }
  }
  while (!L.segs.empty()) L.drop_segment(L.segs.size() - 1);  // newest first: a crash leaves a prefix
  if (LogError e = L.roll(offset)) {
    // Keep the "never empty" invariant with a segment that has no files: the Log stays safe to
    // use (appends fail with EBADF) and a reopen starts an empty log at the recovery point.
    Segment placeholder;
    placeholder.dir = L.dir;
    placeholder.base = placeholder.next_offset = offset;
    L.segs.push_back(std::move(placeholder));
    return e;
  }
  if (LogError e = io::fsync_dir(L.dir)) return e;
  L.dir_dirty = false;
  L.epochs.clear();
  if (LogError e = L.write_epoch_checkpoint()) return e;
  L.recovery_point = offset;  // nothing below it is left, and the new segment is empty
  return L.write_recovery_checkpoint();
}

EpochEnd end_offset_for_epoch(const std::vector<std::pair<std::uint32_t, std::uint64_t>>& epochs,
                              std::uint32_t requested, std::uint64_t log_end_offset) {
  if (epochs.empty()) return EpochEnd{0, log_end_offset, true};
  // The first entry whose epoch is above `requested`: the one before it is the answer, and its
  // start is where the answer ends.
  const auto above = std::upper_bound(epochs.begin(), epochs.end(), requested,
                                      [](std::uint32_t r, const auto& e) { return r < e.first; });
  if (above == epochs.begin()) return EpochEnd{0, 0, false};
  const std::uint32_t epoch = std::prev(above)->first;
  return EpochEnd{epoch, above == epochs.end() ? log_end_offset : above->second, true};
}

}  // namespace shmbus::log
