// Random kills on queues: "any process may be killed at any instruction" (docs/queues.md,
// "Crashes"). Cycle after cycle a victim producer (bus_agent qproduce-forever: send() and
// zero-copy claim()/commit() alternately, as fast as it can, FullPolicy::Block) and a victim
// consumer (qconsume --ack client --sync-out: each message recorded with write(2) BEFORE it is
// acknowledged) work one 64-slot queue, which wraps constantly and fills up whenever no consumer
// is alive. After a seeded pseudo-random delay they are SIGKILLed in a random order; sometimes
// only one of them, and the other lives on into the next cycle and dies there; one cycle in five
// while they are still attaching. So kills land between a ring pop and the state CAS, half-way
// through an in-place payload, between the READY store and the ready-ring push, between a
// delivery and its record, between the record and the ack, inside an index-ring push or pop,
// parked on a full queue... Then one drain consumer empties the queue and every record is checked.
//
// Forbidden outcomes (each fails the test, with the seed in the message):
//   1. LOSS: a (producer, seq) that a producer recorded as sent (its send returned Ok) and that no
//      consumer ever recorded (the victims' files and the drain's).
//   2. GARBAGE: a received record naming a producer that was never started, or a seq above that
//      producer's last recorded seq + 1 (the +1: a message published by a producer killed before
//      it could write its record), or a bad payload reported by the drain.
//   3. DOUBLE DELIVERY: a message received again after a copy of it was acknowledged (qconsume
//      acknowledges each message before its next receive, so every record of a killed consumer
//      but its last was acknowledged), one delivery count recorded twice for one message, or the
//      redelivered flag disagreeing with the delivery count.
//   4. SLOT LEAK / STUCK RING: once the victims are gone, the queue not reaching depth 0 and
//      in_flight 0 within kDrainDeadline; then not exactly 64 FailFast sends succeeding before
//      Status::QueueFull (every slot free and reachable from the free ring, none lost to a
//      crash), or a consumer not receiving exactly those 64.
//   5. STALE CLAIM: once the daemon has walked a killed participant's entry and freed it (checked
//      after every cycle, before the entry can be reused), the entry's index-ring claim records
//      (ClaimRecord op_pos, docs/queues.md "Claim records") still naming the dead owner's claim:
//      the entry's next owner would be taken for a live claimer of that position (of every
//      position, for "pending"), and a dead participant's cell there would never be repaired.
//   6. the killed victims' entries not released within kWait; a victim exiting on its own (an
//      error) instead of dying by our SIGKILL; the daemon not shutting down cleanly at teardown
//      (the fixture checks that).
// Allowed: duplicates whose earlier copy is the last record of a killed consumer (killed after
// recording, before acknowledging: redelivered, at-least-once); a message published by a producer
// killed between Ok and its record (seq = last recorded + 1). Both are counted and printed.
//
// SHMBUS_QKILL_CYCLES=N overrides the number of cycles (default 300; soak: 3000 or more);
// SHMBUS_QKILL_SEED=S replays a seed (kill timing still depends on the scheduler).
#include "common/paths.hpp"
#include "layout/queue_layout.hpp"
#include "payload.hpp"
#include "queue_kill_support.hpp"
#include "ring/queue_ring.hpp"
#include "system_fixture.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

namespace shmbus::systest {
namespace {

using namespace qkill;

constexpr char kQueueName[] = "qkill";
constexpr std::uint32_t kCapacity = 64;      // small: the free ring wraps constantly, the queue fills up
constexpr std::uint32_t kMaxSize = kPayloadSize;  // payload.hpp: 64 bytes, what qconsume checks
constexpr std::uint32_t kFirstVictimId = 1000;  // victim producer of cycle c: payload id 1000 + c
constexpr std::uint32_t kCheckId = 1;           // the in-process producer of the final slot check
constexpr int kMaxKillDelayUs = 3000;
constexpr int kAttachKillPercent = 20;          // cycles whose kills land while attaching
constexpr Millis kVictimExitDeadline{5000};
// Design bound: the daemon sees a death at once (socket EOF / pidfd) and walks within a tick
// (1 ms); the drain then moves at most 64 messages. docs/testing.md: deadlines are generous.
constexpr Millis kDrainDeadline{10000};
constexpr Millis kWait{10000};
constexpr std::size_t kShow = 10;  // examples printed per kind of violation

std::string queue_uri() { return std::string("queue://") + kQueueName; }

// The 16-byte records qconsume and qproduce-forever write (bus_agent.cpp: Record).
// One victim process and what the test knows about it.
struct Victim {
  Child child;
  bool producer = false;
  std::uint32_t id = 0;  // producers: the payload id; consumers: the cycle that started it
  std::uint64_t cycle = 0;
  std::string file;
  pid_t pid = 0;
  bool attached = false;  // printed "sending"/"ready" before it died
  std::string name() const {
    return std::string(producer ? "producer " : "consumer ") + std::to_string(id) + " (cycle " + std::to_string(cycle) + ")";
  }
};

// The daemon log's "queue D producer|consumer entry E released: ..." lines: what the release
// walks found, i.e. evidence of where the kills landed.
struct WalkTally {
  std::uint64_t walks = 0, redelivered = 0, freed = 0, reannounced = 0, ring_repairs = 0;
};

class QueueKillSystem_test : public SystemTest {
 protected:
  std::vector<std::string> qargs(std::vector<std::string> extra) const {
    const std::vector<std::string> geo{"--queue", kQueueName, "--capacity", std::to_string(kCapacity), "--max-size",
                                       std::to_string(kMaxSize), "--max-deliveries", "0"};
    extra.insert(extra.begin(), geo.begin(), geo.end());
    return extra;
  }

  // SIGKILLs `vs` in a random order, reaps them, and moves them to dead_. A victim that is not
  // found dead by our SIGKILL (it exited on its own, or reported an error) fails the test.
  void kill_all(std::vector<Victim>& vs, std::mt19937_64& rng, const std::string& ctx) {
    std::shuffle(vs.begin(), vs.end(), rng);
    for (auto& v : vs) v.child.kill(SIGKILL);
    for (auto& v : vs) {
      const auto st = v.child.wait_exit(kVictimExitDeadline);
      while (const auto line = v.child.read_line(Millis(0))) {
        if (line->rfind("sending", 0) == 0 || line->rfind("ready", 0) == 0) v.attached = true;
        else ADD_FAILURE() << v.name() << " said '" << *line << "' " << ctx;
      }
      if (!st) ADD_FAILURE() << v.name() << " did not exit within " << kVictimExitDeadline.count() << " ms of SIGKILL " << ctx;
      else if (!(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL))
        ADD_FAILURE() << v.name() << " should die by our SIGKILL, but " << describe_status(*st) << " " << ctx
                      << " (its stderr is above)";
      std::size_t partial = 0;
      const auto n = read_record_file(v.file, partial).size();
      auto& t = v.producer ? producer_kills_ : consumer_kills_;
      ++t.kills;
      if (!v.attached) ++t.attaching;
      else if (n == 0) ++t.attached_idle;
      else ++t.working;
      dead_.push_back(std::move(v));
    }
    vs.clear();
  }

  WalkTally walks(bool producer) const {
    // Parses the janitor's "queue D producer|consumer entry E released: R redelivered, F unsent
    // freed, A re-announced, C ring cell(s) repaired" lines (no std::regex: GCC 12 warns inside
    // <regex> under the sanitizer builds' -Werror).
    WalkTally t;
    std::istringstream in(daemon_->log().text());
    std::string line;
    while (std::getline(in, line)) {
      const auto at = line.find("queue ");
      if (at == std::string::npos || line.find(" released: ", at) == std::string::npos) continue;
      unsigned dest = 0, entry = 0;
      char role[16] = {};
      unsigned long long r = 0, f = 0, a = 0, c = 0;
      if (std::sscanf(line.c_str() + at,
                      "queue %u %15s entry %u released: %llu redelivered, %llu unsent freed, %llu re-announced, %llu ring",
                      &dest, role, &entry, &r, &f, &a, &c) != 7)
        continue;
      if ((std::string(role) == "producer") != producer) continue;
      ++t.walks;
      t.redelivered += r;
      t.freed += f;
      t.reannounced += a;
      t.ring_repairs += c;
    }
    return t;
  }

  std::string dump() {
    const auto s = observer().stats();
    const auto* d = find_topic(s, queue_uri());
    std::ostringstream o;
    if (d)
      o << "\nstats: depth=" << d->depth << " in_flight=" << d->in_flight << " scheduled=" << d->scheduled
        << " redelivered=" << d->redelivered << " dead_lettered=" << d->dead_lettered << " sent=" << d->tail
        << " producers=" << d->producers << " consumers=" << d->subscribers.size();
    return o.str() + (view_ ? dump_queue(*view_) : std::string(" (queue not mapped)"));
  }

  bool no_entry_closing() const { return qkill::no_entry_closing(view_->q()); }

  void scan_stale_claims(const std::string& when) { stale_.scan(view_->q(), when, kShow); }

  std::vector<Victim> dead_;
  KillTally producer_kills_, consumer_kills_;
  std::unique_ptr<QueueView> view_;
  StaleClaims stale_;
};

// See the top of the file for the forbidden outcomes.
TEST_F(QueueKillSystem_test, ProducersAndConsumersKilledAtRandomLoseNothingAndLeakNoSlot) {
  const std::uint64_t cycles = env_number("SHMBUS_QKILL_CYCLES", 300);
  const std::uint64_t seed = env_number("SHMBUS_QKILL_SEED", std::random_device{}());
  std::cout << "[ info ] queue random kills: cycles=" << cycles << " seed=" << seed
            << " (replay with SHMBUS_QKILL_SEED=" << seed << ")\n";
  RecordProperty("seed", std::to_string(seed));
  RecordProperty("cycles", static_cast<int>(cycles));
  const std::string with_seed = " [seed " + std::to_string(seed) + "]";
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> delay_us(0, kMaxKillDelayUs);
  std::uniform_int_distribution<int> percent(0, 99);
  std::uniform_real_distribution<double> unit(0.0, 1.0);

  // The queue, created by the test before any victim: 64 slots, unlimited deliveries (nothing
  // may leave through a dead-letter queue). Its FailFast producer does the final slot check.
  auto session = observer().create_session(AckMode::Auto);
  DestinationOptions geo;
  geo.capacity = kCapacity;
  geo.max_message_size = kMaxSize;
  geo.max_deliveries = 0;
  ProducerOptions fail_fast;
  fail_fast.on_full = FullPolicy::FailFast;
  auto checker = session.create_producer(Queue(kQueueName), fail_fast, geo);
  {
    const auto s = observer().stats();
    const auto* d = find_topic(s, queue_uri());
    ASSERT_TRUE(d) << "the test created " << queue_uri();
    ASSERT_EQ(d->capacity, kCapacity);
    ASSERT_EQ(d->dlq, "queue://DLQ." + std::string(kQueueName)) << "dead letters would have a DLQ, but there are none";
    view_ = std::make_unique<QueueView>(canonical_, d->dest_id);
    ASSERT_TRUE(view_->ok()) << view_->error();
  }

  std::vector<Victim> survivors;         // spawned in an earlier cycle, killed in the next one
  double attach_us_mean = 5000;          // spawn -> both attached, measured; first guess 5 ms
  std::uint64_t attach_samples = 0;
  const auto t0 = Clock::now();
  for (std::uint64_t cycle = 1; cycle <= cycles && !HasFailure(); ++cycle) {
    // Every draw is made each cycle, whatever the branch: a seed replays the same choices.
    const bool during_attach = percent(rng) < kAttachKillPercent;
    const int pick = percent(rng);  // 60%: both die; 20%: only the producer; 20%: only the consumer
    const bool kill_producer = pick < 80;
    const bool kill_consumer = pick < 60 || pick >= 80;
    const int attached_delay = delay_us(rng);
    const double attach_fraction = unit(rng);
    std::ostringstream what;
    what << "in cycle " << cycle << "/" << cycles << with_seed;

    Victim p;
    p.producer = true;
    p.id = static_cast<std::uint32_t>(kFirstVictimId + cycle);
    p.cycle = cycle;
    p.file = root_ + "/p" + std::to_string(p.id) + ".bin";
    touch(p.file);
    Victim c;
    c.id = static_cast<std::uint32_t>(cycle);
    c.cycle = cycle;
    c.file = root_ + "/c" + std::to_string(cycle) + ".bin";
    touch(c.file);
    const auto spawned = Clock::now();
    p.child = agent("qproduce-forever", qargs({"--id", std::to_string(p.id), "--out", p.file}));
    p.pid = p.child.pid();
    c.child = agent("qconsume", qargs({"--ack", "client", "--sync-out", "--out", c.file}));
    c.pid = c.child.pid();
    int delay = attached_delay;
    if (!during_attach) {
      ASSERT_TRUE(expect_line(p.child, "sending", kStartDeadline, "victim producer attached " + what.str()));
      ASSERT_TRUE(expect_line(c.child, "ready", kStartDeadline, "victim consumer attached " + what.str()));
      p.attached = c.attached = true;
      const double us = std::chrono::duration<double, std::micro>(Clock::now() - spawned).count();
      attach_us_mean += (us - attach_us_mean) / static_cast<double>(++attach_samples);
    } else {
      // Counted from the spawn, spread over the measured attach time: kills land in exec, the
      // connect and hello, the producer/consumer creation and the first sends/receives.
      delay = static_cast<int>(attach_fraction * attach_us_mean);
    }
    // The delay is the stimulus (where the kills land), not synchronisation: every wait in this
    // test is for a condition with a deadline.
    std::this_thread::sleep_for(std::chrono::microseconds(delay));
    std::vector<Victim> to_kill = std::move(survivors);
    survivors.clear();
    (kill_producer ? to_kill : survivors).push_back(std::move(p));
    (kill_consumer ? to_kill : survivors).push_back(std::move(c));
    std::set<int> killed;
    for (const auto& v : to_kill) killed.insert(v.pid);
    kill_all(to_kill, rng, what.str());
    // The daemon has dropped the dead clients and finished walking their entries: look at what
    // the walks left in the freed entries before the next cycle may reuse them.
    ASSERT_TRUE(wait_stats(
        [&](const BusStats& s) {
          for (const auto& cl : s.clients)
            if (killed.count(cl.pid)) return false;
          return no_entry_closing();
        },
        kWait, "the killed victims dropped and their queue entries released " + what.str()));
    scan_stale_claims(what.str());
  }
  kill_all(survivors, rng, "after the last cycle" + with_seed);
  const double cycles_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  ASSERT_FALSE(HasFailure());

  // Drain: one consumer that is never killed, until no victim is attached any more (every
  // release walk is queued) and nothing waits or is in flight.
  std::set<int> victim_pids;
  for (const auto& v : dead_) victim_pids.insert(v.pid);
  const std::string drain_file = root_ + "/drain.bin";
  touch(drain_file);
  auto drain = agent("qconsume", qargs({"--ack", "client", "--sync-out", "--out", drain_file}));
  ASSERT_TRUE(expect_line(drain, "ready", kStartDeadline, "drain consumer attached"));
  const auto t_drain = Clock::now();
  const auto drained = wait_stats(
      [&](const BusStats& s) {
        for (const auto& cl : s.clients)
          if (victim_pids.count(cl.pid)) return false;
        const auto* d = find_topic(s, queue_uri());
        return d && d->depth == 0 && d->in_flight == 0 && no_entry_closing();
      },
      kDrainDeadline, "SLOT LEAK / STUCK RING? every victim gone, the queue drained: depth 0 and in_flight 0" + with_seed);
  const double drain_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_drain).count();
  if (!drained) ADD_FAILURE() << "the queue after " << kDrainDeadline.count() << " ms of draining:" << dump();
  scan_stale_claims("after the last cycle");
  ASSERT_TRUE(drain.write_stdin("stop\n"));
  const auto done = expect_line(drain, "done", kWait, "drain consumer stopped");
  ASSERT_TRUE(done);
  expect_clean_exit(drain, kWait, "drain consumer");
  EXPECT_EQ(done->at("bad"), "0") << "GARBAGE: the drain received corrupted payloads" << with_seed;
  const auto final_stats = observer().stats();
  const auto* fd = find_topic(final_stats, queue_uri());
  ASSERT_TRUE(fd);
  EXPECT_EQ(fd->dead_lettered, 0u) << "max_deliveries 0: nothing goes to a DLQ";
  EXPECT_EQ(fd->ack_timeouts, 0u) << "the 30 s ack timeout never fires in this test";

  // ---- The records.
  // Producers: what each one's sends returned Ok for, 1..last (qproduce-forever writes seq after seq).
  std::map<std::uint32_t, std::uint64_t> last_sent;
  std::uint64_t sent_recorded = 0, partial_victim_records = 0;
  for (const auto& v : dead_) {
    if (!v.producer) continue;
    std::size_t partial = 0;
    const auto recs = read_record_file(v.file, partial);
    partial_victim_records += partial != 0;
    for (std::size_t i = 0; i < recs.size(); ++i) {
      if (recs[i].producer != v.id || recs[i].seq != i + 1) {
        ADD_FAILURE() << v.name() << "'s file is not seq 1, 2, ...: record " << i << " is " << recs[i].producer << ":"
                      << recs[i].seq << with_seed;
        break;
      }
    }
    last_sent[v.id] = recs.size();
    sent_recorded += recs.size();
  }
  // Consumers: every copy of every message.
  struct Copy {
    std::uint32_t file;      // index into files
    bool maybe_unacked;      // the last record of a killed consumer: recorded, perhaps never acked
    std::uint32_t count;     // delivery count
    bool flagged;            // redelivered flag
  };
  std::vector<std::string> files;
  std::unordered_map<std::uint64_t, std::vector<Copy>> copies;  // key: producer << 40 | seq
  std::uint64_t received = 0, received_victims = 0, received_drain = 0;
  std::uint64_t garbage = 0, flag_errors = 0;
  std::ostringstream garbage_ex, flag_ex;
  const auto take_file = [&](const std::string& name, const std::string& path, bool killed) {
    std::size_t partial = 0;
    const auto recs = read_record_file(path, partial);
    if (partial != 0) {
      if (killed) ++partial_victim_records;
      else ADD_FAILURE() << name << " left a partial record (" << partial << " bytes)" << with_seed;
    }
    const auto file = static_cast<std::uint32_t>(files.size());
    files.push_back(name);
    for (std::size_t i = 0; i < recs.size(); ++i) {
      const auto& r = recs[i];
      ++received;
      (killed ? received_victims : received_drain) += 1;
      const auto it = last_sent.find(r.producer);
      const std::uint32_t count = r.count & ~kRedeliveredFlag;
      const bool flagged = (r.count & kRedeliveredFlag) != 0;
      if (it == last_sent.end() || r.seq == 0 || r.seq > it->second + 1 || count == 0) {
        if (garbage++ < kShow)
          garbage_ex << " " << name << "[" << i << "]=" << r.producer << ":" << r.seq << " count " << count << " (producer's last recorded seq "
                     << (it == last_sent.end() ? std::string("-: never started") : std::to_string(it->second)) << ")";
        continue;
      }
      if (flagged != (count > 1) && flag_errors++ < kShow)
        flag_ex << " " << name << "[" << i << "]=" << r.producer << ":" << r.seq << " count " << count << " flagged " << flagged;
      copies[(std::uint64_t{r.producer} << 40) | r.seq].push_back({file, killed && i + 1 == recs.size(), count, flagged});
    }
  };
  for (const auto& v : dead_)
    if (!v.producer) take_file(v.name(), v.file, true);
  take_file("drain", drain_file, false);

  // 1. LOSS.
  std::uint64_t lost = 0;
  std::ostringstream lost_ex;
  for (const auto& [id, last] : last_sent)
    for (std::uint64_t s = 1; s <= last; ++s)
      if (!copies.count((std::uint64_t{id} << 40) | s) && lost++ < kShow) lost_ex << " " << id << ":" << s;
  // Published by a producer killed between Ok (or the READY store) and its record.
  std::uint64_t unrecorded_sends = 0;
  for (const auto& [id, last] : last_sent) unrecorded_sends += copies.count((std::uint64_t{id} << 40) | (last + 1));
  // 3. Duplicates: allowed only after a killed consumer's last (unacknowledged) record.
  std::uint64_t duplicated = 0, extra_copies = 0, double_deliveries = 0;
  std::ostringstream double_ex;
  for (const auto& [key, cs] : copies) {
    if (cs.size() < 2) continue;
    ++duplicated;
    extra_copies += cs.size() - 1;
    std::set<std::uint32_t> counts;
    std::size_t acked = 0;
    for (const auto& c : cs) {
      counts.insert(c.count);
      acked += !c.maybe_unacked;
    }
    if (acked > 1 || counts.size() != cs.size()) {
      if (double_deliveries++ < kShow) {
        double_ex << " " << (key >> 40) << ":" << (key & ((1ULL << 40) - 1)) << " {";
        for (const auto& c : cs)
          double_ex << " " << files[c.file] << " count " << c.count << (c.maybe_unacked ? " (its last record)" : "");
        double_ex << " }";
      }
    }
  }
  EXPECT_EQ(lost, 0u) << "LOSS: messages a producer recorded as sent (send returned Ok) that no consumer received; first:"
                      << lost_ex.str() << with_seed << dump();
  EXPECT_EQ(garbage, 0u) << "GARBAGE: received records from no started producer, beyond its last send + 1, or with "
                            "delivery count 0; first:"
                         << garbage_ex.str() << with_seed;
  EXPECT_EQ(double_deliveries, 0u) << "DOUBLE DELIVERY: a message received again after it was acknowledged, or one "
                                      "delivery count seen twice; first:"
                                   << double_ex.str() << with_seed;
  EXPECT_EQ(flag_errors, 0u) << "redelivered flag disagrees with the delivery count; first:" << flag_ex.str() << with_seed;

  // 4. Every slot free and reachable: exactly 64 FailFast sends succeed, the 65th is QueueFull,
  // and a consumer receives exactly those 64.
  std::uint64_t accepted = 0;
  Status refused = Status::Ok;
  for (std::uint64_t seq = 1; seq <= kCapacity + 1; ++seq) {
    unsigned char buf[kPayloadSize];
    make_payload(kCheckId, seq, buf);
    refused = checker.send(std::as_bytes(std::span<const unsigned char>(buf)));
    if (refused != Status::Ok) break;
    ++accepted;
  }
  EXPECT_EQ(accepted, kCapacity) << "SLOT LEAK: FailFast sends accepted by the drained " << kCapacity
                                 << "-slot queue before " << to_string(refused) << with_seed << dump();
  EXPECT_EQ(refused, Status::QueueFull) << "the send after " << accepted << " is refused as QueueFull" << with_seed;
  auto check_consumer = session.create_consumer(Queue(kQueueName), {}, geo);
  std::set<std::uint64_t> got;
  std::uint64_t got_bad = 0;
  Message m;
  for (std::uint64_t i = 0; i < accepted; ++i) {
    const auto r = check_consumer.receive(m, kWait);
    if (r.status != Status::Ok) {
      ADD_FAILURE() << "STUCK RING: receive " << i + 1 << " of " << accepted << " returned " << to_string(r.status)
                    << with_seed << dump();
      break;
    }
    const auto d = read_payload(m.body());
    if (!d.intact || d.producer != kCheckId) ++got_bad;
    else got.insert(d.seq);
  }
  EXPECT_EQ(check_consumer.receive_no_wait(m).status, Status::Timeout)
      << "nothing but the " << accepted << " check messages is left in the queue" << with_seed;
  EXPECT_EQ(got_bad, 0u) << "messages other than the check messages" << with_seed;
  EXPECT_EQ(got.size(), accepted) << "each check message received once" << with_seed;
  if (!got.empty()) {
    EXPECT_EQ(*got.begin(), 1u);
    EXPECT_EQ(*got.rbegin(), accepted);
  }

  // What happened.
  const auto pw = walks(true);
  const auto cw = walks(false);
  std::uint64_t stale = 0, tombstones = 0, pops_released = 0;
  const auto& qh = view_->q().header();
  stale = qh.stale_entries.load(std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < layout::kPriorities + 2; ++i) {
    const auto r = i == 0 ? view_->q().free_ring() : i == 1 ? view_->q().agent_ring() : view_->q().ready_ring(i - 2);
    tombstones += r.header().tombstones_written.load(std::memory_order_relaxed);
    pops_released += r.header().pops_released.load(std::memory_order_relaxed);
  }
  // Nobody is parked now: a count left above 0 was incremented by a process killed while parked
  // (harmless for correctness: pushers then call futex_wake needlessly).
  const auto waiters = qh.waiters.load(std::memory_order_relaxed);
  const auto space_waiters = qh.space_waiters.load(std::memory_order_relaxed);
  EXPECT_EQ(stale_.count(), 0u)
      << "STALE CLAIM: a queue entry freed after its owner was killed inside an index-ring operation keeps "
         "that owner's ClaimRecord (op_pos not idle); the entry's next owner is then taken by the ring repair "
         "for a live claimer of that position (every position when 'pending') and another dead participant's "
         "cell there is never repaired while it lives (a stuck ring / leaked slot). Seen:"
      << ::testing::PrintToString(stale_.examples()) << with_seed;
  std::cout << "[ info ] " << cycles << " cycles in " << static_cast<long long>(cycles_ms) << " ms (mean attach "
            << static_cast<long long>(attach_us_mean) << " us), drained in " << static_cast<long long>(drain_ms)
            << " ms\n"
            << "[ info ] producers killed: " << producer_kills_.line() << "\n"
            << "[ info ] consumers killed: " << consumer_kills_.line() << "\n"
            << "[ info ] release walks (daemon log, walks that found something): producers " << pw.walks << " ("
            << pw.freed << " WRITING slots freed, " << pw.reannounced << " held slots re-announced, " << pw.ring_repairs
            << " ring cells repaired), consumers " << cw.walks << " (" << cw.redelivered << " redelivered, "
            << cw.reannounced << " re-announced, " << cw.ring_repairs << " ring cells repaired); stale ring entries skipped "
            << stale << ", tombstones " << tombstones << ", dead pops released " << pops_released
            << "; parked-waiter counts left by the dead: consumers " << waiters << ", producers " << space_waiters
            << "; stale claim records in freed entries " << stale_.count() << "\n"
            << "[ info ] messages: " << sent_recorded << " sends recorded Ok (+" << unrecorded_sends
            << " published by a producer killed before its record), " << fd->tail << " sent per stats; " << received
            << " received records (" << received_victims << " by victims, " << received_drain << " by the drain); "
            << duplicated << " messages received more than once (" << extra_copies << " extra copies, each after a "
            << "killed consumer's unacknowledged last record); redelivered (stats) " << fd->redelivered
            << "; partial records " << partial_victim_records << "\n";
  RecordProperty("producer_kills", static_cast<int>(producer_kills_.kills));
  RecordProperty("consumer_kills", static_cast<int>(consumer_kills_.kills));
  RecordProperty("duplicates", std::to_string(extra_copies));
  RecordProperty("redelivered", std::to_string(fd->redelivered));
  RecordProperty("messages_received", std::to_string(received));
}

}  // namespace
}  // namespace shmbus::systest
