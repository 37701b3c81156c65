// The janitor agent: a single thread that repairs topic rings (holes left by dead or stalled
// producers), beats the daemon heartbeat, and tells the conductor when a dead client's index is
// safe to reuse. Fed only through its command queue.
#pragma once
#include "commands.hpp"
#include "layout/region_layout.hpp"
#include "queue_agent.hpp"
#include "ring/topic_repair.hpp"

#include <atomic>
#include <blockingconcurrentqueue.h>
#include <concurrentqueue.h>
#include <functional>
#include <thread>
#include <vector>

namespace shmbus::daemon {

struct JanitorConfig {
  std::uint64_t tick_ns = 5'000'000;        // period of the repair scan
  std::uint64_t queue_tick_ns = 1'000'000;    // period while queues are busy (agent rings, ack timeouts)
  std::uint64_t queue_idle_ns = 100'000'000;  // after this long without queue activity, tick_ns again
};

class Janitor {
 public:
  Janitor(layout::RegionHeader* region, JanitorConfig cfg,
          moodycamel::ConcurrentQueue<ConductorCommand>& to_conductor, std::function<void()> wake_conductor);
  ~Janitor();
  void start();
  void stop();
  moodycamel::BlockingConcurrentQueue<JanitorCommand>& inbox() { return inbox_; }

 private:
  struct Topic {
    std::uint32_t dest_id;
    std::string uri;
    std::shared_ptr<OwnedShm> shm;
    ring::TopicRepairer repairer;
  };
  void run();
  void handle(JanitorCommand& c);
  void scan_all();
  /// How long to wait for a command before the next tick.
  std::uint64_t next_sleep_ns() const noexcept;
  bool owner_dead(std::uint32_t owner) const noexcept;

  layout::RegionHeader* region_;
  JanitorConfig cfg_;
  moodycamel::BlockingConcurrentQueue<JanitorCommand> inbox_;
  moodycamel::ConcurrentQueue<ConductorCommand>& to_conductor_;
  std::function<void()> wake_conductor_;
  std::vector<Topic> topics_;
  QueueAgent queues_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace shmbus::daemon
