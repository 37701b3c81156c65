// The two checkpoint files, text like Kafka's so an operator can read and fix them by hand:
//   recovery-point-offset-checkpoint   "<version>\n<offset>\n"
//   leader-epoch-checkpoint            "<version>\n<count>\n" then "<epoch> <start offset>\n" per entry
// Both are rewritten whole through io::write_file_atomic (tmp, fsync, rename, fsync dir).
#include "log/io.hpp"
#include "log/log_impl.hpp"

#include <cerrno>
#include <sstream>

namespace shmbus::log {

namespace {

// The version line of a checkpoint; an error for a newer version or a malformed file.
LogError check_version(std::istream& in, const std::string& path) {
  unsigned long long v = 0;
  if (!(in >> v)) return LogError{EPROTO, path + ": malformed checkpoint (no version line)"};
  if (v > kLogFormatVersion)
    return LogError{EPROTONOSUPPORT, path + ": written by a newer shmbus (format version " + std::to_string(v) +
                                         ", this build reads up to " + std::to_string(kLogFormatVersion) +
                                         "); upgrade shmbus to open this log"};
  return {};
}

}  // namespace

LogError Log::Impl::write_recovery_checkpoint() {
  const std::string s = std::to_string(kLogFormatVersion) + "\n" + std::to_string(recovery_point) + "\n";
  if (LogError e = io::write_file_atomic(dir, kRecoveryCheckpoint, s.data(), s.size())) return e;
  checkpointed = recovery_point;
  return {};
}

LogError Log::Impl::write_epoch_checkpoint() {
  std::string s = std::to_string(kLogFormatVersion) + "\n" + std::to_string(epochs.size()) + "\n";
  for (const auto& [epoch, start] : epochs) s += std::to_string(epoch) + " " + std::to_string(start) + "\n";
  return io::write_file_atomic(dir, kEpochCheckpoint, s.data(), s.size());
}

LogError Log::Impl::read_checkpoints() {
  std::vector<std::byte> raw;
  const std::string rp_path = io::join(dir, kRecoveryCheckpoint);
  recovery_point = 0;
  if (io::read_file(rp_path, raw)) {
    std::istringstream in(std::string(reinterpret_cast<const char*>(raw.data()), raw.size()));
    if (LogError e = check_version(in, rp_path); e.code == EPROTONOSUPPORT) return e;
    unsigned long long rp = 0;
    // A damaged recovery point costs time only: recovery then checks the whole log from 0.
    if (in >> rp) recovery_point = rp;
  }
  checkpointed = recovery_point;
  return read_epoch_checkpoint(dir, epochs);
}

LogError read_epoch_checkpoint(const std::string& dir, std::vector<std::pair<std::uint32_t, std::uint64_t>>& epochs) {
  epochs.clear();
  std::vector<std::byte> raw;
  const std::string ep_path = io::join(dir, kEpochCheckpoint);
  if (!io::read_file(ep_path, raw)) return {};
  std::istringstream in(std::string(reinterpret_cast<const char*>(raw.data()), raw.size()));
  if (LogError e = check_version(in, ep_path)) return e;
  unsigned long long n = 0, epoch = 0, start = 0;
  if (!(in >> n)) return LogError{EPROTO, ep_path + ": malformed checkpoint (no count line); fix or delete it"};
  for (unsigned long long i = 0; i < n; ++i) {
    if (!(in >> epoch >> start) || epoch > 0xFFFFFFFFULL || (!epochs.empty() && epoch <= epochs.back().first))
      return LogError{EPROTO, ep_path + ": malformed entry " + std::to_string(i) + "; fix or delete it"};
    epochs.emplace_back(static_cast<std::uint32_t>(epoch), start);
  }
  return {};
}

}  // namespace shmbus::log
