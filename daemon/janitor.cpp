#include "janitor.hpp"

#include "common/paths.hpp"
#include "log.hpp"
#include "shm_store.hpp"

namespace shmbus::daemon {

Janitor::Janitor(layout::RegionHeader* region, JanitorConfig cfg,
                 moodycamel::ConcurrentQueue<ConductorCommand>& to_conductor, std::function<void()> wake_conductor)
    : region_(region),
      cfg_(cfg),
      to_conductor_(to_conductor),
      wake_conductor_(std::move(wake_conductor)),
      queues_(
          [this](std::uint32_t dest_id) {
            to_conductor_.enqueue(CreateDlq{dest_id});
            wake_conductor_();
          },
          common::mono_ns()) {}

Janitor::~Janitor() { stop(); }

void Janitor::start() { thread_ = std::thread([this] { run(); }); }

void Janitor::stop() {
  // Relaxed: the flag is polled every tick; join() below is the synchronisation.
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
}

bool Janitor::owner_dead(std::uint32_t owner) const noexcept {
  if (owner >= region_->max_clients) return true;
  // Acquire: pairs with the conductor's release store of the entry state.
  return layout::client_table(region_)[owner].state.load(std::memory_order_acquire) !=
         static_cast<std::uint32_t>(layout::ClientState::Attached);
}

void Janitor::handle(JanitorCommand& c) {
  if (auto* t = std::get_if<TopicCreated>(&c)) {
    ring::TopicRing ring(t->shm->base());
    topics_.push_back(Topic{t->dest_id, t->uri, t->shm, ring::TopicRepairer(ring)});
    return;
  }
  if (auto* r = std::get_if<TopicRemoved>(&c)) {
    std::erase_if(topics_, [&](const Topic& t) { return t.dest_id == r->dest_id; });
    queues_.remove(r->dest_id);
    return;
  }
  if (auto* q = std::get_if<QueueCreated>(&c)) {
    queues_.add(q->dest_id, q->uri, ring::QueueRing(q->shm->base()), q->shm);
    return;
  }
  if (auto* d = std::get_if<DlqReady>(&c)) {
    queues_.set_dlq(d->dest_id, d->dlq_id);
    return;
  }
  if (auto* e = std::get_if<QueueEntryClosed>(&c)) {
    const auto r = queues_.release(e->dest_id, e->producer, e->entry);
    if (r.redelivered + r.freed + r.reannounced + r.ring_repairs != 0)
      info("queue " + std::to_string(e->dest_id) + (e->producer ? " producer" : " consumer") + " entry " +
           std::to_string(e->entry) + " released: " + std::to_string(r.redelivered) + " redelivered, " +
           std::to_string(r.freed) + " unsent freed, " + std::to_string(r.reannounced) + " re-announced, " +
           std::to_string(r.ring_repairs) + " ring cell(s) repaired");
    to_conductor_.enqueue(QueueEntryReleased{e->dest_id, e->producer, e->entry});
    wake_conductor_();
    return;
  }
  const auto dead = std::get<ClientDied>(c).client_index;
  const auto is_dead = [this](std::uint32_t o) { return owner_dead(o); };
  for (auto& t : topics_) {
    // Pads every slot the dead client was writing (its index is still marked dead, so the
    // writing-owner test is exact) and every claim no live producer holds.
    if (const auto r = t.repairer.sweep(is_dead); r.padded != 0)
      info("repaired " + std::to_string(r.padded) + " slot(s) of " + t.uri + " left unpublished by dead client " +
           std::to_string(dead));
  }
  to_conductor_.enqueue(ClientReleased{dead});
  wake_conductor_();
}

void Janitor::scan_all() {
  const auto is_dead = [this](std::uint32_t o) { return owner_dead(o); };
  for (auto& t : topics_) {
    if (const auto n = t.repairer.tick(is_dead))
      info("repaired " + std::to_string(n) + " hole(s) in " + t.uri + " (a producer died between claim and commit)");
  }
}

std::uint64_t Janitor::next_sleep_ns() const noexcept {
  std::uint64_t sleep = cfg_.tick_ns;  // topic repair cadence
  if (queues_.queues() == 0) return sleep;
  const std::uint64_t now = common::mono_ns();
  // Fast ticks while queues are busy (rollbacks, delayed sends and expiry reach the daemon through
  // the agent rings, which it polls; ack timeouts are timed from the tick that sees a delivery);
  // after kQueueIdleNs without activity, the topic cadence. Never past the next timer.
  if (now - queues_.last_activity_ns() < cfg_.queue_idle_ns) sleep = cfg_.queue_tick_ns;
  const std::uint64_t next = queues_.next_timer_ns();
  if (next != UINT64_MAX) sleep = std::min(sleep, next > now ? std::max<std::uint64_t>(next - now, 100'000) : cfg_.queue_tick_ns);
  return sleep;
}

void Janitor::run() {
  // Relaxed: see stop().
  while (!stop_.load(std::memory_order_relaxed)) {
    const auto tick = std::chrono::nanoseconds(next_sleep_ns());
    JanitorCommand cmd;
    if (inbox_.wait_dequeue_timed(cmd, std::chrono::duration_cast<std::chrono::microseconds>(tick))) {
      handle(cmd);
      while (inbox_.try_dequeue(cmd)) handle(cmd);
    }
    scan_all();
    queues_.tick(common::mono_ns());
    // Relaxed: the heartbeat is informational (stat, debugging).
    region_->heartbeat_ns.store(common::mono_ns(), std::memory_order_relaxed);
  }
}

}  // namespace shmbus::daemon
