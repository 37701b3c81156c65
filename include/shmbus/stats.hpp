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

/// A follower as its leader sees it (docs/replication.md).
struct ReplicaStats {
  std::string address;                ///< the follower's replication address (its identity)
  bool connected = false;             ///< a fetch session is open
  bool in_sync = false;               ///< in the in-sync replica set
  std::uint64_t lag = 0;              ///< records behind the leader, summed over every log
  std::uint64_t caught_up_ms_ago = 0; ///< since it last held everything the leader had
  std::uint64_t bytes = 0;            ///< batch bytes sent to it since this daemon started
};

/// One replicated log (a queue's or a topic's).
struct ReplicatedLogStats {
  std::string log;                  ///< "queue.NAME" / "topic.NAME"
  std::uint64_t log_start_offset = 0;
  std::uint64_t log_end_offset = 0;
  std::uint64_t high_watermark = 0; ///< every in-sync replica holds everything below it
  std::vector<std::uint64_t> replica_offsets;  ///< leader: per ReplicationStats::replicas, its next offset
};

/// Replication: role, epoch, high watermarks and the replicas (leader) or the leader (follower).
struct ReplicationStats {
  std::string role = "standalone";  ///< "standalone", "leader", "follower", "fenced"
  std::uint32_t epoch = 0;          ///< leader epoch (the newest this daemon knows)
  std::string self;                 ///< this daemon's replication address
  std::string leader;               ///< the leader's address (a leader: itself)
  bool connected = false;           ///< follower: fetching from the leader now
  std::uint32_t min_insync = 0;     ///< leader: replicated sends need this many in-sync replicas (leader included)
  std::vector<std::string> in_sync; ///< leader: the in-sync set, leader first
  std::vector<ReplicaStats> replicas;      ///< leader: every follower of its replica set
  std::vector<ReplicatedLogStats> logs;    ///< every log
  std::uint64_t bytes = 0;          ///< follower: batch bytes fetched since start
};

/// Everything `shmbus stat` shows.
struct BusStats {
  std::int32_t daemon_pid = 0;                 ///< shmbusd's pid
  std::string dir;                             ///< the directory it serves
  std::uint64_t uptime_ms = 0;                 ///< since start
  std::vector<ClientStats> clients;            ///< attached clients
  std::vector<DestinationStats> destinations;  ///< every destination created since start
  ReplicationStats replication;                ///< role, epoch, high watermarks, replicas
};

}  // namespace shmbus
