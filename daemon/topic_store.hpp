// One topic's log for its durable subscriptions (docs/persistence.md, "Durable subscriptions"):
// the persistence agent reads the topic ring through a subscriber entry of its own and writes
// every PERSISTENT message as a record; durable subscribers read the log files (bus/log/LogTail).
// Owned by the persistence agent's thread.
#pragma once
#include "log/segment_log.hpp"
#include "queue_record.hpp"
#include "queue_store.hpp"
#include "ring/topic_ring.hpp"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace shmbus::daemon {

/// A topic log's figures for stat: written by the persistence agent, read by the conductor (relaxed).
struct TopicLogFigures {
  std::atomic<std::uint64_t> start{0}, end{0}, durable{0}, segments{0}, bytes{0}, persisted{0}, lost{0};
  std::atomic<std::uint32_t> error{0};
};

/// What the agent does with topic logs besides writing them.
struct TopicLogPolicy {
  std::uint64_t retention_ms = 0;     // 0: kept until every subscription has read it
  std::uint64_t retention_bytes = 0;  // 0: no size limit
  bool compact = false;               // keep the newest record per key (property `key`)
  std::uint64_t tombstone_retention_ms = 24ULL * 3600 * 1000;
  std::uint64_t compact_every_ns = 30'000'000'000ULL;
};

/// The geometry a topic with durable subscriptions is re-created with (DIR/data/topic.NAME/topic.meta).
struct TopicMeta {
  std::uint32_t capacity = 0, max_message_size = 0;
  bool load(const std::string& dir);
  bool save(const std::string& dir) const;
};

class TopicStore {
 public:
  TopicStore(std::uint32_t dest_id, std::string name, std::string dir, ring::TopicRing ring, std::uint32_t entry,
             std::shared_ptr<void> keep, FsyncPolicy fsync, TopicLogPolicy policy, log::LogConfig cfg,
             std::shared_ptr<TopicLogFigures> figures);
  void publish_stats() noexcept;
  void set_hub(ReplicationHub* hub) noexcept { hub_ = hub; }
  bool open();
  /// Reads the ring up to where it is now and writes the PERSISTENT messages as one batch.
  std::size_t drain(std::uint64_t now_mono, std::uint64_t limit = ~0ULL);
  /// Logs the ring up to (not past) ring sequence `tail` and returns the log end: where a
  /// subscription created when the ring's tail was `tail` starts. Waits (bounded) for slots
  /// claimed below `tail` to be committed.
  std::uint64_t log_up_to(std::uint64_t tail);
  void maybe_flush(std::uint64_t now_mono, bool force);
  /// Retention, deletion below every subscription's position (`min_position`), compaction.
  void maintain(std::uint64_t now_mono, std::uint64_t min_position);
  std::uint64_t next_flush_ns() const noexcept;
  std::uint32_t dest_id() const noexcept { return dest_id_; }
  bool ring_ready() const noexcept { return reader_.ready(std::memory_order_seq_cst); }
  const std::string& dir() const noexcept { return dir_; }
  std::uint64_t log_end() const noexcept { return log_ ? log_->log_end_offset() : 0; }
  std::uint64_t lost() const noexcept { return lost_; }

 private:
  void add(const ring::ReadMeta& m, const std::byte* data);

  std::uint32_t dest_id_;
  std::string name_, dir_;
  ring::TopicRing ring_;
  ring::TopicReader reader_;
  std::shared_ptr<void> keep_;
  FsyncPolicy fsync_;
  TopicLogPolicy policy_;
  log::LogConfig cfg_;
  std::unique_ptr<log::Log> log_;
  std::shared_ptr<TopicLogFigures> figures_;
  std::vector<std::byte> buf_;  // one slot's payload
  std::vector<log::AppendRecord> batch_;
  std::vector<std::byte> scratch_;
  std::vector<std::size_t> value_at_, key_at_, key_len_;
  std::uint64_t lost_ = 0;
  std::uint64_t unflushed_ = 0, first_unflushed_ns_ = 0, last_compact_ns_ = 0;
  bool failing_ = false;
  ReplicationHub* hub_ = nullptr;
  LogPublisher pub_;  // declared after log_: unpublished before the log closes
};

}  // namespace shmbus::daemon
