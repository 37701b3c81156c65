/// @file stats.hpp
/// @brief A snapshot of what a shmbusd is serving (what `shmbus stat` prints).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace shmbus {

/// One subscriber of a topic.
struct SubscriberStats {
  std::uint32_t consumer_id = 0;   ///< daemon-assigned consumer id
  std::uint32_t client_index = 0;  ///< attached client that owns it
  std::int32_t pid = 0;            ///< that client's process id
  std::uint64_t position = 0;      ///< next ring sequence it will read
  std::uint64_t received = 0;      ///< messages delivered to it
  std::uint64_t lost = 0;          ///< messages it lost to lapping
};

/// One destination.
struct DestinationStats {
  std::string uri;                        ///< "topic://NAME"
  std::uint32_t dest_id = 0;              ///< daemon-assigned id
  std::uint32_t capacity = 0;             ///< ring slots
  std::uint32_t max_message_size = 0;     ///< bytes
  std::uint32_t producers = 0;            ///< open producers
  std::uint64_t tail = 0;                 ///< ring sequences claimed so far (= messages published, plus holes)
  std::uint64_t holes_repaired = 0;       ///< slots padded after a producer died mid-write
  std::uint64_t shm_bytes = 0;            ///< shared memory used
  std::vector<SubscriberStats> subscribers;  ///< attached subscribers
};

/// One attached client process.
struct ClientStats {
  std::uint32_t index = 0;  ///< slot in the daemon's client table
  std::int32_t pid = 0;     ///< process id (SO_PEERCRED)
  std::uint32_t uid = 0;    ///< user id (SO_PEERCRED)
  std::string name;         ///< name given to the ConnectionFactory
};

/// Everything `shmbus stat` shows.
struct BusStats {
  std::int32_t daemon_pid = 0;                 ///< shmbusd's pid
  std::string dir;                             ///< the directory it serves
  std::uint64_t uptime_ms = 0;                 ///< since start
  std::vector<ClientStats> clients;            ///< attached clients
  std::vector<DestinationStats> destinations;  ///< every destination created since start
};

}  // namespace shmbus
