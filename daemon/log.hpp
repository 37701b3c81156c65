// One line per event that matters, to stderr: "2026-11-25T08:50:46.123Z shmbusd[pid] LEVEL msg".
#pragma once
#include <string_view>

namespace shmbus::daemon {

enum class Level { Info, Warn, Error };
/// Thread-safe: each line goes out in one write(2).
void log(Level lvl, std::string_view msg) noexcept;
inline void info(std::string_view m) noexcept { log(Level::Info, m); }
inline void warn(std::string_view m) noexcept { log(Level::Warn, m); }
inline void error(std::string_view m) noexcept { log(Level::Error, m); }

}  // namespace shmbus::daemon
