// shmbus ping-pong: ping process sends on ".ping" and receives on ".pong"; the pong process
// echoes every message back. ProducerOptions{disable_timestamp=true}, ConsumerOptions{wait=--wait}.
// The two destinations are topics (run_shmbus_pingpong) or queues (run_queue_pingpong, with a
// session ack mode); the loop is the same.
#include "clock.hpp"
#include "pair.hpp"
#include "queue_common.hpp"
#include "scenarios.hpp"
#include "shmbus/shmbus.hpp"

#include <chrono>
#include <stdexcept>
#include <unistd.h>

namespace shmbus::bench {

namespace {

constexpr std::chrono::seconds kReceiveTimeout{5};

std::string fail(const char* what, std::uint64_t i, Status s) {
  return std::string(what) + " failed at round trip " + std::to_string(i) + ": " + to_string(s);
}

/// Fresh names per run so that --dir never meets a destination with another geometry.
std::string fresh_base() { return "bench." + std::to_string(::getpid()) + "." + std::to_string(mono_ns() % 1'000'000); }

/// How the ping-pong's messages travel: raw payloads, or JMS messages (optionally with a selector).
struct MessageShape {
  bool framed = false;
  std::string selector;
};

/// `ping_dest` / `pong_dest`: two topics or two queues. `mode`: the sessions' ack mode (queues).
std::vector<std::uint64_t> run_dest_pingpong(const Args& a, const std::string& dir, bool pin, const Destination& ping_dest,
                                             const Destination& pong_dest, AckMode mode, const MessageShape& shape = {}) {
  DestinationOptions dopts;
  dopts.capacity = a.capacity;
  dopts.max_message_size = a.size;
  ProducerOptions popts;
  popts.disable_timestamp = true;
  ConsumerOptions copts;
  copts.wait = wait_strategy(a.wait);
  copts.spin_count = a.spin_count;
  copts.selector = shape.selector;
  if (shape.framed) dopts.max_message_size = a.size + 512;  // frame header, properties, destination name
  const std::uint64_t total = a.warmup + a.iterations;
  const bool ack_each = acks_explicitly(mode);

  PairSpec spec;
  spec.pin = pin;
  spec.iterations = a.iterations;
  spec.pong = [&](const std::function<void()>& ready) {
    // Everything after the fork: this process's own connection.
    ConnectionFactory f(dir, "shmbus-bench-pong");
    Connection conn = f.create_connection();
    Session s = conn.create_session(mode);
    MessageConsumer in = s.create_consumer(ping_dest, copts, dopts);
    MessageProducer out = s.create_producer(pong_dest, popts, dopts);
    ready();
    Message m;
    BytesMessage echo;  // reused: its buffers keep their capacity, so the loop does not allocate
    echo.set_int_property("n", 0);
    echo.set_string_property("kind", "pong");
    for (std::uint64_t i = 0; i < total; ++i) {
      const ReceiveResult r = in.receive(m, kReceiveTimeout);
      if (r.status != Status::Ok) [[unlikely]]
        throw std::runtime_error(fail("receive(ping)", i, r.status));
      if (ack_each) {
        if (const Status st = m.acknowledge(); st != Status::Ok) [[unlikely]]
          throw std::runtime_error(fail("acknowledge(ping)", i, st));
      }
      Status st;
      if (shape.framed) {
        echo.clear_body();
        echo.write_bytes(m.body());
        echo.set_int_property("n", m.get_int_property("n").value);
        st = out.send(echo);
      } else {
        st = out.send(m.body());
      }
      if (st != Status::Ok) [[unlikely]]
        throw std::runtime_error(fail("send(pong)", i, st));
    }
  };
  spec.ping = [&](std::span<std::uint64_t> samples, const std::function<void()>& wait_ready) {
    ConnectionFactory f(dir, "shmbus-bench-ping");
    Connection conn = f.create_connection();
    Session s = conn.create_session(mode);
    // Subscribe to pong before the first ping goes out: topics deliver to attached subscribers only.
    MessageConsumer in = s.create_consumer(pong_dest, copts, dopts);
    MessageProducer out = s.create_producer(ping_dest, popts, dopts);
    std::vector<std::byte> msg(a.size, std::byte{0x5a});
    const std::span<const std::byte> body(msg);
    wait_ready();
    Message m;
    BytesMessage ping;
    ping.write_bytes(body);
    ping.set_int_property("n", 0);
    ping.set_string_property("kind", "ping");
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::uint64_t v = i + 1;
      stamp_message(msg.data(), v);
      if (shape.framed) {  // outside the timed section: the application building its message
        ping.clear_body();
        ping.write_bytes(body);
        ping.set_int_property("n", static_cast<std::int32_t>(i));
      }
      const std::uint64_t t0 = ticks();
      const Status st = shape.framed ? out.send(ping) : out.send(body);
      const ReceiveResult r = in.receive(m, kReceiveTimeout);
      const Status ack = ack_each && r.status == Status::Ok ? m.acknowledge() : Status::Ok;
      const std::uint64_t t1 = ticks();
      if (st != Status::Ok) [[unlikely]]
        throw std::runtime_error(fail("send(ping)", i, st));
      if (r.status != Status::Ok) [[unlikely]]
        throw std::runtime_error(fail("receive(pong)", i, r.status));
      if (ack != Status::Ok) [[unlikely]]
        throw std::runtime_error(fail("acknowledge(pong)", i, ack));
      if (m.body().size() != a.size || message_stamp(m.body().data()) != v) [[unlikely]]
        throw std::runtime_error("echoed message " + std::to_string(i) + " has the wrong size or content");
      if (i >= a.warmup) samples[i - a.warmup] = t1 - t0;
    }
  };
  return run_pair(spec);
}

}  // namespace

std::vector<std::uint64_t> run_shmbus_pingpong(const Args& a, const std::string& dir, bool pin) {
  const std::string base = fresh_base();
  return run_dest_pingpong(a, dir, pin, Topic(base + ".ping"), Topic(base + ".pong"), AckMode::Auto);
}

std::vector<std::uint64_t> run_queue_pingpong(const Args& a, const std::string& dir, bool pin, const std::string& ack) {
  const std::string base = fresh_base();
  return run_dest_pingpong(a, dir, pin, Queue(base + ".ping"), Queue(base + ".pong"), ack_mode_of(ack));
}

std::vector<std::uint64_t> run_message_pingpong(const Args& a, const std::string& dir, bool pin, bool queue, bool selector) {
  const std::string base = fresh_base();
  MessageShape shape;
  shape.framed = true;
  if (selector) shape.selector = "kind IN ('ping', 'pong') AND n >= 0";
  if (queue) return run_dest_pingpong(a, dir, pin, Queue(base + ".ping"), Queue(base + ".pong"), AckMode::Auto, shape);
  return run_dest_pingpong(a, dir, pin, Topic(base + ".ping"), Topic(base + ".pong"), AckMode::Auto, shape);
}

}  // namespace shmbus::bench
