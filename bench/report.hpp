// The human table and the JSON object of a ping-pong run.
#pragma once
#include "args.hpp"
#include "clock.hpp"
#include "machine.hpp"
#include "stats.hpp"

#include <string>
#include <vector>

namespace shmbus::bench {

struct MechResult {
  std::string key;          ///< JSON key: "shmbus", "floor", ...
  std::string label;        ///< table label
  std::string mode;         ///< "spin" or "block"
  std::string description;  ///< one line: what exactly was measured
  Percentiles one_way;      ///< RTT/2, ns
  Percentiles rtt;          ///< RTT, ns
  double seconds = 0;       ///< wall time of the run incl. warm-up and set-up
};

struct Report {
  Args args;
  Machine machine;
  ClockInfo clock;
  bool pinned = false;
  std::string daemon;       ///< how shmbusd was provided
  std::vector<MechResult> mechs;  ///< "floor" first, "shmbus" present
};

const MechResult* find(const Report& r, const std::string& key);
std::string to_json(const Report& r);
std::string to_table(const Report& r);

}  // namespace shmbus::bench
