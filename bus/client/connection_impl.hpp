// Client-side state shared by a Connection and every producer/consumer created through it.
#pragma once
#include "control/socket.hpp"
#include "layout/region_layout.hpp"
#include "shmbus/shmbus.hpp"

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <map>
#include <memory>
#include <mutex>

namespace shmbus::detail {

/// One shared-memory object mapped into this process (Boost.Interprocess does the shm_open/mmap).
struct Mapping {
  boost::interprocess::shared_memory_object shm;
  boost::interprocess::mapped_region region;
  void* base() const noexcept { return region.get_address(); }
  std::size_t size() const noexcept { return region.get_size(); }
};

/// Opens and maps `name` read-write; pre-faults the pages so the first lap does not page-fault.
std::shared_ptr<Mapping> map_existing(const std::string& name, std::uint64_t expected_size);

/// Checks a mapped control region before use; "" when usable (tested on its own).
std::string check_region(const void* base, std::size_t size);

struct ConnectionImpl {
  std::string dir;
  std::mutex mu;  // serialises control calls (set-up path only)
  control::Fd fd;
  std::uint32_t client_index = 0;
  std::uint32_t generation = 0;
  std::int32_t daemon_pid = 0;
  std::shared_ptr<Mapping> region;
  std::map<std::uint32_t, std::weak_ptr<Mapping>> dest_maps;
  std::atomic<bool> closed{false};
  mutable std::atomic<bool> gone{false};

  layout::RegionHeader& header() const noexcept { return *static_cast<layout::RegionHeader*>(region->base()); }
  /// False once the daemon died, shut down, or this connection was closed. No syscall unless the
  /// shared state looks fine; then one poll(2) on the control socket (EOF = daemon died).
  bool alive() const noexcept;
  /// A control call under the mutex; throws Error.
  std::vector<std::uint8_t> call(control::MsgType t, const control::Writer& body, control::MsgType expect);
  /// Maps a destination (shared between producers/consumers of this connection).
  std::shared_ptr<Mapping> map_dest(std::uint32_t dest_id, const std::string& shm, std::uint64_t size);
  void close() noexcept;
};

}  // namespace shmbus::detail
