// Peer mechanisms for `shmbus-bench compare`: other IPC paths measured with the same two-process
// ping-pong harness (pair.hpp), message size, pinning and iteration counts as shmbus and the floor.
// Each peer is optional at build time; peers() lists only those that were built.
#pragma once
#include "args.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace shmbus::bench {

struct Peer {
  std::string key;          ///< JSON key: futex, uds, posix_mq, boost_mq, zmq, iceoryx, iceoryx_waitset, ...
  std::string label;        ///< table label
  std::string mode;         ///< "spin" (busy-polls) or "block" (sleeps in the kernel)
  std::string description;  ///< one line: what exactly is measured
  /// Runs warm-up + a.iterations round trips of a.size bytes; returns RTT samples in ticks.
  std::function<std::vector<std::uint64_t>(const Args& a, bool pin)> run;
};

/// The peers built into this binary, in report order.
std::vector<Peer> peers();
/// Keys every build knows about but may lack (reported as "not built" with the reason).
std::vector<std::pair<std::string, std::string>> missing_peers();
/// Why mechanism `key` failed in this process ("" if it did not). main.cpp's measure_rounds catches a
/// mechanism's exception, records it here and runs it no more, so one broken peer does not abort
/// `compare`; report.cpp shows the reason next to whatever samples earlier rounds gave.
std::string peer_failure(const std::string& key);
void record_failure(const std::string& key, const std::string& why);

}  // namespace shmbus::bench
