// shmbusd's life cycle across processes: single instance, clean shutdown on signals, dead clients.
#include "system_fixture.hpp"

#include <csignal>
#include <sys/wait.h>

namespace shmbus::systest {
namespace {

class DaemonSystem_test : public SystemTest {
 protected:
  // A shutdown with an attached, blocked receiver: it must learn the daemon is gone, and the
  // daemon must still leave nothing behind.
  void shutdown_with_blocked_receiver(int sig) {
    auto rx = agent("block-receive", {"--topic", "shut", "--wait", "park", "--timeout-ms", "30000"});
    ASSERT_TRUE(expect_line(rx, "ready", kStartDeadline, "receiver attached"));
    ASSERT_TRUE(wait_topic("topic://shut", 1, kStartDeadline));
    ASSERT_FALSE(shm_objects().empty());
    stop_daemon_and_check_clean(sig);
    EXPECT_TRUE(daemon_->log().text().find(sig == SIGINT ? "received SIGINT" : "received SIGTERM") !=
                std::string::npos);
    const auto f = expect_line(rx, "status=", Millis(2000), "the blocked receiver returned");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->at("status"), "daemon-gone");
    expect_clean_exit(rx, Millis(5000), "receiver");
  }
};

TEST_F(DaemonSystem_test, SecondDaemonOnSameDirRefusesWithClearMessage) {
  const auto first_pid = daemon_->child().pid();
  auto second = Child::spawn({SHMBUSD_PATH, "--dir", dir_}, {false, true, true});
  std::string out, err;
  ASSERT_TRUE(second.drain(Millis(10000), out, err)) << "the second shmbusd should exit, not serve";
  const auto st = second.wait_exit(Millis(10000));
  ASSERT_TRUE(st) << "the second shmbusd did not exit";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) != 0) << describe_status(*st);
  EXPECT_NE(err.find("already serves"), std::string::npos) << "stderr: " << err;
  EXPECT_NE(err.find("pid " + std::to_string(first_pid)), std::string::npos) << "names the running daemon: " << err;
  const auto s = observer().stats();
  EXPECT_EQ(s.daemon_pid, first_pid) << "the first daemon keeps serving";
  EXPECT_FALSE(shm_objects().empty()) << "the refused daemon must not remove the running one's shared memory";
}

TEST_F(DaemonSystem_test, SigtermShutsDownCleanlyWithClientsAttached) { shutdown_with_blocked_receiver(SIGTERM); }

TEST_F(DaemonSystem_test, SigintShutsDownCleanlyWithClientsAttached) { shutdown_with_blocked_receiver(SIGINT); }

// Forbidden: a SIGKILLed client's consumer (or the client itself) lingering in stats.
TEST_F(DaemonSystem_test, KilledClientIsRemovedFromStats) {
  auto sub = agent("subscribe", {"--topic", "gone", "--hold", "--count", "1"});
  ASSERT_TRUE(expect_line(sub, "ready", kStartDeadline, "subscriber attached"));
  ASSERT_TRUE(wait_topic("topic://gone", 1, kStartDeadline));
  const auto pid = sub.pid();
  sub.kill(SIGKILL);
  ASSERT_TRUE(sub.wait_exit(Millis(5000)));
  EXPECT_TRUE(wait_stats(
      [&](const BusStats& s) {
        const auto* d = find_topic(s, "topic://gone");
        for (const auto& c : s.clients)
          if (c.pid == pid) return false;
        return d && d->subscribers.empty();
      },
      Millis(2000), "the killed client (pid " + std::to_string(pid) + ") and its consumer gone"));
  EXPECT_TRUE(daemon_->log().wait_for("(pid " + std::to_string(pid) + ") disconnected; released 1 endpoint(s)",
                                      Millis(1000)) ||
              daemon_->log().wait_for("(pid " + std::to_string(pid) + ") died", Millis(0)))
      << "the daemon logs the client's end and the endpoint it released";
}

// Forbidden: a topic with no producer and no consumer keeping its shared memory past the idle
// timeout (a long-running daemon would leak), or a topic in use being removed.
TEST_F(DaemonSystem_test, UnusedTopicIsRemovedAfterIdleTimeout) {
  stop_daemon_and_check_clean(SIGTERM);
  start_daemon({"--idle-topic-timeout", "0"});
  auto session = observer().create_session();
  {
    auto keep = session.create_consumer(Topic("kept"));
    {
      auto p = session.create_producer(Topic("idle"), {}, {64, 64});
      ASSERT_EQ(shm_objects().size(), 3u) << "region + topic://kept + topic://idle";
    }
    EXPECT_TRUE(wait_stats([](const BusStats& s) { return !find_topic(s, "topic://idle") && find_topic(s, "topic://kept"); },
                           Millis(2000), "topic://idle removed once its only producer closed; topic://kept still there"));
    EXPECT_EQ(shm_objects().size(), 2u) << "the removed topic's shared memory is unlinked";
    EXPECT_TRUE(daemon_->log().wait_for("removed topic://idle", Millis(1000)));
  }
  EXPECT_TRUE(wait_stats([](const BusStats& s) { return s.destinations.empty(); }, Millis(2000),
                         "topic://kept removed after its consumer closed"));
  // A later open creates a fresh, working topic under the same name.
  auto c = session.create_consumer(Topic("idle"), {WaitStrategy::Spin});
  auto p = session.create_producer(Topic("idle"));
  ASSERT_EQ(p.send("again"), Status::Ok);
  Message m;
  ASSERT_EQ(c.receive(m, std::chrono::seconds(2)).status, Status::Ok);
  EXPECT_EQ(m.text(), "again");
}

const DestinationStats* find_dest(const BusStats& s, const std::string& uri) {
  for (const auto& d : s.destinations)
    if (d.uri == uri) return &d;
  return nullptr;
}

TEST_F(DaemonSystem_test, UnusedQueueIsRemovedOnlyOnceItIsEmpty) {
  stop_daemon_and_check_clean(SIGTERM);
  start_daemon({"--idle-topic-timeout", "0"});
  auto session = observer().create_session();
  {
    auto p = session.create_producer(Queue("held"), {}, {16, 64});
    ASSERT_EQ(p.send("one"), Status::Ok);
    ASSERT_EQ(p.send("two"), Status::Ok);
    auto e = session.create_consumer(Queue("empty"), {}, {16, 64});
  }
  // Both became unused in the same moment; the empty one goes, the one holding messages stays.
  EXPECT_TRUE(daemon_->log().wait_for("removed queue://empty", Millis(2000)));
  const auto s = observer().stats();
  const auto* held = find_dest(s, "queue://held");
  ASSERT_NE(held, nullptr) << "a queue holding messages must never be removed";
  EXPECT_EQ(held->depth, 2U);
  {
    auto c = session.create_consumer(Queue("held"), {WaitStrategy::Spin}, {16, 64});
    Message m;
    ASSERT_EQ(c.receive(m, std::chrono::seconds(2)).status, Status::Ok);
    EXPECT_EQ(m.text(), "one");
    ASSERT_EQ(c.receive(m, std::chrono::seconds(2)).status, Status::Ok);
    EXPECT_EQ(m.text(), "two");
  }
  EXPECT_TRUE(wait_stats([](const BusStats& st) { return find_dest(st, "queue://held") == nullptr; }, Millis(3000),
                         "queue://held removed once emptied and unused"));
  EXPECT_TRUE(daemon_->log().wait_for("removed queue://held", Millis(1000)));
}

}  // namespace
}  // namespace shmbus::systest
