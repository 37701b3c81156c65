// The index ring (Vyukov bounded MPMC ring of u32 slot numbers) and its daemon-side repair.
// Single-threaded: order, full/empty, laps, Busy, tombstones, and the repair rule — a claimed but
// unpublished position is repaired only when no live ClaimRecord of its role names it or is
// pending. A participant that died between its head/tail CAS and its publish is simulated by doing
// the announce + CAS steps by hand and abandoning the cell.
#include "ring/index_repair.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

namespace shmbus::ring {
namespace {

using layout::ClaimRole;
using layout::kClaimIdle;
using layout::kClaimPending;
using layout::kNoValue;

struct alignas(layout::kHotBlock) Block {
  std::byte b[layout::kHotBlock];
};

/// An index ring in plain process memory plus claim records, set up the way the daemon would.
class IndexRingMemory {
 public:
  explicit IndexRingMemory(std::uint32_t capacity)
      : mem_((layout::index_ring_size(capacity) + sizeof(Block) - 1) / sizeof(Block)) {
    if (!IndexRing::init(mem_.data(), capacity)) ADD_FAILURE() << "init refused capacity " << capacity;
    ring_ = IndexRing(mem_.data());
  }
  IndexRing ring() const noexcept { return ring_; }
  IndexRingHeader& header() const noexcept { return ring_.header(); }
  ClaimRecord& record(std::uint32_t i, std::uint32_t owner, ClaimRole role) {
    IndexRing::init_record(records_[i], owner, role);
    return records_[i];
  }
  std::span<const ClaimRecord> records() const noexcept { return records_; }

  /// A pusher that wins the tail CAS for the current tail and dies before writing its cell.
  std::uint64_t abandon_push(ClaimRecord& rec) {
    rec.op_pos.store(kClaimPending, std::memory_order_relaxed);
    const std::uint64_t pos = header().tail.fetch_add(1, std::memory_order_acq_rel);
    rec.op_pos.store(pos, std::memory_order_release);
    return pos;
  }
  /// A popper that wins the head CAS (cell full) and dies before publishing the cell free.
  std::uint64_t abandon_pop(ClaimRecord& rec) {
    rec.op_pos.store(kClaimPending, std::memory_order_relaxed);
    const std::uint64_t pos = header().head.fetch_add(1, std::memory_order_acq_rel);
    rec.op_pos.store(pos, std::memory_order_release);
    return pos;
  }

 private:
  std::vector<Block> mem_;
  IndexRing ring_;
  std::array<ClaimRecord, 8> records_{};
};

constexpr std::uint32_t kLiveOwner = 1;
constexpr std::uint32_t kDeadOwner = 9;
const IsLiveOwner kOnlyDeadIs9 = [](std::uint32_t owner) { return owner != kDeadOwner; };

struct Released {
  std::vector<std::pair<std::uint64_t, std::uint32_t>> got;
  OnReleased sink() {
    return [this](std::uint64_t pos, std::uint32_t v) { got.emplace_back(pos, v); };
  }
};

std::vector<std::uint32_t> drain(IndexRing sut, ClaimRecord& rec) {
  std::vector<std::uint32_t> out;
  std::uint32_t v = 0;
  while (sut.try_pop(v, rec) == IndexStatus::Ok) out.push_back(v);
  return out;
}

TEST(IndexRing_test, InitRejectsCapacitiesThatAreNotPowersOfTwoAtLeastTwo) {
  std::vector<Block> mem(16);
  EXPECT_FALSE(IndexRing::init(mem.data(), 0));
  EXPECT_FALSE(IndexRing::init(mem.data(), 1)) << "capacity 1: full(0) == free(1), Vyukov breaks";
  EXPECT_FALSE(IndexRing::init(mem.data(), 6));
  EXPECT_TRUE(IndexRing::init(mem.data(), 4));
  EXPECT_EQ(check_index_ring(mem.data(), layout::index_ring_size(4)), "");
  EXPECT_NE(check_index_ring(mem.data(), layout::index_ring_size(4) - 1), "");
}

TEST(IndexRing_test, PopsValuesInPushOrder) {
  IndexRingMemory mem(8);
  IndexRing sut = mem.ring();
  auto& pusher = mem.record(0, kLiveOwner, ClaimRole::Pusher);
  auto& popper = mem.record(1, kLiveOwner, ClaimRole::Popper);
  for (std::uint32_t v : {5U, 3U, 7U, 0U}) ASSERT_EQ(sut.try_push(v, pusher), IndexStatus::Ok);

  EXPECT_EQ(drain(sut, popper), (std::vector<std::uint32_t>{5, 3, 7, 0}));
  EXPECT_EQ(pusher.op_pos.load(), kClaimIdle) << "a finished push leaves its record idle";
  EXPECT_EQ(popper.op_pos.load(), kClaimIdle);
}

TEST(IndexRing_test, FullAfterCapacityPushesEmptyAfterDrain) {
  IndexRingMemory mem(4);
  IndexRing sut = mem.ring();
  auto& pusher = mem.record(0, kLiveOwner, ClaimRole::Pusher);
  auto& popper = mem.record(1, kLiveOwner, ClaimRole::Popper);
  std::uint32_t v = 0;
  EXPECT_EQ(sut.try_pop(v, popper), IndexStatus::Empty);
  for (std::uint32_t i = 0; i < 4; ++i) ASSERT_EQ(sut.try_push(i, pusher), IndexStatus::Ok);

  EXPECT_EQ(sut.try_push(99, pusher), IndexStatus::Full);
  EXPECT_EQ(pusher.op_pos.load(), kClaimIdle) << "a refused push claims nothing";
  ASSERT_EQ(sut.try_pop(v, popper), IndexStatus::Ok);
  EXPECT_EQ(v, 0U);
  EXPECT_EQ(sut.try_push(4, pusher), IndexStatus::Ok) << "one pop makes room for one push";
  EXPECT_EQ(sut.try_push(5, pusher), IndexStatus::Full);
  EXPECT_EQ(drain(sut, popper), (std::vector<std::uint32_t>{1, 2, 3, 4}));
  EXPECT_EQ(sut.try_pop(v, popper), IndexStatus::Empty);
}

TEST(IndexRing_test, WrapsAroundManyLapsKeepingOrder) {
  IndexRingMemory mem(4);
  IndexRing sut = mem.ring();
  auto& pusher = mem.record(0, kLiveOwner, ClaimRole::Pusher);
  auto& popper = mem.record(1, kLiveOwner, ClaimRole::Popper);
  std::uint32_t next_push = 0, next_pop = 0;
  for (std::uint32_t round = 0; round < 10'000; ++round) {
    const std::uint32_t burst = 1 + round % 4;  // 1..capacity at a time, so the phase drifts
    for (std::uint32_t i = 0; i < burst; ++i) ASSERT_EQ(sut.try_push(next_push++, pusher), IndexStatus::Ok);
    for (std::uint32_t i = 0; i < burst; ++i) {
      std::uint32_t v = 0;
      ASSERT_EQ(sut.try_pop(v, popper), IndexStatus::Ok);
      ASSERT_EQ(v, next_pop++) << "round " << round;
    }
  }
  EXPECT_GT(mem.header().tail.load(), 4U * 1000) << "many laps done";
  EXPECT_EQ(mem.header().head.load(), mem.header().tail.load());
}

TEST(IndexRing_test, UnpublishedPushMakesPoppersBusyNotEmpty) {
  IndexRingMemory mem(4);
  IndexRing sut = mem.ring();
  auto& slow = mem.record(0, kLiveOwner, ClaimRole::Pusher);
  auto& popper = mem.record(1, kLiveOwner, ClaimRole::Popper);
  mem.abandon_push(slow);  // position 0 claimed, not published
  std::uint32_t v = 0;

  EXPECT_EQ(sut.try_pop(v, popper), IndexStatus::Busy);
  EXPECT_EQ(popper.op_pos.load(), kClaimIdle);
  EXPECT_EQ(mem.header().head.load(), 0U);
}

TEST(IndexRing_test, UnpublishedPopMakesPushersBusyOneLapLaterNotFull) {
  IndexRingMemory mem(4);
  IndexRing sut = mem.ring();
  auto& pusher = mem.record(0, kLiveOwner, ClaimRole::Pusher);
  auto& slow = mem.record(1, kLiveOwner, ClaimRole::Popper);
  auto& popper = mem.record(2, kLiveOwner, ClaimRole::Popper);
  for (std::uint32_t i = 0; i < 4; ++i) ASSERT_EQ(sut.try_push(i, pusher), IndexStatus::Ok);
  mem.abandon_pop(slow);  // position 0 claimed, cell not given back
  std::uint32_t v = 0;
  ASSERT_EQ(sut.try_pop(v, popper), IndexStatus::Ok);
  EXPECT_EQ(v, 1U);

  EXPECT_EQ(sut.try_push(4, pusher), IndexStatus::Busy) << "position 4 waits on the pop of 0";
}

TEST(IndexRingRepair_test, DeadPushBecomesATombstoneThatPoppersSkipAndCount) {
  IndexRingMemory mem(8);
  IndexRing sut = mem.ring();
  auto& pusher = mem.record(0, kLiveOwner, ClaimRole::Pusher);
  auto& dying = mem.record(1, kDeadOwner, ClaimRole::Pusher);
  auto& popper = mem.record(2, kLiveOwner, ClaimRole::Popper);
  ASSERT_EQ(sut.try_push(10, pusher), IndexStatus::Ok);
  const std::uint64_t hole = mem.abandon_push(dying);
  ASSERT_EQ(sut.try_push(12, pusher), IndexStatus::Ok);
  std::uint32_t v = 0;
  ASSERT_EQ(sut.try_pop(v, popper), IndexStatus::Ok);
  ASSERT_EQ(sut.try_pop(v, popper), IndexStatus::Busy) << "the hole blocks poppers before repair";
  IndexRingRepair repair(sut, mem.records());
  Released released;

  const IndexRepairResult r = repair.repair(kOnlyDeadIs9, released.sink());

  EXPECT_EQ(r.tombstoned, 1U);
  EXPECT_EQ(r.released + r.held, 0U);
  EXPECT_TRUE(released.got.empty()) << "a dead push has no value to give back";
  EXPECT_EQ(sut.cell(hole)->seq.load(), hole + 1);
  EXPECT_EQ(sut.cell(hole)->value, kNoValue);
  EXPECT_EQ(drain(sut, popper), (std::vector<std::uint32_t>{12})) << "the tombstone is skipped";
  EXPECT_EQ(mem.header().tombstones_skipped.load(), 1U);
  EXPECT_EQ(mem.header().tombstones_written.load(), 1U);
  const IndexRepairResult again = repair.repair(kOnlyDeadIs9, released.sink());
  EXPECT_EQ(again.tombstoned + again.released + again.held, 0U) << "nothing left to repair";
}

TEST(IndexRingRepair_test, DeadPopIsReleasedAndItsValueReportedSoPushersMoveOn) {
  IndexRingMemory mem(4);
  IndexRing sut = mem.ring();
  auto& pusher = mem.record(0, kLiveOwner, ClaimRole::Pusher);
  auto& dying = mem.record(1, kDeadOwner, ClaimRole::Popper);
  auto& popper = mem.record(2, kLiveOwner, ClaimRole::Popper);
  for (std::uint32_t i : {40U, 41U, 42U, 43U}) ASSERT_EQ(sut.try_push(i, pusher), IndexStatus::Ok);
  const std::uint64_t lost = mem.abandon_pop(dying);  // takes 40 and dies
  std::uint32_t v = 0;
  ASSERT_EQ(sut.try_pop(v, popper), IndexStatus::Ok);
  ASSERT_EQ(sut.try_push(44, pusher), IndexStatus::Busy);
  IndexRingRepair repair(sut, mem.records());
  Released released;

  const IndexRepairResult r = repair.repair(kOnlyDeadIs9, released.sink());

  EXPECT_EQ(r.released, 1U);
  EXPECT_EQ(r.tombstoned + r.held, 0U);
  ASSERT_EQ(released.got.size(), 1U);
  EXPECT_EQ(released.got[0], std::make_pair(lost, 40U)) << "the daemon learns which value to put back";
  EXPECT_EQ(mem.header().pops_released.load(), 1U);
  EXPECT_EQ(sut.try_push(44, pusher), IndexStatus::Ok);
  EXPECT_EQ(drain(sut, popper), (std::vector<std::uint32_t>{42, 43, 44}));
}

TEST(IndexRingRepair_test, LiveClaimedOrPendingRecordsAreNeverRepaired) {
  IndexRingMemory mem(4);
  IndexRing sut = mem.ring();
  auto& pusher = mem.record(0, kLiveOwner, ClaimRole::Pusher);
  auto& slow_push = mem.record(1, kLiveOwner, ClaimRole::Pusher);
  auto& slow_pop = mem.record(2, kLiveOwner, ClaimRole::Popper);
  ASSERT_EQ(sut.try_push(7, pusher), IndexStatus::Ok);
  const std::uint64_t popping = mem.abandon_pop(slow_pop);    // claims position 0 (value 7)
  const std::uint64_t pushing = mem.abandon_push(slow_push);  // claims position 1
  IndexRingRepair repair(sut, mem.records());
  Released released;

  IndexRepairResult r = repair.repair(kOnlyDeadIs9, released.sink());
  EXPECT_EQ(r.held, 2U) << "both claims belong to a live owner";
  EXPECT_EQ(r.tombstoned + r.released, 0U);

  // The same claims, but the records are between "pending" and learning their position.
  slow_push.op_pos.store(kClaimPending);
  slow_pop.op_pos.store(kClaimPending);
  r = repair.repair(kOnlyDeadIs9, released.sink());
  EXPECT_EQ(r.held, 2U) << "a live pending record may hold any claimed position";

  // A live record naming the position in the other role does not protect it; a dead one neither.
  slow_push.op_pos.store(popping);
  slow_pop.op_pos.store(pushing);
  auto& dead_pending = mem.record(3, kDeadOwner, ClaimRole::Pusher);
  dead_pending.op_pos.store(kClaimPending);
  r = repair.repair(kOnlyDeadIs9, released.sink());
  EXPECT_EQ(r.held, 0U);
  EXPECT_EQ(r.tombstoned, 1U);
  EXPECT_EQ(r.released, 1U);

  EXPECT_EQ(sut.cell(popping)->seq.load(), popping + 4);
  EXPECT_EQ(sut.cell(pushing)->seq.load(), pushing + 1);
  EXPECT_TRUE(released.got.size() == 1 && released.got[0].second == 7U);
}

TEST(IndexRingRepair_test, RepairCasFailsHarmlesslyWhenTheSlowClaimerPublishedMeanwhile) {
  IndexRingMemory mem(4);
  IndexRing sut = mem.ring();
  auto& slow = mem.record(0, kDeadOwner, ClaimRole::Pusher);
  auto& popper = mem.record(1, kLiveOwner, ClaimRole::Popper);
  const std::uint64_t pos = mem.abandon_push(slow);
  // The claimer "finishes" before the repair: value, publish, idle — as try_push does.
  sut.cell(pos)->value = 33;
  sut.cell(pos)->seq.store(pos + 1);
  slow.op_pos.store(kClaimIdle);
  IndexRingRepair repair(sut, mem.records());
  Released released;

  const IndexRepairResult r = repair.repair(kOnlyDeadIs9, released.sink());

  EXPECT_EQ(r.tombstoned + r.released + r.held, 0U) << "a published cell is not a hole";
  EXPECT_EQ(drain(sut, popper), (std::vector<std::uint32_t>{33}));
}

}  // namespace
}  // namespace shmbus::ring
