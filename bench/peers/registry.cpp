// Which peers this build has. (Filled in as peers are added.)
#include "peers.hpp"

namespace shmbus::bench {

std::vector<Peer> peers() { return {}; }

std::vector<std::pair<std::string, std::string>> missing_peers() { return {}; }

}  // namespace shmbus::bench
