// Many producer threads, many reader threads, one topic ring in process memory. Runs under TSan
// (ctest -L tsan in the SHMBUS_SANITIZE=thread build). The ring is larger than everything written,
// so no reader can be lapped: every read here is a plain acquire/release hand-off, which TSan
// must find race-free.
//
// Forbidden outcomes (each fails the test):
//   F1  a reader misses a message or sees one twice (per-producer count != kPerProducer)
//   F2  a reader sees one producer's messages out of order (producer_seq != previous + 1)
//   F3  a payload that does not match its header or its checksum (torn / mixed / stale write)
//   F4  a reader is Lapped, or a producer is Stalled / TooLarge (impossible without lapping)
//   F5  two messages with the same ring sequence, or a sequence >= the number of claims
// Allowed: any interleaving of different producers' messages; readers at different speeds.
#include "ring/topic_repair.hpp"
#include "ring_fixture.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <latch>
#include <string>
#include <thread>

namespace shmbus::ring {
namespace {

constexpr std::uint32_t kProducers = 3;
constexpr std::uint32_t kReaders = 3;
constexpr std::uint64_t kPerProducer = 100'000;
constexpr std::uint64_t kTotal = kProducers * kPerProducer;
constexpr std::uint32_t kSlots = 1U << 19;  // > kTotal: lapping is impossible
constexpr std::uint32_t kMaxPayload = 64;
static_assert(kSlots > kTotal);

constexpr std::uint32_t kHead = 12;  // u64 producer_seq + u32 producer id, then filler, then u32 checksum

std::uint32_t fnv1a(const std::byte* p, std::size_t n) {
  std::uint32_t h = 2166136261U;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<std::uint32_t>(p[i])) * 16777619U;
  return h;
}

std::uint32_t length_for(std::uint64_t producer_seq) {
  return static_cast<std::uint32_t>(kHead + 4 + producer_seq % (kMaxPayload - kHead - 4 + 1));
}

void fill(std::byte* p, std::uint32_t len, std::uint32_t producer_id, std::uint64_t producer_seq) {
  std::memcpy(p, &producer_seq, 8);
  std::memcpy(p + 8, &producer_id, 4);
  for (std::uint32_t i = kHead; i < len - 4; ++i)
    p[i] = static_cast<std::byte>(producer_seq * 31 + producer_id * 7 + i);
  const std::uint32_t sum = fnv1a(p, len - 4);
  std::memcpy(p + len - 4, &sum, 4);
}

struct ReaderOutcome {
  std::array<std::uint64_t, kProducers + 1> count{};   // index = producer id (1-based)
  std::array<std::uint64_t, kProducers + 1> last_seq{};
  std::uint64_t received = 0, out_of_order = 0, corrupt = 0, lapped = 0, bad_seq = 0, unknown_producer = 0;
  std::string first_problem;
  bool timed_out = false;

  void problem(const std::string& what) {
    if (first_problem.empty()) first_problem = what;
  }
};

void check_message(ReaderOutcome& o, const ReadMeta& m, const std::byte* buf, std::uint64_t& last_ring_seq) {
  const auto pid = m.producer_id;
  if (pid == 0 || pid > kProducers) {
    ++o.unknown_producer;
    return o.problem("producer id " + std::to_string(pid));
  }
  if (m.seq >= kTotal || (o.received > 0 && m.seq <= last_ring_seq)) {
    ++o.bad_seq;
    o.problem("ring seq " + std::to_string(m.seq) + " after " + std::to_string(last_ring_seq));
  }
  last_ring_seq = m.seq;
  ++o.received;
  ++o.count[pid];
  if (m.producer_seq != o.last_seq[pid] + 1) {
    ++o.out_of_order;
    o.problem("producer " + std::to_string(pid) + " seq " + std::to_string(m.producer_seq) + " after " +
              std::to_string(o.last_seq[pid]));
  }
  o.last_seq[pid] = m.producer_seq;
  std::uint64_t seq_in_body = 0;
  std::uint32_t pid_in_body = 0, sum = 0;
  std::memcpy(&seq_in_body, buf, 8);
  std::memcpy(&pid_in_body, buf + 8, 4);
  if (m.length < kHead + 4) {
    ++o.corrupt;
    return o.problem("short message");
  }
  std::memcpy(&sum, buf + m.length - 4, 4);
  if (m.length != length_for(m.producer_seq) || seq_in_body != m.producer_seq || pid_in_body != pid ||
      sum != fnv1a(buf, m.length - 4)) {
    ++o.corrupt;
    o.problem("corrupt payload at ring seq " + std::to_string(m.seq));
  }
}

TEST(TopicRingConcurrency_test, ThreeProducersThreeReadersEveryMessageExactlyOnceInOrder) {
  test::RingMemory mem(kSlots, kMaxPayload);
  std::latch start(kProducers + kReaders);
  std::array<std::uint64_t, kProducers> not_ok{};
  std::array<ReaderOutcome, kReaders> outcomes;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(4);

  std::vector<std::thread> threads;
  for (std::uint32_t r = 0; r < kReaders; ++r)
    threads.emplace_back([&, r] {
      auto sut = mem.reader(r, 0);
      auto& o = outcomes[r];
      std::array<std::byte, kMaxPayload> buf{};
      std::uint64_t last_ring_seq = 0;
      start.arrive_and_wait();
      for (std::uint64_t polls = 0; o.received < kTotal; ++polls) {
        ReadMeta meta;
        std::uint64_t lost = 0;
        const auto st = sut.poll(buf.data(), meta, lost);
        if (st == PollStatus::Message) {
          check_message(o, meta, buf.data(), last_ring_seq);
        } else if (st == PollStatus::Lapped) {
          ++o.lapped;
          o.problem("lapped, lost " + std::to_string(lost));
          return;
        } else {
          std::this_thread::yield();  // 2 shared cores: let the producers run
          if (polls % 1024 == 0 && std::chrono::steady_clock::now() > deadline) {
            o.timed_out = true;
            return;
          }
        }
      }
    });
  for (std::uint32_t p = 0; p < kProducers; ++p)
    threads.emplace_back([&, p] {
      auto w = mem.writer(/*owner=*/p, /*producer_id=*/p + 1);
      start.arrive_and_wait();
      for (std::uint64_t i = 1; i <= kPerProducer; ++i) {
        const std::uint32_t len = length_for(i);
        SlotClaim c;
        if (w.claim(len, c) != ClaimStatus::Ok) {
          ++not_ok[p];
          return;
        }
        fill(c.data, len, p + 1, i);
        w.commit(c, len, static_cast<std::int64_t>(i));
      }
    });
  for (auto& t : threads) t.join();

  EXPECT_EQ(mem.header().tail.load(), kTotal) << "F5: every claim is one ring sequence";
  for (std::uint32_t p = 0; p < kProducers; ++p) EXPECT_EQ(not_ok[p], 0U) << "F4: producer " << p << " was refused";
  for (std::uint32_t r = 0; r < kReaders; ++r) {
    const auto& o = outcomes[r];
    SCOPED_TRACE("reader " + std::to_string(r) + (o.first_problem.empty() ? "" : ", first problem: " + o.first_problem));
    EXPECT_FALSE(o.timed_out) << "reader did not receive " << kTotal << " messages within the deadline (got "
                              << o.received << ")";
    EXPECT_EQ(o.lapped, 0U) << "F4";
    EXPECT_EQ(o.out_of_order, 0U) << "F2";
    EXPECT_EQ(o.corrupt, 0U) << "F3";
    EXPECT_EQ(o.bad_seq, 0U) << "F5";
    EXPECT_EQ(o.unknown_producer, 0U) << "F3";
    for (std::uint32_t pid = 1; pid <= kProducers; ++pid)
      EXPECT_EQ(o.count[pid], kPerProducer) << "F1: producer " << pid;
    EXPECT_EQ(mem.ring().subscriber(r)->received.load(), o.received);
    EXPECT_EQ(mem.ring().subscriber(r)->lost.load(), 0U);
  }
}

const IsDead kNobodyDead = [](std::uint32_t) { return false; };

// Two producers race with the repairer over a dead writer's hole: the pad must be seen by every
// reader as a skipped sequence, never as a message, and the live producers' messages all arrive.
// Forbidden: a reader receives the dead claim, loses a live message, or blocks on the hole.
TEST(TopicRingConcurrency_test, RepairedHoleUnblocksConcurrentReaders) {
  constexpr std::uint64_t kEach = 20'000;
  test::RingMemory mem(1U << 16, 16);
  auto dying = mem.writer(/*owner=*/99, 99);
  SlotClaim hole;
  ASSERT_EQ(dying.claim(8, hole), ClaimStatus::Ok);  // seq 0: its owner "dies" now
  TopicRepairer repairer(mem.ring());                 // created with the topic, as the janitor does
  std::atomic<std::uint64_t> got[2] = {0, 0};
  std::atomic<bool> bad{false};

  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      auto sut = mem.reader(static_cast<std::uint32_t>(r), 0);
      std::array<std::byte, 16> buf{};
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
      while (got[r].load(std::memory_order_relaxed) < 2 * kEach && std::chrono::steady_clock::now() < deadline) {
        ReadMeta meta;
        std::uint64_t lost = 0;
        const auto st = sut.poll(buf.data(), meta, lost);
        if (st == PollStatus::Message) {
          if (meta.producer_id == 99 || meta.seq == 0) bad = true;
          got[r].fetch_add(1, std::memory_order_relaxed);
        } else if (st == PollStatus::Lapped) {
          bad = true;
          return;
        } else {
          std::this_thread::yield();
        }
      }
    });
  for (std::uint32_t p = 0; p < 2; ++p)
    threads.emplace_back([&, p] {
      auto w = mem.writer(p, p + 1);
      for (std::uint64_t i = 0; i < kEach; ++i)
        if (test::send(w, "live") == ~0ULL) bad = true;
    });
  // The daemon's janitor loop, reduced: tick until the hole is padded. Only client 99 is dead, so
  // every other claim the repairer looks at (writing or claimed-but-unstarted) belongs to a live
  // producer and must be left alone.
  const IsDead dead = [](std::uint32_t owner) { return owner == 99; };
  const bool repaired = test::wait_until(
      [&] {
        repairer.tick(dead);
        return hole.slot->stamp.load() == layout::make_stamp(0, SlotState::Pad);
      },
      std::chrono::seconds(30));
  for (auto& t : threads) t.join();

  EXPECT_TRUE(repaired) << "the repairer never padded the dead writer's slot";
  EXPECT_FALSE(bad) << "a reader saw the dead claim, was lapped, or a producer was refused";
  EXPECT_EQ(got[0].load(), 2 * kEach);
  EXPECT_EQ(got[1].load(), 2 * kEach);
  EXPECT_EQ(mem.header().holes_repaired.load(), 1U);
}

// Live producers lap an 8-slot ring (so they constantly wait for each other's previous lap and
// sit between fetch_add and their writing mark) while the repairer sweeps and ticks as fast as it
// can with nobody dead. No subscribers: nothing reads a payload, so every access TSan sees is an
// acquire/release hand-off. Forbidden: any pad (a live claim overruled: holes_repaired != 0 — the
// owner of a padded unstarted claim would then wait forever for a previous lap that never comes,
// seen as a producer that misses the deadline), or a sequence that ends up unpublished.
TEST(TopicRingConcurrency_test, RepairerNeverPadsLiveProducersClaimsWhileTheyLapTheRing) {
  constexpr std::uint32_t kWriters = 3;
  constexpr std::uint64_t kEach = 20'000;
  constexpr std::uint32_t kSmall = 8;
  test::RingMemory mem(kSmall, 16);
  TopicRepairer repairer(mem.ring());
  std::atomic<std::uint32_t> finished{0};
  std::array<std::uint64_t, kWriters> sent{};
  std::array<bool, kWriters> timed_out{};
  std::latch start(kWriters + 1);
  std::atomic<bool> repairer_running{false};  // writers begin only once the repairer is sweeping
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);

  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < kWriters; ++p)
    threads.emplace_back([&, p] {
      auto sut = mem.writer(/*owner=*/p, /*producer_id=*/p + 1);
      start.arrive_and_wait();
      // Acquire: pairs with the release store after the repairer's first sweep.
      while (!repairer_running.load(std::memory_order_acquire)) std::this_thread::yield();
      for (std::uint64_t i = 0; i < kEach; ++i) {
        SlotClaim c;
        ClaimStatus st;
        while ((st = sut.claim(8, c, /*spin_limit=*/64)) == ClaimStatus::Stalled) {
          if (std::chrono::steady_clock::now() > deadline) {
            timed_out[p] = true;
            finished.fetch_add(1);
            return;
          }
          std::this_thread::yield();  // 2 shared cores: let the producer we wait for run
        }
        if (st != ClaimStatus::Ok) break;
        std::memcpy(c.data, &i, sizeof i);
        sut.commit(c, sizeof i, 0);
        ++sent[p];
      }
      finished.fetch_add(1);
    });
  std::uint64_t sweeps = 0, padded = 0;
  start.arrive_and_wait();
  do {
    padded += repairer.sweep(kNobodyDead).padded;
    padded += repairer.tick(kNobodyDead);
    ++sweeps;
    // Release: the writers' acquire load; from here they lap the ring while we keep sweeping.
    repairer_running.store(true, std::memory_order_release);
  } while (finished.load() < kWriters);
  for (auto& t : threads) t.join();

  EXPECT_EQ(padded, 0U);
  EXPECT_EQ(mem.header().holes_repaired.load(), 0U) << "a live producer's claim was padded";
  for (std::uint32_t p = 0; p < kWriters; ++p) {
    EXPECT_FALSE(timed_out[p]) << "producer " << p << " stalled for good (its claim was overruled?)";
    EXPECT_EQ(sent[p], kEach) << "producer " << p;
  }
  EXPECT_EQ(mem.header().tail.load(), kWriters * kEach);
  const SweepResult final_state = repairer.sweep(kNobodyDead);
  EXPECT_EQ(final_state.padded + final_state.unpublished, 0U) << "every claimed sequence is published";
  for (std::uint64_t seq = kWriters * kEach - kSmall; seq < kWriters * kEach; ++seq)
    EXPECT_EQ(mem.ring().slot(seq)->stamp.load(), layout::make_stamp(seq, SlotState::Data)) << "seq " << seq;
  EXPECT_GT(sweeps, 0U);
}

}  // namespace
}  // namespace shmbus::ring
