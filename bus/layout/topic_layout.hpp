// Layout of one topic: shm name "shmbus.<dirhash>.d<dest_id>".
//
//  offset  size  block                 written by            read by
//  ------  ----  --------------------  --------------------  ------------------------
//       0   128  TopicHeader.config    daemon (once)         everyone
//     128   128  TopicHeader.tail      producers (fetch_add) producers, daemon, lapped readers
//     256   128  TopicHeader.notify    producers, parkers    parkers (futex word)
//     384   128  TopicHeader.counters  daemon                stat
//     512        SubscriberEntry[max_subscribers], 128 bytes each (written by its consumer)
//       P        ProducerEntry[max_producers], 128 bytes each (written by its producer),
//                P = 512 + 128 * max_subscribers
//       S        slots: slot_count x slot_size bytes, S = P + 128 * max_producers
//
// Slot (slot_size bytes, a multiple of 64):
//  offset  size  field
//       0     8  stamp        (seq << 2) | state; state 0 empty, 1 writing, 2 data, 3 pad
//       8     4  owner        client-table index of the producer holding the slot
//      12     4  producer_id  daemon-assigned id of the MessageProducer
//      16     4  length       payload bytes
//      20     4  flags        bit 0 kSlotFramed: the payload is a message frame, else raw bytes;
//                             bit 1 kSlotPersistent: PERSISTENT (logged for durable subscriptions)
//      24     8  producer_seq per-producer sequence, starting at 1
//      32     8  timestamp_ns CLOCK_REALTIME at send, 0 when the producer disabled it
//      40     8  incarnation  the producer's random id: JMSMessageID = {incarnation, producer_seq}
//      48     8  expiration_ns CLOCK_REALTIME after which readers drop it; 0 = never
//      56     8  reserved
//      64     *  payload      up to max_payload bytes
//
// A slot for ring sequence `seq` is `seq & (slot_count - 1)`. The stamp carries the lap, so a
// reader can tell "not yet written" (older seq) from "overwritten by a newer lap" (newer seq).
// A producer may start writing sequence `seq` only once the slot holds data/pad(seq - slot_count)
// (the previous lap is published), so two producers are never in one slot: no CAS is needed.
#pragma once
#include "layout/common.hpp"

#include <type_traits>

namespace shmbus::layout {

/// SlotHeader::flags
inline constexpr std::uint32_t kSlotFramed = 1;  // the payload is a message frame (docs/message-frame.md), else raw bytes
inline constexpr std::uint32_t kSlotPersistent = 2;  // PERSISTENT: the persistence agent logs it for durable subscriptions

enum class SlotState : std::uint64_t { Empty = 0, Writing = 1, Data = 2, Pad = 3 };

constexpr std::uint64_t make_stamp(std::uint64_t seq, SlotState s) noexcept {
  return (seq << 2) | static_cast<std::uint64_t>(s);
}
constexpr std::uint64_t stamp_seq(std::uint64_t stamp) noexcept { return stamp >> 2; }
constexpr SlotState stamp_state(std::uint64_t stamp) noexcept { return static_cast<SlotState>(stamp & 3U); }

inline constexpr std::uint32_t kMaxSubscribers = 64;
inline constexpr std::uint32_t kMaxProducers = 64;
/// ProducerEntry::claim_seq values besides a sequence.
inline constexpr std::uint64_t kClaimIdle = ~0ULL;         // not claiming
inline constexpr std::uint64_t kClaimPending = ~0ULL - 1;  // between announcing and learning its sequence
inline constexpr std::uint32_t kMinSlots = 2;
inline constexpr std::uint32_t kMaxSlots = 1U << 24;
inline constexpr std::uint32_t kMaxPayload = 16U << 20;  // 16 MiB per message, hard ceiling
inline constexpr std::uint64_t kMaxTopicBytes = 4ULL << 30;  // 4 GiB per ring, hard ceiling

struct alignas(kHotBlock) TopicHeader {
  // --- config block: written once by the daemon before layout_version is published.
  std::uint64_t magic;
  std::atomic<std::uint32_t> layout_version;
  std::uint32_t kind;          // 1 = topic
  std::uint64_t total_length;
  std::uint32_t slot_count;    // power of two
  std::uint32_t slot_size;     // bytes, multiple of 64
  std::uint32_t max_payload;   // bytes
  std::uint32_t dest_id;
  std::uint32_t max_subscribers;
  std::uint32_t max_producers;
  char name[72];
  // The daemon deleted this destination (a temporary one, with its connection): producers still
  // attached get Status::Closed. Written once (release), read by sends (relaxed: a hint).
  std::atomic<std::uint32_t> removed;
  std::uint32_t reserved_config;
  // --- tail block: the claim counter, the only word producers contend on.
  alignas(kHotBlock) std::atomic<std::uint64_t> tail;
  // --- notify block: futex word and parked-waiter count.
  alignas(kHotBlock) std::atomic<std::uint32_t> notify_seq;
  std::atomic<std::uint32_t> waiters;
  // --- counters block: maintained by the daemon's janitor.
  alignas(kHotBlock) std::atomic<std::uint64_t> holes_repaired;
};

struct alignas(kHotBlock) SubscriberEntry {
  std::atomic<std::uint32_t> state;  // 0 free, 1 active
  std::uint32_t client_index;
  std::uint32_t consumer_id;
  /// 1 while this subscriber is counted in TopicHeader::waiters (parked): a subscriber killed
  /// while parked cannot take itself off the count; the daemon does, from this flag.
  std::atomic<std::uint32_t> parked;
  std::atomic<std::uint64_t> position;  // next ring sequence this subscriber reads
  std::atomic<std::uint64_t> lost;      // messages lost to lapping, cumulative
  std::atomic<std::uint64_t> received;  // messages delivered, cumulative
};

/// One per open MessageProducer. claim_seq is how the daemon tells a live producer's claim (never
/// touched) from a dead one's (padded): kClaimPending is stored before the tail fetch_add, the
/// claimed sequence right after it.
struct alignas(kHotBlock) ProducerEntry {
  std::atomic<std::uint32_t> state;  // 0 free, 1 active
  std::uint32_t client_index;
  std::uint32_t producer_id;
  std::uint32_t reserved0;
  std::atomic<std::uint64_t> claim_seq;
};

struct alignas(kCacheLine) SlotHeader {
  std::atomic<std::uint64_t> stamp;
  std::atomic<std::uint32_t> owner;
  std::uint32_t producer_id;
  std::uint32_t length;
  std::uint32_t flags;
  std::uint64_t producer_seq;
  std::int64_t timestamp_ns;
  std::uint64_t incarnation;    // the producer's random 64-bit id: message id = {incarnation, producer_seq}
  std::int64_t expiration_ns;   // CLOCK_REALTIME; 0 = never (readers drop it after)
  std::uint8_t reserved[8];
};

static_assert(std::is_standard_layout_v<TopicHeader>);
static_assert(sizeof(TopicHeader) == 512);
static_assert(offsetof(TopicHeader, layout_version) == 8);
static_assert(offsetof(TopicHeader, slot_count) == 24);
static_assert(offsetof(TopicHeader, name) == 48);
static_assert(offsetof(TopicHeader, removed) == 120);
static_assert(offsetof(TopicHeader, tail) == 128);
static_assert(offsetof(TopicHeader, notify_seq) == 256);
static_assert(offsetof(TopicHeader, waiters) == 260);
static_assert(offsetof(TopicHeader, holes_repaired) == 384);
static_assert(std::is_standard_layout_v<SubscriberEntry>);
static_assert(sizeof(SubscriberEntry) == 128);
static_assert(offsetof(SubscriberEntry, position) == 16);
static_assert(std::is_standard_layout_v<ProducerEntry>);
static_assert(sizeof(ProducerEntry) == 128);
static_assert(offsetof(ProducerEntry, claim_seq) == 16);
static_assert(std::is_standard_layout_v<SlotHeader>);
static_assert(sizeof(SlotHeader) == 64);
static_assert(offsetof(SlotHeader, owner) == 8);
static_assert(offsetof(SlotHeader, length) == 16);
static_assert(offsetof(SlotHeader, producer_seq) == 24);
static_assert(offsetof(SlotHeader, timestamp_ns) == 32);
static_assert(offsetof(SlotHeader, incarnation) == 40);
static_assert(offsetof(SlotHeader, expiration_ns) == 48);

constexpr std::uint32_t slot_size_for(std::uint32_t max_payload) noexcept {
  return static_cast<std::uint32_t>(align_up(sizeof(SlotHeader) + max_payload, kCacheLine));
}
constexpr std::uint64_t producers_offset(std::uint32_t max_subscribers) noexcept {
  return sizeof(TopicHeader) + std::uint64_t{max_subscribers} * sizeof(SubscriberEntry);
}
constexpr std::uint64_t slots_offset(std::uint32_t max_subscribers, std::uint32_t max_producers) noexcept {
  return producers_offset(max_subscribers) + std::uint64_t{max_producers} * sizeof(ProducerEntry);
}
constexpr std::uint64_t topic_size(std::uint32_t slot_count, std::uint32_t max_payload,
                                   std::uint32_t max_subscribers, std::uint32_t max_producers) noexcept {
  return slots_offset(max_subscribers, max_producers) + std::uint64_t{slot_count} * slot_size_for(max_payload);
}

}  // namespace shmbus::layout
