// Peer `iceoryx_waitset` (mode block): as `iceoryx`, but the receiving side sleeps in
// WaitSet::timedWait (attached to the subscriber's HAS_DATA state) until a chunk arrives.
#include "peers/iceoryx_pingpong.hpp"

#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_versions.hpp"

namespace shmbus::bench::peer {

namespace {

class WaitSetWait {
 public:
  explicit WaitSetWait(iox::popo::UntypedSubscriber& s) : sub_(s) {
    if (ws_.attachState(sub_, iox::popo::SubscriberState::HAS_DATA).has_error())
      throw std::runtime_error("iceoryx: WaitSet::attachState(HAS_DATA) failed");
  }

  const void* take() {
    for (;;) {
      const auto notifications = ws_.timedWait(iox::units::Duration::fromSeconds(kTimeoutSeconds));
      auto r = sub_.take();
      if (!r.has_error()) return r.value();
      iox_pingpong::check_take_error(r.get_error());
      if (notifications.empty()) throw std::runtime_error("iceoryx: peer did not answer within 5 s");
    }
  }

 private:
  iox::popo::UntypedSubscriber& sub_;
  iox::popo::WaitSet<> ws_;
};

}  // namespace

Peer iceoryx_waitset_peer() {
  return {"iceoryx_waitset", "iceoryx WaitSet", "block",
          std::string("iceoryx ") + ICEORYX_LATEST_RELEASE_VERSION +
              " as `iceoryx`, the receiver sleeps in WaitSet::timedWait (HAS_DATA) before take()",
          iox_pingpong::run<WaitSetWait>};
}

}  // namespace shmbus::bench::peer
