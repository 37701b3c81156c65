// Lapping: a subscriber that falls a whole ring behind is told exactly how many ring sequences it
// skipped, then continues in order. Single-threaded on purpose: a lapped read is a seqlock read
// that races with the lapping producer by design, so these tests stay out of the `tsan` label.
#include "ring_fixture.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace shmbus::ring {
namespace {

using test::RingMemory;

// The resume rule of TopicReader::poll: a quarter ring behind (tail - n), at least one past pos.
std::uint64_t expected_resume(std::uint64_t tail, std::uint64_t n, std::uint64_t pos) {
  std::uint64_t resume = tail > n ? tail - n + n / 4 : 0;
  return resume <= pos ? pos + 1 : resume;
}

std::string body_for(std::uint64_t seq) { return "msg-" + std::to_string(seq); }

void write_n(TopicWriter& w, std::uint64_t first, std::uint64_t count) {
  for (std::uint64_t s = first; s < first + count; ++s) ASSERT_EQ(test::send(w, body_for(s)), s);
}

TEST(TopicRing_test, ReaderExactlyOneRingBehindIsNotLapped) {
  RingMemory mem(8, 32);
  auto writer = mem.writer(1, 1);
  auto sut = mem.reader();
  write_n(writer, 0, 8);

  for (std::uint64_t s = 0; s < 8; ++s) {
    const auto p = test::poll(sut);
    ASSERT_EQ(p.status, PollStatus::Message) << "seq " << s;
    EXPECT_EQ(p.text(), body_for(s));
  }
  EXPECT_EQ(mem.ring().subscriber(0)->lost.load(), 0U);
}

TEST(TopicRing_test, LappedSubscriberReportsExactLoss) {
  constexpr std::uint64_t kSlots = 8, kWritten = 20;
  RingMemory mem(kSlots, 32);
  auto writer = mem.writer(1, 9);
  auto sut = mem.reader();
  write_n(writer, 0, kWritten);

  const auto lapped = test::poll(sut);

  ASSERT_EQ(lapped.status, PollStatus::Lapped);
  const std::uint64_t resume = expected_resume(kWritten, kSlots, 0);
  EXPECT_EQ(resume, 14U);  // 20 - 8 + 8/4
  EXPECT_EQ(lapped.lost, resume);
  EXPECT_EQ(sut.position(), resume);
  std::uint64_t received = 0;
  for (std::uint64_t s = resume; s < kWritten; ++s, ++received) {
    const auto p = test::poll(sut);
    ASSERT_EQ(p.status, PollStatus::Message) << "after lapping, seq " << s << " must follow in order";
    EXPECT_EQ(p.meta.seq, s);
    EXPECT_EQ(p.meta.producer_seq, s + 1);
    EXPECT_EQ(p.text(), body_for(s));
  }
  EXPECT_EQ(test::poll(sut).status, PollStatus::Empty);
  EXPECT_EQ(received + lapped.lost, kWritten) << "every message is either received or counted lost";
  const auto* entry = mem.ring().subscriber(0);
  EXPECT_EQ(entry->lost.load(), lapped.lost);
  EXPECT_EQ(entry->received.load(), received);
  EXPECT_EQ(entry->position.load(), kWritten);
}

TEST(TopicRing_test, OneMessageMoreThanCapacityLapsAnIdleReader) {
  constexpr std::uint64_t kSlots = 8;
  RingMemory mem(kSlots, 32);
  auto writer = mem.writer(1, 1);
  auto sut = mem.reader();
  write_n(writer, 0, kSlots + 1);

  const auto p = test::poll(sut);

  ASSERT_EQ(p.status, PollStatus::Lapped);
  EXPECT_EQ(p.lost, expected_resume(kSlots + 1, kSlots, 0));
  const auto next = test::poll(sut);
  ASSERT_EQ(next.status, PollStatus::Message);
  EXPECT_EQ(next.meta.seq, p.lost);
}

TEST(TopicRing_test, LappedAfterPartialReadCountsOnlyUnreadSequences) {
  constexpr std::uint64_t kSlots = 8;
  RingMemory mem(kSlots, 32);
  auto writer = mem.writer(1, 1);
  auto sut = mem.reader();
  write_n(writer, 0, 3);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(test::poll(sut).status, PollStatus::Message);
  write_n(writer, 3, 30);

  const auto p = test::poll(sut);

  ASSERT_EQ(p.status, PollStatus::Lapped);
  EXPECT_EQ(p.lost, expected_resume(33, kSlots, 3) - 3);
  EXPECT_EQ(p.lost, 24U);  // resume at 33 - 8 + 2 = 27
  std::uint64_t received = 3;
  while (true) {
    const auto m = test::poll(sut);
    if (m.status == PollStatus::Empty) break;
    ASSERT_EQ(m.status, PollStatus::Message);
    EXPECT_EQ(m.meta.seq, 27 + (received - 3));
    ++received;
  }
  EXPECT_EQ(received + p.lost, 33U);
}

// Random interleaving of write bursts (up to 3 rings) and read bursts. The model predicts every
// Lapped result from the resume rule; in the end received + lost == messages written, and the
// delivered sequences are strictly increasing with intact bodies.
TEST(TopicRing_test, RepeatedLappingKeepsReceivedPlusLostExact) {
  constexpr std::uint64_t kSlots = 16;
  RingMemory mem(kSlots, 32);
  auto writer = mem.writer(1, 1);
  auto sut = mem.reader();
  std::mt19937_64 rng(12345);
  std::uint64_t written = 0, received = 0, lost = 0, laps = 0, model_pos = 0;

  for (int round = 0; round < 500; ++round) {
    const std::uint64_t burst = rng() % (3 * kSlots);
    write_n(writer, written, burst);
    written += burst;
    for (std::uint64_t reads = rng() % (kSlots + 1); reads > 0; --reads) {
      const auto p = test::poll(sut);
      if (p.status == PollStatus::Empty) {
        ASSERT_EQ(model_pos, written);
        break;
      }
      if (p.status == PollStatus::Lapped) {
        const auto resume = expected_resume(written, kSlots, model_pos);
        ASSERT_EQ(p.lost, resume - model_pos) << "round " << round;
        model_pos = resume;
        lost += p.lost;
        ++laps;
        continue;
      }
      ASSERT_EQ(p.meta.seq, model_pos) << "round " << round;
      ASSERT_EQ(p.text(), body_for(model_pos));
      ++model_pos;
      ++received;
    }
  }
  for (;;) {  // drain
    const auto p = test::poll(sut);
    if (p.status == PollStatus::Empty) break;
    if (p.status == PollStatus::Lapped) lost += p.lost, ++laps;
    else ++received;
  }
  EXPECT_GT(laps, 10U) << "the scenario must actually lap the reader";
  EXPECT_EQ(received + lost, written);
  EXPECT_EQ(mem.ring().subscriber(0)->lost.load(), lost);
  EXPECT_EQ(mem.ring().subscriber(0)->received.load(), received);
}

TEST(TopicRing_test, LappedLossIncludesPadsInTheSkippedRange) {
  // `lost` counts ring sequences skipped; an aborted claim inside the skipped range is one of them.
  constexpr std::uint64_t kSlots = 4;
  RingMemory mem(kSlots, 16);
  auto writer = mem.writer(1, 1);
  auto sut = mem.reader();
  SlotClaim c;
  ASSERT_EQ(writer.claim(1, c), ClaimStatus::Ok);
  writer.abort(c);
  write_n(writer, 1, 9);

  const auto p = test::poll(sut);

  ASSERT_EQ(p.status, PollStatus::Lapped);
  EXPECT_EQ(p.lost, expected_resume(10, kSlots, 0));
}

}  // namespace
}  // namespace shmbus::ring
