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
  std::uint64_t acked = 0;         ///< queues: acknowledgements that won
  std::string ack_mode;            ///< queues: "auto", "client", "dups_ok", "individual", "transacted"
};

/// One durable subscription of a topic.
struct DurableSubscriptionStats {
  std::string name;           ///< the subscription's name
  std::uint64_t position = 0; ///< log offset it has consumed up to
  bool active = false;        ///< a subscriber is open
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
  std::vector<SubscriberStats> subscribers;  ///< attached subscribers (topics) / consumers (queues)
  // Queues only (counted from the slot states when the snapshot is taken):
  std::uint64_t depth = 0;          ///< messages waiting: READY or SCHEDULED (delayed)
  std::uint64_t scheduled = 0;      ///< of which delayed (deliver-at or redelivery delay)
  std::uint64_t in_flight = 0;      ///< delivered, not yet acknowledged
  std::uint64_t redelivered = 0;    ///< deliveries marked redelivered, cumulative
  std::uint64_t dead_lettered = 0;  ///< moved to the DLQ, cumulative
  std::uint64_t expired = 0;        ///< expired before delivery, cumulative
  std::uint64_t ack_timeouts = 0;   ///< deliveries taken back after the consumer's ack timeout
  std::uint64_t dropped = 0;        ///< dead letters dropped (no DLQ), cumulative
  std::string dlq;                  ///< "queue://DLQ.NAME" when dead letters go there, else ""
  bool temporary = false;           ///< a temporary destination (Session::create_temporary_queue/topic)
  // Queues with a segment log (PERSISTENT messages; docs/persistence.md). All 0 before the first.
  std::uint64_t log_start_offset = 0;  ///< first offset still in the log
  std::uint64_t log_end_offset = 0;    ///< next offset to be written
  std::uint64_t durable_offset = 0;    ///< every record below it is fsync'ed
  std::uint64_t log_segments = 0;      ///< segment files
  std::uint64_t log_bytes = 0;         ///< bytes of .log files
  std::uint64_t persisted = 0;         ///< PERSISTENT messages written since the daemon started
  std::uint64_t restored = 0;          ///< messages loaded back from the log after a restart
  std::uint32_t persist_error = 0;     ///< errno of the failing write (ENOSPC, EIO), 0 when fine
  /// Topics: durable subscriptions (the log_* figures above are then the topic's log).
  std::vector<DurableSubscriptionStats> durable_subscriptions;
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
