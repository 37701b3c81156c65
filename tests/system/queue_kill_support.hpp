// What the queue random-kill tests share (queue_kill_system_test.cpp and
// queue_selector_kill_system_test.cpp): the victims' record files, a read-only view of the queue's
// shared memory, and the diagnostic dump printed when a check fails.
#pragma once
#include "common/paths.hpp"
#include "layout/queue_layout.hpp"
#include "ring/queue_ring.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace shmbus::systest::qkill {

inline constexpr std::uint32_t kRedeliveredFlag = 0x80000000U;  // Record::count: the delivery was flagged redelivered

inline std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return std::strtoull(v, nullptr, 10);
}

struct Record {
  std::uint32_t producer = 0;
  std::uint32_t count = 0;  // consumers: delivery count | kRedeliveredFlag; producers: 0
  std::uint64_t seq = 0;
};
static_assert(sizeof(Record) == 16);

// A record file. `partial`: bytes of a trailing incomplete record (a 16-byte write(2) at a
// 16-byte offset never straddles a page, so SIGKILL should leave none; counted, not assumed).
inline std::vector<Record> read_record_file(const std::string& path, std::size_t& partial) {
  std::vector<Record> out;
  partial = 0;
  std::ifstream f(path, std::ios::binary);
  if (!f.good()) return out;  // killed before it opened the file: nothing recorded
  Record r;
  while (f.read(reinterpret_cast<char*>(&r), sizeof r)) out.push_back(r);
  partial = static_cast<std::size_t>(f.gcount());
  return out;
}

inline void touch(const std::string& path) { std::ofstream(path, std::ios::binary | std::ios::trunc).close(); }

inline const char* state_name(layout::QState s) {
  switch (s) {
    case layout::QState::Free: return "FREE";
    case layout::QState::Writing: return "WRITING";
    case layout::QState::Ready: return "READY";
    case layout::QState::Scheduled: return "SCHEDULED";
    case layout::QState::Delivered: return "DELIVERED";
    case layout::QState::Redeliver: return "REDELIVER";
    case layout::QState::Expired: return "EXPIRED";
    case layout::QState::Acked: return "ACKED";
  }
  return "?";
}

inline std::string describe_record(const layout::ClaimRecord& r) {
  const auto p = r.op_pos.load(std::memory_order_relaxed);
  if (p == layout::kClaimIdle) return "idle";
  if (p == layout::kClaimPending) return "pending";
  return "@" + std::to_string(p);
}

// The queue's shared memory, mapped read-only for the test's own checks and diagnostics (the
// daemon owns it; only loads are made through it).
class QueueView {
 public:
  QueueView(const std::string& canonical, std::uint32_t dest_id)
      : path_("/dev/shm/" + common::dest_shm_name(canonical, dest_id)) {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      error_ = "cannot open " + path_ + ": " + std::strerror(errno);
      if (fd >= 0) ::close(fd);
      return;
    }
    size_ = static_cast<std::size_t>(st.st_size);
    void* base = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (base == MAP_FAILED) {
      error_ = "cannot map " + path_;
      return;
    }
    base_ = base;
    if (const auto err = ring::check_queue(base_, size_); !err.empty()) error_ = path_ + ": " + std::string(err);
    else q_ = ring::QueueRing(base_);  // the ring view only loads
  }
  ~QueueView() {
    if (base_) ::munmap(base_, size_);
  }
  QueueView(const QueueView&) = delete;
  QueueView& operator=(const QueueView&) = delete;
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }
  const ring::QueueRing& q() const { return q_; }

 private:
  std::string path_, error_;
  void* base_ = nullptr;
  std::size_t size_ = 0;
  ring::QueueRing q_;
};

// Diagnostics for a failure: the queue as it is now (relaxed loads: a snapshot that may be torn
// while someone is still moving, which nobody should be by then). Slot states, every index ring
// (head, tail, published entries, cells claimed and never published), slots FREE but in no
// free-ring entry (leaked), READY but in no ready ring (stuck), participants' entries, their held
// words and claim records.
inline std::string dump_queue(const QueueView& view) {
  if (!view.ok()) return "\n" + view.error();
  std::ostringstream o;
  const auto& path = view.path();
  const ring::QueueRing& q = view.q();
  const auto& h = q.header();
  const std::uint32_t n = q.slot_count();
  o << "\n==== " << path << " (" << n << " slots) ====\n";
  o << "ready_mask=0x" << std::hex << h.ready_mask.load(std::memory_order_relaxed) << std::dec
    << " waiters=" << h.waiters.load(std::memory_order_relaxed)
    << " space_waiters=" << h.space_waiters.load(std::memory_order_relaxed)
    << " stale_entries=" << h.stale_entries.load(std::memory_order_relaxed)
    << " redelivered=" << h.redelivered.load(std::memory_order_relaxed)
    << " dead_lettered=" << h.dead_lettered.load(std::memory_order_relaxed)
    << " dropped=" << h.dropped.load(std::memory_order_relaxed)
    << " selector_rotations=" << h.selector_rotations.load(std::memory_order_relaxed) << "\n";
  std::map<std::string, std::uint32_t> by_state;
  std::vector<std::uint64_t> words(n);
  for (std::uint32_t s = 0; s < n; ++s) {
    words[s] = q.slot(s)->state.load(std::memory_order_relaxed);
    ++by_state[state_name(layout::QWord::state(words[s]))];
  }
  o << "slot states:";
  for (const auto& [k, v] : by_state) o << " " << k << "=" << v;
  o << "\n";
  for (std::uint32_t s = 0; s < n; ++s) {
    const auto w = words[s];
    if (layout::QWord::state(w) == layout::QState::Free) continue;
    o << "  slot " << s << ": " << state_name(layout::QWord::state(w)) << " owner=" << layout::QWord::owner(w)
      << " count=" << layout::QWord::count(w) << " gen=" << layout::QWord::gen(w)
      << " producer_id=" << q.slot(s)->producer_id << " producer_seq=" << q.slot(s)->producer_seq << "\n";
  }
  // Every ring: what it holds between head and tail, and cells claimed but never published.
  std::vector<std::uint32_t> in_free(n, 0), in_ready(n, 0);
  const auto walk = [&](const char* name, ring::IndexRing r, std::vector<std::uint32_t>* tally) {
    auto& rh = r.header();
    const std::uint64_t head = rh.head.load(std::memory_order_relaxed);
    const std::uint64_t tail = rh.tail.load(std::memory_order_relaxed);
    const std::uint64_t cap = r.capacity();
    std::ostringstream values, stuck;
    std::uint64_t published = 0, tombstones = 0;
    for (std::uint64_t p = head; p < tail; ++p) {
      const auto seq = r.cell(p)->seq.load(std::memory_order_relaxed);
      const auto v = r.cell(p)->value;
      if (seq == p + 1) {
        if (v == layout::kNoValue) {
          ++tombstones;
          continue;
        }
        ++published;
        values << " " << v;
        if (tally && v < n) ++(*tally)[v];
      } else {
        stuck << " [pos " << p << " seq " << seq << ": push claimed, never published]";
      }
    }
    for (std::uint64_t p = tail > cap ? tail - cap : 0; p < head; ++p) {
      const auto seq = r.cell(p)->seq.load(std::memory_order_relaxed);
      if (seq == p + 1) stuck << " [pos " << p << " value " << r.cell(p)->value << ": pop claimed, never published]";
    }
    if (head == tail && stuck.str().empty() && tally == nullptr) return;
    o << name << ": head=" << head << " tail=" << tail << " published=" << published << " tombstones=" << tombstones
      << " (written " << rh.tombstones_written.load(std::memory_order_relaxed) << ", skipped "
      << rh.tombstones_skipped.load(std::memory_order_relaxed) << ") dead pops released="
      << rh.pops_released.load(std::memory_order_relaxed) << "\n  entries:" << values.str() << "\n";
    if (!stuck.str().empty()) o << "  STUCK:" << stuck.str() << "\n";
  };
  walk("free ring", q.free_ring(), &in_free);
  walk("agent ring", q.agent_ring(), nullptr);
  for (std::uint32_t p = 0; p < layout::kPriorities; ++p)
    walk(("ready ring " + std::to_string(p)).c_str(), q.ready_ring(p), &in_ready);
  for (std::uint32_t s = 0; s < n; ++s) {
    const auto state = layout::QWord::state(words[s]);
    if (state == layout::QState::Free && in_free[s] == 0) o << "LEAK: slot " << s << " is FREE but in no free-ring entry\n";
    if (state == layout::QState::Ready && in_ready[s] == 0) o << "STUCK: slot " << s << " is READY but in no ready ring\n";
  }
  for (std::uint32_t i = 0; i < layout::kQueueMaxProducers; ++i) {
    const auto* e = q.producer(i);
    const auto est = e->state.load(std::memory_order_relaxed);
    const auto held = e->held.load(std::memory_order_relaxed);
    if (est == 0 && held == layout::kQueueNoSlot) continue;
    o << "producer entry " << i << ": state=" << est << " producer_id=" << e->producer_id << " held="
      << (held == layout::kQueueNoSlot ? std::string("none") : std::to_string(held)) << " sent="
      << e->sent.load(std::memory_order_relaxed) << " push=" << describe_record(e->push)
      << " pop=" << describe_record(e->pop) << "\n";
  }
  for (std::uint32_t i = 0; i < layout::kQueueMaxConsumers; ++i) {
    const auto* e = q.consumer(i);
    const auto est = e->state.load(std::memory_order_relaxed);
    const auto held = e->held.load(std::memory_order_relaxed);
    if (est == 0 && held == layout::kQueueNoSlot) continue;
    o << "consumer entry " << i << ": state=" << est << " consumer_id=" << e->consumer_id << " held="
      << (held == layout::kQueueNoSlot ? std::string("none") : std::to_string(held)) << " received="
      << e->received.load(std::memory_order_relaxed) << " acked=" << e->acked.load(std::memory_order_relaxed)
      << " fifo=[" << e->fifo_head.load(std::memory_order_relaxed) << ", "
      << e->fifo_tail.load(std::memory_order_relaxed) << ") push=" << describe_record(e->push)
      << " pop=" << describe_record(e->pop) << "\n";
  }
  o << "daemon: push=" << describe_record(h.daemon_push) << " pop=" << describe_record(h.daemon_pop) << "\n";
  return o.str();
}

// How far each kind of victim had got when it died.
struct KillTally {
  std::uint64_t kills = 0, attaching = 0, attached_idle = 0, working = 0;
  std::string line() const {
    return std::to_string(kills) + " (" + std::to_string(attaching) + " while attaching, " + std::to_string(attached_idle) +
           " attached with nothing recorded, " + std::to_string(working) + " after recording >= 1 message)";
  }
};


// True when no queue entry is being reclaimed (state 2, "closing"): every release walk queued
// so far has finished.
inline bool no_entry_closing(const ring::QueueRing& q) {
  for (std::uint32_t i = 0; i < layout::kQueueMaxProducers; ++i)
    // Acquire: pairs with the janitor's release store of 0 after the walk.
    if (q.producer(i)->state.load(std::memory_order_acquire) == 2) return false;
  for (std::uint32_t i = 0; i < layout::kQueueMaxConsumers; ++i)
    if (q.consumer(i)->state.load(std::memory_order_acquire) == 2) return false;
  return true;
}

// Forbidden outcome STALE CLAIM: an entry given back after its owner died (state 0, walk done)
// whose ring claim record still says what that owner was doing (op_pos not idle). Whoever gets
// the entry next is "live" (state 1) with that claim until its own next ring operation: the
// repair (IndexRingRepair::live_record) then takes it for a live claimer of that position, and of
// EVERY position if the record says "pending", and never repairs another dead participant's cell
// there. Each stale record is counted once, with the moment it was seen.
class StaleClaims {
 public:
  void scan(const ring::QueueRing& q, const std::string& when, std::size_t show) {
    const auto check = [&](const char* kind, std::uint32_t i, const char* role, const std::atomic<std::uint32_t>& state,
                           const layout::ClaimRecord& r) {
      const std::string key = std::string(kind) + " entry " + std::to_string(i) + " " + role;
      // The entry is free (0): nobody writes the record until the conductor hands the entry out
      // (state 1). Loaded between two loads of the state, so a record written by a new owner
      // that got the entry meanwhile (a survivor still attaching) is not taken for a stale one.
      const auto before = state.load(std::memory_order_acquire);
      const auto pos = r.op_pos.load(std::memory_order_acquire);
      const auto after = state.load(std::memory_order_acquire);
      if (before != 0 || after != 0 || pos == layout::kClaimIdle) {
        reported_.erase(key);
        return;
      }
      if (auto it = reported_.find(key); it != reported_.end() && it->second == pos) return;
      reported_[key] = pos;
      ++count_;
      if (examples_.size() < show)
        examples_.push_back(key + " record op_pos=" + describe_record(r) + " after its owner's walk, " + when);
    };
    for (std::uint32_t i = 0; i < layout::kQueueMaxProducers; ++i) {
      const auto* e = q.producer(i);
      check("producer", i, "push", e->state, e->push);
      check("producer", i, "pop", e->state, e->pop);
    }
    for (std::uint32_t i = 0; i < layout::kQueueMaxConsumers; ++i) {
      const auto* e = q.consumer(i);
      check("consumer", i, "push", e->state, e->push);
      check("consumer", i, "pop", e->state, e->pop);
    }
  }
  std::uint64_t count() const { return count_; }
  const std::vector<std::string>& examples() const { return examples_; }

 private:
  std::map<std::string, std::uint64_t> reported_;
  std::uint64_t count_ = 0;
  std::vector<std::string> examples_;
};

}  // namespace shmbus::systest::qkill
