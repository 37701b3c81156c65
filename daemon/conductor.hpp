// The conductor agent: the daemon's control loop. One thread, poll(2) over the listening socket,
// every client socket, every client's pidfd, a signalfd and a wake-up eventfd. It owns the client
// table and the destinations; the janitor hears about them through its queue.
#pragma once
#include "commands.hpp"
#include "control/protocol.hpp"
#include "control/socket.hpp"
#include "janitor.hpp"
#include "persistence_agent.hpp"
#include "replicator.hpp"
#include "layout/region_layout.hpp"
#include "ring/queue_ring.hpp"
#include "shm_store.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace shmbus::daemon {

struct ConductorConfig {
  std::string dir;  // canonical
  std::uint32_t max_clients = 1024;
  std::uint64_t idle_topic_ns = 60'000'000'000;  // remove a topic unused (no endpoint) this long
};

class Conductor {
 public:
  Conductor(ConductorConfig cfg, OwnedShm& region, Janitor& janitor,
            moodycamel::ConcurrentQueue<ConductorCommand>& inbox, int signal_fd, PersistenceAgent* persist = nullptr);
  /// Re-creates the queues that have a segment log in DIR/data (before serving anyone); the
  /// persistence agent then loads their unsettled messages back.
  void restore_stored_queues();
  ~Conductor();
  /// Serves until a signal arrives on signal_fd. Throws only on set-up failure.
  void run();
  /// Replication: followers refuse producers and consumers; `shmbus promote` is served.
  void set_replicator(Replicator* r) noexcept { repl_ = r; }
  /// Wakes the loop (thread-safe): used by the janitor after queueing a command.
  void wake() noexcept;
  /// Wakes every consumer parked on any topic (clean shutdown).
  void wake_all_parked() noexcept;

 private:
  struct Endpoint {
    std::uint32_t dest_id = 0;
    std::uint32_t endpoint_id = 0;
    control::Role role = control::Role::Producer;
    std::uint32_t entry_index = 0;  // subscriber or producer entry in the topic
    std::string subscription;       // Role::DurableSubscriber: its subscription's name
  };
  /// A topic's durable subscriptions (DIR/data/topic.NAME/subscriptions: "name position" lines).
  struct DurableSub {
    std::uint64_t position = 0;   // every message below it was consumed
    std::int64_t owner = -1;      // client index of the open subscriber, -1 none (JMS: one at a time)
    std::uint32_t endpoint_id = 0;
  };
  struct Client {
    control::Fd fd;
    control::Fd pidfd;
    int pid = 0;
    unsigned uid = 0;
    std::optional<std::uint32_t> index;  // set by hello
    std::string name;
    std::vector<std::uint8_t> rx;
    std::vector<Endpoint> endpoints;
    std::vector<std::string> temps;  // uris of the temporary destinations it created (deleted with it)
    bool closing = false;
    const char* close_reason = nullptr;  // set when the client said why (detach)
  };
  struct Dest {
    std::uint32_t id = 0;
    std::string uri;
    std::shared_ptr<OwnedShm> shm;
    ring::TopicRing ring;
    std::vector<std::int64_t> subscriber_owner;  // per subscriber entry: client index or -1
    std::vector<std::int64_t> producer_owner;    // per producer entry: client index, -1 free, -2 being reclaimed
    std::uint64_t unused_since_ns = 0;           // 0 while any endpoint is open
    std::uint64_t recheck_at_ns = 0;             // an unused queue found non-empty: look again then
    // Queues
    bool queue = false;
    ring::QueueRing qring;
    std::string name;
    std::uint64_t sent_closed = 0;  // messages sent by producers closed since (entries' counts reset on reuse)
    // Temporary destinations: never expire idle; deleted with the client that created them.
    bool temporary = false;
    std::int64_t temp_owner = -1;  // client index of the creator
    // Topics with durable subscriptions: the persistence agent reads the ring through subscriber
    // entry `daemon_entry` (owner -3) and logs PERSISTENT messages to log_dir.
    std::map<std::string, DurableSub> subs;
    std::int64_t daemon_entry = -1;
    std::string log_dir;
    std::shared_ptr<TopicLogFigures> figures;
  };

  void accept_client();
  void read_client(Client& c);
  void handle_frame(Client& c, const control::FrameHeader& h, const std::vector<std::uint8_t>& body);
  void reply(Client& c, control::MsgType t, const control::Writer& w, std::uint32_t id);
  void reply_error(Client& c, ErrorCode code, const std::string& msg, std::uint32_t id);
  void on_hello(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id);
  void on_open(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id);
  void on_close(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id);
  void on_stat(Client& c, std::uint32_t id);
  void on_promote(Client& c, std::uint32_t id);
  void check_leader() const;
  void on_create_temp(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id);
  void on_delete_temp(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id);
  // Durable subscriptions (durable_subs.cpp)
  void on_open_durable(Client& c, const control::OpenDest& m, std::uint32_t id);
  void on_commit_position(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id);
  void on_unsubscribe(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id);
  void release_durable(const Client& c, Dest& d, const Endpoint& e);
  /// Starts logging a topic's PERSISTENT messages (a subscriber entry for the persistence agent).
  void make_durable(Dest& d, const std::string& name);
  void save_subs(const Dest& d);
  void post_min_position(const Dest& d);
public:
  /// Re-creates topics with durable subscriptions from DIR/data (before serving anyone).
  void restore_durable_topics();
private:
  /// Deletes a temporary destination: unlinks its shared memory, tells the janitor, forgets it.
  /// Producers of other clients still attached keep their (now orphaned) mapping; their endpoints
  /// stay on their clients' lists, so closing them later succeeds.
  void remove_temp(std::map<std::string, Dest>::iterator it, const std::string& why);
  Dest& find_or_create(const std::string& uri, const std::string& name, const control::OpenDest& m);
  Dest& create_queue(const std::string& uri, const std::string& name, const control::OpenDest& m);
  Dest* find_dest(std::uint32_t dest_id);
  void open_queue_entry(Client& c, Dest& d, const control::OpenDest& m, Endpoint& e, control::OpenOk& ok);
  void create_dlq(std::uint32_t dest_id);
  DestinationStats queue_stats(const Dest& d, std::map<std::uint32_t, int>& pid_of) const;
  void release_endpoint(const Client& c, const Endpoint& e);
  void mark_if_unused(Dest& d);
  /// Every slot FREE: nothing waits, nothing is in flight or in the daemon's hands.
  bool queue_empty(const Dest& d) const;
  /// Removes topics, and empty queues, unused for idle_topic_ns; returns ms until the next one
  /// expires (-1: none).
  int expire_idle_topics();
  void drop_client(int fd, const char* why);
  void drain_inbox();
  std::string describe(const Client& c) const;

  ConductorConfig cfg_;
  OwnedShm& region_shm_;
  layout::RegionHeader* region_;
  Janitor& janitor_;
  int signal_fd_;
  PersistenceAgent* persist_ = nullptr;
  Replicator* repl_ = nullptr;
  moodycamel::ConcurrentQueue<ConductorCommand>& inbox_;  // from the janitor
  control::Fd listen_fd_;
  control::Fd wake_fd_;
  std::map<int, Client> clients_;  // by socket fd
  std::vector<std::uint32_t> free_indices_;
  std::map<std::string, Dest> dests_;  // by uri
  std::uint32_t next_dest_id_ = 1;
  std::uint32_t next_endpoint_id_ = 1;
  std::uint64_t started_ns_ = 0;
  std::string temp_epoch_;      // 8 random hex digits: temporary names differ across daemon restarts
  std::uint64_t next_temp_ = 1;  // daemon-wide counter of temporary destinations
};

}  // namespace shmbus::daemon
