// shmbus ping-pong: ping process sends on topic ".ping" and receives on ".pong"; the pong process
// echoes every message back. ProducerOptions{disable_timestamp=true}, ConsumerOptions{wait=--wait}.
#include "clock.hpp"
#include "pair.hpp"
#include "scenarios.hpp"
#include "shmbus/shmbus.hpp"

#include <chrono>
#include <stdexcept>
#include <unistd.h>

namespace shmbus::bench {

namespace {

constexpr std::chrono::seconds kReceiveTimeout{5};

WaitStrategy strategy(Wait w) {
  switch (w) {
    case Wait::Spin: return WaitStrategy::Spin;
    case Wait::Yield: return WaitStrategy::SpinYield;
    case Wait::Park: return WaitStrategy::Park;
  }
  return WaitStrategy::Spin;
}

std::string fail(const char* what, std::uint64_t i, Status s) {
  return std::string(what) + " failed at round trip " + std::to_string(i) + ": " + to_string(s);
}

}  // namespace

std::vector<std::uint64_t> run_shmbus_pingpong(const Args& a, const std::string& dir, bool pin) {
  // Fresh topic names per run so that --dir never meets a topic with another geometry.
  const std::string base = "bench." + std::to_string(::getpid()) + "." + std::to_string(mono_ns() % 1'000'000);
  const Topic ping_topic(base + ".ping");
  const Topic pong_topic(base + ".pong");
  DestinationOptions dopts;
  dopts.capacity = a.capacity;
  dopts.max_message_size = a.size;
  ProducerOptions popts;
  popts.disable_timestamp = true;
  ConsumerOptions copts;
  copts.wait = strategy(a.wait);
  copts.spin_count = a.spin_count;
  const std::uint64_t total = a.warmup + a.iterations;

  PairSpec spec;
  spec.pin = pin;
  spec.iterations = a.iterations;
  spec.pong = [&](const std::function<void()>& ready) {
    // Everything after the fork: this process's own connection.
    ConnectionFactory f(dir, "shmbus-bench-pong");
    Connection conn = f.create_connection();
    Session s = conn.create_session();
    MessageConsumer in = s.create_consumer(ping_topic, copts, dopts);
    MessageProducer out = s.create_producer(pong_topic, popts, dopts);
    ready();
    Message m;
    for (std::uint64_t i = 0; i < total; ++i) {
      const ReceiveResult r = in.receive(m, kReceiveTimeout);
      if (r.status != Status::Ok) [[unlikely]]
        throw std::runtime_error(fail("receive(ping)", i, r.status));
      const Status st = out.send(m.body());
      if (st != Status::Ok) [[unlikely]]
        throw std::runtime_error(fail("send(pong)", i, st));
    }
  };
  spec.ping = [&](std::span<std::uint64_t> samples, const std::function<void()>& wait_ready) {
    ConnectionFactory f(dir, "shmbus-bench-ping");
    Connection conn = f.create_connection();
    Session s = conn.create_session();
    // Subscribe to pong before the first ping goes out: topics deliver to attached subscribers only.
    MessageConsumer in = s.create_consumer(pong_topic, copts, dopts);
    MessageProducer out = s.create_producer(ping_topic, popts, dopts);
    std::vector<std::byte> msg(a.size, std::byte{0x5a});
    const std::span<const std::byte> body(msg);
    wait_ready();
    Message m;
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::uint64_t v = i + 1;
      stamp_message(msg.data(), v);
      const std::uint64_t t0 = ticks();
      const Status st = out.send(body);
      const ReceiveResult r = in.receive(m, kReceiveTimeout);
      const std::uint64_t t1 = ticks();
      if (st != Status::Ok) [[unlikely]]
        throw std::runtime_error(fail("send(ping)", i, st));
      if (r.status != Status::Ok) [[unlikely]]
        throw std::runtime_error(fail("receive(pong)", i, r.status));
      if (m.body().size() != a.size || message_stamp(m.body().data()) != v) [[unlikely]]
        throw std::runtime_error("echoed message " + std::to_string(i) + " has the wrong size or content");
      if (i >= a.warmup) samples[i - a.warmup] = t1 - t0;
    }
  };
  return run_pair(spec);
}

}  // namespace shmbus::bench
