// Non-owning views over a queue in shared memory (layout: layout/queue_layout.hpp; the state
// machine and the crash rules: docs/queues.md).
//
// A queue is a pool of N slots, index rings that hand slot numbers around (free, ready[0..9],
// agent), and one state word per slot that decides by CAS who owns a message at any instant.
// QueueWriter is a producer's side, QueueReader a consumer's; QueueDaemonSide is what only the
// daemon does (in daemon/queue_agent.*, with the timing wheel).
//
// Crash rule ("held" words): a participant stores the slot number it is moving between rings in
// its entry's `held` word before the slot leaves a ring and clears it after the slot is in its
// next ring. After the participant dies (or closes) the daemon looks at that one slot and pushes
// it again to the ring its state calls for. The push may duplicate an entry; every popper checks
// the state word, so duplicates are skipped and counted (stale_entries), never delivered twice.
//
// Hot path: noexcept, no allocation, no system call except futex wakes when someone is parked.
#pragma once
#include "layout/queue_layout.hpp"
#include "ring/index_ring.hpp"

#include <string_view>

namespace shmbus::ring {

using layout::QState;
using layout::QWord;

/// Geometry and policy of a new queue (daemon side).
struct QueueConfig {
  std::uint32_t slot_count = 4096;    // power of two in [kMinQueueSlots, kMaxQueueSlots]
  std::uint32_t max_payload = 4096;
  std::uint32_t dest_id = 0;
  std::uint32_t max_deliveries = 10;  // 0 = unlimited
  std::uint64_t redelivery_delay_ns = 0;
  std::uint32_t flags = layout::kQueueDlqEnabled;
  std::string_view name;
};

/// Validates a queue inside a mapping of `available` bytes. "" when usable.
std::string_view check_queue(const void* base, std::size_t available) noexcept;

class QueueRing {
 public:
  QueueRing() = default;
  explicit QueueRing(void* base) noexcept;
  /// Daemon side: lays out a zeroed mapping of layout::queue_geometry(...).total bytes and
  /// publishes it (release store of layout_version). False for a bad geometry (nothing published).
  static bool init(void* base, std::uint64_t available, const QueueConfig& cfg) noexcept;

  layout::QueueHeader& header() const noexcept { return *hdr_; }
  bool valid() const noexcept { return hdr_ != nullptr; }
  std::uint32_t slot_count() const noexcept { return hdr_->slot_count; }
  std::uint32_t max_payload() const noexcept { return hdr_->max_payload; }
  std::uint32_t window() const noexcept { return hdr_->window; }

  layout::QueueSlotHeader* slot(std::uint32_t i) const noexcept {
    return reinterpret_cast<layout::QueueSlotHeader*>(slots_ + std::uint64_t{i} * hdr_->slot_size);
  }
  std::byte* payload(std::uint32_t i) const noexcept { return reinterpret_cast<std::byte*>(slot(i) + 1); }
  layout::QueueProducerEntry* producer(std::uint32_t i) const noexcept;
  layout::QueueConsumerEntry* consumer(std::uint32_t i) const noexcept;
  layout::FifoEntry* fifo(std::uint32_t consumer) const noexcept;
  IndexRing free_ring() const noexcept { return ring_at(hdr_->free_ring_off); }
  IndexRing ready_ring(std::uint32_t prio) const noexcept {
    return ring_at(hdr_->ready_rings_off + std::uint64_t{prio} * hdr_->ready_ring_stride);
  }
  IndexRing agent_ring() const noexcept { return ring_at(hdr_->agent_ring_off); }
  /// PERSISTENT slots for the persistence agent: pushed once when published, once when settled.
  IndexRing persist_ring() const noexcept { return ring_at(hdr_->persist_ring_off); }
  /// Ring k of the kQueueIndexRings (0 free, 1..10 ready[0..9], 11 agent, 12 persist), for walks over all.
  IndexRing index_ring(std::uint32_t k) const noexcept {
    return ring_at(hdr_->free_ring_off + std::uint64_t{k} * hdr_->ready_ring_stride);
  }

  /// Whether a ready-ring entry {slot, tag} announces the slot's current READY life; `word` gets
  /// the state word (acquire: pairs with the release that made it READY, so header and payload
  /// are visible). False: a stale entry (taken, or an earlier life of a reused slot) or a bad slot.
  bool live(std::uint32_t slot, std::uint32_t tag, std::uint64_t& word) const noexcept {
    if (slot >= slot_count()) return false;
    word = this->slot(slot)->state.load(std::memory_order_acquire);
    return layout::QWord::state(word) == layout::QState::Ready && layout::QWord::gen_lo(word) == tag;
  }
  /// Any ready ring with a push claimed past its head (a hint: acquire loads, no pop).
  bool any_ready() const noexcept;
  /// Consumers: ready ring `prio` was found empty: clear its bit in ready_mask, then look again
  /// (a push that raced the clear sets it back: the Dekker pair of push_ready()).
  void clear_ready_bit(std::uint32_t prio) const noexcept;
  /// Daemon tick: sets the bit of every non-empty ready ring whose bit is clear (a consumer that
  /// died between clearing a bit and setting it back would otherwise hide that ring).
  void refresh_ready_mask() const noexcept;
  /// The Dekker half after making a slot FREE: wake parked producers (push_ready does the same
  /// for consumers).
  void wake_producers() const noexcept;
  /// Pushes until Ok. Busy clears when the older operation publishes (or the daemon repairs a
  /// dead one); Full can only come from crash-recovery duplicates and clears as they are popped.
  static void push(IndexRing r, std::uint32_t slot, layout::ClaimRecord& rec, std::uint32_t tag = 0) noexcept;
  /// Makes a slot whose state is READY reachable: pushes it to ready[priority], sets its bit in
  /// ready_mask if clear, and wakes parked consumers.
  void push_ready(std::uint32_t slot, layout::ClaimRecord& rec) const noexcept;
  /// Pushes a FREE slot to the free ring and wakes parked producers.
  void push_free(std::uint32_t slot, layout::ClaimRecord& rec) const noexcept;

 private:
  IndexRing ring_at(std::uint64_t off) const noexcept { return IndexRing(base_ + off); }
  std::byte* base_ = nullptr;
  layout::QueueHeader* hdr_ = nullptr;
  std::byte* slots_ = nullptr;
};

/// What a producer sets on a message before publish().
struct QueueSendMeta {
  std::uint32_t length = 0;
  std::uint8_t priority = layout::kDefaultPriority;
  std::uint64_t deliver_at_ns = 0;  // monotonic; 0 = at once
  std::uint64_t expires_at_ns = 0;  // monotonic; 0 = never
  std::int64_t timestamp_ns = 0;
  std::uint64_t producer_seq = 0;
  std::uint32_t producer_id = 0;
  std::uint64_t incarnation = 0;
  bool framed = false;      // the payload is a message frame
  bool persistent = false;  // PERSISTENT: handed to the persistence agent too (docs/persistence.md)
  bool durable_wait = false;  // the producer waits for the fsync (Acks::Durable): flush at once
  bool replicated_wait = false;  // the producer waits for the high watermark (Acks::Replicated)
};

/// A producer's side. One thread at a time.
class QueueWriter {
 public:
  QueueWriter() = default;
  QueueWriter(QueueRing q, std::uint32_t entry) noexcept;
  /// Takes a FREE slot and marks it WRITING (owner: this entry). False: none free (queue full).
  bool acquire(std::uint32_t& slot) noexcept;
  /// Fills the slot header and makes the slot READY (pushed to its priority ring, consumers
  /// woken) or, with deliver_at in the future, SCHEDULED (handed to the daemon).
  void publish(std::uint32_t slot, const QueueSendMeta& m) noexcept;
  /// Gives a WRITING slot back unsent (transaction rollback).
  void discard(std::uint32_t slot) noexcept;
  const QueueRing& ring() const noexcept { return q_; }
  layout::QueueProducerEntry& entry() const noexcept { return *e_; }

 private:
  QueueRing q_;
  layout::QueueProducerEntry* e_ = nullptr;
  std::uint32_t index_ = 0;
};

/// One delivery held by a consumer.
struct QueueDelivery {
  std::uint32_t slot = 0;
  std::uint64_t word = 0;  // the DELIVERED state word: what ack/give_back compare against
};

enum class TakeStatus { Ok, Empty, WindowFull };
enum class SettleStatus { Ok, NotOwned };  // NotOwned: already settled or taken back (ack timeout)

/// A consumer's side. One thread at a time.
class QueueReader {
 public:
  QueueReader() = default;
  /// `track`: record each delivery in the in-flight FIFO (every ack mode but AUTO): the daemon
  /// times it out after the entry's ack_timeout_ns, and ack_all/give_back_all walk it.
  QueueReader(QueueRing q, std::uint32_t entry, bool track) noexcept;
  /// Takes the highest-priority READY message: DELIVERED to this consumer. Expired messages met
  /// on the way are handed to the daemon, never returned. WindowFull: `window` deliveries are
  /// unsettled (tracking only).
  TakeStatus take(QueueDelivery& d) noexcept;
  /// A consumer with a selector: `fn(ctx, slot, word)` says whether the READY message in `slot`
  /// (word `word`) matches.
  struct Filter {
    bool (*fn)(void* ctx, std::uint32_t slot, std::uint64_t word) noexcept;
    void* ctx;
  };
  /// Takes the oldest READY message of the highest priority that passes `f`, leaving the others
  /// in the queue for other consumers (docs/queues.md, "Selectors"): it scans the ready rings'
  /// cells in place without popping, from where its last scan ended, and takes a match with the
  /// same CAS as take(); the cell stays behind as a stale entry.
  TakeStatus take_matching(QueueDelivery& d, const Filter& f) noexcept;
  /// take_matching() would look at something new: a push since the last scan (seq_cst loads:
  /// the parker's re-check).
  bool scan_pending() const noexcept;
  /// After copying a delivery out: is it still ours? False only when the daemon took it back
  /// (ack timeout) while we were descheduled between take() and the end of the copy: the copy
  /// may be torn and another consumer has the message; drop it (a seqlock-style re-check).
  bool still_mine(const QueueDelivery& d) const noexcept {
    // SYNC: the acquire fence orders the copy before the state load (as a topic reader does).
    std::atomic_thread_fence(std::memory_order_acquire);
    return q_.slot(d.slot)->state.load(std::memory_order_relaxed) == d.word;
  }
  /// DELIVERED(us, d.word) -> FREE, slot to the free ring; a PERSISTENT message -> ACKED, slot to
  /// the persist ring (the persistence agent logs the ack, then frees it).
  SettleStatus ack(const QueueDelivery& d) noexcept;
  /// DELIVERED(us, d.word) -> REDELIVER, slot to the daemon (rollback, recover).
  SettleStatus give_back(const QueueDelivery& d) noexcept;
  /// Settles every tracked delivery still ours: acks (CLIENT ack, DUPS_OK flush, commit) or
  /// gives back (recover, rollback). Returns how many it settled.
  /// `missed` (optional) counts tracked deliveries that were no longer ours: taken back by the
  /// daemon (ack timeout) or settled one by one before.
  std::uint32_t ack_all(std::uint32_t* missed = nullptr) noexcept { return settle_all(true, missed); }
  std::uint32_t give_back_all() noexcept { return settle_all(false, nullptr); }
  /// Tracked deliveries not known to be settled (FIFO length after dropping settled ones).
  std::uint64_t unsettled() noexcept;
  const QueueRing& ring() const noexcept { return q_; }
  layout::QueueConsumerEntry& entry() const noexcept { return *e_; }
  bool tracking() const noexcept { return track_; }

 private:
  bool mine(std::uint32_t slot, std::uint32_t gen_lo, std::uint64_t& word) const noexcept;
  bool window_full(std::uint64_t& tail) noexcept;
  /// READY `w` past its expiry: handed to the daemon (true).
  bool expire_if_due(std::uint32_t s, std::uint64_t w) noexcept;
  /// READY `w` -> DELIVERED to us, recorded in the FIFO at `tail` (tracking). False: lost the race.
  bool claim(std::uint32_t s, std::uint64_t w, std::uint64_t tail, QueueDelivery& d) noexcept;
  /// Drops stale entries at a ready ring's head (a scan leaves them) and rotates a READY head
  /// nobody matches when stale entries crowd the ring.
  void tidy_head(std::uint32_t p, const Filter& f) noexcept;
  std::uint64_t scan_[layout::kPriorities] = {};  // take_matching(): first cell not yet looked at
  void advance_head() noexcept;
  std::uint32_t settle_all(bool ack, std::uint32_t* missed) noexcept;
  SettleStatus settle(const QueueDelivery& d, bool ack) noexcept;
  QueueRing q_;
  layout::QueueConsumerEntry* e_ = nullptr;
  std::uint32_t index_ = 0;
  bool track_ = false;
};

}  // namespace shmbus::ring
