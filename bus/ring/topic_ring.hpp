// Non-owning views over a topic ring in shared memory (layout: layout/topic_layout.hpp).
//
// Producers: announce a claim in their ProducerEntry, seq = tail.fetch_add(1), record seq; wait
// until the slot holds the previous lap's publication (data/pad(seq - n)); mark writing(seq) with a
// plain store; write in place; publish with stamp = data(seq). fetch_add makes the sequence unique
// and "previous lap published" makes the slot free, so no CAS is needed on the slot.
// Readers: each keeps its own sequence and reads a slot only when its stamp says data(seq); a
// stamp from a newer lap means the reader was lapped. A reader copies the payload out and
// re-checks the stamp (seqlock) because a lapping producer may overwrite the slot while it is read.
#pragma once
#include "layout/topic_layout.hpp"
#include "ring/futex.hpp"

#include <cstring>
#include <span>

namespace shmbus::ring {

using layout::SlotHeader;
using layout::SlotState;
using layout::SubscriberEntry;
using layout::TopicHeader;

/// Validates a mapped topic before anything else is touched. Returns "" when usable.
std::string_view check_topic(const void* base, std::size_t mapped_length) noexcept;

/// Geometry of one mapped topic; cheap to copy.
class TopicRing {
 public:
  TopicRing() = default;
  explicit TopicRing(void* base) noexcept;

  TopicHeader& header() const noexcept { return *hdr_; }
  SlotHeader* slot(std::uint64_t seq) const noexcept {
    return reinterpret_cast<SlotHeader*>(slots_ + (seq & mask_) * slot_size_);
  }
  static std::byte* payload(SlotHeader* s) noexcept { return reinterpret_cast<std::byte*>(s + 1); }
  SubscriberEntry* subscriber(std::uint32_t i) const noexcept { return subs_ + i; }
  layout::ProducerEntry* producer(std::uint32_t i) const noexcept { return prods_ + i; }
  std::uint32_t slot_count() const noexcept { return static_cast<std::uint32_t>(mask_ + 1); }
  std::uint32_t max_payload() const noexcept { return max_payload_; }
  bool valid() const noexcept { return hdr_ != nullptr; }

 private:
  TopicHeader* hdr_ = nullptr;
  SubscriberEntry* subs_ = nullptr;
  layout::ProducerEntry* prods_ = nullptr;
  std::byte* slots_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint32_t slot_size_ = 0;
  std::uint32_t max_payload_ = 0;
};

/// The publisher's half of the parking handshake, after a seq_cst publish of a slot stamp: wakes
/// parked readers if any; no system call when nobody is parked.
void wake_parked(TopicHeader& h) noexcept;

enum class ClaimStatus { Ok, TooLarge, Stalled };

struct SlotClaim {
  SlotHeader* slot = nullptr;
  std::byte* data = nullptr;
  std::uint64_t seq = 0;
};

/// Producer side. One per MessageProducer; not thread-safe (a producer belongs to one session).
class TopicWriter {
 public:
  TopicWriter() = default;
  TopicWriter(TopicRing ring, layout::ProducerEntry* entry, std::uint32_t owner, std::uint32_t producer_id) noexcept
      : ring_(ring), entry_(entry), owner_(owner), producer_id_(producer_id) {}

  /// Claims the next slot. Stalled: the previous lap of that slot is still unpublished after
  /// `spin_limit` tries (its producer is slow, or dead and not yet repaired) — call again; the
  /// claim is kept.
  ClaimStatus claim(std::uint32_t length, SlotClaim& out, std::uint32_t spin_limit = 1U << 16) noexcept;
  /// Publishes a claimed slot with `length` payload bytes; wakes parked readers if any.
  void commit(const SlotClaim& c, std::uint32_t length, std::int64_t timestamp_ns) noexcept {
    commit(c, length, timestamp_ns, 0, 0, 0);
  }
  /// The same, with the message-model fields: `flags` (layout::kSlotFramed), the producer's
  /// incarnation and a CLOCK_REALTIME expiration (0 = never).
  void commit(const SlotClaim& c, std::uint32_t length, std::int64_t timestamp_ns, std::uint32_t flags,
              std::uint64_t incarnation, std::int64_t expiration_ns) noexcept;
  /// Gives a claimed slot back as padding: readers skip it.
  void abort(const SlotClaim& c) noexcept;

  const TopicRing& ring() const noexcept { return ring_; }
  std::uint64_t sent() const noexcept { return producer_seq_; }

 private:
  void publish(SlotHeader* s, std::uint64_t stamp) noexcept;
  TopicRing ring_;
  layout::ProducerEntry* entry_ = nullptr;
  std::uint32_t owner_ = 0;
  std::uint32_t producer_id_ = 0;
  std::uint64_t producer_seq_ = 0;
  std::uint64_t stalled_seq_ = ~0ULL;  // a claimed sequence we are still waiting to start
};

enum class PollStatus { Message, Empty, Lapped };

/// What a reader copies out of a slot.
struct ReadMeta {
  std::uint64_t seq = 0;
  std::uint32_t producer_id = 0;
  std::uint32_t length = 0;
  std::uint32_t flags = 0;
  std::uint64_t producer_seq = 0;
  std::int64_t timestamp_ns = 0;
  std::uint64_t incarnation = 0;
  std::int64_t expiration_ns = 0;
};

/// Subscriber side. One per MessageConsumer.
class TopicReader {
 public:
  TopicReader() = default;
  SubscriberEntry& entry() const noexcept { return *entry_; }
  TopicReader(TopicRing ring, SubscriberEntry* entry, std::uint64_t start) noexcept
      : ring_(ring), entry_(entry), pos_(start) {}

  /// Copies the next message into `buf` (at least max_payload bytes). On Lapped, `lost` holds the
  /// exact number of ring sequences skipped and the reader has moved on; the next poll continues.
  PollStatus poll(std::byte* buf, ReadMeta& meta, std::uint64_t& lost) noexcept;
  /// True when poll() would not return Empty. `order` is seq_cst when used as the parker's re-check.
  bool ready(std::memory_order order = std::memory_order_acquire) const noexcept;
  std::uint64_t position() const noexcept { return pos_; }
  const TopicRing& ring() const noexcept { return ring_; }

 private:
  TopicRing ring_;
  SubscriberEntry* entry_ = nullptr;
  std::uint64_t pos_ = 0;
  std::uint64_t received_ = 0;
  std::uint64_t lost_ = 0;
};

}  // namespace shmbus::ring
