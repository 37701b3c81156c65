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
  if (!std::has_single_bit(h->slot_count) || h->slot_size != layout::slot_size_for(h->max_payload) ||
      h->max_subscribers > layout::kMaxSubscribers)
    return "topic header geometry is inconsistent";
  if (h->total_length != layout::topic_size(h->slot_count, h->max_payload, h->max_subscribers) ||
      h->total_length > mapped_length)
    return "topic mapping is shorter than its header says";
  return {};
}

TopicRing::TopicRing(void* base) noexcept
    : hdr_(static_cast<TopicHeader*>(base)),
      subs_(reinterpret_cast<SubscriberEntry*>(static_cast<std::byte*>(base) + sizeof(TopicHeader))),
      slots_(static_cast<std::byte*>(base) + layout::slots_offset(hdr_->max_subscribers)),
      mask_(hdr_->slot_count - 1ULL),
      slot_size_(hdr_->slot_size),
      max_payload_(hdr_->max_payload) {}

ClaimStatus TopicWriter::claim(std::uint32_t length, SlotClaim& out, std::uint32_t spin_limit) noexcept {
  if (length > ring_.max_payload()) return ClaimStatus::TooLarge;
  auto& h = ring_.header();
  for (;;) {
    std::uint64_t seq = stalled_seq_;
    if (seq == ~0ULL) {
      // Relaxed: the fetch_add only hands out unique sequences; the slot's stamp CAS below is
      // what orders our writes against readers and the daemon.
      seq = h.tail.fetch_add(1, std::memory_order_relaxed);
    }
    SlotHeader* s = ring_.slot(seq);
    for (std::uint32_t spins = 0;; ++spins) {
      // SYNC: acquire pairs with the previous lap writer's release (exchange) of data/pad, so its
      // writes to this slot are finished before we overwrite them.
      std::uint64_t cur = s->stamp.load(std::memory_order_acquire);
      const std::uint64_t cur_seq = stamp_seq(cur);
      // The daemon revoked our claim (pad) or a later lap took the slot: claim again. (A fresh
      // ring holds empty(0) in every slot, which is "not yet written" for sequence 0.)
      if (cur_seq > seq || (cur_seq == seq && stamp_state(cur) != SlotState::Empty)) break;
      if (stamp_state(cur) == SlotState::Writing) {
        // The previous lap's producer is still writing this slot: wait for it (bounded).
        if (spins >= spin_limit) {
          stalled_seq_ = seq;
          return ClaimStatus::Stalled;
        }
        _mm_pause();
        continue;
      }
      // Relaxed: published by the release half of the CAS below; the daemon reads owner after an
      // acquire load of stamp == writing(seq).
      s->owner.store(owner_, std::memory_order_relaxed);
      // SYNC: acq_rel — release publishes `owner` to the daemon's acquire load; acquire (plus the
      // locked instruction on x86) keeps our payload writes after the stamp change, which a lapped
      // reader's seqlock re-check relies on.
      if (s->stamp.compare_exchange_strong(cur, make_stamp(seq, SlotState::Writing), std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
        stalled_seq_ = ~0ULL;
        out.slot = s;
        out.data = TopicRing::payload(s);
        out.seq = seq;
        return ClaimStatus::Ok;
      }
      // CAS failed: the daemon padded a claim it thought abandoned, or the stamp moved; retry.
    }
    stalled_seq_ = ~0ULL;
  }
}

void TopicWriter::publish(SlotHeader* s, std::uint64_t stamp) noexcept {
  auto& h = ring_.header();
  // SYNC: seq_cst exchange — release pairs with readers' acquire load of the stamp (payload and
  // header fields visible); seq_cst orders it before the waiters load below, the other half of
  // the parker's seq_cst waiters increment + stamp re-check (Dekker): either we see the waiter,
  // or the waiter sees our stamp.
  s->stamp.exchange(stamp, std::memory_order_seq_cst);
  if (h.waiters.load(std::memory_order_seq_cst) != 0) {
    // Release: a woken parker's acquire load of notify_seq sees it changed.
    h.notify_seq.fetch_add(1, std::memory_order_release);
    futex_wake_all(h.notify_seq);
  }
}

void TopicWriter::commit(const SlotClaim& c, std::uint32_t length, std::int64_t timestamp_ns) noexcept {
  SlotHeader* s = c.slot;
  s->producer_id = producer_id_;
  s->length = length;
  s->flags = 0;
  s->producer_seq = ++producer_seq_;
  s->timestamp_ns = timestamp_ns;
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
        std::memcpy(buf, TopicRing::payload(s), len);
      }
      // SYNC: seqlock re-check. The fence keeps the copies above before the stamp re-load; a
      // lapping producer changes the stamp (acq_rel CAS) before it writes the payload.
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
