// Random kills on a queue whose consumers have selectors (docs/queues.md, "Selectors" and
// "Crashes"): QueueKillSystem's method with take_matching() in the victims. Cycle after cycle a
// victim producer (bus_agent qproduce-forever --color-every 3: BytesMessages carrying the 64-byte
// payload and a string property color = 'red' for every 3rd seq, 'blue' otherwise, as fast as it
// can, FullPolicy::Block) and two victim consumers (qconsume --ack client --sync-out, one with the
// selector color = 'red', one with color = 'blue': each message recorded with write(2) BEFORE it
// is acknowledged) work one 16-slot queue. Each victim is SIGKILLed after a seeded pseudo-random
// delay, in a random order, or lives on into the next cycle and dies there; one cycle in five
// while they are still attaching. Whenever one colour's consumer is dead the queue fills with
// that colour and the other selector consumer scans past it, drops stale cells and rotates the
// unwanted head (tidy_head), so kills land in the selector paths too: between tidy_head's pop and
// its push back (the `held` word names the slot), between the claim CAS of an in-place take and
// its in-flight FIFO record, half-way through a scan, besides everything QueueKillSystem covers.
// Then one plain drain consumer empties the queue and every record is checked.
//
// Forbidden outcomes (each fails the test, with the seed in the message):
//   1. LOSS: a (producer, seq) that a producer recorded as sent (its send returned Ok) and that no
//      consumer ever recorded (the victims' files and the drain's).
//   2. GARBAGE: a record naming a producer that was never started, a seq above that producer's
//      last recorded seq + 1 (published by a producer killed before its record), a delivery count
//      0, or a bad payload reported by the drain.
//   3. WRONG COLOUR: a selector consumer recorded a message its selector does not match (the
//      colour follows from the seq: red when seq % 3 == 0).
//   4. DOUBLE DELIVERY: a message received again after a copy of it was acknowledged (qconsume
//      acknowledges each message before its next receive, so every record of a killed consumer
//      but its last was acknowledged), one delivery count recorded twice for one message, or the
//      redelivered flag disagreeing with the delivery count.
//   5. SLOT LEAK / STUCK RING: once the victims are gone, the queue not reaching depth 0 and
//      in_flight 0 within kDrainDeadline; then not exactly 16 FailFast sends succeeding before
//      Status::QueueFull, or a plain consumer not receiving exactly those 16.
//   6. STALE CLAIM: a queue entry freed after its owner was killed whose index-ring claim record
//      still names the dead owner's claim (checked after every cycle).
//   7. the killed victims' entries not released within kWait; a victim exiting on its own (an
//      error) instead of dying by our SIGKILL; the daemon not shutting down cleanly (the fixture).
// Allowed: duplicates whose earlier copy is the last record of a killed consumer (killed after
// recording, before acknowledging: redelivered, at-least-once); a message published by a producer
// killed between Ok and its record (seq = last recorded + 1). Both are counted and printed.
//
// SHMBUS_QSELKILL_CYCLES=N overrides the number of cycles (default 100; soak: 2000 or more);
// SHMBUS_QSELKILL_SEED=S replays a seed (kill timing still depends on the scheduler).
#include "common/paths.hpp"
#include "layout/queue_layout.hpp"
#include "payload.hpp"
#include "ring/queue_ring.hpp"
#include "queue_kill_support.hpp"
#include "system_fixture.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

constexpr char kQueueName[] = "qselkill";
constexpr std::uint32_t kCapacity = 16;  // small: ready rings of 32 cells, stale cells crowd them
constexpr std::uint32_t kMaxSize = 256;  // the frame: headers, the color property, the 64-byte payload
constexpr std::uint64_t kColorEvery = 3;  // red: seq % 3 == 0; blue otherwise
constexpr std::uint32_t kFirstVictimId = 1000;  // victim producer of cycle c: payload id 1000 + c
constexpr std::uint32_t kCheckId = 1;           // the in-process producer of the final slot check
constexpr int kMaxKillDelayUs = 3000;
constexpr int kAttachKillPercent = 20;  // cycles whose kills land while attaching
constexpr int kKillNowPercent = 70;     // each victim: killed in its own cycle, else in the next
constexpr Millis kVictimExitDeadline{5000};
// Design bound: the daemon sees a death at once (socket EOF / pidfd) and walks within a tick
// (1 ms); the drain then moves at most 16 messages. docs/testing.md: deadlines are generous.
constexpr Millis kDrainDeadline{10000};
constexpr Millis kWait{10000};
constexpr std::size_t kShow = 10;  // examples printed per kind of violation

enum class Role { Producer, Red, Blue };
const char* role_name(Role r) { return r == Role::Producer ? "producer" : r == Role::Red ? "red consumer" : "blue consumer"; }
bool is_red(std::uint64_t seq) { return seq % kColorEvery == 0; }


std::string queue_uri() { return std::string("queue://") + kQueueName; }

// The 16-byte records qconsume and qproduce-forever write (bus_agent.cpp: Record).
// One victim process and what the test knows about it.
struct Victim {
  Child child;
  Role role = Role::Producer;
  std::uint32_t id = 0;  // producers: the payload id
  std::uint64_t cycle = 0;
  std::string file;
  pid_t pid = 0;
  bool attached = false;  // printed "sending"/"ready" before it died
  std::string name() const {
    return std::string(role_name(role)) + (role == Role::Producer ? " " + std::to_string(id) : std::string()) + " (cycle " +
           std::to_string(cycle) + ")";
  }
};

class QueueSelectorKillSystem_test : public SystemTest {
 protected:
  std::vector<std::string> qargs(std::vector<std::string> extra) const {
    const std::vector<std::string> geo{"--queue", kQueueName, "--capacity", std::to_string(kCapacity), "--max-size",
                                       std::to_string(kMaxSize), "--max-deliveries", "0"};
    extra.insert(extra.begin(), geo.begin(), geo.end());
    return extra;
  }

  Victim spawn(Role role, std::uint64_t cycle) {
    Victim v;
    v.role = role;
    v.cycle = cycle;
    if (role == Role::Producer) {
      v.id = static_cast<std::uint32_t>(kFirstVictimId + cycle);
      v.file = root_ + "/p" + std::to_string(v.id) + ".bin";
      touch(v.file);
      v.child = agent("qproduce-forever",
                      qargs({"--id", std::to_string(v.id), "--color-every", std::to_string(kColorEvery), "--out", v.file}));
    } else {
      const bool red = role == Role::Red;
      v.file = root_ + (red ? "/r" : "/b") + std::to_string(cycle) + ".bin";
      touch(v.file);
      v.child = agent("qconsume", qargs({"--ack", "client", "--sync-out", "--selector",
                                         red ? "color = 'red'" : "color = 'blue'", "--out", v.file}));
    }
    v.pid = v.child.pid();
    return v;
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
      auto& t = v.role == Role::Producer ? producer_kills_ : consumer_kills_;
      ++t.kills;
      if (!v.attached) ++t.attaching;
      else if (n == 0) ++t.attached_idle;
      else ++t.working;
      dead_.push_back(std::move(v));
    }
    vs.clear();
  }

  std::string dump() {
    const auto s = observer().stats();
    const auto* d = find_topic(s, queue_uri());
    std::ostringstream o;
    if (d)
      o << "\nstats: depth=" << d->depth << " in_flight=" << d->in_flight << " scheduled=" << d->scheduled
        << " redelivered=" << d->redelivered << " sent=" << d->tail << " producers=" << d->producers
        << " consumers=" << d->subscribers.size();
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
TEST_F(QueueSelectorKillSystem_test, SelectorConsumersAndProducersKilledAtRandomLoseNothingAndLeakNoSlot) {
  const std::uint64_t cycles = env_number("SHMBUS_QSELKILL_CYCLES", 100);
  const std::uint64_t seed = env_number("SHMBUS_QSELKILL_SEED", std::random_device{}());
  std::cout << "[ info ] queue selector random kills: cycles=" << cycles << " seed=" << seed
            << " (replay with SHMBUS_QSELKILL_SEED=" << seed << ")\n";
  RecordProperty("seed", std::to_string(seed));
  RecordProperty("cycles", static_cast<int>(cycles));
  const std::string with_seed = " [seed " + std::to_string(seed) + "]";
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> delay_us(0, kMaxKillDelayUs);
  std::uniform_int_distribution<int> percent(0, 99);
  std::uniform_real_distribution<double> unit(0.0, 1.0);

  // The queue, created by the test before any victim: 16 slots, unlimited deliveries (nothing may
  // leave through a dead-letter queue). Its FailFast producer does the final slot check.
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
    view_ = std::make_unique<QueueView>(canonical_, d->dest_id);
    ASSERT_TRUE(view_->ok()) << view_->error();
  }

  std::vector<Victim> survivors;  // spawned in an earlier cycle, killed in the next one
  double attach_us_mean = 5000;   // spawn -> all three attached, measured; first guess 5 ms
  std::uint64_t attach_samples = 0;
  const auto t0 = Clock::now();
  for (std::uint64_t cycle = 1; cycle <= cycles && !HasFailure(); ++cycle) {
    // Every draw is made each cycle, whatever the branch: a seed replays the same choices.
    const bool during_attach = percent(rng) < kAttachKillPercent;
    const std::array<bool, 3> kill_now{percent(rng) < kKillNowPercent, percent(rng) < kKillNowPercent,
                                       percent(rng) < kKillNowPercent};
    const int attached_delay = delay_us(rng);
    const double attach_fraction = unit(rng);
    std::ostringstream what;
    what << "in cycle " << cycle << "/" << cycles << with_seed;

    const auto spawned = Clock::now();
    std::vector<Victim> born;
    born.push_back(spawn(Role::Producer, cycle));
    born.push_back(spawn(Role::Red, cycle));
    born.push_back(spawn(Role::Blue, cycle));
    int delay = attached_delay;
    if (!during_attach) {
      for (auto& v : born) {
        ASSERT_TRUE(expect_line(v.child, v.role == Role::Producer ? "sending" : "ready", kStartDeadline,
                                "victim " + v.name() + " attached " + what.str()));
        v.attached = true;
      }
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
    for (std::size_t i = 0; i < born.size(); ++i) (kill_now[i] ? to_kill : survivors).push_back(std::move(born[i]));
    std::set<int> killed;
    for (const auto& v : to_kill) killed.insert(v.pid);
    kill_all(to_kill, rng, what.str());
    // The daemon dropped the dead clients and finished walking their entries: look at what the
    // walks left in the freed entries before the next cycle may reuse them.
    const auto released = wait_stats(
        [&](const BusStats& s) {
          for (const auto& cl : s.clients)
            if (killed.count(cl.pid)) return false;
          return no_entry_closing();
        },
        kWait, "the killed victims dropped and their queue entries released " + what.str());
    // Not released: the daemon's walk is stuck (e.g. re-announcing a slot into a full ready ring).
    ASSERT_TRUE(released) << "the queue now (live victims: " << survivors.size() << "):" << dump();
    scan_stale_claims(what.str());
  }
  kill_all(survivors, rng, "after the last cycle" + with_seed);
  const double cycles_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  ASSERT_FALSE(HasFailure());
  const auto rotations_in_cycles = view_->q().header().selector_rotations.load(std::memory_order_relaxed);

  // Drain: one plain consumer that is never killed, until no victim is attached any more (every
  // release walk done) and nothing waits or is in flight.
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

  // ---- The records. Producers: what each one's sends returned Ok for, 1..last.
  std::map<std::uint32_t, std::uint64_t> last_sent;
  std::uint64_t sent_recorded = 0, sent_red = 0, partial_victim_records = 0;
  for (const auto& v : dead_) {
    if (v.role != Role::Producer) continue;
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
    sent_red += recs.size() / kColorEvery;
  }
  // Consumers: every copy of every message.
  struct Copy {
    std::uint32_t file;  // index into files
    bool maybe_unacked;  // the last record of a killed consumer: recorded, perhaps never acked
    std::uint32_t count;
    bool flagged;
  };
  std::vector<std::string> files;
  std::unordered_map<std::uint64_t, std::vector<Copy>> copies;  // key: producer << 40 | seq
  std::uint64_t received = 0, received_red = 0, received_blue = 0, received_drain = 0;
  std::uint64_t garbage = 0, flag_errors = 0, wrong_color = 0;
  std::ostringstream garbage_ex, flag_ex, color_ex;
  // `role`: Red/Blue for a selector victim; Producer stands for the plain drain.
  const auto take_file = [&](const std::string& name, const std::string& path, bool killed, Role role) {
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
      (role == Role::Red ? received_red : role == Role::Blue ? received_blue : received_drain) += 1;
      const auto it = last_sent.find(r.producer);
      const std::uint32_t count = r.count & ~kRedeliveredFlag;
      const bool flagged = (r.count & kRedeliveredFlag) != 0;
      if (it == last_sent.end() || r.seq == 0 || r.seq > it->second + 1 || count == 0) {
        if (garbage++ < kShow)
          garbage_ex << " " << name << "[" << i << "]=" << r.producer << ":" << r.seq << " count " << count
                     << " (producer's last recorded seq "
                     << (it == last_sent.end() ? std::string("-: never started") : std::to_string(it->second)) << ")";
        continue;
      }
      if (role != Role::Producer && is_red(r.seq) != (role == Role::Red) && wrong_color++ < kShow)
        color_ex << " " << name << "[" << i << "]=" << r.producer << ":" << r.seq << " ("
                 << (is_red(r.seq) ? "red" : "blue") << ")";
      if (flagged != (count > 1) && flag_errors++ < kShow)
        flag_ex << " " << name << "[" << i << "]=" << r.producer << ":" << r.seq << " count " << count << " flagged "
                << flagged;
      copies[(std::uint64_t{r.producer} << 40) | r.seq].push_back({file, killed && i + 1 == recs.size(), count, flagged});
    }
  };
  for (const auto& v : dead_)
    if (v.role != Role::Producer) take_file(v.name(), v.file, true, v.role);
  take_file("drain", drain_file, false, Role::Producer);

  // 1. LOSS.
  std::uint64_t lost = 0;
  std::ostringstream lost_ex;
  for (const auto& [id, last] : last_sent)
    for (std::uint64_t s = 1; s <= last; ++s)
      if (!copies.count((std::uint64_t{id} << 40) | s) && lost++ < kShow) lost_ex << " " << id << ":" << s;
  std::uint64_t unrecorded_sends = 0;  // published by a producer killed between Ok and its record
  for (const auto& [id, last] : last_sent) unrecorded_sends += copies.count((std::uint64_t{id} << 40) | (last + 1));
  // 4. Duplicates: allowed only after a killed consumer's last (unacknowledged) record.
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
    if ((acked > 1 || counts.size() != cs.size()) && double_deliveries++ < kShow) {
      double_ex << " " << (key >> 40) << ":" << (key & ((1ULL << 40) - 1)) << " {";
      for (const auto& c : cs)
        double_ex << " " << files[c.file] << " count " << c.count << (c.maybe_unacked ? " (its last record)" : "");
      double_ex << " }";
    }
  }
  EXPECT_EQ(lost, 0u) << "LOSS: messages a producer recorded as sent (send returned Ok) that no consumer received; first:"
                      << lost_ex.str() << with_seed << dump();
  EXPECT_EQ(garbage, 0u) << "GARBAGE: records from no started producer, beyond its last send + 1, or with delivery "
                            "count 0; first:"
                         << garbage_ex.str() << with_seed;
  EXPECT_EQ(wrong_color, 0u) << "WRONG COLOUR: a selector consumer received a message its selector does not match; first:"
                             << color_ex.str() << with_seed;
  EXPECT_EQ(double_deliveries, 0u) << "DOUBLE DELIVERY: a message received again after it was acknowledged, or one "
                                      "delivery count seen twice; first:"
                                   << double_ex.str() << with_seed;
  EXPECT_EQ(flag_errors, 0u) << "redelivered flag disagrees with the delivery count; first:" << flag_ex.str() << with_seed;

  // 5. Every slot free and reachable: exactly 16 FailFast sends succeed, the 17th is QueueFull,
  // and a plain consumer receives exactly those 16.
  std::uint64_t accepted = 0;
  Status refused = Status::Ok;
  for (std::uint64_t seq = 1; seq <= kCapacity + 1; ++seq) {
    unsigned char buf[kPayloadSize];
    make_payload(kCheckId, seq, buf);
    refused = checker.send(std::as_bytes(std::span<const unsigned char>(buf)));
    if (refused != Status::Ok) break;
    ++accepted;
  }
  EXPECT_EQ(accepted, kCapacity) << "SLOT LEAK: FailFast sends accepted by the drained " << kCapacity << "-slot queue before "
                                 << to_string(refused) << with_seed << dump();
  EXPECT_EQ(refused, Status::QueueFull) << "the send after " << accepted << " is refused as QueueFull" << with_seed;
  auto check_consumer = session.create_consumer(Queue(kQueueName), {}, geo);
  std::set<std::uint64_t> got;
  std::uint64_t got_bad = 0;
  Message m;
  for (std::uint64_t i = 0; i < accepted; ++i) {
    const auto r = check_consumer.receive(m, kWait);
    if (r.status != Status::Ok) {
      ADD_FAILURE() << "STUCK RING: receive " << i + 1 << " of " << accepted << " returned " << to_string(r.status) << with_seed
                    << dump();
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
  EXPECT_EQ(stale_.count(), 0u) << "STALE CLAIM: a queue entry freed after its owner was killed inside an index-ring "
                                  "operation keeps that owner's ClaimRecord (op_pos not idle). Seen:"
                               << ::testing::PrintToString(stale_.examples()) << with_seed;

  const auto& qh = view_->q().header();
  std::cout << "[ info ] " << cycles << " cycles in " << static_cast<long long>(cycles_ms) << " ms (mean attach "
            << static_cast<long long>(attach_us_mean) << " us), drained in " << static_cast<long long>(drain_ms) << " ms\n"
            << "[ info ] producers killed: " << producer_kills_.line() << "\n"
            << "[ info ] selector consumers killed: " << consumer_kills_.line() << "\n"
            << "[ info ] messages: " << sent_recorded << " sends recorded Ok (" << sent_red << " red; +" << unrecorded_sends
            << " published by a producer killed before its record), " << fd->tail << " sent per stats; " << received
            << " received records (red consumers " << received_red << ", blue consumers " << received_blue << ", drain "
            << received_drain << "); " << duplicated << " messages received more than once (" << extra_copies
            << " extra copies); redelivered (stats) " << fd->redelivered << "; head rotations " << rotations_in_cycles
            << " during the cycles, " << qh.selector_rotations.load(std::memory_order_relaxed) << " in all; stale ring entries "
            << qh.stale_entries.load(std::memory_order_relaxed) << "; partial records " << partial_victim_records << "\n";
  RecordProperty("producer_kills", static_cast<int>(producer_kills_.kills));
  RecordProperty("consumer_kills", static_cast<int>(consumer_kills_.kills));
  RecordProperty("rotations", std::to_string(qh.selector_rotations.load(std::memory_order_relaxed)));
  RecordProperty("messages_received", std::to_string(received));
}

}  // namespace
}  // namespace shmbus::systest
