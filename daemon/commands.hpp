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
struct QueueCreated {
  std::uint32_t dest_id;
  std::string uri;
  std::shared_ptr<OwnedShm> shm;
};
struct QueueEntryClosed {
  std::uint32_t dest_id;
  bool producer;
  std::uint32_t entry;  // its state is 2 (closing): the janitor reclaims what it held, then frees it
};
struct DlqReady {
  std::uint32_t dest_id;
  std::uint32_t dlq_id;  // 0: it could not be created
};
using JanitorCommand = std::variant<TopicCreated, ClientDied, TopicRemoved, QueueCreated, QueueEntryClosed, DlqReady>;

// janitor -> conductor
struct ClientReleased {
  std::uint32_t client_index;  // every hole it left is padded; the index may be reused
};
struct QueueEntryReleased {
  std::uint32_t dest_id;
  bool producer;
  std::uint32_t entry;  // free again: may be handed out
};
struct CreateDlq {
  std::uint32_t dest_id;  // a queue has its first dead letter: create queue://DLQ.NAME
};
// replicator -> conductor
struct Promoted {
  std::uint32_t epoch;  // an election made this follower the leader: restore the queues and topics
};
using ConductorCommand = std::variant<ClientReleased, QueueEntryReleased, CreateDlq, Promoted>;

}  // namespace shmbus::daemon
