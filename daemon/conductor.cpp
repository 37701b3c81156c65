#include "conductor.hpp"

#include "common/paths.hpp"
#include "log.hpp"
#include "ring/futex.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

namespace shmbus::daemon {

namespace {

control::Fd listen_on(const std::string& path) {
  if (auto err = common::check_socket_path(path); !err.empty()) throw Error(ErrorCode::InvalidArgument, err);
  ::unlink(path.c_str());  // we hold the DIR lock: any socket file here is a dead daemon's
  control::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), 128) != 0)
    throw Error(ErrorCode::Internal, "cannot listen on " + path + ": " + std::strerror(errno));
  return fd;
}

// 8 hex digits from getrandom: the middle part of every temporary destination name this daemon
// makes, so that a reply-to URI kept across a daemon restart never names someone else's.
std::string random_epoch() {
  std::uint32_t v = 0;
  if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v))  // no entropy yet: still differs per start
    v = static_cast<std::uint32_t>(::getpid()) ^ static_cast<std::uint32_t>(common::mono_ns());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(8, '0');
  for (int i = 7; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = kHex[v & 0xF];
  return s;
}

// pidfd_open has no glibc wrapper on bookworm (glibc 2.36 has one, but not every libc does).
int pidfd_open(int pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

Conductor::Conductor(ConductorConfig cfg, OwnedShm& region, Janitor& janitor,
                     moodycamel::ConcurrentQueue<ConductorCommand>& inbox, int signal_fd, PersistenceAgent* persist)
    : cfg_(std::move(cfg)),
      region_shm_(region),
      region_(static_cast<layout::RegionHeader*>(region.base())),
      janitor_(janitor),
      signal_fd_(signal_fd),
      persist_(persist),
      inbox_(inbox),
      listen_fd_(listen_on(common::socket_path(cfg_.dir))),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      started_ns_(common::mono_ns()),
      temp_epoch_(random_epoch()) {
  for (std::uint32_t i = cfg_.max_clients; i > 0; --i) free_indices_.push_back(i - 1);
}

Conductor::~Conductor() { ::unlink(common::socket_path(cfg_.dir).c_str()); }

void Conductor::wake() noexcept {
  const std::uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof one);
}

void Conductor::wake_all_parked() noexcept {
  for (auto& [uri, d] : dests_) {
    // Release: a woken parker re-reads the region state (Stopping) after seeing the word change.
    if (d.queue) {
      auto& q = d.qring.header();
      q.notify_seq.fetch_add(1, std::memory_order_release);
      ring::futex_wake_all(q.notify_seq);
      q.space_seq.fetch_add(1, std::memory_order_release);  // producers blocked on a full queue
      ring::futex_wake_all(q.space_seq);
      continue;
    }
    auto& h = d.ring.header();
    h.notify_seq.fetch_add(1, std::memory_order_release);
    ring::futex_wake_all(h.notify_seq);
  }
}

std::string Conductor::describe(const Client& c) const {
  std::string s = "client";
  if (c.index) s += " " + std::to_string(*c.index);
  if (!c.name.empty()) s += " '" + c.name + "'";
  return s + " (pid " + std::to_string(c.pid) + ")";
}

void Conductor::accept_client() {
  for (;;) {
    control::Fd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) return;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      warn(std::string("SO_PEERCRED failed: ") + std::strerror(errno) + "; connection refused");
      continue;
    }
    Client c;
    c.pid = cred.pid;
    c.uid = cred.uid;
    if (cred.uid != ::geteuid() && cred.uid != 0) {
      warn("refused connection from pid " + std::to_string(cred.pid) + ": uid " + std::to_string(cred.uid) +
           " is neither the daemon's uid " + std::to_string(::geteuid()) + " nor root");
      c.fd = std::move(fd);
      reply_error(c, ErrorCode::PermissionDenied, "permission denied: shmbusd serves only uid " + std::to_string(::geteuid()), 0);
      continue;
    }
    c.pidfd = control::Fd(pidfd_open(cred.pid));
    const int key = fd.get();
    c.fd = std::move(fd);
    clients_.emplace(key, std::move(c));
  }
}

void Conductor::read_client(Client& c) {
  std::uint8_t buf[65536];
  bool eof = false;
  for (;;) {
    const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      eof = true;  // still parse what arrived before the EOF (a detach, typically)
      break;
    }
    c.rx.insert(c.rx.end(), buf, buf + n);
    if (c.rx.size() > control::kHeaderSize + control::kMaxBody + sizeof buf) break;  // parse before reading more
  }
  std::size_t off = 0;
  while (!c.closing && c.rx.size() - off >= control::kHeaderSize) {
    control::FrameHeader h;
    try {
      h = control::decode_header(c.rx.data() + off);
    } catch (const Error& e) {
      warn("protocol error from " + describe(c) + ": " + e.what() + "; closing that connection");
      reply_error(c, ErrorCode::ProtocolError, e.what(), 0);
      c.closing = true;
      return;
    }
    if (c.rx.size() - off < control::kHeaderSize + h.body_len) break;
    std::vector<std::uint8_t> body(c.rx.begin() + static_cast<std::ptrdiff_t>(off + control::kHeaderSize),
                                   c.rx.begin() + static_cast<std::ptrdiff_t>(off + control::kHeaderSize + h.body_len));
    off += control::kHeaderSize + h.body_len;
    handle_frame(c, h, body);
  }
  c.rx.erase(c.rx.begin(), c.rx.begin() + static_cast<std::ptrdiff_t>(off));
  if (eof) c.closing = true;
}

void Conductor::release_endpoint(const Client& c, const Endpoint& e) {
  for (auto& [uri, d] : dests_) {
    if (d.id != e.dest_id) continue;
    if (e.role == control::Role::DurableSubscriber) return release_durable(c, d, e);
    // Release: pairs with the janitor's acquire load of the entry state; entries are handed out
    // again only by this thread. A dead client's producer entry may be freed at once: the janitor
    // treats claims that no live entry names as dead, and the client index is not reused before
    // the janitor has swept the slots it was writing.
    if (d.queue) {
      // The janitor takes back what the entry held (its unacked deliveries, unsent slots) and
      // then frees it; until QueueEntryReleased nobody else gets the entry. Release: the
      // janitor's and the ring repair's acquire loads see "closing" (not live).
      const bool producer = e.role == control::Role::Producer;
      (producer ? d.producer_owner : d.subscriber_owner)[e.entry_index] = -2;
      // Relaxed: the producer has stopped (closed or dead); its count is final.
      if (producer) d.sent_closed += d.qring.producer(e.entry_index)->sent.load(std::memory_order_relaxed);
      if (producer) d.qring.producer(e.entry_index)->state.store(2, std::memory_order_release);
      else d.qring.consumer(e.entry_index)->state.store(2, std::memory_order_release);
      janitor_.inbox().enqueue(QueueEntryClosed{d.id, producer, e.entry_index});
      info(describe(c) + " closed " + (producer ? "producer " : "consumer ") + std::to_string(e.endpoint_id) + " on " + uri);
      return;
    }
    if (e.role == control::Role::Producer) {
      d.producer_owner[e.entry_index] = -1;
      d.ring.producer(e.entry_index)->state.store(0, std::memory_order_release);
    } else {
      d.subscriber_owner[e.entry_index] = -1;
      auto* se = d.ring.subscriber(e.entry_index);
      // A subscriber killed while parked is still counted in waiters: uncount it, or every
      // publish would pay a futex wake from now on. Relaxed: the count only gates wakes.
      if (se->parked.exchange(0, std::memory_order_relaxed) != 0) d.ring.header().waiters.fetch_sub(1, std::memory_order_relaxed);
      se->state.store(0, std::memory_order_release);
    }
    info(describe(c) + " closed " + (e.role == control::Role::Producer ? "producer " : "consumer ") +
         std::to_string(e.endpoint_id) + " on " + uri);
    mark_if_unused(d);
    return;
  }
}

bool Conductor::queue_empty(const Dest& d) const {
  for (std::uint32_t i = 0; i < d.qring.slot_count(); ++i)
    // Acquire: pairs with the release that freed the slot. With no endpoint open only the janitor
    // can still move a slot, and only one that is not FREE (redelivery, DLQ, a timer).
    if (layout::QWord::state(d.qring.slot(i)->state.load(std::memory_order_acquire)) != layout::QState::Free)
      return false;
  return true;
}

void Conductor::mark_if_unused(Dest& d) {
  // -2 (a queue entry still being reclaimed) counts as used: the queue is marked when the last
  // QueueEntryReleased arrives.
  const auto used = [](const std::vector<std::int64_t>& v) {
    return std::any_of(v.begin(), v.end(), [](std::int64_t o) { return o != -1; });
  };
  if (!used(d.subscriber_owner) && !used(d.producer_owner)) {
    d.unused_since_ns = common::mono_ns();
    d.recheck_at_ns = 0;
  }
}

int Conductor::expire_idle_topics() {
  const auto now = common::mono_ns();
  std::uint64_t next = ~0ULL;
  for (auto it = dests_.begin(); it != dests_.end();) {
    const auto since = it->second.unused_since_ns;
    if (since == 0 || it->second.temporary) {  // a temporary one lives as long as its connection
      ++it;
      continue;
    }
    if (it->second.recheck_at_ns > now) {  // a non-empty queue: not before its next look
      next = std::min(next, it->second.recheck_at_ns - now);
      ++it;
      continue;
    }
    if (now - since < cfg_.idle_topic_ns) {
      next = std::min(next, since + cfg_.idle_topic_ns - now);
      ++it;
      continue;
    }
    if (it->second.queue && !queue_empty(it->second)) {
      // Messages wait in it for a consumer that has not come yet: a queue is kept while it holds
      // anything. Look again after another idle period.
      const std::uint64_t every = std::max<std::uint64_t>(cfg_.idle_topic_ns, 1'000'000'000);  // never a busy loop
      it->second.recheck_at_ns = now + every;
      next = std::min(next, every);
      ++it;
      continue;
    }
    // A removed DLQ is forgotten by the queue agent (QueueAgent::remove): asked for again later.
    // A topic is not durable: with no producer and no consumer it holds nothing anyone can read.
    // Clients that still map it keep a valid mapping; a later open creates a fresh topic.
    info("removed " + it->first + " (unused" + (it->second.queue ? " and empty" : "") + " for " +
         std::to_string(cfg_.idle_topic_ns / 1'000'000'000) + " s; " +
         std::to_string(it->second.shm->size() >> 10) + " KiB shared memory freed)");
    // Unlink here, so the name is gone by the time stat stops listing the topic; the janitor's
    // mapping stays valid until it handles TopicRemoved.
    it->second.shm->unlink();
    janitor_.inbox().enqueue(TopicRemoved{it->second.id});
    if (it->second.queue && persist_ != nullptr) persist_->post(UnpersistQueue{it->second.id});
    it = dests_.erase(it);
  }
  return next == ~0ULL ? -1 : static_cast<int>(std::min<std::uint64_t>(next / 1'000'000 + 1, 60'000));
}

void Conductor::drop_client(int fd, const char* why) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  Client& c = it->second;
  for (const auto& e : c.endpoints) release_endpoint(c, e);
  // After the endpoints: the janitor walks a closed queue entry (QueueEntryClosed) before it
  // forgets the queue (TopicRemoved); its QueueEntryReleased then finds no destination.
  for (const auto& uri : c.temps)
    if (auto t = dests_.find(uri); t != dests_.end()) remove_temp(t, "its connection " + std::string(why));
  if (c.index) {
    info(describe(c) + " " + why + "; released " + std::to_string(c.endpoints.size()) + " endpoint(s)" +
         (c.temps.empty() ? std::string() : " and " + std::to_string(c.temps.size()) + " temporary destination(s)"));
    // Release: the janitor's acquire load sees Dead before it sweeps this client's slots.
    layout::client_table(region_)[*c.index].state.store(static_cast<std::uint32_t>(layout::ClientState::Dead),
                                                        std::memory_order_release);
    janitor_.inbox().enqueue(ClientDied{*c.index});
  }
  clients_.erase(it);
}

void Conductor::drain_inbox() {
  std::uint64_t v = 0;
  (void)!::read(wake_fd_.get(), &v, sizeof v);
  ConductorCommand cmd;
  while (inbox_.try_dequeue(cmd)) {
    if (auto* q = std::get_if<QueueEntryReleased>(&cmd)) {
      if (Dest* d = find_dest(q->dest_id)) {
        (q->producer ? d->producer_owner : d->subscriber_owner)[q->entry] = -1;
        mark_if_unused(*d);
      }
      continue;
    }
    if (auto* q = std::get_if<CreateDlq>(&cmd)) {
      create_dlq(q->dest_id);
      continue;
    }
    if (std::holds_alternative<Promoted>(cmd)) {
      // The logs are the persistence agent's now: the queues and topics come back as after a restart.
      restore_stored_queues();
      restore_durable_topics();
      continue;
    }
    const auto idx = std::get<ClientReleased>(cmd).client_index;
    auto& e = layout::client_table(region_)[idx];
    // Relaxed generation bump, then release state: a reader that sees Free sees the new generation.
    e.generation.fetch_add(1, std::memory_order_relaxed);
    e.state.store(static_cast<std::uint32_t>(layout::ClientState::Free), std::memory_order_release);
    free_indices_.push_back(idx);
  }
}

void Conductor::run() {
  info("listening on " + common::socket_path(cfg_.dir));
  std::vector<pollfd> fds;
  std::vector<int> owners;  // per pollfd: client socket fd it belongs to, or -1
  for (;;) {
    fds.clear();
    owners.clear();
    fds.push_back({signal_fd_, POLLIN, 0});
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    fds.push_back({listen_fd_.get(), POLLIN, 0});
    owners.assign(3, -1);
    for (auto& [fd, c] : clients_) {
      fds.push_back({fd, POLLIN, 0});
      owners.push_back(fd);
      if (c.pidfd) {
        fds.push_back({c.pidfd.get(), POLLIN, 0});
        owners.push_back(fd);
      }
    }
    const int timeout_ms = expire_idle_topics();
    if (::poll(fds.data(), fds.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::Internal, std::string("poll: ") + std::strerror(errno));
    }
    if (fds[0].revents) {
      signalfd_siginfo si{};
      (void)!::read(signal_fd_, &si, sizeof si);
      info(std::string("received ") + (si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM") + ", shutting down");
      return;
    }
    if (fds[1].revents) drain_inbox();
    for (std::size_t i = 3; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      auto it = clients_.find(owners[i]);
      if (it == clients_.end()) continue;
      Client& c = it->second;
      if (fds[i].fd == c.fd.get()) {
        read_client(c);
        if (c.closing)
          drop_client(owners[i], c.close_reason ? c.close_reason : c.index ? "disconnected" : "left before hello");
      } else {
        drop_client(owners[i], "died (pidfd)");
      }
    }
    if (fds[2].revents) accept_client();
  }
}

}  // namespace shmbus::daemon
