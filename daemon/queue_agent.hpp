// The daemon's side of queues: everything that needs a clock or a dead participant's cleanup.
// Single-threaded (the janitor's thread); fed by the janitor with queues and releases.
//
// Per tick it
//  - drains each queue's agent ring: SCHEDULED slots get a deliver-at timer in the wheel,
//    REDELIVER slots (rollback, recover) and EXPIRED slots are decided at once;
//  - times out deliveries: one wheel timer per consumer with an ack timeout, armed at the
//    deadline of the oldest unsettled entry of its in-flight FIFO;
//  - fires due timers (delayed delivery, redelivery delay, ack-timeout checks);
//  - retries dead letters waiting for their DLQ to exist or to have room.
// On release (a participant closed, or its process died) it walks the slots it owned, repairs
// the index rings, and re-announces the one slot its `held` word names (docs/queues.md).
#pragma once
#include "ring/index_repair.hpp"
#include "ring/queue_ring.hpp"
#include "timing_wheel.hpp"

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace shmbus::daemon {

class QueueAgent {
 public:
  /// `need_dlq(dest_id)`: asked once per queue, the first time it has a dead letter and no DLQ.
  explicit QueueAgent(std::function<void(std::uint32_t dest_id)> need_dlq, std::uint64_t now_ns);

  /// Starts serving a queue (its mapping kept alive by `keep`).
  void add(std::uint32_t dest_id, std::string uri, ring::QueueRing q, std::shared_ptr<void> keep);
  void remove(std::uint32_t dest_id);
  /// The DLQ of `dest_id` is `dlq_id` (already add()ed), or 0: it could not be created; pending
  /// dead letters are then dropped and counted.
  void set_dlq(std::uint32_t dest_id, std::uint32_t dlq_id);

  /// One pass (see above). Returns how many slots it moved.
  std::size_t tick(std::uint64_t now_ns);

  struct Released {
    std::uint32_t redelivered = 0;  // DELIVERED to the consumer: back to the queue (or DLQ)
    std::uint32_t freed = 0;        // WRITING by the producer: freed (never promised to anyone)
    std::uint32_t reannounced = 0;  // slots between rings put back where their state says
    std::uint32_t ring_repairs = 0; // index-ring cells repaired (dead pushes/pops)
  };
  /// A producer or consumer entry whose owner closed it or died (entry state 2 = closing): takes
  /// back everything it held, then frees the entry (state 0).
  Released release(std::uint32_t dest_id, bool producer, std::uint32_t entry);

  std::size_t queues() const noexcept { return queues_.size(); }
  /// When a tick last moved a slot or saw new deliveries (the janitor ticks faster after that).
  std::uint64_t last_activity_ns() const noexcept { return last_activity_; }
  /// No timer fires before this (UINT64_MAX: none armed).
  std::uint64_t next_timer_ns() const noexcept { return wheel_.next_wake_ns(); }
  const TimingWheel& wheel() const noexcept { return wheel_; }

 private:
  /// The daemon's view of one consumer's in-flight FIFO.
  struct Tracking {
    std::uint32_t consumer_id = 0;  // the consumer these belong to (entries are reused)
    std::uint64_t checked = 0;      // FIFO position timed out (or found settled) up to
    std::uint64_t seen_tail = 0;    // FIFO tail at the last look
    // (tail, time): every delivery below `tail` was made before `time` (first seen then).
    std::deque<std::pair<std::uint64_t, std::uint64_t>> marks;
  };
  struct Queue {
    std::uint32_t dest_id = 0;
    std::string uri;
    ring::QueueRing q;
    std::shared_ptr<void> keep;
    std::uint32_t dlq_id = 0;
    bool dlq_requested = false;
    std::vector<std::uint64_t> sched_word;       // per slot: the SCHEDULED word its timer is for
    std::vector<Tracking> track;                 // per consumer
    std::vector<TimerId> check_timer;            // per consumer: its ack-timeout check
    std::vector<std::uint64_t> check_at;         // per consumer: when that timer fires
    std::vector<std::pair<std::uint32_t, std::uint64_t>> dead_letters;  // (slot, word) waiting
    std::vector<const layout::ClaimRecord*> records;  // every claim record of the queue
    bool repair_again = false;                         // a ring repair found cells held
  };
  enum Kind : std::uint64_t { kDeliverAt = 1, kAckCheck = 2 };

  Queue* find(std::uint32_t dest_id) noexcept;
  static std::uint64_t payload(Kind k, std::uint32_t dest_id, std::uint32_t what) noexcept {
    return (std::uint64_t{k} << 62) | (std::uint64_t{dest_id & 0x3FFFFFFF} << 32) | what;
  }
  void on_timer(std::uint64_t payload);
  /// Acts on a slot popped from the agent ring or named by a dead participant's held word.
  void handle(Queue& q, std::uint32_t slot);
  void schedule(Queue& q, std::uint32_t slot, std::uint64_t word);
  void make_ready(Queue& q, std::uint32_t slot, std::uint64_t word);
  void redeliver(Queue& q, std::uint32_t slot, std::uint64_t word);
  void expire(Queue& q, std::uint32_t slot, std::uint64_t word);
  void dead_letter(Queue& q, std::uint32_t slot, std::uint64_t word, layout::DeadLetterReason why);
  bool move_to_dlq(Queue& q, Queue& dlq, std::uint32_t slot, std::uint64_t word);
  void free_slot(Queue& q, std::uint32_t slot, std::uint64_t word);
  /// Notes new deliveries of a consumer with an ack timeout; false if it has none (or is not live).
  bool observe(Queue& q, std::uint32_t consumer);
  void check_acks(Queue& q, std::uint32_t consumer);
  std::uint32_t repair_rings(Queue& q, std::vector<std::uint32_t>& orphans);
  void reannounce(Queue& q, std::vector<std::uint32_t>& orphans, Released& r);
  bool cas(Queue& q, std::uint32_t slot, std::uint64_t& word, std::uint64_t next);

  std::function<void(std::uint32_t)> need_dlq_;
  TimingWheel wheel_;
  std::uint64_t now_ = 0;
  std::size_t moved_ = 0;
  std::uint64_t last_activity_ = 0;
  std::map<std::uint32_t, Queue> queues_;
};

}  // namespace shmbus::daemon
