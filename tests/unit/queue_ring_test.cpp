// Queue ring + the daemon's queue agent, in plain process memory (no daemon, no processes):
// delivery order, priorities, back-pressure, acks, give-back, redelivery, DLQ, delay, expiry,
// ack timeouts, and the release walks that run after a participant closes or dies.
#include "common/paths.hpp"
#include "queue_agent.hpp"
#include "ring/queue_ring.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace shmbus {
namespace {

using layout::QState;
using layout::QWord;
using ring::QueueDelivery;
using ring::QueueReader;
using ring::QueueRing;
using ring::QueueWriter;
using ring::TakeStatus;

struct QueueMemory {
  explicit QueueMemory(std::uint32_t slots, std::uint32_t max_payload = 64, std::uint32_t id = 1,
                       std::uint32_t max_deliveries = 3, std::uint32_t flags = layout::kQueueDlqEnabled,
                       std::uint64_t redelivery_delay_ns = 0) {
    size = layout::queue_geometry(slots, max_payload).total;
    base = std::shared_ptr<void>(std::aligned_alloc(layout::kHotBlock, layout::align_up(size, layout::kHotBlock)), std::free);
    std::memset(base.get(), 0, size);
    ring::QueueConfig c;
    c.slot_count = slots;
    c.max_payload = max_payload;
    c.dest_id = id;
    c.max_deliveries = max_deliveries;
    c.flags = flags;
    c.redelivery_delay_ns = redelivery_delay_ns;
    c.name = "unit";
    EXPECT_TRUE(QueueRing::init(base.get(), size, c));
    q = QueueRing(base.get());
    for (std::uint32_t i = 0; i < 4; ++i) {
      q.producer(i)->state.store(1);
      q.consumer(i)->state.store(1);
    }
  }
  std::shared_ptr<void> base;
  std::uint64_t size = 0;
  QueueRing q;
};

std::uint32_t send(QueueWriter& w, const std::string& body, std::uint8_t prio = 4, std::uint64_t deliver_at = 0,
                   std::uint64_t expires_at = 0) {
  std::uint32_t slot = 0;
  EXPECT_TRUE(w.acquire(slot));
  std::memcpy(w.ring().payload(slot), body.data(), body.size());
  ring::QueueSendMeta m;
  m.length = static_cast<std::uint32_t>(body.size());
  m.priority = prio;
  m.deliver_at_ns = deliver_at;
  m.expires_at_ns = expires_at;
  w.publish(slot, m);
  return slot;
}

std::string body_of(const QueueRing& q, const QueueDelivery& d) {
  return {reinterpret_cast<const char*>(q.payload(d.slot)), q.slot(d.slot)->length};
}

QState state_of(const QueueRing& q, std::uint32_t slot) { return QWord::state(q.slot(slot)->state.load()); }

TEST(QueueRing_test, InitPublishesAValidQueueWithEverySlotFree) {
  QueueMemory m(8);

  EXPECT_EQ(ring::check_queue(m.base.get(), m.size), "");
  EXPECT_EQ(m.q.slot_count(), 8U);
  for (std::uint32_t s = 0; s < 8; ++s) EXPECT_EQ(state_of(m.q, s), QState::Free);
  EXPECT_NE(ring::check_queue(m.base.get(), m.size - 1), "");
  m.q.header().magic ^= 1;
  EXPECT_EQ(ring::check_queue(m.base.get(), m.size), "bad queue magic");
}

TEST(QueueRing_test, CheckQueueRejectsAnotherLayoutVersionAndInconsistentGeometry) {
  QueueMemory a(8), b(8), c(8);

  a.q.header().layout_version.store(layout::kLayoutVersion + 1);
  b.q.header().window = 4;
  c.q.free_ring().header().capacity = 8;  // every index ring must hold 2N

  EXPECT_EQ(ring::check_queue(a.base.get(), a.size), "queue layout version mismatch");
  EXPECT_EQ(ring::check_queue(b.base.get(), b.size), "queue geometry is inconsistent");
  EXPECT_NE(ring::check_queue(c.base.get(), c.size), "");
}

TEST(QueueRing_test, InitRefusesBadGeometryAndTouchesNothing) {
  const auto size = layout::queue_geometry(8, 64).total;
  auto mem = std::shared_ptr<void>(std::aligned_alloc(layout::kHotBlock, layout::align_up(size, layout::kHotBlock)), std::free);
  std::memset(mem.get(), 0, size);
  ring::QueueConfig c;
  c.max_payload = 64;

  c.slot_count = 6;  // not a power of two
  EXPECT_FALSE(QueueRing::init(mem.get(), size, c));
  c.slot_count = 2;  // below kMinQueueSlots
  EXPECT_FALSE(QueueRing::init(mem.get(), size, c));
  c.slot_count = 16;  // does not fit the mapping
  EXPECT_FALSE(QueueRing::init(mem.get(), size, c));
  EXPECT_EQ(static_cast<layout::QueueHeader*>(mem.get())->magic, 0U);
}

TEST(QueueRing_test, MessagesComeOutInOrderWithinAPriorityAndHigherPrioritiesFirst) {
  QueueMemory m(16);
  QueueWriter w(m.q, 0);
  QueueReader r(m.q, 0, false);
  send(w, "low-1", 1);
  send(w, "mid-1", 4);
  send(w, "high", 9);
  send(w, "mid-2", 4);
  send(w, "low-2", 1);

  std::vector<std::string> got;
  QueueDelivery d;
  while (r.take(d) == TakeStatus::Ok) {
    got.push_back(body_of(m.q, d));
    EXPECT_EQ(r.ack(d), ring::SettleStatus::Ok);
  }

  EXPECT_EQ(got, (std::vector<std::string>{"high", "mid-1", "mid-2", "low-1", "low-2"}));
}

TEST(QueueRing_test, AFullQueueRefusesUntilAnAckFreesASlot) {
  QueueMemory m(4);
  QueueWriter w(m.q, 0);
  QueueReader r(m.q, 0, false);
  for (int i = 0; i < 4; ++i) send(w, "m" + std::to_string(i));
  std::uint32_t slot = 0;

  EXPECT_FALSE(w.acquire(slot));
  QueueDelivery d;
  ASSERT_EQ(r.take(d), TakeStatus::Ok);
  EXPECT_FALSE(w.acquire(slot));  // delivered but unacked still occupies its slot
  ASSERT_EQ(r.ack(d), ring::SettleStatus::Ok);
  EXPECT_TRUE(w.acquire(slot));
  EXPECT_EQ(slot, d.slot);
}

TEST(QueueRing_test, EachMessageGoesToExactlyOneConsumer) {
  QueueMemory m(8);
  QueueWriter w(m.q, 0);
  QueueReader a(m.q, 0, false), b(m.q, 1, false);
  send(w, "only");
  QueueDelivery d1, d2;

  EXPECT_EQ(a.take(d1), TakeStatus::Ok);
  EXPECT_EQ(b.take(d2), TakeStatus::Empty);
  EXPECT_EQ(QWord::owner(m.q.slot(d1.slot)->state.load()), 0U);
}

TEST(QueueRing_test, ADuplicateRingEntryIsSkippedNotDeliveredTwice) {
  QueueMemory m(8);
  QueueWriter w(m.q, 0);
  QueueReader r(m.q, 0, false);
  const auto slot = send(w, "once");
  QueueRing::push(m.q.ready_ring(4), slot, m.q.header().daemon_push);  // what crash recovery may do
  QueueDelivery d;

  ASSERT_EQ(r.take(d), TakeStatus::Ok);
  EXPECT_EQ(r.take(d), TakeStatus::Empty);
  EXPECT_EQ(m.q.header().stale_entries.load(), 1U);
}

struct AgentFixture : ::testing::Test {
  std::vector<std::uint32_t> dlq_requests;
  daemon::QueueAgent agent{[this](std::uint32_t id) { dlq_requests.push_back(id); }, common::mono_ns()};
};

using QueueAgent_test = AgentFixture;

TEST_F(QueueAgent_test, AGivenBackMessageIsRedeliveredFlaggedWithItsCountIncremented) {
  QueueMemory m(8);
  agent.add(1, "queue://unit", m.q, m.base);
  QueueWriter w(m.q, 0);
  QueueReader r(m.q, 0, true);
  send(w, "again");
  QueueDelivery d;
  ASSERT_EQ(r.take(d), TakeStatus::Ok);
  EXPECT_EQ(QWord::count(d.word), 1U);

  ASSERT_EQ(r.give_back(d), ring::SettleStatus::Ok);
  EXPECT_EQ(r.take(d), TakeStatus::Empty);  // the daemon has not decided yet
  agent.tick(common::mono_ns());

  ASSERT_EQ(r.take(d), TakeStatus::Ok);
  EXPECT_EQ(body_of(m.q, d), "again");
  EXPECT_EQ(QWord::count(d.word), 2U);
  EXPECT_NE(m.q.slot(d.slot)->flags & layout::kQFlagRedelivered, 0);
  EXPECT_EQ(m.q.header().redelivered.load(), 1U);
}

TEST_F(QueueAgent_test, PastMaxDeliveriesAMessageMovesToTheDlqWithItsReason) {
  QueueMemory m(8, 64, 1, 2);
  QueueMemory dlq(8, 64, 2, 0, layout::kQueueIsDlq);
  agent.add(1, "queue://unit", m.q, m.base);
  QueueWriter w(m.q, 0);
  QueueReader r(m.q, 0, true);
  send(w, "poison");
  QueueDelivery d;
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(r.take(d), TakeStatus::Ok) << "delivery " << i + 1;
    ASSERT_EQ(r.give_back(d), ring::SettleStatus::Ok);
    agent.tick(common::mono_ns());
  }
  ASSERT_EQ(dlq_requests, std::vector<std::uint32_t>{1});
  EXPECT_EQ(r.take(d), TakeStatus::Empty);

  agent.add(2, "queue://DLQ.unit", dlq.q, dlq.base);
  agent.set_dlq(1, 2);
  agent.tick(common::mono_ns());

  QueueReader dr(dlq.q, 0, false);
  ASSERT_EQ(dr.take(d), TakeStatus::Ok);
  EXPECT_EQ(body_of(dlq.q, d), "poison");
  EXPECT_EQ(dlq.q.slot(d.slot)->reason, static_cast<std::uint8_t>(layout::DeadLetterReason::MaxDeliveries));
  EXPECT_EQ(dlq.q.slot(d.slot)->origin_dest_id, 1U);
  EXPECT_EQ(m.q.header().dead_lettered.load(), 1U);
  std::uint32_t s = 0;
  QueueWriter w2(m.q, 1);
  int free_slots = 0;
  while (w2.acquire(s)) ++free_slots;
  EXPECT_EQ(free_slots, 8);  // the dead letter's slot came back
}

TEST_F(QueueAgent_test, ADelayedMessageIsNotDeliveredBeforeItsTime) {
  QueueMemory m(8);
  agent.add(1, "queue://unit", m.q, m.base);
  QueueWriter w(m.q, 0);
  QueueReader r(m.q, 0, false);
  const std::uint64_t now = common::mono_ns();
  send(w, "later", 4, now + 50'000'000);
  QueueDelivery d;

  agent.tick(now);
  EXPECT_EQ(r.take(d), TakeStatus::Empty);
  agent.tick(now + 49'000'000);
  EXPECT_EQ(r.take(d), TakeStatus::Empty);
  agent.tick(now + 52'000'000);
  ASSERT_EQ(r.take(d), TakeStatus::Ok);
  EXPECT_EQ(body_of(m.q, d), "later");
}

TEST_F(QueueAgent_test, AnExpiredMessageIsNeverDeliveredAndItsSlotIsFreed) {
  QueueMemory m(4);
  agent.add(1, "queue://unit", m.q, m.base);
  QueueWriter w(m.q, 0);
  QueueReader r(m.q, 0, false);
  const auto slot = send(w, "stale", 4, 0, common::mono_ns() - 1);
  send(w, "fresh");
  QueueDelivery d;

  ASSERT_EQ(r.take(d), TakeStatus::Ok);
  EXPECT_EQ(body_of(m.q, d), "fresh");
  EXPECT_EQ(state_of(m.q, slot), QState::Expired);
  agent.tick(common::mono_ns());
  EXPECT_EQ(state_of(m.q, slot), QState::Free);
  EXPECT_EQ(m.q.header().expired.load(), 1U);
  EXPECT_EQ(m.q.header().dropped.load(), 0U);
}

TEST_F(QueueAgent_test, ADeliveryNotAckedWithinTheAckTimeoutIsTakenBackAndTheLateAckFails) {
  QueueMemory m(8);
  agent.add(1, "queue://unit", m.q, m.base);
  m.q.consumer(0)->ack_timeout_ns = 20'000'000;
  QueueWriter w(m.q, 0);
  QueueReader slow(m.q, 0, true), other(m.q, 1, true);
  send(w, "hot potato");
  QueueDelivery d, d2;
  ASSERT_EQ(slow.take(d), TakeStatus::Ok);
  const std::uint64_t t0 = common::mono_ns();

  agent.tick(t0);
  EXPECT_EQ(other.take(d2), TakeStatus::Empty);
  agent.tick(t0 + 25'000'000);

  ASSERT_EQ(other.take(d2), TakeStatus::Ok);
  EXPECT_EQ(d2.slot, d.slot);
  EXPECT_EQ(QWord::count(d2.word), 2U);
  EXPECT_EQ(slow.ack(d), ring::SettleStatus::NotOwned);
  EXPECT_EQ(other.ack(d2), ring::SettleStatus::Ok);
  EXPECT_EQ(m.q.header().ack_timeouts.load(), 1U);
}

TEST_F(QueueAgent_test, AReadyBitLostByADeadConsumerIsSetAgainByTheNextTick) {
  QueueMemory m(8);
  agent.add(1, "queue://unit", m.q, m.base);
  QueueWriter w(m.q, 0);
  QueueReader r(m.q, 0, false);
  send(w, "hidden", 6);
  // A consumer cleared the bit after finding the ring empty, then died before looking again
  // while this message was being pushed: the ring holds it, the mask says nothing is there.
  m.q.header().ready_mask.store(0);
  QueueDelivery d;
  ASSERT_EQ(r.take(d), TakeStatus::Empty);

  agent.tick(common::mono_ns());

  ASSERT_EQ(r.take(d), TakeStatus::Ok);
  EXPECT_EQ(body_of(m.q, d), "hidden");
}

TEST(QueueRing_test, AConsumerFindingARingEmptyClearsItsBitAndAPushSetsItAgain) {
  QueueMemory m(8);
  QueueWriter w(m.q, 0);
  QueueReader r(m.q, 0, false);
  send(w, "one", 3);
  EXPECT_EQ(m.q.header().ready_mask.load(), 1U << 3);
  QueueDelivery d;
  ASSERT_EQ(r.take(d), TakeStatus::Ok);
  ASSERT_EQ(r.ack(d), ring::SettleStatus::Ok);

  EXPECT_EQ(r.take(d), TakeStatus::Empty);
  EXPECT_EQ(m.q.header().ready_mask.load(), 0U);
  send(w, "two", 3);
  EXPECT_EQ(m.q.header().ready_mask.load(), 1U << 3);
}

TEST_F(QueueAgent_test, ReleaseResetsTheDeadOwnersClaimRecordsAndParkedCounts) {
  QueueMemory m(8);
  agent.add(1, "queue://unit", m.q, m.base);
  // A producer killed inside a pop (its record says "pending") while parked on a full queue, and
  // a consumer killed mid-push while parked on an empty one.
  m.q.producer(0)->pop.op_pos.store(layout::kClaimPending);
  m.q.producer(0)->parked.store(1);
  m.q.header().space_waiters.store(1);
  m.q.consumer(0)->push.op_pos.store(5);
  m.q.consumer(0)->parked.store(1);
  m.q.header().waiters.store(1);

  m.q.producer(0)->state.store(2);
  agent.release(1, true, 0);
  m.q.consumer(0)->state.store(2);
  agent.release(1, false, 0);

  // A stale record would look like a live claim once the entry has a new owner, and block every
  // later repair; a stale count would make every publish and ack pay a futex wake.
  EXPECT_EQ(m.q.producer(0)->pop.op_pos.load(), layout::kClaimIdle);
  EXPECT_EQ(m.q.consumer(0)->push.op_pos.load(), layout::kClaimIdle);
  EXPECT_EQ(m.q.header().space_waiters.load(), 0U);
  EXPECT_EQ(m.q.header().waiters.load(), 0U);
  EXPECT_EQ(m.q.producer(0)->parked.load(), 0U);
  EXPECT_EQ(m.q.consumer(0)->parked.load(), 0U);
}

TEST_F(QueueAgent_test, ReleasingAConsumerRedeliversEverythingItHeld) {
  QueueMemory m(8);
  agent.add(1, "queue://unit", m.q, m.base);
  QueueWriter w(m.q, 0);
  QueueReader gone(m.q, 0, true), other(m.q, 1, false);
  for (int i = 0; i < 3; ++i) send(w, "m" + std::to_string(i));
  QueueDelivery d;
  for (int i = 0; i < 3; ++i) ASSERT_EQ(gone.take(d), TakeStatus::Ok);

  m.q.consumer(0)->state.store(2);
  const auto res = agent.release(1, false, 0);

  EXPECT_EQ(res.redelivered, 3U);
  EXPECT_EQ(m.q.consumer(0)->state.load(), 0U);
  std::vector<std::string> got;
  while (other.take(d) == TakeStatus::Ok) {
    got.push_back(body_of(m.q, d));
    EXPECT_NE(m.q.slot(d.slot)->flags & layout::kQFlagRedelivered, 0);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"m0", "m1", "m2"}));
}

TEST_F(QueueAgent_test, ReleasingAProducerFreesWhatItWasWritingAndNothingElse) {
  QueueMemory m(4);
  agent.add(1, "queue://unit", m.q, m.base);
  QueueWriter w(m.q, 0);
  send(w, "sent");
  std::uint32_t a = 0, b = 0;
  ASSERT_TRUE(w.acquire(a));
  ASSERT_TRUE(w.acquire(b));

  m.q.producer(0)->state.store(2);
  const auto res = agent.release(1, true, 0);

  EXPECT_EQ(res.freed, 2U);
  EXPECT_EQ(state_of(m.q, a), QState::Free);
  EXPECT_EQ(state_of(m.q, b), QState::Free);
  QueueReader r(m.q, 0, false);
  QueueDelivery d;
  ASSERT_EQ(r.take(d), TakeStatus::Ok);
  EXPECT_EQ(body_of(m.q, d), "sent");
}

TEST_F(QueueAgent_test, AConsumerThatDiedBetweenPopAndDeliveryLeavesAHeldSlotThatIsPutBack) {
  QueueMemory m(8);
  agent.add(1, "queue://unit", m.q, m.base);
  QueueWriter w(m.q, 0);
  const auto slot = send(w, "orphan");
  // The dead consumer popped the slot number (its held word names it) and died before the CAS.
  std::uint32_t v = 0;
  ASSERT_EQ(m.q.ready_ring(4).try_pop(v, m.q.consumer(0)->pop, &m.q.consumer(0)->held), ring::IndexStatus::Ok);
  ASSERT_EQ(v, slot);
  QueueReader other(m.q, 1, false);
  QueueDelivery d;
  ASSERT_EQ(other.take(d), TakeStatus::Empty);

  m.q.consumer(0)->state.store(2);
  const auto res = agent.release(1, false, 0);

  EXPECT_EQ(res.reannounced, 1U);
  ASSERT_EQ(other.take(d), TakeStatus::Ok);
  EXPECT_EQ(body_of(m.q, d), "orphan");
}

TEST_F(QueueAgent_test, AProducerThatDiedMidPopOfTheFreeRingHasItsCellRepairedAndSlotFreed) {
  QueueMemory m(4);
  agent.add(1, "queue://unit", m.q, m.base);
  auto& fr_head = m.q.free_ring().header().head;
  // Simulate: the pop won the head CAS at position 0 and died before publishing the cell.
  auto* rec = &m.q.producer(0)->pop;
  rec->op_pos.store(0);
  fr_head.store(1);
  QueueWriter w(m.q, 1);
  std::uint32_t s = 0;
  int got = 0;
  while (w.acquire(s)) ++got;
  EXPECT_EQ(got, 3);  // slot 0's cell is stuck
  for (std::uint32_t i = 0; i < 4; ++i)
    if (state_of(m.q, i) == QState::Writing) w.discard(i);

  m.q.producer(0)->state.store(2);
  const auto res = agent.release(1, true, 0);

  EXPECT_EQ(res.ring_repairs, 1U);
  got = 0;
  while (w.acquire(s)) ++got;
  EXPECT_EQ(got, 4);
}

}  // namespace
}  // namespace shmbus
