#include "args.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string_view>

namespace shmbus::bench {

namespace {

constexpr const char* kUsage =
    "usage: shmbus-bench COMMAND [options]\n"
    "commands:\n"
    "  pingpong    two-process ping-pong through two topics and, in the same run, over two raw atomics\n"
    "              in shared memory (the floor); one-way latency (RTT/2) percentiles in ns\n"
    "  compare     the 64-byte ping-pong for every mechanism: shmbus (spin and park), floor, futex,\n"
    "              uds, posix_mq, boost_mq, zmq, iceoryx (peers that were built; see --only)\n"
    "  sweep       ping-pong over message sizes (--sizes), shmbus and the floor\n"
    "  rate        one-way latency at a fixed send rate (--rate), corrected for coordinated omission\n"
    "  throughput  msgs/s and MB/s: 1->1, N->1 (--producers), 1->N (--consumers) on a topic, next to\n"
    "              a raw SPSC ring\n"
    "  queue-throughput  msgs/s and MB/s through a queue with acknowledgements: --producers N -> 1, 2 and\n"
    "              4 consumers (or --consumers M) per ack mode (--ack), next to a topic 1->1; checks that\n"
    "              every message was received exactly once (count + checksum of producer sequences)\n"
    "  queue-latency  ping-pong through two queues (per --ack mode) next to two topics and the floor in\n"
    "              the same alternating rounds; one-way latency (RTT/2) percentiles in ns\n"
    "  message-latency  ping-pong of JMS messages (a BytesMessage with 2 properties, its frame encoded in\n"
    "              place and opened on receive; with a selector on both consumers; through queues) next\n"
    "              to raw send(bytes) on topics and the floor, in the same alternating rounds\n"
    "  persist     PERSISTENT queue messages next to the disk: raw sequential write MB/s of the data\n"
    "              dir's filesystem (pwrite + fdatasync), persistent queue MB/s 1->1 (--sizes, default\n"
    "              1024,4096; --messages N each, default 256 MiB worth, --quick 64 MiB) and the log's\n"
    "              growth, Acks::Durable send() latency (1 and 4 producers; --iterations N each, default\n"
    "              2000, --quick 500) next to a bare write + fdatasync; own shmbusd in /var/tmp\n"
    "  replicate   Acks::Replicated send() latency (64 B; --iterations N, default 10000, --quick 2000)\n"
    "              with 2 and 1 followers next to a loopback TCP round trip, Acks::Memory / Durable\n"
    "              for context, and a follower's catch-up MB/s (256 MiB of 1 KiB messages, --quick\n"
    "              64 MiB) next to a loopback TCP bulk transfer; own leader + 2 followers in /var/tmp;\n"
    "              JSON to bench/results/replicate.json by default (when run from the repo root)\n"
    "options:\n"
    "  --json               print one JSON object on stdout (progress still goes to stderr)\n"
    "  --out FILE           also write the JSON object to FILE\n"
    "  --quick              20000 round trips (default 100000) and 2000 warm-up (default 10000)\n"
    "  --iterations N       measured round trips\n"
    "  --rounds N           alternate the mechanisms in N rounds of iterations/N round trips each and\n"
    "                       pool the samples, so drift on a shared machine hits all alike (default 5)\n"
    "  --warmup N           round trips before measuring\n"
    "  --size BYTES         message size, 8 .. 16777216 (default 64)\n"
    "  --wait spin|yield|park  consumer WaitStrategy for both sides (default spin)\n"
    "  --spin-count N       ConsumerOptions::spin_count for yield/park (default 0)\n"
    "  --capacity N         ring slots of the ping and pong topics, and of the queues (default 4096)\n"
    "  --dir DIR            use the shmbusd already serving DIR (default: start one in a temp dir;\n"
    "                       its binary is $SHMBUSD, else the one built with this bench)\n"
    "  --no-pin             do not pin ping/pong to CPUs 0/1\n"
    "  --variants           also run floor variants that add the ring's costs one by one\n"
    "  --only KEYS          compare: only these mechanisms (comma-separated JSON keys)\n"
    "  --sizes LIST         sweep/throughput: message sizes (default 8,64,512,4096,65536;\n"
    "                       queue-throughput: 64)\n"
    "  --rate N             rate: messages per second (default 100000)\n"
    "  --producers N        throughput: producer processes (default 1)\n"
    "  --consumers N        throughput: consumer processes (default 1); queue-throughput: only N\n"
    "                       consumers (default: 1, 2 and 4)\n"
    "  --seconds S          throughput, queue-throughput: measuring time per point (default 2;\n"
    "                       --quick 0.5)\n"
    "  --messages N         queue-throughput: send exactly N messages per point (split over the\n"
    "                       producers) and time them, instead of --seconds\n"
    "  --ack LIST           queue-throughput, queue-latency: consumer session ack modes, one case each:\n"
    "                       auto, client, individual, dups_ok (default auto,individual); client and\n"
    "                       individual call Message::acknowledge() on every message\n"
    "  --plot DIR           write gnuplot data files and PNG/SVG plots into DIR\n";

bool number(std::string_view flag, const char* v, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (*v == '\0' || *v == '-' || *end != '\0' || n < lo || n > hi) {
    std::cerr << "shmbus-bench: " << flag << " must be a number from " << lo << " to " << hi << ", not '" << v << "'\n";
    return false;
  }
  out = n;
  return true;
}

}  // namespace

std::vector<std::string> ack_names(const std::string& list) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= list.size()) {
    const std::size_t j = std::min(list.find(',', i), list.size());
    out.push_back(list.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

bool ack_list_ok(const std::string& list) {
  const auto names = ack_names(list);
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& n = names[i];
    if (n != "auto" && n != "client" && n != "individual" && n != "dups_ok") return false;
    for (std::size_t k = 0; k < i; ++k)
      if (names[k] == n) return false;  // each mode once: they are JSON keys
  }
  return true;
}

const char* wait_name(Wait w) noexcept {
  switch (w) {
    case Wait::Spin: return "spin";
    case Wait::Yield: return "yield";
    case Wait::Park: return "park";
  }
  return "?";
}

const char* wait_mode(Wait w) noexcept { return w == Wait::Park ? "block" : "spin"; }

bool parse_args(int argc, char** argv, Args& a, int& rc) {
  rc = 2;
  if (argc < 2) {
    std::cerr << kUsage;
    return false;
  }
  a.command = argv[1];
  if (a.command == "-h" || a.command == "--help" || a.command == "help") {
    std::cout << kUsage;
    rc = 0;
    return false;
  }
  if (a.command != "pingpong" && a.command != "compare" && a.command != "sweep" && a.command != "rate" &&
      a.command != "throughput" && a.command != "queue-throughput" && a.command != "queue-latency" &&
      a.command != "message-latency" && a.command != "persist" && a.command != "replicate") {
    std::cerr << "shmbus-bench: unknown command '" << a.command << "'\n" << kUsage;
    return false;
  }
  bool iterations_set = false, warmup_set = false, seconds_set = false;
  for (int i = 2; i < argc; ++i) {
    const std::string_view k = argv[i];
    const bool takes_value = k == "--iterations" || k == "--warmup" || k == "--size" || k == "--wait" ||
                             k == "--dir" || k == "--out" || k == "--spin-count" || k == "--capacity" ||
                             k == "--rounds" || k == "--only" || k == "--sizes" || k == "--rate" ||
                             k == "--producers" || k == "--consumers" || k == "--seconds" || k == "--plot" ||
                             k == "--messages" || k == "--ack";
    if (takes_value && i + 1 >= argc) {
      std::cerr << "shmbus-bench: " << k << " needs a value\n";
      return false;
    }
    std::uint64_t n = 0;
    if (k == "-h" || k == "--help") {
      std::cout << kUsage;
      rc = 0;
      return false;
    } else if (k == "--json") {
      a.json = true;
    } else if (k == "--quick") {
      a.quick = true;
    } else if (k == "--no-pin") {
      a.pin = false;
    } else if (k == "--variants") {
      a.variants = true;
    } else if (k == "--iterations") {
      if (!number(k, argv[++i], 1, 1'000'000'000, a.iterations)) return false;
      iterations_set = true;
      a.iterations_set = true;
    } else if (k == "--warmup") {
      if (!number(k, argv[++i], 0, 1'000'000'000, a.warmup)) return false;
      warmup_set = true;
    } else if (k == "--size") {
      if (!number(k, argv[++i], 8, 16U << 20, n)) return false;
      a.size = static_cast<std::uint32_t>(n);
    } else if (k == "--spin-count") {
      if (!number(k, argv[++i], 0, 1U << 30, n)) return false;
      a.spin_count = static_cast<std::uint32_t>(n);
    } else if (k == "--rounds") {
      if (!number(k, argv[++i], 1, 1000, n)) return false;
      a.rounds = static_cast<std::uint32_t>(n);
    } else if (k == "--capacity") {
      if (!number(k, argv[++i], 2, 1U << 24, n)) return false;
      a.capacity = static_cast<std::uint32_t>(n);
    } else if (k == "--wait") {
      const std::string_view v = argv[++i];
      if (v == "spin") a.wait = Wait::Spin;
      else if (v == "yield") a.wait = Wait::Yield;
      else if (v == "park") a.wait = Wait::Park;
      else {
        std::cerr << "shmbus-bench: --wait must be spin, yield or park, not '" << v << "'\n";
        return false;
      }
    } else if (k == "--dir") {
      a.dir = argv[++i];
    } else if (k == "--only") {
      a.only = argv[++i];
    } else if (k == "--sizes") {
      a.sizes = argv[++i];
      a.sizes_set = true;
    } else if (k == "--plot") {
      a.plot_dir = argv[++i];
    } else if (k == "--rate") {
      if (!number(k, argv[++i], 1, 100'000'000, a.rate)) return false;
    } else if (k == "--producers" || k == "--consumers") {
      if (!number(k, argv[++i], 1, 32, n)) return false;
      (k == "--producers" ? a.producers : a.consumers) = static_cast<std::uint32_t>(n);
      if (k == "--consumers") a.consumers_set = true;
    } else if (k == "--messages") {
      if (!number(k, argv[++i], 1, 1'000'000'000'000ULL, a.messages)) return false;
    } else if (k == "--ack") {
      a.ack = argv[++i];
      if (!ack_list_ok(a.ack)) {
        std::cerr << "shmbus-bench: --ack must be a comma-separated list of auto, client, individual, dups_ok, not '"
                  << a.ack << "'\n";
        return false;
      }
    } else if (k == "--seconds") {
      char* end = nullptr;
      const double d = std::strtod(argv[++i], &end);
      if (*end != '\0' || !(d > 0.01 && d <= 3600)) {
        std::cerr << "shmbus-bench: --seconds must be a number of seconds from 0.01 to 3600\n";
        return false;
      }
      a.seconds = d;
      seconds_set = true;
    } else if (k == "--out") {
      a.out = argv[++i];
    } else {
      std::cerr << "shmbus-bench: unknown option '" << k << "'\n" << kUsage;
      return false;
    }
  }
  if (a.command == "queue-throughput" && !a.sizes_set) a.sizes = "64";
  if (a.command == "persist" && !a.sizes_set) a.sizes = "1024,4096";
  if (a.quick) {
    if (!iterations_set) a.iterations = 20'000;
    if (!warmup_set) a.warmup = 2'000;
    if (!seconds_set) a.seconds = 0.5;
  }
  return true;
}

}  // namespace shmbus::bench
