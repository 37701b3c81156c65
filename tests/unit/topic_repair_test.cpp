// The daemon's hole repair (TopicRepairer): a claim is padded only when no live producer can hold
// it — a `writing` slot whose owner is dead, or a claimed-but-unstarted sequence that no active
// ProducerEntry of a live client names (nor announces as kClaimPending). scan() is
// subscriber-driven (only a slot an active subscriber has been stuck on since the previous scan);
// sweep() covers the whole last lap; tick() = scan + a sweep when the tail has not moved since the
// previous tick. No clocks are involved: repeating a call is all "time" means here.
//
// A producer that died between tail.fetch_add and its writing mark is simulated by bumping the
// tail by hand, optionally with a ProducerEntry that names the sequence (or "pending").
#include "ring/topic_repair.hpp"
#include "ring_fixture.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace shmbus::ring {
namespace {

using layout::kClaimIdle;
using layout::kClaimPending;
using layout::make_stamp;
using test::RingMemory;

const IsDead kNobodyDead = [](std::uint32_t) { return false; };
constexpr std::uint32_t kDeadClient = 9;
const IsDead kClient9Dead = [](std::uint32_t client) { return client == kDeadClient; };
// An entry index no fixture writer() uses in these tests (they take 0, 1, 2, ...).
constexpr std::uint32_t kSpareEntry = 40;

std::vector<std::string> drain(TopicReader& r) {
  std::vector<std::string> got;
  for (auto p = test::poll(r); p.status == PollStatus::Message; p = test::poll(r)) got.push_back(p.text());
  return got;
}

// --- (a) a writing slot -----------------------------------------------------------------------

TEST(TopicRepair_test, DeadOwnersWritingSlotIsPaddedByScanAndReadersMovePast) {
  RingMemory mem(8, 32);
  TopicRepairer sut(mem.ring());
  auto dying = mem.writer(/*owner=*/7, 1);
  auto alive = mem.writer(/*owner=*/3, 2);
  auto reader = mem.reader();
  SlotClaim abandoned;
  ASSERT_EQ(dying.claim(8, abandoned), ClaimStatus::Ok);  // seq 0, never committed
  ASSERT_EQ(test::send(alive, "one"), 1U);
  ASSERT_EQ(test::send(alive, "two"), 2U);
  ASSERT_EQ(test::poll(reader).status, PollStatus::Empty) << "the hole blocks the reader before repair";
  const IsDead dead7 = [](std::uint32_t owner) { return owner == 7; };

  EXPECT_EQ(sut.scan(dead7), 0U) << "the first scan only notes the subscriber's position";
  EXPECT_EQ(sut.scan(dead7), 1U);

  EXPECT_EQ(mem.header().holes_repaired.load(), 1U);
  EXPECT_EQ(abandoned.slot->stamp.load(), make_stamp(0, SlotState::Pad));
  EXPECT_EQ(drain(reader), (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(mem.ring().subscriber(0)->lost.load(), 0U) << "a pad is not a lost message";
  EXPECT_EQ(sut.scan(dead7) + sut.scan(dead7), 0U) << "nothing left to repair";
}

TEST(TopicRepair_test, SweepPadsOnlyDeadOwnersWritingSlotsAndCountsTheLiveOne) {
  RingMemory mem(8, 32);
  TopicRepairer sut(mem.ring());
  auto gone = mem.writer(kDeadClient, 1);
  auto keep = mem.writer(2, 2);
  auto done = mem.writer(3, 3);
  auto reader = mem.reader();
  SlotClaim a, b, d;
  ASSERT_EQ(gone.claim(4, a), ClaimStatus::Ok);  // seq 0
  ASSERT_EQ(keep.claim(4, b), ClaimStatus::Ok);  // seq 1
  ASSERT_EQ(gone.claim(4, d), ClaimStatus::Ok);  // seq 2
  ASSERT_EQ(test::send(done, "three"), 3U);

  const SweepResult r = sut.sweep(kClient9Dead);

  EXPECT_EQ(r.padded, 2U);
  EXPECT_EQ(r.unpublished, 1U) << "client 2 is alive and still writing seq 1";
  EXPECT_EQ(a.slot->stamp.load(), make_stamp(0, SlotState::Pad));
  EXPECT_EQ(b.slot->stamp.load(), make_stamp(1, SlotState::Writing)) << "a live owner's slot is untouched";
  EXPECT_EQ(d.slot->stamp.load(), make_stamp(2, SlotState::Pad));
  EXPECT_EQ(mem.ring().slot(3)->stamp.load(), make_stamp(3, SlotState::Data)) << "committed data is untouched";
  EXPECT_EQ(mem.header().holes_repaired.load(), 2U);
  const SweepResult again = sut.sweep(kClient9Dead);
  EXPECT_EQ(again.padded, 0U) << "sweeping twice pads nothing more";
  EXPECT_EQ(again.unpublished, 1U);

  EXPECT_EQ(test::poll(reader).status, PollStatus::Empty) << "client 2 is still writing seq 1";
  std::memcpy(b.data, "two", 3);
  keep.commit(b, 3, 0);
  EXPECT_EQ(drain(reader), (std::vector<std::string>{"two", "three"}));
  const SweepResult clean = sut.sweep(kClient9Dead);
  EXPECT_EQ(clean.padded + clean.unpublished, 0U);
}

TEST(TopicRepair_test, LiveOwnersWritingSlotIsNeverPaddedHoweverLongTheSubscriberWaits) {
  RingMemory mem(8, 32);
  TopicRepairer sut(mem.ring());
  auto slow = mem.writer(4, 1);
  auto other = mem.writer(5, 2);
  auto reader = mem.reader();
  SlotClaim inFlight;
  ASSERT_EQ(slow.claim(4, inFlight), ClaimStatus::Ok);
  ASSERT_EQ(test::send(other, "after"), 1U);
  ASSERT_EQ(test::poll(reader).status, PollStatus::Empty);

  std::uint32_t asked = 0;
  const IsDead isDead = [&](std::uint32_t owner) {
    EXPECT_EQ(owner, 4U) << "the repairer must ask about the owner recorded in the slot";
    ++asked;
    return false;
  };
  std::uint32_t padded = 0;
  for (int i = 0; i < 100; ++i) padded += sut.tick(isDead);
  padded += sut.sweep(isDead).padded;

  EXPECT_EQ(padded, 0U) << "repetition alone never overrules a live writer";
  EXPECT_GT(asked, 0U) << "the slot the subscriber waits on must have been examined";
  EXPECT_EQ(inFlight.slot->stamp.load(), make_stamp(0, SlotState::Writing));
  EXPECT_EQ(mem.header().holes_repaired.load(), 0U);
  std::memcpy(inFlight.data, "late", 4);
  slow.commit(inFlight, 4, 0);
  EXPECT_EQ(drain(reader), (std::vector<std::string>{"late", "after"}));
}

// --- (b) a claimed-but-unstarted sequence ------------------------------------------------------

// What ProducerEntry (if any) names the sequence a producer claimed and then never started.
struct UnstartedClaimCase {
  const char* name;
  bool has_entry;
  std::uint32_t state;
  std::uint32_t client;
  std::uint64_t claim_seq;
  bool padded;
};

class UnstartedClaim_test : public ::testing::TestWithParam<UnstartedClaimCase> {};

// seq 0 is claimed (tail bumped by hand) and never started; a live writer has published seq 1.
TEST_P(UnstartedClaim_test, SweepPadsItExactlyWhenNoLiveProducerCanHoldIt) {
  const auto& c = GetParam();
  RingMemory mem(8, 32);
  TopicRepairer sut(mem.ring());
  auto writer = mem.writer(2, 2);
  auto reader = mem.reader();
  if (c.has_entry) {
    auto* e = mem.producer_entry(kSpareEntry, c.client);
    e->claim_seq.store(c.claim_seq);
    e->state.store(c.state);
  }
  ASSERT_EQ(mem.header().tail.fetch_add(1), 0U);
  ASSERT_EQ(test::send(writer, "behind"), 1U);
  ASSERT_EQ(test::poll(reader).status, PollStatus::Empty);

  const SweepResult r = sut.sweep(kClient9Dead);

  if (c.padded) {
    EXPECT_EQ(r.padded, 1U);
    EXPECT_EQ(r.unpublished, 0U);
    EXPECT_EQ(mem.ring().slot(0)->stamp.load(), make_stamp(0, SlotState::Pad));
    EXPECT_EQ(mem.header().holes_repaired.load(), 1U);
    EXPECT_EQ(drain(reader), std::vector<std::string>{"behind"});
  } else {
    EXPECT_EQ(r.padded, 0U) << "a live producer may hold seq 0: it must never be overruled";
    EXPECT_EQ(r.unpublished, 1U);
    EXPECT_EQ(mem.ring().slot(0)->stamp.load(), 0U);
    EXPECT_EQ(mem.header().holes_repaired.load(), 0U);
    EXPECT_EQ(test::poll(reader).status, PollStatus::Empty);
  }
}

INSTANTIATE_TEST_SUITE_P(
    TopicRepair_test, UnstartedClaim_test,
    ::testing::Values(UnstartedClaimCase{"NoEntryNamesIt", false, 0, 0, 0, true},
                      UnstartedClaimCase{"DeadClientsEntryNamesIt", true, 1, kDeadClient, 0, true},
                      UnstartedClaimCase{"DeadClientsEntryIsPending", true, 1, kDeadClient, kClaimPending, true},
                      UnstartedClaimCase{"ClosedEntryOfLiveClientNamesIt", true, 0, 4, 0, true},
                      UnstartedClaimCase{"LiveEntryIsIdle", true, 1, 4, kClaimIdle, true},
                      UnstartedClaimCase{"LiveEntryNamesALaterSequence", true, 1, 4, 5, true},
                      UnstartedClaimCase{"LiveEntryNamesIt", true, 1, 4, 0, false},
                      UnstartedClaimCase{"LiveEntryIsPending", true, 1, 4, kClaimPending, false}),
    [](const ::testing::TestParamInfo<UnstartedClaimCase>& p) { return std::string(p.param.name); });

TEST(TopicRepair_test, UnstartedClaimOfDeadProducerIsPaddedByScanOnceTheSubscriberIsStuck) {
  RingMemory mem(8, 32);
  TopicRepairer sut(mem.ring());
  auto writer = mem.writer(2, 2);
  auto reader = mem.reader();
  mem.producer_entry(kSpareEntry, kDeadClient)->claim_seq.store(0);  // died right after fetch_add
  ASSERT_EQ(mem.header().tail.fetch_add(1), 0U);
  ASSERT_EQ(test::send(writer, "behind-the-hole"), 1U);
  ASSERT_EQ(test::poll(reader).status, PollStatus::Empty);

  EXPECT_EQ(sut.scan(kClient9Dead), 0U) << "notes the position";
  EXPECT_EQ(mem.ring().slot(0)->stamp.load(), 0U);
  EXPECT_EQ(sut.scan(kClient9Dead), 1U) << "position unchanged and below the tail: judged at once, no timeout";

  EXPECT_EQ(mem.ring().slot(0)->stamp.load(), make_stamp(0, SlotState::Pad));
  EXPECT_EQ(mem.header().holes_repaired.load(), 1U);
  EXPECT_EQ(drain(reader), std::vector<std::string>{"behind-the-hole"});
}

TEST(TopicRepair_test, LivePendingEntryKeepsScanFromPaddingTheSlotTheSubscriberWaitsOn) {
  RingMemory mem(8, 32);
  TopicRepairer sut(mem.ring());
  auto writer = mem.writer(2, 2);
  auto reader = mem.reader();
  // A live producer between announcing its claim and learning its sequence (which may be 0).
  auto* announcing = mem.producer_entry(kSpareEntry, 4);
  announcing->claim_seq.store(kClaimPending);
  mem.header().tail.fetch_add(1);
  ASSERT_EQ(test::send(writer, "behind"), 1U);
  ASSERT_EQ(test::poll(reader).status, PollStatus::Empty);

  std::uint32_t padded = 0;
  for (int i = 0; i < 10; ++i) padded += sut.scan(kClient9Dead);
  EXPECT_EQ(padded, 0U);
  EXPECT_EQ(mem.ring().slot(0)->stamp.load(), 0U);

  announcing->claim_seq.store(7);  // it learned a different sequence: seq 0 is nobody's
  EXPECT_EQ(sut.scan(kClient9Dead), 1U);
  EXPECT_EQ(drain(reader), std::vector<std::string>{"behind"});
}

// A live producer stalled on its own claimed sequence keeps it: 4 slots, w1 holds seq 4 (slot 0),
// w3 commits 5..7, sut claims seq 8 (slot 0 again) and stalls behind w1. When w1 commits, seq 8
// is "claimed, not started" by a live producer whose entry names it: it must not be padded, and
// the next claim() resumes seq 8 itself.
TEST(TopicRepair_test, LiveStalledProducersClaimIsNotPaddedAndResumesTheSameSequence) {
  RingMemory mem(4, 32);
  TopicRepairer repairer(mem.ring());
  auto w1 = mem.writer(1, 1);
  auto w3 = mem.writer(3, 3);
  auto sut = mem.writer(2, 2);
  const auto* sutEntry = mem.ring().producer(2);
  auto reader = mem.reader(0, 4);
  for (int i = 0; i < 4; ++i) ASSERT_NE(test::send(w1, "old"), ~0ULL);
  SlotClaim held;
  ASSERT_EQ(w1.claim(4, held), ClaimStatus::Ok);
  ASSERT_EQ(held.seq, 4U);
  for (std::uint64_t s = 5; s < 8; ++s) ASSERT_EQ(test::send(w3, "w3"), s);
  SlotClaim c;
  ASSERT_EQ(sut.claim(4, c, 16), ClaimStatus::Stalled);
  EXPECT_EQ(sutEntry->claim_seq.load(), 8U) << "a stalled producer's entry names its claim";
  std::memcpy(held.data, "w1", 2);
  w1.commit(held, 2, 0);
  auto got = drain(reader);
  ASSERT_EQ(reader.position(), 8U);

  std::uint32_t padded = 0;
  for (int i = 0; i < 10; ++i) padded += repairer.tick(kNobodyDead);
  const SweepResult r = repairer.sweep(kNobodyDead);

  EXPECT_EQ(padded + r.padded, 0U);
  EXPECT_EQ(r.unpublished, 1U);
  EXPECT_EQ(mem.ring().slot(8)->stamp.load(), make_stamp(4, SlotState::Data));
  ASSERT_EQ(sut.claim(4, c, 16), ClaimStatus::Ok);
  EXPECT_EQ(c.seq, 8U) << "the stalled sequence itself is written";
  EXPECT_EQ(mem.header().tail.load(), 9U) << "no sequence was abandoned";
  std::memcpy(c.data, "w2", 2);
  sut.commit(c, 2, 0);
  EXPECT_EQ(sut.sent(), 1U);
  for (auto& s : drain(reader)) got.push_back(s);
  EXPECT_EQ(got, (std::vector<std::string>{"w1", "w3", "w3", "w3", "w2"}));
  EXPECT_EQ(mem.ring().subscriber(0)->lost.load(), 0U);
}

// --- (c) a producer queued behind a dead claim, nobody subscribed -------------------------------

TEST(TopicRepair_test, ProducerQueuedBehindDeadClaimGetsThroughAfterTwoTicksWithUnchangedTail) {
  RingMemory mem(4, 32);
  TopicRepairer repairer(mem.ring());
  auto sut = mem.writer(2, 2);
  mem.producer_entry(kSpareEntry, kDeadClient)->claim_seq.store(0);
  ASSERT_EQ(mem.header().tail.fetch_add(1), 0U);  // seq 0: claimed by client 9, which died
  for (std::uint64_t s = 1; s < 4; ++s) ASSERT_EQ(test::send(sut, "x"), s);
  SlotClaim c;
  ASSERT_EQ(sut.claim(4, c, 16), ClaimStatus::Stalled) << "seq 4 waits for slot 0's previous lap";

  EXPECT_EQ(repairer.tick(kClient9Dead), 0U) << "first tick: no subscriber, and the tail was not seen before";
  EXPECT_EQ(mem.ring().slot(0)->stamp.load(), 0U);
  EXPECT_EQ(sut.claim(4, c, 16), ClaimStatus::Stalled);
  EXPECT_EQ(repairer.tick(kClient9Dead), 1U) << "second tick, same tail: the sweep pads the dead claim";
  EXPECT_EQ(mem.ring().slot(0)->stamp.load(), make_stamp(0, SlotState::Pad));

  ASSERT_EQ(sut.claim(4, c, 16), ClaimStatus::Ok) << "the producer must not stay stalled after repair";
  EXPECT_EQ(c.seq, 4U);
  std::memcpy(c.data, "y", 1);
  sut.commit(c, 1, 0);
  EXPECT_EQ(mem.ring().slot(4)->stamp.load(), make_stamp(4, SlotState::Data));
  EXPECT_EQ(mem.header().holes_repaired.load(), 1U);
}

TEST(TopicRepair_test, SweepPadsTheDeadLapAndCountsTheLiveClaimQueuedBehindIt) {
  RingMemory mem(4, 32);
  TopicRepairer repairer(mem.ring());
  auto sut = mem.writer(2, 2);
  mem.header().tail.fetch_add(1);  // seq 0: nobody's
  for (std::uint64_t s = 1; s < 4; ++s) ASSERT_EQ(test::send(sut, "x"), s);
  SlotClaim c;
  ASSERT_EQ(sut.claim(4, c, 16), ClaimStatus::Stalled);  // seq 4: slot 0's next lap, live

  const SweepResult r = repairer.sweep(kNobodyDead);

  EXPECT_EQ(r.padded, 1U) << "seq 0 lies one lap before the swept range, in the slot seq 4 waits on";
  EXPECT_EQ(r.unpublished, 1U) << "seq 4 is held by a live producer";
  EXPECT_EQ(mem.ring().slot(0)->stamp.load(), make_stamp(0, SlotState::Pad));
  EXPECT_EQ(sut.claim(4, c, 16), ClaimStatus::Ok);
  EXPECT_EQ(c.seq, 4U);
}

TEST(TopicRepair_test, TickDoesNotSweepWhileTheTailMoves) {
  RingMemory mem(8, 32);
  TopicRepairer repairer(mem.ring());
  auto sut = mem.writer(2, 2);
  mem.header().tail.fetch_add(1);  // seq 0: nobody's; no subscriber will ever notice it

  EXPECT_EQ(repairer.tick(kNobodyDead), 0U);
  ASSERT_NE(test::send(sut, "a"), ~0ULL);  // the tail moves between ticks
  EXPECT_EQ(repairer.tick(kNobodyDead), 0U);
  ASSERT_NE(test::send(sut, "b"), ~0ULL);
  EXPECT_EQ(repairer.tick(kNobodyDead), 0U);
  EXPECT_EQ(mem.ring().slot(0)->stamp.load(), 0U) << "no sweep while producers are making progress";

  EXPECT_EQ(repairer.tick(kNobodyDead), 1U) << "the tail stood still for one tick";
  EXPECT_EQ(mem.ring().slot(0)->stamp.load(), make_stamp(0, SlotState::Pad));
}

// --- (d) holes one after another -------------------------------------------------------------------

// Before b93e362, TopicReader::poll advanced over a pad without publishing its position, so the
// repairer kept judging the (ready) pad and never the second hole behind it.
TEST(TopicRepair_test, ReaderBehindARepairedHoleGetsTheNextHoleRepairedToo) {
  RingMemory mem(8, 32);
  TopicRepairer sut(mem.ring());
  auto writer = mem.writer(2, 2);
  auto reader = mem.reader();
  mem.header().tail.fetch_add(2);  // two producers died after claiming seq 0 and seq 1
  ASSERT_EQ(test::send(writer, "survivor"), 2U);
  ASSERT_EQ(test::poll(reader).status, PollStatus::Empty);

  EXPECT_EQ(sut.scan(kNobodyDead), 0U);
  EXPECT_EQ(sut.scan(kNobodyDead), 1U) << "seq 0";
  ASSERT_EQ(test::poll(reader).status, PollStatus::Empty) << "skips the pad, waits on seq 1";
  EXPECT_EQ(mem.ring().subscriber(0)->position.load(), 1U) << "the pad skip must publish the position";
  EXPECT_EQ(sut.scan(kNobodyDead), 0U) << "the position moved since the previous scan";
  EXPECT_EQ(sut.scan(kNobodyDead), 1U) << "seq 1, the second hole";

  EXPECT_EQ(drain(reader), std::vector<std::string>{"survivor"});
  EXPECT_EQ(reader.position(), 3U);
  EXPECT_EQ(mem.header().holes_repaired.load(), 2U);
}

TEST(TopicRepair_test, ReaderBehindAnAbortedClaimGetsTheNextHoleRepaired) {
  RingMemory mem(8, 32);
  TopicRepairer sut(mem.ring());
  auto writer = mem.writer(2, 2);
  auto reader = mem.reader();
  SlotClaim c;
  ASSERT_EQ(writer.claim(1, c), ClaimStatus::Ok);
  writer.abort(c);                 // seq 0: a pad
  mem.header().tail.fetch_add(1);  // seq 1: a dead claim
  ASSERT_EQ(test::send(writer, "survivor"), 2U);
  ASSERT_EQ(test::poll(reader).status, PollStatus::Empty);  // skips the pad, waits on seq 1
  ASSERT_EQ(mem.ring().subscriber(0)->position.load(), 1U) << "the subscriber advertises where it waits";

  EXPECT_EQ(sut.scan(kNobodyDead) + sut.scan(kNobodyDead), 1U);

  EXPECT_EQ(mem.ring().slot(1)->stamp.load(), make_stamp(1, SlotState::Pad));
  EXPECT_EQ(drain(reader), std::vector<std::string>{"survivor"});
}

TEST(TopicRepair_test, ProducerStalledBehindDeadOwnerProceedsAfterScanRepair) {
  RingMemory mem(4, 32);
  TopicRepairer repairer(mem.ring());
  auto dying = mem.writer(6, 6);
  auto sut = mem.writer(2, 2);
  auto reader = mem.reader();
  SlotClaim abandoned;
  ASSERT_EQ(dying.claim(4, abandoned), ClaimStatus::Ok);  // seq 0, client 6 dies here
  for (std::uint64_t s = 1; s < 4; ++s) ASSERT_EQ(test::send(sut, "x"), s);
  SlotClaim c;
  ASSERT_EQ(sut.claim(4, c, 16), ClaimStatus::Stalled);  // seq 4 waits for slot 0
  ASSERT_EQ(test::poll(reader).status, PollStatus::Empty);
  const IsDead dead6 = [](std::uint32_t o) { return o == 6; };

  EXPECT_EQ(repairer.scan(dead6) + repairer.scan(dead6), 1U);
  // The reader moves past the pad before slot 0 is reused (after that it would be a lap behind).
  EXPECT_EQ(drain(reader), (std::vector<std::string>{"x", "x", "x"}));

  ASSERT_EQ(sut.claim(4, c, 16), ClaimStatus::Ok) << "the producer must not stay stalled after repair";
  EXPECT_EQ(c.seq, 4U) << "the pad ended the dead lap; the stalled sequence itself proceeds";
  std::memcpy(c.data, "y", 1);
  sut.commit(c, 1, 0);
  EXPECT_EQ(drain(reader), std::vector<std::string>{"y"});
}

// --- (e) when scan must do nothing ---------------------------------------------------------------

TEST(TopicRepair_test, ScanJudgesNothingWhileTheSubscribersPositionMoves) {
  RingMemory mem(8, 32);
  TopicRepairer sut(mem.ring());
  auto dying = mem.writer(kDeadClient, 9);
  auto writer = mem.writer(2, 2);
  auto reader = mem.reader();
  for (std::uint64_t s = 0; s < 3; ++s) ASSERT_EQ(test::send(writer, "m"), s);
  SlotClaim hole;
  ASSERT_EQ(dying.claim(4, hole), ClaimStatus::Ok);  // seq 3: the dead writer's
  ASSERT_EQ(test::send(writer, "after"), 4U);
  std::uint32_t asked = 0;
  const IsDead counting = [&](std::uint32_t client) {
    ++asked;
    return client == kDeadClient;
  };

  std::uint32_t padded = sut.scan(counting);
  for (int i = 0; i < 3; ++i) {  // one message between scans: the position moves every time
    ASSERT_EQ(test::poll(reader).status, PollStatus::Message);
    padded += sut.scan(counting);
  }
  ASSERT_EQ(reader.position(), 3U);

  EXPECT_EQ(padded, 0U);
  EXPECT_EQ(asked, 0U) << "a moving subscriber is not stuck: nothing may be judged";
  EXPECT_EQ(hole.slot->stamp.load(), make_stamp(3, SlotState::Writing));
  EXPECT_EQ(sut.scan(counting), 1U) << "now it is stuck on seq 3";
  EXPECT_EQ(drain(reader), std::vector<std::string>{"after"});
}

TEST(TopicRepair_test, SlowSubscriberOverPublishedDataCausesNoRepair) {
  RingMemory mem(8, 32);
  TopicRepairer sut(mem.ring());
  auto writer = mem.writer(2, 2);
  auto reader = mem.reader();  // never polls
  for (int i = 0; i < 3; ++i) ASSERT_NE(test::send(writer, "x"), ~0ULL);
  std::uint32_t asked = 0;
  const IsDead everybodyDead = [&](std::uint32_t) {
    ++asked;
    return true;
  };

  std::uint32_t padded = 0;
  for (int i = 0; i < 10; ++i) padded += sut.scan(everybodyDead);

  EXPECT_EQ(padded, 0U);
  EXPECT_EQ(asked, 0U) << "published data is never judged";
  EXPECT_EQ(mem.header().holes_repaired.load(), 0U);
  EXPECT_EQ(drain(reader).size(), 3U);
}

TEST(TopicRepair_test, HoleNobodyActiveWaitsOnIsNotJudgedByScan) {
  RingMemory mem(8, 32);
  TopicRepairer sut(mem.ring());
  auto writer = mem.writer(2, 2);
  mem.header().tail.fetch_add(1);  // dead claim at seq 0
  ASSERT_EQ(test::send(writer, "x"), 1U);
  auto* idle = mem.ring().subscriber(5);  // an inactive entry that happens to point at the hole
  idle->position.store(0);

  std::uint32_t padded = 0;
  for (int i = 0; i < 10; ++i) padded += sut.scan(kNobodyDead);

  EXPECT_EQ(padded, 0U);
  EXPECT_EQ(mem.ring().slot(0)->stamp.load(), 0U);
  EXPECT_EQ(mem.header().holes_repaired.load(), 0U);
}

TEST(TopicRepair_test, SubscriberCaughtUpWithTheTailIsNotStuck) {
  RingMemory mem(8, 32);
  TopicRepairer sut(mem.ring());
  auto writer = mem.writer(2, 2);
  auto reader = mem.reader();
  ASSERT_NE(test::send(writer, "x"), ~0ULL);
  ASSERT_EQ(drain(reader).size(), 1U);
  std::uint32_t asked = 0;
  const IsDead everybodyDead = [&](std::uint32_t) {
    ++asked;
    return true;
  };

  std::uint32_t padded = 0;
  for (int i = 0; i < 10; ++i) padded += sut.scan(everybodyDead);

  EXPECT_EQ(padded, 0U);
  EXPECT_EQ(asked, 0U);
  EXPECT_EQ(mem.ring().slot(1)->stamp.load(), 0U) << "the next, unclaimed slot is not touched";
}

}  // namespace
}  // namespace shmbus::ring
