// Selector consumers (QueueReader::take_matching: in-place scan, READY -> DELIVERED CAS, stale
// cells left behind, tidy_head's drop and rotation of an unwanted head) racing producers, a plain
// consumer (take()) and the daemon's queue agent, on a 16-slot queue in process memory so the
// ready rings hold stale cells constantly and the rotation path is hot. Runs under TSan (ctest -L
// tsan in the SHMBUS_SANITIZE=thread build). docs/queues.md, "Selectors".
//
// Messages carry a colour in the body (red, blue, green); the "red" and "blue" consumers call
// take_matching() with a filter reading the colour in the READY slot: red takes red; blue takes
// blue, and in the first test green too, so that two in-place scanners race for the same cells
// (the claim CAS decides); in the rotation test nobody's filter matches green.
//
// Forbidden outcomes (each fails the test):
//   S1  a message acknowledged twice (two acks won for one message)
//   S2  a published message never acknowledged within the deadline (lost, or stuck in a ring; 10 s
//       without a new ack count as stuck), or a thread stuck inside the queue code after the stop
//       flag (reported as HANG with the rings' contents, exit code 3: it cannot be joined)
//   S3  a body that does not match its (producer, seq, colour) check word (torn or stale read)
//   S4  a selector consumer handed a message its filter does not accept (its colour wrong), or a
//       message acknowledged by a consumer whose filter rejects it
//   S5  the queue not drained at the end: a slot not FREE, a ready ring that a plain take() does
//       not empty (stale cells it cannot drop, or a READY cell), the free ring not holding exactly
//       N distinct slots, or not exactly N acquire()s succeeding
//   S6  (rotation variant) a green message gone before the late plain consumer arrives, or one
//       delivered to anyone else
// Allowed: give-backs and their redeliveries (counted), stale cells (counted by the queue),
// rotations (counted). Order is measured, not asserted: first deliveries of one producer and
// priority reaching one consumer out of send order are counted in the [ info ] line.
#include "common/paths.hpp"
#include "queue_agent.hpp"
#include "ring/queue_ring.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace shmbus {
namespace {

using layout::QState;
using layout::QWord;
using ring::QueueDelivery;
using ring::QueueReader;
using ring::QueueRing;
using ring::QueueWriter;
using ring::TakeStatus;

constexpr std::uint32_t kSlots = 16;  // ready rings of 32 cells: stale cells fill them quickly
constexpr std::uint32_t kProducers = 2;
constexpr std::uint32_t kRedConsumer = 0, kBlueConsumer = 1, kPlainConsumer = 2, kCheckConsumer = 3;
constexpr std::uint32_t kConsumerEntries = 4;
constexpr std::uint32_t kCheckProducer = kProducers;  // the final acquire() check
// Design bound: a few seconds under TSan; generous (docs/testing.md: deadlines are generous).
constexpr auto kDeadline = std::chrono::seconds(60);
constexpr auto kNoProgress = std::chrono::seconds(10);
constexpr auto kStopDeadline = std::chrono::seconds(10);

enum Color : std::uint32_t { kRed = 0, kBlue = 1, kGreen = 2 };
constexpr std::uint32_t bit(Color c) { return 1U << c; }  // filters accept a set of colours
const char* color_name(std::uint32_t c) { return c == kRed ? "red" : c == kBlue ? "blue" : c == kGreen ? "green" : "?"; }

struct Body {
  std::uint32_t producer;
  std::uint32_t seq;
  std::uint32_t color;
  std::uint32_t pad;
  std::uint64_t check;  // of the three fields above, so a torn copy shows
};

std::uint64_t check_of(std::uint32_t p, std::uint32_t seq, std::uint32_t color) {
  return ((std::uint64_t{p} << 48) ^ (std::uint64_t{seq} << 8) ^ color) * 0x9E3779B97F4A7C15ULL + 1;
}

// What one run sends: the colour and priority of each (producer, seq).
struct Plan {
  std::uint32_t per_producer = 0;
  Color (*color)(std::uint32_t p, std::uint32_t seq, std::uint32_t per_producer) = nullptr;
  std::uint8_t (*priority)(std::uint32_t seq) = nullptr;
  std::uint32_t selector_give_back_every = 0;  // 0: never
  std::uint32_t plain_give_back_every = 0;
  std::uint32_t total() const { return kProducers * per_producer; }
};

struct Memory {
  Memory() {
    size = layout::queue_geometry(kSlots, sizeof(Body)).total;
    base = std::shared_ptr<void>(std::aligned_alloc(layout::kHotBlock, layout::align_up(size, layout::kHotBlock)), std::free);
    std::memset(base.get(), 0, size);
    ring::QueueConfig c;
    c.slot_count = kSlots;
    c.max_payload = sizeof(Body);
    c.dest_id = 1;
    c.max_deliveries = 0;  // unlimited: nothing goes to a DLQ here
    c.flags = 0;
    c.name = "tsan-selector";
    EXPECT_TRUE(QueueRing::init(base.get(), size, c));
    q = QueueRing(base.get());
    for (std::uint32_t i = 0; i <= kCheckProducer; ++i) q.producer(i)->state.store(1);
    for (std::uint32_t i = 0; i < kConsumerEntries; ++i) {
      q.consumer(i)->ack_timeout_ns = 0;  // no ack timeout: only give-backs bring messages back
      q.consumer(i)->state.store(1);
    }
  }
  std::shared_ptr<void> base;
  std::uint64_t size = 0;
  QueueRing q;
};

// The filter a selector consumer passes to take_matching(): the colour in the READY slot. Relaxed
// atomic loads: the slot may be taken, acknowledged and rewritten by a producer while we read it
// (the claim's CAS then fails, so a verdict on torn bytes is never acted on); atomic accesses keep
// that intended race out of TSan's reports.
struct ColorFilter {
  QueueRing q;
  std::uint32_t accept = 0;  // bit(colour) for each colour taken
  std::uint64_t evaluations = 0;  // written by its consumer thread only
};

bool color_filter(void* ctx, std::uint32_t slot, std::uint64_t /*word*/) noexcept {
  auto* f = static_cast<ColorFilter*>(ctx);
  ++f->evaluations;
  auto* b = reinterpret_cast<Body*>(f->q.payload(slot));
  const std::uint32_t color = std::atomic_ref<std::uint32_t>(b->color).load(std::memory_order_relaxed);
  return color <= kGreen && (f->accept & (1U << color)) != 0;
}

struct Outcome {
  explicit Outcome(std::uint32_t n) : acks(n), ackers(n) {}
  std::vector<std::atomic<std::uint32_t>> acks;    // per message: acks that won
  std::vector<std::atomic<std::uint32_t>> ackers;  // per message: bit c set when consumer c acked it
  std::atomic<std::uint64_t> torn{0}, wrong_color{0}, give_backs{0}, not_owned{0}, acked_total{0};
  std::array<std::atomic<std::uint64_t>, kConsumerEntries> deliveries{}, inversions{};
  std::array<std::uint64_t, kConsumerEntries> evaluations{};
};

void produce(const QueueRing& q, std::uint32_t p, const Plan& plan, std::atomic<bool>& stop) {
  QueueWriter w(q, p);
  for (std::uint32_t seq = 0; seq < plan.per_producer && !stop.load(std::memory_order_relaxed);) {
    std::uint32_t slot = 0;
    if (!w.acquire(slot)) {  // full: consumers will free slots
      std::this_thread::yield();  // 6 threads on 2 cores: let the others run
      continue;
    }
    // Relaxed atomic stores, as the filter's loads (see ColorFilter).
    const std::uint32_t color = plan.color(p, seq, plan.per_producer);
    auto* dst = reinterpret_cast<Body*>(q.payload(slot));
    std::atomic_ref<std::uint32_t>(dst->producer).store(p, std::memory_order_relaxed);
    std::atomic_ref<std::uint32_t>(dst->seq).store(seq, std::memory_order_relaxed);
    std::atomic_ref<std::uint32_t>(dst->color).store(color, std::memory_order_relaxed);
    std::atomic_ref<std::uint64_t>(dst->check).store(check_of(p, seq, color), std::memory_order_relaxed);
    ring::QueueSendMeta m;
    m.length = sizeof(Body);
    m.priority = plan.priority(seq);
    w.publish(slot, m);
    ++seq;
  }
}

// `accept` 0: a plain consumer (take()); else a selector consumer taking those colours
// (take_matching() with color_filter). Tracked (the in-flight FIFO), no ack timeout.
void consume(const QueueRing& q, std::uint32_t c, std::uint32_t accept, const Plan& plan, Outcome& out,
             std::atomic<bool>& stop) {
  QueueReader r(q, c, true);
  const bool plain = accept == 0;
  ColorFilter filter{q, accept, 0};
  const QueueReader::Filter f{&color_filter, &filter};
  const std::uint32_t give_back_every = plain ? plan.plain_give_back_every : plan.selector_give_back_every;
  // Order bookkeeping of first deliveries: the last seq seen per (producer, priority).
  std::vector<std::int64_t> last(kProducers * layout::kPriorities, -1);
  std::uint64_t n = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    QueueDelivery d;
    const auto st = plain ? r.take(d) : r.take_matching(d, f);
    if (st != TakeStatus::Ok) {
      std::this_thread::yield();  // 6 threads on 2 cores: let the others run
      continue;
    }
    out.deliveries[c].fetch_add(1);
    // The slot is DELIVERED to us and there is no ack timeout: nobody writes it until we settle.
    auto* src = reinterpret_cast<Body*>(q.payload(d.slot));
    const Body b{std::atomic_ref<std::uint32_t>(src->producer).load(std::memory_order_relaxed),
                 std::atomic_ref<std::uint32_t>(src->seq).load(std::memory_order_relaxed),
                 std::atomic_ref<std::uint32_t>(src->color).load(std::memory_order_relaxed), 0,
                 std::atomic_ref<std::uint64_t>(src->check).load(std::memory_order_relaxed)};
    if (b.producer >= kProducers || b.seq >= plan.per_producer || b.color > kGreen ||
        b.check != check_of(b.producer, b.seq, b.color) || b.color != plan.color(b.producer, b.seq, plan.per_producer)) {
      out.torn.fetch_add(1);
      r.ack(d);  // unidentifiable: free the slot so the run ends; the message shows as S2 or S1
      continue;
    }
    if (!plain && (accept & (1U << b.color)) == 0) out.wrong_color.fetch_add(1);
    if (QWord::count(d.word) == 1) {
      auto& l = last[b.producer * layout::kPriorities + q.slot(d.slot)->priority];
      if (static_cast<std::int64_t>(b.seq) < l) out.inversions[c].fetch_add(1);
      else l = b.seq;
    }
    ++n;
    if (give_back_every != 0 && n % give_back_every == 0) {
      if (r.give_back(d) == ring::SettleStatus::Ok) out.give_backs.fetch_add(1);
      else out.not_owned.fetch_add(1);
      continue;
    }
    const std::uint32_t idx = b.producer * plan.per_producer + b.seq;
    if (r.ack(d) == ring::SettleStatus::Ok) {
      out.acks[idx].fetch_add(1);
      out.ackers[idx].fetch_or(1U << c);
      out.acked_total.fetch_add(1);
    } else {
      out.not_owned.fetch_add(1);  // nobody takes a delivery back here: counted, expected 0
    }
  }
  out.evaluations[c] = filter.evaluations;
}

// The queue as it is now, for a failure message (a snapshot, possibly taken while threads still
// run or are stuck: not instrumented by TSan, whose reports about these diagnostic reads of
// cells that pushers write plainly would otherwise end the run before the message is printed).
__attribute__((no_sanitize("thread"))) std::string dump(const QueueRing& q) {
  std::ostringstream o;
  o << "\nslots (number=state/colour; state 0 FREE, 2 READY, 4 DELIVERED):";
  for (std::uint32_t s = 0; s < q.slot_count(); ++s) {
    const auto w = q.slot(s)->state.load(std::memory_order_relaxed);
    auto* b = reinterpret_cast<Body*>(q.payload(s));
    o << " " << s << "=" << static_cast<int>(QWord::state(w)) << "/"
      << color_name(std::atomic_ref<std::uint32_t>(b->color).load(std::memory_order_relaxed));
  }
  o << "\nready_mask=0x" << std::hex << q.header().ready_mask.load(std::memory_order_relaxed) << std::dec << "\n";
  for (std::uint32_t k = 0; k < layout::kQueueIndexRings; ++k) {
    auto r = q.index_ring(k);
    const auto head = r.header().head.load(std::memory_order_relaxed);
    const auto tail = r.header().tail.load(std::memory_order_relaxed);
    if (head == tail && k != 0) continue;
    // Each cell: the slot it names, "?" when not published; in the ready rings "*" when that slot
    // is READY (the cell looks live: tidy_head cannot drop it).
    o << "ring " << k << " (" << (k == 0 ? "free" : k == layout::kQueueIndexRings - 1 ? "agent" : "ready") << ") head=" << head
      << " tail=" << tail << ":";
    for (auto p = head; p < tail; ++p) {
      const auto v = r.cell(p)->value;
      o << " " << v << (r.cell(p)->seq.load(std::memory_order_relaxed) == p + 1 ? "" : "?");
      const bool ready = v < q.slot_count() && QWord::state(q.slot(v)->state.load(std::memory_order_relaxed)) == QState::Ready;
      if (k != 0 && ready) o << "*";
    }
    o << "\n";
  }
  return o.str();
}

class QueueSelectorConcurrency_test : public ::testing::Test {
 protected:
  // Every thread counts itself in running_ until it returns: stop_all() waits for that with a
  // deadline instead of joining blindly, so a thread stuck inside the queue code is reported.
  void start_consumer(std::uint32_t c, std::uint32_t accept) {
    running_.fetch_add(1);
    consumers_.emplace_back([this, c, accept] {
      consume(m_.q, c, accept, *plan_, *out_, stop_);
      running_.fetch_sub(1);
    });
  }
  void start(const Plan& plan, Outcome& out) {
    plan_ = &plan;
    out_ = &out;
    agent_ = std::make_unique<daemon::QueueAgent>([](std::uint32_t) {}, common::mono_ns());
    agent_->add(1, "queue://tsan-selector", m_.q, m_.base);
    running_.fetch_add(1);
    agent_thread_ = std::thread([this] {
      while (!stop_.load()) {
        agent_->tick(common::mono_ns());
        std::this_thread::yield();
      }
      running_.fetch_sub(1);
    });
  }
  void start_producers() {
    for (std::uint32_t p = 0; p < kProducers; ++p) {
      running_.fetch_add(1);
      producers_.emplace_back([this, p] {
        produce(m_.q, p, *plan_, stop_);
        running_.fetch_sub(1);
      });
    }
  }
  // Waits until `n` acks won; false once kDeadline passed, or kNoProgress passed without a new
  // ack (a run takes well under a second; no progress for seconds means a stuck queue).
  bool wait_acked(std::uint64_t n) {
    const auto start = std::chrono::steady_clock::now();
    auto last_progress = start;
    std::uint64_t seen = out_->acked_total.load();
    while (seen < n) {
      const auto now = std::chrono::steady_clock::now();
      if (now - start >= kDeadline || now - last_progress >= kNoProgress) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      if (const auto a = out_->acked_total.load(); a != seen) {
        seen = a;
        last_progress = std::chrono::steady_clock::now();
      }
    }
    return true;
  }
  // Stops and joins every thread (producers, consumers, the agent). A thread that does not return
  // within kStopDeadline of the stop flag is stuck inside the queue code (e.g. a push() spinning
  // on a full ready ring that nobody pops): it cannot be joined, so the run ends here (exit code
  // 3) with the queue's state.
  void stop_all() {
    stop_.store(true);
    const auto deadline = std::chrono::steady_clock::now() + kStopDeadline;
    while (running_.load() != 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (running_.load() != 0) {
      std::fprintf(stderr,
                   "HANG: %d producer/consumer/agent thread(s) did not return within %lld s of the stop flag: stuck inside "
                   "the queue code (a push() spinning on a full ready ring?)%s\n",
                   running_.load(), static_cast<long long>(kStopDeadline.count()), dump(m_.q).c_str());
      std::fflush(stderr);
      std::_Exit(3);
    }
    for (auto& t : producers_) t.join();
    for (auto& t : consumers_) t.join();
    producers_.clear();
    consumers_.clear();
    if (agent_thread_.joinable()) agent_thread_.join();
  }
  void TearDown() override { stop_all(); }

  // S1, S2, S3, S4.
  void expect_exactly_once(std::uint32_t allowed_ackers(std::uint32_t color)) {
    EXPECT_EQ(out_->torn.load(), 0U) << "S3: torn or stale bodies";
    EXPECT_EQ(out_->wrong_color.load(), 0U) << "S4: a selector consumer was handed a message its filter rejects";
    EXPECT_EQ(out_->not_owned.load(), 0U) << "an ack or give-back of a delivery we held lost its CAS (no ack timeout here)";
    std::uint64_t missing = 0, twice = 0, wrong_acker = 0;
    std::ostringstream ex;
    for (std::uint32_t i = 0; i < plan_->total(); ++i) {
      const std::uint32_t p = i / plan_->per_producer, seq = i % plan_->per_producer;
      const auto a = out_->acks[i].load();
      const auto color = plan_->color(p, seq, plan_->per_producer);
      if (a == 0 && missing++ < 10) ex << " missing " << p << ":" << seq << " (" << color_name(color) << ")";
      if (a > 1 && twice++ < 10) ex << " twice " << p << ":" << seq;
      if ((out_->ackers[i].load() & ~allowed_ackers(color)) != 0 && wrong_acker++ < 10)
        ex << " " << p << ":" << seq << " (" << color_name(color) << ") acked by mask 0x" << std::hex
           << out_->ackers[i].load() << std::dec;
    }
    EXPECT_EQ(twice, 0U) << "S1: acknowledged more than once;" << ex.str();
    EXPECT_EQ(missing, 0U) << "S2: never acknowledged;" << ex.str() << dump(m_.q);
    EXPECT_EQ(wrong_acker, 0U) << "S4: acknowledged by a consumer whose filter rejects it;" << ex.str();
  }

  // S5: every slot FREE, the ready rings emptied by one plain take() (stale cells dropped, no
  // READY cell), exactly N distinct slots in the free ring and N acquire()s.
  void expect_drained() {
    const QueueRing& q = m_.q;
    std::uint32_t not_free = 0;
    for (std::uint32_t s = 0; s < kSlots; ++s)
      not_free += QWord::state(q.slot(s)->state.load(std::memory_order_acquire)) != QState::Free;
    EXPECT_EQ(not_free, 0U) << "S5: slots not FREE after every message was acknowledged" << dump(q);
    QueueReader check(q, kCheckConsumer, false);
    QueueDelivery d;
    EXPECT_EQ(check.take(d), TakeStatus::Empty) << "S5: a plain take() found a message after the drain" << dump(q);
    for (std::uint32_t p = 0; p < layout::kPriorities; ++p) {
      auto r = q.ready_ring(p);
      EXPECT_EQ(r.header().head.load(), r.header().tail.load())
          << "S5: ready ring " << p << " still holds cells after a plain take() (its ready_mask bit clear?)" << dump(q);
    }
    auto fr = q.free_ring();
    std::set<std::uint32_t> in_free;
    for (auto p = fr.header().head.load(); p < fr.header().tail.load(); ++p) in_free.insert(fr.cell(p)->value);
    EXPECT_EQ(fr.header().tail.load() - fr.header().head.load(), kSlots) << "S5: free ring entries" << dump(q);
    EXPECT_EQ(in_free.size(), kSlots) << "S5: distinct slots in the free ring" << dump(q);
    QueueWriter w(q, kCheckProducer);
    std::vector<std::uint32_t> got;
    for (std::uint32_t i = 0; i <= kSlots; ++i) {
      std::uint32_t s = 0;
      if (!w.acquire(s)) break;
      got.push_back(s);
    }
    EXPECT_EQ(got.size(), kSlots) << "S5: acquire()s that succeed on the drained queue (N, then full)";
    for (auto s : got) w.discard(s);
  }

  void print(const char* what) const {
    const auto& h = m_.q.header();
    std::cout << "[ info ] " << what << ": deliveries red " << out_->deliveries[kRedConsumer].load() << ", blue "
              << out_->deliveries[kBlueConsumer].load() << ", plain " << out_->deliveries[kPlainConsumer].load()
              << "; filter evaluations red " << out_->evaluations[kRedConsumer] << ", blue "
              << out_->evaluations[kBlueConsumer] << "; give-backs " << out_->give_backs.load() << "; rotations "
              << h.selector_rotations.load() << ", stale entries " << h.stale_entries.load()
              << "; order inversions among first deliveries (same producer and priority) red "
              << out_->inversions[kRedConsumer].load() << ", blue " << out_->inversions[kBlueConsumer].load()
              << ", plain " << out_->inversions[kPlainConsumer].load() << "\n";
  }

  Memory m_;
  const Plan* plan_ = nullptr;
  Outcome* out_ = nullptr;
  std::atomic<bool> stop_{false};
  std::atomic<int> running_{0};  // producer and consumer threads that have not returned
  std::unique_ptr<daemon::QueueAgent> agent_;
  std::thread agent_thread_;
  std::vector<std::thread> producers_, consumers_;
};

// Red 2/5, blue 2/5, green 1/5 on two priorities. The red consumer takes red, the blue one blue
// and green, the plain one anything it pops: every colour has two consumers racing for it, green
// two in-place scanners. Selector consumers give back every 9th delivery, the plain one every 11th.
TEST_F(QueueSelectorConcurrency_test, SelectorAndPlainConsumersTakeEachMessageExactlyOnce) {
  Plan plan;
  plan.per_producer = 20000;
  plan.color = [](std::uint32_t p, std::uint32_t seq, std::uint32_t) {
    const std::uint32_t k = (seq + 3 * p) % 5;
    return k < 2 ? kRed : k < 4 ? kBlue : kGreen;
  };
  plan.priority = [](std::uint32_t seq) { return static_cast<std::uint8_t>(seq % 3 == 0 ? 6 : 3); };
  plan.selector_give_back_every = 9;
  plan.plain_give_back_every = 11;
  Outcome out(plan.total());
  start(plan, out);
  start_consumer(kRedConsumer, bit(kRed));
  start_consumer(kBlueConsumer, bit(kBlue) | bit(kGreen));
  start_consumer(kPlainConsumer, 0);
  start_producers();
  const bool all = wait_acked(plan.total());
  EXPECT_TRUE(all) << "S2: " << out.acked_total.load() << " of " << plan.total()
                   << " acknowledged (deadline, or no progress for " << kNoProgress.count() << " s)" << dump(m_.q);
  stop_all();
  expect_exactly_once([](std::uint32_t color) {
    return (color == kRed ? 1U << kRedConsumer : 1U << kBlueConsumer) | (1U << kPlainConsumer);
  });
  if (all) expect_drained();
  EXPECT_GT(out.give_backs.load(), 0U);
  EXPECT_GT(out.deliveries[kRedConsumer].load(), 0U);
  EXPECT_GT(out.deliveries[kBlueConsumer].load(), 0U);
  print("selector + plain");
}

// Only the red and blue selector consumers, and 6 green messages (3 per producer, spread over the
// run) that neither matches: they sit in the 16-slot queue while thousands of red and blue ones
// flow past them, so the ready ring fills with stale cells behind a green head and tidy_head must
// rotate it, under contention with the other selector consumer's scans and rotations. All red and
// blue are acknowledged; the 6 greens must all still be READY; then a late plain consumer arrives
// (the selector consumers still running) and must get each green exactly once.
TEST_F(QueueSelectorConcurrency_test, OnlySelectorConsumersRotateAnUnwantedHeadAndLoseNothing) {
  constexpr std::uint32_t kGreensPerProducer = 3;
  Plan plan;
  plan.per_producer = 20000;
  plan.color = [](std::uint32_t p, std::uint32_t seq, std::uint32_t per) {
    for (std::uint32_t g = 0; g < kGreensPerProducer; ++g)
      if (seq == per * (2 * g + 1) / (2 * kGreensPerProducer) + p) return kGreen;
    return (seq + p) % 2 == 0 ? kRed : kBlue;
  };
  plan.priority = [](std::uint32_t) { return std::uint8_t{4}; };  // one ring: rotations are hot
  plan.selector_give_back_every = 13;
  Outcome out(plan.total());
  start(plan, out);
  start_consumer(kRedConsumer, bit(kRed));
  start_consumer(kBlueConsumer, bit(kBlue));
  start_producers();
  const std::uint32_t greens = kProducers * kGreensPerProducer;
  const bool colored = wait_acked(plan.total() - greens);
  EXPECT_TRUE(colored) << "S2: " << out.acked_total.load() << " of " << plan.total() - greens
                       << " red and blue messages acknowledged (deadline, or no progress for " << kNoProgress.count()
                       << " s)" << dump(m_.q);
  if (!colored) {
    stop_all();  // before `out` goes out of scope (or it reports a hang)
    return;
  }
  for (auto& t : producers_) t.join();  // done: every red and blue message was acknowledged
  producers_.clear();
  // S6: every green is still a READY slot (rotations keep it READY), nothing else is left.
  std::uint32_t ready_green = 0, other = 0;
  for (std::uint32_t s = 0; s < kSlots; ++s) {
    const auto st = QWord::state(m_.q.slot(s)->state.load(std::memory_order_acquire));
    auto* b = reinterpret_cast<Body*>(m_.q.payload(s));
    const auto color = std::atomic_ref<std::uint32_t>(b->color).load(std::memory_order_relaxed);
    if (st == QState::Ready && color == kGreen) ++ready_green;
    else if (st != QState::Free) ++other;
  }
  EXPECT_EQ(ready_green, greens) << "S6: green messages still READY once every red and blue one is acknowledged" << dump(m_.q);
  EXPECT_EQ(other, 0U) << "slots neither FREE nor a READY green" << dump(m_.q);
  const auto rotations_before = m_.q.header().selector_rotations.load();
  EXPECT_GT(rotations_before, 0U) << "the unwanted green heads were never rotated: the test did not reach the path";
  start_consumer(kPlainConsumer, 0);
  const bool all = wait_acked(plan.total());
  EXPECT_TRUE(all) << "S6: the late plain consumer got " << out.acked_total.load() - (plan.total() - greens) << " of "
                   << greens << " green messages (deadline, or no progress for " << kNoProgress.count() << " s)"
                   << dump(m_.q);
  stop_all();
  expect_exactly_once([](std::uint32_t color) {
    return color == kRed ? 1U << kRedConsumer : color == kBlue ? 1U << kBlueConsumer : 1U << kPlainConsumer;
  });
  EXPECT_EQ(out.deliveries[kPlainConsumer].load(), greens) << "S6: the late plain consumer gets exactly the greens, once each";
  if (all) expect_drained();
  print("only selectors, then a late plain consumer");
}

}  // namespace
}  // namespace shmbus
