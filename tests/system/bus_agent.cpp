// bus_agent: the client process the system tests start. One subcommand per role; every line it
// prints on stdout is "key=value ..." so the test can parse it; errors go to stderr, exit code 1.
//
//   produce       --dir D --topic T --id K --count N [--start S]       send N payloads, seq S.. (default 1)
//   subscribe     --dir D --topic T --count N[,N2...] [--hold] [--wait park|spin|yield]
//                 prints "ready", [waits for a line on stdin], then receives until received+lost
//                 reaches each cumulative target, printing one summary line per target
//   claim-and-hang --dir D --topic T                                    claim a slot, print it, block
//   reserve-and-hang --dir D --topic T                                  take a ring sequence (tail
//                 fetch_add, as a producer that dies right after it would), print it, block
//   block-receive --dir D --topic T [--wait park|spin]                  print "ready", block in receive()
//                 once, print the Status it got and CLOCK_MONOTONIC when it returned
//   produce-forever --dir D --topic T --id K [--interval-us U]          print "sending producer=P",
//                 then send payloads seq 1, 2, ... alternating send() and zero-copy claim()/commit()
//                 (written in place), pausing U us between messages (default 0: as fast as it
//                 can), until SIGKILLed or SIGTERMed; on SIGTERM print "done sent=N stalled=S",
//                 exit 0. A Status::Stalled prints "stalled seq=S op=send|claim" and is retried.
// Common: --capacity C --max-size M (geometry if the agent creates the topic), --timeout-ms T
// (longest wait for one message, default 20000).
//
// Queues (--queue Q instead of --topic T):
//   qproduce      --dir D --queue Q --id K --count N [--start S] [--priority P] [--ttl-ms T]
//                 [--delay-ms T] [--fail-fast] [--send-timeout-ms T] [--ack transacted] [--hold]
//                 print "ready", [wait for a line on stdin], send N payloads, print "done sent=N"
//                 (a failed send: "error status=S seq=Q", exit 1). --ack transacted: the sends
//                 are one transaction: print "pending n=N", then a line "commit" or "rollback" on
//                 stdin ends it, then "done".
//   qconsume      --dir D --queue Q --ack MODE [--out FILE] [--sync-out] [--batch B]
//                 [--pause-after N] [--progress-every N] [--crash-after N] [--selector EXPR]
//                 print "ready", then receive until a "stop" line on stdin; after "stop" drain
//                 what is left and print "done received=N redelivered=R bad=B". Every message is
//                 recorded in FILE (16-byte records: u32 agent producer id, u32 delivery count,
//                 u64 seq; delivery count | 0x80000000 when flagged redelivered). --sync-out
//                 writes each record (write(2)) before the next receive, so a SIGKILLed agent's
//                 file holds everything it received; else FILE is written at the end.
//                 client/individual: acknowledge each message after recording it. --pause-after:
//                 after N messages print "paused n=N" and block (to be killed). --progress-every:
//                 print "progress n=N" every N messages. --crash-after: SIGKILL itself as soon as
//                 the N-th receive() returns, before recording the message (a crash while
//                 processing it). --selector: a JMS message selector (ConsumerOptions::selector):
//                 messages it does not match stay in the queue for other consumers.
//   qproduce-forever --dir D --queue Q --id K [--out FILE] [--send-timeout-ms T]
//                 print "sending producer=P", then send payloads seq 1, 2, ... as fast as it can,
//                 alternating send() and zero-copy claim()/commit() (written in place),
//                 FullPolicy::Block; after each send that returned Ok, append a 16-byte record
//                 (the qconsume Record layout: u32 K, u32 0, u64 seq) to FILE with write(2)
//                 before the next send, so a SIGKILLed producer's file lists every send that
//                 returned Ok except possibly the last (killed between Ok and the write).
//                 Status::QueueFull (no slot freed for send_timeout) retries the same seq.
//                 Runs until SIGKILLed or SIGTERMed; on SIGTERM (seen between sends: a send
//                 blocked on a full queue first waits out send_timeout) print "done sent=N", exit 0.
//                 --color-every N: every message is a BytesMessage (send(OutgoingMessage), no
//                 zero-copy claims) whose body is the same 64-byte payload, with a string property
//                 color = 'red' when seq % N == 0, else 'blue' (Message::body() is still the payload,
//                 so qconsume's records and checks are unchanged). Needs --max-size for the frame.
//   qclient       --dir D --queue Q --ack MODE [--ack-timeout-ms T] [--batch B]
//                 a consumer driven line by line from stdin; prints "ready", then one reply per
//                 command:
//                   recv N T    receive up to N messages, T ms each -> "got n=K status=S at_ns=NS
//                               msgs=P:SEQ:R:DC,..." (R: 1 if redelivered; at_ns: CLOCK_MONOTONIC
//                               when the last message came; msgs=- for none)
//                   ack I       Message::acknowledge() on the I-th message received (1-based)
//                               -> "ack status=S"
//                   sack        Session::acknowledge()  -> "sack n=K"
//                   recover     Session::recover()      -> "recover n=K"
//                   commit      Session::commit()       -> "commit ok"
//                   rollback    Session::rollback()     -> "rollback ok"
//                   exit        close and exit 0
//
// Persistence (PERSISTENT queue messages, docs/persistence.md):
//   pproduce      --dir D --queue Q --id K --count N [--start S] [--acks memory|durable|replicated]
//                 [--alternate] [--send-timeout-ms T]
//                 a queue producer with ProducerOptions::delivery_mode PERSISTENT and
//                 ProducerOptions::acks (default memory); print "ready producer=P", then send
//                 payloads seq S..S+N-1 and after each send that returned Ok print "durable seq=N"
//                 (a PERSISTENT send with --acks durable: written and fsync'ed, promised to survive)
//                 or "replicated seq=N" (--acks replicated: the leader's high watermark passed it)
//                 or "sent seq=N persistent=1|0". --alternate: even seqs are sent NON_PERSISTENT
//                 (SendOptions::delivery_mode). A failed send: "error status=S seq=Q", exit 1 (a
//                 SIGKILLed daemon shows as daemon-gone or not-durable). At the end "done sent=N".
//
// Durable subscriptions (Session::create_durable_subscriber, docs/persistence.md):
//   dsub          --dir D --topic T --name N --ack auto|client|individual|dups_ok|transacted
//                 a durable subscriber of subscription N on T driven line by line from stdin;
//                 prints "ready consumer=C", then one reply per command:
//                   recv K T    receive up to K messages, T ms each: one line "recv seq=S
//                               redelivered=0|1" per message (S: the payload's seq), then
//                               "got n=K status=S"
//                   ack         Session::acknowledge()  -> "ack n=K"
//                   recover     Session::recover()      -> "recover n=K"
//                   exit        close (Auto/DupsOk commit what was received) -> "bye", exit 0
//
// Request/reply (temporary destinations):
//   replier       --dir D --queue Q [--count N]
//                 print "ready consumer=C", then N times (default 1): receive a request from Q
//                 and answer it with a TextMessage "reply:<request text>" carrying the request's
//                 correlation id, sent by a fresh producer on Destination::parse(reply_to); print
//                 "replied to=URI correlation=ID status=S", or "reply-failed code=ERRORCODE
//                 to=URI correlation=ID" when the producer cannot be created (the full message on
//                 stderr); then "done replied=K failed=F".
//   temp-hold     --dir D (--queue X | --topic X)
//                 create a temporary queue (--queue) or topic (--topic; X is not used) and a
//                 consumer on it, print "temp uri=URI consumer=C", then block until a line on
//                 stdin (or EOF): close the connection, print "bye", exit 0. Killed, it shows
//                 the daemon deleting a dead process's temporary destination.
// Queue options: --ack auto|client|dups_ok|individual|transacted, --ack-timeout-ms T (default
// 30000; 0: none), --batch B (ConsumerOptions::dups_ok_batch, default 32), --max-deliveries N.
#include "common/paths.hpp"
#include "layout/topic_layout.hpp"
#include "payload.hpp"
#include "shmbus/shmbus.hpp"

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using namespace shmbus;
using namespace shmbus::systest;

struct Args {
  std::string cmd, dir, topic, queue, wait = "park", ack = "auto", out, selector;
  std::uint32_t id = 0, capacity = 4096, max_size = 64;
  std::uint64_t start = 1, timeout_ms = 20000, interval_us = 0;
  std::vector<std::uint64_t> counts;
  bool hold = false;
  // Queues.
  bool sync_out = false, fail_fast = false;
  int priority = -1;
  std::uint64_t ttl_ms = 0, delay_ms = 0, send_timeout_ms = 10000, ack_timeout_ms = 30000, pause_after = 0,
                progress_every = 0, crash_after = 0, color_every = 0;
  std::uint32_t batch = 32, max_deliveries = 10;
  // Persistence.
  std::string acks = "memory";
  bool alternate = false;
  // Durable subscriptions.
  std::string name;
};

std::uint64_t number(const std::string& k, const std::string& v) {
  std::size_t used = 0;
  const auto n = std::stoull(v, &used);
  if (used != v.size()) throw std::invalid_argument(k + " needs a number, not '" + v + "'");
  return n;
}

Args parse(int argc, char** argv) {
  Args a;
  if (argc < 2) throw std::invalid_argument("usage: bus_agent COMMAND [options]");
  a.cmd = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--alternate") {
      a.alternate = true;
      continue;
    }
    if (k == "--hold" || k == "--sync-out" || k == "--fail-fast") {
      (k == "--hold" ? a.hold : k == "--sync-out" ? a.sync_out : a.fail_fast) = true;
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument(k + " needs a value");
    const std::string v = argv[++i];
    if (k == "--dir") a.dir = v;
    else if (k == "--topic") a.topic = v;
    else if (k == "--wait") a.wait = v;
    else if (k == "--id") a.id = static_cast<std::uint32_t>(number(k, v));
    else if (k == "--capacity") a.capacity = static_cast<std::uint32_t>(number(k, v));
    else if (k == "--max-size") a.max_size = static_cast<std::uint32_t>(number(k, v));
    else if (k == "--start") a.start = number(k, v);
    else if (k == "--timeout-ms") a.timeout_ms = number(k, v);
    else if (k == "--interval-us") a.interval_us = number(k, v);
    else if (k == "--queue") a.queue = v;
    else if (k == "--ack") a.ack = v;
    else if (k == "--out") a.out = v;
    else if (k == "--priority") a.priority = static_cast<int>(number(k, v));
    else if (k == "--ttl-ms") a.ttl_ms = number(k, v);
    else if (k == "--delay-ms") a.delay_ms = number(k, v);
    else if (k == "--send-timeout-ms") a.send_timeout_ms = number(k, v);
    else if (k == "--ack-timeout-ms") a.ack_timeout_ms = number(k, v);
    else if (k == "--pause-after") a.pause_after = number(k, v);
    else if (k == "--progress-every") a.progress_every = number(k, v);
    else if (k == "--crash-after") a.crash_after = number(k, v);
    else if (k == "--batch") a.batch = static_cast<std::uint32_t>(number(k, v));
    else if (k == "--max-deliveries") a.max_deliveries = static_cast<std::uint32_t>(number(k, v));
    else if (k == "--selector") a.selector = v;
    else if (k == "--color-every") a.color_every = number(k, v);
    else if (k == "--acks") a.acks = v;
    else if (k == "--name") a.name = v;
    else if (k == "--count") {
      std::stringstream ss(v);
      for (std::string part; std::getline(ss, part, ',');) a.counts.push_back(number(k, part));
    } else throw std::invalid_argument("unknown option " + k);
  }
  if (a.dir.empty() || (a.topic.empty() == a.queue.empty()))
    throw std::invalid_argument("--dir and one of --topic / --queue are required");
  return a;
}

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

WaitStrategy strategy(const std::string& w) {
  if (w == "spin") return WaitStrategy::Spin;
  if (w == "yield") return WaitStrategy::SpinYield;
  if (w == "park") return WaitStrategy::Park;
  throw std::invalid_argument("--wait must be park, spin or yield, not '" + w + "'");
}

AckMode ack_mode(const std::string& m) {
  if (m == "auto") return AckMode::Auto;
  if (m == "client") return AckMode::Client;
  if (m == "dups_ok") return AckMode::DupsOk;
  if (m == "individual") return AckMode::Individual;
  if (m == "transacted") return AckMode::Transacted;
  throw std::invalid_argument("--ack must be auto, client, dups_ok, individual or transacted, not '" + m + "'");
}

struct Session_ {
  Connection conn;
  Session session;
  explicit Session_(const Args& a, AckMode mode = AckMode::Auto)
      : conn(ConnectionFactory(a.dir, "agent-" + a.cmd).create_connection()), session(conn.create_session(mode)) {}
};

int produce(const Args& a) {
  Session_ s(a);
  auto p = s.session.create_producer(Topic(a.topic), {}, {a.capacity, a.max_size});
  const std::uint64_t n = a.counts.empty() ? 0 : a.counts.front();
  unsigned char buf[kPayloadSize];
  for (std::uint64_t seq = a.start; seq < a.start + n; ++seq) {
    make_payload(a.id, seq, buf);
    const auto st = p.send(std::as_bytes(std::span<const unsigned char>(buf)));
    if (st != Status::Ok) {
      std::cerr << "bus_agent produce: send of seq " << seq << " failed: " << to_string(st) << "\n";
      say("error status=" + std::string(to_string(st)) + " seq=" + std::to_string(seq));
      return 1;
    }
  }
  say("done sent=" + std::to_string(n));
  return 0;
}

// Per-producer order bookkeeping: each producer's sequence must go up by exactly one, except right
// after a lap, where the jump is counted as lost.
struct Tally {
  std::uint64_t received = 0, lost = 0, lapped = 0, bad = 0, disorder = 0, gaps = 0;
  std::map<std::uint32_t, std::uint64_t> first, last, count, epoch_seen;
  std::uint64_t lap_epoch = 0;  // a producer may jump once after each lap

  void message(const Message& m) {
    const auto d = read_payload(m.body());
    ++received;
    if (!d.intact) {
      ++bad;
      return;
    }
    if (!first.count(d.producer)) first[d.producer] = d.seq;
    else if (d.seq <= last[d.producer]) ++disorder;  // duplicate or out of order
    else if (d.seq != last[d.producer] + 1 && epoch_seen[d.producer] == lap_epoch) ++gaps;
    last[d.producer] = d.seq;
    epoch_seen[d.producer] = lap_epoch;
    ++count[d.producer];
  }
  std::string line(std::size_t phase) const {
    std::string s = "phase=" + std::to_string(phase) + " received=" + std::to_string(received) +
                    " lost=" + std::to_string(lost) + " lapped=" + std::to_string(lapped) +
                    " bad=" + std::to_string(bad) + " disorder=" + std::to_string(disorder) +
                    " gaps=" + std::to_string(gaps);
    for (const auto& [k, v] : count)
      s += " p" + std::to_string(k) + ".count=" + std::to_string(v) + " p" + std::to_string(k) +
           ".first=" + std::to_string(first.at(k)) + " p" + std::to_string(k) + ".last=" + std::to_string(last.at(k));
    return s;
  }
};

int subscribe(const Args& a) {
  Session_ s(a);
  auto c = s.session.create_consumer(Topic(a.topic), {strategy(a.wait), 0}, {a.capacity, a.max_size});
  say("ready consumer=" + std::to_string(c.id()));
  if (a.hold) {
    std::string go;
    if (!std::getline(std::cin, go)) return 1;
  }
  Tally t;
  Message m;
  for (std::size_t phase = 0; phase < a.counts.size(); ++phase) {
    while (t.received + t.lost < a.counts[phase]) {
      const auto r = c.receive(m, std::chrono::milliseconds(a.timeout_ms));
      if (r.status == Status::Ok) {
        t.message(m);
      } else if (r.status == Status::Lapped) {
        t.lost += r.lost;
        ++t.lapped;
        ++t.lap_epoch;
      } else {
        std::cerr << "bus_agent subscribe: receive returned " << to_string(r.status) << " after "
                  << t.received << " message(s); " << t.line(phase + 1) << "\n";
        say("error status=" + std::string(to_string(r.status)) + " " + t.line(phase + 1));
        return 1;
      }
    }
    say(t.line(phase + 1) + " lost_total=" + std::to_string(c.lost_total()));
  }
  return 0;
}

[[noreturn]] void block_forever() {
  for (;;) ::pause();
}

int claim_and_hang(const Args& a) {
  Session_ s(a);
  auto p = s.session.create_producer(Topic(a.topic), {}, {a.capacity, a.max_size});
  auto claim = p.claim(kPayloadSize);
  if (claim.status != Status::Ok) {
    std::cerr << "bus_agent claim-and-hang: claim failed: " << to_string(claim.status) << "\n";
    return 1;
  }
  std::memset(claim.buffer.data(), 0xAB, kPayloadSize / 2);  // half written, never committed
  say("claimed seq=" + std::to_string(claim.sequence));
  block_forever();
}

// The claim a producer makes when it dies between the tail fetch_add and the slot stamp CAS: a
// sequence nobody will ever write. The daemon must revoke it (pad) after its grace period.
int reserve_and_hang(const Args& a) {
  namespace bip = boost::interprocess;
  Session_ s(a);
  auto p = s.session.create_producer(Topic(a.topic), {}, {a.capacity, a.max_size});  // creates and maps it
  std::uint32_t dest_id = 0;
  for (const auto& d : s.conn.stats().destinations)
    if (d.uri == "topic://" + a.topic) dest_id = d.dest_id;
  const auto name = common::dest_shm_name(common::canonical_dir(a.dir), dest_id);
  bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_write);
  bip::mapped_region region(shm, bip::read_write);
  auto* h = static_cast<layout::TopicHeader*>(region.get_address());
  // Relaxed: the same fetch_add TopicWriter::claim makes.
  const auto seq = h->tail.fetch_add(1, std::memory_order_relaxed);
  say("reserved seq=" + std::to_string(seq));
  block_forever();
}

int block_receive(const Args& a) {
  Session_ s(a);
  auto c = s.session.create_consumer(Topic(a.topic), {strategy(a.wait), 0}, {a.capacity, a.max_size});
  say("ready consumer=" + std::to_string(c.id()));
  Message m;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = c.receive(m, std::chrono::milliseconds(a.timeout_ms));
  const auto t1 = std::chrono::steady_clock::now();
  say("status=" + std::string(to_string(r.status)) + " returned_ns=" +
      std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(t1.time_since_epoch()).count()) +
      " waited_ms=" + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0).count()));
  return 0;
}

volatile std::sig_atomic_t g_stop = 0;

extern "C" void on_sigterm(int) { g_stop = 1; }

// Sends payload (id, seq): odd seqs with send(), even ones with zero-copy claim()/commit(), the
// payload written field by field into shared memory rather than copied from a finished buffer.
Status send_alternating(MessageProducer& p, std::uint32_t id, std::uint64_t seq) {
  if ((seq & 1) == 0) {
    auto c = p.claim(kPayloadSize);
    if (c.status != Status::Ok) return c.status;
    make_payload(id, seq, *reinterpret_cast<unsigned char(*)[kPayloadSize]>(c.buffer.data()));
    return p.commit(c, kPayloadSize);
  }
  unsigned char buf[kPayloadSize];
  make_payload(id, seq, buf);
  return p.send(std::as_bytes(std::span<const unsigned char>(buf)));
}

// Any instruction of this loop may be the last one (the random-kill test SIGKILLs it): between
// the tail fetch_add and the slot's writing mark, half-way through the in-place payload, or
// between the payload and the commit's publish. Every payload that does get published is whole.
int produce_forever(const Args& a) {
  std::signal(SIGTERM, on_sigterm);
  Session_ s(a);
  auto p = s.session.create_producer(Topic(a.topic), {}, {a.capacity, a.max_size});
  say("sending producer=" + std::to_string(p.id()));
  std::uint64_t seq = 1, stalled = 0;
  while (!g_stop) {
    const bool zero_copy = (seq & 1) == 0;
    const Status st = send_alternating(p, a.id, seq);
    if (st == Status::Stalled) {  // the sequence is kept: retry the same payload
      ++stalled;
      say("stalled seq=" + std::to_string(seq) + " op=" + (zero_copy ? "claim" : "send"));
      continue;
    }
    if (st != Status::Ok) {
      std::cerr << "bus_agent produce-forever: seq " << seq << " failed: " << to_string(st) << "\n";
      say("error status=" + std::string(to_string(st)) + " seq=" + std::to_string(seq));
      return 1;
    }
    ++seq;
    if (a.interval_us) std::this_thread::sleep_for(std::chrono::microseconds(a.interval_us));
  }
  say("done sent=" + std::to_string(seq - 1) + " stalled=" + std::to_string(stalled));
  return 0;
}


// ------------------------------------------------------------------ queues

DestinationOptions queue_geometry(const Args& a) {
  DestinationOptions o;
  o.capacity = a.capacity;
  o.max_message_size = a.max_size;
  o.max_deliveries = a.max_deliveries;
  return o;
}

ConsumerOptions consumer_options(const Args& a) {
  ConsumerOptions o;
  o.wait = strategy(a.wait);
  o.ack_timeout = std::chrono::milliseconds(a.ack_timeout_ms);
  o.dups_ok_batch = a.batch;
  o.selector = a.selector;
  return o;
}

std::int64_t mono_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int qproduce(const Args& a) {
  const AckMode mode = ack_mode(a.ack);
  Session_ s(a, mode);
  ProducerOptions po;
  if (a.priority >= 0) po.priority = static_cast<std::uint8_t>(a.priority);
  po.time_to_live = std::chrono::milliseconds(a.ttl_ms);
  po.delivery_delay = std::chrono::milliseconds(a.delay_ms);
  po.on_full = a.fail_fast ? FullPolicy::FailFast : FullPolicy::Block;
  po.send_timeout = std::chrono::milliseconds(a.send_timeout_ms);
  auto p = s.session.create_producer(Queue(a.queue), po, queue_geometry(a));
  say("ready producer=" + std::to_string(p.id()));
  if (a.hold) {
    std::string go;
    if (!std::getline(std::cin, go)) return 1;
  }
  const std::uint64_t n = a.counts.empty() ? 0 : a.counts.front();
  unsigned char buf[kPayloadSize];
  for (std::uint64_t seq = a.start; seq < a.start + n; ++seq) {
    make_payload(a.id, seq, buf);
    const auto t0 = mono_ns();
    const auto st = p.send(std::as_bytes(std::span<const unsigned char>(buf)));
    if (st != Status::Ok) {
      std::cerr << "bus_agent qproduce: send of seq " << seq << " failed: " << to_string(st) << "\n";
      say("error status=" + std::string(to_string(st)) + " seq=" + std::to_string(seq) +
          " waited_ms=" + std::to_string((mono_ns() - t0) / 1'000'000));
      return 1;
    }
  }
  if (mode == AckMode::Transacted) {
    say("pending n=" + std::to_string(n));
    std::string what;
    if (!std::getline(std::cin, what)) return 1;
    if (what == "commit") s.session.commit();
    else if (what == "rollback") s.session.rollback();
    else throw std::invalid_argument("qproduce: commit or rollback, not '" + what + "'");
  }
  say("done sent=" + std::to_string(n));
  return 0;
}

// One received message as the tests see it.
struct Record {
  std::uint32_t producer = 0;
  std::uint32_t count = 0;  // delivery count, | 0x80000000 when flagged redelivered
  std::uint64_t seq = 0;
};
static_assert(sizeof(Record) == 16);

bool write_all(int fd, const void* p, std::size_t n) {
  const auto* b = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    b += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// A "stop" line (or EOF) on stdin, looked at without blocking.
bool stop_requested() {
  pollfd p{0, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  std::string line;
  if (!std::getline(std::cin, line)) return true;
  return line == "stop";
}

// The queue twin of produce-forever, for the queue random-kill test: any instruction may be the
// last one (between the free-ring pop and the WRITING CAS, half-way through the in-place payload,
// between the READY store and the ready-ring push, between Ok and the record's write).
int qproduce_forever(const Args& a) {
  std::signal(SIGTERM, on_sigterm);
  int fd = -1;
  if (!a.out.empty()) {
    fd = ::open(a.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot open " + a.out + ": " + std::strerror(errno));
  }
  Session_ s(a);
  ProducerOptions po;
  po.on_full = FullPolicy::Block;
  po.send_timeout = std::chrono::milliseconds(a.send_timeout_ms);
  auto p = s.session.create_producer(Queue(a.queue), po, queue_geometry(a));
  say("sending producer=" + std::to_string(p.id()));
  std::uint64_t seq = 1;
  while (!g_stop) {
    Status st = Status::Ok;
    if (a.color_every != 0) {  // the payload as a BytesMessage with a color property
      unsigned char buf[kPayloadSize];
      make_payload(a.id, seq, buf);
      BytesMessage colored(std::as_bytes(std::span<const unsigned char>(buf)));
      colored.set_string_property("color", seq % a.color_every == 0 ? "red" : "blue");
      st = p.send(colored);
    } else {
      st = send_alternating(p, a.id, seq);
    }
    if (st == Status::QueueFull) continue;  // nobody consumed for send_timeout: same seq again
    if (st != Status::Ok) {
      std::cerr << "bus_agent qproduce-forever: seq " << seq << " failed: " << to_string(st) << "\n";
      say("error status=" + std::string(to_string(st)) + " seq=" + std::to_string(seq));
      return 1;
    }
    if (fd >= 0) {
      const Record rec{a.id, 0, seq};
      if (!write_all(fd, &rec, sizeof rec)) throw std::runtime_error("write " + a.out + " failed");
    }
    ++seq;
  }
  if (fd >= 0) ::close(fd);
  say("done sent=" + std::to_string(seq - 1));
  return 0;
}

int qconsume(const Args& a) {
  const AckMode mode = ack_mode(a.ack);
  Session_ s(a, mode);
  auto c = s.session.create_consumer(Queue(a.queue), consumer_options(a), queue_geometry(a));
  int fd = -1;
  if (!a.out.empty()) {
    fd = ::open(a.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot open " + a.out + ": " + std::strerror(errno));
  }
  std::vector<Record> records;
  records.reserve(1 << 16);
  say("ready consumer=" + std::to_string(c.id()));
  std::uint64_t received = 0, redelivered = 0, bad = 0;
  bool stopping = false;
  Message m;
  for (;;) {
    const auto r = stopping ? c.receive_no_wait(m) : c.receive(m, std::chrono::milliseconds(20));
    if (r.status == Status::Timeout) {
      if (stopping) break;
      stopping = stop_requested();
      continue;
    }
    if (r.status != Status::Ok) {
      std::cerr << "bus_agent qconsume: receive returned " << to_string(r.status) << " after " << received << "\n";
      say("error status=" + std::string(to_string(r.status)) + " received=" + std::to_string(received));
      return 1;
    }
    if (a.crash_after && received + 1 == a.crash_after) ::raise(SIGKILL);  // dies while "processing" it
    const auto d = read_payload(m.body());
    if (!d.intact) ++bad;
    if (m.redelivered()) ++redelivered;
    const Record rec{d.producer, m.delivery_count() | (m.redelivered() ? 0x80000000U : 0U), d.seq};
    if (fd >= 0 && a.sync_out) {
      if (!write_all(fd, &rec, sizeof rec)) throw std::runtime_error("write " + a.out + " failed");
    } else {
      records.push_back(rec);
    }
    if (mode == AckMode::Client || mode == AckMode::Individual) {
      if (const auto st = m.acknowledge(); st != Status::Ok) {
        say("error ack status=" + std::string(to_string(st)) + " received=" + std::to_string(received));
        return 1;
      }
    } else if (mode == AckMode::Transacted) {
      s.session.commit();
    }
    ++received;
    if (a.progress_every && received % a.progress_every == 0) say("progress n=" + std::to_string(received));
    if (a.pause_after && received == a.pause_after) {
      say("paused n=" + std::to_string(received));
      block_forever();
    }
  }
  if (fd >= 0 && !records.empty() && !write_all(fd, records.data(), records.size() * sizeof(Record)))
    throw std::runtime_error("write " + a.out + " failed");
  if (fd >= 0) ::close(fd);
  say("done received=" + std::to_string(received) + " redelivered=" + std::to_string(redelivered) +
      " bad=" + std::to_string(bad));
  return 0;
}

int qclient(const Args& a) {
  const AckMode mode = ack_mode(a.ack);
  Session_ s(a, mode);
  auto c = s.session.create_consumer(Queue(a.queue), consumer_options(a), queue_geometry(a));
  say("ready consumer=" + std::to_string(c.id()));
  std::vector<Message> got;  // copies: acknowledge() stays valid until the consumer closes
  for (std::string line; std::getline(std::cin, line);) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "recv") {
      std::uint64_t n = 0, t = 0;
      in >> n >> t;
      std::string msgs;
      std::uint64_t k = 0;
      std::int64_t at = 0;
      Status last = Status::Ok;
      Message m;
      for (; k < n; ++k) {
        const auto r = c.receive(m, std::chrono::milliseconds(t));
        last = r.status;
        if (r.status != Status::Ok) break;
        at = mono_ns();
        const auto d = read_payload(m.body());
        if (!d.intact) {
          say("error bad payload");
          return 1;
        }
        got.push_back(m);
        msgs += (msgs.empty() ? "" : ",") + std::to_string(d.producer) + ":" + std::to_string(d.seq) + ":" +
                (m.redelivered() ? "1" : "0") + ":" + std::to_string(m.delivery_count());
      }
      say("got n=" + std::to_string(k) + " status=" + to_string(last) + " at_ns=" + std::to_string(at) +
          " msgs=" + (msgs.empty() ? "-" : msgs));
    } else if (cmd == "ack") {
      std::size_t i = 0;
      in >> i;
      if (i < 1 || i > got.size()) throw std::invalid_argument("ack: no message " + std::to_string(i));
      say("ack status=" + std::string(to_string(got[i - 1].acknowledge())));
    } else if (cmd == "sack") {
      say("sack n=" + std::to_string(s.session.acknowledge()));
    } else if (cmd == "recover") {
      say("recover n=" + std::to_string(s.session.recover()));
    } else if (cmd == "commit") {
      s.session.commit();
      say("commit ok");
    } else if (cmd == "rollback") {
      s.session.rollback();
      say("rollback ok");
    } else if (cmd == "exit") {
      c.close();
      say("bye");
      return 0;
    } else {
      throw std::invalid_argument("unknown qclient command '" + line + "'");
    }
  }
  return 0;
}

// ------------------------------------------------------------------ request/reply

int replier(const Args& a) {
  Session_ s(a);
  auto c = s.session.create_consumer(Queue(a.queue), consumer_options(a), queue_geometry(a));
  say("ready consumer=" + std::to_string(c.id()));
  const std::uint64_t n = a.counts.empty() ? 1 : a.counts.front();
  std::uint64_t replied = 0, failed = 0;
  Message m;
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto r = c.receive(m, std::chrono::milliseconds(a.timeout_ms));
    if (r.status != Status::Ok) {
      std::cerr << "bus_agent replier: receive returned " << to_string(r.status) << " after " << i << " request(s)\n";
      say("error status=" + std::string(to_string(r.status)) + " received=" + std::to_string(i));
      return 1;
    }
    // Copies: the message is a view into the consumer's buffer.
    const std::string to(m.reply_to()), cid(m.correlation_id()), text(m.text());
    try {
      auto p = s.session.create_producer(Destination::parse(to));  // any connection may produce to it
      TextMessage reply("reply:" + text);
      reply.set_correlation_id(cid);
      const Status st = p.send(reply);
      ++(st == Status::Ok ? replied : failed);
      say("replied to=" + to + " correlation=" + cid + " status=" + to_string(st));
    } catch (const Error& e) {
      ++failed;
      std::cerr << "bus_agent replier: cannot answer to '" << to << "': " << to_string(e.code()) << ": " << e.what() << "\n";
      say("reply-failed code=" + std::string(to_string(e.code())) + " to=" + to + " correlation=" + cid);
    }
  }
  say("done replied=" + std::to_string(replied) + " failed=" + std::to_string(failed));
  return 0;
}

int temp_hold(const Args& a) {
  Session_ s(a);
  std::string uri;
  std::optional<MessageConsumer> c;
  if (!a.queue.empty()) {
    const auto t = s.session.create_temporary_queue(queue_geometry(a));
    c.emplace(s.session.create_consumer(t, consumer_options(a)));
    uri = t.uri();
  } else {
    const auto t = s.session.create_temporary_topic({a.capacity, a.max_size});
    c.emplace(s.session.create_consumer(t, {strategy(a.wait), 0}));
    uri = t.uri();
  }
  say("temp uri=" + uri + " consumer=" + std::to_string(c->id()));
  std::string line;
  std::getline(std::cin, line);
  c.reset();
  s.conn.close();
  say("bye");
  return 0;
}

// ------------------------------------------------------------------ persistence

int pproduce(const Args& a) {
  Session_ s(a);
  ProducerOptions po;
  po.delivery_mode = DeliveryMode::Persistent;
  if (a.acks == "durable") po.acks = Acks::Durable;
  else if (a.acks == "replicated") po.acks = Acks::Replicated;
  else if (a.acks != "memory") throw std::invalid_argument("--acks must be memory, durable or replicated, not '" + a.acks + "'");
  po.on_full = FullPolicy::Block;
  po.send_timeout = std::chrono::milliseconds(a.send_timeout_ms);
  auto p = s.session.create_producer(Queue(a.queue), po, queue_geometry(a));
  say("ready producer=" + std::to_string(p.id()));
  const std::uint64_t n = a.counts.empty() ? 0 : a.counts.front();
  unsigned char buf[kPayloadSize];
  for (std::uint64_t seq = a.start; seq < a.start + n; ++seq) {
    make_payload(a.id, seq, buf);
    SendOptions so;
    const bool persistent = !(a.alternate && seq % 2 == 0);
    so.delivery_mode = persistent ? DeliveryMode::Persistent : DeliveryMode::NonPersistent;
    const auto st = p.send(std::as_bytes(std::span<const unsigned char>(buf)), so);
    if (st != Status::Ok) {
      std::cerr << "bus_agent pproduce: send of seq " << seq << " failed: " << to_string(st) << "\n";
      say("error status=" + std::string(to_string(st)) + " seq=" + std::to_string(seq));
      return 1;
    }
    if (persistent && po.acks == Acks::Durable) say("durable seq=" + std::to_string(seq));
    else if (persistent && po.acks == Acks::Replicated) say("replicated seq=" + std::to_string(seq));
    else say("sent seq=" + std::to_string(seq) + " persistent=" + (persistent ? "1" : "0"));
  }
  say("done sent=" + std::to_string(n));
  return 0;
}

// ------------------------------------------------------------------ durable subscriptions

int dsub(const Args& a) {
  Session_ s(a, ack_mode(a.ack));
  auto c = s.session.create_durable_subscriber(Topic(a.topic), a.name, consumer_options(a), {a.capacity, a.max_size});
  say("ready consumer=" + std::to_string(c.id()));
  for (std::string line; std::getline(std::cin, line);) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "recv") {
      std::uint64_t n = 0, t = 0, k = 0;
      in >> n >> t;
      Status last = Status::Ok;
      Message m;
      for (; k < n; ++k) {
        const auto r = c.receive(m, std::chrono::milliseconds(t));
        last = r.status;
        if (r.status != Status::Ok) break;
        const auto d = read_payload(m.body());
        if (!d.intact) {
          say("error bad payload");
          return 1;
        }
        say("recv seq=" + std::to_string(d.seq) + " redelivered=" + (m.redelivered() ? "1" : "0"));
      }
      say("got n=" + std::to_string(k) + " status=" + to_string(last));
    } else if (cmd == "ack") {
      say("ack n=" + std::to_string(s.session.acknowledge()));
    } else if (cmd == "recover") {
      say("recover n=" + std::to_string(s.session.recover()));
    } else if (cmd == "exit") {
      c.close();
      say("bye");
      return 0;
    } else {
      throw std::invalid_argument("unknown dsub command '" + line + "'");
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    if (a.cmd == "produce") return produce(a);
    if (a.cmd == "subscribe") return subscribe(a);
    if (a.cmd == "claim-and-hang") return claim_and_hang(a);
    if (a.cmd == "reserve-and-hang") return reserve_and_hang(a);
    if (a.cmd == "block-receive") return block_receive(a);
    if (a.cmd == "produce-forever") return produce_forever(a);
    if (a.cmd == "qproduce") return qproduce(a);
    if (a.cmd == "qconsume") return qconsume(a);
    if (a.cmd == "qproduce-forever") return qproduce_forever(a);
    if (a.cmd == "qclient") return qclient(a);
    if (a.cmd == "replier") return replier(a);
    if (a.cmd == "temp-hold") return temp_hold(a);
    if (a.cmd == "pproduce") return pproduce(a);
    if (a.cmd == "dsub") return dsub(a);
    std::cerr << "bus_agent: unknown command '" << a.cmd << "'\n";
    return 2;
  } catch (const shmbus::Error& e) {
    std::cerr << "bus_agent: " << to_string(e.code()) << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "bus_agent: " << e.what() << "\n";
    return 2;
  }
}
