// Automatic failover (docs/zookeeper.md): ZooKeeper's election decides who leads; the replicator
// follows its verdicts -- promote when elected, follow the elected leader, stop leading the moment
// the session or the leadership is lost -- and the leader publishes its in-sync set there, so that
// only an in-sync follower can be elected next.
#include "log.hpp"
#include "replicator.hpp"

namespace shmbus::daemon {

using repl::NodeRole;

void Replicator::start_zk() {
  ZkConfig zc;
  zc.connect = cfg_.zookeeper;
  zc.root = cfg_.zk_root;
  zc.self = cfg_.listen;
  zc.session_timeout_ms = cfg_.zk_session_ms;
  zk_ = std::make_unique<ZkElection>(zc, [this](const ZkView& v) { on_zk_view(v); });
  std::string err;
  if (!zk_->start(err)) throw std::runtime_error("ZooKeeper at " + cfg_.zookeeper + ": " + err);
}

void Replicator::on_zk_view(const ZkView& v) {
  if (stop_.load(std::memory_order_acquire)) return;
  const NodeRole r = role();
  if (v.role == ZkView::Role::Leader) {
    if (r != NodeRole::Follower) return;
    std::uint32_t epoch = 0;
    std::string err;
    // ZooKeeper's epoch counter (unique per leadership) in the counter bits.
    if (!promote_to(v.epoch << kEpochNodeBits, epoch, err)) {
      error("replication: elected by ZooKeeper but cannot take over: " + err);
      return;
    }
    {
      std::lock_guard lk(mu_);
      ++isr_version_;  // publish the (new) in-sync set soon
    }
    if (on_promoted_) on_promoted_(epoch);
    return;
  }
  if (v.role == ZkView::Role::Follower) {
    if (r == NodeRole::Leader) {
      // Someone else was elected while we led (our session was lost and came back): stop at once.
      step_down("ZooKeeper elected " + v.leader + " (epoch " + std::to_string(v.epoch) + ")", v.epoch, v.leader);
      return;
    }
    std::lock_guard lk(mu_);
    if (zk_leader_ != v.leader) {
      zk_leader_ = v.leader;
      if (follower_conn_ != nullptr) follower_conn_->shutdown();  // reconnect to the elected one
      stop_cv_.notify_all();
    }
    return;
  }
  // Unknown: no session, or no leader right now. A leader that cannot prove it still leads stops.
  if (r == NodeRole::Leader) step_down("the ZooKeeper session or the leadership was lost", 0, "");
}

void Replicator::publish_isr_to_zk() {
  // Called by the housekeeper with mu_ held; the ZooKeeper call is made without it.
  if (!zk_ || state_.role != NodeRole::Leader || isr_version_ == isr_published_) return;
  std::vector<std::string> isr{cfg_.listen};
  for (const auto& [a, r] : replicas_)
    if (r.in_sync) isr.push_back(a);
  const std::uint64_t version = isr_version_;
  mu_.unlock();
  std::string err;
  const bool ok = zk_->publish_isr(isr, err);
  mu_.lock();
  if (ok) isr_published_ = version;
  else warn("replication: cannot publish the in-sync set to ZooKeeper: " + err);
}

}  // namespace shmbus::daemon
