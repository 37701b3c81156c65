// Placeholders for the scenarios being built (sweep, rate, throughput): they say so and fail.
#include "scenarios.hpp"

#include <cstdio>

namespace shmbus::bench {

static int not_yet(const Args& a) {
  std::fprintf(stderr, "shmbus-bench: '%s' is not built yet\n", a.command.c_str());
  return 2;
}
int run_sweep(const Args& a, const std::string&, const std::string&) { return not_yet(a); }
int run_rate(const Args& a, const std::string&, const std::string&) { return not_yet(a); }
int run_throughput(const Args& a, const std::string&, const std::string&) { return not_yet(a); }

}  // namespace shmbus::bench
