// Automatic failover (shmbusd --zookeeper, docs/replication.md, docs/zookeeper.md): three daemons
// and a real ZooKeeper on loopback (scripts/zookeeper.sh). Forbidden: no daemon taking over after
// the leader is SIGKILLed; the new leader's epoch not above the old one; a message whose
// replicated send returned Ok missing or delivered twice on the new leader; the old leader, back
// with its own arguments, not following the new one.
#include "replication_fixture.hpp"

#include <cstdlib>
#include <filesystem>
#include <set>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace shmbus::systest {
namespace {

constexpr Millis kWait{30000};
const std::string kQueue = "zkjobs";
const std::string kLog = "queue.zkjobs";

class ReplicationZk_test : public ReplicationTest {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/shmbus-repl-zk.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    port_ = free_loopback_port();
    auto c = Child::spawn({"/bin/bash", SHMBUS_ZK_SCRIPT, "start", dir_, std::to_string(port_)}, {});
    const auto st = c.wait_exit(Millis(90000));
    if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      error_ = "ZooKeeper did not start (scripts/zookeeper.sh start " + dir_ + "; needs the Debian package zookeeper): " +
               (st ? describe_status(*st) : std::string("still running after 90 s"));
  }
  static void TearDownTestSuite() {
    if (dir_.empty()) return;
    auto c = Child::spawn({"/bin/bash", SHMBUS_ZK_SCRIPT, "stop", dir_}, {});
    (void)c.wait_exit(Millis(30000));
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void SetUp() override {
    ReplicationTest::SetUp();
    ASSERT_TRUE(error_.empty()) << error_;
  }
  std::vector<std::string> zk_args(const ReplNode& n) const {
    return {"--listen", n.addr, "--zookeeper", "127.0.0.1:" + std::to_string(port_), "--zk-root",
            "/shmbus/zk-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter_)};
  }

  static inline std::string dir_, error_;
  static inline std::uint16_t port_ = 0;
  mutable int counter_ = 0;
};

TEST_F(ReplicationZk_test, AKilledLeaderIsReplacedByAnElectedFollowerWithNoReplicatedSendLost) {
  auto& A = add_node("A");
  auto& B = add_node("B");
  auto& C = add_node("C");
  const auto args = zk_args(A);
  const auto with_self = [&](const ReplNode& n) {
    auto v = args;
    v[1] = n.addr;
    return v;
  };
  ASSERT_NO_FATAL_FAILURE(start(A, with_self(A)));
  ASSERT_TRUE(wait_repl(A, [](const ReplicationStats& r) { return r.role == "leader"; }, kWait, "A elected (first candidate)"));
  ASSERT_NO_FATAL_FAILURE(start(B, with_self(B)));
  ASSERT_NO_FATAL_FAILURE(start(C, with_self(C)));
  ASSERT_TRUE(wait_in_sync(A, 3, kWait));
  const std::uint32_t epoch_a = stats(A).replication.epoch;

  // Replicated sends until 500 were acknowledged, then the leader dies mid-stream.
  auto p = agent(A, "pproduce", {"--queue", kQueue, "--id", "1", "--start", "1", "--count", "1000000", "--acks",
                                 "replicated", "--capacity", "65536", "--max-size", "64", "--send-timeout-ms", "10000"});
  ASSERT_TRUE(expect_line(p, "ready", kWait, "pproduce attached"));
  std::set<std::uint64_t> acked;
  std::uint64_t next = 1;
  const auto collect = [&](std::size_t until, Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    while (acked.size() < until && Clock::now() < deadline) {
      const auto line = p.read_line(std::chrono::duration_cast<Millis>(deadline - Clock::now()));
      if (!line) return;
      const auto f = fields(*line);
      if (line->rfind("replicated", 0) == 0) {
        const std::uint64_t s = std::stoull(f.at("seq"));
        EXPECT_EQ(s, next) << "replicated acks out of order";
        next = s + 1;
        acked.insert(s);
      }
    }
  };
  collect(500, kWait);
  ASSERT_EQ(acked.size(), 500U) << "the leader acknowledged only " << acked.size() << " replicated sends";
  ASSERT_NO_FATAL_FAILURE(kill(A));
  collect(~std::size_t{0}, kWait);  // what it printed after the kill (until it exits)
  ASSERT_TRUE(p.wait_exit(kWait).has_value()) << "pproduce did not exit after the leader's death";

  // ZooKeeper notices A's session is gone and elects B or C (no promote command).
  ReplNode* leader = nullptr;
  const auto deadline = Clock::now() + Millis(60000);
  while (leader == nullptr && Clock::now() < deadline) {
    for (ReplNode* n : {&B, &C}) {
      const auto r = stats(*n).replication;
      if (r.role == "leader") leader = n;
    }
    if (leader == nullptr) std::this_thread::yield();  // each stats() is a round trip to a daemon
  }
  ASSERT_NE(leader, nullptr) << "no follower was elected within 60 s of the leader's death";
  ReplNode& other = leader == &B ? C : B;
  const auto lr = stats(*leader).replication;
  EXPECT_GT(lr.epoch, epoch_a) << "an election must start a newer epoch";
  EXPECT_TRUE(wait_repl(other, [&](const ReplicationStats& r) { return r.role == "follower" && r.leader == leader->addr && r.connected; },
                        kWait, "the other follower follows the elected leader"));

  // Every acknowledged send is on the elected leader, once.
  ASSERT_TRUE(wait_queue(*leader, "queue://" + kQueue, [&](const DestinationStats& d) { return d.restored >= acked.size(); },
                         kWait, "the acknowledged messages restored on the new leader"));
  const std::string out = root_ + "/drain.bin";
  auto c = agent(*leader, "qconsume", {"--queue", kQueue, "--ack", "auto", "--out", out, "--capacity", "65536", "--max-size", "64"});
  ASSERT_TRUE(expect_line(c, "ready", kWait, "qconsume attached"));
  ASSERT_TRUE(wait_queue(*leader, "queue://" + kQueue, [](const DestinationStats& d) { return d.depth == 0 && d.in_flight == 0; },
                         kWait, "everything consumed"));
  c.write_stdin("stop\n");
  const auto done = expect_line(c, "done", kWait, "qconsume drained");
  ASSERT_TRUE(done);
  std::map<std::uint64_t, int> times;
  for (const auto& r : read_records(out)) ++times[r.seq];
  std::vector<std::uint64_t> missing, twice;
  for (auto s : acked)
    if (!times.count(s)) missing.push_back(s);
  for (const auto& [s, n] : times) {
    if (n > 1) twice.push_back(s);
    EXPECT_LE(s, next) << "a message that was never sent";
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " acknowledged replicated sends lost, first " << missing.front();
  EXPECT_TRUE(twice.empty()) << twice.size() << " delivered twice";

  // The old leader comes back with its own arguments: ZooKeeper has a leader, so it follows it.
  ASSERT_NO_FATAL_FAILURE(restart(A));
  EXPECT_TRUE(wait_repl(A, [&](const ReplicationStats& r) { return r.role == "follower" && r.leader == leader->addr && r.connected; },
                        kWait, "the old leader follows the elected one"));
}

}  // namespace
}  // namespace shmbus::systest
