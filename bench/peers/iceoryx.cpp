// Peer `iceoryx` (mode spin): iceoryx 2.0 publisher/subscriber, the receiving side calls take() in a
// busy loop (no pause, no sleep) until a chunk arrives. See iceoryx_pingpong.hpp for the exchange.
#include "peers/iceoryx_pingpong.hpp"

#include "iceoryx_versions.hpp"

namespace shmbus::bench::peer {

namespace {

struct Poll {
  iox::popo::UntypedSubscriber& sub;
  explicit Poll(iox::popo::UntypedSubscriber& s) : sub(s) {}

  const void* take() {
    std::uint32_t spins = 0;
    std::uint64_t deadline = 0;
    for (;;) {
      auto r = sub.take();
      if (!r.has_error()) return r.value();
      iox_pingpong::check_take_error(r.get_error());
      if (++spins == (1U << 20)) [[unlikely]] {
        spins = 0;
        const std::uint64_t now = mono_ns();
        if (deadline == 0) deadline = now + kPeerTimeoutNs;
        else if (now >= deadline) throw std::runtime_error("iceoryx: peer did not answer within 5 s");
      }
    }
  }
};

}  // namespace

Peer iceoryx_peer() {
  return {"iceoryx", "iceoryx polling", "spin",
          std::string("iceoryx ") + ICEORYX_LATEST_RELEASE_VERSION +
              " UntypedPublisher loan/publish, UntypedSubscriber take() in a busy loop/release; RouDi started "
              "by the bench",
          iox_pingpong::run<Poll>};
}

}  // namespace shmbus::bench::peer
