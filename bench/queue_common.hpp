// Shared by the queue scenarios (queue_throughput.cpp, the queue ping-pong in pingpong_shmbus.cpp):
// --ack names to AckMode, and the exactly-once checksum of producer sequences.
#pragma once
#include "args.hpp"
#include "shmbus/shmbus.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>

namespace shmbus::bench {

/// "auto" | "client" | "individual" | "dups_ok" (validated by parse_args) -> AckMode.
inline AckMode ack_mode_of(const std::string& name) {
  if (name == "auto") return AckMode::Auto;
  if (name == "client") return AckMode::Client;
  if (name == "individual") return AckMode::Individual;
  if (name == "dups_ok") return AckMode::DupsOk;
  throw std::runtime_error("unknown ack mode '" + name + "'");
}

/// Client and Individual sessions acknowledge each message with Message::acknowledge().
inline bool acks_explicitly(AckMode m) noexcept { return m == AckMode::Client || m == AckMode::Individual; }

/// --wait -> the consumers' WaitStrategy.
inline WaitStrategy wait_strategy(Wait w) noexcept {
  return w == Wait::Spin ? WaitStrategy::Spin : w == Wait::Yield ? WaitStrategy::SpinYield : WaitStrategy::Park;
}

/// One message's share of the exactly-once checksum: splitmix64 of (producer id, producer
/// sequence). Producers add it up over what they sent, consumers over what they received; equal
/// sums (mod 2^64) and equal counts mean every message arrived once, unless a loss and a
/// duplicate cancel out exactly, which this mixing makes vanishingly unlikely.
inline std::uint64_t message_hash(std::uint32_t producer_id, std::uint64_t producer_seq) noexcept {
  std::uint64_t z = (std::uint64_t{producer_id} << 40) ^ producer_seq;
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace shmbus::bench
