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
      {{"send", "topic://t", "--delay", "100", "x"}, "--delay is for queues only"},
      {{"send", "topic://t", "--priority", "10", "x"}, "--priority needs a number from 0"},
      {{"send", "topic://t", "--ttl", "soon", "x"}, "--ttl needs a number of milliseconds"},
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
      {{"send", "queue://q", "--type", "json", "x"}, "--type needs one of text, bytes, map, stream, not 'json'"},
      {{"send", "queue://q", "x", "--type"}, "--type needs a value"},
      {{"send", "queue://q", "--selector", "a = 1", "x"}, "unknown option '--selector'"},
      {{"send", "queue://q", "--verbose", "x"}, "unknown option '--verbose'"},
      {{"recv", "queue://q", "--property", "a=1"}, "unknown option '--property'"},
      {{"recv", "queue://q", "--persistent"}, "unknown option '--persistent'"},
      {{"recv", "queue://q", "--correlation-id", "c"}, "unknown option '--correlation-id'"},
      {{"recv", "queue://q", "--type", "map"}, "unknown option '--type'"},
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

// ------------------------------------------------------------------ the message model

/// The lines of `s` in order (without the '\n's).
std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::size_t from = 0;
  for (std::size_t nl; (nl = s.find('\n', from)) != std::string::npos; from = nl + 1) out.push_back(s.substr(from, nl - from));
  if (from < s.size()) out.push_back(s.substr(from));
  return out;
}

/// The messages of a `recv --verbose` output: each is its lines, without the empty line ending it.
std::vector<std::vector<std::string>> verbose_messages(const std::string& out) {
  std::vector<std::vector<std::string>> msgs;
  std::size_t from = 0;
  for (std::size_t end; (end = out.find("\n\n", from)) != std::string::npos; from = end + 2)
    msgs.push_back(lines_of(out.substr(from, end + 1 - from)));
  EXPECT_EQ(from, out.size()) << "every --verbose message ends with an empty line: " << out;
  return msgs;
}

/// The value of header line `name: value` in a --verbose message ("" when absent).
std::string header(const std::vector<std::string>& msg, const std::string& name) {
  for (const auto& l : msg)
    if (l.rfind(name + ": ", 0) == 0) return l.substr(name.size() + 2);
  return {};
}

/// The milliseconds of "1712345678901 (2024-04-05T19:34:38.901Z)".
std::int64_t millis(const std::string& v) { return std::stoll(v.substr(0, v.find(' '))); }

TEST_F(CliSystem_test, SendPropertiesAreTypedAndRecvVerbosePrintsThem) {
  const auto s = run_cli({"send", "queue://props", "--property", "flag=true", "--property", "n=42", "--property",
                          "x=2.5", "--property", "s=hello world", "--property", "i:int=7", "--property",
                          "str:string=123", "--property", "b:byte=-5", "--property", "sh:short=300", "--property",
                          "f:float=1.5", "--property", "e=1e3", "--property", "big=-9000000000", "--property",
                          "off:bool=false", "--property", "plus=+3", "--property", "n=43", "typed"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const auto r = run_cli({"recv", "queue://props", "--verbose", "--count", "1", "--timeout", "5000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto msgs = verbose_messages(r.out);
  ASSERT_EQ(msgs.size(), 1U) << r.out;
  const auto& m = msgs[0];
  ASSERT_GE(m.size(), 2U) << r.out;
  // The always-present headers (the id and the time vary), in order; no optional header was set.
  EXPECT_EQ(m[0].rfind("JMSMessageID: ID:", 0), 0U) << r.out;
  EXPECT_EQ(m[0].size(), std::string("JMSMessageID: ID:").size() + 32) << r.out;
  EXPECT_EQ(m[1].rfind("JMSTimestamp: ", 0), 0U) << r.out;
  EXPECT_GT(millis(header(m, "JMSTimestamp")), 1'600'000'000'000LL) << r.out;
  const std::vector<std::string> rest(m.begin() + 2, m.end());
  const std::vector<std::string> expected{
      "JMSDestination: queue://props",
      "JMSDeliveryMode: NON_PERSISTENT",
      "JMSPriority: 4",
      "JMSExpiration: 0 (never)",
      "JMSRedelivered: false",
      "JMSXDeliveryCount: 1",
      "BodyType: text",
      // Properties in name order, typed by the rules (a name given twice: the last value).
      "b (byte) = -5",
      "big (long) = -9000000000",
      "e (double) = 1000.0",
      "f (float) = 1.5",
      "flag (bool) = true",
      "i (int) = 7",
      "n (long) = 43",
      "off (bool) = false",
      "plus (long) = 3",
      "s (string) = hello world",
      "sh (short) = 300",
      "str (string) = 123",
      "x (double) = 2.5",
      "typed",
  };
  EXPECT_EQ(rest, expected) << r.out;

  // Without --verbose: the body only.
  ASSERT_EQ(run_cli({"send", "queue://props", "--property", "n=1", "plain"}).exit_code, 0);
  const auto p = run_cli({"recv", "queue://props", "--count", "1", "--timeout", "5000"});
  EXPECT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(p.out, "plain\n");
}

TEST_F(CliSystem_test, SendHeaderFlagsShowInRecvVerboseOnTopics) {
  // --priority and --ttl apply to topics too (carried in the header), as do --correlation-id
  // and --persistent.
  auto recv = Child::spawn(
      {SHMBUS_CLI_PATH, "--dir", dir_, "recv", "topic://hdr", "--verbose", "--count", "2", "--timeout", "10000"},
      {false, true, true});
  ASSERT_TRUE(wait_topic("topic://hdr", 1, kStartDeadline)) << "recv subscribed";
  const auto s = run_cli({"send", "topic://hdr", "--correlation-id", "req-42", "--persistent", "--priority", "8", "--ttl",
                          "600000", "first"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  ASSERT_EQ(run_cli({"send", "topic://hdr", "second"}).exit_code, 0);
  std::string out, err;
  ASSERT_TRUE(recv.drain(Millis(10000), out, err)) << "recv should stop after 2 messages";
  const auto st = recv.wait_exit(Millis(5000));
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << describe_status(*st) << "; stderr: " << err;
  const auto msgs = verbose_messages(out);
  ASSERT_EQ(msgs.size(), 2U) << out;

  const auto& a = msgs[0];
  EXPECT_EQ(header(a, "JMSCorrelationID"), "req-42") << out;
  EXPECT_EQ(header(a, "JMSDeliveryMode"), "PERSISTENT") << out;
  EXPECT_EQ(header(a, "JMSPriority"), "8") << out;
  EXPECT_EQ(header(a, "JMSDestination"), "topic://hdr") << out;
  EXPECT_EQ(header(a, "BodyType"), "text") << out;
  // Expiration = send time + ttl, both from the same clock read.
  EXPECT_EQ(millis(header(a, "JMSExpiration")), millis(header(a, "JMSTimestamp")) + 600000) << out;
  EXPECT_EQ(a.back(), "first") << out;
  const auto corr = std::find(a.begin(), a.end(), "JMSCorrelationID: req-42");
  const auto dest = std::find(a.begin(), a.end(), "JMSDestination: topic://hdr");
  EXPECT_TRUE(corr < dest) << "headers in the documented order: " << out;

  // The defaults; optional headers absent.
  const auto& b = msgs[1];
  EXPECT_EQ(header(b, "JMSCorrelationID"), "") << out;
  EXPECT_EQ(header(b, "JMSDeliveryMode"), "NON_PERSISTENT") << out;
  EXPECT_EQ(header(b, "JMSPriority"), "4") << out;
  EXPECT_EQ(header(b, "JMSExpiration"), "0 (never)") << out;
  EXPECT_EQ(b.back(), "second") << out;
  for (const auto& l : b) EXPECT_EQ(l.find("JMSCorrelationID"), std::string::npos) << out;
}

TEST_F(CliSystem_test, RecvVerbosePrintsRawPayloadsAndHeadersSetThroughTheApi) {
  auto session = observer().create_session();
  auto p = session.create_producer(Queue("api"));
  ASSERT_EQ(p.send(std::string_view("raw payload")), Status::Ok);
  TextMessage t("with headers");
  t.set_type("order");
  t.set_reply_to("queue://answers");
  t.set_correlation_id("c-1");
  t.set_int_property("qty", 3);
  ASSERT_EQ(p.send(t), Status::Ok);
  const auto r = run_cli({"recv", "queue://api", "--verbose", "--count", "2", "--timeout", "5000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto msgs = verbose_messages(r.out);
  ASSERT_EQ(msgs.size(), 2U) << r.out;
  EXPECT_EQ(header(msgs[0], "BodyType"), "raw") << r.out;
  EXPECT_EQ(header(msgs[0], "JMSDestination"), "queue://api") << r.out;
  EXPECT_EQ(msgs[0].back(), "raw payload") << r.out;
  EXPECT_EQ(header(msgs[1], "JMSType"), "order") << r.out;
  EXPECT_EQ(header(msgs[1], "JMSReplyTo"), "queue://answers") << r.out;
  EXPECT_EQ(header(msgs[1], "JMSCorrelationID"), "c-1") << r.out;
  const std::vector<std::string> tail(msgs[1].end() - 3, msgs[1].end());
  EXPECT_EQ(tail, (std::vector<std::string>{"BodyType: text", "qty (int) = 3", "with headers"})) << r.out;
}

TEST_F(CliSystem_test, SendTypeMapStreamAndBytesRoundTrip) {
  ASSERT_EQ(run_cli({"send", "queue://model", "--type", "map", "b=2 a:int=1  c=hello\td=false e=2.5 s:string=10"}).exit_code, 0);
  ASSERT_EQ(run_cli({"send", "queue://model", "--type", "stream", "1 two :short=3 true 4.5 :string=7 :byte=-1"}).exit_code, 0);
  // Each stdin line is one message; --type bytes sends a line as it is (not UTF-8 here).
  ASSERT_EQ(run_cli({"send", "queue://model", "--type", "bytes", "-"}, "raw \xff bytes\n").exit_code, 0);
  ASSERT_EQ(run_cli({"send", "queue://model", "--type", "map", "-"}, "x=1\n\nk=v\n").exit_code, 0);
  const auto r = run_cli({"recv", "queue://model", "--count", "6", "--timeout", "5000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{a=1, b=2, c=hello, d=false, e=2.5, s=10}\n"
            "[1, two, 3, true, 4.5, 7, -1]\n"
            "raw \xff bytes\n"
            "{x=1}\n"
            "{}\n"
            "{k=v}\n");
  const auto v = run_cli({"send", "queue://model", "--type", "stream", "--count", "2", "1"});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_TRUE(has(v.err, "sent 2 message(s)")) << v.err;
  const auto rv = run_cli({"recv", "queue://model", "--verbose", "--count", "2", "--timeout", "5000"});
  ASSERT_EQ(rv.exit_code, 0) << rv.err;
  const auto msgs = verbose_messages(rv.out);
  ASSERT_EQ(msgs.size(), 2U) << rv.out;
  EXPECT_EQ(header(msgs[0], "BodyType"), "stream") << rv.out;
  EXPECT_EQ(msgs[0].back(), "[1]") << rv.out;

  // The types survive the trip: read them back through the API.
  ASSERT_EQ(run_cli({"send", "queue://typed", "--type", "map", "b=2 a:int=1 c=hello d=false e=2.5 s:string=10 f:float=0.5"})
                .exit_code,
            0);
  ASSERT_EQ(run_cli({"send", "queue://typed", "--type", "stream", "1 two :short=3 true 4.5 :string=7"}).exit_code, 0);
  ASSERT_EQ(run_cli({"send", "queue://typed", "--type", "bytes", "ab"}).exit_code, 0);
  auto session = observer().create_session();
  auto c = session.create_consumer(Queue("typed"));
  Message m;
  ASSERT_EQ(c.receive(m, std::chrono::seconds(5)).status, Status::Ok);
  ASSERT_EQ(m.body_type(), BodyType::Map);
  const auto map = m.map();
  EXPECT_EQ(map.size(), 7U);
  EXPECT_EQ(map.find("a").type, ValueType::Int32);
  EXPECT_EQ(map.find("a").i, 1);
  EXPECT_EQ(map.find("b").type, ValueType::Int64);
  EXPECT_EQ(map.find("c").type, ValueType::String);
  EXPECT_EQ(map.find("c").s, "hello");
  EXPECT_EQ(map.find("d").type, ValueType::Bool);
  EXPECT_EQ(map.find("e").type, ValueType::Double);
  EXPECT_EQ(map.find("e").d, 2.5);
  EXPECT_EQ(map.find("s").type, ValueType::String);
  EXPECT_EQ(map.find("f").type, ValueType::Float);
  ASSERT_EQ(c.receive(m, std::chrono::seconds(5)).status, Status::Ok);
  ASSERT_EQ(m.body_type(), BodyType::Stream);
  auto stream = m.stream();
  std::vector<ValueType> types;
  for (Value x; stream.next(x);) types.push_back(x.type);
  EXPECT_EQ(types, (std::vector<ValueType>{ValueType::Int64, ValueType::String, ValueType::Int16, ValueType::Bool,
                                           ValueType::Double, ValueType::String}));
  ASSERT_EQ(c.receive(m, std::chrono::seconds(5)).status, Status::Ok);
  ASSERT_EQ(m.body_type(), BodyType::Bytes);
  EXPECT_TRUE(m.framed());
  EXPECT_EQ(m.body().size(), 2U);
}

TEST_F(CliSystem_test, RecvSelectorTakesOnlyMatchingMessagesAndTheOthersStay) {
  const std::vector<std::pair<std::string, std::string>> sends{
      {"red", "1"}, {"blue", "2"}, {"red", "3"}, {"blue", "4"}, {"red", "5"}};
  for (const auto& [color, n] : sends)
    ASSERT_EQ(run_cli({"send", "queue://sel", "--property", "color=" + color, "--property", "n=" + n, color + n}).exit_code, 0);
  ASSERT_EQ(run_cli({"send", "queue://sel", "--correlation-id", "req-7", "reply"}).exit_code, 0);

  const auto red = run_cli({"recv", "queue://sel", "--selector", "color = 'red' AND n > 1", "--count", "2", "--timeout", "5000"});
  EXPECT_EQ(red.exit_code, 0) << red.err;
  EXPECT_EQ(red.out, "red3\nred5\n");
  EXPECT_TRUE(has(red.err, "subscribed to queue://sel (ack auto) with selector color = 'red' AND n > 1")) << red.err;
  // A header selector.
  const auto corr = run_cli({"recv", "queue://sel", "--selector", "JMSCorrelationID = 'req-7'", "--count", "1", "--timeout", "5000"});
  EXPECT_EQ(corr.exit_code, 0) << corr.err;
  EXPECT_EQ(corr.out, "reply\n");
  // The others stayed in the queue.
  auto s = observer().stats();
  const auto* q = find_topic(s, "queue://sel");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->depth, 3U);
  EXPECT_EQ(q->in_flight, 0U);
  const auto rest = run_cli({"recv", "queue://sel", "--count", "3", "--timeout", "5000"});
  EXPECT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_EQ(rest.out, "red1\nblue2\nblue4\n");

  // Topics: the consumer skips what does not match.
  auto recv = Child::spawn({SHMBUS_CLI_PATH, "--dir", dir_, "recv", "topic://sel", "--selector", "n >= 3", "--count",
                            "1", "--timeout", "10000"},
                           {false, true, true});
  ASSERT_TRUE(wait_topic("topic://sel", 1, kStartDeadline)) << "recv subscribed";
  ASSERT_EQ(run_cli({"send", "topic://sel", "--property", "n=1", "skipped"}).exit_code, 0);
  ASSERT_EQ(run_cli({"send", "topic://sel", "--property", "n:byte=3", "taken"}).exit_code, 0);
  std::string out, err;
  ASSERT_TRUE(recv.drain(Millis(10000), out, err));
  const auto st = recv.wait_exit(Millis(5000));
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << describe_status(*st) << "; stderr: " << err;
  EXPECT_EQ(out, "taken\n");
}

TEST_F(CliSystem_test, RecvSelectorSyntaxErrorNamesThePositionAndCreatesNothing) {
  const auto r = run_cli({"recv", "queue://nosel", "--selector", "color = = 'red'"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(has(r.err, "--selector: selector syntax error at position 9")) << r.err;
  EXPECT_EQ(r.out, "");
  const auto t = run_cli({"recv", "topic://nosel", "--selector", "n > 'unterminated"});
  EXPECT_EQ(t.exit_code, 2) << t.err;
  EXPECT_TRUE(has(t.err, "selector syntax error at position 5")) << t.err;
  const auto s = observer().stats();
  EXPECT_EQ(find_topic(s, "queue://nosel"), nullptr);
  EXPECT_EQ(find_topic(s, "topic://nosel"), nullptr);
  // Checked before connecting: the same answer without a daemon.
  auto c = Child::spawn({SHMBUS_CLI_PATH, "--dir", root_ + "/nobody", "recv", "queue://x", "--selector", "a ="},
                        {false, true, true});
  std::string out, err;
  ASSERT_TRUE(c.drain(Millis(10000), out, err));
  const auto st = c.wait_exit(Millis(5000));
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 2) << describe_status(*st) << "; stderr: " << err;
  EXPECT_TRUE(has(err, "selector syntax error at position")) << err;
}

TEST_F(CliSystem_test, SendBadPropertyOrBodyIsRejectedAndNothingSent) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases{
      {{"--property", "1bad=x"}, "property name '1bad' is not allowed"},
      {{"--property", "NOT=1"}, "property name 'NOT' is not allowed"},
      {{"--property", "JMSFoo=1"}, "property name 'JMSFoo' is not allowed"},
      {{"--property", "n:byte=300"}, "'300' is out of range for byte (-128 to 127)"},
      {{"--property", "n:short=-40000"}, "out of range for short (-32768 to 32767)"},
      {{"--property", "n:int=1.5"}, "'1.5' is not a valid int"},
      {{"--property", "n:bool=yes"}, "'yes' is not a valid bool (true or false)"},
      {{"--property", "n:float=1e39"}, "out of range for float"},
      {{"--property", "n=99999999999999999999"}, "out of range for long"},
      {{"--property", "n:date=1"}, "unknown type 'date'"},
      {{"--property", "novalue"}, "needs NAME=VALUE or NAME:TYPE=VALUE"},
      {{"--property", "=1"}, "needs a name"},
      {{"--property", "ok=1", "--property", "bad name=1"}, "property name 'bad name' is not allowed"},
      {{"--type", "map", "a=1 =2"}, "map entry '=2'"},
      {{"--type", "map", "a:long=x"}, "'x' is not a valid long"},
      {{"--type", "stream", "1 :x"}, "a value starting with ':' is :TYPE=VALUE"},
      {{"--type", "stream", ":byte=128"}, "out of range for byte"},
      {{"\xff"}, "the text is not valid UTF-8"},
      {{"--correlation-id", "\xc3"}, "the correlation id is not valid UTF-8"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"send", "queue://strict"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    if (c.args.size() % 2 == 0 && c.args[0] != "--type") args.push_back("body");
    std::string line;
    for (const auto& a : args) line += a + " ";
    SCOPED_TRACE(line);
    const auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(has(r.err, c.says)) << r.err;
    EXPECT_TRUE(has(r.err, "nothing sent")) << r.err;
    EXPECT_EQ(r.out, "");
  }
  // Refused before connecting: the queue was never created.
  EXPECT_EQ(find_topic(observer().stats(), "queue://strict"), nullptr);
}

TEST_F(CliSystem_test, SendStopsAtABadStdinLineAndKeepsTheLinesBefore) {
  const auto s = run_cli({"send", "queue://lines", "-"}, "one\ntwo\n\xff\xfe\nfour\n");
  EXPECT_EQ(s.exit_code, 2) << s.err;
  EXPECT_TRUE(has(s.err, "line 3: the text is not valid UTF-8")) << s.err;
  EXPECT_TRUE(has(s.err, "--type bytes")) << "suggests the way to send it: " << s.err;
  EXPECT_TRUE(has(s.err, "sent 2 message(s) to queue://lines")) << s.err;
  const auto m = run_cli({"send", "queue://lines", "--type", "map", "-"}, "a=1\nb:int=x\nc=3\n");
  EXPECT_EQ(m.exit_code, 2) << m.err;
  EXPECT_TRUE(has(m.err, "line 2: map entry 'b:int=x': 'x' is not a valid int")) << m.err;
  EXPECT_TRUE(has(m.err, "sent 1 message(s)")) << m.err;
  const auto r = run_cli({"recv", "queue://lines", "--count", "3", "--timeout", "5000"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "one\ntwo\n{a=1}\n");
  const auto s2 = observer().stats();
  const auto* q = find_topic(s2, "queue://lines");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->depth, 0U) << "nothing after the bad lines was sent";
  EXPECT_EQ(q->tail, 3U) << "published";
}

}  // namespace
}  // namespace shmbus::systest
