// Small helpers shared by the peer mechanisms (bench/peers/*.cpp) and the list of their factories.
#pragma once
#include "peers.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace shmbus::bench::peer {

/// Throws std::runtime_error("<what>: <strerror(errno)>").
[[noreturn]] inline void throw_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

/// A name no other run uses: "<prefix>-<pid>-<n>" (n counts up within this process).
std::string unique_name(const std::string& prefix);

/// Receive timeout of every blocking peer: a side waiting this long for its peer gives up (as
/// kPeerTimeoutNs for the spinning ones).
inline constexpr int kTimeoutSeconds = 5;

/// Runs `fn` once on scope exit (clean-up of names in the file system / kernel).
template <class F>
struct OnExit {
  F fn;
  ~OnExit() { fn(); }
};
template <class F>
OnExit(F) -> OnExit<F>;

// The factories, one per file. Optional ones exist only when CMake found their package.
Peer futex_peer();
Peer uds_peer();
Peer posix_mq_peer();
Peer boost_mq_peer();
#ifdef SHMBUS_BENCH_HAVE_ZMQ
Peer zmq_peer();
#endif
#ifdef SHMBUS_BENCH_HAVE_ICEORYX
Peer iceoryx_peer();
Peer iceoryx_waitset_peer();
#endif

}  // namespace shmbus::bench::peer
