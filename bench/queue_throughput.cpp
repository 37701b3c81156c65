// queue-throughput: msgs/s and MB/s through one queue://, N producers -> M consumers, each a
// process, every message acknowledged (per the consumers' session ack mode), and a check that
// every message sent was received exactly once.
//
// Cases per message size: a topic 1->1 (the reference, same run: throughput.cpp's workers), then
// for each --ack mode, --producers N -> 1, 2 and 4 consumers (or --consumers M). A queue never
// drops: a full queue blocks its producer (FullPolicy::Block), so what the consumers take is what
// the producers sent.
//
// Rounds (--rounds, default 5): every case runs once per round with 1/R of the time (or of the
// messages), the cases alternating, so that a VM drifting between fast and slow states hits the
// topic and the queues alike; a point's figure is the mean of its rounds (min and max shown).
//
// Two ways to time a round of a point:
//   --seconds S (default): as `throughput`: after a warm-up, each worker counts its messages
//     between the moments it sees the "measure" and "stop" phases, with its own rdtscp ticks;
//     msgs/s = sum over consumers. Producers then stop, consumers drain the queue.
//   --messages N: the producers send exactly N/R messages between them as fast as they can;
//     msgs/s = N/R / (last receive - first send), both on the shared TSC (a consumer reads the
//     clock every 64th message, so the last receive is seen up to 63 messages early: noise at
//     these counts). The topic reference stays time-based (S/R per round): it may lap.
//
// The exactly-once check covers each round whole, warm-up and drain included: each producer adds
// up message_hash(producer id, producer sequence) over its sends and counts them; each consumer
// does the same over what it receives (Message::producer_id / producer_sequence). Equal counts
// and equal sums: every message arrived once. Consumers also check that the payload carries its
// producer sequence and, with one producer, that they see sequences in increasing order (one
// priority: the queue is FIFO), and count redeliveries and failed acknowledge() calls.
#include "queue_common.hpp"
#include "scenario_common.hpp"
#include "scenarios.hpp"
#include "throughput.hpp"
#include "shmbus/shmbus.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <thread>
#include <unistd.h>

namespace shmbus::bench {

namespace {

/// One queue worker's figures, written by that worker only (read by the coordinator after join,
/// except `s.done`).
struct alignas(128) QStat {
  Stat s;                     // window and totals as in `throughput` (s.total: messages sent/received)
  std::uint64_t hash;         // sum of message_hash over every message sent/received
  std::uint64_t t_first;      // producers: ticks just before the first send
  std::uint64_t t_last;       // consumers (--messages): ticks at the last 64th message received
  std::uint64_t out_of_order, bad_payload, redelivered, ack_failures;  // consumers
  std::uint32_t producer_id;  // producers: MessageProducer::id()
};

struct Case {
  std::string key, label, ack;  // ack: "" for the topic reference
  std::uint32_t producers = 1, consumers = 1;
  bool pin = false;
};

struct Result {
  Case cs;
  std::uint32_t size = 0, capacity = 0;
  double sent_rate = 0, recv_rate = 0;  // aggregate msgs/s over all producers / consumers
  std::vector<double> cons_rate;        // per consumer msgs/s
  std::vector<std::uint64_t> cons_recv; // per consumer messages received over the whole run
  // The check (queues): whole run.
  std::uint64_t sent = 0, received = 0, sent_hash = 0, recv_hash = 0;
  std::uint64_t out_of_order = 0, bad_payload = 0, redelivered = 0, ack_failures = 0;
  // The topic reference: messages lost to lapping per second, and delivered + lost == sent.
  double lost_rate = 0;
  bool accounted = true;
  double seconds = 0;  // measured span (--messages: first send to last receive)
  bool exactly_once() const {
    return cs.ack.empty() || (received == sent && recv_hash == sent_hash && bad_payload == 0 && ack_failures == 0);
  }
  std::string problems() const {
    if (cs.ack.empty()) return accounted ? "" : "topic: delivered + lost != sent";
    std::string p;
    const auto add = [&p](const std::string& s) { p += (p.empty() ? "" : "; ") + s; };
    if (received != sent)
      add("received " + std::to_string(received) + " of " + std::to_string(sent) + " sent (" +
          (received > sent ? std::to_string(received - sent) + " too many" : std::to_string(sent - received) + " missing") + ")");
    else if (recv_hash != sent_hash)
      add("counts match but the checksum of producer sequences does not (duplicates and losses)");
    if (bad_payload) add(std::to_string(bad_payload) + " payloads without their producer sequence");
    if (ack_failures) add(std::to_string(ack_failures) + " acknowledge() calls failed");
    if (out_of_order) add(std::to_string(out_of_order) + " out of order (FIFO, one producer)");
    if (redelivered) add(std::to_string(redelivered) + " redelivered");
    return p;
  }
};

double secs_of(const Stat& s, double npt) { return static_cast<double>(s.t_end - s.t_begin) * npt / 1e9; }
double rate_of(const Stat& s, double npt) {
  const double secs = secs_of(s, npt);
  return secs > 0 ? static_cast<double>(s.c_end - s.c_begin) / secs : 0.0;
}
double mb(double msgs, std::uint32_t size) { return msgs * size / 1e6; }

/// Waits (polling, 50 us) until the coordinator moves past `ph`; throws on abort.
void wait_past(const WorkerCtx& ctx, std::uint32_t ph) {
  std::uint32_t p;
  while ((p = ctx.phase()) <= ph) std::this_thread::sleep_for(std::chrono::microseconds(50));
  if (p == kAbort) throw std::runtime_error("aborted by the coordinator");
}

std::vector<Worker> queue_workers(const Args& a, const Case& cs, const std::string& dir, std::uint32_t size,
                                  std::uint32_t capacity, QStat* st) {
  const Queue queue("bench.qtp." + std::to_string(::getpid()) + "." + std::to_string(mono_ns() % 100'000'000));
  DestinationOptions dopts;
  dopts.capacity = capacity;
  dopts.max_message_size = size;
  const std::uint32_t np = cs.producers, nc = cs.consumers;
  const AckMode mode = ack_mode_of(cs.ack);
  const bool counted = a.messages != 0;
  std::vector<Worker> ws;
  for (std::uint32_t i = 0; i < nc; ++i)
    ws.push_back({"consumer " + std::to_string(i + 1), cs.pin ? 1 : -1, [=, &a](WorkerCtx& ctx) {
      Connection conn = ConnectionFactory(dir, "shmbus-bench-qtp-consumer").create_connection();
      Session s = conn.create_session(mode);
      ConsumerOptions copts;
      copts.wait = wait_strategy(a.wait);
      copts.spin_count = a.spin_count;
      MessageConsumer in = s.create_consumer(queue, copts, dopts);
      QStat* me = st + np + i;
      const bool ack_each = acks_explicitly(mode);
      const auto all_done = [&] {
        for (std::uint32_t p = 0; p < np; ++p)
          if (!st[p].s.done.load(std::memory_order_acquire)) return false;
        return true;
      };
      ctx.ready();
      ctx.wait_go();
      Window w{&me->s};
      Message m;
      std::uint64_t got = 0, hash = 0, last_seq = 0, k = 0, t_last = 0;
      std::uint64_t out_of_order = 0, bad = 0, redelivered = 0, ack_failures = 0;
      for (;;) {
        // Looked at before the receive: a Timeout after it means nothing is left to come.
        const bool drained_if_empty = w.seen >= kStop && all_done();
        const ReceiveResult r = in.receive(m, std::chrono::milliseconds(2));
        if (r.status == Status::Ok) {
          ++got;
          const std::uint64_t seq = m.producer_sequence();
          hash += message_hash(m.producer_id(), seq);
          if (m.body().size() != size || message_stamp(m.body().data()) != seq) [[unlikely]] ++bad;
          if (np == 1) {
            if (seq <= last_seq) [[unlikely]] ++out_of_order;
            last_seq = seq;
          }
          if (m.redelivered()) [[unlikely]] ++redelivered;
          if (ack_each && m.acknowledge() != Status::Ok) [[unlikely]] ++ack_failures;
          if (counted && (got & 63) == 0) t_last = ticks();
        } else if (r.status == Status::Timeout) {
          if (drained_if_empty) break;
        } else {
          throw std::runtime_error(std::string("receive: ") + to_string(r.status));
        }
        if ((++k & 63) == 0 || r.status == Status::Timeout) w.observe(ctx.phase(), got, 0);
        if (w.seen == kAbort) throw std::runtime_error("aborted by the coordinator");
      }
      me->s.total = got;
      me->hash = hash;
      me->t_last = t_last;
      me->out_of_order = out_of_order;
      me->bad_payload = bad;
      me->redelivered = redelivered;
      me->ack_failures = ack_failures;
    }});
  // --messages: N split over the producers, the first ones taking the remainder.
  for (std::uint32_t i = 0; i < np; ++i)
    ws.push_back({"producer " + std::to_string(i + 1), cs.pin ? 0 : -1, [=, &a](WorkerCtx& ctx) {
      Connection conn = ConnectionFactory(dir, "shmbus-bench-qtp-producer").create_connection();
      Session s = conn.create_session();
      ProducerOptions popts;
      popts.disable_timestamp = true;  // as every other scenario; FullPolicy::Block (the default)
      MessageProducer out = s.create_producer(queue, popts, dopts);
      QStat* me = st + i;
      const std::uint32_t id = out.id();
      me->producer_id = id;
      const std::uint64_t quota =
          counted ? a.messages / np + (i < a.messages % np ? 1 : 0) : std::numeric_limits<std::uint64_t>::max();
      std::vector<std::byte> msg(size, std::byte{0x5a});
      const std::span<const std::byte> body(msg);
      ctx.ready();
      ctx.wait_go();
      Window w{&me->s};
      std::uint64_t sent = 0, hash = 0;
      me->t_first = ticks();
      while (sent < quota) {
        stamp_message(msg.data(), sent + 1);  // = the producer sequence the queue gives it
        const Status r = out.send(body);
        if (r != Status::Ok) throw std::runtime_error("send: " + std::string(to_string(r)) + " after " + std::to_string(sent) + " messages");
        ++sent;
        hash += message_hash(id, sent);
        if ((sent & 63) == 0 && w.observe(ctx.phase(), sent, 0)) break;
      }
      if (w.seen == kAbort) throw std::runtime_error("aborted by the coordinator");
      me->s.total = sent;
      me->hash = hash;
      me->s.done.store(1, std::memory_order_release);
      if (counted) wait_past(ctx, kMeasure);  // exiting before kStop reads as a failure
    }});
  return ws;
}

Result run_queue_case(const Context& c, const Case& cs, const std::string& dir, std::uint32_t size) {
  Result res;
  res.cs = cs;
  res.size = size;
  res.capacity = capacity_for(c.args, size);
  const std::uint32_t nw = cs.producers + cs.consumers;
  SharedMem stats(nw * sizeof(QStat));
  QStat* st = stats.as<QStat>();
  for (std::uint32_t i = 0; i < nw; ++i) new (st + i) QStat{};
  Group g(queue_workers(c.args, cs, dir, size, res.capacity, st));
  g.wait_ready();
  const double npt = c.clock.ns_per_tick;
  if (c.args.messages == 0) {
    const double secs = c.args.seconds, warm = std::min(0.25, secs / 4);
    g.set_phase(kGo);
    g.sleep_watch(static_cast<std::uint64_t>(warm * 1e9));
    g.set_phase(kMeasure);
    g.sleep_watch(static_cast<std::uint64_t>(secs * 1e9));
    g.set_phase(kStop);
    g.join(30'000'000'000ULL);
    double secs_sum = 0;
    for (std::uint32_t p = 0; p < cs.producers; ++p) res.sent_rate += rate_of(st[p].s, npt);
    for (std::uint32_t i = 0; i < cs.consumers; ++i) {
      const QStat& q = st[cs.producers + i];
      res.cons_rate.push_back(rate_of(q.s, npt));
      res.recv_rate += res.cons_rate.back();
      secs_sum += secs_of(q.s, npt);
    }
    res.seconds = secs_sum / cs.consumers;
  } else {
    g.set_phase(kGo);
    const std::uint64_t deadline = mono_ns() + 600'000'000'000ULL;
    for (;;) {
      bool done = true;
      for (std::uint32_t p = 0; p < cs.producers; ++p) done &= st[p].s.done.load(std::memory_order_acquire) != 0;
      if (done) break;
      if (mono_ns() > deadline) throw std::runtime_error("producers did not send --messages within 600 s");
      g.sleep_watch(1'000'000);
    }
    g.set_phase(kStop);
    g.join(30'000'000'000ULL);
    std::uint64_t t0 = std::numeric_limits<std::uint64_t>::max(), t1 = 0;
    for (std::uint32_t p = 0; p < cs.producers; ++p) t0 = std::min(t0, st[p].t_first);
    for (std::uint32_t i = 0; i < cs.consumers; ++i) t1 = std::max(t1, st[cs.producers + i].t_last);
    res.seconds = t1 > t0 ? static_cast<double>(t1 - t0) * npt / 1e9 : 0;
    for (std::uint32_t i = 0; i < cs.consumers; ++i)
      res.cons_rate.push_back(res.seconds > 0 ? static_cast<double>(st[cs.producers + i].s.total) / res.seconds : 0);
  }
  for (std::uint32_t p = 0; p < cs.producers; ++p) {
    res.sent += st[p].s.total;
    res.sent_hash += st[p].hash;
  }
  for (std::uint32_t i = 0; i < cs.consumers; ++i) {
    const QStat& q = st[cs.producers + i];
    res.cons_recv.push_back(q.s.total);
    res.received += q.s.total;
    res.recv_hash += q.hash;
    res.out_of_order += q.out_of_order;
    res.bad_payload += q.bad_payload;
    res.redelivered += q.redelivered;
    res.ack_failures += q.ack_failures;
  }
  if (c.args.messages != 0 && res.seconds > 0) {
    res.sent_rate = static_cast<double>(res.sent) / res.seconds;
    res.recv_rate = static_cast<double>(res.received) / res.seconds;
  }
  return res;
}

/// The topic 1->1 reference: always time-based (a topic has no "all received": it may lap).
Result run_topic_case(const Context& c, const Case& cs, const std::string& dir, std::uint32_t size) {
  Result res;
  res.cs = cs;
  res.size = size;
  res.capacity = capacity_for(c.args, size);
  SharedMem stats(2 * sizeof(Stat));
  Stat* st = stats.as<Stat>();
  for (std::uint32_t i = 0; i < 2; ++i) new (st + i) Stat{};
  Group g(topic_workers(c.args, 1, 1, cs.pin, dir, size, res.capacity, st));
  const double secs = c.args.seconds, warm = std::min(0.25, secs / 4);
  g.wait_ready();
  g.set_phase(kGo);
  g.sleep_watch(static_cast<std::uint64_t>(warm * 1e9));
  g.set_phase(kMeasure);
  g.sleep_watch(static_cast<std::uint64_t>(secs * 1e9));
  g.set_phase(kStop);
  g.join(10'000'000'000ULL);
  const double npt = c.clock.ns_per_tick;
  res.sent_rate = rate_of(st[0], npt);
  res.recv_rate = rate_of(st[1], npt);
  res.cons_rate.push_back(res.recv_rate);
  const double s1 = secs_of(st[1], npt);
  res.lost_rate = s1 > 0 ? static_cast<double>(st[1].l_end - st[1].l_begin) / s1 : 0;
  res.sent = st[0].total;
  res.received = st[1].total;
  res.cons_recv.push_back(st[1].total);
  res.accounted = st[1].total + st[1].lost_total == st[0].total;
  res.seconds = s1;
  return res;
}

std::vector<std::uint32_t> consumer_counts(const Args& a) {
  if (a.consumers_set) return {a.consumers};
  return {1, 2, 4};
}

/// One case at one size over every round.
struct Point {
  Case cs;
  std::uint32_t size = 0, capacity = 0;
  std::vector<Result> rounds;

  double mean(double Result::*f) const {
    double s = 0;
    for (const auto& r : rounds) s += r.*f;
    return rounds.empty() ? 0 : s / static_cast<double>(rounds.size());
  }
  double sent_rate() const { return mean(&Result::sent_rate); }
  double recv_rate() const { return mean(&Result::recv_rate); }
  double lost_rate() const { return mean(&Result::lost_rate); }
  double round_min() const {
    double m = 1e300;
    for (const auto& r : rounds) m = std::min(m, r.recv_rate);
    return rounds.empty() ? 0 : m;
  }
  double round_max() const {
    double m = 0;
    for (const auto& r : rounds) m = std::max(m, r.recv_rate);
    return m;
  }
  /// Per consumer: mean msgs/s over the rounds, and messages received over all rounds.
  std::vector<double> cons_rate() const {
    std::vector<double> v(cs.consumers, 0.0);
    for (const auto& r : rounds)
      for (std::size_t i = 0; i < v.size() && i < r.cons_rate.size(); ++i) v[i] += r.cons_rate[i] / static_cast<double>(rounds.size());
    return v;
  }
  std::vector<std::uint64_t> cons_recv() const {
    std::vector<std::uint64_t> v(cs.consumers, 0);
    for (const auto& r : rounds)
      for (std::size_t i = 0; i < v.size() && i < r.cons_recv.size(); ++i) v[i] += r.cons_recv[i];
    return v;
  }
  std::uint64_t sum(std::uint64_t Result::*f) const {
    std::uint64_t s = 0;
    for (const auto& r : rounds) s += r.*f;
    return s;
  }
  double seconds() const {
    double s = 0;
    for (const auto& r : rounds) s += r.seconds;
    return s;
  }
  /// Every round passed its own check (a queue); the topic: delivered + lost == sent in each.
  bool exactly_once() const {
    for (const auto& r : rounds)
      if (!r.exactly_once()) return false;
    return true;
  }
  bool accounted() const {
    for (const auto& r : rounds)
      if (!r.accounted) return false;
    return true;
  }
  /// The problems of every round that had any, "round K: ...".
  std::string problems() const {
    std::string p;
    for (std::size_t k = 0; k < rounds.size(); ++k)
      if (const std::string e = rounds[k].problems(); !e.empty())
        p += (p.empty() ? "" : "; ") + (rounds.size() > 1 ? "round " + std::to_string(k + 1) + ": " : "") + e;
    return p;
  }
};

}  // namespace

int run_queue_throughput(const Args& a, const std::string& dir, const std::string& daemon_desc) {
  const std::vector<std::uint32_t> sizes = parse_sizes(a.sizes);
  const Context c = make_context(a, daemon_desc);
  const std::uint32_t np = a.producers, R = a.rounds;
  // Each round runs every case once with a share of the time (or of the messages), alternating,
  // so that a VM drifting between fast and slow states affects topic and queues alike.
  Context per = c;
  per.args.seconds = std::max(0.05, a.seconds / R);
  per.args.messages = a.messages ? std::max<std::uint64_t>(1, a.messages / R) : 0;
  const std::vector<std::uint32_t> ncs = consumer_counts(a);
  const std::vector<std::string> acks = ack_names(a.ack);
  std::vector<Case> cases{{"topic_1to1", "topic 1->1 (reference)", "", 1, 1, c.can_pin}};
  for (const auto& ack : acks)
    for (const std::uint32_t nc : ncs) {
      const std::string shape = std::to_string(np) + "to" + std::to_string(nc);
      cases.push_back({"queue_" + ack + "_" + shape, "queue " + ack + " " + std::to_string(np) + "->" + std::to_string(nc), ack,
                       np, nc, c.can_pin && np + nc == 2});
    }
  std::vector<Point> points;
  for (const std::uint32_t size : sizes)
    for (const Case& cs : cases) points.push_back({cs, size, capacity_for(a, size), {}});
  std::size_t step = 0;
  const std::size_t steps = points.size() * R;
  for (const std::uint32_t size : sizes)
    for (std::uint32_t round = 1; round <= R; ++round)
      for (auto& pt : points) {
        if (pt.size != size) continue;
        std::fprintf(stderr, "[%3zu/%zu] round %u/%u %7u B %-24s ... ", ++step, steps, round, R, size, pt.cs.label.c_str());
        std::fflush(stderr);
        pt.rounds.push_back(pt.cs.ack.empty() ? run_topic_case(per, pt.cs, dir, size) : run_queue_case(per, pt.cs, dir, size));
        const Result& r = pt.rounds.back();
        const std::string prob = r.problems();
        std::fprintf(stderr, "%s msgs/s received%s%s\n", grouped(r.recv_rate).c_str(),
                     r.cs.ack.empty() ? "" : (r.exactly_once() ? ", each message once" : ", EXACTLY-ONCE CHECK FAILED: "),
                     r.exactly_once() ? "" : prob.c_str());
      }
  const auto topic_of = [&](std::uint32_t size) -> const Point* {
    for (const auto& p : points)
      if (p.size == size && p.cs.ack.empty()) return &p;
    return nullptr;
  };
  bool all_once = true;
  for (const auto& p : points) all_once &= p.exactly_once();

  std::string t;
  char line[640];
  if (a.messages)
    std::snprintf(line, sizeof line,
                  "shmbus-bench queue-throughput: %llu messages per queue point in %u alternating rounds, each timed "
                  "from its first send to its last receive (topic: %.2f s per round); producers send as fast as the "
                  "queue takes them\n",
                  static_cast<unsigned long long>(per.args.messages * R), R, per.args.seconds);
  else
    std::snprintf(line, sizeof line,
                  "shmbus-bench queue-throughput: %.2f s per point in %u alternating rounds of %.2f s (each after a "
                  "%.2f s warm-up); producers send as fast as the queue takes them\n",
                  per.args.seconds * R, R, per.args.seconds, std::min(0.25, per.args.seconds / 4));
  t += line + context_lines(c);
  t += std::string("pinning : 1->1 cases: ") + (c.can_pin ? "producer on CPU 0, consumer on CPU 1" : "none") +
       "; others: not pinned (more processes than CPUs here)\n";
  std::snprintf(line, sizeof line,
                "queue   : one queue per point and round, capacity min(--capacity %u, 64 MiB of payload), max_message_size "
                "= size, FullPolicy::Block; send() copies in, receive() (wait=%s) copies out; disable_timestamp=true\n",
                a.capacity, wait_name(a.wait));
  t += line;
  t += "acks    : auto = acknowledged inside receive(); client/individual = Message::acknowledge() on every message; "
       "dups_ok = in batches of 32\n";
  t += "check   : every message received exactly once (count + checksum of (producer id, sequence)) in every round, "
       "drain included\n";
  t += "topic   : the `throughput` topic 1->1 in the same rounds (a topic never blocks its producer: it laps a slow "
       "consumer instead)\n";
  t += "recv/s  : all consumers together, mean of the rounds (round min/max next to it); cons/s: per consumer\n\n";
  std::snprintf(line, sizeof line, "%8s %-24s %13s %13s %9s %13s %13s %11s %11s %8s  %s\n", "size", "case", "sent msgs/s",
                "recv msgs/s", "MB/s", "round min", "round max", "min cons/s", "max cons/s", "vs topic", "exactly once");
  t += line;
  for (const auto& p : points) {
    const Point* tp = topic_of(p.size);
    const auto cr = p.cons_rate();
    double mn = 1e300, mx = 0;
    for (const double v : cr) mn = std::min(mn, v), mx = std::max(mx, v);
    const bool multi = cr.size() > 1;
    char vs[24] = "";
    if (tp && !p.cs.ack.empty() && tp->recv_rate() > 0) std::snprintf(vs, sizeof vs, "%7.2fx", p.recv_rate() / tp->recv_rate());
    const std::string prob = p.problems();
    const std::string check =
        p.cs.ack.empty() ? (p.accounted() ? "- (topic: lost " + grouped(p.lost_rate()) + "/s)" : "delivered + lost != sent!")
                         : (p.exactly_once() ? "yes (" + grouped(static_cast<double>(p.sum(&Result::received))) + ")" +
                                                   (prob.empty() ? "" : "; " + prob)
                                             : "FAILED: " + prob);
    std::snprintf(line, sizeof line, "%8u %-24s %13s %13s %9.1f %13s %13s %11s %11s %8s  %s\n", p.size, p.cs.label.c_str(),
                  grouped(p.sent_rate()).c_str(), grouped(p.recv_rate()).c_str(), mb(p.recv_rate(), p.size),
                  grouped(p.round_min()).c_str(), grouped(p.round_max()).c_str(), multi ? grouped(mn).c_str() : "",
                  multi ? grouped(mx).c_str() : "", vs, check.c_str());
    t += line;
  }
  if (!all_once) t += "\nEXACTLY-ONCE CHECK FAILED for at least one case (see above): this run's figures are not valid\n";

  Json j;
  j.begin();
  j.str("benchmark", "queue-throughput").str("sizes_list", a.sizes).integer("rounds", R);
  if (a.messages) j.str("timing", "messages").integer("messages", static_cast<std::int64_t>(per.args.messages * R));
  else j.str("timing", "seconds");
  j.num("seconds", per.args.seconds * R, 3);
  std::string ncl;
  for (const auto n : ncs) ncl += (ncl.empty() ? "" : ",") + std::to_string(n);
  j.str("wait", wait_name(a.wait)).integer("spin_count", a.spin_count).integer("producers_n", np).str("consumers_list", ncl)
      .str("ack_modes", a.ack).boolean("pinned_1to1", c.can_pin).boolean("pinned_n", false)
      .boolean("exactly_once", all_once);
  context_json(j, c);
  j.begin("sizes");
  for (const std::uint32_t size : sizes) {
    j.begin(std::to_string(size));
    const Point* tp = topic_of(size);
    for (const auto& p : points) {
      if (p.size != size) continue;
      j.begin(p.cs.key).str("label", p.cs.label).str("destination", p.cs.ack.empty() ? "topic" : "queue");
      if (!p.cs.ack.empty()) j.str("ack", p.cs.ack);
      j.integer("producers", p.cs.producers).integer("consumers", p.cs.consumers).integer("capacity", p.capacity)
          .boolean("pinned", p.cs.pin).num("sent_msgs_per_s", p.sent_rate()).num("delivered_msgs_per_s", p.recv_rate())
          .num("delivered_mb_per_s", mb(p.recv_rate(), size), 2).num("round_min_msgs_per_s", p.round_min())
          .num("round_max_msgs_per_s", p.round_max()).num("measured_seconds", p.seconds(), 3)
          .integer("sent", static_cast<std::int64_t>(p.sum(&Result::sent)))
          .integer("received", static_cast<std::int64_t>(p.sum(&Result::received)));
      if (p.cs.ack.empty()) {
        j.num("lost_per_s", p.lost_rate()).boolean("accounted", p.accounted());
      } else {
        j.boolean("exactly_once", p.exactly_once())
            .integer("out_of_order", static_cast<std::int64_t>(p.sum(&Result::out_of_order)))
            .integer("redelivered", static_cast<std::int64_t>(p.sum(&Result::redelivered)))
            .integer("bad_payload", static_cast<std::int64_t>(p.sum(&Result::bad_payload)))
            .integer("ack_failures", static_cast<std::int64_t>(p.sum(&Result::ack_failures)));
        if (!p.exactly_once()) j.str("error", p.problems());
        if (tp && tp->recv_rate() > 0) j.num("ratio_to_topic", p.recv_rate() / tp->recv_rate(), 3);
      }
      j.begin("rounds_msgs_per_s");
      for (std::size_t k = 0; k < p.rounds.size(); ++k) j.num(std::to_string(k + 1), p.rounds[k].recv_rate);
      j.end();
      j.begin("per_consumer");
      const auto cr = p.cons_rate();
      const auto cn = p.cons_recv();
      for (std::size_t i = 0; i < cr.size(); ++i)
        j.begin(std::to_string(i + 1)).num("delivered_msgs_per_s", cr[i]).integer("received", static_cast<std::int64_t>(cn[i])).end();
      j.end().end();
    }
    j.end();
  }
  j.end();
  j.end();
  const int rc = emit(a, t, j.text());
  if (!all_once) {
    std::fprintf(stderr, "shmbus-bench: queue-throughput: a message was lost, duplicated or corrupted (see the report)\n");
    return 1;
  }
  return rc;
}

}  // namespace shmbus::bench
