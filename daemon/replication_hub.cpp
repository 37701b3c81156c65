#include "replication_hub.hpp"

#include "log/segment_log.hpp"
#include "log.hpp"

namespace shmbus::daemon {

std::shared_ptr<SharedLog> ReplicationHub::add(const std::string& name, const std::string& dir) {
  std::lock_guard lk(mu_);
  auto s = std::make_shared<SharedLog>();
  s->name = name;
  s->dir = dir;
  logs_[name] = s;
  return s;
}

void ReplicationHub::remove(const std::string& name) {
  std::lock_guard lk(mu_);
  if (auto it = logs_.find(name); it != logs_.end()) {
    {
      std::lock_guard lk2(it->second->mu);
      it->second->open = false;
    }
    logs_.erase(it);
  }
}

std::vector<std::shared_ptr<SharedLog>> ReplicationHub::logs() const {
  std::lock_guard lk(mu_);
  std::vector<std::shared_ptr<SharedLog>> v;
  v.reserve(logs_.size());
  // Acquire: pairs with the first published()'s release: its offsets are real.
  for (const auto& [n, s] : logs_)
    if (s->ready.load(std::memory_order_acquire)) v.push_back(s);
  return v;
}

std::shared_ptr<SharedLog> ReplicationHub::find(const std::string& name) const {
  std::lock_guard lk(mu_);
  const auto it = logs_.find(name);
  // Acquire: as in logs().
  return it == logs_.end() || !it->second->ready.load(std::memory_order_acquire) ? nullptr : it->second;
}

LogPublisher::~LogPublisher() {
  if (hub_ != nullptr && shared_) hub_->remove(shared_->name);
}

void LogPublisher::attach(ReplicationHub* hub, std::string name, std::string dir, layout::QueueProducerEntry* producers,
                          std::shared_ptr<void> keep) {
  hub_ = hub;
  if (hub_ == nullptr) return;
  shared_ = hub_->add(name, dir);
  shared_->producers = producers;
  shared_->keep = std::move(keep);
}

std::uint32_t LogPublisher::epoch_for(log::Log& log) {
  if (hub_ == nullptr) return 0;
  // Relaxed: the epoch changes only at promotion, before the agent opens any log.
  const std::uint32_t e = hub_->epoch.load(std::memory_order_relaxed);
  if (e != assigned_) {
    if (auto err = log.assign_epoch(e); err) warn(log.dir() + ": cannot record leader epoch " + std::to_string(e) + ": " + err.what);
    assigned_ = e;
  }
  return e;
}

void LogPublisher::published(const log::Log& log, std::vector<ReplicaWaiter>& waiters) {
  if (hub_ == nullptr || !shared_) {
    waiters.clear();
    return;
  }
  // Waiters first, then the end: a fetch that sees the new end (and moves the high watermark past
  // these offsets) finds the waiters queued, so none waits for the next housekeeping pass.
  if (!waiters.empty()) {
    std::lock_guard lk(shared_->mu);
    shared_->waiters.insert(shared_->waiters.end(), waiters.begin(), waiters.end());
    waiters.clear();
  }
  // Release: a replicator thread that acquires `end` finds the bytes below it in the files.
  shared_->start.store(log.log_start_offset(), std::memory_order_release);
  shared_->end.store(log.log_end_offset(), std::memory_order_release);
  shared_->ready.store(true, std::memory_order_release);
  hub_->notify_data();
}

std::uint64_t LogPublisher::high_watermark() const noexcept {
  // Acquire: pairs with the replicator's release store.
  return shared_ ? shared_->high_watermark.load(std::memory_order_acquire) : 0;
}

void LogPublisher::published(const log::Log& log) {
  std::vector<ReplicaWaiter> none;
  published(log, none);
}

bool LogPublisher::replicating() const noexcept {
  // Relaxed: a hint; the replicator fails waiters itself when the in-sync set shrinks.
  return hub_ != nullptr && hub_->replicating.load(std::memory_order_relaxed);
}

}  // namespace shmbus::daemon
