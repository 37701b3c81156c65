// Request/reply with temporary destinations (JMS TemporaryQueue/TemporaryTopic), across real
// processes: a requester's temporary queue as reply-to, a bus_agent replier answering with the
// request's correlation id; temporary destinations vanishing with their connection (closed, or
// its process SIGKILLed): gone from stat and from /dev/shm; only the creating connection
// consuming from one; explicit remove(), refused while a consumer is open; a deleted temporary
// name never silently re-created as an ordinary destination; and what producers left on a
// deleted one get (docs/api.md, "Request/reply and temporary destinations").
//
// Forbidden: a reply lost or carrying another correlation id; a temporary destination (its stat
// entry or its shm object) outliving its connection; another connection consuming from it; an
// open of a deleted temporary name creating a destination; a producer left on a deleted one
// crashing or failing to close.
#include "common/paths.hpp"
#include "system_fixture.hpp"

#include <algorithm>
#include <csignal>
#include <set>

namespace shmbus::systest {
namespace {

constexpr Millis kWait{10000};  // generous (docs/testing.md): the daemon acts within milliseconds
constexpr char kRequests[] = "requests";
constexpr std::uint32_t kMaxSize = 1024;  // a framed request with its headers fits

class RequestReplySystem_test : public SystemTest {
 protected:
  Connection connect(const std::string& name) { return ConnectionFactory(dir_, name).create_connection(); }

  const DestinationStats* find(const BusStats& s, const std::string& uri) { return find_topic(s, uri); }

  /// The shm object name of `uri` while it exists (stats give its dest id).
  std::string shm_name_of(const std::string& uri) {
    const auto s = observer().stats();
    const auto* d = find(s, uri);
    if (!d) {
      ADD_FAILURE() << uri << " is not listed by stat";
      return {};
    }
    return common::dest_shm_name(canonical_, d->dest_id);
  }

  bool shm_exists(const std::string& name) {
    const auto all = shm_objects();
    return std::find(all.begin(), all.end(), name) != all.end();
  }

  /// Waits until stat no longer lists `uri`, then expects its shm object gone too.
  void expect_vanished(const std::string& uri, const std::string& shm, const std::string& why) {
    EXPECT_TRUE(wait_stats([&](const BusStats& s) { return find(s, uri) == nullptr; }, kWait, uri + " gone " + why));
    EXPECT_FALSE(shm_exists(shm)) << shm << " (" << uri << ") still in /dev/shm " << why;
  }

  /// Runs `f`, expecting Error(code) whose message contains `needle`.
  template <class F>
  void expect_error(F&& f, ErrorCode code, const std::string& needle, const std::string& what) {
    try {
      f();
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << what << ": " << to_string(e.code()) << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << what << ": " << e.what();
    }
  }
};

// The JMS request/reply pattern between two processes: this one requests, bus_agent replies.
TEST_F(RequestReplySystem_test, RequesterGetsEachReplyOnItsTemporaryQueueWithTheMatchingCorrelationId) {
  constexpr int kRequestsSent = 3;
  auto replier = agent("replier", {"--queue", kRequests, "--count", std::to_string(kRequestsSent), "--max-size",
                                   std::to_string(kMaxSize), "--capacity", "64"});
  ASSERT_TRUE(expect_line(replier, "ready", kWait, "the replier's consumer on queue://requests"));

  auto conn = connect("requester");
  auto session = conn.create_session();
  const TemporaryQueue reply_to = session.create_temporary_queue({64, kMaxSize});
  EXPECT_EQ(reply_to.name().rfind("TMP.", 0), 0U) << reply_to.name();
  EXPECT_EQ(Destination::parse(reply_to.uri()).name(), reply_to.name()) << "a valid destination for any client";
  auto replies = session.create_consumer(reply_to);
  auto requests = session.create_producer(Queue(kRequests), {}, {64, kMaxSize});

  for (int i = 1; i <= kRequestsSent; ++i) {
    TextMessage req("question " + std::to_string(i));
    req.set_reply_to(reply_to);
    req.set_correlation_id("req-" + std::to_string(i));
    ASSERT_EQ(requests.send(req), Status::Ok);
  }
  for (int i = 1; i <= kRequestsSent; ++i) {
    const auto line = expect_line(replier, "replied", kWait, "the replier answering request " + std::to_string(i));
    ASSERT_TRUE(line);
    EXPECT_EQ(line->at("to"), reply_to.uri());
    EXPECT_EQ(line->at("correlation"), "req-" + std::to_string(i));
    EXPECT_EQ(line->at("status"), "ok");
  }
  std::set<std::string> answered;
  Message m;
  for (int i = 1; i <= kRequestsSent; ++i) {
    ASSERT_EQ(replies.receive(m, kWait).status, Status::Ok) << "reply " << i;
    const std::string cid(m.correlation_id());
    EXPECT_EQ(m.text(), "reply:question " + cid.substr(4)) << "the reply answers the request its correlation id names";
    EXPECT_EQ(m.destination(), reply_to.uri());
    answered.insert(cid);
  }
  EXPECT_EQ(answered, (std::set<std::string>{"req-1", "req-2", "req-3"}));
  EXPECT_EQ(replies.receive_no_wait(m).status, Status::Timeout) << "exactly one reply per request";
  const auto done = expect_line(replier, "done", kWait, "the replier's summary");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->at("replied"), "3");
  EXPECT_EQ(done->at("failed"), "0");
  expect_clean_exit(replier, kWait, "replier");
}

TEST_F(RequestReplySystem_test, ReplyToATemporaryTopicReachesItsSubscriber) {
  auto replier = agent("replier", {"--queue", kRequests, "--max-size", std::to_string(kMaxSize), "--capacity", "64"});
  ASSERT_TRUE(expect_line(replier, "ready", kWait, "the replier"));
  auto conn = connect("requester");
  auto session = conn.create_session();
  const TemporaryTopic reply_to = session.create_temporary_topic({64, kMaxSize});
  auto replies = session.create_consumer(reply_to);  // before the request: a topic keeps nothing
  auto requests = session.create_producer(Queue(kRequests), {}, {64, kMaxSize});
  TextMessage req("ping");
  req.set_reply_to(reply_to);
  req.set_correlation_id("t-1");
  ASSERT_EQ(requests.send(req), Status::Ok);
  Message m;
  ASSERT_EQ(replies.receive(m, kWait).status, Status::Ok);
  EXPECT_EQ(m.text(), "reply:ping");
  EXPECT_EQ(m.correlation_id(), "t-1");
  EXPECT_EQ(m.destination(), reply_to.uri());
  expect_clean_exit(replier, kWait, "replier");
}

TEST_F(RequestReplySystem_test, TemporaryNamesAreGeneratedUniqueReservedAndFlaggedInStat) {
  auto a = connect("a");
  auto b = connect("b");
  auto sa = a.create_session();
  auto sb = b.create_session();
  const auto q1 = sa.create_temporary_queue({16, 64});
  const auto q2 = sa.create_temporary_queue({16, 64});
  const auto t1 = sa.create_temporary_topic({16, 64});
  const auto q3 = sb.create_temporary_queue({16, 64});
  const std::set<std::string> names{q1.name(), q2.name(), q3.name(), t1.name()};
  EXPECT_EQ(names.size(), 4U) << "every temporary destination gets its own name";
  for (const auto& n : names) {
    EXPECT_EQ(n.rfind("TMP.", 0), 0U) << n;
    EXPECT_NO_THROW((void)Queue(n)) << n << " is a valid queue name (at most 60 characters)";
  }
  auto ordinary = sa.create_producer(Queue("plain"), {}, {16, 64});
  const auto s = observer().stats();
  for (const auto& uri : {q1.uri(), q2.uri(), q3.uri(), t1.uri()}) {
    const auto* d = find(s, uri);
    ASSERT_NE(d, nullptr) << uri << " exists as soon as it is created (a replier can open it)";
    EXPECT_TRUE(d->temporary) << uri;
    EXPECT_EQ(d->capacity, 16U) << uri << " was created with the requested geometry";
    EXPECT_TRUE(d->dlq.empty()) << uri << ": a temporary queue has no dead-letter queue";
  }
  ASSERT_NE(find(s, "queue://plain"), nullptr);
  EXPECT_FALSE(find(s, "queue://plain")->temporary);

  // A TMP. name that does not exist is never created by an ordinary open.
  expect_error([&] { (void)sb.create_producer(Destination::parse("queue://TMP.00000000.1")); }, ErrorCode::BadDestination,
               "no longer exists", "a producer on a temporary name that was never created");
  expect_error([&] { (void)sb.create_consumer(Topic("TMP.made-up")); }, ErrorCode::BadDestination, "no longer exists",
               "a consumer on a made-up temporary topic name");
  const auto after = observer().stats();
  EXPECT_EQ(find(after, "queue://TMP.00000000.1"), nullptr) << "nothing was created under the reserved prefix";
  EXPECT_EQ(find(after, "topic://TMP.made-up"), nullptr);
}

TEST_F(RequestReplySystem_test, OnlyTheCreatingConnectionMayConsumeOthersMayProduce) {
  auto owner = connect("owner");
  auto other = connect("other");
  auto so = owner.create_session();
  auto sx = other.create_session();
  const auto tq = so.create_temporary_queue({16, 256});
  const auto tt = so.create_temporary_topic({16, 256});

  expect_error([&] { (void)sx.create_consumer(Destination::parse(tq.uri())); }, ErrorCode::PermissionDenied,
               "only the connection that created it", "another connection's consumer on a temporary queue");
  expect_error([&] { (void)sx.create_consumer(Destination::parse(tt.uri())); }, ErrorCode::PermissionDenied,
               "only the connection that created it", "another connection's consumer on a temporary topic");
  expect_error([&] { (void)sx.create_browser(Queue(tq.name())); }, ErrorCode::PermissionDenied,
               "only the connection that created it", "another connection's browser on a temporary queue");
  // A second session of the owning connection may consume: the rule is per connection.
  auto so2 = owner.create_session();
  auto cq = so2.create_consumer(tq);
  auto ct = so.create_consumer(tt);
  {
    auto b = so.create_browser(tq);  // the owner may browse
  }

  auto pq = sx.create_producer(Destination::parse(tq.uri()));
  auto pt = sx.create_producer(Destination::parse(tt.uri()));
  ASSERT_EQ(pq.send("to the queue"), Status::Ok);
  ASSERT_EQ(pt.send("to the topic"), Status::Ok);
  Message m;
  ASSERT_EQ(cq.receive(m, kWait).status, Status::Ok);
  EXPECT_EQ(m.text(), "to the queue");
  ASSERT_EQ(ct.receive(m, kWait).status, Status::Ok);
  EXPECT_EQ(m.text(), "to the topic");
  const auto s = observer().stats();
  ASSERT_NE(find(s, tq.uri()), nullptr);
  EXPECT_EQ(find(s, tq.uri())->subscribers.size(), 1U) << "the refused consumer left no entry behind";
}

TEST_F(RequestReplySystem_test, RemoveDeletesItAndIsRefusedWhileAConsumerIsOpen) {
  auto conn = connect("owner");
  auto session = conn.create_session();
  auto tq = session.create_temporary_queue({16, 64});
  auto tt = session.create_temporary_topic({16, 64});
  const auto q_shm = shm_name_of(tq.uri());
  const auto t_shm = shm_name_of(tt.uri());
  ASSERT_TRUE(shm_exists(q_shm));
  ASSERT_TRUE(shm_exists(t_shm));
  {
    auto c = session.create_consumer(tq);
    expect_error([&] { tq.remove(); }, ErrorCode::InvalidArgument, "still has 1 consumer(s)",
                 "remove() with a consumer open");
    const auto s = observer().stats();
    EXPECT_NE(find(s, tq.uri()), nullptr) << "a refused remove() deletes nothing";
  }
  // Closed a moment ago (the daemon may still be reclaiming its entry): no longer counts.
  EXPECT_NO_THROW(tq.remove());
  expect_vanished(tq.uri(), q_shm, "after remove()");
  expect_error([&] { tq.remove(); }, ErrorCode::BadDestination, "no longer exists", "a second remove()");
  expect_error([&] { (void)session.create_producer(tq); }, ErrorCode::BadDestination, "no longer exists",
               "the owner's producer on its removed temporary queue");
  expect_error([&] { (void)session.create_consumer(tq); }, ErrorCode::BadDestination, "no longer exists",
               "the owner's consumer on its removed temporary queue");

  {
    auto p = session.create_producer(tt);  // a producer does not hold a temporary destination
    EXPECT_NO_THROW(tt.remove());
    EXPECT_EQ(p.send("too late"), Status::Closed) << "a producer left on a removed temporary destination";
    EXPECT_NO_THROW(p.close()) << "closing a producer of a removed destination succeeds";
  }
  expect_vanished(tt.uri(), t_shm, "after remove()");
  EXPECT_TRUE(daemon_->log().wait_for("removed temporary " + tt.uri(), kWait));
}

TEST_F(RequestReplySystem_test, TemporaryDestinationsVanishWhenTheirConnectionCloses) {
  auto other = connect("other");
  auto sx = other.create_session();
  std::string q_uri, t_uri, q_shm, t_shm;
  auto conn = connect("short-lived");
  auto session = conn.create_session();
  auto tq = session.create_temporary_queue({16, 64});
  auto tt = session.create_temporary_topic({16, 64});
  auto c = session.create_consumer(tq);
  q_uri = tq.uri();
  t_uri = tt.uri();
  q_shm = shm_name_of(q_uri);
  t_shm = shm_name_of(t_uri);
  auto foreign = sx.create_producer(Destination::parse(t_uri));  // another client's producer stays open

  conn.close();
  expect_vanished(q_uri, q_shm, "after Connection::close()");
  expect_vanished(t_uri, t_shm, "after Connection::close()");
  expect_error([&] { tq.remove(); }, ErrorCode::Closed, "connection is closed", "remove() after the connection closed");
  expect_error([&] { (void)sx.create_producer(Destination::parse(q_uri)); }, ErrorCode::BadDestination,
               "no longer exists", "a producer on the closed connection's temporary queue");
  EXPECT_EQ(foreign.send("nobody reads this"), Status::Closed) << "another client's producer on the deleted topic";
  EXPECT_NO_THROW(foreign.close());
  EXPECT_TRUE(daemon_->log().wait_for("producer(s) of other clients get Status::Closed", kWait));
}

// SIGKILL: nobody says goodbye; the daemon sees the socket close / the pidfd and deletes what the
// dead process created, while producers of other processes are still attached.
TEST_F(RequestReplySystem_test, TemporaryDestinationsVanishWhenTheirProcessIsKilled) {
  constexpr std::uint32_t kCapacity = 8;
  auto hq = agent("temp-hold", {"--queue", "unused", "--capacity", std::to_string(kCapacity), "--max-size", "64"});
  auto ht = agent("temp-hold", {"--topic", "unused", "--capacity", std::to_string(kCapacity), "--max-size", "64"});
  const auto lq = expect_line(hq, "temp", kWait, "the temporary queue of the process to kill");
  const auto lt = expect_line(ht, "temp", kWait, "the temporary topic of the process to kill");
  ASSERT_TRUE(lq && lt);
  const auto q_uri = lq->at("uri"), t_uri = lt->at("uri");
  const auto q_shm = shm_name_of(q_uri), t_shm = shm_name_of(t_uri);
  ASSERT_TRUE(shm_exists(q_shm) && shm_exists(t_shm));

  auto conn = connect("bystander");
  auto session = conn.create_session();
  expect_error([&] { (void)session.create_consumer(Destination::parse(q_uri)); }, ErrorCode::PermissionDenied,
               "another connection", "a consumer on another process's temporary queue");
  ProducerOptions fail_fast;
  fail_fast.on_full = FullPolicy::FailFast;
  auto pq = session.create_producer(Destination::parse(q_uri), fail_fast);
  auto pt = session.create_producer(Destination::parse(t_uri));
  ASSERT_EQ(pq.send("before"), Status::Ok);
  ASSERT_EQ(pt.send("before"), Status::Ok);

  const auto pid_q = hq.pid(), pid_tt = ht.pid();
  hq.kill(SIGKILL);
  ht.kill(SIGKILL);
  ASSERT_TRUE(hq.wait_exit(kWait) && ht.wait_exit(kWait));
  expect_vanished(q_uri, q_shm, "after its process (pid " + std::to_string(pid_q) + ") was SIGKILLed");
  expect_vanished(t_uri, t_shm, "after its process (pid " + std::to_string(pid_tt) + ") was SIGKILLed");
  EXPECT_TRUE(daemon_->log().wait_for("removed temporary " + q_uri, kWait));

  // The producers left behind are told: every send after the deletion is Status::Closed.
  EXPECT_EQ(pq.send("after"), Status::Closed);
  EXPECT_EQ(pt.send("after"), Status::Closed);
  EXPECT_EQ(pq.send(TextMessage("after")), Status::Closed);
  EXPECT_NO_THROW(pq.close());
  EXPECT_NO_THROW(pt.close());
  // A new producer on the dead process's names is refused, and creates nothing.
  expect_error([&] { (void)session.create_producer(Destination::parse(q_uri)); }, ErrorCode::BadDestination,
               "no longer exists", "a producer on a killed process's temporary queue");
  expect_error([&] { (void)session.create_producer(Destination::parse(t_uri)); }, ErrorCode::BadDestination,
               "no longer exists", "a producer on a killed process's temporary topic");
  const auto s = observer().stats();
  EXPECT_EQ(find(s, q_uri), nullptr);
  EXPECT_EQ(find(s, t_uri), nullptr);
}

TEST_F(RequestReplySystem_test, ReplyToARemovedTemporaryQueueFailsClearlyAtTheReplier) {
  auto replier = agent("replier", {"--queue", kRequests, "--max-size", std::to_string(kMaxSize), "--capacity", "64"});
  ASSERT_TRUE(expect_line(replier, "ready", kWait, "the replier"));
  auto conn = connect("requester");
  auto session = conn.create_session();
  auto reply_to = session.create_temporary_queue({16, kMaxSize});
  const std::string uri = reply_to.uri();
  reply_to.remove();  // gone before the replier answers
  auto requests = session.create_producer(Queue(kRequests), {}, {64, kMaxSize});
  TextMessage req("too late");
  req.set_reply_to(uri);
  req.set_correlation_id("late-1");
  ASSERT_EQ(requests.send(req), Status::Ok);
  const auto line = expect_line(replier, "reply-failed", kWait, "the replier refused a producer on a deleted reply-to");
  ASSERT_TRUE(line);
  EXPECT_EQ(line->at("code"), "bad-destination");
  EXPECT_EQ(line->at("to"), uri);
  EXPECT_EQ(line->at("correlation"), "late-1");
  expect_clean_exit(replier, kWait, "replier");
  EXPECT_EQ(find(observer().stats(), uri), nullptr) << "the reply did not re-create the temporary queue";
}

// Temporary destinations are not subject to the idle expiry of ordinary ones: they live exactly as
// long as their connection.
TEST_F(RequestReplySystem_test, UnusedTemporaryDestinationsDoNotExpireIdle) {
  stop_daemon_and_check_clean(SIGTERM);
  start_daemon({"--idle-topic-timeout", "0"});
  auto conn = connect("owner");
  auto session = conn.create_session();
  auto tq = session.create_temporary_queue({16, 64});
  auto tt = session.create_temporary_topic({16, 64});
  {
    auto c1 = session.create_consumer(tq);
    auto c2 = session.create_consumer(tt);
  }
  {
    auto w1 = session.create_producer(Topic("witness"), {}, {16, 64});
    auto w2 = session.create_consumer(Queue("witness"), {}, {16, 64});
  }
  // The witnesses became unused after the temporary ones (a queue entry is reclaimed by the
  // daemon in close order): once both are gone, an expiry pass ran past the temporary ones.
  EXPECT_TRUE(wait_stats(
      [](const BusStats& s) { return !find_topic(s, "topic://witness") && !find_topic(s, "queue://witness"); }, kWait,
      "the unused ordinary topic and queue expired"));
  const auto s = observer().stats();
  EXPECT_NE(find(s, tq.uri()), nullptr) << "an unused temporary queue must not expire while its connection lives";
  EXPECT_NE(find(s, tt.uri()), nullptr) << "an unused temporary topic must not expire while its connection lives";
  auto p = session.create_producer(tq);
  auto c = session.create_consumer(tq);
  ASSERT_EQ(p.send("still here"), Status::Ok);
  Message m;
  ASSERT_EQ(c.receive(m, kWait).status, Status::Ok);
  EXPECT_EQ(m.text(), "still here");
}

}  // namespace
}  // namespace shmbus::systest
