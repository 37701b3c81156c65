// What the daemon does to a topic's log in the background (docs/persistence.md, "Retention and
// compaction"): it deletes only segments every durable subscription has consumed, applies
// --retention-ms (a subscriber whose position was deleted resumes at the log start, in order), and
// with --compact-topics keeps the newest PERSISTENT message per key without losing any key's
// newest value. Real shmbusd processes with small segments (--segment-bytes 4096).
//
// Nothing sleeps to synchronise: tests wait on the daemon's stats or its log with deadlines.
#include "system_fixture.hpp"

#include <map>
#include <string>

namespace shmbus::systest {
namespace {

constexpr Millis kWait{10000};
constexpr Millis kAbsent{300};

class TopicLogSystem_test : public SystemTest {
 protected:
  const Topic kTopic{"ticks"};
  const std::string kUri = "topic://ticks";

  /// Sends PERSISTENT TextMessages "v<i>" for i in [first, last], with property key = keys(i)
  /// when keys is set.
  void publish(int first, int last, const std::function<std::string(int)>& keys = {}) {
    auto session = observer().create_session();
    ProducerOptions po;
    po.delivery_mode = DeliveryMode::Persistent;
    auto p = session.create_producer(kTopic, po);
    for (int i = first; i <= last; ++i) {
      TextMessage m;
      m.set_text("v" + std::to_string(i) + std::string(150, '.'));  // ~200 B records: a segment holds ~15
      if (keys) m.set_string_property("key", keys(i));
      ASSERT_EQ(p.send(m), Status::Ok) << "send " << i;
      // In chunks of 10, each logged before the next is sent: the agent writes one batch per
      // pass, and a batch is never split across segments, so this is what makes many segments.
      if (i % 10 == 0) {
        ASSERT_TRUE(wait_dest([i](const DestinationStats& d) { return d.log_end_offset >= static_cast<std::uint64_t>(i); },
                              std::to_string(i) + " records logged"));
      }
    }
  }
  std::optional<DestinationStats> wait_dest(const std::function<bool(const DestinationStats&)>& pred, const std::string& what) {
    const auto s = wait_stats(
        [&](const BusStats& b) {
          const auto* d = find_topic(b, kUri);
          return d && pred(*d);
        },
        kWait, kUri + ": " + what);
    if (!s) return std::nullopt;
    return *find_topic(*s, kUri);
  }
  /// The bodies' numbers a durable subscriber `name` receives until nothing more comes.
  std::vector<int> drain(const std::string& name, std::map<int, std::string>* key_of = nullptr) {
    auto session = observer().create_session(AckMode::Auto);
    auto sub = session.create_durable_subscriber(kTopic, name);
    std::vector<int> got;
    Message m;
    while (sub.receive(m, kAbsent).status == Status::Ok) {
      const std::string t(m.text());
      got.push_back(std::stoi(t.substr(1)));
      if (key_of) {
        (*key_of)[got.back()] = std::string(m.property("key").s);
      }
    }
    return got;
  }
  void subscribe(const std::string& name) {
    auto session = observer().create_session();
    session.create_durable_subscriber(kTopic, name).close();
  }
};

TEST_F(TopicLogSystem_test, OnlySegmentsEverySubscriptionHasConsumedAreDeleted) {
  start_daemon({"--segment-bytes", "4096"});
  subscribe("fast");
  subscribe("slow");
  publish(1, 200);
  ASSERT_TRUE(wait_dest([](const DestinationStats& d) { return d.log_end_offset == 200 && d.log_segments > 5; },
                        "200 records in more than 5 segments"));
  const auto fast = drain("fast");
  ASSERT_EQ(fast.size(), 200U);
  // "slow" has consumed nothing: nothing may go yet.
  const auto before = wait_dest([](const DestinationStats& d) {
    for (const auto& s : d.durable_subscriptions)
      if (s.name == "fast") return s.position == 200;
    return false;
  }, "fast at 200");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->log_start_offset, 0U) << "a segment 'slow' has not consumed was deleted";
  // slow reads 100 of them (client ack commits exactly that far), then closes.
  {
    auto session = observer().create_session(AckMode::Client);
    auto sub = session.create_durable_subscriber(kTopic, "slow");
    Message m;
    for (int i = 0; i < 100; ++i) ASSERT_EQ(sub.receive(m, kWait).status, Status::Ok) << "slow receive " << i;
    ASSERT_EQ(m.acknowledge(), Status::Ok);
  }
  const auto after = wait_dest([](const DestinationStats& d) { return d.log_start_offset > 0; },
                               "segments below slow's position 100 deleted");
  ASSERT_TRUE(after);
  EXPECT_LE(after->log_start_offset, 100U) << "a segment slow has not consumed was deleted";
  // slow still gets exactly the other 100, in order.
  const auto rest = drain("slow");
  ASSERT_EQ(rest.size(), 100U);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(rest[static_cast<std::size_t>(i)], 101 + i);
}

TEST_F(TopicLogSystem_test, TimeRetentionDeletesOldSegmentsAndALateSubscriberResumesAtTheLogStart) {
  start_daemon({"--segment-bytes", "4096", "--retention-ms", "1"});
  subscribe("late");
  publish(1, 200);
  const auto d = wait_dest([](const DestinationStats& x) { return x.log_end_offset == 200 && x.log_start_offset > 0; },
                           "old segments deleted by --retention-ms 1");
  ASSERT_TRUE(d);
  const auto got = drain("late");
  ASSERT_FALSE(got.empty()) << "the active segment is never deleted";
  EXPECT_LT(got.size(), 200U);
  EXPECT_EQ(got.back(), 200) << "the newest message is kept";
  for (std::size_t i = 1; i < got.size(); ++i) EXPECT_EQ(got[i], got[i - 1] + 1) << "a gap inside what was kept";
  EXPECT_GE(static_cast<std::uint64_t>(got.front()), d->log_start_offset + 1) << "resumed before the log start";
}

TEST_F(TopicLogSystem_test, CompactionKeepsTheNewestValueOfEveryKey) {
  start_daemon({"--segment-bytes", "4096", "--compact-topics", "--compact-every-ms", "50"});
  subscribe("view");
  publish(1, 300, [](int i) { return "k" + std::to_string(i % 10); });
  ASSERT_TRUE(wait_dest([](const DestinationStats& x) { return x.log_end_offset == 300; }, "300 records"));
  ASSERT_TRUE(daemon_->log().wait_for("compacted", kWait)) << "no compaction logged:\n" << daemon_->log().text();
  std::map<int, std::string> key_of;
  const auto got = drain("view", &key_of);
  EXPECT_LT(got.size(), 300U) << "nothing was compacted away";
  for (std::size_t i = 1; i < got.size(); ++i) EXPECT_LT(got[i - 1], got[i]) << "order lost";
  std::map<std::string, int> newest;
  for (int v : got) newest[key_of[v]] = std::max(newest[key_of[v]], v);
  ASSERT_EQ(newest.size(), 10U) << "a key lost every value";
  for (int k = 0; k < 10; ++k) EXPECT_EQ(newest["k" + std::to_string(k)], 290 + (k == 0 ? 10 : k)) << "key k" << k;
}

}  // namespace
}  // namespace shmbus::systest
