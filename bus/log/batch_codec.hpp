// Encoding and decoding of one record batch (log_format.hpp has the bytes).
#pragma once
#include "log/log_format.hpp"

#include <span>
#include <string_view>
#include <vector>

namespace shmbus::log {

/// A record to re-encode with its original offset (compaction, truncate_to).
struct KeptRecord {
  std::uint32_t offset_delta = 0;
  std::int64_t timestamp_ns = 0;
  std::uint16_t attributes = 0;
  std::span<const std::byte> key;
  std::span<const std::byte> value;
};

/// Encodes records as one batch at base offset `base` into buf (resized, never shrunk, so a
/// reused buffer stops allocating once it has seen the largest batch). EINVAL if empty or too big.
LogError encode_batch(std::vector<std::byte>& buf, std::span<const AppendRecord> records, std::uint64_t base,
                      std::uint32_t epoch);
/// Re-encodes a subset of the records of batch `orig`, keeping its base offset, last_offset_delta
/// and epoch. An empty subset gives an empty batch with orig's timestamps: compaction keeps one as
/// the last batch of a segment so that the segment's offset range and age survive.
LogError encode_kept(std::vector<std::byte>& buf, std::span<const KeptRecord> records, const BatchHeader& orig);

/// CRC32C of a whole batch as the header's crc field must hold it.
std::uint32_t batch_crc(const std::byte* batch, std::uint32_t length) noexcept;

/// Calls fn(view) for each record of a batch whose header is sane (lengths are checked against
/// the batch; a record that would overrun it stops the walk). Returns "" or why it stopped.
template <class Fn>
std::string_view for_each_record(const std::byte* batch, const BatchHeader& h, Fn&& fn) {
  std::size_t pos = sizeof(BatchHeader);
  std::uint32_t prev_delta = 0;
  for (std::uint32_t i = 0; i < h.record_count; ++i) {
    if (h.batch_length - pos < sizeof(RecordHeader)) return "record header past the batch end";
    const auto r = load_at<RecordHeader>(batch + pos);
    pos += sizeof(RecordHeader);
    if (r.key_length > h.batch_length - pos || r.value_length > h.batch_length - pos - r.key_length)
      return "record body past the batch end";
    if ((i > 0 && r.offset_delta <= prev_delta) || r.offset_delta > h.last_offset_delta)
      return "record offsets out of order";
    prev_delta = r.offset_delta;
    RecordView v;
    v.offset = h.base_offset + r.offset_delta;
    v.timestamp_ns = r.timestamp_ns;
    v.attributes = r.attributes;
    v.leader_epoch = h.leader_epoch;
    v.key = {batch + pos, r.key_length};
    v.value = {batch + pos + r.key_length, r.value_length};
    pos += std::size_t{r.key_length} + r.value_length;
    if (!fn(v)) return {};
  }
  if (pos != h.batch_length) return "batch has bytes after its last record";
  return {};
}

}  // namespace shmbus::log
