// The replicator: shmbusd's replication threads (docs/replication.md).
//
// Leader: a listener thread accepts followers; one session thread per follower answers its
// fetches from the segment files (sendfile), tracks what it holds, keeps the in-sync set and the
// high watermark of every log, and releases producers waiting for Acks::Replicated.
// Follower: one thread fetches from the leader, truncates where its epochs diverge (KIP-101),
// appends the leader's batches byte for byte (Log::append_raw) and owns those logs until it is
// promoted; then the persistence agent takes them over and the conductor serves clients.
#pragma once
#include "control/socket.hpp"
#include "log/segment_log.hpp"
#include "repl_net.hpp"
#include "repl_protocol.hpp"
#include "replication_hub.hpp"
#include "shmbus/stats.hpp"
#include "zk_election.hpp"

#include <atomic>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace shmbus::layout {
struct RegionHeader;
}

namespace shmbus::daemon {

struct ReplicationConfig {
  std::string data_dir;                    // DIR/data
  std::string state_file;                  // DIR/data/replication-state
  std::string secret;                      // DIR/replication.secret's content
  std::string listen;                      // this daemon's replication address HOST:PORT
  std::vector<std::string> replicate_to;   // leader: its followers' addresses
  std::string follow;                      // follower: the leader's address
  std::uint32_t min_insync = 0;            // 0: min(2, replica set size)
  std::uint64_t replica_lag_ns = 10'000'000'000ULL;  // out of the in-sync set after this long behind
  std::uint32_t fetch_max_wait_ms = 500;
  std::uint32_t fetch_max_bytes = 32U << 20;  // the agent's batches reach 4 MiB: several per response
  log::LogConfig log;
  // Follower: its logs are fsync'ed this often (0: never). Lazy, as Kafka's followers: a replicated
  // record is safe by being on several hosts; a follower that crashes cuts its torn tail and fetches
  // it again. Done by the fetch thread between fetches, never while a fetch waits.
  std::uint32_t follower_fsync_ms = 1000;
  // Automatic failover (docs/zookeeper.md): leadership decided by ZooKeeper, not by the flags above.
  std::string zookeeper;                   // "HOST:PORT[,...]" ("" = static mode)
  std::string zk_root = "/shmbus/default";
  std::uint32_t zk_session_ms = 4000;
};

/// What a daemon remembers about replication across restarts (DIR/data/replication-state).
struct ReplicationState {
  repl::NodeRole role = repl::NodeRole::Standalone;
  std::uint32_t epoch = 0;
  std::string leader;
  std::vector<std::string> members;  // the whole replica set, leader included
  bool load(const std::string& file);
  bool save(const std::string& file) const;
};

class Replicator {
 public:
  Replicator(ReplicationConfig cfg, ReplicationHub& hub, layout::RegionHeader* region);
  ~Replicator();
  /// Decides the role (state file, then the peers' answers to a probe) and starts the threads.
  /// Throws std::runtime_error (e.g. the listen address is taken).
  repl::NodeRole start();
  void stop();
  repl::NodeRole role() const noexcept { return role_.load(std::memory_order_acquire); }
  /// `shmbus promote`: a follower becomes the leader with a new epoch. False + err otherwise.
  /// On success the caller (conductor) restores the queues and topics from the data directory.
  bool promote(std::uint32_t& epoch, std::string& err);
  /// The same with a chosen minimum epoch (an election's).
  bool promote_to(std::uint32_t min_epoch, std::uint32_t& epoch, std::string& err);
  /// Epochs: (leadership counter << kEpochNodeBits) | the daemon's index in the sorted replica set.
  static constexpr std::uint32_t kEpochNodeBits = 8;
  ReplicationStats stats() const;
  /// Who the clients should talk to (for a follower's refusal message).
  std::string leader() const;
  /// Called (on another thread) after an election promoted this daemon: the conductor must
  /// restore the queues; and when this daemon lost its leadership: the daemon must stop.
  void on_promoted(std::function<void(std::uint32_t)> f) { on_promoted_ = std::move(f); }
  void on_fenced(std::function<void()> f) { on_fenced_ = std::move(f); }

 private:
  struct Replica {
    std::string address;
    bool connected = false;
    bool in_sync = false;
    std::uint64_t session = 0;                 // which session owns `connected`
    std::uint64_t caught_up_ns = 0;
    std::uint64_t prev_fetch_ns = 0;
    std::map<std::string, std::uint64_t> offsets;    // per log: the next offset it needs
    std::map<std::string, std::uint64_t> prev_ends;  // per log: leader end at its previous fetch
    std::uint64_t bytes = 0;
  };
  struct FollowedLog {
    std::unique_ptr<log::Log> log;
    std::uint64_t leader_hw = 0, leader_end = 0;
    bool dirty = false;
  };

  // replicator.cpp
  void listen_loop();
  void serve(control::Fd fd);
  void set_role(repl::NodeRole r, std::uint32_t epoch);
  void publish_region();
  bool probe(const std::string& addr, repl::Welcome& out, std::string& err);
  /// The dialer's half of the handshake (hello, check the listener's proof, auth, welcome);
  /// throws ReplError (a Refuse goes to on_refuse first).
  void dial_handshake(repl::Conn& c, repl::Intent intent, repl::Welcome& out,
                      const std::function<void(const repl::Refuse&)>& on_refuse);
  void fenced(std::uint32_t epoch, const std::string& leader, const std::string& why);
  /// Stops leading whatever the epochs say (ZooKeeper mode), then on_fenced_.
  void step_down(const std::string& why, std::uint32_t epoch, const std::string& leader);
  void save_state();
  /// The replica set (replicas_) and the default --min-insync from state_.members (under mu_).
  void adopt_members_locked();
  /// The epoch this daemon takes after `known` (under mu_): a higher counter, its own low bits.
  std::uint32_t next_epoch(std::uint32_t known) const;
  // replicator_leader.cpp
  void lead_session(repl::Conn& c, const std::string& follower);
  void on_fetch(const std::string& follower, std::uint64_t session, const repl::Fetch& f);
  void update_isr_locked(std::uint64_t now);
  void advance_locked();
  void housekeeping_loop();
  std::uint32_t isr_size_locked() const;
  // replicator_follower.cpp
  void follow_loop();
  void follow_once(const std::string& leader_addr);
  void open_local_logs();
  void close_local_logs();
  FollowedLog* local(const std::string& name, bool create);
  void drop_local(const std::string& name);
  void truncate_after_epochs(repl::Conn& c);
  void apply(const repl::FetchResponseView& r);
  void write_file(const repl::MetaFile& f);
  std::string find_leader();
  // replicator_zk.cpp
  void start_zk();
  void on_zk_view(const ZkView& v);
  void publish_isr_to_zk();

  ReplicationConfig cfg_;
  ReplicationHub& hub_;
  layout::RegionHeader* region_;
  std::atomic<repl::NodeRole> role_{repl::NodeRole::Standalone};
  std::atomic<bool> stop_{false};
  std::atomic<bool> promoting_{false};  // a promotion is ending the follower loop
  /// The follower loop goes on (not stopping, still a follower, no promotion under way).
  bool following() const noexcept {
    // Acquire: pairs with the release stores of stop/promote.
    return !stop_.load(std::memory_order_acquire) && !promoting_.load(std::memory_order_acquire) &&
           role() == repl::NodeRole::Follower;
  }

  mutable std::mutex mu_;  // everything below
  ReplicationState state_;
  std::map<std::string, Replica> replicas_;  // leader: its replica set (not itself)
  std::uint32_t min_insync_ = 1;
  std::uint64_t next_session_ = 1;
  std::map<std::string, FollowedLog> followed_;  // follower: the logs it holds (follower thread only, and promote after join)
  std::string follow_target_;
  std::set<std::string> parked_;  // follower: logs the leader does not serve this session (EpochAnswer status 3)
  bool follower_connected_ = false;
  std::uint64_t fetched_bytes_ = 0;
  std::uint64_t last_follower_flush_ns_ = 0;  // follower thread only
  repl::Conn* follower_conn_ = nullptr;  // to interrupt it (promote/stop)

  control::Fd listen_fd_;
  std::thread listener_, housekeeper_, follower_;
  std::mutex sessions_mu_;
  struct Session {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<Session> sessions_;
  std::list<repl::Conn*> live_conns_;
  std::condition_variable stop_cv_;
  std::function<void(std::uint32_t)> on_promoted_;
  std::function<void()> on_fenced_;
  std::unique_ptr<ZkElection> zk_;
  std::string zk_leader_;              // ZooKeeper mode: the leader the election names (under mu_)
  std::uint64_t isr_version_ = 0;      // bumped when the in-sync set changes (under mu_)
  std::uint64_t isr_published_ = 0;    // the version last published to ZooKeeper
};

}  // namespace shmbus::daemon
