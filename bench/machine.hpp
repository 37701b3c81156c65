// What the bench ran on, and CPU pinning.
#pragma once
#include <string>

namespace shmbus::bench {

struct Machine {
  std::string cpu_model;     ///< "model name" of /proc/cpuinfo
  int cpus_online = 0;       ///< logical CPUs online
  int cores = 0;             ///< "cpu cores" of /proc/cpuinfo (per package), 0 if absent
  std::string kernel;        ///< uname: sysname release
  std::string kernel_version;///< uname: version
  std::string arch;          ///< uname: machine
  std::string clocksource;   ///< current kernel clocksource
  std::string loadavg;       ///< /proc/loadavg at start (others share this machine)
};

Machine probe_machine();

/// True when CPUs 0 and 1 are both in this process's affinity mask.
bool can_pin_0_1();
/// Pins the calling process to `cpu`; false on failure.
bool pin_to_cpu(int cpu);

}  // namespace shmbus::bench
