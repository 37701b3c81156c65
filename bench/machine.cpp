#include "machine.hpp"

#include <fstream>
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace shmbus::bench {

namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\n");
  const auto e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? std::string{} : s.substr(b, e - b + 1);
}

std::string first_line(const char* path) {
  std::ifstream f(path);
  std::string l;
  std::getline(f, l);
  return trim(l);
}

}  // namespace

Machine probe_machine() {
  Machine m;
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string k = trim(line.substr(0, colon));
    const std::string v = trim(line.substr(colon + 1));
    if (k == "model name" && m.cpu_model.empty()) m.cpu_model = v;
    if (k == "cpu cores" && m.cores == 0) m.cores = std::atoi(v.c_str());
  }
  m.cpus_online = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  utsname u{};
  if (::uname(&u) == 0) {
    m.kernel = std::string(u.sysname) + " " + u.release;
    m.kernel_version = u.version;
    m.arch = u.machine;
  }
  m.clocksource = first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  m.loadavg = first_line("/proc/loadavg");
  return m;
}

bool can_pin_0_1() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return false;
  return CPU_ISSET(0, &set) && CPU_ISSET(1, &set);
}

bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

}  // namespace shmbus::bench
