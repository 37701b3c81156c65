// shmbusd: the shmbus daemon. Runs in the foreground and owns everything under --dir.
#include "common/paths.hpp"
#include "conductor.hpp"
#include "janitor.hpp"
#include "log.hpp"
#include "repl_net.hpp"
#include "replicator.hpp"
#include "shm_store.hpp"
#include "shmbus/shmbus.hpp"

#include <boost/interprocess/sync/file_lock.hpp>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using namespace shmbus;
using namespace shmbus::daemon;

constexpr const char* kUsage =
    "usage: shmbusd [--dir DIR] [--max-clients N] [--idle-topic-timeout SECONDS] [--fsync POLICY]\n"
    "               [--segment-bytes N] [--retention-ms MS] [--retention-bytes N] [--compact-topics]\n"
    "  --dir DIR        directory this daemon owns (default: $SHMBUS_DIR, else $XDG_RUNTIME_DIR/shmbus,\n"
    "                   else /tmp/shmbus-<uid>); holds shmbusd.sock and shmbusd.lock\n"
    "  --max-clients N  attached client processes at once (default 1024, max 65536)\n"
    "  --idle-topic-timeout SECONDS\n"
    "                   remove a topic (and its shared memory) once it has had no producer and no\n"
    "                   consumer for this long (default 60; 0 = at once); a queue too, if it is\n"
    "                   also empty (a queue holding messages is kept for its consumers)\n"
    "  --fsync POLICY   when queue logs (DIR/data) are fsync'ed: interval:MS (default interval:10),\n"
    "                   every:N messages, always (after every batch) or never (the OS writes back);\n"
    "                   durable sends (Acks::Durable, --acks durable) are fsync'ed at once whatever it says\n"
    "  --segment-bytes N  roll a log segment at N bytes (default 67108864, at least 4096)\n"
    "  --retention-ms MS, --retention-bytes N\n"
    "                   topic logs (durable subscriptions): delete whole segments older than MS or\n"
    "                   past N bytes in all (default 0: kept until every subscription has read them)\n"
    "  --compact-topics [--compact-every-ms MS] [--tombstone-retention-ms MS]\n"
    "                   topic logs: keep only the newest PERSISTENT message per key (string property\n"
    "                   `key`), every MS (default 30000); tombstones (boolean property `tombstone`)\n"
    "                   are dropped once older than the tombstone retention (default 86400000)\n"
    "Replication (docs/replication.md; both need --listen and DIR/replication.secret):\n"
    "  --listen HOST:PORT             this daemon's replication address (its identity)\n"
    "  --replicate-to HOST:PORT[,..]  lead, replicating PERSISTENT logs to these followers\n"
    "  --follow HOST:PORT             follow that leader (a standby: producers and consumers are\n"
    "                                 refused until `shmbus promote --dir DIR`)\n"
    "  --min-insync N                 leader: Acks::Replicated needs N in-sync replicas, the leader\n"
    "                                 included (default 2, or 1 with no follower)\n"
    "  --replica-lag-ms MS            a follower behind for longer leaves the in-sync set (default 10000)\n"
    "  --zookeeper HOST:PORT[,..]     automatic failover: ZooKeeper elects the leader (instead of\n"
    "                                 --replicate-to/--follow; three or more daemons)\n"
    "  --zk-root PATH                 the cluster's znode (default /shmbus/default)\n"
    "  --config FILE                  more arguments, one \"--flag value\" (or \"flag value\") per line; # comments\n";

struct Args {
  std::string dir;
  std::uint32_t max_clients = 1024;
  std::uint64_t idle_topic_s = 60;
  shmbus::daemon::FsyncPolicy fsync;
  std::uint64_t segment_bytes = 64ULL << 20;
  TopicLogPolicy topics;
  std::string listen, follow;
  std::vector<std::string> replicate_to;
  std::uint32_t min_insync = 0;
  std::uint64_t replica_lag_ms = 10'000;
  std::string zookeeper, zk_root = "/shmbus/default";
};

/// "HOST:PORT[,HOST:PORT...]": each one checked (repl::split_address) and appended to `out`.
bool address_list(const std::string& list, std::vector<std::string>& out, std::string& err) {
  std::istringstream ls(list);
  std::string one, host;
  std::uint16_t port = 0;
  while (std::getline(ls, one, ',')) {
    if (!repl::split_address(one, host, port, err)) return false;
    out.push_back(one);
  }
  return true;
}

/// --config FILE: its lines become arguments ("--flag value", "flag value" or "--flag").
bool expand_config(std::vector<std::string>& args, std::string& err) {
  int expanded = 0;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] != "--config") continue;
    if (++expanded > 16) {
      err = "--config: more than 16 files (does one name itself?)";
      return false;
    }
    if (i + 1 >= args.size()) {
      err = "--config needs a value";
      return false;
    }
    std::ifstream in(args[i + 1]);
    if (!in) {
      err = "cannot read --config " + args[i + 1];
      return false;
    }
    std::vector<std::string> more;
    std::string line;
    while (std::getline(in, line)) {
      const auto hash = line.find('#');
      if (hash != std::string::npos) line.resize(hash);
      std::istringstream ls(line);
      std::string k, v;
      if (!(ls >> k)) continue;
      more.push_back(k.rfind("--", 0) == 0 ? k : "--" + k);
      if (ls >> v) more.push_back(v);
    }
    args.erase(args.begin() + static_cast<std::ptrdiff_t>(i), args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
    args.insert(args.begin() + static_cast<std::ptrdiff_t>(i), more.begin(), more.end());
    --i;
  }
  return true;
}

int usage_error(const std::string& msg) {
  std::cerr << "shmbusd: " << msg << "\n" << kUsage;
  return 2;
}

bool parse(int argc_in, char** argv_in, Args& a, int& rc) {
  std::vector<std::string> args(argv_in + 1, argv_in + argc_in);
  if (std::string err; !expand_config(args, err)) {
    rc = usage_error(err);
    return false;
  }
  args.insert(args.begin(), argv_in[0]);
  std::vector<char*> argvv;
  for (auto& s : args) argvv.push_back(s.data());
  const int argc = static_cast<int>(argvv.size());
  char** argv = argvv.data();
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") {
      std::cout << kUsage;
      rc = 0;
      return false;
    }
    if ((k == "--dir" || k == "--max-clients" || k == "--idle-topic-timeout" || k == "--fsync" ||
         k == "--segment-bytes" || k == "--retention-ms" || k == "--retention-bytes" || k == "--compact-every-ms" ||
         k == "--tombstone-retention-ms" || k == "--listen" || k == "--replicate-to" || k == "--follow" ||
         k == "--min-insync" || k == "--replica-lag-ms" || k == "--zookeeper" || k == "--zk-root") &&
        i + 1 >= argc) {
      rc = usage_error(k + " needs a value");
      return false;
    }
    if (k == "--dir") {
      a.dir = argv[++i];
    } else if (k == "--max-clients") {
      const std::string v = argv[++i];
      char* end = nullptr;
      const unsigned long n = std::strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 1 || n > 65536) {
        rc = usage_error("--max-clients must be a number from 1 to 65536, not '" + v + "'");
        return false;
      }
      a.max_clients = static_cast<std::uint32_t>(n);
    } else if (k == "--idle-topic-timeout") {
      const std::string v = argv[++i];
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || v[0] == '-' || n > 365ULL * 24 * 3600) {
        rc = usage_error("--idle-topic-timeout must be a number of seconds from 0 to 31536000, not '" + v + "'");
        return false;
      }
      a.idle_topic_s = n;
    } else if (k == "--fsync") {
      const std::string v = argv[++i];
      if (!shmbus::daemon::FsyncPolicy::parse(v, a.fsync)) {
        rc = usage_error("--fsync must be interval:MS, every:N, always or never (MS and N from 1 to 3600000), not '" + v + "'");
        return false;
      }
    } else if (k == "--listen" || k == "--follow") {
      const std::string v = argv[++i];
      std::string host, err;
      std::uint16_t port = 0;
      if (!repl::split_address(v, host, port, err)) {
        rc = usage_error(k + ": " + err);
        return false;
      }
      (k == "--listen" ? a.listen : a.follow) = v;
    } else if (k == "--zookeeper") {
      a.zookeeper = argv[++i];
      std::vector<std::string> hosts;
      if (std::string err; !address_list(a.zookeeper, hosts, err)) {
        rc = usage_error("--zookeeper: " + err);
        return false;
      }
    } else if (k == "--zk-root") {
      a.zk_root = argv[++i];
      if (a.zk_root.size() < 2 || a.zk_root[0] != '/' || a.zk_root.back() == '/') {
        rc = usage_error("--zk-root must be an absolute znode path such as /shmbus/cluster1, not '" + a.zk_root + "'");
        return false;
      }
    } else if (k == "--replicate-to") {
      if (std::string err; !address_list(argv[++i], a.replicate_to, err)) {
        rc = usage_error("--replicate-to: " + err);
        return false;
      }
      if (a.replicate_to.empty()) {
        rc = usage_error("--replicate-to needs at least one HOST:PORT");
        return false;
      }
    } else if (k == "--min-insync" || k == "--replica-lag-ms") {
      const std::string v = argv[++i];
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || v[0] == '-' || n == 0 || n > (k == "--min-insync" ? 64ULL : 3'600'000ULL)) {
        rc = usage_error(k + (k == "--min-insync" ? " must be a number from 1 to 64" : " must be 1 to 3600000 ms") +
                         ", not '" + v + "'");
        return false;
      }
      if (k == "--min-insync") a.min_insync = static_cast<std::uint32_t>(n);
      else a.replica_lag_ms = n;
    } else if (k == "--compact-topics") {
      a.topics.compact = true;
    } else if (k == "--retention-ms" || k == "--retention-bytes" || k == "--compact-every-ms" ||
               k == "--tombstone-retention-ms") {
      const std::string v = argv[++i];
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || v[0] == '-' || n > (1ULL << 50) || (k == "--compact-every-ms" && n == 0)) {
        rc = usage_error(k + " must be a whole number" + (k == "--compact-every-ms" ? " from 1" : "") +
                         " (milliseconds or bytes), not '" + v + "'");
        return false;
      }
      if (k == "--retention-ms") a.topics.retention_ms = n;
      else if (k == "--retention-bytes") a.topics.retention_bytes = n;
      else if (k == "--compact-every-ms") a.topics.compact_every_ns = n * 1'000'000;
      else a.topics.tombstone_retention_ms = n;
    } else if (k == "--segment-bytes") {
      const std::string v = argv[++i];
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || v[0] == '-' || n < 4096 || n > (1ULL << 40)) {
        rc = usage_error("--segment-bytes must be a number of bytes from 4096 to 1099511627776, not '" + v + "'");
        return false;
      }
      a.segment_bytes = n;
    } else {
      rc = usage_error("unknown argument '" + k + "'");
      return false;
    }
  }
  if (a.dir.empty()) a.dir = shmbus::default_dir();
  if (!a.follow.empty() && !a.replicate_to.empty()) {
    rc = usage_error("--follow and --replicate-to exclude each other: a daemon leads or follows");
    return false;
  }
  if (!a.zookeeper.empty() && (!a.follow.empty() || !a.replicate_to.empty())) {
    rc = usage_error("--zookeeper decides who leads: leave out --follow and --replicate-to");
    return false;
  }
  if ((!a.follow.empty() || !a.replicate_to.empty() || !a.zookeeper.empty()) && a.listen.empty()) {
    rc = usage_error("replication needs --listen HOST:PORT (this daemon's replication address)");
    return false;
  }
  if (a.follow.empty() && a.replicate_to.empty() && a.zookeeper.empty() && (!a.listen.empty() || a.min_insync != 0)) {
    rc = usage_error("--listen and --min-insync need --replicate-to, --follow or --zookeeper");
    return false;
  }
  if (a.min_insync > a.replicate_to.size() + 1 && !a.replicate_to.empty()) {
    rc = usage_error("--min-insync " + std::to_string(a.min_insync) + " is more than the " +
                     std::to_string(a.replicate_to.size() + 1) + " replicas (leader included) --replicate-to names");
    return false;
  }
  return true;
}

std::string read_pid(const std::string& path) {
  std::ifstream f(path);
  std::string pid;
  std::getline(f, pid);
  return pid.empty() ? "unknown" : pid;
}

/// DIR/data/format names the data format version; a newer one than ours is refused (its files
/// could be misread), a missing one is written.
std::string check_data_dir(const std::string& data) {
  std::error_code ec;
  std::filesystem::create_directories(data, ec);
  if (ec) return "cannot create " + data + ": " + ec.message();
  const std::string f = data + "/format";
  std::ifstream in(f);
  std::string word;
  unsigned long v = 0;
  if (in >> word >> v) {
    if (word != "shmbus-data") return f + " is not a shmbus data format file; is " + data + " someone else's?";
    if (v > log::kLogFormatVersion)
      return data + " was written by a newer shmbus (data format " + std::to_string(v) + "; this shmbusd reads up to " +
             std::to_string(log::kLogFormatVersion) + "): upgrade shmbusd or use another --dir";
    return {};
  }
  std::ofstream(f, std::ios::trunc) << "shmbus-data " << log::kLogFormatVersion << "\n";
  return {};
}

/// DIR/replication.secret: the shared secret every daemon of the replica set holds.
std::string read_secret(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return "replication needs a shared secret in " + path +
           " (the same bytes on every daemon of the replica set, e.g. `head -c 32 /dev/urandom | base64 > " + path +
           "; chmod 600 " + path + "`)";
  out.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (out.size() < 16) return path + " holds fewer than 16 bytes: too weak a shared secret";
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
    warn(path + " is readable by group or others; chmod 600 it");
  return {};
}

int serve(const Args& a) {
  std::error_code ec;
  std::filesystem::create_directories(a.dir, ec);
  if (ec) throw Error(ErrorCode::InvalidArgument, "cannot create --dir " + a.dir + ": " + ec.message());
  const auto dir = common::canonical_dir(a.dir);
  if (auto err = common::check_socket_path(common::socket_path(dir)); !err.empty())
    throw Error(ErrorCode::InvalidArgument, err);

  // Single instance: an fcntl lock on DIR/shmbusd.lock (Boost.Interprocess file_lock). The kernel
  // drops it when the holder dies, so a killed daemon never blocks the next one.
  const auto lock_file = common::lock_path(dir);
  { std::ofstream touch(lock_file, std::ios::app); }
  boost::interprocess::file_lock lock(lock_file.c_str());
  const auto pid_file = dir + "/shmbusd.pid";
  if (!lock.try_lock()) {
    std::cerr << "shmbusd: another shmbusd (pid " << read_pid(pid_file) << ") already serves " << dir
              << "; stop it first or use another --dir\n";
    return 1;
  }
  // The pid goes to its own file: opening and closing the lock file again would drop the fcntl lock.
  { std::ofstream(pid_file, std::ios::trunc) << ::getpid() << "\n"; }

  if (auto err = check_data_dir(dir + "/data"); !err.empty()) {
    std::cerr << "shmbusd: " << err << "\n";
    return 1;
  }

  for (const auto& n : remove_stale_shm(common::shm_prefix(dir)))
    warn("removed stale shared memory /dev/shm/" + n + " left by a daemon that did not shut down cleanly");

  // Signals are taken synchronously by the conductor through a signalfd: block them everywhere.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  control::Fd sfd(::signalfd(-1, &set, SFD_CLOEXEC));

  OwnedShm region(common::region_shm_name(dir), layout::region_size(a.max_clients));
  auto* rh = static_cast<layout::RegionHeader*>(region.base());
  rh->magic = layout::kRegionMagic;
  rh->header_size = sizeof(layout::RegionHeader);
  rh->total_length = layout::region_size(a.max_clients);
  rh->daemon_pid = ::getpid();
  rh->max_clients = a.max_clients;
  rh->daemon_start_ns = static_cast<std::uint64_t>(common::real_ns());
  rh->state.store(static_cast<std::uint32_t>(layout::DaemonState::Running), std::memory_order_relaxed);
  // SYNC: release pairs with check_region()'s acquire: everything above is visible first.
  rh->layout_version.store(layout::kLayoutVersion, std::memory_order_release);

  // The janitor -> conductor queue; the conductor is woken through its eventfd after each enqueue.
  moodycamel::ConcurrentQueue<ConductorCommand> to_conductor;
  std::atomic<Conductor*> conductor_ptr{nullptr};
  Janitor janitor(rh, JanitorConfig{}, to_conductor, [&] {
    // Acquire: pairs with the release store below; the conductor is fully constructed.
    if (auto* c = conductor_ptr.load(std::memory_order_acquire)) c->wake();
  });
  PersistenceConfig pc;
  pc.data_dir = dir + "/data";
  pc.fsync = a.fsync;
  pc.log.segment_bytes = a.segment_bytes;
  pc.topics = a.topics;
  ReplicationHub hub;
  std::unique_ptr<Replicator> replicator;
  repl::NodeRole role = repl::NodeRole::Standalone;
  if (!a.listen.empty()) {
    ReplicationConfig rc;
    rc.data_dir = dir + "/data";
    rc.state_file = dir + "/data/replication-state";
    if (auto err = read_secret(dir + "/replication.secret", rc.secret); !err.empty()) {
      std::cerr << "shmbusd: " << err << "\n";
      return 1;
    }
    rc.listen = a.listen;
    rc.replicate_to = a.replicate_to;
    rc.follow = a.follow;
    rc.min_insync = a.min_insync;
    rc.replica_lag_ns = a.replica_lag_ms * 1'000'000;
    rc.log = pc.log;
    rc.zookeeper = a.zookeeper;
    rc.zk_root = a.zk_root;
    replicator = std::make_unique<Replicator>(rc, hub, rh);
    // An election promoted us: the conductor restores the queues (on its thread). Leadership lost
    // (ZooKeeper mode): a clean shutdown, as a SIGTERM would do; a supervisor restarts us as a follower.
    replicator->on_promoted([&](std::uint32_t epoch) {
      to_conductor.enqueue(Promoted{epoch});
      // Acquire: pairs with the release store below; the conductor is fully constructed.
      if (auto* c = conductor_ptr.load(std::memory_order_acquire)) c->wake();
    });
    // Fenced (a newer epoch exists) or, in ZooKeeper mode, leadership lost: a clean shutdown, as a
    // SIGTERM does; restarted, it follows the new leader.
    replicator->on_fenced([] { ::kill(::getpid(), SIGTERM); });
    try {
      role = replicator->start();
    } catch (const std::runtime_error& e) {
      std::cerr << "shmbusd: replication: " << e.what() << "\n";
      return 1;
    }
  }
  PersistenceAgent persist(rh, pc, &hub);
  persist.start();
  {
    Conductor conductor(ConductorConfig{dir, a.max_clients, a.idle_topic_s * 1'000'000'000ULL}, region, janitor,
                        to_conductor, sfd.get(), &persist);
    conductor.set_replicator(replicator.get());
    // A follower's logs are the replicator's until `shmbus promote`.
    if (role != repl::NodeRole::Follower && role != repl::NodeRole::Fenced) {
      conductor.restore_stored_queues();
      conductor.restore_durable_topics();
    }
    conductor_ptr.store(&conductor, std::memory_order_release);
    conductor.wake();  // a promotion that came before the conductor existed is in its inbox
    janitor.start();
    info("shmbusd started on " + dir + " (pid " + std::to_string(::getpid()) + ", max " +
         std::to_string(a.max_clients) + " clients, layout v" + std::to_string(layout::kLayoutVersion) + ")");
    conductor.run();
    // SYNC: release pairs with clients' acquire load of state in alive(); then wake every parker
    // so it sees Stopping at once instead of at the end of its park slice.
    rh->state.store(static_cast<std::uint32_t>(layout::DaemonState::Stopping), std::memory_order_release);
    conductor.wake_all_parked();
    janitor.stop();
    if (replicator) replicator->stop();  // no session reads a log the agent is about to close
    persist.stop();  // the last settlements and messages logged, fsync'ed and snapshotted
    conductor_ptr.store(nullptr, std::memory_order_relaxed);
  }
  ::unlink(pid_file.c_str());
  info("shmbusd stopped; shared memory and socket removed");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  int rc = 0;
  if (!parse(argc, argv, a, rc)) return rc;
  try {
    return serve(a);
  } catch (const shmbus::Error& e) {
    std::cerr << "shmbusd: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "shmbusd: unexpected failure: " << e.what() << "\n";
    return 1;
  }
}
