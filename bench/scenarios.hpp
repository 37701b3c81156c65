// The ping-pong scenarios. Each returns RTT samples in ticks (see clock.hpp), unsorted.
#pragma once
#include "args.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace shmbus::bench {

/// The raw shared-memory floor and variants that add the shmbus ring's costs one at a time.
enum class FloorKind {
  Plain,    ///< the floor: release store / acquire-load spin with _mm_pause (as shmbus' spin loop)
  NoPause,  ///< the same without _mm_pause (slower on this CPU: see the report)
  Xchg,     ///< floor + publish with a seq_cst exchange (as TopicWriter::publish)
  RingRmw,  ///< floor + private tail fetch_add + CAS of the shared line before writing (claim) + xchg publish
};

const char* floor_key(FloorKind k) noexcept;    ///< JSON key: floor, floor_pause, ...
const char* floor_label(FloorKind k) noexcept;  ///< table label

std::vector<std::uint64_t> run_floor(const Args& a, FloorKind kind, bool pin);
/// `dir`: the directory of a running shmbusd.
std::vector<std::uint64_t> run_shmbus_pingpong(const Args& a, const std::string& dir, bool pin);
/// The same ping-pong through two queues (queue://...ping, queue://...pong); both consumers'
/// sessions use ack mode `ack` ("auto", "client", "individual", "dups_ok": see ack_names), and
/// client/individual acknowledge() every message as soon as receive() returns it, inside the
/// timed round trip (AUTO acknowledges inside receive(), also timed).
std::vector<std::uint64_t> run_queue_pingpong(const Args& a, const std::string& dir, bool pin, const std::string& ack);
/// message-latency: the same ping-pong with JMS messages: a BytesMessage (the --size payload) with
/// an int and a string property, echoed as one; `queue` for two queues (AckMode::Auto), `selector`
/// for a selector on both consumers that every message matches.
std::vector<std::uint64_t> run_message_pingpong(const Args& a, const std::string& dir, bool pin, bool queue, bool selector);

/// The scenarios beyond ping-pong; each prints its own table / JSON and returns an exit code.
/// `dir`: the directory of a running shmbusd.
int run_sweep(const Args& a, const std::string& dir, const std::string& daemon_desc);
int run_rate(const Args& a, const std::string& dir, const std::string& daemon_desc);
int run_throughput(const Args& a, const std::string& dir, const std::string& daemon_desc);
int run_queue_throughput(const Args& a, const std::string& dir, const std::string& daemon_desc);
/// persist starts its own shmbusd (--fsync interval:10, in /var/tmp: a disk, not tmpfs) unless --dir.
int run_persist(const Args& a);
/// replicate starts its own leader and two followers (in /var/tmp); --dir is not used.
int run_replicate(const Args& a);

/// Writes `v` into the first 8 bytes of a message (messages are >= 8 bytes).
inline void stamp_message(std::byte* p, std::uint64_t v) noexcept { __builtin_memcpy(p, &v, 8); }
inline std::uint64_t message_stamp(const std::byte* p) noexcept {
  std::uint64_t v;
  __builtin_memcpy(&v, p, 8);
  return v;
}

}  // namespace shmbus::bench
