// shmbusd: the shmbus daemon. Runs in the foreground and owns everything under --dir.
#include "common/paths.hpp"
#include "conductor.hpp"
#include "janitor.hpp"
#include "log.hpp"
#include "shm_store.hpp"
#include "shmbus/shmbus.hpp"

#include <boost/interprocess/sync/file_lock.hpp>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sys/signalfd.h>
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
    "                   are dropped once older than the tombstone retention (default 86400000)\n";

struct Args {
  std::string dir;
  std::uint32_t max_clients = 1024;
  std::uint64_t idle_topic_s = 60;
  shmbus::daemon::FsyncPolicy fsync;
  std::uint64_t segment_bytes = 64ULL << 20;
  TopicLogPolicy topics;
};

int usage_error(const std::string& msg) {
  std::cerr << "shmbusd: " << msg << "\n" << kUsage;
  return 2;
}

bool parse(int argc, char** argv, Args& a, int& rc) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") {
      std::cout << kUsage;
      rc = 0;
      return false;
    }
    if ((k == "--dir" || k == "--max-clients" || k == "--idle-topic-timeout" || k == "--fsync" ||
         k == "--segment-bytes" || k == "--retention-ms" || k == "--retention-bytes" || k == "--compact-every-ms" ||
         k == "--tombstone-retention-ms") &&
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
  PersistenceAgent persist(rh, pc);
  persist.start();
  {
    Conductor conductor(ConductorConfig{dir, a.max_clients, a.idle_topic_s * 1'000'000'000ULL}, region, janitor,
                        to_conductor, sfd.get(), &persist);
    conductor.restore_stored_queues();
    conductor.restore_durable_topics();
    conductor_ptr.store(&conductor, std::memory_order_release);
    conductor_ptr = &conductor;
    janitor.start();
    info("shmbusd started on " + dir + " (pid " + std::to_string(::getpid()) + ", max " +
         std::to_string(a.max_clients) + " clients, layout v" + std::to_string(layout::kLayoutVersion) + ")");
    conductor.run();
    // SYNC: release pairs with clients' acquire load of state in alive(); then wake every parker
    // so it sees Stopping at once instead of at the end of its park slice.
    rh->state.store(static_cast<std::uint32_t>(layout::DaemonState::Stopping), std::memory_order_release);
    conductor.wake_all_parked();
    janitor.stop();
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
