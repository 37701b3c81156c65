// MessageConsumer::set_message_listener through a real shmbusd: asynchronous delivery on the
// consumer's own thread, AUTO acks when the listener returns (not before), a throwing listener
// gets the message again, topics too, and the misuse errors.
#include "system_fixture.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace shmbus::systest {
namespace {

using namespace std::chrono_literals;

class ListenerSystem_test : public SystemTest {};

/// What a listener saw, with a condition variable to wait on (no sleeps).
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> texts;
  std::vector<bool> redelivered;
  std::vector<std::uint32_t> counts;
  void add(const Message& m) {
    std::lock_guard lk(mu);
    texts.emplace_back(m.text());
    redelivered.push_back(m.redelivered());
    counts.push_back(m.delivery_count());
    cv.notify_all();
  }
  bool wait_for_count(std::size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, timeout, [&] { return texts.size() >= n; });
  }
};

const DestinationStats* find_queue(const BusStats& s, const std::string& uri) {
  for (const auto& d : s.destinations)
    if (d.uri == uri) return &d;
  return nullptr;
}

TEST_F(ListenerSystem_test, AutoAckHappensWhenTheListenerReturnsNotBefore) {
  auto s = observer().create_session();
  auto p = s.create_producer(Queue("lsn"), {}, {16, 64});
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool release = false;
  std::atomic<int> entered{0};
  auto c = s.create_consumer(Queue("lsn"), {}, {16, 64});
  c.set_message_listener([&](const Message&) {
    entered.fetch_add(1);
    std::unique_lock lk(gate_mu);
    gate_cv.wait(lk, [&] { return release; });
  });

  ASSERT_EQ(p.send("held by the listener"), Status::Ok);

  EXPECT_TRUE(wait_stats(
      [](const BusStats& st) {
        const auto* q = find_queue(st, "queue://lsn");
        return q != nullptr && q->in_flight == 1 && q->depth == 0;
      },
      2000ms, "the message delivered to the listener and not yet acknowledged"));
  EXPECT_EQ(entered.load(), 1);
  {
    std::lock_guard lk(gate_mu);
    release = true;
  }
  gate_cv.notify_all();
  EXPECT_TRUE(wait_stats(
      [](const BusStats& st) {
        const auto* q = find_queue(st, "queue://lsn");
        return q != nullptr && q->in_flight == 0 && q->depth == 0;
      },
      2000ms, "acknowledged once the listener returned"));
}

TEST_F(ListenerSystem_test, AListenerThatThrowsGetsTheMessageAgainFlaggedRedelivered) {
  auto s = observer().create_session();
  auto p = s.create_producer(Queue("boom"), {}, {16, 64});
  Seen seen;
  std::atomic<int> calls{0};
  auto c = s.create_consumer(Queue("boom"), {}, {16, 64});
  c.set_message_listener([&](const Message& m) {
    seen.add(m);
    if (calls.fetch_add(1) == 0) throw std::runtime_error("first attempt fails");
  });

  ASSERT_EQ(p.send("retry me"), Status::Ok);

  ASSERT_TRUE(seen.wait_for_count(2, 2000ms)) << "the message comes back after the listener threw";
  std::lock_guard lk(seen.mu);
  EXPECT_EQ(seen.texts[0], "retry me");
  EXPECT_EQ(seen.texts[1], "retry me");
  EXPECT_FALSE(seen.redelivered[0]);
  EXPECT_TRUE(seen.redelivered[1]);
  EXPECT_EQ(seen.counts[1], 2U);
}

TEST_F(ListenerSystem_test, TopicListenerGetsEveryMessageInOrder) {
  auto s = observer().create_session();
  Seen seen;
  auto c = s.create_consumer(Topic("lsn"));
  c.set_message_listener([&](const Message& m) { seen.add(m); });
  auto p = s.create_producer(Topic("lsn"));

  for (int i = 0; i < 200; ++i) ASSERT_EQ(p.send("m" + std::to_string(i)), Status::Ok);

  ASSERT_TRUE(seen.wait_for_count(200, 5000ms));
  std::lock_guard lk(seen.mu);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(seen.texts[static_cast<std::size_t>(i)], "m" + std::to_string(i));
}

TEST_F(ListenerSystem_test, ReceiveOnAListenedConsumerIsClosedAndASecondListenerIsRefused) {
  auto s = observer().create_session();
  auto c = s.create_consumer(Queue("twice"), {}, {16, 64});
  c.set_message_listener([](const Message&) {});
  Message m;

  EXPECT_EQ(c.receive(m, 10ms).status, Status::Closed);
  EXPECT_EQ(c.receive_no_wait(m).status, Status::Closed);
  try {
    c.set_message_listener([](const Message&) {});
    FAIL() << "a second listener was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
  }
  c.close();  // joins the listener thread; the test would hang here if it did not stop
}

}  // namespace
}  // namespace shmbus::systest
