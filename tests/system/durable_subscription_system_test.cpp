// Durable subscriptions on topics (JMS createDurableSubscriber / unsubscribe, docs/persistence.md)
// through a real shmbusd: a subscription receives the PERSISTENT messages published while no
// subscriber was open (and no NON_PERSISTENT one), starts at the end when it is new, keeps its
// position across a daemon SIGKILL, gives back what a dead subscriber had not acknowledged, allows
// one subscriber at a time, rewinds to the last acknowledgement on recover(), works from the CLI,
// and loses or repeats nothing while the producer is still sending.
//
// The subscriber under test (`sut`) is the test's own connection, except where the process
// boundary is the point: a bus_agent `dsub` child SIGKILLed with unacknowledged messages, the
// shmbus CLI, and a CLI producer process sending while the subscriber reads. Producers in the test
// process send the 64-byte test payload (payload.hpp, producer id 1, seq 1, 2, ...); with every
// message PERSISTENT the message with seq S has log offset S - 1 (Message::sequence()).
//
// Nothing sleeps to synchronise: the test waits on receive() with a deadline, on the daemon's
// stats (log end offset, subscription position and activity) or on a child's stdout line. A
// receive with a short timeout (kAbsent) is used only to assert that something does NOT arrive.
#include "payload.hpp"
#include "system_fixture.hpp"

#include <algorithm>
#include <csignal>
#include <iostream>
#include <optional>
#include <sstream>
#include <sys/wait.h>

namespace shmbus::systest {
namespace {

using Fields = std::map<std::string, std::string>;

// How long a test waits for something that must happen (generous: failures, not timing, matter).
constexpr Millis kWait{10000};
// How long a test waits for something that must NOT happen before it concludes it did not.
constexpr Millis kAbsent{300};

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {  // [first, last]
  std::vector<std::uint64_t> v;
  for (auto s = first; s <= last; ++s) v.push_back(s);
  return v;
}

std::string join(const std::vector<std::uint64_t>& v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

// One message as the subscriber under test saw it.
struct Got {
  std::uint64_t seq = 0;     // the payload's seq
  std::uint64_t offset = 0;  // Message::sequence(): its offset in the topic's log
  bool redelivered = false;
};

std::vector<std::uint64_t> seqs_of(const std::vector<Got>& v) {
  std::vector<std::uint64_t> out;
  for (const auto& g : v) out.push_back(g.seq);
  return out;
}
std::vector<std::uint64_t> offsets_of(const std::vector<Got>& v) {
  std::vector<std::uint64_t> out;
  for (const auto& g : v) out.push_back(g.offset);
  return out;
}
std::size_t flagged(const std::vector<Got>& v) {
  return static_cast<std::size_t>(std::count_if(v.begin(), v.end(), [](const Got& g) { return g.redelivered; }));
}

// The ErrorCode `f` throws as shmbus::Error (and its text in `what`), or nullopt if it does not throw.
template <class F>
std::optional<ErrorCode> error_of(F&& f, std::string* what = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (what) *what = e.what();
    return e.code();
  }
  return std::nullopt;
}

class DurableSubscriptionSystem_test : public SystemTest {
 protected:
  const std::string kName = "news";
  const Topic kTopic{kName};
  const std::string kUri = "topic://" + kName;

  /// Publishes seqs [first, last] from the test process (producer id 1): PERSISTENT, except the
  /// seqs `persistent(seq)` says false for (sent NON_PERSISTENT through SendOptions).
  void publish(std::uint64_t first, std::uint64_t last,
               const std::function<bool(std::uint64_t)>& persistent = [](std::uint64_t) { return true; }) {
    auto session = observer().create_session();
    ProducerOptions po;
    po.delivery_mode = DeliveryMode::Persistent;
    auto p = session.create_producer(kTopic, po);
    unsigned char buf[kPayloadSize];
    for (auto seq = first; seq <= last; ++seq) {
      make_payload(1, seq, buf);
      SendOptions so;
      so.delivery_mode = persistent(seq) ? DeliveryMode::Persistent : DeliveryMode::NonPersistent;
      ASSERT_EQ(p.send(std::as_bytes(std::span<const unsigned char>(buf)), so), Status::Ok) << "send of seq " << seq;
    }
  }

  /// Receives exactly `n` messages from `sut` (each within kWait). With `then_nothing`, also
  /// checks that nothing more arrives within kAbsent.
  std::vector<Got> receive(MessageConsumer& sut, std::size_t n, bool then_nothing = false) {
    std::vector<Got> got;
    Message m;
    while (got.size() < n) {
      const auto r = sut.receive(m, kWait);
      if (r.status != Status::Ok) {
        ADD_FAILURE() << "expected " << n << " messages within " << kWait.count() << " ms each, receive returned "
                      << to_string(r.status) << " after " << got.size() << ": " << join(seqs_of(got));
        return got;
      }
      const auto d = read_payload(m.body());
      EXPECT_TRUE(d.intact) << "a corrupted payload after " << got.size() << " messages";
      EXPECT_EQ(d.producer, 1U);
      got.push_back({d.seq, m.sequence(), m.redelivered()});
    }
    if (then_nothing) expect_nothing_more(sut, "beyond the expected " + std::to_string(n));
    return got;
  }

  void expect_nothing_more(MessageConsumer& sut, const std::string& what) {
    Message m;
    const auto r = sut.receive(m, kAbsent);
    if (r.status == Status::Ok) {
      const auto d = read_payload(m.body());
      ADD_FAILURE() << "a message " << what << " arrived: seq " << d.seq << " (log offset " << m.sequence()
                    << ", redelivered " << m.redelivered() << ")";
    } else {
      EXPECT_EQ(r.status, Status::Timeout) << what;
    }
  }

  /// Polls stats until the topic's entry satisfies `pred`; returns it.
  std::optional<DestinationStats> wait_dest(const std::function<bool(const DestinationStats&)>& pred,
                                            const std::string& what, Millis timeout = kWait) {
    const auto s = wait_stats(
        [&](const BusStats& b) {
          const auto* d = find_topic(b, kUri);
          return d && pred(*d);
        },
        timeout, kUri + ": " + what);
    if (!s) {
      const auto last = observer().stats();
      if (const auto* d = find_topic(last, kUri)) {
        std::string subs;
        for (const auto& x : d->durable_subscriptions)
          subs += " " + x.name + "@" + std::to_string(x.position) + (x.active ? "(active)" : "");
        ADD_FAILURE() << kUri << " last: log=" << d->log_start_offset << ".." << d->log_end_offset
                      << " durable=" << d->durable_offset << " persisted=" << d->persisted
                      << " persist_error=" << d->persist_error << " subscriptions:" << subs;
      }
      return std::nullopt;
    }
    return *find_topic(*s, kUri);
  }

  static const DurableSubscriptionStats* sub_of(const DestinationStats& d, const std::string& name) {
    for (const auto& s : d.durable_subscriptions)
      if (s.name == name) return &s;
    return nullptr;
  }

  /// Waits until the topic's log holds `n` records (written by the persistence agent).
  bool wait_logged(std::uint64_t n) {
    return wait_dest([&](const DestinationStats& d) { return d.log_end_offset == n; },
                     "log end offset " + std::to_string(n))
        .has_value();
  }

  /// Opens and closes a durable subscriber: the subscription exists from now on.
  void create_subscription(const std::string& name) {
    auto session = observer().create_session();
    auto sut = session.create_durable_subscriber(kTopic, name);
    sut.close();
  }

  /// SIGKILLs the daemon and waits until it is gone.
  void kill_daemon() {
    ASSERT_TRUE(daemon_ && daemon_->child().running()) << "no running daemon to kill";
    observer_.reset();
    daemon_->child().kill(SIGKILL);
    const auto st = daemon_->child().wait_exit(kStopDeadline);
    ASSERT_TRUE(st.has_value()) << "shmbusd did not die within " << kStopDeadline.count() << " ms of SIGKILL";
    ASSERT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL) << describe_status(*st);
  }

  /// Sends one dsub command and returns its reply line.
  std::optional<Fields> ask(Child& c, const std::string& cmd, const std::string& prefix, Millis timeout = kWait) {
    EXPECT_TRUE(c.write_stdin(cmd + "\n")) << "cannot write '" << cmd << "' to " << c.name();
    return expect_line(c, prefix, timeout, "reply to '" + cmd + "'");
  }

  /// dsub's reply to "recv K T": the "recv seq=S redelivered=R" lines, then "got n=K".
  std::vector<Got> agent_recv(Child& c, std::size_t n) {
    EXPECT_TRUE(c.write_stdin("recv " + std::to_string(n) + " " + std::to_string(kWait.count()) + "\n"));
    std::vector<Got> got;
    const auto deadline = Clock::now() + kWait * static_cast<long>(n + 1);
    for (;;) {
      const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
      const auto line = c.read_line(std::max(left, Millis(0)));
      if (!line) {
        ADD_FAILURE() << "dsub did not answer 'recv " << n << "' (got " << got.size() << " lines)";
        return got;
      }
      const auto f = fields(*line);
      if (line->rfind("recv ", 0) == 0) {
        got.push_back({std::stoull(f.at("seq")), 0, f.at("redelivered") == "1"});
      } else if (line->rfind("got ", 0) == 0) {
        EXPECT_EQ(f.at("n"), std::to_string(n)) << "dsub received fewer than asked: status " << f.at("status");
        return got;
      } else if (line->rfind("error", 0) == 0) {
        ADD_FAILURE() << "dsub: " << *line;
        return got;
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Forbidden: a PERSISTENT message published while the subscription had no subscriber missing,
// repeated, out of order or flagged redelivered (it was never delivered before); a NON_PERSISTENT
// one delivered to the durable subscriber (it is not logged).
TEST_F(DurableSubscriptionSystem_test, ADurableSubscriptionReceivesWhatWasPublishedWhileItsSubscriberWasAway) {
  create_subscription("away");
  // 150 messages, no subscriber open: every third NON_PERSISTENT (50), the other 100 PERSISTENT.
  const auto persistent = [](std::uint64_t seq) { return seq % 3 != 0; };
  publish(1, 150, persistent);
  ASSERT_FALSE(HasFatalFailure());
  std::vector<std::uint64_t> expected;
  for (auto s : range(1, 150))
    if (persistent(s)) expected.push_back(s);
  ASSERT_EQ(expected.size(), 100U);

  auto session = observer().create_session();
  auto sut = session.create_durable_subscriber(kTopic, "away");
  const auto got = receive(sut, expected.size(), true);
  EXPECT_EQ(join(seqs_of(got)), join(expected)) << "exactly the 100 PERSISTENT messages, each once, in order";
  EXPECT_EQ(join(offsets_of(got)), join(range(0, 99))) << "log offsets 0..99";
  EXPECT_EQ(flagged(got), 0U) << "a first delivery must not be flagged redelivered";
  const auto d = wait_dest([](const DestinationStats& x) { return x.log_end_offset >= 100; }, "100 records logged");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->log_end_offset, 100U) << "only the PERSISTENT messages are written to the topic's log";
}

// Forbidden: a new subscription receiving a message published before it was created — on a topic
// that had no subscription yet (nothing was logged), and on one whose log another subscription
// keeps (the new one starts at the end, not at the log's start). The second half creates the
// subscription right after the sends returned, without waiting for the daemon to log them: a send
// that returned before the subscription was created is published before it, logged or not yet.
TEST_F(DurableSubscriptionSystem_test, ANewSubscriptionStartsAtTheEnd) {
  publish(1, 20);  // no subscription yet
  ASSERT_FALSE(HasFatalFailure());
  auto session = observer().create_session();
  {
    auto sut = session.create_durable_subscriber(kTopic, "first");
    publish(21, 25);
    ASSERT_FALSE(HasFatalFailure());
    const auto got = receive(sut, 5, true);
    EXPECT_EQ(join(seqs_of(got)), join(range(21, 25))) << "only what was published after the subscription was created";
  }
  // "first" (closed) keeps the topic logged. 20 rounds: a burst of 20 messages, then a new
  // subscription created as soon as the sends returned (the daemon may still be writing them:
  // they were published before it, so none of them is for it), then one more message, the first
  // and only one the new subscription may receive. (One round hits the race in a few percent of
  // runs on 2 cores; 20 rounds make a regression show.)
  constexpr std::uint64_t kRounds = 20, kBurst = 20;
  std::uint64_t next = 26;
  std::vector<std::string> wrong;
  for (std::uint64_t round = 0; round < kRounds; ++round) {
    publish(next, next + kBurst - 1);
    ASSERT_FALSE(HasFatalFailure());
    next += kBurst;
    auto sut = session.create_durable_subscriber(kTopic, "late-" + std::to_string(round));
    publish(next, next);
    ASSERT_FALSE(HasFatalFailure());
    const auto got = receive(sut, 1);
    ASSERT_EQ(got.size(), 1U);
    if (got.front().seq != next)
      wrong.push_back("round " + std::to_string(round) + ": created after seq " + std::to_string(next - 1) +
                      ", its first message is seq " + std::to_string(got.front().seq) + " (log offset " +
                      std::to_string(got.front().offset) + ")");
    ++next;
  }
  std::string rounds;
  for (const auto& w : wrong) rounds += "\n  " + w;
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " of " << kRounds
                             << " new subscriptions received messages published before they were created:" << rounds;
  auto first = session.create_durable_subscriber(kTopic, "first");
  const auto got = receive(first, next - 26, true);
  EXPECT_EQ(join(seqs_of(got)), join(range(26, next - 1))) << "the older subscription still has everything since 26";
}

// Forbidden: after a daemon SIGKILL and a restart on the same DIR, the subscription missing, its
// acknowledged position lost (offsets 0..39 again) or moved past unacknowledged messages; any of
// offsets 40..109 missing, repeated or out of order; the topic not logged after the restart.
TEST_F(DurableSubscriptionSystem_test, TheSubscriptionAndItsPositionSurviveADaemonKill) {
  create_subscription("keep");
  publish(1, 100);
  ASSERT_FALSE(HasFatalFailure());
  {
    auto session = observer().create_session(AckMode::Client);
    auto sut = session.create_durable_subscriber(kTopic, "keep");
    Message m;
    std::vector<std::uint64_t> seqs;
    for (int i = 0; i < 40; ++i) {
      ASSERT_EQ(sut.receive(m, kWait).status, Status::Ok) << "message " << i + 1 << " of 40";
      seqs.push_back(read_payload(m.body()).seq);
    }
    ASSERT_EQ(join(seqs), join(range(1, 40)));
    ASSERT_EQ(m.acknowledge(), Status::Ok);
  }
  // The kill waits for what it tests: position 40 stored and all 100 records written (a record the
  // agent had not yet written is lost with the daemon's memory; that is not what this test is about).
  ASSERT_TRUE(wait_dest(
      [](const DestinationStats& d) {
        const auto* s = sub_of(d, "keep");
        return s && s->position == 40 && !s->active && d.log_end_offset == 100 && d.durable_offset >= 100;
      },
      "subscription 'keep' at 40 and closed, 100 records written and fsync'ed"));
  kill_daemon();
  ASSERT_FALSE(HasFatalFailure());
  start_daemon();
  ASSERT_FALSE(HasFatalFailure());
  const auto restored = wait_dest(
      [](const DestinationStats& d) {
        const auto* s = sub_of(d, "keep");
        return s && s->position == 40;
      },
      "subscription 'keep' restored at position 40");
  ASSERT_TRUE(restored);
  publish(101, 110);
  ASSERT_FALSE(HasFatalFailure());
  auto session = observer().create_session(AckMode::Client);
  auto sut = session.create_durable_subscriber(kTopic, "keep");
  const auto got = receive(sut, 70, true);
  EXPECT_EQ(join(offsets_of(got)), join(range(40, 109))) << "exactly log offsets 40..109, each once, in order";
  EXPECT_EQ(join(seqs_of(got)), join(range(41, 110))) << "the 60 unacknowledged messages, then the 10 sent after the restart";
  EXPECT_EQ(flagged(got), 0U) << "none of them was delivered before";
}

// Forbidden: a message a SIGKILLed CLIENT-mode subscriber process received but did not
// acknowledge not coming again to the next subscriber, coming out of order or twice; an
// acknowledged one coming again.
//
// The redelivered flag is NOT asserted here, only reported: the daemon stores a subscription's
// acknowledged position, not what a subscriber was handed (that lived in the dead process), so the
// next subscriber cannot tell a message the dead one saw from one it never reached. JMS makes
// JMSRedelivered a hint ("likely, but not guaranteed", JMS 2.0 3.4.7); the doc comment promises the
// flag only for recover()/rollback() (tested below).
TEST_F(DurableSubscriptionSystem_test, UnacknowledgedMessagesComeAgainAfterTheSubscriberDies) {
  auto a = agent("dsub", {"--topic", kName, "--name", "crash", "--ack", "client"});
  ASSERT_TRUE(expect_line(a, "ready", kStartDeadline, "dsub attached (subscription created)"));
  publish(1, 30);
  ASSERT_FALSE(HasFatalFailure());
  const auto acked = agent_recv(a, 10);
  ASSERT_EQ(join(seqs_of(acked)), join(range(1, 10)));
  const auto ack = ask(a, "ack", "ack");
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->at("n"), "10") << "Session::acknowledge() in CLIENT mode acknowledges the 10 received";
  const auto unacked = agent_recv(a, 20);
  ASSERT_EQ(join(seqs_of(unacked)), join(range(11, 30)));
  a.kill(SIGKILL);
  const auto st = a.wait_exit(kWait);
  ASSERT_TRUE(st.has_value()) << "dsub did not die within " << kWait.count() << " ms of SIGKILL";
  ASSERT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL) << describe_status(*st);
  ASSERT_TRUE(wait_dest(
      [](const DestinationStats& d) {
        const auto* s = sub_of(d, "crash");
        return s && !s->active;
      },
      "the daemon released subscription 'crash' of the dead subscriber"));
  const auto stats = observer().stats();
  const auto* d = find_topic(stats, kUri);
  ASSERT_NE(d, nullptr);
  ASSERT_NE(sub_of(*d, "crash"), nullptr);
  EXPECT_EQ(sub_of(*d, "crash")->position, 10U) << "the acknowledged position, no more";

  auto session = observer().create_session(AckMode::Client);
  auto sut = session.create_durable_subscriber(kTopic, "crash");
  const auto again = receive(sut, 20, true);
  EXPECT_EQ(join(seqs_of(again)), join(range(11, 30))) << "the 20 unacknowledged messages, each once, in order";
  std::cout << "[ info ] " << flagged(again) << " of the 20 messages the dead subscriber had received came flagged redelivered\n";
}

// Forbidden: two open subscribers of one subscription; a different name refused; unsubscribe of
// a subscription with an open subscriber, or of an unknown one, succeeding; a subscription deleted
// and created again resuming at its old position instead of the end.
TEST_F(DurableSubscriptionSystem_test, OnlyOneSubscriberPerSubscriptionAtATime) {
  auto other = ConnectionFactory(dir_, "second").create_connection();
  auto s1 = observer().create_session();
  auto s2 = other.create_session();
  std::string what;
  {
    auto sut = s1.create_durable_subscriber(kTopic, "a");
    auto code = error_of([&] { s2.create_durable_subscriber(kTopic, "a"); }, &what);
    EXPECT_EQ(code, ErrorCode::InvalidArgument) << "a second subscriber of 'a' from another connection: " << what;
    code = error_of([&] { s1.create_durable_subscriber(kTopic, "a"); }, &what);
    EXPECT_EQ(code, ErrorCode::InvalidArgument) << "a second subscriber of 'a' from the same session: " << what;
    {
      auto b = s2.create_durable_subscriber(kTopic, "b");  // another name: fine
      EXPECT_TRUE(wait_dest(
          [](const DestinationStats& d) {
            const auto *sa = sub_of(d, "a"), *sb = sub_of(d, "b");
            return sa && sb && sa->active && sb->active;
          },
          "subscriptions 'a' and 'b' both active"));
    }
    code = error_of([&] { s2.unsubscribe(kTopic, "a"); }, &what);
    EXPECT_EQ(code, ErrorCode::InvalidArgument) << "unsubscribe of 'a' while its subscriber is open: " << what;
    publish(1, 5);  // for 'a' (never received) and 'b'
    ASSERT_FALSE(HasFatalFailure());
  }
  EXPECT_EQ(error_of([&] { s2.unsubscribe(kTopic, "a"); }, &what), std::nullopt)
      << "unsubscribe of 'a' after its subscriber closed: " << what;
  publish(6, 10);  // 'b' keeps the topic logged
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(wait_logged(10));
  const auto stats = observer().stats();
  const auto* after = find_topic(stats, kUri);
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(sub_of(*after, "a"), nullptr) << "'a' is still listed after unsubscribe";
  {
    auto sut = s1.create_durable_subscriber(kTopic, "a");  // a new 'a': at the end
    publish(11, 13);
    ASSERT_FALSE(HasFatalFailure());
    const auto got = receive(sut, 3, true);
    EXPECT_EQ(join(seqs_of(got)), join(range(11, 13))) << "a re-created subscription starts at the end, not at 1";
  }
  auto code = error_of([&] { s2.unsubscribe(kTopic, "nope"); }, &what);
  EXPECT_TRUE(code.has_value()) << "unsubscribe of an unknown subscription must throw";
  EXPECT_NE(what.find("nope"), std::string::npos) << "the error should name the subscription: " << what;
  code = error_of([&] { s2.unsubscribe(Topic("no-such-topic"), "a"); }, &what);
  EXPECT_TRUE(code.has_value()) << "unsubscribe on a topic without subscriptions must throw";
  code = error_of([&] { s2.create_durable_subscriber(kTopic, "bad name!"); }, &what);
  EXPECT_EQ(code, ErrorCode::InvalidArgument) << "a subscription name with a space and '!': " << what;

  auto b = s2.create_durable_subscriber(kTopic, "b");
  const auto got = receive(b, 13, true);
  EXPECT_EQ(join(seqs_of(got)), join(range(1, 13))) << "'b' unaffected by what happened to 'a'";
}

// Forbidden: recover() not giving back exactly what was received after the last acknowledgement;
// what comes again not flagged redelivered, or what comes for the first time flagged; recover()
// acknowledging anything (after a close what was not acknowledged comes again).
//
// CLIENT mode: Message::acknowledge() acknowledges everything the session received so far, so
// acknowledging the 5th of 10 received acknowledges all 10. INDIVIDUAL mode on a durable
// subscriber: acknowledging a message commits the log position after it (what came before it too).
TEST_F(DurableSubscriptionSystem_test, RecoverRewindsToTheLastAcknowledgement) {
  create_subscription("client");
  create_subscription("individual");
  publish(1, 20);
  ASSERT_FALSE(HasFatalFailure());
  {
    SCOPED_TRACE("client");
    auto session = observer().create_session(AckMode::Client);
    auto sut = session.create_durable_subscriber(kTopic, "client");
    Message fifth;
    Message m;
    for (int i = 1; i <= 10; ++i) {
      ASSERT_EQ(sut.receive(m, kWait).status, Status::Ok);
      ASSERT_EQ(read_payload(m.body()).seq, static_cast<std::uint64_t>(i));
      if (i == 5) fifth = m;
    }
    ASSERT_EQ(fifth.acknowledge(), Status::Ok);
    EXPECT_EQ(session.recover(), 0U) << "CLIENT: acknowledging the 5th acknowledged all 10 received";
    auto got = receive(sut, 5);
    EXPECT_EQ(join(seqs_of(got)), join(range(11, 15)));
    EXPECT_EQ(flagged(got), 0U);
    EXPECT_EQ(session.recover(), 5U) << "11..15 received, not acknowledged";
    got = receive(sut, 10, true);
    EXPECT_EQ(join(seqs_of(got)), join(range(11, 20))) << "11..15 again, then 16..20";
    EXPECT_EQ(flagged(got), 5U) << "11..15 flagged redelivered, 16..20 not";
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].redelivered, got[i].seq <= 15) << "seq " << got[i].seq;
  }
  {
    SCOPED_TRACE("client, after close");  // the recover acknowledged nothing: 11..20 again
    auto session = observer().create_session(AckMode::Client);
    auto sut = session.create_durable_subscriber(kTopic, "client");
    const auto got = receive(sut, 10, true);
    EXPECT_EQ(join(seqs_of(got)), join(range(11, 20)));
  }
  {
    SCOPED_TRACE("individual");
    auto session = observer().create_session(AckMode::Individual);
    auto sut = session.create_durable_subscriber(kTopic, "individual");
    Message fifth;
    Message m;
    for (int i = 1; i <= 10; ++i) {
      ASSERT_EQ(sut.receive(m, kWait).status, Status::Ok);
      ASSERT_EQ(read_payload(m.body()).seq, static_cast<std::uint64_t>(i));
      if (i == 5) fifth = m;
    }
    ASSERT_EQ(fifth.acknowledge(), Status::Ok);
    EXPECT_EQ(session.recover(), 5U) << "6..10 received after the acknowledged 5th";
    const auto got = receive(sut, 15, true);
    EXPECT_EQ(join(seqs_of(got)), join(range(6, 20))) << "6..10 again, then 11..20";
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].redelivered, got[i].seq <= 10) << "seq " << got[i].seq;
  }
}

// Forbidden: `shmbus recv --durable` missing or repeating a `send --persistent` made while it was
// away, or receiving a NON_PERSISTENT one; an Auto-mode CLI subscriber's receives coming again;
// `shmbus unsubscribe` failing on an existing subscription, or exiting 0 / without saying why on
// an unknown one (the daemon's BadDestination: exit 2, docs/cli.md).
TEST_F(DurableSubscriptionSystem_test, TheCliReceivesAsADurableSubscriberAndUnsubscribes) {
  const std::string uri = "topic://cli";
  // No --count: it subscribes (creating the subscription), waits 200 ms for nothing, exits 0.
  auto r = run_cli({"recv", uri, "--durable", "nightly", "--timeout", "200"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("durable subscription 'nightly'"), std::string::npos) << r.err;

  r = run_cli({"send", uri, "--persistent"}, "one\ntwo\nthree\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli({"send", uri, "volatile"});  // NON_PERSISTENT: not for the durable subscription
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli({"send", uri, "--persistent", "four"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = run_cli({"recv", uri, "--durable", "nightly", "--count", "4", "--timeout", std::to_string(kWait.count())});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "one\ntwo\nthree\nfour\n") << r.err;
  r = run_cli({"recv", uri, "--durable", "nightly", "--ack", "client", "--timeout", std::to_string(kAbsent.count())});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "") << "the Auto-mode receives above were committed when that CLI closed";

  r = run_cli({"unsubscribe", uri, "nightly"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("deleted durable subscription 'nightly'"), std::string::npos) << r.err;
  r = run_cli({"unsubscribe", uri, "nightly"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("no durable subscription 'nightly' on topic://cli"), std::string::npos) << r.err;
  std::cout << "[ info ] unsubscribe of an unknown subscription: exit " << r.exit_code << ", " << r.err;
}

// Forbidden: a message lost, repeated or out of order for a durable subscriber that reads the log
// while the persistence agent is still appending to it. The producer is a CLI process sending
// 1000 PERSISTENT messages, one per stdin line, fed in 10 chunks of 100: chunk k+1 is written
// once the subscriber has received half of chunk k, so the subscriber always reads the log's
// growing end while the producer has more to send (it cannot finish before its stdin closes).
TEST_F(DurableSubscriptionSystem_test, ASubscriberReadingWhileTheProducerSendsGetsEverythingOnceInOrder) {
  constexpr std::uint64_t kN = 1000, kChunk = 100;
  auto session = observer().create_session();
  auto sut = session.create_durable_subscriber(kTopic, "live");
  auto p = Child::spawn({SHMBUS_CLI_PATH, "--dir", dir_, "send", kUri, "--persistent"}, {true, true, true});
  const auto write_chunk = [&](std::uint64_t k) {
    std::string lines;
    for (std::uint64_t i = k * kChunk + 1; i <= (k + 1) * kChunk; ++i) lines += "m" + std::to_string(i) + "\n";
    return p.write_stdin(lines);
  };
  ASSERT_TRUE(write_chunk(0));
  std::vector<std::string> got;
  std::uint64_t written = 1, redelivered = 0;
  Message m;
  while (got.size() < kN) {
    const auto r = sut.receive(m, kWait);
    if (r.status != Status::Ok) {
      ADD_FAILURE() << "expected " << kN << " messages, receive returned " << to_string(r.status) << " after " << got.size()
                    << " (" << written * kChunk << " written to the producer)";
      break;
    }
    got.emplace_back(m.text());
    if (m.redelivered()) ++redelivered;
    if (written < kN / kChunk && got.size() >= (written - 1) * kChunk + kChunk / 2) {
      ASSERT_FALSE(p.wait_exit(Millis(0)).has_value()) << "shmbus send exited with its stdin still open";
      ASSERT_TRUE(write_chunk(written)) << "shmbus send closed its stdin after " << written << " chunks";
      if (++written == kN / kChunk) p.close_stdin();
    }
  }
  expect_nothing_more(sut, "beyond the " + std::to_string(kN) + " sent");
  std::string out, err;
  EXPECT_TRUE(p.drain(kWait, out, err)) << "shmbus send did not finish";
  const auto st = p.wait_exit(kWait);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "shmbus send " << describe_status(*st) << ": " << err;
  std::size_t wrong = 0;
  std::string first_wrong;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != "m" + std::to_string(i + 1) && wrong++ == 0)
      first_wrong = "position " + std::to_string(i) + ": '" + got[i] + "'";
  EXPECT_EQ(wrong, 0U) << "messages out of order, repeated or missing; first at " << first_wrong;
  EXPECT_EQ(redelivered, 0U) << "a first delivery must not be flagged redelivered";
}

}  // namespace
}  // namespace shmbus::systest
