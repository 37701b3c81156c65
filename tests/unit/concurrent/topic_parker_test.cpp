// The futex parking protocol between a reader and the ring's producers / repairer, driven through
// the same steps as bus/client/consumer.cpp ConsumerImpl::park:
//   reader:   seen = notify_seq (acquire); waiters += 1 (seq_cst); if !ready(seq_cst) futex_wait(seen)
//   producer: stamp exchange (seq_cst); if waiters != 0 { notify_seq += 1; futex_wake_all }
//
// Forbidden outcomes:
//   F1  lost wake-up: a parked reader stays asleep although a message (or pad) was published
//       after it parked — seen here as a futex_wait that times out (slices are far longer than
//       the test deadlines) or a reader that does not get the message within the deadline.
//   F2  a producer that bumps notify_seq (the wake path) while nobody is parked.
#include "ring/topic_repair.hpp"
#include "ring_fixture.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace shmbus::ring {
namespace {

using namespace std::chrono_literals;

constexpr auto kLongSlice = 60s;  // a wake-up that depends on this timeout is a lost wake-up
constexpr auto kDeadline = 20s;   // how long the test waits for a condition before failing

/// ConsumerImpl::park without the connection. Returns false when futex_wait timed out.
bool park(const TopicReader& r, std::chrono::nanoseconds slice) {
  auto& h = r.ring().header();
  // Acquire: pairs with the producer's release increment (read before the re-check).
  const std::uint32_t seen = h.notify_seq.load(std::memory_order_acquire);
  // SYNC: seq_cst pairs with the producer's seq_cst stamp exchange + waiters load (Dekker).
  h.waiters.fetch_add(1, std::memory_order_seq_cst);
  bool woken = true;
  if (!r.ready(std::memory_order_seq_cst)) woken = futex_wait(h.notify_seq, seen, slice);
  h.waiters.fetch_sub(1, std::memory_order_relaxed);
  return woken;
}

/// A reader thread that polls, and parks whenever the ring is empty, until it has `want` messages.
class ParkingReader {
 public:
  ParkingReader(const test::RingMemory& mem, std::uint64_t want) : mem_(mem), want_(want) {
    thread_ = std::thread([this] { run(); });
  }
  ~ParkingReader() { stop(); }

  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> position{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> parks{0};
  std::atomic<bool> wrong{false};

  /// Ends the thread even if it is parked (used on failure paths too).
  void stop() {
    if (!thread_.joinable()) return;
    stop_.store(true);
    auto& h = mem_.header();
    h.notify_seq.fetch_add(1, std::memory_order_release);
    futex_wake_all(h.notify_seq);
    thread_.join();
  }

 private:
  void run() {
    auto sut = mem_.reader(0, 0);
    std::vector<std::byte> buf(sut.ring().max_payload());
    while (!stop_.load() && received.load() < want_) {
      ReadMeta meta;
      std::uint64_t lost = 0;
      const auto st = sut.poll(buf.data(), meta, lost);
      position.store(sut.position());
      if (st == PollStatus::Message) {
        if (meta.producer_seq != received.load() + 1) wrong = true;
        received.fetch_add(1);
        continue;
      }
      if (st == PollStatus::Lapped) wrong = true;
      parks.fetch_add(1);
      if (!park(sut, kLongSlice)) timeouts.fetch_add(1);
    }
  }

  const test::RingMemory& mem_;
  std::uint64_t want_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(TopicParker_test, CommitWithNobodyParkedTakesNoWakePath) {
  test::RingMemory mem(8, 16);
  auto sut = mem.writer(1, 1);

  ASSERT_EQ(test::send(sut, "x"), 0U);

  EXPECT_EQ(mem.header().notify_seq.load(), 0U) << "F2: notify_seq bumped with waiters == 0";
}

TEST(TopicParker_test, ParkedReaderIsWokenByCommit) {
  test::RingMemory mem(8, 16);
  auto sut = mem.writer(1, 1);
  ParkingReader reader(mem, 1);

  ASSERT_TRUE(test::wait_until([&] { return mem.header().waiters.load() == 1; }, kDeadline))
      << "the reader never parked on an empty ring";
  ASSERT_EQ(test::send(sut, "wake"), 0U);

  EXPECT_TRUE(test::wait_until([&] { return reader.received.load() == 1; }, kDeadline))
      << "F1: the parked reader did not receive the committed message";
  reader.stop();
  EXPECT_EQ(reader.timeouts.load(), 0U) << "F1: the reader woke by timeout, not by the producer";
  EXPECT_GE(mem.header().notify_seq.load(), 1U) << "the producer saw the waiter and took the wake path";
  EXPECT_FALSE(reader.wrong.load());
}

// Every round the producer waits until the reader has consumed everything and is parked again,
// then commits one message: 2000 park / wake hand-offs, each one a chance to lose a wake-up.
TEST(TopicParker_test, PingPongThroughParkLosesNoWakeUp) {
  constexpr std::uint64_t kRounds = 2000;
  test::RingMemory mem(64, 16);
  auto sut = mem.writer(1, 1);
  ParkingReader reader(mem, kRounds);

  std::uint64_t sent = 0;
  for (; sent < kRounds; ++sent) {
    const bool parked = test::wait_until(
        [&] { return reader.received.load() == sent && mem.header().waiters.load() == 1; }, kDeadline);
    if (!parked) break;
    if (test::send(sut, "ping") == ~0ULL) break;
  }
  EXPECT_EQ(sent, kRounds) << "F1: round " << sent << ": the reader did not consume and park again";
  EXPECT_TRUE(test::wait_until([&] { return reader.received.load() == kRounds; }, kDeadline))
      << "F1: received " << reader.received.load() << " of " << kRounds;
  reader.stop();
  EXPECT_EQ(reader.timeouts.load(), 0U) << "F1: a futex wait ran into its timeout";
  EXPECT_GE(reader.parks.load(), kRounds);
  EXPECT_FALSE(reader.wrong.load());
}

// The repairer's pad must wake a reader parked on the hole, like a commit does.
TEST(TopicParker_test, ReaderParkedOnDeadWritersHoleIsWokenByRepair) {
  test::RingMemory mem(8, 16);
  TopicRepairer repairer(mem.ring());
  auto dying = mem.writer(/*owner=*/5, 5);
  SlotClaim hole;
  ASSERT_EQ(dying.claim(4, hole), ClaimStatus::Ok);
  ParkingReader reader(mem, 1);
  ASSERT_TRUE(test::wait_until([&] { return mem.header().waiters.load() == 1; }, kDeadline));

  // Two janitor ticks: the first notes the parked subscriber's position, the second judges the slot.
  const IsDead dead5 = [](std::uint32_t owner) { return owner == 5; };
  ASSERT_EQ(repairer.scan(dead5) + repairer.scan(dead5), 1U);

  EXPECT_TRUE(test::wait_until([&] { return reader.position.load() == 1; }, kDeadline))
      << "F1: the reader parked on the hole did not move past the pad";
  auto live = mem.writer(1, 1);
  ASSERT_EQ(test::send(live, "after"), 1U);
  EXPECT_TRUE(test::wait_until([&] { return reader.received.load() == 1; }, kDeadline));
  reader.stop();
  EXPECT_EQ(reader.timeouts.load(), 0U);
  EXPECT_FALSE(reader.wrong.load());
}

}  // namespace
}  // namespace shmbus::ring
