// The iceoryx 2.0 ping-pong shared by the peers `iceoryx` (Wait = polling) and `iceoryx_waitset`
// (Wait = WaitSet): untyped publisher/subscriber, zero-copy API. Ping loans a chunk, copies the
// message in, publishes; pong takes it, loans a chunk, copies it over, publishes, releases; ping
// takes the echo, copies it out, releases. Services are unique per run ("shmbus-bench", <run>,
// "ping"|"pong"). Pong runs in run_pair's child; ping in a grandchild (see iceoryx_support.hpp).
#pragma once
#include "clock.hpp"
#include "pair.hpp"
#include "peers/iceoryx_support.hpp"
#include "peers/peer_util.hpp"
#include "scenarios.hpp"

#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"

#include <sys/mman.h>
#include <thread>

namespace shmbus::bench::peer::iox_pingpong {

inline iox::capro::IdString_t id(const std::string& s) {
  return iox::capro::IdString_t(iox::cxx::TruncateToCapacity, s.data(), s.size());
}

inline iox::capro::ServiceDescription service(const std::string& run, const std::string& event) {
  return iox::capro::ServiceDescription(id("shmbus-bench"), id(run), id(event));
}

/// A publisher to `out` and a subscriber of `in`, created once this process has a runtime.
struct Ports {
  iox::popo::UntypedPublisher pub;
  iox::popo::UntypedSubscriber sub;
  Ports(const std::string& run, const char* out, const char* in)
      : pub(service(run, out), publisher_options()), sub(service(run, in), subscriber_options()) {}

  static iox::popo::PublisherOptions publisher_options() {
    iox::popo::PublisherOptions o;
    o.historyCapacity = 0;
    return o;
  }
  static iox::popo::SubscriberOptions subscriber_options() {
    iox::popo::SubscriberOptions o;
    o.queueCapacity = 4;
    o.historyRequest = 0;
    return o;
  }
  /// Loans a chunk, copies `n` bytes from `src` into it and publishes it.
  void send(const void* src, std::uint32_t n) {
    auto loaned = pub.loan(n);
    if (loaned.has_error()) [[unlikely]]
      throw std::runtime_error(std::string("iceoryx: loan failed: ") + iox::popo::asStringLiteral(loaned.get_error()));
    std::memcpy(loaned.value(), src, n);
    pub.publish(loaned.value());
  }
};

/// Waits (at most 5 s) until `cond` holds, polling every millisecond: set-up only.
template <class F>
void await(const char* what, F cond) {
  const std::uint64_t deadline = mono_ns() + kTimeoutSeconds * 1'000'000'000ULL;
  while (!cond()) {
    if (mono_ns() >= deadline) throw std::runtime_error(std::string("iceoryx: ") + what + " within 5 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

/// Runs the ping-pong; `Wait(sub)` has `const void* take()` that returns the next chunk or throws.
template <class Wait>
std::vector<std::uint64_t> run(const Args& a, bool pin) {
  iox_support::ensure_roudi(a.size);
  const std::string run_id = unique_name("run");
  const std::uint64_t total = a.warmup + a.iterations;

  PairSpec spec;
  spec.pin = pin;
  spec.iterations = a.iterations;
  spec.pong = [&](const std::function<void()>& ready) {
    iox_support::init_runtime("shmbus-bench-pong");
    {
      Ports p(run_id, "pong", "ping");
      Wait wait(p.sub);
      ready();
      for (std::uint64_t i = 0; i < total; ++i) {
        const void* in = wait.take();
        p.send(in, a.size);
        p.sub.release(in);
      }
      // Ping's last take() must find the echo: leave only once ping has unsubscribed.
      await("ping did not unsubscribe", [&] { return !p.pub.hasSubscribers(); });
    }
    std::exit(0);  // deregisters this runtime (run_pair's child would _exit)
  };
  spec.ping = [&](std::span<std::uint64_t> samples, const std::function<void()>& wait_ready) {
    const std::size_t bytes = samples.size() * sizeof(std::uint64_t);
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) throw_errno("iceoryx: mmap");
    OnExit unmap{[&] { ::munmap(mem, bytes); }};
    const std::span<std::uint64_t> shared(static_cast<std::uint64_t*>(mem), samples.size());
    wait_ready();
    iox_support::run_in_child("ping process", 30'000'000'000ULL + total * 200'000ULL, [&] {
      iox_support::init_runtime("shmbus-bench-ping");
      Ports p(run_id, "ping", "pong");
      Wait wait(p.sub);
      await("no subscription to/from the pong process",
            [&] { return p.pub.hasSubscribers() && p.sub.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED; });
      std::vector<std::byte> out(a.size, std::byte{0x5a}), in(a.size);
      std::fill(shared.begin(), shared.end(), 0);  // fault the pages in before the loop
      for (std::uint64_t i = 0; i < total; ++i) {
        const std::uint64_t v = i + 1;
        stamp_message(out.data(), v);
        const std::uint64_t t0 = ticks();
        p.send(out.data(), a.size);
        const void* echo = wait.take();
        std::memcpy(in.data(), echo, a.size);
        p.sub.release(echo);
        const std::uint64_t t1 = ticks();
        if (message_stamp(in.data()) != v) [[unlikely]]
          throw std::runtime_error("iceoryx: echoed message " + std::to_string(i) + " has the wrong content");
        if (i >= a.warmup) shared[i - a.warmup] = t1 - t0;
      }
    });
    std::copy(shared.begin(), shared.end(), samples.begin());
  };
  return run_pair(spec);
}

/// Throws unless `r` is "no chunk yet"; used by both wait policies.
inline void check_take_error(iox::popo::ChunkReceiveResult e) {
  if (e != iox::popo::ChunkReceiveResult::NO_CHUNK_AVAILABLE)
    throw std::runtime_error(std::string("iceoryx: take failed: ") + iox::popo::asStringLiteral(e));
}

}  // namespace shmbus::bench::peer::iox_pingpong
