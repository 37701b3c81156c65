// Which peers this build has, in report order, and what failed. CMake defines SHMBUS_BENCH_HAVE_<X>
// for each optional peer it found, and writes why the others are not built to peers_missing.hpp
// (bench/CMakeLists.txt, section "peers for `compare`").
#include "peers.hpp"

#include "peers_missing.hpp"

#include "peers/peer_util.hpp"

#include <map>
#include <unistd.h>

namespace shmbus::bench {

namespace {

std::map<std::string, std::string>& failures() {
  static std::map<std::string, std::string> f;
  return f;
}

}  // namespace

std::vector<Peer> peers() {
  std::vector<Peer> v{peer::futex_peer(), peer::uds_peer(), peer::posix_mq_peer(), peer::boost_mq_peer()};
#ifdef SHMBUS_BENCH_HAVE_ZMQ
  v.push_back(peer::zmq_peer());
#endif
#ifdef SHMBUS_BENCH_HAVE_ICEORYX
  v.push_back(peer::iceoryx_peer());
  v.push_back(peer::iceoryx_waitset_peer());
#endif
  return v;
}

std::vector<std::pair<std::string, std::string>> missing_peers() {
  std::vector<std::pair<std::string, std::string>> v;
  if (const std::string why = SHMBUS_BENCH_ZMQ_MISSING; !why.empty()) v.emplace_back("zmq", why);
  if (const std::string why = SHMBUS_BENCH_ICEORYX_MISSING; !why.empty()) {
    v.emplace_back("iceoryx", why);
    v.emplace_back("iceoryx_waitset", why);
  }
  return v;
}

void record_failure(const std::string& key, const std::string& why) { failures()[key] = why; }

std::string peer_failure(const std::string& key) {
  const auto it = failures().find(key);
  return it == failures().end() ? std::string() : it->second;
}

namespace peer {

std::string unique_name(const std::string& prefix) {
  static unsigned n = 0;
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

}  // namespace peer

}  // namespace shmbus::bench
