#include "log/io.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace shmbus::log::io {

int pwrite_all(int fd, const void* data, std::size_t n, std::uint64_t off) noexcept {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;  // no progress and no errno: never loop forever
    p += w;
    n -= static_cast<std::size_t>(w);
    off += static_cast<std::uint64_t>(w);
  }
  return 0;
}

int pread_upto(int fd, void* data, std::size_t n, std::uint64_t off, std::size_t& got) noexcept {
  auto* p = static_cast<char*>(data);
  got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, p + got, n - got, static_cast<off_t>(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return 0;
}

std::int64_t file_size(int fd) noexcept {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return -1;
  return st.st_size;
}

LogError sys_error(int code, std::string_view what, const std::string& path) {
  std::string s(what);
  s += ' ';
  s += path;
  s += ": ";
  s += std::strerror(code);
  return LogError{code, std::move(s)};
}

LogError fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_error(errno, "cannot open directory", dir);
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  if (rc != 0) return sys_error(e, "cannot fsync directory", dir);
  return {};
}

LogError write_file_atomic(const std::string& dir, const std::string& name, const void* data, std::size_t n) {
  const std::string path = join(dir, name);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return sys_error(errno, "cannot create", tmp);
  int e = pwrite_all(fd, data, n, 0);
  if (e == 0 && ::fsync(fd) != 0) e = errno;
  ::close(fd);
  if (e != 0) {
    ::unlink(tmp.c_str());
    return sys_error(e, "cannot write", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    e = errno;
    ::unlink(tmp.c_str());
    return sys_error(e, "cannot rename over", path);
  }
  return fsync_dir(dir);
}

bool read_file(const std::string& path, std::vector<std::byte>& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const std::int64_t size = file_size(fd);
  bool ok = size >= 0;
  if (ok) {
    out.resize(static_cast<std::size_t>(size));
    std::size_t got = 0;
    ok = pread_upto(fd, out.data(), out.size(), 0, got) == 0 && got == out.size();
  }
  ::close(fd);
  return ok;
}

bool parse_offset_name(std::string_view name, std::string_view ext, std::uint64_t& offset) noexcept {
  if (name.size() != 20 + ext.size() || name.substr(20) != ext) return false;
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 20; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return false;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  offset = v;
  return true;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);
  return names;
}

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

}  // namespace shmbus::log::io

namespace shmbus::log {

std::string segment_file_name(std::uint64_t base_offset, const char* ext) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(base_offset));
  std::string name(buf);
  if (ext != nullptr && *ext != '\0' && *ext != '.') name += '.';  // "log" and ".log" both work
  if (ext != nullptr) name += ext;
  return name;
}

}  // namespace shmbus::log
