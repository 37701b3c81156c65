// The `shmbus` command line: send, recv, stat.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace shmbus::cli {

/// Exit codes (documented in docs/cli.md).
enum Exit : int { kOk = 0, kTimeout = 1, kUsage = 2, kNoDaemon = 3, kFailed = 4 };

struct Common {
  std::string dir;  // --dir, else default_dir()
  std::uint32_t capacity = 4096;
  std::uint32_t max_size = 4096;
  bool read_committed = false;  // --read-committed (queues, when created)
};

int cmd_send(const Common& c, const std::vector<std::string>& args);
int cmd_recv(const Common& c, const std::vector<std::string>& args);
int cmd_stat(const Common& c, const std::vector<std::string>& args);
int cmd_unsubscribe(const Common& c, const std::vector<std::string>& args);
int cmd_promote(const Common& c, const std::vector<std::string>& args);
/// dump-log PATH [--records] (bus/cli/dump_log.cpp): exit 0 all valid, 3 bad CRC or tail, 2 usage/IO.
int cmd_dump_log(const Common& c, const std::vector<std::string>& args);

}  // namespace shmbus::cli
