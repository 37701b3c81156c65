// One queue's persistence (docs/persistence.md): its segment log, which slots hold messages
// already logged, which logged messages are still in the queue, and the messages a restart must
// load back. Owned by the persistence agent's thread; nothing here is shared with other threads
// except the queue's shared memory, through the queue's persist ring and slot state words.
#pragma once
#include "log/segment_log.hpp"
#include "queue_record.hpp"
#include "queue_store_offsets.hpp"
#include "replication_hub.hpp"
#include "ring/queue_ring.hpp"

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace shmbus::daemon {

/// When a queue's log is fsync'ed (besides durable sends, which always get one at once).
struct FsyncPolicy {
  enum class Mode : std::uint8_t { Never = 0, Interval = 1, EveryN = 2, Always = 3 };
  Mode mode = Mode::Interval;
  std::uint64_t interval_ns = 10'000'000;  // Interval: at most this long after a write
  std::uint64_t every = 1000;              // EveryN: after this many records
  std::string describe() const;
  /// Whether `unflushed` records, the first written at `first_ns`, are due for an fsync at `now`.
  bool due(std::uint64_t unflushed, std::uint64_t first_ns, std::uint64_t now) const noexcept {
    return unflushed != 0 && now >= due_at(unflushed, first_ns);
  }
  /// When they are due (0: at once; UINT64_MAX: not by time, and not yet by count, or nothing unflushed).
  std::uint64_t due_at(std::uint64_t unflushed, std::uint64_t first_ns) const noexcept {
    if (unflushed == 0) return ~0ULL;
    if (mode == Mode::Always || (mode == Mode::EveryN && unflushed >= every)) return 0;
    return mode == Mode::Interval ? first_ns + interval_ns : ~0ULL;
  }
  /// "never", "always", "interval:MS", "every:N"; false for anything else.
  static bool parse(const std::string& s, FsyncPolicy& out);
};

/// The geometry and policy a queue is re-created with after a restart (DIR/data/queue.NAME/queue.meta).
struct QueueMeta {
  std::uint32_t capacity = 0, max_message_size = 0, max_deliveries = 0, flags = 0;
  std::uint64_t redelivery_delay_ns = 0;
  std::string fsync;  // the queue's own fsync policy (FsyncPolicy::parse), "" = the daemon's --fsync
  bool load(const std::string& dir);
  bool save(const std::string& dir) const;
};

class QueueStore {
 public:
  QueueStore(std::uint32_t dest_id, std::string name, std::string dir, ring::QueueRing q, std::shared_ptr<void> keep,
             FsyncPolicy policy, log::LogConfig cfg);
  ~QueueStore();

  /// The queue's own fsync policy as given at creation ("" = the daemon's): kept in queue.meta.
  void set_fsync_spec(std::string spec) { fsync_spec_ = std::move(spec); }
  /// Replication (docs/replication.md): the log is published to the hub once it is open.
  void set_hub(ReplicationHub* hub) noexcept { hub_ = hub; }
  /// Opens the log if its directory exists (a restart): recovery, snapshot, replay; the messages
  /// still unsettled are queued for loading back. False (logged) if the log cannot be opened.
  bool open_existing();
  /// Pops the persist ring and logs what it finds as one batch. Returns the records written.
  std::size_t drain(std::uint64_t now_mono);
  /// Loads messages of the backlog back into free slots. Returns how many.
  std::size_t load_backlog(std::uint64_t now_mono);
  /// fsync if the policy (or a durable waiter) asks; then tells the producers. force: always.
  void maybe_flush(std::uint64_t now_mono, bool force);
  /// Read-committed queues: hands the gated messages that are committed now (below the high
  /// watermark when replicating, else fsync'ed) to the consumers. Returns how many.
  std::size_t release_committed();
  /// Snapshot + segment deletion when due (or force, after a flush).
  void maybe_snapshot(std::uint64_t now_mono, bool force);
  void publish_stats() noexcept;
  /// When the policy next wants a flush (UINT64_MAX: nothing unflushed or no timer).
  std::uint64_t next_flush_ns() const noexcept;
  bool idle() const noexcept;  // nothing to drain, retry or load
  std::uint32_t dest_id() const noexcept { return dest_id_; }
  const ring::QueueRing& ring() const noexcept { return q_; }

 private:
  struct Pending {  // a settlement waiting to be logged
    std::uint32_t slot;
    std::uint64_t word;
    std::uint64_t offset;
    SettleReason reason;
  };
  bool ensure_log();
  void set_error(int code, const std::string& what);
  void clear_error();
  /// A slot popped from the persist ring: queue its record(s). False: nothing to do (stale).
  void classify(std::uint32_t slot);
  void add_message(std::uint32_t slot, std::uint8_t flags, std::uint64_t word);
  void add_settle(std::uint32_t slot, std::uint64_t word, SettleReason why);
  bool append_batch();
  void drain_without_log();
  /// A gated slot to the ready ring (READY) or the queue agent (SCHEDULED).
  void release(std::uint32_t slot, std::uint64_t word);
  /// ACKED (word) -> FREE and to the free ring: the end of a PERSISTENT slot's life.
  void free_acked(std::uint32_t slot, std::uint64_t word);
  bool load_one(std::uint64_t offset, std::uint64_t now_mono, bool& no_slot);
  void replay(std::uint64_t from);
  std::vector<std::byte> snapshot_blob() const;
  bool restore_snapshot(std::uint64_t& from);

  std::uint32_t dest_id_;
  std::string name_, dir_;
  ring::QueueRing q_;
  std::shared_ptr<void> keep_;
  FsyncPolicy policy_;
  std::string fsync_spec_;
  log::LogConfig cfg_;
  std::unique_ptr<log::Log> log_;
  bool log_failed_ = false;                 // open failed: nothing more is tried until restart
  std::vector<std::uint64_t> logged_;       // per slot: offset of this life's message record, or kNone
  UnsettledOffsets unsettled_;              // logged, still in the queue
  std::deque<std::uint64_t> backlog_;       // restart: offsets to load back into the queue
  std::vector<std::uint32_t> retry_;        // slots popped but not logged (a failed append)
  std::vector<Pending> deferred_;           // dead-letter settlements: logged one round later
  std::unordered_map<std::uint64_t, std::uint64_t> producers_;  // incarnation -> highest seq logged
  // The batch being built. A message record's value is its QueueMessageRecord (in heads_) then
  // the slot's bytes, gathered straight from shared memory by the log's encoder (no copy here):
  // only this agent frees a PERSISTENT slot, so the bytes stay put until the batch is written.
  std::vector<log::AppendRecord> batch_;
  std::vector<QueueMessageRecord> heads_;   // per message record of the batch
  std::vector<QueueSettleRecord> settle_values_;  // per settle record of the batch
  std::vector<std::uint8_t> is_settle_;     // per batch record: which of the two it is
  std::size_t batch_bytes_ = 0;             // values in the batch
  std::vector<std::uint32_t> batch_slots_;  // slots whose message record is in the batch
  std::vector<Pending> settles_;            // settlements in the batch (freed after it is written)
  std::vector<std::uint32_t> popped_;       // every slot popped this drain (retried if the append fails)
  // Per slot: the drain (drain_gen_) that popped it / queued its settlement; no search of popped_
  // or settles_ per entry.
  std::vector<std::uint32_t> popped_in_, settled_in_;
  std::uint32_t drain_gen_ = 0;
  std::int64_t now_real_ = 0;               // the clocks of this drain, read once
  bool durable_wait_ = false;               // the batch holds a message whose producer waits
  struct SeqNote { std::uint32_t entry, pid; std::uint64_t seq, incarnation; std::uint64_t offset; bool replicated; };
  std::vector<SeqNote> batch_seqs_;         // producers' sequences in the batch (announced after its flush)
  std::uint64_t now_mono_ = 0;
  // Durable acknowledgements: per producer entry, highest seq logged and not yet announced.
  std::uint64_t pending_seq_[layout::kQueueMaxProducers] = {};
  std::uint32_t pending_pid_[layout::kQueueMaxProducers] = {};
  bool flush_now_ = false;
  ReplicationHub* hub_ = nullptr;
  LogPublisher pub_;
  std::vector<ReplicaWaiter> repl_waiters_;  // Acks::Replicated producers of the last batch
  struct Gate {
    std::uint64_t offset;  // its message record
    std::uint32_t slot;
    std::uint64_t gen;     // the slot word's generation: a slot reused since is not released
  };
  std::vector<Gate> batch_gates_;  // gated messages of the batch being built
  std::deque<Gate> gated_;         // logged, waiting to be committed (offset order)
  std::uint64_t unflushed_ = 0, first_unflushed_ns_ = 0;
  std::uint64_t since_snapshot_ = 0, last_snapshot_ns_ = 0;
};

}  // namespace shmbus::daemon
