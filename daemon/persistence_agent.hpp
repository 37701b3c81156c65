// The persistence agent: one thread of shmbusd that owns every queue's segment log
// (docs/persistence.md). It follows each queue's persist ring, writes what it finds as record
// batches, fsyncs by the queue's policy (at once when a producer waits for durability: group
// commit), frees settled PERSISTENT slots, loads unsettled messages back after a restart, and
// takes snapshots. Fed by the conductor through a moodycamel queue; woken by durable sends through
// a futex word in the control region.
#pragma once
#include "queue_store.hpp"
#include "topic_store.hpp"

#include <concurrentqueue.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <future>
#include <thread>
#include <variant>

namespace shmbus::layout {
struct RegionHeader;
}

namespace shmbus::daemon {

struct PersistenceConfig {
  std::string data_dir;  // DIR/data
  FsyncPolicy fsync;     // default for every queue
  log::LogConfig log;
  TopicLogPolicy topics;
};

// conductor -> persistence agent
struct PersistQueue {
  std::uint32_t dest_id;
  std::string name;
  ring::QueueRing q;
  std::shared_ptr<void> keep;  // the mapping stays alive while the agent uses it
  std::string fsync;           // the queue's own policy (FsyncPolicy::parse), "" = the daemon's
};
struct UnpersistQueue {
  std::uint32_t dest_id;  // flushed, snapshotted and closed (the queue was removed)
};
struct PersistTopic {
  std::uint32_t dest_id;
  std::string name;
  ring::TopicRing ring;
  std::uint32_t entry;  // the subscriber entry the agent reads through (set up by the conductor)
  std::shared_ptr<void> keep;
  std::shared_ptr<TopicLogFigures> figures;  // for the conductor's stat
};
struct UnpersistTopic {
  std::uint32_t dest_id;  // its last durable subscription is gone: the log is closed and deleted
  bool delete_log;
};
struct TopicMinPosition {
  std::uint32_t dest_id;
  std::uint64_t position;  // every durable subscription has consumed everything below it
};
/// A new durable subscription starts at the log offset that follows every message published
/// before it was created: the agent logs the topic's ring up to `ring_tail` (the tail the
/// conductor saw), then answers with the log end.
struct ResolveStart {
  std::uint32_t dest_id;
  std::uint64_t ring_tail;
  std::shared_ptr<std::promise<std::uint64_t>> answer;
};
using PersistCommand = std::variant<PersistQueue, UnpersistQueue, PersistTopic, UnpersistTopic, TopicMinPosition, ResolveStart>;

/// A queue found in the data directory at start: the conductor re-creates it.
struct StoredQueue {
  std::string name;
  QueueMeta meta;
};

class PersistenceAgent {
 public:
  PersistenceAgent(layout::RegionHeader* region, PersistenceConfig cfg, ReplicationHub* hub = nullptr);
  ~PersistenceAgent();
  void start();
  /// Drains every queue one last time, flushes, snapshots, closes the logs, joins.
  void stop();
  void post(PersistCommand c);
  /// Queues with a log in data_dir (queue.NAME/queue.meta), for the conductor to re-create.
  static std::vector<StoredQueue> stored_queues(const std::string& data_dir);
  static std::string queue_dir(const std::string& data_dir, const std::string& name) { return data_dir + "/queue." + name; }
  static std::string topic_dir(const std::string& data_dir, const std::string& name) { return data_dir + "/topic." + name; }

 private:
  void run();
  void handle(PersistCommand& c);
  /// One pass over every queue; true if it moved anything.
  bool round(bool final_pass);
  void park(std::uint64_t now);

  layout::RegionHeader* region_;
  PersistenceConfig cfg_;
  ReplicationHub* hub_ = nullptr;
  moodycamel::ConcurrentQueue<PersistCommand> inbox_;
  std::map<std::uint32_t, std::unique_ptr<QueueStore>> stores_;
  struct TopicEntry {
    std::unique_ptr<TopicStore> store;
    std::uint64_t min_position = 0;
  };
  std::map<std::uint32_t, TopicEntry> topics_;
  std::uint64_t last_maintain_ns_ = 0;
  std::uint64_t last_work_ns_ = 0;  // when a pass last moved anything (the park slice depends on it)
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::uint64_t last_stats_ns_ = 0;
};

}  // namespace shmbus::daemon
