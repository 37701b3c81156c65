#include "client/endpoints.hpp"
#include "ring/queue_ring.hpp"
#include "client/connection_impl.hpp"
#include "common/paths.hpp"
#include "ring/topic_ring.hpp"

#include <cstdlib>
#include <poll.h>
#include <unistd.h>

namespace shmbus {

namespace bip = boost::interprocess;
using detail::ConnectionImpl;

namespace detail {

std::shared_ptr<Mapping> map_existing(const std::string& name, std::uint64_t expected_size) {
  auto m = std::make_shared<Mapping>();
  try {
    m->shm = bip::shared_memory_object(bip::open_only, name.c_str(), bip::read_write);
    m->region = bip::mapped_region(m->shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    throw Error(ErrorCode::DaemonGone, "cannot map shared memory '" + name + "': " + e.what() +
                                           " (the daemon may have restarted: reconnect)");
  }
  if (m->size() < expected_size)
    throw Error(ErrorCode::Internal, "shared memory '" + name + "' is smaller than the daemon announced");
  // Touch one byte per page: the mapping is then populated and the hot path takes no page fault.
  const auto* p = static_cast<const volatile std::byte*>(m->base());
  for (std::size_t off = 0; off < m->size(); off += 4096) (void)p[off];
  return m;
}

std::string check_region(const void* base, std::size_t size) {
  if (size < sizeof(layout::RegionHeader)) return "control region is smaller than its header";
  const auto* h = static_cast<const layout::RegionHeader*>(base);
  if (h->magic != layout::kRegionMagic) return "control region has a bad magic number (not a shmbus region)";
  // SYNC: acquire pairs with the daemon's release store of layout_version, written last.
  const auto v = h->layout_version.load(std::memory_order_acquire);
  if (v != layout::kLayoutVersion)
    return "shared-memory layout version " + std::to_string(v) + " differs from this client's " +
           std::to_string(layout::kLayoutVersion) + ": use a client and daemon from the same release";
  if (h->total_length > size || h->total_length != layout::region_size(h->max_clients))
    return "control region length is inconsistent with its header";
  return {};
}

bool ConnectionImpl::alive() const noexcept {
  if (closed.load(std::memory_order_relaxed) || gone.load(std::memory_order_relaxed)) return false;
  // Acquire: pairs with the daemon's release store of Stopping before it wakes every parker.
  if (header().state.load(std::memory_order_acquire) != static_cast<std::uint32_t>(layout::DaemonState::Running)) {
    gone.store(true, std::memory_order_relaxed);
    return false;
  }
  pollfd p{fd.get(), POLLRDHUP, 0};
  if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
    gone.store(true, std::memory_order_relaxed);
    return false;
  }
  return true;
}

std::vector<std::uint8_t> ConnectionImpl::call(control::MsgType t, const control::Writer& body,
                                               control::MsgType expect) {
  std::lock_guard lk(mu);
  if (closed.load(std::memory_order_relaxed)) throw Error(ErrorCode::Closed, "the connection is closed");
  try {
    return control::call(fd.get(), t, body, expect);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::DaemonGone) gone.store(true, std::memory_order_relaxed);
    throw;
  }
}

std::shared_ptr<Mapping> ConnectionImpl::map_dest(std::uint32_t dest_id, const std::string& shm,
                                                  std::uint64_t size) {
  std::lock_guard lk(mu);
  if (auto m = dest_maps[dest_id].lock()) return m;
  auto m = map_existing(shm, size);
  const bool queue = m->size() >= sizeof(std::uint64_t) && *static_cast<const std::uint64_t*>(m->base()) == layout::kQueueMagic;
  const auto err = queue ? ring::check_queue(m->base(), m->size()) : ring::check_topic(m->base(), m->size());
  if (!err.empty()) throw Error(ErrorCode::VersionMismatch, "destination shared memory '" + shm + "': " + std::string(err));
  dest_maps[dest_id] = m;
  return m;
}

void ConnectionImpl::close() noexcept {
  std::lock_guard lk(mu);
  if (closed.exchange(true, std::memory_order_relaxed)) return;
  if (!gone.load(std::memory_order_relaxed))
    (void)control::send_all(fd.get(), control::Writer{}.frame(control::MsgType::Detach, 0));
  fd.reset();
}

}  // namespace detail

std::string default_dir() {
  if (const char* d = std::getenv("SHMBUS_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) return std::string(x) + "/shmbus";
  return "/tmp/shmbus-" + std::to_string(::getuid());
}

ConnectionFactory::ConnectionFactory(std::string dir, std::string client_name)
    : dir_(dir.empty() ? default_dir() : std::move(dir)), name_(std::move(client_name)) {
  if (name_.empty()) name_ = "pid-" + std::to_string(::getpid());
  if (name_.size() > 47) name_.resize(47);
}

Connection ConnectionFactory::create_connection() const {
  auto c = std::make_shared<ConnectionImpl>();
  c->dir = common::canonical_dir(dir_);
  c->fd = control::connect_unix(common::socket_path(c->dir));
  control::Hello h;
  h.layout_version = layout::kLayoutVersion;
  h.client_name = name_;
  const auto body = c->call(control::MsgType::Hello, control::encode(h), control::MsgType::HelloOk);
  control::Reader r(body);
  control::HelloOk ok;
  control::decode(r, ok);
  c->client_index = ok.client_index;
  c->generation = ok.generation;
  c->daemon_pid = ok.daemon_pid;
  c->region = detail::map_existing(ok.region_shm, ok.region_size);
  if (auto err = detail::check_region(c->region->base(), c->region->size()); !err.empty())
    throw Error(ErrorCode::VersionMismatch, err);
  return Connection(std::move(c));
}

Connection::~Connection() {
  if (impl_) impl_->close();
}
Session Connection::create_session(AckMode mode) {
  if (!impl_ || impl_->closed.load(std::memory_order_relaxed)) throw Error(ErrorCode::Closed, "the connection is closed");
  if (static_cast<unsigned>(mode) > static_cast<unsigned>(AckMode::Transacted))
    throw Error(ErrorCode::InvalidArgument, "unknown acknowledgement mode " + std::to_string(static_cast<unsigned>(mode)));
  auto s = std::make_shared<detail::SessionImpl>();
  s->conn = impl_;
  s->mode = mode;
  return Session(std::move(s));
}
bool Connection::daemon_alive() const noexcept { return impl_ && impl_->alive(); }
BusStats Connection::stats() const {
  if (!impl_) throw Error(ErrorCode::Closed, "the connection is closed");
  const auto body = impl_->call(control::MsgType::Stat, control::Writer{}, control::MsgType::StatOk);
  control::Reader r(body);
  BusStats s;
  control::decode(r, s);
  return s;
}
std::uint32_t Connection::promote() {
  if (!impl_) throw Error(ErrorCode::Closed, "the connection is closed");
  const auto body = impl_->call(control::MsgType::Promote, control::Writer{}, control::MsgType::PromoteOk);
  control::Reader r(body);
  return r.u32();
}
std::uint32_t Connection::client_id() const noexcept { return impl_ ? impl_->client_index : 0; }
void Connection::close() {
  if (impl_) impl_->close();
}

}  // namespace shmbus
