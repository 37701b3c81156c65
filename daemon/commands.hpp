// Work the daemon's agents hand each other through moodycamel queues (no locks between agents).
#pragma once
#include "ring/topic_ring.hpp"

#include <memory>
#include <string>
#include <variant>

namespace shmbus::daemon {

class OwnedShm;

// conductor -> janitor
struct TopicCreated {
  std::uint32_t dest_id;
  std::string uri;
  std::shared_ptr<OwnedShm> shm;  // keeps the mapping alive while the janitor scans it
};
struct ClientDied {
  std::uint32_t client_index;
};
struct TopicRemoved {
  std::uint32_t dest_id;  // the janitor drops its mapping; the last owner unlinks the shm
};
using JanitorCommand = std::variant<TopicCreated, ClientDied, TopicRemoved>;

// janitor -> conductor
struct ClientReleased {
  std::uint32_t client_index;  // every hole it left is padded; the index may be reused
};
using ConductorCommand = std::variant<ClientReleased>;

}  // namespace shmbus::daemon
