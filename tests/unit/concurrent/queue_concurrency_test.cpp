// Producer, consumer and daemon-agent threads on one small queue in process memory. Runs under
// TSan (ctest -L tsan in the SHMBUS_SANITIZE=thread build).
//
// Forbidden outcomes (each fails the test):
//   F1  a message acknowledged twice (an ack won twice for one message)
//   F2  a message sent (publish returned) never acknowledged, within the deadline
//   F3  a body that does not match its (producer, sequence) header (torn or stale read)
//   F4  a late ack winning after the daemon took the delivery back
// Allowed: full queue (producers retry), give-backs, redeliveries, duplicate deliveries of a
// message that was taken back (at-least-once), each counted.
#include "common/paths.hpp"
#include "queue_agent.hpp"
#include "ring/queue_ring.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <immintrin.h>
#include <memory>
#include <thread>
#include <vector>

namespace shmbus {
namespace {

using ring::QueueDelivery;
using ring::QueueReader;
using ring::QueueRing;
using ring::QueueWriter;
using ring::TakeStatus;

constexpr std::uint32_t kProducers = 2;
constexpr std::uint32_t kConsumers = 2;
constexpr std::uint32_t kPerProducer = 20'000;
constexpr auto kDeadline = std::chrono::seconds(120);

struct Body {
  std::uint32_t producer;
  std::uint32_t seq;
  std::uint64_t check;  // producer * 1e9 + seq, so a torn copy shows
};

struct Memory {
  Memory(std::uint32_t slots, std::uint64_t ack_timeout_ns) {
    size = layout::queue_geometry(slots, sizeof(Body)).total;
    base = std::shared_ptr<void>(std::aligned_alloc(layout::kHotBlock, layout::align_up(size, layout::kHotBlock)), std::free);
    std::memset(base.get(), 0, size);
    ring::QueueConfig c;
    c.slot_count = slots;
    c.max_payload = sizeof(Body);
    c.dest_id = 1;
    c.max_deliveries = 0;  // unlimited: nothing goes to a DLQ here
    c.flags = 0;
    c.name = "tsan";
    EXPECT_TRUE(QueueRing::init(base.get(), size, c));
    q = QueueRing(base.get());
    for (std::uint32_t i = 0; i < kProducers; ++i) q.producer(i)->state.store(1);
    for (std::uint32_t i = 0; i < kConsumers; ++i) {
      q.consumer(i)->ack_timeout_ns = ack_timeout_ns;
      q.consumer(i)->state.store(1);
    }
  }
  std::shared_ptr<void> base;
  std::uint64_t size = 0;
  QueueRing q;
};

struct Outcome {
  std::vector<std::atomic<std::uint32_t>> acks = std::vector<std::atomic<std::uint32_t>>(kProducers * kPerProducer);
  std::atomic<std::uint64_t> torn{0}, late_acks{0}, give_backs{0}, deliveries{0};
  std::atomic<std::uint64_t> acked_total{0};
  std::atomic<std::uint64_t> dropped{0};
};

void produce(const QueueRing& q, std::uint32_t p, std::atomic<bool>& stop) {
  QueueWriter w(q, p);
  for (std::uint32_t seq = 0; seq < kPerProducer && !stop.load(std::memory_order_relaxed);) {
    std::uint32_t slot = 0;
    if (!w.acquire(slot)) {  // full: consumers will free slots
      std::this_thread::yield();  // 5 threads on 2 cores: let the others run
      continue;
    }
    // Relaxed atomic stores (not memcpy): a consumer whose delivery the daemon took back may
    // still be reading the slot as it is rewritten (it then drops its copy: still_mine());
    // atomic accesses keep that intended seqlock race out of TSan's reports.
    auto* dst = reinterpret_cast<Body*>(q.payload(slot));
    std::atomic_ref<std::uint32_t>(dst->producer).store(p, std::memory_order_relaxed);
    std::atomic_ref<std::uint32_t>(dst->seq).store(seq, std::memory_order_relaxed);
    std::atomic_ref<std::uint64_t>(dst->check).store(std::uint64_t{p} * 1'000'000'000ULL + seq, std::memory_order_relaxed);
    ring::QueueSendMeta m;
    m.length = sizeof(Body);
    m.priority = static_cast<std::uint8_t>(seq % 10);
    w.publish(slot, m);
    ++seq;
  }
}

// mode 0: take + ack at once (AUTO). mode 1: tracked; every 5th delivery is given back,
// every 7th is held and acked late (after the next one), so the agent's timeouts race it.
void consume(const QueueRing& q, std::uint32_t c, int mode, Outcome& out, std::atomic<bool>& stop) {
  QueueReader r(q, c, mode != 0);
  QueueDelivery held{};
  Body held_body{};
  bool holding = false;
  std::uint64_t n = 0;
  const auto settle_held = [&] {
    if (r.ack(held) == ring::SettleStatus::Ok) {
      out.acks[held_body.producer * kPerProducer + held_body.seq].fetch_add(1);
      out.acked_total.fetch_add(1);
    } else {
      out.late_acks.fetch_add(1);  // the daemon took it back first: another delivery will ack it
    }
    holding = false;
  };
  while (!stop.load(std::memory_order_relaxed)) {
    QueueDelivery d;
    const auto st = r.take(d);
    if (st != TakeStatus::Ok) {
      if (holding) settle_held();
      std::this_thread::yield();  // 5 threads on 2 cores: let the others run
      continue;
    }
    out.deliveries.fetch_add(1);
    auto* src = reinterpret_cast<Body*>(q.payload(d.slot));
    Body b{std::atomic_ref<std::uint32_t>(src->producer).load(std::memory_order_relaxed),
           std::atomic_ref<std::uint32_t>(src->seq).load(std::memory_order_relaxed),
           std::atomic_ref<std::uint64_t>(src->check).load(std::memory_order_relaxed)};
    if (!r.still_mine(d)) {  // taken back while we copied: what MessageConsumer does, drop it
      out.dropped.fetch_add(1);
      continue;
    }
    if (b.producer >= kProducers || b.seq >= kPerProducer || b.check != std::uint64_t{b.producer} * 1'000'000'000ULL + b.seq) {
      out.torn.fetch_add(1);
      continue;
    }
    ++n;
    if (mode == 1 && n % 201 == 0) {
      // Hold one delivery past its ack timeout (plus a wheel tick) so the agent's take-back
      // races this ack. Spinning on the clock makes the race likely; the outcome is checked
      // either way.
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(3);
      while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
      if (r.ack(d) == ring::SettleStatus::Ok) {
        out.acks[b.producer * kPerProducer + b.seq].fetch_add(1);
        out.acked_total.fetch_add(1);
      } else {
        out.late_acks.fetch_add(1);
      }
      continue;
    }
    if (mode == 1 && n % 5 == 0) {
      if (r.give_back(d) == ring::SettleStatus::Ok) out.give_backs.fetch_add(1);
      continue;
    }
    if (mode == 1 && n % 7 == 0 && !holding) {
      held = d;
      held_body = b;
      holding = true;
      continue;
    }
    if (r.ack(d) == ring::SettleStatus::Ok) {
      out.acks[b.producer * kPerProducer + b.seq].fetch_add(1);
      out.acked_total.fetch_add(1);
    } else {
      out.late_acks.fetch_add(1);
    }
    if (holding) settle_held();
  }
}

void run(int mode, std::uint64_t ack_timeout_ns, Outcome& out) {
  Memory m(64, ack_timeout_ns);
  std::atomic<bool> stop{false}, agent_stop{false};
  daemon::QueueAgent agent([](std::uint32_t) {}, common::mono_ns());
  agent.add(1, "queue://tsan", m.q, m.base);
  std::thread agent_thread([&] {
    while (!agent_stop.load()) {
      agent.tick(common::mono_ns());
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (std::uint32_t c = 0; c < kConsumers; ++c) threads.emplace_back(consume, std::cref(m.q), c, mode, std::ref(out), std::ref(stop));
  std::vector<std::thread> producers;
  for (std::uint32_t p = 0; p < kProducers; ++p) producers.emplace_back(produce, std::cref(m.q), p, std::ref(stop));
  for (auto& t : producers) t.join();
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (out.acked_total.load() < std::uint64_t{kProducers} * kPerProducer && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  stop.store(true);
  for (auto& t : threads) t.join();
  agent_stop.store(true);
  agent_thread.join();
}

void expect_exactly_once(const Outcome& out) {
  EXPECT_EQ(out.torn.load(), 0U) << "F3";
  std::uint64_t missing = 0, twice = 0;
  for (const auto& a : out.acks) {
    if (a.load() == 0) ++missing;
    if (a.load() > 1) ++twice;
  }
  EXPECT_EQ(twice, 0U) << "F1/F4: acknowledged more than once";
  EXPECT_EQ(missing, 0U) << "F2: never acknowledged";
}

TEST(QueueConcurrency_test, AutoAckEveryMessageExactlyOnceThroughASmallQueue) {
  Outcome out;
  run(0, 0, out);
  expect_exactly_once(out);
  EXPECT_EQ(out.late_acks.load(), 0U);
}

TEST(QueueConcurrency_test, GiveBacksAndLateAcksRacingTheDaemonStillAckEachMessageOnce) {
  Outcome out;
  run(1, 200'000, out);  // 0.2 ms ack timeout: the agent takes held deliveries back constantly
  expect_exactly_once(out);
  EXPECT_GT(out.give_backs.load(), 0U);
  EXPECT_GT(out.deliveries.load(), std::uint64_t{kProducers} * kPerProducer);
  std::cout << "deliveries " << out.deliveries.load() << ", give-backs " << out.give_backs.load() << ", late acks "
            << out.late_acks.load() << "\n";
}

}  // namespace
}  // namespace shmbus
