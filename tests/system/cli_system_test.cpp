// The `shmbus` command line as a user runs it: separate processes, stdin/stdout, exit codes.
#include "system_fixture.hpp"

#include <algorithm>
#include <unistd.h>

namespace shmbus::systest {
namespace {

class CliSystem_test : public SystemTest {};

TEST_F(CliSystem_test, RecvPrintsEachLineSentFromStdin) {
  auto recv = Child::spawn({SHMBUS_CLI_PATH, "--dir", dir_, "recv", "topic://x", "--count", "3", "--timeout", "5000"},
                           {false, true, true});
  ASSERT_TRUE(wait_topic("topic://x", 1, kStartDeadline)) << "recv subscribed";
  const auto s = run_cli({"send", "topic://x", "-"}, "first\nsecond line\nthird\n");
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.err.find("sent 3 message(s)"), std::string::npos) << s.err;
  std::string out, err;
  ASSERT_TRUE(recv.drain(Millis(10000), out, err)) << "recv should stop after 3 messages";
  const auto st = recv.wait_exit(Millis(5000));
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << describe_status(*st) << "; stderr: " << err;
  EXPECT_EQ(out, "first\nsecond line\nthird\n");
}

TEST_F(CliSystem_test, RecvTimesOutWithExitCodeOne) {
  const auto r = run_cli({"recv", "topic://quiet", "--count", "1", "--timeout", "50"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST_F(CliSystem_test, StatJsonNamesDestinationsAndCounters) {
  auto session = observer().create_session();
  auto c = session.create_consumer(Topic("x"), {WaitStrategy::Park, 0}, {64, 64});
  auto p = session.create_producer(Topic("x"), {}, {64, 64});
  ASSERT_EQ(p.send(std::string_view("hello")), Status::Ok);
  const auto r = run_cli({"stat", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.front(), '{');
  EXPECT_EQ(r.out.substr(r.out.size() - 2), "}\n");
  for (const char* key : {"destinations", "name", "published", "producers", "consumers", "subscribers", "position",
                          "lost"})
    EXPECT_NE(r.out.find(std::string("\"") + key + "\":"), std::string::npos) << "no key " << key << " in " << r.out;
  EXPECT_NE(r.out.find("\"name\":\"topic://x\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"published\":1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"consumers\":1"), std::string::npos) << r.out;
}

TEST_F(CliSystem_test, CommandsWithoutDaemonExitWithNoDaemonCode) {
  std::vector<std::string> argv{SHMBUS_CLI_PATH, "--dir", root_ + "/nobody", "stat"};
  auto c = Child::spawn(argv, {false, true, true});
  std::string out, err;
  ASSERT_TRUE(c.drain(Millis(10000), out, err));
  const auto st = c.wait_exit(Millis(5000));
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 3) << describe_status(*st) << "; stderr: " << err;
  EXPECT_NE(err.find("nobody"), std::string::npos) << "names the path it tried: " << err;
}

// ------------------------------------------------------------------ queues

/// The lines of `s`, sorted (redelivery may change the order messages come back in).
std::vector<std::string> sorted_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t from = 0;
  for (std::size_t nl; (nl = s.find('\n', from)) != std::string::npos; from = nl + 1) out.push_back(s.substr(from, nl - from));
  if (from < s.size()) out.push_back(s.substr(from));
  std::sort(out.begin(), out.end());
  return out;
}

/// The JSON object of destination `uri` in a `stat --json` output (up to its "subscribers" list).
std::string dest_json(const std::string& json, const std::string& uri) {
  const auto at = json.find("{\"name\":\"" + uri + "\"");
  if (at == std::string::npos) return {};
  const auto end = json.find("\"subscribers\":", at);
  return json.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

bool has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

TEST_F(CliSystem_test, QueueSendThenRecvCountPrintsThemInOrder) {
  const auto s = run_cli({"send", "queue://jobs", "-"}, "first\nsecond line\nthird\n");
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_TRUE(has(s.err, "sent 3 message(s) to queue://jobs")) << s.err;
  // A queue keeps them for the consumer that comes later (a topic would not).
  const auto r = run_cli({"recv", "queue://jobs", "--count", "3", "--timeout", "5000"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "first\nsecond line\nthird\n");
  EXPECT_TRUE(has(r.err, "subscribed to queue://jobs (ack auto)")) << r.err;
  // Auto acknowledged them: nothing is left for the next one.
  const auto again = run_cli({"recv", "queue://jobs", "--count", "1", "--timeout", "50"});
  EXPECT_EQ(again.exit_code, 1) << again.err;
  EXPECT_EQ(again.out, "");
}

TEST_F(CliSystem_test, QueueSendPriorityDeliversHigherFirst) {
  ASSERT_EQ(run_cli({"send", "queue://prio", "--priority", "1", "low"}).exit_code, 0);
  ASSERT_EQ(run_cli({"send", "queue://prio", "normal"}).exit_code, 0);  // the default, 4
  ASSERT_EQ(run_cli({"send", "queue://prio", "--priority", "9", "--ttl", "600000", "high"}).exit_code, 0);
  ASSERT_EQ(run_cli({"send", "queue://prio", "--priority", "0", "lowest"}).exit_code, 0);
  const auto r = run_cli({"recv", "queue://prio", "--count", "4", "--timeout", "5000"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "high\nnormal\nlow\nlowest\n");
}

TEST_F(CliSystem_test, QueueSendDelayAndTtl) {
  // Delayed a minute: waiting (depth 1, scheduled 1) but not deliverable now.
  const auto d = run_cli({"send", "queue://later", "--delay", "60000", "tomorrow"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  const auto st = run_cli({"stat", "--json"});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  const auto q = dest_json(st.out, "queue://later");
  EXPECT_TRUE(has(q, "\"depth\":1,\"scheduled\":1,")) << st.out;
  const auto r = run_cli({"recv", "queue://later", "--count", "1", "--timeout", "50"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "");
  // Due in 5 ms but dead after 1 ms: it expires before it is ever deliverable (no clock race).
  ASSERT_EQ(run_cli({"send", "queue://brief", "--ttl", "1", "--delay", "5", "gone"}).exit_code, 0);
  ASSERT_TRUE(wait_stats(
      [](const BusStats& s) {
        const auto* b = find_topic(s, "queue://brief");
        return b && b->expired == 1 && b->depth == 0;
      },
      Millis(10000), "queue://brief: the message expired"));
  const auto stat = run_cli({"stat", "--json"});
  EXPECT_TRUE(has(dest_json(stat.out, "queue://brief"), "\"expired\":1,")) << stat.out;
}

TEST_F(CliSystem_test, RecvNoAckLeavesMessagesForTheNextConsumer) {
  ASSERT_EQ(run_cli({"send", "queue://peek", "-"}, "a\nb\nc\n").exit_code, 0);
  const auto peek = run_cli({"recv", "queue://peek", "--no-ack", "--count", "3", "--timeout", "5000"});
  EXPECT_EQ(peek.exit_code, 0) << peek.err;
  EXPECT_EQ(peek.out, "a\nb\nc\n");
  EXPECT_TRUE(has(peek.err, "3 message(s) not acknowledged (--no-ack)")) << peek.err;
  // The peek exited without acknowledging: the daemon gives them back, to this next consumer.
  const auto take = run_cli({"recv", "queue://peek", "--count", "3", "--timeout", "10000"});
  EXPECT_EQ(take.exit_code, 0) << take.err;
  EXPECT_EQ(sorted_lines(take.out), (std::vector<std::string>{"a", "b", "c"})) << take.out;
  const auto st = run_cli({"stat", "--json"});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  const auto q = dest_json(st.out, "queue://peek");
  EXPECT_TRUE(has(q, "\"depth\":0,")) << st.out;
  EXPECT_TRUE(has(q, "\"in_flight\":0,")) << st.out;
  EXPECT_TRUE(has(q, "\"redelivered\":3,")) << st.out;
}

TEST_F(CliSystem_test, RecvClientIndividualAndDupsOkAcknowledgeWhatTheyPrint) {
  for (const std::string mode : {"client", "individual", "dups_ok", "auto"}) {
    SCOPED_TRACE(mode);
    const std::string uri = "queue://ack-" + mode;
    ASSERT_EQ(run_cli({"send", uri, "--count", "2", "msg"}).exit_code, 0);
    const auto r = run_cli({"recv", uri, "--ack", mode, "--count", "2", "--timeout", "5000"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "msg\nmsg\n");
    EXPECT_TRUE(has(r.err, "(ack " + mode + ")")) << r.err;
    // Acknowledged before the CLI exited: nothing waits, nothing is in flight, nothing comes back.
    const auto s = observer().stats();
    const auto* q = find_topic(s, uri);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->depth, 0U);
    EXPECT_EQ(q->in_flight, 0U);
    EXPECT_EQ(q->redelivered, 0U);
  }
}

TEST_F(CliSystem_test, StatShowsQueueCountersAndConsumers) {
  ASSERT_EQ(run_cli({"send", "queue://jobs", "-"}, "1\n2\n3\n").exit_code, 0);
  auto topic_session = observer().create_session();
  auto tc = topic_session.create_consumer(Topic("news"), {WaitStrategy::Park, 0}, {64, 64});

  const auto before = run_cli({"stat", "--json"});
  ASSERT_EQ(before.exit_code, 0) << before.err;
  const auto q = dest_json(before.out, "queue://jobs");
  ASSERT_FALSE(q.empty()) << before.out;
  EXPECT_TRUE(has(q, "\"kind\":\"queue\"")) << q;
  for (const char* key : {"name", "kind", "capacity", "max_message_size", "shm_bytes", "producers", "consumers", "depth",
                          "in_flight", "redelivered", "dead_lettered", "scheduled", "expired", "ack_timeouts", "dropped",
                          "dlq"})
    EXPECT_TRUE(has(q, std::string("\"") + key + "\":")) << "no key " << key << " in " << q;
  EXPECT_TRUE(has(q, "\"depth\":3,")) << q;
  EXPECT_TRUE(has(q, "\"published\":3,")) << q;
  EXPECT_TRUE(has(q, "\"in_flight\":0,")) << q;
  EXPECT_TRUE(has(q, "\"dlq\":\"queue://DLQ.jobs\"")) << q;
  // Topics keep their kind and keys.
  const auto t = dest_json(before.out, "topic://news");
  EXPECT_TRUE(has(t, "\"kind\":\"topic\"")) << before.out;
  EXPECT_TRUE(has(t, "\"published\":0,")) << before.out;
  EXPECT_TRUE(has(t, "\"holes_repaired\":0,")) << before.out;

  // A consumer holding one unacknowledged message and having acknowledged another.
  auto session = observer().create_session(AckMode::Individual);
  auto c = session.create_consumer(Queue("jobs"));
  Message m;
  ASSERT_EQ(c.receive(m, std::chrono::seconds(5)).status, Status::Ok);
  ASSERT_EQ(m.acknowledge(), Status::Ok);
  ASSERT_EQ(c.receive(m, std::chrono::seconds(5)).status, Status::Ok);
  const auto during = run_cli({"stat", "--json"});
  ASSERT_EQ(during.exit_code, 0) << during.err;
  const auto qd = dest_json(during.out, "queue://jobs");
  EXPECT_TRUE(has(qd, "\"depth\":1,")) << qd;
  EXPECT_TRUE(has(qd, "\"in_flight\":1,")) << qd;
  EXPECT_TRUE(has(qd, "\"consumers\":1,")) << qd;
  const auto subs = during.out.substr(during.out.find("\"subscribers\":", during.out.find("\"name\":\"queue://jobs\"")));
  EXPECT_EQ(subs.rfind("\"subscribers\":[{\"consumer_id\":" + std::to_string(c.id()) + ",", 0), 0U) << subs;
  EXPECT_TRUE(has(subs.substr(0, subs.find(']')), "\"received\":2,\"acked\":1,\"ack_mode\":\"individual\"}")) << subs;
  const auto text = run_cli({"stat"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_TRUE(has(text.out, "queue://jobs  capacity 4096 x 4096 B  published 3  depth 1  scheduled 0  in-flight 1  producers 0  "
                            "consumers 1  redelivered 0  dead-lettered 0  expired 0  ack timeouts 0  dropped 0  dlq "
                            "queue://DLQ.jobs\n"))
      << text.out;
  EXPECT_TRUE(has(text.out, "    consumer " + std::to_string(c.id()) + " (pid " + std::to_string(::getpid()) +
                                ")  ack individual  received 2  acked 1\n"))
      << text.out;
  c.close();

  // Another consumer takes the rest (the one given back on close, and the third).
  const auto r = run_cli({"recv", "queue://jobs", "--count", "2", "--timeout", "10000"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto after = run_cli({"stat", "--json"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  const auto qa = dest_json(after.out, "queue://jobs");
  EXPECT_TRUE(has(qa, "\"depth\":0,")) << qa;
  EXPECT_TRUE(has(qa, "\"in_flight\":0,")) << qa;
  EXPECT_TRUE(has(qa, "\"redelivered\":1,")) << qa;
}

TEST_F(CliSystem_test, QueueOptionMisuseIsAUsageError) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases{
      {{"send", "topic://t", "--priority", "5", "x"}, "--priority is for queues only"},
      {{"send", "topic://t", "--ttl", "100", "x"}, "--ttl is for queues only"},
      {{"send", "topic://t", "--delay", "100", "x"}, "--delay is for queues only"},
      {{"send", "queue://q", "--priority", "12", "x"}, "--priority needs a number from 0"},
      {{"send", "queue://q", "--priority", "-1", "x"}, "--priority needs a number from 0"},
      {{"send", "queue://q", "--ttl", "-1", "x"}, "--ttl needs a number of milliseconds"},
      {{"send", "queue://q", "--delay", "soon", "x"}, "--delay needs a number of milliseconds"},
      {{"send", "queue://q", "x", "--ttl"}, "--ttl needs a value"},
      {{"recv", "queue://q", "--ack", "maybe"}, "--ack needs one of auto, client, dups_ok, individual"},
      {{"recv", "queue://q", "--ack", "transacted"}, "--ack needs one of"},
      {{"recv", "queue://q", "--ack", "client", "--no-ack"}, "--ack and --no-ack exclude each other"},
      {{"recv", "topic://t", "--ack", "client"}, "topics have no acknowledgements"},
      {{"recv", "topic://t", "--no-ack"}, "topics have no acknowledgements"},
      {{"send", "queue://q", "--ack", "client", "x"}, "unknown option '--ack'"},
      {{"recv", "queue://q", "--priority", "1"}, "unknown option '--priority'"},
  };
  for (const auto& c : cases) {
    std::string line;
    for (const auto& a : c.args) line += a + " ";
    SCOPED_TRACE(line);
    // No stdin input: the CLI exits before reading it, and a write to its closed pipe would
    // raise SIGPIPE here.
    const auto r = run_cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(has(r.err, c.says)) << r.err;
    EXPECT_EQ(r.out, "");
  }
  // Refused before connecting: nothing was created or sent.
  const auto s = observer().stats();
  EXPECT_EQ(find_topic(s, "queue://q"), nullptr);
  EXPECT_EQ(find_topic(s, "topic://t"), nullptr);
}

}  // namespace
}  // namespace shmbus::systest
