// PERSISTENT messages on one small queue in process memory, raced by producer, consumer, queue
// agent (janitor) and persistence agent threads, with the QueueStore writing its log into a fresh
// temporary directory; afterwards the log is read back and checked record by record. Runs under
// TSan (ctest -L tsan in the SHMBUS_SANITIZE=thread build).
//
// Forbidden outcomes (each fails the test):
//   P1  a delivery whose body is torn, or is not a message that was sent (bad (producer, seq),
//       a check word that does not match, a slot header that does not match the body)
//   P2  a message acknowledged twice, or delivered again after its ack won
//   P3  an ack or give-back that loses its CAS (nobody may take a delivery back here: no ack
//       timeout), or a second delivery not flagged redelivered
//   P4  a durable send (durable_wait) whose `durable` word does not reach it within the deadline
//   P5  a slot left not FREE once everything is acked and the agent has drained (a leaked ACKED
//       slot); header().persisted != messages sent
//   P6  in the log: a sent message without exactly one message record, a record of a message
//       never sent, a message record without exactly one settle record after it (acked) or with
//       one (not acked), a settle record before its message record, a torn record
//   P7  after the store is destroyed and a new one opens the log on a fresh queue: a message
//       loaded back that was acked, an unacked one not loaded back, one loaded twice, or one not
//       flagged redelivered; any WARN/ERROR line from the store
// Allowed: a full queue (producers retry), give-backs and redeliveries, stale persist-ring
// entries (counted by the product).
#include "common/paths.hpp"
#include "log/message_records.hpp"
#include "log/segment_log.hpp"
#include "log_fixture.hpp"
#include "log.hpp"
#include "queue_agent.hpp"
#include "queue_store.hpp"
#include "ring/queue_ring.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

// Link seam: the daemon's logger (daemon/log.cpp) is not in shmbus-daemon-core; this one counts
// WARN/ERROR lines so a test can require none, and prints every line as the daemon would.
namespace shmbus::daemon {
std::atomic<std::uint32_t> g_store_warnings{0};
void log(Level lvl, std::string_view msg) noexcept {
  if (lvl != Level::Info) g_store_warnings.fetch_add(1, std::memory_order_relaxed);
  static std::mutex mu;
  const std::lock_guard<std::mutex> lock(mu);
  std::cerr << (lvl == Level::Info ? "INFO  " : lvl == Level::Warn ? "WARN  " : "ERROR ") << msg << "\n";
}
}  // namespace shmbus::daemon

namespace shmbus {
namespace {

using layout::QState;
using layout::QWord;
using ring::QueueDelivery;
using ring::QueueReader;
using ring::QueueRing;
using ring::QueueWriter;
using ring::SettleStatus;
using ring::TakeStatus;

constexpr std::uint32_t kSlots = 16;  // small: every slot is reused hundreds of times
constexpr std::uint32_t kProducers = 2;
constexpr std::uint32_t kConsumers = 2;
constexpr std::uint32_t kDurableEvery = 64;  // every 64th send waits for its fsync
constexpr std::uint64_t kIncarnationBase = 0xC0FFEE00ULL;
constexpr auto kDeadline = std::chrono::seconds(60);
constexpr auto kDurableDeadline = std::chrono::seconds(20);

struct Body {
  std::uint32_t producer;
  std::uint32_t seq;
  std::uint64_t check;  // producer * 1e9 + seq, so a torn copy shows
};
constexpr std::uint64_t check_of(std::uint32_t p, std::uint32_t seq) { return std::uint64_t{p} * 1'000'000'000ULL + seq; }

struct Memory {
  explicit Memory(std::uint32_t slots) {
    size = layout::queue_geometry(slots, sizeof(Body)).total;
    base = std::shared_ptr<void>(std::aligned_alloc(layout::kHotBlock, layout::align_up(size, layout::kHotBlock)), std::free);
    std::memset(base.get(), 0, size);
    ring::QueueConfig c;
    c.slot_count = slots;
    c.max_payload = sizeof(Body);
    c.dest_id = 1;
    c.max_deliveries = 0;  // unlimited: nothing goes to a DLQ here
    c.flags = 0;
    c.name = "tsanp";
    EXPECT_TRUE(QueueRing::init(base.get(), size, c));
    q = QueueRing(base.get());
    for (std::uint32_t i = 0; i < kProducers; ++i) {
      q.producer(i)->producer_id = i + 1;
      q.producer(i)->state.store(1);
    }
    for (std::uint32_t i = 0; i < kConsumers; ++i) {
      q.consumer(i)->ack_timeout_ns = 0;  // no take-backs: every ack/give-back must win (P3)
      q.consumer(i)->state.store(1);
    }
  }
  std::shared_ptr<void> base;
  std::uint64_t size = 0;
  QueueRing q;
};

std::unique_ptr<daemon::QueueStore> make_store(const Memory& m, const std::string& dir) {
  log::LogConfig cfg;
  cfg.segment_bytes = 64ULL << 20;  // one segment: the final snapshot deletes no record the checks read
  daemon::FsyncPolicy never;
  never.mode = daemon::FsyncPolicy::Mode::Never;  // fsync only for durable sends and forced flushes
  return std::make_unique<daemon::QueueStore>(1, "tsanp", dir, m.q, m.base, never, cfg);
}

struct Outcome {
  explicit Outcome(std::uint32_t per) : per_producer(per), sent(kProducers * per), acks(kProducers * per), deliveries(kProducers * per) {}
  std::uint32_t id(std::uint32_t p, std::uint32_t seq) const { return p * per_producer + seq; }
  std::uint32_t per_producer;
  std::vector<std::atomic<std::uint8_t>> sent;  // set before publish: a consumer that got it sees it
  std::vector<std::atomic<std::uint32_t>> acks, deliveries;
  std::atomic<std::uint64_t> sent_total{0}, acked_total{0}, give_backs{0}, redelivered{0}, durable_sends{0};
  // Forbidden outcomes.
  std::atomic<std::uint64_t> torn{0}, after_ack{0}, lost_settle{0}, unflagged{0}, durable_timeouts{0};
  std::string first_torn;  // written once (guarded by torn's first increment)
};

void produce(const QueueRing& q, std::uint32_t p, Outcome& out, const std::atomic<bool>& stop) {
  QueueWriter w(q, p);
  for (std::uint32_t seq = 0; seq < out.per_producer && !stop.load(std::memory_order_relaxed);) {
    std::uint32_t slot = 0;
    if (!w.acquire(slot)) {  // full: consumers and the persistence agent free slots
      std::this_thread::yield();  // 7 threads on 2 cores: let the others run
      continue;
    }
    // Relaxed atomic stores, as in queue_concurrency_test: readers copy with atomic loads.
    auto* dst = reinterpret_cast<Body*>(q.payload(slot));
    std::atomic_ref<std::uint32_t>(dst->producer).store(p, std::memory_order_relaxed);
    std::atomic_ref<std::uint32_t>(dst->seq).store(seq, std::memory_order_relaxed);
    std::atomic_ref<std::uint64_t>(dst->check).store(check_of(p, seq), std::memory_order_relaxed);
    ring::QueueSendMeta m;
    m.length = sizeof(Body);
    m.priority = static_cast<std::uint8_t>(seq % 10);
    m.producer_seq = seq + 1;  // 0 means "nothing durable yet" in the agent's bookkeeping
    m.producer_id = p + 1;
    m.incarnation = kIncarnationBase + p;
    m.persistent = true;
    m.durable_wait = seq % kDurableEvery == kDurableEvery - 1;
    out.sent[out.id(p, seq)].store(1, std::memory_order_relaxed);  // before publish's release
    w.publish(slot, m);
    out.sent_total.fetch_add(1);
    if (m.durable_wait) {
      out.durable_sends.fetch_add(1);
      const std::uint64_t want = layout::durable_word(m.producer_id, m.producer_seq);
      const auto deadline = std::chrono::steady_clock::now() + kDurableDeadline;
      // SYNC: seq_cst, as ProducerImpl::wait_durable (pairs with QueueStore::maybe_flush's store).
      while (w.entry().durable.load(std::memory_order_seq_cst) < want) {
        if (std::chrono::steady_clock::now() > deadline) {
          out.durable_timeouts.fetch_add(1);
          break;
        }
        std::this_thread::yield();
      }
    }
    ++seq;
  }
}

// Consumer 0 acks every delivery; consumer 1 (tracked) gives every 4th one back, so the queue
// agent redelivers it (REDELIVER -> READY, flagged) while the persistence agent logs around it.
void consume(const QueueRing& q, std::uint32_t c, Outcome& out, const std::atomic<bool>& stop, std::uint64_t stop_after) {
  QueueReader r(q, c, c == 1);
  std::uint64_t n = 0;
  // Consumer 0 starts once consumer 1 has given one back: otherwise, on a fast machine, consumer 0
  // can take every message before consumer 1 runs, and nothing is ever given back.
  while (c == 0 && out.give_backs.load() == 0 && !stop.load(std::memory_order_relaxed) &&
         out.acked_total.load() < stop_after)
    std::this_thread::yield();
  while (!stop.load(std::memory_order_relaxed) && out.acked_total.load() < stop_after) {
    QueueDelivery d;
    if (r.take(d) != TakeStatus::Ok) {
      std::this_thread::yield();
      continue;
    }
    const auto* h = q.slot(d.slot);
    auto* src = reinterpret_cast<Body*>(q.payload(d.slot));
    const Body b{std::atomic_ref<std::uint32_t>(src->producer).load(std::memory_order_relaxed),
                 std::atomic_ref<std::uint32_t>(src->seq).load(std::memory_order_relaxed),
                 std::atomic_ref<std::uint64_t>(src->check).load(std::memory_order_relaxed)};
    const bool valid = b.producer < kProducers && b.seq < out.per_producer && b.check == check_of(b.producer, b.seq) &&
                       out.sent[out.id(b.producer, b.seq)].load(std::memory_order_relaxed) == 1 &&
                       h->producer_seq == b.seq + 1 && h->producer_id == b.producer + 1 && h->length == sizeof(Body);
    if (!valid) {
      if (out.torn.fetch_add(1) == 0)
        out.first_torn = "slot " + std::to_string(d.slot) + " body (" + std::to_string(b.producer) + ", " +
                         std::to_string(b.seq) + ", " + std::to_string(b.check) + ") header seq " +
                         std::to_string(h->producer_seq) + " id " + std::to_string(h->producer_id);
      continue;  // P1: leave it delivered; the test fails anyway
    }
    const std::uint32_t id = out.id(b.producer, b.seq);
    if (out.acks[id].load() != 0) out.after_ack.fetch_add(1);  // P2
    const std::uint8_t flags = std::atomic_ref<const std::uint8_t>(h->flags).load(std::memory_order_relaxed);
    if (out.deliveries[id].fetch_add(1) != 0) {
      out.redelivered.fetch_add(1);
      if ((flags & layout::kQFlagRedelivered) == 0) out.unflagged.fetch_add(1);  // P3
    }
    if (c == 1 && ++n % 4 == 0) {
      if (r.give_back(d) == SettleStatus::Ok) out.give_backs.fetch_add(1);
      else out.lost_settle.fetch_add(1);
      continue;
    }
    if (r.ack(d) != SettleStatus::Ok) {
      out.lost_settle.fetch_add(1);
      continue;
    }
    out.acks[id].fetch_add(1);
    out.acked_total.fetch_add(1);
  }
}

/// Producers, consumers, the queue agent and the persistence agent on one queue. Consumers stop
/// once `stop_after` acks won (all messages: run to the end); producers stop when they sent all
/// or the consumers stopped. Then the persistence agent drains everything left in the persist
/// ring, flushes, snapshots when `snapshot`, and destroys the store (on its own thread).
void run(Memory& m, const std::string& dir, Outcome& out, std::uint64_t stop_after, bool snapshot) {
  const std::uint64_t total = std::uint64_t{kProducers} * out.per_producer;
  auto store = make_store(m, dir);
  std::atomic<bool> stop_consumers{false}, stop_producers{false}, finish_store{false}, stop_janitor{false};
  daemon::QueueAgent janitor([](std::uint32_t) {}, common::mono_ns());
  janitor.add(1, "queue://tsanp", m.q, m.base);
  std::thread janitor_thread([&] {
    while (!stop_janitor.load()) {
      janitor.tick(common::mono_ns());
      std::this_thread::yield();
    }
  });
  std::atomic<std::uint64_t> final_drains{0};
  std::thread persist_thread([&] {
    while (!finish_store.load()) {
      const std::uint64_t now = common::mono_ns();
      const std::size_t n = store->drain(now);
      store->maybe_flush(now, false);
      store->load_backlog(now);
      if (n == 0) std::this_thread::yield();
    }
    // Everyone else stopped: log what is left (stale entries make a drain write nothing, so
    // drain until the store says idle), then flush (and snapshot), then go away.
    for (int i = 0; i < 1000 && !store->idle(); ++i) {
      store->drain(common::mono_ns());
      final_drains.fetch_add(1);
    }
    store->drain(common::mono_ns());
    store->maybe_flush(common::mono_ns(), true);
    if (snapshot) store->maybe_snapshot(common::mono_ns(), true);
    store.reset();
  });
  std::vector<std::thread> consumers, producers;
  for (std::uint32_t c = 0; c < kConsumers; ++c)
    consumers.emplace_back(consume, std::cref(m.q), c, std::ref(out), std::cref(stop_consumers), stop_after);
  for (std::uint32_t p = 0; p < kProducers; ++p)
    producers.emplace_back(produce, std::cref(m.q), p, std::ref(out), std::cref(stop_producers));
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  const std::uint64_t target = std::min(stop_after, total);
  while (out.acked_total.load() < target && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_GE(out.acked_total.load(), target) << "P2: not every message was acknowledged within " << kDeadline.count()
                                            << " s (sent " << out.sent_total.load() << ")";
  stop_consumers.store(true);
  for (auto& t : consumers) t.join();
  stop_producers.store(true);  // a producer waiting on a full queue would wait forever now
  for (auto& t : producers) t.join();
  finish_store.store(true);
  persist_thread.join();
  stop_janitor.store(true);
  janitor_thread.join();
  // The janitor may have moved a given-back slot to READY after the last consumer stopped; it is
  // still an unacked message in the queue: nothing more to do.
}

void expect_no_forbidden_delivery(const Outcome& out) {
  EXPECT_EQ(out.torn.load(), 0U) << "P1: torn or never-sent delivery, first: " << out.first_torn;
  EXPECT_EQ(out.after_ack.load(), 0U) << "P2: delivered again after its ack won";
  std::uint64_t twice = 0;
  for (const auto& a : out.acks) twice += a.load() > 1 ? 1 : 0;
  EXPECT_EQ(twice, 0U) << "P2: acknowledged more than once";
  EXPECT_EQ(out.lost_settle.load(), 0U) << "P3: an ack/give-back lost its CAS though nothing takes deliveries back";
  EXPECT_EQ(out.unflagged.load(), 0U) << "P3: a redelivery without kQFlagRedelivered";
  EXPECT_EQ(out.durable_timeouts.load(), 0U) << "P4: durable sends whose durable word never came";
}

/// Reads the whole log back and checks P6. `settled(id)`: whether a settle record is expected.
template <class Settled>
void expect_log_matches(const std::string& dir, const Outcome& out, Settled settled) {
  log::RecoveryReport rep;
  log::LogError err;
  auto lg = log::Log::open(dir, log::LogConfig{}, &rep, err);
  ASSERT_TRUE(lg) << "cannot open the store's log: " << err.what;
  EXPECT_FALSE(rep.truncated) << "P6: recovery cut a log written by a clean shutdown: " << rep.reason;
  ASSERT_EQ(lg->log_start_offset(), 0U) << "a segment was deleted: the checks below need the whole log";
  const std::size_t ids = out.sent.size();
  std::vector<std::uint32_t> messages(ids, 0);
  std::map<std::uint64_t, std::uint32_t> message_at;  // offset -> id
  std::map<std::uint64_t, std::uint32_t> settles_of;  // message offset -> settle records seen
  std::uint64_t bad = 0, early_settles = 0, records = 0;
  std::string first_bad;
  const auto note = [&](std::uint64_t& counter, const std::string& what) {
    if (counter++ == 0 && first_bad.empty()) first_bad = what;
  };
  const log::LogError rerr = lg->read(0, 0, [&](const log::RecordView& r) {
    ++records;
    if (r.attributes == static_cast<std::uint16_t>(log::RecordKind::QueueMessage)) {
      if (r.value.size() != sizeof(log::QueueMessageRecord) + sizeof(Body)) {
        note(bad, "message record at " + std::to_string(r.offset) + " of " + std::to_string(r.value.size()) + " bytes");
        return true;
      }
      log::QueueMessageRecord mr;
      Body b;
      std::memcpy(&mr, r.value.data(), sizeof mr);
      std::memcpy(&b, r.value.data() + sizeof mr, sizeof b);
      if (b.producer >= kProducers || b.seq >= out.per_producer || b.check != check_of(b.producer, b.seq) ||
          mr.producer_seq != b.seq + 1 || mr.producer_id != b.producer + 1 || mr.incarnation != kIncarnationBase + b.producer ||
          (mr.flags & layout::kQFlagPersistent) == 0) {
        note(bad, "torn message record at " + std::to_string(r.offset));
        return true;
      }
      const std::uint32_t id = out.id(b.producer, b.seq);
      ++messages[id];
      message_at[r.offset] = id;
    } else if (r.attributes == static_cast<std::uint16_t>(log::RecordKind::QueueSettle)) {
      log::QueueSettleRecord st;
      if (r.value.size() != sizeof st) {
        note(bad, "settle record at " + std::to_string(r.offset) + " of " + std::to_string(r.value.size()) + " bytes");
        return true;
      }
      std::memcpy(&st, r.value.data(), sizeof st);
      if (message_at.count(st.offset) == 0 || st.offset >= r.offset) {
        note(early_settles, "settle record at " + std::to_string(r.offset) + " names " + std::to_string(st.offset) +
                                ", which is no earlier message record");
        return true;
      }
      if (st.reason != static_cast<std::uint8_t>(log::SettleReason::Acked))
        note(bad, "settle record at " + std::to_string(r.offset) + " with reason " + std::to_string(st.reason));
      ++settles_of[st.offset];
    } else {
      note(bad, "record of kind " + std::to_string(r.attributes) + " at " + std::to_string(r.offset));
    }
    return true;
  });
  ASSERT_FALSE(rerr) << "reading the log back: " << rerr.what;
  EXPECT_EQ(bad, 0U) << "P6: bad records, first: " << first_bad;
  EXPECT_EQ(early_settles, 0U) << "P6: settle records before their message record, first: " << first_bad;
  std::uint64_t unlogged = 0, twice_logged = 0, never_sent = 0, unsettled = 0, settled_wrongly = 0, settled_twice = 0;
  for (std::uint32_t id = 0; id < ids; ++id) {
    const bool sent = out.sent[id].load() != 0;
    if (sent && messages[id] == 0) ++unlogged;
    if (messages[id] > 1) ++twice_logged;
    if (!sent && messages[id] != 0) ++never_sent;
  }
  for (const auto& [offset, id] : message_at) {
    const std::uint32_t s = settles_of.count(offset) != 0 ? settles_of[offset] : 0;
    if (s > 1) ++settled_twice;
    if (settled(id) && s == 0) ++unsettled;
    if (!settled(id) && s != 0) ++settled_wrongly;
  }
  EXPECT_EQ(unlogged, 0U) << "P6: sent messages with no message record";
  EXPECT_EQ(twice_logged, 0U) << "P6: messages with more than one message record";
  EXPECT_EQ(never_sent, 0U) << "P6: message records of messages never sent";
  EXPECT_EQ(unsettled, 0U) << "P6: acked messages whose message record has no settle record";
  EXPECT_EQ(settled_wrongly, 0U) << "P6: unacked messages with a settle record";
  EXPECT_EQ(settled_twice, 0U) << "P6: message records with more than one settle record";
  std::cout << "log: " << records << " records, " << message_at.size() << " messages, " << settles_of.size() << " settled\n";
}

// SHMBUS_TEST_SEED=N replays a run's stop points (round r uses N + r).
std::uint64_t seed_from_env_or_random() {
  if (const char* s = std::getenv("SHMBUS_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

TEST(QueuePersistenceConcurrency_test, EveryPersistentMessageIsLoggedOnceAndSettledOnceAndEverySlotEndsFree) {
  log::test::TempDir tmp;
  const std::string dir = tmp / "queue.tsanp";
  daemon::g_store_warnings.store(0);
  constexpr std::uint32_t kPer = 10000;
  Outcome out(kPer);
  Memory m(kSlots);
  run(m, dir, out, ~0ULL, true);
  expect_no_forbidden_delivery(out);
  const std::uint64_t total = std::uint64_t{kProducers} * kPer;
  EXPECT_EQ(out.sent_total.load(), total);
  EXPECT_EQ(out.acked_total.load(), total);
  std::uint64_t missing = 0;
  for (const auto& a : out.acks) missing += a.load() == 0 ? 1 : 0;
  EXPECT_EQ(missing, 0U) << "P2: never acknowledged";
  EXPECT_GT(out.give_backs.load(), 0U);
  EXPECT_GT(out.durable_sends.load(), 0U);
  std::uint32_t not_free = 0;
  std::string states;
  for (std::uint32_t s = 0; s < kSlots; ++s) {
    const std::uint64_t w = m.q.slot(s)->state.load(std::memory_order_acquire);
    if (QWord::state(w) != QState::Free) ++not_free, states += " slot " + std::to_string(s) + " state " + std::to_string(static_cast<int>(QWord::state(w)));
  }
  EXPECT_EQ(not_free, 0U) << "P5: slots not FREE after every ack was logged:" << states;
  EXPECT_TRUE(m.q.persist_ring().looks_empty()) << "P5: persist ring not empty after the final drain";
  EXPECT_EQ(m.q.header().persisted.load(), total) << "P5: persisted != messages sent";
  expect_log_matches(dir, out, [](std::uint32_t) { return true; });
  // A restart finds nothing to load back.
  Memory again(kSlots);
  auto reopened = make_store(again, dir);
  ASSERT_TRUE(reopened->open_existing());
  EXPECT_EQ(reopened->load_backlog(common::mono_ns()), 0U) << "P7: acked messages loaded back";
  EXPECT_EQ(again.q.header().restored.load(), 0U);
  reopened.reset();
  EXPECT_EQ(daemon::g_store_warnings.load(), 0U) << "P7: the store logged warnings (see stderr)";
  std::cout << "sent " << out.sent_total.load() << ", give-backs " << out.give_backs.load() << ", redeliveries "
            << out.redelivered.load() << ", durable sends " << out.durable_sends.load() << ", stale entries "
            << m.q.header().stale_entries.load() << "\n";
}

// The store is destroyed (after logging what its ring still held) at a random ack count, with
// messages READY, DELIVERED or given back in the queue; a new store on a fresh queue loads exactly
// those back, flagged redelivered, and acking them settles them in the same log.
void restart_loads_exactly_the_unacked(bool snapshot, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  constexpr std::uint32_t kPer = 1000;
  const std::uint64_t stop_after = std::uniform_int_distribution<std::uint64_t>(50, 2 * kPer - 100)(rng);
  SCOPED_TRACE("round seed " + std::to_string(seed) + " (acks before the stop: " + std::to_string(stop_after) + ")");
  log::test::TempDir tmp;
  const std::string dir = tmp / "queue.tsanp";
  daemon::g_store_warnings.store(0);
  Outcome out(kPer);
  {
    Memory m(kSlots);
    run(m, dir, out, stop_after, snapshot);
    expect_no_forbidden_delivery(out);
    std::uint32_t in_queue = 0, acked_slots = 0;
    for (std::uint32_t s = 0; s < kSlots; ++s) {
      const QState st = QWord::state(m.q.slot(s)->state.load(std::memory_order_acquire));
      in_queue += st != QState::Free ? 1 : 0;
      acked_slots += st == QState::Acked ? 1 : 0;
    }
    EXPECT_EQ(acked_slots, 0U) << "P5: ACKED slots left after the final drain";
    EXPECT_EQ(in_queue, out.sent_total.load() - out.acked_total.load()) << "P5: slots in use != messages sent and not acked";
    EXPECT_EQ(m.q.header().persisted.load(), out.sent_total.load()) << "P5: persisted != messages sent";
  }
  expect_log_matches(dir, out, [&](std::uint32_t id) { return out.acks[id].load() != 0; });
  std::vector<std::uint8_t> unacked(out.sent.size(), 0);
  std::uint64_t expected = 0;
  for (std::size_t id = 0; id < out.sent.size(); ++id)
    if (out.sent[id].load() != 0 && out.acks[id].load() == 0) unacked[id] = 1, ++expected;
  ASSERT_LE(expected, kSlots);
  std::cout << "seed " << seed << ": stopped after " << out.acked_total.load() << " acks of " << out.sent_total.load()
            << " sent; " << expected << " unacked\n";

  Memory m2(kSlots);
  auto store = make_store(m2, dir);
  ASSERT_TRUE(store->open_existing());
  const std::size_t loaded = store->load_backlog(common::mono_ns());
  EXPECT_EQ(loaded, expected) << "P7: loaded back " << loaded << " messages, " << expected << " were unacked";
  EXPECT_EQ(m2.q.header().restored.load(), expected);
  std::vector<std::uint32_t> seen(out.sent.size(), 0);
  std::uint64_t acked_back = 0, twice = 0, unflagged = 0, torn = 0;
  QueueReader r(m2.q, 0, false);
  for (QueueDelivery d; r.take(d) == TakeStatus::Ok;) {
    const auto* h = m2.q.slot(d.slot);
    Body b;
    std::memcpy(&b, m2.q.payload(d.slot), sizeof b);
    if (b.producer >= kProducers || b.seq >= kPer || b.check != check_of(b.producer, b.seq) || h->producer_seq != b.seq + 1) {
      ++torn;
      continue;
    }
    const std::uint32_t id = out.id(b.producer, b.seq);
    if (unacked[id] == 0) ++acked_back;
    if (seen[id]++ != 0) ++twice;
    const std::uint8_t flags = std::atomic_ref<const std::uint8_t>(h->flags).load(std::memory_order_relaxed);
    if ((flags & layout::kQFlagRedelivered) == 0 || (flags & layout::kQFlagPersistent) == 0) ++unflagged;
    EXPECT_EQ(r.ack(d), SettleStatus::Ok);
    out.acks[id].fetch_add(1);
  }
  std::uint64_t not_back = 0;
  for (std::size_t id = 0; id < unacked.size(); ++id) not_back += unacked[id] != 0 && seen[id] == 0 ? 1 : 0;
  EXPECT_EQ(torn, 0U) << "P7: torn message loaded back";
  EXPECT_EQ(acked_back, 0U) << "P7: acked messages loaded back";
  EXPECT_EQ(twice, 0U) << "P7: a message loaded back twice";
  EXPECT_EQ(not_back, 0U) << "P7: unacked messages not loaded back";
  EXPECT_EQ(unflagged, 0U) << "P7: loaded back without kQFlagRedelivered | kQFlagPersistent";
  // Their acks are logged against the original records: a third start finds nothing.
  const std::uint64_t now = common::mono_ns();
  for (int i = 0; i < 100 && !store->idle(); ++i) store->drain(now);
  store->maybe_flush(now, true);
  store->maybe_snapshot(now, true);
  store.reset();
  for (std::uint32_t s = 0; s < kSlots; ++s)
    EXPECT_EQ(QWord::state(m2.q.slot(s)->state.load()), QState::Free) << "P5: slot " << s << " after acking the restored messages";
  expect_log_matches(dir, out, [&](std::uint32_t id) { return out.acks[id].load() != 0; });
  Memory m3(kSlots);
  auto third = make_store(m3, dir);
  ASSERT_TRUE(third->open_existing());
  EXPECT_EQ(third->load_backlog(common::mono_ns()), 0U) << "P7: messages acked after the restart came back";
  third.reset();
  EXPECT_EQ(daemon::g_store_warnings.load(), 0U) << "P7: the store logged warnings (see stderr)";
}

constexpr int kRestartRounds = 4;  // four random stop points per run

TEST(QueuePersistenceConcurrency_test, StoreDestroyedMidRunReplaysExactlyTheUnackedMessagesFlaggedRedelivered) {
  const std::uint64_t seed = seed_from_env_or_random();
  for (int round = 0; round < kRestartRounds && !HasFailure(); ++round) restart_loads_exactly_the_unacked(false, seed + round);
}

TEST(QueuePersistenceConcurrency_test, StoreDestroyedAfterASnapshotRestoresExactlyTheUnackedMessagesFlaggedRedelivered) {
  const std::uint64_t seed = seed_from_env_or_random();
  for (int round = 0; round < kRestartRounds && !HasFailure(); ++round) restart_loads_exactly_the_unacked(true, seed + round);
}

}  // namespace
}  // namespace shmbus
