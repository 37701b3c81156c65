// What the persistence agent and the replicator share about each log (docs/replication.md).
//
// The agent owns every Log of a leader and appends to it; the replicator's threads never touch a
// Log object: they read the segment files through log::LogRangeReader up to the end the agent
// published here, and publish back the high watermark. A producer waiting for Acks::Replicated
// is recorded here by the agent (offset of its message) and released by the replicator once the
// high watermark passes it.
#pragma once
#include "layout/queue_layout.hpp"
#include "ring/futex.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace shmbus::daemon {

/// A producer waiting for its message at `offset` to be replicated.
struct ReplicaWaiter {
  std::uint64_t offset;  // the message record's offset
  std::uint32_t entry;   // producer entry in the queue
  std::uint32_t pid;     // producer id (the durable word's owner check)
  std::uint64_t seq;     // producer sequence of the message
};

struct SharedLog {
  std::string name;  // "queue.NAME" / "topic.NAME"
  std::string dir;
  // Written by the agent after every append / retention pass (release: the bytes below are in the
  // files, pwrite done, before a reader that acquires `end` reads them).
  std::atomic<std::uint64_t> start{0};
  std::atomic<std::uint64_t> end{0};
  // False until the agent first published start/end (the log's real offsets, not zeros): the
  // replicator leaves the log alone until then, so a follower is never told "out of range" by a
  // log that only looks empty. Release/acquire with the offsets.
  std::atomic<bool> ready{false};
  // Written by the replicator (release); read by the agent (acquire) and stat.
  std::atomic<std::uint64_t> high_watermark{0};
  // Waiters, agent -> replicator. Under `mu` (neither side is a client's hot path: a waiting
  // producer is parked anyway).
  std::mutex mu;
  std::deque<ReplicaWaiter> waiters;
  layout::QueueProducerEntry* producers = nullptr;  // the queue's producer table (queues only)
  std::shared_ptr<void> keep;                        // keeps that mapping alive
  bool open = true;                                  // false once the agent closed the log
};

class ReplicationHub {
 public:
  /// The agent registers a log when it opens it (and unregisters when it closes it).
  std::shared_ptr<SharedLog> add(const std::string& name, const std::string& dir);
  void remove(const std::string& name);
  std::vector<std::shared_ptr<SharedLog>> logs() const;
  std::shared_ptr<SharedLog> find(const std::string& name) const;

  /// The agent appended something: wakes replicator threads waiting for data.
  void notify_data() noexcept { ring::wake_waiters(data_seq_, data_waiters_); }
  /// Replicator threads wait here (at most timeout_ns) while `nothing()` says there is no new data.
  template <class Nothing>
  void wait_data(std::uint64_t timeout_ns, Nothing&& nothing) noexcept {
    std::atomic<std::uint32_t> parked{0};
    ring::park_once(data_seq_, data_waiters_, parked, timeout_ns, nothing);
  }

  /// The leader epoch the agent stamps on the batches it appends (0 when not replicating).
  std::atomic<std::uint32_t> epoch{0};
  /// Whether the agent should record Acks::Replicated waiters (a leader) or fail them at once.
  std::atomic<bool> replicating{false};

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<SharedLog>> logs_;
  std::atomic<std::uint32_t> data_seq_{0};
  std::atomic<std::uint32_t> data_waiters_{0};
};

}  // namespace shmbus::daemon

namespace shmbus::log {
class Log;
}

namespace shmbus::daemon {

/// A store's link to the hub: stamps the leader epoch on its log and publishes its offsets and
/// replicated waiters. Inert (no hub) on a daemon that does not replicate.
class LogPublisher {
 public:
  LogPublisher() = default;
  ~LogPublisher();
  LogPublisher(const LogPublisher&) = delete;
  LogPublisher& operator=(const LogPublisher&) = delete;
  void attach(ReplicationHub* hub, std::string name, std::string dir, layout::QueueProducerEntry* producers,
              std::shared_ptr<void> keep);
  /// Before an append: the epoch to stamp (recorded in leader-epoch-checkpoint when it changes).
  std::uint32_t epoch_for(log::Log& log);
  /// After an append or a deletion: offsets out, waiters handed over, replicator threads woken.
  void published(const log::Log& log, std::vector<ReplicaWaiter>& waiters);
  /// The same without waiters (an open, a deletion, a topic's append).
  void published(const log::Log& log);
  bool replicating() const noexcept;
  /// The log's high watermark (0 without a hub).
  std::uint64_t high_watermark() const noexcept;

 private:
  ReplicationHub* hub_ = nullptr;
  std::shared_ptr<SharedLog> shared_;
  std::uint32_t assigned_ = ~0U;
};

}  // namespace shmbus::daemon
