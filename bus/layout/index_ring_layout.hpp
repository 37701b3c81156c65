// Layout of one index ring: a Vyukov bounded MPMC ring of u32 values (slot numbers), embedded in
// a queue object (docs/queues.md, "Index rings"). The enclosing region's header carries the magic
// and layout version; an index ring is found at an offset the enclosing layout defines.
//
//  offset  size  block                        written by                 read by
//  ------  ----  ---------------------------  -------------------------  ----------------------
//       0   128  IndexRingHeader.config       daemon (once); counters    everyone (at attach)
//                  0 capacity u32 (2^k)        rarely (repair, skips)
//                  4 reserved u32
//                  8 mask u64 (capacity - 1)
//                 16 tombstones_written u64    daemon (repair of a dead push)
//                 24 tombstones_skipped u64    poppers (skipping a tombstone)
//                 32 pops_released u64         daemon (repair of a dead pop)
//                 40 reserved[88]
//     128   128  IndexRingHeader.tail         pushers (CAS)              pushers, poppers, daemon
//     256   128  IndexRingHeader.head         poppers (CAS)              poppers, pushers, daemon
//     384        IndexCell[capacity], 16 bytes each:
//                  0 seq u64    lap tag: == pos free for the push at pos, == pos + 1 full for the
//                               pop at pos; a pop publishes pos + capacity (free for the next lap)
//                  8 value u32  the slot number, or kNoValue (a tombstone: a dead push, repaired)
//                 12 tag u32    ready rings of a queue: the slot's generation (low 32 bits) when it
//                               was pushed, so a scan tells a live entry from a stale one; else 0
//
// ClaimRecord (128 bytes, one per participant = process x role x ring, inside the enclosing
// layout's per-client entries or an array of its own; each on its own 128-byte block because its
// owner writes it on every operation):
//  offset  size  field
//       0     8  op_pos   kClaimIdle, kClaimPending (stored before the head/tail CAS), or the
//                         position the CAS won (stored right after it) until the cell is published
//       8     4  owner    client-table index of the process that owns the record
//      12     4  state    0 free, 1 pusher, 2 popper (written by whoever sets the record up)
//      16   112  reserved
//
// Cell seq values are strictly increasing per cell (i, i+1, i+cap, i+cap+1, ...), so a CAS on a
// cell's seq can never succeed on a stale judgement (no ABA): the daemon's repair is a CAS from
// the seq it judged.
#pragma once
#include "layout/common.hpp"
#include "layout/topic_layout.hpp"  // kClaimIdle, kClaimPending: the same claim-record protocol

#include <type_traits>

namespace shmbus::layout {

inline constexpr std::uint32_t kNoValue = ~0U;  // tombstone value: never a slot number
inline constexpr std::uint32_t kMinIndexRingCapacity = 2;  // Vyukov needs >= 2: with 1, full(0) == free(1)
inline constexpr std::uint32_t kMaxIndexRingCapacity = 1U << 24;

enum class ClaimRole : std::uint32_t { Free = 0, Pusher = 1, Popper = 2 };

struct alignas(kHotBlock) IndexRingHeader {
  // --- config block: capacity and mask written once by the daemon before the enclosing region's
  // layout_version is published; the counters are statistics (relaxed).
  std::uint32_t capacity;
  std::uint32_t reserved0;
  std::uint64_t mask;
  std::atomic<std::uint64_t> tombstones_written;
  std::atomic<std::uint64_t> tombstones_skipped;
  std::atomic<std::uint64_t> pops_released;
  // --- tail block: next push position, contended by pushers only.
  alignas(kHotBlock) std::atomic<std::uint64_t> tail;
  // --- head block: next pop position, contended by poppers only.
  alignas(kHotBlock) std::atomic<std::uint64_t> head;
};

struct IndexCell {
  std::atomic<std::uint64_t> seq;
  std::uint32_t value;
  std::uint32_t tag;  // queue ready rings: the slot's generation (low 32 bits) when pushed; else 0
};

/// Like ProducerEntry::claim_seq on topics: how the daemon tells a live participant's claimed
/// position (never touched) from a dead one's (repaired).
struct alignas(kHotBlock) ClaimRecord {
  std::atomic<std::uint64_t> op_pos;
  std::uint32_t owner;
  std::atomic<std::uint32_t> state;  // ClaimRole
};

static_assert(std::is_standard_layout_v<IndexRingHeader>);
static_assert(sizeof(IndexRingHeader) == 384);
static_assert(offsetof(IndexRingHeader, capacity) == 0);
static_assert(offsetof(IndexRingHeader, mask) == 8);
static_assert(offsetof(IndexRingHeader, tombstones_written) == 16);
static_assert(offsetof(IndexRingHeader, tombstones_skipped) == 24);
static_assert(offsetof(IndexRingHeader, pops_released) == 32);
static_assert(offsetof(IndexRingHeader, tail) == 128);
static_assert(offsetof(IndexRingHeader, head) == 256);
static_assert(std::is_standard_layout_v<IndexCell>);
static_assert(sizeof(IndexCell) == 16);
static_assert(alignof(IndexCell) == 8);
static_assert(offsetof(IndexCell, value) == 8);
static_assert(offsetof(IndexCell, tag) == 12);
static_assert(std::is_standard_layout_v<ClaimRecord>);
static_assert(sizeof(ClaimRecord) == 128);
static_assert(offsetof(ClaimRecord, owner) == 8);
static_assert(offsetof(ClaimRecord, state) == 12);

constexpr std::uint64_t index_cells_offset() noexcept { return sizeof(IndexRingHeader); }
constexpr std::uint64_t index_ring_size(std::uint32_t capacity) noexcept {
  return sizeof(IndexRingHeader) + std::uint64_t{capacity} * sizeof(IndexCell);
}

}  // namespace shmbus::layout
