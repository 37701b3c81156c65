// PERSISTENT queue messages through a real shmbusd (docs/persistence.md): what a durable send
// promised survives a daemon SIGKILL or SIGTERM and comes back flagged redelivered, what was
// acknowledged does not, NON_PERSISTENT messages are gone, a torn log tail is cut at recovery, a
// newer data format is refused, and a full disk refuses PERSISTENT sends while NON_PERSISTENT
// traffic goes on.
//
// Producers are bus_agent children (pproduce: PERSISTENT sends, "durable seq=N" after each send a
// durable ack returned Ok for — the promise the test holds the daemon to); consumers are qclient /
// qconsume children, or the test's own connection (disk full). Nothing sleeps to synchronise:
// children are waited for on their stdout lines, the daemon on its stats or its log, each with a
// deadline. A receive with a short timeout is used only to assert that something does NOT arrive.
//
// SHMBUS_SOAK_CYCLES=N: crash-loop cycles (default 30); SHMBUS_SOAK_SEED=S replays the kill points
// (kill timing still depends on the scheduler).
#include "payload.hpp"
#include "system_fixture.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

namespace shmbus::systest {
namespace {

namespace fs = std::filesystem;
using Fields = std::map<std::string, std::string>;

// How long a test waits for something that must happen (generous: failures, not timing, matter).
constexpr Millis kWait{10000};
// How long a test waits for something that must NOT happen before it concludes it did not.
constexpr Millis kAbsent{300};
constexpr char kQueue[] = "orders";
const std::string kUri = std::string("queue://") + kQueue;

std::uint64_t num(const Fields& f, const std::string& k) {
  const auto it = f.find(k);
  if (it == f.end()) {
    ADD_FAILURE() << "line has no field '" << k << "'";
    return ~0ULL;
  }
  return std::stoull(it->second);
}

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::stoull(v) : fallback;
}

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

// One message as qclient reported it ("got ... msgs=P:SEQ:R:DC,...").
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

std::size_t not_redelivered(const std::vector<Seen>& v) {
  return static_cast<std::size_t>(std::count_if(v.begin(), v.end(), [](const Seen& s) { return !s.redelivered; }));
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

// A body of `size` bytes (>= kPayloadSize): the 64-byte test payload, then filler derived from
// (producer, seq) that the receiver checks byte by byte.
std::vector<unsigned char> big_body(std::uint32_t producer, std::uint64_t seq, std::size_t size) {
  std::vector<unsigned char> b(size);
  unsigned char head[kPayloadSize];
  make_payload(producer, seq, head);
  std::memcpy(b.data(), head, kPayloadSize);
  for (std::size_t i = kPayloadSize; i < size; ++i) b[i] = static_cast<unsigned char>((seq * 13 + producer + i) & 0xff);
  return b;
}

// The payload of a big_body, or intact=false when any byte differs.
Decoded read_big_body(std::span<const std::byte> body, std::size_t size) {
  if (body.size() != size) return {};
  Decoded d = read_payload(body.first(kPayloadSize));
  if (!d.intact) return d;
  const auto expect = big_body(d.producer, d.seq, size);
  d.intact = std::memcmp(expect.data(), body.data(), size) == 0;
  return d;
}

// One batch line of `shmbus dump-log` ("baseOffset: B lastOffset: L count: C position: P size: S ...").
struct Batch {
  std::string file;
  std::uint64_t base = 0, last = 0, count = 0, position = 0, size = 0;
};

std::vector<Batch> parse_dump(const std::string& out) {
  std::vector<Batch> v;
  std::string file;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Dumping ", 0) == 0) {
      file = line.substr(8);
      continue;
    }
    if (line.rfind("baseOffset: ", 0) != 0) continue;
    Batch b;
    b.file = file;
    std::istringstream ls(line);
    for (std::string key; ls >> key;) {
      std::string val;
      if (!(ls >> val)) break;
      if (key == "baseOffset:") b.base = std::stoull(val);
      else if (key == "lastOffset:") b.last = std::stoull(val);
      else if (key == "count:") b.count = std::stoull(val);
      else if (key == "position:") b.position = std::stoull(val);
      else if (key == "size:") b.size = std::stoull(val);
    }
    v.push_back(b);
  }
  return v;
}

// The object of `uri` in `shmbus stat --json` output ("" if absent).
std::string json_object_of(const std::string& json, const std::string& uri) {
  const auto at = json.find("{\"name\":\"" + uri + "\"");
  if (at == std::string::npos) return {};
  const auto end = json.find("\"subscribers\"", at);
  return json.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

class PersistenceSystem_test : public SystemTest {
 protected:
  void TearDown() override {
    if (!mounted_.empty()) {
      // The daemon first (it holds files on the mount), then the mount (lazy: even if something
      // still holds it), then the fixture removes the directory.
      observer_.reset();
      if (daemon_ && daemon_->child().running()) stop_daemon_and_check_clean(SIGTERM);
      if (::umount2(mounted_.c_str(), MNT_DETACH) != 0)
        ADD_FAILURE() << "umount -l " << mounted_ << " failed: " << std::strerror(errno);
      mounted_.clear();
    }
    SystemTest::TearDown();
  }

  std::string queue_dir(const std::string& name = kQueue) const { return dir_ + "/data/queue." + name; }

  /// Polls stats until `pred` holds for `uri` (which must exist).
  std::optional<DestinationStats> wait_queue(const std::string& uri, const std::function<bool(const DestinationStats&)>& pred,
                                             const std::string& what, Millis timeout = kWait) {
    const auto s = wait_stats(
        [&](const BusStats& b) {
          const auto* d = find_topic(b, uri);
          return d && pred(*d);
        },
        timeout, uri + ": " + what);
    if (!s) {
      if (observer_)
        if (const auto* d = find_topic(observer().stats(), uri))
          ADD_FAILURE() << uri << " last: depth=" << d->depth << " in_flight=" << d->in_flight
                        << " log=" << d->log_start_offset << ".." << d->log_end_offset << " durable=" << d->durable_offset
                        << " segments=" << d->log_segments << " persisted=" << d->persisted << " restored=" << d->restored
                        << " persist_error=" << d->persist_error;
      return std::nullopt;
    }
    return *find_topic(*s, uri);
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

  /// Sends one qclient command and returns its reply line.
  std::optional<Fields> ask(Child& c, const std::string& cmd, const std::string& prefix, Millis timeout = kWait) {
    EXPECT_TRUE(c.write_stdin(cmd + "\n")) << "cannot write '" << cmd << "' to " << c.name();
    return expect_line(c, prefix, timeout, "reply to '" + cmd + "'");
  }

  /// What a pproduce run reported.
  struct Produced {
    std::vector<std::uint64_t> durable;     // "durable seq=N": promised to survive
    std::vector<std::uint64_t> persistent;  // "sent seq=N persistent=1" (acks memory)
    std::vector<std::uint64_t> volatile_;   // "sent seq=N persistent=0"
    std::optional<std::uint64_t> failed_seq;  // "error status=S seq=Q"
    std::string failed_status;
    bool done = false;
  };

  /// Reads `p`'s stdout until EOF or `deadline`, collecting what it reports.
  void collect(Child& p, Produced& r, Clock::time_point deadline, std::size_t stop_after_durable = SIZE_MAX) {
    while (r.durable.size() < stop_after_durable) {
      const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
      const auto line = p.read_line(std::max(left, Millis(0)));
      if (!line) return;
      const auto f = fields(*line);
      if (line->rfind("durable ", 0) == 0) r.durable.push_back(num(f, "seq"));
      else if (line->rfind("sent ", 0) == 0) (num(f, "persistent") ? r.persistent : r.volatile_).push_back(num(f, "seq"));
      else if (line->rfind("error ", 0) == 0) {
        r.failed_seq = num(f, "seq");
        r.failed_status = f.count("status") ? f.at("status") : "?";
      } else if (line->rfind("done ", 0) == 0) r.done = true;
    }
  }

  /// Runs pproduce to completion: `count` payloads (producer id 1) from seq `start`; expects "done".
  Produced produce(std::uint64_t start, std::uint64_t count, const std::vector<std::string>& extra) {
    std::vector<std::string> args{"--queue", kQueue, "--id", "1", "--start", std::to_string(start), "--count",
                                  std::to_string(count), "--max-size", "64"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = agent("pproduce", args);
    Produced r;
    collect(p, r, Clock::now() + kWait);
    EXPECT_TRUE(r.done) << "pproduce did not finish within " << kWait.count() << " ms"
                        << (r.failed_seq ? "; send of seq " + std::to_string(*r.failed_seq) + " returned " + r.failed_status : "");
    expect_clean_exit(p, kWait, "pproduce");
    return r;
  }

  /// A qclient on the queue (ack mode `ack`), ready.
  Child client(const std::string& ack) {
    auto c = agent("qclient", {"--queue", kQueue, "--ack", ack, "--max-size", "64"});
    EXPECT_TRUE(expect_line(c, "ready", kStartDeadline, "qclient attached"));
    return c;
  }

  /// Receives exactly `n` messages with a fresh qclient (auto ack), then checks nothing more comes.
  std::vector<Seen> receive_exactly(std::uint64_t n) {
    auto c = client("auto");
    std::vector<Seen> got;
    if (n > 0) {
      const auto r = ask(c, "recv " + std::to_string(n) + " 5000", "got", Millis(n * 5000 + 5000));
      if (r) got = parse_msgs(*r);
      EXPECT_EQ(got.size(), n) << "expected " << n << " messages, the reply was " << (r ? "status=" + r->at("status") : "none");
    }
    const auto more = ask(c, "recv 1 " + std::to_string(kAbsent.count()), "got");
    if (more) {
      const auto extra = parse_msgs(*more);
      EXPECT_TRUE(extra.empty()) << "a message beyond the expected " << n << " arrived: seq "
                                 << (extra.empty() ? 0 : extra.front().seq);
    }
    ask(c, "exit", "bye");
    expect_clean_exit(c, kWait, "qclient");
    return got;
  }

  /// Tests 1 and 2: 200 PERSISTENT durable sends, the first 50 consumed and acknowledged one by
  /// one, then the daemon stopped by `sig` and restarted: exactly the 150 others come back.
  void acked_first_then_restart(int sig) {
    constexpr std::uint64_t kN = 200, kAcked = 50;
    const auto sent = produce(1, kN, {"--acks", "durable"});
    ASSERT_EQ(sent.durable, range(1, kN)) << "every durable send must return Ok on a healthy disk";
    ASSERT_TRUE(wait_queue(kUri, [&](const DestinationStats& d) { return d.depth == kN && d.persisted == kN; },
                           "200 messages waiting, 200 persisted"));
    {
      auto c = client("individual");
      const auto r = ask(c, "recv " + std::to_string(kAcked) + " 5000", "got");
      ASSERT_TRUE(r);
      const auto got = parse_msgs(*r);
      ASSERT_EQ(seqs_of(got), range(1, kAcked)) << "the first 50, in order";
      EXPECT_EQ(not_redelivered(got), got.size()) << "a first delivery must not be flagged redelivered";
      for (std::uint64_t i = 1; i <= kAcked; ++i) {
        const auto a = ask(c, "ack " + std::to_string(i), "ack");
        ASSERT_TRUE(a);
        ASSERT_EQ(a->at("status"), "ok") << "acknowledge of message " << i;
      }
      ask(c, "exit", "bye");
      expect_clean_exit(c, kWait, "qclient");
    }
    ASSERT_TRUE(wait_queue(kUri, [&](const DestinationStats& d) { return d.depth == kN - kAcked && d.in_flight == 0; },
                           "150 waiting, nothing in flight after 50 acks"));
    if (sig == SIGKILL) {
      // An ack is a settle record in the log (daemon/queue_record.hpp: one per message that left
      // the queue). Until it is fsync'ed a SIGKILL may bring the message back (a duplicate, never a
      // loss); so the kill waits until the 200 messages and the 50 settlements are durable: after
      // that an acknowledged message coming back is a bug. (The clean-stop test covers acks that
      // were not yet written when the stop began.)
      ASSERT_TRUE(wait_queue(kUri,
                             [&](const DestinationStats& d) {
                               return d.log_end_offset >= kN + kAcked && d.durable_offset >= d.log_end_offset;
                             },
                             "200 message records and 50 settle records written and fsync'ed"));
      kill_daemon();
    } else {
      stop_daemon_and_check_clean(SIGTERM);  // at once: the shutdown must log the last acks
    }
    ASSERT_FALSE(HasFatalFailure());
    start_daemon();
    ASSERT_TRUE(wait_queue(kUri, [&](const DestinationStats& d) { return d.restored == kN - kAcked && d.depth == kN - kAcked; },
                           "the 150 unacknowledged messages restored from the log"));
    const auto got = receive_exactly(kN - kAcked);
    EXPECT_EQ(join(seqs_of(got)), join(range(kAcked + 1, kN)))
        << "exactly the unacknowledged messages, each once, in order (none of the acknowledged 1..50)";
    EXPECT_EQ(not_redelivered(got), 0U) << "every message restored after a restart is flagged redelivered";
  }

  std::string mounted_;  // a tmpfs this test mounted (unmounted in TearDown)
};

// ---------------------------------------------------------------------------------------------
// Forbidden: an unacknowledged PERSISTENT message whose durable send returned Ok missing after a
// SIGKILL of the daemon and a restart, delivered twice, out of order or not flagged redelivered;
// an acknowledged one (its settlement fsync'ed before the kill) coming back.
TEST_F(PersistenceSystem_test, UnackedPersistentQueueMessagesSurviveADaemonKillAndComeBackRedelivered) {
  acked_first_then_restart(SIGKILL);
}

// Forbidden: after a clean SIGTERM stop begun right after the acks, an acknowledged message coming
// back or an unacknowledged one missing.
TEST_F(PersistenceSystem_test, AckedMessagesDoNotComeBackAfterACleanRestart) {
  acked_first_then_restart(SIGTERM);
}

// Forbidden: a NON_PERSISTENT message delivered after a restart; a PERSISTENT one (acks memory:
// the clean shutdown writes and fsyncs what is queued) missing.
TEST_F(PersistenceSystem_test, NonPersistentMessagesAreGoneAfterARestart) {
  constexpr std::uint64_t kN = 100;
  const auto sent = produce(1, kN, {"--acks", "memory", "--alternate"});
  std::vector<std::uint64_t> odd, even;
  for (auto s : range(1, kN)) (s % 2 ? odd : even).push_back(s);
  ASSERT_EQ(sent.persistent, odd);
  ASSERT_EQ(sent.volatile_, even);
  ASSERT_TRUE(wait_queue(kUri, [&](const DestinationStats& d) { return d.depth == kN; }, "all 100 queued"));
  stop_daemon_and_check_clean(SIGTERM);
  ASSERT_FALSE(HasFatalFailure());
  start_daemon();
  ASSERT_TRUE(wait_queue(kUri, [&](const DestinationStats& d) { return d.restored == odd.size(); },
                         "the 50 PERSISTENT messages restored"));
  const auto got = receive_exactly(odd.size());
  EXPECT_EQ(join(seqs_of(got)), join(odd)) << "only the PERSISTENT (odd) messages, each once, in order";
  EXPECT_EQ(not_redelivered(got), 0U) << "every message restored after a restart is flagged redelivered";
}

// The crash loop. Forbidden: a message whose durable send returned Ok missing or delivered twice
// after any number of SIGKILLs at random points; any message delivered twice or corrupted (payload
// checksum); a message never sent; a log `shmbus dump-log` finds damaged after the final clean
// stop. Allowed: a message whose send did not return Ok (the one in flight when the daemon died)
// delivered at most once.
TEST_F(PersistenceSystem_test, DurableSendsSurviveRepeatedDaemonKills) {
  const std::uint64_t cycles = env_number("SHMBUS_SOAK_CYCLES", 30);
  const std::uint64_t seed = env_number("SHMBUS_SOAK_SEED", std::random_device{}());
  std::cout << "[ info ] crash loop: cycles=" << cycles << " seed=" << seed << " (replay with SHMBUS_SOAK_SEED=" << seed
            << ")\n";
  RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> kill_after(0, 300);

  // Everything stays in the queue until the end: room for every cycle's sends.
  std::uint32_t capacity = 1024;
  while (capacity < cycles * 310 + 64) capacity *= 2;
  // Small segments: the log rolls many times, so recovery walks several segments, and a kill can
  // land during a roll.
  const std::vector<std::string> daemon_args{"--segment-bytes", "65536"};
  stop_daemon_and_check_clean(SIGTERM);
  ASSERT_FALSE(HasFatalFailure());

  std::set<std::uint64_t> durable;  // every seq whose durable send returned Ok
  std::uint64_t next = 1;           // the next seq to send
  for (std::uint64_t cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle));
    start_daemon(daemon_args);
    ASSERT_FALSE(HasFatalFailure());
    if (!durable.empty()) {
      ASSERT_TRUE(wait_queue(kUri, [&](const DestinationStats& d) { return d.restored >= durable.size(); },
                             "at least the " + std::to_string(durable.size()) + " durable messages restored"));
    }
    const std::size_t k = kill_after(rng);
    auto p = agent("pproduce", {"--queue", kQueue, "--id", "1", "--start", std::to_string(next), "--count", "100000000",
                                "--acks", "durable", "--capacity", std::to_string(capacity), "--max-size", "64",
                                "--send-timeout-ms", "5000"});
    ASSERT_TRUE(expect_line(p, "ready", kStartDeadline, "pproduce attached"));
    Produced r;
    collect(p, r, Clock::now() + kWait, k);
    ASSERT_EQ(r.durable.size(), k) << "pproduce reported only " << r.durable.size() << " durable sends of the " << k
                                   << " the kill waits for"
                                   << (r.failed_seq ? "; seq " + std::to_string(*r.failed_seq) + " returned " + r.failed_status : "");
    kill_daemon();
    ASSERT_FALSE(HasFatalFailure());
    collect(p, r, Clock::now() + kWait);  // what it printed after the kill: those were Ok too
    const auto st = p.wait_exit(kWait);
    ASSERT_TRUE(st.has_value()) << "pproduce did not exit within " << kWait.count() << " ms of the daemon's death";
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << "pproduce: " << describe_status(*st);
    ASSERT_TRUE(r.failed_seq.has_value()) << "pproduce exited without reporting the send the kill failed";
    EXPECT_TRUE(r.failed_status == "daemon-gone" || r.failed_status == "not-durable")
        << "a send racing the daemon's death returned " << r.failed_status;
    // Each cycle continues where the last one stopped: seqs go up by one, never reused.
    std::uint64_t expect_seq = next;
    for (auto s : r.durable) {
      ASSERT_EQ(s, expect_seq) << "durable acks out of order";
      ++expect_seq;
      durable.insert(s);
    }
    ASSERT_EQ(*r.failed_seq, expect_seq) << "the failed send is the one after the last durable one";
    next = *r.failed_seq + 1;
  }
  const std::uint64_t last_sent = next - 1;
  std::cout << "[ info ] crash loop: " << durable.size() << " durable sends, " << last_sent << " attempted\n";

  start_daemon(daemon_args);
  ASSERT_FALSE(HasFatalFailure());
  const auto out = root_ + "/drain.bin";
  auto c = agent("qconsume", {"--queue", kQueue, "--ack", "auto", "--out", out, "--capacity", std::to_string(capacity),
                              "--max-size", "64"});
  ASSERT_TRUE(expect_line(c, "ready", kStartDeadline, "qconsume attached"));
  ASSERT_TRUE(wait_queue(kUri, [&](const DestinationStats& d) { return d.restored >= durable.size() && d.depth == 0 && d.in_flight == 0; },
                         "every restored message consumed", Millis(30000)));
  c.write_stdin("stop\n");
  const auto done = expect_line(c, "done", kWait, "qconsume drained the queue");
  ASSERT_TRUE(done);
  expect_clean_exit(c, kWait, "qconsume");
  EXPECT_EQ(num(*done, "bad"), 0U) << "corrupted payloads (checksum) came out of the log";
  const auto recs = read_records(out);
  EXPECT_EQ(recs.size(), num(*done, "received"));
  EXPECT_EQ(num(*done, "redelivered"), recs.size()) << "every message restored after a restart is flagged redelivered";

  std::map<std::uint64_t, int> times;
  std::vector<std::uint64_t> order;
  for (const auto& r : recs) {
    EXPECT_EQ(r.producer, 1U) << "a message from an unknown producer, seq " << r.seq;
    ++times[r.seq];
    order.push_back(r.seq);
  }
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end())) << "restored messages out of send order";
  std::vector<std::uint64_t> missing, twice, unknown;
  for (auto s : durable)
    if (!times.count(s)) missing.push_back(s);
  for (const auto& [s, n] : times) {
    if (n > 1) twice.push_back(s);
    if (s < 1 || s > last_sent) unknown.push_back(s);
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " message(s) whose durable send returned Ok are lost: "
                               << join(std::vector<std::uint64_t>(missing.begin(), missing.begin() + std::min<std::size_t>(missing.size(), 20)));
  EXPECT_TRUE(twice.empty()) << twice.size() << " message(s) delivered more than once: "
                             << join(std::vector<std::uint64_t>(twice.begin(), twice.begin() + std::min<std::size_t>(twice.size(), 20)));
  EXPECT_TRUE(unknown.empty()) << "messages never sent: " << join(unknown);
  EXPECT_LE(recs.size(), durable.size() + cycles) << "more than one non-durable message per kill came back";
  std::cout << "[ info ] crash loop: " << recs.size() << " restored and delivered (" << recs.size() - std::min(recs.size(), durable.size())
            << " of the " << cycles << " sends the kills interrupted among them)\n";

  stop_daemon_and_check_clean(SIGTERM);
  const auto dump = run_cli({"dump-log", queue_dir()});
  EXPECT_EQ(dump.exit_code, 0) << "shmbus dump-log finds the log damaged after a clean stop:\n"
                               << dump.out.substr(dump.out.size() > 4000 ? dump.out.size() - 4000 : 0) << dump.err;
}

// Forbidden: a restart on a log whose last batch is torn (cut in the middle, garbage after it)
// refusing to start, not saying where it cut, losing a message written before the damage, or
// delivering anything from the damaged batch.
TEST_F(PersistenceSystem_test, ATornLogTailIsCutAndEverythingBeforeItIsDelivered) {
  constexpr std::uint64_t kN = 60;
  const auto sent = produce(1, kN, {"--acks", "durable"});
  ASSERT_EQ(sent.durable, range(1, kN));
  stop_daemon_and_check_clean(SIGTERM);
  ASSERT_FALSE(HasFatalFailure());

  const auto before = run_cli({"dump-log", queue_dir()});
  ASSERT_EQ(before.exit_code, 0) << "the log is damaged before the test damaged it:\n" << before.out << before.err;
  const auto batches = parse_dump(before.out);
  ASSERT_FALSE(batches.empty()) << "dump-log shows no batch:\n" << before.out;
  const Batch last = batches.back();
  std::cout << "[ info ] " << batches.size() << " batch(es); damaging the last: offsets " << last.base << ".." << last.last
            << " at position " << last.position << " (" << last.size << " bytes) of " << last.file << "\n";
  ASSERT_EQ(last.last + 1, kN) << "the log should hold exactly the 60 message records (offsets 0..59), no settlement:\n"
                               << before.out;
  ASSERT_GE(last.size, 2U);
  ASSERT_EQ(static_cast<std::uint64_t>(fs::file_size(last.file)), last.position + last.size)
      << "the last batch should end the last segment:\n" << before.out;
  // The damage a crash mid-write leaves: the last batch torn half-way, then junk.
  fs::resize_file(last.file, last.position + last.size / 2);
  {
    std::ofstream f(last.file, std::ios::binary | std::ios::app);
    const std::string junk(37, '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    ASSERT_TRUE(f.good()) << "cannot append to " << last.file;
  }
  const auto damaged = run_cli({"dump-log", queue_dir()});
  ASSERT_EQ(damaged.exit_code, 3) << "dump-log should see the torn tail:\n" << damaged.out << damaged.err;

  start_daemon();
  ASSERT_FALSE(HasFatalFailure());
  const std::string cut = kUri + ": recovery cut the log at offset " + std::to_string(last.base);
  EXPECT_TRUE(daemon_->log().wait_for(cut, kWait)) << "expected the daemon to log '" << cut << "'; log:\n"
                                                   << daemon_->log().text();
  const std::uint64_t kept = last.base;  // offsets 0..base-1: seqs 1..base
  ASSERT_TRUE(wait_queue(kUri, [&](const DestinationStats& d) { return d.restored == kept && d.log_end_offset == kept; },
                         "the " + std::to_string(kept) + " messages before the damage restored, the log ending there"));
  const auto got = receive_exactly(kept);
  EXPECT_EQ(join(seqs_of(got)), join(range(1, kept))) << "everything before the damaged batch, in order, each once";
  EXPECT_EQ(not_redelivered(got), 0U);

  stop_daemon_and_check_clean(SIGTERM);
  const auto after = run_cli({"dump-log", queue_dir()});
  EXPECT_EQ(after.exit_code, 0) << "the log is still damaged after recovery:\n" << after.out << after.err;
}

// Forbidden: shmbusd starting on (and possibly rewriting) a data directory a newer format wrote.
TEST_F(PersistenceSystem_test, ANewerDataFormatIsRefused) {
  stop_daemon_and_check_clean(SIGTERM);
  ASSERT_FALSE(HasFatalFailure());
  const auto format = dir_ + "/data/format";
  ASSERT_TRUE(fs::exists(format)) << "shmbusd should have written " << format;
  std::ofstream(format, std::ios::trunc) << "shmbus-data 99\n";

  daemon_ = std::make_unique<Daemon>(dir_, root_ + "/shmbusd.log");
  const auto st = daemon_->child().wait_exit(kStartDeadline);
  ASSERT_TRUE(st.has_value()) << "shmbusd did not exit on a newer data format; log:\n" << daemon_->log().text();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << "shmbusd: " << describe_status(*st);
  ASSERT_TRUE(daemon_->log().wait_eof(kStopDeadline));
  EXPECT_NE(daemon_->log().text().find("newer"), std::string::npos) << "the refusal should say 'newer'; log:\n"
                                                                    << daemon_->log().text();
  std::ifstream in(format);
  std::string word;
  int version = 0;
  in >> word >> version;
  EXPECT_EQ(word + " " + std::to_string(version), "shmbus-data 99") << "the refused format file was rewritten";
  EXPECT_TRUE(shm_objects().empty()) << "a refused start left shared memory behind";
}

// Forbidden: a full disk not refusing PERSISTENT sends (NotDurable) within its size, not showing
// the error in stats / `shmbus stat --json`, stopping NON_PERSISTENT traffic, or losing a message
// whose durable send returned Ok before it filled up (checked after a clean restart on the same,
// still full, file system).
TEST_F(PersistenceSystem_test, DiskFullRefusesPersistentSendsAndKeepsServingNonPersistent) {
  constexpr std::size_t kBody = 4000;  // fits the default max_message_size (4096)
  constexpr std::uint64_t kMaxSends = 1024;  // 4 MB: far more than the 1 MB file system takes
  stop_daemon_and_check_clean(SIGTERM);
  ASSERT_FALSE(HasFatalFailure());
  const auto data = dir_ + "/data";
  fs::create_directories(data);
  ASSERT_EQ(::mount("tmpfs", data.c_str(), "tmpfs", 0, "size=1m"), 0)
      << "mount -t tmpfs -o size=1m tmpfs " << data << " failed: " << std::strerror(errno)
      << " (this test needs root, as in CI)";
  mounted_ = data;
  start_daemon();
  ASSERT_FALSE(HasFatalFailure());

  std::vector<std::uint64_t> durable;
  std::uint64_t refused_seq = 0;
  {
    auto session = observer().create_session();
    ProducerOptions po;
    po.delivery_mode = DeliveryMode::Persistent;
    po.acks = Acks::Durable;
    po.send_timeout = Millis(5000);
    DestinationOptions geo;
    geo.capacity = 2048;
    auto p = session.create_producer(Queue("full"), po, geo);
    for (std::uint64_t seq = 1; seq <= kMaxSends; ++seq) {
      const auto b = big_body(7, seq, kBody);
      const Status st = p.send(std::as_bytes(std::span<const unsigned char>(b)));
      if (st == Status::Ok) {
        durable.push_back(seq);
        continue;
      }
      ASSERT_EQ(st, Status::NotDurable) << "send of seq " << seq << " on a filling disk";
      refused_seq = seq;
      break;
    }
    ASSERT_NE(refused_seq, 0U) << kMaxSends << " durable sends of " << kBody << " bytes all returned Ok on a 1 MB tmpfs";
    EXPECT_FALSE(durable.empty()) << "not one durable send fitted a 1 MB file system";
    std::cout << "[ info ] disk full after " << durable.size() << " durable sends of " << kBody << " bytes\n";

    const auto full = wait_queue("queue://full", [](const DestinationStats& d) { return d.persist_error == ENOSPC; },
                                 "persist_error ENOSPC while the disk is full");
    EXPECT_TRUE(full);
    const auto stat = run_cli({"stat", "--json"});
    EXPECT_EQ(stat.exit_code, 0) << stat.err;
    const auto obj = json_object_of(stat.out, "queue://full");
    EXPECT_NE(obj.find(std::string("\"persist_error\":\"") + std::strerror(ENOSPC) + "\""), std::string::npos)
        << "shmbus stat --json should show persist_error \"" << std::strerror(ENOSPC) << "\" for queue://full: " << obj;

    // While full, a PERSISTENT send is refused (nothing sent).
    const auto b = big_body(7, refused_seq + 1, kBody);
    EXPECT_EQ(p.send(std::as_bytes(std::span<const unsigned char>(b))), Status::NotDurable)
        << "a PERSISTENT send while the log cannot be written";

    // NON_PERSISTENT traffic on another queue goes on.
    auto vp = session.create_producer(Queue("volatile"));
    auto vc = session.create_consumer(Queue("volatile"));
    constexpr std::uint64_t kVolatile = 100;
    for (std::uint64_t seq = 1; seq <= kVolatile; ++seq) {
      unsigned char buf[kPayloadSize];
      make_payload(9, seq, buf);
      ASSERT_EQ(vp.send(std::as_bytes(std::span<const unsigned char>(buf))), Status::Ok)
          << "NON_PERSISTENT send " << seq << " while the disk is full";
    }
    Message m;
    for (std::uint64_t seq = 1; seq <= kVolatile; ++seq) {
      ASSERT_EQ(vc.receive(m, kWait).status, Status::Ok) << "NON_PERSISTENT message " << seq << " while the disk is full";
      const auto d = read_payload(m.body());
      ASSERT_TRUE(d.intact);
      ASSERT_EQ(d.seq, seq);
    }
  }

  stop_daemon_and_check_clean(SIGTERM);
  ASSERT_FALSE(HasFatalFailure());
  start_daemon();  // same, still mounted and still full, tmpfs
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(wait_queue("queue://full", [&](const DestinationStats& d) { return d.restored >= durable.size(); },
                         "the " + std::to_string(durable.size()) + " durable messages restored"));
  std::vector<std::uint64_t> got;
  std::size_t fresh = 0;
  {
    auto session = observer().create_session();
    DestinationOptions geo;
    geo.capacity = 2048;
    auto c = session.create_consumer(Queue("full"), {}, geo);
    Message m;
    for (;;) {
      const auto r = c.receive(m, got.size() < durable.size() ? kWait : kAbsent);
      if (r.status == Status::Timeout) break;
      ASSERT_EQ(r.status, Status::Ok);
      const auto d = read_big_body(m.body(), kBody);
      ASSERT_TRUE(d.intact) << "a corrupted " << kBody << "-byte body after " << got.size() << " messages";
      got.push_back(d.seq);
      if (!m.redelivered()) ++fresh;
    }
  }
  // The send that returned NotDurable may have been queued (and written later): at most once.
  std::vector<std::uint64_t> allowed = durable;
  allowed.push_back(refused_seq);
  const bool exact = got == durable || got == allowed;
  EXPECT_TRUE(exact) << "expected the durable seqs 1.." << durable.size() << " (and at most seq " << refused_seq
                     << " once), in order; got " << got.size() << ": " << join(got);
  EXPECT_EQ(fresh, 0U) << "every message restored after a restart is flagged redelivered";
}

}  // namespace
}  // namespace shmbus::systest
