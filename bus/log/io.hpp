// Small POSIX file helpers for the segment log: whole-buffer pread/pwrite that retry on EINTR and
// short transfers, errno-to-LogError, directory fsync and the atomic small-file rewrite that every
// checkpoint and snapshot uses.
#pragma once
#include "log/segment_log.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::log::io {

/// 0, or the errno of the failed write (a short write followed by a failure reports the failure).
int pwrite_all(int fd, const void* data, std::size_t n, std::uint64_t off) noexcept;
/// Reads up to n bytes at off; `got` < n only at end of file. 0, or the errno.
int pread_upto(int fd, void* data, std::size_t n, std::uint64_t off, std::size_t& got) noexcept;
/// The file size, or -1 with errno set.
std::int64_t file_size(int fd) noexcept;

/// LogError{code, "<what> <path>: <strerror(code)>"}.
LogError sys_error(int code, std::string_view what, const std::string& path);
/// fsync of a directory, so that creates, renames and unlinks in it are durable.
LogError fsync_dir(const std::string& dir);
/// Writes dir/name through dir/name.tmp: write, fsync, rename, fsync dir. Either the old or the new
/// content survives a crash, never a mix.
LogError write_file_atomic(const std::string& dir, const std::string& name, const void* data, std::size_t n);
/// The whole file; false if it cannot be opened or read.
bool read_file(const std::string& path, std::vector<std::byte>& out);

/// Base offset of "<20 digits><ext>" (ext with its dot); false if `name` is not such a file.
bool parse_offset_name(std::string_view name, std::string_view ext, std::uint64_t& offset) noexcept;
/// Names (not paths) of the entries of dir; empty if it cannot be read.
std::vector<std::string> list_dir(const std::string& dir);
std::string join(const std::string& dir, const std::string& name);

}  // namespace shmbus::log::io
