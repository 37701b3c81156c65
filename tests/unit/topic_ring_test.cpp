// Single-threaded behaviour of the topic slot ring: claim / commit / poll, wrap-around, size
// limits, abort, and a claim stalled behind a previous lap that is still being written.
#include "ring_fixture.hpp"

#include <gtest/gtest.h>

#include <string>

namespace shmbus::ring {
namespace {

using test::RingMemory;

TEST(TopicRing_test, EmptyRingPollsEmpty) {
  RingMemory mem(8, 64);
  auto sut = mem.reader();

  const auto p = test::poll(sut);

  EXPECT_EQ(p.status, PollStatus::Empty);
  EXPECT_EQ(sut.position(), 0U);
  EXPECT_FALSE(sut.ready());
}

TEST(TopicRing_test, ClaimCommitPollRoundTripPreservesEveryField) {
  RingMemory mem(8, 64);
  auto writer = mem.writer(/*owner=*/3, /*producer_id=*/42);
  auto sut = mem.reader();

  SlotClaim c;
  ASSERT_EQ(writer.claim(11, c), ClaimStatus::Ok);
  EXPECT_EQ(c.seq, 0U);
  EXPECT_EQ(c.slot->owner.load(), 3U) << "the daemon finds the owner of a writing slot here";
  std::memcpy(c.data, "hello world", 11);
  EXPECT_FALSE(sut.ready()) << "a claimed, uncommitted slot must not be visible";
  EXPECT_EQ(test::poll(sut).status, PollStatus::Empty);
  writer.commit(c, 11, 1'700'000'000'123'456'789LL);

  EXPECT_TRUE(sut.ready());
  const auto p = test::poll(sut);
  ASSERT_EQ(p.status, PollStatus::Message);
  EXPECT_EQ(p.text(), "hello world");
  EXPECT_EQ(p.meta.length, 11U);
  EXPECT_EQ(p.meta.seq, 0U);
  EXPECT_EQ(p.meta.producer_id, 42U);
  EXPECT_EQ(p.meta.producer_seq, 1U);
  EXPECT_EQ(p.meta.timestamp_ns, 1'700'000'000'123'456'789LL);
  EXPECT_EQ(p.meta.flags, 0U);
  EXPECT_EQ(writer.sent(), 1U);
  EXPECT_EQ(sut.position(), 1U);
  EXPECT_EQ(mem.ring().subscriber(0)->received.load(), 1U);
  EXPECT_EQ(mem.ring().subscriber(0)->position.load(), 1U);
  EXPECT_EQ(test::poll(sut).status, PollStatus::Empty);
}

TEST(TopicRing_test, CommitMayPublishFewerBytesThanClaimed) {
  RingMemory mem(8, 64);
  auto writer = mem.writer(1, 1);
  auto sut = mem.reader();

  SlotClaim c;
  ASSERT_EQ(writer.claim(64, c), ClaimStatus::Ok);
  std::memcpy(c.data, "abc", 3);
  writer.commit(c, 3, 0);

  const auto p = test::poll(sut);
  ASSERT_EQ(p.status, PollStatus::Message);
  EXPECT_EQ(p.text(), "abc");
}

TEST(TopicRing_test, ZeroLengthMessageIsDelivered) {
  RingMemory mem(4, 16);
  auto writer = mem.writer(1, 1);
  auto sut = mem.reader();

  ASSERT_EQ(test::send(writer, std::string_view{}), 0U);

  const auto p = test::poll(sut);
  ASSERT_EQ(p.status, PollStatus::Message);
  EXPECT_EQ(p.meta.length, 0U);
  EXPECT_EQ(p.meta.producer_seq, 1U);
}

TEST(TopicRing_test, WrapsAroundManyLapsWithAReaderThatKeepsUp) {
  constexpr std::uint32_t kSlots = 4;
  RingMemory mem(kSlots, 32);
  auto writer = mem.writer(1, 7);
  auto sut = mem.reader();

  std::uint64_t next = 0;
  for (std::uint32_t lap = 0; lap < 10; ++lap) {
    // Vary the batch (1..4 = up to a full ring) so slots are reused at every offset.
    const std::uint32_t batch = 1 + lap % kSlots;
    for (std::uint32_t i = 0; i < batch; ++i)
      ASSERT_EQ(test::send(writer, "m" + std::to_string(next + i), static_cast<std::int64_t>(next + i)), next + i);
    for (std::uint32_t i = 0; i < batch; ++i, ++next) {
      const auto p = test::poll(sut);
      ASSERT_EQ(p.status, PollStatus::Message) << "seq " << next;
      EXPECT_EQ(p.meta.seq, next);
      EXPECT_EQ(p.meta.producer_seq, next + 1);
      EXPECT_EQ(p.text(), "m" + std::to_string(next));
      EXPECT_EQ(p.meta.timestamp_ns, static_cast<std::int64_t>(next));
    }
    ASSERT_EQ(test::poll(sut).status, PollStatus::Empty);
  }
  EXPECT_GT(next, 3U * kSlots) << "the test must cover several laps";
  EXPECT_EQ(mem.ring().subscriber(0)->lost.load(), 0U);
  EXPECT_EQ(mem.ring().subscriber(0)->received.load(), next);
}

TEST(TopicRing_test, MaxSizeMessageIsAcceptedAndOneMoreByteIsTooLarge) {
  constexpr std::uint32_t kMax = 100;  // not a multiple of 64: the slot is padded, the limit is not
  RingMemory mem(4, kMax);
  auto writer = mem.writer(1, 1);
  auto sut = mem.reader();

  SlotClaim tooBig;
  EXPECT_EQ(writer.claim(kMax + 1, tooBig), ClaimStatus::TooLarge);
  EXPECT_EQ(tooBig.slot, nullptr);
  EXPECT_EQ(mem.header().tail.load(), 0U) << "a refused claim must not consume a ring sequence";

  std::vector<std::byte> body(kMax);
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<std::byte>(i * 7 + 1);
  ASSERT_EQ(test::send(writer, std::span<const std::byte>(body)), 0U);

  const auto p = test::poll(sut);
  ASSERT_EQ(p.status, PollStatus::Message);
  EXPECT_EQ(p.body, body);
}

TEST(TopicRing_test, AbortedClaimIsSkippedAndNotCountedAsLoss) {
  RingMemory mem(8, 32);
  auto writer = mem.writer(1, 1);
  auto sut = mem.reader();

  SlotClaim c;
  ASSERT_EQ(writer.claim(8, c), ClaimStatus::Ok);
  writer.abort(c);
  ASSERT_EQ(test::send(writer, "after"), 1U);

  const auto p = test::poll(sut);
  ASSERT_EQ(p.status, PollStatus::Message);
  EXPECT_EQ(p.meta.seq, 1U);
  EXPECT_EQ(p.text(), "after");
  EXPECT_EQ(p.meta.producer_seq, 1U) << "an aborted claim does not consume a producer sequence";
  EXPECT_EQ(test::poll(sut).status, PollStatus::Empty);
  EXPECT_EQ(mem.ring().subscriber(0)->lost.load(), 0U);
  EXPECT_EQ(mem.ring().subscriber(0)->received.load(), 1U);
}

TEST(TopicRing_test, AbortedClaimAloneMakesReaderReadyButYieldsNothing) {
  RingMemory mem(8, 32);
  auto writer = mem.writer(1, 1);
  auto sut = mem.reader();

  SlotClaim c;
  ASSERT_EQ(writer.claim(8, c), ClaimStatus::Ok);
  writer.abort(c);

  EXPECT_TRUE(sut.ready()) << "a parked reader must wake for a pad so it can move past it";
  EXPECT_EQ(test::poll(sut).status, PollStatus::Empty);
  EXPECT_EQ(sut.position(), 1U);
  EXPECT_EQ(mem.ring().subscriber(0)->position.load(), 1U)
      << "skipping a pad must publish the position: the repairer judges the slot found there";
  EXPECT_EQ(mem.ring().subscriber(0)->received.load(), 0U);
}

// The repairer tells a live producer's claim from a dead one's by the ProducerEntry: the claimed
// sequence is recorded there by claim() and stays there while the claim is open.
TEST(TopicRing_test, ClaimRecordsItsSequenceInTheProducersEntry) {
  RingMemory mem(8, 32);
  auto other = mem.writer(1, 1);
  auto sut = mem.writer(2, 2);
  const auto* entry = mem.ring().producer(1);
  ASSERT_EQ(entry->claim_seq.load(), layout::kClaimIdle);
  ASSERT_EQ(test::send(other, "a"), 0U);

  SlotClaim c;
  ASSERT_EQ(sut.claim(4, c), ClaimStatus::Ok);

  EXPECT_EQ(c.seq, 1U);
  EXPECT_EQ(entry->claim_seq.load(), 1U);
  EXPECT_EQ(mem.ring().producer(0)->claim_seq.load(), 0U) << "each writer records in its own entry";
  EXPECT_EQ(c.slot->stamp.load(), layout::make_stamp(1, SlotState::Writing));
  sut.commit(c, 0, 0);
  ASSERT_EQ(sut.claim(4, c), ClaimStatus::Ok);
  EXPECT_EQ(entry->claim_seq.load(), 2U);
}

TEST(TopicRing_test, TooLargeClaimTouchesNeitherTheEntryNorTheTail) {
  RingMemory mem(8, 32);
  auto sut = mem.writer(1, 1);
  SlotClaim c;

  EXPECT_EQ(sut.claim(33, c), ClaimStatus::TooLarge);

  EXPECT_EQ(mem.ring().producer(0)->claim_seq.load(), layout::kClaimIdle);
  EXPECT_EQ(mem.header().tail.load(), 0U);
}

// seq 0 was claimed by a producer that never started it (the tail was bumped by hand): slot 0 is
// still empty(0), which is "free" only for seq 0 itself. seq 2 (slot 0, next lap) must wait for
// the previous lap to be published, not take the slot.
TEST(TopicRing_test, ClaimBehindAnUnstartedPreviousLapStalls) {
  RingMemory mem(2, 16);
  auto sut = mem.writer(1, 1);
  mem.header().tail.fetch_add(1);
  ASSERT_EQ(test::send(sut, "a"), 1U);

  SlotClaim c;
  EXPECT_EQ(sut.claim(1, c, 32), ClaimStatus::Stalled);

  EXPECT_EQ(mem.ring().slot(0)->stamp.load(), 0U) << "a stalled claim must not mark the slot";
  EXPECT_EQ(mem.ring().producer(0)->claim_seq.load(), 2U);
  // The late producer of seq 0 publishes (as a pad here): the stalled claim proceeds with seq 2.
  mem.ring().slot(0)->stamp.store(layout::make_stamp(0, SlotState::Pad));
  ASSERT_EQ(sut.claim(1, c, 32), ClaimStatus::Ok);
  EXPECT_EQ(c.seq, 2U);
  EXPECT_EQ(mem.header().tail.load(), 3U);
}

// Slot 0 of a 4-slot ring: seq 0 is claimed (writing) and held; seqs 1..3 are committed; the next
// claim gets seq 4, which maps to slot 0 again and must wait for seq 0 to finish.
TEST(TopicRing_test, ClaimBehindPreviousLapStillWritingReturnsStalledThenProceeds) {
  RingMemory mem(4, 32);
  auto slow = mem.writer(1, 1);
  auto sut = mem.writer(2, 2);

  SlotClaim held;
  ASSERT_EQ(slow.claim(4, held), ClaimStatus::Ok);
  for (int i = 0; i < 3; ++i) ASSERT_NE(test::send(sut, "x"), ~0ULL);

  SlotClaim c;
  EXPECT_EQ(sut.claim(4, c, /*spin_limit=*/64), ClaimStatus::Stalled);
  EXPECT_EQ(mem.header().tail.load(), 5U);
  EXPECT_EQ(sut.claim(4, c, 64), ClaimStatus::Stalled) << "still stalled while the previous lap writes";
  EXPECT_EQ(mem.header().tail.load(), 5U) << "a stalled producer keeps its sequence instead of claiming more";
  EXPECT_EQ(mem.ring().producer(1)->claim_seq.load(), 4U) << "the kept claim stays recorded for the repairer";

  std::memcpy(held.data, "slow", 4);
  slow.commit(held, 4, 0);
  ASSERT_EQ(sut.claim(4, c, 64), ClaimStatus::Ok);
  EXPECT_EQ(c.seq, 4U) << "the stalled sequence is the one that gets written";
  EXPECT_EQ(mem.header().tail.load(), 5U);
  std::memcpy(c.data, "next", 4);
  sut.commit(c, 4, 0);

  // A reader that starts at seq 1 sees 1..4 in order; seq 0 was overwritten by 4.
  auto reader = mem.reader(0, 1);
  for (std::uint64_t seq = 1; seq <= 4; ++seq) {
    const auto p = test::poll(reader);
    ASSERT_EQ(p.status, PollStatus::Message) << "seq " << seq;
    EXPECT_EQ(p.meta.seq, seq);
  }
  EXPECT_EQ(test::poll(reader).status, PollStatus::Empty);
}

TEST(TopicRing_test, StalledProducerPastAbortedPreviousLapProceeds) {
  RingMemory mem(2, 16);
  auto slow = mem.writer(1, 1);
  auto sut = mem.writer(2, 2);

  SlotClaim held;
  ASSERT_EQ(slow.claim(4, held), ClaimStatus::Ok);
  ASSERT_EQ(test::send(sut, "a"), 1U);
  SlotClaim c;
  ASSERT_EQ(sut.claim(1, c, 8), ClaimStatus::Stalled);

  slow.abort(held);

  ASSERT_EQ(sut.claim(1, c, 8), ClaimStatus::Ok);
  EXPECT_EQ(c.seq, 2U);
}

}  // namespace
}  // namespace shmbus::ring
