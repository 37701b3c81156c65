// Two pusher threads, two popper threads, one small index ring in process memory: 1M distinct
// values through a ring of 256 cells, so it wraps thousands of times and runs both full and empty.
// Runs under TSan (ctest -L tsan in the SHMBUS_SANITIZE=thread build).
//
// Forbidden outcomes (each fails the test):
//   F1  a value popped twice (duplicate)
//   F2  a value pushed (try_push returned Ok) never popped (loss), within the deadline
//   F3  a value popped that was never pushed (torn / stale / tombstone leaked)
//   F4  one popper sees one pusher's values out of push order (positions are claimed in order)
//   F5  a record left non-idle after its operation returned
// Allowed: Full, Empty and Busy results (retried), any interleaving of the two pushers.
#include "ring/index_ring.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace shmbus::ring {
namespace {

constexpr std::uint32_t kPushers = 2;
constexpr std::uint32_t kPoppers = 2;
constexpr std::uint32_t kTotal = 1'000'000;
constexpr std::uint32_t kPerPusher = kTotal / kPushers;
constexpr std::uint32_t kCapacity = 256;
constexpr auto kDeadline = std::chrono::seconds(60);  // ~7 s under TSan on 2 cores
static_assert(kTotal % kPushers == 0);

struct alignas(layout::kHotBlock) Block {
  std::byte b[layout::kHotBlock];
};

struct PopperOutcome {
  std::uint64_t popped = 0, out_of_order = 0, unknown = 0, busy = 0, not_idle = 0;
  std::array<std::int64_t, kPushers> last{};  // last value index seen per pusher, -1 before any
};

TEST(IndexRingConcurrency_test, TwoPushersTwoPoppersEveryValueExactlyOnceInPerPusherOrder) {
  std::vector<Block> mem((layout::index_ring_size(kCapacity) + sizeof(Block) - 1) / sizeof(Block));
  ASSERT_TRUE(IndexRing::init(mem.data(), kCapacity));
  IndexRing sut(mem.data());
  std::array<ClaimRecord, kPushers + kPoppers> records{};
  for (std::uint32_t i = 0; i < kPushers; ++i) IndexRing::init_record(records[i], i, layout::ClaimRole::Pusher);
  for (std::uint32_t i = 0; i < kPoppers; ++i)
    IndexRing::init_record(records[kPushers + i], kPushers + i, layout::ClaimRole::Popper);

  auto seen = std::make_unique<std::atomic<std::uint8_t>[]>(kTotal);  // value -> times popped
  std::atomic<std::uint32_t> popped_total{0};
  std::atomic<bool> timed_out{false};
  std::array<PopperOutcome, kPoppers> outcome{};
  std::array<std::uint64_t, kPushers> push_busy{}, push_not_idle{};
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  std::latch start(kPushers + kPoppers);
  std::vector<std::thread> threads;

  for (std::uint32_t p = 0; p < kPushers; ++p) {
    threads.emplace_back([&, p] {
      ClaimRecord& rec = records[p];
      start.arrive_and_wait();
      for (std::uint32_t k = 0; k < kPerPusher;) {
        const IndexStatus s = sut.try_push(p * kPerPusher + k, rec);
        if (rec.op_pos.load(std::memory_order_relaxed) != layout::kClaimIdle) ++push_not_idle[p];
        if (s == IndexStatus::Ok) {
          ++k;
          continue;
        }
        if (s == IndexStatus::Busy) ++push_busy[p];
        if (timed_out.load(std::memory_order_relaxed) || std::chrono::steady_clock::now() > deadline) {
          timed_out.store(true, std::memory_order_relaxed);
          return;
        }
        std::this_thread::yield();  // 4 threads on 2 cores: let the poppers run
      }
    });
  }
  for (std::uint32_t c = 0; c < kPoppers; ++c) {
    threads.emplace_back([&, c] {
      ClaimRecord& rec = records[kPushers + c];
      PopperOutcome& out = outcome[c];
      out.last.fill(-1);
      start.arrive_and_wait();
      while (popped_total.load(std::memory_order_relaxed) < kTotal) {
        std::uint32_t v = layout::kNoValue;
        const IndexStatus s = sut.try_pop(v, rec);
        if (rec.op_pos.load(std::memory_order_relaxed) != layout::kClaimIdle) ++out.not_idle;
        if (s == IndexStatus::Ok) {
          ++out.popped;
          popped_total.fetch_add(1, std::memory_order_relaxed);
          if (v >= kTotal) {
            ++out.unknown;
            continue;
          }
          seen[v].fetch_add(1, std::memory_order_relaxed);
          const std::uint32_t pusher = v / kPerPusher;
          const std::int64_t idx = v % kPerPusher;
          if (idx <= out.last[pusher]) ++out.out_of_order;
          out.last[pusher] = idx;
          continue;
        }
        if (s == IndexStatus::Busy) ++out.busy;
        if (timed_out.load(std::memory_order_relaxed) || std::chrono::steady_clock::now() > deadline) {
          timed_out.store(true, std::memory_order_relaxed);
          return;
        }
        std::this_thread::yield();
      }
    });
  }
  for (auto& t : threads) t.join();

  ASSERT_FALSE(timed_out.load()) << "F2: only " << popped_total.load() << " of " << kTotal
                                 << " values popped within the deadline (a value lost, or a cell stuck)";
  std::uint64_t missing = 0, duplicated = 0, first_bad = kTotal;
  for (std::uint32_t v = 0; v < kTotal; ++v) {
    const auto n = seen[v].load();
    if (n == 0) ++missing;
    if (n > 1) ++duplicated;
    if (n != 1 && first_bad == kTotal) first_bad = v;
  }
  EXPECT_EQ(duplicated, 0U) << "F1: values popped twice, first " << first_bad;
  EXPECT_EQ(missing, 0U) << "F2: values never popped, first " << first_bad;
  std::uint64_t popped = 0, busy = 0;
  for (std::uint32_t c = 0; c < kPoppers; ++c) {
    EXPECT_EQ(outcome[c].unknown, 0U) << "F3: popper " << c << " got values never pushed";
    EXPECT_EQ(outcome[c].out_of_order, 0U) << "F4: popper " << c;
    EXPECT_EQ(outcome[c].not_idle, 0U) << "F5: popper " << c;
    popped += outcome[c].popped;
    busy += outcome[c].busy;
  }
  for (std::uint32_t p = 0; p < kPushers; ++p) {
    EXPECT_EQ(push_not_idle[p], 0U) << "F5: pusher " << p;
    busy += push_busy[p];
  }
  EXPECT_EQ(popped, kTotal);
  EXPECT_EQ(sut.header().head.load(), kTotal) << "no tombstones without a repair";
  EXPECT_EQ(sut.header().tail.load(), kTotal);
  EXPECT_EQ(sut.header().tombstones_skipped.load(), 0U);
  RecordProperty("busy_results", std::to_string(busy));
}

}  // namespace
}  // namespace shmbus::ring
