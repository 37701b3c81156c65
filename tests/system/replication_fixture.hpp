// The fixture of the replication system tests (replication_system_test.cpp): a replica set of
// shmbusd children, each on its own temp DIR (with DIR/replication.secret) and its own free
// loopback port, started, SIGKILLed, restarted with the same arguments and promoted as a test
// needs; per-node stats through the test's own Connection; bus_agent and shmbus CLI children on
// any node; the segment files of a log, to compare replicas byte for byte.
//
// Nothing sleeps to synchronise: daemons are waited for on their log lines and stats, agents on
// their stdout lines, always with a deadline.
#pragma once
#include "system_fixture.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace shmbus::systest {

using Fields = std::map<std::string, std::string>;

/// The shared secret of the test replica sets (>= 16 bytes).
inline constexpr char kReplSecret[] = "shmbus-replication-system-test-secret-0123456789";

/// A loopback TCP port nobody listens on now: bound to 127.0.0.1:0, read back, closed; never one
/// handed out before by this process (so the nodes of one test never share one).
std::uint16_t free_loopback_port();

/// One daemon of the replica set.
struct ReplNode {
  std::string name;       // "A", "B", ...
  std::string root;       // ROOT/<name>: its log file lives here
  std::string dir;        // ROOT/<name>/bus: the DIR it serves
  std::string canonical;  // common::canonical_dir(dir)
  std::string addr;       // 127.0.0.1:PORT, its --listen (its identity)
  std::vector<std::string> args;  // what it was last started with (restart() reuses them)
  std::unique_ptr<Daemon> daemon;
  std::optional<Connection> conn;  // the test's own client on it (stats)
  int starts = 0;
  bool running() const { return daemon && daemon->child().running(); }
  std::string log_text() const { return daemon ? daemon->log().text() : std::string(); }
  std::string log_file() const { return root + "/shmbusd.log"; }
};

/// The `shmbus` CLI's result.
struct CliRun {
  int exit_code = -1;  // -1: did not exit normally within the deadline
  std::string out, err;
};

/// One log's (a queue's) segment files: file name -> content.
using SegmentFiles = std::map<std::string, std::string>;

class ReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  /// A new node (not started): its DIR with replication.secret (`secret`, chmod 600) and a port.
  ReplNode& add_node(const std::string& name, const std::string& secret = kReplSecret);

  /// Arguments of a leader replicating to `followers`, of a follower of `leader`.
  static std::vector<std::string> lead_args(const ReplNode& self, const std::vector<const ReplNode*>& followers,
                                            const std::vector<std::string>& extra = {});
  static std::vector<std::string> follow_args(const ReplNode& self, const ReplNode& leader,
                                              const std::vector<std::string>& extra = {});

  /// Starts `n` with `args` and waits until it serves clients (fails the test if not).
  void start(ReplNode& n, const std::vector<std::string>& args);
  /// Starts `n` again with the arguments it was last started with.
  void restart(ReplNode& n);
  /// Sends `sig` and waits until it is gone; SIGKILL must kill it, SIGTERM must exit 0.
  void kill(ReplNode& n, int sig = SIGKILL);

  /// A stats snapshot of `n` through the test's own connection (opened on first use). Throws
  /// shmbus::Error when the daemon does not answer.
  BusStats stats(ReplNode& n);
  /// Polls n's stats until `pred` holds; fails the test with `what` and the last replication
  /// snapshot if it does not within `timeout`.
  std::optional<BusStats> wait_stats(ReplNode& n, const std::function<bool(const BusStats&)>& pred, Millis timeout,
                                     const std::string& what);
  std::optional<ReplicationStats> wait_repl(ReplNode& n, const std::function<bool(const ReplicationStats&)>& pred,
                                            Millis timeout, const std::string& what);
  /// Polls stats of queue `uri` on `n` until `pred` holds.
  std::optional<DestinationStats> wait_queue(ReplNode& n, const std::string& uri,
                                             const std::function<bool(const DestinationStats&)>& pred,
                                             Millis timeout, const std::string& what);
  /// Waits until `leader` leads with `size` in-sync replicas (itself included), each connected, none lagging.
  bool wait_in_sync(ReplNode& leader, std::size_t size, Millis timeout);

  /// A bus_agent child on n's DIR: stdin and stdout piped, stderr inherited.
  Child agent(ReplNode& n, const std::string& cmd, const std::vector<std::string>& args);
  /// The next stdout line of `c` that starts with `prefix`; fails the test if none comes.
  std::optional<Fields> expect_line(Child& c, const std::string& prefix, Millis timeout, const std::string& what);
  /// `shmbus --dir n.dir ARGS` to completion.
  CliRun cli(ReplNode& n, const std::vector<std::string>& args, Millis timeout = Millis(20000));
  /// `shmbus --dir n.dir promote`, expected to succeed; returns the epoch it printed (0 on failure).
  std::uint32_t promote(ReplNode& n);

  /// The .log files of DIR/data/<log>.
  static SegmentFiles segment_files(const ReplNode& n, const std::string& log);
  /// Every .log file's bytes in offset order (file names are zero-padded base offsets): the
  /// batch stream, whatever the segment boundaries.
  static std::string log_stream(const SegmentFiles& f);
  /// Empty when `a` and `b` hold the same .log files with the same bytes, else what differs.
  static std::string compare_segments(const SegmentFiles& a, const SegmentFiles& b);

  /// Copies DIR/data/<log> of `n` to ROOT/<tag>-<name> (for a post-mortem: SHMBUS_KEEP_FAILED=1
  /// keeps ROOT of a failed test).
  void keep_copy(const ReplNode& n, const std::string& log, const std::string& tag) const;
  /// compare_segments of two nodes' logs; on a difference both are kept (keep_copy).
  std::string compare_nodes(const ReplNode& a, const ReplNode& b, const std::string& log, const std::string& tag) const;

  /// Prints every node's log (the tail of each) to stderr.
  void dump_logs() const;

  std::string root_;
  std::vector<std::unique_ptr<ReplNode>> nodes_;
};

/// The log named `name` ("queue.NAME") in a replication snapshot, or nullptr.
const ReplicatedLogStats* find_log(const ReplicationStats& r, const std::string& name);
/// Its log_end_offset (0 when the node has no such log yet).
std::uint64_t log_end(const ReplicationStats& r, const std::string& name);
const ReplicaStats* find_replica(const ReplicationStats& r, const std::string& addr);
std::string describe(const ReplicationStats& r);

/// The 16-byte records qconsume writes (bus_agent.cpp: Record).
struct Record {
  std::uint32_t producer = 0;
  std::uint32_t count = 0;  // delivery count | 0x80000000 when flagged redelivered
  std::uint64_t seq = 0;
};
static_assert(sizeof(Record) == 16);
std::vector<Record> read_records(const std::string& path);

std::uint64_t env_number(const char* name, std::uint64_t fallback);
std::uint64_t num(const Fields& f, const std::string& k);

}  // namespace shmbus::systest
