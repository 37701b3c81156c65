// Peer `boost_mq`: two boost::interprocess::message_queue (ping, pong; 2 messages of --size each) in
// POSIX shared memory, blocking send / timed_receive (Linux: a process-shared pthread mutex and
// condition variable, i.e. futexes). The pong side creates both; the ping side opens them and
// removes the names at once (the mappings stay), so nothing is left in /dev/shm; the parent removes
// them again after the run in case ping never got there.
#include "clock.hpp"
#include "pair.hpp"
#include "peers/peer_util.hpp"
#include "scenarios.hpp"

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <vector>

namespace shmbus::bench::peer {

namespace {

namespace bip = boost::interprocess;

void receive(bip::message_queue& q, std::byte* p, std::uint32_t n, const boost::posix_time::ptime& deadline) {
  bip::message_queue::size_type got = 0;
  unsigned priority = 0;
  if (!q.timed_receive(p, n, got, priority, deadline)) [[unlikely]]
    throw std::runtime_error("boost_mq: peer did not answer within 5 s");
  if (got != n) [[unlikely]]
    throw std::runtime_error("boost_mq: message of " + std::to_string(got) + " bytes");
}

/// timed_receive takes an absolute UTC deadline.
boost::posix_time::ptime deadline() {
  return boost::posix_time::microsec_clock::universal_time() + boost::posix_time::seconds(kTimeoutSeconds);
}

std::vector<std::uint64_t> run(const Args& a, bool pin) {
  const std::string base = unique_name("shmbus-bench-bmq");
  const std::string ping_name = base + "-ping", pong_name = base + "-pong";
  OnExit remove{[&] {
    bip::message_queue::remove(ping_name.c_str());
    bip::message_queue::remove(pong_name.c_str());
  }};
  const std::uint64_t total = a.warmup + a.iterations;

  PairSpec spec;
  spec.pin = pin;
  spec.iterations = a.iterations;
  spec.pong = [&](const std::function<void()>& ready) {
    bip::message_queue in(bip::create_only, ping_name.c_str(), 2, a.size);
    bip::message_queue out(bip::create_only, pong_name.c_str(), 2, a.size);
    std::vector<std::byte> buf(a.size);
    ready();
    for (std::uint64_t i = 0; i < total; ++i) {
      receive(in, buf.data(), a.size, deadline());
      out.send(buf.data(), a.size, 0);
    }
  };
  spec.ping = [&](std::span<std::uint64_t> samples, const std::function<void()>& wait_ready) {
    std::vector<std::byte> out_buf(a.size, std::byte{0x5a}), in_buf(a.size);
    wait_ready();
    bip::message_queue out(bip::open_only, ping_name.c_str());
    bip::message_queue in(bip::open_only, pong_name.c_str());
    bip::message_queue::remove(ping_name.c_str());  // both sides have them mapped now
    bip::message_queue::remove(pong_name.c_str());
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::uint64_t v = i + 1;
      stamp_message(out_buf.data(), v);
      const auto d = deadline();
      const std::uint64_t t0 = ticks();
      out.send(out_buf.data(), a.size, 0);
      receive(in, in_buf.data(), a.size, d);
      const std::uint64_t t1 = ticks();
      if (message_stamp(in_buf.data()) != v) [[unlikely]]
        throw std::runtime_error("boost_mq: echoed message " + std::to_string(i) + " has the wrong content");
      if (i >= a.warmup) samples[i - a.warmup] = t1 - t0;
    }
  };
  return run_pair(spec);
}

}  // namespace

Peer boost_mq_peer() {
  return {"boost_mq", "Boost.Interprocess mq", "block",
          "two boost::interprocess::message_queue (2 x --size), blocking send / timed_receive", run};
}

}  // namespace shmbus::bench::peer
