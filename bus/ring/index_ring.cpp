#include "ring/index_ring.hpp"

#include <bit>
#include <cassert>

namespace shmbus::ring {

using layout::kClaimIdle;
using layout::kClaimPending;
using layout::kNoValue;

namespace {
/// Signed distance a - b of two positions (laps never differ by 2^63).
constexpr std::int64_t dist(std::uint64_t a, std::uint64_t b) noexcept { return static_cast<std::int64_t>(a - b); }
}  // namespace

std::string_view check_index_ring(const void* base, std::size_t available) noexcept {
  if (available < sizeof(IndexRingHeader)) return "index ring is smaller than its header";
  const auto* h = static_cast<const IndexRingHeader*>(base);
  if (!std::has_single_bit(h->capacity) || h->capacity < layout::kMinIndexRingCapacity ||
      h->capacity > layout::kMaxIndexRingCapacity || h->mask != h->capacity - 1ULL)
    return "index ring geometry is inconsistent";
  if (layout::index_ring_size(h->capacity) > available) return "index ring is longer than its mapping";
  return {};
}

IndexRing::IndexRing(void* base) noexcept
    : hdr_(static_cast<IndexRingHeader*>(base)),
      cells_(reinterpret_cast<IndexCell*>(static_cast<std::byte*>(base) + layout::index_cells_offset())),
      mask_(hdr_->mask) {}

bool IndexRing::init(void* base, std::uint32_t capacity) noexcept {
  if (!std::has_single_bit(capacity) || capacity < layout::kMinIndexRingCapacity ||
      capacity > layout::kMaxIndexRingCapacity)
    return false;
  auto* h = static_cast<IndexRingHeader*>(base);
  h->capacity = capacity;
  h->reserved0 = 0;
  h->mask = capacity - 1ULL;
  // Relaxed (all of init): published by the enclosing region's release store of layout_version.
  h->tombstones_written.store(0, std::memory_order_relaxed);
  h->tombstones_skipped.store(0, std::memory_order_relaxed);
  h->pops_released.store(0, std::memory_order_relaxed);
  h->tail.store(0, std::memory_order_relaxed);
  h->head.store(0, std::memory_order_relaxed);
  auto* cells = reinterpret_cast<IndexCell*>(static_cast<std::byte*>(base) + layout::index_cells_offset());
  for (std::uint32_t i = 0; i < capacity; ++i) {
    cells[i].value = kNoValue;
    cells[i].tag = 0;
    cells[i].seq.store(i, std::memory_order_relaxed);  // free for the push at position i
  }
  return true;
}

void IndexRing::init_record(ClaimRecord& r, std::uint32_t owner, layout::ClaimRole role) noexcept {
  r.owner = owner;
  // Relaxed: published by the release store of state below.
  r.op_pos.store(kClaimIdle, std::memory_order_relaxed);
  // SYNC: release pairs with the repairer's acquire load of state: it sees this owner.
  r.state.store(static_cast<std::uint32_t>(role), std::memory_order_release);
}

IndexStatus IndexRing::try_push(std::uint32_t value, ClaimRecord& rec, std::uint32_t tag) noexcept {
  assert(value != kNoValue);
  auto& h = *hdr_;
  bool announced = false;
  // Relaxed: a hint; the cell's seq (acquire) decides whether the position is ours to take.
  std::uint64_t pos = h.tail.load(std::memory_order_relaxed);
  for (;;) {
    IndexCell* c = cell(pos);
    // SYNC: acquire pairs with the release store of seq by the pop of the previous lap (or the
    // repairer's CAS): its read of the value is finished before we overwrite it.
    const std::uint64_t seq = c->seq.load(std::memory_order_acquire);
    const std::int64_t d = dist(seq, pos);
    if (d == 0) {
      if (!announced) {
        // Relaxed: ordered before the CAS below by its release half.
        rec.op_pos.store(kClaimPending, std::memory_order_relaxed);
        announced = true;
      }
      // SYNC: seq_cst on success (acq_rel would do for the ring itself). Release: a repairer whose
      // acquire load of the tail sees this CAS (or any later one: every tail write is an RMW, so
      // they extend the release sequence) also sees our "pending" (or newer) record and so never
      // repairs a position we may hold. seq_cst: the queue layer's wake-up handshakes (a pusher's
      // seq_cst load of a waiter count or ready mask after this CAS, against a parker's seq_cst
      // RMW of that word and seq_cst load of the tail) need no fence; on x86 it is the same
      // locked instruction.
      if (h.tail.compare_exchange_weak(pos, pos + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
        // SYNC: release pairs with the repairer's acquire load of op_pos: a repairer that reads a
        // later value (our next operation) sees this position's publish.
        rec.op_pos.store(pos, std::memory_order_release);
        // Relaxed atomic stores: in-place readers (a queue's selector scan, the browser) may read
        // the cell of an older lap meanwhile; they re-check seq after reading (a seqlock).
        std::atomic_ref<std::uint32_t>(c->value).store(value, std::memory_order_relaxed);
        std::atomic_ref<std::uint32_t>(c->tag).store(tag, std::memory_order_relaxed);
        // SYNC: release pairs with the popper's acquire load of seq (value and tag visible).
        c->seq.store(pos + 1, std::memory_order_release);
        // SYNC: release pairs with the repairer's acquire load of op_pos: a repairer that sees us
        // idle sees our publish, so its CAS from the seq it judged (pos) fails.
        rec.op_pos.store(kClaimIdle, std::memory_order_release);
        return IndexStatus::Ok;
      }
      continue;  // lost the race: pos now holds the current tail
    }
    if (d > 0) {  // a later lap already took this position: catch up
      pos = h.tail.load(std::memory_order_relaxed);
      continue;
    }
    // The cell still holds the previous lap: either queued (full), or popped by a claim that has
    // not published yet (busy). The pop of (pos - capacity) has been claimed iff head is past it.
    // Acquire: pairs with the poppers' CAS, so a head past pos - capacity is a real claim.
    const std::uint64_t head = h.head.load(std::memory_order_acquire);
    IndexStatus r = IndexStatus::Full;
    if (dist(pos, head) < static_cast<std::int64_t>(capacity())) {
      const std::uint64_t now = h.tail.load(std::memory_order_relaxed);
      if (now != pos) {  // our view was stale: another pusher took pos meanwhile
        pos = now;
        continue;
      }
      r = IndexStatus::Busy;
    }
    // Relaxed: we claimed nothing; the next announcement is ordered by its own CAS.
    if (announced) rec.op_pos.store(kClaimIdle, std::memory_order_relaxed);
    return r;
  }
}

IndexStatus IndexRing::try_pop(std::uint32_t& value, ClaimRecord& rec, std::atomic<std::uint64_t>* hold,
                               std::uint32_t* tag) noexcept {
  auto& h = *hdr_;
  bool announced = false;
  // Relaxed: a hint; the cell's seq (acquire) decides.
  std::uint64_t pos = h.head.load(std::memory_order_relaxed);
  for (;;) {
    IndexCell* c = cell(pos);
    // SYNC: acquire pairs with the pusher's (or the repairer's tombstone) release of seq = pos + 1:
    // the value is visible.
    const std::uint64_t seq = c->seq.load(std::memory_order_acquire);
    const std::int64_t d = dist(seq, pos + 1);
    if (d == 0) {
      if (!announced) {
        // Relaxed: ordered before the CAS below by its release half.
        rec.op_pos.store(kClaimPending, std::memory_order_relaxed);
        announced = true;
      }
      // SYNC: acq_rel on success; release pairs with the repairer's acquire load of the head, as
      // in try_push (every head write is an RMW: one release sequence).
      if (h.head.compare_exchange_weak(pos, pos + 1, std::memory_order_acq_rel, std::memory_order_relaxed)) {
        // SYNC: release pairs with the repairer's acquire load of op_pos (see try_push).
        rec.op_pos.store(pos, std::memory_order_release);
        const std::uint32_t v = c->value;
        if (tag != nullptr) *tag = c->tag;
        // Relaxed: ordered before the publish below by its release; read by the daemon only
        // after this process is gone (or has closed the endpoint).
        if (hold != nullptr && v != kNoValue) hold->store(v, std::memory_order_relaxed);
        // SYNC: release pairs with the next lap's pusher's acquire load of seq: our read of the
        // value is done before it overwrites it.
        c->seq.store(pos + capacity(), std::memory_order_release);
        // SYNC: release pairs with the repairer's acquire load of op_pos (see try_push).
        rec.op_pos.store(kClaimIdle, std::memory_order_release);
        announced = false;
        if (v != kNoValue) {
          value = v;
          return IndexStatus::Ok;
        }
        // A tombstone (a repaired dead push): not a value. Relaxed: statistics only.
        h.tombstones_skipped.fetch_add(1, std::memory_order_relaxed);
        ++pos;
        continue;
      }
      continue;  // lost the race: pos now holds the current head
    }
    if (d > 0) {  // another popper already took this position: catch up
      pos = h.head.load(std::memory_order_relaxed);
      continue;
    }
    // Not yet published for pos: empty, unless a push of pos has been claimed (busy).
    // Acquire: pairs with the pushers' CAS, so a tail past pos is a real claim.
    const std::uint64_t tail = h.tail.load(std::memory_order_acquire);
    IndexStatus r = IndexStatus::Empty;
    if (tail > pos) {
      const std::uint64_t now = h.head.load(std::memory_order_relaxed);
      if (now != pos) {  // our view was stale: another popper took pos meanwhile
        pos = now;
        continue;
      }
      r = IndexStatus::Busy;
    }
    // Relaxed: we claimed nothing.
    if (announced) rec.op_pos.store(kClaimIdle, std::memory_order_relaxed);
    return r;
  }
}

}  // namespace shmbus::ring
