// Layout of one queue: shm name "shmbus.<dirhash>.d<dest_id>" (the same namespace as topics;
// the magic says which). See docs/queues.md for the byte diagram and the delivery state machine.
//
//  offset            size                  block                     written by
//  ----------------  --------------------  ------------------------  ---------------------------
//                 0   256                  QueueHeader.config        daemon (once)
//               256   128                  QueueHeader.consumers     parked consumers, producers (futex,
//                                                                    ready_mask)
//               384   128                  QueueHeader.producers     parked producers, ackers (futex)
//               512   128                  QueueHeader.counters      daemon, consumers (rare paths)
//               640   256                  QueueHeader.daemon        the daemon's two ClaimRecords
//     producers_off   384 x max_producers  QueueProducerEntry        its producer (+ conductor at open)
//     consumers_off   512 x max_consumers  QueueConsumerEntry        its consumer (+ conductor at open)
//      free_ring_off  index ring (2N)      slot numbers FREE         producers pop, ackers push
//    ready_rings_off  10 x index ring (2N) slot numbers READY, one   producers/daemon push, consumers pop
//                                          ring per priority 0-9
//     agent_ring_off  index ring (2N)      slots for the daemon      producers (SCHEDULED), consumers
//                                          (SCHEDULED/REDELIVER/     (REDELIVER, EXPIRED) push; daemon pops
//                                          EXPIRED)
//          fifos_off  16 x window x max_consumers  per-consumer in-flight FIFO {slot, gen_lo, reserved}
//          slots_off  N x slot_size        QueueSlotHeader + payload
//
// Every slot has one state word; every transition is one CAS (or a store by the slot's only
// possible owner), and every transition bumps the generation, so a stale ring entry, a stale
// ack or a stale timer can never act on a later life of the same slot. Index rings may hold
// stale duplicates after crash recovery ("when in doubt, push again"): whoever pops an entry
// checks the state word, so a duplicate is skipped, never delivered twice. Capacity 2N leaves
// room for them.
#pragma once
#include "layout/common.hpp"
#include "layout/index_ring_layout.hpp"

#include <type_traits>

namespace shmbus::layout {

inline constexpr std::uint64_t kQueueMagic = 0x5551'5355'424D'4853ULL;  // "SHMBUSQU" little-endian

inline constexpr std::uint32_t kQueueMaxProducers = 64;
inline constexpr std::uint32_t kQueueMaxConsumers = 64;
inline constexpr std::uint32_t kPriorities = 10;         // JMS 0-9
/// Index rings of a queue, laid out back to back one stride apart: free, ready[0..9], agent,
/// persist (PERSISTENT slots for the daemon's persistence agent: published, or settled).
inline constexpr std::uint32_t kQueueIndexRings = kPriorities + 3;
inline constexpr std::uint32_t kPersistRingIndex = kPriorities + 2;
inline constexpr std::uint8_t kDefaultPriority = 4;      // JMS default
inline constexpr std::uint32_t kMinQueueSlots = 4;
inline constexpr std::uint32_t kMaxQueueSlots = 1U << 22;
inline constexpr std::uint32_t kMaxWindow = 1U << 14;    // in-flight FIFO entries per consumer
inline constexpr std::uint64_t kQueueNoSlot = ~0ULL;     // a participant's `held` when it holds none
/// ClaimRecord owners of queue participants: producers 0..63, consumers 64..127, the daemon 255.
inline constexpr std::uint32_t kConsumerOwnerBase = 64;
inline constexpr std::uint32_t kDaemonOwner = 255;

/// The state of one queue slot (docs/queues.md has the diagram).
enum class QState : std::uint64_t {
  Free = 0,       // in the free ring (or about to be)
  Writing = 1,    // a producer owns it (owner = producer entry)
  Ready = 2,      // in ready ring [priority], deliverable
  Scheduled = 3,  // waits in the daemon's timing wheel for deliver_at (or a redelivery delay)
  Delivered = 4,  // a consumer owns it until ack (owner = consumer entry)
  Redeliver = 5,  // handed to the daemon: rollback/recover/timeout/death; it decides READY/DLQ
  Expired = 6,    // handed to the daemon: found past expires_at; it decides DLQ/FREE
  Acked = 7,      // a PERSISTENT message settled (acked, expired, dead-lettered): in the persist
                  // ring; the persistence agent logs the settlement, then frees the slot
};

/// State word: gen (44 bits) | delivery count (8) | owner entry (8) | state (4).
struct QWord {
  static constexpr std::uint64_t kStateBits = 4, kOwnerBits = 8, kCountBits = 8;
  static constexpr std::uint64_t kOwnerShift = kStateBits, kCountShift = kOwnerShift + kOwnerBits,
                                 kGenShift = kCountShift + kCountBits;
  static constexpr std::uint64_t kMaxCount = (1U << kCountBits) - 1;
  static constexpr QState state(std::uint64_t w) noexcept { return static_cast<QState>(w & 0xF); }
  static constexpr std::uint32_t owner(std::uint64_t w) noexcept { return static_cast<std::uint32_t>((w >> kOwnerShift) & 0xFF); }
  static constexpr std::uint32_t count(std::uint64_t w) noexcept { return static_cast<std::uint32_t>((w >> kCountShift) & 0xFF); }
  static constexpr std::uint64_t gen(std::uint64_t w) noexcept { return w >> kGenShift; }
  static constexpr std::uint32_t gen_lo(std::uint64_t w) noexcept { return static_cast<std::uint32_t>(gen(w)); }
  /// The word after a transition from `w`: next generation, the given state/owner/count.
  static constexpr std::uint64_t next(std::uint64_t w, QState s, std::uint32_t owner, std::uint32_t count) noexcept {
    return ((gen(w) + 1) << kGenShift) | (std::uint64_t{count & 0xFF} << kCountShift) |
           (std::uint64_t{owner & 0xFF} << kOwnerShift) | static_cast<std::uint64_t>(s);
  }
  /// Same owner and count, new state.
  static constexpr std::uint64_t next(std::uint64_t w, QState s) noexcept { return next(w, s, owner(w), count(w)); }
};

/// QueueSlotHeader::flags
inline constexpr std::uint8_t kQFlagRedelivered = 1;
inline constexpr std::uint8_t kQFlagFramed = 2;  // the payload is a message frame (docs/message-frame.md), else raw bytes
inline constexpr std::uint8_t kQFlagPersistent = 4;  // PERSISTENT: logged by the persistence agent, freed only by it
inline constexpr std::uint8_t kQFlagDurableWait = 8;  // its producer waits until it is fsync'ed (Acks::Durable)
/// Its producer waits until the high watermark passes it (Acks::Replicated; set with DurableWait's
/// bit clear: the replicator, not the fsync, releases it). Layout v3 readers ignore it.
inline constexpr std::uint8_t kQFlagReplicatedWait = 16;
/// A PERSISTENT message of a read-committed queue: its producer pushed it to the persist ring only;
/// the persistence agent pushes it to the ready ring once it is committed (docs/replication.md).
inline constexpr std::uint8_t kQFlagGated = 32;
/// QueueProducerEntry::durable packs the producer id and its highest durable sequence, so a
/// reused entry can never show its new producer a durability that belongs to the old one.
inline constexpr std::uint64_t kDurableSeqBits = 40;
constexpr std::uint64_t durable_word(std::uint32_t producer_id, std::uint64_t seq) noexcept {
  return (std::uint64_t{producer_id & 0xFFFFFF} << kDurableSeqBits) | (seq & ((1ULL << kDurableSeqBits) - 1));
}
/// QueueSlotHeader::reason (why a message is in a dead-letter queue)
enum class DeadLetterReason : std::uint8_t { None = 0, MaxDeliveries = 1, Expired = 2 };
/// QueueHeader::flags
inline constexpr std::uint32_t kQueueDlqEnabled = 1;    // dead letters go to DLQ.NAME
inline constexpr std::uint32_t kQueueExpiredToDlq = 2;  // expired messages too (else dropped)
inline constexpr std::uint32_t kQueueIsDlq = 4;         // this queue is a DLQ: no max deliveries
/// Consumers see a PERSISTENT message only once it is committed: below the leader's high
/// watermark when replicating, else fsync'ed (DestinationOptions::read_committed).
inline constexpr std::uint32_t kQueueReadCommitted = 8;

struct alignas(kHotBlock) QueueHeader {
  // --- config (256 bytes): written once by the daemon before layout_version is published.
  std::uint64_t magic;
  std::atomic<std::uint32_t> layout_version;
  std::uint32_t kind;  // 2 = queue
  std::uint64_t total_length;
  std::uint32_t slot_count;  // N, a power of two
  std::uint32_t slot_size;   // bytes, a multiple of 64
  std::uint32_t max_payload;
  std::uint32_t dest_id;
  std::uint32_t max_producers;
  std::uint32_t max_consumers;
  std::uint32_t window;          // in-flight FIFO entries per consumer (power of two)
  std::uint32_t max_deliveries;  // past it: DLQ (0 = unlimited)
  std::uint64_t redelivery_delay_ns;
  std::uint32_t flags;          // kQueue*
  std::uint32_t ring_capacity;  // of every index ring: 2N
  std::uint64_t producers_off;
  std::uint64_t consumers_off;
  std::uint64_t free_ring_off;
  std::uint64_t ready_rings_off;
  std::uint64_t ready_ring_stride;
  std::uint64_t agent_ring_off;
  std::uint64_t fifos_off;
  std::uint64_t slots_off;
  char name[72];
  // As on topics: the daemon deleted this queue (a temporary one); producers get Status::Closed.
  std::atomic<std::uint32_t> removed;
  // The persistence agent could not write this queue's log: the errno (ENOSPC, EIO), 0 when
  // fine. PERSISTENT sends are refused while it is set (Status::NotDurable); cleared when a write
  // succeeds again.
  std::atomic<std::uint32_t> persist_error;
  std::uint64_t persist_ring_off;
  // --- consumers' futex: bumped when a slot becomes READY and someone is parked.
  alignas(kHotBlock) std::atomic<std::uint32_t> notify_seq;
  std::atomic<std::uint32_t> waiters;
  /// Bit p set: ready ring p may hold entries (a hint for consumers; see QueueRing::push_ready).
  std::atomic<std::uint32_t> ready_mask;
  // --- producers' futex: bumped when a slot becomes FREE and a producer is parked (full queue).
  alignas(kHotBlock) std::atomic<std::uint32_t> space_seq;
  std::atomic<std::uint32_t> space_waiters;
  // --- counters: statistics (relaxed), bumped on the daemon's and the rare client paths.
  alignas(kHotBlock) std::atomic<std::uint64_t> redelivered;    // deliveries marked redelivered
  std::atomic<std::uint64_t> dead_lettered;                     // moved to the DLQ
  std::atomic<std::uint64_t> expired;                           // expired (dropped or DLQ)
  std::atomic<std::uint64_t> ack_timeouts;                      // deliveries taken back after ack timeout
  std::atomic<std::uint64_t> stale_entries;                     // ring entries skipped (crash recovery dups)
  std::atomic<std::uint64_t> dropped;                           // dead letters dropped (no DLQ configured)
  std::atomic<std::uint64_t> selector_rotations;                // READY heads no selector matched, sent round (tidy_head)
  // --- the daemon's claim records (pusher, popper): it never dies while the queue exists.
  alignas(kHotBlock) ClaimRecord daemon_push;
  ClaimRecord daemon_pop;
  // --- the persistence agent's claim records (a second daemon thread: its own records).
  ClaimRecord persist_push;
  ClaimRecord persist_pop;
  // --- the persistence agent's figures for stat (relaxed; written by that agent only).
  std::atomic<std::uint64_t> log_start_offset;
  std::atomic<std::uint64_t> log_end_offset;
  std::atomic<std::uint64_t> durable_offset;  // fsync'ed below this offset
  std::atomic<std::uint64_t> log_segments;
  std::atomic<std::uint64_t> log_bytes;
  std::atomic<std::uint64_t> persisted;       // messages logged
  std::atomic<std::uint64_t> restored;        // messages loaded back from the log after a restart
  std::atomic<std::uint64_t> persist_failures;  // appends/fsyncs that failed (disk full, I/O error)
};

/// One per open queue producer (384 bytes).
struct alignas(kHotBlock) QueueProducerEntry {
  std::atomic<std::uint32_t> state;  // 0 free, 1 active, 2 closing (its slots are being reclaimed)
  std::uint32_t client_index;
  std::uint32_t producer_id;
  std::atomic<std::uint32_t> parked;  // 1 while counted in space_waiters (the daemon uncounts a dead one)
  std::atomic<std::uint64_t> held;  // slot between two rings (kQueueNoSlot: none); crash recovery
  std::atomic<std::uint64_t> sent;  // messages made READY/SCHEDULED (statistics)
  // Durable sends: durable_word(producer_id, highest producer_seq on disk), stored by the
  // persistence agent after an fsync; durable_seq is its futex (bumped on every store) and
  // durable_waiters counts producers parked on it.
  std::atomic<std::uint64_t> durable;
  std::atomic<std::uint32_t> durable_seq;
  std::atomic<std::uint32_t> durable_waiters;
  alignas(kHotBlock) ClaimRecord push;
  ClaimRecord pop;
};

/// One per open queue consumer (512 bytes).
struct alignas(kHotBlock) QueueConsumerEntry {
  std::atomic<std::uint32_t> state;  // 0 free, 1 active, 2 closing
  std::uint32_t client_index;
  std::uint32_t consumer_id;
  std::uint32_t ack_mode;            // shmbus::AckMode, for stat
  std::atomic<std::uint64_t> held;   // as on producers
  std::atomic<std::uint64_t> received;  // deliveries taken (statistics)
  std::atomic<std::uint64_t> acked;     // acks that won (statistics)
  std::uint64_t ack_timeout_ns;      // 0: none (written at open by the conductor)
  std::atomic<std::uint32_t> parked;  // 1 while counted in QueueHeader::waiters (as on producers)
  // --- the in-flight FIFO's cursors: written by the consumer, read by the daemon.
  alignas(kHotBlock) std::atomic<std::uint64_t> fifo_tail;  // next entry to write
  std::atomic<std::uint64_t> fifo_head;                     // oldest entry that may be unacked
  alignas(kHotBlock) ClaimRecord push;
  ClaimRecord pop;
};

/// One delivery the consumer has not settled: the daemon times it out after ack_timeout_ns.
struct FifoEntry {
  std::uint32_t slot;
  std::uint32_t gen_lo;     // QWord::gen_lo of the DELIVERED word
  std::uint64_t reserved;   // 0 (the daemon times deliveries from when it first sees them)
};

struct alignas(kCacheLine) QueueSlotHeader {
  std::atomic<std::uint64_t> state;  // QWord
  std::uint64_t deliver_at_ns;       // CLOCK_MONOTONIC; 0 = at once
  std::uint64_t expires_at_ns;       // CLOCK_MONOTONIC; 0 = never
  std::int64_t timestamp_ns;         // CLOCK_REALTIME at send, 0 when disabled
  std::uint64_t producer_seq;
  std::uint32_t producer_id;
  std::uint32_t length;
  std::uint8_t priority;  // 0-9
  std::uint8_t flags;     // kQFlag*
  std::uint8_t reason;    // DeadLetterReason (DLQ copies)
  std::uint8_t producer_entry;  // the producer entry that sent it (durable acknowledgements)
  std::uint32_t origin_dest_id;  // DLQ copies: the queue it died in
  std::uint64_t incarnation;     // the producer's random 64-bit id: message id = {incarnation, producer_seq}
};

static_assert(std::is_standard_layout_v<QueueHeader>);
static_assert(offsetof(QueueHeader, layout_version) == 8);
static_assert(offsetof(QueueHeader, slot_count) == 24);
static_assert(offsetof(QueueHeader, redelivery_delay_ns) == 56);
static_assert(offsetof(QueueHeader, producers_off) == 72);
static_assert(offsetof(QueueHeader, name) == 136);
static_assert(offsetof(QueueHeader, removed) == 208);
static_assert(offsetof(QueueHeader, notify_seq) == 256);
static_assert(offsetof(QueueHeader, ready_mask) == 264);
static_assert(offsetof(QueueHeader, space_seq) == 384);
static_assert(offsetof(QueueHeader, redelivered) == 512);
static_assert(offsetof(QueueHeader, daemon_push) == 640);
static_assert(offsetof(QueueHeader, daemon_pop) == 768);
static_assert(offsetof(QueueHeader, persist_error) == 212);
static_assert(offsetof(QueueHeader, persist_ring_off) == 216);
static_assert(offsetof(QueueHeader, persist_push) == 896);
static_assert(offsetof(QueueHeader, persist_pop) == 1024);
static_assert(offsetof(QueueHeader, log_start_offset) == 1152);
static_assert(offsetof(QueueHeader, persist_failures) == 1152 + 56);
static_assert(sizeof(QueueHeader) == 1280);
static_assert(offsetof(QueueProducerEntry, durable) == 32);
static_assert(offsetof(QueueProducerEntry, durable_seq) == 40);
static_assert(offsetof(QueueProducerEntry, durable_waiters) == 44);
static_assert(offsetof(QueueSlotHeader, producer_entry) == 51);
static_assert(std::is_standard_layout_v<QueueProducerEntry>);
static_assert(sizeof(QueueProducerEntry) == 384);
static_assert(offsetof(QueueProducerEntry, held) == 16);
static_assert(offsetof(QueueProducerEntry, push) == 128);
static_assert(offsetof(QueueProducerEntry, pop) == 256);
static_assert(std::is_standard_layout_v<QueueConsumerEntry>);
static_assert(sizeof(QueueConsumerEntry) == 512);
static_assert(offsetof(QueueConsumerEntry, held) == 16);
static_assert(offsetof(QueueConsumerEntry, ack_timeout_ns) == 40);
static_assert(offsetof(QueueConsumerEntry, parked) == 48);
static_assert(offsetof(QueueProducerEntry, parked) == 12);
static_assert(offsetof(QueueConsumerEntry, fifo_tail) == 128);
static_assert(offsetof(QueueConsumerEntry, fifo_head) == 136);
static_assert(offsetof(QueueConsumerEntry, push) == 256);
static_assert(offsetof(QueueConsumerEntry, pop) == 384);
static_assert(sizeof(FifoEntry) == 16);
static_assert(std::is_standard_layout_v<QueueSlotHeader>);
static_assert(sizeof(QueueSlotHeader) == 64);
static_assert(offsetof(QueueSlotHeader, deliver_at_ns) == 8);
static_assert(offsetof(QueueSlotHeader, producer_id) == 40);
static_assert(offsetof(QueueSlotHeader, length) == 44);
static_assert(offsetof(QueueSlotHeader, priority) == 48);
static_assert(offsetof(QueueSlotHeader, origin_dest_id) == 52);
static_assert(offsetof(QueueSlotHeader, incarnation) == 56);
static_assert(offsetof(QueueHeader, selector_rotations) == 512 + 48);

/// Every offset and size of one queue, from its geometry.
struct QueueGeometry {
  std::uint32_t slot_count = 0, slot_size = 0, window = 0, ring_capacity = 0;
  std::uint64_t producers_off = 0, consumers_off = 0, free_ring_off = 0, ready_rings_off = 0,
                ready_ring_stride = 0, agent_ring_off = 0, persist_ring_off = 0, fifos_off = 0, slots_off = 0, total = 0;
};

constexpr std::uint32_t queue_slot_size_for(std::uint32_t max_payload) noexcept {
  return static_cast<std::uint32_t>(align_up(sizeof(QueueSlotHeader) + max_payload, kCacheLine));
}

constexpr QueueGeometry queue_geometry(std::uint32_t slot_count, std::uint32_t max_payload) noexcept {
  QueueGeometry g;
  g.slot_count = slot_count;
  g.slot_size = queue_slot_size_for(max_payload);
  g.window = slot_count < kMaxWindow ? slot_count : kMaxWindow;
  g.ring_capacity = slot_count * 2;
  g.producers_off = sizeof(QueueHeader);
  g.consumers_off = g.producers_off + std::uint64_t{kQueueMaxProducers} * sizeof(QueueProducerEntry);
  g.free_ring_off = g.consumers_off + std::uint64_t{kQueueMaxConsumers} * sizeof(QueueConsumerEntry);
  g.ready_ring_stride = align_up(index_ring_size(g.ring_capacity), kHotBlock);
  g.ready_rings_off = g.free_ring_off + g.ready_ring_stride;
  g.agent_ring_off = g.ready_rings_off + kPriorities * g.ready_ring_stride;
  g.persist_ring_off = g.agent_ring_off + g.ready_ring_stride;
  g.fifos_off = g.persist_ring_off + g.ready_ring_stride;
  g.slots_off = align_up(g.fifos_off + std::uint64_t{kQueueMaxConsumers} * g.window * sizeof(FifoEntry), kHotBlock);
  g.total = g.slots_off + std::uint64_t{slot_count} * g.slot_size;
  return g;
}

}  // namespace shmbus::layout
