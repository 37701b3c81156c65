#include "persistence_agent.hpp"

#include "common/paths.hpp"
#include "layout/region_layout.hpp"
#include "log.hpp"
#include "ring/futex.hpp"

#include <algorithm>
#include <filesystem>

namespace shmbus::daemon {

namespace {
constexpr std::uint64_t kIdleSliceNs = 1'000'000;     // ACKED slots wait at most this long to be freed
constexpr std::uint64_t kStatsEveryNs = 100'000'000;  // stat figures refreshed this often
}  // namespace

PersistenceAgent::PersistenceAgent(layout::RegionHeader* region, PersistenceConfig cfg)
    : region_(region), cfg_(std::move(cfg)) {}

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
  if (auto* p = std::get_if<PersistQueue>(&c)) {
    auto st = std::make_unique<QueueStore>(p->dest_id, p->name, queue_dir(cfg_.data_dir, p->name), p->q, p->keep,
                                           cfg_.fsync, cfg_.log);
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
  for (auto& [id, s] : stores_) {
    while (s->drain(now) != 0) work = true;  // until the ring is empty (or the disk refuses)
  }
  // A second pass for the settlements deferred one round (dead letters), then flush and load.
  for (auto& [id, s] : stores_) {
    if (s->drain(now) != 0) work = true;
    s->maybe_flush(now, final_pass);
    if (s->load_backlog(now) != 0) work = true;
    s->maybe_snapshot(now, final_pass);
  }
  if (work || final_pass || now - last_stats_ns_ >= kStatsEveryNs) {
    for (auto& [id, s] : stores_) s->publish_stats();
    last_stats_ns_ = now;
  }
  return work;
}

void PersistenceAgent::park(std::uint64_t now) {
  std::uint64_t until = now + kIdleSliceNs;
  for (auto& [id, s] : stores_) until = std::min(until, std::max(now, s->next_flush_ns()));
  if (until <= now) return;
  std::atomic<std::uint32_t> parked{0};
  // The parker's half of the doorbell handshake (durable sends ring it after their push).
  ring::park_once(region_->persist_doorbell, region_->persist_waiters, parked, until - now, [&] {
    if (stop_.load(std::memory_order_acquire) || inbox_.size_approx() != 0) return false;
    return std::all_of(stores_.begin(), stores_.end(), [](const auto& kv) {
      return kv.second->ring().persist_ring().looks_empty(std::memory_order_seq_cst);
    });
  });
}

void PersistenceAgent::run() {
  PersistCommand c;
  for (;;) {
    while (inbox_.try_dequeue(c)) handle(c);
    // Acquire: pairs with stop()'s release store.
    if (stop_.load(std::memory_order_acquire)) break;
    if (!round(false)) park(common::mono_ns());
  }
  while (inbox_.try_dequeue(c)) handle(c);
  round(true);
  stores_.clear();
}

}  // namespace shmbus::daemon
