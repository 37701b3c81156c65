#include "log.hpp"

#include <cstdio>
#include <ctime>
#include <string>
#include <unistd.h>

namespace shmbus::daemon {

void log(Level lvl, std::string_view msg) noexcept {
  try {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm t{};
    gmtime_r(&ts.tv_sec, &t);
    char stamp[128];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ shmbusd[%d] %s ", t.tm_year + 1900,
                  t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1'000'000, ::getpid(),
                  lvl == Level::Info ? "INFO " : lvl == Level::Warn ? "WARN " : "ERROR");
    std::string line(stamp);
    line.append(msg);
    line.push_back('\n');
    (void)!::write(STDERR_FILENO, line.data(), line.size());
  } catch (...) {
    // Out of memory while logging: drop the line rather than take the daemon down.
  }
}

}  // namespace shmbus::daemon
