#include "persistence_agent.hpp"

#include "common/paths.hpp"
#include "layout/region_layout.hpp"
#include "log.hpp"
#include "ring/futex.hpp"

#include <algorithm>
#include <filesystem>

namespace shmbus::daemon {

namespace {
// How long the agent sleeps with nothing to do: 1 ms while PERSISTENT traffic moved in the last
// 100 ms or a topic is logged (topic producers do not ring the doorbell), else 10 ms, as the
// janitor does: an idle daemon with queues must not wake 1000 times a second on a 2-core machine
// (measured: it cost the pinned queue ping-pong ~8 %). Durable sends ring the doorbell, so they
// never wait for the slice; an ACKED slot waits for it at most.
constexpr std::uint64_t kBusySliceNs = 1'000'000;
constexpr std::uint64_t kIdleSliceNs = 10'000'000;
constexpr std::uint64_t kBusyForNs = 100'000'000;
constexpr std::uint64_t kStatsEveryNs = 100'000'000;  // stat figures refreshed this often
constexpr int kBatchesPerPass = 4;                     // per destination, before the next one's turn
}  // namespace

PersistenceAgent::PersistenceAgent(layout::RegionHeader* region, PersistenceConfig cfg, ReplicationHub* hub)
    : region_(region), cfg_(std::move(cfg)), hub_(hub) {}

PersistenceAgent::~PersistenceAgent() { stop(); }

void PersistenceAgent::start() {
  thread_ = std::thread([this] { run(); });
}

void PersistenceAgent::stop() {
  if (!thread_.joinable()) return;
  // Release: the loop's acquire load sees it, then makes its final pass.
  stop_.store(true, std::memory_order_release);
  // Wake it if parked (the doorbell is its futex).
  region_->persist_doorbell.fetch_add(1, std::memory_order_release);
  ring::futex_wake_all(region_->persist_doorbell);
  thread_.join();
}

void PersistenceAgent::post(PersistCommand c) {
  inbox_.enqueue(std::move(c));
  region_->persist_doorbell.fetch_add(1, std::memory_order_release);
  ring::futex_wake_all(region_->persist_doorbell);
}

std::vector<StoredQueue> PersistenceAgent::stored_queues(const std::string& data_dir) {
  std::vector<StoredQueue> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(data_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("queue.", 0) != 0) continue;
    StoredQueue s;
    s.name = n.substr(6);
    if (s.meta.load(e.path().string())) out.push_back(std::move(s));
    else warn("data directory " + e.path().string() + " has no readable queue.meta: ignored");
  }
  return out;
}

void PersistenceAgent::handle(PersistCommand& c) {
  if (auto* t = std::get_if<PersistTopic>(&c)) {
    auto st = std::make_unique<TopicStore>(t->dest_id, t->name, topic_dir(cfg_.data_dir, t->name), t->ring, t->entry,
                                           t->keep, cfg_.fsync, cfg_.topics, cfg_.log, t->figures);
    st->set_hub(hub_);
    st->open();
    topics_[t->dest_id].store = std::move(st);
    return;
  }
  if (auto* u = std::get_if<UnpersistTopic>(&c)) {
    if (auto it = topics_.find(u->dest_id); it != topics_.end()) {
      const std::string dir = it->second.store->dir();
      it->second.store->maybe_flush(common::mono_ns(), true);
      topics_.erase(it);
      std::error_code ec;
      if (u->delete_log) std::filesystem::remove_all(dir, ec);
    }
    return;
  }
  if (auto* rs = std::get_if<ResolveStart>(&c)) {
    auto it = topics_.find(rs->dest_id);
    rs->answer->set_value(it == topics_.end() ? 0 : it->second.store->log_up_to(rs->ring_tail));
    return;
  }
  if (auto* m = std::get_if<TopicMinPosition>(&c)) {
    if (auto it = topics_.find(m->dest_id); it != topics_.end()) it->second.min_position = m->position;
    return;
  }
  if (auto* p = std::get_if<PersistQueue>(&c)) {
    FsyncPolicy policy = cfg_.fsync;
    if (!p->fsync.empty() && !FsyncPolicy::parse(p->fsync, policy))
      warn("queue://" + p->name + ": fsync policy '" + p->fsync + "' not understood; using the daemon's");
    auto st = std::make_unique<QueueStore>(p->dest_id, p->name, queue_dir(cfg_.data_dir, p->name), p->q, p->keep,
                                           policy, cfg_.log);
    st->set_fsync_spec(p->fsync);
    st->set_hub(hub_);
    st->open_existing();
    stores_[p->dest_id] = std::move(st);
    return;
  }
  const auto id = std::get<UnpersistQueue>(c).dest_id;
  if (auto it = stores_.find(id); it != stores_.end()) {
    const std::uint64_t now = common::mono_ns();
    it->second->drain(now);
    it->second->maybe_snapshot(now, true);
    stores_.erase(it);
  }
}

bool PersistenceAgent::round(bool final_pass) {
  const std::uint64_t now = common::mono_ns();
  bool work = false;
  // A few batches per destination per pass (or until its ring is empty, or the disk refuses):
  // under sustained load no destination starves the others, and every pass reaches the flush that
  // durable senders wait for.
  for (auto& [id, s] : stores_) {
    for (int b = 0; b < kBatchesPerPass && s->drain(now) != 0; ++b) work = true;
  }
  for (auto& [id, t] : topics_) {
    for (int b = 0; b < kBatchesPerPass && t.store->drain(now) != 0; ++b) work = true;
    t.store->maybe_flush(now, final_pass);
  }
  if (now - last_maintain_ns_ >= 1'000'000'000ULL) {  // retention and compaction, once a second at most
    last_maintain_ns_ = now;
    for (auto& [id, t] : topics_) t.store->maintain(now, t.min_position);
  }
  // A second pass for the settlements deferred one round (dead letters), then flush and load.
  for (auto& [id, s] : stores_) {
    if (s->drain(now) != 0) work = true;
    s->maybe_flush(now, final_pass);
    if (s->release_committed() != 0) work = true;
    if (s->load_backlog(now) != 0) work = true;
    s->maybe_snapshot(now, final_pass);
  }
  if (work || final_pass || now - last_stats_ns_ >= kStatsEveryNs) {
    for (auto& [id, s] : stores_) s->publish_stats();
    for (auto& [id, t] : topics_) t.store->publish_stats();
    last_stats_ns_ = now;
  }
  return work;
}

void PersistenceAgent::park(std::uint64_t now) {
  const bool busy = !topics_.empty() || now - last_work_ns_ < kBusyForNs;
  std::uint64_t until = now + (busy ? kBusySliceNs : kIdleSliceNs);
  for (auto& [id, s] : stores_) until = std::min(until, std::max(now, s->next_flush_ns()));
  for (auto& [id, t] : topics_) until = std::min(until, std::max(now, t.store->next_flush_ns()));
  if (until <= now) return;
  std::atomic<std::uint32_t> parked{0};
  // The parker's half of the doorbell handshake (durable sends ring it after their push).
  ring::park_once(region_->persist_doorbell, region_->persist_waiters, parked, until - now, [&] {
    if (stop_.load(std::memory_order_acquire) || inbox_.size_approx() != 0) return false;
    return std::all_of(stores_.begin(), stores_.end(), [](const auto& kv) {
             return kv.second->ring().persist_ring().looks_empty(std::memory_order_seq_cst);
           }) &&
           std::none_of(topics_.begin(), topics_.end(), [](const auto& kv) { return kv.second.store->ring_ready(); });
  });
}

void PersistenceAgent::run() {
  PersistCommand c;
  for (;;) {
    while (inbox_.try_dequeue(c)) handle(c);
    // Acquire: pairs with stop()'s release store.
    if (stop_.load(std::memory_order_acquire)) break;
    if (round(false)) last_work_ns_ = common::mono_ns();
    else park(common::mono_ns());
  }
  while (inbox_.try_dequeue(c)) handle(c);
  // Everything the rings still hold, then the final flush and snapshots.
  for (int i = 0; i < 100'000 && round(false); ++i) {
  }
  round(true);
  stores_.clear();
  topics_.clear();
}

}  // namespace shmbus::daemon
