// The bytes of a segment log (docs/persistence-format.md draws them). Everything is little-endian
// (the only byte order shmbus runs on; asserted below) and fixed-width, so a file is read with
// memcpy into these structs: records are not aligned inside a batch, so never cast a pointer.
//
//   .log        BatchHeader, then record_count x (RecordHeader, key, value), repeated
//   .index      IndexEntry x n      (offset of a batch -> its file position)
//   .timeindex  TimeIndexEntry x n  (largest timestamp so far -> offset of a batch)
//
// Batch (56-byte header):
//   0  u32 magic            kBatchMagic
//   4  u32 crc              CRC32C of bytes [8, batch_length): everything after this field
//   8  u32 batch_length     header + records
//  12  u16 version          kLogFormatVersion
//  14  u16 attributes       0 (reserved for compression/transactions)
//  16  u64 base_offset      offset of the first record
//  24  u32 last_offset_delta  last record's offset - base_offset (kept when compaction empties a batch)
//  28  u32 record_count
//  32  i64 first_timestamp  first record's timestamp (ns, CLOCK_REALTIME)
//  40  i64 max_timestamp    largest record timestamp
//  48  u32 leader_epoch
//  52  u32 reserved         0
// Record (24-byte header, then key_length + value_length bytes):
//   0  i64 timestamp_ns
//   8  u32 offset_delta     record offset - base_offset (strictly increasing within a batch)
//  12  u32 key_length
//  16  u32 value_length
//  20  u16 attributes       AppendRecord::attributes (kAttrTombstone)
//  22  u16 reserved         0
#pragma once
#include "log/segment_log.hpp"

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

namespace shmbus::log {

static_assert(std::endian::native == std::endian::little, "the log format is little-endian");

inline constexpr std::uint32_t kBatchMagic = 0x424C4253;     // "SBLB" in a little-endian dump
inline constexpr std::uint32_t kSnapshotMagic = 0x4E534253;  // "SBSN"

struct BatchHeader {
  std::uint32_t magic;
  std::uint32_t crc;
  std::uint32_t batch_length;
  std::uint16_t version;
  std::uint16_t attributes;
  std::uint64_t base_offset;
  std::uint32_t last_offset_delta;
  std::uint32_t record_count;
  std::int64_t first_timestamp;
  std::int64_t max_timestamp;
  std::uint32_t leader_epoch;
  std::uint32_t reserved;
};
static_assert(sizeof(BatchHeader) == 56);
static_assert(offsetof(BatchHeader, crc) == 4);
static_assert(offsetof(BatchHeader, batch_length) == 8);
static_assert(offsetof(BatchHeader, version) == 12);
static_assert(offsetof(BatchHeader, base_offset) == 16);
static_assert(offsetof(BatchHeader, last_offset_delta) == 24);
static_assert(offsetof(BatchHeader, record_count) == 28);
static_assert(offsetof(BatchHeader, first_timestamp) == 32);
static_assert(offsetof(BatchHeader, max_timestamp) == 40);
static_assert(offsetof(BatchHeader, leader_epoch) == 48);
static_assert(std::is_standard_layout_v<BatchHeader> && std::is_trivially_copyable_v<BatchHeader>);

/// Bytes the CRC covers start here: the CRC cannot cover itself, and magic is checked on its own.
inline constexpr std::size_t kCrcStart = offsetof(BatchHeader, batch_length);

struct RecordHeader {
  std::int64_t timestamp_ns;
  std::uint32_t offset_delta;
  std::uint32_t key_length;
  std::uint32_t value_length;
  std::uint16_t attributes;
  std::uint16_t reserved;
};
static_assert(sizeof(RecordHeader) == 24);
static_assert(offsetof(RecordHeader, offset_delta) == 8);
static_assert(offsetof(RecordHeader, key_length) == 12);
static_assert(offsetof(RecordHeader, value_length) == 16);
static_assert(offsetof(RecordHeader, attributes) == 20);
static_assert(std::is_standard_layout_v<RecordHeader> && std::is_trivially_copyable_v<RecordHeader>);

struct IndexEntry {
  std::uint64_t offset;    // base offset of the batch
  std::uint64_t position;  // its byte position in the .log
};
static_assert(sizeof(IndexEntry) == 16 && offsetof(IndexEntry, position) == 8);
static_assert(std::is_standard_layout_v<IndexEntry> && std::is_trivially_copyable_v<IndexEntry>);

struct TimeIndexEntry {
  std::int64_t timestamp;  // largest record timestamp in the segment up to and including this batch
  std::uint64_t offset;    // base offset of the batch (the same batch as the .index entry)
};
static_assert(sizeof(TimeIndexEntry) == 16 && offsetof(TimeIndexEntry, offset) == 8);
static_assert(std::is_standard_layout_v<TimeIndexEntry> && std::is_trivially_copyable_v<TimeIndexEntry>);

// Snapshot file (32-byte header, then `length` opaque bytes):
//   0  u32 magic     kSnapshotMagic
//   4  u16 version   kLogFormatVersion
//   6  u16 reserved  0
//   8  u64 offset    the log offset the state belongs to (also the file name)
//  16  u64 length    payload bytes
//  24  u32 crc       CRC32C of bytes [0, 24) then of the payload
//  28  u32 reserved  0
struct SnapshotHeader {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t reserved0;
  std::uint64_t offset;
  std::uint64_t length;
  std::uint32_t crc;
  std::uint32_t reserved1;
};
static_assert(sizeof(SnapshotHeader) == 32 && offsetof(SnapshotHeader, crc) == 24);
static_assert(std::is_standard_layout_v<SnapshotHeader> && std::is_trivially_copyable_v<SnapshotHeader>);

/// Largest batch this code writes or accepts (the length field is u32; reads size buffers by it).
inline constexpr std::uint32_t kMaxBatchBytes = 1U << 30;

inline constexpr const char* kRecoveryCheckpoint = "recovery-point-offset-checkpoint";
inline constexpr const char* kEpochCheckpoint = "leader-epoch-checkpoint";

template <class T>
T load_at(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// Why a batch header cannot be a batch: "" if it looks sane. `room` is the bytes from the header
/// start to the end of the data (file or buffer); a version newer than ours is not reported here
/// (the caller refuses it separately, it is not damage).
inline std::string_view check_batch_header(const BatchHeader& h, std::uint64_t room) noexcept {
  if (h.magic != kBatchMagic) return "bad magic";
  if (h.batch_length < sizeof(BatchHeader) || h.batch_length > kMaxBatchBytes) return "bad batch length";
  if (h.batch_length > room) return "torn batch";
  if (h.record_count > 0 && h.last_offset_delta < h.record_count - 1) return "bad record count";
  if (h.base_offset + h.last_offset_delta < h.base_offset) return "offset overflow";
  return {};
}

}  // namespace shmbus::log
