// Queues (queue://NAME, docs/queues.md) through a real shmbusd: exactly-once delivery across
// processes, redelivery after a consumer's SIGKILL, every ack mode, transactions, dead letters,
// priority, expiry, delayed delivery, the browser, back-pressure and ack timeouts.
//
// Multi-process tests drive bus_agent children (qproduce / qconsume / qclient, see bus_agent.cpp);
// the API-semantics tests use the test's own connection to the fixture's daemon. Nothing here
// sleeps to synchronise: children are waited for on their stdout lines, the daemon's state on
// stats with a deadline. A receive with a short timeout is used only to assert that something
// does NOT arrive (a message that should never come).
#include "payload.hpp"
#include "system_fixture.hpp"

#include <algorithm>
#include <csignal>
#include <fstream>
#include <set>
#include <sstream>

namespace shmbus::systest {
namespace {

using Fields = std::map<std::string, std::string>;

// Redelivery after a consumer's SIGKILL: the design bound is one janitor tick (1 ms while a queue
// exists) plus the slot walk, after the daemon sees the death (socket EOF / pidfd) — docs/queues.md
// "Bounds to document and test". Asserted with a wide margin for loaded and sanitizer builds.
constexpr Millis kRedeliveryBound{2000};
// How long a test waits for something that must happen (generous: failures, not timing, matter).
constexpr Millis kWait{10000};
// How long a test waits for something that must NOT happen before it concludes it did not.
constexpr Millis kAbsent{300};

std::uint64_t num(const Fields& f, const std::string& k) {
  const auto it = f.find(k);
  if (it == f.end()) {
    ADD_FAILURE() << "line has no field '" << k << "'";
    return ~0ULL;
  }
  return std::stoull(it->second);
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// One message as an agent reported it ("got ... msgs=P:SEQ:R:DC,...") or a record file holds it.
struct Seen {
  std::uint32_t producer = 0;
  std::uint64_t seq = 0;
  bool redelivered = false;
  std::uint32_t delivery_count = 0;
};

std::vector<Seen> parse_msgs(const Fields& f) {
  std::vector<Seen> out;
  const auto it = f.find("msgs");
  if (it == f.end()) {
    ADD_FAILURE() << "reply has no msgs field";
    return out;
  }
  if (it->second == "-") return out;
  std::stringstream ss(it->second);
  for (std::string item; std::getline(ss, item, ',');) {
    Seen s;
    char c1 = 0, c2 = 0, c3 = 0;
    int r = 0;
    std::istringstream is(item);
    is >> s.producer >> c1 >> s.seq >> c2 >> r >> c3 >> s.delivery_count;
    if (!is || c1 != ':' || c2 != ':' || c3 != ':') ADD_FAILURE() << "bad msgs item '" << item << "'";
    s.redelivered = r != 0;
    out.push_back(s);
  }
  return out;
}

std::vector<std::uint64_t> seqs_of(const std::vector<Seen>& v) {
  std::vector<std::uint64_t> out;
  for (const auto& s : v) out.push_back(s.seq);
  return out;
}

// The 16-byte records qconsume writes (bus_agent.cpp: Record).
struct Record {
  std::uint32_t producer = 0;
  std::uint32_t count = 0;  // delivery count | 0x80000000 when flagged redelivered
  std::uint64_t seq = 0;
};
static_assert(sizeof(Record) == 16);

std::vector<Record> read_records(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << path;
  std::vector<Record> out;
  Record r;
  while (f.read(reinterpret_cast<char*>(&r), sizeof r)) out.push_back(r);
  EXPECT_TRUE(f.eof() && f.gcount() == 0) << path << " ends with a partial record";
  return out;
}

std::string join(const std::vector<std::uint64_t>& v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

// In-process helpers (the test's own connection).
Status send(MessageProducer& p, std::uint32_t id, std::uint64_t seq, const SendOptions& o = {}) {
  unsigned char buf[kPayloadSize];
  make_payload(id, seq, buf);
  return p.send(std::as_bytes(std::span<const unsigned char>(buf)), o);
}

SendOptions prio(int p) {
  SendOptions o;
  o.priority = p;
  return o;
}

// A received message with its decoded payload; `msg` is a copy, acknowledge() stays usable.
struct Got {
  Status status = Status::Timeout;
  Message msg;
  Decoded payload;
};

Got recv(MessageConsumer& c, Millis timeout) {
  Got g;
  g.status = c.receive(g.msg, timeout).status;
  if (g.status == Status::Ok) {
    g.payload = read_payload(g.msg.body());
    EXPECT_TRUE(g.payload.intact) << "corrupted payload";
  }
  return g;
}

const DestinationStats* dest(const BusStats& s, const std::string& uri) { return find_topic(s, uri); }

class QueueSystem_test : public SystemTest {
 protected:
  /// Polls stats until `pred` holds for `uri` (which must exist).
  std::optional<DestinationStats> wait_queue(const std::string& uri, const std::function<bool(const DestinationStats&)>& pred,
                                             const std::string& what, Millis timeout = kWait) {
    const auto s = wait_stats(
        [&](const BusStats& b) {
          const auto* d = dest(b, uri);
          return d && pred(*d);
        },
        timeout, uri + ": " + what);
    if (!s) {
      if (observer_) {
        const auto last = observer().stats();
        if (const auto* d = dest(last, uri))
          ADD_FAILURE() << uri << " last: depth=" << d->depth << " scheduled=" << d->scheduled << " in_flight=" << d->in_flight
                        << " redelivered=" << d->redelivered << " dead_lettered=" << d->dead_lettered
                        << " expired=" << d->expired << " ack_timeouts=" << d->ack_timeouts << " dropped=" << d->dropped
                        << " consumers=" << d->subscribers.size();
      }
      return std::nullopt;
    }
    return *dest(*s, uri);
  }
  /// Everything sent was consumed and settled: nothing waiting, nothing in flight.
  std::optional<DestinationStats> wait_drained(const std::string& uri, Millis timeout = kWait) {
    return wait_queue(uri, [](const DestinationStats& d) { return d.depth == 0 && d.in_flight == 0; },
                      "depth 0 and in_flight 0 (everything consumed and acknowledged)", timeout);
  }
  /// Sends one qclient command and returns its reply line.
  std::optional<Fields> ask(Child& c, const std::string& cmd, const std::string& prefix, Millis timeout = kWait) {
    EXPECT_TRUE(c.write_stdin(cmd + "\n")) << "cannot write '" << cmd << "' to " << c.name();
    return expect_line(c, prefix, timeout, "reply to '" + cmd + "'");
  }
  std::string rec_path(const std::string& name) const { return root_ + "/" + name + ".bin"; }
};

// ---------------------------------------------------------------------------------------------
// 1. Forbidden: any (producer, seq) consumed twice or never, or a corrupted payload, with four
// producer and four consumer processes on one queue in AUTO mode.
TEST_F(QueueSystem_test, FourProducersFourConsumersDeliverEachMessageExactlyOnce) {
  constexpr int kProducers = 4;
  constexpr int kConsumers = 4;
  constexpr std::uint64_t kEach = 50'000;
  const std::vector<std::string> geo{"--queue", "work", "--capacity", "65536", "--max-size", "64"};

  std::vector<Child> cons;
  for (int i = 0; i < kConsumers; ++i)
    cons.push_back(agent("qconsume", with(geo, {"--ack", "auto", "--out", rec_path("c" + std::to_string(i))})));
  for (auto& c : cons) ASSERT_TRUE(expect_line(c, "ready", kStartDeadline, "consumer attached"));
  ASSERT_TRUE(wait_queue("queue://work", [&](const DestinationStats& d) { return d.subscribers.size() == static_cast<std::size_t>(kConsumers); },
                         "4 consumers attached"));

  const auto t0 = Clock::now();
  std::vector<Child> prods;
  for (int k = 1; k <= kProducers; ++k)
    prods.push_back(agent("qproduce", with(geo, {"--id", std::to_string(k), "--count", std::to_string(kEach)})));
  for (auto& p : prods) {
    const auto f = expect_line(p, "done", Millis(60000), "producer sent all its messages");
    ASSERT_TRUE(f);
    EXPECT_EQ(num(*f, "sent"), kEach);
    expect_clean_exit(p, Millis(10000), "producer");
  }
  const double sent_ms = ms_since(t0);
  ASSERT_TRUE(wait_drained("queue://work", Millis(60000)));
  const double drained_ms = ms_since(t0);

  std::vector<std::uint64_t> per_consumer;
  for (auto& c : cons) {
    ASSERT_TRUE(c.write_stdin("stop\n"));
    const auto f = expect_line(c, "done", Millis(10000), "consumer stopped");
    ASSERT_TRUE(f);
    EXPECT_EQ(num(*f, "bad"), 0u) << "checksum or size mismatch";
    EXPECT_EQ(num(*f, "redelivered"), 0u) << "AUTO mode, nobody died: nothing is redelivered";
    per_consumer.push_back(num(*f, "received"));
    expect_clean_exit(c, Millis(10000), "consumer");
  }

  // Exactly once: every (producer, seq) in exactly one consumer's records, once.
  std::vector<std::vector<std::uint8_t>> seen(kProducers + 1, std::vector<std::uint8_t>(kEach + 1, 0));
  std::uint64_t total = 0, foreign = 0, dups = 0, redelivered = 0;
  for (int i = 0; i < kConsumers; ++i) {
    const auto recs = read_records(rec_path("c" + std::to_string(i)));
    EXPECT_EQ(recs.size(), per_consumer[i]) << "consumer " << i << " recorded what it reported";
    for (const auto& r : recs) {
      ++total;
      if (r.producer < 1 || r.producer > kProducers || r.seq < 1 || r.seq > kEach) {
        ++foreign;
        continue;
      }
      if (r.count != 1) ++redelivered;
      if (seen[r.producer][r.seq]++ != 0) ++dups;
    }
  }
  std::uint64_t missing = 0;
  std::string first_missing;
  for (int k = 1; k <= kProducers; ++k)
    for (std::uint64_t s = 1; s <= kEach; ++s)
      if (seen[k][s] == 0 && missing++ == 0) first_missing = std::to_string(k) + ":" + std::to_string(s);
  std::cout << "[ info ] 4x4 processes, " << kProducers * kEach << " messages: all sent after " << sent_ms
            << " ms, all consumed after " << drained_ms << " ms; per consumer:";
  for (auto n : per_consumer) std::cout << " " << n;
  std::cout << "\n";
  RecordProperty("drained_ms", static_cast<int>(drained_ms));
  EXPECT_EQ(total, kProducers * kEach);
  EXPECT_EQ(foreign, 0u) << "records naming an unknown producer or sequence";
  EXPECT_EQ(dups, 0u) << "messages consumed more than once";
  EXPECT_EQ(missing, 0u) << "messages never consumed (first: " << first_missing << ")";
  EXPECT_EQ(redelivered, 0u) << "delivery_count != 1 although no consumer died";
}

// ---------------------------------------------------------------------------------------------
// 2. Forbidden: messages a SIGKILLed CLIENT-mode consumer received and never acknowledged staying
// lost, coming back unflagged, or coming back later than kRedeliveryBound after the kill.
TEST_F(QueueSystem_test, KilledClientConsumerUnackedMessagesAreRedeliveredToAnotherWithinBound) {
  constexpr std::uint64_t kK = 100;
  const std::vector<std::string> geo{"--queue", "crash", "--capacity", "1024", "--max-size", "64"};
  auto prod = agent("qproduce", with(geo, {"--id", "1", "--count", std::to_string(kK)}));
  ASSERT_TRUE(expect_line(prod, "done", kWait, "producer sent"));
  expect_clean_exit(prod, kWait, "producer");

  auto a = agent("qclient", with(geo, {"--ack", "client"}));
  ASSERT_TRUE(expect_line(a, "ready", kStartDeadline, "consumer A attached"));
  const auto ga = ask(a, "recv " + std::to_string(kK) + " 5000", "got");
  ASSERT_TRUE(ga);
  const auto got_a = parse_msgs(*ga);
  ASSERT_EQ(got_a.size(), kK) << "A receives every message";
  for (std::size_t i = 0; i < got_a.size(); ++i) {
    EXPECT_EQ(got_a[i].seq, i + 1) << "FIFO";
    EXPECT_FALSE(got_a[i].redelivered);
    EXPECT_EQ(got_a[i].delivery_count, 1u);
  }
  ASSERT_TRUE(wait_queue("queue://crash", [&](const DestinationStats& d) { return d.in_flight == kK && d.depth == 0; },
                         "all 100 in flight to A"));

  auto b = agent("qclient", with(geo, {"--ack", "client"}));
  ASSERT_TRUE(expect_line(b, "ready", kStartDeadline, "consumer B attached"));
  ASSERT_TRUE(b.write_stdin("recv " + std::to_string(kK) + " 10000\n"));  // B waits: everything is A's

  const auto killed_ns = now_ns();
  a.kill(SIGKILL);
  const auto gb = expect_line(b, "got", Millis(15000), "B receives the dead consumer's messages");
  ASSERT_TRUE(gb);
  const auto got_b = parse_msgs(*gb);
  ASSERT_EQ(got_b.size(), kK) << "every unacknowledged message comes back; status " << gb->at("status");
  const double bound_ms = static_cast<double>(static_cast<std::int64_t>(num(*gb, "at_ns")) - killed_ns) / 1e6;
  std::cout << "[ info ] all " << kK << " unacked messages redelivered to B " << bound_ms
            << " ms after SIGKILL of A (asserted < " << kRedeliveryBound.count() << " ms)\n";
  RecordProperty("redelivery_after_sigkill_us", static_cast<int>(bound_ms * 1000));
  EXPECT_LT(bound_ms, static_cast<double>(kRedeliveryBound.count()));
  std::set<std::uint64_t> seqs;
  for (const auto& s : got_b) {
    seqs.insert(s.seq);
    EXPECT_TRUE(s.redelivered) << "seq " << s.seq << " must be flagged redelivered";
    EXPECT_GE(s.delivery_count, 2u) << "seq " << s.seq;
  }
  EXPECT_EQ(seqs.size(), kK) << "no duplicates among the redelivered";
  EXPECT_EQ(*seqs.begin(), 1u);
  EXPECT_EQ(*seqs.rbegin(), kK);

  const auto ack = ask(b, "ack " + std::to_string(kK), "ack");
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->at("status"), "ok");
  const auto d = wait_drained("queue://crash");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->redelivered, kK);
  const auto none = ask(b, "recv 1 " + std::to_string(kAbsent.count()), "got");
  ASSERT_TRUE(none);
  EXPECT_EQ(num(*none, "n"), 0u) << "acknowledged messages never come back";
  ASSERT_TRUE(ask(b, "exit", "bye"));
  expect_clean_exit(b, kWait, "consumer B");
  const auto st = a.wait_exit(kWait);
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL) << describe_status(*st);
}

// ---------------------------------------------------------------------------------------------
// 3. CLIENT: Message::acknowledge() on the 3rd of 5 received acknowledges all five; the 2 received
// after it and never acknowledged come back after the consumer's crash, the 5 do not.
TEST_F(QueueSystem_test, ClientAckOfThirdMessageAcknowledgesAllFiveReceivedSoFar) {
  const std::vector<std::string> geo{"--queue", "cack", "--capacity", "64", "--max-size", "64"};
  auto prod = agent("qproduce", with(geo, {"--id", "1", "--count", "7"}));
  ASSERT_TRUE(expect_line(prod, "done", kWait, "producer sent"));

  auto a = agent("qclient", with(geo, {"--ack", "client"}));
  ASSERT_TRUE(expect_line(a, "ready", kStartDeadline, "consumer A attached"));
  const auto first = ask(a, "recv 5 5000", "got");
  ASSERT_TRUE(first);
  EXPECT_EQ(join(seqs_of(parse_msgs(*first))), "1,2,3,4,5");
  const auto ack3 = ask(a, "ack 3", "ack");
  ASSERT_TRUE(ack3);
  EXPECT_EQ(ack3->at("status"), "ok");
  ASSERT_TRUE(wait_queue("queue://cack", [](const DestinationStats& d) { return d.in_flight == 0 && d.depth == 2; },
                         "acknowledging the 3rd settled all five (in_flight 0, 2 waiting)"));
  const auto ack5 = ask(a, "ack 5", "ack");
  ASSERT_TRUE(ack5);
  EXPECT_EQ(ack5->at("status"), "ack-too-late") << "the 5th was already acknowledged by acknowledging the 3rd";
  const auto second = ask(a, "recv 2 5000", "got");
  ASSERT_TRUE(second);
  EXPECT_EQ(join(seqs_of(parse_msgs(*second))), "6,7");
  a.kill(SIGKILL);

  auto b = agent("qclient", with(geo, {"--ack", "client"}));
  ASSERT_TRUE(expect_line(b, "ready", kStartDeadline, "consumer B attached"));
  const auto back = ask(b, "recv 2 5000", "got");
  ASSERT_TRUE(back);
  const auto got = parse_msgs(*back);
  EXPECT_EQ(join(seqs_of(got)), "6,7") << "exactly the two unacknowledged messages come back";
  for (const auto& s : got) {
    EXPECT_TRUE(s.redelivered) << s.seq;
    EXPECT_EQ(s.delivery_count, 2u) << s.seq;
  }
  const auto none = ask(b, "recv 1 " + std::to_string(kAbsent.count()), "got");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->at("msgs"), "-") << "none of the five acknowledged messages comes back";
  const auto sack = ask(b, "sack", "sack");
  ASSERT_TRUE(sack);
  EXPECT_EQ(num(*sack, "n"), 2u) << "Session::acknowledge() settles both";
  const auto d = wait_drained("queue://cack");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->redelivered, 2u);
  expect_clean_exit(prod, kWait, "producer");
}

// INDIVIDUAL: acknowledging the 3rd of 5 acknowledges only that one; the other four come back.
TEST_F(QueueSystem_test, IndividualAckAcknowledgesOnlyThatMessage) {
  const std::vector<std::string> geo{"--queue", "iack", "--capacity", "64", "--max-size", "64"};
  auto prod = agent("qproduce", with(geo, {"--id", "1", "--count", "5"}));
  ASSERT_TRUE(expect_line(prod, "done", kWait, "producer sent"));

  auto a = agent("qclient", with(geo, {"--ack", "individual"}));
  ASSERT_TRUE(expect_line(a, "ready", kStartDeadline, "consumer A attached"));
  const auto first = ask(a, "recv 5 5000", "got");
  ASSERT_TRUE(first);
  EXPECT_EQ(join(seqs_of(parse_msgs(*first))), "1,2,3,4,5");
  const auto ack3 = ask(a, "ack 3", "ack");
  ASSERT_TRUE(ack3);
  EXPECT_EQ(ack3->at("status"), "ok");
  ASSERT_TRUE(wait_queue("queue://iack", [](const DestinationStats& d) { return d.in_flight == 4; },
                         "four still in flight after acknowledging one"));
  a.kill(SIGKILL);

  auto b = agent("qclient", with(geo, {"--ack", "individual"}));
  ASSERT_TRUE(expect_line(b, "ready", kStartDeadline, "consumer B attached"));
  const auto back = ask(b, "recv 4 5000", "got");
  ASSERT_TRUE(back);
  auto s = seqs_of(parse_msgs(*back));
  std::sort(s.begin(), s.end());
  EXPECT_EQ(join(s), "1,2,4,5");
  const auto none = ask(b, "recv 1 " + std::to_string(kAbsent.count()), "got");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->at("msgs"), "-") << "the acknowledged 3rd never comes back";
  expect_clean_exit(prod, kWait, "producer");
}

// ---------------------------------------------------------------------------------------------
// 4. DUPS_OK: consumers SIGKILLed mid-stream — one paused at a known point with up to a batch
// unacknowledged, one killed while receiving as fast as it can — lose nothing: the union of what
// every consumer received covers every message (duplicates allowed: at most the unacked batch).
TEST_F(QueueSystem_test, DupsOkConsumersKilledMidStreamLoseNothing) {
  constexpr std::uint64_t kEach = 10'000;
  constexpr std::uint32_t kBatch = 32;
  constexpr std::uint64_t kPause = 1000;  // 31 full batches acked, 8 not
  const std::vector<std::string> geo{"--queue", "dups", "--capacity", "65536", "--max-size", "64"};

  // A1 stops after kPause messages; A2 acknowledges only when it finds the queue empty (a batch
  // larger than the run) and is killed wherever it is once it has received 1000.
  auto a1 = agent("qconsume", with(geo, {"--ack", "dups_ok", "--batch", std::to_string(kBatch), "--sync-out", "--out",
                                         rec_path("a1"), "--pause-after", std::to_string(kPause)}));
  auto a2 = agent("qconsume", with(geo, {"--ack", "dups_ok", "--batch", "1000000", "--sync-out", "--out",
                                         rec_path("a2"), "--progress-every", "250"}));
  ASSERT_TRUE(expect_line(a1, "ready", kStartDeadline, "A1 attached"));
  ASSERT_TRUE(expect_line(a2, "ready", kStartDeadline, "A2 attached"));

  std::vector<Child> prods;
  for (int k = 1; k <= 2; ++k)
    prods.push_back(agent("qproduce", with(geo, {"--id", std::to_string(k), "--count", std::to_string(kEach)})));

  const auto p2 = expect_line(a2, "progress n=1000", kWait, "A2 received 1000");
  ASSERT_TRUE(p2);
  a2.kill(SIGKILL);
  ASSERT_TRUE(expect_line(a1, "paused", kWait, "A1 received its 1000 and stopped"));
  a1.kill(SIGKILL);

  auto b = agent("qconsume", with(geo, {"--ack", "dups_ok", "--batch", std::to_string(kBatch), "--out", rec_path("b")}));
  ASSERT_TRUE(expect_line(b, "ready", kStartDeadline, "B attached"));
  for (auto& p : prods) {
    ASSERT_TRUE(expect_line(p, "done", Millis(30000), "producer sent all"));
    expect_clean_exit(p, kWait, "producer");
  }
  ASSERT_TRUE(wait_drained("queue://dups", Millis(30000)));
  ASSERT_TRUE(b.write_stdin("stop\n"));
  const auto fb = expect_line(b, "done", kWait, "B stopped");
  ASSERT_TRUE(fb);
  EXPECT_EQ(num(*fb, "bad"), 0u);
  expect_clean_exit(b, kWait, "B");
  for (auto* c : {&a1, &a2}) {
    const auto st = c->wait_exit(kWait);
    ASSERT_TRUE(st);
    EXPECT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL) << describe_status(*st);
  }

  const auto r1 = read_records(rec_path("a1"));
  const auto r2 = read_records(rec_path("a2"));
  const auto rb = read_records(rec_path("b"));
  EXPECT_EQ(r1.size(), kPause) << "A1 recorded every message before it paused";
  EXPECT_GE(r2.size(), 1000u) << "A2 recorded at least what it reported";
  std::map<std::pair<std::uint32_t, std::uint64_t>, int> in_a1, in_a2, in_b;
  for (const auto& r : r1) ++in_a1[{r.producer, r.seq}];
  for (const auto& r : r2) ++in_a2[{r.producer, r.seq}];
  for (const auto& r : rb) ++in_b[{r.producer, r.seq}];
  std::uint64_t missing = 0, dup_a1 = 0, dup_a2 = 0, b_twice = 0, b_redelivered = 0, bad_flag = 0;
  for (std::uint32_t k = 1; k <= 2; ++k)
    for (std::uint64_t s = 1; s <= kEach; ++s) {
      const std::pair<std::uint32_t, std::uint64_t> id{k, s};
      const int n1 = in_a1.count(id) ? in_a1[id] : 0, n2 = in_a2.count(id) ? in_a2[id] : 0, nb = in_b.count(id) ? in_b[id] : 0;
      if (n1 + n2 + nb == 0) ++missing;
      if (n1 && nb) ++dup_a1;
      if (n2 && nb) ++dup_a2;
      if (nb > 1 || n1 > 1 || n2 > 1) ++b_twice;
    }
  for (const auto& r : rb) {
    const bool flagged = (r.count & 0x80000000U) != 0;
    const std::uint32_t dc = r.count & 0x7fffffffU;
    if (flagged) ++b_redelivered;
    if (flagged != (dc >= 2)) ++bad_flag;
  }
  std::cout << "[ info ] DUPS_OK kills: A1 " << r1.size() << " received (" << dup_a1 << " again at B), A2 " << r2.size()
            << " received (" << dup_a2 << " again at B), B " << rb.size() << " (" << b_redelivered << " redelivered)\n";
  EXPECT_EQ(missing, 0u) << "DUPS_OK may duplicate, never lose";
  // A batch is acknowledged at the receive after its last message (never as that message is
  // handed out: a crash while processing it must bring it back), so a paused consumer can hold up
  // to a whole batch unacknowledged, kBatch messages when its last receive completed a batch.
  EXPECT_LE(dup_a1, kBatch) << "only A1's last, unacknowledged batch may come again";
  EXPECT_EQ(b_twice, 0u) << "one consumer never gets the same message twice here";
  EXPECT_EQ(bad_flag, 0u) << "redelivered() must agree with delivery_count() >= 2";
  EXPECT_GE(b_redelivered, dup_a1 + dup_a2) << "what comes again is flagged redelivered";
}

// DUPS_OK acknowledges only every dups_ok_batch messages (or when the queue is empty). A queue
// smaller than the batch: the consumer's in-flight window (= capacity) fills before a batch
// completes. Forbidden: the consumer stuck (WindowFull forever, the producer blocked forever) —
// a DUPS_OK consumer has no call that acknowledges.
TEST_F(QueueSystem_test, DupsOkConsumerOnQueueSmallerThanItsBatchKeepsReceiving) {
  constexpr std::uint64_t kCount = 40;
  const std::vector<std::string> geo{"--queue", "dupsmall", "--capacity", "16", "--max-size", "64"};
  auto prod = agent("qproduce", with(geo, {"--id", "1", "--count", std::to_string(kCount), "--send-timeout-ms", "5000"}));
  ASSERT_TRUE(expect_line(prod, "ready", kStartDeadline, "producer attached"));
  auto c = agent("qclient", with(geo, {"--ack", "dups_ok", "--batch", "32"}));
  ASSERT_TRUE(expect_line(c, "ready", kStartDeadline, "consumer attached"));
  const auto got = ask(c, "recv " + std::to_string(kCount) + " 2000", "got", Millis(60000));
  ASSERT_TRUE(got);
  EXPECT_EQ(num(*got, "n"), kCount) << "the consumer stopped with status " << got->at("status")
                                    << " after receiving a full window (16) of unacknowledged messages";
  const auto done = expect_line(prod, "done", kWait, "producer sent everything");
  EXPECT_TRUE(done);
}

// DUPS_OK promises duplicates, never loss (include/shmbus/shmbus.hpp, docs/queues.md): a consumer
// that crashes while processing a message it received must get it (or another consumer must) again.
// Deterministic crash point: the consumer SIGKILLs itself as its dups_ok_batch-th receive() returns,
// before it has done anything with that message. Forbidden: that message never delivered again.
TEST_F(QueueSystem_test, DupsOkConsumerCrashingWhileProcessingABatchBoundaryMessageLosesNothing) {
  constexpr std::uint64_t kCount = 8;
  constexpr std::uint32_t kBatch = 4;
  const std::vector<std::string> geo{"--queue", "dupsedge", "--capacity", "64", "--max-size", "64"};
  auto prod = agent("qproduce", with(geo, {"--id", "1", "--count", std::to_string(kCount)}));
  ASSERT_TRUE(expect_line(prod, "done", kWait, "producer sent"));
  auto a = agent("qconsume", with(geo, {"--ack", "dups_ok", "--batch", std::to_string(kBatch), "--sync-out", "--out",
                                        rec_path("a"), "--crash-after", std::to_string(kBatch)}));
  const auto st = a.wait_exit(kWait);
  ASSERT_TRUE(st);
  ASSERT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL) << describe_status(*st);
  const auto ra = read_records(rec_path("a"));
  ASSERT_EQ(ra.size(), kBatch - 1) << "A processed the messages before the one it died on";

  auto b = agent("qclient", with(geo, {"--ack", "auto"}));
  ASSERT_TRUE(expect_line(b, "ready", kStartDeadline, "B attached"));
  const auto gb = ask(b, "recv " + std::to_string(kCount) + " 1000", "got");
  ASSERT_TRUE(gb);
  std::set<std::uint64_t> all;
  for (const auto& r : ra) all.insert(r.seq);
  for (const auto& x : parse_msgs(*gb)) all.insert(x.seq);
  std::string missing;
  for (std::uint64_t s = 1; s <= kCount; ++s)
    if (!all.count(s)) missing += " " + std::to_string(s);
  EXPECT_TRUE(missing.empty()) << "never processed by anyone:" << missing << " (A died holding message " << kBatch
                               << ", which receive() had already acknowledged as the end of a DUPS_OK batch)";
  expect_clean_exit(prod, kWait, "producer");
}

// ---------------------------------------------------------------------------------------------
// 5. Transacted producer: sends stay invisible until commit, rollback discards them.
TEST_F(QueueSystem_test, TransactedProducerRollbackDiscardsCommitDelivers) {
  constexpr std::uint64_t kN = 10;
  const Queue q("txp");
  auto tx = observer().create_session(AckMode::Transacted);
  auto rx = observer().create_session(AckMode::Auto);
  auto c = rx.create_consumer(q, {}, {64, 64});
  auto p = tx.create_producer(q, {}, {64, 64});

  for (std::uint64_t s = 1; s <= kN; ++s) ASSERT_EQ(send(p, 1, s), Status::Ok);
  EXPECT_EQ(recv(c, kAbsent).status, Status::Timeout) << "uncommitted sends must not be delivered";
  auto st = observer().stats();
  ASSERT_TRUE(dest(st, "queue://txp"));
  EXPECT_EQ(dest(st, "queue://txp")->depth, 0u) << "uncommitted sends are not waiting messages";
  tx.rollback();
  EXPECT_EQ(recv(c, kAbsent).status, Status::Timeout) << "rolled-back sends must never be delivered";
  st = observer().stats();
  EXPECT_EQ(dest(st, "queue://txp")->depth, 0u);
  EXPECT_EQ(dest(st, "queue://txp")->in_flight, 0u);

  for (std::uint64_t s = kN + 1; s <= 2 * kN; ++s) ASSERT_EQ(send(p, 1, s), Status::Ok);
  EXPECT_EQ(recv(c, Millis(50)).status, Status::Timeout) << "not before commit";
  tx.commit();
  std::vector<std::uint64_t> seqs;
  for (std::uint64_t i = 0; i < kN; ++i) {
    const auto g = recv(c, kWait);
    ASSERT_EQ(g.status, Status::Ok) << "committed message " << i + 1 << " of " << kN;
    seqs.push_back(g.payload.seq);
    EXPECT_FALSE(g.msg.redelivered());
  }
  EXPECT_EQ(join(seqs), "11,12,13,14,15,16,17,18,19,20") << "exactly the committed sends, in order";
  EXPECT_EQ(recv(c, kAbsent).status, Status::Timeout) << "nothing of the rolled-back batch";
  EXPECT_TRUE(wait_drained("queue://txp"));
}

// Transacted consumer: rollback gives the receives back (flagged redelivered), commit settles them.
TEST_F(QueueSystem_test, TransactedConsumerRollbackRedeliversCommitSettles) {
  constexpr std::uint64_t kN = 5;
  const Queue q("txc");
  auto tx = observer().create_session(AckMode::Transacted);
  auto c = tx.create_consumer(q, {}, {64, 64});
  auto ps = observer().create_session(AckMode::Auto);
  auto p = ps.create_producer(q, {}, {64, 64});
  for (std::uint64_t s = 1; s <= kN; ++s) ASSERT_EQ(send(p, 1, s), Status::Ok);

  std::vector<std::uint64_t> first;
  for (std::uint64_t i = 0; i < kN; ++i) {
    const auto g = recv(c, kWait);
    ASSERT_EQ(g.status, Status::Ok);
    EXPECT_FALSE(g.msg.redelivered());
    EXPECT_EQ(g.msg.delivery_count(), 1u);
    first.push_back(g.payload.seq);
  }
  EXPECT_EQ(join(first), "1,2,3,4,5");
  ASSERT_TRUE(wait_queue("queue://txc", [&](const DestinationStats& d) { return d.in_flight == kN; }, "5 in flight"));
  tx.rollback();
  std::vector<std::uint64_t> again;
  for (std::uint64_t i = 0; i < kN; ++i) {
    const auto g = recv(c, kWait);
    ASSERT_EQ(g.status, Status::Ok) << "rolled-back receive " << i + 1 << " comes back";
    EXPECT_TRUE(g.msg.redelivered()) << "seq " << g.payload.seq;
    EXPECT_EQ(g.msg.delivery_count(), 2u) << "seq " << g.payload.seq;
    again.push_back(g.payload.seq);
  }
  std::cout << "[ info ] order after rollback: " << join(again) << "\n";
  auto sorted = again;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(join(sorted), "1,2,3,4,5");
  tx.commit();
  EXPECT_EQ(recv(c, kAbsent).status, Status::Timeout) << "committed receives are never redelivered";
  const auto d = wait_drained("queue://txc");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->redelivered, kN);
  tx.rollback();  // nothing left to give back
  EXPECT_EQ(recv(c, kAbsent).status, Status::Timeout) << "a rollback after commit gives nothing back";
}

// A transaction that held its receives past the ack timeout cannot commit them: commit() says so
// (PartiallyCommitted, with the count) instead of pretending; the messages come back.
TEST_F(QueueSystem_test, CommitAfterTheAckTimeoutTookReceivesBackReportsIt) {
  const Queue q("txlate");
  auto tx = observer().create_session(AckMode::Transacted);
  ConsumerOptions co;
  co.ack_timeout = std::chrono::milliseconds(100);
  auto c = tx.create_consumer(q, co, {64, 64});
  auto ps = observer().create_session(AckMode::Auto);
  auto p = ps.create_producer(q, {}, {64, 64});
  ASSERT_EQ(send(p, 1, 1), Status::Ok);
  ASSERT_EQ(send(p, 1, 2), Status::Ok);
  for (int i = 0; i < 2; ++i) ASSERT_EQ(recv(c, kWait).status, Status::Ok);
  ASSERT_TRUE(wait_queue("queue://txlate", [](const DestinationStats& d) { return d.ack_timeouts == 2 && d.in_flight == 0; },
                         "both receives taken back by the 100 ms ack timeout"));

  try {
    tx.commit();
    FAIL() << "commit() hid that its receives had been taken back";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PartiallyCommitted);
    EXPECT_NE(std::string(e.what()).find("2 of the 2"), std::string::npos) << e.what();
  }
  for (int i = 0; i < 2; ++i) {
    const auto g = recv(c, kWait);
    ASSERT_EQ(g.status, Status::Ok) << "taken-back receive " << i + 1 << " comes again";
    EXPECT_TRUE(g.msg.redelivered());
  }
  EXPECT_NO_THROW(tx.commit());
  ASSERT_TRUE(wait_drained("queue://txlate"));
}

// ---------------------------------------------------------------------------------------------
// 6. A message delivered max_deliveries (2) times without acknowledgement moves to queue://DLQ.NAME
// with dead_letter_reason() 1 and its origin, and is counted in the queue's stats.
TEST_F(QueueSystem_test, MaxDeliveriesMovesMessageToDeadLetterQueue) {
  DestinationOptions o;
  o.capacity = 64;
  o.max_message_size = 64;
  o.max_deliveries = 2;
  auto s = observer().create_session(AckMode::Client);
  auto c = s.create_consumer(Queue("poison"), {}, o);
  auto ps = observer().create_session();
  auto p = ps.create_producer(Queue("poison"), {}, o);
  ASSERT_EQ(send(p, 5, 42), Status::Ok);

  for (std::uint32_t n = 1; n <= 2; ++n) {
    const auto g = recv(c, kWait);
    ASSERT_EQ(g.status, Status::Ok) << "delivery " << n;
    EXPECT_EQ(g.payload.seq, 42u);
    EXPECT_EQ(g.msg.delivery_count(), n);
    EXPECT_EQ(g.msg.redelivered(), n > 1);
    EXPECT_EQ(s.recover(), 1u) << "recover gives the one message back";
  }
  const auto d = wait_queue("queue://poison", [](const DestinationStats& x) { return x.dead_lettered == 1; },
                            "dead_lettered == 1");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->dlq, "queue://DLQ.poison");
  EXPECT_EQ(d->depth, 0u);
  EXPECT_EQ(d->in_flight, 0u);
  EXPECT_EQ(recv(c, kAbsent).status, Status::Timeout) << "no third delivery from the original queue";

  auto ds = observer().create_session(AckMode::Auto);
  auto dc = ds.create_consumer(Queue("DLQ.poison"), {}, o);
  const auto g = recv(dc, kWait);
  ASSERT_EQ(g.status, Status::Ok) << "the dead letter is in queue://DLQ.poison";
  EXPECT_EQ(g.payload.producer, 5u);
  EXPECT_EQ(g.payload.seq, 42u);
  EXPECT_EQ(g.msg.dead_letter_reason(), 1) << "1 = max deliveries reached";
  EXPECT_EQ(g.msg.origin_destination_id(), d->dest_id);
  EXPECT_EQ(recv(dc, kAbsent).status, Status::Timeout) << "exactly one dead letter";
  const auto st = observer().stats();
  ASSERT_TRUE(dest(st, "queue://DLQ.poison"));
  EXPECT_EQ(dest(st, "queue://poison")->dead_lettered, 1u);
  EXPECT_EQ(dest(st, "queue://poison")->redelivered, 1u) << "delivered twice: one redelivery";
}

// CLIENT: a consumer closed (not crashed) with unacknowledged messages gives them back.
TEST_F(QueueSystem_test, ClosedClientConsumerGivesUnackedMessagesBack) {
  const std::vector<std::string> geo{"--queue", "cclose", "--capacity", "64", "--max-size", "64"};
  auto prod = agent("qproduce", with(geo, {"--id", "1", "--count", "3"}));
  ASSERT_TRUE(expect_line(prod, "done", kWait, "producer sent"));
  auto a = agent("qclient", with(geo, {"--ack", "client"}));
  ASSERT_TRUE(expect_line(a, "ready", kStartDeadline, "A attached"));
  const auto ga = ask(a, "recv 3 5000", "got");
  ASSERT_TRUE(ga);
  EXPECT_EQ(join(seqs_of(parse_msgs(*ga))), "1,2,3");
  ASSERT_TRUE(ask(a, "exit", "bye"));
  expect_clean_exit(a, kWait, "A");
  auto b = agent("qclient", with(geo, {"--ack", "client"}));
  ASSERT_TRUE(expect_line(b, "ready", kStartDeadline, "B attached"));
  const auto gb = ask(b, "recv 3 5000", "got");
  ASSERT_TRUE(gb);
  const auto got = parse_msgs(*gb);
  EXPECT_EQ(join(seqs_of(got)), "1,2,3") << "a closed consumer's unacknowledged messages come back, in order";
  for (const auto& x : got) EXPECT_TRUE(x.redelivered) << x.seq;
  expect_clean_exit(prod, kWait, "producer");
}

// DestinationOptions::redelivery_delay: a message given back (recover) is not delivered again
// before the delay; it waits as SCHEDULED meanwhile.
TEST_F(QueueSystem_test, RedeliveryDelayHoldsAGivenBackMessage) {
  constexpr Millis kDelay{250};
  DestinationOptions o;
  o.capacity = 64;
  o.max_message_size = 64;
  o.redelivery_delay = kDelay;
  auto s = observer().create_session(AckMode::Individual);
  auto c = s.create_consumer(Queue("rdelay"), {}, o);
  auto ps = observer().create_session();
  auto p = ps.create_producer(Queue("rdelay"), {}, o);
  ASSERT_EQ(send(p, 1, 1), Status::Ok);
  const auto g1 = recv(c, kWait);
  ASSERT_EQ(g1.status, Status::Ok);
  const auto t0 = Clock::now();
  ASSERT_EQ(s.recover(), 1u);
  ASSERT_TRUE(wait_queue("queue://rdelay", [](const DestinationStats& d) { return d.scheduled == 1; },
                         "the given-back message waits SCHEDULED", kDelay * 4 / 5));
  const auto g2 = recv(c, kWait);
  const double elapsed = ms_since(t0);
  ASSERT_EQ(g2.status, Status::Ok);
  std::cout << "[ info ] redelivery delay " << kDelay.count() << " ms: delivered again after " << elapsed << " ms\n";
  EXPECT_GE(elapsed, static_cast<double>(kDelay.count()));
  EXPECT_TRUE(g2.msg.redelivered());
  EXPECT_EQ(g2.msg.delivery_count(), 2u);
  EXPECT_EQ(g2.msg.acknowledge(), Status::Ok);
  EXPECT_EQ(g1.msg.acknowledge(), Status::AckTooLate) << "the first delivery was given back";
  EXPECT_TRUE(wait_drained("queue://rdelay"));
}

// dead_letter_queue = false: a message past max_deliveries is dropped and counted, and no DLQ is
// created.
TEST_F(QueueSystem_test, DeadLetterWithoutDlqIsDroppedAndCounted) {
  DestinationOptions o;
  o.capacity = 64;
  o.max_message_size = 64;
  o.max_deliveries = 1;
  o.dead_letter_queue = false;
  auto s = observer().create_session(AckMode::Client);
  auto c = s.create_consumer(Queue("nodlq"), {}, o);
  auto ps = observer().create_session();
  auto p = ps.create_producer(Queue("nodlq"), {}, o);
  ASSERT_EQ(send(p, 1, 1), Status::Ok);
  ASSERT_EQ(recv(c, kWait).status, Status::Ok);
  ASSERT_EQ(s.recover(), 1u);
  const auto d = wait_queue("queue://nodlq", [](const DestinationStats& x) { return x.dropped == 1; }, "dropped == 1");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->dead_lettered, 0u);
  EXPECT_EQ(d->dlq, "");
  EXPECT_EQ(recv(c, kAbsent).status, Status::Timeout) << "a dropped dead letter is not redelivered";
  const auto st = observer().stats();
  EXPECT_EQ(dest(st, "queue://DLQ.nodlq"), nullptr) << "no DLQ exists";
  EXPECT_TRUE(wait_drained("queue://nodlq"));
}

// A DLQ consumer started before the first dead letter (a monitoring process, with its own
// geometry) creates queue://DLQ.NAME itself. Forbidden: a dead letter later moved there arriving
// altered (truncated to the DLQ's smaller max message size) without anyone being told.
TEST_F(QueueSystem_test, DeadLetterIntoPreexistingSmallerDlqIsNotSilentlyTruncated) {
  DestinationOptions small;
  small.capacity = 64;
  small.max_message_size = 16;
  auto ms = observer().create_session();
  auto mon = ms.create_consumer(Queue("DLQ.trunc"), {}, small);  // the monitor comes first
  DestinationOptions o;
  o.capacity = 64;
  o.max_message_size = 64;
  o.max_deliveries = 1;
  auto s = observer().create_session(AckMode::Client);
  auto c = s.create_consumer(Queue("trunc"), {}, o);
  auto p = ms.create_producer(Queue("trunc"), {}, o);
  ASSERT_EQ(send(p, 1, 1), Status::Ok);
  ASSERT_EQ(recv(c, kWait).status, Status::Ok);
  ASSERT_EQ(s.recover(), 1u);  // delivered max_deliveries (1) times: dead letter
  const auto d = wait_queue("queue://trunc", [](const DestinationStats& x) { return x.dead_lettered + x.dropped == 1; },
                            "dead-lettered or dropped");
  ASSERT_TRUE(d);
  Message m;
  if (d->dropped == 1) {  // refused by the DLQ (too small), and counted: acceptable, nothing altered
    EXPECT_EQ(mon.receive(m, kAbsent).status, Status::Timeout) << "a dropped dead letter is not in the DLQ";
    return;
  }
  ASSERT_EQ(mon.receive(m, kWait).status, Status::Ok) << "dead_lettered == 1: the dead letter is in the DLQ";
  EXPECT_EQ(m.body().size(), kPayloadSize) << "the dead letter arrived with " << m.body().size() << " of its "
                                           << kPayloadSize << " bytes";
  EXPECT_TRUE(read_payload(m.body()).intact) << "the dead letter's body was altered";
}

// ---------------------------------------------------------------------------------------------
// 7. Sent before any consumer exists: delivered highest priority first, FIFO within a priority.
TEST_F(QueueSystem_test, PriorityOrderHighestFirstFifoWithinPriority) {
  auto s = observer().create_session();
  ProducerOptions seven;
  seven.priority = 7;
  auto p = s.create_producer(Queue("prio"), {}, {64, 64});
  auto p7 = s.create_producer(Queue("prio"), seven, {64, 64});
  // (priority, seq)
  const std::vector<std::pair<int, std::uint64_t>> sends{{4, 1}, {9, 2}, {0, 3}, {9, 4}, {4, 5}, {0, 6}, {7, 7}, {4, 8}, {7, 9}};
  for (const auto& [pr, seq] : sends) {
    if (pr == 7) ASSERT_EQ(send(p7, 1, seq), Status::Ok);  // the producer's own priority
    else ASSERT_EQ(send(p, 1, seq, prio(pr)), Status::Ok);
  }
  ASSERT_TRUE(wait_queue("queue://prio", [](const DestinationStats& d) { return d.depth == 9; }, "9 waiting"));
  auto c = s.create_consumer(Queue("prio"), {}, {64, 64});
  std::vector<std::uint64_t> seqs;
  std::string prios;
  for (std::size_t i = 0; i < sends.size(); ++i) {
    const auto g = recv(c, kWait);
    ASSERT_EQ(g.status, Status::Ok);
    seqs.push_back(g.payload.seq);
    prios += std::to_string(g.msg.priority());
  }
  EXPECT_EQ(join(seqs), "2,4,7,9,1,5,8,3,6");
  EXPECT_EQ(prios, "997744400");
  EXPECT_EQ(recv(c, kAbsent).status, Status::Timeout);
}

// ---------------------------------------------------------------------------------------------
// 8. A message whose time to live passes before a consumer comes is never delivered: one waiting
// READY (dropped when a consumer meets it) and one still delayed (the daemon's timer expires it).
TEST_F(QueueSystem_test, ExpiredMessagesAreNeverDelivered) {
  auto s = observer().create_session();
  auto p = s.create_producer(Queue("ttl"), {}, {64, 64});
  SendOptions ttl;
  ttl.time_to_live = Millis(50);
  const auto t_ready = Clock::now();
  ASSERT_EQ(send(p, 1, 1, ttl), Status::Ok);  // READY, expires 50 ms from now
  SendOptions ttl_delayed = ttl;
  ttl_delayed.delivery_delay = Millis(100);  // expires before it would become deliverable
  ASSERT_EQ(send(p, 1, 2, ttl_delayed), Status::Ok);
  // The daemon expires the delayed one when its deliver-at timer fires (>= 100 ms), by which time
  // the first one's 50 ms have passed too.
  ASSERT_TRUE(wait_queue("queue://ttl", [](const DestinationStats& d) { return d.expired >= 1; },
                         "the delayed message expired by the daemon"));
  ASSERT_GE(Clock::now() - t_ready, Millis(50)) << "the READY message's time to live has passed";
  ASSERT_EQ(send(p, 1, 3), Status::Ok);  // no time to live

  auto c = s.create_consumer(Queue("ttl"), {}, {64, 64});
  const auto g = recv(c, kWait);
  ASSERT_EQ(g.status, Status::Ok);
  EXPECT_EQ(g.payload.seq, 3u) << "only the message without a time to live is delivered";
  EXPECT_EQ(recv(c, kAbsent).status, Status::Timeout) << "expired messages are never delivered";
  const auto d = wait_queue("queue://ttl", [](const DestinationStats& x) { return x.expired == 2; }, "expired == 2");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->depth, 0u);
  EXPECT_EQ(d->dead_lettered, 0u) << "expired_to_dlq is off: dropped, not dead-lettered";
}

// With expired_to_dlq, the expired message goes to the DLQ with dead_letter_reason() 2.
TEST_F(QueueSystem_test, ExpiredMessageGoesToDeadLetterQueueWhenAsked) {
  DestinationOptions o;
  o.capacity = 64;
  o.max_message_size = 64;
  o.expired_to_dlq = true;
  auto s = observer().create_session();
  ProducerOptions po;
  po.time_to_live = Millis(20);
  po.delivery_delay = Millis(60);
  auto p = s.create_producer(Queue("ttldlq"), po, o);
  ASSERT_EQ(send(p, 1, 7), Status::Ok);
  const auto d = wait_queue("queue://ttldlq", [](const DestinationStats& x) { return x.expired == 1 && x.dead_lettered == 1; },
                            "expired and dead-lettered");
  ASSERT_TRUE(d);
  auto c = s.create_consumer(Queue("DLQ.ttldlq"), {}, o);
  const auto g = recv(c, kWait);
  ASSERT_EQ(g.status, Status::Ok);
  EXPECT_EQ(g.payload.seq, 7u);
  EXPECT_EQ(g.msg.dead_letter_reason(), 2) << "2 = expired";
  EXPECT_EQ(g.msg.origin_destination_id(), d->dest_id);
  auto oc = s.create_consumer(Queue("ttldlq"), {}, o);
  EXPECT_EQ(recv(oc, kAbsent).status, Status::Timeout);
}

// ---------------------------------------------------------------------------------------------
// 9. delivery_delay = 300 ms: not deliverable before 300 ms after the send (an undelayed message
// sent after it passes it), then delivered.
TEST_F(QueueSystem_test, DelayedDeliveryIsNotDeliveredBeforeItsDelay) {
  constexpr Millis kDelay{300};
  auto s = observer().create_session();
  auto c = s.create_consumer(Queue("delay"), {}, {64, 64});
  ProducerOptions po;
  po.delivery_delay = kDelay;
  auto p = s.create_producer(Queue("delay"), po, {64, 64});
  const auto t0 = Clock::now();
  ASSERT_EQ(send(p, 1, 1), Status::Ok);
  SendOptions now;
  now.delivery_delay = Millis(0);
  ASSERT_EQ(send(p, 1, 2, now), Status::Ok);
  const auto st = observer().stats();
  ASSERT_TRUE(dest(st, "queue://delay"));
  EXPECT_EQ(dest(st, "queue://delay")->scheduled, 1u) << "the delayed message waits as SCHEDULED";

  const auto g2 = recv(c, kWait);
  ASSERT_EQ(g2.status, Status::Ok);
  EXPECT_EQ(g2.payload.seq, 2u) << "the undelayed message is delivered first";
  Message m;
  const auto early = c.receive_no_wait(m);
  const double at_no_wait = ms_since(t0);
  EXPECT_TRUE(early.status == Status::Timeout || at_no_wait >= kDelay.count())
      << "delayed message delivered " << at_no_wait << " ms after the send";
  const auto g_short = recv(c, Millis(100));
  const double at_short = ms_since(t0);
  EXPECT_TRUE(g_short.status == Status::Timeout || at_short >= kDelay.count())
      << "delayed message delivered " << at_short << " ms after the send";
  EXPECT_LT(at_short, kDelay.count()) << "the early checks ran late (machine overloaded); they proved nothing";
  const auto g1 = g_short.status == Status::Ok ? g_short : recv(c, kWait);
  const double elapsed = ms_since(t0);
  ASSERT_EQ(g1.status, Status::Ok);
  EXPECT_EQ(g1.payload.seq, 1u);
  std::cout << "[ info ] delayed message (delay " << kDelay.count() << " ms) delivered after " << elapsed << " ms\n";
  EXPECT_GE(elapsed, static_cast<double>(kDelay.count()));
  EXPECT_LT(elapsed, static_cast<double>(kDelay.count() + kRedeliveryBound.count())) << "delivered long after its time";
}

// ---------------------------------------------------------------------------------------------
// 10. A browser sees what waits, in delivery order, without consuming; a consumer then gets it all.
TEST_F(QueueSystem_test, BrowserSeesQueuedMessagesInOrderWithoutConsuming) {
  auto s = observer().create_session();
  auto p = s.create_producer(Queue("browse"), {}, {64, 64});
  const std::vector<std::pair<int, std::uint64_t>> sends{{4, 1}, {4, 2}, {8, 3}, {4, 4}, {8, 5}, {0, 6}};
  for (const auto& [pr, seq] : sends) ASSERT_EQ(send(p, 3, seq, prio(pr)), Status::Ok);
  const std::string expected = "3,5,1,2,4,6";

  for (int pass = 1; pass <= 2; ++pass) {
    auto b = s.create_browser(Queue("browse"));
    std::vector<std::uint64_t> seqs;
    Message m;
    while (b.next(m)) {
      const auto d = read_payload(m.body());
      EXPECT_TRUE(d.intact);
      EXPECT_EQ(d.producer, 3u);
      EXPECT_FALSE(m.redelivered());
      seqs.push_back(d.seq);
    }
    EXPECT_EQ(join(seqs), expected) << "browse pass " << pass;
  }
  const auto st = observer().stats();
  ASSERT_TRUE(dest(st, "queue://browse"));
  EXPECT_EQ(dest(st, "queue://browse")->depth, sends.size()) << "browsing consumes nothing";
  EXPECT_EQ(dest(st, "queue://browse")->in_flight, 0u);

  auto c = s.create_consumer(Queue("browse"), {}, {64, 64});
  std::vector<std::uint64_t> got;
  for (std::size_t i = 0; i < sends.size(); ++i) {
    const auto g = recv(c, kWait);
    ASSERT_EQ(g.status, Status::Ok);
    got.push_back(g.payload.seq);
  }
  EXPECT_EQ(join(got), expected) << "the consumer gets what the browser showed, in the same order";
  auto b = s.create_browser(Queue("browse"));
  Message m;
  EXPECT_FALSE(b.next(m)) << "an emptied queue browses empty";
}

// ---------------------------------------------------------------------------------------------
// 11. capacity 4, no consumer: 4 sends succeed; the 5th blocks send_timeout then QueueFull (Block)
// or fails at once (FailFast); nothing queued is dropped.
TEST_F(QueueSystem_test, FullQueueBlocksThenQueueFullAndDropsNothing) {
  constexpr Millis kSendTimeout{200};
  const DestinationOptions geo{4, 64};
  auto s = observer().create_session();
  ProducerOptions block;
  block.on_full = FullPolicy::Block;
  block.send_timeout = kSendTimeout;
  ProducerOptions fail;
  fail.on_full = FullPolicy::FailFast;
  auto pb = s.create_producer(Queue("full"), block, geo);
  auto pf = s.create_producer(Queue("full"), fail, geo);
  for (std::uint64_t seq = 1; seq <= 4; ++seq) ASSERT_EQ(send(pb, 1, seq), Status::Ok) << "send " << seq;

  auto t0 = Clock::now();
  EXPECT_EQ(send(pb, 1, 5), Status::QueueFull);
  const double blocked_ms = ms_since(t0);
  t0 = Clock::now();
  EXPECT_EQ(send(pf, 1, 6), Status::QueueFull);
  const double failfast_ms = ms_since(t0);
  std::cout << "[ info ] full queue: Block returned QueueFull after " << blocked_ms << " ms (send_timeout "
            << kSendTimeout.count() << "), FailFast after " << failfast_ms << " ms\n";
  EXPECT_GE(blocked_ms, static_cast<double>(kSendTimeout.count())) << "Block waits its send_timeout";
  EXPECT_LT(blocked_ms, static_cast<double>(kSendTimeout.count() + 1000));
  EXPECT_LT(failfast_ms, 50.0) << "FailFast does not wait";
  const auto st = observer().stats();
  ASSERT_TRUE(dest(st, "queue://full"));
  EXPECT_EQ(dest(st, "queue://full")->depth, 4u);

  auto c = s.create_consumer(Queue("full"), {}, geo);
  std::vector<std::uint64_t> got;
  for (int i = 0; i < 4; ++i) {
    const auto g = recv(c, kWait);
    ASSERT_EQ(g.status, Status::Ok);
    got.push_back(g.payload.seq);
  }
  EXPECT_EQ(join(got), "1,2,3,4") << "exactly the 4 queued messages";
  EXPECT_EQ(recv(c, kAbsent).status, Status::Timeout) << "the refused sends were not queued";
}

// A producer process blocked on a full queue resumes as soon as a consumer frees a slot.
TEST_F(QueueSystem_test, BlockedProducerProcessResumesWhenConsumerFreesSlots) {
  constexpr std::uint64_t kCount = 7;
  const std::vector<std::string> geo{"--queue", "bp", "--capacity", "4", "--max-size", "64"};
  auto prod = agent("qproduce", with(geo, {"--id", "2", "--count", std::to_string(kCount), "--send-timeout-ms", "20000"}));
  ASSERT_TRUE(expect_line(prod, "ready", kStartDeadline, "producer attached"));
  ASSERT_TRUE(wait_queue("queue://bp", [](const DestinationStats& d) { return d.depth == 4; }, "queue full (4 waiting)"));
  EXPECT_FALSE(prod.read_line(Millis(0)).has_value()) << "the producer cannot have finished: the queue is full";

  auto s = observer().create_session();
  auto c = s.create_consumer(Queue("bp"), {}, {4, 64});
  std::vector<std::uint64_t> got;
  for (std::uint64_t i = 0; i < kCount; ++i) {
    const auto g = recv(c, kWait);
    ASSERT_EQ(g.status, Status::Ok) << "message " << i + 1;
    got.push_back(g.payload.seq);
  }
  EXPECT_EQ(join(got), "1,2,3,4,5,6,7");
  const auto f = expect_line(prod, "done", kWait, "the blocked producer finished once slots were freed");
  ASSERT_TRUE(f);
  expect_clean_exit(prod, kWait, "producer");
}

// ---------------------------------------------------------------------------------------------
// 12. CLIENT with ack_timeout 200 ms: a live consumer holding a message past it loses it to another
// consumer (flagged redelivered); its late acknowledge() returns AckTooLate.
TEST_F(QueueSystem_test, AckTimeoutRedeliversToAnotherConsumerAndLateAckIsTooLate) {
  constexpr std::uint64_t kAckTimeoutMs = 200;
  const std::vector<std::string> geo{"--queue", "slow", "--capacity", "64", "--max-size", "64"};
  auto a = agent("qclient", with(geo, {"--ack", "client", "--ack-timeout-ms", std::to_string(kAckTimeoutMs)}));
  auto b = agent("qclient", with(geo, {"--ack", "client"}));  // default ack timeout (30 s)
  ASSERT_TRUE(expect_line(a, "ready", kStartDeadline, "A attached"));
  ASSERT_TRUE(expect_line(b, "ready", kStartDeadline, "B attached"));
  auto s = observer().create_session();
  auto p = s.create_producer(Queue("slow"), {}, {64, 64});
  ASSERT_EQ(send(p, 1, 1), Status::Ok);

  const auto ga = ask(a, "recv 1 5000", "got");
  ASSERT_TRUE(ga);
  const auto got_a = parse_msgs(*ga);
  ASSERT_EQ(got_a.size(), 1u);
  EXPECT_FALSE(got_a[0].redelivered);
  const auto gb = ask(b, "recv 1 10000", "got");  // A holds the message without acknowledging
  ASSERT_TRUE(gb);
  const auto got_b = parse_msgs(*gb);
  ASSERT_EQ(got_b.size(), 1u) << "B gets the message A held past its ack timeout";
  EXPECT_EQ(got_b[0].seq, 1u);
  EXPECT_TRUE(got_b[0].redelivered);
  EXPECT_EQ(got_b[0].delivery_count, 2u);
  const double after_ms = static_cast<double>(static_cast<std::int64_t>(num(*gb, "at_ns")) -
                                              static_cast<std::int64_t>(num(*ga, "at_ns"))) / 1e6;
  std::cout << "[ info ] ack timeout " << kAckTimeoutMs << " ms: redelivered to B " << after_ms
            << " ms after A received it\n";
  EXPECT_GE(after_ms, static_cast<double>(kAckTimeoutMs)) << "taken back before the ack timeout";
  EXPECT_LT(after_ms, static_cast<double>(kAckTimeoutMs + kRedeliveryBound.count()));
  ASSERT_TRUE(a.running()) << "A is alive: the timeout, not a death, took the message back";

  const auto late = ask(a, "ack 1", "ack");
  ASSERT_TRUE(late);
  EXPECT_EQ(late->at("status"), "ack-too-late");
  const auto ok = ask(b, "ack 1", "ack");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->at("status"), "ok");
  const auto d = wait_drained("queue://slow");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->ack_timeouts, 1u);
  EXPECT_EQ(d->redelivered, 1u);
  const auto none = ask(a, "recv 1 " + std::to_string(kAbsent.count()), "got");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->at("msgs"), "-") << "the message B acknowledged never comes back";
  ASSERT_TRUE(ask(a, "exit", "bye"));
  ASSERT_TRUE(ask(b, "exit", "bye"));
  expect_clean_exit(a, kWait, "A");
  expect_clean_exit(b, kWait, "B");
}


// ---------------------------------------------------------------------------------------------
// A transacted producer process SIGKILLed before commit: nothing it sent is ever delivered, and
// the slots it held (WRITING) come back to the free ring — another producer can fill the whole
// queue again. Forbidden: a leaked slot, or an uncommitted message delivered.
TEST_F(QueueSystem_test, TransactedProducerKilledBeforeCommitDeliversNothingAndFreesItsSlots) {
  constexpr std::uint64_t kCap = 8;
  const std::vector<std::string> geo{"--queue", "txkill", "--capacity", std::to_string(kCap), "--max-size", "64"};
  auto tx = agent("qproduce", with(geo, {"--id", "1", "--count", std::to_string(kCap), "--ack", "transacted"}));
  ASSERT_TRUE(expect_line(tx, "pending", kWait, "transaction holds every slot of the queue"));
  auto s = observer().create_session();
  auto c = s.create_consumer(Queue("txkill"), {}, {8, 64});
  EXPECT_EQ(recv(c, Millis(50)).status, Status::Timeout) << "uncommitted sends are invisible";
  ProducerOptions ff;
  ff.on_full = FullPolicy::FailFast;
  auto pf = s.create_producer(Queue("txkill"), ff, {8, 64});
  EXPECT_EQ(send(pf, 3, 1), Status::QueueFull) << "the open transaction holds every slot";
  tx.kill(SIGKILL);

  ProducerOptions po;
  po.send_timeout = kWait;  // Block until the daemon has freed the dead producer's slots
  auto p = s.create_producer(Queue("txkill"), po, {8, 64});
  const auto t0 = Clock::now();
  for (std::uint64_t seq = 1; seq <= kCap; ++seq) ASSERT_EQ(send(p, 2, seq), Status::Ok) << "send " << seq;
  std::cout << "[ info ] the killed transaction's " << kCap << " slots were free again after " << ms_since(t0) << " ms\n";
  std::vector<std::uint64_t> got;
  for (std::uint64_t i = 0; i < kCap; ++i) {
    const auto g = recv(c, kWait);
    ASSERT_EQ(g.status, Status::Ok);
    EXPECT_EQ(g.payload.producer, 2u) << "only the live producer's messages are delivered";
    got.push_back(g.payload.seq);
  }
  EXPECT_EQ(join(got), "1,2,3,4,5,6,7,8");
  EXPECT_EQ(recv(c, kAbsent).status, Status::Timeout) << "nothing of the dead transaction";
}

// A transacted producer process: rollback then commit of the same session, across processes.
TEST_F(QueueSystem_test, TransactedProducerProcessCommitIsSeenByConsumerProcess) {
  const std::vector<std::string> geo{"--queue", "txproc", "--capacity", "64", "--max-size", "64"};
  auto c = agent("qclient", with(geo, {"--ack", "auto"}));
  ASSERT_TRUE(expect_line(c, "ready", kStartDeadline, "consumer attached"));
  auto rb = agent("qproduce", with(geo, {"--id", "1", "--count", "5", "--ack", "transacted"}));
  ASSERT_TRUE(expect_line(rb, "pending", kWait, "first transaction sent"));
  ASSERT_TRUE(rb.write_stdin("rollback\n"));
  ASSERT_TRUE(expect_line(rb, "done", kWait, "rolled back"));
  auto cm = agent("qproduce", with(geo, {"--id", "2", "--count", "5", "--ack", "transacted"}));
  ASSERT_TRUE(expect_line(cm, "pending", kWait, "second transaction sent"));
  const auto before = ask(c, "recv 1 " + std::to_string(kAbsent.count()), "got");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->at("msgs"), "-") << "nothing visible before commit, nothing of the rolled-back one";
  ASSERT_TRUE(cm.write_stdin("commit\n"));
  ASSERT_TRUE(expect_line(cm, "done", kWait, "committed"));
  const auto after = ask(c, "recv 5 5000", "got");
  ASSERT_TRUE(after);
  const auto got = parse_msgs(*after);
  ASSERT_EQ(got.size(), 5u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].producer, 2u) << "only the committed transaction";
    EXPECT_EQ(got[i].seq, i + 1);
  }
  const auto none = ask(c, "recv 1 " + std::to_string(kAbsent.count()), "got");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->at("msgs"), "-");
  expect_clean_exit(rb, kWait, "rolled-back producer");
  expect_clean_exit(cm, kWait, "committed producer");
}

// ---------------------------------------------------------------------------------------------
// The daemon's end under queue clients. SIGTERM with a queue open: shmbusd must exit 0 and clean
// up (the fixture checks), and a consumer parked in receive() learns it at once.
TEST_F(QueueSystem_test, DaemonStopsCleanlyOnSigtermWithQueueClientsAttached) {
  const std::vector<std::string> geo{"--queue", "bye", "--capacity", "64", "--max-size", "64"};
  auto c = agent("qclient", with(geo, {"--ack", "client"}));
  ASSERT_TRUE(expect_line(c, "ready", kStartDeadline, "consumer attached"));
  ASSERT_TRUE(c.write_stdin("recv 1 30000\n"));  // parks: the queue is empty
  ASSERT_TRUE(wait_queue("queue://bye", [](const DestinationStats& d) { return d.subscribers.size() == 1; }, "consumer"));
  const auto t0 = Clock::now();
  stop_daemon_and_check_clean(SIGTERM);
  const auto f = expect_line(c, "got", kRedeliveryBound, "the parked consumer returns when the daemon stops");
  ASSERT_TRUE(f);
  std::cout << "[ info ] parked queue consumer returned " << ms_since(t0) << " ms after SIGTERM of shmbusd\n";
  EXPECT_EQ(f->at("status"), "daemon-gone");
}

// SIGKILL of the daemon: a consumer parked in receive() and a producer blocked on a full queue both
// get DaemonGone within the bound, not their 30 s timeouts.
TEST_F(QueueSystem_test, DaemonKilledGivesBlockedQueueConsumerAndProducerDaemonGone) {
  const std::vector<std::string> geo{"--queue", "gone", "--capacity", "4", "--max-size", "64"};
  auto c = agent("qclient", with({"--queue", "gone2", "--capacity", "64", "--max-size", "64"}, {"--ack", "client"}));
  ASSERT_TRUE(expect_line(c, "ready", kStartDeadline, "consumer attached"));
  ASSERT_TRUE(c.write_stdin("recv 1 30000\n"));
  auto p = agent("qproduce", with(geo, {"--id", "1", "--count", "5", "--send-timeout-ms", "30000"}));
  ASSERT_TRUE(expect_line(p, "ready", kStartDeadline, "producer attached"));
  ASSERT_TRUE(wait_queue("queue://gone", [](const DestinationStats& d) { return d.depth == 4; }, "queue full"));
  observer_.reset();
  const auto t0 = Clock::now();
  daemon_->child().kill(SIGKILL);
  const auto fc = expect_line(c, "got", kRedeliveryBound, "parked consumer returns");
  const auto fp = expect_line(p, "error", kRedeliveryBound, "blocked producer returns");
  std::cout << "[ info ] blocked queue clients returned " << ms_since(t0) << " ms after SIGKILL of shmbusd\n";
  ASSERT_TRUE(fc);
  EXPECT_EQ(fc->at("status"), "daemon-gone");
  ASSERT_TRUE(fp);
  EXPECT_EQ(fp->at("status"), "daemon-gone");
  EXPECT_EQ(fp->at("seq"), "5") << "the 5th send was the blocked one";
  ASSERT_TRUE(daemon_->child().wait_exit(kWait));
  start_daemon();  // a fresh daemon cleans the stale queue memory; teardown checks it stops cleanly
}

}  // namespace
}  // namespace shmbus::systest
