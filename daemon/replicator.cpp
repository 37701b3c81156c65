// The replicator's frame of reference: role and epoch, the state file, the listener and the
// handshake, probes, promotion and stat. Leader sessions: replicator_leader.cpp; the follower's
// fetch loop: replicator_follower.cpp.
#include "replicator.hpp"

#include "common/paths.hpp"
#include "layout/region_layout.hpp"
#include "log.hpp"
#include "repl_net.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <poll.h>
#include <sstream>
#include <sys/socket.h>

namespace shmbus::daemon {

using repl::NodeRole;

namespace {
constexpr auto kHandshakeTimeout = std::chrono::milliseconds(5000);

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
const std::string kLeaderLabel = "shmbus-leader";
const std::string kFollowerLabel = "shmbus-follower";
}  // namespace

bool ReplicationState::load(const std::string& file) {
  std::ifstream in(file);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string k, v;
    ls >> k >> v;
    if (k == "role") role = v == "leader" ? NodeRole::Leader : v == "follower" ? NodeRole::Follower : v == "fenced" ? NodeRole::Fenced : NodeRole::Standalone;
    else if (k == "epoch") epoch = static_cast<std::uint32_t>(std::strtoul(v.c_str(), nullptr, 10));
    else if (k == "leader") leader = v;
    else if (k == "member" && !v.empty()) members.push_back(v);
  }
  return true;
}

bool ReplicationState::save(const std::string& file) const {
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "role " << repl::to_string(role) << "\nepoch " << epoch << "\nleader " << leader << "\n";
    for (const auto& m : members) out << "member " << m << "\n";
    out.flush();
    if (!out) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  return !ec;
}

Replicator::Replicator(ReplicationConfig cfg, ReplicationHub& hub, layout::RegionHeader* region)
    : cfg_(std::move(cfg)), hub_(hub), region_(region) {}

Replicator::~Replicator() { stop(); }

void Replicator::save_state() {
  if (!state_.save(cfg_.state_file)) error("cannot write " + cfg_.state_file + ": the role and epoch may be lost at restart");
}

void Replicator::set_role(NodeRole r, std::uint32_t epoch) {
  state_.role = r;
  state_.epoch = epoch;
  // Relaxed: the agent reads the epoch when it opens logs, which happens after this (promotion
  // posts the queues to it afterwards, through its queue: that is the ordering).
  hub_.epoch.store(r == NodeRole::Leader ? epoch : 0, std::memory_order_relaxed);
  hub_.replicating.store(r == NodeRole::Leader, std::memory_order_relaxed);
  // Release: the role is read with acquire by other threads.
  role_.store(r, std::memory_order_release);
}

void Replicator::publish_region() {
  // Relaxed: hints for producers (see region_layout.hpp).
  region_->repl_role.store(static_cast<std::uint32_t>(state_.role), std::memory_order_relaxed);
  region_->repl_epoch.store(state_.epoch, std::memory_order_relaxed);
  const bool leading = state_.role == NodeRole::Leader;
  region_->repl_isr.store(leading ? isr_size_locked() : 0, std::memory_order_relaxed);
  region_->repl_min_insync.store(leading ? min_insync_ : 0, std::memory_order_relaxed);
}

NodeRole Replicator::start() {
  ReplicationState saved;
  const bool had_state = saved.load(cfg_.state_file);
  listen_fd_ = repl::listen_tcp(cfg_.listen);
  std::unique_lock lk(mu_);
  state_ = saved;
  if (!cfg_.zookeeper.empty()) {
    // ZooKeeper decides: start as a follower of nobody; the election names the leader (or us).
    state_.leader.clear();
    set_role(NodeRole::Follower, saved.epoch);
    if (std::find(state_.members.begin(), state_.members.end(), cfg_.listen) == state_.members.end())
      state_.members.push_back(cfg_.listen);
  } else if (!cfg_.replicate_to.empty() || (had_state && saved.role == NodeRole::Leader)) {
    // Configured to lead, or it led when it stopped (a promoted follower restarted with its old
    // --follow arguments keeps leading). A peer that knows a newer epoch means another daemon was
    // promoted while this one was away: fenced, it follows that leader instead.
    std::vector<std::string> peers = cfg_.replicate_to;
    if (peers.empty())
      for (const auto& m : saved.members)
        if (m != cfg_.listen) peers.push_back(m);
    if (peers.empty() && !cfg_.follow.empty()) peers.push_back(cfg_.follow);
    std::string newer_leader;
    std::uint32_t newest = saved.epoch, highest_seen = saved.epoch;
    lk.unlock();
    for (const auto& peer : peers) {
      repl::Welcome w;
      std::string err;
      if (!probe(peer, w, err)) {
        info("replication: probe of " + peer + ": " + err);
        continue;
      }
      highest_seen = std::max(highest_seen, w.epoch);
      const std::string lead = w.role == NodeRole::Leader ? peer : w.leader;
      // A peer that leads now with an epoch at least ours, or knows of a newer leadership: follow.
      const bool live_leader = w.role == NodeRole::Leader && w.epoch >= newest;
      if ((live_leader || w.epoch > newest) && !lead.empty() && lead != cfg_.listen) {
        newest = w.epoch;
        newer_leader = lead;
      }
    }
    lk.lock();
    state_.members.clear();
    state_.members.push_back(cfg_.listen);
    for (const auto& p : peers) state_.members.push_back(p);
    if (!newer_leader.empty()) {
      warn("replication: " + newer_leader + " leads with epoch " + std::to_string(newest) + ", newer than this daemon's " +
           std::to_string(saved.epoch) + ": fenced, this daemon follows it (--replicate-to ignored)");
      state_.leader = newer_leader;
      set_role(NodeRole::Follower, newest);
    } else if (had_state && (saved.role == NodeRole::Follower || saved.role == NodeRole::Fenced)) {
      // Demoted or fenced before: another daemon leads (or led) with an epoch at least ours. It
      // must not take over with data the others may lack: it follows, and finds the leader by
      // probing if the one it knew is gone.
      warn("replication: this daemon was " + std::string(saved.role == NodeRole::Fenced ? "fenced" : "demoted") +
           " (leader " + (saved.leader.empty() ? std::string("unknown") : saved.leader) + ", epoch " +
           std::to_string(saved.epoch) + "): it stays a follower; run `shmbus promote` to make it lead");
      set_role(NodeRole::Follower, saved.epoch);
    } else {
      // Every start as leader is a new epoch: records this leadership appends are told apart
      // from any the previous one wrote and a follower copied but this disk lost.
      state_.leader = cfg_.listen;
      set_role(NodeRole::Leader, next_epoch(highest_seen));
    }
  } else {
    state_.leader = had_state && (saved.role == NodeRole::Follower || saved.role == NodeRole::Fenced) &&
                            !saved.leader.empty() && saved.epoch > 0
                        ? saved.leader
                        : cfg_.follow;
    set_role(NodeRole::Follower, saved.epoch);
    if (state_.members.empty()) state_.members = {cfg_.follow, cfg_.listen};
  }
  adopt_members_locked();
  save_state();
  publish_region();
  const NodeRole r = state_.role;
  info(std::string("replication: ") + repl::to_string(r) + " at epoch " + std::to_string(state_.epoch) + ", listening on " +
       cfg_.listen + (r == NodeRole::Leader ? ", min in-sync " + std::to_string(min_insync_)
                                            : ", leader " + state_.leader));
  lk.unlock();
  if (r == NodeRole::Follower) {
    open_local_logs();
    follower_ = std::thread([this] { follow_loop(); });
  }
  listener_ = std::thread([this] { listen_loop(); });
  housekeeper_ = std::thread([this] { housekeeping_loop(); });
  if (!cfg_.zookeeper.empty()) start_zk();
  return r;
}

void Replicator::stop() {
  if (stop_.exchange(true, std::memory_order_acq_rel)) return;
  if (zk_) zk_->stop();  // leadership released at once (the ephemeral nodes go with the session)
  stop_cv_.notify_all();
  {
    std::lock_guard lk(mu_);
    if (follower_conn_ != nullptr) follower_conn_->shutdown();
  }
  if (listener_.joinable()) listener_.join();
  if (housekeeper_.joinable()) housekeeper_.join();
  if (follower_.joinable()) follower_.join();
  {
    std::lock_guard lk(sessions_mu_);
    for (auto* c : live_conns_) c->shutdown();
  }
  hub_.notify_data();
  std::list<Session> ts;
  {
    std::lock_guard lk(sessions_mu_);
    ts.swap(sessions_);
  }
  for (auto& t : ts)
    if (t.thread.joinable()) t.thread.join();
  close_local_logs();
}

void Replicator::listen_loop() {
  while (!stop_.load(std::memory_order_acquire)) {
    pollfd p{listen_fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    control::Fd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) continue;
    repl::tune(fd.get());
    std::lock_guard lk(sessions_mu_);
    // Finished sessions are reaped here, so the list does not grow with every probe.
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      // Acquire: pairs with the session's release store as its last act.
      if (it->done->load(std::memory_order_acquire)) {
        it->thread.join();
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    sessions_.push_back({std::thread([this, done, f = std::move(fd)]() mutable {
                           serve(std::move(f));
                           done->store(true, std::memory_order_release);
                         }),
                         done});
  }
}

void Replicator::serve(control::Fd fd) {
  repl::Conn c(std::move(fd));
  {
    std::lock_guard lk(sessions_mu_);
    live_conns_.push_back(&c);
  }
  std::string peer = "an unauthenticated peer";
  try {
    // Handshake, listener side: hello -> challenge -> auth -> welcome.
    c.expect(repl::Type::Hello, kHandshakeTimeout, [](const repl::Refuse&) {});
    repl::Hello h;
    repl::decode(c.payload(), h);
    peer = h.self + " (not authenticated yet)";
    repl::Challenge ch;
    repl::random_nonce(ch.nonce);
    repl::hmac(cfg_.secret, {bytes(kLeaderLabel), {h.nonce, repl::kNonceBytes}, {ch.nonce, repl::kNonceBytes}}, ch.mac);
    c.send(repl::encode(ch));
    c.expect(repl::Type::Auth, kHandshakeTimeout, [](const repl::Refuse&) {});
    repl::Auth a;
    repl::decode(c.payload(), a);
    std::uint8_t want[repl::kMacBytes];
    repl::hmac(cfg_.secret, {bytes(kFollowerLabel), {ch.nonce, repl::kNonceBytes}, {h.nonce, repl::kNonceBytes}, bytes(h.self)}, want);
    if (!repl::macs_equal(want, a.mac)) {
      c.send(repl::encode(repl::Refuse{0, "", "authentication failed: wrong shared secret (replication.secret)"}));
      throw repl::ReplError("authentication failed (wrong shared secret)");
    }
    peer = h.self;
    repl::Welcome w;
    bool lead = false;
    {
      std::lock_guard lk(mu_);
      w.role = state_.role;
      w.epoch = state_.epoch;
      w.leader = state_.role == NodeRole::Leader ? cfg_.listen : state_.leader;
      w.replicas = state_.members;
      lead = state_.role == NodeRole::Leader && h.intent == repl::Intent::Follow;
      if (lead && !cfg_.zookeeper.empty() && !replicas_.contains(h.self) && h.self != cfg_.listen) {
        // ZooKeeper mode: the replica set is whoever joins with the secret.
        replicas_[h.self].address = h.self;
        state_.members.push_back(h.self);
        save_state();
      }
      if (lead && !replicas_.contains(h.self)) {
        c.send(repl::encode(repl::Refuse{state_.epoch, cfg_.listen,
                                         h.self + " is not in this leader's replica set (--replicate-to)"}));
        throw repl::ReplError("not in the replica set");
      }
    }
    if (h.epoch > w.epoch && w.role == NodeRole::Leader) {
      // The dialer knows a newer leadership than ours: we are the stale one.
      fenced(h.epoch, "", h.self + " knows epoch " + std::to_string(h.epoch));
      c.send(repl::encode(repl::Refuse{w.epoch, "", "this daemon was fenced"}));
      throw repl::ReplError("fenced");
    }
    c.send(repl::encode(w));
    if (lead) lead_session(c, h.self);
  } catch (const repl::ReplError& e) {
    if (!stop_.load(std::memory_order_acquire)) warn("replication: connection from " + peer + " closed: " + e.what());
  } catch (const std::exception& e) {
    warn("replication: connection from " + peer + " failed: " + e.what());
  }
  std::lock_guard lk(sessions_mu_);
  live_conns_.remove(&c);
}

void Replicator::dial_handshake(repl::Conn& c, repl::Intent intent, repl::Welcome& out,
                                const std::function<void(const repl::Refuse&)>& on_refuse) {
  repl::Hello h;
  repl::random_nonce(h.nonce);
  h.intent = intent;
  {
    std::lock_guard lk(mu_);
    h.epoch = state_.epoch;
  }
  h.self = cfg_.listen;
  c.send(repl::encode(h));
  c.expect(repl::Type::Challenge, kHandshakeTimeout, on_refuse);
  repl::Challenge ch;
  repl::decode(c.payload(), ch);
  std::uint8_t want[repl::kMacBytes];
  repl::hmac(cfg_.secret, {bytes(kLeaderLabel), {h.nonce, repl::kNonceBytes}, {ch.nonce, repl::kNonceBytes}}, want);
  if (!repl::macs_equal(want, ch.mac)) {
    // Tell it why before hanging up: it logs it (a wrong secret on either side).
    c.send(repl::encode(repl::Refuse{0, "", "authentication failed: " + cfg_.listen +
                                                "'s shared secret (replication.secret) differs from yours"}));
    throw repl::ReplError("the peer does not know the shared secret (replication.secret differs)");
  }
  repl::Auth a;
  repl::hmac(cfg_.secret, {bytes(kFollowerLabel), {ch.nonce, repl::kNonceBytes}, {h.nonce, repl::kNonceBytes}, bytes(h.self)}, a.mac);
  c.send(repl::encode(a));
  c.expect(repl::Type::Welcome, kHandshakeTimeout, on_refuse);
  repl::decode(c.payload(), out);
}

bool Replicator::probe(const std::string& addr, repl::Welcome& out, std::string& err) {
  control::Fd fd = repl::connect_tcp(addr, std::chrono::milliseconds(1000), err);
  if (!fd) return false;
  repl::Conn c(std::move(fd));
  try {
    dial_handshake(c, repl::Intent::Probe, out, [](const repl::Refuse&) {});
    return true;
  } catch (const repl::ReplError& e) {
    err = e.what();
    return false;
  }
}

void Replicator::fenced(std::uint32_t epoch, const std::string& leader, const std::string& why) {
  {
    std::lock_guard lk(mu_);
    if (state_.role != NodeRole::Leader || epoch <= state_.epoch) return;
    error("replication: FENCED: " + why + ", newer than this leader's epoch " + std::to_string(state_.epoch) +
          ": this daemon stops leading now and shuts down (replicated sends fail, producers and consumers are refused). "
          "Restart it: it will follow " + (leader.empty() ? std::string("the new leader") : leader));
    state_.leader = leader;
    set_role(NodeRole::Fenced, epoch);
    save_state();
    publish_region();
  }
  if (on_fenced_) on_fenced_();
}

void Replicator::step_down(const std::string& why, std::uint32_t epoch, const std::string& leader) {
  {
    std::lock_guard lk(mu_);
    if (state_.role != NodeRole::Leader) return;
    error("replication: FENCED: " + why + ": this daemon stops leading now and shuts down; restart it and it rejoins "
          "as a follower");
    state_.leader = leader;
    set_role(NodeRole::Fenced, std::max(epoch, state_.epoch));
    save_state();
    publish_region();
  }
  if (on_fenced_) on_fenced_();
}

void Replicator::adopt_members_locked() {
  replicas_.clear();
  for (const auto& m : state_.members)
    if (m != cfg_.listen) replicas_[m].address = m;
  const std::size_t n = std::max<std::size_t>(state_.members.size(), 1);
  min_insync_ = cfg_.min_insync != 0 ? cfg_.min_insync
               : !cfg_.zookeeper.empty() ? 2U  // three or more daemons; the set grows as they join
                                          : static_cast<std::uint32_t>(std::min<std::size_t>(2, n));
}

std::uint32_t Replicator::next_epoch(std::uint32_t known) const {
  // An epoch is (leadership counter << 8) | this daemon's index in the sorted replica set: two
  // daemons that both take "the next" epoch while they cannot see each other (static mode: a
  // promotion, and a restart of the old leader cut off from its peers) still take different
  // epochs, so KIP-101 truncation tells their records apart. The counter orders them.
  std::vector<std::string> m = state_.members;
  if (std::find(m.begin(), m.end(), cfg_.listen) == m.end()) m.push_back(cfg_.listen);
  std::sort(m.begin(), m.end());
  const auto index = static_cast<std::uint32_t>(std::find(m.begin(), m.end(), cfg_.listen) - m.begin());
  return (((known >> kEpochNodeBits) + 1) << kEpochNodeBits) | (index & ((1U << kEpochNodeBits) - 1));
}

bool Replicator::promote(std::uint32_t& epoch, std::string& err) {
  if (!cfg_.zookeeper.empty()) {
    err = "leadership is decided by ZooKeeper here (--zookeeper): stop the leader to fail over";
    return false;
  }
  return promote_to(0, epoch, err);
}

bool Replicator::promote_to(std::uint32_t min_epoch, std::uint32_t& epoch, std::string& err) {
  {
    std::lock_guard lk(mu_);
    if (state_.role != NodeRole::Follower) {
      err = std::string("this shmbusd is not a follower (it is ") + repl::to_string(state_.role) + ")";
      return false;
    }
    // The follower loop sees it and ends. The role stays Follower until everything below is done:
    // no follower is served by a half-promoted leader.
    promoting_.store(true, std::memory_order_release);
    if (follower_conn_ != nullptr) follower_conn_->shutdown();
  }
  stop_cv_.notify_all();  // a follower loop waiting for a leader to be named wakes and ends
  if (follower_.joinable()) follower_.join();
  close_local_logs();  // flushed: the persistence agent opens them next
  std::lock_guard lk(mu_);
  const std::string old_leader = state_.leader;
  epoch = std::max(next_epoch(state_.epoch), min_epoch);
  state_.leader = cfg_.listen;
  if (std::find(state_.members.begin(), state_.members.end(), cfg_.listen) == state_.members.end())
    state_.members.push_back(cfg_.listen);
  adopt_members_locked();
  set_role(NodeRole::Leader, epoch);
  promoting_.store(false, std::memory_order_release);
  save_state();
  publish_region();
  info("replication: promoted to leader at epoch " + std::to_string(epoch) + " (the previous leader was " + old_leader +
       "), min in-sync " + std::to_string(min_insync_));
  return true;
}

std::string Replicator::leader() const {
  std::lock_guard lk(mu_);
  return state_.leader;
}

ReplicationStats Replicator::stats() const {
  ReplicationStats s;
  std::lock_guard lk(mu_);
  s.role = repl::to_string(state_.role);
  s.epoch = state_.epoch;
  s.self = cfg_.listen;
  s.leader = state_.role == NodeRole::Leader ? cfg_.listen : state_.leader;
  if (state_.role == NodeRole::Leader || state_.role == NodeRole::Fenced) {
    s.min_insync = min_insync_;
    s.in_sync.push_back(cfg_.listen);
    const std::uint64_t now = common::mono_ns();
    const auto logs = hub_.logs();
    for (const auto& [addr, r] : replicas_) {
      if (r.in_sync) s.in_sync.push_back(addr);
      ReplicaStats rs;
      rs.address = addr;
      rs.connected = r.connected;
      rs.in_sync = r.in_sync;
      rs.caught_up_ms_ago = r.caught_up_ns == 0 ? 0 : (now - std::min(now, r.caught_up_ns)) / 1'000'000;
      rs.bytes = r.bytes;
      for (const auto& l : logs) {
        // Acquire: pairs with the agent's release store.
        const std::uint64_t end = l->end.load(std::memory_order_acquire);
        const auto it = r.offsets.find(l->name);
        const std::uint64_t have = it == r.offsets.end() ? 0 : it->second;
        rs.lag += end > have ? end - have : 0;
      }
      s.replicas.push_back(std::move(rs));
    }
    for (const auto& l : logs) {
      ReplicatedLogStats ls;
      ls.log = l->name;
      ls.log_start_offset = l->start.load(std::memory_order_acquire);
      ls.log_end_offset = l->end.load(std::memory_order_acquire);
      ls.high_watermark = l->high_watermark.load(std::memory_order_acquire);
      for (const auto& [addr, r] : replicas_) {
        const auto it = r.offsets.find(l->name);
        ls.replica_offsets.push_back(it == r.offsets.end() ? 0 : it->second);
      }
      s.logs.push_back(std::move(ls));
    }
  } else {
    s.connected = follower_connected_;
    s.bytes = fetched_bytes_;
    for (const auto& [name, f] : followed_) {
      ReplicatedLogStats ls;
      ls.log = name;
      if (f.log) {
        ls.log_start_offset = f.log->log_start_offset();
        ls.log_end_offset = f.log->log_end_offset();
      }
      ls.high_watermark = std::min(f.leader_hw, ls.log_end_offset);
      s.logs.push_back(std::move(ls));
    }
  }
  return s;
}

}  // namespace shmbus::daemon
