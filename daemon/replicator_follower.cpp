// The follower's side of replication: dial the leader, prove the secret, truncate where the
// epochs diverge (KIP-101), then fetch and append the leader's batches byte for byte.
#include "common/paths.hpp"
#include "log.hpp"
#include "repl_net.hpp"
#include "replicator.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace shmbus::daemon {

using repl::NodeRole;

void Replicator::open_local_logs() {
  std::lock_guard lk(mu_);
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator(cfg_.data_dir, ec)) {
    const std::string n = d.path().filename().string();
    if (d.is_directory() && repl::valid_log_name(n)) (void)local(n, false);
  }
}

void Replicator::close_local_logs() {
  std::lock_guard lk(mu_);
  for (auto& [n, f] : followed_)
    if (f.log) (void)f.log->flush(log::Log::Checkpoint::kNow);
  followed_.clear();
}

Replicator::FollowedLog* Replicator::local(const std::string& name, bool create) {
  if (auto it = followed_.find(name); it != followed_.end()) return &it->second;
  const std::string dir = cfg_.data_dir + "/" + name;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    if (!create) return nullptr;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw repl::ReplError("cannot create " + dir + ": " + ec.message());
  }
  // Snapshots are the leader's (or this daemon's own from when it led): a follower's history may be
  // cut back by truncation, so they are not trusted; a promoted follower replays its log instead.
  for (const auto& f : std::filesystem::directory_iterator(dir, ec))
    if (f.path().extension() == ".snapshot") std::filesystem::remove(f.path(), ec);
  log::RecoveryReport rep;
  log::LogError err;
  auto lg = log::Log::open(dir, cfg_.log, &rep, err);
  if (!lg) throw repl::ReplError("cannot open the follower's log " + dir + ": " + err.what);
  if (rep.truncated)
    warn("replication: recovery cut " + name + " at offset " + std::to_string(rep.truncated_at_offset) + " (" + rep.reason +
         "); the leader sends it again");
  FollowedLog& f = followed_[name];
  f.log = std::move(lg);
  return &f;
}

void Replicator::drop_local(const std::string& name) {
  followed_.erase(name);
  std::error_code ec;
  std::filesystem::remove_all(cfg_.data_dir + "/" + name, ec);
  info("replication: " + name + " is gone from the leader: removed here too");
}

std::string Replicator::find_leader() {
  std::vector<std::string> members;
  std::uint32_t mine = 0;
  {
    std::lock_guard lk(mu_);
    members = state_.members;
    mine = state_.epoch;
  }
  std::string best;
  std::uint32_t best_epoch = mine;
  for (const auto& m : members) {
    if (m == cfg_.listen) continue;
    repl::Welcome w;
    std::string err;
    if (!probe(m, w, err)) continue;
    if (w.role == NodeRole::Leader && w.epoch >= best_epoch) {
      best_epoch = w.epoch;
      best = m;
    }
  }
  return best;
}

void Replicator::follow_loop() {
  std::string target;
  {
    std::lock_guard lk(mu_);
    target = state_.leader;
  }
  int failures = 0;
  while (following()) {
    if (!cfg_.zookeeper.empty()) {
      // ZooKeeper mode: follow whom the election names, nobody else.
      std::unique_lock lk(mu_);
      stop_cv_.wait(lk, [&] {
        return !following() || (!zk_leader_.empty() && zk_leader_ != cfg_.listen);
      });
      if (!following()) break;
      target = zk_leader_;
    }
    follow_target_.clear();
    try {
      follow_once(target);
      failures = 0;
    } catch (const repl::ReplError& e) {
      if (!following()) break;
      if (failures++ % 10 == 0) warn("replication: following " + target + ": " + e.what());
    }
    {
      std::lock_guard lk(mu_);
      follower_connected_ = false;
    }
    if (!following()) break;
    if (!follow_target_.empty() && cfg_.zookeeper.empty()) {
      target = follow_target_;  // redirected by a non-leader
      continue;
    }
    if (!cfg_.zookeeper.empty()) {
      std::unique_lock lk(mu_);
      stop_cv_.wait_for(lk, std::chrono::milliseconds(std::min(1000, 100 * (failures + 1))),
                        [&] { return !following() || zk_leader_ != target; });
      continue;
    }
    // The leader is unreachable or refused us: is someone else leading now (a promotion)?
    if (const std::string other = find_leader(); !other.empty() && other != target) {
      info("replication: " + other + " leads now; following it");
      target = other;
      continue;
    }
    std::unique_lock lk(mu_);
    stop_cv_.wait_for(lk, std::chrono::milliseconds(std::min(1000, 100 * (failures + 1))),
                      [&] { return !following(); });
  }
}

void Replicator::follow_once(const std::string& addr) {
  std::string err;
  control::Fd fd = repl::connect_tcp(addr, std::chrono::milliseconds(1000), err);
  if (!fd) throw repl::ReplError(err);
  repl::Conn c(std::move(fd));
  struct Registration {
    Replicator& r;
    Registration(Replicator& rr, repl::Conn* c) : r(rr) {
      std::lock_guard lk(r.mu_);
      r.follower_conn_ = c;
    }
    ~Registration() {
      std::lock_guard lk(r.mu_);
      r.follower_conn_ = nullptr;
    }
  } reg(*this, &c);
  if (!following()) return;

  const auto on_refuse = [&](const repl::Refuse& r) { warn("replication: " + addr + " refused this follower: " + r.reason); };
  repl::Welcome w;
  dial_handshake(c, repl::Intent::Follow, w, on_refuse);
  if (w.role != NodeRole::Leader) {
    if (!w.leader.empty() && w.leader != addr && w.leader != cfg_.listen) follow_target_ = w.leader;
    throw repl::ReplError(addr + " does not lead (it is " + repl::to_string(w.role) + ")");
  }
  {
    std::lock_guard lk(mu_);
    if (w.epoch < state_.epoch) {
      c.send(repl::encode(repl::Refuse{state_.epoch, state_.leader,
                                       "your leader epoch " + std::to_string(w.epoch) + " is older than this follower's " +
                                           std::to_string(state_.epoch) + " (a newer leader was elected)"}));
      throw repl::ReplError(addr + " leads with a stale epoch " + std::to_string(w.epoch) + ": refused");
    }
    state_.epoch = w.epoch;
    state_.leader = addr;
    if (!w.replicas.empty()) state_.members = w.replicas;
    save_state();
    publish_region();
    follower_connected_ = true;
  }
  info("replication: following " + addr + " at epoch " + std::to_string(w.epoch));
  truncate_after_epochs(c);

  repl::FetchResponseView view;
  while (following()) {
    repl::Fetch f;
    f.max_wait_ms = cfg_.fetch_max_wait_ms;
    f.max_bytes = cfg_.fetch_max_bytes;
    {
      std::lock_guard lk(mu_);
      for (const auto& [n, fl] : followed_)
        if (fl.log) f.entries.push_back({n, parked_.contains(n) ? repl::kParked : fl.log->log_end_offset()});
    }
    c.send(repl::encode(f));
    c.expect(repl::Type::FetchResponse, std::chrono::milliseconds(cfg_.fetch_max_wait_ms + 10'000), on_refuse);
    repl::decode(c.payload(), view);
    std::lock_guard lk(mu_);
    apply(view);
    const std::uint64_t now = common::mono_ns();
    if (cfg_.follower_fsync_ms != 0 && now - last_follower_flush_ns_ >= std::uint64_t{cfg_.follower_fsync_ms} * 1'000'000) {
      last_follower_flush_ns_ = now;
      for (auto& [n, fl] : followed_) {
        if (!fl.dirty || !fl.log) continue;
        if (auto ferr = fl.log->flush(); ferr) warn("replication: " + n + ": fsync failed: " + ferr.what);
        fl.dirty = false;
      }
    }
  }
}

void Replicator::truncate_after_epochs(repl::Conn& c) {
  repl::EpochQuery q;
  {
    std::lock_guard lk(mu_);
    parked_.clear();
    for (const auto& [n, f] : followed_) {
      const auto ep = f.log->epochs();
      q.entries.push_back({n, ep.empty() ? 0U : ep.back().first});
    }
  }
  c.send(repl::encode(q));
  c.expect(repl::Type::EpochAnswer, std::chrono::milliseconds(10'000), [](const repl::Refuse&) {});
  repl::EpochAnswer a;
  repl::decode(c.payload(), a);
  std::lock_guard lk(mu_);
  for (const auto& e : a.entries) {
    auto it = followed_.find(e.log);
    if (it == followed_.end()) continue;
    if (e.status == 2) {
      drop_local(e.log);
      continue;
    }
    if (e.status == 3) {
      warn("replication: the leader does not serve " + e.log + " now: it is left as it is until the next session");
      parked_.insert(e.log);
      continue;
    }
    log::Log& lg = *it->second.log;
    const std::uint64_t end = lg.log_end_offset();
    std::uint64_t to = end;
    if (e.status == 1) {
      to = lg.log_start_offset();  // nothing in common that the epochs can show: fetch it all again
    } else {
      // KIP-101 (with KIP-279's refinement): the end of the last epoch both sides have.
      const auto mine = log::end_offset_for_epoch(lg.epochs(), e.epoch, end);
      to = std::min({e.end_offset, mine.known ? mine.end_offset : lg.log_start_offset(), end});
    }
    if (to < end) {
      warn("replication: " + e.log + " diverged from the leader after offset " + std::to_string(to) + " (epoch " +
           std::to_string(e.epoch) + "): truncating " + std::to_string(end - to) + " records");
      if (auto err = lg.truncate_to(to); err) throw repl::ReplError(e.log + ": truncation failed: " + err.what);
    }
  }
}

void Replicator::apply(const repl::FetchResponseView& r) {
  // Files first: a log never exists here without the queue.meta/topic.meta it is restored with.
  for (const auto& file : r.files) write_file(file);
  for (std::size_t i = 0; i < r.entries.size(); ++i) {
    const repl::FetchEntry& e = r.entries[i];
    if (parked_.contains(e.log)) continue;  // the leader should not send it; never mix it in
    if (e.status == repl::FetchEntry::kNoSuchLog) {
      if (followed_.contains(e.log)) drop_local(e.log);
      continue;
    }
    FollowedLog* f = local(e.log, true);
    f->leader_hw = e.high_watermark;
    f->leader_end = e.log_end;
    log::Log& lg = *f->log;
    const std::uint64_t end = lg.log_end_offset();
    if (e.status == repl::FetchEntry::kOutOfRange || (r.data[i].size() != 0 && end < e.log_start)) {
      if (end < e.log_start) {
        if (auto err = lg.reset_to(e.log_start); err) throw repl::ReplError(e.log + ": " + err.what);
      } else if (end > e.log_end) {
        warn("replication: " + e.log + " is ahead of the leader (" + std::to_string(end) + " > " +
             std::to_string(e.log_end) + "): truncating");
        if (auto err = lg.truncate_to(e.log_end); err) throw repl::ReplError(e.log + ": " + err.what);
      }
      if (e.status == repl::FetchEntry::kOutOfRange) continue;
    }
    if (!r.data[i].empty()) {
      std::uint64_t appended = 0;
      const auto data = std::as_bytes(std::span<const std::uint8_t>(r.data[i]));
      if (auto err = lg.append_raw(data, appended); err)
        throw repl::ReplError(e.log + ": batches refused, the log is unchanged: " + err.what);
      f->dirty = true;
      fetched_bytes_ += r.data[i].size();
    }
    if (e.log_start > lg.log_start_offset()) lg.delete_segments_below(e.log_start);
  }
}

void Replicator::write_file(const repl::MetaFile& f) {
  const std::string path = cfg_.data_dir + "/" + f.path;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::string cur((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (cur == f.content) return;
    }
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(f.content.data(), static_cast<std::streamsize>(f.content.size()));
    if (!out) {
      warn("replication: cannot write " + path);
      return;
    }
  }
  std::filesystem::rename(tmp, path, ec);
}

}  // namespace shmbus::daemon
