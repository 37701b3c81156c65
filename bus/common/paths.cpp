#include "common/paths.hpp"

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <sys/un.h>

namespace shmbus::common {

std::string canonical_dir(const std::string& dir) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::absolute(dir, ec), ec);
  return ec ? dir : p.string();
}

std::string dir_hash(const std::string& canonical) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : canonical) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string shm_prefix(const std::string& canonical) { return "shmbus." + dir_hash(canonical) + "."; }
std::string region_shm_name(const std::string& canonical) { return shm_prefix(canonical) + "ctl"; }
std::string dest_shm_name(const std::string& canonical, std::uint32_t dest_id) {
  return shm_prefix(canonical) + "d" + std::to_string(dest_id);
}
std::string socket_path(const std::string& canonical) { return canonical + "/shmbusd.sock"; }
std::string lock_path(const std::string& canonical) { return canonical + "/shmbusd.lock"; }

std::string check_socket_path(const std::string& path) {
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return "socket path '" + path + "' is " + std::to_string(path.size()) + " bytes; Unix sockets allow " +
           std::to_string(sizeof(sockaddr_un::sun_path) - 1) + ": use a shorter --dir";
  return {};
}

std::uint64_t mono_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::int64_t real_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000LL + ts.tv_nsec;
}

}  // namespace shmbus::common
