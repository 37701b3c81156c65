// What the daemon's persistence agent writes into queue and topic segment logs (docs/persistence.md),
// and what durable subscribers read back: the values of the log's records (the log itself, batches,
// CRC32C and indexes, is segment_log.hpp). The record's `attributes` say which kind it is.
//
// QueueMessageRecord (kind 1), then the message's bytes (a frame, or a raw payload):
//  offset  size  field
//       0     8  timestamp_ns        JMSTimestamp (CLOCK_REALTIME), 0 when disabled
//       8     8  expires_real_ns     CLOCK_REALTIME after which it is not delivered, 0 never
//      16     8  deliver_at_real_ns  CLOCK_REALTIME before which it is not delivered, 0 at once
//      24     8  producer_seq
//      32     8  incarnation         with producer_seq: the JMSMessageID
//      40     4  producer_id
//      44     1  priority            0-9
//      45     1  flags               QueueSlotHeader flags (framed, persistent)
//      46     1  reason              dead-letter reason (DLQ copies)
//      47     1  reserved            0
//      48     4  origin_dest_id      DLQ copies
//      52     4  reserved            0
// QueueSettleRecord (kind 2): the message at `offset` left the queue:
//       0     8  offset              the message record's offset in this log
//       8     1  reason              SettleReason
//       9     7  reserved            0
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace shmbus::log {

enum class RecordKind : std::uint16_t { QueueMessage = 1, QueueSettle = 2, TopicMessage = 3 };
enum class SettleReason : std::uint8_t { Acked = 0, DeadLettered = 1, Expired = 2, Dropped = 3 };

struct QueueMessageRecord {
  std::int64_t timestamp_ns;
  std::int64_t expires_real_ns;
  std::int64_t deliver_at_real_ns;
  std::uint64_t producer_seq;
  std::uint64_t incarnation;
  std::uint32_t producer_id;
  std::uint8_t priority;
  std::uint8_t flags;
  std::uint8_t reason;
  std::uint8_t reserved0;
  std::uint32_t origin_dest_id;
  std::uint32_t reserved1;
};
static_assert(std::is_standard_layout_v<QueueMessageRecord> && std::is_trivially_copyable_v<QueueMessageRecord>);
static_assert(sizeof(QueueMessageRecord) == 56);
static_assert(offsetof(QueueMessageRecord, producer_id) == 40);
static_assert(offsetof(QueueMessageRecord, origin_dest_id) == 48);

struct QueueSettleRecord {
  std::uint64_t offset;
  std::uint8_t reason;
  std::uint8_t reserved[7];
};
static_assert(std::is_standard_layout_v<QueueSettleRecord> && std::is_trivially_copyable_v<QueueSettleRecord>);
static_assert(sizeof(QueueSettleRecord) == 16);

/// TopicMessageRecord (kind 3), then the message's bytes; the record's key is the message's
/// string property `key` (compaction keeps the newest per key), and a message whose boolean
/// property `tombstone` is true is written as a tombstone (bus/log kAttrTombstone):
///  offset  size  field
///       0     8  timestamp_ns    JMSTimestamp
///       8     8  expiration_ns   JMSExpiration (CLOCK_REALTIME), 0 never
///      16     8  producer_seq
///      24     8  incarnation
///      32     4  producer_id
///      36     4  flags           topic slot flags (framed, persistent)
struct TopicMessageRecord {
  std::int64_t timestamp_ns;
  std::int64_t expiration_ns;
  std::uint64_t producer_seq;
  std::uint64_t incarnation;
  std::uint32_t producer_id;
  std::uint32_t flags;
};
static_assert(std::is_standard_layout_v<TopicMessageRecord> && std::is_trivially_copyable_v<TopicMessageRecord>);
static_assert(sizeof(TopicMessageRecord) == 40);
static_assert(offsetof(TopicMessageRecord, flags) == 36);

/// Snapshot of a queue's state (DIR/data/queue.NAME/<offset>.snapshot, written by bus/log's
/// write_snapshot): header, then `unsettled` u64 offsets ascending, then `producers` pairs
/// {incarnation u64, highest producer_seq u64} (idempotence, for later).
struct QueueSnapshotHeader {
  std::uint32_t magic;    // kQueueSnapshotMagic
  std::uint32_t version;  // 1
  std::uint64_t next_offset;  // the log end when it was taken: replay starts here
  std::uint64_t unsettled;
  std::uint64_t producers;
};
inline constexpr std::uint32_t kQueueSnapshotMagic = 0x50534E51;  // "QNSP"
static_assert(sizeof(QueueSnapshotHeader) == 32);

}  // namespace shmbus::log
