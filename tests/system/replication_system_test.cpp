// Replication of PERSISTENT queue logs between shmbusd daemons (daemon/replicator*.cpp), tested
// with real processes: three (or two) shmbusd children on their own DIRs and loopback ports,
// bus_agent producers and consumers, the shmbus CLI, and raw TCP sockets the test writes itself.
//
// What the tests hold the daemons to:
//  - a send whose Acks::Replicated returned Ok survives a SIGKILL of the leader and a promotion of
//    the follower with the highest log end offset: consumed there exactly once, in per-producer
//    order, checksums intact, nothing that was never sent;
//  - a killed follower catches up and ends with the leader's .log files byte for byte;
//  - a leader that wrote records no follower has (diverged), restarted after a promotion, becomes
//    a follower, truncates them (KIP-101) and ends byte-identical to the new leader; the records
//    it alone had never come back;
//  - kill/promote/restart cycles lose no acknowledged message (SHMBUS_REPL_CYCLES, SHMBUS_REPL_SEED);
//  - a stale leader restarted while its peers are down never forks the log (one epoch, one history);
//  - a stalled follower leaves the in-sync set after --replica-lag-ms and comes back;
//  - a restarted leader bumps its epoch and keeps its followers;
//  - replicated sends fail clearly (exit 4, "not replicated", nothing queued) when the in-sync set
//    is smaller than --min-insync, and on a standalone daemon;
//  - a follower with the wrong secret never connects, garbage on the replication port is closed
//    and the leader keeps serving;
//  - a follower refuses producers and consumers (NotLeader); promote fails clearly where it must.
//
// Nothing sleeps to synchronise: daemons are waited for on their stats and log lines, agents on
// their stdout lines, sockets on poll, each with a deadline. Environment:
//   SHMBUS_REPL_MESSAGES  messages of the leader-kill test (default 100000)
//   SHMBUS_REPL_PRODUCERS parallel producers of that test (default 4)
//   SHMBUS_REPL_CYCLES    kill/failover cycles (default 20);  SHMBUS_REPL_SEED replays one
//   SHMBUS_KEEP_FAILED=1  keep the temp directory of a failed test (logs, data, copies of logs
//                         that differed)
#include "payload.hpp"
#include "replication_fixture.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <list>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <random>
#include <set>
#include <sstream>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace shmbus::systest {
namespace {

namespace fs = std::filesystem;

constexpr Millis kWait{20000};   // something that must happen (generous: failures, not timing, matter)
constexpr Millis kLong{60000};   // catching up / draining many messages on 2 shared cores
constexpr char kQueue[] = "repl";
const std::string kUri = std::string("queue://") + kQueue;
const std::string kLog = std::string("queue.") + kQueue;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string join(const std::vector<std::uint64_t>& v, std::size_t max = 20) {
  std::string s;
  for (std::size_t i = 0; i < v.size() && i < max; ++i) s += (s.empty() ? "" : ",") + std::to_string(v[i]);
  if (v.size() > max) s += ",... (" + std::to_string(v.size()) + " in all)";
  return s;
}

std::uint32_t pow2_at_least(std::uint64_t n) {
  std::uint32_t c = 1024;
  while (c < n) c *= 2;
  return c;
}

// ------------------------------------------------------------------ producers

/// What one pproduce --acks replicated child reported.
struct ProducerReport {
  std::uint32_t id = 0;
  std::vector<std::uint64_t> replicated;  // "replicated seq=N", in the order printed
  std::optional<std::uint64_t> failed_seq;
  std::string failed_status;
  bool done = false;
  std::optional<int> exit_status;
  std::vector<std::string> other;  // lines it should not print
};

/// pproduce children read on their own threads (each blocks in its replicated send), so the test
/// can wait for the acknowledgements of all of them together.
class Producers {
 public:
  ~Producers() { finish(Millis(0)); }

  void add(Child c, std::uint32_t id) {
    auto e = std::make_unique<Entry>();
    e->child = std::move(c);
    e->report.id = id;
    Entry* p = e.get();
    {
      std::lock_guard lk(mu_);  // the readers' wait predicates count the entries
      entries_.push_back(std::move(e));
    }
    p->thread = std::thread([this, p] { read(*p); });
  }

  std::uint64_t acked() const {
    std::lock_guard lk(mu_);
    return acked_;
  }
  /// True once `n` acknowledgements were printed in all within `timeout`; false at the deadline or
  /// when every producer has stopped printing first.
  bool wait_acked(std::uint64_t n, Millis timeout) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return acked_ >= n || finished_ == entries_.size(); }) && acked_ >= n;
  }
  /// Waits (up to `timeout`) for every producer's stdout to reach EOF and the process to exit.
  void finish(Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    {
      std::unique_lock lk(mu_);
      cv_.wait_until(lk, deadline, [&] { return finished_ == entries_.size(); });
      stop_ = true;
    }
    for (auto& e : entries_) {
      if (e->thread.joinable()) e->thread.join();
      if (!e->report.exit_status) {
        const auto left = std::max(Millis(0), std::chrono::duration_cast<Millis>(deadline - Clock::now()));
        e->report.exit_status = e->child.wait_exit(left);
      }
    }
  }
  std::vector<const ProducerReport*> reports() const {
    std::vector<const ProducerReport*> v;
    for (const auto& e : entries_) v.push_back(&e->report);
    return v;
  }

 private:
  struct Entry {
    Child child;
    ProducerReport report;
    std::thread thread;
  };
  void read(Entry& e) {
    for (;;) {
      {
        std::lock_guard lk(mu_);
        if (stop_) break;
      }
      const auto line = e.child.read_line(Millis(200));
      if (!line) {
        if (e.child.running() && !e.child.wait_exit(Millis(0))) continue;  // no line yet
        // Exited: read what is left in the pipe.
        while (const auto more = e.child.read_line(Millis(0))) parse(e, *more);
        break;
      }
      parse(e, *line);
    }
    std::lock_guard lk(mu_);
    ++finished_;
    cv_.notify_all();
  }
  void parse(Entry& e, const std::string& line) {
    const auto f = fields(line);
    auto& r = e.report;
    if (line.rfind("replicated ", 0) == 0) {
      r.replicated.push_back(std::stoull(f.at("seq")));
      std::lock_guard lk(mu_);
      ++acked_;
      cv_.notify_all();
    } else if (line.rfind("error ", 0) == 0) {
      r.failed_seq = f.count("seq") ? std::stoull(f.at("seq")) : 0;
      r.failed_status = f.count("status") ? f.at("status") : "?";
    } else if (line.rfind("done ", 0) == 0) {
      r.done = true;
    } else if (line.rfind("ready ", 0) != 0) {
      r.other.push_back(line);
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t acked_ = 0;
  std::size_t finished_ = 0;
  bool stop_ = false;
  std::list<std::unique_ptr<Entry>> entries_;
};

// ------------------------------------------------------------------ consumption checks

/// What a producer was acknowledged and attempted: the consumed records are judged against it.
struct Sent {
  std::set<std::uint64_t> acked;
  std::uint64_t first = 1, last_attempted = 0;  // [first, last_attempted]: seqs it may have sent
};

/// Exactly-once of every acknowledged seq, per-producer order, nothing never sent, at most
/// `max_extra` unacknowledged ones per producer. Returns the number of unacknowledged ones seen.
std::uint64_t check_consumed(const std::vector<Record>& recs, const std::map<std::uint32_t, Sent>& sent,
                             std::uint64_t max_extra) {
  std::map<std::uint32_t, std::vector<std::uint64_t>> order;
  std::vector<std::string> unknown;
  for (const auto& r : recs) {
    const auto it = sent.find(r.producer);
    if (it == sent.end() || r.seq < it->second.first || r.seq > it->second.last_attempted)
      unknown.push_back(std::to_string(r.producer) + ":" + std::to_string(r.seq));
    order[r.producer].push_back(r.seq);
  }
  EXPECT_TRUE(unknown.empty()) << unknown.size() << " consumed message(s) were never sent (producer:seq): "
                               << [&] {
                                    std::string s;
                                    for (std::size_t i = 0; i < unknown.size() && i < 20; ++i) s += unknown[i] + " ";
                                    return s;
                                  }();
  std::uint64_t extras = 0;
  for (const auto& [id, s] : sent) {
    SCOPED_TRACE("producer " + std::to_string(id));
    const auto& got = order[id];
    std::vector<std::uint64_t> out_of_order, twice, missing, extra;
    std::map<std::uint64_t, int> times;
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (i > 0 && got[i] <= got[i - 1]) out_of_order.push_back(got[i]);
      if (++times[got[i]] == 2) twice.push_back(got[i]);
    }
    for (auto q : s.acked)
      if (!times.count(q)) missing.push_back(q);
    for (const auto& [q, n] : times)
      if (!s.acked.count(q)) extra.push_back(q);
    EXPECT_TRUE(missing.empty()) << missing.size() << " message(s) whose replicated send returned Ok are lost: "
                                 << join(missing);
    EXPECT_TRUE(twice.empty()) << twice.size() << " message(s) delivered more than once: " << join(twice);
    EXPECT_TRUE(out_of_order.empty()) << out_of_order.size() << " message(s) out of the producer's send order: "
                                      << join(out_of_order);
    EXPECT_LE(extra.size(), max_extra) << "unacknowledged messages that came back: " << join(extra);
    extras += extra.size();
  }
  return extras;
}

class Replication_test : public ReplicationTest {
 protected:
  struct Drained {
    std::vector<Record> recs;
    std::uint64_t received = 0, redelivered = 0, bad = 0;
  };

  /// Consumes everything queue `kQueue` holds on `n` (at least `restored_at_least` restored from
  /// the log first) with a qconsume child, auto ack.
  Drained drain(ReplNode& n, std::uint64_t restored_at_least, std::uint32_t capacity, std::uint32_t max_size = 64) {
    Drained d;
    if (restored_at_least > 0) {
      EXPECT_TRUE(wait_queue(n, kUri, [&](const DestinationStats& s) { return s.restored >= restored_at_least; },
                             kLong, "at least " + std::to_string(restored_at_least) + " messages restored"));
    }
    const auto out = root_ + "/drain-" + n.name + "-" + std::to_string(++drains_) + ".bin";
    auto c = agent(n, "qconsume", {"--queue", kQueue, "--ack", "auto", "--out", out, "--capacity",
                                   std::to_string(capacity), "--max-size", std::to_string(max_size)});
    if (!expect_line(c, "ready", kWait, "qconsume attached")) return d;
    EXPECT_TRUE(wait_queue(n, kUri, [&](const DestinationStats& s) { return s.depth == 0 && s.in_flight == 0; }, kLong,
                           "every message consumed"));
    c.write_stdin("stop\n");
    const auto done = expect_line(c, "done", kLong, "qconsume drained the queue");
    const auto st = c.wait_exit(kWait);
    EXPECT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
        << "qconsume: " << (st ? describe_status(*st) : std::string("still running"));
    if (!done) return d;
    d.received = num(*done, "received");
    d.redelivered = num(*done, "redelivered");
    d.bad = num(*done, "bad");
    d.recs = read_records(out);
    EXPECT_EQ(d.recs.size(), d.received);
    EXPECT_EQ(d.bad, 0U) << "corrupted payloads (checksum) came out of the replicated log";
    return d;
  }

  /// Waits until neither follower is connected to the (dead) leader: everything the leader's
  /// socket delivered is applied. Then the one with the highest log end offset of kLog (the
  /// runbook rule; the first on a tie).
  ReplNode* best_follower(const std::vector<ReplNode*>& followers) {
    ReplNode* best = nullptr;
    std::uint64_t best_end = 0;
    for (auto* f : followers) {
      const auto r = wait_repl(*f, [](const ReplicationStats& s) { return s.role == "follower" && !s.connected; }, kWait,
                               "the follower noticed that its leader is gone");
      if (!r) return nullptr;
      const std::uint64_t end = log_end(*r, kLog);
      std::cout << "[ info ]   follower " << f->name << ": " << kLog << " ends at " << end << "\n";
      if (!best || end > best_end) {
        best = f;
        best_end = end;
      }
    }
    return best;
  }

  /// Waits until `n` follows `leader`, fetching.
  bool wait_follows(ReplNode& n, const ReplNode& leader, Millis timeout = kWait) {
    return wait_repl(n,
                     [&](const ReplicationStats& r) {
                       return r.role == "follower" && r.leader == leader.addr && r.connected;
                     },
                     timeout, "follows " + leader.name + " (" + leader.addr + ")")
        .has_value();
  }

  /// Waits until follower `f` holds what `leader` holds of kLog and is in its in-sync set.
  bool wait_caught_up(ReplNode& leader, ReplNode& f, Millis timeout = kLong) {
    const auto l = wait_repl(
        leader,
        [&](const ReplicationStats& r) {
          const auto* x = find_replica(r, f.addr);
          return x && x->in_sync && x->connected && x->lag == 0;
        },
        timeout, f.name + " connected, in sync, no lag");
    if (!l) return false;
    const std::uint64_t end = log_end(*l, kLog);
    return wait_repl(f, [&](const ReplicationStats& r) { return log_end(r, kLog) == end; }, timeout,
                     f.name + "'s " + kLog + " ends at the leader's " + std::to_string(end))
        .has_value();
  }

  /// Runs one pproduce to completion on `n`; returns its report.
  ProducerReport produce(ReplNode& n, std::uint32_t id, std::uint64_t count, const std::string& acks,
                         std::uint32_t capacity, std::uint32_t max_size = 64, Millis timeout = kLong) {
    Producers ps;
    ps.add(agent(n, "pproduce", {"--queue", kQueue, "--id", std::to_string(id), "--start", "1", "--count",
                                 std::to_string(count), "--acks", acks, "--capacity", std::to_string(capacity),
                                 "--max-size", std::to_string(max_size), "--send-timeout-ms", "10000"}),
           id);
    ps.finish(timeout);
    const ProducerReport r = *ps.reports().front();
    EXPECT_TRUE(r.done) << "pproduce --acks " << acks << " on node " << n.name << " did not finish"
                        << (r.failed_seq ? ": seq " + std::to_string(*r.failed_seq) + " returned " + r.failed_status : "");
    EXPECT_TRUE(r.exit_status && WIFEXITED(*r.exit_status) && WEXITSTATUS(*r.exit_status) == 0)
        << "pproduce: " << (r.exit_status ? describe_status(*r.exit_status) : std::string("still running"));
    return r;
  }

  int drains_ = 0;
};

// ---------------------------------------------------------------------------------------------
// 1. Forbidden: a message whose replicated send returned Ok missing (or twice, or out of its
// producer's order, or corrupted) after the leader is SIGKILLed mid-run and the follower with the
// highest log end offset is promoted; a message that was never sent; more than the one in-flight
// unacknowledged message per producer; a promotion that does not bump the epoch; the other
// follower not finding the new leader.
TEST_F(Replication_test, LeaderAndTwoFollowers_ReplicatedSendsSurviveLeaderKillAndPromotion) {
  const auto t0 = Clock::now();
  const std::uint64_t total = env_number("SHMBUS_REPL_MESSAGES", 100000);
  const std::uint64_t nprod = std::max<std::uint64_t>(1, env_number("SHMBUS_REPL_PRODUCERS", 4));
  const std::uint64_t kill_at = total * 6 / 10;
  const std::uint32_t capacity = pow2_at_least(total + 1024);
  std::cout << "[ info ] " << total << " replicated sends from " << nprod << " producers, leader killed after "
            << kill_at << " acks, queue capacity " << capacity << "\n";

  auto& A = add_node("A");
  auto& B = add_node("B");
  auto& C = add_node("C");
  ASSERT_NO_FATAL_FAILURE(start(A, lead_args(A, {&B, &C})));
  ASSERT_NO_FATAL_FAILURE(start(B, follow_args(B, A)));
  ASSERT_NO_FATAL_FAILURE(start(C, follow_args(C, A)));
  ASSERT_TRUE(wait_in_sync(A, 3, kWait));
  const auto a0 = stats(A).replication;
  EXPECT_EQ(a0.role, "leader");
  EXPECT_EQ(a0.epoch >> 8, 1U) << "a fresh leader starts at leadership 1 (epoch = counter << 8 | its index)";
  EXPECT_EQ(a0.min_insync, 2U) << "the default --min-insync with two followers";

  const auto tp = Clock::now();
  Producers ps;
  for (std::uint64_t i = 0; i < nprod; ++i) {
    const std::uint64_t n = total / nprod + (i + 1 == nprod ? total % nprod : 0);
    ps.add(agent(A, "pproduce", {"--queue", kQueue, "--id", std::to_string(i + 1), "--start", "1", "--count",
                                 std::to_string(n), "--acks", "replicated", "--capacity", std::to_string(capacity),
                                 "--max-size", "64", "--send-timeout-ms", "10000"}),
           static_cast<std::uint32_t>(i + 1));
  }
  const bool reached = ps.wait_acked(kill_at, Millis(240000));
  const double produce_s = seconds_since(tp);
  std::cout << "[ info ] " << ps.acked() << " replicated acks in " << produce_s << " s ("
            << static_cast<std::uint64_t>(static_cast<double>(ps.acked()) / std::max(produce_s, 1e-3))
            << " acks/s); SIGKILL the leader now\n";
  ASSERT_TRUE(reached) << "only " << ps.acked() << " of the " << kill_at << " acks the kill waits for";
  ASSERT_NO_FATAL_FAILURE(kill(A));
  ps.finish(kWait);

  std::map<std::uint32_t, Sent> sent;
  std::uint64_t acked_total = 0;
  for (const auto* r : ps.reports()) {
    SCOPED_TRACE("producer " + std::to_string(r->id));
    EXPECT_TRUE(r->other.empty()) << "unexpected output: " << r->other.front();
    ASSERT_TRUE(r->exit_status.has_value()) << "pproduce did not exit within " << kWait.count() << " ms of the kill";
    Sent& s = sent[r->id];
    std::uint64_t expect = 1;
    for (auto q : r->replicated) {
      ASSERT_EQ(q, expect) << "replicated acks out of order";
      ++expect;
      s.acked.insert(q);
    }
    acked_total += s.acked.size();
    if (r->done) {
      s.last_attempted = expect - 1;  // it finished before the kill
      continue;
    }
    EXPECT_TRUE(WIFEXITED(*r->exit_status) && WEXITSTATUS(*r->exit_status) == 1) << describe_status(*r->exit_status);
    ASSERT_TRUE(r->failed_seq.has_value()) << "pproduce exited without reporting the send the kill failed";
    EXPECT_TRUE(r->failed_status == "daemon-gone" || r->failed_status == "not-replicated")
        << "a replicated send racing the leader's death returned " << r->failed_status;
    EXPECT_EQ(*r->failed_seq, expect) << "the failed send is the one after the last acknowledged one";
    s.last_attempted = *r->failed_seq;
  }
  std::cout << "[ info ] " << acked_total << " sends acknowledged as replicated before the kill\n";

  ReplNode* best = best_follower({&B, &C});
  ASSERT_NE(best, nullptr);
  ReplNode& other = best == &B ? C : B;
  const auto before = stats(*best).replication;
  EXPECT_GE(log_end(before, kLog), acked_total)
      << "the most advanced follower holds fewer records than were acknowledged as replicated";
  const std::uint32_t epoch = promote(*best);
  EXPECT_EQ(epoch >> 8, (a0.epoch >> 8) + 1) << "a promotion starts a new epoch, one leadership later";
  std::cout << "[ info ] promoted " << best->name << " to epoch " << epoch << " at " << seconds_since(t0) << " s\n";
  const auto now_leads = stats(*best).replication;
  EXPECT_EQ(now_leads.role, "leader");
  EXPECT_EQ(now_leads.leader, best->addr);
  EXPECT_TRUE(wait_follows(other, *best)) << "the other follower should find the new leader by probing";

  const auto d = drain(*best, acked_total, capacity);
  ASSERT_FALSE(HasFatalFailure());
  const auto extras = check_consumed(d.recs, sent, 1);
  EXPECT_EQ(d.redelivered, d.recs.size()) << "every message a promoted follower restores is flagged redelivered";
  std::cout << "[ info ] consumed " << d.recs.size() << " from the new leader (" << extras
            << " unacknowledged in-flight among them); wall time " << seconds_since(t0) << " s\n";
}

// ---------------------------------------------------------------------------------------------
// 2. Forbidden: a restarted follower not catching up (log end offset below the leader's, not back
// in the in-sync set) after missing sends while it was dead; its .log files not byte-identical to
// the leader's (same --segment-bytes: same segment boundaries); replicated sends failing while the
// other follower keeps --min-insync 2 met.
TEST_F(Replication_test, AKilledFollowerCatchesUp) {
  const auto t0 = Clock::now();
  constexpr std::uint64_t kBefore = 1000, kWhileDead = 4000;
  constexpr std::uint32_t kCapacity = 8192;
  const std::vector<std::string> seg{"--segment-bytes", "65536"};
  auto& A = add_node("A");
  auto& B = add_node("B");
  auto& C = add_node("C");
  ASSERT_NO_FATAL_FAILURE(start(A, lead_args(A, {&B, &C}, seg)));
  ASSERT_NO_FATAL_FAILURE(start(B, follow_args(B, A, seg)));
  ASSERT_NO_FATAL_FAILURE(start(C, follow_args(C, A, seg)));
  ASSERT_TRUE(wait_in_sync(A, 3, kWait));

  const auto r1 = produce(A, 1, kBefore, "replicated", kCapacity);
  ASSERT_EQ(r1.replicated.size(), kBefore);
  ASSERT_TRUE(wait_caught_up(A, C));

  ASSERT_NO_FATAL_FAILURE(kill(C));
  ASSERT_TRUE(wait_repl(A,
                        [&](const ReplicationStats& r) {
                          const auto* x = find_replica(r, C.addr);
                          return x && !x->connected && !x->in_sync && r.in_sync.size() == 2;
                        },
                        kWait, "C disconnected and out of the in-sync set"));
  const auto r2 = produce(A, 2, kWhileDead, "replicated", kCapacity);
  ASSERT_EQ(r2.replicated.size(), kWhileDead) << "with B in sync, --min-insync 2 is met without C";
  const std::uint64_t leader_end = log_end(stats(A).replication, kLog);
  EXPECT_GE(leader_end, kBefore + kWhileDead);

  const auto tc = Clock::now();
  ASSERT_NO_FATAL_FAILURE(restart(C));
  ASSERT_TRUE(wait_caught_up(A, C));
  std::cout << "[ info ] C caught up " << kWhileDead << "+ records in " << seconds_since(tc) << " s\n";
  const auto cs = stats(C).replication;
  EXPECT_EQ(log_end(cs, kLog), leader_end);
  EXPECT_EQ(cs.role, "follower");
  EXPECT_TRUE(cs.connected);
  const auto as = stats(A).replication;
  EXPECT_EQ(as.in_sync.size(), 3U) << describe(as);
  EXPECT_EQ(log_end(as, kLog), leader_end) << "nothing else was written meanwhile";
  EXPECT_NE(A.log_text().find("follower " + C.addr + " connected"), std::string::npos)
      << "the leader should log C's reconnection";

  const auto fa = segment_files(A, kLog);
  EXPECT_GE(fa.size(), 3U) << "the test wants several segments (--segment-bytes 65536)";
  EXPECT_EQ(compare_nodes(A, C, kLog, "caught-up"), "") << "C's .log files differ from the leader's";
  EXPECT_EQ(compare_nodes(A, B, kLog, "caught-up"), "") << "B's .log files differ from the leader's";
  std::cout << "[ info ] " << fa.size() << " segment files identical on A, B and C; wall time " << seconds_since(t0)
            << " s\n";
}

// ---------------------------------------------------------------------------------------------
// 3. Forbidden: the old leader, restarted with its leader arguments after a follower was promoted,
// leading again (or staying apart) instead of following the new leader; keeping the records only
// it had (written while no follower fetched); ending with a log that differs from the new
// leader's -- in its batches, its end offset or its segment files; those records reappearing when
// it is promoted later.
//
// The records only A has start with one big message (a batch larger than what is left of A's
// active segment), so A rolls a segment exactly where the logs diverge; B, promoted, goes on
// filling that segment with small batches. After the truncation A must hold B's segments.
TEST_F(Replication_test, ADivergedFollowerTruncatesAndConverges) {
  const auto t0 = Clock::now();
  constexpr std::uint64_t kCommon = 300, kOnlyA = 200, kAfter = 250;
  constexpr std::uint32_t kCapacity = 1024, kMaxSize = 12288;
  const std::vector<std::string> seg{"--segment-bytes", "16384"};
  auto& A = add_node("A");
  auto& B = add_node("B");
  auto& C = add_node("C");
  ASSERT_NO_FATAL_FAILURE(start(A, lead_args(A, {&B, &C}, seg)));
  ASSERT_NO_FATAL_FAILURE(start(B, follow_args(B, A, seg)));
  ASSERT_NO_FATAL_FAILURE(start(C, follow_args(C, A, seg)));
  ASSERT_TRUE(wait_in_sync(A, 3, kWait));

  // Phase 1: on every replica (one 200-byte batch per replicated send).
  ASSERT_EQ(produce(A, 1, kCommon, "replicated", kCapacity, kMaxSize).replicated.size(), kCommon);
  ASSERT_TRUE(wait_caught_up(A, B));
  ASSERT_TRUE(wait_caught_up(A, C));
  const std::uint64_t common_end = log_end(stats(A).replication, kLog);
  EXPECT_EQ(common_end, kCommon);
  const std::uint32_t epoch_a = stats(A).replication.epoch;

  // Phase 2: the followers are dead; A alone writes (its log only): one big message, then small
  // ones (acks memory).
  ASSERT_NO_FATAL_FAILURE(kill(B));
  ASSERT_NO_FATAL_FAILURE(kill(C));
  const auto big = cli(A, {"--max-size", std::to_string(kMaxSize), "send", kUri, "--persistent", "--acks", "durable",
                           "--type", "bytes", std::string(10000, 'x')});
  ASSERT_EQ(big.exit_code, 0) << big.out << big.err;
  ASSERT_EQ(produce(A, 2, kOnlyA, "memory", kCapacity, kMaxSize).done, true);
  const auto a_only = wait_repl(A, [&](const ReplicationStats& r) { return log_end(r, kLog) == common_end + 1 + kOnlyA; },
                                kWait, "A's log holds the records no follower has");
  ASSERT_TRUE(a_only);
  EXPECT_EQ(find_log(*a_only, kLog)->high_watermark, common_end) << "no follower fetched them: the high watermark stays";
  EXPECT_EQ(segment_files(A, kLog).count("00000000000000000300.log"), 1U)
      << "the big batch should have rolled A's log at offset 300 (the test's premise)";
  ASSERT_NO_FATAL_FAILURE(kill(A));

  // Phase 3: B promoted, C follows it, more replicated sends on B.
  ASSERT_NO_FATAL_FAILURE(restart(B));
  ASSERT_NO_FATAL_FAILURE(restart(C));
  EXPECT_EQ(log_end(stats(B).replication, kLog), common_end);
  const std::uint32_t epoch_b = promote(B);
  EXPECT_EQ(epoch_b >> 8, (epoch_a >> 8) + 1);
  ASSERT_TRUE(wait_follows(C, B));
  ASSERT_TRUE(wait_in_sync(B, 2, kWait));
  ASSERT_EQ(produce(B, 3, kAfter, "replicated", kCapacity, kMaxSize).replicated.size(), kAfter);
  const std::uint64_t b_end = log_end(stats(B).replication, kLog);
  EXPECT_EQ(b_end, common_end + kAfter);

  // Phase 4: A comes back with its original leader arguments: it must follow B and converge.
  ASSERT_NO_FATAL_FAILURE(restart(A));
  const auto as = wait_repl(A, [&](const ReplicationStats& r) { return r.role == "follower" && r.leader == B.addr; },
                            kWait, "A, restarted with --replicate-to, follows B (the newer epoch)");
  ASSERT_TRUE(as);
  EXPECT_EQ(as->epoch, epoch_b);
  ASSERT_TRUE(wait_caught_up(B, A));
  const std::string diverged = kLog + " diverged from the leader after offset " + std::to_string(common_end) +
                               " (epoch " + std::to_string(epoch_a) + "): truncating " + std::to_string(1 + kOnlyA) +
                               " records";
  EXPECT_TRUE(A.daemon->log().wait_for(diverged, kWait)) << "A should log '" << diverged << "'; log:\n"
                                                          << A.log_text();
  EXPECT_EQ(log_end(stats(A).replication, kLog), b_end);
  const auto fb = segment_files(B, kLog);
  EXPECT_GE(fb.size(), 2U) << "the test wants several segments (--segment-bytes 16384)";
  // The batches: byte for byte the same stream of records on all three.
  EXPECT_TRUE(log_stream(segment_files(A, kLog)) == log_stream(fb)) << "A's batches differ from the new leader B's";
  EXPECT_TRUE(log_stream(segment_files(C, kLog)) == log_stream(fb)) << "C's batches differ from B's";
  // The files: the same segments too.
  EXPECT_EQ(compare_nodes(B, A, kLog, "converged"), "")
      << "A's .log files differ from the new leader B's after the truncation (segment boundaries)";
  EXPECT_EQ(compare_nodes(B, C, kLog, "converged"), "") << "C's .log files differ from B's";
  const auto bs = stats(B).replication;
  EXPECT_EQ(bs.in_sync.size(), 3U) << describe(bs);

  // Phase 5 (the stronger check): B stops, A is promoted; only phases 1 and 3 come out of it.
  ASSERT_NO_FATAL_FAILURE(kill(B, SIGTERM));
  const std::uint32_t epoch_a2 = promote(A);
  EXPECT_EQ(epoch_a2 >> 8, (epoch_b >> 8) + 1);
  const auto d = drain(A, kCommon + kAfter, kCapacity, kMaxSize);
  ASSERT_FALSE(HasFatalFailure());
  std::map<std::uint32_t, Sent> sent;
  for (std::uint64_t q = 1; q <= kCommon; ++q) sent[1].acked.insert(q);
  sent[1].last_attempted = kCommon;
  for (std::uint64_t q = 1; q <= kAfter; ++q) sent[3].acked.insert(q);
  sent[3].last_attempted = kAfter;
  check_consumed(d.recs, sent, 0);  // producer 2's records (and the big one) would be unknown: they must be gone
  EXPECT_EQ(d.recs.size(), kCommon + kAfter);
  std::cout << "[ info ] wall time " << seconds_since(t0) << " s\n";
}

// ---------------------------------------------------------------------------------------------
// 4. Forbidden, over many SIGKILL -> promote -> restart cycles with the leadership moving between
// three daemons: an acknowledged replicated send lost or duplicated; a message never sent; more
// unacknowledged messages than one per cycle; a restarted old leader not following the new one;
// replicas ending with different .log bytes; an epoch that does not go up by one per promotion.
TEST_F(Replication_test, KillFailoverCycles) {
  const auto t0 = Clock::now();
  const std::uint64_t cycles = env_number("SHMBUS_REPL_CYCLES", 20);
  const std::uint64_t seed = env_number("SHMBUS_REPL_SEED", std::random_device{}());
  std::cout << "[ info ] kill/failover cycles=" << cycles << " seed=" << seed << " (replay with SHMBUS_REPL_SEED="
            << seed << ")\n";
  RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::uint64_t> kill_after(0, 200);
  const std::uint32_t capacity = pow2_at_least(cycles * 210 + 64);
  const std::vector<std::string> seg{"--segment-bytes", "32768"};

  auto& A = add_node("A");
  auto& B = add_node("B");
  auto& C = add_node("C");
  ASSERT_NO_FATAL_FAILURE(start(A, lead_args(A, {&B, &C}, seg)));
  ASSERT_NO_FATAL_FAILURE(start(B, follow_args(B, A, seg)));
  ASSERT_NO_FATAL_FAILURE(start(C, follow_args(C, A, seg)));
  ReplNode* leader = &A;
  std::uint32_t epoch = stats(A).replication.epoch;

  std::set<std::uint64_t> acked;
  std::uint64_t next = 1;
  for (std::uint64_t cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle) + ", leader " + leader->name);
    const auto tc = Clock::now();
    ASSERT_TRUE(wait_in_sync(*leader, 3, kLong));
    const std::uint64_t k = kill_after(rng);
    auto p = agent(*leader, "pproduce", {"--queue", kQueue, "--id", "1", "--start", std::to_string(next), "--count",
                                         "100000000", "--acks", "replicated", "--capacity", std::to_string(capacity),
                                         "--max-size", "64", "--send-timeout-ms", "5000"});
    ASSERT_TRUE(expect_line(p, "ready", kWait, "pproduce attached"));
    std::vector<std::uint64_t> got;
    std::optional<std::uint64_t> failed;
    std::string failed_status;
    const auto read_one = [&](Millis t) {
      const auto line = p.read_line(t);
      if (!line) return false;
      const auto f = fields(*line);
      if (line->rfind("replicated ", 0) == 0) got.push_back(num(f, "seq"));
      else if (line->rfind("error ", 0) == 0) {
        failed = num(f, "seq");
        failed_status = f.count("status") ? f.at("status") : "?";
      } else ADD_FAILURE() << "pproduce printed: " << *line;
      return true;
    };
    const auto deadline = Clock::now() + kLong;
    while (got.size() < k && !failed && Clock::now() < deadline)
      if (!read_one(std::chrono::duration_cast<Millis>(deadline - Clock::now()))) break;
    ASSERT_EQ(got.size(), k) << "pproduce acknowledged only " << got.size() << " of the " << k
                             << " sends the kill waits for"
                             << (failed ? "; seq " + std::to_string(*failed) + " returned " + failed_status : "");
    ASSERT_NO_FATAL_FAILURE(kill(*leader));
    while (read_one(kWait)) {
    }
    const auto st = p.wait_exit(kWait);
    ASSERT_TRUE(st.has_value()) << "pproduce did not exit after the leader's death";
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << "pproduce: " << describe_status(*st);
    ASSERT_TRUE(failed.has_value()) << "pproduce exited without reporting the send the kill failed";
    EXPECT_TRUE(failed_status == "daemon-gone" || failed_status == "not-replicated")
        << "a replicated send racing the leader's death returned " << failed_status;
    std::uint64_t expect = next;
    for (auto q : got) {
      ASSERT_EQ(q, expect) << "replicated acks out of order";
      ++expect;
      acked.insert(q);
    }
    ASSERT_EQ(*failed, expect) << "the failed send is the one after the last acknowledged one";
    next = *failed + 1;

    std::vector<ReplNode*> followers;
    for (auto* n : {&A, &B, &C})
      if (n != leader) followers.push_back(n);
    if (rng() % 2) std::swap(followers[0], followers[1]);  // ties: either may be promoted
    ReplNode* best = best_follower(followers);
    ASSERT_NE(best, nullptr);
    EXPECT_GE(log_end(stats(*best).replication, kLog), got.empty() ? 0 : got.size())
        << "the most advanced follower misses acknowledged records";
    const std::uint32_t e = promote(*best);
    ASSERT_EQ(e >> 8, (epoch >> 8) + 1) << "each promotion is a new epoch, one leadership above the last";
    epoch = e;
    ReplNode* old = leader;
    leader = best;
    ASSERT_NO_FATAL_FAILURE(restart(*old));
    ASSERT_TRUE(wait_follows(*old, *leader, kLong)) << "the old leader " << old->name
                                                    << ", restarted with its original arguments, follows the new one";
    std::cout << "[ info ] cycle " << cycle << ": " << got.size() << " acked, killed " << old->name << ", promoted "
              << leader->name << " (epoch " << epoch << "), " << seconds_since(tc) << " s\n";
  }
  ASSERT_TRUE(wait_in_sync(*leader, 3, kLong));
  for (auto* n : {&A, &B, &C}) {
    if (n == leader) continue;
    EXPECT_TRUE(wait_caught_up(*leader, *n));
  }
  // Every replica holds the final leader's batches byte for byte. (Segment boundaries may differ
  // after a truncation at a segment's base: ADivergedFollowerTruncatesAndConverges checks those
  // deterministically; here a difference is only reported.)
  const auto fl = segment_files(*leader, kLog);
  for (auto* n : {&A, &B, &C}) {
    if (n == leader) continue;
    const auto fn = segment_files(*n, kLog);
    EXPECT_TRUE(log_stream(fn) == log_stream(fl))
        << n->name << "'s batches differ from the final leader " << leader->name << "'s: "
        << compare_nodes(*leader, *n, kLog, "final");
    if (const auto diff = compare_segments(fl, fn); !diff.empty())
      std::cout << "[ note ] " << n->name << "'s segment files differ from " << leader->name << "'s: " << diff << "\n";
  }

  const auto d = drain(*leader, acked.size(), capacity);
  ASSERT_FALSE(HasFatalFailure());
  std::map<std::uint32_t, Sent> sent;
  sent[1].acked = acked;
  sent[1].last_attempted = next - 1;
  const auto extras = check_consumed(d.recs, sent, cycles);
  EXPECT_EQ(d.redelivered, d.recs.size()) << "every message restored by a promotion is flagged redelivered";
  std::cout << "[ info ] " << cycles << " cycles: " << acked.size() << " acknowledged, " << d.recs.size()
            << " consumed (" << extras << " unacknowledged in-flight), wall time " << seconds_since(t0) << " s\n";
}

// ---------------------------------------------------------------------------------------------
// 4b. Forbidden: two leaderships with the same epoch number (KIP-101 cannot tell their records
// apart), two leaders at once that never settle, or a replica keeping records its leader never had
// (a forked log). The scenario: A leads (epoch 1) and dies; B is promoted (epoch 2) and writes,
// replicated to C; then B and C are down and A is restarted with its leader arguments: it probes
// nobody, leads again and writes (durable sends); then C and B come back with their original
// arguments (C first: it finds A leading and must end with A's log). Whichever daemon ends up leading, the set must settle on one leader with every log
// equal to its log, and a consumer must get one history: A's records or B's, never a mix. (That
// one side's records are lost is the price of letting A lead without any peer: reported only.)
TEST_F(Replication_test, AStaleLeaderRestartedAloneDoesNotForkTheLog) {
  constexpr std::uint64_t kFirst = 100, kOnB = 50, kOnA = 80;
  constexpr std::uint32_t kCapacity = 1024;
  auto& A = add_node("A");
  auto& B = add_node("B");
  auto& C = add_node("C");
  ASSERT_NO_FATAL_FAILURE(start(A, lead_args(A, {&B, &C})));
  ASSERT_NO_FATAL_FAILURE(start(B, follow_args(B, A)));
  ASSERT_NO_FATAL_FAILURE(start(C, follow_args(C, A)));
  ASSERT_TRUE(wait_in_sync(A, 3, kWait));
  ASSERT_EQ(produce(A, 1, kFirst, "replicated", kCapacity).replicated.size(), kFirst);
  ASSERT_TRUE(wait_caught_up(A, B));
  ASSERT_TRUE(wait_caught_up(A, C));
  const std::uint32_t e1 = stats(A).replication.epoch;

  ASSERT_NO_FATAL_FAILURE(kill(A));
  const std::uint32_t e2 = promote(B);
  ASSERT_EQ(e2 >> 8, (e1 >> 8) + 1);
  ASSERT_TRUE(wait_follows(C, B));
  ASSERT_TRUE(wait_in_sync(B, 2, kWait));
  ASSERT_EQ(produce(B, 2, kOnB, "replicated", kCapacity).replicated.size(), kOnB);
  ASSERT_TRUE(wait_caught_up(B, C));
  ASSERT_NO_FATAL_FAILURE(kill(B));
  ASSERT_NO_FATAL_FAILURE(kill(C));

  ASSERT_NO_FATAL_FAILURE(restart(A));
  const auto ra = stats(A).replication;
  std::cout << "[ info ] A restarted alone: role " << ra.role << ", epoch " << ra.epoch << " (B was promoted to epoch "
            << e2 << ")\n";
  if (ra.role == "leader") {
    EXPECT_NE(ra.epoch, e2) << "A leads again with the epoch B's promotion already used: two different histories under "
                               "one epoch number cannot be told apart (KIP-101)";
    // Durable sends, one at a time: one batch per record, like B's.
    ASSERT_EQ(produce(A, 3, kOnA, "durable", kCapacity).done, true);
  }
  // C first: its leader B is down, so it probes the replica set and finds A leading. Either A's
  // epoch is newer than the one C knows (B's) and C follows A, or it is older: C's probe then
  // carries the newer epoch, A is fenced and shuts down, and C waits for B.
  ASSERT_NO_FATAL_FAILURE(restart(C));
  const auto c_follows_a = [&] {
    const auto until = Clock::now() + kWait;
    while (Clock::now() < until) {
      if (A.daemon->child().wait_exit(Millis(0)).has_value()) return false;  // fenced: it shut down
      try {
        const auto r = stats(C).replication;
        if (r.role == "follower" && r.leader == A.addr && r.connected) return true;
      } catch (const Error&) {
      }
      std::this_thread::yield();
    }
    return false;
  };
  if (ra.role == "leader" && ra.epoch > e2) {
    EXPECT_TRUE(c_follows_a()) << "C knows epoch " << e2 << ", A leads with " << ra.epoch;
  }
  if (ra.role == "leader" && ra.epoch < e2) {
    EXPECT_FALSE(c_follows_a()) << "C, knowing epoch " << e2 << ", followed A's older epoch " << ra.epoch;
    EXPECT_TRUE(A.daemon->child().wait_exit(kWait).has_value()) << "A, met by C's newer epoch, must be fenced and shut down";
  }
  if (ra.role == "leader" && ra.epoch > e2 && wait_caught_up(A, C)) {
    EXPECT_TRUE(log_stream(segment_files(C, kLog)) == log_stream(segment_files(A, kLog)))
        << "C, following A, kept B's records at offsets A wrote its own records at (a forked log): "
        << compare_nodes(A, C, kLog, "forked");
  }
  ASSERT_NO_FATAL_FAILURE(restart(B));

  // The set settles: one leader, the two others following it, fetching, holding its log.
  ReplNode* leader = nullptr;
  std::string last;
  constexpr Millis kSettle{30000};
  const auto deadline = Clock::now() + kSettle;
  while (!leader && Clock::now() < deadline) {
    // A leader that finds a newer epoch among its peers is fenced and shuts down (the runbook:
    // restart it and it follows).
    for (auto* n : {&A, &B, &C})
      if (n->daemon->child().wait_exit(Millis(0)).has_value()) {
        std::cout << "[ info ] " << n->name << " shut down (fenced); restarting it with its arguments\n";
        ASSERT_NO_FATAL_FAILURE(restart(*n));
      }
    std::map<ReplNode*, ReplicationStats> r;
    try {
      for (auto* n : {&A, &B, &C}) r[n] = stats(*n).replication;
    } catch (const Error&) {
      continue;
    }
    last.clear();
    std::vector<ReplNode*> leaders;
    for (auto& [n, s] : r) {
      last += "\n  " + n->name + ": " + describe(s);
      if (s.role == "leader") leaders.push_back(n);
    }
    if (leaders.size() == 1) {
      ReplNode* l = leaders.front();
      bool ok = true;
      for (auto& [n, s] : r)
        if (n != l)
          ok = ok && s.role == "follower" && s.leader == l->addr && s.connected &&
               log_end(s, kLog) == log_end(r[l], kLog);
      if (ok) leader = l;
    }
    if (!leader) std::this_thread::sleep_for(Millis(20));  // poll interval
  }
  ASSERT_NE(leader, nullptr) << "the replica set did not settle on one leader with two caught-up followers within "
                             << kSettle.count() << " ms:" << last;
  std::cout << "[ info ] settled: " << leader->name << " leads\n";
  const auto fl = segment_files(*leader, kLog);
  for (auto* n : {&A, &B, &C}) {
    if (n == leader) continue;
    EXPECT_TRUE(log_stream(segment_files(*n, kLog)) == log_stream(fl))
        << n->name << " holds records its leader " << leader->name << " never had (a forked log): "
        << compare_nodes(*leader, *n, kLog, "forked");
  }
  // One history: the leader's.
  const auto d = drain(*leader, kFirst, kCapacity);
  ASSERT_FALSE(HasFatalFailure());
  std::map<std::uint32_t, std::uint64_t> per;
  for (const auto& rec : d.recs) ++per[rec.producer];
  EXPECT_EQ(per[1], kFirst);
  const bool a_history = per[3] == kOnA && per[2] == 0, b_history = per[2] == kOnB && per[3] == 0;
  EXPECT_TRUE(a_history || b_history) << "consumed " << per[2] << " of B's " << kOnB << " records and " << per[3]
                                      << " of A's " << kOnA << ": a mix of two histories";
  std::cout << "[ info ] the surviving history is " << (a_history ? "A's (B's acknowledged records are lost)"
                                                                  : b_history ? "B's (A's records are gone)" : "a mix")
            << "\n";
}

// ---------------------------------------------------------------------------------------------
// 4c. Forbidden: a follower that stops fetching (SIGSTOP: its TCP connection stays up) holding
// replicated sends back for longer than --replica-lag-ms (it must leave the in-sync set, and the
// sends go on with the other follower); not coming back in sync once it runs again; its log then
// differing from the leader's.
TEST_F(Replication_test, AStalledFollowerLeavesTheInSyncSetAndComesBack) {
  constexpr std::uint64_t kN = 3000;
  constexpr std::uint32_t kCapacity = 4096;
  const std::vector<std::string> seg{"--segment-bytes", "65536"};
  auto& A = add_node("A");
  auto& B = add_node("B");
  auto& C = add_node("C");
  ASSERT_NO_FATAL_FAILURE(start(A, lead_args(A, {&B, &C}, {"--segment-bytes", "65536", "--replica-lag-ms", "1000"})));
  ASSERT_NO_FATAL_FAILURE(start(B, follow_args(B, A, seg)));
  ASSERT_NO_FATAL_FAILURE(start(C, follow_args(C, A, seg)));
  ASSERT_TRUE(wait_in_sync(A, 3, kWait));

  C.daemon->child().kill(SIGSTOP);
  const auto t0 = Clock::now();
  const auto r = produce(A, 1, kN, "replicated", kCapacity);
  C.daemon->child().kill(SIGCONT);
  EXPECT_EQ(r.replicated.size(), kN) << "replicated sends must go on without the stalled follower (send timeout 10 s, "
                                        "--replica-lag-ms 1000)";
  std::cout << "[ info ] " << r.replicated.size() << " replicated sends with C stopped in " << seconds_since(t0)
            << " s\n";
  EXPECT_NE(A.log_text().find(C.addr + " left the in-sync set"), std::string::npos)
      << "the leader should log that the stalled follower left the in-sync set";
  ASSERT_TRUE(wait_caught_up(A, C));
  EXPECT_EQ(stats(A).replication.in_sync.size(), 3U);
  EXPECT_EQ(compare_nodes(A, C, kLog, "stalled"), "") << "C's .log files differ from the leader's";
}

// ---------------------------------------------------------------------------------------------
// 4d. Forbidden: a leader restarted (clean stop or SIGKILL) with its arguments keeping its epoch;
// its followers not following it again at the new epoch; a replicated send failing afterwards;
// logs differing after that.
TEST_F(Replication_test, ARestartedLeaderBumpsTheEpochAndKeepsItsFollowers) {
  constexpr std::uint32_t kCapacity = 4096;
  const std::vector<std::string> seg{"--segment-bytes", "32768"};
  auto& A = add_node("A");
  auto& B = add_node("B");
  auto& C = add_node("C");
  ASSERT_NO_FATAL_FAILURE(start(A, lead_args(A, {&B, &C}, seg)));
  ASSERT_NO_FATAL_FAILURE(start(B, follow_args(B, A, seg)));
  ASSERT_NO_FATAL_FAILURE(start(C, follow_args(C, A, seg)));
  ASSERT_TRUE(wait_in_sync(A, 3, kWait));
  std::uint32_t epoch = stats(A).replication.epoch;
  std::uint32_t id = 1;
  for (const int sig : {SIGTERM, SIGKILL}) {
    SCOPED_TRACE(sig == SIGTERM ? "clean restart" : "restart after SIGKILL");
    ASSERT_EQ(produce(A, id++, 300, "replicated", kCapacity).replicated.size(), 300U);
    ASSERT_NO_FATAL_FAILURE(kill(A, sig));
    ASSERT_NO_FATAL_FAILURE(restart(A));
    const auto ra = stats(A).replication;
    EXPECT_EQ(ra.role, "leader");
    EXPECT_EQ(ra.epoch >> 8, (epoch >> 8) + 1) << "every start as leader is a new epoch";
    epoch = ra.epoch;
    for (auto* f : {&B, &C}) {
      EXPECT_TRUE(wait_repl(*f,
                            [&](const ReplicationStats& r) {
                              return r.role == "follower" && r.leader == A.addr && r.connected && r.epoch == epoch;
                            },
                            kWait, "follows A at epoch " + std::to_string(epoch)));
    }
    ASSERT_TRUE(wait_in_sync(A, 3, kWait));
    ASSERT_EQ(produce(A, id++, 300, "replicated", kCapacity).replicated.size(), 300U);
    ASSERT_TRUE(wait_caught_up(A, B));
    ASSERT_TRUE(wait_caught_up(A, C));
    EXPECT_EQ(compare_nodes(A, B, kLog, "restarted"), "") << "B's .log files differ from the leader's";
    EXPECT_EQ(compare_nodes(A, C, kLog, "restarted"), "") << "C's .log files differ from the leader's";
  }
}

// ---------------------------------------------------------------------------------------------
// 5. Forbidden: a replicated send returning Ok (or queueing the message) while the in-sync set is
// smaller than --min-insync, or on a daemon that does not replicate; failing without saying "not
// replicated" (exit code 4); failing once the set is big enough again.
TEST_F(Replication_test, MinInsyncNotMet_ReplicatedSendFailsClearly) {
  auto& A = add_node("A");
  auto& B = add_node("B");
  auto& C = add_node("C");
  ASSERT_NO_FATAL_FAILURE(start(A, lead_args(A, {&B, &C}, {"--min-insync", "3"})));
  ASSERT_NO_FATAL_FAILURE(start(B, follow_args(B, A)));
  ASSERT_TRUE(wait_in_sync(A, 2, kWait));
  EXPECT_EQ(stats(A).replication.min_insync, 3U);

  const std::vector<std::string> send{"send", kUri, "--persistent", "--acks", "replicated", "hello"};
  const auto r1 = cli(A, send);
  EXPECT_EQ(r1.exit_code, 4) << "a replicated send with 2 of 3 in sync: " << r1.out << r1.err;
  EXPECT_NE(r1.err.find("not replicated"), std::string::npos) << r1.err;
  const auto q1 = wait_queue(A, kUri, [](const DestinationStats&) { return true; }, kWait, "the queue exists");
  ASSERT_TRUE(q1);
  EXPECT_EQ(q1->depth, 0U) << "a refused replicated send must not queue its message";
  EXPECT_EQ(q1->log_end_offset, 0U) << "nor write it";

  ASSERT_NO_FATAL_FAILURE(start(C, follow_args(C, A)));
  ASSERT_TRUE(wait_in_sync(A, 3, kWait));
  const auto r2 = cli(A, send);
  EXPECT_EQ(r2.exit_code, 0) << "with 3 of 3 in sync: " << r2.out << r2.err;
  EXPECT_TRUE(wait_queue(A, kUri, [](const DestinationStats& d) { return d.depth == 1; }, kWait, "one message queued"));
  EXPECT_TRUE(wait_repl(B, [](const ReplicationStats& r) { return log_end(r, kLog) >= 1; }, kWait,
                        "B holds the replicated message"));

  // A daemon that does not replicate cannot promise a replicated send.
  auto& S = add_node("S");
  ASSERT_NO_FATAL_FAILURE(start(S, {}));
  EXPECT_EQ(stats(S).replication.role, "standalone");
  const auto r3 = cli(S, send);
  EXPECT_EQ(r3.exit_code, 4) << "a replicated send on a standalone daemon: " << r3.out << r3.err;
  EXPECT_NE(r3.err.find("not replicated"), std::string::npos) << r3.err;
  const auto q3 = wait_queue(S, kUri, [](const DestinationStats&) { return true; }, kWait, "the queue exists");
  ASSERT_TRUE(q3);
  EXPECT_EQ(q3->depth, 0U) << "a refused replicated send must not queue its message";
}

// ---------------------------------------------------------------------------------------------
// Raw replication-port clients for test 6: the frame header is magic "SBR1", u16 version 1,
// u16 type, u32 payload length, u32 reserved; little-endian (daemon/repl_protocol.hpp).
std::vector<std::uint8_t> frame_header(std::uint16_t type, std::uint32_t length) {
  std::vector<std::uint8_t> h(16, 0);
  const std::uint32_t magic = 0x31524253;
  for (int i = 0; i < 4; ++i) h[i] = static_cast<std::uint8_t>(magic >> (8 * i));
  h[4] = 1;
  h[6] = static_cast<std::uint8_t>(type);
  h[7] = static_cast<std::uint8_t>(type >> 8);
  for (int i = 0; i < 4; ++i) h[8 + i] = static_cast<std::uint8_t>(length >> (8 * i));
  return h;
}

/// A Hello payload: nonce, intent (1 follow), epoch, self.
std::vector<std::uint8_t> hello_payload(const std::string& self) {
  std::vector<std::uint8_t> p(16, 0x5a);
  p.push_back(1);
  for (int i = 0; i < 4; ++i) p.push_back(0);
  p.push_back(static_cast<std::uint8_t>(self.size()));
  p.push_back(static_cast<std::uint8_t>(self.size() >> 8));
  p.insert(p.end(), self.begin(), self.end());
  return p;
}

int connect_raw(const std::string& addr) {
  const auto colon = addr.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(std::stoul(addr.substr(colon + 1))));
  ::inet_pton(AF_INET, addr.substr(0, colon).c_str(), &sa.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_raw(int fd, const std::vector<std::uint8_t>& b) {
  std::size_t off = 0;
  while (off < b.size()) {
    const ssize_t n = ::send(fd, b.data() + off, b.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

/// Reads (and keeps) what the peer sends until it closes the connection (EOF or a reset) within
/// `timeout`: true if it did.
bool closed_by_peer(int fd, Millis timeout, std::vector<std::uint8_t>* got = nullptr) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    std::uint8_t buf[4096];
    const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r == 0) return true;
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno == ECONNRESET;
    }
    if (got) got->insert(got->end(), buf, buf + r);
  }
}

/// Reads exactly n bytes within `timeout`.
bool read_exact(int fd, std::vector<std::uint8_t>& out, std::size_t n, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  out.clear();
  while (out.size() < n) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    std::uint8_t buf[4096];
    const ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (r <= 0) return false;
    out.insert(out.end(), buf, buf + r);
  }
  return true;
}

// 6. Forbidden: a follower whose replication.secret differs ever connecting; the leader not
// saying why it refuses an unauthenticated peer; garbage, an oversized frame header or a
// truncated Hello on the replication port keeping the connection open (or taking the leader
// down); replicated sends failing meanwhile with a correct follower in sync.
TEST_F(Replication_test, WrongSecretAndGarbageAreRefused) {
  auto& A = add_node("A");
  auto& B = add_node("B");
  auto& C = add_node("C", "an-entirely-different-shared-secret-987654321");
  ASSERT_NO_FATAL_FAILURE(start(A, lead_args(A, {&B, &C})));
  ASSERT_NO_FATAL_FAILURE(start(B, follow_args(B, A)));
  ASSERT_NO_FATAL_FAILURE(start(C, follow_args(C, A)));
  ASSERT_TRUE(wait_in_sync(A, 2, kWait));

  // The wrong-secret follower: both sides must refuse, and say so.
  EXPECT_TRUE(C.daemon->log().wait_for("does not know the shared secret", kWait))
      << "C should log that its leader does not prove the shared secret; log:\n"
      << C.log_text();
  // (The follower checks the leader's proof first and hangs up, so the leader only learns of the
  // failure if the follower tells it: a Refuse frame before the close.)
  EXPECT_TRUE(A.daemon->log().wait_for("authentication failed", kWait))
      << "the leader should log 'authentication failed' for a follower with the wrong secret (it cannot tell an "
         "operator why that follower never connects otherwise); log:\n"
      << A.log_text();
  const auto cs = stats(C).replication;
  EXPECT_EQ(cs.role, "follower");
  EXPECT_FALSE(cs.connected) << describe(cs);

  EXPECT_EQ(cli(A, {"send", kUri, "--persistent", "--acks", "replicated", "before"}).exit_code, 0);

  // Raw connections to the leader's replication port.
  struct Case {
    std::string what;
    std::vector<std::uint8_t> bytes;
    bool half_close;
  };
  std::vector<Case> cases;
  {
    std::mt19937 rng(12345);
    std::vector<std::uint8_t> junk(64);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    junk[0] = 0x00;  // never the magic
    cases.push_back({"64 random bytes", junk, false});
  }
  cases.push_back({"a Hello header with a 4 GiB length", frame_header(1, 0xFFFFFFFFU), false});
  cases.push_back({"a Fetch header with a length just over the 1 MiB limit", frame_header(8, (1U << 20) + 1), false});
  {
    auto b = frame_header(1, static_cast<std::uint32_t>(hello_payload("127.0.0.1:1").size()));
    const auto p = hello_payload("127.0.0.1:1");
    b.insert(b.end(), p.begin(), p.begin() + 10);  // then the sender goes quiet (half-close)
    cases.push_back({"a Hello cut short, then EOF", b, true});
  }
  {
    const auto p = hello_payload("127.0.0.1:1");
    std::vector<std::uint8_t> shortp(p.begin(), p.begin() + 19);  // nonce, intent, half the epoch
    auto b = frame_header(1, static_cast<std::uint32_t>(shortp.size()));
    b.insert(b.end(), shortp.begin(), shortp.end());
    cases.push_back({"a whole frame holding a truncated Hello", b, false});
  }
  {
    auto b = frame_header(4, 0);  // a Welcome: out of turn from a dialer
    cases.push_back({"a frame out of turn (Welcome first)", b, false});
  }
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const int fd = connect_raw(A.addr);
    ASSERT_GE(fd, 0) << "cannot connect to the leader's replication port " << A.addr;
    EXPECT_TRUE(send_raw(fd, c.bytes));
    if (c.half_close) ::shutdown(fd, SHUT_WR);
    EXPECT_TRUE(closed_by_peer(fd, Millis(5000))) << "the leader did not close the connection";
    ::close(fd);
  }

  // A correct Hello, then an Auth that proves nothing: refused with "authentication failed".
  {
    const int fd = connect_raw(A.addr);
    ASSERT_GE(fd, 0);
    const std::size_t log_from = A.daemon->log().size();
    const auto p = hello_payload("127.0.0.1:1");
    auto b = frame_header(1, static_cast<std::uint32_t>(p.size()));
    b.insert(b.end(), p.begin(), p.end());
    ASSERT_TRUE(send_raw(fd, b));
    std::vector<std::uint8_t> challenge;
    ASSERT_TRUE(read_exact(fd, challenge, 16 + 48, kWait)) << "no Challenge (16-byte header, 48-byte payload)";
    EXPECT_EQ(challenge[6], 2) << "frame type 2 (Challenge) expected";
    auto auth = frame_header(3, 32);
    auth.resize(auth.size() + 32, 0x42);
    ASSERT_TRUE(send_raw(fd, auth));
    std::vector<std::uint8_t> reply;
    EXPECT_TRUE(closed_by_peer(fd, Millis(5000), &reply)) << "the leader did not close after a bad Auth";
    ASSERT_GE(reply.size(), 16U) << "expected a Refuse frame before the close";
    EXPECT_EQ(reply[6], 5) << "frame type 5 (Refuse) expected";
    const std::string text(reply.begin(), reply.end());
    EXPECT_NE(text.find("authentication failed"), std::string::npos) << "the Refuse should say why";
    ::close(fd);
    EXPECT_TRUE(A.daemon->log().wait_for("authentication failed", kWait, log_from))
        << "the leader should log the failed authentication";
  }

  // The leader keeps serving: alive, B still in sync, a replicated send goes through.
  ASSERT_TRUE(A.running()) << "the leader died of garbage on its replication port";
  ASSERT_TRUE(wait_in_sync(A, 2, kWait));
  const auto r = cli(A, {"send", kUri, "--persistent", "--acks", "replicated", "after"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(wait_queue(A, kUri, [](const DestinationStats& d) { return d.depth == 2; }, kWait, "2 messages queued"));

  // C never connected, all along.
  const auto as = stats(A).replication;
  const auto* xc = find_replica(as, C.addr);
  ASSERT_NE(xc, nullptr) << describe(as);
  EXPECT_FALSE(xc->connected);
  EXPECT_FALSE(xc->in_sync);
  EXPECT_FALSE(stats(C).replication.connected);
  EXPECT_EQ(A.log_text().find("follower " + C.addr + " connected"), std::string::npos)
      << "the wrong-secret follower connected at some point";
  EXPECT_EQ(C.log_text().find("replication: following " + A.addr + " at epoch"), std::string::npos)
      << "the wrong-secret follower followed the leader at some point";
}

// ---------------------------------------------------------------------------------------------
// 7. Forbidden: a follower accepting a producer or a consumer (it would fork the log); a refusal
// that does not say it is a follower; `shmbus promote` succeeding on a standalone daemon or on a
// daemon that already leads, or failing without saying why.
TEST_F(Replication_test, FollowerRefusesClients) {
  auto& A = add_node("A");
  auto& B = add_node("B");
  ASSERT_NO_FATAL_FAILURE(start(A, lead_args(A, {&B})));
  ASSERT_NO_FATAL_FAILURE(start(B, follow_args(B, A)));
  ASSERT_TRUE(wait_follows(B, A));

  const auto s = cli(B, {"send", "queue://q", "--persistent", "x"});
  EXPECT_EQ(s.exit_code, 4) << "a send on a follower: " << s.out << s.err;
  EXPECT_NE(s.err.find("follower"), std::string::npos) << "the refusal should say it is a follower: " << s.err;
  const auto rcv = cli(B, {"recv", "queue://q", "--count", "1", "--timeout", "100"});
  EXPECT_EQ(rcv.exit_code, 4) << "a receive on a follower (4: refused; 1 would be a timeout): " << rcv.out << rcv.err;
  EXPECT_NE(rcv.err.find("follower"), std::string::npos) << "the refusal should say it is a follower: " << rcv.err;

  // The API: NotLeader for producers and consumers alike.
  for (const bool producer : {true, false}) {
    SCOPED_TRACE(producer ? "producer" : "consumer");
    try {
      auto c = ConnectionFactory(B.dir, "repl-test-client").create_connection();
      auto session = c.create_session();
      if (producer) (void)session.create_producer(Queue("q"));
      else (void)session.create_consumer(Queue("q"));
      ADD_FAILURE() << "a follower accepted a " << (producer ? "producer" : "consumer");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::NotLeader) << e.what();
      EXPECT_NE(std::string(e.what()).find(A.addr), std::string::npos) << "the refusal should name the leader: "
                                                                       << e.what();
    }
  }
  const auto st = cli(B, {"stat"});
  EXPECT_EQ(st.exit_code, 0) << st.err;
  EXPECT_NE(st.out.find("replication: follower"), std::string::npos) << st.out;
  const auto js = cli(B, {"stat", "--json"});
  EXPECT_EQ(js.exit_code, 0) << js.err;
  EXPECT_NE(js.out.find("\"role\":\"follower\""), std::string::npos) << js.out;
  EXPECT_NE(js.out.find("\"leader\":\"" + A.addr + "\""), std::string::npos) << js.out;

  // promote on a daemon that does not replicate.
  auto& S = add_node("S");
  ASSERT_NO_FATAL_FAILURE(start(S, {}));
  const auto ps = cli(S, {"promote"});
  EXPECT_NE(ps.exit_code, 0) << ps.out;
  EXPECT_NE(ps.err.find("does not replicate"), std::string::npos) << ps.err;
  EXPECT_EQ(ps.out.find("promoted"), std::string::npos) << ps.out;

  // promote on the leader.
  const auto pa = cli(A, {"promote"});
  EXPECT_NE(pa.exit_code, 0) << pa.out;
  EXPECT_NE(pa.err.find("not a follower"), std::string::npos) << pa.err;

  // promote the follower (its leader gone), then once more.
  ASSERT_NO_FATAL_FAILURE(kill(A));
  const std::uint32_t e = promote(B);
  EXPECT_EQ(e >> 8, 2U) << "the second leadership (epoch = counter << 8 | index)";
  const auto again = cli(B, {"promote"});
  EXPECT_NE(again.exit_code, 0) << again.out;
  EXPECT_NE(again.err.find("not a follower"), std::string::npos) << again.err;
  EXPECT_EQ(stats(B).replication.epoch, e) << "a refused promotion must not change the epoch";

  // Promoted, it takes clients.
  const auto ok = cli(B, {"send", "queue://q", "--persistent", "x"});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
}

}  // namespace
}  // namespace shmbus::systest
