#include "log/batch_codec.hpp"

#include "log/crc32c.hpp"

#include <algorithm>
#include <cerrno>
#include <limits>

namespace shmbus::log {

namespace {

// Shared by both encoders: Rec gives the offset delta of record i (appends number them 0..n-1,
// re-encodes keep theirs).
std::span<const std::byte> tail_of(const AppendRecord& r) noexcept { return r.value_tail; }
std::span<const std::byte> tail_of(const KeptRecord&) noexcept { return {}; }

template <class Rec, class DeltaOf>
LogError encode(std::vector<std::byte>& buf, std::span<const Rec> records, std::uint64_t base,
                std::uint32_t last_delta, std::uint32_t epoch, DeltaOf delta_of) {
  std::uint64_t total = sizeof(BatchHeader);
  for (const Rec& r : records) total += sizeof(RecordHeader) + r.key.size() + r.value.size() + tail_of(r).size();
  if (total > kMaxBatchBytes || records.size() > std::numeric_limits<std::uint32_t>::max())
    return LogError{EINVAL, "batch of " + std::to_string(total) + " bytes is larger than the 1 GiB limit"};
  if (base + last_delta < base) return LogError{EOVERFLOW, "offsets would pass 2^64"};
  if (buf.size() < total) buf.resize(total);
  BatchHeader h{};
  h.magic = kBatchMagic;
  h.batch_length = static_cast<std::uint32_t>(total);
  h.version = static_cast<std::uint16_t>(kLogFormatVersion);
  h.base_offset = base;
  h.last_offset_delta = last_delta;
  h.record_count = static_cast<std::uint32_t>(records.size());
  h.leader_epoch = epoch;
  h.first_timestamp = records.empty() ? 0 : records.front().timestamp_ns;
  h.max_timestamp = records.empty() ? 0 : records.front().timestamp_ns;
  std::byte* p = buf.data() + sizeof(BatchHeader);
  for (std::size_t i = 0; i < records.size(); ++i) {
    const Rec& r = records[i];
    h.max_timestamp = std::max(h.max_timestamp, r.timestamp_ns);
    RecordHeader rh{};
    rh.timestamp_ns = r.timestamp_ns;
    rh.offset_delta = delta_of(r, i);
    rh.key_length = static_cast<std::uint32_t>(r.key.size());
    const std::span<const std::byte> tail = tail_of(r);
    rh.value_length = static_cast<std::uint32_t>(r.value.size() + tail.size());
    rh.attributes = r.attributes;
    std::memcpy(p, &rh, sizeof rh);
    p += sizeof rh;
    if (!r.key.empty()) std::memcpy(p, r.key.data(), r.key.size());
    p += r.key.size();
    if (!r.value.empty()) std::memcpy(p, r.value.data(), r.value.size());
    p += r.value.size();
    if (!tail.empty()) std::memcpy(p, tail.data(), tail.size());
    p += tail.size();
  }
  std::memcpy(buf.data(), &h, sizeof h);
  h.crc = batch_crc(buf.data(), h.batch_length);
  std::memcpy(buf.data() + offsetof(BatchHeader, crc), &h.crc, sizeof h.crc);
  return {};
}

}  // namespace

std::uint32_t batch_crc(const std::byte* batch, std::uint32_t length) noexcept {
  return crc32c(0, batch + kCrcStart, length - kCrcStart);
}

LogError encode_batch(std::vector<std::byte>& buf, std::span<const AppendRecord> records, std::uint64_t base,
                      std::uint32_t epoch) {
  if (records.empty()) return LogError{EINVAL, "append of an empty batch"};
  if (records.size() > std::numeric_limits<std::uint32_t>::max())
    return LogError{EINVAL, "batch has more than 2^32 records"};
  const auto last = static_cast<std::uint32_t>(records.size() - 1);
  return encode(buf, records, base, last, epoch,
                [](const AppendRecord&, std::size_t i) { return static_cast<std::uint32_t>(i); });
}

LogError encode_kept(std::vector<std::byte>& buf, std::span<const KeptRecord> records, const BatchHeader& orig) {
  LogError e = encode(buf, records, orig.base_offset, orig.last_offset_delta, orig.leader_epoch,
                      [](const KeptRecord& r, std::size_t) { return r.offset_delta; });
  if (e || !records.empty()) return e;
  auto h = load_at<BatchHeader>(buf.data());
  h.first_timestamp = orig.first_timestamp;
  h.max_timestamp = orig.max_timestamp;
  std::memcpy(buf.data(), &h, sizeof h);
  h.crc = batch_crc(buf.data(), h.batch_length);
  std::memcpy(buf.data() + offsetof(BatchHeader, crc), &h.crc, sizeof h.crc);
  return {};
}

}  // namespace shmbus::log
