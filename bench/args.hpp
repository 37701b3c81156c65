// Command line of shmbus-bench.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace shmbus::bench {

enum class Wait { Spin, Yield, Park };

/// "spin" | "yield" | "park".
const char* wait_name(Wait w) noexcept;
/// "spin" for busy-polling strategies, "block" for futex parking.
const char* wait_mode(Wait w) noexcept;

struct Args {
  std::string command;               ///< pingpong | compare | sweep | rate | throughput | queue-throughput | queue-latency | message-latency | persist
  bool json = false;                 ///< one JSON object on stdout instead of the table
  bool quick = false;                ///< 20k round trips instead of 100k
  bool pin = true;                   ///< pin ping to CPU 0 and pong to CPU 1 when available
  bool variants = false;             ///< also run the floor variants (pause, xchg, ring RMWs)
  std::uint64_t iterations = 100'000;
  bool iterations_set = false;       ///< --iterations was given (persist: durable sends per producer)
  std::uint64_t warmup = 10'000;
  std::uint32_t rounds = 5;          ///< mechanisms alternate in this many rounds; samples are pooled
  std::uint32_t size = 64;           ///< message bytes
  Wait wait = Wait::Spin;
  std::uint32_t spin_count = 0;      ///< ConsumerOptions::spin_count (yield/park)
  std::uint32_t capacity = 4096;     ///< DestinationOptions::capacity of the ping and pong topics
  std::string dir;                   ///< use the shmbusd already serving DIR
  std::string out;                   ///< also write the JSON here
  // --- compare
  std::string only;                  ///< comma-separated mechanism keys to run (empty: all available)
  // --- sweep
  std::string sizes = "8,64,512,4096,65536";  ///< message sizes for sweep / throughput (queue-throughput: "64")
  bool sizes_set = false;            ///< --sizes was given
  // --- rate
  std::uint64_t rate = 100'000;      ///< messages per second the sender aims at (rate scenario)
  // --- throughput
  std::uint32_t producers = 1;       ///< producer processes (N in N->1)
  std::uint32_t consumers = 1;       ///< consumer processes (1->N fan-out)
  bool consumers_set = false;        ///< --consumers was given (queue-throughput: only that count, not 1,2,4)
  double seconds = 2.0;              ///< measuring time per throughput point
  // --- queue-throughput / queue-latency
  std::string ack = "auto,individual";  ///< queue consumers' session AckModes, one case per mode
  std::uint64_t messages = 0;        ///< queue-throughput: fixed message count per point (0: time-based, --seconds)
  // --- plots
  std::string plot_dir;              ///< write gnuplot data + PNG/SVG plots here (empty: none)
};

/// Splits --ack ("auto,individual") into names; ack_list_ok() says whether each is a known mode
/// (auto, client, individual, dups_ok), given once.
std::vector<std::string> ack_names(const std::string& list);
bool ack_list_ok(const std::string& list);

/// Parses argv. Returns false when the program should exit with `rc` (help, or a usage error
/// already printed on stderr).
bool parse_args(int argc, char** argv, Args& a, int& rc);

}  // namespace shmbus::bench
