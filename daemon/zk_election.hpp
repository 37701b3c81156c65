// Leader election of shmbusd daemons through ZooKeeper (docs/zookeeper.md): which daemon leads
// the replication of the segment logs, under which epoch, and who may take over when it goes.
//
// Znodes under ZkConfig::root:
//   candidates/c_NNNNNNNNNN  EPHEMERAL|SEQUENCE, one per live daemon, data "ADDRESS" (or
//                            "ADDRESS ineligible" while its eligibility hook says no)
//   epoch                    persistent, decimal: the epoch of the latest leadership
//   leader                   EPHEMERAL, "ADDRESS EPOCH" of the current leader
//   isr                      persistent, newline-separated addresses: who may take over
// A takeover is one ZooKeeper transaction (multi): set epoch to epoch+1 at the version read (or
// create it at 1) and create `leader`. So every leadership has a strictly higher epoch than every
// one before it, and a leader exists only while its session does.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace shmbus::daemon {

struct ZkConfig {
  std::string connect;                   // "127.0.0.1:2181[,host:port...]"
  std::string root;                      // e.g. "/shmbus/cluster1" (created with parents if absent)
  std::string self;                      // this daemon's replication address HOST:PORT (its identity)
  std::uint32_t session_timeout_ms = 4000;  // asked of the server, which clamps it to [2, 20] ticks
  std::uint32_t connect_timeout_ms = 10000;  // start(): how long to wait for the first session
};

struct ZkView {
  enum class Role { Unknown, Leader, Follower };
  Role role = Role::Unknown;  // Unknown: no session / no leader known right now
  std::string leader;         // the leader's address (self when Leader); empty when Unknown
  std::uint32_t epoch = 0;    // the leader epoch of that leadership; 0 when Unknown
  friend bool operator==(const ZkView&, const ZkView&) = default;
};

const char* to_string(ZkView::Role r) noexcept;

class ZkElection {
 public:
  /// Called on the election's own thread (never concurrently with itself, never after stop()
  /// has returned) each time the view changes. It must not block long and must not call stop()
  /// or destroy the ZkElection.
  using Listener = std::function<void(const ZkView&)>;

  ZkElection(ZkConfig cfg, Listener on_change);
  ~ZkElection();  // stop()
  ZkElection(const ZkElection&) = delete;
  ZkElection& operator=(const ZkElection&) = delete;

  /// Connects (waits at most connect_timeout_ms for a session), creates the root znodes if absent,
  /// registers as candidate and starts the election thread. False with a message on failure.
  /// Once started, the election survives connection losses and session expiries by itself.
  bool start(std::string& err);

  /// Reports Unknown to the listener (if the view was not already Unknown), then closes the
  /// session: the candidate and, if leading, the leader znode vanish at once (leadership
  /// released). Idempotent; bounded by ZooKeeper's own close (a few seconds at worst).
  void stop();

  /// Leader only: publishes the in-sync replica set (addresses). Only members of the last
  /// published set may take over leadership (Kafka's clean election); a missing or empty set
  /// means anyone may. Fails (false + err) when this daemon is not the current leader: the write
  /// is conditional on the epoch znode still holding this leadership's epoch. Thread-safe;
  /// blocks for one or two ZooKeeper round trips.
  bool publish_isr(const std::vector<std::string>& isr, std::string& err);

  /// The latest view (thread-safe).
  ZkView view() const;

  /// Candidate eligibility hook, e.g. "no" while this daemon is still catching up. It is called on
  /// the election thread whenever the election is re-evaluated while this daemon is not the
  /// leader, and always right before taking over; it must be quick and thread-safe. A candidate
  /// that says no is skipped: the next eligible one takes over. Default: always yes.
  /// Setting it re-evaluates at once.
  void set_eligible(std::function<bool()> f);

  /// Re-evaluates the election now (e.g. after the eligibility hook's answer changed). While there
  /// is no leader the election is re-evaluated every 200 ms anyway.
  void recheck();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shmbus::daemon
