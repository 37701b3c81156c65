// The shared-memory objects the daemon creates (Boost.Interprocess shared_memory_object +
// mapped_region), removed from /dev/shm when the owner goes away.
#pragma once
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace shmbus::daemon {

class OwnedShm {
 public:
  /// Creates `name` (must not exist) of `size` bytes, mode 0600, mapped and zero-filled.
  OwnedShm(const std::string& name, std::uint64_t size);
  OwnedShm(const OwnedShm&) = delete;
  OwnedShm& operator=(const OwnedShm&) = delete;
  ~OwnedShm();
  void* base() const noexcept { return region_.get_address(); }
  std::uint64_t size() const noexcept { return region_.get_size(); }
  const std::string& name() const noexcept { return name_; }
  /// Removes the name from /dev/shm now; mappings (the janitor's, clients') stay valid until
  /// unmapped. The destructor's removal then finds nothing, harmlessly (names are never reused).
  void unlink() noexcept;

 private:
  std::string name_;
  boost::interprocess::shared_memory_object shm_;
  boost::interprocess::mapped_region region_;
};

/// Removes every shm object whose name starts with `prefix` (left by a daemon that was killed).
/// Boost.Interprocess cannot list objects, so this reads /dev/shm. Returns the names removed.
std::vector<std::string> remove_stale_shm(const std::string& prefix);

}  // namespace shmbus::daemon
