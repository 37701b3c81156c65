#include "ring/topic_ring.hpp"

#include <bit>
#include <immintrin.h>

namespace shmbus::ring {

using layout::make_stamp;
using layout::stamp_seq;
using layout::stamp_state;

std::string_view check_topic(const void* base, std::size_t mapped_length) noexcept {
  if (mapped_length < sizeof(TopicHeader)) return "topic mapping is smaller than its header";
  const auto* h = static_cast<const TopicHeader*>(base);
  if (h->magic != layout::kTopicMagic) return "topic mapping has a bad magic number (not a shmbus topic)";
  // SYNC: acquire pairs with the daemon's release store of layout_version, written after the
  // config block, so the fields read below are complete.
  const auto v = h->layout_version.load(std::memory_order_acquire);
  if (v == 0) return "topic mapping is not initialised yet";
  if (v != layout::kLayoutVersion) return "topic layout version differs from this client's (upgrade client or daemon)";
  if (!std::has_single_bit(h->slot_count) || h->slot_count > layout::kMaxSlots || h->max_payload == 0 ||
      h->max_payload > layout::kMaxPayload || h->slot_size != layout::slot_size_for(h->max_payload) ||
      h->max_subscribers > layout::kMaxSubscribers || h->max_producers > layout::kMaxProducers)
    return "topic header geometry is inconsistent";
  if (h->total_length != layout::topic_size(h->slot_count, h->max_payload, h->max_subscribers, h->max_producers) ||
      h->total_length > mapped_length)
    return "topic mapping is shorter than its header says";
  return {};
}

TopicRing::TopicRing(void* base) noexcept
    : hdr_(static_cast<TopicHeader*>(base)),
      subs_(reinterpret_cast<SubscriberEntry*>(static_cast<std::byte*>(base) + sizeof(TopicHeader))),
      prods_(reinterpret_cast<layout::ProducerEntry*>(static_cast<std::byte*>(base) +
                                                    layout::producers_offset(hdr_->max_subscribers))),
      slots_(static_cast<std::byte*>(base) + layout::slots_offset(hdr_->max_subscribers, hdr_->max_producers)),
      mask_(hdr_->slot_count - 1ULL),
      slot_size_(hdr_->slot_size),
      max_payload_(hdr_->max_payload) {}

/// True when `stamp` says the slot is free for sequence `seq`: the previous lap is published.
static bool previous_lap_done(std::uint64_t stamp, std::uint64_t seq, std::uint64_t n) noexcept {
  if (seq < n) return stamp == 0;  // first lap: the daemon zero-filled the ring
  return stamp == make_stamp(seq - n, SlotState::Data) || stamp == make_stamp(seq - n, SlotState::Pad);
}

ClaimStatus TopicWriter::claim(std::uint32_t length, SlotClaim& out, std::uint32_t spin_limit) noexcept {
  if (length > ring_.max_payload()) return ClaimStatus::TooLarge;
  std::uint64_t seq = stalled_seq_;
  if (seq == ~0ULL) {
    // Relaxed: ordered before the claim by the release half of the fetch_add below.
    entry_->claim_seq.store(layout::kClaimPending, std::memory_order_relaxed);
    // SYNC: acq_rel. Release: the janitor, whose acquire load of the tail sees this claim (or a
    // later one in the tail's release sequence), also sees "pending" (or newer) in our entry and so
    // never pads a sequence a live producer may hold.
    seq = ring_.header().tail.fetch_add(1, std::memory_order_acq_rel);
    // SYNC: release pairs with the janitor's acquire load of claim_seq: when it reads a newer
    // value than `seq`, our publication of `seq` is visible to its CAS.
    entry_->claim_seq.store(seq, std::memory_order_release);
  }
  SlotHeader* s = ring_.slot(seq);
  std::byte* data = TopicRing::payload(s);
  // Ask for the payload line with write intent now, in parallel with the wait below and the
  // header line's ownership transfer (PREFETCHW).
  __builtin_prefetch(data, 1, 3);
  const std::uint64_t n = ring_.slot_count();
  for (std::uint32_t spins = 0;; ++spins) {
    // SYNC: acquire pairs with the previous lap's publish (exchange), so its writes to this slot
    // are finished before we overwrite them.
    const std::uint64_t cur = s->stamp.load(std::memory_order_acquire);
    if (previous_lap_done(cur, seq, n)) break;
    if (spins >= spin_limit) {
      stalled_seq_ = seq;
      return ClaimStatus::Stalled;
    }
    _mm_pause();
  }
  stalled_seq_ = ~0ULL;
  // Relaxed: published by the release store of the writing mark just below.
  s->owner.store(owner_, std::memory_order_relaxed);
  // SYNC: release pairs with the janitor's acquire load of writing(seq): it sees this lap's owner,
  // never the previous lap's. Then a release fence (seqlock writer): a lapped reader that sees any
  // of our payload writes sees writing(seq) when it re-checks the stamp after its acquire fence.
  // A plain store, not an RMW: the slot is ours (see previous_lap_done), and the store buffer lets
  // the header line's transfer overlap the payload writes.
  s->stamp.store(make_stamp(seq, SlotState::Writing), std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_release);
  out.slot = s;
  out.data = data;
  out.seq = seq;
  return ClaimStatus::Ok;
}

void wake_parked(TopicHeader& h) noexcept {
  // After the caller's seq_cst stamp publish: either we see the waiter, or it sees the stamp.
  wake_waiters(h.notify_seq, h.waiters);
}

void TopicWriter::publish(SlotHeader* s, std::uint64_t stamp) noexcept {
  // SYNC: seq_cst exchange — release pairs with readers' acquire load of the stamp (payload and
  // header fields visible); seq_cst orders it before wake_parked's waiters load (Dekker).
  s->stamp.exchange(stamp, std::memory_order_seq_cst);
  wake_parked(ring_.header());
}

void TopicWriter::commit(const SlotClaim& c, std::uint32_t length, std::int64_t timestamp_ns, std::uint32_t flags,
                         std::uint64_t incarnation, std::int64_t expiration_ns) noexcept {
  SlotHeader* s = c.slot;
  s->producer_id = producer_id_;
  s->length = length;
  s->flags = flags;
  s->producer_seq = ++producer_seq_;
  s->timestamp_ns = timestamp_ns;
  s->incarnation = incarnation;
  s->expiration_ns = expiration_ns;
  publish(s, make_stamp(c.seq, SlotState::Data));
}

void TopicWriter::abort(const SlotClaim& c) noexcept { publish(c.slot, make_stamp(c.seq, SlotState::Pad)); }

bool TopicReader::ready(std::memory_order order) const noexcept {
  const std::uint64_t st = ring_.slot(pos_)->stamp.load(order);
  const std::uint64_t sq = stamp_seq(st);
  return sq > pos_ || (sq == pos_ && (stamp_state(st) == SlotState::Data || stamp_state(st) == SlotState::Pad));
}

PollStatus TopicReader::poll(std::byte* buf, ReadMeta& meta, std::uint64_t& lost) noexcept {
  for (;;) {
    SlotHeader* s = ring_.slot(pos_);
    // SYNC: acquire pairs with the producer's seq_cst exchange in publish(): header and payload
    // written before it are visible.
    const std::uint64_t st = s->stamp.load(std::memory_order_acquire);
    const std::uint64_t want = make_stamp(pos_, SlotState::Data);
    if (st == want) {
      const std::uint32_t len = s->length;
      if (len <= ring_.max_payload()) {
        meta.seq = pos_;
        meta.producer_id = s->producer_id;
        meta.length = len;
        meta.flags = s->flags;
        meta.producer_seq = s->producer_seq;
        meta.timestamp_ns = s->timestamp_ns;
        meta.incarnation = s->incarnation;
        meta.expiration_ns = s->expiration_ns;
        std::memcpy(buf, TopicRing::payload(s), len);
      }
      // SYNC: seqlock re-check. The fence keeps the copies above before the stamp re-load; a
      // lapping producer stores writing(seq + n) and a release fence before it writes the payload.
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s->stamp.load(std::memory_order_relaxed) == want && len <= ring_.max_payload()) {
        ++pos_;
        ++received_;
        // Relaxed: position and received are statistics for `shmbus stat`, not synchronisation.
        entry_->position.store(pos_, std::memory_order_relaxed);
        entry_->received.store(received_, std::memory_order_relaxed);
        return PollStatus::Message;
      }
      // Overwritten while we copied: fall through to the lap handling below.
    } else if (st == make_stamp(pos_, SlotState::Pad)) {
      ++pos_;  // a hole left by a dead producer (or an aborted claim): not a message
      // Relaxed: a hint for the daemon's repairer, which judges the slot at this position.
      entry_->position.store(pos_, std::memory_order_relaxed);
      continue;
    } else if (stamp_seq(st) <= pos_) {
      return PollStatus::Empty;
    }
    // Lapped: a newer lap owns the slot. Resume a quarter ring behind the current tail so the
    // reader does not land on slots that are being overwritten right now.
    // Acquire: pairs with nothing in particular; we only need a tail at least as new as the stamp.
    const std::uint64_t tail = ring_.header().tail.load(std::memory_order_acquire);
    const std::uint64_t n = ring_.slot_count();
    std::uint64_t resume = tail > n ? tail - n + n / 4 : 0;
    if (resume <= pos_) resume = pos_ + 1;
    lost = resume - pos_;
    lost_ += lost;
    pos_ = resume;
    entry_->position.store(pos_, std::memory_order_relaxed);
    entry_->lost.store(lost_, std::memory_order_relaxed);
    return PollStatus::Lapped;
  }
}

}  // namespace shmbus::ring
