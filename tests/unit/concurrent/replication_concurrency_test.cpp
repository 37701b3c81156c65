// A leader and a follower Replicator in one process over loopback TCP (run under TSan in CI),
// fed by a thread playing the persistence agent: it appends batches to a real Log and publishes
// offsets and replicated waiters through LogPublisher, while the leader's session and housekeeper
// threads read the files, move the high watermark and release waiters, and the follower's thread
// appends what it fetches. Forbidden: a data race; a waiter released before the follower holds its
// record or released out of order; the follower's log differing from the leader's by one byte.
#include "layout/queue_layout.hpp"
#include "layout/region_layout.hpp"
#include "log/segment_log.hpp"
#include "replicator.hpp"
#include "ring/futex.hpp"

#include <arpa/inet.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace shmbus::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string concat_logs(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".log") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::string s;
  for (const auto& f : files) s += read_all(f);
  return s;
}

struct Node {
  fs::path root;
  std::unique_ptr<layout::RegionHeader> region = std::make_unique<layout::RegionHeader>();
  ReplicationHub hub;
  std::unique_ptr<Replicator> repl;
};

ReplicationConfig config(const fs::path& root, const std::string& self) {
  ReplicationConfig c;
  c.data_dir = (root / "data").string();
  c.state_file = (root / "data" / "replication-state").string();
  c.secret = "a shared secret of the test, 0123456789";
  c.listen = self;
  c.fetch_max_wait_ms = 50;
  c.log.segment_bytes = 64 * 1024;  // several rolls on both sides
  return c;
}

TEST(ReplicationConcurrency_test, TheFollowerConvergesAndWaitersAreReleasedInOrderWhileTheAgentAppends) {
  const fs::path base = fs::temp_directory_path() / ("shmbus-repl-conc-" + std::to_string(::getpid()));
  fs::remove_all(base);
  const std::string a = "127.0.0.1:" + std::to_string(free_port());
  const std::string b = "127.0.0.1:" + std::to_string(free_port());
  Node leader, follower;
  leader.root = base / "leader";
  follower.root = base / "follower";
  fs::create_directories(leader.root / "data" / "queue.q");
  fs::create_directories(follower.root / "data");
  auto lc = config(leader.root, a);
  lc.replicate_to = {b};
  lc.min_insync = 2;
  auto fc = config(follower.root, b);
  fc.follow = a;
  leader.repl = std::make_unique<Replicator>(lc, leader.hub, leader.region.get());
  follower.repl = std::make_unique<Replicator>(fc, follower.hub, follower.region.get());
  ASSERT_EQ(leader.repl->start(), repl::NodeRole::Leader);
  ASSERT_EQ(follower.repl->start(), repl::NodeRole::Follower);

  // The agent's side: a queue log, four producer entries, batches with a replicated waiter each.
  constexpr int kProducers = 4;
  constexpr std::uint64_t kBatches = 400;
  auto producers = std::make_unique<layout::QueueProducerEntry[]>(kProducers);
  const std::string qdir = (leader.root / "data" / "queue.q").string();
  { std::ofstream(qdir + "/queue.meta") << "capacity 64\n"; }
  std::string agent_error;
  // Owned here, used by the agent thread only until it is joined: the log stays published (as the
  // daemon's queue store keeps it) after the thread has appended everything.
  log::LogError open_err;
  auto lg = log::Log::open(qdir, lc.log, nullptr, open_err);
  ASSERT_TRUE(lg) << open_err.what;
  LogPublisher pub;
  std::thread agent([&] {
    pub.attach(&leader.hub, "queue.q", qdir, producers.get(), nullptr);
    std::vector<std::byte> value(300);
    std::vector<ReplicaWaiter> waiters;
    for (std::uint64_t i = 0; i < kBatches; ++i) {
      std::fill(value.begin(), value.end(), static_cast<std::byte>(i));
      log::AppendRecord rec;
      rec.timestamp_ns = static_cast<std::int64_t>(i);
      rec.value = value;
      const log::AppendRecord recs[2] = {rec, rec};
      std::uint64_t base_off = 0;
      const std::uint32_t epoch = pub.epoch_for(*lg);
      if (auto e = lg->append(recs, epoch, base_off)) {
        agent_error = "append: " + e.what;
        return;
      }
      waiters.push_back({base_off + 1, static_cast<std::uint32_t>(i % kProducers), 7, i / kProducers + 1});
      pub.published(*lg, waiters);
    }
  });

  // Each producer entry's durable word must climb to its last sequence, never backwards.
  const auto seq_of = [](std::uint64_t w) { return w & ((1ULL << layout::kDurableSeqBits) - 1); };
  for (int p = 0; p < kProducers; ++p) {
    auto& e = producers[p];
    const std::uint64_t want = kBatches / kProducers;
    std::uint64_t last = 0;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (true) {
      // SYNC: seq_cst, the parker's look (Dekker with the replicator's store + wake_waiters).
      const std::uint64_t w = e.durable.load(std::memory_order_seq_cst);
      if (w != 0) {
        EXPECT_EQ(w >> layout::kDurableSeqBits, 7U);
        ASSERT_GE(seq_of(w), last) << "producer " << p << ": a waiter was released out of order";
        last = seq_of(w);
      }
      if (last >= want) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        const auto ls = leader.repl->stats();
        std::string why;
        for (const auto& l : ls.logs)
          why += l.log + " end " + std::to_string(l.log_end_offset) + " hw " + std::to_string(l.high_watermark) + "; ";
        for (const auto& r : ls.replicas) why += r.address + (r.in_sync ? " in sync" : " out") + " lag " + std::to_string(r.lag) + "; ";
        agent.join();
        FAIL() << "producer " << p << " stuck at seq " << last << ": " << why << agent_error;
      }
      std::atomic<std::uint32_t> parked{0};
      ring::park_once(e.durable_seq, e.durable_waiters, parked, 20'000'000, [&] {
        return seq_of(e.durable.load(std::memory_order_seq_cst)) < want;
      });
    }
    EXPECT_EQ(last, want);
  }
  agent.join();

  // Every waiter was released only once the follower held its record: the follower holds all.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  std::uint64_t fend = 0;
  while (fend < 2 * kBatches && std::chrono::steady_clock::now() < deadline) {
    const auto s = follower.repl->stats();
    for (const auto& l : s.logs)
      if (l.log == "queue.q") fend = l.log_end_offset;
    if (fend < 2 * kBatches) std::this_thread::yield();
  }
  EXPECT_EQ(fend, 2 * kBatches);
  const auto ls = leader.repl->stats();
  ASSERT_EQ(ls.logs.size(), 1U);
  EXPECT_EQ(ls.logs[0].high_watermark, 2 * kBatches);
  ASSERT_EQ(ls.in_sync.size(), 2U);
  follower.repl->stop();
  leader.repl->stop();
  EXPECT_EQ(concat_logs(follower.root / "data" / "queue.q"), concat_logs(qdir)) << "the follower's log differs";
  EXPECT_EQ(read_all(follower.root / "data" / "queue.q" / "queue.meta"), "capacity 64\n");
  fs::remove_all(base);
}

}  // namespace
}  // namespace shmbus::daemon
