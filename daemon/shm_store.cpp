#include "shm_store.hpp"

#include "shmbus/error.hpp"

#include <cstring>
#include <fcntl.h>
#include <filesystem>

namespace shmbus::daemon {

namespace bip = boost::interprocess;

OwnedShm::OwnedShm(const std::string& name, std::uint64_t size) : name_(name) {
  try {
    shm_ = bip::shared_memory_object(bip::create_only, name.c_str(), bip::read_write, bip::permissions(0600));
    shm_.truncate(static_cast<bip::offset_t>(size));
    // Boost has no fallocate: reserve the tmpfs pages now so a full /dev/shm is an error here,
    // not a SIGBUS in a producer later.
    if (const int rc = ::posix_fallocate(shm_.get_mapping_handle().handle, 0, static_cast<off_t>(size)); rc != 0)
      throw bip::interprocess_exception(std::strerror(rc));
    region_ = bip::mapped_region(shm_, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    bip::shared_memory_object::remove(name.c_str());
    throw Error(ErrorCode::Internal, "cannot create shared memory '" + name + "' of " + std::to_string(size) +
                                         " bytes: " + e.what() + " (is /dev/shm full?)");
  }
  // Writing every page allocates it now, so no producer or consumer takes a page fault later
  // (and a too-small /dev/shm fails here, at creation, not with SIGBUS on the hot path).
  std::memset(region_.get_address(), 0, region_.get_size());
}

OwnedShm::~OwnedShm() { unlink(); }

void OwnedShm::unlink() noexcept { bip::shared_memory_object::remove(name_.c_str()); }

std::vector<std::string> remove_stale_shm(const std::string& prefix) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm", ec)) {
    const auto n = e.path().filename().string();
    if (n.rfind(prefix, 0) == 0 && bip::shared_memory_object::remove(n.c_str())) removed.push_back(n);
  }
  return removed;
}

}  // namespace shmbus::daemon
