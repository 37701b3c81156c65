// Topics across real processes: fan-out with ordering and integrity, and lapping.
#include "system_fixture.hpp"

namespace shmbus::systest {
namespace {

using Fields = std::map<std::string, std::string>;

std::uint64_t num(const Fields& f, const std::string& k) {
  const auto it = f.find(k);
  if (it == f.end()) {
    ADD_FAILURE() << "summary has no field '" << k << "'";
    return ~0ULL;
  }
  return std::stoull(it->second);
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class TopicSystem_test : public SystemTest {};

// Forbidden: a subscriber missing any message, seeing one twice, seeing a producer's messages out
// of order, or a corrupted payload. The ring (2^19 slots) holds all 300k messages, so no lapping.
TEST_F(TopicSystem_test, ThreeProducersThreeSubscribersDeliverEveryMessageInOrder) {
  constexpr int kProducers = 3;
  constexpr int kSubscribers = 3;
  constexpr std::uint64_t kEach = 100'000;
  const std::vector<std::string> geo{"--topic", "fanout", "--capacity", "524288", "--max-size", "64"};

  std::vector<Child> subs;
  for (int i = 0; i < kSubscribers; ++i)
    subs.push_back(agent("subscribe", with(geo, {"--count", std::to_string(kEach * kProducers)})));
  for (auto& s : subs) ASSERT_TRUE(expect_line(s, "ready", kStartDeadline, "subscriber attached"));
  ASSERT_TRUE(wait_topic("topic://fanout", kSubscribers, kStartDeadline));

  std::vector<Child> prods;
  for (int k = 1; k <= kProducers; ++k)
    prods.push_back(agent("produce", with(geo, {"--id", std::to_string(k), "--count", std::to_string(kEach)})));
  for (auto& p : prods) {
    ASSERT_TRUE(expect_line(p, "done", Millis(60000), "producer sent all its messages"));
    expect_clean_exit(p, Millis(10000), "producer");
  }
  for (auto& s : subs) {
    const auto f = expect_line(s, "phase=1", Millis(60000), "subscriber received all 300000 messages");
    ASSERT_TRUE(f);
    std::cout << "[ info ] subscriber: received=" << f->at("received") << " lost=" << f->at("lost") << "\n";
    EXPECT_EQ(num(*f, "received"), kEach * kProducers);
    EXPECT_EQ(num(*f, "lost"), 0u) << "nobody may be lapped in a ring larger than the whole run";
    EXPECT_EQ(num(*f, "bad"), 0u) << "checksum or size mismatch";
    EXPECT_EQ(num(*f, "disorder"), 0u) << "duplicate or out-of-order message";
    EXPECT_EQ(num(*f, "gaps"), 0u) << "a producer's sequence skipped";
    for (int k = 1; k <= kProducers; ++k) {
      const auto p = "p" + std::to_string(k);
      EXPECT_EQ(num(*f, p + ".count"), kEach) << p;
      EXPECT_EQ(num(*f, p + ".first"), 1u) << p;
      EXPECT_EQ(num(*f, p + ".last"), kEach) << p;
    }
    expect_clean_exit(s, Millis(10000), "subscriber");
  }
  const auto st = wait_stats([](const BusStats& s) { return find_topic(s, "topic://fanout") != nullptr; }, Millis(1000),
                             "topic://fanout in stats");
  ASSERT_TRUE(st);
  const auto* d = find_topic(*st, "topic://fanout");
  EXPECT_EQ(d->tail, kEach * kProducers) << "every claim was a message: no holes, no revoked claims";
  EXPECT_EQ(d->holes_repaired, 0u);
}

// A subscriber that does not read while a producer sends more than the ring holds is told exactly
// how many it lost (received + lost == sent, and the first message it gets is lost + 1), then
// receives later messages in order without further loss.
TEST_F(TopicSystem_test, LappedSubscriberReportsExactLossThenReceivesNewMessages) {
  constexpr std::uint64_t kCapacity = 1024;
  constexpr std::uint64_t kFirst = 5 * kCapacity;  // laps the idle subscriber several times
  constexpr std::uint64_t kSecond = 500;
  const std::vector<std::string> geo{"--topic", "lap", "--capacity", std::to_string(kCapacity), "--max-size", "64"};

  auto sub = agent("subscribe", with(geo, {"--hold", "--count",
                                           std::to_string(kFirst) + "," + std::to_string(kFirst + kSecond)}));
  ASSERT_TRUE(expect_line(sub, "ready", kStartDeadline, "subscriber attached"));
  ASSERT_TRUE(wait_topic("topic://lap", 1, kStartDeadline));

  auto p1 = agent("produce", with(geo, {"--id", "7", "--count", std::to_string(kFirst)}));
  ASSERT_TRUE(expect_line(p1, "done", Millis(30000), "first producer finished"));
  expect_clean_exit(p1, Millis(10000), "first producer");
  ASSERT_TRUE(wait_stats(
      [&](const BusStats& s) {
        const auto* d = find_topic(s, "topic://lap");
        return d && d->tail == kFirst && d->subscribers.size() == 1 && d->subscribers[0].position == 0;
      },
      Millis(2000), "tail at " + std::to_string(kFirst) + " and the idle subscriber still at position 0"));

  ASSERT_TRUE(sub.write_stdin("go\n"));
  const auto f1 = expect_line(sub, "phase=1", Millis(30000), "subscriber drained the lapped ring");
  ASSERT_TRUE(f1);
  const auto lost = num(*f1, "lost");
  const auto received = num(*f1, "received");
  std::cout << "[ info ] lapped subscriber: received=" << received << " lost=" << lost << " lapped=" << f1->at("lapped")
            << " first=" << f1->at("p7.first") << "\n";
  EXPECT_EQ(received + lost, kFirst) << "every sent message is either received or counted as lost";
  EXPECT_GE(lost, kFirst - kCapacity) << "at least everything overwritten is lost";
  EXPECT_GE(num(*f1, "lapped"), 1u);
  EXPECT_EQ(num(*f1, "p7.first"), lost + 1) << "the loss count matches the first message actually received";
  EXPECT_EQ(num(*f1, "p7.last"), kFirst);
  EXPECT_EQ(num(*f1, "p7.count"), received);
  EXPECT_EQ(num(*f1, "gaps"), 0u) << "no silent loss beyond the reported one";
  EXPECT_EQ(num(*f1, "disorder"), 0u);
  EXPECT_EQ(num(*f1, "bad"), 0u);
  EXPECT_EQ(num(*f1, "lost_total"), lost) << "MessageConsumer::lost_total agrees with the Lapped results";
  EXPECT_TRUE(wait_stats(
      [&](const BusStats& s) {
        const auto* d = find_topic(s, "topic://lap");
        return d && d->subscribers.size() == 1 && d->subscribers[0].lost == lost &&
               d->subscribers[0].received == received;
      },
      Millis(2000), "stat showing the subscriber with lost=" + std::to_string(lost)));

  auto p2 = agent("produce", with(geo, {"--id", "7", "--start", std::to_string(kFirst + 1), "--count",
                                        std::to_string(kSecond)}));
  ASSERT_TRUE(expect_line(p2, "done", Millis(30000), "second producer finished"));
  const auto f2 = expect_line(sub, "phase=2", Millis(30000), "subscriber received the new messages");
  ASSERT_TRUE(f2);
  EXPECT_EQ(num(*f2, "received"), received + kSecond) << "every new message arrives";
  EXPECT_EQ(num(*f2, "lost"), lost) << "no further loss once caught up";
  EXPECT_EQ(num(*f2, "p7.last"), kFirst + kSecond);
  EXPECT_EQ(num(*f2, "gaps"), 0u);
  EXPECT_EQ(num(*f2, "disorder"), 0u);
  expect_clean_exit(p2, Millis(10000), "second producer");
  expect_clean_exit(sub, Millis(10000), "subscriber");
}

}  // namespace
}  // namespace shmbus::systest
